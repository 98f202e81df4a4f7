//! What a writer cut off mid-way (a crash, SIGKILL, a power loss) leaves in a node tree
//! (FORMAT.md §8.12): temporary files, the files of the one window it had begun, and,
//! while the newest hour has no catalog entry, its derived files missing or out of date.
//! `verify` reports these as an interrupted store and reads none of them as evidence;
//! continuing the run completes them.

use crate::store::{is_temp_name, WindowPaths};
use crate::verify::{fail, names, VerifyError};
use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};

/// What an interrupted writer left, as `verify` reports it (paths relative to the node tree).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Interrupted {
    /// Temporary files (`.NAME.tmp`, FORMAT.md §8.12).
    pub temp_files: Vec<PathBuf>,
    /// The window after the newest completed one (or a later one after a downtime), begun
    /// but without its checkpoint.
    pub unfinished_window: Option<u64>,
    /// That window's files (blocks, health copies, record, its hour's seal).
    pub unfinished_files: Vec<PathBuf>,
    /// The newest hour's derived files that are missing or out of date: the path, and why.
    pub stale_derived: Vec<String>,
}

impl Interrupted {
    pub fn is_empty(&self) -> bool {
        self.temp_files.is_empty()
            && self.unfinished_files.is_empty()
            && self.stale_derived.is_empty()
    }
}

/// The leftovers of a node tree, found before it is verified.
pub(crate) struct Leftovers {
    pub report: Interrupted,
    /// The unfinished window's files: left out of every check.
    skip: BTreeSet<PathBuf>,
    /// The hour of the newest completed window, when its catalog entry is absent: its
    /// derived files may then be missing or out of date (the entry is written after them).
    unattested_hour: Option<PathBuf>,
    /// Windows with a checkpoint, in all hours.
    completed: u64,
}

impl Leftovers {
    /// Finds the temporary files under `root` (but `wal/`, which a verifier does not read)
    /// and the files of the window after the newest completed one (the newest with a
    /// checkpoint), when every file of a later window is of that one window.
    pub fn find(root: &Path, hours: &[PathBuf], window_len_ns: u64) -> Result<Self, VerifyError> {
        let mut report = Interrupted {
            temp_files: temp_files(root)?,
            ..Default::default()
        };
        let per_hour = ritma_schemas::records::windows_per_hour(window_len_ns);
        let hour_number = |hour: &Path| {
            WindowPaths::hour_of_dir(hour)
                .ok_or_else(|| fail("E_LAYOUT", &root.join(hour), None, "not a date and hour"))
        };
        // The newest window with a checkpoint: in the last hour that has one.
        let (mut newest, mut completed): (Option<(usize, u64)>, u64) = (None, 0);
        for (i, hour) in hours.iter().enumerate().rev() {
            let sigs: Vec<u64> = names(&root.join(hour).join("micro"))?
                .into_iter()
                .filter_map(|n| window_index(&n, ".sig"))
                .collect();
            completed += sigs.len() as u64;
            if let (Some(index), None) = (sigs.iter().max(), newest) {
                newest = Some((i, hour_number(hour)? * per_hour + index));
            }
        }
        // Every window file past it, by window.
        let first = newest.map_or(0, |(i, _)| i);
        let mut later: Vec<(u64, PathBuf)> = Vec::new();
        for hour in &hours[first..] {
            let base = hour_number(hour)? * per_hour;
            let under = hour.strip_prefix("windows").unwrap_or(hour);
            let health = Path::new("_meta/health").join(under);
            for (dir, suffix) in [
                (hour.join("micro"), ".cbor"),
                (hour.join("blocks"), ".cbor.zst"),
                (health, ".cbor"),
            ] {
                for n in names(&root.join(&dir))? {
                    // A health copy is `wIIII.NNNN.cbor`: its window is IIII.
                    let stem = n.split('.').next().unwrap_or("");
                    if let Some(index) = window_index(&format!("{stem}{suffix}"), suffix) {
                        let w = base + index;
                        if newest.is_none_or(|(_, nw)| w > nw) {
                            later.push((w, dir.join(&n)));
                        }
                    }
                }
            }
        }
        let window = later.first().map(|(w, _)| *w);
        let one_window = later.iter().all(|(w, _)| Some(*w) == window);
        // The next window, or a later one after windows a downtime left out (FORMAT.md §7.2).
        let next = newest.is_none_or(|(_, nw)| {
            window.is_some_and(|w| {
                crate::continuity::WindowSequence::resume(window_len_ns, Some(nw), None)
                    .follow(w)
                    .is_ok()
            })
        });
        let mut skip = BTreeSet::new();
        if let (Some(w), true, true) = (window, one_window, next) {
            skip.extend(later.into_iter().map(|(_, p)| p));
            // The hour's seal is written with its last window, before that window's checkpoint.
            let paths = WindowPaths::new(w, window_len_ns);
            if paths.index == per_hour - 1 {
                for f in [paths.hour_seal(), paths.hour_checkpoint()] {
                    if root.join(&f).exists() {
                        skip.insert(f);
                    }
                }
            }
            report.unfinished_window = Some(w);
            report.unfinished_files = skip.iter().cloned().collect();
        }
        // The catalog entry is written last of an hour's derived files, and taken out by a
        // run continuing in the hour; a day file that does not decode counts as attesting
        // (the catalog check reports it).
        let mut unattested_hour = None;
        if let Some((i, _)) = newest {
            let hour = hour_number(&hours[i])?;
            let day = hour / ritma_schemas::catalog::HOURS_PER_DAY;
            let listed = match crate::catalog::read_catalog(root, day) {
                Ok(c) => c.is_some_and(|c| c.hours.iter().any(|h| h.hour == hour)),
                Err(_) => true,
            };
            if !listed {
                unattested_hour = Some(hours[i].clone());
            }
        }
        Ok(Leftovers {
            report,
            skip,
            unattested_hour,
            completed,
        })
    }

    /// The windows with a checkpoint, in all hours (for progress).
    pub fn completed_windows(&self) -> u64 {
        self.completed
    }

    /// Whether `rel` is a file of the unfinished window.
    pub fn skips(&self, rel: &Path) -> bool {
        self.skip.contains(rel)
    }

    /// Whether `hour` holds the newest completed window and has no catalog entry, so that
    /// its derived files need not be complete.
    pub fn unattested(&self, hour: &Path) -> bool {
        self.unattested_hour.as_deref() == Some(hour)
    }

    /// A derived file's check: its failure is an error, except in an unattested hour
    /// (`lenient`), where a writer cut off before writing (or rewriting) the file leaves it
    /// missing or out of date, and the failure is reported with the leftovers.
    pub fn derived(
        &mut self,
        lenient: bool,
        r: Result<(), VerifyError>,
    ) -> Result<(), VerifyError> {
        match r {
            Err(e) if lenient && matches!(e.code, "E_INDEX" | "E_EXTRA" | "E_CATALOG") => {
                let note = format!("{}: {}", e.path.display(), e.detail);
                self.report.stale_derived.push(note);
                Ok(())
            }
            r => r,
        }
    }
}

/// `wIIII` + `suffix` → IIII.
fn window_index(name: &str, suffix: &str) -> Option<u64> {
    let stem = name.strip_prefix('w')?.strip_suffix(suffix)?;
    (stem.len() == 4 && stem.bytes().all(|b| b.is_ascii_digit())).then(|| stem.parse().ok())?
}

/// Every temporary file under `root` but `wal/`, relative to `root`, in path order.
fn temp_files(root: &Path) -> Result<Vec<PathBuf>, VerifyError> {
    let mut out = Vec::new();
    let mut stack = vec![PathBuf::new()];
    while let Some(rel) = stack.pop() {
        let dir = root.join(&rel);
        let entries = match fs::read_dir(&dir) {
            Ok(it) => it,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(fail("E_IO", &dir, None, e.to_string())),
        };
        for e in entries {
            let e = e.map_err(|e| fail("E_IO", &dir, None, e.to_string()))?;
            let name = e.file_name().to_string_lossy().into_owned();
            let p = rel.join(&name);
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                if p != Path::new("wal") {
                    stack.push(p);
                }
            } else if is_temp_name(&name) {
                out.push(p);
            }
        }
    }
    out.sort();
    Ok(out)
}
