//! Integrity-path benchmarks: Merkle window build, inclusion verification,
//! EventAtom encode/strict decode, checkpoint sign/verify.
//!
//! Run with `cargo bench -p ritma-benches --bench integrity`; results and goals
//! are recorded in `benches/RESULTS.md`.

use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use ritma_schemas::hash::Hash32;
use ritma_schemas::merkle::{
    inclusion_proof, root, verify_inclusion, Blake3Tree, Frontier, Sha256Tree, TreeHash,
};
use ritma_schemas::note::{Checkpoint, NoteSigner};
use ritma_schemas::records::{atom_flags, EventAtom, EventType, Record};

/// Leaves in one benchmark window.
const WINDOW_LEAVES: usize = 100_000;
/// Bytes per leaf (an encoded EventAtom is 85 bytes with arg_hash, ~100 with more fields).
const LEAF_LEN: usize = 100;
/// Leaves in the tree the inclusion proofs are drawn from.
const PROOF_TREE_LEAVES: usize = 1 << 20;
/// Number of precomputed inclusion proofs.
const PROOFS: usize = 1024;

/// Deterministic "random" bytes: the synthetic workload's generator.
use ritma_sources::synth::Rng as SplitMix;

/// 100_000 deterministic 100-byte leaves, stored contiguously.
fn window_leaves() -> Vec<[u8; LEAF_LEN]> {
    let mut rng = SplitMix(0x5157_4d41_0000_0001);
    (0..WINDOW_LEAVES)
        .map(|_| {
            let mut leaf = [0u8; LEAF_LEN];
            rng.fill(&mut leaf);
            leaf
        })
        .collect()
}

fn merkle_window(c: &mut Criterion) {
    let leaves = window_leaves();
    let mut g = c.benchmark_group("merkle_window");
    g.throughput(Throughput::Elements(WINDOW_LEAVES as u64));
    g.sample_size(20);
    g.warm_up_time(Duration::from_secs(1));
    g.measurement_time(Duration::from_secs(4));

    // Baseline: hash every leaf with plain BLAKE3 and nothing else.
    g.bench_function("leaf_hash_only", |b| {
        b.iter(|| {
            let mut acc = [0u8; 32];
            for leaf in &leaves {
                let h = blake3::hash(black_box(leaf));
                acc[0] ^= h.as_bytes()[0];
            }
            black_box(acc)
        })
    });

    // The window tree: keyed leaf hash + amortised one node hash per leaf, then the root.
    g.bench_function("tree_build", |b| {
        b.iter(|| {
            let mut f = Frontier::new();
            for leaf in &leaves {
                f.push_data::<Blake3Tree>(black_box(leaf));
            }
            black_box(f.root::<Blake3Tree>())
        })
    });

    // Same shape, RFC 6962 SHA-256, for reference.
    g.bench_function("tree_build_sha256", |b| {
        b.iter(|| {
            let mut f = Frontier::new();
            for leaf in &leaves {
                f.push_data::<Sha256Tree>(black_box(leaf));
            }
            black_box(f.root::<Sha256Tree>())
        })
    });
    g.finish();
}

/// Every level of a perfect tree, leaves first; `levels.last()` is `[root]`.
fn perfect_levels(leaf_hashes: Vec<Hash32>) -> Vec<Vec<Hash32>> {
    assert!(leaf_hashes.len().is_power_of_two());
    let mut levels = vec![leaf_hashes];
    while levels.last().unwrap().len() > 1 {
        let next = levels
            .last()
            .unwrap()
            .chunks_exact(2)
            .map(|p| Blake3Tree::node(&p[0], &p[1]))
            .collect();
        levels.push(next);
    }
    levels
}

/// RFC 9162 inclusion path of `index` in a perfect tree: siblings, deepest first.
fn sibling_path(levels: &[Vec<Hash32>], index: usize) -> Vec<Hash32> {
    levels[..levels.len() - 1]
        .iter()
        .enumerate()
        .map(|(d, level)| level[(index >> d) ^ 1])
        .collect()
}

fn inclusion_verify(c: &mut Criterion) {
    let leaf_hashes: Vec<Hash32> = (0..PROOF_TREE_LEAVES as u64)
        .map(|i| Blake3Tree::leaf(&i.to_be_bytes()))
        .collect();
    let levels = perfect_levels(leaf_hashes);
    let tree_root = levels.last().unwrap()[0];
    let size = PROOF_TREE_LEAVES as u64;

    // Cross-check the level table against the library once (each library proof is O(n)).
    assert_eq!(tree_root, root::<Blake3Tree>(&levels[0]));
    let probe = 777_777usize;
    assert_eq!(
        sibling_path(&levels, probe),
        inclusion_proof::<Blake3Tree, _>(&levels[0][..], probe as u64).unwrap()
    );

    let mut rng = SplitMix(0x1c1_0000_0000_0002);
    let proofs: Vec<(u64, Hash32, Vec<Hash32>)> = (0..PROOFS)
        .map(|_| {
            let i = (rng.next_u64() % size) as usize;
            (i as u64, levels[0][i], sibling_path(&levels, i))
        })
        .collect();
    for (i, leaf, proof) in &proofs {
        verify_inclusion::<Blake3Tree>(*i, size, leaf, proof, &tree_root).expect("proof verifies");
    }
    drop(levels);

    let mut g = c.benchmark_group("inclusion_verify");
    g.throughput(Throughput::Elements(1));
    g.warm_up_time(Duration::from_secs(1));
    g.measurement_time(Duration::from_secs(4));
    g.bench_function("blake3_1M_leaves", |b| {
        let mut k = 0usize;
        b.iter(|| {
            let (i, leaf, proof) = &proofs[k % PROOFS];
            k = k.wrapping_add(1);
            let r = verify_inclusion::<Blake3Tree>(
                black_box(*i),
                black_box(size),
                black_box(leaf),
                black_box(proof),
                black_box(&tree_root),
            );
            debug_assert!(r.is_ok());
            r
        })
    });
    g.finish();
}

fn typical_atom() -> EventAtom {
    let mut rng = SplitMix(0xa70e_0000_0000_0003);
    let mut actor = [0u8; 16];
    let mut object = [0u8; 16];
    let mut arg_hash = [0u8; 32];
    rng.fill(&mut actor);
    rng.fill(&mut object);
    rng.fill(&mut arg_hash);
    EventAtom {
        seq: 1_000_000_007,
        t_ns: 500_000_123,
        event_type: EventType::Open,
        actor,
        object,
        flags: atom_flags::READ | atom_flags::WRITE | atom_flags::ARG_HASHED,
        arg_hash: Some(arg_hash),
        payload_ref: None,
        given: Vec::new(),
    }
}

fn event_atom(c: &mut Criterion) {
    let atom = typical_atom();
    let bytes = atom.encode();
    assert_eq!(EventAtom::decode(&bytes).unwrap(), atom);

    let mut g = c.benchmark_group("event_atom");
    g.throughput(Throughput::Elements(1));
    g.warm_up_time(Duration::from_secs(1));
    g.measurement_time(Duration::from_secs(3));
    g.bench_function("encode_into", |b| {
        let mut buf = Vec::with_capacity(256);
        b.iter(|| {
            buf.clear();
            black_box(&atom).encode_into(&mut buf);
            black_box(buf.len())
        })
    });
    g.bench_function("decode_strict", |b| {
        b.iter(|| EventAtom::decode(black_box(&bytes)).unwrap())
    });
    g.finish();
    eprintln!("event_atom: encoded length {} bytes", bytes.len());
}

fn checkpoint(c: &mut Criterion) {
    let signer = NoteSigner::from_seed("ritma/bench-node", [7u8; 32]).unwrap();
    let verifier = signer.verifier();
    let cp = Checkpoint::for_node("bench-node", 123_456, Blake3Tree::leaf(b"bench root")).unwrap();
    let note = cp.sign(&signer).unwrap();
    assert_eq!(Checkpoint::verify(&note, &verifier).unwrap(), cp);

    let mut g = c.benchmark_group("checkpoint");
    g.throughput(Throughput::Elements(1));
    g.warm_up_time(Duration::from_secs(1));
    g.measurement_time(Duration::from_secs(3));
    g.bench_function("sign", |b| {
        b.iter(|| black_box(&cp).sign(black_box(&signer)).unwrap())
    });
    g.bench_function("verify", |b| {
        b.iter(|| Checkpoint::verify(black_box(&note), black_box(&verifier)).unwrap())
    });
    g.finish();
}

criterion_group!(
    benches,
    merkle_window,
    inclusion_verify,
    event_atom,
    checkpoint
);
criterion_main!(benches);
