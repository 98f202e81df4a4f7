//! Packed blocks (FORMAT.md §8.2): every mix of records packs and unpacks to the same
//! leaves, and unpacking accepts only the packing itself.

use proptest::collection::vec;
use proptest::prelude::*;
use ritma_schemas::cbor::DecodeErrorKind;
use ritma_schemas::packed::{IdIndex, IdTable, PackedBlock};
use ritma_schemas::records::*;

/// A few ids, so leaves share them as a window's records do.
fn id(n: u8) -> [u8; 16] {
    std::array::from_fn(|i| n.wrapping_mul(31).wrapping_add(i as u8))
}

fn leaf() -> impl Strategy<Value = Vec<u8>> {
    let ids = 0u8..12;
    let time = -2_000_000_000i64..2_000_000_000;
    prop_oneof![
        (0u8..3, vec(any::<u8>(), 0..40)).prop_map(|(k, v)| {
            let kind = [DictKind::Path, DictKind::Comm, DictKind::Flow][k as usize];
            DictEntry::new(kind, &v).encode()
        }),
        (
            any::<u64>(),
            time.clone(),
            ids.clone(),
            ids.clone(),
            any::<bool>(),
            any::<[u8; 32]>()
        )
            .prop_map(|(seq, t_ns, a, o, hashed, h)| EventAtom {
                seq,
                t_ns,
                event_type: EventType::Open,
                actor: id(a),
                object: id(o),
                flags: atom_flags::READ,
                arg_hash: hashed.then_some(h),
                payload_ref: None,
                given: Vec::new(),
            }
            .encode()),
        (ids.clone(), ids.clone(), time.clone(), 0i64..1000, 1u64..5).prop_map(
            |(s, d, t, dt, count)| Edge {
                kind: EdgeKind::ProcToFile,
                src: id(s),
                dst: id(d),
                flags: edge_flags::WRITE,
                first_t_ns: t,
                last_t_ns: t + dt,
                count,
            }
            .encode()
        ),
        (
            any::<u32>(),
            any::<u64>(),
            ids.clone(),
            proptest::option::of(ids.clone()),
            any::<u64>()
        )
            .prop_map(|(pid, start_ns, a, parent, cgroup_id)| ActorRecord {
                actor: id(a),
                pid,
                ppid: pid / 2,
                parent: parent.map(id),
                start_ns,
                uid: 0,
                gid: 0,
                euid: 1000,
                exe: Some(id(a + 1)),
                exe_hash: None,
                comm: id(a + 2),
                cgroup_id,
                mnt_ns: 4_026_531_840,
                pid_ns: 4_026_531_836,
                net_ns: 4_026_531_992,
                container: None,
                service: parent.map(id),
            }
            .encode()),
        (time, ids, vec(any::<u64>(), 0..4)).prop_map(|(t, b, mut exceptions)| {
            exceptions.sort_unstable();
            exceptions.dedup();
            ConeInstance {
                cone_id: "exec_from_tmp".into(),
                cone_version: 1,
                t_start_ns: t,
                first_seq: 10,
                last_seq: 20,
                count: 1,
                bindings: vec![("f".into(), id(b)), ("p".into(), id(b + 1))],
                exceptions,
            }
            .encode()
        }),
    ]
}

/// Packs a window's leaves into blocks of 1000 and unpacks them in order.
fn round_trip(window: u64, leaves: &[Vec<u8>]) -> Vec<Vec<u8>> {
    let ids = IdIndex::of_leaves(leaves).unwrap();
    let table = IdTable::decode(&ids.table(window).encode()).unwrap();
    let mut used = 0;
    let mut out = Vec::new();
    for (i, chunk) in leaves.chunks(MAX_BLOCK_RECORDS).enumerate() {
        let packed = PackedBlock::pack(window, i as u32, (i * 1000) as u64, chunk, &ids).unwrap();
        let stored = PackedBlock::decode(&packed.encode()).unwrap();
        assert_eq!(stored, packed);
        assert_eq!(stored.repacked(&table).unwrap(), packed);
        out.extend(stored.unpack(&table, Some(&mut used)).unwrap());
    }
    assert_eq!(used, table.ids.len(), "every table entry is used");
    out
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(100))]

    #[test]
    fn any_mix_of_records_unpacks_to_its_leaves(leaves in vec(leaf(), 1..2500)) {
        prop_assert_eq!(round_trip(1_763_884_807, &leaves), leaves);
    }

    /// A changed byte of a packed block either fails or unpacks to leaves whose packing
    /// is the changed block: never a panic, never a second form of the same leaves.
    #[test]
    fn a_changed_block_fails_or_is_the_packing_of_what_it_unpacks_to(
        leaves in vec(leaf(), 1..60),
        at in any::<prop::sample::Index>(),
        bit in 0u8..8,
    ) {
        let ids = IdIndex::of_leaves(&leaves).unwrap();
        let table = ids.table(5);
        let mut bytes = PackedBlock::pack(5, 0, 0, &leaves, &ids).unwrap().encode();
        let i = at.index(bytes.len());
        bytes[i] ^= 1 << bit;
        if let Ok(block) = PackedBlock::decode(&bytes) {
            if let Ok(again) = block.repacked(&table) {
                prop_assert_eq!(again.encode(), bytes);
            }
        }
    }
}

/// A block of three atoms and an edge, its table and its packing.
fn sample() -> (IdTable, PackedBlock, Vec<Vec<u8>>) {
    let atom = |seq, t_ns, a, o| EventAtom {
        seq,
        t_ns,
        event_type: EventType::Open,
        actor: id(a),
        object: id(o),
        flags: 0,
        arg_hash: None,
        payload_ref: None,
        given: Vec::new(),
    };
    let leaves = vec![
        atom(1, 1000, 1, 2).encode(),
        atom(2, 1500, 1, 3).encode(),
        atom(3, 1200, 4, 2).encode(),
        Edge {
            kind: EdgeKind::ProcToFile,
            src: id(1),
            dst: id(2),
            flags: edge_flags::READ,
            first_t_ns: 1000,
            last_t_ns: 1000,
            count: 1,
        }
        .encode(),
    ];
    let ids = IdIndex::of_leaves(&leaves).unwrap();
    let packed = PackedBlock::pack(9, 0, 0, &leaves, &ids).unwrap();
    (ids.table(9), packed, leaves)
}

fn column(b: &mut PackedBlock, t: u64, p: u64) -> &mut ritma_schemas::packed::Column {
    b.columns
        .iter_mut()
        .find(|c| (c.record_type, c.position) == (t, p))
        .unwrap()
}

#[test]
fn columns_hold_deltas_references_and_same_leaf_bases() {
    let (table, mut b, leaves) = sample();
    assert_eq!(table.ids, vec![id(1), id(2), id(3), id(4)]);
    // t_ns 1000, 1500, 1200: zigzag deltas 2000, 1000, 599.
    let t = column(&mut b, 2, 3).clone();
    assert_eq!(
        (t.kinds, t.nums),
        (vec![0, 0, 0], vec![0xd0, 0x0f, 0xe8, 0x07, 0xd7, 0x04])
    );
    // Actors 1, 1, 4 are table entries 0, 0, 3.
    let a = column(&mut b, 2, 5).clone();
    assert_eq!((a.kinds, a.nums), (vec![1, 1, 1], vec![0, 0, 3]));
    // The edge's last time is coded against its first: zigzag(0).
    assert_eq!(column(&mut b, 4, 7).nums, vec![0]);
    assert_eq!(b.unpack(&table, Some(&mut 0)).unwrap(), leaves);
}

#[test]
fn only_the_packing_unpacks() {
    let (table, good, _) = sample();
    let fails = |b: &PackedBlock, table: &IdTable, used: Option<usize>, want: DecodeErrorKind| {
        let mut used = used;
        let e = b.unpack(table, used.as_mut()).unwrap_err();
        assert_eq!(e.kind, want, "{e}");
    };
    // A non-shortest LEB128: 2000 as three bytes.
    let mut b = good.clone();
    column(&mut b, 2, 3).nums.splice(0..2, [0xd0, 0x8f, 0x00]);
    fails(&b, &table, None, DecodeErrorKind::NonShortest);
    // A 16-byte string stored as plain bytes instead of a reference.
    let mut b = good.clone();
    let c = column(&mut b, 2, 5);
    c.kinds[0] = 2;
    c.nums[0] = 16;
    c.payload = id(1).to_vec();
    fails(
        &b,
        &table,
        None,
        DecodeErrorKind::Invalid("a 16-byte string outside the id table"),
    );
    // A reference past the table, and one that skips ahead of first use.
    let mut b = good.clone();
    column(&mut b, 2, 5).nums[2] = 4;
    fails(
        &b,
        &table,
        None,
        DecodeErrorKind::Invalid("a reference past the id table"),
    );
    let mut b = good.clone();
    column(&mut b, 2, 5).nums[0] = 1;
    fails(
        &b,
        &table,
        Some(0),
        DecodeErrorKind::Invalid("an id first used out of table order"),
    );
    // Bytes left over in a stream, and an unknown kind.
    let mut b = good.clone();
    column(&mut b, 2, 3).nums.push(0);
    fails(
        &b,
        &table,
        None,
        DecodeErrorKind::TrailingBytes { count: 1 },
    );
    let mut b = good.clone();
    column(&mut b, 2, 7).kinds[1] = 8;
    fails(&b, &table, None, DecodeErrorKind::UnknownValue { value: 8 });
    // A leaf type without columns.
    let mut b = good.clone();
    b.types[0] = 3;
    fails(
        &b,
        &table,
        None,
        DecodeErrorKind::Invalid("a leaf's type has no column 0"),
    );
    // A table listing an id twice.
    let twice = IdTable {
        window: 9,
        ids: vec![id(1), id(1)],
    };
    assert!(IdTable::decode(&twice.encode()).is_err());
    // Columns out of order.
    let mut b = good.clone();
    b.columns.swap(0, 1);
    assert_eq!(
        PackedBlock::decode(&b.encode()).unwrap_err().kind,
        DecodeErrorKind::NotAscending
    );
}
