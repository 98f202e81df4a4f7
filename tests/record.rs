//! `ritma record`: live capture, as root, into a trace that replays and verifies.

#[allow(dead_code)]
mod live;
#[allow(dead_code)]
mod util;

use live::{
    assert_workload_captured, marker_workload, read_events, skip_without_root, token,
    wait_until_started,
};
use std::process::{Command, Stdio};
use util::{Dir, OutputExt};

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
    wait_until_started(&mut child, || trace.exists());
    let pids = marker_workload(&marker, &target);
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "ritma record failed: {stderr}");
    // The summary is the last line; before it may come the syscalls this kernel cannot hook.
    let summary = stderr.lines().last().unwrap_or_default();
    assert!(
        summary.starts_with("ritma: recorded ") && summary.contains(" lost "),
        "{stderr}"
    );
    assert!(
        stderr.lines().count() == 1
            || stderr.starts_with("ritma: this kernel has no tracepoints for "),
        "{stderr}"
    );
    let (events, lost) = read_events(&trace, "rec-test");
    assert_workload_captured(&events, &lost, &pids, &marker, &target);

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
