//! Capture modes (DESIGN §5): every actor is sealed in the run's base mode unless a
//! trigger raised it. A trigger (any cone or detector match) seeds taint; while the seed
//! is live (`ttl` windows from its last sighting) the seed and everything taint reaches
//! from it — its process tree, what it wrote and whoever ran that — are raised to Thick.
//! The unit is (actor, window): a raised actor's whole window is sealed Thick, so the
//! decision needs nothing but the window's seeds and taint changes, in window order.

use crate::taint::TaintChange;
use ritma_schemas::records::CaptureMode;
use ritma_schemas::Id128;
use std::collections::{BTreeMap, HashMap};

/// Which actors are raised, window by window, for one node.
/// (id, number) pairs ascending by id: seeds with their last window, entities with counts.
pub type IdCounts = Vec<(Id128, u64)>;

pub struct ModeRaises {
    base: CaptureMode,
    ttl_windows: u64,
    /// Seed → the last window it was sighted in.
    seeds: BTreeMap<Id128, u64>,
    /// Entity → how many live seeds reach it.
    reached: HashMap<Id128, u64>,
}

impl ModeRaises {
    pub fn new(base: CaptureMode, ttl_windows: u64) -> Self {
        ModeRaises {
            base,
            ttl_windows: ttl_windows.max(1),
            seeds: BTreeMap::new(),
            reached: HashMap::new(),
        }
    }

    /// Takes `window`'s seeds and taint changes (windows in increasing order, each once,
    /// with or without inputs).
    pub fn advance(&mut self, window: u64, seeds: &[Id128], taint: &[TaintChange]) {
        let ttl = self.ttl_windows;
        self.seeds.retain(|_, last| *last + ttl > window);
        for s in seeds {
            self.seeds.insert(*s, window);
        }
        for c in taint {
            let n = self.reached.entry(c.entity).or_default();
            *n = n.saturating_add_signed(c.diff);
            if *n == 0 {
                self.reached.remove(&c.entity);
            }
        }
    }

    /// What it holds, for a saved state: (seed, last window sighted) by seed and (entity,
    /// live seeds reaching it) by entity.
    pub fn export(&self) -> (IdCounts, IdCounts) {
        let seeds = self.seeds.iter().map(|(s, w)| (*s, *w)).collect();
        let mut reached: Vec<(Id128, u64)> = self.reached.iter().map(|(e, n)| (*e, *n)).collect();
        reached.sort();
        (seeds, reached)
    }

    /// Puts back a saved state (`export`).
    pub fn restore(&mut self, seeds: &[(Id128, u64)], reached: &[(Id128, u64)]) {
        self.seeds = seeds.iter().copied().collect();
        self.reached = reached.iter().copied().collect();
    }

    /// The mode of actors no trigger raised.
    pub fn base(&self) -> CaptureMode {
        self.base
    }

    /// The mode `actor` is sealed in at the window last advanced to.
    pub fn mode_of(&self, actor: &Id128) -> CaptureMode {
        // Nothing raised is the common case: no lookup per event then.
        let raised = !(self.seeds.is_empty() && self.reached.is_empty())
            && (self.seeds.contains_key(actor) || self.reached.contains_key(actor));
        if self.base == CaptureMode::Thin && raised {
            CaptureMode::Thick
        } else {
            self.base
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn change(seed: u8, entity: u8, window: u64, diff: i64) -> TaintChange {
        TaintChange {
            node: 0,
            seed: [seed; 16],
            entity: [entity; 16],
            window,
            diff,
        }
    }

    #[test]
    fn a_seed_and_what_it_reaches_are_thick_until_the_seed_expires() {
        let mut m = ModeRaises::new(CaptureMode::Thin, 3);
        m.advance(10, &[], &[]);
        assert_eq!(m.mode_of(&[1; 16]), CaptureMode::Thin);
        // Seed 1 fires at 11 and reaches 2; 3 is untouched.
        m.advance(11, &[[1; 16]], &[change(1, 2, 11, 1)]);
        for a in [[1; 16], [2; 16]] {
            assert_eq!(m.mode_of(&a), CaptureMode::Thick);
        }
        assert_eq!(m.mode_of(&[3; 16]), CaptureMode::Thin);
        // Live for windows 11..=13; taint retracts 2 at 14 as the seed ages out.
        m.advance(13, &[], &[]);
        assert_eq!(m.mode_of(&[1; 16]), CaptureMode::Thick);
        m.advance(14, &[], &[change(1, 2, 14, -1)]);
        assert_eq!(m.mode_of(&[1; 16]), CaptureMode::Thin);
        assert_eq!(m.mode_of(&[2; 16]), CaptureMode::Thin);
    }

    #[test]
    fn an_entity_reached_by_two_seeds_stays_raised_until_both_retract() {
        let mut m = ModeRaises::new(CaptureMode::Thin, 100);
        m.advance(1, &[], &[change(1, 9, 1, 1), change(2, 9, 1, 1)]);
        m.advance(2, &[], &[change(1, 9, 2, -1)]);
        assert_eq!(m.mode_of(&[9; 16]), CaptureMode::Thick);
        m.advance(3, &[], &[change(2, 9, 3, -1)]);
        assert_eq!(m.mode_of(&[9; 16]), CaptureMode::Thin);
    }

    #[test]
    fn a_base_mode_above_thin_is_kept_for_everyone() {
        let m = ModeRaises::new(CaptureMode::Thick, 1);
        assert_eq!(m.mode_of(&[5; 16]), CaptureMode::Thick);
    }
}
