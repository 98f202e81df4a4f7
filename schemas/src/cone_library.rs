//! The cone libraries shipped with Ritma (FORMAT.md §10). A library version is
//! immutable: a store names the version its windows were matched with, and a
//! verifier compares the store's copy with the one it knows, byte for byte.

/// Cone library version 1: (file name, contents), as in `cones/v0001/`.
pub fn builtin_v0001() -> Vec<(&'static str, &'static str)> {
    vec![
        (
            "bpf_prog_load.cone",
            include_str!("../../cones/v0001/bpf_prog_load.cone"),
        ),
        (
            "download_exec_tmp.cone",
            include_str!("../../cones/v0001/download_exec_tmp.cone"),
        ),
        (
            "exec_from_tmp.cone",
            include_str!("../../cones/v0001/exec_from_tmp.cone"),
        ),
        (
            "memfd_exec.cone",
            include_str!("../../cones/v0001/memfd_exec.cone"),
        ),
        (
            "module_load.cone",
            include_str!("../../cones/v0001/module_load.cone"),
        ),
        (
            "persistence_write.cone",
            include_str!("../../cones/v0001/persistence_write.cone"),
        ),
        (
            "priv_esc_setuid.cone",
            include_str!("../../cones/v0001/priv_esc_setuid.cone"),
        ),
        (
            "ptrace_inject.cone",
            include_str!("../../cones/v0001/ptrace_inject.cone"),
        ),
        (
            "secrets_then_egress.cone",
            include_str!("../../cones/v0001/secrets_then_egress.cone"),
        ),
    ]
}

/// The files of library `version`, if this build knows it.
pub fn library(version: u32) -> Option<Vec<(&'static str, &'static str)>> {
    (version == 1).then(builtin_v0001)
}
