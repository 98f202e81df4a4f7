//! Hash domains. Every BLAKE3 hash Ritma computes is a keyed hash whose key is the
//! BLAKE3 hash of an ASCII domain name, so no two uses of the hash can collide
//! (FORMAT.md §2).

/// A 32-byte hash (BLAKE3 or SHA-256).
pub type Hash32 = [u8; 32];
/// A 16-byte content-derived identifier (truncated keyed BLAKE3).
pub type Id128 = [u8; 16];

/// A BLAKE3 hash domain: `keyed_hash(BLAKE3(name), message)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Domain {
    /// Merkle leaf: the record bytes of one leaf.
    MerkleLeaf,
    /// Merkle interior node: left child hash ‖ right child hash.
    MerkleNode,
    /// Dictionary entry id.
    Dict,
    /// Actor id.
    Actor,
}

impl Domain {
    /// The ASCII name whose BLAKE3 hash is this domain's key.
    pub const fn name(self) -> &'static str {
        match self {
            Domain::MerkleLeaf => "ritma/merkle-leaf/v1",
            Domain::MerkleNode => "ritma/merkle-node/v1",
            Domain::Dict => "ritma/dict-id/v1",
            Domain::Actor => "ritma/actor-id/v1",
        }
    }

    /// The 32-byte key of this domain, derived once per process.
    pub fn key(self) -> &'static [u8; 32] {
        use std::sync::OnceLock;
        static KEYS: [OnceLock<[u8; 32]>; 4] = [
            OnceLock::new(),
            OnceLock::new(),
            OnceLock::new(),
            OnceLock::new(),
        ];
        let slot = match self {
            Domain::MerkleLeaf => 0,
            Domain::MerkleNode => 1,
            Domain::Dict => 2,
            Domain::Actor => 3,
        };
        KEYS[slot].get_or_init(|| *blake3::hash(self.name().as_bytes()).as_bytes())
    }

    /// Keyed BLAKE3 of `message` in this domain.
    pub fn hash(self, message: &[u8]) -> Hash32 {
        *blake3::keyed_hash(self.key(), message).as_bytes()
    }

    /// The first 16 bytes of [`Domain::hash`]: a content-derived id.
    pub fn id(self, message: &[u8]) -> Id128 {
        let h = self.hash(message);
        let mut id = [0u8; 16];
        id.copy_from_slice(&h[..16]);
        id
    }
}

/// Plain (unkeyed) BLAKE3, used for content addresses and oversize-field hashes.
pub fn blake3(data: &[u8]) -> Hash32 {
    *blake3::hash(data).as_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn domains_have_distinct_keys() {
        let all = [
            Domain::MerkleLeaf,
            Domain::MerkleNode,
            Domain::Dict,
            Domain::Actor,
        ];
        for (i, a) in all.iter().enumerate() {
            for b in &all[i + 1..] {
                assert_ne!(a.key(), b.key());
                assert_ne!(a.hash(b"x"), b.hash(b"x"));
            }
        }
    }

    #[test]
    fn key_is_blake3_of_name() {
        assert_eq!(
            Domain::Dict.key(),
            blake3::hash(b"ritma/dict-id/v1").as_bytes()
        );
    }
}
