//! Signed-note and checkpoint parsing on arbitrary text, against a fixed node key
//! (seed [7; 32], name "ritma/web-1"; `examples/gen_seeds.rs` writes a genuine note signed
//! by it into seeds/signed_note so mutations start from a valid signature).
//!
//! Checks: parsing is exact (a parsed note prints back to its text, a parsed checkpoint
//! body and key text likewise), and nothing but the genuine checkpoint ever verifies.
#![no_main]

use std::fmt::Write as _;
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use ritma_schemas::cosignature::{CosignatureVerifier, Cosigner};
use ritma_schemas::keys::{sign_key_event, KeyHistory};
use ritma_schemas::note::{parse_note, verify_note, Checkpoint, NoteSigner, NoteVerifier};
use ritma_schemas::records::{KeyEvent, KeyEventKind};

const NODE: &str = "web-1";
const ORIGIN: &str = "ritma/web-1";

struct Fixed {
    verifier: NoteVerifier,
    history: KeyHistory,
    checkpoint: Checkpoint,
    /// The witness `witness.example/w1` of seed 05…05 (the seeds' cosigner).
    witness: CosignatureVerifier,
}

fn fixed() -> &'static Fixed {
    static F: OnceLock<Fixed> = OnceLock::new();
    F.get_or_init(|| {
        let signer = NoteSigner::from_seed(ORIGIN, [7; 32]).unwrap();
        let verifier = signer.verifier();
        let mut history = KeyHistory::new(NODE).unwrap();
        let add = KeyEvent {
            node: NODE.into(),
            kind: KeyEventKind::Add,
            public_key: verifier.public_key(),
            log_size: 0,
            previous_key: None,
        };
        history.apply(&sign_key_event(&add, &signer)).unwrap();
        let checkpoint =
            Checkpoint::for_node(NODE, 1234, std::array::from_fn(|i| i as u8)).unwrap();
        let witness = Cosigner::from_seed("witness.example/w1", [5; 32])
            .unwrap()
            .verifier();
        Fixed {
            verifier,
            history,
            checkpoint,
            witness,
        }
    })
}

fn b64(raw: &[u8]) -> String {
    // Standard padded base64, written out here so the check does not reuse the parser's crate.
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut s = String::new();
    for c in raw.chunks(3) {
        let n = (c[0] as u32) << 16
            | (*c.get(1).unwrap_or(&0) as u32) << 8
            | *c.get(2).unwrap_or(&0) as u32;
        for i in 0..4 {
            if i <= c.len() {
                s.push(A[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                s.push('=');
            }
        }
    }
    s
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let f = fixed();
    if let Ok(n) = parse_note(text) {
        let mut again = format!("{}\n", n.body);
        for s in &n.signatures {
            let mut raw = s.key_id.to_be_bytes().to_vec();
            raw.extend_from_slice(&s.signature);
            writeln!(again, "\u{2014} {} {}", s.name, b64(&raw)).unwrap();
        }
        assert_eq!(again, text, "parse_note is not exact");
    }
    if let Ok(body) = verify_note(text, &f.verifier) {
        assert_eq!(body, f.checkpoint.body(), "a different body verified");
    }
    if let Ok(cp) = Checkpoint::verify(text, &f.verifier) {
        assert_eq!(cp, f.checkpoint, "a different checkpoint verified");
    }
    if let Ok(cp) = f.history.verify_checkpoint(text) {
        assert_eq!(cp, f.checkpoint);
    }
    if let Ok(cp) = Checkpoint::parse_body(text) {
        assert_eq!(cp.body(), text, "parse_body is not exact");
    }
    if let Ok(k) = NoteVerifier::from_vkey(text) {
        assert_eq!(k.to_vkey(), text);
    }
    if let Ok(k) = NoteSigner::from_private_key_text(text) {
        assert_eq!(k.to_private_key_text(), text);
    }
    // Witness cosignatures (FORMAT §4.4): key texts exact; only the fixed checkpoint, as
    // the fixed witness cosigned it, verifies.
    if let Ok(k) = CosignatureVerifier::from_vkey(text) {
        assert_eq!(k.to_vkey(), text);
    }
    if let Ok(k) = Cosigner::from_private_key_text(text) {
        assert_eq!(k.to_private_key_text(), text);
    }
    if let Ok(t) = f.witness.verify(text) {
        let body = parse_note(text).expect("verified").body;
        assert_eq!(body, f.checkpoint.body(), "a cosignature of another body verified");
        assert!(t <= ritma_schemas::cosignature::MAX_TIMESTAMP);
    }
});
