//! graph-edge: canonical events → graph edges, one per (kind, src, dst) per window,
//! with flags OR-ed and first/last time and count aggregated (FORMAT.md §3.4).
//! Failed syscalls create no edge: nothing happened to the object.

use crate::canonicalize::{CanonicalEvent, Detail, NO_OBJECT};
use ritma_schemas::records::{atom_flags, edge_flags, Edge, EdgeKind, EventType};
use ritma_schemas::Id128;
use std::collections::{BTreeMap, HashMap};
use std::hash::{BuildHasher, Hash, Hasher};

/// An implied edge: (kind, src, dst, flags).
pub type EdgeSpec = (EdgeKind, Id128, Id128, u8);

/// The edges an event implies (at most two), as (kind, src, dst, flags).
pub fn edges_of(e: &CanonicalEvent) -> Vec<EdgeSpec> {
    implied_edges(e).as_slice().to_vec()
}

/// At most two implied edges, without a heap allocation per event.
struct Implied {
    edges: [EdgeSpec; 2],
    len: usize,
}

impl Implied {
    const NONE: Implied = Implied {
        edges: [(EdgeKind::ExecLineage, [0; 16], [0; 16], 0); 2],
        len: 0,
    };

    fn one(edge: EdgeSpec) -> Self {
        Implied {
            edges: [edge, edge],
            len: 1,
        }
    }

    fn as_slice(&self) -> &[EdgeSpec] {
        &self.edges[..self.len]
    }
}

fn implied_edges(e: &CanonicalEvent) -> Implied {
    let a = &e.atom;
    if a.flags & atom_flags::FAILED != 0 {
        return Implied::NONE;
    }
    let file_flags = |f: u32| {
        let mut x = 0u8;
        if f & atom_flags::READ != 0 {
            x |= edge_flags::READ;
        }
        if f & atom_flags::WRITE != 0 {
            x |= edge_flags::WRITE;
        }
        if f & (atom_flags::CREATE | atom_flags::TRUNCATE) != 0 {
            x |= edge_flags::CREATE;
        }
        x
    };
    let actor = a.actor;
    let one = Implied::one;
    match (a.event_type, &e.detail) {
        (EventType::Exec, _) => one((EdgeKind::ProcToFile, actor, a.object, edge_flags::EXEC)),
        (EventType::Fork, Detail::Fork { child, .. }) => {
            one((EdgeKind::ExecLineage, actor, *child, edge_flags::CREATE))
        }
        (EventType::Open, _) => one((EdgeKind::ProcToFile, actor, a.object, file_flags(a.flags))),
        (EventType::Unlink, _) => one((EdgeKind::ProcToFile, actor, a.object, edge_flags::DELETE)),
        (EventType::Rename, Detail::Rename { from }) => Implied {
            edges: [
                (EdgeKind::FileToFile, *from, a.object, edge_flags::RENAME),
                (EdgeKind::ProcToFile, actor, a.object, edge_flags::RENAME),
            ],
            len: 2,
        },
        (EventType::Connect, _) => one((EdgeKind::ProcToFlow, actor, a.object, edge_flags::SEND)),
        (EventType::Accept | EventType::Bind, _) => {
            one((EdgeKind::ProcToFlow, actor, a.object, edge_flags::RECV))
        }
        (EventType::Ptrace, _) if a.object != NO_OBJECT => {
            one((EdgeKind::ProcToProc, actor, a.object, edge_flags::WRITE))
        }
        (EventType::MemfdCreate, _) => {
            one((EdgeKind::ProcToFile, actor, a.object, edge_flags::CREATE))
        }
        (EventType::ModuleLoad | EventType::BpfProgLoad, _) => {
            one((EdgeKind::ProcToFile, actor, a.object, edge_flags::EXEC))
        }
        // A network connection made stdio: input from it (fd 0), or output to it.
        (EventType::FdDup, _) if a.flags & atom_flags::STDIO_NET != 0 => {
            let dir = if a.flags & atom_flags::READ != 0 {
                edge_flags::RECV
            } else {
                edge_flags::SEND
            };
            one((EdgeKind::ProcToFlow, actor, a.object, dir))
        }
        _ => Implied::NONE,
    }
}

/// An edge's key (FORMAT.md §3.4) as the table holds it.
#[derive(Clone, Copy, PartialEq, Eq)]
struct EdgeKey {
    kind: EdgeKind,
    src: Id128,
    dst: Id128,
}

impl Hash for EdgeKey {
    // Ids are BLAKE3 output already: eight bytes of each are as good as hashing all 33.
    fn hash<H: Hasher>(&self, state: &mut H) {
        let word = |id: &Id128| u64::from_le_bytes(id[..8].try_into().expect("8 bytes"));
        state.write_u64(word(&self.src) ^ word(&self.dst).rotate_left(29) ^ self.kind as u64);
    }
}

/// Finishes an [`EdgeKey`]'s word with a per-table secret seed and a multiply-xorshift
/// mix, so crafted ids cannot aim at one bucket.
#[derive(Clone, Copy)]
struct SeededKeyHasher {
    seed: u64,
    word: u64,
}

impl Hasher for SeededKeyHasher {
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.word = (self.word.rotate_left(8) ^ b as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        }
    }

    fn write_u64(&mut self, w: u64) {
        self.word ^= w;
    }

    fn finish(&self) -> u64 {
        let mut z = (self.word ^ self.seed).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z ^= z >> 31;
        z.wrapping_mul(0x94d0_49bb_1331_11eb) ^ (z >> 29)
    }
}

#[derive(Clone, Copy)]
struct SeededKeyState(u64);

impl Default for SeededKeyState {
    fn default() -> Self {
        SeededKeyState(std::collections::hash_map::RandomState::new().hash_one(0x5eed_u64))
    }
}

impl BuildHasher for SeededKeyState {
    type Hasher = SeededKeyHasher;
    fn build_hasher(&self) -> SeededKeyHasher {
        SeededKeyHasher {
            seed: self.0,
            word: 0,
        }
    }
}

type EdgeMap = HashMap<EdgeKey, Edge, SeededKeyState>;

/// The edges of the open windows, deduplicated by key.
#[derive(Default)]
pub struct EdgeTable {
    windows: BTreeMap<u64, EdgeMap>,
    /// An emptied map of a closed window, kept for its capacity.
    spare: Option<EdgeMap>,
}

impl EdgeTable {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds an edge seen at `t_ns` (window-relative) in `window`.
    pub fn add(
        &mut self,
        window: u64,
        kind: EdgeKind,
        src: Id128,
        dst: Id128,
        flags: u8,
        t_ns: i64,
    ) {
        let map = match self.windows.entry(window) {
            std::collections::btree_map::Entry::Occupied(o) => o.into_mut(),
            std::collections::btree_map::Entry::Vacant(v) => {
                v.insert(self.spare.take().unwrap_or_default())
            }
        };
        map.entry(EdgeKey { kind, src, dst })
            .and_modify(|e| {
                e.flags |= flags;
                e.first_t_ns = e.first_t_ns.min(t_ns);
                e.last_t_ns = e.last_t_ns.max(t_ns);
                e.count += 1;
            })
            .or_insert(Edge {
                kind,
                src,
                dst,
                flags,
                first_t_ns: t_ns,
                last_t_ns: t_ns,
                count: 1,
            });
    }

    /// Adds every edge an event implies.
    pub fn push(&mut self, e: &CanonicalEvent) {
        for &(kind, src, dst, flags) in implied_edges(e).as_slice() {
            self.add(e.window, kind, src, dst, flags, e.atom.t_ns);
        }
    }

    /// Closes `window`: its edges sorted by key (the canonical order).
    pub fn close(&mut self, window: u64) -> Vec<Edge> {
        let Some(mut map) = self.windows.remove(&window) else {
            return Vec::new();
        };
        let mut edges: Vec<Edge> = map.drain().map(|(_, e)| e).collect();
        edges.sort_unstable_by(|a, b| {
            (a.kind as u8, &a.src, &a.dst).cmp(&(b.kind as u8, &b.src, &b.dst))
        });
        self.spare = Some(map);
        edges
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::canonicalize::{canonicalize, RunContext};
    use ritma_sources::raw::{RawBody, RawEvent, Task};

    fn ev(seq: u64, mono: u64, body: RawBody) -> CanonicalEvent {
        let ctx = RunContext {
            node: "n".into(),
            boot_id: [0; 16],
            window_len_ns: 1_000_000_000,
            wall_minus_mono_ns: 0,
        };
        let raw = RawEvent {
            seq,
            mono_ns: mono,
            task: Task {
                pid: 5,
                start_ns: 1,
                ..Task::default()
            },
            body,
        };
        canonicalize(&ctx, ctx.window_of(mono), raw)
    }

    #[test]
    fn repeated_edges_aggregate_and_failures_add_nothing() {
        let mut t = EdgeTable::new();
        t.push(&ev(
            1,
            100,
            RawBody::Open {
                path: b"/a".to_vec(),
                flags: 0,
                mode: 0,
                result: 3,
                given: None,
            },
        ));
        t.push(&ev(
            2,
            300,
            RawBody::Open {
                path: b"/a".to_vec(),
                flags: 1,
                mode: 0,
                result: 3,
                given: None,
            },
        ));
        t.push(&ev(
            3,
            200,
            RawBody::Open {
                path: b"/a".to_vec(),
                flags: 1,
                mode: 0,
                result: -13,
                given: None,
            },
        ));
        t.push(&ev(
            4,
            1_000_000_100,
            RawBody::Open {
                path: b"/a".to_vec(),
                flags: 0,
                mode: 0,
                result: 3,
                given: None,
            },
        ));
        let w0 = t.close(0);
        assert_eq!(w0.len(), 1);
        assert_eq!(w0[0].flags, edge_flags::READ | edge_flags::WRITE);
        assert_eq!(
            (w0[0].first_t_ns, w0[0].last_t_ns, w0[0].count),
            (100, 300, 2)
        );
        assert_eq!(t.close(1).len(), 1);
        assert!(t.close(0).is_empty());
    }

    #[test]
    fn edges_come_out_in_key_order_whatever_the_arrival_order() {
        let events: Vec<_> = (0..50u64)
            .map(|i| {
                ev(
                    i,
                    i * 10,
                    RawBody::Open {
                        path: format!("/f{}", i % 7).into_bytes(),
                        flags: (i % 2) as u32,
                        mode: 0,
                        result: 1,
                        given: None,
                    },
                )
            })
            .collect();
        let mut a = EdgeTable::new();
        let mut b = EdgeTable::new();
        for e in &events {
            a.push(e);
        }
        for e in events.iter().rev() {
            b.push(e);
        }
        let (ea, eb) = (a.close(0), b.close(0));
        assert_eq!(ea, eb);
        assert!(ea.windows(2).all(|w| w[0].key() < w[1].key()));
    }

    #[test]
    fn edges_whose_ids_share_their_hashed_bytes_stay_apart() {
        // The table hashes only the ids' first eight bytes: keys alike there, and keys
        // whose words cancel out (src and dst swapped), must still be told apart.
        let id = |head: u8, tail: u8| {
            let mut x = [head; 16];
            x[15] = tail;
            x
        };
        let mut t = EdgeTable::new();
        let keys = [
            (EdgeKind::ProcToFile, id(1, 0), id(2, 0)),
            (EdgeKind::ProcToFile, id(1, 9), id(2, 0)),
            (EdgeKind::ProcToFile, id(1, 0), id(2, 9)),
            (EdgeKind::ProcToFlow, id(1, 0), id(2, 0)),
            (EdgeKind::ProcToFile, id(2, 0), id(1, 0)),
            (EdgeKind::ProcToFile, [0; 16], [0; 16]),
        ];
        for (round, t_ns) in [(0, 5), (1, 7)] {
            for (i, &(kind, src, dst)) in keys.iter().enumerate() {
                t.add(3, kind, src, dst, 1 << ((i + round) % 8), t_ns);
            }
        }
        let edges = t.close(3);
        assert_eq!(edges.len(), keys.len());
        assert!(edges.windows(2).all(|w| w[0].key() < w[1].key()));
        for e in &edges {
            assert_eq!((e.count, e.first_t_ns, e.last_t_ns), (2, 5, 7));
            let i = keys
                .iter()
                .position(|k| *k == (e.kind, e.src, e.dst))
                .unwrap();
            assert_eq!(e.flags, (1 << i) | (1 << ((i + 1) % 8)));
        }
        // A closed window's map is reused, empty, for the next window.
        t.add(4, EdgeKind::ProcToFile, id(1, 0), id(2, 0), 1, 0);
        assert_eq!(t.close(4).len(), 1);
    }

    #[test]
    fn rename_links_files_and_fork_links_processes() {
        let r = ev(
            1,
            0,
            RawBody::Rename {
                old: b"/a".to_vec(),
                new: b"/b".to_vec(),
                flags: 0,
                result: 0,
                old_given: None,
                new_given: None,
            },
        );
        let kinds: Vec<_> = edges_of(&r).iter().map(|e| e.0).collect();
        assert_eq!(kinds, vec![EdgeKind::FileToFile, EdgeKind::ProcToFile]);
        let f = ev(
            2,
            0,
            RawBody::Fork {
                child_pid: 9,
                child_start_ns: 5,
            },
        );
        assert_eq!(edges_of(&f)[0].0, EdgeKind::ExecLineage);
        assert_eq!(edges_of(&f)[0].2, f.atom.object);
    }
}
