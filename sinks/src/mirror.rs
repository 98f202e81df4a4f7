//! The receiving end of shipping (FORMAT.md §12.4): envelopes from many nodes rebuilt
//! into `OUT/nodes/<node>/`, byte for byte the node's own tree (but `wal/`, the private
//! key and the shipping cursors), each checked before a byte of it is applied: strict
//! decoding, the window's roots, its checkpoint's signature by the node key pinned in
//! the trust directory (or one the pinned key's history adds), the node log extended
//! leaf by leaf from the last accepted checkpoint, and the hour seals. What fails goes
//! to `OUT/quarantine/<node>/` with its reason; equivocation, rollback and gaps raise an
//! alarm in `OUT/alarms/<node>/` and hold the node's later envelopes.
//!
//! Several receivers may share `OUT` (processes of one consumer group): each node is
//! applied under a lock file, and its state is read from disk under it.

use crate::catalog::{self, catalog_path, hour_dir};
use crate::store::{
    io, read_capped, replace_file, sync_dir, write_atomic, AtomicBatch, StoreError, WindowPaths,
};
use crate::verify::{
    check_payloads, check_window_blocks, node_key_history, BlockSource, CheckedWindow, SeqSet,
    VerifyError,
};
use ritma_schemas::cas_manifest::{CasManifest, MAX_CHUNK_LEN};
use ritma_schemas::catalog::{DayCatalog, HourState, HOURS_PER_DAY, MAX_DAY_LEN};
use ritma_schemas::hash::Hash32;
use ritma_schemas::keys::KeyHistory;
use ritma_schemas::merkle::{verify_consistency, Blake3Tree, Frontier, TreeHash};
use ritma_schemas::note::{Checkpoint, NoteVerifier};
use ritma_schemas::records::{
    windows_per_hour, HourSeal, PrevHour, Record, StoreMeta, WindowRecord,
};
use ritma_schemas::ship::{ShipEnvelope, ShipFile, ShipKind};
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

/// Why an envelope was not applied.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Reason {
    /// Parts that do not join, an envelope or a file that does not decode, files that
    /// are not the layout's.
    Decode,
    /// A node no pinned key names.
    Untrusted,
    /// A checkpoint or key history that the pinned key does not sign.
    Signature,
    /// Roots, counts or a seal that do not match the files.
    Root,
    /// An envelope already applied, sent again.
    Replay,
    /// Held: the node has an open alarm.
    Held,
    /// Alarms: two different signed checkpoints of one size; an envelope from earlier in
    /// the node's stream that differs from the one applied; envelopes missing.
    Equivocation,
    Rollback,
    Gap,
}

impl Reason {
    pub fn is_alarm(self) -> bool {
        matches!(self, Reason::Equivocation | Reason::Rollback | Reason::Gap)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Decode => "decode",
            Reason::Untrusted => "untrusted",
            Reason::Signature => "signature",
            Reason::Root => "root",
            Reason::Replay => "replay",
            Reason::Held => "held",
            Reason::Equivocation => "equivocation",
            Reason::Rollback => "rollback",
            Reason::Gap => "gap",
        }
    }
}

/// What became of one envelope.
#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Applied; for a window, its checkpoint note (which a witness may cosign).
    Applied { checkpoint: Option<String> },
    /// Already applied from this very message (a redelivery after a restart or a
    /// rebalance): nothing to do.
    Redelivered,
    /// Not applied, kept under `quarantine/`.
    Quarantined { reason: Reason, detail: String },
}

/// Where a message came from, so a redelivery is told from a new message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Origin {
    pub partition: i32,
    pub offset: i64,
}

/// A node's receiving state, `OUT/ingest/nodes/<node>.json`.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
struct NodeState {
    next_seq: u64,
    next_window: Option<u64>,
    /// Windows left out (a downtime, FORMAT.md §7.2) that no window holding a restart has
    /// accounted for yet.
    #[serde(default)]
    left_out: Option<(u64, u64)>,
    /// The node log after the last accepted window.
    log_size: u64,
    log_nodes: Vec<String>,
    /// The node's first window in the hour of `next_window`.
    hour_first: Option<u64>,
    prev_hour: Option<(u64, u64, String)>,
    /// The last message applied per partition.
    offsets: Vec<(i32, i64)>,
    /// The open alarm holding the node's envelopes.
    held_by: Option<String>,
}

impl NodeState {
    fn frontier(&self) -> Option<Frontier> {
        let nodes = self
            .log_nodes
            .iter()
            .map(|h| crate::cas::parse_hex::<32>(h.as_bytes()))
            .collect::<Option<Vec<_>>>()?;
        Frontier::from_parts(self.log_size, nodes)
    }

    fn set_frontier(&mut self, f: &Frontier) {
        self.log_size = f.size();
        self.log_nodes = f.nodes().iter().map(crate::cas::hex).collect();
    }

    fn prev_hour(&self) -> Option<PrevHour> {
        let (hour, log_size, root) = self.prev_hour.as_ref()?;
        Some(PrevHour {
            hour: *hour,
            log_size: *log_size,
            log_root: crate::cas::parse_hex::<32>(root.as_bytes())?,
        })
    }

    fn seen(&self, o: Origin) -> bool {
        self.offsets
            .iter()
            .any(|&(p, off)| p == o.partition && off >= o.offset)
    }

    fn mark(&mut self, o: Origin) {
        match self.offsets.iter_mut().find(|(p, _)| *p == o.partition) {
            Some(e) => e.1 = e.1.max(o.offset),
            None => self.offsets.push((o.partition, o.offset)),
        }
    }
}

/// An I/O failure of the receiver itself (its disk, not the envelope): the message is
/// not acknowledged and comes again.
#[derive(Debug, thiserror::Error)]
pub enum MirrorError {
    #[error(transparent)]
    Store(#[from] Box<StoreError>),
    #[error("{path}: {detail}")]
    State { path: PathBuf, detail: String },
}

impl From<StoreError> for MirrorError {
    fn from(e: StoreError) -> Self {
        MirrorError::Store(Box::new(e))
    }
}

/// An envelope whose blocks, for a window, were checked against its record ahead of its
/// turn ([`Mirror::precheck`]): the costliest check, and one that needs no node state.
pub struct Prechecked {
    env: ShipEnvelope,
    blocks: Option<(WindowRecord, Result<CheckedWindow, VerifyError>)>,
}

impl Prechecked {
    pub fn envelope(&self) -> &ShipEnvelope {
        &self.env
    }
}

/// A check that failed: its reason and what it says.
struct Refused(Reason, String);

impl From<VerifyError> for Refused {
    fn from(e: VerifyError) -> Self {
        let reason = match e.code {
            "E_SIGNATURE" | "E_KEYS" => Reason::Signature,
            "E_DECODE" | "E_LAYOUT" | "E_MISSING" | "E_EXTRA" | "E_IO" => Reason::Decode,
            _ => Reason::Root,
        };
        Refused(reason, e.to_string())
    }
}

fn refused(reason: Reason, detail: impl Into<String>) -> Refused {
    Refused(reason, detail.into())
}

/// The receiving store `OUT`.
pub struct Mirror {
    out: PathBuf,
    trust: Vec<NoteVerifier>,
}

impl Mirror {
    /// `OUT`, receiving the nodes whose keys `trust` pins (by name `ritma/<node>`).
    pub fn open(out: &Path, trust: Vec<NoteVerifier>) -> Result<Self, MirrorError> {
        for dir in ["nodes", "ingest/nodes", "ingest/locks", "ingest/staging"] {
            let d = out.join(dir);
            fs::create_dir_all(&d).map_err(io(&d))?;
        }
        Ok(Mirror {
            out: out.to_owned(),
            trust,
        })
    }

    /// The node tree of `node`.
    pub fn node_root(&self, node: &str) -> PathBuf {
        self.out.join("nodes").join(node)
    }

    /// Applies one envelope that arrived as the message at `origin`, or quarantines it.
    pub fn apply(&self, env: &ShipEnvelope, origin: Origin) -> Result<Outcome, MirrorError> {
        self.apply_with(env, origin, None)
    }

    /// Checks a window envelope's blocks against its record, on any thread and before its
    /// turn, for [`Mirror::apply_prechecked`]. Other envelopes, and those whose record
    /// cannot be read, are checked when applied (which says why, in its order of checks).
    pub fn precheck(&self, env: ShipEnvelope) -> Prechecked {
        let blocks = self.check_blocks_ahead(&env);
        Prechecked { env, blocks }
    }

    /// [`Mirror::apply`] of a prechecked envelope.
    pub fn apply_prechecked(
        &self,
        pre: Prechecked,
        origin: Origin,
    ) -> Result<Outcome, MirrorError> {
        self.apply_with(&pre.env, origin, pre.blocks)
    }

    fn check_blocks_ahead(
        &self,
        env: &ShipEnvelope,
    ) -> Option<(WindowRecord, Result<CheckedWindow, VerifyError>)> {
        if env.kind != ShipKind::Window {
            return None;
        }
        let (setup, files) = split_setup(&env.files);
        let window_len = match setup.iter().find(|f| f.path == "_meta/store.cbor") {
            Some(f) => StoreMeta::decode(&f.bytes).ok()?.window_len_ns,
            None => window_len(&self.node_root(&env.node)).ok()?,
        };
        let p = WindowPaths::new(env.unit, window_len);
        let record_path = p.record().to_string_lossy().into_owned();
        let record_file = files.iter().find(|f| f.path == record_path)?;
        let record = WindowRecord::decode(&record_file.bytes).ok()?;
        if record.window != env.unit || record.window_len_ns != window_len {
            return None;
        }
        let blocks = check_blocks(&self.node_root(&env.node), &env.node, &files, &p, &record);
        Some((record, blocks))
    }

    /// Applies `env`, with `pre` its blocks checked ahead (for the record it read).
    fn apply_with(
        &self,
        env: &ShipEnvelope,
        origin: Origin,
        pre: Option<(WindowRecord, Result<CheckedWindow, VerifyError>)>,
    ) -> Result<Outcome, MirrorError> {
        let _lock = NodeLock::acquire(
            &self
                .out
                .join("ingest/locks")
                .join(format!("{}.lock", env.node)),
        )?;
        let state_path = self
            .out
            .join("ingest/nodes")
            .join(format!("{}.json", env.node));
        let mut state = read_state(&state_path)?;
        if state.seen(origin) {
            return Ok(Outcome::Redelivered);
        }
        let outcome = match self.check_and_apply(env, &mut state, pre) {
            Ok(checkpoint) => Outcome::Applied { checkpoint },
            Err(Refused(reason, detail)) => {
                self.quarantine(env, origin, reason, &detail)?;
                if reason.is_alarm() {
                    state.held_by = Some(format!(
                        "{} alarm at envelope {}: {detail}",
                        reason.as_str(),
                        env.stream_seq
                    ));
                }
                Outcome::Quarantined { reason, detail }
            }
        };
        state.mark(origin);
        write_state(&state_path, &state)?;
        Ok(outcome)
    }

    /// Keeps a message that is not an envelope (parts that do not join) in quarantine.
    pub fn quarantine_message(
        &self,
        node: &str,
        origin: Origin,
        bytes: &[u8],
        detail: &str,
    ) -> Result<(), MirrorError> {
        let node = match ritma_schemas::records::is_valid_node_name(node) {
            true => node,
            false => "_unknown",
        };
        let dir = self.out.join("quarantine").join(node);
        let stem = format!("p{}-o{}", origin.partition, origin.offset);
        self.keep(&dir, &stem, bytes, Reason::Decode, None, detail)
    }

    fn quarantine(
        &self,
        env: &ShipEnvelope,
        origin: Origin,
        reason: Reason,
        detail: &str,
    ) -> Result<(), MirrorError> {
        let dir = self.out.join("quarantine").join(&env.node);
        let stem = format!(
            "s{}-p{}-o{}",
            env.stream_seq, origin.partition, origin.offset
        );
        self.keep(&dir, &stem, &env.encode(), reason, Some(env), detail)?;
        if reason.is_alarm() {
            let dir = self.out.join("alarms").join(&env.node);
            fs::create_dir_all(&dir).map_err(io(&dir))?;
            let alarm = serde_json::json!({
                "alarm": reason.as_str(),
                "node": env.node,
                "stream_seq": env.stream_seq,
                "kind": kind_name(env.kind),
                "unit": env.unit,
                "partition": origin.partition,
                "offset": origin.offset,
                "detail": detail,
            });
            let path = dir.join(format!("{stem}.json"));
            replace_file(&path, format!("{alarm:#}\n").as_bytes())?;
        }
        Ok(())
    }

    fn keep(
        &self,
        dir: &Path,
        stem: &str,
        bytes: &[u8],
        reason: Reason,
        env: Option<&ShipEnvelope>,
        detail: &str,
    ) -> Result<(), MirrorError> {
        fs::create_dir_all(dir).map_err(io(dir))?;
        replace_file(&dir.join(format!("{stem}.bin")), bytes)?;
        let why = serde_json::json!({
            "reason": reason.as_str(),
            "detail": detail,
            "stream_seq": env.map(|e| e.stream_seq),
            "kind": env.map(|e| kind_name(e.kind)),
            "unit": env.map(|e| e.unit),
        });
        replace_file(
            &dir.join(format!("{stem}.json")),
            format!("{why:#}\n").as_bytes(),
        )?;
        Ok(())
    }

    fn check_and_apply(
        &self,
        env: &ShipEnvelope,
        state: &mut NodeState,
        pre: Option<(WindowRecord, Result<CheckedWindow, VerifyError>)>,
    ) -> Result<Option<String>, Refused> {
        let name = format!("ritma/{}", env.node);
        let pinned: Vec<NoteVerifier> = self
            .trust
            .iter()
            .filter(|k| k.name() == name)
            .cloned()
            .collect();
        if pinned.is_empty() {
            return Err(refused(
                Reason::Untrusted,
                format!("no pinned key is named {name}"),
            ));
        }
        if let Some(alarm) = &state.held_by {
            return Err(refused(
                Reason::Held,
                format!("node {} is held: {alarm}", env.node),
            ));
        }
        let root = self.node_root(&env.node);
        if env.stream_seq < state.next_seq {
            return Err(self.earlier(env, &root, &pinned));
        }
        if env.stream_seq > state.next_seq {
            return Err(refused(
                Reason::Gap,
                format!(
                    "envelopes {} to {} of node {} never arrived",
                    state.next_seq,
                    env.stream_seq - 1,
                    env.node
                ),
            ));
        }
        let checkpoint = match env.kind {
            ShipKind::Window => self.window(env, &root, &pinned, state, pre).map(Some),
            ShipKind::Hour => self.hour(env, &root, state).map(|()| None),
            ShipKind::Blob => blob(env, &root).map(|()| None),
        }?;
        state.next_seq += 1;
        Ok(checkpoint)
    }

    /// An envelope from before the node's stream position: the same bytes again
    /// (replay), or different ones (a second checkpoint of an accepted size, or a stream
    /// that went back).
    fn earlier(&self, env: &ShipEnvelope, root: &Path, pinned: &[NoteVerifier]) -> Refused {
        let same = env
            .files
            .iter()
            .all(|f| fs::read(root.join(&f.path)).is_ok_and(|b| b == f.bytes));
        if same {
            return refused(
                Reason::Replay,
                format!(
                    "envelope {} of node {} was applied already",
                    env.stream_seq, env.node
                ),
            );
        }
        if env.kind == ShipKind::Window {
            if let Some(e) = self.equivocation(env, root, pinned) {
                return e;
            }
            let same_checkpoint = env
                .files
                .last()
                .is_some_and(|f| fs::read(root.join(&f.path)).is_ok_and(|b| b == f.bytes));
            if same_checkpoint {
                return refused(
                    Reason::Root,
                    format!(
                        "envelope {} of node {}: files that differ from those its checkpoint signed",
                        env.stream_seq, env.node
                    ),
                );
            }
        }
        refused(
            Reason::Rollback,
            format!(
                "envelope {} of node {} differs from the one applied at that position",
                env.stream_seq, env.node
            ),
        )
    }

    /// Two checkpoints of one size, both signed by the node: the node showed two logs.
    fn equivocation(
        &self,
        env: &ShipEnvelope,
        root: &Path,
        pinned: &[NoteVerifier],
    ) -> Option<Refused> {
        let p = WindowPaths::new(env.unit, window_len(root).ok()?);
        let sig = p.checkpoint().to_string_lossy().into_owned();
        let theirs = env.files.iter().find(|f| f.path == sig)?;
        let ours = fs::read(root.join(&sig)).ok()?;
        let history = node_key_history(
            root,
            &root.join("_meta/store.cbor"),
            &env.node,
            Some(pinned),
        )
        .ok()?;
        let a = match std::str::from_utf8(&theirs.bytes)
            .map_err(|e| e.to_string())
            .and_then(|t| history.verify_checkpoint(t).map_err(|e| e.to_string()))
        {
            Ok(a) => a,
            Err(e) => return Some(refused(Reason::Signature, format!("{}: {e}", theirs.path))),
        };
        let b = history
            .verify_checkpoint(std::str::from_utf8(&ours).ok()?)
            .ok()?;
        (a.size == b.size && a.root != b.root).then(|| {
            refused(
                Reason::Equivocation,
                format!(
                    "node {} signed two checkpoints of size {}: roots {} and {}",
                    env.node,
                    a.size,
                    crate::cas::hex(&b.root),
                    crate::cas::hex(&a.root)
                ),
            )
        })
    }

    fn window(
        &self,
        env: &ShipEnvelope,
        root: &Path,
        pinned: &[NoteVerifier],
        state: &mut NodeState,
        pre: Option<(WindowRecord, Result<CheckedWindow, VerifyError>)>,
    ) -> Result<String, Refused> {
        let w = env.unit;
        let staging = self.out.join("ingest/staging").join(&env.node);
        let _ = fs::remove_dir_all(&staging);
        let (setup, files) = split_setup(&env.files);
        let new_node = state.next_window.is_none();
        if new_node && !setup.iter().any(|f| f.path == "_meta/store.cbor") {
            return Err(refused(
                Reason::Decode,
                "the node's first window comes without the store's setup files",
            ));
        }
        // The setup: identical to what is applied, or new key events (and on the first
        // window, all of it).
        for f in &setup {
            let existing = fs::read(root.join(&f.path)).ok();
            match existing {
                Some(b) if b == f.bytes => {}
                None if new_node || f.path.starts_with("_meta/keys/events/") => {}
                _ => {
                    return Err(refused(
                        Reason::Decode,
                        format!("setup file {} differs from the one applied", f.path),
                    ))
                }
            }
        }
        let meta_bytes = match setup.iter().find(|f| f.path == "_meta/store.cbor") {
            Some(f) => f.bytes.clone(),
            None => read_capped(&root.join("_meta/store.cbor"), StoreMeta::MAX_LEN)
                .map_err(|e| refused(Reason::Decode, format!("_meta/store.cbor: {e}")))?,
        };
        let meta = StoreMeta::decode(&meta_bytes)
            .map_err(|e| refused(Reason::Decode, format!("_meta/store.cbor: {e}")))?;
        if meta.node != env.node {
            return Err(refused(
                Reason::Decode,
                format!("_meta/store.cbor names node {}", meta.node),
            ));
        }
        // Key history: from the setup when it brings key files, else the applied tree's.
        let keys_root = match setup.iter().any(|f| f.path.starts_with("_meta/keys/")) {
            true => {
                stage(&staging, &setup).map_err(|e| refused(Reason::Decode, e))?;
                if !new_node {
                    copy_missing_key_events(root, &staging)
                        .map_err(|e| refused(Reason::Decode, e))?;
                }
                staging.clone()
            }
            false => root.to_owned(),
        };
        let history: KeyHistory = node_key_history(
            &keys_root,
            &keys_root.join("_meta/store.cbor"),
            &env.node,
            Some(pinned),
        )?;
        // The window's files, exactly those of its record, in the writer's order.
        let p = WindowPaths::new(w, meta.window_len_ns);
        let rel = |p: PathBuf| p.to_string_lossy().into_owned();
        let record_file = files
            .iter()
            .find(|f| f.path == rel(p.record()))
            .ok_or_else(|| {
                refused(
                    Reason::Decode,
                    format!("no {} for window {w}", rel(p.record())),
                )
            })?;
        let record = WindowRecord::decode(&record_file.bytes)
            .map_err(|e| refused(Reason::Decode, format!("{}: {e}", record_file.path)))?;
        if record.node != env.node
            || record.window != w
            || record.window_len_ns != meta.window_len_ns
        {
            return Err(refused(
                Reason::Decode,
                format!("{}: not window {w} of node {}", record_file.path, env.node),
            ));
        }
        let per_hour = windows_per_hour(meta.window_len_ns);
        let closes_hour = (w + 1).is_multiple_of(per_hour);
        let mut want = Vec::new();
        if record.leaf_count() > 0 {
            want.push(rel(p.blocks()));
        }
        want.extend((0..record.health_count).map(|n| rel(p.health(n as u32))));
        want.push(rel(p.record()));
        if closes_hour {
            want.push(rel(p.hour_seal()));
            want.push(rel(p.hour_checkpoint()));
        }
        want.push(rel(p.checkpoint()));
        let got: Vec<&str> = files.iter().map(|f| f.path.as_str()).collect();
        if got != want {
            return Err(refused(
                Reason::Decode,
                format!(
                    "window {w}'s files are [{}], its record makes them [{}]",
                    got.join(", "),
                    want.join(", ")
                ),
            ));
        }
        if let Some(next) = state.next_window {
            if w < next {
                return Err(self.earlier(env, root, pinned));
            }
        }
        // Later than the next window only where a downtime left windows out.
        let mut sequence = crate::continuity::WindowSequence::resume(
            meta.window_len_ns,
            state.next_window.map(|n| n - 1),
            state.left_out,
        );
        let gap = |e: crate::continuity::ContinuityError| {
            refused(
                Reason::Gap,
                format!("node {}: {e}: windows never arrived", env.node),
            )
        };
        sequence.follow(w).map_err(gap)?;
        // Blocks and health copies, checked from the message's bytes (or ahead, by
        // precheck, from this envelope's, when it read this same record).
        let checked = match pre {
            Some((pre_record, blocks)) if pre_record == record => blocks,
            _ => check_blocks(root, &env.node, &files, &p, &record),
        }?;
        let holds_anything =
            record.event_count > 0 || record.health_count > 0 || !record.lost.is_empty();
        sequence
            .holds(holds_anything, checked.stopped)
            .map_err(gap)?;
        for (n, leaf) in checked.health.iter().enumerate() {
            let path = rel(p.health(n as u32));
            if files.iter().find(|f| f.path == path).map(|f| &f.bytes) != Some(leaf) {
                return Err(refused(
                    Reason::Root,
                    format!("{path} is not health record {n} of window {w}"),
                ));
            }
        }
        check_payloads(root, &checked.atoms, &mut Default::default(), w)?;
        // The checkpoint: signed by a key the pinned history makes valid at its size, and
        // the node log after this record, grown from the last accepted one.
        let note_file = files.last().expect("a checkpoint");
        let note = std::str::from_utf8(&note_file.bytes)
            .map_err(|_| refused(Reason::Signature, format!("{}: not UTF-8", note_file.path)))?
            .to_owned();
        let cp: Checkpoint = history
            .verify_checkpoint(&note)
            .map_err(|e| refused(Reason::Signature, format!("{}: {e}", note_file.path)))?;
        let mut log = match new_node {
            true => Frontier::new(),
            false => state.frontier().ok_or_else(|| {
                refused(Reason::Decode, "the node's saved log state is unreadable")
            })?,
        };
        log.push::<Blake3Tree>(Blake3Tree::leaf(&record_file.bytes));
        if (cp.size, cp.root) != (log.size(), log.root::<Blake3Tree>()) {
            return Err(refused(
                Reason::Root,
                format!(
                    "{}: the checkpoint (size {}) does not sign the accepted node log (size {}) extended by this window's record",
                    note_file.path, cp.size, log.size()
                ),
            ));
        }
        let hour_first = match (new_node, state.hour_first) {
            (false, Some(f)) if f / per_hour == w / per_hour => f,
            _ => w,
        };
        if closes_hour {
            let seal_file = &files[files.len() - 3];
            if files[files.len() - 2].bytes != note_file.bytes {
                return Err(refused(
                    Reason::Root,
                    format!(
                        "{} is not the window's checkpoint",
                        files[files.len() - 2].path
                    ),
                ));
            }
            let seal = HourSeal::decode(&seal_file.bytes)
                .map_err(|e| refused(Reason::Decode, format!("{}: {e}", seal_file.path)))?;
            let want = (
                env.node.as_str(),
                w / per_hour,
                hour_first,
                w,
                log.size(),
                log.root::<Blake3Tree>(),
            );
            let found = (
                seal.node.as_str(),
                seal.hour,
                seal.first_window,
                seal.last_window,
                seal.log_size,
                seal.log_root,
            );
            if found != want || seal.prev != state.prev_hour() {
                return Err(refused(
                    Reason::Root,
                    format!(
                        "{}: the hour seal does not describe this hour and the accepted log",
                        seal_file.path
                    ),
                ));
            }
            if let Some(prev) = &seal.prev {
                verify_consistency::<Blake3Tree>(
                    prev.log_size,
                    seal.log_size,
                    &prev.log_root,
                    &seal.log_root,
                    &seal.consistency,
                )
                .map_err(|e| {
                    refused(
                        Reason::Root,
                        format!("{}: consistency proof: {e}", seal_file.path),
                    )
                })?;
            }
        }
        // Checked: apply, in the writer's order, the checkpoint last.
        self.write_window(root, &setup, files, w, per_hour)
            .map_err(|e| refused(Reason::Decode, e.to_string()))?;
        let _ = fs::remove_dir_all(&staging);
        state.next_window = Some(w + 1);
        state.left_out = sequence.left_out();
        state.set_frontier(&log);
        state.hour_first = match closes_hour {
            true => None,
            false => Some(hour_first),
        };
        if closes_hour {
            state.prev_hour = Some((
                w / per_hour,
                log.size(),
                crate::cas::hex(&log.root::<Blake3Tree>()),
            ));
        }
        Ok(note)
    }

    fn write_window(
        &self,
        root: &Path,
        setup: &[&ShipFile],
        files: Vec<&ShipFile>,
        w: u64,
        per_hour: u64,
    ) -> Result<(), StoreError> {
        // A node continuing an hour its last run left open rewrites the hour's derived
        // files: their catalog entry goes first, as on the node (FORMAT.md §8.12).
        let hour = w / per_hour;
        if let Some(c) = catalog::read_catalog(root, hour / HOURS_PER_DAY)? {
            if c.hours
                .iter()
                .any(|h| h.hour == hour && h.state == HourState::Open)
            {
                catalog::forget_hour(root, hour)?;
            }
        }
        // store.cbor last of the setup, as a writer makes a tree; the files are made
        // durable in order, and the checkpoint, which vouches for them, goes last once
        // their directories are synced.
        let Some((checkpoint, rest)) = files.split_last() else {
            return Ok(());
        };
        let mut batch = AtomicBatch::new();
        let mut dirs = BTreeSet::new();
        for f in setup.iter().chain(rest) {
            let path = root.join(&f.path);
            let dir = path.parent().expect("a directory").to_owned();
            if !dirs.contains(&dir) {
                fs::create_dir_all(&dir).map_err(io(&dir))?;
                dirs.insert(dir);
            }
            batch.write(path, &f.bytes)?;
        }
        batch.commit()?;
        for dir in &dirs {
            sync_dir(dir)?;
        }
        put_file(root, checkpoint)
    }

    fn hour(&self, env: &ShipEnvelope, root: &Path, state: &NodeState) -> Result<(), Refused> {
        let hour = env.unit;
        let meta_len = window_len(root).map_err(|e| refused(Reason::Decode, e))?;
        let per_hour = windows_per_hour(meta_len);
        if state
            .next_window
            .is_none_or(|n| n == 0 || (n - 1) / per_hour < hour)
        {
            return Err(refused(
                Reason::Decode,
                format!("hour {hour}'s derived files came before its windows"),
            ));
        }
        let hour_rel = hour_dir(hour);
        let date_hour = hour_rel
            .strip_prefix("windows")
            .expect("under windows/")
            .to_owned();
        let dirs = [
            Path::new("graph/edges").join(&date_hour),
            hour_rel.join("index"),
        ];
        let day = hour / HOURS_PER_DAY;
        let catalog_rel = catalog_path(day).to_string_lossy().into_owned();
        let (last, derived) = env
            .files
            .split_last()
            .ok_or_else(|| refused(Reason::Decode, "an empty hour envelope"))?;
        if last.path != catalog_rel {
            return Err(refused(
                Reason::Decode,
                format!("hour {hour}'s envelope does not end with {catalog_rel}"),
            ));
        }
        // The state saved after the hour, if the node has one, comes after the derived files.
        let state_rel = hour_rel.join("proofs/state.cbor.zst");
        let (derived, state) = match derived.split_last() {
            Some((s, rest)) if Path::new(&s.path) == state_rel => (rest, Some(s)),
            _ => (derived, None),
        };
        for f in derived {
            let parent = Path::new(&f.path).parent().unwrap_or(Path::new(""));
            if !dirs.iter().any(|d| d == parent) {
                return Err(refused(
                    Reason::Decode,
                    format!("{} is not a derived file of hour {hour}", f.path),
                ));
            }
        }
        if let Some(f) = state {
            check_state(root, hour, per_hour, meta_len, f)?;
        }
        let encoded = crate::store::decompress_frame(&last.bytes, MAX_DAY_LEN)
            .map_err(|e| refused(Reason::Decode, format!("{}: {e}", last.path)))?;
        let catalog = DayCatalog::decode(&encoded)
            .map_err(|e| refused(Reason::Decode, format!("{}: {e}", last.path)))?;
        let entry = catalog
            .hours
            .into_iter()
            .find(|h| h.hour == hour && h.state != HourState::Deleted)
            .ok_or_else(|| {
                refused(
                    Reason::Decode,
                    format!("{} has no entry for hour {hour}", last.path),
                )
            })?;
        let apply = || -> Result<(), StoreError> {
            for d in &dirs {
                let dir = root.join(d);
                if let Ok(it) = fs::read_dir(&dir) {
                    for e in it.flatten() {
                        let rel = d.join(e.file_name());
                        if !derived.iter().any(|f| Path::new(&f.path) == rel) {
                            fs::remove_file(e.path()).map_err(io(&e.path()))?;
                        }
                    }
                }
            }
            for f in derived.iter().chain(state) {
                let path = root.join(&f.path);
                fs::create_dir_all(path.parent().expect("a directory")).map_err(io(&path))?;
                replace_file(&path, &f.bytes)?;
            }
            let account = catalog::account_hour(root, hour, entry.events, false)?;
            catalog::record_hour(root, &catalog.node, entry, account)
        };
        apply().map_err(|e| refused(Reason::Decode, e.to_string()))
    }
}

/// A `cas/` file: a chunk whose plain BLAKE3 is its name, or a manifest whose chunks are
/// in and whose blob is its name.
fn blob(env: &ShipEnvelope, root: &Path) -> Result<(), Refused> {
    let f = &env.files[0];
    let parts: Vec<&str> = f.path.split('/').collect();
    let bad = || refused(Reason::Decode, format!("{} is not a cas/b3 file", f.path));
    let [cas, b3, ab, cd, name] = parts[..] else {
        return Err(bad());
    };
    let (hex, manifest) = match name.strip_suffix(".blob") {
        Some(h) => (h, true),
        None => (name, false),
    };
    let hash: Hash32 = crate::cas::parse_hex(hex.as_bytes()).ok_or_else(bad)?;
    if cas != "cas"
        || b3 != "b3"
        || ab != &hex[..2]
        || cd != &hex[2..4]
        || hex != crate::cas::hex(&hash)
    {
        return Err(bad());
    }
    if manifest {
        let m = CasManifest::decode(&f.bytes)
            .map_err(|e| refused(Reason::Decode, format!("{}: {e}", f.path)))?;
        if m.blob != hash {
            return Err(refused(
                Reason::Root,
                format!(
                    "{}: the manifest is of blob {}",
                    f.path,
                    crate::cas::hex(&m.blob)
                ),
            ));
        }
        for c in &m.chunks {
            let h = crate::cas::hex(&c.hash);
            let chunk = root.join(format!("cas/b3/{}/{}/{h}", &h[..2], &h[2..4]));
            if fs::metadata(&chunk).map(|m| m.len()).ok() != Some(u64::from(c.len)) {
                return Err(refused(
                    Reason::Decode,
                    format!("{}: chunk {h} has not arrived", f.path),
                ));
            }
        }
        let path = root.join(&f.path);
        fs::create_dir_all(path.parent().expect("dir"))
            .map_err(|e| refused(Reason::Decode, e.to_string()))?;
        return replace_file(&path, &f.bytes).map_err(|e| refused(Reason::Decode, e.to_string()));
    }
    if f.bytes.len() > MAX_CHUNK_LEN as usize
        || f.bytes.is_empty()
        || *blake3::hash(&f.bytes).as_bytes() != hash
    {
        return Err(refused(
            Reason::Root,
            format!(
                "{}: the bytes are not the chunk its name is the hash of",
                f.path
            ),
        ));
    }
    put_file(root, f).map_err(|e| refused(Reason::Decode, e.to_string()))
}

/// The window's blocks among its envelope's `files` checked against its record, as `verify`
/// checks them, named in errors by their place in the node tree at `root`.
fn check_blocks(
    root: &Path,
    node: &str,
    files: &[&ShipFile],
    p: &WindowPaths,
    record: &WindowRecord,
) -> Result<CheckedWindow, VerifyError> {
    let path = p.blocks().to_string_lossy().into_owned();
    // Absent too when the record has no leaves: the files' layout is checked against the
    // record before the blocks are.
    let source = match files.iter().find(|f| f.path == path) {
        Some(f) if record.leaf_count() > 0 => BlockSource::InMemory(&f.bytes),
        _ => BlockSource::Absent,
    };
    check_window_blocks(
        &root.join(&p.hour_dir).join("blocks"),
        source,
        record,
        &root.join(p.record()),
        node,
        &mut SeqSet::new(),
    )
}

/// Setup files (FORMAT.md §12.2) come first in a window envelope; the rest are the
/// window's.
fn split_setup(files: &[ShipFile]) -> (Vec<&ShipFile>, Vec<&ShipFile>) {
    let is_setup = |f: &ShipFile| {
        f.path.starts_with("_meta/keys/")
            || f.path.starts_with("_meta/schema/")
            || f.path.starts_with("ctgf/cones/")
            || f.path == "_meta/store.cbor"
    };
    let n = files.iter().take_while(|f| is_setup(f)).count();
    (files[..n].iter().collect(), files[n..].iter().collect())
}

/// Writes `files` under `dir` (a scratch tree for checks).
fn stage(dir: &Path, files: &[&ShipFile]) -> Result<(), String> {
    for f in files {
        let path = dir.join(&f.path);
        fs::create_dir_all(path.parent().expect("a directory"))
            .map_err(|e| format!("{}: {e}", path.display()))?;
        fs::write(&path, &f.bytes).map_err(|e| format!("{}: {e}", path.display()))?;
    }
    Ok(())
}

/// Key events the applied tree has that a staged setup lacks (none, from a shipper that
/// sends them all; kept so a history is never judged on a part of it).
fn copy_missing_key_events(root: &Path, staging: &Path) -> Result<(), String> {
    let dir = root.join("_meta/keys/events");
    let Ok(it) = fs::read_dir(&dir) else {
        return Ok(());
    };
    for e in it.flatten() {
        let to = staging.join("_meta/keys/events").join(e.file_name());
        if !to.exists() {
            fs::copy(e.path(), &to).map_err(|err| format!("{}: {err}", e.path().display()))?;
        }
    }
    Ok(())
}

/// Writes a store file that must not change, as the node's writer does (`write_atomic`:
/// an absent one written durably, one present kept only if it holds exactly these bytes),
/// then fsyncs its directory.
fn put_file(root: &Path, f: &ShipFile) -> Result<(), StoreError> {
    let path = root.join(&f.path);
    write_atomic(&path, &f.bytes)?;
    sync_dir(path.parent().expect("a directory"))
}

fn window_len(root: &Path) -> Result<u64, String> {
    let path = root.join("_meta/store.cbor");
    let bytes =
        read_capped(&path, StoreMeta::MAX_LEN).map_err(|e| format!("{}: {e}", path.display()))?;
    StoreMeta::decode(&bytes)
        .map(|m| m.window_len_ns)
        .map_err(|e| format!("{}: {e}", path.display()))
}

fn kind_name(k: ShipKind) -> &'static str {
    match k {
        ShipKind::Window => "window",
        ShipKind::Hour => "hour",
        ShipKind::Blob => "blob",
    }
}

fn read_state(path: &Path) -> Result<NodeState, MirrorError> {
    match fs::read(path) {
        Ok(b) => serde_json::from_slice(&b).map_err(|e| MirrorError::State {
            path: path.to_owned(),
            detail: e.to_string(),
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(NodeState::default()),
        Err(e) => Err(StoreError::Io {
            path: path.to_owned(),
            source: e,
        }
        .into()),
    }
}

fn write_state(path: &Path, state: &NodeState) -> Result<(), MirrorError> {
    let bytes = serde_json::to_vec(state).expect("state serializes");
    replace_file(path, &bytes)?;
    Ok(())
}

/// An exclusive lock on one node of `OUT` (flock), held while it is applied.
struct NodeLock {
    _file: fs::File,
}

impl NodeLock {
    fn acquire(path: &Path) -> Result<Self, MirrorError> {
        let mut f = fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(path)
            .map_err(io(path))?;
        use std::os::fd::AsRawFd;
        // SAFETY: flock on a file descriptor this struct owns.
        if unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX) } != 0 {
            return Err(StoreError::Io {
                path: path.to_owned(),
                source: std::io::Error::last_os_error(),
            }
            .into());
        }
        let _ = f.flush();
        Ok(NodeLock { _file: f })
    }
}

/// A node's saved state (FORMAT.md §3.15) shipped with its hour: it must decode strictly and
/// be the node's after the hour's last window, whose hour seal the receiver holds.
fn check_state(
    root: &Path,
    hour: u64,
    per_hour: u64,
    window_len_ns: u64,
    f: &ritma_schemas::ship::ShipFile,
) -> Result<(), Refused> {
    use ritma_schemas::records::{HourSeal, Record};
    use ritma_schemas::state::{DataflowState, MAX_STATE_LEN};
    let raw = crate::store::decompress_frame(&f.bytes, MAX_STATE_LEN)
        .map_err(|e| refused(Reason::Decode, format!("{}: {e}", f.path)))?;
    let state = DataflowState::decode(&raw)
        .map_err(|e| refused(Reason::Decode, format!("{}: {e}", f.path)))?;
    let last = (hour + 1) * per_hour - 1;
    let seal_path = root.join(crate::store::WindowPaths::new(last, window_len_ns).hour_seal());
    let seal = fs::read(&seal_path)
        .ok()
        .and_then(|b| HourSeal::decode(&b).ok());
    let fits = seal.is_some_and(|s| {
        (
            state.prev_hour.hour,
            state.prev_hour.log_size,
            state.prev_hour.log_root,
        ) == (s.hour, s.log_size, s.log_root)
            && state.cut == last + 1
            && state.node == s.node
    });
    if !fits {
        return Err(refused(
            Reason::Decode,
            format!(
                "{}: not the state after hour {hour}'s last window and seal",
                f.path
            ),
        ));
    }
    Ok(())
}
