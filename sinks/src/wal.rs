//! `ritma run`'s WAL beyond the trace files themselves (FORMAT.md §8): the restart point
//! (where a restart from the last saved dataflow state starts reading) and trimming the
//! files no restart needs any more.

use crate::store::{io, read_capped, replace_file, StoreError};
use ritma_schemas::cbor::{DecodeError, Decoder, Encoder};
use ritma_schemas::Hash32;
use std::path::{Path, PathBuf};

type Result<T> = std::result::Result<T, StoreError>;

fn invalid(path: &Path, reason: impl Into<String>) -> StoreError {
    StoreError::Invalid {
        path: path.to_owned(),
        reason: reason.into(),
    }
}

/// The file in `wal/` naming the restart point.
pub const RESTART_FILE: &str = "restart.cbor";
/// Longest restart point file.
const MAX_RESTART_LEN: usize = 256;

/// Where a restart continues: the state saved at cut `cut` (its digest `state`) and the
/// WAL item after it, at byte `offset` of `wal/<file>`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RestartPoint {
    pub cut: u64,
    pub file: String,
    pub offset: u64,
    pub state: Hash32,
}

impl RestartPoint {
    /// The point at byte `offset` of the WAL file `file`.
    pub fn new(cut: u64, file: &Path, offset: u64, state: Hash32) -> Result<Self> {
        let name = file
            .file_name()
            .and_then(|n| n.to_str())
            .filter(|n| is_wal_name(n))
            .ok_or_else(|| invalid(file, "not a WAL file name (<19 digits>.rtrace)"))?;
        Ok(RestartPoint {
            cut,
            file: name.to_owned(),
            offset,
            state,
        })
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut e = Encoder::new();
        e.array(4)
            .uint(self.cut)
            .text(&self.file)
            .uint(self.offset)
            .bytes(&self.state);
        e.into_bytes()
    }

    pub fn decode(bytes: &[u8]) -> std::result::Result<Self, DecodeError> {
        let mut d = Decoder::new(bytes, "RestartPoint");
        d.array_exact("(record)", 4)?;
        let cut = d.uint("cut")?;
        let at = d.position();
        let file = d.text("file", 64)?.to_owned();
        if !is_wal_name(&file) {
            return Err(d.error_at(
                "file",
                at,
                ritma_schemas::cbor::DecodeErrorKind::Invalid("not a WAL file name"),
            ));
        }
        let offset = d.uint("offset")?;
        let state = d.fixed("state")?;
        d.finish()?;
        Ok(RestartPoint {
            cut,
            file,
            offset,
            state,
        })
    }

    /// Replaces the store's restart point, durably.
    pub fn write(&self, store: &Path) -> Result<()> {
        replace_file(&store.join("wal").join(RESTART_FILE), &self.encode())
    }

    /// The store's restart point, if it has one.
    pub fn read(store: &Path) -> Result<Option<Self>> {
        let path = store.join("wal").join(RESTART_FILE);
        let bytes = match read_capped(&path, MAX_RESTART_LEN) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io(&path)(e)),
        };
        Self::decode(&bytes)
            .map(Some)
            .map_err(|source| StoreError::Decode { path, source })
    }
}

/// `<start ns, 19 digits>.rtrace`.
fn is_wal_name(name: &str) -> bool {
    name.strip_suffix(".rtrace")
        .is_some_and(|s| s.len() == 19 && s.bytes().all(|b| b.is_ascii_digit()))
}

/// The store's WAL files, `wal/<start ns>.rtrace`, with their starts, in the order
/// they were written.
pub fn wal_files(store: &Path) -> Result<Vec<(u64, PathBuf)>> {
    let dir = store.join("wal");
    let entries = match std::fs::read_dir(&dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io(&dir)(e)),
    };
    let mut files = Vec::new();
    for e in entries {
        let e = e.map_err(io(&dir))?;
        let name = e.file_name();
        let name = name.to_string_lossy();
        // Temporary names (a file being created) start with a dot.
        if name.starts_with('.') || name == RESTART_FILE {
            continue;
        }
        let start = name
            .strip_suffix(".rtrace")
            .and_then(|s| s.parse::<u64>().ok())
            .ok_or_else(|| {
                invalid(
                    &e.path(),
                    "not a WAL file name (<start ns>.rtrace); move it out of the WAL",
                )
            })?;
        files.push((start, e.path()));
    }
    files.sort();
    Ok(files)
}

/// Deletes the WAL files before the restart point's, which no restart reads, once the
/// hour before its cut is shipped (`shipping`: the store ships to Kafka; a WAL hour
/// stays until then), or moves them to `archive`. Returns the files taken away.
pub fn trim(
    store: &Path,
    window_len_ns: u64,
    shipping: bool,
    archive: Option<&Path>,
) -> Result<Vec<PathBuf>> {
    let Some(point) = RestartPoint::read(store)? else {
        return Ok(Vec::new());
    };
    if shipping {
        let per_hour = ritma_schemas::records::windows_per_hour(window_len_ns);
        let shipped = crate::ship::shipped_below_hour(store, window_len_ns)?;
        if shipped.is_none_or(|h| h < point.cut / per_hour) {
            return Ok(Vec::new());
        }
    }
    let files = wal_files(store)?;
    if !files
        .iter()
        .any(|(_, p)| p.file_name().is_some_and(|n| *n == *point.file))
    {
        let why = format!("names wal/{}, which is not there", point.file);
        return Err(invalid(&store.join("wal").join(RESTART_FILE), why));
    }
    let mut removed = Vec::new();
    for (_, path) in files {
        if path.file_name().is_some_and(|n| *n >= *point.file) {
            break;
        }
        match archive {
            Some(dir) => move_to(&path, dir)?,
            None => std::fs::remove_file(&path).map_err(io(&path))?,
        }
        removed.push(path);
    }
    if !removed.is_empty() {
        crate::store::sync_dir(&store.join("wal"))?;
    }
    Ok(removed)
}

/// Moves `path` into `dir` durably: renamed when on the same file system, else copied,
/// fsynced, then deleted.
fn move_to(path: &Path, dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    let to = dir.join(path.file_name().expect("a WAL file name"));
    if std::fs::rename(path, &to).is_err() {
        let tmp = dir.join(format!(
            ".{}.tmp",
            to.file_name().expect("a name").to_string_lossy()
        ));
        std::fs::copy(path, &tmp)
            .and_then(|_| std::fs::File::open(&tmp)?.sync_all())
            .and_then(|()| std::fs::rename(&tmp, &to))
            .map_err(io(&to))?;
        std::fs::remove_file(path).map_err(io(path))?;
    }
    crate::store::sync_dir(dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_restart_point_round_trips_and_refuses_other_names() {
        let p = RestartPoint {
            cut: 7200,
            file: "0001765101600000000000.rtrace"[3..].to_owned(),
            offset: 4242,
            state: [7; 32],
        };
        assert_eq!(RestartPoint::decode(&p.encode()).unwrap(), p);
        let bad = RestartPoint {
            file: "../x.rtrace".into(),
            ..p.clone()
        };
        assert!(RestartPoint::decode(&bad.encode()).is_err());
        let mut trailing = p.encode();
        trailing.push(0);
        assert!(RestartPoint::decode(&trailing).is_err());
    }

    #[test]
    fn the_restart_point_decoder_takes_any_damage_without_panicking() {
        let good = RestartPoint {
            cut: 7200,
            file: format!("{:019}.rtrace", 7_200_000_000_000u64),
            offset: 4242,
            state: [7; 32],
        }
        .encode();
        for i in 0..good.len() {
            for bit in 0..8 {
                let mut b = good.clone();
                b[i] ^= 1 << bit;
                let _ = RestartPoint::decode(&b);
            }
            let _ = RestartPoint::decode(&good[..i]);
        }
    }

    /// A store directory with WAL files of three hours and a restart point in the third.
    fn store_with_wal() -> (tempfile::TempDir, Vec<String>) {
        let d = tempfile::tempdir().unwrap();
        let wal = d.path().join("wal");
        std::fs::create_dir_all(&wal).unwrap();
        let names: Vec<String> = [3600u64, 7200, 10800]
            .iter()
            .map(|s| format!("{:019}.rtrace", s * 1_000_000_000))
            .collect();
        for n in &names {
            std::fs::write(wal.join(n), b"RTRACE\x00\x01").unwrap();
        }
        RestartPoint::new(10800, &wal.join(&names[2]), 8, [1; 32])
            .unwrap()
            .write(d.path())
            .unwrap();
        (d, names)
    }

    fn left(store: &Path) -> Vec<String> {
        wal_files(store)
            .unwrap()
            .into_iter()
            .map(|(_, p)| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect()
    }

    #[test]
    fn the_files_before_the_restart_points_go_once_their_hour_is_shipped() {
        const LEN: u64 = 1_000_000_000;
        // Not shipping: deleted at once, the restart point's file kept.
        let (d, names) = store_with_wal();
        assert_eq!(trim(d.path(), LEN, false, None).unwrap().len(), 2);
        assert_eq!(left(d.path()), names[2..]);
        // Shipping: kept until the cursor is past the hour before the cut.
        let (d, names) = store_with_wal();
        assert!(
            trim(d.path(), LEN, true, None).unwrap().is_empty(),
            "no cursor yet"
        );
        let cursor = |next_window, hour| ritma_schemas::ship::ShipCursor {
            topic: "t".into(),
            next_seq: 1,
            next_window: Some(next_window),
            hour,
            setup: None,
        };
        crate::ship::write_cursor(d.path(), &cursor(10799, None)).unwrap();
        assert!(
            trim(d.path(), LEN, true, None).unwrap().is_empty(),
            "hour 2 not shipped"
        );
        // Its windows, but not yet its hour envelope.
        crate::ship::write_cursor(d.path(), &cursor(10801, None)).unwrap();
        assert!(
            trim(d.path(), LEN, true, None).unwrap().is_empty(),
            "hour 2 not shipped"
        );
        assert_eq!(left(d.path()), names);
        crate::ship::write_cursor(d.path(), &cursor(10801, Some((2, [0; 32])))).unwrap();
        assert_eq!(trim(d.path(), LEN, true, None).unwrap().len(), 2);
        assert_eq!(left(d.path()), names[2..]);
        // Archived: moved whole, not deleted.
        let (d, names) = store_with_wal();
        let archive = d.path().join("archive");
        trim(d.path(), LEN, false, Some(&archive)).unwrap();
        let mut moved: Vec<String> = std::fs::read_dir(&archive)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        moved.sort();
        assert_eq!(moved, names[..2]);
        // A restart point naming a file that is not there is an error, not a trim.
        std::fs::remove_file(d.path().join("wal").join(&names[2])).unwrap();
        assert!(trim(d.path(), LEN, false, None).is_err());
    }
}
