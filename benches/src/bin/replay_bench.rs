//! `replay_bench`: the storage baseline for `ritma replay`.
//!
//! Reads an `.rtrace` trace and writes the same events as JSON lines, one object
//! per event, the way Tetragon-style exporters do (`time`, `node`, a `process`
//! object, `type`, then the event's own fields). Every field of the raw event is
//! kept, so the JSON carries the same information as the trace and the store.
//! Times are RFC 3339 wall-clock times with nanoseconds (monotonic time plus the
//! run's `wall_minus_mono_ns`), as exporters print them.
//!
//! It reports the bytes of the JSON lines, and of the JSON lines compressed as one
//! zstd stream at level 3 (the usual setting of rotated, compressed exporter logs),
//! per event. With `--store DIR` it also totals the store's `DIR/windows` (blocks,
//! micro records, signatures) and prints the ratio store : JSON+zstd.
//!
//! ```sh
//! cargo run --release -p ritma-benches --bin replay_bench -- TRACE.rtrace \
//!     [--store DIR [--detail]] [--json-out FILE.jsonl] [--level 3]
//! ```
//!
//! `--detail` also opens every block of the store: leaves by record type (count,
//! uncompressed bytes), and what the blocks would take if each window's leaves
//! were compressed as one zstd frame instead of one frame per 1000 leaves.
//!
//! With `--replay RITMA` it first runs `RITMA replay TRACE --key KEY` itself,
//! `--reps` times for each worker count of `--workers` (default 1,2), each into a
//! fresh store under `--runs DIR`, and reports per run and as the median: events/s
//! (the figure replay prints), wall and CPU time (user + system, from the children's
//! times in `/proc/self/stat`), peak RSS (the child's `VmHWM`, polled every 10 ms),
//! and the seal latency p50/p99 that replay prints on its closing line. It checks
//! that every worker count wrote the same bytes, and sizes the first run's store
//! unless `--store` names another.
//!
//! ```sh
//! replay_bench TRACE.rtrace --replay target/release/ritma --key KEYFILE \
//!     [--workers 1,2] [--reps 3] [--runs DIR] [--detail]
//! ```

use ritma_sources::raw::{IdCall, RawBody, RawEvent, SockAddr};
use ritma_sources::trace::{TraceItem, TraceReader};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// Counts the bytes written to it and drops them.
#[derive(Default)]
struct Counter(u64);

impl Write for Counter {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0 += b.len() as u64;
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

struct Args {
    trace: PathBuf,
    store: Option<PathBuf>,
    json_out: Option<PathBuf>,
    level: i32,
    detail: bool,
    replay: Option<ReplayRuns>,
}

/// What `--replay` runs.
struct ReplayRuns {
    ritma: PathBuf,
    key: PathBuf,
    workers: Vec<usize>,
    reps: usize,
    runs_dir: PathBuf,
}

fn usage() -> ! {
    eprintln!(
        "usage: replay_bench TRACE.rtrace [--store DIR] [--detail] [--json-out FILE] [--level N]\n\
         \x20      [--replay RITMA --key KEYFILE [--workers 1,2] [--reps 3] [--runs DIR]]"
    );
    std::process::exit(2);
}

fn parse_args() -> Args {
    let mut it = std::env::args_os().skip(1);
    let mut trace = None;
    let mut store = None;
    let mut json_out = None;
    let mut level = 3;
    let mut detail = false;
    let (mut ritma, mut key, mut runs_dir) = (None, None, None);
    let (mut workers, mut reps) = (vec![1, 2], 3);
    let path = |it: &mut std::iter::Skip<std::env::ArgsOs>| {
        PathBuf::from(it.next().unwrap_or_else(|| usage()))
    };
    while let Some(a) = it.next() {
        match a.to_str() {
            Some("--replay") => ritma = Some(path(&mut it)),
            Some("--key") => key = Some(path(&mut it)),
            Some("--runs") => runs_dir = Some(path(&mut it)),
            Some("--workers") => {
                workers = it
                    .next()
                    .and_then(|v| {
                        v.to_str()?
                            .split(',')
                            .map(|w| w.parse().ok().filter(|&w: &usize| w > 0))
                            .collect()
                    })
                    .unwrap_or_else(|| usage())
            }
            Some("--reps") => {
                reps = it
                    .next()
                    .and_then(|v| v.to_str().and_then(|s| s.parse().ok()))
                    .filter(|&r: &usize| r > 0)
                    .unwrap_or_else(|| usage())
            }
            Some("--store") => store = Some(PathBuf::from(it.next().unwrap_or_else(|| usage()))),
            Some("--json-out") => {
                json_out = Some(PathBuf::from(it.next().unwrap_or_else(|| usage())))
            }
            Some("--level") => {
                level = it
                    .next()
                    .and_then(|v| v.to_str().and_then(|s| s.parse().ok()))
                    .unwrap_or_else(|| usage())
            }
            Some("--detail") => detail = true,
            Some("-h" | "--help") => usage(),
            Some(s) if s.starts_with("--") => usage(),
            _ if trace.is_none() => trace = Some(PathBuf::from(a)),
            _ => usage(),
        }
    }
    let trace: PathBuf = trace.unwrap_or_else(|| usage());
    let replay = match (ritma, key) {
        (Some(ritma), Some(key)) => Some(ReplayRuns {
            ritma,
            key,
            workers,
            reps,
            runs_dir: runs_dir.unwrap_or_else(|| trace.with_extension("runs")),
        }),
        (None, None) => None,
        _ => usage(),
    };
    Args {
        trace,
        store,
        json_out,
        level,
        detail,
        replay,
    }
}

// ---------------------------------------------------------------- JSON writing

/// A JSON string from raw bytes (invalid UTF-8 is replaced, as exporters do).
fn jstr(out: &mut Vec<u8>, b: &[u8]) {
    let s = String::from_utf8_lossy(b);
    serde_json::to_writer(&mut *out, s.as_ref()).expect("writing to a Vec");
}

fn key(out: &mut Vec<u8>, k: &str) {
    out.push(b',');
    out.push(b'"');
    out.extend_from_slice(k.as_bytes());
    out.extend_from_slice(b"\":");
}

fn kstr(out: &mut Vec<u8>, k: &str, v: &[u8]) {
    key(out, k);
    jstr(out, v);
}

fn knum(out: &mut Vec<u8>, k: &str, v: impl std::fmt::Display) {
    key(out, k);
    write!(out, "{v}").expect("writing to a Vec");
}

fn ktime(out: &mut Vec<u8>, k: &str, mono_ns: u64, wall_minus_mono: i64) {
    key(out, k);
    rfc3339(
        out,
        (mono_ns as i128 + wall_minus_mono as i128).max(0) as u64,
    );
}

/// `"2026-11-23T10:11:12.123456789Z"`.
fn rfc3339(out: &mut Vec<u8>, wall_ns: u64) {
    let secs = (wall_ns / 1_000_000_000) as i64;
    let nanos = wall_ns % 1_000_000_000;
    let (y, mo, d) = ritma_sinks::store::civil_from_days(secs.div_euclid(86_400));
    let s = secs.rem_euclid(86_400);
    write!(
        out,
        "\"{y:04}-{mo:02}-{d:02}T{:02}:{:02}:{:02}.{nanos:09}Z\"",
        s / 3600,
        s / 60 % 60,
        s % 60
    )
    .expect("writing to a Vec");
}

fn addr(out: &mut Vec<u8>, a: &SockAddr) {
    key(out, "address");
    match a {
        SockAddr::V4 { addr, port } => {
            let ip = std::net::Ipv4Addr::from(*addr);
            write!(
                out,
                "{{\"family\":\"AF_INET\",\"addr\":\"{ip}\",\"port\":{port}}}"
            )
        }
        SockAddr::V6 { addr, port } => {
            let ip = std::net::Ipv6Addr::from(*addr);
            write!(
                out,
                "{{\"family\":\"AF_INET6\",\"addr\":\"{ip}\",\"port\":{port}}}"
            )
        }
        SockAddr::Unix { path } => {
            out.extend_from_slice(b"{\"family\":\"AF_UNIX\",\"path\":");
            jstr(out, path);
            write!(out, "}}")
        }
        SockAddr::Other { family } => write!(out, "{{\"family\":{family}}}"),
    }
    .expect("writing to a Vec");
}

fn call_name(c: IdCall, uid: bool) -> &'static str {
    match (c, uid) {
        (IdCall::Set, true) => "setuid",
        (IdCall::SetRe, true) => "setreuid",
        (IdCall::SetRes, true) => "setresuid",
        (IdCall::SetFs, true) => "setfsuid",
        (IdCall::Set, false) => "setgid",
        (IdCall::SetRe, false) => "setregid",
        (IdCall::SetRes, false) => "setresgid",
        (IdCall::SetFs, false) => "setfsgid",
    }
}

fn type_name(b: &RawBody) -> &'static str {
    b.event_type().name()
}

/// Appends one JSON line for `e` of node `node`.
fn json_line(out: &mut Vec<u8>, node: &str, wmm: i64, e: &RawEvent) {
    let t = &e.task;
    out.extend_from_slice(b"{\"time\":");
    rfc3339(out, (e.mono_ns as i128 + wmm as i128).max(0) as u64);
    kstr(out, "node", node.as_bytes());
    knum(out, "seq", e.seq);
    key(out, "process");
    write!(
        out,
        "{{\"pid\":{},\"tid\":{},\"ppid\":{},\"uid\":{},\"gid\":{},\"euid\":{},\"egid\":{}",
        t.pid, t.tid, t.ppid, t.uid, t.gid, t.euid, t.egid
    )
    .expect("writing to a Vec");
    kstr(out, "comm", &t.comm);
    ktime(out, "start_time", t.start_ns, wmm);
    ktime(out, "parent_start_time", t.parent_start_ns, wmm);
    knum(out, "cgroup_id", t.cgroup_id);
    knum(out, "mnt_ns", t.mnt_ns);
    knum(out, "pid_ns", t.pid_ns);
    knum(out, "net_ns", t.net_ns);
    out.push(b'}');
    kstr(out, "type", type_name(&e.body).as_bytes());
    match &e.body {
        RawBody::Exec {
            filename,
            argv,
            argv_truncated,
            exe_dev,
            exe_ino,
            given: _,
            stdio_net: _,
        }
        | RawBody::Present {
            exe: filename,
            argv,
            argv_truncated,
            exe_dev,
            exe_ino,
        } => {
            kstr(out, "binary", filename);
            key(out, "arguments");
            out.push(b'[');
            for (i, a) in argv.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                jstr(out, a);
            }
            out.push(b']');
            knum(out, "arguments_truncated", argv_truncated);
            knum(out, "exe_dev", exe_dev);
            knum(out, "exe_ino", exe_ino);
        }
        RawBody::Fork {
            child_pid,
            child_start_ns,
        } => {
            knum(out, "child_pid", child_pid);
            ktime(out, "child_start_time", *child_start_ns, wmm);
        }
        RawBody::Exit { code } => knum(out, "code", code),
        RawBody::Open {
            path,
            flags,
            mode,
            result,
            given: _,
        } => {
            kstr(out, "path", path);
            knum(out, "flags", flags);
            knum(out, "mode", mode);
            knum(out, "result", result);
        }
        RawBody::Unlink {
            path,
            flags,
            result,
            given: _,
        } => {
            kstr(out, "path", path);
            knum(out, "flags", flags);
            knum(out, "result", result);
        }
        RawBody::Rename {
            old,
            new,
            flags,
            result,
            old_given: _,
            new_given: _,
        } => {
            kstr(out, "old_path", old);
            kstr(out, "new_path", new);
            knum(out, "flags", flags);
            knum(out, "result", result);
        }
        RawBody::Connect { addr: a, result }
        | RawBody::Accept { addr: a, result }
        | RawBody::Bind { addr: a, result } => {
            addr(out, a);
            knum(out, "result", result);
        }
        RawBody::Listen { backlog, result } => {
            knum(out, "backlog", backlog);
            knum(out, "result", result);
        }
        RawBody::Ptrace {
            request,
            target_pid,
            target_start_ns,
            result,
        } => {
            knum(out, "request", request);
            knum(out, "target_pid", target_pid);
            ktime(out, "target_start_time", *target_start_ns, wmm);
            knum(out, "result", result);
        }
        RawBody::SetUid { call, ids, result } | RawBody::SetGid { call, ids, result } => {
            let uid = matches!(e.body, RawBody::SetUid { .. });
            kstr(out, "call", call_name(*call, uid).as_bytes());
            key(out, "ids");
            write!(
                out,
                "[{},{},{}]",
                ids[0] as i32, ids[1] as i32, ids[2] as i32
            )
            .expect("writing to a Vec");
            knum(out, "result", result);
        }
        RawBody::CapSet {
            effective,
            permitted,
            inheritable,
            result,
        } => {
            knum(out, "effective", effective);
            knum(out, "permitted", permitted);
            knum(out, "inheritable", inheritable);
            knum(out, "result", result);
        }
        RawBody::MemfdCreate {
            name,
            flags,
            result,
        } => {
            kstr(out, "name", name);
            knum(out, "flags", flags);
            knum(out, "result", result);
        }
        RawBody::ModuleLoad {
            name,
            from_fd,
            result,
        } => {
            kstr(out, "name", name);
            knum(out, "from_fd", from_fd);
            knum(out, "result", result);
        }
        RawBody::BpfProgLoad {
            prog_type,
            name,
            result,
        } => {
            knum(out, "prog_type", prog_type);
            kstr(out, "name", name);
            knum(out, "result", result);
        }
        RawBody::FdDup {
            call,
            oldfd,
            newfd,
            source,
            peer,
            exe,
        } => {
            knum(out, "call", *call as u8);
            knum(out, "oldfd", oldfd);
            knum(out, "newfd", newfd);
            kstr(out, "source", source.name().as_bytes());
            addr(out, peer);
            kstr(out, "exe", exe);
        }
    }
    out.extend_from_slice(b"}\n");
}

// ---------------------------------------------------------------- store size

/// What a store file is, by where it lives (FORMAT.md §8).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum FileKind {
    /// `windows/…/blocks/*.cbor.zst`
    Blocks,
    /// `windows/…/micro/*.cbor`
    MicroRecords,
    /// `windows/…/micro/*.sig`
    Checkpoints,
    /// `windows/…/index/*.cbor.zst` (time, cone, edge and taint indexes)
    Index,
    /// `graph/edges/…/*.edges.cbor.zst`
    GraphEdges,
    /// `windows/…/proofs/` (hour seals)
    Proofs,
    /// `_meta/`, `ctgf/` and anything else
    Meta,
}

impl FileKind {
    const ALL: [FileKind; 7] = [
        FileKind::Blocks,
        FileKind::MicroRecords,
        FileKind::Checkpoints,
        FileKind::Index,
        FileKind::GraphEdges,
        FileKind::Proofs,
        FileKind::Meta,
    ];

    fn of(relative: &Path) -> FileKind {
        let parts: Vec<&str> = relative.iter().filter_map(|c| c.to_str()).collect();
        let name = parts.last().copied().unwrap_or("");
        let parent = parts.len().checked_sub(2).map(|i| parts[i]);
        let in_graph_edges = parts.windows(2).any(|w| w == ["graph", "edges"]);
        match parent {
            Some("blocks") if name.ends_with(".cbor.zst") => FileKind::Blocks,
            Some("micro") if name.ends_with(".cbor") => FileKind::MicroRecords,
            Some("micro") if name.ends_with(".sig") => FileKind::Checkpoints,
            Some("index") if name.ends_with(".cbor.zst") => FileKind::Index,
            Some("proofs") => FileKind::Proofs,
            _ if in_graph_edges && name.ends_with(".edges.cbor.zst") => FileKind::GraphEdges,
            _ => FileKind::Meta,
        }
    }

    fn label(self) -> &'static str {
        match self {
            FileKind::Blocks => "blocks *.cbor.zst",
            FileKind::MicroRecords => "micro *.cbor",
            FileKind::Checkpoints => "checkpoints *.sig",
            FileKind::Index => "index *.cbor.zst",
            FileKind::GraphEdges => "graph edges",
            FileKind::Proofs => "hour seals (proofs/)",
            FileKind::Meta => "_meta/, ctgf/",
        }
    }
}

/// (files, bytes) of a store by kind.
#[derive(Default, Debug)]
struct StoreBytes(std::collections::BTreeMap<FileKind, (u64, u64)>);

impl StoreBytes {
    fn get(&self, k: FileKind) -> (u64, u64) {
        self.0.get(&k).copied().unwrap_or_default()
    }
    fn total(&self) -> u64 {
        self.0.values().map(|v| v.1).sum()
    }
    fn files(&self) -> u64 {
        self.0.values().map(|v| v.0).sum()
    }
}

fn walk(root: &Path, dir: &Path, acc: &mut StoreBytes) -> std::io::Result<()> {
    for ent in std::fs::read_dir(dir)? {
        let ent = ent?;
        let ft = ent.file_type()?;
        let p = ent.path();
        if ft.is_dir() {
            walk(root, &p, acc)?;
        } else if ft.is_file() {
            let kind = FileKind::of(p.strip_prefix(root).unwrap_or(&p));
            let slot = acc.0.entry(kind).or_default();
            slot.0 += 1;
            slot.1 += ent.metadata()?.len();
        }
    }
    Ok(())
}

/// Bytes the directory tree occupies on disk (st_blocks), for reference.
fn du(dir: &Path) -> std::io::Result<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    let mut apparent = 0;
    let mut disk = 0;
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        for ent in std::fs::read_dir(&d)? {
            let ent = ent?;
            let m = ent.metadata()?;
            if m.is_dir() {
                stack.push(ent.path());
            } else {
                apparent += m.len();
                disk += m.blocks() * 512;
            }
        }
    }
    Ok((apparent, disk))
}

/// Leaves by record type, and a what-if: one zstd frame per window instead of per block.
fn block_detail(windows: &Path, level: i32, events: u64) -> Result<(), Box<dyn std::error::Error>> {
    use ritma_schemas::cbor::Decoder;
    use ritma_schemas::packed::{IdIndex, PackedBlock};
    use ritma_schemas::records::{record_name, Record, MAX_BLOCK_RECORDS};
    let mut files = Vec::new();
    let mut stack = vec![windows.to_owned()];
    while let Some(d) = stack.pop() {
        for ent in std::fs::read_dir(&d)? {
            let p = ent?.path();
            if p.is_dir() {
                stack.push(p);
            } else if FileKind::of(&p) == FileKind::Blocks {
                files.push(p);
            }
        }
    }
    files.sort();
    let mut by_type = std::collections::BTreeMap::<u64, (u64, u64)>::new();
    let mut by_column = std::collections::BTreeMap::<(u64, u64), u64>::new();
    let (mut leaf_total, mut leaves, mut tables, mut per_window) = (0u64, 0u64, 0u64, 0u64);
    for p in &files {
        // The window number is in the id table; the leaves are read through the store's reader.
        let bytes = std::fs::read(p)?;
        let first = zstd::zstd_safe::find_frame_compressed_size(&bytes)
            .map_err(|_| format!("{}: no id table frame", p.display()))?;
        tables += first as u64;
        let table_raw =
            zstd::bulk::decompress(&bytes[..first], ritma_schemas::packed::IdTable::MAX_LEN)?;
        let table = ritma_schemas::packed::IdTable::decode(&table_raw)?;
        let window_leaves = ritma_sinks::store::read_window_leaves(p, table.window, u64::MAX)?;
        let mut window_buf = Vec::new();
        for r in &window_leaves {
            let mut d = Decoder::new(r, "leaf");
            d.array("leaf", 1 << 16)?;
            let t = d.uint("type")?;
            let e = by_type.entry(t).or_default();
            e.0 += 1;
            e.1 += r.len() as u64;
            leaves += 1;
            leaf_total += r.len() as u64;
            window_buf.extend_from_slice(r);
        }
        per_window += zstd::bulk::compress(&window_buf, level)?.len() as u64;
        // Where the packed bytes go: each column's streams compressed on their own.
        let ids = IdIndex::of_leaves(&window_leaves)?;
        for (i, chunk) in window_leaves.chunks(MAX_BLOCK_RECORDS).enumerate() {
            let packed = PackedBlock::pack(
                table.window,
                i as u32,
                (i * MAX_BLOCK_RECORDS) as u64,
                chunk,
                &ids,
            )?;
            *by_column.entry((0, 0)).or_default() +=
                zstd::bulk::compress(&packed.types, level)?.len() as u64;
            for c in &packed.columns {
                let streams = [&c.kinds[..], &c.nums[..], &c.payload[..]].concat();
                *by_column.entry((c.record_type, c.position)).or_default() +=
                    zstd::bulk::compress(&streams, level)?.len() as u64;
            }
        }
    }
    let per = |b: u64| b as f64 / events.max(1) as f64;
    println!(
        "  {leaves} leaves ({:.3} per event), leaf bytes {leaf_total} ({:.2} B/event); id tables {:.2} B/event compressed",
        leaves as f64 / events.max(1) as f64,
        per(leaf_total),
        per(tables)
    );
    println!("  leaves by record type (count, per event, uncompressed B/event, mean leaf bytes):");
    for (t, (n, b)) in &by_type {
        println!(
            "    {:<14} {n:>10} {:>7.3} {:>8.2} {:>8.1}",
            record_name(*t).unwrap_or("?"),
            *n as f64 / events.max(1) as f64,
            per(*b),
            *b as f64 / (*n).max(1) as f64
        );
    }
    println!("  packed columns, each compressed alone (record type, element): B/event");
    for ((t, p), b) in &by_column {
        if per(*b) >= 0.05 {
            let name = if *t == 0 {
                "(types)"
            } else {
                record_name(*t).unwrap_or("?")
            };
            println!("    {name:<14} {p:>2} {:>8.2}", per(*b));
        }
    }
    println!(
        "  what-if, each window's leaves unpacked as one zstd -{level} frame: {per_window} bytes, {:.2} B/event",
        per(per_window)
    );
    Ok(())
}

fn main() {
    let args = parse_args();
    if let Err(e) = run(&args) {
        eprintln!("replay_bench: error: {e}");
        std::process::exit(1);
    }
}

fn run(args: &Args) -> Result<(), Box<dyn std::error::Error>> {
    // The replays run first, on a machine not yet busy with the JSON conversion.
    let mut store = args.store.clone();
    if let Some(r) = &args.replay {
        let results = replay_runs(&args.trace, r)?;
        print_runs(&results);
        check_identical(&results)?;
        if store.is_none() {
            store = results.first().map(|x| x.store.clone());
        }
    }
    let started = Instant::now();
    let mut reader = TraceReader::open(&args.trace)?;
    let trace_bytes = std::fs::metadata(&args.trace)?.len();
    let mut zenc = zstd::stream::write::Encoder::new(Counter::default(), args.level)?;
    let mut file = match &args.json_out {
        Some(p) => Some(std::io::BufWriter::with_capacity(
            1 << 20,
            std::fs::File::create(p)?,
        )),
        None => None,
    };
    // (node name, wall_minus_mono_ns) of each run, by run number.
    let mut runs: Vec<(String, i64)> = Vec::new();
    let mut buf = Vec::with_capacity(4 << 20);
    let mut events = 0u64;
    let mut json_bytes = 0u64;
    let mut per_type = std::collections::BTreeMap::<&'static str, (u64, u64)>::new();
    while let Some(item) = reader.next_item()? {
        match item {
            TraceItem::Run { run, meta } | TraceItem::Continue { run, meta, .. } => {
                debug_assert_eq!(run as usize, runs.len());
                runs.push((meta.node.clone(), meta.wall_minus_mono_ns));
            }
            // JSON lines carry the cgroup id in each event; the path and hash tables are not events.
            TraceItem::Cgroups { .. }
            | TraceItem::Loss { .. }
            | TraceItem::Clock { .. }
            | TraceItem::Exes { .. }
            | TraceItem::BlobPart { .. }
            | TraceItem::Health(_) => {}
            TraceItem::Batch { run, events: evs } => {
                let (node, wmm) = &runs[run as usize];
                buf.clear();
                for e in &evs {
                    let before = buf.len();
                    json_line(&mut buf, node, *wmm, e);
                    let t = per_type.entry(type_name(&e.body)).or_default();
                    t.0 += 1;
                    t.1 += (buf.len() - before) as u64;
                }
                events += evs.len() as u64;
                json_bytes += buf.len() as u64;
                zenc.write_all(&buf)?;
                if let Some(f) = file.as_mut() {
                    f.write_all(&buf)?;
                }
            }
        }
    }
    let zstd_bytes = zenc.finish()?.0;
    if let Some(mut f) = file {
        f.flush()?;
    }
    let secs = started.elapsed().as_secs_f64();
    let per = |b: u64| b as f64 / events.max(1) as f64;

    println!("trace:              {}", args.trace.display());
    println!("events:             {events}");
    println!(
        "rtrace (zstd -1):   {trace_bytes} bytes, {:.2} B/event",
        per(trace_bytes)
    );
    println!(
        "JSON lines:         {json_bytes} bytes, {:.2} B/event",
        per(json_bytes)
    );
    println!(
        "JSON lines + zstd -{}: {zstd_bytes} bytes, {:.2} B/event (compression {:.1}x)",
        args.level,
        per(zstd_bytes),
        json_bytes as f64 / zstd_bytes.max(1) as f64
    );
    println!(
        "conversion:         {secs:.1} s ({:.0} events/s, decode + JSON + zstd -{})",
        events as f64 / secs.max(1e-9),
        args.level
    );
    println!("JSON by type (events, mean B/event):");
    for (t, (n, b)) in &per_type {
        println!("  {t:<14} {n:>10} {:>8.1}", *b as f64 / (*n).max(1) as f64);
    }
    if let Some(store) = &store {
        let mut sb = StoreBytes::default();
        walk(store, store, &mut sb)?;
        let total = sb.total();
        println!("store:              {}", store.display());
        println!(
            "  whole store:      {total} bytes in {} files, {:.2} B/event",
            sb.files(),
            per(total)
        );
        for kind in FileKind::ALL {
            let (n, b) = sb.get(kind);
            println!(
                "    {:<22} {b:>12} bytes in {n:>6} files, {:>7.3} B/event",
                kind.label(),
                per(b)
            );
        }
        let windows: u64 = [
            FileKind::Blocks,
            FileKind::MicroRecords,
            FileKind::Checkpoints,
            FileKind::Index,
            FileKind::Proofs,
        ]
        .iter()
        .map(|k| sb.get(*k).1)
        .sum();
        let (apparent, disk) = du(store)?;
        println!(
            "  on disk:          {apparent} bytes apparent, {disk} bytes allocated ({:.2} B/event)",
            per(disk)
        );
        println!(
            "  ratio whole store : JSON+zstd -{} = {:.3}; windows/ alone = {:.3}; blocks alone = {:.3}; store : JSON = {:.4}",
            args.level,
            total as f64 / zstd_bytes.max(1) as f64,
            windows as f64 / zstd_bytes.max(1) as f64,
            sb.get(FileKind::Blocks).1 as f64 / zstd_bytes.max(1) as f64,
            total as f64 / json_bytes.max(1) as f64
        );
        if args.detail {
            block_detail(&store.join("windows"), args.level, events)?;
        }
    }
    Ok(())
}

// ---------------------------------------------------------------- replay runs

/// One `ritma replay` run.
struct RunResult {
    workers: usize,
    rep: usize,
    events: u64,
    /// The events/s replay printed (its own elapsed time, end to end).
    rate: f64,
    wall_s: f64,
    /// User + system time of the child.
    cpu_s: f64,
    peak_rss_kib: u64,
    seal_p50_ms: f64,
    seal_p99_ms: f64,
    store: PathBuf,
}

fn replay_runs(trace: &Path, r: &ReplayRuns) -> Result<Vec<RunResult>, Box<dyn std::error::Error>> {
    std::fs::create_dir_all(&r.runs_dir)?;
    println!(
        "replay runs of {} ({}):",
        r.ritma.display(),
        trace.display()
    );
    println!("  workers    rep   events/s   wall s    CPU s  CPU µs/ev  peak RSS MiB  seal p50 ms  seal p99 ms");
    let mut results = Vec::new();
    for &workers in &r.workers {
        for rep in 1..=r.reps {
            let store = r.runs_dir.join(format!("w{workers}-r{rep}"));
            if store.exists() {
                std::fs::remove_dir_all(&store)?;
            }
            let log_path = r.runs_dir.join(format!("w{workers}-r{rep}.log"));
            let cpu_before = children_cpu_s()?;
            let started = Instant::now();
            let mut child = std::process::Command::new(&r.ritma)
                .arg("replay")
                .arg(trace)
                .arg("--out")
                .arg(&store)
                .arg("--workers")
                .arg(workers.to_string())
                .arg("--key")
                .arg(&r.key)
                .stdout(std::process::Stdio::null())
                .stderr(std::fs::File::create(&log_path)?)
                .spawn()?;
            let status_path = PathBuf::from(format!("/proc/{}/status", child.id()));
            let mut peak_rss_kib = 0;
            let status = loop {
                if let Some(status) = child.try_wait()? {
                    break status;
                }
                if let Some(hwm) = std::fs::read_to_string(&status_path)
                    .ok()
                    .as_deref()
                    .and_then(vm_hwm_kib)
                {
                    peak_rss_kib = peak_rss_kib.max(hwm);
                }
                std::thread::sleep(std::time::Duration::from_millis(10));
            };
            let wall_s = started.elapsed().as_secs_f64();
            let cpu_s = children_cpu_s()? - cpu_before;
            let log = std::fs::read_to_string(&log_path)?;
            if !status.success() {
                return Err(format!("{} failed ({status}): {log}", r.ritma.display()).into());
            }
            let closing = parse_closing_line(&log).ok_or_else(|| {
                format!("no closing `sealed … seal latency` line in {log_path:?}")
            })?;
            let result = RunResult {
                workers,
                rep,
                events: closing.events,
                rate: closing.rate,
                wall_s,
                cpu_s,
                peak_rss_kib,
                seal_p50_ms: closing.p50_ms,
                seal_p99_ms: closing.p99_ms,
                store,
            };
            print_run("", &result);
            results.push(result);
        }
    }
    Ok(results)
}

/// What replay's closing line says.
#[derive(Debug, PartialEq)]
struct ClosingLine {
    events: u64,
    rate: f64,
    p50_ms: f64,
    p99_ms: f64,
}

/// Parses replay's closing line, e.g. `ritma: sealed 2000000 events of 1 node(s) in 41
/// windows into S in 16.3 s (122620 events/s); …; seal latency p50 1226.6 ms, p99 1931.1 ms`.
fn parse_closing_line(log: &str) -> Option<ClosingLine> {
    let line = log.lines().rev().find(|l| l.contains("seal latency p50"))?;
    let after = |key: &str| line.split(key).nth(1);
    let number = |s: &str| -> Option<f64> {
        let n: String = s
            .trim_start()
            .chars()
            .take_while(|c| c.is_ascii_digit() || *c == '.')
            .collect();
        n.parse().ok()
    };
    let rate_text = line.rsplit_once(" events/s)")?.0;
    let rate = number(rate_text.rsplit_once('(')?.1)?;
    Some(ClosingLine {
        events: number(after("sealed ")?)? as u64,
        rate,
        p50_ms: number(after("seal latency p50 ")?)?,
        p99_ms: number(after(", p99 ")?)?,
    })
}

/// `VmHWM` (peak resident set) of a `/proc/PID/status` text, in KiB.
fn vm_hwm_kib(status: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// User + system time of this process's waited-for children, in seconds
/// (`cutime` + `cstime` of `/proc/self/stat`, in USER_HZ = 100 ticks per second).
fn children_cpu_s() -> Result<f64, Box<dyn std::error::Error>> {
    let stat = std::fs::read_to_string("/proc/self/stat")?;
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .ok_or("odd /proc/self/stat")?
        .1
        .split_whitespace()
        .collect();
    // Fields after the command name start at field 3 (state); cutime is 16, cstime 17.
    let ticks = |field: usize| -> Result<f64, Box<dyn std::error::Error>> {
        Ok(fields
            .get(field - 3)
            .ok_or("short /proc/self/stat")?
            .parse::<f64>()?)
    };
    Ok((ticks(16)? + ticks(17)?) / 100.0)
}

fn print_run(label: &str, r: &RunResult) {
    let rep = if label.is_empty() {
        r.rep.to_string()
    } else {
        label.to_owned()
    };
    println!(
        "  {:>7} {rep:>6} {:>10.0} {:>8.2} {:>8.2} {:>10.2} {:>13.1} {:>12.1} {:>12.1}",
        r.workers,
        r.rate,
        r.wall_s,
        r.cpu_s,
        r.cpu_s * 1e6 / r.events.max(1) as f64,
        r.peak_rss_kib as f64 / 1024.0,
        r.seal_p50_ms,
        r.seal_p99_ms
    );
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Each worker count's runs again as medians, and the speed-up over the fewest workers.
fn print_runs(results: &[RunResult]) {
    let mut medians = Vec::new();
    let mut workers: Vec<usize> = results.iter().map(|r| r.workers).collect();
    workers.dedup();
    for w in workers {
        let runs: Vec<&RunResult> = results.iter().filter(|r| r.workers == w).collect();
        let m = |f: fn(&RunResult) -> f64| median(runs.iter().map(|r| f(r)).collect());
        let med = RunResult {
            workers: w,
            rep: 0,
            events: runs[0].events,
            rate: m(|r| r.rate),
            wall_s: m(|r| r.wall_s),
            cpu_s: m(|r| r.cpu_s),
            peak_rss_kib: m(|r| r.peak_rss_kib as f64) as u64,
            seal_p50_ms: m(|r| r.seal_p50_ms),
            seal_p99_ms: m(|r| r.seal_p99_ms),
            store: PathBuf::new(),
        };
        print_run("median", &med);
        medians.push((w, med.rate));
    }
    if let [(w0, r0), rest @ ..] = medians.as_slice() {
        for (w, r) in rest {
            println!("  {w} workers / {w0}: {:.2}x (median events/s)", r / r0);
        }
    }
}

/// Fails unless the first run of every worker count wrote the same files with the same bytes.
fn check_identical(results: &[RunResult]) -> Result<(), Box<dyn std::error::Error>> {
    let mut firsts = results.iter().filter(|r| r.rep == 1);
    let Some(reference) = firsts.next() else {
        return Ok(());
    };
    let want = store_files(&reference.store)?;
    for other in firsts {
        if store_files(&other.store)? != want {
            return Err(format!(
                "{} and {} differ: the store depends on the worker count",
                reference.store.display(),
                other.store.display()
            )
            .into());
        }
        println!(
            "  {} workers wrote the same {} files as {} worker(s)",
            other.workers,
            want.len(),
            reference.workers
        );
    }
    Ok(())
}

/// Every file of a tree: relative path → contents.
fn store_files(root: &Path) -> std::io::Result<std::collections::BTreeMap<PathBuf, Vec<u8>>> {
    let mut files = std::collections::BTreeMap::new();
    let mut stack = vec![root.to_owned()];
    while let Some(d) = stack.pop() {
        for ent in std::fs::read_dir(&d)? {
            let p = ent?.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                let rel = p.strip_prefix(root).unwrap_or(&p).to_owned();
                files.insert(rel, std::fs::read(&p)?);
            }
        }
    }
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_closing_line_is_parsed() {
        let log = "ritma: cone partial matches expired 0, shed at the bound 0\n\
                   ritma: sealed 2000000 events of 1 node(s) in 41 windows into runs/s1 in 16.3 s \
                   (122620 events/s); 0 events lost to corrupt trace frames; seal latency p50 1226.6 ms, p99 1931.1 ms\n";
        assert_eq!(
            parse_closing_line(log),
            Some(ClosingLine {
                events: 2_000_000,
                rate: 122_620.0,
                p50_ms: 1226.6,
                p99_ms: 1931.1
            })
        );
        assert_eq!(parse_closing_line("ritma: sealed 5 events in 1 s"), None);
    }

    #[test]
    fn store_files_are_sorted_into_kinds() {
        let kind = |p: &str| FileKind::of(Path::new(p));
        assert_eq!(
            kind("windows/2026/11/01/00/blocks/w0001.cbor.zst"),
            FileKind::Blocks
        );
        assert_eq!(
            kind("nodes/a/windows/2026/11/01/00/micro/w0001.cbor"),
            FileKind::MicroRecords
        );
        assert_eq!(
            kind("windows/2026/11/01/00/micro/w0001.sig"),
            FileKind::Checkpoints
        );
        assert_eq!(
            kind("windows/2026/11/01/00/index/t_1s.cbor.zst"),
            FileKind::Index
        );
        assert_eq!(
            kind("windows/2026/11/01/00/index/taint.cbor.zst"),
            FileKind::Index
        );
        assert_eq!(
            kind("graph/edges/2026/11/01/00/p0003.edges.cbor.zst"),
            FileKind::GraphEdges
        );
        assert_eq!(
            kind("windows/2026/11/01/00/proofs/hour_root.sig"),
            FileKind::Proofs
        );
        assert_eq!(kind("_meta/keys/events/00000000.cbor"), FileKind::Meta);
        assert_eq!(kind("ctgf/cones/v0001/memfd_exec.cone"), FileKind::Meta);
    }

    #[test]
    fn peak_rss_and_child_cpu_are_read_from_proc() {
        assert_eq!(
            vm_hwm_kib("Name:\tx\nVmHWM:\t  123456 kB\nVmRSS:\t 1 kB\n"),
            Some(123_456)
        );
        assert_eq!(vm_hwm_kib("Name:\tx\n"), None);
        let before = children_cpu_s().unwrap();
        std::process::Command::new("sh")
            .args(["-c", "i=0; while [ $i -lt 200000 ]; do i=$((i+1)); done"])
            .status()
            .unwrap();
        assert!(children_cpu_s().unwrap() > before);
    }
}
