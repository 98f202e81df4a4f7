//! `ritma query`: the questions an investigator asks first, answered from a store's sealed
//! windows — processes by pid or name, an actor's events, its process tree, who touched a
//! path, the taint slice reachable from an actor, and cone matches.
//!
//! A query reads the store as it is and checks nothing (that is `ritma verify`); every event
//! row carries its `seq`, so `ritma prove --seq` turns any answer into a proof.

use crate::case::parse_range;
use crate::prove::{
    dict_kind_name, dict_value, event_type_name, flag_names, hex, hour_dirs, hour_records,
    node_root, utc, HourRecord, WindowLeaves,
};
use anyhow::{anyhow, bail, Context, Result};
use clap::{Args, Subcommand};
use ritma_operators::canonicalize::NO_OBJECT;
use ritma_operators::taint::taint_flows;
use ritma_schemas::records::{
    atom_flags, ActorRecord, ConeInstance, DictEntry, DictKind, Edge, EdgeKind, EventAtom,
    EventType, LossReason, StoreMeta, WindowRecord,
};
use ritma_schemas::Id128;
use ritma_sinks::store::WindowPaths;
use ritma_sinks::verify::TimeRange;
use serde_json::{json, Map, Value};
use std::collections::hash_map::Entry;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};

use ritma_schemas::records::HOUR_NS;

#[derive(Args)]
pub struct QueryArgs {
    /// The store (RITMA_OUT) directory (not with --clickhouse).
    #[arg(required_unless_present = "clickhouse", conflicts_with = "clickhouse")]
    dir: Option<PathBuf>,
    /// Ask the analyst tables `ritma load` filled instead of a store: the shipped queries
    /// of deploy/clickhouse/queries/ (actors, events, tree, path, flow, cones), e.g.
    /// http://127.0.0.1:8123/?database=ritma; the password in CLICKHOUSE_PASSWORD.
    #[arg(long, global = true, value_name = "URL")]
    clickhouse: Option<String>,
    /// The node, in a store of several (`nodes/<node>/`).
    #[arg(long, global = true)]
    pub(crate) node: Option<String>,
    /// Only windows ending after this time: RFC 3339 UTC (2026-11-23T10:00:00Z) or Unix seconds.
    #[arg(long, global = true)]
    pub(crate) from: Option<String>,
    /// Only windows starting before this time (same forms as --from).
    #[arg(long, global = true)]
    pub(crate) to: Option<String>,
    /// One JSON object per row (JSON Lines) instead of a table.
    #[arg(long, global = true)]
    json: bool,
    /// Stop after this many rows.
    #[arg(long, global = true)]
    limit: Option<usize>,
    #[command(subcommand)]
    pub(crate) what: QueryWhat,
}

#[derive(Subcommand)]
pub(crate) enum QueryWhat {
    /// Processes (actors) seen, optionally only those with this pid, command name or executable.
    Actors {
        #[arg(long)]
        pid: Option<u32>,
        /// Command name (comm), exactly.
        #[arg(long)]
        comm: Option<String>,
        /// Executable: its full path, or its file name.
        #[arg(long)]
        exe: Option<String>,
    },
    /// Every event of an actor (its id, 32 hex digits, as `query actors` prints it).
    Events { actor: String },
    /// An actor's ancestors and every process descended from it.
    Tree { actor: String },
    /// Every event on a path (opens, execs, unlinks, renames to and from it), failed ones too.
    /// Paths are sealed canonical (the file the kernel used, without `.`, `..` or `//`): the
    /// argument is made canonical the same way, lexically.
    Path { path: String },
    /// Every connect, accept and bind with an address: `1.2.3.4`, `1.2.3.4:443`, `::1` or
    /// `[::1]:443` (without a port, any port), failed ones too.
    Flow { addr: String },
    /// Everything reachable from an actor along taint flows (FORMAT.md §8.5): the processes
    /// it started, the files they wrote, the processes that executed those files …
    Taint {
        actor: String,
        /// Seconds a flow stays live after it was last seen (default: the store's taint
        /// lifetime, FORMAT.md §8.1).
        #[arg(long)]
        ttl: Option<u64>,
    },
    /// Cone matches (ConeInstances), optionally of one cone.
    Cones {
        #[arg(long)]
        cone: Option<String>,
    },
    /// Events lost per hour and reason (FORMAT.md §3, LossReason), from the window records.
    Loss,
    /// Cone matches per hour and cone: instances, and the times their pattern completed.
    ConeHours,
    /// Outbound connections (connects to an IP address) by executable: how many, how many
    /// failed, distinct destinations, first and last.
    Egress,
    /// Executables never seen before: those whose first exec (or first sighting running at
    /// capture start) in the node's whole history falls in the range.
    NewBinaries,
    /// One row per hour from the daily catalog and accounting (FORMAT.md §8.11), without
    /// opening a window: state, windows, events, loss, actors, cone matches, event types
    /// and bytes on disk — to find the hour worth a closer look.
    Hours,
}

impl QueryArgs {
    /// The store; clap requires it unless --clickhouse is given, which is answered first.
    fn store_dir(&self) -> &Path {
        self.dir.as_deref().unwrap_or(Path::new("."))
    }
}

pub fn query_cmd(args: QueryArgs) -> Result<()> {
    let mut out = Rows::new(args.json, args.limit);
    if let Some(url) = &args.clickhouse {
        crate::query_clickhouse::answer(url, &args, &mut out)?;
        return out.print();
    }
    if let QueryWhat::Hours = args.what {
        hours(&args, &mut out)?;
        return out.print();
    }
    let scope = Scope::open(&args)?;
    match &args.what {
        QueryWhat::Actors { pid, comm, exe } => actors(&scope, &mut out, *pid, comm, exe)?,
        QueryWhat::Events { actor } => events(&scope, &mut out, &actor_arg(actor)?)?,
        QueryWhat::Tree { actor } => tree(&scope, &mut out, &actor_arg(actor)?)?,
        QueryWhat::Path { path } => path_events(&scope, &mut out, path)?,
        QueryWhat::Flow { addr } => flow_events(&scope, &mut out, &flow_arg(addr)?)?,
        QueryWhat::Taint { actor, ttl } => taint(&scope, &mut out, &actor_arg(actor)?, *ttl)?,
        QueryWhat::Cones { cone } => cones(&scope, &mut out, cone.as_deref())?,
        QueryWhat::Loss => loss(&scope, &mut out),
        QueryWhat::ConeHours => cone_hours(&scope, &mut out)?,
        QueryWhat::Egress => egress(&scope, &mut out)?,
        QueryWhat::NewBinaries => new_binaries(&Scope::open_all(&args)?, &scope.range, &mut out)?,
        QueryWhat::Hours => unreachable!("answered from the catalog above"),
    }
    out.print()?;
    if scope.deleted_hours > 0 {
        eprintln!(
            "note: {} hour(s) of the range were deleted by retention",
            scope.deleted_hours
        );
    }
    Ok(())
}

pub(crate) fn actor_arg(s: &str) -> Result<Id128> {
    ritma_sinks::cas::parse_hex::<16>(s.to_ascii_lowercase().as_bytes())
        .ok_or_else(|| anyhow!("actor {s:?}: not an actor id (32 hex digits)"))
}

/// The windows a query reads: the node's sealed windows overlapping `[from, to)`.
struct Scope {
    root: PathBuf,
    meta: StoreMeta,
    range: TimeRange,
    /// (record, its file) of every sealed window in range, in window order.
    windows: Vec<(WindowRecord, PathBuf)>,
    deleted_hours: u64,
}

impl Scope {
    fn open(args: &QueryArgs) -> Result<Self> {
        let (from_ns, to_ns) = parse_range(args.from.as_deref(), args.to.as_deref())?;
        Self::open_range(args, from_ns, to_ns)
    }

    /// Every window of the node, whatever the range.
    fn open_all(args: &QueryArgs) -> Result<Self> {
        Self::open_range(args, None, None)
    }

    fn open_range(args: &QueryArgs, from_ns: Option<u64>, to_ns: Option<u64>) -> Result<Self> {
        let (root, meta) = node_root(args.store_dir(), args.node.as_deref())?;
        let mut scope = Scope {
            root,
            meta,
            range: TimeRange::new(from_ns, to_ns),
            windows: Vec::new(),
            deleted_hours: 0,
        };
        scope.read_windows()?;
        Ok(scope)
    }

    fn read_windows(&mut self) -> Result<()> {
        let len = self.meta.window_len_ns;
        for dir in hour_dirs(&self.root)? {
            let rel = dir.strip_prefix(&self.root).unwrap_or(&dir).to_owned();
            let Some(hour) = WindowPaths::hour_of_dir(&rel) else {
                continue;
            };
            let start = hour as u128 * HOUR_NS as u128;
            if !self.range.overlaps(start, start + HOUR_NS as u128) {
                continue;
            }
            let deletion = ritma_sinks::retention::read_deletion(&self.root, &rel)
                .with_context(|| format!("{}", dir.display()))?;
            if deletion.is_some() {
                self.deleted_hours += 1;
                continue;
            }
            for HourRecord {
                record,
                record_path,
                ..
            } in hour_records(&dir, &self.meta)?
            {
                let start = record.t_start_ns();
                if self.range.overlaps(start, start + len as u128) {
                    self.windows.push((record, record_path));
                }
            }
        }
        Ok(())
    }

    /// Calls `f` with the leaves of each window in range that `want` accepts, in order,
    /// until it returns false.
    fn each_window(
        &self,
        want: impl Fn(&WindowRecord) -> bool,
        mut f: impl FnMut(&WindowLeaves) -> Result<bool>,
    ) -> Result<()> {
        for (record, path) in &self.windows {
            if !want(record) {
                continue;
            }
            let leaves = WindowLeaves::read_record(&self.root, record, path)?;
            if !f(&leaves)? {
                break;
            }
        }
        Ok(())
    }

    /// The wall time of an event of the window, if inside `[from, to)`.
    fn event_time(&self, w: &WindowLeaves, t_ns: i64) -> Option<i128> {
        let t = w.record.t_start_ns() as i128 + t_ns as i128;
        self.range.contains(t).then_some(t)
    }
}

/// What a window says about an actor.
pub(crate) struct ActorInfo {
    pub record: ActorRecord,
    pub comm: Option<String>,
    pub exe: Option<String>,
}

impl ActorInfo {
    fn of(w: &WindowLeaves, id: &Id128) -> Result<Option<Self>> {
        let Some((_, record)) = w.actor(id)? else {
            return Ok(None);
        };
        Self::from_record(w, record).map(Some)
    }

    /// The actor of an event of the window, whose record the window must hold.
    fn of_event(w: &WindowLeaves, a: &EventAtom) -> Result<Self> {
        Self::of(w, &a.actor)?.ok_or_else(|| {
            anyhow!(
                "{}: no actor record for seq {}",
                w.paths.hour_dir.display(),
                a.seq
            )
        })
    }

    fn from_record(w: &WindowLeaves, record: ActorRecord) -> Result<Self> {
        let name = |id: Option<Id128>| -> Result<Option<String>> {
            Ok(match id {
                Some(i) => w.dict_lookup(&i)?.map(|d| dict_value(&d)),
                None => None,
            })
        };
        Ok(ActorInfo {
            comm: name(Some(record.comm))?,
            exe: name(record.exe)?,
            record,
        })
    }

    /// `pid comm`, as a table shows a process.
    fn label(&self) -> String {
        format!(
            "{} {}",
            self.record.pid,
            self.comm.as_deref().unwrap_or("?")
        )
    }
}

/// An id as the window names it: a dictionary value, a process, or its hex.
fn describe(w: &WindowLeaves, id: &Id128) -> Result<(String, String)> {
    if let Some(d) = w.dict_lookup(id)? {
        return Ok((dict_kind_name(d.kind), dict_value(&d)));
    }
    if let Some(a) = ActorInfo::of(w, id)? {
        return Ok(("process".into(), a.label()));
    }
    Ok(("unknown".into(), hex(id)))
}

/// The rows of an answer, printed as a table or as JSON Lines.
pub(crate) struct Rows {
    json: bool,
    limit: Option<usize>,
    columns: Vec<&'static str>,
    rows: Vec<Map<String, Value>>,
    cut: bool,
}

impl Rows {
    fn new(json: bool, limit: Option<usize>) -> Self {
        Rows {
            json,
            limit,
            columns: Vec::new(),
            rows: Vec::new(),
            cut: false,
        }
    }

    fn full(&self) -> bool {
        self.limit.is_some_and(|l| self.rows.len() >= l)
    }

    /// Adds a row (ignored once the limit is reached); returns false once it is.
    pub(crate) fn push(&mut self, row: Vec<(&'static str, Value)>) -> bool {
        if self.full() {
            self.cut = true;
            return false;
        }
        for (k, _) in &row {
            if !self.columns.contains(k) {
                self.columns.push(k);
            }
        }
        self.rows
            .push(row.into_iter().map(|(k, v)| (k.to_owned(), v)).collect());
        !self.full()
    }

    fn cell(v: Option<&Value>) -> String {
        match v {
            None | Some(Value::Null) => "-".into(),
            Some(Value::String(s)) => s.clone(),
            Some(Value::Array(a)) => a
                .iter()
                .map(|x| Self::cell(Some(x)))
                .collect::<Vec<_>>()
                .join(","),
            Some(v) => v.to_string(),
        }
    }

    /// The answer as text: JSON Lines, or a table with a header.
    fn render(&self) -> String {
        let mut s = String::new();
        if self.json {
            for r in &self.rows {
                s.push_str(&Value::Object(r.clone()).to_string());
                s.push('\n');
            }
            return s;
        }
        if self.rows.is_empty() {
            return "(no rows)\n".into();
        }
        let cells: Vec<Vec<String>> = self
            .rows
            .iter()
            .map(|r| self.columns.iter().map(|c| Self::cell(r.get(*c))).collect())
            .collect();
        let widths: Vec<usize> = (0..self.columns.len())
            .map(|i| {
                cells
                    .iter()
                    .map(|r| r[i].chars().count())
                    .chain([self.columns[i].len()])
                    .max()
                    .unwrap_or(0)
            })
            .collect();
        let header = self.columns.iter().map(|c| c.to_uppercase()).collect();
        for vals in std::iter::once(header).chain(cells) {
            let mut line = String::new();
            for (i, v) in vals.iter().enumerate() {
                line.push_str(v);
                if i + 1 < vals.len() {
                    let pad = widths[i] - v.chars().count() + 2;
                    line.extend(std::iter::repeat_n(' ', pad));
                }
            }
            s.push_str(line.trim_end());
            s.push('\n');
        }
        s
    }

    /// Prints the answer; a reader that stops early (`| head`) is not an error.
    fn print(&self) -> Result<()> {
        use std::io::Write;
        let mut stdout = std::io::stdout().lock();
        match stdout
            .write_all(self.render().as_bytes())
            .and_then(|()| stdout.flush())
        {
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => return Ok(()),
            r => r.context("writing the answer")?,
        }
        if self.cut {
            eprintln!("note: stopped at --limit {}", self.limit.unwrap_or(0));
        }
        Ok(())
    }
}

fn opt(v: Option<String>) -> Value {
    v.map_or(Value::Null, Value::String)
}

pub(crate) fn time_value(ns: i128) -> Value {
    Value::String(utc(ns))
}

/// Everything a table or JSON shows of one event.
fn event_row(
    w: &WindowLeaves,
    a: &EventAtom,
    t: i128,
    actor: &ActorInfo,
) -> Result<Vec<(&'static str, Value)>> {
    let (kind, object) = if a.object == NO_OBJECT {
        ("none".to_owned(), None)
    } else {
        let (k, v) = describe(w, &a.object)?;
        (k, Some(v))
    };
    Ok(vec![
        ("time", time_value(t)),
        ("seq", json!(a.seq)),
        ("event", Value::String(event_type_name(a.event_type))),
        ("pid", json!(actor.record.pid)),
        ("comm", opt(actor.comm.clone())),
        ("object_kind", Value::String(kind)),
        ("object", opt(object)),
        ("flags", json!(flag_names(a.flags))),
        ("actor", Value::String(hex(&a.actor))),
    ])
}

fn actors(
    scope: &Scope,
    out: &mut Rows,
    pid: Option<u32>,
    comm: &Option<String>,
    exe: &Option<String>,
) -> Result<()> {
    struct Seen {
        first_ns: u128,
        last_ns: u128,
        windows: u64,
        latest: ActorInfo,
    }
    let mut seen: HashMap<Id128, Seen> = HashMap::new();
    let exe_matches = |e: &str, want: &str| e == want || e.rsplit('/').next() == Some(want);
    scope.each_window(
        |r| r.actor_count > 0,
        |w| {
            let start = w.record.t_start_ns();
            for i in w.actors() {
                let record: ActorRecord = w.decode(i)?;
                if pid.is_some_and(|p| p != record.pid) {
                    continue;
                }
                let info = ActorInfo::from_record(w, record)?;
                if comm.as_ref().is_some_and(|c| info.comm.as_ref() != Some(c))
                    || exe.as_ref().is_some_and(|want| {
                        !info.exe.as_deref().is_some_and(|e| exe_matches(e, want))
                    })
                {
                    continue;
                }
                let id = info.record.actor;
                match seen.get_mut(&id) {
                    Some(s) => {
                        s.last_ns = start;
                        s.windows += 1;
                        s.latest = info;
                    }
                    None => {
                        let s = Seen {
                            first_ns: start,
                            last_ns: start,
                            windows: 1,
                            latest: info,
                        };
                        seen.insert(id, s);
                    }
                }
            }
            Ok(true)
        },
    )?;
    let mut all: Vec<(Id128, Seen)> = seen.into_iter().collect();
    all.sort_by_key(|(id, s)| (s.first_ns, *id));
    for (id, s) in all {
        let r = &s.latest.record;
        let row = vec![
            ("first_seen", time_value(s.first_ns as i128)),
            ("last_seen", time_value(s.last_ns as i128)),
            ("windows", json!(s.windows)),
            ("pid", json!(r.pid)),
            ("ppid", json!(r.ppid)),
            ("uid", json!(r.uid)),
            ("euid", json!(r.euid)),
            ("comm", opt(s.latest.comm.clone())),
            ("exe", opt(s.latest.exe.clone())),
            ("actor", Value::String(hex(&id))),
            ("parent", opt(r.parent.map(|p| hex(&p)))),
        ];
        if !out.push(row) {
            break;
        }
    }
    Ok(())
}

fn events(scope: &Scope, out: &mut Rows, actor: &Id128) -> Result<()> {
    let mut found = false;
    scope.each_window(
        |r| r.event_count > 0,
        |w| {
            let Some(info) = ActorInfo::of(w, actor)? else {
                return Ok(true);
            };
            found = true;
            for i in w.atoms() {
                let a: EventAtom = w.decode(i)?;
                if a.actor != *actor {
                    continue;
                }
                let Some(t) = scope.event_time(w, a.t_ns) else {
                    continue;
                };
                if !out.push(event_row(w, &a, t, &info)?) {
                    return Ok(false);
                }
            }
            Ok(true)
        },
    )?;
    if !found {
        bail!("actor {} is in no window of the range", hex(actor));
    }
    Ok(())
}

/// A process of a tree: when it was first seen, and its latest record.
pub(crate) struct TreeNode {
    pub first_ns: u128,
    pub info: ActorInfo,
}

fn tree(scope: &Scope, out: &mut Rows, actor: &Id128) -> Result<()> {
    let mut nodes: HashMap<Id128, TreeNode> = HashMap::new();
    scope.each_window(
        |r| r.actor_count > 0,
        |w| {
            for i in w.actors() {
                let record: ActorRecord = w.decode(i)?;
                let id = record.actor;
                let first_ns = nodes.get(&id).map_or(w.record.t_start_ns(), |n| n.first_ns);
                let info = ActorInfo::from_record(w, record)?;
                nodes.insert(id, TreeNode { first_ns, info });
            }
            Ok(true)
        },
    )?;
    print_tree(&nodes, actor, out)
}

/// An actor's ancestors (oldest first) and descendants (depth first, children by first
/// sighting) among `nodes`.
pub(crate) fn print_tree(
    nodes: &HashMap<Id128, TreeNode>,
    actor: &Id128,
    out: &mut Rows,
) -> Result<()> {
    if !nodes.contains_key(actor) {
        bail!("actor {} is in no window of the range", hex(actor));
    }
    let mut children: BTreeMap<Id128, Vec<(u128, Id128)>> = BTreeMap::new();
    for (id, n) in nodes {
        if let Some(p) = n.info.record.parent {
            children.entry(p).or_default().push((n.first_ns, *id));
        }
    }
    for c in children.values_mut() {
        c.sort();
    }
    // Ancestors, oldest first; a cycle cannot come from the data but must not hang us.
    let mut chain = vec![*actor];
    let mut missing_parent = None;
    while let Some(p) = nodes[chain.last().expect("non-empty")].info.record.parent {
        if chain.contains(&p) {
            break;
        }
        if nodes.contains_key(&p) {
            chain.push(p);
        } else {
            missing_parent = Some(p);
            break;
        }
    }
    chain.reverse();
    let row = |depth: usize, relation: &str, id: &Id128, n: &TreeNode| {
        let r = &n.info.record;
        vec![
            ("relation", Value::String(relation.into())),
            ("depth", json!(depth)),
            (
                "process",
                Value::String(format!("{}{}", "  ".repeat(depth), n.info.label())),
            ),
            ("exe", opt(n.info.exe.clone())),
            ("uid", json!(r.uid)),
            ("euid", json!(r.euid)),
            ("first_seen", time_value(n.first_ns as i128)),
            ("actor", Value::String(hex(id))),
            ("parent", opt(r.parent.map(|p| hex(&p)))),
        ]
    };
    if let Some(p) = missing_parent {
        eprintln!(
            "note: the oldest ancestor's parent {} is not in the range",
            hex(&p)
        );
    }
    let target_depth = chain.len() - 1;
    for (depth, id) in chain.iter().enumerate() {
        let relation = if depth == target_depth {
            "self"
        } else {
            "ancestor"
        };
        if !out.push(row(depth, relation, id, &nodes[id])) {
            return Ok(());
        }
    }
    // Descendants depth first, children by first sighting.
    let mut stack: Vec<(usize, Id128)> = children
        .get(actor)
        .map(|c| {
            c.iter()
                .rev()
                .map(|(_, id)| (target_depth + 1, *id))
                .collect()
        })
        .unwrap_or_default();
    let mut shown = BTreeSet::from([*actor]);
    while let Some((depth, id)) = stack.pop() {
        if !shown.insert(id) {
            continue;
        }
        if !out.push(row(depth, "descendant", &id, &nodes[&id])) {
            return Ok(());
        }
        if let Some(c) = children.get(&id) {
            stack.extend(c.iter().rev().map(|(_, k)| (depth + 1, *k)));
        }
    }
    Ok(())
}

/// A path as the store seals it (FORMAT.md §3.2), so `/tmp/./x` asks about `/tmp/x`.
pub(crate) fn canonical_arg(path: &str) -> String {
    String::from_utf8_lossy(&ritma_schemas::path::canonical_path(path.as_bytes())).into_owned()
}

fn path_events(scope: &Scope, out: &mut Rows, path: &str) -> Result<()> {
    let id = DictEntry::id_of(DictKind::Path, canonical_arg(path).as_bytes());
    scope.each_window(
        |r| r.event_count > 0,
        |w| {
            // Every path an atom or edge names is in the window's dictionary.
            if w.dict_lookup(&id)?.is_none() {
                return Ok(true);
            }
            // Renames away from the path: their atoms name the destination.
            let mut renamed_to = BTreeSet::new();
            for i in w.edges() {
                let e: Edge = w.decode(i)?;
                if e.kind == EdgeKind::FileToFile && e.src == id {
                    renamed_to.insert(e.dst);
                }
            }
            for i in w.atoms() {
                let a: EventAtom = w.decode(i)?;
                let from_here = a.event_type == EventType::Rename && renamed_to.contains(&a.object);
                if a.object != id && !from_here {
                    continue;
                }
                let Some(t) = scope.event_time(w, a.t_ns) else {
                    continue;
                };
                let info = ActorInfo::of_event(w, &a)?;
                let mut row = event_row(w, &a, t, &info)?;
                if from_here {
                    row.push(("renamed", Value::String("from the path".into())));
                } else if a.event_type == EventType::Rename {
                    row.push(("renamed", Value::String("to the path".into())));
                }
                if !out.push(row) {
                    return Ok(false);
                }
            }
            Ok(true)
        },
    )
}

/// An address to match flows against, with or without a port.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct FlowMatch {
    pub ip: std::net::IpAddr,
    pub port: Option<u16>,
}

pub(crate) fn flow_arg(s: &str) -> Result<FlowMatch> {
    if let Ok(a) = s.parse::<std::net::SocketAddr>() {
        return Ok(FlowMatch {
            ip: a.ip(),
            port: Some(a.port()),
        });
    }
    let ip = s
        .trim_start_matches('[')
        .trim_end_matches(']')
        .parse()
        .map_err(|_| {
            anyhow!("flow {s:?}: not an address (1.2.3.4, 1.2.3.4:443, ::1 or [::1]:443)")
        })?;
    Ok(FlowMatch { ip, port: None })
}

impl FlowMatch {
    /// Whether a Flow dictionary value (FORMAT.md §3.1) is this address (and port).
    fn matches(&self, v: &[u8]) -> bool {
        ritma_schemas::display::flow_endpoint(v)
            .is_some_and(|(ip, port)| ip == self.ip && self.port.is_none_or(|want| want == port))
    }
}

fn flow_events(scope: &Scope, out: &mut Rows, want: &FlowMatch) -> Result<()> {
    scope.each_window(
        |r| r.event_count > 0,
        |w| {
            let mut flows = BTreeSet::new();
            for i in 0..w.record.dict_count {
                let d: DictEntry = w.decode(i)?;
                if d.kind == DictKind::Flow && !d.hashed && want.matches(&d.value) {
                    flows.insert(d.id);
                }
            }
            if flows.is_empty() {
                return Ok(true);
            }
            for i in w.atoms() {
                let a: EventAtom = w.decode(i)?;
                if !flows.contains(&a.object) {
                    continue;
                }
                let Some(t) = scope.event_time(w, a.t_ns) else {
                    continue;
                };
                let info = ActorInfo::of_event(w, &a)?;
                if !out.push(event_row(w, &a, t, &info)?) {
                    return Ok(false);
                }
            }
            Ok(true)
        },
    )
}

fn taint(scope: &Scope, out: &mut Rows, actor: &Id128, ttl_s: Option<u64>) -> Result<()> {
    let len = scope.meta.window_len_ns;
    let ttl_windows = match ttl_s {
        Some(0) => bail!("--ttl must be at least 1 second"),
        Some(s) => (s.saturating_mul(1_000_000_000)).div_ceil(len).max(1),
        None => scope.meta.taint_ttl_windows,
    };
    // Per window: its flows, whether the seed is live, and names for what the flows touch.
    let mut windows: Vec<crate::taint::QueryWindow> = Vec::new();
    let mut names: HashMap<Id128, (String, String)> = HashMap::new();
    let mut seeded = false;
    scope.each_window(
        |_| true,
        |w| {
            seeded |= w.actor(actor)?.is_some();
            let mut flows = Vec::new();
            for i in w.edges() {
                let e: Edge = w.decode(i)?;
                for (from, to) in taint_flows(&e) {
                    for id in [from, to] {
                        if let Entry::Vacant(v) = names.entry(id) {
                            v.insert(describe(w, &id)?);
                        }
                    }
                    flows.push((from, to));
                }
            }
            windows.push((w.record.window, flows, seeded));
            Ok(true)
        },
    )?;
    if !seeded {
        bail!("actor {} is in no window of the range", hex(actor));
    }
    let changes = crate::taint::reachable_from(*actor, windows, ttl_windows);
    // Per entity: the window it was first reached, and the window it left if it is out at
    // the end of the range.
    let mut tainted: BTreeMap<Id128, (u64, Option<u64>)> = BTreeMap::new();
    for (entity, window, enters) in changes {
        if enters {
            tainted.entry(entity).or_insert((window, None)).1 = None;
        } else if let Some(t) = tainted.get_mut(&entity) {
            t.1 = Some(window);
        }
    }
    let mut all: Vec<(Id128, (u64, Option<u64>))> = tainted.into_iter().collect();
    let name_of = |id: &Id128| {
        names
            .get(id)
            .cloned()
            .unwrap_or_else(|| ("unknown".into(), hex(id)))
    };
    all.sort_by_cached_key(|(id, (first, _))| (*first, name_of(id), *id));
    let at = |w: u64| time_value(w as i128 * len as i128);
    for (id, (first, until)) in all {
        let (kind, name) = name_of(&id);
        let row = vec![
            ("from", at(first)),
            ("until", until.map_or(Value::Null, at)),
            ("kind", Value::String(kind)),
            ("entity", Value::String(name)),
            ("id", Value::String(hex(&id))),
        ];
        if !out.push(row) {
            break;
        }
    }
    Ok(())
}

fn cones(scope: &Scope, out: &mut Rows, cone: Option<&str>) -> Result<()> {
    scope.each_window(
        |r| r.cone_count > 0,
        |w| {
            for i in w.cones() {
                let c: ConeInstance = w.decode(i)?;
                if cone.is_some_and(|want| want != c.cone_id) {
                    continue;
                }
                let Some(t) = scope.event_time(w, c.t_start_ns) else {
                    continue;
                };
                // The actor whose event completed the match (the taint seed).
                let mut actor = Value::Null;
                let mut process = Value::Null;
                for j in w.atoms() {
                    let a: EventAtom = w.decode(j)?;
                    if a.seq == c.last_seq {
                        actor = Value::String(hex(&a.actor));
                        if let Some(info) = ActorInfo::of(w, &a.actor)? {
                            process = Value::String(info.label());
                        }
                        break;
                    }
                }
                let mut bindings = Vec::new();
                for (name, id) in &c.bindings {
                    bindings.push(format!("{name}={}", describe(w, id)?.1));
                }
                let row = vec![
                    ("time", time_value(t)),
                    ("cone", Value::String(c.cone_id.clone())),
                    ("version", json!(c.cone_version)),
                    ("count", json!(c.count)),
                    ("first_seq", json!(c.first_seq)),
                    ("last_seq", json!(c.last_seq)),
                    ("process", process),
                    ("bindings", json!(bindings)),
                    ("actor", actor),
                ];
                if !out.push(row) {
                    return Ok(false);
                }
            }
            Ok(true)
        },
    )
}

/// The start of the hour holding `t_ns`.
fn hour_start(t_ns: i128) -> i128 {
    t_ns.div_euclid(HOUR_NS as i128) * HOUR_NS as i128
}

fn loss(scope: &Scope, out: &mut Rows) {
    let mut lost: BTreeMap<(i128, LossReason), u64> = BTreeMap::new();
    for (record, _) in &scope.windows {
        let hour = hour_start(record.t_start_ns() as i128);
        for (reason, n) in &record.lost {
            *lost.entry((hour, *reason)).or_default() += n;
        }
    }
    for ((hour, reason), n) in lost {
        let row = vec![
            ("node", Value::String(scope.meta.node.clone())),
            ("hour", time_value(hour)),
            ("reason", Value::String(reason.name().into())),
            ("lost", json!(n)),
        ];
        if !out.push(row) {
            break;
        }
    }
}

fn cone_hours(scope: &Scope, out: &mut Rows) -> Result<()> {
    let mut seen: BTreeMap<(i128, String), (u64, u64)> = BTreeMap::new();
    scope.each_window(
        |r| r.cone_count > 0,
        |w| {
            for i in w.cones() {
                let c: ConeInstance = w.decode(i)?;
                let Some(t) = scope.event_time(w, c.t_start_ns) else {
                    continue;
                };
                let e = seen.entry((hour_start(t), c.cone_id)).or_default();
                e.0 += 1;
                e.1 += c.count;
            }
            Ok(true)
        },
    )?;
    for ((hour, cone), (matches, completions)) in seen {
        let row = vec![
            ("node", Value::String(scope.meta.node.clone())),
            ("hour", time_value(hour)),
            ("cone", Value::String(cone)),
            ("matches", json!(matches)),
            ("completions", json!(completions)),
        ];
        if !out.push(row) {
            break;
        }
    }
    Ok(())
}

fn egress(scope: &Scope, out: &mut Rows) -> Result<()> {
    #[derive(Default)]
    struct Egress {
        connects: u64,
        failed: u64,
        destinations: BTreeSet<Id128>,
        first: Option<i128>,
        last: Option<i128>,
    }
    let mut by_exe: HashMap<Option<String>, Egress> = HashMap::new();
    scope.each_window(
        |r| r.event_count > 0,
        |w| {
            for i in w.atoms() {
                let a: EventAtom = w.decode(i)?;
                if a.event_type != EventType::Connect {
                    continue;
                }
                let Some(t) = scope.event_time(w, a.t_ns) else {
                    continue;
                };
                let ip = w.dict_lookup(&a.object)?.is_some_and(|d| {
                    d.kind == DictKind::Flow
                        && !d.hashed
                        && ritma_schemas::display::flow_endpoint(&d.value).is_some()
                });
                if !ip {
                    continue;
                }
                let info = ActorInfo::of_event(w, &a)?;
                let e = by_exe.entry(info.exe).or_default();
                e.connects += 1;
                e.failed += u64::from(a.flags & atom_flags::FAILED != 0);
                e.destinations.insert(a.object);
                e.first = Some(e.first.map_or(t, |f| f.min(t)));
                e.last = Some(e.last.map_or(t, |l| l.max(t)));
            }
            Ok(true)
        },
    )?;
    let mut all: Vec<(Option<String>, Egress)> = by_exe.into_iter().collect();
    all.sort_by(|(a, x), (b, y)| {
        y.connects
            .cmp(&x.connects)
            .then_with(|| a.as_deref().unwrap_or("").cmp(b.as_deref().unwrap_or("")))
    });
    for (exe, e) in all {
        let row = vec![
            ("node", Value::String(scope.meta.node.clone())),
            ("exe", opt(exe)),
            ("connects", json!(e.connects)),
            ("failed", json!(e.failed)),
            ("destinations", json!(e.destinations.len())),
            ("first_seen", time_value(e.first.unwrap_or_default())),
            ("last_seen", time_value(e.last.unwrap_or_default())),
        ];
        if !out.push(row) {
            break;
        }
    }
    Ok(())
}

/// `all` holds every window of the node: a binary is new in `range` if its first sighting
/// in all of them is.
fn new_binaries(all: &Scope, range: &TimeRange, out: &mut Rows) -> Result<()> {
    struct First {
        t: i128,
        event: EventType,
        pid: u32,
        comm: Option<String>,
        actor: Id128,
        execs: u64,
    }
    let mut seen: HashMap<String, First> = HashMap::new();
    all.each_window(
        |r| r.event_count > 0,
        |w| {
            for i in w.atoms() {
                let a: EventAtom = w.decode(i)?;
                if !matches!(a.event_type, EventType::Exec | EventType::Present) {
                    continue;
                }
                let Some(d) = w.dict_lookup(&a.object)? else {
                    continue;
                };
                if d.kind != DictKind::Path {
                    continue;
                }
                let exec = u64::from(a.event_type == EventType::Exec);
                match seen.entry(dict_value(&d)) {
                    Entry::Occupied(mut e) => e.get_mut().execs += exec,
                    Entry::Vacant(e) => {
                        let info = ActorInfo::of_event(w, &a)?;
                        e.insert(First {
                            t: w.record.t_start_ns() as i128 + a.t_ns as i128,
                            event: a.event_type,
                            pid: info.record.pid,
                            comm: info.comm,
                            actor: a.actor,
                            execs: exec,
                        });
                    }
                }
            }
            Ok(true)
        },
    )?;
    let mut new: Vec<(String, First)> = seen
        .into_iter()
        .filter(|(_, f)| range.contains(f.t))
        .collect();
    new.sort_by(|(a, x), (b, y)| x.t.cmp(&y.t).then_with(|| a.cmp(b)));
    for (exe, f) in new {
        let row = vec![
            ("node", Value::String(all.meta.node.clone())),
            ("first_seen", time_value(f.t)),
            ("exe", Value::String(exe)),
            ("event", Value::String(f.event.name().into())),
            ("pid", json!(f.pid)),
            ("comm", opt(f.comm)),
            ("actor", Value::String(hex(&f.actor))),
            ("execs", json!(f.execs)),
        ];
        if !out.push(row) {
            break;
        }
    }
    Ok(())
}

/// `query hours`: the catalog and accounting entries of the hours overlapping the range, and
/// a bare row for any hour the store holds that its catalog does not list yet (the tail hour
/// of a run cut off before its index).
fn hours(args: &QueryArgs, out: &mut Rows) -> Result<()> {
    use ritma_sinks::catalog::{day_files, read_account, read_catalog};
    let (root, _) = node_root(args.store_dir(), args.node.as_deref())?;
    let (from_ns, to_ns) = parse_range(args.from.as_deref(), args.to.as_deref())?;
    let range = TimeRange::new(from_ns, to_ns);
    let in_range = |hour: u64| {
        let start = hour as u128 * HOUR_NS as u128;
        range.overlaps(start, start + HOUR_NS as u128)
    };
    let mut rows: BTreeMap<u64, Vec<(&'static str, Value)>> = BTreeMap::new();
    let days = day_files(&root, "catalog", "day.cbor.zst").map_err(|p| {
        anyhow!(
            "{}: not a catalog day file (YYYY/MM/DD/day.cbor.zst)",
            p.display()
        )
    })?;
    for day in days {
        if !(day * 24..(day + 1) * 24).any(in_range) {
            continue;
        }
        // Listed a moment ago; gone only if removed meanwhile.
        let Some(catalog) = read_catalog(&root, day)? else {
            continue;
        };
        let account = read_account(&root, day)?;
        for h in catalog.hours.iter().filter(|h| in_range(h.hour)) {
            let bytes = account
                .as_ref()
                .and_then(|a| a.hours.iter().find(|a| a.hour == h.hour))
                .map(|a| a.bytes());
            rows.insert(h.hour, hour_row(h, sealed_in_hour(&root, h), bytes));
        }
    }
    for dir in hour_dirs(&root)? {
        let rel = dir.strip_prefix(&root).unwrap_or(&dir);
        if let Some(hour) = WindowPaths::hour_of_dir(rel).filter(|&h| in_range(h)) {
            rows.entry(hour).or_insert_with(|| {
                vec![("hour", hour_value(hour)), ("state", json!("uncatalogued"))]
            });
        }
    }
    for row in rows.into_values() {
        if !out.push(row) {
            break;
        }
    }
    Ok(())
}

/// An hour as `query hours` names it: `2026-11-01T13:00Z`.
fn hour_value(hour: u64) -> Value {
    Value::String(format!("{}:00Z", ritma_sinks::retention::hour_label(hour)))
}

/// The windows an hour holds (or held, deleted): its checkpoints, or its deletion record's
/// leaves; the span of its window numbers if neither can be read. Fewer than the span where a
/// downtime left windows out (FORMAT.md §7.2).
fn sealed_in_hour(root: &Path, h: &ritma_schemas::catalog::CatalogHour) -> u64 {
    let hour_dir = ritma_sinks::catalog::hour_dir(h.hour);
    let counted = match h.state {
        ritma_schemas::catalog::HourState::Deleted => {
            ritma_sinks::retention::read_deletion(root, &hour_dir)
                .ok()
                .flatten()
                .map(|d| d.windows())
        }
        _ => std::fs::read_dir(root.join(&hour_dir).join("micro"))
            .ok()
            .map(|it| {
                it.filter_map(|e| e.ok()?.file_name().into_string().ok())
                    .filter(|n| n.starts_with('w') && n.ends_with(".sig"))
                    .count() as u64
            }),
    };
    counted.unwrap_or_else(|| h.window_span())
}

/// What `query hours` shows of one catalog entry: `windows` the windows it holds (or held),
/// and its bytes on disk, if accounted.
fn hour_row(
    h: &ritma_schemas::catalog::CatalogHour,
    windows: u64,
    bytes: Option<u64>,
) -> Vec<(&'static str, Value)> {
    let c = h.contents.as_ref();
    let mut types: Vec<(EventType, u64)> = c.map(|c| c.event_types.clone()).unwrap_or_default();
    // Most frequent first: the table shows the mix at a glance.
    types.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    let types: Vec<String> = types
        .iter()
        .map(|(t, n)| format!("{}={n}", event_type_name(*t)))
        .collect();
    let cones: Vec<String> = c
        .map(|c| c.cones.iter().map(|(id, n)| format!("{id}={n}")).collect())
        .unwrap_or_default();
    let opt = |v: Option<u64>| v.map_or(Value::Null, |v| json!(v));
    vec![
        ("hour", hour_value(h.hour)),
        ("state", json!(h.state.name())),
        ("windows", json!(windows)),
        ("events", json!(h.events)),
        ("lost", json!(h.lost_total())),
        ("late", opt(c.map(|c| c.late_events))),
        ("actors", opt(c.map(|c| c.actors))),
        (
            "mode",
            c.map_or(Value::Null, |c| {
                json!(format!("{:?}", c.capture_mode).to_lowercase())
            }),
        ),
        ("cones", json!(cones)),
        ("bytes", opt(bytes)),
        ("first_seq", opt(h.seq_range.map(|r| r.0))),
        ("last_seq", opt(h.seq_range.map(|r| r.1))),
        ("types", json!(types)),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_align_columns_and_show_absent_values_as_dashes() {
        let mut r = Rows::new(false, None);
        r.push(vec![("pid", json!(1)), ("comm", json!("systemd"))]);
        r.push(vec![("pid", json!(12345)), ("exe", json!("/bin/sh"))]);
        assert_eq!(
            r.render(),
            "PID    COMM     EXE\n1      systemd  -\n12345  -        /bin/sh\n"
        );
        r.json = true;
        assert_eq!(
            r.render(),
            "{\"comm\":\"systemd\",\"pid\":1}\n{\"exe\":\"/bin/sh\",\"pid\":12345}\n"
        );
    }

    #[test]
    fn flows_match_by_address_and_optional_port() {
        let v4 = [0, 2, 203, 0, 113, 9, 0x11, 0x5c]; // 203.0.113.9:4444
        let mut v6 = vec![0, 10];
        v6.extend_from_slice(
            &"2001:db8::1"
                .parse::<std::net::Ipv6Addr>()
                .unwrap()
                .octets(),
        );
        v6.extend_from_slice(&443u16.to_be_bytes());
        let m = |s: &str| flow_arg(s).unwrap();
        assert!(m("203.0.113.9").matches(&v4));
        assert!(m("203.0.113.9:4444").matches(&v4));
        assert!(!m("203.0.113.9:80").matches(&v4));
        assert!(!m("203.0.113.8").matches(&v4));
        assert!(m("2001:db8::1").matches(&v6));
        assert!(m("[2001:db8::1]:443").matches(&v6));
        assert!(!m("[2001:db8::1]:80").matches(&v6));
        assert!(!m("2001:db8::1").matches(&v4));
        assert!(!m("203.0.113.9").matches(&[0, 1, b'/', b'x']));
        assert!(flow_arg("example.com").is_err());
    }

    #[test]
    fn rows_stop_at_the_limit() {
        let mut r = Rows::new(true, Some(2));
        assert!(r.push(vec![("a", json!(1))]));
        assert!(!r.push(vec![("a", json!(2))]));
        assert!(!r.push(vec![("a", json!(3))]));
        assert_eq!(r.rows.len(), 2);
        assert!(r.cut);
    }
}
