//! `ritma verify`: checks a RITMA_OUT store without trusting anything in it but
//! the key history's anchor (which the caller may pin). Every window record, block
//! and leaf is decoded strictly; every window root is recomputed from its blocks;
//! the node log is rebuilt and every checkpoint's signature, size and root checked;
//! windows must follow each other without gaps or repeats, every event seq must
//! appear once, and a missing seq must be covered by sealed loss.
//!
//! Failures carry a stable code (FORMAT.md §9) and the exact file and window.

use crate::cas::Cas;
use crate::index::{
    edge_refs_stem, read_compressed, read_taint_index, HourIndex, HourIndexBuilder, IndexedWindow,
    PartIds,
};
use crate::interrupted::{Interrupted, Leftovers};
use crate::keys::Keystore;
use crate::store::{is_temp_name, BlockFile, WindowPaths};
use ritma_operators::capture_mode::ModeRaises;
use ritma_operators::taint::TaintTracker;
use ritma_schemas::catalog::{AccountHour, CatalogHour, HourState};
use ritma_schemas::cosignature::CosignatureVerifier;
use ritma_schemas::index::{EdgePart, EdgeRefs, EdgeRun, TaintIndex, MAX_INDEX_LEN};
use ritma_schemas::keys::KeyHistory;
use ritma_schemas::merkle::{verify_consistency, Blake3Tree, Frontier, TreeHash};
use ritma_schemas::note::{Checkpoint, NoteVerifier};
use ritma_schemas::packed::{IdIndex, IdTable};
use ritma_schemas::proof_bundle::MAX_NOTE_LEN;
use ritma_schemas::records::{
    atom_flags, windows_per_hour, AnyRecord, CaptureMode, ConeInstance, DictKind, Edge, EventAtom,
    EventType, HealthKind, HourDeletion, HourSeal, LossReason, PrevHour, Record, SignedRecord,
    StoreMeta, WindowRecord, HOUR_NS, MAX_BLOCK_RECORDS,
};
use ritma_schemas::Hash32;
use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

/// A verification failure: a stable code, where, and what.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("{code} {path}{}: {detail}", window.map(|w| format!(" (window {w})")).unwrap_or_default())]
pub struct VerifyError {
    /// One of the `E_*` codes of FORMAT.md §9.
    pub code: &'static str,
    pub path: PathBuf,
    pub window: Option<u64>,
    pub detail: String,
}

/// A store file read whole within `max` bytes, its bound: a longer one is E_DECODE (it
/// cannot hold what it should), one that cannot be read `io_code` (E_IO, E_MISSING).
pub(crate) fn read_file(
    path: &Path,
    max: usize,
    w: Option<u64>,
    io_code: &'static str,
) -> Result<Vec<u8>, VerifyError> {
    crate::store::read_capped(path, max).map_err(|e| {
        let code = match e.kind() {
            std::io::ErrorKind::InvalidData => "E_DECODE",
            _ => io_code,
        };
        fail(code, path, w, e.to_string())
    })
}

pub(crate) fn fail(
    code: &'static str,
    path: &Path,
    window: Option<u64>,
    detail: impl Into<String>,
) -> VerifyError {
    VerifyError {
        code,
        path: path.to_owned(),
        window,
        detail: detail.into(),
    }
}

/// What a verified node's tree holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeReport {
    pub node: String,
    pub windows: u64,
    pub first_window: Option<u64>,
    pub last_window: Option<u64>,
    pub events: u64,
    pub lost: u64,
    pub log_size: u64,
    pub log_root: Hash32,
    /// Sealed hours deleted by retention, each with its signed deletion record.
    pub deleted_hours: u64,
    /// Cases (`cases/CASE_*`), each checked.
    pub cases: u64,
    /// Windows whose checkpoint signature and blocks were checked: all of them, or those of
    /// the hours a range overlaps.
    pub checked_windows: u64,
    /// What an interrupted writer left (FORMAT.md §8.12), empty for a complete store.
    pub interrupted: Interrupted,
    /// The saved checkpoints of this node the store was found to extend.
    pub extended: Vec<Extended>,
    /// The file of the node log's newest signed checkpoint (none for an empty store).
    pub newest_checkpoint: Option<PathBuf>,
}

/// A time range `[from_ns, to_ns)` of wall-clock ns: `verify_store_range` checks the blocks of
/// the hours it overlaps and only chains the other windows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TimeRange {
    pub from_ns: u64,
    pub to_ns: u64,
}

impl TimeRange {
    /// From `from_ns` (default: the epoch) to `to_ns` (default: the end of time).
    pub fn new(from_ns: Option<u64>, to_ns: Option<u64>) -> Self {
        TimeRange {
            from_ns: from_ns.unwrap_or(0),
            to_ns: to_ns.unwrap_or(u64::MAX),
        }
    }

    /// Whether `[start_ns, end_ns)` and the range share an instant.
    pub fn overlaps(&self, start_ns: u128, end_ns: u128) -> bool {
        end_ns > self.from_ns as u128 && start_ns < self.to_ns as u128
    }

    /// Whether `t_ns` is inside the range.
    pub fn contains(&self, t_ns: i128) -> bool {
        t_ns >= self.from_ns as i128 && t_ns < self.to_ns as i128
    }

    fn overlaps_hour(&self, hour: u64) -> bool {
        let start = hour as u128 * HOUR_NS as u128;
        self.overlaps(start, start + HOUR_NS as u128)
    }
}

/// A checkpoint saved or cosigned elsewhere that the store must still hold and extend
/// (`verify --checkpoint`, FORMAT.md §4.4): a tail cut or a rewrite after it is caught.
#[derive(Clone, Debug)]
pub struct SavedCheckpoint {
    /// Where it came from, for errors.
    pub path: PathBuf,
    /// The signed note (the node's signature, and any cosignatures).
    pub note: String,
    /// Witnesses whose cosignature it must carry.
    pub witnesses: Vec<CosignatureVerifier>,
}

/// How a store is verified.
pub struct VerifyOptions<'a> {
    /// The keys pinned from elsewhere (`None`: the store's own, FORMAT.md §5).
    pub anchor: Option<&'a [NoteVerifier]>,
    /// Check blocks only in the hours this range overlaps.
    pub range: Option<TimeRange>,
    /// Told (windows done, windows in all).
    pub progress: Progress<'a>,
    /// Checkpoints the store must extend, each of the node its origin names.
    pub checkpoints: &'a [SavedCheckpoint],
}

/// What a saved checkpoint proved of a node's store.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Extended {
    pub path: PathBuf,
    pub size: u64,
    /// Each required witness, and the time of its cosignature.
    pub witnessed: Vec<(String, u64)>,
}

/// Verifies every node tree of the store at `dir`. `anchor`, the keys pinned from
/// elsewhere, pins the first key of
/// each node's key history (otherwise it is taken from the store).
pub fn verify_store(
    dir: &Path,
    anchor: Option<&[NoteVerifier]>,
) -> Result<Vec<NodeReport>, VerifyError> {
    verify_store_range(dir, anchor, None, &|_, _| {})
}

/// Told (windows done, windows in all) as verification goes, for a progress bar.
pub type Progress<'a> = &'a dyn Fn(u64, u64);

/// [`verify_store`], checking blocks, window signatures, indexes and edges only in the hours
/// `range` overlaps (all hours when None). Every other window record is still read, checked
/// for layout and continuity and chained into the node log, so a checked window's signed
/// checkpoint authenticates every record before it; every hour seal is checked.
pub fn verify_store_range(
    dir: &Path,
    anchor: Option<&[NoteVerifier]>,
    range: Option<TimeRange>,
    progress: Progress<'_>,
) -> Result<Vec<NodeReport>, VerifyError> {
    verify_store_with(
        dir,
        &VerifyOptions {
            anchor,
            range,
            progress,
            checkpoints: &[],
        },
    )
}

/// [`verify_store_range`] with saved checkpoints to extend.
pub fn verify_store_with(
    dir: &Path,
    opts: &VerifyOptions<'_>,
) -> Result<Vec<NodeReport>, VerifyError> {
    let reports = verify_roots(dir, opts)?;
    // A checkpoint of a node the store does not hold proves nothing was kept.
    for c in opts.checkpoints {
        let node = checkpoint_node(c)?;
        if !reports.iter().any(|r| r.node == node) {
            let detail = format!("a checkpoint of node {node}, which the store does not hold");
            return Err(fail("E_CHECKPOINT", &c.path, None, detail));
        }
    }
    Ok(reports)
}

/// The node a saved checkpoint's origin names.
fn checkpoint_node(c: &SavedCheckpoint) -> Result<String, VerifyError> {
    let body = ritma_schemas::note::parse_note(&c.note)
        .map_err(|e| fail("E_DECODE", &c.path, None, e.to_string()))?
        .body;
    let cp =
        Checkpoint::parse_body(body).map_err(|e| fail("E_DECODE", &c.path, None, e.to_string()))?;
    cp.node().map(str::to_owned).ok_or_else(|| {
        fail(
            "E_DECODE",
            &c.path,
            None,
            "not a checkpoint of a Ritma node",
        )
    })
}

fn verify_roots(dir: &Path, opts: &VerifyOptions<'_>) -> Result<Vec<NodeReport>, VerifyError> {
    if dir.join("_meta/store.cbor").exists() {
        return Ok(vec![verify_node(dir, opts)?]);
    }
    let nodes = dir.join("nodes");
    let mut roots: Vec<PathBuf> = match fs::read_dir(&nodes) {
        Ok(it) => it.filter_map(|e| e.ok().map(|e| e.path())).collect(),
        Err(_) => {
            return Err(fail(
                "E_LAYOUT",
                dir,
                None,
                "no _meta/store.cbor and no nodes/: not a Ritma store",
            ))
        }
    };
    roots.sort();
    if roots.is_empty() {
        return Err(fail("E_LAYOUT", &nodes, None, "no node trees"));
    }
    roots.iter().map(|r| verify_node(r, opts)).collect()
}

/// The node's key history from `_meta/keys/` of `root` (a store's node tree or a case
/// bundle), pinned to one of the `anchor` keys named `ritma/<node>` if given; the
/// verifier key beside it must be the node's and one of its keys.
pub(crate) fn node_key_history(
    root: &Path,
    meta_path: &Path,
    node: &str,
    anchor: Option<&[NoteVerifier]>,
) -> Result<KeyHistory, VerifyError> {
    let keys = Keystore::for_store(root);
    let vkey = keys
        .load_verifier()
        .map_err(|e| fail("E_KEYS", &keys.public_path(), None, e.to_string()))?;
    if vkey.name() != format!("ritma/{node}") {
        let detail = format!(
            "store.cbor names node `{}` but the store's key is `{}`",
            node,
            vkey.name()
        );
        return Err(fail("E_LAYOUT", meta_path, None, detail));
    }
    let history: KeyHistory = keys
        .load_history(node)
        .map_err(|e| fail("E_KEYS", &keys.events_dir(), None, e.to_string()))?;
    if let Some(pinned) = anchor {
        let name = format!("ritma/{node}");
        let mine: Vec<&NoteVerifier> = pinned.iter().filter(|k| k.name() == name).collect();
        let Some(first) = mine.first() else {
            let named: Vec<&str> = pinned.iter().map(NoteVerifier::name).collect();
            let detail = format!(
                "no pinned key is named {name} (the keys pinned are named {})",
                named.join(", ")
            );
            return Err(fail("E_KEYS", &keys.events_dir(), None, detail));
        };
        if !mine.iter().any(|k| history.expect_anchor(k).is_ok()) {
            let e = history.expect_anchor(first).expect_err("none matched");
            return Err(fail("E_KEYS", &keys.events_dir(), None, e.to_string()));
        }
    }
    // The public key file beside the history must name a key of it.
    if !history.spans().iter().any(|s| s.verifier == vkey) {
        return Err(fail(
            "E_KEYS",
            &keys.public_path(),
            None,
            "the public key is not in the key history",
        ));
    }
    Ok(history)
}

/// Every file under `_meta/health/` is the copy of a sealed health record.
fn check_no_other_health_copies(
    root: &Path,
    copies: &std::collections::HashSet<PathBuf>,
    left: &Leftovers,
) -> Result<(), VerifyError> {
    let mut stack = vec![PathBuf::from("_meta/health")];
    while let Some(dir) = stack.pop() {
        for n in names(&root.join(&dir))? {
            let rel = dir.join(&n);
            if root.join(&rel).is_dir() {
                stack.push(rel);
            } else if !copies.contains(&rel) && !left.skips(&rel) {
                return Err(fail(
                    "E_EXTRA",
                    &root.join(&rel),
                    None,
                    "a file under _meta/health/ that no sealed health record has",
                ));
            }
        }
    }
    Ok(())
}

/// Sorted names in `dir` but temporary files (an absent directory is empty): a node
/// tree's temporary files are reported as an interrupted write (FORMAT.md §8.12).
pub(crate) fn names(dir: &Path) -> Result<Vec<String>, VerifyError> {
    let mut v = all_names(dir)?;
    v.retain(|n| !is_temp_name(n));
    Ok(v)
}

/// Sorted names in `dir`, temporary files included (an absent directory is empty).
pub(crate) fn all_names(dir: &Path) -> Result<Vec<String>, VerifyError> {
    let mut v = Vec::new();
    if let Ok(it) = fs::read_dir(dir) {
        for e in it {
            let e = e.map_err(|e| fail("E_IO", dir, None, e.to_string()))?;
            v.push(e.file_name().to_string_lossy().into_owned());
        }
    }
    v.sort();
    Ok(v)
}

/// The hour directories `windows/YYYY/MM/DD/HH`, in time order.
pub(crate) fn hour_dirs(root: &Path) -> Result<Vec<PathBuf>, VerifyError> {
    let mut out = vec![PathBuf::from("windows")];
    for width in [4, 2, 2, 2] {
        let mut next = Vec::new();
        for d in &out {
            for n in names(&root.join(d))? {
                if n.len() != width || !n.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(fail(
                        "E_EXTRA",
                        &root.join(d).join(&n),
                        None,
                        "unexpected entry in the windows tree",
                    ));
                }
                next.push(d.join(n));
            }
        }
        out = next;
    }
    Ok(out)
}

/// The store's StoreMeta; a store of another format version is refused (E_LAYOUT, naming
/// it) before any of its files is read, even where its StoreMeta has another shape.
pub(crate) fn read_store_meta(bytes: &[u8], meta_path: &Path) -> Result<StoreMeta, VerifyError> {
    let version = StoreMeta::format_version_of(bytes);
    if let Some(v) = version.filter(|&v| v != u64::from(crate::store::FORMAT_VERSION)) {
        let detail = format!(
            "format version {v}, this verifier reads version {}",
            crate::store::FORMAT_VERSION
        );
        return Err(fail("E_LAYOUT", meta_path, None, detail));
    }
    StoreMeta::decode(bytes).map_err(|e| fail("E_DECODE", meta_path, None, e.to_string()))
}

/// Parses `w0042.cbor`, `w0042.sig` → (42, ext).
fn parse_micro(name: &str) -> Option<(u64, &str)> {
    let (stem, ext) = name.strip_prefix('w')?.split_once('.')?;
    (stem.len() == 4 && stem.bytes().all(|b| b.is_ascii_digit()) && (ext == "cbor" || ext == "sig"))
        .then(|| (stem.parse().ok().unwrap_or(0), ext))
}

/// Parses a block file's name `w0042.cbor.zst` → 42.
pub(crate) fn parse_block_file(name: &str) -> Option<u64> {
    let w = name.strip_prefix('w')?.strip_suffix(".cbor.zst")?;
    (w.len() == 4 && w.bytes().all(|c| c.is_ascii_digit())).then(|| w.parse().unwrap_or(0))
}

/// Seqs seen so far, as a bitmap from the first window's first seq.
pub(crate) struct SeqSet {
    /// The seq of bit 0 of `bits` (a multiple of 64).
    base: Option<u64>,
    bits: Vec<u64>,
    min: Option<u64>,
    max: Option<u64>,
    count: u64,
}

impl SeqSet {
    pub(crate) fn new() -> Self {
        SeqSet {
            base: None,
            bits: Vec::new(),
            min: None,
            max: None,
            count: 0,
        }
    }

    /// False if `seq` was seen before.
    pub(crate) fn insert(&mut self, seq: u64) -> bool {
        let base = *self.base.get_or_insert(seq & !63);
        if seq < base {
            // A late window may hold a lower seq than the first window: grow downwards.
            let words = (base - seq).div_ceil(64);
            self.bits
                .splice(0..0, std::iter::repeat_n(0, words as usize));
            self.base = Some(base - words * 64);
            return self.insert(seq);
        }
        let i = seq - base;
        let (word, bit) = ((i / 64) as usize, i % 64);
        if word >= self.bits.len() {
            self.bits.resize(word + 1, 0);
        }
        if self.bits[word] & (1 << bit) != 0 {
            return false;
        }
        self.bits[word] |= 1 << bit;
        self.max = Some(self.max.map_or(seq, |m| m.max(seq)));
        self.min = Some(self.min.map_or(seq, |m| m.min(seq)));
        self.count += 1;
        true
    }

    /// Counts `count` seqs of `[lo, hi]` that retention deleted (they cannot be checked).
    fn insert_deleted(&mut self, lo: u64, hi: u64, count: u64) {
        self.min = Some(self.min.map_or(lo, |m| m.min(lo)));
        self.max = Some(self.max.map_or(hi, |m| m.max(hi)));
        self.count += count;
    }

    /// The seq after the highest seen (0 before any): an empty window's `first_seq`.
    fn next(&self) -> u64 {
        self.max.map_or(0, |m| m.saturating_add(1))
    }

    /// Seqs between the lowest and highest seen that never appeared.
    fn missing(&self) -> u64 {
        match (self.min, self.max) {
            (Some(lo), Some(hi)) => hi - lo + 1 - self.count,
            _ => 0,
        }
    }
}

fn verify_node(root: &Path, opts: &VerifyOptions<'_>) -> Result<NodeReport, VerifyError> {
    let (anchor, range, progress) = (opts.anchor, opts.range, opts.progress);
    let meta_path = root.join("_meta/store.cbor");
    let meta_bytes = read_file(&meta_path, StoreMeta::MAX_LEN, None, "E_MISSING")?;
    let meta = read_store_meta(&meta_bytes, &meta_path)?;
    let history = node_key_history(root, &meta_path, &meta.node, anchor)?;
    let mut saved = SavedRoots::of_node(opts.checkpoints, &meta.node, &history)?;
    // The checkpoint of the newest window (or hour seal), verified with the others.
    let mut newest_checkpoint: Option<PathBuf> = None;

    // The cone library the windows name must be the published one, byte for byte.
    let cones_dir = root.join(format!("ctgf/cones/v{:04}", meta.cone_lib_version));
    let known = ritma_schemas::cone_library::library(meta.cone_lib_version).ok_or_else(|| {
        fail(
            "E_CONES",
            &meta_path,
            None,
            format!(
                "store.cbor names cone library version {}, unknown to this verifier",
                meta.cone_lib_version
            ),
        )
    })?;
    if !cones_dir.is_dir() {
        return Err(fail(
            "E_CONES",
            &meta_path,
            None,
            format!(
                "store.cbor names cone library version {}, which the store does not hold",
                meta.cone_lib_version
            ),
        ));
    }
    let present = names(&cones_dir)?;
    if present != known.iter().map(|(n, _)| n.to_string()).collect::<Vec<_>>() {
        return Err(fail(
            "E_CONES",
            &cones_dir,
            None,
            "the cone files are not those of this library version",
        ));
    }
    for (name, text) in &known {
        let path = cones_dir.join(name);
        let same = match crate::store::read_capped(&path, text.len()) {
            Ok(b) => b == text.as_bytes(),
            Err(e) if e.kind() == std::io::ErrorKind::InvalidData => false,
            Err(e) => return Err(fail("E_IO", &path, None, e.to_string())),
        };
        if !same {
            return Err(fail(
                "E_CONES",
                &path,
                None,
                "differs from the published cone library",
            ));
        }
    }
    let ctgf = names(&root.join("ctgf/cones"))?;
    if ctgf != [format!("v{:04}", meta.cone_lib_version)] {
        return Err(fail(
            "E_EXTRA",
            &root.join("ctgf/cones"),
            None,
            "cone libraries other than the one the store names",
        ));
    }

    let mut log = Frontier::new();
    let mut prev_window: Option<u64> = None;
    // The runs of consecutive windows the node log holds (deleted hours counted whole).
    let mut held: Vec<(u64, u64)> = Vec::new();
    let hold = |held: &mut Vec<(u64, u64)>, first: u64, last: u64| match held.last_mut() {
        Some((_, hi)) if *hi + 1 == first => *hi = last,
        _ => held.push((first, last)),
    };
    // Windows left out while capture was down must be accounted for by a restart.
    let mut sequence = crate::continuity::WindowSequence::new(meta.window_len_ns);
    let mut first_window = None;
    let mut seqs = SeqSet::new();
    let (mut events, mut lost, mut gap_covering_loss) = (0u64, 0u64, 0u64);
    let per_hour = windows_per_hour(meta.window_len_ns);
    let mut hour_prev: Option<PrevHour> = None;
    // The digest of the state saved at the last hour's end, for the window after it.
    let mut saved_state: Option<(ritma_schemas::Hash32, PathBuf)> = None;

    let mut blobs_checked = std::collections::HashSet::new();
    let mut health_copies: std::collections::HashSet<PathBuf> = Default::default();
    let hours = hour_dirs(root)?;
    check_graph_dirs(root, &hours)?;
    let mut left = Leftovers::find(root, &hours, meta.window_len_ns)?;
    let (total_windows, mut windows_done) = (left.completed_windows(), 0u64);
    // What the catalog and accounting must say of each hour, checked after the last.
    let mut catalog_want: BTreeMap<u64, CatalogWant> = BTreeMap::new();
    // Taint is rebuilt over the whole log with the store's lifetime.
    let ttl = meta.taint_ttl_windows;
    check_taint_lifetime(root, &meta_path, &hours, ttl)?;
    let mut taint = TaintTracker::new(ttl);
    // Capture modes follow the rebuilt taint: checked wherever it is exact (FORMAT.md §10).
    let mut raises = ModeRaises::new(CaptureMode::Thin, ttl);
    // After a deleted hour the taint of the next `ttl` windows depends on deleted edges:
    // the index's own changes are taken for them (FORMAT.md §8.5).
    let mut taint_rebuilt_from = 0u64;
    let (mut deleted_hours, mut deletions_signed_at) = (0u64, 0u64);
    let mut deleted_windows: Vec<(u64, u64)> = Vec::new();
    // Seqs are checked within each run of checked windows; a skipped run ends one.
    let (mut checked_windows, mut missing_seqs, mut skipping) = (0u64, 0u64, false);
    // Whether every window so far was checked: then an empty window's first_seq is known.
    let mut seqs_from_start = true;
    // The newest window, if not checked: its checkpoint is verified at the end, so the
    // newest signed root authenticates every record, in range or not.
    let mut unchecked_tail: Option<(PathBuf, PathBuf, u64, u64, Hash32)> = None;
    for hour in hours {
        let deleted = deleted_hour(root, &hour, &meta, &history)?;
        let hour_checked = match (range, WindowPaths::hour_of_dir(&hour)) {
            (Some(r), Some(h)) => r.overlaps_hour(h),
            _ => true,
        };
        if let Some(n) = names(&root.join(&hour))?.into_iter().find(|n| {
            let allowed: &[&str] = match deleted {
                Some(_) => &["proofs"],
                None => &["blocks", "index", "micro", "proofs"],
            };
            !allowed.contains(&n.as_str())
        }) {
            let detail = match deleted {
                Some(_) => "a file of an hour retention deleted",
                None => "unexpected entry in an hour directory",
            };
            return Err(fail("E_EXTRA", &root.join(&hour).join(n), None, detail));
        }
        let mut hour_first: Option<u64> = None;
        let mut trusted_taint: Option<TaintByWindow> = None;
        if let Some(d) = &deleted {
            let path = root.join(&hour).join(crate::retention::DELETION_FILE);
            let w = Some(d.first_window);
            sequence
                .deleted(d.first_window, d.last_window)
                .map_err(|e| fail("E_CONTINUITY", &path, w, format!("the deleted hour: {e}")))?;
            if d.log_start != log.size()
                || log
                    .push_deleted::<Blake3Tree>(d.windows(), &d.subtrees)
                    .is_err()
            {
                return Err(fail(
                    "E_RETENTION",
                    &path,
                    w,
                    format!(
                        "the deleted hour starts at node-log size {}, the log before it has {}",
                        d.log_start,
                        log.size()
                    ),
                ));
            }
            saved.observe(&log)?;
            newest_checkpoint = Some(root.join(&hour).join("proofs/hour_root.sig"));
            prev_window = Some(d.last_window);
            hold(&mut held, d.first_window, d.last_window);
            first_window.get_or_insert(d.first_window);
            hour_first = Some(d.first_window);
            events += d.events;
            lost += d.lost.iter().map(|(_, n)| n).sum::<u64>();
            gap_covering_loss += d
                .lost
                .iter()
                .filter(|(r, _)| matches!(r, LossReason::TraceCorrupt | LossReason::DecodeError))
                .map(|(_, n)| n)
                .sum::<u64>();
            if let Some((lo, hi)) = d.seq_range {
                seqs.insert_deleted(lo, hi, d.events);
            }
            taint = TaintTracker::new(ttl);
            raises = ModeRaises::new(CaptureMode::Thin, ttl);
            taint_rebuilt_from = d.last_window + 1 + ttl;
            deleted_hours += 1;
            deleted_windows.push((d.first_window, d.last_window));
            deletions_signed_at = deletions_signed_at.max(d.log_size);
        }
        let mut hour_index: Option<HourIndexBuilder> = None;
        let mut part_ids = PartIds::default();
        let mut parts_checked = 0u32;
        let mut refs_checked = 0u32;
        let micro_dir = root.join(&hour).join("micro");
        let blocks_dir = root.join(&hour).join("blocks");
        let mut micro: BTreeMap<u64, (bool, bool)> = BTreeMap::new();
        for n in names(&micro_dir)? {
            if left.skips(&hour.join("micro").join(&n)) {
                continue;
            }
            match parse_micro(&n) {
                Some((w, "cbor")) => micro.entry(w).or_default().0 = true,
                Some((w, _)) => micro.entry(w).or_default().1 = true,
                None => {
                    return Err(fail(
                        "E_EXTRA",
                        &micro_dir.join(&n),
                        None,
                        "unexpected file",
                    ))
                }
            }
        }
        let mut blocks: BTreeSet<u64> = BTreeSet::new();
        for n in names(&blocks_dir)? {
            if left.skips(&hour.join("blocks").join(&n)) {
                continue;
            }
            match parse_block_file(&n) {
                Some(w) if micro.contains_key(&w) => {
                    blocks.insert(w);
                }
                _ => {
                    return Err(fail(
                        "E_EXTRA",
                        &blocks_dir.join(&n),
                        None,
                        "block of no sealed window",
                    ))
                }
            }
        }
        for (&index, &(has_record, has_sig)) in &micro {
            let record_path = micro_dir.join(format!("w{index:04}.cbor"));
            let sig_path = micro_dir.join(format!("w{index:04}.sig"));
            if !has_record {
                return Err(fail(
                    "E_MISSING",
                    &record_path,
                    None,
                    "a checkpoint without its window record",
                ));
            }
            if !has_sig {
                return Err(fail(
                    "E_MISSING",
                    &sig_path,
                    None,
                    "a window record without its signed checkpoint",
                ));
            }
            let bytes = read_file(&record_path, WindowRecord::MAX_LEN, None, "E_IO")?;
            let record = WindowRecord::decode(&bytes)
                .map_err(|e| fail("E_DECODE", &record_path, None, e.to_string()))?;
            let w = Some(record.window);
            if record.node != meta.node
                || record.window_len_ns != meta.window_len_ns
                || record.cone_lib_version != meta.cone_lib_version
            {
                return Err(fail(
                    "E_LAYOUT",
                    &record_path,
                    w,
                    "node, window length or cone library differs from _meta/store.cbor",
                ));
            }
            // A window names the state saved after the one before it, if that ended an hour
            // and the state is in the store; it names none otherwise. (The window after an
            // hour's last is the next hour's first, or a later one after a downtime.)
            let after_hour = prev_window.is_some_and(|p| (p + 1).is_multiple_of(per_hour));
            match saved_state.take() {
                Some((digest, path)) if record.state != Some(digest) => {
                    let detail = format!(
                        "window {} names another state than this one (its digest)",
                        record.window
                    );
                    return Err(fail("E_STATE", &path, w, detail));
                }
                _ if record.state.is_some() && !after_hour => {
                    return Err(fail(
                        "E_STATE",
                        &record_path,
                        w,
                        "a state digest in a window that does not follow an hour's last",
                    ));
                }
                _ => {}
            }
            let expected_path = WindowPaths::new(record.window, meta.window_len_ns);
            if expected_path.hour_dir != hour || expected_path.index != index {
                return Err(fail(
                    "E_LAYOUT",
                    &record_path,
                    w,
                    format!(
                        "window {} belongs in {}",
                        record.window,
                        expected_path.record().display()
                    ),
                ));
            }
            sequence
                .follow(record.window)
                .map_err(|e| fail("E_CONTINUITY", &record_path, w, e.to_string()))?;
            // Anything besides a saved state's digest: an event, a loss, a health record.
            let holds_anything =
                record.event_count > 0 || record.health_count > 0 || !record.lost.is_empty();
            prev_window = Some(record.window);
            hold(&mut held, record.window, record.window);
            first_window.get_or_insert(record.window);
            windows_done += 1;
            progress(windows_done, total_windows);

            // The record is authentic first; then its blocks must hash to its root.
            log.push::<Blake3Tree>(Blake3Tree::leaf(&bytes));
            saved.observe(&log)?;
            newest_checkpoint = Some(sig_path.clone());
            if !hour_checked {
                // Outside the range: chained (a later checked checkpoint or hour seal signs
                // it) and counted, its blocks and derived files left alone.
                if !skipping {
                    missing_seqs += seqs.missing();
                    seqs = SeqSet::new();
                    skipping = true;
                }
                seqs_from_start = false;
                if holds_anything && sequence.left_out().is_some() {
                    // Windows left out before it: its blocks say whether capture was down.
                    let source = BlockSource::on_disk(blocks.contains(&index));
                    let mut own = SeqSet::new();
                    let checked = check_window_blocks(
                        &blocks_dir,
                        source,
                        &record,
                        &record_path,
                        &meta.node,
                        &mut own,
                    )?;
                    sequence
                        .holds(true, checked.stopped)
                        .map_err(|e| fail("E_CONTINUITY", &record_path, w, e.to_string()))?;
                }
                taint = TaintTracker::new(ttl);
                raises = ModeRaises::new(CaptureMode::Thin, ttl);
                taint_rebuilt_from = record.window + 1 + ttl;
                for n in 0..record.health_count.min(u32::MAX as u64) as u32 {
                    health_copies.insert(expected_path.health(n));
                }
                events += record.event_count;
                lost += record.lost_total();
                hour_first.get_or_insert(record.window);
                unchecked_tail = Some((
                    record_path,
                    sig_path,
                    record.window,
                    log.size(),
                    log.root::<Blake3Tree>(),
                ));
                continue;
            }
            unchecked_tail = None;
            skipping = false;
            checked_windows += 1;
            let cp = signed_checkpoint(&history, &sig_path, w, "E_DECODE")?;
            if cp.size != log.size() || cp.root != log.root::<Blake3Tree>() {
                // The signature held, so the checkpoint is authentic: the records are not.
                let detail = if cp.size != log.size() {
                    format!("the node log reaches size {} here, the signed checkpoint says {} (windows missing or added)", log.size(), cp.size)
                } else {
                    "the window record (or an earlier one) does not match the signed checkpoint"
                        .to_owned()
                };
                return Err(fail("E_CHECKPOINT", &record_path, w, detail));
            }

            let CheckedWindow {
                atoms,
                edges,
                edge_leaves,
                cones,
                health,
                argv,
                ids,
                stopped,
            } = check_window_blocks(
                &blocks_dir,
                BlockSource::on_disk(blocks.contains(&index)),
                &record,
                &record_path,
                &meta.node,
                &mut seqs,
            )?;
            sequence
                .holds(holds_anything, stopped)
                .map_err(|e| fail("E_CONTINUITY", &record_path, w, e.to_string()))?;
            if record.event_count == 0 && seqs_from_start && record.first_seq != seqs.next() {
                let detail = format!(
                    "first_seq {} of a window without events, but the node's next seq is {} (FORMAT §3.6)",
                    record.first_seq,
                    seqs.next()
                );
                return Err(fail("E_SEQ", &record_path, w, detail));
            }
            // The readable copies of the health records (derived, like the index).
            for (n, leaf) in health.iter().enumerate() {
                let rel = expected_path.health(n as u32);
                let path = root.join(&rel);
                match crate::store::read_capped(&path, leaf.len()) {
                    Ok(b) if b == *leaf => {}
                    Ok(_) => {
                        return Err(fail(
                            "E_INDEX",
                            &path,
                            w,
                            format!("differs from health record {n} of the window's blocks"),
                        ))
                    }
                    Err(e) => {
                        return Err(fail(
                            "E_INDEX",
                            &path,
                            w,
                            format!("the copy of health record {n} of the window: {e}"),
                        ))
                    }
                }
                health_copies.insert(rel);
            }
            check_payloads(root, &atoms, &mut blobs_checked, record.window)?;
            // Seeds: the actors of the events that completed a cone match.
            let seeds: Vec<_> = cones
                .iter()
                .filter_map(|c| atoms.iter().find(|a| a.seq == c.last_seq).map(|a| a.actor))
                .collect();
            taint.push(0, record.window, &edges, &seeds);
            // Changes in windows a downtime left out count at the next sealed window.
            let tracked =
                ritma_operators::taint::changes_by(record.window, taint.close(record.window));
            raises.advance(record.window, &seeds, &tracked);
            if record.window >= taint_rebuilt_from {
                check_capture_mode(&record, &record_path, &atoms, &argv, &raises)?;
            }
            let mut changes: Vec<_> = tracked
                .into_iter()
                .map(|c| (c.seed, c.entity, c.diff > 0))
                .collect();
            if record.window < taint_rebuilt_from {
                let file = match &mut trusted_taint {
                    Some(t) => t,
                    None => trusted_taint.insert(taint_changes(root, &hour)?),
                };
                changes = file.remove(&index).unwrap_or_default();
            }
            let builder = hour_index.get_or_insert_with(|| {
                HourIndexBuilder::new(
                    &meta.node,
                    meta.window_len_ns,
                    record.window / per_hour,
                    ttl,
                )
            });
            let closed = builder.push_window(IndexedWindow {
                record: &record,
                atoms: &atoms,
                edges: &edges,
                edge_leaves: &edge_leaves,
                cones: &cones,
                taint: &changes,
            });
            if let Some(ids) = &ids {
                part_ids.add(record.window, record.edge_count, || {
                    IdIndex::from_table(ids)
                });
            }
            let lenient = left.unattested(&hour);
            for run in closed.edges {
                let r = check_edge_part(root, &expected_path, &run, &mut part_ids, w);
                left.derived(lenient, r)?;
                parts_checked += 1;
            }
            if let Some(refs) = closed.edge_refs {
                left.derived(lenient, check_edge_refs(root, &expected_path, &refs, w))?;
                refs_checked += 1;
            }
            events += record.event_count;
            lost += record.lost_total();
            gap_covering_loss += record
                .lost
                .iter()
                .filter(|(r, _)| matches!(r, LossReason::TraceCorrupt | LossReason::DecodeError))
                .map(|(_, n)| n)
                .sum::<u64>();
            hour_first.get_or_insert(record.window);
        }
        let complete = deleted.is_some() || micro.keys().next_back() == Some(&(per_hour - 1));
        let mut summary = None;
        if let Some(builder) = hour_index {
            let checked = CheckedParts {
                complete,
                edges: parts_checked,
                edge_refs: refs_checked,
            };
            summary = Some(check_hour_index(
                root,
                &hour,
                builder,
                &mut part_ids,
                checked,
                prev_window,
                &mut left,
            )?);
        }
        let hour_number = WindowPaths::hour_of_dir(&hour)
            .ok_or_else(|| fail("E_LAYOUT", &root.join(&hour), None, "not a date and hour"))?;
        let entry = match (&deleted, summary) {
            (Some(d), _) => Some(CatalogHour::deleted(d)),
            (None, Some(index)) => Some(index.catalog_entry(HourState::kept(complete))),
            (None, None) => None,
        };
        let rebuilt = entry
            .map(|entry| {
                let account = crate::catalog::account_hour(
                    root,
                    hour_number,
                    entry.events,
                    deleted.is_some(),
                )
                .map_err(|e| fail("E_IO", &root.join(&hour), hour_first, e.to_string()))?;
                Ok::<_, VerifyError>((entry, account))
            })
            .transpose()?;
        catalog_want.insert(
            hour_number,
            CatalogWant {
                rebuilt,
                required: hour_first.is_some(),
                window: hour_first,
                lenient: left.unattested(&hour),
            },
        );
        let proofs_dir = root.join(&hour).join("proofs");
        let mut proof_files = names(&proofs_dir)?;
        proof_files.retain(|n| !left.skips(&hour.join("proofs").join(n)));
        if let Some(n) = proof_files.iter().find(|n| {
            *n != "hour_root.cbor"
                && *n != "hour_root.sig"
                && !(complete && *n == "state.cbor.zst")
                && !(deleted.is_some() && *n == "deleted.cbor")
        }) {
            return Err(fail(
                "E_EXTRA",
                &proofs_dir.join(n),
                None,
                "unexpected file",
            ));
        }
        if complete {
            let seal_path = proofs_dir.join("hour_root.cbor");
            let sig_path = proofs_dir.join("hour_root.sig");
            let last = prev_window.expect("a complete hour has windows");
            let w = Some(last);
            let bytes = crate::store::read_capped(&seal_path, HourSeal::MAX_LEN).map_err(|e| {
                match e.kind() {
                    std::io::ErrorKind::InvalidData => {
                        fail("E_DECODE", &seal_path, w, e.to_string())
                    }
                    _ => fail(
                        "E_MISSING",
                        &seal_path,
                        w,
                        format!("the hour's last window is sealed but its hour seal is not: {e}"),
                    ),
                }
            })?;
            let seal = HourSeal::decode(&bytes)
                .map_err(|e| fail("E_DECODE", &seal_path, w, e.to_string()))?;
            // A deleted hour's roots are its record's: they must give the seal's root.
            if let Some(d) = &deleted {
                if (seal.log_size, seal.log_root) != (log.size(), log.root::<Blake3Tree>()) {
                    return Err(fail(
                        "E_RETENTION",
                        &root.join(&hour).join(crate::retention::DELETION_FILE),
                        Some(d.first_window),
                        "the deleted hour's node-log roots do not give its hour seal's root",
                    ));
                }
            }
            let want = (
                meta.node.as_str(),
                last / per_hour,
                hour_first,
                last,
                log.size(),
                log.root::<Blake3Tree>(),
            );
            if (
                seal.node.as_str(),
                seal.hour,
                Some(seal.first_window),
                seal.last_window,
                seal.log_size,
                seal.log_root,
            ) != want
            {
                return Err(fail(
                    "E_CHAIN",
                    &seal_path,
                    w,
                    "the hour seal does not describe this hour's windows and node log",
                ));
            }
            if seal.prev != hour_prev {
                return Err(fail(
                    "E_CHAIN",
                    &seal_path,
                    w,
                    "the hour seal does not name the previous hour's seal",
                ));
            }
            if let Some(p) = &seal.prev {
                verify_consistency::<Blake3Tree>(
                    p.log_size,
                    seal.log_size,
                    &p.log_root,
                    &seal.log_root,
                    &seal.consistency,
                )
                .map_err(|e| {
                    fail(
                        "E_CHAIN",
                        &seal_path,
                        w,
                        format!("consistency proof from the previous hour: {e}"),
                    )
                })?;
            }
            let cp = signed_checkpoint(&history, &sig_path, w, "E_MISSING")?;
            if (cp.size, cp.root) != (seal.log_size, seal.log_root) {
                return Err(fail(
                    "E_CHAIN",
                    &sig_path,
                    w,
                    "the hour checkpoint is not the seal's size and root",
                ));
            }
            hour_prev = Some(PrevHour {
                hour: seal.hour,
                log_size: seal.log_size,
                log_root: seal.log_root,
            });
            saved_state = check_saved_state(root, &meta, last, &seal)?;
        } else if !proof_files.is_empty() {
            return Err(fail(
                "E_EXTRA",
                &proofs_dir,
                None,
                "an hour seal for an hour whose last window is not sealed",
            ));
        }
    }
    if let Some((record_path, sig_path, window, size, root_hash)) = unchecked_tail {
        let w = Some(window);
        let cp = signed_checkpoint(&history, &sig_path, w, "E_DECODE")?;
        if (cp.size, cp.root) != (size, root_hash) {
            let detail = "the window records do not match the newest signed checkpoint";
            return Err(fail("E_CHECKPOINT", &record_path, w, detail));
        }
    }
    // The signed log is whole here: it must extend every checkpoint saved elsewhere.
    let extended = saved.finish(&log)?;
    check_no_other_health_copies(root, &health_copies, &left)?;
    if deletions_signed_at > log.size() {
        return Err(fail("E_RETENTION", root, prev_window, format!("a deletion was signed at node-log size {deletions_signed_at}, beyond the log's {} windows: the store lost windows it had (rolled back?)", log.size())));
    }
    let cases =
        crate::case::check_cases(root, &meta, &history, log.size(), &held, &deleted_windows)?;
    let missing_seqs = missing_seqs + seqs.missing();
    if missing_seqs > gap_covering_loss {
        return Err(fail("E_SEQ", root, None, format!("{missing_seqs} seqs are missing but only {gap_covering_loss} events are sealed as lost from the trace")));
    }
    // Last: the derived day files are checked against evidence already verified.
    check_catalog(root, &meta.node, &catalog_want, &mut left)?;
    Ok(NodeReport {
        node: meta.node,
        windows: log.size(),
        first_window,
        last_window: prev_window,
        events,
        lost,
        log_size: log.size(),
        log_root: log.root::<Blake3Tree>(),
        deleted_hours,
        cases,
        checked_windows,
        interrupted: left.report,
        extended,
        newest_checkpoint,
    })
}

/// A saved checkpoint of this node, verified, and the root the walk found at its size.
struct SavedRoot {
    saved: SavedCheckpoint,
    checkpoint: Checkpoint,
    /// Each required witness, and the time of its cosignature.
    witnessed: Vec<(String, u64)>,
    root: Option<Hash32>,
}

/// The saved checkpoints of one node, verified, and the node log's root at each one's size
/// as the walk passes it.
struct SavedRoots {
    wanted: Vec<SavedRoot>,
}

impl SavedRoots {
    /// Each of `checkpoints` naming `node`: its signature by a key the history makes valid
    /// at its size (E_SIGNATURE), and every cosignature it must carry (E_WITNESS).
    fn of_node(
        checkpoints: &[SavedCheckpoint],
        node: &str,
        history: &KeyHistory,
    ) -> Result<Self, VerifyError> {
        let mut wanted = Vec::new();
        for c in checkpoints {
            if checkpoint_node(c)? != node {
                continue;
            }
            let cp = history
                .verify_checkpoint(&c.note)
                .map_err(|e| fail("E_SIGNATURE", &c.path, None, e.to_string()))?;
            let mut witnessed = Vec::new();
            for w in &c.witnesses {
                let t = w.verify(&c.note).map_err(|e| {
                    let detail = format!("no valid cosignature by witness {}: {e}", w.to_vkey());
                    fail("E_WITNESS", &c.path, None, detail)
                })?;
                witnessed.push((w.name().to_owned(), t));
            }
            // Size 0 is the empty log: every store extends it if its root is the empty one.
            if cp.size == 0 && cp.root != Blake3Tree::empty() {
                let detail = "a checkpoint of size 0 whose root is not the empty tree's";
                return Err(fail("E_CHECKPOINT", &c.path, None, detail));
            }
            wanted.push(SavedRoot {
                saved: c.clone(),
                root: (cp.size == 0).then(Blake3Tree::empty),
                checkpoint: cp,
                witnessed,
            });
        }
        Ok(SavedRoots { wanted })
    }

    /// As the log reaches a saved checkpoint's size, its root there must be the signed one
    /// (E_CHECKPOINT: the log was rewritten), found at the first window that shows it.
    fn observe(&mut self, log: &Frontier) -> Result<(), VerifyError> {
        for w in &mut self.wanted {
            if w.checkpoint.size == log.size() {
                let r = log.root::<Blake3Tree>();
                if r != w.checkpoint.root {
                    let detail = format!("the store's first {} windows are not those this checkpoint signed: the log was rewritten", w.checkpoint.size);
                    return Err(fail("E_CHECKPOINT", &w.saved.path, None, detail));
                }
                w.root = Some(r);
            }
        }
        Ok(())
    }

    /// Each saved checkpoint must be extended by the log (E_CHECKPOINT).
    fn finish(self, log: &Frontier) -> Result<Vec<Extended>, VerifyError> {
        let mut out = Vec::new();
        for SavedRoot {
            saved: c,
            checkpoint: cp,
            witnessed,
            root,
        } in self.wanted
        {
            let detail = match root {
                Some(_) => None,
                None if cp.size > log.size() => Some(format!("signed for {} windows, the store holds {}: windows after {} are gone (its tail was cut)", cp.size, log.size(), log.size())),
                None => Some(format!("its size {} falls inside hours retention deleted: check a checkpoint at an hour's end, or a later one", cp.size)),
            };
            if let Some(detail) = detail {
                return Err(fail("E_CHECKPOINT", &c.path, None, detail));
            }
            out.push(Extended {
                path: c.path,
                size: cp.size,
                witnessed,
            });
        }
        Ok(out)
    }
}

/// The checkpoint note in `sig_path`, its signature checked with a key the history makes
/// valid at its size (E_SIGNATURE); `unreadable` is the code for a file that cannot be read.
fn signed_checkpoint(
    history: &KeyHistory,
    sig_path: &Path,
    w: Option<u64>,
    unreadable: &'static str,
) -> Result<Checkpoint, VerifyError> {
    let bytes = read_file(sig_path, MAX_NOTE_LEN, w, unreadable)?;
    let note = String::from_utf8(bytes).map_err(|_| {
        fail(
            "E_SIGNATURE",
            sig_path,
            w,
            "a checkpoint note that is not UTF-8",
        )
    })?;
    history
        .verify_checkpoint(&note)
        .map_err(|e| fail("E_SIGNATURE", sig_path, w, e.to_string()))
}

/// What a window's blocks hold, once checked against its record.
pub(crate) struct CheckedWindow {
    pub atoms: Vec<EventAtom>,
    pub edges: Vec<Edge>,
    pub edge_leaves: Vec<Vec<u8>>,
    pub cones: Vec<ConeInstance>,
    pub health: Vec<Vec<u8>>,
    /// The argv hash each argv DictEntry stands for (its value's BLAKE3, or its value
    /// when hashed).
    pub argv: Vec<Hash32>,
    /// The window's id table (none without leaves), which its graph edges are packed with.
    pub ids: Option<IdTable>,
    /// The newest capture_stopped time, when the window records a restart.
    pub stopped: Option<u64>,
}

/// The capture-mode policy (FORMAT.md §10) for a window whose taint is known: its
/// `capture_mode` is the highest mode its events were sealed in, and it holds the argv of
/// exactly the exec and present events of actors raised to Thick — no more (kept beyond
/// the policy) and no less (evidence the policy required, missing).
fn check_capture_mode(
    record: &WindowRecord,
    record_path: &Path,
    atoms: &[EventAtom],
    argv: &[Hash32],
    raises: &ModeRaises,
) -> Result<(), VerifyError> {
    let w = Some(record.window);
    let mode = atoms
        .iter()
        .map(|a| match a.payload_ref {
            Some(_) => CaptureMode::Full,
            None => raises.mode_of(&a.actor),
        })
        .max()
        .unwrap_or(raises.base());
    if mode != record.capture_mode {
        let detail = format!(
            "capture_mode {:?}, but its events were sealed in {mode:?} by the policy",
            record.capture_mode
        );
        return Err(fail("E_MODE", record_path, w, detail));
    }
    let want: BTreeSet<Hash32> = atoms
        .iter()
        .filter(|a| matches!(a.event_type, EventType::Exec | EventType::Present))
        .filter(|a| raises.mode_of(&a.actor) >= CaptureMode::Thick)
        .filter_map(|a| a.arg_hash)
        .collect();
    let have: BTreeSet<Hash32> = argv.iter().copied().collect();
    let hex = |h: &Hash32| h.iter().map(|b| format!("{b:02x}")).collect::<String>();
    if let Some(h) = have.difference(&want).next() {
        let detail = format!("an argv (BLAKE3 {}) of no exec by a process raised to Thick: kept beyond the capture policy", hex(h));
        return Err(fail("E_MODE", record_path, w, detail));
    }
    if let Some(h) = want.difference(&have).next() {
        let detail = format!(
            "the argv (BLAKE3 {}) of an exec by a process raised to Thick is missing",
            hex(h)
        );
        return Err(fail("E_MODE", record_path, w, detail));
    }
    Ok(())
}

/// Where a window's block file is read from.
#[derive(Clone, Copy)]
pub(crate) enum BlockSource<'a> {
    /// The window has no block file.
    Absent,
    /// The window's file in `blocks_dir`.
    OnDisk,
    /// The file's bytes (from a message), named by its place in `blocks_dir`.
    InMemory(&'a [u8]),
}

impl BlockSource<'_> {
    /// On disk when `has_file`, else absent.
    pub(crate) fn on_disk(has_file: bool) -> Self {
        match has_file {
            true => BlockSource::OnDisk,
            false => BlockSource::Absent,
        }
    }
}

/// Reads a window's block file (`source`, named by its place in `blocks_dir`)
/// and checks it against its record (already authenticated by its checkpoint): one
/// block per 1000 leaves, every leaf strict and in canonical order, the counts, first
/// seq and probe loss the record states, and the window root. Each event seq goes into
/// `seqs` (E_SEQ if seen before).
/// The dataflow state saved after `last` (an hour's last window, sealed by `seal`), if
/// the store holds it: decoded strictly, it must be the node's, at that cut, after that
/// hour's log (FORMAT.md §3.15). Returns the window that must name it, and its digest.
fn check_saved_state(
    root: &Path,
    meta: &StoreMeta,
    last: u64,
    seal: &HourSeal,
) -> Result<Option<(ritma_schemas::Hash32, PathBuf)>, VerifyError> {
    let path = root.join(WindowPaths::new(last, meta.window_len_ns).state());
    let w = Some(last);
    let Some((state, digest)) = crate::store::read_state(root, last, meta.window_len_ns)
        .map_err(|e| fail("E_DECODE", &path, w, e.to_string()))?
    else {
        return Ok(None);
    };
    let frontier =
        ritma_schemas::merkle::Frontier::from_parts(state.log_size, state.log_frontier.clone());
    let consistent = state.node == meta.node
        && state.cut == last + 1
        && state.window_len_ns == meta.window_len_ns
        && state.taint_ttl_windows == meta.taint_ttl_windows
        && (
            state.prev_hour.hour,
            state.prev_hour.log_size,
            state.prev_hour.log_root,
        ) == (seal.hour, seal.log_size, seal.log_root)
        && frontier.is_some_and(|f| f.root::<Blake3Tree>() == seal.log_root);
    if !consistent {
        return Err(fail(
            "E_STATE",
            &path,
            w,
            "the saved state is not this node's after this hour's last window and node log",
        ));
    }
    Ok(Some((digest, path)))
}

pub(crate) fn check_window_blocks(
    blocks_dir: &Path,
    source: BlockSource<'_>,
    record: &WindowRecord,
    record_path: &Path,
    node: &str,
    seqs: &mut SeqSet,
) -> Result<CheckedWindow, VerifyError> {
    let has_file = !matches!(source, BlockSource::Absent);
    let w = Some(record.window);
    let expected_path = WindowPaths::new(record.window, record.window_len_ns);
    let path = blocks_dir.join(expected_path.blocks().file_name().expect("file name"));
    let leaves_expected = record.leaf_count();
    let block_count = leaves_expected.div_ceil(MAX_BLOCK_RECORDS as u64);
    if has_file != (block_count > 0) {
        let detail = match has_file {
            true => "a block file for a window without records".to_string(),
            false => format!("no block file for {leaves_expected} records"),
        };
        return Err(fail("E_COUNT", &path, w, detail));
    }
    let opened = match source {
        BlockSource::Absent => None,
        BlockSource::OnDisk => Some(BlockFile::open(&path, record.window, leaves_expected)),
        BlockSource::InMemory(bytes) => Some(BlockFile::from_bytes(
            &path,
            bytes.to_vec(),
            record.window,
            leaves_expected,
        )),
    };
    let mut file = opened
        .transpose()
        .map_err(|e| fail("E_IO", &path, w, e.to_string()))?;
    let mut tree = Frontier::new();
    let mut section = 0u8;
    let mut counts = [0u64; 6];
    let mut health: Vec<Vec<u8>> = Vec::new();
    let mut argv: Vec<Hash32> = Vec::new();
    let mut probe_lost = 0u64;
    // capture_stopped and capture_started records: how many, and the newest stop time.
    let mut restarts = (0u64, 0u64, None::<u64>);
    let mut last_key: Vec<u8> = Vec::new();
    let mut late = 0u64;
    let mut min_seq: Option<u64> = None;
    let (mut atoms, mut edges, mut edge_leaves, mut cones): (
        Vec<EventAtom>,
        Vec<Edge>,
        Vec<Vec<u8>>,
        Vec<ConeInstance>,
    ) = Default::default();
    while let Some(file) = file.as_mut() {
        let b = file.blocks_read();
        let Some(block) = file
            .next_block()
            .map_err(|e| fail("E_DECODE", &path, w, e.to_string()))?
        else {
            break;
        };
        let full = b as u64 + 1 < block_count;
        if b as u64 >= block_count || (full && block.records.len() != MAX_BLOCK_RECORDS) {
            return Err(fail(
                "E_COUNT",
                &path,
                w,
                format!("block {b} does not hold the next 1000 of {leaves_expected} leaves"),
            ));
        }
        for (i, leaf) in block.records.iter().enumerate() {
            let at = || format!("leaf {}", block.first_leaf + i as u64);
            let rec = AnyRecord::decode(leaf)
                .map_err(|e| fail("E_DECODE", &path, w, format!("{}: {e}", at())))?;
            // Canonical order: sections in turn, each strictly ascending by its key.
            let (s, key) = match &rec {
                AnyRecord::Dict(d) => (0u8, d.id.to_vec()),
                AnyRecord::Actor(a) => (1, a.actor.to_vec()),
                AnyRecord::Event(a) => {
                    if !seqs.insert(a.seq) {
                        return Err(fail(
                            "E_SEQ",
                            &path,
                            w,
                            format!("{}: seq {} appears twice", at(), a.seq),
                        ));
                    }
                    min_seq = Some(min_seq.map_or(a.seq, |m| m.min(a.seq)));
                    late += u64::from(a.flags & atom_flags::LATE != 0);
                    (2, a.seq.to_be_bytes().to_vec())
                }
                AnyRecord::Edge(e) => (3, e.key().to_vec()),
                // Bytes that sort as the tuple (id, signed start, first seq): ids
                // hold no NUL, and the start's sign bit is flipped.
                AnyRecord::Cone(c) => (
                    4,
                    [
                        c.cone_id.as_bytes(),
                        &[0],
                        &((c.t_start_ns as u64) ^ (1 << 63)).to_be_bytes(),
                        &c.first_seq.to_be_bytes(),
                    ]
                    .concat(),
                ),
                // Bytes that sort as (time, kind, subject, count): an uncounted
                // gap before any count; subjects hold no NUL.
                AnyRecord::Health(h) => {
                    if h.node != node || h.window != record.window {
                        return Err(fail(
                            "E_LAYOUT",
                            &path,
                            w,
                            format!(
                                "{}: a health record of node {} window {} in this window",
                                at(),
                                h.node,
                                h.window
                            ),
                        ));
                    }
                    probe_lost += h.probe_lost();
                    match h.kind {
                        HealthKind::CaptureStopped => {
                            restarts.0 += 1;
                            restarts.2 = restarts.2.max(Some(h.t_wall_ns));
                        }
                        HealthKind::CaptureStarted => restarts.1 += 1,
                        _ => {}
                    }
                    let count = h.lost.map_or([0; 9], |n| {
                        let mut b = [1; 9];
                        b[1..].copy_from_slice(&n.to_be_bytes());
                        b
                    });
                    (
                        5,
                        [
                            &h.t_wall_ns.to_be_bytes()[..],
                            &[h.kind as u8],
                            h.subject.as_bytes(),
                            &[0],
                            &count,
                        ]
                        .concat(),
                    )
                }
                _ => {
                    return Err(fail(
                        "E_DECODE",
                        &path,
                        w,
                        format!("{}: not a window leaf type", at()),
                    ))
                }
            };
            if s < section || (s == section && counts[s as usize] > 0 && key <= last_key) {
                return Err(fail(
                    "E_ORDER",
                    &path,
                    w,
                    format!("{}: records out of canonical order", at()),
                ));
            }
            (section, last_key) = (s, key);
            counts[s as usize] += 1;
            tree.push_data::<Blake3Tree>(leaf);
            match rec {
                AnyRecord::Dict(d) if d.kind == DictKind::Argv => argv.push(if d.hashed {
                    // The decoder holds a hashed value to 32 bytes.
                    d.value.as_slice().try_into().unwrap_or_default()
                } else {
                    ritma_schemas::hash::blake3(&d.value)
                }),
                AnyRecord::Event(a) => atoms.push(a),
                AnyRecord::Edge(e) => {
                    edges.push(e);
                    edge_leaves.push(leaf.clone());
                }
                AnyRecord::Cone(c) => cones.push(c),
                AnyRecord::Health(_) => health.push(leaf.clone()),
                _ => {}
            }
        }
    }
    let want = [
        record.dict_count,
        record.actor_count,
        record.event_count,
        record.edge_count,
        record.cone_count,
        record.health_count,
    ];
    if counts != want || late != record.late_events {
        return Err(fail("E_COUNT", record_path, w, format!("blocks hold {counts:?} records and {late} late events, the record says {want:?} and {}", record.late_events)));
    }
    if let Some(m) = min_seq {
        if m != record.first_seq {
            return Err(fail(
                "E_SEQ",
                record_path,
                w,
                format!("first_seq {} but the lowest seq is {m}", record.first_seq),
            ));
        }
    }
    if tree.root::<Blake3Tree>() != record.window_root {
        return Err(fail(
            "E_ROOT",
            &path,
            w,
            "the blocks do not hash to the window's signed root",
        ));
    }
    // A restart is sealed in the window after the earlier run's newest time (FORMAT §7.2).
    if restarts.0 != restarts.1 {
        let detail = format!(
            "{} capture_stopped and {} capture_started health records: a restart records one of each",
            restarts.0, restarts.1
        );
        return Err(fail("E_LAYOUT", record_path, w, detail));
    }
    let window_start = i128::from(record.window) * i128::from(record.window_len_ns);
    if let Some(stopped) = restarts.2.filter(|t| i128::from(*t) >= window_start) {
        let detail = format!("a capture_stopped record at {stopped} ns, not before the window's start ({window_start} ns): a restart is sealed in a window after the earlier run's newest time");
        return Err(fail("E_LAYOUT", record_path, w, detail));
    }
    let sealed_probe_lost = record
        .lost
        .iter()
        .find(|(r, _)| *r == LossReason::ProbeDetached)
        .map_or(0, |(_, n)| *n);
    if probe_lost != sealed_probe_lost {
        return Err(fail("E_COUNT", record_path, w, format!("the health records count {probe_lost} events lost to silent probes, the record's probe_detached loss is {sealed_probe_lost}")));
    }
    Ok(CheckedWindow {
        atoms,
        edges,
        edge_leaves,
        cones,
        health,
        argv,
        ids: file.map(BlockFile::into_ids),
        stopped: restarts.2,
    })
}

/// Full capture: every blob an event names is in `cas/` of `root` and hashes to its
/// name; `checked` holds the blobs already read.
pub(crate) fn check_payloads(
    root: &Path,
    atoms: &[EventAtom],
    checked: &mut std::collections::HashSet<Hash32>,
    window: u64,
) -> Result<(), VerifyError> {
    for a in atoms {
        let Some(hash) = a.payload_ref else { continue };
        if checked.insert(hash) {
            let w = Some(window);
            let cas =
                Cas::open(root).map_err(|e| fail("E_CAS", &root.join("cas"), w, e.to_string()))?;
            cas.verify(&hash).map_err(|e| {
                fail(
                    "E_CAS",
                    &cas.manifest_path(&hash),
                    w,
                    format!("event {}: {e}", a.seq),
                )
            })?;
        }
    }
    Ok(())
}

/// The taint indexes name the store's taint lifetime: one that differs puts store.cbor in
/// doubt (the index itself is rebuilt and compared with its hour).
fn check_taint_lifetime(
    root: &Path,
    meta_path: &Path,
    hours: &[PathBuf],
    ttl: u64,
) -> Result<(), VerifyError> {
    for hour in hours {
        if let Some(index) = taint_index(root, hour)? {
            if index.ttl_windows != ttl {
                let detail = format!(
                    "names a taint lifetime of {ttl} windows, the taint index of {} says {}",
                    hour.display(),
                    index.ttl_windows
                );
                return Err(fail("E_LAYOUT", meta_path, None, detail));
            }
            return Ok(());
        }
    }
    Ok(())
}

/// The signed deletion record of an hour retention deleted, checked on its own, and
/// nothing of the hour left.
fn deleted_hour(
    root: &Path,
    hour: &Path,
    meta: &StoreMeta,
    history: &KeyHistory,
) -> Result<Option<HourDeletion>, VerifyError> {
    let Some(d) = deletion_record(root, hour, meta, history)? else {
        return Ok(None);
    };
    let under = hour.strip_prefix("windows").unwrap_or(hour);
    for dir in [
        root.join("graph/edges").join(under),
        root.join("_meta/health").join(under),
    ] {
        if let Some(n) = names(&dir)?.into_iter().next() {
            let w = Some(d.first_window);
            return Err(fail(
                "E_EXTRA",
                &dir.join(n),
                w,
                "a file of an hour retention deleted",
            ));
        }
    }
    Ok(Some(d))
}

/// An hour's signed deletion record, if it has one, checked on its own: strict bytes, a
/// signature by a key valid where it was signed, the node and hour of its place, and an
/// hour that had ended a retention period before it was deleted.
pub(crate) fn deletion_record(
    root: &Path,
    hour: &Path,
    meta: &StoreMeta,
    history: &KeyHistory,
) -> Result<Option<HourDeletion>, VerifyError> {
    let path = root.join(hour).join(crate::retention::DELETION_FILE);
    let bytes = match crate::store::read_capped(&path, SignedRecord::MAX_LEN) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) if e.kind() == std::io::ErrorKind::InvalidData => {
            return Err(fail("E_DECODE", &path, None, e.to_string()))
        }
        Err(e) => return Err(fail("E_IO", &path, None, e.to_string())),
    };
    let signed =
        SignedRecord::decode(&bytes).map_err(|e| fail("E_DECODE", &path, None, e.to_string()))?;
    let d = HourDeletion::decode(&signed.body)
        .map_err(|e| fail("E_DECODE", &path, None, e.to_string()))?;
    let w = Some(d.first_window);
    history
        .verify_record(&signed, d.log_size)
        .map_err(|e| fail("E_SIGNATURE", &path, w, e.to_string()))?;
    let per_hour = windows_per_hour(meta.window_len_ns);
    if d.node != meta.node
        || WindowPaths::new(d.first_window, meta.window_len_ns).hour_dir != hour
        || d.hour != d.first_window / per_hour
        || d.hour != d.last_window / per_hour
    {
        return Err(fail(
            "E_LAYOUT",
            &path,
            w,
            format!(
                "a deletion of node {} hour {} (windows {}..={}) in this hour",
                d.node, d.hour, d.first_window, d.last_window
            ),
        ));
    }
    let ended = (d.hour + 1).saturating_mul(HOUR_NS);
    if ended.saturating_add(d.keep_ns) > d.deleted_wall_ns {
        return Err(fail(
            "E_RETENTION",
            &path,
            w,
            format!(
                "the hour was deleted {} ns after it ended, within its retention period of {} ns",
                d.deleted_wall_ns.saturating_sub(ended),
                d.keep_ns
            ),
        ));
    }
    Ok(Some(d))
}

/// An hour's taint changes as (seed, entity, enters), by window index.
type TaintByWindow = BTreeMap<u64, Vec<(ritma_schemas::Id128, ritma_schemas::Id128, bool)>>;

/// The changes an hour's taint index records (none if it has no index).
fn taint_changes(root: &Path, hour: &Path) -> Result<TaintByWindow, VerifyError> {
    let mut out = TaintByWindow::new();
    for c in taint_index(root, hour)?
        .map(|i| i.changes)
        .unwrap_or_default()
    {
        out.entry(c.window_index)
            .or_default()
            .push((c.seed, c.entity, c.enters));
    }
    Ok(out)
}

fn taint_index(root: &Path, hour: &Path) -> Result<Option<TaintIndex>, VerifyError> {
    read_taint_index(root, hour).map_err(|e| {
        let path = root.join(hour).join("index/taint.cbor.zst");
        fail("E_INDEX", &path, None, e.to_string())
    })
}

/// An edge part on disk must decode to exactly the part rebuilt from the blocks, packed
/// with its windows' id tables.
fn check_edge_part(
    root: &Path,
    paths: &WindowPaths,
    run: &EdgeRun,
    part_ids: &mut PartIds,
    window: Option<u64>,
) -> Result<(), VerifyError> {
    let path = root.join(paths.edge_part(run.part));
    if !path.exists() {
        return Err(fail("E_INDEX", &path, window, "graph edge part missing"));
    }
    let part = part_ids
        .pack(run)
        .map_err(|e| fail("E_INDEX", &path, window, e.to_string()))?;
    let bytes = read_compressed(&path, EdgePart::MAX_LEN)
        .map_err(|e| fail("E_INDEX", &path, window, e.to_string()))?;
    if bytes != part.encode() {
        let detail = match EdgePart::decode(&bytes) {
            Err(e) => e.to_string(),
            Ok(_) => "does not hold the edges of the sealed blocks".to_owned(),
        };
        return Err(fail("E_INDEX", &path, window, detail));
    }
    Ok(())
}

/// An edge refs part closed before the hour's end must be the one rebuilt.
fn check_edge_refs(
    root: &Path,
    paths: &WindowPaths,
    refs: &EdgeRefs,
    window: Option<u64>,
) -> Result<(), VerifyError> {
    let path = root.join(paths.index_file(&edge_refs_stem(refs.part)));
    if !path.exists() {
        return Err(fail("E_INDEX", &path, window, "edge refs part missing"));
    }
    let bytes = read_compressed(&path, MAX_INDEX_LEN)
        .map_err(|e| fail("E_INDEX", &path, window, e.to_string()))?;
    if bytes != refs.encode() {
        let detail = match EdgeRefs::decode(&bytes) {
            Err(e) => e.to_string(),
            Ok(_) => "does not match the edge refs rebuilt from the sealed blocks".to_owned(),
        };
        return Err(fail("E_INDEX", &path, window, detail));
    }
    Ok(())
}

/// Whether an hour's last window is sealed, and how many of its parts were closed, and
/// checked, before its end.
struct CheckedParts {
    complete: bool,
    edges: u32,
    edge_refs: u32,
}

/// An hour's index files and edge parts must be exactly those rebuilt from its
/// blocks; in the newest hour, while it has no catalog entry, an interrupted writer may
/// have left them missing or out of date, which is reported (FORMAT.md §8.12).
fn check_hour_index(
    root: &Path,
    hour: &Path,
    builder: HourIndexBuilder,
    part_ids: &mut PartIds,
    checked: CheckedParts,
    last_window: Option<u64>,
    left: &mut Leftovers,
) -> Result<HourIndex, VerifyError> {
    let index_dir = root.join(hour).join("index");
    let paths = WindowPaths {
        hour_dir: hour.to_owned(),
        index: 0,
    };
    let mut parts = checked.edges;
    let present = names(&index_dir)?;
    let early: Vec<String> = (0..checked.edge_refs)
        .map(|p| format!("{}.cbor.zst", edge_refs_stem(p)))
        .collect();
    let (files, last_part) = builder.finish();
    let lenient = left.unattested(hour);
    if !checked.complete && present == early {
        // Written when the hour ends or its run stops: none yet, the run was cut off.
        left.derived(lenient, check_part_names(root, &paths, parts, last_window))?;
        let detail =
            "the hour's index files are missing (written when the hour ends or its run stops)";
        left.derived(
            lenient,
            Err(fail("E_INDEX", &index_dir, last_window, detail)),
        )?;
        return Ok(files);
    }
    let check = || {
        let mut want: Vec<String> = files
            .files()
            .iter()
            .map(|(stem, _)| format!("{stem}.cbor.zst"))
            .chain(early)
            .collect();
        want.sort();
        if present != want {
            let detail = format!("holds {present:?}, a sealed hour needs {want:?}");
            return Err(fail("E_INDEX", &index_dir, last_window, detail));
        }
        for (stem, expected) in files.files() {
            let path = root.join(paths.index_file(&stem));
            let bytes = read_compressed(&path, MAX_INDEX_LEN)
                .map_err(|e| fail("E_INDEX", &path, last_window, e.to_string()))?;
            if bytes != expected {
                return Err(fail(
                    "E_INDEX",
                    &path,
                    last_window,
                    "does not match the index rebuilt from the sealed blocks",
                ));
            }
        }
        if let Some(run) = &last_part {
            check_edge_part(root, &paths, run, part_ids, last_window)?;
            parts += 1;
        }
        check_part_names(root, &paths, parts, last_window)
    };
    let r = check();
    left.derived(lenient, r)?;
    Ok(files)
}

/// The hour's edge directory holds exactly parts 0..`parts`.
fn check_part_names(
    root: &Path,
    paths: &WindowPaths,
    parts: u32,
    window: Option<u64>,
) -> Result<(), VerifyError> {
    let dir = root.join(paths.edges_dir());
    let want: Vec<String> = (0..parts)
        .map(|p| {
            paths
                .edge_part(p)
                .file_name()
                .expect("name")
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    if let Some(n) = names(&dir)?.into_iter().find(|n| !want.contains(n)) {
        return Err(fail(
            "E_EXTRA",
            &dir.join(n),
            window,
            "an edge part the sealed blocks do not produce",
        ));
    }
    Ok(())
}

/// What the day files must say of one hour.
struct CatalogWant {
    /// The entries rebuilt from the hour's files; `None` where they were not (an hour
    /// outside the range, or the tail hour of a run cut off before its index).
    rebuilt: Option<(CatalogHour, AccountHour)>,
    /// Whether the entries must exist: every hour with windows (but the newest hour's,
    /// after an interrupted write, FORMAT.md §8.12).
    required: bool,
    /// The hour's first window, for the report.
    window: Option<u64>,
    /// Whether this is the newest hour without a catalog entry, whose accounting entry an
    /// interrupted writer may have left missing or out of date (FORMAT.md §8.12).
    lenient: bool,
}

/// The first field in which two catalog entries differ.
fn catalog_difference(a: &CatalogHour, b: &CatalogHour) -> &'static str {
    let (ca, cb) = (a.contents.as_ref(), b.contents.as_ref());
    let fields: [(&str, bool); 12] = [
        ("state", a.state == b.state),
        (
            "windows",
            (a.first_window, a.last_window) == (b.first_window, b.last_window),
        ),
        ("events", a.events == b.events),
        ("seq_range", a.seq_range == b.seq_range),
        ("lost", a.lost == b.lost),
        ("contents", ca.is_some() == cb.is_some()),
        (
            "late_events",
            ca.map(|c| c.late_events) == cb.map(|c| c.late_events),
        ),
        (
            "capture_mode",
            ca.map(|c| c.capture_mode) == cb.map(|c| c.capture_mode),
        ),
        ("actors", ca.map(|c| c.actors) == cb.map(|c| c.actors)),
        (
            "edges and health",
            ca.map(|c| (c.edges, c.health)) == cb.map(|c| (c.edges, c.health)),
        ),
        (
            "event_types",
            ca.map(|c| &c.event_types) == cb.map(|c| &c.event_types),
        ),
        ("cones", ca.map(|c| &c.cones) == cb.map(|c| &c.cones)),
    ];
    fields
        .iter()
        .find(|(_, same)| !same)
        .map_or("encoding", |(name, _)| name)
}

/// The catalog and accounting day files (FORMAT.md §8.11) hold exactly one entry per
/// hour the store holds, each equal to the one rebuilt from the hour's files.
fn check_catalog(
    root: &Path,
    node: &str,
    want: &BTreeMap<u64, CatalogWant>,
    left: &mut Leftovers,
) -> Result<(), VerifyError> {
    use crate::catalog::{account_path, catalog_path, day_files, read_account, read_catalog};
    let hours_per_day = ritma_schemas::catalog::HOURS_PER_DAY;
    let mut days: Vec<u64> = want.keys().map(|h| h / hours_per_day).collect();
    days.dedup();
    type DayFile = (&'static str, &'static str, fn(u64) -> PathBuf);
    let kinds: [DayFile; 2] = [
        ("catalog", "day.cbor.zst", catalog_path),
        ("accounting", "account.cbor.zst", account_path),
    ];
    for (dir, file, path_of) in kinds {
        let present = day_files(root, dir, file)
            .map_err(|p| fail("E_EXTRA", &p, None, "not a YYYY/MM/DD/ day file"))?;
        if let Some(d) = present.iter().find(|d| days.binary_search(d).is_err()) {
            let detail = "a day file of a day without hours";
            return Err(fail("E_EXTRA", &root.join(path_of(*d)), None, detail));
        }
    }
    for day in days {
        let hours: Vec<(&u64, &CatalogWant)> = want
            .range(day * hours_per_day..(day + 1) * hours_per_day)
            .collect();
        let cat_path = root.join(catalog_path(day));
        let acc_path = root.join(account_path(day));
        let decode =
            |path: &Path, e: crate::store::StoreError| fail("E_DECODE", path, None, e.to_string());
        let catalog = read_catalog(root, day).map_err(|e| decode(&cat_path, e))?;
        let account = read_account(root, day).map_err(|e| decode(&acc_path, e))?;
        let cat_hours = catalog.as_ref().map_or(&[][..], |c| &c.hours[..]);
        let acc_hours = account.as_ref().map_or(&[][..], |a| &a.hours[..]);
        for (path, file_node) in [
            (&cat_path, catalog.as_ref().map(|c| &c.node)),
            (&acc_path, account.as_ref().map(|a| &a.node)),
        ] {
            if file_node.is_some_and(|n| n != node) {
                return Err(fail("E_CATALOG", path, None, "names another node"));
            }
        }
        for (path, listed) in [
            (
                &cat_path,
                cat_hours.iter().map(|h| h.hour).collect::<Vec<_>>(),
            ),
            (
                &acc_path,
                acc_hours.iter().map(|h| h.hour).collect::<Vec<_>>(),
            ),
        ] {
            if let Some(h) = listed.iter().find(|h| !want.contains_key(h)) {
                let detail = format!(
                    "an entry for hour {}, which the store does not hold",
                    crate::retention::hour_label(*h)
                );
                return Err(fail("E_CATALOG", path, None, detail));
            }
            for (h, w) in hours
                .iter()
                .filter(|(h, w)| w.required && !listed.contains(h))
            {
                let detail = format!("no entry for hour {}", crate::retention::hour_label(**h));
                left.derived(w.lenient, Err(fail("E_CATALOG", path, w.window, detail)))?;
            }
        }
        for (hour, w) in hours {
            let Some((entry, tally)) = &w.rebuilt else {
                continue;
            };
            let label = crate::retention::hour_label(*hour);
            if let Some(found) = cat_hours.iter().find(|h| h.hour == *hour) {
                if found != entry {
                    let detail = format!("the entry of hour {label} differs from the one rebuilt from the store in {}", catalog_difference(found, entry));
                    left.derived(
                        w.lenient,
                        Err(fail("E_CATALOG", &cat_path, w.window, detail)),
                    )?;
                }
            }
            if let Some(found) = acc_hours.iter().find(|h| h.hour == *hour) {
                if found != tally {
                    let detail = format!("the entry of hour {label} differs from the hour's files: it says {} bytes in {} files, the store holds {} bytes in {} files", found.bytes(), found.stored.iter().map(|t| t.files).sum::<u64>(), tally.bytes(), tally.stored.iter().map(|t| t.files).sum::<u64>());
                    left.derived(
                        w.lenient,
                        Err(fail("E_CATALOG", &acc_path, w.window, detail)),
                    )?;
                }
            }
        }
    }
    Ok(())
}

/// `graph/edges/` holds only hours that have windows.
fn check_graph_dirs(root: &Path, hours: &[PathBuf]) -> Result<(), VerifyError> {
    let base = root.join("graph/edges");
    let mut dirs = vec![PathBuf::new()];
    for _ in 0..4 {
        let mut next = Vec::new();
        for d in &dirs {
            for n in names(&base.join(d))? {
                next.push(d.join(n));
            }
        }
        dirs = next;
    }
    for d in dirs {
        if !hours.contains(&Path::new("windows").join(&d)) {
            return Err(fail(
                "E_EXTRA",
                &base.join(d),
                None,
                "graph edges of an hour without windows",
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn window(mode: CaptureMode) -> WindowRecord {
        WindowRecord {
            node: "n".into(),
            window: 7,
            window_len_ns: 1_000_000_000,
            first_seq: 0,
            event_count: 0,
            dict_count: 0,
            actor_count: 0,
            edge_count: 0,
            cone_count: 0,
            health_count: 0,
            lost: Vec::new(),
            late_events: 0,
            capture_mode: mode,
            cone_lib_version: 3,
            window_root: [0; 32],
            state: None,
        }
    }

    fn exec(actor: u8, argv: u8) -> EventAtom {
        EventAtom {
            seq: u64::from(actor),
            t_ns: 0,
            event_type: EventType::Exec,
            actor: [actor; 16],
            object: [9; 16],
            flags: atom_flags::EXEC,
            arg_hash: Some([argv; 32]),
            payload_ref: None,
            given: Vec::new(),
        }
    }

    #[test]
    fn the_capture_policy_decides_the_window_mode_and_which_argv_is_kept() {
        use ritma_operators::taint::TaintChange;
        let path = Path::new("w0007.cbor");
        // Actor 1 is a live seed (Thick), actor 2 is tainted by it (Thick), 3 is Thin.
        let mut raises = ModeRaises::new(CaptureMode::Thin, 10);
        let reach = TaintChange {
            node: 0,
            seed: [1; 16],
            entity: [2; 16],
            window: 7,
            diff: 1,
        };
        raises.advance(7, &[[1; 16]], &[reach]);
        let atoms = [exec(1, 0xa1), exec(2, 0xa2), exec(3, 0xa3)];
        let thick = window(CaptureMode::Thick);
        let ok = check_capture_mode(&thick, path, &atoms, &[[0xa1; 32], [0xa2; 32]], &raises);
        assert_eq!(ok, Ok(()));
        let code = |r: Result<(), VerifyError>| r.unwrap_err().code;
        // The Thin actor's argv kept: beyond the policy.
        let extra = [[0xa1; 32], [0xa2; 32], [0xa3; 32]];
        assert_eq!(
            code(check_capture_mode(&thick, path, &atoms, &extra, &raises)),
            "E_MODE"
        );
        // A raised actor's argv dropped.
        assert_eq!(
            code(check_capture_mode(
                &thick,
                path,
                &atoms,
                &[[0xa1; 32]],
                &raises
            )),
            "E_MODE"
        );
        // The record claims Thin while raised events are in it, or Thick for Thin ones.
        let thin = window(CaptureMode::Thin);
        let argv = [[0xa1; 32], [0xa2; 32]];
        assert_eq!(
            code(check_capture_mode(&thin, path, &atoms, &argv, &raises)),
            "E_MODE"
        );
        assert_eq!(
            check_capture_mode(&thin, path, &atoms[2..], &[], &raises),
            Ok(())
        );
        assert_eq!(
            code(check_capture_mode(&thick, path, &atoms[2..], &[], &raises)),
            "E_MODE"
        );
        // An event whose bytes the CAS keeps makes the window Full; an empty window is Thin.
        let mut kept = exec(3, 0xa3);
        kept.payload_ref = Some([5; 32]);
        let full = window(CaptureMode::Full);
        assert_eq!(
            check_capture_mode(&full, path, &[kept], &[], &raises),
            Ok(())
        );
        assert_eq!(check_capture_mode(&thin, path, &[], &[], &raises), Ok(()));
    }

    #[test]
    fn seq_set_takes_seqs_below_its_first_and_counts_gaps() {
        let mut s = SeqSet {
            base: None,
            bits: Vec::new(),
            min: None,
            max: None,
            count: 0,
        };
        for seq in [130, 131, 5, 200, 4] {
            assert!(s.insert(seq), "{seq}");
        }
        assert!(!s.insert(5) && !s.insert(131) && !s.insert(4));
        assert_eq!(s.missing(), 200 - 4 + 1 - 5);
    }
}
