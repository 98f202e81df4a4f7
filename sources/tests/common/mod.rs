//! Fixtures shared by the trace-frame tests: frames built from FORMAT.md §7.2 alone, so
//! the reader is checked against the document, not against its own writer.
#![allow(dead_code)]
// Trace errors carry the file, frame and decode error: large, and only on a failure path.
#![allow(clippy::result_large_err)]

use ritma_schemas::records::{Record, RunMeta};
use ritma_sources::raw::{RawBody, RawEvent, Task};
use ritma_sources::trace::{TraceError, TraceItem, TraceReader, FILE_MAGIC};
use std::path::Path;

pub const KIND_RUN: u8 = 1;
pub const KIND_BATCH: u8 = 2;
pub const KIND_CGROUPS: u8 = 3;
pub const KIND_LOSS: u8 = 4;
pub const KIND_CLOCK: u8 = 5;
pub const KIND_EXES: u8 = 6;
pub const KIND_BLOB: u8 = 7;
pub const KIND_HEALTH: u8 = 8;
pub const KIND_CONTINUE: u8 = 9;

pub fn meta(node: &str) -> RunMeta {
    RunMeta {
        node: node.into(),
        boot_id: [1; 16],
        sensor_version: "test".into(),
        config_digest: [2; 32],
        window_len_ns: 1_000_000_000,
        wall_minus_mono_ns: 1_700_000_000_000_000_000,
        first_seq: 0,
        started_wall_ns: 1_700_000_000_000_000_000,
    }
}

/// Exit events of pid 100 with seqs `first..first + n`, in cgroup `cgroup_id`.
pub fn events(first: u64, n: u64, cgroup_id: u64) -> Vec<RawEvent> {
    (first..first + n)
        .map(|seq| RawEvent {
            seq,
            mono_ns: 1000 + seq,
            task: Task {
                pid: 100,
                cgroup_id,
                comm: b"cat".to_vec(),
                ..Task::default()
            },
            body: RawBody::Exit { code: 0 },
        })
        .collect()
}

/// One frame exactly as FORMAT.md §7.2 lays it out.
pub fn frame(kind: u8, run: u16, first_seq: u64, count: u32, raw: &[u8]) -> Vec<u8> {
    let comp = zstd::bulk::compress(raw, 1).unwrap();
    let mut f = b"RTBF".to_vec();
    f.push(kind);
    f.push(0);
    f.extend_from_slice(&run.to_be_bytes());
    f.extend_from_slice(&first_seq.to_be_bytes());
    f.extend_from_slice(&count.to_be_bytes());
    f.extend_from_slice(&(raw.len() as u32).to_be_bytes());
    f.extend_from_slice(&(comp.len() as u32).to_be_bytes());
    let mut h = blake3::Hasher::new();
    h.update(&f);
    h.update(&comp);
    f.extend_from_slice(&h.finalize().as_bytes()[..16]);
    f.extend_from_slice(&comp);
    f
}

/// A batch frame of run 0 holding events 0 and 1, with its last byte flipped (its
/// checksum fails), for the resync tests.
pub fn corrupt_batch_frame() -> Vec<u8> {
    let mut raw = Vec::new();
    for e in events(0, 2, 0) {
        e.encode_into(&mut raw);
    }
    let mut bad = frame(KIND_BATCH, 0, 0, 2, &raw);
    let last = bad.len() - 1;
    bad[last] ^= 1;
    bad
}

/// File magic and the run frame of run 0.
pub fn trace_start() -> Vec<u8> {
    let mut b = FILE_MAGIC.to_vec();
    b.extend(frame(KIND_RUN, 0, 0, 0, &meta("n1").encode()));
    b
}

pub fn read_all(path: &Path) -> Result<Vec<TraceItem>, TraceError> {
    let mut r = TraceReader::open(path)?;
    let mut out = Vec::new();
    while let Some(i) = r.next_item()? {
        out.push(i);
    }
    Ok(out)
}

/// Every item read, skipping corrupt frames, as (frame kind, first seq).
pub fn read_skipping(p: &Path) -> Vec<(u8, u64)> {
    let mut r = TraceReader::open(p).unwrap();
    let mut out = vec![];
    loop {
        match r.next_item() {
            Ok(Some(TraceItem::Run { meta, .. })) => out.push((KIND_RUN, meta.first_seq)),
            Ok(Some(TraceItem::Batch { events, .. })) => out.push((KIND_BATCH, events[0].seq)),
            Ok(Some(TraceItem::Cgroups { first_seq, .. })) => out.push((KIND_CGROUPS, first_seq)),
            Ok(Some(TraceItem::Loss { at_seq, .. })) => out.push((KIND_LOSS, at_seq)),
            Ok(Some(TraceItem::Clock { at_seq, .. })) => out.push((KIND_CLOCK, at_seq)),
            Ok(Some(TraceItem::Exes { first_seq, .. })) => out.push((KIND_EXES, first_seq)),
            Ok(Some(TraceItem::BlobPart { offset, .. })) => out.push((KIND_BLOB, offset)),
            Ok(Some(TraceItem::Health(h))) => out.push((KIND_HEALTH, h.at_seq)),
            Ok(Some(TraceItem::Continue { next_seq, .. })) => out.push((KIND_CONTINUE, next_seq)),
            Ok(None) => return out,
            Err(_) => {
                r.skip_corrupt().unwrap().expect("a valid frame follows");
            }
        }
    }
}

/// The error a trace of run frame 0 then `frame` gives at that frame.
pub fn frame_error(frame: Vec<u8>) -> TraceError {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("t.rtrace");
    let mut b = trace_start();
    b.extend(frame);
    std::fs::write(&p, &b).unwrap();
    let mut r = TraceReader::open(&p).unwrap();
    assert!(matches!(r.next_item(), Ok(Some(TraceItem::Run { .. }))));
    r.next_item().expect_err("the frame must be rejected")
}
