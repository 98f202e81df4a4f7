//! `ritma run`: live capture through the dataflow into a signed store.
//!
//! The capture loop (`record::capture`) writes every frame to the store's WAL
//! (`wal/<start>.rtrace`, fsynced) and only then hands it to the dataflow, which seals
//! windows as clock frames close them. Windows are decided by the frames alone, so
//! `ritma replay` of the WAL gives the same store byte for byte.
//!
//! A store that already holds a run (stopped, or killed) is continued: from the
//! dataflow state saved at its last hour seal, its WAL is sealed again from the item
//! after that state (every file the store already holds coming out the same), then the
//! new run's frames follow in a WAL file of their own, so the store is still what a
//! replay of the whole WAL would give (FORMAT §7.2, several runs of one node; §3.15).
//! The WAL goes on in a new file each hour, and the files before the one the restart
//! point names are deleted once the hour is saved (and shipped, when shipping).

use crate::exes::ExePolicy;
use crate::live_link;
use crate::metrics::{MetricsServer, RunMetrics};
use crate::record::{self, ClockFrames, RecordSummary, Recorder};
use crate::replay::{self, ReplayConfig, ReplaySummary, Resume, WalPos};
use anyhow::{bail, Context, Result};
use ritma_schemas::records::CaptureMode;
use ritma_sinks::keys::Keystore;
use ritma_sinks::store::StoreLock;
use ritma_sinks::wal::{self, RestartPoint};
use ritma_sources::trace::TraceWriter;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// Frames the capture loop may hand ahead of the dataflow through memory; beyond them
/// the dataflow reads the frames back from the WAL (`live_link`), so capture never waits.
const ITEMS_IN_FLIGHT: usize = 8;

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
    /// Where WAL files no restart needs go (default: deleted).
    pub wal_archive: Option<PathBuf>,
    /// Delete sealed hours this long after they ended, while running.
    pub keep_ns: Option<u64>,
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
    let (starts, wal_all): (Vec<u64>, Vec<PathBuf>) = wal::wal_files(&cfg.out)?.into_iter().unzip();
    if wal_all.is_empty() && cfg.out.join("windows").exists() {
        bail!(
            "{} holds sealed windows but no WAL: it was not written by `ritma run` and cannot be continued (give another --out)",
            cfg.out.display()
        );
    }
    let (resume, earlier) = restart_from(&cfg.out, &cfg.node, record::WINDOW_LEN_NS, &wal_all)?;
    let next_seq = wal_next_seq(&earlier, &cfg.node)?.max(resume.as_ref().map_or(0, |r| {
        r.state.feed.next_seq.unwrap_or(r.state.feed.run.first_seq)
    }));
    let pins = ritma_ebpf::pinned::dir_for(&store_id(&cfg.out)?);
    let live = record::start_capture(
        &cfg.node,
        "ritma run v1",
        &cfg.exes,
        cfg.raw_module_hooks,
        next_seq,
        Some(&pins),
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
    let run_pos = WalPos {
        file: wal.clone(),
        offset: writer.last_frame_offset(),
    };

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
        resume,
        wal: true,
    };
    let (tx, rx) = live_link::link(ITEMS_IN_FLIGHT);
    // The run frame first: the dataflow learns the node from it, as a replay does.
    let run_item = ritma_sources::trace::TraceItem::Run {
        run,
        meta: live.meta.clone(),
    };
    tx.send(run_item, run_pos, writer.end_offset())
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
        let from = match &seal_cfg.resume {
            Some(r) => format!(
                "from the state saved at window {} ({} UTC)",
                r.state.cut,
                ritma_sinks::retention::hour_label(r.state.prev_hour.hour + 1)
            ),
            None => "from its start".to_owned(),
        };
        eprintln!(
            "ritma: continuing the store {from}: sealing {} WAL file(s) again first (what it holds must come out the same); this run starts at seq {next_seq}",
            earlier.len(),
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
    rec.rotate_wal_hourly(wal_dir(&cfg.out), live.meta.clone());
    rec.metrics = metrics.clone();
    if let Some(n) = live.in_flight.filter(|&n| n > 0) {
        eprintln!("ritma: the store's last run was killed with {n} events in flight (in the kernel's ring buffer, or read and not yet written); sealed as in_flight_at_stop loss");
        rec.write_in_flight(n)?;
    }
    let trimmer = Housekeeping::start(Housekeeping {
        out: cfg.out.clone(),
        window_len_ns: live.meta.window_len_ns,
        shipping: shipper.is_some(),
        archive: cfg.wal_archive.clone(),
        keep_ns: cfg.keep_ns,
    });
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
    let wal = rec.wal_path().to_owned();
    capture.bytes = rec.bytes_written();
    // Hanging up ends the dataflow's input: it seals every window that holds anything.
    drop(rec);
    drop(sensor);
    // Stopped cleanly, everything the sensor produced is in the WAL: nothing in flight.
    if let (Ok(()), Some(dir)) = (&captured, &live.pinned) {
        if let Err(e) = ritma_ebpf::pinned::unpin(dir) {
            eprintln!("ritma: {e}");
        }
    }
    if let Some(e) = sealing.error() {
        bail!("{e}");
    }
    let sealed = sealing.finish()?;
    // The last windows go out within a few seconds, or wait in the store.
    let shipped = shipper.map(|s| s.finish(SHIP_GRACE));
    trimmer.finish()?;
    captured?;
    Ok(RunSummary {
        wal,
        capture,
        sealed,
        shipped,
    })
}

/// A name for the store at `out` among the BPF filesystem's pins: a hash of its canonical path.
fn store_id(out: &Path) -> Result<String> {
    let path = out
        .canonicalize()
        .with_context(|| format!("resolving {}", out.display()))?;
    let hash = blake3::hash(path.as_os_str().as_encoded_bytes());
    Ok(hash.to_hex()[..32].to_owned())
}

/// The seq a run continuing the WAL files `wal` (of node `node` only) starts at: one
/// past the last event they hold whole, read from the frames' headers alone (a restart
/// must not decode an hour of WAL before it captures again). A torn tail ends a file,
/// a corrupt frame is skipped, as replay does.
pub fn wal_next_seq(wal: &[PathBuf], node: &str) -> Result<u64> {
    use ritma_sources::trace::{TraceError, TraceItem, TraceReader};
    let mut next = 0;
    for path in wal {
        let mut reader = TraceReader::open(path)?;
        loop {
            match reader.skim() {
                Ok(Some(s)) => {
                    if let Some(TraceItem::Run { meta, .. } | TraceItem::Continue { meta, .. }) =
                        &s.item
                    {
                        if meta.node != node {
                            bail!(
                                "{}: a run of node {}, but this run is node {node}: a store holds one node",
                                path.display(),
                                meta.node
                            );
                        }
                    }
                    next = next.max(s.next_seq.unwrap_or(0));
                }
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

/// Where a continued store starts sealing again: from the state its restart point names
/// (checked against the store: its digest, the hour seal it follows, the next window's
/// record if sealed) and the WAL from the point's file on, or, without a restart point,
/// from the store's start and all of its WAL.
pub(crate) fn restart_from(
    out: &Path,
    node: &str,
    len: u64,
    wal: &[PathBuf],
) -> Result<(Option<Resume>, Vec<PathBuf>)> {
    let Some(point) = RestartPoint::read(out)? else {
        // A WAL trimmed to a later hour cannot be sealed again from the start.
        if let Some(first) = wal.first() {
            let mut reader = ritma_sources::trace::TraceReader::open(first)?;
            if let Ok(Some(ritma_sources::trace::TraceItem::Continue { .. })) = reader.next_item() {
                bail!(
                    "{}: the WAL starts inside a run (its earlier hours were deleted) and wal/{} is missing: the store cannot be continued (run into a new store)",
                    out.display(),
                    wal::RESTART_FILE
                );
            }
        }
        return Ok((None, wal.to_vec()));
    };
    let last = point
        .cut
        .checked_sub(1)
        .context("a restart point at window 0")?;
    let Some((state, digest)) = ritma_sinks::store::read_state(out, last, len)? else {
        bail!(
            "{}: wal/{} names the state saved after window {last}, which the store does not hold: the store cannot be continued",
            out.display(),
            wal::RESTART_FILE
        );
    };
    let state_file = out.join(ritma_sinks::store::WindowPaths::new(last, len).state());
    let refuse = |why: String| {
        anyhow::anyhow!(
            "{}: the state saved after window {last}: {why}; the store cannot be continued",
            state_file.display()
        )
    };
    if digest != point.state {
        return Err(refuse(format!(
            "its digest is not the one wal/{} names",
            wal::RESTART_FILE
        )));
    }
    if state.node != node || state.cut != point.cut || state.window_len_ns != len {
        return Err(refuse(format!(
            "it is node {}'s at window {} (windows of {} ns), not node {node}'s at {} ({len} ns)",
            state.node, state.cut, state.window_len_ns, point.cut
        )));
    }
    let paths = ritma_sinks::store::WindowPaths::new(last, len);
    let seal = std::fs::read(out.join(paths.hour_seal()))
        .ok()
        .and_then(|b| {
            <ritma_schemas::records::HourSeal as ritma_schemas::records::Record>::decode(&b).ok()
        });
    let matches_seal = seal.is_some_and(|s| {
        s.last_window == last
            && s.log_size == state.log_size
            && s.log_root == state.prev_hour.log_root
    });
    if !matches_seal {
        return Err(refuse(
            "it does not follow the hour seal of its hour".into(),
        ));
    }
    // The window sealed after the cut (window `cut`, or a later one after a downtime).
    let after = ritma_sinks::store::sealed_from(out, point.cut, len)?;
    if let Some(w) = after {
        let next = out.join(ritma_sinks::store::WindowPaths::new(w, len).record());
        let bytes = std::fs::read(&next).with_context(|| format!("reading {}", next.display()))?;
        let record =
            <ritma_schemas::records::WindowRecord as ritma_schemas::records::Record>::decode(
                &bytes,
            )
            .with_context(|| format!("reading {}", next.display()))?;
        if record.state != Some(digest) {
            return Err(refuse(format!("window {w} is sealed naming another state")));
        }
    }
    let mut matcher = ritma_operators::cone_match::ConeMatcher::new(
        ritma_operators::cone_match::builtin_cones(),
        usize::MAX,
        len,
    );
    matcher.restore(state.partials.clone()).map_err(refuse)?;
    let Some(i) = wal
        .iter()
        .position(|p| p.file_name().is_some_and(|n| *n == *point.file))
    else {
        return Err(refuse(format!(
            "its WAL file wal/{} is not there",
            point.file
        )));
    };
    let from = WalPos {
        file: wal[i].clone(),
        offset: point.offset,
    };
    Ok((
        Some(Resume {
            state,
            digest,
            from,
        }),
        wal[i..].to_vec(),
    ))
}

/// What a run deletes as it goes: the WAL hours no restart needs (every few seconds) and,
/// with a retention period, the sealed hours older than it (every minute).
struct Housekeeping {
    out: PathBuf,
    window_len_ns: u64,
    shipping: bool,
    archive: Option<PathBuf>,
    keep_ns: Option<u64>,
}

/// The housekeeping thread of a run.
struct Housekeeper {
    stop: Arc<std::sync::atomic::AtomicBool>,
    thread: std::thread::JoinHandle<Result<()>>,
}

impl Housekeeping {
    const TRIM_EVERY: Duration = Duration::from_secs(5);
    const RETAIN_EVERY: Duration = Duration::from_secs(60);

    fn start(self) -> Housekeeper {
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            use std::sync::atomic::Ordering;
            let mut retained: Option<std::time::Instant> = None;
            loop {
                let stopping = flag.load(Ordering::Relaxed);
                self.trim()?;
                if let Some(keep_ns) = self.keep_ns {
                    // Every minute, and once more at the end.
                    if stopping || retained.is_none_or(|t| t.elapsed() >= Self::RETAIN_EVERY) {
                        retained = Some(std::time::Instant::now());
                        // A retention failure is said and tried again; capture goes on.
                        if let Err(e) = self.retain(keep_ns) {
                            eprintln!("ritma: retention: {e:#}");
                        }
                    }
                }
                if stopping {
                    return Ok(());
                }
                let until = std::time::Instant::now() + Self::TRIM_EVERY;
                while std::time::Instant::now() < until && !flag.load(Ordering::Relaxed) {
                    std::thread::sleep(Duration::from_millis(100));
                }
            }
        });
        Housekeeper { stop, thread }
    }

    fn trim(&self) -> Result<()> {
        for path in wal::trim(
            &self.out,
            self.window_len_ns,
            self.shipping,
            self.archive.as_deref(),
        )? {
            let done = if self.archive.is_some() {
                "moved"
            } else {
                "deleted"
            };
            let shipped = if self.shipping { " and shipped" } else { "" };
            eprintln!(
                "ritma: {done} {} (its hour is sealed and saved{shipped})",
                path.display()
            );
        }
        Ok(())
    }

    /// Deletes the sealed hours older than `keep_ns`, each checked against its seal.
    fn retain(&self, keep_ns: u64) -> Result<()> {
        use ritma_sinks::retention;
        let now_ns = crate::wall_now_ns()?;
        let (plan, unchecked) = retention::plan_running(&self.out, keep_ns, now_ns)?;
        for (hour, why) in unchecked {
            eprintln!(
                "ritma: retention keeps hour {}: {why} (`ritma retention` verifies the store and can delete it)",
                retention::hour_label(hour)
            );
        }
        if plan.hours.is_empty() {
            return Ok(());
        }
        let done = retention::apply(&plan, keep_ns, now_ns)?;
        for h in &plan.hours {
            eprintln!(
                "ritma: retention deleted hour {} ({}; the signed deletion record stays)",
                retention::hour_label(h.deletion.hour),
                h.hour_dir.display()
            );
        }
        if done.cas_files > 0 {
            eprintln!(
                "ritma: retention freed {} CAS files ({} bytes) only deleted hours named",
                done.cas_files, done.cas_bytes
            );
        }
        Ok(())
    }
}

impl Housekeeper {
    /// Trims (and retains) once more and stops.
    fn finish(self) -> Result<()> {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        self.thread
            .join()
            .map_err(|_| anyhow::anyhow!("the housekeeping thread panicked"))?
    }
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
