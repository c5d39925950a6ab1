//! `cpu`: CPU use of the whole process group, between two checks, at most `max_percent` of one
//! core. The first check after a (re)start only takes a sample.

use std::sync::Mutex;
use std::time::Instant;

use upkeep_config::CpuProbeConfig;

use crate::probe::{ProbeOutcome, Target};

pub(crate) struct CpuProbe {
    max_percent: f64,
    /// (pgid, ticks, when) of the last sample. A std Mutex: held for a copy, never across await.
    last: Mutex<Option<(u32, u64, Instant)>>,
}

impl CpuProbe {
    pub fn new(cfg: &CpuProbeConfig) -> Self {
        Self {
            max_percent: cfg.max_percent,
            last: Mutex::new(None),
        }
    }

    pub fn check(&self, target: &Target) -> Option<ProbeOutcome> {
        let pgid = target.pgid?;
        let now = Instant::now();
        let ticks = upkeep_sys::procfs::group_usage(&[pgid])
            .remove(&pgid)?
            .ticks;
        let prev = self
            .last
            .lock()
            .expect("cpu sample poisoned")
            .replace((pgid, ticks, now));
        let (_, pticks, pwhen) = prev.filter(|p| p.0 == pgid)?;
        let secs = now.duration_since(pwhen).as_secs_f64();
        if secs <= 0.0 {
            return None;
        }
        let pct = ticks.saturating_sub(pticks) as f64
            / upkeep_sys::procfs::ticks_per_second() as f64
            / secs
            * 100.0;
        let latency = now.elapsed();
        Some(if pct > self.max_percent {
            ProbeOutcome::down(format!("cpu {pct:.0}% > {:.0}%", self.max_percent), latency)
        } else {
            ProbeOutcome::up(format!("cpu {pct:.0}%"), latency)
        })
    }
}
