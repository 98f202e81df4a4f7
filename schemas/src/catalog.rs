//! The daily catalog and accounting files of a store (FORMAT.md §8.11).
//!
//! Both are derived data: one entry per hour the store holds, summarising what the
//! hour's sealed windows contain (catalog) and what its files cost on disk
//! (accounting). `ritma verify` rebuilds every entry and requires it to be equal, so a
//! reader may trust them as far as it trusts a verified store, and an analyst can find
//! the interesting hour of a day without opening its windows.

use crate::cbor::{DecodeError, DecodeErrorKind, Decoder, Encoder};
use crate::records::{
    decode_lost, decode_seq_range, encode_lost, encode_seq_range, invalid, node_name, wire_enum,
    CaptureMode, EventType, LossReason, Record, MAX_CONE_NAME_LEN,
};

/// Largest encoded day file (before compression).
pub const MAX_DAY_LEN: usize = 16 << 20;
/// Most distinct cone ids one hour's catalog entry lists.
pub const MAX_CONES_PER_HOUR: usize = 4096;
/// Hours in a day: a day file has at most this many entries.
pub const HOURS_PER_DAY: u64 = 24;

wire_enum!(
    /// What state an hour is in, as the catalog records it.
    HourState {
        /// Its last window is not sealed yet: the tail hour a run stopped in.
        Open = 1,
        /// Its hour seal is written.
        Sealed = 2,
        /// Retention deleted its windows; its seal and deletion record remain.
        Deleted = 3,
    }
);

impl HourState {
    /// The state of an hour retention kept: sealed once its hour seal is written, else open.
    pub fn kept(sealed: bool) -> Self {
        match sealed {
            true => HourState::Sealed,
            false => HourState::Open,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            HourState::Open => "open",
            HourState::Sealed => "sealed",
            HourState::Deleted => "deleted",
        }
    }
}

/// What a kept (not deleted) hour's windows hold beyond the counts a deletion keeps.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct HourContents {
    /// Events that joined a window after their own closed.
    pub late_events: u64,
    /// The highest capture mode of the hour's windows.
    pub capture_mode: CaptureMode,
    /// Distinct actors among the hour's events.
    pub actors: u64,
    pub edges: u64,
    pub health: u64,
    /// Events per type, strictly ascending by type, counts > 0; they sum to the hour's events.
    pub event_types: Vec<(EventType, u64)>,
    /// ConeInstances per cone id, strictly ascending by id bytes, counts > 0.
    pub cones: Vec<(String, u64)>,
}

/// One hour of a day's catalog.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct CatalogHour {
    /// floor(window start / 3600 s), as in the HourSeal.
    pub hour: u64,
    pub state: HourState,
    /// The hour's first and last window the store holds (or held, if deleted).
    pub first_window: u64,
    pub last_window: u64,
    pub events: u64,
    /// Lowest and highest seq of the hour's events; `None` without events.
    pub seq_range: Option<(u64, u64)>,
    /// The windows' loss summed per reason (strictly ascending, counts > 0).
    pub lost: Vec<(LossReason, u64)>,
    /// `None` exactly when the hour is deleted.
    pub contents: Option<HourContents>,
}

impl CatalogHour {
    /// The window numbers first to last: the hour's windows unless a downtime left some out
    /// (FORMAT.md §7.2).
    pub fn window_span(&self) -> u64 {
        self.last_window - self.first_window + 1
    }

    pub fn lost_total(&self) -> u64 {
        self.lost.iter().fold(0, |a, (_, n)| a.saturating_add(*n))
    }

    /// The entry of an hour retention deleted: what its deletion record keeps.
    pub fn deleted(d: &crate::records::HourDeletion) -> Self {
        CatalogHour {
            hour: d.hour,
            state: HourState::Deleted,
            first_window: d.first_window,
            last_window: d.last_window,
            events: d.events,
            seq_range: d.seq_range,
            lost: d.lost.clone(),
            contents: None,
        }
    }
}

/// `catalog/YYYY/MM/DD/day.cbor.zst`: the hours of one UTC day a store holds.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct DayCatalog {
    pub node: String,
    /// Days since 1970-01-01 (UTC).
    pub day: u64,
    /// Strictly ascending by hour, each within the day.
    pub hours: Vec<CatalogHour>,
}

/// The stored files of one category of an hour: how many, and their bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub struct FileTally {
    pub files: u64,
    pub bytes: u64,
}

/// The categories of an hour's files, in the order accounting lists them.
pub const FILE_CATEGORIES: [&str; 6] = ["micro", "blocks", "proofs", "index", "edges", "health"];

/// One hour of a day's accounting.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct AccountHour {
    pub hour: u64,
    /// Events sealed in the hour (kept or deleted), so bytes per event needs no other file.
    pub events: u64,
    /// Per category of [`FILE_CATEGORIES`], what the store holds of the hour now.
    pub stored: [FileTally; 6],
}

impl AccountHour {
    pub fn bytes(&self) -> u64 {
        self.stored.iter().fold(0, |a, t| a.saturating_add(t.bytes))
    }
}

/// `accounting/YYYY/MM/DD/account.cbor.zst`: what the hours of one UTC day cost on disk.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct DayAccount {
    pub node: String,
    pub day: u64,
    /// Strictly ascending by hour, each within the day.
    pub hours: Vec<AccountHour>,
}

/// An hour of day `day`, strictly after `prev`.
fn decode_hour(d: &mut Decoder<'_>, day: u64, prev: Option<u64>) -> Result<u64, DecodeError> {
    let hour = d.uint("hours.hour")?;
    if hour / HOURS_PER_DAY != day {
        return Err(invalid(d, "hours.hour", "an hour of another day"));
    }
    if prev.is_some_and(|p| p >= hour) {
        return Err(d.error("hours.hour", DecodeErrorKind::NotAscending));
    }
    Ok(hour)
}

fn decode_day(d: &mut Decoder<'_>) -> Result<u64, DecodeError> {
    let day = d.uint("day")?;
    if day.checked_mul(HOURS_PER_DAY).is_none() {
        return Err(invalid(d, "day", "beyond the last representable hour"));
    }
    Ok(day)
}

impl HourContents {
    fn encode(&self, e: &mut Encoder) {
        e.array(7)
            .uint(self.late_events)
            .uint(self.capture_mode.as_u64())
            .uint(self.actors)
            .uint(self.edges)
            .uint(self.health)
            .array(self.event_types.len() as u64);
        for (t, n) in &self.event_types {
            e.array(2).uint(t.as_u64()).uint(*n);
        }
        e.array(self.cones.len() as u64);
        for (id, n) in &self.cones {
            e.array(2).text(id).uint(*n);
        }
    }

    fn decode(d: &mut Decoder<'_>, events: u64) -> Result<Self, DecodeError> {
        d.array_exact("hours.contents", 7)?;
        let late_events = d.uint("contents.late_events")?;
        if late_events > events {
            return Err(invalid(
                d,
                "contents.late_events",
                "more late events than events",
            ));
        }
        let capture_mode = CaptureMode::decode(d, "contents.capture_mode")?;
        let actors = d.uint("contents.actors")?;
        if actors > events {
            return Err(invalid(d, "contents.actors", "more actors than events"));
        }
        let edges = d.uint("contents.edges")?;
        let health = d.uint("contents.health")?;
        let n = d.array("contents.event_types", EventType::ALL.len() as u64)?;
        let mut event_types: Vec<(EventType, u64)> = Vec::with_capacity(n as usize);
        let mut sum = 0u64;
        for _ in 0..n {
            d.array_exact("contents.event_types", 2)?;
            let t = EventType::decode(d, "event_types.type")?;
            if event_types.last().is_some_and(|(p, _)| *p >= t) {
                return Err(d.error("event_types.type", DecodeErrorKind::NotAscending));
            }
            let count = d.uint("event_types.count")?;
            if count == 0 {
                return Err(invalid(
                    d,
                    "event_types.count",
                    "a listed count is positive",
                ));
            }
            sum = sum.saturating_add(count);
            event_types.push((t, count));
        }
        if sum != events {
            return Err(invalid(
                d,
                "contents.event_types",
                "the counts per type do not sum to the hour's events",
            ));
        }
        let n = d.array("contents.cones", MAX_CONES_PER_HOUR as u64)?;
        let mut cones: Vec<(String, u64)> = Vec::with_capacity(n as usize);
        for _ in 0..n {
            d.array_exact("contents.cones", 2)?;
            let id = d.text("cones.cone_id", MAX_CONE_NAME_LEN as u64)?;
            if id.is_empty() {
                return Err(invalid(d, "cones.cone_id", "empty cone id"));
            }
            if cones
                .last()
                .is_some_and(|(p, _)| p.as_bytes() >= id.as_bytes())
            {
                return Err(d.error("cones.cone_id", DecodeErrorKind::NotAscending));
            }
            let id = id.to_owned();
            let count = d.uint("cones.count")?;
            if count == 0 {
                return Err(invalid(d, "cones.count", "a listed count is positive"));
            }
            cones.push((id, count));
        }
        Ok(HourContents {
            late_events,
            capture_mode,
            actors,
            edges,
            health,
            event_types,
            cones,
        })
    }
}

impl Record for DayCatalog {
    const TYPE: u64 = 24;
    const VERSION: u64 = 1;
    const NAME: &'static str = "DayCatalog";
    const FIELDS: u64 = 5;
    const MAX_LEN: usize = MAX_DAY_LEN;

    fn encode_fields(&self, e: &mut Encoder) {
        e.text(&self.node)
            .uint(self.day)
            .array(self.hours.len() as u64);
        for h in &self.hours {
            e.array(8)
                .uint(h.hour)
                .uint(h.state.as_u64())
                .uint(h.first_window)
                .uint(h.last_window)
                .uint(h.events);
            encode_seq_range(e, h.seq_range);
            encode_lost(e, &h.lost);
            match &h.contents {
                None => {
                    e.null();
                }
                Some(c) => c.encode(e),
            }
        }
    }

    fn decode_fields(d: &mut Decoder<'_>) -> Result<Self, DecodeError> {
        let node = node_name(d)?;
        let day = decode_day(d)?;
        let n = d.array("hours", HOURS_PER_DAY)?;
        let mut hours: Vec<CatalogHour> = Vec::with_capacity(n as usize);
        for _ in 0..n {
            d.array_exact("hours", 8)?;
            let hour = decode_hour(d, day, hours.last().map(|h| h.hour))?;
            let state = HourState::decode(d, "hours.state")?;
            let first_window = d.uint("hours.first_window")?;
            let last_window = d.uint("hours.last_window")?;
            if last_window < first_window {
                return Err(invalid(
                    d,
                    "hours.last_window",
                    "last window before first window",
                ));
            }
            let events = d.uint("hours.events")?;
            let seq_range = decode_seq_range(d, events)?;
            let lost = decode_lost(d)?;
            let contents = if d.peek_null() {
                d.null("hours.contents")?;
                None
            } else {
                Some(HourContents::decode(d, events)?)
            };
            if contents.is_none() != (state == HourState::Deleted) {
                return Err(invalid(
                    d,
                    "hours.contents",
                    "null exactly when the hour is deleted",
                ));
            }
            hours.push(CatalogHour {
                hour,
                state,
                first_window,
                last_window,
                events,
                seq_range,
                lost,
                contents,
            });
        }
        Ok(DayCatalog { node, day, hours })
    }
}

impl Record for DayAccount {
    const TYPE: u64 = 25;
    const VERSION: u64 = 1;
    const NAME: &'static str = "DayAccount";
    const FIELDS: u64 = 5;
    const MAX_LEN: usize = MAX_DAY_LEN;

    fn encode_fields(&self, e: &mut Encoder) {
        e.text(&self.node)
            .uint(self.day)
            .array(self.hours.len() as u64);
        for h in &self.hours {
            e.array(3)
                .uint(h.hour)
                .uint(h.events)
                .array(FILE_CATEGORIES.len() as u64);
            for t in &h.stored {
                e.array(2).uint(t.files).uint(t.bytes);
            }
        }
    }

    fn decode_fields(d: &mut Decoder<'_>) -> Result<Self, DecodeError> {
        let node = node_name(d)?;
        let day = decode_day(d)?;
        let n = d.array("hours", HOURS_PER_DAY)?;
        let mut hours: Vec<AccountHour> = Vec::with_capacity(n as usize);
        for _ in 0..n {
            d.array_exact("hours", 3)?;
            let hour = decode_hour(d, day, hours.last().map(|h| h.hour))?;
            let events = d.uint("hours.events")?;
            d.array_exact("hours.stored", FILE_CATEGORIES.len() as u64)?;
            let mut stored = [FileTally::default(); 6];
            for t in &mut stored {
                d.array_exact("stored", 2)?;
                t.files = d.uint("stored.files")?;
                t.bytes = d.uint("stored.bytes")?;
                if t.files == 0 && t.bytes != 0 {
                    return Err(invalid(d, "stored.bytes", "bytes without files"));
                }
            }
            hours.push(AccountHour {
                hour,
                events,
                stored,
            });
        }
        Ok(DayAccount { node, day, hours })
    }
}
