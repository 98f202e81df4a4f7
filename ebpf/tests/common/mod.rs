//! Shared by the live eBPF tests.

/// Whether live tests may run: root, or else skip with a reason (a failure under CI=true).
pub fn live_allowed(test: &str) -> bool {
    let ci = std::env::var("CI").is_ok_and(|v| v == "true");
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } == 0 {
        return true;
    }
    assert!(
        !ci,
        "{test}: CI=true but not root: live eBPF tests need root (CAP_BPF, CAP_PERFMON, CAP_SYS_ADMIN)"
    );
    eprintln!("skipping {test}: not root (live eBPF tests need root; with CI=true this fails)");
    false
}
