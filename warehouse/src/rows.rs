//! One sealed window as analyst rows (docs/ANALYSTS.md): every row names its node, window
//! and leaf (its place in the window tree), events their `seq` too, so `ritma prove` turns
//! any row back into a proof. Dictionary ids are resolved to text the way `ritma query`
//! prints them (`ritma_schemas::display`), once per window; rows borrow that text.

use clickhouse::Row;
use ritma_schemas::display::{dict_kind_name, dict_value, flow_endpoint, hex};
use ritma_schemas::records::{
    atom_flags, ActorRecord, AnyRecord, ConeInstance, DictEntry, DictKind, Edge, EventAtom,
    HealthRecord, HourSeal, WindowRecord, HOUR_NS,
};
use ritma_schemas::Id128;
use serde::Serialize;
use std::collections::HashMap;

/// The object id of an event that has none.
const NO_OBJECT: Id128 = [0; 16];
const DAY_NS: i128 = 86_400 * 1_000_000_000;

#[derive(Debug, thiserror::Error)]
pub enum RowsError {
    #[error("window {window}, leaf {leaf}: {reason}")]
    Leaf {
        window: u64,
        leaf: u64,
        reason: String,
    },
    #[error("window {window}: {reason}")]
    Window { window: u64, reason: String },
}

/// A dictionary value as text, with a flow's address split out.
struct Text {
    kind: String,
    value: String,
    addr: String,
    port: u16,
}

/// An actor's names, resolved once.
struct ActorText {
    comm: String,
    exe: String,
    /// `pid comm`, as `ritma query` names a process.
    label: String,
}

/// One sealed window, decoded: its record, checkpoint and leaves by section.
pub struct Window {
    pub record: WindowRecord,
    /// The node log's size after this window (the checkpoint's size line).
    pub log_size: u64,
    /// The window's signed checkpoint note, as stored.
    pub checkpoint: String,
    texts: HashMap<Id128, Text>,
    actors: Vec<(u64, ActorRecord, ActorText)>,
    actor_at: HashMap<Id128, usize>,
    /// Each atom with its leaf and the index of its actor in `actors`.
    atoms: Vec<(u64, EventAtom, usize)>,
    edges: Vec<(u64, Edge)>,
    cones: Vec<(u64, ConeInstance)>,
    health: Vec<(u64, HealthRecord)>,
    start_ns: i64,
    day: u16,
}

/// Days since 1970-01-01 of a wall time, as ClickHouse's `Date` holds them.
pub fn day_of(window: u64, ns: i128) -> Result<u16, RowsError> {
    u16::try_from(ns.div_euclid(DAY_NS)).map_err(|_| RowsError::Window {
        window,
        reason: format!("time {ns} ns is outside ClickHouse's Date range (1970–2149)"),
    })
}

impl Window {
    /// Decodes the window of `record` from its checkpoint note and its leaves (all of them,
    /// in tree order).
    pub fn decode(
        record: WindowRecord,
        checkpoint: String,
        leaves: &[Vec<u8>],
    ) -> Result<Self, RowsError> {
        let window = record.window;
        let start = record.t_start_ns() as i128;
        let start_ns = i64::try_from(start).map_err(|_| RowsError::Window {
            window,
            reason: "the window starts after 2262, past a signed 64-bit ns time".into(),
        })?;
        let log_size = checkpoint
            .lines()
            .nth(1)
            .and_then(|l| l.parse().ok())
            .ok_or_else(|| RowsError::Window {
                window,
                reason: "the checkpoint note has no size on its second line".into(),
            })?;
        let mut w = Window {
            day: day_of(window, start)?,
            start_ns,
            log_size,
            checkpoint,
            texts: HashMap::new(),
            actors: Vec::new(),
            actor_at: HashMap::new(),
            atoms: Vec::new(),
            edges: Vec::new(),
            cones: Vec::new(),
            health: Vec::new(),
            record,
        };
        let mut actors = Vec::new();
        let mut atoms = Vec::new();
        for (i, bytes) in leaves.iter().enumerate() {
            let leaf = i as u64;
            let bad = |reason: String| RowsError::Leaf {
                window,
                leaf,
                reason,
            };
            match AnyRecord::decode(bytes).map_err(|e| bad(e.to_string()))? {
                AnyRecord::Dict(d) => {
                    let text = text_of(&d);
                    w.texts.insert(d.id, text);
                }
                AnyRecord::Actor(a) => actors.push((leaf, a)),
                AnyRecord::Event(a) => atoms.push((leaf, a)),
                AnyRecord::Edge(e) => w.edges.push((leaf, e)),
                AnyRecord::Cone(c) => w.cones.push((leaf, c)),
                AnyRecord::Health(h) => w.health.push((leaf, h)),
                other => return Err(bad(format!("not a window leaf: {other:?}"))),
            }
        }
        for (leaf, a) in actors {
            let comm = w.value(&a.comm).to_owned();
            let exe = a.exe.map(|e| w.value(&e).to_owned()).unwrap_or_default();
            let label = format!("{} {}", a.pid, if comm.is_empty() { "?" } else { &comm });
            w.actor_at.insert(a.actor, w.actors.len());
            w.actors.push((leaf, a, ActorText { comm, exe, label }));
        }
        // Every event's actor is among the window's records (FORMAT.md §8.2); a row names it.
        for (leaf, a) in atoms {
            let &i = w.actor_at.get(&a.actor).ok_or_else(|| RowsError::Leaf {
                window,
                leaf,
                reason: format!("no actor record for seq {}", a.seq),
            })?;
            w.atoms.push((leaf, a, i));
        }
        Ok(w)
    }

    fn value(&self, id: &Id128) -> &str {
        self.texts.get(id).map_or("", |t| t.value.as_str())
    }

    /// What an id names: a dictionary value, a process of the window, or its hex.
    fn describe(&self, id: &Id128) -> (&str, std::borrow::Cow<'_, str>) {
        if let Some(t) = self.texts.get(id) {
            return (&t.kind, t.value.as_str().into());
        }
        if let Some(&i) = self.actor_at.get(id) {
            return ("process", self.actors[i].2.label.as_str().into());
        }
        ("unknown", hex(id).into())
    }

    /// The UTC day of the window's start, in days since 1970-01-01.
    pub fn day(&self) -> u16 {
        self.day
    }

    pub fn node(&self) -> &str {
        &self.record.node
    }

    pub fn event_count(&self) -> usize {
        self.atoms.len()
    }

    /// Rows of all tables but `windows` and `loss`.
    pub fn leaf_rows(&self) -> usize {
        self.atoms.len()
            + self.actors.len()
            + self.edges.len()
            + self.cones.len()
            + self.health.len()
    }

    fn time(&self, t_ns: i64) -> i64 {
        self.start_ns.saturating_add(t_ns)
    }

    pub fn events(&self) -> impl Iterator<Item = EventRow<'_>> {
        self.atoms.iter().map(|(leaf, a, i)| {
            let (_, actor, names) = &self.actors[*i];
            let (object_kind, object, addr, port) = if a.object == NO_OBJECT {
                ("none", "".into(), "", 0)
            } else if let Some(t) = self.texts.get(&a.object) {
                (
                    t.kind.as_str(),
                    t.value.as_str().into(),
                    t.addr.as_str(),
                    t.port,
                )
            } else {
                let (k, v) = self.describe(&a.object);
                (k, v, "", 0)
            };
            EventRow {
                node: &self.record.node,
                day: self.day,
                win: self.record.window,
                leaf: *leaf,
                seq: a.seq,
                time_ns: self.time(a.t_ns),
                event: a.event_type.name(),
                actor: a.actor,
                pid: actor.pid,
                comm: &names.comm,
                exe: &names.exe,
                object_kind,
                object,
                object_id: a.object,
                addr,
                port,
                flags: atom_flags::names(a.flags),
                arg_hash: a.arg_hash.map(|h| hex(&h)).unwrap_or_default(),
                payload_ref: a.payload_ref.map(|h| hex(&h)).unwrap_or_default(),
            }
        })
    }

    pub fn actors(&self) -> impl Iterator<Item = ActorRow<'_>> {
        self.actors.iter().map(|(leaf, a, names)| ActorRow {
            node: &self.record.node,
            day: self.day,
            win: self.record.window,
            leaf: *leaf,
            time_ns: self.start_ns,
            actor: a.actor,
            pid: a.pid,
            ppid: a.ppid,
            parent: a.parent.unwrap_or_default(),
            start_ns: a.start_ns,
            uid: a.uid,
            gid: a.gid,
            euid: a.euid,
            comm: &names.comm,
            exe: &names.exe,
            exe_hash: a.exe_hash.map(|h| hex(&h)).unwrap_or_default(),
            cgroup_id: a.cgroup_id,
            mnt_ns: a.mnt_ns,
            pid_ns: a.pid_ns,
            net_ns: a.net_ns,
            container: a.container.map_or("", |c| self.value(&c)),
            service: a.service.map_or("", |s| self.value(&s)),
        })
    }

    pub fn edges(&self) -> impl Iterator<Item = EdgeRow<'_>> {
        self.edges.iter().map(|(leaf, e)| {
            let (src_kind, src_value) = self.describe(&e.src);
            let (dst_kind, dst_value) = self.describe(&e.dst);
            EdgeRow {
                node: &self.record.node,
                day: self.day,
                win: self.record.window,
                leaf: *leaf,
                kind: e.kind.name(),
                src: e.src,
                dst: e.dst,
                src_kind,
                src_value,
                dst_kind,
                dst_value,
                flags: e.flags,
                first_ns: self.time(e.first_t_ns),
                last_ns: self.time(e.last_t_ns),
                count: e.count,
            }
        })
    }

    pub fn cones(&self) -> impl Iterator<Item = ConeRow<'_>> {
        self.cones.iter().map(|(leaf, c)| ConeRow {
            node: &self.record.node,
            day: self.day,
            win: self.record.window,
            leaf: *leaf,
            time_ns: self.time(c.t_start_ns),
            cone: &c.cone_id,
            cone_version: c.cone_version,
            first_seq: c.first_seq,
            last_seq: c.last_seq,
            count: c.count,
            binding_names: c.bindings.iter().map(|(n, _)| n.as_str()).collect(),
            binding_values: c.bindings.iter().map(|(_, v)| self.describe(v).1).collect(),
            exceptions: c.exceptions.clone(),
        })
    }

    pub fn health(&self) -> impl Iterator<Item = HealthRow<'_>> {
        self.health.iter().map(|(leaf, h)| HealthRow {
            node: &self.record.node,
            day: self.day,
            win: self.record.window,
            leaf: *leaf,
            time_ns: i64::try_from(h.t_wall_ns).unwrap_or(i64::MAX),
            kind: h.kind.name(),
            subject: &h.subject,
            lost: h.lost,
        })
    }

    pub fn loss(&self) -> impl Iterator<Item = LossRow<'_>> {
        self.record.lost.iter().map(|(reason, count)| LossRow {
            node: &self.record.node,
            day: self.day,
            win: self.record.window,
            reason_id: reason.as_u64(),
            time_ns: self.start_ns,
            reason: reason.name(),
            count: *count,
        })
    }

    pub fn window_row(&self) -> WindowRow<'_> {
        let r = &self.record;
        WindowRow {
            node: &r.node,
            day: self.day,
            win: r.window,
            time_ns: self.start_ns,
            window_len_ns: r.window_len_ns,
            log_size: self.log_size,
            first_seq: r.first_seq,
            event_count: r.event_count,
            dict_count: r.dict_count,
            actor_count: r.actor_count,
            edge_count: r.edge_count,
            cone_count: r.cone_count,
            health_count: r.health_count,
            late_events: r.late_events,
            lost_total: r.lost_total(),
            capture_mode: r.capture_mode.name(),
            cone_lib_version: r.cone_lib_version,
            window_root: hex(&r.window_root),
            state: r.state.map(|h| hex(&h)).unwrap_or_default(),
            checkpoint: &self.checkpoint,
        }
    }
}

fn text_of(d: &DictEntry) -> Text {
    let (addr, port) = match (d.kind, d.hashed) {
        (DictKind::Flow, false) => {
            flow_endpoint(&d.value).map_or((String::new(), 0), |(ip, port)| (ip.to_string(), port))
        }
        _ => (String::new(), 0),
    };
    Text {
        kind: dict_kind_name(d.kind),
        value: dict_value(d),
        addr,
        port,
    }
}

/// An hour seal as a row of `hours`.
pub fn hour_row(seal: &HourSeal) -> Result<HourRow<'_>, RowsError> {
    let start = seal.hour as i128 * HOUR_NS as i128;
    Ok(HourRow {
        node: &seal.node,
        day: day_of(seal.first_window, start)?,
        hour: seal.hour,
        time_ns: i64::try_from(start).unwrap_or(i64::MAX),
        first_window: seal.first_window,
        last_window: seal.last_window,
        log_size: seal.log_size,
        log_root: hex(&seal.log_root),
        prev_hour: seal.prev.as_ref().map(|p| p.hour),
        prev_log_size: seal.prev.as_ref().map(|p| p.log_size),
    })
}

/// One event atom (`events`).
#[derive(Row, Serialize)]
pub struct EventRow<'a> {
    pub node: &'a str,
    pub day: u16,
    pub win: u64,
    pub leaf: u64,
    pub seq: u64,
    pub time_ns: i64,
    pub event: &'static str,
    pub actor: Id128,
    pub pid: u32,
    pub comm: &'a str,
    pub exe: &'a str,
    pub object_kind: &'a str,
    pub object: std::borrow::Cow<'a, str>,
    pub object_id: Id128,
    pub addr: &'a str,
    pub port: u16,
    pub flags: Vec<&'static str>,
    pub arg_hash: String,
    pub payload_ref: String,
}

/// One actor record (`actors`): a process as a window saw it.
#[derive(Row, Serialize)]
pub struct ActorRow<'a> {
    pub node: &'a str,
    pub day: u16,
    pub win: u64,
    pub leaf: u64,
    pub time_ns: i64,
    pub actor: Id128,
    pub pid: u32,
    pub ppid: u32,
    pub parent: Id128,
    pub start_ns: u64,
    pub uid: u32,
    pub gid: u32,
    pub euid: u32,
    pub comm: &'a str,
    pub exe: &'a str,
    pub exe_hash: String,
    pub cgroup_id: u64,
    pub mnt_ns: u64,
    pub pid_ns: u64,
    pub net_ns: u64,
    pub container: &'a str,
    pub service: &'a str,
}

/// One graph edge, aggregated over its window (`edges`).
#[derive(Row, Serialize)]
pub struct EdgeRow<'a> {
    pub node: &'a str,
    pub day: u16,
    pub win: u64,
    pub leaf: u64,
    pub kind: &'static str,
    pub src: Id128,
    pub dst: Id128,
    pub src_kind: &'a str,
    pub src_value: std::borrow::Cow<'a, str>,
    pub dst_kind: &'a str,
    pub dst_value: std::borrow::Cow<'a, str>,
    pub flags: u8,
    pub first_ns: i64,
    pub last_ns: i64,
    pub count: u64,
}

/// One cone instance (`cone_matches`).
#[derive(Row, Serialize)]
pub struct ConeRow<'a> {
    pub node: &'a str,
    pub day: u16,
    pub win: u64,
    pub leaf: u64,
    pub time_ns: i64,
    pub cone: &'a str,
    pub cone_version: u32,
    pub first_seq: u64,
    pub last_seq: u64,
    pub count: u64,
    pub binding_names: Vec<&'a str>,
    pub binding_values: Vec<std::borrow::Cow<'a, str>>,
    pub exceptions: Vec<u64>,
}

/// One sensor health record (`health`).
#[derive(Row, Serialize)]
pub struct HealthRow<'a> {
    pub node: &'a str,
    pub day: u16,
    pub win: u64,
    pub leaf: u64,
    pub time_ns: i64,
    pub kind: &'static str,
    pub subject: &'a str,
    pub lost: Option<u64>,
}

/// One loss reason of a window (`loss`): the record's `lost` list.
#[derive(Row, Serialize)]
pub struct LossRow<'a> {
    pub node: &'a str,
    pub day: u16,
    pub win: u64,
    pub reason_id: u64,
    pub time_ns: i64,
    pub reason: &'static str,
    pub count: u64,
}

/// One window record (`windows`), written last: a window is loaded once its row is there.
#[derive(Row, Serialize)]
pub struct WindowRow<'a> {
    pub node: &'a str,
    pub day: u16,
    pub win: u64,
    pub time_ns: i64,
    pub window_len_ns: u64,
    pub log_size: u64,
    pub first_seq: u64,
    pub event_count: u64,
    pub dict_count: u64,
    pub actor_count: u64,
    pub edge_count: u64,
    pub cone_count: u64,
    pub health_count: u64,
    pub late_events: u64,
    pub lost_total: u64,
    pub capture_mode: &'static str,
    pub cone_lib_version: u32,
    pub window_root: String,
    pub state: String,
    pub checkpoint: &'a str,
}

/// One hour seal (`hours`).
#[derive(Row, Serialize)]
pub struct HourRow<'a> {
    pub node: &'a str,
    pub day: u16,
    pub hour: u64,
    pub time_ns: i64,
    pub first_window: u64,
    pub last_window: u64,
    pub log_size: u64,
    pub log_root: String,
    pub prev_hour: Option<u64>,
    pub prev_log_size: Option<u64>,
}

/// A window the loader has started on (`load_attempts`): its rows may be partly there.
#[derive(Row, Serialize)]
pub struct AttemptRow<'a> {
    pub node: &'a str,
    pub win: u64,
    /// Unix seconds (`DateTime`).
    pub at: u32,
}
