//! What leaves a node on the evidence topic (FORMAT.md §12): a ShipEnvelope (type 27)
//! carries exact store files of one sealed window, one finished hour's derived files or
//! one content-addressed file; it travels as one or more ShipParts (type 28), each at
//! most the broker's message size. The shipper's position per topic is a ShipCursor
//! (type 29) in the node's `_meta/ship/`.
//!
//! Decoding is strict like every record's; a path inside an envelope is checked to be a
//! plain relative store path here, and against the kind's layout by the receiver.

use crate::cbor::{DecodeError, DecodeErrorKind, Decoder, Encoder};
use crate::hash::Hash32;
use crate::records::{is_valid_node_name, Record, MAX_NODE_NAME_LEN};

/// Largest envelope: 1 GiB, which a receiver may have to hold while its parts arrive.
pub const MAX_ENVELOPE_LEN: usize = 1 << 30;
/// Most files in one envelope (an hour's derived files are the most).
pub const MAX_ENVELOPE_FILES: u64 = 1 << 16;
/// Longest store path in an envelope, in bytes.
pub const MAX_STORE_PATH_LEN: u64 = 256;
/// Largest part payload: 16 MiB (brokers commonly accept 1 MiB; the shipper sizes parts
/// to the broker's limit).
pub const MAX_PART_PAYLOAD: u64 = 16 << 20;
/// Smallest part payload a shipper uses, but for an envelope's last part: it bounds the
/// number of parts.
pub const MIN_PART_PAYLOAD: u64 = 4096;
/// Most parts of one envelope.
pub const MAX_PARTS: u64 = (MAX_ENVELOPE_LEN as u64).div_ceil(MIN_PART_PAYLOAD);
/// Largest encoded part: its payload and a header well under 256 bytes.
pub const MAX_PART_LEN: usize = MAX_PART_PAYLOAD as usize + 256;
/// Longest topic name (Kafka's own limit).
pub const MAX_TOPIC_LEN: u64 = 249;

/// What an envelope carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ShipKind {
    /// One sealed window's files (and the node tree's setup files when they changed).
    Window = 1,
    /// One finished hour's derived files and its day catalog.
    Hour = 2,
    /// One file of `cas/`.
    Blob = 3,
}

impl ShipKind {
    fn from_u64(v: u64) -> Option<Self> {
        match v {
            1 => Some(ShipKind::Window),
            2 => Some(ShipKind::Hour),
            3 => Some(ShipKind::Blob),
            _ => None,
        }
    }
}

/// One store file: its path relative to the node tree and its exact bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ShipFile {
    pub path: String,
    pub bytes: Vec<u8>,
}

/// True for a plain relative path of a store: `/`-separated non-empty components of
/// `A-Z a-z 0-9 . _ -`, none starting with `.` (no `..`, no hidden or temporary file).
pub fn is_store_path(path: &str) -> bool {
    !path.is_empty()
        && path.len() as u64 <= MAX_STORE_PATH_LEN
        && path.split('/').all(|c| {
            !c.is_empty()
                && !c.starts_with('.')
                && c.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
        })
}

/// ShipEnvelope (type 27): store files of one shipping unit of a node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ShipEnvelope {
    pub node: String,
    /// The envelope's position in the node's stream on this topic, from 0.
    pub stream_seq: u64,
    pub kind: ShipKind,
    /// The window (kind 1), the hour (kind 2, hours since 1970), 0 (kind 3).
    pub unit: u64,
    /// In the order the receiver writes them.
    pub files: Vec<ShipFile>,
}

impl Record for ShipEnvelope {
    const TYPE: u64 = 27;
    const VERSION: u64 = 1;
    const NAME: &'static str = "ShipEnvelope";
    const FIELDS: u64 = 7;
    const MAX_LEN: usize = MAX_ENVELOPE_LEN;

    fn encode_fields(&self, e: &mut Encoder) {
        e.text(&self.node)
            .uint(self.stream_seq)
            .uint(self.kind as u64)
            .uint(self.unit)
            .array(self.files.len() as u64);
        for f in &self.files {
            e.array(2).text(&f.path).bytes(&f.bytes);
        }
    }

    fn decode_fields(d: &mut Decoder<'_>) -> Result<Self, DecodeError> {
        let node = node_name(d)?;
        let stream_seq = d.uint("stream_seq")?;
        let kind_at = d.position();
        let kind = ShipKind::from_u64(d.uint("kind")?).ok_or_else(|| {
            d.error_at("kind", kind_at, DecodeErrorKind::Invalid("not 1, 2 or 3"))
        })?;
        let unit_at = d.position();
        let unit = d.uint("unit")?;
        if kind == ShipKind::Blob && unit != 0 {
            let why = DecodeErrorKind::Invalid("a blob envelope's unit is 0");
            return Err(d.error_at("unit", unit_at, why));
        }
        let n = d.array("files", MAX_ENVELOPE_FILES)?;
        let mut files = Vec::with_capacity(n.min(1024) as usize);
        let mut seen = std::collections::HashSet::new();
        for _ in 0..n {
            d.array_exact("files", 2)?;
            let path_at = d.position();
            let path = d.text("files.path", MAX_STORE_PATH_LEN)?;
            if !is_store_path(path) {
                let why = DecodeErrorKind::Invalid("not a plain relative store path");
                return Err(d.error_at("files.path", path_at, why));
            }
            if !seen.insert(path) {
                let why = DecodeErrorKind::Invalid("a path twice in one envelope");
                return Err(d.error_at("files.path", path_at, why));
            }
            let bytes = d.bytes("files.bytes", MAX_ENVELOPE_LEN as u64)?.to_vec();
            files.push(ShipFile {
                path: path.to_owned(),
                bytes,
            });
        }
        if kind == ShipKind::Blob && files.len() != 1 {
            let why = DecodeErrorKind::Invalid("a blob envelope holds exactly one file");
            return Err(d.error("files", why));
        }
        Ok(ShipEnvelope {
            node,
            stream_seq,
            kind,
            unit,
            files,
        })
    }
}

fn node_name(d: &mut Decoder<'_>) -> Result<String, DecodeError> {
    let at = d.position();
    let node = d.text("node", MAX_NODE_NAME_LEN as u64)?;
    if !is_valid_node_name(node) {
        let why = DecodeErrorKind::Invalid("not a node name");
        return Err(d.error_at("node", at, why));
    }
    Ok(node.to_owned())
}

/// ShipPart (type 28): the value of one message, a slice of one encoded envelope.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ShipPart {
    pub node: String,
    pub stream_seq: u64,
    /// This part's number, from 0.
    pub part: u32,
    /// How many parts the envelope has, 1 to [`MAX_PARTS`].
    pub parts: u32,
    /// The encoded envelope's length and plain BLAKE3.
    pub envelope_len: u64,
    pub envelope_hash: Hash32,
    /// Bytes `[part × size, …)` of the encoded envelope, `size` the first part's length.
    pub payload: Vec<u8>,
}

impl Record for ShipPart {
    const TYPE: u64 = 28;
    const VERSION: u64 = 1;
    const NAME: &'static str = "ShipPart";
    const FIELDS: u64 = 9;
    const MAX_LEN: usize = MAX_PART_LEN;

    fn encode_fields(&self, e: &mut Encoder) {
        e.text(&self.node)
            .uint(self.stream_seq)
            .uint(self.part as u64)
            .uint(self.parts as u64)
            .uint(self.envelope_len)
            .bytes(&self.envelope_hash)
            .bytes(&self.payload);
    }

    fn decode_fields(d: &mut Decoder<'_>) -> Result<Self, DecodeError> {
        let node = node_name(d)?;
        let stream_seq = d.uint("stream_seq")?;
        let part = d.uint_max("part", MAX_PARTS - 1)? as u32;
        let parts_at = d.position();
        let parts = d.uint_max("parts", MAX_PARTS)? as u32;
        if part >= parts {
            let why = DecodeErrorKind::Invalid("part number not below the part count");
            return Err(d.error_at("parts", parts_at, why));
        }
        let len_at = d.position();
        let envelope_len = d.uint_max("envelope_len", MAX_ENVELOPE_LEN as u64)?;
        if envelope_len == 0 {
            let why = DecodeErrorKind::Invalid("an envelope is never empty");
            return Err(d.error_at("envelope_len", len_at, why));
        }
        let envelope_hash = d.fixed::<32>("envelope_hash")?;
        let payload_at = d.position();
        let payload = d.bytes("payload", MAX_PART_PAYLOAD)?.to_vec();
        if payload.is_empty() || payload.len() as u64 > envelope_len {
            let why =
                DecodeErrorKind::Invalid("a part's payload is 1 byte to the envelope's length");
            return Err(d.error_at("payload", payload_at, why));
        }
        Ok(ShipPart {
            node,
            stream_seq,
            part,
            parts,
            envelope_len,
            envelope_hash,
            payload,
        })
    }
}

impl ShipEnvelope {
    /// The envelope's encoding cut into parts of at most `payload_len` bytes each.
    pub fn to_parts(&self, payload_len: usize) -> Vec<ShipPart> {
        let bytes = self.encode();
        let size = payload_len.clamp(MIN_PART_PAYLOAD as usize, MAX_PART_PAYLOAD as usize);
        let hash = *blake3::hash(&bytes).as_bytes();
        let chunks: Vec<&[u8]> = bytes.chunks(size).collect();
        let parts = chunks.len() as u32;
        chunks
            .into_iter()
            .enumerate()
            .map(|(i, c)| ShipPart {
                node: self.node.clone(),
                stream_seq: self.stream_seq,
                part: i as u32,
                parts,
                envelope_len: bytes.len() as u64,
                envelope_hash: hash,
                payload: c.to_vec(),
            })
            .collect()
    }
}

/// Why parts do not make an envelope.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AssemblyError {
    #[error(
        "part {part} of envelope {stream_seq} of node {node} does not continue the parts before it"
    )]
    OutOfOrder {
        node: String,
        stream_seq: u64,
        part: u32,
    },
    #[error("envelope {stream_seq} of node {node}: {detail}")]
    Mismatch {
        node: String,
        stream_seq: u64,
        detail: &'static str,
    },
    #[error("envelope {stream_seq} of node {node}: {source}")]
    Decode {
        node: String,
        stream_seq: u64,
        source: Box<DecodeError>,
    },
}

/// Joins one envelope's parts as they arrive, in order.
#[derive(Debug, Default)]
pub struct PartAssembler {
    first: Option<ShipPart>,
    next: u32,
    buf: Vec<u8>,
}

impl PartAssembler {
    /// Whether parts of an unfinished envelope are held.
    pub fn pending(&self) -> bool {
        self.first.is_some()
    }

    /// Takes the next part: `Ok(Some)` when it completes an envelope (checked against
    /// the parts' length and hash, then decoded strictly, and naming the parts' node and
    /// stream position). A part 0 starts over (a shipper sending an envelope again after
    /// a restart); any other part must continue the envelope being joined.
    pub fn push(&mut self, p: ShipPart) -> Result<Option<ShipEnvelope>, AssemblyError> {
        if p.part == 0 {
            self.buf.clear();
            self.buf.reserve(p.envelope_len as usize);
        } else {
            let continues = self.first.as_ref().is_some_and(|f| {
                f.node == p.node
                    && f.stream_seq == p.stream_seq
                    && f.parts == p.parts
                    && f.envelope_len == p.envelope_len
                    && f.envelope_hash == p.envelope_hash
            }) && self.next == p.part;
            if !continues {
                self.reset();
                return Err(AssemblyError::OutOfOrder {
                    node: p.node,
                    stream_seq: p.stream_seq,
                    part: p.part,
                });
            }
        }
        let mismatch = |detail| AssemblyError::Mismatch {
            node: p.node.clone(),
            stream_seq: p.stream_seq,
            detail,
        };
        if self.buf.len() as u64 + p.payload.len() as u64 > p.envelope_len {
            self.reset();
            return Err(mismatch("its parts are longer than the envelope"));
        }
        self.buf.extend_from_slice(&p.payload);
        self.next = p.part + 1;
        if self.next < p.parts {
            if self.first.is_none() {
                self.first = Some(ShipPart {
                    payload: Vec::new(),
                    ..p
                });
            }
            return Ok(None);
        }
        let bytes = std::mem::take(&mut self.buf);
        self.reset();
        if bytes.len() as u64 != p.envelope_len {
            return Err(mismatch("its parts are shorter than the envelope"));
        }
        if *blake3::hash(&bytes).as_bytes() != p.envelope_hash {
            return Err(mismatch("its bytes do not have the parts' hash"));
        }
        let env = ShipEnvelope::decode(&bytes).map_err(|source| AssemblyError::Decode {
            node: p.node.clone(),
            stream_seq: p.stream_seq,
            source: Box::new(source),
        })?;
        if env.node != p.node || env.stream_seq != p.stream_seq {
            return Err(mismatch(
                "the envelope names another node or position than its parts",
            ));
        }
        Ok(Some(env))
    }

    fn reset(&mut self) {
        self.first = None;
        self.next = 0;
        self.buf = Vec::new();
    }
}

/// ShipCursor (type 29): how far a node's store has been shipped to one topic, in
/// `_meta/ship/<topic>.cbor`. Node-local, like `wal/`: never shipped, never evidence.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ShipCursor {
    pub topic: String,
    /// The stream position of the next envelope.
    pub next_seq: u64,
    /// The next window to ship; `None` before the first.
    pub next_window: Option<u64>,
    /// The last hour envelope shipped: its hour and the plain BLAKE3 of its encoding
    /// with stream position 0 (so the same files give the same digest).
    pub hour: Option<(u64, Hash32)>,
    /// Plain BLAKE3 over the setup files last shipped (FORMAT.md §12.2).
    pub setup: Option<Hash32>,
}

impl Record for ShipCursor {
    const TYPE: u64 = 29;
    const VERSION: u64 = 1;
    const NAME: &'static str = "ShipCursor";
    const FIELDS: u64 = 7;
    const MAX_LEN: usize = 1024;

    fn encode_fields(&self, e: &mut Encoder) {
        e.text(&self.topic).uint(self.next_seq);
        match self.next_window {
            Some(w) => e.uint(w),
            None => e.null(),
        };
        match &self.hour {
            Some((h, d)) => e.array(2).uint(*h).bytes(d),
            None => e.null(),
        };
        e.opt_bytes(self.setup.as_ref().map(|h| &h[..]));
    }

    fn decode_fields(d: &mut Decoder<'_>) -> Result<Self, DecodeError> {
        let topic = d.text("topic", MAX_TOPIC_LEN)?.to_owned();
        let next_seq = d.uint("next_seq")?;
        let next_window = match d.peek_null() {
            true => d.null("next_window").map(|()| None)?,
            false => Some(d.uint("next_window")?),
        };
        let hour = match d.peek_null() {
            true => d.null("hour").map(|()| None)?,
            false => {
                d.array_exact("hour", 2)?;
                Some((d.uint("hour.hour")?, d.fixed::<32>("hour.digest")?))
            }
        };
        let setup = d.opt_fixed::<32>("setup")?;
        Ok(ShipCursor {
            topic,
            next_seq,
            next_window,
            hour,
            setup,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn envelope(files: &[(&str, &[u8])]) -> ShipEnvelope {
        ShipEnvelope {
            node: "web-1".into(),
            stream_seq: 7,
            kind: ShipKind::Window,
            unit: 1_800_000_000,
            files: files
                .iter()
                .map(|(p, b)| ShipFile {
                    path: (*p).into(),
                    bytes: b.to_vec(),
                })
                .collect(),
        }
    }

    #[test]
    fn store_paths_are_plain_and_relative() {
        for ok in [
            "windows/2026/12/07/05/micro/w0001.sig",
            "_meta/store.cbor",
            "cas/b3/ab/cd/abcd.blob",
        ] {
            assert!(is_store_path(ok), "{ok}");
        }
        for bad in [
            "",
            "/etc/passwd",
            "../x",
            "a/../b",
            "a//b",
            "a/",
            "a/.x.tmp",
            "a/b c",
            "wal/\u{e9}",
        ] {
            assert!(!is_store_path(bad), "{bad:?}");
        }
    }

    #[test]
    fn an_envelope_round_trips_and_rejects_unsafe_or_repeated_paths() {
        let e = envelope(&[("_meta/store.cbor", b"abc"), ("windows/x.sig", b"")]);
        assert_eq!(ShipEnvelope::decode(&e.encode()).unwrap(), e);
        let bad = envelope(&[("a/../b", b"x")]);
        let err = ShipEnvelope::decode(&bad.encode()).unwrap_err();
        assert_eq!(err.field, "files.path");
        let twice = envelope(&[("a", b"x"), ("a", b"y")]);
        assert!(ShipEnvelope::decode(&twice.encode()).is_err());
        let mut blob = envelope(&[("a", b"x"), ("b", b"y")]);
        blob.kind = ShipKind::Blob;
        blob.unit = 0;
        assert!(ShipEnvelope::decode(&blob.encode()).is_err());
    }

    #[test]
    fn parts_join_back_into_the_envelope_and_a_part_zero_starts_over() {
        let big = vec![9u8; 50_000];
        let e = envelope(&[("blocks/w0000.cbor.zst", &big)]);
        let parts = e.to_parts(4096);
        assert!(parts.len() > 10);
        let mut a = PartAssembler::default();
        // An envelope interrupted after two parts, then sent again whole.
        assert_eq!(a.push(parts[0].clone()), Ok(None));
        assert_eq!(a.push(parts[1].clone()), Ok(None));
        let mut out = None;
        for p in &parts {
            out = a.push(ShipPart::decode(&p.encode()).unwrap()).unwrap();
        }
        assert_eq!(out, Some(e));
        assert!(!a.pending());
    }

    #[test]
    fn a_missing_flipped_or_foreign_part_is_refused() {
        let e = envelope(&[("x", &[1u8; 10_000])]);
        let parts = e.to_parts(4096);
        let mut a = PartAssembler::default();
        a.push(parts[0].clone()).unwrap();
        assert!(matches!(
            a.push(parts[2].clone()),
            Err(AssemblyError::OutOfOrder { part: 2, .. })
        ));
        let mut flipped = parts.clone();
        flipped[1].payload[7] ^= 1;
        let mut a = PartAssembler::default();
        let results: Vec<_> = flipped.into_iter().map(|p| a.push(p)).collect();
        assert!(matches!(
            results.last(),
            Some(Err(AssemblyError::Mismatch { .. }))
        ));
        let mut other = parts[0].clone();
        other.payload = e.encode();
        other.parts = 1;
        other.node = "web-2".into();
        other.envelope_hash = *blake3::hash(&other.payload).as_bytes();
        let mut a = PartAssembler::default();
        assert!(matches!(a.push(other), Err(AssemblyError::Mismatch { .. })));
    }

    #[test]
    fn a_cursor_round_trips() {
        for c in [
            ShipCursor {
                topic: "ritma.evidence".into(),
                next_seq: 0,
                next_window: None,
                hour: None,
                setup: None,
            },
            ShipCursor {
                topic: "t".into(),
                next_seq: 99,
                next_window: Some(1_800_000_000),
                hour: Some((500_000, [3; 32])),
                setup: Some([4; 32]),
            },
        ] {
            assert_eq!(ShipCursor::decode(&c.encode()).unwrap(), c);
        }
    }

    proptest! {
        #[test]
        fn part_and_envelope_decoders_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = ShipPart::decode(&bytes);
            let _ = ShipEnvelope::decode(&bytes);
            let _ = ShipCursor::decode(&bytes);
        }
    }
}
