//! Hook liveness during a capture: every `HookMonitor::check` reads the kernel's call
//! counts, finds the programs that went silent (`Sensor::silent_programs`), attaches them
//! again and says how many calls each gap cost, from the counts its partner kept.
//!
//! A syscall's enter and exit programs count each other's work (`ritma_calls`): while an
//! exit program is silent its enter keeps stashing calls nobody reports (stashed −
//! consumed), and while an enter program is silent its exit meets calls without a stash
//! (orphans). With both silent, or for the lifecycle programs, nothing counted the gap.

use std::time::{Duration, Instant};

use crate::error::EbpfError;
use crate::programs::{
    counted_syscalls, is_enter, partner, CALL_CONSUMED, CALL_ORPHAN, CALL_STASHED,
};
use crate::sensor::Sensor;

/// The kernel's per-syscall call counts, summed over CPUs, by slot (3·SC + CALL_*).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CallCounts(Vec<u64>);

impl CallCounts {
    pub fn from_slots(slots: Vec<u64>) -> Self {
        CallCounts(slots)
    }

    fn at(&self, sc: u32, what: u32) -> u64 {
        self.0.get((sc * 3 + what) as usize).copied().unwrap_or(0)
    }
}

/// The calls `program` missed between `before` (a moment it ran) and `after` (once it
/// runs again), when it alone of its syscall pair was silent; `None` when nothing counted
/// them. Calls in flight at either moment may be counted on the wrong side, and for
/// ptrace and bpf an enter-side gap also counts the requests the enter program would
/// have skipped (it filters them before stashing): an upper bound there. For fcntl, whose
/// exit cannot tell a missed F_DUPFD from any other command, an enter-side gap is `None`.
pub fn calls_missed(
    program: &str,
    silent: &[&str],
    before: &CallCounts,
    after: &CallCounts,
) -> Option<u64> {
    let other = partner(program)?;
    if silent.contains(&other) || program == "enter_fcntl" {
        return None;
    }
    let grew = |sc, what| after.at(sc, what).saturating_sub(before.at(sc, what));
    let scs = counted_syscalls(program);
    Some(if is_enter(program) {
        scs.iter().map(|&sc| grew(sc, CALL_ORPHAN)).sum()
    } else {
        scs.iter()
            .map(|&sc| grew(sc, CALL_STASHED).saturating_sub(grew(sc, CALL_CONSUMED)))
            .sum()
    })
}

/// One silent program and what was done about it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Gap {
    pub program: &'static str,
    /// Kernel monotonic ns when the program was found silent.
    pub detected_mono_ns: u64,
    /// Kernel monotonic ns once it was attached again, or why it could not be.
    pub reattached: Result<u64, String>,
    /// Calls it missed since the previous check (`calls_missed`).
    pub lost: Option<u64>,
}

/// How often a capture checks its hooks.
pub const CHECK_EVERY: Duration = Duration::from_secs(1);

/// Checks a running sensor's hooks every `CHECK_EVERY`.
pub struct HookMonitor {
    /// The counts read before the last check's own calls, when every program ran.
    before: CallCounts,
    last: Instant,
}

impl HookMonitor {
    /// Starts from the counts now (every program was just attached).
    pub fn new(sensor: &Sensor) -> Result<Self, EbpfError> {
        Ok(HookMonitor {
            before: sensor.call_counts()?,
            last: Instant::now(),
        })
    }

    /// How long until the next check is due.
    pub fn due_in(&self) -> Duration {
        (self.last + CHECK_EVERY).saturating_duration_since(Instant::now())
    }

    /// Makes every checkable hook fire once; attaches the silent ones again and returns
    /// their gaps, counted from the previous check to the moment they run again.
    pub fn check(&mut self, sensor: &mut Sensor) -> Result<Vec<Gap>, EbpfError> {
        self.last = Instant::now();
        // Read before the calls that test the hooks: a hook that beats now ran since then.
        let counts = sensor.call_counts()?;
        let mut silent = sensor.silent_programs()?;
        if !silent.is_empty() {
            // A beat delayed past the wait on a loaded host is not a detach: a program is
            // silent only if a second round of calls finds it silent too (a re-attach of a
            // live program would itself leave a gap).
            let again = sensor.silent_programs()?;
            silent.retain(|p| again.contains(p));
        }
        if silent.is_empty() {
            self.before = counts;
            return Ok(Vec::new());
        }
        let detected_mono_ns = mono_now_ns();
        let reattached: Vec<Result<u64, String>> = silent
            .iter()
            .map(|p| {
                sensor
                    .reattach(p)
                    .map(|()| mono_now_ns())
                    .map_err(|e| e.to_string())
            })
            .collect();
        let after = sensor.call_counts()?;
        let gaps = silent
            .iter()
            .zip(reattached)
            .map(|(&program, reattached)| Gap {
                program,
                detected_mono_ns,
                reattached,
                lost: calls_missed(program, &silent, &self.before, &after),
            })
            .collect();
        // The next gap counts from here: nothing is counted twice.
        self.before = after;
        Ok(gaps)
    }
}

/// Kernel monotonic ns now (the clock of `bpf_ktime_get_ns` and of the events' `mono_ns`).
pub fn mono_now_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: ts is a valid timespec to write to.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    (ts.tv_sec.max(0) as u64) * 1_000_000_000 + ts.tv_nsec.max(0) as u64
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::programs::{CALL_SLOTS, SYSCALLS};

    fn zero_counts() -> CallCounts {
        CallCounts(vec![0; CALL_SLOTS as usize])
    }

    fn sc(name: &str) -> u32 {
        SYSCALLS.iter().position(|s| s.name == name).unwrap() as u32 + 1
    }

    fn counts(entries: &[(&str, u32, u64)]) -> CallCounts {
        let mut c = zero_counts();
        for &(name, what, n) in entries {
            c.0[(sc(name) * 3 + what) as usize] = n;
        }
        c
    }

    #[test]
    fn a_silent_exit_program_lost_what_its_enter_stashed_and_nothing_consumed() {
        let before = counts(&[("openat", CALL_STASHED, 100), ("openat", CALL_CONSUMED, 99)]);
        // 40 enters stashed, 5 exits consumed before the link went: 35 calls unreported.
        let after = counts(&[
            ("openat", CALL_STASHED, 140),
            ("openat", CALL_CONSUMED, 104),
        ]);
        assert_eq!(
            calls_missed("exit_openat", &["exit_openat"], &before, &after),
            Some(35)
        );
        // Other syscalls' counts do not leak in.
        let after2 = counts(&[
            ("openat", CALL_STASHED, 140),
            ("openat", CALL_CONSUMED, 104),
            ("connect", CALL_STASHED, 1000),
        ]);
        assert_eq!(
            calls_missed("exit_openat", &["exit_openat"], &before, &after2),
            Some(35)
        );
    }

    #[test]
    fn a_silent_enter_program_lost_the_exits_that_found_no_stash() {
        let before = counts(&[("connect", CALL_ORPHAN, 3)]);
        let after = counts(&[("connect", CALL_ORPHAN, 10), ("connect", CALL_CONSUMED, 50)]);
        assert_eq!(
            calls_missed("enter_connect", &["enter_connect"], &before, &after),
            Some(7)
        );
    }

    #[test]
    fn a_pair_silent_together_or_a_lifecycle_program_has_no_count() {
        let c = zero_counts();
        let both = ["enter_bind", "exit_bind"];
        assert_eq!(calls_missed("enter_bind", &both, &c, &c), None);
        assert_eq!(calls_missed("exit_bind", &both, &c, &c), None);
        assert_eq!(calls_missed("ritma_fork", &["ritma_fork"], &c, &c), None);
        assert_eq!(calls_missed("ritma_exit", &["ritma_exit"], &c, &c), None);
    }

    #[test]
    fn the_module_stand_ins_count_both_module_syscalls() {
        let before = zero_counts();
        let after = counts(&[
            ("init_module", CALL_ORPHAN, 1),
            ("finit_module", CALL_ORPHAN, 2),
        ]);
        assert_eq!(
            calls_missed("raw_enter_module", &["raw_enter_module"], &before, &after),
            Some(3)
        );
    }

    #[test]
    fn counters_that_went_back_count_nothing() {
        // A reloaded map starts at zero again: never a huge unsigned difference.
        let before = counts(&[("openat", CALL_STASHED, 100)]);
        let after = zero_counts();
        assert_eq!(
            calls_missed("exit_openat", &["exit_openat"], &before, &after),
            Some(0)
        );
    }
}
