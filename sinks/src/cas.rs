//! The content-addressed store of RITMA_OUT (FORMAT.md §8.6): executed binaries and
//! written-file content of Full capture, referenced from `EventAtom.payload_ref`.
//!
//! A blob is addressed by the plain BLAKE3 of its bytes (what `b3sum` prints). Its
//! bytes are cut by content-defined chunking (FastCDC, Xia et al., IEEE TPDS 2020, as
//! the `fastcdc` crate's `v2020::cut` implements it: min 1 MiB, average 2 MiB, max
//! 4 MiB; the boundaries only decide sharing, they are not verified), each chunk stored
//! once at `cas/b3/ab/cd/<hex of its BLAKE3>`, and the blob's manifest
//! ([`CasManifest`]: size and chunk list) at `cas/b3/ab/cd/<hex of the blob hash>.blob`.
//! Files appear only complete: each is written to a hidden temporary name in its
//! directory, fsynced and renamed, and every chunk is durable (its directory fsynced)
//! before the manifest that names it is renamed into place.

use crate::store::is_temp_name;
use fastcdc::v2020::{select_masks, Normalization};
use ritma_schemas::cas_manifest::{CasManifest, ChunkRef, MAX_BLOB_LEN, MAX_MANIFEST_LEN};
use ritma_schemas::cbor::DecodeError;
use ritma_schemas::records::Record;
use ritma_schemas::Hash32;
use std::collections::{BTreeSet, VecDeque};
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

/// FastCDC minimum chunk length: every chunk but a blob's last is at least this long.
pub const MIN_CHUNK_LEN: usize = 1 << 20;
/// FastCDC target average chunk length.
pub const AVG_CHUNK_LEN: usize = 2 << 20;
/// FastCDC maximum chunk length (the manifest's bound, `MAX_CHUNK_LEN`).
pub const MAX_CHUNK_LEN: usize = ritma_schemas::cas_manifest::MAX_CHUNK_LEN as usize;
/// A temporary file older than this is a crashed writer's leftover (a live writer keeps
/// one for the seconds it takes to write and fsync 4 MiB).
pub const STALE_TEMP_AGE: Duration = Duration::from_secs(3600);
/// Chunk files whose writeback runs while the next ones are written, before their fsync.
const MAX_PENDING_CHUNKS: usize = 32;
/// Threads that fsync at once: concurrent fsyncs share a journal commit instead of each
/// waiting for its own (one put makes ~3 new directories per chunk).
const SYNC_THREADS: usize = 16;

/// Numbers the temporary files of this process, so concurrent writers never share one.
static TEMP_COUNTER: AtomicU64 = AtomicU64::new(0);

/// A stored blob: its plain BLAKE3 hash (the `payload_ref`) and its length.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct BlobRef {
    pub hash: Hash32,
    pub size: u64,
}

/// Lower-case hex of a hash, as in file names.
pub fn hex(hash: &Hash32) -> String {
    hash.iter().map(|b| format!("{b:02x}")).collect()
}

#[derive(Debug, thiserror::Error)]
pub enum CasError {
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: io::Error },
    #[error("{path}: no space left on the device; the blob was not stored")]
    NoSpace { path: PathBuf, source: io::Error },
    #[error("{input}: reading the content failed: {source}")]
    Read { input: String, source: io::Error },
    #[error("{input}: the blob is larger than the {limit} bytes the store holds")]
    TooLarge { input: String, limit: u64 },
    #[error("{path}: no such blob in the store")]
    NotFound { path: PathBuf },
    #[error("{path}: {source}")]
    Decode { path: PathBuf, source: DecodeError },
    #[error("{path}: the manifest is of blob {found}, not of the blob its name says")]
    ManifestMismatch { path: PathBuf, found: String },
    #[error("{path}: missing chunk of the blob of {manifest}")]
    MissingChunk { path: PathBuf, manifest: PathBuf },
    #[error("{path}: chunk is {found} bytes, the manifest {manifest} says {expected}")]
    ChunkLength {
        path: PathBuf,
        manifest: PathBuf,
        expected: u64,
        found: u64,
    },
    #[error("{path}: chunk content hashes to {found}, not to its name (blob of {manifest})")]
    ChunkCorrupt {
        path: PathBuf,
        manifest: PathBuf,
        found: String,
    },
    #[error("{manifest}: the chunks it names hash to blob {found}, not to its name")]
    BlobCorrupt { manifest: PathBuf, found: String },
    #[error("writing the blob's content out failed: {source}")]
    Output { source: io::Error },
}

/// An I/O error on `path`; a full disk or quota gets its own variant.
fn io_error(path: &Path) -> impl FnOnce(io::Error) -> CasError + '_ {
    move |source| match source.raw_os_error() {
        Some(libc::ENOSPC) | Some(libc::EDQUOT) => CasError::NoSpace {
            path: path.to_owned(),
            source,
        },
        _ => CasError::Io {
            path: path.to_owned(),
            source,
        },
    }
}

/// `cas/b3` of one store tree.
#[derive(Clone, Debug)]
pub struct Cas {
    dir: PathBuf,
}

impl Cas {
    /// The CAS of the store (node tree) at `store_root`, creating `cas/b3` if absent.
    pub fn open(store_root: &Path) -> Result<Cas, CasError> {
        let dir = store_root.join("cas/b3");
        let mut created = BTreeSet::new();
        create_dirs(&dir, &mut created)?;
        sync_dirs(&created)?;
        Ok(Cas { dir })
    }

    /// `cas/b3/ab/cd/<hex>`: where the chunk of this hash lives.
    pub fn chunk_path(&self, hash: &Hash32) -> PathBuf {
        self.shard(hash).join(hex(hash))
    }

    /// `cas/b3/ab/cd/<hex>.blob`: where the manifest of the blob of this hash lives.
    pub fn manifest_path(&self, hash: &Hash32) -> PathBuf {
        self.shard(hash).join(format!("{}.blob", hex(hash)))
    }

    fn shard(&self, hash: &Hash32) -> PathBuf {
        self.dir
            .join(format!("{:02x}", hash[0]))
            .join(format!("{:02x}", hash[1]))
    }

    /// Stores `data` and returns its address.
    pub fn put_bytes(&self, data: &[u8]) -> Result<BlobRef, CasError> {
        if data.len() as u64 > MAX_BLOB_LEN {
            return Err(CasError::TooLarge {
                input: "bytes".into(),
                limit: MAX_BLOB_LEN,
            });
        }
        let chunker = Chunker::new();
        let mut put = Put::new(self, "bytes");
        let mut rest = data;
        while !rest.is_empty() {
            let (chunk, after) = rest.split_at(chunker.cut(rest));
            put.chunk(chunk)?;
            rest = after;
        }
        put.finish()
    }

    /// Stores everything `reader` yields; `input` names it in errors. Cuts at the same
    /// places as [`Cas::put_bytes`]: a cut only looks at the next 4 MiB, and the buffer
    /// holds that much whenever the input does.
    pub fn put_reader(&self, mut reader: impl Read, input: &str) -> Result<BlobRef, CasError> {
        let chunker = Chunker::new();
        let mut put = Put::new(self, input);
        let mut buf = vec![0u8; MAX_CHUNK_LEN];
        let mut filled = 0;
        let mut eof = false;
        loop {
            while !eof && filled < buf.len() {
                match reader.read(&mut buf[filled..]) {
                    Ok(0) => eof = true,
                    Ok(n) => filled += n,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(source) => {
                        return Err(CasError::Read {
                            input: input.to_owned(),
                            source,
                        })
                    }
                }
            }
            if filled == 0 {
                return put.finish();
            }
            let len = chunker.cut(&buf[..filled]);
            put.chunk(&buf[..len])?;
            buf.copy_within(len..filled, 0);
            filled -= len;
        }
    }

    /// Stores the content of the file at `path`.
    pub fn put_file(&self, path: &Path) -> Result<BlobRef, CasError> {
        let input = path.display().to_string();
        let read_error = |source| CasError::Read {
            input: input.clone(),
            source,
        };
        let f = File::open(path).map_err(read_error)?;
        // The stream checks the bound too (the file may grow); this refuses early.
        if f.metadata().map_err(read_error)?.len() > MAX_BLOB_LEN {
            return Err(CasError::TooLarge {
                input,
                limit: MAX_BLOB_LEN,
            });
        }
        self.put_reader(f, &input)
    }

    /// True if the blob's manifest is in the store (its chunks are not checked).
    pub fn contains(&self, hash: &Hash32) -> bool {
        self.manifest_path(hash).is_file()
    }

    /// Reads and strictly decodes the blob's manifest, checking it is the blob's.
    pub fn manifest(&self, hash: &Hash32) -> Result<CasManifest, CasError> {
        let path = self.manifest_path(hash);
        let f = File::open(&path).map_err(|e| match e.kind() {
            io::ErrorKind::NotFound => CasError::NotFound { path: path.clone() },
            _ => io_error(&path)(e),
        })?;
        let mut bytes = Vec::new();
        // One byte past the bound is enough for the decoder to refuse an oversize file.
        f.take(MAX_MANIFEST_LEN as u64 + 1)
            .read_to_end(&mut bytes)
            .map_err(io_error(&path))?;
        let m = CasManifest::decode(&bytes).map_err(|source| CasError::Decode {
            path: path.clone(),
            source,
        })?;
        if m.blob != *hash {
            return Err(CasError::ManifestMismatch {
                path,
                found: hex(&m.blob),
            });
        }
        Ok(m)
    }

    /// Writes the blob's bytes to `out`, checking every chunk before it is written and
    /// the whole blob's hash at the end; returns its length. On an error `out` may
    /// hold a prefix of the blob (verified chunks), which the caller discards.
    pub fn get(&self, hash: &Hash32, out: &mut impl Write) -> Result<u64, CasError> {
        let manifest_path = self.manifest_path(hash);
        let m = self.manifest(hash)?;
        let mut blob = blake3::Hasher::new();
        let mut buf = Vec::with_capacity(MAX_CHUNK_LEN.min(m.size as usize));
        for c in &m.chunks {
            let path = self.chunk_path(&c.hash);
            read_chunk(&path, &manifest_path, c, &mut buf)?;
            blob.update(&buf);
            out.write_all(&buf)
                .map_err(|source| CasError::Output { source })?;
        }
        let found = *blob.finalize().as_bytes();
        if found != *hash {
            return Err(CasError::BlobCorrupt {
                manifest: manifest_path,
                found: hex(&found),
            });
        }
        Ok(m.size)
    }

    /// Checks the blob as [`Cas::get`] does, without writing it anywhere.
    pub fn verify(&self, hash: &Hash32) -> Result<u64, CasError> {
        self.get(hash, &mut io::sink())
    }

    /// The CAS of the store at `store_root` if it has one (never creates it).
    pub fn existing(store_root: &Path) -> Option<Cas> {
        let dir = store_root.join("cas/b3");
        dir.is_dir().then_some(Cas { dir })
    }

    /// Every file under `cas/b3` by what its name says: (manifests, chunks), each as
    /// (hash, path). Temporary files are left out.
    fn files(&self) -> Result<(Vec<NamedFile>, Vec<NamedFile>), CasError> {
        let (mut manifests, mut chunks) = (Vec::new(), Vec::new());
        for shard in self.shards()? {
            for n in read_dir_names(&shard)? {
                let name = n.to_string_lossy();
                let (stem, is_manifest) = match name.strip_suffix(".blob") {
                    Some(stem) => (stem, true),
                    None => (&*name, false),
                };
                let Some(hash) = parse_hex::<32>(stem.as_bytes()) else {
                    continue;
                };
                let entry = (hash, shard.join(&*name));
                match is_manifest {
                    true => manifests.push(entry),
                    false => chunks.push(entry),
                }
            }
        }
        Ok((manifests, chunks))
    }

    /// The shard directories `cas/b3/ab/cd`.
    fn shards(&self) -> Result<Vec<PathBuf>, CasError> {
        let mut out = Vec::new();
        for a in read_dir_names(&self.dir)? {
            let a = self.dir.join(a);
            if !a.is_dir() {
                continue;
            }
            for b in read_dir_names(&a)? {
                let b = a.join(b);
                if b.is_dir() {
                    out.push(b);
                }
            }
        }
        Ok(out)
    }

    /// The files of every blob whose hash is not in `named`: (its manifests, then every
    /// chunk no other manifest names), each as (path, length).
    pub fn unnamed(
        &self,
        named: &std::collections::HashSet<Hash32>,
    ) -> Result<(Vec<SizedFile>, Vec<SizedFile>), CasError> {
        let (manifests, chunks) = self.files()?;
        let len = |p: &PathBuf| (p.clone(), fs::metadata(p).map(|m| m.len()).unwrap_or(0));
        let mut needed = std::collections::HashSet::new();
        let mut gone = Vec::new();
        for (hash, path) in &manifests {
            match named.contains(hash) {
                true => needed.extend(self.manifest(hash)?.chunks.iter().map(|c| c.hash)),
                false => gone.push(len(path)),
            }
        }
        let unneeded = chunks
            .iter()
            .filter(|(hash, _)| !needed.contains(hash))
            .map(|(_, path)| len(path))
            .collect();
        Ok((gone, unneeded))
    }

    /// Deletes every blob whose hash is not in `named`: its manifest first, then every
    /// chunk no remaining manifest names (so an interruption leaves only unnamed chunks,
    /// which a later call removes). Returns (files, bytes) removed.
    pub fn remove_unnamed(
        &self,
        named: &std::collections::HashSet<Hash32>,
    ) -> Result<(u64, u64), CasError> {
        let (manifests, chunks) = self.unnamed(named)?;
        let (mut files, mut bytes) = (0u64, 0u64);
        for group in [manifests, chunks] {
            let mut touched = BTreeSet::new();
            for (path, len) in group {
                fs::remove_file(&path).map_err(io_error(&path))?;
                (files, bytes) = (files + 1, bytes + len);
                touched.insert(path.parent().expect("a shard").to_owned());
            }
            sync_dirs(&touched)?;
        }
        Ok((files, bytes))
    }

    /// Removes, anywhere under `cas/b3`, temporary files older than [`STALE_TEMP_AGE`]
    /// (crashed writers' leftovers; a put already cleans the directories it writes to).
    /// Returns how many were removed.
    pub fn remove_stale_temp_files(&self) -> Result<usize, CasError> {
        Ok(self
            .shards()?
            .iter()
            .map(|s| remove_stale_temps_in(s))
            .sum())
    }
}

/// A CAS file and the hash its name gives.
type NamedFile = (Hash32, PathBuf);
/// A CAS file and its length.
type SizedFile = (PathBuf, u64);

/// N bytes from exactly 2N lower-case hex digits (the inverse of [`hex`]).
pub fn parse_hex<const N: usize>(hex: &[u8]) -> Option<[u8; N]> {
    if hex.len() != 2 * N {
        return None;
    }
    let digit = |c: u8| (c as char).to_digit(16).filter(|_| !c.is_ascii_uppercase());
    let mut out = [0u8; N];
    for (i, pair) in hex.chunks(2).enumerate() {
        out[i] = (digit(pair[0])? * 16 + digit(pair[1])?) as u8;
    }
    Some(out)
}

fn read_dir_names(dir: &Path) -> Result<Vec<std::ffi::OsString>, CasError> {
    fs::read_dir(dir)
        .and_then(|it| it.map(|e| e.map(|e| e.file_name())).collect())
        .map_err(io_error(dir))
}

/// FastCDC 2020 with the store's parameters (FORMAT.md §8.6).
struct Chunker {
    mask_s: u64,
    mask_l: u64,
}

impl Chunker {
    fn new() -> Self {
        let (mask_s, mask_l) = select_masks(AVG_CHUNK_LEN, Normalization::Level1);
        Chunker { mask_s, mask_l }
    }

    /// The length of the chunk `data` starts with: all of it up to the minimum, at most
    /// the maximum, never 0 for non-empty `data`.
    fn cut(&self, data: &[u8]) -> usize {
        let (_, len) = fastcdc::v2020::cut(
            data,
            MIN_CHUNK_LEN,
            AVG_CHUNK_LEN,
            MAX_CHUNK_LEN,
            self.mask_s,
            self.mask_l,
            self.mask_s << 1,
            self.mask_l << 1,
        );
        len
    }
}

/// Reads chunk `c` into `buf` and checks its length and hash.
fn read_chunk(
    path: &Path,
    manifest: &Path,
    c: &ChunkRef,
    buf: &mut Vec<u8>,
) -> Result<(), CasError> {
    let f = File::open(path).map_err(|e| match e.kind() {
        io::ErrorKind::NotFound => CasError::MissingChunk {
            path: path.to_owned(),
            manifest: manifest.to_owned(),
        },
        _ => io_error(path)(e),
    })?;
    buf.clear();
    // One byte past the expected length shows a longer file without reading all of it.
    f.take(c.len as u64 + 1)
        .read_to_end(buf)
        .map_err(io_error(path))?;
    if buf.len() as u64 != c.len as u64 {
        let found = match buf.len() as u64 > c.len as u64 {
            true => fs::metadata(path).map_or(buf.len() as u64, |m| m.len()),
            false => buf.len() as u64,
        };
        return Err(CasError::ChunkLength {
            path: path.to_owned(),
            manifest: manifest.to_owned(),
            expected: c.len as u64,
            found,
        });
    }
    let found = *blake3::hash(buf).as_bytes();
    if found != c.hash {
        return Err(CasError::ChunkCorrupt {
            path: path.to_owned(),
            manifest: manifest.to_owned(),
            found: hex(&found),
        });
    }
    Ok(())
}

/// Creates `dir` and its missing ancestors, noting in `created` each parent whose
/// new entry has to be fsynced.
fn create_dirs(dir: &Path, created: &mut BTreeSet<PathBuf>) -> Result<(), CasError> {
    if dir.is_dir() {
        return Ok(());
    }
    if let Some(parent) = dir.parent() {
        create_dirs(parent, created)?;
        created.insert(parent.to_owned());
    }
    match fs::create_dir(dir) {
        Err(e) if e.kind() != io::ErrorKind::AlreadyExists => Err(io_error(dir)(e)),
        _ => Ok(()),
    }
}

fn sync_dirs(dirs: &BTreeSet<PathBuf>) -> Result<(), CasError> {
    let dirs: Vec<&PathBuf> = dirs.iter().collect();
    in_parallel(&dirs, |d| {
        File::open(d)
            .and_then(|f| f.sync_all())
            .map_err(io_error(d))
    })
}

/// Runs `f` on every item, from up to [`SYNC_THREADS`] threads; the first error wins.
fn in_parallel<T: Sync>(
    items: &[T],
    f: impl Fn(&T) -> Result<(), CasError> + Sync,
) -> Result<(), CasError> {
    if items.len() <= 1 {
        return items.iter().try_for_each(&f);
    }
    let threads = items.len().min(SYNC_THREADS);
    std::thread::scope(|s| {
        let workers: Vec<_> = (0..threads)
            .map(|t| {
                let f = &f;
                s.spawn(move || items.iter().skip(t).step_by(threads).try_for_each(f))
            })
            .collect();
        // The scope joins any worker left when an earlier one failed.
        workers
            .into_iter()
            .try_for_each(|w| w.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
    })
}

/// Removes the stale temporary files of one directory. Best effort: a leftover that
/// cannot be removed is invisible to readers and harms nothing.
fn remove_stale_temps_in(dir: &Path) -> usize {
    let Ok(entries) = fs::read_dir(dir) else {
        return 0;
    };
    let now = SystemTime::now();
    let mut removed = 0;
    for e in entries.flatten() {
        let name = e.file_name();
        if !name.to_str().is_some_and(is_temp_name) {
            continue;
        }
        let stale = e
            .metadata()
            .and_then(|m| m.modified())
            .is_ok_and(|t| now.duration_since(t).unwrap_or_default() > STALE_TEMP_AGE);
        if stale && fs::remove_file(e.path()).is_ok() {
            removed += 1;
        }
    }
    removed
}

/// Asks the kernel to start writing `f`'s dirty pages now; the fsync that follows
/// still waits for them (and is the durability guarantee), so a failure is ignored.
fn start_writeback(f: &File) {
    use std::os::fd::AsRawFd;
    // SAFETY: a plain syscall on an open descriptor; it touches no memory of ours.
    let _ = unsafe { libc::sync_file_range(f.as_raw_fd(), 0, 0, libc::SYNC_FILE_RANGE_WRITE) };
}

/// Files written to temporary names and not yet renamed; dropping it removes them, so
/// a failed put leaves no temporary file behind.
#[derive(Default)]
struct PendingFiles {
    /// (open temporary file, its path, the final path), in write order.
    files: VecDeque<(File, PathBuf, PathBuf)>,
}

impl PendingFiles {
    /// Writes `bytes` to a new temporary file beside `path`.
    fn write(&mut self, path: &Path, bytes: &[u8]) -> Result<(), CasError> {
        let dir = path.parent().unwrap_or(Path::new("."));
        remove_stale_temps_in(dir);
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("object");
        let n = TEMP_COUNTER.fetch_add(1, Ordering::Relaxed);
        let tmp = dir.join(format!(".{name}.{}.{n}.tmp", std::process::id()));
        let mut f = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(&tmp)
            .map_err(io_error(path))?;
        if let Err(e) = f.write_all(bytes) {
            let _ = fs::remove_file(&tmp);
            return Err(io_error(path)(e));
        }
        start_writeback(&f);
        self.files.push_back((f, tmp, path.to_owned()));
        Ok(())
    }

    /// fsyncs every pending file, then renames them, oldest first.
    fn commit(&mut self) -> Result<(), CasError> {
        let files: Vec<_> = self.files.iter().collect();
        in_parallel(&files, |(f, _, path)| f.sync_all().map_err(io_error(path)))?;
        while let Some((_, tmp, path)) = self.files.front() {
            fs::rename(tmp, path).map_err(io_error(path))?;
            self.files.pop_front();
        }
        Ok(())
    }
}

impl Drop for PendingFiles {
    fn drop(&mut self) {
        for (_, tmp, _) in self.files.drain(..) {
            let _ = fs::remove_file(tmp);
        }
    }
}

/// One blob being stored: chunks are written as they come, the manifest at the end.
struct Put<'a> {
    cas: &'a Cas,
    input: &'a str,
    blob: blake3::Hasher,
    size: u64,
    chunks: Vec<ChunkRef>,
    pending: PendingFiles,
    /// Directories with new entries, fsynced before the manifest is written.
    dirty_dirs: BTreeSet<PathBuf>,
}

impl<'a> Put<'a> {
    fn new(cas: &'a Cas, input: &'a str) -> Self {
        Put {
            cas,
            input,
            blob: blake3::Hasher::new(),
            size: 0,
            chunks: Vec::new(),
            pending: PendingFiles::default(),
            dirty_dirs: BTreeSet::new(),
        }
    }

    fn chunk(&mut self, data: &[u8]) -> Result<(), CasError> {
        self.size += data.len() as u64;
        if self.size > MAX_BLOB_LEN {
            return Err(CasError::TooLarge {
                input: self.input.to_owned(),
                limit: MAX_BLOB_LEN,
            });
        }
        self.blob.update(data);
        let hash = *blake3::hash(data).as_bytes();
        self.chunks.push(ChunkRef {
            hash,
            len: data.len() as u32,
        });
        let path = self.cas.chunk_path(&hash);
        // A chunk already stored is kept, its directory fsynced with ours in case its
        // writer has not yet (or crashed before it did); one of the wrong length
        // (damaged) is replaced.
        match fs::metadata(&path) {
            Ok(m) if m.len() == data.len() as u64 => {
                if let Some(dir) = path.parent() {
                    self.dirty_dirs.insert(dir.to_owned());
                }
                return Ok(());
            }
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(io_error(&path)(e)),
        }
        self.write(&path, data)?;
        if self.pending.files.len() >= MAX_PENDING_CHUNKS {
            self.pending.commit()?;
        }
        Ok(())
    }

    fn write(&mut self, path: &Path, bytes: &[u8]) -> Result<(), CasError> {
        let dir = path.parent().unwrap_or(Path::new("."));
        create_dirs(dir, &mut self.dirty_dirs)?;
        self.pending.write(path, bytes)?;
        self.dirty_dirs.insert(dir.to_owned());
        Ok(())
    }

    /// Makes the chunks durable, then writes the manifest.
    fn finish(mut self) -> Result<BlobRef, CasError> {
        self.pending.commit()?;
        sync_dirs(&self.dirty_dirs)?;
        self.dirty_dirs.clear();
        let hash = *self.blob.finalize().as_bytes();
        let blob = BlobRef {
            hash,
            size: self.size,
        };
        let manifest = CasManifest {
            blob: hash,
            size: self.size,
            chunks: std::mem::take(&mut self.chunks),
        };
        // The same manifest already stored is kept; any other (damaged, or of another
        // chunking) is replaced, as every chunk this one names is now durable.
        if self.cas.manifest(&hash).is_ok_and(|m| m == manifest) {
            return Ok(blob);
        }
        let path = self.cas.manifest_path(&hash);
        self.write(&path, &manifest.encode())?;
        self.pending.commit()?;
        sync_dirs(&self.dirty_dirs)?;
        Ok(blob)
    }
}
