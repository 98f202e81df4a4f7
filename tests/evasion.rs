//! Detections that hold however the technique is done (as root, under `ritma run`): several
//! variants of each technique run live - other syscalls, relative, absolute, dirfd and
//! non-canonical paths, symbolic links, fd paths, fds redirected in every way - and each one
//! must fire its cone; a look-alike that is not the technique must not. Paths are sealed
//! canonical, with the path as given beside them.

#[allow(dead_code)]
mod live;
#[allow(dead_code)]
mod util;

use live::{skip_without_root, token, wait_until_started};
use ritma_schemas::records::{AnyRecord, DictEntry, EventType};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::ffi::CString;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Stdio};
use util::{window_leaves, Dir, OutputExt};

fn cstr(s: impl AsRef<[u8]>) -> CString {
    CString::new(s.as_ref().to_vec()).expect("no NUL")
}

/// Runs `f` in a forked child and returns its pid. The child makes raw syscalls only (no
/// allocation: everything it needs is made before the fork) and exits with `f`'s code.
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

/// Waits for `pid`; its exit must be clean.
fn reap(pid: libc::pid_t, what: &str) {
    let mut status = 0;
    // SAFETY: status is a valid out-pointer.
    let rc = unsafe { libc::waitpid(pid, &mut status, 0) };
    assert_eq!(
        rc,
        pid,
        "waitpid {what}: {}",
        std::io::Error::last_os_error()
    );
    assert_eq!(
        status, 0,
        "{what} (pid {pid}) exited with status {status:#x}"
    );
}

/// A program that exits 0: a copy of /bin/true.
fn true_image() -> Vec<u8> {
    std::fs::read("/bin/true").expect("read /bin/true")
}

fn write_exe(path: &Path) {
    std::fs::write(path, true_image()).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

/// An argv and an empty environment for execve, kept alive by the caller.
struct Argv {
    _args: Vec<CString>,
    ptrs: Vec<*const libc::c_char>,
    envp: [*const libc::c_char; 1],
}

impl Argv {
    fn new(args: &[&str]) -> Argv {
        let args: Vec<CString> = args.iter().map(cstr).collect();
        let mut ptrs: Vec<_> = args.iter().map(|a| a.as_ptr()).collect();
        ptrs.push(std::ptr::null());
        Argv {
            _args: args,
            ptrs,
            envp: [std::ptr::null()],
        }
    }
}

/// In a forked child: writes `image` into a new memfd (created with `flags`) and runs it with
/// execveat(AT_EMPTY_PATH); returns only on failure, with the child's exit code.
unsafe fn exec_in_memfd(name: &CString, image: &[u8], flags: libc::c_uint, argv: &Argv) -> i32 {
    let fd = libc::syscall(libc::SYS_memfd_create, name.as_ptr(), flags) as i32;
    if fd < 0 || libc::write(fd, image.as_ptr().cast(), image.len()) != image.len() as isize {
        return 10;
    }
    libc::syscall(
        libc::SYS_execveat,
        fd,
        c"".as_ptr(),
        argv.ptrs.as_ptr(),
        argv.envp.as_ptr(),
        libc::AT_EMPTY_PATH,
    );
    11
}

/// The cone instances of the store, each as (cone, pid of the actor of its first event,
/// which may be sealed in an earlier window than the instance).
fn fired(store: &Path) -> BTreeSet<(String, u32)> {
    let (mut pids, mut actors, mut cones) = (HashMap::new(), HashMap::new(), Vec::new());
    for (_, leaves) in window_leaves(store) {
        for l in &leaves {
            match AnyRecord::decode(l).unwrap() {
                AnyRecord::Actor(a) => {
                    pids.insert(a.actor, a.pid);
                }
                AnyRecord::Event(e) => {
                    actors.insert(e.seq, e.actor);
                }
                AnyRecord::Cone(c) => cones.push(c),
                _ => {}
            }
        }
    }
    cones
        .into_iter()
        .filter_map(|c| {
            let pid = actors.get(&c.first_seq).and_then(|a| pids.get(a))?;
            Some((c.cone_id, *pid))
        })
        .collect()
}

/// A sealed event's pid, type, canonical path and path as given.
type SealedPath = (u32, EventType, Vec<u8>, Option<Vec<u8>>);

/// Every exec and open sealed in the store.
fn sealed_paths(store: &Path) -> Vec<SealedPath> {
    let mut out = Vec::new();
    for (_, leaves) in window_leaves(store) {
        let records: Vec<AnyRecord> = leaves
            .iter()
            .map(|l| AnyRecord::decode(l).unwrap())
            .collect();
        let dict: HashMap<_, _> = records
            .iter()
            .filter_map(|r| match r {
                AnyRecord::Dict(DictEntry { id, value, .. }) => Some((*id, value.clone())),
                _ => None,
            })
            .collect();
        let pids: HashMap<_, _> = records
            .iter()
            .filter_map(|r| match r {
                AnyRecord::Actor(a) => Some((a.actor, a.pid)),
                _ => None,
            })
            .collect();
        for r in &records {
            if let AnyRecord::Event(e) = r {
                if matches!(e.event_type, EventType::Exec | EventType::Open) {
                    out.push((
                        pids[&e.actor],
                        e.event_type,
                        dict[&e.object].clone(),
                        e.given_object().map(|g| dict[&g].clone()),
                    ));
                }
            }
        }
    }
    out
}

/// Connects a fresh TCP socket to `port` on loopback; returns its fd (in the parent, before
/// any fork, or in a child: only syscalls).
fn connect_loopback(port: u16) -> i32 {
    match connect_v4(libc::SOCK_STREAM, [127, 0, 0, 1], port) {
        (s, 0) => s,
        _ => -1,
    }
}

/// A new IPv4 socket of type `ty` (SOCK_STREAM, SOCK_DGRAM) connected to `addr:port`: its fd
/// and connect's result. Only syscalls, so a forked child may call it.
fn connect_v4(ty: i32, addr: [u8; 4], port: u16) -> (i32, i32) {
    // SAFETY: plain socket calls on a local sockaddr.
    unsafe {
        let s = libc::socket(libc::AF_INET, ty, 0);
        let mut a: libc::sockaddr_in = std::mem::zeroed();
        a.sin_family = libc::AF_INET as libc::sa_family_t;
        a.sin_port = port.to_be();
        a.sin_addr.s_addr = u32::from_ne_bytes(addr);
        let rc = libc::connect(
            s,
            (&a as *const libc::sockaddr_in).cast(),
            std::mem::size_of::<libc::sockaddr_in>() as u32,
        );
        (s, rc)
    }
}

/// A loopback TCP server that accepts and holds every connection; returns its port.
fn holding_server() -> u16 {
    let server = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = server.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for c in server.incoming() {
            held.push(c);
        }
    });
    port
}

/// One capture at a time: the tests of this file each run `ritma run`.
static LIVE: std::sync::Mutex<()> = std::sync::Mutex::new(());

#[test]
fn every_variant_of_each_technique_fires_its_cone_live() {
    if skip_without_root("every_variant_of_each_technique_fires_its_cone_live") {
        return;
    }
    let _one = LIVE.lock().unwrap_or_else(|e| e.into_inner());
    let d = Dir::new();
    let store = d.join("s");
    // Under /tmp, where droppers write (deleted_binary_exec watches it).
    let work = std::path::PathBuf::from(format!("/tmp/ritma-evasion-{}", token()));
    std::fs::create_dir_all(work.join("sub")).unwrap();
    let w = |name: &str| work.join(name).to_str().unwrap().to_owned();

    // A server the redirected shells connect to; it holds their connections.
    let port = holding_server();

    let mut run = Command::new(env!("CARGO_BIN_EXE_ritma"))
        .args(["run", "--out", "s", "--node", "evasion", "--duration", "6"])
        .current_dir(d.path())
        .env_remove("RITMA_NODE_ID")
        .env_remove("RITMA_OUT")
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_until_started(&mut run, || store.join("wal").is_dir());
    std::thread::sleep(std::time::Duration::from_millis(300));

    let mut expect: Vec<(&str, &str, libc::pid_t)> = Vec::new();
    let sh = Argv::new(&["sh", "-c", "exit 0"]);
    let tru = Argv::new(&["true"]);
    let sh_path = cstr("/bin/sh");
    let work_c = cstr(work.to_str().unwrap());

    // --- deleted_binary_exec: run a dropped program, then delete it -----------------------
    // A: exec'd and unlinked as ./a from its directory.
    write_exe(&work.join("a"));
    let dot_a = cstr("./a");
    let pid = in_child(|| unsafe {
        if libc::chdir(work_c.as_ptr()) != 0 {
            return 10;
        }
        libc::execve(dot_a.as_ptr(), tru.ptrs.as_ptr(), tru.envp.as_ptr());
        11
    });
    reap(pid, "exec ./a");
    expect.push(("deleted_binary_exec", "exec ./a, unlink ./a", pid));
    let unlinker = in_child(|| unsafe {
        if libc::chdir(work_c.as_ptr()) != 0 {
            return 10;
        }
        (libc::unlink(dot_a.as_ptr()) != 0) as i32
    });
    reap(unlinker, "unlink ./a");

    // B: exec'd as W//./b, unlinked with unlinkat(dirfd of W, "b").
    write_exe(&work.join("b"));
    let b_odd = cstr(format!("{}//./b", work.display()));
    let b_name = cstr("b");
    let pid = in_child(|| unsafe {
        libc::execve(b_odd.as_ptr(), tru.ptrs.as_ptr(), tru.envp.as_ptr());
        11
    });
    reap(pid, "exec W//./b");
    expect.push((
        "deleted_binary_exec",
        "exec W//./b, unlinkat(dirfd, b)",
        pid,
    ));
    let unlinker = in_child(|| unsafe {
        let dfd = libc::open(work_c.as_ptr(), libc::O_RDONLY | libc::O_DIRECTORY);
        if dfd < 0 {
            return 10;
        }
        (libc::unlinkat(dfd, b_name.as_ptr(), 0) != 0) as i32
    });
    reap(unlinker, "unlinkat b");

    // C: exec'd through a symbolic link, unlinked as W/sub/../c.
    write_exe(&work.join("c"));
    std::os::unix::fs::symlink(work.join("c"), work.join("c-link")).unwrap();
    let c_link = cstr(w("c-link"));
    let c_odd = cstr(format!("{}/sub/../c", work.display()));
    let pid = in_child(|| unsafe {
        libc::execve(c_link.as_ptr(), tru.ptrs.as_ptr(), tru.envp.as_ptr());
        11
    });
    reap(pid, "exec c-link");
    expect.push((
        "deleted_binary_exec",
        "exec via a symlink, unlink W/sub/../c",
        pid,
    ));
    let unlinker = in_child(|| unsafe { (libc::unlink(c_odd.as_ptr()) != 0) as i32 });
    reap(unlinker, "unlink W/sub/../c");

    // --- memfd_exec: run a program from an anonymous memory file --------------------------
    let image = true_image();
    let memfd_name = cstr("ritma-evasion");
    let memfd = |flags: libc::c_uint| -> i32 {
        // SAFETY: raw syscalls on buffers that outlive the call.
        unsafe {
            let fd = libc::syscall(libc::SYS_memfd_create, memfd_name.as_ptr(), flags) as i32;
            if fd < 0 || libc::write(fd, image.as_ptr().cast(), image.len()) != image.len() as isize
            {
                return -1;
            }
            fd
        }
    };
    // A and B: execveat(fd, "", AT_EMPTY_PATH), without and with MFD_CLOEXEC.
    for (flags, what) in [
        (0, "execveat of a memfd"),
        (libc::MFD_CLOEXEC, "execveat of a CLOEXEC memfd"),
    ] {
        let pid = in_child(|| unsafe { exec_in_memfd(&memfd_name, &image, flags, &tru) });
        reap(pid, what);
        expect.push(("memfd_exec", what, pid));
    }
    // C: execve("/proc/self/fd/N") of its own memfd.
    let fd_path = [0u8; 64];
    let pid = in_child(|| unsafe {
        let fd = memfd(0);
        if fd < 0 {
            return 10;
        }
        let mut p = fd_path;
        let prefix = b"/proc/self/fd/";
        p[..prefix.len()].copy_from_slice(prefix);
        let mut n = fd as u32;
        let mut digits = [0u8; 10];
        let mut k = 0;
        loop {
            digits[k] = b'0' + (n % 10) as u8;
            k += 1;
            n /= 10;
            if n == 0 {
                break;
            }
        }
        for i in 0..k {
            p[prefix.len() + i] = digits[k - 1 - i];
        }
        libc::execve(p.as_ptr().cast(), tru.ptrs.as_ptr(), tru.envp.as_ptr());
        11
    });
    reap(pid, "exec /proc/self/fd/N");
    expect.push(("memfd_exec", "execve of /proc/self/fd/N", pid));
    // D: another process runs it through /proc/PID/fd/N (the creator never execs).
    let fd = memfd(0);
    assert!(fd >= 0, "memfd_create");
    let other = cstr(format!("/proc/{}/fd/{fd}", std::process::id()));
    let pid = in_child(|| unsafe {
        libc::execve(other.as_ptr(), tru.ptrs.as_ptr(), tru.envp.as_ptr());
        11
    });
    reap(pid, "exec /proc/PID/fd/N");
    expect.push((
        "memfd_exec",
        "another process's memfd through /proc/PID/fd/N",
        pid,
    ));
    // SAFETY: fd is ours.
    unsafe { libc::close(fd) };

    // --- shell_stdio_socket: a shell started with its stdio on a TCP connection -----------
    // A: dup2 onto 0, 1 and 2.
    let pid = in_child(|| unsafe {
        let s = connect_loopback(port);
        if s < 0 || libc::dup2(s, 0) < 0 || libc::dup2(s, 1) < 0 || libc::dup2(s, 2) < 0 {
            return 10;
        }
        libc::execve(sh_path.as_ptr(), sh.ptrs.as_ptr(), sh.envp.as_ptr());
        11
    });
    reap(pid, "dup2 shell");
    expect.push(("shell_stdio_socket", "dup2 onto 0-2", pid));
    // B: dup3 onto 0 and 1.
    let pid = in_child(|| unsafe {
        let s = connect_loopback(port);
        if s < 0 || libc::dup3(s, 0, 0) < 0 || libc::dup3(s, 1, 0) < 0 {
            return 10;
        }
        libc::execve(sh_path.as_ptr(), sh.ptrs.as_ptr(), sh.envp.as_ptr());
        11
    });
    reap(pid, "dup3 shell");
    expect.push(("shell_stdio_socket", "dup3 onto 0 and 1", pid));
    // C: fcntl(F_DUPFD) into a closed stdin.
    let pid = in_child(|| unsafe {
        let s = connect_loopback(port);
        if s < 0 {
            return 10;
        }
        libc::close(0);
        if libc::fcntl(s, libc::F_DUPFD, 0) != 0 {
            return 11;
        }
        libc::execve(sh_path.as_ptr(), sh.ptrs.as_ptr(), sh.envp.as_ptr());
        12
    });
    reap(pid, "fcntl shell");
    expect.push(("shell_stdio_socket", "fcntl(F_DUPFD) into fd 0", pid));
    // D: no dup at all: stdout closed, so the socket itself is made on fd 1.
    let pid = in_child(|| unsafe {
        libc::close(1);
        if connect_loopback(port) != 1 {
            return 10;
        }
        libc::execve(sh_path.as_ptr(), sh.ptrs.as_ptr(), sh.envp.as_ptr());
        11
    });
    reap(pid, "socket-on-stdout shell");
    expect.push((
        "shell_stdio_socket",
        "a socket made on the closed fd 1",
        pid,
    ));

    // --- look-alikes that must not fire -----------------------------------------------------
    // A shell whose stdio is a pipe and a unix socket; a program kept after it ran.
    let mut lookalikes = Vec::new();
    let pid = in_child(|| unsafe {
        let mut p = [0; 2];
        let mut u = [0; 2];
        if libc::pipe(p.as_mut_ptr()) != 0
            || libc::socketpair(libc::AF_UNIX, libc::SOCK_STREAM, 0, u.as_mut_ptr()) != 0
            || libc::dup2(p[0], 0) < 0
            || libc::dup2(u[0], 1) < 0
        {
            return 10;
        }
        libc::execve(sh_path.as_ptr(), sh.ptrs.as_ptr(), sh.envp.as_ptr());
        11
    });
    reap(pid, "piped shell");
    lookalikes.push((
        "shell_stdio_socket",
        "a shell on a pipe and a unix socket",
        pid,
    ));
    write_exe(&work.join("kept"));
    let kept = cstr(w("kept"));
    let pid = in_child(|| unsafe {
        libc::execve(kept.as_ptr(), tru.ptrs.as_ptr(), tru.envp.as_ptr());
        11
    });
    reap(pid, "kept program");
    lookalikes.push(("deleted_binary_exec", "a dropped program that stays", pid));

    // Canonical paths in the store: /bin/true as run, and an open through `..`.
    let bin_true = cstr("/bin/true");
    let true_pid = in_child(|| unsafe {
        libc::execve(bin_true.as_ptr(), tru.ptrs.as_ptr(), tru.envp.as_ptr());
        11
    });
    reap(true_pid, "/bin/true");
    std::fs::write(work.join("o"), b"x").unwrap();
    let odd_open = cstr(format!("{}/sub/../o", work.display()));
    let open_pid = in_child(|| unsafe {
        let fd = libc::open(odd_open.as_ptr(), libc::O_RDONLY);
        (fd < 0) as i32
    });
    reap(open_pid, "open W/sub/../o");

    let out = run.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "ritma run failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::remove_dir_all(&work).unwrap();

    let fired = fired(&store);
    eprintln!("cones fired: {fired:?}");
    let mut missed = Vec::new();
    for (cone, what, pid) in &expect {
        if !fired.contains(&(cone.to_string(), *pid as u32)) {
            missed.push(format!("{cone}: {what} (pid {pid})"));
        }
    }
    assert!(
        missed.is_empty(),
        "variants that did not fire: {missed:#?}\nfired: {fired:?}"
    );
    for (cone, what, pid) in &lookalikes {
        assert!(
            !fired.contains(&(cone.to_string(), *pid as u32)),
            "{cone} fired on a look-alike: {what}"
        );
    }

    // Sealed paths are canonical, with the path as given beside them.
    let paths = sealed_paths(&store);
    let real_true = std::fs::canonicalize("/bin/true").unwrap();
    let real_true = real_true.to_str().unwrap().as_bytes();
    let t = paths
        .iter()
        .find(|p| p.0 == true_pid as u32 && p.1 == EventType::Exec)
        .expect("the /bin/true exec is sealed");
    assert_eq!(t.2, real_true);
    if real_true != b"/bin/true" {
        assert_eq!(t.3.as_deref(), Some(b"/bin/true".as_slice()));
    }
    let o = paths
        .iter()
        .find(|p| p.0 == open_pid as u32 && p.1 == EventType::Open)
        .expect("the open is sealed");
    assert_eq!(o.2, w("o").as_bytes());
    assert_eq!(o.3.as_deref(), Some(odd_open.as_bytes()));

    // And `ritma query path` finds them by the canonical path, or any spelling of it.
    for (path, pid) in [
        (std::str::from_utf8(real_true).unwrap().to_owned(), true_pid),
        (w("o"), open_pid),
        (format!("{}/./sub/..//o", work.display()), open_pid),
    ] {
        let rows = d
            .ritma(&["query", "s", "path", &path, "--json"])
            .output()
            .success();
        let pids: BTreeMap<u64, ()> = rows
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .filter_map(|v| v["pid"].as_u64())
            .map(|p| (p, ()))
            .collect();
        assert!(
            pids.contains_key(&(pid as u64)),
            "query path {path}: {rows}"
        );
    }
}

/// A 32-bit (ia32 compat) syscall made with `int 0x80` from this 64-bit process: the kernel
/// runs it, but the syscall tracepoints never see compat calls.
#[cfg(target_arch = "x86_64")]
unsafe fn int80(nr: u32, a: u32, b: u32, c: u32) -> i32 {
    let ret: i32;
    // SAFETY (caller's): only numeric arguments. rbx is LLVM's, so it is swapped in and out.
    std::arch::asm!(
        "xchg {a:r}, rbx",
        "int 0x80",
        "xchg {a:r}, rbx",
        a = inout(reg) a as u64 => _,
        inlateout("eax") nr as i32 => ret,
        in("ecx") b,
        in("edx") c,
        out("r8") _, out("r9") _, out("r10") _, out("r11") _,
        out("r12") _, out("r13") _, out("r14") _, out("r15") _,
    );
    ret
}

/// A word a tracer writes into its tracee (a fork of this process, so at the same address).
static INJECT_WORD: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(7);

/// A child that waits to be killed (a ptrace target).
fn idle_child() -> libc::pid_t {
    // SAFETY: pause in a loop, nothing else.
    in_child(|| loop {
        unsafe { libc::pause() };
    })
}

fn kill_and_reap(pid: libc::pid_t) {
    // SAFETY: our own child.
    unsafe {
        libc::kill(pid, libc::SIGKILL);
        libc::waitpid(pid, std::ptr::null_mut(), 0);
    }
}

/// The real path of the Python interpreter on PATH (not a shim script), if there is one.
fn python() -> Option<String> {
    let out = Command::new("python3")
        .args(["-c", "import sys; print(sys.executable)"])
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

/// Spawns `program args` and waits; returns its pid (it must exit 0).
fn spawned(program: &str, args: &[&str]) -> libc::pid_t {
    let mut c = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("{program}: {e}"));
    let pid = c.id() as libc::pid_t;
    let st = c.wait().unwrap();
    assert!(st.success(), "{program} {args:?}: {st}");
    pid
}

/// Opens `path` (relative to `dir` when given, else to the cwd `cwd` when given) in a child.
fn open_in_child(
    cwd: Option<&CString>,
    dir: Option<&CString>,
    path: &CString,
    flags: i32,
) -> libc::pid_t {
    in_child(|| unsafe {
        if let Some(c) = cwd {
            if libc::chdir(c.as_ptr()) != 0 {
                return 10;
            }
        }
        let fd = match dir {
            Some(d) => {
                let dfd = libc::open(d.as_ptr(), libc::O_RDONLY | libc::O_DIRECTORY);
                libc::openat(dfd, path.as_ptr(), flags, 0o644)
            }
            None => libc::open(path.as_ptr(), flags, 0o644),
        };
        (fd < 0) as i32
    })
}

#[test]
fn every_cone_of_the_library_fires_on_each_variant_live() {
    if skip_without_root("every_cone_of_the_library_fires_on_each_variant_live") {
        return;
    }
    let _one = LIVE.lock().unwrap_or_else(|e| e.into_inner());
    let python = python().expect("python3 on PATH (the interpreter variants need it)");
    let d = Dir::new();
    let store = d.join("s");
    let tok = token();
    let work = std::path::PathBuf::from(format!("/tmp/ritma-cones-{tok}"));
    for sub in ["home/.ssh", "cg"] {
        std::fs::create_dir_all(work.join(sub)).unwrap();
    }
    let w = |name: &str| work.join(name).to_str().unwrap().to_owned();
    let c = |s: &str| cstr(s);
    let log = format!("/var/log/ritma-cones-{tok}.log");
    let shm = |n: &str| format!("/dev/shm/ritma-cones-{tok}-{n}");
    let run_dir = format!("/run/ritma-cones-{tok}");
    std::fs::create_dir_all(&run_dir).unwrap();
    std::fs::write(&log, b"x\n").unwrap();
    let cleanup = [log.clone(), shm("x"), shm("d3")];

    // The baseline of known binaries: /bin/true only, so its copies are known and any
    // changed byte is not.
    let image = true_image();
    let baseline = d.join("baseline.b3");
    std::fs::write(
        &baseline,
        format!("{}  /bin/true\n", blake3::hash(&image).to_hex()),
    )
    .unwrap();
    let mut changed = image.clone();
    changed.push(0);

    let port = holding_server();

    let mut run = Command::new(env!("CARGO_BIN_EXE_ritma"))
        .args(["run", "--out", "s", "--node", "cones", "--duration", "20"])
        .arg("--baseline")
        .arg(&baseline)
        .current_dir(d.path())
        .env_remove("RITMA_NODE_ID")
        .env_remove("RITMA_OUT")
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_until_started(&mut run, || store.join("wal").is_dir());
    std::thread::sleep(std::time::Duration::from_millis(300));
    let started = std::time::Instant::now();

    let mut expect: Vec<(&str, String, libc::pid_t)> = Vec::new();
    let mut lookalikes: Vec<(&str, String, libc::pid_t)> = Vec::new();
    let tru = Argv::new(&["true"]);

    // --- shell_stdio_redirect: a running interpreter puts a connection on its stdio -------
    let connect_py = format!(
        "import socket,os,fcntl; s=socket.create_connection(('127.0.0.1',{port})); f=s.fileno()"
    );
    for (what, code) in [
        ("python os.dup2 onto 0", "os.dup2(f,0)"),
        (
            "python os.dup2(inheritable=False), a dup3, onto 1",
            "os.dup2(f,1,inheritable=False)",
        ),
        (
            "python fcntl F_DUPFD into a closed 2",
            "os.close(2); fcntl.fcntl(f,fcntl.F_DUPFD,0)",
        ),
        ("python dup into a closed 0", "os.close(0); os.dup(f)"),
    ] {
        let pid = spawned(&python, &["-c", &format!("{connect_py}; {code}")]);
        expect.push(("shell_stdio_redirect", what.into(), pid));
    }
    let pid = spawned(
        "bash",
        &[
            "-c",
            &format!("exec 3<>/dev/tcp/127.0.0.1/{port}; exec 1>&3; exit 0"),
        ],
    );
    expect.push((
        "shell_stdio_redirect",
        "bash exec 1>&3 of /dev/tcp".into(),
        pid,
    ));
    let pid = spawned(
        &python,
        &["-c", "import os,socket; r,w=os.pipe(); os.dup2(w,1); a,b=socket.socketpair(); os.dup2(a.fileno(),0)"],
    );
    lookalikes.push((
        "shell_stdio_redirect",
        "python stdio onto a pipe and a unix socket".into(),
        pid,
    ));
    // (A program that is not a shell is not one either; this test's own binary cannot show
    // it live, since it runs from /var/tmp, a world-writable directory the cone watches.)

    // --- log_clear: a log emptied by an open with O_TRUNC ----------------------------------
    let (log_c, log_name) = (c(&log), c(log.rsplit('/').next().unwrap()));
    let (var_log, log_link) = (c("/var/log"), c(&w("loglink")));
    std::os::unix::fs::symlink(&log, w("loglink")).unwrap();
    for (what, cwd, dir, path, flags) in [
        (
            "absolute O_WRONLY|O_TRUNC",
            None,
            None,
            &log_c,
            libc::O_WRONLY | libc::O_TRUNC,
        ),
        (
            "relative from /var/log, O_RDWR|O_TRUNC",
            Some(&var_log),
            None,
            &log_name,
            libc::O_RDWR | libc::O_TRUNC,
        ),
        (
            "through a symlink in /tmp",
            None,
            None,
            &log_link,
            libc::O_WRONLY | libc::O_TRUNC,
        ),
        (
            "openat of /var/log's fd, O_CREAT|O_TRUNC",
            None,
            Some(&var_log),
            &log_name,
            libc::O_WRONLY | libc::O_CREAT | libc::O_TRUNC,
        ),
    ] {
        let pid = open_in_child(cwd, dir, path, flags);
        reap(pid, what);
        expect.push(("log_clear", what.into(), pid));
    }
    let pid = open_in_child(None, None, &log_c, libc::O_WRONLY | libc::O_APPEND);
    reap(pid, "append to a log");
    lookalikes.push(("log_clear", "an append to a log".into(), pid));

    // --- release_agent_write: the cgroup v1 escape's file (a stand-in named like it) --------
    std::fs::write(w("cg/release_agent"), b"").unwrap();
    std::os::unix::fs::symlink(w("cg/release_agent"), w("ra-link")).unwrap();
    let (ra, cg, ra_name, ra_link) = (
        c(&w("cg/release_agent")),
        c(&w("cg")),
        c("release_agent"),
        c(&w("ra-link")),
    );
    for (what, cwd, dir, path) in [
        ("absolute", None, None, &ra),
        (
            "relative from its cgroup directory",
            Some(&cg),
            None,
            &ra_name,
        ),
        ("openat of the directory's fd", None, Some(&cg), &ra_name),
        ("through a symlink", None, None, &ra_link),
    ] {
        let pid = open_in_child(cwd, dir, path, libc::O_WRONLY);
        reap(pid, what);
        expect.push(("release_agent_write", what.into(), pid));
    }
    let pid = open_in_child(None, None, &ra, libc::O_RDONLY);
    reap(pid, "read release_agent");
    lookalikes.push(("release_agent_write", "a read".into(), pid));

    // --- persistence_write: start-up files and authorized keys written ----------------------
    std::os::unix::fs::symlink(w("home/.profile"), w("innocent")).unwrap();
    let (home, ssh) = (c(&w("home")), c(&w("home/.ssh")));
    let (bashrc, ak_rel, innocent, ak) = (
        c(&w("home/.bashrc")),
        c(".ssh/authorized_keys"),
        c(&w("innocent")),
        c("authorized_keys"),
    );
    for (what, cwd, dir, path, flags) in [
        (
            "absolute ~/.bashrc, O_APPEND",
            None,
            None,
            &bashrc,
            libc::O_WRONLY | libc::O_CREAT | libc::O_APPEND,
        ),
        (
            "relative .ssh/authorized_keys",
            Some(&home),
            None,
            &ak_rel,
            libc::O_WRONLY | libc::O_CREAT,
        ),
        (
            "~/.profile through a symlink",
            None,
            None,
            &innocent,
            libc::O_WRONLY | libc::O_CREAT,
        ),
        (
            "openat of ~/.ssh's fd, O_RDWR",
            None,
            Some(&ssh),
            &ak,
            libc::O_RDWR,
        ),
    ] {
        let pid = open_in_child(cwd, dir, path, flags);
        reap(pid, what);
        expect.push(("persistence_write", what.into(), pid));
    }
    let pid = open_in_child(None, None, &bashrc, libc::O_RDONLY);
    reap(pid, "read .bashrc");
    lookalikes.push(("persistence_write", "a read of ~/.bashrc".into(), pid));

    // --- persistence_rename: a file written elsewhere, moved into place ----------------------
    for n in ["p1", "p2", "p3", "p4"] {
        std::fs::write(w(n), b"x").unwrap();
    }
    let (p1, p2_rel, profile_rel, p3, notes) = (
        c(&w("p1")),
        c("../p2"),
        c(".profile"),
        c("p3"),
        c(&w("home/notes")),
    );
    let (work_c, p4) = (c(work.to_str().unwrap()), c(&w("p4")));
    let pid = in_child(|| unsafe { (libc::rename(p1.as_ptr(), bashrc.as_ptr()) != 0) as i32 });
    reap(pid, "rename onto .bashrc");
    expect.push(("persistence_rename", "rename onto ~/.bashrc".into(), pid));
    let pid = in_child(|| unsafe {
        if libc::chdir(home.as_ptr()) != 0 {
            return 10;
        }
        (libc::rename(p2_rel.as_ptr(), profile_rel.as_ptr()) != 0) as i32
    });
    reap(pid, "relative rename onto .profile");
    expect.push((
        "persistence_rename",
        "relative ../p2 onto .profile".into(),
        pid,
    ));
    let pid = in_child(|| unsafe {
        let a = libc::open(work_c.as_ptr(), libc::O_RDONLY | libc::O_DIRECTORY);
        let b = libc::open(ssh.as_ptr(), libc::O_RDONLY | libc::O_DIRECTORY);
        (libc::syscall(libc::SYS_renameat2, a, p3.as_ptr(), b, ak.as_ptr(), 0) != 0) as i32
    });
    reap(pid, "renameat2 onto authorized_keys");
    expect.push((
        "persistence_rename",
        "renameat2 of dirfds onto authorized_keys".into(),
        pid,
    ));
    let pid = in_child(|| unsafe { (libc::rename(p4.as_ptr(), notes.as_ptr()) != 0) as i32 });
    reap(pid, "rename onto notes");
    lookalikes.push((
        "persistence_rename",
        "a rename into the home directory".into(),
        pid,
    ));

    // --- data_destruction: shred run three ways ---------------------------------------------
    for n in ["v1", "v2", "v3"] {
        std::fs::write(w(n), b"secret").unwrap();
    }
    std::os::unix::fs::symlink("/usr/bin/shred", w("cleanup")).unwrap();
    let pid = spawned("/usr/bin/shred", &["-n", "1", &w("v1")]);
    expect.push(("data_destruction", "/usr/bin/shred".into(), pid));
    let pid = spawned(&w("cleanup"), &["-n", "1", &w("v2")]);
    expect.push((
        "data_destruction",
        "shred through a symlink named cleanup".into(),
        pid,
    ));
    let (usr_bin, dot_shred) = (c("/usr/bin"), c("./shred"));
    let shred_argv = Argv::new(&["shred", "-n", "1", &w("v3")]);
    let pid = in_child(|| unsafe {
        if libc::chdir(usr_bin.as_ptr()) != 0 {
            return 10;
        }
        libc::execve(
            dot_shred.as_ptr(),
            shred_argv.ptrs.as_ptr(),
            shred_argv.envp.as_ptr(),
        );
        11
    });
    reap(pid, "./shred");
    expect.push(("data_destruction", "./shred from /usr/bin".into(), pid));

    // --- secrets_read and secrets_then_egress ------------------------------------------------
    std::os::unix::fs::symlink("/etc/shadow", w("s")).unwrap();
    let (shadow, etc, shadow_rel, s_link, gshadow_dot, odd) = (
        c("/etc/shadow"),
        c("/etc"),
        c("shadow"),
        c(&w("s")),
        c("./gshadow"),
        c("/etc//./shadow"),
    );
    for (what, cwd, dir, path) in [
        ("absolute", None, None, &shadow),
        ("relative from /etc", Some(&etc), None, &shadow_rel),
        ("through a symlink in /tmp", None, None, &s_link),
        (
            "openat of /etc's fd, ./gshadow",
            None,
            Some(&etc),
            &gshadow_dot,
        ),
        ("/etc//./shadow", None, None, &odd),
    ] {
        let pid = open_in_child(cwd, dir, path, libc::O_RDONLY);
        reap(pid, what);
        expect.push(("secrets_read", what.into(), pid));
    }
    let pid = open_in_child(None, None, &c("/etc/passwd"), libc::O_RDONLY);
    reap(pid, "read passwd");
    lookalikes.push(("secrets_read", "a read of /etc/passwd".into(), pid));
    let udp = |addr: [u8; 4], port: u16| connect_v4(libc::SOCK_DGRAM, addr, port).1;
    for (what, kind) in [
        ("absolute read, TCP", 0),
        ("read through a symlink, UDP", 1),
        ("relative read, UDP to 127.0.0.2", 2),
    ] {
        let pid = in_child(|| unsafe {
            let fd = match kind {
                0 => libc::open(shadow.as_ptr(), libc::O_RDONLY),
                1 => libc::open(s_link.as_ptr(), libc::O_RDONLY),
                _ => {
                    if libc::chdir(etc.as_ptr()) != 0 {
                        return 9;
                    }
                    libc::open(shadow_rel.as_ptr(), libc::O_RDONLY)
                }
            };
            if fd < 0 {
                return 10;
            }
            let ok = match kind {
                0 => connect_loopback(port) >= 0,
                1 => udp([127, 0, 0, 1], 9) == 0,
                _ => udp([127, 0, 0, 2], 9) == 0,
            };
            (!ok) as i32
        });
        reap(pid, what);
        expect.push(("secrets_then_egress", what.into(), pid));
    }

    // --- priv_esc_setuid: a process with a saved uid of 0 takes euid 0 back -----------------
    for (what, call) in [
        ("setuid(0)", 0),
        ("setreuid(-1, 0)", 1),
        ("setresuid(-1, 0, -1)", 2),
    ] {
        let pid = in_child(|| unsafe {
            if libc::syscall(libc::SYS_setresuid, 1000, 1000, 0) != 0 {
                return 10;
            }
            let rc = match call {
                0 => libc::syscall(libc::SYS_setuid, 0),
                1 => libc::syscall(libc::SYS_setreuid, -1, 0),
                _ => libc::syscall(libc::SYS_setresuid, -1, 0, -1),
            };
            (rc != 0 || libc::geteuid() != 0) as i32
        });
        reap(pid, what);
        expect.push(("priv_esc_setuid", what.into(), pid));
    }
    let pid = in_child(|| unsafe { (libc::syscall(libc::SYS_setuid, 0) != 0) as i32 });
    reap(pid, "root setuid(0)");
    lookalikes.push(("priv_esc_setuid", "root calling setuid(0)".into(), pid));

    // --- uid0_without_setuid_exec: euid 0 taken by a call the sensor cannot see -------------
    // A 32-bit set*uid through int 0x80 (the tracepoints miss compat calls, as they would miss
    // a kernel exploit's credential write); the process's next event shows euid 0.
    #[cfg(target_arch = "x86_64")]
    {
        let probe = c(&w("probe"));
        std::fs::write(w("probe"), b"").unwrap();
        for (what, nr, a, b, cc) in [
            (
                "int 0x80 setresuid32(-1, 0, -1), then an open",
                208,
                u32::MAX,
                0,
                u32::MAX,
            ),
            (
                "int 0x80 setreuid32(-1, 0), then an open",
                203,
                u32::MAX,
                0,
                0,
            ),
            ("int 0x80 setuid32(0), then an open", 213, 0, 0, 0),
        ] {
            let pid = in_child(|| unsafe {
                if libc::syscall(libc::SYS_setresuid, 1000, 1000, 0) != 0 || libc::geteuid() != 1000
                {
                    return 10;
                }
                if int80(nr, a, b, cc) != 0 || libc::geteuid() != 0 {
                    return 11;
                }
                (libc::open(probe.as_ptr(), libc::O_RDONLY) < 0) as i32
            });
            reap(pid, what);
            expect.push(("uid0_without_setuid_exec", what.into(), pid));
        }
        let pid = in_child(|| unsafe {
            if libc::syscall(libc::SYS_setresuid, 1000, 1000, 0) != 0
                || libc::syscall(libc::SYS_setresuid, -1, 0, -1) != 0
            {
                return 10;
            }
            (libc::open(probe.as_ptr(), libc::O_RDONLY) < 0) as i32
        });
        reap(pid, "honest setresuid");
        lookalikes.push((
            "uid0_without_setuid_exec",
            "euid 0 by a seen setresuid".into(),
            pid,
        ));
    }

    // --- ptrace_attach and ptrace_inject ------------------------------------------------------
    const SEIZE: libc::c_uint = 0x4206;
    const INTERRUPT: libc::c_uint = 0x4207;
    let addr = INJECT_WORD.as_ptr() as usize;
    let sleeper = Command::new("/bin/sleep").arg("30").spawn().unwrap();
    let sleeper_pid = sleeper.id() as libc::pid_t;
    std::thread::sleep(std::time::Duration::from_millis(100));
    for (what, how) in [
        ("PTRACE_ATTACH", 0),
        ("PTRACE_SEIZE", 1),
        ("PTRACE_ATTACH to an exec'd sleep", 2),
    ] {
        let target = if how == 2 { sleeper_pid } else { idle_child() };
        let pid = in_child(|| unsafe {
            let rc = match how {
                1 => libc::ptrace(SEIZE, target, 0, 0),
                _ => libc::ptrace(libc::PTRACE_ATTACH, target, 0, 0),
            };
            if rc != 0 {
                return 10;
            }
            if how != 1 && libc::waitpid(target, std::ptr::null_mut(), libc::__WALL) != target {
                return 11;
            }
            if how != 1 {
                libc::ptrace(libc::PTRACE_DETACH, target, 0, 0);
            }
            0
        });
        reap(pid, what);
        expect.push(("ptrace_attach", what.into(), pid));
        if how != 2 {
            kill_and_reap(target);
        }
    }
    for (what, how) in [
        ("attach, POKETEXT", 0),
        ("seize, interrupt, POKEDATA", 1),
        ("attach, SETREGS", 2),
    ] {
        let target = idle_child();
        let pid = in_child(|| unsafe {
            let rc = match how {
                1 => libc::ptrace(SEIZE, target, 0, 0),
                _ => libc::ptrace(libc::PTRACE_ATTACH, target, 0, 0),
            };
            if rc != 0 || (how == 1 && libc::ptrace(INTERRUPT, target, 0, 0) != 0) {
                return 10;
            }
            if libc::waitpid(target, std::ptr::null_mut(), libc::__WALL) != target {
                return 11;
            }
            let rc = match how {
                0 => libc::ptrace(libc::PTRACE_POKETEXT, target, addr, 9usize),
                1 => libc::ptrace(libc::PTRACE_POKEDATA, target, addr, 9usize),
                _ => {
                    let mut regs: libc::user_regs_struct = std::mem::zeroed();
                    if libc::ptrace(libc::PTRACE_GETREGS, target, 0, &mut regs) != 0 {
                        return 12;
                    }
                    libc::ptrace(libc::PTRACE_SETREGS, target, 0, &regs)
                }
            };
            (rc != 0) as i32
        });
        reap(pid, what);
        expect.push(("ptrace_inject", what.into(), pid));
        kill_and_reap(target);
    }
    kill_and_reap(sleeper_pid);

    // --- bpf_prog_load: three program types -------------------------------------------------
    // r0 = 0; exit
    let insns: [u64; 2] = [0x0000_0000_0000_00b7, 0x0000_0000_0000_0095];
    let license = c("GPL");
    for (what, prog_type, name) in [
        ("a named socket filter", 1u32, &b"ritma_ev_a"[..]),
        ("an unnamed tc classifier", 3, &b""[..]),
        ("a cgroup skb program", 8, &b"ritma_ev_c"[..]),
    ] {
        let mut attr = [0u8; 72];
        attr[0..4].copy_from_slice(&prog_type.to_ne_bytes());
        attr[4..8].copy_from_slice(&2u32.to_ne_bytes());
        attr[8..16].copy_from_slice(&(insns.as_ptr() as u64).to_ne_bytes());
        attr[16..24].copy_from_slice(&(license.as_ptr() as u64).to_ne_bytes());
        attr[48..48 + name.len()].copy_from_slice(name);
        let pid = in_child(|| unsafe {
            (libc::syscall(libc::SYS_bpf, 5, attr.as_ptr(), attr.len()) < 0) as i32
        });
        reap(pid, what);
        expect.push(("bpf_prog_load", what.into(), pid));
    }

    // --- exec_from_tmp and unknown_binary -----------------------------------------------------
    write_exe(&work.join("x"));
    std::fs::write(shm("x"), &image).unwrap();
    std::fs::set_permissions(shm("x"), std::fs::Permissions::from_mode(0o755)).unwrap();
    let run_link = format!("{run_dir}/x");
    std::os::unix::fs::symlink(w("x"), &run_link).unwrap();
    let (x_abs, dot_x, x_name, run_link_c, shm_x) =
        (c(&w("x")), c("./x"), c("x"), c(&run_link), c(&shm("x")));
    for (what, how) in [
        ("absolute", 0),
        ("./x from its directory", 1),
        ("through a symlink in /run", 2),
        ("execveat of the directory's fd", 3),
        ("from /dev/shm", 4),
    ] {
        let pid = in_child(|| unsafe {
            match how {
                1 => {
                    if libc::chdir(work_c.as_ptr()) != 0 {
                        return 10;
                    }
                    libc::execve(dot_x.as_ptr(), tru.ptrs.as_ptr(), tru.envp.as_ptr());
                }
                2 => {
                    libc::execve(run_link_c.as_ptr(), tru.ptrs.as_ptr(), tru.envp.as_ptr());
                }
                3 => {
                    let dfd = libc::open(work_c.as_ptr(), libc::O_RDONLY | libc::O_DIRECTORY);
                    libc::syscall(
                        libc::SYS_execveat,
                        dfd,
                        x_name.as_ptr(),
                        tru.ptrs.as_ptr(),
                        tru.envp.as_ptr(),
                        0,
                    );
                }
                4 => {
                    libc::execve(shm_x.as_ptr(), tru.ptrs.as_ptr(), tru.envp.as_ptr());
                }
                _ => {
                    libc::execve(x_abs.as_ptr(), tru.ptrs.as_ptr(), tru.envp.as_ptr());
                }
            }
            11
        });
        reap(pid, what);
        expect.push(("exec_from_tmp", what.into(), pid));
        // A copy of a known binary, however it is reached, is known.
        lookalikes.push((
            "unknown_binary",
            format!("a copy of /bin/true, {what}"),
            pid,
        ));
    }
    let bin_true = c("/bin/true");
    let pid = in_child(|| unsafe {
        libc::execve(bin_true.as_ptr(), tru.ptrs.as_ptr(), tru.envp.as_ptr());
        11
    });
    reap(pid, "/bin/true");
    lookalikes.push(("exec_from_tmp", "/bin/true".into(), pid));

    // A changed byte makes a binary unknown wherever it runs from.
    let u_run = format!("{run_dir}/u");
    for path in [w("u"), u_run.clone()] {
        std::fs::write(&path, &changed).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let (u_tmp, u_run_c, memfd_name) = (c(&w("u")), c(&u_run), c("ritma-cones"));
    // The memfd program runs a second: the recorder reads a binary back through the
    // process's /proc/PID/exe, so one that exits at once is never hashed (a known gap).
    let mut changed_sleep = std::fs::read("/bin/sleep").unwrap();
    changed_sleep.push(0);
    let sleep_argv = Argv::new(&["sleep", "1"]);
    for (what, how) in [
        ("a changed copy in /tmp", 0),
        ("a changed copy in /run", 1),
        ("a changed image in a memfd", 2),
    ] {
        let pid = in_child(|| unsafe {
            match how {
                0 => {
                    libc::execve(u_tmp.as_ptr(), tru.ptrs.as_ptr(), tru.envp.as_ptr());
                }
                1 => {
                    libc::execve(u_run_c.as_ptr(), tru.ptrs.as_ptr(), tru.envp.as_ptr());
                }
                _ => return exec_in_memfd(&memfd_name, &changed_sleep, 0, &sleep_argv),
            }
            11
        });
        reap(pid, what);
        expect.push(("unknown_binary", what.into(), pid));
    }

    // --- download_exec_tmp: written, run, and the program connects out ----------------------
    let script = format!("#!/bin/bash\nexec 3<>/dev/tcp/127.0.0.1/{port}\n").into_bytes();
    std::os::unix::fs::symlink(shm("d3"), w("l3")).unwrap();
    let (d1, d2_rel, dot_d2, l3, d3) =
        (c(&w("d1")), c("d2"), c("./d2"), c(&w("l3")), c(&shm("d3")));
    let sh_argv = Argv::new(&["dropped"]);
    for (what, how) in [
        ("written and run by absolute path", 0),
        ("written and run relative to its directory", 1),
        ("written through a symlink into /dev/shm, run there", 2),
    ] {
        let writer = in_child(|| unsafe {
            let flags = libc::O_CREAT | libc::O_TRUNC;
            let fd = match how {
                0 => libc::open(d1.as_ptr(), libc::O_WRONLY | flags, 0o755),
                1 => {
                    if libc::chdir(work_c.as_ptr()) != 0 {
                        return 9;
                    }
                    libc::open(d2_rel.as_ptr(), libc::O_RDWR | flags, 0o755)
                }
                _ => libc::open(l3.as_ptr(), libc::O_WRONLY | flags, 0o755),
            };
            if fd < 0
                || libc::write(fd, script.as_ptr().cast(), script.len()) != script.len() as isize
            {
                return 10;
            }
            (libc::fchmod(fd, 0o755) != 0 || libc::close(fd) != 0) as i32
        });
        reap(writer, what);
        let runner = in_child(|| unsafe {
            match how {
                0 => {
                    libc::execve(d1.as_ptr(), sh_argv.ptrs.as_ptr(), sh_argv.envp.as_ptr());
                }
                1 => {
                    if libc::chdir(work_c.as_ptr()) != 0 {
                        return 9;
                    }
                    libc::execve(
                        dot_d2.as_ptr(),
                        sh_argv.ptrs.as_ptr(),
                        sh_argv.envp.as_ptr(),
                    );
                }
                _ => {
                    libc::execve(d3.as_ptr(), sh_argv.ptrs.as_ptr(), sh_argv.envp.as_ptr());
                }
            }
            11
        });
        reap(runner, what);
        expect.push(("download_exec_tmp", what.into(), writer));
    }

    // --- egress_spike: one process reaches 200 destinations in a moment ---------------------
    for (what, how) in [
        ("TCP to 200 ports", 0),
        ("UDP to 200 ports", 1),
        ("TCP to 200 addresses", 2),
    ] {
        let pid = in_child(|| unsafe {
            for i in 0..200u16 {
                match how {
                    0 => {
                        connect_loopback(20000 + i);
                    }
                    1 => {
                        udp([127, 0, 0, 1], 20000 + i);
                    }
                    _ => {
                        let addr = [127, 0, 1, (i % 250) as u8 + 1];
                        let (s, _) = connect_v4(libc::SOCK_STREAM, addr, 9);
                        libc::close(s);
                    }
                }
            }
            0
        });
        reap(pid, what);
        expect.push(("egress_spike", what.into(), pid));
    }

    let spent = started.elapsed();
    assert!(
        spent < std::time::Duration::from_secs(15),
        "the variants took {spent:?} of the 20 s capture"
    );
    let out = run.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "ritma run failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::remove_dir_all(&work).unwrap();
    std::fs::remove_dir_all(&run_dir).unwrap();
    for p in &cleanup {
        let _ = std::fs::remove_file(p);
    }

    let fired = fired(&store);
    let missed: Vec<String> = expect
        .iter()
        .filter(|(cone, _, pid)| !fired.contains(&(cone.to_string(), *pid as u32)))
        .map(|(cone, what, pid)| format!("{cone}: {what} (pid {pid})"))
        .collect();
    assert!(
        missed.is_empty(),
        "variants that did not fire: {missed:#?}\nfired: {fired:?}"
    );
    for (cone, what, pid) in &lookalikes {
        assert!(
            !fired.contains(&(cone.to_string(), *pid as u32)),
            "{cone} fired on a look-alike: {what}"
        );
    }
    // Every step and detector cone of the library but module_load (no module can be loaded on
    // the test machines' kernels) was exercised at least three ways, here or in the test above.
    let mut per_cone: BTreeMap<&str, usize> = BTreeMap::new();
    for (cone, _, _) in &expect {
        *per_cone.entry(cone).or_default() += 1;
    }
    for (cone, n) in &per_cone {
        assert!(*n >= 3, "{cone}: {n} variants");
    }
    assert_eq!(per_cone.len(), 17, "{per_cone:?}");
}
