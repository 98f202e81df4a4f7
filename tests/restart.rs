//! Restarting from the dataflow state saved at an hour seal (FORMAT.md §3.15, §8 the WAL):
//! a store continued from it is the store sealed whole, byte for byte, for any number of
//! workers; a state that does not check is refused; and `ritma run` across hour
//! boundaries (on a shifted wall clock, as root) keeps only the open hour's WAL and
//! restarts from the state, its output the replay of its whole input.

#[allow(dead_code)]
mod live;
#[allow(dead_code)]
mod util;

use ritma_schemas::records::{Record, WindowRecord};
use ritma_sinks::store::{read_state, WindowPaths};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;
use util::{copy_tree, tree, Dir, OutputExt};

/// One-minute windows: 60 per hour.
const WINDOW_NS: u64 = 60_000_000_000;

/// A store `s` whose WAL is a synthetic trace of about three hours (with attacks), sealed
/// by `ritma replay --wal`; returns the cuts it saved states at.
fn store_from_wal(d: &Dir) -> Vec<u64> {
    d.ritma(&[
        "synth",
        "--events",
        "120000",
        "--rate",
        "11",
        "--window-ms",
        "60000",
        "--seed",
        "7",
        "--out",
        "t.rtrace",
    ])
    .output()
    .success();
    d.ritma(&["keys", "init", "--out", "s", "--node", "synth-0"])
        .output()
        .success();
    std::fs::create_dir_all(d.join("s/wal")).unwrap();
    std::fs::copy(
        d.join("t.rtrace"),
        d.join("s/wal/0000000000000000001.rtrace"),
    )
    .unwrap();
    d.ritma(&["replay", "--wal", "--out", "s"])
        .output()
        .success();
    let mut cuts: Vec<u64> = tree(&d.join("s"))
        .into_keys()
        .filter(|p| p.ends_with("proofs/state.cbor.zst"))
        .map(|p| {
            let hour = WindowPaths::hour_of_dir(p.parent().unwrap().parent().unwrap()).unwrap();
            (hour + 1) * 60
        })
        .collect();
    cuts.sort();
    cuts
}

/// Every file of the store's windows from `cut` on (and their derived files) removed:
/// the store as a run that stopped right after the cut's state was saved left it.
fn cut_back(store: &Path, cut: u64) {
    for (p, _) in tree(store) {
        let dir = p.iter().take(5).collect::<PathBuf>();
        let hour = match p.iter().next().and_then(|c| c.to_str()) {
            Some("windows") => WindowPaths::hour_of_dir(&dir),
            Some("graph") => {
                WindowPaths::hour_of_dir(&p.iter().skip(1).take(5).collect::<PathBuf>())
            }
            Some("_meta") if p.starts_with("_meta/health") => {
                WindowPaths::hour_of_dir(&p.iter().skip(1).take(5).collect::<PathBuf>())
            }
            _ => None,
        };
        if hour.is_some_and(|h| h * 60 >= cut) {
            std::fs::remove_file(store.join(&p)).unwrap();
        }
    }
}

fn record_of(store: &Path, window: u64) -> WindowRecord {
    let p = store.join(WindowPaths::new(window, WINDOW_NS).record());
    WindowRecord::decode(&std::fs::read(p).unwrap()).unwrap()
}

#[test]
fn a_store_continued_from_its_saved_state_is_the_store_sealed_whole() {
    let d = Dir::new();
    let cuts = store_from_wal(&d);
    assert!(cuts.len() >= 2, "a state at each hour seal: {cuts:?}");
    let whole = d.join("s");
    d.ritma(&["verify", "s", "--trust-embedded-key"])
        .output()
        .success();
    // The window after each cut names its state; no other window names one.
    for &cut in &cuts {
        let (state, digest) = read_state(&whole, cut - 1, WINDOW_NS).unwrap().unwrap();
        assert_eq!(state.cut, cut);
        assert!(!state.actors.is_empty() && !state.cgroups.is_empty());
        assert_eq!(record_of(&whole, cut).state, Some(digest));
        assert_eq!(record_of(&whole, cut + 1).state, None);
        assert_eq!(record_of(&whole, cut - 1).state, None);
    }
    let last = *cuts.last().unwrap();
    let all = tree(&whole);
    // Continued from the last state, with any number of workers: the same store.
    for workers in ["1", "3"] {
        let name = format!("c{workers}");
        let c = d.join(&name);
        copy_tree(&whole, &c);
        use std::os::unix::fs::PermissionsExt;
        let key = c.join("_meta/keys/signing.key");
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
        cut_back(&c, last);
        assert!(tree(&c).len() < all.len());
        d.ritma(&["replay", "--wal", "--out", &name, "--workers", workers])
            .output()
            .success();
        let again = tree(&c);
        assert_eq!(
            all.keys().collect::<Vec<_>>(),
            again.keys().collect::<Vec<_>>(),
            "the same files ({workers} workers)"
        );
        for (p, bytes) in &all {
            assert!(
                again[p] == *bytes,
                "{} differs ({workers} workers)",
                p.display()
            );
        }
    }
    // Sealing the kept WAL again over the whole store changes nothing (every file is
    // compared as it is written).
    d.ritma(&["replay", "--wal", "--out", "s"])
        .output()
        .success();
    assert!(tree(&whole) == all);
}

#[test]
fn a_state_that_does_not_check_is_refused_by_restart_and_verify() {
    let d = Dir::new();
    let cuts = store_from_wal(&d);
    let last = *cuts.last().unwrap();
    let state = d
        .join("s")
        .join(WindowPaths::new(last - 1, WINDOW_NS).state());
    let good = std::fs::read(&state).unwrap();
    // Another valid state in its place (the one an hour earlier): its digest is not the
    // one the restart point and the window after the cut name.
    let other = d
        .join("s")
        .join(WindowPaths::new(cuts[0] - 1, WINDOW_NS).state());
    std::fs::write(&state, std::fs::read(&other).unwrap()).unwrap();
    let err = d
        .ritma(&["replay", "--wal", "--out", "s"])
        .output()
        .failure();
    assert!(err.contains("digest") || err.contains("not this"), "{err}");
    let err = d
        .ritma(&["verify", "s", "--trust-embedded-key"])
        .output()
        .failure();
    assert!(err.contains("E_STATE"), "{err}");
    // A damaged file does not decode.
    let mut bad = good.clone();
    let n = bad.len();
    bad[n / 2] ^= 0x40;
    std::fs::write(&state, &bad).unwrap();
    let err = d
        .ritma(&["verify", "s", "--trust-embedded-key"])
        .output()
        .failure();
    assert!(err.contains("E_DECODE") || err.contains("E_STATE"), "{err}");
    assert!(d
        .ritma(&["replay", "--wal", "--out", "s"])
        .output()
        .failure()
        .contains("state.cbor.zst"));
    // Without its state a restart cannot go on (it never seals the WAL from a later
    // point without one); the verifier does not require the file.
    std::fs::remove_file(&state).unwrap();
    let err = d
        .ritma(&["replay", "--wal", "--out", "s"])
        .output()
        .failure();
    assert!(err.contains("does not hold"), "{err}");
    std::fs::write(&state, &good).unwrap();
    // The window sealed after the cut naming another state: refused as well.
    let after = d.join("s").join(WindowPaths::new(last, WINDOW_NS).record());
    let kept = std::fs::read(&after).unwrap();
    let mut record = WindowRecord::decode(&kept).unwrap();
    record.state = Some([7; 32]);
    std::fs::write(&after, record.encode()).unwrap();
    let err = d
        .ritma(&["replay", "--wal", "--out", "s"])
        .output()
        .failure();
    assert!(err.contains("naming another state"), "{err}");
    std::fs::write(&after, kept).unwrap();
    d.ritma(&["replay", "--wal", "--out", "s"])
        .output()
        .success();
}

#[test]
fn a_store_retention_thinned_is_continued_from_its_saved_state() {
    let d = Dir::new();
    let cuts = store_from_wal(&d);
    let last = *cuts.last().unwrap();
    // Every sealed hour goes (the trace is weeks old); the tail hour the input stopped
    // in stays, and with it the state its restart goes on from.
    d.ritma(&["retention", "s", "--keep", "1h", "--apply"])
        .output()
        .success();
    let store = d.join("s");
    assert!(!store
        .join(WindowPaths::new(cuts[0], WINDOW_NS).record())
        .exists());
    assert!(read_state(&store, last - 1, WINDOW_NS).unwrap().is_some());
    d.ritma(&["verify", "s", "--trust-embedded-key"])
        .output()
        .success();
    // Sealing the WAL again goes on from the state: the deleted hours do not come back.
    let before = tree(&store);
    let out = d.ritma(&["replay", "--wal", "--out", "s"]).output();
    let o = out.expect("run ritma");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(tree(&store) == before, "the same store");
    d.ritma(&["verify", "s", "--trust-embedded-key"])
        .output()
        .success();
}

#[test]
fn a_running_retention_deletes_hours_it_can_check_against_their_seals() {
    use ritma_sinks::retention::{apply, plan_running};
    let d = Dir::new();
    let cuts = store_from_wal(&d);
    let store = d.join("s");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    // A record of the second hour changed (its checkpoint re-signed or not, its hour
    // seal stands): that hour is kept, unchecked, and so is every later one.
    let second = store.join(WindowPaths::new(cuts[0] + 5, WINDOW_NS).record());
    let good = std::fs::read(&second).unwrap();
    let mut r = WindowRecord::decode(&good).unwrap();
    r.late_events += 1;
    std::fs::write(&second, r.encode()).unwrap();
    let (plan, unchecked) = plan_running(&store, 3_600_000_000_000, now).unwrap();
    assert_eq!(plan.hours.len(), 1, "only the first hour checks");
    assert_eq!(unchecked.len(), 1, "{unchecked:?}");
    assert!(unchecked[0].1.contains("hour seal"), "{unchecked:?}");
    std::fs::write(&second, &good).unwrap();
    // Whole: every sealed hour old enough goes, the later ones checked from the state
    // saved before each; the store verifies and continues from its state.
    let (plan, unchecked) = plan_running(&store, 3_600_000_000_000, now).unwrap();
    assert!(unchecked.is_empty(), "{unchecked:?}");
    assert_eq!(plan.hours.len(), cuts.len());
    apply(&plan, 3_600_000_000_000, now).unwrap();
    for &cut in &cuts {
        let hour_dir = store.join(WindowPaths::new(cut - 1, WINDOW_NS).hour_dir);
        assert!(hour_dir.join("proofs/deleted.cbor").exists());
        assert!(!hour_dir.join("micro").exists());
    }
    d.ritma(&["verify", "s", "--trust-embedded-key"])
        .output()
        .success();
    d.ritma(&["replay", "--wal", "--out", "s"])
        .output()
        .success();
    let (plan, _) = plan_running(&store, 3_600_000_000_000, now).unwrap();
    assert!(plan.hours.is_empty(), "nothing twice");
}

/// The libfaketime preload of Debian's `faketime` package, if installed.
fn libfaketime() -> Option<PathBuf> {
    let out = Command::new("dpkg")
        .args(["-L", "libfaketime"])
        .output()
        .ok()?;
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .find(|l| l.ends_with("/libfaketime.so.1"))
        .map(PathBuf::from)
}

/// What a live test on a shifted wall clock needs: libfaketime and the real time now (s);
/// `None` (a printed skip) without root or libfaketime, a failure in CI.
fn shifted_clock(test: &str) -> Option<(PathBuf, i64)> {
    if live::skip_without_root(test) {
        return None;
    }
    let Some(lib) = libfaketime() else {
        if std::env::var("CI").as_deref() == Ok("true") {
            panic!("{test}: libfaketime is missing (test.sh installs the faketime package)");
        }
        eprintln!("skipping {test}: libfaketime is not installed (apt-get install faketime)");
        return None;
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    Some((lib, now))
}

/// `ritma run` in `d` on a wall clock `offset_s` ahead (monotonic time, the sensor's, is
/// the kernel's own), its WAL files trimmed into `archive`.
fn faked_run(d: &Dir, lib: &Path, offset_s: i64, extra: &[&str]) -> std::process::Child {
    Command::new(env!("CARGO_BIN_EXE_ritma"))
        .args([
            "run",
            "--out",
            "s",
            "--node",
            "hours",
            "--wal-archive",
            "archive",
        ])
        .args(extra)
        .current_dir(d.path())
        .env_remove("RITMA_NODE_ID")
        .env_remove("RITMA_OUT")
        .env_remove("RITMA_CONFIG")
        .env("LD_PRELOAD", lib)
        .env("FAKETIME", format!("{offset_s:+}s"))
        .env("FAKETIME_DONT_FAKE_MONOTONIC", "1")
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

fn wal_names(store: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(store.join("wal"))
        .map(|r| {
            r.map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .filter(|n| n.ends_with(".rtrace"))
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

fn finish(child: std::process::Child) -> String {
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "ritma run failed: {err}");
    err
}

#[test]
fn a_live_run_across_hours_keeps_the_open_hour_and_restarts_from_its_state() {
    let Some((lib, now)) =
        shifted_clock("a_live_run_across_hours_keeps_the_open_hour_and_restarts_from_its_state")
    else {
        return;
    };
    let d = Dir::new();
    // The first run starts 20 s before an hour ends (its sensor takes a few to attach)
    // and runs 12 s into the next.
    let hour_s = (now / 3600 + 2) * 3600;
    let offset = hour_s - 20 - now;
    let first = faked_run(&d, &lib, offset, &["--duration", "32"]);
    let err = finish(first);
    let cut = (hour_s as u64) * 1_000_000_000 / live::WINDOW_LEN_NS;
    let store = d.join("s");
    let (state, _) = read_state(&store, cut - 1, live::WINDOW_LEN_NS)
        .unwrap()
        .unwrap_or_else(|| panic!("no state saved at the hour's end: {err}"));
    assert_eq!(state.cut, cut);
    // The WAL holds only the open hour: the first hour's file was moved out.
    let names = wal_names(&store);
    assert_eq!(names.len(), 1, "{names:?}: {err}");
    assert!(names[0] >= format!("{:019}", hour_s as u64 * 1_000_000_000));
    assert_eq!(std::fs::read_dir(d.join("archive")).unwrap().count(), 1);
    // The run says what it wrote over both files.
    let written: u64 = std::fs::read_dir(d.join("archive"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .chain(names.iter().map(|n| store.join("wal").join(n)))
        .map(|p| std::fs::metadata(p).unwrap().len())
        .sum();
    assert!(
        err.contains(&format!(" ({written} bytes) in ")),
        "{written}: {err}"
    );

    // A second run, killed; a third, stopped: each starts from the saved state.
    let mut second = faked_run(&d, &lib, offset, &[]);
    live::wait_until_started(&mut second, || wal_names(&store).len() == 2);
    std::thread::sleep(Duration::from_secs(2));
    second.kill().unwrap();
    let err = String::from_utf8_lossy(&second.wait_with_output().unwrap().stderr).into_owned();
    assert!(err.contains("from the state saved at window"), "{err}");
    let third = faked_run(&d, &lib, offset, &["--duration", "3"]);
    let err = finish(third);
    assert!(err.contains("from the state saved at window"), "{err}");
    d.ritma(&["verify", "s", "--trust-embedded-key"])
        .output()
        .success();
    // The kept WAL sealed again gives the store; all of the input, archived and kept,
    // replayed into a new store gives it too, byte for byte.
    d.ritma(&["replay", "--wal", "--out", "s"])
        .output()
        .success();
    let mut input: Vec<PathBuf> = std::fs::read_dir(d.join("archive"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    input.sort();
    input.extend(wal_names(&store).iter().map(|n| store.join("wal").join(n)));
    let key = store.join("_meta/keys/signing.key");
    let mut args = vec!["replay".to_owned()];
    args.extend(input.iter().map(|p| p.display().to_string()));
    args.extend([
        "--out".into(),
        "r".into(),
        "--key".into(),
        key.display().to_string(),
        "--workers".into(),
        "2".into(),
    ]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    d.ritma(&args).output().success();
    let sealed = |root: &Path| {
        let mut t = tree(root);
        t.retain(|p, _| !p.starts_with("wal") && !p.ends_with("signing.key"));
        t
    };
    let (live_files, replayed) = (sealed(&store), sealed(&d.join("r")));
    assert_eq!(
        live_files.keys().collect::<Vec<_>>(),
        replayed.keys().collect::<Vec<_>>()
    );
    for (p, b) in &live_files {
        assert!(
            replayed[p] == *b,
            "{} differs from the replay of the whole input",
            p.display()
        );
    }
}

/// A live node down for over two hours (its wall clock moved on between runs): the restart
/// seals no window of the downtime but each hour's last (so every hour keeps its seal), its
/// first window records the restart, and the store verifies and is its WAL sealed again.
#[test]
fn a_live_restart_after_hours_down_seals_only_each_hours_last_window_between() {
    let Some((lib, _)) =
        shifted_clock("a_live_restart_after_hours_down_seals_only_each_hours_last_window_between")
    else {
        return;
    };
    use ritma_schemas::records::{HealthKind, HealthRecord};
    let d = Dir::new();
    let store = d.join("s");
    finish(faked_run(&d, &lib, 0, &["--duration", "3"]));
    let windows = |store: &Path| -> Vec<(u64, bool, bool)> {
        util::window_leaves(store)
            .into_iter()
            .map(|(r, leaves)| {
                let restart = leaves.iter().any(|l| {
                    HealthRecord::decode(l).is_ok_and(|h| h.kind == HealthKind::CaptureStarted)
                });
                let holds = r.event_count > 0 || r.health_count > 0 || !r.lost.is_empty();
                (r.window, holds, restart)
            })
            .collect()
    };
    let last_before = windows(&store).last().unwrap().0;
    // 2 h 10 min later.
    let err = finish(faked_run(&d, &lib, 7_800, &["--duration", "3"]));
    d.ritma(&["verify", "s", "--trust-embedded-key"])
        .output()
        .success();
    let after: Vec<(u64, bool, bool)> = windows(&store)
        .into_iter()
        .filter(|(w, _, _)| *w > last_before)
        .collect();
    let restart = after
        .iter()
        .find(|(_, _, r)| *r)
        .unwrap_or_else(|| panic!("no restart recorded: {err}"))
        .0;
    let per_hour = 3_600_000_000_000 / live::WINDOW_LEN_NS;
    let hour_ends: Vec<u64> = (last_before + 1..restart)
        .filter(|w| (w + 1) % per_hour == 0)
        .collect();
    assert!((2..=3).contains(&hour_ends.len()), "{hour_ends:?}");
    let between: Vec<(u64, bool, bool)> = after
        .iter()
        .copied()
        .filter(|(w, _, _)| *w < restart)
        .collect();
    assert_eq!(
        between,
        hour_ends
            .iter()
            .map(|w| (*w, false, false))
            .collect::<Vec<_>>(),
        "between the runs, only the hours' last windows, holding nothing"
    );
    // From the restart on, the second run's windows, one after another (no flood before).
    let second: Vec<u64> = after
        .iter()
        .map(|x| x.0)
        .filter(|w| *w >= restart)
        .collect();
    assert_eq!(
        second,
        (restart..restart + second.len() as u64).collect::<Vec<_>>()
    );
    assert!(second.len() < 30, "{second:?}");
    for end in &hour_ends {
        assert!(store
            .join(WindowPaths::new(*end, live::WINDOW_LEN_NS).hour_seal())
            .is_file());
    }
    // The WAL, both runs, sealed again gives the store byte for byte.
    d.ritma(&["replay", "--wal", "--out", "s"])
        .output()
        .success();
}

#[test]
fn a_live_run_deletes_its_aged_hours_as_it_goes_and_restarts_after() {
    let Some((lib, now)) =
        shifted_clock("a_live_run_deletes_its_aged_hours_as_it_goes_and_restarts_after")
    else {
        return;
    };
    let d = Dir::new();
    // 20 s before an hour ends to 9 s into the next: the hour before is 9 s old at the end.
    let hour_s = (now / 3600 + 3) * 3600;
    let offset = hour_s - 20 - now;
    let err = finish(faked_run(
        &d,
        &lib,
        offset,
        &["--duration", "29", "--keep", "5s"],
    ));
    let store = d.join("s");
    let cut = (hour_s as u64) * 1_000_000_000 / live::WINDOW_LEN_NS;
    let hour_dir = store.join(WindowPaths::new(cut - 1, live::WINDOW_LEN_NS).hour_dir);
    assert!(
        hour_dir.join("proofs/deleted.cbor").exists() && !hour_dir.join("micro").exists(),
        "the hour before is deleted: {err}"
    );
    assert!(err.contains("retention deleted hour"), "{err}");
    d.ritma(&["verify", "s", "--trust-embedded-key"])
        .output()
        .success();
    // Thinned, the store is continued from the state saved at the deleted hour's end.
    let err = finish(faked_run(
        &d,
        &lib,
        offset,
        &["--duration", "3", "--keep", "5s"],
    ));
    assert!(err.contains("from the state saved at window"), "{err}");
    d.ritma(&["verify", "s", "--trust-embedded-key"])
        .output()
        .success();
    d.ritma(&["replay", "--wal", "--out", "s"])
        .output()
        .success();
}

/// `ritma run --out s --node NODE --duration SECS` in `d`, which must succeed; its stderr.
fn timed_run(d: &Dir, node: &str, secs: &str) -> String {
    let out = d
        .ritma(&["run", "--out", "s", "--node", node, "--duration", secs])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "ritma run failed: {err}");
    err
}

/// A file-writing loop (each round an open, a write and a close), killed when dropped,
/// so a failing test leaves none behind.
struct FileLoad(std::process::Child);

impl FileLoad {
    fn start(dir: &Path) -> Self {
        std::fs::create_dir_all(dir).unwrap();
        let child = Command::new("sh")
            .args(["-c", "while :; do echo x > f; done"])
            .current_dir(dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        FileLoad(child)
    }
}

impl Drop for FileLoad {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn a_restart_sealing_a_long_wal_under_load_reads_the_new_frames_back_from_the_wal() {
    let test = "a_restart_sealing_a_long_wal_under_load_reads_the_new_frames_back_from_the_wal";
    if live::skip_without_root(test) {
        return;
    }
    let d = Dir::new();
    let load = FileLoad::start(&d.join("load"));
    let run = |secs: &str| timed_run(&d, "busy", secs);
    run("8");
    // The restart seals the first run's WAL again while the capture goes on under load:
    // the frames it writes meanwhile outgrow the hand-off, and come back from the WAL.
    let err = run("8");
    drop(load);
    assert!(err.contains("sealing 1 WAL file(s) again first"), "{err}");
    assert!(err.contains("reading the WAL back from"), "{err}");
    d.ritma(&["verify", "s", "--trust-embedded-key"])
        .output()
        .success();
    // Every frame was fed once, in order: the WAL sealed again gives the store.
    let sealed = |root: &Path| {
        let mut t = tree(root);
        t.retain(|p, _| !p.starts_with("wal"));
        t
    };
    let before = sealed(&d.join("s"));
    d.ritma(&["replay", "--wal", "--out", "s"])
        .output()
        .success();
    // And so does the WAL replayed into a new store.
    let store = d.join("s");
    let key = store.join("_meta/keys/signing.key");
    let mut args = vec!["replay".to_owned()];
    args.extend(
        wal_names(&store)
            .iter()
            .map(|n| store.join("wal").join(n).display().to_string()),
    );
    args.extend([
        "--out".into(),
        "r".into(),
        "--key".into(),
        key.display().to_string(),
    ]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    d.ritma(&args).output().success();
    let mut replayed = sealed(&d.join("r"));
    replayed.retain(|p, _| !p.ends_with("signing.key"));
    for (name, after) in [
        ("the WAL sealed again", sealed(&store)),
        ("a new store", replayed),
    ] {
        let mut before = before.clone();
        before.retain(|p, _| !p.ends_with("signing.key"));
        let mut after = after;
        after.retain(|p, _| !p.ends_with("signing.key"));
        assert_eq!(
            before.keys().collect::<Vec<_>>(),
            after.keys().collect::<Vec<_>>(),
            "{name}"
        );
        for (p, b) in &before {
            assert!(after[p] == *b, "{} differs in {name}", p.display());
        }
    }
}

/// The loss frames of the WAL file `path`, in order.
fn wal_losses(path: &Path) -> Vec<(ritma_schemas::records::LossReason, u64)> {
    let mut reader = ritma_sources::trace::TraceReader::open(path).unwrap();
    let mut out = Vec::new();
    while let Some(item) = reader.next_item().unwrap() {
        if let ritma_sources::trace::TraceItem::Loss { reason, count, .. } = item {
            out.push((reason, count));
        }
    }
    out
}

/// The events of the WAL file `path` that came from the ring buffer (not the process
/// snapshot's `present` events).
fn wal_ring_events(path: &Path) -> u64 {
    let mut reader = ritma_sources::trace::TraceReader::open(path).unwrap();
    let mut n = 0;
    while let Some(item) = reader.next_item().unwrap() {
        if let ritma_sources::trace::TraceItem::Batch { events, .. } = item {
            n += events
                .iter()
                .filter(|e| !matches!(e.body, ritma_sources::raw::RawBody::Present { .. }))
                .count() as u64;
        }
    }
    n
}

/// The in_flight_at_stop loss sealed in the store's window records, in total.
fn sealed_in_flight(store: &Path) -> u64 {
    tree(&store.join("windows"))
        .into_iter()
        .filter(|(rel, _)| {
            rel.to_string_lossy().contains("/micro/")
                && rel.extension().is_some_and(|e| e == "cbor")
        })
        .flat_map(|(_, bytes)| WindowRecord::decode(&bytes).unwrap().lost)
        .filter(|(r, _)| *r == ritma_schemas::records::LossReason::InFlightAtStop)
        .map(|(_, n)| n)
        .sum()
}

#[test]
fn a_run_killed_under_load_has_its_events_in_flight_counted_by_the_next_run() {
    let test = "a_run_killed_under_load_has_its_events_in_flight_counted_by_the_next_run";
    if live::skip_without_root(test) {
        return;
    }
    use ritma_schemas::records::LossReason::InFlightAtStop;
    let d = Dir::new();
    let store = d.join("s");
    let load = FileLoad::start(&d.join("load"));
    let mut first = d
        .ritma(&["run", "--out", "s", "--node", "killed"])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    live::wait_until_started(&mut first, || !wal_names(&store).is_empty());
    std::thread::sleep(Duration::from_secs(3));
    // SIGKILL: a batch being gathered (up to 200 ms of events) and the ring buffer's
    // contents are lost with the process.
    first.kill().unwrap();
    first.wait().unwrap();
    // What its sensor produced, as its pinned counters say.
    let id = blake3::hash(store.canonicalize().unwrap().as_os_str().as_encoded_bytes());
    let produced = ritma_ebpf::pinned::counts_in(&ritma_ebpf::pinned::dir_for(&id.to_hex()[..32]))
        .unwrap()
        .expect("a killed run leaves its counters pinned")
        .produced;
    let run = |secs: &str| timed_run(&d, "killed", secs);
    let err = run("2");
    drop(load);
    assert!(err.contains("was killed with"), "{err}");
    let names = wal_names(&store);
    assert_eq!(names.len(), 2, "{names:?}");
    // The second run's WAL says it first: one loss frame, right after its run frame.
    let second = wal_losses(&store.join("wal").join(&names[1]));
    let in_flight: Vec<u64> = second
        .iter()
        .filter(|(r, _)| *r == InFlightAtStop)
        .map(|(_, n)| *n)
        .collect();
    assert_eq!(in_flight.len(), 1, "{second:?}");
    assert!(in_flight[0] > 0);
    assert_eq!(second[0], (InFlightAtStop, in_flight[0]), "{second:?}");
    assert!(
        err.contains(&format!("killed with {} events in flight", in_flight[0])),
        "{err}"
    );
    // The first run's own WAL counted nothing of the kind: it could not. What it holds
    // (events from the ring buffer, and the kernel's drops and undecodable records as
    // loss) plus the count is what its sensor produced, give or take the one frame that
    // may be written but not yet accounted when the kill came (counted in flight too).
    let first_wal = store.join("wal").join(&names[0]);
    assert!(wal_losses(&first_wal)
        .iter()
        .all(|(r, _)| *r != InFlightAtStop));
    let held = wal_ring_events(&first_wal)
        + wal_losses(&first_wal)
            .iter()
            .filter(|(r, _)| {
                use ritma_schemas::records::LossReason::*;
                matches!(r, KernelRingbufFull | QueueShed | DecodeError)
            })
            .map(|(_, n)| n)
            .sum::<u64>();
    let missing = produced - held;
    assert!(
        in_flight[0] >= missing && in_flight[0] - missing <= 8192,
        "in flight {}, produced {produced}, the WAL holds {held}",
        in_flight[0]
    );
    // A clean stop leaves nothing in flight: the next run counts none.
    let err = run("1");
    assert!(!err.contains("in flight"), "{err}");
    let names = wal_names(&store);
    assert!(wal_losses(&store.join("wal").join(&names[2]))
        .iter()
        .all(|(r, _)| *r != InFlightAtStop));
    // Sealed once, in a window record beside the restart it happened at (the window
    // holding the second run's capture_started), and the store verifies.
    assert_eq!(sealed_in_flight(&store), in_flight[0]);
    use ritma_schemas::records::{HealthKind, HealthRecord};
    let holding: Vec<bool> = util::window_leaves(&store)
        .into_iter()
        .filter(|(r, _)| r.lost.iter().any(|(x, _)| *x == InFlightAtStop))
        .map(|(_, leaves)| {
            leaves.iter().any(|l| {
                HealthRecord::decode(l).is_ok_and(|h| h.kind == HealthKind::CaptureStarted)
            })
        })
        .collect();
    assert_eq!(holding, vec![true]);
    d.ritma(&["verify", "s", "--trust-embedded-key"])
        .output()
        .success();
}
