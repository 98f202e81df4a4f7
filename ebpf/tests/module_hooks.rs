//! Module-load attempts on a kernel without init_module/finit_module tracepoints: by default
//! the raw sys_enter/sys_exit stand-ins (which run on every syscall) stay unattached and the
//! calls are listed as unwatched; with `raw_module_hooks` they are attached and both calls
//! are reported. As root; without root they skip with a reason, a failure with `CI=true`.

use std::path::Path;
use std::time::{Duration, Instant};

use ritma_ebpf::programs::Hook;
use ritma_ebpf::{Sensor, SensorConfig};
use ritma_sources::raw::{RawBody, RawEvent};

mod common;
use common::live_allowed;

/// Whether this kernel has the module syscalls' tracepoints (tracefs is mounted by the sensor).
fn module_tracepoints() -> bool {
    ["sys_enter_init_module", "sys_enter_finit_module"]
        .iter()
        .all(|tp| {
            Path::new("/sys/kernel/tracing/events/syscalls")
                .join(tp)
                .exists()
        })
}

/// The pids and errnos of an init_module and a finit_module attempt, each in its own child.
struct Attempts {
    init: libc::pid_t,
    init_errno: i64,
    finit: libc::pid_t,
    finit_errno: i64,
}

/// Runs `call` in a forked child that writes its errno to a pipe; returns (pid, errno).
fn attempt(call: impl FnOnce() -> libc::c_long) -> (libc::pid_t, i64) {
    let mut fds = [0; 2];
    // SAFETY: fds is a valid array of two ints.
    assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
    // SAFETY: the child makes only the syscall and writes, then _exit.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork: {}", std::io::Error::last_os_error());
    if pid == 0 {
        let rc = call();
        let e: i64 = if rc < 0 {
            std::io::Error::last_os_error().raw_os_error().unwrap_or(0) as i64
        } else {
            0
        };
        // SAFETY: e is 8 readable bytes; _exit skips the parent's destructors.
        unsafe {
            libc::write(fds[1], e.to_ne_bytes().as_ptr().cast(), 8);
            libc::_exit(0)
        }
    }
    let mut b = [0u8; 8];
    // SAFETY: b is a valid buffer of 8 bytes.
    assert_eq!(unsafe { libc::read(fds[0], b.as_mut_ptr().cast(), 8) }, 8);
    let mut status = 0;
    // SAFETY: status is a valid out-pointer.
    assert_eq!(unsafe { libc::waitpid(pid, &mut status, 0) }, pid);
    assert_eq!(status, 0, "child {pid} exited with status {status:#x}");
    // SAFETY: both fds are ours and open.
    unsafe {
        libc::close(fds[0]);
        libc::close(fds[1]);
    }
    (pid, i64::from_ne_bytes(b))
}

/// An init_module of a null image (invalid) and a finit_module of /bin/true (not a module).
fn attempt_module_loads() -> Attempts {
    let empty = b"\0";
    // SAFETY: a null image of length 0 and a NUL-terminated empty parameter string.
    let (init, init_errno) = attempt(|| unsafe {
        libc::syscall(
            libc::SYS_init_module,
            std::ptr::null::<u8>(),
            0usize,
            empty.as_ptr(),
        )
    });
    let file = std::fs::File::open("/bin/true").expect("open /bin/true");
    let fd = std::os::fd::AsRawFd::as_raw_fd(&file);
    // SAFETY: fd is open; the parameter string is NUL-terminated.
    let (finit, finit_errno) =
        attempt(|| unsafe { libc::syscall(libc::SYS_finit_module, fd, empty.as_ptr(), 0) });
    assert!(
        init_errno != 0 && finit_errno != 0,
        "neither attempt may load anything"
    );
    Attempts {
        init,
        init_errno,
        finit,
        finit_errno,
    }
}

/// Polls until both attempt children's exit events arrived (or 20 s passed).
fn collect(sensor: &mut Sensor, a: &Attempts) -> Vec<RawEvent> {
    let end = Instant::now() + Duration::from_secs(20);
    let mut events = Vec::new();
    let exited = |ev: &[RawEvent], pid: libc::pid_t| {
        ev.iter()
            .any(|e| e.task.pid == pid as u32 && matches!(e.body, RawBody::Exit { .. }))
    };
    while Instant::now() < end && !(exited(&events, a.init) && exited(&events, a.finit)) {
        sensor
            .poll(Duration::from_millis(100), &mut events)
            .expect("poll");
    }
    assert!(
        exited(&events, a.init) && exited(&events, a.finit),
        "the attempts' exits were not seen: the sensor is not capturing"
    );
    events
}

fn module_loads(events: &[RawEvent], pid: libc::pid_t) -> Vec<&RawBody> {
    events
        .iter()
        .filter(|e| e.task.pid == pid as u32 && matches!(e.body, RawBody::ModuleLoad { .. }))
        .map(|e| &e.body)
        .collect()
}

fn raw_programs(sensor: &Sensor) -> Vec<&'static str> {
    sensor
        .attached()
        .iter()
        .filter(|s| matches!(s.hook, Hook::RawTracePoint { .. }))
        .map(|s| s.program)
        .collect()
}

#[test]
fn without_module_tracepoints_no_raw_hook_taxes_every_syscall_by_default() {
    if !live_allowed("without_module_tracepoints_no_raw_hook_taxes_every_syscall_by_default") {
        return;
    }
    let mut sensor = Sensor::start(SensorConfig::default()).expect("sensor starts");
    if module_tracepoints() {
        eprintln!("this kernel has module syscall tracepoints: checking they are attached");
        assert!(sensor
            .attached()
            .iter()
            .any(|s| s.program == "enter_init_module"));
        assert!(raw_programs(&sensor).is_empty());
        return;
    }
    assert_eq!(
        raw_programs(&sensor),
        Vec::<&str>::new(),
        "raw hooks attached"
    );
    for p in ["raw_enter_module", "raw_exit_module"] {
        // Not even loaded into the kernel, let alone linked to sys_enter/sys_exit.
        assert!(sensor.program_id(p).is_err(), "{p} is loaded");
    }
    for sc in ["init_module", "finit_module"] {
        assert!(
            sensor.unwatched().contains(&sc),
            "{sc} not listed as unwatched"
        );
    }
    // The loss this costs: the attempts still fail (ENOSYS) but are not reported.
    let a = attempt_module_loads();
    assert_eq!(
        (a.init_errno, a.finit_errno),
        (libc::ENOSYS as i64, libc::ENOSYS as i64)
    );
    let events = collect(&mut sensor, &a);
    assert!(module_loads(&events, a.init).is_empty());
    assert!(module_loads(&events, a.finit).is_empty());
}

#[test]
fn opted_in_raw_hooks_report_both_module_syscalls() {
    if !live_allowed("opted_in_raw_hooks_report_both_module_syscalls") {
        return;
    }
    let mut sensor = Sensor::start(SensorConfig {
        raw_module_hooks: true,
        ..SensorConfig::default()
    })
    .expect("sensor starts");
    if module_tracepoints() {
        assert!(
            raw_programs(&sensor).is_empty(),
            "tracepoints exist: no raw hooks"
        );
    } else {
        assert_eq!(
            raw_programs(&sensor),
            ["raw_exit_module", "raw_enter_module"]
        );
        for p in ["raw_enter_module", "raw_exit_module"] {
            sensor.program_id(p).expect("loaded");
        }
    }
    assert!(!sensor.unwatched().contains(&"init_module"));
    assert!(!sensor.unwatched().contains(&"finit_module"));
    let a = attempt_module_loads();
    let events = collect(&mut sensor, &a);
    assert_eq!(
        module_loads(&events, a.init),
        [&RawBody::ModuleLoad {
            name: Vec::new(),
            from_fd: false,
            result: -a.init_errno,
        }]
    );
    let canonical = std::fs::canonicalize("/bin/true").unwrap();
    assert_eq!(
        module_loads(&events, a.finit),
        [&RawBody::ModuleLoad {
            name: canonical.as_os_str().as_encoded_bytes().to_vec(),
            from_fd: true,
            result: -a.finit_errno,
        }]
    );
}
