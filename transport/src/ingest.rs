//! `ritma ingest`: a consumer-group member that joins each node's parts into envelopes,
//! applies them to the receiving store (ritma_sinks::mirror, which checks each first),
//! commits a message's offset only once what it completed is on disk, and, as a witness,
//! cosigns each checkpoint it accepts and publishes it (FORMAT.md §12.4, §12.5).
//!
//! Kafka's own partition assignment shares the nodes among the processes of a group;
//! a rebalance drops the parts of unfinished envelopes, which come again from the
//! last committed offset.

use crate::kafka::{key_text, KafkaSettings, TransportError};
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance};
use rdkafka::message::Message;
use rdkafka::{ClientContext, Offset, TopicPartitionList};
use ritma_schemas::cosignature::Cosigner;
use ritma_schemas::records::Record;
use ritma_schemas::ship::{PartAssembler, ShipEnvelope, ShipPart};
use ritma_sinks::mirror::{Mirror, Origin, Outcome, Prechecked, Reason};
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// What an ingest is told.
pub struct IngestOptions {
    pub settings: KafkaSettings,
    pub group: String,
    pub topic: String,
    /// Where cosigned checkpoints go, when a witness key is given.
    pub checkpoint_topic: String,
    pub witness: Option<Cosigner>,
    pub session_timeout: Duration,
    /// Stop after this long without a message (batch use and tests); `None`: run until
    /// `stop`.
    pub idle_exit: Option<Duration>,
}

/// What an ingest did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct IngestStats {
    pub messages: u64,
    pub applied: u64,
    pub redelivered: u64,
    pub cosigned: u64,
    /// Envelopes (or messages that made none) not applied, by reason.
    pub quarantined: BTreeMap<&'static str, u64>,
}

/// Drops the parts being joined when partitions move.
struct Rebalancing {
    joining: Arc<Mutex<HashMap<(i32, String), PartAssembler>>>,
}

impl ClientContext for Rebalancing {}

impl ConsumerContext for Rebalancing {
    fn pre_rebalance(&self, _: &BaseConsumer<Self>, _: &Rebalance<'_>) {
        self.joining.lock().expect("joining").clear();
    }
}

/// Envelopes joined and waiting for their turn, each checked ahead on the precheck
/// thread: at most this many (about 1.3 MB each at the default window) are held.
const AHEAD: usize = 4;

/// A message that completed an envelope, or that makes none, waiting to be applied in
/// the order it arrived (offsets are committed in that order).
struct Waiting {
    origin: Origin,
    key: String,
    topic: String,
    what: Arrived,
}

enum Arrived {
    /// An envelope, sent to the precheck thread (it comes back in this order).
    Envelope,
    /// A message that is not a part of this key, or parts that do not join.
    Refused { payload: Vec<u8>, detail: String },
}

/// Runs the ingest until `stop` (or idle); each message is applied before its offset is
/// committed, so a crash at any point costs a redelivery, never a window. While one
/// envelope is applied, the next ones' blocks are checked on a second thread
/// ([`Mirror::precheck`]).
pub fn ingest(
    mirror: &Mirror,
    opts: &IngestOptions,
    stop: &AtomicBool,
    on_outcome: impl FnMut(&str, &Outcome),
) -> Result<IngestStats, TransportError> {
    let (to_check, checking) = mpsc::sync_channel::<ShipEnvelope>(AHEAD);
    let (checked_tx, checked) = mpsc::channel::<Prechecked>();
    std::thread::scope(|scope| {
        scope.spawn(move || {
            for env in checking {
                if checked_tx.send(mirror.precheck(env)).is_err() {
                    break;
                }
            }
        });
        let result = consume(mirror, opts, stop, on_outcome, &to_check, checked);
        drop(to_check);
        result
    })
}

fn consume(
    mirror: &Mirror,
    opts: &IngestOptions,
    stop: &AtomicBool,
    mut on_outcome: impl FnMut(&str, &Outcome),
    to_check: &mpsc::SyncSender<ShipEnvelope>,
    checked: mpsc::Receiver<Prechecked>,
) -> Result<IngestStats, TransportError> {
    let joining = Arc::new(Mutex::new(HashMap::new()));
    let mut c = opts.settings.client_config();
    c.set("group.id", &opts.group)
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .set(
            "session.timeout.ms",
            opts.session_timeout.as_millis().to_string(),
        )
        .set(
            "heartbeat.interval.ms",
            (opts.session_timeout.as_millis() / 3).max(100).to_string(),
        )
        .set(
            "fetch.message.max.bytes",
            (opts.settings.max_message_bytes + 4096).to_string(),
        );
    let consumer: BaseConsumer<Rebalancing> = c.create_with_context(Rebalancing {
        joining: joining.clone(),
    })?;
    consumer.subscribe(&[&opts.topic])?;
    let producer = match &opts.witness {
        Some(_) => Some(opts.settings.producer()?),
        None => None,
    };
    let mut stats = IngestStats::default();
    let mut last_message = Instant::now();
    let mut broker_trouble = false;
    let mut waiting: VecDeque<Waiting> = VecDeque::new();
    while !stop.load(Ordering::Relaxed) {
        // With envelopes waiting, apply one whenever no message is ready at once, and
        // never hold more than AHEAD.
        let poll_wait = match waiting.is_empty() {
            true => Duration::from_millis(100),
            false => Duration::ZERO,
        };
        let polled = match waiting.len() > AHEAD {
            true => None,
            false => consumer.poll(poll_wait),
        };
        let Some(m) = polled else {
            if let Some(next) = waiting.pop_front() {
                let (key, outcome) = apply(mirror, next, &checked, &consumer, &mut broker_trouble)?;
                count(&mut stats, &outcome);
                cosign(opts, producer.as_ref(), &key, &outcome, &mut stats)?;
                on_outcome(&key, &outcome);
                continue;
            }
            if opts
                .idle_exit
                .is_some_and(|idle| last_message.elapsed() > idle)
            {
                break;
            }
            continue;
        };
        let m = match m {
            Ok(m) => m,
            // The brokers away or a partition moving: librdkafka reconnects by itself.
            Err(e) => {
                if !broker_trouble {
                    eprintln!("ritma: ingest: {e} (waiting for the brokers)");
                }
                broker_trouble = true;
                std::thread::sleep(Duration::from_millis(200));
                continue;
            }
        };
        broker_trouble = false;
        last_message = Instant::now();
        stats.messages += 1;
        let origin = Origin {
            partition: m.partition(),
            offset: m.offset(),
        };
        let key = key_text(&m).unwrap_or("").to_owned();
        let payload = m.payload().unwrap_or(&[]);
        let joined = match ShipPart::decode(payload) {
            Err(e) => Err(format!("not a ShipPart: {e}")),
            Ok(p) if p.node != key => Err(format!(
                "a part of node {} under the message key {key:?}",
                p.node
            )),
            Ok(p) => joining
                .lock()
                .expect("joining")
                .entry((origin.partition, key.clone()))
                .or_default()
                .push(p)
                .map_err(|e| e.to_string()),
        };
        let what = match joined {
            // A part of an envelope still being joined: nothing to commit yet.
            Ok(None) => continue,
            Ok(Some(env)) => {
                if to_check.send(env).is_err() {
                    return Err(TransportError::Store("the precheck thread stopped".into()));
                }
                Arrived::Envelope
            }
            Err(detail) => Arrived::Refused {
                payload: payload.to_vec(),
                detail,
            },
        };
        waiting.push_back(Waiting {
            origin,
            key,
            topic: m.topic().to_owned(),
            what,
        });
    }
    if let Some(p) = &producer {
        p.flush(Duration::from_secs(30))?;
    }
    Ok(stats)
}

/// Applies (or quarantines) one waiting message, then commits its offset.
fn apply(
    mirror: &Mirror,
    next: Waiting,
    checked: &mpsc::Receiver<Prechecked>,
    consumer: &BaseConsumer<Rebalancing>,
    broker_trouble: &mut bool,
) -> Result<(String, Outcome), TransportError> {
    let store_err = |e: ritma_sinks::mirror::MirrorError| TransportError::Store(e.to_string());
    let Waiting {
        origin,
        key,
        topic,
        what,
    } = next;
    let outcome = match what {
        Arrived::Envelope => {
            let pre = checked
                .recv()
                .map_err(|_| TransportError::Store("the precheck thread stopped".into()))?;
            mirror.apply_prechecked(pre, origin).map_err(store_err)?
        }
        Arrived::Refused { payload, detail } => {
            mirror
                .quarantine_message(&key, origin, &payload, &detail)
                .map_err(store_err)?;
            Outcome::Quarantined {
                reason: Reason::Decode,
                detail,
            }
        }
    };
    // The node's state already records this message: a commit that fails (the brokers
    // away) costs a redelivery, which is recognised, and the next commit covers it.
    let mut tpl = TopicPartitionList::new();
    let committed = tpl
        .add_partition_offset(&topic, origin.partition, Offset::Offset(origin.offset + 1))
        .and_then(|()| consumer.commit(&tpl, CommitMode::Async));
    if let Err(e) = committed {
        if !*broker_trouble {
            eprintln!("ritma: ingest: committing offset {} of partition {}: {e} (it comes again and is recognised)", origin.offset, origin.partition);
        }
        *broker_trouble = true;
    }
    Ok((key, outcome))
}

fn count(stats: &mut IngestStats, outcome: &Outcome) {
    match outcome {
        Outcome::Applied { .. } => stats.applied += 1,
        Outcome::Redelivered => stats.redelivered += 1,
        Outcome::Quarantined { reason, .. } => {
            *stats.quarantined.entry(reason.as_str()).or_default() += 1
        }
    }
}

/// As a witness: cosigns an applied window's checkpoint and publishes it.
fn cosign(
    opts: &IngestOptions,
    producer: Option<&crate::kafka::Shipper>,
    key: &str,
    outcome: &Outcome,
    stats: &mut IngestStats,
) -> Result<(), TransportError> {
    let Outcome::Applied {
        checkpoint: Some(note),
    } = outcome
    else {
        return Ok(());
    };
    let (Some(w), Some(p)) = (&opts.witness, producer) else {
        return Ok(());
    };
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let cosigned = w
        .cosign(note, now)
        .map_err(|e| TransportError::Store(format!("cosigning: {e}")))?;
    p.send_unacked(&opts.checkpoint_topic, key, cosigned.as_bytes())?;
    stats.cosigned += 1;
    Ok(())
}
