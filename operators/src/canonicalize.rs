//! canonicalize: a raw event → an `EventAtom` plus the dictionary entries it names.
//! Stateless: ids are content-derived (FORMAT.md §2.2), so any worker canonicalises
//! any event with no coordination.

use std::borrow::Cow;

use ritma_schemas::cbor::Encoder;
use ritma_schemas::hash::{blake3, Hash32};
use ritma_schemas::path::canonical_path;
use ritma_schemas::records::{
    atom_flags, ActorRecord, DictEntry, DictKind, EventAtom, EventType, RunMeta,
};
use ritma_schemas::Id128;
use ritma_sources::raw::{DupSource, IdCall, RawBody, RawEvent, SockAddr, Task, ID_UNCHANGED};

/// Id used as the object of events that have none (exit, listen, id changes).
pub const NO_OBJECT: Id128 = [0; 16];

/// What canonicalisation needs to know about the run an event came from.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct RunContext {
    pub node: String,
    pub boot_id: Id128,
    pub window_len_ns: u64,
    pub wall_minus_mono_ns: i64,
}

impl RunContext {
    pub fn from_meta(m: &RunMeta) -> Self {
        RunContext {
            node: m.node.clone(),
            boot_id: m.boot_id,
            window_len_ns: m.window_len_ns,
            wall_minus_mono_ns: m.wall_minus_mono_ns,
        }
    }

    /// Wall-clock ns of a monotonic time (saturating: a clock before 1970 is 0).
    pub fn wall_ns(&self, mono_ns: u64) -> u64 {
        (mono_ns as i128 + self.wall_minus_mono_ns as i128).clamp(0, u64::MAX as i128) as u64
    }

    /// The window an event's own time falls in.
    pub fn window_of(&self, mono_ns: u64) -> u64 {
        self.wall_ns(mono_ns) / self.window_len_ns
    }

    pub fn actor_id(&self, pid: u32, start_ns: u64) -> Id128 {
        ActorRecord::id_of(&self.node, &self.boot_id, pid, start_ns)
    }
}

/// A canonical event, with what later operators need from the raw event.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct CanonicalEvent {
    /// The window (epoch) the event is sealed in.
    pub window: u64,
    pub atom: EventAtom,
    /// Dictionary entries the atom refers to, in the order made.
    pub dict: Vec<DictEntry>,
    /// The argv entry (exec, present): sealed only while the actor's capture mode is
    /// Thick or above; the atom's `arg_hash` is sealed in every mode.
    pub thick: Option<EncodedArgv>,
    /// The task, for attribution.
    pub task: Task,
    /// The parent's actor id, when the task names its parent's start time (made here,
    /// where the run's boot is known, so attribution needs no run context).
    pub parent: Option<Id128>,
    /// What only some event types carry.
    pub detail: Detail,
}

/// Per-type facts the attribute and graph-edge operators use.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Detail {
    None,
    /// The task now runs this executable (dictionary id of its path).
    Exec {
        exe: Id128,
        exe_dev: u64,
        exe_ino: u64,
    },
    /// The task was running this executable when capture started (not an exec).
    Present {
        exe: Id128,
        exe_dev: u64,
        exe_ino: u64,
    },
    /// A child process started.
    Fork {
        child: Id128,
        child_pid: u32,
        child_start_ns: u64,
    },
    /// The task's process exited.
    Exit,
    /// A rename's source path (the object is the destination).
    Rename {
        from: Id128,
    },
    /// ptrace's target pid and request (the object is the target's actor when known).
    PtraceTarget {
        pid: u32,
        request: u64,
    },
    /// An fd landed on 0-2: the process's executable as the sensor read it then (the
    /// cones' `exe` conditions, FORMAT.md §10).
    FdDup {
        exe: Vec<u8>,
    },
    /// The task's credentials changed (the new uid/gid triple).
    Credentials {
        uid: Option<u32>,
        euid: Option<u32>,
    },
}

fn dict(out: &mut Vec<DictEntry>, kind: DictKind, value: Vec<u8>) -> Id128 {
    let e = DictEntry::from_vec(kind, value);
    let id = e.id;
    out.push(e);
    id
}

/// A path's dictionary entries (FORMAT.md §3.2): its canonical form, the object, and the
/// path as the process gave it when that differs (the sensor's `given`, or `path` itself
/// when only lexical canonicalisation changed it).
fn path_entries(
    out: &mut Vec<DictEntry>,
    path: Vec<u8>,
    given: Option<Vec<u8>>,
) -> (Id128, Option<Id128>) {
    let (canonical, given) = match canonical_path(&path) {
        Cow::Borrowed(_) => (path, given),
        Cow::Owned(c) => (c, given.or(Some(path))),
    };
    let given = given.filter(|g| *g != canonical);
    let object = dict(out, DictKind::Path, canonical);
    (object, given.map(|g| dict(out, DictKind::Path, g)))
}

/// Encodes a socket address as flow bytes: family (2 bytes BE) ‖ address ‖ port (2 bytes BE).
pub fn flow_bytes(a: &SockAddr) -> Vec<u8> {
    let mut b = Vec::with_capacity(20);
    match a {
        SockAddr::V4 { addr, port } => {
            b.extend_from_slice(&2u16.to_be_bytes());
            b.extend_from_slice(addr);
            b.extend_from_slice(&port.to_be_bytes());
        }
        SockAddr::V6 { addr, port } => {
            b.extend_from_slice(&10u16.to_be_bytes());
            b.extend_from_slice(addr);
            b.extend_from_slice(&port.to_be_bytes());
        }
        SockAddr::Unix { path } => {
            b.extend_from_slice(&1u16.to_be_bytes());
            b.extend_from_slice(path);
        }
        SockAddr::Other { family } => b.extend_from_slice(&family.to_be_bytes()),
    }
    b
}

/// How many dictionary entries an event of this body makes (at most), so its list
/// is allocated once and at its size: events wait in window stashes by the thousand.
fn dict_entries_of(body: &RawBody) -> usize {
    match body {
        RawBody::Rename { .. } => 4,
        RawBody::Exec { .. } | RawBody::Present { .. } => 2,
        RawBody::Open { given, .. } | RawBody::Unlink { given, .. } => 1 + given.is_some() as usize,
        RawBody::Connect { .. }
        | RawBody::Accept { .. }
        | RawBody::Bind { .. }
        | RawBody::MemfdCreate { .. }
        | RawBody::ModuleLoad { .. }
        | RawBody::BpfProgLoad { .. }
        | RawBody::FdDup { .. } => 1,
        RawBody::Fork { .. }
        | RawBody::Exit { .. }
        | RawBody::Listen { .. }
        | RawBody::Ptrace { .. }
        | RawBody::SetUid { .. }
        | RawBody::SetGid { .. }
        | RawBody::CapSet { .. } => 0,
    }
}

fn failed(result: i64) -> u32 {
    if result < 0 {
        atom_flags::FAILED
    } else {
        0
    }
}

/// open(2) flags → atom flags.
fn open_flags(flags: u32) -> u32 {
    const O_ACCMODE: u32 = 3;
    const O_CREAT: u32 = 0o100;
    const O_TRUNC: u32 = 0o1000;
    let mut f = match flags & O_ACCMODE {
        0 => atom_flags::READ,
        1 => atom_flags::WRITE,
        _ => atom_flags::READ | atom_flags::WRITE,
    };
    if flags & O_CREAT != 0 {
        f |= atom_flags::CREATE;
    }
    if flags & O_TRUNC != 0 {
        f |= atom_flags::TRUNCATE;
    }
    f
}

/// Canonicalises `raw`, sealed in `window` (its own window, or a later one if it
/// arrived after its own had closed, which marks it late).
pub fn canonicalize(ctx: &RunContext, window: u64, raw: RawEvent) -> CanonicalEvent {
    let start = window as i128 * ctx.window_len_ns as i128;
    let t_ns =
        (ctx.wall_ns(raw.mono_ns) as i128 - start).clamp(i64::MIN as i128, i64::MAX as i128) as i64;
    let mut flags = if ctx.window_of(raw.mono_ns) < window {
        atom_flags::LATE
    } else {
        0
    };
    let mut dict_out = Vec::with_capacity(dict_entries_of(&raw.body));
    let mut arg_hash = None;
    let mut thick = None;
    let mut detail = Detail::None;
    let mut given = Vec::new();
    let event_type = raw.body.event_type();
    let RawEvent {
        seq,
        mono_ns: _,
        task,
        body,
    } = raw;
    // Paths and names move into their dictionary entries: no copy per event.
    let object = match body {
        RawBody::Exec {
            filename,
            given: given_path,
            argv,
            exe_dev,
            exe_ino,
            stdio_net,
            ..
        } => {
            flags |= atom_flags::EXEC;
            if stdio_net != 0 {
                flags |= atom_flags::STDIO_NET;
            }
            // The executable's id is its path's id, so a file written and then run is one node.
            let (exe, g) = path_entries(&mut dict_out, filename, given_path);
            given.extend(g.map(Some));
            (arg_hash, thick) = encode_argv(&argv);
            flags |= argv_flags(&thick);
            detail = Detail::Exec {
                exe,
                exe_dev,
                exe_ino,
            };
            exe
        }
        RawBody::Present {
            exe,
            argv,
            exe_dev,
            exe_ino,
            ..
        } => {
            // Like an exec's object and argv, without the exec flag: nothing was exec'd.
            let exe = dict(&mut dict_out, DictKind::Path, exe);
            (arg_hash, thick) = encode_argv(&argv);
            flags |= argv_flags(&thick);
            detail = Detail::Present {
                exe,
                exe_dev,
                exe_ino,
            };
            exe
        }
        RawBody::Fork {
            child_pid,
            child_start_ns,
        } => {
            let child = ctx.actor_id(child_pid, child_start_ns);
            detail = Detail::Fork {
                child,
                child_pid,
                child_start_ns,
            };
            child
        }
        RawBody::Exit { code } => {
            if code != 0 {
                flags |= atom_flags::FAILED;
            }
            detail = Detail::Exit;
            NO_OBJECT
        }
        RawBody::Open {
            path,
            given: given_path,
            flags: f,
            result,
            ..
        } => {
            flags |= open_flags(f) | failed(result);
            let (object, g) = path_entries(&mut dict_out, path, given_path);
            given.extend(g.map(Some));
            object
        }
        RawBody::Unlink {
            path,
            given: given_path,
            result,
            ..
        } => {
            flags |= failed(result);
            let (object, g) = path_entries(&mut dict_out, path, given_path);
            given.extend(g.map(Some));
            object
        }
        RawBody::Rename {
            old,
            new,
            old_given,
            new_given,
            result,
            ..
        } => {
            flags |= failed(result);
            let (from, old_g) = path_entries(&mut dict_out, old, old_given);
            detail = Detail::Rename { from };
            let (object, new_g) = path_entries(&mut dict_out, new, new_given);
            // The atom names the new path's given form first: the new path is its object.
            if old_g.is_some() || new_g.is_some() {
                given = vec![new_g, old_g];
            }
            object
        }
        RawBody::Connect { addr, result }
        | RawBody::Accept { addr, result }
        | RawBody::Bind { addr, result } => {
            flags |= failed(result);
            dict(&mut dict_out, DictKind::Flow, flow_bytes(&addr))
        }
        RawBody::Listen { result, .. } => {
            flags |= failed(result);
            NO_OBJECT
        }
        RawBody::Ptrace {
            request,
            target_pid,
            target_start_ns,
            result,
        } => {
            flags |= failed(result);
            arg_hash = Some(blake3(&request.to_be_bytes()));
            detail = Detail::PtraceTarget {
                pid: target_pid,
                request,
            };
            // Without the target's start time its actor id is unknown: no object, no edge.
            if target_start_ns == 0 {
                NO_OBJECT
            } else {
                ctx.actor_id(target_pid, target_start_ns)
            }
        }
        RawBody::SetUid { call, ids, result } | RawBody::SetGid { call, ids, result } => {
            flags |= failed(result);
            let mut e = Encoder::new();
            e.array(4)
                .uint(call as u64)
                .uint(ids[0] as u64)
                .uint(ids[1] as u64)
                .uint(ids[2] as u64);
            arg_hash = Some(blake3(e.as_bytes()));
            if result >= 0 && event_type == EventType::SetUid {
                detail = Detail::Credentials {
                    uid: new_uid(call, &ids),
                    euid: new_euid(call, &ids),
                };
            }
            NO_OBJECT
        }
        RawBody::CapSet {
            effective,
            permitted,
            inheritable,
            result,
        } => {
            flags |= failed(result);
            let mut e = Encoder::new();
            e.array(3).uint(effective).uint(permitted).uint(inheritable);
            arg_hash = Some(blake3(e.as_bytes()));
            NO_OBJECT
        }
        RawBody::MemfdCreate { name, result, .. } => {
            flags |= failed(result);
            dict(
                &mut dict_out,
                DictKind::Name,
                [b"memfd:".as_slice(), &name].concat(),
            )
        }
        RawBody::ModuleLoad { name, result, .. } | RawBody::BpfProgLoad { name, result, .. } => {
            flags |= failed(result);
            dict(&mut dict_out, DictKind::Name, name)
        }
        RawBody::FdDup {
            call,
            oldfd,
            newfd,
            source,
            peer,
            exe,
        } => {
            // Which stdio fd it is, readable in the flags; the exact call in the hash.
            flags |= if newfd == 0 {
                atom_flags::READ
            } else {
                atom_flags::WRITE
            };
            if matches!(peer, SockAddr::V4 { .. } | SockAddr::V6 { .. }) {
                flags |= atom_flags::STDIO_NET;
            }
            let mut e = Encoder::new();
            e.array(3)
                .uint(call as u64)
                .uint(oldfd as u64)
                .uint(newfd as u64);
            arg_hash = Some(blake3(e.as_bytes()));
            detail = Detail::FdDup {
                exe: canonical_path(&exe).into_owned(),
            };
            if source == DupSource::Socket {
                dict(&mut dict_out, DictKind::Flow, flow_bytes(&peer))
            } else {
                dict(
                    &mut dict_out,
                    DictKind::Name,
                    source.name().as_bytes().to_vec(),
                )
            }
        }
    };
    let actor = ctx.actor_id(task.pid, task.start_ns);
    let parent = (task.parent_start_ns != 0).then(|| ctx.actor_id(task.ppid, task.parent_start_ns));
    CanonicalEvent {
        window,
        atom: EventAtom {
            seq,
            t_ns,
            event_type,
            actor,
            object,
            flags,
            arg_hash,
            payload_ref: None,
            given,
        },
        dict: dict_out,
        thick,
        task,
        parent,
        detail,
    }
}

/// An exec's or present process's argv, encoded (FORMAT.md §3.1): its dictionary entry
/// is made only for the few sealed in Thick mode, off the per-event path.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct EncodedArgv(pub Vec<u8>);

impl EncodedArgv {
    /// Too long for a DictEntry value: its entry will hold its hash.
    pub fn is_hashed(&self) -> bool {
        self.0.len() > ritma_schemas::records::MAX_DICT_VALUE_LEN
    }

    pub fn entry(self) -> DictEntry {
        DictEntry::from_vec(DictKind::Argv, self.0)
    }
}

/// An exec's or present process's argv: its hash and its encoding.
fn encode_argv(argv: &[Vec<u8>]) -> (Option<Hash32>, Option<EncodedArgv>) {
    if argv.is_empty() {
        return (None, None);
    }
    let mut e = Encoder::new();
    e.array(argv.len() as u64);
    for a in argv {
        e.bytes(a);
    }
    let encoded = e.into_bytes();
    (Some(blake3(&encoded)), Some(EncodedArgv(encoded)))
}

/// Flags an argv too long to keep, in every mode alike.
fn argv_flags(argv: &Option<EncodedArgv>) -> u32 {
    if argv.as_ref().is_some_and(EncodedArgv::is_hashed) {
        atom_flags::ARG_HASHED
    } else {
        0
    }
}

fn set_id(v: u32) -> Option<u32> {
    (v != ID_UNCHANGED).then_some(v)
}

/// The real uid after a successful set*uid call, if it changed.
fn new_uid(call: IdCall, ids: &[u32; 3]) -> Option<u32> {
    match call {
        IdCall::Set | IdCall::SetRe | IdCall::SetRes => set_id(ids[0]),
        IdCall::SetFs => None,
    }
}

/// The effective uid after a successful set*uid call, if it changed.
fn new_euid(call: IdCall, ids: &[u32; 3]) -> Option<u32> {
    match call {
        IdCall::Set => set_id(ids[0]),
        IdCall::SetRe | IdCall::SetRes => set_id(ids[1]),
        IdCall::SetFs => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx() -> RunContext {
        RunContext {
            node: "n1".into(),
            boot_id: [9; 16],
            window_len_ns: 1_000_000_000,
            wall_minus_mono_ns: 1_000_000_000_000,
        }
    }

    fn raw(mono_ns: u64, body: RawBody) -> RawEvent {
        RawEvent {
            seq: 42,
            mono_ns,
            task: Task {
                pid: 7,
                start_ns: 100,
                ..Task::default()
            },
            body,
        }
    }

    #[test]
    fn open_maps_flags_path_and_time() {
        let c = ctx();
        let e = canonicalize(
            &c,
            1000,
            raw(
                250_000_000,
                RawBody::Open {
                    path: b"/etc/x".to_vec(),
                    flags: 0o1101,
                    mode: 0o644,
                    result: 3,
                    given: None,
                },
            ),
        );
        assert_eq!(e.atom.event_type, EventType::Open);
        assert_eq!(e.atom.t_ns, 250_000_000);
        assert_eq!(
            e.atom.flags,
            atom_flags::WRITE | atom_flags::CREATE | atom_flags::TRUNCATE
        );
        assert_eq!(e.atom.object, DictEntry::id_of(DictKind::Path, b"/etc/x"));
        assert_eq!(e.atom.actor, ActorRecord::id_of("n1", &[9; 16], 7, 100));
        assert_eq!(e.dict, vec![DictEntry::new(DictKind::Path, b"/etc/x")]);
        let failed = canonicalize(
            &c,
            1000,
            raw(
                0,
                RawBody::Open {
                    path: b"/x".to_vec(),
                    flags: 0,
                    mode: 0,
                    result: -2,
                    given: None,
                },
            ),
        );
        assert_eq!(failed.atom.flags, atom_flags::READ | atom_flags::FAILED);
    }

    #[test]
    fn paths_are_sealed_canonical_with_the_given_form_beside_them() {
        let c = ctx();
        let id = |p: &[u8]| DictEntry::id_of(DictKind::Path, p);
        let open = |path: &[u8], given: Option<&[u8]>| {
            canonicalize(
                &c,
                1000,
                raw(
                    1,
                    RawBody::Open {
                        path: path.to_vec(),
                        given: given.map(<[u8]>::to_vec),
                        flags: 0,
                        mode: 0,
                        result: 3,
                    },
                ),
            )
        };
        // A trace before given paths: the path itself is made canonical and kept as given.
        let e = open(b"/tmp/./a//../x", None);
        assert_eq!(e.atom.object, id(b"/tmp/x"));
        assert_eq!(e.atom.given, vec![Some(id(b"/tmp/./a//../x"))]);
        assert_eq!(
            e.dict,
            vec![
                DictEntry::new(DictKind::Path, b"/tmp/x"),
                DictEntry::new(DictKind::Path, b"/tmp/./a//../x")
            ]
        );
        // The sensor's resolution and the argument as given.
        let e = open(b"/usr/bin/dash", Some(b"/bin/sh"));
        assert_eq!(e.atom.object, id(b"/usr/bin/dash"));
        assert_eq!(e.atom.given, vec![Some(id(b"/bin/sh"))]);
        // Canonical and not given otherwise: a version 1 atom, one entry.
        let e = open(b"/etc/x", None);
        assert!(e.atom.given.is_empty());
        assert_eq!(e.dict.len(), 1);
        // A given path equal to the canonical one is not a given path.
        let e = open(b"/tmp/./x", Some(b"/tmp/x"));
        assert_eq!(
            (e.atom.object, e.atom.given.clone()),
            (id(b"/tmp/x"), vec![])
        );

        // A rename names the new path's given form first, null where canonical.
        let e = canonicalize(
            &c,
            1000,
            raw(
                1,
                RawBody::Rename {
                    old: b"/home/u/a".to_vec(),
                    new: b"/tmp/b".to_vec(),
                    old_given: Some(b"a".to_vec()),
                    new_given: None,
                    flags: 0,
                    result: 0,
                },
            ),
        );
        assert_eq!(e.atom.object, id(b"/tmp/b"));
        assert_eq!(e.atom.given, vec![None, Some(id(b"a"))]);
        assert_eq!(
            e.detail,
            Detail::Rename {
                from: id(b"/home/u/a")
            }
        );
        // The sealed atom round-trips as version 2.
        use ritma_schemas::records::Record;
        let bytes = e.atom.encode();
        assert_eq!(bytes[2], 2);
        assert_eq!(EventAtom::decode(&bytes).unwrap(), e.atom);
    }

    #[test]
    fn a_late_event_keeps_its_true_time_and_is_flagged() {
        let c = ctx();
        let e = canonicalize(&c, 1001, raw(900_000_000, RawBody::Exit { code: 0 }));
        assert_eq!(e.atom.t_ns, -100_000_000);
        assert_eq!(e.atom.flags, atom_flags::LATE);
    }

    #[test]
    fn exec_argv_is_hashed_in_the_atom_and_kept_aside_for_thick_mode() {
        let c = ctx();
        let body = RawBody::Exec {
            filename: b"/bin/ls".to_vec(),
            argv: vec![b"ls".to_vec(), b"-l".to_vec()],
            argv_truncated: false,
            exe_dev: 1,
            exe_ino: 2,
            given: None,
            stdio_net: 0,
        };
        let e = canonicalize(&c, 1000, raw(0, body));
        assert!(e.atom.arg_hash.is_some());
        assert_eq!(e.dict.len(), 1);
        let argv = e.thick.expect("an argv entry").entry();
        assert_eq!(argv.kind, DictKind::Argv);
        assert!(!argv.hashed);
        assert_eq!(e.atom.flags & atom_flags::ARG_HASHED, 0);
        assert!(matches!(e.detail, Detail::Exec { exe_ino: 2, .. }));
    }

    #[test]
    fn present_is_canonicalised_like_exec_but_is_not_one() {
        let c = ctx();
        let argv = vec![b"sshd:".to_vec(), b"/usr/sbin/sshd".to_vec()];
        let present = RawBody::Present {
            exe: b"/usr/sbin/sshd".to_vec(),
            argv: argv.clone(),
            argv_truncated: false,
            exe_dev: 0x803,
            exe_ino: 99,
        };
        let exec = RawBody::Exec {
            filename: b"/usr/sbin/sshd".to_vec(),
            argv,
            argv_truncated: false,
            exe_dev: 0x803,
            exe_ino: 99,
            given: None,
            stdio_net: 0,
        };
        let p = canonicalize(&c, 1000, raw(0, present));
        let x = canonicalize(&c, 1000, raw(0, exec));
        assert_eq!(p.atom.event_type, EventType::Present);
        assert_eq!(p.atom.flags & atom_flags::EXEC, 0);
        assert_eq!(x.atom.flags & atom_flags::EXEC, atom_flags::EXEC);
        // Same object, argument hash and dictionary entries as the exec would give.
        assert_eq!(
            p.atom.object,
            DictEntry::id_of(DictKind::Path, b"/usr/sbin/sshd")
        );
        assert_eq!(p.atom.object, x.atom.object);
        assert_eq!(p.atom.arg_hash, x.atom.arg_hash);
        assert!(p.atom.arg_hash.is_some());
        assert_eq!(p.dict, x.dict);
        assert_eq!(p.thick, x.thick);
        assert_eq!(p.thick.clone().unwrap().entry().kind, DictKind::Argv);
        assert_eq!(
            p.detail,
            Detail::Present {
                exe: p.atom.object,
                exe_dev: 0x803,
                exe_ino: 99
            }
        );
        // No argv (a process that cleared its arguments): no hash, no entry.
        let bare = RawBody::Present {
            exe: b"/x".to_vec(),
            argv: vec![],
            argv_truncated: false,
            exe_dev: 1,
            exe_ino: 2,
        };
        let b = canonicalize(&c, 1000, raw(0, bare));
        assert_eq!((b.atom.arg_hash, b.dict.len(), b.thick), (None, 1, None));
    }

    #[test]
    fn oversize_argv_is_hashed_and_flagged_never_cut() {
        let c = ctx();
        let argv = vec![vec![b'a'; 4000], vec![b'b'; 100]];
        let body = RawBody::Exec {
            filename: b"/bin/x".to_vec(),
            argv,
            argv_truncated: false,
            exe_dev: 1,
            exe_ino: 2,
            given: None,
            stdio_net: 0,
        };
        let e = canonicalize(&c, 1000, raw(0, body));
        assert!(e.atom.flags & atom_flags::ARG_HASHED != 0);
        assert!(e.thick.unwrap().entry().hashed);
    }

    #[test]
    fn fork_names_the_child_actor_and_flows_are_encoded() {
        let c = ctx();
        let e = canonicalize(
            &c,
            1000,
            raw(
                0,
                RawBody::Fork {
                    child_pid: 8,
                    child_start_ns: 200,
                },
            ),
        );
        assert_eq!(e.atom.object, c.actor_id(8, 200));
        let addr = SockAddr::V4 {
            addr: [10, 0, 0, 1],
            port: 443,
        };
        assert_eq!(flow_bytes(&addr), vec![0, 2, 10, 0, 0, 1, 1, 187]);
        let e = canonicalize(&c, 1000, raw(0, RawBody::Connect { addr, result: 0 }));
        assert_eq!(e.dict[0].kind, DictKind::Flow);
    }

    #[test]
    fn setuid_reports_new_credentials() {
        let c = ctx();
        let e = canonicalize(
            &c,
            1000,
            raw(
                0,
                RawBody::SetUid {
                    call: IdCall::SetRes,
                    ids: [ID_UNCHANGED, 0, ID_UNCHANGED],
                    result: 0,
                },
            ),
        );
        assert_eq!(
            e.detail,
            Detail::Credentials {
                uid: None,
                euid: Some(0)
            }
        );
        let e = canonicalize(
            &c,
            1000,
            raw(
                0,
                RawBody::SetUid {
                    call: IdCall::Set,
                    ids: [0, 0, 0],
                    result: -1,
                },
            ),
        );
        assert_eq!(e.detail, Detail::None);
    }
}
