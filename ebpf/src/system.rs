//! What the machine must provide before programs load: privileges, tracefs and bpffs.

use std::ffi::CString;
use std::io;
use std::path::{Path, PathBuf};

use crate::error::EbpfError;

pub const TRACEFS: &str = "/sys/kernel/tracing";
pub const BPFFS: &str = "/sys/fs/bpf";

const TRACEFS_MAGIC: i64 = 0x7472_6163;
const BPF_FS_MAGIC: i64 = 0xcafe_4a11;

const CAP_SYS_ADMIN: u32 = 21;
const CAP_PERFMON: u32 = 38;
const CAP_BPF: u32 = 39;

/// This process's effective capability set, from /proc/self/status.
pub fn effective_capabilities() -> io::Result<u64> {
    let status = std::fs::read_to_string("/proc/self/status")?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .and_then(|hex| u64::from_str_radix(hex.trim(), 16).ok())
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "no CapEff in /proc/self/status"))
}

/// Fails with `NotPermitted` unless the process may load tracing programs.
pub fn check_privileges() -> Result<(), EbpfError> {
    let cap_eff = effective_capabilities().unwrap_or(0);
    let has = |cap: u32| cap_eff & (1u64 << cap) != 0;
    if has(CAP_SYS_ADMIN) || (has(CAP_BPF) && has(CAP_PERFMON)) {
        Ok(())
    } else {
        Err(EbpfError::NotPermitted { cap_eff })
    }
}

fn fs_magic(path: &Path) -> Option<i64> {
    let c = CString::new(path.as_os_str().as_encoded_bytes()).ok()?;
    let mut st: libc::statfs = unsafe { std::mem::zeroed() };
    // SAFETY: c is a valid NUL-terminated path and st a valid out-pointer.
    let rc = unsafe { libc::statfs(c.as_ptr(), &mut st) };
    (rc == 0).then_some(st.f_type as i64)
}

/// Mounts `fs` at `target` unless a filesystem with `magic` is already there.
fn ensure_mounted(fs: &'static str, target: &str, magic: i64) -> Result<(), EbpfError> {
    let path = Path::new(target);
    if fs_magic(path) == Some(magic) {
        return Ok(());
    }
    let err = |source| EbpfError::Mount {
        fs,
        target: PathBuf::from(target),
        source,
    };
    let c_target = CString::new(target).expect("no NUL in a constant path");
    let c_fs = CString::new(fs).expect("no NUL in a constant name");
    // SAFETY: all pointers are valid NUL-terminated strings; data may be null.
    let rc = unsafe {
        libc::mount(
            c_fs.as_ptr(),
            c_target.as_ptr(),
            c_fs.as_ptr(),
            0,
            std::ptr::null(),
        )
    };
    if rc != 0 {
        return Err(err(io::Error::last_os_error()));
    }
    if fs_magic(path) != Some(magic) {
        return Err(err(io::Error::other(
            "mounted, but statfs reports another filesystem",
        )));
    }
    Ok(())
}

/// Tracepoint attach reads event ids from tracefs; bpffs is where maps may be pinned.
pub fn ensure_filesystems() -> Result<(), EbpfError> {
    ensure_mounted("tracefs", TRACEFS, TRACEFS_MAGIC)?;
    ensure_mounted("bpf", BPFFS, BPF_FS_MAGIC)
}

/// True when tracefs lists the tracepoint.
pub fn tracepoint_exists(category: &str, name: &str) -> bool {
    Path::new(TRACEFS)
        .join("events")
        .join(category)
        .join(name)
        .join("id")
        .exists()
}
