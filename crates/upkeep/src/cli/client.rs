//! The CLI's client of the daemon's JSON API, over the Unix socket in the data dir.

use std::path::{Path, PathBuf};

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
    #[error("{}", body.error)]
    Api { status: StatusCode, body: ErrorBody },
    #[error("talking to the daemon at {socket}: {message}")]
    Protocol { socket: PathBuf, message: String },
}

impl ClientError {
    pub fn hint(&self) -> Option<String> {
        match self {
            ClientError::NoDaemon { .. } => Some(tr(Msg::NoDaemonHint, &[])),
            ClientError::Api { body, .. } => body.hint.clone(),
            ClientError::Protocol { .. } => None,
        }
    }
}

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
        path: &str,
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
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| self.protocol(e))?;
        tokio::spawn(conn);
        let req = Request::builder()
            .method(method)
            .uri(path)
            .header("host", "upkeep")
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(body.unwrap_or_default())))
            .map_err(|e| self.protocol(e))?;
        let resp = sender
            .send_request(req)
            .await
            .map_err(|e| self.protocol(e))?;
        if resp.status().is_success() {
            return Ok(resp);
        }
        let status = resp.status();
        let bytes = self.read_body(resp).await?;
        let body = serde_json::from_slice(&bytes).unwrap_or_else(|_| ErrorBody {
            error: format!("{status}: {}", String::from_utf8_lossy(&bytes)),
            hint: None,
        });
        Err(ClientError::Api { status, body })
    }

    async fn read_body(&self, resp: Response<Incoming>) -> Result<Bytes, ClientError> {
        Ok(resp
            .into_body()
            .collect()
            .await
            .map_err(|e| self.protocol(e))?
            .to_bytes())
    }

    pub async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, ClientError> {
        self.json(Method::GET, path, None::<&()>).await
    }

    pub async fn post<T: DeserializeOwned>(
        &self,
        path: &str,
        body: Option<&impl Serialize>,
    ) -> Result<T, ClientError> {
        self.json(Method::POST, path, body).await
    }

    pub async fn delete<T: DeserializeOwned>(&self, path: &str) -> Result<T, ClientError> {
        self.json(Method::DELETE, path, None::<&()>).await
    }

    async fn json<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<&impl Serialize>,
    ) -> Result<T, ClientError> {
        let body = body.map(|b| serde_json::to_vec(b).expect("request bodies serialise"));
        let resp = self.send(method, path, body).await?;
        let bytes = self.read_body(resp).await?;
        serde_json::from_slice(&bytes).map_err(|e| self.protocol(format!("unexpected answer: {e}")))
    }
}
