//! When to try a notice again: exponential backoff with jitter, the receiver's own delay
//! when it gave one, and when to give up.
//!
//! Pure: time and randomness are arguments (the dispatcher passes its clock's now and a
//! random number), so the schedule is table-tested. The first retry comes after
//! [`FIRST`], each next one after twice as long, up to [`MAX`]: a receiver down for an hour
//! is tried about every ten minutes, and gets everything within ten minutes of its return
//! (sooner, when another notice reaches it first: the dispatcher then brings its channel's
//! retries forward). Jitter (±20 %) keeps many rows from retrying in one burst.

use std::time::Duration;

use jiff::{SignedDuration, Timestamp};

/// The first retry's delay.
pub const FIRST: Duration = Duration::from_secs(5);
/// The longest delay between two attempts.
pub const MAX: Duration = Duration::from_secs(600);
/// The longest a receiver's own `Retry-After` is followed.
const MAX_ASKED: Duration = Duration::from_secs(3600);

/// When to try again after `attempts` failed attempts (1 after the first), at `now`.
/// `asked`: the receiver's requested delay (honoured, within an hour). `jitter` in [0, 1).
pub fn next_attempt(
    attempts: u32,
    asked: Option<Duration>,
    now: Timestamp,
    jitter: f64,
) -> Timestamp {
    let doubling = 2u32.saturating_pow(attempts.saturating_sub(1).min(20));
    let backoff = FIRST.saturating_mul(doubling).min(MAX);
    let spread = backoff.mul_f64(0.8 + 0.4 * jitter.clamp(0.0, 1.0));
    let delay = match asked {
        Some(a) => a.min(MAX_ASKED),
        None => spread,
    };
    now.checked_add(SignedDuration::try_from(delay).unwrap_or(SignedDuration::MAX))
        .unwrap_or(now)
}

/// True when a notice due at `due` has waited past `give_up_after` at `now`.
pub fn gives_up(due: Timestamp, now: Timestamp, give_up_after: Duration) -> bool {
    now.duration_since(due)
        >= SignedDuration::try_from(give_up_after).unwrap_or(SignedDuration::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn after(attempts: u32, asked: Option<u64>, jitter: f64) -> u64 {
        let now = Timestamp::from_second(1_000_000).unwrap();
        let at = next_attempt(attempts, asked.map(Duration::from_secs), now, jitter);
        (at - now).get_seconds() as u64
    }

    #[test]
    fn backoff_doubles_to_ten_minutes_with_jitter() {
        // (attempts, receiver's delay, jitter) -> seconds
        assert_eq!(after(1, None, 0.5), 5);
        assert_eq!(after(2, None, 0.5), 10);
        assert_eq!(after(3, None, 0.5), 20);
        assert_eq!(after(8, None, 0.5), 600);
        assert_eq!(after(50, None, 0.5), 600);
        assert_eq!(after(8, None, 0.0), 480);
        assert_eq!(after(8, None, 0.999), 719);
    }

    #[test]
    fn a_receivers_delay_is_followed_within_an_hour() {
        assert_eq!(after(1, Some(30), 0.5), 30);
        assert_eq!(
            after(1, Some(1), 0.5),
            1,
            "sooner than the backoff, when asked"
        );
        assert_eq!(after(1, Some(86_400), 0.5), 3600);
    }

    #[test]
    fn a_notice_is_given_up_after_its_time() {
        let due = Timestamp::from_second(0).unwrap();
        let day = Duration::from_secs(86_400);
        assert!(!gives_up(due, Timestamp::from_second(86_399).unwrap(), day));
        assert!(gives_up(due, Timestamp::from_second(86_400).unwrap(), day));
    }
}
