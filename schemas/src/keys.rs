//! A node's key history: which Ed25519 keys may sign its checkpoints at which
//! node-log sizes. Key events (add / rotate / revoke) are `KeyEvent` records wrapped
//! in `SignedRecord`s; applying them in order gives every key a validity range
//! `[from, until)` of log sizes. FORMAT.md §5 is normative.

use crate::cbor::DecodeError;
use crate::note::{self, Checkpoint, NoteError, NoteSigner, NoteVerifier};
use crate::records::{KeyEvent, KeyEventKind, Record, SignedRecord};

/// Why a key event or a checkpoint was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum KeyError {
    #[error("key event record: {0}")]
    Decode(#[from] DecodeError),
    #[error("checkpoint: {0}")]
    Note(#[from] NoteError),
    #[error("key event is for node `{found}`, the history is for `{expected}`")]
    WrongNode { expected: String, found: String },
    #[error("the first key event must be a self-signed add")]
    FirstNotSelfSignedAdd,
    #[error("key event at log size {found} comes after one at {previous}")]
    OutOfOrder { previous: u64, found: u64 },
    #[error("{record} signed by key id {key_id:08x}, which is not valid at log size {log_size}")]
    SignerNotValid {
        /// The signed record's type name (KeyEvent, HourDeletion, CaseManifest …).
        record: &'static str,
        key_id: u32,
        log_size: u64,
    },
    #[error("a rotation must be signed by the key it replaces")]
    RotationNotSignedByOldKey,
    #[error("{record} signature does not verify")]
    BadSignature {
        /// The signed record's type name (KeyEvent, HourDeletion, CaseManifest …).
        record: &'static str,
    },
    #[error("key {key_id:08x} is already in the history")]
    DuplicateKey { key_id: u32 },
    #[error("key {key_id:08x} is not a valid key at log size {log_size}")]
    NotValid { key_id: u32, log_size: u64 },
    #[error("anchor key {found:08x} is not the expected key {expected:08x}")]
    UnexpectedAnchor { expected: u32, found: u32 },
    #[error("checkpoint origin `{origin}` does not belong to node `{node}`")]
    WrongOrigin { node: String, origin: String },
    #[error("no signature on the checkpoint is by a key of node `{node}` valid at size {size}")]
    NoValidSignature { node: String, size: u64 },
}

/// One key and the log sizes it may sign: `from <= size < until`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeySpan {
    pub verifier: NoteVerifier,
    pub from: u64,
    pub until: Option<u64>,
}

impl KeySpan {
    pub fn valid_at(&self, size: u64) -> bool {
        self.from <= size && self.until.is_none_or(|u| size < u)
    }
}

/// The keys of one node, built by applying its key events in order.
#[derive(Clone, Debug)]
pub struct KeyHistory {
    node: String,
    origin: String,
    spans: Vec<KeySpan>,
    last_log_size: u64,
}

/// Signs a key event with `signer` (whose name must be the node's origin).
pub fn sign_key_event(event: &KeyEvent, signer: &NoteSigner) -> SignedRecord {
    sign_record(event.encode(), signer)
}

/// Wraps an encoded record in a SignedRecord signed by `signer`.
pub fn sign_record(body: Vec<u8>, signer: &NoteSigner) -> SignedRecord {
    let signature = signer.sign_raw(&SignedRecord::signed_message(&body));
    SignedRecord {
        body,
        key_id: signer.key_id(),
        signature,
    }
}

impl KeyHistory {
    pub fn new(node: &str) -> Result<Self, KeyError> {
        let origin = format!("{}{node}", note::ORIGIN_PREFIX);
        // Validates the node name once, through the same rule checkpoints use.
        Checkpoint::for_node(node, 0, [0; 32])?;
        Ok(KeyHistory {
            node: node.to_owned(),
            origin,
            spans: Vec::new(),
            last_log_size: 0,
        })
    }

    pub fn node(&self) -> &str {
        &self.node
    }

    /// Every key with its validity range, in the order added.
    pub fn spans(&self) -> &[KeySpan] {
        &self.spans
    }

    fn span_mut(&mut self, public_key: &[u8; 32]) -> Option<&mut KeySpan> {
        self.spans
            .iter_mut()
            .find(|s| &s.verifier.public_key() == public_key)
    }

    /// The key with `key_id` valid at `log_size`, if any.
    pub fn key_at(&self, key_id: u32, log_size: u64) -> Option<&NoteVerifier> {
        self.spans
            .iter()
            .find(|s| s.verifier.key_id() == key_id && s.valid_at(log_size))
            .map(|s| &s.verifier)
    }

    /// Applies the next key event. The first must be an add signed by the key it adds;
    /// later ones must be signed by a key valid at the event's log size, and a
    /// rotation by the key it replaces.
    pub fn apply(&mut self, signed: &SignedRecord) -> Result<KeyEvent, KeyError> {
        let event = KeyEvent::decode(&signed.body)?;
        if event.node != self.node {
            return Err(KeyError::WrongNode {
                expected: self.node.clone(),
                found: event.node,
            });
        }
        let message = SignedRecord::signed_message(&signed.body);
        let signer = if self.spans.is_empty() {
            let own = NoteVerifier::new(&self.origin, event.public_key)?;
            if event.kind != KeyEventKind::Add || signed.key_id != own.key_id() {
                return Err(KeyError::FirstNotSelfSignedAdd);
            }
            own
        } else {
            if event.log_size < self.last_log_size {
                return Err(KeyError::OutOfOrder {
                    previous: self.last_log_size,
                    found: event.log_size,
                });
            }
            self.key_at(signed.key_id, event.log_size)
                .cloned()
                .ok_or(KeyError::SignerNotValid {
                    record: KeyEvent::NAME,
                    key_id: signed.key_id,
                    log_size: event.log_size,
                })?
        };
        if !signer.verify_raw(&message, &signed.signature) {
            return Err(KeyError::BadSignature {
                record: KeyEvent::NAME,
            });
        }
        match event.kind {
            KeyEventKind::Add => self.add(event.public_key, event.log_size)?,
            KeyEventKind::Rotate => {
                let old = event
                    .previous_key
                    .expect("decoder requires previous_key for a rotation");
                if signer.public_key() != old {
                    return Err(KeyError::RotationNotSignedByOldKey);
                }
                self.add(event.public_key, event.log_size)?;
                self.end(&old, event.log_size)?;
            }
            KeyEventKind::Revoke => self.end(&event.public_key, event.log_size)?,
        }
        self.last_log_size = event.log_size;
        Ok(event)
    }

    fn add(&mut self, public_key: [u8; 32], from: u64) -> Result<(), KeyError> {
        let verifier = NoteVerifier::new(&self.origin, public_key)?;
        if self.span_mut(&public_key).is_some() {
            return Err(KeyError::DuplicateKey {
                key_id: verifier.key_id(),
            });
        }
        self.spans.push(KeySpan {
            verifier,
            from,
            until: None,
        });
        Ok(())
    }

    fn end(&mut self, public_key: &[u8; 32], at: u64) -> Result<(), KeyError> {
        let key_id = note::key_id(&self.origin, public_key);
        match self.span_mut(public_key) {
            Some(span) if span.valid_at(at) => {
                span.until = Some(at);
                Ok(())
            }
            _ => Err(KeyError::NotValid {
                key_id,
                log_size: at,
            }),
        }
    }

    /// Requires the first key (the trust anchor) to be `expected`, e.g. a key the
    /// verifier was given out of band.
    pub fn expect_anchor(&self, expected: &NoteVerifier) -> Result<(), KeyError> {
        let found = self.spans.first().map(|s| s.verifier.key_id()).unwrap_or(0);
        match self.spans.first() {
            Some(s) if s.verifier == *expected => Ok(()),
            _ => Err(KeyError::UnexpectedAnchor {
                expected: expected.key_id(),
                found,
            }),
        }
    }

    /// Verifies a SignedRecord (other than a key event) signed at node-log size `log_size`:
    /// its key must be of this history and valid at that size.
    pub fn verify_record(&self, signed: &SignedRecord, log_size: u64) -> Result<(), KeyError> {
        let record = signed.body_name();
        let signer = self
            .key_at(signed.key_id, log_size)
            .ok_or(KeyError::SignerNotValid {
                record,
                key_id: signed.key_id,
                log_size,
            })?;
        match signer.verify_raw(
            &SignedRecord::signed_message(&signed.body),
            &signed.signature,
        ) {
            true => Ok(()),
            false => Err(KeyError::BadSignature { record }),
        }
    }

    /// Verifies a signed checkpoint of this node: one signature must be by a key of
    /// this history that is valid at the checkpoint's size.
    pub fn verify_checkpoint(&self, note_text: &str) -> Result<Checkpoint, KeyError> {
        let parsed = note::parse_note(note_text)?;
        let cp = Checkpoint::parse_body(parsed.body)?;
        if cp.origin != self.origin {
            return Err(KeyError::WrongOrigin {
                node: self.node.clone(),
                origin: cp.origin,
            });
        }
        for sig in parsed.signatures.iter().filter(|s| s.name == self.origin) {
            if let Some(verifier) = self.key_at(sig.key_id, cp.size) {
                return Ok(Checkpoint::verify(note_text, verifier)?);
            }
        }
        Err(KeyError::NoValidSignature {
            node: self.node.clone(),
            size: cp.size,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NODE: &str = "node-1";

    fn signer(seed: u8) -> NoteSigner {
        NoteSigner::from_seed("ritma/node-1", [seed; 32]).unwrap()
    }

    fn event(
        kind: KeyEventKind,
        key: &NoteSigner,
        log_size: u64,
        previous: Option<&NoteSigner>,
    ) -> KeyEvent {
        KeyEvent {
            node: NODE.into(),
            kind,
            public_key: key.verifier().public_key(),
            log_size,
            previous_key: previous.map(|p| p.verifier().public_key()),
        }
    }

    fn checkpoint(by: &NoteSigner, size: u64) -> String {
        Checkpoint::for_node(NODE, size, [size as u8; 32])
            .unwrap()
            .sign(by)
            .unwrap()
    }

    /// k1 from 0; rotated to k2 at 10; k2 revoked at 20 by k3 added at 15.
    fn history() -> (KeyHistory, [NoteSigner; 3]) {
        let (k1, k2, k3) = (signer(1), signer(2), signer(3));
        let mut h = KeyHistory::new(NODE).unwrap();
        h.apply(&sign_key_event(
            &event(KeyEventKind::Add, &k1, 0, None),
            &k1,
        ))
        .unwrap();
        h.apply(&sign_key_event(
            &event(KeyEventKind::Rotate, &k2, 10, Some(&k1)),
            &k1,
        ))
        .unwrap();
        h.apply(&sign_key_event(
            &event(KeyEventKind::Add, &k3, 15, None),
            &k2,
        ))
        .unwrap();
        h.apply(&sign_key_event(
            &event(KeyEventKind::Revoke, &k2, 20, None),
            &k3,
        ))
        .unwrap();
        (h, [k1, k2, k3])
    }

    #[test]
    fn signatures_are_accepted_only_inside_the_key_validity_range() {
        let (h, [k1, k2, k3]) = history();
        for (key, size, ok) in [
            (&k1, 0, true),
            (&k1, 9, true),
            (&k1, 10, false),
            (&k2, 9, false),
            (&k2, 10, true),
            (&k2, 19, true),
            (&k2, 20, false),
            (&k3, 14, false),
            (&k3, 15, true),
            (&k3, 1000, true),
        ] {
            let r = h.verify_checkpoint(&checkpoint(key, size));
            assert_eq!(r.is_ok(), ok, "key {} at size {size}: {r:?}", key.key_id());
            if !ok {
                assert!(matches!(r, Err(KeyError::NoValidSignature { .. })));
            }
        }
    }

    #[test]
    fn first_event_must_be_self_signed_add() {
        let (k1, k2) = (signer(1), signer(2));
        let mut h = KeyHistory::new(NODE).unwrap();
        let by_other = sign_key_event(&event(KeyEventKind::Add, &k1, 0, None), &k2);
        assert_eq!(h.apply(&by_other), Err(KeyError::FirstNotSelfSignedAdd));
        let revoke = sign_key_event(&event(KeyEventKind::Revoke, &k1, 0, None), &k1);
        assert_eq!(h.apply(&revoke), Err(KeyError::FirstNotSelfSignedAdd));
    }

    #[test]
    fn events_need_a_valid_signer_and_order() {
        let (mut h, [k1, _k2, k3]) = history();
        let k4 = signer(4);
        // k1 was rotated away at 10: it can no longer authorise anything at 30.
        let e = sign_key_event(&event(KeyEventKind::Add, &k4, 30, None), &k1);
        assert!(matches!(h.apply(&e), Err(KeyError::SignerNotValid { .. })));
        // Events may not go back in log size.
        let e = sign_key_event(&event(KeyEventKind::Add, &k4, 5, None), &k3);
        assert!(matches!(h.apply(&e), Err(KeyError::OutOfOrder { .. })));
        // A forged signature under a valid key id.
        let mut e = sign_key_event(&event(KeyEventKind::Add, &k4, 30, None), &k3);
        e.signature[7] ^= 1;
        assert_eq!(
            h.apply(&e),
            Err(KeyError::BadSignature { record: "KeyEvent" })
        );
        // A rotation signed by a valid key that is not the replaced one.
        let k5 = signer(5);
        let e = sign_key_event(&event(KeyEventKind::Rotate, &k5, 30, Some(&k1)), &k3);
        assert_eq!(h.apply(&e), Err(KeyError::RotationNotSignedByOldKey));
        // Wrong node.
        let mut ev = event(KeyEventKind::Add, &k4, 30, None);
        ev.node = "other".into();
        assert!(matches!(
            h.apply(&sign_key_event(&ev, &k3)),
            Err(KeyError::WrongNode { .. })
        ));
    }

    #[test]
    fn anchor_can_be_pinned() {
        let (h, [k1, k2, _]) = history();
        h.expect_anchor(&k1.verifier()).unwrap();
        assert!(matches!(
            h.expect_anchor(&k2.verifier()),
            Err(KeyError::UnexpectedAnchor { .. })
        ));
    }

    #[test]
    fn checkpoint_of_another_node_is_refused() {
        let (h, _) = history();
        let other = NoteSigner::from_seed("ritma/node-2", [1; 32]).unwrap();
        let note = Checkpoint::for_node("node-2", 1, [0; 32])
            .unwrap()
            .sign(&other)
            .unwrap();
        assert!(matches!(
            h.verify_checkpoint(&note),
            Err(KeyError::WrongOrigin { .. })
        ));
    }
}
