//! Writes the seed corpora in `seeds/<target>/`: one valid encoding of every record type,
//! genuine signed checkpoints (plain and witness-cosigned) by the `signed_note` target's
//! fixed key, and valid inclusion/consistency proofs in the `proofs` target's layout.
//!
//!     cd fuzz && cargo run --example gen_seeds
use std::fs;
use std::path::Path;

use ritma_schemas::merkle::{consistency_proof, inclusion_proof, Blake3Tree, Sha256Tree, TreeHash};
use ritma_schemas::note::{Checkpoint, NoteSigner};
use ritma_schemas::records::*;

fn write(dir: &str, name: &str, bytes: &[u8]) {
    let d = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("seeds")
        .join(dir);
    fs::create_dir_all(&d).unwrap();
    fs::write(d.join(name), bytes).unwrap();
}

fn proof_seed(mode: u8, a: u64, b: u64, h0: [u8; 32], h1: [u8; 32], proof: &[[u8; 32]]) -> Vec<u8> {
    let mut v = vec![mode];
    v.extend(a.to_be_bytes());
    v.extend(b.to_be_bytes());
    v.extend(h0);
    v.extend(h1);
    for p in proof {
        v.extend(p);
    }
    v
}

fn main() {
    let key = KeyEvent {
        node: "web-1".into(),
        kind: KeyEventKind::Rotate,
        public_key: [1; 32],
        log_size: 10,
        previous_key: Some([2; 32]),
    };
    let records: Vec<(&str, Vec<u8>)> = vec![
        (
            "dict",
            DictEntry::new(DictKind::Path, b"/etc/passwd").encode(),
        ),
        (
            "dict-hashed",
            DictEntry::new(DictKind::Argv, &[b'x'; 5000]).encode(),
        ),
        (
            "atom",
            EventAtom {
                seq: 1_000_000,
                t_ns: -20,
                event_type: EventType::Open,
                actor: [1; 16],
                object: [2; 16],
                flags: 0x42,
                arg_hash: Some([3; 32]),
                payload_ref: None,
                given: Vec::new(),
            }
            .encode(),
        ),
        (
            "actor",
            ActorRecord {
                actor: [1; 16],
                pid: 1234,
                ppid: 1,
                parent: Some([2; 16]),
                start_ns: 5_000_000_000,
                uid: 0,
                gid: 0,
                euid: 1000,
                exe: Some([3; 16]),
                exe_hash: None,
                comm: [4; 16],
                cgroup_id: 77,
                mnt_ns: 4026531840,
                pid_ns: 4026531836,
                net_ns: 4026531992,
                container: None,
                service: Some([5; 16]),
            }
            .encode(),
        ),
        (
            "edge",
            Edge {
                kind: EdgeKind::ProcToFile,
                src: [1; 16],
                dst: [2; 16],
                flags: 3,
                first_t_ns: -10,
                last_t_ns: 20,
                count: 3,
            }
            .encode(),
        ),
        (
            "cone",
            ConeInstance {
                cone_id: "download_exec_tmp".into(),
                cone_version: 1,
                t_start_ns: 100,
                first_seq: 10,
                last_seq: 20,
                count: 1,
                bindings: vec![("a".into(), [1; 16]), ("b".into(), [2; 16])],
                exceptions: vec![11, 12, 300],
            }
            .encode(),
        ),
        (
            "window",
            WindowRecord {
                node: "web-1".into(),
                window: 1_763_000_000,
                window_len_ns: 1_000_000_000,
                first_seq: 1000,
                event_count: 10,
                dict_count: 3,
                actor_count: 2,
                edge_count: 4,
                cone_count: 1,
                health_count: 0,
                lost: vec![
                    (LossReason::KernelRingbufFull, 2),
                    (LossReason::ProbeDetached, 1),
                ],
                late_events: 0,
                capture_mode: CaptureMode::Thick,
                cone_lib_version: 7,
                window_root: [9; 32],
                state: None,
            }
            .encode(),
        ),
        (
            "hour",
            HourSeal {
                node: "web-1".into(),
                hour: 490_000,
                first_window: 100,
                last_window: 3699,
                log_size: 3600,
                log_root: [1; 32],
                prev: Some(PrevHour {
                    hour: 489_999,
                    log_size: 1800,
                    log_root: [2; 32],
                }),
                consistency: vec![[3; 32], [4; 32]],
            }
            .encode(),
        ),
        (
            "hour-first",
            HourSeal {
                node: "a".into(),
                hour: 0,
                first_window: 0,
                last_window: 0,
                log_size: 0,
                log_root: [0; 32],
                prev: None,
                consistency: vec![],
            }
            .encode(),
        ),
        (
            "hour-deletion",
            HourDeletion {
                node: "web-1".into(),
                hour: 490_000,
                first_window: 490_000 * 3600,
                last_window: 490_000 * 3600 + 3599,
                log_start: 100,
                subtrees: vec![[5; 32]; 13],
                events: 10,
                seq_range: Some((7, 20)),
                lost: vec![(LossReason::KernelRingbufFull, 3)],
                keep_ns: 86_400_000_000_000,
                deleted_wall_ns: 1_800_000_000_000_000_000,
                log_size: 5000,
                leaves: 3600,
            }
            .encode(),
        ),
        ("key", key.encode()),
        (
            "case-manifest",
            ritma_schemas::case::CaseManifest {
                node: "web-1".into(),
                case: "IR-7".into(),
                title: "t".into(),
                approvers: vec![(
                    "alice".into(),
                    NoteSigner::from_seed("alice", [7; 32])
                        .unwrap()
                        .verifier()
                        .public_key(),
                )],
                approvals_needed: 1,
                state: ritma_schemas::case::CaseState::Open,
                windows: vec![(10, 12), (20, 20)],
                log: vec![ritma_schemas::case::CaseEntry {
                    wall_ns: 1,
                    user: "jo".into(),
                    action: ritma_schemas::case::CaseAction::Open,
                    detail: String::new(),
                    approvals: vec![],
                }],
                log_size: 30,
            }
            .encode(),
        ),
        (
            "case-export",
            ritma_schemas::case::CaseExport {
                node: "web-1".into(),
                case: "IR-7".into(),
                first_leaves: vec![10, 20],
                log_size: 40,
                gaps: vec![(0, 10, vec![[1; 32], [2; 32]]), (13, 7, vec![[3; 32]; 3])],
                exported_wall_ns: 5,
                manifest: [4; 32],
            }
            .encode(),
        ),
        (
            "run",
            RunMeta {
                node: "web-1".into(),
                boot_id: [1; 16],
                sensor_version: "ritma 0.1.0".into(),
                config_digest: [2; 32],
                window_len_ns: 1_000_000_000,
                wall_minus_mono_ns: 1_700_000_000_000_000_000,
                first_seq: 0,
                started_wall_ns: 1_760_000_000_000_000_000,
            }
            .encode(),
        ),
        (
            "health",
            HealthRecord {
                node: "web-1".into(),
                t_wall_ns: 1_760_000_000_000_000_000,
                kind: HealthKind::ProbeDetached,
                subject: "sys_enter_openat".into(),
                window: 1_763_000_001,
                lost: Some(17),
            }
            .encode(),
        ),
        (
            "signed",
            SignedRecord {
                body: key.encode(),
                key_id: 0xdead_beef,
                signature: [7; 64],
            }
            .encode(),
        ),
    ];
    for (name, bytes) in &records {
        assert!(AnyRecord::decode(bytes).is_ok(), "{name}");
        write("records", name, bytes);
    }

    let signer = NoteSigner::from_seed("ritma/web-1", [7; 32]).unwrap();
    let cp = Checkpoint::for_node("web-1", 1234, std::array::from_fn(|i| i as u8)).unwrap();
    let note = cp.sign(&signer).unwrap();
    let witness = NoteSigner::from_seed("witness.example/w1", [9; 32]).unwrap();
    let cosig = witness.sign(&cp.body()).unwrap();
    let wline = cosig.rsplit_once("\n\n").unwrap().1;
    write("signed_note", "genuine", note.as_bytes());
    write(
        "signed_note",
        "cosigned",
        format!("{note}{wline}").as_bytes(),
    );
    write(
        "signed_note",
        "vkey",
        signer.verifier().to_vkey().as_bytes(),
    );
    write("signed_note", "body", cp.body().as_bytes());
    // A genuine cosignature/v1 line by the target's fixed witness, and its key texts.
    let w = ritma_schemas::cosignature::Cosigner::from_seed("witness.example/w1", [5; 32]).unwrap();
    write(
        "signed_note",
        "witness-cosigned",
        w.cosign(&note, 1_763_884_800).unwrap().as_bytes(),
    );
    write(
        "signed_note",
        "witness-vkey",
        w.verifier().to_vkey().as_bytes(),
    );

    fn leaves<H: TreeHash>(n: u64) -> Vec<[u8; 32]> {
        (0..n).map(|i| H::leaf(&i.to_be_bytes())).collect()
    }
    for (mode, n, i, m) in [
        (0u8, 7u64, 4u64, 3u64),
        (0, 1, 0, 1),
        (0, 64, 63, 32),
        (1, 13, 0, 5),
        (1, 200, 150, 199),
    ] {
        let (l, root, old_root, p, c) = if mode & 1 == 1 {
            let l = leaves::<Sha256Tree>(n);
            let r = ritma_schemas::merkle::root::<Sha256Tree>(&l);
            let o = ritma_schemas::merkle::root::<Sha256Tree>(&l[..m as usize]);
            let p = inclusion_proof::<Sha256Tree, _>(&l[..], i).unwrap();
            let c = if m < n {
                consistency_proof::<Sha256Tree, _>(&l[..], m).unwrap()
            } else {
                vec![]
            };
            (l, r, o, p, c)
        } else {
            let l = leaves::<Blake3Tree>(n);
            let r = ritma_schemas::merkle::root::<Blake3Tree>(&l);
            let o = ritma_schemas::merkle::root::<Blake3Tree>(&l[..m as usize]);
            let p = inclusion_proof::<Blake3Tree, _>(&l[..], i).unwrap();
            let c = if m < n {
                consistency_proof::<Blake3Tree, _>(&l[..], m).unwrap()
            } else {
                vec![]
            };
            (l, r, o, p, c)
        };
        write(
            "proofs",
            &format!("incl-{mode}-{n}-{i}"),
            &proof_seed(mode, i, n, l[i as usize], root, &p),
        );
        write(
            "proofs",
            &format!("cons-{mode}-{m}-{n}"),
            &proof_seed(mode, m, n, old_root, root, &c),
        );
    }
    // Sizes over 2^63 (read as is: mode bit 1).
    write(
        "proofs",
        "huge",
        &proof_seed(2, 1, (1 << 63) + 1, [0; 32], [0; 32], &[]),
    );
    // store_files: a day catalog (a sealed and a deleted hour) and its accounting.
    use ritma_schemas::catalog::*;
    let catalog = DayCatalog {
        node: "web-1".into(),
        day: 19_675,
        hours: vec![
            CatalogHour {
                hour: 472_200,
                state: HourState::Sealed,
                first_window: 1_699_920_000,
                last_window: 1_699_923_599,
                events: 9,
                seq_range: Some((10, 20)),
                lost: vec![(LossReason::QueueShed, 2)],
                contents: Some(HourContents {
                    late_events: 1,
                    capture_mode: CaptureMode::Thick,
                    actors: 3,
                    edges: 4,
                    health: 1,
                    event_types: vec![(EventType::Exec, 2), (EventType::Open, 7)],
                    cones: vec![("exec_from_tmp".into(), 1), ("memfd_exec".into(), 2)],
                }),
            },
            CatalogHour {
                hour: 472_201,
                state: HourState::Deleted,
                first_window: 1_699_923_600,
                last_window: 1_699_927_199,
                events: 0,
                seq_range: None,
                lost: vec![],
                contents: None,
            },
        ],
    };
    write("store_files", "day-catalog", &catalog.encode());
    let account = DayAccount {
        node: "web-1".into(),
        day: 19_675,
        hours: vec![AccountHour {
            hour: 472_200,
            events: 9,
            stored: [FileTally {
                files: 2,
                bytes: 90,
            }; 6],
        }],
    };
    write("store_files", "day-account", &account.encode());
    let meta = StoreMeta {
        format_version: 1,
        node: "web-1".into(),
        window_len_ns: 1_000_000_000,
        cone_lib_version: 1,
        taint_ttl_windows: 300,
    };
    write("store_files", "store-meta", &meta.encode());
    // A packed block of two edges with the three ids the fuzz target unpacks with.
    let edge = |d: u8| Edge {
        kind: EdgeKind::ProcToFile,
        src: [1; 16],
        dst: [d; 16],
        flags: edge_flags::WRITE,
        first_t_ns: -5,
        last_t_ns: 900,
        count: 3,
    };
    let leaves = [edge(2).encode(), edge(3).encode()];
    let ids = ritma_schemas::packed::IdIndex::of_leaves(&leaves).unwrap();
    let block =
        ritma_schemas::packed::PackedBlock::pack(1_700_000_000, 1, 1000, &leaves, &ids).unwrap();
    write("store_files", "block", &block.encode());
    write(
        "store_files",
        "id-table",
        &ids.table(1_700_000_000).encode(),
    );
    trace_frame_seeds();
    eprintln!("seeds written under {}/seeds", env!("CARGO_MANIFEST_DIR"));
}

/// One `trace_frames` input per frame kind, taken from a trace the writer made: kind,
/// run, first seq, count, then the frame's payload.
fn trace_frame_seeds() {
    use ritma_sources::raw::{RawBody, RawEvent, Task};
    use ritma_sources::trace::{
        BaselineStatus, ExeEntry, TraceWriter, FILE_MAGIC, FRAME_HEADER_LEN,
    };
    let path = std::env::temp_dir().join(format!("ritma-seeds-{}.rtrace", std::process::id()));
    let mut w = TraceWriter::create(&path).unwrap();
    let meta = RunMeta {
        node: "n1".into(),
        boot_id: [1; 16],
        sensor_version: "fuzz".into(),
        config_digest: [2; 32],
        window_len_ns: 1_000_000_000,
        wall_minus_mono_ns: 1_700_000_000_000_000_000,
        first_seq: 0,
        started_wall_ns: 1_700_000_000_000_000_000,
    };
    let run = w.add_run(&meta).unwrap();
    let task = Task {
        pid: 100,
        tid: 100,
        comm: b"sh".to_vec(),
        ..Task::default()
    };
    let event = |seq: u64, body: RawBody| RawEvent {
        seq,
        mono_ns: 1_000 + seq,
        task: task.clone(),
        body,
    };
    w.append_cgroups(run, &[(9, b"/system.slice/a.service".to_vec())])
        .unwrap();
    w.append_batch(
        run,
        &[
            event(
                0,
                RawBody::Exec {
                    filename: b"/tmp/x".to_vec(),
                    argv: vec![b"x".to_vec()],
                    argv_truncated: false,
                    exe_dev: 1,
                    exe_ino: 2,
                    given: None,
                    stdio_net: 0,
                },
            ),
            event(
                1,
                RawBody::Open {
                    path: b"/etc/shadow".to_vec(),
                    flags: 0,
                    mode: 0,
                    result: 3,
                    given: None,
                },
            ),
            event(2, RawBody::Exit { code: 0 }),
        ],
    )
    .unwrap();
    w.append_loss(run, LossReason::QueueShed, 4).unwrap();
    w.append_clock(run, 9_000).unwrap();
    let hash = w.append_blob(run, b"abc").unwrap();
    w.append_exes(
        run,
        &[ExeEntry {
            dev: 1,
            ino: 2,
            hash,
            baseline: BaselineStatus::Listed,
        }],
    )
    .unwrap();
    w.append_health(
        run,
        HealthKind::ProbeDetached,
        "exit_openat",
        9_500,
        Some(1),
    )
    .unwrap();
    drop(w);
    let bytes = fs::read(&path).unwrap();
    let _ = fs::remove_file(&path);
    let mut at = FILE_MAGIC.len();
    let mut n = 0;
    while at < bytes.len() {
        let h = &bytes[at..at + FRAME_HEADER_LEN];
        let be32 = |i: usize| u32::from_be_bytes(h[i..i + 4].try_into().unwrap());
        let comp = &bytes[at + FRAME_HEADER_LEN..at + FRAME_HEADER_LEN + be32(24) as usize];
        let raw = zstd_decompress(comp, be32(20) as usize);
        let mut seed = vec![h[4], h[7], h[15]];
        seed.extend(be32(16).to_be_bytes());
        seed.extend(raw);
        write("trace_frames", &format!("frame-{n}-kind-{}", h[4]), &seed);
        at += FRAME_HEADER_LEN + comp.len();
        n += 1;
    }
}

fn zstd_decompress(comp: &[u8], len: usize) -> Vec<u8> {
    zstd::bulk::decompress(comp, len).unwrap()
}
