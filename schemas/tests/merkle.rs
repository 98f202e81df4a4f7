//! Merkle trees: the published RFC 6962 vectors (SHA-256) against the generic code,
//! and property tests of proofs over both hashes.

use base64::Engine;
use proptest::prelude::*;
use ritma_schemas::merkle::{
    consistency_proof, inclusion_proof, root, verify_consistency, verify_inclusion, Blake3Tree,
    Frontier, Sha256Tree, TreeHash,
};
use ritma_schemas::Hash32;
use serde::Deserialize;
use std::path::{Path, PathBuf};

fn vectors_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/vectors/merkle-sha256")
}

fn json_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let p = entry.unwrap().path();
        if p.is_dir() {
            json_files(&p, out);
        } else if p.extension().is_some_and(|e| e == "json") {
            out.push(p);
        }
    }
    out.sort();
}

fn b64(s: &str) -> Vec<u8> {
    base64::engine::general_purpose::STANDARD.decode(s).unwrap()
}

/// A value that must be a hash: `None` if it is not 32 bytes (the typed API cannot
/// even be called with it, which is a rejection).
fn hash(s: &str) -> Option<Hash32> {
    b64(s).try_into().ok()
}

/// A root compared for equality only: a value that is not 32 bytes stands for a
/// root no tree has, so it maps to a fixed function of its bytes, keeping equal
/// values equal and distinct values distinct.
fn root_arg(s: &str) -> Hash32 {
    let bytes = b64(s);
    match bytes.clone().try_into() {
        Ok(h) => h,
        Err(_) => Sha256Tree::leaf(&[b"not-a-root:".as_slice(), &bytes].concat()),
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct InclusionCase {
    leaf_idx: u64,
    tree_size: u64,
    root: String,
    leaf_hash: String,
    proof: Option<Vec<String>>,
    want_err: bool,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ConsistencyCase {
    size1: u64,
    size2: u64,
    root1: String,
    root2: String,
    proof: Option<Vec<String>>,
    want_err: bool,
}

fn proof_arg(p: &Option<Vec<String>>) -> Option<Vec<Hash32>> {
    p.iter().flatten().map(|s| hash(s)).collect()
}

#[test]
fn rfc6962_inclusion_vectors() {
    let mut files = Vec::new();
    json_files(&vectors_dir().join("inclusion"), &mut files);
    assert!(files.len() > 80, "vectors missing: {}", files.len());
    let (mut happy, mut tampered) = (0, 0);
    for f in &files {
        let c: InclusionCase = serde_json::from_str(&std::fs::read_to_string(f).unwrap()).unwrap();
        let result = match (hash(&c.leaf_hash), proof_arg(&c.proof)) {
            (Some(leaf), Some(proof)) => verify_inclusion::<Sha256Tree>(
                c.leaf_idx,
                c.tree_size,
                &leaf,
                &proof,
                &root_arg(&c.root),
            )
            .map_err(|e| e.to_string()),
            _ => Err("not a 32-byte hash".to_string()),
        };
        assert_eq!(result.is_err(), c.want_err, "{}: {result:?}", f.display());
        if c.want_err {
            tampered += 1
        } else {
            happy += 1
        }
    }
    assert!(
        happy >= 5 && tampered >= 50,
        "happy {happy}, tampered {tampered}"
    );
}

#[test]
fn rfc6962_consistency_vectors() {
    let mut files = Vec::new();
    json_files(&vectors_dir().join("consistency"), &mut files);
    assert!(files.len() > 50, "vectors missing: {}", files.len());
    for f in &files {
        let c: ConsistencyCase =
            serde_json::from_str(&std::fs::read_to_string(f).unwrap()).unwrap();
        let result = match proof_arg(&c.proof) {
            Some(proof) => verify_consistency::<Sha256Tree>(
                c.size1,
                c.size2,
                &root_arg(&c.root1),
                &root_arg(&c.root2),
                &proof,
            )
            .map_err(|e| e.to_string()),
            None => Err("not a 32-byte hash".to_string()),
        };
        assert_eq!(result.is_err(), c.want_err, "{}: {result:?}", f.display());
    }
}

/// The vectors' standard leaves give the published roots.
#[test]
fn rfc6962_reference_roots() {
    let inputs = [
        "",
        "00",
        "10",
        "2021",
        "3031",
        "40414243",
        "5051525354555657",
        "606162636465666768696a6b6c6d6e6f",
    ];
    let leaves: Vec<Hash32> = inputs
        .iter()
        .map(|h| Sha256Tree::leaf(&hex::decode(h).unwrap()))
        .collect();
    assert_eq!(
        hex::encode(root::<Sha256Tree>(&leaves)),
        "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328"
    );
    assert_eq!(
        hex::encode(root::<Sha256Tree>(&[])),
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    );
    // Every proof the code makes for these leaves verifies against the published root.
    let r = root::<Sha256Tree>(&leaves);
    for i in 0..8 {
        let p = inclusion_proof::<Sha256Tree, _>(&leaves[..], i).unwrap();
        verify_inclusion::<Sha256Tree>(i, 8, &leaves[i as usize], &p, &r).unwrap();
    }
}

fn leaves<H: TreeHash>(n: u64, salt: u64) -> Vec<Hash32> {
    (0..n)
        .map(|i| H::leaf(&[i.to_le_bytes(), salt.to_le_bytes()].concat()))
        .collect()
}

fn flip(h: &mut Hash32, bit: usize) {
    h[bit / 8 % 32] ^= 1 << (bit % 8);
}

/// Whether `index` takes the same left/right turns up the trees of both sizes,
/// computed from the RFC 9162 recursive definition.
fn same_sides(index: u64, a: u64, b: u64) -> bool {
    fn sides(m: u64, n: u64, out: &mut Vec<bool>) {
        if n <= 1 {
            return;
        }
        let k = 1u64 << (63 - (n - 1).leading_zeros());
        if m < k {
            sides(m, k, out);
            out.push(false);
        } else {
            sides(m - k, n - k, out);
            out.push(true);
        }
    }
    let (mut x, mut y) = (Vec::new(), Vec::new());
    sides(index, a, &mut x);
    sides(index, b, &mut y);
    x == y
}

fn check_inclusion<H: TreeHash>(
    size: u64,
    index: u64,
    bit: usize,
    salt: u64,
) -> Result<(), TestCaseError> {
    let l = leaves::<H>(size, salt);
    let r = root::<H>(&l);
    let proof = inclusion_proof::<H, _>(&l[..], index).unwrap();
    prop_assert!(verify_inclusion::<H>(index, size, &l[index as usize], &proof, &r).is_ok());
    // A different leaf, root, index or size, or any flipped bit in the proof, fails.
    let mut bad_leaf = l[index as usize];
    flip(&mut bad_leaf, bit);
    prop_assert!(verify_inclusion::<H>(index, size, &bad_leaf, &proof, &r).is_err());
    let mut bad_root = r;
    flip(&mut bad_root, bit);
    prop_assert!(
        verify_inclusion::<H>(index, size, &l[index as usize], &proof, &bad_root).is_err()
    );
    for other in [index.wrapping_sub(1), index + 1, index ^ 2, size] {
        if other != index {
            prop_assert!(
                verify_inclusion::<H>(other, size, &l[index as usize], &proof, &r).is_err()
            );
        }
    }
    // The size is bound by the signed checkpoint, not by the proof: a wrong size can
    // only pass where that size's honest proof has the same shape (length and sides).
    for other_size in [size - 1, size + 1, size * 2] {
        if other_size != size && other_size > index {
            let accepted =
                verify_inclusion::<H>(index, other_size, &l[index as usize], &proof, &r).is_ok();
            let other = leaves::<H>(other_size, salt);
            let same_shape = inclusion_proof::<H, _>(&other[..], index).unwrap().len()
                == proof.len()
                && same_sides(index, size, other_size);
            prop_assert!(
                !accepted || same_shape,
                "size {size} accepted as {other_size}"
            );
        }
    }
    for i in 0..proof.len() {
        let mut p = proof.clone();
        flip(&mut p[i], bit);
        prop_assert!(verify_inclusion::<H>(index, size, &l[index as usize], &p, &r).is_err());
    }
    Ok(())
}

fn check_consistency<H: TreeHash>(
    size1: u64,
    size2: u64,
    bit: usize,
    salt: u64,
) -> Result<(), TestCaseError> {
    let l = leaves::<H>(size2, salt);
    let (r1, r2) = (root::<H>(&l[..size1 as usize]), root::<H>(&l));
    let proof = consistency_proof::<H, _>(&l[..], size1).unwrap();
    prop_assert!(verify_consistency::<H>(size1, size2, &r1, &r2, &proof).is_ok());
    let (mut b1, mut b2) = (r1, r2);
    flip(&mut b1, bit);
    flip(&mut b2, bit);
    prop_assert!(verify_consistency::<H>(size1, size2, &b1, &r2, &proof).is_err());
    prop_assert!(verify_consistency::<H>(size1, size2, &r1, &b2, &proof).is_err());
    for i in 0..proof.len() {
        let mut p = proof.clone();
        flip(&mut p[i], bit);
        prop_assert!(verify_consistency::<H>(size1, size2, &r1, &r2, &p).is_err());
    }
    // As for inclusion, sizes are bound by the checkpoints: a wrong pair of sizes can
    // only pass where its honest proof has the same length.
    for (s1, s2) in [
        (size1 + 1, size2),
        (size1 - 1, size2),
        (size1, size2 + 1),
        (size1, size2 - 1),
    ] {
        if (s1, s2) != (size1, size2) && s1 >= 1 && s1 <= s2 {
            let accepted = verify_consistency::<H>(s1, s2, &r1, &r2, &proof).is_ok();
            let other = leaves::<H>(s2, salt);
            let honest_len = if s1 == s2 {
                0
            } else {
                consistency_proof::<H, _>(&other[..], s1).unwrap().len()
            };
            prop_assert!(
                !accepted || honest_len == proof.len(),
                "{size1}->{size2} accepted as {s1}->{s2}"
            );
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn inclusion_proofs_verify_and_tampering_fails(size in 1u64..3000, index_seed: u64, bit in 0usize..256, salt: u64) {
        let index = index_seed % size;
        check_inclusion::<Blake3Tree>(size, index, bit, salt)?;
        check_inclusion::<Sha256Tree>(size, index, bit, salt)?;
    }

    #[test]
    fn consistency_proofs_verify_and_tampering_fails(size2 in 1u64..3000, seed: u64, bit in 0usize..256, salt: u64) {
        let size1 = 1 + seed % size2;
        check_consistency::<Blake3Tree>(size1, size2, bit, salt)?;
        check_consistency::<Sha256Tree>(size1, size2, bit, salt)?;
    }

    #[test]
    fn frontier_root_equals_batch_root(n in 0u64..3000, salt: u64) {
        let l = leaves::<Blake3Tree>(n, salt);
        let mut f = Frontier::new();
        for h in &l {
            f.push::<Blake3Tree>(*h);
        }
        prop_assert_eq!(f.nodes().len() as u32, n.count_ones());
        prop_assert_eq!(f.root::<Blake3Tree>(), root::<Blake3Tree>(&l));
        // Rebuilding from stored parts continues the same log.
        let mut g = Frontier::from_parts(f.size(), f.nodes().to_vec()).unwrap();
        let extra = Blake3Tree::leaf(b"next");
        f.push::<Blake3Tree>(extra);
        g.push::<Blake3Tree>(extra);
        prop_assert_eq!(f.root::<Blake3Tree>(), g.root::<Blake3Tree>());
    }
}
