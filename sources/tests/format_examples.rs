//! Keeps the raw-event and trace examples of docs/FORMAT.md §7 true.

use ritma_schemas::records::{HealthKind, LossReason, RunMeta};
use ritma_sources::raw::{DupCall, DupSource, RawBody, RawEvent, SockAddr, Task};
use ritma_sources::trace::{BaselineStatus, ExeEntry, TraceWriter, FILE_MAGIC, FRAME_HEADER_LEN};
use std::collections::BTreeMap;

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn wrapped(b: &[u8]) -> String {
    hex(b)
        .as_bytes()
        .chunks(64)
        .map(|c| std::str::from_utf8(c).unwrap())
        .collect::<Vec<_>>()
        .join("\n")
}

fn open_event() -> RawEvent {
    RawEvent {
        seq: 7,
        mono_ns: 5_250_000_000,
        task: Task {
            pid: 4242,
            tid: 4242,
            ppid: 1,
            parent_start_ns: 1_000_000,
            start_ns: 5_000_000_000,
            uid: 1000,
            gid: 1000,
            euid: 1000,
            egid: 1000,
            cgroup_id: 4242,
            mnt_ns: 4026531841,
            pid_ns: 4026531836,
            net_ns: 4026531840,
            comm: b"cat".to_vec(),
        },
        body: RawBody::Open {
            path: b"/etc/passwd".to_vec(),
            flags: 0,
            mode: 0,
            result: 3,
            given: None,
        },
    }
}

#[test]
fn format_md_examples_match_the_code() {
    let mut ex = BTreeMap::new();
    ex.insert("raw-open".to_owned(), wrapped(&open_event().encode()));
    // The same open, given as `../etc//passwd` from /tmp: version 2.
    let mut given = open_event();
    if let RawBody::Open { given: g, .. } = &mut given.body {
        *g = Some(b"../etc//passwd".to_vec());
    }
    let bytes = given.encode();
    let mut d = ritma_schemas::cbor::Decoder::new(&bytes, "RawEvent");
    assert_eq!(RawEvent::decode_from(&mut d).unwrap(), given);
    d.finish().unwrap();
    ex.insert("raw-open-given".to_owned(), wrapped(&bytes));
    // bash (as `cat` was) makes a TCP connection its stdout: dup2(3, 1).
    let mut dup = open_event();
    dup.task.comm = b"bash".to_vec();
    dup.body = RawBody::FdDup {
        call: DupCall::Dup2,
        oldfd: 3,
        newfd: 1,
        source: DupSource::Socket,
        peer: SockAddr::V4 {
            addr: [203, 0, 113, 9],
            port: 4444,
        },
        exe: b"/usr/bin/bash".to_vec(),
    };
    let bytes = dup.encode();
    let mut d = ritma_schemas::cbor::Decoder::new(&bytes, "RawEvent");
    assert_eq!(RawEvent::decode_from(&mut d).unwrap(), dup);
    d.finish().unwrap();
    ex.insert("raw-fd-dup".to_owned(), wrapped(&bytes));

    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("t.rtrace");
    let mut w = TraceWriter::create(&p).unwrap();
    let run = w
        .add_run(&RunMeta {
            node: "web-1".into(),
            boot_id: std::array::from_fn(|i| i as u8),
            sensor_version: "ritma 0.1.0".into(),
            config_digest: std::array::from_fn(|i| 0x80 + i as u8),
            window_len_ns: 1_000_000_000,
            wall_minus_mono_ns: 1_763_800_000_000_000_000,
            first_seq: 7,
            started_wall_ns: 1_763_884_800_000_000_000,
        })
        .unwrap();
    let after_run = std::fs::metadata(&p).unwrap().len() as usize;
    let cgroups = [
        (
            4242,
            b"/user.slice/user-1000.slice/session-3.scope".to_vec(),
        ),
        (4300, b"/system.slice/cron.service".to_vec()),
    ];
    w.append_cgroups(run, &cgroups).unwrap();
    let after_cgroups = std::fs::metadata(&p).unwrap().len() as usize;
    w.append_batch(run, &[open_event()]).unwrap();
    let after_batch = std::fs::metadata(&p).unwrap().len() as usize;
    w.append_loss(run, LossReason::KernelRingbufFull, 12)
        .unwrap();
    let after_loss = std::fs::metadata(&p).unwrap().len() as usize;
    w.append_clock(run, 123_000_000_000).unwrap();
    let after_clock = std::fs::metadata(&p).unwrap().len() as usize;
    w.append_blob(run, b"abc").unwrap();
    let after_blob = std::fs::metadata(&p).unwrap().len() as usize;
    w.append_exes(
        run,
        &[ExeEntry {
            dev: 2049,
            ino: 131_077,
            hash: *blake3::hash(b"abc").as_bytes(),
            baseline: BaselineStatus::Unlisted,
        }],
    )
    .unwrap();
    let after_exes = std::fs::metadata(&p).unwrap().len() as usize;
    w.append_health(
        run,
        HealthKind::ProbeDetached,
        "exit_openat",
        124_000_000_000,
        Some(35),
    )
    .unwrap();
    let bytes = std::fs::read(&p).unwrap();
    assert_eq!(bytes[..8], FILE_MAGIC);
    ex.insert(
        "trace-headers".to_owned(),
        format!(
            "run frame header   {}\nbatch frame header {}",
            hex(&bytes[8..8 + FRAME_HEADER_LEN]),
            hex(&bytes[after_cgroups..after_cgroups + FRAME_HEADER_LEN])
        ),
    );
    // The payload as the writer stored it, decompressed.
    let payload =
        zstd::bulk::decompress(&bytes[after_run + FRAME_HEADER_LEN..after_cgroups], 1 << 16)
            .unwrap();
    ex.insert(
        "trace-cgroups".to_owned(),
        format!(
            "header  {}\npayload {}",
            hex(&bytes[after_run..after_run + FRAME_HEADER_LEN]),
            wrapped(&payload).replace('\n', "\n        ")
        ),
    );
    let loss = zstd::bulk::decompress(&bytes[after_batch + FRAME_HEADER_LEN..after_loss], 1 << 16)
        .unwrap();
    ex.insert(
        "trace-loss".to_owned(),
        format!(
            "header  {}\npayload {}",
            hex(&bytes[after_batch..after_batch + FRAME_HEADER_LEN]),
            hex(&loss)
        ),
    );
    let clock = zstd::bulk::decompress(&bytes[after_loss + FRAME_HEADER_LEN..after_clock], 1 << 16)
        .unwrap();
    let blob = zstd::bulk::decompress(&bytes[after_clock + FRAME_HEADER_LEN..after_blob], 1 << 16)
        .unwrap();
    ex.insert(
        "trace-blob".to_owned(),
        format!(
            "header  {}\npayload {}",
            hex(&bytes[after_clock..after_clock + FRAME_HEADER_LEN]),
            wrapped(&blob).replace('\n', "\n        ")
        ),
    );
    let exes =
        zstd::bulk::decompress(&bytes[after_blob + FRAME_HEADER_LEN..after_exes], 1 << 16).unwrap();
    let health = zstd::bulk::decompress(&bytes[after_exes + FRAME_HEADER_LEN..], 1 << 16).unwrap();
    ex.insert(
        "trace-health".to_owned(),
        format!(
            "header  {}\npayload {}",
            hex(&bytes[after_exes..after_exes + FRAME_HEADER_LEN]),
            hex(&health)
        ),
    );
    ex.insert(
        "trace-exes".to_owned(),
        format!(
            "header  {}\npayload {}",
            hex(&bytes[after_blob..after_blob + FRAME_HEADER_LEN]),
            wrapped(&exes).replace('\n', "\n        ")
        ),
    );
    ex.insert(
        "trace-clock".to_owned(),
        format!(
            "header  {}\npayload {}",
            hex(&bytes[after_loss..after_loss + FRAME_HEADER_LEN]),
            hex(&clock)
        ),
    );
    let doc = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/FORMAT.md");
    ritma_schemas::format_doc::check_examples(&doc, "sources", &ex);
}
