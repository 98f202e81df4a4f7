//! Event atoms as OCSF activity events (the mapping table of the crate docs).

use std::collections::BTreeMap;
use std::sync::OnceLock;

use ritma_schemas::hash::{blake3, Hash32};
use ritma_schemas::records::{atom_flags, EventAtom, EventType};
use serde_json::{json, Map, Value};

use crate::objects::{
    hex, Activity, Class, EventBuilder, Header, Severity, FILE_REGULAR, FILE_SYSTEM_ACTIVITY,
    FILE_UNKNOWN, KERNEL_ACTIVITY, KERNEL_EXTENSION_ACTIVITY, NETWORK_ACTIVITY, OTHER,
    PROCESS_ACTIVITY,
};
use crate::window::Window;

/// The OCSF event of one atom.
pub(crate) fn atom_event(w: &Window<'_>, atom: &EventAtom) -> Value {
    let mut b = EventBuilder::new(w);
    let event = event_type_name(atom.event_type);
    b.ritma.insert("seq".into(), atom.seq.into());
    b.ritma.insert("actor".into(), hex(&atom.actor).into());
    b.ritma.insert("event".into(), event.into());
    let flags = ritma_schemas::records::atom_flags::names(atom.flags);
    if !flags.is_empty() {
        b.ritma.insert("flags".into(), flags.into());
    }
    if let Some(h) = atom.arg_hash {
        b.ritma.insert("arg_hash".into(), hex(&h).into());
    }
    if let Some(h) = atom.payload_ref {
        b.ritma.insert("payload_ref".into(), hex(&h).into());
    }

    let mut body = Map::new();
    let actor_process = b.process(&atom.actor, "actor.process");
    let comm = actor_process
        .get("name")
        .and_then(Value::as_str)
        .map_or_else(|| hex(&atom.actor), str::to_owned);
    body.insert("actor".into(), json!({ "process": actor_process }));
    let (class, activity) = class_body(&mut b, atom, &mut body);
    let failed = atom.flags & atom_flags::FAILED != 0;
    // An exit's failed flag is a non-zero exit code, not a failed call.
    if atom.event_type != EventType::Exit {
        let (id, name) = if failed {
            (2, "Failure")
        } else {
            (1, "Success")
        };
        body.insert("status_id".into(), id.into());
        body.insert("status".into(), name.into());
    }
    let message = format!("{comm} {event}{}", if failed { " (failed)" } else { "" });
    let header = Header {
        class,
        activity,
        severity: Severity::Informational,
        time_ns: w.wall_ns(atom.t_ns),
        uid: w.event_uid(atom.seq),
        sequence: Some(atom.seq),
    };
    b.finish(header, message, body)
}

/// Fills the class's own attributes into `body`; returns the class and activity.
fn class_body(
    b: &mut EventBuilder<'_>,
    atom: &EventAtom,
    body: &mut Map<String, Value>,
) -> (&'static Class, Activity) {
    let mut put = |key: &str, v: Value| {
        body.insert(key.into(), v);
    };
    match atom.event_type {
        EventType::Exec | EventType::Present => {
            let mut p = b.process(&atom.actor, "process");
            // The actor record's file also has the executable's hash, when it is this one.
            if b.w.actor(&atom.actor).and_then(|a| a.exe) != Some(atom.object) {
                let file = b.file_at(&atom.object, FILE_REGULAR, "process.file");
                p.insert("file".into(), file);
            }
            if let Some(cmd) = b.cmd_line(atom, "process.cmd_line") {
                p.insert("cmd_line".into(), cmd.into());
            }
            put("process", p.into());
            if atom.event_type == EventType::Present {
                return (&PROCESS_ACTIVITY, Activity::new(OTHER, "present"));
            }
            put("launch_type_id", 3.into());
            put("launch_type", "Exec".into());
            (&PROCESS_ACTIVITY, Activity::new(1, "Launch"))
        }
        EventType::Fork => {
            put("process", b.process(&atom.object, "process").into());
            put("launch_type_id", 2.into());
            put("launch_type", "Fork".into());
            (&PROCESS_ACTIVITY, Activity::new(1, "Launch"))
        }
        EventType::Exit => {
            put("process", b.process(&atom.actor, "process").into());
            (&PROCESS_ACTIVITY, Activity::new(2, "Terminate"))
        }
        EventType::Ptrace => {
            // Without the target's start time its actor is unknown (FORMAT.md §3.4: no edge).
            let target = match atom.object == [0; 16] {
                true => json!({"uid": "unknown"}),
                false => b.process(&atom.object, "process").into(),
            };
            put("process", target);
            let request = atom.arg_hash.as_ref().and_then(ptrace_request);
            if let Some((_, name)) = request {
                b.ritma.insert("ptrace_request".into(), name.into());
            }
            match request {
                Some((number, name)) if PTRACE_WRITES.contains(&number) => {
                    put("injection_type_id", OTHER.into());
                    put("injection_type", name.into());
                    (&PROCESS_ACTIVITY, Activity::new(4, "Inject"))
                }
                _ => (&PROCESS_ACTIVITY, Activity::new(3, "Open")),
            }
        }
        EventType::SetUid => {
            put("process", b.process(&atom.actor, "process").into());
            (&PROCESS_ACTIVITY, Activity::new(5, "Set User ID"))
        }
        EventType::SetGid | EventType::CapSet | EventType::FdDup => {
            put("process", b.process(&atom.actor, "process").into());
            let name = event_type_name(atom.event_type);
            (&PROCESS_ACTIVITY, Activity::new(OTHER, name))
        }
        EventType::Open => {
            put("file", b.file_at(&atom.object, FILE_UNKNOWN, "file"));
            (&FILE_SYSTEM_ACTIVITY, Activity::new(14, "Open"))
        }
        EventType::Unlink => {
            put("file", b.file_at(&atom.object, FILE_UNKNOWN, "file"));
            (&FILE_SYSTEM_ACTIVITY, Activity::new(4, "Delete"))
        }
        EventType::Rename => {
            match b.w.renamed_from(&atom.object, atom.t_ns) {
                Some(old) => {
                    put("file", b.file_at(&old, FILE_UNKNOWN, "file"));
                    put(
                        "file_result",
                        b.file_at(&atom.object, FILE_UNKNOWN, "file_result"),
                    );
                }
                None => put("file", b.file_at(&atom.object, FILE_UNKNOWN, "file")),
            }
            (&FILE_SYSTEM_ACTIVITY, Activity::new(5, "Rename"))
        }
        EventType::MemfdCreate => {
            put("file", b.file_named(&atom.object, FILE_REGULAR, "file"));
            (&FILE_SYSTEM_ACTIVITY, Activity::new(1, "Create"))
        }
        EventType::ModuleLoad => {
            // finit_module names the module's file, init_module only its name.
            let by_path =
                b.w.dict(&atom.object)
                    .is_some_and(|d| !d.hashed && d.value.starts_with(b"/"));
            let file = match by_path {
                true => b.file_at(&atom.object, FILE_REGULAR, "driver.file"),
                false => b.file_named(&atom.object, FILE_REGULAR, "driver.file"),
            };
            put("driver", json!({ "file": file }));
            (&KERNEL_EXTENSION_ACTIVITY, Activity::new(1, "Load"))
        }
        EventType::BpfProgLoad => {
            let name = b.text_or_id(&atom.object, "kernel.name");
            put(
                "kernel",
                json!({"name": name, "system_call": "bpf", "type": "BPF program", "type_id": OTHER}),
            );
            (&KERNEL_ACTIVITY, Activity::new(1, "Create"))
        }
        EventType::Connect => {
            put("dst_endpoint", b.endpoint(&atom.object, "dst_endpoint"));
            put("is_src_dst_assignment_known", true.into());
            (&NETWORK_ACTIVITY, Activity::new(1, "Open"))
        }
        EventType::Accept => {
            put("src_endpoint", b.endpoint(&atom.object, "src_endpoint"));
            put("is_src_dst_assignment_known", true.into());
            (&NETWORK_ACTIVITY, Activity::new(1, "Open"))
        }
        EventType::Bind => {
            put("dst_endpoint", b.endpoint(&atom.object, "dst_endpoint"));
            put("is_src_dst_assignment_known", false.into());
            (&NETWORK_ACTIVITY, Activity::new(OTHER, "bind"))
        }
        EventType::Listen => {
            put("dst_endpoint", json!({"name": b.w.node()}));
            (&NETWORK_ACTIVITY, Activity::new(7, "Listen"))
        }
    }
}

/// ptrace requests that write the target's memory or registers: OCSF's Inject.
const PTRACE_WRITES: [u64; 7] = [4, 5, 6, 13, 15, 19, 0x4205];

/// ptrace requests by number: <linux/ptrace.h>, and x86-64's <asm/ptrace-abi.h> for 12–19.
const PTRACE_REQUESTS: [(u64, &str); 34] = [
    (0, "PTRACE_TRACEME"),
    (1, "PTRACE_PEEKTEXT"),
    (2, "PTRACE_PEEKDATA"),
    (3, "PTRACE_PEEKUSER"),
    (4, "PTRACE_POKETEXT"),
    (5, "PTRACE_POKEDATA"),
    (6, "PTRACE_POKEUSER"),
    (7, "PTRACE_CONT"),
    (8, "PTRACE_KILL"),
    (9, "PTRACE_SINGLESTEP"),
    (12, "PTRACE_GETREGS"),
    (13, "PTRACE_SETREGS"),
    (14, "PTRACE_GETFPREGS"),
    (15, "PTRACE_SETFPREGS"),
    (16, "PTRACE_ATTACH"),
    (17, "PTRACE_DETACH"),
    (18, "PTRACE_GETFPXREGS"),
    (19, "PTRACE_SETFPXREGS"),
    (24, "PTRACE_SYSCALL"),
    (0x4200, "PTRACE_SETOPTIONS"),
    (0x4201, "PTRACE_GETEVENTMSG"),
    (0x4202, "PTRACE_GETSIGINFO"),
    (0x4203, "PTRACE_SETSIGINFO"),
    (0x4204, "PTRACE_GETREGSET"),
    (0x4205, "PTRACE_SETREGSET"),
    (0x4206, "PTRACE_SEIZE"),
    (0x4207, "PTRACE_INTERRUPT"),
    (0x4208, "PTRACE_LISTEN"),
    (0x4209, "PTRACE_PEEKSIGINFO"),
    (0x420a, "PTRACE_GETSIGMASK"),
    (0x420b, "PTRACE_SETSIGMASK"),
    (0x420c, "PTRACE_SECCOMP_GET_FILTER"),
    (0x420d, "PTRACE_SECCOMP_GET_METADATA"),
    (0x420e, "PTRACE_GET_SYSCALL_INFO"),
];

/// The request a ptrace atom's `arg_hash` is the hash of: canonicalisation hashes the
/// request's 8 big-endian bytes (operators/src/canonicalize.rs), so a known one is found.
fn ptrace_request(arg_hash: &Hash32) -> Option<(u64, &'static str)> {
    static BY_HASH: OnceLock<BTreeMap<Hash32, (u64, &'static str)>> = OnceLock::new();
    BY_HASH
        .get_or_init(|| {
            PTRACE_REQUESTS
                .iter()
                .map(|&(n, name)| (blake3(&n.to_be_bytes()), (n, name)))
                .collect()
        })
        .get(arg_hash)
        .copied()
}

/// FORMAT.md §3 names of event types.
pub(crate) fn event_type_name(t: EventType) -> &'static str {
    t.name()
}
