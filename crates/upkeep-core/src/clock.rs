//! [`Clock`]: the one place every time-driven decision reads the time and waits for it.
//!
//! The state task (incident deadlines, the end of a timed maintenance), the supervisor (restart
//! backoff, crash-loop windows, uptimes), probe verdicts' grace, operations (maintenance,
//! drills) and the stamp on every event take a `Clock` instead of calling `Timestamp::now()` or
//! tokio's timers, so that tests move time instead of sleeping. It does not schedule anything
//! itself, and it does not stamp log lines (those say when bytes were read, not a decision).
//!
//! Two kinds, behind one cheap-to-clone value:
//! - [`Clock::system`] (the default): `jiff::Timestamp::now()` for wall time, tokio's
//!   `Instant` and timers for waits. No lock, no channel: the respawn path pays one branch.
//! - a [`TestClock`]: wall time and instants that move only as the test says. `frozen` stands
//!   still until [`TestClock::advance`] (unit tests); `running` follows tokio's clock (real time
//!   in the daemon, paused time under `#[tokio::test(start_paused = true)]`) plus every advance,
//!   which is what the daemon uses when built with debug assertions and `daemon.test_clock` is
//!   set (end-to-end tests: a week passes in one request).
//!
//! A sleeper on a test clock watches the clock's position and re-checks its deadline whenever
//! it moves. Sleepers register while they wait, so [`TestClock::advance`] returns only after
//! every sleeper it made due has woken: the code after the wait has begun, and what it does is
//! ordered before whatever the test asks next. Start at [`Clock`], then [`TestClock::advance`].

use std::collections::BTreeMap;
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use jiff::Timestamp;
use tokio::sync::{Notify, watch};
use tokio::time::Instant;

use crate::{Event, EventKind, ServiceName};

/// Where time comes from. Cloning is cheap (a pointer at most); `Default` is the system clock.
#[derive(Clone, Default)]
pub struct Clock(Option<Arc<Movable>>);

impl fmt::Debug for Clock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            None => f.write_str("Clock::system"),
            Some(m) => write!(f, "Clock::test(frozen: {}, now: {})", m.frozen, m.now()),
        }
    }
}

impl Clock {
    /// The real clock: wall time from the system, waits on tokio's timers.
    pub fn system() -> Clock {
        Clock(None)
    }

    /// Whether this is a test clock (an end-to-end daemon shows it in its log).
    pub fn is_test(&self) -> bool {
        self.0.is_some()
    }

    /// Wall time: what events are stamped with and wall deadlines (maintenance `until`,
    /// incident deadlines) are compared with.
    pub fn now(&self) -> Timestamp {
        match &self.0 {
            None => Timestamp::now(),
            Some(m) => m.now(),
        }
    }

    /// Monotonic time: for intervals (backoff, crash-loop windows, uptimes), which must not
    /// jump when the system's wall clock is set.
    pub fn instant(&self) -> Instant {
        match &self.0 {
            None => Instant::now(),
            Some(m) => m.instant(),
        }
    }

    /// Waits until [`Clock::instant`] reaches `at`.
    pub async fn sleep_until(&self, at: Instant) {
        match &self.0 {
            None => tokio::time::sleep_until(at).await,
            Some(m) => m.sleep_until(at).await,
        }
    }

    /// Waits `d` of this clock's time.
    pub async fn sleep(&self, d: Duration) {
        match &self.0 {
            None => tokio::time::sleep(d).await,
            Some(m) => m.sleep_until(m.instant() + d).await,
        }
    }

    /// Waits until [`Clock::now`] reaches the wall time `at` (at once if it has passed).
    pub async fn sleep_until_time(&self, at: Timestamp) {
        match &self.0 {
            None => {
                let wait = at.duration_since(Timestamp::now());
                tokio::time::sleep(Duration::try_from(wait).unwrap_or_default()).await
            }
            // On a test clock wall time and instants move together: convert exactly.
            Some(m) => {
                let ahead = Duration::try_from(at.duration_since(m.start)).unwrap_or_default();
                m.sleep_until(m.origin + ahead).await
            }
        }
    }

    /// An event of `service`, stamped now.
    pub fn event(&self, service: &ServiceName, kind: EventKind) -> Event {
        Event {
            at: self.now(),
            service: Some(service.clone()),
            kind,
        }
    }

    /// A daemon-wide event, stamped now.
    pub fn daemon_event(&self, kind: EventKind) -> Event {
        Event {
            at: self.now(),
            service: None,
            kind,
        }
    }
}

/// The test side of a test clock: make one, hand out [`TestClock::clock`], move it.
#[derive(Clone, Debug)]
pub struct TestClock(Arc<Movable>);

impl TestClock {
    /// A clock standing still at `start` until advanced.
    pub fn frozen(start: Timestamp) -> TestClock {
        TestClock(Arc::new(Movable::new(true, start)))
    }

    /// A clock that starts at the system's time, then follows tokio's clock and every advance.
    pub fn running() -> TestClock {
        Self::running_from(Timestamp::now())
    }

    /// A running clock that starts at `start` (a test daemon started again resumes the time
    /// its tests had moved on to).
    pub fn running_from(start: Timestamp) -> TestClock {
        TestClock(Arc::new(Movable::new(false, start)))
    }

    /// The clock to hand to the code under test.
    pub fn clock(&self) -> Clock {
        Clock(Some(self.0.clone()))
    }

    pub fn now(&self) -> Timestamp {
        self.0.now()
    }

    /// Moves the clock `by` forward and returns once every sleeper that is now due has woken,
    /// or after `settle` of tokio's time if one has not (then `false`: a sleeper is stuck
    /// behind other work; what the test asks next may overtake it).
    pub async fn advance(&self, by: Duration, settle: Duration) -> bool {
        self.0.moved.send_modify(|m| *m = m.saturating_add(by));
        let now = self.0.instant();
        let woke = async {
            loop {
                let notified = self.0.woke.notified();
                tokio::pin!(notified);
                notified.as_mut().enable();
                if self.pending().iter().all(|at| *at > now) {
                    return;
                }
                notified.await;
            }
        };
        tokio::time::timeout(settle, woke).await.is_ok()
    }

    /// The instants that sleepers wait for, earliest first.
    pub fn pending(&self) -> Vec<Instant> {
        let mut due: Vec<Instant> = self.0.lock().due.values().copied().collect();
        due.sort();
        due
    }
}

struct Movable {
    /// Stands still between advances (else it follows tokio's clock).
    frozen: bool,
    /// tokio's instant and the wall time when the clock was made: the two move together.
    origin: Instant,
    start: Timestamp,
    /// How far the clock has been advanced; sleepers watch it.
    moved: watch::Sender<Duration>,
    /// Who waits for what, so that `advance` knows when the sleepers it made due have woken.
    sleepers: Mutex<Sleepers>,
    /// Signalled when a sleeper stops waiting.
    woke: Notify,
}

impl fmt::Debug for Movable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Movable")
            .field("frozen", &self.frozen)
            .field("now", &self.now())
            .finish()
    }
}

#[derive(Default)]
struct Sleepers {
    next: u64,
    due: BTreeMap<u64, Instant>,
}

impl Movable {
    fn new(frozen: bool, start: Timestamp) -> Movable {
        Movable {
            frozen,
            origin: Instant::now(),
            start,
            moved: watch::Sender::new(Duration::ZERO),
            sleepers: Mutex::default(),
            woke: Notify::new(),
        }
    }

    /// A std Mutex: held for a map operation, never across an await.
    fn lock(&self) -> std::sync::MutexGuard<'_, Sleepers> {
        self.sleepers.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// How far the clock is from its origin, given it was advanced `moved`.
    fn elapsed(&self, moved: Duration) -> Duration {
        if self.frozen {
            moved
        } else {
            self.origin.elapsed().saturating_add(moved)
        }
    }

    fn instant(&self) -> Instant {
        self.origin + self.elapsed(*self.moved.borrow())
    }

    fn now(&self) -> Timestamp {
        let elapsed = self.elapsed(*self.moved.borrow());
        self.start.checked_add(elapsed).unwrap_or(Timestamp::MAX)
    }

    async fn sleep_until(&self, at: Instant) {
        let _registered = self.register(at);
        let mut moved = self.moved.subscribe();
        loop {
            let by = *moved.borrow_and_update();
            let now = self.origin + self.elapsed(by);
            if now >= at {
                return;
            }
            if self.frozen {
                // The sender lives as long as `self`: `changed` fails only if it is gone.
                if moved.changed().await.is_err() {
                    return std::future::pending().await;
                }
            } else {
                // Running, `now` is tokio's instant plus `by`: tokio reaches `at - by` first.
                let real = at.checked_sub(by).unwrap_or(self.origin);
                tokio::select! {
                    _ = tokio::time::sleep_until(real) => {}
                    _ = moved.changed() => {}
                }
            }
        }
    }

    fn register(&self, at: Instant) -> Registered<'_> {
        let mut s = self.lock();
        let id = s.next;
        s.next += 1;
        s.due.insert(id, at);
        Registered { clock: self, id }
    }
}

/// A sleeper's place in [`Sleepers`], given up when it wakes or is dropped.
struct Registered<'a> {
    clock: &'a Movable,
    id: u64,
}

impl Drop for Registered<'_> {
    fn drop(&mut self) {
        self.clock.lock().due.remove(&self.id);
        self.clock.woke.notify_waiters();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicBool, Ordering};

    fn t0() -> Timestamp {
        "2030-01-01T00:00:00Z".parse().unwrap()
    }

    const SETTLE: Duration = Duration::from_secs(5);

    #[tokio::test]
    async fn a_frozen_clock_moves_only_when_advanced_and_wakes_who_is_due() {
        let tc = TestClock::frozen(t0());
        let clock = tc.clock();
        assert_eq!(clock.now(), t0());
        let woke = Arc::new(AtomicBool::new(false));
        let sleeper = tokio::spawn({
            let (clock, woke) = (clock.clone(), woke.clone());
            async move {
                clock.sleep(Duration::from_secs(3600)).await;
                woke.store(true, Ordering::SeqCst);
            }
        });
        // Registered once it runs.
        while tc.pending().is_empty() {
            tokio::task::yield_now().await;
        }
        assert!(tc.advance(Duration::from_secs(3599), SETTLE).await);
        assert!(!woke.load(Ordering::SeqCst));
        assert_eq!(tc.pending().len(), 1);
        assert_eq!(clock.now(), t0() + jiff::SignedDuration::from_secs(3599));
        assert!(tc.advance(Duration::from_secs(1), SETTLE).await);
        // `advance` returned after the sleeper woke.
        assert!(tc.pending().is_empty());
        sleeper.await.unwrap();
        assert!(woke.load(Ordering::SeqCst));
    }

    #[tokio::test]
    async fn wall_deadlines_and_instants_move_together() {
        let tc = TestClock::frozen(t0());
        let clock = tc.clock();
        let until = t0() + jiff::SignedDuration::from_hours(24 * 7);
        let sleeper = tokio::spawn({
            let clock = clock.clone();
            async move { clock.sleep_until_time(until).await }
        });
        while tc.pending().is_empty() {
            tokio::task::yield_now().await;
        }
        assert_eq!(
            tc.pending()[0],
            clock.instant() + Duration::from_secs(7 * 86400)
        );
        assert!(tc.advance(Duration::from_secs(7 * 86400), SETTLE).await);
        sleeper.await.unwrap();
        // A deadline in the past: at once, without registering.
        clock.sleep_until_time(t0()).await;
    }

    #[tokio::test(start_paused = true)]
    async fn a_running_clock_follows_tokio_time_plus_what_was_advanced() {
        let tc = TestClock::running();
        let clock = tc.clock();
        let (w0, i0) = (clock.now(), clock.instant());
        tokio::time::sleep(Duration::from_secs(10)).await;
        assert_eq!(clock.instant() - i0, Duration::from_secs(10));
        tc.advance(Duration::from_secs(50), SETTLE).await;
        assert_eq!(clock.instant() - i0, Duration::from_secs(60));
        assert_eq!(clock.now().duration_since(w0).as_secs(), 60);
        // A sleeper wakes by tokio's time passing, or by an advance, whichever comes first.
        let begin = Instant::now();
        clock.sleep(Duration::from_secs(30)).await;
        assert_eq!(Instant::now() - begin, Duration::from_secs(30));
        let sleeper = tokio::spawn({
            let clock = clock.clone();
            async move { clock.sleep(Duration::from_secs(3600)).await }
        });
        while tc.pending().is_empty() {
            tokio::task::yield_now().await;
        }
        let begin = Instant::now();
        assert!(tc.advance(Duration::from_secs(3600), SETTLE).await);
        sleeper.await.unwrap();
        assert_eq!(Instant::now(), begin);
    }

    #[tokio::test]
    async fn the_system_clock_is_the_systems() {
        let clock = Clock::system();
        assert!(!clock.is_test());
        let before = Timestamp::now();
        assert!(clock.now() >= before);
        clock.sleep(Duration::ZERO).await;
        clock.sleep_until_time(before).await;
    }
}
