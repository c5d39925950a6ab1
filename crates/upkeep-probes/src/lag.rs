//! How late probes start: the time from a check's scheduled start to its actual start, in a
//! shared histogram. A scheduler that keeps up shows sub-millisecond lags; one that does not
//! shows them growing. Exported on `/metrics` (`upkeep_probe_lag_seconds`) and read by the
//! probe benchmark.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Upper bounds of the buckets, in seconds (Prometheus `le`).
pub const LAG_BUCKETS: [f64; 14] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0,
];

/// Lock-free: one relaxed add per check.
#[derive(Debug, Default)]
pub struct LagHistogram {
    /// Per bucket (not cumulative); the last slot is +Inf.
    counts: [AtomicU64; LAG_BUCKETS.len() + 1],
    sum_ns: AtomicU64,
}

/// A copy of the histogram: cumulative counts per `LAG_BUCKETS` bound, then +Inf (= count).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LagSnapshot {
    pub cumulative: Vec<u64>,
    pub sum_seconds: f64,
}

impl LagHistogram {
    pub fn record(&self, lag: Duration) {
        let secs = lag.as_secs_f64();
        let i = LAG_BUCKETS
            .iter()
            .position(|b| secs <= *b)
            .unwrap_or(LAG_BUCKETS.len());
        self.counts[i].fetch_add(1, Ordering::Relaxed);
        self.sum_ns
            .fetch_add(lag.as_nanos() as u64, Ordering::Relaxed);
    }

    pub fn snapshot(&self) -> LagSnapshot {
        let mut total = 0;
        let cumulative = self
            .counts
            .iter()
            .map(|c| {
                total += c.load(Ordering::Relaxed);
                total
            })
            .collect();
        LagSnapshot {
            cumulative,
            sum_seconds: self.sum_ns.load(Ordering::Relaxed) as f64 / 1e9,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_cumulative_and_inclusive() {
        let h = LagHistogram::default();
        h.record(Duration::from_micros(100)); // ≤ 0.0001
        h.record(Duration::from_micros(700)); // ≤ 0.001
        h.record(Duration::from_secs(9)); // +Inf
        let s = h.snapshot();
        assert_eq!(s.cumulative[0], 1);
        assert_eq!(s.cumulative[3], 2);
        assert_eq!(*s.cumulative.last().unwrap(), 3);
        assert!((s.sum_seconds - 9.0008).abs() < 1e-9);
    }
}
