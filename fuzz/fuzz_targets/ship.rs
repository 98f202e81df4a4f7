//! What a receiver decodes from the network (FORMAT.md §12): ShipPart and ShipEnvelope
//! values, and parts joined by the PartAssembler. The input is cut into messages at
//! 0xff bytes; each is decoded as a part and pushed. Decoders may refuse anything,
//! but whatever they accept must re-encode to exactly the input, an envelope's paths are
//! plain store paths, and a joined envelope is the one the parts' hash names.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ritma_schemas::records::Record;
use ritma_schemas::ship::*;

fuzz_target!(|data: &[u8]| {
    if let Ok(e) = ShipEnvelope::decode(data) {
        assert_eq!(e.encode(), data, "accepted a non-canonical envelope");
        assert!(e.files.iter().all(|f| is_store_path(&f.path)));
    }
    if let Ok(c) = ShipCursor::decode(data) {
        assert_eq!(c.encode(), data, "accepted a non-canonical cursor");
    }
    let mut join = PartAssembler::default();
    for message in data.split(|&b| b == 0xff).filter(|m| !m.is_empty()) {
        if let Ok(p) = ShipPart::decode(message) {
            assert_eq!(p.encode(), message, "accepted a non-canonical part");
            assert!(p.part < p.parts);
            let (hash, len) = (p.envelope_hash, p.envelope_len);
            if let Ok(Some(env)) = join.push(p) {
                let bytes = env.encode();
                assert_eq!(bytes.len() as u64, len);
                assert_eq!(*blake3::hash(&bytes).as_bytes(), hash);
            }
        }
    }
});
