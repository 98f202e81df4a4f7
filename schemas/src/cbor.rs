//! Deterministic CBOR (RFC 8949 §4.2.1), restricted to the subset Ritma signs:
//! unsigned and negative integers, byte strings, text strings, definite-length
//! arrays, `false`, `true` and `null`. No maps, tags, floats, other simple values
//! or indefinite lengths; every integer and length in its shortest form.
//!
//! The decoder is strict and total: it accepts exactly the bytes the encoder
//! produces and returns a typed [`DecodeError`] for anything else. It is written
//! by hand rather than on a general CBOR crate because strictness is the point
//! (general decoders accept non-shortest forms, maps and tags) and because it runs
//! once per event. See FORMAT.md §1.

use std::fmt;

/// Major types as they appear in the top three bits of an initial byte.
const MAJOR_UINT: u8 = 0;
const MAJOR_NINT: u8 = 1;
const MAJOR_BYTES: u8 = 2;
const MAJOR_TEXT: u8 = 3;
const MAJOR_ARRAY: u8 = 4;
const MAJOR_MAP: u8 = 5;
const MAJOR_TAG: u8 = 6;
const MAJOR_SIMPLE: u8 = 7;

const FALSE: u8 = 0xf4;
const TRUE: u8 = 0xf5;
const NULL: u8 = 0xf6;

/// Writes deterministic CBOR into a growable buffer.
#[derive(Default, Debug)]
pub struct Encoder {
    buf: Vec<u8>,
}

impl Encoder {
    pub fn new() -> Self {
        Encoder { buf: Vec::new() }
    }

    /// Appends to an existing buffer (reused across records on hot paths).
    pub fn with_buffer(buf: Vec<u8>) -> Self {
        Encoder { buf }
    }

    pub fn into_bytes(self) -> Vec<u8> {
        self.buf
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.buf
    }

    #[inline]
    fn head(&mut self, major: u8, arg: u64) {
        let m = major << 5;
        if arg < 24 {
            self.buf.push(m | arg as u8);
        } else if arg <= u8::MAX as u64 {
            self.buf.extend_from_slice(&[m | 24, arg as u8]);
        } else if arg <= u16::MAX as u64 {
            self.buf.push(m | 25);
            self.buf.extend_from_slice(&(arg as u16).to_be_bytes());
        } else if arg <= u32::MAX as u64 {
            self.buf.push(m | 26);
            self.buf.extend_from_slice(&(arg as u32).to_be_bytes());
        } else {
            self.buf.push(m | 27);
            self.buf.extend_from_slice(&arg.to_be_bytes());
        }
    }

    #[inline]
    pub fn uint(&mut self, v: u64) -> &mut Self {
        self.head(MAJOR_UINT, v);
        self
    }

    #[inline]
    pub fn int(&mut self, v: i64) -> &mut Self {
        if v >= 0 {
            self.head(MAJOR_UINT, v as u64);
        } else {
            // CBOR stores -1 - n for negative n.
            self.head(MAJOR_NINT, !(v as u64));
        }
        self
    }

    #[inline]
    pub fn bytes(&mut self, v: &[u8]) -> &mut Self {
        self.head(MAJOR_BYTES, v.len() as u64);
        self.buf.extend_from_slice(v);
        self
    }

    #[inline]
    pub fn text(&mut self, v: &str) -> &mut Self {
        self.head(MAJOR_TEXT, v.len() as u64);
        self.buf.extend_from_slice(v.as_bytes());
        self
    }

    /// Bytes that are already one encoded item (a nested record).
    #[inline]
    pub fn raw(&mut self, item: &[u8]) -> &mut Self {
        self.buf.extend_from_slice(item);
        self
    }

    /// A negative integer given as CBOR's argument n (the value -1 - n).
    #[inline]
    pub fn nint(&mut self, n: u64) -> &mut Self {
        self.head(MAJOR_NINT, n);
        self
    }

    /// A text string from bytes the caller vouches are UTF-8 (or that a strict
    /// decoder will check: [`crate::packed`] rebuilds leaves that are decoded next).
    #[inline]
    pub fn text_bytes(&mut self, v: &[u8]) -> &mut Self {
        self.head(MAJOR_TEXT, v.len() as u64);
        self.buf.extend_from_slice(v);
        self
    }

    #[inline]
    pub fn array(&mut self, len: u64) -> &mut Self {
        self.head(MAJOR_ARRAY, len);
        self
    }

    #[inline]
    pub fn bool(&mut self, v: bool) -> &mut Self {
        self.buf.push(if v { TRUE } else { FALSE });
        self
    }

    #[inline]
    pub fn null(&mut self) -> &mut Self {
        self.buf.push(NULL);
        self
    }

    /// `null` for `None`, a byte string otherwise.
    #[inline]
    pub fn opt_bytes(&mut self, v: Option<&[u8]>) -> &mut Self {
        match v {
            Some(b) => self.bytes(b),
            None => self.null(),
        }
    }
}

/// What was wrong with the bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DecodeErrorKind {
    /// The input ended inside an item.
    Truncated,
    /// Bytes remain after the record.
    TrailingBytes { count: usize },
    /// The record is larger than its type allows.
    Oversize { len: usize, max: usize },
    /// Maps are not part of Ritma's CBOR.
    Map,
    /// Tags are not part of Ritma's CBOR.
    Tag,
    /// Floats are not part of Ritma's CBOR.
    Float,
    /// Indefinite-length items are not part of Ritma's CBOR.
    IndefiniteLength,
    /// An integer or length not in its shortest encoding.
    NonShortest,
    /// A simple value other than false/true/null, or a reserved encoding.
    ReservedSimple { byte: u8 },
    /// A reserved additional-information value (28..=30).
    ReservedInfo { byte: u8 },
    /// An item of another type than the field requires.
    UnexpectedType {
        expected: &'static str,
        found: &'static str,
    },
    /// An integer outside the field's range.
    OutOfRange { value: i128 },
    /// A byte string or array of the wrong length.
    WrongLength { expected: u64, found: u64 },
    /// A byte string or array longer than the field allows.
    TooLong { max: u64, found: u64 },
    /// A text string that is not UTF-8.
    InvalidUtf8,
    /// A record type number this version does not know.
    UnknownRecordType { record_type: u64 },
    /// A known record type other than the one expected.
    WrongRecordType { expected: u64, found: u64 },
    /// A record version this version does not know.
    UnknownVersion { record_type: u64, version: u64 },
    /// An enumeration value not defined in FORMAT.md.
    UnknownValue { value: u64 },
    /// Flag bits not defined in FORMAT.md.
    UnknownFlags { bits: u64 },
    /// A list that must be strictly ascending is not.
    NotAscending,
    /// A value violating a rule of its record (the message says which).
    Invalid(&'static str),
    /// Re-encoding the decoded value gave other bytes (a decoder bug guard).
    NotCanonical,
}

impl fmt::Display for DecodeErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use DecodeErrorKind::*;
        match self {
            Truncated => write!(f, "input ends inside an item"),
            TrailingBytes { count } => write!(f, "{count} trailing bytes after the record"),
            Oversize { len, max } => {
                write!(f, "record is {len} bytes, more than the {max} allowed")
            }
            Map => write!(f, "maps are not allowed"),
            Tag => write!(f, "tags are not allowed"),
            Float => write!(f, "floats are not allowed"),
            IndefiniteLength => write!(f, "indefinite lengths are not allowed"),
            NonShortest => write!(f, "integer or length not in shortest form"),
            ReservedSimple { byte } => write!(f, "simple value 0x{byte:02x} is not allowed"),
            ReservedInfo { byte } => write!(f, "reserved initial byte 0x{byte:02x}"),
            UnexpectedType { expected, found } => write!(f, "expected {expected}, found {found}"),
            OutOfRange { value } => write!(f, "value {value} out of range"),
            WrongLength { expected, found } => write!(f, "length {found}, expected {expected}"),
            TooLong { max, found } => write!(f, "length {found}, at most {max} allowed"),
            InvalidUtf8 => write!(f, "text is not valid UTF-8"),
            UnknownRecordType { record_type } => write!(f, "unknown record type {record_type}"),
            WrongRecordType { expected, found } => {
                write!(f, "record type {found} where type {expected} is expected")
            }
            UnknownVersion {
                record_type,
                version,
            } => {
                write!(f, "unknown version {version} of record type {record_type}")
            }
            UnknownValue { value } => write!(f, "undefined value {value}"),
            UnknownFlags { bits } => write!(f, "undefined flag bits 0x{bits:x}"),
            NotAscending => write!(f, "list is not strictly ascending"),
            Invalid(why) => write!(f, "{why}"),
            NotCanonical => write!(f, "bytes are not the canonical encoding of their value"),
        }
    }
}

/// A decoding failure: which record, which field, at which byte offset, and why.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{record} field `{field}` at byte {offset}: {kind}")]
pub struct DecodeError {
    pub record: &'static str,
    pub field: &'static str,
    pub offset: usize,
    pub kind: DecodeErrorKind,
}

/// One data item of Ritma's CBOR subset as [`Decoder::item`] reads it: a string with its
/// content (text not yet checked as UTF-8), an array with its length only.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Item<'a> {
    Uint(u64),
    /// The argument n of a negative integer, whose value is -1 - n.
    Nint(u64),
    Bytes(&'a [u8]),
    Text(&'a [u8]),
    Array(u64),
    Bool(bool),
    Null,
}

/// Reads deterministic CBOR from a byte slice, strictly.
pub struct Decoder<'a> {
    buf: &'a [u8],
    pos: usize,
    record: &'static str,
}

/// The first `N` bytes of `b` as a big-endian integer, if `b` has them.
#[inline]
fn be<const N: usize>(b: &[u8]) -> Option<u64> {
    let bytes: [u8; N] = b.get(..N)?.try_into().ok()?;
    Some(bytes.iter().fold(0u64, |acc, &x| (acc << 8) | x as u64))
}

fn major_name(major: u8) -> &'static str {
    match major {
        MAJOR_UINT => "unsigned integer",
        MAJOR_NINT => "negative integer",
        MAJOR_BYTES => "byte string",
        MAJOR_TEXT => "text string",
        MAJOR_ARRAY => "array",
        MAJOR_MAP => "map",
        MAJOR_TAG => "tag",
        _ => "simple value",
    }
}

impl<'a> Decoder<'a> {
    /// `record` names the record being decoded, for error messages.
    pub fn new(buf: &'a [u8], record: &'static str) -> Self {
        Decoder {
            buf,
            pos: 0,
            record,
        }
    }

    pub fn position(&self) -> usize {
        self.pos
    }

    pub fn set_record(&mut self, record: &'static str) {
        self.record = record;
    }

    /// An error at the current position.
    pub fn error(&self, field: &'static str, kind: DecodeErrorKind) -> DecodeError {
        DecodeError {
            record: self.record,
            field,
            offset: self.pos,
            kind,
        }
    }

    /// An error at an earlier `offset` (the start of the item at fault).
    pub fn error_at(
        &self,
        field: &'static str,
        offset: usize,
        kind: DecodeErrorKind,
    ) -> DecodeError {
        DecodeError {
            record: self.record,
            field,
            offset,
            kind,
        }
    }

    /// Fails unless every byte was consumed.
    pub fn finish(&self) -> Result<(), DecodeError> {
        let rest = self.buf.len() - self.pos;
        if rest != 0 {
            return Err(self.error("(end)", DecodeErrorKind::TrailingBytes { count: rest }));
        }
        Ok(())
    }

    /// Reads an item head: (major type, argument). Rejects everything outside the subset.
    #[inline]
    fn head(&mut self, field: &'static str) -> Result<(u8, u64), DecodeError> {
        let start = self.pos;
        let Some(&ib) = self.buf.get(self.pos) else {
            return Err(self.error(field, DecodeErrorKind::Truncated));
        };
        let major = ib >> 5;
        let info = ib & 0x1f;
        if major == MAJOR_SIMPLE {
            return match ib {
                FALSE | TRUE | NULL => {
                    self.pos += 1;
                    Ok((major, info as u64))
                }
                0xf9..=0xfb => Err(self.error(field, DecodeErrorKind::Float)),
                0xff => Err(self.error(field, DecodeErrorKind::IndefiniteLength)),
                _ => Err(self.error(field, DecodeErrorKind::ReservedSimple { byte: ib })),
            };
        }
        if major == MAJOR_MAP {
            return Err(self.error(field, DecodeErrorKind::Map));
        }
        if major == MAJOR_TAG {
            return Err(self.error(field, DecodeErrorKind::Tag));
        }
        let (arg, extra) = match info {
            0..=23 => (info as u64, 0usize),
            24..=27 => {
                let rest = &self.buf[self.pos + 1..];
                // (value, width, smallest value that needs this width: shortest form)
                let (v, n, min) = match info {
                    24 => (rest.first().map(|&b| b as u64), 1, 24),
                    25 => (be::<2>(rest), 2, 0x100),
                    26 => (be::<4>(rest), 4, 0x1_0000),
                    _ => (be::<8>(rest), 8, 0x1_0000_0000),
                };
                let Some(v) = v else {
                    return Err(self.error(field, DecodeErrorKind::Truncated));
                };
                if v < min {
                    return Err(self.error(field, DecodeErrorKind::NonShortest));
                }
                (v, n)
            }
            31 => return Err(self.error(field, DecodeErrorKind::IndefiniteLength)),
            _ => return Err(self.error(field, DecodeErrorKind::ReservedInfo { byte: ib })),
        };
        self.pos = start + 1 + extra;
        Ok((major, arg))
    }

    #[inline]
    fn expect(&mut self, field: &'static str, want: u8) -> Result<u64, DecodeError> {
        let start = self.pos;
        let (major, arg) = self.head(field)?;
        if major != want {
            let kind = DecodeErrorKind::UnexpectedType {
                expected: major_name(want),
                found: major_name(major),
            };
            return Err(self.error_at(field, start, kind));
        }
        Ok(arg)
    }

    /// True if the next item is `null` (without consuming it).
    #[inline]
    pub fn peek_null(&self) -> bool {
        self.buf.get(self.pos) == Some(&NULL)
    }

    #[inline]
    pub fn uint(&mut self, field: &'static str) -> Result<u64, DecodeError> {
        self.expect(field, MAJOR_UINT)
    }

    /// An unsigned integer that must fit `max`.
    #[inline]
    pub fn uint_max(&mut self, field: &'static str, max: u64) -> Result<u64, DecodeError> {
        let start = self.pos;
        let v = self.uint(field)?;
        if v > max {
            return Err(self.error_at(
                field,
                start,
                DecodeErrorKind::OutOfRange { value: v as i128 },
            ));
        }
        Ok(v)
    }

    #[inline]
    pub fn u32(&mut self, field: &'static str) -> Result<u32, DecodeError> {
        Ok(self.uint_max(field, u32::MAX as u64)? as u32)
    }

    #[inline]
    pub fn int(&mut self, field: &'static str) -> Result<i64, DecodeError> {
        let start = self.pos;
        let (major, arg) = self.head(field)?;
        let v: i128 = match major {
            MAJOR_UINT => arg as i128,
            MAJOR_NINT => -1 - arg as i128,
            _ => {
                let kind = DecodeErrorKind::UnexpectedType {
                    expected: "integer",
                    found: major_name(major),
                };
                return Err(self.error_at(field, start, kind));
            }
        };
        i64::try_from(v)
            .map_err(|_| self.error_at(field, start, DecodeErrorKind::OutOfRange { value: v }))
    }

    #[inline]
    pub fn bool(&mut self, field: &'static str) -> Result<bool, DecodeError> {
        match self.buf.get(self.pos) {
            Some(&FALSE) => {
                self.pos += 1;
                Ok(false)
            }
            Some(&TRUE) => {
                self.pos += 1;
                Ok(true)
            }
            _ => {
                let start = self.pos;
                let (major, _) = self.head(field)?;
                let found = if major == MAJOR_SIMPLE {
                    "null"
                } else {
                    major_name(major)
                };
                let kind = DecodeErrorKind::UnexpectedType {
                    expected: "boolean",
                    found,
                };
                Err(self.error_at(field, start, kind))
            }
        }
    }

    /// Consumes a `null`.
    pub fn null(&mut self, field: &'static str) -> Result<(), DecodeError> {
        if self.peek_null() {
            self.pos += 1;
            Ok(())
        } else {
            let kind = DecodeErrorKind::UnexpectedType {
                expected: "null",
                found: "other",
            };
            Err(self.error(field, kind))
        }
    }

    fn take(&mut self, field: &'static str, len: u64) -> Result<&'a [u8], DecodeError> {
        let rest = (self.buf.len() - self.pos) as u64;
        if len > rest {
            return Err(self.error(field, DecodeErrorKind::Truncated));
        }
        let s = &self.buf[self.pos..self.pos + len as usize];
        self.pos += len as usize;
        Ok(s)
    }

    /// A byte string of at most `max` bytes.
    #[inline]
    pub fn bytes(&mut self, field: &'static str, max: u64) -> Result<&'a [u8], DecodeError> {
        let start = self.pos;
        let len = self.expect(field, MAJOR_BYTES)?;
        if len > max {
            return Err(self.error_at(field, start, DecodeErrorKind::TooLong { max, found: len }));
        }
        self.take(field, len)
    }

    /// A byte string of exactly `N` bytes.
    #[inline]
    pub fn fixed<const N: usize>(&mut self, field: &'static str) -> Result<[u8; N], DecodeError> {
        let start = self.pos;
        let len = self.expect(field, MAJOR_BYTES)?;
        if len != N as u64 {
            let kind = DecodeErrorKind::WrongLength {
                expected: N as u64,
                found: len,
            };
            return Err(self.error_at(field, start, kind));
        }
        let s = self.take(field, len)?;
        let mut out = [0u8; N];
        out.copy_from_slice(s);
        Ok(out)
    }

    /// `null` or a byte string of exactly `N` bytes.
    #[inline]
    pub fn opt_fixed<const N: usize>(
        &mut self,
        field: &'static str,
    ) -> Result<Option<[u8; N]>, DecodeError> {
        if self.peek_null() {
            self.pos += 1;
            Ok(None)
        } else {
            self.fixed(field).map(Some)
        }
    }

    /// A UTF-8 text string of at most `max` bytes.
    pub fn text(&mut self, field: &'static str, max: u64) -> Result<&'a str, DecodeError> {
        let start = self.pos;
        let len = self.expect(field, MAJOR_TEXT)?;
        if len > max {
            return Err(self.error_at(field, start, DecodeErrorKind::TooLong { max, found: len }));
        }
        let s = self.take(field, len)?;
        std::str::from_utf8(s)
            .map_err(|_| self.error_at(field, start, DecodeErrorKind::InvalidUtf8))
    }

    /// An array head; returns its length, which must be at most `max`.
    pub fn array(&mut self, field: &'static str, max: u64) -> Result<u64, DecodeError> {
        let start = self.pos;
        let len = self.expect(field, MAJOR_ARRAY)?;
        if len > max {
            return Err(self.error_at(field, start, DecodeErrorKind::TooLong { max, found: len }));
        }
        Ok(len)
    }

    /// The next data item's head, whatever its type (a string's content follows it):
    /// for readers that walk records generically.
    #[inline]
    pub fn item(&mut self, field: &'static str) -> Result<Item<'a>, DecodeError> {
        let (major, arg) = self.head(field)?;
        Ok(match major {
            MAJOR_UINT => Item::Uint(arg),
            MAJOR_NINT => Item::Nint(arg),
            MAJOR_BYTES => Item::Bytes(self.take(field, arg)?),
            MAJOR_TEXT => Item::Text(self.take(field, arg)?),
            MAJOR_ARRAY => Item::Array(arg),
            _ => match arg as u8 {
                20 => Item::Bool(false),
                21 => Item::Bool(true),
                _ => Item::Null,
            },
        })
    }

    /// The bytes of the next whole item, nested arrays included (a record inside a
    /// record, decoded on its own).
    pub fn item_bytes(&mut self, field: &'static str) -> Result<&'a [u8], DecodeError> {
        let start = self.pos;
        let mut pending = 1u64;
        while pending > 0 {
            pending -= 1;
            if let Item::Array(n) = self.item(field)? {
                pending = pending.saturating_add(n);
            }
        }
        Ok(&self.buf[start..self.pos])
    }

    /// An array head of exactly `len` elements.
    #[inline]
    pub fn array_exact(&mut self, field: &'static str, len: u64) -> Result<(), DecodeError> {
        let start = self.pos;
        let found = self.expect(field, MAJOR_ARRAY)?;
        if found != len {
            let kind = DecodeErrorKind::WrongLength {
                expected: len,
                found,
            };
            return Err(self.error_at(field, start, kind));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn enc(f: impl FnOnce(&mut Encoder)) -> Vec<u8> {
        let mut e = Encoder::new();
        f(&mut e);
        e.into_bytes()
    }

    #[test]
    fn integers_use_shortest_form_rfc8949_appendix_a() {
        // Expected bytes from RFC 8949 Appendix A.
        let cases: &[(i64, &str)] = &[
            (0, "00"),
            (1, "01"),
            (10, "0a"),
            (23, "17"),
            (24, "1818"),
            (25, "1819"),
            (100, "1864"),
            (1000, "1903e8"),
            (1000000, "1a000f4240"),
            (1000000000000, "1b000000e8d4a51000"),
            (-1, "20"),
            (-10, "29"),
            (-100, "3863"),
            (-1000, "3903e7"),
        ];
        for &(v, hex) in cases {
            let b = enc(|e| {
                e.int(v);
            });
            assert_eq!(hex_str(&b), hex, "encoding {v}");
            let mut d = Decoder::new(&b, "test");
            assert_eq!(d.int("v").unwrap(), v);
            d.finish().unwrap();
        }
        let b = enc(|e| {
            e.uint(u64::MAX);
        });
        assert_eq!(hex_str(&b), "1bffffffffffffffff");
        let b = enc(|e| {
            e.int(i64::MIN);
        });
        assert_eq!(hex_str(&b), "3b7fffffffffffffff");
    }

    fn hex_str(b: &[u8]) -> String {
        b.iter().map(|x| format!("{x:02x}")).collect()
    }

    fn kind_of(
        bytes: &[u8],
        f: impl FnOnce(&mut Decoder) -> Result<(), DecodeError>,
    ) -> DecodeErrorKind {
        let mut d = Decoder::new(bytes, "test");
        match f(&mut d).and_then(|_| d.finish()) {
            Ok(()) => panic!("accepted {bytes:02x?}"),
            Err(e) => e.kind,
        }
    }

    #[test]
    fn rejects_non_shortest_integers_and_lengths() {
        for bad in [
            &[0x18, 0x17][..],
            &[0x19, 0x00, 0xff],
            &[0x1a, 0, 0, 0xff, 0xff],
            &[0x1b, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff],
        ] {
            assert_eq!(
                kind_of(bad, |d| d.uint("v").map(|_| ())),
                DecodeErrorKind::NonShortest
            );
        }
        assert_eq!(
            kind_of(&[0x38, 0x00], |d| d.int("v").map(|_| ())),
            DecodeErrorKind::NonShortest
        );
        assert_eq!(
            kind_of(&[0x58, 0x01, 0xaa], |d| d.bytes("v", 10).map(|_| ())),
            DecodeErrorKind::NonShortest
        );
        assert_eq!(
            kind_of(&[0x98, 0x01, 0x00], |d| d.array("v", 10).map(|_| ())),
            DecodeErrorKind::NonShortest
        );
    }

    #[test]
    fn rejects_items_outside_the_subset() {
        let u = |d: &mut Decoder| d.uint("v").map(|_| ());
        assert_eq!(kind_of(&[0xa0], u), DecodeErrorKind::Map);
        assert_eq!(kind_of(&[0xc1, 0x00], u), DecodeErrorKind::Tag);
        assert_eq!(kind_of(&[0xf9, 0x00, 0x00], u), DecodeErrorKind::Float);
        assert_eq!(
            kind_of(&[0xfb, 0, 0, 0, 0, 0, 0, 0, 0], u),
            DecodeErrorKind::Float
        );
        assert_eq!(kind_of(&[0x9f, 0xff], u), DecodeErrorKind::IndefiniteLength);
        assert_eq!(kind_of(&[0x5f, 0xff], u), DecodeErrorKind::IndefiniteLength);
        assert_eq!(
            kind_of(&[0xf7], u),
            DecodeErrorKind::ReservedSimple { byte: 0xf7 }
        );
        assert_eq!(
            kind_of(&[0xf8, 0x20], u),
            DecodeErrorKind::ReservedSimple { byte: 0xf8 }
        );
        assert_eq!(
            kind_of(&[0x1c], u),
            DecodeErrorKind::ReservedInfo { byte: 0x1c }
        );
        assert_eq!(
            kind_of(&[0x00, 0x00], u),
            DecodeErrorKind::TrailingBytes { count: 1 }
        );
        assert_eq!(kind_of(&[0x19, 0x01], u), DecodeErrorKind::Truncated);
        assert_eq!(
            kind_of(&[0x45, 1, 2], |d| d.bytes("v", 9).map(|_| ())),
            DecodeErrorKind::Truncated
        );
        assert_eq!(
            kind_of(&[0x62, 0xff, 0xfe], |d| d.text("v", 9).map(|_| ())),
            DecodeErrorKind::InvalidUtf8
        );
        assert_eq!(
            kind_of(&[0x3b, 0x80, 0, 0, 0, 0, 0, 0, 0], |d| d
                .int("v")
                .map(|_| ())),
            DecodeErrorKind::OutOfRange {
                value: -1 - (1i128 << 63)
            }
        );
        assert_eq!(
            kind_of(&[0x43, 1, 2, 3], |d| d.fixed::<4>("v").map(|_| ())),
            DecodeErrorKind::WrongLength {
                expected: 4,
                found: 3
            }
        );
    }

    #[test]
    fn error_names_record_field_and_offset() {
        let mut d = Decoder::new(&[0x82, 0x01, 0x18, 0x01], "EventAtom");
        d.array_exact("record", 2).unwrap();
        d.uint("type").unwrap();
        let e = d.uint("seq").unwrap_err();
        assert_eq!((e.record, e.field, e.offset), ("EventAtom", "seq", 2));
        assert_eq!(
            e.to_string(),
            "EventAtom field `seq` at byte 2: integer or length not in shortest form"
        );
    }

    proptest::proptest! {
        #[test]
        fn int_round_trips_and_matches_ciborium(v: i64) {
            let b = enc(|e| { e.int(v); });
            let mut d = Decoder::new(&b, "test");
            proptest::prop_assert_eq!(d.int("v").unwrap(), v);
            d.finish().unwrap();
            // An independent encoder agrees byte for byte.
            let mut other = Vec::new();
            ciborium::ser::into_writer(&v, &mut other).unwrap();
            proptest::prop_assert_eq!(b, other);
        }

        #[test]
        fn bytes_round_trip_and_match_ciborium(v: Vec<u8>) {
            let b = enc(|e| { e.bytes(&v); });
            let mut d = Decoder::new(&b, "test");
            proptest::prop_assert_eq!(d.bytes("v", u64::MAX).unwrap(), &v[..]);
            let mut other = Vec::new();
            ciborium::ser::into_writer(&ciborium::Value::Bytes(v.clone()), &mut other).unwrap();
            proptest::prop_assert_eq!(b, other);
        }

        #[test]
        fn decoder_never_panics(bytes: Vec<u8>) {
            let mut d = Decoder::new(&bytes, "test");
            let _ = d.array("a", 8);
            let _ = d.int("i");
            let _ = d.bytes("b", 64);
            let _ = d.text("t", 64);
            let _ = d.fixed::<16>("f");
            let _ = d.bool("b");
            let _ = d.finish();
        }
    }
}
