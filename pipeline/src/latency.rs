//! Seal latencies counted in a log-linear histogram: a live run seals a window a second
//! for months, so its latencies must take bounded memory. Below 256 µs every
//! microsecond has its bucket; above, each power of two has 128, so a quantile is
//! reported within 1/128 below the latency it stands for.

use std::time::Duration;

/// Exact buckets, one per microsecond below this.
const EXACT: u64 = 256;
/// Buckets per power of two above `EXACT`.
const PER_OCTAVE: u64 = 128;

#[derive(Clone, Debug, Default)]
pub struct Latencies {
    counts: Vec<u64>,
    total: u64,
}

impl Latencies {
    pub fn record(&mut self, latency: Duration) {
        let us = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX);
        let b = bucket(us);
        if self.counts.len() <= b {
            self.counts.resize(b + 1, 0);
        }
        self.counts[b] += 1;
        self.total += 1;
    }

    /// The `q`-quantile (0..=1): the latency at rank round((n − 1)·q) in sorted order,
    /// as the lowest value of its bucket.
    pub fn quantile(&self, q: f64) -> Option<Duration> {
        if self.total == 0 {
            return None;
        }
        let rank = ((self.total - 1) as f64 * q.clamp(0.0, 1.0)).round() as u64;
        let mut seen = 0;
        for (b, &c) in self.counts.iter().enumerate() {
            seen += c;
            if seen > rank {
                return Some(Duration::from_micros(lowest(b)));
            }
        }
        None
    }
}

fn bucket(us: u64) -> usize {
    if us < EXACT {
        return us as usize;
    }
    // us >> shift falls in [128, 256): its low 7 bits pick the bucket within the octave.
    let shift = (63 - us.leading_zeros()) as u64 - 7;
    (EXACT + (shift - 1) * PER_OCTAVE + ((us >> shift) - PER_OCTAVE)) as usize
}

fn lowest(bucket: usize) -> u64 {
    let b = bucket as u64;
    if b < EXACT {
        return b;
    }
    let shift = (b - EXACT) / PER_OCTAVE + 1;
    ((b - EXACT) % PER_OCTAVE + PER_OCTAVE) << shift
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The exact quantile of `sorted` at the same rank `quantile` uses.
    fn exact(sorted: &[u64], q: f64) -> u64 {
        sorted[((sorted.len() - 1) as f64 * q).round() as usize]
    }

    #[test]
    fn buckets_are_contiguous_and_each_holds_its_lowest_value() {
        let mut last = 0;
        for us in [
            0u64,
            1,
            255,
            256,
            257,
            511,
            512,
            1023,
            1024,
            999_999,
            1 << 40,
            u64::MAX,
        ] {
            let b = bucket(us);
            assert!(
                lowest(b) <= us,
                "{us} in bucket {b} starting at {}",
                lowest(b)
            );
            assert_eq!(bucket(lowest(b)), b, "{us}");
            assert!(b >= last, "buckets grow with the value");
            last = b;
        }
        for b in 0..3000 {
            assert_eq!(bucket(lowest(b)), b, "bucket {b}");
            assert!(lowest(b + 1) > lowest(b), "bucket {b}");
        }
    }

    #[test]
    fn quantiles_are_within_one_128th_below_the_exact_ones() {
        // Deterministic spread from 1 µs to ~30 s.
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        let mut values = Vec::new();
        let mut h = Latencies::default();
        for _ in 0..20_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let us = (1 + x % 30_000_000) >> (x % 20);
            values.push(us);
            h.record(Duration::from_micros(us));
        }
        values.sort_unstable();
        assert_eq!(h.total, 20_000);
        for q in [0.0, 0.01, 0.5, 0.9, 0.99, 0.999, 1.0] {
            let got = h.quantile(q).unwrap().as_micros() as u64;
            let want = exact(&values, q);
            assert!(
                got <= want && want - got <= want / 128,
                "q {q}: {got} for {want}"
            );
        }
    }

    #[test]
    fn an_empty_histogram_has_no_quantile_and_memory_stays_bounded() {
        let mut h = Latencies::default();
        assert_eq!(h.quantile(0.5), None);
        h.record(Duration::from_secs(86_400 * 365));
        h.record(Duration::MAX);
        assert!(h.counts.len() < 8_000, "{} buckets", h.counts.len());
        assert_eq!(
            h.quantile(0.0),
            Some(Duration::from_micros(lowest(bucket(
                86_400 * 365 * 1_000_000
            ))))
        );
    }
}
