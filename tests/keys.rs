//! `ritma keys init` and `ritma keys show`.

use crate::util::{Dir, OutputExt};
use std::os::unix::fs::PermissionsExt;

fn field<'a>(out: &'a str, name: &str) -> &'a str {
    out.lines()
        .find_map(|l| l.strip_prefix(name).map(str::trim))
        .unwrap_or_else(|| panic!("no `{name}` in:\n{out}"))
}

#[test]
fn init_creates_a_private_key_only_the_owner_can_read() {
    let d = Dir::new();
    let out = d
        .ritma(&["keys", "init", "--out", "store", "--node", "web-1"])
        .output()
        .success();
    assert_eq!(field(&out, "node:"), "web-1");
    assert_eq!(field(&out, "key name:"), "ritma/web-1");
    let key_id = field(&out, "key id:");
    assert_eq!(key_id.len(), 8);
    let vkey = field(&out, "vkey:");
    assert!(
        vkey.starts_with(&format!("ritma/web-1+{key_id}+")),
        "{vkey}"
    );

    let private = d.join("store/_meta/keys/signing.key");
    let mode = std::fs::metadata(&private).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let text = std::fs::read_to_string(&private).unwrap();
    assert!(text.starts_with(&format!("PRIVATE+KEY+ritma/web-1+{key_id}+")));
    assert_eq!(
        std::fs::read_to_string(d.join("store/_meta/keys/signing.vkey")).unwrap(),
        format!("{vkey}\n")
    );

    // `show` reports the same key and its history: one key valid from size 0.
    let shown = d.ritma(&["keys", "show", "store"]).output().success();
    assert_eq!(field(&shown, "key id:"), key_id);
    assert_eq!(field(&shown, "vkey:"), vkey);
    assert!(shown.contains("matches the public key"), "{shown}");
    assert!(
        shown.contains(&format!("{key_id}  log sizes [0, ∞)")),
        "{shown}"
    );
}

#[test]
fn init_refuses_to_overwrite_a_key() {
    let d = Dir::new();
    d.ritma(&["keys", "init", "--out", "s", "--node", "n1"])
        .output()
        .success();
    let before = std::fs::read(d.join("s/_meta/keys/signing.key")).unwrap();
    let err = d
        .ritma(&["keys", "init", "--out", "s", "--node", "n1"])
        .output()
        .failure();
    assert!(err.contains("already exists"), "{err}");
    assert_eq!(
        std::fs::read(d.join("s/_meta/keys/signing.key")).unwrap(),
        before
    );
}

#[test]
fn a_key_file_readable_by_others_is_refused() {
    let d = Dir::new();
    d.ritma(&["keys", "init", "--out", "s", "--node", "n1"])
        .output()
        .success();
    let private = d.join("s/_meta/keys/signing.key");
    std::fs::set_permissions(&private, std::fs::Permissions::from_mode(0o644)).unwrap();
    let shown = d.ritma(&["keys", "show", "s"]).output().success();
    assert!(
        shown.contains("UNUSABLE") && shown.contains("chmod 600"),
        "{shown}"
    );
}

#[test]
fn node_name_comes_from_the_environment_and_is_validated() {
    let d = Dir::new();
    let out = d
        .ritma(&["keys", "init", "--out", "s"])
        .env("RITMA_NODE_ID", "from-env")
        .output()
        .success();
    assert_eq!(field(&out, "node:"), "from-env");
    let err = d
        .ritma(&["keys", "init", "--out", "t", "--node", "bad name"])
        .output()
        .failure();
    assert!(err.contains("node name `bad name` is invalid"), "{err}");
    assert!(!d.join("t/_meta/keys/signing.key").exists());
}

#[test]
fn show_rejects_a_tampered_key_event() {
    let d = Dir::new();
    d.ritma(&["keys", "init", "--out", "s", "--node", "n1"])
        .output()
        .success();
    let event = d.join("s/_meta/keys/events/00000000.cbor");
    let mut bytes = std::fs::read(&event).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 1; // inside the signature
    std::fs::write(&event, &bytes).unwrap();
    let err = d.ritma(&["keys", "show", "s"]).output().failure();
    assert!(
        err.contains("00000000.cbor") && err.contains("KeyEvent signature does not verify"),
        "{err}"
    );
}

/// Verification needs a key pinned from elsewhere: none is refused (saying how), a
/// directory of trusted keys pins each node of a multi-node store by its name, and a key
/// of another node, or another key of the same name, fails E_KEYS.
#[test]
fn verify_needs_a_pinned_key_and_a_trust_directory_pins_each_node() {
    let d = Dir::new();
    d.two_node_store("20000");
    let err = d.ritma(&["verify", "s"]).output().failure();
    assert!(
        err.contains("no key is pinned") && err.contains("--trust DIR"),
        "{err}"
    );
    let trusted = d.join("trusted");
    std::fs::create_dir_all(&trusted).unwrap();
    for n in ["synth-0", "synth-1"] {
        std::fs::copy(
            d.join(&format!("s/nodes/{n}/_meta/keys/signing.vkey")),
            trusted.join(format!("{n}.vkey")),
        )
        .unwrap();
    }
    let out = d
        .ritma(&["verify", "s", "--trust", "trusted"])
        .output()
        .success();
    assert!(
        out.contains("OK synth-0:") && out.contains("OK synth-1:"),
        "{out}"
    );
    let o = d
        .ritma(&["verify", "s"])
        .env("RITMA_TRUST", &trusted)
        .output();
    o.success();
    // One node's key alone: the other node has no pinned key.
    let vkey0 = trusted.join("synth-0.vkey").display().to_string();
    let err = d
        .ritma(&["verify", "s", "--key", &vkey0])
        .output()
        .failure();
    assert!(
        err.contains("E_KEYS") && err.contains("no pinned key is named ritma/synth-1"),
        "{err}"
    );
    // Another key under synth-1's name: not the anchor of its history.
    let (_, other) = d.signing_key("synth-1");
    std::fs::copy(&other, trusted.join("synth-1.vkey")).unwrap();
    let err = d
        .ritma(&["verify", "s", "--trust", "trusted"])
        .output()
        .failure();
    assert!(err.contains("E_KEYS") && err.contains("synth-1"), "{err}");
    // Pinning and trusting the embedded key at once is a contradiction.
    let err = d
        .ritma(&["verify", "s", "--key", &vkey0, "--trust-embedded-key"])
        .output()
        .failure();
    assert!(err.contains("not both"), "{err}");
}
