//! `ritma query --clickhouse URL`: the questions of `ritma query`, answered from the analyst
//! tables with the shipped queries (deploy/clickhouse/queries/), in the same rows and order
//! as from the store (tests/clickhouse.rs compares the two).

use crate::case::parse_range;
use crate::query::{actor_arg, flow_arg, print_tree, time_value, QueryArgs, QueryWhat, Rows};
use crate::query::{ActorInfo, TreeNode};
use anyhow::{anyhow, bail, Result};
use ritma_schemas::display::hex;
use ritma_schemas::records::ActorRecord;
use ritma_schemas::Id128;
use ritma_warehouse::clickhouse::ClickHouse;
use ritma_warehouse::queries::Answer;
use serde_json::{json, Value};
use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

pub(crate) fn answer(url: &str, args: &QueryArgs, out: &mut Rows) -> Result<()> {
    let password = std::env::var("CLICKHOUSE_PASSWORD").ok();
    let ch = ClickHouse::connect(url, password.as_deref(), Duration::from_secs(300))?;
    let node = pick_node(&ch, args.node.as_deref())?;
    let len = ch
        .answer(
            "reading the window length",
            "SELECT any(window_len_ns) FROM windows WHERE node = ?",
            vec![json!(node)],
        )?
        .rows
        .first()
        .and_then(|r| r.first())
        .and_then(Value::as_u64)
        .filter(|&l| l > 0)
        .ok_or_else(|| anyhow!("node {node}: no window length in the windows table"))?;
    let (from, to) = parse_range(args.from.as_deref(), args.to.as_deref())?;
    let (from, to) = (from.unwrap_or(0), to.unwrap_or(u64::MAX));
    // The windows overlapping [from, to), as the store's query reads them.
    let (win_min, win_max) = (from / len, to.saturating_sub(1) / len);
    let mut params: BTreeMap<&str, Value> = BTreeMap::from([
        ("node", json!(node)),
        ("win_min", json!(win_min)),
        ("win_max", json!(win_max)),
        ("from_ns", json!(i64::try_from(from).unwrap_or(i64::MAX))),
        ("to_ns", json!(i64::try_from(to).unwrap_or(i64::MAX))),
    ]);
    // An unset text filter is '' (18.16 cannot compare a String with NULL).
    let opt = |v: Option<String>| Value::String(v.unwrap_or_default());
    match &args.what {
        QueryWhat::Actors { pid, comm, exe } => {
            params.insert("pid", pid.map_or(Value::Null, |p| json!(p)));
            params.insert("comm", opt(comm.clone()));
            params.insert("exe", opt(exe.clone()));
            rows(out, ch.shipped("actors", &params)?)
        }
        QueryWhat::Events { actor } => {
            let id = actor_arg(actor)?;
            params.insert("actor", json!(hex(&id)));
            let answer = ch.shipped("events", &params)?;
            if answer.rows.is_empty() {
                let seen = ch.answer(
                    "looking for the actor",
                    "SELECT count() FROM actors WHERE node = ? AND win >= ? AND win <= ? AND actor = unhex(?)",
                    vec![json!(node), json!(win_min), json!(win_max), json!(hex(&id))],
                )?;
                if seen
                    .rows
                    .first()
                    .and_then(|r| r.first())
                    .and_then(Value::as_u64)
                    == Some(0)
                {
                    bail!("actor {} is in no window of the range", hex(&id));
                }
            }
            rows(out, answer)
        }
        QueryWhat::Tree { actor } => {
            let id = actor_arg(actor)?;
            params.insert("pid", Value::Null);
            params.insert("comm", json!(""));
            params.insert("exe", json!(""));
            let answer = ch.shipped("actors", &params)?;
            print_tree(&tree_nodes(&answer)?, &id, out)
        }
        QueryWhat::Path { path } => {
            params.insert("path", json!(crate::query::canonical_arg(path)));
            rows(out, ch.shipped("path", &params)?)
        }
        QueryWhat::Flow { addr } => {
            let want = flow_arg(addr)?;
            params.insert("addr", json!(want.ip.to_string()));
            params.insert("port", want.port.map_or(Value::Null, |p| json!(p)));
            rows(out, ch.shipped("flow", &params)?)
        }
        QueryWhat::Cones { cone } => {
            params.insert("cone", opt(cone.clone()));
            rows(out, ch.shipped("cones", &params)?)
        }
        QueryWhat::Loss => rows(out, ch.shipped("loss", &params)?),
        QueryWhat::ConeHours => rows(out, ch.shipped("cone-hours", &params)?),
        QueryWhat::Egress => rows(out, ch.shipped("egress", &params)?),
        QueryWhat::NewBinaries => rows(out, ch.shipped("new-binaries", &params)?),
        QueryWhat::Taint { .. } | QueryWhat::Hours => bail!(
            "this question is answered from the store only (taint follows flows across windows \
             with differential dataflow; hours reads the store's catalog): give the store's \
             directory instead of --clickhouse"
        ),
    }
}

/// The node asked about: `--node`, or the tables' only node.
fn pick_node(ch: &ClickHouse, want: Option<&str>) -> Result<String> {
    let nodes: Vec<String> = ch
        .answer(
            "reading the nodes",
            "SELECT DISTINCT node FROM windows ORDER BY node",
            Vec::new(),
        )?
        .rows
        .iter()
        .filter_map(|r| r.first().and_then(Value::as_str).map(str::to_owned))
        .collect();
    match want {
        Some(n) if nodes.iter().any(|x| x == n) => Ok(n.to_owned()),
        Some(n) => bail!(
            "no node {n:?} in the tables (they hold {})",
            nodes.join(", ")
        ),
        None => match nodes.as_slice() {
            [one] => Ok(one.clone()),
            [] => bail!("the tables hold no window yet (run `ritma load`)"),
            many => bail!(
                "the tables hold several nodes ({}): choose one with --node",
                many.join(", ")
            ),
        },
    }
}

/// The row key `ritma query` uses for a column of a shipped query.
fn key(column: &str) -> Result<&'static str> {
    const SAME: [&str; 28] = [
        "node",
        "reason",
        "lost",
        "matches",
        "completions",
        "connects",
        "failed",
        "destinations",
        "execs",
        "seq",
        "event",
        "pid",
        "comm",
        "object_kind",
        "object",
        "flags",
        "renamed",
        "windows",
        "ppid",
        "uid",
        "euid",
        "exe",
        "cone",
        "version",
        "count",
        "first_seq",
        "last_seq",
        "process",
    ];
    Ok(match column {
        "time_ns" => "time",
        "hour_ns" => "hour",
        "first_ns" => "first_seen",
        "last_ns" => "last_seen",
        "actor_hex" => "actor",
        "parent_hex" => "parent",
        "bindings" => "bindings",
        other => SAME
            .iter()
            .find(|k| **k == other)
            .copied()
            .ok_or_else(|| anyhow!("a shipped query returned an unknown column {other:?}"))?,
    })
}

/// Prints an answer as `ritma query` prints the store's: times as RFC 3339, what the store
/// does not know (an empty name, no parent) as null, `renamed` only on renames.
fn rows(out: &mut Rows, answer: Answer) -> Result<()> {
    let keys = answer
        .columns
        .iter()
        .map(|c| key(c))
        .collect::<Result<Vec<_>>>()?;
    for r in answer.rows {
        let mut row = Vec::with_capacity(keys.len());
        for (k, v) in keys.iter().zip(r) {
            let v = match (*k, v) {
                ("time" | "first_seen" | "last_seen" | "hour", v) => {
                    time_value(v.as_i64().ok_or_else(|| anyhow!("{k}: not a time: {v}"))? as i128)
                }
                ("renamed", Value::String(s)) if s.is_empty() => continue,
                ("comm" | "exe" | "object" | "process" | "actor", Value::String(s))
                    if s.is_empty() =>
                {
                    Value::Null
                }
                ("parent", Value::String(s)) if s.bytes().all(|b| b == b'0') => Value::Null,
                (_, v) => v,
            };
            row.push((*k, v));
        }
        if !out.push(row) {
            break;
        }
    }
    Ok(())
}

/// The processes of an `actors` answer, for a tree.
fn tree_nodes(answer: &Answer) -> Result<HashMap<Id128, TreeNode>> {
    let col = |name: &str| {
        answer
            .columns
            .iter()
            .position(|c| c == name)
            .ok_or_else(|| anyhow!("the actors query returned no {name}"))
    };
    let [first, pid, ppid, uid, euid, comm, exe, actor, parent] = [
        "first_ns",
        "pid",
        "ppid",
        "uid",
        "euid",
        "comm",
        "exe",
        "actor_hex",
        "parent_hex",
    ]
    .map(col);
    let (first, pid, ppid, uid, euid, comm, exe, actor, parent) = (
        first?, pid?, ppid?, uid?, euid?, comm?, exe?, actor?, parent?,
    );
    let mut nodes = HashMap::new();
    for r in &answer.rows {
        // A short or odd row from the server reads as empty values, never out of bounds.
        let at = |i: usize| r.get(i).unwrap_or(&Value::Null);
        let n = |i: usize| at(i).as_u64().unwrap_or(0);
        let text = |i: usize| at(i).as_str().filter(|s| !s.is_empty()).map(str::to_owned);
        let id = actor_arg(at(actor).as_str().unwrap_or(""))?;
        let parent = actor_arg(at(parent).as_str().unwrap_or(""))?;
        let record = ActorRecord {
            actor: id,
            pid: n(pid) as u32,
            ppid: n(ppid) as u32,
            parent: (parent != [0; 16]).then_some(parent),
            start_ns: 0,
            uid: n(uid) as u32,
            gid: 0,
            euid: n(euid) as u32,
            exe: None,
            exe_hash: None,
            comm: [0; 16],
            cgroup_id: 0,
            mnt_ns: 0,
            pid_ns: 0,
            net_ns: 0,
            container: None,
            service: None,
        };
        let info = ActorInfo {
            record,
            comm: text(comm),
            exe: text(exe),
        };
        let first_ns = n(first) as u128;
        nodes.insert(id, TreeNode { first_ns, info });
    }
    Ok(nodes)
}
