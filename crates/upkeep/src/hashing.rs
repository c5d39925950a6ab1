//! The one lane where admin passwords are hashed and checked (issue 18): a flood of sign-ins
//! costs one core and one argon2 buffer at most, never the daemon's memory or its restarts.
//!
//! argon2id with its default parameters (19 MiB, 2 passes: OWASP's minimum for a login) takes
//! tens of milliseconds of a core and 19 MiB per hash on purpose. Run on the blocking pool
//! unbounded, 100 addresses guessing at once put up to eight hashes side by side: on two cores
//! the runtime thread waited for a core (a flapping service's restart came 482 ms late instead
//! of 8 ms) and each thread's malloc arena kept its buffers (the daemon grew from 75 MB to
//! 831 MB). So: [`PERMITS`] hash at a time, on a thread of the lane's own at nice 10 (when a
//! core is short, supervision comes first), at most [`QUEUE`] sign-ins wait for it, and one
//! more is answered 503 at once ([`HashPool::try_run`]), before any hashing; the throttles in
//! `upkeep_web::admin::login` already refuse a spent address or account before it gets here.
//! Operators' own changes (`upkeep user add|passwd`, over the socket) wait their turn
//! instead ([`HashPool::run`]). And big allocations are given back when freed
//! ([`release_big_allocations`]), so the buffer does not stay resident after a flood.
//!
//! Not here: what is hashed and stored (`accounts.rs`), the throttles (upkeep-web).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::sync::Semaphore;
use upkeep_web::ApiError;

/// Hashes at a time: one core of the two this daemon is sized for, leaving the other to
/// supervision.
pub const PERMITS: usize = 1;
/// Sign-ins that may wait for a permit; more are refused at once.
pub const QUEUE: usize = 8;

/// The bounded lane (cheap to clone: every clone shares it).
#[derive(Clone)]
pub struct HashPool {
    permits: Arc<Semaphore>,
    /// The lane's own thread ([`start_worker`]).
    worker: std::sync::mpsc::Sender<Job>,
    /// Sign-ins holding or waiting for a permit.
    inside: Arc<AtomicUsize>,
    limit: usize,
}

/// Leaves the lane when dropped (also when the request is dropped while it waits).
struct Inside(Arc<AtomicUsize>);

impl Drop for Inside {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

impl HashPool {
    /// `permits` hashes at a time (on one thread of the lane's own: more than one only
    /// queue there), `queue` sign-ins waiting.
    pub fn new(permits: usize, queue: usize) -> std::io::Result<HashPool> {
        Ok(HashPool {
            permits: Arc::new(Semaphore::new(permits)),
            worker: start_worker()?,
            inside: Arc::new(AtomicUsize::new(0)),
            limit: permits + queue,
        })
    }

    /// Runs `f` in the lane if there is room in it now; a 503 otherwise, at once.
    pub async fn try_run<T: Send + 'static>(
        &self,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, ApiError> {
        let inside = self.inside.fetch_add(1, Ordering::AcqRel);
        let guard = Inside(self.inside.clone());
        if inside >= self.limit {
            drop(guard);
            return Err(ApiError::Unavailable {
                message: "too many sign-ins are being checked at once".into(),
                hint: Some("try again in a few seconds".into()),
            });
        }
        let result = self.run(f).await;
        drop(guard);
        result
    }

    /// Runs `f` in the lane once a permit is free, however long that takes.
    pub async fn run<T: Send + 'static>(
        &self,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, ApiError> {
        let permit = self
            .permits
            .clone()
            .acquire_owned()
            .await
            .map_err(|e| ApiError::Internal(Box::new(e)))?;
        let (tx, rx) = tokio::sync::oneshot::channel();
        let job: Job = Box::new(move || {
            let _ = tx.send(f());
            drop(permit);
        });
        let gone = || ApiError::Internal("the password hashing thread is gone".into());
        self.worker.send(job).map_err(|_| gone())?;
        rx.await.map_err(|_| gone())
    }
}

type Job = Box<dyn FnOnce() + Send>;

/// The lane's thread, at a lower priority (nice 10) than the daemon's other threads: when a
/// core is short, supervision and the services come first and hashing waits.
fn start_worker() -> std::io::Result<std::sync::mpsc::Sender<Job>> {
    let (tx, rx) = std::sync::mpsc::channel::<Job>();
    std::thread::Builder::new()
        .name("upkeep-hash".into())
        .spawn(move || {
            // SAFETY: setpriority only changes this thread's nice value (on Linux a thread id
            // names one thread); failing leaves it at the daemon's.
            #[cfg(target_os = "linux")]
            unsafe {
                let tid = libc::gettid();
                libc::setpriority(libc::PRIO_PROCESS, tid as libc::id_t, 10);
            }
            while let Ok(job) = rx.recv() {
                job();
            }
        })?;
    Ok(tx)
}

/// Makes glibc return allocations of 4 MiB and more to the system when they are freed.
/// By default it raises that threshold to the size of each big block freed, so from the
/// second hash on each thread's arena keeps an argon2 buffer (19 MiB) for good.
pub fn release_big_allocations() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets an allocator parameter; a fixed threshold also turns off
    // the dynamic one.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 4 << 20);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn past_the_queue_a_sign_in_is_refused_at_once_and_the_lane_frees_again() {
        let pool = HashPool::new(1, 1).unwrap();
        let (hold_tx, hold_rx) = std::sync::mpsc::channel::<()>();
        let (running_tx, running_rx) = tokio::sync::oneshot::channel();
        // One in the lane (held until the test lets go), one waiting for it.
        let first = tokio::spawn({
            let pool = pool.clone();
            async move {
                pool.try_run(move || {
                    let _ = running_tx.send(());
                    hold_rx.recv().ok();
                    1
                })
                .await
            }
        });
        running_rx.await.unwrap();
        let second = tokio::spawn({
            let pool = pool.clone();
            async move { pool.try_run(|| 2).await }
        });
        // The waiting one is inside once the lane counts two.
        while pool.inside.load(Ordering::Acquire) < 2 {
            tokio::task::yield_now().await;
        }
        let third = pool.try_run(|| 3).await;
        assert!(
            matches!(&third, Err(ApiError::Unavailable { message, .. }) if message.contains("too many")),
            "{third:?}"
        );
        // An operator's change waits rather than being refused.
        let operator = tokio::spawn({
            let pool = pool.clone();
            async move { pool.run(|| 4).await }
        });
        hold_tx.send(()).unwrap();
        assert_eq!(first.await.unwrap().unwrap(), 1);
        assert_eq!(second.await.unwrap().unwrap(), 2);
        assert_eq!(operator.await.unwrap().unwrap(), 4);
        assert_eq!(pool.inside.load(Ordering::Acquire), 0);
        assert_eq!(pool.try_run(|| 5).await.unwrap(), 5);
    }
}
