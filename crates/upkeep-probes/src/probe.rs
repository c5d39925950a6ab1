//! What a check returns, what it checks, and how outcomes become verdicts.

use std::time::Duration;

use upkeep_config::ProbeConfig;
use upkeep_core::Health;

/// One check's result. `reason` is what incident timelines and notices show.
#[derive(Debug, Clone, PartialEq)]
pub struct ProbeOutcome {
    pub healthy: bool,
    /// Healthy but slow (an HTTP answer slower than `degraded_after`).
    pub degraded: bool,
    pub reason: String,
    pub latency: Duration,
}

impl ProbeOutcome {
    pub fn up(reason: impl Into<String>, latency: Duration) -> Self {
        Self {
            healthy: true,
            degraded: false,
            reason: reason.into(),
            latency,
        }
    }
    pub fn down(reason: impl Into<String>, latency: Duration) -> Self {
        Self {
            healthy: false,
            degraded: false,
            reason: reason.into(),
            latency,
        }
    }
}

/// What a probe looks at besides its own config: the managed process group, if any, and
/// when it started (for `grace`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Target {
    pub pgid: Option<u32>,
    pub since: Option<jiff::Timestamp>,
}

/// Consecutive-result counting for one probe: turns outcomes into verdict changes.
#[derive(Debug)]
pub(crate) struct Verdict {
    pub health: Health,
    fails: u32,
    oks: u32,
}

impl Default for Verdict {
    fn default() -> Self {
        Self {
            health: Health::Unknown,
            fails: 0,
            oks: 0,
        }
    }
}

impl Verdict {
    /// Counts one outcome; returns the new health when it changes.
    pub fn observe(
        &mut self,
        o: &ProbeOutcome,
        in_grace: bool,
        cfg: &ProbeConfig,
    ) -> Option<Health> {
        let next = if o.healthy {
            self.fails = 0;
            self.oks += 1;
            if self.health == Health::Down && self.oks < cfg.successes {
                return None;
            }
            if o.degraded {
                Health::Degraded
            } else {
                Health::Up
            }
        } else {
            if in_grace {
                return None;
            }
            self.oks = 0;
            self.fails += 1;
            if self.fails < cfg.failures {
                return None;
            }
            Health::Down
        };
        (next != self.health).then(|| {
            self.health = next;
            next
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(failures: u32, successes: u32) -> ProbeConfig {
        ProbeConfig {
            name: "t".into(),
            kind: upkeep_config::ProbeKind::Process(upkeep_config::ProcessProbeConfig),
            every: Duration::from_secs(1),
            timeout: Duration::from_secs(1),
            failures,
            successes,
            grace: Duration::ZERO,
        }
    }

    #[test]
    fn counts_failures_and_successes_in_a_row() {
        let c = cfg(3, 2);
        let mut v = Verdict::default();
        let up = ProbeOutcome::up("ok", Duration::ZERO);
        let down = ProbeOutcome::down("refused", Duration::ZERO);
        let slow = ProbeOutcome {
            degraded: true,
            ..up.clone()
        };
        let seq = [
            &up, &down, &down, &up, &down, &down, &down, &down, &up, &up, &slow, &up,
        ];
        let got: Vec<Option<Health>> = seq.iter().map(|o| v.observe(o, false, &c)).collect();
        use Health::*;
        assert_eq!(
            got,
            [
                Some(Up),
                None,
                None,
                None,
                None,
                None,
                Some(Down),
                None,
                None,
                Some(Up),
                Some(Degraded),
                Some(Up)
            ]
        );
    }

    #[test]
    fn failures_in_grace_do_not_count() {
        let c = cfg(1, 1);
        let mut v = Verdict::default();
        assert_eq!(
            v.observe(&ProbeOutcome::down("x", Duration::ZERO), true, &c),
            None
        );
        assert_eq!(
            v.observe(&ProbeOutcome::down("x", Duration::ZERO), false, &c),
            Some(Health::Down)
        );
    }
}
