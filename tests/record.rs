//! `ritma record`: live capture, as root, into a trace that replays and verifies.

#[allow(dead_code)]
mod util;

use ritma_schemas::records::LossReason;
use ritma_sources::raw::{RawBody, RawEvent};
use ritma_sources::trace::{TraceItem, TraceReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use util::{Dir, OutputExt};

const WINDOW_LEN_NS: u64 = 1_000_000_000;

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

    let (key, vkey) = d.signing_key("rec-test");
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
