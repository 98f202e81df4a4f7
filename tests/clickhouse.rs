//! `ritma load` into a real ClickHouse server (Debian's 18.16, tests/clickhouse_server.rs):
//! every table counts exactly what the store seals, a second load adds nothing, and a load
//! cut or failed mid-INSERT is completed by the next one without a row twice. The current
//! engine (26.9, chdb behind an emulated HTTP transport) gets the modern tables.

mod clickhouse_server;
#[allow(dead_code)]
mod util;

use clickhouse_server::{Engine, Fault, FaultProxy, Server};
use serde_json::Value;
use std::collections::BTreeMap;
use util::{window_leaves, Dir, OutputExt};

/// What the store seals, per table of ClickHouse.
fn store_counts(d: &Dir) -> BTreeMap<&'static str, u64> {
    let mut c = BTreeMap::new();
    for (r, _) in window_leaves(&d.join("s")) {
        *c.entry("events").or_default() += r.event_count;
        *c.entry("actors").or_default() += r.actor_count;
        *c.entry("edges").or_default() += r.edge_count;
        *c.entry("cone_matches").or_default() += r.cone_count;
        *c.entry("health").or_default() += r.health_count;
        *c.entry("loss").or_default() += r.lost.len() as u64;
        *c.entry("windows").or_default() += 1;
    }
    c
}

/// The rows `ritma query s path /tmp/.x` prints (renames aside), as tab-separated `keys`
/// (flags joined by commas), to compare with what another reader returns.
fn queried_path_rows(d: &Dir, keys: &[&str]) -> Vec<String> {
    let rows: Vec<String> = d
        .ritma(&["query", "s", "path", "/tmp/.x", "--json"])
        .output()
        .success()
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|q| q.get("renamed").is_none())
        .map(|q| {
            let cell = |k: &str| match &q[k] {
                Value::String(s) => s.clone(),
                Value::Array(a) => a
                    .iter()
                    .map(|f| f.as_str().unwrap())
                    .collect::<Vec<_>>()
                    .join(","),
                v => v.to_string(),
            };
            keys.iter().map(|k| cell(k)).collect::<Vec<_>>().join("\t")
        })
        .collect();
    assert!(!rows.is_empty());
    rows
}

fn table_counts(ch: &Server, db: &str) -> BTreeMap<&'static str, u64> {
    [
        "events",
        "actors",
        "edges",
        "cone_matches",
        "health",
        "loss",
        "windows",
    ]
    .into_iter()
    .map(|t| (t, ch.count(db, t)))
    .collect()
}

/// Rows loaded more than once: (node, window, leaf) seen twice in a leaf table.
fn duplicates(ch: &Server, db: &str) -> u64 {
    ["events", "actors", "edges", "cone_matches", "health"]
        .iter()
        .map(|t| {
            ch.query(&format!(
                "SELECT count() FROM (SELECT node, win, leaf FROM {db}.{t} GROUP BY node, win, leaf HAVING count() > 1)"
            ))
            .trim()
            .parse::<u64>()
            .unwrap()
        })
        .sum()
}

/// A sealed store of 60 one-second windows (30000 events, a labelled attack).
fn store() -> Dir {
    let d = Dir::new();
    d.sealed_store(&["--events", "30000", "--seed", "3", "--rate", "500"]);
    d
}

/// [`store`] with a byte of its trace flipped halfway: a run of events lost as
/// trace_corrupt, sealed in its window's record (the labelled attack comes earlier).
fn store_with_loss() -> Dir {
    let d = Dir::new();
    d.ritma(&[
        "synth", "--events", "30000", "--seed", "3", "--rate", "500", "--out", "t.rtrace",
    ])
    .output()
    .success();
    let mut trace = std::fs::read(d.join("t.rtrace")).unwrap();
    let half = trace.len() / 2;
    trace[half] ^= 0xff;
    std::fs::write(d.join("t.rtrace"), trace).unwrap();
    d.ritma(&["keys", "init", "--out", "s", "--node", "synth-0"])
        .output()
        .success();
    d.ritma(&["replay", "t.rtrace", "--out", "s"])
        .output()
        .success();
    d
}

fn load(d: &Dir, url: &str, extra: &[&str]) -> std::process::Command {
    let mut args = vec!["load", "s", "--clickhouse", url];
    args.extend_from_slice(extra);
    let mut c = d.ritma(&args);
    c.env("RITMA_LOCK_DIR", d.join("locks"));
    c
}

#[test]
fn a_store_loads_once_with_every_row_and_a_second_load_adds_nothing() {
    let Some(ch) = Server::start() else { return };
    let d = store();
    let url = ch.database("once", None);
    let out = load(&d, &url, &[]).output().success();
    assert!(out.contains("60 window(s) loaded"), "{out}");
    let want = store_counts(&d);
    assert!(
        want["events"] == 30000 && want["cone_matches"] > 0,
        "{want:?}"
    );
    assert_eq!(table_counts(&ch, "once"), want);
    assert_eq!(duplicates(&ch, "once"), 0);

    // Again: nothing new, the counts stay.
    let out = load(&d, &url, &[]).output().success();
    assert!(
        out.contains("0 window(s) loaded") && out.contains("60 already loaded"),
        "{out}"
    );
    assert_eq!(table_counts(&ch, "once"), want);

    // Each window row names its root and checkpoint as the store seals them.
    for (r, _) in window_leaves(&d.join("s")).iter().take(3) {
        let row = ch.query(&format!(
            "SELECT window_root, event_count, first_seq, log_size > 0 FROM once.windows WHERE win = {}",
            r.window
        ));
        let root: String = r.window_root.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(
            row.trim(),
            format!("{root}\t{}\t{}\t1", r.event_count, r.first_seq)
        );
    }

    // The rows say what `ritma query` says of the same events.
    let rows = ch.query(
        "SELECT seq, event, pid, comm, object, arrayStringConcat(flags, ','), lower(hex(actor)) \
         FROM once.events WHERE object = '/tmp/.x' ORDER BY seq",
    );
    let from_query = queried_path_rows(
        &d,
        &["seq", "event", "pid", "comm", "object", "flags", "actor"],
    );
    assert_eq!(rows.lines().collect::<Vec<_>>(), from_query);
}

#[test]
fn a_load_cut_mid_insert_is_completed_by_the_next_without_a_row_twice() {
    let Some(ch) = Server::start() else { return };
    let d = store();
    // How many bytes a whole load sends, to cut the next one in the middle of it.
    let probe = FaultProxy::start(ch.http);
    let url = ch.database("probe", Some(probe.addr));
    load(&d, &url, &[]).output().success();
    let whole = probe.sent();

    // Where in those bytes the events INSERT is depends on the sizes of the rows: cut
    // earlier and later until a cut lands inside it (some blocks committed, not all).
    let want = store_counts(&d);
    let mut cut = None;
    for (i, tenths) in (1..=8).enumerate() {
        let proxy = FaultProxy::start(ch.http);
        let db = format!("cut{i}");
        let url = ch.database(&db, Some(proxy.addr));
        proxy.arm(Fault::CutAfter(whole * tenths / 10));
        let err = load(&d, &url, &["--retries", "0", "--server-block-rows", "1000"])
            .output()
            .failure();
        assert!(proxy.fired(), "the load ended before the cut: {err}");
        assert!(
            err.contains("windows") && err.contains("run `ritma load` again"),
            "{err}"
        );
        // No window is marked loaded before all its rows are in.
        assert_eq!(ch.count(&db, "windows"), 0);
        let events = ch.count(&db, "events");
        eprintln!("cut at {tenths}/10 of {whole} bytes: {events} events loaded");
        if events > 0 && events < want["events"] {
            cut = Some((proxy, url, db));
            break;
        }
    }
    let (proxy, url, db) = cut.expect("no cut left part of the events loaded");
    proxy.heal();
    let out = load(&d, &url, &[]).output().success();
    assert!(out.contains("completed after an interrupted load"), "{out}");
    assert!(!out.contains("(0 completed"), "{out}");
    assert_eq!(table_counts(&ch, &db), want);
    assert_eq!(duplicates(&ch, &db), 0);
}

#[test]
fn a_server_error_mid_insert_is_named_and_the_next_load_is_exact() {
    let Some(ch) = Server::start() else { return };
    let d = store();
    let probe = FaultProxy::start(ch.http);
    let url = ch.database("probe", Some(probe.addr));
    load(&d, &url, &[]).output().success();
    let whole = probe.sent();

    let proxy = FaultProxy::start(ch.http);
    let url = ch.database("corrupt", Some(proxy.addr));
    proxy.arm(Fault::CorruptAt(whole * 6 / 10));
    let err = load(&d, &url, &["--retries", "0", "--server-block-rows", "1000"])
        .output()
        .failure();
    assert!(proxy.fired(), "{err}");
    // The server's own error, named with the table and the windows.
    assert!(err.contains("inserting into"), "{err}");
    assert!(err.contains("bad response"), "{err}");
    proxy.heal();
    load(&d, &url, &[]).output().success();
    assert_eq!(table_counts(&ch, "corrupt"), store_counts(&d));
    assert_eq!(duplicates(&ch, "corrupt"), 0);
}

#[test]
fn a_network_blip_is_retried_within_the_same_load() {
    let Some(ch) = Server::start() else { return };
    let d = store();
    let probe = FaultProxy::start(ch.http);
    let url = ch.database("probe", Some(probe.addr));
    load(&d, &url, &[]).output().success();
    let whole = probe.sent();

    let proxy = FaultProxy::start(ch.http);
    let url = ch.database("blip", Some(proxy.addr));
    proxy.arm(Fault::BlipAfter(whole / 2));
    let o = load(&d, &url, &["--server-block-rows", "1000"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{err}");
    assert!(err.contains("trying again"), "{err}");
    assert_eq!(table_counts(&ch, "blip"), store_counts(&d));
    assert_eq!(duplicates(&ch, "blip"), 0);
}

#[test]
fn an_unreachable_server_is_a_clear_error() {
    let d = store();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("http://127.0.0.1:{port}/");
    let err = load(&d, &url, &[]).output().failure();
    assert!(
        err.contains(&format!("ClickHouse at {url}")) && err.contains("network error"),
        "{err}"
    );
}

#[test]
fn a_table_of_another_shape_is_refused_before_any_row_is_sent() {
    let Some(ch) = Server::start() else { return };
    let d = store();
    let url = ch.database("shape", None);
    ch.query("CREATE TABLE shape.actors (node String, day Date, win UInt32) ENGINE = MergeTree PARTITION BY day ORDER BY node");
    let err = load(&d, &url, &[]).output().failure();
    assert!(
        err.contains("table actors has another shape") && err.contains("column win is UInt32"),
        "{err}"
    );
    for t in ["events", "windows", "load_attempts", "actors"] {
        assert_eq!(ch.count("shape", t), 0, "{t}");
    }
}

#[test]
fn every_node_of_a_multi_node_store_loads_and_node_picks_one() {
    let Some(ch) = Server::start() else { return };
    let d = Dir::new();
    d.two_node_store("20000");
    let events: u64 = window_leaves(&d.join("s/nodes/synth-1"))
        .iter()
        .map(|(r, _)| r.event_count)
        .sum();

    let url = ch.database("one", None);
    let err = load(&d, &url, &["--node", "elsewhere"]).output().failure();
    assert!(err.contains("no node \"elsewhere\""), "{err}");
    load(&d, &url, &["--node", "synth-1"]).output().success();
    assert_eq!(
        ch.query("SELECT DISTINCT node, count() FROM one.events GROUP BY node"),
        format!("synth-1\t{events}\n")
    );

    let url = ch.database("all", None);
    let out = load(&d, &url, &[]).output().success();
    assert!(
        out.contains("node synth-0:") && out.contains("node synth-1:"),
        "{out}"
    );
    assert_eq!(ch.count("all", "events"), 20000);
}

#[test]
fn print_ddl_shows_what_the_server_gets_and_creates_nothing() {
    let Some(ch) = Server::start() else { return };
    let d = store();
    let url = ch.database("ddl", None);
    let ddl = load(&d, &url, &["--print-ddl", "--keep", "30d"])
        .output()
        .success();
    assert_eq!(
        ddl.matches("CREATE TABLE IF NOT EXISTS").count(),
        9,
        "{ddl}"
    );
    assert!(
        !ddl.contains("LowCardinality") && !ddl.contains("CODEC") && !ddl.contains("TTL"),
        "18.16 gets the legacy DDL: {ddl}"
    );
    assert_eq!(ch.query("EXISTS TABLE ddl.events").trim(), "0");
}

#[test]
fn a_user_and_password_are_sent_and_the_password_is_never_shown() {
    let Some(ch) = Server::start() else { return };
    let d = store();
    ch.database("auth", None);
    let url = format!("http://loader:wrong@{}/?database=auth", ch.http);
    let err = load(&d, &url, &[]).output().failure();
    assert!(
        err.contains("loader:***@") && !err.contains("wrong"),
        "{err}"
    );
    assert!(
        err.contains("password is incorrect") || err.contains("Wrong password"),
        "{err}"
    );
    // The password from the environment, the user from the URL.
    let url = format!("http://loader@{}/?database=auth", ch.http);
    load(&d, &url, &[])
        .env("CLICKHOUSE_PASSWORD", "s3cret")
        .output()
        .success();
    assert_eq!(ch.count("auth", "windows"), 60);
}

#[test]
fn a_second_loader_of_the_same_store_is_refused() {
    let d = store();
    let lock = ritma_sinks::store::StoreLock::acquire_load(&d.join("s"), &d.join("locks")).unwrap();
    let Some(ch) = Server::start() else { return };
    let url = ch.database("locked", None);
    let err = load(&d, &url, &[]).output().failure();
    assert!(err.contains("loading into ClickHouse the store"), "{err}");
    assert_eq!(ch.query("EXISTS TABLE locked.windows").trim(), "0");
    drop(lock);
}

#[test]
fn the_current_engine_gets_the_modern_tables_and_loads_exactly() {
    // ClickHouse 26.9 (chdb-core) behind tests/clickhouse/chdb_http.py: a real engine, an
    // emulated HTTP transport.
    let Some(engine) = Engine::start() else {
        return;
    };
    let d = store();
    let url = engine.database("modern");
    // The synthetic store is dated 2026-11-01: a TTL shorter than its age would drop its rows.
    let out = load(&d, &url, &["--keep", "400d"]).output().success();
    assert!(out.contains("60 window(s) loaded"), "{out}");
    let want = store_counts(&d);
    for (table, n) in &want {
        assert_eq!(engine.count("modern", table), *n, "{table}");
    }
    let out = load(&d, &url, &[]).output().success();
    assert!(out.contains("60 already loaded"), "{out}");
    assert_eq!(engine.count("modern", "events"), want["events"]);

    // LowCardinality, codecs, the TTL of --keep and the time ALIAS, as schema.sql says.
    let ddl = engine.query("SHOW CREATE TABLE modern.events");
    for part in [
        "`node` LowCardinality(String)",
        "CODEC(DoubleDelta, ZSTD(3))",
        "`flags` Array(LowCardinality(String)) CODEC(ZSTD(3))",
        "TTL day + toIntervalDay(400)",
        "`time` DateTime64(9, \\'UTC\\') ALIAS fromUnixTimestamp64Nano(time_ns)",
    ] {
        assert!(ddl.contains(part), "{part} not in {ddl}");
    }
    let first =
        engine.query("SELECT toString(time), time_ns FROM modern.events ORDER BY seq LIMIT 1");
    let (time, ns) = first.trim().split_once('\t').unwrap();
    let ns: i64 = ns.parse().unwrap();
    assert_eq!(
        time,
        format!("2026-11-01 00:00:00.{:09}", ns % 1_000_000_000),
        "{first}"
    );
}

/// `ritma query` of the store and `ritma query --clickhouse` of the tables, for every question
/// the shipped queries answer: the same rows, in the same order.
fn same_answers(d: &Dir, url: &str) {
    let run = |args: &[&str], ch: bool| -> std::process::Output {
        let mut all = vec!["query"];
        if ch {
            all.extend(["--clickhouse", url]);
        } else {
            all.push("s");
        }
        all.extend_from_slice(args);
        d.ritma(&all).output().unwrap()
    };
    let x: Value = serde_json::from_str(
        String::from_utf8_lossy(&run(&["actors", "--exe", ".x", "--json"], false).stdout)
            .lines()
            .next()
            .expect("the dropped binary ran"),
    )
    .unwrap();
    let (actor, parent) = (x["actor"].as_str().unwrap(), x["parent"].as_str().unwrap());
    let questions: Vec<Vec<&str>> = vec![
        vec!["actors"],
        vec!["actors", "--exe", ".x"],
        vec!["actors", "--exe", "/tmp/.x"],
        vec!["actors", "--pid", "1"],
        vec!["actors", "--comm", "cron"],
        vec![
            "actors",
            "--from",
            "2026-11-01T00:00:50Z",
            "--to",
            "2026-11-01T00:00:51.5Z",
        ],
        vec!["events", actor],
        vec!["tree", actor],
        vec!["tree", parent],
        vec!["path", "/tmp/.x"],
        vec!["path", "/tmp/.x", "--from", "2026-11-01T00:00:04.93Z"],
        vec!["flow", "203.0.113.9"],
        vec!["flow", "203.0.113.9:4444"],
        vec!["cones"],
        vec!["cones", "--cone", "exec_from_tmp"],
        vec!["actors", "--limit", "5"],
        vec!["loss"],
        vec!["cone-hours"],
        vec!["egress"],
        vec![
            "egress",
            "--from",
            "2026-11-01T00:00:04Z",
            "--to",
            "2026-11-01T00:00:05Z",
        ],
        vec!["new-binaries"],
        vec!["new-binaries", "--from", "2026-11-01T00:00:04Z"],
    ];
    for q in questions {
        for json in [true, false] {
            let mut args = q.clone();
            if json {
                args.push("--json");
            }
            let (store, tables) = (run(&args, false), run(&args, true));
            let text = |o: &std::process::Output| String::from_utf8_lossy(&o.stdout).into_owned();
            assert!(
                store.status.success() && !text(&store).is_empty(),
                "{q:?}: {}",
                String::from_utf8_lossy(&store.stderr)
            );
            assert!(
                tables.status.success(),
                "{q:?} --clickhouse: {}",
                String::from_utf8_lossy(&tables.stderr)
            );
            assert_eq!(text(&tables), text(&store), "{q:?} json={json}");
        }
    }
    let loss = String::from_utf8_lossy(&run(&["loss", "--json"], true).stdout).into_owned();
    assert!(loss.contains("\"reason\":\"trace_corrupt\""), "{loss}");
    // An actor in no window is the same error.
    let unknown = run(&["events", "00000000000000000000000000000001"], true);
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("is in no window of the range"));
    let taint = run(&["taint", actor], true);
    assert!(String::from_utf8_lossy(&taint.stderr).contains("answered from the store only"));
}

#[test]
fn the_shipped_queries_answer_as_ritma_query_does_on_the_legacy_server() {
    let Some(ch) = Server::start() else { return };
    let d = store_with_loss();
    let url = ch.database("asked", None);
    load(&d, &url, &[]).output().success();
    same_answers(&d, &url);
}

#[test]
fn the_shipped_queries_answer_as_ritma_query_does_on_the_current_engine() {
    let Some(engine) = Engine::start() else {
        return;
    };
    let d = store_with_loss();
    let url = engine.database("asked");
    load(&d, &url, &["--keep", "400d"]).output().success();
    same_answers(&d, &url);
}

#[test]
fn query_clickhouse_picks_the_node_as_a_store_query_does() {
    let Some(ch) = Server::start() else { return };
    let d = Dir::new();
    d.two_node_store("20000");
    let url = ch.database("two", None);
    load(&d, &url, &[]).output().success();
    let err = d
        .ritma(&["query", "--clickhouse", &url, "cones"])
        .output()
        .failure();
    assert!(
        err.contains("several nodes (synth-0, synth-1)") && err.contains("--node"),
        "{err}"
    );
    for node in ["synth-0", "synth-1"] {
        let store = d
            .ritma(&["query", "s", "--node", node, "actors", "--json"])
            .output()
            .success();
        let tables = d
            .ritma(&[
                "query",
                "--clickhouse",
                &url,
                "--node",
                node,
                "actors",
                "--json",
            ])
            .output()
            .success();
        assert!(!store.is_empty());
        assert_eq!(tables, store, "{node}");
    }
}

/// Runs `script` with the engine's python (chdb, pyarrow, duckdb) in `d`; returns its stdout.
fn python(engine_python: &std::path::Path, d: &Dir, script: &str) -> String {
    let o = std::process::Command::new(engine_python)
        .arg("-c")
        .arg(script)
        .current_dir(d.path())
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "python failed: {}\n{script}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// The ClickHouse 26.9 engine's TabSeparated answer to `sql`, `{cwd}` being `d`'s path.
fn chdb_query(engine_python: &std::path::Path, d: &Dir, sql: &str) -> String {
    let script = format!(
        "import chdb, os\nprint(chdb.query({:?}.replace('{{cwd}}', os.getcwd()), 'TabSeparated'))\n",
        sql
    );
    python(engine_python, d, &script)
}

#[test]
fn a_parquet_export_reads_back_exactly_in_pyarrow_duckdb_and_clickhouse() {
    let Some(py) = clickhouse_server::engine_python() else {
        return;
    };
    let d = store_with_loss();
    let out = d
        .ritma(&["export", "s", "--format", "parquet", "--out", "pq"])
        .output()
        .success();
    assert!(out.contains("events"), "{out}");
    let want = store_counts(&d);

    // pyarrow: every table's rows, the partitions, the types, zstd everywhere.
    let report = python(
        &py,
        &d,
        r#"
import json, glob, pyarrow.dataset as ds, pyarrow.parquet as pq
out = {}
for t in ["events", "actors", "edges", "cone_matches", "health", "loss", "windows", "hours"]:
    files = glob.glob(f"pq/{t}/node=*/day=*/part-0.parquet")
    if not files:
        out[t] = 0
        continue
    out[t] = ds.dataset(f"pq/{t}", format="parquet", partitioning="hive").count_rows()
    for f in files:
        meta = pq.ParquetFile(f).metadata
        for g in range(meta.num_row_groups):
            for c in range(meta.num_columns):
                assert meta.row_group(g).column(c).compression == "ZSTD", (f, c)
ev = ds.dataset("pq/events", format="parquet", partitioning="hive").to_table()
out["types"] = {f.name: str(f.type) for f in ev.schema}
out["nodes"] = sorted(set(ev.column("node").to_pylist()))
out["days"] = sorted(set(str(x) for x in ev.column("day").to_pylist()))
seqs = ev.column("seq").to_pylist()
out["seq"] = [len(set(seqs)), min(seqs), max(seqs)]
print(json.dumps(out))
"#,
    );
    let r: Value = serde_json::from_str(report.trim()).unwrap();
    for (table, n) in &want {
        assert_eq!(r[table], *n, "{table}: {report}");
    }
    assert_eq!(r["seq"][0], want["events"]);
    assert_eq!(r["nodes"], serde_json::json!(["synth-0"]));
    assert_eq!(r["days"], serde_json::json!(["2026-11-01"]));
    assert_eq!(r["types"]["time_ns"], "timestamp[ns, tz=UTC]");
    assert_eq!(r["types"]["actor"], "fixed_size_binary[16]");
    assert_eq!(r["types"]["flags"], "list<item: string>");

    // duckdb: the same events as `ritma query` shows them.
    let duck = python(
        &py,
        &d,
        r#"
import duckdb
rows = duckdb.sql("""SELECT seq, event, comm, object, array_to_string(flags, ','), lower(hex(actor))
    FROM read_parquet('pq/events/**/*.parquet', hive_partitioning=true)
    WHERE object = '/tmp/.x' ORDER BY seq""").fetchall()
for r in rows:
    print("\t".join(str(x) for x in r))
"#,
    );
    let queried = queried_path_rows(&d, &["seq", "event", "comm", "object", "flags", "actor"]);
    assert_eq!(duck.lines().collect::<Vec<_>>(), queried);

    // The ClickHouse engine reads the files directly.
    let chdb = chdb_query(
        &py,
        &d,
        "SELECT count(), uniqExact(seq) FROM file('{cwd}/pq/events/*/*/*.parquet', Parquet)",
    );
    assert_eq!(
        chdb.trim(),
        format!("{}\t{}", want["events"], want["events"])
    );

    // Exported again: the same bytes, nothing added.
    let first = util::tree(&d.join("pq"));
    d.ritma(&["export", "s", "--format", "parquet", "--out", "pq"])
        .output()
        .success();
    assert_eq!(util::tree(&d.join("pq")), first);
    let err = d
        .ritma(&["export", "s", "--format", "parquet", "--out", "s/pq"])
        .output()
        .failure();
    assert!(err.contains("inside the store"), "{err}");
}

#[test]
fn keep_drops_the_days_past_retention_on_a_server_without_ttl() {
    let Some(ch) = Server::start() else { return };
    let d = store();
    let url = ch.database("kept", None);
    // The synthetic store is dated 2026-11-01: within 400 days of the test's today, not 1 day.
    let out = load(&d, &url, &["--keep", "400d"]).output().success();
    assert!(!out.contains("dropped"), "{out}");
    assert_eq!(table_counts(&ch, "kept"), store_counts(&d));
    let out = load(&d, &url, &["--keep", "1d"]).output().success();
    assert!(out.contains("dropped"), "{out}");
    for t in ["events", "actors", "edges", "cone_matches", "windows"] {
        assert_eq!(ch.count("kept", t), 0, "{t}");
    }
}

#[test]
fn an_ocsf_export_is_security_lake_parquet_holding_every_event_as_ritma_ocsf_writes_it() {
    let Some(py) = clickhouse_server::engine_python() else {
        return;
    };
    let d = store_with_loss();
    let export = |out: &str| {
        d.ritma(&[
            "export",
            "s",
            "--format",
            "parquet",
            "--ocsf",
            "--region",
            "eu-west-1",
            "--account-id",
            "123456789012",
            "--out",
            out,
        ])
        .output()
        .success()
    };
    let said = export("oc");
    assert!(said.contains("ritma-process-activity"), "{said}");

    // The events as ritma-ocsf writes them for a SIEM, by metadata.uid.
    let mut want: BTreeMap<String, Value> = BTreeMap::new();
    for (record, leaves) in window_leaves(&d.join("s")) {
        for line in ritma_ocsf::window_event_lines(&record, &leaves).unwrap() {
            let v: Value = serde_json::from_str(&line).unwrap();
            let uid = v["metadata"]["uid"].as_str().unwrap().to_owned();
            assert!(want.insert(uid, v).is_none());
        }
    }
    let store_events = store_counts(&d)["events"];
    let findings = want.values().filter(|v| v["class_uid"] == 2004).count() as u64;
    assert!(findings > 0);
    assert_eq!(want.len() as u64, store_events + findings);

    // pyarrow: Security Lake's layout and file rules, and every row as JSON.
    let report = python(
        &py,
        &d,
        r#"
import json, glob, pyarrow.parquet as pq
def plain(x, path=""):
    if isinstance(x, dict):
        return {k: plain(v, f"{path}.{k}" if path else k) for k, v in x.items() if v is not None}
    if path == "unmapped.ritma.bindings":
        return {k: v for k, v in x}
    if path.endswith("evidences"):
        return [dict(plain(e, path + "[]"), **({"data": json.loads(e["data"])} if e.get("data") else {})) for e in x]
    if isinstance(x, list):
        return [plain(v, path + "[]") for v in x]
    return x
files = sorted(glob.glob("oc/*/region=eu-west-1/accountId=123456789012/eventDay=*/synth-0.parquet"))
assert files and files == sorted(glob.glob("oc/**/*.parquet", recursive=True)), files
assert not glob.glob("oc/**/*.tmp", recursive=True)
report = {"files": {}, "rows": []}
for f in files:
    pf = pq.ParquetFile(f)
    meta = pf.metadata
    t = pf.read()
    times = t.column("time").to_pylist()
    groups = [meta.row_group(g) for g in range(meta.num_row_groups)]
    report["files"][f] = {
        "classes": sorted(set(t.column("class_uid").to_pylist())),
        "rows": t.num_rows,
        "sorted": times == sorted(times),
        "sorting": [str(c) for c in groups[0].sorting_columns],
        "zstd": all(g.column(c).compression == "ZSTD" for g in groups for c in range(g.num_columns)),
        "largest_group": max(sum(g.column(c).total_compressed_size for c in range(g.num_columns)) for g in groups),
        "day": f.split("eventDay=")[1][:8],
        "days": sorted(set(__import__("time").strftime("%Y%m%d", __import__("time").gmtime(x // 1000)) for x in times)),
    }
    report["rows"] += [plain(r) for r in t.to_pylist()]
print(json.dumps(report))
"#,
    );
    let r: Value = serde_json::from_str(report.trim()).unwrap();
    let sources = [
        ("ritma-file-activity", 1001),
        ("ritma-process-activity", 1007),
        ("ritma-detection-finding", 2004),
        ("ritma-network-activity", 4001),
    ];
    let files = r["files"].as_object().unwrap();
    assert_eq!(files.len(), sources.len(), "{files:#?}");
    for (path, f) in files {
        let (_, class) = sources
            .iter()
            .find(|(s, _)| path.starts_with(&format!("oc/{s}/")))
            .unwrap_or_else(|| panic!("{path}: not a class's source directory"));
        assert_eq!(
            f["classes"],
            serde_json::json!([class]),
            "{path}: one class per file"
        );
        assert_eq!(f["sorted"], true, "{path}: rows in time order");
        assert_eq!(f["zstd"], true, "{path}");
        assert!(
            f["sorting"][0].as_str().unwrap().contains("column_index=0"),
            "{path}"
        );
        assert!(f["largest_group"].as_u64().unwrap() <= 256 << 20, "{path}");
        assert_eq!(
            f["days"],
            serde_json::json!([f["day"]]),
            "{path}: eventDay is the events' day"
        );
    }
    let rows = r["rows"].as_array().unwrap();
    assert_eq!(rows.len(), want.len());
    for row in rows {
        let uid = row["metadata"]["uid"].as_str().unwrap();
        assert_eq!(row, &want[uid], "{uid}");
    }

    // The ClickHouse engine reads them too, by class.
    let chdb = chdb_query(
        &py,
        &d,
        "SELECT class_uid, count(), uniqExact(metadata.uid) FROM file('{cwd}/oc/*/*/*/*/*.parquet', Parquet) GROUP BY class_uid ORDER BY class_uid",
    );
    let mut by_class: BTreeMap<u64, u64> = BTreeMap::new();
    for v in want.values() {
        *by_class
            .entry(v["class_uid"].as_u64().unwrap())
            .or_default() += 1;
    }
    let expected: Vec<String> = by_class
        .iter()
        .map(|(c, n)| format!("{c}\t{n}\t{n}"))
        .collect();
    assert_eq!(chdb.trim().lines().collect::<Vec<_>>(), expected);

    // Exported again: the same bytes; without --region/--account-id, no such levels.
    let first = util::tree(&d.join("oc"));
    export("oc");
    assert_eq!(util::tree(&d.join("oc")), first);
    d.ritma(&[
        "export", "s", "--format", "parquet", "--ocsf", "--out", "plain",
    ])
    .output()
    .success();
    assert!(d
        .join("plain/ritma-network-activity/eventDay=20261101/synth-0.parquet")
        .exists());
    let err = d
        .ritma(&[
            "export",
            "s",
            "--format",
            "parquet",
            "--ocsf",
            "--region",
            "eu/west",
            "--account-id",
            "1",
            "--out",
            "x",
        ])
        .output()
        .failure();
    assert!(err.contains("--region"), "{err}");

    // A corrupt window stops the export with the file named, and leaves no file behind, whole
    // or temporary.
    let block = util::tree(&d.join("s/windows"))
        .into_keys()
        .find(|p| p.to_string_lossy().contains("/blocks/"))
        .unwrap();
    let path = d.join("s/windows").join(&block);
    let mut bytes = std::fs::read(&path).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x55;
    std::fs::write(&path, bytes).unwrap();
    let err = d
        .ritma(&[
            "export", "s", "--format", "parquet", "--ocsf", "--out", "bad",
        ])
        .output()
        .failure();
    let name = block.file_name().unwrap().to_string_lossy().into_owned();
    assert!(err.contains(&name), "{err}");
    let bad = d.join("bad");
    let written: Vec<_> = match bad.exists() {
        true => util::tree(&bad).into_keys().collect(),
        false => Vec::new(),
    };
    assert!(written.is_empty(), "{written:?}");
}
