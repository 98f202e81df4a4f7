//! The live run's items on their way from the capture loop to the dataflow.
//!
//! Every item is in the WAL (fsynced) before it is handed on, so the WAL itself can carry
//! what a bounded channel cannot: while the dataflow keeps up, items go through the
//! channel; when the channel is full (the dataflow is sealing the kept WAL again after a
//! restart, or a burst outruns it) the capture loop stops sending instead of waiting, and
//! the dataflow, once it has taken what the channel holds, reads the items back from the
//! WAL from the first one not sent, following the hourly files, until it reaches what the
//! capture loop has written; then the channel takes over again. The capture loop never
//! blocks on the dataflow, so the ring buffer is drained at capture speed whatever the
//! dataflow is doing. Both sides switch under one lock, so no item is fed twice or missed.

use crate::replay::{LiveItem, WalPos};
use ritma_sources::trace::{TraceItem, TraceReader};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{Receiver, SyncSender, TryRecvError, TrySendError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The link's state both sides read and switch under its lock.
#[derive(Default)]
struct Backlog {
    /// The first item not sent through the channel, while the dataflow reads the WAL.
    behind: Option<WalPos>,
    /// Where the WAL's written frames end: the file and the offset after its last frame.
    written: Option<WalPos>,
    /// The dataflow's side is gone (it stopped, or failed).
    closed: bool,
}

/// The capture loop's side.
pub struct LiveSender {
    tx: SyncSender<LiveItem>,
    backlog: Arc<Mutex<Backlog>>,
}

/// The dataflow's side.
pub struct LiveReceiver {
    rx: Receiver<LiveItem>,
    backlog: Arc<Mutex<Backlog>>,
    /// Reading the WAL back, from the first item not sent.
    reader: Option<Box<TraceReader>>,
    /// When falling behind was last reported (once a minute at most).
    reported: Option<Instant>,
}

/// What the receiver has next.
pub enum Next {
    Item(LiveItem),
    /// Nothing yet: the capture loop has not written more.
    Empty,
    /// The capture loop hung up and every item it wrote was taken.
    Ended,
}

/// A link holding up to `in_flight` items in its channel.
pub fn link(in_flight: usize) -> (LiveSender, LiveReceiver) {
    let (tx, rx) = std::sync::mpsc::sync_channel(in_flight);
    let backlog = Arc::new(Mutex::new(Backlog::default()));
    (
        LiveSender {
            tx,
            backlog: backlog.clone(),
        },
        LiveReceiver {
            rx,
            backlog,
            reader: None,
            reported: None,
        },
    )
}

/// The dataflow stopped taking items.
#[derive(Debug)]
pub struct Stopped;

impl LiveSender {
    /// Hands on `item`, already written at `pos` with the WAL ending at `end` after it;
    /// never waits.
    pub fn send(&self, item: TraceItem, pos: WalPos, end: u64) -> Result<(), Stopped> {
        let mut b = self.backlog.lock().expect("live link");
        if b.closed {
            return Err(Stopped);
        }
        b.written = Some(WalPos {
            file: pos.file.clone(),
            offset: end,
        });
        if b.behind.is_some() {
            return Ok(());
        }
        match self.tx.try_send(LiveItem { item, pos }) {
            Ok(()) => Ok(()),
            Err(TrySendError::Full(item)) => {
                b.behind = Some(item.pos);
                Ok(())
            }
            Err(TrySendError::Disconnected(_)) => Err(Stopped),
        }
    }
}

impl LiveReceiver {
    /// The next item: from the channel, or, once it is drained while behind, from the WAL.
    pub fn next(&mut self) -> Result<Next, String> {
        let hung_up = match self.rx.try_recv() {
            Ok(item) => return Ok(Next::Item(item)),
            Err(TryRecvError::Empty) => false,
            Err(TryRecvError::Disconnected) => true,
        };
        let (behind, written) = {
            let b = self.backlog.lock().expect("live link");
            (b.behind.clone(), b.written.clone())
        };
        let (Some(from), Some(written)) = (behind, written) else {
            return Ok(if hung_up { Next::Ended } else { Next::Empty });
        };
        if self.reader.is_none() {
            self.reader = Some(Box::new(open_at(&from)?));
            if self
                .reported
                .is_none_or(|t| t.elapsed() > Duration::from_secs(60))
            {
                eprintln!(
                    "ritma: the sealing fell behind the capture; reading the WAL back from {} offset {} (the capture goes on)",
                    from.file.display(),
                    from.offset
                );
                self.reported = Some(Instant::now());
            }
        }
        loop {
            let reader = self.reader.as_mut().expect("opened above");
            let at = reader.offset();
            if reader.path() == written.file && at >= written.offset {
                // Caught up: the channel takes over, unless more was written meanwhile.
                let mut b = self.backlog.lock().expect("live link");
                let now = b.written.clone();
                if now
                    .as_ref()
                    .is_some_and(|w| w.file == written.file && w.offset == at)
                {
                    b.behind = None;
                    self.reader = None;
                    return Ok(if hung_up { Next::Ended } else { Next::Empty });
                }
                return Ok(Next::Empty);
            }
            match reader.next_item() {
                Ok(Some(item)) => {
                    let pos = WalPos {
                        file: reader.path().to_owned(),
                        offset: at,
                    };
                    return Ok(Next::Item(LiveItem { item, pos }));
                }
                // A file the capture loop has left is read to its end, then the next one.
                Ok(None) if reader.path() != written.file => {
                    let next = next_wal_file(reader.path())?;
                    let reader = TraceReader::open(&next)
                        .map_err(|e| format!("reading the WAL back: {e}"))?;
                    self.reader = Some(Box::new(reader));
                }
                Ok(None) => {
                    return Err(format!(
                        "reading the WAL back: {} ends at {at}, before the {} bytes written",
                        written.file.display(),
                        written.offset
                    ))
                }
                Err(e) => return Err(format!("reading the WAL back: {e}")),
            }
        }
    }
}

impl Drop for LiveReceiver {
    fn drop(&mut self) {
        if let Ok(mut b) = self.backlog.lock() {
            b.closed = true;
        }
    }
}

/// A reader of `pos.file` at `pos.offset`, the frames before it skimmed for the runs.
fn open_at(pos: &WalPos) -> Result<TraceReader, String> {
    let mut reader =
        TraceReader::open(&pos.file).map_err(|e| format!("reading the WAL back: {e}"))?;
    while reader.offset() < pos.offset {
        match reader.skim() {
            Ok(Some(_)) => {}
            Ok(None) => break,
            Err(e) => return Err(format!("reading the WAL back: {e}")),
        }
    }
    if reader.offset() != pos.offset {
        return Err(format!(
            "reading the WAL back: no frame of {} starts at {}",
            pos.file.display(),
            pos.offset
        ));
    }
    Ok(reader)
}

/// The WAL file after `file` in its directory (names sort as the files were started).
fn next_wal_file(file: &Path) -> Result<PathBuf, String> {
    let dir = file.parent().unwrap_or(Path::new("."));
    let name = file.file_name().unwrap_or_default();
    let entries = std::fs::read_dir(dir)
        .map_err(|e| format!("reading the WAL back: {}: {e}", dir.display()))?;
    let mut later: Vec<PathBuf> = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| format!("reading the WAL back: {}: {e}", dir.display()))?;
        let n = entry.file_name();
        if n.as_os_str() > name && n.to_string_lossy().ends_with(".rtrace") {
            later.push(entry.path());
        }
    }
    later.sort();
    later.into_iter().next().ok_or_else(|| {
        format!(
            "reading the WAL back: no WAL file follows {} though the capture moved on",
            file.display()
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use ritma_schemas::records::RunMeta;
    use ritma_sources::trace::TraceWriter;

    fn meta() -> RunMeta {
        RunMeta {
            node: "n".into(),
            boot_id: [1; 16],
            sensor_version: "test".into(),
            config_digest: [2; 32],
            window_len_ns: 1_000_000_000,
            wall_minus_mono_ns: 1_700_000_000_000_000_000,
            first_seq: 0,
            started_wall_ns: 1_700_000_000_000_000_000,
        }
    }

    /// A capture loop's side as the recorder drives it: every frame written, then sent.
    struct Capture {
        writer: TraceWriter,
        run: u16,
        tx: LiveSender,
        /// Everything sent, in order, as the receiver must see it.
        sent: Vec<(TraceItem, WalPos)>,
    }

    impl Capture {
        /// A run's first WAL file in `dir`, its run frame written.
        fn start(dir: &Path, tx: LiveSender) -> Self {
            let mut writer = TraceWriter::create(&dir.join("0000000000000000001.rtrace")).unwrap();
            let run = writer.add_run(&meta()).unwrap();
            Capture {
                writer,
                run,
                tx,
                sent: Vec::new(),
            }
        }

        fn send(&mut self, item: TraceItem) -> Result<(), Stopped> {
            let pos = WalPos {
                file: self.writer.path().to_owned(),
                offset: self.writer.last_frame_offset(),
            };
            self.sent.push((item.clone(), pos.clone()));
            self.tx.send(item, pos, self.writer.end_offset())
        }

        fn clock(&mut self, mono_ns: u64) {
            self.writer.append_clock(self.run, mono_ns).unwrap();
            let item = TraceItem::Clock {
                run: self.run,
                at_seq: 0,
                mono_ns,
            };
            self.send(item).unwrap();
        }

        /// The next hour's file, as the recorder's rotation starts it.
        fn rotate(&mut self, path: PathBuf) {
            self.writer = TraceWriter::create(&path).unwrap();
            self.run = self.writer.continue_run(&meta(), 0).unwrap();
            let item = TraceItem::Continue {
                run: self.run,
                meta: meta(),
                next_seq: 0,
            };
            self.send(item).unwrap();
        }
    }

    fn drain(rx: &mut LiveReceiver) -> (Vec<(TraceItem, WalPos)>, bool) {
        let mut got = Vec::new();
        loop {
            match rx.next().unwrap() {
                Next::Item(i) => got.push((i.item, i.pos)),
                Next::Empty => return (got, false),
                Next::Ended => return (got, true),
            }
        }
    }

    #[test]
    fn items_the_channel_cannot_hold_come_back_from_the_wal_in_order_across_files() {
        let dir = tempfile::tempdir().unwrap();
        let (tx, mut rx) = link(3);
        let mut cap = Capture::start(dir.path(), tx);
        let run = cap.run;
        cap.send(TraceItem::Run { run, meta: meta() }).unwrap();
        // Far more than the channel holds, across a new file, with nothing received: the
        // capture never waits.
        for t in 1..=20 {
            cap.clock(t);
        }
        cap.rotate(dir.path().join("0000000000000000002.rtrace"));
        for t in 21..=30 {
            cap.clock(t);
        }
        assert!(cap.tx.backlog.lock().unwrap().behind.is_some());
        let (got, ended) = drain(&mut rx);
        assert!(!ended);
        assert_eq!(got, cap.sent, "every item once, in order, at its position");
        // Caught up: the channel carries the next ones again.
        assert!(cap.tx.backlog.lock().unwrap().behind.is_none());
        assert!(rx.reader.is_none());
        cap.clock(31);
        let (more, _) = drain(&mut rx);
        assert_eq!(more, cap.sent[cap.sent.len() - 1..]);
        // Behind again, then hung up: what was written still comes, then the end.
        let before = cap.sent.len();
        for t in 32..=40 {
            cap.clock(t);
        }
        drop(cap.tx);
        let (rest, ended) = drain(&mut rx);
        assert!(ended);
        assert_eq!(rest, cap.sent[before..]);
    }

    #[test]
    fn a_receiver_gone_stops_the_capture_even_while_it_was_behind() {
        let dir = tempfile::tempdir().unwrap();
        let (tx, rx) = link(1);
        let mut cap = Capture::start(dir.path(), tx);
        let run = cap.run;
        cap.clock(1);
        cap.clock(2);
        assert!(cap.tx.backlog.lock().unwrap().behind.is_some());
        drop(rx);
        cap.writer.append_clock(run, 3).unwrap();
        let item = TraceItem::Clock {
            run,
            at_seq: 0,
            mono_ns: 3,
        };
        assert!(cap.send(item).is_err());
    }
}
