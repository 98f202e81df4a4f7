//! Signed checkpoints: C2SP signed notes (<https://c2sp.org/signed-note>) carrying
//! tlog checkpoints (<https://c2sp.org/tlog-checkpoint>), Ed25519 only.
//!
//! A Ritma node signs the size and Merkle root of its log as a checkpoint note; anyone
//! holding the node's verifier key text can check it, and witnesses can cosign it with
//! their own signature lines. The byte layout is normative in `docs/FORMAT.md`
//! §"Signed checkpoints"; this module is its reference implementation.
//!
//! Key texts are those of Go's `golang.org/x/mod/sumdb/note`:
//! `<name>+<key id>+<base64(0x01 ‖ public key)>` for verifiers and
//! `PRIVATE+KEY+<name>+<key id>+<base64(0x01 ‖ seed)>` for signers.
//!
//! Everything here is stricter than the specifications allow, never looser:
//! - every signature line is a 4-byte key id and at least one byte of signature; a line
//!   that is verified (the expected name and key id) holds exactly an Ed25519 signature
//!   (64 bytes), and a witness cosignature (`crate::cosignature`) its timestamp too;
//! - base64 must be canonical (padded, zero trailing bits);
//! - all ASCII control characters except newline are rejected, DEL included;
//! - a note body must contain at least one character other than newline;
//! - public keys must be canonical point encodings and not of small order, and
//!   signatures are checked with `verify_strict` (canonical S, no small-order R or A);
//! - a checkpoint body has exactly three lines (no extension lines) and its origin is
//!   `ritma/<node>` with `<node>` in `[A-Za-z0-9._-]{1,64}`, not starting with `.`.
//!
//! No function here panics on any input.

use std::fmt;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use ed25519_dalek::{Signature, Signer as _, SigningKey, VerifyingKey};
use sha2::{Digest, Sha256};

use crate::hash::Hash32;

/// Every signature line starts with an em dash (U+2014) and one space.
pub(crate) const SIG_PREFIX: &str = "\u{2014} ";
/// The C2SP signature type byte for Ed25519.
const ALG_ED25519: u8 = 0x01;
/// The prefix of a Go-compatible private key text.
pub(crate) const PRIVATE_KEY_PREFIX: &str = "PRIVATE+KEY+";
/// Every Ritma checkpoint origin is this prefix followed by the node name.
pub const ORIGIN_PREFIX: &str = "ritma/";
/// Longest node name, in bytes (all of them ASCII).
pub use crate::records::MAX_NODE_NAME_LEN as MAX_NODE_LEN;
/// Most signature lines a note may carry (C2SP requires at least 16; Go uses 100).
pub const MAX_SIGNATURES: usize = 100;

/// Why a note, key text or checkpoint was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum NoteError {
    /// An ASCII control character other than newline (C2SP forbids them).
    #[error("control character at byte offset {offset}: a note may contain no ASCII control character other than newline")]
    ControlCharacter { offset: usize },
    /// The note or body does not end with a newline.
    #[error("text does not end with a newline")]
    MissingFinalNewline,
    /// There is no blank line followed by at least one signature line.
    #[error("no signature block: a signed note needs a blank line followed by at least one signature line")]
    NoSignatureBlock,
    /// The body is empty or only newlines.
    #[error("note body is empty: it needs at least one character other than newline")]
    EmptyBody,
    /// More signature lines than [`MAX_SIGNATURES`].
    #[error("note has {found} signature lines; at most {max} are accepted")]
    TooManySignatures { found: usize, max: usize },
    /// A signature line that is not `— <name> <base64>`.
    #[error("malformed signature line {line}: {reason}")]
    MalformedSignatureLine { line: usize, reason: &'static str },
    /// A signature line whose bytes are not a 4-byte key id and a signature.
    #[error("signature on line {line} decodes to {found} bytes; a signature line holds a 4-byte key id and at least one byte of signature")]
    BadSignatureLength { line: usize, found: usize },
    /// Base64 that is not canonical padded standard base64.
    #[error("{what} is not canonical padded standard base64")]
    BadBase64 { what: &'static str },
    /// A key name that is empty or contains whitespace, `+` or a control character.
    #[error("invalid key name: it must be non-empty and contain no whitespace, '+' or control character")]
    BadKeyName,
    /// The expected name signed, but with a different key id: another key.
    #[error("signature by {name:?} has key id {found:08x}, expected {expected:08x}: it was made by a different key")]
    UnknownKeyId {
        name: String,
        found: u32,
        expected: u32,
    },
    /// No signature line carries the expected key name.
    #[error("no signature by {name:?}")]
    MissingSignature { name: String },
    /// The signature by the expected key does not verify.
    #[error("Ed25519 signature does not verify")]
    BadSignature,
    /// A cosignature timestamp past 2^63 − 1 (C2SP tlog-cosignature).
    #[error("cosignature timestamp exceeds 2^63 - 1")]
    BadTimestamp,
    /// The public key is a point of small order, for which signatures prove nothing.
    #[error("public key is a point of small order (weak Ed25519 key)")]
    WeakPublicKey,
    /// The public key is not the canonical encoding of a curve point.
    #[error("public key is not the canonical encoding of an Ed25519 curve point")]
    InvalidPublicKey,
    /// A verifier key text that is not `<name>+<key id>+<base64(0x01 ‖ key)>`.
    #[error("malformed verifier key: {0}")]
    BadVkey(&'static str),
    /// A private key text that is not `PRIVATE+KEY+<name>+<key id>+<base64(0x01 ‖ seed)>`.
    #[error("malformed private key: {0}")]
    BadPrivateKey(&'static str),
    /// A checkpoint body without exactly three lines.
    #[error("checkpoint body has {found} lines; a Ritma checkpoint has exactly 3 (origin, tree size, root hash)")]
    WrongLineCount { found: usize },
    /// A tree size that is not canonical decimal or does not fit in a u64.
    #[error("tree size is not a canonical decimal u64 (ASCII digits only, no sign, no leading zero, at most 18446744073709551615)")]
    BadTreeSize,
    /// A root hash line that is not canonical base64 of exactly 32 bytes.
    #[error("root hash is not canonical padded standard base64 of exactly 32 bytes")]
    BadRootHash,
    /// A checkpoint origin that does not start with `ritma/`.
    #[error("checkpoint origin does not start with \"ritma/\"")]
    BadOrigin,
    /// A node name outside `[A-Za-z0-9._-]{1,64}`.
    #[error("node name must be 1 to 64 characters from [A-Za-z0-9._-], not starting with .")]
    BadNodeName,
    /// The checkpoint's origin and the key's name differ.
    #[error("checkpoint origin {origin:?} does not match key name {key_name:?}")]
    OriginMismatch { origin: String, key_name: String },
}

/// The C2SP key id of an Ed25519 key: the first four bytes, big-endian, of
/// SHA-256(name ‖ 0x0A ‖ 0x01 ‖ public key).
pub fn key_id(name: &str, public_key: &[u8; 32]) -> u32 {
    let mut h = Sha256::new();
    h.update(name.as_bytes());
    h.update([b'\n', ALG_ED25519]);
    h.update(public_key);
    let d = h.finalize();
    u32::from_be_bytes([d[0], d[1], d[2], d[3]])
}

/// Holds an Ed25519 signing key under a key name and signs notes with it.
#[derive(Clone)]
pub struct NoteSigner {
    name: String,
    key_id: u32,
    key: SigningKey,
}

// Hand-written so that the secret key never reaches a log line.
impl fmt::Debug for NoteSigner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NoteSigner")
            .field("name", &self.name)
            .field("key_id", &format_args!("{:08x}", self.key_id))
            .finish_non_exhaustive()
    }
}

impl NoteSigner {
    /// A signer for `key` under `name`; the name must be a valid key name.
    pub fn new(name: &str, key: SigningKey) -> Result<Self, NoteError> {
        validate_name(name)?;
        let key_id = key_id(name, key.verifying_key().as_bytes());
        Ok(Self {
            name: name.to_owned(),
            key_id,
            key,
        })
    }

    /// A signer whose key is derived from a 32-byte RFC 8032 seed.
    pub fn from_seed(name: &str, seed: [u8; 32]) -> Result<Self, NoteError> {
        Self::new(name, SigningKey::from_bytes(&seed))
    }

    /// The key name written on signature lines.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The key id written in front of every signature.
    pub fn key_id(&self) -> u32 {
        self.key_id
    }

    /// The matching verifier.
    pub fn verifier(&self) -> NoteVerifier {
        // A key derived from a seed is always a canonical point of prime order, so no checks.
        NoteVerifier {
            name: self.name.clone(),
            key_id: self.key_id,
            key: self.key.verifying_key(),
        }
    }

    /// The 32-byte RFC 8032 seed (secret).
    pub fn seed(&self) -> [u8; 32] {
        self.key.to_bytes()
    }

    /// Signs `body` and returns the whole note: body, blank line, one signature line.
    pub fn sign(&self, body: &str) -> Result<String, NoteError> {
        validate_body(body)?;
        let line = self.signature_line(body);
        let mut note = String::with_capacity(body.len() + 1 + line.len());
        note.push_str(body);
        note.push('\n');
        note.push_str(&line);
        Ok(note)
    }

    /// Adds this key's signature to a signed note (a cosignature: an approval several
    /// keys sign); a note it already signed is returned unchanged.
    pub fn cosign(&self, note: &str) -> Result<String, NoteError> {
        let parsed = parse_note(note)?;
        if parsed
            .signatures
            .iter()
            .any(|s| s.name == self.name && s.key_id == self.key_id)
        {
            return Ok(note.to_owned());
        }
        Ok(format!("{note}{}", self.signature_line(parsed.body)))
    }

    /// The signature line (with its final newline) this key makes for `body`.
    fn signature_line(&self, body: &str) -> String {
        let sig = self.key.sign(body.as_bytes()).to_bytes();
        let mut raw = [0u8; 68];
        raw[..4].copy_from_slice(&self.key_id.to_be_bytes());
        raw[4..].copy_from_slice(&sig);
        format!("{SIG_PREFIX}{} {}\n", self.name, B64.encode(raw))
    }

    /// Ed25519 over raw bytes, for records signed outside notes (`SignedRecord`).
    pub(crate) fn sign_raw(&self, message: &[u8]) -> [u8; 64] {
        use ed25519_dalek::Signer;
        self.key.sign(message).to_bytes()
    }

    /// The Go-compatible private key text `PRIVATE+KEY+<name>+<key id>+<base64(0x01 ‖ seed)>`.
    pub fn to_private_key_text(&self) -> String {
        private_key_text(&self.name, self.key_id, ALG_ED25519, &self.key.to_bytes())
    }

    /// Parses a private key text; its key id must match the name and derived public key.
    /// Error messages never repeat any part of the key.
    pub fn from_private_key_text(s: &str) -> Result<Self, NoteError> {
        let (name, id, seed) = parse_private_key_text(s, ALG_ED25519)?;
        let signer = Self::from_seed(name, seed)?;
        if signer.key_id != id {
            return Err(NoteError::BadPrivateKey(
                "key id does not match the name and key",
            ));
        }
        Ok(signer)
    }
}

/// An Ed25519 public key under a key name: checks notes signed by that key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NoteVerifier {
    name: String,
    key_id: u32,
    key: VerifyingKey,
}

impl NoteVerifier {
    /// A verifier for `public_key` under `name`. Rejects invalid names, encodings that
    /// are not canonical curve points, and small-order (weak) keys.
    pub fn new(name: &str, public_key: [u8; 32]) -> Result<Self, NoteError> {
        validate_name(name)?;
        let key = checked_public_key(public_key)?;
        Ok(Self {
            name: name.to_owned(),
            key_id: key_id(name, &public_key),
            key,
        })
    }

    /// The key name this verifier expects on signature lines.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The key id this verifier expects in front of signatures.
    pub fn key_id(&self) -> u32 {
        self.key_id
    }

    /// The 32-byte Ed25519 public key.
    pub fn public_key(&self) -> [u8; 32] {
        self.key.to_bytes()
    }

    /// The verifier key text `<name>+<key id>+<base64(0x01 ‖ public key)>`.
    /// `verify_strict` over raw bytes, for records signed outside notes.
    pub(crate) fn verify_raw(&self, message: &[u8], signature: &[u8; 64]) -> bool {
        let sig = ed25519_dalek::Signature::from_bytes(signature);
        self.key.verify_strict(message, &sig).is_ok()
    }

    pub fn to_vkey(&self) -> String {
        key_text(&self.name, self.key_id, ALG_ED25519, self.key.as_bytes())
    }

    /// Parses a verifier key text; its key id must match the name and key.
    pub fn from_vkey(s: &str) -> Result<Self, NoteError> {
        let (name, id, public_key) = parse_vkey_text(s, ALG_ED25519)?;
        let verifier = Self::new(name, public_key)?;
        if verifier.key_id != id {
            return Err(NoteError::BadVkey("key id does not match the name and key"));
        }
        Ok(verifier)
    }
}

/// An Ed25519 public key that is a canonical encoding of a point not of small order.
pub(crate) fn checked_public_key(public_key: [u8; 32]) -> Result<VerifyingKey, NoteError> {
    let key = VerifyingKey::from_bytes(&public_key).map_err(|_| NoteError::InvalidPublicKey)?;
    // A small-order key admits signatures that verify for many messages.
    if key.is_weak() {
        return Err(NoteError::WeakPublicKey);
    }
    // The decoder also accepts y ≥ p; insist on the one encoding so a key has one key id.
    if key.to_edwards().compress().to_bytes() != public_key {
        return Err(NoteError::InvalidPublicKey);
    }
    Ok(key)
}

/// One parsed signature line: `— <name> base64(key id ‖ signature)`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NoteSignature {
    /// The key name.
    pub name: String,
    /// The key id (big-endian on the wire).
    pub key_id: u32,
    /// The signature bytes after the key id: an Ed25519 signature (64 bytes) on a node's
    /// line, a timestamp and one (72) on a witness cosignature; other lengths belong to
    /// other key types and are only checked when their key is.
    pub signature: Vec<u8>,
}

/// A note split into its body and signature lines; nothing in it is verified yet.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SignedNote<'a> {
    /// The signed text, including its final newline but not the blank line.
    pub body: &'a str,
    /// The signature lines, in order.
    pub signatures: Vec<NoteSignature>,
}

/// Splits a note into body and signature lines, checking the syntax only.
pub fn parse_note(text: &str) -> Result<SignedNote<'_>, NoteError> {
    check_controls(text)?;
    if !text.ends_with('\n') {
        return Err(NoteError::MissingFinalNewline);
    }
    // C2SP: the body may contain blank lines; the signatures follow the last one.
    let split = text.rfind("\n\n").ok_or(NoteError::NoSignatureBlock)?;
    let body = text.get(..split + 1).ok_or(NoteError::NoSignatureBlock)?;
    let block = text.get(split + 2..).ok_or(NoteError::NoSignatureBlock)?;
    if block.is_empty() {
        return Err(NoteError::NoSignatureBlock);
    }
    if !has_content(body) {
        return Err(NoteError::EmptyBody);
    }
    // The block ends with a newline, so this counts its lines; refuse before decoding any.
    let count = block.matches('\n').count();
    if count > MAX_SIGNATURES {
        return Err(NoteError::TooManySignatures {
            found: count,
            max: MAX_SIGNATURES,
        });
    }
    // 1-based number of the first signature line: after the body lines and the blank line.
    let first_line = body.matches('\n').count() + 2;
    let signatures = block
        .split_terminator('\n')
        .enumerate()
        .map(|(i, line)| parse_signature_line(line, first_line + i))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(SignedNote { body, signatures })
}

/// Verifies the signature by `verifier` and returns the body.
///
/// Signatures by other names (witness cosignatures) are ignored, and so, as C2SP
/// requires, are ones by the same name under another key id; but at least one
/// signature by the verifier's key must exist, and every one must verify.
pub fn verify_note<'a>(text: &'a str, verifier: &NoteVerifier) -> Result<&'a str, NoteError> {
    let note = parse_note(text)?;
    let mut verified = false;
    let mut other_key_id = None;
    for sig in note.signatures.iter().filter(|s| s.name == verifier.name) {
        if sig.key_id != verifier.key_id {
            other_key_id.get_or_insert(sig.key_id);
            continue;
        }
        // verify_strict, not verify: it also rejects non-canonical S and small-order R or A.
        let bytes: &[u8; 64] = sig
            .signature
            .as_slice()
            .try_into()
            .map_err(|_| NoteError::BadSignature)?;
        verifier
            .key
            .verify_strict(note.body.as_bytes(), &Signature::from_bytes(bytes))
            .map_err(|_| NoteError::BadSignature)?;
        verified = true;
    }
    match (verified, other_key_id) {
        (true, _) => Ok(note.body),
        (false, Some(found)) => Err(NoteError::UnknownKeyId {
            name: verifier.name.clone(),
            found,
            expected: verifier.key_id,
        }),
        (false, None) => Err(NoteError::MissingSignature {
            name: verifier.name.clone(),
        }),
    }
}

/// A tlog checkpoint: the log's origin, its size and its Merkle root.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Checkpoint {
    /// `ritma/<node>`; also the name of the key that signs it.
    pub origin: String,
    /// Number of leaves in the tree.
    pub size: u64,
    /// Merkle root of those leaves.
    pub root: Hash32,
}

impl Checkpoint {
    /// The checkpoint of node `node`'s log: origin `ritma/<node>`.
    pub fn for_node(node: &str, size: u64, root: Hash32) -> Result<Self, NoteError> {
        validate_node(node)?;
        Ok(Self {
            origin: format!("{ORIGIN_PREFIX}{node}"),
            size,
            root,
        })
    }

    /// The node name, if the origin is a Ritma one.
    pub fn node(&self) -> Option<&str> {
        self.origin.strip_prefix(ORIGIN_PREFIX)
    }

    /// The note body: `origin\nsize\nbase64(root)\n`.
    pub fn body(&self) -> String {
        format!(
            "{}\n{}\n{}\n",
            self.origin,
            self.size,
            B64.encode(self.root)
        )
    }

    /// Parses a body of exactly three lines: origin, tree size, root hash.
    pub fn parse_body(body: &str) -> Result<Self, NoteError> {
        let content = body
            .strip_suffix('\n')
            .ok_or(NoteError::MissingFinalNewline)?;
        let mut lines = content.split('\n');
        let (Some(origin), Some(size), Some(root), None) =
            (lines.next(), lines.next(), lines.next(), lines.next())
        else {
            return Err(NoteError::WrongLineCount {
                found: content.split('\n').count(),
            });
        };
        validate_origin(origin)?;
        let size = parse_tree_size(size)?;
        let root = decode_b64(root)
            .and_then(|raw| Hash32::try_from(raw.as_slice()).ok())
            .ok_or(NoteError::BadRootHash)?;
        Ok(Self {
            origin: origin.to_owned(),
            size,
            root,
        })
    }

    /// Signs the checkpoint; the signer's name must be the origin.
    pub fn sign(&self, signer: &NoteSigner) -> Result<String, NoteError> {
        // Never sign what parse_body would refuse.
        validate_origin(&self.origin)?;
        if signer.name() != self.origin {
            return Err(NoteError::OriginMismatch {
                origin: self.origin.clone(),
                key_name: signer.name().to_owned(),
            });
        }
        signer.sign(&self.body())
    }

    /// Verifies a signed checkpoint note and parses it; the origin must be the key's name.
    pub fn verify(note: &str, verifier: &NoteVerifier) -> Result<Self, NoteError> {
        let checkpoint = Self::parse_body(verify_note(note, verifier)?)?;
        if checkpoint.origin != verifier.name() {
            return Err(NoteError::OriginMismatch {
                origin: checkpoint.origin,
                key_name: verifier.name().to_owned(),
            });
        }
        Ok(checkpoint)
    }
}

/// C2SP key names: non-empty, no Unicode whitespace, no `+`; we also refuse control characters.
pub(crate) fn validate_name(name: &str) -> Result<(), NoteError> {
    let bad = |c: char| c.is_whitespace() || c.is_control() || c == '+';
    if name.is_empty() || name.chars().any(bad) {
        return Err(NoteError::BadKeyName);
    }
    Ok(())
}

/// Node names follow the one rule in `records` (they also name directories).
fn validate_node(node: &str) -> Result<(), NoteError> {
    if !crate::records::is_valid_node_name(node) {
        return Err(NoteError::BadNodeName);
    }
    Ok(())
}

fn validate_origin(origin: &str) -> Result<(), NoteError> {
    validate_node(
        origin
            .strip_prefix(ORIGIN_PREFIX)
            .ok_or(NoteError::BadOrigin)?,
    )
}

/// What `sign` requires of a body, so that `parse_note` gives the same body back.
pub(crate) fn validate_body(body: &str) -> Result<(), NoteError> {
    if !has_content(body) {
        return Err(NoteError::EmptyBody);
    }
    check_controls(body)?;
    if !body.ends_with('\n') {
        return Err(NoteError::MissingFinalNewline);
    }
    Ok(())
}

fn has_content(body: &str) -> bool {
    body.bytes().any(|b| b != b'\n')
}

/// Bytes below 0x80 are whole characters in UTF-8, so a byte scan finds exactly the ASCII controls.
fn check_controls(text: &str) -> Result<(), NoteError> {
    match text
        .bytes()
        .position(|b| b != b'\n' && b.is_ascii_control())
    {
        Some(offset) => Err(NoteError::ControlCharacter { offset }),
        None => Ok(()),
    }
}

fn parse_signature_line(line: &str, number: usize) -> Result<NoteSignature, NoteError> {
    let malformed = |reason| NoteError::MalformedSignatureLine {
        line: number,
        reason,
    };
    let rest = line
        .strip_prefix(SIG_PREFIX)
        .ok_or_else(|| malformed("does not start with an em dash (U+2014) and one space"))?;
    let (name, b64) = rest
        .split_once(' ')
        .ok_or_else(|| malformed("no space between key name and signature"))?;
    if name.is_empty() {
        return Err(malformed(
            "empty key name (more than one space after the dash?)",
        ));
    }
    if b64.is_empty() || b64.contains(' ') {
        return Err(malformed(
            "key name and signature must be separated by exactly one space",
        ));
    }
    validate_name(name)?;
    let raw = decode_b64(b64).ok_or(NoteError::BadBase64 { what: "signature" })?;
    let [a, b, c, d, signature @ ..] = raw.as_slice() else {
        return Err(NoteError::BadSignatureLength {
            line: number,
            found: raw.len(),
        });
    };
    if signature.is_empty() {
        return Err(NoteError::BadSignatureLength {
            line: number,
            found: raw.len(),
        });
    }
    Ok(NoteSignature {
        name: name.to_owned(),
        key_id: u32::from_be_bytes([*a, *b, *c, *d]),
        signature: signature.to_vec(),
    })
}

/// A key text of §4.2: `<name>+<key id>+<base64(alg ‖ key)>`.
pub(crate) fn key_text(name: &str, key_id: u32, alg: u8, key: &[u8; 32]) -> String {
    let mut raw = [0u8; 33];
    raw[0] = alg;
    raw[1..].copy_from_slice(key);
    format!("{name}+{key_id:08x}+{}", B64.encode(raw))
}

/// A private key text of key type `alg`: `PRIVATE+KEY+` and a key text holding the seed.
pub(crate) fn private_key_text(name: &str, key_id: u32, alg: u8, seed: &[u8; 32]) -> String {
    format!("{PRIVATE_KEY_PREFIX}{}", key_text(name, key_id, alg, seed))
}

/// A verifier key text's name, key id and public key, for key type `alg` (the name is
/// checked first; the key id against the key by the caller).
pub(crate) fn parse_vkey_text(s: &str, alg: u8) -> Result<(&str, u32, [u8; 32]), NoteError> {
    validate_name(s.split('+').next().unwrap_or(""))?;
    parse_key_text(s, alg).map_err(NoteError::BadVkey)
}

/// A private key text's name, key id and seed, for key type `alg`; errors never repeat any
/// part of the key.
pub(crate) fn parse_private_key_text(s: &str, alg: u8) -> Result<(&str, u32, [u8; 32]), NoteError> {
    let rest = s
        .strip_prefix(PRIVATE_KEY_PREFIX)
        .ok_or(NoteError::BadPrivateKey("does not start with PRIVATE+KEY+"))?;
    validate_name(rest.split('+').next().unwrap_or(""))?;
    parse_key_text(rest, alg).map_err(NoteError::BadPrivateKey)
}

/// Splits a key text `<name>+<key id>+<base64(alg ‖ 32 bytes)>` (after any `PRIVATE+KEY+`)
/// at its first two `+` (the base64 may hold more), requiring the algorithm byte `alg`;
/// the name is checked by the caller. Errors say what is wrong, never the key.
fn parse_key_text(s: &str, alg: u8) -> Result<(&str, u32, [u8; 32]), &'static str> {
    let (name, rest) = s.split_once('+').ok_or("expected <name>+<key id>+<key>")?;
    let (id_hex, key_b64) = rest
        .split_once('+')
        .ok_or("expected <name>+<key id>+<key>")?;
    let id = parse_hex8(id_hex).ok_or("key id is not 8 lowercase hex digits")?;
    let raw = decode_b64(key_b64).ok_or("key is not canonical padded standard base64")?;
    let [found, key @ ..]: [u8; 33] = raw
        .as_slice()
        .try_into()
        .map_err(|_| "key is not 33 bytes (algorithm byte and 32 key bytes)")?;
    if found != alg {
        return Err(match alg {
            ALG_ED25519 => "algorithm byte is not 0x01 (Ed25519)",
            _ => "algorithm byte is not 0x04 (Ed25519 cosignature/v1)",
        });
    }
    Ok((name, id, key))
}

/// Canonical decimal only, so one size has one encoding.
fn parse_tree_size(s: &str) -> Result<u64, NoteError> {
    let canonical =
        !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) && (s == "0" || !s.starts_with('0'));
    if !canonical {
        return Err(NoteError::BadTreeSize);
    }
    s.parse().map_err(|_| NoteError::BadTreeSize)
}

/// Exactly 8 lowercase hex digits, as Go writes key ids.
fn parse_hex8(s: &str) -> Option<u32> {
    if s.len() != 8 || !s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
        return None;
    }
    u32::from_str_radix(s, 16).ok()
}

/// Standard padded base64, and only its canonical form, so no two texts decode alike.
pub(crate) fn decode_b64(s: &str) -> Option<Vec<u8>> {
    B64.decode(s).ok().filter(|raw| B64.encode(raw) == s)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ed25519_dalek::Verifier as _;
    use proptest::prelude::*;

    fn h32(s: &str) -> [u8; 32] {
        hex::decode(s).unwrap().try_into().unwrap()
    }

    fn h64(s: &str) -> [u8; 64] {
        hex::decode(s).unwrap().try_into().unwrap()
    }

    const NODE: &str = "node-1.example_A";
    const ORIGIN: &str = "ritma/node-1.example_A";

    fn signer() -> NoteSigner {
        NoteSigner::from_seed(ORIGIN, [7u8; 32]).unwrap()
    }

    fn checkpoint() -> Checkpoint {
        let root: Hash32 = std::array::from_fn(|i| (i as u8).wrapping_mul(37).wrapping_add(5));
        Checkpoint::for_node(NODE, 1234567, root).unwrap()
    }

    fn signed_checkpoint() -> String {
        checkpoint().sign(&signer()).unwrap()
    }

    /// A signature line with arbitrary decoded bytes.
    fn raw_line(name: &str, raw: &[u8]) -> String {
        format!("\u{2014} {name} {}\n", B64.encode(raw))
    }

    /// A signature line with the given key id and signature bytes.
    fn sig_line(name: &str, id: u32, sig: &[u8; 64]) -> String {
        let mut raw = id.to_be_bytes().to_vec();
        raw.extend_from_slice(sig);
        raw_line(name, &raw)
    }

    // ---- RFC 8032 ---------------------------------------------------------------------

    #[test]
    fn rfc8032_section_7_1_vectors_1_to_3() {
        let vectors = [
            (
                "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60",
                "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a",
                "",
                "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b",
            ),
            (
                "4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb",
                "3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c",
                "72",
                "92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da085ac1e43e15996e458f3613d0f11d8c387b2eaeb4302aeeb00d291612bb0c00",
            ),
            (
                "c5aa8df43f9f837bedb7442f31dcb7b166d38535076f094b85ce3a2e0b4458f7",
                "fc51cd8e6218a1a38da47ed00230f0580816ed13ba3303ac5deb911548908025",
                "af82",
                "6291d657deec24024827e69c3abe01a30ce548a284743a445e3680d7db5ac3ac18ff9b538d16f290ae67f760984dc6594a7c15e9716ed28dc027beceea1ec40a",
            ),
        ];
        for (sk, pk, msg, sig) in vectors {
            let msg = hex::decode(msg).unwrap();
            let signer = NoteSigner::from_seed("rfc8032", h32(sk)).unwrap();
            assert_eq!(signer.seed(), h32(sk));
            assert_eq!(signer.verifier().public_key(), h32(pk));
            let made = signer.key.sign(&msg).to_bytes();
            assert_eq!(made, h64(sig));
            let vk = NoteVerifier::new("rfc8032", h32(pk)).unwrap();
            vk.key
                .verify_strict(&msg, &Signature::from_bytes(&h64(sig)))
                .unwrap();
            let mut other = msg.clone();
            other.push(0);
            assert!(vk
                .key
                .verify_strict(&other, &Signature::from_bytes(&h64(sig)))
                .is_err());
        }
    }

    // ---- Known answers: Go's golang.org/x/mod/sumdb/note example ----------------------

    const GO_VKEY: &str = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW";
    const GO_SKEY: &str =
        "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz";
    const GO_TEXT: &str = "If you think cryptography is the answer to your problem,\n\
                           then you don't know what your problem is.\n";
    const GO_SIG: &str = "\u{2014} PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n";

    #[test]
    fn go_sumdb_note_example_known_answer() {
        let go_note = format!("{GO_TEXT}\n{GO_SIG}");
        let signer = NoteSigner::from_private_key_text(GO_SKEY).unwrap();
        assert_eq!(signer.name(), "PeterNeumann");
        assert_eq!(signer.key_id(), 0xc74f20a3);
        assert_eq!(signer.to_private_key_text(), GO_SKEY);
        assert_eq!(signer.verifier().to_vkey(), GO_VKEY);
        // Ed25519 is deterministic, so our note must be Go's byte for byte.
        assert_eq!(signer.sign(GO_TEXT).unwrap(), go_note);

        let verifier = NoteVerifier::from_vkey(GO_VKEY).unwrap();
        assert_eq!(verifier, signer.verifier());
        assert_eq!(verify_note(&go_note, &verifier).unwrap(), GO_TEXT);
        let tampered = go_note.replace("cryptography", "cryptographY");
        assert_eq!(
            verify_note(&tampered, &verifier),
            Err(NoteError::BadSignature)
        );
    }

    #[test]
    fn key_id_is_sha256_of_name_newline_alg_key() {
        let pk = NoteVerifier::from_vkey(GO_VKEY).unwrap().public_key();
        // Computed here from the spec's bytes, independently of key_id().
        let mut bytes = b"PeterNeumann\n\x01".to_vec();
        bytes.extend_from_slice(&pk);
        let digest = Sha256::digest(&bytes);
        let expected = u32::from_be_bytes(digest[..4].try_into().unwrap());
        assert_eq!(expected, 0xc74f20a3);
        assert_eq!(key_id("PeterNeumann", &pk), expected);
        // The name is part of the hash.
        assert_ne!(key_id("PeterNeumann2", &pk), expected);
    }

    #[test]
    fn vkey_manglings_are_rejected() {
        // Ported from Go's TestNewVerifier: every proper substring and every byte+1.
        let b = GO_VKEY.as_bytes();
        for i in 0..=b.len() {
            for j in i + 1..=b.len() {
                if i != 0 || j != b.len() {
                    let s = std::str::from_utf8(&b[i..j]).unwrap();
                    assert!(NoteVerifier::from_vkey(s).is_err(), "{s}");
                }
            }
        }
        for i in 0..b.len() {
            let mut m = b.to_vec();
            m[i] += 1;
            let s = String::from_utf8(m).unwrap();
            assert!(NoteVerifier::from_vkey(&s).is_err(), "{s}");
        }
        let wrong_id = GO_VKEY.replace("c74f20a3", "cc469956");
        assert!(matches!(
            NoteVerifier::from_vkey(&wrong_id),
            Err(NoteError::BadVkey(_))
        ));
        let upper = GO_VKEY.replace("c74f20a3", "C74F20A3");
        assert!(matches!(
            NoteVerifier::from_vkey(&upper),
            Err(NoteError::BadVkey(_))
        ));
    }

    #[test]
    fn key_texts_round_trip_and_reject_bad_fields() {
        let s = signer();
        assert_eq!(
            NoteSigner::from_private_key_text(&s.to_private_key_text())
                .unwrap()
                .seed(),
            s.seed()
        );
        assert_eq!(
            NoteVerifier::from_vkey(&s.verifier().to_vkey()).unwrap(),
            s.verifier()
        );

        let vk = |name: &str, id: u32, raw: &[u8]| format!("{name}+{id:08x}+{}", B64.encode(raw));
        let pk = s.verifier().public_key();
        let id = s.key_id();
        let mut alg2 = vec![0x02];
        alg2.extend_from_slice(&pk);
        assert_eq!(
            NoteVerifier::from_vkey(&vk(ORIGIN, id, &alg2)),
            Err(NoteError::BadVkey("algorithm byte is not 0x01 (Ed25519)"))
        );
        assert!(matches!(
            NoteVerifier::from_vkey(&vk(ORIGIN, id, &alg2[..32])),
            Err(NoteError::BadVkey(_))
        ));
        assert!(matches!(
            NoteVerifier::from_vkey("ritma/a+0000000"),
            Err(NoteError::BadVkey(_))
        ));
        assert_eq!(
            NoteVerifier::from_vkey(&format!("+{id:08x}+AA==")),
            Err(NoteError::BadKeyName)
        );

        let sk = |rest: &str| NoteSigner::from_private_key_text(rest);
        let text = s.to_private_key_text();
        assert!(matches!(
            sk(&text.replacen("PRIVATE", "PUBLIC", 1)),
            Err(NoteError::BadPrivateKey(_))
        ));
        assert!(matches!(
            sk(&text.replace(&format!("{id:08x}"), "00000000")),
            Err(NoteError::BadPrivateKey(_))
        ));
        let mut seed2 = vec![0x02];
        seed2.extend_from_slice(&s.seed());
        let bad_alg = format!("PRIVATE+KEY+{ORIGIN}+{id:08x}+{}", B64.encode(&seed2));
        assert_eq!(
            sk(&bad_alg).unwrap_err(),
            NoteError::BadPrivateKey("algorithm byte is not 0x01 (Ed25519)")
        );
        let short = format!("PRIVATE+KEY+{ORIGIN}+{id:08x}+{}", B64.encode(&seed2[..32]));
        assert!(matches!(sk(&short), Err(NoteError::BadPrivateKey(_))));
    }

    #[test]
    fn signer_debug_and_errors_do_not_leak_the_seed() {
        let s = signer();
        let debug = format!("{s:?}");
        assert!(debug.contains(ORIGIN));
        assert!(!debug.contains(&hex::encode(s.seed())));
        let text = s.to_private_key_text();
        let b64 = text.rsplit('+').next().unwrap();
        assert!(!debug.contains(b64));
        let err = NoteSigner::from_private_key_text(
            &text.replace(&format!("{:08x}", s.key_id()), "00000000"),
        );
        assert!(!err.unwrap_err().to_string().contains(b64));
    }

    #[test]
    fn key_names_are_validated() {
        for bad in [
            "",
            "a b",
            "a+b",
            "a\u{a0}b",
            "a\u{2003}b",
            "a\tb",
            "a\u{85}b",
        ] {
            assert_eq!(
                NoteSigner::from_seed(bad, [1; 32]).unwrap_err(),
                NoteError::BadKeyName,
                "{bad:?}"
            );
            let pk = signer().verifier().public_key();
            assert_eq!(
                NoteVerifier::new(bad, pk).unwrap_err(),
                NoteError::BadKeyName,
                "{bad:?}"
            );
        }
        assert!(NoteSigner::from_seed("example.com/log-1", [1; 32]).is_ok());
    }

    // ---- Round trips ------------------------------------------------------------------

    #[test]
    fn checkpoint_round_trip() {
        let cp = checkpoint();
        let note = signed_checkpoint();
        let root_b64 = B64.encode(cp.root);
        assert!(note.starts_with(&format!(
            "{ORIGIN}\n1234567\n{root_b64}\n\n\u{2014} {ORIGIN} "
        )));
        let parsed = parse_note(&note).unwrap();
        assert_eq!(parsed.body, cp.body());
        assert_eq!(parsed.signatures.len(), 1);
        assert_eq!(parsed.signatures[0].name, ORIGIN);
        assert_eq!(parsed.signatures[0].key_id, signer().key_id());

        let back = Checkpoint::verify(&note, &signer().verifier()).unwrap();
        assert_eq!(back, cp);
        assert_eq!(back.node(), Some(NODE));
        assert_eq!(Checkpoint::parse_body(&cp.body()).unwrap(), cp);
    }

    #[test]
    fn checkpoint_size_extremes_round_trip() {
        for size in [0, 1, 10, u64::MAX] {
            let cp = Checkpoint::for_node("n", size, [0xff; 32]).unwrap();
            let s = NoteSigner::from_seed("ritma/n", [3; 32]).unwrap();
            assert_eq!(
                Checkpoint::verify(&cp.sign(&s).unwrap(), &s.verifier()).unwrap(),
                cp
            );
        }
    }

    #[test]
    fn body_with_blank_lines_round_trips() {
        // C2SP allows blank lines in the text; the signatures follow the last one.
        let body = "a\n\nb\n\n";
        let note = signer().sign(body).unwrap();
        assert_eq!(verify_note(&note, &signer().verifier()).unwrap(), body);
    }

    #[test]
    fn witness_cosignatures_are_ignored() {
        let witness = NoteSigner::from_seed("witness.example/w1", [9; 32]).unwrap();
        let cp_note = signed_checkpoint();
        let body = checkpoint().body();
        let cosigned = format!("{cp_note}{}", witness.signature_line(&body));
        assert_eq!(
            Checkpoint::verify(&cosigned, &signer().verifier()).unwrap(),
            checkpoint()
        );
        assert_eq!(verify_note(&cosigned, &witness.verifier()).unwrap(), body);
        // Witness first, and a garbage (but well-formed) cosignature: still ignored.
        let garbage = sig_line("witness.example/w2", 42, &[0x55; 64]);
        let reordered = format!("{body}\n{garbage}{}", signer().signature_line(&body));
        assert_eq!(
            Checkpoint::verify(&reordered, &signer().verifier()).unwrap(),
            checkpoint()
        );
        // A second signature by the same key that fails rejects the whole note.
        let bad_dup = format!(
            "{cp_note}{}",
            sig_line(ORIGIN, signer().key_id(), &[0x55; 64])
        );
        assert_eq!(
            Checkpoint::verify(&bad_dup, &signer().verifier()),
            Err(NoteError::BadSignature)
        );
    }

    // ---- Wrong keys -------------------------------------------------------------------

    #[test]
    fn other_key_same_name_is_unknown_key_id() {
        let other = NoteSigner::from_seed(ORIGIN, [8; 32]).unwrap();
        let note = signed_checkpoint();
        assert_eq!(
            Checkpoint::verify(&note, &other.verifier()),
            Err(NoteError::UnknownKeyId {
                name: ORIGIN.into(),
                found: signer().key_id(),
                expected: other.key_id()
            })
        );
    }

    #[test]
    fn other_key_with_forced_key_id_is_bad_signature() {
        let other = NoteSigner::from_seed(ORIGIN, [8; 32]).unwrap().verifier();
        let forced = NoteVerifier {
            key_id: signer().key_id(),
            ..other
        };
        assert_eq!(
            Checkpoint::verify(&signed_checkpoint(), &forced),
            Err(NoteError::BadSignature)
        );
    }

    #[test]
    fn no_signature_by_expected_name_is_missing_signature() {
        let other = NoteSigner::from_seed("ritma/other", [7; 32]).unwrap();
        assert_eq!(
            Checkpoint::verify(&signed_checkpoint(), &other.verifier()),
            Err(NoteError::MissingSignature {
                name: "ritma/other".into()
            })
        );
    }

    #[test]
    fn origin_must_match_key_name() {
        let cp = Checkpoint::for_node("other", 1, [0; 32]).unwrap();
        assert_eq!(
            cp.sign(&signer()),
            Err(NoteError::OriginMismatch {
                origin: "ritma/other".into(),
                key_name: ORIGIN.into()
            })
        );
        // Signed as a plain note by the right key name, the body still names another origin.
        let note = signer().sign(&cp.body()).unwrap();
        assert_eq!(
            Checkpoint::verify(&note, &signer().verifier()),
            Err(NoteError::OriginMismatch {
                origin: "ritma/other".into(),
                key_name: ORIGIN.into()
            })
        );
    }

    // ---- Tampering --------------------------------------------------------------------

    #[test]
    fn changed_size_or_root_is_bad_signature() {
        let note = signed_checkpoint();
        let v = signer().verifier();
        let size_changed = note.replacen("1234567", "1234568", 1);
        assert_ne!(size_changed, note);
        assert_eq!(
            Checkpoint::verify(&size_changed, &v),
            Err(NoteError::BadSignature)
        );

        let root_b64 = B64.encode(checkpoint().root);
        let mut root_changed_b64 = root_b64.clone().into_bytes();
        root_changed_b64[0] = if root_changed_b64[0] == b'A' {
            b'B'
        } else {
            b'A'
        };
        let root_changed = note.replacen(
            &root_b64,
            std::str::from_utf8(&root_changed_b64).unwrap(),
            1,
        );
        assert_ne!(root_changed, note);
        assert_eq!(
            Checkpoint::verify(&root_changed, &v),
            Err(NoteError::BadSignature)
        );
    }

    #[test]
    fn flipped_signature_bit_is_bad_signature() {
        let body = checkpoint().body();
        let sig = signer().key.sign(body.as_bytes()).to_bytes();
        for i in [0, 31, 32, 63] {
            let mut bad = sig;
            bad[i] ^= 0x01;
            let note = format!("{body}\n{}", sig_line(ORIGIN, signer().key_id(), &bad));
            assert_eq!(
                Checkpoint::verify(&note, &signer().verifier()),
                Err(NoteError::BadSignature)
            );
        }
    }

    #[test]
    fn non_canonical_s_is_rejected() {
        let body = checkpoint().body();
        let sig = signer().key.sign(body.as_bytes()).to_bytes();
        let good = format!("{body}\n{}", sig_line(ORIGIN, signer().key_id(), &sig));
        assert!(Checkpoint::verify(&good, &signer().verifier()).is_ok());

        // L = 2^252 + 27742317777372353535851937790883648493, little-endian.
        let c: u128 = 27742317777372353535851937790883648493;
        let mut l = [0u8; 32];
        l[..16].copy_from_slice(&c.to_le_bytes());
        l[31] = 0x10;
        // S + L, which is the same scalar mod L: accepted by lax verifiers, not by strict ones.
        let mut malleated = sig;
        let mut carry = 0u16;
        for i in 0..32 {
            let sum = u16::from(sig[32 + i]) + u16::from(l[i]) + carry;
            malleated[32 + i] = sum as u8;
            carry = sum >> 8;
        }
        assert_eq!(carry, 0);
        assert_ne!(malleated, sig);
        let note = format!(
            "{body}\n{}",
            sig_line(ORIGIN, signer().key_id(), &malleated)
        );
        assert_eq!(
            Checkpoint::verify(&note, &signer().verifier()),
            Err(NoteError::BadSignature)
        );
    }

    // ---- Public keys ------------------------------------------------------------------

    const IDENTITY: &str = "0100000000000000000000000000000000000000000000000000000000000000";
    const TORSION8: &str = "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a";

    #[test]
    fn small_order_public_keys_are_rejected() {
        for pk in [IDENTITY, TORSION8] {
            assert_eq!(
                NoteVerifier::new("ritma/n", h32(pk)),
                Err(NoteError::WeakPublicKey),
                "{pk}"
            );
            let mut raw = vec![ALG_ED25519];
            raw.extend_from_slice(&h32(pk));
            let vkey = format!(
                "ritma/n+{:08x}+{}",
                key_id("ritma/n", &h32(pk)),
                B64.encode(&raw)
            );
            assert_eq!(
                NoteVerifier::from_vkey(&vkey),
                Err(NoteError::WeakPublicKey)
            );
        }
    }

    #[test]
    fn made_up_signature_for_identity_key_fails_verify_strict() {
        let name = "ritma/n";
        let key = VerifyingKey::from_bytes(&h32(IDENTITY)).unwrap();
        // R = identity, S = 0 satisfies [S]B = R + [k]A for every message when A is the identity.
        let mut forged = [0u8; 64];
        forged[0] = 1;
        let body = "ritma/n\n1\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n";
        // The lax check is fooled, which is why only verify_strict is used.
        assert!(key
            .verify(body.as_bytes(), &Signature::from_bytes(&forged))
            .is_ok());
        assert!(key
            .verify_strict(body.as_bytes(), &Signature::from_bytes(&forged))
            .is_err());
        // Even with a verifier built around the checks in new(), the note is refused.
        let forced = NoteVerifier {
            name: name.into(),
            key_id: key_id(name, &h32(IDENTITY)),
            key,
        };
        let note = format!("{body}\n{}", sig_line(name, forced.key_id, &forged));
        assert_eq!(verify_note(&note, &forced), Err(NoteError::BadSignature));
        assert_eq!(
            Checkpoint::verify(&note, &forced),
            Err(NoteError::BadSignature)
        );
    }

    #[test]
    fn invalid_and_non_canonical_public_keys_are_rejected() {
        // y = 2 is not the y-coordinate of any curve point.
        let mut not_a_point = [0u8; 32];
        not_a_point[0] = 2;
        assert!(VerifyingKey::from_bytes(&not_a_point).is_err());
        assert_eq!(
            NoteVerifier::new("n", not_a_point),
            Err(NoteError::InvalidPublicKey)
        );
        // y = p + 3 decodes (to the point with y = 3) but is not the canonical encoding.
        let mut non_canonical = [0xffu8; 32];
        non_canonical[0] = 0xed + 3;
        non_canonical[31] = 0x7f;
        let decoded = VerifyingKey::from_bytes(&non_canonical).unwrap();
        assert!(!decoded.is_weak());
        assert_eq!(
            NoteVerifier::new("n", non_canonical),
            Err(NoteError::InvalidPublicKey)
        );
        let mut canonical = [0u8; 32];
        canonical[0] = 3;
        assert!(NoteVerifier::new("n", canonical).is_ok());
    }

    // ---- Note syntax ------------------------------------------------------------------

    #[test]
    fn missing_final_newline() {
        let note = signed_checkpoint();
        let cut = note.strip_suffix('\n').unwrap();
        assert_eq!(parse_note(cut), Err(NoteError::MissingFinalNewline));
        assert_eq!(
            Checkpoint::verify(cut, &signer().verifier()),
            Err(NoteError::MissingFinalNewline)
        );
        assert_eq!(
            signer().sign("no newline"),
            Err(NoteError::MissingFinalNewline)
        );
        assert_eq!(
            Checkpoint::parse_body("ritma/a\n1\nx"),
            Err(NoteError::MissingFinalNewline)
        );
    }

    #[test]
    fn missing_blank_line_or_signatures() {
        let note = signed_checkpoint();
        let no_blank = note.replacen("\n\n", "\n", 1);
        assert_eq!(
            Checkpoint::verify(&no_blank, &signer().verifier()),
            Err(NoteError::NoSignatureBlock)
        );
        let body = checkpoint().body();
        assert_eq!(parse_note(&body), Err(NoteError::NoSignatureBlock));
        assert_eq!(
            parse_note(&format!("{body}\n")),
            Err(NoteError::NoSignatureBlock)
        );
        // A trailing blank line moves the split after the signatures.
        assert_eq!(
            parse_note(&format!("{note}\n")),
            Err(NoteError::NoSignatureBlock)
        );
    }

    #[test]
    fn empty_body() {
        assert_eq!(signer().sign(""), Err(NoteError::EmptyBody));
        assert_eq!(signer().sign("\n\n"), Err(NoteError::EmptyBody));
        let line = sig_line(ORIGIN, 1, &[0; 64]);
        assert_eq!(
            parse_note(&format!("\n\n{line}")),
            Err(NoteError::EmptyBody)
        );
    }

    #[test]
    fn malformed_signature_lines() {
        let note = signed_checkpoint();
        let v = signer().verifier();
        let cases = [
            note.replace('\u{2014}', "-"),
            note.replace('\u{2014}', "\u{2013}"),
            note.replace("\u{2014} ", "\u{2014}  "),
            note.replace(&format!("{ORIGIN} "), &format!("{ORIGIN}  ")),
            note.replacen("\n\u{2014}", "\n \u{2014}", 1),
            note.replace('\u{2014}', "\u{2014}\u{2014}"),
            format!("{}\n", note.trim_end_matches('\n').to_owned() + " "),
            format!("{note}\u{2014} {ORIGIN}\n"),
            format!("{note}\u{2014}\n"),
            format!("{note}junk\n"),
        ];
        for (i, bad) in cases.iter().enumerate() {
            match Checkpoint::verify(bad, &v) {
                Err(NoteError::MalformedSignatureLine { line, .. }) => {
                    assert!(line >= 5, "case {i}")
                }
                other => panic!("case {i}: {other:?}"),
            }
        }
        // The line number points at the offending line (1-based, in the whole note).
        let extra = format!("{note}junk\n");
        assert!(matches!(
            parse_note(&extra),
            Err(NoteError::MalformedSignatureLine { line: 6, .. })
        ));
        // A name with '+' is a bad key name.
        let plus = note.replace(&format!("\u{2014} {ORIGIN} "), "\u{2014} a+b ");
        assert_eq!(parse_note(&plus), Err(NoteError::BadKeyName));
    }

    #[test]
    fn bad_signature_base64_and_length() {
        let note = signed_checkpoint();
        let b64 = note.rsplit(' ').next().unwrap().trim_end().to_owned();
        let v = signer().verifier();
        let bang = note.replace(&b64, &format!("!{}", &b64[1..]));
        assert_eq!(
            Checkpoint::verify(&bang, &v),
            Err(NoteError::BadBase64 { what: "signature" })
        );
        let unpadded = note.replace(&b64, b64.trim_end_matches('='));
        assert_eq!(
            Checkpoint::verify(&unpadded, &v),
            Err(NoteError::BadBase64 { what: "signature" })
        );
        // 68 bytes leave two trailing bits in the last base64 character; they must be zero.
        let last = b64.as_bytes()[b64.len() - 2];
        let bumped = (last + 1) as char;
        assert!(bumped.is_ascii_alphanumeric());
        let trailing = note.replace(&b64, &format!("{}{bumped}=", &b64[..b64.len() - 2]));
        assert_eq!(
            Checkpoint::verify(&trailing, &v),
            Err(NoteError::BadBase64 { what: "signature" })
        );

        let body = checkpoint().body();
        for len in [1usize, 3, 4] {
            let n = format!("{body}\n{}", raw_line(ORIGIN, &vec![1u8; len]));
            assert_eq!(
                parse_note(&n),
                Err(NoteError::BadSignatureLength {
                    line: 5,
                    found: len
                }),
                "{len}"
            );
        }
        // Other lengths parse (other key types, witness cosignatures) but never verify as
        // the node's Ed25519 signature, even under its key id.
        let v = signer().verifier();
        for len in [5usize, 67, 69, 76] {
            let mut raw = v.key_id().to_be_bytes().to_vec();
            raw.extend(vec![1u8; len - 4]);
            let n = format!("{body}\n{}", raw_line(ORIGIN, &raw));
            assert!(parse_note(&n).is_ok(), "{len}");
            assert_eq!(
                Checkpoint::verify(&n, &v),
                Err(NoteError::BadSignature),
                "{len}"
            );
        }
    }

    #[test]
    fn control_characters_are_rejected() {
        for (c, what) in [
            ('\r', "CR"),
            ('\t', "tab"),
            ('\0', "NUL"),
            ('\x7f', "DEL"),
            ('\x1b', "ESC"),
        ] {
            let body = format!("ritma/a\n1{c}\nAAAA\n");
            assert_eq!(
                signer().sign(&body),
                Err(NoteError::ControlCharacter { offset: 9 }),
                "{what}"
            );
            let note = signed_checkpoint().replacen('\n', &format!("{c}\n"), 1);
            assert_eq!(
                Checkpoint::verify(&note, &signer().verifier()),
                Err(NoteError::ControlCharacter {
                    offset: ORIGIN.len()
                }),
                "{what}"
            );
        }
        // In the signature block too; the offset is in bytes (the em dash is 3).
        let note = signed_checkpoint();
        let at = note.len() - 1;
        let crlf = format!("{}\r\n", &note[..at]);
        assert_eq!(
            parse_note(&crlf),
            Err(NoteError::ControlCharacter { offset: at })
        );
    }

    #[test]
    fn too_many_signatures() {
        let body = checkpoint().body();
        let line = sig_line("w", 1, &[0; 64]);
        let at_max = format!("{body}\n{}", line.repeat(MAX_SIGNATURES));
        assert_eq!(
            parse_note(&at_max).unwrap().signatures.len(),
            MAX_SIGNATURES
        );
        let over = format!("{body}\n{}", line.repeat(MAX_SIGNATURES + 1));
        assert_eq!(
            parse_note(&over),
            Err(NoteError::TooManySignatures {
                found: MAX_SIGNATURES + 1,
                max: MAX_SIGNATURES
            })
        );
    }

    // ---- Checkpoint body --------------------------------------------------------------

    const ROOT_B64: &str = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=";

    #[test]
    fn checkpoint_line_count_is_exactly_three() {
        let s = NoteSigner::from_seed("ritma/a", [5; 32]).unwrap();
        let four = format!("ritma/a\n1\n{ROOT_B64}\nextension\n");
        let two = "ritma/a\n1\n";
        let blank_fourth = format!("ritma/a\n1\n{ROOT_B64}\n\n");
        assert_eq!(
            Checkpoint::parse_body(&four),
            Err(NoteError::WrongLineCount { found: 4 })
        );
        assert_eq!(
            Checkpoint::parse_body(two),
            Err(NoteError::WrongLineCount { found: 2 })
        );
        assert_eq!(
            Checkpoint::parse_body(&blank_fourth),
            Err(NoteError::WrongLineCount { found: 4 })
        );
        assert_eq!(
            Checkpoint::parse_body("\n"),
            Err(NoteError::WrongLineCount { found: 1 })
        );
        // Validly signed, but not a Ritma checkpoint.
        let v = s.verifier();
        assert_eq!(
            Checkpoint::verify(&s.sign(&four).unwrap(), &v),
            Err(NoteError::WrongLineCount { found: 4 })
        );
        assert_eq!(
            Checkpoint::verify(&s.sign(two).unwrap(), &v),
            Err(NoteError::WrongLineCount { found: 2 })
        );
        assert_eq!(
            Checkpoint::verify(&s.sign(&blank_fourth).unwrap(), &v),
            Err(NoteError::WrongLineCount { found: 4 })
        );
    }

    #[test]
    fn tree_size_must_be_canonical_u64() {
        let body = |size: &str| format!("ritma/a\n{size}\n{ROOT_B64}\n");
        for bad in [
            "",
            "00",
            "012",
            "+12",
            "-1",
            "1 ",
            " 1",
            "1e3",
            "0x10",
            "１",
            "18446744073709551616",
            "99999999999999999999999",
        ] {
            assert_eq!(
                Checkpoint::parse_body(&body(bad)),
                Err(NoteError::BadTreeSize),
                "{bad:?}"
            );
        }
        for (good, n) in [
            ("0", 0),
            ("7", 7),
            ("10", 10),
            ("18446744073709551615", u64::MAX),
        ] {
            assert_eq!(Checkpoint::parse_body(&body(good)).unwrap().size, n);
        }
        // And through a validly signed note.
        let s = NoteSigner::from_seed("ritma/a", [5; 32]).unwrap();
        let note = s.sign(&body("007")).unwrap();
        assert_eq!(
            Checkpoint::verify(&note, &s.verifier()),
            Err(NoteError::BadTreeSize)
        );
    }

    #[test]
    fn root_hash_must_be_32_bytes_canonical_base64() {
        let body = |root: &str| format!("ritma/a\n1\n{root}\n");
        let r31 = B64.encode([0xab; 31]);
        let r33 = B64.encode([0xab; 33]);
        let unpadded = ROOT_B64.trim_end_matches('=').to_owned();
        // 32 bytes leave two trailing bits in the last character: "AAB=" is not canonical.
        let trailing = format!("{}B=", &ROOT_B64[..42]);
        let hex64 = "00".repeat(32);
        let url_safe = B64.encode([0xfb; 32]).replace('+', "-").replace('/', "_");
        for bad in [
            r31.as_str(),
            &r33,
            &unpadded,
            &trailing,
            &hex64,
            &url_safe,
            "",
            "=",
        ] {
            assert_eq!(
                Checkpoint::parse_body(&body(bad)),
                Err(NoteError::BadRootHash),
                "{bad:?}"
            );
        }
        let s = NoteSigner::from_seed("ritma/a", [5; 32]).unwrap();
        let note = s.sign(&body(&r31)).unwrap();
        assert_eq!(
            Checkpoint::verify(&note, &s.verifier()),
            Err(NoteError::BadRootHash)
        );
    }

    #[test]
    fn origins_and_node_names() {
        let body = |origin: &str| format!("{origin}\n1\n{ROOT_B64}\n");
        for bad in ["example.com/log", "", "Ritma/a", "ritma", "/ritma/a"] {
            assert_eq!(
                Checkpoint::parse_body(&body(bad)),
                Err(NoteError::BadOrigin),
                "{bad:?}"
            );
        }
        let long = "x".repeat(MAX_NODE_LEN + 1);
        for bad in ["", "a/b", "a b", "a+b", "é", "a:b", long.as_str()] {
            assert_eq!(
                Checkpoint::for_node(bad, 1, [0; 32]),
                Err(NoteError::BadNodeName),
                "{bad:?}"
            );
            assert_eq!(
                Checkpoint::parse_body(&body(&format!("ritma/{bad}"))),
                Err(NoteError::BadNodeName)
            );
        }
        let max = "x".repeat(MAX_NODE_LEN);
        assert!(Checkpoint::for_node(&max, 1, [0; 32]).is_ok());
        // A hand-built checkpoint with a foreign origin is never signed.
        let foreign = Checkpoint {
            origin: "example.com/log".into(),
            size: 1,
            root: [0; 32],
        };
        let s = NoteSigner::from_seed("example.com/log", [5; 32]).unwrap();
        assert_eq!(foreign.sign(&s), Err(NoteError::BadOrigin));
    }

    #[test]
    fn display_messages_name_the_problem() {
        let e = NoteError::UnknownKeyId {
            name: "ritma/a".into(),
            found: 0xdeadbeef,
            expected: 0x1,
        };
        assert_eq!(
            e.to_string(),
            "signature by \"ritma/a\" has key id deadbeef, expected 00000001: it was made by a different key"
        );
        assert!(NoteError::WrongLineCount { found: 4 }
            .to_string()
            .contains("4 lines"));
        assert!(NoteError::ControlCharacter { offset: 9 }
            .to_string()
            .contains("offset 9"));
    }

    // ---- Property tests ---------------------------------------------------------------

    #[derive(Clone, Debug)]
    enum Mutation {
        Flip { at: prop::sample::Index, bit: u32 },
        Replace { at: prop::sample::Index, c: char },
        Insert { at: prop::sample::Index, c: char },
        Delete { at: prop::sample::Index },
    }

    fn interesting_char() -> impl Strategy<Value = char> {
        prop_oneof![
            any::<char>(),
            prop::sample::select(vec![
                '\n', ' ', '\u{2014}', '+', '/', '=', '0', '9', 'A', 'a', '-', '\r'
            ]),
        ]
    }

    fn mutation() -> impl Strategy<Value = Mutation> {
        let idx = any::<prop::sample::Index>;
        prop_oneof![
            (idx(), 0u32..21).prop_map(|(at, bit)| Mutation::Flip { at, bit }),
            (idx(), interesting_char()).prop_map(|(at, c)| Mutation::Replace { at, c }),
            (idx(), interesting_char()).prop_map(|(at, c)| Mutation::Insert { at, c }),
            idx().prop_map(|at| Mutation::Delete { at }),
        ]
    }

    fn apply(s: &str, m: &Mutation) -> String {
        let mut chars: Vec<char> = s.chars().collect();
        match m {
            Mutation::Flip { at, bit } => {
                let i = at.index(chars.len());
                if let Some(c) = char::from_u32(chars[i] as u32 ^ (1 << bit)) {
                    chars[i] = c;
                }
            }
            Mutation::Replace { at, c } => {
                let i = at.index(chars.len());
                chars[i] = *c;
            }
            Mutation::Insert { at, c } => chars.insert(at.index(chars.len() + 1), *c),
            Mutation::Delete { at } => {
                chars.remove(at.index(chars.len()));
            }
        }
        chars.into_iter().collect()
    }

    /// Strings that look like notes, so the parser gets past its first checks.
    fn noteish() -> impl Strategy<Value = String> {
        prop_oneof![
            any::<String>(),
            "([a-z/0-9+=]{0,8}(\n|\u{2014} | )?){0,12}",
            // A non-empty tail: the bare note is valid, and a random tail cannot make a valid line.
            ".+".prop_map(|tail| format!("{}{tail}", signed_checkpoint())),
            "[A-Za-z0-9+/=]{0,100}"
                .prop_map(|b64| format!("{}\n\u{2014} {ORIGIN} {b64}\n", checkpoint().body())),
        ]
    }

    proptest! {
        #[test]
        fn arbitrary_text_never_panics_and_never_verifies(s in noteish()) {
            let v = signer().verifier();
            let _ = parse_note(&s);
            let _ = Checkpoint::parse_body(&s);
            let _ = NoteVerifier::from_vkey(&s);
            let _ = NoteSigner::from_private_key_text(&s);
            let _ = signer().sign(&s);
            prop_assert!(verify_note(&s, &v).is_err());
            prop_assert!(Checkpoint::verify(&s, &v).is_err());
        }

        #[test]
        fn mutated_checkpoints_never_verify(ms in prop::collection::vec(mutation(), 1..4)) {
            let original = signed_checkpoint();
            let mutated = ms.iter().fold(original.clone(), |s, m| apply(&s, m));
            let v = signer().verifier();
            let _ = parse_note(&mutated);
            let result = Checkpoint::verify(&mutated, &v);
            if mutated == original {
                prop_assert_eq!(result, Ok(checkpoint()));
            } else {
                prop_assert!(result.is_err(), "mutated note verified: {:?}", mutated);
                prop_assert!(verify_note(&mutated, &v).is_err());
            }
        }

        #[test]
        fn mutated_key_texts_never_parse_to_another_key(m in mutation()) {
            let vkey = signer().verifier().to_vkey();
            let mutated = apply(&vkey, &m);
            if let Ok(v) = NoteVerifier::from_vkey(&mutated) {
                prop_assert_eq!(v, signer().verifier());
            }
            let skey = signer().to_private_key_text();
            let mutated = apply(&skey, &m);
            if let Ok(s) = NoteSigner::from_private_key_text(&mutated) {
                prop_assert_eq!(s.seed(), signer().seed());
                prop_assert_eq!(s.name(), ORIGIN);
            }
        }

        #[test]
        fn any_valid_body_round_trips(body in "([ -~\u{a0}-\u{2fff}]{0,20}\n){1,6}") {
            prop_assume!(has_content(&body));
            let note = signer().sign(&body).unwrap();
            prop_assert_eq!(verify_note(&note, &signer().verifier()), Ok(body.as_str()));
        }

        #[test]
        fn any_checkpoint_round_trips(
            node in "[A-Za-z0-9_-][A-Za-z0-9._-]{0,63}",
            size in any::<u64>(),
            root in any::<[u8; 32]>(),
        ) {
            let cp = Checkpoint::for_node(&node, size, root).unwrap();
            prop_assert_eq!(Checkpoint::parse_body(&cp.body()), Ok(cp.clone()));
            let s = NoteSigner::from_seed(&cp.origin, root).unwrap();
            prop_assert_eq!(Checkpoint::verify(&cp.sign(&s).unwrap(), &s.verifier()), Ok(cp));
        }
    }
}
