//! Late events, corrupt frames and torn tails through `ritma replay`: traces are
//! written with exact event times, and the sealed windows are read back from the store.

use crate::util::{
    copy_tree, downtime_traces, forge_window, task, tree, window_leaves, Dir, DowntimeTraces,
    OutputExt,
};
use ritma_schemas::records::{
    atom_flags, AnyRecord, EventAtom, LossReason, Record, RunMeta, WindowRecord,
};
use ritma_sinks::store::{read_window_leaves, WindowPaths};
use ritma_sources::raw::{RawBody, RawEvent};
use ritma_sources::trace::{TraceWriter, FRAME_HEADER_LEN};
use std::collections::BTreeMap;
use std::ops::Range;
use std::path::Path;

pub(crate) const NODE: &str = "edge-1";
pub(crate) const MS: u64 = 1_000_000;
pub(crate) const WINDOW_LEN_NS: u64 = 1_000 * MS;
/// The trace's first window: 2023-11-14T22:13:20Z, window 800 of its hour, so no hour completes.
pub(crate) const W0: u64 = 1_700_000_000;
/// Kernel monotonic time at W0's start.
pub(crate) const MONO_AT_W0: u64 = 5_000 * MS;

pub(crate) fn run_meta() -> RunMeta {
    RunMeta {
        node: NODE.into(),
        boot_id: [7; 16],
        sensor_version: "replay-loss-test".into(),
        config_digest: [3; 32],
        window_len_ns: WINDOW_LEN_NS,
        wall_minus_mono_ns: (W0 * WINDOW_LEN_NS - MONO_AT_W0) as i64,
        first_seq: 0,
        started_wall_ns: W0 * WINDOW_LEN_NS,
    }
}

/// An open of its own file at `ms` after W0's start, by one of five processes.
fn raw_event(seq: u64, ms: u64) -> RawEvent {
    let pid = 100 + (seq % 5) as u32;
    RawEvent {
        seq,
        mono_ns: MONO_AT_W0 + ms * MS,
        task: task(pid, "worker"),
        body: RawBody::Open {
            path: format!("/data/f{seq}").into_bytes(),
            flags: 0,
            mode: 0,
            result: 3,
            given: None,
        },
    }
}

/// Writes a one-run trace with a batch frame per slice of event times (ms after W0's
/// start), seqs counting from 0; returns the byte range of each batch frame.
fn write_trace(path: &Path, batches: &[Vec<u64>]) -> Vec<Range<usize>> {
    let mut w = TraceWriter::create(path).unwrap();
    let run = w.add_run(&run_meta()).unwrap();
    let file_len = || std::fs::metadata(path).unwrap().len() as usize;
    let mut frames = Vec::new();
    let mut seq = 0;
    for times in batches {
        let events: Vec<RawEvent> = times
            .iter()
            .enumerate()
            .map(|(i, &ms)| raw_event(seq + i as u64, ms))
            .collect();
        seq += events.len() as u64;
        let start = file_len();
        w.append_batch(run, &events).unwrap();
        frames.push(start..file_len());
    }
    frames
}

/// `n` event times from `from_ms`, `step_ms` apart.
fn spaced(from_ms: u64, n: u64, step_ms: u64) -> Vec<u64> {
    (0..n).map(|i| from_ms + i * step_ms).collect()
}

/// Rewrites `path` with the byte at `at` inverted.
fn flip_byte(path: &Path, at: usize) {
    let mut b = std::fs::read(path).unwrap();
    b[at] ^= 0xff;
    std::fs::write(path, b).unwrap();
}

/// `ritma replay TRACE --out OUT --workers N --key KEY`; asserts success, returns stderr.
fn replay(d: &Dir, trace: &str, out: &str, workers: usize, key: &str) -> String {
    let o = d
        .ritma(&[
            "replay",
            trace,
            "--out",
            out,
            "--workers",
            &workers.to_string(),
            "--key",
            key,
        ])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    assert!(o.status.success(), "replay {trace} failed: {err}");
    err
}

/// `ritma verify OUT --key VKEY`; asserts success, returns stdout.
fn verify(d: &Dir, out: &str, vkey: &str) -> String {
    d.ritma(&["verify", out, "--key", vkey]).output().success()
}

/// A window's number after W0, its `lost` and its event count.
type WindowLoss = (u64, Vec<(LossReason, u64)>, u64);
/// (seq, t_ns, late) of one sealed event.
type SealedEvent = (u64, i64, bool);
/// A window's number after W0, and its events.
type WindowEvents = (u64, Vec<SealedEvent>);

/// A window as sealed in the store: its record and its event atoms in block order.
struct Sealed {
    record: WindowRecord,
    atoms: Vec<EventAtom>,
}

impl Sealed {
    fn events(&self) -> Vec<SealedEvent> {
        self.atoms
            .iter()
            .map(|a| (a.seq, a.t_ns, a.flags & atom_flags::LATE != 0))
            .collect()
    }

    fn seqs(&self) -> Vec<u64> {
        self.atoms.iter().map(|a| a.seq).collect()
    }
}

/// Every window of a store, by window number, read from its record and blocks.
fn sealed_windows(store: &Path) -> BTreeMap<u64, Sealed> {
    let mut out = BTreeMap::new();
    for (rel, bytes) in tree(store) {
        let name = rel.to_string_lossy();
        if !(name.contains("/micro/") && name.ends_with(".cbor")) {
            continue;
        }
        let record = WindowRecord::decode(&bytes).unwrap();
        let paths = WindowPaths::new(record.window, record.window_len_ns);
        assert_eq!(
            paths.record(),
            rel,
            "window {} filed elsewhere",
            record.window
        );
        let mut atoms = Vec::new();
        let blocks = store.join(paths.blocks());
        if blocks.exists() {
            for leaf in read_window_leaves(&blocks, record.window, record.leaf_count()).unwrap() {
                if let AnyRecord::Event(a) = AnyRecord::decode(&leaf).unwrap() {
                    atoms.push(a);
                }
            }
        }
        assert_eq!(atoms.len() as u64, record.event_count);
        out.insert(record.window, Sealed { record, atoms });
    }
    out
}

/// Each window's number after W0 and its events.
fn events_by_window(windows: &BTreeMap<u64, Sealed>) -> Vec<WindowEvents> {
    windows
        .values()
        .map(|w| (w.record.window - W0, w.events()))
        .collect()
}

/// All seqs of a store, in window order.
fn all_seqs(windows: &BTreeMap<u64, Sealed>) -> Vec<u64> {
    windows.values().flat_map(Sealed::seqs).collect()
}

/// (window, loss) of every window that seals loss.
fn losses(windows: &BTreeMap<u64, Sealed>) -> Vec<(u64, Vec<(LossReason, u64)>)> {
    windows
        .values()
        .filter(|w| !w.record.lost.is_empty())
        .map(|w| (w.record.window, w.record.lost.clone()))
        .collect()
}

const fn ns(ms: i64) -> i64 {
    ms * MS as i64
}

#[test]
fn late_events_join_the_oldest_open_window_and_keep_their_true_time() {
    let d = Dir::new();
    let (key, vkey) = d.signing_key(NODE);
    // Event times in ms after W0's start, seq = position; W0 + n covers [n s, n + 1 s).
    let times: Vec<u64> = vec![
        100, 900,  // 0, 1: W0
        1200, // 2: W0+1; 1200 ≥ 1000 + 50 closes W0
        980,  // 3: 220 ms back into closed W0: late into W0+1
        1100, // 4: 100 ms back, but its own window is open: not late
        2030, // 5: W0+2; W0+1 stays open (2030 < 2050)
        1990, // 6: 40 ms back across a window boundary, within the slack: not late
        2060, // 7: W0+2; closes W0+1
        1995, // 8: 65 ms back into closed W0+1: late into W0+2
        5020, // 9: W0+5; closes W0+2 and W0+3, W0+4 stays open (5020 < 5050)
        4990, // 10: 30 ms back after a jump, W0+4 is open: not late
        2500, // 11: W0+2 closed long ago: late into W0+4, the oldest open
        5600, // 12: W0+5; closes W0+4
        100,  // 13: W0's time: late into W0+5
        5080, // 14: 520 ms back, its own window is open: not late
    ];
    // (window offset, [(seq, t_ns, late)]); a late event keeps its true time, so its
    // t_ns is negative: event time − the start of the window it joined.
    let expected: Vec<WindowEvents> = vec![
        (0, vec![(0, ns(100), false), (1, ns(900), false)]),
        (
            1,
            vec![
                (2, ns(200), false),
                (3, ns(-20), true),
                (4, ns(100), false),
                (6, ns(990), false),
            ],
        ),
        (
            2,
            vec![(5, ns(30), false), (7, ns(60), false), (8, ns(-5), true)],
        ),
        (3, vec![]),
        (4, vec![(10, ns(990), false), (11, ns(-1500), true)]),
        (
            5,
            vec![
                (9, ns(20), false),
                (12, ns(600), false),
                (13, ns(-4900), true),
                (14, ns(80), false),
            ],
        ),
    ];

    // The same events in one batch and in a batch each seal the same store.
    write_trace(&d.join("one.rtrace"), std::slice::from_ref(&times));
    let singles: Vec<Vec<u64>> = times.iter().map(|&t| vec![t]).collect();
    write_trace(&d.join("many.rtrace"), &singles);
    replay(&d, "one.rtrace", "one", 2, &key);
    replay(&d, "many.rtrace", "many", 2, &key);
    assert!(
        tree(&d.join("one")) == tree(&d.join("many")),
        "batching changed the store"
    );

    let windows = sealed_windows(&d.join("one"));
    assert_eq!(events_by_window(&windows), expected);
    for w in windows.values() {
        let late = w.events().iter().filter(|e| e.2).count() as u64;
        assert_eq!(w.record.late_events, late, "window {}", w.record.window);
        assert!(w.record.lost.is_empty());
    }
    let late_total: u64 = windows.values().map(|w| w.record.late_events).sum();
    assert_eq!(late_total, 4);
    let mut seqs = all_seqs(&windows);
    seqs.sort_unstable();
    assert_eq!(seqs, (0..times.len() as u64).collect::<Vec<_>>());

    let ok = verify(&d, "one", &vkey);
    assert!(
        ok.contains(&format!(
            "OK {NODE}: 6 windows (windows {W0}..={}), 15 events, 0 lost",
            W0 + 5
        )),
        "{ok}"
    );
}

#[test]
fn events_going_back_less_than_the_slack_before_the_first_event_are_not_late() {
    let d = Dir::new();
    let (key, vkey) = d.signing_key(NODE);
    // Seq 1 is 20 ms before seq 0 and in the window before it; nothing has reached
    // 50 ms past W0's end, so W0 is open and seq 1 belongs there.
    write_trace(&d.join("t.rtrace"), &[vec![1010, 990, 1020, 2100]]);
    replay(&d, "t.rtrace", "s", 1, &key);
    verify(&d, "s", &vkey);
    assert_eq!(
        events_by_window(&sealed_windows(&d.join("s"))),
        vec![
            (0, vec![(1, ns(990), false)]),
            (1, vec![(0, ns(10), false), (2, ns(20), false)]),
            (2, vec![(3, ns(100), false)]),
        ]
    );
}

/// Batches of 10, 15 and 10 events in W0, W0+1 and W0+2.
fn three_batches() -> Vec<Vec<u64>> {
    vec![
        spaced(100, 10, 50),
        spaced(1100, 15, 50),
        spaced(2100, 10, 50),
    ]
}

#[test]
fn a_corrupt_middle_frame_is_skipped_and_sealed_as_trace_loss() {
    let d = Dir::new();
    let (key, vkey) = d.signing_key(NODE);
    let frames = write_trace(&d.join("clean.rtrace"), &three_batches());
    replay(&d, "clean.rtrace", "clean", 1, &key);
    let clean = sealed_windows(&d.join("clean"));
    let ok = verify(&d, "clean", &vkey);
    assert!(
        ok.contains("3 windows") && ok.contains("35 events, 0 lost"),
        "{ok}"
    );
    assert_eq!(clean[&(W0 + 1)].seqs(), (10..25).collect::<Vec<_>>());

    let middle = &frames[1];
    // A byte of the header's first_seq, of the payload, and the frame's last byte.
    for at in [
        middle.start + 15,
        middle.start + FRAME_HEADER_LEN + (middle.len() - FRAME_HEADER_LEN) / 2,
        middle.end - 1,
    ] {
        let out = format!("flip-{at}");
        std::fs::copy(d.join("clean.rtrace"), d.join("t.rtrace")).unwrap();
        flip_byte(&d.join("t.rtrace"), at);
        let err = replay(&d, "t.rtrace", &out, 1, &key);
        assert!(
            err.contains(&format!(
                "t.rtrace frame 2 at byte {}: corrupt frame: checksum mismatch",
                middle.start
            )),
            "flip at {at}: {err}"
        );
        assert!(
            err.contains("sealed 20 events")
                && err.contains("15 events lost to corrupt trace frames"),
            "flip at {at}: {err}"
        );

        let windows = sealed_windows(&d.join(&out));
        assert_eq!(
            windows.keys().copied().collect::<Vec<_>>(),
            vec![W0, W0 + 1, W0 + 2]
        );
        // The gap is found when the next batch arrives and is sealed in the oldest
        // window still open then: W0 (nothing had reached 50 ms past its end).
        assert_eq!(
            losses(&windows),
            vec![(W0, vec![(LossReason::TraceCorrupt, 15)])],
            "flip at {at}"
        );
        assert_eq!(windows[&W0].seqs(), (0..10).collect::<Vec<_>>());
        assert_eq!(windows[&(W0 + 1)].record.event_count, 0);
        assert_eq!(windows[&(W0 + 2)].seqs(), (25..35).collect::<Vec<_>>());

        let total =
            |w: &BTreeMap<u64, Sealed>| -> u64 { w.values().map(|s| s.record.event_count).sum() };
        assert_eq!(total(&clean) - total(&windows), 15);
        let mut with_gap = all_seqs(&windows);
        with_gap.extend(10..25);
        with_gap.sort_unstable();
        assert_eq!(with_gap, all_seqs(&clean));

        let ok = verify(&d, &out, &vkey);
        assert!(
            ok.contains("3 windows") && ok.contains("20 events, 15 lost"),
            "flip at {at}: {ok}"
        );
    }
}

#[test]
fn a_corrupt_first_batch_is_sealed_as_trace_loss() {
    let d = Dir::new();
    let (key, vkey) = d.signing_key(NODE);
    let frames = write_trace(&d.join("t.rtrace"), &three_batches());
    flip_byte(&d.join("t.rtrace"), frames[0].start + FRAME_HEADER_LEN + 2);
    let err = replay(&d, "t.rtrace", "s", 1, &key);
    assert!(
        err.contains(&format!(
            "t.rtrace frame 1 at byte {}: corrupt frame",
            frames[0].start
        )),
        "{err}"
    );
    let windows = sealed_windows(&d.join("s"));
    assert_eq!(all_seqs(&windows), (10..35).collect::<Vec<_>>());
    let lost: u64 = windows.values().map(|w| w.record.lost_total()).sum();
    assert_eq!(
        lost, 10,
        "the run starts at seq 0, the first seq read is 10"
    );
    let ok = verify(&d, "s", &vkey);
    assert!(ok.contains("25 events, 10 lost"), "{ok}");
}

#[test]
fn a_torn_tail_is_replayed_up_to_the_tear() {
    let d = Dir::new();
    let (key, vkey) = d.signing_key(NODE);
    let batches = three_batches();
    let frames = write_trace(&d.join("full.rtrace"), &batches);
    write_trace(&d.join("prefix.rtrace"), &batches[..2]);
    replay(&d, "prefix.rtrace", "prefix", 1, &key);
    let prefix = tree(&d.join("prefix"));
    let full = std::fs::read(d.join("full.rtrace")).unwrap();

    let last = &frames[2];
    let payload_len = last.len() - FRAME_HEADER_LEN;
    // Inside the header (only header bytes count as missing), mid-payload, one byte short.
    for (cut, missing) in [
        (last.start + 20, FRAME_HEADER_LEN - 20),
        (
            last.start + FRAME_HEADER_LEN + payload_len / 2,
            payload_len - payload_len / 2,
        ),
        (last.end - 1, 1),
    ] {
        let out = format!("cut-{cut}");
        std::fs::write(d.join("t.rtrace"), &full[..cut]).unwrap();
        let err = replay(&d, "t.rtrace", &out, 2, &key);
        assert!(
            err.contains(&format!(
                "t.rtrace frame 3 at byte {}: the trace ends inside a frame ({missing} bytes missing)",
                last.start
            )),
            "cut at {cut}: {err}"
        );
        assert!(
            err.contains("sealed 25 events") && err.contains("0 events lost"),
            "cut at {cut}: {err}"
        );
        let windows = sealed_windows(&d.join(&out));
        assert_eq!(all_seqs(&windows), (0..25).collect::<Vec<_>>());
        assert!(losses(&windows).is_empty(), "cut at {cut}");
        let ok = verify(&d, &out, &vkey);
        assert!(
            ok.contains("2 windows") && ok.contains("25 events, 0 lost"),
            "cut at {cut}: {ok}"
        );
        assert!(
            tree(&d.join(&out)) == prefix,
            "cut at {cut}: the store differs from the trace without its last batch"
        );
    }
}

#[test]
fn a_damaged_trace_seals_byte_identical_stores_for_any_worker_count() {
    let d = Dir::new();
    let (key, vkey) = d.signing_key(NODE);
    let mut b1 = spaced(1100, 20, 40);
    b1.extend([700, 30]); // W0 closed at 1100: both late into W0+1
    let mut b3 = spaced(3100, 20, 40);
    b3.extend([1500, 2990]); // W0+1 and W0+2 closed at 3100: both late into W0+3
    let batches = vec![
        spaced(100, 20, 40),
        b1,
        spaced(2100, 20, 40), // corrupted below: seqs 42..62
        b3,
        spaced(4100, 20, 40), // torn below
    ];
    let frames = write_trace(&d.join("t.rtrace"), &batches);
    flip_byte(&d.join("t.rtrace"), frames[2].start + FRAME_HEADER_LEN + 5);
    let full = std::fs::read(d.join("t.rtrace")).unwrap();
    std::fs::write(d.join("t.rtrace"), &full[..frames[4].end - 7]).unwrap();

    let mut stores = Vec::new();
    for workers in [1, 2, 3] {
        let out = format!("w{workers}");
        replay(&d, "t.rtrace", &out, workers, &key);
        let ok = verify(&d, &out, &vkey);
        assert!(
            ok.contains("4 windows") && ok.contains("64 events, 20 lost"),
            "{ok}"
        );
        stores.push(tree(&d.join(&out)));
    }
    assert!(stores[0].len() > 8, "a store of {} files", stores[0].len());
    for (i, s) in stores.iter().enumerate().skip(1) {
        assert_eq!(
            s.keys().collect::<Vec<_>>(),
            stores[0].keys().collect::<Vec<_>>()
        );
        assert!(
            s == &stores[0],
            "{} workers sealed other bytes than 1",
            i + 1
        );
    }

    let windows = sealed_windows(&d.join("w2"));
    let summary: Vec<(u64, u64, u64)> = windows
        .values()
        .map(|w| {
            (
                w.record.window - W0,
                w.record.event_count,
                w.record.late_events,
            )
        })
        .collect();
    assert_eq!(summary, vec![(0, 20, 0), (1, 22, 2), (2, 0, 0), (3, 22, 2)]);
    // Found when batch 3 arrives; W0+1 is then the oldest open window.
    assert_eq!(
        losses(&windows),
        vec![(W0 + 1, vec![(LossReason::TraceCorrupt, 20)])]
    );
    let late: Vec<(u64, i64)> = windows
        .values()
        .flat_map(|w| w.atoms.iter().filter(|a| a.flags & atom_flags::LATE != 0))
        .map(|a| (a.seq, a.t_ns))
        .collect();
    assert_eq!(
        late,
        vec![
            (40, ns(-300)),
            (41, ns(-970)),
            (82, ns(-1500)),
            (83, ns(-10))
        ]
    );
}

/// Loss frames are sealed in the window where the run's next event is placed (the
/// oldest open one, like a seq gap), under their own reason; a trailing loss frame in
/// the oldest window still open at the end; `verify` accepts the store, and the store
/// is the same for any number of workers.
#[test]
fn loss_frames_are_sealed_under_their_reason() {
    let d = Dir::new();
    let trace = d.join("loss.rtrace");
    let mut w = TraceWriter::create(&trace).unwrap();
    let run = w.add_run(&run_meta()).unwrap();
    // Before any event: sealed with the first event, in W0.
    w.append_loss(run, LossReason::DecodeError, 1).unwrap();
    w.append_batch(run, &[raw_event(0, 100), raw_event(1, 1_100)])
        .unwrap();
    // W0 closed at 1100 ms: the oldest open window is W0 + 1, where the next event goes.
    w.append_loss(run, LossReason::KernelRingbufFull, 5)
        .unwrap();
    w.append_loss(run, LossReason::QueueShed, 1).unwrap();
    w.append_batch(run, &[raw_event(2, 1_500), raw_event(3, 2_500)])
        .unwrap();
    // After the last event: the oldest window still open, W0 + 2.
    w.append_loss(run, LossReason::QueueShed, 2).unwrap();
    drop(w);

    let (key, vkey) = d.signing_key(NODE);
    let mut stores = Vec::new();
    for workers in [1, 3] {
        let out = format!("s{workers}");
        let stderr = replay(&d, "loss.rtrace", &out, workers, &key);
        assert!(
            stderr.contains("0 events lost to corrupt trace frames, 9 recorded as lost"),
            "{stderr}"
        );
        let verified = verify(&d, &out, &vkey);
        assert!(
            verified.starts_with("OK edge-1: 3 windows") && verified.contains("4 events, 9 lost"),
            "{verified}"
        );
        stores.push(tree(&d.join(&out)));
        let lost: Vec<WindowLoss> = window_leaves(&d.join(&out))
            .into_iter()
            .map(|(r, _)| (r.window - W0, r.lost, r.event_count))
            .collect();
        assert_eq!(
            lost,
            vec![
                (0, vec![(LossReason::DecodeError, 1)], 1),
                (
                    1,
                    vec![
                        (LossReason::KernelRingbufFull, 5),
                        (LossReason::QueueShed, 1)
                    ],
                    2
                ),
                (2, vec![(LossReason::QueueShed, 2)], 1),
            ]
        );
    }
    assert!(
        stores[0] == stores[1],
        "the store differs between 1 and 3 workers"
    );
}

/// A one-run trace: events 0 and 1 (W0, W0+1), the program `exit_openat` found silent
/// having missed 7 calls and attached again (W0+1), what `between` writes, then events 2
/// and 3 (W0+1, W0+2).
fn probe_gap_trace(path: &Path, between: impl FnOnce(&mut TraceWriter, u16)) {
    use ritma_schemas::records::HealthKind;
    let mut w = TraceWriter::create(path).unwrap();
    let run = w.add_run(&run_meta()).unwrap();
    w.append_batch(run, &[raw_event(0, 100), raw_event(1, 1_100)])
        .unwrap();
    let at = |ms: u64| MONO_AT_W0 + ms * MS;
    w.append_health(
        run,
        HealthKind::ProbeDetached,
        "exit_openat",
        at(1_200),
        Some(7),
    )
    .unwrap();
    w.append_health(
        run,
        HealthKind::ProbeReattached,
        "exit_openat",
        at(1_201),
        Some(0),
    )
    .unwrap();
    between(&mut w, run);
    w.append_batch(run, &[raw_event(2, 1_500), raw_event(3, 2_500)])
        .unwrap();
}

/// Health frames (a sensor program found silent, then attached again) are sealed as
/// health records at the end of the window the next event goes to, the counted gap as
/// that window's probe_detached loss and an uncounted one as no loss; `_meta/health/`
/// holds a copy of each, and `verify` refuses a changed, missing or extra copy.
#[test]
fn health_frames_are_sealed_as_health_records_with_their_loss() {
    use ritma_schemas::records::{HealthKind, HealthRecord};
    let d = Dir::new();
    probe_gap_trace(&d.join("health.rtrace"), |w, run| {
        // Both programs of a pair: nothing counted the gap.
        let at = MONO_AT_W0 + 1_200 * MS;
        w.append_health(run, HealthKind::ProbeDetached, "enter_bind", at, None)
            .unwrap();
        w.append_loss(run, LossReason::QueueShed, 2).unwrap();
    });

    let (key, vkey) = d.signing_key(NODE);
    let mut stores = Vec::new();
    for workers in [1, 2] {
        let out = format!("s{workers}");
        let stderr = replay(&d, "health.rtrace", &out, workers, &key);
        assert!(stderr.contains("9 recorded as lost"), "{stderr}");
        let verified = verify(&d, &out, &vkey);
        assert!(verified.contains("4 events, 9 lost"), "{verified}");
        stores.push(tree(&d.join(&out)));
    }
    assert!(
        stores[0] == stores[1],
        "the store differs between 1 and 2 workers"
    );

    let windows = window_leaves(&d.join("s1"));
    let (record, leaves) = &windows[1];
    assert_eq!(record.window, W0 + 1);
    assert_eq!(
        record.lost,
        vec![(LossReason::QueueShed, 2), (LossReason::ProbeDetached, 7)]
    );
    assert_eq!(record.health_count, 3);
    let health: Vec<HealthRecord> = leaves[leaves.len() - 3..]
        .iter()
        .map(|l| HealthRecord::decode(l).unwrap())
        .collect();
    let t = |ms: u64| W0 * WINDOW_LEN_NS + ms * MS;
    let got: Vec<_> = health
        .iter()
        .map(|h| (h.t_wall_ns, h.kind, h.subject.as_str(), h.lost, h.window))
        .collect();
    assert_eq!(
        got,
        vec![
            (
                t(1_200),
                HealthKind::ProbeDetached,
                "enter_bind",
                None,
                W0 + 1
            ),
            (
                t(1_200),
                HealthKind::ProbeDetached,
                "exit_openat",
                Some(7),
                W0 + 1
            ),
            (
                t(1_201),
                HealthKind::ProbeReattached,
                "exit_openat",
                Some(0),
                W0 + 1
            ),
        ]
    );
    assert!(windows
        .iter()
        .all(|(r, _)| r.window == W0 + 1 || r.health_count == 0));

    // The copies: one file per record, the leaf's bytes.
    let paths = WindowPaths::new(W0 + 1, WINDOW_LEN_NS);
    let copy = |n: u32| d.join("s1").join(paths.health(n));
    for (n, leaf) in leaves[leaves.len() - 3..].iter().enumerate() {
        assert_eq!(&std::fs::read(copy(n as u32)).unwrap(), leaf);
    }
    let original = std::fs::read(copy(1)).unwrap();
    std::fs::write(copy(1), &original[1..]).unwrap();
    let err = d
        .ritma(&["verify", "s1", "--key", &vkey])
        .output()
        .failure();
    assert!(
        err.contains("E_INDEX") && err.contains("w0801.0001.cbor"),
        "{err}"
    );
    std::fs::remove_file(copy(1)).unwrap();
    let err = d
        .ritma(&["verify", "s1", "--key", &vkey])
        .output()
        .failure();
    assert!(err.contains("E_INDEX"), "{err}");
    std::fs::write(copy(1), &original).unwrap();
    std::fs::write(copy(3), &original).unwrap();
    let err = d
        .ritma(&["verify", "s1", "--key", &vkey])
        .output()
        .failure();
    assert!(
        err.contains("E_EXTRA") && err.contains("w0801.0003.cbor"),
        "{err}"
    );
    std::fs::remove_file(copy(3)).unwrap();
    verify(&d, "s1", &vkey);
}

/// `a.rtrace` then `b.rtrace` replayed into `s1` with one worker and `s2` with two, each
/// verified (its report given to `check`); the two stores' files.
fn replay_both_runs(
    d: &Dir,
    key: &str,
    vkey: &str,
    check: impl Fn(&str),
) -> Vec<BTreeMap<std::path::PathBuf, Vec<u8>>> {
    let mut stores = Vec::new();
    for workers in [1, 2] {
        let out = format!("s{workers}");
        d.ritma(&[
            "replay",
            "a.rtrace",
            "b.rtrace",
            "--out",
            &out,
            "--workers",
            &workers.to_string(),
            "--key",
            key,
        ])
        .output()
        .success();
        check(&verify(d, &out, vkey));
        stores.push(tree(&d.join(&out)));
    }
    stores
}

#[test]
fn a_node_that_runs_again_continues_its_log_and_says_capture_was_down() {
    use ritma_schemas::records::{ActorRecord, HealthKind, HealthRecord};
    let d = Dir::new();
    // Run 1: seqs 0-3 in W0..=W0+2, then a loss after its last event.
    let mut w = TraceWriter::create(&d.join("a.rtrace")).unwrap();
    let run = w.add_run(&run_meta()).unwrap();
    let first: Vec<RawEvent> = [100, 600, 1_500, 2_200]
        .iter()
        .enumerate()
        .map(|(i, &ms)| raw_event(i as u64, ms))
        .collect();
    w.append_batch(run, &first).unwrap();
    w.append_loss(run, LossReason::KernelRingbufFull, 3)
        .unwrap();
    drop(w);
    // Run 2, after a reboot: another boot and clock offset (monotonic time 500 s ahead),
    // from seq 4, starting at W0 + 10; its pid 100 is another process than run 1's.
    const MONO_AHEAD_NS: u64 = 500_000 * MS;
    let mut second_meta = run_meta();
    second_meta.boot_id = [8; 16];
    second_meta.wall_minus_mono_ns -= MONO_AHEAD_NS as i64;
    second_meta.first_seq = 4;
    second_meta.started_wall_ns = (W0 + 10) * WINDOW_LEN_NS;
    second_meta.sensor_version = "second".into();
    let second: Vec<RawEvent> = [(4, 10_100), (5, 11_300)]
        .iter()
        .map(|&(seq, ms)| {
            let mut e = raw_event(seq, ms);
            e.mono_ns += MONO_AHEAD_NS;
            e
        })
        .collect();
    let mut w = TraceWriter::create(&d.join("b.rtrace")).unwrap();
    let run = w.add_run(&second_meta).unwrap();
    w.append_batch(run, &second).unwrap();
    drop(w);

    let (key, vkey) = d.signing_key(NODE);
    let stores = replay_both_runs(&d, &key, &vkey, |report| {
        assert!(report.contains("6 windows"), "{report}")
    });
    assert!(
        stores[0] == stores[1],
        "1 and 2 workers seal the same store"
    );

    let store = d.join("s1");
    let windows = sealed_windows(&store);
    // One log: run 1's W0..=W0 + 2, then, capture down, run 2's from the window open at
    // its start (W0 + 9, the slack before it); seqs 0..=5 in order.
    assert_eq!(
        windows.keys().copied().collect::<Vec<_>>(),
        (W0..=W0 + 2).chain(W0 + 9..=W0 + 11).collect::<Vec<_>>()
    );
    assert_eq!(all_seqs(&windows), (0..=5).collect::<Vec<_>>());
    // Run 1's trailing loss is sealed where its run ended, W0 + 2.
    assert_eq!(
        losses(&windows),
        vec![(W0 + 2, vec![(LossReason::KernelRingbufFull, 3)])]
    );
    // Each run's events carry their own boot's actors and wall times.
    let by_seq: BTreeMap<u64, &EventAtom> = windows
        .values()
        .flat_map(|w| w.atoms.iter().map(|a| (a.seq, a)))
        .collect();
    let start = task(100, "worker").start_ns;
    assert_eq!(
        by_seq[&0].actor,
        ActorRecord::id_of(NODE, &[7; 16], 100, start)
    );
    assert_eq!(
        by_seq[&5].actor,
        ActorRecord::id_of(NODE, &[8; 16], 100, start)
    );
    assert_eq!(
        events_by_window(&windows)[5],
        (11, vec![(5, ns(300), false)])
    );
    // Run 2's first window says capture stopped then and started again.
    let health: Vec<(u64, HealthRecord)> = window_leaves(&store)
        .into_iter()
        .flat_map(|(r, leaves)| {
            leaves
                .into_iter()
                .filter_map(move |l| match AnyRecord::decode(&l) {
                    Ok(AnyRecord::Health(h)) => Some((r.window, h)),
                    _ => None,
                })
        })
        .collect();
    let said: Vec<_> = health
        .iter()
        .map(|(w, h)| (*w - W0, h.kind, h.t_wall_ns, h.subject.as_str(), h.lost))
        .collect();
    assert_eq!(
        said,
        vec![
            (
                9,
                HealthKind::CaptureStopped,
                W0 * WINDOW_LEN_NS + 2_200 * MS,
                "replay-loss-test",
                None
            ),
            (
                9,
                HealthKind::CaptureStarted,
                (W0 + 10) * WINDOW_LEN_NS,
                "second",
                Some(0)
            ),
        ]
    );
    assert_eq!(windows[&(W0 + 9)].record.event_count, 0);

    // Given out of order, the later run would go back in seq: refused, naming both.
    let err = d
        .ritma(&[
            "replay", "b.rtrace", "a.rtrace", "--out", "back", "--key", &key,
        ])
        .output()
        .failure();
    assert!(
        err.contains("node edge-1: a run starting at seq 0 follows one that reached seq 6"),
        "{err}"
    );
}

#[test]
fn a_run_that_starts_in_the_window_the_last_one_ended_in_seals_its_events_late() {
    let d = Dir::new();
    let mut w = TraceWriter::create(&d.join("a.rtrace")).unwrap();
    let run = w.add_run(&run_meta()).unwrap();
    w.append_batch(run, &[raw_event(0, 100), raw_event(1, 1_200)])
        .unwrap();
    // A restart 300 ms later on the same boot: a new clock offset read, seq 2 on.
    let mut meta = run_meta();
    meta.wall_minus_mono_ns += 1_000;
    meta.first_seq = 2;
    meta.started_wall_ns = W0 * WINDOW_LEN_NS + 1_500 * MS;
    let run = w.add_run(&meta).unwrap();
    let mut e = raw_event(2, 1_600);
    e.mono_ns -= 1_000;
    w.append_batch(
        run,
        &[e, {
            let mut e = raw_event(3, 2_100);
            e.mono_ns -= 1_000;
            e
        }],
    )
    .unwrap();
    drop(w);
    let (key, vkey) = d.signing_key(NODE);
    d.ritma(&["replay", "a.rtrace", "--out", "s", "--key", &key])
        .output()
        .success();
    verify(&d, "s", &vkey);
    // Run 1's last window (W0 + 1) closed when run 2 began: run 2's event of that
    // window joins W0 + 2, late, keeping its true time.
    assert_eq!(
        events_by_window(&sealed_windows(&d.join("s"))),
        vec![
            (0, vec![(0, ns(100), false)]),
            (1, vec![(1, ns(200), false)]),
            (2, vec![(2, ns(-400), true), (3, ns(100), false)]),
        ]
    );
}

/// Every sealed event is provable, also in the windows that hold health records (a probe
/// incident, a restart's capture_stopped/capture_started) beside events: the proof's window
/// tree counts every leaf. The trace has health, loss, late and corrupt frames and two runs.
#[test]
fn every_event_of_a_damaged_two_run_trace_is_provable() {
    use ritma_schemas::records::HealthKind;
    let d = Dir::new();
    let at = |ms: u64| MONO_AT_W0 + ms * MS;
    // Run 1: W0..=W0+2; a probe gap in W0+1; a loss; a corrupt middle batch; a late event.
    let mut w = TraceWriter::create(&d.join("a.rtrace")).unwrap();
    let run = w.add_run(&run_meta()).unwrap();
    w.append_batch(
        run,
        &[raw_event(0, 100), raw_event(1, 600), raw_event(2, 1_100)],
    )
    .unwrap();
    w.append_health(
        run,
        HealthKind::ProbeDetached,
        "exit_openat",
        at(1_200),
        Some(4),
    )
    .unwrap();
    w.append_health(
        run,
        HealthKind::ProbeReattached,
        "exit_openat",
        at(1_300),
        Some(0),
    )
    .unwrap();
    w.append_loss(run, LossReason::KernelRingbufFull, 2)
        .unwrap();
    w.append_batch(run, &[raw_event(3, 1_500), raw_event(4, 1_700)])
        .unwrap();
    let corrupt_from = std::fs::metadata(d.join("a.rtrace")).unwrap().len() as usize;
    w.append_batch(run, &[raw_event(5, 1_800), raw_event(6, 1_900)])
        .unwrap();
    let corrupt_to = std::fs::metadata(d.join("a.rtrace")).unwrap().len() as usize;
    // 2 500 ms closes W0 and W0+1; the event at 900 ms then joins W0+2, late.
    w.append_batch(
        run,
        &[raw_event(7, 2_500), raw_event(8, 900), raw_event(9, 2_600)],
    )
    .unwrap();
    drop(w);
    flip_byte(&d.join("a.rtrace"), (corrupt_from + corrupt_to) / 2);
    // Run 2 (a restart) from seq 10: its first events share W0+3 with the stop and start.
    let mut meta = run_meta();
    meta.first_seq = 10;
    meta.started_wall_ns = (W0 + 3) * WINDOW_LEN_NS + 50 * MS;
    let mut w = TraceWriter::create(&d.join("b.rtrace")).unwrap();
    let run = w.add_run(&meta).unwrap();
    w.append_batch(run, &[raw_event(10, 3_100), raw_event(11, 3_400)])
        .unwrap();
    drop(w);

    let (key, vkey) = d.signing_key(NODE);
    let o = d
        .ritma(&[
            "replay", "a.rtrace", "b.rtrace", "--out", "s", "--key", &key,
        ])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{stderr}");
    verify(&d, "s", &vkey);

    let windows = window_leaves(&d.join("s"));
    let with_both: Vec<u64> = windows
        .iter()
        .filter(|(r, _)| r.health_count > 0 && r.event_count > 0)
        .map(|(r, _)| r.window - W0)
        .collect();
    assert_eq!(with_both, vec![1, 3], "health records beside events");
    let mut seqs = Vec::new();
    let mut late = 0;
    for (_, leaves) in &windows {
        for l in leaves {
            if let Ok(AnyRecord::Event(a)) = AnyRecord::decode(l) {
                seqs.push(a.seq);
                late += u32::from(a.flags & atom_flags::LATE != 0);
            }
        }
    }
    seqs.sort_unstable();
    assert_eq!(seqs, vec![0, 1, 2, 3, 4, 7, 8, 9, 10, 11]);
    assert_eq!(late, 1);
    for seq in seqs {
        let proof = format!("p{seq}.proof");
        d.ritma(&["prove", "s", "--seq", &seq.to_string(), "--out", &proof])
            .output()
            .success();
        let shown = d
            .ritma(&["verify-proof", &proof, "--key", &vkey])
            .output()
            .success();
        assert!(
            shown.contains(&format!("proof of node {NODE}, seq {seq}")),
            "{shown}"
        );
    }
}

/// Only probe_detached carries loss (FORMAT §3.10): a health record that says otherwise is
/// refused by `verify` even when the window and every later checkpoint are signed again
/// with the node's key, while a change within the rules, signed so, passes every check of
/// the window (the forger is sound).
#[test]
fn a_health_record_with_loss_its_kind_cannot_carry_fails_verify_though_re_signed() {
    use ritma_schemas::records::{HealthKind, HealthRecord};
    let d = Dir::new();
    probe_gap_trace(&d.join("h.rtrace"), |_, _| {});
    let (key, vkey) = d.signing_key(NODE);
    replay(&d, "h.rtrace", "clean", 1, &key);
    verify(&d, "clean", &vkey);

    // Rewrites the window's probe_reattached record with `change`, all signed again.
    let forge = |out: &str, change: &dyn Fn(&mut HealthRecord)| {
        let _ = std::fs::remove_dir_all(d.join(out));
        copy_tree(&d.join("clean"), &d.join(out));
        forge_window(&d.join(out), Path::new(&key), W0 + 1, |_, leaves| {
            let last = leaves.last_mut().unwrap();
            let mut h = HealthRecord::decode(last).unwrap();
            assert_eq!(h.kind, HealthKind::ProbeReattached);
            change(&mut h);
            *last = h.encode();
        });
    };
    type Forgery<'a> = (&'a str, &'a dyn Fn(&mut HealthRecord));
    forge("legal", &|h| h.subject = "exit_openat2".into());
    // Accepted as evidence; only the hour's accounting (derived, not redone) sees new sizes.
    let o = d
        .ritma(&["verify", "legal", "--key", &vkey])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success() || err.contains("E_CATALOG"), "{err}");
    let forgeries: [Forgery; 4] = [
        ("reattached-lost", &|h| h.lost = Some(5)),
        ("reattached-null", &|h| h.lost = None),
        ("started-lost", &|h| {
            h.kind = HealthKind::CaptureStarted;
            h.lost = Some(1);
        }),
        ("stopped-lost", &|h| {
            h.kind = HealthKind::CaptureStopped;
            h.lost = Some(0);
        }),
    ];
    for (name, change) in forgeries {
        forge(name, change);
        let err = d
            .ritma(&["verify", name, "--key", &vkey])
            .output()
            .failure();
        assert!(
            err.contains("E_DECODE") && err.contains("lost") && err.contains("w0801"),
            "{name}: {err}"
        );
    }
}

/// A restart's capture_stopped and capture_started records come as a pair, in a window
/// after the earlier run's newest time (FORMAT §7.2): `verify` refuses one alone, and a
/// stop dated inside its own window, even with the window and every later checkpoint
/// signed again with the node's key.
#[test]
fn a_restart_record_alone_or_misplaced_fails_verify_though_re_signed() {
    use ritma_schemas::records::{HealthKind, HealthRecord};
    let d = Dir::new();
    probe_gap_trace(&d.join("h.rtrace"), |_, _| {});
    let (key, vkey) = d.signing_key(NODE);
    replay(&d, "h.rtrace", "clean", 1, &key);
    // The window's last health record (probe_reattached) made a capture_stopped, and with
    // `started`, a capture_started of the same time after it.
    let forge = |out: &str, started: bool| {
        copy_tree(&d.join("clean"), &d.join(out));
        forge_window(&d.join(out), Path::new(&key), W0 + 1, |r, leaves| {
            let last = leaves.last_mut().unwrap();
            let mut h = HealthRecord::decode(last).unwrap();
            assert_eq!(h.kind, HealthKind::ProbeReattached);
            h.kind = HealthKind::CaptureStopped;
            h.lost = None;
            *last = h.encode();
            if started {
                h.kind = HealthKind::CaptureStarted;
                h.lost = Some(0);
                leaves.push(h.encode());
                r.health_count += 1;
            }
        });
    };
    forge("alone", false);
    let err = d
        .ritma(&["verify", "alone", "--key", &vkey])
        .output()
        .failure();
    assert!(
        err.contains("E_LAYOUT")
            && err.contains("1 capture_stopped and 0 capture_started")
            && err.contains("w0801"),
        "{err}"
    );
    forge("inside", true);
    let err = d
        .ritma(&["verify", "inside", "--key", &vkey])
        .output()
        .failure();
    assert!(
        err.contains("E_LAYOUT") && err.contains("not before the window's start"),
        "{err}"
    );
}

/// A window without events carries the seq after the node's highest so far (FORMAT §3.6):
/// the empty windows after a restart keep the earlier run's next seq, not the new run's
/// first, and `verify` refuses any other value even when the window is signed again.
#[test]
fn an_empty_windows_first_seq_is_the_nodes_next_seq() {
    let d = Dir::new();
    let mut w = TraceWriter::create(&d.join("a.rtrace")).unwrap();
    let run = w.add_run(&run_meta()).unwrap();
    w.append_batch(run, &[raw_event(0, 100), raw_event(1, 1_100)])
        .unwrap();
    drop(w);
    // Run 2 from seq 10 at W0 + 6: seqs 2-9 are a gap, windows W0+2..=W0+4 are left out
    // (capture was down) and W0 + 5, open at run 2's start, holds only the restart.
    let mut meta = run_meta();
    meta.first_seq = 10;
    meta.started_wall_ns = (W0 + 6) * WINDOW_LEN_NS;
    let mut w = TraceWriter::create(&d.join("b.rtrace")).unwrap();
    let run = w.add_run(&meta).unwrap();
    w.append_batch(run, &[raw_event(10, 6_100), raw_event(11, 6_200)])
        .unwrap();
    drop(w);
    let (key, vkey) = d.signing_key(NODE);
    d.ritma(&[
        "replay", "a.rtrace", "b.rtrace", "--out", "s", "--key", &key,
    ])
    .output()
    .success();
    verify(&d, "s", &vkey);
    let firsts: Vec<(u64, u64, u64)> = window_leaves(&d.join("s"))
        .iter()
        .map(|(r, _)| (r.window - W0, r.event_count, r.first_seq))
        .collect();
    assert_eq!(firsts, vec![(0, 1, 0), (1, 1, 1), (5, 0, 2), (6, 2, 10)]);
    for (window, first_seq) in [(W0 + 5, 10), (W0 + 5, 0)] {
        let out = format!("forged-{first_seq}");
        copy_tree(&d.join("s"), &d.join(&out));
        forge_window(&d.join(&out), Path::new(&key), window, |r, _| {
            r.first_seq = first_seq
        });
        let err = d
            .ritma(&["verify", &out, "--key", &vkey])
            .output()
            .failure();
        assert!(
            err.contains("E_SEQ") && err.contains("first_seq") && err.contains("next seq is 2"),
            "{err}"
        );
    }
}

/// A node down for hours (FORMAT §7.2): the windows while capture was down are left out,
/// except each hour's last, so every hour keeps its seal; the later run's first window
/// holds the restart, and taint that aged out while capture was down leaves the relation at
/// the next sealed window. The store is the same for 1 and 2 workers and verifies; a
/// restart forged away, or dated inside the windows left out, fails verify though re-signed.
#[test]
fn a_downtime_of_hours_leaves_out_its_windows_but_every_hours_last() {
    use ritma_schemas::index::{TaintIndex, MAX_INDEX_LEN};
    use ritma_schemas::records::{HealthKind, HealthRecord, Record};
    let d = Dir::new();
    let DowntimeTraces {
        last_window,
        second,
    } = downtime_traces(&d);
    let len = second.window_len_ns;
    let per_hour = 3_600_000_000_000 / len;
    let (key, vkey) = d.signing_key("synth-0");
    let stores = replay_both_runs(&d, &key, &vkey, |_| {});
    assert!(
        stores[0] == stores[1],
        "1 and 2 workers seal the same store"
    );

    let store = d.join("s1");
    let windows: Vec<u64> = window_leaves(&store)
        .iter()
        .map(|(r, _)| r.window)
        .collect();
    // Run 2's first window is the one open at its start: its own or, within the slack, one before.
    let restart = *windows
        .iter()
        .find(|w| **w > last_window && (**w + 1) % per_hour != 0)
        .unwrap();
    assert!(
        restart * len <= second.started_wall_ns && second.started_wall_ns < (restart + 2) * len,
        "{restart}"
    );
    let before: Vec<u64> = windows
        .iter()
        .copied()
        .filter(|w| *w <= last_window)
        .collect();
    let after: Vec<u64> = windows
        .iter()
        .copied()
        .filter(|w| *w > last_window)
        .collect();
    assert_eq!(
        before,
        (windows[0]..=last_window).collect::<Vec<_>>(),
        "run 1's windows, every one"
    );
    let hour_ends: Vec<u64> = (last_window + 1..restart)
        .filter(|w| (w + 1) % per_hour == 0)
        .collect();
    assert!(hour_ends.len() >= 2, "{hour_ends:?}");
    let expected: Vec<u64> = hour_ends
        .iter()
        .copied()
        .chain(restart..=*after.last().unwrap())
        .collect();
    assert_eq!(after, expected, "the hours' last windows, then run 2's");
    // Every hour the node has windows in is sealed, but the one run 2 is in.
    for end in &hour_ends {
        let seal = store.join(WindowPaths::new(*end, len).hour_seal());
        assert!(seal.is_file(), "{}", seal.display());
    }
    // The restart is in run 2's first window; the hour ends hold nothing.
    let by_window: BTreeMap<u64, (ritma_schemas::records::WindowRecord, Vec<Vec<u8>>)> =
        window_leaves(&store)
            .into_iter()
            .map(|(r, l)| (r.window, (r, l)))
            .collect();
    for end in &hour_ends {
        let r = &by_window[end].0;
        assert_eq!((r.event_count, r.health_count, r.lost.len()), (0, 0, 0));
    }
    let kinds: Vec<HealthKind> = by_window[&restart]
        .1
        .iter()
        .filter_map(|l| HealthRecord::decode(l).ok())
        .map(|h| h.kind)
        .collect();
    assert_eq!(
        kinds,
        vec![HealthKind::CaptureStopped, HealthKind::CaptureStarted]
    );
    // Taint sighted in run 1 aged out while capture was down: it leaves at the first
    // sealed window after, the first hour's last.
    let first_end = hour_ends[0];
    let taint: TaintIndex = TaintIndex::decode(
        &ritma_sinks::index::read_compressed(
            &store
                .join(WindowPaths::new(first_end, len).hour_dir)
                .join("index/taint.cbor.zst"),
            MAX_INDEX_LEN,
        )
        .unwrap(),
    )
    .unwrap();
    assert!(
        taint
            .changes
            .iter()
            .any(|c| !c.enters && c.window_index == first_end % per_hour),
        "no taint left at window {first_end}"
    );

    // The restart forged away (the window then holds nothing) or stopped inside the
    // windows left out: refused, though every checkpoint is signed again.
    let forge = |out: &str, change: &dyn Fn(&mut Vec<Vec<u8>>, &mut u64)| {
        copy_tree(&store, &d.join(out));
        forge_window(&d.join(out), Path::new(&key), restart, |r, leaves| {
            change(leaves, &mut r.health_count);
        });
    };
    forge("no-restart", &|leaves, count| {
        leaves.retain(|l| HealthRecord::decode(l).is_err());
        *count = 0;
    });
    let err = d
        .ritma(&["verify", "no-restart", "--key", &vkey])
        .output()
        .failure();
    assert!(
        err.contains("E_CONTINUITY") && err.contains("records no restart"),
        "{err}"
    );
    forge("stop-inside", &|leaves, _| {
        for l in leaves.iter_mut() {
            if let Ok(mut h) = HealthRecord::decode(l) {
                if h.kind == HealthKind::CaptureStopped {
                    h.t_wall_ns = (hour_ends[0] + 1) * len;
                    *l = h.encode();
                }
            }
        }
    });
    let err = d
        .ritma(&["verify", "stop-inside", "--key", &vkey])
        .output()
        .failure();
    assert!(
        err.contains("E_CONTINUITY") && err.contains("capture was not down there"),
        "{err}"
    );

    // Cut off while writing run 2's first window (its files but its checkpoint written,
    // nothing after it): an interrupted write, though the window follows windows left out;
    // the replay run again completes it to the same bytes.
    let cut = d.join("cut");
    copy_tree(&store, &cut);
    for (r, _) in window_leaves(&store)
        .iter()
        .filter(|(r, _)| r.window >= restart)
    {
        let p = WindowPaths::new(r.window, len);
        let mut files = vec![p.checkpoint()];
        if r.window > restart {
            files.extend([p.record(), p.blocks()]);
            files.extend((0..r.health_count as u32).map(|n| p.health(n)));
        }
        for f in files {
            let _ = std::fs::remove_file(cut.join(f));
        }
    }
    let hour = WindowPaths::new(restart, len);
    std::fs::remove_dir_all(cut.join(&hour.hour_dir).join("index")).unwrap();
    let edges = Path::new("graph/edges").join(hour.hour_dir.strip_prefix("windows").unwrap());
    let _ = std::fs::remove_dir_all(cut.join(edges));
    ritma_sinks::catalog::forget_hour(&cut, restart / per_hour).unwrap();
    let out = d
        .ritma(&["verify", "cut", "--key", &vkey])
        .output()
        .success();
    assert!(
        out.contains("INTERRUPTED") && out.contains("was begun but has no checkpoint"),
        "{out}"
    );
    d.ritma(&[
        "replay", "a.rtrace", "b.rtrace", "--out", "cut", "--key", &key,
    ])
    .output()
    .success();
    assert!(
        tree(&cut) == stores[0],
        "the completed store is the uninterrupted one"
    );
}
