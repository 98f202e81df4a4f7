//! `ritma export DIR --format parquet --out OUT`: a store's sealed windows as Parquet files,
//! the analyst tables of docs/ANALYSTS.md, for tools that read files (docs/ANALYSTS.md,
//! "Parquet").

use crate::load::{node_dirs, walk_node, Sealed};
use anyhow::{bail, Result};
use clap::{Args, ValueEnum};
use ritma_sinks::store::civil_from_days;
use ritma_warehouse::parquet::{part_path, PartFile};
use ritma_warehouse::rows::{hour_row, Window};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
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
}

/// The files of one node and day being written, by table.
struct Day {
    day: u16,
    files: BTreeMap<&'static str, PartFile>,
}

pub fn export_cmd(args: ExportArgs) -> Result<()> {
    let ExportFormat::Parquet = args.format;
    // The export must not land in the store (verify would find files it does not know).
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
