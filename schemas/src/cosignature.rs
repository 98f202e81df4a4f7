//! Witness cosignatures of checkpoints: C2SP tlog-cosignature
//! (<https://c2sp.org/tlog-cosignature>), the Ed25519 `cosignature/v1` type. A witness
//! that has checked a node's log to be append-only signs its checkpoint with a line of
//! its own; a verifier holding the witness's key then knows the checkpoint left the node,
//! and a store that no longer extends it was cut or rewritten. FORMAT.md §4.4.
//!
//! Key texts: `<name>+<key id>+<base64(0x04 ‖ public key)>` for verifiers and
//! `PRIVATE+KEY+<name>+<key id>+<base64(0x04 ‖ seed)>` for cosigners, the key id being
//! SHA-256(name ‖ 0x0A ‖ 0x04 ‖ public key)[0..4]. No function here panics on any input.

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use ed25519_dalek::{Signature, Signer as _, SigningKey, VerifyingKey};
use sha2::{Digest, Sha256};
use std::fmt;

use crate::note::{
    checked_public_key, key_text, parse_note, parse_private_key_text, parse_vkey_text,
    private_key_text, validate_name, NoteError, SIG_PREFIX,
};

/// The C2SP signature type byte of an Ed25519 cosignature/v1 key.
pub const ALG_COSIGNATURE_V1: u8 = 0x04;
/// A cosignature's timestamp is at most this (C2SP: 2^63 − 1).
pub const MAX_TIMESTAMP: u64 = (1 << 63) - 1;

/// The key id of a cosigner key: SHA-256(name ‖ 0x0A ‖ 0x04 ‖ public key)[0..4], big-endian.
pub fn key_id(name: &str, public_key: &[u8; 32]) -> u32 {
    let mut h = Sha256::new();
    h.update(name.as_bytes());
    h.update([b'\n', ALG_COSIGNATURE_V1]);
    h.update(public_key);
    let d = h.finalize();
    u32::from_be_bytes([d[0], d[1], d[2], d[3]])
}

/// What a cosignature signs: `cosignature/v1`, the time line, then the note's whole body.
pub fn signed_message(timestamp: u64, body: &str) -> Vec<u8> {
    format!("cosignature/v1\ntime {timestamp}\n{body}").into_bytes()
}

/// A witness's signing key, under its name.
#[derive(Clone)]
pub struct Cosigner {
    name: String,
    key_id: u32,
    key: SigningKey,
}

// Hand-written so that the secret key never reaches a log line.
impl fmt::Debug for Cosigner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Cosigner")
            .field("name", &self.name)
            .field("key_id", &format_args!("{:08x}", self.key_id))
            .finish_non_exhaustive()
    }
}

impl Cosigner {
    /// A cosigner whose key derives from a 32-byte RFC 8032 seed, under a valid key name.
    pub fn from_seed(name: &str, seed: [u8; 32]) -> Result<Self, NoteError> {
        validate_name(name)?;
        let key = SigningKey::from_bytes(&seed);
        Ok(Cosigner {
            name: name.to_owned(),
            key_id: key_id(name, key.verifying_key().as_bytes()),
            key,
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn verifier(&self) -> CosignatureVerifier {
        CosignatureVerifier {
            name: self.name.clone(),
            key_id: self.key_id,
            key: self.key.verifying_key(),
        }
    }

    /// Adds this witness's cosignature of `timestamp` to the signed note `note` (any earlier
    /// one by this key is replaced): the note with its signature lines, then this one.
    pub fn cosign(&self, note: &str, timestamp: u64) -> Result<String, NoteError> {
        if timestamp > MAX_TIMESTAMP {
            return Err(NoteError::BadTimestamp);
        }
        let parsed = parse_note(note)?;
        let sig = self
            .key
            .sign(&signed_message(timestamp, parsed.body))
            .to_bytes();
        let mut raw = Vec::with_capacity(76);
        raw.extend_from_slice(&self.key_id.to_be_bytes());
        raw.extend_from_slice(&timestamp.to_be_bytes());
        raw.extend_from_slice(&sig);
        let mut out = format!("{}\n", parsed.body);
        for s in parsed
            .signatures
            .iter()
            .filter(|s| !(s.name == self.name && s.key_id == self.key_id))
        {
            let mut line = s.key_id.to_be_bytes().to_vec();
            line.extend_from_slice(&s.signature);
            out.push_str(&format!("{SIG_PREFIX}{} {}\n", s.name, B64.encode(line)));
        }
        out.push_str(&format!("{SIG_PREFIX}{} {}\n", self.name, B64.encode(raw)));
        Ok(out)
    }

    /// `PRIVATE+KEY+<name>+<key id>+<base64(0x04 ‖ seed)>`.
    pub fn to_private_key_text(&self) -> String {
        private_key_text(
            &self.name,
            self.key_id,
            ALG_COSIGNATURE_V1,
            &self.key.to_bytes(),
        )
    }

    /// Parses a cosigner's private key text; its key id must match. Errors never repeat
    /// any part of the key.
    pub fn from_private_key_text(s: &str) -> Result<Self, NoteError> {
        let (name, id, seed) = parse_private_key_text(s, ALG_COSIGNATURE_V1)?;
        let signer = Self::from_seed(name, seed)?;
        if signer.key_id != id {
            return Err(NoteError::BadPrivateKey(
                "key id does not match the name and key",
            ));
        }
        Ok(signer)
    }
}

/// A witness's public key: checks its cosignatures.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CosignatureVerifier {
    name: String,
    key_id: u32,
    key: VerifyingKey,
}

impl CosignatureVerifier {
    /// A verifier for `public_key` under `name`; weak and non-canonical keys are refused.
    pub fn new(name: &str, public_key: [u8; 32]) -> Result<Self, NoteError> {
        validate_name(name)?;
        let key = checked_public_key(public_key)?;
        Ok(CosignatureVerifier {
            name: name.to_owned(),
            key_id: key_id(name, &public_key),
            key,
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn key_id(&self) -> u32 {
        self.key_id
    }

    /// `<name>+<key id>+<base64(0x04 ‖ public key)>`.
    pub fn to_vkey(&self) -> String {
        key_text(
            &self.name,
            self.key_id,
            ALG_COSIGNATURE_V1,
            self.key.as_bytes(),
        )
    }

    /// Parses a witness verifier key text (type 0x04); its key id must match.
    pub fn from_vkey(s: &str) -> Result<Self, NoteError> {
        let (name, id, public_key) = parse_vkey_text(s, ALG_COSIGNATURE_V1)?;
        let verifier = Self::new(name, public_key)?;
        if verifier.key_id != id {
            return Err(NoteError::BadVkey("key id does not match the name and key"));
        }
        Ok(verifier)
    }

    /// The timestamp of this witness's cosignature of `note`, which must verify (strict
    /// Ed25519 over the cosigned message). Lines by other keys are ignored; a line with
    /// this name and key id that does not verify is an error, as is none at all.
    pub fn verify(&self, note: &str) -> Result<u64, NoteError> {
        let parsed = parse_note(note)?;
        let mut found = None;
        for s in parsed
            .signatures
            .iter()
            .filter(|s| s.name == self.name && s.key_id == self.key_id)
        {
            let (ts, sig) = match s.signature.split_first_chunk::<8>() {
                Some((ts, sig)) if sig.len() == 64 => (u64::from_be_bytes(*ts), sig),
                _ => return Err(NoteError::BadSignature),
            };
            if ts > MAX_TIMESTAMP {
                return Err(NoteError::BadTimestamp);
            }
            let sig: &[u8; 64] = sig.try_into().map_err(|_| NoteError::BadSignature)?;
            self.key
                .verify_strict(
                    &signed_message(ts, parsed.body),
                    &Signature::from_bytes(sig),
                )
                .map_err(|_| NoteError::BadSignature)?;
            found = Some(found.map_or(ts, |f: u64| f.max(ts)));
        }
        found.ok_or_else(|| NoteError::MissingSignature {
            name: self.name.clone(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::note::{Checkpoint, NoteSigner};

    fn checkpoint_note() -> String {
        let node = NoteSigner::from_seed("ritma/web-1", [7; 32]).unwrap();
        Checkpoint::for_node("web-1", 3, [9; 32])
            .unwrap()
            .sign(&node)
            .unwrap()
    }

    fn witness() -> Cosigner {
        Cosigner::from_seed("witness.example/w1", [5; 32]).unwrap()
    }

    #[test]
    fn a_cosigned_checkpoint_verifies_for_the_node_and_the_witness() {
        let note = checkpoint_note();
        let w = witness();
        let cosigned = w.cosign(&note, 1_793_491_200).unwrap();
        assert!(cosigned.starts_with(&note));
        assert_eq!(w.verifier().verify(&cosigned).unwrap(), 1_793_491_200);
        let node = NoteSigner::from_seed("ritma/web-1", [7; 32])
            .unwrap()
            .verifier();
        assert!(Checkpoint::verify(&cosigned, &node).is_ok());
        // Cosigning again replaces the witness's line.
        let again = w.cosign(&cosigned, 1_793_491_260).unwrap();
        assert_eq!(again.matches("witness.example/w1").count(), 1);
        assert_eq!(w.verifier().verify(&again).unwrap(), 1_793_491_260);
    }

    #[test]
    fn a_cosignature_by_another_key_or_over_another_body_is_refused() {
        let note = checkpoint_note();
        let cosigned = witness().cosign(&note, 10).unwrap();
        let other = Cosigner::from_seed("witness.example/w1", [6; 32]).unwrap();
        assert_eq!(
            other.verifier().verify(&cosigned),
            Err(NoteError::MissingSignature {
                name: "witness.example/w1".into()
            })
        );
        assert!(witness().verifier().verify(&note).is_err());
        let changed = cosigned.replacen("\n3\n", "\n4\n", 1);
        assert!(witness().verifier().verify(&changed).is_err());
        // A node key's signature under the witness's name and id is no cosignature.
        let forged = NoteSigner::from_seed("witness.example/w1", [5; 32]).unwrap();
        let plain = forged.cosign(&note).unwrap();
        assert!(witness().verifier().verify(&plain).is_err());
    }

    #[test]
    fn key_texts_round_trip_and_are_typed() {
        let w = witness();
        let back = Cosigner::from_private_key_text(&w.to_private_key_text()).unwrap();
        assert_eq!(back.verifier(), w.verifier());
        let v = CosignatureVerifier::from_vkey(&w.verifier().to_vkey()).unwrap();
        assert_eq!(v, w.verifier());
        // A node (0x01) key text is not a witness key, nor the reverse.
        let node = NoteSigner::from_seed("witness.example/w1", [5; 32]).unwrap();
        assert!(CosignatureVerifier::from_vkey(&node.verifier().to_vkey()).is_err());
        assert!(crate::note::NoteVerifier::from_vkey(&v.to_vkey()).is_err());
    }
}
