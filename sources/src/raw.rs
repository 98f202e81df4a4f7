//! The raw event model: what the sensor sees in the kernel, before canonicalisation.
//! Raw events are what `.rtrace` files (the WAL) hold, encoded as deterministic CBOR
//! (FORMAT.md §7.1), so a replay sees exactly what the live run saw.

use ritma_schemas::cbor::{DecodeError, DecodeErrorKind, Decoder, Encoder};
use ritma_schemas::records::EventType;

/// Record type of a raw event inside a trace (outside the evidence record space 1–31).
pub const RAW_EVENT_TYPE: u64 = 32;
pub const RAW_EVENT_VERSION: u64 = 1;
/// The version of a raw event that carries given paths (FORMAT.md §7.1).
pub const RAW_EVENT_VERSION_GIVEN: u64 = 2;
/// Largest encoded raw event (a rename with two paths and both as given).
pub const MAX_RAW_EVENT_LEN: usize = 32768;
/// Longest path the sensor reports (PATH_MAX).
pub const MAX_PATH_LEN: usize = 4096;
/// Most argv elements kept; the rest is marked truncated.
pub const MAX_ARGV: usize = 64;
/// Longest short name (memfd name, module name, BPF program name).
pub const MAX_NAME_LEN: usize = 256;

/// The task an event happened in, as the kernel reports it.
#[derive(Clone, Debug, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub struct Task {
    /// Process id (the kernel's tgid).
    pub pid: u32,
    /// Thread id (the kernel's pid).
    pub tid: u32,
    /// Parent's process id.
    pub ppid: u32,
    /// Parent's start time (with ppid: the parent's actor id without any lookup).
    pub parent_start_ns: u64,
    /// Process start time, kernel monotonic ns (with pid: unique across pid reuse).
    pub start_ns: u64,
    pub uid: u32,
    pub gid: u32,
    pub euid: u32,
    pub egid: u32,
    pub cgroup_id: u64,
    pub mnt_ns: u64,
    pub pid_ns: u64,
    pub net_ns: u64,
    /// Command name, at most 16 bytes, no trailing NULs.
    pub comm: Vec<u8>,
}

/// A socket address as the syscall saw it.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum SockAddr {
    V4 {
        addr: [u8; 4],
        port: u16,
    },
    V6 {
        addr: [u8; 16],
        port: u16,
    },
    Unix {
        path: Vec<u8>,
    },
    /// Another address family; only the family is kept.
    Other {
        family: u16,
    },
}

const AF_UNIX: u64 = 1;
const AF_INET: u64 = 2;
const AF_INET6: u64 = 10;

/// An enum of the raw model whose variants are numbered on the wire, with its decoder.
macro_rules! code_enum {
    ($(#[$m:meta])* $name:ident { $($(#[$vm:meta])* $variant:ident = $val:expr),+ $(,)? }) => {
        $(#[$m])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
        pub enum $name { $($(#[$vm])* $variant = $val),+ }

        impl $name {
            pub fn from_u64(v: u64) -> Option<Self> {
                match v { $($val => Some($name::$variant),)+ _ => None }
            }
        }
    };
}

code_enum!(
    /// Which id-changing syscall ran.
    IdCall {
        Set = 1,
        SetRe = 2,
        SetRes = 3,
        SetFs = 4,
    }
);

code_enum!(
    /// Which call duplicated an fd onto the standard input, output or error.
    DupCall {
        Dup = 1,
        Dup2 = 2,
        Dup3 = 3,
        /// fcntl(F_DUPFD)
        FcntlDupfd = 4,
        /// fcntl(F_DUPFD_CLOEXEC)
        FcntlDupfdCloexec = 5,
    }
);

code_enum!(
    /// What kind of file a duplicated fd is.
    DupSource {
        Socket = 1,
        /// A pipe or FIFO.
        Pipe = 2,
        /// A regular file.
        File = 3,
        /// A character device (a terminal, /dev/null).
        CharDevice = 4,
        Other = 5,
    }
);

impl DupSource {
    /// The name an fd_dup atom's object holds for a source that is not a socket.
    pub fn name(self) -> &'static str {
        match self {
            DupSource::Socket => "socket",
            DupSource::Pipe => "pipe",
            DupSource::File => "file",
            DupSource::CharDevice => "char_device",
            DupSource::Other => "other",
        }
    }
}

/// "Unchanged" in setre*/setres* arguments ((uid_t)-1).
pub const ID_UNCHANGED: u32 = u32::MAX;

/// What happened. Negative `result`s are `-errno`.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum RawBody {
    Exec {
        /// The program's path as the sensor resolved it: the file the kernel ran, or the
        /// argument joined with the directory it was relative to.
        filename: Vec<u8>,
        /// The argument as the process gave it, when it differs from `filename`.
        given: Option<Vec<u8>>,
        argv: Vec<Vec<u8>>,
        argv_truncated: bool,
        exe_dev: u64,
        exe_ino: u64,
        /// Bit i set when fd i (0, 1, 2) of the new program is an IPv4/IPv6 socket.
        stdio_net: u8,
    },
    Fork {
        child_pid: u32,
        child_start_ns: u64,
    },
    Exit {
        code: i32,
    },
    /// `path` as the sensor resolved it (the opened file, or the argument joined with its
    /// directory); `given` the argument as the process gave it, when it differs.
    Open {
        path: Vec<u8>,
        given: Option<Vec<u8>>,
        flags: u32,
        mode: u32,
        result: i64,
    },
    Unlink {
        path: Vec<u8>,
        given: Option<Vec<u8>>,
        flags: u32,
        result: i64,
    },
    Rename {
        old: Vec<u8>,
        new: Vec<u8>,
        old_given: Option<Vec<u8>>,
        new_given: Option<Vec<u8>>,
        flags: u32,
        result: i64,
    },
    Connect {
        addr: SockAddr,
        result: i64,
    },
    Accept {
        addr: SockAddr,
        result: i64,
    },
    Bind {
        addr: SockAddr,
        result: i64,
    },
    Listen {
        backlog: u32,
        result: i64,
    },
    Ptrace {
        request: u64,
        target_pid: u32,
        /// The target's start time, 0 if the sensor could not read it.
        target_start_ns: u64,
        result: i64,
    },
    /// `ids` are (real, effective, saved) for setres*, (real, effective, unchanged) for setre*, and the one id first for set*/setfs*.
    SetUid {
        call: IdCall,
        ids: [u32; 3],
        result: i64,
    },
    SetGid {
        call: IdCall,
        ids: [u32; 3],
        result: i64,
    },
    CapSet {
        effective: u64,
        permitted: u64,
        inheritable: u64,
        result: i64,
    },
    MemfdCreate {
        name: Vec<u8>,
        flags: u32,
        result: i64,
    },
    /// `name`: the module name (init_module) or the file's path (finit_module).
    ModuleLoad {
        name: Vec<u8>,
        from_fd: bool,
        result: i64,
    },
    BpfProgLoad {
        prog_type: u32,
        name: Vec<u8>,
        result: i64,
    },
    /// An fd duplicated onto 0, 1 or 2 (successful calls only: a failed one moves nothing).
    FdDup {
        call: DupCall,
        oldfd: u32,
        /// 0, 1 or 2.
        newfd: u8,
        source: DupSource,
        /// A socket's peer (`Other { family: 0 }` when not a socket or unknown).
        peer: SockAddr,
        /// The process's executable, resolved (empty when the sensor could not read it).
        exe: Vec<u8>,
    },
    /// The process was already running when capture started (the sensor's start-up
    /// snapshot): what it runs, as an exec would have said. Not an exec.
    Present {
        /// The executable's path (resolved, as seen from the process's root).
        exe: Vec<u8>,
        argv: Vec<Vec<u8>>,
        argv_truncated: bool,
        exe_dev: u64,
        exe_ino: u64,
    },
}

impl RawBody {
    /// True when the event is written as version 2 (FORMAT.md §7.1): a path was given
    /// otherwise than the sensor resolved it, or an exec's stdio is on the network.
    pub fn is_version_2(&self) -> bool {
        match self {
            RawBody::Exec {
                given, stdio_net, ..
            } => given.is_some() || *stdio_net != 0,
            RawBody::Open { given, .. } | RawBody::Unlink { given, .. } => given.is_some(),
            RawBody::Rename {
                old_given,
                new_given,
                ..
            } => old_given.is_some() || new_given.is_some(),
            _ => false,
        }
    }

    /// How many elements version 2 appends to this kind's version 1 body.
    fn version_2_elements(&self) -> u64 {
        match self {
            RawBody::Exec { .. } | RawBody::Rename { .. } => 2,
            RawBody::Open { .. } | RawBody::Unlink { .. } => 1,
            _ => 0,
        }
    }

    /// The event type this body becomes once canonical.
    pub fn event_type(&self) -> EventType {
        match self {
            RawBody::Exec { .. } => EventType::Exec,
            RawBody::Fork { .. } => EventType::Fork,
            RawBody::Exit { .. } => EventType::Exit,
            RawBody::Open { .. } => EventType::Open,
            RawBody::Unlink { .. } => EventType::Unlink,
            RawBody::Rename { .. } => EventType::Rename,
            RawBody::Connect { .. } => EventType::Connect,
            RawBody::Accept { .. } => EventType::Accept,
            RawBody::Bind { .. } => EventType::Bind,
            RawBody::Listen { .. } => EventType::Listen,
            RawBody::Ptrace { .. } => EventType::Ptrace,
            RawBody::SetUid { .. } => EventType::SetUid,
            RawBody::SetGid { .. } => EventType::SetGid,
            RawBody::CapSet { .. } => EventType::CapSet,
            RawBody::MemfdCreate { .. } => EventType::MemfdCreate,
            RawBody::ModuleLoad { .. } => EventType::ModuleLoad,
            RawBody::BpfProgLoad { .. } => EventType::BpfProgLoad,
            RawBody::Present { .. } => EventType::Present,
            RawBody::FdDup { .. } => EventType::FdDup,
        }
    }
}

/// One raw event.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct RawEvent {
    /// Node-local sequence number, assigned by the source in read order.
    pub seq: u64,
    /// Kernel monotonic time of the event, ns.
    pub mono_ns: u64,
    pub task: Task,
    pub body: RawBody,
}

fn addr(e: &mut Encoder, a: &SockAddr) {
    e.array(3);
    match a {
        SockAddr::V4 { addr, port } => e.uint(AF_INET).bytes(addr).uint(*port as u64),
        SockAddr::V6 { addr, port } => e.uint(AF_INET6).bytes(addr).uint(*port as u64),
        SockAddr::Unix { path } => e.uint(AF_UNIX).bytes(path).uint(0),
        SockAddr::Other { family } => e.uint(*family as u64).bytes(&[]).uint(0),
    };
}

impl RawEvent {
    /// Appends the deterministic CBOR encoding to `buf`.
    pub fn encode_into(&self, buf: &mut Vec<u8>) {
        let mut e = Encoder::with_buffer(std::mem::take(buf));
        let t = &self.task;
        e.array(7)
            .uint(RAW_EVENT_TYPE)
            .uint(if self.body.is_version_2() {
                RAW_EVENT_VERSION_GIVEN
            } else {
                RAW_EVENT_VERSION
            })
            .uint(self.seq)
            .uint(self.mono_ns);
        e.array(14)
            .uint(t.pid as u64)
            .uint(t.tid as u64)
            .uint(t.ppid as u64)
            .uint(t.parent_start_ns)
            .uint(t.start_ns)
            .uint(t.uid as u64)
            .uint(t.gid as u64)
            .uint(t.euid as u64)
            .uint(t.egid as u64)
            .uint(t.cgroup_id)
            .uint(t.mnt_ns)
            .uint(t.pid_ns)
            .uint(t.net_ns)
            .bytes(&t.comm);
        e.uint(self.body.event_type().as_u64());
        // Version 2's elements (given paths, an exec's stdio) follow the version 1 body.
        let v2 = self.body.is_version_2();
        let extra = if v2 {
            self.body.version_2_elements()
        } else {
            0
        };
        match &self.body {
            RawBody::Exec {
                filename: exe,
                argv,
                argv_truncated,
                exe_dev,
                exe_ino,
                ..
            }
            | RawBody::Present {
                exe,
                argv,
                argv_truncated,
                exe_dev,
                exe_ino,
            } => {
                e.array(5 + extra).bytes(exe).array(argv.len() as u64);
                for a in argv {
                    e.bytes(a);
                }
                e.bool(*argv_truncated).uint(*exe_dev).uint(*exe_ino);
            }
            RawBody::Fork {
                child_pid,
                child_start_ns,
            } => {
                e.array(2).uint(*child_pid as u64).uint(*child_start_ns);
            }
            RawBody::Exit { code } => {
                e.array(1).int(*code as i64);
            }
            RawBody::Open {
                path,
                flags,
                mode,
                result,
                ..
            } => {
                e.array(4 + extra)
                    .bytes(path)
                    .uint(*flags as u64)
                    .uint(*mode as u64)
                    .int(*result);
            }
            RawBody::Unlink {
                path,
                flags,
                result,
                ..
            } => {
                e.array(3 + extra)
                    .bytes(path)
                    .uint(*flags as u64)
                    .int(*result);
            }
            RawBody::Rename {
                old,
                new,
                flags,
                result,
                ..
            } => {
                e.array(4 + extra)
                    .bytes(old)
                    .bytes(new)
                    .uint(*flags as u64)
                    .int(*result);
            }
            RawBody::Connect { addr: a, result }
            | RawBody::Accept { addr: a, result }
            | RawBody::Bind { addr: a, result } => {
                e.array(2);
                addr(&mut e, a);
                e.int(*result);
            }
            RawBody::Listen { backlog, result } => {
                e.array(2).uint(*backlog as u64).int(*result);
            }
            RawBody::Ptrace {
                request,
                target_pid,
                target_start_ns,
                result,
            } => {
                e.array(4)
                    .uint(*request)
                    .uint(*target_pid as u64)
                    .uint(*target_start_ns)
                    .int(*result);
            }
            RawBody::SetUid { call, ids, result } | RawBody::SetGid { call, ids, result } => {
                e.array(5)
                    .uint(*call as u64)
                    .uint(ids[0] as u64)
                    .uint(ids[1] as u64)
                    .uint(ids[2] as u64)
                    .int(*result);
            }
            RawBody::CapSet {
                effective,
                permitted,
                inheritable,
                result,
            } => {
                e.array(4)
                    .uint(*effective)
                    .uint(*permitted)
                    .uint(*inheritable)
                    .int(*result);
            }
            RawBody::MemfdCreate {
                name,
                flags,
                result,
            } => {
                e.array(3).bytes(name).uint(*flags as u64).int(*result);
            }
            RawBody::ModuleLoad {
                name,
                from_fd,
                result,
            } => {
                e.array(3).bytes(name).bool(*from_fd).int(*result);
            }
            RawBody::BpfProgLoad {
                prog_type,
                name,
                result,
            } => {
                e.array(3).uint(*prog_type as u64).bytes(name).int(*result);
            }
            RawBody::FdDup {
                call,
                oldfd,
                newfd,
                source,
                peer,
                exe,
            } => {
                e.array(6)
                    .uint(*call as u64)
                    .uint(*oldfd as u64)
                    .uint(*newfd as u64)
                    .uint(*source as u64);
                addr(&mut e, peer);
                e.bytes(exe);
            }
        }
        if v2 {
            let mut opt = |g: &Option<Vec<u8>>| match g {
                Some(g) => {
                    e.bytes(g);
                }
                None => {
                    e.null();
                }
            };
            match &self.body {
                RawBody::Exec {
                    given, stdio_net, ..
                } => {
                    opt(given);
                    e.uint(*stdio_net as u64);
                }
                RawBody::Open { given, .. } | RawBody::Unlink { given, .. } => opt(given),
                RawBody::Rename {
                    old_given,
                    new_given,
                    ..
                } => {
                    opt(old_given);
                    opt(new_given);
                }
                _ => {}
            }
        }
        *buf = e.into_bytes();
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut v = Vec::with_capacity(128);
        self.encode_into(&mut v);
        v
    }

    /// Strictly decodes one raw event from the start of `d`, leaving the decoder after it.
    pub fn decode_from(d: &mut Decoder<'_>) -> Result<Self, DecodeError> {
        d.set_record("RawEvent");
        let start = d.position();
        d.array_exact("(record)", 7)?;
        let at = d.position();
        let t = d.uint("type")?;
        if t != RAW_EVENT_TYPE {
            return Err(err_at(
                at,
                "type",
                DecodeErrorKind::UnknownRecordType { record_type: t },
            ));
        }
        let at = d.position();
        let v = d.uint("version")?;
        if v != RAW_EVENT_VERSION && v != RAW_EVENT_VERSION_GIVEN {
            return Err(err_at(
                at,
                "version",
                DecodeErrorKind::UnknownVersion {
                    record_type: t,
                    version: v,
                },
            ));
        }
        let seq = d.uint("seq")?;
        let mono_ns = d.uint("mono_ns")?;
        d.array_exact("task", 14)?;
        let task = Task {
            pid: d.u32("task.pid")?,
            tid: d.u32("task.tid")?,
            ppid: d.u32("task.ppid")?,
            parent_start_ns: d.uint("task.parent_start_ns")?,
            start_ns: d.uint("task.start_ns")?,
            uid: d.u32("task.uid")?,
            gid: d.u32("task.gid")?,
            euid: d.u32("task.euid")?,
            egid: d.u32("task.egid")?,
            cgroup_id: d.uint("task.cgroup_id")?,
            mnt_ns: d.uint("task.mnt_ns")?,
            pid_ns: d.uint("task.pid_ns")?,
            net_ns: d.uint("task.net_ns")?,
            comm: d.bytes("task.comm", 16)?.to_vec(),
        };
        let at = d.position();
        let kind = d.uint("kind")?;
        let kind = EventType::from_u64(kind)
            .ok_or_else(|| err_at(at, "kind", DecodeErrorKind::UnknownValue { value: kind }))?;
        let body = decode_body(d, kind, v == RAW_EVENT_VERSION_GIVEN)?;
        let len = d.position() - start;
        if len > MAX_RAW_EVENT_LEN {
            return Err(err_at(
                start,
                "(record)",
                DecodeErrorKind::Oversize {
                    len,
                    max: MAX_RAW_EVENT_LEN,
                },
            ));
        }
        Ok(RawEvent {
            seq,
            mono_ns,
            task,
            body,
        })
    }
}

fn err_at(offset: usize, field: &'static str, kind: DecodeErrorKind) -> DecodeError {
    DecodeError {
        record: "RawEvent",
        field,
        offset,
        kind,
    }
}

fn path(d: &mut Decoder<'_>, field: &'static str) -> Result<Vec<u8>, DecodeError> {
    Ok(d.bytes(field, MAX_PATH_LEN as u64)?.to_vec())
}

fn name(d: &mut Decoder<'_>, field: &'static str) -> Result<Vec<u8>, DecodeError> {
    Ok(d.bytes(field, MAX_NAME_LEN as u64)?.to_vec())
}

fn decode_addr(d: &mut Decoder<'_>) -> Result<SockAddr, DecodeError> {
    d.array_exact("addr", 3)?;
    let family = d.uint_max("addr.family", u16::MAX as u64)?;
    let bytes_at = d.position();
    let bytes = d.bytes("addr.bytes", 108)?;
    let port_at = d.position();
    let port = d.uint_max("addr.port", u16::MAX as u64)? as u16;
    let wrong = |expected: u64| {
        err_at(
            bytes_at,
            "addr.bytes",
            DecodeErrorKind::WrongLength {
                expected,
                found: bytes.len() as u64,
            },
        )
    };
    let a = match family {
        AF_INET => SockAddr::V4 {
            addr: bytes.try_into().map_err(|_| wrong(4))?,
            port,
        },
        AF_INET6 => SockAddr::V6 {
            addr: bytes.try_into().map_err(|_| wrong(16))?,
            port,
        },
        AF_UNIX => SockAddr::Unix {
            path: bytes.to_vec(),
        },
        // 0 (AF_UNSPEC) too: a connect that dissolves a socket's association names it.
        f => {
            if !bytes.is_empty() {
                return Err(wrong(0));
            }
            SockAddr::Other { family: f as u16 }
        }
    };
    // Only inet addresses carry a port; anything else must say 0.
    if port != 0 && !matches!(a, SockAddr::V4 { .. } | SockAddr::V6 { .. }) {
        return Err(err_at(
            port_at,
            "addr.port",
            DecodeErrorKind::Invalid("only inet addresses have a port"),
        ));
    }
    Ok(a)
}

fn decode_ids(d: &mut Decoder<'_>) -> Result<(IdCall, [u32; 3], i64), DecodeError> {
    d.array_exact("body", 5)?;
    let at = d.position();
    let c = d.uint("call")?;
    let call = IdCall::from_u64(c)
        .ok_or_else(|| err_at(at, "call", DecodeErrorKind::UnknownValue { value: c }))?;
    let ids = [d.u32("ids.0")?, d.u32("ids.1")?, d.u32("ids.2")?];
    Ok((call, ids, d.int("result")?))
}

/// A given path of a version 2 body: bytes that differ from the resolved `path`, or null
/// where `nullable` (a rename's other path was given).
fn given_path(
    d: &mut Decoder<'_>,
    field: &'static str,
    resolved: &[u8],
    nullable: bool,
) -> Result<Option<Vec<u8>>, DecodeError> {
    let at = d.position();
    if nullable && d.peek_null() {
        d.null(field)?;
        return Ok(None);
    }
    let g = path(d, field)?;
    if g == resolved {
        return Err(err_at(
            at,
            field,
            DecodeErrorKind::Invalid(
                "a given path equal to the resolved one is written as version 1 (or null)",
            ),
        ));
    }
    Ok(Some(g))
}

/// The body's element count: version 1's, plus the given paths in version 2 (FORMAT.md §7.1).
fn body_len(
    d: &mut Decoder<'_>,
    kind: EventType,
    v1: u64,
    with_given: bool,
) -> Result<(), DecodeError> {
    let extra = match (with_given, kind) {
        (false, _) => 0,
        (true, EventType::Open | EventType::Unlink) => 1,
        (true, EventType::Exec | EventType::Rename) => 2,
        (true, _) => {
            return Err(d.error(
                "version",
                DecodeErrorKind::Invalid("only exec, open, unlink and rename have version 2"),
            ))
        }
    };
    d.array_exact("body", v1 + extra)
}

fn decode_body(
    d: &mut Decoder<'_>,
    kind: EventType,
    with_given: bool,
) -> Result<RawBody, DecodeError> {
    Ok(match kind {
        EventType::Exec | EventType::Present => {
            body_len(d, kind, 5, with_given)?;
            let exe = path(
                d,
                if kind == EventType::Exec {
                    "filename"
                } else {
                    "exe"
                },
            )?;
            let n = d.array("argv", MAX_ARGV as u64)?;
            let argv = (0..n).map(|_| path(d, "argv")).collect::<Result<_, _>>()?;
            let argv_truncated = d.bool("argv_truncated")?;
            let exe_dev = d.uint("exe_dev")?;
            let exe_ino = d.uint("exe_ino")?;
            if kind == EventType::Exec {
                let (mut given, mut stdio_net) = (None, 0);
                if with_given {
                    let at = d.position();
                    given = given_path(d, "given", &exe, true)?;
                    stdio_net = d.uint_max("stdio_net", 7)? as u8;
                    if given.is_none() && stdio_net == 0 {
                        return Err(err_at(
                            at,
                            "given",
                            DecodeErrorKind::Invalid(
                                "a version 2 exec gives a path or a network stdio",
                            ),
                        ));
                    }
                }
                RawBody::Exec {
                    filename: exe,
                    given,
                    argv,
                    argv_truncated,
                    exe_dev,
                    exe_ino,
                    stdio_net,
                }
            } else {
                RawBody::Present {
                    exe,
                    argv,
                    argv_truncated,
                    exe_dev,
                    exe_ino,
                }
            }
        }
        EventType::Fork => {
            d.array_exact("body", 2)?;
            RawBody::Fork {
                child_pid: d.u32("child_pid")?,
                child_start_ns: d.uint("child_start_ns")?,
            }
        }
        EventType::Exit => {
            d.array_exact("body", 1)?;
            let at = d.position();
            let code = d.int("code")?;
            let code = i32::try_from(code).map_err(|_| {
                err_at(
                    at,
                    "code",
                    DecodeErrorKind::OutOfRange {
                        value: code as i128,
                    },
                )
            })?;
            RawBody::Exit { code }
        }
        EventType::Open => {
            body_len(d, kind, 4, with_given)?;
            let path = path(d, "path")?;
            let flags = d.u32("flags")?;
            let mode = d.u32("mode")?;
            let result = d.int("result")?;
            let given = if with_given {
                given_path(d, "given", &path, false)?
            } else {
                None
            };
            RawBody::Open {
                path,
                given,
                flags,
                mode,
                result,
            }
        }
        EventType::Unlink => {
            body_len(d, kind, 3, with_given)?;
            let path = path(d, "path")?;
            let flags = d.u32("flags")?;
            let result = d.int("result")?;
            let given = if with_given {
                given_path(d, "given", &path, false)?
            } else {
                None
            };
            RawBody::Unlink {
                path,
                given,
                flags,
                result,
            }
        }
        EventType::Rename => {
            body_len(d, kind, 4, with_given)?;
            let old = path(d, "old")?;
            let new = path(d, "new")?;
            let flags = d.u32("flags")?;
            let result = d.int("result")?;
            let (mut old_given, mut new_given) = (None, None);
            if with_given {
                let at = d.position();
                old_given = given_path(d, "old_given", &old, true)?;
                new_given = given_path(d, "new_given", &new, true)?;
                if old_given.is_none() && new_given.is_none() {
                    return Err(err_at(
                        at,
                        "old_given",
                        DecodeErrorKind::Invalid("a version 2 rename gives at least one path"),
                    ));
                }
            }
            RawBody::Rename {
                old,
                new,
                old_given,
                new_given,
                flags,
                result,
            }
        }
        EventType::Connect | EventType::Accept | EventType::Bind => {
            d.array_exact("body", 2)?;
            let addr = decode_addr(d)?;
            let result = d.int("result")?;
            match kind {
                EventType::Connect => RawBody::Connect { addr, result },
                EventType::Accept => RawBody::Accept { addr, result },
                _ => RawBody::Bind { addr, result },
            }
        }
        EventType::Listen => {
            d.array_exact("body", 2)?;
            RawBody::Listen {
                backlog: d.u32("backlog")?,
                result: d.int("result")?,
            }
        }
        EventType::Ptrace => {
            d.array_exact("body", 4)?;
            RawBody::Ptrace {
                request: d.uint("request")?,
                target_pid: d.u32("target_pid")?,
                target_start_ns: d.uint("target_start_ns")?,
                result: d.int("result")?,
            }
        }
        EventType::SetUid => {
            let (call, ids, result) = decode_ids(d)?;
            RawBody::SetUid { call, ids, result }
        }
        EventType::SetGid => {
            let (call, ids, result) = decode_ids(d)?;
            RawBody::SetGid { call, ids, result }
        }
        EventType::CapSet => {
            d.array_exact("body", 4)?;
            RawBody::CapSet {
                effective: d.uint("effective")?,
                permitted: d.uint("permitted")?,
                inheritable: d.uint("inheritable")?,
                result: d.int("result")?,
            }
        }
        EventType::MemfdCreate => {
            d.array_exact("body", 3)?;
            RawBody::MemfdCreate {
                name: name(d, "name")?,
                flags: d.u32("flags")?,
                result: d.int("result")?,
            }
        }
        EventType::ModuleLoad => {
            d.array_exact("body", 3)?;
            RawBody::ModuleLoad {
                name: path(d, "name")?,
                from_fd: d.bool("from_fd")?,
                result: d.int("result")?,
            }
        }
        EventType::BpfProgLoad => {
            d.array_exact("body", 3)?;
            RawBody::BpfProgLoad {
                prog_type: d.u32("prog_type")?,
                name: name(d, "name")?,
                result: d.int("result")?,
            }
        }
        EventType::FdDup => {
            d.array_exact("body", 6)?;
            let at = d.position();
            let c = d.uint("call")?;
            let call = DupCall::from_u64(c)
                .ok_or_else(|| err_at(at, "call", DecodeErrorKind::UnknownValue { value: c }))?;
            let oldfd = d.u32("oldfd")?;
            let newfd = d.uint_max("newfd", 2)? as u8;
            let at = d.position();
            let v = d.uint("source")?;
            let source = DupSource::from_u64(v)
                .ok_or_else(|| err_at(at, "source", DecodeErrorKind::UnknownValue { value: v }))?;
            let at = d.position();
            let peer = decode_addr(d)?;
            if source != DupSource::Socket && peer != (SockAddr::Other { family: 0 }) {
                return Err(err_at(
                    at,
                    "peer",
                    DecodeErrorKind::Invalid("only a socket source has a peer"),
                ));
            }
            RawBody::FdDup {
                call,
                oldfd,
                newfd,
                source,
                peer,
                exe: path(d, "exe")?,
            }
        }
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use proptest::prelude::*;

    fn bytes(max: usize) -> impl Strategy<Value = Vec<u8>> {
        proptest::collection::vec(any::<u8>(), 0..max)
    }

    fn sockaddr() -> impl Strategy<Value = SockAddr> {
        prop_oneof![
            (any::<[u8; 4]>(), any::<u16>()).prop_map(|(addr, port)| SockAddr::V4 { addr, port }),
            (any::<[u8; 16]>(), any::<u16>()).prop_map(|(addr, port)| SockAddr::V6 { addr, port }),
            bytes(108).prop_map(|path| SockAddr::Unix { path }),
            (0u16..=u16::MAX)
                .prop_filter("not inet, inet6 or unix", |f| ![1, 2, 10].contains(f))
                .prop_map(|family| SockAddr::Other { family }),
        ]
    }

    fn call() -> impl Strategy<Value = IdCall> {
        prop_oneof![
            Just(IdCall::Set),
            Just(IdCall::SetRe),
            Just(IdCall::SetRes),
            Just(IdCall::SetFs)
        ]
    }

    /// A given path for `resolved`: none, or bytes that differ from it.
    fn given_for(resolved: &[u8], g: Option<Vec<u8>>) -> Option<Vec<u8>> {
        g.filter(|g| g != resolved)
    }

    pub fn body() -> impl Strategy<Value = RawBody> {
        prop_oneof![
            (
                bytes(200),
                proptest::option::of(bytes(60)),
                proptest::collection::vec(bytes(40), 0..8),
                any::<bool>(),
                any::<u64>(),
                (any::<u64>(), 0u8..8)
            )
                .prop_map(
                    |(filename, given, argv, argv_truncated, exe_dev, (exe_ino, stdio_net))| {
                        RawBody::Exec {
                            given: given_for(&filename, given),
                            filename,
                            argv,
                            argv_truncated,
                            exe_dev,
                            exe_ino,
                            stdio_net,
                        }
                    }
                ),
            (any::<u32>(), any::<u64>()).prop_map(|(child_pid, child_start_ns)| RawBody::Fork {
                child_pid,
                child_start_ns
            }),
            any::<i32>().prop_map(|code| RawBody::Exit { code }),
            (
                bytes(200),
                proptest::option::of(bytes(60)),
                any::<u32>(),
                any::<u32>(),
                any::<i64>()
            )
                .prop_map(|(path, given, flags, mode, result)| RawBody::Open {
                    given: given_for(&path, given),
                    path,
                    flags,
                    mode,
                    result,
                }),
            (
                bytes(200),
                proptest::option::of(bytes(60)),
                any::<u32>(),
                any::<i64>()
            )
                .prop_map(|(path, given, flags, result)| RawBody::Unlink {
                    given: given_for(&path, given),
                    path,
                    flags,
                    result,
                }),
            (
                bytes(100),
                bytes(100),
                proptest::option::of(bytes(60)),
                proptest::option::of(bytes(60)),
                any::<u32>(),
                any::<i64>()
            )
                .prop_map(|(old, new, og, ng, flags, result)| RawBody::Rename {
                    old_given: given_for(&old, og),
                    new_given: given_for(&new, ng),
                    old,
                    new,
                    flags,
                    result,
                }),
            (sockaddr(), any::<i64>()).prop_map(|(addr, result)| RawBody::Connect { addr, result }),
            (sockaddr(), any::<i64>()).prop_map(|(addr, result)| RawBody::Accept { addr, result }),
            (sockaddr(), any::<i64>()).prop_map(|(addr, result)| RawBody::Bind { addr, result }),
            (any::<u32>(), any::<i64>())
                .prop_map(|(backlog, result)| RawBody::Listen { backlog, result }),
            (any::<u64>(), any::<u32>(), any::<u64>(), any::<i64>()).prop_map(
                |(request, target_pid, target_start_ns, result)| RawBody::Ptrace {
                    request,
                    target_pid,
                    target_start_ns,
                    result,
                }
            ),
            (call(), any::<[u32; 3]>(), any::<i64>())
                .prop_map(|(call, ids, result)| RawBody::SetUid { call, ids, result }),
            (call(), any::<[u32; 3]>(), any::<i64>())
                .prop_map(|(call, ids, result)| RawBody::SetGid { call, ids, result }),
            (any::<u64>(), any::<u64>(), any::<u64>(), any::<i64>()).prop_map(
                |(effective, permitted, inheritable, result)| RawBody::CapSet {
                    effective,
                    permitted,
                    inheritable,
                    result
                }
            ),
            (bytes(64), any::<u32>(), any::<i64>()).prop_map(|(name, flags, result)| {
                RawBody::MemfdCreate {
                    name,
                    flags,
                    result,
                }
            }),
            (bytes(64), any::<bool>(), any::<i64>()).prop_map(|(name, from_fd, result)| {
                RawBody::ModuleLoad {
                    name,
                    from_fd,
                    result,
                }
            }),
            (any::<u32>(), bytes(16), any::<i64>()).prop_map(|(prog_type, name, result)| {
                RawBody::BpfProgLoad {
                    prog_type,
                    name,
                    result,
                }
            }),
            (
                1u64..=5,
                any::<u32>(),
                0u8..=2,
                1u64..=5,
                sockaddr(),
                bytes(100)
            )
                .prop_map(|(call, oldfd, newfd, source, peer, exe)| {
                    let source = DupSource::from_u64(source).unwrap();
                    RawBody::FdDup {
                        call: DupCall::from_u64(call).unwrap(),
                        oldfd,
                        newfd,
                        source,
                        // Only a socket has a peer.
                        peer: match source {
                            DupSource::Socket => peer,
                            _ => SockAddr::Other { family: 0 },
                        },
                        exe,
                    }
                }),
            (
                bytes(200),
                proptest::collection::vec(bytes(40), 0..8),
                any::<bool>(),
                any::<u64>(),
                any::<u64>()
            )
                .prop_map(|(exe, argv, argv_truncated, exe_dev, exe_ino)| {
                    RawBody::Present {
                        exe,
                        argv,
                        argv_truncated,
                        exe_dev,
                        exe_ino,
                    }
                }),
        ]
    }

    pub fn task() -> impl Strategy<Value = Task> {
        (any::<[u32; 8]>(), any::<[u64; 5]>(), bytes(16)).prop_map(|(a, b, comm)| Task {
            pid: a[0],
            tid: a[1],
            ppid: a[2],
            parent_start_ns: b[4].rotate_left(7),
            uid: a[3],
            gid: a[4],
            euid: a[5],
            egid: a[6],
            start_ns: b[0],
            cgroup_id: b[1],
            mnt_ns: b[2],
            pid_ns: b[3],
            net_ns: b[4] ^ a[7] as u64,
            comm,
        })
    }

    pub fn event() -> impl Strategy<Value = RawEvent> {
        (any::<u64>(), any::<u64>(), task(), body()).prop_map(|(seq, mono_ns, task, body)| {
            RawEvent {
                seq,
                mono_ns,
                task,
                body,
            }
        })
    }

    fn decode_all(b: &[u8]) -> Result<RawEvent, DecodeError> {
        let mut d = Decoder::new(b, "RawEvent");
        let e = RawEvent::decode_from(&mut d)?;
        d.finish()?;
        Ok(e)
    }

    proptest! {
        #[test]
        fn raw_events_round_trip(e in event()) {
            let b = e.encode();
            prop_assert_eq!(decode_all(&b).unwrap(), e);
        }

        #[test]
        fn decoding_accepts_only_canonical_bytes(e in event(), pos: usize, bit in 0u8..8) {
            let mut b = e.encode();
            let i = pos % b.len();
            b[i] ^= 1 << bit;
            // Either rejected, or a different event that encodes to exactly these bytes.
            if let Ok(other) = decode_all(&b) {
                prop_assert_eq!(other.encode(), b);
            }
        }

        #[test]
        fn arbitrary_bytes_never_panic(b in proptest::collection::vec(any::<u8>(), 0..300)) {
            let _ = decode_all(&b);
        }
    }

    fn present(exe: Vec<u8>, argv: Vec<Vec<u8>>) -> RawEvent {
        RawEvent {
            seq: 3,
            mono_ns: 9_000,
            task: Task {
                pid: 812,
                tid: 812,
                ppid: 1,
                start_ns: 4_000,
                comm: b"sshd".to_vec(),
                ..Task::default()
            },
            body: RawBody::Present {
                exe,
                argv,
                argv_truncated: true,
                exe_dev: 0x803,
                exe_ino: 77,
            },
        }
    }

    #[test]
    fn present_is_kind_19_with_exec_layout_and_bounds() {
        let e = present(
            b"/usr/sbin/sshd".to_vec(),
            vec![b"sshd: /usr/sbin/sshd".to_vec()],
        );
        let b = e.encode();
        assert_eq!(e.body.event_type(), EventType::Present);
        assert_eq!(decode_all(&b).unwrap(), e);
        // The kind sits right before the body: [.., 19, [exe, [argv], true, 0x803, 77]].
        let mut body = Encoder::new();
        body.uint(19)
            .array(5)
            .bytes(b"/usr/sbin/sshd")
            .array(1)
            .bytes(b"sshd: /usr/sbin/sshd")
            .bool(true)
            .uint(0x803)
            .uint(77);
        assert!(b.ends_with(body.as_bytes()));
        // Same layout as exec, but another kind: never decoded as an exec.
        assert!(matches!(
            decode_all(&b).unwrap().body,
            RawBody::Present { .. }
        ));
        for cut in 0..b.len() {
            assert!(decode_all(&b[..cut]).is_err(), "cut at {cut}");
        }
        // Bounds: 64 argv elements, 4096-byte paths and elements.
        let ok = present(vec![b'/'; MAX_PATH_LEN], vec![vec![b'a'; MAX_PATH_LEN]; 2]);
        assert!(decode_all(&ok.encode()).is_ok());
        let long_exe = present(vec![b'/'; MAX_PATH_LEN + 1], vec![]);
        let err = decode_all(&long_exe.encode()).unwrap_err();
        assert_eq!(err.field, "exe");
        let many = present(b"/x".to_vec(), vec![b"a".to_vec(); MAX_ARGV + 1]);
        let err = decode_all(&many.encode()).unwrap_err();
        assert_eq!(err.field, "argv");
        let long_arg = present(b"/x".to_vec(), vec![vec![b'a'; MAX_PATH_LEN + 1]]);
        let err = decode_all(&long_arg.encode()).unwrap_err();
        assert_eq!(err.field, "argv");
        // A body of four elements is not a present body.
        let mut short = b.clone();
        let at = b.len() - body.as_bytes().len() + 1;
        assert_eq!(short[at], 0x85);
        short[at] = 0x84;
        assert!(decode_all(&short).is_err());
    }

    #[test]
    fn inet_address_lengths_and_ports_are_checked() {
        let mut e = Encoder::new();
        e.array(3).uint(AF_INET).bytes(&[1, 2, 3]).uint(80);
        let b = e.into_bytes();
        let err = decode_addr(&mut Decoder::new(&b, "RawEvent")).unwrap_err();
        assert_eq!(
            err.kind,
            DecodeErrorKind::WrongLength {
                expected: 4,
                found: 3
            }
        );
        let mut e = Encoder::new();
        e.array(3).uint(AF_UNIX).bytes(b"/run/x").uint(80);
        let b = e.into_bytes();
        assert!(matches!(
            decode_addr(&mut Decoder::new(&b, "RawEvent"))
                .unwrap_err()
                .kind,
            DecodeErrorKind::Invalid(_)
        ));
    }
}
