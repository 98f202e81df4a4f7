//! `ritma run`: live capture through the dataflow into a signed store.
//!
//! The capture loop (`record::capture`) writes every frame to the store's WAL
//! (`wal/<start>.rtrace`, fsynced) and only then hands it to the dataflow, which seals
//! windows as clock frames close them. Windows are decided by the frames alone, so
//! `ritma replay` of the WAL gives the same store byte for byte.
//!
//! A store that already holds a run (stopped, or killed) is continued: its WAL is sealed
//! again first, every file it already holds coming out the same, then the new run's
//! frames follow in a WAL file of their own, so the store is still the replay of
//! `wal/*` (FORMAT §7.2, several runs of one node).

use crate::exes::ExePolicy;
use crate::metrics::{MetricsServer, RunMetrics};
use crate::record::{self, ClockFrames, RecordSummary, Recorder};
use crate::replay::{self, ReplayConfig, ReplaySummary};
use anyhow::{bail, Context, Result};
use ritma_schemas::records::CaptureMode;
use ritma_sinks::keys::Keystore;
use ritma_sinks::store::StoreLock;
use ritma_sources::trace::TraceWriter;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// Frames the capture loop may hand ahead of the dataflow before it waits (and the
/// ring buffer, not memory, takes up the slack; its drops are counted as loss).
const ITEMS_IN_FLIGHT: usize = 64;

/// How long a stopping run waits for its last windows to be shipped.
const SHIP_GRACE: Duration = Duration::from_secs(10);

pub struct RunConfig {
    pub out: PathBuf,
    pub duration: Option<Duration>,
    pub node: String,
    pub workers: usize,
    pub taint_ttl_ns: u64,
    /// Raw module-syscall hooks on kernels without their tracepoints (`SensorConfig`).
    pub raw_module_hooks: bool,
    pub exes: ExePolicy,
    pub ship: crate::fleet::RunShipArgs,
    /// Where to serve metrics and health, and the seal lag /healthz tolerates.
    pub metrics: Option<(std::net::SocketAddr, u64)>,
}

/// What a live run did: the capture's counts and the sealing's.
pub struct RunSummary {
    pub wal: PathBuf,
    pub capture: RecordSummary,
    pub sealed: ReplaySummary,
    /// What the shipping thread shipped, when it ran.
    pub shipped: Option<ritma_transport::ship::ShipProgress>,
}

/// The WAL directory of a store.
pub fn wal_dir(store: &Path) -> PathBuf {
    store.join("wal")
}

pub fn run(cfg: RunConfig) -> Result<RunSummary> {
    record::check_node(&cfg.node)?;
    let lock = StoreLock::acquire(&cfg.out, &StoreLock::lock_dir())?;
    let (starts, earlier): (Vec<u64>, Vec<PathBuf>) = wal_files(&cfg.out)?.into_iter().unzip();
    if earlier.is_empty() && cfg.out.join("windows").exists() {
        bail!(
            "{} holds sealed windows but no WAL: it was not written by `ritma run` and cannot be continued (give another --out)",
            cfg.out.display()
        );
    }
    let next_seq = wal_next_seq(&earlier, &cfg.node)?;
    let live = record::start_capture(
        &cfg.node,
        "ritma run v1",
        &cfg.exes,
        cfg.raw_module_hooks,
        next_seq,
    )?;
    let created_key = ensure_signing_key(&cfg.out, &cfg.node)?;
    let wal = wal_dir(&cfg.out);
    std::fs::create_dir_all(&wal).with_context(|| format!("creating {}", wal.display()))?;
    // Named by its start, after every earlier file even if the clock went back.
    let name = starts.last().map_or(live.meta.started_wall_ns, |s| {
        live.meta.started_wall_ns.max(s + 1)
    });
    let wal = wal.join(format!("{name:019}.rtrace"));
    let mut writer = TraceWriter::create(&wal)?;
    let run = writer.add_run(&live.meta)?;

    let metrics = cfg.metrics.map(|(_, max_lag)| {
        Arc::new(RunMetrics::new(
            live.meta.window_len_ns,
            max_lag,
            cfg.ship.kafka_brokers.is_some(),
        ))
    });
    let _server = match (cfg.metrics, &metrics) {
        (Some((addr, _)), Some(m)) => {
            let server = MetricsServer::start(addr, m.clone())?;
            eprintln!(
                "ritma: metrics on http://{0}/metrics, health on http://{0}/healthz",
                server.addr
            );
            if !server.addr.ip().is_loopback() {
                eprintln!("ritma: the metrics listen on {}, beyond this host: anyone who can reach it reads the counters", server.addr.ip());
            }
            Some(server)
        }
        _ => None,
    };
    let seal_cfg = ReplayConfig {
        traces: earlier.clone(),
        out: cfg.out.clone(),
        workers: cfg.workers,
        key: None,
        slack_ns: replay::DEFAULT_SLACK_NS,
        mode: CaptureMode::Thin,
        taint_ttl_ns: cfg.taint_ttl_ns,
        metrics: metrics.clone(),
    };
    let (tx, rx) = std::sync::mpsc::sync_channel(ITEMS_IN_FLIGHT);
    // The run frame first: the dataflow learns the node from it, as a replay does.
    tx.send(ritma_sources::trace::TraceItem::Run {
        run,
        meta: live.meta.clone(),
    })
    .expect("the receiver is alive");
    let sealing = replay::start_live(&seal_cfg, live.meta.clone(), rx, lock)?;
    let shipper = crate::fleet::RunShipper::start(&cfg.ship, &cfg.out, &cfg.node)?;
    if let (Some(m), Some(s)) = (&metrics, &shipper) {
        m.shipping(s.counters.clone());
    }
    if let Some(vkey) = created_key {
        eprintln!(
            "ritma: created the signing key of node {} (verifier key: {vkey})",
            cfg.node
        );
    }
    if !earlier.is_empty() {
        eprintln!(
            "ritma: continuing the store: sealing its {} earlier WAL file(s) again first (what it holds must come out the same), from seq {} on",
            earlier.len(),
            next_seq
        );
    }
    eprintln!(
        "ritma: capturing node {} into {} (WAL {}); stop with Ctrl-C",
        cfg.node,
        cfg.out.display(),
        wal.display()
    );
    let clock = ClockFrames {
        wall_minus_mono_ns: live.meta.wall_minus_mono_ns,
        window_len_ns: live.meta.window_len_ns,
        slack_ns: replay::DEFAULT_SLACK_NS,
        closed_below: 0,
    };
    let mut rec = Recorder::new(writer, run, Some(tx), Some(clock), cfg.exes);
    rec.metrics = metrics.clone();
    let deadline = cfg.duration.map(|d| live.started + d);
    let (mut sensor, mut drops_seen) = (live.sensor, live.drops_seen);
    // The store starts at the run's start: the first window is the one holding it.
    let captured = rec
        .write_clock(live.started_mono_ns)
        .and_then(|()| record::capture(&mut rec, &mut sensor, &mut drops_seen, deadline))
        // The stop time: the store covers the run to its end, empty windows too.
        .and_then(|()| rec.write_clock(record::mono_now_ns()));
    if let Some(m) = &metrics {
        m.capture_turned(false);
    }
    let mut capture = std::mem::take(&mut rec.summary);
    capture.elapsed = live.started.elapsed();
    // Hanging up ends the dataflow's input: it seals every window that holds anything.
    drop(rec);
    drop(sensor);
    if let Some(e) = sealing.error() {
        bail!("{e}");
    }
    let sealed = sealing.finish()?;
    // The last windows go out within a few seconds, or wait in the store.
    let shipped = shipper.map(|s| s.finish(SHIP_GRACE));
    captured?;
    capture.bytes = std::fs::metadata(&wal).map_or(0, |m| m.len());
    Ok(RunSummary {
        wal,
        capture,
        sealed,
        shipped,
    })
}

/// The store's WAL files, `wal/<start ns>.rtrace`, with their starts, in the order
/// they were written.
pub fn wal_files(store: &Path) -> Result<Vec<(u64, PathBuf)>> {
    let dir = wal_dir(store);
    let entries = match std::fs::read_dir(&dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e).with_context(|| format!("listing {}", dir.display())),
    };
    let mut files = Vec::new();
    for e in entries {
        let e = e.with_context(|| format!("listing {}", dir.display()))?;
        let name = e.file_name();
        let name = name.to_string_lossy();
        // Temporary names (a file being created) start with a dot.
        if name.starts_with('.') {
            continue;
        }
        let start = name
            .strip_suffix(".rtrace")
            .and_then(|s| s.parse::<u64>().ok())
            .with_context(|| {
                format!(
                    "{}: not a WAL file name (<start ns>.rtrace); move it out of the WAL",
                    e.path().display()
                )
            })?;
        files.push((start, e.path()));
    }
    files.sort();
    Ok(files)
}

/// The seq a run continuing the WAL files `wal` (of node `node` only) starts at: one
/// past the last event they hold whole. A torn tail (a run killed while writing) ends
/// a file, a corrupt frame is skipped, as replay does.
pub fn wal_next_seq(wal: &[PathBuf], node: &str) -> Result<u64> {
    use ritma_sources::trace::{TraceError, TraceItem, TraceReader};
    let mut next = 0;
    for path in wal {
        let mut reader = TraceReader::open(path)?;
        loop {
            match reader.next_item() {
                Ok(Some(TraceItem::Run { meta, .. })) => {
                    if meta.node != node {
                        bail!(
                            "{}: a run of node {}, but this run is node {node}: a store holds one node",
                            path.display(),
                            meta.node
                        );
                    }
                    next = next.max(meta.first_seq);
                }
                Ok(Some(TraceItem::Batch { events, .. })) => {
                    if let Some(e) = events.last() {
                        next = next.max(e.seq + 1);
                    }
                }
                Ok(Some(_)) => {}
                Ok(None) | Err(TraceError::TornTail { .. }) => break,
                Err(e) if e.is_skippable() => {
                    if reader.skip_corrupt()?.is_none() {
                        break;
                    }
                }
                Err(e) => return Err(e.into()),
            }
        }
    }
    Ok(next)
}

/// Creates the store's signing key for `node` if it has none; returns its vkey then.
pub(crate) fn ensure_signing_key(out: &Path, node: &str) -> Result<Option<String>> {
    let keys = Keystore::for_store(out);
    if keys.private_path().exists() {
        return Ok(None);
    }
    let mut seed = [0u8; 32];
    crate::getrandom(&mut seed)?;
    let signer = keys.init(node, seed)?;
    Ok(Some(signer.verifier().to_vkey()))
}
