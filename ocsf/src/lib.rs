//! A sealed window's evidence as [OCSF 1.8.0](https://schema.ocsf.io/1.8.0/) events: one JSON
//! object per event atom and per cone instance, for a SIEM's Kafka topic.
//!
//! [`WindowLeaves::decode`] reads a window's leaves (FORMAT.md §3, §8.2; as
//! `ritma_sinks::store::read_window_leaves` returns them) and [`window_events`]
//! maps them; [`window_event_lines`] does both and returns compact JSON text, one string per
//! event, atoms in seq order and then cone instances in leaf order. The same window gives the
//! same bytes: object keys are sorted (`serde_json::Value::sort_all_objects`, whatever
//! serde_json's features) and nothing depends on the clock or on hash-map order.
//!
//! # Mapping
//!
//! | Ritma event | OCSF class (`class_uid`) | activity (`activity_id`) | what the class requires, and more |
//! |---|---|---|---|
//! | exec | Process Activity (1007) | Launch (1), `launch_type_id` Exec (3) | `process` the process with its new `file` and `cmd_line` (argv, when sealed); `actor.process` the process as its actor record has it |
//! | fork | Process Activity (1007) | Launch (1), `launch_type_id` Fork (2) | `process` the child, `actor.process` the parent |
//! | exit | Process Activity (1007) | Terminate (2) | `process` = `actor.process`, the exiting process (OCSF's reflexive case) |
//! | ptrace | Process Activity (1007) | Inject (4) for a write request (POKETEXT/DATA/USER, SETREGS, SETFPREGS, SETFPXREGS, SETREGSET), otherwise Open (3) | `process` the target (its actor, when its start time was read; else `uid` `"unknown"`); the request recovered from `arg_hash` goes to `unmapped.ritma.ptrace_request` |
//! | setuid | Process Activity (1007) | Set User ID (5) | `process` = `actor.process`; the credentials after the call are the actor record's |
//! | setgid, capset, fd_dup | Process Activity (1007) | Other (99), `activity_name` `setgid` / `capset` / `fd_dup` | as setuid: OCSF has no activity for a group or capability change, or for a descriptor made standard input, output or error |
//! | present | Process Activity (1007) | Other (99), `activity_name` `present` | a process running when capture started: not a launch; `process` as for exec |
//! | open | File System Activity (1001) | Open (14) | `file`; the access (read, write, create, truncate) in `unmapped.ritma.flags` |
//! | unlink | File System Activity (1001) | Delete (4) | `file` |
//! | rename | File System Activity (1001) | Rename (5) | `file` the old path, `file_result` the new one, when the window's single `file_to_file` edge into the new path names the old; else `file` the new path |
//! | memfd_create | File System Activity (1001) | Create (1) | `file` named `memfd:NAME`, a regular file without a path |
//! | module_load | Kernel Extension Activity (1002) | Load (1) | `driver.file`: the module's name, or its path for finit_module |
//! | bpf_prog_load | Kernel Activity (1003) | Create (1) | `kernel` `{name, type_id 99, type "BPF program", system_call "bpf"}`: a BPF program is a kernel resource a process creates |
//! | connect | Network Activity (4001) | Open (1) | `dst_endpoint` the address connected to |
//! | accept | Network Activity (4001) | Open (1) | `src_endpoint` the peer that connected |
//! | bind | Network Activity (4001) | Other (99), `activity_name` `bind` | `dst_endpoint` the local address, `is_src_dst_assignment_known` false (a client may bind too) |
//! | listen | Network Activity (4001) | Listen (7) | `dst_endpoint` `{name: node}`: listen names no address |
//! | ConeInstance | Detection Finding (2004) | Create (1) | `finding_info` (`uid`, `title` the cone id, `analytic` the cone and its version), `evidences` (the bindings, the first and last events held in the window), `is_alert`, `count` |
//!
//! Every event has the base event's required attributes (`activity_id`, `category_uid`,
//! `class_uid`, `type_uid` = `class_uid` × 100 + `activity_id`, `severity_id`, `time` in ms since
//! the epoch, `metadata` with `product` and `version` "1.8.0") and their captions (`*_name`,
//! `severity`), `device` (`name` the node, Linux), `actor` (`process`, with `user.uid`, its
//! executable `file` with its BLAKE3 `hashes`, `parent_process`, and `container` when the actor
//! names one), and `status_id` Success/Failure from the atom's failed flag (not for exit, whose
//! flag means a non-zero exit code; a finding's is New). `metadata.profiles` is `["host"]`, plus `"container"` when a
//! process names its container; Network Activity needs `host` for `actor` and `device`.
//! Severity is Informational (1) for activity and Medium (3) for a finding: cones carry none.
//!
//! # Where the evidence is
//!
//! `metadata.uid` is `<node>/<window>/<seq>` for an event and
//! `<node>/<window>/<cone_id>/<first_seq>-<last_seq>` for a finding (also its `finding_info.uid`),
//! and `metadata.sequence` the seq (when it fits OCSF's 32-bit `integer_t`, as a finding's `count` must). `unmapped.ritma` holds the coordinates a proof needs and what
//! OCSF has no place for: `node`, `window`, `seq` (for a finding `first_seq`, `last_seq`, the
//! cone, its bindings and exceptions), `actor` (hex actor id), `event`, `flags`, `time_ns` (the
//! wall time in ns), `arg_hash`, `payload_ref`. `ritma prove DIR --node <node> --seq <seq>` then
//! proves the event (for a finding, its last seq).
//!
//! Dictionary values are text, invalid UTF-8 replaced; an argv is its words joined by spaces
//! (`argv:<hex>` if it is not an array of byte strings). A value sealed as its hash (longer than a
//! DictEntry holds) is written `blake3:<hex>` and its attribute path listed in
//! `unmapped.ritma.hashed`; an id the window has no entry for is written `id:<hex>` and listed
//! in `unmapped.ritma.unresolved`. A flow that is not IPv4, IPv6 or Unix gives an endpoint with
//! the flow's id as `uid` and the raw value, in hex, in `unmapped.ritma.flow`.

mod activity;
mod finding;
mod objects;
mod window;

pub use window::WindowLeaves;

use ritma_schemas::cbor::DecodeError;
use ritma_schemas::records::WindowRecord;
use serde_json::Value;

/// The OCSF schema version the events follow (`metadata.version`).
pub const OCSF_VERSION: &str = "1.8.0";

/// Why a window's leaves could not be read.
#[derive(Debug, thiserror::Error)]
pub enum OcsfError {
    #[error("node {node} window {window}: leaf {index}: {source}")]
    Decode {
        node: String,
        window: u64,
        index: usize,
        source: Box<DecodeError>,
    },
    #[error("node {node} window {window}: leaf {index} is a {record}, not a window leaf")]
    NotALeaf {
        node: String,
        window: u64,
        index: usize,
        record: &'static str,
    },
    #[error("node {node} window {window}: {found} {section} leaves, the window record counts {expected}")]
    Count {
        node: String,
        window: u64,
        section: &'static str,
        expected: u64,
        found: u64,
    },
}

/// The OCSF events of a window: its atoms in seq order, then its cone instances.
pub fn window_events(record: &WindowRecord, leaves: &WindowLeaves) -> Vec<Value> {
    let mut events = Vec::new();
    each_event(record, leaves, |e| events.push(e));
    events
}

/// [`window_events`] of the window's encoded leaves, each as compact JSON text.
pub fn window_event_lines<L: AsRef<[u8]>>(
    record: &WindowRecord,
    leaves: &[L],
) -> Result<Vec<String>, OcsfError> {
    let leaves = WindowLeaves::decode(record, leaves)?;
    let mut lines = Vec::with_capacity(leaves.atoms.len() + leaves.cones.len());
    // One tree at a time, written and dropped: a window's worth of trees at once costs
    // more in fresh pages than in building them.
    each_event(record, &leaves, |e| lines.push(e.to_string()));
    Ok(lines)
}

/// Calls `f` with each event of the window, in order, its objects' keys sorted.
fn each_event(record: &WindowRecord, leaves: &WindowLeaves, mut f: impl FnMut(Value)) {
    let window = window::Window::new(record, leaves);
    let mut atoms: Vec<_> = leaves.atoms.iter().collect();
    atoms.sort_by_key(|a| a.seq);
    let atoms = atoms.into_iter().map(|a| activity::atom_event(&window, a));
    let cones = leaves
        .cones
        .iter()
        .map(|c| finding::cone_finding(&window, c));
    for mut e in atoms.chain(cones) {
        e.sort_all_objects();
        f(e);
    }
}
