//! Trace frames (FORMAT.md §7.2) whose bodies are the fuzzer's, sealed under a valid
//! checksum so the frame-body decoders (raw events of every kind, run, cgroups, loss,
//! clock, exes, blob, health and continue payloads) meet them: a run frame, the fuzzed frame, then a
//! valid batch. The reader must not panic, must read on past a refused frame, and a batch
//! it accepts from the fuzzed frame re-encodes to exactly its payload.
//!
//! Input: kind (1 byte, mod 11), run (1 byte, mod 3), first seq (1 byte), event count
//! (4 bytes, big-endian), then the payload.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ritma_schemas::records::{Record, RunMeta};
use ritma_sources::trace::{encode_frame, TraceItem, TraceReader, FILE_MAGIC};

fn meta() -> RunMeta {
    RunMeta {
        node: "n1".into(),
        boot_id: [1; 16],
        sensor_version: "fuzz".into(),
        config_digest: [2; 32],
        window_len_ns: 1_000_000_000,
        wall_minus_mono_ns: 1_700_000_000_000_000_000,
        first_seq: 0,
        started_wall_ns: 1_700_000_000_000_000_000,
    }
}

fuzz_target!(|data: &[u8]| {
    if data.len() < 7 {
        return;
    }
    let (kind, run, first_seq) = (data[0] % 11, u16::from(data[1] % 3), u64::from(data[2]));
    let count = u32::from_be_bytes(data[3..7].try_into().expect("4 bytes"));
    let raw = &data[7..];
    let mut file = FILE_MAGIC.to_vec();
    file.extend(encode_frame(1, 0, 0, 0, &meta().encode()).expect("frame"));
    file.extend(encode_frame(kind, run, first_seq, count, raw).expect("frame"));
    // A valid (empty-bodied) clock frame after it: reading must get past the fuzzed one.
    file.extend(encode_frame(5, 0, 0, 0, &[0x81, 0x05]).expect("frame"));
    let path = std::env::temp_dir().join(format!("ritma-fuzz-{}.rtrace", std::process::id()));
    std::fs::write(&path, &file).expect("temp file");
    let mut r = TraceReader::open(&path).expect("magic");
    let mut at = 0;
    for _ in 0..8 {
        match r.next_item() {
            Ok(Some(TraceItem::Batch { events, .. })) if at == 1 => {
                let mut again = Vec::new();
                for e in &events {
                    e.encode_into(&mut again);
                }
                assert_eq!(again, raw, "a batch read other than its payload");
                assert_eq!(events.len() as u32, count);
                at += 1;
            }
            Ok(Some(_)) => at += 1,
            Ok(None) => break,
            Err(_) => match r.skip_corrupt() {
                Ok(Some(_)) => at += 1,
                _ => break,
            },
        }
    }
    assert!(at >= 2, "the frames after a refused one are read");
});
