//! The daily catalog and accounting (FORMAT.md §8.11): written as hours are sealed and at
//! the end of a run, rewritten by retention, answered by `ritma query hours`, and rebuilt
//! and compared by `ritma verify`.

use crate::util::{tree, window_leaves, Dir, OutputExt};
use ritma_schemas::catalog::{DayAccount, DayCatalog};
use ritma_schemas::records::Record;
use std::path::{Path, PathBuf};

/// Synth trace start: 2026-11-01T00:00:00Z, day 20393.
const START_S: u64 = 1_793_491_200;
const CATALOG: &str = "s/catalog/2026/11/01/day.cbor.zst";
const ACCOUNT: &str = "s/accounting/2026/11/01/account.cbor.zst";

fn read_day(path: &Path) -> Vec<u8> {
    zstd::decode_all(&std::fs::read(path).unwrap()[..]).unwrap()
}

fn write_day(path: &Path, encoded: &[u8]) {
    std::fs::write(path, zstd::encode_all(encoded, 3).unwrap()).unwrap();
}

/// A store of four hours of 1-minute windows: hours 00–02 sealed, 03 open (the run's tail).
fn four_hour_store() -> Dir {
    let d = Dir::new();
    d.sealed_store(&["--events", "12000", "--rate", "1", "--window-ms", "60000"]);
    d
}

fn hours_json(d: &Dir) -> Vec<serde_json::Value> {
    d.ritma(&["query", "s", "--json", "hours"])
        .output()
        .success()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn the_catalog_summarises_every_hour_as_its_windows_hold_it() {
    let d = four_hour_store();
    let rows = hours_json(&d);
    let hours: Vec<&str> = rows.iter().map(|r| r["hour"].as_str().unwrap()).collect();
    assert_eq!(
        hours,
        [
            "2026-11-01T00:00Z",
            "2026-11-01T01:00Z",
            "2026-11-01T02:00Z",
            "2026-11-01T03:00Z"
        ]
    );
    let states: Vec<&str> = rows.iter().map(|r| r["state"].as_str().unwrap()).collect();
    assert_eq!(states, ["sealed", "sealed", "sealed", "open"]);
    // Events and windows per hour as the sealed window records count them.
    let windows = window_leaves(&d.join("s"));
    for (i, row) in rows.iter().enumerate() {
        let of_hour: Vec<_> = windows
            .iter()
            .filter(|(r, _)| r.window / 60 == START_S / 3600 + i as u64)
            .collect();
        let events: u64 = of_hour.iter().map(|(r, _)| r.event_count).sum();
        assert_eq!(row["events"], events, "{row}");
        assert_eq!(row["windows"], of_hour.len() as u64, "{row}");
        assert_eq!(
            counted(&row["types"]),
            events,
            "event types sum to the events: {row}"
        );
        assert!(row["bytes"].as_u64().unwrap() > 0, "{row}");
    }
    let all: u64 = rows.iter().map(|r| r["events"].as_u64().unwrap()).sum();
    assert_eq!(all, windows.iter().map(|(r, _)| r.event_count).sum::<u64>());
    for (i, row) in rows.iter().enumerate() {
        let cones: u64 = windows
            .iter()
            .filter(|(r, _)| r.window / 60 == START_S / 3600 + i as u64)
            .map(|(r, _)| r.cone_count)
            .sum();
        assert_eq!(counted(&row["cones"]), cones, "{row}");
    }
    // Bytes are what the hour's files hold on disk.
    let files = tree(&d.join("s"));
    let hour0: u64 = files
        .iter()
        .filter(|(p, _)| {
            let p = p.to_string_lossy();
            ["windows/", "graph/edges/", "_meta/health/"]
                .iter()
                .any(|top| p.starts_with(&format!("{top}2026/11/01/00/")))
        })
        .map(|(_, b)| b.len() as u64)
        .sum();
    assert_eq!(rows[0]["bytes"], hour0);
    // --from/--to select hours; a table has a header and a row per hour.
    let table = d
        .ritma(&[
            "query",
            "s",
            "--from",
            "2026-11-01T01:30:00Z",
            "--to",
            "2026-11-01T02:10:00Z",
            "hours",
        ])
        .output()
        .success();
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(lines.len(), 3, "{table}");
    assert!(lines[0].starts_with("HOUR ") && lines[1].starts_with("2026-11-01T01:00Z"));
}

/// The sum of the counts of a `["name=count", …]` column.
fn counted(v: &serde_json::Value) -> u64 {
    v.as_array()
        .unwrap()
        .iter()
        .map(|t| {
            t.as_str()
                .unwrap()
                .rsplit('=')
                .next()
                .unwrap()
                .parse::<u64>()
                .unwrap()
        })
        .sum()
}

#[test]
fn the_catalog_counts_the_cone_matches_query_cones_lists() {
    let d = Dir::new();
    d.sealed_store(&["--events", "30000"]);
    let rows = hours_json(&d);
    assert_eq!(rows.len(), 1);
    let cones = d
        .ritma(&["query", "s", "--json", "cones"])
        .output()
        .success();
    let listed = cones.lines().count() as u64;
    assert!(listed > 0, "the synth trace's attack sequences match cones");
    assert_eq!(counted(&rows[0]["cones"]), listed, "{}", rows[0]);
}

#[test]
fn verify_rebuilds_the_catalog_and_accounting_and_names_a_difference() {
    let d = four_hour_store();
    d.ritma(&["verify", "--trust-embedded-key", "s"])
        .output()
        .success();
    let (cat, acc) = (d.join(CATALOG), d.join(ACCOUNT));
    let (cat_bytes, acc_bytes) = (std::fs::read(&cat).unwrap(), std::fs::read(&acc).unwrap());
    let restore = || {
        std::fs::write(&cat, &cat_bytes).unwrap();
        std::fs::write(&acc, &acc_bytes).unwrap();
    };
    let catalog = DayCatalog::decode(&read_day(&cat)).unwrap();
    let account = DayAccount::decode(&read_day(&acc)).unwrap();

    // A changed count, strictly encoded: caught by the rebuild, naming the field.
    let mut c = catalog.clone();
    c.hours[1].contents.as_mut().unwrap().actors += 1;
    write_day(&cat, &c.encode());
    let err = d
        .ritma(&["verify", "--trust-embedded-key", "s"])
        .output()
        .failure();
    assert!(
        err.contains("E_CATALOG") && err.contains("day.cbor.zst") && err.contains("actors"),
        "{err}"
    );
    restore();

    // A sealed hour said to be open.
    let mut c = catalog.clone();
    c.hours[0].state = ritma_schemas::catalog::HourState::Open;
    write_day(&cat, &c.encode());
    let err = d
        .ritma(&["verify", "--trust-embedded-key", "s"])
        .output()
        .failure();
    assert!(err.contains("E_CATALOG") && err.contains("state"), "{err}");
    restore();

    // A sealed hour's entry removed, and an entry for an hour the store never held.
    let mut c = catalog.clone();
    c.hours.remove(2);
    write_day(&cat, &c.encode());
    let err = d
        .ritma(&["verify", "--trust-embedded-key", "s"])
        .output()
        .failure();
    assert!(
        err.contains("E_CATALOG") && err.contains("no entry for hour 2026-11-01T02"),
        "{err}"
    );
    let mut c = catalog.clone();
    let mut extra = c.hours[3].clone();
    extra.hour += 5;
    c.hours.push(extra);
    write_day(&cat, &c.encode());
    let err = d
        .ritma(&["verify", "--trust-embedded-key", "s"])
        .output()
        .failure();
    assert!(
        err.contains("E_CATALOG") && err.contains("2026-11-01T08"),
        "{err}"
    );
    restore();

    // Bytes that are not the hour's files.
    let mut a = account.clone();
    a.hours[0].stored[1].bytes += 1;
    write_day(&acc, &a.encode());
    let err = d
        .ritma(&["verify", "--trust-embedded-key", "s"])
        .output()
        .failure();
    assert!(
        err.contains("E_CATALOG") && err.contains("account.cbor.zst"),
        "{err}"
    );
    restore();

    // Not a day file, a day file of a day without hours, a missing day file.
    std::fs::write(&cat, b"not zstd").unwrap();
    let err = d
        .ritma(&["verify", "--trust-embedded-key", "s"])
        .output()
        .failure();
    assert!(
        err.contains("E_DECODE") && err.contains("day.cbor.zst"),
        "{err}"
    );
    restore();
    let other = d.join("s/catalog/2026/11/02/day.cbor.zst");
    std::fs::create_dir_all(other.parent().unwrap()).unwrap();
    std::fs::write(&other, &cat_bytes).unwrap();
    let err = d
        .ritma(&["verify", "--trust-embedded-key", "s"])
        .output()
        .failure();
    assert!(
        err.contains("E_EXTRA") && err.contains("2026/11/02"),
        "{err}"
    );
    std::fs::remove_dir_all(d.join("s/catalog/2026/11/02")).unwrap();
    std::fs::remove_file(&acc).unwrap();
    let err = d
        .ritma(&["verify", "--trust-embedded-key", "s"])
        .output()
        .failure();
    assert!(
        err.contains("E_CATALOG") && err.contains("account.cbor.zst"),
        "{err}"
    );
    restore();
    // Hours the catalog does not list still show, as uncatalogued.
    std::fs::remove_file(&cat).unwrap();
    let rows = hours_json(&d);
    assert_eq!(rows.len(), 4);
    assert!(rows
        .iter()
        .all(|r| r["state"] == "uncatalogued" && r["events"].is_null()));
    restore();
    d.ritma(&["verify", "--trust-embedded-key", "s"])
        .output()
        .success();
}

#[test]
fn retention_marks_deleted_hours_and_what_they_still_hold() {
    let d = four_hour_store();
    let before = hours_json(&d);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    // The cut at 2 h 30 min: hours 00 and 01 go.
    let keep = format!("{}s", now - (START_S + 9000));
    d.ritma(&["retention", "s", "--keep", &keep, "--apply"])
        .output()
        .success();
    d.ritma(&["verify", "--trust-embedded-key", "s"])
        .output()
        .success();
    let after = hours_json(&d);
    let states: Vec<&str> = after.iter().map(|r| r["state"].as_str().unwrap()).collect();
    assert_eq!(states, ["deleted", "deleted", "sealed", "open"]);
    for h in 0..2 {
        // The deletion record keeps the counts; the contents are gone.
        for field in ["events", "windows", "lost", "first_seq", "last_seq"] {
            assert_eq!(after[h][field], before[h][field], "{field}");
        }
        assert!(after[h]["actors"].is_null() && after[h]["types"] == serde_json::json!([]));
        let proofs: u64 = tree(&d.join("s").join(hour_dir(h)))
            .values()
            .map(|b| b.len() as u64)
            .sum();
        assert_eq!(after[h]["bytes"], proofs, "only proofs/ is left");
    }
    assert_eq!(after[2], before[2]);
}

fn hour_dir(h: usize) -> PathBuf {
    PathBuf::from(format!("windows/2026/11/01/{h:02}"))
}
