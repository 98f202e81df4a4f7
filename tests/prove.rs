//! `ritma prove` and `ritma verify-proof`: self-contained proofs of single events.

use crate::util::{window_leaves, Dir, OutputExt};
use ritma_schemas::proof_bundle::ProofBundle;
use ritma_schemas::records::{AnyRecord, EventAtom, WindowRecord};
use std::path::Path;

/// Every event of the single-node store at `store`, with its window record.
fn events(store: &Path) -> Vec<(WindowRecord, EventAtom)> {
    let mut out = Vec::new();
    for (record, leaves) in window_leaves(store) {
        for leaf in leaves {
            if let Ok(AnyRecord::Event(a)) = AnyRecord::decode(&leaf) {
                out.push((record.clone(), a));
            }
        }
    }
    out.sort_by_key(|(_, a)| a.seq);
    out
}

fn vkey_text(d: &Dir, store: &str) -> String {
    std::fs::read_to_string(d.join(&format!("{store}/_meta/keys/signing.vkey")))
        .unwrap()
        .trim()
        .to_owned()
}

/// The value of a `name:` line of the summary.
fn field<'a>(out: &'a str, name: &str) -> &'a str {
    out.lines()
        .find_map(|l| l.strip_prefix(name).map(str::trim))
        .unwrap_or_else(|| panic!("no `{name}` in:\n{out}"))
}

#[test]
fn a_proof_verifies_with_nothing_else_present_and_names_its_event() {
    let d = Dir::new();
    d.sealed_store(&["--events", "3000", "--seed", "1"]);
    let (window, atom) = events(&d.join("s"))
        .into_iter()
        .find(|(_, a)| a.seq == 1234)
        .unwrap();
    let out = d
        .ritma(&["prove", "s", "--seq", "1234", "--out", "p.proof"])
        .output()
        .success();
    assert!(out.starts_with("wrote p.proof:"), "{out}");

    // Elsewhere, with only the proof and the key text.
    let elsewhere = Dir::new();
    std::fs::copy(d.join("p.proof"), elsewhere.join("p.proof")).unwrap();
    let vkey = vkey_text(&d, "s");
    let shown = elsewhere
        .ritma(&["verify-proof", "p.proof", "--key", &vkey])
        .output()
        .success();
    assert_eq!(field(&shown, "OK"), "proof of node synth-0, seq 1234");
    assert!(
        field(&shown, "window:").starts_with(&format!("{} ", window.window)),
        "{shown}"
    );
    assert_eq!(field(&shown, "key:"), "pinned (--key)");
    assert_eq!(field(&shown, "signed by:"), vkey);

    let json = elsewhere
        .ritma(&["verify-proof", "p.proof", "--key", &vkey, "--json"])
        .output()
        .success();
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(v["seq"], 1234);
    assert_eq!(v["window"], window.window);
    assert_eq!(
        v["event_type"],
        shown.lines().nth(1).unwrap()[11..]
            .split(' ')
            .next()
            .unwrap()
    );
    assert_eq!(v["actor"]["id"], hex(&atom.actor));
    assert_eq!(v["object"]["id"], hex(&atom.object));
    assert_eq!(
        v["time_ns"],
        window.window as i64 * window.window_len_ns as i64 + atom.t_ns
    );
    assert_eq!(v["pinned"], true);

    // No key pinned: refused, saying how to pin one.
    let err = elsewhere
        .ritma(&["verify-proof", "p.proof"])
        .output()
        .failure();
    assert!(
        err.contains("no key is pinned") && err.contains("--trust-embedded-key"),
        "{err}"
    );
    // Trusting the proof's own key: OK, with a warning naming it.
    let o = elsewhere
        .ritma(&["verify-proof", "--trust-embedded-key", "p.proof"])
        .output()
        .unwrap();
    assert!(o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("taken from the proof itself") && err.contains(&vkey),
        "{err}"
    );
    assert!(String::from_utf8_lossy(&o.stdout).contains("NOT PINNED"));
    // A directory of trusted keys pins it too (RITMA_TRUST or --trust).
    let keys = elsewhere.join("trusted");
    std::fs::create_dir_all(&keys).unwrap();
    std::fs::write(keys.join("synth-0.vkey"), format!("{vkey}\n")).unwrap();
    let shown = elsewhere
        .ritma(&["verify-proof", "p.proof"])
        .env("RITMA_TRUST", &keys)
        .output()
        .success();
    assert!(
        field(&shown, "key:").starts_with("pinned (--trust "),
        "{shown}"
    );

    // The proof file is never overwritten.
    let err = d
        .ritma(&["prove", "s", "--seq", "1", "--out", "p.proof"])
        .output()
        .failure();
    assert!(err.contains("already exists"), "{err}");
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

#[test]
fn verify_proof_with_another_key_fails() {
    let d = Dir::new();
    d.sealed_store(&["--events", "2000", "--seed", "2"]);
    d.ritma(&["prove", "s", "--seq", "7", "--out", "p.proof"])
        .output()
        .success();
    // Another key of the same node name.
    let (_, other) = d.signing_key("synth-0");
    let err = d
        .ritma(&["verify-proof", "p.proof", "--key", &other])
        .output()
        .failure();
    assert!(err.contains("proof check failed at key:"), "{err}");
    let err = d
        .ritma(&["verify-proof", "p.proof", "--key", "not a key"])
        .output()
        .failure();
    assert!(err.contains("not a verifier key"), "{err}");
}

#[test]
fn flipping_any_byte_of_a_proof_fails_verification() {
    let d = Dir::new();
    d.sealed_store(&["--events", "2000", "--seed", "3"]);
    d.ritma(&["prove", "s", "--seq", "1500", "--out", "p.proof"])
        .output()
        .success();
    let bytes = std::fs::read(d.join("p.proof")).unwrap();
    ProofBundle::verify_bytes(&bytes, None).unwrap();
    // Every byte, two ways, through the library the command uses.
    for i in 0..bytes.len() {
        for mask in [0x01u8, 0xa0] {
            let mut v = bytes.clone();
            v[i] ^= mask;
            assert!(
                ProofBundle::verify_bytes(&v, None).is_err(),
                "byte {i} ^ {mask:#04x} accepted"
            );
        }
    }
    // A sample through the binary, each failure naming the part at fault.
    for i in (0..bytes.len()).step_by(41).chain([bytes.len() - 1]) {
        let mut v = bytes.clone();
        v[i] ^= 0x10;
        std::fs::write(d.join("bad.proof"), &v).unwrap();
        let err = d
            .ritma(&["verify-proof", "--trust-embedded-key", "bad.proof"])
            .output()
            .failure();
        assert!(err.contains("proof check failed at "), "byte {i}: {err}");
    }
    // Cut short, or grown.
    std::fs::write(d.join("bad.proof"), &bytes[..bytes.len() - 1]).unwrap();
    d.ritma(&["verify-proof", "--trust-embedded-key", "bad.proof"])
        .output()
        .failure();
    let mut longer = bytes.clone();
    longer.push(0);
    std::fs::write(d.join("bad.proof"), &longer).unwrap();
    let err = d
        .ritma(&["verify-proof", "--trust-embedded-key", "bad.proof"])
        .output()
        .failure();
    assert!(err.contains("trailing"), "{err}");
}

#[test]
fn the_first_and_last_events_of_a_multi_hour_store_are_proven() {
    let d = Dir::new();
    // 8000 s of one event a second in one-minute windows: over two hours, 134 windows.
    d.sealed_store(&[
        "--events",
        "8000",
        "--seed",
        "4",
        "--rate",
        "1",
        "--window-ms",
        "60000",
    ]);
    let all = events(&d.join("s"));
    let windows = window_leaves(&d.join("s")).len() as u64;
    let (first_window, first) = all.first().unwrap().clone();
    let (last_window, last) = all.last().unwrap().clone();
    let hour = |w: &WindowRecord| w.window * w.window_len_ns / 3_600_000_000_000;
    assert!(hour(&last_window) >= hour(&first_window) + 2);
    let vkey = vkey_text(&d, "s");
    let check = |seq: u64, args: &[&str], window: u64, sizes: (u64, Option<u64>)| {
        let file = format!("p{seq}-{}.proof", args.join("-"));
        let mut prove = vec!["prove", "s", "--seq"];
        let seq_text = seq.to_string();
        prove.extend([seq_text.as_str(), "--out", &file]);
        prove.extend(args);
        d.ritma(&prove).output().success();
        let json = d
            .ritma(&["verify-proof", &file, "--key", &vkey, "--json"])
            .output()
            .success();
        let v: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert_eq!(v["seq"], seq);
        assert_eq!(v["window"], window);
        assert_eq!(v["checkpoint"]["size"], sizes.0);
        match sizes.1 {
            Some(s) => assert_eq!(v["extension"]["size"], s),
            None => assert!(v["extension"].is_null()),
        }
    };
    // The first event: its own checkpoint (size 1), extended to the newest.
    check(first.seq, &[], first_window.window, (1, Some(windows)));
    // Extended only to a middle size; or not at all.
    check(
        first.seq,
        &["--to-size", "60"],
        first_window.window,
        (1, Some(60)),
    );
    check(
        first.seq,
        &["--to-size", "1"],
        first_window.window,
        (1, None),
    );
    // The last event: the newest checkpoint itself.
    check(last.seq, &[], last_window.window, (windows, None));

    let err = d
        .ritma(&[
            "prove",
            "s",
            "--seq",
            &last.seq.to_string(),
            "--to-size",
            "5",
            "--out",
            "x.proof",
        ])
        .output()
        .failure();
    assert!(
        err.contains(&format!(
            "--to-size 5: the event's window record is leaf {}",
            windows - 1
        )),
        "{err}"
    );
}

#[test]
fn a_seq_outside_the_store_or_a_damaged_store_is_a_clear_error() {
    let d = Dir::new();
    d.sealed_store(&["--events", "2000", "--seed", "5"]);
    let err = d
        .ritma(&["prove", "s", "--seq", "2000", "--out", "p.proof"])
        .output()
        .failure();
    assert!(
        err.contains("seq 2000 is not in the store of node `synth-0`: it holds seqs 0 to 1999"),
        "{err}"
    );
    assert!(!d.join("p.proof").exists());
    let err = d
        .ritma(&["prove", "nowhere", "--seq", "1", "--out", "p.proof"])
        .output()
        .failure();
    assert!(err.contains("not a Ritma store"), "{err}");
    let err = d
        .ritma(&[
            "prove", "s", "--seq", "1", "--node", "web-1", "--out", "p.proof",
        ])
        .output()
        .failure();
    assert!(err.contains("holds node `synth-0`, not `web-1`"), "{err}");

    // A window record changed on disk: the error names its file.
    let (window, _) = events(&d.join("s"))
        .into_iter()
        .find(|(_, a)| a.seq == 10)
        .unwrap();
    let paths = ritma_sinks::store::WindowPaths::new(window.window, window.window_len_ns);
    let record = d.join("s").join(paths.record());
    let mut bytes = std::fs::read(&record).unwrap();
    let n = bytes.len();
    bytes[n - 1] ^= 1;
    std::fs::write(&record, &bytes).unwrap();
    let err = d
        .ritma(&["prove", "s", "--seq", "10", "--out", "p.proof"])
        .output()
        .failure();
    assert!(err.contains("store damaged:"), "{err}");
    assert!(err.contains(&paths.hour_dir.display().to_string()), "{err}");
}

#[test]
fn a_multi_node_store_needs_the_node() {
    let d = Dir::new();
    d.two_node_store("30000");
    let err = d
        .ritma(&["prove", "s", "--seq", "3", "--out", "p.proof"])
        .output()
        .failure();
    assert!(
        err.contains("several nodes (synth-0, synth-1); choose one with --node"),
        "{err}"
    );
    d.ritma(&[
        "prove", "s", "--seq", "3", "--node", "synth-1", "--out", "p.proof",
    ])
    .output()
    .success();
    let shown = d
        .ritma(&[
            "verify-proof",
            "p.proof",
            "--key",
            "s/nodes/synth-1/_meta/keys/signing.vkey",
        ])
        .output()
        .success();
    assert_eq!(field(&shown, "OK"), "proof of node synth-1, seq 3");
    // synth-0's key is not synth-1's.
    let err = d
        .ritma(&[
            "verify-proof",
            "p.proof",
            "--key",
            "s/nodes/synth-0/_meta/keys/signing.vkey",
        ])
        .output()
        .failure();
    assert!(
        err.contains("no pinned key is named ritma/synth-1"),
        "{err}"
    );
}
