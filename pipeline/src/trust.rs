//! Which node keys a verification trusts. Evidence proves nothing against whoever holds
//! the key it names, so `verify`, `verify-proof` and bundle verification need a key pinned
//! from elsewhere (`--key`, `--trust DIR`, `RITMA_TRUST`); trusting the key the evidence
//! holds takes an explicit `--trust-embedded-key`.

use anyhow::{anyhow, bail, Context, Result};
use clap::Args;
use ritma_schemas::note::NoteVerifier;
use std::path::PathBuf;

/// The key options every verifying command takes.
#[derive(Args, Clone, Debug, Default)]
pub struct TrustArgs {
    /// The node's verifier key (vkey text or a file holding it), obtained out of band: the
    /// key history must start with it.
    #[arg(long)]
    pub key: Option<String>,
    /// A directory of verifier keys (files ending in `.vkey`, one key text each): each
    /// node's key history must start with one named `ritma/<node>`.
    #[arg(long, env = "RITMA_TRUST", value_name = "DIR")]
    pub trust: Option<PathBuf>,
    /// Trust the key the store, proof or bundle holds itself. That proves only that the
    /// holder of that key signed it, and whoever wrote the evidence holds it.
    #[arg(long)]
    pub trust_embedded_key: bool,
}

/// The keys a verification is anchored to.
#[derive(Clone, Debug)]
pub enum Trust {
    /// Keys from the user (`--key`, `--trust`): where they came from, and the keys.
    Pinned {
        from: String,
        keys: Vec<NoteVerifier>,
    },
    /// The evidence's own key (`--trust-embedded-key`).
    Embedded,
}

impl Trust {
    /// The pinned keys, `None` when the embedded key is trusted.
    pub fn keys(&self) -> Option<&[NoteVerifier]> {
        match self {
            Trust::Pinned { keys, .. } => Some(keys),
            Trust::Embedded => None,
        }
    }
}

impl TrustArgs {
    /// The trust these options give; none at all is refused, saying how to pin a key.
    pub fn resolve(&self) -> Result<Trust> {
        let mut keys = Vec::new();
        let mut from = Vec::new();
        if let Some(k) = &self.key {
            keys.push(crate::prove::vkey_arg("--key", k)?);
            from.push("--key".to_owned());
        }
        if let Some(dir) = &self.trust {
            let found = read_trust_dir(dir)?;
            if found.is_empty() {
                bail!("{}: no `.vkey` files to trust", dir.display());
            }
            keys.extend(found);
            from.push(format!("--trust {}", dir.display()));
        }
        match (keys.is_empty(), self.trust_embedded_key) {
            (false, true) => bail!(
                "--trust-embedded-key with a pinned key: pin a key or trust the embedded one, not both"
            ),
            (false, false) => Ok(Trust::Pinned {
                from: from.join(", "),
                keys,
            }),
            (true, true) => Ok(Trust::Embedded),
            (true, false) => bail!(
                "no key is pinned: pass --key VKEY with the node's verifier key obtained out of band, or --trust DIR (or set RITMA_TRUST=DIR) with a directory of .vkey files; --trust-embedded-key trusts the key the evidence holds, which proves only that its holder signed it"
            ),
        }
    }
}

/// A key argument's text: the file it names (a key file is at most 1 KiB), or the argument
/// itself when it names no readable one; trimmed.
pub fn key_arg_text(k: &str) -> String {
    match ritma_sinks::store::read_capped(std::path::Path::new(k), 1024)
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
    {
        Some(text) => text.trim().to_owned(),
        None => k.trim().to_owned(),
    }
}

/// Every `*.vkey` file of `dir`, in name order, each one verifier key text.
pub(crate) fn read_trust_dir(dir: &std::path::Path) -> Result<Vec<NoteVerifier>> {
    let mut paths: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("--trust {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "vkey"))
        .collect();
    paths.sort();
    paths
        .iter()
        .map(|p| {
            let text = ritma_sinks::store::read_capped(p, 1024)
                .with_context(|| p.display().to_string())?;
            let text = String::from_utf8(text)
                .map_err(|_| anyhow!("{}: not a verifier key text", p.display()))?;
            NoteVerifier::from_vkey(text.trim())
                .map_err(|e| anyhow!("{}: not a verifier key: {e}", p.display()))
        })
        .collect()
}
