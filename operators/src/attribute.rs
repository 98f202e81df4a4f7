//! attribute: who did it. Keeps a bounded table of actors (processes) and, for every
//! window, emits one `ActorRecord` per actor active in it: pid, parent, credentials,
//! executable, command, namespaces, and the container and systemd unit derived from
//! its cgroup path.
//!
//! Every field comes from the events of the actor itself (raw events carry the
//! parent's start time), so the table can be sharded by actor id across workers.
//! An exit evicts; so does idleness beyond a bound; a hard cap evicts the
//! least recently active. An actor seen again after eviction loses only what it
//! cannot re-derive (its executable until its next exec), counted as a miss.

use crate::canonicalize::{CanonicalEvent, Detail};
use ritma_schemas::records::{ActorRecord, DictEntry, DictKind};
use ritma_schemas::state::{ActorEntry, ExeEntry as SavedExe};
use ritma_schemas::{Hash32, Id128};
use std::collections::{BTreeMap, BTreeSet, HashMap};

/// Container and service named by a cgroup path.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CgroupAttribution {
    /// Container id (64 hex) from docker, containerd, cri-o or a Kubernetes pod path.
    pub container: Option<Vec<u8>>,
    /// Kubernetes pod uid, when the path names one.
    pub pod: Option<Vec<u8>>,
    /// systemd unit (`*.service`, or `*.scope` for sessions and containers).
    pub service: Option<Vec<u8>>,
}

fn is_hex64(s: &[u8]) -> bool {
    s.len() == 64 && s.iter().all(u8::is_ascii_hexdigit)
}

/// Reads container, pod and unit from a cgroup path (v1 or v2 layouts of docker,
/// containerd, cri-o, Kubernetes and systemd).
pub fn parse_cgroup_path(path: &[u8]) -> CgroupAttribution {
    let mut a = CgroupAttribution::default();
    for part in path.split(|&b| b == b'/').filter(|p| !p.is_empty()) {
        // "docker-<id>.scope", "cri-containerd-<id>.scope", "crio-<id>.scope", "libpod-<id>.scope"
        let stem = part.strip_suffix(b".scope").unwrap_or(part);
        let id = stem.rsplit(|&b| b == b'-').next().unwrap_or(stem);
        if is_hex64(id) {
            a.container = Some(id.to_vec());
        }
        // "kubepods-burstable-pod<uid>.slice" (uid with _), or "pod<uid>" (v1, with -)
        let pod_part = part.strip_suffix(b".slice").unwrap_or(part);
        if let Some(i) = pod_part.windows(3).rposition(|w| w == b"pod") {
            let uid: Vec<u8> = pod_part[i + 3..]
                .iter()
                .map(|&b| if b == b'_' { b'-' } else { b })
                .collect();
            if uid.len() == 36 && uid.iter().all(|b| b.is_ascii_hexdigit() || *b == b'-') {
                a.pod = Some(uid);
            }
        }
        if part.ends_with(b".service") || (part.ends_with(b".scope") && a.container.is_none()) {
            a.service = Some(part.to_vec());
        }
    }
    a
}

/// Limits of the actor table.
#[derive(Clone, Copy, Debug)]
pub struct ActorTableConfig {
    /// Most actors kept.
    pub capacity: usize,
    /// Actors idle for more windows than this are evicted.
    pub idle_windows: u64,
}

impl Default for ActorTableConfig {
    fn default() -> Self {
        ActorTableConfig {
            capacity: 1 << 16,
            idle_windows: 3600,
        }
    }
}

#[derive(Clone, Debug)]
struct ActorState {
    record: ActorRecord,
    last_window: u64,
    exited: bool,
}

/// Counters the window record and metrics report.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AttributeStats {
    /// Events of an actor the table did not hold (first sight or after eviction).
    pub misses: u64,
    pub evicted_exit: u64,
    pub evicted_idle: u64,
    pub evicted_capacity: u64,
}

/// What attributing one event found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Attributed {
    /// The dictionary entry of the actor's command name (sealed in the event's window).
    pub comm: DictEntry,
    /// The container the actor runs in, if its cgroup names one.
    pub container: Option<Id128>,
    /// The actor's effective uid before this event (None when the table did not hold it).
    pub prev_euid: Option<u32>,
    /// For an exec or present event: what the trace says of its executable's content.
    pub exe: Option<ExeFact>,
}

/// What the capture side recorded of an executable's content (its exes frame entry).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ExeFact {
    /// Plain BLAKE3 of the file.
    pub hash: Hash32,
    /// The sensor had a baseline of known binaries and this one was not in it.
    pub unlisted: bool,
    /// The bytes are in the store's CAS (Full capture kept them).
    pub kept: bool,
}

/// What a cgroup path says about its processes.
#[derive(Clone, Debug, Default)]
struct CgroupNames {
    /// The path the names were read from (a saved state keeps it, FORMAT.md §3.15).
    path: Vec<u8>,
    container: Option<Id128>,
    service: Option<Id128>,
    dict: Vec<DictEntry>,
}

/// What an actor table holds between windows (`ActorTable::export`): actors by id,
/// cgroup paths by id, executables by (dev, ino).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SavedTable {
    pub actors: Vec<ActorEntry>,
    pub cgroups: Vec<(u64, Vec<u8>)>,
    pub exes: Vec<SavedExe>,
}

/// The actor table of one shard.
pub struct ActorTable {
    config: ActorTableConfig,
    actors: HashMap<Id128, ActorState>,
    /// (last window, actor) of every actor, for idle and capacity eviction in a fixed order.
    by_age: BTreeSet<(u64, Id128)>,
    /// cgroup id → (container, service) and the dictionary entries naming them.
    cgroups: HashMap<u64, CgroupNames>,
    /// (dev, inode) of an executable → what is known of its content.
    exes: HashMap<(u64, u64), ExeFact>,
    /// Actors active per open window.
    active: BTreeMap<u64, BTreeSet<Id128>>,
    pub stats: AttributeStats,
}

impl ActorTable {
    pub fn new(config: ActorTableConfig) -> Self {
        ActorTable {
            config,
            actors: HashMap::new(),
            by_age: BTreeSet::new(),
            cgroups: HashMap::new(),
            exes: HashMap::new(),
            active: BTreeMap::new(),
            stats: AttributeStats::default(),
        }
    }

    pub fn len(&self) -> usize {
        self.actors.len()
    }

    pub fn is_empty(&self) -> bool {
        self.actors.is_empty()
    }

    /// Learns a cgroup's path; returns the dictionary entries it names.
    pub fn add_cgroup(&mut self, cgroup_id: u64, path: &[u8]) -> Vec<DictEntry> {
        let a = parse_cgroup_path(path);
        let mut dict = vec![DictEntry::new(DictKind::Cgroup, path)];
        let container = a.container.map(|c| {
            let e = DictEntry::new(DictKind::Container, &c);
            let id = e.id;
            dict.push(e);
            id
        });
        let service = a.service.map(|s| {
            let e = DictEntry::new(DictKind::Service, &s);
            let id = e.id;
            dict.push(e);
            id
        });
        // A path given again for an id (a reused cgroup inode) replaces the old one.
        let names = CgroupNames {
            path: path.to_vec(),
            container,
            service,
            dict: dict[1..].to_vec(),
        };
        self.cgroups.insert(cgroup_id, names);
        dict
    }

    /// Learns an executable's content hash (a later fact for the same file replaces it).
    pub fn add_exe(&mut self, dev: u64, ino: u64, fact: ExeFact) {
        self.exes.insert((dev, ino), fact);
    }

    /// The dictionary entries naming the containers and services `records` refer to,
    /// once each: a window's records carry the names of the ids they use.
    pub fn cgroup_dict(&self, records: &[ActorRecord]) -> Vec<DictEntry> {
        let mut seen = std::collections::BTreeSet::new();
        records
            .iter()
            .filter(|r| seen.insert(r.cgroup_id))
            .filter_map(|r| self.cgroups.get(&r.cgroup_id))
            .flat_map(|c| c.dict.iter().cloned())
            .collect()
    }

    /// Attributes one event (events of one actor in seq order, windows in order).
    pub fn push(&mut self, e: &CanonicalEvent) -> Attributed {
        let t = &e.task;
        let actor = e.atom.actor;
        let comm = DictEntry::new(DictKind::Comm, &t.comm);
        let (container, service) = self
            .cgroups
            .get(&t.cgroup_id)
            .map_or((None, None), |c| (c.container, c.service));
        let parent = e.parent;
        let mut prev_euid = None;
        let state = match self.actors.get_mut(&actor) {
            Some(s) => {
                self.by_age.remove(&(s.last_window, actor));
                prev_euid = Some(s.record.euid);
                s
            }
            None => {
                self.stats.misses += 1;
                let record = ActorRecord {
                    actor,
                    pid: t.pid,
                    ppid: t.ppid,
                    parent,
                    start_ns: t.start_ns,
                    uid: t.uid,
                    gid: t.gid,
                    euid: t.euid,
                    exe: None,
                    exe_hash: None,
                    comm: comm.id,
                    cgroup_id: t.cgroup_id,
                    mnt_ns: t.mnt_ns,
                    pid_ns: t.pid_ns,
                    net_ns: t.net_ns,
                    container,
                    service,
                };
                self.actors.entry(actor).or_insert(ActorState {
                    record,
                    last_window: e.window,
                    exited: false,
                })
            }
        };
        // The latest event says what the actor is now.
        let r = &mut state.record;
        (r.ppid, r.parent, r.uid, r.gid, r.euid, r.comm) =
            (t.ppid, parent, t.uid, t.gid, t.euid, comm.id);
        (
            r.cgroup_id,
            r.mnt_ns,
            r.pid_ns,
            r.net_ns,
            r.container,
            r.service,
        ) = (
            t.cgroup_id,
            t.mnt_ns,
            t.pid_ns,
            t.net_ns,
            container,
            service,
        );
        let mut exe_fact = None;
        match &e.detail {
            // A process running since before capture is known as if seen exec'ing.
            Detail::Exec {
                exe,
                exe_dev,
                exe_ino,
            }
            | Detail::Present {
                exe,
                exe_dev,
                exe_ino,
            } => {
                exe_fact = self.exes.get(&(*exe_dev, *exe_ino)).copied();
                r.exe = Some(*exe);
                r.exe_hash = exe_fact.map(|f| f.hash);
            }
            Detail::Credentials { uid, euid } => {
                r.uid = uid.unwrap_or(r.uid);
                r.euid = euid.unwrap_or(r.euid);
            }
            Detail::Exit => state.exited = true,
            _ => {}
        }
        state.last_window = state.last_window.max(e.window);
        self.by_age.insert((state.last_window, actor));
        self.active.entry(e.window).or_default().insert(actor);
        Attributed {
            comm,
            container,
            prev_euid,
            exe: exe_fact,
        }
    }

    /// The container an attributed actor runs in, if its cgroup names one.
    #[cfg(test)]
    fn container_of(&self, actor: &Id128) -> Option<Id128> {
        self.actors.get(actor).and_then(|s| s.record.container)
    }

    /// Closes `window`: the records of its active actors (by actor id), then evicts
    /// exited, idle and over-capacity actors.
    pub fn close(&mut self, window: u64) -> Vec<ActorRecord> {
        let active = self.active.remove(&window).unwrap_or_default();
        let records: Vec<ActorRecord> = active
            .iter()
            .filter_map(|a| self.actors.get(a))
            .map(|s| s.record.clone())
            .collect();
        // An exited actor leaves once no open window still needs it.
        for a in &active {
            let done = self
                .actors
                .get(a)
                .is_some_and(|s| s.exited && s.last_window <= window);
            if done {
                self.remove(a);
                self.stats.evicted_exit += 1;
            }
        }
        let horizon = window.saturating_sub(self.config.idle_windows);
        while let Some(&(w, a)) = self.by_age.first() {
            if w >= horizon {
                break;
            }
            self.remove(&a);
            self.stats.evicted_idle += 1;
        }
        while self.actors.len() > self.config.capacity {
            let Some(&(_, a)) = self.by_age.first() else {
                break;
            };
            self.remove(&a);
            self.stats.evicted_capacity += 1;
        }
        records
    }

    /// What the table holds between windows, for a saved state: its actors (by id),
    /// cgroup paths (by id) and executables (by dev, ino). The open windows' activity is
    /// not included: call it between windows.
    pub fn export(&self) -> SavedTable {
        debug_assert!(self.active.is_empty(), "exported with a window open");
        let mut actors: Vec<ActorEntry> = self
            .actors
            .values()
            .map(|s| ActorEntry {
                record: s.record.clone(),
                last_window: s.last_window,
                exited: s.exited,
            })
            .collect();
        actors.sort_by_key(|a| a.record.actor);
        let mut cgroups: Vec<(u64, Vec<u8>)> = self
            .cgroups
            .iter()
            .map(|(id, c)| (*id, c.path.clone()))
            .collect();
        cgroups.sort();
        let mut exes: Vec<SavedExe> = self
            .exes
            .iter()
            .map(|(&(dev, ino), f)| SavedExe {
                dev,
                ino,
                hash: f.hash,
                unlisted: f.unlisted,
                kept: f.kept,
            })
            .collect();
        exes.sort_by_key(|x| (x.dev, x.ino));
        SavedTable {
            actors,
            cgroups,
            exes,
        }
    }

    /// Puts back an actor of a saved state (`export`).
    pub fn restore_actor(&mut self, a: ActorEntry) {
        let actor = a.record.actor;
        self.remove(&actor);
        self.by_age.insert((a.last_window, actor));
        self.actors.insert(
            actor,
            ActorState {
                record: a.record,
                last_window: a.last_window,
                exited: a.exited,
            },
        );
    }

    fn remove(&mut self, a: &Id128) {
        if let Some(s) = self.actors.remove(a) {
            self.by_age.remove(&(s.last_window, *a));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::canonicalize::{canonicalize, RunContext};
    use ritma_sources::raw::{IdCall, RawBody, RawEvent, Task};

    fn ctx() -> RunContext {
        RunContext {
            node: "n".into(),
            boot_id: [0; 16],
            window_len_ns: 1_000_000_000,
            wall_minus_mono_ns: 0,
        }
    }

    fn ev(seq: u64, window: u64, pid: u32, body: RawBody) -> CanonicalEvent {
        let task = Task {
            pid,
            tid: pid,
            ppid: 1,
            parent_start_ns: 10,
            start_ns: pid as u64 * 100,
            uid: 1000,
            euid: 1000,
            cgroup_id: 77,
            comm: b"sh".to_vec(),
            ..Task::default()
        };
        canonicalize(
            &ctx(),
            window,
            RawEvent {
                seq,
                mono_ns: window * 1_000_000_000,
                task,
                body,
            },
        )
    }

    fn open(seq: u64, window: u64, pid: u32) -> CanonicalEvent {
        ev(
            seq,
            window,
            pid,
            RawBody::Open {
                path: b"/x".to_vec(),
                flags: 0,
                mode: 0,
                result: 3,
                given: None,
            },
        )
    }

    #[test]
    fn cgroup_paths_name_containers_pods_and_units() {
        let id = "4f3c2b1a".repeat(8);
        type Case<'a> = (String, Option<&'a str>, Option<&'a str>, Option<&'a str>);
        let cases: Vec<Case> = vec![
            (format!("/system.slice/docker-{id}.scope"), Some(&id), None, None),
            (format!("/docker/{id}"), Some(&id), None, None),
            (format!("/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod0a1b2c3d_1111_2222_3333_444455556666.slice/cri-containerd-{id}.scope"), Some(&id), Some("0a1b2c3d-1111-2222-3333-444455556666"), None),
            (format!("/kubepods/besteffort/pod0a1b2c3d-1111-2222-3333-444455556666/{id}"), Some(&id), Some("0a1b2c3d-1111-2222-3333-444455556666"), None),
            (format!("/machine.slice/crio-{id}.scope"), Some(&id), None, None),
            ("/system.slice/nginx.service".into(), None, None, Some("nginx.service")),
            ("/user.slice/user-1000.slice/session-3.scope".into(), None, None, Some("session-3.scope")),
            ("/".into(), None, None, None),
        ];
        for (path, container, pod, service) in cases {
            let a = parse_cgroup_path(path.as_bytes());
            assert_eq!(
                a.container.as_deref(),
                container.map(str::as_bytes),
                "{path}"
            );
            assert_eq!(a.pod.as_deref(), pod.map(str::as_bytes), "{path}");
            assert_eq!(a.service.as_deref(), service.map(str::as_bytes), "{path}");
        }
    }

    #[test]
    fn records_follow_exec_setuid_and_cgroup() {
        let mut t = ActorTable::new(ActorTableConfig::default());
        let dict = t.add_cgroup(77, b"/system.slice/cron.service");
        assert_eq!(dict.len(), 2);
        t.push(&open(1, 5, 42));
        t.push(&ev(
            2,
            5,
            42,
            RawBody::Exec {
                filename: b"/bin/x".to_vec(),
                argv: vec![],
                argv_truncated: false,
                exe_dev: 1,
                exe_ino: 2,
                given: None,
                stdio_net: 0,
            },
        ));
        t.push(&ev(
            3,
            5,
            42,
            RawBody::SetUid {
                call: IdCall::Set,
                ids: [0, 0, 0],
                result: 0,
            },
        ));
        let recs = t.close(5);
        assert_eq!(recs.len(), 1);
        let r = &recs[0];
        assert_eq!((r.pid, r.uid, r.euid), (42, 0, 0));
        assert_eq!(r.exe, Some(DictEntry::id_of(DictKind::Path, b"/bin/x")));
        assert_eq!(r.parent, Some(ctx().actor_id(1, 10)));
        assert_eq!(
            r.service,
            Some(DictEntry::id_of(DictKind::Service, b"cron.service"))
        );
        assert_eq!(t.stats.misses, 1);
        assert_eq!(t.cgroup_dict(&recs), dict[1..].to_vec());
        assert_eq!(t.container_of(&r.actor), None);
        // The next window still knows the executable.
        t.push(&open(4, 6, 42));
        assert_eq!(t.close(6)[0].exe, r.exe);
    }

    #[test]
    fn a_present_process_is_attributed_fully_from_its_snapshot() {
        let mut t = ActorTable::new(ActorTableConfig::default());
        t.add_cgroup(77, b"/system.slice/ssh.service");
        // Without the snapshot, a process running since before capture has no executable.
        t.push(&open(1, 5, 50));
        assert_eq!(t.close(5)[0].exe, None);

        let present = ev(
            2,
            5,
            42,
            RawBody::Present {
                exe: b"/usr/sbin/sshd".to_vec(),
                argv: vec![b"sshd".to_vec()],
                argv_truncated: false,
                exe_dev: 1,
                exe_ino: 2,
            },
        );
        assert_eq!(t.push(&present).comm, DictEntry::new(DictKind::Comm, b"sh"));
        t.close(5);
        // Its later events, in later windows, carry what the snapshot said.
        t.push(&open(3, 9, 42));
        let recs = t.close(9);
        assert_eq!(recs.len(), 1);
        let r = &recs[0];
        assert_eq!(r.actor, ctx().actor_id(42, 4200));
        assert_eq!(
            r.exe,
            Some(DictEntry::id_of(DictKind::Path, b"/usr/sbin/sshd"))
        );
        assert_eq!(r.parent, Some(ctx().actor_id(1, 10)));
        assert_eq!((r.pid, r.ppid, r.uid, r.euid), (42, 1, 1000, 1000));
        assert_eq!(r.comm, DictEntry::id_of(DictKind::Comm, b"sh"));
        assert_eq!(
            r.service,
            Some(DictEntry::id_of(DictKind::Service, b"ssh.service"))
        );
        // Learnt from the snapshot: the later open was not a miss.
        assert_eq!(t.stats.misses, 2);
        // A later exec replaces the executable, as for any process.
        t.push(&ev(
            4,
            10,
            42,
            RawBody::Exec {
                filename: b"/bin/bash".to_vec(),
                argv: vec![],
                argv_truncated: false,
                exe_dev: 1,
                exe_ino: 3,
                given: None,
                stdio_net: 0,
            },
        ));
        assert_eq!(
            t.close(10)[0].exe,
            Some(DictEntry::id_of(DictKind::Path, b"/bin/bash"))
        );
    }

    #[test]
    fn exit_and_idleness_evict_and_reappearance_is_a_miss() {
        let mut t = ActorTable::new(ActorTableConfig {
            capacity: 100,
            idle_windows: 10,
        });
        t.push(&open(1, 0, 1));
        t.push(&open(2, 0, 2));
        t.push(&ev(3, 0, 2, RawBody::Exit { code: 0 }));
        assert_eq!(t.close(0).len(), 2);
        assert_eq!((t.len(), t.stats.evicted_exit), (1, 1));
        t.push(&open(4, 20, 3));
        t.close(20);
        assert_eq!((t.len(), t.stats.evicted_idle), (1, 1));
        t.push(&open(5, 21, 1));
        assert_eq!(t.stats.misses, 4);
    }

    #[test]
    fn capacity_evicts_the_least_recently_active_in_a_fixed_order() {
        let mut t = ActorTable::new(ActorTableConfig {
            capacity: 3,
            idle_windows: 1000,
        });
        for (i, pid) in [5u32, 6, 7, 8, 9].iter().enumerate() {
            t.push(&open(i as u64, i as u64, *pid));
            t.close(i as u64);
        }
        assert_eq!((t.len(), t.stats.evicted_capacity), (3, 2));
        // pids 5 and 6 (the oldest) went; 7 is still known.
        t.push(&open(10, 10, 7));
        assert_eq!(t.stats.misses, 5);
        t.push(&open(11, 10, 5));
        assert_eq!(t.stats.misses, 6);
    }
}
