//! `ritma case`: windows named and frozen against retention, an access log of every
//! action, M-of-N approvals to unfreeze, and forged or broken cases caught by verify.

use crate::util::{copy_tree, Dir, OutputExt};
use ritma_schemas::case::{CaseAction, CaseEntry, CaseManifest, CaseState};
use ritma_schemas::keys::sign_record;
use ritma_schemas::records::{Record, SignedRecord};
use std::path::{Path, PathBuf};

/// Synth trace start: 2026-11-01T00:00:00Z.
const START_S: u64 = 1_793_491_200;
/// The first 1-minute window of the trace.
const FIRST_WINDOW: u64 = START_S / 60;

/// A store of four hours of 1-minute windows (hours 00, 01, 02 sealed), two approver
/// keys `alice.key` and `bob.key` (with `.vkey` beside them), and case IR-1 needing both.
fn store_with_case() -> Dir {
    let d = Dir::new();
    d.sealed_store(&["--events", "12000", "--rate", "1", "--window-ms", "60000"]);
    for who in ["alice", "bob"] {
        d.ritma(&["keys", "new", who, "--out", &format!("{who}.key")])
            .output()
            .success();
    }
    let out = d
        .ritma(&[
            "case",
            "open",
            "s",
            "IR-1",
            "--title",
            "lateral movement",
            "--approver",
            "alice.key.vkey",
            "--approver",
            "bob.key.vkey",
        ])
        .output()
        .success();
    assert!(out.contains("needs 2 of 2 approvers"), "{out}");
    d
}

fn keep_all_sealed(d: &Dir, apply: bool) -> String {
    let mut args = vec!["retention", "s", "--keep", "1s"];
    if apply {
        args.push("--apply");
    }
    d.ritma(&args).output().success()
}

fn manifest_path(s: &Path) -> PathBuf {
    s.join("cases/CASE_IR-1/manifest.cbor")
}

/// The manifest of `case` in store `s`.
fn manifest2(s: &Path, case: &str) -> CaseManifest {
    let bytes = std::fs::read(s.join(format!("cases/CASE_{case}/manifest.cbor"))).unwrap();
    CaseManifest::decode(&SignedRecord::decode(&bytes).unwrap().body).unwrap()
}

fn manifest(s: &Path) -> CaseManifest {
    manifest2(s, "IR-1")
}

#[test]
fn a_frozen_case_keeps_its_hours_until_m_of_n_approvers_unfreeze_it() {
    let d = store_with_case();
    let s = d.join("s");
    let out = d
        .ritma(&[
            "case",
            "add",
            "s",
            "IR-1",
            "--from",
            "2026-11-01T00:30:00Z",
            "--to",
            "2026-11-01T00:35:00Z",
        ])
        .output()
        .success();
    assert!(out.contains("5 windows match"), "{out}");
    // Unix seconds work as well: one window of hour 02.
    let t = (START_S + 2 * 3600 + 600).to_string();
    let t2 = (START_S + 2 * 3600 + 660).to_string();
    d.ritma(&["case", "add", "s", "IR-1", "--from", &t, "--to", &t2])
        .output()
        .success();
    let err = d
        .ritma(&["case", "add", "s", "IR-1", "--from", "2027-01-01T00:00:00Z"])
        .output()
        .failure();
    assert!(err.contains("no sealed window matches"), "{err}");
    let m = manifest(&s);
    assert_eq!(
        m.windows,
        [
            (FIRST_WINDOW + 30, FIRST_WINDOW + 34),
            (FIRST_WINDOW + 130, FIRST_WINDOW + 130)
        ]
    );
    d.ritma(&["case", "freeze", "s", "IR-1"]).output().success();

    // Retention deletes hour 01 only: 00 and 02 hold frozen windows.
    let out = keep_all_sealed(&d, true);
    assert!(
        out.contains("keep hour 2026-11-01T00: frozen by case IR-1")
            && out.contains("keep hour 2026-11-01T02: frozen by case IR-1")
            && out.contains("deleted 1 hours"),
        "{out}"
    );
    let out = d
        .ritma(&["verify", "--trust-embedded-key", "s"])
        .output()
        .success();
    assert!(out.contains("1 cases"), "{out}");

    // A frozen case does not close; the unfreeze request names the next log entry.
    let err = d.ritma(&["case", "close", "s", "IR-1"]).output().failure();
    assert!(err.contains("unfrozen before it closes"), "{err}");
    let request = d
        .ritma(&["case", "unfreeze", "s", "IR-1"])
        .output()
        .success();
    assert_eq!(
        request,
        "ritma case unfreeze\nnode synth-0\ncase IR-1\nentry 4\n"
    );
    std::fs::write(d.join("req"), &request).unwrap();
    d.ritma(&["case", "approve", "req", "--key", "alice.key", "--out", "a"])
        .output()
        .success();
    // One of two approvers is not enough, nor is the same approver twice.
    for approvals in [&["a"][..], &["a", "a"]] {
        let mut args = vec!["case", "unfreeze", "s", "IR-1"];
        for a in approvals {
            args.extend(["--approval", a]);
        }
        let err = d.ritma(&args).output().failure();
        assert!(
            err.contains("approved by 1 (alice), 2 approvers needed"),
            "{err}"
        );
    }
    // An approval by a key that is not the case's approver's is refused.
    d.ritma(&["keys", "new", "bob", "--out", "mallory.key"])
        .output()
        .success();
    d.ritma(&[
        "case",
        "approve",
        "req",
        "--key",
        "mallory.key",
        "--out",
        "m",
    ])
    .output()
    .success();
    let err = d
        .ritma(&[
            "case",
            "unfreeze",
            "s",
            "IR-1",
            "--approval",
            "a",
            "--approval",
            "m",
        ])
        .output()
        .failure();
    assert!(err.contains("key id"), "{err}");
    assert_eq!(manifest(&s).state, CaseState::Frozen);
    // Bob cosigns Alice's approval: one file with both signatures.
    d.ritma(&["case", "approve", "a", "--key", "bob.key", "--out", "ab"])
        .output()
        .success();
    let out = d
        .ritma(&["case", "unfreeze", "s", "IR-1", "--approval", "ab"])
        .output()
        .success();
    assert!(out.contains("approval of alice, bob"), "{out}");

    // Unfrozen, its hours go; the case stays and verifies; the log has every action.
    let out = keep_all_sealed(&d, true);
    assert!(out.contains("deleted 2 hours"), "{out}");
    // Its windows are gone now: they can no longer be frozen or exported.
    let err = d.ritma(&["case", "freeze", "s", "IR-1"]).output().failure();
    assert!(
        err.contains("retention deleted: they cannot be frozen"),
        "{err}"
    );
    let err = d
        .ritma(&["case", "export", "s", "IR-1", "--out", "b"])
        .output()
        .failure();
    assert!(err.contains("they cannot be exported"), "{err}");
    assert!(!d.join("b").exists());
    d.ritma(&["case", "close", "s", "IR-1"]).output().success();
    let err = d
        .ritma(&["case", "add", "s", "IR-1", "--from", "0"])
        .output()
        .failure();
    assert!(err.contains("the case is closed"), "{err}");
    let out = d
        .ritma(&["verify", "--trust-embedded-key", "s"])
        .output()
        .success();
    assert!(
        out.contains("1 cases") && out.contains("3 hours deleted"),
        "{out}"
    );
    let m = manifest(&s);
    let actions: Vec<_> = m.log.iter().map(|e| e.action.name()).collect();
    assert_eq!(
        actions,
        ["open", "add", "add", "freeze", "unfreeze", "close"]
    );
    assert_eq!(m.log[4].approvals.len(), 1);
    let out = d
        .ritma(&["case", "show", "s", "IR-1", "--json"])
        .output()
        .success();
    assert!(
        out.contains("\"state\":\"closed\"") && out.contains("\"window_count\":6"),
        "{out}"
    );
}

/// Writes `m` as the case's manifest, signed by the store's key.
fn forge(d: &Dir, m: &CaseManifest) {
    let signer = ritma_sinks::keys::load_private_key(&d.join("s/_meta/keys/signing.key")).unwrap();
    std::fs::write(
        manifest_path(&d.join("s")),
        sign_record(m.encode(), &signer).encode(),
    )
    .unwrap();
}

fn verify_fails(d: &Dir, code: &str, detail: &str) {
    let err = d
        .ritma(&["verify", "--trust-embedded-key", "s"])
        .output()
        .failure();
    assert!(
        err.contains(code) && err.contains(detail),
        "{code} {detail}: {err}"
    );
}

#[test]
fn forged_or_broken_cases_are_caught() {
    let d = store_with_case();
    let s = d.join("s");
    d.ritma(&[
        "case",
        "add",
        "s",
        "IR-1",
        "--from",
        "2026-11-01T00:10:00Z",
        "--to",
        "2026-11-01T00:11:00Z",
    ])
    .output()
    .success();
    d.ritma(&["case", "freeze", "s", "IR-1"]).output().success();
    let good = manifest(&s);
    let good_bytes = std::fs::read(manifest_path(&s)).unwrap();
    d.ritma(&["verify", "--trust-embedded-key", "s"])
        .output()
        .success();

    // A flipped byte in the signature, and a manifest signed by another key.
    let mut b = good_bytes.clone();
    let n = b.len();
    b[n - 3] ^= 1;
    std::fs::write(manifest_path(&s), &b).unwrap();
    verify_fails(&d, "E_SIGNATURE", "manifest.cbor");
    let other = ritma_schemas::note::NoteSigner::from_seed("ritma/synth-0", [9; 32]).unwrap();
    std::fs::write(
        manifest_path(&s),
        sign_record(good.encode(), &other).encode(),
    )
    .unwrap();
    verify_fails(&d, "E_SIGNATURE", "manifest.cbor");

    // Unfrozen without approvals, even when signed with the store's key.
    let mut m = good.clone();
    m.log.push(CaseEntry {
        wall_ns: 1,
        user: "root".into(),
        action: CaseAction::Unfreeze,
        detail: String::new(),
        approvals: vec!["ritma case unfreeze\n\n— alice AAAA\n".into()],
    });
    m.state = CaseState::Open;
    forge(&d, &m);
    verify_fails(&d, "E_CASE", "entry 3 (unfreeze)");
    // The state must be the log's.
    let mut m = good.clone();
    m.state = CaseState::Open;
    forge(&d, &m);
    verify_fails(&d, "E_CASE", "the access log leads to a case frozen");
    // Windows the store never held; a log size it never reached (rolled back).
    let mut m = good.clone();
    m.windows = vec![
        (FIRST_WINDOW + 10, FIRST_WINDOW + 10),
        (FIRST_WINDOW + 900, FIRST_WINDOW + 900),
    ];
    forge(&d, &m);
    verify_fails(&d, "E_CASE", "the node log holds");
    let mut m = good.clone();
    m.log_size = 999;
    forge(&d, &m);
    verify_fails(&d, "E_CASE", "rolled back");
    // Another case's manifest in this case's directory.
    let mut m = good.clone();
    m.case = "IR-2".into();
    forge(&d, &m);
    verify_fails(&d, "E_LAYOUT", "not of this directory");
    std::fs::write(manifest_path(&s), &good_bytes).unwrap();
    d.ritma(&["verify", "--trust-embedded-key", "s"])
        .output()
        .success();

    // A stray file in the case, and a case directory without a manifest.
    std::fs::write(s.join("cases/CASE_IR-1/notes.txt"), b"x").unwrap();
    verify_fails(&d, "E_EXTRA", "not a file of a case");
    std::fs::remove_file(s.join("cases/CASE_IR-1/notes.txt")).unwrap();
    std::fs::create_dir(s.join("cases/CASE_IR-3")).unwrap();
    verify_fails(&d, "E_MISSING", "without its manifest");
    std::fs::remove_dir(s.join("cases/CASE_IR-3")).unwrap();

    // Retention that ignored the freeze: the frozen window's hour deleted anyway (the case
    // unfrozen for the deletion and its manifest put back afterwards).
    let mut m = good.clone();
    m.state = CaseState::Open;
    m.log.truncate(2);
    forge(&d, &m);
    keep_all_sealed(&d, true);
    std::fs::write(manifest_path(&s), &good_bytes).unwrap();
    verify_fails(&d, "E_RETENTION", "case IR-1 holds frozen");
}

#[test]
fn an_exported_case_verifies_on_its_own_and_any_change_to_it_is_caught() {
    let d = store_with_case();
    for (from, to) in [
        ("2026-11-01T00:30:00Z", "2026-11-01T00:35:00Z"),
        ("2026-11-01T02:10:00Z", "2026-11-01T02:11:00Z"),
    ] {
        d.ritma(&["case", "add", "s", "IR-1", "--from", from, "--to", to])
            .output()
            .success();
    }
    let out = d
        .ritma(&["case", "export", "s", "IR-1", "--out", "b"])
        .output()
        .success();
    assert!(out.contains("exported 6 windows"), "{out}");
    let err = d
        .ritma(&["case", "export", "s", "IR-1", "--out", "b"])
        .output()
        .failure();
    assert!(err.contains("never written into"), "{err}");
    // The export is in the store's access log; the bundle holds the case as it was before.
    let m = manifest(&d.join("s"));
    assert_eq!(m.log.last().unwrap().action, CaseAction::Export);
    d.ritma(&["verify", "--trust-embedded-key", "s"])
        .output()
        .success();

    // Elsewhere, with nothing but the bundle (and the node's key to pin).
    let elsewhere = Dir::new();
    copy_tree(&d.join("b"), &elsewhere.join("b"));
    std::fs::copy(
        d.join("s/_meta/keys/signing.vkey"),
        elsewhere.join("node.vkey"),
    )
    .unwrap();
    let out = elsewhere
        .ritma(&["verify", "b", "--key", "node.vkey"])
        .output()
        .success();
    assert!(
        out.contains("OK case IR-1 of synth-0") && out.contains("6 windows"),
        "{out}"
    );
    let out = elsewhere
        .ritma(&["verify", "--trust-embedded-key", "b", "--json"])
        .output()
        .success();
    assert!(
        out.contains("\"windows\":6") && out.contains("\"state\":\"open\""),
        "{out}"
    );
    std::fs::copy(d.join("alice.key.vkey"), elsewhere.join("alice.vkey")).unwrap();
    let err = elsewhere
        .ritma(&["verify", "b", "--key", "alice.vkey"])
        .output()
        .failure();
    assert!(err.contains("E_KEYS"), "{err}");

    // A changed byte in any file of the bundle fails.
    let b = elsewhere.join("b");
    let files = crate::util::tree(&b);
    assert!(files.len() > 20, "{}", files.len());
    for (rel, bytes) in &files {
        let mut changed = bytes.clone();
        let i = changed.len() / 2;
        changed[i] ^= 0x20;
        std::fs::write(b.join(rel), &changed).unwrap();
        let err = elsewhere
            .ritma(&["verify", "--trust-embedded-key", "b"])
            .output()
            .failure();
        assert!(err.contains("E_"), "{}: {err}", rel.display());
        std::fs::write(b.join(rel), bytes).unwrap();
    }
    // A window removed, a file added, the private key shipped, an older checkpoint.
    let record = files
        .keys()
        .find(|p| p.to_string_lossy().ends_with("w0031.cbor"))
        .unwrap()
        .clone();
    std::fs::remove_file(b.join(&record)).unwrap();
    let err = elsewhere
        .ritma(&["verify", "--trust-embedded-key", "b"])
        .output()
        .failure();
    assert!(
        err.contains("E_MISSING") && err.contains("w0031.cbor"),
        "{err}"
    );
    std::fs::write(b.join(&record), &files[&record]).unwrap();
    std::fs::write(b.join("windows/notes.txt"), b"x").unwrap();
    let err = elsewhere
        .ritma(&["verify", "--trust-embedded-key", "b"])
        .output()
        .failure();
    assert!(err.contains("E_EXTRA"), "{err}");
    std::fs::remove_file(b.join("windows/notes.txt")).unwrap();
    std::fs::copy(
        d.join("s/_meta/keys/signing.key"),
        b.join("_meta/keys/signing.key"),
    )
    .unwrap();
    let err = elsewhere
        .ritma(&["verify", "--trust-embedded-key", "b"])
        .output()
        .failure();
    assert!(
        err.contains("E_EXTRA") && err.contains("private key"),
        "{err}"
    );
    std::fs::remove_file(b.join("_meta/keys/signing.key")).unwrap();
    let sig = record.with_extension("sig");
    std::fs::copy(b.join(&sig), b.join("checkpoint.sig")).unwrap();
    let err = elsewhere
        .ritma(&["verify", "--trust-embedded-key", "b"])
        .output()
        .failure();
    assert!(err.contains("E_CHECKPOINT"), "{err}");
    std::fs::write(
        b.join("checkpoint.sig"),
        &files[Path::new("checkpoint.sig")],
    )
    .unwrap();
    elsewhere
        .ritma(&["verify", "--trust-embedded-key", "b"])
        .output()
        .success();
}

/// A key `alice.key` and the command opening `case` in store `s` with her as its approver.
fn open_with_alice(d: &Dir, case: &str) -> std::process::Command {
    d.ritma(&["keys", "new", "alice", "--out", "alice.key"])
        .output()
        .success();
    d.ritma(&[
        "case",
        "open",
        "s",
        case,
        "--title",
        case,
        "--approver",
        "alice.key.vkey",
    ])
}

/// The access log records the real uid (and its name), not whatever `$USER` says: a
/// name from the environment is kept only as a claim.
#[test]
fn the_access_log_records_the_real_uid_and_the_claimed_name_as_a_claim() {
    let d = Dir::new();
    d.sealed_store(&["--events", "2000", "--rate", "1000"]);
    open_with_alice(&d, "IR-9")
        .env("SUDO_USER", "mallory")
        .env("USER", "mallory")
        .output()
        .success();
    let bytes = std::fs::read(d.join("s/cases/CASE_IR-9/manifest.cbor")).unwrap();
    let manifest = CaseManifest::decode(&SignedRecord::decode(&bytes).unwrap().body).unwrap();
    let user = &manifest.log[0].user;
    // SAFETY: getuid cannot fail.
    let uid = unsafe { libc::getuid() };
    assert!(user.starts_with(&format!("uid {uid} (")), "{user}");
    assert!(user.ends_with(", claims \"mallory\""), "{user}");
}

/// A case over a downtime (FORMAT §7.2): its windows are the sealed ones — the earlier run's,
/// the hours' last windows, the later run's — in ranges split where windows were left out;
/// the bundle names each range's first leaf and verifies on its own.
#[test]
fn a_case_across_a_downtime_exports_and_verifies() {
    let d = Dir::new();
    let t = crate::util::downtime_store(&d);
    open_with_alice(&d, "IR-2").output().success();
    let len_s = t.second.window_len_ns / 1_000_000_000;
    let from = (t.last_window - 3) * len_s;
    let to = t.second.started_wall_ns / 1_000_000_000 + 10;
    d.ritma(&[
        "case",
        "add",
        "s",
        "IR-2",
        "--from",
        &from.to_string(),
        "--to",
        &to.to_string(),
    ])
    .output()
    .success();
    let sealed: Vec<u64> = crate::util::window_leaves(&d.join("s"))
        .iter()
        .map(|(r, _)| r.window)
        .filter(|w| *w * len_s >= from && *w * len_s < to)
        .collect();
    let m = manifest2(&d.join("s"), "IR-2");
    let named: Vec<u64> = m.windows.iter().flat_map(|&(a, b)| a..=b).collect();
    assert_eq!(named, sealed, "the case names exactly the sealed windows");
    assert!(
        m.windows.len() >= 3,
        "ranges split at the downtime: {:?}",
        m.windows
    );
    d.ritma(&["verify", "--trust-embedded-key", "s"])
        .output()
        .success();
    // `query hours` counts the windows each hour holds, not the span of their numbers.
    let per_hour = 3_600_000_000_000 / t.second.window_len_ns;
    let hour_windows = |d: &Dir| -> Vec<(u64, u64)> {
        d.ritma(&["query", "s", "--json", "hours"])
            .output()
            .success()
            .lines()
            .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
            .map(|r| {
                (
                    r["windows"].as_u64().unwrap(),
                    r["events"].as_u64().unwrap(),
                )
            })
            .collect()
    };
    let mut held: std::collections::BTreeMap<u64, (u64, u64)> = Default::default();
    for (r, _) in crate::util::window_leaves(&d.join("s")) {
        let e = held.entry(r.window / per_hour).or_default();
        e.0 += 1;
        e.1 += r.event_count;
    }
    assert_eq!(hour_windows(&d), held.values().copied().collect::<Vec<_>>());
    let out = d
        .ritma(&["case", "export", "s", "IR-2", "--out", "b"])
        .output()
        .success();
    assert!(
        out.contains(&format!("exported {} windows", sealed.len())),
        "{out}"
    );
    let out = d
        .ritma(&["verify", "b", "--key", "s/_meta/keys/signing.vkey"])
        .output()
        .success();
    assert!(out.contains(&format!("{} windows", sealed.len())), "{out}");

    // Retention deletes the sealed hours, the downtime's among them: the first run's hour
    // has fewer sealed windows (node-log leaves) than its span, and the store still verifies.
    d.ritma(&["retention", "s", "--keep", "1s", "--apply"])
        .output()
        .success();
    d.ritma(&["verify", "--trust-embedded-key", "s"])
        .output()
        .success();
    let hour = ritma_sinks::store::WindowPaths::new(t.last_window, t.second.window_len_ns);
    let path = d.join("s").join(&hour.hour_dir).join("proofs/deleted.cbor");
    let signed = SignedRecord::decode(&std::fs::read(&path).unwrap()).unwrap();
    let deletion = ritma_schemas::records::HourDeletion::decode(&signed.body).unwrap();
    assert!(
        deletion.leaves < deletion.last_window - deletion.first_window + 1,
        "{deletion:?}"
    );
    // A deleted hour's windows are its deletion record's leaves.
    assert_eq!(hour_windows(&d)[0], (deletion.leaves, deletion.events));
}
