//! Cases in a node's tree (FORMAT.md §8.9): `cases/CASE_<id>/manifest.cbor`, a
//! SignedRecord of the case's [`CaseManifest`] (its windows, state and access log),
//! rewritten atomically by every action so an action is all or nothing.

use crate::store::{io, replace_atomic, sync_dir, StoreError};
use crate::verify::{fail, names, VerifyError};
use ritma_schemas::case::{is_valid_case_id, CaseManifest, CaseState};
use ritma_schemas::keys::{sign_record, KeyHistory};
use ritma_schemas::note::NoteSigner;
use ritma_schemas::records::{Record, SignedRecord, StoreMeta};
use std::path::{Path, PathBuf};

/// The directory of a node tree's cases.
pub const CASES_DIR: &str = "cases";
/// A case's one file.
pub const MANIFEST_FILE: &str = "manifest.cbor";

#[derive(Debug, thiserror::Error)]
pub enum CaseError {
    #[error(transparent)]
    Store(Box<StoreError>),
    #[error("{path}: {detail}")]
    Invalid { path: PathBuf, detail: String },
    #[error("{path}: no case {case} (ritma case open makes one)")]
    NoSuchCase { path: PathBuf, case: String },
}

impl From<StoreError> for CaseError {
    fn from(e: StoreError) -> Self {
        CaseError::Store(Box::new(e))
    }
}

/// `cases/CASE_<id>` of the node tree at `root`.
pub fn case_dir(root: &Path, id: &str) -> PathBuf {
    root.join(CASES_DIR).join(format!("CASE_{id}"))
}

/// The ids of the cases of a node tree, sorted; an entry of `cases/` that is not a
/// case directory is an error (E_EXTRA).
pub fn case_ids(root: &Path) -> Result<Vec<String>, VerifyError> {
    let dir = root.join(CASES_DIR);
    names(&dir)?
        .into_iter()
        .map(|n| match n.strip_prefix("CASE_") {
            Some(id) if is_valid_case_id(id) && dir.join(&n).is_dir() => Ok(id.to_owned()),
            _ => Err(fail("E_EXTRA", &dir.join(&n), None, "not a case directory")),
        })
        .collect()
}

/// A case's manifest as stored: the SignedRecord and the manifest it wraps, decoded
/// strictly but not verified.
pub fn read_manifest(root: &Path, id: &str) -> Result<(SignedRecord, CaseManifest), CaseError> {
    let path = case_dir(root, id).join(MANIFEST_FILE);
    let bytes = match crate::store::read_capped(&path, SignedRecord::MAX_LEN) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(CaseError::NoSuchCase {
                path,
                case: id.to_owned(),
            })
        }
        Err(e) => return Err(io(&path)(e).into()),
    };
    let invalid = |e: ritma_schemas::cbor::DecodeError| CaseError::Invalid {
        path: path.clone(),
        detail: e.to_string(),
    };
    let signed = SignedRecord::decode(&bytes).map_err(invalid)?;
    let manifest = CaseManifest::decode(&signed.body).map_err(invalid)?;
    Ok((signed, manifest))
}

/// Signs `manifest` and writes it in place of the case's manifest (temporary name,
/// fsync, rename, fsync of the directories).
pub fn write_manifest(
    root: &Path,
    manifest: &CaseManifest,
    signer: &NoteSigner,
) -> Result<(), CaseError> {
    let dir = case_dir(root, &manifest.case);
    let bytes = sign_record(manifest.encode(), signer).encode();
    replace_atomic(&dir.join(MANIFEST_FILE), &bytes)?;
    sync_dir(&dir)?;
    sync_dir(&root.join(CASES_DIR))?;
    Ok(())
}

/// The node tree's frozen cases, whose windows retention keeps.
pub fn frozen_cases(root: &Path) -> Result<Vec<CaseManifest>, CaseError> {
    let ids = case_ids(root).map_err(|e| CaseError::Invalid {
        path: e.path.clone(),
        detail: e.detail,
    })?;
    let mut out = Vec::new();
    for id in ids {
        let (_, m) = read_manifest(root, &id)?;
        if m.state == CaseState::Frozen {
            out.push(m);
        }
    }
    Ok(out)
}

/// What `verify` checks of a node's cases: each manifest strict, signed by a key valid
/// at its log size (which the log reaches), of this node and directory, its access log
/// consistent (every unfreeze approved), its windows among the node's, and no window
/// of a frozen case deleted by retention. Returns the number of cases.
pub(crate) fn check_cases(
    root: &Path,
    meta: &StoreMeta,
    history: &KeyHistory,
    log_size: u64,
    held: &[(u64, u64)],
    deleted: &[(u64, u64)],
) -> Result<u64, VerifyError> {
    let ids = case_ids(root)?;
    for id in &ids {
        let dir = case_dir(root, id);
        let path = dir.join(MANIFEST_FILE);
        if let Some(n) = names(&dir)?.into_iter().find(|n| n != MANIFEST_FILE) {
            return Err(fail("E_EXTRA", &dir.join(n), None, "not a file of a case"));
        }
        let (signed, m) = read_manifest(root, id).map_err(|e| match e {
            CaseError::NoSuchCase { path, .. } => fail(
                "E_MISSING",
                &path,
                None,
                "a case directory without its manifest",
            ),
            CaseError::Invalid { path, detail } => fail("E_DECODE", &path, None, detail),
            CaseError::Store(e) => fail("E_IO", &path, None, e.to_string()),
        })?;
        if m.node != meta.node || m.case != *id {
            let detail = format!(
                "the manifest is of case {} of node {}, not of this directory",
                m.case, m.node
            );
            return Err(fail("E_LAYOUT", &path, None, detail));
        }
        if m.log_size > log_size {
            let detail = format!("signed at node-log size {}, beyond the log's {log_size} windows: the store lost windows it had (rolled back?)", m.log_size);
            return Err(fail("E_CASE", &path, None, detail));
        }
        history
            .verify_record(&signed, m.log_size)
            .map_err(|e| fail("E_SIGNATURE", &path, None, e.to_string()))?;
        m.check_log()
            .map_err(|why| fail("E_CASE", &path, None, why))?;
        // Each range within one run of windows the node log holds (a downtime leaves
        // windows out between runs).
        for &(first, last) in &m.windows {
            let run = held.partition_point(|(lo, _)| *lo <= first).checked_sub(1);
            if run.is_none_or(|i| last > held[i].1) {
                let runs: Vec<String> =
                    held.iter().map(|(lo, hi)| format!("{lo}..={hi}")).collect();
                let detail = format!(
                    "names windows {first}..={last}, the node log holds {}",
                    if runs.is_empty() {
                        "none".to_owned()
                    } else {
                        runs.join(", ")
                    }
                );
                return Err(fail("E_CASE", &path, Some(first), detail));
            }
        }
        if m.state == CaseState::Frozen {
            if let Some(&(a, b)) = deleted.iter().find(|&&(a, b)| m.names_any(a, b)) {
                let detail = format!(
                    "retention deleted windows {a}..={b}, some of which case {} holds frozen",
                    m.case
                );
                return Err(fail("E_RETENTION", &path, Some(a), detail));
            }
        }
    }
    Ok(ids.len() as u64)
}
