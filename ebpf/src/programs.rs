//! The programs in the embedded object and where each attaches.

/// The compiled object (`bpf/ritma.bpf.o`, rebuilt by `build-bpf.sh`), 8-byte aligned as
/// the ELF parser needs.
pub static OBJECT: &[u8] = aya::include_bytes_aligned!("../bpf/ritma.bpf.o");

/// Maps the loader touches, by their names in `ritma.bpf.c`.
pub const RING_MAP: &str = "ritma_events";
pub const DROPS_MAP: &str = "ritma_drops";
/// How much of `ritma_drops` the WAL accounts for, written by user space (`pinned`).
pub const ACCOUNTED_MAP: &str = "ritma_accounted";
/// Per-program heartbeats: the calls of the sensor's own process each program skipped.
pub const BEATS_MAP: &str = "ritma_beats";
/// Heartbeat slots (ritma.bpf.c): fork and exit, then 2·SC (enter) and 2·SC + 1 (exit)
/// for the syscall numbered SC, SYSCALLS' index + 1.
pub const BEAT_FORK: u32 = 0;
pub const BEAT_EXIT: u32 = 1;
pub const BEAT_SLOTS: u32 = 64;
/// Per-syscall call counts (ritma.bpf.c): slot 3·SC + one of the `CALL_*` below.
pub const CALLS_MAP: &str = "ritma_calls";
pub const CALL_SLOTS: u32 = 96;
/// Enters that stashed their arguments.
pub const CALL_STASHED: u32 = 0;
/// Exits that found their enter's stash (and reported the call).
pub const CALL_CONSUMED: u32 = 1;
/// Exits that found no stash of their own.
pub const CALL_ORPHAN: u32 = 2;
pub const IGNORE_MAP: &str = "ritma_ignore";
/// The `.rodata` constant holding the sensor's own tgid.
pub const SELF_TGID_GLOBAL: &str = "ritma_self_tgid";
/// The `.rodata` constant: bytes waiting in the ring buffer before a record wakes the reader.
pub const WAKEUP_BYTES_GLOBAL: &str = "ritma_wakeup_bytes";

/// Where a program attaches.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Hook {
    /// A classic tracepoint under tracefs `events/<category>/<name>`.
    TracePoint {
        category: &'static str,
        name: &'static str,
    },
    /// A BTF-typed raw tracepoint (`tp_btf`).
    BtfTracePoint { name: &'static str },
    /// A raw tracepoint.
    RawTracePoint { name: &'static str },
    /// A BPF iterator over the kernel objects `target` names (`task`): not attached to
    /// an event, run when user space reads it.
    Iter { target: &'static str },
}

/// A program and its hook.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProgramSpec {
    pub program: &'static str,
    pub hook: Hook,
}

/// How much a missing syscall tracepoint matters.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Need {
    /// Every supported kernel has it: missing is an error.
    Required,
    /// Legacy syscalls some architectures lack (their *at successors are required).
    Optional,
    /// Module syscalls: missing on kernels without module support, where the raw
    /// `sys_enter`/`sys_exit` programs stand in.
    RawFallback,
}

/// A hooked syscall: its tracepoints and the programs attached to them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Syscall {
    pub name: &'static str,
    pub need: Need,
    pub enter: ProgramSpec,
    pub exit: ProgramSpec,
}

macro_rules! syscalls {
    ($($name:literal => $need:ident),* $(,)?) => {
        /// Every hooked syscall, in attach order.
        pub const SYSCALLS: &[Syscall] = &[$(Syscall {
            name: $name,
            need: Need::$need,
            enter: ProgramSpec {
                program: concat!("enter_", $name),
                hook: Hook::TracePoint { category: "syscalls", name: concat!("sys_enter_", $name) },
            },
            exit: ProgramSpec {
                program: concat!("exit_", $name),
                hook: Hook::TracePoint { category: "syscalls", name: concat!("sys_exit_", $name) },
            },
        }),*];
    };
}

syscalls! {
    "openat" => Required,
    "openat2" => Required,
    "unlinkat" => Required,
    "unlink" => Optional,
    "renameat2" => Required,
    "renameat" => Optional,
    "rename" => Optional,
    "connect" => Required,
    "accept4" => Required,
    "accept" => Optional,
    "bind" => Required,
    "listen" => Required,
    "ptrace" => Required,
    "setuid" => Required,
    "setgid" => Required,
    "setreuid" => Required,
    "setregid" => Required,
    "setresuid" => Required,
    "setresgid" => Required,
    "setfsuid" => Required,
    "setfsgid" => Required,
    "capset" => Required,
    "memfd_create" => Required,
    "init_module" => RawFallback,
    "finit_module" => RawFallback,
    "bpf" => Required,
    "dup" => Required,
    "dup2" => Optional,
    "dup3" => Required,
    "fcntl" => Required,
}

/// The process lifecycle programs.
pub const LIFECYCLE: &[ProgramSpec] = &[
    ProgramSpec {
        program: "ritma_exec",
        hook: Hook::BtfTracePoint {
            name: "sched_process_exec",
        },
    },
    ProgramSpec {
        program: "ritma_fork",
        hook: Hook::BtfTracePoint {
            name: "sched_process_fork",
        },
    },
    ProgramSpec {
        program: "ritma_exit",
        hook: Hook::TracePoint {
            category: "sched",
            name: "sched_process_exit",
        },
    },
];

/// The module syscalls' stand-ins on kernels without their tracepoints.
pub const MODULE_FALLBACK: &[ProgramSpec] = &[
    ProgramSpec {
        program: "raw_exit_module",
        hook: Hook::RawTracePoint { name: "sys_exit" },
    },
    ProgramSpec {
        program: "raw_enter_module",
        hook: Hook::RawTracePoint { name: "sys_enter" },
    },
];

/// The process snapshot (`Sensor::snapshot_processes`): a sleepable task iterator.
pub const SNAPSHOT: ProgramSpec = ProgramSpec {
    program: "ritma_snapshot",
    hook: Hook::Iter { target: "task" },
};

/// Every program in the object with the hook it would take (the module syscalls appear
/// with both their tracepoint pair and their raw stand-ins).
pub fn all_programs() -> Vec<ProgramSpec> {
    let mut v = LIFECYCLE.to_vec();
    for sc in SYSCALLS {
        v.extend([sc.exit, sc.enter]);
    }
    v.extend(MODULE_FALLBACK);
    v.push(SNAPSHOT);
    v
}

/// The heartbeat slot of a program, if the sensor can make it fire on purpose (every
/// program but the exec one: an exec of its own would be another process).
pub fn beat_slot(program: &str) -> Option<u32> {
    if let Some(i) = SYSCALLS.iter().position(|s| s.enter.program == program) {
        return Some((i as u32 + 1) * 2);
    }
    if let Some(i) = SYSCALLS.iter().position(|s| s.exit.program == program) {
        return Some((i as u32 + 1) * 2 + 1);
    }
    let module = SYSCALLS.iter().position(|s| s.name == "init_module")? as u32 + 1;
    match program {
        "ritma_fork" => Some(BEAT_FORK),
        "ritma_exit" => Some(BEAT_EXIT),
        // The fallback hooks see init_module too, and count in its slots.
        "raw_enter_module" => Some(module * 2),
        "raw_exit_module" => Some(module * 2 + 1),
        _ => None,
    }
}

/// The syscall a program hooks, by name, if it hooks one.
pub fn hooked_syscall(program: &str) -> Option<&'static str> {
    match program {
        "raw_enter_module" | "raw_exit_module" => Some("init_module"),
        _ => SYSCALLS
            .iter()
            .find(|s| s.enter.program == program || s.exit.program == program)
            .map(|s| s.name),
    }
}

/// The syscall numbers (SC, SYSCALLS' index + 1) whose calls a program counts: one for a
/// syscall's tracepoint programs, both module syscalls for their raw stand-ins, none for
/// the lifecycle programs.
pub fn counted_syscalls(program: &str) -> Vec<u32> {
    let sc = |name: &str| {
        SYSCALLS
            .iter()
            .position(|s| s.name == name)
            .map(|i| i as u32 + 1)
    };
    match program {
        "raw_enter_module" | "raw_exit_module" => ["init_module", "finit_module"]
            .iter()
            .filter_map(|n| sc(n))
            .collect(),
        _ => SYSCALLS
            .iter()
            .position(|s| s.enter.program == program || s.exit.program == program)
            .map(|i| vec![i as u32 + 1])
            .unwrap_or_default(),
    }
}

/// Whether a program is the enter side of its syscall pair (false for an exit side).
pub fn is_enter(program: &str) -> bool {
    program.starts_with("enter_") || program == "raw_enter_module"
}

/// The other program of a syscall pair.
pub fn partner(program: &str) -> Option<&'static str> {
    match program {
        "raw_enter_module" => return Some("raw_exit_module"),
        "raw_exit_module" => return Some("raw_enter_module"),
        _ => {}
    }
    SYSCALLS.iter().find_map(|s| {
        if s.enter.program == program {
            Some(s.exit.program)
        } else if s.exit.program == program {
            Some(s.enter.program)
        } else {
            None
        }
    })
}
