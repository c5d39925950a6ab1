//! The lead-time policy: how early a window must be announced. By default a window of 4 h or
//! less needs 24 h notice, a longer one 7 days, and an emergency may start at once. A window
//! that breaks it is refused with the earliest start it allows, unless the operator forces
//! it and says why (recorded with their name).

use std::time::Duration;

use jiff::{SignedDuration, Timestamp};
use upkeep_core::window::{WindowKind, WindowSpec};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LeadTime {
    /// Windows up to this long are short.
    pub short_max: Duration,
    /// Notice a short window needs.
    pub short_notice: Duration,
    /// Notice a longer window needs.
    pub long_notice: Duration,
}

impl Default for LeadTime {
    fn default() -> Self {
        LeadTime {
            short_max: Duration::from_secs(4 * 3600),
            short_notice: Duration::from_secs(24 * 3600),
            long_notice: Duration::from_secs(7 * 24 * 3600),
        }
    }
}

/// Why a window was refused, with the earliest start the policy allows.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a {length} window needs {notice} notice: it may start at {earliest} at the earliest")]
pub struct PolicyRefusal {
    pub earliest: Timestamp,
    pub notice: String,
    pub length: String,
}

fn show(d: Duration) -> String {
    let s = d.as_secs();
    if s.is_multiple_of(86_400) && s > 0 {
        format!("{} d", s / 86_400)
    } else if s.is_multiple_of(3600) {
        format!("{} h", s / 3600)
    } else {
        format!("{} min", s.div_ceil(60))
    }
}

impl LeadTime {
    /// The notice `spec` needs.
    pub fn notice(&self, spec: &WindowSpec) -> Duration {
        let length = spec.end.duration_since(spec.start).unsigned_abs();
        match spec.kind {
            WindowKind::Emergency => Duration::ZERO,
            _ if length <= self.short_max => self.short_notice,
            _ => self.long_notice,
        }
    }

    /// Whether `spec`, announced `now`, gives its notice.
    pub fn check(&self, spec: &WindowSpec, now: Timestamp) -> Result<(), PolicyRefusal> {
        let notice = self.notice(spec);
        if notice.is_zero() {
            // An emergency starts when it must, even a moment ago.
            return Ok(());
        }
        let earliest = SignedDuration::try_from(notice)
            .ok()
            .and_then(|n| now.checked_add(n).ok())
            .unwrap_or(Timestamp::MAX);
        if spec.start >= earliest {
            return Ok(());
        }
        Err(PolicyRefusal {
            // Whole minutes: what people type.
            earliest: Timestamp::from_second(earliest.as_second().div_euclid(60) * 60 + 60)
                .unwrap_or(earliest),
            notice: show(notice),
            length: show(spec.end.duration_since(spec.start).unsigned_abs()),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::recur::tests::spec;

    #[test]
    fn short_windows_need_a_day_long_ones_a_week_emergencies_nothing() {
        let now: Timestamp = "2026-12-01T00:00:00Z".parse().unwrap();
        let p = LeadTime::default();
        // 2 h, 25 h ahead: fine. 2 h, 23 h ahead: refused, earliest a day from now.
        assert!(
            p.check(
                &spec("2026-12-02T01:00:00Z", "2026-12-02T03:00:00Z", "UTC", None),
                now
            )
            .is_ok()
        );
        let e = p
            .check(
                &spec("2026-12-01T23:00:00Z", "2026-12-02T01:00:00Z", "UTC", None),
                now,
            )
            .unwrap_err();
        assert_eq!(e.earliest.to_string(), "2026-12-02T00:01:00Z");
        assert!(e.to_string().contains("2 h window needs 1 d notice"), "{e}");
        // 5 h, 3 days ahead: refused (a week).
        let e = p
            .check(
                &spec("2026-12-04T00:00:00Z", "2026-12-04T05:00:00Z", "UTC", None),
                now,
            )
            .unwrap_err();
        assert!(e.to_string().contains("7 d notice"), "{e}");
        // An emergency may start now.
        let mut now_now = spec("2026-12-01T00:00:00Z", "2026-12-01T10:00:00Z", "UTC", None);
        now_now.kind = WindowKind::Emergency;
        assert!(p.check(&now_now, now).is_ok());
    }
}
