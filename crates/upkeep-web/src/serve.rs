//! Serving a router on a listener, one way for every listener (the control socket,
//! `metrics_listen`, the TCP API at `listen` and the public one at `public_listen`), so that
//! no client can wear the daemon down (issue 14, C10: 21,000 idle connections once filled its
//! descriptors, probes failed with "too many open files" and a healthy service was restarted
//! ten times):
//!
//! - a cap on open connections per listener, and per client address within it (issue 17:
//!   one address once held them all); connections with no request in hand give way to new
//!   ones when the listener is (nearly) full, so idle and slowloris sockets cannot keep a
//!   client out (see `admission.rs`). Past the caps a new connection gets a 503 with a
//!   message (written without reading its request) and is closed, so a flood costs a
//!   descriptor for a moment, never a lasting one;
//! - a deadline for each request's headers, which also ends a keep-alive connection that sits
//!   idle (a response that streams, such as `logs -f`, is not idle), and a cap on their size;
//! - a deadline for each whole request, head and body (a body sent a byte at a time, or
//!   never, would otherwise hold its connection for ever): past it a 408 in JSON and the
//!   connection closed; and a connection whose request is not whole yet gives way like an
//!   idle one (see `arrival.rs`);
//! - a cap on each request's body: past it a 413 in JSON. The body is read by
//!   [`bounded_body`], which the API's routers place behind their gate, so a client without a
//!   token is refused before a byte of its body is read; routes that read no body never wait
//!   for one, and axum's extractors keep the same cap as a backstop;
//! - a cap of its own on connections that carry a stream (the status page's server-sent
//!   events): such a connection gives its connection permit back for a stream permit
//!   ([`Lease::to_stream`]), so idle streams can never take every permit and leave the page
//!   answering 503; past the stream cap the stream alone is refused (503, connection closed);
//! - on shutdown, in-flight requests finish and the rest are closed, within a deadline;
//! - on `listen` and `public_listen` with `[daemon] tls`, HTTPS: the handshake comes after
//!   admission, within the head's deadline, and gives way like an idle connection (`tls.rs`);
//!   past a cap the connection is closed unanswered (a plain 503 is garbage on a TLS socket),
//!   and every answer carries `Strict-Transport-Security`.
//!
//! Each connection's [`Peer`] (the uid behind a Unix socket, from SO_PEERCRED, or the
//! address of a TCP client) goes into every request's extensions, for `auth.rs` to name who
//! asks. Start at [`serve`].

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::Request;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::admission::{Admission, Refusal, Slot};
use crate::arrival::Arrival;

/// What one listener allows.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Connections open at once.
    pub max_connections: usize,
    /// Connections open at once from one TCP peer address (an IPv6 peer by its /64); trusted
    /// proxies are not capped (see `admission.rs`).
    pub per_address: usize,
    /// Longest wait for a request's headers, counted from the end of the previous response
    /// on a kept-alive connection.
    pub header_timeout: Duration,
    /// The same deadline when the listener is nearly full: a connection that has waited
    /// longer for its request (or its next one) is shed to make room for a new one.
    pub crowded_header_timeout: Duration,
    /// Largest request head (request line and headers) read; past it hyper answers 431.
    /// At least 8 KiB (hyper's floor).
    pub max_header_bytes: usize,
    /// Largest request body; past it a 413.
    pub max_body_bytes: usize,
    /// Longest wait for a whole request, head and body, from when its connection began to
    /// wait for it; past it a 408 (see `arrival.rs`).
    pub request_timeout: Duration,
    /// Connections that carry a stream, apart from `max_connections` (see [`Lease`]).
    pub max_streams: usize,
}

/// Connections from one address by default (`daemon.max_connections_per_address`): a
/// browser opens six at most to a host, a page and its stream two; a whole office behind one
/// NAT address still fits, and one client takes 32 of a listener's 512 at most.
pub const PER_ADDRESS: usize = 32;

/// The head deadline on a nearly full listener: a client that means to ask sends its request
/// with its first packet, well within 2 s even on a slow mobile link.
const CROWDED_HEADER_TIMEOUT: Duration = Duration::from_secs(2);

impl Limits {
    /// The control socket: the CLI and scripts of the host's operators (0600, so only they can
    /// flood it). Roomy: a log shipper may follow every service's log at once, and `stop` must
    /// still get through.
    pub const CONTROL: Limits = Limits {
        max_connections: 4096,
        // Its peers have no address, only the operators' uid.
        per_address: usize::MAX,
        header_timeout: Duration::from_secs(10),
        crowded_header_timeout: CROWDED_HEADER_TIMEOUT,
        max_header_bytes: 64 * 1024,
        max_body_bytes: 2 * 1024 * 1024,
        request_timeout: Duration::from_secs(30),
        max_streams: 1024,
    };
    /// A scrape-only TCP port: Prometheus needs one connection or two.
    pub const METRICS: Limits = Limits {
        max_connections: 64,
        per_address: PER_ADDRESS,
        header_timeout: Duration::from_secs(10),
        crowded_header_timeout: CROWDED_HEADER_TIMEOUT,
        max_header_bytes: 16 * 1024,
        max_body_bytes: 16 * 1024,
        request_timeout: Duration::from_secs(10),
        max_streams: 0,
    };
    /// The TCP API (`listen`) and the public router (`public_listen`): anyone who reaches the
    /// port may connect, token or not. A few hundred connections serve dashboards, scripts and
    /// a status page behind a proxy; the cap keeps a flood to that many descriptors. Every
    /// request body of the API is a small JSON object, so 64 KiB is far more than any needs,
    /// and an `Authorization` header is under 100 bytes, so 16 KiB of head is roomy. Live
    /// status streams get 256 connections of their own: a page open in that many browsers
    /// at once, and past it a browser falls back to reloading the page, which still answers.
    pub const TCP: Limits = Limits {
        max_connections: 512,
        per_address: PER_ADDRESS,
        header_timeout: Duration::from_secs(10),
        crowded_header_timeout: CROWDED_HEADER_TIMEOUT,
        max_header_bytes: 16 * 1024,
        max_body_bytes: 64 * 1024,
        request_timeout: Duration::from_secs(10),
        max_streams: 256,
    };
}

/// Who is at the other end of a connection, as the listener sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Peer {
    /// A process on this host, through the control socket: its user id (SO_PEERCRED).
    Local { uid: u32 },
    /// A TCP client.
    Remote(std::net::SocketAddr),
    /// The listener could not tell.
    Unknown,
}

impl Peer {
    /// A TCP client's address as the record of who did what shows it: `ip:port`, or the
    /// address alone for a client a trusted proxy named without a port.
    pub fn remote(&self) -> Option<String> {
        match self {
            Peer::Remote(addr) if addr.port() == 0 => Some(addr.ip().to_string()),
            Peer::Remote(addr) => Some(addr.to_string()),
            Peer::Local { .. } | Peer::Unknown => None,
        }
    }
}

/// A connection that can say who is at its other end.
pub trait PeerOf {
    fn peer(&self) -> Peer;
}

impl PeerOf for tokio::net::UnixStream {
    fn peer(&self) -> Peer {
        self.peer_cred()
            .map_or(Peer::Unknown, |c| Peer::Local { uid: c.uid() })
    }
}

impl PeerOf for tokio::net::TcpStream {
    fn peer(&self) -> Peer {
        self.peer_addr().map_or(Peer::Unknown, Peer::Remote)
    }
}

/// A connection's place in its listener's book (see `admission.rs`), in each of its requests'
/// extensions: it holds one of the listener's connection permits or, once it carries a
/// stream, one of its stream permits, until the connection closes.
#[derive(Clone)]
pub(crate) struct Lease(Arc<Slot>);

impl Lease {
    /// Trades this connection's permit for a stream permit, so that a stream held open for
    /// hours does not keep a connection permit from the page; false when every stream permit
    /// is taken (the stream is then refused, and the connection keeps what it had).
    pub(crate) fn to_stream(&self) -> bool {
        self.0.to_stream()
    }
}

/// The router's service for one connection: puts the connection's [`Peer`], its [`Lease`]
/// and its listener's [`Limits`] into each request, and tells the listener's book when the
/// connection has a request in hand. A wrapper rather than `Router::layer` per connection,
/// which would rebuild every route for each of a flood's connections.
#[derive(Clone)]
struct WithPeer {
    inner: TowerToHyperService<Router>,
    peer: Peer,
    limits: Limits,
    lease: Lease,
    /// Served over TLS: the request came over HTTPS, whatever its headers say.
    over_tls: bool,
}

impl hyper::service::Service<hyper::Request<hyper::body::Incoming>> for WithPeer {
    type Response = Response;
    type Error = std::convert::Infallible;
    type Future =
        std::pin::Pin<Box<dyn Future<Output = Result<Response, std::convert::Infallible>> + Send>>;

    fn call(&self, mut req: hyper::Request<hyper::body::Incoming>) -> Self::Future {
        req.extensions_mut().insert(self.peer.clone());
        req.extensions_mut().insert(self.limits);
        req.extensions_mut().insert(self.lease.clone());
        if self.over_tls {
            // What a TLS-terminating proxy in front would say (the admin pages' cookies are
            // `Secure`); a client's own claim is replaced.
            req.headers_mut().insert(
                "x-forwarded-proto",
                axum::http::HeaderValue::from_static("https"),
            );
        }
        // Busy once the request is whole, until its answer is written (see `arrival.rs`).
        let (arrival, req) = Arrival::start(self.lease.0.clone(), req);
        let answer = arrival.answer(self.limits.request_timeout, self.inner.call(req));
        if !self.over_tls {
            return Box::pin(answer);
        }
        Box::pin(async move {
            let mut answer = answer.await;
            if let Ok(r) = &mut answer {
                // Served over HTTPS: browsers keep to it (no downgrade to plain HTTP by a
                // network in between). Not `includeSubDomains`: other hosts are not ours.
                r.headers_mut().insert(
                    axum::http::header::STRICT_TRANSPORT_SECURITY,
                    axum::http::HeaderValue::from_static(HSTS),
                );
            }
            answer
        })
    }
}

/// What responses over TLS carry as `Strict-Transport-Security`: a year.
pub(crate) const HSTS: &str = "max-age=31536000";

/// Reads the request's body whole, within its listener's `max_body_bytes`, before the route
/// sees it: one place that bounds every body of every listener. (Its time is bounded for
/// every route alike, by the request's deadline: see `arrival.rs`.)
pub(crate) async fn bounded_body(req: Request, next: Next) -> Response {
    use crate::ApiError;
    // Put there by `serve`; a router served some other way gets the strictest.
    let limits = req
        .extensions()
        .get::<Limits>()
        .copied()
        .unwrap_or(Limits::TCP);
    let declared = req
        .headers()
        .get(axum::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    let too_large = || {
        ApiError::TooLarge(format!(
            "the request body is larger than {} bytes",
            limits.max_body_bytes
        ))
        .into_response()
    };
    // Said up front: refused without reading it.
    if declared.is_some_and(|n| n > limits.max_body_bytes as u64) {
        return too_large();
    }
    let (parts, body) = req.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, limits.max_body_bytes).await else {
        return too_large();
    };
    next.run(Request::from_parts(parts, axum::body::Body::from(bytes)))
        .await
}

/// The answer past the listener's cap (every connection busy), written whole without reading
/// the request.
const BUSY: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\nconnection: close\r\ncontent-length: 89\r\n\r\n{\"error\":\"too many open connections to the daemon; close some and try again\",\"hint\":null}";

/// The answer past the cap per client address.
const CROWDED: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\nconnection: close\r\ncontent-length: 93\r\n\r\n{\"error\":\"too many open connections from your address; close some and try again\",\"hint\":null}";

/// Answers `answer` to a connection past a cap and closes it (within a second: a client that
/// reads nothing gets nothing more).
async fn refuse<Io: tokio::io::AsyncWrite + Unpin>(mut io: Io, answer: &'static [u8]) {
    use tokio::io::AsyncWriteExt;
    let _ = tokio::time::timeout(Duration::from_secs(1), async {
        let _ = io.write_all(answer).await;
        let _ = io.shutdown().await;
    })
    .await;
}

/// [`refuse`], on a plain listener; on a TLS one, the connection closed at once: a plain
/// answer on a TLS socket is garbage to its client, and a handshake only to say no would
/// spend a signature per connection of the very flood the cap is for (break-it, session 10).
fn refuse_or_close<Io>(io: Io, answer: &'static [u8], over_tls: bool)
where
    Io: tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    if over_tls {
        drop(io);
    } else {
        tokio::spawn(refuse(io, answer));
    }
}

/// How long shutdown waits for connections to finish.
const DRAIN: Duration = Duration::from_secs(5);

/// Serves `app` on `listener` within `limits` until `cancel`.
pub async fn serve<L>(listener: L, app: Router, limits: Limits, cancel: CancellationToken)
where
    L: axum::serve::Listener,
    L::Io: PeerOf,
{
    serve_with(listener, app, limits, &[], None, cancel).await;
}

/// [`serve`], with `trusted_proxies` exempt from the cap per address (every client behind a
/// proxy shares its address), and over TLS with `tls` (see `tls.rs`).
pub async fn serve_with<L>(
    mut listener: L,
    app: Router,
    limits: Limits,
    trusted_proxies: &[ipnet::IpNet],
    tls: Option<crate::tls::Tls>,
    cancel: CancellationToken,
) where
    L: axum::serve::Listener,
    L::Io: PeerOf,
{
    // The extractors' own cap, for a route that reads a body without `bounded_body` in front.
    let app = app.layer(axum::extract::DefaultBodyLimit::max(limits.max_body_bytes));
    let admission = Admission::new(limits, trusted_proxies.into());
    let conns = TaskTracker::new();
    let (mut refused, mut crowded): (u64, u64) = (0, 0);
    loop {
        let (io, _addr) = tokio::select! {
            _ = cancel.cancelled() => break,
            conn = listener.accept() => conn,
        };
        let peer = io.peer();
        let slot = match admission.admit(&peer) {
            Ok(slot) => Arc::new(slot),
            Err(Refusal::Full) => {
                refused += 1;
                // Once per power of two: a flood is logged, not echoed line by line.
                if refused.is_power_of_two() {
                    tracing::warn!(
                        refused,
                        cap = limits.max_connections,
                        "connection refused: every connection is busy"
                    );
                }
                refuse_or_close(io, BUSY, tls.is_some());
                continue;
            }
            Err(Refusal::PerAddress) => {
                crowded += 1;
                if crowded.is_power_of_two() {
                    tracing::warn!(
                        refused = crowded,
                        cap = limits.per_address,
                        peer = peer.remote().unwrap_or_default(),
                        "connection refused: too many open connections from one address"
                    );
                }
                refuse_or_close(io, CROWDED, tls.is_some());
                continue;
            }
        };
        let shed = slot.shed.clone();
        let lease = Lease(slot);
        let svc = WithPeer {
            peer,
            limits,
            lease: lease.clone(),
            inner: TowerToHyperService::new(app.clone()),
            over_tls: tls.is_some(),
        };
        let cancel = cancel.clone();
        let tls = tls.clone();
        conns.spawn(async move {
            // Its place in the book (and the permit it holds) goes back when it closes.
            let _lease = lease;
            // The handshake first, admitted and waiting like a connection yet to send its head.
            let io = match tls {
                None => tokio_util::either::Either::Left(io),
                Some(tls) => match tls.accept(io, limits.header_timeout, &shed, &cancel).await {
                    Some(io) => tokio_util::either::Either::Right(io),
                    None => return,
                },
            };
            let mut builder = hyper::server::conn::http1::Builder::new();
            builder
                .timer(TokioTimer::new())
                .header_read_timeout(limits.header_timeout)
                .max_buf_size(limits.max_header_bytes.max(8192));
            let conn = builder.serve_connection(TokioIo::new(io), svc);
            tokio::pin!(conn);
            tokio::select! {
                _ = conn.as_mut() => {}
                // Shed for a newcomer while it had no request in hand: closed unanswered.
                _ = shed.cancelled() => {}
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
    fn the_busy_answers_are_well_formed() {
        for answer in [BUSY, CROWDED] {
            let text = std::str::from_utf8(answer).unwrap();
            let (head, body) = text.split_once("\r\n\r\n").unwrap();
            assert!(
                head.contains(&format!("content-length: {}", body.len())),
                "{head}"
            );
            let v: serde_json::Value = serde_json::from_str(body).unwrap();
            assert!(v["error"].as_str().unwrap().contains("too many"));
        }
    }

    /// A listener of `max` connections serving `/hold` (says so on `entered`, then answers
    /// once `go` is notified).
    async fn held_listener(
        max: usize,
    ) -> (
        std::net::SocketAddr,
        tokio::sync::mpsc::UnboundedReceiver<()>,
        Arc<tokio::sync::Notify>,
    ) {
        let go = Arc::new(tokio::sync::Notify::new());
        let (tx, entered) = tokio::sync::mpsc::unbounded_channel();
        let wait = go.clone();
        let app = Router::new().route(
            "/hold",
            axum::routing::get(move || {
                let (wait, tx) = (wait.clone(), tx.clone());
                async move {
                    // Made before it says so: `notify_waiters` wakes every one made by then.
                    let released = wait.notified();
                    let _ = tx.send(());
                    released.await;
                    "held"
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let limits = Limits {
            max_connections: max,
            ..Limits::TCP
        };
        tokio::spawn(serve(listener, app, limits, CancellationToken::new()));
        (addr, entered, go)
    }

    async fn send(addr: std::net::SocketAddr, path: &str) -> tokio::net::TcpStream {
        use tokio::io::AsyncWriteExt;
        let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
        s.write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes())
            .await
            .unwrap();
        s
    }

    /// Everything the server sends until it closes, or until `needle` has come.
    async fn read_until(s: &mut tokio::net::TcpStream, needle: &str) -> String {
        use tokio::io::AsyncReadExt;
        let mut got = Vec::new();
        let mut buf = [0u8; 4096];
        while !String::from_utf8_lossy(&got).contains(needle) {
            match s.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => got.extend_from_slice(&buf[..n]),
            }
        }
        String::from_utf8_lossy(&got).into_owned()
    }

    #[tokio::test]
    async fn a_connection_that_asks_nothing_gives_way_and_only_busy_ones_make_a_503() {
        let (addr, mut entered, go) = held_listener(2).await;
        let mut quiet = tokio::net::TcpStream::connect(addr).await.unwrap();
        let mut first = send(addr, "/hold").await;
        entered.recv().await.unwrap();
        // Full: the connection that asked nothing is closed, unanswered, for the newcomer.
        let mut second = send(addr, "/hold").await;
        entered.recv().await.unwrap();
        assert_eq!(read_until(&mut quiet, "never").await, "");
        // Both busy with a request: the next is told why.
        let mut third = send(addr, "/hold").await;
        let refused = read_until(&mut third, "never").await;
        assert!(refused.starts_with("HTTP/1.1 503"), "{refused}");
        assert!(refused.contains("to the daemon"), "{refused}");
        go.notify_waiters();
        assert!(read_until(&mut first, "held").await.contains("200 OK"));
        assert!(read_until(&mut second, "held").await.contains("200 OK"));
    }
}
