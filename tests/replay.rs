//! `ritma synth` → `ritma replay` → `ritma verify`: determinism over workers and
//! trace batch sizes, and tamper detection over every file of the store.

use crate::util::{tree, window_leaves, Dir, OutputExt};
use std::path::{Path, PathBuf};

/// A key made once, outside the stores, so every replay signs with the same key.
fn key(d: &Dir, node: &str) -> String {
    d.ritma(&[
        "keys",
        "init",
        "--out",
        &format!("keys-{node}"),
        "--node",
        node,
    ])
    .output()
    .success();
    d.join(&format!("keys-{node}/_meta/keys/signing.key"))
        .display()
        .to_string()
}

#[test]
fn replay_is_byte_identical_for_any_worker_count_and_batch_size() {
    let d = Dir::new();
    d.ritma(&[
        "synth", "--events", "40000", "--seed", "3", "--out", "a.rtrace",
    ])
    .output()
    .success();
    d.ritma(&[
        "synth", "--events", "40000", "--seed", "3", "--batch", "977", "--out", "b.rtrace",
    ])
    .output()
    .success();
    assert_ne!(
        std::fs::read(d.join("a.rtrace")).unwrap(),
        std::fs::read(d.join("b.rtrace")).unwrap()
    );
    let k = key(&d, "synth-0");
    let mut stores = Vec::new();
    for (trace, workers) in [
        ("a.rtrace", "1"),
        ("a.rtrace", "2"),
        ("a.rtrace", "4"),
        ("b.rtrace", "2"),
    ] {
        let out = format!("out-{trace}-{workers}");
        d.ritma(&[
            "replay",
            trace,
            "--out",
            &out,
            "--workers",
            workers,
            "--key",
            &k,
        ])
        .output()
        .success();
        let verified = d
            .ritma(&[
                "verify",
                &out,
                "--key",
                &format!(
                    "{}",
                    d.join("keys-synth-0/_meta/keys/signing.vkey").display()
                ),
            ])
            .output()
            .success();
        assert!(
            verified.starts_with("OK synth-0: ") && verified.contains("40000 events, 0 lost"),
            "{verified}"
        );
        stores.push(tree(&d.join(&out)));
    }
    assert!(stores[0].len() > 10, "a store of {} files", stores[0].len());
    for s in &stores[1..] {
        assert_eq!(
            s.keys().collect::<Vec<_>>(),
            stores[0].keys().collect::<Vec<_>>()
        );
        assert!(s == &stores[0], "stores differ in content");
    }
}

#[test]
fn multi_node_traces_get_one_tree_per_node() {
    let d = Dir::new();
    d.ritma(&[
        "synth", "--events", "30000", "--hosts", "2", "--out", "m.rtrace",
    ])
    .output()
    .success();
    let err = d
        .ritma(&["replay", "m.rtrace", "--out", "s"])
        .output()
        .failure();
    assert!(
        err.contains("no signing key for node synth-0") && err.contains("ritma keys init"),
        "{err}"
    );
    d.node_keys("s", &["synth-0", "synth-1"]);
    d.ritma(&["replay", "m.rtrace", "--out", "s", "--workers", "2"])
        .output()
        .success();
    let v = d
        .ritma(&["verify", "--trust-embedded-key", "s"])
        .output()
        .success();
    assert!(
        v.contains("OK synth-0:") && v.contains("OK synth-1:"),
        "{v}"
    );
}

#[test]
fn flipping_any_byte_of_any_file_fails_verification_naming_the_file() {
    let d = Dir::new();
    d.sealed_store(&["--events", "3000", "--seed", "11"]);
    d.ritma(&["verify", "--trust-embedded-key", "s"])
        .output()
        .success();
    let files = tree(&d.join("s"));
    assert_eq!(
        files[Path::new(&format!(
            "_meta/schema/FORMAT-v{}.md",
            ritma_sinks::store::FORMAT_VERSION
        ))],
        ritma_schemas::FORMAT_SPEC.as_bytes()
    );
    let mut checked = 0;
    for (rel, bytes) in &files {
        // The private key and the spec's informative copy are not evidence:
        // verification reads neither.
        if rel.ends_with("signing.key") || rel.starts_with("_meta/schema") {
            continue;
        }
        let path = d.join("s").join(rel);
        for at in [0, bytes.len() / 2, bytes.len() - 1] {
            let mut b = bytes.clone();
            b[at] ^= 0x01;
            std::fs::write(&path, &b).unwrap();
            let err = d
                .ritma(&["verify", "--trust-embedded-key", "s"])
                .output()
                .failure();
            let name = rel.file_name().unwrap().to_string_lossy().into_owned();
            let names_it = err.contains(&name)
                || (rel.starts_with("_meta/keys") && err.contains("_meta/keys"));
            assert!(
                names_it && err.contains(" E_"),
                "flip at {at} of {}: {err}",
                rel.display()
            );
            checked += 1;
        }
        std::fs::write(&path, bytes).unwrap();
    }
    assert!(checked > 20, "only {checked} flips");
    d.ritma(&["verify", "--trust-embedded-key", "s"])
        .output()
        .success();
}

#[test]
fn a_store_is_continued_only_with_the_taint_lifetime_it_was_sealed_with() {
    let d = Dir::new();
    d.sealed_store(&["--events", "3000"]);
    let before = tree(&d.join("s"));
    let err = d
        .ritma(&["replay", "t.rtrace", "--out", "s", "--taint-ttl", "60"])
        .output()
        .failure();
    assert!(
        err.contains("taint lifetime of 300 windows") && err.contains("--taint-ttl 300"),
        "{err}"
    );
    assert!(
        tree(&d.join("s")) == before,
        "a refused replay changed the store"
    );
    d.ritma(&["replay", "t.rtrace", "--out", "s", "--taint-ttl", "300"])
        .output()
        .success();
}

#[test]
fn verify_refuses_a_store_of_another_format_version() {
    use ritma_schemas::records::{Record, StoreMeta};
    let d = Dir::new();
    d.sealed_store(&["--events", "3000"]);
    let path = d.join("s/_meta/store.cbor");
    let meta = StoreMeta::decode(&std::fs::read(&path).unwrap()).unwrap();
    assert_eq!(meta.format_version, 7);
    // Version 2 blocks were lists of leaves, not packed: refused, not misread.
    let old = StoreMeta {
        format_version: 2,
        ..meta
    };
    std::fs::write(&path, old.encode()).unwrap();
    let err = d
        .ritma(&["verify", "--trust-embedded-key", "s"])
        .output()
        .failure();
    assert!(
        err.contains("E_LAYOUT") && err.contains("store.cbor") && err.contains("format version 2"),
        "{err}"
    );
    // A format 3 StoreMeta (version 1, without the taint lifetime) is named as such, by
    // verify and by a replay asked to continue the store.
    let mut e = ritma_schemas::cbor::Encoder::new();
    e.array(6)
        .uint(13)
        .uint(1)
        .uint(3)
        .text("synth-0")
        .uint(1_000_000_000)
        .uint(3);
    std::fs::write(&path, e.into_bytes()).unwrap();
    let err = d
        .ritma(&["verify", "--trust-embedded-key", "s"])
        .output()
        .failure();
    assert!(
        err.contains("E_LAYOUT")
            && err.contains(&format!(
                "format version 3, this verifier reads version {}",
                ritma_sinks::store::FORMAT_VERSION
            )),
        "{err}"
    );
    let err = d
        .ritma(&["replay", "t.rtrace", "--out", "s"])
        .output()
        .failure();
    assert!(err.contains("a store of format version 3"), "{err}");
}

#[test]
fn verify_json_reports_the_store_and_names_a_failure() {
    let d = Dir::new();
    d.sealed_store(&["--events", "30000"]);
    let text = d
        .ritma(&["verify", "--trust-embedded-key", "s"])
        .output()
        .success();
    let out = d
        .ritma(&["verify", "--trust-embedded-key", "s", "--json"])
        .output()
        .success();
    let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(v["ok"], true);
    assert_eq!(v["key_pinned"], false);
    let node = &v["nodes"][0];
    assert_eq!(node["node"], "synth-0");
    // The same figures as the text report.
    for field in ["windows", "events", "lost"] {
        let n = node[field].as_u64().unwrap();
        assert!(
            text.contains(&format!("{n} {field}")),
            "{field} {n}: {text}"
        );
    }
    assert!(text.contains(node["log_root"].as_str().unwrap()), "{text}");
    assert_eq!(
        node["last_window"].as_u64().unwrap() - node["first_window"].as_u64().unwrap() + 1,
        node["windows"].as_u64().unwrap()
    );
    // A flipped window root: the failure as JSON on stdout, and a non-zero exit.
    let record = tree(&d.join("s"))
        .into_keys()
        .find(|p| {
            p.extension().is_some_and(|e| e == "cbor") && p.to_string_lossy().contains("/micro/")
        })
        .unwrap();
    let path = d.join("s").join(&record);
    let mut bytes = std::fs::read(&path).unwrap();
    // The root's last byte: the record ends with it and `state` (null).
    let last = bytes.len() - 2;
    bytes[last] ^= 1;
    std::fs::write(&path, &bytes).unwrap();
    let o = d
        .ritma(&["verify", "--trust-embedded-key", "s", "--json"])
        .output()
        .unwrap();
    assert!(!o.status.success());
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["ok"], false);
    assert_eq!(v["code"], "E_CHECKPOINT", "{v}");
    assert!(
        v["path"]
            .as_str()
            .unwrap()
            .ends_with(&*record.to_string_lossy()),
        "{v}"
    );
    assert!(v["window"].as_u64().is_some(), "{v}");
    assert!(!v["detail"].as_str().unwrap().is_empty());
}

#[test]
fn deleting_or_duplicating_a_window_breaks_continuity() {
    let d = Dir::new();
    d.sealed_store(&["--events", "120000"]);
    let micro = tree(&d.join("s"))
        .into_keys()
        .filter(|p| {
            p.extension().is_some_and(|e| e == "cbor") && p.to_string_lossy().contains("/micro/")
        })
        .collect::<Vec<_>>();
    assert!(micro.len() >= 2, "{micro:?}");
    let first = d.join("s").join(&micro[0]);
    let second = d.join("s").join(&micro[1]);
    // Replace window 1's record with window 0's: a repeat in the wrong place.
    let saved = std::fs::read(&second).unwrap();
    std::fs::copy(&first, &second).unwrap();
    let err = d
        .ritma(&["verify", "--trust-embedded-key", "s"])
        .output()
        .failure();
    assert!(
        err.contains("E_LAYOUT") || err.contains("E_CONTINUITY"),
        "{err}"
    );
    std::fs::write(&second, saved).unwrap();
    // Remove the first window entirely: the first checkpoint no longer matches.
    for ext in ["cbor", "sig"] {
        std::fs::remove_file(first.with_extension(ext)).unwrap();
    }
    let blocks = first.parent().unwrap().parent().unwrap().join("blocks");
    for e in std::fs::read_dir(&blocks).unwrap() {
        let p = e.unwrap().path();
        if p.file_name()
            .unwrap()
            .to_string_lossy()
            .starts_with("w0000.")
        {
            std::fs::remove_file(p).unwrap();
        }
    }
    let err = d
        .ritma(&["verify", "--trust-embedded-key", "s"])
        .output()
        .failure();
    assert!(err.contains("E_CHECKPOINT"), "{err}");
}

#[test]
fn hours_are_sealed_and_chained_and_tampering_with_a_seal_is_caught() {
    let d = Dir::new();
    // 5 events/s with 1-minute windows: three hours in 60 000 events.
    d.ritma(&[
        "synth",
        "--events",
        "60000",
        "--rate",
        "5",
        "--window-ms",
        "60000",
        "--out",
        "h.rtrace",
    ])
    .output()
    .success();
    d.ritma(&["keys", "init", "--out", "s", "--node", "synth-0"])
        .output()
        .success();
    d.ritma(&["replay", "h.rtrace", "--out", "s", "--workers", "2"])
        .output()
        .success();
    d.ritma(&["verify", "--trust-embedded-key", "s"])
        .output()
        .success();
    let seals: Vec<PathBuf> = tree(&d.join("s"))
        .into_keys()
        .filter(|p| p.to_string_lossy().contains("/proofs/"))
        .collect();
    // Each of the three hours: its seal, its checkpoint and the state saved after it.
    assert_eq!(seals.len(), 9, "{seals:?}");
    for rel in &seals {
        let path = d.join("s").join(rel);
        let bytes = std::fs::read(&path).unwrap();
        let mut b = bytes.clone();
        let at = b.len() / 2;
        b[at] ^= 0x04;
        std::fs::write(&path, &b).unwrap();
        let err = d
            .ritma(&["verify", "--trust-embedded-key", "s"])
            .output()
            .failure();
        assert!(
            err.contains(&*rel.file_name().unwrap().to_string_lossy()) && err.contains(" E_"),
            "{}: {err}",
            rel.display()
        );
        std::fs::write(&path, &bytes).unwrap();
    }
    // Another hour's seal in place of this one's breaks the chain.
    let cbor: Vec<&PathBuf> = seals
        .iter()
        .filter(|p| p.extension().is_some_and(|e| e == "cbor"))
        .collect();
    let (a, b) = (d.join("s").join(cbor[0]), d.join("s").join(cbor[1]));
    let saved = std::fs::read(&b).unwrap();
    std::fs::copy(&a, &b).unwrap();
    let err = d
        .ritma(&["verify", "--trust-embedded-key", "s"])
        .output()
        .failure();
    assert!(err.contains("E_CHAIN"), "{err}");
    // A missing seal for a complete hour is caught too.
    std::fs::remove_file(&b).unwrap();
    let err = d
        .ritma(&["verify", "--trust-embedded-key", "s"])
        .output()
        .failure();
    assert!(
        err.contains("E_MISSING") && err.contains("hour_root.cbor"),
        "{err}"
    );
    std::fs::write(&b, saved).unwrap();
    d.ritma(&["verify", "--trust-embedded-key", "s"])
        .output()
        .success();
}

/// Every ConeInstance sealed in a store, read back through the store's own blocks.
fn cone_instances(store: &Path) -> Vec<ritma_schemas::records::ConeInstance> {
    use ritma_schemas::records::AnyRecord;
    let mut out = Vec::new();
    for (_, leaves) in window_leaves(store) {
        for leaf in leaves {
            if let AnyRecord::Cone(c) = AnyRecord::decode(&leaf).unwrap() {
                out.push(c);
            }
        }
    }
    out
}

#[test]
fn every_labelled_attack_is_matched_by_its_cone_and_nothing_else_fires() {
    let d = Dir::new();
    d.ritma(&[
        "synth", "--events", "150000", "--seed", "21", "--out", "t.rtrace",
    ])
    .output()
    .success();
    d.ritma(&["keys", "init", "--out", "s", "--node", "synth-0"])
        .output()
        .success();
    d.ritma(&["replay", "t.rtrace", "--out", "s", "--workers", "2"])
        .output()
        .success();
    let labels = std::fs::read_to_string(d.join("t.rtrace.labels.jsonl")).unwrap();
    let labels: Vec<(String, u64, u64)> = labels
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            (
                v["attack"].as_str().unwrap().to_owned(),
                v["first_seq"].as_u64().unwrap(),
                v["last_seq"].as_u64().unwrap(),
            )
        })
        .collect();
    let cones = cone_instances(&d.join("s"));
    let expected = |attack: &str| match attack {
        "download_exec" => "download_exec_tmp",
        "memfd_exec" => "memfd_exec",
        "ptrace_inject" => "ptrace_inject",
        "priv_esc" => "priv_esc_setuid",
        "secrets_egress" => "secrets_then_egress",
        "persistence" => "persistence_write",
        other => panic!("unknown attack {other}"),
    };
    let kinds: std::collections::BTreeSet<_> = labels.iter().map(|l| l.0.as_str()).collect();
    assert_eq!(kinds.len(), 6, "{kinds:?}");
    for (attack, first, last) in &labels {
        let hit = cones
            .iter()
            .any(|c| c.cone_id == expected(attack) && c.first_seq >= *first && c.last_seq <= *last);
        assert!(
            hit,
            "{attack} at seqs {first}..={last} not matched; cones: {:?}",
            cones
                .iter()
                .map(|c| (&c.cone_id, c.first_seq))
                .collect::<Vec<_>>()
        );
    }
    for c in &cones {
        let inside = labels
            .iter()
            .any(|(_, f, l)| c.first_seq >= *f && c.last_seq <= *l);
        assert!(
            inside,
            "false positive: {} at seqs {}..={}",
            c.cone_id, c.first_seq, c.last_seq
        );
    }
    triggers_raise_the_capture_mode(&d.join("s"));
}

/// Capture modes in a store sealed from a trace with attacks: the run is Thin, every
/// window where a trigger fired is Thick, a triggered process's argv is kept, and argv
/// is kept for few execs (the raised ones) only.
fn triggers_raise_the_capture_mode(store: &Path) {
    use ritma_schemas::records::{AnyRecord, CaptureMode, DictKind, EventType};
    let (mut execs, mut kept, mut triggered_argv) = (0, 0, 0);
    let mut first_trigger = None;
    for (record, leaves) in window_leaves(store) {
        let records: Vec<AnyRecord> = leaves
            .iter()
            .map(|l| AnyRecord::decode(l).unwrap())
            .collect();
        let argv: std::collections::BTreeSet<[u8; 32]> = records
            .iter()
            .filter_map(|r| match r {
                AnyRecord::Dict(d) if d.kind == DictKind::Argv && !d.hashed => {
                    Some(ritma_schemas::hash::blake3(&d.value))
                }
                _ => None,
            })
            .collect();
        let triggered: Vec<_> = records
            .iter()
            .filter_map(|r| match r {
                AnyRecord::Cone(c) => Some(c.bindings.iter().map(|b| b.1).collect::<Vec<_>>()),
                _ => None,
            })
            .flatten()
            .collect();
        if !triggered.is_empty() {
            first_trigger.get_or_insert(record.window);
            assert_eq!(
                record.capture_mode,
                CaptureMode::Thick,
                "window {}",
                record.window
            );
        }
        if first_trigger.is_none() {
            assert_eq!(
                record.capture_mode,
                CaptureMode::Thin,
                "window {}",
                record.window
            );
            assert!(
                argv.is_empty(),
                "argv kept before any trigger, window {}",
                record.window
            );
        }
        for r in &records {
            let AnyRecord::Event(a) = r else { continue };
            let Some(h) = a.arg_hash.filter(|_| a.event_type == EventType::Exec) else {
                continue;
            };
            execs += 1;
            kept += usize::from(argv.contains(&h));
            triggered_argv += usize::from(argv.contains(&h) && triggered.contains(&a.actor));
        }
    }
    assert!(first_trigger.is_some());
    assert!(triggered_argv > 0, "no triggered process had its argv kept");
    assert!(kept * 10 < execs, "argv kept for {kept} of {execs} execs");
}

#[test]
fn a_progress_bar_is_drawn_on_a_terminal_and_nowhere_else() {
    let d = Dir::new();
    d.ritma(&["synth", "--events", "100000", "--out", "t.rtrace"])
        .output()
        .success();
    for s in ["a", "b"] {
        d.ritma(&["keys", "init", "--out", s, "--node", "synth-0"])
            .output()
            .success();
    }
    // Piped: no bar in the output.
    let o = d
        .ritma(&["replay", "t.rtrace", "--out", "a"])
        .output()
        .unwrap();
    assert!(o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!err.contains("replay ["), "{err}");
    // The closing lines: operator counters, then totals with the seal latency.
    let lines: Vec<&str> = err.lines().collect();
    assert!(
        lines[lines.len() - 2].starts_with("ritma: cone partial matches expired "),
        "{err}"
    );
    let last = lines[lines.len() - 1];
    assert!(
        last.contains("sealed 100000 events") && last.contains("seal latency p50 "),
        "{err}"
    );
    // On a pseudo-terminal (util-linux `script`): the bar, with bytes and events.
    let cmd = format!("{} replay t.rtrace --out b", env!("CARGO_BIN_EXE_ritma"));
    let o = std::process::Command::new("script")
        .args(["-qec", &cmd, "/dev/null"])
        .current_dir(d.path())
        .output()
        .expect("util-linux `script` runs a command on a pseudo-terminal");
    assert!(o.status.success());
    let tty = String::from_utf8_lossy(&o.stdout);
    assert!(
        tty.contains("replay [") && tty.contains(" events, "),
        "{tty}"
    );
    // Verify, retention and case export draw theirs the same way, and only there.
    let piped = d
        .ritma(&["verify", "--trust-embedded-key", "b"])
        .output()
        .unwrap();
    assert!(!String::from_utf8_lossy(&piped.stderr).contains("verify ["));
    let on_tty = |args: &str| {
        let cmd = format!("{} {args}", env!("CARGO_BIN_EXE_ritma"));
        let o = std::process::Command::new("script")
            .args(["-qec", &cmd, "/dev/null"])
            .current_dir(d.path())
            .env("RITMA_LOCK_DIR", d.join("locks"))
            .output()
            .unwrap();
        assert!(o.status.success(), "{args}");
        String::from_utf8_lossy(&o.stdout).into_owned()
    };
    let tty = on_tty("verify b --trust-embedded-key");
    assert!(
        tty.contains("verify [") && tty.contains(" windows"),
        "{tty}"
    );
    let tty = on_tty("retention b --keep 3650d");
    assert!(tty.contains("retention: verify ["), "{tty}");
    on_tty("keys new alice --out alice.key");
    on_tty("case open b IR-1 --title t --approver alice.key.vkey");
    on_tty("case add b IR-1 --from 2026-11-01T00:00:00Z --to 2026-11-01T00:00:03Z");
    let tty = on_tty("case export b IR-1 --out bundle");
    assert!(tty.contains("export ["), "{tty}");
}

#[test]
fn cgroup_paths_attribute_containers_and_services_and_link_containers_to_processes() {
    use ritma_schemas::records::{AnyRecord, DictKind, EdgeKind};
    use std::collections::{BTreeMap, BTreeSet};
    let d = Dir::new();
    d.sealed_store(&["--events", "60000"]);
    // Per window: dictionary names, actors' container/service, container edges.
    let mut windows = 0;
    let (mut containers, mut services, mut linked) = (BTreeSet::new(), BTreeSet::new(), 0);
    for (_, leaves) in window_leaves(&d.join("s")) {
        windows += 1;
        let (mut dict, mut actors, mut edges) = (BTreeMap::new(), BTreeMap::new(), Vec::new());
        for leaf in leaves {
            match AnyRecord::decode(&leaf).unwrap() {
                AnyRecord::Dict(e) => {
                    dict.insert(e.id, (e.kind, e.value));
                }
                AnyRecord::Actor(a) => {
                    actors.insert(a.actor, a);
                }
                AnyRecord::Edge(e) if e.kind == EdgeKind::ContainerToProc => edges.push(e),
                _ => {}
            }
        }
        for a in actors.values() {
            // Every name an actor uses is in its window's dictionary.
            if let Some(c) = a.container {
                let (kind, value) = &dict[&c];
                assert_eq!(*kind, DictKind::Container);
                containers.insert(value.clone());
            }
            if let Some(s) = a.service {
                let (kind, value) = &dict[&s];
                assert_eq!(*kind, DictKind::Service);
                services.insert(String::from_utf8(value.clone()).unwrap());
            }
        }
        for e in &edges {
            // A container edge joins a container to an actor that runs in it.
            assert_eq!(actors[&e.dst].container, Some(e.src));
            linked += 1;
        }
        let in_containers = actors.values().filter(|a| a.container.is_some()).count();
        assert!(edges.len() <= in_containers);
    }
    assert!(windows > 0);
    assert_eq!(containers.len(), 1, "{containers:?}");
    assert!(linked > 0);
    for s in ["ssh.service", "nginx.service", "cron.service"] {
        assert!(services.contains(s), "{s} not in {services:?}");
    }
}
