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
}

fn usage() -> ! {
    eprintln!(
        "usage: replay_bench TRACE.rtrace [--store DIR [--detail]] [--json-out FILE] [--level N]"
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
    while let Some(a) = it.next() {
        match a.to_str() {
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
    Args {
        trace: trace.unwrap_or_else(|| usage()),
        store,
        json_out,
        level,
        detail,
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
    match b {
        RawBody::Exec { .. } => "exec",
        RawBody::Fork { .. } => "fork",
        RawBody::Exit { .. } => "exit",
        RawBody::Open { .. } => "open",
        RawBody::Unlink { .. } => "unlink",
        RawBody::Rename { .. } => "rename",
        RawBody::Connect { .. } => "connect",
        RawBody::Accept { .. } => "accept",
        RawBody::Bind { .. } => "bind",
        RawBody::Listen { .. } => "listen",
        RawBody::Ptrace { .. } => "ptrace",
        RawBody::SetUid { .. } => "setuid",
        RawBody::SetGid { .. } => "setgid",
        RawBody::CapSet { .. } => "capset",
        RawBody::MemfdCreate { .. } => "memfd_create",
        RawBody::ModuleLoad { .. } => "module_load",
        RawBody::BpfProgLoad { .. } => "bpf_prog_load",
    }
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
    }
    out.extend_from_slice(b"}\n");
}

// ---------------------------------------------------------------- store size

#[derive(Default, Debug)]
struct StoreBytes {
    blocks: (u64, u64),
    micro_records: (u64, u64),
    sigs: (u64, u64),
    other: (u64, u64),
}

impl StoreBytes {
    fn total(&self) -> u64 {
        self.blocks.1 + self.micro_records.1 + self.sigs.1 + self.other.1
    }
    fn files(&self) -> u64 {
        self.blocks.0 + self.micro_records.0 + self.sigs.0 + self.other.0
    }
}

fn walk(dir: &Path, acc: &mut StoreBytes) -> std::io::Result<()> {
    for ent in std::fs::read_dir(dir)? {
        let ent = ent?;
        let ft = ent.file_type()?;
        let p = ent.path();
        if ft.is_dir() {
            walk(&p, acc)?;
        } else if ft.is_file() {
            let len = ent.metadata()?.len();
            let name = ent.file_name();
            let name = name.to_string_lossy();
            let parent = dir.file_name().map(|n| n.to_string_lossy().into_owned());
            let slot = match parent.as_deref() {
                Some("blocks") if name.ends_with(".cbor.zst") => &mut acc.blocks,
                Some("micro") if name.ends_with(".cbor") => &mut acc.micro_records,
                Some("micro") if name.ends_with(".sig") => &mut acc.sigs,
                _ => &mut acc.other,
            };
            slot.0 += 1;
            slot.1 += len;
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
    use ritma_schemas::records::{record_name, Block, Record};
    let mut blocks = Vec::new();
    let mut stack = vec![windows.to_owned()];
    while let Some(d) = stack.pop() {
        for ent in std::fs::read_dir(&d)? {
            let p = ent?.path();
            if p.is_dir() {
                stack.push(p);
            } else if p.to_string_lossy().ends_with(".cbor.zst") {
                blocks.push(p);
            }
        }
    }
    // By window, then block index: the file names sort that way within an hour.
    blocks.sort();
    let mut by_type = std::collections::BTreeMap::<u64, (u64, u64)>::new();
    let (mut raw_total, mut leaf_total, mut leaves) = (0u64, 0u64, 0u64);
    let mut per_window = 0u64;
    let mut window_buf: Vec<u8> = Vec::new();
    let mut current: Option<(PathBuf, u64)> = None;
    let flush = |buf: &mut Vec<u8>, acc: &mut u64| -> std::io::Result<()> {
        if !buf.is_empty() {
            *acc += zstd::bulk::compress(buf, level)?.len() as u64;
            buf.clear();
        }
        Ok(())
    };
    for p in &blocks {
        let raw = zstd::stream::decode_all(std::fs::File::open(p)?)?;
        raw_total += raw.len() as u64;
        let block = Block::decode(&raw).map_err(|e| format!("{}: {e}", p.display()))?;
        let key = (p.parent().unwrap_or(p).to_owned(), block.window);
        if current.as_ref() != Some(&key) {
            flush(&mut window_buf, &mut per_window)?;
            current = Some(key);
        }
        for r in &block.records {
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
    }
    flush(&mut window_buf, &mut per_window)?;
    let per = |b: u64| b as f64 / events.max(1) as f64;
    println!(
        "  blocks uncompressed: {raw_total} bytes ({:.2} B/event), {leaves} leaves ({:.3} per event), leaf bytes {leaf_total} ({:.2} B/event)",
        per(raw_total),
        leaves as f64 / events.max(1) as f64,
        per(leaf_total)
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
    println!(
        "  what-if, each window's leaves as one zstd -{level} frame: {per_window} bytes, {:.2} B/event",
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
            TraceItem::Run { run, meta } => {
                debug_assert_eq!(run as usize, runs.len());
                runs.push((meta.node.clone(), meta.wall_minus_mono_ns));
            }
            // JSON lines carry the cgroup id in each event; the path table is not an event.
            TraceItem::Cgroups { .. } => {}
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
    if let Some(store) = &args.store {
        let windows = store.join("windows");
        let mut sb = StoreBytes::default();
        walk(&windows, &mut sb)?;
        let total = sb.total();
        println!("store:              {}", store.display());
        println!(
            "  windows/ total:   {total} bytes in {} files, {:.2} B/event",
            sb.files(),
            per(total)
        );
        for (name, (n, b)) in [
            ("blocks *.cbor.zst", sb.blocks),
            ("micro *.cbor", sb.micro_records),
            ("sigs *.sig", sb.sigs),
            ("other (proofs/ …)", sb.other),
        ] {
            println!(
                "    {name:<20} {b:>12} bytes in {n:>6} files, {:.3} B/event",
                per(b)
            );
        }
        let (apparent, disk) = du(store)?;
        println!(
            "  whole store:      {apparent} bytes ({:.2} B/event), {disk} bytes on disk ({:.2} B/event)",
            per(apparent),
            per(disk)
        );
        println!(
            "  ratio store windows/ : JSON+zstd -{} = {:.3} ({:.1}x smaller); : JSON = {:.4}",
            args.level,
            total as f64 / zstd_bytes.max(1) as f64,
            zstd_bytes as f64 / total.max(1) as f64,
            total as f64 / json_bytes.max(1) as f64
        );
        if args.detail {
            block_detail(&windows, args.level, events)?;
        }
    }
    Ok(())
}
