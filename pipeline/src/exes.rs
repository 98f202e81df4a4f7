//! Executables on the capture side: the content hash of every binary an exec or a
//! present event names, and, for Full capture, the bytes of unknown ones. Both must be
//! read while the file still exists, so the recorder reads them and writes them to the
//! WAL (exes and blob frames, FORMAT.md §7.2); the dataflow only replays what it wrote.

use anyhow::{bail, Context, Result};
use ritma_sinks::cas::{hex, parse_hex};
use ritma_sources::raw::{RawBody, RawEvent};
use ritma_sources::trace::{BaselineStatus, ExeEntry, MAX_BLOB_LEN};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::fs::File;
use std::io::{Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// Full capture keeps binaries up to this size by default.
pub const DEFAULT_FULL_MAX_BYTES: u64 = 64 << 20;
/// Most bytes of binaries one run keeps; past it only hashes are recorded.
pub const FULL_BUDGET_BYTES: u64 = 1 << 30;
/// Where anyone may write an executable: a binary run from here is unknown even
/// without a baseline (the same places the deleted_binary_exec cone watches).
pub const WRITABLE_PREFIXES: [&str; 6] = [
    "/tmp/",
    "/dev/shm/",
    "/var/tmp/",
    "/run/",
    "/home/",
    "/root/",
];
/// Directories `ritma baseline` hashes when given none.
pub const DEFAULT_BASELINE_ROOTS: [&str; 6] = ["/usr", "/bin", "/sbin", "/lib", "/lib64", "/opt"];

/// The hashes of known binaries: a `b3sum`-style list.
pub struct Baseline {
    hashes: HashSet<[u8; 32]>,
    /// BLAKE3 of the file, for the run's config digest.
    pub digest: [u8; 32],
}

impl Baseline {
    /// Reads a list of lines `<64 hex digits>  <path>` (what `b3sum` prints; the path is
    /// not used) or `<64 hex digits>` alone; blank lines and lines starting with `#` are
    /// skipped. Anything else is an error naming the file and line.
    pub fn load(path: &Path) -> Result<Baseline> {
        let bytes = std::fs::read(path)
            .with_context(|| format!("reading the baseline {}", path.display()))?;
        let mut hashes = HashSet::new();
        for (i, line) in bytes.split(|&b| b == b'\n').enumerate() {
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            if line.is_empty() || line[0] == b'#' {
                continue;
            }
            let hex = &line[..line.len().min(64)];
            let rest = &line[hex.len()..];
            let hash = parse_hex::<32>(hex).filter(|_| rest.is_empty() || rest[0] == b' ');
            match hash {
                Some(h) => {
                    hashes.insert(h);
                }
                None => bail!(
                    "{}:{}: not a baseline line (64 hex digits of a BLAKE3 hash, then optionally two spaces and a path)",
                    path.display(),
                    i + 1
                ),
            }
        }
        Ok(Baseline {
            hashes,
            digest: *blake3::hash(&bytes).as_bytes(),
        })
    }

    pub fn len(&self) -> usize {
        self.hashes.len()
    }

    pub fn status(&self, hash: &[u8; 32]) -> BaselineStatus {
        if self.hashes.contains(hash) {
            BaselineStatus::Listed
        } else {
            BaselineStatus::Unlisted
        }
    }
}

/// Writes a baseline of every executable regular file under `roots` (symlinks are not
/// followed; a directory reached twice is read once) to `out`, sorted by path; returns
/// how many files it lists. Files that cannot be read are skipped and counted in the
/// second number.
pub fn write_baseline(out: &Path, roots: &[PathBuf]) -> Result<(usize, usize)> {
    if out.exists() {
        bail!(
            "{}: already exists; a baseline is never overwritten",
            out.display()
        );
    }
    let mut lines: BTreeMap<PathBuf, [u8; 32]> = BTreeMap::new();
    let mut seen_dirs = HashSet::new();
    let mut unreadable = 0;
    let mut stack: Vec<PathBuf> = Vec::new();
    for root in roots {
        match std::fs::symlink_metadata(root) {
            // A root that is a symlink (/bin → usr/bin) is read where it points.
            Ok(_) => stack.push(std::fs::canonicalize(root).unwrap_or_else(|_| root.clone())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e).with_context(|| format!("reading {}", root.display())),
        }
    }
    while let Some(dir) = stack.pop() {
        let Ok(meta) = std::fs::symlink_metadata(&dir) else {
            unreadable += 1;
            continue;
        };
        if meta.is_file() {
            if meta.permissions().mode() & 0o111 != 0 {
                match hash_file(&dir) {
                    Ok(h) => {
                        lines.insert(dir, h);
                    }
                    Err(_) => unreadable += 1,
                }
            }
            continue;
        }
        if !meta.is_dir() || !seen_dirs.insert((meta.dev(), meta.ino())) {
            continue;
        }
        let Ok(entries) = std::fs::read_dir(&dir) else {
            unreadable += 1;
            continue;
        };
        for entry in entries.flatten() {
            stack.push(entry.path());
        }
    }
    let tmp = out.with_extension("tmp");
    let mut f = std::io::BufWriter::new(
        File::create(&tmp).with_context(|| format!("creating {}", tmp.display()))?,
    );
    for (path, hash) in &lines {
        f.write_all(hex(hash).as_bytes())?;
        f.write_all(b"  ")?;
        f.write_all(path.as_os_str().as_encoded_bytes())?;
        f.write_all(b"\n")?;
    }
    let f = f.into_inner().map_err(|e| e.into_error())?;
    f.sync_all()?;
    std::fs::rename(&tmp, out).with_context(|| format!("writing {}", out.display()))?;
    Ok((lines.len(), unreadable))
}

fn hash_file(path: &Path) -> std::io::Result<[u8; 32]> {
    let mut h = blake3::Hasher::new();
    h.update_reader(File::open(path)?)?;
    Ok(*h.finalize().as_bytes())
}

/// What Full capture keeps and what the baseline says.
pub struct ExePolicy {
    pub baseline: Option<Baseline>,
    /// Largest binary kept; 0 keeps none (no Full capture).
    pub full_max_bytes: u64,
    /// Most bytes kept per run.
    pub full_budget_bytes: u64,
}

impl Default for ExePolicy {
    fn default() -> Self {
        ExePolicy {
            baseline: None,
            full_max_bytes: DEFAULT_FULL_MAX_BYTES,
            full_budget_bytes: FULL_BUDGET_BYTES,
        }
    }
}

impl ExePolicy {
    /// The policy's part of the run's config digest.
    pub fn describe(&self) -> String {
        format!(
            "baseline={} full_max_bytes={} full_budget_bytes={}",
            self.baseline
                .as_ref()
                .map_or("none".into(), |b| hex(&b.digest)),
            self.full_max_bytes,
            self.full_budget_bytes
        )
    }
}

/// What the catalog did, for the run's summary.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ExeStats {
    /// Distinct file versions hashed.
    pub hashed: u64,
    /// Exec and present events whose executable could not be opened any more (it was
    /// gone, or replaced, before the recorder read the event): no hash, no content.
    pub unreadable: u64,
    pub blobs_kept: u64,
    pub blob_bytes: u64,
    /// Unknown binaries not kept: over the size limit or the run's budget.
    pub blobs_skipped: u64,
}

/// A file's identity beyond dev and inode: a rewrite in place changes ctime.
#[derive(Clone, Copy, PartialEq, Eq)]
struct Stamp {
    size: u64,
    mtime: (i64, i64),
    ctime: (i64, i64),
}

/// The executables a run has hashed, and what the next frames must say.
pub struct ExeCatalog {
    policy: ExePolicy,
    /// (dev, inode) → the version last hashed, and whether an exec of it was (so
    /// Full capture has decided on its bytes).
    files: HashMap<(u64, u64), (Stamp, bool)>,
    kept: HashSet<[u8; 32]>,
    pending_entries: BTreeMap<(u64, u64), ExeEntry>,
    pending_blobs: Vec<Vec<u8>>,
    /// Where `/proc` is (a test points it elsewhere).
    proc_root: PathBuf,
    pub stats: ExeStats,
}

impl ExeCatalog {
    pub fn new(policy: ExePolicy) -> Self {
        ExeCatalog {
            policy,
            files: HashMap::new(),
            kept: HashSet::new(),
            pending_entries: BTreeMap::new(),
            pending_blobs: Vec::new(),
            proc_root: PathBuf::from("/proc"),
            stats: ExeStats::default(),
        }
    }

    /// Looks at one event as it is read: for an exec or present event, makes sure the
    /// trace will name its executable's hash before the event (and keep its bytes if
    /// Full capture wants them).
    pub fn observe(&mut self, e: &RawEvent) {
        let (path, dev, ino) = match &e.body {
            RawBody::Exec {
                filename,
                exe_dev,
                exe_ino,
                ..
            } => (filename, *exe_dev, *exe_ino),
            RawBody::Present {
                exe,
                exe_dev,
                exe_ino,
                ..
            } => (exe, *exe_dev, *exe_ino),
            _ => return,
        };
        if (dev, ino) == (0, 0) {
            return;
        }
        // The process's own link to its executable first (it survives unlink and
        // names memfds), then the path, if it still leads to the same file.
        let via_proc = self.proc_root.join(e.task.pid.to_string()).join("exe");
        let by_path =
            (path.first() == Some(&b'/')).then(|| Path::new(std::ffi::OsStr::from_bytes(path)));
        let opened = [Some(via_proc.as_path()), by_path]
            .into_iter()
            .flatten()
            .find_map(|p| {
                let f = File::open(p).ok()?;
                let m = f.metadata().ok()?;
                ((m.dev(), m.ino()) == (dev, ino) && m.is_file()).then_some((f, m))
            });
        let Some((file, meta)) = opened else {
            self.stats.unreadable += 1;
            return;
        };
        let stamp = Stamp {
            size: meta.size(),
            mtime: (meta.mtime(), meta.mtime_nsec()),
            ctime: (meta.ctime(), meta.ctime_nsec()),
        };
        // Only an exec's binary is kept: what was running at the start is hashed alone
        // (reading every running binary would make the start slow and the WAL large).
        let exec = matches!(e.body, RawBody::Exec { .. });
        if let Some((known, execd)) = self.files.get(&(dev, ino)) {
            if *known == stamp && (*execd || !exec) {
                return;
            }
        }
        let writable_place = meta.nlink() == 0
            || WRITABLE_PREFIXES
                .iter()
                .any(|p| path.starts_with(p.as_bytes()));
        let Some((hash, bytes)) = self.read(file, &meta, exec, writable_place) else {
            self.stats.unreadable += 1;
            return;
        };
        self.stats.hashed += 1;
        self.files.insert((dev, ino), (stamp, exec));
        let baseline = self
            .policy
            .baseline
            .as_ref()
            .map_or(BaselineStatus::NoBaseline, |b| b.status(&hash));
        if let Some(bytes) = bytes {
            if baseline != BaselineStatus::Listed && self.kept.insert(hash) {
                self.stats.blobs_kept += 1;
                self.stats.blob_bytes += bytes.len() as u64;
                self.pending_blobs.push(bytes);
            }
        }
        self.pending_entries.insert(
            (dev, ino),
            ExeEntry {
                dev,
                ino,
                hash,
                baseline,
            },
        );
    }

    /// Hashes the file; also returns its bytes when Full capture may keep them: an
    /// exec'd unknown binary (not in the baseline, or with none, run from a writable
    /// place or from no path at all) within the size limit and the run's budget.
    fn read(
        &mut self,
        mut file: File,
        meta: &std::fs::Metadata,
        exec: bool,
        writable_place: bool,
    ) -> Option<([u8; 32], Option<Vec<u8>>)> {
        let p = &self.policy;
        let maybe_unknown = exec && (p.baseline.is_some() || writable_place);
        let fits = meta.size() <= p.full_max_bytes.min(MAX_BLOB_LEN)
            && self.stats.blob_bytes + meta.size() <= p.full_budget_bytes;
        if maybe_unknown && p.full_max_bytes > 0 {
            if fits {
                let mut bytes = Vec::with_capacity(meta.size() as usize);
                file.read_to_end(&mut bytes).ok()?;
                let hash = *blake3::hash(&bytes).as_bytes();
                return Some((hash, Some(bytes)));
            }
            self.stats.blobs_skipped += 1;
        }
        let mut h = blake3::Hasher::new();
        h.update_reader(&mut file).ok()?;
        Some((*h.finalize().as_bytes(), None))
    }

    /// The blobs and the exes entries to write before the events observed so far.
    pub fn take_pending(&mut self) -> (Vec<Vec<u8>>, Vec<ExeEntry>) {
        (
            std::mem::take(&mut self.pending_blobs),
            std::mem::take(&mut self.pending_entries)
                .into_values()
                .collect(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ritma_sources::raw::Task;

    fn lines(path: &Path) -> Vec<String> {
        std::fs::read_to_string(path)
            .unwrap()
            .lines()
            .map(str::to_owned)
            .collect()
    }

    fn exec(pid: u32, path: &Path) -> RawEvent {
        let m = std::fs::metadata(path).unwrap();
        RawEvent {
            seq: 0,
            mono_ns: 0,
            task: Task {
                pid,
                ..Task::default()
            },
            body: RawBody::Exec {
                filename: path.as_os_str().as_encoded_bytes().to_vec(),
                argv: vec![],
                argv_truncated: false,
                exe_dev: m.dev(),
                exe_ino: m.ino(),
                given: None,
                stdio_net: 0,
            },
        }
    }

    /// A catalog whose /proc is an empty directory: files are found by path.
    fn catalog(dir: &Path, policy: ExePolicy) -> ExeCatalog {
        let mut c = ExeCatalog::new(policy);
        c.proc_root = dir.join("noproc");
        c
    }

    #[test]
    fn an_executable_is_hashed_once_per_version_and_named_before_its_events() {
        let dir = tempfile::tempdir().unwrap();
        let bin = dir.path().join("tool");
        std::fs::write(&bin, b"version one").unwrap();
        let mut c = catalog(dir.path(), ExePolicy::default());
        c.observe(&exec(1, &bin));
        c.observe(&exec(2, &bin));
        let (blobs, entries) = c.take_pending();
        // Not in a writable place (the test's temp dir is below /tmp only on some
        // machines), no baseline: a hash, and bytes only if the place is writable.
        assert_eq!(entries.len(), 1);
        assert_eq!(entries[0].hash, *blake3::hash(b"version one").as_bytes());
        assert_eq!(entries[0].baseline, BaselineStatus::NoBaseline);
        assert_eq!(blobs.len(), usize::from(bin.starts_with("/tmp")));
        assert_eq!(c.stats.hashed, 1);
        // Rewritten in place (same inode): hashed again, named again.
        std::thread::sleep(std::time::Duration::from_millis(20));
        std::fs::write(&bin, b"version two!").unwrap();
        c.observe(&exec(3, &bin));
        let (_, entries) = c.take_pending();
        assert_eq!(entries.len(), 1);
        assert_eq!(entries[0].hash, *blake3::hash(b"version two!").as_bytes());
        assert_eq!(c.stats.hashed, 2);
    }

    #[test]
    fn the_baseline_decides_what_is_unknown_and_only_unknown_bytes_are_kept() {
        let dir = tempfile::tempdir().unwrap();
        let (known, unknown) = (dir.path().join("known"), dir.path().join("unknown"));
        std::fs::write(&known, b"a known tool").unwrap();
        std::fs::write(&unknown, b"a dropped implant").unwrap();
        let list = dir.path().join("baseline");
        std::fs::write(
            &list,
            format!(
                "# made by hand\n{}  /usr/bin/known\n\n",
                hex(blake3::hash(b"a known tool").as_bytes())
            ),
        )
        .unwrap();
        let baseline = Baseline::load(&list).unwrap();
        assert_eq!(baseline.len(), 1);
        let mut c = catalog(
            dir.path(),
            ExePolicy {
                baseline: Some(baseline),
                ..ExePolicy::default()
            },
        );
        c.observe(&exec(1, &known));
        c.observe(&exec(2, &unknown));
        c.observe(&exec(3, &unknown));
        let (blobs, entries) = c.take_pending();
        let status_of = |p: &Path| {
            let m = std::fs::metadata(p).unwrap();
            entries
                .iter()
                .find(|e| (e.dev, e.ino) == (m.dev(), m.ino()))
                .map(|e| e.baseline)
        };
        assert_eq!(status_of(&known), Some(BaselineStatus::Listed));
        assert_eq!(status_of(&unknown), Some(BaselineStatus::Unlisted));
        assert_eq!(entries.len(), 2);
        assert_eq!(blobs, vec![b"a dropped implant".to_vec()]);
        assert_eq!((c.stats.blobs_kept, c.stats.blob_bytes), (1, 17));
    }

    #[test]
    fn a_binary_running_at_the_start_is_hashed_and_kept_only_once_execd() {
        let dir = tempfile::tempdir().unwrap();
        let bin = dir.path().join("daemon");
        std::fs::write(&bin, b"an unknown daemon").unwrap();
        let list = dir.path().join("baseline");
        std::fs::write(&list, "").unwrap();
        let mut c = catalog(
            dir.path(),
            ExePolicy {
                baseline: Some(Baseline::load(&list).unwrap()),
                ..ExePolicy::default()
            },
        );
        let mut present = exec(1, &bin);
        let RawBody::Exec {
            filename,
            exe_dev,
            exe_ino,
            ..
        } = present.body
        else {
            unreachable!()
        };
        present.body = RawBody::Present {
            exe: filename,
            argv: vec![],
            argv_truncated: false,
            exe_dev,
            exe_ino,
        };
        c.observe(&present);
        let (blobs, entries) = c.take_pending();
        assert_eq!((blobs.len(), entries.len()), (0, 1));
        assert_eq!(entries[0].baseline, BaselineStatus::Unlisted);
        c.observe(&present);
        assert_eq!(c.take_pending(), (vec![], vec![]));
        c.observe(&exec(2, &bin));
        let (blobs, _) = c.take_pending();
        assert_eq!(blobs, vec![b"an unknown daemon".to_vec()]);
        c.observe(&exec(3, &bin));
        assert_eq!(c.take_pending(), (vec![], vec![]));
    }

    #[test]
    fn full_capture_respects_its_size_limit_and_can_be_off() {
        let dir = tempfile::tempdir().unwrap();
        let big = dir.path().join("big");
        std::fs::write(&big, vec![7u8; 4096]).unwrap();
        let list = dir.path().join("baseline");
        std::fs::write(&list, "").unwrap();
        for (max, kept, skipped) in [(4096, 1, 0), (4095, 0, 1), (0, 0, 0)] {
            let mut c = catalog(
                dir.path(),
                ExePolicy {
                    baseline: Some(Baseline::load(&list).unwrap()),
                    full_max_bytes: max,
                    ..ExePolicy::default()
                },
            );
            c.observe(&exec(1, &big));
            let (blobs, entries) = c.take_pending();
            assert_eq!(entries.len(), 1, "a hash in every case");
            assert_eq!(
                (blobs.len() as u64, c.stats.blobs_skipped),
                (kept, skipped),
                "limit {max}"
            );
        }
    }

    #[test]
    fn a_replaced_or_vanished_executable_is_counted_not_misnamed() {
        let dir = tempfile::tempdir().unwrap();
        let bin = dir.path().join("tool");
        std::fs::write(&bin, b"first").unwrap();
        let e = exec(1, &bin);
        // Replaced by another file under the same name: another inode, not this one.
        std::fs::remove_file(&bin).unwrap();
        std::fs::write(dir.path().join("other"), b"x").unwrap();
        std::fs::write(&bin, b"second").unwrap();
        let mut c = catalog(dir.path(), ExePolicy::default());
        c.observe(&e);
        let (_, entries) = c.take_pending();
        if entries.is_empty() {
            assert_eq!(c.stats.unreadable, 1);
        } else {
            // The file system reused the inode: the hash is of what is there now.
            assert_eq!(entries[0].hash, *blake3::hash(b"second").as_bytes());
        }
    }

    #[test]
    fn baselines_are_strict_and_name_the_line() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("b");
        for (text, line) in [
            ("abc\n", 1),
            (
                &format!("{}\n{}X  /x\n", "0".repeat(64), "1".repeat(64)) as &str,
                2,
            ),
            (&format!("{}\n", "A".repeat(64)), 1),
            (&format!("{}\n", "0".repeat(65)), 1),
        ] {
            std::fs::write(&p, text).unwrap();
            let e = Baseline::load(&p).err().expect(text).to_string();
            assert!(e.contains(&format!("{}:{line}:", p.display())), "{e}");
        }
    }

    #[test]
    fn a_written_baseline_lists_executables_only_and_loads_back() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("root");
        std::fs::create_dir_all(root.join("bin/sub")).unwrap();
        for (name, mode) in [("bin/a", 0o755), ("bin/sub/b", 0o700), ("bin/data", 0o644)] {
            let p = root.join(name);
            std::fs::write(&p, name.as_bytes()).unwrap();
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).unwrap();
        }
        std::os::unix::fs::symlink(root.join("bin"), root.join("loop")).unwrap();
        let out = dir.path().join("baseline.b3");
        let (n, _) = write_baseline(&out, &[root.clone(), root.join("missing")]).unwrap();
        assert_eq!(n, 2);
        let l = lines(&out);
        assert_eq!(
            l,
            vec![
                format!(
                    "{}  {}",
                    hex(blake3::hash(b"bin/a").as_bytes()),
                    root.join("bin/a").display()
                ),
                format!(
                    "{}  {}",
                    hex(blake3::hash(b"bin/sub/b").as_bytes()),
                    root.join("bin/sub/b").display()
                ),
            ]
        );
        let b = Baseline::load(&out).unwrap();
        assert_eq!(
            b.status(blake3::hash(b"bin/a").as_bytes()),
            BaselineStatus::Listed
        );
        assert_eq!(
            b.status(blake3::hash(b"bin/data").as_bytes()),
            BaselineStatus::Unlisted
        );
        assert!(write_baseline(&out, &[root]).is_err(), "never overwritten");
    }
}
