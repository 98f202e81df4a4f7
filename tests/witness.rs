//! Checkpoints that left the node: `ritma witness` cosigns a store's newest checkpoint
//! after checking it extends the one it cosigned before, and `verify --checkpoint` proves
//! a store still extends a saved or cosigned checkpoint, so a tail cut or a rewrite with
//! the node's own key after it is caught (FORMAT.md §4.4).

use crate::util::{copy_tree, forge_window, window_leaves, Dir, OutputExt};
use ritma_schemas::records::{AnyRecord, Record};
use ritma_sinks::store::WindowPaths;

/// A store `s` of node synth-0 over a dozen windows, its vkey in `node.vkey`, a witness
/// key `w.key` (`w.key.vkey`), and the witness's first cosignature in `ws/`.
fn witnessed() -> Dir {
    let d = Dir::new();
    d.sealed_store(&["--events", "6000", "--seed", "4", "--rate", "500"]);
    std::fs::copy(d.join("s/_meta/keys/signing.vkey"), d.join("node.vkey")).unwrap();
    let out = d
        .ritma(&[
            "keys",
            "new",
            "witness.example/w1",
            "--out",
            "w.key",
            "--witness",
        ])
        .output()
        .success();
    assert!(out.contains("witness.example/w1"), "{out}");
    let out = witness(&d, "s").output().success();
    let n = window_leaves(&d.join("s")).len();
    assert!(
        out.contains(&format!("cosigned synth-0 at size {n}:")),
        "{out}"
    );
    d
}

/// `ritma witness STORE` with the witness key, its state `ws/` and the node's key.
fn witness(d: &Dir, store: &str) -> std::process::Command {
    d.ritma(&[
        "witness",
        store,
        "--witness-key",
        "w.key",
        "--state",
        "ws",
        "--key",
        "node.vkey",
    ])
}

/// The windows of store `s`.
fn windows(d: &Dir) -> usize {
    window_leaves(&d.join("s")).len()
}

fn verify_against(d: &Dir, store: &str) -> std::process::Output {
    d.ritma(&[
        "verify",
        store,
        "--key",
        "node.vkey",
        "--checkpoint",
        "ws/synth-0.cosigned",
        "--witness",
        "w.key.vkey",
    ])
    .output()
    .unwrap()
}

#[test]
fn a_cosigned_checkpoint_proves_the_store_extends_it() {
    let d = witnessed();
    let o = verify_against(&d, "s");
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(
        out.contains(&format!(
            "extends the checkpoint ws/synth-0.cosigned (size {}, cosigned by witness.example/w1 at ",
            windows(&d)
        )),
        "{out}"
    );
    // The node's own saved checkpoint works too, without a witness.
    let sig = d.join("s").join(
        WindowPaths::new(window_leaves(&d.join("s"))[4].0.window, 1_000_000_000).checkpoint(),
    );
    std::fs::copy(sig, d.join("w4.sig")).unwrap();
    let out = d
        .ritma(&[
            "verify",
            "s",
            "--key",
            "node.vkey",
            "--checkpoint",
            "w4.sig",
        ])
        .output()
        .success();
    assert!(
        out.contains("extends the checkpoint w4.sig (size 5)"),
        "{out}"
    );
    // But it carries no witness's cosignature.
    let err = d
        .ritma(&[
            "verify",
            "s",
            "--key",
            "node.vkey",
            "--checkpoint",
            "w4.sig",
            "--witness",
            "w.key.vkey",
        ])
        .output()
        .failure();
    assert!(err.contains("E_WITNESS") && err.contains("w4.sig"), "{err}");
    // Cosigning again later extends the first cosignature.
    let out = witness(&d, "s").output().success();
    assert!(out.contains("extends the one cosigned before"), "{out}");
    // A witness pins the nodes' keys.
    let err = d
        .ritma(&[
            "witness",
            "s",
            "--witness-key",
            "w.key",
            "--state",
            "ws",
            "--trust-embedded-key",
        ])
        .output()
        .failure();
    assert!(err.contains("pin their keys"), "{err}");
}

/// Root on the node cuts the newest windows and removes the hour's catalog entry, so the
/// cut looks like an interrupted write: `verify` alone cannot tell, the cosigned checkpoint
/// can, and the witness refuses to cosign it.
#[test]
fn a_tail_cut_after_a_cosigned_checkpoint_is_caught() {
    let d = witnessed();
    copy_tree(&d.join("s"), &d.join("cut"));
    for (record, _) in window_leaves(&d.join("s")).iter().skip(9) {
        let p = WindowPaths::new(record.window, record.window_len_ns);
        for f in [p.record(), p.checkpoint(), p.blocks()] {
            let _ = std::fs::remove_file(d.join("cut").join(f));
        }
    }
    std::fs::remove_dir_all(d.join("cut/catalog")).unwrap();
    let out = d
        .ritma(&["verify", "cut", "--key", "node.vkey"])
        .output()
        .success();
    assert!(out.contains("OK synth-0: 9 windows"), "{out}");
    let o = verify_against(&d, "cut");
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success());
    assert!(
        err.contains("E_CHECKPOINT")
            && err.contains("ws/synth-0.cosigned")
            && err.contains(&format!(
                "signed for {} windows, the store holds 9",
                windows(&d)
            )),
        "{err}"
    );
    let err = witness(&d, "cut").output().failure();
    assert!(
        err.contains("not cosigned") && err.contains("E_CHECKPOINT"),
        "{err}"
    );
}

/// Root with the node's key rewrites an early window and signs every checkpoint again:
/// each signature holds, the cosigned checkpoint does not.
#[test]
fn a_rewrite_signed_with_the_nodes_key_is_caught_by_the_cosigned_checkpoint() {
    let d = witnessed();
    copy_tree(&d.join("s"), &d.join("rw"));
    let key = d.join("s/_meta/keys/signing.key");
    let window = window_leaves(&d.join("s"))[3].0.window;
    forge_window(&d.join("rw"), &key, window, |_, leaves| {
        // The window's last event a nanosecond later: a change a key holder can sign.
        let i = leaves
            .iter()
            .rposition(|l| matches!(AnyRecord::decode(l), Ok(AnyRecord::Event(_))))
            .unwrap();
        let Ok(AnyRecord::Event(mut a)) = AnyRecord::decode(&leaves[i]) else {
            unreachable!()
        };
        a.t_ns += 1;
        leaves[i] = a.encode();
    });
    let o = verify_against(&d, "rw");
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success());
    assert!(
        err.contains("E_CHECKPOINT") && err.contains("the log was rewritten"),
        "{err}"
    );
}
