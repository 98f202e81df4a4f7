//! Errors of live capture: what the kernel or the machine refused, and malformed records.

use std::io;
use std::path::PathBuf;

use crate::wire::WireError;

#[derive(Debug, thiserror::Error)]
pub enum EbpfError {
    #[error(
        "missing {missing}; this process has effective capabilities {cap_eff:#x}: \
         run as root or grant these (deploy/README.md lists the set and why)"
    )]
    NotPermitted { missing: String, cap_eff: u64 },

    #[error("mounting {fs} at {} failed (needs CAP_SYS_ADMIN and a kernel with {fs})", target.display())]
    Mount {
        fs: &'static str,
        target: PathBuf,
        #[source]
        source: io::Error,
    },

    #[error("kernel tracepoint {category}/{name} is missing (not in {})", tracefs.display())]
    TracepointMissing {
        category: &'static str,
        name: &'static str,
        tracefs: PathBuf,
    },

    #[error("kernel BTF (/sys/kernel/btf/vmlinux) is unavailable: the kernel needs CONFIG_DEBUG_INFO_BTF")]
    NoKernelBtf(#[source] aya::BtfError),

    #[error("invalid sensor configuration: {0}")]
    Config(String),

    #[error("parsing the embedded eBPF object or creating its maps failed")]
    Object(#[source] Box<aya::EbpfError>),

    #[error("the embedded object has no {what} named {name}")]
    MissingInObject {
        what: &'static str,
        name: &'static str,
    },

    #[error(
        "the kernel refused to load program {program}: {io_error}; verifier log tail:\n{log_tail}"
    )]
    VerifierRejected {
        program: &'static str,
        io_error: io::Error,
        log_tail: String,
    },

    #[error("program {program}: {action} failed")]
    Program {
        program: &'static str,
        action: &'static str,
        #[source]
        source: Box<aya::programs::ProgramError>,
    },

    #[error("the sensor's pinned counters in {dir}: {what}: {reason}")]
    Pinned {
        dir: std::path::PathBuf,
        what: &'static str,
        reason: String,
    },

    #[error("map {map}: {action} failed")]
    Map {
        map: &'static str,
        action: &'static str,
        #[source]
        source: Box<aya::maps::MapError>,
    },

    #[error("waiting on the ring buffer failed")]
    Poll(#[source] io::Error),

    #[error("malformed ring-buffer record")]
    Wire(#[from] WireError),

    #[error("opening the process snapshot iterator failed")]
    SnapshotOpen(#[source] Box<aya::programs::links::LinkError>),

    #[error("reading the process snapshot iterator failed")]
    SnapshotRead(#[source] io::Error),

    #[error("malformed process snapshot record")]
    SnapshotRecord(#[source] WireError),
}
