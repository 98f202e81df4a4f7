//! A window's leaves as stored: an id table and blocks packed by column (FORMAT.md §8.2).
//!
//! The leaves are what is hashed; this is only how they are laid out before zstd. Every
//! 16-byte string (actor, dictionary and edge ids) becomes a reference into the window's
//! [`IdTable`], and each field of each record type becomes a column of its own, integers
//! delta-coded, so zstd sees runs of like values instead of interleaved random ids. The
//! packing is a function of the leaves, and unpacking is strict: only the packing of some
//! leaves unpacks, so a block has exactly one stored form.

use crate::cbor::{DecodeError, DecodeErrorKind, Decoder, Encoder, Item};
use crate::records::{invalid, Record, MAX_BLOCK_RECORDS, MAX_EVENT_RECORD_LEN};
use std::collections::HashMap;

/// Token kinds of a column (FORMAT.md §8.2).
const K_INT: u8 = 0;
const K_ID: u8 = 1;
const K_BYTES: u8 = 2;
const K_TEXT: u8 = 3;
const K_ARRAY: u8 = 4;
const K_FALSE: u8 = 5;
const K_TRUE: u8 = 6;
const K_NULL: u8 = 7;

/// Most elements of a leaf's top-level array.
const MAX_LEAF_FIELDS: u64 = 64;

/// Columns whose top-level integers are coded against another element of the same leaf
/// rather than the column's previous value: (record type, position, base position), at
/// most one per record type. An edge's last time is mostly its first (one event), so it
/// costs nothing.
const SAME_LEAF_BASES: [(u64, u64, u64); 1] = [(4, 7, 6)];

/// A leaf's same-leaf base (FORMAT.md §8.2): which element is coded against which, and the
/// base element's value once seen.
struct SameLeafBase {
    rule: Option<(u64, u64)>,
    value: Option<i128>,
}

impl SameLeafBase {
    fn of_type(t: u64) -> Self {
        SameLeafBase {
            rule: SAME_LEAF_BASES
                .iter()
                .find(|(x, _, _)| *x == t)
                .map(|&(_, p, q)| (p, q)),
            value: None,
        }
    }

    /// The base of element `p`'s top-level integer, `prev` unless a rule says otherwise.
    fn base(&self, p: u64, prev: i128) -> i128 {
        match (self.rule, self.value) {
            (Some((target, _)), Some(v)) if target == p => v,
            _ => prev,
        }
    }

    /// Element `p` of the leaf is the integer `v`.
    fn saw(&mut self, p: u64, v: i128) {
        if self.rule.is_some_and(|(_, source)| source == p) {
            self.value = Some(v);
        }
    }
}

/// A window's distinct 16-byte strings in order of first appearance.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IdTable {
    pub window: u64,
    pub ids: Vec<[u8; 16]>,
}

/// Most ids one window's table holds.
pub const MAX_WINDOW_IDS: usize = 4 << 20;

impl Record for IdTable {
    const TYPE: u64 = 26;
    const VERSION: u64 = 1;
    const NAME: &'static str = "IdTable";
    const FIELDS: u64 = 4;
    const MAX_LEN: usize = MAX_WINDOW_IDS * 16 + 32;

    fn encode_fields(&self, e: &mut Encoder) {
        e.uint(self.window).bytes(self.ids.as_flattened());
    }

    fn decode_fields(d: &mut Decoder<'_>) -> Result<Self, DecodeError> {
        let window = d.uint("window")?;
        let bytes = d.bytes("ids", (MAX_WINDOW_IDS * 16) as u64)?;
        if bytes.len() % 16 != 0 {
            return Err(invalid(d, "ids", "not a whole number of 16-byte ids"));
        }
        let ids: Vec<[u8; 16]> = bytes
            .chunks_exact(16)
            .map(|c| c.try_into().expect("16 bytes"))
            .collect();
        let mut seen = std::collections::HashSet::with_capacity(ids.len());
        if !ids.iter().all(|id| seen.insert(id)) {
            return Err(invalid(d, "ids", "an id is listed twice"));
        }
        Ok(IdTable { window, ids })
    }
}

/// The ids of a window being packed, each with its place in the table. The map is
/// std's keyed hash: a 16-byte string may be a path the host's users chose, not a hash.
#[derive(Default)]
pub struct IdIndex {
    places: HashMap<[u8; 16], u32>,
    ids: Vec<[u8; 16]>,
}

impl IdIndex {
    /// Lists every 16-byte string of `leaves` the first time it appears: the table their
    /// packing, block by block, builds.
    pub fn of_leaves<R: AsRef<[u8]>>(leaves: &[R]) -> Result<Self, DecodeError> {
        let mut index = IdIndex::default();
        for chunk in leaves.chunks(MAX_BLOCK_RECORDS) {
            PackedBlock::pack_growing(0, 0, 0, chunk, &mut index)?;
        }
        Ok(index)
    }

    /// The index of a stored table.
    pub fn from_table(table: &IdTable) -> Self {
        IdIndex {
            places: table
                .ids
                .iter()
                .enumerate()
                .map(|(i, id)| (*id, i as u32))
                .collect(),
            ids: table.ids.clone(),
        }
    }

    pub fn table(&self, window: u64) -> IdTable {
        IdTable {
            window,
            ids: self.ids.clone(),
        }
    }
}

/// One column: the tokens of one element of one record type, in leaf order.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Column {
    pub record_type: u64,
    pub position: u64,
    /// One byte per token, its kind.
    pub kinds: Vec<u8>,
    /// Integers (zigzag deltas), lengths and id references, unsigned LEB128 each.
    pub nums: Vec<u8>,
    /// The content of byte and text strings.
    pub payload: Vec<u8>,
}

/// A block as stored (type 12, version 2): up to 1000 leaves packed by column.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PackedBlock {
    pub window: u64,
    pub index: u32,
    pub first_leaf: u64,
    pub count: u32,
    /// Each leaf's record type, unsigned LEB128.
    pub types: Vec<u8>,
    /// Strictly ascending by (record type, position); none empty.
    pub columns: Vec<Column>,
}

/// Largest stored form of a block: a leaf's token costs at most 11 bytes per CBOR byte.
const MAX_PACKED_LEN: usize = MAX_BLOCK_RECORDS * (MAX_EVENT_RECORD_LEN * 11 + 16) + 64;

impl Record for PackedBlock {
    const TYPE: u64 = 12;
    const VERSION: u64 = 2;
    const NAME: &'static str = "Block";
    const FIELDS: u64 = 8;
    const MAX_LEN: usize = MAX_PACKED_LEN;

    fn encode_fields(&self, e: &mut Encoder) {
        e.uint(self.window)
            .uint(self.index as u64)
            .uint(self.first_leaf)
            .uint(self.count as u64)
            .bytes(&self.types)
            .array(self.columns.len() as u64);
        for c in &self.columns {
            e.array(5)
                .uint(c.record_type)
                .uint(c.position)
                .bytes(&c.kinds)
                .bytes(&c.nums)
                .bytes(&c.payload);
        }
    }

    fn decode_fields(d: &mut Decoder<'_>) -> Result<Self, DecodeError> {
        let max = MAX_PACKED_LEN as u64;
        let window = d.uint("window")?;
        let index = d.u32("index")?;
        let first_leaf = d.uint("first_leaf")?;
        let count = d.uint_max("count", MAX_BLOCK_RECORDS as u64)? as u32;
        if count == 0 {
            return Err(invalid(d, "count", "a block holds at least one leaf"));
        }
        let types = d.bytes("types", max)?.to_vec();
        let n = d.array("columns", max)?;
        let mut columns: Vec<Column> = Vec::new();
        for _ in 0..n {
            d.array_exact("columns", 5)?;
            let c = Column {
                record_type: d.uint("record_type")?,
                position: d.uint_max("position", MAX_LEAF_FIELDS - 1)?,
                kinds: d.bytes("kinds", max)?.to_vec(),
                nums: d.bytes("nums", max)?.to_vec(),
                payload: d.bytes("payload", max)?.to_vec(),
            };
            if c.kinds.is_empty() {
                return Err(invalid(d, "kinds", "a column without tokens"));
            }
            if let Some(p) = columns.last() {
                if (p.record_type, p.position) >= (c.record_type, c.position) {
                    let kind = DecodeErrorKind::NotAscending;
                    return Err(d.error("columns", kind));
                }
            }
            columns.push(c);
        }
        Ok(PackedBlock {
            window,
            index,
            first_leaf,
            count,
            types,
            columns,
        })
    }
}

fn leb(out: &mut Vec<u8>, mut v: u128) {
    loop {
        let b = (v & 0x7f) as u8;
        v >>= 7;
        if v == 0 {
            out.push(b);
            return;
        }
        out.push(b | 0x80);
    }
}

fn zigzag(v: i128) -> u128 {
    ((v << 1) ^ (v >> 127)) as u128
}

fn unzigzag(z: u128) -> i128 {
    ((z >> 1) as i128) ^ -((z & 1) as i128)
}

/// Smallest and largest integer CBOR holds.
const INT_MIN: i128 = -(1 << 64);
const INT_MAX: i128 = (1 << 64) - 1;

/// A column being filled, with the previous integer its deltas start from.
#[derive(Default)]
struct ColumnBuilder {
    column: Column,
    prev: i128,
}

impl PackedBlock {
    /// Packs `leaves` (deterministic CBOR records, each an array whose first element is
    /// its type) with the window's `ids`, which must list every id they hold.
    pub fn pack<R: AsRef<[u8]>>(
        window: u64,
        index: u32,
        first_leaf: u64,
        leaves: &[R],
        ids: &IdIndex,
    ) -> Result<Self, DecodeError> {
        Self::pack_with(window, index, first_leaf, leaves, |id| {
            ids.places.get(id).copied()
        })
    }

    /// Packs a window's blocks in order while listing its ids: an id not yet in `ids`
    /// is added at the end, which is where [`IdIndex::of_leaves`] would have put it, so
    /// after the last block `ids` is the window's table (one pass instead of two).
    pub fn pack_growing<R: AsRef<[u8]>>(
        window: u64,
        index: u32,
        first_leaf: u64,
        leaves: &[R],
        ids: &mut IdIndex,
    ) -> Result<Self, DecodeError> {
        let packed = Self::pack_with(window, index, first_leaf, leaves, |id| {
            let next = ids.ids.len() as u32;
            Some(*ids.places.entry(*id).or_insert_with(|| {
                ids.ids.push(*id);
                next
            }))
        })?;
        if ids.ids.len() > MAX_WINDOW_IDS {
            return Err(block_error(
                "(ids)",
                0,
                DecodeErrorKind::TooLong {
                    max: MAX_WINDOW_IDS as u64,
                    found: ids.ids.len() as u64,
                },
            ));
        }
        Ok(packed)
    }

    fn pack_with<R: AsRef<[u8]>>(
        window: u64,
        index: u32,
        first_leaf: u64,
        leaves: &[R],
        mut place: impl FnMut(&[u8; 16]) -> Option<u32>,
    ) -> Result<Self, DecodeError> {
        let mut types = Vec::with_capacity(leaves.len());
        // By record type: columns by position.
        let mut by_type: Vec<(u64, Vec<ColumnBuilder>)> = Vec::new();
        for leaf in leaves {
            let mut d = Decoder::new(leaf.as_ref(), "leaf");
            let n = d.array("(record)", MAX_LEAF_FIELDS)?;
            if n == 0 {
                return Err(invalid(&d, "(record)", "a leaf is a non-empty array"));
            }
            let t = d.uint("type")?;
            leb(&mut types, t as u128);
            let slot = match by_type.iter().position(|(x, _)| *x == t) {
                Some(s) => s,
                None => {
                    by_type.push((t, Vec::new()));
                    by_type.len() - 1
                }
            };
            let cols = &mut by_type[slot].1;
            while cols.len() < n as usize {
                cols.push(ColumnBuilder::default());
            }
            let c = &mut cols[0].column;
            c.kinds.push(K_ARRAY);
            leb(&mut c.nums, n as u128);
            let mut same_leaf = SameLeafBase::of_type(t);
            for p in 1..n {
                let b = &mut cols[p as usize];
                let mut pending = 1u64;
                let mut top = true;
                while pending > 0 {
                    pending -= 1;
                    let item = d.item("(item)")?;
                    let c = &mut b.column;
                    match item {
                        Item::Uint(_) | Item::Nint(_) => {
                            let v = match item {
                                Item::Uint(v) => v as i128,
                                Item::Nint(v) => -1 - v as i128,
                                _ => unreachable!(),
                            };
                            c.kinds.push(K_INT);
                            let base = match top {
                                true => same_leaf.base(p, b.prev),
                                false => b.prev,
                            };
                            leb(&mut c.nums, zigzag(v - base));
                            b.prev = v;
                            if top {
                                same_leaf.saw(p, v);
                            }
                        }
                        Item::Bytes(s) if s.len() == 16 => {
                            let id: [u8; 16] = s.try_into().expect("16 bytes");
                            let Some(r) = place(&id) else {
                                return Err(invalid(&d, "(item)", "an id missing from the table"));
                            };
                            c.kinds.push(K_ID);
                            leb(&mut c.nums, r as u128);
                        }
                        Item::Bytes(s) | Item::Text(s) => {
                            c.kinds.push(if matches!(item, Item::Text(_)) {
                                K_TEXT
                            } else {
                                K_BYTES
                            });
                            leb(&mut c.nums, s.len() as u128);
                            c.payload.extend_from_slice(s);
                        }
                        Item::Array(m) => {
                            c.kinds.push(K_ARRAY);
                            leb(&mut c.nums, m as u128);
                            pending = pending.saturating_add(m);
                        }
                        Item::Bool(false) => c.kinds.push(K_FALSE),
                        Item::Bool(true) => c.kinds.push(K_TRUE),
                        Item::Null => c.kinds.push(K_NULL),
                    }
                    top = false;
                }
            }
            d.finish()?;
        }
        let mut columns = Vec::new();
        by_type.sort_by_key(|(t, _)| *t);
        for (t, cols) in by_type {
            for (p, b) in cols.into_iter().enumerate() {
                if !b.column.kinds.is_empty() {
                    columns.push(Column {
                        record_type: t,
                        position: p as u64,
                        ..b.column
                    });
                }
            }
        }
        Ok(PackedBlock {
            window,
            index,
            first_leaf,
            count: leaves.len() as u32,
            types,
            columns,
        })
    }

    /// The leaves, exactly as hashed. `ids` is the window's table; `first_use`, when the
    /// blocks are read in order from the first, is the number of table entries the
    /// blocks before used, and each entry must be first used in table order.
    pub fn unpack(
        &self,
        ids: &IdTable,
        mut first_use: Option<&mut usize>,
    ) -> Result<Vec<Vec<u8>>, DecodeError> {
        let mut cursors: Vec<Cursor<'_>> = self.columns.iter().map(Cursor::new).collect();
        let mut types = Stream::new(&self.types, "types");
        let mut leaves = Vec::with_capacity(self.count as usize);
        let mut buf = Vec::new();
        // The columns of the last leaf's type: a type's columns are its positions from 0,
        // consecutive in the sorted list.
        let mut last_type: Option<(u64, usize)> = None;
        for _ in 0..self.count {
            let t = types.leb()?;
            let t = u64::try_from(t)
                .map_err(|_| types.error(DecodeErrorKind::OutOfRange { value: t as i128 }))?;
            let start = match last_type {
                Some((lt, start)) if lt == t => start,
                _ => {
                    let Ok(start) = self
                        .columns
                        .binary_search_by_key(&(t, 0), |c| (c.record_type, c.position))
                    else {
                        return Err(
                            types.error(DecodeErrorKind::Invalid("a leaf's type has no column 0"))
                        );
                    };
                    last_type = Some((t, start));
                    start
                }
            };
            let find = |p: u64| {
                let i = start + p as usize;
                self.columns
                    .get(i)
                    .filter(|c| (c.record_type, c.position) == (t, p))
                    .map(|_| i)
            };
            let c0 = start;
            let n = match cursors[c0].kind()? {
                K_ARRAY => cursors[c0].nums.leb_u64()?,
                _ => {
                    return Err(cursors[c0]
                        .error(DecodeErrorKind::Invalid("column 0 holds a leaf's array")))
                }
            };
            if n == 0 || n > MAX_LEAF_FIELDS {
                return Err(cursors[c0].error(DecodeErrorKind::OutOfRange { value: n as i128 }));
            }
            buf.clear();
            let mut e = Encoder::with_buffer(std::mem::take(&mut buf));
            e.array(n).uint(t);
            let mut same_leaf = SameLeafBase::of_type(t);
            for p in 1..n {
                let Some(ci) = find(p) else {
                    return Err(block_error(
                        "columns",
                        0,
                        DecodeErrorKind::Invalid("a leaf's element has no column"),
                    ));
                };
                let c = &mut cursors[ci];
                let mut pending = 1u64;
                let mut top = true;
                while pending > 0 {
                    pending -= 1;
                    if e.as_bytes().len() > MAX_EVENT_RECORD_LEN {
                        return Err(c.error(DecodeErrorKind::TooLong {
                            max: MAX_EVENT_RECORD_LEN as u64,
                            found: e.as_bytes().len() as u64,
                        }));
                    }
                    match c.kind()? {
                        K_INT => {
                            let z = c.nums.leb()?;
                            let base = match top {
                                true => same_leaf.base(p, c.prev),
                                false => c.prev,
                            };
                            let v = base
                                .checked_add(unzigzag(z))
                                .filter(|v| (INT_MIN..=INT_MAX).contains(v));
                            let Some(v) = v else {
                                return Err(c.nums.error(DecodeErrorKind::Invalid(
                                    "an integer outside CBOR's range",
                                )));
                            };
                            if v >= 0 {
                                e.uint(v as u64);
                            } else {
                                e.nint((-1 - v) as u64);
                            }
                            c.prev = v;
                            if top {
                                same_leaf.saw(p, v);
                            }
                        }
                        K_ID => {
                            let r = c.nums.leb_u64()?;
                            let Some(id) = ids.ids.get(r as usize) else {
                                return Err(c.nums.error(DecodeErrorKind::Invalid(
                                    "a reference past the id table",
                                )));
                            };
                            if let Some(used) = first_use.as_deref_mut() {
                                if r as usize == *used {
                                    *used += 1;
                                } else if r as usize > *used {
                                    return Err(c.nums.error(DecodeErrorKind::Invalid(
                                        "an id first used out of table order",
                                    )));
                                }
                            }
                            e.bytes(id);
                        }
                        k @ (K_BYTES | K_TEXT) => {
                            let len = c.nums.leb_u64()?;
                            if k == K_BYTES && len == 16 {
                                return Err(c.nums.error(DecodeErrorKind::Invalid(
                                    "a 16-byte string outside the id table",
                                )));
                            }
                            let s = c.payload.take(len)?;
                            if k == K_BYTES {
                                e.bytes(s);
                            } else {
                                e.text_bytes(s);
                            }
                        }
                        K_ARRAY => {
                            let m = c.nums.leb_u64()?;
                            if m > MAX_EVENT_RECORD_LEN as u64 {
                                return Err(c
                                    .nums
                                    .error(DecodeErrorKind::OutOfRange { value: m as i128 }));
                            }
                            e.array(m);
                            pending += m;
                        }
                        K_FALSE => {
                            e.bool(false);
                        }
                        K_TRUE => {
                            e.bool(true);
                        }
                        K_NULL => {
                            e.null();
                        }
                        k => {
                            return Err(c.error(DecodeErrorKind::UnknownValue { value: k as u64 }));
                        }
                    }
                    top = false;
                }
            }
            buf = e.into_bytes();
            if buf.len() > MAX_EVENT_RECORD_LEN {
                return Err(block_error(
                    "(leaf)",
                    leaves.len(),
                    DecodeErrorKind::TooLong {
                        max: MAX_EVENT_RECORD_LEN as u64,
                        found: buf.len() as u64,
                    },
                ));
            }
            leaves.push(buf.as_slice().to_vec());
        }
        types.finish()?;
        for c in &cursors {
            c.finish()?;
        }
        Ok(leaves)
    }
}

impl PackedBlock {
    /// The packing of the leaves this block unpacks to with `table`: equal to the block
    /// for every block that unpacks (the packing is canonical; fuzzing checks it).
    pub fn repacked(&self, table: &IdTable) -> Result<PackedBlock, DecodeError> {
        let leaves = self.unpack(table, None)?;
        PackedBlock::pack(
            self.window,
            self.index,
            self.first_leaf,
            &leaves,
            &IdIndex::from_table(table),
        )
    }
}

fn block_error(field: &'static str, offset: usize, kind: DecodeErrorKind) -> DecodeError {
    DecodeError {
        record: "Block",
        field,
        offset,
        kind,
    }
}

/// A byte stream of a column, read strictly.
struct Stream<'a> {
    bytes: &'a [u8],
    at: usize,
    field: &'static str,
}

impl<'a> Stream<'a> {
    fn new(bytes: &'a [u8], field: &'static str) -> Self {
        Stream {
            bytes,
            at: 0,
            field,
        }
    }

    fn error(&self, kind: DecodeErrorKind) -> DecodeError {
        block_error(self.field, self.at, kind)
    }

    /// An unsigned LEB128 of at most 10 bytes (70 bits), in its shortest form.
    fn leb(&mut self) -> Result<u128, DecodeError> {
        // Most values are one byte.
        if let Some(&b) = self.bytes.get(self.at) {
            if b < 0x80 {
                self.at += 1;
                return Ok(b as u128);
            }
        }
        let mut v = 0u128;
        for i in 0..10 {
            let Some(&b) = self.bytes.get(self.at) else {
                return Err(self.error(DecodeErrorKind::Truncated));
            };
            self.at += 1;
            v |= ((b & 0x7f) as u128) << (7 * i);
            if b & 0x80 == 0 {
                if b == 0 && i > 0 {
                    return Err(self.error(DecodeErrorKind::NonShortest));
                }
                return Ok(v);
            }
        }
        Err(self.error(DecodeErrorKind::OutOfRange { value: v as i128 }))
    }

    fn leb_u64(&mut self) -> Result<u64, DecodeError> {
        let v = self.leb()?;
        u64::try_from(v).map_err(|_| self.error(DecodeErrorKind::OutOfRange { value: v as i128 }))
    }

    fn take(&mut self, len: u64) -> Result<&'a [u8], DecodeError> {
        let rest = (self.bytes.len() - self.at) as u64;
        if len > rest {
            return Err(self.error(DecodeErrorKind::Truncated));
        }
        let s = &self.bytes[self.at..self.at + len as usize];
        self.at += len as usize;
        Ok(s)
    }

    fn finish(&self) -> Result<(), DecodeError> {
        let rest = self.bytes.len() - self.at;
        if rest != 0 {
            return Err(self.error(DecodeErrorKind::TrailingBytes { count: rest }));
        }
        Ok(())
    }
}

/// A column being read.
struct Cursor<'a> {
    kinds: Stream<'a>,
    nums: Stream<'a>,
    payload: Stream<'a>,
    prev: i128,
}

impl<'a> Cursor<'a> {
    fn new(c: &'a Column) -> Self {
        Cursor {
            kinds: Stream::new(&c.kinds, "kinds"),
            nums: Stream::new(&c.nums, "nums"),
            payload: Stream::new(&c.payload, "payload"),
            prev: 0,
        }
    }

    fn error(&self, kind: DecodeErrorKind) -> DecodeError {
        self.kinds.error(kind)
    }

    fn kind(&mut self) -> Result<u8, DecodeError> {
        let k = &mut self.kinds;
        match k.bytes.get(k.at) {
            Some(&b) => {
                k.at += 1;
                Ok(b)
            }
            None => Err(k.error(DecodeErrorKind::Truncated)),
        }
    }

    fn finish(&self) -> Result<(), DecodeError> {
        self.kinds.finish()?;
        self.nums.finish()?;
        self.payload.finish()
    }
}
