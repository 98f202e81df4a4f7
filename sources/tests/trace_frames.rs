//! Frame bodies behind valid checksums (FORMAT.md §7.2): a trace holding a frame of every
//! kind, and a batch with an event of every kind, has one frame's payload or header
//! mutated and sealed again under a correct checksum, so the mutation reaches the
//! frame-body decoders instead of stopping at the checksum. The reader must never panic,
//! must keep reading the frames after a refused one, and what it accepts must be exactly
//! what the bytes say (a batch re-encodes to its payload).

// Trace errors carry the file, frame and decode error: large, and only on a failure path.
#![allow(clippy::result_large_err)]

use proptest::prelude::*;
use ritma_schemas::records::{HealthKind, LossReason, Record};
use ritma_sources::raw::{IdCall, RawBody, RawEvent, SockAddr, Task};
use ritma_sources::trace::{
    BaselineStatus, ExeEntry, TraceItem, TraceReader, TraceWriter, FILE_MAGIC, FRAME_HEADER_LEN,
};
mod common;

use common::*;

/// One body of every raw event kind (FORMAT.md §7.1).
fn every_body() -> Vec<RawBody> {
    let v4 = SockAddr::V4 {
        addr: [10, 0, 0, 1],
        port: 443,
    };
    vec![
        RawBody::Exec {
            filename: b"/usr/bin/curl".to_vec(),
            argv: vec![b"curl".to_vec(), b"-s".to_vec()],
            argv_truncated: false,
            exe_dev: 2049,
            exe_ino: 77,
            given: None,
            stdio_net: 0,
        },
        RawBody::Fork {
            child_pid: 101,
            child_start_ns: 5_000,
        },
        RawBody::Exit { code: -1 },
        RawBody::Open {
            path: b"/etc/passwd".to_vec(),
            flags: 0,
            mode: 0,
            result: 3,
            given: None,
        },
        RawBody::Unlink {
            path: b"/tmp/x".to_vec(),
            flags: 0,
            result: 0,
            given: None,
        },
        RawBody::Rename {
            old: b"/tmp/a".to_vec(),
            new: b"/tmp/b".to_vec(),
            flags: 0,
            result: -2,
            old_given: None,
            new_given: None,
        },
        RawBody::Connect {
            addr: v4.clone(),
            result: 0,
        },
        RawBody::Accept {
            addr: SockAddr::V6 {
                addr: [1; 16],
                port: 22,
            },
            result: 5,
        },
        RawBody::Bind {
            addr: SockAddr::Unix {
                path: b"/run/s".to_vec(),
            },
            result: 0,
        },
        RawBody::Listen {
            backlog: 128,
            result: 0,
        },
        RawBody::Ptrace {
            request: 16,
            target_pid: 7,
            target_start_ns: 0,
            result: 0,
        },
        RawBody::SetUid {
            call: IdCall::SetRes,
            ids: [0, 0, 0],
            result: 0,
        },
        RawBody::SetGid {
            call: IdCall::Set,
            ids: [1000, u32::MAX, u32::MAX],
            result: -1,
        },
        RawBody::CapSet {
            effective: 1,
            permitted: 3,
            inheritable: 0,
            result: 0,
        },
        RawBody::MemfdCreate {
            name: b"x".to_vec(),
            flags: 1,
            result: 4,
        },
        RawBody::ModuleLoad {
            name: b"evil".to_vec(),
            from_fd: true,
            result: -1,
        },
        RawBody::BpfProgLoad {
            prog_type: 2,
            name: b"prog".to_vec(),
            result: 6,
        },
        RawBody::Present {
            exe: b"/usr/sbin/sshd".to_vec(),
            argv: vec![b"sshd".to_vec()],
            argv_truncated: true,
            exe_dev: 2049,
            exe_ino: 12,
        },
    ]
}

/// A trace with a frame of every kind: run, a batch of every event kind, cgroups, loss,
/// clock, exes, blob, health, and a last batch. Returns its bytes.
fn sample_trace() -> Vec<u8> {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("t.rtrace");
    let mut w = TraceWriter::create(&p).unwrap();
    let run = w.add_run(&meta("n1")).unwrap();
    let events: Vec<RawEvent> = every_body()
        .into_iter()
        .enumerate()
        .map(|(i, body)| RawEvent {
            seq: i as u64,
            mono_ns: 1_000 + i as u64,
            task: Task {
                pid: 100,
                tid: 100,
                comm: b"sh".to_vec(),
                cgroup_id: 9,
                ..Task::default()
            },
            body,
        })
        .collect();
    let n = events.len() as u64;
    w.append_cgroups(run, &[(9, b"/system.slice/a.service".to_vec())])
        .unwrap();
    w.append_batch(run, &events).unwrap();
    w.append_loss(run, LossReason::KernelRingbufFull, 3)
        .unwrap();
    w.append_clock(run, 5_000).unwrap();
    let hash = w.append_blob(run, b"#!/bin/sh\n").unwrap();
    w.append_exes(
        run,
        &[ExeEntry {
            dev: 2049,
            ino: 77,
            hash,
            baseline: BaselineStatus::Unlisted,
        }],
    )
    .unwrap();
    w.append_health(
        run,
        HealthKind::ProbeDetached,
        "exit_openat",
        6_000,
        Some(2),
    )
    .unwrap();
    w.append_batch(run, &common::events(n, 2, 9)).unwrap();
    drop(w);
    std::fs::read(&p).unwrap()
}

/// A frame's header fields and its payload, decompressed.
#[derive(Clone, Debug)]
struct Frame {
    kind: u8,
    run: u16,
    first_seq: u64,
    count: u32,
    raw: Vec<u8>,
}

fn parse_frames(bytes: &[u8]) -> Vec<Frame> {
    let mut out = Vec::new();
    let mut at = FILE_MAGIC.len();
    while at < bytes.len() {
        let h = &bytes[at..at + FRAME_HEADER_LEN];
        let be32 = |i: usize| u32::from_be_bytes(h[i..i + 4].try_into().unwrap());
        let comp = &bytes[at + FRAME_HEADER_LEN..at + FRAME_HEADER_LEN + be32(24) as usize];
        out.push(Frame {
            kind: h[4],
            run: u16::from_be_bytes([h[6], h[7]]),
            first_seq: u64::from_be_bytes(h[8..16].try_into().unwrap()),
            count: be32(16),
            raw: zstd::bulk::decompress(comp, be32(20) as usize).unwrap(),
        });
        at += FRAME_HEADER_LEN + comp.len();
    }
    out
}

/// How a frame is changed before it is sealed again.
#[derive(Clone, Debug)]
enum Mutation {
    Flip { at: usize, bits: u8 },
    Insert { at: usize, bytes: Vec<u8> },
    Delete { at: usize, len: usize },
    Truncate { at: usize },
    Replace(Vec<u8>),
    Count(u32),
    FirstSeq(u64),
    Kind(u8),
    Run(u16),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        4 => (any::<usize>(), 1u8..=255).prop_map(|(at, bits)| Mutation::Flip { at, bits }),
        2 => (any::<usize>(), proptest::collection::vec(any::<u8>(), 1..8))
            .prop_map(|(at, bytes)| Mutation::Insert { at, bytes }),
        2 => (any::<usize>(), 1usize..16).prop_map(|(at, len)| Mutation::Delete { at, len }),
        1 => any::<usize>().prop_map(|at| Mutation::Truncate { at }),
        1 => proptest::collection::vec(any::<u8>(), 0..64).prop_map(Mutation::Replace),
        1 => prop_oneof![0u32..40, any::<u32>()].prop_map(Mutation::Count),
        1 => prop_oneof![0u64..40, any::<u64>()].prop_map(Mutation::FirstSeq),
        1 => (0u8..12).prop_map(Mutation::Kind),
        1 => (0u16..3).prop_map(Mutation::Run),
    ]
}

fn apply(f: &mut Frame, m: &Mutation) {
    let len = f.raw.len();
    let at = |i: usize| if len == 0 { 0 } else { i % len };
    match m {
        Mutation::Flip { at: i, bits } => match len {
            0 => f.raw.push(*bits),
            _ => f.raw[at(*i)] ^= bits,
        },
        Mutation::Insert { at: i, bytes } => {
            let i = if len == 0 { 0 } else { i % (len + 1) };
            f.raw.splice(i..i, bytes.iter().copied());
        }
        Mutation::Delete { at: i, len: n } => {
            let i = at(*i);
            let end = (i + n).min(len);
            f.raw.drain(i..end);
        }
        Mutation::Truncate { at: i } => f.raw.truncate(at(*i)),
        Mutation::Replace(b) => f.raw = b.clone(),
        Mutation::Count(c) => f.count = *c,
        Mutation::FirstSeq(s) => f.first_seq = *s,
        Mutation::Kind(k) => f.kind = *k,
        Mutation::Run(r) => f.run = *r,
    }
}

fn encoded(events: &[RawEvent]) -> Vec<u8> {
    let mut raw = Vec::new();
    for e in events {
        e.encode_into(&mut raw);
    }
    raw
}

#[test]
fn the_sample_trace_reads_back_whole() {
    let bytes = sample_trace();
    let frames = parse_frames(&bytes);
    let kinds: Vec<u8> = frames.iter().map(|f| f.kind).collect();
    assert_eq!(kinds, [1, 3, 2, 4, 5, 7, 6, 8, 2]);
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("t.rtrace");
    std::fs::write(&p, &bytes).unwrap();
    let items = read_all(&p).unwrap();
    assert_eq!(items.len(), frames.len());
    let TraceItem::Batch { events, .. } = &items[2] else {
        panic!("{items:?}")
    };
    assert_eq!(events.len(), every_body().len());
    assert_eq!(encoded(events), frames[2].raw);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1024))]

    #[test]
    fn a_mutated_frame_under_a_valid_checksum_is_refused_or_read_exactly(
        pick in any::<usize>(),
        mutations in proptest::collection::vec(mutation(), 1..4),
    ) {
        let bytes = sample_trace();
        let frames = parse_frames(&bytes);
        let i = pick % frames.len();
        let mut f = frames[i].clone();
        for m in &mutations {
            apply(&mut f, m);
        }
        let mut file = FILE_MAGIC.to_vec();
        for (j, g) in frames.iter().enumerate() {
            let g = if j == i { &f } else { g };
            file.extend(frame(g.kind, g.run, g.first_seq, g.count, &g.raw));
        }
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("t.rtrace");
        std::fs::write(&p, &file).unwrap();
        let mut r = TraceReader::open(&p).unwrap();
        // Every frame but the mutated one is valid, so frame j is the j-th item read or
        // refused.
        let (mut frame_no, mut read) = (0usize, 0usize);
        for _ in 0..2 * frames.len() + 2 {
            match r.next_item() {
                Ok(Some(TraceItem::Batch { events, run })) if frame_no == i => {
                    read += 1;
                    // A batch read from the mutated frame holds exactly its payload's
                    // events and its header's run, count and first seq.
                    prop_assert_eq!(f.kind, KIND_BATCH);
                    prop_assert_eq!(encoded(&events), f.raw.clone());
                    prop_assert_eq!(events.len() as u32, f.count);
                    prop_assert_eq!((run, events[0].seq), (f.run, f.first_seq));
                }
                Ok(Some(_)) => read += 1,
                Ok(None) => break,
                // A refused frame: the reader moves on to the next valid one.
                Err(_) => match r.skip_corrupt() {
                    Ok(Some(_)) => {}
                    Ok(None) | Err(_) => break,
                },
            }
            frame_no += 1;
        }
        prop_assert!(read <= frames.len());
    }

    /// A run frame's payload is a RunMeta: accepted only as exactly its encoding.
    #[test]
    fn a_mutated_run_frame_is_refused_or_read_exactly(
        mutations in proptest::collection::vec(mutation(), 1..4),
    ) {
        let mut f = Frame { kind: KIND_RUN, run: 0, first_seq: 0, count: 0, raw: meta("n1").encode() };
        for m in &mutations {
            apply(&mut f, m);
        }
        let mut file = FILE_MAGIC.to_vec();
        file.extend(frame(f.kind, f.run, f.first_seq, f.count, &f.raw));
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("t.rtrace");
        std::fs::write(&p, &file).unwrap();
        let mut r = TraceReader::open(&p).unwrap();
        if let Ok(Some(TraceItem::Run { meta, .. })) = r.next_item() {
            prop_assert_eq!(meta.encode(), f.raw);
        }
    }
}
