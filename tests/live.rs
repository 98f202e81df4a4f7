//! Helpers of the live-capture tests (`ritma record`, `ritma run`), which need root.

use ritma_schemas::records::LossReason;
use ritma_sources::raw::RawEvent;
use ritma_sources::trace::{TraceItem, TraceReader};
use std::path::Path;

pub const WINDOW_LEN_NS: u64 = 1_000_000_000;

pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// Skips (returns true) without root, unless CI=true, where that is a failure.
pub fn skip_without_root(test: &str) -> bool {
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
pub fn token() -> String {
    let mut b = [0u8; 8];
    use std::io::Read;
    std::fs::File::open("/dev/urandom")
        .unwrap()
        .read_exact(&mut b)
        .unwrap();
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Every event of a trace, checking the cgroups frames name ids before they are used.
pub fn read_events(path: &Path, node: &str) -> (Vec<RawEvent>, Vec<(LossReason, u64)>) {
    let mut r = TraceReader::open(path).unwrap();
    let (mut events, mut lost, mut runs) = (Vec::new(), Vec::new(), 0);
    while let Some(item) = r.next_item().unwrap() {
        match item {
            TraceItem::Run { meta, .. } => {
                runs += 1;
                assert_eq!(meta.node, node);
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
            TraceItem::Exes { entries, .. } => {
                assert!(entries.iter().all(|x| (x.dev, x.ino) != (0, 0)));
            }
            TraceItem::Clock { .. } | TraceItem::BlobPart { .. } => {}
            TraceItem::Continue { .. } => panic!("a recorded trace is one file: nothing continues"),
            TraceItem::Health(h) => panic!("no hook was removed, yet the trace says {h:?}"),
        }
    }
    assert_eq!(runs, 1);
    (events, lost)
}

/// Waits until `ready()` (the capture has started), failing if `child` exits first.
pub fn wait_until_started(child: &mut std::process::Child, ready: impl Fn() -> bool) {
    let started = std::time::Instant::now();
    while !ready() {
        if let Some(status) = child.try_wait().unwrap() {
            let mut err = String::new();
            use std::io::Read;
            if let Some(e) = child.stderr.as_mut() {
                e.read_to_string(&mut err).unwrap();
            }
            panic!("ritma exited before capturing ({status}): {err}");
        }
        assert!(
            started.elapsed() < std::time::Duration::from_secs(60),
            "capture did not start within 60 s"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// Three shells that each exec with `marker` in their argv and write it to `target`;
/// returns their pids.
pub fn marker_workload(marker: &str, target: &str) -> Vec<u32> {
    let mut pids = Vec::new();
    for _ in 0..3 {
        let script = format!("echo {marker} > {target}");
        let mut sh = std::process::Command::new("/bin/sh")
            .args(["-c", &script])
            .spawn()
            .unwrap();
        pids.push(sh.id());
        assert!(sh.wait().unwrap().success());
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let _ = std::fs::remove_file(target);
    pids
}

/// Asserts seqs count from 0 and each shell's exec (marker in argv) and open of `target`;
/// a failure names the loss the trace recorded (another load on the machine can fill the
/// ring buffer).
pub fn assert_workload_captured(
    events: &[RawEvent],
    lost: &[(LossReason, u64)],
    pids: &[u32],
    marker: &str,
    target: &str,
) {
    use ritma_sources::raw::RawBody;
    assert!(!events.is_empty());
    for (i, e) in events.iter().enumerate() {
        assert_eq!(e.seq, i as u64, "seqs count from 0 in read order");
    }
    for pid in pids {
        let exec = events.iter().find(|e| {
            e.task.pid == *pid
                && matches!(&e.body, RawBody::Exec { argv, .. }
                    if argv.iter().any(|a| a.windows(marker.len()).any(|w| w == marker.as_bytes())))
        });
        assert!(
            exec.is_some(),
            "no exec of pid {pid} with the marker in its argv (loss recorded: {lost:?})"
        );
        let open = events.iter().find(|e| {
            e.task.pid == *pid
                && matches!(&e.body, RawBody::Open { path, result, .. }
                    if path == target.as_bytes() && *result >= 0)
        });
        assert!(
            open.is_some(),
            "no open of {target} by pid {pid} (loss recorded: {lost:?})"
        );
    }
}
