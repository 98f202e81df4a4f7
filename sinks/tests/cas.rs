//! The content-addressed store (FORMAT.md §8.6): round trips, deduplication by
//! content-defined chunking, detection of every kind of damage, crash leftovers,
//! concurrent writers and a full disk.

use ritma_schemas::cas_manifest::{CasManifest, MAX_BLOB_LEN};
use ritma_schemas::records::Record;
use ritma_sinks::cas::{hex, BlobRef, Cas, CasError, MAX_CHUNK_LEN, MIN_CHUNK_LEN, STALE_TEMP_AGE};
use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

const MIB: usize = 1 << 20;

/// Deterministic pseudo-random bytes (xorshift64*), different per seed.
fn random_bytes(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        out.extend_from_slice(&x.wrapping_mul(0x2545_f491_4f6c_dd1d).to_le_bytes());
    }
    out.truncate(len);
    out
}

/// Every file under `dir`, relative, with its length.
fn files(dir: &Path) -> BTreeMap<PathBuf, u64> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<PathBuf, u64>) {
        let Ok(entries) = fs::read_dir(dir) else {
            return;
        };
        for e in entries.map(Result::unwrap) {
            let p = e.path();
            if p.is_dir() {
                walk(root, &p, out);
            } else {
                let len = e.metadata().unwrap().len();
                out.insert(p.strip_prefix(root).unwrap().to_owned(), len);
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(dir, dir, &mut out);
    out
}

fn temp_files(dir: &Path) -> Vec<PathBuf> {
    files(dir)
        .into_keys()
        .filter(|p| p.file_name().unwrap().to_str().unwrap().ends_with(".tmp"))
        .collect()
}

fn get(cas: &Cas, hash: &[u8; 32]) -> Vec<u8> {
    let mut out = Vec::new();
    let n = cas.get(hash, &mut out).unwrap();
    assert_eq!(n, out.len() as u64);
    out
}

/// Stores `data` by bytes and by file, checks both agree, and reads it back.
fn round_trip(cas: &Cas, scratch: &Path, data: &[u8]) -> CasManifest {
    let blob = cas.put_bytes(data).unwrap();
    assert_eq!(
        blob,
        BlobRef {
            hash: *blake3::hash(data).as_bytes(),
            size: data.len() as u64
        }
    );
    let m = cas.manifest(&blob.hash).unwrap();
    let file = scratch.join("input");
    fs::write(&file, data).unwrap();
    assert_eq!(cas.put_file(&file).unwrap(), blob);
    // Streaming and in-memory chunking cut at the same places.
    assert_eq!(cas.manifest(&blob.hash).unwrap(), m);
    assert_eq!(get(cas, &blob.hash), data);
    assert_eq!(cas.verify(&blob.hash).unwrap(), data.len() as u64);
    assert!(cas.contains(&blob.hash));
    if let Some((last, rest)) = m.chunks.split_last() {
        for c in rest {
            assert!(
                (MIN_CHUNK_LEN..=MAX_CHUNK_LEN).contains(&(c.len as usize)),
                "{}",
                c.len
            );
        }
        assert!((1..=MAX_CHUNK_LEN).contains(&(last.len as usize)));
    }
    for c in &m.chunks {
        let bytes = fs::read(cas.chunk_path(&c.hash)).unwrap();
        assert_eq!(*blake3::hash(&bytes).as_bytes(), c.hash);
    }
    m
}

fn store() -> (tempfile::TempDir, Cas) {
    let dir = tempfile::tempdir().unwrap();
    let cas = Cas::open(dir.path()).unwrap();
    (dir, cas)
}

#[test]
fn empty_small_boundary_and_multi_chunk_blobs_round_trip() {
    let (dir, cas) = store();
    let empty = round_trip(&cas, dir.path(), b"");
    assert!(empty.chunks.is_empty());
    assert_eq!(
        hex(&empty.blob),
        "af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262"
    );

    let small = round_trip(&cas, dir.path(), b"abc");
    assert_eq!(small.chunks.len(), 1);
    // A one-chunk blob's chunk has the blob's hash; the `.blob` suffix keeps them apart.
    assert_eq!(small.chunks[0].hash, small.blob);

    let big = random_bytes(20 * MIB, 1);
    let m = round_trip(&cas, dir.path(), &big);
    assert!(
        (5..=20).contains(&m.chunks.len()),
        "{} chunks",
        m.chunks.len()
    );

    // Exactly the minimum chunk: one chunk. Exactly the first chunk of `big`: one chunk,
    // the very chunk `big` starts with.
    assert_eq!(
        round_trip(&cas, dir.path(), &big[..MIN_CHUNK_LEN])
            .chunks
            .len(),
        1
    );
    let first = m.chunks[0];
    let prefix = round_trip(&cas, dir.path(), &big[..first.len as usize]);
    assert_eq!(prefix.chunks, vec![first]);
    // One byte past the boundary: the boundary stays, a one-byte chunk follows only if
    // the rest is shorter than the minimum, which it is.
    let past = round_trip(&cas, dir.path(), &big[..first.len as usize + 1]);
    assert_eq!(past.size, first.len as u64 + 1);
    assert_eq!(past.chunks.len(), 1);

    // Zeros never match the cut mask: chunks of exactly the maximum, stored once.
    let zeros = vec![0u8; 2 * MAX_CHUNK_LEN];
    let z = round_trip(&cas, dir.path(), &zeros);
    assert_eq!(z.chunks.len(), 2);
    assert_eq!(z.chunks[0], z.chunks[1]);
    assert_eq!(z.chunks[0].len as usize, MAX_CHUNK_LEN);
}

#[test]
fn putting_the_same_blob_twice_adds_and_rewrites_nothing() {
    let (dir, cas) = store();
    let data = random_bytes(20 * MIB, 2);
    let blob = cas.put_bytes(&data).unwrap();
    let before = files(dir.path());
    let mtimes = || -> Vec<SystemTime> {
        before
            .keys()
            .map(|p| {
                fs::metadata(dir.path().join(p))
                    .unwrap()
                    .modified()
                    .unwrap()
            })
            .collect()
    };
    let first = mtimes();
    assert_eq!(cas.put_bytes(&data).unwrap(), blob);
    assert_eq!(files(dir.path()), before);
    assert_eq!(mtimes(), first);
}

/// Chunks of `b` also in `a`, and the bytes they cover.
fn shared(a: &CasManifest, b: &CasManifest) -> (usize, u64) {
    let in_a: BTreeSet<_> = a.chunks.iter().map(|c| c.hash).collect();
    let common: Vec<_> = b.chunks.iter().filter(|c| in_a.contains(&c.hash)).collect();
    (common.len(), common.iter().map(|c| c.len as u64).sum())
}

#[test]
fn content_defined_chunks_survive_an_insertion_and_are_shared_between_blobs() {
    let (_dir, cas) = store();
    let data = random_bytes(20 * MIB, 3);
    let a = cas.manifest(&cas.put_bytes(&data).unwrap().hash).unwrap();
    let mut shifted = b"#!/x".to_vec();
    shifted.extend_from_slice(&data);
    let b = cas
        .manifest(&cas.put_bytes(&shifted).unwrap().hash)
        .unwrap();
    let (n, bytes) = shared(&a, &b);
    // Fixed-size chunks would share nothing after a 4-byte shift; content-defined ones
    // lose only the chunk holding the insertion.
    assert!(
        n + 1 >= b.chunks.len(),
        "{n} of {} chunks shared",
        b.chunks.len()
    );
    assert!(
        bytes >= (20 * MIB - MAX_CHUNK_LEN) as u64,
        "{bytes} bytes shared"
    );

    let middle = random_bytes(14 * MIB, 4);
    let x = [
        random_bytes(3 * MIB, 5),
        middle.clone(),
        random_bytes(3 * MIB, 6),
    ]
    .concat();
    let y = [
        random_bytes(2 * MIB + 77, 7),
        middle,
        random_bytes(5 * MIB, 8),
    ]
    .concat();
    let mx = cas.manifest(&cas.put_bytes(&x).unwrap().hash).unwrap();
    let my = cas.manifest(&cas.put_bytes(&y).unwrap().hash).unwrap();
    let (n, bytes) = shared(&mx, &my);
    // At most one chunk at each edge of the middle is lost.
    assert!(n >= 3, "{n} chunks shared");
    assert!(
        bytes >= (14 * MIB - 2 * MAX_CHUNK_LEN) as u64,
        "{bytes} bytes shared"
    );
}

#[test]
fn removing_unnamed_blobs_keeps_every_chunk_a_kept_blob_shares() {
    let (_dir, cas) = store();
    let common = random_bytes(8 * MIB, 9);
    let kept = [common.clone(), random_bytes(3 * MIB, 10)].concat();
    let gone = [common, random_bytes(3 * MIB, 11)].concat();
    let mk = cas.manifest(&cas.put_bytes(&kept).unwrap().hash).unwrap();
    let mg = cas.manifest(&cas.put_bytes(&gone).unwrap().hash).unwrap();
    let small = cas.put_bytes(b"small").unwrap().hash;
    let (n, _) = shared(&mk, &mg);
    assert!(n >= 2, "the blobs share only {n} chunks");
    let named = std::collections::HashSet::from([mk.blob, small]);
    let only_gone: BTreeSet<_> = mg
        .chunks
        .iter()
        .map(|c| c.hash)
        .filter(|h| !mk.chunks.iter().any(|k| k.hash == *h))
        .collect();
    let (removed, bytes) = cas.remove_unnamed(&named).unwrap();
    assert_eq!(removed, 1 + only_gone.len() as u64);
    assert!(bytes > 0);
    assert!(!cas.manifest_path(&mg.blob).exists());
    for h in &only_gone {
        assert!(!cas.chunk_path(h).exists());
    }
    assert_eq!(get(&cas, &mk.blob), kept);
    assert_eq!(get(&cas, &small), b"small");
    assert_eq!(cas.remove_unnamed(&named).unwrap(), (0, 0));
}

/// XORs the byte at `at` of the file with `mask`, in place.
fn flip(path: &Path, at: usize, mask: u8) {
    use std::os::unix::fs::FileExt;
    let f = fs::File::options()
        .read(true)
        .write(true)
        .open(path)
        .unwrap();
    let mut b = [0u8];
    f.read_exact_at(&mut b, at as u64).unwrap();
    f.write_all_at(&[b[0] ^ mask], at as u64).unwrap();
}

/// Positions to flip in a file of `len` bytes: every one of the first and last 16, and
/// `samples` spread evenly between them (every byte when that is fewer).
fn positions(len: usize, samples: usize) -> BTreeSet<usize> {
    let mut at: BTreeSet<usize> = (0..len.min(16))
        .chain(len.saturating_sub(16)..len)
        .collect();
    let step = (len / samples).max(1);
    at.extend((0..len).step_by(step));
    at
}

#[test]
fn every_flipped_byte_of_a_chunk_is_detected_and_names_the_chunk() {
    let (dir, cas) = store();
    let small = cas.put_bytes(&random_bytes(3000, 9)).unwrap();
    let big = cas.put_bytes(&random_bytes(6 * MIB, 10)).unwrap();
    let m = cas.manifest(&big.hash).unwrap();
    assert!(m.chunks.len() >= 2);
    // Every byte of a small blob's chunk with two masks; a sample of each big chunk.
    let mut targets = vec![(small.hash, small.hash, 3000, &[0x01, 0xff][..])];
    targets.extend(
        m.chunks
            .iter()
            .map(|c| (big.hash, c.hash, 100, &[0x01][..])),
    );
    let mut checked = 0;
    for (blob, chunk, samples, masks) in targets {
        let path = cas.chunk_path(&chunk);
        let len = fs::metadata(&path).unwrap().len() as usize;
        for at in positions(len, samples) {
            for &mask in masks {
                flip(&path, at, mask);
                match cas.verify(&blob) {
                    Err(e @ CasError::ChunkCorrupt { .. }) => {
                        assert!(e.to_string().starts_with(&path.display().to_string()))
                    }
                    other => panic!("flip at {at} of {}: {other:?}", path.display()),
                }
                flip(&path, at, mask);
                checked += 1;
            }
        }
    }
    assert!(checked > 6000 + 2 * 100, "{checked}");
    assert_eq!(cas.verify(&big.hash).unwrap(), 6 * MIB as u64);
    assert!(temp_files(dir.path()).is_empty());
}

#[test]
fn every_flipped_byte_of_a_manifest_is_detected_and_names_the_manifest() {
    let (_dir, cas) = store();
    for data in [random_bytes(5 * MIB, 11), b"abc".to_vec(), Vec::new()] {
        let blob = cas.put_bytes(&data).unwrap();
        let path = cas.manifest_path(&blob.hash);
        let len = fs::metadata(&path).unwrap().len() as usize;
        for at in 0..len {
            for mask in [0x01, 0x80, 0xff] {
                flip(&path, at, mask);
                let e = cas.verify(&blob.hash).unwrap_err();
                assert!(
                    matches!(
                        e,
                        CasError::Decode { .. }
                            | CasError::ManifestMismatch { .. }
                            | CasError::MissingChunk { .. }
                            | CasError::ChunkLength { .. }
                            | CasError::BlobCorrupt { .. }
                    ),
                    "flip at {at}: {e:?}"
                );
                assert!(
                    e.to_string().contains(&path.display().to_string()),
                    "flip at {at}: {e}"
                );
                flip(&path, at, mask);
            }
        }
        assert_eq!(get(&cas, &blob.hash), data);
    }
}

#[test]
fn a_missing_truncated_or_swapped_chunk_is_named() {
    let (_dir, cas) = store();
    let data = random_bytes(9 * MIB, 12);
    let blob = cas.put_bytes(&data).unwrap();
    let m = cas.manifest(&blob.hash).unwrap();
    let second = cas.chunk_path(&m.chunks[1].hash);
    let saved = fs::read(&second).unwrap();

    fs::remove_file(&second).unwrap();
    match cas.verify(&blob.hash) {
        Err(CasError::MissingChunk { path, manifest }) => {
            assert_eq!(path, second);
            assert_eq!(manifest, cas.manifest_path(&blob.hash));
        }
        other => panic!("{other:?}"),
    }
    let mut out = Vec::new();
    assert!(cas.get(&blob.hash, &mut out).is_err());
    // Only the verified first chunk was written out.
    assert_eq!(out, data[..m.chunks[0].len as usize]);

    fs::write(&second, &saved[..saved.len() - 1]).unwrap();
    match cas.verify(&blob.hash) {
        Err(CasError::ChunkLength {
            path,
            expected,
            found,
            ..
        }) => {
            assert_eq!(path, second);
            assert_eq!(
                (expected, found),
                (saved.len() as u64, saved.len() as u64 - 1)
            );
        }
        other => panic!("{other:?}"),
    }
    // A later put repairs a chunk of the wrong length.
    assert_eq!(cas.put_bytes(&data).unwrap(), blob);
    assert_eq!(get(&cas, &blob.hash), data);

    // A manifest moved under another blob's name.
    let other = cas.put_bytes(b"other").unwrap();
    fs::copy(
        cas.manifest_path(&blob.hash),
        cas.manifest_path(&other.hash),
    )
    .unwrap();
    assert!(matches!(
        cas.verify(&other.hash),
        Err(CasError::ManifestMismatch { .. })
    ));
    let absent = [0x5a; 32];
    match cas.verify(&absent) {
        Err(CasError::NotFound { path }) => assert_eq!(path, cas.manifest_path(&absent)),
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_manifest_of_other_chunks_with_the_right_lengths_fails_the_blob_hash() {
    let (_dir, cas) = store();
    let a = cas.put_bytes(b"first blob").unwrap();
    let b = cas.put_bytes(b"other blob").unwrap();
    // A manifest that names b's chunk under a's name: every chunk is intact, the blob is not.
    let forged = CasManifest {
        blob: a.hash,
        size: 10,
        chunks: cas.manifest(&b.hash).unwrap().chunks,
    };
    fs::write(cas.manifest_path(&a.hash), forged.encode()).unwrap();
    match cas.verify(&a.hash) {
        Err(CasError::BlobCorrupt { manifest, found }) => {
            assert_eq!(manifest, cas.manifest_path(&a.hash));
            assert_eq!(found, hex(&b.hash));
        }
        other => panic!("{other:?}"),
    }
    // Putting the blob again replaces the wrong manifest.
    cas.put_bytes(b"first blob").unwrap();
    assert_eq!(get(&cas, &a.hash), b"first blob");
}

#[test]
fn crash_left_temporary_files_are_ignored_and_cleaned() {
    let data = random_bytes(5 * MIB, 13);
    // Learn where the blob's files go from a scratch store.
    let (scratch, scratch_cas) = store();
    let blob = scratch_cas.put_bytes(&data).unwrap();
    let layout = files(scratch.path());

    let (dir, cas) = store();
    let old = SystemTime::now() - STALE_TEMP_AGE - Duration::from_secs(60);
    let mut stale = Vec::new();
    let mut fresh = Vec::new();
    for (i, rel) in layout.keys().enumerate() {
        let final_path = dir.path().join(rel);
        let name = rel.file_name().unwrap().to_str().unwrap();
        fs::create_dir_all(final_path.parent().unwrap()).unwrap();
        // Names a writer of this process could have used, and of another.
        for (pid, list) in [(std::process::id(), &mut stale), (999_999, &mut fresh)] {
            let tmp = final_path.with_file_name(format!(".{name}.{pid}.{i}.tmp"));
            fs::write(&tmp, b"half a chunk").unwrap();
            list.push(tmp);
        }
    }
    for t in &stale {
        fs::File::options()
            .write(true)
            .open(t)
            .unwrap()
            .set_modified(old)
            .unwrap();
    }
    assert!(matches!(
        cas.verify(&blob.hash),
        Err(CasError::NotFound { .. })
    ));
    assert_eq!(cas.put_bytes(&data).unwrap(), blob);
    assert_eq!(get(&cas, &blob.hash), data);
    // The put cleaned the stale leftovers of the directories it wrote to; fresh ones
    // (a writer that may still be running) stay, invisible to readers.
    assert!(stale.iter().all(|t| !t.exists()));
    assert!(fresh.iter().all(|t| t.exists()));
    let mut without_temps = files(dir.path());
    without_temps.retain(|p, _| !p.to_str().unwrap().ends_with(".tmp"));
    assert_eq!(without_temps, layout);

    // The sweep removes leftovers anywhere once they are old enough.
    let lone = cas.chunk_path(&[0xee; 32]).with_file_name(".lone.1.2.tmp");
    fs::create_dir_all(lone.parent().unwrap()).unwrap();
    fs::write(&lone, b"x").unwrap();
    assert_eq!(cas.remove_stale_temp_files().unwrap(), 0);
    for t in fresh.iter().chain([&lone]) {
        fs::File::options()
            .write(true)
            .open(t)
            .unwrap()
            .set_modified(old)
            .unwrap();
    }
    assert_eq!(cas.remove_stale_temp_files().unwrap(), fresh.len() + 1);
    assert!(temp_files(dir.path()).is_empty());
    assert_eq!(cas.verify(&blob.hash).unwrap(), data.len() as u64);
}

#[test]
fn concurrent_puts_of_the_same_blob_give_one_object() {
    let data = random_bytes(12 * MIB, 14);
    let (single, single_cas) = store();
    let blob = single_cas.put_bytes(&data).unwrap();
    for _ in 0..3 {
        let (dir, cas) = store();
        let file = dir.path().join("input");
        fs::write(&file, &data).unwrap();
        let (a, b) = std::thread::scope(|s| {
            let a = s.spawn(|| cas.put_bytes(&data).unwrap());
            let b = s.spawn(|| Cas::open(dir.path()).unwrap().put_file(&file).unwrap());
            (a.join().unwrap(), b.join().unwrap())
        });
        assert_eq!((a, b), (blob, blob));
        let mut stored = files(dir.path());
        stored.remove(Path::new("input"));
        assert_eq!(stored, files(single.path()));
        assert_eq!(get(&cas, &blob.hash), data);
    }
}

#[test]
fn a_file_over_the_size_bound_is_refused_before_reading() {
    let (dir, cas) = store();
    let path = dir.path().join("huge");
    // Sparse: no disk space used.
    fs::File::create(&path)
        .unwrap()
        .set_len(MAX_BLOB_LEN + 1)
        .unwrap();
    match cas.put_file(&path) {
        Err(CasError::TooLarge { input, limit }) => {
            assert_eq!(input, path.display().to_string());
            assert_eq!(limit, MAX_BLOB_LEN);
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        cas.put_file(&dir.path().join("absent")),
        Err(CasError::Read { .. })
    ));
    assert_eq!(files(&dir.path().join("cas")), BTreeMap::new());
}

/// A tmpfs of `size` mounted on a new directory, unmounted on drop.
struct Tmpfs {
    dir: tempfile::TempDir,
}

impl Tmpfs {
    fn mount(size: &str) -> Result<Tmpfs, String> {
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } != 0 {
            return Err("not root: cannot mount a tmpfs".into());
        }
        let dir = tempfile::tempdir().unwrap();
        let target = std::ffi::CString::new(dir.path().to_str().unwrap()).unwrap();
        let opts = std::ffi::CString::new(format!("size={size}")).unwrap();
        // SAFETY: every pointer is a NUL-terminated string alive for the call.
        let rc = unsafe {
            libc::mount(
                c"tmpfs".as_ptr(),
                target.as_ptr(),
                c"tmpfs".as_ptr(),
                0,
                opts.as_ptr().cast(),
            )
        };
        if rc != 0 {
            return Err(format!("mount tmpfs: {}", std::io::Error::last_os_error()));
        }
        Ok(Tmpfs { dir })
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let target = std::ffi::CString::new(self.dir.path().to_str().unwrap()).unwrap();
        // SAFETY: a NUL-terminated path alive for the call.
        unsafe { libc::umount2(target.as_ptr(), libc::MNT_DETACH) };
    }
}

#[test]
fn a_full_disk_gives_a_clear_error_and_no_partial_object() {
    let fs_ = match Tmpfs::mount("8m") {
        Ok(t) => t,
        Err(why) if std::env::var("CI").as_deref() != Ok("true") => {
            eprintln!("skipping the disk-full test: {why}");
            return;
        }
        Err(why) => panic!("the disk-full test must run under CI: {why}"),
    };
    let root = fs_.dir.path();
    let cas = Cas::open(root).unwrap();
    let kept = cas.put_bytes(&random_bytes(MIB + 5, 15)).unwrap();
    // 1 MiB stored + 4 MiB of input + its chunks do not fit in 8 MiB.
    let input = root.join("input");
    fs::write(&input, random_bytes(4 * MIB, 16)).unwrap();
    let e = cas.put_file(&input).unwrap_err();
    match &e {
        CasError::NoSpace { path, .. } => assert!(path.starts_with(root), "{}", path.display()),
        other => panic!("{other:?}"),
    }
    assert!(e.to_string().contains("no space left"), "{e}");
    fs::remove_file(&input).unwrap();
    let data = random_bytes(20 * MIB, 17);
    assert!(matches!(
        cas.put_bytes(&data),
        Err(CasError::NoSpace { .. })
    ));
    // No temporary file, no manifest of the failed blob, and every chunk file complete.
    assert!(temp_files(root).is_empty(), "{:?}", temp_files(root));
    let hash = *blake3::hash(&data).as_bytes();
    assert!(matches!(cas.verify(&hash), Err(CasError::NotFound { .. })));
    for rel in files(&root.join("cas/b3")).keys() {
        let name = rel.file_name().unwrap().to_str().unwrap();
        if let Some(blob) = name.strip_suffix(".blob") {
            assert_eq!(blob, hex(&kept.hash));
        } else {
            let bytes = fs::read(root.join("cas/b3").join(rel)).unwrap();
            assert_eq!(hex(blake3::hash(&bytes).as_bytes()), name);
        }
    }
    assert_eq!(cas.verify(&kept.hash).unwrap(), MIB as u64 + 5);
}

#[test]
fn format_md_example_matches() {
    let (_dir, cas) = store();
    let mut text = String::new();
    for data in [&b""[..], b"abc"] {
        let blob = cas.put_bytes(data).unwrap();
        let path = cas.manifest_path(&blob.hash);
        let rel = path.strip_prefix(_dir.path()).unwrap();
        let bytes = fs::read(&path).unwrap();
        let wrapped: Vec<String> = hex_of(&bytes)
            .as_bytes()
            .chunks(64)
            .map(|c| String::from_utf8(c.to_vec()).unwrap())
            .collect();
        text.push_str(&format!(
            "blob {:?} ({} bytes)\nfile  {}\nbytes {}\n",
            String::from_utf8_lossy(data),
            data.len(),
            rel.display(),
            wrapped.join("\n      ")
        ));
    }
    let abc = *blake3::hash(b"abc").as_bytes();
    let chunk = cas.chunk_path(&abc);
    text.push_str(&format!(
        "chunk {}",
        chunk.strip_prefix(_dir.path()).unwrap().display()
    ));
    let mut ex = BTreeMap::new();
    ex.insert("cas-manifest".to_owned(), text);
    let doc = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/FORMAT.md");
    ritma_schemas::format_doc::check_examples(&doc, "sinks", &ex);
}

fn hex_of(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Throughput of storing a 256 MiB file, against reading and hashing it alone. Run with
/// `cargo test --release -p ritma-sinks --test cas -- --ignored --nocapture throughput`;
/// `RITMA_CAS_BENCH_DIR` picks the file system (default: the system temp directory).
#[test]
#[ignore = "a measurement, not a check"]
fn throughput_of_a_256_mib_put() {
    use std::io::Read;
    use std::time::Instant;
    let base =
        std::env::var_os("RITMA_CAS_BENCH_DIR").map_or_else(std::env::temp_dir, PathBuf::from);
    let dir = tempfile::tempdir_in(base).unwrap();
    let input = dir.path().join("input");
    let len = 256 * MIB;
    fs::write(&input, random_bytes(len, 18)).unwrap();
    let mb = len as f64 / 1e6;
    let rate = |what: &str, t: Instant| {
        let s = t.elapsed().as_secs_f64();
        println!("{what:<32} {s:>7.3} s {:>8.0} MB/s", mb / s);
    };

    let t = Instant::now();
    let mut f = fs::File::open(&input).unwrap();
    let mut hasher = blake3::Hasher::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf).unwrap();
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    rate("read + BLAKE3 (one thread)", t);

    // What any durable copy costs: read, write, fsync (no copy_file_range shortcut).
    let t = Instant::now();
    let mut from = fs::File::open(&input).unwrap();
    let mut to = fs::File::create(dir.path().join("copy")).unwrap();
    loop {
        let n = from.read(&mut buf).unwrap();
        if n == 0 {
            break;
        }
        std::io::Write::write_all(&mut to, &buf[..n]).unwrap();
    }
    to.sync_all().unwrap();
    rate("read + write + fsync (a copy)", t);

    let store = dir.path().join("store");
    let cas = Cas::open(&store).unwrap();
    let t = Instant::now();
    let blob = cas.put_file(&input).unwrap();
    rate("put_file, new", t);
    assert_eq!(blob.hash, *hasher.finalize().as_bytes());
    let t = Instant::now();
    cas.put_file(&input).unwrap();
    rate("put_file, all chunks present", t);
    let t = Instant::now();
    cas.verify(&blob.hash).unwrap();
    rate("verify", t);
    println!("{} chunks", cas.manifest(&blob.hash).unwrap().chunks.len());
}
