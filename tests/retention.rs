//! `ritma retention`: old sealed hours deleted, each deletion signed and recorded so the
//! store still verifies, proofs of what is kept unchanged, and forged deletions caught.

use crate::util::{tree, Dir, OutputExt};
use ritma_schemas::keys::sign_record;
use ritma_schemas::records::{HourDeletion, Record, SignedRecord};
use std::path::{Path, PathBuf};

/// Synth trace start: 2026-11-01T00:00:00Z (`ritma_sources::synth::SYNTH_START_WALL_NS`).
const START_S: u64 = 1_793_491_200;

/// A store of four hours of 1-minute windows (about 3 h 20 min of events at 1 event/s);
/// hours 00, 01 and 02 are sealed.
fn four_hour_store() -> Dir {
    let d = Dir::new();
    d.sealed_store(&["--events", "12000", "--rate", "1", "--window-ms", "60000"]);
    d
}

/// `--keep` that puts the cut `cut_s` seconds after the trace start, whatever the clock.
fn keep_cutting_at(cut_s: u64) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    format!("{}s", now - (START_S + cut_s))
}

/// `ritma retention s --keep … --apply` with the cut `cut_s` seconds after the trace start.
fn apply(d: &Dir, cut_s: u64) -> String {
    d.ritma(&[
        "retention",
        "s",
        "--keep",
        &keep_cutting_at(cut_s),
        "--apply",
    ])
    .output()
    .success()
}

fn hour(h: u32) -> PathBuf {
    PathBuf::from(format!("windows/2026/11/01/{h:02}"))
}

#[test]
fn retention_deletes_old_hours_records_each_and_the_store_still_verifies() {
    let d = four_hour_store();
    let s = d.join("s");
    let before = tree(&s);
    // The cut at 2 h 30 min: hours 00 and 01 ended before it, 02 after.
    let keep = keep_cutting_at(9000);
    let out = d
        .ritma(&["retention", "s", "--keep", &keep])
        .output()
        .success();
    assert_eq!(out.matches("would delete hour").count(), 2, "{out}");
    assert!(
        out.contains("hour 2026-11-01T00") && out.contains("hour 2026-11-01T01"),
        "{out}"
    );
    assert!(out.contains("2 kept"), "{out}");
    assert_eq!(tree(&s), before, "a dry run changes nothing");

    // A proof of a kept event, made before.
    d.ritma(&["prove", "s", "--seq", "11990", "--out", "before.proof"])
        .output()
        .success();
    let out = apply(&d, 9000);
    assert!(out.contains("deleted 2 hours"), "{out}");
    let after = tree(&s);
    for h in [0, 1] {
        let left: Vec<_> = after.keys().filter(|p| p.starts_with(hour(h))).collect();
        assert_eq!(
            left,
            [
                "proofs/deleted.cbor",
                "proofs/hour_root.cbor",
                "proofs/hour_root.sig"
            ]
            .map(|f| hour(h).join(f))
            .iter()
            .collect::<Vec<_>>()
        );
        let under = format!("2026/11/01/{h:02}");
        assert!(!after
            .keys()
            .any(|p| p.starts_with(Path::new("graph/edges").join(&under))));
    }
    // Everything of the kept hours is untouched (the day's catalog and accounting are
    // rewritten: tests/catalog.rs checks them).
    for (p, b) in &before {
        let derived = p.starts_with("catalog") || p.starts_with("accounting");
        if !p.starts_with(hour(0)) && !p.starts_with(hour(1)) && !p.starts_with("graph") && !derived
        {
            assert_eq!(after.get(p), Some(b), "{}", p.display());
        }
    }
    let out = d
        .ritma(&["verify", "--trust-embedded-key", "s"])
        .output()
        .success();
    assert!(
        out.contains("2 hours deleted by retention") && out.contains("12000 events"),
        "{out}"
    );

    // Proofs of kept events are the same bytes; a deleted event says why it cannot be proven.
    d.ritma(&["prove", "s", "--seq", "11990", "--out", "after.proof"])
        .output()
        .success();
    assert_eq!(
        std::fs::read(d.join("before.proof")).unwrap(),
        std::fs::read(d.join("after.proof")).unwrap()
    );
    let err = d
        .ritma(&["prove", "s", "--seq", "5", "--out", "gone.proof"])
        .output()
        .failure();
    assert!(
        err.contains("retention deleted") && err.contains("2026-11-01T00"),
        "{err}"
    );

    // A later run deletes the next hour after the recorded ones; the tail hour stays.
    let out = d
        .ritma(&["retention", "s", "--keep", "1s", "--apply"])
        .output()
        .success();
    assert!(
        out.contains("deleted 1 hours") && out.contains("2 deleted before, 1 kept"),
        "{out}"
    );
    let out = d
        .ritma(&["verify", "--trust-embedded-key", "s", "--json"])
        .output()
        .success();
    assert!(
        out.contains("\"deleted_hours\":3") && out.contains("\"events\":12000"),
        "{out}"
    );
    // A store with deleted hours is not resumed from its trace (they would come back).
    let err = d
        .ritma(&["replay", "t.rtrace", "--out", "s"])
        .output()
        .failure();
    assert!(err.contains("retention deleted hours"), "{err}");
}

#[test]
fn an_interrupted_retention_is_visible_and_finished_by_the_next_run() {
    let d = four_hour_store();
    let s = d.join("s");
    let before = tree(&s);
    apply(&d, 5400);
    // As if the process died after the record and before the files went.
    for (p, b) in before
        .iter()
        .filter(|(p, _)| p.starts_with(hour(0).join("micro")))
    {
        std::fs::create_dir_all(s.join(p).parent().unwrap()).unwrap();
        std::fs::write(s.join(p), b).unwrap();
    }
    let err = d
        .ritma(&["verify", "--trust-embedded-key", "s"])
        .output()
        .failure();
    assert!(
        err.contains("E_EXTRA") && err.contains("retention deleted"),
        "{err}"
    );
    let out = apply(&d, 5400);
    assert!(out.contains("finish deleting hour 2026-11-01T00"), "{out}");
    d.ritma(&["verify", "--trust-embedded-key", "s"])
        .output()
        .success();
}

/// The store's deletion record of `h`, decoded, and a way to put back a changed one signed
/// with `key` (the store's own key unless another is given).
struct Deletion {
    path: PathBuf,
    bytes: Vec<u8>,
    record: HourDeletion,
}

impl Deletion {
    fn of(s: &Path, h: u32) -> Self {
        let path = s.join(hour(h)).join("proofs/deleted.cbor");
        let bytes = std::fs::read(&path).unwrap();
        let record = HourDeletion::decode(&SignedRecord::decode(&bytes).unwrap().body).unwrap();
        Deletion {
            path,
            bytes,
            record,
        }
    }

    fn forge(&self, key: &Path, change: impl FnOnce(&mut HourDeletion)) {
        let signer = ritma_sinks::keys::load_private_key(key).unwrap();
        let mut r = self.record.clone();
        change(&mut r);
        std::fs::write(&self.path, sign_record(r.encode(), &signer).encode()).unwrap();
    }

    fn restore(&self) {
        std::fs::write(&self.path, &self.bytes).unwrap();
    }
}

#[test]
fn forged_or_tampered_deletions_are_caught() {
    let d = four_hour_store();
    let s = d.join("s");
    let own_key = s.join("_meta/keys/signing.key");
    apply(&d, 9000);
    d.ritma(&["verify", "--trust-embedded-key", "s"])
        .output()
        .success();
    let del = Deletion::of(&s, 1);
    let verify_fails = |code: &str, what: &str| {
        let err = d
            .ritma(&["verify", "--trust-embedded-key", "s"])
            .output()
            .failure();
        assert!(err.contains(code), "{what}: {err}");
    };

    // Any changed byte of the record.
    let mut b = del.bytes.clone();
    let at = b.len() / 2;
    b[at] ^= 0x01;
    std::fs::write(&del.path, &b).unwrap();
    let err = d
        .ritma(&["verify", "--trust-embedded-key", "s"])
        .output()
        .failure();
    assert!(
        err.contains("deleted.cbor") && (err.contains("E_SIGNATURE") || err.contains("E_DECODE")),
        "{err}"
    );
    del.restore();

    // Signed by a key that is not the node's (someone without the node's key).
    d.ritma(&["keys", "init", "--out", "other", "--node", "synth-0"])
        .output()
        .success();
    del.forge(&d.join("other/_meta/keys/signing.key"), |_| {});
    verify_fails("E_SIGNATURE", "another key");
    // With the node's key but against the rules: an hour deleted inside its retention
    // period, roots that do not give the hour's seal, a size the log never reached.
    del.forge(&own_key, |r| r.keep_ns = r.deleted_wall_ns);
    verify_fails("E_RETENTION", "deleted before its retention period ended");
    del.forge(&own_key, |r| r.subtrees[0][0] ^= 1);
    verify_fails("E_RETENTION", "wrong node-log roots");
    del.forge(&own_key, |r| r.log_size += 1000);
    verify_fails("E_RETENTION", "signed at a size the log never reached");
    del.forge(&own_key, |r| r.events -= 1);
    verify_fails("E_SEQ", "fewer deleted events than the seqs they held");
    del.restore();
    d.ritma(&["verify", "--trust-embedded-key", "s"])
        .output()
        .success();

    // The record moved to another deleted hour, or removed.
    let other = Deletion::of(&s, 0);
    std::fs::copy(&del.path, &other.path).unwrap();
    verify_fails("E_LAYOUT", "record of another hour");
    other.restore();
    std::fs::remove_file(&del.path).unwrap();
    verify_fails("E_EXTRA", "deleted hour without its record");
    del.restore();

    // An hour deleted without any record: its windows are simply gone.
    std::fs::remove_dir_all(s.join(hour(2))).unwrap();
    std::fs::remove_dir_all(s.join("graph/edges/2026/11/01/02")).unwrap();
    verify_fails("E_CONTINUITY", "hour deleted without a record");
}

/// A trace of 1-minute windows from START_S: pid 100 + h runs `/tmp/implant-a` in hours 0
/// and 2 and `/tmp/implant-b` in hour 1 (both unknown, so Full capture keeps them), and a
/// known tool runs in hour 3 so hours 0 to 2 are sealed.
fn write_blob_trace(path: &Path) {
    use ritma_schemas::records::RunMeta;
    use ritma_sources::trace::{BaselineStatus, ExeEntry, TraceWriter};
    let minute: u64 = 60_000_000_000;
    let mono_at_start = 1_000_000_000u64;
    let mut w = TraceWriter::create(path).unwrap();
    let run = w
        .add_run(&RunMeta {
            node: "blobs-1".into(),
            boot_id: [5; 16],
            sensor_version: "retention-test".into(),
            config_digest: [1; 32],
            window_len_ns: minute,
            wall_minus_mono_ns: (START_S * 1_000_000_000 - mono_at_start) as i64,
            first_seq: 0,
            started_wall_ns: START_S * 1_000_000_000,
        })
        .unwrap();
    let exe = |ino, bytes: &[u8], baseline| ExeEntry {
        dev: 9,
        ino,
        hash: *blake3::hash(bytes).as_bytes(),
        baseline,
    };
    w.append_blob(run, IMPLANT_A).unwrap();
    w.append_blob(run, IMPLANT_B).unwrap();
    w.append_exes(
        run,
        &[
            exe(10, TOOL, BaselineStatus::Listed),
            exe(11, IMPLANT_A, BaselineStatus::Unlisted),
            exe(12, IMPLANT_B, BaselineStatus::Unlisted),
        ],
    )
    .unwrap();
    let runs = [
        (0, "/tmp/implant-a", 11),
        (1, "/tmp/implant-b", 12),
        (2, "/tmp/implant-a", 11),
        (3, "/usr/bin/tool", 10),
    ];
    for (seq, (h, exe_path, ino)) in runs.into_iter().enumerate() {
        let mono_ns = mono_at_start + (h * 60 + 10) * minute;
        let event = crate::util::exec_event(seq as u64, mono_ns, 100 + h as u32, exe_path, ino);
        w.append_batch(run, &[event]).unwrap();
    }
}

const IMPLANT_A: &[u8] = b"\x7fELF implant a";
const IMPLANT_B: &[u8] = b"\x7fELF implant b";
const TOOL: &[u8] = b"\x7fELF a known tool";

#[test]
fn retention_deletes_the_blobs_only_deleted_windows_named() {
    use ritma_sinks::cas::Cas;
    let d = Dir::new();
    write_blob_trace(&d.join("t.rtrace"));
    d.ritma(&["keys", "init", "--out", "s", "--node", "blobs-1"])
        .output()
        .success();
    d.ritma(&["replay", "t.rtrace", "--out", "s"])
        .output()
        .success();
    let cas = Cas::open(&d.join("s")).unwrap();
    let (a, b) = (
        *blake3::hash(IMPLANT_A).as_bytes(),
        *blake3::hash(IMPLANT_B).as_bytes(),
    );
    for blob in [&a, &b] {
        assert!(cas.manifest_path(blob).exists() && cas.chunk_path(blob).exists());
    }
    // A chunk a crash left without a manifest goes too.
    let stray = *blake3::hash(b"stray").as_bytes();
    std::fs::create_dir_all(cas.chunk_path(&stray).parent().unwrap()).unwrap();
    std::fs::write(cas.chunk_path(&stray), b"stray").unwrap();

    // Cut at 02:00: hours 00 and 01 go; implant b was only run in hour 01. A dry run
    // counts what would go and takes nothing.
    let before = tree(&d.join("s"));
    let out = d
        .ritma(&["retention", "s", "--keep", &keep_cutting_at(7200)])
        .output()
        .success();
    assert!(
        out.contains("2 hours") && out.contains("and 3 CAS files"),
        "{out}"
    );
    assert!(tree(&d.join("s")) == before, "a dry run changed the store");
    let out = apply(&d, 7200);
    assert!(out.contains("deleted 2 hours"), "{out}");
    assert!(out.contains("and 3 CAS files"), "{out}");
    assert!(cas.manifest_path(&a).exists() && cas.chunk_path(&a).exists());
    assert!(!cas.manifest_path(&b).exists() && !cas.chunk_path(&b).exists());
    assert!(!cas.chunk_path(&stray).exists());
    let mut bytes = Vec::new();
    cas.get(&a, &mut bytes).unwrap();
    assert_eq!(bytes, IMPLANT_A);
    d.ritma(&["verify", "--trust-embedded-key", "s"])
        .output()
        .success();
    // Nothing more to take on the next run.
    let out = apply(&d, 7200);
    assert!(out.contains("and 0 CAS files"), "{out}");
}
