//! The start-up process snapshot against the real kernel (root only): processes started
//! before the sensor must be reported with the kernel's own identity, the same one their
//! later live events carry. Outside CI a non-root run skips with a reason; with CI=true
//! it fails.

use std::collections::BTreeSet;
use std::ffi::CString;
use std::fs::File;
use std::io::{BufRead, BufReader, Write};
use std::os::fd::{FromRawFd, IntoRawFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use ritma_ebpf::{Sensor, SensorConfig};
use ritma_sources::raw::{RawBody, RawEvent, MAX_ARGV};

mod common;
use common::live_allowed;

const SH_MARKER: &str = "ritma-snapshot-sh-5d1e";
const MEMFD_NAME: &str = "ritma-snapshot-memfd";
const MEMFD_ARGV0: &str = "ritma-snapshot-fileless";
/// Zeros are a valid duration for sleep(1): a long argv that still just sleeps.
const LONG_ARGS: usize = 70;
const LONG_ARG_LEN: usize = 150;
const LONG_SLEEPERS: usize = 4;

/// Kills (SIGKILL) and reaps the processes it holds when dropped, so a failing test
/// leaves nothing running (a leftover child would also hold the harness's output open).
struct Reaper(Vec<libc::pid_t>);

impl Drop for Reaper {
    fn drop(&mut self) {
        for &pid in &self.0 {
            let mut status = 0;
            // SAFETY: kill and waitpid on our own children; status is a valid out-pointer.
            unsafe {
                libc::kill(pid, libc::SIGKILL);
                libc::waitpid(pid, &mut status, 0);
            }
        }
    }
}

/// Waits until `pid` runs an executable whose /proc path starts with `exe`.
fn wait_exec(pid: u32, exe: &[u8]) {
    let end = Instant::now() + Duration::from_secs(5);
    loop {
        let now = std::fs::read_link(format!("/proc/{pid}/exe")).unwrap_or_default();
        if now.as_os_str().as_bytes().starts_with(exe) {
            return;
        }
        assert!(Instant::now() < end, "{pid} runs {now:?}, not {exe:?}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn sleep_path() -> PathBuf {
    ["/usr/bin/sleep", "/bin/sleep"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
        .expect("sleep(1) in /usr/bin or /bin")
}

/// `sh -c 'sleep 30 & echo $!; wait'`: the shell and its sleeping child, both running
/// before the sensor starts. Returns the shell and the sleep's pid.
fn start_shell_with_sleeper(sleep: &Path) -> (Child, u32) {
    let mut sh = Command::new("/bin/sh")
        .arg0(SH_MARKER)
        .arg("-c")
        .arg(format!("{} 30 & echo $!; wait", sleep.display()))
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn sh");
    let mut line = String::new();
    BufReader::new(sh.stdout.take().unwrap())
        .read_line(&mut line)
        .expect("read the sleep's pid");
    let sleeper = line.trim().parse().expect("a pid");
    // The shell prints the pid once it has forked; the child may not have exec'd yet.
    wait_exec(
        sleeper,
        std::fs::canonicalize(sleep).unwrap().as_os_str().as_bytes(),
    );
    (sh, sleeper)
}

/// sleep(1) copied into a memfd and run from it (execveat with AT_EMPTY_PATH): a process
/// with no executable on any filesystem. Returns its pid and the memfd's dev and inode.
fn start_fileless_sleeper(sleep: &Path) -> (libc::pid_t, u64, u64) {
    let name = CString::new(MEMFD_NAME).unwrap();
    // SAFETY: name is a valid C string.
    let fd = unsafe { libc::memfd_create(name.as_ptr(), 0) };
    assert!(fd >= 0, "memfd_create: {}", std::io::Error::last_os_error());
    // SAFETY: fd is a new descriptor that nothing else owns.
    let mut memfd = unsafe { File::from_raw_fd(fd) };
    memfd.write_all(&std::fs::read(sleep).unwrap()).unwrap();
    let meta = memfd.metadata().unwrap();
    let fd = memfd.into_raw_fd();
    let argv = [
        CString::new(MEMFD_ARGV0).unwrap(),
        CString::new("30").unwrap(),
    ];
    let argv_ptrs = [argv[0].as_ptr(), argv[1].as_ptr(), std::ptr::null()];
    let envp: [*const libc::c_char; 1] = [std::ptr::null()];
    let empty = CString::new("").unwrap();
    // SAFETY: the child only calls execveat on data prepared before the fork, then _exit.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork: {}", std::io::Error::last_os_error());
    if pid == 0 {
        // SAFETY: every pointer is a live C string or a NULL-terminated array of them.
        unsafe {
            libc::syscall(
                libc::SYS_execveat,
                fd,
                empty.as_ptr(),
                argv_ptrs.as_ptr(),
                envp.as_ptr(),
                libc::AT_EMPTY_PATH,
            );
            libc::_exit(127);
        }
    }
    // SAFETY: closing our copy of the memfd.
    unsafe { libc::close(fd) };
    wait_exec(pid as u32, format!("/memfd:{MEMFD_NAME}").as_bytes());
    (pid, meta.dev(), meta.ino())
}

extern "C" fn pause_forever(_: *mut libc::c_void) -> libc::c_int {
    loop {
        // SAFETY: a raw pause(2); the thread ends when its process is killed.
        unsafe { libc::syscall(libc::SYS_pause) };
    }
}

/// A process whose leader thread has exited while a second thread runs on. Returns its
/// pid and the running thread's tid. The child makes raw syscalls only (no allocation,
/// no locks) on memory prepared before the fork.
fn start_process_without_leader() -> (libc::pid_t, libc::pid_t) {
    let mut stack = vec![0u8; 64 * 1024];
    // SAFETY: the stack top of a live allocation, 16-byte aligned below its end.
    let top = unsafe { stack.as_mut_ptr().add(stack.len()) } as usize & !15;
    let mut fds = [0; 2];
    // SAFETY: fds is a valid array of two ints.
    assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
    // SAFETY: the child runs raw syscalls only, then ends its leader thread.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork: {}", std::io::Error::last_os_error());
    if pid == 0 {
        let flags = libc::CLONE_VM
            | libc::CLONE_FS
            | libc::CLONE_FILES
            | libc::CLONE_SIGHAND
            | libc::CLONE_THREAD
            | libc::CLONE_SYSVSEM;
        // SAFETY: the thread runs pause_forever on the child's copy of `stack`.
        let tid = unsafe {
            libc::clone(
                pause_forever,
                top as *mut libc::c_void,
                flags,
                std::ptr::null_mut(),
            )
        };
        // SAFETY: writes 4 bytes from a local; then only the leader thread exits.
        unsafe {
            libc::write(fds[1], (&tid as *const libc::c_int).cast(), 4);
            libc::syscall(libc::SYS_exit, 0);
        }
        unreachable!("SYS_exit returned");
    }
    // SAFETY: closing our copy of the write end; reading 4 bytes into a local.
    let mut tid: libc::c_int = 0;
    unsafe {
        libc::close(fds[1]);
        assert_eq!(
            libc::read(fds[0], (&mut tid as *mut libc::c_int).cast(), 4),
            4,
            "the child's thread id"
        );
        libc::close(fds[0]);
    }
    assert!(tid > 0, "clone failed in the child");
    // The leader is a zombie once it has exited; wait for that.
    let end = Instant::now() + Duration::from_secs(5);
    while proc_stat(pid as u32).map(|s| s.state) != Some('Z') {
        assert!(Instant::now() < end, "leader of {pid} did not exit");
        std::thread::sleep(Duration::from_millis(5));
    }
    drop(stack);
    (pid, tid)
}

#[derive(Clone, Debug, PartialEq, Eq)]
struct ProcStat {
    state: char,
    kthread: bool,
    start_ticks: u64,
}

/// The state, kernel-thread flag and start time of /proc/PID/stat.
fn proc_stat(pid: u32) -> Option<ProcStat> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The fields after the command name, which may itself hold spaces and parens.
    let rest: Vec<&str> = s[s.rfind(')')? + 2..].split(' ').collect();
    const PF_KTHREAD: u64 = 0x0020_0000;
    Some(ProcStat {
        state: rest[0].chars().next()?,
        kthread: rest[6].parse::<u64>().ok()? & PF_KTHREAD != 0,
        start_ticks: rest[19].parse().ok()?,
    })
}

/// Every user process /proc lists now, with its stat.
fn user_processes() -> Vec<(u32, ProcStat)> {
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter_map(|pid| Some((pid, proc_stat(pid)?)))
        .filter(|(_, s)| !s.kthread && s.state != 'Z' && s.state != 'X')
        .collect()
}

fn present<'a>(events: &'a [RawEvent], pid: u32, what: &str) -> &'a RawEvent {
    events
        .iter()
        .find(|e| e.task.pid == pid)
        .unwrap_or_else(|| panic!("{what} (pid {pid}) is not in the snapshot"))
}

fn body(e: &RawEvent) -> (&[u8], &[Vec<u8>], bool, u64, u64) {
    let RawBody::Present {
        exe,
        argv,
        argv_truncated,
        exe_dev,
        exe_ino,
    } = &e.body
    else {
        panic!("not a present event: {:?}", e.body)
    };
    (exe, argv, *argv_truncated, *exe_dev, *exe_ino)
}

/// The identity a live event of the same process must repeat exactly.
fn identity(e: &RawEvent) -> (u32, u32, u64, u64, u32, u32, u64, u64, u64, u64) {
    let t = &e.task;
    (
        t.pid,
        t.ppid,
        t.start_ns,
        t.parent_start_ns,
        t.uid,
        t.gid,
        t.cgroup_id,
        t.mnt_ns,
        t.pid_ns,
        t.net_ns,
    )
}

#[test]
fn processes_running_before_start_are_in_the_snapshot() {
    if !live_allowed("processes_running_before_start_are_in_the_snapshot") {
        return;
    }
    let me = std::process::id();
    let sleep = sleep_path();
    let sleep_exe = std::fs::canonicalize(&sleep).unwrap();
    let sleep_meta = std::fs::metadata(&sleep_exe).unwrap();

    // Everything below starts before the sensor.
    let (sh, sleeper) = start_shell_with_sleeper(&sleep);
    let sh_pid = sh.id();
    let mut reaper = Reaper(vec![sleeper as libc::pid_t, sh_pid as libc::pid_t]);
    let long_arg = "0".repeat(LONG_ARG_LEN);
    let long_ids: Vec<u32> = (0..LONG_SLEEPERS)
        .map(|_| {
            // The reaper kills and waits for it by pid.
            #[allow(clippy::zombie_processes)]
            let child = Command::new(&sleep)
                .arg("30")
                .args(std::iter::repeat_n(&long_arg, LONG_ARGS))
                .spawn()
                .expect("spawn a long-argv sleep");
            reaper.0.push(child.id() as libc::pid_t);
            child.id()
        })
        .collect();
    let (fileless, memfd_dev, memfd_ino) = start_fileless_sleeper(&sleep);
    reaper.0.push(fileless);
    let (leaderless, leaderless_tid) = start_process_without_leader();
    reaper.0.push(leaderless);
    let listed_before = user_processes();

    let mut sensor = Sensor::start(SensorConfig::default()).expect("sensor starts");
    let mut snap = Vec::new();
    let n = sensor.snapshot_processes(&mut snap).expect("snapshot");
    assert_eq!(n, snap.len());
    let listed_after = user_processes();

    // One event per process, by pid, none of them the sensor's own or a kernel thread.
    let pids: Vec<u32> = snap.iter().map(|e| e.task.pid).collect();
    assert!(pids.windows(2).all(|w| w[0] < w[1]), "not strictly by pid");
    assert!(!pids.contains(&me), "the sensor's own process is reported");
    for e in &snap {
        let kthread = proc_stat(e.task.pid).is_some_and(|s| s.kthread);
        assert!(!kthread, "kernel thread {} is reported", e.task.pid);
        assert_eq!(e.seq, 0);
        assert!(e.mono_ns > e.task.start_ns, "pid {}", e.task.pid);
        assert!(!e.task.comm.is_empty(), "pid {}", e.task.pid);
        let (exe, ..) = body(e);
        assert!(
            exe.len() > 1 && exe[0] == b'/',
            "pid {} exe {exe:?}",
            e.task.pid
        );
    }
    // Every user process listed by /proc both before and after (same start) is there.
    let after: BTreeSet<(u32, u64)> = listed_after
        .iter()
        .map(|(p, s)| (*p, s.start_ticks))
        .collect();
    let expected: BTreeSet<u32> = listed_before
        .iter()
        .filter(|(p, s)| *p != me && after.contains(&(*p, s.start_ticks)))
        .map(|(p, _)| *p)
        .collect();
    let got: BTreeSet<u32> = pids.iter().copied().collect();
    let missing: Vec<&u32> = expected.difference(&got).collect();
    assert!(missing.is_empty(), "processes missing: {missing:?}");

    // pid 1: its parent is the idle task (pid 0, started at 0). Its argv is copied when
    // the kernel's iteration yields it; this VM's hides it, and the program then
    // reports it from the namespace's reaper pointer, argv marked as not copied.
    let init = present(&snap, 1, "init");
    assert_eq!(
        (init.task.ppid, init.task.parent_start_ns, init.task.tid),
        (0, 0, 1)
    );
    let (_, argv, truncated, ..) = body(init);
    let cmdline = std::fs::read("/proc/1/cmdline").unwrap();
    let want: Vec<Vec<u8>> = cmdline
        .strip_suffix(&[0])
        .unwrap_or(&cmdline)
        .split(|b| *b == 0)
        .map(<[u8]>::to_vec)
        .take(MAX_ARGV)
        .collect();
    assert!(
        argv == &want[..] || (argv.is_empty() && truncated),
        "pid 1 argv {argv:?}"
    );

    // The shell and its sleep.
    let shell = present(&snap, sh_pid, "sh");
    let (exe, argv, truncated, dev, ino) = body(shell);
    let dash = std::fs::canonicalize("/bin/sh").unwrap();
    let dash_meta = std::fs::metadata(&dash).unwrap();
    assert_eq!(exe, dash.as_os_str().as_bytes());
    assert_eq!((dev, ino), (dash_meta.dev(), dash_meta.ino()));
    assert_eq!(argv[0], SH_MARKER.as_bytes());
    assert_eq!(argv[1], b"-c");
    assert!(!truncated);
    assert_eq!((shell.task.ppid, shell.task.tid), (me, sh_pid));
    assert_eq!(shell.task.comm, b"sh");

    let s = present(&snap, sleeper, "sleep");
    let (exe, argv, truncated, dev, ino) = body(s);
    assert_eq!(exe, sleep_exe.as_os_str().as_bytes());
    assert_eq!((dev, ino), (sleep_meta.dev(), sleep_meta.ino()));
    assert_eq!(
        argv,
        [sleep.as_os_str().as_bytes().to_vec(), b"30".to_vec()]
    );
    assert!(!truncated);
    assert_eq!(s.task.comm, b"sleep");
    assert_eq!((s.task.ppid, s.task.tid), (sh_pid, sleeper));
    // The parent's identity is the shell's own, as the kernel has it.
    assert_eq!(s.task.parent_start_ns, shell.task.start_ns);
    // SAFETY: getuid and getgid have no preconditions.
    let (uid, gid) = unsafe { (libc::getuid(), libc::getgid()) };
    assert_eq!((s.task.uid, s.task.gid, s.task.euid), (uid, gid, uid));

    // Long argv: cut at 8192 bytes like exec's, and marked. Four records of 12 KiB also
    // overflow one read of the iterator, so records are carried over between reads.
    for &pid in &long_ids {
        let e = present(&snap, pid, "long-argv sleep");
        let (_, argv, truncated, ..) = body(e);
        assert!(truncated, "pid {pid}: an argv of over 10 KiB is cut");
        assert_eq!(
            argv[..2],
            [sleep.as_os_str().as_bytes().to_vec(), b"30".to_vec()]
        );
        let copied: usize = argv.iter().map(Vec::len).sum::<usize>() + argv.len() - 1;
        assert_eq!(copied, 8192, "pid {pid}: the whole copy bound is used");
        assert!(argv.len() < LONG_ARGS && argv.len() <= MAX_ARGV);
        assert!(argv[2..].iter().all(|a| long_arg.as_bytes().starts_with(a)));
    }

    // Fileless: the executable is the memfd itself.
    let f = present(&snap, fileless as u32, "sleep run from a memfd");
    let (exe, argv, truncated, dev, ino) = body(f);
    assert_eq!(exe, format!("/memfd:{MEMFD_NAME}").as_bytes());
    assert_eq!((dev, ino), (memfd_dev, memfd_ino));
    assert_eq!(argv, [MEMFD_ARGV0.as_bytes().to_vec(), b"30".to_vec()]);
    assert!(!truncated);

    // A process whose leader exited: reported once, from its running thread.
    let l = present(&snap, leaderless as u32, "process without its leader");
    assert_eq!(l.task.tid, leaderless_tid as u32);
    assert_eq!(l.task.ppid, me);
    let (exe, argv, ..) = body(l);
    let test_exe = std::fs::canonicalize(std::env::current_exe().unwrap()).unwrap();
    assert_eq!(exe, test_exe.as_os_str().as_bytes());
    let own_argv: Vec<Vec<u8>> = std::env::args_os()
        .map(|a| a.as_bytes().to_vec())
        .take(MAX_ARGV)
        .collect();
    assert_eq!(argv, &own_argv[..]);
    let comm = std::fs::read(format!("/proc/{leaderless}/task/{leaderless_tid}/comm")).unwrap();
    assert_eq!(l.task.comm, comm.strip_suffix(b"\n").unwrap_or(&comm));

    // Again: the iterator can be read more than once, with the same answers.
    let mut again = Vec::new();
    sensor
        .snapshot_processes(&mut again)
        .expect("second snapshot");
    let s2 = present(&again, sleeper, "sleep, second snapshot");
    assert_eq!((identity(s2), &s2.body), (identity(s), &s.body));
    assert!(s2.mono_ns > s.mono_ns);

    // Their live events carry exactly the same identity: kill them and read their exits
    // (sh's wait returns when its sleep dies, and it then exits by itself).
    let killed: Vec<u32> = [sleeper, fileless as u32, leaderless as u32]
        .into_iter()
        .chain(long_ids.iter().copied())
        .collect();
    for &pid in &killed {
        // SAFETY: kill has no memory preconditions; these are our children.
        assert_eq!(unsafe { libc::kill(pid as libc::pid_t, libc::SIGKILL) }, 0);
    }
    let mut waiting: BTreeSet<u32> = killed.iter().copied().chain([sh_pid]).collect();
    let mut exits = Vec::new();
    let end = Instant::now() + Duration::from_secs(10);
    while !waiting.is_empty() && Instant::now() < end {
        let mut batch = Vec::new();
        sensor
            .poll(Duration::from_millis(100), &mut batch)
            .expect("poll");
        for e in batch {
            if matches!(e.body, RawBody::Exit { .. }) && waiting.remove(&e.task.pid) {
                exits.push(e);
            }
        }
    }
    assert!(waiting.is_empty(), "no exit event for {waiting:?}");
    for exit in &exits {
        let p = present(&snap, exit.task.pid, "exited process");
        assert_eq!(identity(exit), identity(p), "pid {}", exit.task.pid);
        assert!(exit.mono_ns > p.mono_ns);
    }
    let sleep_exit = exits.iter().find(|e| e.task.pid == sleeper).unwrap();
    assert_eq!(
        sleep_exit.body,
        RawBody::Exit {
            code: libc::SIGKILL
        }
    );
    drop(reaper);
    assert_eq!(sensor.drops().unwrap().total(), 0);
}
