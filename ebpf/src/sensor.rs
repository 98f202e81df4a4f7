//! The live sensor: loads the embedded object, attaches every program, and turns
//! ring-buffer records into raw events.

use std::io::Read;
use std::os::fd::{AsRawFd, OwnedFd};
use std::time::Duration;

use aya::maps::lpm_trie::{Key, LpmTrie};
use aya::maps::{MapData, PerCpuArray, RingBuf};
use aya::programs::raw_trace_point::RawTracePointLinkId;
use aya::programs::tp_btf::BtfTracePointLinkId;
use aya::programs::trace_point::TracePointLinkId;
use aya::programs::{BtfTracePoint, Iter, ProgramError, RawTracePoint, TracePoint};
use aya::{Btf, Ebpf, EbpfLoader};
use ritma_sources::raw::RawEvent;
use std::collections::HashMap;

use crate::error::EbpfError;
use crate::pinned::Accounted;
use crate::programs::{
    self, beat_slot, hooked_syscall, Hook, Need, ProgramSpec, ACCOUNTED_MAP, BEATS_MAP, BEAT_SLOTS,
    CALLS_MAP, CALL_SLOTS, DROPS_MAP, IGNORE_MAP, LIFECYCLE, MODULE_FALLBACK, OBJECT, RING_MAP,
    SELF_TGID_GLOBAL, SNAPSHOT, SYSCALLS, WAKEUP_BYTES_GLOBAL,
};
use crate::snapshot::parse_snapshot;
use crate::system;
use crate::wire::decode_record;

/// Longest ignored prefix (the LPM trie key's data) and most prefixes (its max_entries).
pub const MAX_PREFIX_LEN: usize = 256;
pub const MAX_PREFIXES: usize = 64;
/// Most records one `poll` decodes, so a full ring cannot stall the caller for long.
const MAX_RECORDS_PER_POLL: usize = 65_536;
/// Longest a record may wait in the ring buffer unannounced: the reader is woken once
/// this much (at most a 32nd of the ring) is waiting, and otherwise reads at its own poll
/// timeout. A wakeup per record costs an interrupt per event.
const MAX_WAKEUP_BYTES: u64 = 256 * 1024;

/// The fill at which a record wakes the reader, for a ring of `ring_bytes`.
fn wakeup_bytes(ring_bytes: u32) -> u64 {
    (ring_bytes as u64 / 32).min(MAX_WAKEUP_BYTES)
}

/// Verifier log lines kept in a rejection error.
const LOG_TAIL_LINES: usize = 20;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SensorConfig {
    /// Byte prefixes of paths whose open/unlink/rename events the kernel drops before they
    /// reach the ring buffer (a rename only when both paths match). Each 1 to 256 bytes,
    /// at most 64; "/proc" also matches "/procx": end a directory prefix with '/'.
    pub ignore_prefixes: Vec<Vec<u8>>,
    /// Ring buffer size in bytes: a power of two, at least 4096.
    pub ring_bytes: u32,
    /// Turn on the kernel's BPF run statistics while the sensor runs, for `run_counts`.
    pub run_counts: bool,
    /// Watch init_module/finit_module on kernels without their tracepoints with raw
    /// sys_enter/sys_exit programs: off by default, as those run on every syscall of the host.
    pub raw_module_hooks: bool,
    /// A directory in the BPF filesystem to pin the counters in (`pinned`), so that what a
    /// kill leaves in flight is counted by the next run; empty of pins (read and unpinned).
    pub pin_counters: Option<std::path::PathBuf>,
}

impl Default for SensorConfig {
    fn default() -> Self {
        SensorConfig {
            ignore_prefixes: Vec::new(),
            ring_bytes: 8 << 20,
            run_counts: true,
            raw_module_hooks: false,
            pin_counters: None,
        }
    }
}

/// Events the kernel side could not deliver, summed over CPUs, by reason.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DropCounts {
    /// The ring buffer was full.
    pub ringbuf_full: u64,
    /// The per-thread syscall stash was full, so a syscall's exit had nothing to report.
    pub stash_full: u64,
    /// A socket address the raw model cannot hold (unreadable, or an accept's without a socket).
    pub unrepresentable: u64,
    /// Not a drop: the records the ring buffer took.
    pub submitted: u64,
}

impl DropCounts {
    /// The events dropped, by every reason.
    pub fn total(&self) -> u64 {
        self.ringbuf_full + self.stash_full + self.unrepresentable
    }
}

/// One program's kernel run statistics.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProgramRuns {
    pub program: &'static str,
    pub run_count: u64,
    pub run_time: Duration,
}

/// The link that attaches a program, kept so it can be replaced.
#[derive(Debug)]
enum AttachedLink {
    TracePoint(TracePointLinkId),
    Btf(BtfTracePointLinkId),
    Raw(RawTracePointLinkId),
}

/// Longest a liveness check waits for the heartbeats of its own calls (a thread's exit
/// hook runs after `join` has returned).
const BEAT_WAIT: Duration = Duration::from_millis(200);

pub struct Sensor {
    ebpf: Ebpf,
    btf: Btf,
    beats: PerCpuArray<MapData, u64>,
    calls: PerCpuArray<MapData, u64>,
    links: HashMap<&'static str, AttachedLink>,
    /// The snapshot iterator is loaded on the first `snapshot_processes`.
    snapshot_loaded: bool,
    ring: RingBuf<MapData>,
    drops: PerCpuArray<MapData, u64>,
    /// Where the WAL's accounted total goes, when the counters are pinned.
    accounted: Option<Accounted>,
    attached: Vec<ProgramSpec>,
    missing_optional: Vec<&'static str>,
    unwatched: Vec<&'static str>,
    stats: Result<OwnedFd, String>,
    /// The ring's consumer and producer positions, mapped read-only, for its fill.
    positions: Option<RingPositions>,
    ring_bytes: u32,
}

/// The first two pages of a BPF ring buffer's mapping: the consumer position, then the
/// producer position (the kernel's `struct bpf_ringbuf` layout for user space).
struct RingPositions {
    base: *mut libc::c_void,
    page: usize,
}

// SAFETY: the mapping is read-only shared memory the kernel updates; reads are atomic loads.
unsafe impl Send for RingPositions {}

impl RingPositions {
    fn map(fd: i32) -> Option<Self> {
        // SAFETY: sysconf reads a constant.
        let page = usize::try_from(unsafe { libc::sysconf(libc::_SC_PAGESIZE) }).ok()?;
        // SAFETY: a fresh read-only shared mapping of the map's own fd; checked below.
        let base = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                2 * page,
                libc::PROT_READ,
                libc::MAP_SHARED,
                fd,
                0,
            )
        };
        (base != libc::MAP_FAILED).then_some(RingPositions { base, page })
    }

    /// Bytes the producer wrote that the consumer has not read.
    fn pending(&self) -> u64 {
        use std::sync::atomic::{AtomicU64, Ordering};
        // SAFETY: both positions are 8-byte aligned words at the start of their page,
        // inside the mapping, which lives as long as self.
        let (consumer, producer) = unsafe {
            (
                (*(self.base as *const AtomicU64)).load(Ordering::Acquire),
                (*(self.base.cast::<u8>().add(self.page) as *const AtomicU64))
                    .load(Ordering::Acquire),
            )
        };
        producer.saturating_sub(consumer)
    }
}

impl Drop for RingPositions {
    fn drop(&mut self) {
        // SAFETY: unmaps exactly the mapping made in `map`.
        unsafe { libc::munmap(self.base, 2 * self.page) };
    }
}

impl Sensor {
    /// Mounts tracefs and bpffs if needed, loads the programs with this process filtered
    /// out, fills the ignored prefixes and attaches every program.
    pub fn start(config: SensorConfig) -> Result<Sensor, EbpfError> {
        validate(&config)?;
        system::check_capabilities(&system::SENSOR_CAPABILITIES)?;
        system::ensure_filesystems()?;
        let btf = Btf::from_sys_fs().map_err(EbpfError::NoKernelBtf)?;
        let self_tgid = std::process::id();
        let wakeup_bytes = wakeup_bytes(config.ring_bytes);
        let mut ebpf = EbpfLoader::new()
            .btf(Some(&btf))
            .override_global(SELF_TGID_GLOBAL, &self_tgid, true)
            .override_global(WAKEUP_BYTES_GLOBAL, &wakeup_bytes, true)
            .map_max_entries(RING_MAP, config.ring_bytes)
            .load(OBJECT)
            .map_err(|e| EbpfError::Object(Box::new(e)))?;
        fill_ignore_prefixes(&mut ebpf, &config.ignore_prefixes)?;

        let Plan {
            programs: plan,
            missing_optional,
            unwatched,
        } = attach_plan(config.raw_module_hooks)?;
        let mut links = HashMap::new();
        for spec in &plan {
            load_program(&mut ebpf, &btf, spec)?;
            links.insert(spec.program, attach_program(&mut ebpf, spec)?);
        }
        let stats = if config.run_counts {
            aya::sys::enable_stats(aya::sys::Stats::RunTime).map_err(|e| e.to_string())
        } else {
            Err("not requested".to_string())
        };
        let ring = take_map(&mut ebpf, RING_MAP)?;
        let ring = RingBuf::try_from(ring).map_err(map_err(RING_MAP, "open ring buffer"))?;
        // Only for a gauge: a ring whose positions cannot be mapped still captures.
        let positions = RingPositions::map(ring.as_raw_fd());
        let drops = take_map(&mut ebpf, DROPS_MAP)?;
        let accounted = match &config.pin_counters {
            Some(dir) => Some(Accounted::pin(
                dir,
                &drops,
                take_map(&mut ebpf, ACCOUNTED_MAP)?,
            )?),
            None => None,
        };
        let drops = PerCpuArray::try_from(drops).map_err(map_err(DROPS_MAP, "open"))?;
        let beats = take_map(&mut ebpf, BEATS_MAP)?;
        let beats = PerCpuArray::try_from(beats).map_err(map_err(BEATS_MAP, "open"))?;
        let calls = take_map(&mut ebpf, CALLS_MAP)?;
        let calls = PerCpuArray::try_from(calls).map_err(map_err(CALLS_MAP, "open"))?;
        Ok(Sensor {
            ebpf,
            btf,
            beats,
            calls,
            links,
            snapshot_loaded: false,
            ring,
            drops,
            accounted,
            attached: plan,
            missing_optional,
            unwatched,
            stats,
            positions,
            ring_bytes: config.ring_bytes,
        })
    }

    /// How full the ring buffer is, 0 to 1: bytes written by the programs and not yet
    /// read, over its size (`None` if its positions could not be mapped).
    pub fn ring_fill(&self) -> Option<f64> {
        let p = self.positions.as_ref()?;
        Some(p.pending() as f64 / f64::from(self.ring_bytes.max(1)))
    }

    /// Appends the events available within `timeout` to `out` and returns how many. Waits
    /// on the ring buffer's fd (poll(2)) only when nothing is pending. A malformed record
    /// is consumed and returned as an error; events decoded before it stay in `out`.
    pub fn poll(&mut self, timeout: Duration, out: &mut Vec<RawEvent>) -> Result<usize, EbpfError> {
        let n = self.drain(out)?;
        if n > 0 {
            return Ok(n);
        }
        if !wait_readable(self.ring.as_raw_fd(), timeout)? {
            return Ok(0);
        }
        self.drain(out)
    }

    fn drain(&mut self, out: &mut Vec<RawEvent>) -> Result<usize, EbpfError> {
        let mut n = 0;
        while n < MAX_RECORDS_PER_POLL {
            let Some(item) = self.ring.next() else { break };
            out.push(decode_record(&item)?);
            n += 1;
        }
        Ok(n)
    }

    /// Appends one `present` event (`RawBody::Present`) per process running now to `out`,
    /// in pid order, and returns how many. Call it once, right after `start`: every
    /// process is then either in the snapshot or seen starting by the live programs.
    /// The sensor's own process and kernel threads are left out, as in live capture.
    /// Each event's task identity is the kernel's, exactly as the process's live events
    /// carry it (so the same actor id); its `mono_ns` is the kernel monotonic time at
    /// which the iterator read that process, and `seq` is 0 (the caller assigns seqs).
    pub fn snapshot_processes(&mut self, out: &mut Vec<RawEvent>) -> Result<usize, EbpfError> {
        if !self.snapshot_loaded {
            load_program(&mut self.ebpf, &self.btf, &SNAPSHOT)?;
            self.snapshot_loaded = true;
        }
        let name = SNAPSHOT.program;
        let prog = self
            .ebpf
            .program_mut(name)
            .ok_or(EbpfError::MissingInObject {
                what: "program",
                name,
            })?;
        let iter: &mut Iter = prog.try_into().map_err(program_err(name, "type check"))?;
        let link_id = iter.attach().map_err(program_err(name, "attach"))?;
        let link = iter
            .take_link(link_id)
            .map_err(program_err(name, "take link"))?;
        let mut file = link
            .into_file()
            .map_err(|e| EbpfError::SnapshotOpen(Box::new(e)))?;
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes)
            .map_err(EbpfError::SnapshotRead)?;
        let events = parse_snapshot(&bytes).map_err(EbpfError::SnapshotRecord)?;
        let n = events.len();
        out.extend(events);
        Ok(n)
    }

    /// The kernel's drop counters, summed over CPUs.
    pub fn drops(&self) -> Result<DropCounts, EbpfError> {
        let sum = |reason: u32| -> Result<u64, EbpfError> {
            let per_cpu = self
                .drops
                .get(&reason, 0)
                .map_err(map_err(DROPS_MAP, "read"))?;
            Ok(per_cpu.iter().sum())
        };
        Ok(DropCounts {
            ringbuf_full: sum(0)?,
            stash_full: sum(1)?,
            unrepresentable: sum(2)?,
            submitted: sum(3)?,
        })
    }

    /// Records that the WAL accounts for `total` of the counters (events written, and drops
    /// and malformed records written as loss), where they are pinned; else does nothing.
    pub fn account(&mut self, total: u64) -> Result<(), EbpfError> {
        match &mut self.accounted {
            Some(a) => a.set(total),
            None => Ok(()),
        }
    }

    /// Run counts per attached program, or why the kernel keeps none (run statistics
    /// could not be turned on, or were not requested).
    pub fn run_counts(&self) -> Result<Vec<ProgramRuns>, String> {
        self.stats.as_ref().map_err(Clone::clone)?;
        self.attached
            .iter()
            .map(|spec| {
                let prog = self.ebpf.program(spec.program).ok_or("program vanished")?;
                let info = prog.info().map_err(|e| e.to_string())?;
                Ok(ProgramRuns {
                    program: spec.program,
                    run_count: info.run_count(),
                    run_time: info.run_time(),
                })
            })
            .collect()
    }

    /// Each heartbeat slot's count, summed over CPUs.
    fn beats(&self) -> Result<Vec<u64>, EbpfError> {
        sum_slots(&self.beats, BEAT_SLOTS, BEATS_MAP)
    }

    /// The per-syscall call counts (`crate::health`), summed over CPUs.
    pub fn call_counts(&self) -> Result<crate::health::CallCounts, EbpfError> {
        sum_slots(&self.calls, CALL_SLOTS, CALLS_MAP).map(crate::health::CallCounts::from_slots)
    }

    /// The attached programs that no longer run: the sensor makes every hooked syscall
    /// once, and starts and joins a thread, each of which every live hook counts (and
    /// skips); a program whose count did not move within `BEAT_WAIT` is silent — its link
    /// was removed, or its hook otherwise stopped firing. The exec hook cannot be checked
    /// this way and is never reported.
    pub fn silent_programs(&self) -> Result<Vec<&'static str>, EbpfError> {
        let before = self.beats()?;
        let mut called = std::collections::HashSet::new();
        for spec in &self.attached {
            if let Some(sc) = hooked_syscall(spec.program) {
                if called.insert(sc) {
                    crate::canary::call(sc);
                }
            }
        }
        crate::canary::thread();
        let checked: Vec<(&'static str, u32)> = self
            .attached
            .iter()
            .filter_map(|s| beat_slot(s.program).map(|slot| (s.program, slot)))
            .collect();
        let started = std::time::Instant::now();
        loop {
            let now = self.beats()?;
            let silent: Vec<&'static str> = checked
                .iter()
                .filter(|(_, slot)| now[*slot as usize] == before[*slot as usize])
                .map(|(p, _)| *p)
                .collect();
            if silent.is_empty() || started.elapsed() >= BEAT_WAIT {
                return Ok(silent);
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Attaches `program` again, first dropping the link it had (whatever state the
    /// kernel left it in), so it runs once, not twice.
    pub fn reattach(&mut self, program: &str) -> Result<(), EbpfError> {
        let spec = *self
            .attached
            .iter()
            .find(|s| s.program == program)
            .ok_or_else(|| EbpfError::Config(format!("{program} is not an attached program")))?;
        if let Some(link) = self.links.remove(spec.program) {
            // The link may already be gone in the kernel: its detach error says only that.
            let _ = detach_program(&mut self.ebpf, spec.program, link);
        }
        let link = attach_program(&mut self.ebpf, &spec)?;
        self.links.insert(spec.program, link);
        Ok(())
    }

    /// The kernel's id of a loaded program (as `bpftool prog` and link fdinfo show it).
    pub fn program_id(&self, program: &str) -> Result<u32, EbpfError> {
        let prog = self.ebpf.program(program).ok_or_else(|| {
            EbpfError::Config(format!("{program} is not a program of the sensor"))
        })?;
        let info = prog
            .info()
            .map_err(|e| EbpfError::Config(format!("{program}: reading its info: {e}")))?;
        Ok(info.id())
    }

    /// The programs attached, with their hooks.
    pub fn attached(&self) -> &[ProgramSpec] {
        &self.attached
    }

    /// Optional syscalls this kernel has no tracepoint for (so they are not watched).
    pub fn missing_optional(&self) -> &[&'static str] {
        &self.missing_optional
    }

    /// Syscalls not watched here: missing optional ones, and the module ones without
    /// tracepoints unless `raw_module_hooks` is set.
    pub fn unwatched(&self) -> &[&'static str] {
        &self.unwatched
    }
}

fn validate(config: &SensorConfig) -> Result<(), EbpfError> {
    let ring = config.ring_bytes;
    if !ring.is_power_of_two() || ring < 4096 {
        return Err(EbpfError::Config(format!(
            "ring_bytes {ring} is not a power of two of at least 4096"
        )));
    }
    if config.ignore_prefixes.len() > MAX_PREFIXES {
        return Err(EbpfError::Config(format!(
            "{} ignored prefixes, at most {MAX_PREFIXES}",
            config.ignore_prefixes.len()
        )));
    }
    if let Some(p) = config
        .ignore_prefixes
        .iter()
        .find(|p| p.is_empty() || p.len() > MAX_PREFIX_LEN)
    {
        return Err(EbpfError::Config(format!(
            "ignored prefix of {} bytes: each must be 1 to {MAX_PREFIX_LEN}",
            p.len()
        )));
    }
    Ok(())
}

/// What the sensor attaches on this kernel.
struct Plan {
    /// The programs to attach, in order.
    programs: Vec<ProgramSpec>,
    /// Optional syscalls without tracepoints.
    missing_optional: Vec<&'static str>,
    /// Those above, and the module syscalls when their raw stand-ins are not attached.
    unwatched: Vec<&'static str>,
}

/// The programs to attach on this kernel, in order; the raw module stand-ins only when
/// asked (`raw_module_hooks`) and needed.
fn attach_plan(raw_module_hooks: bool) -> Result<Plan, EbpfError> {
    let mut plan = Vec::new();
    let mut missing = Vec::new();
    let mut unwatched = Vec::new();
    let mut fallback = false;
    for spec in LIFECYCLE {
        if let Hook::TracePoint { category, name } = spec.hook {
            require_tracepoint(category, name)?;
        }
        plan.push(*spec);
    }
    for sc in SYSCALLS {
        let present = [sc.enter, sc.exit].iter().all(|p| match p.hook {
            Hook::TracePoint { category, name } => system::tracepoint_exists(category, name),
            _ => true,
        });
        match (present, sc.need) {
            (true, _) => plan.extend([sc.exit, sc.enter]),
            (false, Need::Required) => {
                let Hook::TracePoint { category, name } = sc.enter.hook else {
                    unreachable!("syscall programs are tracepoints")
                };
                return Err(missing_tracepoint(category, name));
            }
            (false, Need::Optional) => {
                missing.push(sc.name);
                unwatched.push(sc.name);
            }
            (false, Need::RawFallback) if raw_module_hooks => fallback = true,
            (false, Need::RawFallback) => unwatched.push(sc.name),
        }
    }
    if fallback {
        plan.extend(MODULE_FALLBACK);
    }
    Ok(Plan {
        programs: plan,
        missing_optional: missing,
        unwatched,
    })
}

fn missing_tracepoint(category: &'static str, name: &'static str) -> EbpfError {
    EbpfError::TracepointMissing {
        category,
        name,
        tracefs: system::TRACEFS.into(),
    }
}

fn require_tracepoint(category: &'static str, name: &'static str) -> Result<(), EbpfError> {
    if system::tracepoint_exists(category, name) {
        Ok(())
    } else {
        Err(missing_tracepoint(category, name))
    }
}

fn fill_ignore_prefixes(ebpf: &mut Ebpf, prefixes: &[Vec<u8>]) -> Result<(), EbpfError> {
    let map = ebpf.map_mut(IGNORE_MAP).ok_or(EbpfError::MissingInObject {
        what: "map",
        name: IGNORE_MAP,
    })?;
    let mut trie: LpmTrie<_, [u8; MAX_PREFIX_LEN], u8> =
        LpmTrie::try_from(map).map_err(map_err(IGNORE_MAP, "open"))?;
    for p in prefixes {
        let mut data = [0u8; MAX_PREFIX_LEN];
        data[..p.len()].copy_from_slice(p);
        let key = Key::new((p.len() * 8) as u32, data);
        trie.insert(&key, 1, 0)
            .map_err(map_err(IGNORE_MAP, "insert prefix"))?;
    }
    Ok(())
}

fn take_map(ebpf: &mut Ebpf, name: &'static str) -> Result<aya::maps::Map, EbpfError> {
    ebpf.take_map(name)
        .ok_or(EbpfError::MissingInObject { what: "map", name })
}

fn map_err(
    map: &'static str,
    action: &'static str,
) -> impl FnOnce(aya::maps::MapError) -> EbpfError {
    move |e| EbpfError::Map {
        map,
        action,
        source: Box::new(e),
    }
}

fn program_err(
    program: &'static str,
    action: &'static str,
) -> impl FnOnce(ProgramError) -> EbpfError {
    move |e| match e {
        ProgramError::LoadError {
            io_error,
            verifier_log,
        } => EbpfError::VerifierRejected {
            program,
            io_error,
            log_tail: log_tail(&verifier_log.to_string()),
        },
        e => EbpfError::Program {
            program,
            action,
            source: Box::new(e),
        },
    }
}

fn log_tail(log: &str) -> String {
    let lines: Vec<&str> = log.lines().collect();
    let from = lines.len().saturating_sub(LOG_TAIL_LINES);
    lines[from..].join("\n")
}

/// Loads one program into the kernel (the verifier runs here).
pub(crate) fn load_program(
    ebpf: &mut Ebpf,
    btf: &Btf,
    spec: &ProgramSpec,
) -> Result<(), EbpfError> {
    let name = spec.program;
    let prog = ebpf.program_mut(name).ok_or(EbpfError::MissingInObject {
        what: "program",
        name,
    })?;
    let check = program_err(name, "type check");
    match spec.hook {
        Hook::TracePoint { .. } => {
            let p: &mut TracePoint = prog.try_into().map_err(check)?;
            p.load().map_err(program_err(name, "load"))
        }
        Hook::BtfTracePoint { name: tp } => {
            let p: &mut BtfTracePoint = prog.try_into().map_err(check)?;
            p.load(tp, btf).map_err(program_err(name, "load"))
        }
        Hook::RawTracePoint { .. } => {
            let p: &mut RawTracePoint = prog.try_into().map_err(check)?;
            p.load().map_err(program_err(name, "load"))
        }
        Hook::Iter { target } => {
            let p: &mut Iter = prog.try_into().map_err(check)?;
            p.load(target, btf).map_err(program_err(name, "load"))
        }
    }
}

/// Drops the link of `program` (made by `attach_program`).
fn detach_program(
    ebpf: &mut Ebpf,
    name: &'static str,
    link: AttachedLink,
) -> Result<(), EbpfError> {
    let prog = ebpf.program_mut(name).ok_or(EbpfError::MissingInObject {
        what: "program",
        name,
    })?;
    let check = program_err(name, "type check");
    let detach = program_err(name, "detach");
    match link {
        AttachedLink::TracePoint(id) => {
            let p: &mut TracePoint = prog.try_into().map_err(check)?;
            p.detach(id).map_err(detach)
        }
        AttachedLink::Btf(id) => {
            let p: &mut BtfTracePoint = prog.try_into().map_err(check)?;
            p.detach(id).map_err(detach)
        }
        AttachedLink::Raw(id) => {
            let p: &mut RawTracePoint = prog.try_into().map_err(check)?;
            p.detach(id).map_err(detach)
        }
    }
}

fn attach_program(ebpf: &mut Ebpf, spec: &ProgramSpec) -> Result<AttachedLink, EbpfError> {
    let name = spec.program;
    let prog = ebpf.program_mut(name).ok_or(EbpfError::MissingInObject {
        what: "program",
        name,
    })?;
    let attach = program_err(name, "attach");
    let check = program_err(name, "type check");
    match spec.hook {
        Hook::TracePoint { category, name: tp } => {
            let p: &mut TracePoint = prog.try_into().map_err(check)?;
            p.attach(category, tp)
                .map(AttachedLink::TracePoint)
                .map_err(attach)
        }
        Hook::BtfTracePoint { .. } => {
            let p: &mut BtfTracePoint = prog.try_into().map_err(check)?;
            p.attach().map(AttachedLink::Btf).map_err(attach)
        }
        Hook::RawTracePoint { name: tp } => {
            let p: &mut RawTracePoint = prog.try_into().map_err(check)?;
            p.attach(tp).map(AttachedLink::Raw).map_err(attach)
        }
        Hook::Iter { .. } => Err(EbpfError::Config(format!(
            "{name} is an iterator: it runs when read (snapshot_processes), not attached at start"
        ))),
    }
}

/// Loads every program in the object into the kernel without attaching any, so the
/// verifier judges them all (including stand-ins this kernel would not use); returns how
/// many loaded. Everything is unloaded on return.
pub fn verify_object() -> Result<usize, EbpfError> {
    system::check_privileges()?;
    let btf = Btf::from_sys_fs().map_err(EbpfError::NoKernelBtf)?;
    let mut ebpf = EbpfLoader::new()
        .btf(Some(&btf))
        .load(OBJECT)
        .map_err(|e| EbpfError::Object(Box::new(e)))?;
    let specs = programs::all_programs();
    for spec in &specs {
        load_program(&mut ebpf, &btf, spec)?;
    }
    let in_object = ebpf.programs().count();
    if in_object != specs.len() {
        return Err(EbpfError::Config(format!(
            "the object has {in_object} programs, the program table {}",
            specs.len()
        )));
    }
    Ok(specs.len())
}

/// Waits until `fd` is readable or `timeout` passes; false on timeout or a signal.
fn wait_readable(fd: i32, timeout: Duration) -> Result<bool, EbpfError> {
    let mut pfd = libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    };
    let ms = timeout.as_nanos().div_ceil(1_000_000).min(i32::MAX as u128) as i32;
    // SAFETY: pfd is a valid pollfd array of length 1.
    let rc = unsafe { libc::poll(&mut pfd, 1, ms) };
    if rc < 0 {
        let e = std::io::Error::last_os_error();
        if e.kind() == std::io::ErrorKind::Interrupted {
            return Ok(false);
        }
        return Err(EbpfError::Poll(e));
    }
    Ok(rc > 0)
}

/// Every slot of a per-CPU counter array, summed over CPUs.
fn sum_slots(
    map: &PerCpuArray<MapData, u64>,
    slots: u32,
    name: &'static str,
) -> Result<Vec<u64>, EbpfError> {
    (0..slots)
        .map(|slot| {
            let per_cpu = map.get(&slot, 0).map_err(map_err(name, "read"))?;
            Ok(per_cpu.iter().sum())
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn configs_outside_the_kernel_bounds_are_refused() {
        let ok = SensorConfig::default();
        assert!(validate(&ok).is_ok());
        for bad in [
            SensorConfig {
                ring_bytes: 3 << 20,
                ..ok.clone()
            },
            SensorConfig {
                ring_bytes: 2048,
                ..ok.clone()
            },
            SensorConfig {
                ignore_prefixes: vec![Vec::new()],
                ..ok.clone()
            },
            SensorConfig {
                ignore_prefixes: vec![vec![b'a'; MAX_PREFIX_LEN + 1]],
                ..ok.clone()
            },
            SensorConfig {
                ignore_prefixes: vec![b"/p".to_vec(); MAX_PREFIXES + 1],
                ..ok.clone()
            },
        ] {
            assert!(
                matches!(validate(&bad), Err(EbpfError::Config(_))),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn log_tail_keeps_the_last_lines() {
        let log: String = (0..50).map(|i| format!("line {i}\n")).collect();
        let tail = log_tail(&log);
        assert_eq!(tail.lines().count(), LOG_TAIL_LINES);
        assert!(tail.ends_with("line 49"));
    }
}
