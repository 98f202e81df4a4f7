//! `ritma retention`: deletes the sealed hours of a store that are older than a
//! retention period, and records each deletion so a verifier can tell retention from
//! tampering (FORMAT.md §3.12, §8.8).
//!
//! Of a deleted hour only its seal (`proofs/hour_root.cbor`, `.sig`) and a signed
//! [`HourDeletion`] (`proofs/deleted.cbor`) remain: the roots of the node log over
//! the hour's windows let a verifier rebuild every later checkpoint, and the hour's
//! event, seq and loss totals keep the store's accounting whole.

use crate::cas::Cas;
use crate::keys::{Keystore, KeystoreError};
use crate::store::{
    io, last_seq, read_capped, read_window_leaves, sync_dir, write_atomic, StoreError, WindowPaths,
};
use crate::verify::{hour_dirs, names, VerifyError};
use ritma_schemas::catalog::CatalogHour;
use ritma_schemas::keys::sign_record;
use ritma_schemas::merkle::{aligned_ranges, Blake3Tree, Frontier, Subtrees, TreeHash};
use ritma_schemas::records::{
    windows_per_hour, CaptureMode, EventAtom, HourDeletion, HourSeal, LossReason, Record,
    SignedRecord, StoreMeta, WindowRecord, HOUR_NS,
};
use ritma_schemas::Hash32;
use std::collections::{BTreeMap, HashSet};
use std::fs;
use std::path::{Path, PathBuf};

/// The file of an hour's deletion record, beside its seal.
pub const DELETION_FILE: &str = "proofs/deleted.cbor";

#[derive(Debug, thiserror::Error)]
pub enum RetentionError {
    #[error("the store does not verify, so nothing is deleted: {0}")]
    NotVerified(VerifyError),
    #[error(transparent)]
    Store(Box<StoreError>),
    #[error("{path}: {source}")]
    Keys {
        path: PathBuf,
        source: Box<KeystoreError>,
    },
    #[error("{path}: {detail}")]
    Invalid { path: PathBuf, detail: String },
}

impl From<StoreError> for RetentionError {
    fn from(e: StoreError) -> Self {
        RetentionError::Store(Box::new(e))
    }
}

fn invalid(path: &Path, detail: impl Into<String>) -> RetentionError {
    RetentionError::Invalid {
        path: path.to_owned(),
        detail: detail.into(),
    }
}

/// One hour retention deletes (or finishes deleting, after an interrupted run).
#[derive(Clone, Debug)]
pub struct HourPlan {
    /// `windows/YYYY/MM/DD/HH`, relative to the node's tree.
    pub hour_dir: PathBuf,
    /// The record to sign; its `keep_ns`, `deleted_wall_ns` and `log_size` are set when
    /// applied. For an hour already recorded as deleted, the record found.
    pub deletion: HourDeletion,
    /// True when the hour's deletion record is already written and only files remain.
    pub recorded: bool,
    /// Bytes of the files that go.
    pub bytes: u64,
}

/// What retention would do to one node's tree.
#[derive(Clone, Debug)]
pub struct NodePlan {
    pub root: PathBuf,
    pub node: String,
    /// Hours to delete, oldest first.
    pub hours: Vec<HourPlan>,
    /// Sealed hours already deleted earlier.
    pub deleted_before: u64,
    /// Hours kept: too young, or not sealed yet.
    pub kept: u64,
    /// Hours old enough but kept because a frozen case holds some of their windows:
    /// the hour and the cases, in hour order.
    pub held: Vec<(u64, Vec<String>)>,
    /// Hours old enough but kept because a shipping cursor has not passed them
    /// (FORMAT.md §12.3), in hour order.
    pub unshipped: Vec<u64>,
    /// The node log's size now.
    pub log_size: u64,
    /// CAS files and bytes only the planned hours' windows name: what goes with them.
    pub cas_files: u64,
    pub cas_bytes: u64,
    /// The blobs the windows kept name (`None` where the plan did not read them: no CAS,
    /// or finishing an interrupted run), so applying the plan need not read them again.
    blobs_kept: Option<HashSet<Hash32>>,
    /// Whether applying the plan frees the CAS blobs no kept window names (a running
    /// plan whose hours name no blob leaves the CAS alone, unread).
    free_blobs: bool,
}

impl NodePlan {
    fn empty(root: &Path, node: &str) -> Self {
        NodePlan {
            root: root.to_owned(),
            node: node.to_owned(),
            hours: Vec::new(),
            deleted_before: 0,
            kept: 0,
            held: Vec::new(),
            unshipped: Vec::new(),
            log_size: 0,
            cas_files: 0,
            cas_bytes: 0,
            blobs_kept: None,
            free_blobs: true,
        }
    }
}

/// Plans the deletion of every sealed hour of the store at `dir` (each node's tree of
/// a multi-node store) that ended at least `keep_ns` before `now_ns`. The store must
/// verify first: retention never deletes what a verifier would refuse. If an earlier
/// run was interrupted, the plan is only to finish its recorded hours (the store cannot
/// verify before): apply it, then plan again. `progress` follows the verification.
pub fn plan(
    dir: &Path,
    keep_ns: u64,
    now_ns: u64,
    force_unshipped: bool,
    progress: crate::verify::Progress<'_>,
) -> Result<Vec<NodePlan>, RetentionError> {
    let roots = node_roots(dir)?;
    let interrupted = roots
        .iter()
        .map(|r| interrupted(r))
        .collect::<Result<Vec<_>, _>>()?;
    if interrupted.iter().any(|p| !p.hours.is_empty()) {
        return Ok(interrupted);
    }
    crate::verify::verify_store_range(dir, None, None, progress)
        .map_err(RetentionError::NotVerified)?;
    roots
        .iter()
        .map(|r| plan_node(r, keep_ns, now_ns, force_unshipped))
        .collect()
}

/// The node trees of a store: itself, or each of `nodes/*`.
pub fn node_roots(dir: &Path) -> Result<Vec<PathBuf>, RetentionError> {
    Ok(if dir.join("_meta/store.cbor").exists() {
        vec![dir.to_owned()]
    } else {
        let mut r: Vec<PathBuf> = names(&dir.join("nodes"))
            .map_err(RetentionError::NotVerified)?
            .into_iter()
            .map(|n| dir.join("nodes").join(n))
            .collect();
        r.sort();
        r
    })
}

fn read_meta(root: &Path) -> Result<StoreMeta, RetentionError> {
    let meta_path = root.join("_meta/store.cbor");
    Ok(
        StoreMeta::decode(&read_capped(&meta_path, StoreMeta::MAX_LEN).map_err(io(&meta_path))?)
            .map_err(|source| StoreError::Decode {
                path: meta_path.clone(),
                source,
            })?,
    )
}

/// The hours of a node whose deletion is recorded (by a record that checks on its own)
/// but whose files are not all gone: a retention run that was interrupted.
fn interrupted(root: &Path) -> Result<NodePlan, RetentionError> {
    let meta = read_meta(root)?;
    let keys = Keystore::for_store(root);
    let history = keys
        .load_history(&meta.node)
        .map_err(|source| RetentionError::Keys {
            path: keys.events_dir(),
            source: Box::new(source),
        })?;
    let mut out = NodePlan::empty(root, &meta.node);
    if !root.join("windows").is_dir() {
        return Ok(out);
    }
    for hour_dir in hour_dirs(root).map_err(RetentionError::NotVerified)? {
        let Some(d) = crate::verify::deletion_record(root, &hour_dir, &meta, &history)
            .map_err(RetentionError::NotVerified)?
        else {
            continue;
        };
        let left = hour_files(root, &hour_dir)?;
        if !left.is_empty() {
            out.hours.push(HourPlan {
                bytes: left.iter().map(|p| file_len(p)).sum(),
                hour_dir,
                deletion: d,
                recorded: true,
            });
        }
    }
    Ok(out)
}

fn plan_node(
    root: &Path,
    keep_ns: u64,
    now_ns: u64,
    force_unshipped: bool,
) -> Result<NodePlan, RetentionError> {
    let meta = read_meta(root)?;
    // A store that ships keeps every hour its cursors have not passed.
    let shipped_below = match force_unshipped {
        true => None,
        false => crate::ship::shipped_below_hour(root, meta.window_len_ns)?,
    };
    let frozen = crate::case::frozen_cases(root).map_err(|e| invalid(root, e.to_string()))?;
    let per_hour = windows_per_hour(meta.window_len_ns);
    let mut out = NodePlan::empty(root, &meta.node);
    for hour_dir in hour_dirs(root).map_err(RetentionError::NotVerified)? {
        let dir = root.join(&hour_dir);
        if let Some(d) = read_deletion(root, &hour_dir)? {
            out.log_size += d.windows();
            out.deleted_before += 1;
            continue;
        }
        let records = window_records(&dir)?;
        let Some((first, _)) = records.first() else {
            continue;
        };
        let hour = first.window / per_hour;
        let log_start = out.log_size;
        out.log_size += records.len() as u64;
        let sealed = dir.join("proofs/hour_root.cbor").exists();
        let ended = (hour + 1).saturating_mul(HOUR_NS);
        if !sealed || ended.saturating_add(keep_ns) > now_ns {
            out.kept += 1;
            continue;
        }
        if !out.may_go(hour, &records, &frozen, shipped_below) {
            continue;
        }
        out.push_hour(&meta, hour_dir, hour, log_start, &records)?;
    }
    out.plan_blobs()?;
    Ok(out)
}

impl NodePlan {
    /// Whether an hour old enough may go: no frozen case holds a window of it, and where
    /// the store ships, it is shipped (else it is noted as held or unshipped).
    fn may_go(
        &mut self,
        hour: u64,
        records: &[(WindowRecord, Vec<u8>)],
        frozen: &[ritma_schemas::case::CaseManifest],
        shipped_below: Option<u64>,
    ) -> bool {
        let (first, last) = (records[0].0.window, records[records.len() - 1].0.window);
        let holders: Vec<String> = frozen
            .iter()
            .filter(|c| c.names_any(first, last))
            .map(|c| c.case.clone())
            .collect();
        if !holders.is_empty() {
            self.held.push((hour, holders));
            return false;
        }
        if shipped_below.is_some_and(|below| hour >= below) {
            self.unshipped.push(hour);
            return false;
        }
        true
    }

    /// Plans the deletion of `hour`, its node-log leaves from `log_start`.
    fn push_hour(
        &mut self,
        meta: &StoreMeta,
        hour_dir: PathBuf,
        hour: u64,
        log_start: u64,
        records: &[(WindowRecord, Vec<u8>)],
    ) -> Result<(), RetentionError> {
        let deletion = describe_hour(&self.root, meta, hour, log_start, records)?;
        let bytes = hour_files(&self.root, &hour_dir)?
            .iter()
            .map(|p| file_len(p))
            .sum();
        self.hours.push(HourPlan {
            hour_dir,
            deletion,
            recorded: false,
            bytes,
        });
        Ok(())
    }

    /// The CAS blobs the kept windows name, and what goes with the planned hours.
    fn plan_blobs(&mut self) -> Result<(), RetentionError> {
        let Some(cas) = Cas::existing(&self.root) else {
            return Ok(());
        };
        let going: Vec<&Path> = self.hours.iter().map(|h| h.hour_dir.as_path()).collect();
        let kept = blobs_named(&self.root, &going)?;
        let (manifests, chunks) = cas
            .unnamed(&kept)
            .map_err(|e| invalid(&self.root.join("cas"), e.to_string()))?;
        let files = manifests.iter().chain(&chunks);
        (self.cas_files, self.cas_bytes) = files.fold((0, 0), |(n, b), (_, len)| (n + 1, b + len));
        self.blobs_kept = Some(kept);
        Ok(())
    }
}

/// Retention in a running `ritma run` (FORMAT.md §8.8): plans the node's sealed hours that
/// ended at least `keep_ns` before `now_ns`, oldest first, like [`plan`], but without
/// verifying the whole store (its cost would grow with the store): each hour's window
/// records are checked against its hour seal from the node log's frontier before it, which
/// the state saved at the hour before holds (FORMAT.md §3.15); an hour that cannot be
/// checked so is kept, with every later one, and said in `unchecked`. CAS blobs are not
/// freed: the run's source names a kept blob in every later event of its executable, so
/// a blob no sealed window names may be named by the next (`ritma retention`, with the
/// store to itself, frees them). An interrupted deletion is finished first, as by [`plan`].
pub fn plan_running(
    root: &Path,
    keep_ns: u64,
    now_ns: u64,
) -> Result<(NodePlan, Vec<(u64, String)>), RetentionError> {
    let pending = interrupted(root)?;
    if !pending.hours.is_empty() {
        return Ok((pending, Vec::new()));
    }
    let meta = read_meta(root)?;
    let shipped_below = crate::ship::shipped_below_hour(root, meta.window_len_ns)?;
    let frozen = crate::case::frozen_cases(root).map_err(|e| invalid(root, e.to_string()))?;
    let mut out = NodePlan::empty(root, &meta.node);
    let mut unchecked = Vec::new();
    let mut old_enough = true;
    for hour_dir in hour_dirs(root).map_err(RetentionError::NotVerified)? {
        let dir = root.join(&hour_dir);
        if let Some(d) = read_deletion(root, &hour_dir)? {
            out.log_size += d.windows();
            out.deleted_before += 1;
            continue;
        }
        // The node log's size: every window with its checkpoint (the newest may be half
        // written), read from the directory alone for the hours not planned.
        let sealed_windows = names(&dir.join("micro"))
            .map_err(RetentionError::NotVerified)?
            .iter()
            .filter(|n| n.ends_with(".sig"))
            .count() as u64;
        let Some(hour) = WindowPaths::hour_of_dir(&hour_dir) else {
            continue;
        };
        let log_start = out.log_size;
        out.log_size += sealed_windows;
        let seal_path = dir.join("proofs/hour_root.cbor");
        let ended = (hour + 1).saturating_mul(HOUR_NS);
        // Sealed, and its derived files complete: the writer lists it in its day's catalog.
        let listed = || -> Result<bool, RetentionError> {
            Ok(crate::catalog::read_catalog(root, hour / 24)?
                .is_some_and(|c| c.hours.iter().any(|h| h.hour == hour)))
        };
        old_enough = old_enough
            && seal_path.exists()
            && ended.saturating_add(keep_ns) <= now_ns
            && listed()?;
        if !old_enough {
            out.kept += 1;
            continue;
        }
        let records = window_records(&dir)?;
        if records.is_empty() || !out.may_go(hour, &records, &frozen, shipped_below) {
            continue;
        }
        if let Err(why) = check_against_seal(root, &meta, &seal_path, log_start, &records) {
            // Nothing after an hour that does not check goes either: oldest first, always.
            unchecked.push((hour, why));
            out.kept += 1;
            old_enough = false;
            continue;
        }
        out.push_hour(&meta, hour_dir, hour, log_start, &records)?;
    }
    // The CAS is left alone: the run's source names a blob it kept in every later event
    // of that executable, so a blob no sealed window names may be named by the next one.
    out.free_blobs = false;
    Ok((out, unchecked))
}

/// Checks an hour's window records (all of its windows, in order) against its hour seal:
/// the node log's frontier before the hour (empty for the log's first windows, else the
/// state saved after the hour before, FORMAT.md §3.15) grown by the records must give the
/// seal's size and root.
fn check_against_seal(
    root: &Path,
    meta: &StoreMeta,
    seal_path: &Path,
    log_start: u64,
    records: &[(WindowRecord, Vec<u8>)],
) -> Result<(), String> {
    let bytes = read_capped(seal_path, HourSeal::MAX_LEN).map_err(|e| e.to_string())?;
    let seal = HourSeal::decode(&bytes).map_err(|e| e.to_string())?;
    let first = records[0].0.window;
    let mut log = if log_start == 0 {
        Frontier::new()
    } else {
        let (state, _) = crate::store::read_state(root, first - 1, meta.window_len_ns)
            .map_err(|e| e.to_string())?
            .ok_or("no dataflow state was saved after the hour before it")?;
        Frontier::from_parts(state.log_size, state.log_frontier)
            .filter(|f| f.size() == log_start)
            .ok_or("the state saved before it is not the node log's there")?
    };
    for (_, bytes) in records {
        log.push::<Blake3Tree>(Blake3Tree::leaf(bytes));
    }
    let whole = records
        .windows(2)
        .all(|w| w[1].0.window == w[0].0.window + 1);
    if !whole
        || (seal.first_window, seal.last_window) != (first, records[records.len() - 1].0.window)
        || (log.size(), log.root::<Blake3Tree>()) != (seal.log_size, seal.log_root)
    {
        return Err("its window records do not give its hour seal's node log".into());
    }
    Ok(())
}

/// The `payload_ref`s of one window's events.
fn payload_refs(root: &Path, record: &WindowRecord) -> Result<Vec<Hash32>, RetentionError> {
    if record.event_count == 0 || record.capture_mode != CaptureMode::Full {
        return Ok(Vec::new());
    }
    let paths = WindowPaths::new(record.window, record.window_len_ns);
    let path = root.join(paths.blocks());
    let leaves = read_window_leaves(&path, record.window, record.leaf_count())?;
    let first = (record.dict_count + record.actor_count) as usize;
    let atoms = leaves
        .get(first..first + record.event_count as usize)
        .ok_or_else(|| invalid(&path, "fewer leaves than its record counts"))?;
    let mut out = Vec::new();
    for leaf in atoms {
        let atom = EventAtom::decode(leaf).map_err(|source| StoreError::Decode {
            path: path.clone(),
            source,
        })?;
        out.extend(atom.payload_ref);
    }
    Ok(out)
}

/// True if retention deleted any hour of the node tree at `root`.
pub fn has_deletions(root: &Path) -> Result<bool, RetentionError> {
    if !root.join("windows").is_dir() {
        return Ok(false);
    }
    Ok(hour_dirs(root)
        .map_err(RetentionError::NotVerified)?
        .iter()
        .any(|h| root.join(h).join(DELETION_FILE).exists()))
}

/// The hour's deletion record, if it has one (already verified with the store).
pub fn read_deletion(root: &Path, hour_dir: &Path) -> Result<Option<HourDeletion>, RetentionError> {
    let path = root.join(hour_dir).join(DELETION_FILE);
    let bytes = match read_capped(&path, SignedRecord::MAX_LEN) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io(&path)(e).into()),
    };
    let decoded = SignedRecord::decode(&bytes).and_then(|s| HourDeletion::decode(&s.body));
    decoded.map(Some).map_err(|e| invalid(&path, e.to_string()))
}

/// The hour's window records and their exact bytes, in window order.
fn window_records(hour: &Path) -> Result<Vec<(WindowRecord, Vec<u8>)>, RetentionError> {
    let micro = hour.join("micro");
    let mut out = Vec::new();
    for n in names(&micro).map_err(RetentionError::NotVerified)? {
        if !n.ends_with(".cbor") {
            continue;
        }
        let path = micro.join(&n);
        let bytes = read_capped(&path, WindowRecord::MAX_LEN).map_err(io(&path))?;
        let record = WindowRecord::decode(&bytes).map_err(|source| StoreError::Decode {
            path: path.clone(),
            source,
        })?;
        out.push((record, bytes));
    }
    Ok(out)
}

/// The deletion record of a sealed hour (policy, time and signing size still to set).
fn describe_hour(
    root: &Path,
    meta: &StoreMeta,
    hour: u64,
    log_start: u64,
    records: &[(WindowRecord, Vec<u8>)],
) -> Result<HourDeletion, RetentionError> {
    let mut leaves = Vec::with_capacity(records.len());
    let mut lost: BTreeMap<LossReason, u64> = BTreeMap::new();
    let (mut events, mut seq_range) = (0u64, None::<(u64, u64)>);
    for (r, bytes) in records {
        leaves.push(Blake3Tree::leaf(bytes));
        for (reason, n) in &r.lost {
            *lost.entry(*reason).or_default() += n;
        }
        events += r.event_count;
        // first_seq is the window's lowest seq (verified); the last event is its highest.
        if let Some(hi) = last_seq(root, r)? {
            let lo = r.first_seq;
            seq_range = Some(seq_range.map_or((lo, hi), |(a, b)| (a.min(lo), b.max(hi))));
        }
    }
    // The hour's leaves sit at [log_start, ...) of the node log; hashed here from 0.
    let mut subtrees = Vec::new();
    for (at, height) in aligned_ranges(log_start, records.len() as u64) {
        let from = at - log_start;
        subtrees.push(
            leaves[..]
                .subtree_root::<Blake3Tree>(from, from + (1u64 << height))
                .map_err(|e| invalid(&root.join("windows"), format!("hour {hour}: {e}")))?,
        );
    }
    let (first, last) = (records[0].0.window, records[records.len() - 1].0.window);
    Ok(HourDeletion {
        node: meta.node.clone(),
        hour,
        first_window: first,
        last_window: last,
        log_start,
        subtrees,
        events,
        seq_range,
        lost: lost.into_iter().collect(),
        keep_ns: 0,
        deleted_wall_ns: 0,
        log_size: 0,
        leaves: records.len() as u64,
    })
}

/// Every file of an hour that retention deletes: its records, checkpoints, blocks and
/// index, its graph edge parts and its health copies (not its seal or deletion record).
fn hour_files(root: &Path, hour_dir: &Path) -> Result<Vec<PathBuf>, RetentionError> {
    let mut out = Vec::new();
    for d in deletable_dirs(root, hour_dir) {
        for n in names(&d).map_err(RetentionError::NotVerified)? {
            out.push(d.join(n));
        }
    }
    Ok(out)
}

/// The directories retention removes for an hour.
fn deletable_dirs(root: &Path, hour_dir: &Path) -> Vec<PathBuf> {
    let under = hour_dir.strip_prefix("windows").unwrap_or(hour_dir);
    let mut v: Vec<PathBuf> = ["micro", "blocks", "index"]
        .iter()
        .map(|d| root.join(hour_dir).join(d))
        .collect();
    v.push(root.join("graph/edges").join(under));
    v.push(root.join("_meta/health").join(under));
    v
}

fn file_len(p: &Path) -> u64 {
    fs::metadata(p).map_or(0, |m| m.len())
}

/// What [`apply`] did to one node.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Applied {
    pub hours: u64,
    pub files: u64,
    pub bytes: u64,
    /// Files and bytes of CAS blobs no kept window names any more.
    pub cas_files: u64,
    pub cas_bytes: u64,
}

/// Deletes the planned hours of one node, oldest first: each hour's deletion record is
/// signed with the store's key and made durable before any of its files goes, so an
/// interruption leaves a recorded hour with files left over, which the next run removes.
pub fn apply(plan: &NodePlan, keep_ns: u64, now_ns: u64) -> Result<Applied, RetentionError> {
    let mut done = Applied::default();
    if plan.hours.iter().any(|h| !h.recorded) {
        let keys = Keystore::for_store(&plan.root);
        let signer = keys.load_signer().map_err(|source| RetentionError::Keys {
            path: keys.private_path(),
            source: Box::new(source),
        })?;
        let history = keys
            .load_history(&plan.node)
            .map_err(|source| RetentionError::Keys {
                path: keys.events_dir(),
                source: Box::new(source),
            })?;
        if history.key_at(signer.key_id(), plan.log_size).is_none() {
            return Err(invalid(
                &keys.private_path(),
                format!(
                    "the signing key {:08x} is not valid at the node log's size {}",
                    signer.key_id(),
                    plan.log_size
                ),
            ));
        }
        for h in plan.hours.iter().filter(|h| !h.recorded) {
            let d = HourDeletion {
                keep_ns,
                deleted_wall_ns: now_ns,
                log_size: plan.log_size,
                ..h.deletion.clone()
            };
            let path = plan.root.join(&h.hour_dir).join(DELETION_FILE);
            write_atomic(&path, &sign_record(d.encode(), &signer).encode())?;
            sync_dir(path.parent().expect("proofs/"))?;
        }
    }
    for h in &plan.hours {
        // The day files say "deleted" before the files go: what is left is exactly proofs/.
        let d = &h.deletion;
        let account = crate::catalog::account_hour(&plan.root, d.hour, d.events, true)?;
        crate::catalog::record_hour(&plan.root, &plan.node, CatalogHour::deleted(d), account)?;
        for dir in deletable_dirs(&plan.root, &h.hour_dir) {
            for n in names(&dir).map_err(RetentionError::NotVerified)? {
                let p = dir.join(n);
                done.bytes += file_len(&p);
                fs::remove_file(&p).map_err(io(&p))?;
                done.files += 1;
            }
            remove_empty(&dir, &plan.root)?;
        }
        done.hours += 1;
    }
    // Then the blobs only deleted windows named (after an interruption, too: every run).
    if let Some(cas) = Cas::existing(&plan.root).filter(|_| plan.free_blobs) {
        let read;
        let named = match &plan.blobs_kept {
            Some(kept) => kept,
            None => {
                read = blobs_named(&plan.root, &[])?;
                &read
            }
        };
        (done.cas_files, done.cas_bytes) = cas
            .remove_unnamed(named)
            .map_err(|e| invalid(&plan.root.join("cas"), e.to_string()))?;
    }
    Ok(done)
}

/// The blobs the events of the store's windows name (`payload_ref`, FORMAT.md §8.6), but
/// for the windows of the hours in `skip`.
fn blobs_named(root: &Path, skip: &[&Path]) -> Result<HashSet<Hash32>, RetentionError> {
    let mut named = HashSet::new();
    for hour_dir in hour_dirs(root).map_err(RetentionError::NotVerified)? {
        if skip.contains(&hour_dir.as_path()) {
            continue;
        }
        for (record, _) in window_records(&root.join(&hour_dir))? {
            named.extend(payload_refs(root, &record)?);
        }
    }
    Ok(named)
}

/// Removes `dir` and its parents while they are empty, up to the tree's top directories.
fn remove_empty(dir: &Path, root: &Path) -> Result<(), RetentionError> {
    let stops = [
        root.to_owned(),
        root.join("windows"),
        root.join("graph/edges"),
        root.join("_meta/health"),
    ];
    let mut d = dir.to_owned();
    while !stops.contains(&d) && d.starts_with(root) {
        match fs::remove_dir(&d) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            // Not empty (the hour's proofs/, another day's hours): stop here.
            Err(_) => break,
        }
        let parent = d.parent().expect("under root").to_owned();
        sync_dir(&parent).or_else(|e| match e {
            StoreError::Io { source, .. } if source.kind() == std::io::ErrorKind::NotFound => {
                Ok(())
            }
            e => Err(e),
        })?;
        d = parent;
    }
    Ok(())
}

/// The hour a deletion record is for, as `YYYY-MM-DDTHH` UTC.
pub fn hour_label(hour: u64) -> String {
    let s = hour as i64 * 3600;
    let (y, m, d) = crate::store::civil_from_days(s.div_euclid(86_400));
    format!("{y:04}-{m:02}-{d:02}T{:02}", s.rem_euclid(86_400) / 3600)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hour_labels_are_utc() {
        assert_eq!(hour_label(0), "1970-01-01T00");
        assert_eq!(hour_label(1_763_884_800 / 3600), "2025-11-23T08");
    }
}
