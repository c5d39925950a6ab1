//! How often the public status page is rendered, and at what priority its work runs: the
//! page comes second to supervision.
//!
//! Why: bench/statuspage (session 9) saw a burst of ten flapping services cut the page's rate
//! to a sixth. Every state change re-rendered the whole page in both languages (every 100 ms
//! while the burst went on), on the daemon's blocking pool, at the priority of supervision;
//! and the public listener's threads took the cores from the daemon's one thread while wrk
//! ran (respawn p99 went from 8.5 to 100 ms). So:
//! - [`Pacer`] coalesces: a change is published [`SETTLE`] after it (a burst shows where it
//!   stands), but never sooner than [`GAP`] after the last publish. At most two renders a
//!   second whatever changes, and what is shown is never more than `GAP` plus one render old.
//!   Pure: the time is an argument (tests drive it).
//! - [`RenderLane`] renders on a thread of its own at nice [`NICE`], not on the blocking pool
//!   the daemon's other work shares; [`below_supervision`] is what the public listener's
//!   threads call when they start (`public.rs`). When the cores are short, the daemon's thread
//!   (reaping, respawning, probes) and the services go first; when they are not, the nice
//!   value costs nothing.
//!
//! Not here: what is rendered (`upkeep_web::Site`), what the model holds (`statuspage.rs`).

use std::time::Duration;

use tokio::sync::oneshot;
use tokio::time::Instant;
use upkeep_web::site::PageModel;

/// How long a burst of changes may go on before it is shown.
pub const SETTLE: Duration = Duration::from_millis(100);
/// The least time between two renders: at most 1 s / `GAP` renders a second.
pub const GAP: Duration = Duration::from_millis(500);
/// The nice value of the page's threads (the daemon's are at 0; 19 is the lowest priority).
pub const NICE: i32 = 10;

/// When the next publish is due, from the last publish and the first change not shown yet.
#[derive(Debug, Default)]
pub struct Pacer {
    last: Option<Instant>,
    pending: Option<Instant>,
}

impl Pacer {
    /// Something shown changed at `now`.
    pub fn changed(&mut self, now: Instant) {
        self.pending.get_or_insert(now);
    }

    /// A publish began at `now`: it shows everything that changed before it.
    pub fn published(&mut self, now: Instant) {
        self.last = Some(now);
        self.pending = None;
    }

    /// When to publish what changed (None: nothing waits): [`SETTLE`] after the first change
    /// not shown, and not before [`GAP`] after the last publish.
    pub fn due(&self) -> Option<Instant> {
        let first = self.pending?;
        let settled = first + SETTLE;
        Some(match self.last {
            Some(last) => settled.max(last + GAP),
            None => settled,
        })
    }
}

/// Lowers the calling thread's priority to nice [`NICE`] (on Linux, where a thread id names
/// one thread). Failing leaves it at the daemon's priority, which is only slower to yield.
pub fn below_supervision() {
    #[cfg(target_os = "linux")]
    // SAFETY: gettid and setpriority read and change only this thread's scheduling value.
    unsafe {
        let tid = libc::gettid();
        libc::setpriority(libc::PRIO_PROCESS, tid as libc::id_t, NICE);
    }
}

type Job = (PageModel, oneshot::Sender<anyhow::Result<()>>);

/// The page's rendering thread ("upkeep-render", at nice [`NICE`]).
pub struct RenderLane {
    tx: std::sync::mpsc::Sender<Job>,
}

impl RenderLane {
    pub fn start(site: upkeep_web::Site) -> std::io::Result<RenderLane> {
        let (tx, rx) = std::sync::mpsc::channel::<Job>();
        std::thread::Builder::new()
            .name("upkeep-render".into())
            .spawn(move || {
                below_supervision();
                while let Ok((model, done)) = rx.recv() {
                    let _ = done.send(site.publish(&model).map_err(anyhow::Error::from));
                }
            })?;
        Ok(RenderLane { tx })
    }

    /// Renders `model` and makes it what the site serves; waits for it to be done.
    pub async fn publish(&self, model: PageModel) -> anyhow::Result<()> {
        let (done, rx) = oneshot::channel();
        self.tx
            .send((model, done))
            .map_err(|_| anyhow::anyhow!("the rendering thread is gone"))?;
        rx.await
            .map_err(|_| anyhow::anyhow!("the rendering thread is gone"))??;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn a_change_after_a_quiet_while_shows_once_it_settles() {
        let t0 = Instant::now();
        let mut p = Pacer::default();
        assert_eq!(p.due(), None);
        p.published(t0);
        assert_eq!(p.due(), None, "nothing changed since");
        p.changed(t0 + ms(2000));
        assert_eq!(p.due(), Some(t0 + ms(2100)));
    }

    #[test]
    fn a_burst_is_shown_at_most_twice_a_second_and_never_more_than_a_second_late() {
        // A service changes state every 10 ms for 10 s (far more than a flapping burst): walk
        // the driven time in 1 ms steps, publish whenever due, as the page task does.
        let t0 = Instant::now();
        let mut p = Pacer::default();
        p.published(t0);
        let mut publishes = Vec::new();
        let mut oldest_unshown: Option<Instant> = None;
        let mut worst = Duration::ZERO;
        for step in 0..10_000u64 {
            let now = t0 + ms(step);
            if step % 10 == 0 {
                p.changed(now);
                oldest_unshown.get_or_insert(now);
            }
            if p.due().is_some_and(|d| d <= now) {
                p.published(now);
                publishes.push(now);
                if let Some(first) = oldest_unshown.take() {
                    worst = worst.max(now - first);
                }
            }
        }
        assert!(
            publishes.len() <= 20,
            "{} renders in 10 s of changes",
            publishes.len()
        );
        assert!(
            publishes.len() >= 19,
            "{} renders: changes left unshown",
            publishes.len()
        );
        assert!(worst <= GAP, "a change waited {worst:?} to be shown");
        for w in publishes.windows(2) {
            assert!(w[1] - w[0] >= GAP, "two renders {:?} apart", w[1] - w[0]);
        }
    }

    #[test]
    fn changes_during_a_publish_wait_for_the_next() {
        let t0 = Instant::now();
        let mut p = Pacer::default();
        p.changed(t0);
        assert_eq!(
            p.due(),
            Some(t0 + SETTLE),
            "the first change of all settles only"
        );
        p.published(t0 + SETTLE);
        p.changed(t0 + SETTLE + ms(5));
        assert_eq!(p.due(), Some(t0 + SETTLE + GAP));
    }
}
