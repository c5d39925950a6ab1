//! `memory`: resident memory of the whole process group at most `max` (like PM2's
//! max_memory_restart, but counting children too: a leak in a worker counts).

use std::time::Instant;

use upkeep_config::MemoryProbeConfig;

use crate::probe::{ProbeOutcome, Target};

pub(crate) struct MemoryProbe {
    max_bytes: u64,
}

pub(crate) fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / 1048576.0)
}

impl MemoryProbe {
    pub fn new(cfg: &MemoryProbeConfig) -> Self {
        Self {
            max_bytes: cfg.max_bytes,
        }
    }

    pub fn check(&self, target: &Target) -> Option<ProbeOutcome> {
        let pgid = target.pgid?;
        let start = Instant::now();
        let usage = upkeep_sys::procfs::group_usage(&[pgid]).remove(&pgid)?;
        let (rss, max) = (usage.rss_bytes, self.max_bytes);
        Some(if rss > max {
            ProbeOutcome::down(
                format!("memory {} > {}", mib(rss), mib(max)),
                start.elapsed(),
            )
        } else {
            ProbeOutcome::up(format!("memory {}", mib(rss)), start.elapsed())
        })
    }
}
