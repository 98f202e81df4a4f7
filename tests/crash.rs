//! Crash safety of `ritma replay`: killed at random points and restarted, it finishes
//! with the same bytes as an uninterrupted run; a full disk fails cleanly and resumes;
//! sealed files are never overwritten with other bytes; one writer per store.

use crate::util::{tree, Dir, OutputExt};
use ritma_sinks::store::StoreLock;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Instant;

/// A synth trace spread over about a dozen windows and a key outside any store.
fn trace_and_key(d: &Dir) -> String {
    d.ritma(&[
        "synth", "--events", "60000", "--seed", "7", "--rate", "5000", "--out", "t.rtrace",
    ])
    .output()
    .success();
    d.signing_key("synth-0").0
}

fn replay(d: &Dir, out: &str, key: &str) -> Command {
    d.ritma(&["replay", "t.rtrace", "--out", out, "--key", key])
}

/// Signature files under `root` while a writer may be renaming files in it: names
/// only, and entries that vanish are skipped.
fn seals_so_far(root: &Path) -> usize {
    let mut n = 0;
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                stack.push(p);
            } else {
                n += usize::from(p.extension().is_some_and(|x| x == "sig"));
            }
        }
    }
    n
}

/// Temporary files (`.name.tmp`) anywhere under `root`.
fn temp_files(root: &Path) -> Vec<String> {
    tree(root)
        .into_keys()
        .map(|p| p.display().to_string())
        .filter(|p| p.ends_with(".tmp"))
        .collect()
}

#[test]
fn a_replay_killed_at_random_points_resumes_to_the_same_bytes() {
    let d = Dir::new();
    let key = trace_and_key(&d);
    let started = Instant::now();
    replay(&d, "ref", &key).output().success();
    let full = started.elapsed();
    let reference = tree(&d.join("ref"));

    let sealed = |t: &std::collections::BTreeMap<std::path::PathBuf, Vec<u8>>| {
        t.keys()
            .filter(|p| p.extension().is_some_and(|e| e == "sig"))
            .count()
    };
    let all = sealed(&reference);
    // Kill points: half at a time into the run (startup, resume checks or sealing), half as
    // soon as the store holds a given number of seals, so some surely land mid-sealing.
    // A fixed sequence: the test is repeatable.
    let (mut partial, mut n) = (0, 0);
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    for i in 0..8 {
        x = x
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        let mut child = replay(&d, "s", &key).stderr(Stdio::null()).spawn().unwrap();
        if i % 2 == 0 {
            // One or two more seals than the last run left, short of the whole store.
            let target = (n + 1 + (x >> 63) as usize).min(all - 1);
            while seals_so_far(&d.join("s")) < target && child.try_wait().unwrap().is_none() {
                std::thread::sleep(std::time::Duration::from_millis(1));
            }
        } else {
            // Within the first third of a whole run: startup, resume checks or sealing.
            std::thread::sleep(full.mul_f64((x >> 11) as f64 / (3u64 << 53) as f64));
        }
        // SIGKILL: no handler, no cleanup, as in a crash or an OOM kill.
        let _ = child.kill();
        child.wait().unwrap();
        n = sealed(&tree(&d.join("s")));
        partial += usize::from(n > 0 && n < all);
    }
    assert!(
        partial > 0,
        "no kill landed while windows were being sealed"
    );
    replay(&d, "s", &key).output().success();
    let resumed = tree(&d.join("s"));
    assert_eq!(
        reference.keys().collect::<Vec<_>>(),
        resumed.keys().collect::<Vec<_>>()
    );
    for (path, bytes) in &reference {
        assert!(resumed[path] == *bytes, "{} differs", path.display());
    }
    let ok = d.ritma(&["verify", "s"]).output().success();
    assert!(ok.starts_with("OK synth-0: "), "{ok}");
    // A finished store replayed again stays as it is.
    replay(&d, "s", &key).output().success();
    assert!(tree(&d.join("s")) == resumed);
}

#[test]
fn another_trace_is_refused_and_the_store_is_unchanged() {
    let d = Dir::new();
    let key = trace_and_key(&d);
    replay(&d, "s", &key).output().success();
    let before = tree(&d.join("s"));
    // The same start time and windows, other events: the first block differs.
    d.ritma(&[
        "synth", "--events", "60000", "--seed", "8", "--rate", "5000", "--out", "u.rtrace",
    ])
    .output()
    .success();
    let err = d
        .ritma(&["replay", "u.rtrace", "--out", "s", "--key", &key])
        .output()
        .failure();
    assert!(
        err.contains("already in the store with different contents")
            || err.contains("sealed from another input"),
        "{err}"
    );
    assert!(
        tree(&d.join("s")) == before,
        "a refused replay wrote nothing"
    );
}

#[test]
fn a_second_writer_is_refused_while_the_lock_is_held() {
    let d = Dir::new();
    let key = trace_and_key(&d);
    let locks = d.join("locks");
    let lock = StoreLock::acquire(&d.join("s"), &locks).unwrap();
    let err = replay(&d, "s", &key)
        .env("RITMA_LOCK_DIR", &locks)
        .output()
        .failure();
    assert!(err.contains("one writer per store"), "{err}");
    assert!(
        err.contains(&format!("pid {}", std::process::id())),
        "{err}"
    );
    drop(lock);
    replay(&d, "s", &key)
        .env("RITMA_LOCK_DIR", &locks)
        .output()
        .success();
}

/// A tmpfs mounted for the test, unmounted when dropped (also when the test fails).
struct Tmpfs(std::path::PathBuf);

impl Tmpfs {
    fn mount(at: &Path, size: &str) -> Self {
        std::fs::create_dir_all(at).unwrap();
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(at)
            .status()
            .unwrap()
            .success();
        assert!(ok, "mounting a tmpfs at {}", at.display());
        Tmpfs(at.to_owned())
    }

    fn resize(&self, size: &str) {
        let ok = Command::new("mount")
            .args(["-o", &format!("remount,size={size}")])
            .arg(&self.0)
            .status()
            .unwrap()
            .success();
        assert!(ok, "resizing the tmpfs");
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

#[test]
fn a_full_disk_fails_cleanly_and_the_replay_resumes_when_space_returns() {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        if std::env::var("CI").as_deref() == Ok("true") {
            panic!("mounting a small tmpfs needs root (CI=true: a skip is a failure)");
        }
        eprintln!("skipping the full-disk test: mounting a tmpfs needs root");
        return;
    }
    let d = Dir::new();
    let key = trace_and_key(&d);
    replay(&d, "ref", &key).output().success();
    let fs = Tmpfs::mount(&d.join("small"), "1m");
    let err = replay(&d, "small/s", &key).output().failure();
    assert!(err.contains("No space left on device"), "{err}");
    assert!(err.contains("small/s/"), "the error names the file: {err}");
    let root = d.join("small/s");
    assert!(temp_files(&root).is_empty(), "{:?}", temp_files(&root));
    // Every file that made it is whole: a prefix of the uninterrupted store.
    let reference = tree(&d.join("ref"));
    for (path, bytes) in tree(&root) {
        if path.starts_with("_meta/keys") {
            continue;
        }
        assert!(
            reference.get(&path) == Some(&bytes),
            "{} is not the uninterrupted run's",
            path.display()
        );
    }
    fs.resize("64m");
    replay(&d, "small/s", &key).output().success();
    assert!(tree(&root) == reference);
}
