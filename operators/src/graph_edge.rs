//! graph-edge: canonical events → graph edges, one per (kind, src, dst) per window,
//! with flags OR-ed and first/last time and count aggregated (FORMAT.md §3.4).
//! Failed syscalls create no edge: nothing happened to the object.

use crate::canonicalize::{CanonicalEvent, Detail, NO_OBJECT};
use ritma_schemas::records::{atom_flags, edge_flags, Edge, EdgeKind, EventType};
use ritma_schemas::Id128;
use std::collections::BTreeMap;

/// The edges an event implies, as (kind, src, dst, flags).
pub fn edges_of(e: &CanonicalEvent) -> Vec<(EdgeKind, Id128, Id128, u8)> {
    let a = &e.atom;
    if a.flags & atom_flags::FAILED != 0 {
        return Vec::new();
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
    match (a.event_type, &e.detail) {
        (EventType::Exec, _) => vec![(EdgeKind::ProcToFile, actor, a.object, edge_flags::EXEC)],
        (EventType::Fork, Detail::Fork { child, .. }) => {
            vec![(EdgeKind::ExecLineage, actor, *child, edge_flags::CREATE)]
        }
        (EventType::Open, _) => vec![(EdgeKind::ProcToFile, actor, a.object, file_flags(a.flags))],
        (EventType::Unlink, _) => vec![(EdgeKind::ProcToFile, actor, a.object, edge_flags::DELETE)],
        (EventType::Rename, Detail::Rename { from }) => vec![
            (EdgeKind::FileToFile, *from, a.object, edge_flags::RENAME),
            (EdgeKind::ProcToFile, actor, a.object, edge_flags::RENAME),
        ],
        (EventType::Connect, _) => vec![(EdgeKind::ProcToFlow, actor, a.object, edge_flags::SEND)],
        (EventType::Accept | EventType::Bind, _) => {
            vec![(EdgeKind::ProcToFlow, actor, a.object, edge_flags::RECV)]
        }
        (EventType::Ptrace, _) if a.object != NO_OBJECT => {
            vec![(EdgeKind::ProcToProc, actor, a.object, edge_flags::WRITE)]
        }
        (EventType::MemfdCreate, _) => {
            vec![(EdgeKind::ProcToFile, actor, a.object, edge_flags::CREATE)]
        }
        (EventType::ModuleLoad | EventType::BpfProgLoad, _) => {
            vec![(EdgeKind::ProcToFile, actor, a.object, edge_flags::EXEC)]
        }
        _ => Vec::new(),
    }
}

/// The edges of the open windows, deduplicated by key.
#[derive(Default)]
pub struct EdgeTable {
    windows: BTreeMap<u64, BTreeMap<[u8; 33], Edge>>,
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
        let edge = Edge {
            kind,
            src,
            dst,
            flags,
            first_t_ns: t_ns,
            last_t_ns: t_ns,
            count: 1,
        };
        let map = self.windows.entry(window).or_default();
        map.entry(edge.key())
            .and_modify(|e| {
                e.flags |= flags;
                e.first_t_ns = e.first_t_ns.min(t_ns);
                e.last_t_ns = e.last_t_ns.max(t_ns);
                e.count += 1;
            })
            .or_insert(edge);
    }

    /// Adds every edge an event implies.
    pub fn push(&mut self, e: &CanonicalEvent) {
        for (kind, src, dst, flags) in edges_of(e) {
            self.add(e.window, kind, src, dst, flags, e.atom.t_ns);
        }
    }

    /// Closes `window`: its edges sorted by key (the canonical order).
    pub fn close(&mut self, window: u64) -> Vec<Edge> {
        self.windows
            .remove(&window)
            .map(|m| m.into_values().collect())
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::canonicalize::{canonicalize, RunContext};
    use ritma_schemas::records::CaptureMode;
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
        canonicalize(&ctx, ctx.window_of(mono), raw, CaptureMode::Thin)
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
    fn rename_links_files_and_fork_links_processes() {
        let r = ev(
            1,
            0,
            RawBody::Rename {
                old: b"/a".to_vec(),
                new: b"/b".to_vec(),
                flags: 0,
                result: 0,
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
