//! A node's store writes on a thread of their own, in sealing order: the worker that
//! seals a window goes on with the next one while this thread compresses, writes and
//! fsyncs the last. The files, their bytes and their order are those of writing inline.

use ritma_schemas::catalog::HourState;
use ritma_schemas::index::{EdgeRefs, EdgeRun};
use ritma_schemas::records::{windows_per_hour, HourSeal, StoreMeta, WindowRecord};
use ritma_sinks::catalog;
use ritma_sinks::index::{write_edge_part, write_edge_refs, write_hour_index, HourIndex, PartIds};
use ritma_sinks::store::{NodeStore, WindowPaths};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

/// Sealed windows waiting for the writer at most: the worker blocks beyond this, so the
/// memory they hold stays bounded when the disk is slower than sealing.
const QUEUED_WINDOWS: usize = 0;

/// What one sealed window writes.
pub struct WindowWrite {
    pub record: WindowRecord,
    pub record_bytes: Vec<u8>,
    pub leaves: Vec<Vec<u8>>,
    pub checkpoint: String,
    pub hour_seal: Option<HourSeal>,
    /// Graph edge parts and an edge refs part the window closed.
    pub edge_parts: Vec<EdgeRun>,
    pub edge_refs: Option<EdgeRefs>,
}

/// An hour's last edge part, index files and catalog entries.
pub struct HourWrite {
    pub hour: u64,
    /// The paths of the hour's first window.
    pub paths: WindowPaths,
    pub index: HourIndex,
    pub last_part: Option<EdgeRun>,
    /// Whether the hour's seal was written (else the run ended inside it).
    pub sealed: bool,
}

/// The dataflow state saved after `window` (an hour's last), and where in the WAL the
/// item after it starts (a live run's: the restart point, FORMAT.md §3.15).
pub struct StateWrite {
    pub window: u64,
    pub encoded: Vec<u8>,
    pub pos: Option<crate::replay::WalPos>,
}

enum Job {
    Window(Box<WindowWrite>),
    Hour(Box<HourWrite>),
    State(Box<StateWrite>),
}

/// The writer of one node's store. Its first error goes to the run's errors; the jobs
/// after it are dropped unwritten (the run fails, and resuming it rewrites them).
pub struct StoreWriter {
    meta: StoreMeta,
    root: PathBuf,
    jobs: Option<SyncSender<Job>>,
    thread: Option<JoinHandle<()>>,
    errors: Arc<Mutex<Vec<String>>>,
}

impl StoreWriter {
    /// Starts the writer of `store`, whose newest completed window is `last_sealed`;
    /// `written(window)` is called once a window's files, checkpoint last, are on disk.
    pub fn spawn(
        store: NodeStore,
        last_sealed: Option<u64>,
        errors: Arc<Mutex<Vec<String>>>,
        written: impl FnMut(u64) + Send + 'static,
    ) -> std::io::Result<Self> {
        let (meta, root) = (store.meta().clone(), store.root().to_owned());
        let node = meta.node.clone();
        let (jobs, queue) = sync_channel(QUEUED_WINDOWS);
        let errs = errors.clone();
        let thread = std::thread::Builder::new()
            .name(format!("ritma:store-{node}"))
            .spawn(move || write_all(&store, last_sealed, queue, &errs, written))?;
        Ok(StoreWriter {
            meta,
            root,
            jobs: Some(jobs),
            thread: Some(thread),
            errors,
        })
    }

    pub fn meta(&self) -> &StoreMeta {
        &self.meta
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn window(&self, write: WindowWrite) {
        self.send(Job::Window(Box::new(write)));
    }

    pub fn hour(&self, write: HourWrite) {
        self.send(Job::Hour(Box::new(write)));
    }

    pub fn state(&self, write: StateWrite) {
        self.send(Job::State(Box::new(write)));
    }

    fn send(&self, job: Job) {
        let sent = self.jobs.as_ref().is_some_and(|j| j.send(job).is_ok());
        if !sent {
            self.fail(format!(
                "the store writer of node {} has stopped",
                self.meta.node
            ));
        }
    }

    fn fail(&self, error: String) {
        self.errors.lock().expect("errors").push(error);
    }

    /// Waits until every job sent is written (or dropped after an error).
    pub fn finish(&mut self) {
        drop(self.jobs.take());
        if let Some(thread) = self.thread.take() {
            if thread.join().is_err() {
                self.fail(format!(
                    "the store writer of node {} panicked",
                    self.meta.node
                ));
            }
        }
    }
}

impl Drop for StoreWriter {
    fn drop(&mut self) {
        self.finish();
    }
}

fn write_all(
    store: &NodeStore,
    mut last_sealed: Option<u64>,
    queue: Receiver<Job>,
    errors: &Mutex<Vec<String>>,
    mut written: impl FnMut(u64),
) {
    let mut failed = false;
    let mut part_ids = PartIds::default();
    for job in queue {
        // After a failure (here or elsewhere in the run) nothing more is written.
        failed = failed || !errors.lock().expect("errors").is_empty();
        if failed {
            continue;
        }
        // The first window the store did not hold: the run goes on past what the store
        // held, so the derived files of its newest hour, if that hour is still open, will
        // change; the catalog entry that attests them goes first (FORMAT.md §8.12).
        if let (Job::Window(w), Some(last)) = (&job, last_sealed) {
            let per_hour = windows_per_hour(store.meta().window_len_ns);
            if w.record.window > last && (last + 1) % per_hour != 0 {
                let hour = last / per_hour;
                if let Err(e) = catalog::forget_hour(store.root(), hour) {
                    let node = &store.meta().node;
                    errors
                        .lock()
                        .expect("errors")
                        .push(format!("continuing the catalog of node {node}: {e}"));
                    failed = true;
                    continue;
                }
            }
            if w.record.window > last {
                last_sealed = None;
            }
        }
        let done = match job {
            Job::Window(w) => {
                write_window(store, &w, &mut part_ids).map(|()| written(w.record.window))
            }
            Job::Hour(h) => write_hour(store, *h, &mut part_ids),
            Job::State(s) => write_state(store, &s),
        };
        if let Err(e) = done {
            errors.lock().expect("errors").push(e);
            failed = true;
        }
    }
}

fn write_window(store: &NodeStore, w: &WindowWrite, part_ids: &mut PartIds) -> Result<(), String> {
    let (node, len) = (&store.meta().node, store.meta().window_len_ns);
    let window = w.record.window;
    let ids = store
        .write_window(
            &w.record,
            &w.record_bytes,
            &w.leaves,
            &w.checkpoint,
            w.hour_seal.as_ref(),
        )
        .map_err(|e| format!("writing window {window} of node {node}: {e}"))?;
    if let Some(ids) = ids {
        part_ids.add(window, w.record.edge_count, || ids);
    }
    let paths = WindowPaths::new(window, len);
    for run in &w.edge_parts {
        let fail =
            |e: String| format!("writing the graph edges of window {window} of node {node}: {e}");
        let part = part_ids.pack(run).map_err(|e| fail(e.to_string()))?;
        write_edge_part(store.root(), &paths, &part).map_err(|e| fail(e.to_string()))?;
    }
    if let Some(refs) = &w.edge_refs {
        write_edge_refs(store.root(), &paths, refs)
            .map_err(|e| format!("writing the edge refs of window {window} of node {node}: {e}"))?;
    }
    Ok(())
}

/// The state file, then (a live run's) the WAL's restart point naming it: a restart
/// point is only ever written for a state on disk.
fn write_state(store: &NodeStore, s: &StateWrite) -> Result<(), String> {
    let node = &store.meta().node;
    let digest = store.write_state(s.window, &s.encoded).map_err(|e| {
        format!(
            "saving the state after window {} of node {node}: {e}",
            s.window
        )
    })?;
    if let Some(pos) = &s.pos {
        let point =
            ritma_sinks::wal::RestartPoint::new(s.window + 1, &pos.file, pos.offset, digest)
                .map_err(|e| format!("node {node}: {e}"))?;
        point
            .write(store.root())
            .map_err(|e| format!("writing the WAL restart point of node {node}: {e}"))?;
    }
    Ok(())
}

fn write_hour(store: &NodeStore, h: HourWrite, part_ids: &mut PartIds) -> Result<(), String> {
    let meta = store.meta();
    let paths = &h.paths;
    let root = store.root();
    let err = |e: ritma_sinks::store::StoreError| {
        format!(
            "writing the index of hour {} of node {}: {e}",
            h.hour, meta.node
        )
    };
    if let Some(run) = &h.last_part {
        let part = part_ids.pack(run).map_err(|e| {
            format!(
                "writing the graph edges of hour {} of node {}: {e}",
                h.hour, meta.node
            )
        })?;
        write_edge_part(root, paths, &part).map_err(err)?;
    }
    part_ids.clear();
    write_hour_index(root, paths, &h.index).map_err(err)?;
    // After the index, so an hour's entries exist only once its files are complete.
    let entry = h.index.catalog_entry(HourState::kept(h.sealed));
    let account = catalog::account_hour(root, h.hour, entry.events, false).map_err(err)?;
    catalog::record_hour(root, &meta.node, entry, account).map_err(err)
}
