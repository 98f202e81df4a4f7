//! `ritma witness` and `verify --checkpoint`: checkpoints that left the node. A witness
//! verifies a store with the nodes' pinned keys, checks that it extends the checkpoint the
//! witness cosigned last, and cosigns the newest one (C2SP tlog-cosignature, FORMAT.md
//! §4.4); anyone holding such a checkpoint later proves the store still extends it.

use crate::trust::TrustArgs;
use anyhow::{anyhow, bail, Context, Result};
use ritma_schemas::cosignature::{CosignatureVerifier, Cosigner};
use ritma_schemas::proof_bundle::MAX_NOTE_LEN;
use ritma_sinks::store::{read_capped, StoreLock};
use ritma_sinks::verify::{verify_store_with, SavedCheckpoint, VerifyOptions};
use std::path::{Path, PathBuf};

/// The `--checkpoint` files, each to carry every `--witness` cosignature.
pub fn saved_checkpoints(files: &[PathBuf], witnesses: &[String]) -> Result<Vec<SavedCheckpoint>> {
    let witnesses = witnesses
        .iter()
        .map(|w| witness_vkey(w))
        .collect::<Result<Vec<_>>>()?;
    files
        .iter()
        .map(|path| {
            Ok(SavedCheckpoint {
                path: path.clone(),
                note: read_note(path)?,
                witnesses: witnesses.clone(),
            })
        })
        .collect()
}

/// A witness verifier key: its text, or a file holding it.
fn witness_vkey(w: &str) -> Result<CosignatureVerifier> {
    CosignatureVerifier::from_vkey(&crate::trust::key_arg_text(w))
        .map_err(|e| anyhow!("--witness {w}: not a witness verifier key: {e}"))
}

/// A checkpoint note file, at most a note's bound.
fn read_note(path: &Path) -> Result<String> {
    let bytes = read_capped(path, MAX_NOTE_LEN).with_context(|| path.display().to_string())?;
    String::from_utf8(bytes)
        .map_err(|_| anyhow!("{}: not a signed note (UTF-8 text)", path.display()))
}

/// Where a witness keeps the checkpoint it cosigned last for `node`.
fn state_file(state: &Path, node: &str) -> PathBuf {
    state.join(format!("{node}.cosigned"))
}

pub fn witness_cmd(dir: &Path, key: &Path, state: &Path, trust: &TrustArgs) -> Result<()> {
    let trust = trust.resolve()?;
    let Some(pinned) = trust.keys() else {
        bail!("a witness vouches for the nodes' logs: pin their keys with --key or --trust, not --trust-embedded-key");
    };
    let cosigner = Cosigner::from_private_key_text(&ritma_sinks::keys::load_private_key_text(key)?)
        .map_err(|e| anyhow!("{}: not a witness key: {e}", key.display()))?;
    std::fs::create_dir_all(state).with_context(|| state.display().to_string())?;
    // One witness run at a time on a state directory: each reads and replaces its files.
    let _lock = StoreLock::acquire(state, &StoreLock::lock_dir())?;
    // What this witness cosigned last, for the nodes this store holds.
    let mut saved = Vec::new();
    for root in ritma_sinks::retention::node_roots(dir)? {
        let (_, meta) = crate::prove::node_root(&root, None)?;
        let path = state_file(state, &meta.node);
        if path.exists() {
            saved.push(SavedCheckpoint {
                note: read_note(&path)?,
                path,
                witnesses: vec![cosigner.verifier()],
            });
        }
    }
    let bar = crate::progress::windows("witness: verify", 0);
    let tick = crate::progress::follow(&bar);
    let opts = VerifyOptions {
        anchor: Some(pinned),
        range: None,
        progress: &tick,
        checkpoints: &saved,
    };
    let reports = verify_store_with(dir, &opts);
    bar.finish_and_clear();
    let reports = reports.map_err(|e| anyhow!("not cosigned: {e}"))?;
    let now = crate::wall_now_ns()? / 1_000_000_000;
    for r in &reports {
        let Some(newest) = &r.newest_checkpoint else {
            println!("{}: no windows yet, nothing to cosign", r.node);
            continue;
        };
        let note = read_note(newest)?;
        let cosigned = cosigner
            .cosign(&note, now)
            .map_err(|e| anyhow!("{}: {e}", newest.display()))?;
        let path = state_file(state, &r.node);
        ritma_sinks::store::replace_file(&path, cosigned.as_bytes())?;
        let was = saved
            .iter()
            .find(|s| s.path == path)
            .map_or(String::new(), |_| {
                " (extends the one cosigned before)".to_owned()
            });
        println!(
            "cosigned {} at size {}{was}: {}",
            r.node,
            r.log_size,
            path.display()
        );
    }
    Ok(())
}
