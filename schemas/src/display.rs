//! How a reader sees records: the FORMAT.md names of event types and dictionary kinds, and
//! dictionary values as text. `ritma query`, `ritma prove` and the analyst tables (ClickHouse,
//! Parquet) all print through these, so one event reads the same everywhere.

use crate::cbor::Decoder;
use crate::records::{DictEntry, DictKind, EventType};

/// FORMAT.md §3 names of dictionary kinds 1–10.
const DICT_KIND_NAMES: [&str; 10] = [
    "path",
    "exe",
    "comm",
    "argv",
    "flow",
    "container",
    "service",
    "env",
    "cgroup",
    "name",
];

/// An event type's name (`exec`, `open` …).
pub fn event_type_name(t: EventType) -> String {
    t.name().to_owned()
}

/// A dictionary kind's name (`path`, `flow` …), or `kind N`.
pub fn dict_kind_name(k: DictKind) -> String {
    let n = k.as_u64();
    DICT_KIND_NAMES
        .get((n as usize).wrapping_sub(1))
        .map_or_else(|| format!("kind {n}"), |s| (*s).to_owned())
}

/// Lowercase hex, as ids and hashes are printed.
pub fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Bytes as text: UTF-8 where they are, escapes elsewhere.
fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).escape_debug().to_string()
}

/// A flow value's IP address and port (FORMAT.md §3.1); `None` for a unix socket or an
/// unknown family.
pub fn flow_endpoint(v: &[u8]) -> Option<(std::net::IpAddr, u16)> {
    match v {
        [0, 2, a, b, c, d, p0, p1] => {
            Some(([*a, *b, *c, *d].into(), u16::from_be_bytes([*p0, *p1])))
        }
        [0, 10, rest @ ..] if rest.len() == 18 => {
            let addr: [u8; 16] = rest[..16].try_into().expect("16 bytes");
            Some((addr.into(), u16::from_be_bytes([rest[16], rest[17]])))
        }
        _ => None,
    }
}

/// A flow value (FORMAT.md §3.1: family, address, port) as `addr:port`.
fn flow(v: &[u8]) -> String {
    let port = |p: &[u8]| u16::from_be_bytes([p[0], p[1]]);
    match v {
        [0, 2, a, b, c, d, p @ ..] if p.len() == 2 => format!("{a}.{b}.{c}.{d}:{}", port(p)),
        [0, 10, rest @ ..] if rest.len() == 18 => {
            let addr: [u8; 16] = rest[..16].try_into().expect("16 bytes");
            format!("[{}]:{}", std::net::Ipv6Addr::from(addr), port(&rest[16..]))
        }
        [0, 1, path @ ..] => format!("unix:{}", text(path)),
        _ => format!("flow {}", hex(v)),
    }
}

/// An argv value (a CBOR array of byte strings) as space-separated words.
fn argv(v: &[u8]) -> String {
    let mut d = Decoder::new(v, "argv");
    let words: Option<Vec<String>> = d.array("argv", 4096).ok().and_then(|n| {
        (0..n)
            .map(|_| d.bytes("argv", v.len() as u64).ok().map(text))
            .collect()
    });
    match words {
        Some(w) if d.finish().is_ok() => w.join(" "),
        _ => format!("argv {}", hex(v)),
    }
}

/// A dictionary entry's value as a reader wants it.
pub fn dict_value(d: &DictEntry) -> String {
    if d.hashed {
        return format!("(too long; BLAKE3 {})", hex(&d.value));
    }
    match d.kind {
        DictKind::Flow => flow(&d.value),
        DictKind::Argv => argv(&d.value),
        _ => text(&d.value),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flows_and_argv_render() {
        assert_eq!(flow(&[0, 2, 10, 0, 0, 5, 1, 187]), "10.0.0.5:443");
        assert_eq!(
            flow_endpoint(&[0, 2, 10, 0, 0, 5, 1, 187]),
            Some(([10, 0, 0, 5].into(), 443))
        );
        let mut v6 = vec![0, 10];
        v6.extend([0; 15]);
        v6.extend([1, 0, 80]);
        assert_eq!(flow(&v6), "[::1]:80");
        assert_eq!(
            flow_endpoint(&v6),
            Some((std::net::Ipv6Addr::LOCALHOST.into(), 80))
        );
        assert_eq!(flow(b"\x00\x01/run/x.sock"), "unix:/run/x.sock");
        assert_eq!(flow_endpoint(b"\x00\x01/run/x.sock"), None);
        assert_eq!(flow_endpoint(&[0, 2, 10, 0, 0, 5, 1]), None);
        let mut e = crate::cbor::Encoder::new();
        e.array(2).bytes(b"cat").bytes(b"/etc/passwd");
        assert_eq!(argv(&e.into_bytes()), "cat /etc/passwd");
    }
}
