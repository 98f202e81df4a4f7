//! Live capture against the real kernel (root only): start the sensor, run a known workload
//! in child processes, and check every event it must produce. Outside CI a non-root run
//! skips with a reason; with CI=true it fails.

use std::collections::HashSet;
use std::ffi::CString;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use ritma_ebpf::programs::all_programs;
use ritma_ebpf::{verify_object, EbpfError, Sensor, SensorConfig};
use ritma_sources::raw::{DupCall, DupSource, IdCall, RawBody, RawEvent, SockAddr, ID_UNCHANGED};

mod common;
use common::live_allowed;

/// Runs `f` in a forked child that exits with its return value. The child only makes
/// libc calls on data prepared before the fork (the parent has other threads).
fn in_child(f: impl FnOnce() -> i32) -> libc::pid_t {
    // SAFETY: the child runs only async-signal-safe libc calls and then _exit.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork: {}", std::io::Error::last_os_error());
    if pid == 0 {
        let code = f();
        // SAFETY: _exit ends the child without running the parent's destructors.
        unsafe { libc::_exit(code) }
    }
    pid
}

/// Waits for `pid` and returns its wait status.
fn wait_status(pid: libc::pid_t) -> i32 {
    let mut status = 0;
    // SAFETY: status is a valid out-pointer.
    let rc = unsafe { libc::waitpid(pid, &mut status, 0) };
    assert_eq!(rc, pid, "waitpid: {}", std::io::Error::last_os_error());
    status
}

fn expect_clean_exit(pid: libc::pid_t, what: &str) {
    let status = wait_status(pid);
    assert_eq!(
        status, 0,
        "{what} child {pid} exited with status {status:#x}"
    );
}

fn cstr(s: impl AsRef<[u8]>) -> CString {
    CString::new(s.as_ref().to_vec()).expect("no NUL")
}

fn errno() -> i64 {
    std::io::Error::last_os_error().raw_os_error().unwrap_or(0) as i64
}

/// Reads exactly `N` bytes from a pipe.
fn read_pipe<const N: usize>(fd: i32) -> [u8; N] {
    let mut b = [0u8; N];
    // SAFETY: b is a valid buffer of N bytes.
    let n = unsafe { libc::read(fd, b.as_mut_ptr().cast(), N) };
    assert_eq!(n, N as isize, "short pipe read");
    b
}

fn pipe() -> (i32, i32) {
    let mut fds = [0; 2];
    // SAFETY: fds is a valid array of two ints.
    assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
    (fds[0], fds[1])
}

/// Polls until `done` holds for the events gathered so far, or the deadline passes.
fn collect_until(
    sensor: &mut Sensor,
    deadline: Duration,
    done: impl Fn(&[RawEvent]) -> bool,
) -> Vec<RawEvent> {
    let end = Instant::now() + deadline;
    let mut events = Vec::new();
    while Instant::now() < end && !done(&events) {
        sensor
            .poll(Duration::from_millis(100), &mut events)
            .expect("poll");
    }
    events
}

fn of_pid(events: &[RawEvent], pid: libc::pid_t) -> Vec<&RawEvent> {
    events.iter().filter(|e| e.task.pid == pid as u32).collect()
}

/// Everything the workload's processes did, by pid.
struct Workload {
    sh: libc::pid_t,
    long: libc::pid_t,
    threaded: libc::pid_t,
    files: libc::pid_t,
    server: libc::pid_t,
    client: libc::pid_t,
    server_port: u16,
    client_port: u16,
    sleeper: libc::pid_t,
    tracer: libc::pid_t,
    setid: libc::pid_t,
    memfd: libc::pid_t,
    memfd_fd: i32,
    bpf: libc::pid_t,
    capset: libc::pid_t,
    module: libc::pid_t,
    module_errno: i64,
    caps: [u32; 6],
    /// Runs a copy of /bin/true from /dev/shm; `unlinker` then deletes it.
    dropper: libc::pid_t,
    unlinker: libc::pid_t,
}

const MARK_TRUE: &str = "ritma-live-marker-true-7f3a";
const MARK_MEMFD: &str = "ritma-live-marker-memfd-91c2";
const MARK_LONG: &str = "ritma-live-marker-long";
const MEMFD_NAME: &str = "ritma-live-memfd";
const BPF_PROG_NAME: &[u8] = b"ritma_probe";

extern "C" fn sleeping_thread(_: *mut libc::c_void) -> *mut libc::c_void {
    // SAFETY: sleep has no preconditions; the process exits while this thread sleeps.
    unsafe { libc::sleep(10) };
    std::ptr::null_mut()
}

/// A process with three more threads that exits with code 7 while they still run.
fn run_threaded_exit() -> libc::pid_t {
    in_child(|| unsafe {
        for _ in 0..3 {
            let mut t: libc::pthread_t = std::mem::zeroed();
            if libc::pthread_create(
                &mut t,
                std::ptr::null(),
                sleeping_thread,
                std::ptr::null_mut(),
            ) != 0
            {
                return 90;
            }
        }
        libc::usleep(20_000);
        7
    })
}

fn run_file_ops(dir: &Path, ignored: &Path) -> libc::pid_t {
    let dir_c = cstr(dir.as_os_str().as_encoded_bytes());
    let rel = cstr("rel.txt");
    let missing = cstr("missing.txt");
    let renamed = cstr("renamed.txt");
    let abs = cstr(dir.join("abs.txt").as_os_str().as_encoded_bytes());
    let hidden = cstr(ignored.join("hidden.txt").as_os_str().as_encoded_bytes());
    in_child(move || unsafe {
        if libc::chdir(dir_c.as_ptr()) != 0 {
            return 10;
        }
        let fd = libc::syscall(
            libc::SYS_openat,
            libc::AT_FDCWD,
            rel.as_ptr(),
            libc::O_CREAT | libc::O_WRONLY,
            0o640,
        );
        if fd < 0 {
            return 11;
        }
        libc::close(fd as i32);
        if libc::syscall(
            libc::SYS_openat,
            libc::AT_FDCWD,
            missing.as_ptr(),
            libc::O_RDONLY,
            0,
        ) != -1
        {
            return 12;
        }
        let fd = libc::syscall(
            libc::SYS_openat,
            libc::AT_FDCWD,
            abs.as_ptr(),
            libc::O_CREAT | libc::O_RDWR,
            0o600,
        );
        if fd < 0 {
            return 13;
        }
        libc::close(fd as i32);
        if libc::syscall(
            libc::SYS_renameat2,
            libc::AT_FDCWD,
            rel.as_ptr(),
            libc::AT_FDCWD,
            renamed.as_ptr(),
            0,
        ) != 0
        {
            return 14;
        }
        if libc::syscall(libc::SYS_unlinkat, libc::AT_FDCWD, renamed.as_ptr(), 0) != 0 {
            return 15;
        }
        if libc::syscall(libc::SYS_unlink, abs.as_ptr()) != 0 {
            return 16;
        }
        let fd = libc::syscall(
            libc::SYS_openat,
            libc::AT_FDCWD,
            hidden.as_ptr(),
            libc::O_CREAT | libc::O_WRONLY,
            0o600,
        );
        if fd < 0 {
            return 17;
        }
        libc::close(fd as i32);
        0
    })
}

/// A TCP server child (bind, listen, accept) and a client child (connect) on loopback.
fn run_tcp() -> (libc::pid_t, libc::pid_t, u16, u16) {
    let (port_r, port_w) = pipe();
    let server = in_child(move || unsafe {
        let s = libc::socket(libc::AF_INET, libc::SOCK_STREAM, 0);
        let mut sa: libc::sockaddr_in = std::mem::zeroed();
        sa.sin_family = libc::AF_INET as u16;
        sa.sin_addr.s_addr = u32::from_ne_bytes([127, 0, 0, 1]);
        let len = std::mem::size_of::<libc::sockaddr_in>() as u32;
        if libc::bind(s, (&sa as *const libc::sockaddr_in).cast(), len) != 0 {
            return 20;
        }
        if libc::listen(s, 16) != 0 {
            return 21;
        }
        let mut got: libc::sockaddr_in = std::mem::zeroed();
        let mut glen = len;
        libc::getsockname(s, (&mut got as *mut libc::sockaddr_in).cast(), &mut glen);
        let port = u16::from_be(got.sin_port).to_ne_bytes();
        libc::write(port_w, port.as_ptr().cast(), 2);
        let c = libc::accept4(s, std::ptr::null_mut(), std::ptr::null_mut(), 0);
        if c < 0 {
            return 22;
        }
        0
    });
    let server_port = u16::from_ne_bytes(read_pipe::<2>(port_r));
    let (cport_r, cport_w) = pipe();
    let client = in_child(move || unsafe {
        let s = libc::socket(libc::AF_INET, libc::SOCK_STREAM, 0);
        let mut sa: libc::sockaddr_in = std::mem::zeroed();
        sa.sin_family = libc::AF_INET as u16;
        sa.sin_port = server_port.to_be();
        sa.sin_addr.s_addr = u32::from_ne_bytes([127, 0, 0, 1]);
        let len = std::mem::size_of::<libc::sockaddr_in>() as u32;
        if libc::connect(s, (&sa as *const libc::sockaddr_in).cast(), len) != 0 {
            return 30;
        }
        let mut me: libc::sockaddr_in = std::mem::zeroed();
        let mut mlen = len;
        libc::getsockname(s, (&mut me as *mut libc::sockaddr_in).cast(), &mut mlen);
        let port = u16::from_be(me.sin_port).to_ne_bytes();
        libc::write(cport_w, port.as_ptr().cast(), 2);
        // The connection made stdout (dup2) and stdin (fcntl F_DUPFD into a closed fd 0);
        // a pipe made stderr (dup3); a dup onto fd 9 is not stdio and not reported.
        let mut p = [0; 2];
        libc::close(0);
        if libc::dup2(s, 1) != 1
            || libc::fcntl(s, libc::F_DUPFD, 0) != 0
            || libc::pipe(p.as_mut_ptr()) != 0
            || libc::dup3(p[1], 2, 0) != 2
            || libc::dup2(s, 9) != 9
        {
            return 31;
        }
        0
    });
    let client_port = u16::from_ne_bytes(read_pipe::<2>(cport_r));
    expect_clean_exit(client, "tcp client");
    expect_clean_exit(server, "tcp server");
    for fd in [port_r, port_w, cport_r, cport_w] {
        // SAFETY: closing our own pipe ends.
        unsafe { libc::close(fd) };
    }
    (server, client, server_port, client_port)
}

fn run_workload(dir: &Path, ignored: &Path) -> Workload {
    let mut sh = Command::new("/bin/sh")
        .arg("-c")
        .arg(format!("/bin/true {MARK_TRUE}; exit 3"))
        .spawn()
        .expect("spawn sh");
    let sh_pid = sh.id() as libc::pid_t;
    assert_eq!(sh.wait().expect("reap sh").code(), Some(3));

    // More argv than the kernel side copies: cut, and marked so.
    let long_args: Vec<String> = (0..100)
        .map(|i| format!("{MARK_LONG}-{i:03}-{}", "x".repeat(180)))
        .collect();
    let mut long = Command::new("/bin/true")
        .args(&long_args)
        .spawn()
        .expect("spawn true");
    let long_pid = long.id() as libc::pid_t;
    assert!(long.wait().expect("reap true").success());

    let threaded = run_threaded_exit();
    assert_eq!(wait_status(threaded), 7 << 8);

    let files = run_file_ops(dir, ignored);
    expect_clean_exit(files, "file ops");

    let (server, client, server_port, client_port) = run_tcp();

    // ptrace: a tracer child seizes a sleeping sibling; its exit detaches.
    let mut sleeper = Command::new("/bin/sleep")
        .arg("30")
        .spawn()
        .expect("spawn sleep");
    let sleeper_pid = sleeper.id() as libc::pid_t;
    let tracer = in_child(move || unsafe {
        let rc = libc::ptrace(libc::PTRACE_SEIZE, sleeper_pid, 0usize, 0usize);
        if rc == 0 {
            0
        } else {
            40
        }
    });
    expect_clean_exit(tracer, "tracer");
    sleeper.kill().expect("kill sleep");
    sleeper.wait().expect("reap sleep");

    let shadow = cstr("/etc/shadow");
    let setid = in_child(move || unsafe {
        // A secret read first (as root), for the secrets_read trigger.
        if libc::open(shadow.as_ptr(), libc::O_RDONLY) < 0 {
            return 49;
        }
        if libc::syscall(libc::SYS_setgid, 4321) != 0 {
            return 50;
        }
        if libc::syscall(libc::SYS_setresuid, -1i32, 4321, -1i32) != 0 {
            return 51;
        }
        0
    });
    expect_clean_exit(setid, "set*id");

    // memfd_create, then execveat(AT_EMPTY_PATH) of a copy of /bin/true.
    let image = std::fs::read("/bin/true").expect("read /bin/true");
    let name = cstr(MEMFD_NAME);
    let empty = cstr("");
    let arg0 = cstr("true");
    let arg1 = cstr(MARK_MEMFD);
    let argv = [arg0.as_ptr(), arg1.as_ptr(), std::ptr::null()];
    let envp = [std::ptr::null::<libc::c_char>()];
    let (fd_r, fd_w) = pipe();
    let memfd = in_child(move || unsafe {
        let fd = libc::syscall(libc::SYS_memfd_create, name.as_ptr(), 0) as i32;
        if fd < 0 {
            return 60;
        }
        libc::write(fd_w, fd.to_ne_bytes().as_ptr().cast(), 4);
        if libc::write(fd, image.as_ptr().cast(), image.len()) != image.len() as isize {
            return 61;
        }
        libc::syscall(
            libc::SYS_execveat,
            fd,
            empty.as_ptr(),
            argv.as_ptr(),
            envp.as_ptr(),
            libc::AT_EMPTY_PATH,
        );
        62
    });
    let memfd_fd = i32::from_ne_bytes(read_pipe::<4>(fd_r));
    expect_clean_exit(memfd, "memfd exec");

    let bpf = in_child(|| unsafe {
        // BPF_PROG_LOAD of a socket filter returning 0: r0 = 0; exit.
        let insns: [u64; 2] = [0x0000_0000_0000_00b7, 0x0000_0000_0000_0095];
        let license = b"GPL\0";
        let mut attr = [0u8; 128];
        attr[0..4].copy_from_slice(&1u32.to_ne_bytes()); // BPF_PROG_TYPE_SOCKET_FILTER
        attr[4..8].copy_from_slice(&2u32.to_ne_bytes());
        attr[8..16].copy_from_slice(&(insns.as_ptr() as u64).to_ne_bytes());
        attr[16..24].copy_from_slice(&(license.as_ptr() as u64).to_ne_bytes());
        attr[48..48 + BPF_PROG_NAME.len()].copy_from_slice(BPF_PROG_NAME);
        let fd = libc::syscall(libc::SYS_bpf, 5, attr.as_ptr(), attr.len());
        if fd < 0 {
            70
        } else {
            0
        }
    });
    expect_clean_exit(bpf, "bpf prog load");

    let caps = current_caps();
    let capset = in_child(move || unsafe {
        let mut hdr = [0x2008_0522u32, 0]; // _LINUX_CAPABILITY_VERSION_3, this process
        if libc::syscall(libc::SYS_capset, hdr.as_mut_ptr(), caps.as_ptr()) != 0 {
            return 80;
        }
        0
    });
    expect_clean_exit(capset, "capset");

    // The kernel has no module support here, so finit_module fails; it must still be seen.
    let (err_r, err_w) = pipe();
    let module_file = std::fs::File::open("/bin/true").expect("open /bin/true");
    let module_fd = std::os::fd::AsRawFd::as_raw_fd(&module_file);
    let module = in_child(move || unsafe {
        let empty = b"\0";
        let rc = libc::syscall(libc::SYS_finit_module, module_fd, empty.as_ptr(), 0);
        let e = if rc < 0 { errno() } else { 0 };
        libc::write(err_w, e.to_ne_bytes().as_ptr().cast(), 8);
        0
    });
    let module_errno = i64::from_ne_bytes(read_pipe::<8>(err_r));
    expect_clean_exit(module, "finit_module");

    // A program run from /dev/shm and deleted right after (exec_from_tmp, deleted_binary_exec).
    let dropped = format!("/dev/shm/ritma-live-dropper-{}", std::process::id());
    std::fs::copy("/bin/true", &dropped).expect("copy /bin/true to /dev/shm");
    let mut dropper = Command::new(&dropped)
        .spawn()
        .expect("spawn the dropped copy");
    let dropper_pid = dropper.id() as libc::pid_t;
    assert!(dropper.wait().expect("reap dropper").success());
    let dropped_c = cstr(&dropped);
    let unlinker = in_child(move || unsafe {
        if libc::unlink(dropped_c.as_ptr()) != 0 {
            return 90;
        }
        0
    });
    expect_clean_exit(unlinker, "unlink of the dropped copy");

    Workload {
        sh: sh_pid,
        long: long_pid,
        threaded,
        files,
        server,
        client,
        server_port,
        client_port,
        sleeper: sleeper_pid,
        tracer,
        setid,
        memfd,
        memfd_fd,
        bpf,
        capset,
        module,
        module_errno,
        caps,
        dropper: dropper_pid,
        unlinker,
    }
}

/// This process's capability sets as capget(2) returns them (version 3: two halves).
fn current_caps() -> [u32; 6] {
    let mut hdr = [0x2008_0522u32, 0];
    let mut data = [0u32; 6];
    // SAFETY: hdr and data are valid buffers of the sizes capget expects.
    let rc = unsafe { libc::syscall(libc::SYS_capget, hdr.as_mut_ptr(), data.as_mut_ptr()) };
    assert_eq!(rc, 0, "capget");
    data
}

fn find<'a>(
    events: &'a [RawEvent],
    pid: libc::pid_t,
    what: &str,
    pred: impl Fn(&RawBody) -> bool,
) -> &'a RawEvent {
    of_pid(events, pid)
        .into_iter()
        .find(|e| pred(&e.body))
        .unwrap_or_else(|| {
            let mine: Vec<_> = of_pid(events, pid).iter().map(|e| &e.body).collect();
            panic!("no {what} event for pid {pid}; its events: {mine:#?}")
        })
}

#[test]
fn start_without_capabilities_names_what_is_missing() {
    // Runs for any user: the child drops every capability, then must get NotPermitted.
    let child = in_child(|| unsafe {
        let mut hdr = [0x2008_0522u32, 0];
        let none = [0u32; 6];
        if libc::syscall(libc::SYS_capset, hdr.as_mut_ptr(), none.as_ptr()) != 0 {
            return 2;
        }
        match Sensor::start(SensorConfig::default()) {
            Err(e @ EbpfError::NotPermitted { cap_eff: 0, .. })
                if ["CAP_BPF", "CAP_PERFMON", "CAP_DAC_READ_SEARCH"]
                    .iter()
                    .all(|c| e.to_string().contains(c)) =>
            {
                0
            }
            _ => 1,
        }
    });
    expect_clean_exit(child, "capability-less start");
}

#[test]
fn verifier_accepts_every_program() {
    if !live_allowed("verifier_accepts_every_program") {
        return;
    }
    let n = verify_object().expect("every program loads");
    assert_eq!(n, all_programs().len());
}

#[test]
fn live_workload_is_captured() {
    if !live_allowed("live_workload_is_captured") {
        return;
    }
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp
        .path()
        .canonicalize()
        .expect("canonical tempdir")
        .join("work");
    let ignored = tmp.path().canonicalize().unwrap().join("ignored");
    std::fs::create_dir(&dir).unwrap();
    std::fs::create_dir(&ignored).unwrap();
    let mut ignored_prefix = ignored.as_os_str().as_encoded_bytes().to_vec();
    ignored_prefix.push(b'/');

    let mut sensor = Sensor::start(SensorConfig {
        ignore_prefixes: vec![ignored_prefix],
        // The finit_module below is checked on kernels without its tracepoint too.
        raw_module_hooks: true,
        ..SensorConfig::default()
    })
    .expect("sensor starts");
    // The sensor's own file activity must not show up.
    let own = dir.join("own-activity.txt");
    std::fs::write(&own, b"self").unwrap();

    let w = run_workload(&dir, &ignored);
    let module_pid = w.module;
    let events = collect_until(&mut sensor, Duration::from_secs(20), |ev| {
        // The last child's exit closes the workload.
        ev.iter()
            .any(|e| e.task.pid == module_pid as u32 && matches!(e.body, RawBody::Exit { .. }))
    });
    let me = std::process::id();
    let ours: HashSet<u32> = [
        w.sh, w.long, w.threaded, w.files, w.server, w.client, w.sleeper, w.tracer, w.setid,
        w.memfd, w.bpf, w.capset, w.module, w.dropper, w.unlinker,
    ]
    .iter()
    .map(|p| *p as u32)
    .collect();
    eprintln!(
        "{} events, {} from the workload's direct children",
        events.len(),
        events.iter().filter(|e| ours.contains(&e.task.pid)).count()
    );

    check_process_tree(&events, &w, me);
    check_files(&events, &w, &dir, &ignored, &own, me);
    check_network(&events, &w);
    check_privileged_calls(&events, &w);
    check_triggers(&events, &w);

    let drops = sensor.drops().expect("drop counters");
    assert_eq!(drops.ringbuf_full, 0, "ring buffer overflowed: {drops:?}");
    assert_eq!(drops.stash_full, 0, "stash overflowed: {drops:?}");
    match sensor.run_counts() {
        Ok(runs) => {
            let exec = runs.iter().find(|r| r.program == "ritma_exec").unwrap();
            assert!(
                exec.run_count >= 2,
                "exec program ran {} times",
                exec.run_count
            );
        }
        Err(why) => eprintln!("run counts unavailable: {why}"),
    }
}

/// The workload's events through canonicalize, the actor table, the detector cones and
/// the cone matcher, as the dataflow runs them: the triggers the workload provokes fire
/// on the right processes, and the ones it does not provoke stay quiet.
fn check_triggers(events: &[RawEvent], w: &Workload) {
    use ritma_operators::attribute::{ActorTable, ActorTableConfig};
    use ritma_operators::canonicalize::{canonicalize, RunContext};
    use ritma_operators::cone_match::{builtin_cones, ConeMatcher};
    use ritma_operators::triggers::TriggerDetectors;
    let ctx = RunContext {
        node: "live".into(),
        boot_id: [0; 16],
        window_len_ns: 1_000_000_000,
        wall_minus_mono_ns: 0,
    };
    let cones = builtin_cones();
    let mut actors = ActorTable::new(ActorTableConfig::default());
    let mut detectors = TriggerDetectors::new(&cones);
    let mut matcher = ConeMatcher::new(cones, 10_000, ctx.window_len_ns);
    let mut fired: Vec<(String, u32)> = Vec::new();
    // The sensor leaves seqs to its reader: here, the read order.
    let pid_of = |seq: u64| events[seq as usize].task.pid;
    for (seq, raw) in events.iter().enumerate() {
        let raw = RawEvent {
            seq: seq as u64,
            ..raw.clone()
        };
        let e = canonicalize(&ctx, ctx.window_of(raw.mono_ns), raw.clone());
        let found = actors.push(&e);
        for c in detectors.push(&e, &found) {
            fired.push((c.cone_id, pid_of(c.last_seq)));
        }
        for m in matcher.push(&e, raw.mono_ns) {
            fired.push((m.instance.cone_id, pid_of(m.instance.last_seq)));
        }
    }
    eprintln!("triggers fired: {fired:?}");
    let has =
        |cone: &str, pid: libc::pid_t| fired.iter().any(|(c, p)| c == cone && *p == pid as u32);
    for (cone, pid) in [
        ("ptrace_attach", w.tracer),
        ("secrets_read", w.setid),
        ("memfd_exec", w.memfd),
        ("bpf_prog_load", w.bpf),
        ("exec_from_tmp", w.dropper),
        ("deleted_binary_exec", w.unlinker),
    ] {
        assert!(
            has(cone, pid),
            "{cone} did not fire for pid {pid}: {fired:?}"
        );
    }
    // A failed module load, an unprivileged uid change and a one-port client are not triggers.
    for cone in [
        "module_load",
        "uid0_without_setuid_exec",
        "priv_esc_setuid",
        "egress_spike",
    ] {
        assert!(
            !fired.iter().any(|(c, _)| c == cone),
            "{cone} fired: {fired:?}"
        );
    }
}

/// `p` with its symbolic links resolved, as bytes.
fn real(p: &str) -> Vec<u8> {
    std::fs::canonicalize(p)
        .expect("canonicalize")
        .into_os_string()
        .into_encoded_bytes()
}

/// The given path an event must carry for `filename`: none when they are the same.
fn given_unless_same(given: &Option<Vec<u8>>, filename: &[u8]) -> Option<Vec<u8>> {
    given.clone().or_else(|| Some(filename.to_vec()))
}

fn check_process_tree(events: &[RawEvent], w: &Workload, me: u32) {
    let sh_exec = find(events, w.sh, "sh exec", |b| {
        matches!(b, RawBody::Exec { .. })
    });
    assert_eq!(sh_exec.task.ppid, me);
    assert_eq!(sh_exec.task.uid, 0);
    let RawBody::Exec {
        filename,
        given,
        argv,
        ..
    } = &sh_exec.body
    else {
        unreachable!()
    };
    // The file the kernel ran (merged /usr: /bin/sh is a link), and the path as given.
    assert_eq!(filename, &real("/bin/sh"));
    assert_eq!(
        given_unless_same(given, filename),
        Some(b"/bin/sh".to_vec())
    );
    assert_eq!(
        argv[1..],
        [
            b"-c".to_vec(),
            format!("/bin/true {MARK_TRUE}; exit 3").into_bytes()
        ]
    );

    // sh forks a child for /bin/true: the fork, the child's exec and exit.
    let fork = find(events, w.sh, "sh fork", |b| {
        matches!(b, RawBody::Fork { .. })
    });
    let RawBody::Fork {
        child_pid,
        child_start_ns,
    } = fork.body
    else {
        unreachable!()
    };
    assert_eq!(fork.task.start_ns, sh_exec.task.start_ns);
    let child = child_pid as libc::pid_t;
    let true_exec = find(events, child, "true exec", |b| {
        matches!(b, RawBody::Exec { .. })
    });
    let RawBody::Exec {
        filename,
        argv,
        argv_truncated,
        exe_dev,
        exe_ino,
        given,
        stdio_net: _,
    } = &true_exec.body
    else {
        unreachable!()
    };
    assert_eq!(filename, &real("/bin/true"));
    assert_eq!(
        given_unless_same(given, filename),
        Some(b"/bin/true".to_vec())
    );
    assert_eq!(
        argv,
        &[b"/bin/true".to_vec(), MARK_TRUE.as_bytes().to_vec()]
    );
    assert!(!argv_truncated);
    let meta = std::fs::metadata("/bin/true").unwrap();
    assert_eq!((*exe_dev, *exe_ino), (meta.dev(), meta.ino()));
    assert_eq!(true_exec.task.ppid, w.sh as u32);
    assert_eq!(true_exec.task.start_ns, child_start_ns);
    assert_eq!(true_exec.task.parent_start_ns, sh_exec.task.start_ns);
    assert_eq!(true_exec.task.comm, b"true");
    assert!(true_exec.mono_ns > true_exec.task.start_ns);

    let exit = find(events, child, "true exit", |b| {
        matches!(b, RawBody::Exit { .. })
    });
    assert_eq!(exit.body, RawBody::Exit { code: 0 });
    let sh_exit = find(events, w.sh, "sh exit", |b| {
        matches!(b, RawBody::Exit { .. })
    });
    assert_eq!(sh_exit.body, RawBody::Exit { code: 3 << 8 });
    assert_eq!(
        of_pid(events, w.sh)
            .iter()
            .filter(|e| matches!(e.body, RawBody::Exit { .. }))
            .count(),
        1,
        "one exit per process"
    );
    assert!(
        events.iter().all(|e| e.task.pid != me),
        "the sensor's own events leaked"
    );

    let long = find(events, w.long, "long exec", |b| {
        matches!(b, RawBody::Exec { .. })
    });
    let RawBody::Exec {
        argv,
        argv_truncated,
        ..
    } = &long.body
    else {
        unreachable!()
    };
    assert!(*argv_truncated, "a 18 KiB argv is cut");
    // The copied block: the elements and the NULs between them (the last one is partial).
    let copied: usize = argv.iter().map(|a| a.len()).sum::<usize>() + argv.len() - 1;
    assert!(
        copied <= 8192 && argv.len() > 10,
        "{} args, {copied} bytes",
        argv.len()
    );
    assert!(argv[1].starts_with(format!("{MARK_LONG}-000-").as_bytes()));

    // Four threads end, one process exit, with the group's code.
    let exits: Vec<_> = of_pid(events, w.threaded)
        .into_iter()
        .filter(|e| matches!(e.body, RawBody::Exit { .. }))
        .collect();
    assert_eq!(
        exits.len(),
        1,
        "one exit for a threaded process: {exits:#?}"
    );
    assert_eq!(exits[0].body, RawBody::Exit { code: 7 << 8 });
}

fn check_files(events: &[RawEvent], w: &Workload, dir: &Path, ignored: &Path, own: &Path, me: u32) {
    let at = |name: &str| dir.join(name).as_os_str().as_encoded_bytes().to_vec();
    let opens: Vec<_> = of_pid(events, w.files)
        .into_iter()
        .filter_map(|e| match &e.body {
            RawBody::Open {
                path,
                flags,
                mode,
                result,
                given,
            } => Some((e, path, *flags, *mode, *result, given)),
            _ => None,
        })
        .collect();
    // Relative and created: the opened file's absolute path, and the path as given.
    let created = opens
        .iter()
        .find(|o| *o.1 == at("rel.txt"))
        .expect("open rel.txt");
    assert_eq!(created.5.as_deref(), Some(b"rel.txt".as_slice()));
    assert_eq!(created.2 as i32, libc::O_CREAT | libc::O_WRONLY);
    assert_eq!(created.3, 0o640);
    assert!(created.4 >= 0);
    assert_eq!(created.0.task.ppid, me);
    // Relative and failed: cwd joined with the given path.
    let missing = opens
        .iter()
        .find(|o| *o.1 == at("missing.txt"))
        .expect("open missing.txt");
    assert_eq!(missing.4, -(libc::ENOENT as i64));
    assert_eq!(missing.5.as_deref(), Some(b"missing.txt".as_slice()));
    let abs = opens
        .iter()
        .find(|o| *o.1 == at("abs.txt"))
        .expect("open abs.txt");
    assert_eq!((abs.2 as i32, abs.3), (libc::O_CREAT | libc::O_RDWR, 0o600));

    let rename = find(events, w.files, "rename", |b| {
        matches!(b, RawBody::Rename { .. })
    });
    assert_eq!(
        rename.body,
        RawBody::Rename {
            old: at("rel.txt"),
            new: at("renamed.txt"),
            flags: 0,
            result: 0,
            old_given: Some(b"rel.txt".to_vec()),
            new_given: Some(b"renamed.txt".to_vec()),
        }
    );
    let unlinks: Vec<_> = of_pid(events, w.files)
        .into_iter()
        .filter(|e| matches!(e.body, RawBody::Unlink { .. }))
        .map(|e| e.body.clone())
        .collect();
    assert_eq!(
        unlinks,
        vec![
            RawBody::Unlink {
                path: at("renamed.txt"),
                flags: 0,
                result: 0,
                given: Some(b"renamed.txt".to_vec()),
            },
            RawBody::Unlink {
                path: at("abs.txt"),
                flags: 0,
                result: 0,
                given: None,
            },
        ]
    );

    let ignored = ignored.as_os_str().as_encoded_bytes();
    let own = own.as_os_str().as_encoded_bytes();
    for e in events {
        if let RawBody::Open { path, .. } = &e.body {
            assert!(
                !path.starts_with(ignored),
                "ignored prefix reached user space: {e:?}"
            );
            assert_ne!(
                path.as_slice(),
                own,
                "the sensor's own open reached user space"
            );
        }
    }
}

fn check_network(events: &[RawEvent], w: &Workload) {
    let lo = [127, 0, 0, 1];
    let bind = find(events, w.server, "bind", |b| {
        matches!(b, RawBody::Bind { .. })
    });
    assert_eq!(
        bind.body,
        RawBody::Bind {
            addr: SockAddr::V4 { addr: lo, port: 0 },
            result: 0
        }
    );
    let listen = find(events, w.server, "listen", |b| {
        matches!(b, RawBody::Listen { .. })
    });
    assert_eq!(
        listen.body,
        RawBody::Listen {
            backlog: 16,
            result: 0
        }
    );
    let connect = find(events, w.client, "connect", |b| {
        matches!(b, RawBody::Connect { .. })
    });
    assert_eq!(
        connect.body,
        RawBody::Connect {
            addr: SockAddr::V4 {
                addr: lo,
                port: w.server_port
            },
            result: 0
        }
    );
    let accept = find(events, w.server, "accept", |b| {
        matches!(b, RawBody::Accept { .. })
    });
    let RawBody::Accept { addr, result } = &accept.body else {
        unreachable!()
    };
    assert_eq!(
        addr,
        &SockAddr::V4 {
            addr: lo,
            port: w.client_port
        }
    );
    assert!(*result >= 0, "accept returned {result}");

    // The client's descriptors landed on stdio: each dup, its source and its program.
    let exe = std::fs::canonicalize(std::env::current_exe().unwrap()).unwrap();
    let exe = exe.to_str().unwrap().as_bytes().to_vec();
    let dups: Vec<_> = of_pid(events, w.client)
        .into_iter()
        .filter_map(|e| match &e.body {
            b @ RawBody::FdDup { .. } => Some(b.clone()),
            _ => None,
        })
        .collect();
    let peer = SockAddr::V4 {
        addr: lo,
        port: w.server_port,
    };
    let dup = |call, newfd, source, peer: &SockAddr| RawBody::FdDup {
        call,
        oldfd: 0,
        newfd,
        source,
        peer: peer.clone(),
        exe: exe.clone(),
    };
    let none = SockAddr::Other { family: 0 };
    let got: Vec<_> = dups
        .iter()
        .map(|b| match b {
            RawBody::FdDup { oldfd, .. } => {
                assert!(*oldfd > 2, "{b:?}");
                let mut b = b.clone();
                if let RawBody::FdDup { oldfd, .. } = &mut b {
                    *oldfd = 0;
                }
                b
            }
            _ => unreachable!(),
        })
        .collect();
    assert_eq!(
        got,
        vec![
            dup(DupCall::Dup2, 1, DupSource::Socket, &peer),
            dup(DupCall::FcntlDupfd, 0, DupSource::Socket, &peer),
            dup(DupCall::Dup3, 2, DupSource::Pipe, &none),
        ],
        "{dups:?}"
    );
}

fn check_privileged_calls(events: &[RawEvent], w: &Workload) {
    let sleeper_exec = find(events, w.sleeper, "sleep exec", |b| {
        matches!(b, RawBody::Exec { .. })
    });
    let killed = find(events, w.sleeper, "sleep exit", |b| {
        matches!(b, RawBody::Exit { .. })
    });
    assert_eq!(
        killed.body,
        RawBody::Exit {
            code: libc::SIGKILL
        },
        "wait status of a kill"
    );
    let ptrace = find(events, w.tracer, "ptrace", |b| {
        matches!(b, RawBody::Ptrace { .. })
    });
    assert_eq!(
        ptrace.body,
        RawBody::Ptrace {
            request: libc::PTRACE_SEIZE as u64,
            target_pid: w.sleeper as u32,
            target_start_ns: sleeper_exec.task.start_ns,
            result: 0,
        }
    );

    let setgid = find(events, w.setid, "setgid", |b| {
        matches!(b, RawBody::SetGid { .. })
    });
    assert_eq!(
        setgid.body,
        RawBody::SetGid {
            call: IdCall::Set,
            ids: [4321, ID_UNCHANGED, ID_UNCHANGED],
            result: 0
        }
    );
    assert_eq!(setgid.task.gid, 4321, "credentials are read after the call");
    let setuid = find(events, w.setid, "setresuid", |b| {
        matches!(b, RawBody::SetUid { .. })
    });
    assert_eq!(
        setuid.body,
        RawBody::SetUid {
            call: IdCall::SetRes,
            ids: [ID_UNCHANGED, 4321, ID_UNCHANGED],
            result: 0
        }
    );
    assert_eq!((setuid.task.uid, setuid.task.euid), (0, 4321));

    let memfd = find(events, w.memfd, "memfd_create", |b| {
        matches!(b, RawBody::MemfdCreate { .. })
    });
    assert_eq!(
        memfd.body,
        RawBody::MemfdCreate {
            name: MEMFD_NAME.as_bytes().to_vec(),
            flags: 0,
            result: w.memfd_fd as i64
        }
    );
    let exec = find(events, w.memfd, "memfd exec", |b| {
        matches!(b, RawBody::Exec { .. })
    });
    let RawBody::Exec {
        filename,
        given,
        argv,
        exe_ino,
        ..
    } = &exec.body
    else {
        unreachable!()
    };
    assert_eq!(argv, &[b"true".to_vec(), MARK_MEMFD.as_bytes().to_vec()]);
    // Fileless: the memfd the kernel ran, as the kernel names it, and the fd path given.
    assert_eq!(filename, format!("/memfd:{MEMFD_NAME}").as_bytes());
    assert_eq!(
        given.as_deref(),
        Some(format!("/dev/fd/{}", w.memfd_fd).as_bytes())
    );
    assert_ne!(
        *exe_ino,
        std::fs::metadata("/bin/true").unwrap().ino(),
        "exe is the memfd"
    );

    let bpf = find(events, w.bpf, "bpf prog load", |b| {
        matches!(b, RawBody::BpfProgLoad { .. })
    });
    let RawBody::BpfProgLoad {
        prog_type,
        name,
        result,
    } = &bpf.body
    else {
        unreachable!()
    };
    assert_eq!((*prog_type, name.as_slice()), (1, BPF_PROG_NAME));
    assert!(*result >= 0, "prog load returned {result}");

    let capset = find(events, w.capset, "capset", |b| {
        matches!(b, RawBody::CapSet { .. })
    });
    let c = w.caps;
    let join = |lo: u32, hi: u32| lo as u64 | (hi as u64) << 32;
    assert_eq!(
        capset.body,
        RawBody::CapSet {
            effective: join(c[0], c[3]),
            permitted: join(c[1], c[4]),
            inheritable: join(c[2], c[5]),
            result: 0,
        }
    );

    let module = find(events, w.module, "finit_module", |b| {
        matches!(b, RawBody::ModuleLoad { .. })
    });
    let RawBody::ModuleLoad {
        name,
        from_fd,
        result,
    } = &module.body
    else {
        unreachable!()
    };
    assert!(*from_fd);
    let canonical = std::fs::canonicalize("/bin/true").unwrap();
    assert_eq!(
        name.as_slice(),
        canonical.as_os_str().as_encoded_bytes(),
        "the fd's file path"
    );
    assert_eq!(*result, -w.module_errno);
}

/// The ring buffer's fill rises while nobody reads it and falls back once read.
/// Reads the ring until it is empty or `limit` has passed.
fn drain_for(sensor: &mut Sensor, events: &mut Vec<RawEvent>, limit: Duration) {
    let until = std::time::Instant::now() + limit;
    while std::time::Instant::now() < until
        && sensor
            .poll(Duration::from_millis(50), events)
            .expect("poll")
            > 0
    {}
}

#[test]
fn ring_fill_counts_what_is_written_and_not_read() {
    if !live_allowed("ring_fill_counts_what_is_written_and_not_read") {
        return;
    }
    let mut sensor = Sensor::start(SensorConfig::default()).expect("sensor starts");
    let mut events = Vec::new();
    // Drain what the start-up left (bounded: on a busy host the ring never stays empty).
    drain_for(&mut sensor, &mut events, Duration::from_secs(5));
    let tmp = tempfile::tempdir().expect("tempdir");
    // Unread: a few hundred opens by a child (this process is filtered out), with the
    // names made before the fork.
    let names: Vec<CString> = (0..500)
        .map(|i| {
            cstr(
                tmp.path()
                    .join(format!("f{i}"))
                    .as_os_str()
                    .as_encoded_bytes(),
            )
        })
        .collect();
    let child = in_child(|| {
        for n in &names {
            // SAFETY: a valid NUL-terminated path; the fd is closed at once.
            unsafe {
                let fd = libc::open(n.as_ptr(), libc::O_CREAT | libc::O_WRONLY, 0o600);
                libc::close(fd);
            }
        }
        0
    });
    expect_clean_exit(child, "the opens");
    let full = sensor.ring_fill().expect("the ring's positions are mapped");
    assert!(full > 0.0 && full <= 1.0, "{full}");
    drain_for(&mut sensor, &mut events, Duration::from_secs(5));
    let drained = sensor.ring_fill().unwrap();
    assert!(drained < full, "{drained} after reading, {full} before");
}

/// A connect to AF_UNSPEC (which dissolves a datagram socket's association) is an event
/// with family 0, not a loss; so are a connect without an address and an accept on no socket.
#[test]
fn an_af_unspec_connect_is_an_event() {
    if !live_allowed("an_af_unspec_connect_is_an_event") {
        return;
    }
    let mut sensor = Sensor::start(SensorConfig::default()).expect("sensor starts");
    let child = in_child(|| {
        // SAFETY: plain socket calls on stack addresses of the right sizes.
        unsafe {
            let fd = libc::socket(libc::AF_INET, libc::SOCK_DGRAM, 0);
            let mut to: libc::sockaddr_in = std::mem::zeroed();
            to.sin_family = libc::AF_INET as u16;
            to.sin_port = 9u16.to_be();
            to.sin_addr.s_addr = u32::from_be_bytes([127, 0, 0, 1]).to_be();
            let len = std::mem::size_of::<libc::sockaddr_in>() as u32;
            if libc::connect(fd, &to as *const _ as *const libc::sockaddr, len) != 0 {
                return 1;
            }
            let mut unspec: libc::sockaddr = std::mem::zeroed();
            unspec.sa_family = libc::AF_UNSPEC as u16;
            let len = std::mem::size_of::<libc::sockaddr>() as u32;
            if libc::connect(fd, &unspec, len) != 0 {
                return 2;
            }
            // No address at all, and an accept on no socket: failed calls, still events.
            if libc::connect(fd, std::ptr::null(), 0) == 0 {
                return 3;
            }
            if libc::accept(-1, std::ptr::null_mut(), std::ptr::null_mut()) == 0 {
                return 4;
            }
            libc::close(fd);
        }
        0
    });
    expect_clean_exit(child, "the connects");
    let events = collect_until(&mut sensor, Duration::from_secs(10), |ev| {
        ev.iter()
            .any(|e| e.task.pid == child as u32 && matches!(e.body, RawBody::Exit { .. }))
    });
    let connects: Vec<&SockAddr> = of_pid(&events, child)
        .into_iter()
        .filter_map(|e| match &e.body {
            RawBody::Connect { addr, result } if *result == 0 => Some(addr),
            _ => None,
        })
        .collect();
    assert_eq!(
        connects,
        [
            &SockAddr::V4 {
                addr: [127, 0, 0, 1],
                port: 9
            },
            &SockAddr::Other { family: 0 }
        ],
        "{connects:?}"
    );
    let failed: Vec<&RawBody> = of_pid(&events, child)
        .into_iter()
        .map(|e| &e.body)
        .filter(|b| match b {
            RawBody::Connect { result, .. } | RawBody::Accept { result, .. } => *result < 0,
            _ => false,
        })
        .collect();
    let unspec = SockAddr::Other { family: 0 };
    assert_eq!(
        failed,
        [
            &RawBody::Connect {
                addr: unspec.clone(),
                result: -i64::from(libc::EINVAL)
            },
            &RawBody::Accept {
                addr: unspec,
                result: -i64::from(libc::EBADF)
            }
        ],
        "{failed:?}"
    );
    // Nothing of it was counted as a drop (by any process: no program counts these any more).
    let drops = sensor.drops().expect("drop counts");
    assert_eq!(drops.unrepresentable, 0, "{drops:?}");
}
