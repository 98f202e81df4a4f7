//! Proof bundles (record type 19): one sealed event with everything needed to check
//! it offline and alone — the event's leaf and the dictionary entries and actor records
//! it names, their inclusion proofs in the window tree, the window record and its
//! inclusion in the node log, the signed checkpoint of that log, optionally a
//! consistency proof to a later signed checkpoint, and the key history that makes the
//! signing key valid. FORMAT.md §11 is normative; [`ProofBundle::verify`] is its
//! verification algorithm.

use crate::cbor::{DecodeError, DecodeErrorKind, Decoder, Encoder};
use crate::hash::{blake3, Hash32, Id128};
use crate::keys::{KeyError, KeyHistory};
use crate::merkle::{
    consistency_proof, inclusion_proof, verify_consistency, verify_inclusion, Blake3Tree, Prefix,
    ProofError, SparseLog, TreeHash,
};
use crate::note::{parse_note, Checkpoint, NoteVerifier};
use crate::records::{
    ActorRecord, AnyRecord, DictEntry, DictKind, EventAtom, Record, SignedRecord, WindowRecord,
    MAX_EVENT_RECORD_LEN, MAX_RECORD_LEN,
};

/// Largest encoded bundle.
pub const MAX_BUNDLE_LEN: usize = 1 << 20;
/// Most window leaves one bundle proves (the event and what it names).
pub const MAX_BUNDLE_LEAVES: usize = 16;
/// Most hashes in an inclusion proof (a tree of 2^64 leaves needs 64).
pub const MAX_PATH_HASHES: usize = 64;
/// Most hashes in a consistency proof.
pub const MAX_CONSISTENCY_HASHES: usize = 128;
/// Longest signed checkpoint note.
pub const MAX_NOTE_LEN: usize = 16384;
/// Most key events a bundle carries.
pub const MAX_KEY_EVENTS: usize = 1024;
/// Most signer keys (one per checkpoint).
pub const MAX_SIGNERS: usize = 2;
/// Longest verifier key text.
pub const MAX_VKEY_LEN: usize = 256;

/// One proven leaf of the event's window tree.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProvenLeaf {
    /// The leaf's index in the window tree.
    pub index: u64,
    /// The leaf's record, exactly as sealed.
    pub bytes: Vec<u8>,
    /// RFC 9162 inclusion proof of the leaf in the window tree.
    pub path: Vec<Hash32>,
}

/// A later checkpoint of the node log and the consistency proof that reaches it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogExtension {
    /// Signed checkpoint note of a larger log size.
    pub checkpoint: String,
    /// RFC 9162 consistency proof from the bundle's checkpoint to this one.
    pub consistency: Vec<Hash32>,
}

/// A self-contained proof of one event (FORMAT.md §11).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProofBundle {
    /// The event's WindowRecord, exactly as sealed (a node-log leaf).
    pub window_record: Vec<u8>,
    /// The event's EventAtom and the entries and actors it names, ascending by index.
    pub leaves: Vec<ProvenLeaf>,
    /// The window record's leaf index in the node log.
    pub log_index: u64,
    /// Inclusion proof of the window record in the log of `checkpoint`'s size.
    pub log_path: Vec<Hash32>,
    /// Signed checkpoint note of a log size greater than `log_index`.
    pub checkpoint: String,
    pub extension: Option<LogExtension>,
    /// SignedRecords of the node's key events, in history order, from the first.
    pub key_events: Vec<Vec<u8>>,
    /// Verifier key texts of the keys whose signatures the checkpoints were accepted on.
    pub signers: Vec<String>,
}

/// Which checkpoint of a bundle.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CheckpointPart {
    Checkpoint,
    Extension,
}

impl std::fmt::Display for CheckpointPart {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            CheckpointPart::Checkpoint => "checkpoint",
            CheckpointPart::Extension => "extension.checkpoint",
        })
    }
}

/// Why a bundle does not prove its event. Every message starts with the bundle part
/// at fault (FORMAT.md §11 names).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum BundleError {
    #[error("bundle: {0}")]
    Decode(DecodeError),
    #[error("window_record: {0}")]
    WindowRecord(DecodeError),
    #[error("key_events[{index}]: {source}")]
    KeyEvent { index: usize, source: KeyError },
    #[error("{part}: {source}")]
    Checkpoint {
        part: CheckpointPart,
        source: KeyError,
    },
    #[error("signers: the bundle names {found:?}, the checkpoints are signed by {expected:?}")]
    Signers {
        expected: Vec<String>,
        found: Vec<String>,
    },
    #[error("key: the pinned key {pinned} is neither the key history's first key {anchor} nor the key that signed the checkpoints")]
    NotPinned { pinned: String, anchor: String },
    #[error(
        "log_index: the window record is leaf {index}, the checkpoint's log has {size} leaves"
    )]
    LogIndex { index: u64, size: u64 },
    #[error("log_path: {0}")]
    LogPath(ProofError),
    #[error("extension.checkpoint: size {to} does not extend the checkpoint's size {from}")]
    ExtensionSize { from: u64, to: u64 },
    #[error("extension.consistency: {0}")]
    Consistency(ProofError),
    #[error("window_record: its record counts overflow")]
    TreeSize,
    #[error("leaves[{leaf}].index: leaf {index} is outside the window tree of {size} leaves")]
    LeafIndex { leaf: usize, index: u64, size: u64 },
    #[error("leaves[{leaf}].path: {source}")]
    LeafPath { leaf: usize, source: ProofError },
    #[error("leaves[{leaf}].leaf: {source}")]
    LeafDecode { leaf: usize, source: DecodeError },
    #[error("leaves[{leaf}]: a {found} at leaf {index}, where the window record's counts put its {section} section")]
    LeafSection {
        leaf: usize,
        index: u64,
        found: &'static str,
        section: &'static str,
    },
    #[error("leaves: no EventAtom")]
    NoEvent,
    #[error("leaves[{leaf}]: a second EventAtom")]
    SecondEvent { leaf: usize },
    #[error("leaves[{leaf}]: seq {seq} cannot be atom {position} of a window whose first seq is {first_seq}")]
    SeqPosition {
        leaf: usize,
        seq: u64,
        position: u64,
        first_seq: u64,
    },
    #[error("leaves[{leaf}]: t_ns {t_ns} does not fit the window: {why}")]
    EventTime {
        leaf: usize,
        t_ns: i64,
        why: &'static str,
    },
    #[error("leaves[{leaf}]: the dictionary id is not the id of its kind and value")]
    DictId { leaf: usize },
    #[error("leaves[{leaf}]: a {record} the event does not name (or names twice)")]
    Unreferenced { leaf: usize, record: &'static str },
}

impl BundleError {
    /// The bundle part at fault, as FORMAT.md §11 names it.
    pub fn part(&self) -> String {
        use BundleError::*;
        match self {
            Decode(_) => "bundle".into(),
            WindowRecord(_) | TreeSize => "window_record".into(),
            KeyEvent { index, .. } => format!("key_events[{index}]"),
            Checkpoint { part, .. } => part.to_string(),
            Signers { .. } => "signers".into(),
            NotPinned { .. } => "key".into(),
            LogIndex { .. } => "log_index".into(),
            LogPath(_) => "log_path".into(),
            ExtensionSize { .. } => "extension.checkpoint".into(),
            Consistency(_) => "extension.consistency".into(),
            LeafIndex { leaf, .. } => format!("leaves[{leaf}].index"),
            LeafPath { leaf, .. } => format!("leaves[{leaf}].path"),
            LeafDecode { leaf, .. } => format!("leaves[{leaf}].leaf"),
            NoEvent => "leaves".into(),
            LeafSection { leaf, .. }
            | SecondEvent { leaf }
            | SeqPosition { leaf, .. }
            | EventTime { leaf, .. }
            | DictId { leaf }
            | Unreferenced { leaf, .. } => format!("leaves[{leaf}]"),
        }
    }
}

/// What a verified bundle proves.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProvenEvent {
    pub window: WindowRecord,
    pub event: EventAtom,
    /// The event's leaf index in the window tree.
    pub event_leaf: u64,
    /// Number of leaves of the window tree.
    pub window_leaves: u64,
    pub log_index: u64,
    pub checkpoint: Checkpoint,
    pub extension: Option<Checkpoint>,
    /// The proven dictionary entries, in leaf order.
    pub dict: Vec<DictEntry>,
    /// The proven actor records, in leaf order.
    pub actors: Vec<ActorRecord>,
    /// The key history's first key.
    pub anchor: NoteVerifier,
    /// The keys the checkpoints were accepted on.
    pub signers: Vec<NoteVerifier>,
    /// True if the caller pinned a key and it matched.
    pub pinned: bool,
}

impl ProvenEvent {
    pub fn dict_entry(&self, id: &Id128) -> Option<&DictEntry> {
        self.dict.iter().find(|d| &d.id == id)
    }

    pub fn actor(&self, id: &Id128) -> Option<&ActorRecord> {
        self.actors.iter().find(|a| &a.actor == id)
    }

    /// The event's wall time, ns since the epoch (window start + `t_ns`).
    pub fn time_ns(&self) -> i128 {
        self.window.t_start_ns() as i128 + self.event.t_ns as i128
    }

    /// The checkpoint the proof ends at (the extension's, if any).
    pub fn latest(&self) -> &Checkpoint {
        self.extension.as_ref().unwrap_or(&self.checkpoint)
    }
}

/// Verifies a checkpoint note against `history` (a signature by a key valid at its size,
/// FORMAT.md §5) and returns it with the key it was accepted on: the first signature
/// line under the node's name whose key id names a key valid at that size.
pub fn checkpoint_signer(
    history: &KeyHistory,
    note: &str,
) -> Result<(Checkpoint, NoteVerifier), KeyError> {
    let cp = history.verify_checkpoint(note)?;
    let parsed = parse_note(note)?;
    parsed
        .signatures
        .iter()
        .filter(|s| s.name == cp.origin)
        .find_map(|s| history.key_at(s.key_id, cp.size))
        .cloned()
        .map(|v| (cp.clone(), v))
        .ok_or(KeyError::NoValidSignature {
            node: history.node().to_owned(),
            size: cp.size,
        })
}

/// What a prover gives [`ProofBundle::assemble`]: the sealed bytes it read and the
/// checkpoints it chose; the proofs and the signer list are computed.
pub struct BundleParts<'a> {
    pub window_record: &'a [u8],
    /// Leaf hashes of every leaf of the window tree, in order.
    pub window_leaf_hashes: &'a [Hash32],
    /// The leaves to prove: (index, bytes).
    pub leaves: Vec<(u64, Vec<u8>)>,
    /// The node log, at least up to the largest checkpoint size (leaves deleted by
    /// retention known by their subtrees).
    pub log: &'a SparseLog,
    pub log_index: u64,
    /// Signed checkpoint note of a size greater than `log_index`.
    pub checkpoint: String,
    /// Signed checkpoint note of a larger size, to extend the proof to.
    pub extension: Option<String>,
    /// SignedRecords of the key events, from the first.
    pub key_events: Vec<Vec<u8>>,
}

impl ProofBundle {
    /// Builds the bundle of `parts`: inclusion and consistency proofs and the signers.
    /// Fails on what [`ProofBundle::verify`] would refuse in the checkpoints or keys.
    pub fn assemble(parts: BundleParts<'_>) -> Result<ProofBundle, BundleError> {
        let record =
            WindowRecord::decode(parts.window_record).map_err(BundleError::WindowRecord)?;
        let history = key_history(&record.node, &parts.key_events)?;
        let (cp, signer) = checkpoint_signer(&history, &parts.checkpoint).map_err(|source| {
            BundleError::Checkpoint {
                part: CheckpointPart::Checkpoint,
                source,
            }
        })?;
        let mut signers = vec![signer.to_vkey()];
        let log_hashes = |size: u64| Prefix::new(parts.log, size);
        let log_path = log_hashes(cp.size)
            .and_then(|h| inclusion_proof::<Blake3Tree, _>(&h, parts.log_index))
            .map_err(BundleError::LogPath)?;
        let extension = match parts.extension {
            None => None,
            Some(note) => {
                let (to, signer) = checkpoint_signer(&history, &note).map_err(|source| {
                    BundleError::Checkpoint {
                        part: CheckpointPart::Extension,
                        source,
                    }
                })?;
                if !signers.contains(&signer.to_vkey()) {
                    signers.push(signer.to_vkey());
                }
                let consistency = log_hashes(to.size)
                    .and_then(|h| consistency_proof::<Blake3Tree, _>(&h, cp.size))
                    .map_err(BundleError::Consistency)?;
                Some(LogExtension {
                    checkpoint: note,
                    consistency,
                })
            }
        };
        let mut leaves = Vec::with_capacity(parts.leaves.len());
        for (leaf, (index, bytes)) in parts.leaves.into_iter().enumerate() {
            let path = inclusion_proof::<Blake3Tree, _>(parts.window_leaf_hashes, index)
                .map_err(|source| BundleError::LeafPath { leaf, source })?;
            leaves.push(ProvenLeaf { index, bytes, path });
        }
        Ok(ProofBundle {
            window_record: parts.window_record.to_vec(),
            leaves,
            log_index: parts.log_index,
            log_path,
            checkpoint: parts.checkpoint,
            extension,
            key_events: parts.key_events,
            signers,
        })
    }

    /// Strict decode, then [`ProofBundle::verify`].
    pub fn verify_bytes(
        bytes: &[u8],
        pinned: Option<&NoteVerifier>,
    ) -> Result<ProvenEvent, BundleError> {
        Self::decode(bytes)
            .map_err(BundleError::Decode)?
            .verify(pinned)
    }

    /// The verification algorithm of FORMAT.md §11, in its order (hashes first,
    /// signatures last). `pinned`, a key obtained out of band, must be the key
    /// history's first key or the key that signed every checkpoint of the bundle.
    pub fn verify(&self, pinned: Option<&NoteVerifier>) -> Result<ProvenEvent, BundleError> {
        // 1. The window record, and the node it names.
        let window =
            WindowRecord::decode(&self.window_record).map_err(BundleError::WindowRecord)?;

        // 2. Each leaf is in the window tree, in the section its type belongs to.
        let sections = Sections::from_record(&window)?;
        let mut event: Option<(usize, u64, EventAtom)> = None;
        let mut dict: Vec<(usize, DictEntry)> = Vec::new();
        let mut actors: Vec<(usize, ActorRecord)> = Vec::new();
        for (leaf, l) in self.leaves.iter().enumerate() {
            if l.index >= sections.size {
                return Err(BundleError::LeafIndex {
                    leaf,
                    index: l.index,
                    size: sections.size,
                });
            }
            verify_inclusion::<Blake3Tree>(
                l.index,
                sections.size,
                &Blake3Tree::leaf(&l.bytes),
                &l.path,
                &window.window_root,
            )
            .map_err(|source| BundleError::LeafPath { leaf, source })?;
            let record = AnyRecord::decode(&l.bytes)
                .map_err(|source| BundleError::LeafDecode { leaf, source })?;
            let (found, wanted) = match &record {
                AnyRecord::Dict(_) => (DictEntry::NAME, Some(Section::Dict)),
                AnyRecord::Actor(_) => (ActorRecord::NAME, Some(Section::Actor)),
                AnyRecord::Event(_) => (EventAtom::NAME, Some(Section::Event)),
                _ => (leaf_type_name(&l.bytes), None),
            };
            // Edges, cone instances and non-leaf records are never proven by a bundle.
            let section = sections.section_of(l.index);
            if wanted != Some(section) {
                return Err(BundleError::LeafSection {
                    leaf,
                    index: l.index,
                    found,
                    section: section.name(),
                });
            }
            match record {
                AnyRecord::Dict(d) => dict.push((leaf, d)),
                AnyRecord::Actor(a) => actors.push((leaf, a)),
                AnyRecord::Event(a) => {
                    if event.is_some() {
                        return Err(BundleError::SecondEvent { leaf });
                    }
                    event = Some((leaf, l.index, a));
                }
                // The section check let only the three types above through.
                _ => {}
            }
        }

        // 3. The event is where the window record says events are, in its time.
        let (event_leaf_pos, event_leaf, atom) = event.ok_or(BundleError::NoEvent)?;
        let position = event_leaf - sections.event_start;
        let lowest = window.first_seq.checked_add(position);
        if (position == 0 && atom.seq != window.first_seq) || lowest.is_none_or(|l| atom.seq < l) {
            return Err(BundleError::SeqPosition {
                leaf: event_leaf_pos,
                seq: atom.seq,
                position,
                first_seq: window.first_seq,
            });
        }
        check_event_time(&window, &atom, event_leaf_pos)?;

        // 4. Every other leaf is named by the event, once.
        let mut actor_ids: Vec<Id128> = Vec::new();
        for (leaf, a) in &actors {
            if (a.actor != atom.actor && a.actor != atom.object) || actor_ids.contains(&a.actor) {
                return Err(BundleError::Unreferenced {
                    leaf: *leaf,
                    record: ActorRecord::NAME,
                });
            }
            actor_ids.push(a.actor);
        }
        let mut dict_ids: Vec<Id128> = Vec::new();
        for (leaf, d) in &dict {
            if !d.hashed && d.id != DictEntry::id_of(d.kind, &d.value) {
                return Err(BundleError::DictId { leaf: *leaf });
            }
            let named = d.id == atom.object
                || actors.iter().any(|(_, a)| actor_names(a, &d.id))
                || is_argv_of(d, atom.arg_hash.as_ref());
            if !named || dict_ids.contains(&d.id) {
                return Err(BundleError::Unreferenced {
                    leaf: *leaf,
                    record: DictEntry::NAME,
                });
            }
            dict_ids.push(d.id);
        }

        // 5. The window record is a leaf of the checkpoint's log, which the extension
        //    extends (sizes and roots as the notes state them; signatures in step 6).
        let checkpoint = unverified_checkpoint(CheckpointPart::Checkpoint, &self.checkpoint)?;
        if self.log_index >= checkpoint.size {
            return Err(BundleError::LogIndex {
                index: self.log_index,
                size: checkpoint.size,
            });
        }
        verify_inclusion::<Blake3Tree>(
            self.log_index,
            checkpoint.size,
            &Blake3Tree::leaf(&self.window_record),
            &self.log_path,
            &checkpoint.root,
        )
        .map_err(BundleError::LogPath)?;
        if let Some(x) = &self.extension {
            let to = unverified_checkpoint(CheckpointPart::Extension, &x.checkpoint)?;
            if to.size <= checkpoint.size {
                return Err(BundleError::ExtensionSize {
                    from: checkpoint.size,
                    to: to.size,
                });
            }
            verify_consistency::<Blake3Tree>(
                checkpoint.size,
                to.size,
                &checkpoint.root,
                &to.root,
                &x.consistency,
            )
            .map_err(BundleError::Consistency)?;
        }

        // 6. The key history, then each checkpoint signed by a key valid at its size.
        let history = key_history(&window.node, &self.key_events)?;
        let checkpoint_of = |part, note: &str| {
            checkpoint_signer(&history, note)
                .map_err(|source| BundleError::Checkpoint { part, source })
        };
        let (checkpoint, signer) = checkpoint_of(CheckpointPart::Checkpoint, &self.checkpoint)?;
        let mut signers = vec![signer];
        let extension = match &self.extension {
            None => None,
            Some(x) => {
                let (cp, signer) = checkpoint_of(CheckpointPart::Extension, &x.checkpoint)?;
                if !signers.contains(&signer) {
                    signers.push(signer);
                }
                Some(cp)
            }
        };
        let expected: Vec<String> = signers.iter().map(NoteVerifier::to_vkey).collect();
        if expected != self.signers {
            return Err(BundleError::Signers {
                expected,
                found: self.signers.clone(),
            });
        }
        let anchor =
            history
                .spans()
                .first()
                .map(|s| s.verifier.clone())
                .ok_or(BundleError::KeyEvent {
                    index: 0,
                    source: KeyError::FirstNotSelfSignedAdd,
                })?;

        // 7. The pinned key, if any.
        if let Some(p) = pinned {
            if *p != anchor && signers.iter().any(|s| s != p) {
                return Err(BundleError::NotPinned {
                    pinned: p.to_vkey(),
                    anchor: anchor.to_vkey(),
                });
            }
        }

        Ok(ProvenEvent {
            window,
            event: atom,
            event_leaf,
            window_leaves: sections.size,
            log_index: self.log_index,
            checkpoint,
            extension,
            dict: dict.into_iter().map(|(_, d)| d).collect(),
            actors: actors.into_iter().map(|(_, a)| a).collect(),
            anchor,
            signers,
            pinned: pinned.is_some(),
        })
    }
}

/// A checkpoint note's size and root, parsed but not yet authenticated.
fn unverified_checkpoint(part: CheckpointPart, note: &str) -> Result<Checkpoint, BundleError> {
    parse_note(note)
        .and_then(|n| Checkpoint::parse_body(n.body))
        .map_err(|e| BundleError::Checkpoint {
            part,
            source: KeyError::Note(e),
        })
}

/// Applies the bundle's key events in order to a new history of `node`.
fn key_history(node: &str, key_events: &[Vec<u8>]) -> Result<KeyHistory, BundleError> {
    let mut history =
        KeyHistory::new(node).map_err(|source| BundleError::KeyEvent { index: 0, source })?;
    for (index, bytes) in key_events.iter().enumerate() {
        let signed = SignedRecord::decode(bytes).map_err(|e| BundleError::KeyEvent {
            index,
            source: KeyError::Decode(e),
        })?;
        history
            .apply(&signed)
            .map_err(|source| BundleError::KeyEvent { index, source })?;
    }
    Ok(history)
}

/// FORMAT.md §3.2: a late event (flag 6) lies before its window's start, any other
/// event inside its window.
fn check_event_time(
    window: &WindowRecord,
    atom: &EventAtom,
    leaf: usize,
) -> Result<(), BundleError> {
    let late = atom.flags & crate::records::atom_flags::LATE != 0;
    let why = if late && atom.t_ns >= 0 {
        Some("a late event lies before its window's start")
    } else if late && window.late_events == 0 {
        Some("a late event in a window that counts no late events")
    } else if !late && atom.t_ns < 0 {
        Some("an event before its window's start is not flagged late")
    } else if atom.t_ns >= 0 && atom.t_ns as u64 >= window.window_len_ns {
        Some("the event lies after its window's end")
    } else {
        None
    };
    match why {
        Some(why) => Err(BundleError::EventTime {
            leaf,
            t_ns: atom.t_ns,
            why,
        }),
        None => Ok(()),
    }
}

/// True if actor record `a` names dictionary id `id` (exe, comm, container, service).
fn actor_names(a: &ActorRecord, id: &Id128) -> bool {
    a.exe.as_ref() == Some(id)
        || &a.comm == id
        || a.container.as_ref() == Some(id)
        || a.service.as_ref() == Some(id)
}

/// True if `d` is the argv entry whose BLAKE3 is the event's `arg_hash`.
fn is_argv_of(d: &DictEntry, arg_hash: Option<&Hash32>) -> bool {
    let Some(h) = arg_hash else { return false };
    d.kind == DictKind::Argv
        && if d.hashed {
            d.value.as_slice() == h
        } else {
            &blake3(&d.value) == h
        }
}

/// The record type name of a leaf that decoded (FORMAT.md §3 names).
fn leaf_type_name(leaf: &[u8]) -> &'static str {
    let mut d = Decoder::new(leaf, "leaf");
    d.array("(record)", 64)
        .and_then(|_| d.uint("type"))
        .ok()
        .and_then(crate::records::record_name)
        .unwrap_or("record")
}

/// The parts of a window tree, in canonical order (FORMAT.md §8.2).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Section {
    Dict,
    Actor,
    Event,
    /// Edges and cone instances.
    Rest,
}

impl Section {
    fn name(self) -> &'static str {
        match self {
            Section::Dict => "dictionary entry",
            Section::Actor => "actor record",
            Section::Event => "event atom",
            Section::Rest => "edge, cone instance and health record",
        }
    }
}

/// Where each section of a window tree starts, from its record's counts.
struct Sections {
    actor_start: u64,
    event_start: u64,
    edge_start: u64,
    size: u64,
}

impl Sections {
    fn from_record(w: &WindowRecord) -> Result<Self, BundleError> {
        let actor_start = w.dict_count;
        let event_start = actor_start.checked_add(w.actor_count);
        let edge_start = event_start.and_then(|s| s.checked_add(w.event_count));
        let size = edge_start
            .and_then(|s| s.checked_add(w.edge_count))
            .and_then(|s| s.checked_add(w.cone_count))
            .and_then(|s| s.checked_add(w.health_count));
        match (event_start, edge_start, size) {
            (Some(event_start), Some(edge_start), Some(size)) => Ok(Sections {
                actor_start,
                event_start,
                edge_start,
                size,
            }),
            _ => Err(BundleError::TreeSize),
        }
    }

    fn section_of(&self, i: u64) -> Section {
        if i < self.actor_start {
            Section::Dict
        } else if i < self.event_start {
            Section::Actor
        } else if i < self.edge_start {
            Section::Event
        } else {
            Section::Rest
        }
    }
}

fn hashes(
    d: &mut Decoder<'_>,
    field: &'static str,
    max: usize,
) -> Result<Vec<Hash32>, DecodeError> {
    let n = d.array(field, max as u64)?;
    (0..n).map(|_| d.fixed(field)).collect()
}

fn encode_hashes(e: &mut Encoder, hashes: &[Hash32]) {
    e.array(hashes.len() as u64);
    for h in hashes {
        e.bytes(h);
    }
}

/// A list of 1 to `max` items.
fn non_empty_array(
    d: &mut Decoder<'_>,
    field: &'static str,
    max: usize,
) -> Result<u64, DecodeError> {
    let at = d.position();
    let n = d.array(field, max as u64)?;
    if n == 0 {
        return Err(d.error_at(field, at, DecodeErrorKind::Invalid("the list is empty")));
    }
    Ok(n)
}

impl Record for ProofBundle {
    const TYPE: u64 = 19;
    const VERSION: u64 = 1;
    const NAME: &'static str = "ProofBundle";
    const FIELDS: u64 = 10;
    const MAX_LEN: usize = MAX_BUNDLE_LEN;

    fn encode_fields(&self, e: &mut Encoder) {
        e.bytes(&self.window_record).array(self.leaves.len() as u64);
        for l in &self.leaves {
            e.array(3).uint(l.index).bytes(&l.bytes);
            encode_hashes(e, &l.path);
        }
        e.uint(self.log_index);
        encode_hashes(e, &self.log_path);
        e.text(&self.checkpoint);
        match &self.extension {
            None => {
                e.null();
            }
            Some(x) => {
                e.array(2).text(&x.checkpoint);
                encode_hashes(e, &x.consistency);
            }
        }
        e.array(self.key_events.len() as u64);
        for k in &self.key_events {
            e.bytes(k);
        }
        e.array(self.signers.len() as u64);
        for s in &self.signers {
            e.text(s);
        }
    }

    fn decode_fields(d: &mut Decoder<'_>) -> Result<Self, DecodeError> {
        let window_record = d.bytes("window_record", MAX_RECORD_LEN as u64)?.to_vec();
        let n = non_empty_array(d, "leaves", MAX_BUNDLE_LEAVES)?;
        let mut leaves: Vec<ProvenLeaf> = Vec::with_capacity(n as usize);
        for _ in 0..n {
            d.array_exact("leaves", 3)?;
            let at = d.position();
            let index = d.uint("leaves.index")?;
            if leaves.last().is_some_and(|p| p.index >= index) {
                return Err(d.error_at("leaves.index", at, DecodeErrorKind::NotAscending));
            }
            let bytes = d
                .bytes("leaves.leaf", MAX_EVENT_RECORD_LEN as u64)?
                .to_vec();
            let path = hashes(d, "leaves.path", MAX_PATH_HASHES)?;
            leaves.push(ProvenLeaf { index, bytes, path });
        }
        let log_index = d.uint("log_index")?;
        let log_path = hashes(d, "log_path", MAX_PATH_HASHES)?;
        let checkpoint = d.text("checkpoint", MAX_NOTE_LEN as u64)?.to_owned();
        let extension = if d.peek_null() {
            d.null("extension")?;
            None
        } else {
            d.array_exact("extension", 2)?;
            Some(LogExtension {
                checkpoint: d
                    .text("extension.checkpoint", MAX_NOTE_LEN as u64)?
                    .to_owned(),
                consistency: hashes(d, "extension.consistency", MAX_CONSISTENCY_HASHES)?,
            })
        };
        let n = non_empty_array(d, "key_events", MAX_KEY_EVENTS)?;
        let key_events = (0..n)
            .map(|_| {
                d.bytes("key_events", MAX_RECORD_LEN as u64)
                    .map(<[u8]>::to_vec)
            })
            .collect::<Result<_, _>>()?;
        let n = non_empty_array(d, "signers", MAX_SIGNERS)?;
        let signers = (0..n)
            .map(|_| d.text("signers", MAX_VKEY_LEN as u64).map(str::to_owned))
            .collect::<Result<_, _>>()?;
        Ok(ProofBundle {
            window_record,
            leaves,
            log_index,
            log_path,
            checkpoint,
            extension,
            key_events,
            signers,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::sign_key_event;
    use crate::merkle::root;
    use crate::note::NoteSigner;
    use crate::records::{
        atom_flags, CaptureMode, Edge, EdgeKind, EventType, KeyEvent, KeyEventKind,
    };

    const NODE: &str = "web-1";
    const WINDOW: u64 = 1_793_491_205;
    const SECOND: u64 = 1_000_000_000;

    fn signer(seed: u8) -> NoteSigner {
        NoteSigner::from_seed(&format!("ritma/{NODE}"), [seed; 32]).unwrap()
    }

    fn anchor_event(s: &NoteSigner) -> Vec<u8> {
        let event = KeyEvent {
            node: NODE.into(),
            kind: KeyEventKind::Add,
            public_key: s.verifier().public_key(),
            log_size: 0,
            previous_key: None,
        };
        sign_key_event(&event, s).encode()
    }

    /// A window's records in canonical order, and which of them a bundle proves.
    struct Window {
        dict: Vec<DictEntry>,
        actors: Vec<ActorRecord>,
        atoms: Vec<EventAtom>,
        edges: Vec<Edge>,
    }

    const ACTOR: Id128 = [0xa1; 16];

    fn path(p: &str) -> DictEntry {
        DictEntry::new(DictKind::Path, p.as_bytes())
    }

    fn argv() -> Vec<u8> {
        let mut e = Encoder::new();
        e.array(2).bytes(b"cat").bytes(b"/etc/passwd");
        e.into_bytes()
    }

    /// `cat` (one actor) opens /etc/passwd (seq 100), is exec'd with an argv (seq 101),
    /// and opens /tmp/x (seq 102); one edge; an unrelated path.
    fn window() -> Window {
        let exe = path("/usr/bin/cat");
        let comm = DictEntry::new(DictKind::Comm, b"cat");
        let mut dict = vec![
            path("/etc/passwd"),
            exe.clone(),
            comm.clone(),
            DictEntry::new(DictKind::Argv, &argv()),
            path("/tmp/x"),
            path("/var/log/unrelated"),
        ];
        dict.sort_by_key(|d| d.id);
        let actor = ActorRecord {
            actor: ACTOR,
            pid: 4242,
            ppid: 1,
            parent: None,
            start_ns: 5 * SECOND,
            uid: 1000,
            gid: 1000,
            euid: 1000,
            exe: Some(exe.id),
            exe_hash: None,
            comm: comm.id,
            cgroup_id: 1,
            mnt_ns: 2,
            pid_ns: 3,
            net_ns: 4,
            container: None,
            service: None,
        };
        let atom = |seq, t_ns, event_type, object: &DictEntry, flags, arg_hash| EventAtom {
            seq,
            t_ns,
            event_type,
            actor: ACTOR,
            object: object.id,
            flags,
            arg_hash,
            payload_ref: None,
            given: Vec::new(),
        };
        let atoms = vec![
            atom(
                100,
                10,
                EventType::Open,
                &path("/etc/passwd"),
                atom_flags::READ,
                None,
            ),
            atom(
                101,
                20,
                EventType::Exec,
                &exe,
                atom_flags::EXEC,
                Some(blake3(&argv())),
            ),
            atom(
                102,
                30,
                EventType::Open,
                &path("/tmp/x"),
                atom_flags::WRITE,
                None,
            ),
        ];
        let edges = vec![Edge {
            kind: EdgeKind::ProcToFile,
            src: ACTOR,
            dst: path("/etc/passwd").id,
            flags: crate::records::edge_flags::READ,
            first_t_ns: 10,
            last_t_ns: 10,
            count: 1,
        }];
        Window {
            dict,
            actors: vec![actor],
            atoms,
            edges,
        }
    }

    impl Window {
        fn leaves(&self) -> Vec<Vec<u8>> {
            let mut out: Vec<Vec<u8>> = Vec::new();
            out.extend(self.dict.iter().map(Record::encode));
            out.extend(self.actors.iter().map(Record::encode));
            out.extend(self.atoms.iter().map(Record::encode));
            out.extend(self.edges.iter().map(Record::encode));
            out
        }

        fn record(&self, root: Hash32) -> WindowRecord {
            WindowRecord {
                node: NODE.into(),
                window: WINDOW,
                window_len_ns: SECOND,
                first_seq: 100,
                event_count: self.atoms.len() as u64,
                dict_count: self.dict.len() as u64,
                actor_count: self.actors.len() as u64,
                edge_count: self.edges.len() as u64,
                cone_count: 0,
                health_count: 0,
                lost: Vec::new(),
                late_events: 0,
                capture_mode: CaptureMode::Thick,
                cone_lib_version: 1,
                window_root: root,
                state: None,
            }
        }

        /// Leaf index of the first leaf whose bytes are `bytes`.
        fn index_of(&self, bytes: &[u8]) -> u64 {
            self.leaves().iter().position(|l| l == bytes).unwrap() as u64
        }

        /// The exec event and what it names: actor, exe, comm, argv.
        fn exec_leaves(&self) -> Vec<u64> {
            let actor = &self.actors[0];
            let mut v = vec![
                self.index_of(&self.atoms[1].encode()),
                self.index_of(&actor.encode()),
            ];
            for d in &self.dict {
                if Some(d.id) == actor.exe || d.id == actor.comm || d.kind == DictKind::Argv {
                    v.push(self.index_of(&d.encode()));
                }
            }
            v.sort();
            v
        }
    }

    /// A genuine bundle for `chosen` leaves of `w`, its record edited by `edit` before
    /// it is sealed; the node log has 5 windows, ours is leaf 2, signed at sizes 3 and 5.
    fn bundle_with(
        w: &Window,
        chosen: &[u64],
        edit: impl FnOnce(&mut WindowRecord),
    ) -> ProofBundle {
        let s = signer(7);
        bundle_signed(w, chosen, edit, vec![anchor_event(&s)], |_| &s)
    }

    /// [`bundle_with`] with these key events, the checkpoint of each size signed by `by(size)`.
    fn bundle_signed<'s>(
        w: &Window,
        chosen: &[u64],
        edit: impl FnOnce(&mut WindowRecord),
        key_events: Vec<Vec<u8>>,
        by: impl Fn(usize) -> &'s NoteSigner,
    ) -> ProofBundle {
        let leaves = w.leaves();
        let hashes: Vec<Hash32> = leaves.iter().map(|l| Blake3Tree::leaf(l)).collect();
        let mut record = w.record(root::<Blake3Tree>(&hashes));
        edit(&mut record);
        let record_bytes = record.encode();
        let log: Vec<Vec<u8>> = (0..5u64)
            .map(|i| match i {
                2 => record_bytes.clone(),
                _ => WindowRecord {
                    window: WINDOW - 2 + i,
                    event_count: 0,
                    dict_count: 0,
                    actor_count: 0,
                    edge_count: 0,
                    window_root: blake3(b""),
                    state: None,
                    ..record.clone()
                }
                .encode(),
            })
            .collect();
        let log_hashes: Vec<Hash32> = log.iter().map(|l| Blake3Tree::leaf(l)).collect();
        let note = |size: usize| {
            Checkpoint::for_node(NODE, size as u64, root::<Blake3Tree>(&log_hashes[..size]))
                .unwrap()
                .sign(by(size))
                .unwrap()
        };
        ProofBundle::assemble(BundleParts {
            window_record: &record_bytes,
            window_leaf_hashes: &hashes,
            leaves: chosen
                .iter()
                .map(|&i| (i, leaves[i as usize].clone()))
                .collect(),
            log: &SparseLog::from_leaves(&log_hashes),
            log_index: 2,
            checkpoint: note(3),
            extension: Some(note(5)),
            key_events,
        })
        .unwrap()
    }

    fn genuine() -> ProofBundle {
        let w = window();
        bundle_with(&w, &w.exec_leaves(), |_| {})
    }

    #[test]
    fn a_genuine_bundle_round_trips_and_proves_its_event() {
        let b = genuine();
        let bytes = b.encode();
        assert_eq!(ProofBundle::decode(&bytes).unwrap(), b);
        let p = ProofBundle::verify_bytes(&bytes, None).unwrap();
        assert_eq!(p.event.seq, 101);
        assert_eq!(p.event.event_type, EventType::Exec);
        assert_eq!(p.window.window, WINDOW);
        assert_eq!((p.checkpoint.size, p.latest().size, p.log_index), (3, 5, 2));
        assert_eq!(p.window_leaves, 6 + 1 + 3 + 1);
        assert_eq!(p.actors.len(), 1);
        assert_eq!(p.dict.len(), 3);
        let exe = p.dict_entry(&p.event.object).unwrap();
        assert_eq!(exe.value, b"/usr/bin/cat");
        assert_eq!(p.time_ns(), (WINDOW * SECOND) as i128 + 20);
        assert!(!p.pinned);
        assert_eq!(p.signers, vec![signer(7).verifier()]);
        assert_eq!(p.anchor, signer(7).verifier());
        // Pinned by the anchor (which also signed the checkpoints).
        assert!(b.verify(Some(&signer(7).verifier())).unwrap().pinned);
    }

    #[test]
    fn a_rotated_key_signs_from_its_size_and_either_pin_is_checked() {
        // Key 7 anchors the history; at log size 4 it is rotated to key 8.
        let (a, b) = (signer(7), signer(8));
        let rotate = KeyEvent {
            node: NODE.into(),
            kind: KeyEventKind::Rotate,
            public_key: b.verifier().public_key(),
            log_size: 4,
            previous_key: Some(a.verifier().public_key()),
        };
        let events = vec![anchor_event(&a), sign_key_event(&rotate, &a).encode()];
        let w = window();
        let by_size = |size: usize| if size < 4 { &a } else { &b };
        let bundle = bundle_signed(&w, &w.exec_leaves(), |_| {}, events.clone(), by_size);
        // The size-3 checkpoint by key 7, the size-5 extension by key 8.
        assert_eq!(
            bundle.signers,
            vec![a.verifier().to_vkey(), b.verifier().to_vkey()]
        );
        let p = bundle.verify(None).unwrap();
        assert_eq!(p.signers, vec![a.verifier(), b.verifier()]);
        // The anchor pins the whole history; key 8 alone did not sign size 3.
        assert!(bundle.verify(Some(&a.verifier())).is_ok());
        assert!(matches!(
            bundle.verify(Some(&b.verifier())),
            Err(BundleError::NotPinned { .. })
        ));
        // Without its extension, the bundle is signed by key 7 alone.
        let mut short = bundle.clone();
        short.extension = None;
        short.signers.truncate(1);
        assert!(short.verify(Some(&a.verifier())).is_ok());
        // After the rotation the old key signs nothing, and the history must hold the rotation.
        let mut old_signs = bundle.clone();
        let cp = unverified_checkpoint(
            CheckpointPart::Extension,
            &bundle.extension.as_ref().unwrap().checkpoint,
        )
        .unwrap();
        old_signs.extension.as_mut().unwrap().checkpoint = cp.sign(&a).unwrap();
        old_signs.signers.truncate(1);
        assert!(matches!(
            old_signs.verify(None),
            Err(BundleError::Checkpoint {
                part: CheckpointPart::Extension,
                source: KeyError::NoValidSignature { size: 5, .. }
            })
        ));
        let mut no_rotation = bundle.clone();
        no_rotation.key_events.truncate(1);
        assert!(matches!(
            no_rotation.verify(None),
            Err(BundleError::Checkpoint {
                part: CheckpointPart::Extension,
                ..
            })
        ));
    }

    #[test]
    fn a_bundle_without_extension_or_with_one_leaf_verifies() {
        let w = window();
        let mut b = bundle_with(&w, &[w.index_of(&w.atoms[0].encode())], |_| {});
        b.extension = None;
        let p = b.verify(None).unwrap();
        assert_eq!((p.event.seq, p.latest().size), (100, 3));
        assert!(p.dict.is_empty() && p.actors.is_empty());
    }

    fn err_of(b: &ProofBundle) -> BundleError {
        // Through the bytes too: what the command line checks.
        let e = b.verify(None).unwrap_err();
        assert_eq!(ProofBundle::verify_bytes(&b.encode(), None).unwrap_err(), e);
        assert!(e.to_string().starts_with(&e.part()), "{e}");
        e
    }

    fn other_note(size: u64, root: Hash32, seed: u8) -> String {
        Checkpoint::for_node(NODE, size, root)
            .unwrap()
            .sign(&signer(seed))
            .unwrap()
    }

    #[test]
    fn each_altered_field_gives_its_error() {
        use BundleError as E;
        use ProofError::*;
        let g = genuine();
        let alter = |f: &dyn Fn(&mut ProofBundle)| {
            let mut b = g.clone();
            f(&mut b);
            err_of(&b)
        };

        // The window record: another root does not hold the leaves; another capture
        // mode keeps them but is not the log's leaf.
        let e = alter(&|b| {
            // The root's last byte: the record ends with it and `state` (null).
            let n = b.window_record.len();
            b.window_record[n - 2] ^= 1;
        });
        assert_eq!(
            e,
            E::LeafPath {
                leaf: 0,
                source: RootMismatch
            }
        );
        let e = alter(&|b| {
            let mut r = WindowRecord::decode(&b.window_record).unwrap();
            r.capture_mode = CaptureMode::Thin;
            b.window_record = r.encode();
        });
        assert_eq!(e, E::LogPath(RootMismatch));
        let e = alter(&|b| {
            b.window_record.pop();
        });
        assert!(matches!(e, E::WindowRecord(_)), "{e}");

        // Leaves: index, bytes, path.
        let e = alter(&|b| b.leaves[0].index += 1);
        assert!(matches!(e, E::LeafPath { leaf: 0, .. }), "{e}");
        let e = alter(&|b| b.leaves[4].index = 1000);
        assert_eq!(
            e,
            E::LeafIndex {
                leaf: 4,
                index: 1000,
                size: 11
            }
        );
        let e = alter(&|b| b.leaves[1].bytes[5] ^= 1);
        assert_eq!(
            e,
            E::LeafPath {
                leaf: 1,
                source: RootMismatch
            }
        );
        let e = alter(&|b| b.leaves[2].path[0][0] ^= 1);
        assert_eq!(
            e,
            E::LeafPath {
                leaf: 2,
                source: RootMismatch
            }
        );
        let e = alter(&|b| {
            b.leaves[3].path.pop();
        });
        assert!(
            matches!(
                e,
                E::LeafPath {
                    leaf: 3,
                    source: WrongProofLength { .. }
                }
            ),
            "{e}"
        );

        // The node log: index, path, checkpoint.
        let e = alter(&|b| b.log_index = 1);
        assert!(matches!(e, E::LogPath(WrongProofLength { .. })), "{e}");
        let e = alter(&|b| b.log_index = 3);
        assert_eq!(e, E::LogIndex { index: 3, size: 3 });
        let e = alter(&|b| b.log_path[0][31] ^= 0x80);
        assert_eq!(e, E::LogPath(RootMismatch));
        let e = alter(&|b| {
            // A signature byte: the base64 of the signature line.
            let n = b.checkpoint.len();
            let c = if &b.checkpoint[n - 3..n - 2] == "A" {
                "B"
            } else {
                "A"
            };
            b.checkpoint.replace_range(n - 3..n - 2, c);
        });
        assert!(
            matches!(
                e,
                E::Checkpoint {
                    part: CheckpointPart::Checkpoint,
                    source: KeyError::Note(_)
                }
            ),
            "{e}"
        );
        let root_at = |note: &str| {
            unverified_checkpoint(CheckpointPart::Checkpoint, note)
                .unwrap()
                .root
        };
        let (root3, root5) = (
            root_at(&g.checkpoint),
            root_at(&g.extension.as_ref().unwrap().checkpoint),
        );
        let e = alter(&|b| b.checkpoint = other_note(3, root3, 8));
        assert!(
            matches!(
                e,
                E::Checkpoint {
                    part: CheckpointPart::Checkpoint,
                    source: KeyError::NoValidSignature { .. }
                }
            ),
            "{e}"
        );

        // The extension: size, consistency, signature.
        let e = alter(&|b| b.extension.as_mut().unwrap().checkpoint = b.checkpoint.clone());
        assert_eq!(e, E::ExtensionSize { from: 3, to: 3 });
        let e = alter(&|b| b.extension.as_mut().unwrap().consistency[0][3] ^= 1);
        assert_eq!(e, E::Consistency(RootMismatch));
        let e = alter(&|b| b.extension.as_mut().unwrap().checkpoint = other_note(5, root5, 9));
        assert!(
            matches!(
                e,
                E::Checkpoint {
                    part: CheckpointPart::Extension,
                    ..
                }
            ),
            "{e}"
        );
        // A genuinely signed later checkpoint of another log does not extend this one.
        let e = alter(&|b| b.extension.as_mut().unwrap().checkpoint = other_note(5, [1; 32], 7));
        assert_eq!(e, E::Consistency(RootMismatch));

        // The keys: a broken key event, another key's history, signers, pinning.
        let e = alter(&|b| {
            let n = b.key_events[0].len();
            b.key_events[0][n - 1] ^= 1;
        });
        assert_eq!(
            e,
            E::KeyEvent {
                index: 0,
                source: KeyError::BadSignature { record: "KeyEvent" }
            }
        );
        let e = alter(&|b| b.key_events = vec![anchor_event(&signer(8))]);
        assert!(
            matches!(
                e,
                E::Checkpoint {
                    source: KeyError::NoValidSignature { .. },
                    ..
                }
            ),
            "{e}"
        );
        let e = alter(&|b| b.signers = vec![signer(8).verifier().to_vkey()]);
        assert!(matches!(e, E::Signers { .. }), "{e}");
        let e = g.verify(Some(&signer(8).verifier())).unwrap_err();
        assert!(matches!(e, E::NotPinned { .. }), "{e}");
        assert_eq!(e.part(), "key");
    }

    #[test]
    fn signed_but_inconsistent_windows_are_refused() {
        use BundleError as E;
        let w = window();
        let exec = w.exec_leaves();
        let atom_leaf = exec
            .iter()
            .position(|&i| i == w.index_of(&w.atoms[1].encode()))
            .unwrap();

        // Counts that move the event into the actor section (the tree size is unchanged).
        let b = bundle_with(&w, &exec, |r| {
            r.actor_count += 2;
            r.edge_count -= 1;
            r.event_count -= 1;
        });
        assert!(
            matches!(
                err_of(&b),
                E::LeafSection {
                    found: "EventAtom",
                    section: "actor record",
                    ..
                }
            ),
            "{}",
            err_of(&b)
        );
        // A first seq the event cannot follow.
        let b = bundle_with(&w, &exec, |r| r.first_seq = 101);
        assert_eq!(
            err_of(&b),
            E::SeqPosition {
                leaf: atom_leaf,
                seq: 101,
                position: 1,
                first_seq: 101
            }
        );
        let first = w.index_of(&w.atoms[0].encode());
        let b = bundle_with(&w, &[first], |r| r.first_seq = 99);
        assert!(matches!(err_of(&b), E::SeqPosition { position: 0, .. }));

        // Leaves the event does not name, or a leaf that is no event's.
        let unrelated = w.index_of(&path("/var/log/unrelated").encode());
        let mut chosen = exec.clone();
        chosen.push(unrelated);
        chosen.sort();
        let b = bundle_with(&w, &chosen, |_| {});
        assert!(
            matches!(
                err_of(&b),
                E::Unreferenced {
                    record: "DictEntry",
                    ..
                }
            ),
            "{}",
            err_of(&b)
        );
        let edge = w.index_of(&w.edges[0].encode());
        let b = bundle_with(&w, &[w.index_of(&w.atoms[0].encode()), edge], |_| {});
        assert!(matches!(
            err_of(&b),
            E::LeafSection {
                leaf: 1,
                found: "Edge",
                ..
            }
        ));
        let two: Vec<u64> = w
            .atoms
            .iter()
            .map(|a| w.index_of(&a.encode()))
            .take(2)
            .collect();
        assert_eq!(
            err_of(&bundle_with(&w, &two, |_| {})),
            E::SecondEvent { leaf: 1 }
        );
        let actor = w.index_of(&w.actors[0].encode());
        assert_eq!(err_of(&bundle_with(&w, &[actor], |_| {})), E::NoEvent);

        // Event times outside the window, or lateness that disagrees with the time.
        for (t_ns, flags, why) in [
            (SECOND as i64, 0, "after its window's end"),
            (-5, 0, "not flagged late"),
            (5, atom_flags::LATE, "lies before its window's start"),
            (-5, atom_flags::LATE, "counts no late events"),
        ] {
            let mut w = window();
            w.atoms[0].t_ns = t_ns;
            w.atoms[0].flags = flags;
            let b = bundle_with(&w, &[w.index_of(&w.atoms[0].encode())], |_| {});
            match err_of(&b) {
                E::EventTime { why: w, .. } => assert!(w.contains(why), "{w}"),
                e => panic!("{e}"),
            }
        }
        let mut w = window();
        w.atoms[0].t_ns = -5;
        w.atoms[0].flags = atom_flags::LATE;
        let b = bundle_with(&w, &[w.index_of(&w.atoms[0].encode())], |r| {
            r.late_events = 1
        });
        assert_eq!(
            b.verify(None).unwrap().time_ns(),
            (WINDOW * SECOND) as i128 - 5
        );

        // A dictionary entry whose id is not its value's.
        let mut w = window();
        let forged = DictEntry {
            value: b"/usr/bin/dog".to_vec(),
            ..path("/usr/bin/cat")
        };
        let at = w.dict.iter().position(|d| d.id == forged.id).unwrap();
        w.dict[at] = forged.clone();
        let b = bundle_with(
            &w,
            &[
                w.index_of(&forged.encode()),
                w.index_of(&w.atoms[1].encode()),
            ],
            |_| {},
        );
        assert_eq!(err_of(&b), E::DictId { leaf: 0 });
    }

    #[test]
    fn decoding_is_strict() {
        let g = genuine().encode();
        // Unknown version, another record's type, trailing bytes, and an empty list.
        let mut v = g.clone();
        v[2] = 2;
        assert!(matches!(
            ProofBundle::decode(&v).unwrap_err().kind,
            DecodeErrorKind::UnknownVersion { .. }
        ));
        let w = window();
        let record = w.record([0; 32]).encode();
        let e = ProofBundle::decode(&record).unwrap_err();
        assert_eq!(
            (e.record, e.kind),
            (
                "ProofBundle",
                DecodeErrorKind::WrongRecordType {
                    expected: 19,
                    found: 6
                }
            )
        );
        let mut v = g.clone();
        v.push(0);
        assert!(matches!(
            ProofBundle::decode(&v).unwrap_err().kind,
            DecodeErrorKind::TrailingBytes { count: 1 }
        ));
        let mut b = genuine();
        b.signers.clear();
        assert_eq!(
            ProofBundle::decode(&b.encode()).unwrap_err().field,
            "signers"
        );
        let mut b = genuine();
        b.leaves.swap(0, 1);
        assert_eq!(
            ProofBundle::decode(&b.encode()).unwrap_err().kind,
            DecodeErrorKind::NotAscending
        );
    }

    #[test]
    fn every_single_byte_change_is_refused() {
        let g = genuine().encode();
        for i in 0..g.len() {
            for mask in [0x01u8, 0x80, 0xff] {
                let mut v = g.clone();
                v[i] ^= mask;
                assert!(
                    ProofBundle::verify_bytes(&v, None).is_err(),
                    "byte {i} ^ {mask:#x} accepted"
                );
            }
        }
    }

    /// FORMAT.md §11's worked example: node `web-1` with the example key of §4.2, a
    /// window of two leaves (the §2.2 dictionary entry and an open of it), leaf 0 of a
    /// node log signed at size 1 and extended to size 2.
    fn format_example() -> String {
        let s = NoteSigner::from_seed("ritma/web-1", [7; 32]).unwrap();
        let passwd = path("/etc/passwd");
        let atom = EventAtom {
            seq: 1_000_000,
            t_ns: 250_000_000,
            event_type: EventType::Open,
            actor: crate::records::ActorRecord::id_of(
                NODE,
                &std::array::from_fn(|i| i as u8),
                1234,
                5 * SECOND,
            ),
            object: passwd.id,
            flags: atom_flags::READ,
            arg_hash: None,
            payload_ref: None,
            given: Vec::new(),
        };
        let leaves = [passwd.encode(), atom.encode()];
        let hashes: Vec<Hash32> = leaves.iter().map(|l| Blake3Tree::leaf(l)).collect();
        let record = WindowRecord {
            node: NODE.into(),
            window: 1_763_884_800,
            window_len_ns: SECOND,
            first_seq: 1_000_000,
            event_count: 1,
            dict_count: 1,
            actor_count: 0,
            edge_count: 0,
            cone_count: 0,
            health_count: 0,
            lost: Vec::new(),
            late_events: 0,
            capture_mode: CaptureMode::Thin,
            cone_lib_version: 1,
            window_root: root::<Blake3Tree>(&hashes),
            state: None,
        };
        let next = WindowRecord {
            window: record.window + 1,
            first_seq: 1_000_001,
            event_count: 0,
            dict_count: 0,
            window_root: blake3(b""),
            state: None,
            ..record.clone()
        };
        let log = [record.encode(), next.encode()];
        let log_hashes: Vec<Hash32> = log.iter().map(|l| Blake3Tree::leaf(l)).collect();
        let note = |size: usize| {
            Checkpoint::for_node(NODE, size as u64, root::<Blake3Tree>(&log_hashes[..size]))
                .unwrap()
                .sign(&s)
                .unwrap()
        };
        let b = ProofBundle::assemble(BundleParts {
            window_record: &log[0],
            window_leaf_hashes: &hashes,
            leaves: vec![(0, leaves[0].clone()), (1, leaves[1].clone())],
            log: &SparseLog::from_leaves(&log_hashes),
            log_index: 0,
            checkpoint: note(1),
            extension: Some(note(2)),
            key_events: vec![anchor_event(&s)],
        })
        .unwrap();
        let bytes = b.encode();
        b.verify(Some(&s.verifier())).unwrap();
        let hex = |b: &[u8]| b.iter().map(|x| format!("{x:02x}")).collect::<String>();
        let wrapped = |b: &[u8]| {
            hex(b)
                .as_bytes()
                .chunks(64)
                .map(|c| std::str::from_utf8(c).unwrap().to_owned())
                .collect::<Vec<_>>()
                .join("\n")
        };
        let indent = |t: &str| {
            t.lines()
                .map(|l| match l {
                    "" => String::new(),
                    l => format!("  {l}"),
                })
                .collect::<Vec<_>>()
                .join("\n")
        };
        format!(
            "window record (leaf 0 of the node log)\n{}\nleaf 0, DictEntry, path {}\nleaf 1, EventAtom, path {}\ncheckpoint\n{}\nextension checkpoint, consistency {}\n{}\nsigner {}\nbundle ({} bytes)\n{}",
            wrapped(&log[0]),
            hex(&b.leaves[0].path[0]),
            hex(&b.leaves[1].path[0]),
            indent(&b.checkpoint),
            hex(&b.extension.as_ref().unwrap().consistency[0]),
            indent(&b.extension.as_ref().unwrap().checkpoint),
            b.signers[0],
            bytes.len(),
            wrapped(&bytes)
        )
    }

    #[test]
    fn the_format_example_is_current() {
        let doc = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/FORMAT.md");
        let examples = [("bundle".to_owned(), format_example())]
            .into_iter()
            .collect();
        crate::format_doc::check_examples(&doc, "proof_bundle", &examples);
    }

    proptest::proptest! {
        #[test]
        fn bundles_round_trip(
            window_record in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..64),
            leaves in proptest::collection::vec(
                (proptest::collection::vec(proptest::prelude::any::<u8>(), 0..64), 0..4usize),
                1..MAX_BUNDLE_LEAVES,
            ),
            log_index: u64,
            path_len in 0..MAX_PATH_HASHES,
            checkpoint in "\\PC{0,80}",
            extension in proptest::option::of(("\\PC{0,80}", 0..MAX_CONSISTENCY_HASHES)),
            key_events in proptest::collection::vec(proptest::collection::vec(proptest::prelude::any::<u8>(), 0..40), 1..4),
            signers in proptest::collection::vec("\\PC{0,40}", 1..=MAX_SIGNERS),
            fill: u8,
        ) {
            let b = ProofBundle {
                window_record,
                leaves: leaves
                    .into_iter()
                    .enumerate()
                    .map(|(i, (bytes, n))| ProvenLeaf {
                        index: i as u64 * 7,
                        bytes,
                        path: vec![[fill; 32]; n],
                    })
                    .collect(),
                log_index,
                log_path: vec![[fill ^ 1; 32]; path_len],
                checkpoint,
                extension: extension.map(|(checkpoint, n)| LogExtension {
                    checkpoint,
                    consistency: vec![[fill ^ 2; 32]; n],
                }),
                key_events,
                signers,
            };
            let bytes = b.encode();
            proptest::prop_assert_eq!(ProofBundle::decode(&bytes).unwrap(), b);
        }

        #[test]
        fn arbitrary_and_mutated_bytes_never_panic_and_never_verify(
            bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..512),
            edits in proptest::collection::vec((proptest::prelude::any::<proptest::sample::Index>(), proptest::prelude::any::<u8>()), 1..6),
        ) {
            if let Ok(b) = ProofBundle::decode(&bytes) {
                proptest::prop_assert_eq!(b.encode(), bytes.clone());
            }
            proptest::prop_assert!(ProofBundle::verify_bytes(&bytes, None).is_err());
            let mut g = genuine().encode();
            let original = g.clone();
            for (at, v) in edits {
                let i = at.index(g.len());
                g[i] = v;
            }
            match ProofBundle::decode(&g) {
                Ok(b) => proptest::prop_assert_eq!(b.encode(), g.clone()),
                Err(e) => proptest::prop_assert_ne!(e.kind, DecodeErrorKind::NotCanonical),
            }
            if g != original {
                proptest::prop_assert!(ProofBundle::verify_bytes(&g, None).is_err());
            }
        }
    }
}
