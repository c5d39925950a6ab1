//! The CLI's client of the daemon's JSON API, over the Unix socket in the data dir.
//!
//! Requests name their path with an [`ApiPath`]: fixed text is a `&'static str` of the code's,
//! and everything a user typed is added as an encoded segment or query value, so no argument
//! can change which route is hit (issue 14, D18: `upkeep stop 'all/start?'` started everything).

use std::path::{Path, PathBuf};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde::Serialize;
use serde::de::DeserializeOwned;
use upkeep_core::api::ErrorBody;
use upkeep_core::i18n::{Msg, tr};

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("{}", tr(Msg::NoDaemon, &[&data_dir.display()]))]
    NoDaemon { data_dir: PathBuf },
    #[error("{}", tr(Msg::DaemonSilent, &[&socket.display(), &(PATIENCE.as_secs() * 2)]))]
    Silent { socket: PathBuf },
    #[error("{}", body.error)]
    Api { status: StatusCode, body: ErrorBody },
    #[error("talking to the daemon at {socket}: {message}")]
    Protocol { socket: PathBuf, message: String },
}

impl ClientError {
    pub fn hint(&self) -> Option<String> {
        match self {
            ClientError::NoDaemon { .. } => Some(tr(Msg::NoDaemonHint, &[])),
            ClientError::Silent { .. } => Some(tr(Msg::DaemonSilentHint, &[])),
            ClientError::Api { body, .. } => body.hint.clone(),
            ClientError::Protocol { .. } => None,
        }
    }
}

/// The path (and query) of an API request. Only the code's own text converts into one
/// directly (`"/api/v1/daemon".into()`); user input goes in through [`ApiPath::segment`] and
/// [`ApiPath::query`], percent-encoded. Every path is of the API's version 1 (`/api/v1/...`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiPath(String);

impl ApiPath {
    /// Fixed text of the code's, e.g. `/api/v1/services`.
    pub fn new(fixed: &'static str) -> Self {
        debug_assert!(
            fixed.starts_with(upkeep_core::api::PREFIX),
            "{fixed} is not a path of the API's version in use"
        );
        Self(fixed.to_owned())
    }

    /// Adds `/` and `part` as one path segment: `/`, `?`, `#`, `%` and the like are encoded,
    /// and so are the dots of `.` and `..`, which would otherwise step up a level.
    pub fn segment(mut self, part: impl AsRef<str>) -> Self {
        let part = part.as_ref();
        self.0.push('/');
        if part == "." || part == ".." {
            self.0.push_str(&"%2E".repeat(part.len()));
        } else {
            encode_into(&mut self.0, part);
        }
        self
    }

    /// Adds `key=value` to the query, `value` encoded.
    pub fn query(mut self, key: &'static str, value: impl std::fmt::Display) -> Self {
        self.0.push(if self.0.contains('?') { '&' } else { '?' });
        self.0.push_str(key);
        self.0.push('=');
        encode_into(&mut self.0, &value.to_string());
        self
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl From<&'static str> for ApiPath {
    fn from(fixed: &'static str) -> Self {
        Self::new(fixed)
    }
}

impl std::fmt::Display for ApiPath {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Percent-encodes every byte but RFC 3986's unreserved characters.
fn encode_into(out: &mut String, s: &str) {
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                out.push(b as char)
            }
            _ => {
                let _ = std::fmt::Write::write_fmt(out, format_args!("%{b:02X}"));
            }
        }
    }
}

/// The error of an answer that is not 2xx. The API answers JSON ([`ErrorBody`]); anything
/// else (an empty body from a daemon of another version, a proxy's page) is described by
/// what was asked, rather than printed as `404 Not Found: `.
fn error_body(status: StatusCode, method: &Method, path: &ApiPath, bytes: &[u8]) -> ErrorBody {
    if let Ok(body) = serde_json::from_slice::<ErrorBody>(bytes) {
        return body;
    }
    let asked = format!("the daemon answered {method} {} with {status}", path.0);
    let text = String::from_utf8_lossy(bytes);
    let text = text.trim();
    let error = if text.is_empty() {
        format!("{asked} and no message")
    } else {
        let cut: String = text.chars().take(200).collect();
        let more = if cut.len() < text.len() { "..." } else { "" };
        format!("{asked}: {cut}{more}")
    };
    let hint = match status {
        StatusCode::NOT_FOUND | StatusCode::METHOD_NOT_ALLOWED => Some(format!(
            "this CLI is upkeep {}; a daemon of another version may not know this request \
             (`upkeep down` then `upkeep up` runs this version, restarting every service)",
            env!("CARGO_PKG_VERSION")
        )),
        s if s.is_server_error() => Some("the daemon's log may say more".into()),
        _ => None,
    };
    ErrorBody { error, hint }
}

/// How long the CLI waits for an answer before it asks, on a second connection, whether the
/// daemon answers at all, and how long that question may take. An operation may take long
/// (a stop waits for `stop_timeout`, `down` for every service): while the daemon answers
/// the question, the CLI waits on. A daemon that answers nothing (SIGSTOPped, stuck) is
/// said to be so after twice this, instead of a CLI that hangs (break-it, session 12).
const PATIENCE: Duration = Duration::from_secs(10);

pub struct Client {
    socket: PathBuf,
    data_dir: PathBuf,
}

impl Client {
    pub fn new(data_dir: &Path) -> Self {
        Self {
            socket: crate::daemon::socket_path(data_dir),
            data_dir: data_dir.to_owned(),
        }
    }

    fn protocol(&self, message: impl std::fmt::Display) -> ClientError {
        ClientError::Protocol {
            socket: self.socket.clone(),
            message: message.to_string(),
        }
    }

    /// Sends one request; answers other than 2xx become [`ClientError::Api`].
    pub async fn send(
        &self,
        method: Method,
        path: impl Into<ApiPath>,
        body: Option<Vec<u8>>,
    ) -> Result<Response<Incoming>, ClientError> {
        let path = path.into();
        let answer = self.send_once(method.clone(), &path, body);
        tokio::pin!(answer);
        let resp = loop {
            tokio::select! {
                resp = &mut answer => break resp?,
                _ = tokio::time::sleep(PATIENCE) => {
                    if !self.answers().await {
                        return Err(ClientError::Silent { socket: self.socket.clone() });
                    }
                }
            }
        };
        if resp.status().is_success() {
            return Ok(resp);
        }
        let status = resp.status();
        let bytes = self.read_body(resp).await?;
        let body = error_body(status, &method, &path, &bytes);
        Err(ClientError::Api { status, body })
    }

    /// Whether the daemon answers a question of no weight within [`PATIENCE`].
    async fn answers(&self) -> bool {
        let path = ApiPath::new("/api/v1/daemon");
        let asked = self.send_once(Method::GET, &path, None);
        matches!(tokio::time::timeout(PATIENCE, asked).await, Ok(Ok(_)))
    }

    /// One request, to its answer's head, whatever its status.
    async fn send_once(
        &self,
        method: Method,
        path: &ApiPath,
        body: Option<Vec<u8>>,
    ) -> Result<Response<Incoming>, ClientError> {
        let stream = match tokio::net::UnixStream::connect(&self.socket).await {
            Ok(s) => s,
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::NotFound | std::io::ErrorKind::ConnectionRefused
                ) =>
            {
                return Err(ClientError::NoDaemon {
                    data_dir: self.data_dir.clone(),
                });
            }
            Err(e) => return Err(self.protocol(e)),
        };
        let (mut sender, conn) =
            hyper::client::conn::http1::handshake(TokioIo::new(NoSigPipe(stream)))
                .await
                .map_err(|e| self.protocol(e))?;
        tokio::spawn(conn);
        let req = Request::builder()
            .method(method.clone())
            .uri(path.as_str())
            .header("host", "upkeep")
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(body.unwrap_or_default())))
            .map_err(|e| self.protocol(e))?;
        sender.send_request(req).await.map_err(|e| self.protocol(e))
    }

    async fn read_body(&self, resp: Response<Incoming>) -> Result<Bytes, ClientError> {
        Ok(resp
            .into_body()
            .collect()
            .await
            .map_err(|e| self.protocol(e))?
            .to_bytes())
    }

    pub async fn get<T: DeserializeOwned>(
        &self,
        path: impl Into<ApiPath>,
    ) -> Result<T, ClientError> {
        self.json(Method::GET, path, None::<&()>).await
    }

    pub async fn post<T: DeserializeOwned>(
        &self,
        path: impl Into<ApiPath>,
        body: Option<&impl Serialize>,
    ) -> Result<T, ClientError> {
        self.json(Method::POST, path, body).await
    }

    pub async fn put<T: DeserializeOwned>(
        &self,
        path: impl Into<ApiPath>,
        body: Option<&impl Serialize>,
    ) -> Result<T, ClientError> {
        self.json(Method::PUT, path, body).await
    }

    pub async fn delete<T: DeserializeOwned>(
        &self,
        path: impl Into<ApiPath>,
    ) -> Result<T, ClientError> {
        self.json(Method::DELETE, path, None::<&()>).await
    }

    async fn json<T: DeserializeOwned>(
        &self,
        method: Method,
        path: impl Into<ApiPath>,
        body: Option<&impl Serialize>,
    ) -> Result<T, ClientError> {
        let body = body.map(|b| serde_json::to_vec(b).expect("request bodies serialise"));
        let resp = self.send(method, path, body).await?;
        let bytes = self.read_body(resp).await?;
        serde_json::from_slice(&bytes).map_err(|e| self.protocol(format!("unexpected answer: {e}")))
    }
}

/// The socket to the daemon, written with `MSG_NOSIGNAL`: the CLI restores SIGPIPE's default
/// (so that `upkeep logs | head` ends quietly), and a daemon that closes the connection while
/// a request is being written (it is shutting down: `upkeep down` under load) would otherwise
/// kill the CLI with SIGPIPE, exit status 141 and no word said. Now that write fails with
/// EPIPE, which is an error like any other.
struct NoSigPipe(tokio::net::UnixStream);

impl tokio::io::AsyncRead for NoSigPipe {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl tokio::io::AsyncWrite for NoSigPipe {
    fn poll_write(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        use std::os::fd::AsRawFd;
        use std::task::{Poll, ready};
        loop {
            ready!(self.0.poll_write_ready(cx))?;
            let sent = self.0.try_io(tokio::io::Interest::WRITABLE, || {
                nix::sys::socket::send(
                    self.0.as_raw_fd(),
                    buf,
                    nix::sys::socket::MsgFlags::MSG_NOSIGNAL,
                )
                .map_err(std::io::Error::from)
            });
            match sent {
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
                other => return Poll::Ready(other),
            }
        }
    }

    fn poll_flush(
        self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn poll_shutdown(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.0).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_parts_cannot_change_the_route() {
        let p = ApiPath::new("/api/v1/services")
            .segment("all/start?")
            .segment("stop");
        assert_eq!(p.as_str(), "/api/v1/services/all%2Fstart%3F/stop");
        assert_eq!(
            ApiPath::new("/api/v1/services")
                .segment("..")
                .segment(".")
                .as_str(),
            "/api/v1/services/%2E%2E/%2E"
        );
        let q = ApiPath::new("/api/v1/report")
            .query("since", "7d&x=1#y")
            .query("n", 5);
        assert_eq!(q.as_str(), "/api/v1/report?since=7d%26x%3D1%23y&n=5");
        assert_eq!(
            ApiPath::new("/api/v1/x").segment("a.b-c_d~é").as_str(),
            "/api/v1/x/a.b-c_d~%C3%A9"
        );
    }

    #[test]
    fn an_answer_without_a_json_error_says_what_was_asked() {
        let path = ApiPath::new("/api/v1/nosuch");
        let b = error_body(StatusCode::NOT_FOUND, &Method::GET, &path, b"");
        assert_eq!(
            b.error,
            "the daemon answered GET /api/v1/nosuch with 404 Not Found and no message"
        );
        assert!(b.hint.unwrap().contains("another version"));
        let b = error_body(StatusCode::BAD_GATEWAY, &Method::POST, &path, b" oops\n");
        assert_eq!(
            b.error,
            "the daemon answered POST /api/v1/nosuch with 502 Bad Gateway: oops"
        );
        let json = br#"{"error":"no service named `x`","hint":"h"}"#;
        let b = error_body(StatusCode::NOT_FOUND, &Method::GET, &path, json);
        assert_eq!(
            (b.error.as_str(), b.hint.as_deref()),
            ("no service named `x`", Some("h"))
        );
    }
}
