//! `ritma run`: live capture sealed into a store as windows close, as root. The store
//! verifies, and replaying its WAL gives the same store byte for byte.

#[allow(dead_code)]
mod live;
#[allow(dead_code)]
mod util;

use live::{
    assert_workload_captured, marker_workload, read_events, skip_without_root, token,
    wait_until_started, WINDOW_LEN_NS,
};
use ritma_schemas::records::AnyRecord;
use ritma_sources::raw::RawBody;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use util::{tree, window_leaves, Dir, OutputExt};

/// `ritma run --out s --node NODE` in `d` with `extra` arguments, stderr piped.
fn spawn_run(d: &Dir, node: &str, extra: &[&str]) -> Child {
    Command::new(env!("CARGO_BIN_EXE_ritma"))
        .args(["run", "--out", "s", "--node", node])
        // WAL hours a run trims (one that crosses an hour) are kept for the replays here.
        .args(["--wal-archive", "archive"])
        .args(extra)
        .current_dir(d.path())
        .env_remove("RITMA_NODE_ID")
        .env_remove("RITMA_OUT")
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// The store's first WAL file, once it exists (a run's only one, unless it crossed an hour).
fn wal_of(store: &Path) -> Option<PathBuf> {
    wal_files(store).into_iter().next()
}

/// The store's files without its WAL and private key (what a replay does not write).
fn sealed_files(store: &Path) -> std::collections::BTreeMap<PathBuf, Vec<u8>> {
    let mut t = tree(store);
    t.retain(|p, _| !p.starts_with("wal") && !p.ends_with("signing.key"));
    t
}

/// `ritma replay WAL… --key` of store `s`'s own key, with 1 and with 2 workers, gives
/// exactly the store's sealed files.
fn assert_wal_replays_to_the_store(d: &Dir, wal: &[PathBuf]) {
    let key = d.join("s/_meta/keys/signing.key");
    let live = sealed_files(&d.join("s"));
    for workers in ["1", "2"] {
        let out = format!("r{workers}");
        let mut args: Vec<&str> = vec!["replay"];
        args.extend(wal.iter().map(|p| p.to_str().unwrap()));
        args.extend([
            "--out",
            &out,
            "--workers",
            workers,
            "--key",
            key.to_str().unwrap(),
        ]);
        d.ritma(&args).output().success();
        let replayed = sealed_files(&d.join(&out));
        assert_eq!(
            live.keys().collect::<Vec<_>>(),
            replayed.keys().collect::<Vec<_>>(),
            "the same files ({workers} workers)"
        );
        for (path, bytes) in &live {
            assert!(
                replayed[path] == *bytes,
                "{} differs after replay with {workers} workers",
                path.display()
            );
        }
    }
}

/// Verifies the store against its own vkey; returns verify's report.
fn verify(d: &Dir) -> String {
    let vkey = std::fs::read_to_string(d.join("s/_meta/keys/signing.vkey")).unwrap();
    d.ritma(&["verify", "s", "--key", vkey.trim()])
        .output()
        .success()
}

/// The argv entries sealed in a store, lossily as text.
fn argv_entries(store: &Path) -> Vec<String> {
    use ritma_schemas::records::DictKind;
    window_leaves(store)
        .iter()
        .flat_map(|(_, leaves)| leaves.iter())
        .filter_map(|l| match AnyRecord::decode(l) {
            Ok(AnyRecord::Dict(d)) if d.kind == DictKind::Argv => {
                Some(String::from_utf8_lossy(&d.value).into_owned())
            }
            _ => None,
        })
        .collect()
}

/// `pid` fired secrets_read (sealed as a cone instance whose last event is its open),
/// that window is sealed Thick, and its argv (naming `marker`) is kept.
fn assert_trigger_raised(store: &Path, pid: u32, marker: &str) {
    use ritma_schemas::records::CaptureMode;
    let windows = window_leaves(store);
    let records = |leaves: &[Vec<u8>]| -> Vec<AnyRecord> {
        leaves
            .iter()
            .map(|l| AnyRecord::decode(l).unwrap())
            .collect()
    };
    let fired_in = windows.iter().find(|(_, leaves)| {
        let r = records(leaves);
        let actor_of_pid = r.iter().find_map(|x| match x {
            AnyRecord::Actor(a) if a.pid == pid => Some(a.actor),
            _ => None,
        });
        r.iter().any(|x| match x {
            AnyRecord::Cone(c) if c.cone_id == "secrets_read" => r.iter().any(|y| {
                matches!(y, AnyRecord::Event(e) if e.seq == c.last_seq && Some(e.actor) == actor_of_pid)
            }),
            _ => false,
        })
    });
    let (record, _) = fired_in.expect("a secrets_read cone instance completed by the cat");
    // Thick, or Full if a kept binary's exec shares the window.
    assert!(record.capture_mode >= CaptureMode::Thick);
    assert!(
        argv_entries(store).iter().any(|a| a.contains(marker)),
        "the cat's argv was not kept"
    );
}

/// The implant (`pid`) was exec'd from /tmp and is not in the baseline: its actor names
/// its hash, its exec names the bytes the CAS keeps, unknown_binary fired on it, and its
/// window was sealed Full; the shell, listed, is hashed and not kept.
fn assert_implant_kept(store: &Path, pid: u32, bytes: &[u8]) {
    use ritma_schemas::records::{CaptureMode, EventType};
    let hash = *blake3::hash(bytes).as_bytes();
    let windows = window_leaves(store);
    let mut found_exec = false;
    for (record, leaves) in &windows {
        let r: Vec<AnyRecord> = leaves
            .iter()
            .map(|l| AnyRecord::decode(l).unwrap())
            .collect();
        let Some(actor) = r.iter().find_map(|x| match x {
            AnyRecord::Actor(a) if a.pid == pid => Some(a.clone()),
            _ => None,
        }) else {
            continue;
        };
        assert_eq!(actor.exe_hash, Some(hash), "the implant's actor record");
        let exec = r.iter().find_map(|x| match x {
            AnyRecord::Event(e) if e.actor == actor.actor && e.event_type == EventType::Exec => {
                Some(e.clone())
            }
            _ => None,
        });
        if let Some(exec) = exec {
            found_exec = true;
            assert_eq!(exec.payload_ref, Some(hash));
            assert_eq!(record.capture_mode, CaptureMode::Full);
            assert!(
                r.iter().any(|x| matches!(x, AnyRecord::Cone(c) if c.cone_id == "unknown_binary" && c.last_seq == exec.seq)),
                "unknown_binary did not fire on the implant's exec"
            );
        }
    }
    assert!(found_exec, "the implant's exec was not sealed");
    let mut kept = Vec::new();
    ritma_sinks::cas::Cas::open(store)
        .unwrap()
        .get(&hash, &mut kept)
        .unwrap();
    assert!(
        kept == bytes,
        "the CAS holds other bytes than the implant's"
    );
    let sh = *blake3::hash(&std::fs::read("/bin/sh").unwrap()).as_bytes();
    let mut sh_named = false;
    for (_, leaves) in &windows {
        for l in leaves {
            match AnyRecord::decode(l).unwrap() {
                AnyRecord::Actor(a) if a.exe_hash == Some(sh) => sh_named = true,
                AnyRecord::Event(e) => {
                    assert_ne!(e.payload_ref, Some(sh), "a listed binary was kept")
                }
                _ => {}
            }
        }
    }
    assert!(sh_named, "no actor record names the shell's hash");
}

#[test]
fn run_seals_a_live_workload_and_its_wal_replays_byte_identically() {
    if skip_without_root("run_seals_a_live_workload_and_its_wal_replays_byte_identically") {
        return;
    }
    let d = Dir::new();
    let store = d.join("s");
    let marker = format!("ritma-marker-{}", token());
    let target = format!("/tmp/ritma-run-test-{}", token());
    // Known binaries: the shell and cat the workload runs; anything else is unknown.
    d.ritma(&["baseline", "--out", "base.b3", "/bin/sh", "/bin/cat"])
        .output()
        .success();
    // An implant: a copy of true made unique, run from /tmp.
    let implant = format!("/tmp/ritma-implant-{}", token());
    let mut implant_bytes = std::fs::read("/bin/true").unwrap();
    implant_bytes.extend_from_slice(marker.as_bytes());
    std::fs::write(&implant, &implant_bytes).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&implant, std::fs::Permissions::from_mode(0o755)).unwrap();
    let mut child = spawn_run(
        &d,
        "run-test",
        &["--duration", "4", "--baseline", "base.b3"],
    );
    wait_until_started(&mut child, || wal_of(&store).is_some());
    let pids = marker_workload(&marker, &target);
    let implant_run = std::process::Command::new(&implant).spawn().unwrap();
    let implant_pid = implant_run.id();
    assert!(implant_run.wait_with_output().unwrap().status.success());
    // A secret read: the secrets_read trigger raises the reader to Thick.
    let cat = std::process::Command::new("/bin/cat")
        .args(["/etc/shadow", &marker])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let cat_pid = cat.id();
    cat.wait_with_output().unwrap();
    let out = child.wait_with_output().unwrap();
    // Removed after the run: a deletion while it runs is the deleted_binary_exec trigger,
    // which would raise this test process and its other children.
    std::fs::remove_file(&implant).unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "ritma run failed: {stderr}");
    assert!(
        stderr.contains("compared with the 2 known ones of base.b3"),
        "{stderr}"
    );
    assert!(
        stderr.contains("created the signing key of node run-test"),
        "{stderr}"
    );
    assert!(stderr.contains("ritma: sealed "), "{stderr}");

    let wal = wal_of(&store).unwrap();
    let (events, lost) = read_events(&wal, "run-test");
    assert_workload_captured(&events, &lost, &pids, &marker, &target);
    // This test was running before the capture: the start's snapshot names it, and its
    // sealed actor record knows its executable.
    let me = std::process::id();
    assert!(
        events
            .iter()
            .any(|e| e.task.pid == me && matches!(e.body, RawBody::Present { .. })),
        "no `present` event of the test process {me}"
    );
    let known_exe = window_leaves(&store).iter().any(|(_, leaves)| {
        leaves.iter().any(|l| {
            matches!(AnyRecord::decode(l), Ok(AnyRecord::Actor(a)) if a.pid == me && a.exe.is_some())
        })
    });
    assert!(known_exe, "the test process's actor record has no exe");
    assert_trigger_raised(&store, cat_pid, &marker);
    // The shells were not triggered: their argv (with the marker) is not kept.
    let sealed_argv = argv_entries(&store);
    assert_eq!(
        sealed_argv.iter().filter(|a| a.contains(&marker)).count(),
        1,
        "only the triggered cat's argv names the marker: {sealed_argv:?}"
    );
    assert_implant_kept(&store, implant_pid, &implant_bytes);
    let report = verify(&d);
    assert!(report.starts_with("OK run-test: "), "{report}");
    assert!(
        report.contains(&format!("{} events", events.len())),
        "{report}"
    );
    // A 4 s run seals every window it spanned, empty or not: at least 4.
    let windows: u64 = report
        .split(": ")
        .nth(1)
        .and_then(|r| r.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap();
    assert!(windows >= 4, "{report}");

    // The WAL replays to the same store, for one worker and for two.
    assert_wal_replays_to_the_store(&d, &[wal]);
}

#[test]
fn sigint_seals_the_open_window_and_exits_cleanly() {
    if skip_without_root("sigint_seals_the_open_window_and_exits_cleanly") {
        return;
    }
    let d = Dir::new();
    let store = d.join("s");
    let marker = format!("ritma-marker-{}", token());
    let target = format!("/tmp/ritma-run-test-{}", token());
    let mut child = spawn_run(&d, "run-int", &[]);
    wait_until_started(&mut child, || wal_of(&store).is_some());
    marker_workload(&marker, &target);
    // SAFETY: kill with a pid of our own child and a valid signal.
    assert_eq!(unsafe { libc::kill(child.id() as i32, libc::SIGINT) }, 0);
    let asked = Instant::now();
    loop {
        if child.try_wait().unwrap().is_some() {
            break;
        }
        assert!(
            asked.elapsed() < Duration::from_secs(30),
            "ritma run did not exit within 30 s of SIGINT"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "ritma run failed: {stderr}");

    // Every event of the WAL is sealed, those of the window open at the signal too.
    let wal = wal_of(&store).unwrap();
    let (events, _) = read_events(&wal, "run-int");
    let report = verify(&d);
    assert!(
        report.contains(&format!("{} events", events.len())),
        "{report}"
    );
    let meta = ritma_sources::trace::scan_runs(&wal).unwrap().remove(0);
    let last = events.last().unwrap();
    let last_window =
        ((last.mono_ns as i128 + meta.wall_minus_mono_ns as i128) as u64) / WINDOW_LEN_NS;
    assert!(
        report.contains(&format!("..={last_window})")),
        "the last event's window {last_window} is the last sealed: {report}"
    );
}

#[test]
fn run_refuses_a_store_with_windows_but_no_wal() {
    let d = Dir::new();
    std::fs::create_dir_all(d.join("s/windows")).unwrap();
    let err = d
        .ritma(&["run", "--out", "s", "--node", "x", "--duration", "1"])
        .output()
        .failure();
    assert!(
        err.contains("holds sealed windows but no WAL: it was not written by `ritma run`"),
        "{err}"
    );
}

#[test]
fn run_refuses_a_wal_of_another_node_and_a_stray_wal_file() {
    let d = Dir::new();
    std::fs::create_dir_all(d.join("s/wal")).unwrap();
    // A trace of node `synth-0` where this store's WAL would be.
    d.ritma(&["synth", "--out", "t.rtrace", "--events", "10"])
        .output()
        .success();
    std::fs::copy(d.join("t.rtrace"), d.join("s/wal/1000.rtrace")).unwrap();
    let err = d
        .ritma(&["run", "--out", "s", "--node", "x", "--duration", "1"])
        .output()
        .failure();
    assert!(
        err.contains("1000.rtrace: a run of node synth-0, but this run is node x"),
        "{err}"
    );
    std::fs::write(d.join("s/wal/notes.txt"), b"x").unwrap();
    let err = d
        .ritma(&["run", "--out", "s", "--node", "synth-0", "--duration", "1"])
        .output()
        .failure();
    assert!(err.contains("notes.txt: not a WAL file name"), "{err}");
}

/// The store's WAL files, kept and archived, in the order they were written (names are
/// start times).
fn wal_files(store: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = [store.join("wal"), store.with_file_name("archive")]
        .iter()
        .flat_map(|dir| {
            std::fs::read_dir(dir)
                .map(|d| d.map(|e| e.unwrap().path()).collect::<Vec<_>>())
                .unwrap_or_default()
        })
        .filter(|p| {
            let name = p.file_name().unwrap().to_string_lossy();
            !name.starts_with('.') && name.ends_with(".rtrace")
        })
        .collect();
    files.sort_by(|a, b| a.file_name().cmp(&b.file_name()));
    files
}

/// What a WAL file holds up to where a kill cut it: (its run, whether any batch or
/// clock frame gave its node a window).
fn wal_run(path: &Path) -> (Option<ritma_schemas::records::RunMeta>, bool) {
    use ritma_sources::trace::{TraceItem, TraceReader};
    let mut r = TraceReader::open(path).unwrap();
    let (mut run, mut timed) = (None, false);
    // A killed run's file ends in a torn frame at worst.
    while let Ok(Some(item)) = r.next_item() {
        match item {
            TraceItem::Run { meta, .. } => run = Some(meta),
            TraceItem::Batch { .. } | TraceItem::Clock { .. } => timed = true,
            _ => {}
        }
    }
    (run, timed)
}

/// Every `.sig` file under the store's windows, with its bytes.
fn signatures(store: &Path) -> std::collections::BTreeMap<PathBuf, Vec<u8>> {
    let mut t = tree(store);
    t.retain(|p, _| p.extension().is_some_and(|x| x == "sig"));
    t
}

#[test]
fn run_killed_at_random_points_and_restarted_is_the_replay_of_its_wal() {
    if skip_without_root("run_killed_at_random_points_and_restarted_is_the_replay_of_its_wal") {
        return;
    }
    use ritma_schemas::records::HealthKind;
    let d = Dir::new();
    let store = d.join("s");
    let seed = u64::from_str_radix(&token(), 16).unwrap();
    eprintln!("kill points seeded with {seed:#x}");
    let mut rng = seed;
    let mut next = move || {
        // SplitMix64: the kill points of a failure can be replayed from the seed.
        rng = rng.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = rng;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    };
    // Activity on the host while the runs come and go: processes, file writes, reads.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let target = format!("/tmp/ritma-kill-test-{}", token());
    let workload = {
        let (stop, target) = (stop.clone(), target.clone());
        std::thread::spawn(move || {
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let script = format!("echo x > {target}; cat {target} > /dev/null");
                let _ = Command::new("/bin/sh").args(["-c", &script]).status();
                std::thread::sleep(Duration::from_millis(50));
            }
        })
    };
    let mut seen_sigs = std::collections::BTreeMap::new();
    const KILLED: usize = 5;
    for round in 0..=KILLED {
        let mut child = spawn_run(
            &d,
            "run-kill",
            if round == KILLED {
                &["--duration", "2"]
            } else {
                &[]
            },
        );
        wait_until_started(&mut child, || wal_files(&store).len() > round);
        if round == KILLED {
            let out = child.wait_with_output().unwrap();
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert!(out.status.success(), "the last run failed: {stderr}");
            assert!(stderr.contains("continuing the store from"), "{stderr}");
            break;
        }
        // From at once (while the earlier WAL is sealed again) to well into capture.
        std::thread::sleep(Duration::from_millis(next() % 2500));
        // One run in the middle stops cleanly (its tail hour indexed): it is continued too.
        let signal = if round == 2 {
            libc::SIGINT
        } else {
            libc::SIGKILL
        };
        // SAFETY: a signal to our own child.
        assert_eq!(unsafe { libc::kill(child.id() as i32, signal) }, 0);
        let out = child.wait_with_output().unwrap();
        if round == 2 {
            assert!(
                out.status.success(),
                "SIGINT: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        // A checkpoint once on disk is never signed again with another root.
        for (path, bytes) in signatures(&store) {
            if let Some(old) = seen_sigs.insert(path.clone(), bytes.clone()) {
                assert!(
                    old == bytes,
                    "{} was signed again differently",
                    path.display()
                );
            }
        }
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    workload.join().unwrap();
    let _ = std::fs::remove_file(&target);
    for (path, bytes) in &seen_sigs {
        assert!(
            std::fs::read(store.join(path)).ok().as_ref() == Some(bytes),
            "{} changed or went after a restart",
            path.display()
        );
    }

    let report = verify(&d);
    assert!(report.starts_with("OK run-kill: "), "{report}");
    // Each run after one whose node had a window says capture stopped and started again.
    let wal = wal_files(&store);
    assert!(wal.len() > KILLED, "a WAL file per run (and hour): {wal:?}");
    let (mut expected, mut timed_before, mut starts) = (0, false, Vec::new());
    for f in &wal {
        let (run, timed) = wal_run(f);
        if let Some(meta) = run {
            expected += timed_before as usize;
            starts.push(meta.started_wall_ns);
        }
        timed_before |= timed;
    }
    let mut health = Vec::new();
    for (_, leaves) in window_leaves(&store) {
        for l in &leaves {
            if let Ok(AnyRecord::Health(h)) = AnyRecord::decode(l) {
                health.push(h);
            }
        }
    }
    let started: Vec<_> = health
        .iter()
        .filter(|h| h.kind == HealthKind::CaptureStarted)
        .collect();
    let stopped = health
        .iter()
        .filter(|h| h.kind == HealthKind::CaptureStopped)
        .count();
    assert_eq!((started.len(), stopped), (expected, expected), "{health:?}");
    assert!(expected >= 1, "no run had a window before the last");
    for h in started {
        assert!(starts.contains(&h.t_wall_ns), "{h:?} is no run's start");
    }

    // The WAL, all its runs, replays to the same store, for one worker and for two.
    assert_wal_replays_to_the_store(&d, &wal);
}

/// GET `path` from `addr` (HTTP/1.0): the status code and the body.
fn http_get(addr: &str, path: &str) -> (u16, String) {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(s, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    (status, body.to_owned())
}

/// The value of the exposition line named `series` (with its labels), if present.
fn metric(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

#[test]
fn metrics_and_health_are_served_while_running() {
    if skip_without_root("metrics_and_health_are_served_while_running") {
        return;
    }
    let d = Dir::new();
    let store = d.join("s");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let addr = format!("127.0.0.1:{port}");
    let mut child = spawn_run(&d, "run-metrics", &["--metrics", &addr]);
    wait_until_started(&mut child, || wal_of(&store).is_some());
    marker_workload(
        &format!("ritma-marker-{}", token()),
        &format!("/tmp/ritma-run-test-{}", token()),
    );
    // Windows seal a second after they close: wait for two, with the workload's events.
    let started = Instant::now();
    let text = loop {
        let (status, text) = http_get(&addr, "/metrics");
        assert_eq!(status, 200, "{text}");
        let sealed = metric(&text, "ritma_windows_sealed_total").unwrap_or(0.0);
        let execs = metric(&text, "ritma_events_total{type=\"exec\"}").unwrap_or(0.0);
        if sealed >= 2.0 && execs >= 1.0 {
            break text;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "no sealed windows or execs in 30 s:\n{text}"
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    for series in [
        "ritma_events_total{type=\"open\"}",
        "ritma_seal_latency_seconds_count",
        "ritma_seal_lag_windows",
        "ritma_resident_memory_bytes",
        "ritma_cas_bytes",
        "ritma_ringbuf_fill_ratio",
    ] {
        assert!(metric(&text, series).is_some(), "{series} in\n{text}");
    }
    assert!(metric(&text, "ritma_resident_memory_bytes").unwrap() > 1e6);
    let fill = metric(&text, "ritma_ringbuf_fill_ratio").unwrap();
    assert!((0.0..=1.0).contains(&fill), "{fill}");
    assert_eq!(http_get(&addr, "/healthz"), (200, "ok\n".to_owned()));
    assert_eq!(http_get(&addr, "/nope").0, 404);
    // SAFETY: kill with a pid of our own child and a valid signal.
    assert_eq!(unsafe { libc::kill(child.id() as i32, libc::SIGINT) }, 0);
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "ritma run failed: {stderr}");
    assert!(
        stderr.contains(&format!("metrics on http://{addr}/metrics")),
        "{stderr}"
    );
    // The counters the endpoint served are the run's: as many events as its WAL holds,
    // at most (the scrape came before the end).
    let (events, _) = read_events(&wal_of(&store).unwrap(), "run-metrics");
    let served: f64 = text
        .lines()
        .filter(|l| l.starts_with("ritma_events_total{"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum();
    assert!(
        served >= 1.0 && served <= events.len() as f64,
        "{served} of {}",
        events.len()
    );
    // A bad address is refused before capture starts.
    let err = d
        .ritma(&[
            "run",
            "--out",
            "s2",
            "--metrics",
            "localhost",
            "--duration",
            "1",
        ])
        .output()
        .failure();
    assert!(
        err.contains("--metrics must be a listen address IP:PORT"),
        "{err}"
    );
}
