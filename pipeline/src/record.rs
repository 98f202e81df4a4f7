//! `ritma record`: live capture with the eBPF sensor into a `.rtrace` trace file.
//!
//! One run (RunMeta: node, boot id, 1 s windows, the wall − monotonic clock offset read
//! once, first seq 0), then a batch of the processes running at the start (`present`
//! events from the sensor's snapshot), then batch frames of the events in read order (seq assigned here),
//! each preceded by the frames it needs: a loss frame per reason whose counter grew since
//! the last batch, and a cgroups frame naming the cgroup ids the batch uses for the first
//! time. The writer fsyncs every frame.
//!
//! Loss reasons (FORMAT.md §7.2, loss frames):
//!
//! | sensor counter (`DropCounts`) | LossReason |
//! |---|---|
//! | `ringbuf_full` (ring buffer full) | `KernelRingbufFull` |
//! | `stash_full` (the kernel's bounded syscall stash shed the call) | `QueueShed` |
//! | `unrepresentable` (an event the raw model cannot hold) | `DecodeError` |
//! | a malformed ring-buffer record (consumed, not decodable) | `DecodeError` |
//!
//! Every second the recorder checks the sensor's hooks (`HookMonitor`): a program found
//! silent is attached again, and health frames record it (probe_detached, with the calls
//! the gap cost when its partner program counted them, then probe_reattached); a replay
//! seals them as health records and the counted calls as probe_detached loss.

use crate::exes::{ExeCatalog, ExePolicy, ExeStats};
use crate::live_link::LiveSender;
use crate::replay::WalPos;
use anyhow::{bail, Context, Result};
use ritma_ebpf::system::{self, Capability};
use ritma_ebpf::{DropCounts, EbpfError, Gap, HookMonitor, Sensor, SensorConfig};
use ritma_schemas::records::{is_valid_node_name, EventType, HealthKind, LossReason, RunMeta};
use ritma_sources::raw::RawEvent;
use ritma_sources::trace::{
    blob_parts, CgroupEntry, HealthNote, TraceItem, TraceWriter, MAX_CGROUP_PATH_LEN,
    MAX_EXE_ENTRIES, MAX_LOSS_COUNT,
};
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// Most events in one batch frame.
pub const BATCH_EVENTS: usize = 8192;
/// Longest a read event waits for its batch frame.
pub const BATCH_AGE: Duration = Duration::from_millis(200);
/// Longest one poll of the ring buffer: the stop flag is checked at least this often.
const POLL_SLICE: Duration = Duration::from_millis(100);
pub(crate) const WINDOW_LEN_NS: u64 = 1_000_000_000;
/// Where the cgroup v2 hierarchy is usually mounted (else found in /proc/self/mountinfo):
/// a cgroup's id is the inode number of its directory there.
const CGROUP_ROOT: &str = "/sys/fs/cgroup";

/// Set by SIGINT/SIGTERM.
static STOP: AtomicBool = AtomicBool::new(false);

extern "C" fn on_stop_signal(_sig: libc::c_int) {
    STOP.store(true, Ordering::SeqCst);
}

pub(crate) fn install_stop_handlers() -> Result<()> {
    for sig in [libc::SIGINT, libc::SIGTERM] {
        // SAFETY: a zeroed sigaction is valid; the handler only stores to an atomic
        // (async-signal-safe), and sa_mask is initialised with sigemptyset.
        let rc = unsafe {
            let mut sa: libc::sigaction = std::mem::zeroed();
            sa.sa_sigaction = on_stop_signal as extern "C" fn(libc::c_int) as usize;
            libc::sigemptyset(&mut sa.sa_mask);
            sa.sa_flags = 0;
            libc::sigaction(sig, &sa, std::ptr::null_mut())
        };
        if rc != 0 {
            return Err(std::io::Error::last_os_error())
                .with_context(|| format!("installing the handler of signal {sig}"));
        }
    }
    Ok(())
}

pub struct RecordConfig {
    pub out: PathBuf,
    /// Stop after this long (else only on SIGINT/SIGTERM).
    pub duration: Option<Duration>,
    pub node: String,
    /// Raw module-syscall hooks on kernels without their tracepoints (`SensorConfig`).
    pub raw_module_hooks: bool,
    pub exes: ExePolicy,
}

/// What a recording wrote.
#[derive(Debug, Default)]
pub struct RecordSummary {
    pub events: u64,
    /// Of `events`, the processes running at the start (the first batch).
    pub present: u64,
    pub batches: u64,
    pub cgroups_named: u64,
    /// Executables hashed and kept.
    pub exes: ExeStats,
    /// Events counted in loss frames (and probe gaps in health frames), by reason.
    pub lost: BTreeMap<LossReason, u64>,
    /// Sensor programs found silent and attached again; of those gaps, how many
    /// nothing counted (both programs of a syscall pair, or a lifecycle program).
    pub probes_reattached: u64,
    pub probe_gaps_uncounted: u64,
    pub bytes: u64,
    pub elapsed: Duration,
}

pub fn record(cfg: RecordConfig) -> Result<RecordSummary> {
    check_node(&cfg.node)?;
    if cfg.out.exists() {
        bail!(
            "{}: already exists; ritma record never overwrites a trace",
            cfg.out.display()
        );
    }
    let live = start_capture(
        &cfg.node,
        "ritma record v1",
        &cfg.exes,
        cfg.raw_module_hooks,
        0,
        None,
    )?;
    let mut writer = TraceWriter::create(&cfg.out)?;
    let run = writer.add_run(&live.meta)?;
    let mut rec = Recorder::new(writer, run, None, None, cfg.exes);
    let deadline = cfg.duration.map(|d| live.started + d);
    let (mut sensor, mut drops_seen) = (live.sensor, live.drops_seen);
    capture(&mut rec, &mut sensor, &mut drops_seen, deadline)?;
    let mut summary = rec.summary;
    summary.elapsed = live.started.elapsed();
    // Detaching every program takes the kernel a few seconds (RCU grace periods).
    drop(sensor);
    summary.bytes = std::fs::metadata(&cfg.out).map_or(0, |m| m.len());
    Ok(summary)
}

/// Fails unless `node` is a valid node name.
pub fn check_node(node: &str) -> Result<()> {
    if !is_valid_node_name(node) {
        bail!(
            "node name `{node}` is invalid: use 1-64 of A-Z a-z 0-9 . _ - not starting with `.` (--node or RITMA_NODE_ID)"
        );
    }
    Ok(())
}

/// A started sensor and the run it records.
pub struct LiveStart {
    pub sensor: Sensor,
    pub meta: RunMeta,
    /// The drop counters at load: nothing before them is ours to report.
    pub drops_seen: DropCounts,
    pub started: Instant,
    /// Kernel monotonic ns at the start (the clock of the events' `mono_ns`).
    pub started_mono_ns: u64,
    /// The events the previous capture of the store left in flight when it was killed.
    pub in_flight: Option<u64>,
    /// Where this capture's counters are pinned, to remove after a clean stop.
    pub pinned: Option<PathBuf>,
}

/// What live capture needs: the sensor's capabilities, and CAP_SYS_PTRACE for the
/// executable catalog's /proc/<pid>/exe (deploy/systemd/ritma.service grants exactly these).
pub const CAPTURE_CAPABILITIES: [Capability; 4] = [
    system::CAP_BPF,
    system::CAP_PERFMON,
    system::CAP_DAC_READ_SEARCH,
    system::CAP_SYS_PTRACE,
];

/// Installs the stop handlers, starts the sensor and describes the run: node, this
/// boot, 1 s windows, the wall − monotonic offset read now, `first_seq` (0, or where a
/// continued store's WAL left off). `tool` names the command in the run's config digest.
pub fn start_capture(
    node: &str,
    tool: &str,
    exes: &ExePolicy,
    raw_module_hooks: bool,
    first_seq: u64,
    pin_counters: Option<&Path>,
) -> Result<LiveStart> {
    let boot_id = read_boot_id()?;
    // Checked together so one error names every capability the deployment forgot.
    ritma_ebpf::system::check_capabilities(&CAPTURE_CAPABILITIES)
        .context("checking the privileges of live capture")?;
    install_stop_handlers()?;
    let (in_flight, pinned) = match pin_counters {
        Some(dir) => take_pinned(dir),
        None => (None, None),
    };
    let sensor_cfg = SensorConfig {
        run_counts: false,
        raw_module_hooks,
        pin_counters: pinned.clone(),
        ..SensorConfig::default()
    };
    let sensor = Sensor::start(sensor_cfg.clone()).context("starting the eBPF sensor")?;
    if !sensor.unwatched().is_empty() {
        eprintln!(
            "ritma: this kernel has no tracepoints for {}: those syscalls are not recorded{}",
            sensor.unwatched().join(", "),
            if sensor.unwatched().contains(&"init_module") {
                " (--raw-module-hooks watches the module ones at a cost on every syscall)"
            } else {
                ""
            }
        );
    }
    let drops_seen = sensor
        .drops()
        .context("reading the sensor's drop counters")?;
    let wall_minus_mono_ns = wall_minus_mono_ns();
    let started = Instant::now();
    let started_mono_ns = mono_now_ns();
    let started_wall_ns = clock_ns(libc::CLOCK_REALTIME).max(0) as u64;
    let meta = RunMeta {
        node: node.to_owned(),
        boot_id,
        sensor_version: concat!("ritma-ebpf ", env!("CARGO_PKG_VERSION")).into(),
        config_digest: ritma_schemas::hash::blake3(
            format!(
                "{tool} ring_bytes={} ignore_prefixes={:?} window_len_ns={WINDOW_LEN_NS} {}{}",
                sensor_cfg.ring_bytes,
                sensor_cfg.ignore_prefixes,
                exes.describe(),
                // Only when set, so the default's digest is what it was.
                if raw_module_hooks {
                    " raw_module_hooks"
                } else {
                    ""
                }
            )
            .as_bytes(),
        ),
        window_len_ns: WINDOW_LEN_NS,
        wall_minus_mono_ns,
        first_seq,
        started_wall_ns,
    };
    Ok(LiveStart {
        sensor,
        meta,
        drops_seen,
        started,
        started_mono_ns,
        in_flight,
        pinned,
    })
}

/// What the last capture pinned in `dir` left unaccounted (its events in flight when it
/// was killed; `None` if it stopped cleanly or none ran), with the pins removed; and `dir`
/// if this capture can pin its own counters there (else why not, said on stderr).
fn take_pinned(dir: &Path) -> (Option<u64>, Option<PathBuf>) {
    let in_flight = match ritma_ebpf::pinned::unaccounted_in(dir) {
        Ok(n) => n,
        Err(e) => {
            eprintln!("ritma: {e}; the events in flight when the last run stopped are not counted");
            None
        }
    };
    if let Err(e) = ritma_ebpf::pinned::unpin(dir) {
        eprintln!("ritma: {e}");
    }
    match ritma_ebpf::pinned::usable(dir) {
        Ok(()) => (in_flight, Some(dir.to_owned())),
        Err(why) => {
            eprintln!("ritma: cannot pin the sensor's counters ({why}): if this run is killed, the events then in flight will not be counted");
            (in_flight, None)
        }
    }
}

/// Whether SIGINT or SIGTERM asked the capture to stop.
pub fn stop_requested() -> bool {
    STOP.load(Ordering::SeqCst)
}

/// The flag SIGINT and SIGTERM set (after [`install_stop_handlers`]).
pub fn stop_flag() -> &'static AtomicBool {
    &STOP
}

/// The capture loop: reads the ring buffer until `deadline` or a stop signal, writing
/// batches of at most `BATCH_EVENTS` events or `BATCH_AGE` old (and, in a live run, a
/// clock frame as each window closes), then drains what the ring still holds.
pub fn capture(
    rec: &mut Recorder,
    sensor: &mut Sensor,
    drops_seen: &mut DropCounts,
    deadline: Option<Instant>,
) -> Result<()> {
    let mut batch: Vec<RawEvent> = Vec::with_capacity(BATCH_EVENTS);
    let mut batch_started: Option<Instant> = None;
    // The processes already running come first, so their actors are known from the start.
    let mut read = Vec::new();
    sensor
        .snapshot_processes(&mut read)
        .context("reading the processes running at the start")?;
    rec.summary.present = read.len() as u64;
    rec.take(&mut read, sensor, drops_seen, &mut batch)?;
    rec.flush(sensor, drops_seen, &mut batch)?;
    let mut hooks = HookMonitor::new(sensor).context("reading the sensor's call counts")?;
    loop {
        if let Some(m) = &rec.metrics {
            m.capture_turned(true);
            if let Some(fill) = sensor.ring_fill() {
                m.ring_fill(fill);
            }
        }
        let now = Instant::now();
        if stop_requested() || deadline.is_some_and(|d| now >= d) {
            break;
        }
        let mut timeout = POLL_SLICE;
        if let Some(d) = deadline {
            timeout = timeout.min(d - now);
        }
        if let Some(b) = batch_started {
            timeout = timeout.min((b + BATCH_AGE).saturating_duration_since(now));
        }
        if let Some(c) = &rec.clock {
            timeout = timeout.min(c.due_in(mono_now_ns()));
        }
        timeout = timeout.min(hooks.due_in());
        rec.poll(sensor, timeout, &mut read)?;
        rec.take(&mut read, sensor, drops_seen, &mut batch)?;
        // The batch's age counts from its first event still waiting.
        batch_started = (!batch.is_empty()).then(|| batch_started.unwrap_or_else(Instant::now));
        if batch_started.is_some_and(|b| b.elapsed() >= BATCH_AGE) {
            rec.flush(sensor, drops_seen, &mut batch)?;
            batch_started = None;
        }
        let now_mono = mono_now_ns();
        if rec.clock.as_ref().is_some_and(|c| c.due(now_mono)) {
            // Everything read before the clock reading goes ahead of the clock frame.
            let mut rounds = 0;
            while rounds < MAX_DRAIN_ROUNDS && rec.poll(sensor, Duration::ZERO, &mut read)? {
                rec.take(&mut read, sensor, drops_seen, &mut batch)?;
                rounds += 1;
            }
            rec.flush(sensor, drops_seen, &mut batch)?;
            batch_started = None;
            rec.write_clock(now_mono)?;
        }
        if hooks.due_in().is_zero() {
            let gaps = hooks
                .check(sensor)
                .context("checking that the sensor's programs still run")?;
            if !gaps.is_empty() {
                // The events read before the gap was found go ahead of its record.
                rec.flush(sensor, drops_seen, &mut batch)?;
                batch_started = None;
                rec.write_gaps(&gaps)?;
            }
        }
    }
    // What is still in the ring buffer was captured before the stop: keep it.
    while rec.poll(sensor, Duration::ZERO, &mut read)? {
        rec.take(&mut read, sensor, drops_seen, &mut batch)?;
    }
    // The last batch, then any loss counted after it (a trailing loss frame).
    rec.flush(sensor, drops_seen, &mut batch)?;
    rec.write_losses(sensor, drops_seen)
}

/// When a live run writes clock frames: as the wall time minus the slack enters a new
/// window (FORMAT.md §7.2), so a replay closes windows where the live run did.
pub struct ClockFrames {
    pub wall_minus_mono_ns: i64,
    pub window_len_ns: u64,
    pub slack_ns: u64,
    /// Windows below this were closed by the last clock frame.
    pub closed_below: u64,
}

impl ClockFrames {
    fn closed_below_at(&self, mono_ns: u64) -> u64 {
        let wall = (mono_ns as i128 + self.wall_minus_mono_ns as i128).max(0) as u64;
        wall.saturating_sub(self.slack_ns) / self.window_len_ns
    }

    /// Whether a clock frame at `mono_ns` would close another window.
    fn due(&self, mono_ns: u64) -> bool {
        self.closed_below_at(mono_ns) > self.closed_below
    }

    /// How long until a clock frame is due.
    fn due_in(&self, mono_ns: u64) -> Duration {
        let wall = (mono_ns as i128 + self.wall_minus_mono_ns as i128).max(0) as u64;
        let at = (self.closed_below + 1) * self.window_len_ns + self.slack_ns;
        Duration::from_nanos(at.saturating_sub(wall))
    }
}

/// One hour in ns: `ritma run`'s WAL files each hold one.
const HOUR_NS: u64 = 3_600_000_000_000;

/// Where and from when a live run's WAL goes on in a new file (one per hour, so the
/// hours sealed and saved can be deleted whole).
struct WalRotation {
    dir: PathBuf,
    /// The run's run frame, repeated by each new file's continue frame.
    meta: RunMeta,
    next_hour_ns: u64,
}

/// Most zero-timeout polls that drain the ring before a clock frame (so a flood cannot
/// hold the frame back forever; what is left is read after it, as late events).
const MAX_DRAIN_ROUNDS: usize = 16;

/// Writes what the sensor reads as trace frames (and, in a live run, hands each frame
/// written to the dataflow).
pub struct Recorder {
    writer: TraceWriter,
    run: u16,
    next_seq: u64,
    cgroups: CgroupNames,
    /// Executables' hashes and the bytes Full capture keeps.
    exes: ExeCatalog,
    /// Malformed ring-buffer records seen, and how many of them loss frames hold.
    decode_errors: u64,
    decode_errors_written: u64,
    /// Whether the sensor's pinned counters are told what the WAL holds (`account`).
    accounting: bool,
    /// A live run's dataflow: every frame is sent after it is on disk (the WAL first).
    items: Option<LiveSender>,
    clock: Option<ClockFrames>,
    /// A live run's WAL goes on in a new file at each hour.
    rotation: Option<WalRotation>,
    /// Bytes written to the WAL files before the current one.
    bytes_in_earlier_files: u64,
    pub summary: RecordSummary,
    /// A live run's metrics endpoint, when it has one.
    pub metrics: Option<std::sync::Arc<crate::metrics::RunMetrics>>,
}

impl Recorder {
    pub fn new(
        writer: TraceWriter,
        run: u16,
        items: Option<LiveSender>,
        clock: Option<ClockFrames>,
        exes: ExePolicy,
    ) -> Self {
        let next_seq = writer.next_seq(run).unwrap_or(0);
        Recorder {
            writer,
            run,
            next_seq,
            cgroups: CgroupNames::default(),
            exes: ExeCatalog::new(exes),
            decode_errors: 0,
            decode_errors_written: 0,
            accounting: true,
            items,
            clock,
            rotation: None,
            bytes_in_earlier_files: 0,
            summary: RecordSummary::default(),
            metrics: None,
        }
    }

    /// The run's next seq in the trace (events read but not yet written come after it).
    fn written_seq(&self) -> u64 {
        self.writer.next_seq(self.run).unwrap_or(0)
    }

    /// Hands the frame written last to the dataflow (never waiting for it: see
    /// `live_link`); fails once the dataflow has stopped.
    fn send(&self, item: TraceItem) -> Result<()> {
        match &self.items {
            Some(link) => {
                let pos = WalPos {
                    file: self.writer.path().to_owned(),
                    offset: self.writer.last_frame_offset(),
                };
                link.send(item, pos, self.writer.end_offset())
                    .map_err(|_| anyhow::anyhow!("the sealing dataflow stopped"))
            }
            None => Ok(()),
        }
    }

    /// Starts a new WAL file at each hour (FORMAT.md §8): called with `mono_ns`, the
    /// newest time of the batch or clock frame about to be written.
    pub fn rotate_wal_hourly(&mut self, dir: PathBuf, meta: RunMeta) {
        let wall = meta.started_wall_ns;
        self.rotation = Some(WalRotation {
            dir,
            next_hour_ns: (wall / HOUR_NS + 1) * HOUR_NS,
            meta,
        });
    }

    /// The WAL file being written.
    pub fn wal_path(&self) -> &Path {
        self.writer.path()
    }

    /// Bytes this recorder wrote, over every WAL file it went on in.
    pub fn bytes_written(&self) -> u64 {
        self.bytes_in_earlier_files + self.writer.end_offset()
    }

    /// Goes on in a new WAL file if `mono_ns` is in an hour after the current file's.
    fn rotate_if_due(&mut self, mono_ns: u64) -> Result<()> {
        let Some(r) = &mut self.rotation else {
            return Ok(());
        };
        let wall = (mono_ns as i128 + r.meta.wall_minus_mono_ns as i128).max(0) as u64;
        if wall < r.next_hour_ns {
            return Ok(());
        }
        let hour_ns = wall / HOUR_NS * HOUR_NS;
        r.next_hour_ns = hour_ns + HOUR_NS;
        let last: u64 = self
            .writer
            .path()
            .file_stem()
            .and_then(|n| n.to_str()?.parse().ok())
            .unwrap_or(0);
        // Named by its hour, after every earlier file even if the clock went back.
        let path = r.dir.join(format!("{:019}.rtrace", hour_ns.max(last + 1)));
        let next_seq = self.writer.next_seq(self.run).unwrap_or(0);
        let mut writer = TraceWriter::create(&path)?;
        let run = writer.continue_run(&r.meta, next_seq)?;
        let meta = r.meta.clone();
        self.bytes_in_earlier_files += self.writer.end_offset();
        self.writer = writer;
        self.run = run;
        self.send(TraceItem::Continue {
            run,
            meta,
            next_seq,
        })
    }

    /// A clock frame (FORMAT.md §7.2): every event read before `mono_ns` is written.
    pub fn write_clock(&mut self, mono_ns: u64) -> Result<()> {
        self.rotate_if_due(mono_ns)?;
        self.writer.append_clock(self.run, mono_ns)?;
        if let Some(c) = &mut self.clock {
            c.closed_below = c.closed_below.max(c.closed_below_at(mono_ns));
        }
        let at_seq = self.written_seq();
        self.send(TraceItem::Clock {
            run: self.run,
            at_seq,
            mono_ns,
        })
    }

    /// One poll of the ring buffer into `read`; false when it had nothing. A malformed
    /// record is counted for a decode_error loss frame, not fatal.
    fn poll(
        &mut self,
        sensor: &mut Sensor,
        timeout: Duration,
        read: &mut Vec<RawEvent>,
    ) -> Result<bool> {
        match sensor.poll(timeout, read) {
            Ok(n) => Ok(n > 0),
            Err(EbpfError::Wire(e)) => {
                if self.decode_errors == 0 {
                    eprintln!("ritma: a malformed ring-buffer record was dropped ({e}); such drops are recorded as decode_error loss");
                }
                self.decode_errors += 1;
                Ok(true)
            }
            Err(e) => Err(anyhow::Error::new(e).context("reading the sensor's ring buffer")),
        }
    }

    /// Numbers the events read, in read order, into `batch`, flushing it when full.
    fn take(
        &mut self,
        read: &mut Vec<RawEvent>,
        sensor: &mut Sensor,
        drops_seen: &mut DropCounts,
        batch: &mut Vec<RawEvent>,
    ) -> Result<()> {
        for mut e in read.drain(..) {
            // Read now: the file may be gone by the time the batch is written.
            self.exes.observe(&e);
            e.seq = self.next_seq;
            self.next_seq += 1;
            batch.push(e);
            if batch.len() >= BATCH_EVENTS {
                self.flush(sensor, drops_seen, batch)?;
            }
        }
        Ok(())
    }

    /// Writes the loss frames and cgroups frame `batch` needs, then the batch (as frames
    /// of at most `BATCH_EVENTS` events), and empties it.
    fn flush(
        &mut self,
        sensor: &mut Sensor,
        drops_seen: &mut DropCounts,
        batch: &mut Vec<RawEvent>,
    ) -> Result<()> {
        self.write_losses(sensor, drops_seen)?;
        if batch.is_empty() {
            return Ok(());
        }
        let entries = self.cgroups.entries_for(batch);
        if !entries.is_empty() {
            let first_seq = batch[0].seq;
            self.writer.append_cgroups(self.run, &entries)?;
            self.summary.cgroups_named += entries.len() as u64;
            self.send(TraceItem::Cgroups {
                run: self.run,
                first_seq,
                entries,
            })?;
        }
        self.write_exes()?;
        if let Some(newest) = batch.iter().map(|e| e.mono_ns).max() {
            self.rotate_if_due(newest)?;
        }
        // `take` flushes at BATCH_EVENTS: a batch is one frame.
        self.writer.append_batch(self.run, batch)?;
        self.summary.batches += 1;
        self.summary.events += batch.len() as u64;
        if let Some(m) = &self.metrics {
            count_types(m, batch);
            m.cas_bytes(self.summary.exes.blob_bytes);
        }
        if self.items.is_some() {
            let events = std::mem::replace(batch, Vec::with_capacity(BATCH_EVENTS));
            self.send(TraceItem::Batch {
                run: self.run,
                events,
            })?;
        }
        batch.clear();
        self.account(sensor, drops_seen);
        Ok(())
    }

    /// Tells the sensor how much of its counters the WAL now holds: the ring's records
    /// written as events (the process snapshot is not from the ring) or as decode_error
    /// loss, and the drops written as loss (FORMAT.md §7.2, in-flight loss).
    fn account(&mut self, sensor: &mut Sensor, drops_written: &DropCounts) {
        if !self.accounting {
            return;
        }
        // The snapshot's events are counted as read, before their batch is written.
        let total = (self.summary.events.saturating_sub(self.summary.present))
            + self.decode_errors_written
            + drops_written.total();
        if let Err(e) = sensor.account(total) {
            eprintln!(
                "ritma: {e}; if this run is killed, its events in flight will be overcounted"
            );
            self.accounting = false;
        }
    }

    /// Seals `count` events the store's previous capture left in flight when it was
    /// killed, as in_flight_at_stop loss before this run's first event.
    pub fn write_in_flight(&mut self, count: u64) -> Result<()> {
        self.write_loss(LossReason::InFlightAtStop, count)
    }

    /// Loss frames for `n` events lost for `reason` (several when `n` exceeds one frame's
    /// count), counted in the summary and the metrics and handed to the dataflow.
    fn write_loss(&mut self, reason: LossReason, mut n: u64) -> Result<()> {
        while n > 0 {
            let part = n.min(MAX_LOSS_COUNT);
            self.writer.append_loss(self.run, reason, part)?;
            *self.summary.lost.entry(reason).or_default() += part;
            if let Some(m) = &self.metrics {
                m.lost(reason, part);
            }
            n -= part;
            self.send(TraceItem::Loss {
                run: self.run,
                at_seq: self.written_seq(),
                reason,
                count: part,
            })?;
        }
        Ok(())
    }

    /// The bytes Full capture keeps, then the hashes of the executables the next
    /// events name (FORMAT.md §7.2: exes and blob frames).
    fn write_exes(&mut self) -> Result<()> {
        let (blobs, entries) = self.exes.take_pending();
        for data in blobs {
            let hash = self.writer.append_blob(self.run, &data)?;
            if self.items.is_some() {
                let size = data.len() as u64;
                for (offset, part) in blob_parts(&data) {
                    self.send(TraceItem::BlobPart {
                        run: self.run,
                        hash,
                        size,
                        offset,
                        data: part.to_vec(),
                    })?;
                }
            }
        }
        for chunk in entries.chunks(MAX_EXE_ENTRIES as usize) {
            let first_seq = self.written_seq();
            self.writer.append_exes(self.run, chunk)?;
            self.send(TraceItem::Exes {
                run: self.run,
                first_seq,
                entries: chunk.to_vec(),
            })?;
        }
        self.summary.exes = self.exes.stats;
        Ok(())
    }

    /// Health frames for programs found silent: probe_detached with the calls the gap
    /// cost, then probe_reattached once the program runs again.
    fn write_gaps(&mut self, gaps: &[Gap]) -> Result<()> {
        for gap in gaps {
            let lost = gap.lost.map(|n| n.min(MAX_LOSS_COUNT));
            let counted = lost.map_or("uncounted".to_string(), |n| format!("{n} calls"));
            match &gap.reattached {
                Ok(_) => eprintln!(
                    "ritma: sensor program {} had stopped running; attached again ({counted} missed, sealed as probe_detached)",
                    gap.program
                ),
                Err(e) => eprintln!(
                    "ritma: sensor program {} has stopped running and could not be attached again: {e} ({counted} missed so far)",
                    gap.program
                ),
            }
            self.write_health(
                HealthKind::ProbeDetached,
                gap.program,
                gap.detected_mono_ns,
                lost,
            )?;
            match lost {
                Some(n) => {
                    *self
                        .summary
                        .lost
                        .entry(LossReason::ProbeDetached)
                        .or_default() += n;
                    if let Some(m) = &self.metrics {
                        m.lost(LossReason::ProbeDetached, n);
                    }
                }
                None => self.summary.probe_gaps_uncounted += 1,
            }
            if let Ok(at) = gap.reattached {
                self.write_health(HealthKind::ProbeReattached, gap.program, at, Some(0))?;
                self.summary.probes_reattached += 1;
            }
        }
        Ok(())
    }

    fn write_health(
        &mut self,
        kind: HealthKind,
        subject: &str,
        mono_ns: u64,
        lost: Option<u64>,
    ) -> Result<()> {
        self.writer
            .append_health(self.run, kind, subject, mono_ns, lost)?;
        self.send(TraceItem::Health(HealthNote {
            run: self.run,
            at_seq: self.written_seq(),
            kind,
            subject: subject.to_owned(),
            mono_ns,
            lost,
        }))
    }

    /// A loss frame per reason whose count grew since the last call.
    fn write_losses(&mut self, sensor: &mut Sensor, seen: &mut DropCounts) -> Result<()> {
        let now = sensor
            .drops()
            .context("reading the sensor's drop counters")?;
        let mut grown: BTreeMap<LossReason, u64> = BTreeMap::new();
        let mut add = |reason, n: u64| {
            if n > 0 {
                *grown.entry(reason).or_default() += n;
            }
        };
        add(
            LossReason::KernelRingbufFull,
            now.ringbuf_full.saturating_sub(seen.ringbuf_full),
        );
        add(
            LossReason::QueueShed,
            now.stash_full.saturating_sub(seen.stash_full),
        );
        add(
            LossReason::DecodeError,
            now.unrepresentable.saturating_sub(seen.unrepresentable),
        );
        add(
            LossReason::DecodeError,
            self.decode_errors - self.decode_errors_written,
        );
        for (reason, n) in grown {
            self.write_loss(reason, n)?;
        }
        *seen = now;
        self.decode_errors_written = self.decode_errors;
        self.account(sensor, seen);
        Ok(())
    }
}

/// Cgroup ids already named in the trace, and the paths of the last scan.
#[derive(Default)]
struct CgroupNames {
    written: HashSet<u64>,
    scanned: HashMap<u64, Vec<u8>>,
    /// Ids a scan after their event did not find (the cgroup is gone): not scanned for again.
    unfindable: HashSet<u64>,
}

impl CgroupNames {
    /// The (id, path) entries to write before `batch`: its ids not yet named, found in
    /// the cgroup tree (rescanned at most once, when an id is unknown).
    fn entries_for(&mut self, batch: &[RawEvent]) -> Vec<CgroupEntry> {
        let new: BTreeSet<u64> = batch
            .iter()
            .map(|e| e.task.cgroup_id)
            .filter(|id| !self.written.contains(id) && !self.unfindable.contains(id))
            .collect();
        if new.iter().any(|id| !self.scanned.contains_key(id)) {
            let root = cgroup2_mount().unwrap_or_else(|| PathBuf::from(CGROUP_ROOT));
            self.scanned = scan_cgroups(&root);
        }
        let mut entries = Vec::new();
        for id in new {
            match self.scanned.get(&id) {
                Some(path) => {
                    self.written.insert(id);
                    entries.push((id, path.clone()));
                }
                None => {
                    self.unfindable.insert(id);
                }
            }
        }
        entries
    }
}

/// The mount point of the whole cgroup v2 hierarchy (a `cgroup2` mount of its root), if
/// mounted: `/sys/fs/cgroup` on unified systems, `/sys/fs/cgroup/unified` on hybrid ones.
fn cgroup2_mount() -> Option<PathBuf> {
    let text = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
    text.lines().find_map(|line| {
        // id parent major:minor root mount-point options… - fstype source super-options
        let (left, right) = line.split_once(" - ")?;
        let f: Vec<&str> = left.split(' ').collect();
        if right.split(' ').next() != Some("cgroup2") || f.get(3) != Some(&"/") {
            return None;
        }
        Some(PathBuf::from(unescape_mountinfo(f.get(4)?)))
    })
}

/// Mount points in mountinfo escape space, tab, newline and backslash as `\ooo`.
fn unescape_mountinfo(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && i + 3 < b.len()
            && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c))
        {
            out.push((b[i + 1] - b'0') * 64 + (b[i + 2] - b'0') * 8 + (b[i + 3] - b'0'));
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Every cgroup directory under `root` by inode number (= cgroup v2 id), as its path
/// below `root` ("/" for the root). Unreadable directories are skipped.
pub fn scan_cgroups(root: &Path) -> HashMap<u64, Vec<u8>> {
    use std::os::unix::ffi::OsStrExt;
    let mut out = HashMap::new();
    // A cgroup v1 hierarchy's inode numbers are not cgroup v2 ids.
    if !root.join("cgroup.controllers").exists() {
        return out;
    }
    let Ok(meta) = std::fs::symlink_metadata(root) else {
        return out;
    };
    out.insert(meta.ino(), b"/".to_vec());
    let mut stack = vec![(root.to_path_buf(), Vec::new())];
    while let Some((dir, rel)) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let Ok(ft) = entry.file_type() else { continue };
            if !ft.is_dir() {
                continue;
            }
            let Ok(meta) = entry.metadata() else { continue };
            let mut path: Vec<u8> = rel.clone();
            path.push(b'/');
            path.extend_from_slice(entry.file_name().as_bytes());
            if path.len() <= MAX_CGROUP_PATH_LEN {
                out.insert(meta.ino(), path.clone());
            }
            stack.push((entry.path(), path));
        }
    }
    out
}

fn read_boot_id() -> Result<[u8; 16]> {
    let path = "/proc/sys/kernel/random/boot_id";
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {path}"))?;
    parse_boot_id(&text).with_context(|| format!("{path}: not a UUID: {:?}", text.trim()))
}

fn parse_boot_id(text: &str) -> Result<[u8; 16]> {
    let hex: Vec<u8> = text.trim().bytes().filter(|b| *b != b'-').collect();
    if hex.len() != 32 {
        bail!("{} hex digits, not 32", hex.len());
    }
    let digit = |b: u8| -> Result<u8> {
        (b as char)
            .to_digit(16)
            .map(|d| d as u8)
            .context("not a hex digit")
    };
    let mut out = [0u8; 16];
    for (i, pair) in hex.chunks(2).enumerate() {
        out[i] = digit(pair[0])? << 4 | digit(pair[1])?;
    }
    Ok(out)
}

fn clock_ns(clock: libc::clockid_t) -> i64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: ts is a valid timespec to write to.
    unsafe { libc::clock_gettime(clock, &mut ts) };
    ts.tv_sec * 1_000_000_000 + ts.tv_nsec
}

/// Kernel monotonic ns now (the clock of `bpf_ktime_get_ns`): the sensor's own reader.
pub use ritma_ebpf::health::mono_now_ns;

/// Wall-clock ns minus kernel monotonic ns (the clock of `bpf_ktime_get_ns`), read once.
fn wall_minus_mono_ns() -> i64 {
    let wall = clock_ns(libc::CLOCK_REALTIME);
    let mono = clock_ns(libc::CLOCK_MONOTONIC);
    wall - mono
}

/// Counts a batch's events by type into the metrics (a lookup per type, not per event).
fn count_types(m: &crate::metrics::RunMetrics, batch: &[RawEvent]) {
    let mut by_type = [0u64; 32];
    for e in batch {
        by_type[e.body.event_type() as usize % 32] += 1;
    }
    for t in EventType::ALL {
        if by_type[*t as usize % 32] > 0 {
            m.events(*t, by_type[*t as usize % 32]);
        }
    }
}

/// The one-line summary printed on stderr.
pub fn summary_line(out: &Path, s: &RecordSummary) -> String {
    let reasons: Vec<String> = [
        LossReason::KernelRingbufFull,
        LossReason::QueueShed,
        LossReason::DecodeError,
        LossReason::ProbeDetached,
    ]
    .iter()
    .copied()
    // A kill's in-flight loss is said only by the run after it.
    .chain(
        s.lost
            .contains_key(&LossReason::InFlightAtStop)
            .then_some(LossReason::InFlightAtStop),
    )
    .map(|r| format!("{} {}", r.name(), s.lost.get(&r).copied().unwrap_or(0)))
    .collect();
    format!(
        "ritma: recorded {} events ({} processes running at the start) in {} batches to {} ({} bytes) in {:.1} s; lost {} ({}); {} sensor programs attached again ({} gaps uncounted); {} cgroups named; {} executables hashed ({} gone before they could be read), {} kept ({} bytes; {} over the size limit or budget)",
        s.events,
        s.present,
        s.batches,
        out.display(),
        s.bytes,
        s.elapsed.as_secs_f64(),
        s.lost.values().sum::<u64>(),
        reasons.join(", "),
        s.probes_reattached,
        s.probe_gaps_uncounted,
        s.cgroups_named,
        s.exes.hashed,
        s.exes.unreadable,
        s.exes.blobs_kept,
        s.exes.blob_bytes,
        s.exes.blobs_skipped
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn boot_ids_parse_from_the_kernel_text() {
        let id = parse_boot_id("0123abcd-4567-89ef-0123-456789abcdef\n").unwrap();
        assert_eq!(id[0], 0x01);
        assert_eq!(id[15], 0xef);
        assert!(parse_boot_id("0123").is_err());
        assert!(parse_boot_id("0123abcd-4567-89ef-0123-456789abcdeg").is_err());
        // This machine's own boot id reads.
        read_boot_id().unwrap();
    }

    #[test]
    fn the_cgroup_scan_names_directories_by_inode() {
        let d = tempfile::tempdir().unwrap();
        // Not a cgroup v2 mount (no cgroup.controllers): nothing.
        assert!(scan_cgroups(d.path()).is_empty());
        std::fs::write(d.path().join("cgroup.controllers"), "").unwrap();
        std::fs::create_dir_all(d.path().join("a.slice/b.scope")).unwrap();
        let ino = |p: &str| std::fs::metadata(d.path().join(p)).unwrap().ino();
        let m = scan_cgroups(d.path());
        assert_eq!(m.len(), 3);
        assert_eq!(m[&ino("")], b"/");
        assert_eq!(m[&ino("a.slice")], b"/a.slice");
        assert_eq!(m[&ino("a.slice/b.scope")], b"/a.slice/b.scope");
    }

    #[test]
    fn mountinfo_escapes_are_undone() {
        assert_eq!(unescape_mountinfo(r"/a\040b"), "/a b");
        assert_eq!(unescape_mountinfo("/sys/fs/cgroup"), "/sys/fs/cgroup");
        assert_eq!(unescape_mountinfo(r"/x\0"), r"/x\0");
    }

    /// Root only (CI=true fails without it): the live-capture check of the tests/ crate.
    fn live_allowed(test: &str) -> bool {
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } == 0 {
            return true;
        }
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "{test}: CI=true but not root"
        );
        eprintln!("skipping {test}: not root (live eBPF tests need root; with CI=true this fails)");
        false
    }

    /// Replaces, as an attacker who made this process close a descriptor would, every
    /// BPF link of program `prog_id` this process holds with /dev/null (dup2).
    fn remove_links_of(prog_id: u32) -> usize {
        use std::os::fd::AsRawFd;
        let null = std::fs::File::open("/dev/null").unwrap();
        let links = links_of(prog_id);
        for &fd in &links {
            // SAFETY: both descriptors are open; dup2 replaces fd atomically.
            assert_eq!(unsafe { libc::dup2(null.as_raw_fd(), fd) }, fd);
        }
        links.len()
    }

    /// This process's BPF link descriptors of program `prog_id`.
    fn links_of(prog_id: u32) -> Vec<i32> {
        let mut links = Vec::new();
        for entry in std::fs::read_dir("/proc/self/fd").unwrap() {
            let Ok(fd) = entry.unwrap().file_name().to_string_lossy().parse::<i32>() else {
                continue;
            };
            let is_link = std::fs::read_link(format!("/proc/self/fd/{fd}"))
                .is_ok_and(|t| t.to_string_lossy() == "anon_inode:bpf_link");
            let info =
                std::fs::read_to_string(format!("/proc/self/fdinfo/{fd}")).unwrap_or_default();
            let of_prog = info
                .lines()
                .any(|l| l.split_whitespace().eq(["prog_id:", &prog_id.to_string()]));
            if is_link && of_prog {
                links.push(fd);
            }
        }
        links
    }

    #[test]
    fn a_removed_hook_is_attached_again_and_its_gap_sealed_with_its_loss() {
        use ritma_sources::raw::RawBody;
        use ritma_sources::trace::TraceReader;
        let test = "a_removed_hook_is_attached_again_and_its_gap_sealed_with_its_loss";
        if !live_allowed(test) {
            return;
        }
        let d = tempfile::tempdir().unwrap();
        let trace = d.path().join("t.rtrace");
        let node = "health-test";
        let live = start_capture(
            node,
            "ritma record v1",
            &ExePolicy::default(),
            false,
            0,
            None,
        )
        .unwrap();
        let mut writer = TraceWriter::create(&trace).unwrap();
        let run = writer.add_run(&live.meta).unwrap();
        let mut rec = Recorder::new(writer, run, None, None, ExePolicy::default());
        let (mut sensor, mut drops_seen) = (live.sensor, live.drops_seen);
        let prog_id = sensor.program_id("exit_openat").unwrap();
        let token = format!("/nonexistent-ritma-gap-{}", std::process::id());
        let opener = {
            let token = token.clone();
            std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(1500));
                assert!(remove_links_of(prog_id) >= 1);
                // Opens until a while after the check attached the program again (however
                // late a busy machine makes it): those before are lost (and counted), those
                // after are captured again.
                let mut opened = Vec::new();
                let started = Instant::now();
                let mut reattached: Option<Instant> = None;
                let mut i = 0;
                while started.elapsed() < Duration::from_secs(6)
                    && reattached.is_none_or(|t| t.elapsed() < Duration::from_millis(400))
                {
                    if reattached.is_none() && !links_of(prog_id).is_empty() {
                        reattached = Some(Instant::now());
                    }
                    let path = format!("{token}-{i}");
                    let mut c = std::process::Command::new("/bin/cat")
                        .arg(&path)
                        .stderr(std::process::Stdio::null())
                        .spawn()
                        .unwrap();
                    opened.push((c.id(), path));
                    c.wait().unwrap();
                    i += 1;
                    std::thread::sleep(Duration::from_millis(20));
                }
                opened
            })
        };
        let deadline = live.started + Duration::from_secs(9);
        capture(&mut rec, &mut sensor, &mut drops_seen, Some(deadline)).unwrap();
        let opened = opener.join().unwrap();
        let summary = std::mem::take(&mut rec.summary);
        drop(rec);
        drop(sensor);

        // The trace: probe_detached with a count, then probe_reattached, for exit_openat only.
        let mut r = TraceReader::open(&trace).unwrap();
        let (mut notes, mut captured) = (Vec::new(), Vec::new());
        while let Some(item) = r.next_item().unwrap() {
            match item {
                TraceItem::Health(h) => notes.push(h),
                TraceItem::Batch { events, .. } => {
                    for e in events {
                        if let RawBody::Open { path, .. } = &e.body {
                            if path.starts_with(token.as_bytes()) {
                                captured.push((e.task.pid, path.clone(), e.mono_ns));
                            }
                        }
                    }
                }
                _ => {}
            }
        }
        assert_eq!(notes.len(), 2, "{notes:?}");
        let (detached, reattached) = (&notes[0], &notes[1]);
        assert_eq!(detached.kind, HealthKind::ProbeDetached);
        assert_eq!(reattached.kind, HealthKind::ProbeReattached);
        assert!(notes.iter().all(|n| n.subject == "exit_openat"));
        assert!(detached.mono_ns <= reattached.mono_ns);
        let lost = detached.lost.expect("enter_openat counted the gap");
        // Every open of ours the gap hid is among the calls counted lost (with any other
        // process's opens in the gap); those after the re-attach are captured.
        let missed: Vec<_> = opened
            .iter()
            .filter(|(pid, path)| {
                !captured
                    .iter()
                    .any(|(p, cp, _)| p == pid && cp == path.as_bytes())
            })
            .collect();
        assert!(!missed.is_empty(), "the gap hid no open of ours");
        assert!(
            missed.len() as u64 <= lost,
            "{} opens missed, {lost} counted",
            missed.len()
        );
        assert!(
            captured.iter().any(|(_, _, t)| *t > reattached.mono_ns),
            "an open after the re-attach is captured"
        );
        assert_eq!(summary.probes_reattached, 1);
        assert_eq!(summary.lost.get(&LossReason::ProbeDetached), Some(&lost));

        // Replayed: both health records sealed in one window with the loss, copied to
        // _meta/health/, and the store verifies.
        let out = d.path().join("out");
        crate::run::ensure_signing_key(&out, node).unwrap();
        crate::replay::replay(crate::replay::ReplayConfig {
            traces: vec![trace],
            out: out.clone(),
            workers: 2,
            key: None,
            slack_ns: crate::replay::DEFAULT_SLACK_NS,
            mode: ritma_schemas::records::CaptureMode::Thin,
            taint_ttl_ns: 60_000_000_000,
            metrics: None,
            resume: None,
            wal: false,
        })
        .unwrap();
        let reports = ritma_sinks::verify::verify_store(&out, None).unwrap();
        assert_eq!(reports[0].lost, summary.lost.values().sum::<u64>());
        let mut copies = Vec::new();
        let mut stack = vec![out.join("_meta/health")];
        while let Some(dir) = stack.pop() {
            for e in std::fs::read_dir(dir).unwrap() {
                let p = e.unwrap().path();
                if p.is_dir() {
                    stack.push(p);
                } else {
                    copies.push(p);
                }
            }
        }
        copies.sort();
        assert_eq!(copies.len(), 2, "{copies:?}");
        use ritma_schemas::records::{HealthRecord, Record};
        let sealed: Vec<HealthRecord> = copies
            .iter()
            .map(|p| HealthRecord::decode(&std::fs::read(p).unwrap()).unwrap())
            .collect();
        assert_eq!(sealed[0].kind, HealthKind::ProbeDetached);
        assert_eq!(sealed[0].lost, Some(lost));
        assert_eq!(sealed[1].kind, HealthKind::ProbeReattached);
        assert_eq!(sealed[0].window, sealed[1].window);
        assert_eq!(sealed[0].node, node);
    }

    #[test]
    fn the_clock_offset_is_wall_minus_monotonic() {
        let off = wall_minus_mono_ns();
        let wall = clock_ns(libc::CLOCK_REALTIME);
        let mono = clock_ns(libc::CLOCK_MONOTONIC);
        assert!((wall - mono - off).abs() < 1_000_000_000);
    }
}
