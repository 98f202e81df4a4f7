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
use std::collections::BTreeMap;
use timely::container::CapacityContainerBuilder;
use timely::dataflow::channels::pact::Pipeline;
use timely::dataflow::operators::{Capability, Operator};
use timely::dataflow::StreamVec;

/// A flow or seed sighted, with the window it was sighted in when that is not its timestamp.
pub type Sighting<D> = (D, Option<u64>);

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
pub fn taint_changes<'scope>(
    flows: StreamVec<'scope, u64, Sighting<(u32, Id128, Id128)>>,
    seeds: StreamVec<'scope, u64, Sighting<(u32, Id128)>>,
    ttl_windows: u64,
) -> StreamVec<'scope, u64, TaintChange> {
    // Flows are the bulk of the state: one arrangement, outside the loop, holds them. A flow
    // sighted twice has count 2; no `distinct` is needed as the loop's `distinct` makes
    // reachability a set whatever the multiplicities.
    let live_flows = lifetimes(flows, ttl_windows, "taint-flow-lifetimes")
        .map(|(node, from, to)| ((node, from), to))
        .arrange_by_key();
    let live_seeds = lifetimes(seeds, ttl_windows, "taint-seed-lifetimes");
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
    to_changes(tainted)
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
            taint_changes(flows, seeds, ttl_windows)
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

/// Each sighting at `w`, live for `w ..= w + ttl - 1`, as the updates `+1 @ w`, `-1 @ w + ttl`
/// (a sighting naming an earlier window `s`: `+1` at its timestamp, `-1 @ s + ttl`).
///
/// The retraction is sent only once the input reaches `w + ttl`: sent at once, it would wait
/// in the arrangement's batcher for the whole lifetime, re-sorted at every window, at about
/// twice the memory of the sighting held here. Retractions not yet due when the input ends
/// are dropped: no window follows the end (merged all at once, they set the peak memory
/// of a long replay).
fn lifetimes<'scope, D: Clone + 'static>(
    sightings: StreamVec<'scope, u64, (D, Option<u64>)>,
    ttl_windows: u64,
    name: &str,
) -> VecCollection<'scope, u64, D> {
    sightings
        .unary_frontier::<CapacityContainerBuilder<Vec<(D, u64, isize)>>, _, _, _>(
            Pipeline,
            name,
            move |_, _| {
                // Retractions not yet due, by window, each with the capability to send them.
                let mut due: BTreeMap<u64, (Capability<u64>, Vec<D>)> = BTreeMap::new();
                move |(input, frontier), output| {
                    let port = output.output_index();
                    input.for_each(|cap, data| {
                        // A message with an empty stamp claims no window, so it has no sighting.
                        let Some(&window) = cap.least() else { return };
                        let mut session = output.session(&cap);
                        for (d, seen) in data.drain(..) {
                            let end = seen.unwrap_or(window).saturating_add(ttl_windows);
                            // A restored sighting that aged out before the cut is not live.
                            if end <= window {
                                continue;
                            }
                            session.give((d.clone(), window, 1));
                            due.entry(end)
                                .or_insert_with(|| (cap.delayed(&end, port), Vec::new()))
                                .1
                                .push(d);
                        }
                    });
                    // The input has ended: nothing comes after it, so nothing ages out after it.
                    if frontier.is_empty() {
                        due.clear();
                    }
                    // Due once no sighting before its window can arrive any more.
                    while let Some(next) = due.first_entry() {
                        if frontier.less_than(next.key()) {
                            break;
                        }
                        let (at, pending) = next.remove();
                        let end = *at.time();
                        output
                            .session(&at)
                            .give_iterator(pending.into_iter().map(|d| (d, end, -1)));
                    }
                }
            },
        )
        .as_collection()
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
    use timely::dataflow::operators::vec::Map;
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
        let input = Arc::new(input.to_vec());
        let out: Arc<Mutex<Vec<(u64, TaintChange)>>> = Arc::new(Mutex::new(Vec::new()));
        let sink = out.clone();
        timely::execute(timely::Config::process(workers), move |worker| {
            let (me, peers) = (worker.index(), worker.peers());
            let mut flow_in: InputHandleVec<u64, (u32, Id128, Id128)> = InputHandleVec::new();
            let mut seed_in: InputHandleVec<u64, (u32, Id128)> = InputHandleVec::new();
            let probe = ProbeHandle::new();
            let sink = sink.clone();
            worker.dataflow::<u64, _, _>(|scope| {
                let flows = flow_in.to_stream(scope).map(|f| (f, None));
                let seeds = seed_in.to_stream(scope).map(|s| (s, None));
                taint_changes(flows, seeds, ttl)
                    .inspect_core(move |event| {
                        if let Ok((stamp, changes)) = event {
                            let at = *stamp.expect_singleton();
                            let mut sink = sink.lock().expect("sink");
                            sink.extend(changes.iter().map(|c| (at, c.clone())));
                        }
                    })
                    .probe_with(&probe);
            });
            for window in 0..=through {
                let here = input.iter().filter(|s| s.window == window);
                for (_, s) in here.enumerate().filter(|(i, _)| i % peers == me) {
                    for (from, to) in s.edges.iter().flat_map(taint_flows) {
                        flow_in.send((s.node, from, to));
                    }
                    for &seed in &s.seeds {
                        seed_in.send((s.node, seed));
                    }
                }
                flow_in.advance_to(window + 1);
                seed_in.advance_to(window + 1);
                worker.step_while(|| probe.less_than(flow_in.time()));
            }
        })
        .expect("timely runs");
        let mut out = std::mem::take(&mut *out.lock().expect("out"));
        out.sort_by_key(|(at, c)| (*at, c.node, c.seed, c.entity, c.diff));
        out
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
