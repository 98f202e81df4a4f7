//! Decoding of ring-buffer records (the layout of `bpf/ritma_event.h`, specified in
//! README.md "Wire format") into raw events. Strict: every record either decodes to exactly
//! one event or to a `WireError`; nothing here panics on input.

use ritma_schemas::path::{canonical_path, join_path};
use ritma_sources::raw::{
    DupCall, DupSource, IdCall, RawBody, RawEvent, SockAddr, Task, MAX_ARGV, MAX_PATH_LEN,
};

pub const WIRE_VERSION: u16 = 2;
pub const HEADER_LEN: usize = 112;
/// Longest path or filename on the wire (a 4096-byte buffer with its NUL).
pub const WIRE_PATH_MAX: usize = 4095;
/// Longest memfd/program/module name on the wire (a 256-byte buffer with its NUL).
pub const WIRE_NAME_MAX: usize = 255;
/// Most argv bytes the exec program copies.
pub const ARGV_BYTES: usize = 8192;
pub const UNIX_PATH_MAX: usize = 108;
/// Largest record the programs emit (their scratch buffer).
pub const RECORD_MAX: usize = 32768;

const AF_UNIX: u16 = 1;
const AF_INET: u16 = 2;
const AF_INET6: u16 = 10;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    #[error("record too short: {need} bytes needed at offset {at}, {len} in the record")]
    Short { at: usize, need: usize, len: usize },
    #[error("record of {len} bytes exceeds the {RECORD_MAX}-byte maximum")]
    TooLong { len: usize },
    #[error("header says {header} bytes, the record has {actual}")]
    LengthMismatch { header: usize, actual: usize },
    #[error("wire version {found}, this decoder reads {WIRE_VERSION}")]
    Version { found: u16 },
    #[error("unknown record kind {found}")]
    Kind { found: u16 },
    #[error("{field} is {value}, expected 0")]
    NonZeroPad { field: &'static str, value: u64 },
    #[error("{field} is {len} bytes, at most {max} allowed")]
    FieldTooLong {
        field: &'static str,
        len: usize,
        max: usize,
    },
    #[error("{used} bytes used by the body, {len} in the record: {trailing} trailing")]
    Trailing {
        used: usize,
        len: usize,
        trailing: usize,
    },
    #[error("argv: {copied} bytes copied of a {total}-byte block")]
    ArgvLength { copied: usize, total: usize },
    #[error("socket address family {family} with a {len}-byte address")]
    AddressLength { family: u16, len: usize },
    #[error("socket address family {family} with port {port}: only inet addresses have one")]
    Port { family: u16, port: u16 },
    #[error("unknown set*id call {found}")]
    IdCall { found: u32 },
    #[error("{field}: resolution kind {found}, expected 0 (none), 1 (file) or 2 (directory)")]
    ResKind { field: &'static str, found: u16 },
    #[error("{field}: a {kind} resolution with {len} bytes for a given path of {given_len} bytes")]
    Resolution {
        field: &'static str,
        kind: &'static str,
        len: usize,
        given_len: usize,
    },
    #[error("exec stdio_net is {found:#x}: only bits 0-2, and none for a present record")]
    StdioNet { found: u8 },
    #[error("fd_dup {field} is {found}")]
    DupField { field: &'static str, found: u32 },
    #[error("module load from_fd flag is {found}, expected 0 or 1")]
    FromFd { found: u32 },
    #[error(
        "record at byte {at} of the stream says {len} bytes with {remaining} left \
         (a record is {HEADER_LEN} to {RECORD_MAX} bytes)"
    )]
    StreamLength {
        at: usize,
        len: usize,
        remaining: usize,
    },
}

/// Bounds-checked little-endian reads over one record.
struct Reader<'a> {
    buf: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], WireError> {
        let end = self.at.checked_add(n).filter(|e| *e <= self.buf.len());
        let end = end.ok_or(WireError::Short {
            at: self.at,
            need: n,
            len: self.buf.len(),
        })?;
        let s = &self.buf[self.at..end];
        self.at = end;
        Ok(s)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], WireError> {
        let mut a = [0u8; N];
        a.copy_from_slice(self.take(N)?);
        Ok(a)
    }

    fn u8(&mut self) -> Result<u8, WireError> {
        Ok(self.take(1)?[0])
    }

    fn u16(&mut self) -> Result<u16, WireError> {
        Ok(u16::from_le_bytes(self.array()?))
    }

    fn u32(&mut self) -> Result<u32, WireError> {
        Ok(u32::from_le_bytes(self.array()?))
    }

    fn u64(&mut self) -> Result<u64, WireError> {
        Ok(u64::from_le_bytes(self.array()?))
    }

    fn i32(&mut self) -> Result<i32, WireError> {
        Ok(i32::from_le_bytes(self.array()?))
    }

    fn i64(&mut self) -> Result<i64, WireError> {
        Ok(i64::from_le_bytes(self.array()?))
    }

    fn zero(&mut self, field: &'static str, width: usize) -> Result<(), WireError> {
        let v = self.take(width)?;
        let value = v.iter().fold(0u64, |acc, b| (acc << 8) | *b as u64);
        if value != 0 {
            return Err(WireError::NonZeroPad { field, value });
        }
        Ok(())
    }

    /// A length field, checked against its bound before any bytes are taken.
    fn len(&mut self, field: &'static str, max: usize) -> Result<usize, WireError> {
        let len = self.u16()? as usize;
        if len > max {
            return Err(WireError::FieldTooLong { field, len, max });
        }
        Ok(len)
    }
}

/// Decodes one ring-buffer record into a raw event with `seq` 0 (the caller assigns seqs).
pub fn decode_record(buf: &[u8]) -> Result<RawEvent, WireError> {
    if buf.len() > RECORD_MAX {
        return Err(WireError::TooLong { len: buf.len() });
    }
    let mut r = Reader { buf, at: 0 };
    let kind = r.u16()?;
    let version = r.u16()?;
    if version != WIRE_VERSION {
        return Err(WireError::Version { found: version });
    }
    let len = r.u32()? as usize;
    if len != buf.len() {
        return Err(WireError::LengthMismatch {
            header: len,
            actual: buf.len(),
        });
    }
    let mono_ns = r.u64()?;
    let start_ns = r.u64()?;
    let parent_start_ns = r.u64()?;
    let cgroup_id = r.u64()?;
    let mnt_ns = r.u64()?;
    let pid_ns = r.u64()?;
    let net_ns = r.u64()?;
    let pid = r.u32()?;
    let tid = r.u32()?;
    let ppid = r.u32()?;
    let uid = r.u32()?;
    let gid = r.u32()?;
    let euid = r.u32()?;
    let egid = r.u32()?;
    let comm = r.take(16)?;
    r.zero("header pad", 4)?;
    let comm_len = comm.iter().position(|b| *b == 0).unwrap_or(comm.len());
    let task = Task {
        pid,
        tid,
        ppid,
        parent_start_ns,
        start_ns,
        uid,
        gid,
        euid,
        egid,
        cgroup_id,
        mnt_ns,
        pid_ns,
        net_ns,
        comm: comm[..comm_len].to_vec(),
    };
    let body = decode_body(&mut r, kind)?;
    if r.at != buf.len() {
        return Err(WireError::Trailing {
            used: r.at,
            len: buf.len(),
            trailing: buf.len() - r.at,
        });
    }
    Ok(RawEvent {
        seq: 0,
        mono_ns,
        task,
        body,
    })
}

fn decode_body(r: &mut Reader<'_>, kind: u16) -> Result<RawBody, WireError> {
    Ok(match kind {
        1 | 19 => decode_exec(r, kind)?,
        20 => decode_dup(r)?,
        2 => {
            let child_pid = r.u32()?;
            r.zero("fork pad", 4)?;
            RawBody::Fork {
                child_pid,
                child_start_ns: r.u64()?,
            }
        }
        3 => {
            let code = r.i32()?;
            r.zero("exit pad", 4)?;
            RawBody::Exit { code }
        }
        4 => {
            let result = r.i64()?;
            let flags = r.u32()?;
            let mode = r.u32()?;
            let path_len = r.len("open path", WIRE_PATH_MAX)?;
            let res_len = r.len("open resolution", WIRE_PATH_MAX)?;
            let res_kind = r.u16()?;
            r.zero("open pad", 2)?;
            let given = r.take(path_len)?;
            let (path, given) = resolve("open", given, r.take(res_len)?, res_kind)?;
            RawBody::Open {
                path,
                given,
                flags,
                mode,
                result,
            }
        }
        5 => {
            let result = r.i64()?;
            let flags = r.u32()?;
            let path_len = r.len("unlink path", WIRE_PATH_MAX)?;
            let res_len = r.len("unlink resolution", WIRE_PATH_MAX)?;
            let res_kind = r.u16()?;
            r.zero("unlink pad", 6)?;
            let given = r.take(path_len)?;
            let (path, given) = resolve("unlink", given, r.take(res_len)?, res_kind)?;
            RawBody::Unlink {
                path,
                given,
                flags,
                result,
            }
        }
        6 => {
            let result = r.i64()?;
            let flags = r.u32()?;
            let old_len = r.len("rename old", WIRE_PATH_MAX)?;
            let new_len = r.len("rename new", WIRE_PATH_MAX)?;
            let old_res_len = r.len("rename old resolution", WIRE_PATH_MAX)?;
            let new_res_len = r.len("rename new resolution", WIRE_PATH_MAX)?;
            let old_kind = r.u16()?;
            let new_kind = r.u16()?;
            let old_given = r.take(old_len)?;
            let new_given = r.take(new_len)?;
            let (old, old_given) =
                resolve("rename old", old_given, r.take(old_res_len)?, old_kind)?;
            let (new, new_given) =
                resolve("rename new", new_given, r.take(new_res_len)?, new_kind)?;
            RawBody::Rename {
                old,
                new,
                old_given,
                new_given,
                flags,
                result,
            }
        }
        7..=9 => {
            let result = r.i64()?;
            let addr = decode_sockaddr(r)?;
            match kind {
                7 => RawBody::Connect { addr, result },
                8 => RawBody::Accept { addr, result },
                _ => RawBody::Bind { addr, result },
            }
        }
        10 => {
            let result = r.i64()?;
            let backlog = r.u32()?;
            r.zero("listen pad", 4)?;
            RawBody::Listen { backlog, result }
        }
        11 => {
            let result = r.i64()?;
            let request = r.u64()?;
            let target_start_ns = r.u64()?;
            let target_pid = r.u32()?;
            r.zero("ptrace pad", 4)?;
            RawBody::Ptrace {
                request,
                target_pid,
                target_start_ns,
                result,
            }
        }
        12 | 13 => {
            let result = r.i64()?;
            let found = r.u32()?;
            let call = match found {
                1 => IdCall::Set,
                2 => IdCall::SetRe,
                3 => IdCall::SetRes,
                4 => IdCall::SetFs,
                _ => return Err(WireError::IdCall { found }),
            };
            let ids = [r.u32()?, r.u32()?, r.u32()?];
            if kind == 12 {
                RawBody::SetUid { call, ids, result }
            } else {
                RawBody::SetGid { call, ids, result }
            }
        }
        14 => RawBody::CapSet {
            result: r.i64()?,
            effective: r.u64()?,
            permitted: r.u64()?,
            inheritable: r.u64()?,
        },
        15..=17 => decode_named(r, kind)?,
        found => return Err(WireError::Kind { found }),
    })
}

/// The canonical path of a given path and its resolution (README "Paths"), and the given
/// path when it differs: the resolved file, or the given path joined with its directory,
/// or the given path alone, made canonical (FORMAT.md §3.2). A path that would be longer
/// than a path may be (4096 bytes) is the given path alone, made canonical.
fn resolve(
    field: &'static str,
    given: &[u8],
    res: &[u8],
    kind: u16,
) -> Result<(Vec<u8>, Option<Vec<u8>>), WireError> {
    let wrong = |kind| WireError::Resolution {
        field,
        kind,
        len: res.len(),
        given_len: given.len(),
    };
    let resolved = match kind {
        0 if res.is_empty() => None,
        0 => return Err(wrong("none")),
        1 if res.starts_with(b"/") => Some(res.to_vec()),
        1 => return Err(wrong("file")),
        2 if res.starts_with(b"/") && !given.is_empty() && !given.starts_with(b"/") => {
            Some(join_path(res, given))
        }
        2 => return Err(wrong("directory")),
        found => return Err(WireError::ResKind { field, found }),
    };
    let path = match resolved {
        Some(p) => {
            let c = canonical_path(&p).into_owned();
            if c.len() <= MAX_PATH_LEN {
                c
            } else {
                canonical_path(given).into_owned()
            }
        }
        None => canonical_path(given).into_owned(),
    };
    let given = (given != path.as_slice()).then(|| given.to_vec());
    Ok((path, given))
}

/// An exec (kind 1) or present (kind 19, the process snapshot) body: the same layout.
fn decode_exec(r: &mut Reader<'_>, kind: u16) -> Result<RawBody, WireError> {
    let exe_dev = r.u64()?;
    let exe_ino = r.u64()?;
    let argv_total = r.u32()? as usize;
    let (name_field, argv_field) = if kind == 1 {
        ("exec filename", "exec argv")
    } else {
        ("present exe", "present argv")
    };
    let filename_len = r.len(name_field, WIRE_PATH_MAX)?;
    let argv_len = r.len(argv_field, ARGV_BYTES)?;
    let res_len = r.len("exec resolution", WIRE_PATH_MAX)?;
    let res_kind = r.u16()?;
    let stdio_net = r.u8()?;
    r.zero("exec pad", 3)?;
    if stdio_net > 7 || (kind == 19 && stdio_net != 0) {
        return Err(WireError::StdioNet { found: stdio_net });
    }
    if argv_len > argv_total {
        return Err(WireError::ArgvLength {
            copied: argv_len,
            total: argv_total,
        });
    }
    let filename = r.take(filename_len)?;
    let res = r.take(res_len)?;
    let block = r.take(argv_len)?;
    let (argv, cut) = split_argv(block);
    let argv_truncated = cut || argv_len < argv_total;
    Ok(if kind == 1 {
        let (filename, given) = resolve("exec filename", filename, res, res_kind)?;
        RawBody::Exec {
            filename,
            given,
            argv,
            argv_truncated,
            exe_dev,
            exe_ino,
            stdio_net,
        }
    } else {
        // The snapshot's path is the walked executable: nothing else to resolve.
        if res_len != 0 || res_kind != 0 {
            return Err(WireError::Resolution {
                field: "present exe",
                kind: "any",
                len: res_len,
                given_len: filename_len,
            });
        }
        RawBody::Present {
            exe: filename.to_vec(),
            argv,
            argv_truncated,
            exe_dev,
            exe_ino,
        }
    })
}

/// Splits the NUL-separated argv block; true when elements or bytes had to be cut.
fn split_argv(block: &[u8]) -> (Vec<Vec<u8>>, bool) {
    let body = block.strip_suffix(&[0]).unwrap_or(block);
    if block.is_empty() {
        return (Vec::new(), false);
    }
    let mut argv = Vec::new();
    let mut cut = false;
    for arg in body.split(|b| *b == 0) {
        if argv.len() == MAX_ARGV {
            cut = true;
            break;
        }
        if arg.len() > MAX_PATH_LEN {
            cut = true;
        }
        argv.push(arg[..arg.len().min(MAX_PATH_LEN)].to_vec());
    }
    (argv, cut)
}

fn decode_sockaddr(r: &mut Reader<'_>) -> Result<SockAddr, WireError> {
    let family = r.u16()?;
    let port = r.u16()?;
    let len = r.len("address", UNIX_PATH_MAX)?;
    r.zero("address pad", 2)?;
    sockaddr(family, port, r.take(len)?)
}

/// A socket address from its family, port (host order) and address bytes.
fn sockaddr(family: u16, port: u16, bytes: &[u8]) -> Result<SockAddr, WireError> {
    let wrong = || WireError::AddressLength {
        family,
        len: bytes.len(),
    };
    let addr = match family {
        AF_INET => SockAddr::V4 {
            addr: bytes.try_into().map_err(|_| wrong())?,
            port,
        },
        AF_INET6 => SockAddr::V6 {
            addr: bytes.try_into().map_err(|_| wrong())?,
            port,
        },
        AF_UNIX => {
            // A path name ends at its first NUL; an abstract name (leading NUL) is all its bytes.
            let path = match bytes.split_first() {
                Some((0, _)) => bytes,
                _ => bytes.split(|b| *b == 0).next().unwrap_or(bytes),
            };
            SockAddr::Unix {
                path: path.to_vec(),
            }
        }
        _ if !bytes.is_empty() => return Err(wrong()),
        _ => SockAddr::Other { family },
    };
    if port != 0 && !matches!(addr, SockAddr::V4 { .. } | SockAddr::V6 { .. }) {
        return Err(WireError::Port { family, port });
    }
    Ok(addr)
}

/// An fd duplicated onto 0-2 (`struct ritma_dup`).
fn decode_dup(r: &mut Reader<'_>) -> Result<RawBody, WireError> {
    let oldfd = r.u32()?;
    let newfd = r.u32()?;
    let call = r.u16()?;
    let source = r.u16()?;
    let family = r.u16()?;
    let port = r.u16()?;
    let addr_len = r.len("dup address", UNIX_PATH_MAX)?;
    let exe_len = r.len("dup exe", WIRE_PATH_MAX)?;
    r.zero("dup pad", 4)?;
    let newfd = u8::try_from(newfd)
        .ok()
        .filter(|fd| *fd <= 2)
        .ok_or(WireError::DupField {
            field: "newfd",
            found: newfd,
        })?;
    let call = DupCall::from_u64(call as u64).ok_or(WireError::DupField {
        field: "call",
        found: call as u32,
    })?;
    let source = DupSource::from_u64(source as u64).ok_or(WireError::DupField {
        field: "source",
        found: source as u32,
    })?;
    let peer = sockaddr(family, port, r.take(addr_len)?)?;
    if source != DupSource::Socket && peer != (SockAddr::Other { family: 0 }) {
        return Err(WireError::DupField {
            field: "family (a peer for a source that is not a socket)",
            found: family as u32,
        });
    }
    Ok(RawBody::FdDup {
        call,
        oldfd,
        newfd,
        source,
        peer,
        exe: canonical_path(r.take(exe_len)?).into_owned(),
    })
}

fn decode_named(r: &mut Reader<'_>, kind: u16) -> Result<RawBody, WireError> {
    let result = r.i64()?;
    let arg = r.u32()?;
    // A module's name is a file path when it came from an fd.
    let max = if kind == 16 {
        WIRE_PATH_MAX
    } else {
        WIRE_NAME_MAX
    };
    let name_len = r.len("name", max)?;
    r.zero("name pad", 2)?;
    let name = r.take(name_len)?.to_vec();
    Ok(match kind {
        15 => RawBody::MemfdCreate {
            name,
            flags: arg,
            result,
        },
        16 => RawBody::ModuleLoad {
            name,
            from_fd: match arg {
                0 => false,
                1 => true,
                found => return Err(WireError::FromFd { found }),
            },
            result,
        },
        _ => RawBody::BpfProgLoad {
            prog_type: arg,
            name,
            result,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Builds a record the way the kernel side does: header, body, variable bytes.
    fn header(kind: u16, body_and_tail: &[u8]) -> Vec<u8> {
        let len = (HEADER_LEN + body_and_tail.len()) as u32;
        let mut b = Vec::new();
        b.extend(kind.to_le_bytes());
        b.extend(WIRE_VERSION.to_le_bytes());
        b.extend(len.to_le_bytes());
        for v in [111u64, 222, 333, 444, 555, 666, 777] {
            b.extend(v.to_le_bytes());
        }
        for v in [4242u32, 4243, 1, 1000, 1001, 0, 0] {
            b.extend(v.to_le_bytes());
        }
        b.extend(b"cat\0\0\0\0\0\0\0\0\0\0\0\0\0");
        b.extend(0u32.to_le_bytes());
        assert_eq!(b.len(), HEADER_LEN);
        b.extend(body_and_tail);
        b
    }

    fn open_record(path: &[u8]) -> Vec<u8> {
        open_res_record(path, b"", 0)
    }

    /// An open of `given` with its resolution `res` of kind `kind`.
    fn open_res_record(given: &[u8], res: &[u8], kind: u16) -> Vec<u8> {
        let mut body = Vec::new();
        body.extend(3i64.to_le_bytes());
        body.extend(0o100u32.to_le_bytes());
        body.extend(0o644u32.to_le_bytes());
        body.extend((given.len() as u16).to_le_bytes());
        body.extend((res.len() as u16).to_le_bytes());
        body.extend(kind.to_le_bytes());
        body.extend([0u8; 2]);
        body.extend(given);
        body.extend(res);
        header(4, &body)
    }

    fn exec_record(filename: &[u8], argv: &[u8], total: u32) -> Vec<u8> {
        exec_like_record(1, filename, argv, total)
    }

    /// An exec (kind 1) or present (kind 19) record: the same body.
    fn exec_like_record(kind: u16, filename: &[u8], argv: &[u8], total: u32) -> Vec<u8> {
        exec_res_record(kind, filename, b"", 0, argv, total)
    }

    fn exec_res_record(
        kind: u16,
        filename: &[u8],
        res: &[u8],
        res_kind: u16,
        argv: &[u8],
        total: u32,
    ) -> Vec<u8> {
        let mut body = Vec::new();
        body.extend(0x803u64.to_le_bytes());
        body.extend(1234u64.to_le_bytes());
        body.extend(total.to_le_bytes());
        body.extend((filename.len() as u16).to_le_bytes());
        body.extend((argv.len() as u16).to_le_bytes());
        body.extend((res.len() as u16).to_le_bytes());
        body.extend(res_kind.to_le_bytes());
        body.extend(0u32.to_le_bytes()); // stdio_net 0, pads
        body.extend(filename);
        body.extend(res);
        body.extend(argv);
        header(kind, &body)
    }

    /// A rename of two given paths, each with its resolution (bytes, kind).
    fn rename_record(
        old: &[u8],
        new: &[u8],
        old_res: (&[u8], u16),
        new_res: (&[u8], u16),
    ) -> Vec<u8> {
        let mut body = Vec::new();
        body.extend(0i64.to_le_bytes());
        body.extend(0u32.to_le_bytes());
        for n in [old.len(), new.len(), old_res.0.len(), new_res.0.len()] {
            body.extend((n as u16).to_le_bytes());
        }
        body.extend(old_res.1.to_le_bytes());
        body.extend(new_res.1.to_le_bytes());
        for b in [old, new, old_res.0, new_res.0] {
            body.extend(b);
        }
        header(6, &body)
    }

    #[test]
    fn paths_are_made_canonical_from_their_resolution_and_keep_the_given_form() {
        let open = |given: &[u8], res: &[u8], kind| match decode_record(&open_res_record(
            given, res, kind,
        ))
        .unwrap()
        .body
        {
            RawBody::Open { path, given, .. } => (path, given),
            other => panic!("{other:?}"),
        };
        // The opened file, walked, wins over what the path said.
        assert_eq!(
            open(b"/bin/sh", b"/usr/bin/dash", 1),
            (b"/usr/bin/dash".to_vec(), Some(b"/bin/sh".to_vec()))
        );
        // A relative path joins its directory, then loses its dots.
        assert_eq!(
            open(b"./x/../y", b"/tmp", 2),
            (b"/tmp/y".to_vec(), Some(b"./x/../y".to_vec()))
        );
        assert_eq!(open(b"y", b"/", 2), (b"/y".to_vec(), Some(b"y".to_vec())));
        // An absolute path alone is made canonical lexically.
        assert_eq!(
            open(b"/tmp//a/./b", b"", 0),
            (b"/tmp/a/b".to_vec(), Some(b"/tmp//a/./b".to_vec()))
        );
        // Already canonical: no given form kept.
        assert_eq!(
            open(b"/etc/passwd", b"/etc/passwd", 1),
            (b"/etc/passwd".to_vec(), None)
        );
        assert_eq!(
            open(b"/etc/passwd", b"", 0),
            (b"/etc/passwd".to_vec(), None)
        );
        // A relative path nothing resolved stays relative (canonical, and marked given).
        assert_eq!(open(b"./x", b"", 0), (b"x".to_vec(), Some(b"./x".to_vec())));

        // A fileless exec: the given fd path, the memfd the kernel ran.
        let e = decode_record(&exec_res_record(
            1,
            b"/dev/fd/3",
            b"/memfd:payload",
            1,
            b"x\0",
            2,
        ))
        .unwrap();
        assert!(
            matches!(e.body, RawBody::Exec { ref filename, ref given, .. }
            if filename == b"/memfd:payload" && given.as_deref() == Some(b"/dev/fd/3".as_slice()))
        );

        // A rename resolves each side on its own.
        let e = decode_record(&rename_record(b"a", b"/tmp/b", (b"/home/u", 2), (b"", 0))).unwrap();
        assert_eq!(
            e.body,
            RawBody::Rename {
                old: b"/home/u/a".to_vec(),
                new: b"/tmp/b".to_vec(),
                old_given: Some(b"a".to_vec()),
                new_given: None,
                flags: 0,
                result: 0,
            }
        );
    }

    #[test]
    fn resolutions_that_cannot_be_are_rejected() {
        for (given, res, kind) in [
            (b"x".as_slice(), b"".as_slice(), 3u16),
            (b"/x", b"/tmp", 2),     // a directory for an absolute path
            (b"", b"/tmp", 2),       // a directory for no path
            (b"x", b"tmp", 2),       // a relative directory
            (b"x", b"usr/bin/x", 1), // a relative file
            (b"/x", b"/junk", 0),    // bytes with no kind
        ] {
            let r = decode_record(&open_res_record(given, res, kind));
            assert!(
                matches!(
                    r,
                    Err(WireError::Resolution { .. } | WireError::ResKind { .. })
                ),
                "{given:?} {res:?} {kind}: {r:?}"
            );
        }
        // A present record's path is walked already: no resolution.
        assert!(decode_record(&exec_res_record(19, b"/x", b"/y", 1, b"", 0)).is_err());
    }

    #[test]
    fn an_exec_says_which_stdio_fds_are_network_sockets() {
        let with_stdio = |kind: u16, stdio: u8| {
            let mut rec = exec_res_record(kind, b"/bin/sh", b"", 0, b"sh\0", 3);
            rec[HEADER_LEN + 28] = stdio;
            decode_record(&rec)
        };
        assert!(matches!(
            with_stdio(1, 0b011).unwrap().body,
            RawBody::Exec {
                stdio_net: 0b011,
                ..
            }
        ));
        // Only fds 0-2 exist for it, and a process snapshot never sets it.
        assert_eq!(with_stdio(1, 8), Err(WireError::StdioNet { found: 8 }));
        assert_eq!(with_stdio(19, 1), Err(WireError::StdioNet { found: 1 }));
    }

    fn sock_record(kind: u16, family: u16, port: u16, addr: &[u8]) -> Vec<u8> {
        let mut body = Vec::new();
        body.extend((-111i64).to_le_bytes());
        body.extend(family.to_le_bytes());
        body.extend(port.to_le_bytes());
        body.extend((addr.len() as u16).to_le_bytes());
        body.extend([0u8; 2]);
        body.extend(addr);
        header(kind, &body)
    }

    fn dup_record(
        newfd: u32,
        call: u16,
        source: u16,
        family: u16,
        addr: &[u8],
        exe: &[u8],
    ) -> Vec<u8> {
        let mut body = Vec::new();
        body.extend(7u32.to_le_bytes());
        body.extend(newfd.to_le_bytes());
        body.extend(call.to_le_bytes());
        body.extend(source.to_le_bytes());
        body.extend(family.to_le_bytes());
        body.extend((if family == 2 { 4444u16 } else { 0 }).to_le_bytes());
        body.extend((addr.len() as u16).to_le_bytes());
        body.extend((exe.len() as u16).to_le_bytes());
        body.extend([0u8; 4]);
        body.extend(addr);
        body.extend(exe);
        header(20, &body)
    }

    #[test]
    fn a_dup_onto_stdio_says_what_the_fd_is_and_who_ran() {
        let e = decode_record(&dup_record(1, 2, 1, 2, &[10, 0, 0, 9], b"/usr/bin/bash")).unwrap();
        assert_eq!(
            e.body,
            RawBody::FdDup {
                call: DupCall::Dup2,
                oldfd: 7,
                newfd: 1,
                source: DupSource::Socket,
                peer: SockAddr::V4 {
                    addr: [10, 0, 0, 9],
                    port: 4444
                },
                exe: b"/usr/bin/bash".to_vec(),
            }
        );
        let e = decode_record(&dup_record(0, 4, 2, 0, b"", b"")).unwrap();
        assert!(matches!(
            e.body,
            RawBody::FdDup { call: DupCall::FcntlDupfd, source: DupSource::Pipe, newfd: 0, ref exe, .. } if exe.is_empty()
        ));
        // Not stdio, an unknown call or source, a peer for a pipe: each refused.
        for bad in [
            dup_record(3, 2, 1, 2, &[10, 0, 0, 9], b"/bin/sh"),
            dup_record(1, 6, 1, 2, &[10, 0, 0, 9], b"/bin/sh"),
            dup_record(1, 2, 6, 0, b"", b"/bin/sh"),
            dup_record(1, 2, 2, 2, &[10, 0, 0, 9], b"/bin/sh"),
        ] {
            assert!(
                matches!(decode_record(&bad), Err(WireError::DupField { .. })),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn open_record_decodes_every_field() {
        let e = decode_record(&open_record(b"/etc/passwd")).unwrap();
        assert_eq!(e.seq, 0);
        assert_eq!(e.mono_ns, 111);
        assert_eq!(e.task.start_ns, 222);
        assert_eq!(e.task.parent_start_ns, 333);
        assert_eq!(e.task.cgroup_id, 444);
        assert_eq!(
            (e.task.mnt_ns, e.task.pid_ns, e.task.net_ns),
            (555, 666, 777)
        );
        assert_eq!((e.task.pid, e.task.tid, e.task.ppid), (4242, 4243, 1));
        assert_eq!((e.task.uid, e.task.gid), (1000, 1001));
        assert_eq!(e.task.comm, b"cat");
        assert_eq!(
            e.body,
            RawBody::Open {
                path: b"/etc/passwd".to_vec(),
                flags: 0o100,
                mode: 0o644,
                result: 3,
                given: None,
            }
        );
    }

    #[test]
    fn every_truncation_of_a_record_is_an_error() {
        for rec in [
            open_record(b"/etc/passwd"),
            exec_record(b"/bin/ls", b"ls\0-l\0", 6),
            exec_like_record(19, b"/usr/sbin/sshd", b"sshd\0-D\0", 8),
            sock_record(7, AF_INET, 443, &[10, 0, 0, 1]),
            open_res_record(b"x", b"/tmp", 2),
            exec_res_record(1, b"/dev/fd/3", b"/memfd:x", 1, b"x\0", 2),
            rename_record(b"a", b"b", (b"/t", 2), (b"/u", 2)),
        ] {
            for cut in 0..rec.len() {
                assert!(decode_record(&rec[..cut]).is_err(), "cut at {cut}");
            }
            assert!(decode_record(&rec).is_ok());
        }
    }

    #[test]
    fn header_length_must_match_the_record() {
        let mut rec = open_record(b"/x");
        rec.push(0);
        assert_eq!(
            decode_record(&rec),
            Err(WireError::LengthMismatch {
                header: rec.len() - 1,
                actual: rec.len()
            })
        );
        // A header that agrees with the size but a body that leaves bytes over.
        let mut rec = open_record(b"/x");
        rec.push(b'y');
        let len = rec.len() as u32;
        rec[4..8].copy_from_slice(&len.to_le_bytes());
        assert!(matches!(
            decode_record(&rec),
            Err(WireError::Trailing { trailing: 1, .. })
        ));
    }

    #[test]
    fn unknown_kind_version_and_dirty_padding_are_rejected() {
        let mut rec = open_record(b"/x");
        rec[0] = 99;
        assert_eq!(decode_record(&rec), Err(WireError::Kind { found: 99 }));
        let mut rec = open_record(b"/x");
        rec[2] = 1;
        assert_eq!(decode_record(&rec), Err(WireError::Version { found: 1 }));
        let mut rec = open_record(b"/x");
        rec[HEADER_LEN - 1] = 1;
        assert!(matches!(
            decode_record(&rec),
            Err(WireError::NonZeroPad { .. })
        ));
    }

    #[test]
    fn lengths_over_their_bounds_are_rejected_before_reading() {
        let mut rec = open_record(b"/x");
        rec[HEADER_LEN + 16..HEADER_LEN + 18].copy_from_slice(&5000u16.to_le_bytes());
        assert_eq!(
            decode_record(&rec),
            Err(WireError::FieldTooLong {
                field: "open path",
                len: 5000,
                max: WIRE_PATH_MAX
            })
        );
    }

    #[test]
    fn argv_block_splits_on_nul_and_reports_cuts() {
        let e = decode_record(&exec_record(b"/bin/ls", b"ls\0\0-l\0", 7)).unwrap();
        let RawBody::Exec {
            argv,
            argv_truncated,
            exe_dev,
            exe_ino,
            filename,
            given: _,
            stdio_net: _,
        } = e.body
        else {
            panic!("not an exec")
        };
        assert_eq!(filename, b"/bin/ls");
        assert_eq!(argv, vec![b"ls".to_vec(), b"".to_vec(), b"-l".to_vec()]);
        assert!(!argv_truncated);
        assert_eq!((exe_dev, exe_ino), (0x803, 1234));

        // Fewer bytes copied than the block holds: the last element is partial.
        let e = decode_record(&exec_record(b"/bin/ls", b"ls\0-lon", 20)).unwrap();
        assert!(
            matches!(e.body, RawBody::Exec { ref argv, argv_truncated: true, .. } if argv[1] == b"-lon")
        );

        // More than MAX_ARGV elements.
        let many: Vec<u8> = (0..70).flat_map(|_| *b"a\0").collect();
        let e = decode_record(&exec_record(b"/bin/x", &many, many.len() as u32)).unwrap();
        assert!(
            matches!(e.body, RawBody::Exec { ref argv, argv_truncated: true, .. } if argv.len() == MAX_ARGV)
        );

        assert_eq!(
            decode_record(&exec_record(b"/bin/x", b"a\0", 1)),
            Err(WireError::ArgvLength {
                copied: 2,
                total: 1
            })
        );
    }

    #[test]
    fn present_records_decode_like_exec_but_as_present() {
        let e = decode_record(&exec_like_record(19, b"/usr/sbin/sshd", b"sshd\0-D\0", 8)).unwrap();
        assert_eq!((e.task.pid, e.task.start_ns, e.mono_ns), (4242, 222, 111));
        assert_eq!(
            e.body,
            RawBody::Present {
                exe: b"/usr/sbin/sshd".to_vec(),
                argv: vec![b"sshd".to_vec(), b"-D".to_vec()],
                argv_truncated: false,
                exe_dev: 0x803,
                exe_ino: 1234,
            }
        );
        // The exec bounds hold for present records too.
        let big = exec_like_record(19, &[b'/'; WIRE_PATH_MAX + 1], b"", 0);
        assert_eq!(
            decode_record(&big),
            Err(WireError::FieldTooLong {
                field: "present exe",
                len: WIRE_PATH_MAX + 1,
                max: WIRE_PATH_MAX
            })
        );
        assert_eq!(
            decode_record(&exec_like_record(19, b"/x", b"a\0b\0", 3)),
            Err(WireError::ArgvLength {
                copied: 4,
                total: 3
            })
        );
        let cut = decode_record(&exec_like_record(19, b"/x", b"a\0bb", 9000)).unwrap();
        assert!(matches!(
            cut.body,
            RawBody::Present {
                argv_truncated: true,
                ..
            }
        ));
        // Kind 18 (trigger) is never a wire record.
        let mut rec = exec_like_record(19, b"/x", b"", 0);
        rec[0] = 18;
        assert_eq!(decode_record(&rec), Err(WireError::Kind { found: 18 }));
    }

    #[test]
    fn socket_addresses_are_checked_by_family() {
        let e = decode_record(&sock_record(7, AF_INET, 8080, &[127, 0, 0, 1])).unwrap();
        assert_eq!(
            e.body,
            RawBody::Connect {
                addr: SockAddr::V4 {
                    addr: [127, 0, 0, 1],
                    port: 8080
                },
                result: -111
            }
        );
        let e = decode_record(&sock_record(9, AF_UNIX, 0, b"/run/x.sock\0junk")).unwrap();
        assert_eq!(
            e.body,
            RawBody::Bind {
                addr: SockAddr::Unix {
                    path: b"/run/x.sock".to_vec()
                },
                result: -111
            }
        );
        let e = decode_record(&sock_record(8, AF_UNIX, 0, b"\0abstract")).unwrap();
        assert!(
            matches!(e.body, RawBody::Accept { addr: SockAddr::Unix { ref path }, .. } if path == b"\0abstract")
        );
        assert_eq!(
            decode_record(&sock_record(7, AF_INET, 1, &[1, 2, 3])),
            Err(WireError::AddressLength {
                family: AF_INET,
                len: 3
            })
        );
        assert_eq!(
            decode_record(&sock_record(7, AF_UNIX, 80, b"/x")),
            Err(WireError::Port {
                family: AF_UNIX,
                port: 80
            })
        );
        // AF_UNSPEC: a connect that dissolves the association.
        let e = decode_record(&sock_record(7, 0, 0, b"")).unwrap();
        assert!(matches!(
            e.body,
            RawBody::Connect {
                addr: SockAddr::Other { family: 0 },
                ..
            }
        ));
        assert_eq!(
            decode_record(&sock_record(7, 0, 0, b"x")),
            Err(WireError::AddressLength { family: 0, len: 1 })
        );
        let e = decode_record(&sock_record(7, 16, 0, b"")).unwrap();
        assert!(matches!(
            e.body,
            RawBody::Connect {
                addr: SockAddr::Other { family: 16 },
                ..
            }
        ));
    }

    #[test]
    fn garbage_never_panics() {
        // A deterministic xorshift stream: random lengths, random bytes, and valid headers
        // with random bodies, all of which must decode or error without a panic.
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        for round in 0..20_000 {
            let n = (next() % 400) as usize;
            let mut buf: Vec<u8> = (0..n).map(|_| next() as u8).collect();
            if round % 2 == 0 && buf.len() >= 8 {
                let kind = (next() % 21) as u16;
                buf[0..2].copy_from_slice(&kind.to_le_bytes());
                buf[2..4].copy_from_slice(&WIRE_VERSION.to_le_bytes());
                buf[4..8].copy_from_slice(&(n as u32).to_le_bytes());
                if n >= HEADER_LEN {
                    buf[HEADER_LEN - 4..HEADER_LEN].fill(0);
                }
            }
            let _ = decode_record(&buf);
        }
        assert!(decode_record(&vec![0xff; RECORD_MAX + 1]).is_err());
    }
}
