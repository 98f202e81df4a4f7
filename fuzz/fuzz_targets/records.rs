//! Every record decoder on arbitrary bytes. A decoder may refuse anything, but whatever
//! it accepts must be canonical (re-encode to exactly the input), the typed decoders and
//! `AnyRecord::decode` must agree, and the re-encode guard (`NotCanonical`) must never be
//! what refuses an input: each non-canonical form has to be caught by a rule.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ritma_schemas::cbor::{DecodeError, DecodeErrorKind};
use ritma_schemas::records::*;

fn decode_as(ty: u64, bytes: &[u8]) -> Result<AnyRecord, DecodeError> {
    Ok(match ty {
        1 => AnyRecord::Dict(DictEntry::decode(bytes)?),
        2 => AnyRecord::Event(EventAtom::decode(bytes)?),
        3 => AnyRecord::Actor(ActorRecord::decode(bytes)?),
        4 => AnyRecord::Edge(Edge::decode(bytes)?),
        5 => AnyRecord::Cone(ConeInstance::decode(bytes)?),
        6 => AnyRecord::Window(WindowRecord::decode(bytes)?),
        7 => AnyRecord::Hour(HourSeal::decode(bytes)?),
        8 => AnyRecord::Key(KeyEvent::decode(bytes)?),
        9 => AnyRecord::Run(RunMeta::decode(bytes)?),
        10 => AnyRecord::Health(HealthRecord::decode(bytes)?),
        21 => AnyRecord::Deletion(HourDeletion::decode(bytes)?),
        22 => AnyRecord::Case(ritma_schemas::case::CaseManifest::decode(bytes)?),
        23 => AnyRecord::Export(ritma_schemas::case::CaseExport::decode(bytes)?),
        _ => AnyRecord::Signed(SignedRecord::decode(bytes)?),
    })
}

fuzz_target!(|data: &[u8]| {
    let any = AnyRecord::decode(data);
    match &any {
        Ok(r) => assert_eq!(r.encode(), data, "accepted a non-canonical encoding"),
        Err(e) => {
            assert_ne!(
                e.kind,
                DecodeErrorKind::NotCanonical,
                "re-encode guard fired: {e}"
            );
            assert!(e.offset <= data.len());
            let _ = e.to_string();
        }
    }
    let mut accepted = 0;
    for ty in (1..=11).chain([21, 22, 23]) {
        match decode_as(ty, data) {
            Ok(v) => {
                accepted += 1;
                assert_eq!(v.encode(), data);
                assert_eq!(any.as_ref().ok(), Some(&v));
            }
            Err(e) => assert_ne!(e.kind, DecodeErrorKind::NotCanonical, "guard fired: {e}"),
        }
    }
    assert_eq!(accepted, usize::from(any.is_ok()));
    // A valid signed record's body is itself a record (FORMAT.md §3.11): decode it too.
    if let Ok(AnyRecord::Signed(s)) = &any {
        if let Ok(inner) = AnyRecord::decode(&s.body) {
            assert_eq!(inner.encode(), s.body);
        }
    }
});
