//! The manifest of a content-addressed blob (FORMAT.md §8.6, record type 20): the
//! blob's plain BLAKE3 hash and size, and the chunks that hold its bytes, in order.
//! A reader given only a blob hash (an EventAtom's `payload_ref`) finds the manifest
//! at `cas/b3/ab/cd/<hex>.blob` and each chunk at `cas/b3/ab/cd/<hex>`.
//!
//! Decoding is strict like every record's: bounded length, bounded chunk count, every
//! chunk 1 to [`MAX_CHUNK_LEN`] bytes, chunk lengths adding up to `size`, and the value
//! must re-encode to the same bytes. How the writer cut the chunks is not checked: the
//! boundaries are the writer's choice, only the bytes and their hashes are evidence.

use crate::cbor::{DecodeError, DecodeErrorKind, Decoder, Encoder};
use crate::hash::Hash32;
use crate::records::Record;

/// Largest blob the store holds: 4 GiB.
pub const MAX_BLOB_LEN: u64 = 4 << 30;
/// Largest chunk: 4 MiB (the chunker's maximum, FORMAT.md §8.6).
pub const MAX_CHUNK_LEN: u32 = 4 << 20;
/// Most chunks of one blob: a 4 GiB blob cut with the 1 MiB minimum chunk has at most
/// 4096 (every chunk but the last is at least 1 MiB).
pub const MAX_CHUNKS: usize = 4096;
/// Largest encoded manifest: array head, type, version, blob (34), size (≤ 9), the
/// chunk array head (≤ 3) and per chunk 40 bytes (array head 1, hash 34, length ≤ 5).
pub const MAX_MANIFEST_LEN: usize = 1 + 1 + 1 + 34 + 9 + 3 + MAX_CHUNKS * 40;

/// One chunk of a blob: its plain BLAKE3 hash (its address) and its length.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ChunkRef {
    pub hash: Hash32,
    /// 1 to [`MAX_CHUNK_LEN`] bytes.
    pub len: u32,
}

/// `cas/b3/ab/cd/<hex>.blob`: the blob whose plain BLAKE3 hash is `blob`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CasManifest {
    /// Plain BLAKE3 of the blob's bytes (also the file's name).
    pub blob: Hash32,
    /// The blob's length in bytes, at most [`MAX_BLOB_LEN`]: the sum of the chunk lengths.
    pub size: u64,
    /// The chunks whose concatenation is the blob, in order; empty for the empty blob.
    pub chunks: Vec<ChunkRef>,
}

impl Record for CasManifest {
    const TYPE: u64 = 20;
    const VERSION: u64 = 1;
    const NAME: &'static str = "CasManifest";
    const FIELDS: u64 = 5;
    const MAX_LEN: usize = MAX_MANIFEST_LEN;

    fn encode_fields(&self, e: &mut Encoder) {
        e.bytes(&self.blob)
            .uint(self.size)
            .array(self.chunks.len() as u64);
        for c in &self.chunks {
            e.array(2).bytes(&c.hash).uint(c.len as u64);
        }
    }

    fn decode_fields(d: &mut Decoder<'_>) -> Result<Self, DecodeError> {
        let blob = d.fixed::<32>("blob")?;
        let size_at = d.position();
        let size = d.uint_max("size", MAX_BLOB_LEN)?;
        let n = d.array("chunks", MAX_CHUNKS as u64)?;
        let mut chunks = Vec::with_capacity(n as usize);
        let mut total: u64 = 0;
        for _ in 0..n {
            d.array_exact("chunks", 2)?;
            let hash = d.fixed::<32>("chunks.hash")?;
            let len_at = d.position();
            let len = d.uint_max("chunks.len", MAX_CHUNK_LEN as u64)?;
            if len == 0 {
                let kind = DecodeErrorKind::Invalid("a chunk holds at least one byte");
                return Err(d.error_at("chunks.len", len_at, kind));
            }
            // At most 4096 × 4 MiB: no overflow.
            total += len;
            chunks.push(ChunkRef {
                hash,
                len: len as u32,
            });
        }
        if total != size {
            let kind = DecodeErrorKind::Invalid("the chunk lengths do not add up to the size");
            return Err(d.error_at("size", size_at, kind));
        }
        Ok(CasManifest { blob, size, chunks })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn manifest(lens: &[u32]) -> CasManifest {
        CasManifest {
            blob: [7; 32],
            size: lens.iter().map(|&l| l as u64).sum(),
            chunks: lens
                .iter()
                .enumerate()
                .map(|(i, &len)| ChunkRef {
                    hash: [i as u8; 32],
                    len,
                })
                .collect(),
        }
    }

    fn kind(bytes: &[u8]) -> DecodeErrorKind {
        CasManifest::decode(bytes).unwrap_err().kind
    }

    #[test]
    fn the_empty_blob_has_no_chunks() {
        let m = manifest(&[]);
        let bytes = m.encode();
        assert_eq!(bytes.len(), 1 + 1 + 1 + 34 + 1 + 1);
        assert_eq!(CasManifest::decode(&bytes).unwrap(), m);
    }

    #[test]
    fn the_largest_manifest_fits_its_bound() {
        let m = CasManifest {
            blob: [0xff; 32],
            size: MAX_BLOB_LEN,
            chunks: vec![
                ChunkRef {
                    hash: [0xff; 32],
                    len: 1 << 20,
                };
                MAX_CHUNKS
            ],
        };
        let bytes = m.encode();
        // Chunk lengths of 1 MiB take 5 bytes, like the largest: the bound is exact.
        assert_eq!(bytes.len(), MAX_MANIFEST_LEN);
        assert_eq!(CasManifest::decode(&bytes).unwrap(), m);
    }

    #[test]
    fn rejects_lengths_that_break_the_rules() {
        let mut m = manifest(&[10, 20]);
        m.size = 31;
        assert_eq!(
            kind(&m.encode()),
            DecodeErrorKind::Invalid("the chunk lengths do not add up to the size")
        );
        assert_eq!(
            kind(&manifest(&[10, 0]).encode()),
            DecodeErrorKind::Invalid("a chunk holds at least one byte")
        );
        assert_eq!(
            kind(&manifest(&[MAX_CHUNK_LEN + 1]).encode()),
            DecodeErrorKind::OutOfRange {
                value: MAX_CHUNK_LEN as i128 + 1
            }
        );
        let mut big = manifest(&[]);
        big.size = MAX_BLOB_LEN + 1;
        assert_eq!(
            kind(&big.encode()),
            DecodeErrorKind::OutOfRange {
                value: MAX_BLOB_LEN as i128 + 1
            }
        );
        let mut many = manifest(&[]);
        many.chunks = vec![
            ChunkRef {
                hash: [1; 32],
                len: 1
            };
            MAX_CHUNKS + 1
        ];
        many.size = MAX_CHUNKS as u64 + 1;
        assert_eq!(
            kind(&many.encode()),
            DecodeErrorKind::TooLong {
                max: MAX_CHUNKS as u64,
                found: MAX_CHUNKS as u64 + 1
            }
        );
    }

    #[test]
    fn rejects_other_types_versions_and_trailing_bytes() {
        let good = manifest(&[5]).encode();
        let mut t = good.clone();
        t[1] = 0x00;
        assert_eq!(
            kind(&t),
            DecodeErrorKind::UnknownRecordType { record_type: 0 }
        );
        t[1] = 0x0d;
        assert_eq!(
            kind(&t),
            DecodeErrorKind::WrongRecordType {
                expected: 20,
                found: 13
            }
        );
        let mut v = good.clone();
        v[2] = 2;
        assert_eq!(
            kind(&v),
            DecodeErrorKind::UnknownVersion {
                record_type: 20,
                version: 2
            }
        );
        let mut long = good.clone();
        long.push(0);
        assert_eq!(kind(&long), DecodeErrorKind::TrailingBytes { count: 1 });
        let e = CasManifest::decode(&good[..good.len() - 1]).unwrap_err();
        assert_eq!(
            (e.record, e.kind),
            ("CasManifest", DecodeErrorKind::Truncated)
        );
    }

    fn any_manifest() -> impl Strategy<Value = CasManifest> {
        let chunk =
            (any::<[u8; 32]>(), 1..=MAX_CHUNK_LEN).prop_map(|(hash, len)| ChunkRef { hash, len });
        (any::<[u8; 32]>(), proptest::collection::vec(chunk, 0..40)).prop_map(|(blob, chunks)| {
            CasManifest {
                blob,
                size: chunks.iter().map(|c| c.len as u64).sum(),
                chunks,
            }
        })
    }

    proptest! {
        #[test]
        fn encode_decode_round_trips(m in any_manifest()) {
            let bytes = m.encode();
            prop_assert!(bytes.len() <= MAX_MANIFEST_LEN);
            prop_assert_eq!(CasManifest::decode(&bytes).unwrap(), m);
        }

        #[test]
        fn decode_of_arbitrary_bytes_never_panics_and_accepts_only_canonical(bytes: Vec<u8>) {
            match CasManifest::decode(&bytes) {
                Ok(m) => prop_assert_eq!(m.encode(), bytes),
                Err(e) => {
                    prop_assert_ne!(e.kind, DecodeErrorKind::NotCanonical);
                    prop_assert!(e.offset <= bytes.len());
                }
            }
        }

        #[test]
        fn decode_of_mutated_manifests_never_panics(
            m in any_manifest(),
            edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..4),
            cut in any::<prop::sample::Index>(),
        ) {
            let mut bytes = m.encode();
            for (at, b) in edits {
                let i = at.index(bytes.len());
                bytes[i] = b;
            }
            let bytes = &bytes[..=cut.index(bytes.len())];
            match CasManifest::decode(bytes) {
                Ok(m) => prop_assert_eq!(m.encode(), bytes),
                Err(e) => prop_assert_ne!(e.kind, DecodeErrorKind::NotCanonical),
            }
        }
    }
}
