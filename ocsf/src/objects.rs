//! What every event shares: the class and activity captions, the base attributes, and the
//! OCSF objects (process, file, endpoint, device) made of a window's records.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ritma_schemas::cbor::Decoder;
use ritma_schemas::records::{DictEntry, DictKind, EventAtom, MAX_EVENT_RECORD_LEN};
use ritma_schemas::Id128;
use serde_json::{json, Map, Value};

use crate::window::Window;
use crate::OCSF_VERSION;

/// An OCSF event class, with its category (captions as OCSF 1.8.0 spells them).
pub(crate) struct Class {
    pub uid: u32,
    pub name: &'static str,
    pub category_uid: u32,
    pub category_name: &'static str,
}

pub(crate) const FILE_SYSTEM_ACTIVITY: Class = Class {
    uid: 1001,
    name: "File System Activity",
    category_uid: 1,
    category_name: "System Activity",
};
pub(crate) const KERNEL_EXTENSION_ACTIVITY: Class = Class {
    uid: 1002,
    name: "Kernel Extension Activity",
    category_uid: 1,
    category_name: "System Activity",
};
pub(crate) const KERNEL_ACTIVITY: Class = Class {
    uid: 1003,
    name: "Kernel Activity",
    category_uid: 1,
    category_name: "System Activity",
};
pub(crate) const PROCESS_ACTIVITY: Class = Class {
    uid: 1007,
    name: "Process Activity",
    category_uid: 1,
    category_name: "System Activity",
};
pub(crate) const DETECTION_FINDING: Class = Class {
    uid: 2004,
    name: "Detection Finding",
    category_uid: 2,
    category_name: "Findings",
};
pub(crate) const NETWORK_ACTIVITY: Class = Class {
    uid: 4001,
    name: "Network Activity",
    category_uid: 4,
    category_name: "Network Activity",
};

/// An activity of a class: its id and caption, or for Other (99) the source's own name for it.
#[derive(Clone, Copy)]
pub(crate) struct Activity {
    pub id: u32,
    pub name: &'static str,
}

pub(crate) const OTHER: u32 = 99;

impl Activity {
    pub const fn new(id: u32, name: &'static str) -> Self {
        Activity { id, name }
    }

    /// The caption `type_name` uses: OCSF's, which for 99 is "Other".
    fn caption(self) -> &'static str {
        match self.id {
            OTHER => "Other",
            _ => self.name,
        }
    }
}

/// `severity_id` and its caption.
#[derive(Clone, Copy)]
pub(crate) enum Severity {
    Informational,
    Medium,
}

impl Severity {
    fn id_and_caption(self) -> (u32, &'static str) {
        match self {
            Severity::Informational => (1, "Informational"),
            Severity::Medium => (3, "Medium"),
        }
    }
}

/// File `type_id`s (OCSF `file.type_id`).
pub(crate) const FILE_UNKNOWN: u32 = 0;
pub(crate) const FILE_REGULAR: u32 = 1;

/// What heads an event: its class, activity, time and place in Ritma's evidence.
pub(crate) struct Header {
    pub class: &'static Class,
    pub activity: Activity,
    pub severity: Severity,
    /// Wall time, ns since the epoch.
    pub time_ns: i128,
    /// `metadata.uid`.
    pub uid: String,
    /// `metadata.sequence`: the seq of the event, if the event is one.
    pub sequence: Option<u64>,
}

/// One event being built: the window it reads and what it could not read as text.
pub(crate) struct EventBuilder<'a> {
    pub w: &'a Window<'a>,
    /// Attribute paths holding the hash of a value too long to seal.
    hashed: Vec<String>,
    /// Attribute paths holding an id the window has no record for.
    unresolved: Vec<String>,
    uses_container: bool,
    /// `unmapped.ritma`: the evidence coordinates and what OCSF has no place for.
    pub ritma: Map<String, Value>,
}

impl<'a> EventBuilder<'a> {
    pub fn new(w: &'a Window<'a>) -> Self {
        let mut ritma = Map::new();
        ritma.insert("node".into(), w.node().into());
        ritma.insert("window".into(), w.record.window.into());
        EventBuilder {
            w,
            hashed: Vec::new(),
            unresolved: Vec::new(),
            uses_container: false,
            ritma,
        }
    }

    /// The event: the header's base attributes, `device`, `metadata`, `unmapped`, and `body`.
    pub fn finish(
        mut self,
        header: Header,
        message: String,
        mut body: Map<String, Value>,
    ) -> Value {
        let Header {
            class,
            activity,
            severity,
            time_ns,
            uid,
            sequence,
        } = header;
        let (severity_id, severity_name) = severity.id_and_caption();
        let mut profiles = vec!["host"];
        if self.uses_container {
            profiles.insert(0, "container");
        }
        let mut metadata = json!({
            "product": {"name": "Ritma", "vendor_name": "Ritma", "version": env!("CARGO_PKG_VERSION")},
            "profiles": profiles,
            "uid": uid,
            "version": OCSF_VERSION,
        });
        // integer_t is 32-bit: a larger seq is in `unmapped.ritma.seq` only.
        if let Some(seq) = sequence.and_then(|s| i32::try_from(s).ok()) {
            metadata["sequence"] = seq.into();
        }
        if !self.hashed.is_empty() {
            self.ritma.insert("hashed".into(), self.hashed.into());
        }
        if !self.unresolved.is_empty() {
            self.ritma
                .insert("unresolved".into(), self.unresolved.into());
        }
        if let Ok(ns) = i64::try_from(time_ns) {
            self.ritma.insert("time_ns".into(), ns.into());
        }
        let time_ms = i64::try_from(time_ns.div_euclid(1_000_000)).unwrap_or(i64::MAX);
        let base = json!({
            "activity_id": activity.id,
            "activity_name": activity.name,
            "category_name": class.category_name,
            "category_uid": class.category_uid,
            "class_name": class.name,
            "class_uid": class.uid,
            "device": {
                "name": self.w.node(),
                "os": {"name": "Linux", "type_id": 200},
                "type_id": 0,
            },
            "message": message,
            "metadata": metadata,
            "severity": severity_name,
            "severity_id": severity_id,
            "time": time_ms,
            "type_name": format!("{}: {}", class.name, activity.caption()),
            "type_uid": class.uid as u64 * 100 + activity.id as u64,
            "unmapped": {"ritma": self.ritma},
        });
        if let Value::Object(base) = base {
            body.extend(base);
        }
        Value::Object(body)
    }

    /// A dictionary value as text: UTF-8 where it is, `blake3:<hex>` for a hashed value (its
    /// `field` noted); `None` if the window has no entry for `id`.
    pub fn text(&mut self, id: &Id128, field: &str) -> Option<String> {
        let d = self.w.dict(id)?;
        Some(self.entry_text(d, field))
    }

    fn entry_text(&mut self, d: &DictEntry, field: &str) -> String {
        if d.hashed {
            self.hashed.push(field.to_owned());
            return format!("blake3:{}", hex(&d.value));
        }
        String::from_utf8_lossy(&d.value).into_owned()
    }

    /// [`EventBuilder::text`], or `id:<hex>` (its `field` noted) for an id the window lacks.
    pub fn text_or_id(&mut self, id: &Id128, field: &str) -> String {
        self.text(id, field).unwrap_or_else(|| {
            self.unresolved.push(field.to_owned());
            format!("id:{}", hex(id))
        })
    }

    /// A file known by its path.
    pub fn file_at(&mut self, path: &Id128, type_id: u32, field: &str) -> Value {
        let path = self.text_or_id(path, &format!("{field}.path"));
        let name = path.rsplit('/').find(|s| !s.is_empty()).unwrap_or(&path);
        json!({"name": name, "path": path, "type_id": type_id})
    }

    /// A file known by a name only (a memfd, a module loaded by name).
    pub fn file_named(&mut self, name: &Id128, type_id: u32, field: &str) -> Value {
        let name = self.text_or_id(name, &format!("{field}.name"));
        json!({"name": name, "type_id": type_id})
    }

    /// The process of actor `id`, as far as the window's actor record tells.
    pub fn process(&mut self, id: &Id128, field: &str) -> Map<String, Value> {
        let mut p = Map::new();
        p.insert("uid".into(), hex(id).into());
        let Some(a) = self.w.actor(id) else {
            return p;
        };
        // integer_t is 32-bit; Linux pids are below 2^22, a larger one is not a pid.
        if let Ok(pid) = i32::try_from(a.pid) {
            p.insert("pid".into(), pid.into());
        }
        if let Some(comm) = self.text(&a.comm, &format!("{field}.name")) {
            p.insert("name".into(), comm.into());
        }
        p.insert("user".into(), json!({"uid": a.uid.to_string()}));
        if let Some(exe) = a.exe {
            let mut file = self.file_at(&exe, FILE_REGULAR, &format!("{field}.file"));
            if let Some(h) = a.exe_hash {
                file["hashes"] =
                    json!([{"algorithm": "BLAKE3", "algorithm_id": OTHER, "value": hex(&h)}]);
            }
            p.insert("file".into(), file);
        }
        if let Some(container) = a.container {
            let uid = self.text_or_id(&container, &format!("{field}.container.uid"));
            p.insert("container".into(), json!({"uid": uid}));
            self.uses_container = true;
        }
        let mut parent = Map::new();
        if let Ok(ppid) = i32::try_from(a.ppid) {
            parent.insert("pid".into(), ppid.into());
        }
        if let Some(parent_id) = a.parent {
            parent.insert("uid".into(), hex(&parent_id).into());
            if let Some(pa) = self.w.actor(&parent_id) {
                let field = format!("{field}.parent_process.name");
                if let Some(comm) = self.text(&pa.comm, &field) {
                    parent.insert("name".into(), comm.into());
                }
            }
        }
        p.insert("parent_process".into(), parent.into());
        p
    }

    /// The argv of an exec or present event as one command line, when the window seals it.
    pub fn cmd_line(&mut self, atom: &EventAtom, field: &str) -> Option<String> {
        let d = self.w.argv(atom.arg_hash.as_ref()?)?;
        if d.hashed {
            return Some(self.entry_text(d, field));
        }
        Some(argv_text(&d.value).unwrap_or_else(|| format!("argv:{}", hex(&d.value))))
    }

    /// A network endpoint of a flow dictionary value (FORMAT.md §3.1, family ‖ address ‖ port).
    pub fn endpoint(&mut self, flow: &Id128, field: &str) -> Value {
        let Some(d) = self.w.dict(flow) else {
            self.unresolved.push(format!("{field}.uid"));
            return json!({"uid": hex(flow)});
        };
        match (d.hashed, decode_flow(&d.value)) {
            (false, Some(FlowAddr::Ip(ip, port))) => json!({"ip": ip.to_string(), "port": port}),
            (false, Some(FlowAddr::Unix(path))) => json!({"name": path}),
            _ => {
                self.ritma.insert("flow".into(), hex(&d.value).into());
                json!({"uid": hex(flow)})
            }
        }
    }
}

/// A decoded flow value.
enum FlowAddr {
    Ip(IpAddr, u16),
    /// A Unix socket path; an abstract name (leading NUL) written `@name`.
    Unix(String),
}

fn decode_flow(v: &[u8]) -> Option<FlowAddr> {
    let port = |p: &[u8]| u16::from_be_bytes([p[0], p[1]]);
    Some(match v {
        [0, 2, a, b, c, d, p @ ..] if p.len() == 2 => {
            FlowAddr::Ip(Ipv4Addr::new(*a, *b, *c, *d).into(), port(p))
        }
        [0, 10, rest @ ..] if rest.len() == 18 => {
            let addr: [u8; 16] = rest[..16].try_into().ok()?;
            FlowAddr::Ip(Ipv6Addr::from(addr).into(), port(&rest[16..]))
        }
        [0, 1, 0, name @ ..] => FlowAddr::Unix(format!("@{}", String::from_utf8_lossy(name))),
        [0, 1, path @ ..] if !path.is_empty() => {
            FlowAddr::Unix(String::from_utf8_lossy(path).into_owned())
        }
        _ => return None,
    })
}

/// An argv value (a CBOR array of byte strings, FORMAT.md §3.1) as words joined by spaces.
fn argv_text(v: &[u8]) -> Option<String> {
    let mut d = Decoder::new(v, "argv");
    let n = d.array("argv", MAX_EVENT_RECORD_LEN as u64).ok()?;
    let words = (0..n)
        .map(|_| {
            d.bytes("argv", v.len() as u64)
                .ok()
                .map(String::from_utf8_lossy)
        })
        .collect::<Option<Vec<_>>>()?;
    d.finish().ok()?;
    Some(words.join(" "))
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// FORMAT.md §3 names of dictionary kinds.
pub(crate) fn dict_kind_name(kind: DictKind) -> &'static str {
    match kind {
        DictKind::Path => "path",
        DictKind::Comm => "comm",
        DictKind::Argv => "argv",
        DictKind::Flow => "flow",
        DictKind::Container => "container",
        DictKind::Service => "service",
        DictKind::Env => "env",
        DictKind::Cgroup => "cgroup",
        DictKind::Name => "name",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flows_decode_by_family() {
        let mut v6 = vec![0, 10];
        v6.extend_from_slice(&Ipv6Addr::LOCALHOST.octets());
        v6.extend_from_slice(&443u16.to_be_bytes());
        let text = |v: &[u8]| match decode_flow(v) {
            Some(FlowAddr::Ip(ip, port)) => format!("{ip} {port}"),
            Some(FlowAddr::Unix(p)) => p,
            None => "none".into(),
        };
        assert_eq!(
            text(&[0, 2, 203, 0, 113, 9, 0x11, 0x5c]),
            "203.0.113.9 4444"
        );
        assert_eq!(text(&v6), "::1 443");
        assert_eq!(text(b"\0\x01/run/x.sock"), "/run/x.sock");
        assert_eq!(text(b"\0\x01\0bus"), "@bus");
        // A failed accept names only its family; a truncated address is no address.
        assert_eq!(text(&[0, 2]), "none");
        assert_eq!(text(&[0, 2, 1, 2, 3, 4, 5]), "none");
        assert_eq!(text(&[0, 17]), "none");
        assert_eq!(text(&[0, 1]), "none");
    }

    #[test]
    fn argv_is_words_or_nothing() {
        let mut e = ritma_schemas::cbor::Encoder::new();
        e.array(2).bytes(b"cat").bytes(b"/etc/passwd");
        assert_eq!(
            argv_text(&e.into_bytes()).as_deref(),
            Some("cat /etc/passwd")
        );
        assert_eq!(argv_text(b"\x82\x43cat"), None);
        assert_eq!(argv_text(b"not cbor"), None);
    }
}
