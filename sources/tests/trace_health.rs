//! Health frames (kind 8) of `.rtrace` files, FORMAT.md §7.2: a sensor program found
//! silent (with the calls its gap cost) or attached again. Hostile frames are built here
//! from the spec alone.

// Trace errors carry the file, frame and decode error: large, and only on a failure path.
#![allow(clippy::result_large_err)]

use proptest::prelude::*;
use ritma_schemas::cbor::{DecodeErrorKind, Encoder};
use ritma_schemas::records::{HealthKind, LossReason};
use ritma_sources::trace::{HealthNote, TraceError, TraceItem, TraceWriter, MAX_LOSS_COUNT};
mod common;

use common::*;

/// A health payload as FORMAT.md encodes it: `[kind, subject, mono_ns, lost]`.
fn payload(kind: u64, subject: &str, mono_ns: u64, lost: Option<u64>) -> Vec<u8> {
    let mut e = Encoder::new();
    e.array(4).uint(kind).text(subject).uint(mono_ns);
    match lost {
        Some(n) => e.uint(n),
        None => e.null(),
    };
    e.into_bytes()
}

#[test]
fn health_frames_round_trip_between_batches_without_advancing_the_seq() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("t.rtrace");
    let mut w = TraceWriter::create(&p).unwrap();
    let run = w.add_run(&meta("n1")).unwrap();
    w.append_batch(run, &events(0, 4, 0)).unwrap();
    let at = std::fs::metadata(&p).unwrap().len() as usize;
    w.append_health(run, HealthKind::ProbeDetached, "exit_openat", 5, Some(35))
        .unwrap();
    w.append_health(run, HealthKind::ProbeDetached, "ritma_fork", 5, None)
        .unwrap();
    w.append_health(run, HealthKind::ProbeReattached, "exit_openat", 6, Some(0))
        .unwrap();
    assert_eq!(w.next_seq(run), Some(4));
    w.append_batch(run, &events(4, 2, 0)).unwrap();
    drop(w);

    let items = read_all(&p).unwrap();
    let note = |kind, subject: &str, mono_ns, lost| {
        TraceItem::Health(HealthNote {
            run: 0,
            at_seq: 4,
            kind,
            subject: subject.into(),
            mono_ns,
            lost,
        })
    };
    assert_eq!(
        items[2..5],
        [
            note(HealthKind::ProbeDetached, "exit_openat", 5, Some(35)),
            note(HealthKind::ProbeDetached, "ritma_fork", 5, None),
            note(HealthKind::ProbeReattached, "exit_openat", 6, Some(0)),
        ]
    );
    let bytes = std::fs::read(&p).unwrap();
    let expected = frame(
        KIND_HEALTH,
        0,
        4,
        0,
        &payload(1, "exit_openat", 5, Some(35)),
    );
    assert_eq!(&bytes[at..at + expected.len()], expected);
    // Reopening for append steps over health frames.
    let (_, rec) = TraceWriter::open_append(&p).unwrap();
    assert_eq!(rec.next_seq, vec![6]);
}

#[test]
fn writer_refuses_health_frames_the_reader_would_refuse() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("t.rtrace");
    let mut w = TraceWriter::create(&p).unwrap();
    assert!(matches!(
        w.append_health(0, HealthKind::ProbeDetached, "x", 0, None),
        Err(TraceError::Misuse { .. })
    ));
    let run = w.add_run(&meta("n1")).unwrap();
    let len = std::fs::metadata(&p).unwrap().len();
    let long = "p".repeat(257);
    for (kind, subject, lost) in [
        (HealthKind::ProbeDetached, "x", Some(MAX_LOSS_COUNT + 1)),
        (HealthKind::ProbeReattached, "x", Some(1)),
        (HealthKind::ProbeReattached, "x", None),
        (HealthKind::RingbufDrops, "x", Some(0)),
        (HealthKind::ProbeDetached, "", Some(1)),
        (HealthKind::ProbeDetached, long.as_str(), Some(1)),
    ] {
        assert!(
            matches!(
                w.append_health(run, kind, subject, 0, lost),
                Err(TraceError::Misuse { .. })
            ),
            "{kind:?} {subject} {lost:?}"
        );
    }
    assert_eq!(std::fs::metadata(&p).unwrap().len(), len);
}

#[test]
fn reader_rejects_malformed_health_frames_with_typed_errors() {
    let check = |raw: Vec<u8>, field: &str, kind: DecodeErrorKind| match frame_error(frame(
        KIND_HEALTH,
        0,
        0,
        0,
        &raw,
    )) {
        TraceError::Health { pos, source } => {
            assert_eq!(
                (pos.frame, source.record, source.field),
                (1, "Health", field)
            );
            assert_eq!(source.kind, kind);
        }
        other => panic!("{other:?}"),
    };
    for k in [0, 3, 4, 9] {
        check(
            payload(k, "x", 1, Some(0)),
            "kind",
            DecodeErrorKind::UnknownValue { value: k },
        );
    }
    check(
        payload(1, "", 1, Some(0)),
        "subject",
        DecodeErrorKind::Invalid("the subject is empty"),
    );
    let bad_lost = DecodeErrorKind::Invalid(
        "probe_detached loses null or 0 to 4294967295 calls, probe_reattached 0",
    );
    check(
        payload(1, "x", 1, Some(MAX_LOSS_COUNT + 1)),
        "lost",
        bad_lost.clone(),
    );
    check(payload(2, "x", 1, Some(1)), "lost", bad_lost.clone());
    check(payload(2, "x", 1, None), "lost", bad_lost);
    let mut stray = payload(1, "x", 1, None);
    stray.push(0);
    check(stray, "(end)", DecodeErrorKind::TrailingBytes { count: 1 });
    let mut e = Encoder::new();
    e.array(3).uint(1).text("x").uint(1);
    check(
        e.into_bytes(),
        "(health)",
        DecodeErrorKind::WrongLength {
            expected: 4,
            found: 3,
        },
    );

    let corrupt = |f: Vec<u8>| match frame_error(f) {
        TraceError::Corrupt { reason, .. } => reason,
        other => panic!("{other:?}"),
    };
    let raw = payload(1, "x", 1, None);
    assert_eq!(
        corrupt(frame(KIND_HEALTH, 0, 0, 1, &raw)),
        "health frame with count 1, not 0"
    );
    assert_eq!(
        corrupt(frame(KIND_HEALTH, 0, 9, 0, &raw)),
        "health frame starts at seq 9, run 0 continues at 0"
    );
    // The probe_detached loss belongs to health frames: a loss frame of it is refused.
    let mut e = Encoder::new();
    e.array(2).uint(LossReason::ProbeDetached.as_u64()).uint(3);
    assert_eq!(
        corrupt(frame(KIND_LOSS, 0, 0, 0, &e.into_bytes())),
        "loss frame of reason probe_detached: a health frame records that loss"
    );
}

proptest! {
    /// Any payload bytes: a typed error or a note that re-encodes to exactly those bytes.
    #[test]
    fn arbitrary_health_payloads_decode_strictly(raw in proptest::collection::vec(any::<u8>(), 0..64),
                                                  kind in 0u64..4, subject in "[a-z_]{0,20}",
                                                  mono in any::<u64>(), lost in proptest::option::of(any::<u64>()),
                                                  pick in any::<bool>()) {
        let bytes = if pick { raw } else { payload(kind, &subject, mono, lost) };
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("t.rtrace");
        let mut b = trace_start();
        b.extend(frame(KIND_HEALTH, 0, 0, 0, &bytes));
        std::fs::write(&p, &b).unwrap();
        match read_all(&p) {
            Ok(items) => {
                let TraceItem::Health(h) = &items[1] else { panic!("{items:?}") };
                prop_assert_eq!(payload(h.kind.as_u64(), &h.subject, h.mono_ns, h.lost), bytes);
            }
            Err(TraceError::Health { .. }) => {}
            Err(e) => prop_assert!(false, "{e}"),
        }
    }
}
