//! The CAS manifest decoder (FORMAT.md §8.6) on arbitrary bytes. It may refuse anything,
//! but whatever it accepts must be canonical (re-encode to exactly the input) and obey
//! the manifest's rules, and the re-encode guard (`NotCanonical`) must never be what
//! refuses an input.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ritma_schemas::cas_manifest::*;
use ritma_schemas::cbor::DecodeErrorKind;
use ritma_schemas::records::Record;

fuzz_target!(|data: &[u8]| {
    match CasManifest::decode(data) {
        Ok(m) => {
            assert_eq!(m.encode(), data, "accepted a non-canonical encoding");
            assert!(m.size <= MAX_BLOB_LEN && m.chunks.len() <= MAX_CHUNKS);
            assert!(m
                .chunks
                .iter()
                .all(|c| (1..=MAX_CHUNK_LEN).contains(&c.len)));
            assert_eq!(m.chunks.iter().map(|c| c.len as u64).sum::<u64>(), m.size);
        }
        Err(e) => {
            assert_ne!(
                e.kind,
                DecodeErrorKind::NotCanonical,
                "re-encode guard fired: {e}"
            );
            assert!(e.offset <= data.len());
            assert_eq!(e.record, "CasManifest");
            let _ = e.to_string();
        }
    }
});
