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
        // Whatever the kill left verifies: complete, or interrupted (FORMAT §8.12).
        if d.join("s/_meta/store.cbor").exists() {
            let o = d
                .ritma(&["verify", "--trust-embedded-key", "s"])
                .output()
                .unwrap();
            let err = String::from_utf8_lossy(&o.stderr);
            assert!(o.status.success(), "after kill {i}: {err}");
        }
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
    let ok = d
        .ritma(&["verify", "--trust-embedded-key", "s"])
        .output()
        .success();
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

/// A replay killed in its first hour leaves no taint index (it is written at the hour's
/// end), yet `verify` knows the taint lifetime from store.cbor: a process raised to Thick
/// by a trigger stays Thick for the whole lifetime, so its later exec's argv is sealed, and
/// that is not reported as kept against the policy (a lifetime of one window would say so).
#[test]
fn a_store_cut_off_before_its_taint_index_verifies_its_capture_modes() {
    use crate::replay_loss::{run_meta, MONO_AT_W0, MS, NODE};
    use crate::util::exec_event;
    use ritma_sources::trace::TraceWriter;
    let d = Dir::new();
    let mut w = TraceWriter::create(&d.join("t.rtrace")).unwrap();
    let run = w.add_run(&run_meta()).unwrap();
    let at = |ms: u64| MONO_AT_W0 + ms * MS;
    // exec_from_tmp fires in W0; the same process execs again in W0+3 and W0+4.
    w.append_batch(
        run,
        &[
            exec_event(0, at(100), 100, "/tmp/x", 1),
            exec_event(1, at(3_100), 100, "/usr/bin/ls", 2),
            exec_event(2, at(4_100), 100, "/usr/bin/id", 3),
        ],
    )
    .unwrap();
    drop(w);
    let (key, vkey) = d.signing_key(NODE);
    d.ritma(&["replay", "t.rtrace", "--out", "s", "--key", &key])
        .output()
        .success();
    let argv_kept = crate::util::window_leaves(&d.join("s"))
        .iter()
        .flat_map(|(_, leaves)| leaves.iter())
        .filter(|l| {
            matches!(
                ritma_schemas::records::AnyRecord::decode(l),
                Ok(ritma_schemas::records::AnyRecord::Dict(e))
                    if e.kind == ritma_schemas::records::DictKind::Argv
            )
        })
        .count();
    assert_eq!(
        argv_kept, 3,
        "the seed stays Thick: every exec's argv is sealed"
    );
    // What a kill before the hour's end leaves: no index, no catalog entries.
    for dir in [
        "windows/2023/11/14/22/index",
        "catalog",
        "accounting",
        "graph",
    ] {
        std::fs::remove_dir_all(d.join("s").join(dir)).unwrap();
    }
    let ok = d.ritma(&["verify", "s", "--key", &vkey]).output().success();
    assert!(ok.contains("3 events"), "{ok}");
}

/// Every point a writer can be cut off at (the write order of FORMAT.md §8) leaves a store
/// that `verify` accepts as interrupted, naming what is unfinished, never as damaged; the
/// same replay into it completes it to the uninterrupted bytes. Files of two unfinished
/// windows are not an interrupted write and still fail.
#[test]
fn a_store_cut_off_at_any_write_verifies_as_interrupted_and_resumes() {
    let d = Dir::new();
    // One-minute windows over 66 minutes: hour 00 sealed (windows 0-59), hour 01 open.
    d.ritma(&[
        "synth",
        "--events",
        "4000",
        "--seed",
        "3",
        "--rate",
        "1",
        "--window-ms",
        "60000",
        "--out",
        "t.rtrace",
    ])
    .output()
    .success();
    let (key, vkey) = d.signing_key("synth-0");
    replay(&d, "full", &key).output().success();
    let full = tree(&d.join("full"));
    let ok = d
        .ritma(&["verify", "full", "--key", &vkey])
        .output()
        .success();
    assert!(!ok.contains("INTERRUPTED"), "{ok}");

    let hour = |h: u32| format!("windows/2026/11/01/{h:02}");
    // The window of a file of `windows/…/HH/{micro,blocks}/`, as (hour, index).
    let window_of = |p: &Path| -> Option<(u32, u32)> {
        let s = p.to_str()?;
        let rest = s.strip_prefix("windows/2026/11/01/")?;
        let (h, rest) = rest.split_once('/')?;
        let name = rest
            .strip_prefix("micro/")
            .or(rest.strip_prefix("blocks/"))?;
        Some((h.parse().ok()?, name.get(1..5)?.parse().ok()?))
    };
    // The store as a writer cut off before window (h, i) leaves it, with `extra` of that
    // window's files (by suffix: "blocks", "record", "seal", "sig") written.
    let state = |name: &str, (h, i): (u32, u32), extra: &[&str]| {
        let out = d.join(name);
        let _ = std::fs::remove_dir_all(&out);
        for (rel, bytes) in &full {
            let keep = match window_of(rel) {
                Some(w) if w < (h, i) => true,
                Some(w) if w == (h, i) => {
                    let s = rel.to_string_lossy();
                    (extra.contains(&"blocks") && s.contains("/blocks/"))
                        || (extra.contains(&"record") && s.ends_with(".cbor"))
                        || (extra.contains(&"sig") && s.ends_with(".sig"))
                }
                Some(_) => false,
                None => {
                    let s = rel.to_string_lossy();
                    let seal = s.contains("/proofs/");
                    let derived = s.contains("/index/")
                        || s.starts_with("graph/")
                        || s.starts_with("catalog/")
                        || s.starts_with("accounting/");
                    // Hour 00's seal and derived files exist once its last window is written.
                    let of_hour_0 = s.contains("/00/");
                    (seal && of_hour_0 && (h > 0 || extra.contains(&"seal")))
                        || (derived
                            && of_hour_0
                            && h > 0
                            && !s.starts_with("catalog/")
                            && !s.starts_with("accounting/"))
                        || (!seal && !derived)
                }
            };
            if keep {
                let p = out.join(rel);
                std::fs::create_dir_all(p.parent().unwrap()).unwrap();
                std::fs::write(p, bytes).unwrap();
            }
        }
        out
    };
    let verify_ok = |name: &str| -> String {
        let o = d.ritma(&["verify", name, "--key", &vkey]).output().unwrap();
        let (out, err) = (
            String::from_utf8_lossy(&o.stdout).into_owned(),
            String::from_utf8_lossy(&o.stderr).into_owned(),
        );
        assert!(o.status.success(), "{name}: {err}");
        assert!(
            out.contains("INTERRUPTED") && out.contains("ritma replay"),
            "{name}: {out}"
        );
        out
    };
    let mut n = 0;
    // (the window cut before, the files of it written at each cut)
    type Cuts<'a> = Vec<((u32, u32), Vec<Vec<&'a str>>)>;
    let cases: Cuts = vec![
        (
            (0, 30),
            vec![
                vec![],
                vec!["blocks"],
                vec!["blocks", "record"],
                vec!["blocks", "record", "sig"],
            ],
        ),
        (
            (0, 59),
            vec![
                vec!["blocks"],
                vec!["blocks", "record"],
                vec!["blocks", "record", "seal"],
            ],
        ),
        (
            (1, 0),
            vec![vec![], vec!["blocks"], vec!["blocks", "record"]],
        ),
    ];
    for (w, steps) in cases {
        for extra in steps {
            n += 1;
            let name = format!("cut{n}");
            let out = state(&name, w, &extra);
            // The temporary file of the write the cut fell in.
            let temp = match extra.last() {
                None => format!("blocks/.w{:04}.cbor.zst.tmp", w.1),
                Some(&"blocks") => format!("micro/.w{:04}.cbor.tmp", w.1),
                Some(&"sig") => format!("blocks/.w{:04}.cbor.zst.tmp", w.1 + 1),
                Some(_) => format!("micro/.w{:04}.sig.tmp", w.1),
            };
            let temp = out.join(hour(w.0)).join(temp);
            std::fs::create_dir_all(temp.parent().unwrap()).unwrap();
            std::fs::write(&temp, b"half a file").unwrap();
            let said = verify_ok(&name);
            let temp_name = temp.file_name().unwrap().to_string_lossy().into_owned();
            assert!(said.contains(&temp_name), "{name}: {said}");
            let unfinished = !extra.is_empty() && !extra.contains(&"sig");
            assert_eq!(
                said.contains("was begun but has no checkpoint"),
                unfinished,
                "{name} {extra:?}: {said}"
            );
            let json = d
                .ritma(&["verify", &name, "--key", &vkey, "--json"])
                .output()
                .success();
            let v: serde_json::Value = serde_json::from_str(json.trim()).unwrap();
            assert!(v["nodes"][0]["interrupted"].is_object(), "{json}");
            // Continuing the run completes the store to the uninterrupted bytes.
            replay(&d, &name, &key).output().success();
            assert!(tree(&out) == full, "{name} {extra:?}: not completed");
        }
    }
    // Outside the newest hour derived files are exact: hour 00's, changed or missing, fail.
    let t10 = Path::new(&hour(0)).join("index/t_10s.cbor.zst");
    let out = state("old-hour", (1, 3), &[]);
    std::fs::write(
        out.join(&t10),
        &full[&Path::new(&hour(0)).join("index/t_60s.cbor.zst")],
    )
    .unwrap();
    let err = d
        .ritma(&["verify", "old-hour", "--key", &vkey])
        .output()
        .failure();
    assert!(err.contains("E_INDEX") && err.contains("t_10s"), "{err}");
    std::fs::remove_file(out.join(&t10)).unwrap();
    let err = d
        .ritma(&["verify", "old-hour", "--key", &vkey])
        .output()
        .failure();
    assert!(err.contains("E_INDEX"), "{err}");
    // Files of two windows past the newest completed one are not a cut-off write.
    let out = state("two", (0, 30), &["blocks"]);
    let blocks = out.join(hour(0)).join("blocks");
    std::fs::copy(blocks.join("w0030.cbor.zst"), blocks.join("w0031.cbor.zst")).unwrap();
    let err = d
        .ritma(&["verify", "two", "--key", &vkey])
        .output()
        .failure();
    assert!(
        err.contains("E_EXTRA") && err.contains("w0030.cbor.zst"),
        "{err}"
    );
    // Nor is a record without its checkpoint before the newest completed window.
    let out = state("gap", (0, 31), &[]);
    std::fs::remove_file(out.join(hour(0)).join("micro/w0010.sig")).unwrap();
    let err = d
        .ritma(&["verify", "gap", "--key", &vkey])
        .output()
        .failure();
    assert!(
        err.contains("E_MISSING") && err.contains("w0010.sig"),
        "{err}"
    );
}

/// A run that continues a store in its open hour takes that hour's catalog entry out
/// before it writes past the store's end (FORMAT §8.12): cut off there, the hour's older
/// derived files are reported as out of date, not as damage; run again, it completes the
/// store to the bytes of an uninterrupted replay.
#[test]
fn a_continued_run_cut_off_leaves_its_hour_unattested_then_completes() {
    use crate::replay_loss::{run_meta, MONO_AT_W0, MS, NODE, W0, WINDOW_LEN_NS};
    use ritma_sinks::store::WindowPaths;
    use ritma_sources::trace::TraceWriter;
    let d = Dir::new();
    let open =
        |seq: u64, ms: u64| crate::util::exec_event(seq, MONO_AT_W0 + ms * MS, 100, "/bin/true", 1);
    let mut w = TraceWriter::create(&d.join("a.rtrace")).unwrap();
    let run = w.add_run(&run_meta()).unwrap();
    w.append_batch(run, &[open(0, 100), open(1, 1_100), open(2, 2_100)])
        .unwrap();
    drop(w);
    let mut meta = run_meta();
    meta.first_seq = 3;
    meta.started_wall_ns = (W0 + 5) * WINDOW_LEN_NS;
    let mut w = TraceWriter::create(&d.join("b.rtrace")).unwrap();
    let run = w.add_run(&meta).unwrap();
    w.append_batch(run, &[open(3, 5_100), open(4, 6_100), open(5, 7_100)])
        .unwrap();
    drop(w);
    let (key, vkey) = d.signing_key(NODE);
    let both = |out: &str| {
        d.ritma(&[
            "replay", "a.rtrace", "b.rtrace", "--out", out, "--key", &key,
        ])
    };
    both("ref").output().success();
    d.ritma(&["replay", "a.rtrace", "--out", "s", "--key", &key])
        .output()
        .success();
    let catalog = d.join("s/catalog/2023/11/14/day.cbor.zst");
    assert!(
        catalog.exists(),
        "run A wrote its open hour's catalog entry"
    );
    // A file in the way of window W0+5's record stops run B there.
    let blocker = d
        .join("s")
        .join(WindowPaths::new(W0 + 5, WINDOW_LEN_NS).record());
    std::fs::write(&blocker, b"in the way").unwrap();
    let err = both("s").output().failure();
    assert!(err.contains("already in the store"), "{err}");
    assert!(
        !catalog.exists(),
        "the open hour's catalog entry is taken out first"
    );
    let out = d.ritma(&["verify", "s", "--key", &vkey]).output().success();
    assert!(
        out.contains("INTERRUPTED")
            && out.contains("window 1700000005 was begun")
            && out.contains("day.cbor.zst: no entry for hour")
            && out.contains("account.cbor.zst: the entry of hour"),
        "{out}"
    );
    std::fs::remove_file(&blocker).unwrap();
    both("s").output().success();
    let out = d.ritma(&["verify", "s", "--key", &vkey]).output().success();
    assert!(!out.contains("INTERRUPTED"), "{out}");
    assert!(tree(&d.join("s")) == tree(&d.join("ref")));
}
