//! Incremental taint / provenance reachability in differential dataflow: the semantics of
//! `ritma_operators::taint` (which documents them, and whose `TaintTracker` is the
//! reference this is tested against), maintained as flows and seeds are sighted and age out.
//!
//! Each sighting at window `w` becomes `+1` at `w` and `-1` at `w + ttl`; `distinct` turns
//! overlapping sightings into presence; per (node, seed), `iterate` + `join` extends the
//! reached set along live flows until it stops growing. Every key starts with the node, so
//! nodes never mix, and differential's exchange by key hash makes the result the same for
//! any number of workers.

use differential_dataflow::operators::Iterate;
use differential_dataflow::{AsCollection, VecCollection};
use ritma_operators::taint::TaintChange;
use ritma_schemas::Id128;
use std::collections::{BTreeMap, BTreeSet};
use timely::container::CapacityContainerBuilder;
use timely::dataflow::channels::pact::Pipeline;
use timely::dataflow::operators::generic::builder_rc::OperatorBuilder;
use timely::dataflow::operators::generic::OutputBuilder;
use timely::dataflow::operators::{Capability, Operator};
use timely::dataflow::StreamVec;

/// A flow or seed sighted, with the window it was sighted in when that is not its timestamp.
pub type Sighting<D> = (D, Option<u64>);

/// What `taint_changes` makes: the changes, and the live sightings at each cut.
pub struct TaintStreams<'scope> {
    pub changes: StreamVec<'scope, u64, TaintChange>,
    /// Per cut and node, one share per worker: the live flows `((node, from, to), last window)`.
    pub live_flows: StreamVec<'scope, u64, LiveAtCut<(u32, Id128, Id128)>>,
    /// Likewise the live seeds `((node, actor), last window)`.
    pub live_seeds: StreamVec<'scope, u64, LiveAtCut<(u32, Id128)>>,
}

/// The changes of the tainted set, each at timestamp = its window.
///
/// `flows` are `(node, from, to)` taint flows (`ritma_operators::taint::taint_flows` of the
/// window's edges) and `seeds` are `(node, actor)`, each at the timestamp of the window it
/// was sighted in. A change happens at a window where no input arrives when something ages
/// out there, once the inputs' frontier reaches that window. Changes are made only for the
/// windows the frontier reaches before the inputs close: a caller that wants the changes up
/// to window `w` advances the inputs past `w` first (what was still live at the close is
/// never retracted, as no window follows it).
///
/// A sighting may name the window it was made in (`Some(w)`, earlier than its timestamp):
/// a restored state's live sightings re-enter so, at the window before the cut, and age
/// out as they would have. `None` is a sighting at its timestamp.
///
/// `cuts` are `(node, cut)` at timestamp `cut - 1`, on every worker: for each, the node's
/// flows and seeds live at `cut - 1` come out at that timestamp (a saved state's share of
/// the relation; re-fed so, they give the same changes from the cut on).
pub fn taint_changes<'scope>(
    flows: StreamVec<'scope, u64, Sighting<(u32, Id128, Id128)>>,
    seeds: StreamVec<'scope, u64, Sighting<(u32, Id128)>>,
    cuts: StreamVec<'scope, u64, (u32, u64)>,
    ttl_windows: u64,
) -> TaintStreams<'scope> {
    // Flows are the bulk of the state: one arrangement, outside the loop, holds them. A flow
    // sighted twice has count 2; no `distinct` is needed as the loop's `distinct` makes
    // reachability a set whatever the multiplicities.
    let (live_flows, flows_at_cut) = lifetimes(
        flows,
        cuts.clone(),
        ttl_windows,
        |f| f.0,
        "taint-flow-lifetimes",
    );
    let live_flows = live_flows
        .map(|(node, from, to)| ((node, from), to))
        .arrange_by_key();
    let (live_seeds, seeds_at_cut) =
        lifetimes(seeds, cuts, ttl_windows, |s| s.0, "taint-seed-lifetimes");
    // Reached sets keyed by (node, entity) so they join with flows keyed by (node, from).
    let roots = live_seeds.map(|(node, seed)| ((node, seed), seed));
    let reached = roots.clone().iterate(|scope, reached| {
        let flows = live_flows.enter(scope);
        let roots = roots.enter(scope);
        reached
            .arrange_by_key()
            .join_core(flows, |&(node, _), &seed, &to| Some(((node, to), seed)))
            .concat(roots)
            .distinct()
    });
    let tainted = reached
        .filter(|((_, entity), seed)| entity != seed)
        .map(|((node, entity), seed)| (node, seed, entity))
        .consolidate();
    TaintStreams {
        changes: to_changes(tainted),
        live_flows: flows_at_cut,
        live_seeds: seeds_at_cut,
    }
}

/// What one window contributes to a single-seed query: its number, its taint flows, and
/// whether the seed is sighted (live) there.
pub type QueryWindow = (u64, Vec<(Id128, Id128)>, bool);

/// The changes of the set reachable from `seed` over `windows` (ascending), as
/// `(entity, window, enters)` in window order: `taint_changes` on one worker with the seed
/// sighted in every window marked so. Changes after the last window are left out, as in a
/// taint index (FORMAT.md §8.5): the range ends there, nothing is known after it.
pub fn reachable_from(
    seed: Id128,
    windows: Vec<QueryWindow>,
    ttl_windows: u64,
) -> Vec<(Id128, u64, bool)> {
    use std::sync::{Arc, Mutex};
    use timely::dataflow::operators::core::Inspect;
    use timely::dataflow::operators::vec::Map;
    use timely::dataflow::operators::Probe;
    use timely::dataflow::{InputHandleVec, ProbeHandle};

    let Some(last) = windows.last().map(|w| w.0) else {
        return Vec::new();
    };
    let out: Arc<Mutex<Vec<TaintChange>>> = Arc::new(Mutex::new(Vec::new()));
    let sink = out.clone();
    timely::execute_directly(move |worker| {
        let mut flow_in: InputHandleVec<u64, (u32, Id128, Id128)> = InputHandleVec::new();
        let mut seed_in: InputHandleVec<u64, (u32, Id128)> = InputHandleVec::new();
        let probe = ProbeHandle::new();
        worker.dataflow::<u64, _, _>(|scope| {
            let flows = flow_in.to_stream(scope).map(|f| (f, None));
            let seeds = seed_in.to_stream(scope).map(|s| (s, None));
            let no_cuts = timely::dataflow::operators::generic::operator::empty(scope);
            taint_changes(flows, seeds, no_cuts, ttl_windows)
                .changes
                .inspect(move |c| sink.lock().expect("taint sink").push(c.clone()))
                .probe_with(&probe);
        });
        for (window, flows, seeded) in windows {
            flow_in.advance_to(window);
            seed_in.advance_to(window);
            for (from, to) in flows {
                flow_in.send((0, from, to));
            }
            if seeded {
                seed_in.send((0, seed));
            }
            flow_in.advance_to(window + 1);
            seed_in.advance_to(window + 1);
            worker.step_while(|| probe.less_than(flow_in.time()));
        }
    });
    let mut changes = std::mem::take(&mut *out.lock().expect("taint out"));
    changes.retain(|c| c.window <= last);
    changes.sort_by_key(|c| (c.window, c.entity, c.diff));
    changes
        .into_iter()
        .map(|c| (c.entity, c.window, c.diff > 0))
        .collect()
}

/// What a node's sightings were at a cut, from one worker: `(node, window before the cut,
/// [(flow or seed, last window sighted)])`, each live at the window before the cut
/// (sighted before the cut, aging out at the cut or later). Sent at the window before the cut.
pub type LiveAtCut<D> = (u32, u64, Vec<(D, u64)>);

/// Each sighting at `w`, live for `w ..= w + ttl - 1`, as the updates `+1 @ w`, `-1 @ w + ttl`
/// (a sighting naming an earlier window `s`: `+1` at its timestamp, `-1 @ s + ttl`); and, for
/// each `(node, cut)` of `cuts` (at timestamp `cut - 1`), the node's sightings live then.
///
/// The retraction is sent only once the input reaches `w + ttl`: sent at once, it would wait
/// in the arrangement's batcher for the whole lifetime, re-sorted at every window, at about
/// twice the memory of the sighting held here. Retractions not yet due when the input ends
/// are dropped: no window follows the end (merged all at once, they set the peak memory
/// of a long replay). The retractions held are also what a saved state needs of the taint
/// relation, so a cut reads them rather than another copy of the live sightings.
fn lifetimes<'scope, D: Clone + Ord + 'static>(
    sightings: StreamVec<'scope, u64, Sighting<D>>,
    cuts: StreamVec<'scope, u64, (u32, u64)>,
    ttl_windows: u64,
    node_of: fn(&D) -> u32,
    name: &str,
) -> (
    VecCollection<'scope, u64, D>,
    StreamVec<'scope, u64, LiveAtCut<D>>,
) {
    let mut builder = OperatorBuilder::new(name.to_owned(), sightings.scope());
    let mut sightings = builder.new_input(sightings, Pipeline);
    let mut cuts = builder.new_input(cuts, Pipeline);
    let (updates_out, updates) = builder.new_output::<Vec<(D, u64, isize)>>();
    let (live_out, live) = builder.new_output::<Vec<LiveAtCut<D>>>();
    let mut updates_out = OutputBuilder::<_, CapacityContainerBuilder<_>>::from(updates_out);
    let mut live_out = OutputBuilder::<_, CapacityContainerBuilder<_>>::from(live_out);
    builder.build(move |_initial| {
        // Retractions not yet due, by window, each with the capability to send them.
        let mut due: BTreeMap<u64, (Capability<u64>, Vec<D>)> = BTreeMap::new();
        // Cuts not yet answered, by cut, with the capability at the window before it.
        let mut pending: BTreeMap<u64, (Capability<u64>, BTreeSet<u32>)> = BTreeMap::new();
        move |frontiers| {
            let (seen_frontier, cut_frontier) = (&frontiers[0], &frontiers[1]);
            let mut updates_out = updates_out.activate();
            let mut live_out = live_out.activate();
            sightings.for_each(|cap, data| {
                // A message with an empty stamp claims no window, so it has no sighting.
                let Some(&window) = cap.least() else { return };
                let mut session = updates_out.session(&cap);
                for (d, seen) in data.drain(..) {
                    let end = seen.unwrap_or(window).saturating_add(ttl_windows);
                    // A restored sighting that aged out before the cut is not live.
                    if end <= window {
                        continue;
                    }
                    session.give((d.clone(), window, 1));
                    due.entry(end)
                        .or_insert_with(|| (cap.delayed(&end, 0), Vec::new()))
                        .1
                        .push(d);
                }
            });
            cuts.for_each(|cap, data| {
                let Some(&window) = cap.least() else { return };
                for (node, cut) in data.drain(..) {
                    pending
                        .entry(cut)
                        .or_insert_with(|| (cap.delayed(&window, 1), BTreeSet::new()))
                        .1
                        .insert(node);
                }
            });
            // A cut is answered once every sighting before it has arrived, and before any
            // retraction at or after it is let go (that waits for the cuts' frontier too).
            while let Some(next) = pending.first_entry() {
                let cut = *next.key();
                if seen_frontier.less_than(&cut) {
                    break;
                }
                let (at, nodes) = next.remove();
                let mut live: BTreeMap<u32, BTreeMap<D, u64>> =
                    nodes.into_iter().map(|n| (n, BTreeMap::new())).collect();
                // Live at `cut - 1`: retracted at the cut or later, sighted before the cut.
                for (&end, (_, ds)) in due.range(cut..cut.saturating_add(ttl_windows)) {
                    let born = end.saturating_sub(ttl_windows);
                    for d in ds {
                        if let Some(of_node) = live.get_mut(&node_of(d)) {
                            let last = of_node.entry(d.clone()).or_insert(born);
                            *last = (*last).max(born);
                        }
                    }
                }
                let window = *at.time();
                live_out.session(&at).give_iterator(
                    live.into_iter()
                        .map(|(node, of_node)| (node, window, of_node.into_iter().collect())),
                );
            }
            // The inputs have ended: nothing comes after them, so nothing ages out after them.
            if seen_frontier.is_empty() && cut_frontier.is_empty() {
                due.clear();
            }
            // Due once no sighting before its window can arrive any more, nor a cut.
            while let Some(next) = due.first_entry() {
                if seen_frontier.less_than(next.key()) || cut_frontier.less_than(next.key()) {
                    break;
                }
                let (at, pending) = next.remove();
                let end = *at.time();
                updates_out
                    .session(&at)
                    .give_iterator(pending.into_iter().map(|d| (d, end, -1)));
            }
        }
    });
    (updates.as_collection(), live)
}

/// A consolidated collection's updates as `TaintChange`s, each at its own window's timestamp.
fn to_changes<'scope>(
    tainted: VecCollection<'scope, u64, (u32, Id128, Id128)>,
) -> StreamVec<'scope, u64, TaintChange> {
    tainted
        .inner
        .unary::<CapacityContainerBuilder<Vec<TaintChange>>, _, _, _>(
            Pipeline,
            "taint-changes",
            |_, _| {
                move |input, output| {
                    let port = output.output_index();
                    input.for_each(|cap, updates| {
                        // A batch may hold several windows; each goes out at its own.
                        updates.sort_by_key(|&(_, window, _)| window);
                        for same_window in updates.chunk_by(|a, b| a.1 == b.1) {
                            let at = cap.delayed(&same_window[0].1, port);
                            output.session(&at).give_iterator(same_window.iter().map(
                                |&((node, seed, entity), window, diff)| TaintChange {
                                    node,
                                    seed,
                                    entity,
                                    window,
                                    diff: diff as i64,
                                },
                            ));
                        }
                    });
                }
            },
        )
}

#[cfg(test)]
mod tests {
    use super::*;
    use ritma_operators::taint::{taint_flows, TaintTracker};
    use ritma_schemas::records::{edge_flags, Edge, EdgeKind};
    use std::sync::{Arc, Mutex};
    use timely::dataflow::operators::core::Inspect;
    use timely::dataflow::operators::Probe;
    use timely::dataflow::{InputHandleVec, ProbeHandle};

    /// What one node sighted in one window.
    #[derive(Clone)]
    struct Sighted {
        node: u32,
        window: u64,
        edges: Vec<Edge>,
        seeds: Vec<Id128>,
    }

    /// Runs `taint_changes` on `workers` workers, each feeding a share of the sightings;
    /// returns every change with the timestamp it came out at, sorted.
    fn run_dataflow(workers: usize, input: &[Sighted], ttl: u64) -> Vec<(u64, TaintChange)> {
        // Through the last expiry, as the reference: changes come only for windows the
        // inputs reach before they close.
        let through = input.iter().map(|s| s.window).max().unwrap_or(0) + ttl;
        run_dataflow_through(workers, input, ttl, through)
    }

    /// `run_dataflow` with the inputs advanced past window `through`, then closed.
    fn run_dataflow_through(
        workers: usize,
        input: &[Sighted],
        ttl: u64,
        through: u64,
    ) -> Vec<(u64, TaintChange)> {
        run_with_cuts(
            workers,
            input,
            ttl,
            &Span {
                from: 0,
                through,
                cuts: vec![],
                restored: Live::default(),
            },
        )
        .0
    }

    /// The live sightings at cuts, merged over workers: flows and seeds with their last window.
    #[derive(Clone, Debug, Default, PartialEq)]
    struct Live {
        flows: BTreeMap<LiveKey<(u32, Id128, Id128)>, u64>,
        seeds: BTreeMap<LiveKey<(u32, Id128)>, u64>,
    }

    /// (node, the window it came out at, the flow or seed).
    type LiveKey<D> = (u32, u64, D);

    /// Which windows a run feeds, the cuts it marks, and the sightings it restores first.
    struct Span {
        from: u64,
        through: u64,
        /// `(node, cut)`, marked at `cut - 1` on every worker.
        cuts: Vec<(u32, u64)>,
        /// Re-fed at window `from - 1` as sightings naming their window.
        restored: Live,
    }

    /// `taint_changes` over `span` of `input` on `workers` workers: the changes with the
    /// timestamp each came out at, sorted, and the live sightings at the cuts (keyed by
    /// node, the window they came out at, and the sighting).
    fn run_with_cuts(
        workers: usize,
        input: &[Sighted],
        ttl: u64,
        span: &Span,
    ) -> (Vec<(u64, TaintChange)>, Live) {
        let input = Arc::new(input.to_vec());
        let (from, through) = (span.from, span.through);
        let (cuts, restored) = (Arc::new(span.cuts.clone()), Arc::new(span.restored.clone()));
        let out: Arc<Mutex<Vec<(u64, TaintChange)>>> = Arc::new(Mutex::new(Vec::new()));
        let live: Arc<Mutex<Live>> = Arc::default();
        let (sink, live_sink) = (out.clone(), live.clone());
        timely::execute(timely::Config::process(workers), move |worker| {
            let (me, peers) = (worker.index(), worker.peers());
            let mut flow_in: InputHandleVec<u64, Sighting<(u32, Id128, Id128)>> =
                InputHandleVec::new();
            let mut seed_in: InputHandleVec<u64, Sighting<(u32, Id128)>> = InputHandleVec::new();
            let mut cut_in: InputHandleVec<u64, (u32, u64)> = InputHandleVec::new();
            let probe = ProbeHandle::new();
            let (sink, live_sink, live_sink2) =
                (sink.clone(), live_sink.clone(), live_sink.clone());
            worker.dataflow::<u64, _, _>(|scope| {
                let out = taint_changes(
                    flow_in.to_stream(scope),
                    seed_in.to_stream(scope),
                    cut_in.to_stream(scope),
                    ttl,
                );
                out.changes
                    .inspect_core(move |event| {
                        if let Ok((stamp, changes)) = event {
                            let at = *stamp.expect_singleton();
                            let mut sink = sink.lock().expect("sink");
                            sink.extend(changes.iter().map(|c| (at, c.clone())));
                        }
                    })
                    .probe_with(&probe);
                out.live_flows
                    .inspect(move |(node, at, flows)| {
                        let mut live = live_sink.lock().expect("live");
                        for &(f, w) in flows {
                            let last = live.flows.entry((*node, *at, f)).or_insert(w);
                            *last = (*last).max(w);
                        }
                    })
                    .probe_with(&probe);
                out.live_seeds
                    .inspect(move |(node, at, seeds)| {
                        let mut live = live_sink2.lock().expect("live");
                        for &(s, w) in seeds {
                            let last = live.seeds.entry((*node, *at, s)).or_insert(w);
                            *last = (*last).max(w);
                        }
                    })
                    .probe_with(&probe);
            });
            let start = from.saturating_sub(1);
            for input in [
                &mut flow_in as &mut dyn AdvanceTo,
                &mut seed_in,
                &mut cut_in,
            ] {
                input.advance(start);
            }
            if me == 0 {
                for (&(_, _, f), &w) in &restored.flows {
                    flow_in.send((f, Some(w)));
                }
                for (&(_, _, s), &w) in &restored.seeds {
                    seed_in.send((s, Some(w)));
                }
            }
            for window in start..=through {
                if window >= from {
                    let here = input.iter().filter(|s| s.window == window);
                    for (_, s) in here.enumerate().filter(|(i, _)| i % peers == me) {
                        for (from, to) in s.edges.iter().flat_map(taint_flows) {
                            flow_in.send(((s.node, from, to), None));
                        }
                        for &seed in &s.seeds {
                            seed_in.send(((s.node, seed), None));
                        }
                    }
                }
                // Every worker marks the cut, as every attribution shard does.
                for &(node, cut) in cuts.iter().filter(|c| c.1 == window + 1) {
                    cut_in.send((node, cut));
                }
                for input in [
                    &mut flow_in as &mut dyn AdvanceTo,
                    &mut seed_in,
                    &mut cut_in,
                ] {
                    input.advance(window + 1);
                }
                worker.step_while(|| probe.less_than(flow_in.time()));
            }
        })
        .expect("timely runs");
        let mut out = std::mem::take(&mut *out.lock().expect("out"));
        out.sort_by_key(|(at, c)| (*at, c.node, c.seed, c.entity, c.diff));
        let live = std::mem::take(&mut *live.lock().expect("live"));
        (out, live)
    }

    /// The three inputs of a test run, advanced together.
    trait AdvanceTo {
        fn advance(&mut self, window: u64);
    }

    impl<D: Clone + 'static> AdvanceTo for InputHandleVec<u64, D> {
        fn advance(&mut self, window: u64) {
            self.advance_to(window);
        }
    }

    /// The reference of live sightings at `cut` for `node`: each flow and seed sighted
    /// before the cut whose last sighting is live at `cut - 1`, with that window.
    fn live_reference(input: &[Sighted], ttl: u64, node: u32, cut: u64, live: &mut Live) {
        for s in input.iter().filter(|s| s.node == node && s.window < cut) {
            if s.window + ttl < cut {
                continue;
            }
            for (f, t) in s.edges.iter().flat_map(taint_flows) {
                let last = live
                    .flows
                    .entry((node, cut - 1, (node, f, t)))
                    .or_insert(s.window);
                *last = (*last).max(s.window);
            }
            for &seed in &s.seeds {
                let last = live
                    .seeds
                    .entry((node, cut - 1, (node, seed)))
                    .or_insert(s.window);
                *last = (*last).max(s.window);
            }
        }
    }

    /// The reference: the tracker closed at every window through the last expiry.
    fn run_reference(input: &[Sighted], ttl: u64) -> Vec<TaintChange> {
        let mut tracker = TaintTracker::new(ttl);
        let last = input.iter().map(|s| s.window).max().unwrap_or(0);
        let mut changes = Vec::new();
        for window in 0..=last + ttl {
            for s in input.iter().filter(|s| s.window == window) {
                tracker.push(s.node, s.window, &s.edges, &s.seeds);
            }
            changes.extend(tracker.close(window));
        }
        changes
    }

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

    /// Deterministic xorshift, so the random case is the same on every run.
    struct Rng(u64);

    impl Rng {
        fn below(&mut self, n: u64) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0 % n
        }
    }

    /// Random windows over a small id pool shared by every node (so mixing nodes would show),
    /// with some windows left without input.
    fn random_input(seed: u64, windows: u64, nodes: u32) -> Vec<Sighted> {
        let mut rng = Rng(seed);
        let id = |i: u64| [i as u8 + 1; 16];
        let kinds = EdgeKind::ALL;
        let mut input = Vec::new();
        for window in 0..windows {
            if rng.below(5) == 0 {
                continue;
            }
            for node in 0..nodes {
                let edges = (0..rng.below(7))
                    .map(|_| {
                        let kind = kinds[rng.below(kinds.len() as u64) as usize];
                        let flags = 1u8 << rng.below(8) | 1u8 << rng.below(8);
                        edge(kind, id(rng.below(8)), id(rng.below(8)), flags)
                    })
                    .collect();
                let seeds = if rng.below(3) == 0 {
                    vec![id(rng.below(8))]
                } else {
                    Vec::new()
                };
                input.push(Sighted {
                    node,
                    window,
                    edges,
                    seeds,
                });
            }
        }
        input
    }

    #[test]
    fn taint_matches_the_reference_for_any_worker_count() {
        let ttl = 3;
        let input = random_input(0x5eed_1234_abcd_ef01, 60, 3);
        let expected = run_reference(&input, ttl);
        // The case must exercise what it claims to: entries, retractions, several nodes,
        // and taint more than one hop from its seed.
        let (adds, removes) = (
            expected.iter().filter(|c| c.diff == 1).count(),
            expected.iter().filter(|c| c.diff == -1).count(),
        );
        assert!(adds > 30, "only {adds} entries");

        assert_eq!(
            adds, removes,
            "everything ages out by the last window + ttl"
        );
        assert_eq!(
            expected
                .iter()
                .map(|c| c.node)
                .collect::<std::collections::BTreeSet<_>>()
                .len(),
            3
        );
        let direct: std::collections::BTreeSet<(u32, Id128, Id128)> = input
            .iter()
            .flat_map(|s| {
                s.edges
                    .iter()
                    .flat_map(taint_flows)
                    .map(|(f, t)| (s.node, f, t))
            })
            .collect();
        assert!(
            expected
                .iter()
                .any(|c| !direct.contains(&(c.node, c.seed, c.entity))),
            "no transitive taint in the random case"
        );
        for workers in 1..=3 {
            let got = run_dataflow(workers, &input, ttl);
            for (at, c) in &got {
                assert_eq!(*at, c.window, "a change comes out at its own window");
            }
            let got: Vec<TaintChange> = got.into_iter().map(|(_, c)| c).collect();
            assert_eq!(got, expected, "{workers} workers");
        }
    }

    #[test]
    fn live_sightings_at_a_cut_restore_the_same_changes_for_any_worker_count() {
        let ttl = 6;
        let input = random_input(0x5eed_c0ff_ee00_0001, 50, 3);
        let whole = run_dataflow_through(1, &input, ttl, 49);
        // Cuts of two nodes at 20, one at 35 (a node's cut need not be another's).
        let cuts = vec![(0, 20), (2, 20), (1, 35)];
        let mut expected = Live::default();
        for &(node, cut) in &cuts {
            live_reference(&input, ttl, node, cut, &mut expected);
        }
        assert!(
            expected.flows.len() > 10 && expected.seeds.len() >= 2,
            "{} flows, {} seeds",
            expected.flows.len(),
            expected.seeds.len()
        );
        for workers in 1..=3 {
            let span = Span {
                from: 0,
                through: 49,
                cuts: cuts.clone(),
                restored: Live::default(),
            };
            let (changes, live) = run_with_cuts(workers, &input, ttl, &span);
            assert_eq!(
                changes, whole,
                "marking cuts changes nothing ({workers} workers)"
            );
            assert_eq!(live, expected, "{workers} workers");
        }
        // A run restarted at 20 from the live sightings of every node there, fed the input
        // from 20 on, makes the uninterrupted run's changes from 20 on.
        let mut at_20 = Live::default();
        for node in 0..3 {
            live_reference(&input, ttl, node, 20, &mut at_20);
        }
        for workers in 1..=3 {
            let span = Span {
                from: 20,
                through: 49,
                cuts: vec![],
                restored: at_20.clone(),
            };
            let (changes, _) = run_with_cuts(workers, &input, ttl, &span);
            let changes: Vec<_> = changes.into_iter().filter(|(at, _)| *at >= 20).collect();
            let tail: Vec<_> = whole.iter().filter(|(at, _)| *at >= 20).cloned().collect();
            assert!(!tail.is_empty());
            assert_eq!(changes, tail, "{workers} workers");
        }
    }

    #[test]
    fn a_written_file_executed_later_taints_the_executor_until_it_ages_out() {
        const A: Id128 = [1; 16];
        const B: Id128 = [2; 16];
        const C: Id128 = [3; 16];
        const F: Id128 = [0xf; 16];
        const R: Id128 = [0x10; 16];
        let fork = |p, c| edge(EdgeKind::ExecLineage, p, c, edge_flags::CREATE);
        let file = |a, f, flags| edge(EdgeKind::ProcToFile, a, f, flags);
        let input = [
            // Seed A forks B, B writes F; A only reads R, which carries no taint.
            Sighted {
                node: 0,
                window: 0,
                edges: vec![
                    fork(A, B),
                    file(B, F, edge_flags::WRITE),
                    file(A, R, edge_flags::READ),
                ],
                seeds: vec![A],
            },
            // C executes F: tainted through F while F's write is live.
            Sighted {
                node: 0,
                window: 1,
                edges: vec![file(C, F, edge_flags::EXEC)],
                seeds: vec![],
            },
            // The same ids on another node, without a seed: nothing.
            Sighted {
                node: 1,
                window: 0,
                edges: vec![fork(A, B), file(B, F, edge_flags::WRITE)],
                seeds: vec![],
            },
        ];
        let ch = |seed, entity, window, diff| TaintChange {
            node: 0,
            seed,
            entity,
            window,
            diff,
        };
        // ttl 2: the seed and window-0 flows live at 0 and 1, all gone at 2.
        let expected = vec![
            ch(A, B, 0, 1),
            ch(A, F, 0, 1),
            ch(A, C, 1, 1),
            ch(A, B, 2, -1),
            ch(A, C, 2, -1),
            ch(A, F, 2, -1),
        ];
        assert_eq!(run_reference(&input, 2), expected);
        for workers in [1, 3] {
            let got: Vec<TaintChange> = run_dataflow(workers, &input, 2)
                .into_iter()
                .map(|(at, c)| {
                    assert_eq!(at, c.window);
                    c
                })
                .collect();
            assert_eq!(got, expected, "{workers} workers");
        }
        // With ttl 3 everything ages out at window 3; inputs closed once they reach window 2
        // leave those retractions unmade: no window comes after the close.
        let longer = run_reference(&input, 3);
        assert!(longer[3..].iter().all(|c| c.window == 3 && c.diff == -1));
        for workers in [1, 3] {
            let got: Vec<TaintChange> = run_dataflow_through(workers, &input, 3, 1)
                .into_iter()
                .map(|(_, c)| c)
                .collect();
            assert_eq!(got, longer[..3], "{workers} workers");
        }
    }
}
