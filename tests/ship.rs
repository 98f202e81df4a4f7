//! Shipping without a broker: a store read into envelopes (FORMAT.md §12), cut into
//! parts and joined again, and applied by the receiver, which must rebuild the node's
//! tree byte for byte and refuse every tampered, replayed, equivocating or missing
//! envelope with the right reason. The Kafka transport around it is tests/kafka.rs.

use crate::util::{forge_window, tree, Dir, OutputExt};
use ritma_schemas::note::NoteVerifier;
use ritma_schemas::records::Record;
use ritma_schemas::ship::{PartAssembler, ShipEnvelope, ShipKind};
use ritma_sinks::mirror::{Mirror, Origin, Outcome, Reason};
use ritma_sinks::ship::{write_cursor, ShipSource};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// A store `s` of node synth-0 over two hours of minute windows (some sealed hours, the
/// last one open).
fn two_hours() -> Dir {
    let d = Dir::new();
    d.sealed_store(&[
        "--events",
        "9000",
        "--seed",
        "5",
        "--rate",
        "2",
        "--window-ms",
        "60000",
    ]);
    d
}

/// Every envelope of the store at `root` to `topic`, advancing its cursor as if acked.
fn envelopes(root: &Path) -> Vec<ShipEnvelope> {
    let mut src = ShipSource::open(root, "ritma.evidence").unwrap();
    let mut out = Vec::new();
    while let Some(o) = src.next_shipment().unwrap() {
        out.extend(o.envelopes);
        write_cursor(root, &o.cursor).unwrap();
        src.acked(o.cursor);
    }
    out
}

fn pinned(d: &Dir) -> Vec<NoteVerifier> {
    let text = std::fs::read_to_string(d.join("s/_meta/keys/signing.vkey")).unwrap();
    vec![NoteVerifier::from_vkey(text.trim()).unwrap()]
}

/// Each envelope through parts of 4 KiB, its blocks checked ahead as the ingest does,
/// and applied as message `offset`.
fn deliver(mirror: &Mirror, envs: &[ShipEnvelope], first_offset: i64) -> Vec<Outcome> {
    deliver_with(mirror, envs, first_offset, true)
}

fn deliver_with(
    mirror: &Mirror,
    envs: &[ShipEnvelope],
    first_offset: i64,
    precheck: bool,
) -> Vec<Outcome> {
    let mut join = PartAssembler::default();
    let mut out = Vec::new();
    for (i, e) in envs.iter().enumerate() {
        let mut joined = None;
        for p in e.to_parts(4096) {
            let p = ritma_schemas::ship::ShipPart::decode(&p.encode()).unwrap();
            joined = join.push(p).unwrap();
        }
        let origin = Origin {
            partition: 0,
            offset: first_offset + i as i64,
        };
        let env = joined.unwrap();
        out.push(match precheck {
            true => {
                let pre = mirror.precheck(env);
                mirror.apply_prechecked(pre, origin).unwrap()
            }
            false => mirror.apply(&env, origin).unwrap(),
        });
    }
    out
}

/// The node tree as the receiver must rebuild it: all but `wal/`, the private key and
/// the shipping cursors.
fn shipped_tree(root: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut t = tree(root);
    t.retain(|p, _| {
        !p.starts_with("wal")
            && !p.starts_with("_meta/ship")
            && p != Path::new("_meta/keys/signing.key")
    });
    t
}

fn reason(o: &Outcome) -> Reason {
    match o {
        Outcome::Quarantined { reason, .. } => *reason,
        other => panic!("not quarantined: {other:?}"),
    }
}

#[test]
fn the_receiver_rebuilds_the_node_tree_byte_for_byte_and_verify_accepts_it() {
    let d = two_hours();
    let envs = envelopes(&d.join("s"));
    assert!(
        envs.iter().any(|e| e.kind == ShipKind::Hour),
        "an hour envelope"
    );
    let seqs: Vec<u64> = envs.iter().map(|e| e.stream_seq).collect();
    assert_eq!(seqs, (0..envs.len() as u64).collect::<Vec<_>>());
    let mirror = Mirror::open(&d.join("out"), pinned(&d)).unwrap();
    for o in deliver(&mirror, &envs, 0) {
        assert!(matches!(o, Outcome::Applied { .. }), "{o:?}");
    }
    assert_eq!(
        shipped_tree(&d.join("s")),
        tree(&d.join("out/nodes/synth-0"))
    );
    std::fs::copy(d.join("s/_meta/keys/signing.vkey"), d.join("node.vkey")).unwrap();
    d.ritma(&["verify", "out/nodes/synth-0", "--key", "node.vkey"])
        .output()
        .success();
    // Checked in turn instead of ahead: the same tree.
    let plain = Mirror::open(&d.join("plain"), pinned(&d)).unwrap();
    for o in deliver_with(&plain, &envs, 0, false) {
        assert!(matches!(o, Outcome::Applied { .. }), "{o:?}");
    }
    assert_eq!(
        tree(&d.join("plain/nodes/synth-0")),
        tree(&d.join("out/nodes/synth-0"))
    );
    // A second delivery of the same messages (a rebalance, a restart) changes nothing.
    for o in deliver(&mirror, &envs, 0) {
        assert_eq!(o, Outcome::Redelivered);
    }
    // Nothing new to ship once the cursor is at the end.
    assert!(envelopes(&d.join("s")).is_empty());
}

#[test]
fn tampered_replayed_equivocating_and_missing_envelopes_are_refused_with_their_reason() {
    let d = two_hours();
    let envs = envelopes(&d.join("s"));
    let n = envs.len();
    let mirror = Mirror::open(&d.join("out"), pinned(&d)).unwrap();
    // All but the last two envelopes arrive.
    deliver(&mirror, &envs[..n - 2], 0);
    let last_window = envs[..n - 2]
        .iter()
        .rev()
        .find(|e| e.kind == ShipKind::Window)
        .unwrap()
        .clone();

    // A byte of the next window's record flipped in transit: its checkpoint does not sign it.
    let mut next = envs[n - 2].clone();
    assert_eq!(next.kind, ShipKind::Window);
    let rec = next.files.len() - 2;
    let len = next.files[rec].bytes.len();
    // The root's last byte: the record ends with it and `state` (null).
    next.files[rec].bytes[len - 2] ^= 1;
    let o = deliver(&mirror, &[next], 100);
    assert_eq!(reason(&o[0]), Reason::Root, "{o:?}");

    // A byte of the next window's blocks flipped in transit: found by the precheck.
    let mut next = envs[n - 2].clone();
    let blocks = next
        .files
        .iter()
        .position(|f| f.path.contains("/blocks/"))
        .unwrap();
    let mid = next.files[blocks].bytes.len() / 2;
    next.files[blocks].bytes[mid] ^= 0x40;
    let o = deliver(&mirror, &[next], 101);
    assert!(
        matches!(reason(&o[0]), Reason::Decode | Reason::Root),
        "{o:?}"
    );

    // The next window re-signed with another key.
    let other = d.signing_key("synth-0");
    let mut resigned = envs[n - 2].clone();
    let signer = ritma_schemas::note::NoteSigner::from_private_key_text(
        std::fs::read_to_string(&other.0).unwrap().trim(),
    )
    .unwrap();
    let sig = resigned.files.last_mut().unwrap();
    let note = ritma_schemas::note::parse_note(std::str::from_utf8(&sig.bytes).unwrap()).unwrap();
    let cp = ritma_schemas::note::Checkpoint::parse_body(note.body).unwrap();
    sig.bytes = cp.sign(&signer).unwrap().into_bytes();
    let o = deliver(&mirror, &[resigned], 102);
    assert_eq!(reason(&o[0]), Reason::Signature, "{o:?}");

    // An old window sent again, unchanged.
    let o = deliver(&mirror, std::slice::from_ref(&last_window), 103);
    assert_eq!(reason(&o[0]), Reason::Replay, "{o:?}");

    // The node forks: the newest accepted window forged and signed with the node's key.
    let forked = Dir::new();
    crate::util::copy_tree(&d.join("s"), forked.path());
    std::fs::remove_dir_all(forked.join("_meta/ship")).unwrap();
    forge_window(
        forked.path(),
        &forked.join("_meta/keys/signing.key"),
        last_window.unit,
        |r, _| {
            r.late_events += 1;
        },
    );
    let twin = envelopes(forked.path())
        .into_iter()
        .find(|e| e.kind == ShipKind::Window && e.unit == last_window.unit)
        .unwrap();
    assert_eq!(twin.stream_seq, last_window.stream_seq);
    let o = deliver(&mirror, &[twin], 104);
    assert_eq!(reason(&o[0]), Reason::Equivocation, "{o:?}");
    assert!(d.join("out/alarms/synth-0").read_dir().unwrap().count() == 1);
    // The node is held: even its genuine next window waits.
    let o = deliver(&mirror, &[envs[n - 2].clone()], 105);
    assert_eq!(reason(&o[0]), Reason::Held, "{o:?}");

    // Nothing of the refused envelopes was applied: the tree is the node's up to n - 2.
    let applied = Dir::new();
    let m2 = Mirror::open(applied.path(), pinned(&d)).unwrap();
    deliver(&m2, &envs[..n - 2], 0);
    assert_eq!(
        tree(&d.join("out/nodes/synth-0")),
        tree(&applied.join("nodes/synth-0"))
    );
    let quarantined = tree(&d.join("out/quarantine/synth-0"));
    assert_eq!(
        quarantined.len(),
        2 * 6,
        "an envelope and a note per refusal"
    );
}

#[test]
fn a_missing_envelope_raises_a_gap_alarm_and_holds_the_node() {
    let d = two_hours();
    let envs = envelopes(&d.join("s"));
    let mirror = Mirror::open(&d.join("out"), pinned(&d)).unwrap();
    let mut skipped = envs.clone();
    skipped.remove(3);
    let o = deliver(&mirror, &skipped[..5], 0);
    assert!(matches!(o[2], Outcome::Applied { .. }));
    assert_eq!(reason(&o[3]), Reason::Gap, "{o:?}");
    assert_eq!(reason(&o[4]), Reason::Held, "{o:?}");
    let alarm = tree(&d.join("out/alarms/synth-0"));
    let text = String::from_utf8(alarm.values().next().unwrap().clone()).unwrap();
    assert!(
        text.contains("\"alarm\": \"gap\"") && text.contains("envelopes 3 to 3"),
        "{text}"
    );
}

#[test]
fn a_node_no_pinned_key_names_is_refused() {
    let d = two_hours();
    let envs = envelopes(&d.join("s"));
    let (_, vkey) = d.signing_key("web-1");
    let other = NoteVerifier::from_vkey(std::fs::read_to_string(vkey).unwrap().trim()).unwrap();
    let mirror = Mirror::open(&d.join("out"), vec![other]).unwrap();
    let o = deliver(&mirror, &envs[..1], 0);
    assert_eq!(reason(&o[0]), Reason::Untrusted);
    // A pinned key of the right name but another key: the key history is refused.
    let keys = Dir::new();
    let (_, vkey) = keys.signing_key("synth-0");
    let wrong = NoteVerifier::from_vkey(std::fs::read_to_string(vkey).unwrap().trim()).unwrap();
    let mirror = Mirror::open(&d.join("out2"), vec![wrong]).unwrap();
    let o = deliver(&mirror, &envs[..1], 0);
    assert_eq!(reason(&o[0]), Reason::Signature, "{o:?}");
    assert!(!d.join("out2/nodes/synth-0/_meta").exists());
}

#[test]
fn retention_keeps_the_hours_not_yet_shipped_unless_forced() {
    let d = two_hours();
    let root = d.join("s");
    // Three windows shipped, then the broker went away.
    let mut src = ShipSource::open(&root, "ritma.evidence").unwrap();
    for _ in 0..3 {
        let o = src.next_shipment().unwrap().unwrap();
        write_cursor(&root, &o.cursor).unwrap();
        src.acked(o.cursor);
    }
    let out = d
        .ritma(&["retention", "s", "--keep", "1s", "--apply"])
        .output()
        .success();
    assert!(
        out.contains("not shipped yet") && out.contains("deleted 0 hours"),
        "{out}"
    );
    // Once everything is shipped, the sealed hours may go.
    envelopes(&root);
    let out = d
        .ritma(&["retention", "s", "--keep", "1s", "--apply"])
        .output()
        .success();
    assert!(
        !out.contains("not shipped yet") && !out.contains("deleted 0 hours"),
        "{out}"
    );
    // A store that never shipped everything, forced.
    let f = two_hours();
    let mut src = ShipSource::open(&f.join("s"), "ritma.evidence").unwrap();
    let o = src.next_shipment().unwrap().unwrap();
    write_cursor(&f.join("s"), &o.cursor).unwrap();
    let out = f
        .ritma(&[
            "retention",
            "s",
            "--keep",
            "1s",
            "--apply",
            "--force-unshipped",
        ])
        .output()
        .success();
    assert!(!out.contains("deleted 0 hours"), "{out}");
}
