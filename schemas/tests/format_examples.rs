//! Keeps the worked examples in docs/FORMAT.md true: every block marked
//! `<!-- example:NAME -->` must equal what the code produces for NAME.
//! Run with `RITMA_BLESS=1` to rewrite the blocks after a deliberate format change.

use ritma_schemas::catalog::*;
use ritma_schemas::hash::Domain;
use ritma_schemas::index::*;
use ritma_schemas::keys::sign_key_event;
use ritma_schemas::merkle::{consistency_proof, inclusion_proof, Blake3Tree, Frontier, TreeHash};
use ritma_schemas::note::{Checkpoint, NoteSigner};
use ritma_schemas::records::*;
use std::collections::BTreeMap;
use std::fmt::Write;

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Hex wrapped at 64 characters, so long encodings stay readable.
fn wrapped(b: &[u8]) -> String {
    let h = hex(b);
    h.as_bytes()
        .chunks(64)
        .map(|c| std::str::from_utf8(c).unwrap())
        .collect::<Vec<_>>()
        .join("\n")
}

fn seq16(start: u8) -> [u8; 16] {
    std::array::from_fn(|i| start + i as u8)
}

fn seq32(start: u8) -> [u8; 32] {
    std::array::from_fn(|i| start.wrapping_add(i as u8))
}

fn examples() -> BTreeMap<&'static str, String> {
    let mut ex = BTreeMap::new();

    let mut keys = String::new();
    for d in [
        Domain::MerkleLeaf,
        Domain::MerkleNode,
        Domain::Dict,
        Domain::Actor,
        Domain::State,
    ] {
        writeln!(keys, "{:<23} {}", d.name(), hex(d.key())).unwrap();
    }
    ex.insert("domain-keys", keys.trim_end().to_owned());

    let passwd = DictEntry::new(DictKind::Path, b"/etc/passwd");
    ex.insert(
        "dict-entry",
        format!(
            "id    {}\nbytes {}",
            hex(&passwd.id),
            wrapped(&passwd.encode())
        ),
    );

    let boot_id = seq16(0);
    let actor_id = ActorRecord::id_of("web-1", &boot_id, 1234, 5_000_000_000);
    ex.insert("actor-id", hex(&actor_id));

    let atom = EventAtom {
        seq: 1_000_000,
        t_ns: 250_000_000,
        event_type: EventType::Open,
        actor: actor_id,
        object: passwd.id,
        flags: atom_flags::READ,
        arg_hash: None,
        payload_ref: None,
        given: Vec::new(),
    };
    ex.insert("event-atom", wrapped(&atom.encode()));

    let late = EventAtom {
        t_ns: -20_000_000,
        flags: atom_flags::READ | atom_flags::LATE,
        arg_hash: Some(seq32(0xa0)),
        ..atom.clone()
    };
    ex.insert("event-atom-late", wrapped(&late.encode()));

    // An open of `../etc//passwd` from /tmp: the object is the canonical /etc/passwd, the
    // given path its own entry.
    let given = DictEntry::new(DictKind::Path, b"../etc//passwd");
    let given_atom = EventAtom {
        given: vec![Some(given.id)],
        ..atom.clone()
    };
    ex.insert("event-atom-given", wrapped(&given_atom.encode()));

    let actor = ActorRecord {
        actor: actor_id,
        pid: 1234,
        ppid: 1,
        parent: None,
        start_ns: 5_000_000_000,
        uid: 0,
        gid: 0,
        euid: 0,
        exe: Some(DictEntry::id_of(DictKind::Path, b"/usr/bin/cat")),
        exe_hash: None,
        comm: DictEntry::id_of(DictKind::Comm, b"cat"),
        cgroup_id: 4242,
        mnt_ns: 4026531841,
        pid_ns: 4026531836,
        net_ns: 4026531840,
        container: None,
        service: Some(DictEntry::id_of(DictKind::Service, b"nginx.service")),
    };
    ex.insert("actor-record", wrapped(&actor.encode()));

    let edge = Edge {
        kind: EdgeKind::ProcToFile,
        src: actor_id,
        dst: passwd.id,
        flags: edge_flags::READ,
        first_t_ns: 250_000_000,
        last_t_ns: 260_000_000,
        count: 2,
    };
    ex.insert(
        "edge",
        format!(
            "key   {}\nbytes {}",
            hex(&edge.key()),
            wrapped(&edge.encode())
        ),
    );

    let cone = ConeInstance {
        cone_id: "download_exec_tmp".into(),
        cone_version: 1,
        t_start_ns: 100_000_000,
        first_seq: 999_990,
        last_seq: 1_000_000,
        count: 1,
        bindings: vec![
            ("f".into(), DictEntry::id_of(DictKind::Path, b"/tmp/x")),
            ("p".into(), actor_id),
        ],
        exceptions: vec![],
    };
    ex.insert("cone-instance", wrapped(&cone.encode()));

    let window = WindowRecord {
        node: "web-1".into(),
        window: 1_763_884_800,
        window_len_ns: 1_000_000_000,
        first_seq: 1_000_000,
        event_count: 1,
        dict_count: 1,
        actor_count: 1,
        edge_count: 1,
        cone_count: 0,
        health_count: 0,
        lost: vec![(LossReason::KernelRingbufFull, 3)],
        late_events: 0,
        capture_mode: CaptureMode::Thin,
        cone_lib_version: 1,
        window_root: seq32(0x10),
        state: None,
    };
    ex.insert("window-record", wrapped(&window.encode()));

    let hour = HourSeal {
        node: "web-1".into(),
        hour: 489_968,
        first_window: 1_763_884_800,
        last_window: 1_763_888_399,
        log_size: 7200,
        log_root: seq32(0x20),
        prev: Some(PrevHour {
            hour: 489_967,
            log_size: 3600,
            log_root: seq32(0x40),
        }),
        consistency: vec![seq32(0x60)],
    };
    ex.insert("hour-seal", wrapped(&hour.encode()));

    // web-1's first hour, 2026-11-01T00 (1 s windows): leaves 0..3600 of the node log.
    let first = 498_192 * 3600;
    let deletion = HourDeletion {
        node: "web-1".into(),
        hour: 498_192,
        first_window: first,
        last_window: first + 3599,
        log_start: 0,
        subtrees: (0..ritma_schemas::merkle::aligned_ranges(0, 3600).len() as u8)
            .map(|i| [i; 32])
            .collect(),
        events: 181_000,
        seq_range: Some((9_000, 190_123)),
        lost: vec![(LossReason::KernelRingbufFull, 12)],
        keep_ns: 30 * 86_400 * 1_000_000_000,
        deleted_wall_ns: 1_796_169_600_000_000_000,
        log_size: 2_595_700,
        leaves: 3600,
    };
    ex.insert("hour-deletion", wrapped(&deletion.encode()));

    // Case IR-7 of web-1: two windows frozen, unfreezing needs alice's approval.
    let alice = ritma_schemas::note::NoteSigner::from_seed("alice", [0xa1; 32]).unwrap();
    let entry = |wall_ns: u64, action, detail: &str| ritma_schemas::case::CaseEntry {
        wall_ns,
        user: "jo".into(),
        action,
        detail: detail.into(),
        approvals: vec![],
    };
    let case = ritma_schemas::case::CaseManifest {
        node: "web-1".into(),
        case: "IR-7".into(),
        title: "ssh key theft".into(),
        approvers: vec![("alice".into(), alice.verifier().public_key())],
        approvals_needed: 1,
        state: ritma_schemas::case::CaseState::Frozen,
        windows: vec![(first + 60, first + 61)],
        log: vec![
            entry(
                1_796_169_600_000_000_000,
                ritma_schemas::case::CaseAction::Open,
                "",
            ),
            entry(
                1_796_169_601_000_000_000,
                ritma_schemas::case::CaseAction::Add,
                "2 windows",
            ),
            entry(
                1_796_169_602_000_000_000,
                ritma_schemas::case::CaseAction::Freeze,
                "",
            ),
        ],
        log_size: 2_595_700,
    };
    ex.insert("case-manifest", wrapped(&case.encode()));

    let export = ritma_schemas::case::CaseExport {
        node: "web-1".into(),
        case: "IR-7".into(),
        first_leaves: vec![60],
        log_size: 100,
        gaps: vec![
            (0, 60, vec![[1; 32], [2; 32], [3; 32], [4; 32]]),
            (62, 38, vec![[5; 32], [6; 32], [7; 32]]),
        ],
        exported_wall_ns: 1_796_169_700_000_000_000,
        manifest: seq32(0x30),
    };
    ex.insert("case-export", wrapped(&export.encode()));

    let run = RunMeta {
        node: "web-1".into(),
        boot_id,
        sensor_version: "ritma 0.1.0".into(),
        config_digest: seq32(0x80),
        window_len_ns: 1_000_000_000,
        wall_minus_mono_ns: 1_763_800_000_000_000_000,
        first_seq: 0,
        started_wall_ns: 1_763_884_800_000_000_000,
    };
    ex.insert("run-meta", wrapped(&run.encode()));

    let meta = StoreMeta {
        format_version: 4,
        node: "web-1".into(),
        window_len_ns: 1_000_000_000,
        cone_lib_version: 3,
        taint_ttl_windows: 300,
    };
    assert_eq!(StoreMeta::decode(&meta.encode()).unwrap(), meta);
    ex.insert("store-meta", wrapped(&meta.encode()));

    let health = HealthRecord {
        node: "web-1".into(),
        t_wall_ns: 1_763_884_801_000_000_000,
        kind: HealthKind::ProbeDetached,
        subject: "exit_openat".into(),
        window: 1_763_884_801,
        lost: Some(17),
    };
    ex.insert("health-record", wrapped(&health.encode()));

    // Merkle: three leaves "a", "b", "c".
    let leaves: Vec<_> = [b"a", b"b", b"c"]
        .iter()
        .map(|d| Blake3Tree::leaf(*d))
        .collect();
    let mut f = Frontier::new();
    for l in &leaves {
        f.push::<Blake3Tree>(*l);
    }
    let mut m = String::new();
    writeln!(m, "empty root  {}", hex(&Blake3Tree::empty())).unwrap();
    for (i, l) in leaves.iter().enumerate() {
        writeln!(m, "leaf {i}      {}", hex(l)).unwrap();
    }
    writeln!(
        m,
        "node(0,1)   {}",
        hex(&Blake3Tree::node(&leaves[0], &leaves[1]))
    )
    .unwrap();
    writeln!(m, "root (3)    {}", hex(&f.root::<Blake3Tree>())).unwrap();
    for p in inclusion_proof::<Blake3Tree, _>(&leaves[..], 2).unwrap() {
        writeln!(m, "inclusion proof of leaf 2: {}", hex(&p)).unwrap();
    }
    for p in consistency_proof::<Blake3Tree, _>(&leaves[..], 2).unwrap() {
        writeln!(m, "consistency proof 2 -> 3:  {}", hex(&p)).unwrap();
    }
    ex.insert("merkle", m.trim_end().to_owned());

    // Signing: a fixed seed, never a real key.
    let signer = NoteSigner::from_seed("ritma/web-1", [7u8; 32]).unwrap();
    let v = signer.verifier();
    ex.insert(
        "keys",
        format!(
            "seed        {}\npublic key  {}\nkey id      {:08x}\nvkey        {}\nprivate     {}",
            hex(&[7u8; 32]),
            hex(&v.public_key()),
            v.key_id(),
            v.to_vkey(),
            signer.to_private_key_text()
        ),
    );
    let note = Checkpoint::for_node("web-1", 3, f.root::<Blake3Tree>())
        .unwrap()
        .sign(&signer)
        .unwrap();
    ex.insert("checkpoint", note.trim_end().to_owned());

    // That checkpoint cosigned by witness.example/w1 (seed 05…05) at 2025-11-23T08:00:00Z.
    let witness =
        ritma_schemas::cosignature::Cosigner::from_seed("witness.example/w1", [5; 32]).unwrap();
    let cosigned = witness.cosign(&note, 1_763_884_800).unwrap();
    assert_eq!(witness.verifier().verify(&cosigned).unwrap(), 1_763_884_800);
    ex.insert(
        "cosigned-checkpoint",
        format!(
            "witness vkey {}\n{}",
            witness.verifier().to_vkey(),
            cosigned.trim_end()
        ),
    );

    let key_event = KeyEvent {
        node: "web-1".into(),
        kind: KeyEventKind::Add,
        public_key: v.public_key(),
        log_size: 0,
        previous_key: None,
    };
    ex.insert("key-event", wrapped(&key_event.encode()));
    ex.insert(
        "signed-key-event",
        wrapped(&sign_key_event(&key_event, &signer).encode()),
    );

    // An hour's index: two events in second 1 763 884 800 (window 0, leaves 3-4) and a
    // late one of that second sealed in window 1 (leaf 2).
    let time = TimeIndex {
        node: "web-1".into(),
        hour: 489_968,
        bucket_ns: 1_000_000_000,
        buckets: vec![TimeBucket {
            bucket: 1_763_884_800,
            events: 3,
            spans: vec![
                LeafSpan {
                    window_index: 0,
                    first_leaf: 3,
                    last_leaf: 4,
                },
                LeafSpan {
                    window_index: 1,
                    first_leaf: 2,
                    last_leaf: 2,
                },
            ],
        }],
    };
    ex.insert("time-index", wrapped(&time.encode()));
    let cone_refs = ConeRefs {
        node: "web-1".into(),
        hour: 489_968,
        cones: vec![("exec_from_tmp".into(), vec![(0, 9), (7, 41)])],
    };
    ex.insert("cone-refs", wrapped(&cone_refs.encode()));
    let edge_refs = EdgeRefs {
        node: "web-1".into(),
        hour: 489_968,
        part: 0,
        entities: vec![
            (EdgeRefs::key_of(&seq16(0x10)), vec![0, 7]),
            (EdgeRefs::key_of(&seq16(0x20)), vec![7]),
        ],
    };
    ex.insert("edge-refs", wrapped(&edge_refs.encode()));
    let edge = Edge {
        kind: EdgeKind::ProcToFile,
        src: seq16(0x10),
        dst: seq16(0x20),
        flags: edge_flags::WRITE,
        first_t_ns: 1000,
        last_t_ns: 2000,
        count: 2,
    };
    // The window's leaves are that edge alone: its id table is src then dst.
    let edge_ids = ritma_schemas::packed::IdIndex::of_leaves(&[edge.encode()]).unwrap();
    let part = EdgeRun {
        node: "web-1".into(),
        hour: 489_968,
        part: 0,
        edges: vec![(489_968 * 3600 + 7, 0, edge.encode())],
    }
    .pack(|_| Some(&edge_ids))
    .unwrap();
    ex.insert("edge-part", wrapped(&part.encode()));
    // A window of two leaves: that edge, and a read of file 30… by the same actor once.
    let read = Edge {
        dst: seq16(0x30),
        flags: edge_flags::READ,
        first_t_ns: 1500,
        last_t_ns: 1500,
        count: 1,
        ..edge.clone()
    };
    let leaves = [edge.encode(), read.encode()];
    let ids = ritma_schemas::packed::IdIndex::of_leaves(&leaves).unwrap();
    let table = ids.table(1_763_884_807);
    let block =
        ritma_schemas::packed::PackedBlock::pack(1_763_884_807, 0, 0, &leaves, &ids).unwrap();
    ex.insert(
        "block",
        format!(
            "IdTable {}\nBlock   {}",
            wrapped(&table.encode()).replace('\n', "\n        "),
            wrapped(&block.encode()).replace('\n', "\n        ")
        ),
    );
    let taint = TaintIndex {
        node: "web-1".into(),
        hour: 489_968,
        ttl_windows: 300,
        changes: vec![
            TaintEntry {
                window_index: 3,
                seed: seq16(0x10),
                entity: seq16(0x20),
                enters: true,
            },
            TaintEntry {
                window_index: 9,
                seed: seq16(0x10),
                entity: seq16(0x20),
                enters: false,
            },
        ],
    };
    ex.insert("taint-index", wrapped(&taint.encode()));
    // Day 20415 (2025-11-23): hour 489 968 sealed (two windows, three events by two
    // actors, one cone match, one event lost), hour 489 969 deleted by retention.
    let catalog = DayCatalog {
        node: "web-1".into(),
        day: 20_415,
        hours: vec![
            CatalogHour {
                hour: 489_968,
                state: HourState::Sealed,
                first_window: 1_763_884_800,
                last_window: 1_763_884_801,
                events: 3,
                seq_range: Some((40, 42)),
                lost: vec![(LossReason::KernelRingbufFull, 1)],
                contents: Some(HourContents {
                    late_events: 1,
                    capture_mode: CaptureMode::Thin,
                    actors: 2,
                    edges: 2,
                    health: 0,
                    event_types: vec![(EventType::Exec, 1), (EventType::Open, 2)],
                    cones: vec![("exec_from_tmp".into(), 1)],
                }),
            },
            CatalogHour {
                hour: 489_969,
                state: HourState::Deleted,
                first_window: 1_763_884_802,
                last_window: 1_763_884_802,
                events: 0,
                seq_range: None,
                lost: vec![],
                contents: None,
            },
        ],
    };
    ex.insert("day-catalog", wrapped(&catalog.encode()));
    let tally = |files, bytes| FileTally { files, bytes };
    let account = DayAccount {
        node: "web-1".into(),
        day: 20_415,
        hours: vec![AccountHour {
            hour: 489_968,
            events: 3,
            stored: [
                tally(4, 812),
                tally(2, 301),
                tally(2, 410),
                tally(6, 530),
                tally(1, 95),
                tally(0, 0),
            ],
        }],
    };
    ex.insert("day-account", wrapped(&account.encode()));

    // Shipping (§12): a window envelope of two small files, the one part it travels
    // in, and the shipper's cursor after it.
    let envelope = ritma_schemas::ship::ShipEnvelope {
        node: "web-1".into(),
        stream_seq: 7,
        kind: ritma_schemas::ship::ShipKind::Window,
        unit: 1_763_884_801,
        files: vec![
            ritma_schemas::ship::ShipFile {
                path: "windows/2025/11/23/08/micro/w0001.cbor".into(),
                bytes: b"record".to_vec(),
            },
            ritma_schemas::ship::ShipFile {
                path: "windows/2025/11/23/08/micro/w0001.sig".into(),
                bytes: b"note".to_vec(),
            },
        ],
    };
    let parts = envelope.to_parts(4096);
    assert_eq!(parts.len(), 1);
    let cursor = ritma_schemas::ship::ShipCursor {
        topic: "ritma.evidence".into(),
        next_seq: 8,
        next_window: Some(1_763_884_802),
        hour: None,
        setup: Some(seq32(0x40)),
    };
    ex.insert(
        "ship",
        format!(
            "envelope ({} bytes)\n{}\npart\n{}\ncursor\n{}",
            envelope.encode().len(),
            wrapped(&envelope.encode()),
            wrapped(&parts[0].encode()),
            wrapped(&cursor.encode())
        ),
    );
    ex
}

/// The index examples decode strictly back to their values.
#[test]
fn index_example_encodings_decode() {
    let ex = examples();
    let bytes = |name: &str| hex::decode(ex[name].replace('\n', "")).unwrap();
    assert_eq!(
        TimeIndex::decode(&bytes("time-index")).unwrap().encode(),
        bytes("time-index")
    );
    assert_eq!(
        ConeRefs::decode(&bytes("cone-refs")).unwrap().encode(),
        bytes("cone-refs")
    );
    assert_eq!(
        EdgeRefs::decode(&bytes("edge-refs")).unwrap().encode(),
        bytes("edge-refs")
    );
    assert_eq!(
        EdgePart::decode(&bytes("edge-part")).unwrap().encode(),
        bytes("edge-part")
    );
    let (table, packed) = ex["block"].split_once("\nBlock").unwrap();
    let unwrap_hex =
        |s: &str| hex::decode(s.replace("IdTable", "").replace([' ', '\n'], "")).unwrap();
    let table = ritma_schemas::packed::IdTable::decode(&unwrap_hex(table)).unwrap();
    let packed = unwrap_hex(packed);
    let leaves = ritma_schemas::packed::PackedBlock::decode(&packed)
        .unwrap()
        .unpack(&table, Some(&mut 0))
        .unwrap();
    assert_eq!(leaves.len(), 2);
    assert!(leaves.iter().all(|l| Edge::decode(l).is_ok()));
    assert_eq!(
        TaintIndex::decode(&bytes("taint-index")).unwrap().encode(),
        bytes("taint-index")
    );
    assert_eq!(
        DayCatalog::decode(&bytes("day-catalog")).unwrap().encode(),
        bytes("day-catalog")
    );
    assert_eq!(
        DayAccount::decode(&bytes("day-account")).unwrap().encode(),
        bytes("day-account")
    );
}

#[test]
fn format_md_examples_match_the_code() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/FORMAT.md");
    let ex = examples()
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
    ritma_schemas::format_doc::check_examples(&path, "schemas", &ex);
}

/// Every example encoding decodes strictly back to its value (the spec's bytes are valid).
#[test]
fn example_encodings_decode() {
    let ex = examples();
    let records = [
        "dict-entry",
        "event-atom",
        "event-atom-late",
        "event-atom-given",
        "actor-record",
        "edge",
        "cone-instance",
        "window-record",
        "hour-seal",
        "hour-deletion",
        "case-manifest",
        "case-export",
        "key-event",
        "run-meta",
        "health-record",
        "signed-key-event",
    ];
    for name in records {
        let text = &ex[name];
        // Examples with a labelled id or key give the encoding after `bytes `.
        let hex_text = text.split_once("bytes ").map_or(text.as_str(), |(_, b)| b);
        let b = hex::decode(hex_text.replace('\n', "")).unwrap_or_else(|e| panic!("{name}: {e}"));
        let r = AnyRecord::decode(&b).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(r.encode(), b, "{name}");
    }
}
