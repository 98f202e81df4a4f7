//! Record encodings: round trips over generated values of every record type, an
//! independent CBOR implementation (ciborium) agreeing on the bytes, single-bit and
//! truncation mutations, and one test per rejection rule of FORMAT.md §1 and §3 with the
//! exact `DecodeErrorKind` (and the field it is reported against) asserted.

use std::fmt::Debug;

use ciborium::value::{Integer, Value};
use proptest::collection::{btree_map, btree_set, vec};
use proptest::prelude::*;
use proptest::sample::select;
use ritma_schemas::cbor::{DecodeError, DecodeErrorKind, Encoder};
use ritma_schemas::records::*;

// ---------------------------------------------------------------------------------------
// Strategies: arbitrary *valid* values of every record type.
// ---------------------------------------------------------------------------------------

/// Both sides of every CBOR width boundary (23/24, 255/256, 65535/65536, 2^32-1/2^32).
const U64_EDGES: [u64; 11] = [
    0,
    23,
    24,
    0xff,
    0x100,
    0xffff,
    0x1_0000,
    0xffff_ffff,
    0x1_0000_0000,
    u64::MAX - 1,
    u64::MAX,
];

/// Unsigned integers spread over every CBOR width (immediate, 1, 2, 4 and 8 bytes).
fn u64s() -> impl Strategy<Value = u64> {
    prop_oneof![
        1 => 0u64..24,
        1 => 24u64..=0xff,
        1 => 0x100u64..=0xffff,
        1 => 0x1_0000u64..=0xffff_ffff,
        1 => any::<u64>(),
        2 => select(&U64_EDGES[..]),
    ]
}

/// Signed integers spread over every width of both major types, and their edges
/// (-1 - n for each unsigned edge n, i.e. -24/-25, -256/-257 …).
fn i64s() -> impl Strategy<Value = i64> {
    prop_oneof![
        1 => -24i64..24,
        1 => -0x100i64..0x100,
        1 => -0x1_0000i64..0x1_0000,
        1 => -0x1_0000_0000i64..0x1_0000_0000,
        1 => any::<i64>(),
        2 => (select(&U64_EDGES[..9]), any::<bool>())
            .prop_map(|(n, neg)| if neg { -1 - n as i64 } else { n as i64 }),
        1 => Just(i64::MIN),
        1 => Just(i64::MAX),
    ]
}

fn u32s() -> impl Strategy<Value = u32> {
    prop_oneof![
        0u32..24,
        24u32..=0xffff,
        any::<u32>(),
        select(&U64_EDGES[..8]).prop_map(|n| n as u32),
    ]
}

fn id16() -> impl Strategy<Value = [u8; 16]> {
    any::<[u8; 16]>()
}

fn h32() -> impl Strategy<Value = [u8; 32]> {
    any::<[u8; 32]>()
}

fn positive() -> impl Strategy<Value = u64> {
    u64s().prop_map(|n| n.max(1))
}

/// Valid node names: `[A-Za-z0-9._-]{1,64}`, not starting with `.`.
fn node_name() -> impl Strategy<Value = String> {
    prop_oneof![
        "[A-Za-z0-9_-][A-Za-z0-9._-]{0,63}",
        "[a-z]{64}",
        Just("-".to_owned()),
        Just("a.".to_owned()),
    ]
}

/// Any Unicode text of `min..=max` UTF-8 bytes (multi-byte characters included).
fn text_bytes(min: usize, max: usize) -> impl Strategy<Value = String> {
    vec(any::<char>(), min..=max).prop_map(move |cs| {
        let mut s = String::new();
        for c in cs {
            if s.len() + c.len_utf8() > max {
                break;
            }
            s.push(c);
        }
        s
    })
}

fn dict_entry() -> impl Strategy<Value = DictEntry> {
    (
        id16(),
        select(DictKind::ALL),
        any::<bool>(),
        prop_oneof![
            8 => vec(any::<u8>(), 0..64),
            1 => vec(any::<u8>(), (MAX_DICT_VALUE_LEN - 40)..=MAX_DICT_VALUE_LEN),
        ],
        h32(),
    )
        .prop_map(|(id, kind, hashed, value, hash)| DictEntry {
            id,
            kind,
            hashed,
            value: if hashed { hash.to_vec() } else { value },
        })
}

fn event_atom() -> impl Strategy<Value = EventAtom> {
    (
        u64s(),
        i64s(),
        select(EventType::ALL),
        id16(),
        id16(),
        0..=atom_flags::ALL,
        proptest::option::of(h32()),
        proptest::option::of(h32()),
    )
        .prop_map(
            |(seq, t_ns, event_type, actor, object, flags, arg_hash, payload_ref)| EventAtom {
                seq,
                t_ns,
                event_type,
                actor,
                object,
                // stdio_net is a flag of exec alone.
                flags: if event_type == EventType::Exec {
                    flags
                } else {
                    flags & !atom_flags::STDIO_NET
                },
                arg_hash,
                payload_ref,
                given: Vec::new(),
            },
        )
}

fn actor_record() -> impl Strategy<Value = ActorRecord> {
    use proptest::option::of;
    (
        (
            id16(),
            u32s(),
            u32s(),
            of(id16()),
            u64s(),
            u32s(),
            u32s(),
            u32s(),
        ),
        (
            of(id16()),
            of(h32()),
            id16(),
            u64s(),
            u64s(),
            u64s(),
            u64s(),
        ),
        (of(id16()), of(id16())),
    )
        .prop_map(
            |(
                (actor, pid, ppid, parent, start_ns, uid, gid, euid),
                (exe, exe_hash, comm, cgroup_id, mnt_ns, pid_ns, net_ns),
                (container, service),
            )| ActorRecord {
                actor,
                pid,
                ppid,
                parent,
                start_ns,
                uid,
                gid,
                euid,
                exe,
                exe_hash,
                comm,
                cgroup_id,
                mnt_ns,
                pid_ns,
                net_ns,
                container,
                service,
            },
        )
}

fn edge() -> impl Strategy<Value = Edge> {
    (
        select(EdgeKind::ALL),
        id16(),
        id16(),
        any::<u8>(),
        i64s(),
        i64s(),
        positive(),
    )
        .prop_map(|(kind, src, dst, flags, a, b, count)| Edge {
            kind,
            src,
            dst,
            flags,
            first_t_ns: a.min(b),
            last_t_ns: a.max(b),
            count,
        })
}

fn cone_instance() -> impl Strategy<Value = ConeInstance> {
    (
        text_bytes(1, MAX_CONE_NAME_LEN),
        u32s(),
        i64s(),
        u64s(),
        u64s(),
        u64s(),
        btree_map(
            text_bytes(0, MAX_CONE_NAME_LEN),
            id16(),
            0..=MAX_CONE_BINDINGS,
        ),
        btree_set(u64s(), 0..=MAX_CONE_EXCEPTIONS),
    )
        .prop_map(
            |(cone_id, cone_version, t_start_ns, a, b, count, bindings, exceptions)| {
                ConeInstance {
                    cone_id,
                    cone_version,
                    t_start_ns,
                    first_seq: a.min(b),
                    last_seq: a.max(b),
                    count,
                    // BTreeMap<String, _> iterates in byte order of the names: the canonical order.
                    bindings: bindings.into_iter().collect(),
                    exceptions: exceptions.into_iter().collect(),
                }
            },
        )
}

fn window_record() -> impl Strategy<Value = WindowRecord> {
    (
        (
            node_name(),
            u64s(),
            positive(),
            u64s(),
            u64s(),
            u64s(),
            u64s(),
        ),
        (
            u64s(),
            u64s(),
            u64s(),
            vec(proptest::option::of(positive()), LossReason::ALL.len()),
        ),
        (u64s(), select(CaptureMode::ALL), u32s(), h32()),
    )
        .prop_map(
            |(
                (node, window, window_len_ns, first_seq, event_count, dict_count, actor_count),
                (edge_count, cone_count, health_count, lost),
                (late_events, capture_mode, cone_lib_version, window_root),
            )| WindowRecord {
                node,
                window,
                window_len_ns,
                first_seq,
                event_count,
                dict_count,
                actor_count,
                edge_count,
                cone_count,
                health_count,
                lost: LossReason::ALL
                    .iter()
                    .zip(lost)
                    .filter_map(|(r, n)| n.map(|n| (*r, n)))
                    .collect(),
                late_events,
                capture_mode,
                cone_lib_version,
                window_root,
                state: None,
            },
        )
}

fn hour_seal() -> impl Strategy<Value = HourSeal> {
    (
        node_name(),
        u64s(),
        u64s(),
        u64s(),
        u64s(),
        h32(),
        proptest::option::of((
            u64s(),
            u64s(),
            h32(),
            prop_oneof![
                8 => vec(h32(), 0..=8),
                1 => vec(h32(), (MAX_PROOF_HASHES - 4)..=MAX_PROOF_HASHES),
            ],
        )),
    )
        .prop_map(|(node, hour, w1, w2, log_size, log_root, prev)| {
            let base = HourSeal {
                node,
                hour,
                first_window: w1.min(w2),
                last_window: w1.max(w2),
                log_size,
                log_root,
                prev: None,
                consistency: Vec::new(),
            };
            match prev {
                None => base,
                Some((ph, ps, pr, consistency)) => {
                    // prev.hour < hour and prev.log_size <= log_size.
                    let hour = hour.max(1);
                    let ph = if ph < hour { ph } else { ph % hour };
                    let ps = if ps <= log_size {
                        ps
                    } else {
                        ps % (log_size + 1)
                    };
                    HourSeal {
                        hour,
                        prev: Some(PrevHour {
                            hour: ph,
                            log_size: ps,
                            log_root: pr,
                        }),
                        consistency,
                        ..base
                    }
                }
            }
        })
}

fn key_event() -> impl Strategy<Value = KeyEvent> {
    (node_name(), select(KeyEventKind::ALL), h32(), u64s(), h32()).prop_map(
        |(node, kind, public_key, log_size, prev)| KeyEvent {
            node,
            kind,
            public_key,
            log_size,
            previous_key: (kind == KeyEventKind::Rotate).then_some(prev),
        },
    )
}

/// Every divisor of one hour in ns: 3.6e12 = 2^13 · 3^2 · 5^11.
fn hour_divisor() -> impl Strategy<Value = u64> {
    (0u32..=13, 0u32..=2, 0u32..=11).prop_map(|(a, b, c)| 2u64.pow(a) * 3u64.pow(b) * 5u64.pow(c))
}

fn run_meta() -> impl Strategy<Value = RunMeta> {
    (
        node_name(),
        id16(),
        text_bytes(0, 128),
        h32(),
        hour_divisor(),
        i64s(),
        u64s(),
        u64s(),
    )
        .prop_map(
            |(
                node,
                boot_id,
                sensor_version,
                config_digest,
                window_len_ns,
                wall_minus_mono_ns,
                first_seq,
                started_wall_ns,
            )| RunMeta {
                node,
                boot_id,
                sensor_version,
                config_digest,
                window_len_ns,
                wall_minus_mono_ns,
                first_seq,
                started_wall_ns,
            },
        )
}

fn health_record() -> impl Strategy<Value = HealthRecord> {
    (
        node_name(),
        u64s(),
        select(HealthKind::ALL),
        text_bytes(0, 256),
        u64s(),
        proptest::option::of(u64s()),
    )
        .prop_map(
            |(node, t_wall_ns, kind, subject, window, lost)| HealthRecord {
                node,
                t_wall_ns,
                kind,
                subject,
                window,
                // What each kind may carry (FORMAT §3.10).
                lost: match kind {
                    HealthKind::ProbeDetached => lost,
                    HealthKind::CaptureStopped => None,
                    _ => Some(0),
                },
            },
        )
}

/// Only probe_detached carries loss: every other `lost` is refused, naming the field.
#[test]
fn a_health_record_with_loss_its_kind_cannot_carry_is_refused() {
    for &kind in HealthKind::ALL {
        for lost in [None, Some(0), Some(1), Some(u64::MAX)] {
            let h = HealthRecord {
                kind,
                lost,
                ..sample_health()
            };
            let allowed = match kind {
                HealthKind::ProbeDetached => true,
                HealthKind::CaptureStopped => lost.is_none(),
                _ => lost == Some(0),
            };
            match HealthRecord::decode(&h.encode()) {
                Ok(back) => assert!(allowed && back == h, "{kind:?} {lost:?}"),
                Err(e) => assert!(!allowed && e.field == "lost", "{kind:?} {lost:?}: {e}"),
            }
        }
    }
}

/// Largest body a SignedRecord may carry.
const MAX_BODY: usize = MAX_SIGNED_LEN - 128;

fn signed_record() -> impl Strategy<Value = SignedRecord> {
    // The body is itself a record (any type but SignedRecord); a health record with a
    // long subject reaches bodies of a few hundred bytes.
    (
        prop_oneof![
            key_event().prop_map(|r| r.encode()),
            event_atom().prop_map(|r| r.encode()),
            window_record().prop_map(|r| r.encode()),
        ],
        u32s(),
        vec(any::<u8>(), 64),
    )
        .prop_map(|(body, key_id, sig)| SignedRecord {
            body,
            key_id,
            signature: sig.try_into().unwrap(),
        })
}

fn hour_deletion() -> impl Strategy<Value = HourDeletion> {
    (
        (node_name(), u64s(), u64s(), 1u64..5000, 0u64..(1 << 40)),
        (
            0u64..1_000_000,
            u64s(),
            vec(proptest::option::of(positive()), LossReason::ALL.len()),
        ),
        (u64s(), u64s(), 0u64..1000),
    )
        .prop_flat_map(
            |((node, hour, first, windows, log_start), (events, lo, lost), (keep, at, after))| {
                let n = ritma_schemas::merkle::aligned_ranges(log_start, windows).len();
                vec(h32(), n).prop_map(move |subtrees| {
                    let lo = lo.min(u64::MAX - 2_000_000);
                    HourDeletion {
                        node: node.clone(),
                        hour,
                        first_window: first.min(u64::MAX - windows),
                        last_window: first.min(u64::MAX - windows) + windows - 1,
                        log_start,
                        subtrees,
                        events,
                        seq_range: (events > 0).then_some((lo, lo + events - 1 + after)),
                        lost: LossReason::ALL
                            .iter()
                            .zip(lost.clone())
                            .filter_map(|(r, n)| n.map(|n| (*r, n)))
                            .collect(),
                        keep_ns: keep,
                        deleted_wall_ns: at,
                        log_size: log_start + windows + after,
                        leaves: windows,
                    }
                })
            },
        )
}

fn case_manifest() -> impl Strategy<Value = ritma_schemas::case::CaseManifest> {
    use ritma_schemas::case::*;
    let approvers = btree_map("[a-z][a-z0-9-]{0,15}", any::<[u8; 32]>(), 1..5).prop_map(|m| {
        m.into_iter()
            .map(|(name, seed)| {
                let s = ritma_schemas::note::NoteSigner::from_seed(&name, seed).unwrap();
                (name, s.verifier().public_key())
            })
            .collect::<Vec<_>>()
    });
    let entry = (
        u64s(),
        "[ -~]{0,20}",
        0usize..6,
        "\\PC{0,40}",
        vec("[ -~]{1,60}", 1..3),
    )
        .prop_map(|(wall_ns, user, action, detail, approvals)| {
            let action = [
                CaseAction::Open,
                CaseAction::Add,
                CaseAction::Freeze,
                CaseAction::Unfreeze,
                CaseAction::Export,
                CaseAction::Close,
            ][action];
            CaseEntry {
                wall_ns,
                user,
                action,
                detail,
                approvals: if action == CaseAction::Unfreeze {
                    approvals
                } else {
                    vec![]
                },
            }
        });
    (
        (node_name(), node_name(), "\\PC{0,30}", approvers),
        (
            0u64..8,
            0usize..3,
            btree_set(u64s(), 0..12),
            vec(entry, 1..5),
            u64s(),
        ),
    )
        .prop_map(
            |((node, case, title, approvers), (m, state, points, log, log_size))| {
                // Points become ranges [a, b] from pairs, merged so they are apart.
                let points: Vec<u64> = points.into_iter().collect();
                let ranges = points
                    .chunks(2)
                    .map(|c| (c[0], *c.last().unwrap()))
                    .collect();
                CaseManifest {
                    node,
                    case,
                    title,
                    approvals_needed: m.clamp(1, approvers.len() as u64),
                    approvers,
                    state: [CaseState::Open, CaseState::Frozen, CaseState::Closed][state],
                    windows: merge_ranges(ranges),
                    log,
                    log_size,
                }
            },
        )
}

fn case_export() -> impl Strategy<Value = ritma_schemas::case::CaseExport> {
    (
        (node_name(), node_name(), 0u64..(1 << 40), 1u64..100_000),
        btree_set(0u64..100_000, 0..8),
        (u64s(), h32()),
    )
        .prop_flat_map(|((node, case, first_window, size), cuts, (at, manifest))| {
            // Cut points inside the log pair up into gaps [a, b).
            let cuts: Vec<u64> = cuts
                .into_iter()
                .map(|c| c % size)
                .collect::<std::collections::BTreeSet<_>>()
                .into_iter()
                .collect();
            let spans: Vec<(u64, u64)> = cuts
                .chunks(2)
                .map(|c| (c[0], c.get(1).copied().unwrap_or(size)))
                .filter(|(a, b)| b > a)
                .collect();
            let roots: Vec<_> = spans
                .iter()
                .map(|&(a, b)| vec(h32(), ritma_schemas::merkle::aligned_ranges(a, b - a).len()))
                .collect();
            (
                roots,
                Just((node, case, first_window, size, spans, at, manifest)),
            )
        })
        .prop_map(
            |(roots, (node, case, _, log_size, spans, exported_wall_ns, manifest))| {
                // Each leaf range between the gaps starts one of the case's window ranges.
                let mut first_leaves = Vec::new();
                let mut at = 0;
                for &(a, b) in &spans {
                    if a > at {
                        first_leaves.push(at);
                    }
                    at = b;
                }
                if at < log_size {
                    first_leaves.push(at);
                }
                ritma_schemas::case::CaseExport {
                    node,
                    case,
                    first_leaves,
                    log_size,
                    gaps: spans
                        .into_iter()
                        .zip(roots)
                        .map(|((a, b), r)| (a, b - a, r))
                        .collect(),
                    exported_wall_ns,
                    manifest,
                }
            },
        )
}

fn any_record() -> impl Strategy<Value = AnyRecord> {
    prop_oneof![
        dict_entry().prop_map(AnyRecord::Dict),
        event_atom().prop_map(AnyRecord::Event),
        actor_record().prop_map(AnyRecord::Actor),
        edge().prop_map(AnyRecord::Edge),
        cone_instance().prop_map(AnyRecord::Cone),
        window_record().prop_map(AnyRecord::Window),
        hour_seal().prop_map(AnyRecord::Hour),
        hour_deletion().prop_map(AnyRecord::Deletion),
        case_manifest().prop_map(AnyRecord::Case),
        case_export().prop_map(AnyRecord::Export),
        key_event().prop_map(AnyRecord::Key),
        run_meta().prop_map(AnyRecord::Run),
        health_record().prop_map(AnyRecord::Health),
        signed_record().prop_map(AnyRecord::Signed),
    ]
}

// ---------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------

/// (TYPE, VERSION, FIELDS, MAX_LEN, NAME) of a record type.
struct Meta {
    ty: u64,
    version: u64,
    fields: u64,
    max_len: usize,
    name: &'static str,
}

fn meta_of<R: Record>() -> Meta {
    Meta {
        ty: R::TYPE,
        version: R::VERSION,
        fields: R::FIELDS,
        max_len: R::MAX_LEN,
        name: R::NAME,
    }
}

fn meta(r: &AnyRecord) -> Meta {
    match r {
        AnyRecord::Dict(_) => meta_of::<DictEntry>(),
        AnyRecord::Event(_) => meta_of::<EventAtom>(),
        AnyRecord::Actor(_) => meta_of::<ActorRecord>(),
        AnyRecord::Edge(_) => meta_of::<Edge>(),
        AnyRecord::Cone(_) => meta_of::<ConeInstance>(),
        AnyRecord::Window(_) => meta_of::<WindowRecord>(),
        AnyRecord::Hour(_) => meta_of::<HourSeal>(),
        AnyRecord::Deletion(_) => meta_of::<HourDeletion>(),
        AnyRecord::Case(_) => meta_of::<ritma_schemas::case::CaseManifest>(),
        AnyRecord::Export(_) => meta_of::<ritma_schemas::case::CaseExport>(),
        AnyRecord::Key(_) => meta_of::<KeyEvent>(),
        AnyRecord::Run(_) => meta_of::<RunMeta>(),
        AnyRecord::Health(_) => meta_of::<HealthRecord>(),
        AnyRecord::Signed(_) => meta_of::<SignedRecord>(),
    }
}

/// Decodes `bytes` with the typed decoder of record type `ty` (1..=11, 21).
fn decode_as(ty: u64, bytes: &[u8]) -> Result<AnyRecord, DecodeError> {
    Ok(match ty {
        1 => AnyRecord::Dict(DictEntry::decode(bytes)?),
        2 => AnyRecord::Event(EventAtom::decode(bytes)?),
        3 => AnyRecord::Actor(ActorRecord::decode(bytes)?),
        4 => AnyRecord::Edge(Edge::decode(bytes)?),
        5 => AnyRecord::Cone(ConeInstance::decode(bytes)?),
        6 => AnyRecord::Window(WindowRecord::decode(bytes)?),
        7 => AnyRecord::Hour(HourSeal::decode(bytes)?),
        8 => AnyRecord::Key(KeyEvent::decode(bytes)?),
        9 => AnyRecord::Run(RunMeta::decode(bytes)?),
        10 => AnyRecord::Health(HealthRecord::decode(bytes)?),
        11 => AnyRecord::Signed(SignedRecord::decode(bytes)?),
        21 => AnyRecord::Deletion(HourDeletion::decode(bytes)?),
        22 => AnyRecord::Case(ritma_schemas::case::CaseManifest::decode(bytes)?),
        23 => AnyRecord::Export(ritma_schemas::case::CaseExport::decode(bytes)?),
        _ => panic!("no record type {ty}"),
    })
}

fn has_only_subset_items(v: &Value) -> bool {
    match v {
        Value::Integer(_) | Value::Bytes(_) | Value::Text(_) | Value::Bool(_) | Value::Null => true,
        Value::Array(items) => items.iter().all(has_only_subset_items),
        _ => false,
    }
}

/// ciborium, an independent general CBOR implementation, reads the bytes as an array
/// starting with the type and version, sees only items of Ritma's subset, and writes
/// them back byte for byte (so our bytes are canonical CBOR).
fn ciborium_agrees(bytes: &[u8], m: &Meta) -> Result<(), TestCaseError> {
    let v: Value = ciborium::de::from_reader(bytes)
        .map_err(|e| TestCaseError::fail(format!("ciborium cannot parse: {e}")))?;
    let Value::Array(items) = &v else {
        return Err(TestCaseError::fail(format!("not an array: {v:?}")));
    };
    prop_assert_eq!(items.len() as u64, m.fields);
    prop_assert_eq!(&items[0], &Value::Integer(Integer::from(m.ty)));
    prop_assert_eq!(&items[1], &Value::Integer(Integer::from(m.version)));
    prop_assert!(
        has_only_subset_items(&v),
        "item outside the subset: {:?}",
        v
    );
    let mut again = Vec::new();
    ciborium::ser::into_writer(&v, &mut again).unwrap();
    prop_assert!(again == bytes, "ciborium re-encodes differently");
    Ok(())
}

fn round_trip<R>(v: &R, wrap: fn(R) -> AnyRecord) -> Result<(), TestCaseError>
where
    R: Record + Clone + PartialEq + Debug,
{
    let bytes = v.encode();
    prop_assert!(
        bytes.len() <= R::MAX_LEN,
        "{} bytes > {}",
        bytes.len(),
        R::MAX_LEN
    );
    let back = R::decode(&bytes).map_err(|e| TestCaseError::fail(format!("{e}")))?;
    prop_assert_eq!(&back, v);
    let any = AnyRecord::decode(&bytes).map_err(|e| TestCaseError::fail(format!("{e}")))?;
    prop_assert_eq!(&any, &wrap(v.clone()));
    prop_assert!(any.encode() == bytes);
    // encode_into appends and leaves what was there.
    let mut buf = vec![0xAB, 0xCD];
    v.encode_into(&mut buf);
    prop_assert!(buf[..2] == [0xAB, 0xCD] && buf[2..] == bytes[..]);
    ciborium_agrees(&bytes, &meta_of::<R>())
}

/// A mutated encoding is rejected, or decodes to a value that re-encodes to exactly it.
/// The re-encode guard (`NotCanonical`) must never be what rejects it: every
/// non-canonical form has to be caught by a specific rule while decoding.
fn check_mutant(ty: u64, m: &[u8]) -> Result<(), TestCaseError> {
    let any = AnyRecord::decode(m);
    let typed = decode_as(ty, m);
    for r in [&any, &typed] {
        match r {
            Ok(v) => prop_assert!(v.encode() == m, "accepted non-canonical {:02x?}", m),
            Err(e) => prop_assert_ne!(
                &e.kind,
                &DecodeErrorKind::NotCanonical,
                "re-encode guard fired on {:02x?}: {}",
                m,
                e
            ),
        }
    }
    if let Ok(t) = &typed {
        prop_assert_eq!(any.as_ref().ok(), Some(t));
    }
    Ok(())
}

/// The CBOR items of a valid record's array, each re-serialized on its own.
fn items(bytes: &[u8]) -> Vec<Vec<u8>> {
    let Value::Array(v) = ciborium::de::from_reader(bytes).unwrap() else {
        panic!("not an array");
    };
    v.iter().map(cbor).collect()
}

fn cbor(v: &Value) -> Vec<u8> {
    let mut out = Vec::new();
    ciborium::ser::into_writer(v, &mut out).unwrap();
    out
}

/// A definite-length array of raw items.
fn assemble(items: &[Vec<u8>]) -> Vec<u8> {
    let mut e = Encoder::new();
    e.array(items.len() as u64);
    let mut b = e.into_bytes();
    for i in items {
        b.extend_from_slice(i);
    }
    b
}

/// `bytes` with array element `idx` replaced by the raw item `raw`.
fn with_field(bytes: &[u8], idx: usize, raw: &[u8]) -> Vec<u8> {
    let mut it = items(bytes);
    it[idx] = raw.to_vec();
    assemble(&it)
}

fn uint(v: u64) -> Vec<u8> {
    let mut e = Encoder::new();
    e.uint(v);
    e.into_bytes()
}

fn int(v: i64) -> Vec<u8> {
    let mut e = Encoder::new();
    e.int(v);
    e.into_bytes()
}

fn bstr(v: &[u8]) -> Vec<u8> {
    let mut e = Encoder::new();
    e.bytes(v);
    e.into_bytes()
}

fn tstr(v: &str) -> Vec<u8> {
    let mut e = Encoder::new();
    e.text(v);
    e.into_bytes()
}

/// A text-string item holding arbitrary (possibly invalid UTF-8) bytes.
fn raw_text(v: &[u8]) -> Vec<u8> {
    let mut e = Encoder::new();
    e.bytes(v);
    let mut b = e.into_bytes();
    b[0] += 0x20; // major 2 → major 3, same length
    b
}

fn array_of(items: &[Vec<u8>]) -> Vec<u8> {
    assemble(items)
}

/// Asserts that both the typed decoder of `ty` and `AnyRecord::decode` reject `bytes`
/// with `kind`, reported against `field`; returns the typed decoder's error.
#[track_caller]
fn rejects(ty: u64, bytes: &[u8], field: &str, kind: DecodeErrorKind) -> DecodeError {
    let e = decode_as(ty, bytes).expect_err("typed decoder accepted");
    assert_eq!(e.kind, kind, "typed decode of {bytes:02x?}: {e}");
    assert_eq!(e.field, field, "typed decode of {bytes:02x?}: {e}");
    let a = AnyRecord::decode(bytes).expect_err("AnyRecord accepted");
    assert_eq!(a.kind, kind, "AnyRecord::decode of {bytes:02x?}: {a}");
    assert_eq!(a.field, field, "AnyRecord::decode of {bytes:02x?}: {a}");
    e
}

fn invalid(e: &DecodeError) -> bool {
    matches!(e.kind, DecodeErrorKind::Invalid(_))
}

// Fixed sample values, one per type.

fn sample_dict() -> DictEntry {
    DictEntry::new(DictKind::Path, b"/etc/passwd")
}

fn sample_atom() -> EventAtom {
    EventAtom {
        seq: 5,
        t_ns: -20,
        event_type: EventType::Open,
        actor: [1; 16],
        object: [2; 16],
        flags: atom_flags::READ | atom_flags::LATE,
        arg_hash: Some([3; 32]),
        payload_ref: None,
        given: Vec::new(),
    }
}

fn sample_actor() -> ActorRecord {
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
}

fn sample_edge() -> Edge {
    Edge {
        kind: EdgeKind::ProcToFile,
        src: [1; 16],
        dst: [2; 16],
        flags: edge_flags::READ | edge_flags::WRITE,
        first_t_ns: 10,
        last_t_ns: 20,
        count: 3,
    }
}

fn sample_cone() -> ConeInstance {
    ConeInstance {
        cone_id: "download_exec_tmp".into(),
        cone_version: 1,
        t_start_ns: 100,
        first_seq: 10,
        last_seq: 20,
        count: 1,
        bindings: vec![("a".into(), [1; 16]), ("b".into(), [2; 16])],
        exceptions: vec![11, 12],
    }
}

fn sample_window() -> WindowRecord {
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
}

fn sample_hour() -> HourSeal {
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
}

fn sample_key() -> KeyEvent {
    KeyEvent {
        node: "web-1".into(),
        kind: KeyEventKind::Rotate,
        public_key: [1; 32],
        log_size: 10,
        previous_key: Some([2; 32]),
    }
}

fn sample_run() -> RunMeta {
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
}

fn sample_health() -> HealthRecord {
    HealthRecord {
        node: "web-1".into(),
        t_wall_ns: 1_760_000_000_000_000_000,
        kind: HealthKind::ProbeDetached,
        subject: "sys_enter_openat".into(),
        window: 1_763_000_001,
        lost: Some(17),
    }
}

fn sample_signed() -> SignedRecord {
    SignedRecord {
        body: sample_key().encode(),
        key_id: 0xdead_beef,
        signature: [7; 64],
    }
}

fn samples() -> Vec<AnyRecord> {
    vec![
        AnyRecord::Dict(sample_dict()),
        AnyRecord::Event(sample_atom()),
        AnyRecord::Actor(sample_actor()),
        AnyRecord::Edge(sample_edge()),
        AnyRecord::Cone(sample_cone()),
        AnyRecord::Window(sample_window()),
        AnyRecord::Hour(sample_hour()),
        AnyRecord::Key(sample_key()),
        AnyRecord::Run(sample_run()),
        AnyRecord::Health(sample_health()),
        AnyRecord::Signed(sample_signed()),
    ]
}

/// Records whose element 2 is the node name.
const NODE_RECORDS: [u64; 5] = [6, 7, 8, 9, 10];

fn sample_of(ty: u64) -> Vec<u8> {
    samples()
        .into_iter()
        .find(|r| meta(r).ty == ty)
        .unwrap()
        .encode()
}

// ---------------------------------------------------------------------------------------
// Round trips and the independent encoder
// ---------------------------------------------------------------------------------------

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn dict_entry_round_trips(v in dict_entry()) { round_trip(&v, AnyRecord::Dict)?; }

    #[test]
    fn event_atom_round_trips(v in event_atom()) { round_trip(&v, AnyRecord::Event)?; }

    #[test]
    fn actor_record_round_trips(v in actor_record()) { round_trip(&v, AnyRecord::Actor)?; }

    #[test]
    fn edge_round_trips(v in edge()) { round_trip(&v, AnyRecord::Edge)?; }

    #[test]
    fn cone_instance_round_trips(v in cone_instance()) { round_trip(&v, AnyRecord::Cone)?; }

    #[test]
    fn window_record_round_trips(v in window_record()) { round_trip(&v, AnyRecord::Window)?; }

    #[test]
    fn hour_seal_round_trips(v in hour_seal()) { round_trip(&v, AnyRecord::Hour)?; }

    #[test]
    fn hour_deletion_round_trips(v in hour_deletion()) { round_trip(&v, AnyRecord::Deletion)?; }

    #[test]
    fn case_manifest_round_trips(v in case_manifest()) { round_trip(&v, AnyRecord::Case)?; }

    #[test]
    fn case_export_round_trips(v in case_export()) { round_trip(&v, AnyRecord::Export)?; }

    #[test]
    fn key_event_round_trips(v in key_event()) { round_trip(&v, AnyRecord::Key)?; }

    #[test]
    fn run_meta_round_trips(v in run_meta()) { round_trip(&v, AnyRecord::Run)?; }

    #[test]
    fn health_record_round_trips(v in health_record()) { round_trip(&v, AnyRecord::Health)?; }

    #[test]
    fn signed_record_round_trips(v in signed_record()) { round_trip(&v, AnyRecord::Signed)?; }
}

// ---------------------------------------------------------------------------------------
// Mutations of valid encodings
// ---------------------------------------------------------------------------------------

/// Byte positions to mutate: all of them for small records; for big ones the first and
/// last 512 bytes (where all the structure is) and a spread through the middle.
fn positions(len: usize) -> Vec<usize> {
    if len <= 1024 {
        (0..len).collect()
    } else {
        (0..512)
            .chain((512..len - 512).step_by(97))
            .chain(len - 512..len)
            .collect()
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(160))]

    /// Every single-bit flip is rejected or decodes to a value that re-encodes to the
    /// flipped bytes exactly; the decoder never accepts a non-canonical encoding.
    #[test]
    fn single_bit_flips_never_accept_non_canonical_bytes(r in any_record()) {
        let bytes = r.encode();
        let ty = meta(&r).ty;
        let mut m = bytes.clone();
        for i in positions(bytes.len()) {
            for bit in 0..8 {
                m[i] ^= 1 << bit;
                check_mutant(ty, &m)?;
                m[i] ^= 1 << bit;
            }
        }
    }

    /// Every proper prefix is rejected as truncated, at an offset inside the prefix.
    #[test]
    fn every_truncation_is_rejected_as_truncated(r in any_record()) {
        let bytes = r.encode();
        let ty = meta(&r).ty;
        for k in 0..bytes.len() {
            let p = &bytes[..k];
            for e in [decode_as(ty, p).unwrap_err(), AnyRecord::decode(p).unwrap_err()] {
                prop_assert_eq!(&e.kind, &DecodeErrorKind::Truncated, "prefix {}: {}", k, e);
                prop_assert!(e.offset <= k);
            }
        }
    }

    /// Any appended byte is a trailing byte (or makes the record oversize).
    #[test]
    fn an_appended_byte_is_rejected(r in any_record(), extra: u8) {
        let m = meta(&r);
        let mut bytes = r.encode();
        let len = bytes.len();
        for x in [extra, 0x00, 0xf6, 0xff] {
            bytes.push(x);
            for e in [decode_as(m.ty, &bytes).unwrap_err(), AnyRecord::decode(&bytes).unwrap_err()] {
                if len + 1 > m.max_len {
                    prop_assert_eq!(&e.kind, &DecodeErrorKind::Oversize { len: len + 1, max: m.max_len });
                } else {
                    prop_assert_eq!(&e.kind, &DecodeErrorKind::TrailingBytes { count: 1 });
                    prop_assert_eq!((e.field, e.offset), ("(end)", len));
                }
            }
            bytes.pop();
        }
    }

    /// Dropping or duplicating one byte never yields an accepted non-canonical value.
    #[test]
    fn byte_deletions_and_insertions_never_accept_non_canonical_bytes(
        r in any_record(), at: proptest::sample::Index, byte: u8
    ) {
        let bytes = r.encode();
        let ty = meta(&r).ty;
        let i = at.index(bytes.len());
        let mut del = bytes.clone();
        del.remove(i);
        check_mutant(ty, &del)?;
        let mut ins = bytes.clone();
        ins.insert(i, byte);
        check_mutant(ty, &ins)?;
    }
}

// ---------------------------------------------------------------------------------------
// Rejections, one rule at a time (FORMAT.md §1 and §3)
// ---------------------------------------------------------------------------------------

#[test]
fn samples_are_valid() {
    for r in samples() {
        let b = r.encode();
        assert_eq!(AnyRecord::decode(&b).unwrap(), r);
        assert_eq!(decode_as(meta(&r).ty, &b).unwrap(), r);
        ciborium_agrees(&b, &meta(&r)).unwrap();
        // The helpers used below rebuild the same bytes from ciborium items.
        assert_eq!(assemble(&items(&b)), b);
    }
}

#[test]
fn event_atom_matches_the_format_md_example() {
    // FORMAT.md §3.2 (also checked by format_examples.rs, from the other side).
    let b = hex::decode(
        "8a02011a000f42401a0ee6b280045092a79279d88b41114e37a834d399e771509c7cf95b895d37abc664f5008038a69602f6f6",
    )
    .unwrap();
    let a = EventAtom::decode(&b).unwrap();
    assert_eq!(a.seq, 1_000_000);
    assert_eq!(a.t_ns, 250_000_000);
    assert_eq!(a.event_type, EventType::Open);
    assert_eq!(a.flags, atom_flags::READ);
    assert_eq!(a.encode(), b);
}

#[test]
fn a_map_in_place_of_a_field_is_rejected() {
    let b = sample_atom().encode();
    for map in [&[0xa0][..], &[0xa1, 0x01, 0x02], &[0xbf, 0xff]] {
        let e = rejects(2, &with_field(&b, 2, map), "seq", DecodeErrorKind::Map);
        assert_eq!(e.offset, 3);
    }
    // A map in place of the whole record.
    rejects(2, &[0xa1, 0x02, 0x01], "(record)", DecodeErrorKind::Map);
    // A map inside a list.
    let c = sample_cone().encode();
    rejects(
        5,
        &with_field(&c, 9, &[0x81, 0xa0]),
        "exceptions",
        DecodeErrorKind::Map,
    );
}

#[test]
fn a_tag_is_rejected() {
    let b = sample_atom().encode();
    // tag 1 (epoch time) on an integer; tag 2 (bignum) on a byte string; tag 24 (embedded CBOR).
    for tagged in [
        &[0xc1, 0x05][..],
        &[0xc2, 0x41, 0x05],
        &[0xd8, 0x18, 0x41, 0x05],
    ] {
        rejects(2, &with_field(&b, 2, tagged), "seq", DecodeErrorKind::Tag);
    }
    // A tagged record (e.g. self-described CBOR, tag 55799).
    let mut t = vec![0xd9, 0xd9, 0xf7];
    t.extend_from_slice(&b);
    rejects(2, &t, "(record)", DecodeErrorKind::Tag);
    // A tagged actor id.
    let mut actor = vec![0xc2];
    actor.extend(bstr(&[1; 16]));
    rejects(2, &with_field(&b, 5, &actor), "actor", DecodeErrorKind::Tag);
}

#[test]
fn floats_are_rejected() {
    let b = sample_atom().encode();
    let floats: [&[u8]; 3] = [
        &[0xf9, 0x3c, 0x00],                                     // half 1.0
        &[0xfa, 0x3f, 0x80, 0x00, 0x00],                         // single 1.0
        &[0xfb, 0x3f, 0xf0, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00], // double 1.0
    ];
    for f in floats {
        rejects(2, &with_field(&b, 2, f), "seq", DecodeErrorKind::Float);
        rejects(2, &with_field(&b, 3, f), "t_ns", DecodeErrorKind::Float);
    }
    let w = sample_window().encode();
    rejects(
        6,
        &with_field(&w, 15, floats[1]),
        "cone_lib_version",
        DecodeErrorKind::Float,
    );
}

#[test]
fn indefinite_lengths_are_rejected() {
    let b = sample_atom().encode();
    // The record as an indefinite-length array.
    let mut indef = vec![0x9f];
    indef.extend(items(&b).concat());
    indef.push(0xff);
    let e = rejects(2, &indef, "(record)", DecodeErrorKind::IndefiniteLength);
    assert_eq!(e.offset, 0);
    // An indefinite-length byte string made of one 16-byte chunk, for the actor id.
    let mut chunks = vec![0x5f];
    chunks.extend(bstr(&[1; 16]));
    chunks.push(0xff);
    rejects(
        2,
        &with_field(&b, 5, &chunks),
        "actor",
        DecodeErrorKind::IndefiniteLength,
    );
    // An indefinite-length text string for a node name.
    let w = sample_window().encode();
    let mut t = vec![0x7f];
    t.extend(tstr("web-1"));
    t.push(0xff);
    rejects(
        6,
        &with_field(&w, 2, &t),
        "node",
        DecodeErrorKind::IndefiniteLength,
    );
    // Indefinite-length lists inside a record.
    let c = sample_cone().encode();
    rejects(
        5,
        &with_field(&c, 8, &[0x9f, 0xff]),
        "bindings",
        DecodeErrorKind::IndefiniteLength,
    );
    rejects(
        5,
        &with_field(&c, 9, &[0x9f, 0x0b, 0xff]),
        "exceptions",
        DecodeErrorKind::IndefiniteLength,
    );
    // A stray break byte.
    rejects(
        2,
        &with_field(&b, 2, &[0xff]),
        "seq",
        DecodeErrorKind::IndefiniteLength,
    );
}

#[test]
fn non_shortest_integers_and_lengths_are_rejected() {
    let b = sample_atom().encode(); // seq = 5
    for long5 in [
        &[0x18, 0x05][..],
        &[0x19, 0x00, 0x05],
        &[0x1a, 0x00, 0x00, 0x00, 0x05],
        &[0x1b, 0, 0, 0, 0, 0, 0, 0, 0x05],
    ] {
        let e = rejects(
            2,
            &with_field(&b, 2, long5),
            "seq",
            DecodeErrorKind::NonShortest,
        );
        assert_eq!(e.offset, 3);
    }
    // At each width boundary the next width is non-shortest.
    for bad in [
        &[0x18, 0x17][..],
        &[0x19, 0x00, 0xff],
        &[0x1a, 0x00, 0x00, 0xff, 0xff],
        &[0x1b, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff],
    ] {
        rejects(
            2,
            &with_field(&b, 2, bad),
            "seq",
            DecodeErrorKind::NonShortest,
        );
    }
    // A negative t_ns (-20 is 0x33) widened.
    rejects(
        2,
        &with_field(&b, 3, &[0x38, 0x13]),
        "t_ns",
        DecodeErrorKind::NonShortest,
    );
    // A non-shortest byte-string length for a 16-byte id.
    let mut id = vec![0x58, 0x10];
    id.extend([1; 16]);
    rejects(
        2,
        &with_field(&b, 5, &id),
        "actor",
        DecodeErrorKind::NonShortest,
    );
    // A non-shortest type or version.
    let mut t = b.clone();
    t.splice(1..2, [0x18, 0x02]);
    rejects(2, &t, "type", DecodeErrorKind::NonShortest);
    let mut v = b.clone();
    v.splice(2..3, [0x18, 0x01]);
    rejects(2, &v, "version", DecodeErrorKind::NonShortest);
}

#[test]
fn a_non_shortest_array_length_is_rejected() {
    let b = sample_atom().encode();
    assert_eq!(b[0], 0x8a);
    for head in [&[0x98, 0x0a][..], &[0x99, 0x00, 0x0a]] {
        let mut m = head.to_vec();
        m.extend_from_slice(&b[1..]);
        let e = rejects(2, &m, "(record)", DecodeErrorKind::NonShortest);
        assert_eq!(e.offset, 0);
    }
    // A list inside a record: cone exceptions [11, 12] with a widened length.
    let c = sample_cone().encode();
    rejects(
        5,
        &with_field(&c, 9, &[0x98, 0x02, 0x0b, 0x0c]),
        "exceptions",
        DecodeErrorKind::NonShortest,
    );
    // An ActorRecord has 19 elements: 0x93; 0x98 0x13 is non-shortest.
    let a = sample_actor().encode();
    assert_eq!(a[0], 0x93);
    let mut m = vec![0x98, 0x13];
    m.extend_from_slice(&a[1..]);
    rejects(3, &m, "(record)", DecodeErrorKind::NonShortest);
}

#[test]
fn trailing_bytes_are_rejected() {
    for r in samples() {
        let mut b = r.encode();
        let len = b.len();
        b.push(0x00);
        let e = rejects(
            meta(&r).ty,
            &b,
            "(end)",
            DecodeErrorKind::TrailingBytes { count: 1 },
        );
        assert_eq!(e.offset, len);
        b.extend([0xf6, 0xf6]);
        rejects(
            meta(&r).ty,
            &b,
            "(end)",
            DecodeErrorKind::TrailingBytes { count: 3 },
        );
        // A second whole record is trailing bytes too.
        let mut two = r.encode();
        two.extend(r.encode());
        rejects(
            meta(&r).ty,
            &two,
            "(end)",
            DecodeErrorKind::TrailingBytes { count: len },
        );
    }
}

#[test]
fn an_unknown_record_type_is_rejected() {
    let b = sample_atom().encode();
    for t in [0, 27, 99, 1000, u64::MAX] {
        let m = with_field(&b, 0, &uint(t));
        let kind = DecodeErrorKind::UnknownRecordType { record_type: t };
        let a = AnyRecord::decode(&m).unwrap_err();
        assert_eq!((a.field, &a.kind), ("type", &kind));
        assert_eq!(a.offset, 1);
        // A typed decoder says the type is unknown, not merely another one.
        let e = EventAtom::decode(&m).unwrap_err();
        assert_eq!((e.field, &e.kind), ("type", &kind));
    }
    // A bare [99, 1] and a bare [99].
    let e = AnyRecord::decode(&[0x82, 0x18, 0x63, 0x01]).unwrap_err();
    assert_eq!(
        e.kind,
        DecodeErrorKind::UnknownRecordType { record_type: 99 }
    );
    let e = AnyRecord::decode(&[0x81, 0x18, 0x63]).unwrap_err();
    assert_eq!(
        e.kind,
        DecodeErrorKind::UnknownRecordType { record_type: 99 }
    );
}

#[test]
fn an_unknown_version_is_rejected_for_every_type() {
    for r in samples() {
        let m = meta(&r);
        for v in [0, 2, 3, 24, u64::MAX] {
            // EventAtom's version 2 is known: it has one element more (tested below).
            if v == m.version || (m.ty == 2 && v == 2) {
                continue;
            }
            let bad = with_field(&r.encode(), 1, &uint(v));
            let e = rejects(
                m.ty,
                &bad,
                "version",
                DecodeErrorKind::UnknownVersion {
                    record_type: m.ty,
                    version: v,
                },
            );
            assert_eq!(e.offset, 2);
            assert_eq!(e.record, m.name);
        }
    }
}

#[test]
fn a_typed_decoder_rejects_every_other_record_type() {
    for r in samples() {
        let found = meta(&r).ty;
        let b = r.encode();
        for expected in (1..=11u64).chain([21, 22, 23]) {
            let got = decode_as(expected, &b);
            if expected == found {
                assert_eq!(got.unwrap(), r);
            } else {
                let e = got.unwrap_err();
                assert_eq!(e.kind, DecodeErrorKind::WrongRecordType { expected, found });
                assert_eq!((e.field, e.offset), ("type", 1));
            }
        }
    }
}

#[test]
fn a_wrong_array_length_is_rejected_for_every_type() {
    for r in samples() {
        let m = meta(&r);
        let mut it = items(&r.encode());
        it.push(uint(0));
        let e = rejects(
            m.ty,
            &assemble(&it),
            "(record)",
            DecodeErrorKind::WrongLength {
                expected: m.fields,
                found: m.fields + 1,
            },
        );
        assert_eq!(e.offset, 0);
        it.truncate(it.len() - 2);
        rejects(
            m.ty,
            &assemble(&it),
            "(record)",
            DecodeErrorKind::WrongLength {
                expected: m.fields,
                found: m.fields - 1,
            },
        );
        // Only type and version.
        rejects(
            m.ty,
            &assemble(&it[..2]),
            "(record)",
            DecodeErrorKind::WrongLength {
                expected: m.fields,
                found: 2,
            },
        );
    }
    // More than 64 elements is refused before anything else is read.
    let mut big = vec![0x98, 65];
    big.extend([0x02, 0x01]);
    big.extend([0x00; 63]);
    rejects(
        2,
        &big,
        "(record)",
        DecodeErrorKind::TooLong { max: 64, found: 65 },
    );
    // Not an array at all.
    rejects(
        2,
        &[0x02],
        "(record)",
        DecodeErrorKind::UnexpectedType {
            expected: "array",
            found: "unsigned integer",
        },
    );
    rejects(2, &[], "(record)", DecodeErrorKind::Truncated);
}

#[test]
fn oversize_records_are_rejected_before_decoding() {
    // An EventAtom followed by padding up to 4097 bytes: Oversize, not TrailingBytes.
    let b = sample_atom().encode();
    let mut padded = b.clone();
    padded.resize(MAX_EVENT_RECORD_LEN + 1, 0);
    let e = rejects(
        2,
        &padded,
        "(record)",
        DecodeErrorKind::Oversize {
            len: MAX_EVENT_RECORD_LEN + 1,
            max: MAX_EVENT_RECORD_LEN,
        },
    );
    assert_eq!(e.offset, 0);
    // Exactly 4096 bytes is within the bound: the padding is then trailing bytes.
    padded.truncate(MAX_EVENT_RECORD_LEN);
    rejects(
        2,
        &padded,
        "(end)",
        DecodeErrorKind::TrailingBytes {
            count: MAX_EVENT_RECORD_LEN - b.len(),
        },
    );
    // A DictEntry whose value makes it 4097+ bytes (its value is over 3968 bytes too,
    // but the size bound is checked first).
    let mut it = items(&sample_dict().encode());
    it[5] = bstr(&vec![b'x'; 4090]);
    let big = assemble(&it);
    assert!(big.len() > MAX_EVENT_RECORD_LEN);
    rejects(
        1,
        &big,
        "(record)",
        DecodeErrorKind::Oversize {
            len: big.len(),
            max: MAX_EVENT_RECORD_LEN,
        },
    );
    // Under 4096 bytes but over 3968 value bytes: the field bound.
    it[5] = bstr(&vec![b'x'; MAX_DICT_VALUE_LEN + 1]);
    rejects(
        1,
        &assemble(&it),
        "value",
        DecodeErrorKind::TooLong {
            max: MAX_DICT_VALUE_LEN as u64,
            found: MAX_DICT_VALUE_LEN as u64 + 1,
        },
    );
    // Other records are bounded at 65536 bytes.
    let mut w = sample_window().encode();
    w.resize(MAX_RECORD_LEN + 1, 0);
    rejects(
        6,
        &w,
        "(record)",
        DecodeErrorKind::Oversize {
            len: MAX_RECORD_LEN + 1,
            max: MAX_RECORD_LEN,
        },
    );
    // A SignedRecord body over its bound.
    let mut it = items(&sample_signed().encode());
    it[2] = bstr(&vec![0; MAX_BODY + 1]);
    rejects(
        11,
        &assemble(&it),
        "body",
        DecodeErrorKind::TooLong {
            max: MAX_BODY as u64,
            found: MAX_BODY as u64 + 1,
        },
    );
}

#[test]
fn undefined_enum_values_are_rejected() {
    fn values<T: Copy>(all: &[T], v: fn(T) -> u64) -> Vec<u64> {
        all.iter().map(|k| v(*k)).collect()
    }
    // (record type, element index, field name, the defined values, the reserved ones)
    type Case<'a> = (u64, usize, &'a str, Vec<u64>, &'a [u64]);
    let cases: [Case; 6] = [
        (1, 3, "kind", values(DictKind::ALL, DictKind::as_u64), &[2]),
        (
            2,
            4,
            "event_type",
            values(EventType::ALL, EventType::as_u64),
            &[18],
        ),
        (4, 2, "kind", values(EdgeKind::ALL, EdgeKind::as_u64), &[]),
        (
            6,
            14,
            "capture_mode",
            values(CaptureMode::ALL, CaptureMode::as_u64),
            &[],
        ),
        (
            8,
            3,
            "kind",
            values(KeyEventKind::ALL, KeyEventKind::as_u64),
            &[],
        ),
        (
            10,
            4,
            "kind",
            values(HealthKind::ALL, HealthKind::as_u64),
            &[],
        ),
    ];
    for (ty, idx, field, defined, reserved) in cases {
        let b = sample_of(ty);
        let max = *defined.last().unwrap();
        // Defined values are 1..=max but the reserved ones (FORMAT §3).
        let want: Vec<u64> = (1..=max).filter(|v| !reserved.contains(v)).collect();
        assert_eq!(defined, want, "{field}");
        let undefined = [0, max + 1, 255, 256, 1 << 32, u64::MAX];
        for &v in undefined.iter().chain(reserved) {
            rejects(
                ty,
                &with_field(&b, idx, &uint(v)),
                field,
                DecodeErrorKind::UnknownValue { value: v },
            );
        }
        // Every defined value is accepted where the record's other rules allow it (a key
        // event's public keys, a health record's `lost`, depend on the kind).
        if ty != 8 && ty != 10 {
            for v in defined {
                let m = with_field(&b, idx, &uint(v));
                assert_eq!(decode_as(ty, &m).unwrap().encode(), m);
            }
        }
    }
    // The loss reasons inside a WindowRecord.
    let w = sample_window().encode();
    for v in [0, 7, 1000] {
        let lost = array_of(&[array_of(&[uint(v), uint(1)])]);
        rejects(
            6,
            &with_field(&w, 12, &lost),
            "lost.reason",
            DecodeErrorKind::UnknownValue { value: v },
        );
    }
    // The ALL lists hold exactly the values from_u64 accepts.
    for k in EventType::ALL {
        assert_eq!(EventType::from_u64(k.as_u64()), Some(*k));
    }
    assert_eq!(EventType::from_u64(0), None);
}

#[test]
fn undefined_flag_bits_are_rejected() {
    let b = sample_atom().encode();
    for (v, bits) in [
        (0x200u64, 0x200u64),
        (0x3ff, 0x200),
        (0x8000_0000, 0x8000_0000),
        (1 << 32, 1 << 32),
        (u64::MAX, !0x1ff),
    ] {
        rejects(
            2,
            &with_field(&b, 7, &uint(v)),
            "flags",
            DecodeErrorKind::UnknownFlags { bits },
        );
    }
    // All eight bits defined for every type together are fine; stdio_net only on an exec.
    let m = with_field(&b, 7, &uint(0xff));
    assert_eq!(EventAtom::decode(&m).unwrap().flags, 0xff);
    let m = with_field(&b, 7, &uint(atom_flags::ALL as u64));
    assert!(EventAtom::decode(&m).is_err(), "stdio_net on an open");
    let exec = with_field(&m, 4, &uint(EventType::Exec.as_u64()));
    assert_eq!(EventAtom::decode(&exec).unwrap().flags, 0x1ff);
    // Edge flags are a u8 with all eight bits defined: 256 is out of range.
    let e = sample_edge().encode();
    rejects(
        4,
        &with_field(&e, 5, &uint(256)),
        "flags",
        DecodeErrorKind::OutOfRange { value: 256 },
    );
    assert_eq!(
        Edge::decode(&with_field(&e, 5, &uint(255))).unwrap().flags,
        255
    );
}

#[test]
fn lists_must_be_strictly_ascending() {
    let c = sample_cone().encode();
    let binding = |name: &str| array_of(&[tstr(name), bstr(&[1; 16])]);
    for names in [
        &["b", "a"][..],
        &["a", "a"],
        &["a", "b", "b"],
        &["", ""],
        &["a", ""],
    ] {
        let list = array_of(&names.iter().map(|n| binding(n)).collect::<Vec<_>>());
        rejects(
            5,
            &with_field(&c, 8, &list),
            "bindings.name",
            DecodeErrorKind::NotAscending,
        );
    }
    // Ascending by *bytes*: "Z" (0x5a) < "a" (0x61) < "z" (0x7a) < "é" (0xc3 0xa9).
    let ok = array_of(&[
        binding(""),
        binding("Z"),
        binding("a"),
        binding("z"),
        binding("é"),
    ]);
    ConeInstance::decode(&with_field(&c, 8, &ok)).unwrap();
    let bad = array_of(&[binding("é"), binding("z")]);
    rejects(
        5,
        &with_field(&c, 8, &bad),
        "bindings.name",
        DecodeErrorKind::NotAscending,
    );

    for seqs in [&[12u64, 11][..], &[11, 11], &[1, 2, 2], &[u64::MAX, 0]] {
        let list = array_of(&seqs.iter().map(|s| uint(*s)).collect::<Vec<_>>());
        rejects(
            5,
            &with_field(&c, 9, &list),
            "exceptions",
            DecodeErrorKind::NotAscending,
        );
    }

    let w = sample_window().encode();
    let loss = |r: u64, n: u64| array_of(&[uint(r), uint(n)]);
    for list in [
        vec![loss(2, 1), loss(1, 1)],
        vec![loss(1, 1), loss(1, 2)],
        vec![loss(1, 1), loss(3, 1), loss(2, 1)],
    ] {
        rejects(
            6,
            &with_field(&w, 12, &array_of(&list)),
            "lost.reason",
            DecodeErrorKind::NotAscending,
        );
    }
    // A listed loss has a positive count.
    let e = decode_as(6, &with_field(&w, 12, &array_of(&[loss(1, 0)]))).unwrap_err();
    assert!(invalid(&e) && e.field == "lost.count", "{e}");
    // Each loss is a pair.
    rejects(
        6,
        &with_field(&w, 12, &array_of(&[array_of(&[uint(1)])])),
        "lost",
        DecodeErrorKind::WrongLength {
            expected: 2,
            found: 1,
        },
    );
    // List bounds.
    let many = array_of(
        &(0..=MAX_CONE_BINDINGS)
            .map(|i| binding(&format!("{i:02}")))
            .collect::<Vec<_>>(),
    );
    rejects(
        5,
        &with_field(&c, 8, &many),
        "bindings",
        DecodeErrorKind::TooLong {
            max: MAX_CONE_BINDINGS as u64,
            found: MAX_CONE_BINDINGS as u64 + 1,
        },
    );
    let many = array_of(
        &(0..=MAX_CONE_EXCEPTIONS as u64)
            .map(uint)
            .collect::<Vec<_>>(),
    );
    rejects(
        5,
        &with_field(&c, 9, &many),
        "exceptions",
        DecodeErrorKind::TooLong {
            max: MAX_CONE_EXCEPTIONS as u64,
            found: MAX_CONE_EXCEPTIONS as u64 + 1,
        },
    );
    let seven = array_of(&(1..=7).map(|r| loss(r, 1)).collect::<Vec<_>>());
    rejects(
        6,
        &with_field(&w, 12, &seven),
        "lost",
        DecodeErrorKind::TooLong { max: 6, found: 7 },
    );
}

#[test]
fn a_hashed_dict_value_must_be_32_bytes() {
    let b = sample_dict().encode();
    let hashed = with_field(&b, 4, &[0xf5]);
    for n in [0usize, 1, 31, 33, 64] {
        let e = decode_as(1, &with_field(&hashed, 5, &bstr(&vec![7; n]))).unwrap_err();
        assert!(invalid(&e), "{n} bytes: {e}");
        assert_eq!(e.field, "value");
        assert!(
            e.to_string().contains("DictEntry") && e.to_string().contains("`value`"),
            "{e}"
        );
    }
    let ok = with_field(&hashed, 5, &bstr(&[7; 32]));
    let d = DictEntry::decode(&ok).unwrap();
    assert!(d.hashed && d.value == [7; 32]);
    // Unhashed values of any length up to the bound are fine, 32 bytes included.
    DictEntry::decode(&with_field(&b, 5, &bstr(&[7; 32]))).unwrap();
    DictEntry::decode(&with_field(&b, 5, &bstr(&[]))).unwrap();
    // `hashed` is a boolean, not null or an integer.
    rejects(
        1,
        &with_field(&b, 4, &[0xf6]),
        "hashed",
        DecodeErrorKind::UnexpectedType {
            expected: "boolean",
            found: "null",
        },
    );
    rejects(
        1,
        &with_field(&b, 4, &uint(1)),
        "hashed",
        DecodeErrorKind::UnexpectedType {
            expected: "boolean",
            found: "unsigned integer",
        },
    );
}

#[test]
fn invalid_node_names_are_rejected_in_every_record_that_has_one() {
    for ty in NODE_RECORDS {
        let b = sample_of(ty);
        for bad in [
            "", ".", ".hidden", "a/b", "a b", "é", "a\0", "../x", "a\\b", "a:b", "x\n",
        ] {
            let e = decode_as(ty, &with_field(&b, 2, &tstr(bad))).unwrap_err();
            assert!(invalid(&e), "{ty} {bad:?}: {e}");
            assert_eq!((e.field, e.offset), ("node", 3), "{ty} {bad:?}");
            let a = AnyRecord::decode(&with_field(&b, 2, &tstr(bad))).unwrap_err();
            assert_eq!(a, e);
        }
        // 65 bytes is over the length bound.
        rejects(
            ty,
            &with_field(&b, 2, &tstr(&"a".repeat(65))),
            "node",
            DecodeErrorKind::TooLong { max: 64, found: 65 },
        );
        // Edge cases that are valid.
        for good in ["a", "-", "_", "a.", "A.b_c-9", &"z".repeat(64)] {
            let m = with_field(&b, 2, &tstr(good));
            assert_eq!(decode_as(ty, &m).unwrap().encode(), m, "{good:?}");
        }
        // A node name is text, not bytes.
        rejects(
            ty,
            &with_field(&b, 2, &bstr(b"web-1")),
            "node",
            DecodeErrorKind::UnexpectedType {
                expected: "text string",
                found: "byte string",
            },
        );
    }
}

#[test]
fn invalid_utf8_text_is_rejected() {
    let bad_utf8: [&[u8]; 6] = [
        &[0xff],
        &[0xc3, 0x28],             // bad continuation
        &[0xc0, 0x80],             // overlong NUL
        &[0xed, 0xa0, 0x80],       // UTF-16 surrogate
        &[0xf4, 0x90, 0x80, 0x80], // above U+10FFFF
        &[b'a', 0xe2, 0x82],       // truncated sequence
    ];
    let cone = sample_cone().encode();
    let run = sample_run().encode();
    let health = sample_health().encode();
    for t in bad_utf8 {
        let raw = raw_text(t);
        for ty in NODE_RECORDS {
            rejects(
                ty,
                &with_field(&sample_of(ty), 2, &raw),
                "node",
                DecodeErrorKind::InvalidUtf8,
            );
        }
        rejects(
            5,
            &with_field(&cone, 2, &raw),
            "cone_id",
            DecodeErrorKind::InvalidUtf8,
        );
        let binding = array_of(&[array_of(&[raw.clone(), bstr(&[1; 16])])]);
        rejects(
            5,
            &with_field(&cone, 8, &binding),
            "bindings.name",
            DecodeErrorKind::InvalidUtf8,
        );
        rejects(
            9,
            &with_field(&run, 4, &raw),
            "sensor_version",
            DecodeErrorKind::InvalidUtf8,
        );
        rejects(
            10,
            &with_field(&health, 5, &raw),
            "subject",
            DecodeErrorKind::InvalidUtf8,
        );
    }
    // Text bounds are in bytes.
    rejects(
        9,
        &with_field(&run, 4, &tstr(&"é".repeat(65))),
        "sensor_version",
        DecodeErrorKind::TooLong {
            max: 128,
            found: 130,
        },
    );
    rejects(
        10,
        &with_field(&health, 5, &tstr(&"x".repeat(257))),
        "subject",
        DecodeErrorKind::TooLong {
            max: 256,
            found: 257,
        },
    );
    rejects(
        5,
        &with_field(&cone, 2, &tstr(&"€".repeat(22))),
        "cone_id",
        DecodeErrorKind::TooLong { max: 64, found: 66 },
    );
}

#[test]
fn record_rules_are_enforced() {
    let check = |ty: u64, bytes: Vec<u8>, field: &str| {
        let e = decode_as(ty, &bytes).unwrap_err();
        assert!(invalid(&e), "{field}: {e}");
        assert_eq!(e.field, field, "{e}");
        assert_eq!(AnyRecord::decode(&bytes).unwrap_err(), e);
    };
    // Edge: last_t_ns >= first_t_ns, count >= 1.
    let e = sample_edge().encode();
    check(4, with_field(&e, 7, &int(9)), "last_t_ns");
    check(4, with_field(&e, 8, &uint(0)), "count");
    // ConeInstance: non-empty id, last_seq >= first_seq.
    let c = sample_cone().encode();
    check(5, with_field(&c, 2, &tstr("")), "cone_id");
    check(5, with_field(&c, 6, &uint(9)), "last_seq");
    // WindowRecord: window_len_ns > 0.
    let w = sample_window().encode();
    check(6, with_field(&w, 4, &uint(0)), "window_len_ns");
    // HourSeal: windows ordered; prev earlier and no larger; no proof without prev.
    let h = sample_hour().encode();
    check(7, with_field(&h, 5, &uint(99)), "last_window");
    let prev = |hour: u64, size: u64| array_of(&[uint(hour), uint(size), bstr(&[2; 32])]);
    check(7, with_field(&h, 8, &prev(490_000, 1800)), "prev");
    check(7, with_field(&h, 8, &prev(490_001, 1800)), "prev");
    check(7, with_field(&h, 8, &prev(1, 3601)), "prev");
    HourSeal::decode(&with_field(&h, 8, &prev(0, 3600))).unwrap();
    check(7, with_field(&h, 8, &[0xf6]), "consistency");
    let mut first = items(&h);
    first[8] = vec![0xf6];
    first[9] = vec![0x80];
    HourSeal::decode(&assemble(&first)).unwrap();
    rejects(
        7,
        &with_field(&h, 8, &array_of(&[uint(1), uint(1)])),
        "prev",
        DecodeErrorKind::WrongLength {
            expected: 3,
            found: 2,
        },
    );
    let proof = array_of(&vec![bstr(&[0; 32]); MAX_PROOF_HASHES + 1]);
    rejects(
        7,
        &with_field(&h, 9, &proof),
        "consistency",
        DecodeErrorKind::TooLong {
            max: 128,
            found: 129,
        },
    );
    rejects(
        7,
        &with_field(&h, 9, &array_of(&[bstr(&[0; 31])])),
        "consistency",
        DecodeErrorKind::WrongLength {
            expected: 32,
            found: 31,
        },
    );
    // KeyEvent: previous_key exactly for a rotation.
    let k = sample_key().encode();
    check(8, with_field(&k, 6, &[0xf6]), "previous_key");
    for kind in [1, 3] {
        check(8, with_field(&k, 3, &uint(kind)), "previous_key");
        let mut ok = items(&k);
        ok[3] = uint(kind);
        ok[6] = vec![0xf6];
        KeyEvent::decode(&assemble(&ok)).unwrap();
    }
    // RunMeta: window_len_ns divides one hour.
    let r = sample_run().encode();
    for bad in [
        0u64,
        7,
        7_200_000_000_000,
        3_600_000_000_001,
        1 << 40,
        u64::MAX,
    ] {
        check(9, with_field(&r, 6, &uint(bad)), "window_len_ns");
    }
    for good in [1u64, 1_000_000, 250_000_000, 3_600_000_000_000] {
        RunMeta::decode(&with_field(&r, 6, &uint(good))).unwrap();
    }
}

#[test]
fn integer_ranges_and_item_types_are_enforced() {
    let a = sample_actor().encode();
    for (idx, field) in [(3, "pid"), (4, "ppid"), (7, "uid"), (8, "gid"), (9, "euid")] {
        rejects(
            3,
            &with_field(&a, idx, &uint(1 << 32)),
            field,
            DecodeErrorKind::OutOfRange { value: 1 << 32 },
        );
        assert!(ActorRecord::decode(&with_field(&a, idx, &uint(u32::MAX as u64))).is_ok());
        rejects(
            3,
            &with_field(&a, idx, &int(-1)),
            field,
            DecodeErrorKind::UnexpectedType {
                expected: "unsigned integer",
                found: "negative integer",
            },
        );
    }
    let s = sample_signed().encode();
    rejects(
        11,
        &with_field(&s, 3, &uint(u64::MAX)),
        "key_id",
        DecodeErrorKind::OutOfRange {
            value: u64::MAX as i128,
        },
    );
    rejects(
        11,
        &with_field(&s, 4, &bstr(&[0; 63])),
        "signature",
        DecodeErrorKind::WrongLength {
            expected: 64,
            found: 63,
        },
    );
    let c = sample_cone().encode();
    rejects(
        5,
        &with_field(&c, 3, &uint(1 << 32)),
        "cone_version",
        DecodeErrorKind::OutOfRange { value: 1 << 32 },
    );
    // int fields hold i64 only.
    let b = sample_atom().encode();
    rejects(
        2,
        &with_field(&b, 3, &uint(1 << 63)),
        "t_ns",
        DecodeErrorKind::OutOfRange { value: 1 << 63 },
    );
    rejects(
        2,
        &with_field(&b, 3, &[0x3b, 0x80, 0, 0, 0, 0, 0, 0, 0]),
        "t_ns",
        DecodeErrorKind::OutOfRange {
            value: -1 - (1i128 << 63),
        },
    );
    assert_eq!(
        EventAtom::decode(&with_field(&b, 3, &int(i64::MIN)))
            .unwrap()
            .t_ns,
        i64::MIN
    );
    // Fixed-size ids and optional hashes.
    rejects(
        2,
        &with_field(&b, 5, &bstr(&[1; 15])),
        "actor",
        DecodeErrorKind::WrongLength {
            expected: 16,
            found: 15,
        },
    );
    rejects(
        2,
        &with_field(&b, 6, &bstr(&[1; 17])),
        "object",
        DecodeErrorKind::WrongLength {
            expected: 16,
            found: 17,
        },
    );
    rejects(
        2,
        &with_field(&b, 8, &bstr(&[1; 16])),
        "arg_hash",
        DecodeErrorKind::WrongLength {
            expected: 32,
            found: 16,
        },
    );
    rejects(
        2,
        &with_field(&b, 9, &[0xf4]),
        "payload_ref",
        DecodeErrorKind::UnexpectedType {
            expected: "byte string",
            found: "simple value",
        },
    );
    rejects(
        2,
        &with_field(&b, 2, &tstr("5")),
        "seq",
        DecodeErrorKind::UnexpectedType {
            expected: "unsigned integer",
            found: "text string",
        },
    );
    // Reserved simple values and additional-information values.
    rejects(
        2,
        &with_field(&b, 2, &[0xf7]),
        "seq",
        DecodeErrorKind::ReservedSimple { byte: 0xf7 },
    );
    rejects(
        2,
        &with_field(&b, 2, &[0xe0]),
        "seq",
        DecodeErrorKind::ReservedSimple { byte: 0xe0 },
    );
    rejects(
        2,
        &with_field(&b, 2, &[0xf8, 0x20]),
        "seq",
        DecodeErrorKind::ReservedSimple { byte: 0xf8 },
    );
    for ib in [0x1c, 0x1d, 0x1e] {
        rejects(
            2,
            &with_field(&b, 2, &[ib]),
            "seq",
            DecodeErrorKind::ReservedInfo { byte: ib },
        );
    }
}

#[test]
fn error_messages_name_the_record_and_the_field() {
    let b = sample_atom().encode();
    let e = EventAtom::decode(&with_field(&b, 2, &[0x18, 0x05])).unwrap_err();
    assert_eq!(
        e.to_string(),
        "EventAtom field `seq` at byte 3: integer or length not in shortest form"
    );
    let e = AnyRecord::decode(&with_field(&b, 2, &[0x18, 0x05])).unwrap_err();
    assert!(e.to_string().starts_with("EventAtom field `seq`"), "{e}");
    // One corrupted field per record type: the message names both.
    let cases: [(u64, usize, Vec<u8>, &str); 11] = [
        (1, 3, uint(0), "`kind`"),
        (2, 7, uint(0x100), "`flags`"),
        (3, 12, bstr(&[0; 3]), "`comm`"),
        (4, 8, uint(0), "`count`"),
        (5, 9, array_of(&[uint(2), uint(1)]), "`exceptions`"),
        (6, 16, bstr(&[0; 31]), "`window_root`"),
        (7, 7, bstr(&[0; 31]), "`log_root`"),
        (8, 4, bstr(&[0; 31]), "`public_key`"),
        (9, 6, uint(7), "`window_len_ns`"),
        (10, 5, tstr(&"x".repeat(300)), "`subject`"),
        (11, 3, uint(1 << 40), "`key_id`"),
    ];
    for (ty, idx, raw, field) in cases {
        let name = record_name(ty).unwrap();
        let e = decode_as(ty, &with_field(&sample_of(ty), idx, &raw)).unwrap_err();
        let msg = e.to_string();
        assert!(
            msg.starts_with(&format!("{name} field {field} at byte ")),
            "{msg}"
        );
        assert_eq!(e.record, name);
    }
    // Header errors name the record type being decoded.
    let e = EventAtom::decode(&sample_dict().encode()).unwrap_err();
    assert_eq!(
        e.to_string(),
        "EventAtom field `type` at byte 1: record type 1 where type 2 is expected"
    );
}

/// FORMAT.md says every error names the file, record and field. A bad node name is
/// reported against the pseudo-record "node" instead of the record that holds it.
#[test]
fn node_name_errors_name_the_record() {
    for ty in NODE_RECORDS {
        let name = record_name(ty).unwrap();
        let e = decode_as(ty, &with_field(&sample_of(ty), 2, &tstr(".hidden"))).unwrap_err();
        assert_eq!(e.record, name, "{e}");
        assert!(
            e.to_string().starts_with(&format!("{name} field `node`")),
            "{e}"
        );
    }
}

// ---------------------------------------------------------------------------------------
// Content-derived ids
// ---------------------------------------------------------------------------------------

/// FORMAT.md §2.2 computed independently: keyed BLAKE3 with key BLAKE3(domain name) over
/// a ciborium-encoded array, first 16 bytes.
fn independent_id(domain: &str, v: Value) -> [u8; 16] {
    let key = blake3::hash(domain.as_bytes());
    let h = blake3::keyed_hash(key.as_bytes(), &cbor(&v));
    h.as_bytes()[..16].try_into().unwrap()
}

fn independent_dict_id(kind: DictKind, value: &[u8]) -> [u8; 16] {
    independent_id(
        "ritma/dict-id/v1",
        Value::Array(vec![
            Value::Integer(kind.as_u64().into()),
            Value::Bytes(value.to_vec()),
        ]),
    )
}

#[test]
fn dict_ids_are_the_format_md_example() {
    // FORMAT.md §2.2: /etc/passwd (path).
    assert_eq!(
        hex::encode(DictEntry::id_of(DictKind::Path, b"/etc/passwd")),
        "9c7cf95b895d37abc664f5008038a696"
    );
    assert_eq!(
        hex::encode(ActorRecord::id_of(
            "web-1",
            &std::array::from_fn(|i| i as u8),
            1234,
            5_000_000_000
        )),
        "92a79279d88b41114e37a834d399e771"
    );
}

#[test]
fn dict_entry_new_hashes_long_values() {
    for len in [0, 1, 100, MAX_DICT_VALUE_LEN - 1, MAX_DICT_VALUE_LEN] {
        let v: Vec<u8> = (0..len).map(|i| (i * 7) as u8).collect();
        let d = DictEntry::new(DictKind::Argv, &v);
        assert!(!d.hashed, "{len}");
        assert_eq!(d.value, v);
        assert_eq!(d.id, DictEntry::id_of(DictKind::Argv, &v));
        assert_eq!(DictEntry::decode(&d.encode()).unwrap(), d);
    }
    for len in [
        MAX_DICT_VALUE_LEN + 1,
        MAX_DICT_VALUE_LEN + 2,
        10_000,
        1 << 20,
    ] {
        let v: Vec<u8> = (0..len).map(|i| (i * 13 + 1) as u8).collect();
        let d = DictEntry::new(DictKind::Env, &v);
        assert!(d.hashed, "{len}");
        assert_eq!(d.kind, DictKind::Env);
        assert_eq!(d.value, blake3::hash(&v).as_bytes().to_vec());
        assert_eq!(d.value, ritma_schemas::hash::blake3(&v).to_vec());
        // The id is that of the original bytes, never of the hash.
        assert_eq!(d.id, DictEntry::id_of(DictKind::Env, &v));
        assert_eq!(d.id, independent_dict_id(DictKind::Env, &v));
        assert_ne!(d.id, DictEntry::id_of(DictKind::Env, &d.value));
        let b = d.encode();
        assert!(b.len() <= MAX_EVENT_RECORD_LEN);
        assert_eq!(DictEntry::decode(&b).unwrap(), d);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn dict_id_of_is_the_specified_hash(kind in select(DictKind::ALL), value in vec(any::<u8>(), 0..300)) {
        let id = DictEntry::id_of(kind, &value);
        prop_assert_eq!(id, DictEntry::id_of(kind, &value));
        prop_assert_eq!(id, independent_dict_id(kind, &value));
        prop_assert_eq!(DictEntry::new(kind, &value).id, id);
    }

    #[test]
    fn dict_ids_differ_for_different_kind_or_value(
        k1 in select(DictKind::ALL), v1 in vec(any::<u8>(), 0..40),
        k2 in select(DictKind::ALL), v2 in vec(any::<u8>(), 0..40),
    ) {
        prop_assume!((k1, &v1) != (k2, &v2));
        prop_assert_ne!(DictEntry::id_of(k1, &v1), DictEntry::id_of(k2, &v2));
        // Same value, other kind; same kind, value one byte longer.
        let other = DictKind::ALL[(DictKind::ALL.iter().position(|k| *k == k1).unwrap() + 1) % DictKind::ALL.len()];
        prop_assert_ne!(DictEntry::id_of(k1, &v1), DictEntry::id_of(other, &v1));
        let mut longer = v1.clone();
        longer.push(0);
        prop_assert_ne!(DictEntry::id_of(k1, &v1), DictEntry::id_of(k1, &longer));
    }

    #[test]
    fn actor_id_of_is_the_specified_hash_and_separates_inputs(
        node in node_name(), boot: [u8; 16], pid: u32, start in u64s(),
        node2 in node_name(), boot2: [u8; 16], pid2: u32, start2 in u64s(),
    ) {
        let id = ActorRecord::id_of(&node, &boot, pid, start);
        prop_assert_eq!(id, ActorRecord::id_of(&node, &boot, pid, start));
        let expected = independent_id(
            "ritma/actor-id/v1",
            Value::Array(vec![
                Value::Text(node.clone()),
                Value::Bytes(boot.to_vec()),
                Value::Integer(pid.into()),
                Value::Integer(start.into()),
            ]),
        );
        prop_assert_eq!(id, expected);
        // Changing any one input changes the id.
        if node2 != node { prop_assert_ne!(id, ActorRecord::id_of(&node2, &boot, pid, start)); }
        if boot2 != boot { prop_assert_ne!(id, ActorRecord::id_of(&node, &boot2, pid, start)); }
        if pid2 != pid { prop_assert_ne!(id, ActorRecord::id_of(&node, &boot, pid2, start)); }
        if start2 != start { prop_assert_ne!(id, ActorRecord::id_of(&node, &boot, pid, start2)); }
        prop_assert_ne!(id, ActorRecord::id_of(&node, &boot, pid.wrapping_add(1), start));
        prop_assert_ne!(id, ActorRecord::id_of(&node, &boot, pid, start.wrapping_add(1)));
        // Dictionary and actor ids live in different domains.
        prop_assert_ne!(&id[..], &independent_id("ritma/dict-id/v1", Value::Array(vec![
            Value::Text(node.clone()), Value::Bytes(boot.to_vec()),
            Value::Integer(pid.into()), Value::Integer(start.into()),
        ]))[..]);
    }
}

#[test]
fn blocks_and_store_meta_round_trip_and_are_strict() {
    let leaves = vec![sample_atom().encode()];
    let ids = ritma_schemas::packed::IdIndex::of_leaves(&leaves).unwrap();
    let block = ritma_schemas::packed::PackedBlock::pack(7, 1, 1000, &leaves, &ids).unwrap();
    assert_eq!(
        ritma_schemas::packed::PackedBlock::decode(&block.encode()).unwrap(),
        block
    );
    let empty = ritma_schemas::packed::PackedBlock {
        count: 0,
        ..block.clone()
    };
    assert_eq!(
        ritma_schemas::packed::PackedBlock::decode(&empty.encode())
            .unwrap_err()
            .field,
        "count"
    );
    let meta = StoreMeta {
        format_version: 1,
        node: "web-1".into(),
        window_len_ns: 1_000_000_000,
        cone_lib_version: 1,
        taint_ttl_windows: 300,
    };
    assert_eq!(StoreMeta::decode(&meta.encode()).unwrap(), meta);
    let bad = StoreMeta {
        window_len_ns: 7,
        ..meta.clone()
    };
    assert_eq!(
        StoreMeta::decode(&bad.encode()).unwrap_err().field,
        "window_len_ns"
    );
    let no_ttl = StoreMeta {
        taint_ttl_windows: 0,
        ..meta.clone()
    };
    assert_eq!(
        StoreMeta::decode(&no_ttl.encode()).unwrap_err().field,
        "taint_ttl_windows"
    );
    // A version 1 StoreMeta (format 3 and before, no taint lifetime) is not decoded, but
    // its format version can still be named.
    let mut e = ritma_schemas::cbor::Encoder::new();
    e.array(6)
        .uint(13)
        .uint(1)
        .uint(3)
        .text("web-1")
        .uint(1_000_000_000)
        .uint(1);
    let v1 = e.into_bytes();
    assert!(StoreMeta::decode(&v1).is_err());
    assert_eq!(StoreMeta::format_version_of(&v1), Some(3));
    assert_eq!(StoreMeta::format_version_of(&meta.encode()), Some(1));
    assert_eq!(StoreMeta::format_version_of(b"not cbor"), None);
    // Neither is a window leaf: AnyRecord does not accept them, a typed decoder names them.
    assert!(AnyRecord::decode(&block.encode()).is_err());
    let e = EventAtom::decode(&block.encode()).unwrap_err();
    assert_eq!(
        e.kind,
        DecodeErrorKind::WrongRecordType {
            expected: 2,
            found: 12
        }
    );
}

#[test]
fn an_event_atom_with_given_paths_is_version_2_and_strict() {
    let id = |b: u8| [b; 16];
    let mut a = EventAtom {
        seq: 7,
        t_ns: 5,
        event_type: EventType::Open,
        actor: id(1),
        object: id(2),
        flags: 0,
        arg_hash: None,
        payload_ref: None,
        given: Vec::new(),
    };
    let v1 = a.encode();
    assert_eq!(&v1[..3], &[0x8a, 0x02, 0x01]);
    a.given = vec![Some(id(3))];
    let v2 = a.encode();
    // One element more, version 2, and the given ids last.
    assert_eq!(&v2[..3], &[0x8b, 0x02, 0x02]);
    assert!(v2.ends_with(&[&[0x81, 0x50][..], &id(3)[..]].concat()));
    assert_eq!(EventAtom::decode(&v2).unwrap(), a);
    assert_eq!(a.given_object(), Some(id(3)));

    // Version 2 needs its element, and version 1 refuses it.
    assert!(EventAtom::decode(&with_field(&v1, 1, &uint(2))).is_err());
    let mut v1_long = v2.clone();
    v1_long[2] = 0x01;
    assert!(EventAtom::decode(&v1_long).is_err());

    // The slot count follows the event type; at least one slot names a path.
    let mut bad = a.clone();
    bad.given = vec![Some(id(3)), None];
    assert!(EventAtom::decode(&bad.encode()).is_err());
    bad.given = vec![None];
    assert!(EventAtom::decode(&bad.encode()).is_err());
    bad.event_type = EventType::Connect;
    bad.given = vec![Some(id(3))];
    assert!(EventAtom::decode(&bad.encode()).is_err());
    let mut rename = a.clone();
    rename.event_type = EventType::Rename;
    rename.given = vec![None, Some(id(4))];
    assert_eq!(EventAtom::decode(&rename.encode()).unwrap(), rename);
    rename.given = vec![Some(id(4))];
    assert!(EventAtom::decode(&rename.encode()).is_err());
    // A given id of another length.
    let mut short = v2.clone();
    let n = short.len();
    short.truncate(n - 17);
    short.extend([0x81, 0x4f]);
    short.extend([3u8; 15]);
    assert!(EventAtom::decode(&short).is_err());
}
