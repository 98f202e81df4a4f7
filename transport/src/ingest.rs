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
use rdkafka::ClientContext;
use ritma_schemas::cosignature::Cosigner;
use ritma_schemas::records::Record;
use ritma_schemas::ship::{PartAssembler, ShipPart};
use ritma_sinks::mirror::{Mirror, Origin, Outcome, Reason};
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
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

/// Runs the ingest until `stop` (or idle); each message is applied before its offset is
/// committed, so a crash at any point costs a redelivery, never a window.
pub fn ingest(
    mirror: &Mirror,
    opts: &IngestOptions,
    stop: &AtomicBool,
    mut on_outcome: impl FnMut(&str, &Outcome),
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
    while !stop.load(Ordering::Relaxed) {
        let Some(m) = consumer.poll(Duration::from_millis(100)) else {
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
        let store_err = |e: ritma_sinks::mirror::MirrorError| TransportError::Store(e.to_string());
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
        let outcome = match joined {
            // A part of an envelope still being joined: nothing to commit yet.
            Ok(None) => continue,
            Ok(Some(env)) => mirror.apply(&env, origin).map_err(store_err)?,
            Err(detail) => {
                mirror
                    .quarantine_message(&key, origin, payload, &detail)
                    .map_err(store_err)?;
                Outcome::Quarantined {
                    reason: Reason::Decode,
                    detail,
                }
            }
        };
        match &outcome {
            Outcome::Applied { checkpoint } => {
                stats.applied += 1;
                if let (Some(note), Some(w), Some(p)) = (checkpoint, &opts.witness, &producer) {
                    let now = SystemTime::now()
                        .duration_since(UNIX_EPOCH)
                        .map_or(0, |d| d.as_secs());
                    let cosigned = w
                        .cosign(note, now)
                        .map_err(|e| TransportError::Store(format!("cosigning: {e}")))?;
                    p.send_unacked(&opts.checkpoint_topic, &key, cosigned.as_bytes())?;
                    stats.cosigned += 1;
                }
            }
            Outcome::Redelivered => stats.redelivered += 1,
            Outcome::Quarantined { reason, .. } => {
                *stats.quarantined.entry(reason.as_str()).or_default() += 1
            }
        }
        on_outcome(&key, &outcome);
        // The node's state already records this message: a commit that fails (the
        // brokers away) costs a redelivery, which is recognised, and the next commit
        // covers it.
        if let Err(e) = consumer.commit_message(&m, CommitMode::Async) {
            if !broker_trouble {
                eprintln!("ritma: ingest: committing offset {} of partition {}: {e} (it comes again and is recognised)", origin.offset, origin.partition);
            }
            broker_trouble = true;
        }
    }
    if let Some(p) = &producer {
        p.flush(Duration::from_secs(30))?;
    }
    Ok(stats)
}
