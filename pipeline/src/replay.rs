//! `ritma replay`: recorded traces through the timely dataflow into RITMA_OUT.
//!
//! The timestamp is the window number. Worker 0 reads the traces, assigns each
//! event its window (its own, or the oldest open one if it arrives late) and feeds
//! the dataflow; the input's time is the oldest window still open on any node.
//!
//! canonicalize (sharded by process) → attribute + graph-edge (sharded by actor,
//! a window at a time in seq order) → window-merkle + store (sharded by node).
//! Everything a window holds is ordered by the data before it is hashed, so the
//! output is byte-identical for any number of workers.

use crate::latency::Latencies;
use crate::live_link::{LiveReceiver, Next};
use crate::store_writer::{HourWrite, StateWrite, StoreWriter, WindowWrite};
use crate::taint::taint_changes;
use anyhow::{bail, Result};
use ritma_operators::attribute::{ActorTable, ActorTableConfig, ExeFact};
use ritma_operators::canonicalize::{canonicalize, CanonicalEvent, EncodedArgv, RunContext};
use ritma_operators::capture_mode::ModeRaises;
use ritma_operators::cone_match::{builtin_cones, ConeDef, ConeMatcher};
use ritma_operators::graph_edge::EdgeTable;
use ritma_operators::hour_seal::HourSealer;
use ritma_operators::taint::{taint_flows, TaintChange};
use ritma_operators::triggers::TriggerDetectors;
use ritma_operators::window_merkle::{NodeLog, WindowContents};
use ritma_schemas::merkle::TreeHash;
use ritma_schemas::note::NoteSigner;
use ritma_schemas::records::Record as _;
use ritma_schemas::records::{
    ActorRecord, CaptureMode, ConeInstance, DictEntry, Edge, EdgeKind, EventAtom, HealthKind,
    HealthRecord, LossReason, RunMeta, StoreMeta,
};
use ritma_schemas::state::{
    ActorEntry, DataflowState, ExeEntry as SavedExe, FeedState, PartialEntry,
};
use ritma_schemas::{Hash32, Id128};
use ritma_sinks::cas::Cas;
use ritma_sinks::index::{HourIndexBuilder, IndexedWindow};
use ritma_sinks::keys::Keystore;
use ritma_sinks::store::{NodeStore, StoreLock, WindowPaths, FORMAT_VERSION};
use ritma_sources::raw::RawEvent;
use ritma_sources::trace::{
    scan_runs, BaselineStatus, BlobAssembly, CgroupEntry, TraceError, TraceItem, TraceReader,
};
use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use timely::dataflow::channels::pact::{Exchange as ExchangePact, Pipeline};
use timely::dataflow::operators::vec::{Broadcast, Map, Partition};
use timely::dataflow::operators::{Capability, Concat, Exchange as _, Operator, Probe};
use timely::dataflow::{InputHandle, ProbeHandle};

/// The version of the cone library windows are sealed with.
pub const CONE_LIB_VERSION: u32 = ritma_schemas::cone_library::CURRENT;
/// How far behind the source the dataflow may fall, in windows, before the source waits:
/// one window sealing while the next is fed (each window held in flight costs ~20 MiB at
/// 49k events per window; a second one bought no throughput, RESULTS 2026-12-05).
const MAX_LAG_WINDOWS: u64 = 1;
/// Most partial cone matches kept per node.
const MAX_PARTIAL_MATCHES: usize = 10_000;

pub struct ReplayConfig {
    pub traces: Vec<PathBuf>,
    pub out: PathBuf,
    pub workers: usize,
    /// A private key file for a single-node trace (default: the store's own key).
    pub key: Option<PathBuf>,
    /// How long after a window's end it stays open for late events.
    pub slack_ns: u64,
    pub mode: CaptureMode,
    /// How long a taint flow or seed lives after its last sighting, in ns.
    pub taint_ttl_ns: u64,
    /// A live run's metrics, told of each window sealed.
    pub metrics: Option<Arc<crate::metrics::RunMetrics>>,
    /// A store continued from the state saved at its last cut.
    pub resume: Option<Resume>,
    /// The traces are the store's own WAL: a state saved at a cut names where in it the
    /// restart goes on (the restart point, `wal/restart.cbor`).
    pub wal: bool,
}

/// A saved state to continue from (FORMAT.md §3.15), and where in the WAL the item
/// after it starts (`traces` then begins with that file).
pub struct Resume {
    pub state: DataflowState,
    pub digest: Hash32,
    pub from: WalPos,
}

impl ReplayConfig {
    /// The taint lifetime in windows (at least one).
    fn taint_ttl_windows(&self, window_len_ns: u64) -> u64 {
        (self.taint_ttl_ns / window_len_ns).max(1)
    }
}

/// What replay did.
#[derive(Debug, Default)]
pub struct ReplaySummary {
    pub events: u64,
    pub windows: u64,
    /// Events lost to corrupt trace frames (seq gaps).
    pub lost: u64,
    /// Events the trace's loss frames count (lost by the kernel or the recorder).
    pub recorded_lost: u64,
    pub nodes: Vec<String>,
    /// Seal latency of every (node, window): from the moment the source closed the
    /// window (the input moved past it) to its signed checkpoint being on disk.
    pub seal_latencies: Latencies,
    pub operators: OperatorStats,
}

/// The operators' counters, summed over workers and nodes. None of them is event loss
/// (every event is sealed), but each bounds what the matcher or the actor table saw.
#[derive(Clone, Copy, Debug, Default)]
pub struct OperatorStats {
    /// Partial cone matches that ran out of time, and that were dropped at the bound.
    pub cone_partials_expired: u64,
    pub cone_partials_shed: u64,
    /// Events of an actor the table did not hold (first sight or after eviction).
    pub actor_misses: u64,
    pub actors_evicted_exit: u64,
    pub actors_evicted_idle: u64,
    pub actors_evicted_capacity: u64,
}

impl ReplaySummary {
    /// The `q`-quantile (0..=1) of the seal latencies.
    pub fn seal_latency(&self, q: f64) -> Option<Duration> {
        self.seal_latencies.quantile(q)
    }
}

/// When the source closed each window, for seal latency.
/// Its memory stays bounded over a live run of any length.
#[derive(Default)]
struct SealClock {
    /// (input epoch after an advance, when): windows below the epoch closed then. Only
    /// the advances a window not yet sealed on every node can still need are kept.
    advances: VecDeque<(u64, Instant)>,
    /// When the input ended: the close of every window still open then.
    ended: Option<Instant>,
    /// Each node's last sealed window.
    sealed: Vec<Option<u64>>,
    latencies: Latencies,
}

impl SealClock {
    fn for_nodes(nodes: usize) -> Self {
        SealClock {
            sealed: vec![None; nodes],
            ..Default::default()
        }
    }

    fn advanced_to(&mut self, epoch: u64) {
        self.advances.push_back((epoch, Instant::now()));
    }

    /// `node` sealed `window`: its latency is counted, and returned when known.
    fn sealed(&mut self, node: usize, window: u64) -> Option<Duration> {
        let i = self.advances.partition_point(|(e, _)| *e <= window);
        let closed = self.advances.get(i).map(|(_, t)| *t).or(self.ended);
        let latency = closed.map(|t| t.elapsed());
        if let Some(l) = latency {
            self.latencies.record(l);
        }
        self.sealed[node] = Some(window);
        // Every later window of every node is above this: the advances up to it are done with.
        if let Some(Some(floor)) = self.sealed.iter().min() {
            while self.advances.front().is_some_and(|(e, _)| e <= floor) {
                self.advances.pop_front();
            }
        }
        latency
    }
}

/// A message from the source.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
enum SourceMsg {
    Event {
        node: u32,
        /// The run context (boot, clock offset) the raw event is read in.
        ctx: u32,
        window: u64,
        raw: RawEvent,
    },
    Lost {
        node: u32,
        window: u64,
        reason: LossReason,
        count: u64,
    },
    /// Cgroup paths or executable hashes, for the events of the node from `first_seq` on.
    Names {
        node: u32,
        window: u64,
        first_seq: u64,
        names: NodeNames,
    },
    /// A clock frame closed the node's `window`: it is sealed even if it holds nothing.
    /// `resumed`: capture was down before it, so the windows between the node's last sealed
    /// one and this are left out, except hours' last windows (FORMAT.md §7.2).
    Close {
        node: u32,
        window: u64,
        resumed: bool,
    },
    /// A sensor health observation, sealed in `window` (with its loss, if it counts one).
    Health {
        node: u32,
        window: u64,
        record: HealthRecord,
    },
    /// The cut after `window`, an hour's last: every operator saves its state after it
    /// (FORMAT.md §3.15). `feed` is the source's, before the item that crossed the cut,
    /// which starts at `pos` in the WAL.
    Cut {
        node: u32,
        window: u64,
        feed: Box<FeedState>,
        pos: Option<WalPos>,
    },
    /// A saved state's actor, for the attribution shard that holds it.
    RestoreActor {
        node: u32,
        window: u64,
        actor: Box<ActorEntry>,
    },
    /// A saved state's partial cone matches.
    RestoreCone {
        node: u32,
        window: u64,
        partials: Vec<PartialEntry>,
    },
    /// A saved state's live taint sightings: (from, to, window sighted), (seed, window sighted).
    RestoreTaint {
        node: u32,
        window: u64,
        flows: Vec<(Id128, Id128, u64)>,
        seeds: Vec<(Id128, u64)>,
    },
}

/// Where an item starts in a WAL file: a restart from the state saved before the item
/// feeds the WAL from there.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct WalPos {
    pub file: PathBuf,
    pub offset: u64,
}

/// A live run's item, written to the WAL at `pos` before it was sent.
pub struct LiveItem {
    pub item: TraceItem,
    pub pos: WalPos,
}

/// The cgroup paths (by id) and executables (by dev, ino) a saved state holds.
type SavedNames = (Vec<(u64, Vec<u8>)>, Vec<SavedExe>);

/// A share of the state saved at a cut, on its way to the node's sealer.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
enum StatePiece {
    Feed(Box<FeedState>, Option<WalPos>),
    /// One attribution shard's actors; the first shard's also the cgroup paths and the
    /// executables (every shard holds them all).
    Actors {
        actors: Vec<ActorEntry>,
        names: Option<SavedNames>,
    },
    Cone(Vec<PartialEntry>),
    /// One worker's share of the node's live taint sightings.
    Taint {
        flows: Vec<(Id128, Id128, u64)>,
        seeds: Vec<(Id128, u64)>,
    },
}

/// A canonical event or a loss, on its way to attribution (events are the common case,
/// boxed: every operator and exchange on the way moves the message, not the event).
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
enum CanonMsg {
    Event {
        node: u32,
        event: Box<CanonicalEvent>,
    },
    Lost {
        node: u32,
        window: u64,
        reason: LossReason,
        count: u64,
    },
    Names {
        node: u32,
        window: u64,
        first_seq: u64,
        names: NodeNames,
    },
    Health {
        node: u32,
        window: u64,
        record: HealthRecord,
    },
    /// The cut after `window` (every shard gets it; the source's state rides along).
    Cut {
        node: u32,
        window: u64,
        feed: Box<FeedState>,
        pos: Option<WalPos>,
    },
    RestoreActor {
        node: u32,
        window: u64,
        actor: Box<ActorEntry>,
    },
}

/// What a node's trace names besides events: every attribute shard learns them.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
enum NodeNames {
    /// (cgroup id, path).
    Cgroups(Vec<CgroupEntry>),
    /// ((dev, inode), what is known of the executable).
    Exes(Vec<((u64, u64), ExeFact)>),
}

impl CanonMsg {
    fn window(&self) -> u64 {
        match self {
            CanonMsg::Event { event, .. } => event.window,
            CanonMsg::Lost { window, .. }
            | CanonMsg::Names { window, .. }
            | CanonMsg::Health { window, .. }
            | CanonMsg::Cut { window, .. }
            | CanonMsg::RestoreActor { window, .. } => *window,
        }
    }

    fn node(&self) -> u32 {
        match self {
            CanonMsg::Event { node, .. }
            | CanonMsg::Lost { node, .. }
            | CanonMsg::Names { node, .. }
            | CanonMsg::Health { node, .. }
            | CanonMsg::Cut { node, .. }
            | CanonMsg::RestoreActor { node, .. } => *node,
        }
    }

    /// Attribution order within a window: a node's names before the events they
    /// name (by seq), losses last.
    fn attribution_order(&self) -> (u32, u8, u64, u8) {
        match self {
            CanonMsg::Names {
                node, first_seq, ..
            } => (*node, 0, *first_seq, 0),
            CanonMsg::Event { node, event } => (*node, 0, event.atom.seq, 1),
            CanonMsg::Lost { node, .. } | CanonMsg::Health { node, .. } => (*node, 1, 0, 0),
            CanonMsg::RestoreActor { node, .. } => (*node, 0, 0, 0),
            CanonMsg::Cut { node, .. } => (*node, 2, 0, 0),
        }
    }
}

/// What the cone matcher of a node needs of one event: the event itself when some cone
/// step can take it, else only its time (`ConeMatcher::could_match`), which is most events.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
enum ConeMsg {
    Event {
        node: u32,
        event: Box<CanonicalEvent>,
    },
    Tick {
        node: u32,
        window: u64,
        seq: u64,
        wall_ns: u64,
    },
    /// The window must be sealed: the cone matcher gives it an empty part (`resumed`: see
    /// `SourceMsg::Close`).
    Close {
        node: u32,
        window: u64,
        resumed: bool,
    },
    /// The cut after `window`: the matcher saves its partial matches after it.
    Cut { node: u32, window: u64 },
    /// A saved state's partial matches.
    Restore {
        node: u32,
        window: u64,
        partials: Vec<PartialEntry>,
    },
}

impl ConeMsg {
    fn window(&self) -> u64 {
        match self {
            ConeMsg::Event { event, .. } => event.window,
            ConeMsg::Tick { window, .. }
            | ConeMsg::Close { window, .. }
            | ConeMsg::Cut { window, .. }
            | ConeMsg::Restore { window, .. } => *window,
        }
    }

    fn node(&self) -> u32 {
        match self {
            ConeMsg::Event { node, .. }
            | ConeMsg::Tick { node, .. }
            | ConeMsg::Close { node, .. }
            | ConeMsg::Cut { node, .. }
            | ConeMsg::Restore { node, .. } => *node,
        }
    }

    fn order(&self) -> (u32, u64) {
        match self {
            ConeMsg::Event { node, event } => (*node, event.atom.seq),
            ConeMsg::Tick { node, seq, .. } => (*node, *seq),
            ConeMsg::Close { node, .. } | ConeMsg::Cut { node, .. } => (*node, u64::MAX),
            ConeMsg::Restore { node, .. } => (*node, 0),
        }
    }
}

/// Canonicalize's outputs, split into one stream each so no consumer clones another's data.
enum Routed {
    /// To attribution, sharded by actor.
    Attr(CanonMsg),
    /// To cone matching, sharded by node.
    Cone(ConeMsg),
    /// To every attribution shard.
    Names(CanonMsg),
    /// A saved state's live taint sightings, into the taint relation.
    Taint {
        node: u32,
        flows: Vec<(Id128, Id128, u64)>,
        seeds: Vec<(Id128, u64)>,
    },
}

impl Routed {
    fn port(&self) -> u64 {
        match self {
            Routed::Attr(_) => 0,
            Routed::Cone(_) => 1,
            Routed::Names(_) => 2,
            Routed::Taint { .. } => 3,
        }
    }
}

/// Attribution's outputs: window parts to seal, and the taint flows of their edges with
/// the seeds of their detector cones (small: the parts are not copied for taint).
#[allow(clippy::large_enum_variant)]
#[derive(Clone)]
enum AttrOut {
    Part(WindowPart),
    Taint {
        node: u32,
        flows: Vec<(Id128, Id128)>,
        seeds: Vec<Id128>,
    },
    /// A node's cut (the hour's first window) reached this shard, at the window before it:
    /// the taint relation saves its live sightings there too.
    Cut {
        node: u32,
        cut: u64,
    },
}

/// An event's wall-clock time, as cone bounds measure it.
fn event_wall(window_len_ns: u64, e: &CanonicalEvent) -> u64 {
    (e.window as i128 * window_len_ns as i128 + e.atom.t_ns as i128).max(0) as u64
}

/// One shard's share of one node's window.
#[derive(Clone, Debug, Default, serde::Serialize, serde::Deserialize)]
struct WindowPart {
    node: u32,
    window: u64,
    dict: Vec<DictEntry>,
    actors: Vec<ActorRecord>,
    atoms: Vec<EventAtom>,
    edges: Vec<Edge>,
    cones: Vec<ConeInstance>,
    lost: Vec<(LossReason, u64)>,
    health: Vec<HealthRecord>,
    /// Actors that completed a cone match: taint seeds.
    seeds: Vec<Id128>,
    /// Argv entries, each with its event's actor: sealed if the actor is raised to Thick.
    thick: Vec<(Id128, EncodedArgv)>,
    /// Changes of the taint relation at this window.
    taint: Vec<TaintChange>,
    /// Shares of the state saved after this window (an hour's last), at a cut.
    state: Vec<StatePiece>,
    /// Capture was down before this window (see `SourceMsg::Close`).
    resumed: bool,
}

impl WindowPart {
    fn at(node: u32, window: u64) -> Self {
        WindowPart {
            node,
            window,
            ..Default::default()
        }
    }
}

/// Records held per window until the frontier passes it, with the capability to emit there.
struct Stash<D>(BTreeMap<u64, (Capability<u64>, Vec<D>)>);

impl<D> Stash<D> {
    fn new() -> Self {
        Stash(BTreeMap::new())
    }

    /// Holds `item` for window `w`; `cap` makes the window's capability on first use.
    fn push(&mut self, w: u64, item: D, cap: impl FnOnce() -> Capability<u64>) {
        self.0
            .entry(w)
            .or_insert_with(|| (cap(), Vec::new()))
            .1
            .push(item);
    }

    /// The oldest held window, once `open(w)` says no more input can arrive for it.
    fn pop_closed(
        &mut self,
        open: impl Fn(&u64) -> bool,
    ) -> Option<(u64, Capability<u64>, Vec<D>)> {
        let (&w, _) = self.0.first_key_value()?;
        if open(&w) {
            return None;
        }
        let (cap, items) = self.0.remove(&w).expect("first key");
        Some((w, cap, items))
    }
}

/// SplitMix64's finaliser: spreads keys over workers (DESIGN: not raw low bits).
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// The exchange key of a node's per-node operators (cone-match, window-merkle): nodes
/// go round-robin from worker 1 on, as worker 0 also runs the source.
fn node_route(node: u32) -> u64 {
    node as u64 + 1
}

fn route_source(m: &SourceMsg) -> u64 {
    match m {
        SourceMsg::Event { node, raw, .. } => {
            mix(mix(*node as u64 ^ raw.task.start_ns) ^ raw.task.pid as u64)
        }
        SourceMsg::Lost { node, .. }
        | SourceMsg::Health { node, .. }
        | SourceMsg::Names { node, .. }
        | SourceMsg::Close { node, .. }
        | SourceMsg::Cut { node, .. }
        | SourceMsg::RestoreActor { node, .. }
        | SourceMsg::RestoreCone { node, .. }
        | SourceMsg::RestoreTaint { node, .. } => mix(*node as u64),
    }
}

fn route_actor(m: &CanonMsg) -> u64 {
    match m {
        CanonMsg::Event { event, .. } => mix(u64::from_le_bytes(
            event.atom.actor[..8].try_into().expect("8 bytes"),
        )),
        // An actor restored goes to the shard its events go to.
        CanonMsg::RestoreActor { actor, .. } => mix(u64::from_le_bytes(
            actor.record.actor[..8].try_into().expect("8 bytes"),
        )),
        _ => mix(m.node() as u64),
    }
}

/// Assigns windows to one node's events and decides when windows close.
struct Windowing {
    ctx: RunContext,
    slack_ns: u64,
    oldest_open: Option<u64>,
    max_wall: u64,
}

impl Windowing {
    /// The window an event is sealed in: its own, or the oldest open one if its own closed.
    fn assign(&mut self, mono_ns: u64, floor: u64) -> u64 {
        let own = self.ctx.window_of(mono_ns);
        let wall = self.ctx.wall_ns(mono_ns);
        // Before the first event nothing has closed: windows within the slack are open.
        let first_open = wall.saturating_sub(self.slack_ns) / self.ctx.window_len_ns;
        let open = *self.oldest_open.get_or_insert(first_open.max(floor));
        let window = own.max(open);
        self.max_wall = self.max_wall.max(wall);
        // Every window ending at least `slack` before the newest time seen is closed.
        let closed_below = self.max_wall.saturating_sub(self.slack_ns) / self.ctx.window_len_ns;
        self.oldest_open = Some(open.max(closed_below));
        window
    }

    /// The node's time reached `mono_ns` without an event (a clock frame): closes the
    /// windows that ended at least the slack before it and returns them.
    fn clock(&mut self, mono_ns: u64, floor: u64) -> std::ops::Range<u64> {
        let wall = self.ctx.wall_ns(mono_ns);
        let first_open = wall.saturating_sub(self.slack_ns) / self.ctx.window_len_ns;
        let open = *self.oldest_open.get_or_insert(first_open.max(floor));
        self.max_wall = self.max_wall.max(wall);
        let closed_below = self.max_wall.saturating_sub(self.slack_ns) / self.ctx.window_len_ns;
        let now_open = open.max(closed_below);
        self.oldest_open = Some(now_open);
        open..now_open
    }
}

/// The nodes of the input, in first-seen order (each one store), and the contexts of
/// their runs: a node that runs again (a restart, a reboot) continues its node log.
#[derive(Default)]
struct Nodes {
    names: Vec<String>,
    /// Every distinct run context (boot, clock offset) with its node, in first-seen order.
    runs: Vec<(u32, RunContext)>,
}

impl Nodes {
    fn add(&mut self, meta: RunMeta) {
        let node = match self.names.iter().position(|n| *n == meta.node) {
            Some(i) => i as u32,
            None => {
                self.names.push(meta.node.clone());
                self.names.len() as u32 - 1
            }
        };
        if run_slot(&self.runs, &meta).is_none() {
            self.runs.push((node, RunContext::from_meta(&meta)));
        }
    }
}

/// The slot of a run's context among `runs` (its node, boot and clock offset).
fn run_slot(runs: &[(u32, RunContext)], meta: &RunMeta) -> Option<u32> {
    runs.iter()
        .position(|(_, c)| {
            (c.node.as_str(), c.boot_id, c.wall_minus_mono_ns)
                == (meta.node.as_str(), meta.boot_id, meta.wall_minus_mono_ns)
        })
        .map(|i| i as u32)
}

fn scan_nodes(traces: &[PathBuf]) -> Result<Nodes> {
    let mut nodes = Nodes::default();
    for t in traces {
        for meta in scan_runs(t)? {
            nodes.add(meta);
        }
    }
    if nodes.names.is_empty() {
        bail!(
            "no runs in {}",
            traces
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    nodes.check_window_len()?;
    Ok(nodes)
}

impl Nodes {
    /// The window length of every run (`check_window_len`).
    fn window_len_ns(&self) -> u64 {
        self.runs[0].1.window_len_ns
    }

    fn check_window_len(&self) -> Result<()> {
        let len = self.window_len_ns();
        if let Some((_, c)) = self.runs.iter().find(|(_, c)| c.window_len_ns != len) {
            bail!("a run of node {} uses windows of {} ns, node {} of {len} ns: one store needs one window length", c.node, c.window_len_ns, self.names[0]);
        }
        Ok(())
    }
}

/// Where node `name`'s tree lives: the store itself for one node, `nodes/<name>` for several.
pub fn node_root(out: &Path, name: &str, multi: bool) -> PathBuf {
    if multi {
        out.join("nodes").join(name)
    } else {
        out.to_owned()
    }
}

fn load_signers(cfg: &ReplayConfig, nodes: &Nodes) -> Result<Vec<NoteSigner>> {
    let multi = nodes.names.len() > 1;
    if cfg.key.is_some() && multi {
        bail!("--key names one key, but the traces hold {} nodes: give each node its key with `ritma keys init --out {}/nodes/<node> --node <node>`", nodes.names.len(), cfg.out.display());
    }
    nodes
        .names
        .iter()
        .map(|name| {
            let signer = match &cfg.key {
                Some(path) => ritma_sinks::keys::load_private_key(path)?,
                None => {
                    let root = node_root(&cfg.out, name, multi);
                    let ks = Keystore::for_store(&root);
                    if !ks.private_path().exists() {
                        bail!("no signing key for node {name} at {}: run `ritma keys init --out {} --node {name}` or pass --key", ks.private_path().display(), root.display());
                    }
                    ks.load_signer()?
                }
            };
            if signer.name() != format!("ritma/{name}") {
                bail!("the signing key is for `{}`, but the trace's node is `{name}`", signer.name());
            }
            Ok(signer)
        })
        .collect()
}

pub fn replay(cfg: ReplayConfig) -> Result<ReplaySummary> {
    let mut nodes = scan_nodes(&cfg.traces)?;
    if let Some(r) = &cfg.resume {
        nodes.add(r.state.feed.run.clone());
    }
    let lock = StoreLock::acquire(&cfg.out, &StoreLock::lock_dir())?;
    start(&cfg, nodes, ItemSource::Traces(cfg.traces.clone()), lock)?.finish()
}

/// Starts the dataflow of a live run on one node (`meta`): worker 0 feeds the earlier
/// runs' WAL (`cfg.traces`, sealed again: the store already holds what they sealed),
/// then what the capture loop sends on `items` until it hangs up. The caller holds
/// the store's lock.
pub fn start_live(
    cfg: &ReplayConfig,
    meta: RunMeta,
    items: LiveReceiver,
    lock: StoreLock,
) -> Result<Sealing> {
    let mut nodes = if cfg.traces.is_empty() {
        Nodes::default()
    } else {
        scan_nodes(&cfg.traces)?
    };
    if let Some(r) = &cfg.resume {
        nodes.add(r.state.feed.run.clone());
    }
    if let Some(other) = nodes.names.iter().find(|n| **n != meta.node) {
        bail!(
            "{}: the WAL holds node {other}, this run is node {}",
            cfg.out.display(),
            meta.node
        );
    }
    nodes.add(meta);
    nodes.check_window_len()?;
    let source = ItemSource::Live {
        wal: cfg.traces.clone(),
        items: Mutex::new(Some(items)),
    };
    start(cfg, nodes, source, lock)
}

/// Where worker 0 reads the items it feeds.
enum ItemSource {
    Traces(Vec<PathBuf>),
    /// Earlier runs' WAL files, then the live run's items.
    Live {
        wal: Vec<PathBuf>,
        items: Mutex<Option<LiveReceiver>>,
    },
}

/// A running dataflow: `finish` waits for it to seal everything it was fed.
pub struct Sealing {
    guards: timely::communication::WorkerGuards<Result<FeedCounts, String>>,
    names: Arc<Vec<String>>,
    errors: Arc<Mutex<Vec<String>>>,
    window_counts: Arc<Mutex<(u64, u64)>>,
    clock: Arc<Mutex<SealClock>>,
    stats: Arc<Mutex<OperatorStats>>,
    /// Held until the sealing is over: one writer per store.
    _lock: StoreLock,
}

impl Sealing {
    /// The first sealing error, if one happened (the dataflow then stops taking input).
    pub fn error(&self) -> Option<String> {
        self.errors.lock().expect("errors").first().cloned()
    }

    pub fn finish(self) -> Result<ReplaySummary> {
        let mut summary = ReplaySummary {
            nodes: self.names.to_vec(),
            ..Default::default()
        };
        for r in self.guards.join() {
            match r {
                Ok(Ok(c)) => {
                    summary.events += c.events;
                    summary.lost += c.gap_lost;
                    summary.recorded_lost += c.recorded_lost;
                }
                Ok(Err(e)) => bail!("{e}"),
                Err(panic) => bail!("a dataflow worker failed: {panic}"),
            }
        }
        if let Some(e) = self.errors.lock().expect("errors").first() {
            bail!("{e}");
        }
        summary.windows = self.window_counts.lock().expect("counts").0;
        summary.seal_latencies = std::mem::take(&mut self.clock.lock().expect("clock").latencies);
        summary.operators = *self.stats.lock().expect("stats");
        Ok(summary)
    }
}

/// A store is continued with the taint lifetime it was sealed with: another one would
/// raise capture modes differently, and the windows sealed again would not match.
fn check_taint_ttl(root: &Path, want: &StoreMeta) -> Result<()> {
    let path = root.join("_meta/store.cbor");
    let Ok(bytes) = std::fs::read(&path) else {
        return Ok(());
    };
    let Ok(found) = <StoreMeta as ritma_schemas::records::Record>::decode(&bytes) else {
        return Ok(()); // NodeStore::open names what is wrong with it
    };
    if found.taint_ttl_windows != want.taint_ttl_windows
        && found.window_len_ns == want.window_len_ns
    {
        let sealed_s =
            found.taint_ttl_windows as u128 * found.window_len_ns as u128 / 1_000_000_000;
        bail!(
            "{}: sealed with a taint lifetime of {} windows ({sealed_s} s), not {}: continue it with --taint-ttl {sealed_s}",
            root.display(),
            found.taint_ttl_windows,
            want.taint_ttl_windows
        );
    }
    Ok(())
}

fn start(cfg: &ReplayConfig, nodes: Nodes, source: ItemSource, lock: StoreLock) -> Result<Sealing> {
    let signers = load_signers(cfg, &nodes)?;
    let multi = nodes.names.len() > 1;
    let mut stores = Vec::new();
    // A store that already holds windows is resumed: sealing starts again at its first
    // window, and every file already there must come out byte for byte the same.
    let mut resume_at = Vec::new();
    for (i, name) in nodes.names.iter().enumerate() {
        let root = node_root(&cfg.out, name, multi);
        let meta = StoreMeta {
            format_version: FORMAT_VERSION,
            node: name.clone(),
            window_len_ns: nodes.window_len_ns(),
            cone_lib_version: CONE_LIB_VERSION,
            taint_ttl_windows: cfg.taint_ttl_windows(nodes.window_len_ns()),
        };
        check_taint_ttl(&root, &meta)?;
        let store = NodeStore::open(&root, meta)?;
        // A resume seals again from the store's first window; hours retention deleted
        // would come back, so such a store is not continued (but from a saved state).
        if cfg.resume.is_none() && ritma_sinks::retention::has_deletions(&root)? {
            bail!(
                "{}: retention deleted hours of this store, so it cannot be sealed again from its trace (the trace starts before them): replay, or `ritma run`, into a new store",
                root.display()
            );
        }
        let first = store.first_sealed_window()?;
        resume_at.push((first, store.last_sealed_window()?));
        store.write_schema(ritma_schemas::FORMAT_SPEC)?;
        store.write_cone_library(
            CONE_LIB_VERSION,
            &ritma_schemas::cone_library::library(CONE_LIB_VERSION).expect("the current library"),
        )?;
        // The store names its keys, so it can be verified with nothing else present.
        let keys = Keystore::for_store(&root);
        keys.init_public(name, &signers[i])?;
        let history = keys.load_history(name)?;
        if history.key_at(signers[i].key_id(), 0).is_none()
            && !history
                .spans()
                .iter()
                .any(|s| s.verifier == signers[i].verifier())
        {
            bail!(
                "{}: the signing key {:08x} is not in this store's key history",
                root.display(),
                signers[i].key_id()
            );
        }
        // Last: a store.cbor means the store was set up whole.
        store.write_meta()?;
        stores.push(store);
    }
    // Every run's context, for canonicalize (its boot and clock offset).
    let ctxs: Arc<Vec<RunContext>> = Arc::new(nodes.runs.iter().map(|(_, c)| c.clone()).collect());
    let window_len_ns = nodes.window_len_ns();
    let errors: Arc<Mutex<Vec<String>>> = Arc::new(Mutex::new(Vec::new()));
    let clock = Arc::new(Mutex::new(SealClock::for_nodes(stores.len())));
    let mut writers = Vec::new();
    // The saved state a node continues from, and the windows it already holds.
    let mut restored: Vec<Option<(Box<DataflowState>, Hash32)>> = vec![None; stores.len()];
    let mut floors = vec![0u64; stores.len()];
    if let Some(r) = &cfg.resume {
        let n = nodes
            .names
            .iter()
            .position(|n| *n == r.state.node)
            .expect("added");
        restored[n] = Some((Box::new(r.state.clone()), r.digest));
        floors[n] = r.state.cut;
    }
    let floors = Arc::new(floors);
    let resume = cfg.resume.as_ref().map(|r| {
        (
            nodes
                .names
                .iter()
                .position(|n| *n == r.state.node)
                .expect("added"),
            r.state.clone(),
            r.from.clone(),
        )
    });
    let positions = cfg.wal;
    for (node, ((store, (resume_at, last_sealed)), restored)) in
        stores.into_iter().zip(resume_at).zip(restored).enumerate()
    {
        let (clock, metrics) = (clock.clone(), cfg.metrics.clone());
        let written = move |w| {
            let latency = clock.lock().expect("clock").sealed(node, w);
            if let Some(m) = &metrics {
                m.sealed(w, latency);
            }
        };
        writers.push(Some((
            StoreWriter::spawn(store, last_sealed, errors.clone(), written)?,
            resume_at,
            restored,
        )));
    }
    let shared = Arc::new(Mutex::new((signers, writers)));
    let source = Arc::new(source);
    let (slack_ns, mode) = (cfg.slack_ns, cfg.mode);
    let taint_ttl = cfg.taint_ttl_windows(window_len_ns);
    let window_counts: Arc<Mutex<(u64, u64)>> = Arc::new(Mutex::new((0, 0)));
    let stats: Arc<Mutex<OperatorStats>> = Arc::default();
    let stats2 = stats.clone();
    let names = Arc::new(nodes.names.clone());
    let roots: Vec<PathBuf> = nodes
        .names
        .iter()
        .map(|name| node_root(&cfg.out, name, multi))
        .collect();

    let runs = nodes.runs.clone();
    let run_metrics = cfg.metrics.clone();
    let (e2, wc2, names2, clock2) = (
        errors.clone(),
        window_counts.clone(),
        names.clone(),
        clock.clone(),
    );
    let guards = timely::execute(timely::Config::process(cfg.workers.max(1)), move |worker| {
        let index = worker.index();
        let mut input: InputHandle<u64, _> = InputHandle::new();
        let probe = ProbeHandle::new();
        let (ctxs, shared, errors, window_counts, clock) = (ctxs.clone(), shared.clone(), e2.clone(), wc2.clone(), clock2.clone());
        let clock_feed = clock.clone();
        let errors_feed = errors.clone();
        let (stats_cone, stats_attr) = (stats2.clone(), stats2.clone());
        let metrics_cone = run_metrics.clone();
        let ctxs_canon = ctxs.clone();
        let names_merkle = names2.clone();
        let floors = floors.clone();
        worker.dataflow::<u64, _, _>(|scope| {
            let cone_defs: Vec<ConeDef> = builtin_cones();
            let mut routed = input
                .to_stream(scope)
                .container::<Vec<SourceMsg>>()
                .exchange(route_source)
                .flat_map(move |m| {
                    let (first, cone) = match m {
                        SourceMsg::Event { node, ctx, window, raw } => {
                            let ctx = &ctxs_canon[ctx as usize];
                            let event = Box::new(canonicalize(ctx, window, raw));
                            let cone = if ConeMatcher::could_match(&cone_defs, &event) {
                                ConeMsg::Event { node, event: event.clone() }
                            } else {
                                ConeMsg::Tick { node, window, seq: event.atom.seq, wall_ns: event_wall(window_len_ns, &event) }
                            };
                            (Routed::Attr(CanonMsg::Event { node, event }), Some(Routed::Cone(cone)))
                        }
                        SourceMsg::Lost { node, window, reason, count } => (Routed::Attr(CanonMsg::Lost { node, window, reason, count }), None),
                        SourceMsg::Names { node, window, first_seq, names } => (Routed::Names(CanonMsg::Names { node, window, first_seq, names }), None),
                        SourceMsg::Close { node, window, resumed } => (Routed::Cone(ConeMsg::Close { node, window, resumed }), None),
                        SourceMsg::Health { node, window, record } => (Routed::Attr(CanonMsg::Health { node, window, record }), None),
                        SourceMsg::Cut { node, window, feed, pos } => (Routed::Names(CanonMsg::Cut { node, window, feed, pos }), Some(Routed::Cone(ConeMsg::Cut { node, window }))),
                        SourceMsg::RestoreActor { node, window, actor } => (Routed::Attr(CanonMsg::RestoreActor { node, window, actor }), None),
                        SourceMsg::RestoreCone { node, window, partials } => (Routed::Cone(ConeMsg::Restore { node, window, partials }), None),
                        SourceMsg::RestoreTaint { node, flows, seeds, .. } => (Routed::Taint { node, flows, seeds }, None),
                    };
                    std::iter::once(first).chain(cone)
                })
                .partition(4, |r| (r.port(), r))
                .into_iter();
            let (Some(canon), Some(cone_input), Some(names), Some(restored_taint)) = (routed.next(), routed.next(), routed.next(), routed.next()) else {
                unreachable!("partition makes four streams");
            };
            let canon = canon.flat_map(|r| match r { Routed::Attr(m) => Some(m), _ => None });
            let cone_input = cone_input.flat_map(|r| match r { Routed::Cone(m) => Some(m), _ => None });
            // Every attribute shard needs every cgroup path and executable hash.
            let names = names.flat_map(|r| match r { Routed::Names(m) => Some(m), _ => None }).broadcast();

            let cone_parts = cone_input.unary_frontier::<timely::container::CapacityContainerBuilder<Vec<WindowPart>>, _, _, _>(
                ExchangePact::new(|m: &ConeMsg| node_route(m.node())),
                "cone-match",
                move |_default_cap, _info| {
                    let mut stash: Stash<ConeMsg> = Stash::new();
                    let mut matchers: HashMap<u32, ConeMatcher> = HashMap::new();
                    let cones: Vec<ConeDef> = builtin_cones();
                    // The matchers' shed count already told to the run's metrics.
                    let mut shed_reported = 0u64;
                    move |(input, frontier), output| {
                        input.for_each(|cap, data| {
                            for m in data.drain(..) {
                                let w = m.window();
                                stash.push(w, m, || cap.delayed(&w, output.output_index()));
                            }
                        });
                        while let Some((w, cap, mut msgs)) = stash.pop_closed(|w| frontier.less_equal(w)) {
                            // A node's events in seq order: matching is a sequence.
                            msgs.sort_by_key(ConeMsg::order);
                            let mut by_node: BTreeMap<u32, WindowPart> = BTreeMap::new();
                            let mut cuts = Vec::new();
                            for m in msgs {
                                let node = m.node();
                                let matcher = matchers.entry(node).or_insert_with(|| ConeMatcher::new(cones.clone(), MAX_PARTIAL_MATCHES, window_len_ns));
                                let e = match m {
                                    ConeMsg::Tick { wall_ns, .. } => {
                                        matcher.expire(wall_ns);
                                        continue;
                                    }
                                    ConeMsg::Close { resumed, .. } => {
                                        by_node.entry(node).or_insert_with(|| WindowPart::at(node, w)).resumed |= resumed;
                                        continue;
                                    }
                                    ConeMsg::Cut { .. } => {
                                        by_node.entry(node).or_insert_with(|| WindowPart::at(node, w));
                                        cuts.push(node);
                                        continue;
                                    }
                                    ConeMsg::Restore { partials, .. } => {
                                        // Checked against this library when the state was loaded.
                                        if let Err(e) = matcher.restore(partials) {
                                            eprintln!("ritma: restoring partial cone matches: {e}");
                                        }
                                        continue;
                                    }
                                    ConeMsg::Event { event, .. } => event,
                                };
                                let e = &*e;
                                for m in matcher.push(e, event_wall(window_len_ns, e)) {
                                    let part = by_node.entry(node).or_insert_with(|| WindowPart::at(node, w));
                                    part.cones.push(m.instance);
                                    part.seeds.push(e.atom.actor);
                                }
                            }
                            // The state after the window, at a cut.
                            for node in cuts {
                                let partials = matchers.get(&node).map(ConeMatcher::export).unwrap_or_default();
                                by_node.entry(node).or_insert_with(|| WindowPart::at(node, w)).state.push(StatePiece::Cone(partials));
                            }
                            let mut session = output.session(&cap);
                            for (_, part) in by_node {
                                session.give(part);
                            }
                            // Shedding at the bound blinds multi-step cones: a live run shows it as it happens.
                            if let Some(m) = &metrics_cone {
                                let shed: u64 = matchers.values().map(|x| x.stats.shed).sum();
                                m.cone_partials_shed(shed.saturating_sub(shed_reported));
                                shed_reported = shed;
                            }
                        }
                        if frontier.is_empty() {
                            let mut s = stats_cone.lock().expect("stats");
                            for m in matchers.values_mut() {
                                s.cone_partials_expired += std::mem::take(&mut m.stats.expired);
                                s.cone_partials_shed += std::mem::take(&mut m.stats.shed);
                            }
                            shed_reported = 0;
                        }
                    }
                },
            );

            let attributed = canon.binary_frontier::<_, timely::container::CapacityContainerBuilder<Vec<AttrOut>>, _, _, _, _>(
                names,
                ExchangePact::new(route_actor),
                Pipeline,
                "attribute+graph-edge",
                move |_default_cap, _info| {
                    let shard = index;
                    let mut stash: Stash<CanonMsg> = Stash::new();
                    let mut tables: HashMap<u32, (ActorTable, EdgeTable, TriggerDetectors)> = HashMap::new();
                    let detector_cones = builtin_cones();
                    let new_tables = move || (ActorTable::new(ActorTableConfig::default()), EdgeTable::new(), TriggerDetectors::new(&detector_cones));
                    move |(input, frontier), (names_input, names_frontier), output| {
                        input.for_each(|cap, data| {
                            for m in data.drain(..) {
                                let w = m.window();
                                stash.push(w, m, || cap.delayed(&w, output.output_index()));
                            }
                        });
                        names_input.for_each(|cap, data| {
                            for m in data.drain(..) {
                                let w = m.window();
                                stash.push(w, m, || cap.delayed(&w, output.output_index()));
                            }
                        });
                        while let Some((w, cap, mut msgs)) = stash.pop_closed(|w| frontier.less_equal(w) || names_frontier.less_equal(w)) {
                            // One actor's events in seq order, whatever the arrival order.
                            msgs.sort_by_key(CanonMsg::attribution_order);
                            let mut by_node: BTreeMap<u32, WindowPart> = BTreeMap::new();
                            let mut cuts: BTreeMap<u32, (Box<FeedState>, Option<WalPos>)> = BTreeMap::new();
                            for m in msgs {
                                match m {
                                    CanonMsg::Event { node, mut event } => {
                                        let part = by_node.entry(node).or_insert_with(|| WindowPart::at(node, w));
                                        let (actors, edges, detectors) = tables.entry(node).or_insert_with(&new_tables);
                                        let attributed = actors.push(&event);
                                        // Full capture: the exec names the bytes the store keeps.
                                        if let Some(x) = attributed.exe.filter(|x| x.kept) {
                                            event.atom.payload_ref = Some(x.hash);
                                        }
                                        for c in detectors.push(&event, &attributed) {
                                            part.cones.push(c);
                                            part.seeds.push(event.atom.actor);
                                        }
                                        part.dict.push(attributed.comm);
                                        if let Some(argv) = event.thick.take() {
                                            part.thick.push((event.atom.actor, argv));
                                        }
                                        edges.push(&event);
                                        if let Some(container) = attributed.container {
                                            edges.add(w, EdgeKind::ContainerToProc, container, event.atom.actor, 0, event.atom.t_ns);
                                        }
                                        part.dict.extend(event.dict);
                                        part.atoms.push(event.atom);
                                    }
                                    CanonMsg::Lost { node, reason, count, .. } => {
                                        let part = by_node.entry(node).or_insert_with(|| WindowPart::at(node, w));
                                        part.lost.push((reason, count));
                                    }
                                    CanonMsg::Health { node, record, .. } => {
                                        let part = by_node.entry(node).or_insert_with(|| WindowPart::at(node, w));
                                        part.health.push(record);
                                    }
                                    CanonMsg::Cut { node, feed, pos, .. } => {
                                        by_node.entry(node).or_insert_with(|| WindowPart::at(node, w));
                                        cuts.insert(node, (feed, pos));
                                    }
                                    CanonMsg::RestoreActor { node, actor, .. } => {
                                        let (actors, _, _) = tables.entry(node).or_insert_with(&new_tables);
                                        actors.restore_actor(*actor);
                                    }
                                    CanonMsg::Names { node, names, .. } => {
                                        let (actors, _, _) = tables.entry(node).or_insert_with(&new_tables);
                                        match names {
                                            NodeNames::Cgroups(entries) => {
                                                for (id, path) in entries {
                                                    // The names are sealed with the actors that use them.
                                                    actors.add_cgroup(id, &path);
                                                }
                                            }
                                            NodeNames::Exes(entries) => {
                                                for ((dev, ino), fact) in entries {
                                                    actors.add_exe(dev, ino, fact);
                                                }
                                            }
                                        }
                                    }
                                }
                            }
                            let mut session = output.session(&cap);
                            for (node, mut part) in by_node {
                                if let Some((actors, edges, detectors)) = tables.get_mut(&node) {
                                    detectors.close(w);
                                    part.actors = actors.close(w);
                                    part.dict.extend(actors.cgroup_dict(&part.actors));
                                    part.edges = edges.close(w);
                                }
                                // The state after the window, at a cut: this shard's actors; the
                                // names (the same on every shard) and the source's state once.
                                if let Some((feed, pos)) = cuts.remove(&node) {
                                    session.give(AttrOut::Cut { node, cut: w + 1 });
                                    let saved = tables.get(&node).map(|t| t.0.export()).unwrap_or_default();
                                    let first = shard == 0;
                                    part.state.push(StatePiece::Actors { actors: saved.actors, names: first.then_some((saved.cgroups, saved.exes)) });
                                    if first {
                                        part.state.push(StatePiece::Feed(feed, pos));
                                    }
                                }
                                let flows: Vec<(Id128, Id128)> = part.edges.iter().flat_map(taint_flows).collect();
                                if !flows.is_empty() || !part.seeds.is_empty() {
                                    session.give(AttrOut::Taint { node, flows, seeds: part.seeds.clone() });
                                }
                                session.give(AttrOut::Part(part));
                            }
                        }
                        if frontier.is_empty() && names_frontier.is_empty() {
                            let mut s = stats_attr.lock().expect("stats");
                            for (actors, _, _) in tables.values_mut() {
                                let a = std::mem::take(&mut actors.stats);
                                s.actor_misses += a.misses;
                                s.actors_evicted_exit += a.evicted_exit;
                                s.actors_evicted_idle += a.evicted_idle;
                                s.actors_evicted_capacity += a.evicted_capacity;
                            }
                        }
                    }
                },
            );

            let mut attributed = attributed.partition(2, |o| (!matches!(o, AttrOut::Part(_)) as u64, o)).into_iter();
            let (Some(parts), Some(taint_out)) = (attributed.next(), attributed.next()) else {
                unreachable!("partition makes two streams");
            };
            let parts = parts.flat_map(|o| match o { AttrOut::Part(p) => Some(p), _ => None });
            let cut_marks = taint_out.clone().flat_map(|o| match o { AttrOut::Cut { node, cut } => Some((node, cut)), _ => None });
            // Taint: flows of the windows' edges from the actors that matched a cone.
            let restored_taint = restored_taint.flat_map(|r| match r { Routed::Taint { node, flows, seeds } => Some((node, flows, seeds)), _ => None });
            let flows = taint_out.clone().flat_map(|o| match o {
                AttrOut::Taint { node, flows, .. } => flows.into_iter().map(|(from, to)| ((node, from, to), None)).collect(),
                _ => Vec::new(),
            }).concat(restored_taint.clone().flat_map(|(node, flows, _)| flows.into_iter().map(move |(from, to, w)| ((node, from, to), Some(w)))));
            // Seeds: actors that matched a step cone or fired a detector cone.
            let detector_seeds = taint_out.flat_map(|o| match o {
                AttrOut::Taint { node, seeds, .. } => seeds.into_iter().map(|s| (node, s)).collect(),
                _ => Vec::new(),
            });
            let seeds = cone_parts
                .clone()
                .flat_map(|p: WindowPart| {
                    let node = p.node;
                    p.seeds.into_iter().map(move |s| (node, s))
                })
                .concat(detector_seeds)
                .map(|s| (s, None))
                .concat(restored_taint.flat_map(|(node, _, seeds)| seeds.into_iter().map(move |(s, w)| ((node, s), Some(w)))));
            let taint = taint_changes(flows, seeds, cut_marks, taint_ttl);
            // The live sightings at a cut go to the node's sealer as state shares.
            let live_flows = taint.live_flows.map(|(node, window, flows)| {
                let flows = flows.into_iter().map(|((_, from, to), w)| (from, to, w)).collect();
                WindowPart { node, window, state: vec![StatePiece::Taint { flows, seeds: Vec::new() }], ..Default::default() }
            });
            let live_seeds = taint.live_seeds.map(|(node, window, seeds)| {
                let seeds = seeds.into_iter().map(|((_, s), w)| (s, w)).collect();
                WindowPart { node, window, state: vec![StatePiece::Taint { flows: Vec::new(), seeds }], ..Default::default() }
            });
            let taint = taint.changes.map(|c| WindowPart { node: c.node, window: c.window, taint: vec![c], ..Default::default() });

            parts
                .concat(cone_parts)
                .concat(taint)
                .concat(live_flows)
                .concat(live_seeds)
                .unary_frontier::<timely::container::CapacityContainerBuilder<Vec<(u32, u64)>>, _, _, _>(
                    ExchangePact::new(|p: &WindowPart| node_route(p.node)),
                    "window-merkle",
                    move |_default_cap, _info| {
                        let mut stash: Stash<WindowPart> = Stash::new();
                        let mut sinks: BTreeMap<u32, NodeSink> = BTreeMap::new();
                        let mut taint_at: BTreeMap<u32, BTreeMap<u64, Vec<TaintChange>>> = BTreeMap::new();
                        let mut finished = false;
                        move |(input, frontier), output| {
                            if !errors.lock().expect("errors").is_empty() {
                                // Sealing failed: nothing more is written, and every held window
                                // is let go so the dataflow drains and the run can report it.
                                input.for_each(|_, data| data.clear());
                                stash.0.clear();
                                return;
                            }
                            input.for_each(|cap, data| {
                                for p in data.drain(..) {
                                    let w = p.window;
                                    stash.push(w, p, || cap.delayed(&w, output.output_index()));
                                }
                            });
                            while let Some((w, cap, parts)) = stash.pop_closed(|w| frontier.less_equal(w)) {
                                let mut by_node: BTreeMap<u32, WindowContents> = BTreeMap::new();
                                let mut raising: BTreeMap<u32, Raising> = BTreeMap::new();
                                let mut saved: BTreeMap<u32, Vec<StatePiece>> = BTreeMap::new();
                                let mut resumed: BTreeSet<u32> = BTreeSet::new();
                                for mut p in parts {
                                    // Windows a restored state holds are sealed already.
                                    if w < floors[p.node as usize] {
                                        continue;
                                    }
                                    if !p.taint.is_empty() {
                                        // Taint alone never seals a window: it waits for the window's record.
                                        taint_at.entry(p.node).or_default().entry(w).or_default().append(&mut p.taint);
                                        continue;
                                    }
                                    if p.resumed {
                                        resumed.insert(p.node);
                                    }
                                    let c = by_node.entry(p.node).or_default();
                                    c.dict.extend(p.dict);
                                    c.actors.extend(p.actors);
                                    c.atoms.extend(p.atoms);
                                    c.edges.extend(p.edges);
                                    c.cones.extend(p.cones);
                                    c.lost.extend(p.lost);
                                    c.health.extend(p.health);
                                    let r = raising.entry(p.node).or_default();
                                    r.seeds.extend(p.seeds);
                                    r.thick.extend(p.thick);
                                    if !p.state.is_empty() {
                                        saved.entry(p.node).or_default().append(&mut p.state);
                                    }
                                }
                                let mut session = output.session(&cap);
                                for (node, mut contents) in by_node {
                                    if !errors.lock().expect("errors").is_empty() {
                                        return;
                                    }
                                    let sink = sinks.entry(node).or_insert_with(|| {
                                        let mut s = shared.lock().expect("shared");
                                        let signer = s.0[node as usize].clone();
                                        let (writer, resume_at, restored) = s.1[node as usize].take().expect("one owner per node store");
                                        let name = &names_merkle[node as usize];
                                        let mut sink = NodeSink {
                                            log: NodeLog::new(name, window_len_ns, CONE_LIB_VERSION, signer),
                                            hours: HourSealer::new(name, window_len_ns),
                                            writer,
                                            resume_at,
                                            index: None,
                                            raises: ModeRaises::new(mode, taint_ttl),
                                            taint_ttl,
                                            saved_state: None,
                                        };
                                        if let Some((state, digest)) = restored {
                                            sink.restore(&state, digest);
                                        }
                                        sink
                                    });
                                    contents.late_events = contents.atoms.iter().filter(|a| a.flags & ritma_schemas::records::atom_flags::LATE != 0).count() as u64;
                                    // Windows without events still get a record, except those a
                                    // downtime leaves out: not an hour's last (FORMAT.md §7.2).
                                    let first = sink.log.next_window().unwrap_or(w);
                                    let taint = taint_at.entry(node).or_default();
                                    let per_hour = ritma_schemas::records::windows_per_hour(window_len_ns);
                                    let down = resumed.contains(&node);
                                    // The taint changes of windows left out count at the next one sealed.
                                    let mut carried = Vec::new();
                                    let mut sealed = 0u64;
                                    for gap in first..w {
                                        carried.append(&mut taint.remove(&gap).unwrap_or_default());
                                        if down && !(gap + 1).is_multiple_of(per_hour) {
                                            if let Err(e) = sink.log.leave_out(gap) {
                                                errors.lock().expect("errors").push(format!("node {}: {e}", names_merkle[node as usize]));
                                                return;
                                            }
                                            continue;
                                        }
                                        let changes = ritma_operators::taint::changes_by(gap, std::mem::take(&mut carried));
                                        if let Err(e) = sink.seal(gap, WindowContents::default(), Raising::default(), changes) {
                                            errors.lock().expect("errors").push(e);
                                            return;
                                        }
                                        sealed += 1;
                                    }
                                    carried.append(&mut taint.remove(&w).unwrap_or_default());
                                    let changes = ritma_operators::taint::changes_by(w, carried);
                                    match sink.seal_saving(w, contents, raising.remove(&node).unwrap_or_default(), changes, saved.remove(&node)) {
                                        Ok(n) => {
                                            let mut c = window_counts.lock().expect("counts");
                                            c.0 += sealed + 1;
                                            c.1 += n;
                                            session.give((node, w));
                                        }
                                        Err(e) => {
                                            errors.lock().expect("errors").push(e);
                                            return;
                                        }
                                    }
                                }
                            }
                            // The input is over: the tail hour gets its index too, and
                            // every write is on disk before the dataflow completes.
                            if frontier.is_empty() && !finished {
                                finished = true;
                                for sink in sinks.values_mut() {
                                    sink.finish_hour(false);
                                    sink.writer.finish();
                                }
                            }
                        }
                    },
                )
                .probe_with(&probe);
        });

        if index != 0 {
            drop(input);
            worker.step_or_park_while(Some(IDLE_PARK), || !probe.done());
            return Ok::<FeedCounts, String>(FeedCounts::default());
        }
        let feeder = Feeder::new(&names2, &runs, slack_ns, roots.clone());
        let failed = || !errors_feed.lock().expect("errors").is_empty();
        let (traces, live) = match &*source {
            ItemSource::Traces(traces) => (traces, None),
            ItemSource::Live { wal, items } => (wal, items.lock().expect("items").take()),
        };
        let mut feeder = feeder;
        let start = match &resume {
            Some((n, state, from)) => {
                restore_input(&mut input, *n as u32, state);
                clock_feed.lock().expect("clock").advanced_to(state.cut);
                feeder.restore(*n, state);
                Some(from)
            }
            None => None,
        };
        let intake = Intake { input: &mut input, worker, probe: &probe, clock: &clock_feed, failed };
        let result = feed(traces, start, positions, live, feeder, intake);
        clock_feed.lock().expect("clock").ended = Some(Instant::now());
        drop(input);
        worker.step_or_park_while(Some(IDLE_PARK), || !probe.done());
        result
    })
    .map_err(|e| anyhow::anyhow!("starting the dataflow: {e}"))?;
    Ok(Sealing {
        guards,
        names,
        errors,
        window_counts,
        clock,
        stats,
        _lock: lock,
    })
}

/// Sends a saved state's operator shares into the dataflow at the window before its cut
/// (each operator takes them before anything after the cut), then moves the input to the cut.
fn restore_input(input: &mut SourceInput, node: u32, state: &DataflowState) {
    let window = state.cut - 1;
    input.advance_to(window);
    for actor in &state.actors {
        input.send(SourceMsg::RestoreActor {
            node,
            window,
            actor: Box::new(actor.clone()),
        });
    }
    let cgroups = state.cgroups.clone();
    let exes = state
        .exes
        .iter()
        .map(|x| {
            let fact = ExeFact {
                hash: x.hash,
                unlisted: x.unlisted,
                kept: x.kept,
            };
            ((x.dev, x.ino), fact)
        })
        .collect();
    for names in [NodeNames::Cgroups(cgroups), NodeNames::Exes(exes)] {
        input.send(SourceMsg::Names {
            node,
            window,
            first_seq: 0,
            names,
        });
    }
    input.send(SourceMsg::RestoreCone {
        node,
        window,
        partials: state.partials.clone(),
    });
    input.send(SourceMsg::RestoreTaint {
        node,
        window,
        flows: state.taint_flows.clone(),
        seeds: state.taint_seeds.clone(),
    });
    input.advance_to(state.cut);
}

/// One node's sealing state on the worker that owns it: log, hour seals, store, index.
struct NodeSink {
    log: NodeLog,
    hours: HourSealer,
    /// Writes the sealed windows to the node's store, in order, on its own thread.
    writer: StoreWriter,
    /// The store's first window when it already held windows: sealing must start there.
    resume_at: Option<u64>,
    index: Option<HourIndexBuilder>,
    /// Which actors triggers raised above the base mode.
    raises: ModeRaises,
    taint_ttl: u64,
    /// The digest of the state saved after the window sealed last, for the next record.
    saved_state: Option<Hash32>,
}

/// What a window's capture modes are decided from, besides its taint changes.
#[derive(Default)]
struct Raising {
    /// Actors that fired a trigger in the window.
    seeds: Vec<Id128>,
    /// Argv with their events' actors, kept if the actor is raised.
    thick: Vec<(Id128, EncodedArgv)>,
}

impl NodeSink {
    fn per_hour(&self) -> u64 {
        ritma_schemas::records::windows_per_hour(self.writer.meta().window_len_ns)
    }

    /// Seals `window` and hands it, with its index share, to the store writer; returns
    /// its event count.
    fn seal(
        &mut self,
        window: u64,
        contents: WindowContents,
        raising: Raising,
        taint: Vec<TaintChange>,
    ) -> Result<u64, String> {
        self.seal_saving(window, contents, raising, taint, None)
    }

    /// `seal`, then, at a cut, the state after the window (from the operators' shares
    /// `saved`) before the hour's index and accounting, which count its file.
    fn seal_saving(
        &mut self,
        window: u64,
        mut contents: WindowContents,
        raising: Raising,
        mut taint: Vec<TaintChange>,
        saved: Option<Vec<StatePiece>>,
    ) -> Result<u64, String> {
        let node = self.writer.meta().node.clone();
        let len = self.writer.meta().window_len_ns;
        if let Some(first) = self.resume_at.filter(|_| self.log.next_window().is_none()) {
            if first != window {
                return Err(format!("node {node}: {} already holds windows from {first} on, but this input starts at window {window}: it was sealed from another input (give another --out)", self.writer.root().display()));
            }
        }
        // Taint sorted first: the raised set is then one function of the window's inputs.
        taint.sort();
        self.raises.advance(window, &raising.seeds, &taint);
        contents.state = self.saved_state.take();
        contents.dict.extend(
            raising
                .thick
                .into_iter()
                .filter(|(actor, _)| self.raises.mode_of(actor) >= CaptureMode::Thick)
                .map(|(_, argv)| argv.entry()),
        );
        // The window's mode is the highest any of its events was sealed in; an event
        // whose bytes the CAS keeps was sealed Full.
        let mode = contents
            .atoms
            .iter()
            .map(|a| match a.payload_ref {
                Some(_) => CaptureMode::Full,
                None => self.raises.mode_of(&a.actor),
            })
            .max()
            .unwrap_or(self.raises.base());
        let sealed = self
            .log
            .seal(window, mode, contents)
            .map_err(|e| format!("node {node}: {e}"))?;
        let leaf = ritma_schemas::merkle::Blake3Tree::leaf(&sealed.record_bytes);
        let hour_seal = self
            .hours
            .push(window, leaf, self.log.frontier())
            .map_err(|e| format!("node {node}: sealing the hour of window {window}: {e}"))?;
        let hour = window / self.per_hour();
        let index = self
            .index
            .get_or_insert_with(|| HourIndexBuilder::new(&node, len, hour, self.taint_ttl));
        let r = &sealed.record;
        let edges_at = (r.dict_count + r.actor_count + r.event_count) as usize;
        let closed = index.push_window(IndexedWindow {
            record: r,
            atoms: &sealed.atoms,
            edges: &sealed.edges,
            edge_leaves: &sealed.leaves[edges_at..edges_at + sealed.edges.len()],
            cones: &sealed.cones,
            taint: &taint
                .iter()
                .map(|c| (c.seed, c.entity, c.diff > 0))
                .collect::<Vec<_>>(),
        });
        let events = r.event_count;
        let ends_hour = hour_seal.is_some();
        self.writer.window(WindowWrite {
            record: sealed.record,
            record_bytes: sealed.record_bytes,
            leaves: sealed.leaves,
            checkpoint: sealed.checkpoint,
            hour_seal,
            edge_parts: closed.edges,
            edge_refs: closed.edge_refs,
        });
        if let Some(pieces) = saved {
            self.save_state(window, pieces)?;
        }
        if ends_hour {
            self.finish_hour(true);
        }
        Ok(events)
    }

    /// Continues from a saved state (FORMAT.md §3.15): the log, hour chain, raises and
    /// taint sightings after the window before its cut; the next record names its digest.
    fn restore(&mut self, state: &DataflowState, digest: Hash32) {
        let frontier =
            ritma_schemas::merkle::Frontier::from_parts(state.log_size, state.log_frontier.clone())
                .expect("checked when loaded");
        self.log
            .restore(frontier.clone(), state.cut, state.log_next_seq);
        self.hours.restore(state.prev_hour.clone(), frontier);
        self.raises
            .restore(&state.raised_seeds, &state.raised_reached);
        self.saved_state = Some(digest);
    }

    /// Saves the state after `window` (an hour's last, just sealed) from the operators'
    /// shares and the sink's own, and hands it to the store writer; the next window's
    /// record names its digest.
    fn save_state(&mut self, window: u64, pieces: Vec<StatePiece>) -> Result<(), String> {
        let node = self.writer.meta().node.clone();
        let (mut feed, mut names, mut partials) = (None, None, None);
        let mut actors = Vec::new();
        // Each worker's share of the live sightings; a sighting in several keeps its latest.
        let (mut flows, mut seeds) = (BTreeMap::new(), BTreeMap::new());
        for p in pieces {
            match p {
                StatePiece::Feed(f, pos) => feed = Some((f, pos)),
                StatePiece::Actors {
                    actors: a,
                    names: n,
                } => {
                    actors.extend(a);
                    names = names.or(n);
                }
                StatePiece::Cone(c) => partials = Some(c),
                StatePiece::Taint { flows: f, seeds: s } => {
                    for (from, to, w) in f {
                        let last = flows.entry((from, to)).or_insert(w);
                        *last = (*last).max(w);
                    }
                    for (seed, w) in s {
                        let last = seeds.entry(seed).or_insert(w);
                        *last = (*last).max(w);
                    }
                }
            }
        }
        let (Some((feed, pos)), Some((cgroups, exes)), Some(partials)) = (feed, names, partials)
        else {
            return Err(format!(
                "node {node}: the state after window {window} lacks an operator's share"
            ));
        };
        let Some(prev_hour) = self
            .hours
            .prev()
            .filter(|_| (window + 1).is_multiple_of(self.per_hour()))
            .cloned()
        else {
            return Err(format!(
                "node {node}: a state saved after window {window}, which ends no hour"
            ));
        };
        actors.sort_by_key(|a| a.record.actor);
        let (raised_seeds, raised_reached) = self.raises.export();
        let taint_flows = flows.into_iter().map(|((f, t), w)| (f, t, w)).collect();
        let taint_seeds = seeds.into_iter().collect();
        let log = self.log.frontier();
        let state = DataflowState {
            node: node.clone(),
            cut: window + 1,
            window_len_ns: self.writer.meta().window_len_ns,
            taint_ttl_windows: self.taint_ttl,
            feed: *feed,
            actors,
            cgroups,
            exes,
            partials,
            log_size: log.size(),
            log_frontier: log.nodes().to_vec(),
            log_next_seq: self.log.next_seq(),
            prev_hour,
            raised_seeds,
            raised_reached,
            taint_flows,
            taint_seeds,
        };
        let encoded = state.encode();
        if encoded.len() > ritma_schemas::state::MAX_STATE_LEN {
            return Err(format!("node {node}: the state after window {window} is {} bytes, more than a saved state may hold", encoded.len()));
        }
        self.saved_state = Some(DataflowState::digest_of(&encoded));
        self.writer.state(StateWrite {
            window,
            encoded,
            pos,
        });
        Ok(())
    }

    /// Hands the open hour's last edge part and index files, then its catalog and
    /// accounting entries, to the store writer (at the hour's end, `sealed`, or at the
    /// end of the run for the tail hour).
    fn finish_hour(&mut self, sealed: bool) {
        let Some(index) = self.index.take() else {
            return;
        };
        let hour = index.hour();
        let (index, last_part) = index.finish();
        let len = self.writer.meta().window_len_ns;
        self.writer.hour(HourWrite {
            hour,
            paths: WindowPaths::new(hour * self.per_hour(), len),
            index,
            last_part,
            sealed,
        });
    }
}

/// The dataflow's input on worker 0.
type SourceInput = InputHandle<u64, timely::container::CapacityContainerBuilder<Vec<SourceMsg>>>;

/// What the source fed: events, events lost to seq gaps, events its loss frames count.
#[derive(Clone, Copy, Debug, Default)]
struct FeedCounts {
    events: u64,
    gap_lost: u64,
    recorded_lost: u64,
}

/// Worker 0's source: turns trace items, from files or from the live sensor, into
/// the dataflow's input. It alone decides windows (from the items, never from when
/// they arrive), so a live run and a replay of its WAL feed the same messages.
struct Feeder {
    names: Vec<String>,
    windowing: Vec<Windowing>,
    next_seq: Vec<Option<u64>>,
    /// Names (cgroup paths, executable hashes) met before a node's first event wait
    /// for its window.
    pending_names: Vec<Vec<(u64, NodeNames)>>,
    /// Each node's store root (its CAS keeps the blobs of its trace) and blob in progress.
    roots: Vec<PathBuf>,
    blobs: Vec<BlobAssembly>,
    /// Blobs of this input each node's CAS holds: only these are named by events.
    kept: Vec<std::collections::HashSet<[u8; 32]>>,
    /// What the caller should warn about (blob frames that did not add up).
    pub warnings: Vec<String>,
    /// Loss frames wait for the node's next event: they are sealed where a seq gap would be.
    pending_loss: Vec<Vec<(LossReason, u64)>>,
    /// Health frames wait likewise, with their loss.
    pending_health: Vec<Vec<HealthRecord>>,
    /// Per node, the window holding a later run's capture_started while that run has sent
    /// no batch or clock frame yet: its loss frames then (a kill's in-flight count) go there.
    restarted: Vec<Option<u64>>,
    /// Node and context slot of each run of the current trace file.
    runs: Vec<(u32, u32)>,
    /// Every run context with its node (`Nodes::runs`).
    contexts: Vec<(u32, RunContext)>,
    /// Each node's current run, once it has one.
    run_meta: Vec<Option<RunMeta>>,
    /// Each node's next cut: the first window of the next hour whose state is saved.
    next_cut: Vec<Option<u64>>,
    per_hour: u64,
    sent: Sent,
    counts: FeedCounts,
    /// The input's time: the oldest window still open on any node.
    epoch: u64,
}

/// What the source sent each node: the newest window, and the windows a restored state
/// already holds (from a restart: what the items give for them is not sent again).
struct Sent {
    newest: Vec<Option<u64>>,
    floor: Vec<u64>,
}

impl Sent {
    fn send(&mut self, input: &mut SourceInput, node: u32, window: u64, msg: SourceMsg) {
        let n = node as usize;
        self.newest[n] = self.newest[n].max(Some(window));
        if window >= self.floor[n] {
            input.send(msg);
        }
    }
}

/// A node's source state before an item, for the state saved at a cut the item crosses
/// (the blobs kept are taken at the cut: only blob frames change them).
struct BeforeItem {
    node: usize,
    feed: Option<FeedState>,
}

impl Feeder {
    fn new(
        names: &[String],
        contexts: &[(u32, RunContext)],
        slack_ns: u64,
        roots: Vec<PathBuf>,
    ) -> Self {
        let ctxs: Vec<&RunContext> = (0..names.len() as u32)
            .map(|n| {
                &contexts
                    .iter()
                    .find(|(node, _)| *node == n)
                    .expect("every node has a run")
                    .1
            })
            .collect();
        let per_hour = ritma_schemas::records::windows_per_hour(ctxs[0].window_len_ns);
        Feeder {
            names: names.to_vec(),
            // Windows are the node's: a later run continues them in its own context.
            windowing: ctxs
                .iter()
                .map(|c| Windowing {
                    ctx: (*c).clone(),
                    slack_ns,
                    oldest_open: None,
                    max_wall: 0,
                })
                .collect(),
            next_seq: vec![None; ctxs.len()],
            pending_names: vec![Vec::new(); ctxs.len()],
            blobs: ctxs.iter().map(|_| BlobAssembly::default()).collect(),
            kept: vec![Default::default(); ctxs.len()],
            roots,
            warnings: Vec::new(),
            pending_loss: vec![Vec::new(); ctxs.len()],
            pending_health: vec![Vec::new(); ctxs.len()],
            restarted: vec![None; ctxs.len()],
            runs: Vec::new(),
            contexts: contexts.to_vec(),
            run_meta: vec![None; ctxs.len()],
            next_cut: vec![None; ctxs.len()],
            per_hour,
            sent: Sent {
                newest: vec![None; ctxs.len()],
                floor: vec![0; ctxs.len()],
            },
            counts: FeedCounts::default(),
            epoch: 0,
        }
    }

    /// Continues node `n` from a saved state: the source as it was before the item that
    /// crossed the cut; windows before the cut are sealed and not sent again.
    fn restore(&mut self, n: usize, state: &DataflowState) {
        let f = &state.feed;
        let w = &mut self.windowing[n];
        w.ctx = RunContext::from_meta(&f.run);
        w.oldest_open = Some(f.oldest_open);
        w.max_wall = f.max_wall_ns;
        self.next_seq[n] = f.next_seq;
        self.pending_loss[n] = f.pending_loss.clone();
        self.pending_health[n] = f.pending_health.clone();
        self.kept[n] = f.kept.iter().copied().collect();
        self.run_meta[n] = Some(f.run.clone());
        self.next_cut[n] = Some(state.cut + self.per_hour);
        self.sent.floor[n] = state.cut;
        self.epoch = f.epoch;
    }

    /// The node and context slot of a run frame's (or continue frame's) run.
    fn run_of(&self, meta: &RunMeta) -> (u32, u32) {
        let slot = run_slot(&self.contexts, meta).expect("scanned");
        (self.contexts[slot as usize].0, slot)
    }

    /// A run frame read before where feeding starts (a restart from a saved state):
    /// numbers the file's runs, nothing more.
    fn number_run(&mut self, run: u16, meta: &RunMeta) {
        if run == 0 {
            self.runs.clear();
        }
        let at = self.run_of(meta);
        self.runs.push(at);
    }

    /// Sends `count` events lost for `reason`, sealed in the node's `window`.
    fn lost(
        &mut self,
        node: u32,
        window: u64,
        reason: LossReason,
        count: u64,
        input: &mut SourceInput,
    ) {
        self.counts.recorded_lost += count;
        let msg = SourceMsg::Lost {
            node,
            window,
            reason,
            count,
        };
        self.sent.send(input, node, window, msg);
    }

    /// Names for a node's events from `first_seq` on: sent at its oldest open window,
    /// or held until its first event.
    fn names(&mut self, node: u32, first_seq: u64, names: NodeNames, input: &mut SourceInput) {
        match self.windowing[node as usize].oldest_open {
            Some(open) => {
                let window = open.max(self.epoch);
                let msg = SourceMsg::Names {
                    node,
                    window,
                    first_seq,
                    names,
                };
                self.sent.send(input, node, window, msg);
            }
            None => self.pending_names[node as usize].push((first_seq, names)),
        }
    }

    /// What node `n` holds before an item that may cross its next cut.
    fn before_item(&self, n: usize) -> BeforeItem {
        let feed = match (&self.run_meta[n], self.windowing[n].oldest_open) {
            (Some(run), Some(oldest_open)) if self.next_cut[n].is_some() => Some(FeedState {
                run: run.clone(),
                next_seq: self.next_seq[n],
                oldest_open,
                max_wall_ns: self.windowing[n].max_wall,
                epoch: self.epoch,
                pending_loss: self.pending_loss[n].clone(),
                // Named by their node (the sealer names them again where it seals them).
                pending_health: self.pending_health[n]
                    .iter()
                    .map(|h| HealthRecord {
                        node: self.names[n].clone(),
                        ..h.clone()
                    })
                    .collect(),
                kept: Vec::new(),
            }),
            _ => None,
        };
        BeforeItem { node: n, feed }
    }

    /// After an item: if it reached the node's next cut (sent something for a window at
    /// or after it, or closed the window before it), every operator saves its state after
    /// the window before each cut it reached, the source's being `before` (FORMAT.md §3.15).
    fn after_item(&mut self, before: BeforeItem, pos: &Option<WalPos>, input: &mut SourceInput) {
        let n = before.node;
        let Some(open) = self.windowing[n].oldest_open else {
            return;
        };
        let reach = open.max(self.sent.newest[n].unwrap_or(0));
        let next = (reach / self.per_hour + 1) * self.per_hour;
        let Some(cut) = self.next_cut[n] else {
            // The node's first windows: its first cut is the next hour's.
            self.next_cut[n] = Some(next);
            return;
        };
        if reach < cut {
            return;
        }
        self.next_cut[n] = Some(next);
        let Some(mut feed) = before.feed else {
            return;
        };
        let mut kept: Vec<[u8; 32]> = self.kept[n].iter().copied().collect();
        kept.sort_unstable();
        feed.kept = kept;
        // A blob in progress is given up at a cut: a restart from it could not finish it.
        if self.blobs[n].in_progress() {
            self.blobs[n] = BlobAssembly::default();
            self.warnings.push(format!(
                "node {}: a blob in progress at the cut before window {cut} was given up; its events name no content",
                self.names[n]
            ));
        }
        let mut at = cut;
        while at <= reach {
            let msg = SourceMsg::Cut {
                node: n as u32,
                window: at - 1,
                feed: Box::new(feed.clone()),
                pos: pos.clone(),
            };
            self.sent.send(input, n as u32, at - 1, msg);
            at += self.per_hour;
        }
    }

    /// Feeds one item (at `pos` in the WAL, when known); advances the input when the
    /// oldest open window moved. Fails only when a blob cannot be written to the store.
    fn item(
        &mut self,
        item: TraceItem,
        pos: &Option<WalPos>,
        input: &mut SourceInput,
        clock: &Mutex<SealClock>,
    ) -> Result<(), String> {
        let node_of_run = |runs: &[(u32, u32)], run: u16| runs[run as usize].0 as usize;
        let before = match &item {
            TraceItem::Run { meta, .. } | TraceItem::Continue { meta, .. } => {
                Some(self.before_item(self.run_of(meta).0 as usize))
            }
            TraceItem::Batch { run, .. } | TraceItem::Clock { run, .. } => {
                Some(self.before_item(node_of_run(&self.runs, *run)))
            }
            _ => None,
        };
        self.item_inner(item, input)?;
        if let Some(before) = before {
            self.after_item(before, pos, input);
        }
        self.advance(input, clock);
        Ok(())
    }

    fn item_inner(&mut self, item: TraceItem, input: &mut SourceInput) -> Result<(), String> {
        match item {
            TraceItem::Run { run, meta } => {
                if run == 0 {
                    self.runs.clear();
                }
                let (node, slot) = self.run_of(&meta);
                let n = node as usize;
                if let Some(earlier) = self.run_meta[n].replace(meta.clone()) {
                    self.next_run(n, &earlier.sensor_version, &meta, input)?;
                }
                self.windowing[n].ctx = self.contexts[slot as usize].1.clone();
                // A corrupt first batch shows as a gap from the run's first seq.
                self.next_seq[n].get_or_insert(meta.first_seq);
                self.runs.push((node, slot));
            }
            TraceItem::Continue {
                run,
                meta,
                next_seq,
            } => {
                if run == 0 {
                    self.runs.clear();
                }
                let (node, slot) = self.run_of(&meta);
                let n = node as usize;
                // The node's current run goes on; another run starts here as a run frame would.
                if self.run_meta[n].as_ref() != Some(&meta) {
                    if let Some(earlier) = self.run_meta[n].replace(meta.clone()) {
                        self.next_run(n, &earlier.sensor_version, &meta, input)?;
                    }
                    self.windowing[n].ctx = self.contexts[slot as usize].1.clone();
                    self.next_seq[n].get_or_insert(next_seq);
                }
                self.runs.push((node, slot));
            }
            TraceItem::Cgroups {
                run,
                first_seq,
                entries,
            } => {
                let node = self.runs[run as usize].0;
                self.names(node, first_seq, NodeNames::Cgroups(entries), input);
            }
            TraceItem::Exes {
                run,
                first_seq,
                entries,
            } => {
                let node = self.runs[run as usize].0;
                let kept = &self.kept[node as usize];
                let facts = entries
                    .into_iter()
                    .map(|x| {
                        let fact = ExeFact {
                            hash: x.hash,
                            unlisted: x.baseline == BaselineStatus::Unlisted,
                            kept: kept.contains(&x.hash),
                        };
                        ((x.dev, x.ino), fact)
                    })
                    .collect();
                self.names(node, first_seq, NodeNames::Exes(facts), input);
            }
            TraceItem::BlobPart {
                run,
                hash,
                size,
                offset,
                data,
            } => {
                let n = self.runs[run as usize].0 as usize;
                let (blob, fault) = self.blobs[n].push(hash, size, offset, &data);
                if let Some(f) = fault {
                    self.warnings.push(format!(
                        "node {}: {f}; its events name no content",
                        self.names[n]
                    ));
                }
                if let Some((hash, bytes)) = blob {
                    // Written before any event names it: a sealed payload_ref has its blob.
                    if !self.kept[n].contains(&hash) {
                        let fail = |e: ritma_sinks::cas::CasError| {
                            format!("node {}: keeping a binary: {e}", self.names[n])
                        };
                        let cas = Cas::open(&self.roots[n]).map_err(fail)?;
                        cas.put_bytes(&bytes).map_err(fail)?;
                        self.kept[n].insert(hash);
                    }
                }
            }
            TraceItem::Loss {
                run, reason, count, ..
            } => {
                let node = self.runs[run as usize].0;
                match self.restarted[node as usize] {
                    // Lost at the stop: beside the restart's records.
                    Some(window) => self.lost(node, window, reason, count, input),
                    None => self.pending_loss[node as usize].push((reason, count)),
                }
            }
            TraceItem::Health(h) => {
                let n = self.runs[h.run as usize].0 as usize;
                self.pending_health[n].push(HealthRecord {
                    // Node and window: the sealer's, set where it is sealed.
                    node: String::new(),
                    t_wall_ns: self.windowing[n].ctx.wall_ns(h.mono_ns),
                    kind: h.kind,
                    subject: h.subject,
                    window: 0,
                    lost: h.lost,
                });
            }
            TraceItem::Clock { run, mono_ns, .. } => {
                let node = self.runs[run as usize].0;
                self.restarted[node as usize] = None;
                let closed = self.windowing[node as usize].clock(mono_ns, self.epoch);
                for window in closed {
                    self.sent.send(
                        input,
                        node,
                        window,
                        SourceMsg::Close {
                            node,
                            window,
                            resumed: false,
                        },
                    );
                }
            }
            TraceItem::Batch { run, events: batch } => {
                let (node, ctx) = self.runs[run as usize];
                self.restarted[node as usize] = None;
                self.batch(node, ctx, batch, input);
            }
        }
        Ok(())
    }

    fn batch(&mut self, node: u32, ctx: u32, batch: Vec<RawEvent>, input: &mut SourceInput) {
        let n = node as usize;
        let floor = self.epoch;
        let gap = match (self.next_seq[n], batch.first()) {
            (Some(expected), Some(first)) if first.seq > expected => first.seq - expected,
            _ => 0,
        };
        let before = self.windowing[n].oldest_open.map(|w| w.max(floor));
        self.next_seq[n] = batch.last().map(|e| e.seq + 1);
        for (i, raw) in batch.into_iter().enumerate() {
            let window = self.windowing[n].assign(raw.mono_ns, floor);
            if i == 0 {
                let at = before.unwrap_or(window);
                if gap > 0 {
                    self.counts.gap_lost += gap;
                    let msg = SourceMsg::Lost {
                        node,
                        window: at,
                        reason: LossReason::TraceCorrupt,
                        count: gap,
                    };
                    self.sent.send(input, node, at, msg);
                }
                for (reason, count) in std::mem::take(&mut self.pending_loss[n]) {
                    self.lost(node, at, reason, count, input);
                }
                for record in self.pending_health[n].drain(..) {
                    self.counts.recorded_lost += record.probe_lost();
                    let msg = SourceMsg::Health {
                        node,
                        window: at,
                        record,
                    };
                    self.sent.send(input, node, at, msg);
                }
                for (first_seq, names) in self.pending_names[n].drain(..) {
                    let msg = SourceMsg::Names {
                        node,
                        window: at,
                        first_seq,
                        names,
                    };
                    self.sent.send(input, node, at, msg);
                }
            }
            self.counts.events += 1;
            let msg = SourceMsg::Event {
                node,
                ctx,
                window,
                raw,
            };
            self.sent.send(input, node, window, msg);
        }
    }

    /// The input may advance to the oldest window still open on any node.
    fn advance(&mut self, input: &mut SourceInput, clock: &Mutex<SealClock>) {
        let open = self
            .windowing
            .iter()
            .filter_map(|w| w.oldest_open)
            .min()
            .unwrap_or(self.epoch);
        if open > self.epoch {
            self.epoch = open;
            // A restored input starts at its cut, maybe past the source's own epoch.
            if open > *input.time() {
                clock.lock().expect("clock").advanced_to(open);
                input.advance_to(open);
            }
        }
    }

    /// A later run of node `n` starts (`meta`; `sensor` ran the earlier one): the earlier
    /// run ends as at the end of the input, and the later run's first window records that
    /// capture stopped and started again. The windows between are left out (capture was
    /// down), except each hour's last, which is sealed holding nothing so every hour keeps
    /// its seal (FORMAT.md §7.2).
    fn next_run(
        &mut self,
        n: usize,
        sensor: &str,
        meta: &RunMeta,
        input: &mut SourceInput,
    ) -> Result<(), String> {
        if let Some(expected) = self.next_seq[n].filter(|e| meta.first_seq < *e) {
            return Err(format!(
                "node {}: a run starting at seq {} follows one that reached seq {expected}: a node's runs must be given in the order they ran",
                self.names[n], meta.first_seq
            ));
        }
        let stopped_wall = self.windowing[n].max_wall;
        let Some(after) = self.end_run(n, input) else {
            return Ok(());
        };
        // The later run's first window: the one open at its start, as for a node's first event.
        let w = &mut self.windowing[n];
        let started = meta.started_wall_ns.saturating_sub(w.slack_ns) / w.ctx.window_len_ns;
        let next = after.max(started);
        w.oldest_open = Some(next);
        let node = n as u32;
        let mut end = (after / self.per_hour + 1) * self.per_hour - 1;
        while end < next {
            let msg = SourceMsg::Close {
                node,
                window: end,
                resumed: true,
            };
            self.sent.send(input, node, end, msg);
            end += self.per_hour;
        }
        let msg = SourceMsg::Close {
            node,
            window: next,
            resumed: true,
        };
        self.sent.send(input, node, next, msg);
        self.restarted[n] = Some(next);
        let health = |kind, t_wall_ns, subject: &str, lost| HealthRecord {
            node: String::new(),
            t_wall_ns,
            kind,
            subject: subject.to_owned(),
            window: 0,
            lost,
        };
        // Nothing counted what happened while capture was down: its loss is unknown.
        for record in [
            health(HealthKind::CaptureStopped, stopped_wall, sensor, None),
            health(
                HealthKind::CaptureStarted,
                meta.started_wall_ns,
                &meta.sensor_version,
                Some(0),
            ),
        ] {
            let msg = SourceMsg::Health {
                node: n as u32,
                window: next,
                record,
            };
            self.sent.send(input, n as u32, next, msg);
        }
        Ok(())
    }

    /// Ends node `n`'s run: every window up to the one holding its last time (an event's
    /// or a clock frame's) is closed, empty or not, and loss and health after its last
    /// event go to its oldest open window. Returns the node's next window, `None` if no
    /// window holds anything of it yet (its loss and health then stay pending).
    fn end_run(&mut self, n: usize, input: &mut SourceInput) -> Option<u64> {
        let node = n as u32;
        let w = &mut self.windowing[n];
        let open = w.oldest_open?.max(self.epoch);
        let last = w.max_wall / w.ctx.window_len_ns;
        let next = (last + 1).max(open);
        w.oldest_open = Some(next);
        for window in open..=last {
            self.sent.send(
                input,
                node,
                window,
                SourceMsg::Close {
                    node,
                    window,
                    resumed: false,
                },
            );
        }
        for (reason, count) in std::mem::take(&mut self.pending_loss[n]) {
            self.lost(node, open, reason, count, input);
        }
        for record in std::mem::take(&mut self.pending_health[n]) {
            self.counts.recorded_lost += record.probe_lost();
            let msg = SourceMsg::Health {
                node,
                window: open,
                record,
            };
            self.sent.send(input, node, open, msg);
        }
        Some(next)
    }

    /// The end of the input: every node's run ends (`end_run`). Also returns the window
    /// after every window it sent anything for (`None` if it sent nothing).
    fn finish(mut self, input: &mut SourceInput, warn: impl Fn(&str)) -> (FeedCounts, Option<u64>) {
        let mut end: Option<u64> = None;
        for n in 0..self.names.len() {
            if let Some(next) = self.end_run(n, input) {
                // end_run sends at most at `next` (loss and health of an empty run).
                end = end.max(Some(next + 1));
                continue;
            }
            let lost: u64 = self.pending_loss[n].iter().map(|(_, c)| c).sum();
            if lost > 0 {
                warn(&format!(
                    "node {}: {lost} events lost before any event was recorded; no window holds them",
                    self.names[n]
                ));
            }
            if !self.pending_health[n].is_empty() {
                warn(&format!(
                    "node {}: {} sensor health observations before any event was recorded; no window holds them",
                    self.names[n],
                    self.pending_health[n].len()
                ));
            }
        }
        (self.counts, end)
    }
}

/// Lets the dataflow catch up until it is at most `MAX_LAG_WINDOWS` behind the input
/// (or sealing failed: then it will not catch up).
fn catch_up(
    worker: &mut timely::worker::Worker,
    probe: &ProbeHandle<u64>,
    epoch: u64,
    failed: &impl Fn() -> bool,
) {
    worker.step();
    while probe.less_than(&epoch.saturating_sub(MAX_LAG_WINDOWS)) && !failed() {
        // Parks while other workers hold the work (a message wakes it): no spinning core.
        worker.step_or_park(Some(IDLE_PARK));
    }
}

/// The longest a worker waiting for the dataflow's progress parks between steps; a
/// message from another worker wakes it sooner.
const IDLE_PARK: Duration = Duration::from_millis(1);

/// Worker 0's hold on the dataflow it feeds.
struct Intake<'a, F: Fn() -> bool> {
    input: &'a mut SourceInput,
    worker: &'a mut timely::worker::Worker,
    probe: &'a ProbeHandle<u64>,
    clock: &'a Mutex<SealClock>,
    /// Whether sealing failed (the dataflow then will not catch up).
    failed: F,
}

impl<F: Fn() -> bool> Intake<'_, F> {
    /// Lets the dataflow catch up until it is at most `MAX_LAG_WINDOWS` behind `epoch`.
    fn catch_up(&mut self, epoch: u64) {
        catch_up(self.worker, self.probe, epoch, &self.failed);
    }

    /// Moves the input to `end`, past every window it holds, and waits until all of
    /// them are sealed (or sealing failed). The input then ends with nothing left to
    /// seal, which is what lets taint drop the retractions no window will see.
    fn seal_before(&mut self, end: u64) {
        if *self.input.time() < end {
            self.clock.lock().expect("clock").advanced_to(end);
            self.input.advance_to(end);
        }
        while self.probe.less_than(&end) && !(self.failed)() {
            self.worker.step_or_park(Some(IDLE_PARK));
        }
    }
}

/// Worker 0: feeds every item of `traces` (from `start` on, when a saved state was
/// restored), then, in a live run, what the capture loop sends on `live` (it wrote it to
/// the WAL first) until it hangs up; stops early when sealing failed. `positions`: the
/// traces are the store's WAL, so a cut names where its item is.
fn feed(
    traces: &[PathBuf],
    start: Option<&WalPos>,
    positions: bool,
    live: Option<LiveReceiver>,
    mut feeder: Feeder,
    mut intake: Intake<'_, impl Fn() -> bool>,
) -> Result<FeedCounts, String> {
    let mut progress = Progress::new(traces);
    if !feed_files(
        traces,
        start,
        positions,
        &mut feeder,
        &mut progress,
        &mut intake,
    )? {
        progress.finish();
        return Ok(feeder.counts);
    }
    if let Some(mut items) = live {
        progress.finish();
        feed_items(&mut items, &mut feeder, &mut intake)?;
    }
    let (counts, end) = feeder.finish(intake.input, |w| progress.warn(w));
    if let Some(end) = end {
        intake.seal_before(end);
    }
    progress.finish();
    Ok(counts)
}

/// Feeds every item of `traces`; false if it stopped because sealing failed. Items of
/// the first file before `start` were fed before the saved state: they are skimmed,
/// only its runs numbered.
fn feed_files(
    traces: &[PathBuf],
    start: Option<&WalPos>,
    positions: bool,
    feeder: &mut Feeder,
    progress: &mut Progress,
    intake: &mut Intake<'_, impl Fn() -> bool>,
) -> Result<bool, String> {
    for (i, path) in traces.iter().enumerate() {
        progress.next_file();
        let skip_below = start
            .filter(|s| i == 0 && s.file == *path)
            .map_or(0, |s| s.offset);
        let mut reader = TraceReader::open(path).map_err(|e| e.to_string())?;
        // Up to the restart point the items were fed before the saved state: only the
        // runs are numbered, the frames' payloads left unread.
        while reader.offset() < skip_below {
            match reader.skim().map_err(|e| e.to_string())? {
                Some(s) => {
                    if let Some(
                        TraceItem::Run { run, meta } | TraceItem::Continue { run, meta, .. },
                    ) = &s.item
                    {
                        feeder.number_run(*run, meta);
                    }
                }
                None => break,
            }
        }
        loop {
            let at = reader.offset();
            let item = match reader.next_item() {
                Ok(Some(item)) => item,
                Ok(None) => break,
                Err(TraceError::TornTail { pos, missing }) => {
                    progress.warn(&format!("{pos}: the trace ends inside a frame ({missing} bytes missing); replaying up to it"));
                    break;
                }
                Err(e) if e.is_skippable() => {
                    progress.warn(&format!(
                        "{e}; skipping to the next valid frame, the gap is sealed as loss"
                    ));
                    match reader.skip_corrupt().map_err(|e| e.to_string())? {
                        Some(_) => continue,
                        None => break,
                    }
                }
                Err(e) => return Err(e.to_string()),
            };
            let advances = matches!(
                item,
                TraceItem::Batch { .. } | TraceItem::Clock { .. } | TraceItem::Run { .. }
            );
            let pos = positions.then(|| WalPos {
                file: path.clone(),
                offset: at,
            });
            feeder.item(item, &pos, intake.input, intake.clock)?;
            for w in feeder.warnings.drain(..) {
                progress.warn(&w);
            }
            if advances {
                progress.update(reader.offset(), feeder.counts.events);
                intake.catch_up(feeder.epoch);
                if (intake.failed)() {
                    return Ok(false);
                }
            }
        }
    }
    Ok(true)
}

/// Feeds the live items until the capture loop hangs up, or sealing failed (dropping
/// the receiver then stops the capture loop, which reports the error).
fn feed_items(
    items: &mut LiveReceiver,
    feeder: &mut Feeder,
    intake: &mut Intake<'_, impl Fn() -> bool>,
) -> Result<(), String> {
    while !(intake.failed)() {
        match items.next()? {
            Next::Item(LiveItem { item, pos }) => {
                feeder.item(item, &Some(pos), intake.input, intake.clock)?;
                for w in feeder.warnings.drain(..) {
                    eprintln!("ritma: {w}");
                }
                intake.catch_up(feeder.epoch);
            }
            Next::Empty => {
                intake.worker.step_or_park(Some(Duration::from_millis(5)));
            }
            Next::Ended => break,
        }
    }
    Ok(())
}

/// A progress bar over the traces' bytes, drawn only when stderr is a terminal.
struct Progress {
    bar: indicatif::ProgressBar,
    sizes: Vec<u64>,
    /// Bytes of the traces before the current one.
    done: u64,
    file: usize,
}

impl Progress {
    fn new(traces: &[PathBuf]) -> Self {
        let sizes: Vec<u64> = traces
            .iter()
            .map(|p| std::fs::metadata(p).map_or(0, |m| m.len()))
            .collect();
        let bar = crate::progress::bar(
            sizes.iter().sum(),
            "replay [{bar:30}] {bytes}/{total_bytes} {msg} ({eta})",
        );
        Progress {
            bar,
            sizes,
            done: 0,
            file: 0,
        }
    }

    fn next_file(&mut self) {
        if self.file > 0 {
            self.done += self.sizes[self.file - 1];
        }
        self.file += 1;
    }

    fn update(&self, offset: u64, events: u64) {
        self.bar.set_position(self.done + offset);
        let secs = self.bar.elapsed().as_secs_f64().max(1e-3);
        self.bar.set_message(format!(
            "{events} events, {:.0}k/s",
            events as f64 / secs / 1000.0
        ));
    }

    /// A warning printed above the bar (plain on a non-terminal).
    fn warn(&self, text: &str) {
        self.bar.suspend(|| eprintln!("ritma: {text}"));
    }

    fn finish(&self) {
        self.bar.finish_and_clear();
    }
}

/// How long a window stays open after its end for events that arrive late.
pub const DEFAULT_SLACK_NS: u64 = 50_000_000;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_seal_clock_keeps_only_the_advances_unsealed_windows_need() {
        let mut clock = SealClock::for_nodes(2);
        for w in 0..10_000u64 {
            clock.advanced_to(w + 1);
            // Node 1 lags node 0 by three windows: the advances since its last seal stay.
            clock.sealed(0, w);
            if w >= 3 {
                clock.sealed(1, w - 3);
            }
            assert!(
                clock.advances.len() <= 4,
                "window {w}: {} advances",
                clock.advances.len()
            );
        }
        // Node 1's next window closed at the advance past it, which is still there.
        assert_eq!(clock.advances.front().map(|a| a.0), Some(9_997));
        assert!(clock.latencies.quantile(1.0).is_some());
        // A node that never sealed holds every advance.
        let mut idle = SealClock::for_nodes(2);
        for w in 0..100u64 {
            idle.advanced_to(w + 1);
            idle.sealed(0, w);
        }
        assert_eq!(idle.advances.len(), 100);
    }
}
