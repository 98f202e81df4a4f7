//! Builds an hour's index files and graph edge parts from its sealed windows
//! (FORMAT.md §8.3–8.4). The writer and `ritma verify` use the same builder, so
//! what verify rebuilds is by construction what an honest writer wrote.

use crate::store::{io, replace_atomic, sync_dir, StoreError, WindowPaths};
use ritma_schemas::catalog::{CatalogHour, HourContents, HourState};
use ritma_schemas::cbor::DecodeError;
use ritma_schemas::index::{
    ConeRefs, EdgePart, EdgeRefs, EdgeRun, LeafSpan, TaintEntry, TaintIndex, TimeBucket, TimeIndex,
    EDGES_PER_PART, EDGE_REFS_PER_PART, MAX_INDEX_LEN, TIME_BUCKETS,
};
use ritma_schemas::packed::IdIndex;
use ritma_schemas::records::{
    CaptureMode, ConeInstance, Edge, EventAtom, EventType, LossReason, Record, WindowRecord,
};
use ritma_schemas::Id128;
use std::collections::{BTreeMap, HashSet};
use std::fs;
use std::path::{Path, PathBuf};

/// zstd level of index files and edge parts.
const INDEX_ZSTD_LEVEL: i32 = 3;

/// The indexed records of one sealed window, in canonical (leaf) order.
pub struct IndexedWindow<'a> {
    pub record: &'a WindowRecord,
    pub atoms: &'a [EventAtom],
    pub edges: &'a [Edge],
    /// The edges' leaf bytes, one per edge.
    pub edge_leaves: &'a [Vec<u8>],
    pub cones: &'a [ConeInstance],
    /// Taint changes at this window: (seed, entity, enters).
    pub taint: &'a [(Id128, Id128, bool)],
}

/// An hour's finished index files.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HourIndex {
    /// t_1s, t_10s, t_60s, in that order.
    pub time: Vec<TimeIndex>,
    pub cone_refs: ConeRefs,
    /// The hour's last edge refs part (the earlier ones were written as they closed).
    pub edge_refs: EdgeRefs,
    pub taint: TaintIndex,
    /// The hour's catalog entry (FORMAT.md §8.11), its state left to the caller.
    pub summary: CatalogHour,
}

/// The file stem of edge refs part `part`.
pub fn edge_refs_stem(part: u32) -> String {
    format!("edge_refs.p{part:04}")
}

impl HourIndex {
    /// The hour's catalog entry in `state`.
    pub fn catalog_entry(&self, state: HourState) -> CatalogHour {
        CatalogHour {
            state,
            ..self.summary.clone()
        }
    }

    /// (file stem, encoded record) of each index file written at the hour's end, in
    /// file-name order.
    pub fn files(&self) -> Vec<(String, Vec<u8>)> {
        let mut files = vec![
            ("cone_refs".to_owned(), self.cone_refs.encode()),
            (edge_refs_stem(self.edge_refs.part), self.edge_refs.encode()),
            ("taint".to_owned(), self.taint.encode()),
        ];
        for (t, (stem, _)) in self.time.iter().zip(TIME_BUCKETS) {
            files.push(((*stem).to_owned(), t.encode()));
        }
        files
    }
}

/// What a window closed: full graph edge parts (to be packed, [`PartIds`]), and an edge
/// refs part.
#[derive(Debug, Default)]
pub struct ClosedParts {
    pub edges: Vec<EdgeRun>,
    pub edge_refs: Option<EdgeRefs>,
}

/// Accumulates one hour of one node.
pub struct HourIndexBuilder {
    node: String,
    window_len_ns: u64,
    hour: u64,
    time: [BTreeMap<u64, (u64, Vec<LeafSpan>)>; 3],
    cones: BTreeMap<String, Vec<(u64, u64)>>,
    /// (entity, window index) pairs since the last edge refs part, each window's deduplicated.
    refs: Vec<(Id128, u32)>,
    next_refs_part: u32,
    /// (window, leaf, bytes) of the edges since the last part.
    pending: Vec<(u64, u64, Vec<u8>)>,
    next_part: u32,
    ttl_windows: u64,
    taint: Vec<TaintEntry>,
    summary: SummaryBuilder,
}

/// The catalog counts of an hour, accumulated window by window.
struct SummaryBuilder {
    windows: Option<(u64, u64)>,
    events: u64,
    seqs: Option<(u64, u64)>,
    lost: BTreeMap<LossReason, u64>,
    late_events: u64,
    capture_mode: Option<CaptureMode>,
    actors: HashSet<Id128>,
    edges: u64,
    health: u64,
    /// Events per type, by the type's wire value.
    event_types: [u64; 256],
}

impl SummaryBuilder {
    fn new() -> Self {
        SummaryBuilder {
            windows: None,
            events: 0,
            seqs: None,
            lost: BTreeMap::new(),
            late_events: 0,
            capture_mode: None,
            actors: HashSet::new(),
            edges: 0,
            health: 0,
            event_types: [0; 256],
        }
    }

    fn push(&mut self, w: &IndexedWindow<'_>) {
        let r = w.record;
        self.windows = Some(match self.windows {
            None => (r.window, r.window),
            Some((first, _)) => (first, r.window),
        });
        // A window's atoms are its leaves in seq order: its first and last bound its seqs.
        if let (Some(first), Some(last)) = (w.atoms.first(), w.atoms.last()) {
            self.seqs = Some(match self.seqs {
                None => (first.seq, last.seq),
                Some((lo, hi)) => (lo.min(first.seq), hi.max(last.seq)),
            });
        }
        for a in w.atoms {
            self.event_types[a.event_type.as_u64() as usize] += 1;
            self.actors.insert(a.actor);
        }
        self.events += w.atoms.len() as u64;
        for &(reason, n) in &r.lost {
            let total = self.lost.entry(reason).or_default();
            *total = total.saturating_add(n);
        }
        self.late_events = self.late_events.saturating_add(r.late_events);
        self.capture_mode = self.capture_mode.max(Some(r.capture_mode));
        self.edges += w.edges.len() as u64;
        self.health = self.health.saturating_add(r.health_count);
    }

    fn finish(self, hour: u64, cones: &BTreeMap<String, Vec<(u64, u64)>>) -> CatalogHour {
        let (first_window, last_window) = self.windows.unwrap_or((0, 0));
        CatalogHour {
            hour,
            state: HourState::Open,
            first_window,
            last_window,
            events: self.events,
            seq_range: self.seqs,
            lost: self.lost.into_iter().collect(),
            contents: Some(HourContents {
                late_events: self.late_events,
                capture_mode: self.capture_mode.unwrap_or(CaptureMode::Thin),
                actors: self.actors.len() as u64,
                edges: self.edges,
                health: self.health,
                event_types: EventType::ALL
                    .iter()
                    .map(|&t| (t, self.event_types[t.as_u64() as usize]))
                    .filter(|&(_, n)| n > 0)
                    .collect(),
                cones: cones
                    .iter()
                    .map(|(id, refs)| (id.clone(), refs.len() as u64))
                    .collect(),
            }),
        }
    }
}

impl HourIndexBuilder {
    pub fn new(node: &str, window_len_ns: u64, hour: u64, ttl_windows: u64) -> Self {
        HourIndexBuilder {
            node: node.to_owned(),
            window_len_ns,
            hour,
            time: Default::default(),
            cones: BTreeMap::new(),
            refs: Vec::new(),
            next_refs_part: 0,
            pending: Vec::new(),
            next_part: 0,
            ttl_windows,
            taint: Vec::new(),
            summary: SummaryBuilder::new(),
        }
    }

    pub fn hour(&self) -> u64 {
        self.hour
    }

    /// Adds the next sealed window of the hour; returns the parts it closed.
    pub fn push_window(&mut self, w: IndexedWindow<'_>) -> ClosedParts {
        let r = w.record;
        let per_hour = ritma_schemas::records::windows_per_hour(self.window_len_ns);
        debug_assert_eq!(r.window / per_hour, self.hour);
        let index = r.window % per_hour;
        self.summary.push(&w);
        let atoms_at = r.dict_count + r.actor_count;
        let edges_at = atoms_at + r.event_count;
        let cones_at = edges_at + r.edge_count;
        let start = r.window as i128 * self.window_len_ns as i128;
        for (i, atom) in w.atoms.iter().enumerate() {
            let leaf = atoms_at + i as u64;
            let wall = (start + atom.t_ns as i128).max(0) as u64;
            for (map, (_, len)) in self.time.iter_mut().zip(TIME_BUCKETS) {
                let (events, spans) = map.entry(wall / len).or_default();
                *events += 1;
                match spans.last_mut() {
                    Some(s) if s.window_index == index => {
                        s.first_leaf = s.first_leaf.min(leaf);
                        s.last_leaf = s.last_leaf.max(leaf);
                    }
                    _ => spans.push(LeafSpan {
                        window_index: index,
                        first_leaf: leaf,
                        last_leaf: leaf,
                    }),
                }
            }
        }
        for (i, cone) in w.cones.iter().enumerate() {
            self.cones
                .entry(cone.cone_id.clone())
                .or_default()
                .push((index, cones_at + i as u64));
        }
        let mut taint: Vec<TaintEntry> = w
            .taint
            .iter()
            .map(|&(seed, entity, enters)| TaintEntry {
                window_index: index,
                seed,
                entity,
                enters,
            })
            .collect();
        taint.sort_unstable();
        self.taint.extend(taint);
        let mut closed = ClosedParts::default();
        let window_refs = self.refs.len();
        for (i, (edge, leaf)) in w.edges.iter().zip(w.edge_leaves).enumerate() {
            self.refs.push((edge.src, index as u32));
            self.refs.push((edge.dst, index as u32));
            self.pending
                .push((r.window, edges_at + i as u64, leaf.clone()));
            if self.pending.len() == EDGES_PER_PART {
                closed.edges.push(self.take_part());
            }
        }
        let mut this_window = self.refs.split_off(window_refs);
        this_window.sort_unstable();
        this_window.dedup();
        self.refs.append(&mut this_window);
        if self.refs.len() >= EDGE_REFS_PER_PART {
            closed.edge_refs = Some(self.take_refs_part());
        }
        closed
    }

    /// The pairs since the last part, as the next edge refs part: by key (the id's first
    /// 4 bytes), the windows of every entity under it.
    fn take_refs_part(&mut self) -> EdgeRefs {
        let mut refs: Vec<(u32, u32)> = std::mem::take(&mut self.refs)
            .into_iter()
            .map(|(id, window)| (EdgeRefs::key_of(&id), window))
            .collect();
        refs.sort_unstable();
        refs.dedup();
        let mut entities: Vec<(u32, Vec<u64>)> = Vec::new();
        for (key, window) in refs {
            match entities.last_mut() {
                Some((last, windows)) if *last == key => windows.push(window as u64),
                _ => entities.push((key, vec![window as u64])),
            }
        }
        let part = EdgeRefs {
            node: self.node.clone(),
            hour: self.hour,
            part: self.next_refs_part,
            entities,
        };
        self.next_refs_part += 1;
        part
    }

    fn take_part(&mut self) -> EdgeRun {
        let part = EdgeRun {
            node: self.node.clone(),
            hour: self.hour,
            part: self.next_part,
            edges: std::mem::take(&mut self.pending),
        };
        self.next_part += 1;
        part
    }

    /// Ends the hour: its index files and the last, partly filled edge part.
    pub fn finish(mut self) -> (HourIndex, Option<EdgeRun>) {
        let last = (!self.pending.is_empty()).then(|| self.take_part());
        let edge_refs = self.take_refs_part();
        let time = self
            .time
            .into_iter()
            .zip(TIME_BUCKETS)
            .map(|(map, (_, bucket_ns))| TimeIndex {
                node: self.node.clone(),
                hour: self.hour,
                bucket_ns,
                buckets: map
                    .into_iter()
                    .map(|(bucket, (events, spans))| TimeBucket {
                        bucket,
                        events,
                        spans,
                    })
                    .collect(),
            })
            .collect();
        let summary = self.summary.finish(self.hour, &self.cones);
        let index = HourIndex {
            summary,
            time,
            cone_refs: ConeRefs {
                node: self.node.clone(),
                hour: self.hour,
                cones: self.cones.into_iter().collect(),
            },
            edge_refs,
            taint: TaintIndex {
                node: self.node,
                hour: self.hour,
                ttl_windows: self.ttl_windows,
                changes: self.taint,
            },
        };
        (index, last)
    }
}

impl WindowPaths {
    /// `windows/…/HH/index/<stem>.cbor.zst`
    pub fn index_file(&self, stem: &str) -> PathBuf {
        self.hour_dir.join(format!("index/{stem}.cbor.zst"))
    }

    /// `graph/edges/YYYY/MM/DD/HH/`, the hour's edge parts.
    pub fn edges_dir(&self) -> PathBuf {
        let date_hour = self
            .hour_dir
            .strip_prefix("windows")
            .expect("hour dirs start with windows/");
        Path::new("graph/edges").join(date_hour)
    }

    /// `graph/edges/YYYY/MM/DD/HH/pNNNN.edges.cbor.zst`
    pub fn edge_part(&self, part: u32) -> PathBuf {
        self.edges_dir().join(format!("p{part:04}.edges.cbor.zst"))
    }
}

/// Compresses and writes one index or edge file atomically.
/// Derived files are replaced, not kept: a run continued in an hour its previous run
/// left open writes that hour's index and last edge part again, with more windows.
fn write_compressed(path: &Path, encoded: &[u8]) -> Result<(), StoreError> {
    let bytes = zstd::bulk::compress(encoded, INDEX_ZSTD_LEVEL).map_err(io(path))?;
    let dir = path.parent().expect("a file in a directory");
    fs::create_dir_all(dir).map_err(io(dir))?;
    replace_atomic(path, &bytes)
}

/// The id indexes of the windows whose edges the hour's next graph edge part may hold:
/// a part is packed against its windows' id tables (FORMAT.md §8.4).
#[derive(Default)]
pub struct PartIds {
    windows: BTreeMap<u64, IdIndex>,
}

impl PartIds {
    /// Keeps `window`'s ids if it has edges.
    pub fn add(&mut self, window: u64, edges: u64, ids: impl FnOnce() -> IdIndex) {
        if edges > 0 {
            self.windows.insert(window, ids());
        }
    }

    /// Packs a closed run, then forgets the windows before its last one (the next part
    /// starts there at the earliest).
    pub fn pack(&mut self, run: &EdgeRun) -> Result<EdgePart, DecodeError> {
        let part = run.pack(|w| self.windows.get(&w))?;
        if let Some(&(last, _, _)) = run.edges.last() {
            self.windows = self.windows.split_off(&last);
        }
        Ok(part)
    }

    /// At the hour's end.
    pub fn clear(&mut self) {
        self.windows.clear();
    }
}

/// Writes a graph edge part (the directory is synced with the hour's index).
pub fn write_edge_part(
    root: &Path,
    paths: &WindowPaths,
    part: &EdgePart,
) -> Result<(), StoreError> {
    let path = root.join(paths.edge_part(part.part));
    write_compressed(&path, &part.encode())?;
    sync_dir(path.parent().expect("edges dir"))
}

/// Writes an hour's index files (after its last edge part).
pub fn write_hour_index(
    root: &Path,
    paths: &WindowPaths,
    index: &HourIndex,
) -> Result<(), StoreError> {
    for (stem, bytes) in index.files() {
        write_compressed(&root.join(paths.index_file(&stem)), &bytes)?;
    }
    sync_dir(&root.join(&paths.hour_dir).join("index"))
}

/// Writes an edge refs part closed before the hour's end.
pub fn write_edge_refs(
    root: &Path,
    paths: &WindowPaths,
    refs: &EdgeRefs,
) -> Result<(), StoreError> {
    let path = root.join(paths.index_file(&edge_refs_stem(refs.part)));
    write_compressed(&path, &refs.encode())?;
    sync_dir(path.parent().expect("index dir"))
}

/// An hour's taint index (FORMAT.md §8.5), `None` if the hour has none.
pub fn read_taint_index(root: &Path, hour_dir: &Path) -> Result<Option<TaintIndex>, StoreError> {
    let path = root.join(hour_dir).join("index/taint.cbor.zst");
    if !path.exists() {
        return Ok(None);
    }
    let bytes = read_compressed(&path, MAX_INDEX_LEN)?;
    TaintIndex::decode(&bytes)
        .map(Some)
        .map_err(|source| StoreError::Decode { path, source })
}

/// Reads an index or edge file back to its encoded record bytes.
pub fn read_compressed(path: &Path, limit: usize) -> Result<Vec<u8>, StoreError> {
    let bytes =
        crate::store::read_capped(path, crate::store::compressed_cap(limit)).map_err(io(path))?;
    crate::store::decompress_frame(&bytes, limit).map_err(|e| StoreError::Invalid {
        path: path.to_owned(),
        reason: format!("not a zstd frame of at most {limit} bytes: {e}"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use ritma_schemas::records::{atom_flags, CaptureMode, EdgeKind, EventType};

    fn record(window: u64, atoms: u64, edges: u64, cones: u64) -> WindowRecord {
        WindowRecord {
            node: "n".into(),
            window,
            window_len_ns: 1_000_000_000,
            first_seq: 0,
            event_count: atoms,
            dict_count: 2,
            actor_count: 1,
            edge_count: edges,
            cone_count: cones,
            health_count: 0,
            lost: vec![],
            late_events: 0,
            capture_mode: CaptureMode::Thin,
            cone_lib_version: 1,
            window_root: [0; 32],
            state: None,
        }
    }

    fn atom(seq: u64, t_ns: i64) -> EventAtom {
        EventAtom {
            seq,
            t_ns,
            event_type: EventType::Open,
            actor: [1; 16],
            object: [2; 16],
            flags: atom_flags::READ,
            arg_hash: None,
            payload_ref: None,
            given: Vec::new(),
        }
    }

    fn edge(src: u8, dst: u8) -> Edge {
        Edge {
            kind: EdgeKind::ProcToFile,
            src: [src; 16],
            dst: [dst; 16],
            flags: 0,
            first_t_ns: 0,
            last_t_ns: 0,
            count: 1,
        }
    }

    #[test]
    fn buckets_use_true_time_and_leaf_spans() {
        let hour = 500_000;
        let w0 = hour * 3600;
        let mut b = HourIndexBuilder::new("n", 1_000_000_000, hour, 300);
        // Window 0: two events in second 0; window 1: one event in second 1 and a
        // late one that happened in second 0.
        let atoms0 = [atom(0, 10), atom(1, 20)];
        b.push_window(IndexedWindow {
            record: &record(w0, 2, 0, 0),
            atoms: &atoms0,
            edges: &[],
            edge_leaves: &[],
            cones: &[],
            taint: &[],
        });
        let atoms1 = [atom(2, 5), atom(3, -400_000_000)];
        b.push_window(IndexedWindow {
            record: &record(w0 + 1, 2, 0, 0),
            atoms: &atoms1,
            edges: &[],
            edge_leaves: &[],
            cones: &[],
            taint: &[],
        });
        let (index, last) = b.finish();
        assert!(last.is_none());
        let t1 = &index.time[0];
        assert_eq!(t1.bucket_ns, 1_000_000_000);
        assert_eq!(t1.buckets.len(), 2);
        assert_eq!(t1.buckets[0].bucket, w0);
        assert_eq!(t1.buckets[0].events, 3);
        assert_eq!(
            t1.buckets[0].spans,
            vec![
                LeafSpan {
                    window_index: 0,
                    first_leaf: 3,
                    last_leaf: 4
                },
                LeafSpan {
                    window_index: 1,
                    first_leaf: 4,
                    last_leaf: 4
                },
            ]
        );
        assert_eq!(t1.buckets[1].events, 1);
        let t60 = &index.time[2];
        assert_eq!(t60.buckets.len(), 1);
        assert_eq!(t60.buckets[0].events, 4);
        for t in &index.time {
            assert_eq!(TimeIndex::decode(&t.encode()).unwrap(), *t);
        }
    }

    #[test]
    fn edges_fill_parts_of_ten_thousand_and_refs_name_windows() {
        let mut b = HourIndexBuilder::new("n", 1_000_000_000, 0, 300);
        let edges: Vec<Edge> = (0..6000u32)
            .map(|i| edge((i / 200) as u8, (i % 200) as u8))
            .collect();
        let leaves: Vec<Vec<u8>> = edges.iter().map(Record::encode).collect();
        let cone = ConeInstance {
            cone_id: "exec_from_tmp".into(),
            cone_version: 1,
            t_start_ns: 0,
            first_seq: 1,
            last_seq: 1,
            count: 1,
            bindings: vec![],
            exceptions: vec![],
        };
        let mut parts = Vec::new();
        for w in 0..3u64 {
            let closed = b.push_window(IndexedWindow {
                record: &record(w, 0, 6000, 1),
                atoms: &[],
                edges: &edges,
                edge_leaves: &leaves,
                cones: std::slice::from_ref(&cone),
                taint: &[
                    ([1; 16], [(w + 3) as u8; 16], true),
                    ([1; 16], [2; 16], w == 0),
                ],
            });
            assert!(closed.edge_refs.is_none());
            parts.extend(closed.edges);
        }
        assert_eq!(parts.len(), 1);
        assert_eq!(parts[0].edges.len(), EDGES_PER_PART);
        assert_eq!(parts[0].edges[5999].0, 0);
        assert_eq!((parts[0].edges[6000].0, parts[0].edges[6000].1), (1, 3));
        let (index, last) = b.finish();
        let last = last.unwrap();
        assert_eq!((last.part, last.edges.len()), (1, 8000));
        assert_eq!(
            index.cone_refs.cones,
            vec![(
                "exec_from_tmp".to_string(),
                vec![(0, 6003), (1, 6003), (2, 6003)]
            )]
        );
        assert_eq!(index.edge_refs.part, 0);
        assert_eq!(index.edge_refs.entities.len(), 200);
        assert!(index
            .edge_refs
            .entities
            .iter()
            .all(|(_, w)| *w == vec![0, 1, 2]));
        assert_eq!(
            ConeRefs::decode(&index.cone_refs.encode()).unwrap(),
            index.cone_refs
        );
        assert_eq!(
            EdgeRefs::decode(&index.edge_refs.encode()).unwrap(),
            index.edge_refs
        );
        // Packed against each window's ids: groups of at most 1000 consecutive edges of
        // one window, which unpack to the edges' leaves.
        let mut ids = PartIds::default();
        for w in 0..3 {
            ids.add(w, 6000, || IdIndex::of_leaves(&leaves).unwrap());
        }
        let packed = ids.pack(&parts[0]).unwrap();
        assert_eq!(EdgePart::decode(&packed.encode()).unwrap(), packed);
        let sizes: Vec<(u64, u64, u32)> = packed
            .groups
            .iter()
            .map(|g| (g.window, g.first_leaf, g.count))
            .collect();
        assert_eq!(
            sizes[5..8],
            [(0, 5003, 1000), (1, 3, 1000), (1, 1003, 1000)]
        );
        assert_eq!(sizes.len(), 10);
        let table = IdIndex::of_leaves(&leaves).unwrap().table(1);
        assert_eq!(
            packed.groups[6].unpack(&table, None).unwrap(),
            leaves[..1000]
        );
        // Window 0 is forgotten, window 1 (in the next part too) kept.
        assert!(ids.pack(&parts[0]).is_err());
        // Taint changes in window order, then by seed and entity.
        let t = &index.taint.changes;
        assert_eq!(t.len(), 6);
        assert_eq!(
            (t[0].window_index, t[0].entity, t[0].enters),
            (0, [2; 16], true)
        );
        assert_eq!(
            (t[2].window_index, t[2].entity, t[2].enters),
            (1, [2; 16], false)
        );
        assert_eq!(
            TaintIndex::decode(&index.taint.encode()).unwrap(),
            index.taint
        );
    }

    #[test]
    fn entities_sharing_a_key_share_an_entry() {
        let mut b = HourIndexBuilder::new("n", 1_000_000_000, 0, 300);
        let (a, mut a2) = ([7u8; 16], [7u8; 16]);
        a2[15] = 8;
        for (w, src) in [(0u64, a), (2, a2)] {
            let edges = [Edge { src, ..edge(1, 1) }];
            b.push_window(IndexedWindow {
                record: &record(w, 0, 1, 0),
                atoms: &[],
                edges: &edges,
                edge_leaves: &[vec![0]],
                cones: &[],
                taint: &[],
            });
        }
        let (index, _) = b.finish();
        assert_eq!(
            index.edge_refs.entities,
            vec![(0x0101_0101, vec![0, 2]), (0x0707_0707, vec![0, 2])]
        );
    }

    #[test]
    fn edge_refs_close_a_part_after_the_window_that_fills_it() {
        let hour = 500_000;
        let mut b = HourIndexBuilder::new("n", 1_000_000_000, hour, 300);
        // Ids with keys of their own (the first 4 bytes).
        let id = |n: u64| {
            let mut v = [0u8; 16];
            v[..4].copy_from_slice(&(n as u32).to_be_bytes());
            v[8..].copy_from_slice(&n.to_be_bytes());
            v
        };
        // 600 000 edges per window, each with its own source and one shared target:
        // 600 001 pairs a window, so windows 0 and 1 fill part 0 and window 2 is left.
        let n = 600_000u64;
        let leaves = vec![vec![0u8]; n as usize];
        let mut closed_at = Vec::new();
        for w in 0..3u64 {
            let edges: Vec<Edge> = (0..n)
                .map(|i| Edge {
                    src: id(w * n + i + 1),
                    dst: id(0),
                    ..edge(0, 0)
                })
                .collect();
            let closed = b.push_window(IndexedWindow {
                record: &record(hour * 3600 + w, 0, n, 0),
                atoms: &[],
                edges: &edges,
                edge_leaves: &leaves,
                cones: &[],
                taint: &[],
            });
            if let Some(part) = closed.edge_refs {
                closed_at.push((w, part));
            }
        }
        assert_eq!(closed_at.len(), 1);
        let (w, part0) = &closed_at[0];
        assert_eq!(
            (*w, part0.part, part0.entities.len()),
            (1, 0, 2 * n as usize + 1)
        );
        assert_eq!(part0.entities[0], (EdgeRefs::key_of(&id(0)), vec![0, 1]));
        assert_eq!(EdgeRefs::decode(&part0.encode()).unwrap(), *part0);
        let (index, _) = b.finish();
        let last = &index.edge_refs;
        assert_eq!((last.part, last.entities.len()), (1, n as usize + 1));
        assert_eq!(last.entities[0], (EdgeRefs::key_of(&id(0)), vec![2]));
        assert!(last.entities[1..].iter().all(|(_, w)| *w == vec![2]));
        let stems: Vec<String> = index.files().into_iter().map(|(s, _)| s).collect();
        assert!(stems.contains(&"edge_refs.p0001".to_owned()), "{stems:?}");
    }
}
