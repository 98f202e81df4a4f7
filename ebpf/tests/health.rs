//! Hook liveness: the sensor's own calls beat every hook it can check; a program whose
//! link is removed falls silent, is found by `silent_programs` and comes back with
//! `reattach`, capturing again (root only; with CI=true a non-root run fails, otherwise
//! it skips with a reason).

use std::time::{Duration, Instant};

use ritma_ebpf::{HookMonitor, Sensor, SensorConfig};
use ritma_sources::raw::{RawBody, RawEvent};

mod common;
use common::live_allowed;

/// The kernel's id of the loaded program named `name` (its name is at most 15 bytes).
fn program_id(name: &str) -> u32 {
    aya::programs::loaded_programs()
        .filter_map(Result::ok)
        .filter(|p| p.name_as_str() == Some(name))
        .map(|p| p.id())
        .max()
        .unwrap_or_else(|| panic!("no loaded program {name}"))
}

/// Removes, as an attacker who made this process close a descriptor would, every BPF
/// link of program `prog_id` this process holds: the descriptor is replaced by /dev/null
/// (dup2), so the link is released and the number stays valid for its owner.
fn remove_links_of(prog_id: u32) -> usize {
    let null = std::fs::File::open("/dev/null").unwrap();
    let mut removed = 0;
    for entry in std::fs::read_dir("/proc/self/fd").unwrap() {
        let fd: i32 = entry
            .unwrap()
            .file_name()
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        let info = std::fs::read_to_string(format!("/proc/self/fdinfo/{fd}")).unwrap_or_default();
        let is_link = std::fs::read_link(format!("/proc/self/fd/{fd}"))
            .is_ok_and(|t| t.to_string_lossy() == "anon_inode:bpf_link");
        let of_prog = info.lines().any(|l| {
            l.split_whitespace().collect::<Vec<_>>() == ["prog_id:", &prog_id.to_string()]
        });
        if is_link && of_prog {
            use std::os::fd::AsRawFd;
            // SAFETY: both descriptors are open; dup2 replaces fd atomically.
            assert!(unsafe { libc::dup2(null.as_raw_fd(), fd) } == fd);
            removed += 1;
        }
    }
    removed
}

/// Opens `path` (missing) in a child process; returns its pid.
fn child_opens(path: &str) -> u32 {
    let mut c = std::process::Command::new("/bin/cat")
        .arg(path)
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let pid = c.id();
    c.wait().unwrap();
    pid
}

/// How many opens of `path` by `pid` the sensor reports: polled until one is seen (at
/// most 3 s), then 300 ms more for any copy.
fn opens_reported(sensor: &mut Sensor, pid: u32, path: &str) -> usize {
    let mut deadline = Instant::now() + Duration::from_secs(3);
    let mut events: Vec<RawEvent> = Vec::new();
    let mut seen = 0;
    while Instant::now() < deadline {
        events.clear();
        sensor.poll(Duration::from_millis(50), &mut events).unwrap();
        let n = events
            .iter()
            .filter(|e| {
                e.task.pid == pid
                    && matches!(&e.body, RawBody::Open { path: p, .. } if p == path.as_bytes())
            })
            .count();
        if seen == 0 && n > 0 {
            deadline = Instant::now() + Duration::from_millis(300);
        }
        seen += n;
    }
    seen
}

#[test]
fn a_removed_link_falls_silent_and_is_attached_again() {
    if !live_allowed("a_removed_link_falls_silent_and_is_attached_again") {
        return;
    }
    let mut sensor = Sensor::start(SensorConfig::default()).unwrap();
    // Every checkable hook beats at the start.
    assert_eq!(sensor.silent_programs().unwrap(), Vec::<&str>::new());

    let token = format!("/nonexistent-ritma-health-{}", std::process::id());
    let before = format!("{token}-before");
    let pid = child_opens(&before);
    assert_eq!(
        opens_reported(&mut sensor, pid, &before),
        1,
        "the open hook works at first"
    );

    // The open's exit program loses its link: it is silent, and nothing else is.
    assert!(remove_links_of(program_id("exit_openat")) >= 1);
    assert_eq!(sensor.silent_programs().unwrap(), vec!["exit_openat"]);
    let during = format!("{token}-during");
    let pid = child_opens(&during);
    assert_eq!(
        opens_reported(&mut sensor, pid, &during),
        0,
        "a silent hook reports nothing"
    );

    sensor.reattach("exit_openat").unwrap();
    assert_eq!(sensor.silent_programs().unwrap(), Vec::<&str>::new());
    let after = format!("{token}-after");
    let pid = child_opens(&after);
    // Once, not twice: the old link is gone for good.
    assert_eq!(
        opens_reported(&mut sensor, pid, &after),
        1,
        "the open hook works again, once"
    );

    // The monitor finds the same silence on its own, attaches the program again and
    // counts the opens the gap cost from the enter program's stashes.
    let mut monitor = HookMonitor::new(&sensor).unwrap();
    assert_eq!(monitor.check(&mut sensor).unwrap(), Vec::new());
    assert!(remove_links_of(program_id("exit_openat")) >= 1);
    for i in 0..5 {
        child_opens(&format!("{token}-gap-{i}"));
    }
    let gaps = monitor.check(&mut sensor).unwrap();
    assert_eq!(gaps.len(), 1, "{gaps:?}");
    let gap = &gaps[0];
    assert_eq!(gap.program, "exit_openat");
    let reattached = *gap.reattached.as_ref().unwrap();
    assert!(gap.detected_mono_ns <= reattached);
    // Each cat opens its libraries too; other processes on the host may open files.
    let lost = gap.lost.expect("the enter program counted the gap");
    assert!(lost >= 5, "{lost} opens counted lost, at least 5 were made");
    let later = format!("{token}-later");
    let pid = child_opens(&later);
    assert_eq!(opens_reported(&mut sensor, pid, &later), 1);
    assert_eq!(monitor.check(&mut sensor).unwrap(), Vec::new());
}
