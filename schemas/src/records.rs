//! The record types of DESIGN §3, each a deterministic CBOR array whose element 0
//! is the record type and element 1 its version (FORMAT.md §3 is normative).
//!
//! Decoding is strict: the byte length is bounded per type, every field is checked
//! for type, range and defined values, lists that have a canonical order must be
//! strictly ascending, and the decoded value must re-encode to the same bytes.

use crate::cbor::{DecodeError, DecodeErrorKind, Decoder, Encoder};
use crate::hash::{Domain, Hash32, Id128};

/// Largest encoded size of an event-level record (dictionary entry, atom, actor, edge, cone).
pub const MAX_EVENT_RECORD_LEN: usize = 4096;
/// Largest encoded size of any other record.
pub const MAX_RECORD_LEN: usize = 65536;
/// Largest SignedRecord: its body may be a case manifest (FORMAT.md §3.13).
pub const MAX_SIGNED_LEN: usize = crate::case::MAX_CASE_LEN + 128;
/// Longest dictionary value stored as is; longer values are stored as their BLAKE3 hash.
pub const MAX_DICT_VALUE_LEN: usize = 3968;
/// Longest node name (it appears in checkpoint origins `ritma/<node>`).
pub const MAX_NODE_NAME_LEN: usize = 64;

/// True if `node` is a valid node name: 1–64 of `A-Z a-z 0-9 . _ -`, not starting
/// with `.` (node names also name directories under `nodes/`).
pub fn is_valid_node_name(node: &str) -> bool {
    !node.is_empty()
        && node.len() <= MAX_NODE_NAME_LEN
        && !node.starts_with('.')
        && node
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// A record type: its number, version, and field layout.
pub trait Record: Sized {
    /// Element 0 of the array.
    const TYPE: u64;
    /// Element 1 of the array.
    const VERSION: u64;
    /// The name used in errors and in FORMAT.md.
    const NAME: &'static str;
    /// Number of array elements, type and version included.
    const FIELDS: u64;
    /// Largest allowed encoded size.
    const MAX_LEN: usize;

    /// Writes elements 2.. (the array head, type and version are written by `encode_into`).
    fn encode_fields(&self, e: &mut Encoder);
    /// Reads elements 2.. and checks the record's own rules.
    fn decode_fields(d: &mut Decoder<'_>) -> Result<Self, DecodeError>;

    /// Appends the encoding to `buf`.
    fn encode_into(&self, buf: &mut Vec<u8>) {
        let mut e = Encoder::with_buffer(std::mem::take(buf));
        e.array(Self::FIELDS).uint(Self::TYPE).uint(Self::VERSION);
        self.encode_fields(&mut e);
        *buf = e.into_bytes();
    }

    fn encode(&self) -> Vec<u8> {
        let mut buf = Vec::with_capacity(96);
        self.encode_into(&mut buf);
        buf
    }

    /// Strict decode of exactly one record occupying all of `bytes`.
    fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        let mut d = Decoder::new(bytes, Self::NAME);
        if bytes.len() > Self::MAX_LEN {
            let kind = DecodeErrorKind::Oversize {
                len: bytes.len(),
                max: Self::MAX_LEN,
            };
            return Err(d.error("(record)", kind));
        }
        let len = d.array("(record)", 64)?;
        check_header(&mut d, Self::TYPE, Self::VERSION)?;
        if len != Self::FIELDS {
            let kind = DecodeErrorKind::WrongLength {
                expected: Self::FIELDS,
                found: len,
            };
            return Err(DecodeError {
                record: Self::NAME,
                field: "(record)",
                offset: 0,
                kind,
            });
        }
        let value = Self::decode_fields(&mut d)?;
        d.finish()?;
        let mut again = Vec::with_capacity(bytes.len());
        value.encode_into(&mut again);
        if again != bytes {
            return Err(DecodeError {
                record: Self::NAME,
                field: "(record)",
                offset: 0,
                kind: DecodeErrorKind::NotCanonical,
            });
        }
        Ok(value)
    }
}

fn check_header(d: &mut Decoder<'_>, want_type: u64, want_version: u64) -> Result<(), DecodeError> {
    let at = d.position();
    let t = d.uint("type")?;
    if t != want_type {
        let kind = match record_name(t) {
            Some(_) => DecodeErrorKind::WrongRecordType {
                expected: want_type,
                found: t,
            },
            None => DecodeErrorKind::UnknownRecordType { record_type: t },
        };
        return Err(DecodeError {
            record: record_name(want_type).unwrap_or("record"),
            field: "type",
            offset: at,
            kind,
        });
    }
    let at = d.position();
    let v = d.uint("version")?;
    if v != want_version {
        let kind = DecodeErrorKind::UnknownVersion {
            record_type: t,
            version: v,
        };
        return Err(DecodeError {
            record: record_name(t).unwrap_or("record"),
            field: "version",
            offset: at,
            kind,
        });
    }
    Ok(())
}

/// Defines a `u8`-valued enumeration whose undefined values are decode errors.
macro_rules! wire_enum {
    ($(#[$m:meta])* $name:ident { $($(#[$vm:meta])* $variant:ident = $val:expr),+ $(,)? }) => {
        $(#[$m])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize)]
        #[repr(u8)]
        pub enum $name { $($(#[$vm])* $variant = $val),+ }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            pub fn from_u64(v: u64) -> Option<Self> {
                match v { $($val => Some($name::$variant),)+ _ => None }
            }

            pub fn as_u64(self) -> u64 { self as u8 as u64 }

            pub(crate) fn decode(d: &mut Decoder<'_>, field: &'static str) -> Result<Self, DecodeError> {
                let at = d.position();
                let v = d.uint(field)?;
                Self::from_u64(v).ok_or_else(|| d.error_at(field, at, DecodeErrorKind::UnknownValue { value: v }))
            }
        }
    };
}
pub(crate) use wire_enum;

wire_enum!(
    /// What a dictionary value is.
    DictKind {
        Path = 1,
        // 2 is reserved (an exe kind, merged into path): undefined, rejected.
        Comm = 3,
        Argv = 4,
        /// A network endpoint: family, address, port (FORMAT.md §3.1).
        Flow = 5,
        Container = 6,
        Service = 7,
        Env = 8,
        Cgroup = 9,
        /// A short name: memfd name, kernel module, BPF program, trigger.
        Name = 10,
    }
);

wire_enum!(
    /// What an event atom records.
    EventType {
        Exec = 1,
        Fork = 2,
        Exit = 3,
        Open = 4,
        Unlink = 5,
        Rename = 6,
        Connect = 7,
        Accept = 8,
        Bind = 9,
        Listen = 10,
        Ptrace = 11,
        SetUid = 12,
        SetGid = 13,
        CapSet = 14,
        MemfdCreate = 15,
        ModuleLoad = 16,
        BpfProgLoad = 17,
        // 18 is reserved (a trigger, sealed as a ConeInstance, FORMAT.md §10): undefined.
        /// A process already running when capture started (the sensor's start-up
        /// snapshot); the object is its executable's path. Not an exec.
        Present = 19,
        /// An fd duplicated onto the process's standard input, output or error (dup,
        /// dup2, dup3, fcntl F_DUPFD*); the object is what the fd now is.
        FdDup = 20,
    }
);

impl EventType {
    /// The event type's name (FORMAT.md §3).
    pub fn name(self) -> &'static str {
        match self {
            EventType::Exec => "exec",
            EventType::Fork => "fork",
            EventType::Exit => "exit",
            EventType::Open => "open",
            EventType::Unlink => "unlink",
            EventType::Rename => "rename",
            EventType::Connect => "connect",
            EventType::Accept => "accept",
            EventType::Bind => "bind",
            EventType::Listen => "listen",
            EventType::Ptrace => "ptrace",
            EventType::SetUid => "setuid",
            EventType::SetGid => "setgid",
            EventType::CapSet => "capset",
            EventType::MemfdCreate => "memfd_create",
            EventType::ModuleLoad => "module_load",
            EventType::BpfProgLoad => "bpf_prog_load",
            EventType::Present => "present",
            EventType::FdDup => "fd_dup",
        }
    }
}

wire_enum!(
    /// The kind of a graph edge.
    EdgeKind {
        ExecLineage = 1,
        ProcToFile = 2,
        ProcToFlow = 3,
        FileToFile = 4,
        ProcToProc = 5,
        ContainerToProc = 6,
    }
);

wire_enum!(
    /// How much a window captured (DESIGN §5).
    CaptureMode {
        Thin = 1,
        Thick = 2,
        Full = 3,
    }
);

wire_enum!(
    /// Why events were lost; every loss is counted under one reason and sealed.
    LossReason {
        /// The kernel could not reserve ring-buffer space.
        KernelRingbufFull = 1,
        /// A bounded queue in user space was full and shed records.
        QueueShed = 2,
        /// A probe was detached or silent; events in the gap were not seen.
        ProbeDetached = 3,
        /// A raw event could not be decoded.
        DecodeError = 4,
        /// A trace segment was corrupt or torn.
        TraceCorrupt = 5,
        /// Produced by the kernel side before a capture process was killed and never written
        /// (in the ring buffer, read but not yet written, or drops not yet written); counted
        /// by the next run from the sensor's counters pinned in the BPF filesystem.
        InFlightAtStop = 6,
    }
);

impl EdgeKind {
    /// The edge kind's name (FORMAT.md §3, the enum table).
    pub fn name(self) -> &'static str {
        match self {
            EdgeKind::ExecLineage => "exec_lineage",
            EdgeKind::ProcToFile => "proc_to_file",
            EdgeKind::ProcToFlow => "proc_to_flow",
            EdgeKind::FileToFile => "file_to_file",
            EdgeKind::ProcToProc => "proc_to_proc",
            EdgeKind::ContainerToProc => "container_to_proc",
        }
    }
}

impl CaptureMode {
    /// The capture mode's name (FORMAT.md §3, the enum table).
    pub fn name(self) -> &'static str {
        match self {
            CaptureMode::Thin => "thin",
            CaptureMode::Thick => "thick",
            CaptureMode::Full => "full",
        }
    }
}

impl LossReason {
    /// The reason's name, as reports and metrics label it.
    pub fn name(self) -> &'static str {
        match self {
            LossReason::KernelRingbufFull => "kernel_ringbuf_full",
            LossReason::QueueShed => "queue_shed",
            LossReason::ProbeDetached => "probe_detached",
            LossReason::DecodeError => "decode_error",
            LossReason::TraceCorrupt => "trace_corrupt",
            LossReason::InFlightAtStop => "in_flight_at_stop",
        }
    }
}

wire_enum!(
    /// A change to the set of signing keys of a node.
    KeyEventKind {
        Add = 1,
        Rotate = 2,
        Revoke = 3,
    }
);

wire_enum!(
    /// What a health record reports.
    HealthKind {
        ProbeDetached = 1,
        ProbeReattached = 2,
        RingbufDrops = 3,
        ClockResync = 4,
        /// The node's previous run ended at `t_wall_ns` (its newest time).
        CaptureStopped = 5,
        /// A new run of the node started capturing at `t_wall_ns`.
        CaptureStarted = 6,
    }
);

impl HealthKind {
    /// The health record kind's name (FORMAT.md §3, the enum table).
    pub fn name(self) -> &'static str {
        match self {
            HealthKind::ProbeDetached => "probe_detached",
            HealthKind::ProbeReattached => "probe_reattached",
            HealthKind::RingbufDrops => "ringbuf_drops",
            HealthKind::ClockResync => "clock_resync",
            HealthKind::CaptureStopped => "capture_stopped",
            HealthKind::CaptureStarted => "capture_started",
        }
    }
}

/// Flag bits of an event atom's `flags` field.
pub mod atom_flags {
    pub const FAILED: u32 = 1 << 0;
    pub const READ: u32 = 1 << 1;
    pub const WRITE: u32 = 1 << 2;
    pub const CREATE: u32 = 1 << 3;
    pub const TRUNCATE: u32 = 1 << 4;
    pub const EXEC: u32 = 1 << 5;
    /// The event arrived after its window closed and joined a later one.
    pub const LATE: u32 = 1 << 6;
    /// An argument was longer than its bound and is represented by `arg_hash` only.
    pub const ARG_HASHED: u32 = 1 << 7;
    /// An exec whose new program has fd 0, 1 or 2 on an IPv4/IPv6 socket, or an fd_dup of
    /// such a socket (exec and fd_dup only).
    pub const STDIO_NET: u32 = 1 << 8;
    pub const ALL: u32 = (1 << 9) - 1;

    /// FORMAT.md §3.2 names of bits 0–8, lowest first.
    pub const NAMES: [&str; 9] = [
        "failed",
        "read",
        "write",
        "create",
        "truncate",
        "exec",
        "late",
        "arg_hashed",
        "stdio_net",
    ];

    /// The names of the bits set in `flags`, lowest first.
    pub fn names(flags: u32) -> Vec<&'static str> {
        (0..NAMES.len())
            .filter(|bit| flags & (1 << bit) != 0)
            .map(|bit| NAMES[bit])
            .collect()
    }
}

/// Flag bits of an edge (R/W/X/D/C/Rn/SEND/RECV).
pub mod edge_flags {
    pub const READ: u8 = 1 << 0;
    pub const WRITE: u8 = 1 << 1;
    pub const EXEC: u8 = 1 << 2;
    pub const DELETE: u8 = 1 << 3;
    pub const CREATE: u8 = 1 << 4;
    pub const RENAME: u8 = 1 << 5;
    pub const SEND: u8 = 1 << 6;
    pub const RECV: u8 = 1 << 7;
}

fn flags(d: &mut Decoder<'_>, field: &'static str, all: u64) -> Result<u64, DecodeError> {
    let at = d.position();
    let v = d.uint(field)?;
    if v & !all != 0 {
        return Err(d.error_at(field, at, DecodeErrorKind::UnknownFlags { bits: v & !all }));
    }
    Ok(v)
}

pub(crate) fn node_name(d: &mut Decoder<'_>) -> Result<String, DecodeError> {
    let at = d.position();
    let s = d.text("node", MAX_NODE_NAME_LEN as u64)?;
    if !is_valid_node_name(s) {
        let why = "node name must be 1-64 of A-Z a-z 0-9 . _ - and not start with .";
        return Err(d.error_at("node", at, DecodeErrorKind::Invalid(why)));
    }
    Ok(s.to_owned())
}

/// One hour in ns: the unit of sealing, indexing and retention.
pub const HOUR_NS: u64 = 3_600_000_000_000;

/// True if windows of `window_len_ns` tile an hour exactly (DESIGN §2).
pub fn window_len_divides_hour(window_len_ns: u64) -> bool {
    window_len_ns != 0 && HOUR_NS.is_multiple_of(window_len_ns)
}

/// Windows of `window_len_ns` in an hour (the length divides the hour).
pub fn windows_per_hour(window_len_ns: u64) -> u64 {
    HOUR_NS / window_len_ns
}

pub(crate) fn invalid(d: &Decoder<'_>, field: &'static str, why: &'static str) -> DecodeError {
    d.error(field, DecodeErrorKind::Invalid(why))
}

thread_local! {
    /// The message an id is hashed from, built in one reused buffer.
    static ID_MESSAGE: std::cell::Cell<Vec<u8>> = const { std::cell::Cell::new(Vec::new()) };
}

/// The id in `domain` of the CBOR message `write` encodes (FORMAT.md §2.2).
fn id_of_message(domain: Domain, write: impl FnOnce(&mut Encoder)) -> Id128 {
    ID_MESSAGE.with(|cell| {
        let mut buf = cell.take();
        buf.clear();
        let mut e = Encoder::with_buffer(buf);
        write(&mut e);
        let id = domain.id(e.as_bytes());
        let buf = e.into_bytes();
        // A huge argv is rare: do not keep its buffer.
        if buf.capacity() <= MAX_EVENT_RECORD_LEN {
            cell.set(buf);
        }
        id
    })
}

/// A dictionary entry: a content-derived id for a byte string (path, exe, comm …).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct DictEntry {
    pub id: Id128,
    pub kind: DictKind,
    /// `value` is the BLAKE3 hash of a value longer than [`MAX_DICT_VALUE_LEN`].
    pub hashed: bool,
    pub value: Vec<u8>,
}

impl DictEntry {
    /// The id of `value` of `kind`: keyed BLAKE3 (domain Dict) of `[kind, value]`, first 16 bytes.
    pub fn id_of(kind: DictKind, value: &[u8]) -> Id128 {
        id_of_message(Domain::Dict, |e| {
            e.array(2).uint(kind.as_u64()).bytes(value);
        })
    }

    /// The entry for `value`, hashing it if it is too long to store.
    pub fn new(kind: DictKind, value: &[u8]) -> Self {
        Self::from_vec(kind, value.to_vec())
    }

    /// [`DictEntry::new`] of a value the caller owns: it becomes the entry's value
    /// without a copy (or is replaced by its hash if too long).
    pub fn from_vec(kind: DictKind, value: Vec<u8>) -> Self {
        let id = Self::id_of(kind, &value);
        if value.len() > MAX_DICT_VALUE_LEN {
            DictEntry {
                id,
                kind,
                hashed: true,
                value: crate::hash::blake3(&value).to_vec(),
            }
        } else {
            DictEntry {
                id,
                kind,
                hashed: false,
                value,
            }
        }
    }
}

impl Record for DictEntry {
    const TYPE: u64 = 1;
    const VERSION: u64 = 1;
    const NAME: &'static str = "DictEntry";
    const FIELDS: u64 = 6;
    const MAX_LEN: usize = MAX_EVENT_RECORD_LEN;

    fn encode_fields(&self, e: &mut Encoder) {
        e.bytes(&self.id)
            .uint(self.kind.as_u64())
            .bool(self.hashed)
            .bytes(&self.value);
    }

    fn decode_fields(d: &mut Decoder<'_>) -> Result<Self, DecodeError> {
        let id = d.fixed("id")?;
        let kind = DictKind::decode(d, "kind")?;
        let hashed = d.bool("hashed")?;
        let value = d.bytes("value", MAX_DICT_VALUE_LEN as u64)?.to_vec();
        if hashed && value.len() != 32 {
            return Err(invalid(d, "value", "a hashed value must be 32 bytes"));
        }
        Ok(DictEntry {
            id,
            kind,
            hashed,
            value,
        })
    }
}

/// One canonical event (the seed's CanonicalEventAtom).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct EventAtom {
    /// Node-local sequence number, assigned by the source in read order.
    pub seq: u64,
    /// Event time minus the window's start, in ns (negative for a late event).
    pub t_ns: i64,
    pub event_type: EventType,
    pub actor: Id128,
    /// Dictionary id of the object (path, flow, target actor …), per event type.
    pub object: Id128,
    /// [`atom_flags`] bits.
    pub flags: u32,
    /// BLAKE3 of the event's arguments (argv, flags …) when captured.
    pub arg_hash: Option<Hash32>,
    /// CAS address of captured content (Full mode).
    pub payload_ref: Option<Hash32>,
    /// The paths as the process gave them, where they differ from the canonical ones
    /// (dictionary ids, FORMAT.md §3.2): empty (version 1) when none differs; else one
    /// element (the object's) for exec, open and unlink, two (new, old) for rename.
    #[serde(default)]
    pub given: Vec<Option<Id128>>,
}

/// The version 2 EventAtom: version 1 and the given paths.
const EVENT_ATOM_V2: u64 = 2;

impl EventAtom {
    /// How many given paths an event of this type carries in a version 2 atom (0: none).
    pub fn given_slots(event_type: EventType) -> usize {
        match event_type {
            EventType::Exec | EventType::Open | EventType::Unlink => 1,
            EventType::Rename => 2,
            _ => 0,
        }
    }

    /// The object's path as the process gave it, when it differs from the canonical one.
    pub fn given_object(&self) -> Option<Id128> {
        self.given.first().copied().flatten()
    }
}

impl Record for EventAtom {
    const TYPE: u64 = 2;
    const VERSION: u64 = 1;
    const NAME: &'static str = "EventAtom";
    const FIELDS: u64 = 10;
    const MAX_LEN: usize = MAX_EVENT_RECORD_LEN;

    /// Version 1 when no path was given otherwise than canonical, else version 2 with
    /// one more element: a writer has exactly one encoding for each atom.
    fn encode_into(&self, buf: &mut Vec<u8>) {
        let mut e = Encoder::with_buffer(std::mem::take(buf));
        if self.given.is_empty() {
            e.array(Self::FIELDS).uint(Self::TYPE).uint(Self::VERSION);
            self.encode_fields(&mut e);
        } else {
            e.array(Self::FIELDS + 1)
                .uint(Self::TYPE)
                .uint(EVENT_ATOM_V2);
            self.encode_fields(&mut e);
            e.array(self.given.len() as u64);
            for g in &self.given {
                e.opt_bytes(g.as_ref().map(|g| &g[..]));
            }
        }
        *buf = e.into_bytes();
    }

    fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        let mut d = Decoder::new(bytes, Self::NAME);
        if bytes.len() > Self::MAX_LEN {
            let kind = DecodeErrorKind::Oversize {
                len: bytes.len(),
                max: Self::MAX_LEN,
            };
            return Err(d.error("(record)", kind));
        }
        let len = d.array("(record)", 64)?;
        let at = d.position();
        let t = d.uint("type")?;
        let v = d.uint("version")?;
        if t != Self::TYPE || (v != Self::VERSION && v != EVENT_ATOM_V2) {
            // The common check names the wrong type or version precisely.
            let mut d = Decoder::new(bytes, Self::NAME);
            d.array("(record)", 64)?;
            check_header(&mut d, Self::TYPE, Self::VERSION)?;
            return Err(d.error_at("version", at, DecodeErrorKind::Invalid("unknown version")));
        }
        let want = if v == Self::VERSION {
            Self::FIELDS
        } else {
            Self::FIELDS + 1
        };
        if len != want {
            let kind = DecodeErrorKind::WrongLength {
                expected: want,
                found: len,
            };
            return Err(DecodeError {
                record: Self::NAME,
                field: "(record)",
                offset: 0,
                kind,
            });
        }
        let mut value = Self::decode_fields(&mut d)?;
        if value.flags & atom_flags::STDIO_NET != 0
            && !matches!(value.event_type, EventType::Exec | EventType::FdDup)
        {
            return Err(d.error_at(
                "flags",
                0,
                DecodeErrorKind::Invalid("stdio_net is a flag of exec and fd_dup events only"),
            ));
        }
        if v == EVENT_ATOM_V2 {
            let slots = Self::given_slots(value.event_type);
            let at = d.position();
            let n = d.array("given", 2)?;
            if slots == 0 || n as usize != slots {
                return Err(d.error_at(
                    "given",
                    at,
                    DecodeErrorKind::Invalid(
                        "one given path for exec, open and unlink, two for rename, none otherwise",
                    ),
                ));
            }
            for _ in 0..n {
                value.given.push(d.opt_fixed("given")?);
            }
            if value.given.iter().all(Option::is_none) {
                return Err(d.error_at(
                    "given",
                    at,
                    DecodeErrorKind::Invalid("a version 2 atom names at least one given path"),
                ));
            }
        }
        d.finish()?;
        let mut again = Vec::with_capacity(bytes.len());
        value.encode_into(&mut again);
        if again != bytes {
            return Err(DecodeError {
                record: Self::NAME,
                field: "(record)",
                offset: 0,
                kind: DecodeErrorKind::NotCanonical,
            });
        }
        Ok(value)
    }

    fn encode_fields(&self, e: &mut Encoder) {
        e.uint(self.seq)
            .int(self.t_ns)
            .uint(self.event_type.as_u64())
            .bytes(&self.actor)
            .bytes(&self.object)
            .uint(self.flags as u64)
            .opt_bytes(self.arg_hash.as_ref().map(|h| &h[..]))
            .opt_bytes(self.payload_ref.as_ref().map(|h| &h[..]));
    }

    fn decode_fields(d: &mut Decoder<'_>) -> Result<Self, DecodeError> {
        Ok(EventAtom {
            seq: d.uint("seq")?,
            t_ns: d.int("t_ns")?,
            event_type: EventType::decode(d, "event_type")?,
            actor: d.fixed("actor")?,
            object: d.fixed("object")?,
            flags: flags(d, "flags", atom_flags::ALL as u64)? as u32,
            arg_hash: d.opt_fixed("arg_hash")?,
            payload_ref: d.opt_fixed("payload_ref")?,
            given: Vec::new(),
        })
    }
}

/// A process as Ritma attributes it.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ActorRecord {
    pub actor: Id128,
    pub pid: u32,
    pub ppid: u32,
    /// The parent's actor id, when known.
    pub parent: Option<Id128>,
    /// Task start time, kernel monotonic ns (part of the actor id).
    pub start_ns: u64,
    pub uid: u32,
    pub gid: u32,
    pub euid: u32,
    /// Dictionary id of the executable's path.
    pub exe: Option<Id128>,
    /// BLAKE3 of the executable's content, when hashed.
    pub exe_hash: Option<Hash32>,
    /// Dictionary id of the command name.
    pub comm: Id128,
    pub cgroup_id: u64,
    pub mnt_ns: u64,
    pub pid_ns: u64,
    pub net_ns: u64,
    /// Dictionary id of the container id.
    pub container: Option<Id128>,
    /// Dictionary id of the systemd unit.
    pub service: Option<Id128>,
}

impl ActorRecord {
    /// Actor id: keyed BLAKE3 (domain Actor) of `[node, boot_id, pid, start_ns]`, first 16 bytes.
    pub fn id_of(node: &str, boot_id: &Id128, pid: u32, start_ns: u64) -> Id128 {
        id_of_message(Domain::Actor, |e| {
            e.array(4)
                .text(node)
                .bytes(boot_id)
                .uint(pid as u64)
                .uint(start_ns);
        })
    }
}

impl Record for ActorRecord {
    const TYPE: u64 = 3;
    const VERSION: u64 = 1;
    const NAME: &'static str = "ActorRecord";
    const FIELDS: u64 = 19;
    const MAX_LEN: usize = MAX_EVENT_RECORD_LEN;

    fn encode_fields(&self, e: &mut Encoder) {
        e.bytes(&self.actor)
            .uint(self.pid as u64)
            .uint(self.ppid as u64)
            .opt_bytes(self.parent.as_ref().map(|h| &h[..]))
            .uint(self.start_ns)
            .uint(self.uid as u64)
            .uint(self.gid as u64)
            .uint(self.euid as u64)
            .opt_bytes(self.exe.as_ref().map(|h| &h[..]))
            .opt_bytes(self.exe_hash.as_ref().map(|h| &h[..]))
            .bytes(&self.comm)
            .uint(self.cgroup_id)
            .uint(self.mnt_ns)
            .uint(self.pid_ns)
            .uint(self.net_ns)
            .opt_bytes(self.container.as_ref().map(|h| &h[..]))
            .opt_bytes(self.service.as_ref().map(|h| &h[..]));
    }

    fn decode_fields(d: &mut Decoder<'_>) -> Result<Self, DecodeError> {
        Ok(ActorRecord {
            actor: d.fixed("actor")?,
            pid: d.u32("pid")?,
            ppid: d.u32("ppid")?,
            parent: d.opt_fixed("parent")?,
            start_ns: d.uint("start_ns")?,
            uid: d.u32("uid")?,
            gid: d.u32("gid")?,
            euid: d.u32("euid")?,
            exe: d.opt_fixed("exe")?,
            exe_hash: d.opt_fixed("exe_hash")?,
            comm: d.fixed("comm")?,
            cgroup_id: d.uint("cgroup_id")?,
            mnt_ns: d.uint("mnt_ns")?,
            pid_ns: d.uint("pid_ns")?,
            net_ns: d.uint("net_ns")?,
            container: d.opt_fixed("container")?,
            service: d.opt_fixed("service")?,
        })
    }
}

/// A graph edge, aggregated over one window.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Edge {
    pub kind: EdgeKind,
    pub src: Id128,
    pub dst: Id128,
    /// [`edge_flags`] bits, OR-ed over the window.
    pub flags: u8,
    /// First and last time seen, ns relative to the window's start.
    pub first_t_ns: i64,
    pub last_t_ns: i64,
    pub count: u64,
}

impl Edge {
    /// The fixed-size key edges are sorted and deduplicated by: kind ‖ src ‖ dst.
    pub fn key(&self) -> [u8; 33] {
        let mut k = [0u8; 33];
        k[0] = self.kind as u8;
        k[1..17].copy_from_slice(&self.src);
        k[17..].copy_from_slice(&self.dst);
        k
    }
}

impl Record for Edge {
    const TYPE: u64 = 4;
    const VERSION: u64 = 1;
    const NAME: &'static str = "Edge";
    const FIELDS: u64 = 9;
    const MAX_LEN: usize = MAX_EVENT_RECORD_LEN;

    fn encode_fields(&self, e: &mut Encoder) {
        e.uint(self.kind.as_u64())
            .bytes(&self.src)
            .bytes(&self.dst)
            .uint(self.flags as u64)
            .int(self.first_t_ns)
            .int(self.last_t_ns)
            .uint(self.count);
    }

    fn decode_fields(d: &mut Decoder<'_>) -> Result<Self, DecodeError> {
        let kind = EdgeKind::decode(d, "kind")?;
        let src = d.fixed("src")?;
        let dst = d.fixed("dst")?;
        let flags = d.uint_max("flags", u8::MAX as u64)? as u8;
        let first_t_ns = d.int("first_t_ns")?;
        let last_t_ns = d.int("last_t_ns")?;
        if last_t_ns < first_t_ns {
            return Err(invalid(d, "last_t_ns", "last time before first time"));
        }
        let count = d.uint("count")?;
        if count == 0 {
            return Err(invalid(d, "count", "an edge is seen at least once"));
        }
        Ok(Edge {
            kind,
            src,
            dst,
            flags,
            first_t_ns,
            last_t_ns,
            count,
        })
    }
}

/// Longest cone id and placeholder name.
pub const MAX_CONE_NAME_LEN: usize = 64;
/// Most placeholders a cone binds.
pub const MAX_CONE_BINDINGS: usize = 16;
/// Most exceptions one instance lists.
pub const MAX_CONE_EXCEPTIONS: usize = 64;

/// One instantiation of a cone (behaviour template) within a window.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ConeInstance {
    pub cone_id: String,
    pub cone_version: u32,
    /// Start of the match, ns relative to the window's start.
    pub t_start_ns: i64,
    pub first_seq: u64,
    pub last_seq: u64,
    /// How many times the pattern completed within the window.
    pub count: u64,
    /// Placeholder name → dictionary id, strictly ascending by name bytes.
    pub bindings: Vec<(String, Id128)>,
    /// `seq`s of events that broke the pattern, strictly ascending.
    pub exceptions: Vec<u64>,
}

impl Record for ConeInstance {
    const TYPE: u64 = 5;
    const VERSION: u64 = 1;
    const NAME: &'static str = "ConeInstance";
    const FIELDS: u64 = 10;
    const MAX_LEN: usize = MAX_EVENT_RECORD_LEN;

    fn encode_fields(&self, e: &mut Encoder) {
        e.text(&self.cone_id)
            .uint(self.cone_version as u64)
            .int(self.t_start_ns)
            .uint(self.first_seq)
            .uint(self.last_seq)
            .uint(self.count)
            .array(self.bindings.len() as u64);
        for (name, value) in &self.bindings {
            e.array(2).text(name).bytes(value);
        }
        e.array(self.exceptions.len() as u64);
        for s in &self.exceptions {
            e.uint(*s);
        }
    }

    fn decode_fields(d: &mut Decoder<'_>) -> Result<Self, DecodeError> {
        let cone_id = d.text("cone_id", MAX_CONE_NAME_LEN as u64)?.to_owned();
        if cone_id.is_empty() {
            return Err(invalid(d, "cone_id", "empty cone id"));
        }
        let cone_version = d.u32("cone_version")?;
        let t_start_ns = d.int("t_start_ns")?;
        let first_seq = d.uint("first_seq")?;
        let last_seq = d.uint("last_seq")?;
        if last_seq < first_seq {
            return Err(invalid(d, "last_seq", "last seq before first seq"));
        }
        let count = d.uint("count")?;
        let n = d.array("bindings", MAX_CONE_BINDINGS as u64)?;
        let mut bindings: Vec<(String, Id128)> = Vec::with_capacity(n as usize);
        for _ in 0..n {
            d.array_exact("bindings", 2)?;
            let name = d.text("bindings.name", MAX_CONE_NAME_LEN as u64)?;
            if let Some((prev, _)) = bindings.last() {
                if prev.as_bytes() >= name.as_bytes() {
                    return Err(d.error("bindings.name", DecodeErrorKind::NotAscending));
                }
            }
            let name = name.to_owned();
            bindings.push((name, d.fixed("bindings.value")?));
        }
        let n = d.array("exceptions", MAX_CONE_EXCEPTIONS as u64)?;
        let mut exceptions: Vec<u64> = Vec::with_capacity(n as usize);
        for _ in 0..n {
            let s = d.uint("exceptions")?;
            if exceptions.last().is_some_and(|&p| p >= s) {
                return Err(d.error("exceptions", DecodeErrorKind::NotAscending));
            }
            exceptions.push(s);
        }
        Ok(ConeInstance {
            cone_id,
            cone_version,
            t_start_ns,
            first_seq,
            last_seq,
            count,
            bindings,
            exceptions,
        })
    }
}

/// The sealed summary of one micro-window: the leaf of the node log.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct WindowRecord {
    pub node: String,
    /// Window number: floor(wall time ns / window_len_ns). The window starts at
    /// `window * window_len_ns` and ends (exclusive) one length later.
    pub window: u64,
    pub window_len_ns: u64,
    /// `seq` of the window's first event (the next expected seq if it has none).
    pub first_seq: u64,
    pub event_count: u64,
    pub dict_count: u64,
    pub actor_count: u64,
    pub edge_count: u64,
    pub cone_count: u64,
    /// Sensor health records (probes found silent and re-attached) among the leaves.
    pub health_count: u64,
    /// Lost events by reason, strictly ascending by reason, counts > 0.
    pub lost: Vec<(LossReason, u64)>,
    /// Events that arrived after their own window closed and joined this one.
    pub late_events: u64,
    pub capture_mode: CaptureMode,
    pub cone_lib_version: u32,
    /// Root of the window tree over the window's records in canonical order.
    pub window_root: Hash32,
    /// The digest of the dataflow state saved at the end of the previous window, when
    /// that window ended an hour and its state was saved (FORMAT.md §3.15).
    pub state: Option<Hash32>,
}

impl WindowRecord {
    pub fn t_start_ns(&self) -> u128 {
        self.window as u128 * self.window_len_ns as u128
    }

    pub fn lost_total(&self) -> u64 {
        self.lost.iter().map(|(_, n)| n).sum()
    }

    /// Leaves of the window tree: the six sections' counts (saturating: a signed record
    /// with absurd counts must not overflow a reader).
    pub fn leaf_count(&self) -> u64 {
        [
            self.dict_count,
            self.actor_count,
            self.event_count,
            self.edge_count,
            self.cone_count,
            self.health_count,
        ]
        .iter()
        .fold(0, |a, &n| a.saturating_add(n))
    }
}

impl Record for WindowRecord {
    const TYPE: u64 = 6;
    const VERSION: u64 = 2;
    const NAME: &'static str = "WindowRecord";
    const FIELDS: u64 = 18;
    const MAX_LEN: usize = MAX_RECORD_LEN;

    fn encode_fields(&self, e: &mut Encoder) {
        e.text(&self.node)
            .uint(self.window)
            .uint(self.window_len_ns)
            .uint(self.first_seq)
            .uint(self.event_count)
            .uint(self.dict_count)
            .uint(self.actor_count)
            .uint(self.edge_count)
            .uint(self.cone_count)
            .uint(self.health_count);
        encode_lost(e, &self.lost);
        e.uint(self.late_events)
            .uint(self.capture_mode.as_u64())
            .uint(self.cone_lib_version as u64)
            .bytes(&self.window_root)
            .opt_bytes(self.state.as_ref().map(|h| &h[..]));
    }

    fn decode_fields(d: &mut Decoder<'_>) -> Result<Self, DecodeError> {
        let node = node_name(d)?;
        let window = d.uint("window")?;
        let window_len_ns = d.uint("window_len_ns")?;
        if window_len_ns == 0 {
            return Err(invalid(
                d,
                "window_len_ns",
                "window length must be positive",
            ));
        }
        let first_seq = d.uint("first_seq")?;
        let event_count = d.uint("event_count")?;
        let dict_count = d.uint("dict_count")?;
        let actor_count = d.uint("actor_count")?;
        let edge_count = d.uint("edge_count")?;
        let cone_count = d.uint("cone_count")?;
        let health_count = d.uint("health_count")?;
        let lost = decode_lost(d)?;
        Ok(WindowRecord {
            node,
            window,
            window_len_ns,
            first_seq,
            event_count,
            dict_count,
            actor_count,
            edge_count,
            cone_count,
            health_count,
            lost,
            late_events: d.uint("late_events")?,
            capture_mode: CaptureMode::decode(d, "capture_mode")?,
            cone_lib_version: d.u32("cone_lib_version")?,
            window_root: d.fixed("window_root")?,
            state: d.opt_fixed("state")?,
        })
    }
}

/// Writes the seq range of some events: null without events, else `[min, max]`.
pub(crate) fn encode_seq_range(e: &mut Encoder, r: Option<(u64, u64)>) {
    match r {
        None => {
            e.null();
        }
        Some((lo, hi)) => {
            e.array(2).uint(lo).uint(hi);
        }
    }
}

/// Reads the seq range of `events` events: null exactly when there are none, and wide
/// enough to hold them.
pub(crate) fn decode_seq_range(
    d: &mut Decoder<'_>,
    events: u64,
) -> Result<Option<(u64, u64)>, DecodeError> {
    let r = if d.peek_null() {
        d.null("seq_range")?;
        None
    } else {
        d.array_exact("seq_range", 2)?;
        let (lo, hi) = (d.uint("seq_range.min")?, d.uint("seq_range.max")?);
        if lo > hi || (hi - lo).saturating_add(1) < events {
            return Err(invalid(
                d,
                "seq_range",
                "min above max, or too narrow for the events",
            ));
        }
        Some((lo, hi))
    };
    if r.is_none() != (events == 0) {
        return Err(invalid(
            d,
            "seq_range",
            "null exactly when there are no events",
        ));
    }
    Ok(r)
}

/// Writes a loss list: `[[reason, count]]`, strictly ascending by reason, counts > 0.
pub(crate) fn encode_lost(e: &mut Encoder, lost: &[(LossReason, u64)]) {
    e.array(lost.len() as u64);
    for (reason, n) in lost {
        e.array(2).uint(reason.as_u64()).uint(*n);
    }
}

pub(crate) fn decode_lost(d: &mut Decoder<'_>) -> Result<Vec<(LossReason, u64)>, DecodeError> {
    let n = d.array("lost", LossReason::ALL.len() as u64)?;
    let mut lost: Vec<(LossReason, u64)> = Vec::with_capacity(n as usize);
    for _ in 0..n {
        d.array_exact("lost", 2)?;
        let reason = LossReason::decode(d, "lost.reason")?;
        if lost.last().is_some_and(|(p, _)| *p >= reason) {
            return Err(d.error("lost.reason", DecodeErrorKind::NotAscending));
        }
        let count = d.uint("lost.count")?;
        if count == 0 {
            return Err(invalid(d, "lost.count", "a listed loss is positive"));
        }
        lost.push((reason, count));
    }
    Ok(lost)
}

/// Most hashes in a consistency proof (a tree of 2^63 leaves needs fewer).
pub const MAX_PROOF_HASHES: usize = 128;

/// The previous hour an hour seal extends.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PrevHour {
    pub hour: u64,
    pub log_size: u64,
    pub log_root: Hash32,
}

/// The seal of one hour: the node-log checkpoint at its last window, chained to the
/// previous hour by a consistency proof.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct HourSeal {
    pub node: String,
    /// floor(wall time ns / 3600 s).
    pub hour: u64,
    pub first_window: u64,
    pub last_window: u64,
    /// Node-log size and root after the hour's last window.
    pub log_size: u64,
    pub log_root: Hash32,
    /// `None` for the node's first hour.
    pub prev: Option<PrevHour>,
    /// RFC 9162 consistency proof from `prev` to this hour; empty when `prev` is `None`.
    pub consistency: Vec<Hash32>,
}

impl Record for HourSeal {
    const TYPE: u64 = 7;
    const VERSION: u64 = 1;
    const NAME: &'static str = "HourSeal";
    const FIELDS: u64 = 10;
    const MAX_LEN: usize = MAX_RECORD_LEN;

    fn encode_fields(&self, e: &mut Encoder) {
        e.text(&self.node)
            .uint(self.hour)
            .uint(self.first_window)
            .uint(self.last_window)
            .uint(self.log_size)
            .bytes(&self.log_root);
        match &self.prev {
            None => {
                e.null();
            }
            Some(p) => {
                e.array(3).uint(p.hour).uint(p.log_size).bytes(&p.log_root);
            }
        }
        e.array(self.consistency.len() as u64);
        for h in &self.consistency {
            e.bytes(h);
        }
    }

    fn decode_fields(d: &mut Decoder<'_>) -> Result<Self, DecodeError> {
        let node = node_name(d)?;
        let hour = d.uint("hour")?;
        let first_window = d.uint("first_window")?;
        let last_window = d.uint("last_window")?;
        if last_window < first_window {
            return Err(invalid(d, "last_window", "last window before first window"));
        }
        let log_size = d.uint("log_size")?;
        let log_root = d.fixed("log_root")?;
        let prev = if d.peek_null() {
            d.null("prev")?;
            None
        } else {
            d.array_exact("prev", 3)?;
            let p = PrevHour {
                hour: d.uint("prev.hour")?,
                log_size: d.uint("prev.log_size")?,
                log_root: d.fixed("prev.log_root")?,
            };
            if p.hour >= hour || p.log_size > log_size {
                return Err(invalid(
                    d,
                    "prev",
                    "previous hour must be earlier and no larger",
                ));
            }
            Some(p)
        };
        let n = d.array("consistency", MAX_PROOF_HASHES as u64)?;
        if prev.is_none() && n != 0 {
            return Err(invalid(
                d,
                "consistency",
                "first hour carries no consistency proof",
            ));
        }
        let consistency = (0..n)
            .map(|_| d.fixed("consistency"))
            .collect::<Result<_, _>>()?;
        Ok(HourSeal {
            node,
            hour,
            first_window,
            last_window,
            log_size,
            log_root,
            prev,
            consistency,
        })
    }
}

/// What retention deleted of one sealed hour, and what a verifier needs to go on
/// without it: the roots of the node log over the hour's windows, and the hour's
/// event, seq and loss totals. Stored signed (a SignedRecord) beside the hour seal.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct HourDeletion {
    pub node: String,
    pub hour: u64,
    pub first_window: u64,
    pub last_window: u64,
    /// Node-log size before the hour's first window (that window's leaf index).
    pub log_start: u64,
    /// Roots of `merkle::aligned_ranges(log_start, leaves)`, in order.
    pub subtrees: Vec<Hash32>,
    /// Events sealed in the hour's windows.
    pub events: u64,
    /// Lowest and highest seq among them; `None` without events.
    pub seq_range: Option<(u64, u64)>,
    /// The windows' loss, summed per reason (strictly ascending by reason, counts > 0).
    pub lost: Vec<(LossReason, u64)>,
    /// The retention period applied: the hour ended at least this long before `deleted_wall_ns`.
    pub keep_ns: u64,
    pub deleted_wall_ns: u64,
    /// Node-log size when the deletion was signed; the signing key is valid at it.
    pub log_size: u64,
    /// The hour's sealed windows (its node-log leaves): fewer than its span of window
    /// numbers where a downtime left windows out (FORMAT.md §7.2).
    pub leaves: u64,
}

impl HourDeletion {
    /// The hour's sealed windows: node-log leaves `log_start .. log_start + windows()`.
    pub fn windows(&self) -> u64 {
        self.leaves
    }
}

impl Record for HourDeletion {
    const TYPE: u64 = 21;
    const VERSION: u64 = 2;
    const NAME: &'static str = "HourDeletion";
    const FIELDS: u64 = 15;
    const MAX_LEN: usize = MAX_RECORD_LEN;

    fn encode_fields(&self, e: &mut Encoder) {
        e.text(&self.node)
            .uint(self.hour)
            .uint(self.first_window)
            .uint(self.last_window)
            .uint(self.log_start)
            .array(self.subtrees.len() as u64);
        for h in &self.subtrees {
            e.bytes(h);
        }
        e.uint(self.events);
        encode_seq_range(e, self.seq_range);
        encode_lost(e, &self.lost);
        e.uint(self.keep_ns)
            .uint(self.deleted_wall_ns)
            .uint(self.log_size)
            .uint(self.leaves);
    }

    fn decode_fields(d: &mut Decoder<'_>) -> Result<Self, DecodeError> {
        let node = node_name(d)?;
        let hour = d.uint("hour")?;
        let first_window = d.uint("first_window")?;
        let last_window = d.uint("last_window")?;
        if last_window < first_window {
            return Err(invalid(d, "last_window", "last window before first window"));
        }
        let log_start = d.uint("log_start")?;
        let n = d.array("subtrees", 128)?;
        let subtrees: Vec<Hash32> = (0..n)
            .map(|_| d.fixed("subtrees"))
            .collect::<Result<_, _>>()?;
        let events = d.uint("events")?;
        let seq_range = decode_seq_range(d, events)?;
        let lost = decode_lost(d)?;
        let keep_ns = d.uint("keep_ns")?;
        let deleted_wall_ns = d.uint("deleted_wall_ns")?;
        let log_size = d.uint("log_size")?;
        let leaves = d.uint("leaves")?;
        if leaves == 0 || leaves > last_window - first_window + 1 {
            return Err(invalid(
                d,
                "leaves",
                "not between 1 and the hour's span of windows",
            ));
        }
        if log_start.checked_add(leaves).is_none() {
            return Err(invalid(
                d,
                "log_start",
                "the hour's leaves overflow the log",
            ));
        }
        if subtrees.len() != crate::merkle::aligned_ranges(log_start, leaves).len() {
            return Err(invalid(
                d,
                "subtrees",
                "not one root per aligned subtree of the hour's leaves",
            ));
        }
        if log_size < log_start + leaves {
            return Err(invalid(
                d,
                "log_size",
                "signed before the hour's last window",
            ));
        }
        Ok(HourDeletion {
            node,
            hour,
            first_window,
            last_window,
            log_start,
            subtrees,
            events,
            seq_range,
            lost,
            keep_ns,
            deleted_wall_ns,
            log_size,
            leaves,
        })
    }
}

/// A change to a node's signing keys, effective from node-log size `log_size`.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct KeyEvent {
    pub node: String,
    pub kind: KeyEventKind,
    /// Add: the new key. Rotate: the new key. Revoke: the revoked key.
    pub public_key: [u8; 32],
    /// First node-log size the change applies to.
    pub log_size: u64,
    /// Rotate: the key being replaced; `None` otherwise.
    pub previous_key: Option<[u8; 32]>,
}

impl Record for KeyEvent {
    const TYPE: u64 = 8;
    const VERSION: u64 = 1;
    const NAME: &'static str = "KeyEvent";
    const FIELDS: u64 = 7;
    const MAX_LEN: usize = MAX_RECORD_LEN;

    fn encode_fields(&self, e: &mut Encoder) {
        e.text(&self.node)
            .uint(self.kind.as_u64())
            .bytes(&self.public_key)
            .uint(self.log_size)
            .opt_bytes(self.previous_key.as_ref().map(|k| &k[..]));
    }

    fn decode_fields(d: &mut Decoder<'_>) -> Result<Self, DecodeError> {
        let node = node_name(d)?;
        let kind = KeyEventKind::decode(d, "kind")?;
        let public_key = d.fixed("public_key")?;
        let log_size = d.uint("log_size")?;
        let previous_key = d.opt_fixed("previous_key")?;
        if (kind == KeyEventKind::Rotate) != previous_key.is_some() {
            return Err(invalid(d, "previous_key", "present exactly for a rotation"));
        }
        Ok(KeyEvent {
            node,
            kind,
            public_key,
            log_size,
            previous_key,
        })
    }
}

/// Identity and clock of one sensor run; the first record of a trace.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct RunMeta {
    pub node: String,
    /// /proc/sys/kernel/random/boot_id as 16 bytes.
    pub boot_id: Id128,
    pub sensor_version: String,
    /// BLAKE3 of the effective configuration's canonical encoding.
    pub config_digest: Hash32,
    pub window_len_ns: u64,
    /// Wall-clock ns minus kernel monotonic ns at the start of the run.
    pub wall_minus_mono_ns: i64,
    /// `seq` the run starts at (continues the WAL after a restart).
    pub first_seq: u64,
    pub started_wall_ns: u64,
}

impl Record for RunMeta {
    const TYPE: u64 = 9;
    const VERSION: u64 = 1;
    const NAME: &'static str = "RunMeta";
    const FIELDS: u64 = 10;
    const MAX_LEN: usize = MAX_RECORD_LEN;

    fn encode_fields(&self, e: &mut Encoder) {
        e.text(&self.node)
            .bytes(&self.boot_id)
            .text(&self.sensor_version)
            .bytes(&self.config_digest)
            .uint(self.window_len_ns)
            .int(self.wall_minus_mono_ns)
            .uint(self.first_seq)
            .uint(self.started_wall_ns);
    }

    fn decode_fields(d: &mut Decoder<'_>) -> Result<Self, DecodeError> {
        let node = node_name(d)?;
        let boot_id = d.fixed("boot_id")?;
        let sensor_version = d.text("sensor_version", 128)?.to_owned();
        let config_digest = d.fixed("config_digest")?;
        let window_len_ns = d.uint("window_len_ns")?;
        if !window_len_divides_hour(window_len_ns) {
            return Err(invalid(
                d,
                "window_len_ns",
                "window length must divide one hour",
            ));
        }
        Ok(RunMeta {
            node,
            boot_id,
            sensor_version,
            config_digest,
            window_len_ns,
            wall_minus_mono_ns: d.int("wall_minus_mono_ns")?,
            first_seq: d.uint("first_seq")?,
            started_wall_ns: d.uint("started_wall_ns")?,
        })
    }
}

/// A sensor health observation (probe detached or re-attached, drops, clock resync).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct HealthRecord {
    pub node: String,
    pub t_wall_ns: u64,
    pub kind: HealthKind,
    /// What the observation is about, e.g. a BPF program name.
    pub subject: String,
    /// The window the observation is sealed in.
    pub window: u64,
    /// For probe_detached, the events the gap lost (also counted in that window's `lost`
    /// under probe_detached), `None` when nothing counted them; `None` for capture_stopped;
    /// 0 for the other kinds (the decoder rejects anything else).
    pub lost: Option<u64>,
}

impl HealthRecord {
    /// The events this record counts in its window's probe_detached loss.
    pub fn probe_lost(&self) -> u64 {
        match self.kind {
            HealthKind::ProbeDetached => self.lost.unwrap_or(0),
            _ => 0,
        }
    }
}

impl Record for HealthRecord {
    const TYPE: u64 = 10;
    const VERSION: u64 = 1;
    const NAME: &'static str = "HealthRecord";
    const FIELDS: u64 = 8;
    const MAX_LEN: usize = MAX_RECORD_LEN;

    fn encode_fields(&self, e: &mut Encoder) {
        e.text(&self.node)
            .uint(self.t_wall_ns)
            .uint(self.kind.as_u64())
            .text(&self.subject)
            .uint(self.window);
        match self.lost {
            Some(n) => e.uint(n),
            None => e.null(),
        };
    }

    fn decode_fields(d: &mut Decoder<'_>) -> Result<Self, DecodeError> {
        let node = node_name(d)?;
        let t_wall_ns = d.uint("t_wall_ns")?;
        let kind = HealthKind::decode(d, "kind")?;
        let subject = d.text("subject", 256)?.to_owned();
        let window = d.uint("window")?;
        let lost = if d.peek_null() {
            d.null("lost")?;
            None
        } else {
            Some(d.uint("lost")?)
        };
        // Only a probe gap counts loss; a stop's loss is unknown; nothing else loses events.
        let (ok, why) = match kind {
            HealthKind::ProbeDetached => (true, ""),
            HealthKind::CaptureStopped => (lost.is_none(), "null for capture_stopped"),
            _ => (
                lost == Some(0),
                "0 for a health record other than probe_detached",
            ),
        };
        if !ok {
            return Err(invalid(d, "lost", why));
        }
        Ok(HealthRecord {
            node,
            t_wall_ns,
            kind,
            subject,
            window,
            lost,
        })
    }
}

/// A record signed by a node key: Ed25519 over `"ritma/signed-record/v1\0" ‖ body`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SignedRecord {
    /// The encoded record (itself strictly decodable).
    pub body: Vec<u8>,
    /// Signed-note key id of the signing key.
    pub key_id: u32,
    pub signature: [u8; 64],
}

impl SignedRecord {
    /// The domain prefix that keeps record signatures apart from note signatures.
    pub const CONTEXT: &'static [u8] = b"ritma/signed-record/v1\0";

    /// The exact bytes the signature covers.
    pub fn signed_message(body: &[u8]) -> Vec<u8> {
        let mut m = Vec::with_capacity(Self::CONTEXT.len() + body.len());
        m.extend_from_slice(Self::CONTEXT);
        m.extend_from_slice(body);
        m
    }

    /// The name of the body's record type, for messages ("record" if it names none).
    pub fn body_name(&self) -> &'static str {
        let mut d = Decoder::new(&self.body, Self::NAME);
        d.array("body", 64)
            .and_then(|_| d.uint("type"))
            .ok()
            .and_then(record_name)
            .unwrap_or("record")
    }
}

impl Record for SignedRecord {
    const TYPE: u64 = 11;
    const VERSION: u64 = 1;
    const NAME: &'static str = "SignedRecord";
    const FIELDS: u64 = 5;
    const MAX_LEN: usize = MAX_SIGNED_LEN;

    fn encode_fields(&self, e: &mut Encoder) {
        e.bytes(&self.body)
            .uint(self.key_id as u64)
            .bytes(&self.signature);
    }

    fn decode_fields(d: &mut Decoder<'_>) -> Result<Self, DecodeError> {
        let at = d.position();
        let body = d.bytes("body", (MAX_SIGNED_LEN - 128) as u64)?.to_vec();
        // The body must itself be a strict record, and not another signed wrapper.
        let why = match AnyRecord::decode(&body) {
            Ok(AnyRecord::Signed(_)) => Some("a signed record cannot wrap another"),
            Ok(_) => None,
            Err(_) => Some("body is not a strictly encoded record"),
        };
        if let Some(why) = why {
            return Err(d.error_at("body", at, DecodeErrorKind::Invalid(why)));
        }
        let key_id = d.u32("key_id")?;
        let signature = d.fixed("signature")?;
        Ok(SignedRecord {
            body,
            key_id,
            signature,
        })
    }
}

/// Most records in one block file.
pub const MAX_BLOCK_RECORDS: usize = 1000;

/// A block: up to 1000 consecutive leaves (encoded records) of one window's tree. It is
/// stored packed ([`crate::packed::PackedBlock`], FORMAT.md §8.2); leaf bytes are kept
/// exactly as hashed.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Block {
    pub window: u64,
    /// Position of the block among its window's blocks, from 0.
    pub index: u32,
    /// Leaf index of the first record in the window's tree.
    pub first_leaf: u64,
    pub records: Vec<Vec<u8>>,
}

/// What a store (one node's RITMA_OUT tree) is: `_meta/store.cbor`.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct StoreMeta {
    /// Version of this FORMAT the store follows.
    pub format_version: u32,
    pub node: String,
    pub window_len_ns: u64,
    pub cone_lib_version: u32,
    /// The taint lifetime (FORMAT.md §8.5) in windows, ≥ 1: fixed for the store, and here
    /// so a verifier knows it even where a crash left no taint index.
    pub taint_ttl_windows: u64,
}

impl StoreMeta {
    /// The format version a `store.cbor` names, read from its first elements only, so a
    /// store of another version is named as such even when its StoreMeta is of another
    /// shape; `None` if the bytes do not start as a StoreMeta.
    pub fn format_version_of(bytes: &[u8]) -> Option<u64> {
        let mut d = Decoder::new(bytes, Self::NAME);
        d.array("record", 64).ok()?;
        (d.uint("type").ok()? == Self::TYPE).then_some(())?;
        d.uint("version").ok()?;
        d.uint("format_version").ok()
    }
}

impl Record for StoreMeta {
    const TYPE: u64 = 13;
    const VERSION: u64 = 2;
    const NAME: &'static str = "StoreMeta";
    const FIELDS: u64 = 7;
    const MAX_LEN: usize = MAX_RECORD_LEN;

    fn encode_fields(&self, e: &mut Encoder) {
        e.uint(self.format_version as u64)
            .text(&self.node)
            .uint(self.window_len_ns)
            .uint(self.cone_lib_version as u64)
            .uint(self.taint_ttl_windows);
    }

    fn decode_fields(d: &mut Decoder<'_>) -> Result<Self, DecodeError> {
        let format_version = d.u32("format_version")?;
        let node = node_name(d)?;
        let window_len_ns = d.uint("window_len_ns")?;
        if !window_len_divides_hour(window_len_ns) {
            return Err(invalid(
                d,
                "window_len_ns",
                "window length must divide one hour",
            ));
        }
        let cone_lib_version = d.u32("cone_lib_version")?;
        let taint_ttl_windows = d.uint("taint_ttl_windows")?;
        if taint_ttl_windows == 0 {
            return Err(invalid(d, "taint_ttl_windows", "must be at least 1"));
        }
        Ok(StoreMeta {
            format_version,
            node,
            window_len_ns,
            cone_lib_version,
            taint_ttl_windows,
        })
    }
}

/// The name of record type `t`, if defined.
pub fn record_name(t: u64) -> Option<&'static str> {
    Some(match t {
        DictEntry::TYPE => DictEntry::NAME,
        EventAtom::TYPE => EventAtom::NAME,
        ActorRecord::TYPE => ActorRecord::NAME,
        Edge::TYPE => Edge::NAME,
        ConeInstance::TYPE => ConeInstance::NAME,
        WindowRecord::TYPE => WindowRecord::NAME,
        HourSeal::TYPE => HourSeal::NAME,
        HourDeletion::TYPE => HourDeletion::NAME,
        crate::case::CaseManifest::TYPE => crate::case::CaseManifest::NAME,
        crate::case::CaseExport::TYPE => crate::case::CaseExport::NAME,
        KeyEvent::TYPE => KeyEvent::NAME,
        RunMeta::TYPE => RunMeta::NAME,
        HealthRecord::TYPE => HealthRecord::NAME,
        SignedRecord::TYPE => SignedRecord::NAME,
        crate::packed::PackedBlock::TYPE => crate::packed::PackedBlock::NAME,
        crate::packed::IdTable::TYPE => crate::packed::IdTable::NAME,
        StoreMeta::TYPE => StoreMeta::NAME,
        crate::index::TimeIndex::TYPE => crate::index::TimeIndex::NAME,
        crate::index::ConeRefs::TYPE => crate::index::ConeRefs::NAME,
        crate::index::EdgeRefs::TYPE => crate::index::EdgeRefs::NAME,
        crate::index::EdgePart::TYPE => crate::index::EdgePart::NAME,
        crate::index::TaintIndex::TYPE => crate::index::TaintIndex::NAME,
        crate::proof_bundle::ProofBundle::TYPE => crate::proof_bundle::ProofBundle::NAME,
        crate::cas_manifest::CasManifest::TYPE => crate::cas_manifest::CasManifest::NAME,
        crate::catalog::DayCatalog::TYPE => crate::catalog::DayCatalog::NAME,
        crate::catalog::DayAccount::TYPE => crate::catalog::DayAccount::NAME,
        _ => return None,
    })
}

/// Any record, for readers that meet mixed records (window blocks, fuzzing).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AnyRecord {
    Dict(DictEntry),
    Event(EventAtom),
    Actor(ActorRecord),
    Edge(Edge),
    Cone(ConeInstance),
    Window(WindowRecord),
    Hour(HourSeal),
    Deletion(HourDeletion),
    Case(crate::case::CaseManifest),
    Export(crate::case::CaseExport),
    Key(KeyEvent),
    Run(RunMeta),
    Health(HealthRecord),
    Signed(SignedRecord),
}

impl AnyRecord {
    /// Strictly decodes one record of any type.
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        let mut d = Decoder::new(bytes, "record");
        d.array("(record)", 64)?;
        let at = d.position();
        let t = d.uint("type")?;
        Ok(match t {
            DictEntry::TYPE => AnyRecord::Dict(DictEntry::decode(bytes)?),
            EventAtom::TYPE => AnyRecord::Event(EventAtom::decode(bytes)?),
            ActorRecord::TYPE => AnyRecord::Actor(ActorRecord::decode(bytes)?),
            Edge::TYPE => AnyRecord::Edge(Edge::decode(bytes)?),
            ConeInstance::TYPE => AnyRecord::Cone(ConeInstance::decode(bytes)?),
            WindowRecord::TYPE => AnyRecord::Window(WindowRecord::decode(bytes)?),
            HourSeal::TYPE => AnyRecord::Hour(HourSeal::decode(bytes)?),
            HourDeletion::TYPE => AnyRecord::Deletion(HourDeletion::decode(bytes)?),
            crate::case::CaseManifest::TYPE => {
                AnyRecord::Case(crate::case::CaseManifest::decode(bytes)?)
            }
            crate::case::CaseExport::TYPE => {
                AnyRecord::Export(crate::case::CaseExport::decode(bytes)?)
            }
            KeyEvent::TYPE => AnyRecord::Key(KeyEvent::decode(bytes)?),
            RunMeta::TYPE => AnyRecord::Run(RunMeta::decode(bytes)?),
            HealthRecord::TYPE => AnyRecord::Health(HealthRecord::decode(bytes)?),
            SignedRecord::TYPE => AnyRecord::Signed(SignedRecord::decode(bytes)?),
            _ => {
                return Err(DecodeError {
                    record: "record",
                    field: "type",
                    offset: at,
                    kind: DecodeErrorKind::UnknownRecordType { record_type: t },
                })
            }
        })
    }

    pub fn encode(&self) -> Vec<u8> {
        match self {
            AnyRecord::Dict(r) => r.encode(),
            AnyRecord::Event(r) => r.encode(),
            AnyRecord::Actor(r) => r.encode(),
            AnyRecord::Edge(r) => r.encode(),
            AnyRecord::Cone(r) => r.encode(),
            AnyRecord::Window(r) => r.encode(),
            AnyRecord::Hour(r) => r.encode(),
            AnyRecord::Deletion(r) => r.encode(),
            AnyRecord::Case(r) => r.encode(),
            AnyRecord::Export(r) => r.encode(),
            AnyRecord::Key(r) => r.encode(),
            AnyRecord::Run(r) => r.encode(),
            AnyRecord::Health(r) => r.encode(),
            AnyRecord::Signed(r) => r.encode(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The ids as FORMAT.md §2.2 defines them, hashed here without the memo or the
    /// reused message buffer.
    fn dict_id_by_spec(kind: DictKind, value: &[u8]) -> Id128 {
        let mut e = Encoder::new();
        e.array(2).uint(kind.as_u64()).bytes(value);
        Domain::Dict.id_uncached(e.as_bytes())
    }

    fn actor_id_by_spec(node: &str, boot_id: &Id128, pid: u32, start_ns: u64) -> Id128 {
        let mut e = Encoder::new();
        e.array(4)
            .text(node)
            .bytes(boot_id)
            .uint(pid as u64)
            .uint(start_ns);
        Domain::Actor.id_uncached(e.as_bytes())
    }

    #[test]
    fn ids_match_their_definition_whatever_came_before() {
        // Long, short and repeated values interleaved, so the reused buffer is left
        // longer than the next message and the memo answers some of them.
        let values: Vec<Vec<u8>> = vec![
            b"/etc/passwd".to_vec(),
            vec![b'x'; 5000],
            b"/x".to_vec(),
            Vec::new(),
            vec![b'y'; 200],
            b"/etc/passwd".to_vec(),
        ];
        for round in 0..2 {
            for v in &values {
                for kind in [DictKind::Path, DictKind::Comm] {
                    assert_eq!(
                        DictEntry::id_of(kind, v),
                        dict_id_by_spec(kind, v),
                        "{round}"
                    );
                }
                let node = std::str::from_utf8(&v[..v.len().min(64)]).unwrap();
                assert_eq!(
                    ActorRecord::id_of(node, &[7; 16], 1234, v.len() as u64),
                    actor_id_by_spec(node, &[7; 16], 1234, v.len() as u64)
                );
            }
        }
        // The FORMAT.md example (§2.2).
        let hex: String = ActorRecord::id_of(
            "web-1",
            &core::array::from_fn(|i| i as u8),
            1234,
            5_000_000_000,
        )
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
        assert_eq!(hex, "92a79279d88b41114e37a834d399e771");
    }
}
