//! `ritma load`: a store's sealed windows into ClickHouse, each (node, window) exactly once,
//! resumable from wherever a previous load stopped (docs/ANALYSTS.md).

use crate::prove::{hour_dirs, hour_records, HourRecord, WindowLeaves};
use anyhow::{anyhow, bail, Context, Result};
use clap::Args;
use ritma_schemas::records::{HourSeal, Record, StoreMeta, WindowRecord, HOUR_NS};
use ritma_sinks::store::{read_capped, StoreLock, WindowPaths};
use ritma_warehouse::clickhouse::{BatchOutcome, ClickHouse, Dialect};
use ritma_warehouse::rows::Window;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

#[derive(Args)]
pub struct LoadArgs {
    /// The store (RITMA_OUT) directory: one node's, or an ingest store of several.
    dir: PathBuf,
    /// The ClickHouse server's HTTP interface, e.g.
    /// http://loader@127.0.0.1:8123/?database=ritma (the database must exist). Give the
    /// password in CLICKHOUSE_PASSWORD rather than in the URL, where `ps` shows it.
    #[arg(long, value_name = "URL")]
    clickhouse: String,
    /// Only this node, in a store of several.
    #[arg(long)]
    node: Option<String>,
    /// Rows per batch: each table gets one INSERT per batch (a batch ends at a window).
    #[arg(long, default_value_t = 250_000)]
    batch_rows: usize,
    /// The store's retention (as `ritma retention --keep`, e.g. 30d): tables created by
    /// this load get a TTL of as many days, rounded up (servers from 20.1; 3650 days
    /// without it). An existing table's TTL is not changed.
    #[arg(long)]
    keep: Option<String>,
    /// Tries of a batch after the server was unreachable or failed it.
    #[arg(long, default_value_t = 5)]
    retries: u32,
    /// Seconds one request may take (a query, or one table's INSERT of a batch).
    #[arg(long, default_value_t = 300)]
    timeout: u64,
    /// Print the CREATE TABLE statements this server gets, and load nothing.
    #[arg(long)]
    print_ddl: bool,
    /// Rows per block the server commits an INSERT in (its max_insert_block_size), so
    /// tests can cut a load between commits.
    #[arg(long, hide = true)]
    server_block_rows: Option<u64>,
}

/// One node of the store to load.
pub(crate) struct NodeDir {
    pub root: PathBuf,
    pub meta: StoreMeta,
}

pub fn load_cmd(args: LoadArgs) -> Result<()> {
    let ttl_days = match &args.keep {
        Some(k) => {
            let ns = crate::parse_keep(k)?;
            u32::try_from(ns.div_ceil(86_400 * 1_000_000_000))
                .unwrap_or(u32::MAX)
                .max(1)
        }
        None => 3650,
    };
    let timeout = Duration::from_secs(args.timeout.max(1));
    let password = std::env::var("CLICKHOUSE_PASSWORD").ok();
    let mut ch = ClickHouse::connect(&args.clickhouse, password.as_deref(), timeout)?;
    if let Some(n) = args.server_block_rows {
        ch = ch.with_block_rows(n);
    }
    if args.print_ddl {
        for (_, sql) in ch.ddl(ttl_days) {
            println!("{sql};\n");
        }
        return Ok(());
    }
    let _lock = StoreLock::acquire_load(&args.dir, &StoreLock::lock_dir())?;
    ch.ensure_tables(ttl_days)?;
    eprintln!(
        "ritma load: ClickHouse {} at {} ({:?} tables)",
        ch.version,
        ch.url(),
        ch.dialect
    );
    let mut loader = Loader {
        ch,
        batch_rows: args.batch_rows,
        retries: args.retries,
        next: HashMap::new(),
    };
    for t in loader.load_dir(&args.dir, args.node.as_deref())? {
        println!("{t}");
    }
    // Servers before 20.1 have no TTL: the retention is applied here, by day partition.
    if let (Some(_), Dialect::Legacy) = (&args.keep, loader.ch.dialect) {
        let dropped = loader.ch.drop_days_before(ttl_days)?;
        if dropped > 0 {
            println!("dropped {dropped} day partition(s) older than --keep");
        }
    }
    Ok(())
}

/// Loads stores into one ClickHouse database, remembering per node where it got to, so
/// loading the same growing store again (as `ritma ingest` does) only reads what is new.
pub(crate) struct Loader {
    ch: ClickHouse,
    batch_rows: usize,
    retries: u32,
    /// Per node, the first window not loaded yet by this loader.
    next: HashMap<String, u64>,
}

impl Loader {
    /// Connects and creates or checks the tables, for `ritma ingest --clickhouse`.
    pub(crate) fn connect(url: &str) -> Result<Self> {
        let password = std::env::var("CLICKHOUSE_PASSWORD").ok();
        let ch = ClickHouse::connect(url, password.as_deref(), Duration::from_secs(300))?;
        ch.ensure_tables(3650)?;
        Ok(Loader {
            ch,
            batch_rows: 250_000,
            retries: 2,
            next: HashMap::new(),
        })
    }

    /// Loads every node (or `only`) of the store at `dir`; one summary line per node.
    pub(crate) fn load_dir(&mut self, dir: &Path, only: Option<&str>) -> Result<Vec<String>> {
        let mut lines = Vec::new();
        for node in node_dirs(dir, only)? {
            let from = self.next.get(&node.meta.node).copied();
            let (line, next) = load_node(self, &node, from)?;
            if let Some(n) = next {
                self.next.insert(node.meta.node.clone(), n);
            }
            lines.push(line);
        }
        Ok(lines)
    }
}

/// The nodes of the store at `dir`: itself, or each `nodes/<node>/`.
pub(crate) fn node_dirs(dir: &Path, only: Option<&str>) -> Result<Vec<NodeDir>> {
    let read = |root: PathBuf| -> Result<NodeDir> {
        let path = root.join("_meta/store.cbor");
        let bytes = read_capped(&path, StoreMeta::MAX_LEN)
            .with_context(|| format!("{}", path.display()))?;
        let meta = StoreMeta::decode(&bytes).map_err(|e| anyhow!("{}: {e}", path.display()))?;
        Ok(NodeDir { root, meta })
    };
    let mut nodes = Vec::new();
    if dir.join("_meta/store.cbor").exists() {
        nodes.push(read(dir.to_owned())?);
    } else {
        let entries = std::fs::read_dir(dir.join("nodes")).map_err(|_| {
            anyhow!(
                "{}: not a store (no _meta/store.cbor, no nodes/)",
                dir.display()
            )
        })?;
        let mut roots: Vec<PathBuf> = entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.join("_meta/store.cbor").exists())
            .collect();
        roots.sort();
        for root in roots {
            nodes.push(read(root)?);
        }
    }
    if let Some(n) = only {
        nodes.retain(|d| d.meta.node == n);
        if nodes.is_empty() {
            bail!("{}: no node {n:?} in this store", dir.display());
        }
    }
    Ok(nodes)
}

/// What the load of one node did.
#[derive(Default)]
struct Totals {
    batch: BatchOutcome,
    events: u64,
    hours: u64,
    /// The last window known loaded: hour seals up to it can go in.
    through: Option<u64>,
}

/// Loads one node's windows from window `from` on (all without it); returns its summary
/// and the window after the last one loaded or found loaded.
fn load_node(loader: &Loader, node: &NodeDir, from: Option<u64>) -> Result<(String, Option<u64>)> {
    let started = Instant::now();
    let name = &node.meta.node;
    let mut totals = Totals {
        // Windows before `from` were loaded by this loader's earlier passes.
        through: from.and_then(|f| f.checked_sub(1)),
        ..Totals::default()
    };
    let mut batch: Vec<Window> = Vec::new();
    let mut seals: Vec<HourSeal> = Vec::new();
    // The store is read and decoded on a second thread while batches go to the server; a
    // batch waits at most one behind the one being sent, so memory stays at a few batches.
    let (tx, rx) = std::sync::mpsc::sync_channel::<(Vec<Window>, Vec<HourSeal>)>(1);
    let next = std::thread::scope(|scope| -> Result<Option<u64>> {
        let reader = scope.spawn(move || {
            let (mut windows, mut sealed, mut rows) = (Vec::new(), Vec::new(), 0usize);
            let next = walk_node(node, from, |item| {
                match item {
                    Sealed::Window(window) => {
                        rows += window.leaf_rows();
                        windows.push(*window);
                    }
                    Sealed::Hour(seal) => sealed.push(seal),
                }
                if rows >= loader.batch_rows {
                    rows = 0;
                    let chunk = (std::mem::take(&mut windows), std::mem::take(&mut sealed));
                    tx.send(chunk)
                        .map_err(|_| anyhow!("the loader stopped reading"))?;
                }
                Ok(())
            })?;
            let _ = tx.send((windows, sealed));
            Ok(next)
        });
        let loaded = (|| -> Result<()> {
            for (windows, sealed) in rx {
                batch = windows;
                seals.extend(sealed);
                flush(loader, name, &mut batch, &mut seals, &mut totals)?;
            }
            Ok(())
        })();
        let read = reader
            .join()
            .unwrap_or_else(|_| Err(anyhow!("the store reader panicked")));
        // The loader's own error first: the reader's is then only that it was stopped.
        loaded?;
        read
    })?;
    flush(loader, name, &mut batch, &mut seals, &mut totals)?;
    let b = totals.batch;
    let secs = started.elapsed().as_secs_f64();
    let line = format!(
        "node {name}: {} window(s) loaded ({} completed after an interrupted load), {} already loaded; \
         {} events, {} rows, {} hour seal(s) in {secs:.1} s ({:.0} rows/s)",
        b.loaded,
        b.resumed,
        b.already,
        totals.events,
        b.rows,
        totals.hours,
        b.rows as f64 / secs.max(1e-9)
    );
    Ok((line, next.or(from)))
}

/// What [`walk_node`] reads, in store order.
pub(crate) enum Sealed {
    Window(Box<Window>),
    /// An hour's seal, after the hour's last window.
    Hour(HourSeal),
}

/// Calls `f` with each sealed window of the node from window `from` on (all without it),
/// decoded, and each hour seal after its hour's windows, skipping hours retention deleted.
/// Returns the window after the last one read.
pub(crate) fn walk_node(
    node: &NodeDir,
    from: Option<u64>,
    mut f: impl FnMut(Sealed) -> Result<()>,
) -> Result<Option<u64>> {
    walk_node_leaves(node, from, |item| match item {
        SealedLeaves::Window {
            record,
            note,
            leaves,
            path,
        } => {
            let window = Window::decode(record, note, &leaves)
                .with_context(|| format!("{}", path.display()))?;
            f(Sealed::Window(Box::new(window)))
        }
        SealedLeaves::Hour(seal) => f(Sealed::Hour(seal)),
    })
}

/// What [`walk_node_leaves`] reads: a window's record, checkpoint note and leaves as stored.
pub(crate) enum SealedLeaves {
    Window {
        record: WindowRecord,
        note: String,
        leaves: Vec<Vec<u8>>,
        /// The window record's file, for messages.
        path: PathBuf,
    },
    Hour(HourSeal),
}

/// [`walk_node`], the windows' leaves not decoded.
pub(crate) fn walk_node_leaves(
    node: &NodeDir,
    from: Option<u64>,
    mut f: impl FnMut(SealedLeaves) -> Result<()>,
) -> Result<Option<u64>> {
    let len = node.meta.window_len_ns as u128;
    // The hour of the window before `from` is read again: its seal may have come since.
    let from_hour = from.map_or(0, |w| {
        (w.saturating_sub(1) as u128 * len / HOUR_NS as u128) as u64
    });
    let mut next = None;
    for dir in hour_dirs(&node.root)? {
        let rel = dir.strip_prefix(&node.root).unwrap_or(&dir).to_owned();
        if WindowPaths::hour_of_dir(&rel).is_some_and(|h| h < from_hour) {
            continue;
        }
        if ritma_sinks::retention::read_deletion(&node.root, &rel)
            .with_context(|| format!("{}", dir.display()))?
            .is_some()
        {
            continue;
        }
        for HourRecord {
            record,
            record_path,
            sig_path,
            ..
        } in hour_records(&dir, &node.meta)?
        {
            if from.is_some_and(|f| record.window < f) {
                continue;
            }
            next = Some(record.window + 1);
            let leaves = WindowLeaves::read_record(&node.root, &record, &record_path)?.leaves;
            let note =
                read_capped(&sig_path, 16384).with_context(|| format!("{}", sig_path.display()))?;
            let note = String::from_utf8(note)
                .map_err(|_| anyhow!("{}: the checkpoint note is not UTF-8", sig_path.display()))?;
            f(SealedLeaves::Window {
                record,
                note,
                leaves,
                path: record_path,
            })?;
        }
        // The hour's seal is written with its last window.
        let seal_path = dir.join("proofs/hour_root.cbor");
        if seal_path.exists() {
            let bytes = read_capped(&seal_path, HourSeal::MAX_LEN)
                .with_context(|| format!("{}", seal_path.display()))?;
            let seal =
                HourSeal::decode(&bytes).map_err(|e| anyhow!("{}: {e}", seal_path.display()))?;
            f(SealedLeaves::Hour(seal))?;
        }
    }
    Ok(next)
}

/// Loads the batch (retrying it from the ledger after a transient error), then the hour
/// seals whose windows are all loaded.
fn flush(
    loader: &Loader,
    node: &str,
    batch: &mut Vec<Window>,
    seals: &mut Vec<HourSeal>,
    totals: &mut Totals,
) -> Result<()> {
    if let (Some(first), Some(last)) = (batch.first(), batch.last()) {
        let (lo, hi) = (first.record.window, last.record.window);
        load_windows(loader, node, batch, totals, lo)?;
        totals.through = Some(hi);
        batch.clear();
    }
    let Some(hi) = totals.through else {
        return Ok(());
    };
    load_ready_seals(loader, node, seals, totals, hi)
}

/// Loads a batch, retrying it from the ledger after a transient error.
fn load_windows(
    loader: &Loader,
    node: &str,
    batch: &[Window],
    totals: &mut Totals,
    lo: u64,
) -> Result<()> {
    let ch = &loader.ch;
    let hi = batch.last().map_or(lo, |w| w.record.window);
    let mut tries = 0;
    let outcome = loop {
        match ch.load_batch(batch) {
            Ok(o) => break o,
            Err(e) if e.is_transient() && tries < loader.retries => {
                tries += 1;
                let wait = Duration::from_millis(500 << tries.min(6));
                eprintln!(
                    "ritma load: node {node}, windows {lo}-{hi}: {e}; trying again in {:.1} s ({tries}/{})",
                    wait.as_secs_f64(),
                    loader.retries
                );
                std::thread::sleep(wait);
            }
            Err(e) => {
                return Err(anyhow!(e)).with_context(|| {
                    format!(
                        "loading node {node}, windows {lo}-{hi}: every window before {lo} is loaded; \
                         run `ritma load` again to go on from there (windows partly loaded are completed, none twice)"
                    )
                })
            }
        }
    };
    totals.events += outcome.events;
    totals.batch.loaded += outcome.loaded;
    totals.batch.already += outcome.already;
    totals.batch.resumed += outcome.resumed;
    totals.batch.rows += outcome.rows;
    Ok(())
}

/// Loads the hour seals whose windows are all loaded (up to window `hi`).
fn load_ready_seals(
    loader: &Loader,
    node: &str,
    seals: &mut Vec<HourSeal>,
    totals: &mut Totals,
    hi: u64,
) -> Result<()> {
    let ch = &loader.ch;
    let ready: Vec<HourSeal> = seals
        .iter()
        .filter(|s| s.last_window <= hi)
        .cloned()
        .collect();
    seals.retain(|s| s.last_window > hi);
    let mut tries = 0;
    loop {
        match ch.load_hours(&ready) {
            Ok(n) => {
                totals.hours += n;
                break;
            }
            Err(e) if e.is_transient() && tries < loader.retries => {
                tries += 1;
                std::thread::sleep(Duration::from_millis(500 << tries.min(6)));
            }
            Err(e) => {
                return Err(anyhow!(e))
                    .with_context(|| format!("loading the hour seals of node {node}"))
            }
        }
    }
    Ok(())
}
