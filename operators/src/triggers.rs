//! Detector cones (FORMAT.md §10): triggers that need a process's own history, which
//! the step language cannot express. They run beside the actor table in the attribute
//! stage, where one process's events arrive in seq order, and fire as ConeInstances
//! like any cone, binding `p` to the process.

use crate::attribute::Attributed;
use crate::canonicalize::CanonicalEvent;
use crate::cone_match::{ConeDef, Detector};
use ritma_schemas::records::{ConeInstance, EventType};
use ritma_schemas::Id128;
use std::collections::{HashMap, HashSet};

/// The destinations one process connected to in one window so far.
#[derive(Clone, Debug)]
struct Fanout {
    window: u64,
    destinations: HashSet<Id128>,
    first_seq: u64,
    first_t_ns: i64,
}

/// The detector cones of a library, run over one shard's events.
pub struct TriggerDetectors {
    cones: Vec<(String, u32, Detector)>,
    fanout: HashMap<Id128, Fanout>,
}

impl TriggerDetectors {
    pub fn new(cones: &[ConeDef]) -> Self {
        TriggerDetectors {
            cones: cones
                .iter()
                .filter_map(|c| c.detector.map(|d| (c.id.clone(), c.version, d)))
                .collect(),
            fanout: HashMap::new(),
        }
    }

    /// Feeds one event (one actor's events in seq order, windows in order) with what the
    /// actor table found of it (the actor's effective uid before it, the executable's
    /// content); returns what fired.
    pub fn push(&mut self, e: &CanonicalEvent, found: &Attributed) -> Vec<ConeInstance> {
        let prev_euid = found.prev_euid;
        let mut fired = Vec::new();
        let a = &e.atom;
        for (id, version, detector) in &self.cones {
            let first = match *detector {
                Detector::Uid0WithoutSetuidExec => {
                    // An exec (of a setuid file) and a set*uid call are the two honest
                    // ways to become root; any other event showing it came from elsewhere.
                    let honest = matches!(
                        a.event_type,
                        EventType::Exec
                            | EventType::Present
                            | EventType::SetUid
                            | EventType::SetGid
                            | EventType::CapSet
                    );
                    let became_root = e.task.euid == 0 && prev_euid.is_some_and(|p| p != 0);
                    (became_root && !honest).then_some((a.seq, a.t_ns))
                }
                Detector::UnknownBinary => (a.event_type == EventType::Exec
                    && found.exe.is_some_and(|x| x.unlisted))
                .then_some((a.seq, a.t_ns)),
                Detector::EgressSpike { destinations } => {
                    if a.event_type != EventType::Connect {
                        continue;
                    }
                    let fresh = || Fanout {
                        window: e.window,
                        destinations: HashSet::new(),
                        first_seq: a.seq,
                        first_t_ns: a.t_ns,
                    };
                    let f = self.fanout.entry(a.actor).or_insert_with(fresh);
                    if f.window != e.window {
                        *f = fresh();
                    }
                    // Fires once per process and window, when the count is reached; the
                    // set stops growing there.
                    let n = f.destinations.len();
                    (n < destinations as usize
                        && f.destinations.insert(a.object)
                        && n + 1 == destinations as usize)
                        .then_some((f.first_seq, f.first_t_ns))
                }
            };
            if let Some((first_seq, t_start_ns)) = first {
                fired.push(ConeInstance {
                    cone_id: id.clone(),
                    cone_version: *version,
                    t_start_ns,
                    first_seq,
                    last_seq: a.seq,
                    count: 1,
                    bindings: vec![("p".to_owned(), a.actor)],
                    exceptions: Vec::new(),
                });
            }
        }
        fired
    }

    /// Forgets the counts of `window` and earlier (windows close in order).
    pub fn close(&mut self, window: u64) {
        self.fanout.retain(|_, f| f.window > window);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cone_match::builtin_cones;
    use ritma_sources::raw::{IdCall, RawBody, SockAddr};

    fn ev(seq: u64, t_ms: u64, pid: u32, euid: u32, body: RawBody) -> CanonicalEvent {
        crate::cone_match::tests::ev(seq, t_ms, pid, euid, body).0
    }

    fn open(path: &str) -> RawBody {
        RawBody::Open {
            path: path.as_bytes().to_vec(),
            flags: 0,
            mode: 0,
            result: 3,
            given: None,
        }
    }

    fn connect(port: u16) -> RawBody {
        RawBody::Connect {
            addr: SockAddr::V4 {
                addr: [127, 0, 0, 1],
                port,
            },
            // Failed attempts count: a scan mostly fails.
            result: -111,
        }
    }

    /// What the actor table found: the previous euid, no executable.
    fn prev(prev_euid: Option<u32>) -> Attributed {
        Attributed {
            comm: ritma_schemas::records::DictEntry::new(
                ritma_schemas::records::DictKind::Comm,
                b"t",
            ),
            container: None,
            prev_euid,
            exe: None,
        }
    }

    fn ids(fired: &[ConeInstance]) -> Vec<&str> {
        fired.iter().map(|c| c.cone_id.as_str()).collect()
    }

    #[test]
    fn an_exec_of_an_unlisted_binary_fires_but_not_a_listed_or_unhashed_one() {
        let mut d = TriggerDetectors::new(&builtin_cones());
        let exec = || RawBody::Exec {
            filename: b"/opt/x".to_vec(),
            argv: vec![],
            argv_truncated: false,
            exe_dev: 1,
            exe_ino: 2,
            given: None,
            stdio_net: 0,
        };
        let with = |unlisted: Option<bool>| Attributed {
            exe: unlisted.map(|unlisted| crate::attribute::ExeFact {
                hash: [1; 32],
                unlisted,
                kept: false,
            }),
            ..prev(Some(1000))
        };
        assert!(d.push(&ev(1, 0, 10, 1000, exec()), &with(None)).is_empty());
        assert!(d
            .push(&ev(2, 1, 10, 1000, exec()), &with(Some(false)))
            .is_empty());
        // Only an exec: the same fact on another event is no trigger.
        assert!(d
            .push(&ev(3, 2, 10, 1000, open("/a")), &with(Some(true)))
            .is_empty());
        let fired = d.push(&ev(4, 3, 10, 1000, exec()), &with(Some(true)));
        assert_eq!(ids(&fired), ["unknown_binary"]);
        assert_eq!((fired[0].first_seq, fired[0].last_seq), (4, 4));
    }

    #[test]
    fn root_from_nowhere_fires_but_not_from_exec_or_setuid_or_first_sight() {
        let mut d = TriggerDetectors::new(&builtin_cones());
        // First sight as root: nothing to compare with.
        assert!(d.push(&ev(1, 0, 10, 0, open("/a")), &prev(None)).is_empty());
        // Root to root, or staying unprivileged: nothing.
        assert!(d
            .push(&ev(2, 1, 10, 0, open("/a")), &prev(Some(0)))
            .is_empty());
        assert!(d
            .push(&ev(3, 2, 11, 1000, open("/a")), &prev(Some(1000)))
            .is_empty());
        // Becoming root by exec of a setuid file or by a set*uid call is honest.
        let exec = RawBody::Exec {
            filename: b"/usr/bin/sudo".to_vec(),
            argv: vec![],
            argv_truncated: false,
            exe_dev: 0,
            exe_ino: 0,
            given: None,
            stdio_net: 0,
        };
        assert!(d.push(&ev(4, 3, 11, 0, exec), &prev(Some(1000))).is_empty());
        let setuid = RawBody::SetUid {
            call: IdCall::Set,
            ids: [0, u32::MAX, u32::MAX],
            result: 0,
        };
        assert!(d
            .push(&ev(5, 4, 12, 0, setuid), &prev(Some(1000)))
            .is_empty());
        // Any other event that shows root after an unprivileged one fires, binding p.
        let e = ev(6, 5, 13, 0, open("/etc/shadow"));
        let fired = d.push(&e, &prev(Some(1000)));
        assert_eq!(ids(&fired), ["uid0_without_setuid_exec"]);
        let c = &fired[0];
        assert_eq!((c.first_seq, c.last_seq, c.count), (6, 6, 1));
        assert_eq!(c.bindings, vec![("p".to_owned(), e.atom.actor)]);
        assert_eq!(c.t_start_ns, e.atom.t_ns);
    }

    #[test]
    fn an_egress_spike_fires_once_per_process_and_window_at_the_destination_count() {
        let mut d = TriggerDetectors::new(&builtin_cones());
        let mut fired = Vec::new();
        // One process tries 250 ports in window 0; another connects 500 times to one
        // port and 63 times to distinct ones: one spike.
        for i in 0..250 {
            fired.extend(d.push(
                &ev(i, i / 4, 20, 1000, connect(i as u16)),
                &prev(Some(1000)),
            ));
        }
        for i in 0..500 {
            fired.extend(d.push(
                &ev(1000 + i, 100 + i / 2, 21, 1000, connect(5432)),
                &prev(Some(1000)),
            ));
        }
        for i in 0..62 {
            fired.extend(d.push(
                &ev(2000 + i, 400 + i, 21, 1000, connect(i as u16)),
                &prev(Some(1000)),
            ));
        }
        assert_eq!(ids(&fired), ["egress_spike"]);
        assert_eq!((fired[0].first_seq, fired[0].last_seq), (0, 63));
        // Other events do not count; the count starts again in the next window.
        fired.clear();
        d.close(0);
        for i in 0..63 {
            fired.extend(d.push(
                &ev(3000 + i, 1000 + i, 20, 1000, connect(i as u16)),
                &prev(Some(1000)),
            ));
            fired.extend(d.push(
                &ev(4000 + i, 1000 + i, 20, 1000, open("/x")),
                &prev(Some(1000)),
            ));
        }
        assert!(fired.is_empty());
        fired.extend(d.push(&ev(5000, 1500, 20, 1000, connect(999)), &prev(Some(1000))));
        assert_eq!(ids(&fired), ["egress_spike"]);
        assert_eq!((fired[0].first_seq, fired[0].last_seq), (3000, 5000));
    }

    #[test]
    fn detector_cones_parse_strictly() {
        let bad = [
            "cone x 1\ndetector egress_spike\n",
            "cone x 1\ndetector egress_spike 0\n",
            "cone x 1\ndetector nothing\n",
            "cone x 1\nwithin 1s\ndetector uid0_without_setuid_exec\n",
            "cone x 1\ndetector uid0_without_setuid_exec\nstep exec\n",
            "cone x 1\ndetector uid0_without_setuid_exec\ndetector egress_spike 5\n",
        ];
        for text in bad {
            assert!(ConeDef::parse("x.cone", text).is_err(), "{text}");
        }
        let ok = ConeDef::parse("x.cone", "cone x 1\ndetector egress_spike 7\n").unwrap();
        assert_eq!(ok.detector, Some(Detector::EgressSpike { destinations: 7 }));
    }
}
