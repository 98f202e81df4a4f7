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

/// The cone instances of the store, each as (cone, pid of the actor of its first event).
fn fired(store: &Path) -> BTreeSet<(String, u32)> {
    let mut out = BTreeSet::new();
    for (_, leaves) in window_leaves(store) {
        let records: Vec<AnyRecord> = leaves
            .iter()
            .map(|l| AnyRecord::decode(l).unwrap())
            .collect();
        let pids: HashMap<_, _> = records
            .iter()
            .filter_map(|r| match r {
                AnyRecord::Actor(a) => Some((a.actor, a.pid)),
                _ => None,
            })
            .collect();
        let actors: HashMap<_, _> = records
            .iter()
            .filter_map(|r| match r {
                AnyRecord::Event(e) => Some((e.seq, e.actor)),
                _ => None,
            })
            .collect();
        for r in &records {
            if let AnyRecord::Cone(c) = r {
                if let Some(pid) = actors.get(&c.first_seq).and_then(|a| pids.get(a)) {
                    out.insert((c.cone_id.clone(), *pid));
                }
            }
        }
    }
    out
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
    // SAFETY: plain socket calls on a local sockaddr.
    unsafe {
        let s = libc::socket(libc::AF_INET, libc::SOCK_STREAM, 0);
        if s < 0 {
            return -1;
        }
        let mut a: libc::sockaddr_in = std::mem::zeroed();
        a.sin_family = libc::AF_INET as libc::sa_family_t;
        a.sin_port = port.to_be();
        a.sin_addr.s_addr = u32::from_ne_bytes([127, 0, 0, 1]);
        let rc = libc::connect(
            s,
            (&a as *const libc::sockaddr_in).cast(),
            std::mem::size_of::<libc::sockaddr_in>() as u32,
        );
        if rc != 0 {
            return -1;
        }
        s
    }
}

#[test]
fn every_variant_of_each_technique_fires_its_cone_live() {
    if skip_without_root("every_variant_of_each_technique_fires_its_cone_live") {
        return;
    }
    let d = Dir::new();
    let store = d.join("s");
    // Under /tmp, where droppers write (deleted_binary_exec watches it).
    let work = std::path::PathBuf::from(format!("/tmp/ritma-evasion-{}", token()));
    std::fs::create_dir_all(work.join("sub")).unwrap();
    let w = |name: &str| work.join(name).to_str().unwrap().to_owned();

    // A server the redirected shells connect to; it holds their connections.
    let server = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = server.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for c in server.incoming() {
            held.push(c);
        }
    });

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
    let empty = cstr("");
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
        let pid = in_child(|| unsafe {
            let fd = memfd(flags);
            if fd < 0 {
                return 10;
            }
            libc::syscall(
                libc::SYS_execveat,
                fd,
                empty.as_ptr(),
                tru.ptrs.as_ptr(),
                tru.envp.as_ptr(),
                libc::AT_EMPTY_PATH,
            );
            11
        });
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
