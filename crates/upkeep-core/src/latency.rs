//! Probe latency, kept so that its percentiles can be read over any period: a histogram of
//! fixed buckets, which adds across hours and services (percentiles do not). Probes record
//! each answered check into a [`LatencyBook`] (per service and hour, in memory); the store's
//! rollup task moves closed hours into the store, where reports, `/metrics` and the status
//! page's sparklines read them.
//!
//! Buckets grow by 2^(1/4) (about 19 %) from 0.1 ms to about 100 s, so a percentile is known
//! within 19 %: plenty for "p99 went from 4 ms to 40 ms", and 81 counts per service and hour.

use std::collections::BTreeMap;
use std::sync::Mutex;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use crate::ServiceName;

const SMALLEST_MS: f64 = 0.1;
const PER_DOUBLING: f64 = 4.0;
/// Buckets: 0.1 ms × 2^(i/4) for i in 0..80, and one for anything slower.
const BUCKETS: usize = 81;

/// Counts of checks per latency bucket.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Latency {
    counts: Vec<u64>,
}

fn upper_ms(i: usize) -> f64 {
    SMALLEST_MS * 2f64.powf(i as f64 / PER_DOUBLING)
}

impl Latency {
    pub fn record(&mut self, ms: f64) {
        let i = if ms.is_nan() || ms <= SMALLEST_MS {
            0
        } else {
            ((ms / SMALLEST_MS).log2() * PER_DOUBLING).ceil() as usize
        }
        .min(BUCKETS - 1);
        if self.counts.len() <= i {
            self.counts.resize(i + 1, 0);
        }
        self.counts[i] += 1;
    }

    pub fn add(&mut self, other: &Latency) {
        if self.counts.len() < other.counts.len() {
            self.counts.resize(other.counts.len(), 0);
        }
        for (a, b) in self.counts.iter_mut().zip(&other.counts) {
            *a += b;
        }
    }

    pub fn count(&self) -> u64 {
        self.counts.iter().sum()
    }

    /// The latency below which a share `q` (0..=1) of the checks answered: the upper bound of
    /// the bucket that holds it, in milliseconds. None with no checks.
    pub fn quantile(&self, q: f64) -> Option<f64> {
        let total = self.count();
        if total == 0 {
            return None;
        }
        let rank = ((q.clamp(0.0, 1.0) * total as f64).ceil() as u64).max(1);
        let mut seen = 0;
        for (i, c) in self.counts.iter().enumerate() {
            seen += c;
            if seen >= rank {
                return Some(upper_ms(i));
            }
        }
        Some(upper_ms(self.counts.len() - 1))
    }

    pub fn percentiles(&self) -> Option<Percentiles> {
        Some(Percentiles {
            checks: self.count(),
            p50_ms: self.quantile(0.5)?,
            p95_ms: self.quantile(0.95)?,
            p99_ms: self.quantile(0.99)?,
        })
    }

    /// As stored: the counts, comma-separated, trailing empty buckets left out.
    pub fn encode(&self) -> String {
        let end = self
            .counts
            .iter()
            .rposition(|c| *c > 0)
            .map_or(0, |i| i + 1);
        let parts: Vec<String> = self.counts[..end].iter().map(u64::to_string).collect();
        parts.join(",")
    }

    /// The stored form back; None if it is not one (a bad row is skipped, never a panic).
    pub fn decode(text: &str) -> Option<Latency> {
        if text.is_empty() {
            return Some(Latency::default());
        }
        let counts: Vec<u64> = text
            .split(',')
            .map(|c| c.parse().ok())
            .collect::<Option<_>>()?;
        (counts.len() <= BUCKETS).then_some(Latency { counts })
    }
}

/// Latency percentiles over a period, in milliseconds (each within 19 %).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Percentiles {
    pub checks: u64,
    pub p50_ms: f64,
    pub p95_ms: f64,
    pub p99_ms: f64,
}

/// Latency recorded by probes and not stored yet, per service and hour. Shared by every
/// probe task (one short lock per check) and the rollup task (which takes closed hours).
#[derive(Debug, Default)]
pub struct LatencyBook {
    hours: Mutex<BTreeMap<(i64, ServiceName), Latency>>,
}

/// A service's latency over the hour starting at `hour`.
pub type HourLatency = (Timestamp, ServiceName, Latency);

const HOUR_MS: i64 = 3_600_000;

impl LatencyBook {
    pub fn record(&self, service: &ServiceName, at: Timestamp, ms: f64) {
        let hour = at.as_millisecond().div_euclid(HOUR_MS) * HOUR_MS;
        let mut hours = self.hours.lock().expect("latency book poisoned");
        match hours.get_mut(&(hour, service.clone())) {
            Some(l) => l.record(ms),
            None => {
                let mut l = Latency::default();
                l.record(ms);
                hours.insert((hour, service.clone()), l);
            }
        }
    }

    /// Takes every hour that starts before `before` (all with None): what is stored next.
    pub fn take(&self, before: Option<Timestamp>) -> Vec<HourLatency> {
        let mut hours = self.hours.lock().expect("latency book poisoned");
        let kept = match before {
            Some(t) => hours.split_off(&(t.as_millisecond(), ServiceName::min())),
            None => BTreeMap::new(),
        };
        let taken = std::mem::replace(&mut *hours, kept);
        taken
            .into_iter()
            .filter_map(|((hour, name), l)| {
                Some((Timestamp::from_millisecond(hour).ok()?, name, l))
            })
            .collect()
    }

    /// A copy of the hours not stored yet that overlap `[from, to)`.
    pub fn peek(&self, from: Timestamp, to: Timestamp) -> Vec<HourLatency> {
        let first = from.as_millisecond().div_euclid(HOUR_MS) * HOUR_MS;
        let hours = self.hours.lock().expect("latency book poisoned");
        hours
            .range((first, ServiceName::min())..(to.as_millisecond(), ServiceName::min()))
            .filter_map(|((hour, name), l)| {
                Some((
                    Timestamp::from_millisecond(*hour).ok()?,
                    name.clone(),
                    l.clone(),
                ))
            })
            .collect()
    }

    /// Puts back what could not be stored (the store was away), to be tried with the next.
    pub fn put_back(&self, taken: Vec<HourLatency>) {
        let mut hours = self.hours.lock().expect("latency book poisoned");
        for (hour, name, l) in taken {
            hours
                .entry((hour.as_millisecond(), name))
                .or_default()
                .add(&l);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_are_within_a_bucket_of_the_truth() {
        let mut l = Latency::default();
        for i in 1..=1000 {
            l.record(i as f64 / 10.0); // 0.1 ms .. 100 ms, evenly
        }
        let p = l.percentiles().unwrap();
        assert_eq!(p.checks, 1000);
        for (got, want) in [(p.p50_ms, 50.0), (p.p95_ms, 95.0), (p.p99_ms, 99.0)] {
            assert!(got >= want && got <= want * 1.19, "{got} vs {want}");
        }
        assert_eq!(Latency::default().percentiles(), None);
    }

    #[test]
    fn histograms_add_and_survive_storage() {
        let (mut a, mut b) = (Latency::default(), Latency::default());
        a.record(1.0);
        b.record(500.0);
        b.record(f64::NAN);
        b.record(1e12);
        a.add(&b);
        assert_eq!(a.count(), 4);
        assert_eq!(Latency::decode(&a.encode()), Some(a.clone()));
        assert_eq!(Latency::decode(""), Some(Latency::default()));
        for bad in ["x", "1,,2", "-1", &vec!["1"; 200].join(",")] {
            assert_eq!(Latency::decode(bad), None, "{bad}");
        }
    }

    #[test]
    fn the_book_hands_over_closed_hours_and_keeps_the_open_one() {
        let book = LatencyBook::default();
        let web = ServiceName::new("web").unwrap();
        let t = |s: &str| s.parse::<Timestamp>().unwrap();
        book.record(&web, t("2026-11-26T09:59:00Z"), 3.0);
        book.record(&web, t("2026-11-26T10:01:00Z"), 4.0);
        let closed = book.take(Some(t("2026-11-26T10:00:00Z")));
        assert_eq!(closed.len(), 1);
        assert_eq!(closed[0].0, t("2026-11-26T09:00:00Z"));
        book.put_back(closed);
        assert_eq!(book.take(None).len(), 2);
        assert!(book.take(None).is_empty());
    }
}
