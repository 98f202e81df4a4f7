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
    /// The dataflow state saved at an hour's end (FORMAT.md §3.15).
    State,
}

impl Domain {
    /// The ASCII name whose BLAKE3 hash is this domain's key.
    pub const fn name(self) -> &'static str {
        match self {
            Domain::MerkleLeaf => "ritma/merkle-leaf/v1",
            Domain::MerkleNode => "ritma/merkle-node/v1",
            Domain::Dict => "ritma/dict-id/v1",
            Domain::Actor => "ritma/actor-id/v1",
            Domain::State => "ritma/dataflow-state/v1",
        }
    }

    /// The 32-byte key of this domain, derived once per process.
    pub fn key(self) -> &'static [u8; 32] {
        use std::sync::OnceLock;
        static KEYS: [OnceLock<[u8; 32]>; 5] = [
            OnceLock::new(),
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
            Domain::State => 4,
        };
        KEYS[slot].get_or_init(|| *blake3::hash(self.name().as_bytes()).as_bytes())
    }

    /// Keyed BLAKE3 of `message` in this domain.
    pub fn hash(self, message: &[u8]) -> Hash32 {
        *blake3::keyed_hash(self.key(), message).as_bytes()
    }

    /// The first 16 bytes of [`Domain::hash`]: a content-derived id. Remembered per
    /// thread (see [`IdMemo`]): the same paths, commands and processes recur on
    /// almost every event.
    pub fn id(self, message: &[u8]) -> Id128 {
        if message.len() > IdMemo::MAX_MESSAGE_LEN {
            return self.id_uncached(message);
        }
        ID_MEMO.with(|memo| match memo.try_borrow_mut() {
            Ok(mut memo) => memo.id(self, message),
            Err(_) => self.id_uncached(message),
        })
    }

    /// [`Domain::id`] computed afresh.
    pub fn id_uncached(self, message: &[u8]) -> Id128 {
        let h = self.hash(message);
        let mut id = [0u8; 16];
        id.copy_from_slice(&h[..16]);
        id
    }
}

thread_local! {
    static ID_MEMO: std::cell::RefCell<IdMemo> = std::cell::RefCell::new(IdMemo::new());
}

/// A direct-mapped memo of recent ids: (domain, message) → id. A slot holds the whole
/// message and is only used on an exact match, so a slot collision costs a hash, never
/// a wrong id. Bounded: `2^SLOT_BITS` slots, messages of at most `MAX_MESSAGE_LEN`
/// bytes kept inline, so a lookup touches one slot and nothing else.
pub struct IdMemo {
    slots: Vec<IdSlot>,
}

#[derive(Clone, Copy)]
struct IdSlot {
    /// The domain's tag + 1; 0 marks an empty slot.
    domain: u8,
    len: u8,
    id: Id128,
    message: [u8; IdMemo::MAX_MESSAGE_LEN],
}

impl IdMemo {
    const SLOT_BITS: u32 = 13;
    /// Longer messages (long paths, argv) are rare and not remembered.
    pub const MAX_MESSAGE_LEN: usize = 86;

    pub fn new() -> Self {
        let empty = IdSlot {
            domain: 0,
            len: 0,
            id: [0; 16],
            message: [0; Self::MAX_MESSAGE_LEN],
        };
        IdMemo {
            slots: vec![empty; 1 << Self::SLOT_BITS],
        }
    }

    /// The id of `message` in `domain`, from the memo or computed and remembered.
    pub fn id(&mut self, domain: Domain, message: &[u8]) -> Id128 {
        if message.len() > Self::MAX_MESSAGE_LEN {
            return domain.id_uncached(message);
        }
        let tag = domain as u8 + 1;
        let slot = &mut self.slots[slot_of(tag, message, Self::SLOT_BITS)];
        if slot.domain == tag && &slot.message[..slot.len as usize] == message {
            return slot.id;
        }
        let id = domain.id_uncached(message);
        slot.domain = tag;
        slot.len = message.len() as u8;
        slot.message[..message.len()].copy_from_slice(message);
        slot.id = id;
        id
    }
}

impl Default for IdMemo {
    fn default() -> Self {
        Self::new()
    }
}

/// A slot index from a fast multiplicative hash of the message (FxHash's constant).
fn slot_of(tag: u8, message: &[u8], bits: u32) -> usize {
    const K: u64 = 0x517c_c1b7_2722_0a95;
    let mut h = (tag as u64 ^ (message.len() as u64) << 8).wrapping_mul(K);
    let mut words = message.chunks_exact(8);
    for w in &mut words {
        let w = u64::from_le_bytes(w.try_into().expect("8 bytes"));
        h = (h.rotate_left(5) ^ w).wrapping_mul(K);
    }
    let rest = words.remainder();
    if !rest.is_empty() {
        let mut tail = [0u8; 8];
        tail[..rest.len()].copy_from_slice(rest);
        h = (h.rotate_left(5) ^ u64::from_le_bytes(tail)).wrapping_mul(K);
    }
    (h >> (64 - bits)) as usize
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
    fn remembered_ids_equal_fresh_ones_through_collisions_and_evictions() {
        // Far more messages than slots, in two domains, revisited out of order, and
        // messages that differ only in their last byte or in length.
        let mut memo = IdMemo::new();
        let messages: Vec<Vec<u8>> = (0..40_000u32)
            .map(|i| {
                let len = (i % 47) as usize + 1;
                let mut m: Vec<u8> = (0..len).map(|j| (i as usize * 31 + j) as u8).collect();
                m[len - 1] = (i >> 8) as u8;
                m
            })
            .collect();
        for round in 0..3 {
            for (i, m) in messages.iter().enumerate() {
                let d = if (i + round) % 2 == 0 {
                    Domain::Dict
                } else {
                    Domain::Actor
                };
                assert_eq!(memo.id(d, m), d.id_uncached(m), "message {i} round {round}");
                assert_eq!(d.id(m), d.id_uncached(m));
            }
        }
        // The same bytes in two domains are two ids, even when the memo holds one of them.
        let m = b"/etc/passwd";
        assert_eq!(memo.id(Domain::Dict, m), Domain::Dict.id_uncached(m));
        assert_eq!(memo.id(Domain::Actor, m), Domain::Actor.id_uncached(m));
        assert_ne!(memo.id(Domain::Dict, m), memo.id(Domain::Actor, m));
        // Long messages are computed, not remembered.
        let long = vec![7u8; IdMemo::MAX_MESSAGE_LEN + 1];
        assert_eq!(Domain::Dict.id(&long), Domain::Dict.id_uncached(&long));
        assert_eq!(
            Domain::Dict.id(b""),
            blake3::keyed_hash(Domain::Dict.key(), b"").as_bytes()[..16]
        );
    }

    #[test]
    fn key_is_blake3_of_name() {
        assert_eq!(
            Domain::Dict.key(),
            blake3::hash(b"ritma/dict-id/v1").as_bytes()
        );
    }
}
