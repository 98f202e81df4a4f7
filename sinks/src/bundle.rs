//! Case export bundles (FORMAT.md §3.14, §8.10): a case's windows with what a verifier
//! elsewhere needs and nothing it must trust — the node's key history, the newest signed
//! checkpoint, the node-log subtrees between the windows and the case manifest — and
//! their verifier, which `ritma verify` runs on a directory holding `bundle.cbor`.

use crate::store::WindowPaths;
use crate::verify::{
    all_names, check_payloads, check_window_blocks, fail, names, node_key_history, read_file,
    read_store_meta, BlockSource, SeqSet, VerifyError,
};
use ritma_schemas::case::{CaseExport, CaseManifest, CaseState};
use ritma_schemas::merkle::{Blake3Tree, Frontier, TreeHash};
use ritma_schemas::note::NoteVerifier;
use ritma_schemas::proof_bundle::MAX_NOTE_LEN;
use ritma_schemas::records::{Record, SignedRecord, StoreMeta, WindowRecord};
use ritma_schemas::Hash32;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// The bundle's signed CaseExport.
pub const BUNDLE_FILE: &str = "bundle.cbor";
/// The case manifest as it stood when exported (the store's `manifest.cbor`).
pub const CASE_FILE: &str = "case.cbor";
/// The node's newest signed checkpoint when exported, of size `CaseExport.log_size`.
pub const CHECKPOINT_FILE: &str = "checkpoint.sig";

/// True if `dir` is a case export bundle rather than a store.
pub fn is_bundle(dir: &Path) -> bool {
    dir.join(BUNDLE_FILE).is_file()
}

/// What a verified bundle holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BundleReport {
    pub node: String,
    pub case: String,
    pub title: String,
    pub state: CaseState,
    pub windows: u64,
    pub events: u64,
    pub lost: u64,
    pub log_size: u64,
    pub log_root: Hash32,
    pub exported_wall_ns: u64,
}

/// A bundle file read within `max` bytes, its bound (E_MISSING if absent).
fn read(path: &Path, max: usize) -> Result<Vec<u8>, VerifyError> {
    read_file(path, max, None, "E_MISSING")
}

/// A SignedRecord file and the record it wraps, decoded strictly.
fn read_signed<R: Record>(path: &Path) -> Result<(Vec<u8>, SignedRecord, R), VerifyError> {
    let bytes = read(path, SignedRecord::MAX_LEN)?;
    let signed =
        SignedRecord::decode(&bytes).map_err(|e| fail("E_DECODE", path, None, e.to_string()))?;
    let r = R::decode(&signed.body).map_err(|e| fail("E_DECODE", path, None, e.to_string()))?;
    Ok((bytes, signed, r))
}

/// Verifies the bundle at `dir` with nothing else present. `anchor` pins the first key
/// of the node's key history (one of these keys named after the node; otherwise it is
/// taken from the bundle).
pub fn verify_bundle(
    dir: &Path,
    anchor: Option<&[NoteVerifier]>,
) -> Result<BundleReport, VerifyError> {
    let meta_path = dir.join("_meta/store.cbor");
    let meta = read_store_meta(&read(&meta_path, StoreMeta::MAX_LEN)?, &meta_path)?;
    let history = node_key_history(dir, &meta_path, &meta.node, anchor)?;

    let bundle_path = dir.join(BUNDLE_FILE);
    let (_, signed, export) = read_signed::<CaseExport>(&bundle_path)?;
    history
        .verify_record(&signed, export.log_size)
        .map_err(|e| fail("E_SIGNATURE", &bundle_path, None, e.to_string()))?;
    if export.node != meta.node {
        let detail = format!(
            "exports node {}, the bundle's store.cbor names {}",
            export.node, meta.node
        );
        return Err(fail("E_LAYOUT", &bundle_path, None, detail));
    }
    let cp_path = dir.join(CHECKPOINT_FILE);
    let note = String::from_utf8(read(&cp_path, MAX_NOTE_LEN)?)
        .map_err(|e| fail("E_DECODE", &cp_path, None, e.to_string()))?;
    let cp = history
        .verify_checkpoint(&note)
        .map_err(|e| fail("E_SIGNATURE", &cp_path, None, e.to_string()))?;
    if cp.size != export.log_size {
        let detail = format!(
            "a checkpoint of size {}, the bundle is of size {}",
            cp.size, export.log_size
        );
        return Err(fail("E_CHECKPOINT", &cp_path, None, detail));
    }

    let case_path = dir.join(CASE_FILE);
    let (case_bytes, case_signed, case) = read_signed::<CaseManifest>(&case_path)?;
    if ritma_schemas::hash::blake3(&case_bytes) != export.manifest {
        return Err(fail(
            "E_CASE",
            &case_path,
            None,
            "not the case manifest the bundle signs",
        ));
    }
    if case.node != meta.node || case.case != export.case {
        let detail = format!(
            "case {} of node {}, the bundle exports case {} of node {}",
            case.case, case.node, export.case, meta.node
        );
        return Err(fail("E_LAYOUT", &case_path, None, detail));
    }
    if case.log_size > export.log_size {
        let detail = format!(
            "signed at node-log size {}, after the bundle's checkpoint of size {}",
            case.log_size, export.log_size
        );
        return Err(fail("E_CASE", &case_path, None, detail));
    }
    history
        .verify_record(&case_signed, case.log_size)
        .map_err(|e| fail("E_SIGNATURE", &case_path, None, e.to_string()))?;
    case.check_log()
        .map_err(|why| fail("E_CASE", &case_path, None, why))?;

    // The exported windows and the gaps must tile the node log [0, log_size).
    let mut files: BTreeSet<PathBuf> =
        [BUNDLE_FILE, CASE_FILE, CHECKPOINT_FILE, "_meta/store.cbor"]
            .iter()
            .map(PathBuf::from)
            .collect();
    let mut log = Frontier::new();
    let mut gaps = export.gaps.iter().peekable();
    if export.first_leaves.len() != case.windows.len() {
        let detail = format!(
            "{} first leaves for the case's {} window ranges",
            export.first_leaves.len(),
            case.windows.len()
        );
        return Err(fail("E_CASE", &bundle_path, None, detail));
    }
    let mut windows = case.windows.iter().zip(&export.first_leaves).peekable();
    let mut seqs = SeqSet::new();
    let (mut count, mut events, mut lost) = (0u64, 0u64, 0u64);
    let mut blobs = std::collections::HashSet::new();
    let mut listed: Option<(PathBuf, Vec<String>)> = None;
    while log.size() < export.log_size {
        let at = log.size();
        if let Some((_, len, roots)) = gaps.next_if(|(start, _, _)| *start == at) {
            log.push_deleted::<Blake3Tree>(*len, roots)
                .map_err(|e| fail("E_CHECKPOINT", &bundle_path, None, e.to_string()))?;
            continue;
        }
        let Some((&(first, last), _)) = windows.next_if(|(_, leaf)| **leaf == at) else {
            let detail = format!(
                "node-log leaf {at} is neither the first of an exported window range nor in a gap"
            );
            return Err(fail("E_CASE", &bundle_path, None, detail));
        };
        for w in first..=last {
            let paths = WindowPaths::new(w, meta.window_len_ns);
            let (record_path, sig_path) = (dir.join(paths.record()), dir.join(paths.checkpoint()));
            let bytes = read(&record_path, WindowRecord::MAX_LEN)?;
            let record = WindowRecord::decode(&bytes)
                .map_err(|e| fail("E_DECODE", &record_path, Some(w), e.to_string()))?;
            if record.node != meta.node
                || record.window_len_ns != meta.window_len_ns
                || record.window != w
            {
                return Err(fail(
                    "E_LAYOUT",
                    &record_path,
                    Some(w),
                    "not the record of this window of the node",
                ));
            }
            log.push::<Blake3Tree>(Blake3Tree::leaf(&bytes));
            let note = String::from_utf8(read(&sig_path, MAX_NOTE_LEN)?)
                .map_err(|e| fail("E_DECODE", &sig_path, Some(w), e.to_string()))?;
            let wcp = history
                .verify_checkpoint(&note)
                .map_err(|e| fail("E_SIGNATURE", &sig_path, Some(w), e.to_string()))?;
            if (wcp.size, wcp.root) != (log.size(), log.root::<Blake3Tree>()) {
                return Err(fail("E_CHECKPOINT", &record_path, Some(w), "the window record and the node log before it do not give the window's signed checkpoint"));
            }
            let blocks_dir = dir.join(&paths.hour_dir).join("blocks");
            // Each hour's blocks are listed once, not once per window.
            if listed.as_ref().is_none_or(|(d, _)| *d != blocks_dir) {
                listed = Some((blocks_dir.clone(), names(&blocks_dir)?));
            }
            let name = paths.blocks();
            let name = name
                .file_name()
                .and_then(|n| n.to_str())
                .expect("file name");
            let in_hour = &listed.as_ref().expect("listed above").1;
            let has_file = in_hour.binary_search_by(|n| n.as_str().cmp(name)).is_ok();
            let checked = check_window_blocks(
                &blocks_dir,
                BlockSource::on_disk(has_file),
                &record,
                &record_path,
                &meta.node,
                &mut seqs,
            )?;
            check_payloads(dir, &checked.atoms, &mut blobs, w)?;
            files.insert(paths.record());
            files.insert(paths.checkpoint());
            if has_file {
                files.insert(paths.blocks());
            }
            count += 1;
            events += record.event_count;
            lost += record.lost_total();
        }
    }
    if let Some((start, _, _)) = gaps.next() {
        return Err(fail(
            "E_CASE",
            &bundle_path,
            None,
            format!("a gap at leaf {start} is not where the windows leave one"),
        ));
    }
    if let Some(((first, _), _)) = windows.next() {
        return Err(fail(
            "E_CASE",
            &case_path,
            Some(*first),
            "a window of the case beyond the bundle's checkpoint or not in order with its gaps",
        ));
    }
    if log.root::<Blake3Tree>() != cp.root {
        return Err(fail(
            "E_CHECKPOINT",
            &cp_path,
            None,
            "the windows and gaps do not give the checkpoint's root",
        ));
    }
    check_bundle_files(dir, &files)?;
    Ok(BundleReport {
        node: meta.node,
        case: case.case,
        title: case.title,
        state: case.state,
        windows: count,
        events,
        lost,
        log_size: cp.size,
        log_root: cp.root,
        exported_wall_ns: export.exported_wall_ns,
    })
}

/// Every file of the bundle is one it verified, a key-history file, or under `cas/`
/// (content-addressed, checked by the blobs the events name).
fn check_bundle_files(dir: &Path, verified: &BTreeSet<PathBuf>) -> Result<(), VerifyError> {
    let mut stack = vec![PathBuf::new()];
    while let Some(rel) = stack.pop() {
        // A bundle is written whole before bundle.cbor: a temporary file in it is extra.
        for n in all_names(&dir.join(&rel))? {
            let p = rel.join(&n);
            if dir.join(&p).is_dir() {
                if p != Path::new("cas") {
                    stack.push(p);
                }
                continue;
            }
            let key_file =
                p.starts_with("_meta/keys/events") || p == Path::new("_meta/keys/signing.vkey");
            if !verified.contains(&p) && !key_file {
                let detail = match p == Path::new("_meta/keys/signing.key") {
                    true => "a private key in a bundle",
                    false => "a file the bundle does not account for",
                };
                return Err(fail("E_EXTRA", &dir.join(&p), None, detail));
            }
        }
    }
    Ok(())
}
