//! `.rtrace` trace files: the WAL of raw events (FORMAT.md §7.2).
//!
//! A file is an 8-byte magic followed by frames. A frame is a 44-byte header and a
//! zstd-compressed payload; the header carries the payload's lengths, the first
//! `seq`, the event count and a BLAKE3 checksum over header and payload. Run frames
//! hold a `RunMeta`; batch frames hold consecutive raw events of one run; cgroups
//! frames name the cgroup paths of ids the run's later events carry; loss frames
//! count events the recorder knows were lost before the run's next event; exes frames
//! give the content hashes of executables the run's later events name; blob frames
//! carry the bytes of executables Full capture keeps; health frames record a sensor
//! program found silent (and the calls its gap cost) or attached again. The writer
//! fsyncs once per frame; the reader is strict and reports a torn tail or a corrupt
//! frame with file, offset and frame number, and can skip past a corrupt frame.

use crate::raw::RawEvent;
use ritma_schemas::cbor::{DecodeError, DecodeErrorKind, Decoder, Encoder};
use ritma_schemas::records::{HealthKind, LossReason, Record, RunMeta};
use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

/// First bytes of every trace file: "RTRACE", then format version 1.
pub const FILE_MAGIC: [u8; 8] = *b"RTRACE\x00\x01";
/// First bytes of every frame.
pub const FRAME_MAGIC: [u8; 4] = *b"RTBF";
pub const FRAME_HEADER_LEN: usize = 44;
/// Largest compressed or uncompressed payload of one frame.
pub const MAX_PAYLOAD_LEN: u32 = 64 << 20;
/// Most events in one batch frame.
pub const MAX_BATCH_EVENTS: u32 = 1 << 20;
/// Most entries in one cgroups frame.
pub const MAX_CGROUP_ENTRIES: u32 = 1 << 16;
/// Longest cgroup path of a cgroups frame entry.
pub const MAX_CGROUP_PATH_LEN: usize = 4096;
/// zstd level of the WAL: cheap to write, it is read once per replay.
const ZSTD_LEVEL: i32 = 1;

/// One entry of a cgroups frame: (cgroup id, cgroup path).
pub type CgroupEntry = (u64, Vec<u8>);
/// Most entries in one exes frame.
pub const MAX_EXE_ENTRIES: u32 = 1 << 16;
/// Most bytes of a blob one blob frame carries.
pub const MAX_BLOB_PART_LEN: usize = 16 << 20;
/// Largest blob a trace carries (the CAS's bound, FORMAT.md §8.6).
pub const MAX_BLOB_LEN: u64 = 1 << 32;

/// Whether an executable's hash is in the sensor's baseline of known binaries.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum BaselineStatus {
    /// The sensor had no baseline.
    NoBaseline = 0,
    Listed = 1,
    Unlisted = 2,
}

impl BaselineStatus {
    pub fn from_u64(v: u64) -> Option<Self> {
        Some(match v {
            0 => BaselineStatus::NoBaseline,
            1 => BaselineStatus::Listed,
            2 => BaselineStatus::Unlisted,
            _ => return None,
        })
    }
}

/// One entry of an exes frame: the executable with device and inode numbers `dev`,
/// `ino` (as exec and present events carry them) had the content hash `hash`.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ExeEntry {
    pub dev: u64,
    pub ino: u64,
    /// Plain BLAKE3 of the file's bytes (what `b3sum` prints).
    pub hash: [u8; 32],
    pub baseline: BaselineStatus,
}

const KIND_RUN: u8 = 1;
const KIND_BATCH: u8 = 2;
const KIND_CGROUPS: u8 = 3;
const KIND_LOSS: u8 = 4;
const KIND_CLOCK: u8 = 5;
const KIND_EXES: u8 = 6;
const KIND_BLOB: u8 = 7;
const KIND_HEALTH: u8 = 8;
const KIND_CONTINUE: u8 = 9;

/// Where in a trace something went wrong.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TracePos {
    pub path: PathBuf,
    /// Byte offset of the frame (or of the file header).
    pub offset: u64,
    /// Frame number, counting from 0.
    pub frame: u64,
}

impl std::fmt::Display for TracePos {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} frame {} at byte {}",
            self.path.display(),
            self.frame,
            self.offset
        )
    }
}

#[derive(Debug, thiserror::Error)]
pub enum TraceError {
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: io::Error },
    #[error("{path}: not a Ritma trace (bad file magic)")]
    NotATrace { path: PathBuf },
    #[error(
        "{pos}: torn tail: the file ends {missing} bytes into the frame (an interrupted write)"
    )]
    TornTail { pos: TracePos, missing: u64 },
    #[error("{pos}: corrupt frame: {reason}")]
    Corrupt { pos: TracePos, reason: String },
    #[error("{pos}: event {index} of the batch: {source}")]
    Event {
        pos: TracePos,
        index: u32,
        source: DecodeError,
    },
    #[error("{pos}: cgroup entry {index} of the frame: {source}")]
    Cgroup {
        pos: TracePos,
        index: u32,
        source: DecodeError,
    },
    #[error("{pos}: exe entry {index} of the frame: {source}")]
    Exe {
        pos: TracePos,
        index: u32,
        source: DecodeError,
    },
    #[error("{pos}: blob frame: {source}")]
    Blob { pos: TracePos, source: DecodeError },
    #[error("{pos}: loss frame: {source}")]
    Loss { pos: TracePos, source: DecodeError },
    #[error("{pos}: health frame: {source}")]
    Health { pos: TracePos, source: DecodeError },
    #[error("{pos}: clock frame: {source}")]
    Clock { pos: TracePos, source: DecodeError },
    #[error("{pos}: run metadata: {source}")]
    Run { pos: TracePos, source: DecodeError },
    #[error("{path}: {reason}")]
    Misuse { path: PathBuf, reason: String },
}

impl TraceError {
    /// A frame in the middle that does not check or decode: a reader may skip to the
    /// next valid frame (`TraceReader::skip_corrupt`), the events between being a seq gap.
    pub fn is_skippable(&self) -> bool {
        matches!(
            self,
            TraceError::Corrupt { .. }
                | TraceError::Event { .. }
                | TraceError::Cgroup { .. }
                | TraceError::Loss { .. }
                | TraceError::Clock { .. }
                | TraceError::Exe { .. }
                | TraceError::Blob { .. }
        )
    }
}

/// One item read from a trace.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TraceItem {
    /// A run starts; later batches name it by `run` (its order among run and continue frames).
    Run { run: u16, meta: RunMeta },
    /// A run begun in an earlier file goes on in this one (`ritma run` starts a new WAL
    /// file each hour): `meta` is its run frame's RunMeta, `next_seq` where its next batch
    /// starts. Later frames of this file name it by `run`.
    Continue {
        run: u16,
        meta: RunMeta,
        next_seq: u64,
    },
    /// Consecutive events of one run, `seq` = first_seq, first_seq + 1, ….
    Batch { run: u16, events: Vec<RawEvent> },
    /// Paths of cgroup ids, for the events of `run` from `first_seq` on (the run's
    /// next seq when written): (cgroup id, path), ids strictly ascending.
    Cgroups {
        run: u16,
        first_seq: u64,
        entries: Vec<CgroupEntry>,
    },
    /// `count` events of `run` were lost (by the kernel or the recorder) just before
    /// the event with seq `at_seq` (the run's next seq when written), for `reason`.
    Loss {
        run: u16,
        at_seq: u64,
        reason: LossReason,
        count: u64,
    },
    /// The recorder's clock read `mono_ns` (kernel monotonic ns) after it had written
    /// every event of `run` read before then: time has reached `mono_ns` on that node
    /// even if no event says so (the watermark's idle advance, recorded).
    Clock { run: u16, at_seq: u64, mono_ns: u64 },
    /// Content hashes of executables, for the events of `run` from `first_seq` on (the
    /// run's next seq when written), ascending by (dev, ino).
    Exes {
        run: u16,
        first_seq: u64,
        entries: Vec<ExeEntry>,
    },
    /// Bytes `offset..offset + data.len()` of the blob `hash` of `size` bytes; a blob's
    /// parts follow each other in order (`BlobAssembly` puts them together).
    BlobPart {
        run: u16,
        hash: [u8; 32],
        size: u64,
        offset: u64,
        data: Vec<u8>,
    },
    /// The sensor found its program `subject` silent (probe_detached; `lost`: the calls
    /// the gap cost, `None` if nothing counted them) or attached it again
    /// (probe_reattached; `lost` is 0), at `mono_ns`, just before the event of `run` with
    /// seq `at_seq` (the run's next seq when written).
    Health(HealthNote),
}

/// A frame moved past by [`TraceReader::skim`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Skimmed {
    /// Where the frame starts.
    pub offset: u64,
    pub run: u16,
    /// A run or continue frame's item; `None` for any other frame.
    pub item: Option<TraceItem>,
    /// The frame's run's next seq after it (`None` for a run the file has not started).
    pub next_seq: Option<u64>,
}

/// What a health frame says (FORMAT.md §7.2).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct HealthNote {
    pub run: u16,
    pub at_seq: u64,
    pub kind: HealthKind,
    pub subject: String,
    pub mono_ns: u64,
    pub lost: Option<u64>,
}

/// Longest subject (a program name) of a health frame.
pub const MAX_HEALTH_SUBJECT_LEN: usize = 256;

/// The parts a blob is written in: (offset, bytes), at most `MAX_BLOB_PART_LEN` each;
/// the empty blob is one empty part.
pub fn blob_parts(data: &[u8]) -> impl Iterator<Item = (u64, &[u8])> {
    let n = data.len().div_ceil(MAX_BLOB_PART_LEN).max(1);
    (0..n).map(move |i| {
        let start = i * MAX_BLOB_PART_LEN;
        (
            start as u64,
            &data[start..data.len().min(start + MAX_BLOB_PART_LEN)],
        )
    })
}

/// A whole blob: its hash and its bytes.
pub type Blob = ([u8; 32], Vec<u8>);

/// Puts the parts of blob frames back together and checks each blob against its hash.
#[derive(Default)]
pub struct BlobAssembly {
    hash: [u8; 32],
    size: u64,
    data: Vec<u8>,
    open: bool,
}

impl BlobAssembly {
    /// Whether a blob's first parts were taken and its last is still to come.
    pub fn in_progress(&self) -> bool {
        self.open
    }

    /// Takes the next part; returns the blob it completes, and why a blob in progress
    /// was given up, if one was (a part out of order, a blob whose parts stop before its
    /// end, or bytes that do not hash to the blob's name).
    pub fn push(
        &mut self,
        hash: [u8; 32],
        size: u64,
        offset: u64,
        data: &[u8],
    ) -> (Option<Blob>, Option<String>) {
        let mut fault = None;
        if offset == 0 {
            if self.open {
                fault = Some(format!(
                    "blob {} ends before its last part",
                    hex32(&self.hash)
                ));
            }
            (self.hash, self.size, self.open) = (hash, size, true);
            self.data.clear();
        } else if !(self.open
            && self.hash == hash
            && self.size == size
            && self.data.len() as u64 == offset)
        {
            if self.open {
                fault = Some(format!(
                    "blob {} ends before its last part",
                    hex32(&self.hash)
                ));
            }
            self.open = false;
            self.data = Vec::new();
            let stray = format!(
                "a part of blob {} at byte {offset} continues no blob in progress",
                hex32(&hash)
            );
            return (
                None,
                Some(fault.map_or(stray.clone(), |f| format!("{f}; {stray}"))),
            );
        }
        self.data.extend_from_slice(data);
        if (self.data.len() as u64) < self.size {
            return (None, fault);
        }
        self.open = false;
        let data = std::mem::take(&mut self.data);
        if *blake3::hash(&data).as_bytes() != self.hash {
            let bad = format!(
                "blob {}: its bytes do not hash to its name",
                hex32(&self.hash)
            );
            return (
                None,
                Some(fault.map_or(bad.clone(), |f| format!("{f}; {bad}"))),
            );
        }
        (Some((self.hash, data)), fault)
    }
}

fn hex32(h: &[u8; 32]) -> String {
    blake3::Hash::from(*h).to_hex().to_string()
}

struct FrameHeader {
    kind: u8,
    run: u16,
    first_seq: u64,
    count: u32,
    raw_len: u32,
    comp_len: u32,
    checksum: [u8; 16],
}

impl FrameHeader {
    fn encode_without_checksum(&self) -> [u8; 28] {
        let mut h = [0u8; 28];
        h[..4].copy_from_slice(&FRAME_MAGIC);
        h[4] = self.kind;
        h[6..8].copy_from_slice(&self.run.to_be_bytes());
        h[8..16].copy_from_slice(&self.first_seq.to_be_bytes());
        h[16..20].copy_from_slice(&self.count.to_be_bytes());
        h[20..24].copy_from_slice(&self.raw_len.to_be_bytes());
        h[24..28].copy_from_slice(&self.comp_len.to_be_bytes());
        h
    }

    /// Parses the fixed fields; semantic checks happen in the reader.
    fn parse(b: &[u8; FRAME_HEADER_LEN]) -> Result<Self, String> {
        if b[..4] != FRAME_MAGIC {
            return Err("bad frame magic".into());
        }
        if b[5] != 0 {
            return Err("reserved header byte is not zero".into());
        }
        let be32 = |i: usize| u32::from_be_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
        let mut checksum = [0u8; 16];
        checksum.copy_from_slice(&b[28..44]);
        Ok(FrameHeader {
            kind: b[4],
            run: u16::from_be_bytes([b[6], b[7]]),
            first_seq: u64::from_be_bytes(b[8..16].try_into().expect("8 bytes")),
            count: be32(16),
            raw_len: be32(20),
            comp_len: be32(24),
            checksum,
        })
    }
}

fn checksum(header: &[u8; 28], payload: &[u8]) -> [u8; 16] {
    let mut h = blake3::Hasher::new();
    h.update(header);
    h.update(payload);
    let mut out = [0u8; 16];
    out.copy_from_slice(&h.finalize().as_bytes()[..16]);
    out
}

/// Reads a trace file frame by frame.
pub struct TraceReader {
    path: PathBuf,
    file: io::BufReader<File>,
    offset: u64,
    frame: u64,
    /// Next expected seq of each run seen so far.
    next_seq: Vec<u64>,
    /// One zstd context and two buffers for every frame: large buffers freed and
    /// allocated again per frame make the allocator consolidate its free lists.
    zstd: zstd::bulk::Decompressor<'static>,
    payload: Vec<u8>,
    raw: Vec<u8>,
}

/// Frame buffers larger than this are not kept for the next frame.
const KEEP_BUFFER_LEN: usize = 8 << 20;

impl TraceReader {
    pub fn open(path: &Path) -> Result<Self, TraceError> {
        let io_err = |source| TraceError::Io {
            path: path.to_owned(),
            source,
        };
        let mut file = io::BufReader::with_capacity(1 << 20, File::open(path).map_err(io_err)?);
        let mut magic = [0u8; 8];
        match read_full(&mut file, &mut magic).map_err(io_err)? {
            8 if magic == FILE_MAGIC => {}
            _ => {
                return Err(TraceError::NotATrace {
                    path: path.to_owned(),
                })
            }
        }
        Ok(TraceReader {
            path: path.to_owned(),
            file,
            offset: 8,
            frame: 0,
            next_seq: Vec::new(),
            zstd: zstd::bulk::Decompressor::new().map_err(io_err)?,
            payload: Vec::new(),
            raw: Vec::new(),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Byte offset of the next frame.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    fn pos(&self) -> TracePos {
        TracePos {
            path: self.path.clone(),
            offset: self.offset,
            frame: self.frame,
        }
    }

    fn corrupt(&self, reason: impl Into<String>) -> TraceError {
        TraceError::Corrupt {
            pos: self.pos(),
            reason: reason.into(),
        }
    }

    fn io(&self, source: io::Error) -> TraceError {
        TraceError::Io {
            path: self.path.clone(),
            source,
        }
    }

    /// The next item, `None` at a clean end of file.
    pub fn next_item(&mut self) -> Result<Option<TraceItem>, TraceError> {
        let mut hb = [0u8; FRAME_HEADER_LEN];
        let got = read_full(&mut self.file, &mut hb).map_err(|e| self.io(e))?;
        if got == 0 {
            return Ok(None);
        }
        if got < FRAME_HEADER_LEN {
            return Err(TraceError::TornTail {
                pos: self.pos(),
                missing: (FRAME_HEADER_LEN - got) as u64,
            });
        }
        let h = FrameHeader::parse(&hb).map_err(|r| self.corrupt(r))?;
        if h.comp_len > MAX_PAYLOAD_LEN || h.raw_len > MAX_PAYLOAD_LEN {
            return Err(self.corrupt(format!(
                "payload length {}/{} exceeds {MAX_PAYLOAD_LEN}",
                h.comp_len, h.raw_len
            )));
        }
        let mut payload = std::mem::take(&mut self.payload);
        payload.clear();
        payload.resize(h.comp_len as usize, 0);
        let got = read_full(&mut self.file, &mut payload).map_err(|e| self.io(e))?;
        if got < payload.len() {
            return Err(TraceError::TornTail {
                pos: self.pos(),
                missing: (payload.len() - got) as u64,
            });
        }
        let head: [u8; 28] = hb[..28].try_into().expect("28 bytes");
        if checksum(&head, &payload) != h.checksum {
            return Err(self.corrupt("checksum mismatch"));
        }
        let item = self.decode_frame(&h, &payload)?;
        self.offset += (FRAME_HEADER_LEN + payload.len()) as u64;
        self.frame += 1;
        if payload.capacity() <= KEEP_BUFFER_LEN {
            self.payload = payload;
        }
        Ok(Some(item))
    }

    /// Decompresses a frame's payload into `self.raw`: exactly `raw_len` bytes.
    fn decompress(&mut self, h: &FrameHeader, payload: &[u8]) -> Result<(), TraceError> {
        // One byte of room more than announced, to catch a payload longer than its header says.
        let room = h.raw_len as usize + 1;
        if self.raw.len() < room {
            self.raw.resize(room, 0);
        }
        let n = self
            .zstd
            .decompress_to_buffer(payload, &mut self.raw[..room])
            .map_err(|e| self.corrupt(format!("zstd: {e}")))?;
        if n != h.raw_len as usize {
            return Err(self.corrupt(format!(
                "payload is {n} bytes uncompressed, header says {}",
                h.raw_len
            )));
        }
        Ok(())
    }

    fn decode_frame(&mut self, h: &FrameHeader, payload: &[u8]) -> Result<TraceItem, TraceError> {
        self.decompress(h, payload)?;
        let mut raw = std::mem::take(&mut self.raw);
        let item = self.decode_raw(h, &raw[..h.raw_len as usize]);
        if raw.len() > KEEP_BUFFER_LEN {
            raw = Vec::new();
        }
        self.raw = raw;
        item
    }

    /// Decodes a frame's uncompressed payload.
    fn decode_raw(&mut self, h: &FrameHeader, raw: &[u8]) -> Result<TraceItem, TraceError> {
        match h.kind {
            KIND_RUN => {
                let meta = self.run_meta(h, raw, "run")?;
                if meta.first_seq != h.first_seq {
                    return Err(self.corrupt("run frame first_seq differs from its RunMeta"));
                }
                self.next_seq.push(meta.first_seq);
                Ok(TraceItem::Run { run: h.run, meta })
            }
            KIND_CONTINUE => {
                let meta = self.run_meta(h, raw, "continue")?;
                if h.first_seq < meta.first_seq {
                    return Err(self.corrupt(format!(
                        "continue frame at seq {}, before its run's first seq {}",
                        h.first_seq, meta.first_seq
                    )));
                }
                self.next_seq.push(h.first_seq);
                Ok(TraceItem::Continue {
                    run: h.run,
                    meta,
                    next_seq: h.first_seq,
                })
            }
            KIND_BATCH => {
                self.check_continues_run(h, "batch")?;
                if h.count == 0 || h.count > MAX_BATCH_EVENTS {
                    return Err(self.corrupt(format!("batch of {} events", h.count)));
                }
                let mut d = Decoder::new(raw, "RawEvent");
                let mut events = Vec::with_capacity(h.count as usize);
                for index in 0..h.count {
                    let e = RawEvent::decode_from(&mut d).map_err(|source| TraceError::Event {
                        pos: self.pos(),
                        index,
                        source,
                    })?;
                    if e.seq != h.first_seq + index as u64 {
                        return Err(self.corrupt(format!(
                            "event {index} has seq {}, expected {}",
                            e.seq,
                            h.first_seq + index as u64
                        )));
                    }
                    events.push(e);
                }
                d.finish().map_err(|source| TraceError::Event {
                    pos: self.pos(),
                    index: h.count,
                    source,
                })?;
                self.next_seq[h.run as usize] = h.first_seq + h.count as u64;
                Ok(TraceItem::Batch { run: h.run, events })
            }
            KIND_CGROUPS => {
                self.check_continues_run(h, "cgroups frame")?;
                if h.count == 0 || h.count > MAX_CGROUP_ENTRIES {
                    return Err(self.corrupt(format!("cgroups frame of {} entries", h.count)));
                }
                let entries = decode_cgroup_entries(raw, h.count).map_err(|(index, source)| {
                    TraceError::Cgroup {
                        pos: self.pos(),
                        index,
                        source,
                    }
                })?;
                Ok(TraceItem::Cgroups {
                    run: h.run,
                    first_seq: h.first_seq,
                    entries,
                })
            }
            KIND_LOSS => {
                self.check_continues_run(h, "loss frame")?;
                if h.count != 0 {
                    return Err(self.corrupt(format!("loss frame with count {}, not 0", h.count)));
                }
                let (reason, count) = decode_loss(raw).map_err(|source| TraceError::Loss {
                    pos: self.pos(),
                    source,
                })?;
                if reason == LossReason::ProbeDetached {
                    return Err(self.corrupt(
                        "loss frame of reason probe_detached: a health frame records that loss",
                    ));
                }
                Ok(TraceItem::Loss {
                    run: h.run,
                    at_seq: h.first_seq,
                    reason,
                    count,
                })
            }
            KIND_CLOCK => {
                self.check_continues_run(h, "clock frame")?;
                if h.count != 0 {
                    return Err(self.corrupt(format!("clock frame with count {}, not 0", h.count)));
                }
                let mono_ns = decode_clock(raw).map_err(|source| TraceError::Clock {
                    pos: self.pos(),
                    source,
                })?;
                Ok(TraceItem::Clock {
                    run: h.run,
                    at_seq: h.first_seq,
                    mono_ns,
                })
            }
            KIND_EXES => {
                self.check_continues_run(h, "exes frame")?;
                if h.count == 0 || h.count > MAX_EXE_ENTRIES {
                    return Err(self.corrupt(format!("exes frame of {} entries", h.count)));
                }
                let entries = decode_exe_entries(raw, h.count).map_err(|(index, source)| {
                    TraceError::Exe {
                        pos: self.pos(),
                        index,
                        source,
                    }
                })?;
                Ok(TraceItem::Exes {
                    run: h.run,
                    first_seq: h.first_seq,
                    entries,
                })
            }
            KIND_BLOB => {
                self.check_continues_run(h, "blob frame")?;
                if h.count != 0 {
                    return Err(self.corrupt(format!("blob frame with count {}, not 0", h.count)));
                }
                let (hash, size, offset, data) =
                    decode_blob_part(raw).map_err(|source| TraceError::Blob {
                        pos: self.pos(),
                        source,
                    })?;
                Ok(TraceItem::BlobPart {
                    run: h.run,
                    hash,
                    size,
                    offset,
                    data,
                })
            }
            KIND_HEALTH => {
                self.check_continues_run(h, "health frame")?;
                if h.count != 0 {
                    return Err(self.corrupt(format!("health frame with count {}, not 0", h.count)));
                }
                let (kind, subject, mono_ns, lost) =
                    decode_health(raw).map_err(|source| TraceError::Health {
                        pos: self.pos(),
                        source,
                    })?;
                Ok(TraceItem::Health(HealthNote {
                    run: h.run,
                    at_seq: h.first_seq,
                    kind,
                    subject,
                    mono_ns,
                    lost,
                }))
            }
            k => Err(self.corrupt(format!("unknown frame kind {k}"))),
        }
    }

    /// The RunMeta of a run or continue frame (`what`), which numbers the next run.
    fn run_meta(&self, h: &FrameHeader, raw: &[u8], what: &str) -> Result<RunMeta, TraceError> {
        if h.run as usize != self.next_seq.len() || h.count != 0 {
            return Err(self.corrupt(format!(
                "{what} frame numbered {} with count {}, expected run {} and count 0",
                h.run,
                h.count,
                self.next_seq.len()
            )));
        }
        RunMeta::decode(raw).map_err(|source| TraceError::Run {
            pos: self.pos(),
            source,
        })
    }

    /// A batch, cgroups or loss frame must name a known run and start at its next seq.
    fn check_continues_run(&self, h: &FrameHeader, what: &str) -> Result<(), TraceError> {
        let Some(&expected) = self.next_seq.get(h.run as usize) else {
            return Err(self.corrupt(format!(
                "{what} of run {} before that run's run frame",
                h.run
            )));
        };
        if h.first_seq != expected {
            return Err(self.corrupt(format!(
                "{what} starts at seq {}, run {} continues at {expected}",
                h.first_seq, h.run
            )));
        }
        Ok(())
    }

    /// Moves past the next frame reading only its header (and, for a run or continue
    /// frame, its RunMeta), its payload unread and unchecked: for a reader that needs where
    /// the runs' seqs stand, not the events (a restart skipping to its restart point, the
    /// next seq of a WAL). Keeps the runs' numbering and next seqs as reading would.
    /// `None` at the end of the file or at a torn tail.
    pub fn skim(&mut self) -> Result<Option<Skimmed>, TraceError> {
        let mut hb = [0u8; FRAME_HEADER_LEN];
        if read_full(&mut self.file, &mut hb).map_err(|e| self.io(e))? < FRAME_HEADER_LEN {
            return Ok(None);
        }
        let h = FrameHeader::parse(&hb).map_err(|r| self.corrupt(r))?;
        if h.comp_len > MAX_PAYLOAD_LEN || h.raw_len > MAX_PAYLOAD_LEN {
            return Err(self.corrupt("payload length exceeds its bound"));
        }
        let item = match h.kind {
            KIND_RUN | KIND_CONTINUE => {
                let mut payload = vec![0u8; h.comp_len as usize];
                if read_full(&mut self.file, &mut payload).map_err(|e| self.io(e))? < payload.len()
                {
                    return Ok(None);
                }
                let head: [u8; 28] = hb[..28].try_into().expect("28 bytes");
                if checksum(&head, &payload) != h.checksum {
                    return Err(self.corrupt("checksum mismatch"));
                }
                Some(self.decode_frame(&h, &payload)?)
            }
            _ => {
                let len = std::fs::metadata(&self.path).map_err(|e| self.io(e))?.len();
                if self.offset + (FRAME_HEADER_LEN as u64) + u64::from(h.comp_len) > len {
                    return Ok(None);
                }
                self.file
                    .seek_relative(i64::from(h.comp_len))
                    .map_err(|e| self.io(e))?;
                if h.kind == KIND_BATCH {
                    if let Some(n) = self.next_seq.get_mut(h.run as usize) {
                        *n = h.first_seq + u64::from(h.count);
                    }
                }
                None
            }
        };
        let at = self.offset;
        self.offset += (FRAME_HEADER_LEN + h.comp_len as usize) as u64;
        self.frame += 1;
        Ok(Some(Skimmed {
            offset: at,
            run: h.run,
            item,
            next_seq: self.next_seq.get(h.run as usize).copied(),
        }))
    }

    /// After a corrupt frame: moves to the next frame whose checksum is valid and
    /// returns how many bytes were skipped. Events lost in the skipped bytes show
    /// as a gap in `seq`, which the next batch is allowed to jump over (the caller
    /// counts the gap as loss). Returns `None` if no valid frame follows.
    pub fn skip_corrupt(&mut self) -> Result<Option<u64>, TraceError> {
        let start = self.offset;
        let file = self.file.get_mut();
        file.seek(SeekFrom::Start(start + 1))
            .map_err(|e| TraceError::Io {
                path: self.path.clone(),
                source: e,
            })?;
        let mut rest = Vec::new();
        file.read_to_end(&mut rest).map_err(|e| TraceError::Io {
            path: self.path.clone(),
            source: e,
        })?;
        let mut i = 0;
        while let Some(p) = find(&rest[i..], &FRAME_MAGIC) {
            let at = i + p;
            if let Some(h) = valid_frame_at(&rest[at..]) {
                let new_offset = start + 1 + at as u64;
                self.file
                    .seek(SeekFrom::Start(new_offset))
                    .map_err(|e| TraceError::Io {
                        path: self.path.clone(),
                        source: e,
                    })?;
                self.offset = new_offset;
                self.frame += 1;
                // Let the next frame of its run start wherever the skipped data ended.
                if h.kind != KIND_RUN && h.kind != KIND_CONTINUE {
                    if let Some(n) = self.next_seq.get_mut(h.run as usize) {
                        if h.first_seq > *n {
                            *n = h.first_seq;
                        }
                    }
                }
                return Ok(Some(new_offset - start));
            }
            i = at + 1;
        }
        Ok(None)
    }
}

/// The runs of a trace, read from its run frames alone (batch payloads are skipped
/// unread, so this is cheap; `TraceReader` checks everything on the real pass).
pub fn scan_runs(path: &Path) -> Result<Vec<RunMeta>, TraceError> {
    let mut r = TraceReader::open(path)?;
    let mut runs = Vec::new();
    loop {
        let mut hb = [0u8; FRAME_HEADER_LEN];
        let got = read_full(&mut r.file, &mut hb).map_err(|e| r.io(e))?;
        if got < FRAME_HEADER_LEN {
            return Ok(runs);
        }
        let h = FrameHeader::parse(&hb).map_err(|reason| r.corrupt(reason))?;
        if h.comp_len > MAX_PAYLOAD_LEN || h.raw_len > MAX_PAYLOAD_LEN {
            return Err(r.corrupt("payload length exceeds its bound"));
        }
        if h.kind == KIND_RUN || h.kind == KIND_CONTINUE {
            let mut payload = vec![0u8; h.comp_len as usize];
            if read_full(&mut r.file, &mut payload).map_err(|e| r.io(e))? < payload.len() {
                return Ok(runs);
            }
            let head: [u8; 28] = hb[..28].try_into().expect("28 bytes");
            if checksum(&head, &payload) != h.checksum {
                return Err(r.corrupt("checksum mismatch"));
            }
            match r.decode_frame(&h, &payload)? {
                TraceItem::Run { meta, .. } | TraceItem::Continue { meta, .. } => runs.push(meta),
                _ => {}
            }
        } else {
            r.file
                .seek_relative(h.comp_len as i64)
                .map_err(|e| r.io(e))?;
        }
        r.offset += (FRAME_HEADER_LEN + h.comp_len as usize) as u64;
        r.frame += 1;
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// The header at the start of `b`, if a whole frame with a valid checksum is there.
fn valid_frame_at(b: &[u8]) -> Option<FrameHeader> {
    let hb: &[u8; FRAME_HEADER_LEN] = b.get(..FRAME_HEADER_LEN)?.try_into().ok()?;
    let h = FrameHeader::parse(hb).ok()?;
    let payload = b.get(FRAME_HEADER_LEN..FRAME_HEADER_LEN + h.comp_len as usize)?;
    (checksum(&h.encode_without_checksum(), payload) == h.checksum).then_some(h)
}

/// Why `path` cannot be a cgroups frame entry's path, if it cannot.
fn cgroup_path_fault(path: &[u8]) -> Option<&'static str> {
    match path.first() {
        None => Some("cgroup path is empty"),
        _ if path.len() > MAX_CGROUP_PATH_LEN => Some("cgroup path is longer than 4096 bytes"),
        Some(b'/') => None,
        Some(_) => Some("cgroup path does not start with '/'"),
    }
}

/// Decodes `count` entries `[cgroup_id, path]` filling `raw`; an error names the entry
/// (`count` for bytes after the last one).
fn decode_cgroup_entries(raw: &[u8], count: u32) -> Result<Vec<CgroupEntry>, (u32, DecodeError)> {
    let mut d = Decoder::new(raw, "CgroupEntry");
    // An entry takes at least 4 bytes: a hostile count cannot reserve more than the payload.
    let mut entries: Vec<CgroupEntry> = Vec::with_capacity((count as usize).min(raw.len() / 4));
    for index in 0..count {
        let prev = entries.last().map(|e| e.0);
        let entry = decode_cgroup_entry(&mut d, prev).map_err(|e| (index, e))?;
        entries.push(entry);
    }
    d.finish().map_err(|e| (count, e))?;
    Ok(entries)
}

fn decode_cgroup_entry(d: &mut Decoder<'_>, prev: Option<u64>) -> Result<CgroupEntry, DecodeError> {
    d.array_exact("(entry)", 2)?;
    let at = d.position();
    let id = d.uint("cgroup_id")?;
    if prev.is_some_and(|p| id <= p) {
        return Err(d.error_at("cgroup_id", at, DecodeErrorKind::NotAscending));
    }
    let at = d.position();
    let path = d.bytes("path", MAX_CGROUP_PATH_LEN as u64)?;
    if let Some(why) = cgroup_path_fault(path) {
        return Err(d.error_at("path", at, DecodeErrorKind::Invalid(why)));
    }
    Ok((id, path.to_vec()))
}

/// Decodes `count` entries `[dev, ino, hash, baseline]` filling `raw`, strictly
/// ascending by (dev, ino); an error names the entry (`count` for trailing bytes).
fn decode_exe_entries(raw: &[u8], count: u32) -> Result<Vec<ExeEntry>, (u32, DecodeError)> {
    let mut d = Decoder::new(raw, "ExeEntry");
    // An entry takes at least 38 bytes: a hostile count cannot reserve more than the payload.
    let mut entries: Vec<ExeEntry> = Vec::with_capacity((count as usize).min(raw.len() / 38));
    for index in 0..count {
        let fail = |e| (index, e);
        d.array_exact("(entry)", 4).map_err(fail)?;
        let at = d.position();
        let dev = d.uint("dev").map_err(fail)?;
        let ino = d.uint("ino").map_err(fail)?;
        if entries.last().is_some_and(|p| (dev, ino) <= (p.dev, p.ino)) {
            return Err(fail(d.error_at("dev", at, DecodeErrorKind::NotAscending)));
        }
        let hash = d.fixed::<32>("hash").map_err(fail)?;
        let at = d.position();
        let v = d.uint("baseline").map_err(fail)?;
        let baseline = BaselineStatus::from_u64(v).ok_or_else(|| {
            fail(d.error_at("baseline", at, DecodeErrorKind::UnknownValue { value: v }))
        })?;
        entries.push(ExeEntry {
            dev,
            ino,
            hash,
            baseline,
        });
    }
    d.finish().map_err(|e| (count, e))?;
    Ok(entries)
}

/// Decodes a blob frame's payload `[hash, size, offset, data]`.
fn decode_blob_part(raw: &[u8]) -> Result<([u8; 32], u64, u64, Vec<u8>), DecodeError> {
    let mut d = Decoder::new(raw, "BlobPart");
    d.array_exact("(blob)", 4)?;
    let hash = d.fixed::<32>("hash")?;
    let size = d.uint_max("size", MAX_BLOB_LEN)?;
    let at = d.position();
    let offset = d.uint("offset")?;
    let data = d.bytes("data", MAX_BLOB_PART_LEN as u64)?;
    let fits = offset
        .checked_add(data.len() as u64)
        .is_some_and(|end| end <= size);
    // Only the empty blob has an empty part.
    if !fits || (data.is_empty() && size != 0) {
        return Err(d.error_at(
            "offset",
            at,
            DecodeErrorKind::Invalid("the part is empty or does not lie within the blob"),
        ));
    }
    let data = data.to_vec();
    d.finish()?;
    Ok((hash, size, offset, data))
}

/// Largest count of one loss frame (a larger loss takes several frames).
pub const MAX_LOSS_COUNT: u64 = u32::MAX as u64;

/// Decodes a loss frame's payload `[reason, count]`.
fn decode_loss(raw: &[u8]) -> Result<(LossReason, u64), DecodeError> {
    let mut d = Decoder::new(raw, "Loss");
    d.array_exact("(loss)", 2)?;
    let at = d.position();
    let v = d.uint("reason")?;
    let reason = LossReason::from_u64(v)
        .ok_or_else(|| d.error_at("reason", at, DecodeErrorKind::UnknownValue { value: v }))?;
    let at = d.position();
    let count = d.uint("count")?;
    if count == 0 || count > MAX_LOSS_COUNT {
        return Err(d.error_at(
            "count",
            at,
            DecodeErrorKind::Invalid("loss count is not 1 to 4294967295"),
        ));
    }
    d.finish()?;
    Ok((reason, count))
}

/// Decodes a health frame's payload `[kind, subject, mono_ns, lost]`: a probe_detached
/// frame's `lost` is null or 0 to `MAX_LOSS_COUNT`, a probe_reattached frame's is 0; the
/// other kinds are not written to traces.
fn decode_health(raw: &[u8]) -> Result<(HealthKind, String, u64, Option<u64>), DecodeError> {
    let mut d = Decoder::new(raw, "Health");
    d.array_exact("(health)", 4)?;
    let at = d.position();
    let v = d.uint("kind")?;
    let kind = match HealthKind::from_u64(v) {
        Some(k @ (HealthKind::ProbeDetached | HealthKind::ProbeReattached)) => k,
        _ => {
            return Err(d.error_at("kind", at, DecodeErrorKind::UnknownValue { value: v }));
        }
    };
    let at = d.position();
    let subject = d.text("subject", MAX_HEALTH_SUBJECT_LEN as u64)?.to_owned();
    if subject.is_empty() {
        return Err(d.error_at(
            "subject",
            at,
            DecodeErrorKind::Invalid("the subject is empty"),
        ));
    }
    let mono_ns = d.uint("mono_ns")?;
    let at = d.position();
    let lost = if d.peek_null() {
        d.null("lost")?;
        None
    } else {
        Some(d.uint("lost")?)
    };
    let valid = match kind {
        HealthKind::ProbeDetached => lost.is_none_or(|n| n <= MAX_LOSS_COUNT),
        _ => lost == Some(0),
    };
    if !valid {
        return Err(d.error_at(
            "lost",
            at,
            DecodeErrorKind::Invalid(
                "probe_detached loses null or 0 to 4294967295 calls, probe_reattached 0",
            ),
        ));
    }
    d.finish()?;
    Ok((kind, subject, mono_ns, lost))
}

/// Decodes a clock frame's payload `[mono_ns]`.
fn decode_clock(raw: &[u8]) -> Result<u64, DecodeError> {
    let mut d = Decoder::new(raw, "Clock");
    d.array_exact("(clock)", 1)?;
    let mono_ns = d.uint("mono_ns")?;
    d.finish()?;
    Ok(mono_ns)
}

/// Reads until `buf` is full or the file ends; returns the bytes read.
fn read_full(r: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

/// What `TraceWriter::open_append` found and repaired.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Recovery {
    /// The runs in the file, in order.
    pub runs: Vec<RunMeta>,
    /// Next seq of each run.
    pub next_seq: Vec<u64>,
    /// Bytes of a torn tail that were cut off (0 if the file ended cleanly).
    pub truncated: u64,
}

/// Appends frames to a trace file, one fsync per frame.
pub struct TraceWriter {
    path: PathBuf,
    file: File,
    next_seq: Vec<u64>,
    raw: Vec<u8>,
    /// The file's length, and where its last frame starts.
    len: u64,
    last_frame: u64,
}

impl TraceWriter {
    /// Creates a new trace file; fails if it exists.
    pub fn create(path: &Path) -> Result<Self, TraceError> {
        let io_err = |source| TraceError::Io {
            path: path.to_owned(),
            source,
        };
        if path.exists() {
            return Err(io_err(io::Error::from(io::ErrorKind::AlreadyExists)));
        }
        // The file reaches its name with its magic on disk: a crash never leaves an
        // empty trace (which no reader would take) where a WAL file is expected.
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("trace");
        let tmp = path.with_file_name(format!(".{name}.tmp"));
        let mut file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(&tmp)
            .map_err(io_err)?;
        file.write_all(&FILE_MAGIC).map_err(io_err)?;
        file.sync_all().map_err(io_err)?;
        std::fs::rename(&tmp, path).map_err(io_err)?;
        if let Some(dir) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            File::open(dir)
                .and_then(|d| d.sync_all())
                .map_err(|source| TraceError::Io {
                    path: dir.to_owned(),
                    source,
                })?;
        }
        Ok(TraceWriter {
            path: path.to_owned(),
            file,
            next_seq: Vec::new(),
            raw: Vec::new(),
            len: FILE_MAGIC.len() as u64,
            last_frame: FILE_MAGIC.len() as u64,
        })
    }

    /// Opens an existing trace for appending after a crash: reads every frame, cuts
    /// off a torn tail, and continues each run's seq. A corrupt frame in the middle
    /// is an error: the WAL is never rewritten.
    pub fn open_append(path: &Path) -> Result<(Self, Recovery), TraceError> {
        let mut reader = TraceReader::open(path)?;
        let mut runs = Vec::new();
        let mut truncated = 0;
        loop {
            match reader.next_item() {
                Ok(Some(TraceItem::Run { meta, .. } | TraceItem::Continue { meta, .. })) => {
                    runs.push(meta)
                }
                Ok(Some(
                    TraceItem::Batch { .. }
                    | TraceItem::Cgroups { .. }
                    | TraceItem::Loss { .. }
                    | TraceItem::Clock { .. }
                    | TraceItem::Exes { .. }
                    | TraceItem::BlobPart { .. }
                    | TraceItem::Health(_),
                )) => {}
                Ok(None) => break,
                Err(TraceError::TornTail { .. }) => {
                    let len = std::fs::metadata(path)
                        .map_err(|source| TraceError::Io {
                            path: path.to_owned(),
                            source,
                        })?
                        .len();
                    truncated = len - reader.offset();
                    break;
                }
                Err(e) => return Err(e),
            }
        }
        let io_err = |source| TraceError::Io {
            path: path.to_owned(),
            source,
        };
        let mut file = OpenOptions::new().write(true).open(path).map_err(io_err)?;
        if truncated > 0 {
            file.set_len(reader.offset()).map_err(io_err)?;
            file.sync_all().map_err(io_err)?;
        }
        file.seek(SeekFrom::Start(reader.offset()))
            .map_err(io_err)?;
        let next_seq = reader.next_seq.clone();
        let w = TraceWriter {
            path: path.to_owned(),
            file,
            next_seq: next_seq.clone(),
            raw: Vec::new(),
            len: reader.offset(),
            last_frame: reader.offset(),
        };
        Ok((
            w,
            Recovery {
                runs,
                next_seq,
                truncated,
            },
        ))
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Next seq of `run`.
    pub fn next_seq(&self, run: u16) -> Option<u64> {
        self.next_seq.get(run as usize).copied()
    }

    /// Starts a run; returns its number for `append_batch`.
    pub fn add_run(&mut self, meta: &RunMeta) -> Result<u16, TraceError> {
        let run = u16::try_from(self.next_seq.len())
            .map_err(|_| self.misuse("more than 65535 runs in one trace"))?;
        let raw = meta.encode();
        self.write_frame(KIND_RUN, run, meta.first_seq, 0, &raw)?;
        self.next_seq.push(meta.first_seq);
        Ok(run)
    }

    /// Goes on with a run begun in an earlier file (`meta`, its run frame's RunMeta) at
    /// `next_seq`; returns its number in this file.
    pub fn continue_run(&mut self, meta: &RunMeta, next_seq: u64) -> Result<u16, TraceError> {
        let run = u16::try_from(self.next_seq.len())
            .map_err(|_| self.misuse("more than 65535 runs in one trace"))?;
        if next_seq < meta.first_seq {
            return Err(self.misuse("a run continued before its first seq"));
        }
        let raw = meta.encode();
        self.write_frame(KIND_CONTINUE, run, next_seq, 0, &raw)?;
        self.next_seq.push(next_seq);
        Ok(run)
    }

    /// Appends consecutive events of `run` (seqs must continue the run) and fsyncs.
    pub fn append_batch(&mut self, run: u16, events: &[RawEvent]) -> Result<(), TraceError> {
        let Some(&first) = self.next_seq.get(run as usize) else {
            return Err(self.misuse(format!("run {run} was never added")));
        };
        if events.is_empty() || events.len() > MAX_BATCH_EVENTS as usize {
            return Err(self.misuse(format!(
                "a batch holds 1 to {MAX_BATCH_EVENTS} events, not {}",
                events.len()
            )));
        }
        let mut raw = std::mem::take(&mut self.raw);
        raw.clear();
        for (i, e) in events.iter().enumerate() {
            if e.seq != first + i as u64 {
                self.raw = raw;
                return Err(self.misuse(format!(
                    "event {i} has seq {}, the run continues at {}",
                    e.seq,
                    first + i as u64
                )));
            }
            e.encode_into(&mut raw);
        }
        let result = self.write_frame(KIND_BATCH, run, first, events.len() as u32, &raw);
        self.raw = raw;
        result?;
        self.next_seq[run as usize] = first + events.len() as u64;
        Ok(())
    }

    /// Records the paths of cgroup ids for the events of `run` from its next seq on, and
    /// fsyncs. `entries` are (cgroup id, path): 1 to 65536, ids strictly ascending, each
    /// path 1 to 4096 bytes starting with `/`.
    pub fn append_cgroups(&mut self, run: u16, entries: &[CgroupEntry]) -> Result<(), TraceError> {
        let Some(&first) = self.next_seq.get(run as usize) else {
            return Err(self.misuse(format!("run {run} was never added")));
        };
        if entries.is_empty() || entries.len() > MAX_CGROUP_ENTRIES as usize {
            return Err(self.misuse(format!(
                "a cgroups frame holds 1 to {MAX_CGROUP_ENTRIES} entries, not {}",
                entries.len()
            )));
        }
        for (i, (id, path)) in entries.iter().enumerate() {
            if i > 0 && *id <= entries[i - 1].0 {
                return Err(self.misuse(format!(
                    "cgroup entry {i}: id {id} does not ascend past {}",
                    entries[i - 1].0
                )));
            }
            if let Some(why) = cgroup_path_fault(path) {
                return Err(self.misuse(format!("cgroup entry {i} (id {id}): {why}")));
            }
        }
        let mut raw = std::mem::take(&mut self.raw);
        raw.clear();
        let mut e = Encoder::with_buffer(raw);
        for (id, path) in entries {
            e.array(2).uint(*id).bytes(path);
        }
        let raw = e.into_bytes();
        let result = self.write_frame(KIND_CGROUPS, run, first, entries.len() as u32, &raw);
        self.raw = raw;
        result
    }

    /// Records that `count` events of `run` were lost just before its next event (for
    /// `reason`), and fsyncs. `count` is 1 to `MAX_LOSS_COUNT`; the run's seq does not advance.
    pub fn append_loss(
        &mut self,
        run: u16,
        reason: LossReason,
        count: u64,
    ) -> Result<(), TraceError> {
        let Some(&at_seq) = self.next_seq.get(run as usize) else {
            return Err(self.misuse(format!("run {run} was never added")));
        };
        if count == 0 || count > MAX_LOSS_COUNT {
            return Err(self.misuse(format!(
                "a loss frame counts 1 to {MAX_LOSS_COUNT} events, not {count}"
            )));
        }
        let mut e = Encoder::new();
        e.array(2).uint(reason.as_u64()).uint(count);
        let raw = e.into_bytes();
        self.write_frame(KIND_LOSS, run, at_seq, 0, &raw)
    }

    /// Records a health observation about sensor program `subject` just before the next
    /// event of `run` (FORMAT.md §7.2, health frames), and fsyncs. The run's seq does not
    /// advance.
    pub fn append_health(
        &mut self,
        run: u16,
        kind: HealthKind,
        subject: &str,
        mono_ns: u64,
        lost: Option<u64>,
    ) -> Result<(), TraceError> {
        let Some(&at_seq) = self.next_seq.get(run as usize) else {
            return Err(self.misuse(format!("run {run} was never added")));
        };
        let valid = match kind {
            HealthKind::ProbeDetached => lost.is_none_or(|n| n <= MAX_LOSS_COUNT),
            HealthKind::ProbeReattached => lost == Some(0),
            _ => false,
        };
        if !valid || subject.is_empty() || subject.len() > MAX_HEALTH_SUBJECT_LEN {
            return Err(self.misuse(format!(
                "a health frame of kind {kind:?} about {subject:?} cannot lose {lost:?}"
            )));
        }
        let mut e = Encoder::new();
        e.array(4).uint(kind.as_u64()).text(subject).uint(mono_ns);
        match lost {
            Some(n) => e.uint(n),
            None => e.null(),
        };
        let raw = e.into_bytes();
        self.write_frame(KIND_HEALTH, run, at_seq, 0, &raw)
    }

    /// Records that the recorder's clock read `mono_ns` with every event of `run` read
    /// before then already written, and fsyncs. The run's seq does not advance.
    pub fn append_clock(&mut self, run: u16, mono_ns: u64) -> Result<(), TraceError> {
        let Some(&at_seq) = self.next_seq.get(run as usize) else {
            return Err(self.misuse(format!("run {run} was never added")));
        };
        let mut e = Encoder::new();
        e.array(1).uint(mono_ns);
        let raw = e.into_bytes();
        self.write_frame(KIND_CLOCK, run, at_seq, 0, &raw)
    }

    /// Records the content hashes of executables for the events of `run` from its next
    /// seq on, and fsyncs. `entries`: 1 to 65536, strictly ascending by (dev, ino).
    pub fn append_exes(&mut self, run: u16, entries: &[ExeEntry]) -> Result<(), TraceError> {
        let Some(&first) = self.next_seq.get(run as usize) else {
            return Err(self.misuse(format!("run {run} was never added")));
        };
        if entries.is_empty() || entries.len() > MAX_EXE_ENTRIES as usize {
            return Err(self.misuse(format!(
                "an exes frame holds 1 to {MAX_EXE_ENTRIES} entries, not {}",
                entries.len()
            )));
        }
        if let Some(i) = (1..entries.len())
            .find(|&i| (entries[i].dev, entries[i].ino) <= (entries[i - 1].dev, entries[i - 1].ino))
        {
            return Err(self.misuse(format!("exe entry {i} does not ascend by (dev, ino)")));
        }
        let mut buf = std::mem::take(&mut self.raw);
        buf.clear();
        let mut e = Encoder::with_buffer(buf);
        for x in entries {
            e.array(4)
                .uint(x.dev)
                .uint(x.ino)
                .bytes(&x.hash)
                .uint(x.baseline as u64);
        }
        let raw = e.into_bytes();
        let result = self.write_frame(KIND_EXES, run, first, entries.len() as u32, &raw);
        self.raw = raw;
        result
    }

    /// Writes `data` (at most 4 GiB) as the blob frames of `run`, parts of at most
    /// `MAX_BLOB_PART_LEN` bytes in order, each fsynced. Returns the blob's hash.
    pub fn append_blob(&mut self, run: u16, data: &[u8]) -> Result<[u8; 32], TraceError> {
        let Some(&first) = self.next_seq.get(run as usize) else {
            return Err(self.misuse(format!("run {run} was never added")));
        };
        if data.len() as u64 > MAX_BLOB_LEN {
            return Err(self.misuse(format!("a blob of {} bytes exceeds 4 GiB", data.len())));
        }
        let hash = *blake3::hash(data).as_bytes();
        for (offset, part) in blob_parts(data) {
            let mut e = Encoder::new();
            e.array(4)
                .bytes(&hash)
                .uint(data.len() as u64)
                .uint(offset)
                .bytes(part);
            self.write_frame(KIND_BLOB, run, first, 0, e.as_bytes())?;
        }
        Ok(hash)
    }

    fn misuse(&self, reason: impl Into<String>) -> TraceError {
        TraceError::Misuse {
            path: self.path.clone(),
            reason: reason.into(),
        }
    }

    fn write_frame(
        &mut self,
        kind: u8,
        run: u16,
        first_seq: u64,
        count: u32,
        raw: &[u8],
    ) -> Result<(), TraceError> {
        let io_err = |source| TraceError::Io {
            path: self.path.clone(),
            source,
        };
        if raw.len() > MAX_PAYLOAD_LEN as usize {
            return Err(self.misuse(format!(
                "frame payload of {} bytes exceeds {MAX_PAYLOAD_LEN}",
                raw.len()
            )));
        }
        let frame = encode_frame(kind, run, first_seq, count, raw).map_err(io_err)?;
        if frame.len() - FRAME_HEADER_LEN > MAX_PAYLOAD_LEN as usize {
            return Err(self.misuse("compressed frame too large"));
        }
        self.file.write_all(&frame).map_err(io_err)?;
        self.file.sync_data().map_err(io_err)?;
        self.last_frame = self.len;
        self.len += frame.len() as u64;
        Ok(())
    }

    /// Where the frame written last starts (the file's header's end before any).
    pub fn last_frame_offset(&self) -> u64 {
        self.last_frame
    }

    /// Where the next frame will start: the end of the frames written.
    pub fn end_offset(&self) -> u64 {
        self.len
    }
}

/// A frame (FORMAT.md §7.2) of `kind` with the header fields given and `raw` as its
/// payload, zstd-compressed, under a valid checksum: what the writer appends, and what
/// the fuzz tests seal around mutated payloads so that the frame-body decoders, not the
/// checksum, meet them. Nothing here checks that the fields make sense.
pub fn encode_frame(
    kind: u8,
    run: u16,
    first_seq: u64,
    count: u32,
    raw: &[u8],
) -> std::io::Result<Vec<u8>> {
    let comp = zstd::bulk::compress(raw, ZSTD_LEVEL)?;
    let mut h = FrameHeader {
        kind,
        run,
        first_seq,
        count,
        raw_len: u32::try_from(raw.len()).unwrap_or(u32::MAX),
        comp_len: u32::try_from(comp.len()).unwrap_or(u32::MAX),
        checksum: [0; 16],
    };
    let head = h.encode_without_checksum();
    h.checksum = checksum(&head, &comp);
    let mut frame = Vec::with_capacity(FRAME_HEADER_LEN + comp.len());
    frame.extend_from_slice(&head);
    frame.extend_from_slice(&h.checksum);
    frame.extend_from_slice(&comp);
    Ok(frame)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::raw::{RawBody, Task};

    fn meta(node: &str, first_seq: u64) -> RunMeta {
        RunMeta {
            node: node.into(),
            boot_id: [1; 16],
            sensor_version: "test".into(),
            config_digest: [2; 32],
            window_len_ns: 1_000_000_000,
            wall_minus_mono_ns: 1_700_000_000_000_000_000,
            first_seq,
            started_wall_ns: 1_700_000_000_000_000_000,
        }
    }

    fn events(first: u64, n: u64) -> Vec<RawEvent> {
        (first..first + n)
            .map(|seq| RawEvent {
                seq,
                mono_ns: seq * 1000,
                task: Task {
                    pid: 100 + (seq % 7) as u32,
                    comm: b"cat".to_vec(),
                    ..Task::default()
                },
                body: RawBody::Open {
                    path: format!("/tmp/f{seq}").into_bytes(),
                    flags: 0,
                    mode: 0,
                    result: 3,
                    given: None,
                },
            })
            .collect()
    }

    fn read_all(path: &Path) -> Result<Vec<TraceItem>, TraceError> {
        let mut r = TraceReader::open(path)?;
        let mut out = Vec::new();
        while let Some(i) = r.next_item()? {
            out.push(i);
        }
        Ok(out)
    }

    fn write_sample(path: &Path) -> Vec<u64> {
        let mut w = TraceWriter::create(path).unwrap();
        let run = w.add_run(&meta("n1", 0)).unwrap();
        let mut offsets = vec![];
        for b in 0..3 {
            offsets.push(std::fs::metadata(path).unwrap().len());
            w.append_batch(run, &events(b * 10, 10)).unwrap();
        }
        offsets.push(std::fs::metadata(path).unwrap().len());
        offsets
    }

    #[test]
    fn frames_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.rtrace");
        write_sample(&p);
        let items = read_all(&p).unwrap();
        assert_eq!(items.len(), 4);
        assert_eq!(
            items[0],
            TraceItem::Run {
                run: 0,
                meta: meta("n1", 0)
            }
        );
        assert_eq!(
            items[2],
            TraceItem::Batch {
                run: 0,
                events: events(10, 10)
            }
        );
    }

    #[test]
    fn a_run_continued_in_a_second_file_goes_on_from_its_next_seq() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (dir.path().join("a.rtrace"), dir.path().join("b.rtrace"));
        let m = meta("n1", 5);
        let mut w = TraceWriter::create(&a).unwrap();
        let run = w.add_run(&m).unwrap();
        w.append_batch(run, &events(5, 10)).unwrap();
        let next = w.next_seq(run).unwrap();
        let mut w2 = TraceWriter::create(&b).unwrap();
        assert!(
            w2.continue_run(&m, 4).is_err(),
            "before the run's first seq"
        );
        let run2 = w2.continue_run(&m, next).unwrap();
        assert_eq!(w2.last_frame_offset(), FILE_MAGIC.len() as u64);
        w2.append_batch(run2, &events(next, 3)).unwrap();
        assert!(
            w2.append_batch(run2, &events(next, 1)).is_err(),
            "seqs continue"
        );
        let items = read_all(&b).unwrap();
        assert_eq!(
            items[0],
            TraceItem::Continue {
                run: 0,
                meta: m.clone(),
                next_seq: 15
            }
        );
        assert_eq!(
            items[1],
            TraceItem::Batch {
                run: 0,
                events: events(15, 3)
            }
        );
        assert_eq!(scan_runs(&b).unwrap(), vec![m.clone()]);
        // A continue frame before its run's first seq, or misnumbered, is refused.
        let bad = |run: u16, first_seq: u64| {
            let mut bytes = FILE_MAGIC.to_vec();
            bytes.extend(encode_frame(KIND_CONTINUE, run, first_seq, 0, &m.encode()).unwrap());
            let p = dir.path().join("bad.rtrace");
            std::fs::write(&p, bytes).unwrap();
            read_all(&p).unwrap_err().to_string()
        };
        assert!(
            bad(0, 4).contains("before its run's first seq"),
            "{}",
            bad(0, 4)
        );
        assert!(
            bad(1, 15).contains("continue frame numbered 1"),
            "{}",
            bad(1, 15)
        );
    }

    #[test]
    fn skimming_numbers_the_runs_and_follows_their_seqs_without_reading_events() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.rtrace");
        let offsets = write_sample(&p);
        let mut r = TraceReader::open(&p).unwrap();
        let first = r.skim().unwrap().unwrap();
        assert_eq!(
            first.item,
            Some(TraceItem::Run {
                run: 0,
                meta: meta("n1", 0)
            })
        );
        let mut seen = Vec::new();
        while let Some(s) = r.skim().unwrap() {
            assert!(s.item.is_none());
            seen.push((s.offset, s.next_seq));
        }
        assert_eq!(
            seen,
            vec![
                (offsets[0], Some(10)),
                (offsets[1], Some(20)),
                (offsets[2], Some(30))
            ]
        );
        // A torn tail ends the skim; a reader skimmed to a frame reads on from it.
        let bytes = std::fs::read(&p).unwrap();
        std::fs::write(&p, &bytes[..bytes.len() - 3]).unwrap();
        let mut r = TraceReader::open(&p).unwrap();
        while r.offset() < offsets[1] {
            r.skim().unwrap().unwrap();
        }
        assert_eq!(
            r.next_item().unwrap(),
            Some(TraceItem::Batch {
                run: 0,
                events: events(10, 10)
            })
        );
        assert_eq!(r.skim().unwrap(), None);
    }

    proptest::proptest! {
        /// Skimming never panics: not on arbitrary bytes after the magic, not on a valid
        /// trace with bytes flipped.
        #[test]
        fn skimming_takes_any_bytes(
            noise in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..600),
            flips in proptest::collection::vec((proptest::prelude::any::<usize>(), proptest::prelude::any::<u8>()), 1..6),
        ) {
            let dir = tempfile::tempdir().unwrap();
            let p = dir.path().join("a.rtrace");
            let skim_all = |p: &Path| {
                let mut r = TraceReader::open(p).unwrap();
                for _ in 0..1000 {
                    match r.skim() {
                        Ok(Some(_)) => {}
                        _ => break,
                    }
                }
            };
            let mut bytes = FILE_MAGIC.to_vec();
            bytes.extend(&noise);
            std::fs::write(&p, &bytes).unwrap();
            skim_all(&p);
            let p = dir.path().join("b.rtrace");
            write_sample(&p);
            let mut bytes = std::fs::read(&p).unwrap();
            for (i, x) in flips {
                let n = bytes.len() - 8;
                bytes[8 + i % n] ^= x;
            }
            std::fs::write(&p, &bytes).unwrap();
            skim_all(&p);
        }
    }

    /// A batch frame of run 0 from `first_seq` whose header states `raw_len` for the
    /// payload `raw`, with a valid checksum.
    fn frame_claiming(raw: &[u8], raw_len: u32, first_seq: u64, count: u32) -> Vec<u8> {
        // A header whose raw_len need not be the payload's: encode_frame can't make it.
        let comp = zstd::bulk::compress(raw, ZSTD_LEVEL).unwrap();
        let mut h = FrameHeader {
            kind: KIND_BATCH,
            run: 0,
            first_seq,
            count,
            raw_len,
            comp_len: comp.len() as u32,
            checksum: [0; 16],
        };
        let head = h.encode_without_checksum();
        h.checksum = checksum(&head, &comp);
        [&head[..], &h.checksum, &comp].concat()
    }

    fn encoded(events: &[RawEvent]) -> Vec<u8> {
        let mut raw = Vec::new();
        for e in events {
            e.encode_into(&mut raw);
        }
        raw
    }

    #[test]
    fn a_payload_of_another_length_than_its_header_says_is_corrupt() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.rtrace");
        let mut w = TraceWriter::create(&p).unwrap();
        w.add_run(&meta("n1", 0)).unwrap();
        drop(w);
        let start = std::fs::read(&p).unwrap();
        // A large frame first, so the reader's reused buffers are longer than the next one.
        let big = encoded(&events(0, 200));
        let good = frame_claiming(&big, big.len() as u32, 0, 200);
        let small = encoded(&events(200, 40));
        let n = small.len() as u32;
        for claimed in [n - 1, n + 1, n / 2] {
            let lying = frame_claiming(&small, claimed, 200, 40);
            std::fs::write(&p, [&start[..], &good, &lying].concat()).unwrap();
            let mut r = TraceReader::open(&p).unwrap();
            assert!(matches!(r.next_item(), Ok(Some(TraceItem::Run { .. }))));
            assert_eq!(
                r.next_item().unwrap(),
                Some(TraceItem::Batch {
                    run: 0,
                    events: events(0, 200)
                })
            );
            match r.next_item() {
                Err(TraceError::Corrupt { pos, reason }) => {
                    assert_eq!(pos.frame, 2, "claimed {claimed}");
                    if claimed == n / 2 {
                        // More than one byte over: zstd runs out of room.
                        assert!(reason.starts_with("zstd: "), "{reason}");
                    } else {
                        assert_eq!(
                            reason,
                            format!("payload is {n} bytes uncompressed, header says {claimed}")
                        );
                    }
                }
                other => panic!("claimed {claimed} of {n}: {other:?}"),
            }
        }
        // Told the truth, the same frame reads.
        let honest = frame_claiming(&small, n, 200, 40);
        std::fs::write(&p, [&start[..], &good, &honest].concat()).unwrap();
        let items = read_all(&p).unwrap();
        assert_eq!(
            items[2],
            TraceItem::Batch {
                run: 0,
                events: events(200, 40)
            }
        );
    }

    #[test]
    fn writer_refuses_seq_gaps_and_unknown_runs() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.rtrace");
        let mut w = TraceWriter::create(&p).unwrap();
        assert!(matches!(
            w.append_batch(0, &events(0, 1)),
            Err(TraceError::Misuse { .. })
        ));
        let run = w.add_run(&meta("n1", 5)).unwrap();
        assert!(matches!(
            w.append_batch(run, &events(0, 3)),
            Err(TraceError::Misuse { .. })
        ));
        w.append_batch(run, &events(5, 3)).unwrap();
        assert!(
            TraceWriter::create(&p).is_err(),
            "create must not overwrite"
        );
    }

    #[test]
    fn torn_tail_is_reported_precisely_and_repaired_on_append() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.rtrace");
        let offsets = write_sample(&p);
        // Cut the last frame short at every possible length.
        let full = std::fs::read(&p).unwrap();
        let last = offsets[2] as usize;
        for cut in [last + 1, last + 20, last + FRAME_HEADER_LEN, full.len() - 1] {
            std::fs::write(&p, &full[..cut]).unwrap();
            match read_all(&p) {
                Err(TraceError::TornTail { pos, .. }) => {
                    assert_eq!((pos.offset, pos.frame), (last as u64, 3), "cut at {cut}");
                    assert!(pos.to_string().contains("frame 3 at byte"));
                }
                other => panic!("cut at {cut}: {other:?}"),
            }
            let (mut w, rec) = TraceWriter::open_append(&p).unwrap();
            assert_eq!(rec.truncated, (cut - last) as u64);
            assert_eq!(rec.next_seq, vec![20]);
            assert_eq!(std::fs::metadata(&p).unwrap().len(), last as u64);
            // Appending continues the run where the last whole batch ended.
            w.append_batch(0, &events(20, 10)).unwrap();
            assert_eq!(std::fs::read(&p).unwrap(), full);
        }
    }

    #[test]
    fn a_flipped_byte_anywhere_is_detected() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.rtrace");
        write_sample(&p);
        let full = std::fs::read(&p).unwrap();
        for i in 0..full.len() {
            let mut b = full.clone();
            b[i] ^= 0x10;
            std::fs::write(&p, &b).unwrap();
            assert!(read_all(&p).is_err(), "flip at byte {i} went unnoticed");
        }
    }

    #[test]
    fn reading_resumes_after_a_corrupt_frame_and_the_gap_shows_in_seq() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.rtrace");
        let offsets = write_sample(&p);
        let mut b = std::fs::read(&p).unwrap();
        b[offsets[1] as usize + FRAME_HEADER_LEN + 3] ^= 0xff; // payload of batch 1 (seq 10..20)
        std::fs::write(&p, &b).unwrap();
        let mut r = TraceReader::open(&p).unwrap();
        assert!(matches!(
            r.next_item().unwrap(),
            Some(TraceItem::Run { .. })
        ));
        assert!(matches!(
            r.next_item().unwrap(),
            Some(TraceItem::Batch { .. })
        ));
        match r.next_item() {
            Err(TraceError::Corrupt { pos, reason }) => {
                assert_eq!((pos.offset, pos.frame), (offsets[1], 2));
                assert_eq!(reason, "checksum mismatch");
            }
            other => panic!("{other:?}"),
        }
        let skipped = r.skip_corrupt().unwrap().unwrap();
        assert_eq!(skipped, offsets[2] - offsets[1]);
        match r.next_item().unwrap() {
            Some(TraceItem::Batch { events: e, .. }) => assert_eq!(e[0].seq, 20),
            other => panic!("{other:?}"),
        }
        assert!(r.next_item().unwrap().is_none());
        // The corrupt WAL is never rewritten by the appender.
        assert!(matches!(
            TraceWriter::open_append(&p),
            Err(TraceError::Corrupt { .. })
        ));
    }

    #[test]
    fn run_scan_finds_every_run_without_reading_batches() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.rtrace");
        let mut w = TraceWriter::create(&p).unwrap();
        let a = w.add_run(&meta("n1", 0)).unwrap();
        w.append_batch(a, &events(0, 5)).unwrap();
        let b = w.add_run(&meta("n2", 100)).unwrap();
        w.append_batch(b, &events(100, 5)).unwrap();
        assert_eq!(scan_runs(&p).unwrap(), vec![meta("n1", 0), meta("n2", 100)]);
    }

    #[test]
    fn not_a_trace() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x");
        std::fs::write(&p, b"hello world").unwrap();
        assert!(matches!(
            TraceReader::open(&p),
            Err(TraceError::NotATrace { .. })
        ));
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(256))]
        #[test]
        fn arbitrary_files_never_panic(body in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..400)) {
            let dir = tempfile::tempdir().unwrap();
            let p = dir.path().join("f.rtrace");
            let mut b = FILE_MAGIC.to_vec();
            b.extend_from_slice(&body);
            std::fs::write(&p, &b).unwrap();
            let mut r = TraceReader::open(&p).unwrap();
            for _ in 0..50 {
                match r.next_item() {
                    Ok(Some(_)) => {}
                    Ok(None) => break,
                    Err(_) => if r.skip_corrupt().unwrap().is_none() { break },
                }
            }
        }
    }
}
