//! `ritma query`: the answers are checked against the sealed blocks read independently,
//! and against the attack the synthetic trace labels.

use crate::util::{window_leaves, Dir, OutputExt};
use ritma_schemas::records::{AnyRecord, ConeInstance, Edge, EventAtom};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};

/// A store of 60 one-second windows holding a labelled download-and-exec.
fn store() -> (Dir, (u64, u64)) {
    let d = Dir::new();
    d.sealed_store(&["--events", "30000", "--seed", "3", "--rate", "500"]);
    let labels = std::fs::read_to_string(d.join("t.rtrace.labels.jsonl")).unwrap();
    let label = labels
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .find(|v| v["attack"] == "download_exec")
        .expect("the trace labels a download_exec");
    let range = (
        label["first_seq"].as_u64().unwrap(),
        label["last_seq"].as_u64().unwrap(),
    );
    (d, range)
}

fn query(d: &Dir, args: &[&str]) -> Vec<Value> {
    let mut all = vec!["query", "s"];
    all.extend_from_slice(args);
    all.push("--json");
    d.ritma(&all)
        .output()
        .success()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn s(v: &Value) -> &str {
    v.as_str().unwrap_or_else(|| panic!("not a string: {v}"))
}

/// Every record of the store, decoded, with its window.
fn records(d: &Dir) -> Vec<(u64, AnyRecord)> {
    window_leaves(&d.join("s"))
        .into_iter()
        .flat_map(|(r, leaves)| {
            leaves
                .into_iter()
                .map(move |l| (r.window, AnyRecord::decode(&l).unwrap()))
        })
        .collect()
}

fn hex(id: &[u8]) -> String {
    id.iter().map(|b| format!("{b:02x}")).collect()
}

#[test]
fn query_follows_a_download_and_exec_from_the_file_to_its_processes() {
    let (d, (first, last)) = store();
    let in_label = |row: &Value| (first..=last).contains(&row["seq"].as_u64().unwrap());

    // Who touched the dropped file: curl wrote it, then it was executed.
    let touched = query(&d, &["path", "/tmp/.x"]);
    let write = touched
        .iter()
        .find(|r| r["event"] == "open" && in_label(r))
        .unwrap_or_else(|| panic!("no labelled open of /tmp/.x in {touched:?}"));
    assert_eq!(write["comm"], "curl");
    assert_eq!(
        write["flags"],
        serde_json::json!(["write", "create", "truncate"])
    );
    let exec = touched
        .iter()
        .find(|r| r["event"] == "exec" && in_label(r))
        .unwrap_or_else(|| panic!("no labelled exec of /tmp/.x in {touched:?}"));
    assert!(
        touched.iter().all(|r| r["object"] == "/tmp/.x"),
        "{touched:?}"
    );
    let (curl, dropped) = (s(&write["actor"]).to_owned(), s(&exec["actor"]).to_owned());

    // The same answer from the blocks: every atom naming the path, by seq.
    let path_id = ritma_schemas::records::DictEntry::id_of(
        ritma_schemas::records::DictKind::Path,
        b"/tmp/.x",
    );
    let all = records(&d);
    let atoms: Vec<&EventAtom> = all
        .iter()
        .filter_map(|(_, r)| match r {
            AnyRecord::Event(a) => Some(a),
            _ => None,
        })
        .collect();
    let seqs =
        |rows: &[Value]| -> Vec<u64> { rows.iter().map(|r| r["seq"].as_u64().unwrap()).collect() };
    let want: Vec<u64> = atoms
        .iter()
        .filter(|a| a.object == path_id)
        .map(|a| a.seq)
        .collect();
    assert_eq!(seqs(&touched), want);

    // The writer's events: exactly its atoms in the blocks, the labelled ones in order.
    let events = query(&d, &["events", &curl]);
    let want: Vec<u64> = atoms
        .iter()
        .filter(|a| hex(&a.actor) == curl)
        .map(|a| a.seq)
        .collect();
    assert_eq!(seqs(&events), want);
    let kinds: Vec<&str> = events.iter().map(|r| s(&r["event"])).collect();
    assert_eq!(kinds, ["exec", "connect", "open", "exit"], "{events:?}");
    assert_eq!(events[1]["object"], "198.51.100.7:80");
    assert!(events.iter().all(in_label), "{events:?}");

    // Actors by executable find the dropped binary's process.
    let actors = query(&d, &["actors", "--exe", "/tmp/.x"]);
    assert_eq!(actors.len(), 1, "{actors:?}");
    assert_eq!(actors[0]["actor"], dropped.as_str());
    assert_eq!(query(&d, &["actors", "--exe", ".x"]), actors);
    let shell = s(&actors[0]["parent"]).to_owned();

    // Its tree: ancestors up to the root, oldest first, then itself.
    let tree = query(&d, &["tree", &dropped]);
    let me = tree.last().unwrap();
    assert_eq!(
        (s(&me["relation"]), s(&me["actor"])),
        ("self", dropped.as_str())
    );
    assert_eq!(tree[0]["parent"], Value::Null, "{tree:?}");
    for (depth, pair) in tree.windows(2).enumerate() {
        assert_eq!(pair[0]["relation"], "ancestor");
        assert_eq!(pair[0]["depth"], depth);
        assert_eq!(pair[1]["parent"], pair[0]["actor"]);
    }
    assert_eq!(tree[tree.len() - 2]["actor"], shell.as_str());
    // The shell's tree holds both processes among its descendants.
    let shell_tree = query(&d, &["tree", &shell]);
    let below: BTreeSet<&str> = shell_tree
        .iter()
        .filter(|r| r["relation"] == "descendant")
        .map(|r| s(&r["actor"]))
        .collect();
    assert!(below.contains(curl.as_str()) && below.contains(dropped.as_str()));

    // Taint from the writer reaches the file it wrote and the process that executed it,
    // not the shell that started it.
    let taint = query(&d, &["taint", &curl]);
    let reached: BTreeMap<&str, &str> = taint
        .iter()
        .map(|r| (s(&r["entity"]), s(&r["kind"])))
        .collect();
    assert_eq!(reached.get("/tmp/.x"), Some(&"path"), "{taint:?}");
    assert!(
        taint.iter().any(|r| r["id"] == dropped.as_str()),
        "{taint:?}"
    );
    assert!(
        !taint.iter().any(|r| r["id"] == shell.as_str()),
        "{taint:?}"
    );

    // Who talked to the C2 address: the dropped binary, on any port or the one it used.
    let c2 = query(&d, &["flow", "203.0.113.9"]);
    assert!(
        c2.iter()
            .any(|r| r["actor"] == dropped.as_str() && in_label(r)),
        "{c2:?}"
    );
    assert!(
        c2.iter()
            .all(|r| s(&r["object"]).starts_with("203.0.113.9:")),
        "{c2:?}"
    );
    assert_eq!(query(&d, &["flow", "203.0.113.9:4444"]), c2);
    assert!(query(&d, &["flow", "203.0.113.9:1"]).is_empty());

    // Any row is provable: the write's seq makes a proof of that very event.
    let seq = write["seq"].to_string();
    d.ritma(&["prove", "s", "--seq", &seq, "--out", "w.proof"])
        .output()
        .success();
    let proven: Value = serde_json::from_str(
        &d.ritma(&["verify-proof", "--trust-embedded-key", "w.proof", "--json"])
            .output()
            .success(),
    )
    .unwrap();
    assert_eq!(proven["seq"], write["seq"]);
}

#[test]
fn taint_from_a_shell_is_everything_its_flows_reach() {
    let (d, _) = store();
    let all = records(&d);
    let actors = query(&d, &["actors", "--exe", "/tmp/.x"]);
    let shell = s(&actors[0]["parent"]).to_owned();
    // The trace spans 60 s, inside the 300 s taint lifetime: every flow stays live to the
    // end, so the final slice is plain reachability over all flows.
    let mut next: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (_, r) in &all {
        if let AnyRecord::Edge(e) = r {
            let e: &Edge = e;
            for (from, to) in ritma_operators::taint::taint_flows(e) {
                next.entry(hex(&from)).or_default().push(hex(&to));
            }
        }
    }
    let mut reached = BTreeSet::new();
    let mut stack = vec![shell.clone()];
    while let Some(x) = stack.pop() {
        for y in next.get(&x).into_iter().flatten() {
            if *y != shell && reached.insert(y.clone()) {
                stack.push(y.clone());
            }
        }
    }
    let taint = query(&d, &["taint", &shell]);
    let got: BTreeSet<String> = taint.iter().map(|r| s(&r["id"]).to_owned()).collect();
    assert!(
        reached.len() > 100,
        "a shell reaches much: {}",
        reached.len()
    );
    assert_eq!(got, reached);
    assert!(
        taint.iter().all(|r| r["until"].is_null()),
        "nothing aged out"
    );

    // With a one-second lifetime, early flows age out before the range ends.
    let short = query(&d, &["taint", &shell, "--ttl", "1"]);
    assert!(short.iter().any(|r| !r["until"].is_null()), "{short:?}");
}

#[test]
fn query_cones_lists_every_instance_and_filters_by_cone_and_time() {
    let (d, _) = store();
    let key = |c: &ConeInstance| (c.cone_id.clone(), c.first_seq, c.last_seq, c.count);
    let mut want: Vec<_> = records(&d)
        .iter()
        .filter_map(|(_, r)| match r {
            AnyRecord::Cone(c) => Some(key(c)),
            _ => None,
        })
        .collect();
    want.sort();
    assert!(!want.is_empty());
    let row_key = |r: &Value| {
        (
            s(&r["cone"]).to_owned(),
            r["first_seq"].as_u64().unwrap(),
            r["last_seq"].as_u64().unwrap(),
            r["count"].as_u64().unwrap(),
        )
    };
    let rows = query(&d, &["cones"]);
    let mut got: Vec<_> = rows.iter().map(row_key).collect();
    got.sort();
    assert_eq!(got, want);

    let one = &want[0].0;
    let only = query(&d, &["cones", "--cone", one]);
    assert!(!only.is_empty() && only.iter().all(|r| r["cone"] == one.as_str()));

    // A range is cut by time: the match's own second, then the second after it.
    let t = s(&rows[0]["time"]);
    let second: u64 = time_s(t);
    let (from, to) = (second.to_string(), (second + 1).to_string());
    let inside = query(&d, &["cones", "--from", &from, "--to", &to]);
    assert!(inside.iter().any(|r| r == &rows[0]), "{inside:?}");
    let after = (second + 1).to_string();
    let later = query(&d, &["cones", "--from", &after, "--to", "4000000000"]);
    assert!(!later.iter().any(|r| r == &rows[0]), "{later:?}");
    // A table too, with a header row.
    let table = d.ritma(&["query", "s", "cones"]).output().success();
    assert!(table.starts_with("TIME "), "{table}");
    assert_eq!(table.lines().count(), rows.len() + 1, "{table}");
    let limited = query(&d, &["cones", "--limit", "1"]);
    assert_eq!(limited.len(), 1);
}

/// Unix seconds of `YYYY-MM-DDTHH:MM:SS.nnnnnnnnnZ`.
fn time_s(t: &str) -> u64 {
    let n = |r: std::ops::Range<usize>| t[r].parse::<i64>().unwrap();
    let days = ritma_sinks::store::days_from_civil(n(0..4), n(5..7) as u32, n(8..10) as u32);
    (days * 86_400 + n(11..13) * 3600 + n(14..16) * 60 + n(17..19)) as u64
}

#[test]
fn query_refuses_bad_input_with_clear_errors() {
    let (d, _) = store();
    let err = d
        .ritma(&["query", "s", "events", "00112233445566778899aabbccddeeff"])
        .output()
        .failure();
    assert!(err.contains("is in no window of the range"), "{err}");
    let err = d.ritma(&["query", "s", "tree", "xyz"]).output().failure();
    assert!(err.contains("not an actor id (32 hex digits)"), "{err}");
    let err = d
        .ritma(&[
            "query",
            "s",
            "cones",
            "--from",
            "2026-11-02T00:00:00Z",
            "--to",
            "2026-11-01T00:00:00Z",
        ])
        .output()
        .failure();
    assert!(err.contains("--from must be before --to"), "{err}");
    let err = d
        .ritma(&["query", "s", "cones", "--from", "yesterday"])
        .output()
        .failure();
    assert!(err.contains("--from \"yesterday\""), "{err}");
    let err = d.ritma(&["query", "nowhere", "cones"]).output().failure();
    assert!(err.contains("nowhere"), "{err}");
    // A damaged block is named, not skipped.
    let block = crate::util::tree(&d.join("s"))
        .into_keys()
        .find(|p| p.to_string_lossy().contains("/blocks/"))
        .unwrap();
    std::fs::write(d.join("s").join(&block), b"not zstd").unwrap();
    let err = d.ritma(&["query", "s", "actors"]).output().failure();
    assert!(
        err.contains(&block.file_name().unwrap().to_string_lossy().to_string()),
        "{err}"
    );
}
