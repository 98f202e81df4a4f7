//! `ritma record` (live capture, as root) and loss frames through `ritma replay`.

#[allow(dead_code)]
mod util;

use ritma_schemas::records::{LossReason, RunMeta};
use ritma_sources::raw::{RawBody, RawEvent, Task};
use ritma_sources::trace::{TraceItem, TraceReader, TraceWriter};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use util::{tree, window_leaves, Dir, OutputExt};

const NODE: &str = "edge-1";
const MS: u64 = 1_000_000;
const WINDOW_LEN_NS: u64 = 1_000 * MS;
/// The trace's first window (window 800 of its hour, so no hour completes).
const W0: u64 = 1_700_000_000;
const MONO_AT_W0: u64 = 5_000 * MS;

fn run_meta() -> RunMeta {
    RunMeta {
        node: NODE.into(),
        boot_id: [7; 16],
        sensor_version: "record-test".into(),
        config_digest: [3; 32],
        window_len_ns: WINDOW_LEN_NS,
        wall_minus_mono_ns: (W0 * WINDOW_LEN_NS - MONO_AT_W0) as i64,
        first_seq: 0,
        started_wall_ns: W0 * WINDOW_LEN_NS,
    }
}

/// An open at `ms` after W0's start.
fn raw_event(seq: u64, ms: u64) -> RawEvent {
    RawEvent {
        seq,
        mono_ns: MONO_AT_W0 + ms * MS,
        task: Task {
            pid: 100,
            tid: 100,
            ppid: 1,
            start_ns: 1_000,
            comm: b"worker".to_vec(),
            ..Task::default()
        },
        body: RawBody::Open {
            path: format!("/data/f{seq}").into_bytes(),
            flags: 0,
            mode: 0,
            result: 3,
        },
    }
}

/// A window's number after W0, its `lost` and its event count.
type WindowLoss = (u64, Vec<(LossReason, u64)>, u64);

/// `ritma keys init` for NODE in `keys`; returns (private key, verifier key) paths.
fn keys(d: &Dir, node: &str) -> (String, String) {
    d.ritma(&["keys", "init", "--out", "keys", "--node", node])
        .output()
        .success();
    let key = |f: &str| {
        d.join(&format!("keys/_meta/keys/{f}"))
            .display()
            .to_string()
    };
    (key("signing.key"), key("signing.vkey"))
}

/// Loss frames are sealed in the window where the run's next event is placed (the
/// oldest open one, like a seq gap), under their own reason; a trailing loss frame in
/// the oldest window still open at the end; `verify` accepts the store, and the store
/// is the same for any number of workers.
#[test]
fn loss_frames_are_sealed_under_their_reason() {
    let d = Dir::new();
    let trace = d.join("loss.rtrace");
    let mut w = TraceWriter::create(&trace).unwrap();
    let run = w.add_run(&run_meta()).unwrap();
    // Before any event: sealed with the first event, in W0.
    w.append_loss(run, LossReason::DecodeError, 1).unwrap();
    w.append_batch(run, &[raw_event(0, 100), raw_event(1, 1_100)])
        .unwrap();
    // W0 closed at 1100 ms: the oldest open window is W0 + 1, where the next event goes.
    w.append_loss(run, LossReason::KernelRingbufFull, 5)
        .unwrap();
    w.append_loss(run, LossReason::QueueShed, 1).unwrap();
    w.append_batch(run, &[raw_event(2, 1_500), raw_event(3, 2_500)])
        .unwrap();
    // After the last event: the oldest window still open, W0 + 2.
    w.append_loss(run, LossReason::QueueShed, 2).unwrap();
    drop(w);

    let (key, vkey) = keys(&d, NODE);
    let mut stores = Vec::new();
    for workers in ["1", "3"] {
        let out = format!("s{workers}");
        let err = d
            .ritma(&[
                "replay",
                "loss.rtrace",
                "--out",
                &out,
                "--workers",
                workers,
                "--key",
                &key,
            ])
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&err.stderr);
        assert!(err.status.success(), "{stderr}");
        assert!(
            stderr.contains("0 events lost to corrupt trace frames, 9 recorded as lost"),
            "{stderr}"
        );
        let verified = d
            .ritma(&["verify", &out, "--key", &vkey])
            .output()
            .success();
        assert!(
            verified.starts_with("OK edge-1: 3 windows") && verified.contains("4 events, 9 lost"),
            "{verified}"
        );
        stores.push(tree(&d.join(&out)));
        let lost: Vec<WindowLoss> = window_leaves(&d.join(&out))
            .into_iter()
            .map(|(r, _)| (r.window - W0, r.lost, r.event_count))
            .collect();
        assert_eq!(
            lost,
            vec![
                (0, vec![(LossReason::DecodeError, 1)], 1),
                (
                    1,
                    vec![
                        (LossReason::KernelRingbufFull, 5),
                        (LossReason::QueueShed, 1)
                    ],
                    2
                ),
                (2, vec![(LossReason::QueueShed, 2)], 1),
            ]
        );
    }
    assert!(
        stores[0] == stores[1],
        "the store differs between 1 and 3 workers"
    );
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// Skips (returns true) without root, unless CI=true, where that is a failure.
fn skip_without_root(test: &str) -> bool {
    if is_root() {
        return false;
    }
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!("{test} needs root (CI=true: a skip is a failure)");
    }
    eprintln!("skipping {test}: live capture needs root");
    true
}

/// A random hex token from the kernel's CSPRNG.
fn token() -> String {
    let mut b = [0u8; 8];
    use std::io::Read;
    std::fs::File::open("/dev/urandom")
        .unwrap()
        .read_exact(&mut b)
        .unwrap();
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Every event of a trace, checking the cgroups frames name ids before they are used.
fn read_events(path: &Path) -> (Vec<RawEvent>, Vec<(LossReason, u64)>) {
    let mut r = TraceReader::open(path).unwrap();
    let (mut events, mut lost, mut runs) = (Vec::new(), Vec::new(), 0);
    while let Some(item) = r.next_item().unwrap() {
        match item {
            TraceItem::Run { meta, .. } => {
                runs += 1;
                assert_eq!(meta.node, "rec-test");
                assert_eq!((meta.window_len_ns, meta.first_seq), (WINDOW_LEN_NS, 0));
                let boot = std::fs::read_to_string("/proc/sys/kernel/random/boot_id").unwrap();
                let hex: String = meta.boot_id.iter().map(|b| format!("{b:02x}")).collect();
                assert_eq!(hex, boot.trim().replace('-', ""));
            }
            TraceItem::Batch { events: e, .. } => {
                assert!(e.len() <= 8192);
                events.extend(e);
            }
            TraceItem::Cgroups { entries, .. } => {
                assert!(entries.iter().all(|(_, p)| p.starts_with(b"/")));
            }
            TraceItem::Loss { reason, count, .. } => lost.push((reason, count)),
        }
    }
    assert_eq!(runs, 1);
    (events, lost)
}

#[test]
fn record_captures_a_live_workload_that_replays_and_verifies() {
    if skip_without_root("record_captures_a_live_workload_that_replays_and_verifies") {
        return;
    }
    let d = Dir::new();
    let trace = d.join("live.rtrace");
    let marker = format!("ritma-marker-{}", token());
    let target = format!("/tmp/ritma-record-test-{}", token());
    let mut child = Command::new(env!("CARGO_BIN_EXE_ritma"))
        .args([
            "record",
            "--out",
            "live.rtrace",
            "--duration",
            "3",
            "--node",
            "rec-test",
        ])
        .current_dir(d.path())
        .env_remove("RITMA_NODE_ID")
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // The trace file appears once the sensor is attached.
    let started = Instant::now();
    while !trace.exists() {
        if let Some(status) = child.try_wait().unwrap() {
            let out = child.wait_with_output().unwrap();
            panic!(
                "ritma record exited early ({status}): {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "no trace after 60 s"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let mut pids = Vec::new();
    for _ in 0..3 {
        let script = format!("echo {marker} > {target}");
        let mut sh = Command::new("/bin/sh")
            .args(["-c", &script])
            .spawn()
            .unwrap();
        pids.push(sh.id());
        assert!(sh.wait().unwrap().success());
        std::thread::sleep(Duration::from_millis(100));
    }
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "ritma record failed: {stderr}");
    assert!(
        stderr.starts_with("ritma: recorded ") && stderr.contains(" lost "),
        "{stderr}"
    );
    let _ = std::fs::remove_file(&target);

    let (events, _lost) = read_events(&trace);
    assert!(!events.is_empty());
    for (i, e) in events.iter().enumerate() {
        assert_eq!(e.seq, i as u64, "seqs count from 0 in read order");
    }
    for pid in &pids {
        let exec = events.iter().find(|e| {
            e.task.pid == *pid
                && matches!(&e.body, RawBody::Exec { argv, .. }
                    if argv.iter().any(|a| a.windows(marker.len()).any(|w| w == marker.as_bytes())))
        });
        assert!(
            exec.is_some(),
            "no exec of pid {pid} with the marker in its argv"
        );
        let open = events.iter().find(|e| {
            e.task.pid == *pid
                && matches!(&e.body, RawBody::Open { path, result, .. }
                    if path == target.as_bytes() && *result >= 0)
        });
        assert!(open.is_some(), "no open of {target} by pid {pid}");
    }

    let (key, vkey) = keys(&d, "rec-test");
    d.ritma(&["replay", "live.rtrace", "--out", "s", "--key", &key])
        .output()
        .success();
    let verified = d.ritma(&["verify", "s", "--key", &vkey]).output().success();
    assert!(verified.starts_with("OK rec-test: "), "{verified}");
    assert!(
        verified.contains(&format!("{} events", events.len())),
        "{verified}"
    );
}
