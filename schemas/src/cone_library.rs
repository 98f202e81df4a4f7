//! The cone libraries shipped with Ritma (FORMAT.md §10). A library version is
//! immutable: a store names the version its windows were matched with, and a
//! verifier compares the store's copy with the one it knows, byte for byte.

/// The library version new windows are matched with.
pub const CURRENT: u32 = 5;

/// (file name, contents) of each named file of `cones/<dir>/`, embedded at build time.
macro_rules! cones {
    ($dir:literal, [$($file:literal),+ $(,)?]) => {
        vec![$(($file, include_str!(concat!("../../cones/", $dir, "/", $file)))),+]
    };
}

/// Cone library version 1: (file name, contents), as in `cones/v0001/`.
pub fn builtin_v0001() -> Vec<(&'static str, &'static str)> {
    cones!(
        "v0001",
        [
            "bpf_prog_load.cone",
            "download_exec_tmp.cone",
            "exec_from_tmp.cone",
            "memfd_exec.cone",
            "module_load.cone",
            "persistence_write.cone",
            "priv_esc_setuid.cone",
            "ptrace_inject.cone",
            "secrets_then_egress.cone",
        ]
    )
}

/// Cone library version 2: (file name, contents), as in `cones/v0002/`.
pub fn builtin_v0002() -> Vec<(&'static str, &'static str)> {
    cones!(
        "v0002",
        [
            "bpf_prog_load.cone",
            "deleted_binary_exec.cone",
            "download_exec_tmp.cone",
            "egress_spike.cone",
            "exec_from_tmp.cone",
            "memfd_exec.cone",
            "module_load.cone",
            "persistence_write.cone",
            "priv_esc_setuid.cone",
            "ptrace_attach.cone",
            "ptrace_inject.cone",
            "secrets_read.cone",
            "secrets_then_egress.cone",
            "uid0_without_setuid_exec.cone",
        ]
    )
}

/// Cone library version 3: (file name, contents), as in `cones/v0003/`.
pub fn builtin_v0003() -> Vec<(&'static str, &'static str)> {
    cones!(
        "v0003",
        [
            "bpf_prog_load.cone",
            "deleted_binary_exec.cone",
            "download_exec_tmp.cone",
            "egress_spike.cone",
            "exec_from_tmp.cone",
            "memfd_exec.cone",
            "module_load.cone",
            "persistence_write.cone",
            "priv_esc_setuid.cone",
            "ptrace_attach.cone",
            "ptrace_inject.cone",
            "secrets_read.cone",
            "secrets_then_egress.cone",
            "uid0_without_setuid_exec.cone",
            "unknown_binary.cone",
        ]
    )
}

/// Cone library version 4: (file name, contents), as in `cones/v0004/`.
pub fn builtin_v0004() -> Vec<(&'static str, &'static str)> {
    cones!(
        "v0004",
        [
            "bpf_prog_load.cone",
            "deleted_binary_exec.cone",
            "download_exec_tmp.cone",
            "egress_spike.cone",
            "exec_from_tmp.cone",
            "memfd_exec.cone",
            "module_load.cone",
            "persistence_write.cone",
            "priv_esc_setuid.cone",
            "ptrace_attach.cone",
            "ptrace_inject.cone",
            "secrets_read.cone",
            "secrets_then_egress.cone",
            "shell_stdio_socket.cone",
            "uid0_without_setuid_exec.cone",
            "unknown_binary.cone",
        ]
    )
}

/// Cone library version 5: (file name, contents), as in `cones/v0005/`.
pub fn builtin_v0005() -> Vec<(&'static str, &'static str)> {
    cones!(
        "v0005",
        [
            "bpf_prog_load.cone",
            "data_destruction.cone",
            "deleted_binary_exec.cone",
            "download_exec_tmp.cone",
            "egress_spike.cone",
            "exec_from_tmp.cone",
            "log_clear.cone",
            "memfd_exec.cone",
            "module_load.cone",
            "persistence_rename.cone",
            "persistence_write.cone",
            "priv_esc_setuid.cone",
            "ptrace_attach.cone",
            "ptrace_inject.cone",
            "release_agent_write.cone",
            "secrets_read.cone",
            "secrets_then_egress.cone",
            "shell_stdio_redirect.cone",
            "shell_stdio_socket.cone",
            "uid0_without_setuid_exec.cone",
            "unknown_binary.cone",
        ]
    )
}

/// The files of library `version`, if this build knows it.
pub fn library(version: u32) -> Option<Vec<(&'static str, &'static str)>> {
    match version {
        1 => Some(builtin_v0001()),
        2 => Some(builtin_v0002()),
        3 => Some(builtin_v0003()),
        4 => Some(builtin_v0004()),
        5 => Some(builtin_v0005()),
        _ => None,
    }
}
