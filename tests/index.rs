//! The hour index and graph edge parts a replay writes: what they say must match
//! the sealed blocks, and `ritma verify` rebuilds and checks them.

use crate::util::{tree, window_leaves, Dir, OutputExt};
use ritma_schemas::index::{ConeRefs, EdgePart, EdgeRefs, TaintIndex, TimeIndex, MAX_INDEX_LEN};
use ritma_schemas::records::{AnyRecord, Record};
use ritma_sinks::index::read_compressed;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// The files under `dir` whose names end in `suffix`, sorted.
fn files_under(dir: &Path, suffix: &str) -> Vec<PathBuf> {
    tree(dir)
        .into_keys()
        .filter(|p| p.to_string_lossy().ends_with(suffix))
        .map(|p| dir.join(p))
        .collect()
}

fn decode<R: Record>(p: &Path) -> R {
    R::decode(&read_compressed(p, MAX_INDEX_LEN).unwrap()).unwrap()
}

#[test]
fn index_files_and_edge_parts_describe_the_sealed_blocks() {
    let d = Dir::new();
    d.sealed_store(&["--events", "150000"]);
    d.ritma(&["verify", "--trust-embedded-key", "s"])
        .output()
        .success();
    let store = d.join("s");

    let micro = files_under(&store.join("windows"), ".cbor")
        .into_iter()
        .filter(|p| p.to_string_lossy().contains("/micro/"))
        .collect::<Vec<_>>();
    let index_dirs: BTreeSet<PathBuf> = micro
        .iter()
        .map(|p| p.parent().unwrap().parent().unwrap().to_path_buf())
        .collect();
    assert_eq!(index_dirs.len(), 1, "one hour: {index_dirs:?}");
    let hour_dir = index_dirs.into_iter().next().unwrap();

    // Every edge leaf of every window, in order, and every cone leaf by position.
    let (mut edge_leaves, mut cone_leaves, mut events, mut entities) =
        (Vec::new(), Vec::new(), 0u64, BTreeSet::new());
    for (r, leaves) in window_leaves(&store) {
        let index = r.window % 3600;
        for (i, leaf) in leaves.into_iter().enumerate() {
            match AnyRecord::decode(&leaf).unwrap() {
                AnyRecord::Edge(e) => {
                    entities.insert(e.src);
                    entities.insert(e.dst);
                    edge_leaves.push((index, leaf));
                }
                AnyRecord::Cone(c) => cone_leaves.push((c.cone_id, index, i as u64)),
                AnyRecord::Event(_) => events += 1,
                _ => {}
            }
        }
    }
    assert_eq!(events, 150_000);

    // Graph parts: the hour's edges, in order, cut every 10 000, each group unpacked with
    // its window's id table.
    let parts = files_under(&store.join("graph/edges"), ".edges.cbor.zst");
    assert!(parts.len() >= 2, "{parts:?}");
    let mut from_parts = Vec::new();
    for (i, p) in parts.iter().enumerate() {
        let part: EdgePart = decode(p);
        assert_eq!(part.part as usize, i);
        let mut edges = 0;
        for g in &part.groups {
            let paths = ritma_sinks::store::WindowPaths::new(g.window, 1_000_000_000);
            let table = ritma_sinks::store::BlockFile::open(
                &store.join(paths.blocks()),
                g.window,
                u64::MAX,
            )
            .unwrap()
            .into_ids();
            let leaves = g.unpack(&table, None).unwrap();
            edges += leaves.len();
            from_parts.extend(leaves.into_iter().map(|l| (g.window % 3600, l)));
        }
        if i + 1 < parts.len() {
            assert_eq!(edges, 10_000);
        }
    }
    assert_eq!(from_parts, edge_leaves);

    // Time index: every event once in each bucket length, spans inside real windows.
    for stem in ["t_1s", "t_10s", "t_60s"] {
        let t: TimeIndex = decode(&hour_dir.join(format!("index/{stem}.cbor.zst")));
        assert_eq!(
            t.buckets.iter().map(|b| b.events).sum::<u64>(),
            150_000,
            "{stem}"
        );
    }
    // Cone refs point at the cone leaves, all of them.
    let cones: ConeRefs = decode(&hour_dir.join("index/cone_refs.cbor.zst"));
    let mut refs: Vec<(String, u64, u64)> = cones
        .cones
        .iter()
        .flat_map(|(c, r)| r.iter().map(move |(w, l)| (c.clone(), *w, *l)))
        .collect();
    refs.sort();
    cone_leaves.sort();
    assert!(!refs.is_empty());
    assert_eq!(refs, cone_leaves);
    // Edge refs name every entity an edge touches.
    let edge_refs: EdgeRefs = decode(&hour_dir.join("index/edge_refs.p0000.cbor.zst"));
    let named: BTreeSet<_> = edge_refs.entities.iter().map(|(key, _)| *key).collect();
    let keys: BTreeSet<_> = entities.iter().map(EdgeRefs::key_of).collect();
    assert_eq!(named, keys);

    // Taint: what the matched actors reached, entering before it leaves; verify has
    // already rebuilt it with the plain reference tracker and found it equal.
    let taint: TaintIndex = decode(&hour_dir.join("index/taint.cbor.zst"));
    assert_eq!(taint.ttl_windows, 300);
    assert!(
        taint.changes.iter().any(|c| c.enters),
        "no taint in a trace with attacks"
    );
    let mut live = BTreeSet::new();
    for c in &taint.changes {
        let pair = (c.seed, c.entity);
        if c.enters {
            assert!(live.insert(pair), "{c:?} enters twice");
        } else {
            assert!(live.remove(&pair), "{c:?} leaves without entering");
        }
    }
    let path = hour_dir.join("index/taint.cbor.zst");
    let saved = std::fs::read(&path).unwrap();
    let mut forged = taint.clone();
    forged.changes.remove(0);
    std::fs::write(&path, zstd::bulk::compress(&forged.encode(), 3).unwrap()).unwrap();
    let err = d
        .ritma(&["verify", "--trust-embedded-key", "s"])
        .output()
        .failure();
    assert!(err.contains("E_INDEX") && err.contains("taint"), "{err}");
    std::fs::write(&path, &saved).unwrap();

    // A changed index file is caught even when it is well formed.
    let path = hour_dir.join("index/edge_refs.p0000.cbor.zst");
    let saved = std::fs::read(&path).unwrap();
    let mut fewer = edge_refs.clone();
    fewer.entities.pop();
    std::fs::write(&path, zstd::bulk::compress(&fewer.encode(), 3).unwrap()).unwrap();
    let err = d
        .ritma(&["verify", "--trust-embedded-key", "s"])
        .output()
        .failure();
    assert!(
        err.contains("E_INDEX") && err.contains("edge_refs"),
        "{err}"
    );
    std::fs::write(&path, &saved).unwrap();

    // One index file missing is caught; an extra edge part too.
    let t10 = hour_dir.join("index/t_10s.cbor.zst");
    let t10_saved = std::fs::read(&t10).unwrap();
    std::fs::remove_file(&t10).unwrap();
    let err = d
        .ritma(&["verify", "--trust-embedded-key", "s"])
        .output()
        .failure();
    assert!(err.contains("E_INDEX"), "{err}");
    std::fs::write(&t10, &t10_saved).unwrap();
    let extra = parts[0].with_file_name("p0099.edges.cbor.zst");
    std::fs::copy(&parts[0], &extra).unwrap();
    let err = d
        .ritma(&["verify", "--trust-embedded-key", "s"])
        .output()
        .failure();
    assert!(err.contains("E_EXTRA") && err.contains("p0099"), "{err}");
    std::fs::remove_file(&extra).unwrap();
    d.ritma(&["verify", "--trust-embedded-key", "s"])
        .output()
        .success();

    // The newest hour's catalog entry is written last of its derived files: without it
    // (a run cut off, FORMAT §8.12) a missing index, last part or full part is reported,
    // not failed on, and the sealed windows still verify.
    std::fs::remove_dir_all(store.join("catalog")).unwrap();
    std::fs::remove_dir_all(hour_dir.join("index")).unwrap();
    std::fs::remove_file(parts.last().unwrap()).unwrap();
    std::fs::remove_dir_all(store.join("accounting")).unwrap();
    std::fs::remove_file(&parts[0]).unwrap();
    let out = d
        .ritma(&["verify", "--trust-embedded-key", "s"])
        .output()
        .success();
    for named in ["index", "p0000", "day.cbor.zst"] {
        assert!(
            out.contains("INTERRUPTED") && out.contains(named),
            "{named}: {out}"
        );
    }
}
