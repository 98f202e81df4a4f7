//! Cgroups frames (kind 3) of `.rtrace` files, FORMAT.md §7.2. Hostile frames are
//! built here from the spec alone (header layout, zstd, BLAKE3 checksum), so the
//! reader is checked against the document, not against its own writer.

// Trace errors carry the file, frame and decode error: large, and only on a failure path.
#![allow(clippy::result_large_err)]

use proptest::prelude::*;
use ritma_schemas::cbor::{DecodeError, DecodeErrorKind, Encoder};
use ritma_sources::trace::{
    scan_runs, CgroupEntry, TraceError, TraceItem, TraceReader, TraceWriter, FRAME_HEADER_LEN,
};
mod common;

use common::*;
use std::path::Path;
use std::sync::OnceLock;

fn entries(list: &[(u64, &str)]) -> Vec<CgroupEntry> {
    list.iter()
        .map(|(id, p)| (*id, p.as_bytes().to_vec()))
        .collect()
}

/// The entries as FORMAT.md encodes them: `[cgroup_id, path]` arrays, concatenated.
fn payload(list: &[CgroupEntry]) -> Vec<u8> {
    let mut e = Encoder::new();
    for (id, path) in list {
        e.array(2).uint(*id).bytes(path);
    }
    e.into_bytes()
}

/// Reads a trace of a run frame then `frame`; returns the error the frame gives.
fn read_frame_error(frame: Vec<u8>) -> TraceError {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("t.rtrace");
    let mut b = trace_start();
    let at = b.len() as u64;
    b.extend(frame);
    std::fs::write(&p, &b).unwrap();
    let mut r = TraceReader::open(&p).unwrap();
    assert!(matches!(r.next_item(), Ok(Some(TraceItem::Run { .. }))));
    let e = r.next_item().expect_err("the frame must be rejected");
    let pos = match &e {
        TraceError::Cgroup { pos, .. } | TraceError::Corrupt { pos, .. } => pos,
        other => panic!("unexpected error {other:?}"),
    };
    assert_eq!(
        (pos.path.as_path(), pos.offset, pos.frame),
        (p.as_path(), at, 1)
    );
    e
}

/// The entry index and decode error of a rejected cgroups frame.
fn entry_error(raw: &[u8], count: u32) -> (u32, DecodeError) {
    match read_frame_error(frame(KIND_CGROUPS, 0, 0, count, raw)) {
        TraceError::Cgroup { index, source, .. } => (index, source),
        other => panic!("{other:?}"),
    }
}

fn corrupt_reason(frame: Vec<u8>) -> String {
    match read_frame_error(frame) {
        TraceError::Corrupt { reason, .. } => reason,
        other => panic!("{other:?}"),
    }
}

#[test]
fn cgroups_frames_round_trip_between_batches() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("t.rtrace");
    let first = entries(&[(7, "/init.scope"), (9, "/system.slice/ssh.service")]);
    let later = entries(&[(3, "/system.slice/cron.service")]);
    let mut w = TraceWriter::create(&p).unwrap();
    let run = w.add_run(&meta("n1")).unwrap();
    let before_cgroups = std::fs::metadata(&p).unwrap().len() as usize;
    w.append_cgroups(run, &first).unwrap();
    w.append_batch(run, &events(0, 4, 7)).unwrap();
    let before_later = std::fs::metadata(&p).unwrap().len() as usize;
    w.append_cgroups(run, &later).unwrap();
    w.append_batch(run, &events(4, 2, 3)).unwrap();
    drop(w);

    let items = read_all(&p).unwrap();
    assert_eq!(items.len(), 5);
    assert_eq!(
        items[1],
        TraceItem::Cgroups {
            run: 0,
            first_seq: 0,
            entries: first.clone()
        }
    );
    assert_eq!(
        items[3],
        TraceItem::Cgroups {
            run: 0,
            first_seq: 4,
            entries: later.clone()
        }
    );
    assert_eq!(
        items[4],
        TraceItem::Batch {
            run: 0,
            events: events(4, 2, 3)
        }
    );

    // The writer's bytes are the frames the spec describes.
    let bytes = std::fs::read(&p).unwrap();
    let expected = frame(KIND_CGROUPS, 0, 4, 1, &payload(&later));
    assert_eq!(
        &bytes[before_later..before_later + expected.len()],
        expected
    );
    let header = &bytes[before_cgroups..before_cgroups + FRAME_HEADER_LEN];
    assert_eq!(header[..8], [b'R', b'T', b'B', b'F', KIND_CGROUPS, 0, 0, 0]);
    assert_eq!(header[8..20], [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2]);
}

#[test]
fn writer_refuses_bad_cgroup_entries_and_leaves_the_file_alone() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("t.rtrace");
    let mut w = TraceWriter::create(&p).unwrap();
    let no_run = w.append_cgroups(0, &entries(&[(1, "/a")]));
    assert!(
        matches!(no_run, Err(TraceError::Misuse { .. })),
        "{no_run:?}"
    );
    let run = w.add_run(&meta("n1")).unwrap();
    let len = std::fs::metadata(&p).unwrap().len();
    let too_long = vec![(1, [b"/".as_slice(), &[b'a'; 4096]].concat())];
    let too_many: Vec<CgroupEntry> = (0..65_537).map(|i| (i, b"/".to_vec())).collect();
    let cases: Vec<(Vec<CgroupEntry>, &str)> = vec![
        (vec![], "1 to 65536 entries, not 0"),
        (too_many, "not 65537"),
        (
            entries(&[(5, "/a"), (5, "/b")]),
            "entry 1: id 5 does not ascend past 5",
        ),
        (
            entries(&[(5, "/a"), (4, "/b")]),
            "entry 1: id 4 does not ascend past 5",
        ),
        (
            entries(&[(1, "/a"), (2, "")]),
            "entry 1 (id 2): cgroup path is empty",
        ),
        (entries(&[(1, "a")]), "does not start with '/'"),
        (too_long, "longer than 4096 bytes"),
    ];
    for (list, why) in cases {
        match w.append_cgroups(run, &list) {
            Err(TraceError::Misuse { reason, .. }) => assert!(reason.contains(why), "{reason}"),
            other => panic!("{why}: {other:?}"),
        }
    }
    assert_eq!(std::fs::metadata(&p).unwrap().len(), len);
    // The longest path and the most entries are accepted.
    let longest = vec![(1, [b"/".as_slice(), &[b'a'; 4095]].concat())];
    w.append_cgroups(run, &longest).unwrap();
    let most: Vec<CgroupEntry> = (0..65_536).map(|i| (i, b"/".to_vec())).collect();
    w.append_cgroups(run, &most).unwrap();
    let items = read_all(&p).unwrap();
    assert!(matches!(&items[1], TraceItem::Cgroups { entries, .. } if *entries == longest));
    assert!(matches!(&items[2], TraceItem::Cgroups { entries, .. } if entries.len() == 65_536));
}

#[test]
fn reader_rejects_every_malformed_entry_naming_it() {
    let good = entries(&[(1, "/a"), (2, "/b")]);
    let check = |raw: Vec<u8>, count: u32, index: u32, field: &str, kind: DecodeErrorKind| {
        let (i, e) = entry_error(&raw, count);
        assert_eq!(
            (i, e.record, e.field, &e.kind),
            (index, "CgroupEntry", field, &kind)
        );
    };
    // Unsorted ids: equal, then descending.
    let equal = payload(&entries(&[(5, "/a"), (5, "/b")]));
    check(equal, 2, 1, "cgroup_id", DecodeErrorKind::NotAscending);
    let down = payload(&entries(&[(5, "/a"), (4, "/b")]));
    check(down, 2, 1, "cgroup_id", DecodeErrorKind::NotAscending);
    // Paths: empty, relative, too long.
    let empty = payload(&entries(&[(1, "/a"), (2, "")]));
    let why_empty = DecodeErrorKind::Invalid("cgroup path is empty");
    check(empty, 2, 1, "path", why_empty);
    let relative = payload(&entries(&[(1, "system.slice")]));
    let why_relative = DecodeErrorKind::Invalid("cgroup path does not start with '/'");
    check(relative, 1, 0, "path", why_relative);
    let long = payload(&[(1, [b"/".as_slice(), &[b'x'; 4096]].concat())]);
    let too_long = DecodeErrorKind::TooLong {
        max: 4096,
        found: 4097,
    };
    check(long, 1, 0, "path", too_long);
    // A truncated last entry.
    let mut cut = payload(&good);
    cut.pop();
    check(cut, 2, 1, "path", DecodeErrorKind::Truncated);
    // Trailing bytes: a stray byte, or more entries than the header counts.
    let mut stray = payload(&good);
    stray.push(0);
    check(
        stray,
        2,
        2,
        "(end)",
        DecodeErrorKind::TrailingBytes { count: 1 },
    );
    check(
        payload(&good),
        1,
        1,
        "(end)",
        DecodeErrorKind::TrailingBytes { count: 5 },
    );
    // Fewer entries than the header counts.
    check(payload(&good), 3, 2, "(entry)", DecodeErrorKind::Truncated);
    // Entries of the wrong shape.
    let mut e = Encoder::new();
    e.array(3).uint(1).bytes(b"/a").uint(0);
    let wrong_len = DecodeErrorKind::WrongLength {
        expected: 2,
        found: 3,
    };
    check(e.into_bytes(), 1, 0, "(entry)", wrong_len);
    let mut e = Encoder::new();
    e.array(2).uint(1).text("/a");
    let text = DecodeErrorKind::UnexpectedType {
        expected: "byte string",
        found: "text string",
    };
    check(e.into_bytes(), 1, 0, "path", text);
    let mut non_shortest = payload(&entries(&[(1, "/a")]));
    non_shortest.splice(1..2, [0x18, 0x01]);
    check(
        non_shortest,
        1,
        0,
        "cgroup_id",
        DecodeErrorKind::NonShortest,
    );
}

#[test]
fn reader_rejects_bad_cgroups_headers() {
    let raw = payload(&entries(&[(1, "/a")]));
    let reason = corrupt_reason(frame(KIND_CGROUPS, 0, 0, 0, &[]));
    assert_eq!(reason, "cgroups frame of 0 entries");
    let reason = corrupt_reason(frame(KIND_CGROUPS, 0, 0, 65_537, &raw));
    assert_eq!(reason, "cgroups frame of 65537 entries");
    let reason = corrupt_reason(frame(KIND_CGROUPS, 1, 0, 1, &raw));
    assert_eq!(reason, "cgroups frame of run 1 before that run's run frame");
    let reason = corrupt_reason(frame(KIND_CGROUPS, 0, 3, 1, &raw));
    assert_eq!(
        reason,
        "cgroups frame starts at seq 3, run 0 continues at 0"
    );
    let reason = corrupt_reason(frame(10, 0, 0, 1, &raw));
    assert_eq!(reason, "unknown frame kind 10");
    let reason = corrupt_reason(frame(0, 0, 0, 1, &raw));
    assert_eq!(reason, "unknown frame kind 0");
}

#[test]
fn errors_name_file_frame_offset_and_entry() {
    let raw = payload(&entries(&[(1, "/a"), (2, "b")]));
    let e = read_frame_error(frame(KIND_CGROUPS, 0, 0, 2, &raw));
    let start = trace_start().len();
    let text = e.to_string();
    assert!(text.contains("t.rtrace frame 1 at byte"), "{text}");
    assert!(
        text.contains(&format!("at byte {start}: cgroup entry 1")),
        "{text}"
    );
    assert!(text.contains("CgroupEntry field `path`"), "{text}");
}

/// Run 0 with batches of seqs 0..10, 10..20 and 20..30 and cgroups frames at 10 and 20;
/// returns the file and the offset of every frame after the run frame.
fn write_mixed(p: &Path) -> (Vec<u8>, Vec<usize>) {
    let mut w = TraceWriter::create(p).unwrap();
    let run = w.add_run(&meta("n1")).unwrap();
    let len = || std::fs::metadata(p).unwrap().len() as usize;
    let mut offsets = vec![len()];
    w.append_batch(run, &events(0, 10, 1)).unwrap();
    offsets.push(len());
    w.append_cgroups(run, &entries(&[(2, "/b.service")]))
        .unwrap();
    offsets.push(len());
    w.append_batch(run, &events(10, 10, 2)).unwrap();
    offsets.push(len());
    w.append_cgroups(run, &entries(&[(3, "/c.service")]))
        .unwrap();
    offsets.push(len());
    w.append_batch(run, &events(20, 10, 3)).unwrap();
    (std::fs::read(p).unwrap(), offsets)
}

#[test]
fn reading_resumes_after_a_corrupt_frame_on_either_side_of_a_cgroups_frame() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("t.rtrace");
    let (full, offsets) = write_mixed(&p);
    let (b, c, r) = (KIND_BATCH, KIND_CGROUPS, KIND_RUN);
    let cases = [
        // The first batch lost: the cgroups frame at seq 10 follows the gap.
        (0, vec![(r, 0), (c, 10), (b, 10), (c, 20), (b, 20)]),
        // A cgroups frame lost: its batch still continues the run.
        (1, vec![(r, 0), (b, 0), (b, 10), (c, 20), (b, 20)]),
        // The middle batch lost: the cgroups frame at seq 20 follows the gap.
        (2, vec![(r, 0), (b, 0), (c, 10), (c, 20), (b, 20)]),
    ];
    for (frame, expected) in cases {
        let mut bad = full.clone();
        bad[offsets[frame] + FRAME_HEADER_LEN + 2] ^= 0xff;
        std::fs::write(&p, &bad).unwrap();
        assert_eq!(read_skipping(&p), expected, "frame {frame} corrupt");
    }
}

#[test]
fn a_torn_cgroups_frame_is_cut_off_on_append() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("t.rtrace");
    let (full, offsets) = write_mixed(&p);
    // Frame 4 is the second cgroups frame; keep the file up to its end.
    let start = offsets[3];
    let end = offsets[4];
    let whole = &full[..end];
    for cut in [
        start + 1,
        start + FRAME_HEADER_LEN - 1,
        start + FRAME_HEADER_LEN,
        end - 1,
    ] {
        std::fs::write(&p, &whole[..cut]).unwrap();
        match read_all(&p) {
            Err(TraceError::TornTail { pos, missing }) => {
                assert_eq!((pos.offset, pos.frame), (start as u64, 4), "cut at {cut}");
                assert!(missing > 0);
            }
            other => panic!("cut at {cut}: {other:?}"),
        }
        let (mut w, rec) = TraceWriter::open_append(&p).unwrap();
        assert_eq!(rec.truncated, (cut - start) as u64);
        assert_eq!(rec.next_seq, vec![20]);
        assert_eq!(rec.runs, vec![meta("n1")]);
        w.append_cgroups(0, &entries(&[(3, "/c.service")])).unwrap();
        w.append_batch(0, &events(20, 10, 3)).unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), full, "cut at {cut}");
    }
}

#[test]
fn run_scan_steps_over_cgroups_frames() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("t.rtrace");
    let mut w = TraceWriter::create(&p).unwrap();
    let a = w.add_run(&meta("n1")).unwrap();
    w.append_cgroups(a, &entries(&[(1, "/a.service")])).unwrap();
    let b = w.add_run(&meta("n2")).unwrap();
    w.append_cgroups(b, &entries(&[(1, "/b.service")])).unwrap();
    w.append_batch(b, &events(0, 3, 1)).unwrap();
    let c = w.add_run(&meta("n3")).unwrap();
    w.append_cgroups(c, &entries(&[(1, "/c.service")])).unwrap();
    assert_eq!(
        scan_runs(&p).unwrap(),
        vec![meta("n1"), meta("n2"), meta("n3")]
    );
}

fn arb_entries() -> impl Strategy<Value = Vec<CgroupEntry>> {
    proptest::collection::btree_map(
        any::<u64>(),
        proptest::collection::vec(any::<u8>(), 0..12),
        1..6,
    )
    .prop_map(|m| {
        m.into_iter()
            .map(|(id, rest)| (id, [b"/".as_slice(), &rest].concat()))
            .collect()
    })
}

#[derive(Clone, Debug)]
enum Mutation {
    Flip(usize, u8),
    Insert(usize, u8),
    Remove(usize),
    Cut(usize),
}

fn arb_mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (any::<usize>(), 1..=255u8).prop_map(|(i, x)| Mutation::Flip(i, x)),
        (any::<usize>(), any::<u8>()).prop_map(|(i, x)| Mutation::Insert(i, x)),
        any::<usize>().prop_map(Mutation::Remove),
        any::<usize>().prop_map(Mutation::Cut),
    ]
}

fn mutate(b: &mut Vec<u8>, m: &Mutation) {
    if b.is_empty() {
        return;
    }
    match *m {
        Mutation::Flip(i, x) => {
            let n = b.len();
            b[i % n] ^= x;
        }
        Mutation::Insert(i, x) => b.insert(i % (b.len() + 1), x),
        Mutation::Remove(i) => {
            let n = b.len();
            b.remove(i % n);
        }
        Mutation::Cut(i) => b.truncate(i % b.len()),
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// Mutated payloads behind valid checksums reach the entry decoder: it never panics,
    /// and what it accepts is exactly the canonical encoding of what it returns.
    #[test]
    fn mutated_cgroups_payloads_decode_strictly(
        list in arb_entries(),
        muts in proptest::collection::vec(arb_mutation(), 1..4),
        count_delta in -1i64..=1,
    ) {
        let mut raw = payload(&list);
        for m in &muts {
            mutate(&mut raw, m);
        }
        let count = (list.len() as i64 + count_delta).max(0) as u32;
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("t.rtrace");
        let mut b = trace_start();
        b.extend(frame(KIND_CGROUPS, 0, 0, count, &raw));
        std::fs::write(&p, &b).unwrap();
        let mut r = TraceReader::open(&p).unwrap();
        let first = r.next_item();
        prop_assert!(matches!(first, Ok(Some(TraceItem::Run { .. }))), "run frame: {:?}", first);
        match r.next_item() {
            Ok(Some(TraceItem::Cgroups { entries, first_seq, run })) => {
                prop_assert_eq!((run, first_seq, entries.len()), (0, 0, count as usize));
                prop_assert_eq!(payload(&entries), raw);
                prop_assert!(entries.windows(2).all(|w| w[0].0 < w[1].0));
                prop_assert!(entries.iter().all(|(_, p)| p.first() == Some(&b'/')));
            }
            Ok(other) => prop_assert!(false, "unexpected item {:?}", other),
            Err(TraceError::Cgroup { .. } | TraceError::Corrupt { .. }) => {}
            Err(other) => prop_assert!(false, "unexpected error {}", other),
        }
    }

    /// Mutated files (headers, checksums, payloads) never make the reader panic,
    /// also when it skips corrupt frames.
    #[test]
    fn mutated_trace_files_never_panic(
        muts in proptest::collection::vec(arb_mutation(), 1..4),
    ) {
        static MIXED: OnceLock<Vec<u8>> = OnceLock::new();
        let mut b = MIXED
            .get_or_init(|| {
                let dir = tempfile::tempdir().unwrap();
                write_mixed(&dir.path().join("t.rtrace")).0
            })
            .clone();
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("t.rtrace");
        for m in &muts {
            mutate(&mut b, m);
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
