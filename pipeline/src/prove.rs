//! `ritma prove` and `ritma verify-proof`: a self-contained proof of one sealed event
//! (a ProofBundle, FORMAT.md §11) built from a store, and its check with nothing else
//! present.

use crate::trust::Trust;
use base64::Engine;
use ritma_schemas::keys::KeyHistory;
use ritma_schemas::merkle::{self, Blake3Tree, SparseLog, Subtrees, TreeHash};
use ritma_schemas::note::NoteVerifier;
use ritma_schemas::proof_bundle::MAX_NOTE_LEN;
use ritma_schemas::proof_bundle::{
    checkpoint_signer, BundleError, BundleParts, ProofBundle, ProvenEvent, MAX_BUNDLE_LEN,
};
use ritma_schemas::records::{
    ActorRecord, DictEntry, DictKind, EventAtom, EventType, HourDeletion, Record, SignedRecord,
    StoreMeta, WindowRecord,
};
use ritma_schemas::{Hash32, Id128};
use ritma_sinks::keys::Keystore;
use ritma_sinks::store::{civil_from_days, last_seq, read_capped, read_window_leaves, WindowPaths};
use std::fs;
use std::io::Write;
use std::ops::Range;
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum ProveError {
    #[error("{dir}: not a Ritma store (no _meta/store.cbor and no nodes/)")]
    NotAStore { dir: PathBuf },
    #[error("{dir} holds node `{found}`, not `{wanted}`")]
    WrongNode {
        dir: PathBuf,
        found: String,
        wanted: String,
    },
    #[error("{dir} holds several nodes ({nodes}); choose one with --node")]
    ChooseNode { dir: PathBuf, nodes: String },
    #[error("{dir} has no node `{node}` (it holds {nodes})")]
    NoSuchNode {
        dir: PathBuf,
        node: String,
        nodes: String,
    },
    #[error("store damaged: {path}: {detail}")]
    Damaged { path: PathBuf, detail: String },
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("node `{node}` has no sealed events")]
    NoEvents { node: String },
    #[error(
        "seq {seq} is not in the store of node `{node}`: it holds seqs {lowest} to {highest}{gap}"
    )]
    SeqNotFound {
        seq: u64,
        node: String,
        lowest: u64,
        highest: u64,
        gap: &'static str,
    },
    #[error("--to-size {to}: the event's window record is leaf {log_index} of the node log, whose signed sizes run from {} to {log_size}", log_index + 1)]
    ToSize {
        to: u64,
        log_index: u64,
        log_size: u64,
    },
    #[error("seq {seq} of node `{node}` was sealed in hour {hour}, which retention deleted ({path}): it can no longer be proven")]
    Deleted {
        seq: u64,
        node: String,
        hour: String,
        path: PathBuf,
    },
    #[error("--to-size {to}: the checkpoint of that size was in an hour retention deleted")]
    CheckpointDeleted { to: u64 },
    #[error("{path} already exists; refusing to overwrite it")]
    Exists { path: PathBuf },
    #[error(
        "the proof built from the store does not verify ({0}); run `ritma verify` on the store"
    )]
    SelfCheck(BundleError),
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> ProveError + '_ {
    move |source| ProveError::Io {
        path: path.to_owned(),
        source,
    }
}

fn damaged(path: &Path, detail: impl Into<String>) -> ProveError {
    ProveError::Damaged {
        path: path.to_owned(),
        detail: detail.into(),
    }
}

/// What `ritma prove` was asked for.
pub struct ProveRequest {
    pub dir: PathBuf,
    pub seq: u64,
    pub node: Option<String>,
    pub out: PathBuf,
    /// The node-log size to extend the proof to (default: the newest checkpoint).
    pub to_size: Option<u64>,
}

/// What `ritma prove` wrote.
pub struct ProveReport {
    pub node: String,
    pub seq: u64,
    pub window: u64,
    pub event_leaf: u64,
    pub window_leaves: u64,
    pub log_index: u64,
    pub checkpoint_size: u64,
    pub latest_size: u64,
    pub leaves: usize,
    pub bytes: usize,
}

/// Builds the proof of event `seq` and writes it to `out` (never over an existing file).
pub fn prove(req: &ProveRequest) -> Result<ProveReport, ProveError> {
    let (store, meta) = node_root(&req.dir, req.node.as_deref())?;
    let (history, key_events) = key_history(&store, &meta.node)?;
    let (sealed, log, deleted) = sealed_windows(&store, &meta)?;
    let (at, window, event_leaf, atom) = match find_event(&store, &meta.node, &sealed, req.seq) {
        Err(ProveError::SeqNotFound { .. } | ProveError::NoEvents { .. })
            if deleted.iter().any(|(_, d)| {
                d.seq_range
                    .is_some_and(|(lo, hi)| (lo..=hi).contains(&req.seq))
            }) =>
        {
            let (path, d) = deleted
                .iter()
                .find(|(_, d)| {
                    d.seq_range
                        .is_some_and(|(lo, hi)| (lo..=hi).contains(&req.seq))
                })
                .expect("found above");
            return Err(ProveError::Deleted {
                seq: req.seq,
                node: meta.node.clone(),
                hour: ritma_sinks::retention::hour_label(d.hour),
                path: path.clone(),
            });
        }
        r => r?,
    };
    let log_index = sealed[at].log_index;
    let log_size = log.size();
    let latest = req.to_size.unwrap_or(log_size);
    if latest <= log_index || latest > log_size {
        return Err(ProveError::ToSize {
            to: latest,
            log_index,
            log_size,
        });
    }

    let leaf_hashes: Vec<Hash32> = window.leaves.iter().map(|l| Blake3Tree::leaf(l)).collect();
    if merkle::root::<Blake3Tree>(&leaf_hashes) != window.record.window_root {
        let blocks = store.join(window.paths.blocks());
        let detail = format!(
            "the blocks do not hash to the window root signed in {}",
            sealed[at].record_path.display()
        );
        return Err(damaged(&blocks, detail));
    }
    let chosen = named_leaves(&window, event_leaf, &atom)?;

    // The checkpoints the bundle carries must sign what the records give.
    let note_at = |size: u64| -> Result<String, ProveError> {
        let s = sealed
            .binary_search_by_key(&(size - 1), |s| s.log_index)
            .map(|i| &sealed[i])
            .map_err(|_| ProveError::CheckpointDeleted { to: size })?;
        let note = read_capped(&s.sig_path, MAX_NOTE_LEN).map_err(io(&s.sig_path))?;
        let note = String::from_utf8(note)
            .map_err(|_| damaged(&s.sig_path, "a checkpoint note that is not UTF-8"))?;
        let (cp, _) =
            checkpoint_signer(&history, &note).map_err(|e| damaged(&s.sig_path, e.to_string()))?;
        if (cp.size, cp.root)
            != (
                size,
                merkle::Prefix::new(&log, size)
                    .and_then(|p| p.subtree_root::<Blake3Tree>(0, size))
                    .map_err(|e| damaged(&s.sig_path, e.to_string()))?,
            )
        {
            return Err(damaged(
                &s.sig_path,
                format!("the signed checkpoint is not the node log of the window records up to {} (size {size})", s.record_path.display()),
            ));
        }
        Ok(note)
    };
    let checkpoint = note_at(log_index + 1)?;
    let extension = match latest > log_index + 1 {
        true => Some(note_at(latest)?),
        false => None,
    };
    // Key events after the newest checkpoint cannot change which keys sign it.
    let key_events: Vec<Vec<u8>> = key_events
        .into_iter()
        .enumerate()
        .filter(|(i, e)| *i == 0 || e.log_size <= latest)
        .map(|(_, e)| e.bytes)
        .collect();
    let leaves = chosen.len();
    let bundle = ProofBundle::assemble(BundleParts {
        window_record: &sealed[at].bytes,
        window_leaf_hashes: &leaf_hashes,
        leaves: chosen
            .into_iter()
            .map(|i| (i, window.leaves[i as usize].clone()))
            .collect(),
        log: &log,
        log_index,
        checkpoint,
        extension,
        key_events,
    })
    .map_err(ProveError::SelfCheck)?;
    let bytes = bundle.encode();
    let proven = ProofBundle::verify_bytes(&bytes, None).map_err(ProveError::SelfCheck)?;

    let mut f = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&req.out)
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::AlreadyExists => ProveError::Exists {
                path: req.out.clone(),
            },
            _ => ProveError::Io {
                path: req.out.clone(),
                source: e,
            },
        })?;
    f.write_all(&bytes)
        .and_then(|()| f.sync_all())
        .map_err(io(&req.out))?;
    Ok(ProveReport {
        node: meta.node,
        seq: req.seq,
        window: proven.window.window,
        event_leaf,
        window_leaves: proven.window_leaves,
        log_index,
        checkpoint_size: proven.checkpoint.size,
        latest_size: proven.latest().size,
        leaves,
        bytes: bytes.len(),
    })
}

/// The tree of the node to prove from: the store itself, or `nodes/<node>/`.
pub(crate) fn node_root(
    dir: &Path,
    node: Option<&str>,
) -> Result<(PathBuf, StoreMeta), ProveError> {
    let read_meta = |root: &Path| -> Result<StoreMeta, ProveError> {
        let path = root.join("_meta/store.cbor");
        let bytes = read_capped(&path, StoreMeta::MAX_LEN).map_err(io(&path))?;
        StoreMeta::decode(&bytes).map_err(|e| damaged(&path, e.to_string()))
    };
    if dir.join("_meta/store.cbor").exists() {
        let meta = read_meta(dir)?;
        if let Some(n) = node.filter(|n| *n != meta.node) {
            return Err(ProveError::WrongNode {
                dir: dir.to_owned(),
                found: meta.node,
                wanted: n.to_owned(),
            });
        }
        return Ok((dir.to_owned(), meta));
    }
    let nodes_dir = dir.join("nodes");
    let mut nodes: Vec<String> = match fs::read_dir(&nodes_dir) {
        Ok(it) => it
            .filter_map(|e| e.ok())
            .filter(|e| e.path().join("_meta/store.cbor").exists())
            .filter_map(|e| e.file_name().into_string().ok())
            .collect(),
        Err(_) => {
            return Err(ProveError::NotAStore {
                dir: dir.to_owned(),
            })
        }
    };
    nodes.sort();
    let chosen = match (node, nodes.as_slice()) {
        (_, []) => {
            return Err(ProveError::NotAStore {
                dir: dir.to_owned(),
            })
        }
        (Some(n), _) if nodes.iter().any(|m| m == n) => n.to_owned(),
        (Some(n), _) => {
            return Err(ProveError::NoSuchNode {
                dir: dir.to_owned(),
                node: n.to_owned(),
                nodes: nodes.join(", "),
            })
        }
        (None, [only]) => only.clone(),
        (None, _) => {
            return Err(ProveError::ChooseNode {
                dir: dir.to_owned(),
                nodes: nodes.join(", "),
            })
        }
    };
    let root = nodes_dir.join(&chosen);
    let meta = read_meta(&root)?;
    if meta.node != chosen {
        let path = root.join("_meta/store.cbor");
        return Err(damaged(&path, format!("names node `{}`", meta.node)));
    }
    Ok((root, meta))
}

/// A key event file as stored, and the first log size its change applies to.
struct KeyEventFile {
    log_size: u64,
    bytes: Vec<u8>,
}

/// The node's key history and its key event files, in order.
fn key_history(root: &Path, node: &str) -> Result<(KeyHistory, Vec<KeyEventFile>), ProveError> {
    let dir = Keystore::for_store(root).events_dir();
    let mut names: Vec<String> = fs::read_dir(&dir)
        .map_err(io(&dir))?
        .filter_map(|e| e.ok().and_then(|e| e.file_name().into_string().ok()))
        .filter(|n| !n.starts_with('.'))
        .collect();
    names.sort();
    if names.is_empty() {
        return Err(damaged(&dir, "no key events"));
    }
    let mut history = KeyHistory::new(node).map_err(|e| damaged(&dir, e.to_string()))?;
    let mut events = Vec::with_capacity(names.len());
    for (i, name) in names.iter().enumerate() {
        let path = dir.join(name);
        if *name != format!("{i:08}.cbor") {
            return Err(damaged(
                &path,
                "key event files must be 00000000.cbor, 00000001.cbor, …",
            ));
        }
        let bytes = read_capped(&path, SignedRecord::MAX_LEN).map_err(io(&path))?;
        let signed = SignedRecord::decode(&bytes).map_err(|e| damaged(&path, e.to_string()))?;
        let event = history
            .apply(&signed)
            .map_err(|e| damaged(&path, e.to_string()))?;
        events.push(KeyEventFile {
            log_size: event.log_size,
            bytes,
        });
    }
    Ok((history, events))
}

/// A sealed window: its record (a node-log leaf) and where its files are.
pub(crate) struct Sealed {
    /// The record's leaf index in the node log.
    pub log_index: u64,
    pub record: WindowRecord,
    pub bytes: Vec<u8>,
    pub record_path: PathBuf,
    pub sig_path: PathBuf,
}

/// The store's hour directories, `windows/YYYY/MM/DD/HH`, in time order.
pub(crate) fn hour_dirs(root: &Path) -> Result<Vec<PathBuf>, ProveError> {
    let mut dirs = vec![root.join("windows")];
    for width in [4, 2, 2, 2] {
        let mut next = Vec::new();
        for d in &dirs {
            for n in names(d)? {
                if n.len() == width && n.bytes().all(|b| b.is_ascii_digit()) {
                    next.push(d.join(n));
                }
            }
        }
        dirs = next;
    }
    Ok(dirs)
}

/// Sorted names in `dir` that are not temporary files.
fn names(dir: &Path) -> Result<Vec<String>, ProveError> {
    let mut v: Vec<String> = match fs::read_dir(dir) {
        Ok(it) => it
            .filter_map(|e| e.ok().and_then(|e| e.file_name().into_string().ok()))
            .filter(|n| !n.starts_with('.'))
            .collect(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(e) => return Err(io(dir)(e)),
    };
    v.sort();
    Ok(v)
}

/// Every window with a record and a checkpoint, in node-log order, the node log they
/// make (hours retention deleted known by their deletion records' subtrees), and those
/// deletion records; windows must follow each other as FORMAT.md §7.2 allows (a jump only
/// where a downtime left windows out, never past an hour's last; `verify` checks the rest).
#[allow(clippy::type_complexity)]
pub(crate) fn sealed_windows(
    root: &Path,
    meta: &StoreMeta,
) -> Result<(Vec<Sealed>, SparseLog, Vec<(PathBuf, HourDeletion)>), ProveError> {
    let dirs = hour_dirs(root)?;
    let mut out: Vec<Sealed> = Vec::new();
    let (mut log, mut deleted) = (SparseLog::new(), Vec::new());
    let mut sequence = ritma_sinks::continuity::WindowSequence::new(meta.window_len_ns);
    let mut follows = |window: u64, path: &Path| {
        sequence
            .follow(window)
            .map_err(|e| damaged(path, format!("{e}: the node log has a gap or a repeat")))
    };
    for hour in dirs {
        let rel = hour.strip_prefix(root).unwrap_or(&hour);
        let d = ritma_sinks::retention::read_deletion(root, rel).map_err(|e| {
            damaged(
                &hour.join(ritma_sinks::retention::DELETION_FILE),
                e.to_string(),
            )
        })?;
        if let Some(d) = d {
            let path = hour.join(ritma_sinks::retention::DELETION_FILE);
            follows(d.first_window, &path)?;
            if d.last_window > d.first_window {
                follows(d.last_window, &path)?;
            }
            log.push_deleted(d.windows(), &d.subtrees)
                .map_err(|e| damaged(&path, e.to_string()))?;
            deleted.push((path, d));
            continue;
        }
        for HourRecord {
            record,
            bytes,
            record_path,
            sig_path,
        } in hour_records(&hour, meta)?
        {
            if root.join(WindowPaths::new(record.window, meta.window_len_ns).record())
                != record_path
            {
                return Err(damaged(
                    &record_path,
                    format!("window {} does not belong here", record.window),
                ));
            }
            follows(record.window, &record_path)?;
            out.push(Sealed {
                log_index: log.size(),
                record,
                bytes,
                record_path,
                sig_path,
            });
            log.push_leaf(Blake3Tree::leaf(&out.last().expect("pushed").bytes));
        }
    }
    Ok((out, log, deleted))
}

/// A window record of an hour directory with its checkpoint beside it.
pub(crate) struct HourRecord {
    pub record: WindowRecord,
    pub bytes: Vec<u8>,
    pub record_path: PathBuf,
    pub sig_path: PathBuf,
}

/// The sealed windows of the hour directory `hour`, in file order: every `micro/` record
/// with its checkpoint beside it (one without is not sealed yet), decoded, of the store's
/// node and window length.
pub(crate) fn hour_records(hour: &Path, meta: &StoreMeta) -> Result<Vec<HourRecord>, ProveError> {
    let micro = hour.join("micro");
    let files = names(&micro)?;
    let mut out = Vec::new();
    for name in &files {
        let Some(stem) = name.strip_suffix(".cbor") else {
            continue;
        };
        let sig = format!("{stem}.sig");
        if !files.contains(&sig) {
            continue;
        }
        let record_path = micro.join(name);
        let bytes = read_capped(&record_path, WindowRecord::MAX_LEN).map_err(io(&record_path))?;
        let record =
            WindowRecord::decode(&bytes).map_err(|e| damaged(&record_path, e.to_string()))?;
        if record.node != meta.node || record.window_len_ns != meta.window_len_ns {
            return Err(damaged(
                &record_path,
                "node or window length differs from _meta/store.cbor",
            ));
        }
        out.push(HourRecord {
            record,
            bytes,
            record_path,
            sig_path: micro.join(sig),
        });
    }
    Ok(out)
}

/// A window's leaves, read from its blocks.
pub(crate) struct WindowLeaves {
    pub record: WindowRecord,
    pub paths: WindowPaths,
    root: PathBuf,
    pub leaves: Vec<Vec<u8>>,
}

impl WindowLeaves {
    pub(crate) fn read(root: &Path, s: &Sealed) -> Result<Self, ProveError> {
        Self::read_record(root, &s.record, &s.record_path)
    }

    /// The leaves of the window `r`, read from `record_path`.
    pub(crate) fn read_record(
        root: &Path,
        r: &WindowRecord,
        record_path: &Path,
    ) -> Result<Self, ProveError> {
        let paths = WindowPaths::new(r.window, r.window_len_ns);
        // Every leaf of the window tree, health records included: the root covers them all.
        let total = [
            r.dict_count,
            r.actor_count,
            r.event_count,
            r.edge_count,
            r.cone_count,
            r.health_count,
        ]
        .iter()
        .try_fold(0u64, |a, &n| a.checked_add(n))
        .ok_or_else(|| damaged(record_path, "record counts overflow"))?;
        let path = root.join(paths.blocks());
        let leaves = match total {
            0 => Vec::new(),
            _ => read_window_leaves(&path, r.window, total)
                .map_err(|e| damaged(&path, e.to_string()))?,
        };
        if leaves.len() as u64 != total {
            let detail = format!(
                "the blocks hold {} leaves, {} counts {total}",
                leaves.len(),
                record_path.display()
            );
            return Err(damaged(&path, detail));
        }
        Ok(WindowLeaves {
            record: r.clone(),
            paths,
            root: root.to_owned(),
            leaves,
        })
    }

    fn dict(&self) -> Range<u64> {
        0..self.record.dict_count
    }

    pub(crate) fn actors(&self) -> Range<u64> {
        let s = self.record.dict_count;
        s..s + self.record.actor_count
    }

    pub(crate) fn atoms(&self) -> Range<u64> {
        let s = self.actors().end;
        s..s + self.record.event_count
    }

    pub(crate) fn cones(&self) -> Range<u64> {
        let s = self.atoms().end + self.record.edge_count;
        s..s + self.record.cone_count
    }

    pub(crate) fn decode<R: Record>(&self, i: u64) -> Result<R, ProveError> {
        R::decode(&self.leaves[i as usize]).map_err(|e| {
            damaged(
                &self.root.join(self.paths.blocks()),
                format!("leaf {i}: {e}"),
            )
        })
    }

    /// Binary search of a section sorted by `key`.
    fn search<R: Record, K: Ord>(
        &self,
        section: Range<u64>,
        key: impl Fn(&R) -> K,
        want: &K,
    ) -> Result<Option<(u64, R)>, ProveError> {
        let (mut lo, mut hi) = (section.start, section.end);
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            let r: R = self.decode(mid)?;
            match key(&r).cmp(want) {
                std::cmp::Ordering::Equal => return Ok(Some((mid, r))),
                std::cmp::Ordering::Less => lo = mid + 1,
                std::cmp::Ordering::Greater => hi = mid,
            }
        }
        Ok(None)
    }

    fn dict_entry(&self, id: &Id128) -> Result<Option<u64>, ProveError> {
        Ok(self
            .search(self.dict(), |d: &DictEntry| d.id, id)?
            .map(|(i, _)| i))
    }

    /// The window's dictionary entry for `id`, if it has one.
    pub(crate) fn dict_lookup(&self, id: &Id128) -> Result<Option<DictEntry>, ProveError> {
        Ok(self
            .search(self.dict(), |d: &DictEntry| d.id, id)?
            .map(|(_, d)| d))
    }

    pub(crate) fn edges(&self) -> Range<u64> {
        let s = self.atoms().end;
        s..s + self.record.edge_count
    }

    pub(crate) fn actor(&self, id: &Id128) -> Result<Option<(u64, ActorRecord)>, ProveError> {
        self.search(self.actors(), |a: &ActorRecord| a.actor, id)
    }
}

/// The window (its position in the log) holding event `seq`, its leaves, and the
/// event's leaf index and atom.
fn find_event(
    root: &Path,
    node: &str,
    sealed: &[Sealed],
    seq: u64,
) -> Result<(usize, WindowLeaves, u64, EventAtom), ProveError> {
    let with_events: Vec<usize> = (0..sealed.len())
        .filter(|&i| sealed[i].record.event_count > 0)
        .collect();
    let lowest = with_events
        .iter()
        .map(|&i| sealed[i].record.first_seq)
        .min()
        .ok_or(ProveError::NoEvents {
            node: node.to_owned(),
        })?;
    // Seqs rise with the windows; a late event sits in an earlier window than its seq's
    // neighbours, so the windows starting at or below `seq` are searched, highest first.
    let mut candidates: Vec<usize> = with_events
        .iter()
        .copied()
        .filter(|&i| sealed[i].record.first_seq <= seq)
        .collect();
    candidates.sort_by_key(|&i| std::cmp::Reverse((sealed[i].record.first_seq, i)));
    let mut highest: Option<u64> = None;
    for (n, &i) in candidates.iter().enumerate() {
        let w = WindowLeaves::read(root, &sealed[i])?;
        if let Some((leaf, atom)) = w.search(w.atoms(), |a: &EventAtom| a.seq, &seq)? {
            return Ok((i, w, leaf, atom));
        }
        if n == 0 {
            // Not where it would normally be: is it inside the store's range at all?
            let h = highest_seq(root, sealed, &with_events)?;
            highest = Some(h);
            if seq > h {
                break;
            }
        }
    }
    let highest = match highest {
        Some(h) => h,
        None => highest_seq(root, sealed, &with_events)?,
    };
    let gap = if (lowest..=highest).contains(&seq) {
        ", but not this one (a gap: never read, or lost before sealing)"
    } else {
        ""
    };
    Err(ProveError::SeqNotFound {
        seq,
        node: node.to_owned(),
        lowest,
        highest,
        gap,
    })
}

/// The highest seq sealed: the largest of the windows' last atoms.
fn highest_seq(root: &Path, sealed: &[Sealed], with_events: &[usize]) -> Result<u64, ProveError> {
    let mut highest = 0;
    for &i in with_events {
        let last = last_seq(root, &sealed[i].record)
            .map_err(|e| damaged(&sealed[i].record_path, e.to_string()))?;
        highest = highest.max(last.unwrap_or(0));
    }
    Ok(highest)
}

/// The leaves a proof of the event carries: the atom, its actor's record, its object
/// (a dictionary entry, or the actor record of a fork's child or a ptrace target), the
/// entries the actor records name, and the argv entry of its `arg_hash`, as far as the
/// window holds them.
fn named_leaves(
    w: &WindowLeaves,
    event_leaf: u64,
    atom: &EventAtom,
) -> Result<Vec<u64>, ProveError> {
    let mut chosen = vec![event_leaf];
    let mut actors = Vec::new();
    for id in [atom.actor, atom.object] {
        if let Some((i, a)) = w.actor(&id)? {
            chosen.push(i);
            actors.push(a);
        }
    }
    if let Some(i) = w.dict_entry(&atom.object)? {
        chosen.push(i);
    }
    for a in &actors {
        for id in [a.exe, Some(a.comm), a.container, a.service]
            .into_iter()
            .flatten()
        {
            if let Some(i) = w.dict_entry(&id)? {
                chosen.push(i);
            }
        }
    }
    if let (Some(h), EventType::Exec) = (atom.arg_hash, atom.event_type) {
        for i in w.dict() {
            let d: DictEntry = w.decode(i)?;
            let matches = match d.hashed {
                true => d.value == h,
                false => ritma_schemas::hash::blake3(&d.value) == h,
            };
            if d.kind == DictKind::Argv && matches {
                chosen.push(i);
                break;
            }
        }
    }
    chosen.sort_unstable();
    chosen.dedup();
    Ok(chosen)
}

#[derive(Debug, thiserror::Error)]
pub enum VerifyProofError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: longer than {MAX_BUNDLE_LEN} bytes, the most a proof bundle is")]
    TooLarge { path: PathBuf },
    #[error("{path}: no pinned key is named {name}, the proof's node")]
    NoKey { path: PathBuf, name: String },
    #[error("{path}: proof check failed at {}: {source}", source.part())]
    Check {
        path: PathBuf,
        source: Box<BundleError>,
    },
}

/// Reads and checks a proof file; `pinned` are the keys obtained out of band, if any (the
/// ones named after the proof's node are tried).
pub fn verify_proof(
    path: &Path,
    pinned: Option<&[NoteVerifier]>,
) -> Result<ProvenEvent, VerifyProofError> {
    let io = |source| VerifyProofError::Io {
        path: path.to_owned(),
        source,
    };
    let bytes = read_capped(path, MAX_BUNDLE_LEN).map_err(|e| match e.kind() {
        std::io::ErrorKind::InvalidData => VerifyProofError::TooLarge {
            path: path.to_owned(),
        },
        _ => io(e),
    })?;
    let check = |source| VerifyProofError::Check {
        path: path.to_owned(),
        source: Box::new(source),
    };
    let Some(pinned) = pinned else {
        return ProofBundle::verify_bytes(&bytes, None).map_err(check);
    };
    let bundle = ProofBundle::decode(&bytes).map_err(|e| check(BundleError::Decode(e)))?;
    let node = WindowRecord::decode(&bundle.window_record)
        .map_err(|e| check(BundleError::WindowRecord(e)))?
        .node;
    let name = format!("ritma/{node}");
    let mine: Vec<&NoteVerifier> = pinned.iter().filter(|k| k.name() == name).collect();
    let mut last = None;
    for k in &mine {
        match bundle.verify(Some(k)) {
            Ok(p) => return Ok(p),
            Err(e) => last = Some(e),
        }
    }
    Err(match last {
        Some(e) => check(e),
        None => VerifyProofError::NoKey {
            path: path.to_owned(),
            name,
        },
    })
}

pub(crate) use ritma_schemas::display::{dict_kind_name, dict_value, event_type_name, hex};
/// FORMAT.md §3.2 names of an atom's flag bits.
pub(crate) use ritma_schemas::records::atom_flags::names as flag_names;

fn b64(h: &Hash32) -> String {
    base64::engine::general_purpose::STANDARD.encode(h)
}

/// `ns` since the epoch as an RFC 3339 UTC time with nanoseconds.
pub fn utc(ns: i128) -> String {
    let secs = ns.div_euclid(1_000_000_000);
    let frac = ns.rem_euclid(1_000_000_000);
    let days = secs.div_euclid(86_400);
    let day_s = secs.rem_euclid(86_400);
    match i64::try_from(days) {
        Ok(days) => {
            let (y, m, d) = civil_from_days(days);
            format!(
                "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{frac:09}Z",
                day_s / 3600,
                day_s % 3600 / 60,
                day_s % 60
            )
        }
        Err(_) => format!("{ns} ns since the epoch"),
    }
}

/// The human summary `verify-proof` prints.
pub fn summary_text(p: &ProvenEvent, pinned_by: Option<&str>) -> String {
    let e = &p.event;
    let w = &p.window;
    let mut out = String::new();
    let mut line = |k: &str, v: String| out.push_str(&format!("{k:<11}{v}\n"));
    line("OK", format!("proof of node {}, seq {}", w.node, e.seq));
    let flags = flag_names(e.flags);
    line(
        "event:",
        format!(
            "{}{}",
            event_type_name(e.event_type),
            if flags.is_empty() {
                String::new()
            } else {
                format!(" ({})", flags.join(", "))
            }
        ),
    );
    line("time:", utc(p.time_ns()));
    line(
        "window:",
        format!(
            "{} (from {}, {} ms), leaf {} of {}; {} events, {} lost",
            w.window,
            utc(w.t_start_ns() as i128),
            w.window_len_ns / 1_000_000,
            p.event_leaf,
            p.window_leaves,
            w.event_count,
            w.lost_total()
        ),
    );
    line("actor:", actor_text(p, &e.actor));
    line("object:", object_text(p));
    if let Some(a) = p.dict.iter().find(|d| d.kind == DictKind::Argv) {
        line("argv:", dict_value(a));
    }
    line(
        "node log:",
        format!(
            "window record is leaf {} of the signed checkpoint of size {} (root {})",
            p.log_index,
            p.checkpoint.size,
            b64(&p.checkpoint.root)
        ),
    );
    if let Some(x) = &p.extension {
        line(
            "extended:",
            format!(
                "consistent with the signed checkpoint of size {} (root {})",
                x.size,
                b64(&x.root)
            ),
        );
    }
    for s in &p.signers {
        line("signed by:", s.to_vkey());
    }
    line("first key:", p.anchor.to_vkey());
    line(
        "key:",
        match (p.pinned, pinned_by) {
            (true, Some(by)) => format!("pinned ({by})"),
            (true, None) => "pinned".to_owned(),
            (false, _) => "NOT PINNED: the key was taken from the proof itself".to_owned(),
        },
    );
    out
}

fn actor_text(p: &ProvenEvent, id: &Id128) -> String {
    let Some(a) = p.actor(id) else {
        return format!("{} (no actor record in the proof)", hex(id));
    };
    let name = |id: Option<Id128>| id.and_then(|i| p.dict_entry(&i)).map(dict_value);
    let mut s = format!(
        "pid {} (ppid {}) uid {} euid {} gid {}",
        a.pid, a.ppid, a.uid, a.euid, a.gid
    );
    for (k, v) in [
        ("comm", name(Some(a.comm))),
        ("exe", name(a.exe)),
        ("container", name(a.container)),
        ("service", name(a.service)),
    ] {
        if let Some(v) = v {
            s.push_str(&format!(" {k} {v}"));
        }
    }
    s.push_str(&format!(" [{}]", hex(id)));
    s
}

fn object_text(p: &ProvenEvent) -> String {
    let o = &p.event.object;
    if let Some(d) = p.dict_entry(o) {
        return format!("{} {}", dict_kind_name(d.kind), dict_value(d));
    }
    if p.actor(o).is_some() {
        return format!("process {}", actor_text(p, o));
    }
    if *o == [0; 16] {
        return "none".to_owned();
    }
    format!("{} (not in the window's dictionary or actors)", hex(o))
}

/// Minimal JSON string literal.
fn js(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// The JSON object `verify-proof --json` prints.
pub fn summary_json(p: &ProvenEvent) -> String {
    let e = &p.event;
    let w = &p.window;
    let dict = |id: &Id128| {
        p.dict_entry(id)
            .map_or("null".to_owned(), |d| js(&dict_value(d)))
    };
    let actor = match p.actor(&e.actor) {
        Some(a) => format!(
            "{{\"id\":{},\"pid\":{},\"ppid\":{},\"uid\":{},\"euid\":{},\"gid\":{},\"comm\":{},\"exe\":{}}}",
            js(&hex(&a.actor)),
            a.pid,
            a.ppid,
            a.uid,
            a.euid,
            a.gid,
            dict(&a.comm),
            a.exe.map_or("null".to_owned(), |x| dict(&x))
        ),
        None => format!("{{\"id\":{}}}", js(&hex(&e.actor))),
    };
    let object_kind = p
        .dict_entry(&e.object)
        .map_or("null".to_owned(), |d| js(&dict_kind_name(d.kind)));
    let flags: Vec<String> = flag_names(e.flags).iter().map(|f| js(f)).collect();
    let cp = |c: &ritma_schemas::note::Checkpoint| {
        format!("{{\"size\":{},\"root\":{}}}", c.size, js(&b64(&c.root)))
    };
    let signers: Vec<String> = p.signers.iter().map(|s| js(&s.to_vkey())).collect();
    format!(
        "{{\"ok\":true,\"node\":{},\"seq\":{},\"event_type\":{},\"flags\":[{}],\"time\":{},\"time_ns\":{},\"window\":{},\"window_len_ns\":{},\"leaf\":{},\"window_leaves\":{},\"actor\":{actor},\"object\":{{\"id\":{},\"kind\":{object_kind},\"value\":{}}},\"log_index\":{},\"checkpoint\":{},\"extension\":{},\"signers\":[{}],\"first_key\":{},\"pinned\":{}}}",
        js(&w.node),
        e.seq,
        js(&event_type_name(e.event_type)),
        flags.join(","),
        js(&utc(p.time_ns())),
        p.time_ns(),
        w.window,
        w.window_len_ns,
        p.event_leaf,
        p.window_leaves,
        js(&hex(&e.object)),
        dict(&e.object),
        p.log_index,
        cp(&p.checkpoint),
        p.extension.as_ref().map_or("null".to_owned(), cp),
        signers.join(","),
        js(&p.anchor.to_vkey()),
        p.pinned
    )
}

/// The JSON object `prove --json` prints.
pub fn report_json(r: &ProveReport, out: &Path) -> String {
    format!(
        "{{\"file\":{},\"bytes\":{},\"node\":{},\"seq\":{},\"window\":{},\"leaf\":{},\"window_leaves\":{},\"leaves\":{},\"log_index\":{},\"checkpoint_size\":{},\"latest_size\":{}}}",
        js(&out.display().to_string()),
        r.bytes,
        js(&r.node),
        r.seq,
        r.window,
        r.event_leaf,
        r.window_leaves,
        r.leaves,
        r.log_index,
        r.checkpoint_size,
        r.latest_size
    )
}

/// `ritma prove`: writes the proof and prints what it holds.
pub fn prove_cmd(req: ProveRequest, json: bool) -> anyhow::Result<()> {
    let r = prove(&req)?;
    if json {
        println!("{}", report_json(&r, &req.out));
        return Ok(());
    }
    let extended = match r.latest_size > r.checkpoint_size {
        true => format!(", extended to size {}", r.latest_size),
        false => String::new(),
    };
    println!(
        "wrote {}: {} bytes, proof of node {} seq {}: leaf {} of {} in window {} ({} leaves proven), window record leaf {} of the node log under the checkpoint of size {}{extended}",
        req.out.display(),
        r.bytes,
        r.node,
        r.seq,
        r.event_leaf,
        r.window_leaves,
        r.window,
        r.leaves,
        r.log_index,
        r.checkpoint_size
    );
    Ok(())
}

/// A verifier-key argument (`--key`, `--approver`): vkey text, or a file holding it.
pub(crate) fn vkey_arg(flag: &str, k: &str) -> anyhow::Result<NoteVerifier> {
    NoteVerifier::from_vkey(&crate::trust::key_arg_text(k))
        .map_err(|e| anyhow::anyhow!("{flag} {k}: not a verifier key: {e}"))
}

/// `ritma verify-proof`: checks a proof file and prints the proven event.
pub fn verify_proof_cmd(file: &Path, trust: &Trust, json: bool) -> anyhow::Result<()> {
    let pinned_by = match trust {
        Trust::Pinned { from, .. } => Some(from.as_str()),
        Trust::Embedded => None,
    };
    let p = verify_proof(file, trust.keys())?;
    match json {
        true => println!("{}", summary_json(&p)),
        false => print!("{}", summary_text(&p, pinned_by)),
    }
    if pinned_by.is_none() {
        let keys: Vec<String> = p.signers.iter().map(NoteVerifier::to_vkey).collect();
        eprintln!(
            "ritma: warning: the proof is signed by {} and its key history starts at {}, both taken from the proof itself (--trust-embedded-key); pin the node's vkey, obtained out of band, with --key or --trust",
            keys.join(" and "),
            p.anchor.to_vkey()
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_and_names_render() {
        assert_eq!(utc(0), "1970-01-01T00:00:00.000000000Z");
        assert_eq!(
            utc(1_793_491_200_000_000_001),
            "2026-11-01T00:00:00.000000001Z"
        );
        assert_eq!(utc(-1), "1969-12-31T23:59:59.999999999Z");
        assert_eq!(js("a\"b\\\n"), "\"a\\\"b\\\\\\u000a\"");
        assert_eq!(event_type_name(EventType::MemfdCreate), "memfd_create");
        assert_eq!(dict_kind_name(DictKind::Flow), "flow");
    }
}
