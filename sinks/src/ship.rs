//! Reads a node tree into the envelopes that ship it (FORMAT.md §12), in stream order,
//! from the store on disk only: a shipper that restarts, or a broker down for hours,
//! costs disk, never evidence. The position per topic is a [`ShipCursor`] in
//! `_meta/ship/<topic>.cbor`, written (fsynced) by the caller once the broker acked.

use crate::cas::Cas;
use crate::catalog::{catalog_path, hour_dir, read_catalog};
use crate::store::{block_file_cap, read_capped, replace_file, StoreError, WindowPaths};
use ritma_schemas::cas_manifest::{CasManifest, MAX_CHUNK_LEN};
use ritma_schemas::catalog::{HourState, HOURS_PER_DAY, MAX_DAY_LEN};
use ritma_schemas::hash::Hash32;
use ritma_schemas::records::{
    windows_per_hour, AnyRecord, CaptureMode, HourSeal, Record, StoreMeta, WindowRecord,
};
use ritma_schemas::ship::{ShipCursor, ShipEnvelope, ShipFile, ShipKind, MAX_TOPIC_LEN};
use std::collections::VecDeque;
use std::fs;
use std::path::{Path, PathBuf};

/// Largest file of the setup (a key file, a cone, the specification's copy).
const MAX_SETUP_FILE_LEN: usize = 4 << 20;
/// Largest checkpoint note (FORMAT.md §3).
const MAX_NOTE_LEN: usize = 16_384;
/// Blobs remembered as shipped, so a binary run every window is not sent every window.
const RECENT_BLOBS: usize = 4096;

/// `_meta/ship/<topic>.cbor` of a node tree.
pub fn cursor_path(root: &Path, topic: &str) -> PathBuf {
    root.join("_meta/ship").join(format!("{topic}.cbor"))
}

/// True for a Kafka topic name (1–249 of `A-Z a-z 0-9 . _ -`, not `.` or `..`), which
/// also names the cursor file.
pub fn is_topic_name(topic: &str) -> bool {
    !topic.is_empty()
        && topic.len() as u64 <= MAX_TOPIC_LEN
        && topic != "."
        && topic != ".."
        && topic
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// The cursors of every topic the node tree has shipped to.
pub fn read_cursors(root: &Path) -> Result<Vec<ShipCursor>, StoreError> {
    let dir = root.join("_meta/ship");
    let entries = match fs::read_dir(&dir) {
        Ok(it) => it,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(crate::store::io(&dir)(e)),
    };
    let mut out = Vec::new();
    for e in entries {
        let e = e.map_err(crate::store::io(&dir))?;
        let name = e.file_name().to_string_lossy().into_owned();
        if let Some(topic) = name.strip_suffix(".cbor").filter(|t| is_topic_name(t)) {
            if let Some(c) = read_cursor(root, topic)? {
                out.push(c);
            }
        }
    }
    out.sort_by(|a, b| a.topic.cmp(&b.topic));
    Ok(out)
}

/// The node tree's cursor for `topic`, if it has shipped there.
pub fn read_cursor(root: &Path, topic: &str) -> Result<Option<ShipCursor>, StoreError> {
    let path = cursor_path(root, topic);
    let bytes = match read_capped(&path, ShipCursor::MAX_LEN) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(crate::store::io(&path)(e)),
    };
    let c = ShipCursor::decode(&bytes).map_err(|source| StoreError::Decode {
        path: path.clone(),
        source,
    })?;
    if c.topic != topic {
        return Err(StoreError::Invalid {
            path,
            reason: format!("the cursor names topic {}", c.topic),
        });
    }
    Ok(Some(c))
}

/// Writes the cursor durably (temporary name, fsync, rename, directory fsync).
pub fn write_cursor(root: &Path, cursor: &ShipCursor) -> Result<(), StoreError> {
    let path = cursor_path(root, &cursor.topic);
    let dir = path.parent().expect("_meta/ship");
    fs::create_dir_all(dir).map_err(crate::store::io(dir))?;
    replace_file(&path, &cursor.encode())
}

/// The hours before which every window and hour envelope reached every topic the store
/// ships to: retention may delete an hour only below it. `None` when the store has no
/// cursor (it does not ship), `Some(0)` when nothing is shipped.
pub fn shipped_below_hour(root: &Path, window_len_ns: u64) -> Result<Option<u64>, StoreError> {
    let per_hour = windows_per_hour(window_len_ns);
    let cursors = read_cursors(root)?;
    Ok(cursors
        .iter()
        .map(|c| match (c.next_window, c.hour) {
            // Every window of the hours below the next window's is shipped; the hour
            // envelope of the last of them too when the cursor says so.
            (Some(w), Some((h, _))) if h + 1 >= w / per_hour => w / per_hour,
            (Some(w), _) => (w / per_hour).saturating_sub(1),
            (None, _) => 0,
        })
        .min())
}

/// The next envelopes to send and the cursor once they are acked.
#[derive(Debug)]
pub struct Outgoing {
    pub envelopes: Vec<ShipEnvelope>,
    pub cursor: ShipCursor,
    /// The window this shipment completes, if it is a window's.
    pub window: Option<u64>,
}

/// A node tree read for shipping to one topic.
pub struct ShipSource {
    root: PathBuf,
    meta: StoreMeta,
    cursor: ShipCursor,
    recent_blobs: VecDeque<Hash32>,
}

impl ShipSource {
    /// The node tree at `root` shipping to `topic`, from its cursor (the start if none).
    pub fn open(root: &Path, topic: &str) -> Result<Self, StoreError> {
        let meta_path = root.join("_meta/store.cbor");
        let bytes =
            read_capped(&meta_path, StoreMeta::MAX_LEN).map_err(crate::store::io(&meta_path))?;
        let meta = StoreMeta::decode(&bytes).map_err(|source| StoreError::Decode {
            path: meta_path,
            source,
        })?;
        let cursor = read_cursor(root, topic)?.unwrap_or(ShipCursor {
            topic: topic.to_owned(),
            next_seq: 0,
            next_window: None,
            hour: None,
            setup: None,
        });
        Ok(ShipSource {
            root: root.to_owned(),
            meta,
            cursor,
            recent_blobs: VecDeque::new(),
        })
    }

    pub fn meta(&self) -> &StoreMeta {
        &self.meta
    }

    pub fn cursor(&self) -> &ShipCursor {
        &self.cursor
    }

    /// Takes the cursor of a shipment the broker acked (the caller wrote it to disk).
    pub fn acked(&mut self, cursor: ShipCursor) {
        self.cursor = cursor;
    }

    /// The next shipment, or `None` when everything completed so far is shipped. It reads
    /// only completed windows (with their checkpoint) and an hour's derived files only
    /// once its catalog entry says they are complete (FORMAT.md §8.12).
    pub fn next_shipment(&mut self) -> Result<Option<Outgoing>, StoreError> {
        let store = crate::store::NodeStore::open(&self.root, self.meta.clone())?;
        let Some(last) = store.last_sealed_window()? else {
            return Ok(None);
        };
        let per_hour = windows_per_hour(self.meta.window_len_ns);
        let next = match self.cursor.next_window {
            Some(w) => w,
            None => match store.first_sealed_window()? {
                Some(w) => w,
                None => return Ok(None),
            },
        };
        // The hour before the next window, once all its windows are out.
        if let Some(shipped) = next
            .checked_sub(1)
            .filter(|_| self.cursor.next_window.is_some())
        {
            let hour = shipped / per_hour;
            if next > last || next / per_hour != hour {
                if let Some(out) = self.hour_shipment(hour)? {
                    return Ok(Some(out));
                }
                if next / per_hour != hour && next <= last && !self.hour_listed(hour)? {
                    // The writer lists an hour's derived files before it writes the next
                    // hour's first window; until then this hour is not finished.
                    return Ok(None);
                }
            }
        }
        if next > last {
            return Ok(None);
        }
        // After a downtime the next window sealed may be a later one (FORMAT.md §7.2).
        let Some(next) = crate::store::sealed_from(&self.root, next, self.meta.window_len_ns)?
        else {
            return Ok(None);
        };
        self.window_shipment(next).map(Some)
    }

    fn hour_listed(&self, hour: u64) -> Result<bool, StoreError> {
        Ok(read_catalog(&self.root, hour / HOURS_PER_DAY)?
            .is_some_and(|c| c.hours.iter().any(|h| h.hour == hour)))
    }

    /// The hour envelope of `hour` if its catalog entry is written and it differs from
    /// the one last shipped.
    fn hour_shipment(&mut self, hour: u64) -> Result<Option<Outgoing>, StoreError> {
        let day = hour / HOURS_PER_DAY;
        let Some(catalog) = read_catalog(&self.root, day)? else {
            return Ok(None);
        };
        match catalog.hours.iter().find(|h| h.hour == hour) {
            None => return Ok(None),
            Some(h) if h.state == HourState::Deleted => return Ok(None),
            Some(_) => {}
        }
        let mut files = Vec::new();
        let hour_rel = hour_dir(hour);
        let date_hour = hour_rel.strip_prefix("windows").expect("under windows/");
        for dir in [
            Path::new("graph/edges").join(date_hour),
            hour_rel.join("index"),
        ] {
            for name in file_names(&self.root.join(&dir))? {
                let rel = dir.join(&name);
                files.push(self.file(&rel, 256 << 20)?);
            }
        }
        // The state saved after the hour, when the node has one (FORMAT.md §3.15).
        let state = hour_rel.join("proofs/state.cbor.zst");
        if self.root.join(&state).exists() {
            let cap = crate::store::compressed_cap(ritma_schemas::state::MAX_STATE_LEN);
            files.push(self.file(&state, cap)?);
        }
        files.push(self.file(&catalog_path(day), MAX_DAY_LEN + (MAX_DAY_LEN >> 8) + 64)?);
        let mut env = ShipEnvelope {
            node: self.meta.node.clone(),
            stream_seq: 0,
            kind: ShipKind::Hour,
            unit: hour,
            files,
        };
        let digest = *blake3::hash(&env.encode()).as_bytes();
        if self.cursor.hour == Some((hour, digest)) {
            return Ok(None);
        }
        env.stream_seq = self.cursor.next_seq;
        let cursor = ShipCursor {
            next_seq: self.cursor.next_seq + 1,
            hour: Some((hour, digest)),
            ..self.cursor.clone()
        };
        Ok(Some(Outgoing {
            envelopes: vec![env],
            cursor,
            window: None,
        }))
    }

    fn window_shipment(&mut self, window: u64) -> Result<Outgoing, StoreError> {
        let p = WindowPaths::new(window, self.meta.window_len_ns);
        let record_file = self.file(&p.record(), WindowRecord::MAX_LEN)?;
        let record =
            WindowRecord::decode(&record_file.bytes).map_err(|source| StoreError::Decode {
                path: self.root.join(p.record()),
                source,
            })?;
        let mut envelopes = Vec::new();
        let mut seq = self.cursor.next_seq;
        let mut files = Vec::new();
        let setup = self.setup_files()?;
        let setup_digest = setup_digest(&setup);
        if self.cursor.setup != Some(setup_digest) {
            files.extend(setup);
        }
        let leaves = record.leaf_count();
        if leaves > 0 {
            let blocks = self.file(&p.blocks(), block_file_cap(leaves))?;
            if record.capture_mode == CaptureMode::Full {
                for blob in self.blob_refs(&p.blocks(), &record)? {
                    for file in self.blob_files(&blob)? {
                        envelopes.push(ShipEnvelope {
                            node: self.meta.node.clone(),
                            stream_seq: seq,
                            kind: ShipKind::Blob,
                            unit: 0,
                            files: vec![file],
                        });
                        seq += 1;
                    }
                }
            }
            files.push(blocks);
        }
        for n in 0..record.health_count {
            files.push(self.file(&p.health(n as u32), 4096)?);
        }
        files.push(record_file);
        if (window + 1).is_multiple_of(windows_per_hour(self.meta.window_len_ns)) {
            files.push(self.file(&p.hour_seal(), HourSeal::MAX_LEN)?);
            files.push(self.file(&p.hour_checkpoint(), MAX_NOTE_LEN)?);
        }
        files.push(self.file(&p.checkpoint(), MAX_NOTE_LEN)?);
        envelopes.push(ShipEnvelope {
            node: self.meta.node.clone(),
            stream_seq: seq,
            kind: ShipKind::Window,
            unit: window,
            files,
        });
        let cursor = ShipCursor {
            next_seq: seq + 1,
            next_window: Some(window + 1),
            setup: Some(setup_digest),
            ..self.cursor.clone()
        };
        Ok(Outgoing {
            envelopes,
            cursor,
            window: Some(window),
        })
    }

    /// The files that set up the node tree, in the order a writer makes them:
    /// the key files, the specification's copy, the cone library, `store.cbor` last.
    fn setup_files(&self) -> Result<Vec<ShipFile>, StoreError> {
        let mut rels = vec![PathBuf::from("_meta/keys/signing.vkey")];
        for dir in ["_meta/keys/events", "_meta/schema"] {
            rels.extend(
                file_names(&self.root.join(dir))?
                    .into_iter()
                    .map(|n| Path::new(dir).join(n)),
            );
        }
        for version in file_names(&self.root.join("ctgf/cones"))? {
            let dir = Path::new("ctgf/cones").join(version);
            rels.extend(
                file_names(&self.root.join(&dir))?
                    .into_iter()
                    .map(|n| dir.join(n)),
            );
        }
        rels.push(PathBuf::from("_meta/store.cbor"));
        rels.iter()
            .map(|rel| self.file(rel, MAX_SETUP_FILE_LEN))
            .collect()
    }

    /// The blobs the window's events name, but those shipped lately.
    fn blob_refs(&mut self, rel: &Path, record: &WindowRecord) -> Result<Vec<Hash32>, StoreError> {
        let path = self.root.join(rel);
        let leaves = crate::store::read_window_leaves(&path, record.window, record.leaf_count())?;
        let mut out = Vec::new();
        for leaf in &leaves {
            if let Ok(AnyRecord::Event(a)) = AnyRecord::decode(leaf) {
                if let Some(blob) = a.payload_ref {
                    if !self.recent_blobs.contains(&blob) && !out.contains(&blob) {
                        out.push(blob);
                    }
                }
            }
        }
        for b in &out {
            if self.recent_blobs.len() == RECENT_BLOBS {
                self.recent_blobs.pop_front();
            }
            self.recent_blobs.push_back(*b);
        }
        Ok(out)
    }

    /// A blob's chunks, then its manifest: a receiver writes the manifest only once its
    /// chunks are in (FORMAT.md §8.6).
    fn blob_files(&self, blob: &Hash32) -> Result<Vec<ShipFile>, StoreError> {
        let cas = Cas::open(&self.root).map_err(|e| StoreError::Invalid {
            path: self.root.join("cas"),
            reason: e.to_string(),
        })?;
        let rel = |p: PathBuf| p.strip_prefix(&self.root).map(Path::to_owned).unwrap_or(p);
        let manifest_rel = rel(cas.manifest_path(blob));
        let manifest = self.file(&manifest_rel, CasManifest::MAX_LEN)?;
        let m = CasManifest::decode(&manifest.bytes).map_err(|source| StoreError::Decode {
            path: self.root.join(&manifest_rel),
            source,
        })?;
        let mut files = Vec::new();
        for c in &m.chunks {
            let chunk_rel = rel(cas.chunk_path(&c.hash));
            if !files
                .iter()
                .any(|f: &ShipFile| Path::new(&f.path) == chunk_rel)
            {
                files.push(self.file(&chunk_rel, MAX_CHUNK_LEN as usize)?);
            }
        }
        files.push(manifest);
        Ok(files)
    }

    fn file(&self, rel: &Path, max: usize) -> Result<ShipFile, StoreError> {
        let path = self.root.join(rel);
        let bytes = read_capped(&path, max).map_err(crate::store::io(&path))?;
        Ok(ShipFile {
            path: rel.to_string_lossy().into_owned(),
            bytes,
        })
    }
}

/// Plain BLAKE3 over the setup files' paths and bytes.
fn setup_digest(files: &[ShipFile]) -> Hash32 {
    let mut h = blake3::Hasher::new();
    for f in files {
        h.update(&(f.path.len() as u64).to_be_bytes());
        h.update(f.path.as_bytes());
        h.update(&(f.bytes.len() as u64).to_be_bytes());
        h.update(&f.bytes);
    }
    *h.finalize().as_bytes()
}

/// The names of the files in `dir`, sorted; none if it is absent. Temporary files are
/// skipped (FORMAT.md §8.12).
fn file_names(dir: &Path) -> Result<Vec<String>, StoreError> {
    let entries = match fs::read_dir(dir) {
        Ok(it) => it,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(crate::store::io(dir)(e)),
    };
    let mut names = Vec::new();
    for e in entries {
        let e = e.map_err(crate::store::io(dir))?;
        let name = e.file_name().to_string_lossy().into_owned();
        if !crate::store::is_temp_name(&name) {
            names.push(name);
        }
    }
    names.sort();
    Ok(names)
}
