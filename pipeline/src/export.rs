//! `ritma export DIR --format parquet --out OUT`: a store's sealed windows as Parquet files,
//! the analyst tables of docs/ANALYSTS.md, for tools that read files (docs/ANALYSTS.md,
//! "Parquet"); with `--ocsf`, its OCSF events for Security Lake (docs/ANALYSTS.md, "OCSF for
//! Security Lake").

use crate::load::{node_dirs, walk_node, walk_node_leaves, NodeDir, Sealed, SealedLeaves};
use anyhow::{anyhow, bail, Context, Result};
use arrow_array::RecordBatch;
use clap::{Args, ValueEnum};
use ritma_schemas::records::WindowRecord;
use ritma_sinks::store::civil_from_days;
use ritma_warehouse::ocsf::{self, ocsf_path, time_of, OcsfFile, LATE_ROWS};
use ritma_warehouse::parquet::{part_path, PartFile};
use ritma_warehouse::rows::{hour_row, Window};
use std::collections::btree_map::Entry;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::Instant;

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum ExportFormat {
    /// The analyst tables as Parquet (zstd), partitioned by node and day.
    Parquet,
}

#[derive(Args)]
pub struct ExportArgs {
    /// The store (RITMA_OUT) directory: one node's, or an ingest store of several.
    dir: PathBuf,
    #[arg(long, value_enum)]
    format: ExportFormat,
    /// Where the files go: OUT/<table>/node=<node>/day=<YYYY-MM-DD>/part-0.parquet. A day
    /// exported again is rewritten whole.
    #[arg(long)]
    out: PathBuf,
    /// Only this node, in a store of several.
    #[arg(long)]
    node: Option<String>,
    /// OCSF 1.8.0 events for Amazon Security Lake instead of the analyst tables: one source
    /// directory per class, OUT/<source>/eventDay=<YYYYMMDD>/<node>.parquet, rows in time order.
    #[arg(long)]
    ocsf: bool,
    /// With --ocsf: the AWS Region level of Security Lake's partitions (region=<R>/).
    #[arg(long, requires_all = ["ocsf", "account_id"])]
    region: Option<String>,
    /// With --ocsf: the AWS account level of Security Lake's partitions (accountId=<A>/).
    #[arg(long, requires_all = ["ocsf", "region"])]
    account_id: Option<String>,
}

/// The files of one node and day being written, by table.
struct Day {
    day: u16,
    files: BTreeMap<&'static str, PartFile>,
}

/// The export must not land in the store (verify would find files it does not know).
fn check_out(args: &ExportArgs) -> Result<()> {
    let store = std::fs::canonicalize(&args.dir)?;
    let mut out = std::path::absolute(&args.out)?;
    let mut rest = Vec::new();
    while !out.exists() {
        match (out.file_name().map(|n| n.to_owned()), out.parent()) {
            (Some(name), Some(parent)) => {
                rest.push(name);
                out = parent.to_owned();
            }
            _ => break,
        }
    }
    let mut out = std::fs::canonicalize(&out).unwrap_or(out);
    out.extend(rest.iter().rev());
    if out.starts_with(&store) {
        bail!(
            "--out {} is inside the store {}: write the export elsewhere",
            args.out.display(),
            args.dir.display()
        );
    }
    Ok(())
}

pub fn export_cmd(args: ExportArgs) -> Result<()> {
    let ExportFormat::Parquet = args.format;
    check_out(&args)?;
    if args.ocsf {
        return export_ocsf(&args);
    }
    for node in node_dirs(&args.dir, args.node.as_deref())? {
        let started = Instant::now();
        let name = node.meta.node.clone();
        let mut totals: BTreeMap<&'static str, (u64, u64)> = BTreeMap::new();
        let mut day: Option<Day> = None;
        let mut hours: BTreeMap<u16, PartFile> = BTreeMap::new();
        let mut windows = 0u64;
        walk_node(&node, None, |item| {
            match item {
                Sealed::Window(w) => {
                    windows += 1;
                    if day.as_ref().is_some_and(|d| d.day != w.day()) {
                        finish(day.take().expect("checked"), &mut totals)?;
                    }
                    let d = day.get_or_insert_with(|| Day {
                        day: w.day(),
                        files: BTreeMap::new(),
                    });
                    write_window(&args.out, &name, d, &w)?;
                }
                Sealed::Hour(seal) => {
                    let row = hour_row(&seal)?;
                    let file = hours
                        .entry(row.day)
                        .or_insert_with(|| PartFile::new(path(&args.out, "hours", &name, row.day)));
                    file.push(&row)?;
                }
            }
            Ok(())
        })?;
        if let Some(d) = day {
            finish(d, &mut totals)?;
        }
        for (_, f) in hours {
            let t = totals.entry("hours").or_default();
            t.0 += f.finish()?;
            t.1 += 1;
        }
        let tables: Vec<String> = totals
            .iter()
            .map(|(t, (rows, files))| format!("{t} {rows} rows in {files} file(s)"))
            .collect();
        println!(
            "node {name}: {windows} window(s) exported to {} in {:.1} s: {}",
            args.out.display(),
            started.elapsed().as_secs_f64(),
            tables.join(", ")
        );
    }
    Ok(())
}

fn path(out: &Path, table: &str, node: &str, day: u16) -> PathBuf {
    part_path(out, table, node, civil_from_days(day as i64))
}

/// Appends a window's rows to its day's files.
fn write_window(out: &Path, node: &str, d: &mut Day, w: &Window) -> Result<()> {
    /// Each row of `rows` into the day's file of `table`, found once per window.
    fn push_all<T: serde::Serialize>(
        d: &mut Day,
        out: &Path,
        node: &str,
        table: &'static str,
        rows: impl IntoIterator<Item = T>,
    ) -> Result<()> {
        let day = d.day;
        let file = d
            .files
            .entry(table)
            .or_insert_with(|| PartFile::new(path(out, table, node, day)));
        for row in rows {
            file.push(&row)?;
        }
        Ok(())
    }
    push_all(d, out, node, "events", w.events())?;
    push_all(d, out, node, "actors", w.actors())?;
    push_all(d, out, node, "edges", w.edges())?;
    push_all(d, out, node, "cone_matches", w.cones())?;
    push_all(d, out, node, "health", w.health())?;
    push_all(d, out, node, "loss", w.loss())?;
    push_all(d, out, node, "windows", [w.window_row()])
}

fn finish(d: Day, totals: &mut BTreeMap<&'static str, (u64, u64)>) -> Result<()> {
    for (table, f) in d.files {
        let t = totals.entry(table).or_default();
        t.0 += f.finish()?;
        t.1 += 1;
    }
    Ok(())
}

/// Days since the epoch of a time in ms.
fn day_of_ms(ms: i64) -> i64 {
    ms.div_euclid(86_400_000)
}

/// `--ocsf`: each window's OCSF events into its class's file of their event day. The files of
/// a window's day and the day before stay open, so an event sealed just after midnight goes
/// to its own day; one sealed more than a day late goes to the earliest day still open.
fn export_ocsf(args: &ExportArgs) -> Result<()> {
    let lake = args.region.as_deref().zip(args.account_id.as_deref());
    for (what, v) in [
        ("--region", &args.region),
        ("--account-id", &args.account_id),
    ] {
        if let Some(v) = v {
            let ok = !v.is_empty() && v.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-');
            if !ok {
                bail!("{what} {v:?}: a partition value is letters, digits and '-'");
            }
        }
    }
    for node in node_dirs(&args.dir, args.node.as_deref())? {
        let started = Instant::now();
        let name = node.meta.node.clone();
        let mut open: BTreeMap<(i64, u32), OcsfFile> = BTreeMap::new();
        let mut totals: BTreeMap<u32, (u64, u64)> = BTreeMap::new();
        let mut windows = 0u64;
        let mut finish = |file: OcsfFile, uid: u32| -> Result<()> {
            let rows = file.finish()?;
            let t = totals.entry(uid).or_default();
            t.0 += rows;
            t.1 += u64::from(rows > 0);
            Ok(())
        };
        let mut write = |mapped: MappedWindow| -> Result<()> {
            windows += 1;
            let done: Vec<(i64, u32)> =
                open.range(..(mapped.day - 1, 0)).map(|(k, _)| *k).collect();
            for key in done {
                finish(open.remove(&key).expect("listed"), key.1)?;
            }
            for ((day, uid), events) in mapped.files {
                let file = match open.entry((day, uid)) {
                    Entry::Occupied(e) => e.into_mut(),
                    Entry::Vacant(e) => {
                        let class = ocsf::class(uid).ok_or_else(|| {
                            anyhow!("window {}: OCSF class {uid} has no source", mapped.window)
                        })?;
                        let path = ocsf_path(&args.out, class, lake, &name, civil_from_days(day));
                        e.insert(OcsfFile::new(path, uid, LATE_ROWS)?)
                    }
                };
                file.push_batch(mapped.window, events)?;
            }
            Ok(())
        };
        map_windows_in_order(&node, &mut write)?;
        for ((_, uid), file) in std::mem::take(&mut open) {
            finish(file, uid)?;
        }
        let classes: Vec<String> = totals
            .iter()
            .filter_map(|(uid, (rows, files))| {
                let class = ocsf::class(*uid)?;
                Some(format!("{} {rows} events in {files} file(s)", class.source))
            })
            .collect();
        println!(
            "node {name}: {windows} window(s) exported as OCSF to {} in {:.1} s: {}",
            args.out.display(),
            started.elapsed().as_secs_f64(),
            classes.join(", ")
        );
    }
    Ok(())
}

/// A window's OCSF events by the file (event day, class) they go to.
struct MappedWindow {
    window: u64,
    /// The UTC day of the window's start.
    day: i64,
    /// Decoded into the class's schema, sorted by time.
    files: BTreeMap<(i64, u32), RecordBatch>,
}

fn map_window(record: &WindowRecord, leaves: &[Vec<u8>], path: &Path) -> Result<MappedWindow> {
    let day = day_of_ms((record.t_start_ns() / 1_000_000) as i64);
    let decoded = ritma_ocsf::WindowLeaves::decode(record, leaves)
        .with_context(|| format!("{}", path.display()))?;
    let mut events: BTreeMap<(i64, u32), Vec<serde_json::Value>> = BTreeMap::new();
    for event in ritma_ocsf::window_events(record, &decoded) {
        let event_day = day_of_ms(time_of(&event)).clamp(day - 1, day);
        let uid = event["class_uid"].as_u64().unwrap_or(0) as u32;
        events.entry((event_day, uid)).or_default().push(event);
    }
    let mut files = BTreeMap::new();
    for ((event_day, uid), events) in events {
        let batch = ocsf::decode_events(uid, events).map_err(|e| {
            anyhow!(
                "{}: window {}: OCSF class {uid}: {e}",
                path.display(),
                record.window
            )
        })?;
        files.insert((event_day, uid), batch);
    }
    Ok(MappedWindow {
        window: record.window,
        day,
        files,
    })
}

/// Calls `write` with each sealed window of the node mapped to OCSF, in store order. Mapping
/// is most of the export's work, so it runs on one worker per core: a reader thread deals the
/// windows out in turn, and they are taken back in the same turn, which keeps the order.
fn map_windows_in_order(
    node: &NodeDir,
    write: &mut dyn FnMut(MappedWindow) -> Result<()>,
) -> Result<()> {
    let workers = std::thread::available_parallelism().map_or(1, |n| n.get().min(8));
    std::thread::scope(|scope| {
        let mut jobs = Vec::new();
        let mut results = Vec::new();
        for _ in 0..workers {
            let (job_tx, job_rx) = mpsc::sync_channel::<(WindowRecord, Vec<Vec<u8>>, PathBuf)>(2);
            let (result_tx, result_rx) = mpsc::sync_channel::<Result<MappedWindow>>(2);
            scope.spawn(move || {
                for (record, leaves, path) in job_rx {
                    if result_tx.send(map_window(&record, &leaves, &path)).is_err() {
                        return;
                    }
                }
            });
            jobs.push(job_tx);
            results.push(result_rx);
        }
        let reader = scope.spawn(move || {
            let mut turn = 0;
            walk_node_leaves(node, None, |item| {
                if let SealedLeaves::Window {
                    record,
                    leaves,
                    path,
                    ..
                } = item
                {
                    jobs[turn % jobs.len()]
                        .send((record, leaves, path))
                        .map_err(|_| anyhow!("the export stopped"))?;
                    turn += 1;
                }
                Ok(())
            })
        });
        let mut turn = 0;
        let written = loop {
            // A worker's channel closes after its last window: the windows are all written.
            let Ok(mapped) = results[turn % results.len()].recv() else {
                break Ok(());
            };
            turn += 1;
            if let Err(e) = mapped.and_then(&mut *write) {
                break Err(e);
            }
        };
        // On an error the receivers go, the workers' sends fail and the reader stops.
        drop(results);
        let read = reader
            .join()
            .map_err(|_| anyhow!("the store reader panicked"))?;
        written?;
        read.map(|_| ())
    })
}
