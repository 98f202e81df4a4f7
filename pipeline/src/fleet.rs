//! Evidence off the node: `ritma ship` (a store to the evidence topic, from its cursor),
//! the shipping thread of `ritma run --kafka-brokers`, and `ritma ingest` (a consumer
//! group that rebuilds, verifies and witnesses the nodes' stores). FORMAT.md §12.

use anyhow::{anyhow, bail, Context, Result};
use clap::Args;
use ritma_schemas::cosignature::Cosigner;
use ritma_sinks::keys::Keystore;
use ritma_sinks::mirror::{Mirror, Outcome};
use ritma_transport::ingest::{ingest, IngestOptions};
use ritma_transport::kafka::{
    CHECKPOINT_TOPIC, DEFAULT_MAX_MESSAGE_BYTES, EVIDENCE_TOPIC, OCSF_TOPIC,
};
use ritma_transport::ship::{ship_pending, ShipProgress};
use ritma_transport::witnessed::CosignedFeed;
use ritma_transport::KafkaSettings;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How to reach the brokers (shared by `ship`, `ingest` and `run`).
#[derive(Args, Clone, Debug)]
pub struct BrokerArgs {
    /// Kafka bootstrap brokers, host:port[,host:port…].
    #[arg(long, value_name = "HOST:PORT,…")]
    pub brokers: String,
    /// The evidence topic.
    #[arg(long, default_value = EVIDENCE_TOPIC)]
    pub topic: String,
    /// The topic of witness-cosigned checkpoints.
    #[arg(long, default_value = CHECKPOINT_TOPIC)]
    pub checkpoint_topic: String,
    /// The broker's largest message (its message.max.bytes): envelopes are cut into
    /// parts below it.
    #[arg(long, default_value_t = DEFAULT_MAX_MESSAGE_BYTES)]
    pub max_message_bytes: usize,
    /// Also send each shipped window's events, as OCSF 1.8.0 JSON, to this SIEM topic.
    #[arg(long, value_name = "TOPIC", num_args = 0..=1, default_missing_value = OCSF_TOPIC)]
    pub ocsf: Option<String>,
    /// An extra librdkafka property, KEY=VALUE (repeatable), e.g. security.protocol=ssl.
    #[arg(long = "kafka-option", value_name = "KEY=VALUE")]
    pub options: Vec<String>,
}

/// `ritma run`'s shipping options: all off unless --kafka-brokers is given.
#[derive(Args, Clone, Debug, Default)]
pub struct RunShipArgs {
    /// Ship every sealed window to Kafka as it is sealed (FORMAT.md §12), and keep the
    /// newest checkpoint a witness cosigned.
    #[arg(long, value_name = "HOST:PORT,…")]
    pub kafka_brokers: Option<String>,
    /// The evidence topic.
    #[arg(long, default_value = EVIDENCE_TOPIC)]
    pub kafka_topic: String,
    /// The topic of witness-cosigned checkpoints.
    #[arg(long, default_value = CHECKPOINT_TOPIC)]
    pub kafka_checkpoint_topic: String,
    /// The broker's largest message.
    #[arg(long, default_value_t = DEFAULT_MAX_MESSAGE_BYTES)]
    pub kafka_max_message_bytes: usize,
    /// Also send each window's events, as OCSF 1.8.0 JSON, to this SIEM topic.
    #[arg(long, value_name = "TOPIC", num_args = 0..=1, default_missing_value = OCSF_TOPIC)]
    pub kafka_ocsf: Option<String>,
}

impl BrokerArgs {
    pub fn settings(&self) -> Result<KafkaSettings> {
        settings(&self.brokers, self.max_message_bytes, &self.options)
    }
}

fn settings(brokers: &str, max_message_bytes: usize, options: &[String]) -> Result<KafkaSettings> {
    if brokers.trim().is_empty() {
        bail!("--brokers is empty: give host:port of at least one Kafka broker");
    }
    if let Err(why) = crate::config::check_max_message_bytes(max_message_bytes as u64) {
        bail!("--max-message-bytes {why}");
    }
    let mut s = KafkaSettings::new(brokers);
    s.max_message_bytes = max_message_bytes;
    for o in options {
        let (k, v) = o
            .split_once('=')
            .ok_or_else(|| anyhow!("--kafka-option {o:?}: not KEY=VALUE"))?;
        s.extra.push((k.trim().to_owned(), v.trim().to_owned()));
    }
    Ok(s)
}

fn check_topic(topic: &str) -> Result<()> {
    crate::config::check_topic(topic).map_err(|why| anyhow!("the topic {why}"))
}

/// `ritma ship DIR`: ships what each node tree of the store completed and is not yet
/// shipped to the topic, then stops (or, with `follow`, keeps shipping until a signal).
pub fn ship_cmd(dir: &Path, brokers: &BrokerArgs, follow: bool, json: bool) -> Result<()> {
    check_topic(&brokers.topic)?;
    if let Some(t) = &brokers.ocsf {
        check_topic(t)?;
    }
    let settings = brokers.settings()?;
    let _lock = ritma_sinks::store::StoreLock::acquire(
        dir,
        &ritma_sinks::store::StoreLock::lock_dir(),
    )
    .context(
        "ship reads a store no run is writing (a running `ritma run --kafka-brokers` ships itself)",
    )?;
    let roots = ritma_sinks::retention::node_roots(dir)?;
    let mut topics = vec![brokers.topic.as_str()];
    topics.extend(brokers.ocsf.as_deref());
    let shipper = settings.producer()?;
    shipper.check_topics(&topics, Duration::from_secs(10))?;
    if follow {
        crate::record::install_stop_handlers()?;
    }
    let mut reports = Vec::new();
    loop {
        reports.clear();
        let mut shipped = 0;
        for root in &roots {
            let (done, result) = ship_pending(
                root,
                &brokers.topic,
                brokers.ocsf.as_deref(),
                &shipper,
                &settings,
                || !crate::record::stop_requested(),
            );
            let node = root.display().to_string();
            result.with_context(|| format!("shipping {node} (shipped {} windows before the error; the next run continues from there)", done.windows))?;
            shipped += done.envelopes;
            reports.push((node, done));
        }
        if !follow || crate::record::stop_requested() {
            break;
        }
        if shipped == 0 {
            std::thread::sleep(Duration::from_millis(500));
        }
    }
    for (node, p) in &reports {
        if json {
            println!(
                "{}",
                serde_json::json!({
                    "store": node, "topic": brokers.topic, "windows": p.windows,
                    "envelopes": p.envelopes, "messages": p.messages, "bytes": p.bytes,
                    "lag_windows": p.lag_windows, "lag_ms": p.lag_ms, "ocsf_events": p.ocsf_events,
                })
            );
        } else {
            println!(
                "{node}: shipped {} windows ({} envelopes, {} messages, {} bytes) to {}; {} completed windows left",
                p.windows, p.envelopes, p.messages, p.bytes, brokers.topic, p.lag_windows
            );
        }
    }
    Ok(())
}

/// Counters of `ritma run`'s shipping thread.
#[derive(Default)]
pub struct ShipCounters {
    pub windows: AtomicU64,
    pub failures: AtomicU64,
    pub lag_windows: AtomicU64,
    pub lag_ms: AtomicU64,
    /// Newest cosigned checkpoint size kept.
    pub cosigned_size: AtomicU64,
}

/// `ritma run`'s shipping thread: ships the store from its cursor as windows are sealed,
/// never holding capture or sealing up (a broker that is down costs disk only), and
/// keeps the newest checkpoint a witness cosigned.
pub struct RunShipper {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
    pub counters: Arc<ShipCounters>,
}

impl RunShipper {
    pub fn start(args: &RunShipArgs, root: &Path, node: &str) -> Result<Option<Self>> {
        let Some(brokers) = &args.kafka_brokers else {
            return Ok(None);
        };
        check_topic(&args.kafka_topic)?;
        check_topic(&args.kafka_checkpoint_topic)?;
        if let Some(t) = &args.kafka_ocsf {
            check_topic(t)?;
        }
        let settings = settings(brokers, args.kafka_max_message_bytes, &[])?;
        // A broker that is down at the start is an outage like any other, but a topic that
        // does not exist is a mistake to say now.
        let mut topics = vec![args.kafka_topic.as_str()];
        topics.extend(args.kafka_ocsf.as_deref());
        let shipper = settings.producer()?;
        match shipper.check_topics(&topics, Duration::from_secs(5)) {
            Err(e @ ritma_transport::TransportError::NoTopic { .. }) => return Err(e.into()),
            Err(e) => eprintln!("ritma: shipping will wait for the brokers: {e}"),
            Ok(()) => {}
        }
        let stop = Arc::new(AtomicBool::new(false));
        let counters = Arc::new(ShipCounters::default());
        let (root, topic, node) = (root.to_owned(), args.kafka_topic.clone(), node.to_owned());
        let ocsf = args.kafka_ocsf.clone();
        let feed = CosignedFeed::open(&settings, &args.kafka_checkpoint_topic, &root, &node)?;
        let thread = {
            let (stop, counters) = (stop.clone(), counters.clone());
            std::thread::Builder::new()
                .name("ritma:ship".into())
                .spawn(move || {
                    let topics = (topic.as_str(), ocsf.as_deref());
                    ship_loop(&root, topics, &shipper, &settings, feed, &stop, &counters)
                })?
        };
        eprintln!(
            "ritma: shipping node {node} to {} on {brokers}",
            args.kafka_topic
        );
        Ok(Some(RunShipper {
            stop,
            thread: Some(thread),
            counters,
        }))
    }

    /// Ships what is left within `grace`, then stops; what is not shipped stays in the
    /// store for the next run or `ritma ship`.
    pub fn finish(mut self, grace: Duration) -> ShipProgress {
        let until = Instant::now() + grace;
        while Instant::now() < until && self.counters.lag_windows.load(Ordering::Relaxed) > 0 {
            std::thread::sleep(Duration::from_millis(100));
        }
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        ShipProgress {
            windows: self.counters.windows.load(Ordering::Relaxed),
            lag_windows: self.counters.lag_windows.load(Ordering::Relaxed),
            lag_ms: self.counters.lag_ms.load(Ordering::Relaxed),
            failures: self.counters.failures.load(Ordering::Relaxed),
            ..Default::default()
        }
    }
}

fn ship_loop(
    root: &Path,
    (topic, ocsf): (&str, Option<&str>),
    shipper: &ritma_transport::Shipper,
    settings: &KafkaSettings,
    mut feed: CosignedFeed,
    stop: &AtomicBool,
    counters: &ShipCounters,
) {
    // A new window waits at most this long to be noticed (reading the store's newest window
    // is a few directory reads).
    let idle = Duration::from_millis(100);
    let mut backoff = idle;
    let mut failing = false;
    let history = || {
        let node = ritma_sinks::ship::ShipSource::open(root, topic)
            .ok()?
            .meta()
            .node
            .clone();
        Keystore::for_store(root).load_history(&node).ok()
    };
    let mut history_cache = None;
    while !stop.load(Ordering::Relaxed) {
        // The store is set up by the sealing thread; nothing to ship before.
        if !root.join("_meta/store.cbor").exists() {
            std::thread::sleep(Duration::from_millis(100));
            continue;
        }
        let (done, result) = ship_pending(root, topic, ocsf, shipper, settings, || {
            !stop.load(Ordering::Relaxed)
        });
        counters.windows.fetch_add(done.windows, Ordering::Relaxed);
        counters
            .lag_windows
            .store(done.lag_windows, Ordering::Relaxed);
        counters.lag_ms.store(done.lag_ms, Ordering::Relaxed);
        match result {
            Ok(()) => {
                if failing {
                    eprintln!("ritma: shipping resumed");
                }
                failing = false;
                backoff = idle;
            }
            Err(e) => {
                counters.failures.fetch_add(1, Ordering::Relaxed);
                if !failing {
                    eprintln!("ritma: shipping failed, retrying from the store: {e}");
                }
                failing = true;
                backoff = (backoff * 2).min(Duration::from_secs(5));
            }
        }
        if history_cache.is_none() {
            history_cache = history();
        }
        if let Some(h) = &history_cache {
            if let Ok(Some(size)) = feed.poll(h) {
                counters.cosigned_size.store(size, Ordering::Relaxed);
            }
        }
        let nap = if done.envelopes == 0 {
            backoff
        } else {
            Duration::ZERO
        };
        let until = Instant::now() + nap;
        while Instant::now() < until && !stop.load(Ordering::Relaxed) {
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// `ritma ingest`'s options.
#[derive(Args, Debug)]
pub struct IngestArgs {
    #[command(flatten)]
    pub brokers: BrokerArgs,
    /// The consumer group: processes of one group share the nodes.
    #[arg(long)]
    pub group: String,
    /// The receiving store: nodes/<node>/ per node, quarantine/, alarms/, ingest/.
    #[arg(long)]
    pub out: PathBuf,
    /// A directory of the nodes' verifier keys (`<anything>.vkey`, named `ritma/<node>`):
    /// a node without one is refused.
    #[arg(long, env = "RITMA_TRUST", value_name = "DIR")]
    pub trust: PathBuf,
    /// Cosign each accepted checkpoint as this witness (`ritma keys new NAME --out FILE
    /// --witness`) and publish it on the checkpoint topic.
    #[arg(long, value_name = "FILE")]
    pub witness_key: Option<PathBuf>,
    /// Stop after this many seconds without a message (default: run until SIGINT/SIGTERM).
    #[arg(long, value_name = "SECONDS")]
    pub idle_exit: Option<f64>,
    /// The consumer group session timeout.
    #[arg(long, default_value_t = 10_000)]
    pub session_timeout_ms: u64,
    /// Also load every window accepted into ClickHouse (as `ritma load` does, exactly
    /// once), e.g. http://127.0.0.1:8123/?database=ritma; the password in
    /// CLICKHOUSE_PASSWORD. A server away delays the load, never the ingest.
    #[arg(long, value_name = "URL")]
    pub clickhouse: Option<String>,
    /// Seconds between loads of newly accepted windows into ClickHouse.
    #[arg(long, default_value_t = 2.0, value_name = "SECONDS")]
    pub clickhouse_interval: f64,
}

pub fn ingest_cmd(a: IngestArgs) -> Result<()> {
    check_topic(&a.brokers.topic)?;
    check_topic(&a.brokers.checkpoint_topic)?;
    let settings = a.brokers.settings()?;
    let trust = crate::trust::read_trust_dir(&a.trust)?;
    if trust.is_empty() {
        bail!("{}: no `.vkey` files to trust", a.trust.display());
    }
    let witness = a
        .witness_key
        .as_deref()
        .map(|p| -> Result<Cosigner> {
            let text = ritma_sinks::keys::load_private_key_text(p)?;
            Cosigner::from_private_key_text(&text).map_err(|e| anyhow!("{}: {e}", p.display()))
        })
        .transpose()?;
    let mut topics = vec![a.brokers.topic.as_str()];
    if witness.is_some() {
        topics.push(&a.brokers.checkpoint_topic);
    }
    settings.check_topics(&topics, Duration::from_secs(10))?;
    let mirror = Mirror::open(&a.out, trust)?;
    let warehouse = match &a.clickhouse {
        Some(url) => Some(crate::load::Loader::connect(url)?),
        None => None,
    };
    crate::record::install_stop_handlers()?;
    let opts = IngestOptions {
        settings,
        group: a.group.clone(),
        topic: a.brokers.topic.clone(),
        checkpoint_topic: a.brokers.checkpoint_topic.clone(),
        witness,
        session_timeout: Duration::from_millis(a.session_timeout_ms),
        idle_exit: a.idle_exit.map(Duration::from_secs_f64),
    };
    eprintln!(
        "ritma: ingesting {} into {} as group {}",
        opts.topic,
        a.out.display(),
        a.group
    );
    let ingest_done = AtomicBool::new(false);
    let interval = Duration::from_secs_f64(a.clickhouse_interval.clamp(0.1, 3600.0));
    let (stats, loaded) = std::thread::scope(|scope| {
        // Loads what the ingest accepted, on its own thread: ClickHouse away or slow holds
        // back the tables, never the evidence.
        let loading = warehouse.map(|mut loader| {
            let (out, done) = (&a.out, &ingest_done);
            scope.spawn(move || -> Result<()> {
                let mut failing = false;
                while !done.load(Ordering::SeqCst) {
                    let tick = Instant::now();
                    while tick.elapsed() < interval && !done.load(Ordering::SeqCst) {
                        std::thread::sleep(Duration::from_millis(50));
                    }
                    // One loader per store: of several ingest processes sharing `out`,
                    // whichever holds the lock loads every node; the others skip the pass.
                    let Ok(_lock) = ritma_sinks::store::StoreLock::acquire_load(
                        out,
                        &ritma_sinks::store::StoreLock::lock_dir(),
                    ) else {
                        continue;
                    };
                    match loader.load_dir(out, None) {
                        Ok(_) if failing => {
                            eprintln!("ritma: ingest: ClickHouse loads again");
                            failing = false;
                        }
                        Ok(_) => {}
                        Err(e) => {
                            if !failing {
                                eprintln!("ritma: ingest: ClickHouse: {e:#} (retrying)");
                            }
                            failing = true;
                        }
                    }
                }
                // What arrived last, loaded before the ingest exits (waiting for another
                // process's pass to end, if one is running).
                let lock_dir = ritma_sinks::store::StoreLock::lock_dir();
                let deadline = Instant::now() + Duration::from_secs(600);
                let _lock = loop {
                    match ritma_sinks::store::StoreLock::acquire_load(out, &lock_dir) {
                        Ok(l) => break l,
                        Err(e) if Instant::now() > deadline => return Err(e.into()),
                        Err(_) => std::thread::sleep(Duration::from_millis(200)),
                    }
                };
                loader.load_dir(out, None).map(|_| ())
            })
        });
        let stats = ingest(&mirror, &opts, crate::record::stop_flag(), |node, o| {
            if let Outcome::Quarantined { reason, detail } = o {
                eprintln!("ritma: {node}: quarantined ({}): {detail}", reason.as_str());
            }
        });
        ingest_done.store(true, Ordering::SeqCst);
        let loaded = loading.map(|h| {
            h.join()
                .unwrap_or_else(|_| Err(anyhow!("the ClickHouse loader panicked")))
        });
        (stats, loaded)
    });
    let stats = stats?;
    let q: Vec<String> = stats
        .quarantined
        .iter()
        .map(|(r, n)| format!("{n} {r}"))
        .collect();
    println!(
        "ingested {} messages: {} envelopes applied, {} redelivered, {} checkpoints cosigned, quarantined: {}",
        stats.messages,
        stats.applied,
        stats.redelivered,
        stats.cosigned,
        if q.is_empty() { "none".into() } else { q.join(", ") }
    );
    if let Some(Err(e)) = loaded {
        return Err(e).with_context(|| {
            format!(
                "the evidence is ingested, but not all of it is in ClickHouse: `ritma load {} --clickhouse URL` completes it",
                a.out.display()
            )
        });
    }
    Ok(())
}
