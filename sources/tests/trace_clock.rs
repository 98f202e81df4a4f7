//! Clock frames (kind 5) of `.rtrace` files, FORMAT.md §7.2: the recorder's idle
//! watermark, written so a replay closes windows exactly where the live run did.

// Trace errors carry the file, frame and decode error: large, and only on a failure path.
#![allow(clippy::result_large_err)]

use proptest::prelude::*;
use ritma_schemas::cbor::{DecodeErrorKind, Encoder};
use ritma_sources::trace::{scan_runs, TraceError, TraceItem, TraceWriter};
mod common;

use common::*;

/// A clock payload as FORMAT.md encodes it: `[mono_ns]`.
fn payload(mono_ns: u64) -> Vec<u8> {
    let mut e = Encoder::new();
    e.array(1).uint(mono_ns);
    e.into_bytes()
}

#[test]
fn clock_frames_round_trip_with_the_spec_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("t.rtrace");
    let mut w = TraceWriter::create(&p).unwrap();
    let run = w.add_run(&meta("n1")).unwrap();
    w.append_clock(run, 500).unwrap();
    w.append_batch(run, &events(0, 3, 0)).unwrap();
    let at = std::fs::metadata(&p).unwrap().len() as usize;
    w.append_clock(run, 2_000_000_000).unwrap();
    // A clock frame does not advance the run's seq.
    assert_eq!(w.next_seq(run), Some(3));
    w.append_batch(run, &events(3, 1, 0)).unwrap();
    drop(w);

    let items = read_all(&p).unwrap();
    assert_eq!(items.len(), 5);
    assert_eq!(
        items[1],
        TraceItem::Clock {
            run: 0,
            at_seq: 0,
            mono_ns: 500
        }
    );
    assert_eq!(
        items[3],
        TraceItem::Clock {
            run: 0,
            at_seq: 3,
            mono_ns: 2_000_000_000
        }
    );
    let bytes = std::fs::read(&p).unwrap();
    let expected = frame(KIND_CLOCK, 0, 3, 0, &payload(2_000_000_000));
    assert_eq!(&bytes[at..at + expected.len()], expected);
    // `[2000000000]`: 81 1a 77 35 94 00.
    assert_eq!(payload(2_000_000_000), [0x81, 0x1a, 0x77, 0x35, 0x94, 0x00]);
    assert_eq!(scan_runs(&p).unwrap(), vec![meta("n1")]);
    let (_, rec) = TraceWriter::open_append(&p).unwrap();
    assert_eq!(rec.next_seq, vec![4]);
}

#[test]
fn the_writer_refuses_a_clock_of_an_unknown_run() {
    let dir = tempfile::tempdir().unwrap();
    let mut w = TraceWriter::create(&dir.path().join("t.rtrace")).unwrap();
    assert!(matches!(
        w.append_clock(0, 1),
        Err(TraceError::Misuse { .. })
    ));
}

#[test]
fn reader_rejects_malformed_clock_frames_with_typed_errors() {
    let check = |raw: Vec<u8>, field: &str, kind: DecodeErrorKind| match frame_error(frame(
        KIND_CLOCK, 0, 0, 0, &raw,
    )) {
        TraceError::Clock { pos, source } => {
            assert_eq!(
                (pos.frame, source.record, source.field),
                (1, "Clock", field)
            );
            assert_eq!(source.kind, kind, "{raw:02x?}");
        }
        other => panic!("{raw:02x?}: {other:?}"),
    };
    // An empty array, two elements, a negative number, a non-minimal integer.
    check(
        vec![0x80],
        "(clock)",
        DecodeErrorKind::WrongLength {
            expected: 1,
            found: 0,
        },
    );
    check(
        vec![0x82, 0x01, 0x02],
        "(clock)",
        DecodeErrorKind::WrongLength {
            expected: 1,
            found: 2,
        },
    );
    assert!(matches!(
        frame_error(frame(KIND_CLOCK, 0, 0, 0, &[0x81, 0x20])),
        TraceError::Clock { .. }
    ));
    assert!(matches!(
        frame_error(frame(KIND_CLOCK, 0, 0, 0, &[0x81, 0x18, 0x05])),
        TraceError::Clock { .. }
    ));
    // Trailing bytes after the array.
    let mut raw = payload(7);
    raw.push(0);
    assert!(matches!(
        frame_error(frame(KIND_CLOCK, 0, 0, 0, &raw)),
        TraceError::Clock { .. }
    ));
    // A header count other than 0, an unknown run, a seq that does not continue the run.
    for (f, why) in [
        (frame(KIND_CLOCK, 0, 0, 1, &payload(1)), "count 1"),
        (
            frame(KIND_CLOCK, 1, 0, 0, &payload(1)),
            "before that run's run frame",
        ),
        (frame(KIND_CLOCK, 0, 5, 0, &payload(1)), "continues at 0"),
    ] {
        match frame_error(f) {
            TraceError::Corrupt { reason, .. } => assert!(reason.contains(why), "{reason}"),
            other => panic!("{why}: {other:?}"),
        }
    }
}

#[test]
fn a_reader_resyncs_past_a_corrupt_frame_to_a_clock_frame() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("t.rtrace");
    let mut b = trace_start();
    b.extend(corrupt_batch_frame());
    b.extend(frame(KIND_CLOCK, 0, 2, 0, &payload(9)));
    std::fs::write(&p, &b).unwrap();
    assert_eq!(read_skipping(&p), vec![(KIND_RUN, 0), (KIND_CLOCK, 2)]);
}

proptest! {
    #[test]
    fn any_clock_value_round_trips(mono in any::<u64>()) {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("t.rtrace");
        let mut w = TraceWriter::create(&p).unwrap();
        let run = w.add_run(&meta("n1")).unwrap();
        w.append_clock(run, mono).unwrap();
        drop(w);
        let items = read_all(&p).unwrap();
        prop_assert_eq!(&items[1], &TraceItem::Clock { run: 0, at_seq: 0, mono_ns: mono });
    }
}
