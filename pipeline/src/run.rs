//! `ritma run`: live capture through the dataflow into a signed store.
//!
//! The capture loop (`record::capture`) writes every frame to the store's WAL
//! (`wal/<start>.rtrace`, fsynced) and only then hands it to the dataflow, which seals
//! windows as clock frames close them. Windows are decided by the frames alone, so
//! `ritma replay` of the WAL gives the same store byte for byte.

use crate::exes::ExePolicy;
use crate::record::{self, ClockFrames, RecordSummary, Recorder};
use crate::replay::{self, ReplayConfig, ReplaySummary};
use anyhow::{bail, Context, Result};
use ritma_schemas::records::CaptureMode;
use ritma_sinks::keys::Keystore;
use ritma_sinks::store::StoreLock;
use ritma_sources::trace::TraceWriter;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Frames the capture loop may hand ahead of the dataflow before it waits (and the
/// ring buffer, not memory, takes up the slack; its drops are counted as loss).
const ITEMS_IN_FLIGHT: usize = 64;

pub struct RunConfig {
    pub out: PathBuf,
    pub duration: Option<Duration>,
    pub node: String,
    pub workers: usize,
    pub taint_ttl_ns: u64,
    pub exes: ExePolicy,
}

/// What a live run did: the capture's counts and the sealing's.
pub struct RunSummary {
    pub wal: PathBuf,
    pub capture: RecordSummary,
    pub sealed: ReplaySummary,
}

/// The WAL directory of a store.
pub fn wal_dir(store: &Path) -> PathBuf {
    store.join("wal")
}

pub fn run(cfg: RunConfig) -> Result<RunSummary> {
    record::check_node(&cfg.node)?;
    if cfg.out.join("windows").exists() {
        bail!(
            "{} already holds sealed windows; `ritma run` starts a new store (give another --out): continuing a store's node log is not supported yet",
            cfg.out.display()
        );
    }
    let lock = StoreLock::acquire(&cfg.out, &StoreLock::lock_dir())?;
    let live = record::start_capture(&cfg.node, "ritma run v1", &cfg.exes)?;
    let created_key = ensure_signing_key(&cfg.out, &cfg.node)?;
    let wal = wal_dir(&cfg.out);
    std::fs::create_dir_all(&wal).with_context(|| format!("creating {}", wal.display()))?;
    let wal = wal.join(format!("{}.rtrace", live.meta.started_wall_ns));
    let mut writer = TraceWriter::create(&wal)?;
    let run = writer.add_run(&live.meta)?;

    let seal_cfg = ReplayConfig {
        traces: Vec::new(),
        out: cfg.out.clone(),
        workers: cfg.workers,
        key: None,
        slack_ns: replay::DEFAULT_SLACK_NS,
        mode: CaptureMode::Thin,
        taint_ttl_ns: cfg.taint_ttl_ns,
    };
    let (tx, rx) = std::sync::mpsc::sync_channel(ITEMS_IN_FLIGHT);
    // The run frame first: the dataflow learns the node from it, as a replay does.
    tx.send(ritma_sources::trace::TraceItem::Run {
        run,
        meta: live.meta.clone(),
    })
    .expect("the receiver is alive");
    let sealing = replay::start_live(&seal_cfg, live.meta.clone(), rx, lock)?;
    if let Some(vkey) = created_key {
        eprintln!(
            "ritma: created the signing key of node {} (verifier key: {vkey})",
            cfg.node
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
    let deadline = cfg.duration.map(|d| live.started + d);
    let (mut sensor, mut drops_seen) = (live.sensor, live.drops_seen);
    // The store starts at the run's start: the first window is the one holding it.
    let captured = rec
        .write_clock(live.started_mono_ns)
        .and_then(|()| record::capture(&mut rec, &mut sensor, &mut drops_seen, deadline))
        // The stop time: the store covers the run to its end, empty windows too.
        .and_then(|()| rec.write_clock(record::mono_now_ns()));
    let mut capture = std::mem::take(&mut rec.summary);
    capture.elapsed = live.started.elapsed();
    // Hanging up ends the dataflow's input: it seals every window that holds anything.
    drop(rec);
    drop(sensor);
    if let Some(e) = sealing.error() {
        bail!("{e}");
    }
    let sealed = sealing.finish()?;
    captured?;
    capture.bytes = std::fs::metadata(&wal).map_or(0, |m| m.len());
    Ok(RunSummary {
        wal,
        capture,
        sealed,
    })
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
