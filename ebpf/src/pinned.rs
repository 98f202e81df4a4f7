//! The sensor's counters, pinned in the BPF filesystem so they outlive the process.
//!
//! `ritma_drops` counts every event the programs produced: the records the ring buffer took
//! and the drops by reason. User space writes into `ritma_accounted` how many of those the
//! WAL holds (as events or as loss) after each frame. A clean stop accounts for all and
//! unpins; after a kill the pins stay, and the next run on the store reads the difference:
//! the events that were in flight (in the ring buffer, read but not yet written, or drops not
//! yet written) when the process died.

use std::path::{Path, PathBuf};

use aya::maps::{Array, Map, MapData, PerCpuArray};

use crate::error::EbpfError;
use crate::programs::{ACCOUNTED_MAP, DROPS_MAP};

/// The directory the counters of a capture writing `store_id` are pinned in.
pub fn dir_for(store_id: &str) -> PathBuf {
    Path::new(crate::system::BPFFS).join("ritma").join(store_id)
}

/// Creates `dir` if missing and checks that it is on a BPF filesystem; why not, if it
/// cannot hold pins.
pub fn usable(dir: &Path) -> Result<(), String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    if !crate::system::on_bpffs(dir) {
        return Err(format!("{} is not on a BPF filesystem", dir.display()));
    }
    Ok(())
}

/// The counters' pins in `dir`: the per-CPU counters, and the accounted total.
fn pins(dir: &Path) -> (PathBuf, PathBuf) {
    (dir.join("counters"), dir.join("accounted"))
}

fn pin_err<'a>(what: &'static str, dir: &'a Path) -> impl FnOnce(String) -> EbpfError + 'a {
    move |e| EbpfError::Pinned {
        dir: dir.to_owned(),
        what,
        reason: e,
    }
}

/// What a sensor pinned in `dir` and never accounted for (a killed run's events in flight);
/// `None` when nothing is pinned there (the last run stopped cleanly, or none ran).
pub fn unaccounted_in(dir: &Path) -> Result<Option<u64>, EbpfError> {
    Ok(counts_in(dir)?.map(|c| c.produced.saturating_sub(c.accounted)))
}

/// The two pinned counts of a sensor.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PinnedCounts {
    /// Every event the programs produced: records the ring buffer took, and drops.
    pub produced: u64,
    /// How many of them the WAL accounts for, as user space last wrote it.
    pub accounted: u64,
}

/// The counts pinned in `dir`, `None` when nothing is pinned there.
pub fn counts_in(dir: &Path) -> Result<Option<PinnedCounts>, EbpfError> {
    let (counters, accounted) = pins(dir);
    if !counters.exists() && !accounted.exists() {
        return Ok(None);
    }
    let open = |path: &Path| {
        MapData::from_pin(path)
            .and_then(Map::from_map_data)
            .map_err(|e| e.to_string())
    };
    let counters = open(&counters).map_err(pin_err("reading the counters", dir))?;
    let counters: PerCpuArray<MapData, u64> = PerCpuArray::try_from(counters)
        .map_err(|e| e.to_string())
        .map_err(pin_err("reading the counters", dir))?;
    let mut produced: u64 = 0;
    for i in 0..counters.len() {
        let per_cpu = counters
            .get(&i, 0)
            .map_err(|e| e.to_string())
            .map_err(pin_err("reading the counters", dir))?;
        produced = produced.saturating_add(per_cpu.iter().sum());
    }
    let accounted = open(&accounted).map_err(pin_err("reading the accounted total", dir))?;
    let accounted: Array<MapData, u64> = Array::try_from(accounted)
        .map_err(|e| e.to_string())
        .map_err(pin_err("reading the accounted total", dir))?;
    let accounted = accounted
        .get(&0, 0)
        .map_err(|e| e.to_string())
        .map_err(pin_err("reading the accounted total", dir))?;
    Ok(Some(PinnedCounts {
        produced,
        accounted,
    }))
}

/// Removes the pins in `dir`, and `dir` (a missing pin is no error).
pub fn unpin(dir: &Path) -> Result<(), EbpfError> {
    let (counters, accounted) = pins(dir);
    for pin in [counters, accounted] {
        match std::fs::remove_file(&pin) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(pin_err("unpinning", dir)(format!("{}: {e}", pin.display()))),
        }
    }
    match std::fs::remove_dir(dir) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(pin_err("unpinning", dir)(e.to_string())),
    }
}

/// The accounted total of a sensor whose counters are pinned.
pub(crate) struct Accounted {
    map: Array<MapData, u64>,
}

impl Accounted {
    /// Pins `counters` (the sensor's `ritma_drops`) and `accounted` in `dir`, created if
    /// missing; pins left there by an earlier run must have been read and removed first.
    pub(crate) fn pin(dir: &Path, counters: &Map, accounted: Map) -> Result<Self, EbpfError> {
        std::fs::create_dir_all(dir)
            .map_err(|e| e.to_string())
            .map_err(pin_err("creating the directory", dir))?;
        let (counters_pin, accounted_pin) = pins(dir);
        counters
            .pin(&counters_pin)
            .map_err(|e| format!("{DROPS_MAP}: {e}"))
            .map_err(pin_err("pinning", dir))?;
        accounted
            .pin(&accounted_pin)
            .map_err(|e| format!("{ACCOUNTED_MAP}: {e}"))
            .map_err(pin_err("pinning", dir))?;
        let map = Array::try_from(accounted)
            .map_err(|e| e.to_string())
            .map_err(pin_err("opening the accounted total", dir))?;
        Ok(Accounted { map })
    }

    pub(crate) fn set(&mut self, total: u64) -> Result<(), EbpfError> {
        self.map.set(0, total, 0).map_err(|e| EbpfError::Map {
            map: ACCOUNTED_MAP,
            action: "write",
            source: Box::new(e),
        })
    }
}
