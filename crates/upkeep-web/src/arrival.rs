//! A request's arrival on a listener: the deadline for the whole of it, head and body, and
//! the moment its connection stops waiting and counts as busy (break-it, session 8: 520
//! `POST /api/v1/subscribe` with a `Content-Length` and no body, from 130 addresses, held
//! `listen` and `public_listen` for good, every other client answered 503).
//!
//! - **One deadline for the whole request**: `Limits::request_timeout` from when its
//!   connection began to wait for it (its accept, or the end of the previous answer). hyper's
//!   `header_read_timeout` closes a connection whose head is late; once the head is in,
//!   [`Arrival::answer`] answers a 408 (and closes the connection) if the body is not whole
//!   by the deadline, whatever the route and whether or not it reads its body with
//!   `serve::bounded_body`. Once the body is in, the deadline no longer applies: a handler
//!   may take its time (a reload, an upgrade).
//! - **Busy once the request is whole**: a connection whose body is still coming is as good
//!   as idle, so it stays *waiting* in its listener's book (see `admission.rs`) from the
//!   moment it began to wait for the request until its body's last byte (or until its answer
//!   starts, for a handler that answers without reading the body), and gives way to a
//!   newcomer on a crowded listener exactly as an idle or slowloris connection does. It counts
//!   as busy from then until its answer has been written.
//!
//! Not here: the caps on connections and who is shed (`admission.rs`), the body's size
//! (`serve::bounded_body`). Start at [`Arrival::start`], called by `serve.rs` for each request.

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use hyper::body::{Body, Frame, Incoming, SizeHint};
use tokio_util::sync::CancellationToken;

use crate::admission::Slot;

/// One request on its way in, shared by its body (which says when it is whole), the future
/// that answers it and the answer's body (which says when it is written).
pub(crate) struct Arrival {
    slot: Arc<Slot>,
    /// Cancelled once the body is whole (or the request has none).
    arrived: CancellationToken,
    /// Whether the connection was marked busy for this request (then it waits again, for its
    /// next request, once this is dropped).
    busy: AtomicBool,
    /// The request's headers when it is for the admin pages, whose 408 is a page (for its
    /// language), not the API's JSON.
    admin: Option<axum::http::HeaderMap>,
}

impl Arrival {
    /// Tracks `req`, a request whose head has just come in on the connection of `slot`.
    pub(crate) fn start(
        slot: Arc<Slot>,
        req: hyper::Request<Incoming>,
    ) -> (Arc<Arrival>, hyper::Request<Arriving>) {
        let arrival = Arc::new(Arrival {
            slot,
            arrived: CancellationToken::new(),
            busy: AtomicBool::new(false),
            admin: req
                .uri()
                .path()
                .starts_with("/admin/")
                .then(|| req.headers().clone()),
        });
        if req.body().is_end_stream() {
            arrival.arrived();
        }
        let tracked = arrival.clone();
        let req = req.map(|inner| Arriving {
            inner,
            arrival: tracked,
        });
        (arrival, req)
    }

    /// The body is whole: the deadline no longer applies, and the connection is busy.
    fn arrived(&self) {
        if !self.arrived.is_cancelled() {
            self.arrived.cancel();
            self.mark_busy();
        }
    }

    fn mark_busy(&self) {
        if !self.busy.swap(true, Ordering::AcqRel) {
            self.slot.busy();
        }
    }

    /// `answer` (the router's answer to the request), or a 408 if the request is not whole
    /// within `timeout` of when its connection began to wait for it; the answer's body keeps
    /// the connection busy until it has been written.
    pub(crate) async fn answer<F>(
        self: Arc<Self>,
        timeout: Duration,
        answer: F,
    ) -> Result<Response, Infallible>
    where
        F: Future<Output = Result<Response, Infallible>>,
    {
        let now = Instant::now();
        // A kept-alive connection waits from a moment after its last answer (see
        // `admission.rs`); a stream never gets here again.
        let deadline = self.slot.waiting_since().unwrap_or(now).min(now) + timeout;
        let overdue = async {
            tokio::select! {
                biased;
                _ = self.arrived.cancelled() => std::future::pending::<()>().await,
                _ = tokio::time::sleep_until(deadline.into()) => {}
            }
        };
        let res = tokio::select! {
            biased;
            res = answer => res?,
            _ = overdue => late(timeout, self.admin.as_ref()).await,
        };
        // Its answer is being written: not to be shed now, whether its body came or not.
        self.mark_busy();
        Ok(res.map(|body| {
            axum::body::Body::new(Answering {
                body,
                _arrival: self,
            })
        }))
    }
}

impl Drop for Arrival {
    fn drop(&mut self) {
        if self.busy.load(Ordering::Acquire) {
            self.slot.answered();
        }
    }
}

/// The answer to a request not whole in time; the connection is closed after it (what is
/// left of the body would otherwise be read as the next request).
async fn late(timeout: Duration, admin: Option<&axum::http::HeaderMap>) -> Response {
    let message = format!(
        "the request did not arrive whole within {}s",
        timeout.as_secs()
    );
    let mut res = match admin {
        Some(headers) => crate::admin::late_page(headers, &message).await,
        None => crate::ApiError::Timeout(message).into_response(),
    };
    res.headers_mut().insert(
        axum::http::header::CONNECTION,
        axum::http::HeaderValue::from_static("close"),
    );
    res
}

/// A request's body as the router reads it: tells its [`Arrival`] when it is whole.
pub(crate) struct Arriving {
    inner: Incoming,
    arrival: Arc<Arrival>,
}

impl Body for Arriving {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let polled = std::pin::Pin::new(&mut self.inner).poll_frame(cx);
        match &polled {
            std::task::Poll::Ready(None) => self.arrival.arrived(),
            std::task::Poll::Ready(Some(Ok(_))) if self.inner.is_end_stream() => {
                self.arrival.arrived()
            }
            _ => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// An answer's body, keeping its connection busy until hyper has written it all (hyper
/// drops a body at its end) or the connection is gone.
struct Answering {
    body: axum::body::Body,
    _arrival: Arc<Arrival>,
}

impl Body for Answering {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        std::pin::Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use std::net::SocketAddr;

    use axum::Router;
    use axum::extract::Request;
    use axum::routing::{get, post};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpStream;
    use tokio::sync::mpsc::{UnboundedReceiver, unbounded_channel};
    use tokio_util::sync::CancellationToken;

    use super::*;
    use crate::serve::{Limits, serve};

    /// A listener of `max` connections with a request deadline of `timeout`: `POST /read`
    /// says so on `entered` once its head is in, then reads its body; `GET /hold` says so,
    /// then answers once `go` is notified.
    async fn listener(
        max: usize,
        timeout: Duration,
    ) -> (
        SocketAddr,
        UnboundedReceiver<&'static str>,
        Arc<tokio::sync::Notify>,
    ) {
        let go = Arc::new(tokio::sync::Notify::new());
        let (tx, entered) = unbounded_channel();
        let (wait, tx2) = (go.clone(), tx.clone());
        let app = Router::new()
            .route(
                "/read",
                post(move |req: Request| {
                    let tx = tx.clone();
                    async move {
                        let _ = tx.send("read");
                        match axum::body::to_bytes(req.into_body(), 1024).await {
                            Ok(b) => format!("got {} bytes", b.len()),
                            Err(_) => "no body".into(),
                        }
                    }
                }),
            )
            .route(
                "/hold",
                get(move || {
                    let (wait, tx) = (wait.clone(), tx2.clone());
                    async move {
                        let released = wait.notified();
                        let _ = tx.send("hold");
                        released.await;
                        "held"
                    }
                }),
            );
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        let limits = Limits {
            max_connections: max,
            request_timeout: timeout,
            ..Limits::TCP
        };
        tokio::spawn(serve(l, app, limits, CancellationToken::new()));
        (addr, entered, go)
    }

    async fn send(addr: SocketAddr, request: &str) -> TcpStream {
        let mut s = TcpStream::connect(addr).await.unwrap();
        s.write_all(request.as_bytes()).await.unwrap();
        s
    }

    /// Everything the server sends until it closes the connection (a generous minute at
    /// most: a server that never does fails the test rather than hangs it).
    async fn read_to_close(s: &mut TcpStream) -> String {
        let mut got = Vec::new();
        tokio::time::timeout(Duration::from_secs(60), s.read_to_end(&mut got))
            .await
            .expect("the server closed the connection within a minute")
            .ok();
        String::from_utf8_lossy(&got).into_owned()
    }

    const STALLED: &str = "POST /read HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nabc";

    #[tokio::test]
    async fn a_body_that_never_comes_gets_a_408_and_its_connection_is_closed() {
        let (addr, mut entered, _go) = listener(8, Duration::from_secs(1)).await;
        let mut stalled = send(addr, STALLED).await;
        assert_eq!(entered.recv().await, Some("read"));
        let answer = read_to_close(&mut stalled).await;
        assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
        assert!(answer.contains("connection: close"), "{answer}");
        assert!(
            answer.contains("did not arrive whole within 1s"),
            "{answer}"
        );
        // A whole request on a kept-alive connection is answered, and the deadline does not
        // reach past its body: a slow handler is not cut short.
        let mut whole = send(
            addr,
            "POST /read HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nConnection: close\r\n\r\nabc",
        )
        .await;
        assert!(read_to_close(&mut whole).await.contains("got 3 bytes"));
    }

    #[tokio::test]
    async fn a_connection_whose_body_is_still_coming_gives_way_like_an_idle_one() {
        // A deadline far away: only shedding can free the stalled connection's place.
        let (addr, mut entered, go) = listener(2, Duration::from_secs(3600)).await;
        let mut stalled = send(addr, STALLED).await;
        assert_eq!(entered.recv().await, Some("read"));
        let mut first = send(addr, "GET /hold HTTP/1.1\r\nHost: x\r\n\r\n").await;
        assert_eq!(entered.recv().await, Some("hold"));
        // Full: the stalled one has no whole request in hand, so it is shed for a newcomer.
        let mut second = send(addr, "GET /hold HTTP/1.1\r\nHost: x\r\n\r\n").await;
        assert_eq!(entered.recv().await, Some("hold"));
        assert_eq!(read_to_close(&mut stalled).await, "");
        // Both busy with a whole request: the next is refused.
        let mut third = send(addr, "GET /hold HTTP/1.1\r\nHost: x\r\n\r\n").await;
        let refused = read_to_close(&mut third).await;
        assert!(refused.starts_with("HTTP/1.1 503"), "{refused}");
        go.notify_waiters();
        for s in [&mut first, &mut second] {
            let mut buf = [0u8; 512];
            let n = s.read(&mut buf).await.unwrap();
            assert!(String::from_utf8_lossy(&buf[..n]).contains("200 OK"));
        }
    }
}
