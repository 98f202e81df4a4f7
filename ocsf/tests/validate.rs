//! The events of windows holding every event type and cone instances, checked against the
//! OCSF 1.8.0 schema files kept in `schema-1.8.0/`.

mod ocsf_schema;

use std::collections::BTreeMap;

use ritma_ocsf::{window_event_lines, OcsfError, WindowLeaves};
use ritma_operators::canonicalize::{canonicalize, RunContext};
use ritma_schemas::hash::blake3;
use ritma_schemas::records::{
    edge_flags, ActorRecord, CaptureMode, ConeInstance, DictEntry, DictKind, Edge, EdgeKind,
    EventAtom, Record, WindowRecord,
};
use ritma_schemas::Id128;
use ritma_sources::raw::{DupCall, DupSource, IdCall, RawBody, RawEvent, SockAddr, Task};
use serde_json::{json, Value};

const NODE: &str = "web-1";
const WINDOW_LEN_NS: u64 = 1_000_000_000;
const WINDOW: u64 = 1_780_000_000;
/// Kernel monotonic time at the window's start.
const MONO_START_NS: u64 = 5_000_000_000;

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// A window's records, its atoms and dictionary made by the pipeline's canonicaliser.
struct Fixture {
    ctx: RunContext,
    dict: BTreeMap<Id128, DictEntry>,
    actors: BTreeMap<Id128, ActorRecord>,
    atoms: Vec<EventAtom>,
    edges: Vec<Edge>,
    cones: Vec<ConeInstance>,
}

impl Fixture {
    fn new() -> Self {
        Fixture {
            ctx: RunContext {
                node: NODE.into(),
                boot_id: [7; 16],
                window_len_ns: WINDOW_LEN_NS,
                wall_minus_mono_ns: (WINDOW * WINDOW_LEN_NS - MONO_START_NS) as i64,
            },
            dict: BTreeMap::new(),
            actors: BTreeMap::new(),
            atoms: Vec::new(),
            edges: Vec::new(),
            cones: Vec::new(),
        }
    }

    fn dict(&mut self, kind: DictKind, value: &[u8]) -> Id128 {
        let d = DictEntry::new(kind, value);
        let id = d.id;
        self.dict.insert(id, d);
        id
    }

    /// A process of the window (its actor record, child of pid 1); the task its events carry.
    fn process(&mut self, pid: u32, comm: &str, exe: &str, container: Option<&str>) -> Task {
        let start_ns = 1_000_000 + pid as u64;
        let task = Task {
            pid,
            tid: pid,
            ppid: 1,
            parent_start_ns: 1,
            start_ns,
            uid: 1000,
            gid: 1000,
            euid: 1000,
            egid: 1000,
            cgroup_id: 9,
            mnt_ns: 4026531841,
            pid_ns: 4026531836,
            net_ns: 4026531840,
            comm: comm.as_bytes().to_vec(),
        };
        let actor = self.actor_id(&task);
        let record = ActorRecord {
            actor,
            pid,
            ppid: 1,
            parent: Some(self.ctx.actor_id(1, 1)),
            start_ns,
            uid: 1000,
            gid: 1000,
            euid: 1000,
            exe: Some(self.dict(DictKind::Path, exe.as_bytes())),
            exe_hash: Some(blake3(exe.as_bytes())),
            comm: self.dict(DictKind::Comm, comm.as_bytes()),
            cgroup_id: 9,
            mnt_ns: 4026531841,
            pid_ns: 4026531836,
            net_ns: 4026531840,
            container: container.map(|c| self.dict(DictKind::Container, c.as_bytes())),
            service: None,
        };
        self.actors.insert(actor, record);
        task
    }

    fn actor_id(&self, task: &Task) -> Id128 {
        self.ctx.actor_id(task.pid, task.start_ns)
    }

    /// Canonicalises an event of `task`, `ms` into the window, with its argv sealed (Thick).
    fn push(&mut self, task: &Task, ms: u64, body: RawBody) -> EventAtom {
        let raw = RawEvent {
            seq: self.atoms.len() as u64 + 100,
            mono_ns: MONO_START_NS + ms * 1_000_000,
            task: task.clone(),
            body,
        };
        let c = canonicalize(&self.ctx, WINDOW, raw);
        for d in c.dict {
            self.dict.insert(d.id, d);
        }
        if let Some(argv) = c.thick {
            let d = argv.entry();
            self.dict.insert(d.id, d);
        }
        self.atoms.push(c.atom.clone());
        c.atom
    }

    fn record(&self) -> WindowRecord {
        WindowRecord {
            node: NODE.into(),
            window: WINDOW,
            window_len_ns: WINDOW_LEN_NS,
            first_seq: self.atoms.iter().map(|a| a.seq).min().unwrap_or(0),
            event_count: self.atoms.len() as u64,
            dict_count: self.dict.len() as u64,
            actor_count: self.actors.len() as u64,
            edge_count: self.edges.len() as u64,
            cone_count: self.cones.len() as u64,
            health_count: 0,
            lost: Vec::new(),
            late_events: 0,
            capture_mode: CaptureMode::Thick,
            cone_lib_version: 3,
            window_root: [0x11; 32],
            state: None,
        }
    }

    /// The leaves in canonical order (FORMAT.md §8.2).
    fn leaves(&self) -> Vec<Vec<u8>> {
        let mut atoms = self.atoms.clone();
        atoms.sort_by_key(|a| a.seq);
        let mut edges = self.edges.clone();
        edges.sort_by_key(Edge::key);
        let mut cones = self.cones.clone();
        cones.sort_by(|a, b| {
            (&a.cone_id, a.t_start_ns, a.first_seq).cmp(&(&b.cone_id, b.t_start_ns, b.first_seq))
        });
        let dict = self.dict.values().map(Record::encode);
        let actors = self.actors.values().map(Record::encode);
        dict.chain(actors)
            .chain(atoms.iter().map(Record::encode))
            .chain(edges.iter().map(Record::encode))
            .chain(cones.iter().map(Record::encode))
            .collect()
    }

    fn lines(&self) -> Vec<String> {
        window_event_lines(&self.record(), &self.leaves()).expect("the window decodes")
    }

    fn events(&self) -> Vec<Value> {
        self.lines()
            .iter()
            .map(|l| serde_json::from_str(l).expect("each line is JSON"))
            .collect()
    }
}

fn v4(a: [u8; 4], port: u16) -> SockAddr {
    SockAddr::V4 { addr: a, port }
}

/// Seqs of the fixture's events worth looking at.
struct Seqs {
    exec: u64,
    fork: u64,
    attach: u64,
    poke: u64,
    seize_unknown: u64,
    rename: u64,
    connect: u64,
    accept: u64,
    open_failed: u64,
    connect_packet: u64,
    exec_long: u64,
}

/// Every event type, some twice, and three cone instances.
fn every_event() -> (Fixture, Seqs) {
    let mut f = Fixture::new();
    let bash = f.process(100, "bash", "/usr/bin/bash", None);
    let cat = f.process(101, "cat", "/usr/bin/cat", None);
    let curl = f.process(102, "curl", "/usr/bin/curl", None);
    let nginx = f.process(103, "nginx", "/usr/sbin/nginx", Some("3f2a9c0de1b4"));
    let gdb = f.process(104, "gdb", "/usr/bin/gdb", None);
    let sudo = f.process(105, "sudo", "/usr/bin/sudo", None);
    let loader = f.process(106, "loader", "/tmp/loader", None);
    let insmod = f.process(107, "insmod", "/usr/sbin/insmod", None);
    let bpftool = f.process(108, "bpftool", "/usr/sbin/bpftool", None);
    let sshd = f.process(109, "sshd", "/usr/sbin/sshd", None);

    let fork = f.push(
        &bash,
        1,
        RawBody::Fork {
            child_pid: 101,
            child_start_ns: cat.start_ns,
        },
    );
    let exec = f.push(
        &cat,
        2,
        RawBody::Exec {
            filename: b"/usr/bin/cat".to_vec(),
            argv: vec![b"cat".to_vec(), b"/etc/passwd".to_vec()],
            argv_truncated: false,
            exe_dev: 8,
            exe_ino: 1234,
            given: None,
            stdio_net: 0,
        },
    );
    let open = |path: &[u8], result| RawBody::Open {
        path: path.to_vec(),
        flags: 0,
        mode: 0,
        result,
        given: None,
    };
    let passwd = f.push(&cat, 3, open(b"/etc/passwd", 3));
    let open_failed = f.push(&cat, 4, open(b"/root/secret", -13));
    f.push(&cat, 5, RawBody::Exit { code: 0 });
    f.push(
        &bash,
        6,
        RawBody::Unlink {
            path: b"/tmp/x".to_vec(),
            flags: 0,
            result: 0,
            given: None,
        },
    );
    let rename = f.push(
        &bash,
        7,
        RawBody::Rename {
            old: b"/tmp/a".to_vec(),
            new: b"/tmp/b".to_vec(),
            flags: 0,
            result: 0,
            old_given: None,
            new_given: None,
        },
    );
    let (old, new) = (
        DictEntry::id_of(DictKind::Path, b"/tmp/a"),
        DictEntry::id_of(DictKind::Path, b"/tmp/b"),
    );
    let edge = |kind, src, dst, flags| Edge {
        kind,
        src,
        dst,
        flags,
        first_t_ns: rename.t_ns,
        last_t_ns: rename.t_ns,
        count: 1,
    };
    f.edges
        .push(edge(EdgeKind::FileToFile, old, new, edge_flags::RENAME));
    let bash_id = f.actor_id(&bash);
    f.edges
        .push(edge(EdgeKind::ProcToFile, bash_id, new, edge_flags::RENAME));
    let connect = f.push(
        &curl,
        8,
        RawBody::Connect {
            addr: v4([203, 0, 113, 9], 443),
            result: 0,
        },
    );
    let v6: std::net::Ipv6Addr = "2001:db8::1".parse().unwrap();
    let accept = f.push(
        &nginx,
        9,
        RawBody::Accept {
            addr: SockAddr::V6 {
                addr: v6.octets(),
                port: 51000,
            },
            result: 5,
        },
    );
    f.push(
        &nginx,
        10,
        RawBody::Bind {
            addr: v4([0, 0, 0, 0], 80),
            result: 0,
        },
    );
    f.push(
        &nginx,
        11,
        RawBody::Listen {
            backlog: 128,
            result: 0,
        },
    );
    let ptrace = |request, target_start_ns| RawBody::Ptrace {
        request,
        target_pid: 101,
        target_start_ns,
        result: 0,
    };
    let attach = f.push(&gdb, 12, ptrace(16, cat.start_ns));
    let poke = f.push(&gdb, 13, ptrace(4, cat.start_ns));
    let seize_unknown = f.push(&gdb, 14, ptrace(0x4206, 0));
    let ids = [0, u32::MAX, u32::MAX];
    f.push(
        &sudo,
        15,
        RawBody::SetUid {
            call: IdCall::Set,
            ids,
            result: 0,
        },
    );
    f.push(
        &sudo,
        16,
        RawBody::SetGid {
            call: IdCall::Set,
            ids,
            result: 0,
        },
    );
    f.push(
        &sudo,
        17,
        RawBody::CapSet {
            effective: 0,
            permitted: 0,
            inheritable: 0,
            result: 0,
        },
    );
    f.push(
        &loader,
        18,
        RawBody::MemfdCreate {
            name: b"payload".to_vec(),
            flags: 1,
            result: 3,
        },
    );
    f.push(
        &insmod,
        19,
        RawBody::ModuleLoad {
            name: b"/lib/modules/6.8/evil.ko".to_vec(),
            from_fd: true,
            result: 0,
        },
    );
    let module = f.push(
        &insmod,
        20,
        RawBody::ModuleLoad {
            name: b"nf_tables".to_vec(),
            from_fd: false,
            result: 0,
        },
    );
    f.push(
        &bpftool,
        21,
        RawBody::BpfProgLoad {
            prog_type: 6,
            name: b"xdp_drop".to_vec(),
            result: 7,
        },
    );
    f.push(
        &sshd,
        22,
        RawBody::Present {
            exe: b"/usr/sbin/sshd".to_vec(),
            argv: vec![b"sshd: /usr/sbin/sshd -D [listener]".to_vec()],
            argv_truncated: false,
            exe_dev: 8,
            exe_ino: 99,
        },
    );
    let connect_packet = f.push(
        &curl,
        23,
        RawBody::Connect {
            addr: SockAddr::Other { family: 17 },
            result: -97,
        },
    );
    let exec_long = f.push(
        &curl,
        24,
        RawBody::Exec {
            filename: b"/usr/bin/curl".to_vec(),
            argv: vec![b"curl".to_vec(), vec![b'x'; 5000]],
            argv_truncated: false,
            exe_dev: 8,
            exe_ino: 77,
            given: None,
            stdio_net: 0,
        },
    );
    f.push(
        &curl,
        25,
        RawBody::FdDup {
            call: DupCall::Dup2,
            oldfd: 3,
            newfd: 1,
            source: DupSource::Socket,
            peer: SockAddr::V4 {
                addr: [203, 0, 113, 9],
                port: 4444,
            },
            exe: b"/usr/bin/bash".to_vec(),
        },
    );

    let gdb_id = f.actor_id(&gdb);
    let cat_id = f.actor_id(&cat);
    f.cones.push(ConeInstance {
        cone_id: "ptrace_inject".into(),
        cone_version: 1,
        t_start_ns: attach.t_ns,
        first_seq: attach.seq,
        last_seq: poke.seq,
        count: 1,
        bindings: vec![("p".into(), gdb_id), ("t".into(), cat_id)],
        exceptions: vec![],
    });
    f.cones.push(ConeInstance {
        cone_id: "secrets_then_egress".into(),
        cone_version: 1,
        // The match began in an earlier window.
        t_start_ns: -2_500_000_000,
        first_seq: 3,
        last_seq: connect.seq,
        count: 1,
        bindings: vec![("f".into(), passwd.object), ("n".into(), connect.object)],
        exceptions: vec![4],
    });
    f.cones.push(ConeInstance {
        cone_id: "module_load".into(),
        cone_version: 1,
        t_start_ns: module.t_ns,
        first_seq: module.seq,
        last_seq: module.seq,
        count: 1,
        bindings: vec![("m".into(), module.object), ("x".into(), [0xab; 16])],
        exceptions: vec![],
    });
    let seqs = Seqs {
        exec: exec.seq,
        fork: fork.seq,
        attach: attach.seq,
        poke: poke.seq,
        seize_unknown: seize_unknown.seq,
        rename: rename.seq,
        connect: connect.seq,
        accept: accept.seq,
        open_failed: open_failed.seq,
        connect_packet: connect_packet.seq,
        exec_long: exec_long.seq,
    };
    (f, seqs)
}

fn by_seq(events: &[Value], seq: u64) -> &Value {
    events
        .iter()
        .find(|e| e["unmapped"]["ritma"]["seq"] == seq)
        .unwrap_or_else(|| panic!("no event of seq {seq}"))
}

fn finding<'a>(events: &'a [Value], cone_id: &str) -> &'a Value {
    events
        .iter()
        .find(|e| e["unmapped"]["ritma"]["cone_id"] == cone_id)
        .unwrap_or_else(|| panic!("no finding of {cone_id}"))
}

#[test]
fn every_event_type_and_cone_instance_conforms_to_ocsf_1_8_0() {
    let schema = ocsf_schema::kept();
    let (f, _) = every_event();
    let events = f.events();
    assert_eq!(events.len(), f.atoms.len() + f.cones.len());
    for e in &events {
        let errors = schema.validate(e);
        assert!(errors.is_empty(), "{errors:#?}\n{e:#}");
    }
}

#[test]
fn each_event_type_has_its_class_and_activity() {
    let (f, _) = every_event();
    let mut seen = BTreeMap::new();
    for e in f.events() {
        let r = &e["unmapped"]["ritma"];
        let what = match (r["event"].as_str(), r["ptrace_request"].as_str()) {
            (Some("ptrace"), Some(request)) => format!("ptrace {request}"),
            (Some(event), _) => event.to_owned(),
            (None, _) => "cone".to_owned(),
        };
        let got = (
            e["class_uid"].as_u64().unwrap(),
            e["activity_id"].as_u64().unwrap(),
        );
        if let Some(before) = seen.insert(what.clone(), got) {
            assert_eq!(before, got, "{what} maps two ways");
        }
    }
    let want: BTreeMap<String, (u64, u64)> = [
        ("exec", (1007, 1)),
        ("fork", (1007, 1)),
        ("exit", (1007, 2)),
        ("ptrace PTRACE_ATTACH", (1007, 3)),
        ("ptrace PTRACE_SEIZE", (1007, 3)),
        ("ptrace PTRACE_POKETEXT", (1007, 4)),
        ("setuid", (1007, 5)),
        ("setgid", (1007, 99)),
        ("capset", (1007, 99)),
        ("fd_dup", (1007, 99)),
        ("present", (1007, 99)),
        ("open", (1001, 14)),
        ("unlink", (1001, 4)),
        ("rename", (1001, 5)),
        ("memfd_create", (1001, 1)),
        ("module_load", (1002, 1)),
        ("bpf_prog_load", (1003, 1)),
        ("connect", (4001, 1)),
        ("accept", (4001, 1)),
        ("bind", (4001, 99)),
        ("listen", (4001, 7)),
        ("cone", (2004, 1)),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    assert_eq!(seen, want);
}

#[test]
fn events_carry_what_the_window_says() {
    let (f, s) = every_event();
    let events = f.events();
    let window_start_ns = WINDOW * WINDOW_LEN_NS;

    let exec = by_seq(&events, s.exec);
    assert_eq!(
        exec["metadata"]["uid"],
        format!("{NODE}/{WINDOW}/{}", s.exec)
    );
    assert_eq!(exec["metadata"]["sequence"], s.exec);
    assert_eq!(exec["time"], (window_start_ns + 2_000_000) / 1_000_000);
    assert_eq!(exec["unmapped"]["ritma"]["node"], NODE);
    assert_eq!(exec["unmapped"]["ritma"]["window"], WINDOW);
    assert_eq!(
        exec["unmapped"]["ritma"]["time_ns"],
        window_start_ns + 2_000_000
    );
    let cat_id = hex(&f.ctx.actor_id(101, 1_000_101));
    assert_eq!(exec["unmapped"]["ritma"]["actor"], cat_id);
    assert_eq!(exec["process"]["uid"], cat_id);
    assert_eq!(exec["process"]["pid"], 101);
    assert_eq!(exec["process"]["cmd_line"], "cat /etc/passwd");
    assert_eq!(exec["process"]["file"]["path"], "/usr/bin/cat");
    assert_eq!(exec["process"]["file"]["name"], "cat");
    let hash = hex(&blake3(b"/usr/bin/cat"));
    assert_eq!(exec["process"]["file"]["hashes"][0]["value"], hash);
    assert_eq!(
        exec["process"]["parent_process"]["uid"],
        hex(&f.ctx.actor_id(1, 1))
    );
    assert_eq!(exec["launch_type"], "Exec");
    assert_eq!(exec["status_id"], 1);
    assert_eq!(exec["metadata"]["profiles"], json!(["host"]));

    let fork = by_seq(&events, s.fork);
    assert_eq!(fork["actor"]["process"]["pid"], 100);
    assert_eq!(fork["process"]["uid"], cat_id);
    assert_eq!(fork["process"]["name"], "cat");

    let poke = by_seq(&events, s.poke);
    assert_eq!(poke["type_name"], "Process Activity: Inject");
    assert_eq!(poke["injection_type"], "PTRACE_POKETEXT");
    assert_eq!(poke["process"]["pid"], 101);
    assert_eq!(by_seq(&events, s.attach)["activity_name"], "Open");
    assert_eq!(
        by_seq(&events, s.seize_unknown)["process"],
        json!({"uid": "unknown"})
    );

    let rename = by_seq(&events, s.rename);
    assert_eq!(rename["file"]["path"], "/tmp/a");
    assert_eq!(rename["file_result"]["path"], "/tmp/b");

    let connect = by_seq(&events, s.connect);
    assert_eq!(
        connect["dst_endpoint"],
        json!({"ip": "203.0.113.9", "port": 443})
    );
    assert_eq!(connect["actor"]["process"]["name"], "curl");

    let accept = by_seq(&events, s.accept);
    assert_eq!(
        accept["src_endpoint"],
        json!({"ip": "2001:db8::1", "port": 51000})
    );
    assert_eq!(
        accept["actor"]["process"]["container"]["uid"],
        "3f2a9c0de1b4"
    );
    assert_eq!(accept["metadata"]["profiles"], json!(["container", "host"]));

    let failed = by_seq(&events, s.open_failed);
    assert_eq!(failed["status"], "Failure");
    assert_eq!(failed["file"]["path"], "/root/secret");
    assert_eq!(
        failed["unmapped"]["ritma"]["flags"],
        json!(["failed", "read"])
    );

    let packet = by_seq(&events, s.connect_packet);
    let flow = DictEntry::id_of(DictKind::Flow, &17u16.to_be_bytes());
    assert_eq!(packet["dst_endpoint"], json!({ "uid": hex(&flow) }));
    assert_eq!(packet["unmapped"]["ritma"]["flow"], "0011");

    let long = by_seq(&events, s.exec_long);
    let cmd = long["process"]["cmd_line"].as_str().unwrap();
    assert!(cmd.starts_with("blake3:") && cmd.len() == 7 + 64, "{cmd}");
    assert_eq!(
        long["unmapped"]["ritma"]["hashed"],
        json!(["process.cmd_line"])
    );
    assert_eq!(
        long["unmapped"]["ritma"]["flags"],
        json!(["exec", "arg_hashed"])
    );

    let inject = finding(&events, "ptrace_inject");
    let uid = format!("{NODE}/{WINDOW}/ptrace_inject/{}-{}", s.attach, s.poke);
    assert_eq!(inject["finding_info"]["uid"], uid);
    assert_eq!(inject["metadata"]["uid"], uid);
    assert_eq!(inject["time"], poke["time"]);
    let evidence = inject["evidences"].as_array().unwrap();
    assert_eq!(evidence[0]["name"], "p");
    assert_eq!(evidence[0]["process"]["name"], "gdb");
    assert_eq!(evidence[1]["process"]["uid"], cat_id);
    assert_eq!(evidence[2]["uid"], format!("{NODE}/{WINDOW}/{}", s.attach));
    assert_eq!(evidence[3]["uid"], format!("{NODE}/{WINDOW}/{}", s.poke));
    assert_eq!(inject["unmapped"]["ritma"]["last_seq"], s.poke);

    let egress = finding(&events, "secrets_then_egress");
    let evidence = egress["evidences"].as_array().unwrap();
    assert_eq!(evidence[0]["file"]["path"], "/etc/passwd");
    assert_eq!(evidence[1]["dst_endpoint"]["ip"], "203.0.113.9");
    assert_eq!(
        egress["finding_info"]["first_seen_time"],
        (window_start_ns - 2_500_000_000) / 1_000_000
    );
    assert_eq!(egress["unmapped"]["ritma"]["exceptions"], json!([4]));

    let module = finding(&events, "module_load");
    let evidence = module["evidences"].as_array().unwrap();
    assert_eq!(
        evidence[0]["data"],
        json!({"kind": "name", "value": "nf_tables"})
    );
    assert_eq!(evidence[1]["data"], json!({ "id": hex(&[0xab; 16]) }));
}

#[test]
fn a_window_gives_the_same_bytes_with_sorted_keys() {
    let (f, _) = every_event();
    let lines = f.lines();
    assert_eq!(lines, f.lines());
    for line in &lines {
        let mut v: Value = serde_json::from_str(line).unwrap();
        v.sort_all_objects();
        assert_eq!(&serde_json::to_string(&v).unwrap(), line);
    }
    // Dictionary and actor leaves in another order: the lookups do not depend on it.
    let mut leaves = f.leaves();
    let lookups = f.dict.len() + f.actors.len();
    leaves[..lookups].reverse();
    assert_eq!(window_event_lines(&f.record(), &leaves).unwrap(), lines);
}

#[test]
fn leaves_must_be_the_window_records_counts() {
    let (f, _) = every_event();
    let mut record = f.record();
    record.edge_count += 1;
    let err = window_event_lines(&record, &f.leaves()).unwrap_err();
    assert!(
        matches!(err, OcsfError::Count { section: "edge", expected, found, .. } if expected == found + 1),
        "{err}"
    );
    let mut leaves = f.leaves();
    leaves.push(f.record().encode());
    let err = WindowLeaves::decode(&f.record(), &leaves).unwrap_err();
    assert!(
        matches!(
            err,
            OcsfError::NotALeaf {
                record: "WindowRecord",
                ..
            }
        ),
        "{err}"
    );
    leaves.pop();
    leaves[0].push(0);
    let err = WindowLeaves::decode(&f.record(), &leaves).unwrap_err();
    assert!(matches!(err, OcsfError::Decode { index: 0, .. }), "{err}");
}

/// The validator is honest: each way of breaking a valid event is caught.
#[test]
fn broken_events_fail_validation() {
    let schema = ocsf_schema::kept();
    let (f, s) = every_event();
    let events = f.events();
    let exec = by_seq(&events, s.exec).clone();
    let accept = by_seq(&events, s.accept).clone();
    let finding = finding(&events, "ptrace_inject").clone();
    assert!(schema.validate(&exec).is_empty());

    let remove = |mut e: Value, path: &[&str]| {
        let (last, parents) = path.split_last().unwrap();
        let mut at = &mut e;
        for p in parents {
            at = &mut at[*p];
        }
        at.as_object_mut()
            .unwrap()
            .remove(*last)
            .expect("the attribute is there");
        e
    };
    let set = |mut e: Value, path: &[&str], v: Value| {
        let mut at = &mut e;
        for p in path {
            at = &mut at[*p];
        }
        *at = v;
        e
    };
    let cases: Vec<(&str, Value, &str)> = vec![
        (
            "no process",
            remove(exec.clone(), &["process"]),
            "process: required",
        ),
        ("no time", remove(exec.clone(), &["time"]), "time: required"),
        (
            "no device",
            remove(exec.clone(), &["device"]),
            "device: required",
        ),
        (
            "no metadata.product",
            remove(exec.clone(), &["metadata", "product"]),
            "metadata.product: required",
        ),
        (
            "no file type",
            remove(exec.clone(), &["process", "file", "type_id"]),
            "process.file.type_id: required",
        ),
        (
            "no finding_info.uid",
            remove(finding.clone(), &["finding_info", "uid"]),
            "finding_info.uid: required",
        ),
        (
            "unknown attribute",
            set(exec.clone(), &["colour"], json!("red")),
            "colour: not an attribute",
        ),
        (
            "activity not in the class",
            set(
                set(exec.clone(), &["activity_id"], json!(42)),
                &["type_uid"],
                json!(100742),
            ),
            "42 is not a value of enum activity_id",
        ),
        (
            "type_uid off",
            set(exec.clone(), &["type_uid"], json!(100702)),
            "type_uid 100702",
        ),
        (
            "time as text",
            set(exec.clone(), &["time"], json!("now")),
            "time: \"now\" is not a timestamp_t",
        ),
        (
            "caption mismatch",
            set(exec.clone(), &["activity_name"], json!("Terminate")),
            "but activity_name is",
        ),
        (
            "container without its profile",
            set(accept.clone(), &["metadata", "profiles"], json!(["host"])),
            "in profile \"container\"",
        ),
        (
            "port out of range",
            set(accept.clone(), &["src_endpoint", "port"], json!(70000)),
            "outside port_t's range",
        ),
        (
            "not an IP",
            set(accept.clone(), &["src_endpoint", "ip"], json!("host")),
            "is not a ip_t",
        ),
        (
            "no endpoint",
            remove(accept.clone(), &["src_endpoint"]),
            "constraint at_least_one",
        ),
        (
            "a nested attribute of the wrong type",
            set(
                exec.clone(),
                &["actor", "process", "user", "uid"],
                json!(1000),
            ),
            "actor.process.user.uid: 1000 is not a string_t",
        ),
        (
            "an enum value no object defines",
            set(exec.clone(), &["device", "os", "type_id"], json!(999)),
            "device.os.type_id: 999 is not a value",
        ),
        (
            "actor and device without the host profile",
            set(
                accept.clone(),
                &["metadata", "profiles"],
                json!(["container"]),
            ),
            "device: in profile \"host\"",
        ),
        (
            "wrong version",
            set(exec.clone(), &["metadata", "version"], json!("1.7.0")),
            "metadata.version",
        ),
    ];
    for (what, event, want) in cases {
        let errors = schema.validate(&event);
        assert!(
            errors.iter().any(|e| e.contains(want)),
            "{what}: expected an error containing {want:?}, got {errors:#?}"
        );
    }
    // Other (99) needs the source's own activity name.
    let present = events
        .iter()
        .find(|e| e["unmapped"]["ritma"]["event"] == "present")
        .unwrap();
    assert!(schema.validate(present).is_empty());
    let errors = schema.validate(&remove(present.clone(), &["activity_name"]));
    assert!(
        errors
            .iter()
            .any(|e| e.contains("99 (Other) without its activity_name")),
        "{errors:#?}"
    );
}

#[test]
fn the_kept_schema_names_the_classes_emitted() {
    let schema = ocsf_schema::kept();
    for (uid, caption) in [
        (1001, "File System Activity"),
        (1002, "Kernel Extension Activity"),
        (1003, "Kernel Activity"),
        (1007, "Process Activity"),
        (2004, "Detection Finding"),
        (4001, "Network Activity"),
    ] {
        assert_eq!(schema.class(uid).map(|c| c.caption.as_str()), Some(caption));
    }
}

/// docs/ocsf-parquet-columns.txt: the Parquet columns of each class (`ritma export --ocsf`),
/// `path type` lines under a `# <class_uid> …` heading; lists are `path[]`.
fn parquet_columns() -> BTreeMap<u64, BTreeMap<String, String>> {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../docs/ocsf-parquet-columns.txt"
    );
    let text = std::fs::read_to_string(path).unwrap();
    let mut out: BTreeMap<u64, BTreeMap<String, String>> = BTreeMap::new();
    let mut class = 0;
    for line in text.lines() {
        match line.strip_prefix("# ") {
            Some(head) => class = head.split(' ').next().unwrap().parse().unwrap(),
            None => {
                let (path, t) = line.split_once(' ').unwrap();
                out.entry(class).or_default().insert(path.into(), t.into());
            }
        }
    }
    out
}

/// Each leaf of an event as `path` → the JSON type; a `json_t` value or a map is one leaf.
fn leaves(v: &Value, path: String, out: &mut BTreeMap<String, &'static str>) {
    let opaque = path.ends_with("evidences[].data") || path == "unmapped.ritma.bindings";
    match v {
        _ if opaque => {
            out.insert(path, "opaque");
        }
        Value::Object(m) => {
            for (k, x) in m {
                let p = match path.as_str() {
                    "" => k.clone(),
                    _ => format!("{path}.{k}"),
                };
                leaves(x, p, out);
            }
        }
        Value::Array(a) => a.iter().for_each(|x| leaves(x, format!("{path}[]"), out)),
        Value::String(_) => {
            out.insert(path, "string");
        }
        Value::Number(_) => {
            out.insert(path, "number");
        }
        Value::Bool(_) => {
            out.insert(path, "boolean");
        }
        Value::Null => {
            out.insert(path, "null");
        }
    }
}

#[test]
fn every_attribute_emitted_has_its_parquet_column() {
    let columns = parquet_columns();
    let (f, _) = every_event();
    for e in f.events() {
        let class = e["class_uid"].as_u64().unwrap();
        let have = columns
            .get(&class)
            .unwrap_or_else(|| panic!("no columns of {class}"));
        let mut emitted = BTreeMap::new();
        leaves(&e, String::new(), &mut emitted);
        for (path, json) in emitted {
            let column = have
                .get(&path)
                .unwrap_or_else(|| panic!("class {class}: no column {path} in {e:#}"));
            let fits = match json {
                "string" => column == "string",
                "number" => column == "int32" || column == "int64",
                "boolean" => column == "boolean",
                _ => column == "string" || column.starts_with("map<"),
            };
            assert!(
                fits,
                "class {class}: {path} is a {json}, its column a {column}"
            );
        }
    }
}

#[test]
fn every_parquet_column_is_an_ocsf_attribute_of_its_type() {
    let schema = ocsf_schema::kept();
    for (class, columns) in parquet_columns() {
        for (path, column) in columns {
            // unmapped is OCSF's free-form object: its columns are Ritma's own.
            if path.starts_with("unmapped.") {
                continue;
            }
            let names: Vec<&str> = path.split('.').map(|n| n.trim_end_matches("[]")).collect();
            let (t, is_array) = schema
                .attribute_type(class, &names)
                .unwrap_or_else(|e| panic!("class {class} {path}: {e}"));
            // Each `[]` of the path is an array of the schema, the last one this attribute's.
            assert_eq!(is_array, path.ends_with("[]"), "class {class} {path}");
            let want = match t.as_str() {
                "string_t" | "json_t" => "string",
                "integer_t" => "int32",
                "long_t" => "int64",
                "boolean_t" => "boolean",
                other => panic!("class {class} {path}: OCSF type {other}"),
            };
            assert_eq!(column, want, "class {class} {path}: OCSF {t}");
        }
    }
}
