//! hour-seal: when a node's last window of an hour is sealed, the node-log
//! checkpoint at that window becomes the hour's seal, chained to the previous
//! hour's seal by an RFC 9162 consistency proof (FORMAT.md §3.7). The proof is made
//! from the log's frontier at the previous seal plus the window records since, so
//! nothing older than an hour is kept.

use ritma_schemas::merkle::{consistency_proof, Blake3Tree, Extension, Frontier, ProofError};
use ritma_schemas::records::{HourSeal, PrevHour};
use ritma_schemas::Hash32;

/// The hour-seal state of one node.
pub struct HourSealer {
    node: String,
    window_len_ns: u64,
    prev: Option<PrevHour>,
    /// The node log as of the previous seal.
    base: Frontier,
    /// Leaf hashes of the window records sealed since.
    since: Vec<Hash32>,
    first_window: Option<u64>,
}

impl HourSealer {
    pub fn new(node: &str, window_len_ns: u64) -> Self {
        HourSealer {
            node: node.to_owned(),
            window_len_ns,
            prev: None,
            base: Frontier::new(),
            since: Vec::new(),
            first_window: None,
        }
    }

    /// Records a sealed window (its record's leaf hash and the node log after it);
    /// returns the hour's seal if it was the hour's last window.
    /// The hour sealed last, if any.
    pub fn prev(&self) -> Option<&PrevHour> {
        self.prev.as_ref()
    }

    /// Continues after the hour `prev`, sealed at log frontier `log` (a saved state).
    pub fn restore(&mut self, prev: PrevHour, log: Frontier) {
        self.prev = Some(prev);
        self.base = log;
        self.since.clear();
        self.first_window = None;
    }

    pub fn push(
        &mut self,
        window: u64,
        record_leaf: Hash32,
        log: &Frontier,
    ) -> Result<Option<HourSeal>, ProofError> {
        self.since.push(record_leaf);
        self.first_window.get_or_insert(window);
        let per_hour = ritma_schemas::records::windows_per_hour(self.window_len_ns);
        if !(window + 1).is_multiple_of(per_hour) {
            return Ok(None);
        }
        let consistency = match &self.prev {
            Some(p) => consistency_proof::<Blake3Tree, _>(
                &Extension {
                    old: &self.base,
                    appended: &self.since,
                },
                p.log_size,
            )?,
            None => Vec::new(),
        };
        let seal = HourSeal {
            node: self.node.clone(),
            hour: window / per_hour,
            first_window: self.first_window.take().unwrap_or(window),
            last_window: window,
            log_size: log.size(),
            log_root: log.root::<Blake3Tree>(),
            prev: self.prev.take(),
            consistency,
        };
        self.prev = Some(PrevHour {
            hour: seal.hour,
            log_size: seal.log_size,
            log_root: seal.log_root,
        });
        self.base = log.clone();
        self.since.clear();
        Ok(Some(seal))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ritma_schemas::merkle::{verify_consistency, TreeHash};

    #[test]
    fn hours_chain_by_consistency_proofs() {
        // 10-minute windows: 6 per hour; the node starts mid-hour at window 3.
        let mut s = HourSealer::new("n", 600_000_000_000);
        let mut log = Frontier::new();
        let mut seals = Vec::new();
        for w in 3..24u64 {
            let leaf = Blake3Tree::leaf(&w.to_be_bytes());
            log.push::<Blake3Tree>(leaf);
            if let Some(seal) = s.push(w, leaf, &log).unwrap() {
                seals.push(seal);
            }
        }
        assert_eq!(
            seals
                .iter()
                .map(|s| (s.hour, s.first_window, s.last_window, s.log_size))
                .collect::<Vec<_>>(),
            vec![
                (0, 3, 5, 3),
                (1, 6, 11, 9),
                (2, 12, 17, 15),
                (3, 18, 23, 21)
            ]
        );
        assert!(seals[0].prev.is_none() && seals[0].consistency.is_empty());
        for pair in seals.windows(2) {
            let (a, b) = (&pair[0], &pair[1]);
            let p = b.prev.as_ref().unwrap();
            assert_eq!(
                (p.hour, p.log_size, p.log_root),
                (a.hour, a.log_size, a.log_root)
            );
            verify_consistency::<Blake3Tree>(
                p.log_size,
                b.log_size,
                &p.log_root,
                &b.log_root,
                &b.consistency,
            )
            .unwrap();
        }
    }
}
