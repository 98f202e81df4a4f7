//! window-merkle: all records of a window → the window tree, its `WindowRecord`,
//! and a signed checkpoint of the node log after appending that record
//! (FORMAT.md §2.3, §3.6, §4). Canonical order inside a window is fixed by the
//! data — dictionary entries by id, actors by id, atoms by seq, edges by key, cone
//! instances by (cone, start, first seq), health records by (time, kind, subject) —
//! never by arrival or worker.

use ritma_schemas::merkle::{Blake3Tree, Frontier, TreeHash};
use ritma_schemas::note::{Checkpoint, NoteError, NoteSigner};
use ritma_schemas::records::{
    ActorRecord, CaptureMode, ConeInstance, DictEntry, Edge, EventAtom, HealthRecord, LossReason,
    Record, WindowRecord,
};
use ritma_schemas::Hash32;

/// Everything sealed in one window, in any order.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct WindowContents {
    pub dict: Vec<DictEntry>,
    pub actors: Vec<ActorRecord>,
    pub atoms: Vec<EventAtom>,
    pub edges: Vec<Edge>,
    pub cones: Vec<ConeInstance>,
    /// Sensor health observations; sealed with this window's node and number.
    pub health: Vec<HealthRecord>,
    /// Lost events by reason (any order, may repeat a reason).
    pub lost: Vec<(LossReason, u64)>,
    pub late_events: u64,
    /// The digest of the dataflow state saved after the previous window (its hour's
    /// last), when one was (FORMAT.md §3.15).
    pub state: Option<Hash32>,
}

/// A sealed window: what the store writes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SealedWindow {
    pub record: WindowRecord,
    /// The encoded WindowRecord: the node log's leaf.
    pub record_bytes: Vec<u8>,
    /// The window's records, encoded, in canonical (leaf) order.
    pub leaves: Vec<Vec<u8>>,
    /// Node-log size and root after this window.
    pub log_size: u64,
    pub log_root: Hash32,
    /// The signed checkpoint (signed-note text) of the node log at `log_size`.
    pub checkpoint: String,
    /// The window's atoms, edges and cone instances in canonical order (for the index).
    pub atoms: Vec<EventAtom>,
    pub edges: Vec<Edge>,
    pub cones: Vec<ConeInstance>,
    /// The window's health records in canonical order (copied to `_meta/health/`).
    pub health: Vec<HealthRecord>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SealError {
    #[error("window {got} sealed out of order: the node log continues at window {expected}")]
    OutOfOrder { expected: u64, got: u64 },
    #[error("window {window}: event seq {seq} appears twice")]
    DuplicateSeq { window: u64, seq: u64 },
    #[error("window {window}: two dictionary entries with id {id} differ")]
    DictConflict { window: u64, id: String },
    #[error("signing the checkpoint: {0}")]
    Sign(#[from] NoteError),
}

/// The canonical edge order: by key `kind ‖ src ‖ dst` (FORMAT.md §3.4), compared
/// field by field instead of building two 33-byte keys per comparison.
fn edge_key_order(a: &Edge, b: &Edge) -> std::cmp::Ordering {
    (a.kind as u8, &a.src, &a.dst).cmp(&(b.kind as u8, &b.src, &b.dst))
}

/// The canonical order of health records: time, kind, subject, then the count (an
/// uncounted gap first).
pub fn health_key(h: &HealthRecord) -> (u64, u8, &str, Option<u64>) {
    (h.t_wall_ns, h.kind as u8, &h.subject, h.lost)
}

/// Encodes a window's leaves in order and hashes each into the window tree as it goes.
struct LeafWriter {
    leaves: Vec<Vec<u8>>,
    tree: Frontier,
    /// One reused encoding buffer: each leaf is then allocated at its exact size.
    scratch: Vec<u8>,
}

impl LeafWriter {
    fn with_capacity(n: usize) -> Self {
        LeafWriter {
            leaves: Vec::with_capacity(n),
            tree: Frontier::new(),
            scratch: Vec::with_capacity(256),
        }
    }

    fn push<R: Record>(&mut self, record: &R) {
        self.scratch.clear();
        record.encode_into(&mut self.scratch);
        self.tree.push_data::<Blake3Tree>(&self.scratch);
        self.leaves.push(self.scratch.clone());
    }
}

/// One node's append-only log of windows, with its signing key.
pub struct NodeLog {
    node: String,
    window_len_ns: u64,
    cone_lib_version: u32,
    frontier: Frontier,
    /// The next window to seal; `None` before the first.
    next_window: Option<u64>,
    /// The seq after the highest seen so far (first_seq of an empty window).
    next_seq: u64,
    signer: NoteSigner,
}

impl NodeLog {
    pub fn new(node: &str, window_len_ns: u64, cone_lib_version: u32, signer: NoteSigner) -> Self {
        NodeLog {
            node: node.to_owned(),
            window_len_ns,
            cone_lib_version,
            frontier: Frontier::new(),
            next_window: None,
            next_seq: 0,
            signer,
        }
    }

    pub fn next_window(&self) -> Option<u64> {
        self.next_window
    }

    pub fn frontier(&self) -> &Frontier {
        &self.frontier
    }

    /// The seq after the highest sealed (the first seq of a window without events).
    pub fn next_seq(&self) -> u64 {
        self.next_seq
    }

    /// Continues a log saved after window `next_window - 1`: its frontier and next seq.
    pub fn restore(&mut self, frontier: Frontier, next_window: u64, next_seq: u64) {
        self.frontier = frontier;
        self.next_window = Some(next_window);
        self.next_seq = next_seq;
    }

    /// Leaves out `window`, the next one, which a downtime gives no record (FORMAT.md §7.2).
    pub fn leave_out(&mut self, window: u64) -> Result<(), SealError> {
        match self.next_window {
            Some(expected) if window != expected => Err(SealError::OutOfOrder {
                expected,
                got: window,
            }),
            _ => {
                self.next_window = Some(window + 1);
                Ok(())
            }
        }
    }

    /// Seals `window`. Windows must be sealed consecutively (or left out); seal empty
    /// contents for a window without events so the log has no gaps.
    pub fn seal(
        &mut self,
        window: u64,
        mode: CaptureMode,
        mut c: WindowContents,
    ) -> Result<SealedWindow, SealError> {
        if let Some(expected) = self.next_window {
            if window != expected {
                return Err(SealError::OutOfOrder {
                    expected,
                    got: window,
                });
            }
        }
        // Equal ids are equal entries or a conflict, so an unstable sort loses nothing.
        c.dict.sort_unstable_by_key(|d| d.id);
        let mut dup = None;
        c.dict.dedup_by(|b, a| {
            if a.id == b.id && a != b {
                dup = Some(a.id);
            }
            a.id == b.id
        });
        if let Some(id) = dup {
            return Err(SealError::DictConflict {
                window,
                id: id.iter().map(|b| format!("{b:02x}")).collect(),
            });
        }
        // One shard's records arrive sorted; a sort would still allocate its scratch.
        if !c.actors.is_sorted_by_key(|a| a.actor) {
            c.actors.sort_by_key(|a| a.actor);
        }
        c.actors.dedup();
        // Seqs are unique (a repeat is refused below), so an in-place sort is exact.
        if !c.atoms.is_sorted_by_key(|a| a.seq) {
            c.atoms.sort_unstable_by_key(|a| a.seq);
        }
        if let Some(w) = c.atoms.windows(2).find(|w| w[0].seq == w[1].seq) {
            return Err(SealError::DuplicateSeq {
                window,
                seq: w[0].seq,
            });
        }
        // Parts of one edge merge by OR, min, max and sum: their order does not matter.
        if !c.edges.is_sorted_by(|a, b| edge_key_order(a, b).is_le()) {
            c.edges.sort_unstable_by(edge_key_order);
        }
        // Shards may each hold part of one edge (a file renamed by two actors): merge them.
        c.edges.dedup_by(|later, kept| {
            if later.key() != kept.key() {
                return false;
            }
            kept.flags |= later.flags;
            kept.first_t_ns = kept.first_t_ns.min(later.first_t_ns);
            kept.last_t_ns = kept.last_t_ns.max(later.last_t_ns);
            kept.count += later.count;
            true
        });
        c.cones.sort_by(|a, b| {
            (&a.cone_id, a.t_start_ns, a.first_seq).cmp(&(&b.cone_id, b.t_start_ns, b.first_seq))
        });
        for h in &mut c.health {
            h.node.clone_from(&self.node);
            h.window = window;
        }
        c.health.sort_by(|a, b| health_key(a).cmp(&health_key(b)));
        c.health.dedup();
        // A counted probe gap is the window's probe_detached loss.
        let probe_lost: u64 = c.health.iter().map(HealthRecord::probe_lost).sum();
        c.lost.retain(|(r, _)| *r != LossReason::ProbeDetached);
        c.lost.push((LossReason::ProbeDetached, probe_lost));
        c.lost.sort();
        let mut lost: Vec<(LossReason, u64)> = Vec::new();
        for (reason, n) in c.lost.into_iter().filter(|(_, n)| *n > 0) {
            match lost.last_mut() {
                Some((r, total)) if *r == reason => *total += n,
                _ => lost.push((reason, n)),
            }
        }

        let mut leaves = LeafWriter::with_capacity(
            c.dict.len()
                + c.actors.len()
                + c.atoms.len()
                + c.edges.len()
                + c.cones.len()
                + c.health.len(),
        );
        c.dict.iter().for_each(|r| leaves.push(r));
        c.actors.iter().for_each(|r| leaves.push(r));
        c.atoms.iter().for_each(|r| leaves.push(r));
        c.edges.iter().for_each(|r| leaves.push(r));
        c.cones.iter().for_each(|r| leaves.push(r));
        c.health.iter().for_each(|r| leaves.push(r));
        let LeafWriter { leaves, tree, .. } = leaves;

        let first_seq = c.atoms.first().map_or(self.next_seq, |a| a.seq);
        if let Some(last) = c.atoms.last() {
            self.next_seq = self.next_seq.max(last.seq + 1);
        }
        let record = WindowRecord {
            node: self.node.clone(),
            window,
            window_len_ns: self.window_len_ns,
            first_seq,
            event_count: c.atoms.len() as u64,
            dict_count: c.dict.len() as u64,
            actor_count: c.actors.len() as u64,
            edge_count: c.edges.len() as u64,
            cone_count: c.cones.len() as u64,
            health_count: c.health.len() as u64,
            lost,
            late_events: c.late_events,
            capture_mode: mode,
            cone_lib_version: self.cone_lib_version,
            window_root: tree.root::<Blake3Tree>(),
            state: c.state,
        };
        let record_bytes = record.encode();
        let mut log = self.frontier.clone();
        log.push::<Blake3Tree>(Blake3Tree::leaf(&record_bytes));
        let log_root = log.root::<Blake3Tree>();
        let checkpoint =
            Checkpoint::for_node(&self.node, log.size(), log_root)?.sign(&self.signer)?;
        // Only a signed checkpoint advances the log: a failure above leaves it as it was.
        self.frontier = log;
        self.next_window = Some(window + 1);
        Ok(SealedWindow {
            record,
            record_bytes,
            leaves,
            log_size: self.frontier.size(),
            log_root,
            checkpoint,
            atoms: c.atoms,
            edges: c.edges,
            cones: c.cones,
            health: c.health,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ritma_schemas::keys::{sign_key_event, KeyHistory};
    use ritma_schemas::merkle::{inclusion_proof, root, verify_inclusion};
    use ritma_schemas::records::{DictKind, EdgeKind, EventType, KeyEvent, KeyEventKind};

    fn signer() -> NoteSigner {
        NoteSigner::from_seed("ritma/n1", [3; 32]).unwrap()
    }

    fn atom(seq: u64) -> EventAtom {
        EventAtom {
            seq,
            t_ns: seq as i64,
            event_type: EventType::Open,
            actor: [1; 16],
            object: DictEntry::id_of(DictKind::Path, format!("/f{}", seq % 3).as_bytes()),
            flags: 2,
            arg_hash: None,
            payload_ref: None,
            given: Vec::new(),
        }
    }

    fn contents(seqs: impl Iterator<Item = u64>) -> WindowContents {
        let mut c = WindowContents::default();
        for s in seqs {
            c.atoms.push(atom(s));
            c.dict.push(DictEntry::new(
                DictKind::Path,
                format!("/f{}", s % 3).as_bytes(),
            ));
            c.edges.push(Edge {
                kind: EdgeKind::ProcToFile,
                src: [1; 16],
                dst: atom(s).object,
                flags: 1,
                first_t_ns: 0,
                last_t_ns: 0,
                count: 1,
            });
        }
        c.lost = vec![
            (LossReason::QueueShed, 2),
            (LossReason::KernelRingbufFull, 1),
            (LossReason::QueueShed, 3),
        ];
        c
    }

    #[test]
    fn sealing_is_independent_of_input_order() {
        let mut a = NodeLog::new("n1", 1_000_000_000, 1, signer());
        let mut b = NodeLog::new("n1", 1_000_000_000, 1, signer());
        let sa = a.seal(10, CaptureMode::Thin, contents(0..20)).unwrap();
        let sb = b
            .seal(10, CaptureMode::Thin, contents((0..20).rev()))
            .unwrap();
        assert_eq!(sa, sb);
        assert_eq!(sa.record.dict_count, 3);
        assert_eq!(
            sa.record.lost,
            vec![
                (LossReason::KernelRingbufFull, 1),
                (LossReason::QueueShed, 5)
            ]
        );
        // The window root is the tree over the encoded leaves, and each leaf is provable.
        let hashes: Vec<_> = sa.leaves.iter().map(|l| Blake3Tree::leaf(l)).collect();
        assert_eq!(root::<Blake3Tree>(&hashes), sa.record.window_root);
        let p = inclusion_proof::<Blake3Tree, _>(&hashes[..], 5).unwrap();
        verify_inclusion::<Blake3Tree>(
            5,
            hashes.len() as u64,
            &hashes[5],
            &p,
            &sa.record.window_root,
        )
        .unwrap();
    }

    #[test]
    fn every_window_gets_a_checkpoint_the_key_history_accepts() {
        let s = signer();
        let mut history = KeyHistory::new("n1").unwrap();
        let add = KeyEvent {
            node: "n1".into(),
            kind: KeyEventKind::Add,
            public_key: s.verifier().public_key(),
            log_size: 0,
            previous_key: None,
        };
        history.apply(&sign_key_event(&add, &s)).unwrap();
        let mut log = NodeLog::new("n1", 1_000_000_000, 1, s);
        let mut leaves = Vec::new();
        for (i, w) in (100..105u64).enumerate() {
            let c = if w == 102 {
                WindowContents::default()
            } else {
                contents(i as u64 * 10..i as u64 * 10 + 10)
            };
            let sealed = log.seal(w, CaptureMode::Thin, c).unwrap();
            leaves.push(Blake3Tree::leaf(&sealed.record_bytes));
            let cp = history.verify_checkpoint(&sealed.checkpoint).unwrap();
            assert_eq!(
                (cp.size, cp.root),
                (i as u64 + 1, root::<Blake3Tree>(&leaves))
            );
            if w == 102 {
                // An empty window continues the seq where the last one ended.
                assert_eq!(
                    (sealed.record.event_count, sealed.record.first_seq),
                    (0, 20)
                );
                assert_eq!(sealed.record.window_root, Blake3Tree::empty());
            }
        }
        assert_eq!(
            log.seal(200, CaptureMode::Thin, WindowContents::default()),
            Err(SealError::OutOfOrder {
                expected: 105,
                got: 200
            })
        );
    }

    #[test]
    fn parts_of_one_edge_from_several_shards_are_merged() {
        let mut log = NodeLog::new("n1", 1_000_000_000, 1, signer());
        let e = |flags, t, count| Edge {
            kind: EdgeKind::FileToFile,
            src: [1; 16],
            dst: [2; 16],
            flags,
            first_t_ns: t,
            last_t_ns: t,
            count,
        };
        let c = WindowContents {
            edges: vec![e(1, 50, 2), e(2, 10, 1)],
            ..WindowContents::default()
        };
        let sealed = log.seal(1, CaptureMode::Thin, c).unwrap();
        assert_eq!(sealed.record.edge_count, 1);
        let merged = Edge::decode(&sealed.leaves[0]).unwrap();
        assert_eq!(
            (
                merged.flags,
                merged.first_t_ns,
                merged.last_t_ns,
                merged.count
            ),
            (3, 10, 50, 3)
        );
    }

    #[test]
    fn duplicate_seqs_and_conflicting_dictionary_entries_are_refused() {
        let mut log = NodeLog::new("n1", 1_000_000_000, 1, signer());
        let mut c = contents(0..3);
        c.atoms.push(atom(1));
        assert_eq!(
            log.seal(1, CaptureMode::Thin, c),
            Err(SealError::DuplicateSeq { window: 1, seq: 1 })
        );
        let mut c = contents(0..3);
        let mut bad = c.dict[0].clone();
        bad.value.push(b'!');
        c.dict.push(bad);
        assert!(matches!(
            log.seal(1, CaptureMode::Thin, c),
            Err(SealError::DictConflict { .. })
        ));
        // A refused window leaves the log unchanged.
        assert_eq!(log.frontier().size(), 0);
        assert!(log.seal(1, CaptureMode::Thin, contents(0..3)).is_ok());
    }
}
