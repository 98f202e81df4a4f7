//! taint: provenance reachability over the edge graph — everything descended from, written
//! by, or executed out of what a suspicious actor touched. This is the plain reference; the
//! pipeline runs the same semantics incrementally in differential dataflow.
//!
//! Taint flows along (see [`taint_flows`]):
//! - `ExecLineage` src → dst (parent to forked child);
//! - `ProcToFile` src → dst when the flags have WRITE, CREATE or RENAME (the process made
//!   the file's content or name);
//! - `ProcToFile` dst → src when the flags have EXEC (a tainted file that is executed or
//!   loaded taints the process doing it);
//! - `FileToFile` src → dst (rename from → to);
//! - `ProcToProc` src → dst (ptrace: tracer to target).
//!
//! Nothing else carries taint: reads, network flows, deletes and container membership do not.
//!
//! Time is the window number. A flow sighted at window `w` is live for windows
//! `w ..= w + ttl - 1`; a later sighting extends it. A seed (an actor that completed a cone
//! match) sighted at `w` is live the same way. At window `w`,
//! `tainted(w) = { (node, seed, entity) : seed live at w, entity reachable from seed over
//! flows live at w, entity != seed }`, and the output is the change between consecutive
//! windows: `+1` when a triple enters, `-1` when it leaves. Nodes never mix: a flow or seed
//! of one node is invisible to every other node.

use ritma_schemas::records::{edge_flags, Edge, EdgeKind};
use ritma_schemas::Id128;
use std::collections::{BTreeMap, BTreeSet, VecDeque};

/// The directed taint flows an edge carries: none, one, or (a ProcToFile that both wrote
/// and executed the file) two.
pub fn taint_flows(edge: &Edge) -> impl Iterator<Item = (Id128, Id128)> {
    let forward = match edge.kind {
        EdgeKind::ExecLineage | EdgeKind::FileToFile | EdgeKind::ProcToProc => true,
        EdgeKind::ProcToFile => {
            edge.flags & (edge_flags::WRITE | edge_flags::CREATE | edge_flags::RENAME) != 0
        }
        EdgeKind::ProcToFlow | EdgeKind::ContainerToProc => false,
    };
    let backward = edge.kind == EdgeKind::ProcToFile && edge.flags & edge_flags::EXEC != 0;
    let forward = forward.then_some((edge.src, edge.dst));
    let backward = backward.then_some((edge.dst, edge.src));
    forward.into_iter().chain(backward)
}

/// One change of the tainted set: `entity` became reachable from `seed` on `node` at
/// `window` (`diff` = +1), or stopped being reachable (`diff` = -1).
#[derive(
    Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
pub struct TaintChange {
    pub node: u32,
    pub seed: Id128,
    pub entity: Id128,
    pub window: u64,
    pub diff: i64,
}

/// The windows something was sighted in, per key, ascending (most keys have one or two).
type Sightings<K> = BTreeMap<K, Vec<u64>>;

/// Adds `window` to ascending `seen` (usually at the end).
fn sighted(seen: &mut Vec<u64>, window: u64) {
    match seen.last() {
        Some(&last) if last >= window => {
            if let Err(at) = seen.binary_search(&window) {
                seen.insert(at, window);
            }
        }
        _ => seen.push(window),
    }
}

/// Reference tracker: recomputes reachability from the live seeds at every window where
/// anything can change and diffs it with the previous result. Its cost per window follows
/// what the seeds reach, not the whole flow graph, so `ritma verify` can rebuild the taint
/// relation of a busy node.
///
/// Contract: `push` sightings for a window, then `close` windows in increasing order.
/// `close(w)` reports every change at every window in `(previous close, w]`, each at its own
/// window — a window where no input arrived but a flow or seed expires still gets its
/// retractions — so calling it for every window or only some gives the same changes. A
/// sighting pushed for a window already closed is not reported retroactively; it counts from
/// the next close while it is still live.
pub struct TaintTracker {
    ttl_windows: u64,
    /// Per node, flows by (from, to): the flows out of an entity are one range.
    flows: BTreeMap<u32, Sightings<(Id128, Id128)>>,
    seeds: BTreeMap<u32, Sightings<Id128>>,
    tainted: BTreeSet<(u32, Id128, Id128)>,
    closed: Option<u64>,
    /// Windows where a sighting starts or ends: the only ones where reachability can change.
    instants: BTreeSet<u64>,
    /// Sightings dead by then are dropped at the first close reaching it (amortised).
    next_forget: u64,
}

impl TaintTracker {
    pub fn new(ttl_windows: u64) -> Self {
        Self {
            ttl_windows,
            flows: BTreeMap::new(),
            seeds: BTreeMap::new(),
            tainted: BTreeSet::new(),
            closed: None,
            instants: BTreeSet::new(),
            next_forget: 0,
        }
    }

    /// Records the edges and seeds of `node` sighted at `window`.
    pub fn push(&mut self, node: u32, window: u64, edges: &[Edge], seeds: &[Id128]) {
        let flows = self.flows.entry(node).or_default();
        let mut any = false;
        for flow in edges.iter().flat_map(taint_flows) {
            sighted(flows.entry(flow).or_default(), window);
            any = true;
        }
        let live_seeds = self.seeds.entry(node).or_default();
        for seed in seeds {
            sighted(live_seeds.entry(*seed).or_default(), window);
            any = true;
        }
        if any {
            self.instants.insert(window);
            self.instants
                .insert(window.saturating_add(self.ttl_windows));
        }
    }

    /// The changes at every window up to `window` not yet closed, sorted by window, then
    /// node, seed and entity.
    pub fn close(&mut self, window: u64) -> Vec<TaintChange> {
        if self.closed.is_some_and(|c| window <= c) {
            return Vec::new();
        }
        let after = self.closed;
        let open = |w: u64| after.is_none_or(|c| w > c) && w < window;
        // Reachability only changes where a sighting starts or ends; `window` itself also
        // picks up sightings pushed late.
        let later = self.instants.split_off(&window.saturating_add(1));
        let mut instants: BTreeSet<u64> = std::mem::replace(&mut self.instants, later)
            .into_iter()
            .filter(|&w| open(w))
            .collect();
        instants.insert(window);
        let mut changes = Vec::new();
        for at in instants {
            let now = self.tainted_at(at);
            changes.extend(self.tainted.difference(&now).map(|t| change(t, at, -1)));
            changes.extend(now.difference(&self.tainted).map(|t| change(t, at, 1)));
            self.tainted = now;
        }
        changes.sort_by_key(|c| (c.window, c.node, c.seed, c.entity, c.diff));
        self.closed = Some(window);
        if window >= self.next_forget {
            self.forget_dead(window);
            self.next_forget = window.saturating_add((self.ttl_windows / 4).max(1));
        }
        changes
    }

    fn tainted_at(&self, window: u64) -> BTreeSet<(u32, Id128, Id128)> {
        let ttl = self.ttl_windows;
        let mut tainted = BTreeSet::new();
        for (&node, seeds) in &self.seeds {
            let flows = self.flows.get(&node);
            for (&seed, seen) in seeds {
                if !live(seen, window, ttl) {
                    continue;
                }
                let mut reached = BTreeSet::from([seed]);
                let mut queue = VecDeque::from([seed]);
                while let Some(at) = queue.pop_front() {
                    let out = flows
                        .into_iter()
                        .flat_map(|f| f.range((at, [0u8; 16])..=(at, [0xffu8; 16])));
                    for (&(_, to), seen) in out {
                        if live(seen, window, ttl) && reached.insert(to) {
                            queue.push_back(to);
                        }
                    }
                }
                reached.remove(&seed);
                tainted.extend(reached.into_iter().map(|entity| (node, seed, entity)));
            }
        }
        tainted
    }

    /// Drops sightings that can never be live again once `window` is closed.
    fn forget_dead(&mut self, window: u64) {
        let ttl = self.ttl_windows;
        let dead = |s: &u64| s.saturating_add(ttl) <= window;
        for flows in self.flows.values_mut() {
            flows
                .values_mut()
                .for_each(|seen| seen.retain(|s| !dead(s)));
            flows.retain(|_, seen| !seen.is_empty());
        }
        for seeds in self.seeds.values_mut() {
            seeds
                .values_mut()
                .for_each(|seen| seen.retain(|s| !dead(s)));
            seeds.retain(|_, seen| !seen.is_empty());
        }
        self.flows.retain(|_, m| !m.is_empty());
        self.seeds.retain(|_, m| !m.is_empty());
    }
}

/// Live at `window`: sighted at some `s <= window` with `window < s + ttl`. The latest such
/// sighting lives longest, so it alone decides.
fn live(seen: &[u64], window: u64, ttl: u64) -> bool {
    let upto = seen.partition_point(|&s| s <= window);
    upto > 0 && window < seen[upto - 1].saturating_add(ttl)
}

/// The changes at windows up to `window` taken as one change at `window`: the relation's
/// difference from the sealed window before (windows a downtime left out are not sealed,
/// FORMAT.md §8.5). A pair that entered and left again makes no change.
pub fn changes_by(window: u64, mut changes: Vec<TaintChange>) -> Vec<TaintChange> {
    changes.sort_by_key(|c| (c.node, c.seed, c.entity));
    let mut net: Vec<TaintChange> = Vec::with_capacity(changes.len());
    for c in changes {
        match net.last_mut() {
            Some(n) if (n.node, n.seed, n.entity) == (c.node, c.seed, c.entity) => n.diff += c.diff,
            _ => net.push(TaintChange { window, ..c }),
        }
    }
    net.retain(|c| c.diff != 0);
    net.sort_by_key(|c| (c.window, c.node, c.seed, c.entity, c.diff));
    net
}

fn change(&(node, seed, entity): &(u32, Id128, Id128), window: u64, diff: i64) -> TaintChange {
    TaintChange {
        node,
        seed,
        entity,
        window,
        diff,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changes_by_a_window_are_the_net_changes_since_the_window_before() {
        let (a, b, c) = ([1u8; 16], [2u8; 16], [3u8; 16]);
        let changes = vec![
            change(&(0, a, b), 4, 1),
            change(&(0, a, c), 5, 1),
            change(&(0, a, b), 7, -1),
            change(&(0, a, c), 8, -1),
            change(&(0, a, c), 9, 1),
        ];
        assert_eq!(changes_by(10, changes), vec![change(&(0, a, c), 10, 1)]);
        assert_eq!(
            changes_by(3, vec![change(&(1, b, a), 3, -1)]),
            vec![change(&(1, b, a), 3, -1)]
        );
    }

    const A: Id128 = [0xa; 16];
    const B: Id128 = [0xb; 16];
    const C: Id128 = [0xc; 16];
    const D: Id128 = [0xd; 16];
    const F: Id128 = [0xf; 16];
    const G: Id128 = [0x1f; 16];

    fn edge(kind: EdgeKind, src: Id128, dst: Id128, flags: u8) -> Edge {
        Edge {
            kind,
            src,
            dst,
            flags,
            first_t_ns: 0,
            last_t_ns: 0,
            count: 1,
        }
    }

    fn fork(parent: Id128, child: Id128) -> Edge {
        edge(EdgeKind::ExecLineage, parent, child, edge_flags::CREATE)
    }

    fn file(actor: Id128, file: Id128, flags: u8) -> Edge {
        edge(EdgeKind::ProcToFile, actor, file, flags)
    }

    fn rename(from: Id128, to: Id128) -> Edge {
        edge(EdgeKind::FileToFile, from, to, edge_flags::RENAME)
    }

    fn ch(node: u32, seed: Id128, entity: Id128, window: u64, diff: i64) -> TaintChange {
        TaintChange {
            node,
            seed,
            entity,
            window,
            diff,
        }
    }

    /// The tainted set after applying `changes` in order, failing on an impossible change.
    fn apply(set: &mut BTreeSet<(u32, Id128, Id128)>, changes: &[TaintChange]) {
        for c in changes {
            let t = (c.node, c.seed, c.entity);
            match c.diff {
                1 => assert!(set.insert(t), "{c:?} entered twice"),
                -1 => assert!(set.remove(&t), "{c:?} left without entering"),
                d => panic!("diff {d}"),
            }
        }
    }

    #[test]
    fn flows_follow_the_edge_kind_and_flags() {
        let flows = |e: Edge| taint_flows(&e).collect::<Vec<_>>();
        assert_eq!(flows(fork(A, B)), [(A, B)]);
        assert_eq!(flows(rename(F, G)), [(F, G)]);
        assert_eq!(
            flows(edge(EdgeKind::ProcToProc, A, B, edge_flags::WRITE)),
            [(A, B)]
        );
        for f in [edge_flags::WRITE, edge_flags::CREATE, edge_flags::RENAME] {
            assert_eq!(flows(file(A, F, f | edge_flags::READ)), [(A, F)]);
        }
        assert_eq!(flows(file(A, F, edge_flags::EXEC)), [(F, A)]);
        assert_eq!(
            flows(file(A, F, edge_flags::WRITE | edge_flags::EXEC)),
            [(A, F), (F, A)]
        );
        for f in [edge_flags::READ, edge_flags::DELETE, 0] {
            assert!(flows(file(A, F, f)).is_empty());
        }
        for kind in [EdgeKind::ProcToFlow, EdgeKind::ContainerToProc] {
            assert!(flows(edge(kind, A, B, 0xff)).is_empty());
        }
    }

    #[test]
    fn a_seed_taints_its_direct_children_and_writes() {
        let mut t = TaintTracker::new(3);
        t.push(
            0,
            5,
            &[
                fork(A, B),
                file(A, F, edge_flags::WRITE),
                file(A, G, edge_flags::READ),
            ],
            &[A],
        );
        assert!(t.close(4).is_empty());
        assert_eq!(t.close(5), [ch(0, A, B, 5, 1), ch(0, A, F, 5, 1)]);
        assert!(t.close(6).is_empty());
    }

    #[test]
    fn edges_without_a_live_seed_taint_nothing() {
        let mut t = TaintTracker::new(3);
        t.push(0, 0, &[fork(A, B), fork(B, C)], &[]);
        assert!(t.close(0).is_empty());
        t.push(0, 1, &[], &[B]);
        assert_eq!(t.close(1), [ch(0, B, C, 1, 1)]);
    }

    #[test]
    fn taint_is_transitive_and_edge_order_does_not_matter() {
        let edges = [fork(C, D), fork(B, C), fork(A, B)];
        let mut t = TaintTracker::new(2);
        t.push(0, 0, &edges, &[A]);
        assert_eq!(
            t.close(0),
            [ch(0, A, B, 0, 1), ch(0, A, C, 0, 1), ch(0, A, D, 0, 1)]
        );
    }

    #[test]
    fn executing_a_tainted_file_taints_the_executor() {
        let mut t = TaintTracker::new(3);
        t.push(0, 0, &[file(A, F, edge_flags::CREATE)], &[A]);
        t.push(0, 1, &[file(B, F, edge_flags::EXEC), fork(B, C)], &[]);
        assert_eq!(t.close(0), [ch(0, A, F, 0, 1)]);
        assert_eq!(t.close(1), [ch(0, A, B, 1, 1), ch(0, A, C, 1, 1)]);
        // Reading the file is not executing it.
        let mut r = TaintTracker::new(3);
        r.push(
            0,
            0,
            &[file(A, F, edge_flags::WRITE), file(B, F, edge_flags::READ)],
            &[A],
        );
        assert_eq!(r.close(0), [ch(0, A, F, 0, 1)]);
    }

    #[test]
    fn rename_chains_carry_taint_to_the_final_name() {
        let mut t = TaintTracker::new(3);
        t.push(
            0,
            0,
            &[
                file(A, B, edge_flags::WRITE),
                rename(B, C),
                rename(C, D),
                file(G, D, edge_flags::EXEC),
            ],
            &[A],
        );
        assert_eq!(
            t.close(0),
            [
                ch(0, A, B, 0, 1),
                ch(0, A, C, 0, 1),
                ch(0, A, D, 0, 1),
                ch(0, A, G, 0, 1)
            ]
        );
    }

    #[test]
    fn cycles_terminate_and_never_list_the_seed_itself() {
        let mut t = TaintTracker::new(3);
        t.push(
            0,
            0,
            &[
                edge(EdgeKind::ProcToProc, A, B, edge_flags::WRITE),
                edge(EdgeKind::ProcToProc, B, A, edge_flags::WRITE),
                fork(B, C),
                fork(C, B),
            ],
            &[A, B],
        );
        assert_eq!(
            t.close(0),
            [
                ch(0, A, B, 0, 1),
                ch(0, A, C, 0, 1),
                ch(0, B, A, 0, 1),
                ch(0, B, C, 0, 1)
            ]
        );
    }

    #[test]
    fn a_flow_ages_out_exactly_ttl_windows_after_its_sighting() {
        let mut t = TaintTracker::new(3);
        t.push(0, 10, &[fork(A, B)], &[A]);
        t.push(0, 11, &[fork(B, C)], &[A]);
        assert_eq!(t.close(10), [ch(0, A, B, 10, 1)]);
        assert_eq!(t.close(11), [ch(0, A, C, 11, 1)]);
        assert!(t.close(12).is_empty());
        // A→B was sighted at 10: live through 12, gone at 13, taking C with it.
        assert_eq!(t.close(13), [ch(0, A, B, 13, -1), ch(0, A, C, 13, -1)]);
        assert!(t.close(14).is_empty());
    }

    #[test]
    fn a_seed_ages_out_like_a_flow() {
        let mut t = TaintTracker::new(2);
        t.push(0, 0, &[fork(A, B)], &[A]);
        t.push(0, 1, &[fork(A, B)], &[]);
        t.push(0, 2, &[fork(A, B)], &[]);
        assert_eq!(t.close(0), [ch(0, A, B, 0, 1)]);
        assert!(t.close(1).is_empty());
        assert_eq!(t.close(2), [ch(0, A, B, 2, -1)]);
    }

    #[test]
    fn a_new_sighting_extends_life() {
        let mut t = TaintTracker::new(3);
        t.push(0, 0, &[fork(A, B)], &[A]);
        t.push(0, 2, &[fork(A, B)], &[A]);
        assert_eq!(t.close(0), [ch(0, A, B, 0, 1)]);
        for w in 1..5 {
            assert!(t.close(w).is_empty(), "window {w}");
        }
        assert_eq!(t.close(5), [ch(0, A, B, 5, -1)]);
    }

    #[test]
    fn a_gap_between_sightings_retracts_then_reasserts() {
        let mut t = TaintTracker::new(1);
        t.push(0, 0, &[fork(A, B)], &[A]);
        t.push(0, 2, &[fork(A, B)], &[A]);
        assert_eq!(t.close(0), [ch(0, A, B, 0, 1)]);
        assert_eq!(t.close(1), [ch(0, A, B, 1, -1)]);
        assert_eq!(t.close(2), [ch(0, A, B, 2, 1)]);
        assert_eq!(t.close(3), [ch(0, A, B, 3, -1)]);
    }

    #[test]
    fn skipped_closes_still_report_each_change_at_its_own_window() {
        let mut t = TaintTracker::new(2);
        t.push(0, 0, &[fork(A, B)], &[A]);
        t.push(0, 3, &[fork(A, C)], &[A]);
        assert_eq!(
            t.close(9),
            [
                ch(0, A, B, 0, 1),
                ch(0, A, B, 2, -1),
                ch(0, A, C, 3, 1),
                ch(0, A, C, 5, -1)
            ]
        );
        assert!(t.close(9).is_empty(), "a window closes once");
        assert!(t.close(4).is_empty(), "closing backwards reports nothing");
    }

    #[test]
    fn nodes_are_isolated_even_with_the_same_ids() {
        let mut t = TaintTracker::new(3);
        t.push(0, 0, &[fork(A, B)], &[A]);
        t.push(1, 0, &[fork(B, C)], &[]);
        t.push(2, 0, &[fork(B, D)], &[B]);
        assert_eq!(t.close(0), [ch(0, A, B, 0, 1), ch(2, B, D, 0, 1)]);
        assert_eq!(t.close(3), [ch(0, A, B, 3, -1), ch(2, B, D, 3, -1)]);
    }

    #[test]
    fn a_late_sighting_counts_from_the_next_close() {
        let mut t = TaintTracker::new(3);
        assert!(t.close(5).is_empty());
        t.push(0, 4, &[fork(A, B)], &[A]);
        assert_eq!(t.close(6), [ch(0, A, B, 6, 1)]);
        assert_eq!(t.close(7), [ch(0, A, B, 7, -1)]);
    }

    #[test]
    fn changes_always_sum_to_the_live_set() {
        // A pseudo-random run: applying the changes must never add twice or remove what is
        // absent, and once everything has aged out the set must be empty.
        let ids: Vec<Id128> = (0..8u8).map(|i| [i; 16]).collect();
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = |n: usize| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x % n as u64) as usize
        };
        let mut t = TaintTracker::new(3);
        let mut set = BTreeSet::new();
        let mut total = 0;
        for w in 0..60 {
            for node in 0..2 {
                let edges: Vec<Edge> = (0..next(4))
                    .map(|_| fork(ids[next(8)], ids[next(8)]))
                    .collect();
                let seeds: Vec<Id128> = (0..next(2)).map(|_| ids[next(8)]).collect();
                t.push(node, w, &edges, &seeds);
            }
            let changes = t.close(w);
            total += changes.len();
            apply(&mut set, &changes);
        }
        apply(&mut set, &t.close(62));
        assert!(set.is_empty());
        assert!(
            total > 20,
            "the run should exercise taint, got {total} changes"
        );
    }
}
