//! `ritma synth`: deterministic traces with labelled attacks.

use crate::util::{Dir, OutputExt};

#[test]
fn synth_is_deterministic_and_labels_its_attacks() {
    let d = Dir::new();
    for name in ["a.rtrace", "b.rtrace"] {
        let err = d
            .ritma(&[
                "synth", "--events", "60000", "--seed", "9", "--hosts", "2", "--out", name,
            ])
            .output()
            .success();
        assert!(err.is_empty(), "stdout should be empty: {err}");
    }
    let a = std::fs::read(d.join("a.rtrace")).unwrap();
    assert_eq!(a, std::fs::read(d.join("b.rtrace")).unwrap());
    assert!(a.starts_with(b"RTRACE\x00\x01"));
    let labels = std::fs::read_to_string(d.join("a.rtrace.labels.jsonl")).unwrap();
    assert_eq!(
        labels,
        std::fs::read_to_string(d.join("b.rtrace.labels.jsonl")).unwrap()
    );
    assert!(labels.lines().count() >= 3, "{labels}");
    assert!(
        labels
            .lines()
            .all(|l| l.starts_with(r#"{"node":"synth-"#) && l.contains(r#""first_seq":"#)),
        "{labels}"
    );
}

#[test]
fn synth_refuses_to_overwrite() {
    let d = Dir::new();
    d.ritma(&["synth", "--events", "10", "--out", "t.rtrace"])
        .output()
        .success();
    let before = std::fs::read(d.join("t.rtrace")).unwrap();
    let err = d
        .ritma(&["synth", "--events", "20", "--out", "t.rtrace"])
        .output()
        .failure();
    assert!(err.contains("t.rtrace") && err.contains("exists"), "{err}");
    assert_eq!(std::fs::read(d.join("t.rtrace")).unwrap(), before);
}
