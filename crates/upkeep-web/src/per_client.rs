//! A request rate limit per client address, as a route layer: a TCP client past its quota is
//! refused before the handler runs; the control socket's operators are never limited (their
//! peer has no address, only a uid).
//!
//! Not here: how a refusal reads. Each route says that with its [`Refusal`] (the JSON API's
//! error object, a form's page in the reader's language), so two routes can share one
//! [`Limiter`] (both ways to subscribe mail whoever they name) and still answer in their own
//! way. The admin login's throttle (`admin/login.rs`) keys by account as well and is its own.
//!
//! Used by `subscribers.rs` and `forms.rs`; start at [`limit`].

use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::HeaderMap;
use axum::middleware::Next;
use axum::response::Response;
use governor::{DefaultKeyedRateLimiter, Quota};

use crate::Peer;

/// Keys kept before quiet ones are dropped: a scan from many addresses costs memory only
/// while it lasts.
const MAX_KEYS: usize = 10_000;

/// Requests per client address: a burst, then one per period. Clones share their counts.
#[derive(Clone)]
pub(crate) struct Limiter(Arc<DefaultKeyedRateLimiter<IpAddr>>);

impl Limiter {
    /// `burst` requests at once, then one every `refill`.
    pub(crate) fn new(burst: u32, refill: Duration) -> Limiter {
        let quota = Quota::with_period(refill)
            .expect("a non-zero period")
            .allow_burst(NonZeroU32::new(burst).expect("a non-zero burst"));
        Limiter(Arc::new(governor::RateLimiter::keyed(quota)))
    }

    /// Takes one request from `addr`; the whole seconds to wait (at least 1) when its quota is
    /// spent.
    fn take(&self, addr: IpAddr) -> Result<(), u64> {
        if self.0.len() > MAX_KEYS {
            self.0.retain_recent();
        }
        self.0.check_key(&addr).map_err(|not_until| {
            let now = governor::clock::Clock::now(&governor::clock::DefaultClock::default());
            not_until.wait_time_from(now).as_secs().max(1)
        })
    }
}

/// The answer to a client past its quota, from the request's headers (its language) and the
/// seconds it should wait: a 429 with `Retry-After`.
pub(crate) type Refusal = fn(&HeaderMap, u64) -> Response;

/// The route layer: `axum::middleware::from_fn_with_state((limiter, refusal), limit)`.
pub(crate) async fn limit(
    State((limiter, refusal)): State<(Limiter, Refusal)>,
    req: Request,
    next: Next,
) -> Response {
    if let Some(Peer::Remote(addr)) = req.extensions().get::<Peer>()
        && let Err(secs) = limiter.take(addr.ip())
    {
        return refusal(req.headers(), secs);
    }
    next.run(req).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_address_has_its_own_burst_and_a_spent_one_says_how_long_to_wait() {
        let l = Limiter::new(2, Duration::from_secs(30));
        let (a, b): (IpAddr, IpAddr) = ("192.0.2.1".parse().unwrap(), "192.0.2.2".parse().unwrap());
        assert_eq!(l.take(a), Ok(()));
        assert_eq!(l.take(a), Ok(()));
        let wait = l.take(a).unwrap_err();
        assert!((1..=30).contains(&wait), "{wait}");
        assert_eq!(l.take(b), Ok(()), "another address is not held back");
        assert!(l.clone().take(a).is_err(), "a clone shares the counts");
    }
}
