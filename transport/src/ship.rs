//! Ships a store to the evidence topic from its cursor: each shipment's parts are sent,
//! acked by the broker (acks=all), and only then is the cursor written (fsynced), so a
//! restart or an outage resumes from the store, never from memory (FORMAT.md §12.3).

use crate::kafka::{KafkaSettings, Shipper, TransportError};
use ritma_schemas::records::Record;
use ritma_sinks::ship::{write_cursor, ShipSource};
use ritma_sinks::store::NodeStore;
use std::path::Path;

/// What one pass shipped, and how far behind the store it still is.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ShipProgress {
    pub windows: u64,
    pub envelopes: u64,
    pub messages: u64,
    pub bytes: u64,
    /// OCSF events sent to the SIEM topic.
    pub ocsf_events: u64,
    /// Completed windows not yet shipped after the pass.
    pub lag_windows: u64,
    /// How long ago the oldest of them ended, in ms (0 when none waits).
    pub lag_ms: u64,
    /// Passes that failed (the brokers away, a delivery timed out) and were retried.
    pub failures: u64,
}

impl ShipProgress {
    pub fn add(&mut self, o: &ShipProgress) {
        self.windows += o.windows;
        self.envelopes += o.envelopes;
        self.messages += o.messages;
        self.bytes += o.bytes;
        self.ocsf_events += o.ocsf_events;
        self.lag_windows = o.lag_windows;
        self.lag_ms = o.lag_ms;
        self.failures += o.failures;
    }
}

/// Ships every shipment the node tree at `root` has completed to `topic`, or until
/// `keep_going` says stop; the progress so far comes back with an error too.
pub fn ship_pending(
    root: &Path,
    topic: &str,
    ocsf_topic: Option<&str>,
    shipper: &Shipper,
    settings: &KafkaSettings,
    mut keep_going: impl FnMut() -> bool,
) -> (ShipProgress, Result<(), TransportError>) {
    let mut done = ShipProgress::default();
    let store_err = |e: ritma_sinks::store::StoreError| TransportError::Store(e.to_string());
    let mut src = match ShipSource::open(root, topic) {
        Ok(s) => s,
        Err(e) => return (done, Err(store_err(e))),
    };
    let result = (|| {
        while keep_going() {
            let Some(out) = src.next_shipment().map_err(store_err)? else {
                break;
            };
            let node = src.meta().node.clone();
            let mut messages = Vec::new();
            for env in &out.envelopes {
                for part in env.to_parts(settings.part_payload()) {
                    messages.push((node.as_str(), part.encode()));
                }
            }
            shipper.send_all(topic, &messages, settings.delivery_timeout)?;
            // The window's events for the SIEM, at least once: before the cursor moves.
            if let (Some(ocsf), Some(w)) = (ocsf_topic, out.window) {
                let lines = ocsf_lines(root, src.meta(), w)?;
                let msgs: Vec<(&str, Vec<u8>)> = lines
                    .into_iter()
                    .map(|l| (node.as_str(), l.into_bytes()))
                    .collect();
                shipper.send_all(ocsf, &msgs, settings.delivery_timeout)?;
                done.ocsf_events += msgs.len() as u64;
            }
            write_cursor(root, &out.cursor).map_err(store_err)?;
            src.acked(out.cursor);
            done.windows += u64::from(out.window.is_some());
            done.envelopes += out.envelopes.len() as u64;
            done.messages += messages.len() as u64;
            done.bytes += messages.iter().map(|(_, v)| v.len() as u64).sum::<u64>();
        }
        Ok(())
    })();
    (done.lag_windows, done.lag_ms) =
        lag(root, src.meta(), src.cursor().next_window).unwrap_or((0, 0));
    (done, result)
}

/// Completed windows of the store from `next_window` on (all of them if none is shipped),
/// and how many ms ago the first of them ended.
pub fn lag(
    root: &Path,
    meta: &ritma_schemas::records::StoreMeta,
    next_window: Option<u64>,
) -> Option<(u64, u64)> {
    let store = NodeStore::open(root, meta.clone()).ok()?;
    let last = store.last_sealed_window().ok()??;
    let first = match next_window {
        Some(w) => w,
        None => store.first_sealed_window().ok()??,
    };
    let windows = (last + 1).saturating_sub(first);
    if windows == 0 {
        return Some((0, 0));
    }
    let ended_ns = (first as u128 + 1) * meta.window_len_ns as u128;
    let now_ns = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    Some((
        windows,
        (now_ns.saturating_sub(ended_ns) / 1_000_000) as u64,
    ))
}

/// The OCSF events of window `w` of the node tree at `root`.
fn ocsf_lines(
    root: &Path,
    meta: &ritma_schemas::records::StoreMeta,
    w: u64,
) -> Result<Vec<String>, TransportError> {
    let err = |e: String| TransportError::Store(format!("OCSF of window {w}: {e}"));
    let p = ritma_sinks::store::WindowPaths::new(w, meta.window_len_ns);
    let bytes = ritma_sinks::store::read_capped(&root.join(p.record()), 65_536)
        .map_err(|e| err(e.to_string()))?;
    let record =
        ritma_schemas::records::WindowRecord::decode(&bytes).map_err(|e| err(e.to_string()))?;
    if record.leaf_count() == 0 {
        return Ok(Vec::new());
    }
    let leaves =
        ritma_sinks::store::read_window_leaves(&root.join(p.blocks()), w, record.leaf_count())
            .map_err(|e| err(e.to_string()))?;
    ritma_ocsf::window_event_lines(&record, &leaves).map_err(|e| err(e.to_string()))
}
