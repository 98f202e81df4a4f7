//! The decoders of a store's files outside `AnyRecord`: blocks and id tables, StoreMeta, the
//! hour index, graph edge parts, the taint index, and the daily catalog and accounting.
//! Whatever a decoder accepts must re-encode to exactly the input (a packed block: the
//! packing of the leaves it unpacks to, with a fixed id table), the re-encode guard
//! (`NotCanonical`) must never be what refuses an input, and the type element tells the
//! records apart: at most one decoder accepts.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ritma_schemas::catalog::{DayAccount, DayCatalog};
use ritma_schemas::cbor::{DecodeError, DecodeErrorKind};
use ritma_schemas::index::{ConeRefs, EdgePart, EdgeRefs, TaintIndex, TimeIndex};
use ritma_schemas::packed::{IdTable, PackedBlock};
use ritma_schemas::records::{Record, StoreMeta};

fn re<R: Record>(b: &[u8]) -> Result<Vec<u8>, DecodeError> {
    R::decode(b).map(|r| r.encode())
}

/// A block unpacked with three ids (01…, 02…, 03…) and packed again.
fn repacked(b: &[u8]) -> Result<Vec<u8>, DecodeError> {
    let table = IdTable {
        window: 1_700_000_000,
        ids: (1..=3).map(|i| [i; 16]).collect(),
    };
    PackedBlock::decode(b)?.repacked(&table).map(|p| p.encode())
}

const DECODERS: [fn(&[u8]) -> Result<Vec<u8>, DecodeError>; 10] = [
    repacked,
    re::<IdTable>,
    re::<StoreMeta>,
    re::<TimeIndex>,
    re::<ConeRefs>,
    re::<EdgeRefs>,
    re::<EdgePart>,
    re::<TaintIndex>,
    re::<DayCatalog>,
    re::<DayAccount>,
];

fuzz_target!(|data: &[u8]| {
    let mut accepted = 0;
    for decode in DECODERS {
        match decode(data) {
            Ok(again) => {
                assert_eq!(again, data, "accepted a non-canonical encoding");
                accepted += 1;
            }
            Err(e) => {
                assert_ne!(e.kind, DecodeErrorKind::NotCanonical, "guard fired: {e}");
                assert!(e.offset <= data.len());
                let _ = e.to_string();
            }
        }
    }
    assert!(accepted <= 1);
});
