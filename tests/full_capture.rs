//! Full capture through `ritma replay`: a trace's exes and blob frames become the actor's
//! executable hash, the exec's payload_ref, the blob in the store's CAS and the
//! unknown_binary trigger; `ritma verify` checks the blob against the signed reference.

use crate::util::{exec_event, tree, window_leaves, Dir, OutputExt};
use ritma_schemas::records::{AnyRecord, CaptureMode, RunMeta};
use ritma_sinks::cas::Cas;
use ritma_sources::raw::{RawBody, RawEvent};
use ritma_sources::trace::{BaselineStatus, ExeEntry, TraceWriter};
use std::path::Path;

const NODE: &str = "full-1";
const MS: u64 = 1_000_000;
const WINDOW_LEN_NS: u64 = 1_000 * MS;
const W0: u64 = 1_700_000_000;
const MONO_AT_W0: u64 = 5_000 * MS;
const IMPLANT: &[u8] = b"\x7fELF an implant dropped in /tmp";
const TOOL: &[u8] = b"\x7fELF a known tool";

fn run_meta() -> RunMeta {
    RunMeta {
        node: NODE.into(),
        boot_id: [7; 16],
        sensor_version: "full-capture-test".into(),
        config_digest: [3; 32],
        window_len_ns: WINDOW_LEN_NS,
        wall_minus_mono_ns: (W0 * WINDOW_LEN_NS - MONO_AT_W0) as i64,
        first_seq: 0,
        started_wall_ns: W0 * WINDOW_LEN_NS,
    }
}

/// An exec of `path` (file `ino` on device 9) by process `pid`, `ms` after W0's start.
fn exec(seq: u64, ms: u64, pid: u32, path: &str, ino: u64) -> RawEvent {
    exec_event(seq, MONO_AT_W0 + ms * MS, pid, path, ino)
}

fn b3(b: &[u8]) -> [u8; 32] {
    *blake3::hash(b).as_bytes()
}

/// A trace where pid 200 runs a known tool and pid 300 an implant the sensor kept; with
/// `cut_blob`, the implant's blob frame is missing its bytes (a part of another blob
/// stands in its place), so nothing may name it.
fn write_trace(path: &Path, cut_blob: bool) {
    let mut w = TraceWriter::create(path).unwrap();
    let run = w.add_run(&run_meta()).unwrap();
    if cut_blob {
        // Written as its own blob: the parts of the implant never arrive whole.
        w.append_blob(run, &IMPLANT[..8]).unwrap();
    } else {
        w.append_blob(run, IMPLANT).unwrap();
    }
    w.append_exes(
        run,
        &[
            ExeEntry {
                dev: 9,
                ino: 10,
                hash: b3(TOOL),
                baseline: BaselineStatus::Listed,
            },
            ExeEntry {
                dev: 9,
                ino: 11,
                hash: b3(IMPLANT),
                baseline: BaselineStatus::Unlisted,
            },
        ],
    )
    .unwrap();
    w.append_batch(
        run,
        &[
            exec(0, 100, 200, "/usr/bin/tool", 10),
            exec(1, 200, 300, "/tmp/implant", 11),
        ],
    )
    .unwrap();
}

#[test]
fn kept_binaries_are_named_by_their_exec_stored_in_the_cas_and_verified() {
    let d = Dir::new();
    let (key, vkey) = d.signing_key(NODE);
    write_trace(&d.join("t.rtrace"), false);
    d.ritma(&["replay", "t.rtrace", "--out", "s", "--key", &key])
        .output()
        .success();
    let leaves = window_leaves(&d.join("s"));
    let records: Vec<AnyRecord> = leaves
        .iter()
        .flat_map(|(_, l)| l.iter().map(|b| AnyRecord::decode(b).unwrap()))
        .collect();
    let actor = |pid| {
        records
            .iter()
            .find_map(|r| match r {
                AnyRecord::Actor(a) if a.pid == pid => Some(a.clone()),
                _ => None,
            })
            .unwrap()
    };
    let atom = |seq| {
        records
            .iter()
            .find_map(|r| match r {
                AnyRecord::Event(e) if e.seq == seq => Some(e.clone()),
                _ => None,
            })
            .unwrap()
    };
    // Both executables are known by hash; only the implant's bytes are kept.
    assert_eq!(actor(200).exe_hash, Some(b3(TOOL)));
    assert_eq!(actor(300).exe_hash, Some(b3(IMPLANT)));
    assert_eq!(atom(0).payload_ref, None);
    assert_eq!(atom(1).payload_ref, Some(b3(IMPLANT)));
    let cas = Cas::open(&d.join("s")).unwrap();
    let mut bytes = Vec::new();
    cas.get(&b3(IMPLANT), &mut bytes).unwrap();
    assert_eq!(bytes, IMPLANT);
    // The implant is unknown (and run from /tmp): both triggers fire on its exec.
    let fired: Vec<(&str, u64)> = records
        .iter()
        .filter_map(|r| match r {
            AnyRecord::Cone(c) => Some((c.cone_id.as_str(), c.last_seq)),
            _ => None,
        })
        .collect();
    assert!(fired.contains(&("unknown_binary", 1)), "{fired:?}");
    assert!(fired.contains(&("exec_from_tmp", 1)), "{fired:?}");
    assert!(!fired.iter().any(|&(c, s)| c == "unknown_binary" && s == 0));
    // The window holding the kept binary's exec was sealed Full.
    assert_eq!(leaves[0].0.capture_mode, CaptureMode::Full);
    let report = d.ritma(&["verify", "s", "--key", &vkey]).output().success();
    assert!(report.starts_with(&format!("OK {NODE}: ")), "{report}");

    // Two workers seal the same store, CAS included.
    d.ritma(&[
        "replay",
        "t.rtrace",
        "--out",
        "s2",
        "--key",
        &key,
        "--workers",
        "2",
    ])
    .output()
    .success();
    assert!(
        tree(&d.join("s")) == tree(&d.join("s2")),
        "the stores differ"
    );

    // A damaged chunk, then a missing manifest: verify names the blob and the event.
    let chunk = cas.chunk_path(&b3(IMPLANT));
    let mut b = std::fs::read(&chunk).unwrap();
    b[0] ^= 1;
    std::fs::write(&chunk, b).unwrap();
    let o = d.ritma(&["verify", "s", "--key", &vkey]).output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success());
    assert!(err.contains("E_CAS") && err.contains("event 1"), "{err}");
    std::fs::remove_file(cas.manifest_path(&b3(IMPLANT))).unwrap();
    let o = d
        .ritma(&["verify", "--trust-embedded-key", "s2", "--json"])
        .output()
        .unwrap();
    assert!(o.status.success(), "s2 is intact");
    let o = d
        .ritma(&["verify", "--trust-embedded-key", "s", "--json"])
        .output()
        .unwrap();
    let json = String::from_utf8_lossy(&o.stdout);
    assert!(json.contains("\"code\":\"E_CAS\""), "{json}");
}

#[test]
fn an_exe_whose_blob_never_arrived_is_named_by_nothing() {
    let d = Dir::new();
    let (key, vkey) = d.signing_key(NODE);
    write_trace(&d.join("t.rtrace"), true);
    d.ritma(&["replay", "t.rtrace", "--out", "s", "--key", &key])
        .output()
        .success();
    let records: Vec<AnyRecord> = window_leaves(&d.join("s"))
        .iter()
        .flat_map(|(_, l)| {
            l.iter()
                .map(|b| AnyRecord::decode(b).unwrap())
                .collect::<Vec<_>>()
        })
        .collect();
    // The hash is still known; the exec names no content, and verify accepts the store.
    assert!(records
        .iter()
        .any(|r| matches!(r, AnyRecord::Actor(a) if a.exe_hash == Some(b3(IMPLANT)))));
    assert!(!records
        .iter()
        .any(|r| matches!(r, AnyRecord::Event(e) if e.payload_ref.is_some())));
    d.ritma(&["verify", "s", "--key", &vkey]).output().success();
}

/// An open by `pid` at `ms`, to move time on.
fn open(seq: u64, ms: u64, pid: u32) -> RawEvent {
    RawEvent {
        body: RawBody::Open {
            path: b"/etc/hostname".to_vec(),
            flags: 0,
            mode: 0,
            result: 3,
            given: None,
        },
        ..exec(seq, ms, pid, "/", 0)
    }
}

#[test]
fn a_late_trigger_and_a_timely_one_share_a_window_in_canonical_order() {
    let d = Dir::new();
    let (key, vkey) = d.signing_key(NODE);
    let mut w = TraceWriter::create(&d.join("t.rtrace")).unwrap();
    let run = w.add_run(&run_meta()).unwrap();
    w.append_exes(
        run,
        &[ExeEntry {
            dev: 9,
            ino: 11,
            hash: b3(IMPLANT),
            baseline: BaselineStatus::Unlisted,
        }],
    )
    .unwrap();
    // Window 2 opens and closes windows 0 and 1; then an exec from window 0 arrives late
    // (sealed in window 2 with a negative time) beside one of window 2.
    w.append_batch(run, &[open(0, 2_500, 100)]).unwrap();
    w.append_batch(
        run,
        &[
            exec(1, 900, 300, "/opt/implant", 11),
            exec(2, 2_600, 301, "/opt/implant", 11),
        ],
    )
    .unwrap();
    drop(w);
    d.ritma(&["replay", "t.rtrace", "--out", "s", "--key", &key])
        .output()
        .success();
    let starts: Vec<i64> = window_leaves(&d.join("s"))
        .iter()
        .flat_map(|(_, l)| {
            l.iter()
                .map(|b| AnyRecord::decode(b).unwrap())
                .collect::<Vec<_>>()
        })
        .filter_map(|r| match r {
            AnyRecord::Cone(c) if c.cone_id == "unknown_binary" => Some(c.t_start_ns),
            _ => None,
        })
        .collect();
    assert_eq!(starts.len(), 2, "{starts:?}");
    assert!(starts[0] < 0 && starts[1] > 0, "signed order: {starts:?}");
    d.ritma(&["verify", "s", "--key", &vkey]).output().success();
}

/// Kept binaries leave the node as blob envelopes (chunks, then the manifest) before the
/// window that names them, and the receiver holds them byte for byte; a chunk whose bytes
/// are not its name's is refused (FORMAT.md §12.2, §12.4).
#[test]
fn kept_binaries_ship_before_their_window_and_a_forged_chunk_is_refused() {
    use ritma_schemas::note::NoteVerifier;
    use ritma_schemas::ship::ShipKind;
    use ritma_sinks::mirror::{Mirror, Origin, Outcome, Reason};
    use ritma_sinks::ship::{write_cursor, ShipSource};
    let d = Dir::new();
    let (key, vkey) = d.signing_key(NODE);
    write_trace(&d.join("t.rtrace"), false);
    d.ritma(&["replay", "t.rtrace", "--out", "s", "--key", &key])
        .output()
        .success();
    let pinned = || {
        let text = std::fs::read_to_string(&vkey).unwrap();
        vec![NoteVerifier::from_vkey(text.trim()).unwrap()]
    };
    let mut src = ShipSource::open(&d.join("s"), "ritma.evidence").unwrap();
    let mut envs = Vec::new();
    while let Some(o) = src.next_shipment().unwrap() {
        envs.extend(o.envelopes);
        write_cursor(&d.join("s"), &o.cursor).unwrap();
        src.acked(o.cursor);
    }
    let first_blob = envs
        .iter()
        .position(|e| e.kind == ShipKind::Blob)
        .expect("a blob envelope");
    assert!(envs[first_blob..]
        .iter()
        .any(|e| e.kind == ShipKind::Window));
    let mirror = Mirror::open(&d.join("out"), pinned()).unwrap();
    for (i, e) in envs.iter().enumerate() {
        let o = mirror
            .apply(
                e,
                Origin {
                    partition: 0,
                    offset: i as i64,
                },
            )
            .unwrap();
        assert!(matches!(o, Outcome::Applied { .. }), "{o:?}");
    }
    let mut node = tree(&d.join("s"));
    node.retain(|p, _| !p.starts_with("_meta/ship") && !p.ends_with("signing.key"));
    assert!(node.keys().any(|p| p.starts_with("cas/b3")));
    assert!(node == tree(&d.join(&format!("out/nodes/{NODE}"))));

    let fresh = Mirror::open(&d.join("out2"), pinned()).unwrap();
    for (i, e) in envs[..first_blob].iter().enumerate() {
        fresh
            .apply(
                e,
                Origin {
                    partition: 0,
                    offset: i as i64,
                },
            )
            .unwrap();
    }
    let mut forged = envs[first_blob].clone();
    forged.files[0].bytes[0] ^= 1;
    let o = fresh
        .apply(
            &forged,
            Origin {
                partition: 0,
                offset: 99,
            },
        )
        .unwrap();
    assert!(
        matches!(
            o,
            Outcome::Quarantined {
                reason: Reason::Root,
                ..
            }
        ),
        "{o:?}"
    );
}
