//! RFC 6962 / RFC 9162 Merkle trees, generic over the hash: roots, inclusion and
//! consistency proofs, their verifiers, and an append-only [`Frontier`] holding
//! O(log n) hashes. FORMAT.md §2 is normative.
//!
//! Ritma instantiates it with [`Blake3Tree`] (keyed BLAKE3 domains); [`Sha256Tree`]
//! is the RFC 6962 instantiation the published test vectors use.

use crate::hash::{Domain, Hash32};
use sha2::Digest;

/// How leaves and interior nodes are hashed.
pub trait TreeHash {
    /// Hash of a leaf's bytes.
    fn leaf(data: &[u8]) -> Hash32;
    /// Hash of an interior node from its children.
    fn node(left: &Hash32, right: &Hash32) -> Hash32;
    /// Root of the empty tree.
    fn empty() -> Hash32;
}

/// Ritma's tree: keyed BLAKE3, a leaf and a node key (FORMAT.md §2). A node's input
/// is exactly one 64-byte BLAKE3 block, so a node costs one compression.
pub struct Blake3Tree;

impl TreeHash for Blake3Tree {
    #[inline]
    fn leaf(data: &[u8]) -> Hash32 {
        Domain::MerkleLeaf.hash(data)
    }

    #[inline]
    fn node(left: &Hash32, right: &Hash32) -> Hash32 {
        let mut block = [0u8; 64];
        block[..32].copy_from_slice(left);
        block[32..].copy_from_slice(right);
        Domain::MerkleNode.hash(&block)
    }

    fn empty() -> Hash32 {
        crate::hash::blake3(b"")
    }
}

/// RFC 6962 with SHA-256: leaf = H(0x00 ‖ data), node = H(0x01 ‖ left ‖ right).
pub struct Sha256Tree;

impl TreeHash for Sha256Tree {
    fn leaf(data: &[u8]) -> Hash32 {
        let mut h = sha2::Sha256::new();
        h.update([0u8]);
        h.update(data);
        h.finalize().into()
    }

    fn node(left: &Hash32, right: &Hash32) -> Hash32 {
        let mut h = sha2::Sha256::new();
        h.update([1u8]);
        h.update(left);
        h.update(right);
        h.finalize().into()
    }

    fn empty() -> Hash32 {
        sha2::Sha256::digest(b"").into()
    }
}

/// Why a proof did not verify or could not be made.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ProofError {
    #[error("leaf index {index} is outside a tree of size {size}")]
    IndexOutOfRange { index: u64, size: u64 },
    #[error("proof has {found} hashes, a tree of this shape needs {expected}")]
    WrongProofLength { expected: usize, found: usize },
    #[error("the proof does not lead to the expected root")]
    RootMismatch,
    #[error("first size {first} is larger than second size {second}")]
    SizesReversed { first: u64, second: u64 },
    #[error("a consistency proof from the empty tree proves nothing")]
    FromEmptyTree,
    #[error("equal sizes need an empty proof")]
    NonEmptyProof,
    #[error("the range [{start}, {end}) cannot be hashed from what is held")]
    RangeUnavailable { start: u64, end: u64 },
}

/// Largest power of two strictly less than `n` (n ≥ 2).
#[inline]
fn split_point(n: u64) -> u64 {
    debug_assert!(n >= 2);
    1u64 << (63 - (n - 1).leading_zeros())
}

/// An append-only log's right edge: the roots of its perfect subtrees, largest
/// first — one per set bit of the size. Appending costs one leaf hash plus one
/// node hash amortised.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Frontier {
    size: u64,
    /// Roots of the perfect subtrees, left (largest) to right.
    nodes: Vec<Hash32>,
}

impl Frontier {
    pub fn new() -> Self {
        Self::default()
    }

    /// Rebuilds a frontier from its parts; `nodes` must have one hash per set bit of `size`.
    pub fn from_parts(size: u64, nodes: Vec<Hash32>) -> Option<Self> {
        (nodes.len() == size.count_ones() as usize).then_some(Frontier { size, nodes })
    }

    pub fn size(&self) -> u64 {
        self.size
    }

    /// The perfect-subtree roots, largest first.
    pub fn nodes(&self) -> &[Hash32] {
        &self.nodes
    }

    /// Appends a leaf given its leaf hash.
    #[inline]
    pub fn push<H: TreeHash>(&mut self, leaf_hash: Hash32) {
        let mut h = leaf_hash;
        let mut s = self.size;
        // Each trailing one bit of the old size is a subtree the new one completes.
        while s & 1 == 1 {
            let left = self.nodes.pop().expect("one node per set bit");
            h = H::node(&left, &h);
            s >>= 1;
        }
        self.nodes.push(h);
        self.size += 1;
    }

    /// Hashes `data` as a leaf and appends it.
    #[inline]
    pub fn push_data<H: TreeHash>(&mut self, data: &[u8]) {
        self.push::<H>(H::leaf(data));
    }

    /// The tree's root (RFC 9162 MTH of all leaves so far).
    pub fn root<H: TreeHash>(&self) -> Hash32 {
        fold_right::<H>(&self.nodes).unwrap_or_else(H::empty)
    }

    /// Appends `len` leaves known only by the roots of `aligned_ranges(size, len)`, in
    /// order (a range of the log that was deleted).
    pub fn push_deleted<H: TreeHash>(
        &mut self,
        len: u64,
        roots: &[Hash32],
    ) -> Result<(), ProofError> {
        for ((_, height), root) in deleted_ranges(self.size, len, roots)?
            .into_iter()
            .zip(roots)
        {
            self.push_subtree::<H>(height, *root)?;
        }
        Ok(())
    }

    /// Appends a whole perfect subtree of `2^height` leaves given its root; the size
    /// must be a multiple of `2^height` (as for every range of [`aligned_ranges`]).
    fn push_subtree<H: TreeHash>(&mut self, height: u32, root: Hash32) -> Result<(), ProofError> {
        let width = 1u64.checked_shl(height).unwrap_or(0);
        let end = self.size.checked_add(width);
        if width == 0 || !self.size.is_multiple_of(width) || end.is_none() {
            return Err(ProofError::RangeUnavailable {
                start: self.size,
                end: end.unwrap_or(u64::MAX),
            });
        }
        let mut h = root;
        let mut s = self.size >> height;
        // Each trailing one bit above `height` is a subtree the new one completes.
        while s & 1 == 1 {
            let left = self.nodes.pop().expect("one node per set bit");
            h = H::node(&left, &h);
            s >>= 1;
        }
        self.nodes.push(h);
        self.size += width;
        Ok(())
    }
}

/// MTH of a range made of consecutive perfect subtrees of decreasing size.
fn fold_right<H: TreeHash>(nodes: &[Hash32]) -> Option<Hash32> {
    let (last, rest) = nodes.split_last()?;
    Some(rest.iter().rev().fold(*last, |acc, n| H::node(n, &acc)))
}

/// Something that can give the root of a range of leaves of a tree.
pub trait Subtrees {
    fn size(&self) -> u64;
    /// MTH of leaves `[start, end)`, `start < end ≤ size`.
    fn subtree_root<H: TreeHash>(&self, start: u64, end: u64) -> Result<Hash32, ProofError>;
}

/// All leaf hashes of a tree, in order.
impl Subtrees for [Hash32] {
    fn size(&self) -> u64 {
        self.len() as u64
    }

    fn subtree_root<H: TreeHash>(&self, start: u64, end: u64) -> Result<Hash32, ProofError> {
        let leaves = self
            .get(start as usize..end as usize)
            .ok_or(ProofError::RangeUnavailable { start, end })?;
        Ok(root::<H>(leaves))
    }
}

/// A log known as the frontier at an old size plus the leaf hashes appended since:
/// enough to prove consistency from the old size to any later one without the
/// old leaves (the hour seal's case).
pub struct Extension<'a> {
    pub old: &'a Frontier,
    pub appended: &'a [Hash32],
}

impl Subtrees for Extension<'_> {
    fn size(&self) -> u64 {
        self.old.size + self.appended.len() as u64
    }

    fn subtree_root<H: TreeHash>(&self, start: u64, end: u64) -> Result<Hash32, ProofError> {
        let m = self.old.size;
        if start >= m {
            return self.appended.subtree_root::<H>(start - m, end - m);
        }
        // Below the old size only unions of whole frontier subtrees are known.
        let mut offset = 0u64;
        let mut first = None;
        for (i, bit) in (0..64).rev().filter(|b| m & (1u64 << b) != 0).enumerate() {
            if offset == start {
                first = Some(i);
            }
            offset += 1u64 << bit;
            if offset == end {
                if let Some(f) = first {
                    return fold_right::<H>(&self.old.nodes[f..=i])
                        .ok_or(ProofError::RangeUnavailable { start, end });
                }
            }
        }
        Err(ProofError::RangeUnavailable { start, end })
    }
}

/// The maximal perfect subtrees covering leaves `[start, start + len)` of any tree that
/// holds them, left to right, as `(first leaf, height)`: each starts at a multiple of its
/// width, so each is a node of every tree of size ≥ its end (FORMAT.md §2.3).
pub fn aligned_ranges(start: u64, len: u64) -> Vec<(u64, u32)> {
    let mut out = Vec::new();
    let (mut at, end) = (start, start.saturating_add(len));
    while at < end {
        // The widest width `at` is a multiple of that still fits before `end`.
        let mut height = if at == 0 { 63 } else { at.trailing_zeros() };
        while height > 0 && (1u64 << height) > end - at {
            height -= 1;
        }
        out.push((at, height));
        at += 1u64 << height;
    }
    out
}

/// The aligned ranges of `len` leaves from `start`, if `roots` has one root for each.
fn deleted_ranges(start: u64, len: u64, roots: &[Hash32]) -> Result<Vec<(u64, u32)>, ProofError> {
    let ranges = aligned_ranges(start, len);
    match ranges.len() == roots.len() {
        true => Ok(ranges),
        false => Err(ProofError::WrongProofLength {
            expected: ranges.len(),
            found: roots.len(),
        }),
    }
}

/// A log whose leaves are known one by one except for some ranges, each known only as
/// the roots of its [`aligned_ranges`] (a log some of whose leaves were deleted).
#[derive(Clone, Debug, Default)]
pub struct SparseLog {
    /// Runs of consecutive known leaf hashes, as (first leaf, hashes), in leaf order.
    known: Vec<(u64, Vec<Hash32>)>,
    /// Roots of the deleted ranges' aligned subtrees, by (first leaf, height).
    subtrees: std::collections::BTreeMap<(u64, u32), Hash32>,
    size: u64,
}

impl SparseLog {
    pub fn new() -> Self {
        Self::default()
    }

    /// A log of exactly these leaves.
    pub fn from_leaves(leaf_hashes: &[Hash32]) -> Self {
        SparseLog {
            known: vec![(0, leaf_hashes.to_vec())],
            subtrees: Default::default(),
            size: leaf_hashes.len() as u64,
        }
    }

    /// Appends one leaf hash.
    pub fn push_leaf(&mut self, leaf_hash: Hash32) {
        match self.known.last_mut() {
            Some((first, v)) if *first + v.len() as u64 == self.size => v.push(leaf_hash),
            _ => self.known.push((self.size, vec![leaf_hash])),
        }
        self.size += 1;
    }

    /// Appends `len` leaves known only by the roots of `aligned_ranges(size, len)`, in order.
    pub fn push_deleted(&mut self, len: u64, roots: &[Hash32]) -> Result<(), ProofError> {
        for ((at, h), root) in deleted_ranges(self.size, len, roots)?
            .into_iter()
            .zip(roots)
        {
            self.subtrees.insert((at, h), *root);
        }
        self.size += len;
        Ok(())
    }

    /// The hash of leaf `i`, unless it was deleted.
    pub fn leaf(&self, i: u64) -> Option<Hash32> {
        let k = self.known.partition_point(|(first, _)| *first <= i);
        let (first, v) = self.known.get(k.checked_sub(1)?)?;
        v.get((i - first) as usize).copied()
    }
}

impl Subtrees for SparseLog {
    fn size(&self) -> u64 {
        self.size
    }

    fn subtree_root<H: TreeHash>(&self, start: u64, end: u64) -> Result<Hash32, ProofError> {
        let n = end - start;
        if n.is_power_of_two() {
            if let Some(r) = self.subtrees.get(&(start, n.trailing_zeros())) {
                return Ok(*r);
            }
        }
        if n == 1 {
            return self
                .leaf(start)
                .ok_or(ProofError::RangeUnavailable { start, end });
        }
        let k = split_point(n);
        Ok(H::node(
            &self.subtree_root::<H>(start, start + k)?,
            &self.subtree_root::<H>(start + k, end)?,
        ))
    }
}

/// The tree of the first `size` leaves of a larger one.
pub struct Prefix<'a, S: ?Sized> {
    tree: &'a S,
    size: u64,
}

impl<'a, S: Subtrees + ?Sized> Prefix<'a, S> {
    /// The first `size` leaves of `tree`, which must have that many.
    pub fn new(tree: &'a S, size: u64) -> Result<Self, ProofError> {
        match size <= tree.size() {
            true => Ok(Prefix { tree, size }),
            false => Err(ProofError::RangeUnavailable {
                start: 0,
                end: size,
            }),
        }
    }
}

impl<S: Subtrees + ?Sized> Subtrees for Prefix<'_, S> {
    fn size(&self) -> u64 {
        self.size
    }

    fn subtree_root<H: TreeHash>(&self, start: u64, end: u64) -> Result<Hash32, ProofError> {
        match end <= self.size {
            true => self.tree.subtree_root::<H>(start, end),
            false => Err(ProofError::RangeUnavailable { start, end }),
        }
    }
}

/// MTH of a list of leaf hashes.
pub fn root<H: TreeHash>(leaf_hashes: &[Hash32]) -> Hash32 {
    let mut f = Frontier::new();
    for h in leaf_hashes {
        f.push::<H>(*h);
    }
    f.root::<H>()
}

/// RFC 9162 §2.1.3.1 inclusion proof for leaf `index`.
pub fn inclusion_proof<H: TreeHash, S: Subtrees + ?Sized>(
    tree: &S,
    index: u64,
) -> Result<Vec<Hash32>, ProofError> {
    let size = tree.size();
    if index >= size {
        return Err(ProofError::IndexOutOfRange { index, size });
    }
    let mut proof = Vec::new();
    path::<H, S>(tree, index, 0, size, &mut proof)?;
    Ok(proof)
}

/// PATH(m, D[start:end]), pushing the deepest hash first.
fn path<H: TreeHash, S: Subtrees + ?Sized>(
    tree: &S,
    m: u64,
    start: u64,
    end: u64,
    out: &mut Vec<Hash32>,
) -> Result<(), ProofError> {
    let n = end - start;
    if n <= 1 {
        return Ok(());
    }
    let k = split_point(n);
    if m < k {
        path::<H, S>(tree, m, start, start + k, out)?;
        out.push(tree.subtree_root::<H>(start + k, end)?);
    } else {
        path::<H, S>(tree, m - k, start + k, end, out)?;
        out.push(tree.subtree_root::<H>(start, start + k)?);
    }
    Ok(())
}

/// RFC 9162 §2.1.4.1 consistency proof from size `old_size` to the tree's size.
pub fn consistency_proof<H: TreeHash, S: Subtrees + ?Sized>(
    tree: &S,
    old_size: u64,
) -> Result<Vec<Hash32>, ProofError> {
    let size = tree.size();
    if old_size > size {
        return Err(ProofError::SizesReversed {
            first: old_size,
            second: size,
        });
    }
    if old_size == 0 {
        return Err(ProofError::FromEmptyTree);
    }
    let mut proof = Vec::new();
    subproof::<H, S>(tree, old_size, 0, size, true, &mut proof)?;
    Ok(proof)
}

/// SUBPROOF(m, D[start:end], b).
fn subproof<H: TreeHash, S: Subtrees + ?Sized>(
    tree: &S,
    m: u64,
    start: u64,
    end: u64,
    complete: bool,
    out: &mut Vec<Hash32>,
) -> Result<(), ProofError> {
    let n = end - start;
    if m == n {
        if !complete {
            out.push(tree.subtree_root::<H>(start, end)?);
        }
        return Ok(());
    }
    let k = split_point(n);
    if m <= k {
        subproof::<H, S>(tree, m, start, start + k, complete, out)?;
        out.push(tree.subtree_root::<H>(start + k, end)?);
    } else {
        subproof::<H, S>(tree, m - k, start + k, end, false, out)?;
        out.push(tree.subtree_root::<H>(start, start + k)?);
    }
    Ok(())
}

/// The root an inclusion proof leads to (RFC 9162 §2.1.3.2), or an error if the
/// proof has the wrong shape for `index` in a tree of `size`.
pub fn root_from_inclusion<H: TreeHash>(
    index: u64,
    size: u64,
    leaf_hash: &Hash32,
    proof: &[Hash32],
) -> Result<Hash32, ProofError> {
    if index >= size {
        return Err(ProofError::IndexOutOfRange { index, size });
    }
    // Inner part: levels where index and size-1 differ; border part: the right edge.
    let inner = 64 - (index ^ (size - 1)).leading_zeros() as usize;
    // checked_shr: inner is 64 when index and size-1 differ in bit 63 (trees over 2^63 leaves).
    let border = index.checked_shr(inner as u32).unwrap_or(0).count_ones() as usize;
    if proof.len() != inner + border {
        return Err(ProofError::WrongProofLength {
            expected: inner + border,
            found: proof.len(),
        });
    }
    let mut h = *leaf_hash;
    for (level, p) in proof[..inner].iter().enumerate() {
        h = if (index >> level) & 1 == 0 {
            H::node(&h, p)
        } else {
            H::node(p, &h)
        };
    }
    for p in &proof[inner..] {
        h = H::node(p, &h);
    }
    Ok(h)
}

/// Checks that `leaf_hash` is leaf `index` of the tree of `size` with `root`.
pub fn verify_inclusion<H: TreeHash>(
    index: u64,
    size: u64,
    leaf_hash: &Hash32,
    proof: &[Hash32],
    root: &Hash32,
) -> Result<(), ProofError> {
    if root_from_inclusion::<H>(index, size, leaf_hash, proof)? == *root {
        Ok(())
    } else {
        Err(ProofError::RootMismatch)
    }
}

/// Checks that the tree of `size2` with `root2` extends the tree of `size1` with
/// `root1` (RFC 9162 §2.1.4.2).
pub fn verify_consistency<H: TreeHash>(
    size1: u64,
    size2: u64,
    root1: &Hash32,
    root2: &Hash32,
    proof: &[Hash32],
) -> Result<(), ProofError> {
    if size2 < size1 {
        return Err(ProofError::SizesReversed {
            first: size1,
            second: size2,
        });
    }
    if size1 == size2 {
        if !proof.is_empty() {
            return Err(ProofError::NonEmptyProof);
        }
        // A tree of size 0 has exactly one root.
        if root1 != root2 || (size1 == 0 && *root1 != H::empty()) {
            return Err(ProofError::RootMismatch);
        }
        return Ok(());
    }
    if size1 == 0 {
        return Err(ProofError::FromEmptyTree);
    }
    // Skip the levels where the old tree is a complete left subtree: its root is implied.
    let shift = size1.trailing_zeros();
    let inner = (64 - ((size1 - 1) ^ (size2 - 1)).leading_zeros()) as usize - shift as usize;
    let border = ((size1 - 1) >> shift)
        .checked_shr(inner as u32)
        .unwrap_or(0)
        .count_ones() as usize;
    // The proof starts with the old tree's 2^shift-subtree root unless that is root1 itself.
    let start = usize::from(size1 != 1u64 << shift);
    if proof.len() != start + inner + border {
        return Err(ProofError::WrongProofLength {
            expected: start + inner + border,
            found: proof.len(),
        });
    }
    let seed = if start == 0 { *root1 } else { proof[0] };
    let rest = &proof[start..];
    let mask = (size1 - 1) >> shift;
    // Old root: only the hashes on the left of the path; new root: all of them.
    let mut h1 = seed;
    let mut h2 = seed;
    for (level, p) in rest[..inner].iter().enumerate() {
        if (mask >> level) & 1 == 1 {
            h1 = H::node(p, &h1);
            h2 = H::node(p, &h2);
        } else {
            h2 = H::node(&h2, p);
        }
    }
    for p in &rest[inner..] {
        h1 = H::node(p, &h1);
        h2 = H::node(p, &h2);
    }
    if h1 != *root1 || h2 != *root2 {
        return Err(ProofError::RootMismatch);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn leaves<H: TreeHash>(n: u64) -> Vec<Hash32> {
        (0..n).map(|i| H::leaf(&i.to_be_bytes())).collect()
    }

    /// RFC 9162 MTH written directly from its recursive definition.
    fn mth_reference<H: TreeHash>(l: &[Hash32]) -> Hash32 {
        match l.len() {
            0 => H::empty(),
            1 => l[0],
            n => {
                let k = split_point(n as u64) as usize;
                H::node(&mth_reference::<H>(&l[..k]), &mth_reference::<H>(&l[k..]))
            }
        }
    }

    #[test]
    fn frontier_root_matches_recursive_definition() {
        for n in 0..70u64 {
            let l = leaves::<Blake3Tree>(n);
            assert_eq!(
                root::<Blake3Tree>(&l),
                mth_reference::<Blake3Tree>(&l),
                "n={n}"
            );
            assert_eq!(
                root::<Sha256Tree>(&l),
                mth_reference::<Sha256Tree>(&l),
                "n={n}"
            );
        }
    }

    #[test]
    fn frontier_holds_one_hash_per_set_bit() {
        let mut f = Frontier::new();
        for i in 0..1000u64 {
            f.push_data::<Blake3Tree>(&i.to_le_bytes());
            assert_eq!(f.nodes().len(), f.size().count_ones() as usize);
        }
    }

    #[test]
    fn extension_gives_the_same_consistency_proofs_as_full_leaves() {
        for old in 1..40u64 {
            for new in old..45u64 {
                let l = leaves::<Blake3Tree>(new);
                let mut f = Frontier::new();
                for h in &l[..old as usize] {
                    f.push::<Blake3Tree>(*h);
                }
                let ext = Extension {
                    old: &f,
                    appended: &l[old as usize..],
                };
                let a = consistency_proof::<Blake3Tree, _>(&ext, old).unwrap();
                let b = consistency_proof::<Blake3Tree, _>(&l[..], old).unwrap();
                assert_eq!(a, b, "old={old} new={new}");
            }
        }
    }

    #[test]
    fn empty_and_single() {
        assert_eq!(
            Frontier::new().root::<Blake3Tree>(),
            crate::hash::blake3(b"")
        );
        let h = Blake3Tree::leaf(b"x");
        assert_eq!(root::<Blake3Tree>(&[h]), h);
        verify_inclusion::<Blake3Tree>(0, 1, &h, &[], &h).unwrap();
    }

    #[test]
    fn aligned_ranges_cover_a_range_with_maximal_aligned_subtrees() {
        assert_eq!(aligned_ranges(0, 7), vec![(0, 2), (4, 1), (6, 0)]);
        assert_eq!(aligned_ranges(3, 6), vec![(3, 0), (4, 2), (8, 0)]);
        assert_eq!(aligned_ranges(5, 0), vec![]);
        for start in 0..70u64 {
            for len in 0..70u64 {
                let r = aligned_ranges(start, len);
                let mut at = start;
                for (i, &(first, h)) in r.iter().enumerate() {
                    assert_eq!(first, at);
                    assert_eq!(first % (1 << h), 0, "aligned");
                    // Maximal: doubling it would leave the range or lose alignment.
                    let w = 1u64 << h;
                    assert!(
                        first % (2 * w) != 0 || first + 2 * w > start + len,
                        "{start} {len} {i}"
                    );
                    at += w;
                }
                assert_eq!(at, start + len);
            }
        }
    }

    /// A log with deleted ranges gives the same roots and proofs as the whole log.
    #[test]
    fn a_sparse_log_proves_what_the_whole_log_proves() {
        let all = leaves::<Blake3Tree>(45);
        // Deleted: [3, 17) and [17, 20) (two adjacent holes, as two deleted hours), [30, 31).
        let holes = [(3u64, 17u64), (17, 20), (30, 31)];
        let mut sparse = SparseLog::new();
        let mut frontier = Frontier::new();
        let mut i = 0u64;
        while i < all.len() as u64 {
            if let Some(&(a, b)) = holes.iter().find(|(a, _)| *a == i) {
                let roots: Vec<_> = aligned_ranges(a, b - a)
                    .into_iter()
                    .map(|(f, h)| all[..].subtree_root::<Blake3Tree>(f, f + (1 << h)).unwrap())
                    .collect();
                sparse.push_deleted(b - a, &roots).unwrap();
                frontier.push_deleted::<Blake3Tree>(b - a, &roots).unwrap();
                i = b;
            } else {
                sparse.push_leaf(all[i as usize]);
                frontier.push::<Blake3Tree>(all[i as usize]);
                i += 1;
            }
            assert_eq!(
                frontier.root::<Blake3Tree>(),
                root::<Blake3Tree>(&all[..i as usize])
            );
        }
        assert_eq!(sparse.leaf(5), None);
        assert_eq!(sparse.leaf(2), Some(all[2]));
        for size in 21..=45u64 {
            let prefix = SparseLog {
                size,
                ..sparse.clone()
            };
            for index in (0..size).filter(|i| !holes.iter().any(|(a, b)| (*a..*b).contains(i))) {
                assert_eq!(
                    inclusion_proof::<Blake3Tree, _>(&prefix, index).unwrap(),
                    inclusion_proof::<Blake3Tree, _>(&all[..size as usize], index).unwrap(),
                    "size {size} index {index}"
                );
            }
            for old in [20u64, 21, 29, 31, 32].into_iter().filter(|o| *o <= size) {
                assert_eq!(
                    consistency_proof::<Blake3Tree, _>(&prefix, old).unwrap(),
                    consistency_proof::<Blake3Tree, _>(&all[..size as usize], old).unwrap()
                );
            }
        }
        // A deleted leaf cannot be proven, and a misaligned subtree is refused.
        assert!(inclusion_proof::<Blake3Tree, _>(&sparse, 4).is_err());
        let mut f = Frontier::new();
        f.push::<Blake3Tree>(all[0]);
        assert!(f.push_subtree::<Blake3Tree>(1, all[1]).is_err());
    }

    /// A deleted range's subtrees rebuild the frontier only where the range starts.
    #[test]
    fn a_deleted_range_rebuilds_the_frontier_only_at_its_start() {
        let leaves: Vec<_> = (0..9u8).map(|i| Blake3Tree::leaf(&[i])).collect();
        let whole = root::<Blake3Tree>(&leaves);
        let subtrees: Vec<_> = aligned_ranges(3, 6)
            .into_iter()
            .map(|(a, h)| {
                leaves[..]
                    .subtree_root::<Blake3Tree>(a, a + (1 << h))
                    .unwrap()
            })
            .collect();
        let mut log = Frontier::new();
        for l in &leaves[..3] {
            log.push::<Blake3Tree>(*l);
        }
        let mut early = log.clone();
        assert!(log.push_deleted::<Blake3Tree>(6, &subtrees).is_ok());
        assert_eq!(log.root::<Blake3Tree>(), whole);
        early.push::<Blake3Tree>(leaves[3]);
        assert!(early.push_deleted::<Blake3Tree>(6, &subtrees).is_err());
    }
}
