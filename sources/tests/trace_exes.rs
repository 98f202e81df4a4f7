//! Exes frames (kind 6) and blob frames (kind 7) of `.rtrace` files, FORMAT.md §7.2:
//! the content hashes of executed binaries, and the bytes Full capture keeps, written
//! down so a replay seals exactly what the live run did.

// Trace errors carry the file, frame and decode error: large, and only on a failure path.
#![allow(clippy::result_large_err)]

use proptest::prelude::*;
use ritma_schemas::cbor::{DecodeErrorKind, Encoder};
use ritma_sources::trace::{
    BaselineStatus, BlobAssembly, ExeEntry, TraceError, TraceItem, TraceWriter, MAX_BLOB_PART_LEN,
};
mod common;

use common::*;

fn entry(dev: u64, ino: u64, fill: u8, baseline: BaselineStatus) -> ExeEntry {
    ExeEntry {
        dev,
        ino,
        hash: [fill; 32],
        baseline,
    }
}

/// An exes payload as FORMAT.md encodes it: `[dev, ino, hash, baseline]` per entry.
fn exes_payload(entries: &[(u64, u64, Vec<u8>, u64)]) -> Vec<u8> {
    let mut e = Encoder::new();
    for (dev, ino, hash, baseline) in entries {
        e.array(4).uint(*dev).uint(*ino).bytes(hash).uint(*baseline);
    }
    e.into_bytes()
}

/// A blob payload: `[hash, size, offset, data]`.
fn blob_payload(hash: &[u8], size: u64, offset: u64, data: &[u8]) -> Vec<u8> {
    let mut e = Encoder::new();
    e.array(4).bytes(hash).uint(size).uint(offset).bytes(data);
    e.into_bytes()
}

#[test]
fn exes_and_blob_frames_round_trip_with_the_spec_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("t.rtrace");
    let mut w = TraceWriter::create(&p).unwrap();
    let run = w.add_run(&meta("n1")).unwrap();
    w.append_batch(run, &events(0, 2, 0)).unwrap();
    let at = std::fs::metadata(&p).unwrap().len() as usize;
    let entries = vec![
        entry(2049, 17, 0xaa, BaselineStatus::Listed),
        entry(2049, 900, 0xbb, BaselineStatus::Unlisted),
        entry(2050, 1, 0xcc, BaselineStatus::NoBaseline),
    ];
    w.append_exes(run, &entries).unwrap();
    let hash = w.append_blob(run, b"abc").unwrap();
    // Neither frame advances the run's seq.
    assert_eq!(w.next_seq(run), Some(2));
    w.append_batch(run, &events(2, 1, 0)).unwrap();
    drop(w);

    assert_eq!(hash, *blake3::hash(b"abc").as_bytes());
    let items = read_all(&p).unwrap();
    assert_eq!(items.len(), 5);
    assert_eq!(
        items[2],
        TraceItem::Exes {
            run: 0,
            first_seq: 2,
            entries
        }
    );
    assert_eq!(
        items[3],
        TraceItem::BlobPart {
            run: 0,
            hash,
            size: 3,
            offset: 0,
            data: b"abc".to_vec()
        }
    );
    let bytes = std::fs::read(&p).unwrap();
    let exes = frame(
        KIND_EXES,
        0,
        2,
        3,
        &exes_payload(&[
            (2049, 17, vec![0xaa; 32], 1),
            (2049, 900, vec![0xbb; 32], 2),
            (2050, 1, vec![0xcc; 32], 0),
        ]),
    );
    assert_eq!(&bytes[at..at + exes.len()], exes);
    let blob = frame(KIND_BLOB, 0, 2, 0, &blob_payload(&hash, 3, 0, b"abc"));
    assert_eq!(&bytes[at + exes.len()..at + exes.len() + blob.len()], blob);
    let (_, rec) = TraceWriter::open_append(&p).unwrap();
    assert_eq!(rec.next_seq, vec![3]);
}

#[test]
fn a_large_blob_is_cut_into_parts_and_put_back_together() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("t.rtrace");
    let mut w = TraceWriter::create(&p).unwrap();
    let run = w.add_run(&meta("n1")).unwrap();
    let data: Vec<u8> = (0..MAX_BLOB_PART_LEN * 2 + 5)
        .map(|i| (i * 31 % 251) as u8)
        .collect();
    let hash = w.append_blob(run, &data).unwrap();
    drop(w);
    let items = read_all(&p).unwrap();
    let mut assembly = BlobAssembly::default();
    let mut done = Vec::new();
    let mut offsets = Vec::new();
    for item in items {
        if let TraceItem::BlobPart {
            hash,
            size,
            offset,
            data,
            ..
        } = item
        {
            offsets.push(offset);
            let (blob, fault) = assembly.push(hash, size, offset, &data);
            assert_eq!(fault, None);
            done.extend(blob);
        }
    }
    let part = MAX_BLOB_PART_LEN as u64;
    assert_eq!(offsets, vec![0, part, 2 * part]);
    assert_eq!(done, vec![(hash, data)]);
}

#[test]
fn the_assembly_gives_up_on_parts_out_of_order_or_bytes_of_another_hash() {
    let h = *blake3::hash(b"abcdef").as_bytes();
    let mut a = BlobAssembly::default();
    // A part that continues nothing.
    let (blob, fault) = a.push(h, 6, 3, b"def");
    assert!(blob.is_none() && fault.unwrap().contains("continues no blob"));
    // A blob cut short by the start of another.
    assert_eq!(a.push(h, 6, 0, b"abc"), (None, None));
    let (blob, fault) = a.push(h, 6, 0, b"abc");
    assert!(blob.is_none() && fault.unwrap().contains("ends before its last part"));
    let (blob, fault) = a.push(h, 6, 3, b"def");
    assert_eq!((blob, fault), (Some((h, b"abcdef".to_vec())), None));
    // Bytes that do not hash to the blob's name.
    let (blob, fault) = a.push(h, 6, 0, b"abcxyz");
    assert!(blob.is_none() && fault.unwrap().contains("do not hash"));
    // The empty blob is one empty part.
    let empty = *blake3::hash(b"").as_bytes();
    assert_eq!(a.push(empty, 0, 0, b""), (Some((empty, vec![])), None));
}

#[test]
fn the_writer_refuses_exes_out_of_order_and_of_unknown_runs() {
    let dir = tempfile::tempdir().unwrap();
    let mut w = TraceWriter::create(&dir.path().join("t.rtrace")).unwrap();
    let e = entry(1, 1, 0, BaselineStatus::Listed);
    assert!(matches!(
        w.append_exes(0, std::slice::from_ref(&e)),
        Err(TraceError::Misuse { .. })
    ));
    assert!(matches!(
        w.append_blob(0, b"x"),
        Err(TraceError::Misuse { .. })
    ));
    let run = w.add_run(&meta("n1")).unwrap();
    for bad in [
        vec![],
        vec![e.clone(), e.clone()],
        vec![entry(1, 2, 0, BaselineStatus::Listed), e],
    ] {
        assert!(matches!(
            w.append_exes(run, &bad),
            Err(TraceError::Misuse { .. })
        ));
    }
}

#[test]
fn reader_rejects_malformed_exes_frames_with_typed_errors() {
    let check = |raw: Vec<u8>, count: u32, index: u32, field: &str, kind: DecodeErrorKind| {
        match frame_error(frame(KIND_EXES, 0, 0, count, &raw)) {
            TraceError::Exe {
                pos,
                index: i,
                source,
            } => {
                assert_eq!(
                    (pos.frame, i, source.record, source.field),
                    (1, index, "ExeEntry", field),
                    "{raw:02x?}"
                );
                assert_eq!(source.kind, kind, "{raw:02x?}");
            }
            other => panic!("{raw:02x?}: {other:?}"),
        }
    };
    let h = vec![7u8; 32];
    check(
        exes_payload(&[(1, 5, h.clone(), 0), (1, 5, h.clone(), 0)]),
        2,
        1,
        "dev",
        DecodeErrorKind::NotAscending,
    );
    check(
        exes_payload(&[(1, 5, h.clone(), 3)]),
        1,
        0,
        "baseline",
        DecodeErrorKind::UnknownValue { value: 3 },
    );
    // A hash of 31 bytes.
    assert!(matches!(
        frame_error(frame(
            KIND_EXES,
            0,
            0,
            1,
            &exes_payload(&[(1, 5, vec![7; 31], 0)])
        )),
        TraceError::Exe { index: 0, .. }
    ));
    // Fewer entries than the header says, and trailing bytes after them.
    assert!(matches!(
        frame_error(frame(
            KIND_EXES,
            0,
            0,
            2,
            &exes_payload(&[(1, 5, h.clone(), 0)])
        )),
        TraceError::Exe { index: 1, .. }
    ));
    let mut raw = exes_payload(&[(1, 5, h.clone(), 0)]);
    raw.push(0);
    assert!(matches!(
        frame_error(frame(KIND_EXES, 0, 0, 1, &raw)),
        TraceError::Exe { index: 1, .. }
    ));
    for (f, why) in [
        (frame(KIND_EXES, 0, 0, 0, &[]), "0 entries"),
        (
            frame(KIND_EXES, 1, 0, 1, &exes_payload(&[(1, 5, h.clone(), 0)])),
            "before that run's run frame",
        ),
        (
            frame(KIND_EXES, 0, 4, 1, &exes_payload(&[(1, 5, h, 0)])),
            "continues at 0",
        ),
    ] {
        match frame_error(f) {
            TraceError::Corrupt { reason, .. } => assert!(reason.contains(why), "{reason}"),
            other => panic!("{why}: {other:?}"),
        }
    }
}

#[test]
fn reader_rejects_malformed_blob_frames_with_typed_errors() {
    let h = [9u8; 32];
    let blob_error = |raw: Vec<u8>| match frame_error(frame(KIND_BLOB, 0, 0, 0, &raw)) {
        TraceError::Blob { pos, source } => {
            assert_eq!((pos.frame, source.record), (1, "BlobPart"));
            source
        }
        other => panic!("{raw:02x?}: {other:?}"),
    };
    // A part past the blob's end, an empty part of a non-empty blob, a blob over 4 GiB.
    assert_eq!(blob_error(blob_payload(&h, 4, 2, b"xyz")).field, "offset");
    assert_eq!(blob_error(blob_payload(&h, 4, 0, b"")).field, "offset");
    assert_eq!(
        blob_error(blob_payload(&h, (1 << 32) + 1, 0, b"x")).field,
        "size"
    );
    assert_eq!(blob_error(blob_payload(&h[..31], 1, 0, b"x")).field, "hash");
    let mut raw = blob_payload(&h, 1, 0, b"x");
    raw.push(0);
    blob_error(raw);
    match frame_error(frame(KIND_BLOB, 0, 0, 1, &blob_payload(&h, 1, 0, b"x"))) {
        TraceError::Corrupt { reason, .. } => assert!(reason.contains("count 1"), "{reason}"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_reader_resyncs_past_a_corrupt_frame_to_exes_and_blob_frames() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("t.rtrace");
    let mut b = trace_start();
    b.extend(corrupt_batch_frame());
    b.extend(frame(
        KIND_EXES,
        0,
        2,
        1,
        &exes_payload(&[(1, 2, vec![3; 32], 1)]),
    ));
    b.extend(frame(
        KIND_BLOB,
        0,
        2,
        0,
        &blob_payload(&[4; 32], 1, 0, b"q"),
    ));
    std::fs::write(&p, &b).unwrap();
    assert_eq!(
        read_skipping(&p),
        vec![(KIND_RUN, 0), (KIND_EXES, 2), (KIND_BLOB, 0)]
    );
}

proptest! {
    #[test]
    fn any_exes_entries_round_trip(mut keys in proptest::collection::btree_set((any::<u64>(), any::<u64>()), 1..20), fill in any::<u8>(), b in 0u64..3) {
        let entries: Vec<ExeEntry> = std::mem::take(&mut keys).into_iter().map(|(dev, ino)| ExeEntry {
            dev, ino, hash: [fill; 32], baseline: BaselineStatus::from_u64(b).unwrap(),
        }).collect();
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("t.rtrace");
        let mut w = TraceWriter::create(&p).unwrap();
        let run = w.add_run(&meta("n1")).unwrap();
        w.append_exes(run, &entries).unwrap();
        drop(w);
        let items = read_all(&p).unwrap();
        prop_assert_eq!(&items[1], &TraceItem::Exes { run: 0, first_seq: 0, entries });
    }
}

/// Re-encodes what the reader returned, as FORMAT.md §7.2 says a writer encodes it.
fn exes_payload_of(entries: &[ExeEntry]) -> Vec<u8> {
    let v: Vec<(u64, u64, Vec<u8>, u64)> = entries
        .iter()
        .map(|x| (x.dev, x.ino, x.hash.to_vec(), x.baseline as u64))
        .collect();
    exes_payload(&v)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// Any exes or blob payload behind a valid checksum: the reader never panics, and
    /// what it accepts is exactly the canonical encoding of what it returns.
    #[test]
    fn arbitrary_exes_and_blob_payloads_decode_strictly(
        raw in prop_oneof![
            proptest::collection::vec(any::<u8>(), 0..80),
            (0u64..4, 0u64..4, 0u64..4).prop_map(|(a, b, s)| exes_payload(&[(a, b, vec![1; 32], s), (a, b + 1, vec![2; 32], s)])),
            (0u64..6, 0u64..6, proptest::collection::vec(any::<u8>(), 0..5)).prop_map(|(size, off, d)| blob_payload(&[5; 32], size, off, &d)),
        ],
        blob in any::<bool>(),
        count in prop_oneof![Just(0u32), Just(1u32), Just(2u32), any::<u32>()],
    ) {
        let kind = if blob { KIND_BLOB } else { KIND_EXES };
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("t.rtrace");
        let mut b = trace_start();
        b.extend(frame(kind, 0, 0, count, &raw));
        std::fs::write(&p, &b).unwrap();
        let mut r = ritma_sources::trace::TraceReader::open(&p).unwrap();
        let first = r.next_item();
        prop_assert!(matches!(first, Ok(Some(TraceItem::Run { .. }))), "run frame: {:?}", first);
        match r.next_item() {
            Ok(Some(TraceItem::Exes { entries, .. })) => {
                prop_assert_eq!(entries.len() as u32, count);
                prop_assert_eq!(exes_payload_of(&entries), raw);
            }
            Ok(Some(TraceItem::BlobPart { hash, size, offset, data, .. })) => {
                prop_assert_eq!(count, 0);
                let end = offset + data.len() as u64;
                prop_assert!(end <= size);
                prop_assert_eq!(blob_payload(&hash, size, offset, &data), raw);
            }
            Ok(other) => prop_assert!(false, "unexpected item {:?}", other),
            Err(TraceError::Exe { .. } | TraceError::Blob { .. } | TraceError::Corrupt { .. }) => {}
            Err(other) => prop_assert!(false, "unexpected error {}", other),
        }
    }
}
