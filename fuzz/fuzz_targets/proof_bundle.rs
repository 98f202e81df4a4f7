//! The proof bundle decoder and checker (`ritma verify-proof`, FORMAT.md §11) on
//! arbitrary bytes. Seeds (`seeds/proof_bundle`) are genuine proofs made by `ritma prove`
//! from replayed synth stores, one with a consistency extension, so mutations start from
//! bundles that verify.
//!
//! Checks: no panic; an accepted input re-encodes to exactly itself; the re-encode guard
//! (`NotCanonical`) never fires, so every non-canonical form is caught by a rule; decode
//! error offsets lie inside the input; a bundle that verifies has exactly one event, in
//! its window's event section, under a checkpoint that covers its window record; and
//! pinning the proof's own first key never turns a failure into a success.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ritma_schemas::cbor::DecodeErrorKind;
use ritma_schemas::proof_bundle::ProofBundle;
use ritma_schemas::records::Record;

fuzz_target!(|data: &[u8]| {
    let bundle = match ProofBundle::decode(data) {
        Ok(b) => b,
        Err(e) => {
            assert_ne!(e.kind, DecodeErrorKind::NotCanonical, "guard fired: {e}");
            assert!(e.offset <= data.len(), "offset past the end: {e}");
            return;
        }
    };
    assert_eq!(bundle.encode(), data, "accepted a non-canonical encoding");
    match bundle.verify(None) {
        Ok(p) => {
            let w = &p.window;
            let events_start = w.dict_count + w.actor_count;
            assert!(events_start <= p.event_leaf && p.event_leaf < events_start + w.event_count);
            assert!(p.event.seq >= w.first_seq);
            assert!(p.log_index < p.checkpoint.size);
            assert!(p.latest().size >= p.checkpoint.size);
            assert_eq!(bundle.verify(Some(&p.anchor)).map(|q| q.event), Ok(p.event));
        }
        Err(e) => {
            assert!(e.to_string().starts_with(&e.part()), "{e}");
        }
    }
});
