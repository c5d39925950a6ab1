//! The restart policy: whether and when a service that exited runs again. Pure: time comes in as
//! arguments, so every rule is tested on made-up instants.
//!
//! - The first restart after a healthy run is immediate: a crash costs what a fork costs.
//! - Each further restart waits `backoff_min × 2^(n-2)`, capped at `backoff_max`, ±20% jitter
//!   (so services that crashed together do not restart in lockstep).
//! - A run of at least `min_uptime` resets the backoff.
//! - More than `max_restarts` restarts within `window` is a crash loop: the service is failed
//!   and nothing restarts it until an operator acts.
//! - An exit a drill caused on purpose restarts at once and counts towards neither the backoff
//!   nor the crash-loop limit: drills repeated back to back must not fail the service.
//! - A restart because a watched file changed is a restart like a crash's, in the same count
//!   and the same window (issue 18: `watch` kept a budget of its own, and `ls` did not count
//!   them), without backoff; past the limit it is refused, and the running service goes on
//!   (a change never fails a service). Planned restarts (`restart_at`) and an operator's
//!   are a fresh start instead (`reset`).

use std::collections::VecDeque;
use std::time::Duration;

use tokio::time::Instant;
use upkeep_config::{ManagedConfig, RestartPolicy};
use upkeep_core::ExitStatus;

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Decision {
    Restart {
        attempt: u32,
        delay: Duration,
    },
    Failed {
        restarts: u32,
    },
    /// The policy does not restart this exit.
    Exit,
}

#[derive(Debug, Default)]
pub(crate) struct RestartTracker {
    /// Restarts since the last healthy run (drives the backoff).
    attempt: u32,
    /// When recent restarts happened (drives the crash-loop limit).
    recent: VecDeque<Instant>,
    /// Restarts by policy since the operator last started the service (shown by `ls`).
    pub total: u32,
}

impl RestartTracker {
    /// `jitter` is a number in [0, 1) from the caller's random source.
    pub fn on_exit(
        &mut self,
        cfg: &ManagedConfig,
        status: ExitStatus,
        uptime: Duration,
        now: Instant,
        jitter: f64,
    ) -> Decision {
        if !restarts(cfg, status) {
            return Decision::Exit;
        }
        if uptime >= cfg.min_uptime {
            self.attempt = 0;
        }
        if self.spent(cfg, now) {
            return Decision::Failed {
                restarts: self.recent.len() as u32,
            };
        }
        self.recent.push_back(now);
        self.attempt += 1;
        self.total += 1;
        Decision::Restart {
            attempt: self.attempt,
            delay: backoff(cfg, self.attempt, jitter),
        }
    }

    /// Whether `max_restarts` restarts happened within `window` before `now` (older ones are
    /// forgotten).
    fn spent(&mut self, cfg: &ManagedConfig, now: Instant) -> bool {
        while self
            .recent
            .front()
            .is_some_and(|t| now.saturating_duration_since(*t) > cfg.window)
        {
            self.recent.pop_front();
        }
        self.recent.len() as u32 >= cfg.max_restarts
    }

    /// A watched file changed: a restart, counted as one and in the crash-loop window, unless
    /// the window is full: then `Err` with the restarts in it, and nothing is restarted.
    pub fn on_change(&mut self, cfg: &ManagedConfig, now: Instant) -> Result<(), u32> {
        if self.spent(cfg, now) {
            return Err(self.recent.len() as u32);
        }
        self.recent.push_back(now);
        self.total += 1;
        Ok(())
    }

    /// An exit a drill caused: restarted at once (if the policy restarts it at all), left out
    /// of the backoff and the crash-loop window.
    pub fn on_drill_exit(&mut self, cfg: &ManagedConfig, status: ExitStatus) -> Decision {
        if !restarts(cfg, status) {
            return Decision::Exit;
        }
        self.total += 1;
        Decision::Restart {
            attempt: 1,
            delay: Duration::ZERO,
        }
    }

    /// An operator started the service: a fresh start, with no memory of earlier crashes.
    pub fn reset(&mut self) {
        *self = Self::default();
    }

    /// What the next image of the daemon needs to go on counting (`upkeep upgrade`): the
    /// backoff's attempt, the total, and how long before `now` each recent restart was.
    pub fn carry(&self, now: Instant) -> (u32, Vec<Duration>, u32) {
        let ages = self
            .recent
            .iter()
            .map(|t| now.saturating_duration_since(*t))
            .collect();
        (self.attempt, ages, self.total)
    }

    /// Goes on from what [`carry`](Self::carry) said, `now` being the hand-over.
    pub fn carried(attempt: u32, ages: &[Duration], total: u32, now: Instant) -> Self {
        Self {
            attempt,
            recent: ages
                .iter()
                .map(|age| now.checked_sub(*age).unwrap_or(now))
                .collect(),
            total,
        }
    }
}

/// Whether the restart policy restarts after this exit at all.
fn restarts(cfg: &ManagedConfig, status: ExitStatus) -> bool {
    match cfg.restart {
        RestartPolicy::Never => false,
        RestartPolicy::OnFailure => !status.success(),
        RestartPolicy::Always => true,
    }
}

fn backoff(cfg: &ManagedConfig, attempt: u32, jitter: f64) -> Duration {
    if attempt <= 1 || cfg.backoff_min.is_zero() {
        return Duration::ZERO;
    }
    let exp = (attempt - 2).min(30);
    let base = cfg
        .backoff_min
        .saturating_mul(1 << exp)
        .min(cfg.backoff_max);
    base.mul_f64(0.8 + 0.4 * jitter).min(cfg.backoff_max)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(restart: RestartPolicy) -> ManagedConfig {
        let toml = format!(
            "[services.x]\ncommand = \"true\"\nrestart = \"{}\"\nbackoff_min = \"100ms\"\nbackoff_max = \"1s\"\nmax_restarts = 5\nwindow = \"60s\"\nmin_uptime = \"5s\"\n",
            restart.as_str()
        );
        let c = upkeep_config::parse(std::path::Path::new("/tmp/x.toml"), &toml).unwrap();
        c.services.into_values().next().unwrap().managed.unwrap()
    }

    const FAIL: ExitStatus = ExitStatus {
        code: Some(1),
        signal: None,
    };
    const OK: ExitStatus = ExitStatus {
        code: Some(0),
        signal: None,
    };
    const KILLED: ExitStatus = ExitStatus {
        code: None,
        signal: Some(9),
    };

    #[test]
    fn policies_decide_which_exits_restart() {
        let now = Instant::now();
        let short = Duration::from_millis(10);
        let mut t = RestartTracker::default();
        assert_eq!(
            t.on_exit(&cfg(RestartPolicy::Never), KILLED, short, now, 0.5),
            Decision::Exit
        );
        assert_eq!(
            t.on_exit(&cfg(RestartPolicy::OnFailure), OK, short, now, 0.5),
            Decision::Exit
        );
        assert!(matches!(
            t.on_exit(&cfg(RestartPolicy::OnFailure), FAIL, short, now, 0.5),
            Decision::Restart { .. }
        ));
        assert!(matches!(
            t.on_exit(&cfg(RestartPolicy::Always), OK, short, now, 0.5),
            Decision::Restart { .. }
        ));
    }

    #[test]
    fn first_restart_is_immediate_then_delays_double_to_the_cap_then_crash_loop() {
        let c = cfg(RestartPolicy::Always);
        let mut t = RestartTracker::default();
        let mut now = Instant::now();
        let mut delays = vec![];
        loop {
            match t.on_exit(&c, FAIL, Duration::from_millis(1), now, 0.5) {
                Decision::Restart { delay, .. } => delays.push(delay.as_millis()),
                Decision::Failed { restarts } => {
                    assert_eq!(restarts, 5);
                    break;
                }
                Decision::Exit => unreachable!(),
            }
            now += Duration::from_millis(10);
        }
        assert_eq!(delays, [0, 100, 200, 400, 800]);
    }

    /// Carried to the next image (`upkeep upgrade`), a tracker goes on where it was: the same
    /// next delay, and the crash-loop limit reached at the same restart.
    #[test]
    fn a_carried_tracker_goes_on_counting() {
        let c = cfg(RestartPolicy::Always);
        let mut t = RestartTracker::default();
        let now = Instant::now();
        for i in 0..3 {
            t.on_exit(
                &c,
                FAIL,
                Duration::from_millis(1),
                now + Duration::from_millis(i),
                0.5,
            );
        }
        let then = now + Duration::from_millis(10);
        let (attempt, ages, total) = t.carry(then);
        let later = then + Duration::from_secs(3);
        let mut next = RestartTracker::carried(attempt, &ages, total, later);
        assert_eq!(next.total, 3);
        assert_eq!(
            next.on_exit(&c, FAIL, Duration::from_millis(1), later, 0.5),
            Decision::Restart {
                attempt: 4,
                delay: Duration::from_millis(400)
            }
        );
        assert!(matches!(
            next.on_exit(&c, FAIL, Duration::from_millis(1), later, 0.5),
            Decision::Restart { attempt: 5, .. }
        ));
        assert_eq!(
            next.on_exit(&c, FAIL, Duration::from_millis(1), later, 0.5),
            Decision::Failed { restarts: 5 }
        );
    }

    #[test]
    fn drill_exits_restart_at_once_and_never_make_a_crash_loop() {
        let c = cfg(RestartPolicy::Always);
        let mut t = RestartTracker::default();
        let now = Instant::now();
        for _ in 0..20 {
            assert_eq!(
                t.on_drill_exit(&c, KILLED),
                Decision::Restart {
                    attempt: 1,
                    delay: Duration::ZERO
                }
            );
        }
        // Real crashes right after still start from an immediate restart.
        assert_eq!(
            t.on_exit(&c, FAIL, Duration::ZERO, now, 0.5),
            Decision::Restart {
                attempt: 1,
                delay: Duration::ZERO
            }
        );
        assert_eq!(t.total, 21);
        assert_eq!(
            t.on_drill_exit(&cfg(RestartPolicy::Never), KILLED),
            Decision::Exit
        );
    }

    #[test]
    fn jitter_stays_within_twenty_percent_and_the_cap() {
        let c = cfg(RestartPolicy::Always);
        assert_eq!(backoff(&c, 2, 0.0).as_millis(), 80);
        assert_eq!(backoff(&c, 2, 0.999).as_millis(), 119);
        assert_eq!(backoff(&c, 20, 0.999), Duration::from_secs(1));
    }

    #[test]
    fn a_healthy_run_resets_backoff_and_old_restarts_leave_the_window() {
        let c = cfg(RestartPolicy::Always);
        let mut t = RestartTracker::default();
        let start = Instant::now();
        for i in 0..4 {
            t.on_exit(
                &c,
                FAIL,
                Duration::ZERO,
                start + Duration::from_secs(i),
                0.5,
            );
        }
        // Ran 10 s (over min_uptime): backoff starts again from an immediate restart.
        assert_eq!(
            t.on_exit(
                &c,
                FAIL,
                Duration::from_secs(10),
                start + Duration::from_secs(14),
                0.5
            ),
            Decision::Restart {
                attempt: 1,
                delay: Duration::ZERO
            }
        );
        // 61 s later the earlier restarts are out of the window: no crash loop.
        let later = start + Duration::from_secs(80);
        assert!(matches!(
            t.on_exit(&c, FAIL, Duration::ZERO, later, 0.5),
            Decision::Restart { .. }
        ));
        assert_eq!(t.total, 6);
    }

    /// Issue 18: restarts for a changed file and crashes share one count and one window
    /// (max_restarts = 5 within 60 s): two changes and three crashes fill it, so the next
    /// crash fails the service and the next change is refused; once the oldest has left the
    /// window a change restarts again.
    #[test]
    fn changes_and_crashes_share_one_restart_budget() {
        let c = cfg(RestartPolicy::Always);
        let mut t = RestartTracker::default();
        let start = Instant::now();
        let at = |s| start + Duration::from_secs(s);
        assert_eq!(t.on_change(&c, at(0)), Ok(()));
        assert_eq!(t.on_change(&c, at(1)), Ok(()));
        for s in 2..5 {
            assert!(matches!(
                t.on_exit(&c, FAIL, Duration::ZERO, at(s), 0.5),
                Decision::Restart { .. }
            ));
        }
        assert_eq!(t.total, 5);
        assert_eq!(t.on_change(&c, at(5)), Err(5));
        assert_eq!(t.total, 5);
        assert_eq!(
            t.on_exit(&c, FAIL, Duration::ZERO, at(6), 0.5),
            Decision::Failed { restarts: 5 }
        );
        // The first change is out of the window 61 s after it.
        assert_eq!(t.on_change(&c, at(61)), Ok(()));
        assert_eq!(t.total, 6);
    }
}
