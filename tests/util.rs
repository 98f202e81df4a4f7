//! A temporary directory and a command builder for the real `ritma` binary.

use ritma_schemas::records::{Record, WindowRecord};
use ritma_sinks::store::{read_window_leaves, WindowPaths};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub struct Dir {
    tmp: tempfile::TempDir,
}

impl Dir {
    pub fn new() -> Self {
        Dir {
            tmp: tempfile::tempdir().expect("temp dir"),
        }
    }

    pub fn path(&self) -> &Path {
        self.tmp.path()
    }

    pub fn join(&self, p: &str) -> PathBuf {
        self.tmp.path().join(p)
    }

    /// `ritma ARGS…` with a clean environment for the variables ritma reads.
    pub fn ritma(&self, args: &[&str]) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_ritma"));
        c.args(args)
            .current_dir(self.path())
            .env_remove("RITMA_OUT")
            .env_remove("RITMA_NODE_ID")
            .env_remove("RITMA_TRUST")
            .env_remove("RITMA_CONFIG");
        c
    }
}

impl Dir {
    /// `ritma keys init --out keys --node NODE`, outside any store, so every replay signs
    /// alike; returns the private key file and the vkey file.
    pub fn signing_key(&self, node: &str) -> (String, String) {
        self.ritma(&["keys", "init", "--out", "keys", "--node", node])
            .output()
            .success();
        let key = |f: &str| {
            self.join(&format!("keys/_meta/keys/{f}"))
                .display()
                .to_string()
        };
        (key("signing.key"), key("signing.vkey"))
    }

    /// `ritma keys init` for each node of a multi-node store: `STORE/nodes/<node>`.
    pub fn node_keys(&self, store: &str, nodes: &[&str]) {
        for n in nodes {
            self.ritma(&[
                "keys",
                "init",
                "--out",
                &format!("{store}/nodes/{n}"),
                "--node",
                n,
            ])
            .output()
            .success();
        }
    }

    /// A store `s` of two nodes, synth-0 and synth-1 (`nodes/<node>/`, each its own key),
    /// from a synthetic trace `m.rtrace` of `events` events.
    pub fn two_node_store(&self, events: &str) {
        self.ritma(&[
            "synth", "--events", events, "--hosts", "2", "--out", "m.rtrace",
        ])
        .output()
        .success();
        self.node_keys("s", &["synth-0", "synth-1"]);
        self.ritma(&["replay", "m.rtrace", "--out", "s"])
            .output()
            .success();
    }

    /// `ritma synth SYNTH_ARGS… --out t.rtrace`, a key for node synth-0 in store `s`,
    /// and `ritma replay t.rtrace --out s`: a sealed single-node store at `s`.
    pub fn sealed_store(&self, synth_args: &[&str]) {
        let mut synth = vec!["synth"];
        synth.extend_from_slice(synth_args);
        synth.extend_from_slice(&["--out", "t.rtrace"]);
        self.ritma(&synth).output().success();
        self.ritma(&["keys", "init", "--out", "s", "--node", "synth-0"])
            .output()
            .success();
        self.ritma(&["replay", "t.rtrace", "--out", "s"])
            .output()
            .success();
    }
}

/// A process of a hand-made trace: child of pid 1, started 1000 + pid ns after boot.
pub fn task(pid: u32, comm: &str) -> ritma_sources::raw::Task {
    ritma_sources::raw::Task {
        pid,
        tid: pid,
        ppid: 1,
        start_ns: 1_000 + u64::from(pid),
        comm: comm.as_bytes().to_vec(),
        ..Default::default()
    }
}

/// An exec of `path` (file `ino` on device 9) by process `pid` at `mono_ns`.
pub fn exec_event(
    seq: u64,
    mono_ns: u64,
    pid: u32,
    path: &str,
    ino: u64,
) -> ritma_sources::raw::RawEvent {
    ritma_sources::raw::RawEvent {
        seq,
        mono_ns,
        task: task(pid, "sh"),
        body: ritma_sources::raw::RawBody::Exec {
            filename: path.as_bytes().to_vec(),
            argv: vec![path.as_bytes().to_vec()],
            argv_truncated: false,
            exe_dev: 9,
            exe_ino: ino,
            given: None,
            stdio_net: 0,
        },
    }
}

/// Every file under `root`, by relative path, with its bytes.
pub fn tree(root: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.insert(
                    p.strip_prefix(root).unwrap().to_path_buf(),
                    std::fs::read(&p).unwrap(),
                );
            }
        }
    }
    out
}

/// Copies a directory tree.
pub fn copy_tree(from: &Path, to: &Path) {
    for (rel, bytes) in tree(from) {
        let p = to.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, bytes).unwrap();
    }
}

/// Every sealed window of the single-node store at `store`, in window order, with its
/// leaves read back from its blocks.
pub fn window_leaves(store: &Path) -> Vec<(WindowRecord, Vec<Vec<u8>>)> {
    let mut out = Vec::new();
    for (rel, bytes) in tree(&store.join("windows")) {
        if !rel.to_string_lossy().contains("/micro/") || rel.extension().unwrap() != "cbor" {
            continue;
        }
        let record = WindowRecord::decode(&bytes).unwrap();
        let paths = WindowPaths::new(record.window, record.window_len_ns);
        let p = store.join(paths.blocks());
        let leaves = match p.exists() {
            true => read_window_leaves(&p, record.window, record.leaf_count()).unwrap(),
            false => Vec::new(),
        };
        out.push((record, leaves));
    }
    out.sort_by_key(|(r, _)| r.window);
    out
}

pub trait OutputExt {
    fn success(self) -> String;
    fn failure(self) -> String;
}

impl OutputExt for std::io::Result<Output> {
    /// Asserts success; returns stdout.
    fn success(self) -> String {
        let o = self.expect("run ritma");
        let (out, err) = (
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr),
        );
        assert!(
            o.status.success(),
            "ritma failed: {}\nstdout:\n{out}\nstderr:\n{err}",
            o.status
        );
        out.into_owned()
    }

    /// Asserts failure; returns stderr.
    fn failure(self) -> String {
        let o = self.expect("run ritma");
        let (out, err) = (
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr),
        );
        assert!(
            !o.status.success(),
            "ritma unexpectedly succeeded\nstdout:\n{out}\nstderr:\n{err}"
        );
        err.into_owned()
    }
}

/// Rewrites window `window` of the single-node store at `store` as an attacker holding its
/// signing key (the file `key`) would: `mutate` changes the window's record fields and
/// leaves, then its blocks, health copies, root and record are written anew and every
/// checkpoint from it on is signed again over the changed node log. Derived files (index,
/// catalog) are left as they were. Hour seals at or after the window are not redone: the
/// store must have none there.
pub fn forge_window(
    store: &Path,
    key: &Path,
    window: u64,
    mutate: impl FnOnce(&mut WindowRecord, &mut Vec<Vec<u8>>),
) {
    use ritma_schemas::merkle::{root, Blake3Tree, Frontier, TreeHash};
    use ritma_schemas::note::{Checkpoint, NoteSigner};
    use ritma_schemas::records::StoreMeta;
    use ritma_sinks::store::NodeStore;
    let signer =
        NoteSigner::from_private_key_text(std::fs::read_to_string(key).unwrap().trim()).unwrap();
    let meta = StoreMeta::decode(&std::fs::read(store.join("_meta/store.cbor")).unwrap()).unwrap();
    let mut log = Frontier::new();
    let mut mutate = Some(mutate);
    for (mut record, mut leaves) in window_leaves(store) {
        let paths = WindowPaths::new(record.window, record.window_len_ns);
        if record.window == window {
            (mutate.take().expect("one window"))(&mut record, &mut leaves);
            let hashes: Vec<_> = leaves.iter().map(|l| Blake3Tree::leaf(l)).collect();
            record.window_root = root::<Blake3Tree>(&hashes);
            let hour = store.join(&paths.hour_dir);
            for f in [paths.blocks(), paths.record(), paths.checkpoint()] {
                let _ = std::fs::remove_file(store.join(f));
            }
            for n in 0..64 {
                let _ = std::fs::remove_file(store.join(paths.health(n)));
            }
            assert!(
                !hour.join("proofs/hour_root.cbor").exists(),
                "forge_window: a sealed hour"
            );
            log.push_data::<Blake3Tree>(&record.encode());
            let cp = Checkpoint::for_node(&meta.node, log.size(), log.root::<Blake3Tree>())
                .unwrap()
                .sign(&signer)
                .unwrap();
            NodeStore::open(store, meta.clone())
                .unwrap()
                .write_window(&record, &record.encode(), &leaves, &cp, None)
                .unwrap();
            continue;
        }
        log.push_data::<Blake3Tree>(&record.encode());
        if record.window > window {
            assert!(
                !store
                    .join(&paths.hour_dir)
                    .join("proofs/hour_root.cbor")
                    .exists(),
                "forge_window: a sealed hour after the forged window"
            );
            let cp = Checkpoint::for_node(&meta.node, log.size(), log.root::<Blake3Tree>())
                .unwrap()
                .sign(&signer)
                .unwrap();
            std::fs::write(store.join(paths.checkpoint()), cp).unwrap();
        }
    }
}

/// Two traces of node `synth-0`: `a.rtrace`, a synthetic run with attacks (so taint) over a
/// few minutes, and `b.rtrace`, a later run on another boot started 2.5 hours after the first
/// one's newest event, with three events and seqs going on after a gap of 5.
pub struct DowntimeTraces {
    /// The window of the first run's newest event.
    pub last_window: u64,
    /// The second run's RunMeta.
    pub second: ritma_schemas::records::RunMeta,
}

pub fn downtime_traces(d: &Dir) -> DowntimeTraces {
    use ritma_sources::raw::{RawBody, RawEvent};
    use ritma_sources::trace::{TraceItem, TraceReader, TraceWriter};
    d.ritma(&["synth", "--events", "20000", "--out", "a.rtrace"])
        .output()
        .success();
    let mut r = TraceReader::open(&d.join("a.rtrace")).unwrap();
    let (mut meta, mut next_seq, mut newest_mono) = (None, 0, 0);
    while let Some(item) = r.next_item().unwrap() {
        match item {
            TraceItem::Run { meta: m, .. } => meta = Some(m),
            TraceItem::Batch { events, .. } => {
                for e in events {
                    next_seq = e.seq + 1;
                    newest_mono = newest_mono.max(e.mono_ns);
                }
            }
            _ => {}
        }
    }
    let first = meta.unwrap();
    let stop_wall = (newest_mono as i64 + first.wall_minus_mono_ns) as u64;
    let mut second = first.clone();
    second.boot_id = [9; 16];
    second.first_seq = next_seq + 5;
    second.started_wall_ns = stop_wall + 9_000 * 1_000_000_000;
    second.wall_minus_mono_ns = second.started_wall_ns as i64 - 1_000_000_000;
    second.sensor_version = "second".into();
    let mut w = TraceWriter::create(&d.join("b.rtrace")).unwrap();
    let run = w.add_run(&second).unwrap();
    let events: Vec<RawEvent> = (0..3)
        .map(|i| RawEvent {
            seq: second.first_seq + i,
            mono_ns: 1_000_000_000 + 200_000_000 * (i + 1),
            task: task(100, "worker"),
            body: RawBody::Open {
                path: format!("/data/after{i}").into_bytes(),
                flags: 0,
                mode: 0,
                result: 3,
                given: None,
            },
        })
        .collect();
    w.append_batch(run, &events).unwrap();
    drop(w);
    DowntimeTraces {
        last_window: stop_wall / first.window_len_ns,
        second,
    }
}

/// `downtime_traces`, sealed into the store `s` with a key of its own.
pub fn downtime_store(d: &Dir) -> DowntimeTraces {
    let t = downtime_traces(d);
    d.ritma(&["keys", "init", "--out", "s", "--node", "synth-0"])
        .output()
        .success();
    d.ritma(&["replay", "a.rtrace", "b.rtrace", "--out", "s"])
        .output()
        .success();
    t
}
