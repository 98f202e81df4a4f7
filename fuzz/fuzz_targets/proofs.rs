//! The Merkle proof verifiers on arbitrary sizes, indices, hashes and proof lists.
//!
//! Input layout: byte 0 selects the tree hash (bit 0: SHA-256 RFC 6962, else keyed
//! BLAKE3) and how the two u64s are read (bit 1: as is; else small, masked to 0..=255
//! where proofs are short enough to be matched); bytes 1..9 and 9..17 are two u64 (big
//! endian); the rest is 32-byte hashes: leaf/root1, root, then the proof.
//!
//! Checks: no panic; the RFC 9162 preconditions give their errors; a proof of the shape
//! the verifier asks for never gets WrongProofLength again; the root an inclusion proof
//! leads to verifies and a changed root does not.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ritma_schemas::merkle::*;

type H32 = [u8; 32];

fn run<H: TreeHash>(a: u64, b: u64, h0: H32, h1: H32, proof: &[H32]) {
    // Inclusion of leaf h0 at index a in a tree of size b with root h1.
    match verify_inclusion::<H>(a, b, &h0, proof, &h1) {
        Err(ProofError::IndexOutOfRange { index, size }) => {
            assert!(index == a && size == b && a >= b)
        }
        Err(ProofError::WrongProofLength { expected, found }) => {
            assert!(a < b && found == proof.len() && expected <= 64);
            let right = vec![h0; expected];
            let r = verify_inclusion::<H>(a, b, &h0, &right, &h1);
            assert!(matches!(r, Ok(()) | Err(ProofError::RootMismatch)), "{r:?}");
        }
        Ok(()) | Err(ProofError::RootMismatch) => {
            assert!(a < b);
            let to = root_from_inclusion::<H>(a, b, &h0, proof).unwrap();
            assert_eq!(verify_inclusion::<H>(a, b, &h0, proof, &to), Ok(()));
            let mut other = to;
            other[31] ^= 0x80;
            assert_eq!(
                verify_inclusion::<H>(a, b, &h0, proof, &other),
                Err(ProofError::RootMismatch)
            );
        }
        Err(e) => panic!("unexpected {e:?}"),
    }
    // Consistency from size a (root h0) to size b (root h1), both directions.
    for (s1, s2) in [(a, b), (b, a)] {
        let r = verify_consistency::<H>(s1, s2, &h0, &h1, proof);
        match r {
            Err(ProofError::SizesReversed { first, second }) => {
                assert!(first == s1 && second == s2 && s2 < s1)
            }
            Err(ProofError::NonEmptyProof) => assert!(s1 == s2 && !proof.is_empty()),
            Err(ProofError::FromEmptyTree) => assert!(s1 == 0 && s2 > 0),
            Err(ProofError::WrongProofLength { expected, found }) => {
                assert!(0 < s1 && s1 < s2 && found == proof.len() && expected <= 129);
                let right = vec![h0; expected];
                let r = verify_consistency::<H>(s1, s2, &h0, &h1, &right);
                assert!(matches!(r, Ok(()) | Err(ProofError::RootMismatch)), "{r:?}");
            }
            Ok(()) => assert!(s1 <= s2),
            Err(ProofError::RootMismatch) => assert!(s1 <= s2),
            Err(e) => panic!("unexpected {e:?}"),
        }
    }
}

fuzz_target!(|data: &[u8]| {
    if data.len() < 17 {
        return;
    }
    let mode = data[0];
    let mut a = u64::from_be_bytes(data[1..9].try_into().unwrap());
    let mut b = u64::from_be_bytes(data[9..17].try_into().unwrap());
    if mode & 2 == 0 {
        a &= 0xff;
        b &= 0xff;
    }
    let mut hashes: Vec<H32> = data[17..]
        .chunks_exact(32)
        .map(|c| c.try_into().unwrap())
        .collect();
    let h0 = if hashes.is_empty() {
        [0; 32]
    } else {
        hashes.remove(0)
    };
    let h1 = if hashes.is_empty() {
        [0; 32]
    } else {
        hashes.remove(0)
    };
    if mode & 1 == 1 {
        run::<Sha256Tree>(a, b, h0, h1, &hashes);
    } else {
        run::<Blake3Tree>(a, b, h0, h1, &hashes);
    }
});
