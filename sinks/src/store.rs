//! RITMA_OUT, the on-disk evidence store (FORMAT.md §8): one tree per node with
//! `_meta/store.cbor` and, per sealed window, its blocks, its `WindowRecord` and its
//! signed checkpoint. Every file is written to a temporary name, fsynced and
//! renamed; the checkpoint (`.sig`) is written last, so a window is on disk exactly
//! when its `.sig` is.

use ritma_schemas::cbor::DecodeError;
use ritma_schemas::packed::{IdIndex, IdTable, PackedBlock};
use ritma_schemas::records::{Block, HourSeal, Record, StoreMeta, WindowRecord, MAX_BLOCK_RECORDS};
use ritma_schemas::state::{DataflowState, MAX_STATE_LEN};
use ritma_schemas::Hash32;
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

/// Version of FORMAT.md a store written by this code follows.
pub const FORMAT_VERSION: u32 = 7;
/// zstd level of blocks.
const BLOCK_ZSTD_LEVEL: i32 = 3;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {source}")]
    Decode { path: PathBuf, source: DecodeError },
    #[error("{path}: the store is for {found:?}, not {expected:?}")]
    WrongStore {
        path: PathBuf,
        expected: Box<StoreMeta>,
        found: Box<StoreMeta>,
    },
    #[error("{path}: a store of format version {found}; this Ritma writes version {FORMAT_VERSION} (seal into a new store)")]
    FormatVersion { path: PathBuf, found: u64 },
    #[error("{path}: {reason}")]
    Invalid { path: PathBuf, reason: String },
    /// A file already in the store holds other bytes than the ones being sealed: sealed
    /// evidence is never overwritten (a resumed replay must reproduce it exactly).
    #[error("{path}: already in the store with different contents; sealed files are never overwritten (was the store written from another trace or key, or changed?)")]
    Conflict { path: PathBuf },
}

/// Reads `path` whole, refusing one longer than `max` bytes (the bound of what it holds,
/// FORMAT.md §3) without reading past the bound: a file grown by damage or malice cannot
/// make a reader allocate its size. Too long is an `InvalidData` error.
pub fn read_capped(path: &Path, max: usize) -> std::io::Result<Vec<u8>> {
    use std::io::Read;
    let mut bytes = Vec::new();
    File::open(path)?
        .take((max as u64).saturating_add(1))
        .read_to_end(&mut bytes)?;
    if bytes.len() > max {
        let why = format!("longer than {max} bytes, the most this file may hold");
        return Err(std::io::Error::new(std::io::ErrorKind::InvalidData, why));
    }
    Ok(bytes)
}

/// The most a zstd frame of at most `limit` bytes takes compressed (ZSTD_compressBound).
pub fn compressed_cap(limit: usize) -> usize {
    zstd::zstd_safe::compress_bound(limit)
}

/// The most a window's block file may take (FORMAT.md §8.2): 2^27 bytes for its id table's
/// frame and 2^26 for each of the blocks its `leaves` need.
pub fn block_file_cap(leaves: u64) -> usize {
    let blocks = leaves.div_ceil(MAX_BLOCK_RECORDS as u64);
    usize::try_from(blocks.saturating_mul(1 << 26).saturating_add(1 << 27)).unwrap_or(usize::MAX)
}

pub(crate) fn io(path: &Path) -> impl FnOnce(std::io::Error) -> StoreError + '_ {
    move |source| StoreError::Io {
        path: path.to_owned(),
        source,
    }
}

/// Days since 1970-01-01 of a civil date (H. Hinnant's algorithm; the inverse of
/// [`civil_from_days`]).
pub fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = y - i64::from(m <= 2);
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = i64::from((m + 9) % 12);
    let doy = (153 * mp + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Civil date (year, month, day) of days since 1970-01-01 (H. Hinnant's algorithm).
pub fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

/// Where one window's files live inside a node's tree.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WindowPaths {
    /// `windows/YYYY/MM/DD/HH`
    pub hour_dir: PathBuf,
    /// The window's index within its hour (the file number).
    pub index: u64,
}

impl WindowPaths {
    /// The hour number (floor(start / 3600 s)) of an hour directory `windows/YYYY/MM/DD/HH`.
    pub fn hour_of_dir(rel: &Path) -> Option<u64> {
        let parts: Vec<u32> = rel
            .iter()
            .skip(1)
            .map(|c| c.to_str()?.parse().ok())
            .collect::<Option<_>>()?;
        let [y, m, d, h] = parts[..] else {
            return None;
        };
        let days = u64::try_from(days_from_civil(i64::from(y), m, d)).ok()?;
        Some(days * 24 + u64::from(h))
    }

    pub fn new(window: u64, window_len_ns: u64) -> Self {
        let start_s = (window as u128 * window_len_ns as u128 / 1_000_000_000) as i64;
        let (y, m, d) = civil_from_days(start_s.div_euclid(86_400));
        let hour = start_s.rem_euclid(86_400) / 3600;
        let per_hour = ritma_schemas::records::windows_per_hour(window_len_ns);
        WindowPaths {
            hour_dir: PathBuf::from(format!("windows/{y:04}/{m:02}/{d:02}/{hour:02}")),
            index: window % per_hour,
        }
    }

    pub fn record(&self) -> PathBuf {
        self.hour_dir.join(format!("micro/w{:04}.cbor", self.index))
    }

    pub fn checkpoint(&self) -> PathBuf {
        self.hour_dir.join(format!("micro/w{:04}.sig", self.index))
    }

    /// The hour's seal (written with the hour's last window).
    pub fn hour_seal(&self) -> PathBuf {
        self.hour_dir.join("proofs/hour_root.cbor")
    }

    /// The checkpoint at the hour's last window, beside the seal.
    /// The dataflow state saved after the hour's last window (FORMAT.md §3.15).
    pub fn state(&self) -> PathBuf {
        self.hour_dir.join("proofs/state.cbor.zst")
    }

    pub fn hour_checkpoint(&self) -> PathBuf {
        self.hour_dir.join("proofs/hour_root.sig")
    }

    /// The readable copy of the window's health record `n` (FORMAT.md §8.7).
    pub fn health(&self, n: u32) -> PathBuf {
        let hour = self
            .hour_dir
            .strip_prefix("windows")
            .expect("under windows/");
        Path::new("_meta/health")
            .join(hour)
            .join(format!("w{:04}.{n:04}.cbor", self.index))
    }

    /// The window's block file: all its blocks, one zstd frame each (FORMAT.md §8.2).
    pub fn blocks(&self) -> PathBuf {
        self.hour_dir
            .join(format!("blocks/w{:04}.cbor.zst", self.index))
    }
}

/// True for the names of temporary files: `.NAME.tmp`, or `.NAME.PID.N.tmp` in `cas/`
/// (FORMAT.md §8.12). Readers never open them.
pub fn is_temp_name(name: &str) -> bool {
    name.starts_with('.') && name.ends_with(".tmp")
}

/// Writes a file atomically: temporary name, fsync, rename. The caller fsyncs the
/// directory once per window.
pub(crate) fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), StoreError> {
    let dir = path.parent().unwrap_or(Path::new("."));
    fs::create_dir_all(dir).map_err(io(dir))?;
    let mut one = AtomicBatch::new();
    one.write(path.to_owned(), bytes)?;
    one.commit()
}

/// Replaces a file atomically (temporary name `.NAME.tmp`, fsync, rename over it): a
/// reader sees the old bytes or the new, never a mix. The caller fsyncs the directory.
pub(crate) fn replace_atomic(path: &Path, bytes: &[u8]) -> Result<(), StoreError> {
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("file");
    let tmp = path.with_file_name(format!(".{name}.tmp"));
    let written = File::create(&tmp)
        .and_then(|mut f| f.write_all(bytes).and_then(|()| f.sync_all()))
        .map_err(io(&tmp));
    if let Err(e) = written.and_then(|()| fs::rename(&tmp, path).map_err(io(path))) {
        // A full disk leaves the old file and no partial one.
        let _ = fs::remove_file(&tmp);
        return Err(e);
    }
    Ok(())
}

/// Replaces `path` atomically and durably: [`replace_atomic`], then its directory fsynced.
pub fn replace_file(path: &Path, bytes: &[u8]) -> Result<(), StoreError> {
    replace_atomic(path, bytes)?;
    sync_dir(path.parent().unwrap_or(Path::new(".")))
}

pub(crate) fn sync_dir(dir: &Path) -> Result<(), StoreError> {
    File::open(dir).and_then(|d| d.sync_all()).map_err(io(dir))
}

/// Files of one directory written to temporary names, then each fsynced and renamed
/// in order: the guarantee of [`write_atomic`] file by file (a name appears only for
/// contents already on disk), but every file's writeback starts when it is written,
/// so the device works on the next files while the first fsync waits.
pub(crate) struct AtomicBatch {
    /// (open temporary file, its path, the final path), in write order.
    files: Vec<(File, PathBuf, PathBuf)>,
}

impl AtomicBatch {
    /// Open files held at most before the batch commits what it has (fd limits).
    const MAX_OPEN: usize = 64;

    pub(crate) fn new() -> Self {
        AtomicBatch { files: Vec::new() }
    }

    /// Writes `bytes` to `path`'s temporary name; `path`'s directory must exist. A file
    /// already at `path` (from an interrupted run being resumed) must hold exactly
    /// `bytes`: it is then kept, else this fails with `Conflict`.
    pub(crate) fn write(&mut self, path: PathBuf, bytes: &[u8]) -> Result<(), StoreError> {
        if self.files.len() == Self::MAX_OPEN {
            self.commit()?;
        }
        match read_capped(&path, bytes.len()) {
            Ok(existing) if existing == bytes => return Ok(()),
            Ok(_) => return Err(StoreError::Conflict { path }),
            Err(e) if e.kind() == std::io::ErrorKind::InvalidData => {
                return Err(StoreError::Conflict { path })
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(StoreError::Io { path, source: e }),
        }
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("file");
        let tmp = path.with_file_name(format!(".{name}.tmp"));
        let mut f = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(&tmp)
            .map_err(io(&tmp))?;
        if let Err(e) = f.write_all(bytes) {
            // A full disk leaves no partial file behind.
            drop(f);
            let _ = fs::remove_file(&tmp);
            return Err(StoreError::Io {
                path: tmp,
                source: e,
            });
        }
        start_writeback(&f);
        self.files.push((f, tmp, path));
        Ok(())
    }

    /// fsyncs and renames every file written so far, in order.
    pub(crate) fn commit(&mut self) -> Result<(), StoreError> {
        let mut files = std::mem::take(&mut self.files).into_iter();
        while let Some((f, tmp, path)) = files.next() {
            let done = f
                .sync_all()
                .map_err(io(&tmp))
                .and_then(|()| fs::rename(&tmp, &path).map_err(io(&path)));
            if let Err(e) = done {
                for (_, t, _) in std::iter::once((f, tmp, path)).chain(files) {
                    let _ = fs::remove_file(&t);
                }
                return Err(e);
            }
        }
        Ok(())
    }
}

impl Drop for AtomicBatch {
    /// Temporary files of a batch that failed before its commit are removed.
    fn drop(&mut self) {
        for (_, tmp, _) in self.files.drain(..) {
            let _ = fs::remove_file(&tmp);
        }
    }
}

/// Asks the kernel to start writing `f`'s dirty pages now; the fsync that follows
/// still waits for them (and is the durability guarantee), so a failure is ignored.
fn start_writeback(f: &File) {
    use std::os::fd::AsRawFd;
    // SAFETY: a plain syscall on an open descriptor; it touches no memory of ours.
    let _ = unsafe { libc::sync_file_range(f.as_raw_fd(), 0, 0, libc::SYNC_FILE_RANGE_WRITE) };
}

/// A zstd context and buffers for block files, reused from window to window.
struct BlockEncoder {
    zstd: zstd::bulk::Compressor<'static>,
    raw: Vec<u8>,
    compressed: Vec<u8>,
    /// The window's compressed blocks, before its table is known.
    blocks: Vec<u8>,
    file: Vec<u8>,
}

impl BlockEncoder {
    fn new() -> std::io::Result<Self> {
        Ok(BlockEncoder {
            zstd: zstd::bulk::Compressor::new(BLOCK_ZSTD_LEVEL)?,
            raw: Vec::new(),
            compressed: Vec::new(),
            blocks: Vec::new(),
            file: Vec::new(),
        })
    }

    /// The window's block file (§8.2): its id table, then the packed `Block` of each
    /// 1000 leaves, each one zstd frame, in order.
    fn block_file(&mut self, window: u64, leaves: &[Vec<u8>]) -> std::io::Result<(&[u8], IdIndex)> {
        let unpackable = |e: ritma_schemas::cbor::DecodeError| {
            std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("window {window}: a leaf cannot be packed: {e}"),
            )
        };
        // The blocks first, listing the ids as they go; the table goes before them.
        self.blocks.clear();
        let mut ids = IdIndex::default();
        for (index, chunk) in leaves.chunks(MAX_BLOCK_RECORDS).enumerate() {
            let first_leaf = (index * MAX_BLOCK_RECORDS) as u64;
            let packed =
                PackedBlock::pack_growing(window, index as u32, first_leaf, chunk, &mut ids)
                    .map_err(unpackable)?;
            self.raw.clear();
            packed.encode_into(&mut self.raw);
            self.compress_frame()?;
            self.blocks.extend_from_slice(&self.compressed);
        }
        self.raw.clear();
        ids.table(window).encode_into(&mut self.raw);
        self.compress_frame()?;
        self.file.clear();
        self.file.extend_from_slice(&self.compressed);
        self.file.extend_from_slice(&self.blocks);
        Ok((&self.file, ids))
    }

    /// Compresses `raw` into `compressed`, one zstd frame.
    fn compress_frame(&mut self) -> std::io::Result<()> {
        self.compressed.clear();
        self.compressed
            .reserve(zstd::zstd_safe::compress_bound(self.raw.len()));
        self.zstd
            .compress_to_buffer(&self.raw, &mut self.compressed)?;
        Ok(())
    }
}

/// One node's tree in a store.
pub struct NodeStore {
    root: PathBuf,
    meta: StoreMeta,
    blocks: std::sync::Mutex<BlockEncoder>,
}

impl NodeStore {
    /// The tree of `meta.node` under `root` (the store root itself, or
    /// `nodes/<node>` of a multi-node store), refusing a store written for another
    /// node, window length, cone library or taint lifetime. A new tree gets its
    /// `_meta/store.cbor` from [`NodeStore::write_meta`].
    pub fn open(root: &Path, meta: StoreMeta) -> Result<Self, StoreError> {
        let path = root.join("_meta/store.cbor");
        match read_capped(&path, StoreMeta::MAX_LEN) {
            Ok(bytes) => {
                if let Some(found) =
                    StoreMeta::format_version_of(&bytes).filter(|&v| v != u64::from(FORMAT_VERSION))
                {
                    return Err(StoreError::FormatVersion { path, found });
                }
                let found = StoreMeta::decode(&bytes).map_err(|source| StoreError::Decode {
                    path: path.clone(),
                    source,
                })?;
                if found != meta {
                    return Err(StoreError::WrongStore {
                        path,
                        expected: Box::new(meta),
                        found: Box::new(found),
                    });
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(StoreError::Io { path, source: e }),
        }
        Ok(NodeStore {
            root: root.to_owned(),
            meta,
            blocks: std::sync::Mutex::new(BlockEncoder::new().map_err(io(root))?),
        })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Writes `_meta/store.cbor` if absent: after the key files, the spec and the cone
    /// library, so a writer stopped while setting up leaves no half-made store.
    pub fn write_meta(&self) -> Result<(), StoreError> {
        let path = self.root.join("_meta/store.cbor");
        if !path.exists() {
            write_atomic(&path, &self.meta.encode())?;
            sync_dir(&self.root.join("_meta"))?;
        }
        Ok(())
    }

    /// The window number of the store's first window record, if it holds any (a
    /// resumed run must start there).
    pub fn first_sealed_window(&self) -> Result<Option<u64>, StoreError> {
        let mut dir = self.root.join("windows");
        // windows/YYYY/MM/DD/HH: the smallest name at each level is the earliest.
        for _ in 0..4 {
            match first_entry(&dir, |_| true)? {
                Some(name) => dir = dir.join(name),
                None => return Ok(None),
            }
        }
        let micro = dir.join("micro");
        let Some(name) = first_entry(&micro, |n| n.starts_with('w') && n.ends_with(".cbor"))?
        else {
            return Ok(None);
        };
        let path = micro.join(name);
        let bytes = read_capped(&path, WindowRecord::MAX_LEN).map_err(io(&path))?;
        let record =
            WindowRecord::decode(&bytes).map_err(|source| StoreError::Decode { path, source })?;
        Ok(Some(record.window))
    }

    pub fn meta(&self) -> &StoreMeta {
        &self.meta
    }

    /// The newest completed window (the newest with its checkpoint), if any: where a
    /// resumed run starts writing what the store did not hold.
    pub fn last_sealed_window(&self) -> Result<Option<u64>, StoreError> {
        let digits = |n: &str| n.bytes().all(|b| b.is_ascii_digit());
        let mut hours = vec![PathBuf::from("windows")];
        for _ in 0..4 {
            let mut next = Vec::new();
            for rel in &hours {
                let dir = self.root.join(rel);
                let names = match fs::read_dir(&dir) {
                    Ok(it) => it.filter_map(|e| e.ok()?.file_name().into_string().ok()),
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                    Err(e) => return Err(io(&dir)(e)),
                };
                next.extend(names.filter(|n| digits(n)).map(|n| rel.join(n)));
            }
            hours = next;
        }
        hours.sort();
        let per_hour = ritma_schemas::records::windows_per_hour(self.meta.window_len_ns);
        for rel in hours.iter().rev() {
            let micro = self.root.join(rel).join("micro");
            let newest = match fs::read_dir(&micro) {
                Ok(it) => it
                    .filter_map(|e| e.ok()?.file_name().into_string().ok())
                    .filter_map(|n| {
                        let i = n.strip_prefix('w')?.strip_suffix(".sig")?;
                        (i.len() == 4 && digits(i)).then(|| i.parse::<u64>().ok())?
                    })
                    .max(),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
                Err(e) => return Err(io(&micro)(e)),
            };
            if let (Some(i), Some(hour)) = (newest, WindowPaths::hour_of_dir(rel)) {
                return Ok(Some(hour * per_hour + i));
            }
        }
        Ok(None)
    }

    /// Writes `_meta/schema/FORMAT-vN.md`, the specification the store's bytes follow
    /// (informative: a verifier checks against its own). An existing copy is kept.
    pub fn write_schema(&self, spec: &str) -> Result<(), StoreError> {
        let path = self.root.join(format!(
            "_meta/schema/FORMAT-v{}.md",
            self.meta.format_version
        ));
        if !path.exists() {
            write_atomic(&path, spec.as_bytes())?;
            sync_dir(path.parent().expect("schema dir"))?;
        }
        Ok(())
    }

    /// Writes the cone library the windows are matched with under `ctgf/cones/vNNNN/`,
    /// refusing to change a file already there (a library version never changes).
    pub fn write_cone_library(
        &self,
        version: u32,
        files: &[(&str, &str)],
    ) -> Result<(), StoreError> {
        let dir = self.root.join(format!("ctgf/cones/v{version:04}"));
        for (name, text) in files {
            // A file already there must be this one (`Conflict` otherwise).
            write_atomic(&dir.join(name), text.as_bytes())?;
        }
        sync_dir(&dir)
    }

    /// Writes a sealed window: blocks, the window record, the hour's seal if this
    /// window ends its hour, and the checkpoint last. Each file reaches its name only
    /// once its contents are fsynced; the blocks' directory is fsynced before the
    /// record is written, the proofs' before the checkpoint, and the checkpoint's last.
    /// Returns the window's id index (§8.2), which its graph edge parts are packed with;
    /// none for a window without leaves.
    pub fn write_window(
        &self,
        record: &WindowRecord,
        record_bytes: &[u8],
        leaves: &[Vec<u8>],
        checkpoint: &str,
        hour_seal: Option<&HourSeal>,
    ) -> Result<Option<IdIndex>, StoreError> {
        let p = WindowPaths::new(record.window, self.meta.window_len_ns);
        let hour_dir = self.root.join(&p.hour_dir);
        let mut ids = None;
        if !leaves.is_empty() {
            let dir = hour_dir.join("blocks");
            fs::create_dir_all(&dir).map_err(io(&dir))?;
            let mut encoder = self.blocks.lock().unwrap_or_else(|e| e.into_inner());
            let path = self.root.join(p.blocks());
            let (bytes, window_ids) = encoder
                .block_file(record.window, leaves)
                .map_err(io(&path))?;
            write_atomic(&path, bytes)?;
            ids = Some(window_ids);
            sync_dir(&dir)?;
        }
        // Health records are the window's last leaves; each gets a readable copy.
        let health = &leaves[leaves.len() - record.health_count as usize..];
        if !health.is_empty() {
            let dir = self.root.join(p.health(0));
            let dir = dir.parent().expect("health dir");
            fs::create_dir_all(dir).map_err(io(dir))?;
            let mut batch = AtomicBatch::new();
            for (n, leaf) in health.iter().enumerate() {
                batch.write(self.root.join(p.health(n as u32)), leaf)?;
            }
            batch.commit()?;
            sync_dir(dir)?;
        }
        write_atomic(&self.root.join(p.record()), record_bytes)?;
        if let Some(seal) = hour_seal {
            let dir = hour_dir.join("proofs");
            fs::create_dir_all(&dir).map_err(io(&dir))?;
            let mut batch = AtomicBatch::new();
            batch.write(self.root.join(p.hour_seal()), &seal.encode())?;
            batch.write(self.root.join(p.hour_checkpoint()), checkpoint.as_bytes())?;
            batch.commit()?;
            sync_dir(&dir)?;
        }
        let sig = self.root.join(p.checkpoint());
        write_atomic(&sig, checkpoint.as_bytes())?;
        sync_dir(sig.parent().expect("micro dir"))?;
        Ok(ids)
    }
}

/// zstd level of saved dataflow states.
const STATE_ZSTD_LEVEL: i32 = 3;

impl NodeStore {
    /// Writes the dataflow state saved after `window` (its hour's last), `encoded` being
    /// the DataflowState record; returns its digest. A state already there must be the same.
    pub fn write_state(&self, window: u64, encoded: &[u8]) -> Result<Hash32, StoreError> {
        let p = WindowPaths::new(window, self.meta.window_len_ns);
        let path = self.root.join(p.state());
        let bytes = zstd::bulk::compress(encoded, STATE_ZSTD_LEVEL).map_err(io(&path))?;
        write_atomic(&path, &bytes)?;
        sync_dir(path.parent().expect("proofs dir"))?;
        Ok(DataflowState::digest_of(encoded))
    }
}

/// The dataflow state saved after `window` in the node tree at `root`, with its digest,
/// decoded strictly; `None` if there is none.
/// The first completed window from `window` on in its hour: `window` itself, or the next
/// after windows a downtime left out (FORMAT.md §7.2; never an hour's last, so the next one
/// sealed is in the same hour). `None` if the hour holds none yet.
pub fn sealed_from(
    root: &Path,
    window: u64,
    window_len_ns: u64,
) -> Result<Option<u64>, StoreError> {
    let p = WindowPaths::new(window, window_len_ns);
    let micro = root.join(&p.hour_dir).join("micro");
    let first = window - p.index;
    let found = match fs::read_dir(&micro) {
        Ok(it) => it
            .filter_map(|e| e.ok()?.file_name().into_string().ok())
            .filter_map(|n| {
                let i = n.strip_prefix('w')?.strip_suffix(".sig")?;
                (i.len() == 4 && i.bytes().all(|b| b.is_ascii_digit()))
                    .then(|| i.parse::<u64>().ok())?
            })
            .filter(|i| *i >= p.index)
            .min(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(io(&micro)(e)),
    };
    Ok(found.map(|i| first + i))
}

pub fn read_state(
    root: &Path,
    window: u64,
    window_len_ns: u64,
) -> Result<Option<(DataflowState, Hash32)>, StoreError> {
    let path = root.join(WindowPaths::new(window, window_len_ns).state());
    let bytes = match read_capped(&path, compressed_cap(MAX_STATE_LEN)) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io(&path)(e)),
    };
    let raw = decompress_frame(&bytes, MAX_STATE_LEN).map_err(|e| StoreError::Invalid {
        path: path.clone(),
        reason: format!("not one zstd frame of at most {MAX_STATE_LEN} bytes: {e}"),
    })?;
    let state = DataflowState::decode(&raw).map_err(|source| StoreError::Decode {
        path: path.clone(),
        source,
    })?;
    Ok(Some((state, DataflowState::digest_of(&raw))))
}

/// The smallest name in `dir` that `keep` accepts (none if `dir` is absent or has none);
/// temporary files (`.name.tmp`) are never taken.
fn first_entry(dir: &Path, keep: impl Fn(&str) -> bool) -> Result<Option<String>, StoreError> {
    let entries = match fs::read_dir(dir) {
        Ok(it) => it,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io(dir)(e)),
    };
    let mut first: Option<String> = None;
    for e in entries {
        let name = e
            .map_err(io(dir))?
            .file_name()
            .to_string_lossy()
            .into_owned();
        if !name.starts_with('.') && keep(&name) && first.as_ref().is_none_or(|f| name < *f) {
            first = Some(name);
        }
    }
    Ok(first)
}

/// Where writer locks live unless `RITMA_LOCK_DIR` says otherwise (DESIGN §4).
pub const DEFAULT_LOCK_DIR: &str = "/run/ritma/locks";

/// The one-writer lock of a store: an exclusive `flock` on a file in the lock directory
/// named after the store's canonical path, held until dropped (the kernel releases it
/// when the process dies, so a crash never leaves a store locked).
pub struct StoreLock {
    _file: File,
}

impl StoreLock {
    /// Takes the lock of the store at `store` (created if absent) in `lock_dir`, or fails
    /// naming the process that holds it.
    pub fn acquire(store: &Path, lock_dir: &Path) -> Result<Self, StoreError> {
        Self::acquire_named(store, lock_dir, "")
    }

    /// The lock of the store's cases (FORMAT.md §8.9): held by a case action and by
    /// retention, so no case is frozen while retention deletes; a live writer does not
    /// hold it, so cases are worked on during capture.
    pub fn acquire_cases(store: &Path, lock_dir: &Path) -> Result<Self, StoreError> {
        Self::acquire_named(store, lock_dir, ".cases")
    }

    /// The lock of a ClickHouse load of the store (`ritma load`): one loader per store, so
    /// two never insert the same window's rows at once; a writer or a case action may run.
    pub fn acquire_load(store: &Path, lock_dir: &Path) -> Result<Self, StoreError> {
        Self::acquire_named(store, lock_dir, ".load")
    }

    fn acquire_named(store: &Path, lock_dir: &Path, suffix: &str) -> Result<Self, StoreError> {
        use std::io::Read;
        use std::os::fd::AsRawFd;
        fs::create_dir_all(store).map_err(io(store))?;
        let canonical = fs::canonicalize(store).map_err(io(store))?;
        fs::create_dir_all(lock_dir).map_err(|source| StoreError::Invalid {
            path: lock_dir.to_owned(),
            reason: format!("cannot create the lock directory ({source}); set RITMA_LOCK_DIR to a writable directory"),
        })?;
        let digest = ritma_schemas::hash::blake3(canonical.as_os_str().as_encoded_bytes());
        let name: String = digest[..16].iter().map(|b| format!("{b:02x}")).collect();
        let path = lock_dir.join(format!("{name}{suffix}.lock"));
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(io(&path))?;
        // SAFETY: flock on a descriptor we own; no memory is touched.
        if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
            let err = std::io::Error::last_os_error();
            if err.raw_os_error() != Some(libc::EWOULDBLOCK) {
                return Err(StoreError::Io { path, source: err });
            }
            let mut holder = String::new();
            let _ = file.read_to_string(&mut holder);
            return Err(StoreError::Invalid {
                path,
                reason: format!(
                    "another process is {} {} ({}): {}",
                    match suffix {
                        "" => "writing the store",
                        ".cases" => "writing the cases of the store",
                        _ => "loading into ClickHouse the store",
                    },
                    canonical.display(),
                    holder.trim(),
                    if suffix.is_empty() {
                        "one writer per store"
                    } else {
                        "one at a time"
                    }
                ),
            });
        }
        // Who holds it, for the error another writer gets (informative only).
        let _ = file.set_len(0);
        let _ = file.write_all(
            format!(
                "pid {} writes {}\n",
                std::process::id(),
                canonical.display()
            )
            .as_bytes(),
        );
        Ok(StoreLock { _file: file })
    }

    /// `RITMA_LOCK_DIR`, else `DEFAULT_LOCK_DIR`.
    pub fn lock_dir() -> PathBuf {
        std::env::var_os("RITMA_LOCK_DIR")
            .filter(|v| !v.is_empty())
            .map_or_else(|| PathBuf::from(DEFAULT_LOCK_DIR), PathBuf::from)
    }
}

/// Decompresses one zstd frame of at most `limit` bytes with this thread's reused context:
/// a fresh context per block costs more than many blocks (its buffers are new pages each time).
pub(crate) fn decompress_frame(bytes: &[u8], limit: usize) -> std::io::Result<Vec<u8>> {
    thread_local! {
        static CONTEXT: std::cell::RefCell<Option<zstd::bulk::Decompressor<'static>>> =
            const { std::cell::RefCell::new(None) };
    }
    CONTEXT.with(|c| {
        let mut c = c.borrow_mut();
        let context = match &mut *c {
            Some(d) => d,
            None => c.insert(zstd::bulk::Decompressor::new()?),
        };
        context.decompress(bytes, limit)
    })
}

/// A window's block file read block by block (FORMAT.md §8.2): zstd frames one after
/// another, each a strict `Block` of the window numbered from 0 and holding the next
/// leaves. Errors name the file, the block and its byte offset.
pub struct BlockFile {
    path: PathBuf,
    bytes: Vec<u8>,
    window: u64,
    ids: IdTable,
    /// Byte offset of the next frame.
    at: usize,
    /// The next block's index, and its first leaf.
    next: u32,
    next_leaf: u64,
    /// Table entries the blocks read so far used, while they are read in order from the
    /// first (each entry must be first used in table order, and every entry used).
    ids_used: Option<usize>,
}

/// The zstd frame magic (RFC 8878 §3.1.1), little-endian on disk.
const ZSTD_MAGIC: [u8; 4] = [0x28, 0xb5, 0x2f, 0xfd];

impl BlockFile {
    /// Reads `window`'s block file at `path`, of a window of `leaves` leaves (its record's
    /// counts, which bound the file, [`block_file_cap`]), and its id table.
    pub fn open(path: &Path, window: u64, leaves: u64) -> Result<Self, StoreError> {
        let bytes = read_capped(path, block_file_cap(leaves)).map_err(io(path))?;
        Self::from_bytes(path, bytes, window, leaves)
    }

    /// [`BlockFile::open`] of a block file already in memory (one that arrived in a
    /// message), named `path` in errors.
    pub fn from_bytes(
        path: &Path,
        bytes: Vec<u8>,
        window: u64,
        leaves: u64,
    ) -> Result<Self, StoreError> {
        let cap = block_file_cap(leaves);
        if bytes.len() > cap {
            return Err(StoreError::Invalid {
                path: path.to_owned(),
                reason: format!("longer than {cap} bytes, the most this file may hold"),
            });
        }
        let mut file = BlockFile {
            path: path.to_owned(),
            bytes,
            window,
            ids: IdTable {
                window,
                ids: Vec::new(),
            },
            at: 0,
            next: 0,
            next_leaf: 0,
            ids_used: Some(0),
        };
        let invalid = |file: &BlockFile, reason: String| StoreError::Invalid {
            path: file.path.clone(),
            reason: format!("id table at byte 0: {reason}"),
        };
        let Some(frame) = file.frame()? else {
            return Err(invalid(
                &file,
                "the file is empty (a window without leaves has no block file)".into(),
            ));
        };
        let len = frame.len();
        let raw = decompress_frame(frame, IdTable::MAX_LEN)
            .map_err(|e| invalid(&file, format!("not a zstd frame: {e}")))?;
        let table = IdTable::decode(&raw).map_err(|e| invalid(&file, e.to_string()))?;
        if table.window != window {
            return Err(invalid(
                &file,
                format!(
                    "the table says window {}, its place says window {window}",
                    table.window
                ),
            ));
        }
        file.ids = table;
        file.at = len;
        Ok(file)
    }

    /// The window's id table.
    pub fn into_ids(self) -> IdTable {
        self.ids
    }

    /// Blocks read (or skipped) so far.
    pub fn blocks_read(&self) -> u32 {
        self.next
    }

    fn invalid(&self, reason: impl std::fmt::Display) -> StoreError {
        StoreError::Invalid {
            path: self.path.clone(),
            reason: format!("block {} at byte {}: {reason}", self.next, self.at),
        }
    }

    /// The next frame's bytes, `None` at the end of the file.
    fn frame(&self) -> Result<Option<&[u8]>, StoreError> {
        let rest = &self.bytes[self.at..];
        if rest.is_empty() {
            return Ok(None);
        }
        // Only data frames: a skippable frame would hide bytes from the tree.
        if !rest.starts_with(&ZSTD_MAGIC) {
            return Err(self.invalid("not a zstd frame"));
        }
        let len = zstd::zstd_safe::find_frame_compressed_size(rest)
            .map_err(|code| self.invalid(zstd::zstd_safe::get_error_name(code)))?;
        Ok(Some(&rest[..len]))
    }

    /// The next block, strict; `None` after the last.
    pub fn next_block(&mut self) -> Result<Option<Block>, StoreError> {
        let Some(frame) = self.frame()? else {
            if self.next == 0 {
                return Err(self.invalid("the file holds no block"));
            }
            if let Some(used) = self.ids_used {
                if used != self.ids.ids.len() {
                    return Err(self.invalid(format!(
                        "the id table lists {} ids, the blocks use {used}",
                        self.ids.ids.len()
                    )));
                }
            }
            return Ok(None);
        };
        let frame_len = frame.len();
        let raw = decompress_frame(frame, PackedBlock::MAX_LEN)
            .map_err(|e| self.invalid(format!("not a zstd block: {e}")))?;
        let packed = PackedBlock::decode(&raw).map_err(|e| self.invalid(e))?;
        if (packed.window, packed.index, packed.first_leaf)
            != (self.window, self.next, self.next_leaf)
        {
            return Err(self.invalid(format!(
                "the block says window {} index {} first leaf {}, its place says window {} index {} first leaf {}",
                packed.window, packed.index, packed.first_leaf, self.window, self.next, self.next_leaf
            )));
        }
        let mut used = self.ids_used;
        let records = packed
            .unpack(&self.ids, used.as_mut())
            .map_err(|e| self.invalid(e))?;
        self.ids_used = used;
        self.at += frame_len;
        self.next += 1;
        self.next_leaf += records.len() as u64;
        Ok(Some(Block {
            window: packed.window,
            index: packed.index,
            first_leaf: packed.first_leaf,
            records,
        }))
    }

    /// Skips the next block without decompressing it (its first leaf is then taken to
    /// be `index × 1000`); false at the end of the file.
    fn skip(&mut self) -> Result<bool, StoreError> {
        let Some(len) = self.frame()?.map(<[u8]>::len) else {
            return Ok(false);
        };
        self.at += len;
        self.next += 1;
        self.next_leaf = self.next as u64 * MAX_BLOCK_RECORDS as u64;
        // Blocks not read cannot show which ids they first use.
        self.ids_used = None;
        Ok(true)
    }
}

/// Reads block `index` of `window` from its block file, skipping the frames before it.
pub fn read_block(path: &Path, window: u64, leaves: u64, index: u32) -> Result<Block, StoreError> {
    let mut file = BlockFile::open(path, window, leaves)?;
    while file.next < index {
        if !file.skip()? {
            break;
        }
    }
    // The block read is the one at `index`: next_block checks every block's place.
    match file.next_block()? {
        Some(block) => Ok(block),
        None => Err(StoreError::Invalid {
            path: path.to_owned(),
            reason: format!("no block {index}: the file holds {}", file.next),
        }),
    }
}

/// Every leaf of a window's block file, in order.
pub fn read_window_leaves(
    path: &Path,
    window: u64,
    leaves: u64,
) -> Result<Vec<Vec<u8>>, StoreError> {
    let mut file = BlockFile::open(path, window, leaves)?;
    let mut leaves = Vec::new();
    while let Some(block) = file.next_block()? {
        leaves.extend(block.records);
    }
    Ok(leaves)
}

/// The highest seq a window of the node tree at `root` seals: its last event's (events are
/// leaves in seq order, FORMAT.md §8.2), read from the one block that holds it; `None`
/// for a window without events.
pub fn last_seq(root: &Path, record: &WindowRecord) -> Result<Option<u64>, StoreError> {
    let Some(events) = record.event_count.checked_sub(1) else {
        return Ok(None);
    };
    let paths = WindowPaths::new(record.window, record.window_len_ns);
    let Some(last) = [record.dict_count, record.actor_count, events]
        .iter()
        .try_fold(0u64, |a, &n| a.checked_add(n))
    else {
        return Err(StoreError::Invalid {
            path: root.join(paths.record()),
            reason: "record counts overflow".into(),
        });
    };
    let block = (last / MAX_BLOCK_RECORDS as u64) as u32;
    let path = root.join(paths.blocks());
    let b = read_block(&path, record.window, record.leaf_count(), block)?;
    let leaf = b
        .records
        .get((last % MAX_BLOCK_RECORDS as u64) as usize)
        .ok_or_else(|| StoreError::Invalid {
            path: path.clone(),
            reason: format!("no leaf {last}"),
        })?;
    let atom = ritma_schemas::records::EventAtom::decode(leaf)
        .map_err(|source| StoreError::Decode { path, source })?;
    Ok(Some(atom.seq))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hour_dirs_name_their_hour() {
        let paths = WindowPaths::new(1_763_884_800 + 7 * 3600, 1_000_000_000);
        assert_eq!(
            WindowPaths::hour_of_dir(&paths.hour_dir),
            Some(1_763_884_800 / 3600 + 7)
        );
        assert_eq!(
            WindowPaths::hour_of_dir(Path::new("windows/2026/11/23")),
            None
        );
        assert_eq!(
            WindowPaths::hour_of_dir(Path::new("windows/2026/11/23/xx")),
            None
        );
    }

    #[test]
    fn civil_dates_match_known_days() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(20_758), (2026, 11, 1));
        assert_eq!(civil_from_days(11_016), (2000, 2, 29));
        assert_eq!(civil_from_days(-1), (1969, 12, 31));
        for days in (-800_000..800_000).step_by(997) {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, m, d), days);
        }
    }

    #[test]
    fn window_paths_use_the_hour_and_the_index_within_it() {
        // 2026-11-01T00:00:00Z is window 1 793 491 200 of 1 s.
        let p = WindowPaths::new(1_793_491_200 + 3600 + 61, 1_000_000_000);
        assert_eq!(p.hour_dir, PathBuf::from("windows/2026/11/01/01"));
        assert_eq!(p.index, 61);
        assert_eq!(
            p.record(),
            PathBuf::from("windows/2026/11/01/01/micro/w0061.cbor")
        );
        assert_eq!(
            p.blocks(),
            PathBuf::from("windows/2026/11/01/01/blocks/w0061.cbor.zst")
        );
        let p = WindowPaths::new(1_793_491_200 / 60 + 59, 60_000_000_000);
        assert_eq!(
            (p.hour_dir, p.index),
            (PathBuf::from("windows/2026/11/01/00"), 59)
        );
    }

    #[test]
    fn a_window_of_many_blocks_is_written_exactly_as_blocks_are_defined() {
        let d = tempfile::tempdir().unwrap();
        let meta = StoreMeta {
            format_version: FORMAT_VERSION,
            node: "a".into(),
            window_len_ns: 1_000_000_000,
            cone_lib_version: 1,
            taint_ttl_windows: 300,
        };
        let store = NodeStore::open(d.path(), meta).unwrap();
        let window = 1_793_491_200 + 3599;
        // Many blocks, the last one short.
        let n = 66 * MAX_BLOCK_RECORDS + 17;
        let leaves: Vec<Vec<u8>> = (0..n).map(test_leaf).collect();
        let record = WindowRecord {
            node: "a".into(),
            window,
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
            capture_mode: ritma_schemas::records::CaptureMode::Thin,
            cone_lib_version: 1,
            window_root: [7; 32],
            state: None,
        };
        let seal = HourSeal {
            node: "a".into(),
            hour: window / 3600,
            first_window: window - 3599,
            last_window: window,
            log_size: 3600,
            log_root: [8; 32],
            prev: None,
            consistency: Vec::new(),
        };
        for _ in 0..2 {
            // Twice: the second window reuses the encoder and replaces every file.
            store
                .write_window(&record, &record.encode(), &leaves, "sig\n", Some(&seal))
                .unwrap();
        }
        let p = WindowPaths::new(window, 1_000_000_000);
        let path = d.path().join(p.blocks());
        let mut expected = Vec::new();
        let mut file = BlockFile::open(&path, window, leaves.len() as u64).unwrap();
        let ids = IdIndex::of_leaves(&leaves).unwrap();
        expected
            .extend(zstd::bulk::compress(&ids.table(window).encode(), BLOCK_ZSTD_LEVEL).unwrap());
        for (i, chunk) in leaves.chunks(MAX_BLOCK_RECORDS).enumerate() {
            let first_leaf = (i * MAX_BLOCK_RECORDS) as u64;
            let by_definition = Block {
                window,
                index: i as u32,
                first_leaf,
                records: chunk.to_vec(),
            };
            let packed = PackedBlock::pack(window, i as u32, first_leaf, chunk, &ids).unwrap();
            expected.extend(zstd::bulk::compress(&packed.encode(), BLOCK_ZSTD_LEVEL).unwrap());
            assert_eq!(file.next_block().unwrap().as_ref(), Some(&by_definition));
            assert_eq!(
                read_block(&path, window, leaves.len() as u64, i as u32).unwrap(),
                by_definition
            );
        }
        assert_eq!(file.next_block().unwrap(), None);
        assert!(
            fs::read(&path).unwrap() == expected,
            "the block file differs"
        );
        let n = leaves.len() as u64;
        assert_eq!(read_window_leaves(&path, window, n).unwrap(), leaves);
        assert!(read_block(&path, window, n, 67).is_err());
        let names = |dir: &str| -> Vec<String> {
            let mut v: Vec<String> = fs::read_dir(d.path().join(&p.hour_dir).join(dir))
                .unwrap()
                .map(|e| e.unwrap().file_name().into_string().unwrap())
                .collect();
            v.sort();
            v
        };
        // No temporary file is left behind, and nothing but the window's files exist.
        assert_eq!(names("blocks"), ["w3599.cbor.zst"]);
        assert!(names("blocks").iter().all(|n| n.starts_with("w3599.")));
        assert_eq!(names("micro"), ["w3599.cbor", "w3599.sig"]);
        assert_eq!(names("proofs"), ["hour_root.cbor", "hour_root.sig"]);
        assert_eq!(
            fs::read(d.path().join(p.hour_seal())).unwrap(),
            seal.encode()
        );
        assert_eq!(fs::read(d.path().join(p.checkpoint())).unwrap(), b"sig\n");
        assert_eq!(
            fs::read(d.path().join(p.record())).unwrap(),
            record.encode()
        );
    }

    #[test]
    fn a_block_file_is_read_strictly() {
        let d = tempfile::tempdir().unwrap();
        let pool: Vec<Vec<u8>> = (0..MAX_BLOCK_RECORDS + 3).map(test_leaf).collect();
        let ids = IdIndex::of_leaves(&pool).unwrap();
        let table =
            |window| zstd::bulk::compress(&ids.table(window).encode(), BLOCK_ZSTD_LEVEL).unwrap();
        let frame = |window, index, first_leaf, leaves: std::ops::Range<usize>| {
            let packed = PackedBlock::pack(window, index, first_leaf, &pool[leaves], &ids).unwrap();
            zstd::bulk::compress(&packed.encode(), BLOCK_ZSTD_LEVEL).unwrap()
        };
        let t9 = table(9);
        let full = [t9.clone(), frame(9, 0, 0, 0..MAX_BLOCK_RECORDS)].concat();
        let rest = |index, first_leaf| {
            frame(
                9,
                index,
                first_leaf,
                MAX_BLOCK_RECORDS..MAX_BLOCK_RECORDS + 3,
            )
        };
        let read_all = |bytes: &[u8]| {
            let path = d.path().join("w.cbor.zst");
            fs::write(&path, bytes).unwrap();
            let mut file = BlockFile::open(&path, 9, u64::MAX)?;
            let mut n = 0;
            while file.next_block()?.is_some() {
                n += 1;
            }
            Ok::<_, StoreError>(n)
        };
        assert_eq!(
            read_all(&[full.clone(), rest(1, 1000)].concat()).unwrap(),
            2
        );
        let fails = |bytes: Vec<u8>, what: &str| {
            let e = read_all(&bytes).unwrap_err().to_string();
            assert!(e.contains(what), "{e} should say {what}");
        };
        // Out of order, of another window, not following on from the block before.
        fails([full.clone(), rest(2, 1000)].concat(), "block 1 at byte");
        fails([t9.clone(), frame(8, 0, 0, 0..3)].concat(), "window 8");
        fails(
            [table(8), frame(9, 0, 0, 0..3)].concat(),
            "the table says window 8",
        );
        fails([full.clone(), rest(1, 999)].concat(), "first leaf 999");
        // An id the blocks never use; no table; no block.
        fails(
            full.clone(),
            "the id table lists 1003 ids, the blocks use 1000",
        );
        fails(frame(9, 0, 0, 0..3), "id table at byte 0");
        fails(t9.clone(), "the file holds no block");
        // A torn last frame, trailing bytes, a skippable frame.
        fails(
            [full.clone(), rest(1, 1000)].concat()[..full.len() + 5].to_vec(),
            "block 1",
        );
        fails(
            [full.clone(), rest(1, 1000), vec![0]].concat(),
            "not a zstd frame",
        );
        let skippable = [
            &t9[..],
            &[0x50, 0x2a, 0x4d, 0x18, 1, 0, 0, 0, 0][..],
            &full[t9.len()..],
        ]
        .concat();
        fails(
            skippable,
            &format!("block 0 at byte {}: not a zstd frame", t9.len()),
        );
    }

    #[test]
    fn a_damaged_block_file_is_an_error_or_its_exact_blocks_never_a_panic() {
        let d = tempfile::tempdir().unwrap();
        let leaves: Vec<Vec<u8>> = (0..2500).map(test_leaf).collect();
        let mut encoder = BlockEncoder::new().unwrap();
        let good = encoder.block_file(5, &leaves).unwrap().0.to_vec();
        let path = d.path().join("w.cbor.zst");
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        for _ in 0..2000 {
            let mut bytes = good.clone();
            let kind = next() % 4;
            match kind {
                0 => bytes.truncate(next() as usize % good.len()),
                1 => {
                    let at = next() as usize % bytes.len();
                    bytes[at] ^= 1 << (next() % 8);
                }
                2 => bytes.insert(next() as usize % bytes.len(), next() as u8),
                _ => bytes
                    .drain(..(next() as usize % good.len()).max(1))
                    .for_each(drop),
            }
            fs::write(&path, &bytes).unwrap();
            // A cut file is refused or read as its whole blocks; a changed byte may pass
            // here (no zstd checksum) and is the window root's to catch.
            let read = read_window_leaves(&path, 5, leaves.len() as u64);
            if let (0, Ok(read)) = (kind, read) {
                assert!(leaves.starts_with(&read) && read.len() % 1000 == 0);
            }
        }
    }

    /// A leaf with an id of its own: a dictionary entry of a path naming `i`.
    fn test_leaf(i: usize) -> Vec<u8> {
        ritma_schemas::records::DictEntry::new(
            ritma_schemas::records::DictKind::Path,
            format!("/leaf/{i}").as_bytes(),
        )
        .encode()
    }

    #[test]
    fn a_store_refuses_another_node_or_window_length() {
        let d = tempfile::tempdir().unwrap();
        let meta = StoreMeta {
            format_version: FORMAT_VERSION,
            node: "a".into(),
            window_len_ns: 1_000_000_000,
            cone_lib_version: 1,
            taint_ttl_windows: 300,
        };
        NodeStore::open(d.path(), meta.clone())
            .unwrap()
            .write_meta()
            .unwrap();
        NodeStore::open(d.path(), meta.clone()).unwrap();
        let other = StoreMeta {
            node: "b".into(),
            ..meta
        };
        assert!(matches!(
            NodeStore::open(d.path(), other),
            Err(StoreError::WrongStore { .. })
        ));
    }
}
