//! `ritma verify --from/--to`: blocks and signatures are checked in the hours of the range
//! only, while every window record is still chained, so a record changed outside the range
//! is caught and a block outside it is not read.

use crate::util::{Dir, OutputExt};
use ritma_schemas::records::{Record, WindowRecord};
use serde_json::Value;

/// Hours 00, 01 and 02 of 2026-11-01 sealed whole, hour 03 in part, in 1-minute windows.
fn store() -> Dir {
    let d = Dir::new();
    d.sealed_store(&["--events", "12000", "--rate", "1", "--window-ms", "60000"]);
    d
}

const HOUR_1: [&str; 4] = [
    "--from",
    "2026-11-01T01:00:00Z",
    "--to",
    "2026-11-01T02:00:00Z",
];
const HOUR_0: [&str; 4] = [
    "--from",
    "2026-11-01T00:00:00Z",
    "--to",
    "2026-11-01T00:30:00Z",
];

fn verify_json(d: &Dir, range: &[&str]) -> (bool, Value) {
    let mut args = vec!["verify", "--trust-embedded-key", "s", "--json"];
    args.extend_from_slice(range);
    let o = d.ritma(&args).output().unwrap();
    let v = serde_json::from_str(String::from_utf8_lossy(&o.stdout).trim()).unwrap();
    (o.status.success(), v)
}

#[test]
fn a_range_checks_its_hours_and_chains_the_rest() {
    let d = store();
    let (ok, full) = verify_json(&d, &[]);
    assert!(ok, "{full}");
    let (ok, one) = verify_json(&d, &HOUR_1);
    assert!(ok, "{one}");
    let (full, one) = (&full["nodes"][0], &one["nodes"][0]);
    assert_eq!(one["checked_windows"], 60);
    assert_eq!(full["checked_windows"], full["windows"]);
    // The whole log is still accounted for: same windows, events and root.
    for k in [
        "windows",
        "events",
        "log_size",
        "log_root",
        "first_window",
        "last_window",
    ] {
        assert_eq!(one[k], full[k], "{k}");
    }
    let text = d
        .ritma(&["verify", "--trust-embedded-key", "s"])
        .output()
        .success();
    assert!(!text.contains("chained"), "{text}");
    let mut args = vec!["verify", "--trust-embedded-key", "s"];
    args.extend_from_slice(&HOUR_1);
    let text = d.ritma(&args).output().success();
    assert!(
        text.contains("of 60 windows in the hours of the range checked"),
        "{text}"
    );
    // The last, partial hour is in range of an open-ended --from.
    let (ok, tail) = verify_json(&d, &["--from", "2026-11-01T03:10:00Z"]);
    assert!(ok, "{tail}");
    let windows = tail["nodes"][0]["windows"].as_u64().unwrap();
    assert_eq!(tail["nodes"][0]["checked_windows"], windows - 180);

    let err = d
        .ritma(&[
            "verify",
            "--trust-embedded-key",
            "s",
            "--from",
            "2026-11-01T02:00:00Z",
            "--to",
            "2026-11-01T01:00:00Z",
        ])
        .output()
        .failure();
    assert!(err.contains("--from must be before --to"), "{err}");
}

#[test]
fn a_damaged_block_is_found_in_its_range_and_not_read_outside_it() {
    let d = store();
    let block = d.join("s/windows/2026/11/01/00/blocks/w0005.cbor.zst");
    let mut bytes = std::fs::read(&block).unwrap_or_else(|e| panic!("{}: {e}", block.display()));
    let at = bytes.len() / 2;
    bytes[at] ^= 0x40;
    std::fs::write(&block, bytes).unwrap();
    let (ok, v) = verify_json(&d, &[]);
    assert!(
        !ok && v["path"].as_str().unwrap().ends_with("w0005.cbor.zst"),
        "{v}"
    );
    let (ok, v) = verify_json(&d, &HOUR_0);
    assert!(
        !ok && v["path"].as_str().unwrap().ends_with("w0005.cbor.zst"),
        "{v}"
    );
    let (ok, v) = verify_json(&d, &HOUR_1);
    assert!(ok, "hour 01 does not read hour 00's blocks: {v}");
}

#[test]
fn a_record_changed_outside_the_range_still_breaks_the_chain() {
    let d = store();
    let path = d.join("s/windows/2026/11/01/00/micro/w0007.cbor");
    let mut record = WindowRecord::decode(&std::fs::read(&path).unwrap()).unwrap();
    record.late_events += 1;
    std::fs::write(&path, record.encode()).unwrap();
    let (ok, v) = verify_json(&d, &HOUR_1);
    assert!(!ok, "{v}");
    // Hour 00's seal no longer describes the chained records.
    assert_eq!(v["code"], "E_CHAIN", "{v}");
    assert!(
        v["path"].as_str().unwrap().contains("2026/11/01/00/proofs"),
        "{v}"
    );

    // After the range, in the unsealed last hour: the newest checkpoint signs it.
    let d = store();
    let path = d.join("s/windows/2026/11/01/03/micro/w0002.cbor");
    let mut record = WindowRecord::decode(&std::fs::read(&path).unwrap()).unwrap();
    record.late_events += 1;
    std::fs::write(&path, record.encode()).unwrap();
    let (ok, v) = verify_json(&d, &HOUR_1);
    assert!(!ok, "{v}");
    assert_eq!(v["code"], "E_CHECKPOINT", "{v}");
    assert!(
        v["detail"]
            .as_str()
            .unwrap()
            .contains("newest signed checkpoint"),
        "{v}"
    );

    // A record removed outside the range leaves a gap in the window chain.
    let d = store();
    std::fs::remove_file(d.join("s/windows/2026/11/01/00/micro/w0009.cbor")).unwrap();
    std::fs::remove_file(d.join("s/windows/2026/11/01/00/micro/w0009.sig")).unwrap();
    std::fs::remove_file(d.join("s/windows/2026/11/01/00/blocks/w0009.cbor.zst")).unwrap();
    let (ok, v) = verify_json(&d, &HOUR_1);
    assert!(!ok, "{v}");
    assert_eq!(v["code"], "E_CONTINUITY", "{v}");
}
