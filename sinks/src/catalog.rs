//! Keeps a store's daily catalog and accounting files (FORMAT.md §8.11) current: an
//! hour's entries are written when its index is (hour seal, or the end of a run), and
//! rewritten when retention deletes it. They are the only store files replaced in
//! place; `ritma verify` rebuilds every entry and compares.

use crate::store::{civil_from_days, io, sync_dir, StoreError};
use ritma_schemas::catalog::{
    AccountHour, CatalogHour, DayAccount, DayCatalog, FileTally, FILE_CATEGORIES, HOURS_PER_DAY,
    MAX_DAY_LEN,
};
use ritma_schemas::records::Record;
use std::fs;
use std::path::{Path, PathBuf};

/// zstd level of day files.
const DAY_ZSTD_LEVEL: i32 = 3;

/// `YYYY/MM/DD` of a day (days since 1970-01-01).
fn date_dir(day: u64) -> PathBuf {
    let (y, m, d) = civil_from_days(day as i64);
    PathBuf::from(format!("{y:04}/{m:02}/{d:02}"))
}

/// `catalog/YYYY/MM/DD/day.cbor.zst`
pub fn catalog_path(day: u64) -> PathBuf {
    Path::new("catalog")
        .join(date_dir(day))
        .join("day.cbor.zst")
}

/// `accounting/YYYY/MM/DD/account.cbor.zst`
pub fn account_path(day: u64) -> PathBuf {
    Path::new("accounting")
        .join(date_dir(day))
        .join("account.cbor.zst")
}

/// `windows/YYYY/MM/DD/HH` of an hour.
pub fn hour_dir(hour: u64) -> PathBuf {
    Path::new("windows")
        .join(date_dir(hour / HOURS_PER_DAY))
        .join(format!("{:02}", hour % HOURS_PER_DAY))
}

/// The directories holding each category of an hour's files, in [`FILE_CATEGORIES`] order.
fn category_dirs(hour: u64) -> [PathBuf; 6] {
    let windows = hour_dir(hour);
    let date_hour = windows.strip_prefix("windows").expect("under windows/");
    [
        windows.join("micro"),
        windows.join("blocks"),
        windows.join("proofs"),
        windows.join("index"),
        Path::new("graph/edges").join(date_hour),
        Path::new("_meta/health").join(date_hour),
    ]
}

/// What the store holds of `hour` now, per category, with its `events`. `deleted`
/// counts only `proofs/`, which is all retention keeps (so the entry can be written
/// before the other files go).
pub fn account_hour(
    root: &Path,
    hour: u64,
    events: u64,
    deleted: bool,
) -> Result<AccountHour, StoreError> {
    let mut stored = [FileTally::default(); 6];
    for (i, (tally, dir)) in stored.iter_mut().zip(category_dirs(hour)).enumerate() {
        if deleted && FILE_CATEGORIES[i] != "proofs" {
            continue;
        }
        let dir = root.join(dir);
        let entries = match fs::read_dir(&dir) {
            Ok(it) => it,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(io(&dir)(e)),
        };
        for e in entries {
            let e = e.map_err(io(&dir))?;
            let meta = e.metadata().map_err(io(&e.path()))?;
            if meta.is_file() {
                tally.files += 1;
                tally.bytes += meta.len();
            }
        }
    }
    Ok(AccountHour {
        hour,
        events,
        stored,
    })
}

/// Reads a day file's record bytes; `None` if it does not exist.
fn read_day(path: &Path) -> Result<Option<Vec<u8>>, StoreError> {
    match crate::store::read_capped(path, crate::store::compressed_cap(MAX_DAY_LEN)) {
        Ok(b) => crate::store::decompress_frame(&b, MAX_DAY_LEN)
            .map(Some)
            .map_err(|e| StoreError::Invalid {
                path: path.to_owned(),
                reason: format!("not a zstd frame of at most {MAX_DAY_LEN} bytes: {e}"),
            }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io(path)(e)),
    }
}

/// The day's catalog at `root`, if written.
pub fn read_catalog(root: &Path, day: u64) -> Result<Option<DayCatalog>, StoreError> {
    let path = root.join(catalog_path(day));
    read_day(&path)?
        .map(|b| DayCatalog::decode(&b).map_err(|source| StoreError::Decode { path, source }))
        .transpose()
}

/// The day's accounting at `root`, if written.
pub fn read_account(root: &Path, day: u64) -> Result<Option<DayAccount>, StoreError> {
    let path = root.join(account_path(day));
    read_day(&path)?
        .map(|b| DayAccount::decode(&b).map_err(|source| StoreError::Decode { path, source }))
        .transpose()
}

/// Puts `entry` in `hours` (sorted by hour), replacing the hour's old entry.
fn upsert<T>(hours: &mut Vec<T>, entry: T, hour_of: impl Fn(&T) -> u64) {
    let hour = hour_of(&entry);
    match hours.binary_search_by_key(&hour, &hour_of) {
        Ok(i) => hours[i] = entry,
        Err(i) => hours.insert(i, entry),
    }
}

fn write_day(path: &Path, encoded: &[u8]) -> Result<(), StoreError> {
    let dir = path.parent().expect("day files live in a date directory");
    fs::create_dir_all(dir).map_err(io(dir))?;
    let bytes = zstd::bulk::compress(encoded, DAY_ZSTD_LEVEL).map_err(io(path))?;
    crate::store::replace_file(path, &bytes)
}

/// One process's updates of the day files, one at a time: a running `ritma run` records
/// the hours it seals while its retention records the hours it deletes, in the same files.
static DAY_FILES: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Records one hour's catalog and accounting entries in its day's files (read, replace
/// the hour's entries, write back atomically). The catalog entry goes last: it attests
/// that the hour's derived files are complete (FORMAT.md §8.12).
pub fn record_hour(
    root: &Path,
    node: &str,
    entry: CatalogHour,
    account: AccountHour,
) -> Result<(), StoreError> {
    debug_assert_eq!(entry.hour, account.hour);
    let _one = DAY_FILES.lock().unwrap_or_else(|e| e.into_inner());
    let day = entry.hour / HOURS_PER_DAY;
    let mut accounts = read_account(root, day)?.unwrap_or_else(|| DayAccount {
        node: node.to_owned(),
        day,
        hours: Vec::new(),
    });
    upsert(&mut accounts.hours, account, |h| h.hour);
    write_day(&root.join(account_path(day)), &accounts.encode())?;
    let mut catalog = read_catalog(root, day)?.unwrap_or_else(|| DayCatalog {
        node: node.to_owned(),
        day,
        hours: Vec::new(),
    });
    upsert(&mut catalog.hours, entry, |h| h.hour);
    write_day(&root.join(catalog_path(day)), &catalog.encode())
}

/// Takes `hour`'s catalog entry out of its day's file (the file goes when it lists no
/// other hour): a run continuing in the store's newest hour does this before it writes
/// anything, so until it writes the hour's derived files again they are known out of date.
pub fn forget_hour(root: &Path, hour: u64) -> Result<(), StoreError> {
    let _one = DAY_FILES.lock().unwrap_or_else(|e| e.into_inner());
    let day = hour / HOURS_PER_DAY;
    let Some(mut catalog) = read_catalog(root, day)? else {
        return Ok(());
    };
    let before = catalog.hours.len();
    catalog.hours.retain(|h| h.hour != hour);
    let path = root.join(catalog_path(day));
    match catalog.hours.len() {
        n if n == before => Ok(()),
        0 => {
            fs::remove_file(&path).map_err(io(&path))?;
            sync_dir(path.parent().expect("a date directory"))
        }
        _ => write_day(&path, &catalog.encode()),
    }
}

/// The days (since 1970-01-01) of the day files under `dir` (`catalog` or
/// `accounting`), with any entry that is not `YYYY/MM/DD/<file>` reported as `Err(path)`.
pub fn day_files(root: &Path, dir: &str, file: &str) -> Result<Vec<u64>, PathBuf> {
    let base = root.join(dir);
    let mut out = Vec::new();
    let mut stack: Vec<(PathBuf, usize)> = vec![(PathBuf::new(), 0)];
    while let Some((rel, depth)) = stack.pop() {
        let Ok(it) = fs::read_dir(base.join(&rel)) else {
            continue;
        };
        for e in it.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            let path = rel.join(&name);
            let widths = [4, 2, 2];
            if depth < 3 {
                if name.len() != widths[depth] || !name.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(base.join(path));
                }
                stack.push((path, depth + 1));
            } else if name != file {
                return Err(base.join(path));
            } else {
                let day = parse_date_dir(&rel).ok_or_else(|| base.join(&path))?;
                out.push(day);
            }
        }
    }
    out.sort_unstable();
    Ok(out)
}

/// Parses `YYYY/MM/DD` back to days since 1970-01-01 (only dates that format back to it).
fn parse_date_dir(rel: &Path) -> Option<u64> {
    let parts: Vec<u32> = rel
        .iter()
        .map(|c| c.to_str()?.parse().ok())
        .collect::<Option<_>>()?;
    let [y, m, d] = parts[..] else {
        return None;
    };
    let day = u64::try_from(crate::store::days_from_civil(i64::from(y), m, d)).ok()?;
    (date_dir(day) == rel).then_some(day)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ritma_schemas::catalog::HourState;

    fn entry(hour: u64) -> CatalogHour {
        CatalogHour {
            hour,
            state: HourState::Deleted,
            first_window: hour * 3600,
            last_window: hour * 3600 + 3599,
            events: 0,
            seq_range: None,
            lost: vec![],
            contents: None,
        }
    }

    #[test]
    fn paths_name_the_utc_day_and_hour() {
        // 2025-11-23 is day 20415; its hour 13 is 20415 * 24 + 13.
        let day = crate::store::days_from_civil(2025, 11, 23) as u64;
        assert_eq!(
            catalog_path(day),
            Path::new("catalog/2025/11/23/day.cbor.zst")
        );
        assert_eq!(
            account_path(day),
            Path::new("accounting/2025/11/23/account.cbor.zst")
        );
        assert_eq!(hour_dir(day * 24 + 13), Path::new("windows/2025/11/23/13"));
    }

    #[test]
    fn recording_an_hour_replaces_its_entries_and_keeps_the_others_in_order() {
        let d = tempfile::tempdir().unwrap();
        let day = 20_000u64;
        let tally = |hour| AccountHour {
            hour,
            events: hour,
            stored: [FileTally::default(); 6],
        };
        for h in [day * 24 + 5, day * 24 + 1, day * 24 + 5] {
            record_hour(d.path(), "n", entry(h), tally(h)).unwrap();
        }
        let c = read_catalog(d.path(), day).unwrap().unwrap();
        assert_eq!(
            c.hours.iter().map(|h| h.hour).collect::<Vec<_>>(),
            [day * 24 + 1, day * 24 + 5]
        );
        let a = read_account(d.path(), day).unwrap().unwrap();
        assert_eq!(a.hours, vec![tally(day * 24 + 1), tally(day * 24 + 5)]);
        assert_eq!(
            day_files(d.path(), "catalog", "day.cbor.zst").unwrap(),
            vec![day]
        );
        // A stray file in the tree is named.
        fs::write(d.path().join("catalog/x"), b"").unwrap();
        assert_eq!(
            day_files(d.path(), "catalog", "day.cbor.zst").unwrap_err(),
            d.path().join("catalog/x")
        );
    }

    #[test]
    fn accounting_counts_files_per_category_and_only_proofs_of_a_deleted_hour() {
        let d = tempfile::tempdir().unwrap();
        let hour = 20_000 * 24 + 3;
        let dirs = category_dirs(hour);
        for (i, dir) in dirs.iter().enumerate() {
            fs::create_dir_all(d.path().join(dir)).unwrap();
            for f in 0..=i {
                fs::write(d.path().join(dir).join(format!("f{f}")), vec![0u8; 10]).unwrap();
            }
        }
        let a = account_hour(d.path(), hour, 7, false).unwrap();
        for (i, t) in a.stored.iter().enumerate() {
            assert_eq!((t.files, t.bytes), (i as u64 + 1, 10 * (i as u64 + 1)));
        }
        assert_eq!(a.events, 7);
        let a = account_hour(d.path(), hour, 7, true).unwrap();
        assert_eq!(a.bytes(), 30, "proofs/ holds 3 files of 10 bytes");
    }

    #[test]
    fn a_corrupt_day_file_is_an_error_naming_it() {
        let d = tempfile::tempdir().unwrap();
        let path = d.path().join(catalog_path(1));
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(&path, b"not zstd").unwrap();
        let e = read_catalog(d.path(), 1).unwrap_err().to_string();
        assert!(e.contains("day.cbor.zst"), "{e}");
        let e = record_hour(
            d.path(),
            "n",
            entry(24),
            AccountHour {
                hour: 24,
                events: 0,
                stored: Default::default(),
            },
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("day.cbor.zst"), "{e}");
    }
}
