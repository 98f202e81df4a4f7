//! DataflowState (FORMAT.md §3.15): everything the sealing dataflow of one node holds at
//! an hour's end that sealing the next windows needs, so a restart continues from it
//! instead of sealing the whole WAL again. Its digest is sealed in the next window's
//! record (`WindowRecord::state`).

use crate::cbor::{DecodeError, Decoder, Encoder};
use crate::hash::{Domain, Hash32, Id128};
use crate::records::{
    invalid, node_name, ActorRecord, HealthRecord, LossReason, PrevHour, Record, RunMeta,
    MAX_CONE_BINDINGS, MAX_CONE_NAME_LEN,
};

/// Largest encoded DataflowState.
pub const MAX_STATE_LEN: usize = 268_435_456;
/// Most elements of any list in a DataflowState (actors, flows, …).
const MAX_ITEMS: u64 = 1 << 24;
/// Most hashes of a Merkle frontier (one per bit of the log size).
const MAX_FRONTIER: u64 = 64;
/// Most loss frames or health records waiting for a node's next event.
const MAX_PENDING: u64 = 1 << 16;

/// What worker 0's source held of the node before the item that crossed the cut.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct FeedState {
    /// The node's current run (its run frame's RunMeta).
    pub run: RunMeta,
    /// The seq the run's next batch is expected at (`None` before its first batch).
    pub next_seq: Option<u64>,
    /// The node's oldest open window and the newest wall time it has seen.
    pub oldest_open: u64,
    pub max_wall_ns: u64,
    /// The input's time then: the oldest window open on any node of the input.
    pub epoch: u64,
    /// Loss and health frames read since the node's last event, in input order.
    pub pending_loss: Vec<(LossReason, u64)>,
    pub pending_health: Vec<HealthRecord>,
    /// Hashes of the blobs the input completed (strictly ascending).
    pub kept: Vec<Hash32>,
}

/// One actor the attribution tables held.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ActorEntry {
    pub record: ActorRecord,
    /// The last window the actor had an event in.
    pub last_window: u64,
    pub exited: bool,
}

/// An executable's content as the trace named it.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ExeEntry {
    pub dev: u64,
    pub ino: u64,
    pub hash: Hash32,
    pub unlisted: bool,
    pub kept: bool,
}

/// A partial cone match.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PartialEntry {
    /// The cone's id and the number of its next step (≥ 1).
    pub cone: String,
    pub next_step: u64,
    /// The placeholders bound so far, by number.
    pub bindings: [Option<Id128>; MAX_CONE_BINDINGS],
    pub first_seq: u64,
    pub start_wall_ns: u64,
}

#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct DataflowState {
    pub node: String,
    /// The first window after the cut: this is the state after window `cut - 1`, the
    /// last window of hour `cut / windows_per_hour - 1`.
    pub cut: u64,
    pub window_len_ns: u64,
    pub taint_ttl_windows: u64,
    pub feed: FeedState,
    /// Strictly ascending by actor id.
    pub actors: Vec<ActorEntry>,
    /// (cgroup id, path), strictly ascending by id.
    pub cgroups: Vec<(u64, Vec<u8>)>,
    /// Strictly ascending by (dev, ino).
    pub exes: Vec<ExeEntry>,
    /// In the matcher's order: by cone in library order, each cone's in start order.
    pub partials: Vec<PartialEntry>,
    /// The node log after window `cut - 1`: its frontier (size and subtree roots) and the
    /// seq after the highest sealed.
    pub log_size: u64,
    pub log_frontier: Vec<Hash32>,
    pub log_next_seq: u64,
    /// The hour sealed at `cut - 1`.
    pub prev_hour: PrevHour,
    /// Capture-mode raises: (seed, last window sighted) strictly ascending by seed, and
    /// (entity, live seeds reaching it) strictly ascending by entity.
    pub raised_seeds: Vec<(Id128, u64)>,
    pub raised_reached: Vec<(Id128, u64)>,
    /// Live taint flows (from, to, last window sighted), strictly ascending by (from, to),
    /// and live seeds (seed, last window sighted), strictly ascending by seed.
    pub taint_flows: Vec<(Id128, Id128, u64)>,
    pub taint_seeds: Vec<(Id128, u64)>,
}

impl DataflowState {
    /// The digest a WindowRecord's `state` holds: H_State of the encoded record.
    pub fn digest_of(bytes: &[u8]) -> Hash32 {
        Domain::State.hash(bytes)
    }
}

fn strictly_ascending<T, K: Ord>(
    d: &Decoder<'_>,
    items: &[T],
    key: impl Fn(&T) -> K,
    field: &'static str,
) -> Result<(), DecodeError> {
    if items.windows(2).all(|w| key(&w[0]) < key(&w[1])) {
        Ok(())
    } else {
        Err(invalid(d, field, "not strictly ascending"))
    }
}

fn decode_list<'a, T>(
    d: &mut Decoder<'a>,
    field: &'static str,
    max: u64,
    mut one: impl FnMut(&mut Decoder<'a>) -> Result<T, DecodeError>,
) -> Result<Vec<T>, DecodeError> {
    let n = d.array(field, max)?;
    // Never trust a length for an allocation: each element takes at least a byte.
    let mut out = Vec::with_capacity((n as usize).min(4096));
    for _ in 0..n {
        out.push(one(d)?);
    }
    Ok(out)
}

fn nested<R: Record>(d: &mut Decoder<'_>, field: &'static str) -> Result<R, DecodeError> {
    let bytes = d.item_bytes(field)?;
    R::decode(bytes)
}

impl Record for DataflowState {
    const TYPE: u64 = 30;
    const VERSION: u64 = 1;
    const NAME: &'static str = "DataflowState";
    const FIELDS: u64 = 19;
    const MAX_LEN: usize = MAX_STATE_LEN;

    fn encode_fields(&self, e: &mut Encoder) {
        e.text(&self.node)
            .uint(self.cut)
            .uint(self.window_len_ns)
            .uint(self.taint_ttl_windows);
        let f = &self.feed;
        e.array(8).raw(&f.run.encode());
        match f.next_seq {
            Some(s) => e.uint(s),
            None => e.null(),
        };
        e.uint(f.oldest_open).uint(f.max_wall_ns).uint(f.epoch);
        encode_pending_loss(e, &f.pending_loss);
        e.array(f.pending_health.len() as u64);
        for h in &f.pending_health {
            e.raw(&h.encode());
        }
        e.array(f.kept.len() as u64);
        for k in &f.kept {
            e.bytes(k);
        }
        e.array(self.actors.len() as u64);
        for a in &self.actors {
            e.array(3)
                .raw(&a.record.encode())
                .uint(a.last_window)
                .bool(a.exited);
        }
        e.array(self.cgroups.len() as u64);
        for (id, path) in &self.cgroups {
            e.array(2).uint(*id).bytes(path);
        }
        e.array(self.exes.len() as u64);
        for x in &self.exes {
            e.array(5)
                .uint(x.dev)
                .uint(x.ino)
                .bytes(&x.hash)
                .bool(x.unlisted)
                .bool(x.kept);
        }
        e.array(self.partials.len() as u64);
        for p in &self.partials {
            e.array(5).text(&p.cone).uint(p.next_step);
            e.array(MAX_CONE_BINDINGS as u64);
            for b in &p.bindings {
                e.opt_bytes(b.as_ref().map(|b| &b[..]));
            }
            e.uint(p.first_seq).uint(p.start_wall_ns);
        }
        e.uint(self.log_size);
        e.array(self.log_frontier.len() as u64);
        for h in &self.log_frontier {
            e.bytes(h);
        }
        e.uint(self.log_next_seq);
        e.array(3)
            .uint(self.prev_hour.hour)
            .uint(self.prev_hour.log_size)
            .bytes(&self.prev_hour.log_root);
        for list in [&self.raised_seeds, &self.raised_reached] {
            e.array(list.len() as u64);
            for (id, n) in list {
                e.array(2).bytes(id).uint(*n);
            }
        }
        e.array(self.taint_flows.len() as u64);
        for (from, to, w) in &self.taint_flows {
            e.array(3).bytes(from).bytes(to).uint(*w);
        }
        e.array(self.taint_seeds.len() as u64);
        for (s, w) in &self.taint_seeds {
            e.array(2).bytes(s).uint(*w);
        }
    }

    fn decode_fields(d: &mut Decoder<'_>) -> Result<Self, DecodeError> {
        let node = node_name(d)?;
        let cut = d.uint("cut")?;
        let window_len_ns = d.uint("window_len_ns")?;
        if !crate::records::window_len_divides_hour(window_len_ns) {
            return Err(invalid(d, "window_len_ns", "must divide one hour"));
        }
        let per_hour = crate::records::windows_per_hour(window_len_ns);
        if cut == 0 || !cut.is_multiple_of(per_hour) {
            return Err(invalid(
                d,
                "cut",
                "must be the first window of an hour after the first",
            ));
        }
        let taint_ttl_windows = d.uint("taint_ttl_windows")?;
        if taint_ttl_windows == 0 {
            return Err(invalid(d, "taint_ttl_windows", "must be at least 1"));
        }
        d.array_exact("feed", 8)?;
        let run: RunMeta = nested(d, "feed.run")?;
        if run.node != node || run.window_len_ns != window_len_ns {
            return Err(invalid(
                d,
                "feed.run",
                "a run of another node or window length",
            ));
        }
        let next_seq = if d.peek_null() {
            d.null("feed.next_seq")?;
            None
        } else {
            Some(d.uint("feed.next_seq")?)
        };
        let oldest_open = d.uint("feed.oldest_open")?;
        let max_wall_ns = d.uint("feed.max_wall_ns")?;
        let epoch = d.uint("feed.epoch")?;
        let pending_loss = decode_pending_loss(d)?;
        let pending_health = decode_list(d, "feed.pending_health", MAX_PENDING, |d| {
            nested::<HealthRecord>(d, "feed.pending_health")
        })?;
        let kept = decode_list(d, "feed.kept", MAX_ITEMS, |d| d.fixed("feed.kept"))?;
        strictly_ascending(d, &kept, |k| *k, "feed.kept")?;
        let feed = FeedState {
            run,
            next_seq,
            oldest_open,
            max_wall_ns,
            epoch,
            pending_loss,
            pending_health,
            kept,
        };
        let actors = decode_list(d, "actors", MAX_ITEMS, |d| {
            d.array_exact("actors", 3)?;
            Ok(ActorEntry {
                record: nested(d, "actors.record")?,
                last_window: d.uint("actors.last_window")?,
                exited: d.bool("actors.exited")?,
            })
        })?;
        strictly_ascending(d, &actors, |a| a.record.actor, "actors")?;
        let cgroups = decode_list(d, "cgroups", MAX_ITEMS, |d| {
            d.array_exact("cgroups", 2)?;
            let id = d.uint("cgroups.id")?;
            let path = d.bytes("cgroups.path", 4096)?;
            if path.first() != Some(&b'/') {
                return Err(invalid(d, "cgroups.path", "must start with /"));
            }
            Ok((id, path.to_vec()))
        })?;
        strictly_ascending(d, &cgroups, |c| c.0, "cgroups")?;
        let exes = decode_list(d, "exes", MAX_ITEMS, |d| {
            d.array_exact("exes", 5)?;
            Ok(ExeEntry {
                dev: d.uint("exes.dev")?,
                ino: d.uint("exes.ino")?,
                hash: d.fixed("exes.hash")?,
                unlisted: d.bool("exes.unlisted")?,
                kept: d.bool("exes.kept")?,
            })
        })?;
        strictly_ascending(d, &exes, |x| (x.dev, x.ino), "exes")?;
        let partials = decode_list(d, "partials", MAX_ITEMS, |d| {
            d.array_exact("partials", 5)?;
            let cone = d
                .text("partials.cone", MAX_CONE_NAME_LEN as u64)?
                .to_owned();
            let next_step = d.uint("partials.next_step")?;
            if next_step == 0 {
                return Err(invalid(d, "partials.next_step", "must be at least 1"));
            }
            d.array_exact("partials.bindings", MAX_CONE_BINDINGS as u64)?;
            let mut bindings = [None; MAX_CONE_BINDINGS];
            for b in &mut bindings {
                *b = d.opt_fixed("partials.bindings")?;
            }
            Ok(PartialEntry {
                cone,
                next_step,
                bindings,
                first_seq: d.uint("partials.first_seq")?,
                start_wall_ns: d.uint("partials.start_wall_ns")?,
            })
        })?;
        let log_size = d.uint("log_size")?;
        let log_frontier =
            decode_list(d, "log_frontier", MAX_FRONTIER, |d| d.fixed("log_frontier"))?;
        if log_frontier.len() as u32 != log_size.count_ones() || log_size == 0 {
            return Err(invalid(
                d,
                "log_frontier",
                "one hash per set bit of a positive log size",
            ));
        }
        let log_next_seq = d.uint("log_next_seq")?;
        d.array_exact("prev_hour", 3)?;
        let prev_hour = PrevHour {
            hour: d.uint("prev_hour.hour")?,
            log_size: d.uint("prev_hour.log_size")?,
            log_root: d.fixed("prev_hour.log_root")?,
        };
        if prev_hour.log_size != log_size || prev_hour.hour + 1 != cut / per_hour {
            return Err(invalid(d, "prev_hour", "not the hour sealed at the cut"));
        }
        let mut pairs = |field: &'static str| -> Result<Vec<(Id128, u64)>, DecodeError> {
            let v = decode_list(d, field, MAX_ITEMS, |d| {
                d.array_exact(field, 2)?;
                Ok((d.fixed(field)?, d.uint(field)?))
            })?;
            strictly_ascending(d, &v, |p| p.0, field)?;
            Ok(v)
        };
        let raised_seeds = pairs("raised_seeds")?;
        let raised_reached = pairs("raised_reached")?;
        if raised_reached.iter().any(|(_, n)| *n == 0) {
            return Err(invalid(d, "raised_reached", "a count of 0"));
        }
        let taint_flows = decode_list(d, "taint_flows", MAX_ITEMS, |d| {
            d.array_exact("taint_flows", 3)?;
            Ok((
                d.fixed("taint_flows.from")?,
                d.fixed("taint_flows.to")?,
                d.uint("taint_flows.window")?,
            ))
        })?;
        strictly_ascending(d, &taint_flows, |f| (f.0, f.1), "taint_flows")?;
        let taint_seeds = decode_list(d, "taint_seeds", MAX_ITEMS, |d| {
            d.array_exact("taint_seeds", 2)?;
            Ok((d.fixed("taint_seeds.seed")?, d.uint("taint_seeds.window")?))
        })?;
        strictly_ascending(d, &taint_seeds, |s| s.0, "taint_seeds")?;
        Ok(DataflowState {
            node,
            cut,
            window_len_ns,
            taint_ttl_windows,
            feed,
            actors,
            cgroups,
            exes,
            partials,
            log_size,
            log_frontier,
            log_next_seq,
            prev_hour,
            raised_seeds,
            raised_reached,
            taint_flows,
            taint_seeds,
        })
    }
}

/// Pending loss is in input order (reasons may repeat), unlike a window's `lost`.
fn encode_pending_loss(e: &mut Encoder, lost: &[(LossReason, u64)]) {
    e.array(lost.len() as u64);
    for (reason, n) in lost {
        e.array(2).uint(reason.as_u64()).uint(*n);
    }
}

fn decode_pending_loss(d: &mut Decoder<'_>) -> Result<Vec<(LossReason, u64)>, DecodeError> {
    decode_list(d, "feed.pending_loss", MAX_PENDING, |d| {
        d.array_exact("feed.pending_loss", 2)?;
        let reason = LossReason::decode(d, "feed.pending_loss.reason")?;
        let count = d.uint("feed.pending_loss.count")?;
        if count == 0 {
            return Err(invalid(d, "feed.pending_loss.count", "must be positive"));
        }
        Ok((reason, count))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::merkle::{Blake3Tree, Frontier};
    use crate::records::{HealthKind, MAX_CONE_BINDINGS};
    use proptest::prelude::*;

    fn run() -> RunMeta {
        RunMeta {
            node: "web-1".into(),
            boot_id: [1; 16],
            sensor_version: "ritma 0.1.0".into(),
            config_digest: [2; 32],
            window_len_ns: 1_000_000_000,
            wall_minus_mono_ns: 1_700_000_000_000_000_000,
            first_seq: 0,
            started_wall_ns: 1_760_000_000_000_000_000,
        }
    }

    fn actor(id: u8) -> ActorRecord {
        ActorRecord {
            actor: [id; 16],
            pid: 1234,
            ppid: 1,
            parent: Some([2; 16]),
            start_ns: 5_000_000_000,
            uid: 0,
            gid: 0,
            euid: 1000,
            exe: Some([3; 16]),
            exe_hash: None,
            comm: [4; 16],
            cgroup_id: 77,
            mnt_ns: 1,
            pid_ns: 2,
            net_ns: 3,
            container: None,
            service: Some([5; 16]),
        }
    }

    pub(crate) fn sample() -> DataflowState {
        let mut log = Frontier::new();
        for i in 0..7200u64 {
            log.push_data::<Blake3Tree>(&i.to_be_bytes());
        }
        let mut bindings = [None; MAX_CONE_BINDINGS];
        bindings[0] = Some([9; 16]);
        DataflowState {
            node: "web-1".into(),
            cut: 7200,
            window_len_ns: 1_000_000_000,
            taint_ttl_windows: 300,
            feed: FeedState {
                run: run(),
                next_seq: Some(42),
                oldest_open: 7199,
                max_wall_ns: 7_200_010_000_000,
                epoch: 7199,
                pending_loss: vec![
                    (LossReason::KernelRingbufFull, 3),
                    (LossReason::KernelRingbufFull, 1),
                ],
                pending_health: vec![HealthRecord {
                    node: "web-1".into(),
                    t_wall_ns: 7_199_900_000_000,
                    kind: HealthKind::ProbeDetached,
                    subject: "exit_openat".into(),
                    window: 0,
                    lost: Some(5),
                }],
                kept: vec![[1; 32], [2; 32]],
            },
            actors: vec![
                ActorEntry {
                    record: actor(1),
                    last_window: 7100,
                    exited: false,
                },
                ActorEntry {
                    record: actor(7),
                    last_window: 7199,
                    exited: true,
                },
            ],
            cgroups: vec![(77, b"/system.slice/cron.service".to_vec())],
            exes: vec![ExeEntry {
                dev: 2049,
                ino: 131077,
                hash: [6; 32],
                unlisted: true,
                kept: false,
            }],
            partials: vec![PartialEntry {
                cone: "download_exec".into(),
                next_step: 1,
                bindings,
                first_seq: 40,
                start_wall_ns: 7_199_000_000_000,
            }],
            log_size: log.size(),
            log_frontier: log.nodes().to_vec(),
            log_next_seq: 42,
            prev_hour: PrevHour {
                hour: 1,
                log_size: log.size(),
                log_root: log.root::<Blake3Tree>(),
            },
            raised_seeds: vec![([1; 16], 7190)],
            raised_reached: vec![([8; 16], 1)],
            taint_flows: vec![([1; 16], [8; 16], 7190)],
            taint_seeds: vec![([1; 16], 7190)],
        }
    }

    #[test]
    fn a_state_round_trips_and_its_digest_is_of_its_bytes() {
        let s = sample();
        let b = s.encode();
        assert_eq!(DataflowState::decode(&b).unwrap(), s);
        assert_eq!(DataflowState::digest_of(&b), Domain::State.hash(&b));
        assert_ne!(DataflowState::digest_of(&b), *blake3::hash(&b).as_bytes());
    }

    #[test]
    fn a_state_against_its_rules_is_refused() {
        type Break = Box<dyn Fn(&mut DataflowState)>;
        let bad: Vec<(&str, Break)> = vec![
            ("actors", Box::new(|s| s.actors.reverse())),
            ("cut", Box::new(|s| s.cut = 7201)),
            ("cut", Box::new(|s| s.cut = 0)),
            (
                "log_frontier",
                Box::new(|s| {
                    s.log_frontier.pop();
                }),
            ),
            ("prev_hour", Box::new(|s| s.prev_hour.hour = 5)),
            ("feed.run", Box::new(|s| s.feed.run.node = "other".into())),
            ("feed.kept", Box::new(|s| s.feed.kept.reverse())),
            (
                "cgroups.path",
                Box::new(|s| s.cgroups[0].1 = b"relative".to_vec()),
            ),
            (
                "partials.next_step",
                Box::new(|s| s.partials[0].next_step = 0),
            ),
            ("raised_reached", Box::new(|s| s.raised_reached[0].1 = 0)),
            (
                "taint_seeds",
                Box::new(|s| s.taint_seeds.push(([0; 16], 1))),
            ),
        ];
        for (field, f) in bad {
            let mut s = sample();
            f(&mut s);
            let e = DataflowState::decode(&s.encode()).unwrap_err();
            assert!(e.field.starts_with(field), "{field}: {e}");
        }
        let mut b = sample().encode();
        b.push(0);
        assert!(DataflowState::decode(&b).is_err());
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(3000))]

        /// The decoder never panics: not on arbitrary bytes, not on a valid state with
        /// bytes flipped, cut short or spliced.
        #[test]
        fn the_decoder_takes_any_bytes(
            noise in proptest::collection::vec(any::<u8>(), 0..400),
            flips in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..6),
            cut in any::<usize>(),
        ) {
            let _ = DataflowState::decode(&noise);
            let mut b = sample().encode();
            for (i, x) in flips {
                let n = b.len();
                b[i % n] ^= x;
            }
            let _ = DataflowState::decode(&b);
            let _ = DataflowState::decode(&b[..cut % b.len()]);
        }
    }
}
