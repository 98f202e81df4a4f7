//! Which windows of a node may follow each other (FORMAT.md §8, "Downtime"): every window
//! from the node's first to its last is sealed, except windows left out while capture was
//! down between two runs. A left-out range (a jump) never holds a window that ends an
//! hour, and the first window after it that holds anything must hold the restart's
//! capture_stopped / capture_started pair, its stop before the jump.

use ritma_schemas::records::windows_per_hour;

/// Why a window may not follow the one before it.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ContinuityError {
    #[error("window {window} repeats or goes back from window {prev}")]
    Back { window: u64, prev: u64 },
    #[error("window {window} follows window {prev}, leaving out window {hour_end}, which ends an hour: a downtime leaves out no hour's last window")]
    HourEnd {
        window: u64,
        prev: u64,
        hour_end: u64,
    },
    #[error("windows {from} to {to} are left out, but window {window}, the first holding anything after them, records no restart (capture_stopped and capture_started)")]
    NoRestart { window: u64, from: u64, to: u64 },
    #[error("windows {from} to {to} are left out, but the capture_stopped record of window {window} is at {stopped} ns, not before window {from} starts ({start} ns): capture was not down there")]
    StopAfterGap {
        window: u64,
        from: u64,
        to: u64,
        stopped: u64,
        start: u128,
    },
}

/// The walk over one node's windows in order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WindowSequence {
    per_hour: u64,
    window_len_ns: u64,
    prev: Option<u64>,
    /// The first window left out, while no window holding anything has followed.
    left_out: Option<(u64, u64)>,
}

impl WindowSequence {
    pub fn new(window_len_ns: u64) -> Self {
        WindowSequence {
            per_hour: windows_per_hour(window_len_ns),
            window_len_ns,
            prev: None,
            left_out: None,
        }
    }

    /// Continues a walk that reached `prev` with the windows `left_out` (first, last) not yet
    /// accounted for by a restart.
    pub fn resume(window_len_ns: u64, prev: Option<u64>, left_out: Option<(u64, u64)>) -> Self {
        WindowSequence {
            left_out,
            prev,
            ..WindowSequence::new(window_len_ns)
        }
    }

    /// The window before the next one.
    pub fn prev(&self) -> Option<u64> {
        self.prev
    }

    /// The windows left out that the next window holding anything must account for.
    pub fn left_out(&self) -> Option<(u64, u64)> {
        self.left_out
    }

    /// The next window, before its contents are known: it must come after the previous
    /// one, and a range left out before it may not hold an hour's last window.
    pub fn follow(&mut self, window: u64) -> Result<(), ContinuityError> {
        if let Some(prev) = self.prev {
            if window <= prev {
                return Err(ContinuityError::Back { window, prev });
            }
            if window > prev + 1 {
                let hour_end = (prev + 1) / self.per_hour * self.per_hour + self.per_hour - 1;
                if hour_end < window {
                    return Err(ContinuityError::HourEnd {
                        window,
                        prev,
                        hour_end,
                    });
                }
                let first = self.left_out.map_or(prev + 1, |(first, _)| first);
                self.left_out = Some((first, window - 1));
            }
        }
        self.prev = Some(window);
        Ok(())
    }

    /// What the window just followed holds: whether anything (an event, a loss, a health
    /// record) and, if it records a restart, its newest capture_stopped time. The first
    /// window holding anything after a range left out must record a restart whose stop
    /// is before the range.
    pub fn holds(&mut self, anything: bool, stopped: Option<u64>) -> Result<(), ContinuityError> {
        let Some(window) = self.prev else {
            return Ok(());
        };
        if !anything {
            return Ok(());
        }
        let Some((from, to)) = self.left_out.take() else {
            return Ok(());
        };
        let start = u128::from(from) * u128::from(self.window_len_ns);
        match stopped {
            None => Err(ContinuityError::NoRestart { window, from, to }),
            Some(t) if u128::from(t) >= start => Err(ContinuityError::StopAfterGap {
                window,
                from,
                to,
                stopped: t,
                start,
            }),
            Some(_) => Ok(()),
        }
    }

    /// The window just followed cannot be read (deleted by retention): a range left out
    /// before it is taken as accounted for.
    fn unread(&mut self) {
        self.left_out = None;
    }

    /// Windows `first` to `last` of an hour retention deleted: they follow as windows do,
    /// and nothing they held can be read.
    pub fn deleted(&mut self, first: u64, last: u64) -> Result<(), ContinuityError> {
        self.follow(first)?;
        self.unread();
        if last > first {
            self.prev = Some(last);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // One-minute windows: 60 an hour.
    const LEN: u64 = 60_000_000_000;

    fn walk(windows: &[(u64, bool, Option<u64>)]) -> Result<(), ContinuityError> {
        let mut s = WindowSequence::new(LEN);
        for &(w, anything, stopped) in windows {
            s.follow(w)?;
            s.holds(anything, stopped)?;
        }
        Ok(())
    }

    #[test]
    fn consecutive_windows_follow_and_nothing_else_does_without_a_restart() {
        assert_eq!(
            walk(&[(5, true, None), (6, false, None), (7, true, None)]),
            Ok(())
        );
        assert_eq!(
            walk(&[(5, true, None), (5, true, None)]),
            Err(ContinuityError::Back { window: 5, prev: 5 })
        );
        assert_eq!(
            walk(&[(5, true, None), (9, true, None)]),
            Err(ContinuityError::NoRestart {
                window: 9,
                from: 6,
                to: 8
            })
        );
    }

    #[test]
    fn a_jump_is_accounted_for_by_the_next_window_holding_a_restart_stopped_before_it() {
        // Stopped in window 5 (at 5.5 minutes), capture down until window 50.
        let stop = 5 * LEN + LEN / 2;
        assert_eq!(walk(&[(5, true, None), (50, true, Some(stop))]), Ok(()));
        // A stop inside the left-out range: capture was running there.
        assert!(matches!(
            walk(&[(5, true, None), (50, true, Some(7 * LEN))]),
            Err(ContinuityError::StopAfterGap { from: 6, .. })
        ));
        // Across hours: each hour's last window is sealed, holding nothing.
        let ok = [
            (5, true, None),
            (59, false, None),
            (119, false, None),
            (130, true, Some(stop)),
        ];
        assert_eq!(walk(&ok), Ok(()));
        // The restart must come at the first window holding anything.
        let late = [
            (5, true, None),
            (59, false, None),
            (70, true, None),
            (80, true, Some(stop)),
        ];
        assert!(matches!(
            walk(&late),
            Err(ContinuityError::NoRestart {
                window: 70,
                from: 6,
                to: 69
            })
        ));
    }

    #[test]
    fn a_jump_never_leaves_out_an_hours_last_window() {
        let stop = 5 * LEN;
        assert_eq!(
            walk(&[(5, true, None), (61, true, Some(stop))]),
            Err(ContinuityError::HourEnd {
                window: 61,
                prev: 5,
                hour_end: 59
            })
        );
        // From an hour's last window, the next hour's last is the first that must be kept.
        assert_eq!(walk(&[(59, true, None), (119, true, Some(stop))]), Ok(()));
        assert!(walk(&[(59, true, None), (120, true, Some(stop))]).is_err());
    }

    #[test]
    fn an_unread_window_or_a_deleted_hour_settles_a_jump() {
        let mut s = WindowSequence::new(LEN);
        s.follow(5).unwrap();
        s.follow(59).unwrap();
        assert_eq!(s.left_out(), Some((6, 58)));
        s.deleted(60, 119).unwrap();
        assert_eq!((s.prev(), s.left_out()), (Some(119), None));
        s.follow(120).unwrap();
        s.holds(true, None).unwrap();
        let mut r = WindowSequence::resume(LEN, Some(5), Some((1, 4)));
        r.follow(6).unwrap();
        assert!(r.holds(true, None).is_err());
    }
}
