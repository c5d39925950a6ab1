//! Serving a router on a listener, one way for every listener (the control socket,
//! `metrics_listen`, and the TCP API to come), so that no client can wear the daemon down
//! (issue 14, C10: 21,000 idle connections once filled its descriptors, probes failed with
//! "too many open files" and a healthy service was restarted ten times):
//!
//! - a cap on open connections per listener: past it, a new connection gets a 503 with a
//!   message (written without reading its request) and is closed, so a flood costs a
//!   descriptor for a moment, never a lasting one;
//! - a deadline for each request's headers, which also ends a keep-alive connection that sits
//!   idle (a response that streams, such as `logs -f`, is not idle);
//! - on shutdown, in-flight requests finish and the rest are closed, within a deadline.
//!
//! Bodies are capped by axum's extractors (2 MiB). Start at [`serve`].

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// What one listener allows.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Connections open at once.
    pub max_connections: usize,
    /// Longest wait for a request's headers, counted from the end of the previous response
    /// on a kept-alive connection.
    pub header_timeout: Duration,
}

impl Limits {
    /// The control socket: the CLI and scripts of the host's operators (0600, so only they can
    /// flood it). Roomy: a log shipper may follow every service's log at once, and `stop` must
    /// still get through.
    pub const CONTROL: Limits = Limits {
        max_connections: 4096,
        header_timeout: Duration::from_secs(10),
    };
    /// A scrape-only TCP port: Prometheus needs one connection or two.
    pub const METRICS: Limits = Limits {
        max_connections: 64,
        header_timeout: Duration::from_secs(10),
    };
}

/// The answer past the cap, written whole without reading the request.
const BUSY: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\nconnection: close\r\ncontent-length: 89\r\n\r\n{\"error\":\"too many open connections to the daemon; close some and try again\",\"hint\":null}";

/// Answers 503 to a connection past the cap and closes it (within a second: a client that
/// reads nothing gets nothing more).
async fn refuse<Io: tokio::io::AsyncWrite + Unpin>(mut io: Io) {
    use tokio::io::AsyncWriteExt;
    let _ = tokio::time::timeout(Duration::from_secs(1), async {
        let _ = io.write_all(BUSY).await;
        let _ = io.shutdown().await;
    })
    .await;
}

/// How long shutdown waits for connections to finish.
const DRAIN: Duration = Duration::from_secs(5);

/// Serves `app` on `listener` within `limits` until `cancel`.
pub async fn serve<L>(mut listener: L, app: Router, limits: Limits, cancel: CancellationToken)
where
    L: axum::serve::Listener,
{
    let permits = Arc::new(Semaphore::new(limits.max_connections));
    let conns = TaskTracker::new();
    let mut refused: u64 = 0;
    loop {
        let (io, _addr) = tokio::select! {
            _ = cancel.cancelled() => break,
            conn = listener.accept() => conn,
        };
        let Ok(permit) = permits.clone().try_acquire_owned() else {
            refused += 1;
            // Once per power of two: a flood is logged, not echoed line by line.
            if refused.is_power_of_two() {
                tracing::warn!(
                    refused,
                    cap = limits.max_connections,
                    "connection refused: too many open connections"
                );
            }
            tokio::spawn(refuse(io));
            continue;
        };
        let svc = TowerToHyperService::new(app.clone());
        let cancel = cancel.clone();
        conns.spawn(async move {
            let _permit = permit;
            let mut builder = hyper::server::conn::http1::Builder::new();
            builder
                .timer(TokioTimer::new())
                .header_read_timeout(limits.header_timeout);
            let conn = builder.serve_connection(TokioIo::new(io), svc);
            tokio::pin!(conn);
            tokio::select! {
                _ = conn.as_mut() => {}
                _ = cancel.cancelled() => {
                    conn.as_mut().graceful_shutdown();
                    let _ = conn.await;
                }
            }
        });
    }
    conns.close();
    if tokio::time::timeout(DRAIN, conns.wait()).await.is_err() {
        tracing::debug!(open = conns.len(), "connections still open at shutdown");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_busy_answer_is_well_formed() {
        let text = std::str::from_utf8(BUSY).unwrap();
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        assert!(
            head.contains(&format!("content-length: {}", body.len())),
            "{head}"
        );
        let v: serde_json::Value = serde_json::from_str(body).unwrap();
        assert!(v["error"].as_str().unwrap().contains("too many"));
    }
}
