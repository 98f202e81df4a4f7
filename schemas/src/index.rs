//! The per-hour index files and graph edge parts of a store (FORMAT.md §8.3–8.4).
//!
//! They are derived data: everything in them follows from the hour's sealed blocks,
//! and `ritma verify` rebuilds them and compares byte for byte. They exist so a
//! query can find the windows and leaves it needs without reading every block.

use crate::cbor::{DecodeError, DecodeErrorKind, Decoder, Encoder};
use crate::packed::{IdIndex, PackedBlock};
use crate::records::{invalid, node_name, Record, MAX_BLOCK_RECORDS, MAX_CONE_NAME_LEN};
use crate::Id128;

/// Largest encoded index file (before compression).
pub const MAX_INDEX_LEN: usize = 256 << 20;
/// Edges per graph edge part: parts cut the hour's edges into runs of this many.
pub const EDGES_PER_PART: usize = 10_000;
/// An hour's edge refs go into a new part once this many (entity, window) pairs wait,
/// checked after each window: a window's refs are never split, and memory stays bounded.
pub const EDGE_REFS_PER_PART: usize = 1 << 20;
/// The bucket lengths of `t_1s`, `t_10s` and `t_60s`, with their file stems.
pub const TIME_BUCKETS: [(&str, u64); 3] = [
    ("t_1s", 1_000_000_000),
    ("t_10s", 10_000_000_000),
    ("t_60s", 60_000_000_000),
];

const MAX_ENTRIES: u64 = 1 << 24;

/// Leaves `first_leaf..=last_leaf` of window `window_index` of the hour.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct LeafSpan {
    pub window_index: u64,
    pub first_leaf: u64,
    pub last_leaf: u64,
}

/// The events of one time bucket: how many, and the leaf spans that hold them.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct TimeBucket {
    /// floor(event wall time ns / bucket_ns): absolute, so a late event sealed in
    /// this hour may name a bucket of the hour before.
    pub bucket: u64,
    pub events: u64,
    /// Strictly ascending by window index; each span covers every event of the
    /// bucket in that window (and possibly others between them).
    pub spans: Vec<LeafSpan>,
}

/// `index/t_1s|t_10s|t_60s.cbor.zst`: where the events of each time bucket are.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct TimeIndex {
    pub node: String,
    pub hour: u64,
    pub bucket_ns: u64,
    /// Strictly ascending by bucket.
    pub buckets: Vec<TimeBucket>,
}

impl Record for TimeIndex {
    const TYPE: u64 = 14;
    const VERSION: u64 = 1;
    const NAME: &'static str = "TimeIndex";
    const FIELDS: u64 = 6;
    const MAX_LEN: usize = MAX_INDEX_LEN;

    fn encode_fields(&self, e: &mut Encoder) {
        e.text(&self.node)
            .uint(self.hour)
            .uint(self.bucket_ns)
            .array(self.buckets.len() as u64);
        for b in &self.buckets {
            e.array(3)
                .uint(b.bucket)
                .uint(b.events)
                .array(b.spans.len() as u64);
            for s in &b.spans {
                e.array(3)
                    .uint(s.window_index)
                    .uint(s.first_leaf)
                    .uint(s.last_leaf);
            }
        }
    }

    fn decode_fields(d: &mut Decoder<'_>) -> Result<Self, DecodeError> {
        let node = node_name(d)?;
        let hour = d.uint("hour")?;
        let bucket_ns = d.uint("bucket_ns")?;
        if !TIME_BUCKETS.iter().any(|(_, len)| *len == bucket_ns) {
            return Err(invalid(
                d,
                "bucket_ns",
                "bucket length is not 1 s, 10 s or 60 s",
            ));
        }
        let n = d.array("buckets", MAX_ENTRIES)?;
        let mut buckets: Vec<TimeBucket> = Vec::with_capacity(n.min(4096) as usize);
        for _ in 0..n {
            d.array_exact("buckets", 3)?;
            let bucket = d.uint("buckets.bucket")?;
            if buckets.last().is_some_and(|p| p.bucket >= bucket) {
                return Err(d.error("buckets.bucket", DecodeErrorKind::NotAscending));
            }
            let events = d.uint("buckets.events")?;
            if events == 0 {
                return Err(invalid(
                    d,
                    "buckets.events",
                    "a bucket holds at least one event",
                ));
            }
            let m = d.array("buckets.spans", MAX_ENTRIES)?;
            if m == 0 {
                return Err(invalid(
                    d,
                    "buckets.spans",
                    "a bucket has at least one span",
                ));
            }
            let mut spans: Vec<LeafSpan> = Vec::with_capacity(m.min(64) as usize);
            for _ in 0..m {
                d.array_exact("buckets.spans", 3)?;
                let window_index = d.uint("spans.window_index")?;
                if spans.last().is_some_and(|p| p.window_index >= window_index) {
                    return Err(d.error("spans.window_index", DecodeErrorKind::NotAscending));
                }
                let first_leaf = d.uint("spans.first_leaf")?;
                let last_leaf = d.uint("spans.last_leaf")?;
                if last_leaf < first_leaf {
                    return Err(invalid(d, "spans.last_leaf", "span ends before it starts"));
                }
                spans.push(LeafSpan {
                    window_index,
                    first_leaf,
                    last_leaf,
                });
            }
            buckets.push(TimeBucket {
                bucket,
                events,
                spans,
            });
        }
        Ok(TimeIndex {
            node,
            hour,
            bucket_ns,
            buckets,
        })
    }
}

/// `index/cone_refs.cbor.zst`: every cone instance of the hour, by cone.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ConeRefs {
    pub node: String,
    pub hour: u64,
    /// Strictly ascending by cone id bytes; each with its (window index, leaf)
    /// pairs, strictly ascending.
    pub cones: Vec<(String, Vec<(u64, u64)>)>,
}

impl Record for ConeRefs {
    const TYPE: u64 = 15;
    const VERSION: u64 = 1;
    const NAME: &'static str = "ConeRefs";
    const FIELDS: u64 = 5;
    const MAX_LEN: usize = MAX_INDEX_LEN;

    fn encode_fields(&self, e: &mut Encoder) {
        e.text(&self.node)
            .uint(self.hour)
            .array(self.cones.len() as u64);
        for (cone, refs) in &self.cones {
            e.array(2).text(cone).array(refs.len() as u64);
            for (w, leaf) in refs {
                e.array(2).uint(*w).uint(*leaf);
            }
        }
    }

    fn decode_fields(d: &mut Decoder<'_>) -> Result<Self, DecodeError> {
        let node = node_name(d)?;
        let hour = d.uint("hour")?;
        let n = d.array("cones", MAX_ENTRIES)?;
        let mut cones: Vec<(String, Vec<(u64, u64)>)> = Vec::with_capacity(n.min(64) as usize);
        for _ in 0..n {
            d.array_exact("cones", 2)?;
            let cone = d.text("cones.cone_id", MAX_CONE_NAME_LEN as u64)?;
            if cone.is_empty() {
                return Err(invalid(d, "cones.cone_id", "empty cone id"));
            }
            if cones
                .last()
                .is_some_and(|(p, _)| p.as_bytes() >= cone.as_bytes())
            {
                return Err(d.error("cones.cone_id", DecodeErrorKind::NotAscending));
            }
            let cone = cone.to_owned();
            let m = d.array("cones.refs", MAX_ENTRIES)?;
            if m == 0 {
                return Err(invalid(
                    d,
                    "cones.refs",
                    "a cone is listed with at least one instance",
                ));
            }
            let mut refs: Vec<(u64, u64)> = Vec::with_capacity(m.min(64) as usize);
            for _ in 0..m {
                d.array_exact("cones.refs", 2)?;
                let r = (d.uint("refs.window_index")?, d.uint("refs.leaf")?);
                if refs.last().is_some_and(|p| *p >= r) {
                    return Err(d.error("cones.refs", DecodeErrorKind::NotAscending));
                }
                refs.push(r);
            }
            cones.push((cone, refs));
        }
        Ok(ConeRefs { node, hour, cones })
    }
}

/// `index/edge_refs.pNNNN.cbor.zst`: for every graph node (actor, file, flow …) an edge
/// of the part's windows touches, those windows, keyed by the id's first 4 bytes (a lookup
/// reads the windows listed under its key and finds the edges there). Parts cover
/// consecutive runs of windows.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct EdgeRefs {
    pub node: String,
    pub hour: u64,
    pub part: u32,
    /// Strictly ascending by key; window indexes strictly ascending, at least one: the
    /// windows of every entity whose id starts with the key.
    pub entities: Vec<(u32, Vec<u64>)>,
}

impl EdgeRefs {
    /// The key an entity is listed under: its id's first 4 bytes, big-endian.
    pub fn key_of(id: &Id128) -> u32 {
        u32::from_be_bytes([id[0], id[1], id[2], id[3]])
    }
}

impl Record for EdgeRefs {
    const TYPE: u64 = 16;
    const VERSION: u64 = 2;
    const NAME: &'static str = "EdgeRefs";
    const FIELDS: u64 = 6;
    const MAX_LEN: usize = MAX_INDEX_LEN;

    fn encode_fields(&self, e: &mut Encoder) {
        e.text(&self.node)
            .uint(self.hour)
            .uint(self.part as u64)
            .array(self.entities.len() as u64);
        for (key, windows) in &self.entities {
            e.array(2).uint(*key as u64).array(windows.len() as u64);
            for w in windows {
                e.uint(*w);
            }
        }
    }

    fn decode_fields(d: &mut Decoder<'_>) -> Result<Self, DecodeError> {
        let node = node_name(d)?;
        let hour = d.uint("hour")?;
        let part = d.u32("part")?;
        let n = d.array("entities", MAX_ENTRIES)?;
        let mut entities: Vec<(u32, Vec<u64>)> = Vec::with_capacity(n.min(4096) as usize);
        for _ in 0..n {
            d.array_exact("entities", 2)?;
            let at = d.position();
            let key = d.u32("entities.key")?;
            if entities.last().is_some_and(|(p, _)| *p >= key) {
                return Err(d.error_at("entities.key", at, DecodeErrorKind::NotAscending));
            }
            let m = d.array("entities.windows", MAX_ENTRIES)?;
            if m == 0 {
                return Err(invalid(
                    d,
                    "entities.windows",
                    "an entity is listed with at least one window",
                ));
            }
            let mut windows: Vec<u64> = Vec::with_capacity(m.min(64) as usize);
            for _ in 0..m {
                let w = d.uint("entities.windows")?;
                if windows.last().is_some_and(|p| *p >= w) {
                    return Err(d.error("entities.windows", DecodeErrorKind::NotAscending));
                }
                windows.push(w);
            }
            entities.push((key, windows));
        }
        Ok(EdgeRefs {
            node,
            hour,
            part,
            entities,
        })
    }
}

/// One change of the taint relation: `entity` became (`enters`) or stopped being
/// reachable from `seed` at the start of window `window_index` of the hour.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
pub struct TaintEntry {
    pub window_index: u64,
    pub seed: Id128,
    pub entity: Id128,
    pub enters: bool,
}

/// `index/taint.cbor.zst`: how the taint relation (FORMAT.md §8.5) changed during the hour.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct TaintIndex {
    pub node: String,
    pub hour: u64,
    pub ttl_windows: u64,
    /// Strictly ascending by (window_index, seed, entity).
    pub changes: Vec<TaintEntry>,
}

impl Record for TaintIndex {
    const TYPE: u64 = 18;
    const VERSION: u64 = 1;
    const NAME: &'static str = "TaintIndex";
    const FIELDS: u64 = 6;
    const MAX_LEN: usize = MAX_INDEX_LEN;

    fn encode_fields(&self, e: &mut Encoder) {
        e.text(&self.node)
            .uint(self.hour)
            .uint(self.ttl_windows)
            .array(self.changes.len() as u64);
        for c in &self.changes {
            e.array(4)
                .uint(c.window_index)
                .bytes(&c.seed)
                .bytes(&c.entity)
                .bool(c.enters);
        }
    }

    fn decode_fields(d: &mut Decoder<'_>) -> Result<Self, DecodeError> {
        let node = node_name(d)?;
        let hour = d.uint("hour")?;
        let ttl_windows = d.uint("ttl_windows")?;
        if ttl_windows == 0 {
            return Err(invalid(d, "ttl_windows", "taint lives at least one window"));
        }
        let n = d.array("changes", MAX_ENTRIES)?;
        let mut changes: Vec<TaintEntry> = Vec::with_capacity(n.min(4096) as usize);
        for _ in 0..n {
            d.array_exact("changes", 4)?;
            let c = TaintEntry {
                window_index: d.uint("changes.window_index")?,
                seed: d.fixed("changes.seed")?,
                entity: d.fixed("changes.entity")?,
                enters: d.bool("changes.enters")?,
            };
            if c.seed == c.entity {
                return Err(invalid(d, "changes.entity", "a seed does not taint itself"));
            }
            if changes.last().is_some_and(|p| {
                (p.window_index, p.seed, p.entity) >= (c.window_index, c.seed, c.entity)
            }) {
                return Err(d.error("changes", DecodeErrorKind::NotAscending));
            }
            changes.push(c);
        }
        Ok(TaintIndex {
            node,
            hour,
            ttl_windows,
            changes,
        })
    }
}

/// A run of an hour's edges in window and leaf order, as the hour index builder cuts
/// them: what a graph edge part holds once unpacked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EdgeRun {
    pub node: String,
    pub hour: u64,
    /// Position of this part among the hour's parts, from 0.
    pub part: u32,
    /// (window, leaf index in the window, Edge leaf bytes); 1 to [`EDGES_PER_PART`],
    /// consecutive leaves within a window.
    pub edges: Vec<(u64, u64, Vec<u8>)>,
}

impl EdgeRun {
    /// The stored part: the run's edges of each window packed with that window's ids,
    /// 1000 at most a group. `ids(window)` is the window's id index.
    pub fn pack<'a>(
        &self,
        mut ids: impl FnMut(u64) -> Option<&'a IdIndex>,
    ) -> Result<EdgePart, DecodeError> {
        let mut groups: Vec<PackedBlock> = Vec::new();
        let mut i = 0;
        while i < self.edges.len() {
            let (window, first_leaf, _) = self.edges[i];
            let mut j = i + 1;
            while j < self.edges.len()
                && j - i < MAX_BLOCK_RECORDS
                && self.edges[j].0 == window
                && self.edges[j].1 == first_leaf + (j - i) as u64
            {
                j += 1;
            }
            let Some(table) = ids(window) else {
                return Err(DecodeError {
                    record: EdgePart::NAME,
                    field: "groups",
                    offset: 0,
                    kind: DecodeErrorKind::Invalid("no id table for a window of the part"),
                });
            };
            let leaves: Vec<&[u8]> = self.edges[i..j].iter().map(|(_, _, e)| &e[..]).collect();
            groups.push(PackedBlock::pack(
                window,
                groups.len() as u32,
                first_leaf,
                &leaves,
                table,
            )?);
            i = j;
        }
        Ok(EdgePart {
            node: self.node.clone(),
            hour: self.hour,
            part: self.part,
            groups,
        })
    }
}

/// `graph/edges/YYYY/MM/DD/HH/pNNNN.edges.cbor.zst`: a run of the hour's edges packed
/// against their windows' id tables (FORMAT.md §8.4). Each edge unpacks to exactly its
/// leaf bytes, so any edge here can be proven against its window's signed root.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EdgePart {
    pub node: String,
    pub hour: u64,
    /// Position of this part among the hour's parts, from 0.
    pub part: u32,
    /// Each a Block (§8.2) of consecutive edges of one window: `window` that window,
    /// `index` the group's position in the part, `first_leaf` its first edge's leaf.
    pub groups: Vec<PackedBlock>,
}

impl Record for EdgePart {
    const TYPE: u64 = 17;
    const VERSION: u64 = 2;
    const NAME: &'static str = "EdgePart";
    const FIELDS: u64 = 6;
    /// An Edge leaf is at most 84 bytes; packed, a token at most 11 bytes per byte.
    const MAX_LEN: usize = EDGES_PER_PART * 84 * 11 + 128;

    fn encode_fields(&self, e: &mut Encoder) {
        e.text(&self.node)
            .uint(self.hour)
            .uint(self.part as u64)
            .array(self.groups.len() as u64);
        for g in &self.groups {
            e.raw(&g.encode());
        }
    }

    fn decode_fields(d: &mut Decoder<'_>) -> Result<Self, DecodeError> {
        let node = node_name(d)?;
        let hour = d.uint("hour")?;
        let part = d.u32("part")?;
        let n = d.array("groups", EDGES_PER_PART as u64)?;
        if n == 0 {
            return Err(invalid(d, "groups", "a part holds at least one edge"));
        }
        let mut groups: Vec<PackedBlock> = Vec::with_capacity(n as usize);
        let mut edges = 0u64;
        for i in 0..n {
            let at = d.position();
            let g = PackedBlock::decode(d.item_bytes("groups")?).map_err(|e| DecodeError {
                offset: at + e.offset,
                ..e
            })?;
            let follows = match groups.last() {
                None => true,
                Some(p) if p.window == g.window => p.first_leaf + p.count as u64 == g.first_leaf,
                Some(p) => p.window < g.window,
            };
            if g.index as u64 != i || !follows {
                return Err(d.error_at("groups", at, DecodeErrorKind::NotAscending));
            }
            edges += g.count as u64;
            groups.push(g);
        }
        if edges > EDGES_PER_PART as u64 {
            return Err(invalid(d, "groups", "more edges than a part holds"));
        }
        Ok(EdgePart {
            node,
            hour,
            part,
            groups,
        })
    }
}
