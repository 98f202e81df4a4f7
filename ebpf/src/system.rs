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

/// A capability live capture needs, and what for (named in the error when it is missing).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Capability {
    pub name: &'static str,
    pub bit: u32,
    pub why: &'static str,
    /// CAP_SYS_ADMIN grants it too (kernels before 5.8 have no CAP_BPF or CAP_PERFMON).
    pub sys_admin_covers: bool,
}

pub const CAP_BPF: Capability = Capability {
    name: "CAP_BPF",
    bit: 39,
    why: "to create BPF maps and load BPF programs",
    sys_admin_covers: true,
};
pub const CAP_PERFMON: Capability = Capability {
    name: "CAP_PERFMON",
    bit: 38,
    why: "to attach tracing programs to tracepoints (perf_event_open) and read kernel memory from them",
    sys_admin_covers: true,
};
pub const CAP_DAC_READ_SEARCH: Capability = Capability {
    name: "CAP_DAC_READ_SEARCH",
    bit: 2,
    why:
        "to read tracepoint ids in tracefs (root-only) and hash executables other users cannot read",
    sys_admin_covers: false,
};
pub const CAP_SYS_PTRACE: Capability = Capability {
    name: "CAP_SYS_PTRACE",
    bit: 19,
    why: "to open /proc/<pid>/exe of other users' processes, the only way to hash deleted and memfd executables",
    sys_admin_covers: false,
};

/// What `Sensor::start` needs: load and attach, and tracefs.
pub const SENSOR_CAPABILITIES: [Capability; 3] = [CAP_BPF, CAP_PERFMON, CAP_DAC_READ_SEARCH];

/// This process's effective capability set, from /proc/self/status.
pub fn effective_capabilities() -> io::Result<u64> {
    let status = std::fs::read_to_string("/proc/self/status")?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .and_then(|hex| u64::from_str_radix(hex.trim(), 16).ok())
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "no CapEff in /proc/self/status"))
}

/// The capabilities of `needed` that `cap_eff` lacks.
pub fn missing_capabilities(cap_eff: u64, needed: &[Capability]) -> Vec<Capability> {
    let has = |bit: u32| cap_eff & (1u64 << bit) != 0;
    needed
        .iter()
        .filter(|c| !(has(c.bit) || c.sys_admin_covers && has(CAP_SYS_ADMIN)))
        .copied()
        .collect()
}

/// Fails with `NotPermitted`, naming each capability of `needed` this process lacks.
pub fn check_capabilities(needed: &[Capability]) -> Result<(), EbpfError> {
    let cap_eff = effective_capabilities().unwrap_or(0);
    let missing = missing_capabilities(cap_eff, needed);
    if missing.is_empty() {
        return Ok(());
    }
    let missing = missing
        .iter()
        .map(|c| format!("capability {} ({})", c.name, c.why))
        .collect::<Vec<_>>()
        .join(", ");
    Err(EbpfError::NotPermitted { missing, cap_eff })
}

/// Fails with `NotPermitted` unless the process may load and attach tracing programs.
pub fn check_privileges() -> Result<(), EbpfError> {
    check_capabilities(&SENSOR_CAPABILITIES[..2])
}

/// Whether `path` is on a BPF filesystem (where maps can be pinned).
pub fn on_bpffs(path: &Path) -> bool {
    fs_magic(path) == Some(BPF_FS_MAGIC)
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

#[cfg(test)]
mod tests {
    use super::*;

    fn mask(caps: &[u32]) -> u64 {
        caps.iter().fold(0, |m, c| m | 1 << c)
    }

    #[test]
    fn each_missing_capability_is_named_and_sys_admin_stands_in_only_for_bpf_and_perfmon() {
        let all = [CAP_BPF, CAP_PERFMON, CAP_DAC_READ_SEARCH, CAP_SYS_PTRACE];
        let full = mask(&all.map(|c| c.bit));
        assert!(missing_capabilities(full, &all).is_empty());
        for c in all {
            assert_eq!(missing_capabilities(full & !(1 << c.bit), &all), vec![c]);
        }
        let admin = mask(&[CAP_SYS_ADMIN]);
        assert_eq!(
            missing_capabilities(admin, &all),
            vec![CAP_DAC_READ_SEARCH, CAP_SYS_PTRACE]
        );
        assert_eq!(missing_capabilities(0, &all), all.to_vec());
    }
}
