//! The start-up process snapshot: what the `ritma_snapshot` task iterator writes
//! (present records back to back, README.md "Process snapshot") turned into raw events,
//! one per process, in pid order.

use ritma_sources::raw::{RawBody, RawEvent};

use crate::wire::{decode_record, WireError, HEADER_LEN, RECORD_MAX};

/// The wire kind of a present record (the EventType number of `present`).
pub const PRESENT_KIND: u16 = 19;

/// Decodes the iterator's output: every record must be a whole, valid present record.
/// Returns one event per process, sorted by pid. A process can come more than once: from
/// each live thread when its leader thread has exited (the lowest tid is kept), and the
/// pid namespace's init both as iterated and as the reaper written without its argv (the
/// one with its argv is kept).
pub fn parse_snapshot(bytes: &[u8]) -> Result<Vec<RawEvent>, WireError> {
    let mut events = Vec::new();
    let mut at = 0;
    while at < bytes.len() {
        let rest = &bytes[at..];
        let len = match rest.get(4..8) {
            Some(l) => u32::from_le_bytes(l.try_into().expect("4 bytes")) as usize,
            None => rest.len(),
        };
        if !(HEADER_LEN..=RECORD_MAX).contains(&len) || len > rest.len() {
            return Err(WireError::StreamLength {
                at,
                len,
                remaining: rest.len(),
            });
        }
        let kind = u16::from_le_bytes([rest[0], rest[1]]);
        if kind != PRESENT_KIND {
            return Err(WireError::Kind { found: kind });
        }
        events.push(decode_record(&rest[..len])?);
        at += len;
    }
    events.sort_by_key(|e| (e.task.pid, e.task.tid, argv_missing(e)));
    events.dedup_by_key(|e| e.task.pid);
    Ok(events)
}

/// A present event whose argv could not be copied (none, and marked truncated).
fn argv_missing(e: &RawEvent) -> bool {
    matches!(&e.body, RawBody::Present { argv, argv_truncated: true, .. } if argv.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::WIRE_VERSION;

    /// A present record as the iterator writes it.
    fn record(pid: u32, tid: u32, exe: &[u8], argv: &[u8], argv_total: u32) -> Vec<u8> {
        let len = (HEADER_LEN + 32 + exe.len() + argv.len()) as u32;
        let mut b = Vec::new();
        b.extend(PRESENT_KIND.to_le_bytes());
        b.extend(WIRE_VERSION.to_le_bytes());
        b.extend(len.to_le_bytes());
        for v in [1_000u64 + pid as u64, 500, 20, 4242, 1, 2, 3] {
            b.extend(v.to_le_bytes());
        }
        for v in [pid, tid, 1, 0, 0, 0, 0] {
            b.extend(v.to_le_bytes());
        }
        b.extend(b"sshd\0\0\0\0\0\0\0\0\0\0\0\0");
        b.extend(0u32.to_le_bytes());
        b.extend(0x803u64.to_le_bytes());
        b.extend(77u64.to_le_bytes());
        b.extend(argv_total.to_le_bytes());
        b.extend((exe.len() as u16).to_le_bytes());
        b.extend((argv.len() as u16).to_le_bytes());
        b.extend([0u8; 8]); // no resolution, pad
        b.extend(exe);
        b.extend(argv);
        assert_eq!(b.len(), len as usize);
        b
    }

    #[test]
    fn records_become_present_events_by_pid_one_per_process() {
        // Iterator order is by tid: process 30's leader has exited, so its threads 31 and
        // 35 both report it; process 20 comes after them.
        // Process 1 comes first as the reaper (argv not copied), then as iterated.
        let stream = [
            record(1, 1, b"/usr/lib/systemd/systemd", b"", 26),
            record(30, 35, b"/usr/bin/app", b"app\0-v\0", 7),
            record(30, 31, b"/usr/bin/app", b"app\0-v\0", 7),
            record(20, 20, b"/usr/sbin/sshd", b"sshd\0", 5),
            record(
                1,
                1,
                b"/usr/lib/systemd/systemd",
                b"/sbin/init\0splash\0",
                18,
            ),
        ]
        .concat();
        let events = parse_snapshot(&stream).unwrap();
        let ids: Vec<(u32, u32)> = events.iter().map(|e| (e.task.pid, e.task.tid)).collect();
        assert_eq!(ids, vec![(1, 1), (20, 20), (30, 31)]);
        assert_eq!(events[1].task.comm, b"sshd");
        assert_eq!((events[1].task.start_ns, events[1].mono_ns), (500, 1_020));
        assert_eq!(
            events[2].body,
            RawBody::Present {
                exe: b"/usr/bin/app".to_vec(),
                argv: vec![b"app".to_vec(), b"-v".to_vec()],
                argv_truncated: false,
                exe_dev: 0x803,
                exe_ino: 77,
            }
        );
        assert!(
            matches!(&events[0].body, RawBody::Present { argv, argv_truncated: false, .. } if argv[1] == b"splash")
        );
        // Only the reaper's record: it stays, marked.
        let alone = parse_snapshot(&record(1, 1, b"/init", b"", 26)).unwrap();
        assert!(argv_missing(&alone[0]));
        assert_eq!(parse_snapshot(&[]).unwrap(), Vec::new());
    }

    #[test]
    fn argv_cut_by_the_copy_bound_is_marked_truncated() {
        let e = parse_snapshot(&record(9, 9, b"/bin/x", b"x\0aa", 9000)).unwrap();
        assert!(
            matches!(&e[0].body, RawBody::Present { argv, argv_truncated: true, .. } if argv[1] == b"aa")
        );
    }

    #[test]
    fn a_cut_or_foreign_stream_is_an_error_never_a_panic() {
        let one = record(20, 20, b"/usr/sbin/sshd", b"sshd\0", 5);
        let two = [one.clone(), record(21, 21, b"/bin/sh", b"sh\0", 3)].concat();
        for cut in 1..two.len() {
            if cut == one.len() {
                assert_eq!(parse_snapshot(&two[..cut]).unwrap().len(), 1);
                continue;
            }
            assert!(parse_snapshot(&two[..cut]).is_err(), "cut at {cut}");
        }
        // Another kind of record (an exec) is not part of a snapshot.
        let mut exec = one.clone();
        exec[0] = 1;
        assert_eq!(parse_snapshot(&exec), Err(WireError::Kind { found: 1 }));
        // A length that points before the header's end or past the stream.
        let mut short = one.clone();
        short[4..8].copy_from_slice(&8u32.to_le_bytes());
        assert_eq!(
            parse_snapshot(&short),
            Err(WireError::StreamLength {
                at: 0,
                len: 8,
                remaining: one.len()
            })
        );
        let mut long = two.clone();
        long[one.len() + 4..one.len() + 8].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(matches!(
            parse_snapshot(&long),
            Err(WireError::StreamLength { at, len, .. }) if at == one.len() && len == u32::MAX as usize
        ));
        // Bytes after a length that claims less than the record holds.
        let mut inner = one.clone();
        let l = (one.len() - 1) as u32;
        inner[4..8].copy_from_slice(&l.to_le_bytes());
        assert!(parse_snapshot(&inner).is_err());
        // Garbage: a deterministic xorshift stream, with valid kinds and lengths half
        // the time, decodes or errors without a panic.
        let mut x: u64 = 0x2545_f491_4f6c_dd1d;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        for round in 0..5_000 {
            let n = (next() % 600) as usize;
            let mut buf: Vec<u8> = (0..n).map(|_| next() as u8).collect();
            if round % 2 == 0 && n >= 8 {
                buf[0..2].copy_from_slice(&PRESENT_KIND.to_le_bytes());
                buf[2..4].copy_from_slice(&WIRE_VERSION.to_le_bytes());
                let len = (next() as usize % (n + 1)) as u32;
                buf[4..8].copy_from_slice(&len.to_le_bytes());
            }
            let _ = parse_snapshot(&buf);
        }
    }
}
