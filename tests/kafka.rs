//! Evidence through a real Kafka-protocol broker (tansu, tests/broker.rs): nodes ship their
//! stores with `ritma ship`, `ritma ingest` rebuilds them byte for byte, through a broker
//! outage, ingest processes killed at random points, and a rebalance between two ingest
//! processes; the witness's cosigned checkpoints make a later tail cut visible; and
//! `ritma ingest --clickhouse` loads what it accepts into a real ClickHouse server.

mod broker;
mod clickhouse_server;
#[allow(dead_code)]
mod live;
#[allow(dead_code)]
mod util;

use broker::Broker;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::ClientConfig;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};
use util::{tree, Dir, OutputExt};

const NODES: [&str; 3] = ["synth-0", "synth-1", "synth-2"];

fn broker() -> Option<Broker> {
    Broker::start(&[
        ("ritma.evidence", 3),
        ("ritma.checkpoints", 1),
        ("ritma.ocsf", 1),
    ])
}

/// Three nodes' stores `s/nodes/synth-{0,1,2}` (one replay of a three-host trace, each
/// node its own key), spanning an hour boundary with minute windows, and a trust
/// directory `trust/` with their verifier keys.
fn three_nodes() -> Dir {
    let d = Dir::new();
    d.ritma(&[
        "synth",
        "--events",
        "12000",
        "--seed",
        "8",
        "--hosts",
        "3",
        "--rate",
        "1",
        "--window-ms",
        "60000",
        "--batch",
        "64",
        "--out",
        "t.rtrace",
    ])
    .output()
    .success();
    d.node_keys("s", &NODES);
    d.ritma(&["replay", "t.rtrace", "--out", "s"])
        .output()
        .success();
    std::fs::create_dir_all(d.join("trust")).unwrap();
    for n in NODES {
        std::fs::copy(
            d.join(&format!("s/nodes/{n}/_meta/keys/signing.vkey")),
            d.join(&format!("trust/{n}.vkey")),
        )
        .unwrap();
    }
    d
}

/// `ritma ship s/nodes/NODE` with small messages (many parts per window).
fn ship(d: &Dir, b: &Broker, node: &str) -> std::process::Command {
    let mut c = d.ritma(&[
        "ship",
        &format!("s/nodes/{node}"),
        "--brokers",
        &b.bootstrap(),
        "--max-message-bytes",
        "8192",
    ]);
    c.stdout(Stdio::piped()).stderr(Stdio::piped());
    c
}

/// `ritma ingest` into `out` as group `g`, running until SIGTERM (or an hour of silence).
fn ingest(d: &Dir, b: &Broker, out: &str) -> std::process::Command {
    let mut c = d.ritma(&[
        "ingest",
        "--brokers",
        &b.bootstrap(),
        "--group",
        "g",
        "--out",
        out,
        "--trust",
        "trust",
        "--session-timeout-ms",
        "2000",
        "--idle-exit",
        "3600",
        "--max-message-bytes",
        "8192",
    ]);
    c.stdout(Stdio::piped()).stderr(Stdio::piped());
    c
}

/// A witness key `w.key` (`w.key.vkey`) and `ritma ingest` into `central` cosigning with it.
fn witnessing_ingest(d: &Dir, b: &Broker) -> Child {
    d.ritma(&["keys", "new", "central/w1", "--out", "w.key", "--witness"])
        .output()
        .success();
    let mut ing = ingest(d, b, "central");
    ing.args(["--witness-key", "w.key"]);
    ing.spawn().unwrap()
}

/// The three nodes' trees: (node, its tree relative to the test dir).
const THREE: [(&str, &str); 3] = [
    ("synth-0", "s/nodes/synth-0"),
    ("synth-1", "s/nodes/synth-1"),
    ("synth-2", "s/nodes/synth-2"),
];

/// A node's tree as the ingest must rebuild it: all but the node's own files (FORMAT §12.2).
fn shipped_tree(root: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut t = tree(root);
    t.retain(|p, _| {
        !p.starts_with("wal")
            && !p.starts_with("_meta/ship")
            && !p.starts_with("_meta/witnessed")
            && p != Path::new("_meta/keys/signing.key")
    });
    t
}

/// Every file under `root` with its bytes; `None` if one vanished while read (an ingest
/// renaming its temporary files as it writes).
fn tree_now(root: &Path) -> Option<BTreeMap<PathBuf, Vec<u8>>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(&dir).ok()? {
            let p = e.ok()?.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                let rel = p.strip_prefix(root).ok()?.to_path_buf();
                out.insert(rel, std::fs::read(&p).ok()?);
            }
        }
    }
    Some(out)
}

fn rebuilt(d: &Dir, out: &str, nodes: &[(&str, &str)]) -> bool {
    nodes.iter().all(|(n, dir)| {
        let got = tree_now(&d.join(&format!("{out}/nodes/{n}")));
        got.is_some_and(|got| shipped_tree(&d.join(dir)) == got)
    })
}

/// Each node's tree as the ingest must have rebuilt it, nothing quarantined, and the
/// central store verifies.
fn assert_rebuilt(d: &Dir, out: &str, nodes: &[(&str, &str)]) {
    for (n, dir) in nodes {
        let node = shipped_tree(&d.join(dir));
        let got = tree(&d.join(&format!("{out}/nodes/{n}")));
        let missing: Vec<&PathBuf> = node.keys().filter(|p| !got.contains_key(*p)).collect();
        let extra: Vec<&PathBuf> = got.keys().filter(|p| !node.contains_key(*p)).collect();
        assert!(
            missing.is_empty() && extra.is_empty(),
            "{n}: missing {missing:?}, extra {extra:?}"
        );
        assert!(node == got, "{n}: a file differs");
    }
    assert!(
        !d.join(&format!("{out}/quarantine")).exists(),
        "nothing quarantined"
    );
    d.ritma(&["verify", out, "--trust", "trust"])
        .output()
        .success();
}

/// Waits (at most 3 minutes) until `out` holds the nodes' trees, then stops the ingest
/// with SIGTERM and returns what it printed.
fn stop_when_rebuilt(d: &Dir, out: &str, nodes: &[(&str, &str)], mut c: Child) -> String {
    // Time to install its signal handler: a SIGTERM before that kills it outright.
    std::thread::sleep(Duration::from_secs(2));
    let deadline = Instant::now() + Duration::from_secs(180);
    while !rebuilt(d, out, nodes) && Instant::now() < deadline {
        if c.try_wait().unwrap().is_some() {
            break;
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    // SAFETY: a signal to a child process this test started and has not reaped.
    unsafe { libc::kill(c.id() as i32, libc::SIGTERM) };
    wait(c, "ingest")
}

fn wait(c: Child, what: &str) -> String {
    let out = c.wait_with_output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{what} failed:\n{text}");
    text
}

#[test]
fn three_nodes_ship_through_a_broker_outage_into_one_ingest() {
    let Some(b) = broker() else { return };
    let d = three_nodes();
    let ing = witnessing_ingest(&d, &b);
    let mut ships: Vec<Child> = NODES
        .iter()
        .map(|n| ship(&d, &b, n).spawn().unwrap())
        .collect();
    // The broker goes away while the nodes ship (once the first shipment is acked), for 30 s.
    let deadline = Instant::now() + Duration::from_secs(60);
    while !NODES.iter().any(|n| {
        d.join(&format!("s/nodes/{n}/_meta/ship/ritma.evidence.cbor"))
            .exists()
    }) {
        assert!(Instant::now() < deadline, "no shipment acked");
        std::thread::sleep(Duration::from_millis(20));
    }
    b.go_down();
    let shipping = ships
        .iter_mut()
        .map(|c| c.try_wait().unwrap())
        .filter(Option::is_none)
        .count();
    assert!(shipping > 0, "every node had shipped before the outage");
    std::thread::sleep(Duration::from_secs(30));
    b.come_back();
    for (s, n) in ships.into_iter().zip(NODES) {
        let out = wait(s, &format!("ship {n}"));
        assert!(out.contains("shipped"), "{out}");
    }
    let out = stop_when_rebuilt(&d, "central", &THREE, ing);
    assert!(out.contains("quarantined: none"), "{out}");
    assert_rebuilt(&d, "central", &THREE);
    // Shipping again sends nothing: the cursors are at the end.
    let again = wait(ship(&d, &b, "synth-1").spawn().unwrap(), "ship again");
    assert!(again.contains("shipped 0 windows"), "{again}");

    // The witness published cosigned checkpoints; the newest of synth-0 pins its log.
    let cosigned = newest_cosigned(&b, "synth-0");
    std::fs::write(d.join("cp.sig"), &cosigned).unwrap();
    let wvkey = std::fs::read_to_string(d.join("w.key.vkey")).unwrap();
    let node_vkey = "trust/synth-0.vkey";
    d.ritma(&[
        "verify",
        "s/nodes/synth-0",
        "--key",
        node_vkey,
        "--checkpoint",
        "cp.sig",
        "--witness",
        wvkey.trim(),
    ])
    .output()
    .success();
    // The node cuts its last window: the cosigned checkpoint shows it.
    let last = util::window_leaves(&d.join("s/nodes/synth-0"))
        .last()
        .unwrap()
        .0
        .clone();
    let p = ritma_sinks::store::WindowPaths::new(last.window, last.window_len_ns);
    std::fs::remove_file(d.join("s/nodes/synth-0").join(p.checkpoint())).unwrap();
    std::fs::remove_file(d.join("s/nodes/synth-0").join(p.record())).unwrap();
    let _ = std::fs::remove_file(d.join("s/nodes/synth-0").join(p.blocks()));
    // And takes the hour's catalog entry out, so the cut looks like an interrupted write.
    let per_hour = ritma_schemas::records::windows_per_hour(last.window_len_ns);
    ritma_sinks::catalog::forget_hour(&d.join("s/nodes/synth-0"), last.window / per_hour).unwrap();
    let err = d
        .ritma(&[
            "verify",
            "s/nodes/synth-0",
            "--key",
            node_vkey,
            "--checkpoint",
            "cp.sig",
        ])
        .output()
        .failure();
    assert!(
        err.contains("E_CHECKPOINT") && err.contains("cp.sig"),
        "{err}"
    );
}

/// A node down for hours between two runs ships, and the ingest rebuilds it byte for byte:
/// the receiver accepts the windows the downtime left out (FORMAT §7.2) because the later
/// run's first window records the restart, and the shipper goes on past them.
#[test]
fn a_node_with_hours_of_downtime_ships_and_is_rebuilt_whole() {
    let Some(b) = broker() else { return };
    let d = Dir::new();
    util::downtime_store(&d);
    std::fs::create_dir_all(d.join("trust")).unwrap();
    std::fs::copy(
        d.join("s/_meta/keys/signing.vkey"),
        d.join("trust/synth-0.vkey"),
    )
    .unwrap();
    // The store has windows left out: its window numbers jump.
    let windows: Vec<u64> = util::window_leaves(&d.join("s"))
        .iter()
        .map(|(r, _)| r.window)
        .collect();
    assert!(windows.windows(2).any(|w| w[1] > w[0] + 1), "no downtime");
    let ing = ingest(&d, &b, "central").spawn().unwrap();
    let mut ship = d.ritma(&["ship", "s", "--brokers", &b.bootstrap()]);
    ship.stdout(Stdio::piped()).stderr(Stdio::piped());
    let out = wait(ship.spawn().unwrap(), "ship");
    assert!(
        out.contains(&format!("shipped {} windows", windows.len())),
        "{out}"
    );
    let node = [("synth-0", "s")];
    let out = stop_when_rebuilt(&d, "central", &node, ing);
    assert!(out.contains("quarantined: none"), "{out}");
    assert_rebuilt(&d, "central", &node);
}

/// Every message on `topic` whose key is `node`, read until the topic is quiet.
fn read_topic(b: &Broker, topic: &str, node: &str) -> Vec<String> {
    let c: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", b.bootstrap())
        .set("group.id", format!("test-reader-{topic}"))
        .set("auto.offset.reset", "earliest")
        .set("session.timeout.ms", "2000")
        .create()
        .unwrap();
    c.subscribe(&[topic]).unwrap();
    let mut out = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(40);
    let mut seen = 0;
    while Instant::now() < deadline {
        match c.poll(Duration::from_millis(1000)) {
            Some(Ok(m)) => {
                seen += 1;
                if m.key() == Some(node.as_bytes()) {
                    out.push(String::from_utf8(m.payload().unwrap().to_vec()).unwrap());
                }
            }
            Some(Err(e)) => panic!("{e}"),
            None if seen > 0 => break,
            None => {}
        }
    }
    out
}

/// The newest checkpoint note of `node` on the checkpoint topic.
fn newest_cosigned(b: &Broker, node: &str) -> String {
    let size = |note: &String| -> u64 { note.lines().nth(1).unwrap().parse().unwrap() };
    let best = read_topic(b, "ritma.checkpoints", node)
        .into_iter()
        .max_by_key(size)
        .unwrap_or_else(|| panic!("no cosigned checkpoint of {node}"));
    best
}

#[test]
fn an_ingest_killed_at_random_points_loses_and_doubles_nothing() {
    let Some(b) = broker() else { return };
    let d = three_nodes();
    for n in NODES {
        wait(ship(&d, &b, n).spawn().unwrap(), "ship");
    }
    // SIGKILL after varied delays; each restart continues from the committed offsets.
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    for _ in 0..5 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let mut child = ingest(&d, &b, "central").spawn().unwrap();
        std::thread::sleep(Duration::from_millis(1500 + x % 2500));
        child.kill().unwrap();
        child.wait().unwrap();
        // tansu 0.6 finds a dead member only when another joins, and only once its session
        // (2 s) has run out: a member joining sooner shares the partitions with the dead one.
        std::thread::sleep(Duration::from_secs(3));
    }
    let last = ingest(&d, &b, "central").spawn().unwrap();
    let out = stop_when_rebuilt(&d, "central", &THREE, last);
    assert!(out.contains("quarantined: none"), "{out}");
    assert_rebuilt(&d, "central", &THREE);
}

#[test]
fn two_ingest_processes_share_the_nodes_and_a_rebalance_loses_and_doubles_nothing() {
    let Some(b) = broker() else { return };
    let d = three_nodes();
    // Two members of one group share the three partitions.
    let mut first = ingest(&d, &b, "central").spawn().unwrap();
    let second = ingest(&d, &b, "central").spawn().unwrap();
    std::thread::sleep(Duration::from_secs(5));
    wait(ship(&d, &b, "synth-0").spawn().unwrap(), "ship");
    // The first member stops mid-stream and leaves the group: its partitions move to the
    // second, which goes on from the offsets the first committed. A member killed outright
    // is an_ingest_killed_…'s case, where a new member joins after each kill: with tansu 0.6,
    // a SIGKILLed member's partitions did not move to the one left within 3 minutes here
    // (its session was not expired while the other heartbeated).
    let late = ship(&d, &b, "synth-1").spawn().unwrap();
    std::thread::sleep(Duration::from_millis(300));
    // SAFETY: a signal to a child process this test started and has not reaped.
    unsafe { libc::kill(first.id() as i32, libc::SIGTERM) };
    first.wait().unwrap();
    wait(ship(&d, &b, "synth-2").spawn().unwrap(), "ship");
    wait(late, "ship");
    let out = stop_when_rebuilt(&d, "central", &THREE, second);
    assert!(out.contains("quarantined: none"), "{out}");
    assert!(!out.contains("ingested 0 messages"), "{out}");
    assert_rebuilt(&d, "central", &THREE);
}

#[test]
fn garbage_on_the_topic_is_quarantined_and_the_nodes_still_arrive() {
    let Some(b) = broker() else { return };
    let d = three_nodes();
    let p: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", b.bootstrap())
        .create()
        .unwrap();
    p.send(
        BaseRecord::to("ritma.evidence")
            .key("synth-1")
            .payload(&b"not a part"[..]),
    )
    .unwrap();
    p.flush(Duration::from_secs(10)).unwrap();
    for n in NODES {
        let mut s = ship(&d, &b, n);
        s.arg("--ocsf");
        wait(s.spawn().unwrap(), "ship");
    }
    let ing = ingest(&d, &b, "central").spawn().unwrap();
    let out = stop_when_rebuilt(&d, "central", &THREE, ing);
    assert!(out.contains("quarantined: 1 decode"), "{out}");
    // One OCSF event per sealed event and per cone match, each naming its proof coordinates.
    let events = read_topic(&b, "ritma.ocsf", "synth-2");
    let want: u64 = util::window_leaves(&d.join("s/nodes/synth-2"))
        .iter()
        .map(|(r, _)| r.event_count + r.cone_count)
        .sum();
    assert_eq!(events.len() as u64, want);
    for e in &events {
        let v: serde_json::Value = serde_json::from_str(e).unwrap();
        assert!(
            v["class_uid"].as_u64().is_some() && v["metadata"]["version"] == "1.8.0",
            "{e}"
        );
        assert!(
            v["metadata"]["uid"]
                .as_str()
                .unwrap()
                .starts_with("synth-2/"),
            "{e}"
        );
    }
    let q = tree(&d.join("central/quarantine/synth-1"));
    assert_eq!(q.len(), 2, "{q:?}");
    std::fs::remove_dir_all(d.join("central/quarantine")).unwrap();
    assert_rebuilt(&d, "central", &THREE);
}

#[test]
fn bad_brokers_and_unknown_topics_get_clear_errors() {
    let Some(b) = broker() else { return };
    let d = three_nodes();
    let err = d
        .ritma(&["ship", "s/nodes/synth-0", "--brokers", "127.0.0.1:1"])
        .output()
        .failure();
    assert!(
        err.contains("cannot reach the Kafka brokers 127.0.0.1:1"),
        "{err}"
    );
    let err = d
        .ritma(&[
            "ship",
            "s/nodes/synth-0",
            "--brokers",
            &b.bootstrap(),
            "--topic",
            "nope",
        ])
        .output()
        .failure();
    assert!(err.contains("topic nope does not exist"), "{err}");
    let err = d
        .ritma(&[
            "ship",
            "s/nodes/synth-0",
            "--brokers",
            &b.bootstrap(),
            "--max-message-bytes",
            "100",
        ])
        .output()
        .failure();
    assert!(err.contains("--max-message-bytes must be"), "{err}");
    // Nothing was shipped: no cursor moved.
    assert!(!d.join("s/nodes/synth-0/_meta/ship").exists());
}

/// A live `ritma run --kafka-brokers` ships as it seals; the ingest rebuilds the store and,
/// as a witness, cosigns its checkpoints, and the run keeps the newest one (as root).
#[test]
fn a_live_run_ships_as_it_seals_and_keeps_a_witnessed_checkpoint() {
    if live::skip_without_root("a_live_run_ships_as_it_seals_and_keeps_a_witnessed_checkpoint") {
        return;
    }
    let Some(b) = broker() else { return };
    let d = Dir::new();
    d.ritma(&["keys", "init", "--out", "s", "--node", "live-1"])
        .output()
        .success();
    std::fs::create_dir_all(d.join("trust")).unwrap();
    std::fs::copy(
        d.join("s/_meta/keys/signing.vkey"),
        d.join("trust/live-1.vkey"),
    )
    .unwrap();
    let ing = witnessing_ingest(&d, &b);
    let mut run = d.ritma(&[
        "run",
        "--out",
        "s",
        "--node",
        "live-1",
        "--duration",
        "12",
        "--kafka-brokers",
        &b.bootstrap(),
        "--kafka-ocsf",
    ]);
    run.stdout(Stdio::piped()).stderr(Stdio::piped());
    let run = wait(run.spawn().unwrap(), "run");
    assert!(run.contains("ritma: shipped "), "{run}");
    // What the run had no time to ship at its stop (a busy machine, large binaries) waits in
    // the store; `ritma ship` sends it.
    let rest = d
        .ritma(&["ship", "s", "--brokers", &b.bootstrap(), "--ocsf"])
        .output()
        .success();
    assert!(rest.contains("0 completed windows left"), "{rest}");
    let out = stop_when_rebuilt(&d, "central", &[("live-1", "s")], ing);
    assert!(out.contains("quarantined: none"), "{out}");
    assert_rebuilt(&d, "central", &[("live-1", "s")]);
    let events = read_topic(&b, "ritma.ocsf", "live-1");
    assert!(!events.is_empty(), "the run's events on the SIEM topic");
    let wvkey = std::fs::read_to_string(d.join("w.key.vkey")).unwrap();
    d.ritma(&[
        "verify",
        "s",
        "--key",
        "trust/live-1.vkey",
        "--checkpoint",
        "s/_meta/witnessed/checkpoint.sig",
        "--witness",
        wvkey.trim(),
    ])
    .output()
    .success();
}

#[test]
fn an_ingest_loads_every_accepted_window_into_clickhouse_once() {
    let Some(b) = broker() else { return };
    let Some(ch) = clickhouse_server::Server::start() else {
        return;
    };
    let d = three_nodes();
    let url = ch.database("fleet", None);
    // The first node before the ingest starts, the others while it runs and loads.
    wait(ship(&d, &b, NODES[0]).spawn().unwrap(), "ship");
    let mut ing = ingest(&d, &b, "central");
    ing.args(["--clickhouse", &url, "--clickhouse-interval", "0.3"]);
    let ing = ing.spawn().unwrap();
    for n in &NODES[1..] {
        wait(ship(&d, &b, n).spawn().unwrap(), "ship");
    }
    let out = stop_when_rebuilt(&d, "central", &THREE, ing);
    assert!(out.contains("quarantined: none"), "{out}");
    assert_rebuilt(&d, "central", &THREE);
    for n in NODES {
        let sealed = util::window_leaves(&d.join(&format!("s/nodes/{n}")));
        let events: u64 = sealed.iter().map(|(r, _)| r.event_count).sum();
        let count = |table: &str| {
            ch.query(&format!(
                "SELECT count() FROM fleet.{table} WHERE node = '{n}'"
            ))
            .trim()
            .parse::<u64>()
            .unwrap()
        };
        assert_eq!(count("events"), events, "{n}");
        assert_eq!(count("windows"), sealed.len() as u64, "{n}");
        // The hour seals of the hours the store closed.
        assert!(count("hours") >= 1, "{n}");
    }
    assert_eq!(
        ch.query("SELECT count() FROM (SELECT node, seq FROM fleet.events GROUP BY node, seq HAVING count() > 1)").trim(),
        "0"
    );
}
