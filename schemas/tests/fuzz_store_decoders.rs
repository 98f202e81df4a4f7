//! Proptest "fuzzing" of the decoders of store files outside `AnyRecord`: the hour index
//! (TimeIndex, ConeRefs, EdgeRefs, TaintIndex), graph edge parts, blocks and StoreMeta.
//! On arbitrary bytes and on mutated valid encodings each decoder must not panic; what it
//! accepts must re-encode to exactly its input, and the re-encode guard (`NotCanonical`)
//! must never be what refuses: every non-canonical form is caught by a rule.

use proptest::collection::vec;
use proptest::prelude::*;
use proptest::sample::Index;
use ritma_schemas::cbor::{DecodeError, DecodeErrorKind};
use ritma_schemas::index::*;
use ritma_schemas::records::*;

/// Decodes `bytes` as record type `ty` and re-encodes what it accepts.
fn roundtrip(ty: u64, bytes: &[u8]) -> Result<Vec<u8>, DecodeError> {
    fn re<R: Record>(b: &[u8]) -> Result<Vec<u8>, DecodeError> {
        R::decode(b).map(|r| r.encode())
    }
    match ty {
        12 => re::<Block>(bytes),
        13 => re::<StoreMeta>(bytes),
        14 => re::<TimeIndex>(bytes),
        15 => re::<ConeRefs>(bytes),
        16 => re::<EdgeRefs>(bytes),
        17 => re::<EdgePart>(bytes),
        _ => re::<TaintIndex>(bytes),
    }
}

const TYPES: [u64; 7] = [12, 13, 14, 15, 16, 17, 18];

fn check_all(bytes: &[u8]) -> Result<usize, TestCaseError> {
    let mut accepted = 0;
    for ty in TYPES {
        match roundtrip(ty, bytes) {
            Ok(again) => {
                prop_assert_eq!(&again, bytes, "type {} accepted a non-canonical input", ty);
                accepted += 1;
            }
            Err(e) => {
                prop_assert_ne!(
                    &e.kind,
                    &DecodeErrorKind::NotCanonical,
                    "guard fired: {}",
                    e
                );
                prop_assert!(e.offset <= bytes.len());
            }
        }
    }
    // The type element tells the records apart: at most one accepts.
    prop_assert!(accepted <= 1);
    Ok(accepted)
}

fn id(b: u8) -> [u8; 16] {
    [b; 16]
}

/// One valid encoding of each type, with several entries so mutations reach the rules
/// between entries (ordering, counts, nested records).
fn seeds() -> Vec<Vec<u8>> {
    let edge = |s: u8, d: u8| Edge {
        kind: EdgeKind::ProcToFile,
        src: id(s),
        dst: id(d),
        flags: edge_flags::WRITE,
        first_t_ns: -5,
        last_t_ns: 900,
        count: 3,
    };
    vec![
        Block {
            window: 1_700_000_000,
            index: 1,
            first_leaf: 1000,
            records: vec![edge(1, 2).encode(), edge(1, 3).encode()],
        }
        .encode(),
        StoreMeta {
            format_version: 1,
            node: "web-1".into(),
            window_len_ns: 1_000_000_000,
            cone_lib_version: 1,
        }
        .encode(),
        TimeIndex {
            node: "web-1".into(),
            hour: 472_222,
            bucket_ns: 10_000_000_000,
            buckets: vec![
                TimeBucket {
                    bucket: 170_000_000,
                    events: 4,
                    spans: vec![
                        LeafSpan {
                            window_index: 3,
                            first_leaf: 2,
                            last_leaf: 9,
                        },
                        LeafSpan {
                            window_index: 4,
                            first_leaf: 0,
                            last_leaf: 0,
                        },
                    ],
                },
                TimeBucket {
                    bucket: 170_000_001,
                    events: 1,
                    spans: vec![LeafSpan {
                        window_index: 12,
                        first_leaf: 5,
                        last_leaf: 5,
                    }],
                },
            ],
        }
        .encode(),
        ConeRefs {
            node: "web-1".into(),
            hour: 472_222,
            cones: vec![
                ("exec_from_tmp".into(), vec![(0, 9), (7, 41)]),
                ("memfd_exec".into(), vec![(3, 300)]),
            ],
        }
        .encode(),
        EdgeRefs {
            node: "web-1".into(),
            hour: 472_222,
            entities: vec![(id(1), vec![0, 7, 8]), (id(2), vec![7])],
        }
        .encode(),
        EdgePart {
            node: "web-1".into(),
            hour: 472_222,
            part: 2,
            edges: vec![
                (3, edge(1, 2).encode()),
                (3, edge(1, 3).encode()),
                (4, edge(1, 2).encode()),
            ],
        }
        .encode(),
        TaintIndex {
            node: "web-1".into(),
            hour: 472_222,
            ttl_windows: 300,
            changes: vec![
                TaintEntry {
                    window_index: 3,
                    seed: id(1),
                    entity: id(2),
                    enters: true,
                },
                TaintEntry {
                    window_index: 3,
                    seed: id(1),
                    entity: id(3),
                    enters: true,
                },
                TaintEntry {
                    window_index: 9,
                    seed: id(1),
                    entity: id(2),
                    enters: false,
                },
            ],
        }
        .encode(),
    ]
}

#[derive(Clone, Debug)]
enum Op {
    FlipBit(Index, u8),
    SetByte(Index, u8),
    Insert(Index, u8),
    Delete(Index),
    DuplicateRange(Index, usize),
    Truncate(Index),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => (any::<Index>(), 0u8..8).prop_map(|(i, b)| Op::FlipBit(i, b)),
        2 => (any::<Index>(), any::<u8>()).prop_map(|(i, b)| Op::SetByte(i, b)),
        1 => (any::<Index>(), any::<u8>()).prop_map(|(i, b)| Op::Insert(i, b)),
        1 => any::<Index>().prop_map(Op::Delete),
        1 => (any::<Index>(), 1usize..40).prop_map(|(i, n)| Op::DuplicateRange(i, n)),
        1 => any::<Index>().prop_map(Op::Truncate),
    ]
}

fn apply(ops: &[Op], mut b: Vec<u8>) -> Vec<u8> {
    for op in ops {
        let len = b.len();
        match op {
            _ if len == 0 => b.push(0x80),
            Op::FlipBit(i, bit) => b[i.index(len)] ^= 1u8 << *bit,
            Op::SetByte(i, v) => b[i.index(len)] = *v,
            Op::Insert(i, v) => b.insert(i.index(len + 1), *v),
            Op::Delete(i) => {
                b.remove(i.index(len));
            }
            Op::DuplicateRange(i, n) => {
                let s = i.index(len);
                let chunk = b[s..(s + n).min(len)].to_vec();
                b.splice(s..s, chunk);
            }
            Op::Truncate(i) => b.truncate(i.index(len)),
        }
    }
    b
}

#[test]
fn every_seed_is_accepted_by_exactly_its_decoder() {
    for (seed, ty) in seeds().iter().zip(TYPES) {
        assert_eq!(roundtrip(ty, seed).unwrap(), *seed, "type {ty}");
        assert_eq!(check_all(seed).unwrap(), 1, "type {ty}");
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(3000))]

    #[test]
    fn store_decoders_on_arbitrary_bytes(bytes in vec(any::<u8>(), 0..300)) {
        check_all(&bytes)?;
    }

    #[test]
    fn store_decoders_on_mutated_valid_files(seed in any::<Index>(), ops in vec(op(), 1..6)) {
        let seeds = seeds();
        check_all(&apply(&ops, seed.get(&seeds).clone()))?;
    }
}
