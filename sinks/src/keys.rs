//! The node's signing key on disk, under `<store>/_meta/keys/` (FORMAT.md §6):
//! `signing.key` (private, mode 0600), `signing.vkey` (public), and the signed key
//! events `events/<8 digits>.cbor` that give each key its validity range.

use ritma_schemas::keys::{sign_key_event, KeyError, KeyHistory};
use ritma_schemas::note::{NoteError, NoteSigner, NoteVerifier};
use ritma_schemas::records::{KeyEvent, KeyEventKind, Record, SignedRecord};
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum KeystoreError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} already exists; refusing to overwrite a signing key")]
    Exists { path: PathBuf },
    #[error("{path} is readable or writable by others (mode {mode:04o}); run `chmod 600 {path}`")]
    TooOpen { path: PathBuf, mode: u32 },
    #[error("{path} is owned by uid {owner}, not by this user (uid {me})")]
    WrongOwner { path: PathBuf, owner: u32, me: u32 },
    #[error("{path}: {source}")]
    Key { path: PathBuf, source: NoteError },
    #[error("{path}: {source}")]
    History { path: PathBuf, source: KeyError },
    #[error("{path}: {source}")]
    Record {
        path: PathBuf,
        source: ritma_schemas::cbor::DecodeError,
    },
    #[error("{path}: the private key does not match the public key in {vkey}")]
    Mismatch { path: PathBuf, vkey: PathBuf },
    #[error("{dir}: no key events; run `ritma keys init` first")]
    NoEvents { dir: PathBuf },
    #[error(
        "{path}: key event file names must be 8 decimal digits counting from 00000000 (`.cbor`)"
    )]
    BadEventName { path: PathBuf },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> KeystoreError + '_ {
    move |source| KeystoreError::Io {
        path: path.to_owned(),
        source,
    }
}

/// Paths of one store's key material.
pub struct Keystore {
    pub dir: PathBuf,
}

impl Keystore {
    pub fn for_store(store: &Path) -> Self {
        Keystore {
            dir: store.join("_meta").join("keys"),
        }
    }

    pub fn private_path(&self) -> PathBuf {
        self.dir.join("signing.key")
    }

    pub fn public_path(&self) -> PathBuf {
        self.dir.join("signing.vkey")
    }

    pub fn events_dir(&self) -> PathBuf {
        self.dir.join("events")
    }

    /// Creates a new key for `node`: private key (0600, never overwritten), public
    /// key, and the self-signed add event that anchors the key history at size 0.
    pub fn init(&self, node: &str, seed: [u8; 32]) -> Result<NoteSigner, KeystoreError> {
        let private = self.private_path();
        let signer = NoteSigner::from_seed(&format!("ritma/{node}"), seed).map_err(|source| {
            KeystoreError::Key {
                path: private.clone(),
                source,
            }
        })?;
        let events = self.events_dir();
        for p in [&private, &self.public_path(), &events.join(event_name(0))] {
            if p.exists() {
                return Err(KeystoreError::Exists {
                    path: p.to_path_buf(),
                });
            }
        }
        fs::create_dir_all(&self.dir).map_err(io(&self.dir))?;
        write_new(
            &private,
            format!("{}\n", signer.to_private_key_text()).as_bytes(),
            0o600,
        )?;
        self.write_anchor(node, &signer)?;
        Ok(signer)
    }

    /// Records a key the store does not hold privately (replay with `--key`): its
    /// public key and the self-signed add event at log size 0, unless the store
    /// already has a key history.
    pub fn init_public(&self, node: &str, signer: &NoteSigner) -> Result<(), KeystoreError> {
        if self.events_dir().join(event_name(0)).exists() {
            return Ok(());
        }
        self.write_anchor(node, signer)
    }

    /// Writes the public key and the self-signed add event at log size 0 that
    /// anchors the key history, and fsyncs their directories.
    fn write_anchor(&self, node: &str, signer: &NoteSigner) -> Result<(), KeystoreError> {
        let events = self.events_dir();
        fs::create_dir_all(&events).map_err(io(&events))?;
        let event = KeyEvent {
            node: node.to_owned(),
            kind: KeyEventKind::Add,
            public_key: signer.verifier().public_key(),
            log_size: 0,
            previous_key: None,
        };
        write_new(
            &self.public_path(),
            format!("{}\n", signer.verifier().to_vkey()).as_bytes(),
            0o644,
        )?;
        write_new(
            &events.join(event_name(0)),
            &sign_key_event(&event, signer).encode(),
            0o644,
        )?;
        for d in [&events, &self.dir] {
            sync_dir(d)?;
        }
        Ok(())
    }

    /// Loads the private key, refusing a file that others can read or that another
    /// user owns, or one that does not match the public key beside it.
    pub fn load_signer(&self) -> Result<NoteSigner, KeystoreError> {
        let path = self.private_path();
        let signer = load_private_key(&path)?;
        if signer.verifier() != self.load_verifier()? {
            return Err(KeystoreError::Mismatch {
                path,
                vkey: self.public_path(),
            });
        }
        Ok(signer)
    }

    /// Loads the public key.
    pub fn load_verifier(&self) -> Result<NoteVerifier, KeystoreError> {
        let path = self.public_path();
        let text = read_key_text(&path)?;
        NoteVerifier::from_vkey(text.trim_end_matches('\n'))
            .map_err(|source| KeystoreError::Key { path, source })
    }

    /// Applies every key event in order and returns the resulting history.
    pub fn load_history(&self, node: &str) -> Result<KeyHistory, KeystoreError> {
        let dir = self.events_dir();
        let mut names: Vec<PathBuf> = fs::read_dir(&dir)
            .map_err(io(&dir))?
            .map(|e| e.map(|e| e.path()).map_err(io(&dir)))
            .collect::<Result<_, _>>()?;
        names.sort();
        if names.is_empty() {
            return Err(KeystoreError::NoEvents { dir });
        }
        let mut history = KeyHistory::new(node).map_err(|source| KeystoreError::History {
            path: dir.clone(),
            source,
        })?;
        for (i, path) in names.iter().enumerate() {
            if path.file_name().and_then(|n| n.to_str()) != Some(event_name(i as u64).as_str()) {
                return Err(KeystoreError::BadEventName { path: path.clone() });
            }
            let bytes = crate::store::read_capped(path, SignedRecord::MAX_LEN).map_err(io(path))?;
            let signed = SignedRecord::decode(&bytes).map_err(|source| KeystoreError::Record {
                path: path.clone(),
                source,
            })?;
            history
                .apply(&signed)
                .map_err(|source| KeystoreError::History {
                    path: path.clone(),
                    source,
                })?;
        }
        Ok(history)
    }
}

/// Loads a private key file, refusing one that others can read or another user owns.
pub fn load_private_key(path: &Path) -> Result<NoteSigner, KeystoreError> {
    let text = load_private_key_text(path)?;
    NoteSigner::from_private_key_text(&text).map_err(|source| KeystoreError::Key {
        path: path.to_owned(),
        source,
    })
}

/// A private key file's text (one line, its newline cut), refusing a file that others can
/// read or another user owns, whatever kind of key it holds.
pub fn load_private_key_text(path: &Path) -> Result<String, KeystoreError> {
    let path = path.to_owned();
    let meta = fs::metadata(&path).map_err(io(&path))?;
    let mode = meta.permissions().mode() & 0o7777;
    if mode & 0o077 != 0 {
        return Err(KeystoreError::TooOpen { path, mode });
    }
    // SAFETY: geteuid has no preconditions and cannot fail.
    let me = unsafe { libc::geteuid() };
    if meta.uid() != me {
        return Err(KeystoreError::WrongOwner {
            path,
            owner: meta.uid(),
            me,
        });
    }
    let text = read_key_text(&path)?;
    Ok(text.trim_end_matches('\n').to_owned())
}

/// A key file's text: one key line, at most 1 KiB.
fn read_key_text(path: &Path) -> Result<String, KeystoreError> {
    let bytes = crate::store::read_capped(path, 1024).map_err(io(path))?;
    String::from_utf8(bytes).map_err(|_| {
        io(path)(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            "a key file that is not UTF-8 text",
        ))
    })
}

fn event_name(i: u64) -> String {
    format!("{i:08}.cbor")
}

/// Writes a file that must not exist yet, with `mode`, and fsyncs it.
pub fn write_new(path: &Path, bytes: &[u8], mode: u32) -> Result<(), KeystoreError> {
    let mut f = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
        .map_err(|source| match source.kind() {
            std::io::ErrorKind::AlreadyExists => KeystoreError::Exists {
                path: path.to_owned(),
            },
            _ => KeystoreError::Io {
                path: path.to_owned(),
                source,
            },
        })?;
    // The umask may have narrowed the mode; the private key must be exactly 0600.
    f.set_permissions(fs::Permissions::from_mode(mode))
        .map_err(io(path))?;
    f.write_all(bytes).map_err(io(path))?;
    f.sync_all().map_err(io(path))
}

fn sync_dir(dir: &Path) -> Result<(), KeystoreError> {
    File::open(dir).and_then(|d| d.sync_all()).map_err(io(dir))
}
