//! The sensor's own harmless calls of every hooked syscall: each hook skips the sensor's
//! process but counts it in its heartbeat slot, so a hook that no longer fires (its link
//! gone) is seen within one check, whether or not anyone else made that call.

/// A path that does not exist: the file calls fail with ENOENT and touch nothing.
const NOWHERE: &std::ffi::CStr = c"/nonexistent-ritma-canary/x";

/// Makes syscall `name` once with arguments that change nothing (a bad descriptor, a
/// missing path, "unchanged" ids, a null pointer); returns false for an unknown name.
pub fn call(name: &str) -> bool {
    use libc::*;
    let p = NOWHERE.as_ptr();
    let none: usize = 0;
    let all: c_long = -1;
    // SAFETY: every call gets a bad descriptor, a valid string or a null pointer the
    // kernel checks; none changes the process (ids of -1 mean "unchanged" or are refused).
    unsafe {
        match name {
            "openat" => syscall(SYS_openat, AT_FDCWD, p, O_RDONLY),
            "openat2" => syscall(SYS_openat2, AT_FDCWD, p, none, none),
            "unlinkat" => syscall(SYS_unlinkat, AT_FDCWD, p, 0),
            "unlink" => syscall(SYS_unlink, p),
            "renameat2" => syscall(SYS_renameat2, AT_FDCWD, p, AT_FDCWD, p, 0),
            "renameat" => syscall(SYS_renameat, AT_FDCWD, p, AT_FDCWD, p),
            "rename" => syscall(SYS_rename, p, p),
            "connect" => syscall(SYS_connect, -1, none, 0),
            "accept4" => syscall(SYS_accept4, -1, none, none, 0),
            "accept" => syscall(SYS_accept, -1, none, none),
            "bind" => syscall(SYS_bind, -1, none, 0),
            "listen" => syscall(SYS_listen, -1, 0),
            // Request -1 is no request; pid 0 is no tracee.
            "ptrace" => syscall(SYS_ptrace, all, 0, none, none),
            "setuid" => syscall(SYS_setuid, all),
            "setgid" => syscall(SYS_setgid, all),
            "setreuid" => syscall(SYS_setreuid, all, all),
            "setregid" => syscall(SYS_setregid, all, all),
            "setresuid" => syscall(SYS_setresuid, all, all, all),
            "setresgid" => syscall(SYS_setresgid, all, all, all),
            "setfsuid" => syscall(SYS_setfsuid, all),
            "setfsgid" => syscall(SYS_setfsgid, all),
            "capset" => syscall(SYS_capset, none, none),
            "memfd_create" => syscall(SYS_memfd_create, none, 0),
            "init_module" => syscall(SYS_init_module, none, 0, none),
            "finit_module" => syscall(SYS_finit_module, -1, none, 0),
            "bpf" => syscall(SYS_bpf, all, none, 0),
            "dup" => syscall(SYS_dup, -1),
            "dup2" => syscall(SYS_dup2, -1, -1),
            "dup3" => syscall(SYS_dup3, -1, -1, 0),
            "fcntl" => syscall(SYS_fcntl, -1, F_GETFD),
            _ => return false,
        };
    }
    true
}

/// A thread started and joined: the fork and exit hooks see the sensor's process.
pub fn thread() {
    let _ = std::thread::spawn(|| {}).join();
}
