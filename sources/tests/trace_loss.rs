//! Loss frames (kind 4) of `.rtrace` files, FORMAT.md §7.2. Hostile frames are built
//! here from the spec alone (header layout, zstd, BLAKE3 checksum).

// Trace errors carry the file, frame and decode error: large, and only on a failure path.
#![allow(clippy::result_large_err)]

use proptest::prelude::*;
use ritma_schemas::cbor::{DecodeErrorKind, Encoder};
use ritma_schemas::records::{LossReason, Record};
use ritma_sources::trace::{
    scan_runs, TraceError, TraceItem, TraceReader, TraceWriter, FILE_MAGIC, FRAME_HEADER_LEN,
    MAX_LOSS_COUNT,
};
mod common;

use common::*;
use std::path::Path;

/// A loss payload as FORMAT.md encodes it: `[reason, count]`.
fn payload(reason: u64, count: u64) -> Vec<u8> {
    let mut e = Encoder::new();
    e.array(2).uint(reason).uint(count);
    e.into_bytes()
}

#[test]
fn loss_frames_round_trip_between_batches_with_the_spec_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("t.rtrace");
    let mut w = TraceWriter::create(&p).unwrap();
    let run = w.add_run(&meta("n1")).unwrap();
    w.append_batch(run, &events(0, 4, 0)).unwrap();
    let at = std::fs::metadata(&p).unwrap().len() as usize;
    w.append_loss(run, LossReason::KernelRingbufFull, 17)
        .unwrap();
    w.append_loss(run, LossReason::QueueShed, 2).unwrap();
    // A loss frame does not advance the run's seq.
    assert_eq!(w.next_seq(run), Some(4));
    w.append_batch(run, &events(4, 2, 0)).unwrap();
    w.append_loss(run, LossReason::DecodeError, MAX_LOSS_COUNT)
        .unwrap();
    drop(w);

    let items = read_all(&p).unwrap();
    assert_eq!(items.len(), 6);
    assert_eq!(
        items[2],
        TraceItem::Loss {
            run: 0,
            at_seq: 4,
            reason: LossReason::KernelRingbufFull,
            count: 17
        }
    );
    assert_eq!(
        items[3],
        TraceItem::Loss {
            run: 0,
            at_seq: 4,
            reason: LossReason::QueueShed,
            count: 2
        }
    );
    assert_eq!(
        items[5],
        TraceItem::Loss {
            run: 0,
            at_seq: 6,
            reason: LossReason::DecodeError,
            count: MAX_LOSS_COUNT
        }
    );
    let bytes = std::fs::read(&p).unwrap();
    let expected = frame(KIND_LOSS, 0, 4, 0, &payload(1, 17));
    assert_eq!(&bytes[at..at + expected.len()], expected);
    assert_eq!(
        bytes[at..at + 20],
        [b'R', b'T', b'B', b'F', 4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 4, 0, 0, 0, 0]
    );
    // The payload is `[1, 17]`: 82 01 11.
    assert_eq!(payload(1, 17), [0x82, 0x01, 0x11]);
    assert_eq!(scan_runs(&p).unwrap(), vec![meta("n1")]);
    // Reopening for append steps over loss frames.
    let (_, rec) = TraceWriter::open_append(&p).unwrap();
    assert_eq!(rec.next_seq, vec![6]);
}

#[test]
fn writer_refuses_bad_losses() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("t.rtrace");
    let mut w = TraceWriter::create(&p).unwrap();
    assert!(matches!(
        w.append_loss(0, LossReason::QueueShed, 1),
        Err(TraceError::Misuse { .. })
    ));
    let run = w.add_run(&meta("n1")).unwrap();
    let len = std::fs::metadata(&p).unwrap().len();
    for n in [0, MAX_LOSS_COUNT + 1] {
        match w.append_loss(run, LossReason::QueueShed, n) {
            Err(TraceError::Misuse { reason, .. }) => {
                assert!(
                    reason.contains("a loss frame counts 1 to 4294967295"),
                    "{reason}"
                )
            }
            other => panic!("{n}: {other:?}"),
        }
    }
    assert_eq!(std::fs::metadata(&p).unwrap().len(), len);
}

#[test]
fn reader_rejects_malformed_loss_frames_with_typed_errors() {
    let check = |raw: Vec<u8>, field: &str, kind: DecodeErrorKind| match frame_error(frame(
        KIND_LOSS, 0, 0, 0, &raw,
    )) {
        TraceError::Loss { pos, source } => {
            assert_eq!((pos.frame, source.record, source.field), (1, "Loss", field));
            assert_eq!(source.kind, kind);
            assert!(TraceError::Loss { pos, source }
                .to_string()
                .contains("frame 1 at byte"));
        }
        other => panic!("{other:?}"),
    };
    check(
        payload(0, 1),
        "reason",
        DecodeErrorKind::UnknownValue { value: 0 },
    );
    check(
        payload(7, 1),
        "reason",
        DecodeErrorKind::UnknownValue { value: 7 },
    );
    let bad_count = DecodeErrorKind::Invalid("loss count is not 1 to 4294967295");
    check(payload(1, 0), "count", bad_count.clone());
    check(payload(1, MAX_LOSS_COUNT + 1), "count", bad_count);
    let mut stray = payload(1, 1);
    stray.push(0);
    check(stray, "(end)", DecodeErrorKind::TrailingBytes { count: 1 });
    let mut cut = payload(1, 300);
    cut.pop();
    check(cut, "count", DecodeErrorKind::Truncated);
    let mut e = Encoder::new();
    e.array(3).uint(1).uint(1).uint(1);
    let three = DecodeErrorKind::WrongLength {
        expected: 2,
        found: 3,
    };
    check(e.into_bytes(), "(loss)", three);
    let mut non_shortest = payload(1, 5);
    non_shortest.splice(2..3, [0x18, 0x05]);
    check(non_shortest, "count", DecodeErrorKind::NonShortest);

    let corrupt = |f: Vec<u8>| match frame_error(f) {
        TraceError::Corrupt { reason, .. } => reason,
        other => panic!("{other:?}"),
    };
    let raw = payload(1, 1);
    assert_eq!(
        corrupt(frame(KIND_LOSS, 0, 0, 1, &raw)),
        "loss frame with count 1, not 0"
    );
    assert_eq!(
        corrupt(frame(KIND_LOSS, 1, 0, 0, &raw)),
        "loss frame of run 1 before that run's run frame"
    );
    assert_eq!(
        corrupt(frame(KIND_LOSS, 0, 9, 0, &raw)),
        "loss frame starts at seq 9, run 0 continues at 0"
    );
}

/// Run 0: batch 0..10, loss, batch 10..20, loss, batch 20..30; the offset of each frame
/// after the run frame.
fn write_mixed(p: &Path) -> (Vec<u8>, Vec<usize>) {
    let mut w = TraceWriter::create(p).unwrap();
    let run = w.add_run(&meta("n1")).unwrap();
    let len = || std::fs::metadata(p).unwrap().len() as usize;
    let mut offsets = vec![len()];
    w.append_batch(run, &events(0, 10, 0)).unwrap();
    offsets.push(len());
    w.append_loss(run, LossReason::KernelRingbufFull, 3)
        .unwrap();
    offsets.push(len());
    w.append_batch(run, &events(10, 10, 0)).unwrap();
    offsets.push(len());
    w.append_loss(run, LossReason::QueueShed, 4).unwrap();
    offsets.push(len());
    w.append_batch(run, &events(20, 10, 0)).unwrap();
    (std::fs::read(p).unwrap(), offsets)
}

#[test]
fn reading_resumes_at_a_loss_frame_after_a_corrupt_frame() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("t.rtrace");
    let (full, offsets) = write_mixed(&p);
    let cases = [
        // The first batch lost: the loss frame at seq 10 follows the gap.
        (0, vec![(1, 0), (4, 10), (2, 10), (4, 20), (2, 20)]),
        // A loss frame lost: the batch after it still continues the run.
        (1, vec![(1, 0), (2, 0), (2, 10), (4, 20), (2, 20)]),
        // The middle batch lost: the loss frame at seq 20 follows the gap.
        (2, vec![(1, 0), (2, 0), (4, 10), (4, 20), (2, 20)]),
    ];
    for (frame, expected) in cases {
        let mut bad = full.clone();
        bad[offsets[frame] + FRAME_HEADER_LEN + 2] ^= 0xff;
        std::fs::write(&p, &bad).unwrap();
        assert_eq!(read_skipping(&p), expected, "frame {frame} corrupt");
    }
}

#[test]
fn a_torn_loss_frame_is_cut_off_on_append() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("t.rtrace");
    let (full, offsets) = write_mixed(&p);
    let (start, end) = (offsets[3], offsets[4]);
    for cut in [start + 1, start + FRAME_HEADER_LEN, end - 1] {
        std::fs::write(&p, &full[..cut]).unwrap();
        assert!(matches!(read_all(&p), Err(TraceError::TornTail { .. })));
        let (mut w, rec) = TraceWriter::open_append(&p).unwrap();
        assert_eq!(
            (rec.truncated, rec.next_seq),
            ((cut - start) as u64, vec![20])
        );
        w.append_loss(0, LossReason::QueueShed, 4).unwrap();
        w.append_batch(0, &events(20, 10, 0)).unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), full, "cut at {cut}");
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// Any payload behind a valid checksum: the reader never panics, and what it accepts
    /// is exactly the canonical `[reason, count]` of what it returns.
    #[test]
    fn arbitrary_loss_payloads_decode_strictly(
        raw in prop_oneof![
            proptest::collection::vec(any::<u8>(), 0..12),
            (0u64..8, any::<u64>()).prop_map(|(r, c)| payload(r, c)),
            (1u64..7, 0u64..1000).prop_map(|(r, c)| payload(r, c)),
        ],
        count in prop_oneof![Just(0u32), any::<u32>()],
    ) {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("t.rtrace");
        let mut b = FILE_MAGIC.to_vec();
        b.extend(frame(KIND_RUN, 0, 0, 0, &meta("n1").encode()));
        b.extend(frame(KIND_LOSS, 0, 0, count, &raw));
        std::fs::write(&p, &b).unwrap();
        let mut r = TraceReader::open(&p).unwrap();
        let first = r.next_item();
        prop_assert!(matches!(first, Ok(Some(TraceItem::Run { .. }))), "run frame: {:?}", first);
        match r.next_item() {
            Ok(Some(TraceItem::Loss { run, at_seq, reason, count: n })) => {
                prop_assert_eq!((run, at_seq, count), (0, 0, 0));
                prop_assert!((1..=MAX_LOSS_COUNT).contains(&n));
                prop_assert_eq!(payload(reason.as_u64(), n), raw);
            }
            Ok(other) => prop_assert!(false, "unexpected item {:?}", other),
            Err(TraceError::Loss { .. } | TraceError::Corrupt { .. }) => {}
            Err(other) => prop_assert!(false, "unexpected error {}", other),
        }
    }

    /// Mutated files with loss frames never make the reader, the run scan or the
    /// appender panic, also when the reader skips corrupt frames.
    #[test]
    fn mutated_traces_with_loss_frames_never_panic(
        muts in proptest::collection::vec((any::<usize>(), any::<u8>(), 0u8..3), 1..4),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("t.rtrace");
        let (mut b, _) = write_mixed(&p);
        for (i, x, op) in muts {
            if b.is_empty() {
                break;
            }
            let n = b.len();
            match op {
                0 => b[i % n] ^= x.max(1),
                1 => b.insert(i % (n + 1), x),
                _ => b.truncate(i % n),
            }
        }
        std::fs::write(&p, &b).unwrap();
        if let Ok(mut r) = TraceReader::open(&p) {
            for _ in 0..50 {
                match r.next_item() {
                    Ok(Some(_)) => {}
                    Ok(None) => break,
                    Err(_) => if r.skip_corrupt().unwrap().is_none() { break },
                }
            }
        }
        let _ = scan_runs(&p);
        let _ = TraceWriter::open_append(&p);
    }
}
