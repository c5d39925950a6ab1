//! The heartbeat: with `[daemon] heartbeat_url`, a GET of that URL every minute of the
//! daemon's clock, so that an outside dead-man's switch (Healthchecks, Uptime Kuma's push
//! monitor, Cronitor) raises the alarm when upkeep, or its whole host, goes silent.
//!
//! A task of its own, never on the supervision path: a slow or failing endpoint costs a
//! logged warning (10 s timeout), never a restart's time, and never stops the daemon. The
//! first call is made at start; then one per minute, on the injected clock, so tests drive
//! it. GET because every such service takes it (Healthchecks also takes POST and HEAD, but
//! Uptime Kuma's push URL is a GET); the body is ignored, a 2xx is success.

use std::time::Duration;

use tokio_util::sync::CancellationToken;
use upkeep_core::Clock;

/// How often the URL is called.
pub const EVERY: Duration = Duration::from_secs(60);
/// How long one call may take.
const TIMEOUT: Duration = Duration::from_secs(10);

/// Starts the heartbeat task; it ends with `cancel`.
pub fn spawn(url: url::Url, clock: Clock, cancel: CancellationToken) {
    let client = match reqwest::Client::builder()
        .timeout(TIMEOUT)
        .user_agent(concat!("upkeep/", env!("CARGO_PKG_VERSION")))
        .build()
    {
        Ok(c) => c,
        Err(e) => {
            tracing::warn!("heartbeat off: cannot build its HTTP client: {e}");
            return;
        }
    };
    tokio::spawn(async move {
        let mut failing = false;
        loop {
            let beat = async {
                match client.get(url.clone()).send().await {
                    Ok(r) if r.status().is_success() => Ok(()),
                    Ok(r) => Err(format!("answered {}", r.status())),
                    Err(e) => Err(without_url(&e)),
                }
            };
            let result = tokio::select! {
                _ = cancel.cancelled() => return,
                r = beat => r,
            };
            match result {
                Ok(()) if failing => {
                    failing = false;
                    tracing::info!(
                        host = url.host_str().unwrap_or(""),
                        "heartbeat answered again"
                    );
                }
                Ok(()) => tracing::debug!("heartbeat sent"),
                Err(why) => {
                    failing = true;
                    // The URL's path is its secret on most such services: the host only.
                    tracing::warn!(
                        host = url.host_str().unwrap_or(""),
                        "heartbeat failed: {why}"
                    );
                }
            }
            tokio::select! {
                _ = cancel.cancelled() => return,
                _ = clock.sleep(EVERY) => {}
            }
        }
    });
}

/// reqwest's error text names the URL; the log must not.
fn without_url(e: &reqwest::Error) -> String {
    let mut text = if e.is_timeout() {
        format!("no answer within {}s", TIMEOUT.as_secs())
    } else if e.is_connect() {
        "cannot connect".to_owned()
    } else {
        "request failed".to_owned()
    };
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}
