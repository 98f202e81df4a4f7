//! `kafka_bench`: the raw Kafka baseline for `ritma ship` → `ritma ingest` (benches/kafka/).
//!
//! It makes the very message values `ritma ship` sends for a store — every ShipPart of every
//! shipment, cut at `--max-message-bytes` less 1024 as `transport::kafka::KafkaSettings`
//! cuts them, keyed by the node name — from the store itself (ritma_sinks::ship::ShipSource,
//! read in memory: the store's cursor is neither read for a fresh topic name nor written).
//! That is not timed. Then, timed from one instant t0, it does what the Ritma pipeline does
//! with none of Ritma's work:
//!
//! - a producer configured as Ritma's (idempotent, acks=all, zstd, linger.ms 5, the same
//!   message.max.bytes) sends every message to `--topic` at once and waits for every ack;
//! - at the same t0 a consumer of group `--group` (session timeout as given, offsets from
//!   the earliest, no auto-commit) subscribes to the topic and reads until it has every
//!   message, then commits its offsets once.
//!
//! It prints one JSON line: messages, bytes, `produce_s` (t0 → the last ack), `e2e_s`
//! (t0 → the consumer holds the last message and committed), `first_s` (t0 → the consumer
//! holds the first message: the group join and one fetch), after checking that the values
//! consumed are the values produced, in order (one node: one key, one partition).
//!
//! ```sh
//! kafka_bench baseline --brokers 127.0.0.1:9092 --store DIR --topic T --group G \
//!     [--max-message-bytes 1000000] [--session-timeout-ms 2000] [--timeout-s 300]
//! kafka_bench parts --store DIR      # message count and bytes only
//! ```

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use rdkafka::producer::{BaseProducer, BaseRecord, DeliveryResult, Producer, ProducerContext};
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::ClientContext;
use ritma_schemas::records::Record;
use ritma_sinks::ship::ShipSource;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// `transport::kafka`'s room for a part's header and the record batch around it.
const PART_OVERHEAD: usize = 1024;

struct Args {
    cmd: String,
    brokers: String,
    store: PathBuf,
    topic: String,
    group: String,
    max_message_bytes: usize,
    session_timeout_ms: u64,
    timeout: Duration,
}

fn parse_args() -> Result<Args, String> {
    let mut it = std::env::args().skip(1);
    let cmd = it
        .next()
        .ok_or("usage: kafka_bench baseline|parts --store DIR …")?;
    let mut a = Args {
        cmd,
        brokers: String::new(),
        store: PathBuf::new(),
        topic: String::new(),
        group: String::new(),
        max_message_bytes: 1_000_000,
        session_timeout_ms: 2000,
        timeout: Duration::from_secs(300),
    };
    while let Some(flag) = it.next() {
        let v = it.next().ok_or(format!("{flag}: needs a value"))?;
        let num = |v: &str| v.parse::<u64>().map_err(|e| format!("{flag} {v}: {e}"));
        match flag.as_str() {
            "--brokers" => a.brokers = v,
            "--store" => a.store = v.into(),
            "--topic" => a.topic = v,
            "--group" => a.group = v,
            "--max-message-bytes" => a.max_message_bytes = num(&v)? as usize,
            "--session-timeout-ms" => a.session_timeout_ms = num(&v)?,
            "--timeout-s" => a.timeout = Duration::from_secs(num(&v)?),
            _ => return Err(format!("unknown option {flag}")),
        }
    }
    if a.store.as_os_str().is_empty() {
        return Err("--store is required".into());
    }
    if a.cmd == "baseline" && (a.brokers.is_empty() || a.topic.is_empty() || a.group.is_empty()) {
        return Err("baseline needs --brokers, --topic and --group".into());
    }
    Ok(a)
}

/// Every (key, value) `ritma ship` would send for the store at `dir`, in order.
fn ship_messages(dir: &Path, max_message_bytes: usize) -> Result<Vec<(String, Vec<u8>)>, String> {
    let payload = max_message_bytes.saturating_sub(PART_OVERHEAD).max(4096);
    let roots = ritma_sinks::retention::node_roots(dir).map_err(|e| e.to_string())?;
    let mut out = Vec::new();
    for root in roots {
        // A topic name no cursor of the store has: the shipment starts from the beginning.
        let mut src = ShipSource::open(&root, "kafka_bench.none").map_err(|e| e.to_string())?;
        let node = src.meta().node.clone();
        while let Some(s) = src.next_shipment().map_err(|e| e.to_string())? {
            for env in &s.envelopes {
                for part in env.to_parts(payload) {
                    out.push((node.clone(), part.encode()));
                }
            }
            src.acked(s.cursor);
        }
    }
    Ok(out)
}

#[derive(Clone, Default)]
struct Acks {
    failed: Arc<AtomicU64>,
}

impl ClientContext for Acks {}

impl ProducerContext for Acks {
    type DeliveryOpaque = ();
    fn delivery(&self, r: &DeliveryResult<'_>, _: ()) {
        if let Err((e, _)) = r {
            if self.failed.fetch_add(1, Ordering::Relaxed) == 0 {
                eprintln!("kafka_bench: delivery failed: {e}");
            }
        }
    }
}

fn baseline(a: &Args, msgs: Vec<(String, Vec<u8>)>) -> Result<serde_json::Value, String> {
    let total = msgs.len();
    let bytes: u64 = msgs.iter().map(|(_, v)| v.len() as u64).sum();
    let mut pc = ClientConfig::new();
    pc.set("bootstrap.servers", &a.brokers)
        .set("allow.auto.create.topics", "false")
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .set("compression.type", "zstd")
        .set(
            "message.max.bytes",
            (a.max_message_bytes + PART_OVERHEAD).to_string(),
        )
        .set("linger.ms", "5")
        .set("message.timeout.ms", a.timeout.as_millis().to_string());
    let acks = Acks::default();
    let producer: BaseProducer<Acks> = pc
        .create_with_context(acks.clone())
        .map_err(|e| e.to_string())?;
    let mut cc = ClientConfig::new();
    cc.set("bootstrap.servers", &a.brokers)
        .set("allow.auto.create.topics", "false")
        .set("group.id", &a.group)
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .set("session.timeout.ms", a.session_timeout_ms.to_string())
        .set(
            "heartbeat.interval.ms",
            (a.session_timeout_ms / 3).max(100).to_string(),
        )
        .set(
            "fetch.message.max.bytes",
            (a.max_message_bytes + 4096).to_string(),
        );
    let consumer: BaseConsumer = cc.create().map_err(|e| e.to_string())?;

    let t0 = Instant::now();
    let deadline = t0 + a.timeout;
    let reader = {
        let topic = a.topic.clone();
        std::thread::spawn(move || -> Result<(f64, f64, Vec<Vec<u8>>), String> {
            consumer.subscribe(&[&topic]).map_err(|e| e.to_string())?;
            let mut got: Vec<Vec<u8>> = Vec::with_capacity(total);
            let mut first = 0.0;
            while got.len() < total {
                if Instant::now() > deadline {
                    return Err(format!(
                        "consumed {} of {total} messages in time",
                        got.len()
                    ));
                }
                match consumer.poll(Duration::from_millis(100)) {
                    None => {}
                    Some(Err(e)) => eprintln!("kafka_bench: consumer: {e}"),
                    Some(Ok(m)) => {
                        if got.is_empty() {
                            first = t0.elapsed().as_secs_f64();
                        }
                        got.push(m.payload().unwrap_or(&[]).to_vec())
                    }
                }
            }
            consumer
                .commit_consumer_state(CommitMode::Sync)
                .map_err(|e| format!("commit: {e}"))?;
            Ok((t0.elapsed().as_secs_f64(), first, got))
        })
    };
    for (key, value) in &msgs {
        let mut rec = BaseRecord::to(&a.topic).key(key.as_str()).payload(value);
        loop {
            match producer.send(rec) {
                Ok(()) => break,
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), r)) => {
                    rec = r;
                    producer.poll(Duration::from_millis(50));
                }
                Err((e, _)) => return Err(format!("produce: {e}")),
            }
        }
    }
    while producer.in_flight_count() > 0 {
        if Instant::now() > deadline {
            return Err(format!(
                "{} messages not acked in time",
                producer.in_flight_count()
            ));
        }
        producer.poll(Duration::from_millis(20));
    }
    let produce_s = t0.elapsed().as_secs_f64();
    let failed = acks.failed.load(Ordering::Relaxed);
    if failed > 0 {
        return Err(format!("{failed} deliveries failed"));
    }
    let (e2e_s, first_s, got) = reader
        .join()
        .map_err(|_| "consumer thread panicked".to_string())??;
    // One node: one partition, so the consumer sees the messages in the order sent.
    if got.len() != total || got.iter().zip(&msgs).any(|(g, (_, v))| g != v) {
        return Err("the consumer read other bytes than were produced".into());
    }
    Ok(serde_json::json!({
        "messages": total, "bytes": bytes, "produce_s": produce_s, "e2e_s": e2e_s,
        "first_s": first_s, "same_bytes": true,
    }))
}

fn main() {
    let run = || -> Result<serde_json::Value, String> {
        let a = parse_args()?;
        let t = Instant::now();
        let msgs = ship_messages(&a.store, a.max_message_bytes)?;
        let prepare_s = t.elapsed().as_secs_f64();
        match a.cmd.as_str() {
            "parts" => Ok(serde_json::json!({
                "messages": msgs.len(),
                "bytes": msgs.iter().map(|(_, v)| v.len() as u64).sum::<u64>(),
                "prepare_s": prepare_s,
            })),
            "baseline" => {
                let mut v = baseline(&a, msgs)?;
                v["prepare_s"] = prepare_s.into();
                Ok(v)
            }
            other => Err(format!("unknown command {other}")),
        }
    };
    match run() {
        Ok(v) => println!("{v}"),
        Err(e) => {
            eprintln!("kafka_bench: {e}");
            std::process::exit(1);
        }
    }
}
