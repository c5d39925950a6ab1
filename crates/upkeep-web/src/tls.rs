//! HTTPS on the TCP listeners (`[daemon] tls`, issue 17 item 6): `listen` and
//! `public_listen` serve TLS themselves, from a certificate and key the config has read and
//! checked (upkeep-config's `validate/tls.rs`), through rustls on ring.
//!
//! - **The handshake is part of the connection's wait for its request.** [`serve`](crate::serve)
//!   admits a connection (per-address cap, listener cap) before its handshake, so a client
//!   that opens TCP and never sends a ClientHello counts against its address and is a
//!   *waiting* connection, shed for a newcomer when the listener fills like any idle socket
//!   (`admission.rs`); and the handshake has the head's deadline (`Limits::header_timeout`),
//!   so it cannot hold its slot for longer than an idle plain connection could.
//! - **A renewed certificate is served without dropping the listener.** [`Tls::renew`] swaps
//!   the certificate the next handshakes get (a reload reads the files again: certbot's
//!   renewals); connections already open keep theirs.
//! - HTTP/1.1 only (ALPN `http/1.1`), as the listeners serve no HTTP/2.
//!
//! Not here: reading and checking the PEM files (config), the accept loop (`serve.rs`).

use std::sync::{Arc, RwLock};
use std::time::Duration;

use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;
use tokio_util::sync::CancellationToken;

/// A TCP listener's TLS: the certificate it serves, renewable while it runs. Cheap to clone;
/// clones share the certificate (both listeners serve the one `[daemon] tls` names).
#[derive(Clone)]
pub struct Tls {
    acceptor: TlsAcceptor,
    current: Arc<Current>,
}

impl std::fmt::Debug for Tls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tls").finish_non_exhaustive()
    }
}

/// The certificate the next handshake gets.
#[derive(Debug)]
struct Current(RwLock<Arc<CertifiedKey>>);

impl ResolvesServerCert for Current {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(match self.0.read() {
            Ok(key) => key.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        })
    }
}

impl Tls {
    /// Serves `certified` (a chain and its key, checked to match).
    pub fn new(certified: Arc<CertifiedKey>) -> Tls {
        let current = Arc::new(Current(RwLock::new(certified)));
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            // ring's provider supports them: cannot fail.
            .expect("ring supports TLS 1.2 and 1.3")
            .with_no_client_auth()
            .with_cert_resolver(current.clone());
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Tls {
            acceptor: TlsAcceptor::from(Arc::new(config)),
            current,
        }
    }

    /// Serves `certified` from the next handshake on (a renewed certificate); connections
    /// already open keep the one they were given.
    pub fn renew(&self, certified: Arc<CertifiedKey>) {
        match self.current.0.write() {
            Ok(mut key) => *key = certified,
            Err(poisoned) => *poisoned.into_inner() = certified,
        }
    }

    /// The handshake on a connection just admitted: None when it fails, takes longer than
    /// `deadline`, or the connection is shed for a newcomer or the listener closes first.
    pub(crate) async fn accept<Io>(
        &self,
        io: Io,
        deadline: Duration,
        shed: &CancellationToken,
        cancel: &CancellationToken,
    ) -> Option<TlsStream<Io>>
    where
        Io: AsyncRead + AsyncWrite + Unpin,
    {
        tokio::select! {
            done = tokio::time::timeout(deadline, self.acceptor.accept(io)) => match done {
                Ok(Ok(stream)) => Some(stream),
                Ok(Err(e)) => {
                    tracing::debug!("TLS handshake failed: {e}");
                    None
                }
                Err(_) => {
                    tracing::debug!("TLS handshake not done within {}s", deadline.as_secs());
                    None
                }
            },
            _ = shed.cancelled() => None,
            _ = cancel.cancelled() => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::serve::{Limits, serve_with};

    /// A self-signed certificate for `localhost`, loaded; its DER for the client to trust.
    fn certificate() -> (
        Arc<CertifiedKey>,
        rustls::pki_types::CertificateDer<'static>,
    ) {
        let c = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
        let der = c.cert.der().clone();
        let key = rustls::pki_types::PrivateKeyDer::try_from(c.key_pair.serialize_der()).unwrap();
        let signing = rustls::crypto::ring::default_provider()
            .key_provider
            .load_private_key(key)
            .unwrap();
        (Arc::new(CertifiedKey::new(vec![der.clone()], signing)), der)
    }

    /// A client trusting `roots` alone.
    fn connector(
        roots: &[rustls::pki_types::CertificateDer<'static>],
    ) -> tokio_rustls::TlsConnector {
        let mut store = rustls::RootCertStore::empty();
        for r in roots {
            store.add(r.clone()).unwrap();
        }
        let config = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(store)
        .with_no_client_auth();
        tokio_rustls::TlsConnector::from(Arc::new(config))
    }

    /// A listener of `max` connections serving `/` over TLS with `tls`.
    async fn listener(tls: Tls, limits: Limits) -> std::net::SocketAddr {
        let app = axum::Router::new().route("/", axum::routing::get(|| async { "hello" }));
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        tokio::spawn(async move {
            serve_with(l, app, limits, &[], Some(tls), CancellationToken::new()).await;
        });
        addr
    }

    /// GET / over TLS trusting `roots`: the answer, or the error.
    async fn get(
        addr: std::net::SocketAddr,
        roots: &[rustls::pki_types::CertificateDer<'static>],
    ) -> std::io::Result<String> {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let tcp = tokio::net::TcpStream::connect(addr).await?;
        let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
        let mut s = connector(roots).connect(name, tcp).await?;
        s.write_all(b"GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
            .await?;
        let mut out = String::new();
        s.read_to_string(&mut out).await?;
        Ok(out)
    }

    #[tokio::test]
    async fn a_renewed_certificate_is_served_on_the_same_listener() {
        let (first, first_der) = certificate();
        let tls = Tls::new(first);
        let addr = listener(tls.clone(), Limits::TCP).await;
        let answer = get(addr, std::slice::from_ref(&first_der)).await.unwrap();
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
        assert!(answer.ends_with("hello"), "{answer}");
        let (second, second_der) = certificate();
        tls.renew(second);
        // The next handshake gets the new certificate: a client trusting only the old one
        // refuses it, one trusting the new one is served.
        let refused = get(addr, std::slice::from_ref(&first_der)).await;
        assert!(refused.is_err(), "{refused:?}");
        let answer = get(addr, &[second_der]).await.unwrap();
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    }

    #[tokio::test]
    async fn answers_over_tls_carry_hsts() {
        let (key, der) = certificate();
        let addr = listener(Tls::new(key), Limits::TCP).await;
        let answer = get(addr, &[der]).await.unwrap();
        let head = answer
            .split("\r\n\r\n")
            .next()
            .unwrap()
            .to_ascii_lowercase();
        assert!(
            head.contains("\r\nstrict-transport-security: max-age=31536000\r\n"),
            "{answer}"
        );
    }

    /// Break-it, session 10: the connection past the cap per address was answered a plain
    /// HTTP 503 on the TLS socket, garbage to a TLS client. It is closed unanswered.
    #[tokio::test]
    async fn a_connection_past_the_cap_per_address_is_closed_with_no_plain_text_written() {
        use tokio::io::AsyncReadExt;
        let (key, der) = certificate();
        let limits = Limits {
            per_address: 1,
            ..Limits::TCP
        };
        let addr = listener(Tls::new(key), limits).await;
        // The address's one connection, held (admitted, in its handshake's wait)...
        let held = tokio::net::TcpStream::connect(addr).await.unwrap();
        // ...so the next is past the cap: closed, nothing written (the bound only stops a
        // hang), and a TLS client sees a closed connection, not a bad record.
        let mut next = tokio::net::TcpStream::connect(addr).await.unwrap();
        let mut out = Vec::new();
        let read = tokio::time::timeout(Duration::from_secs(60), next.read_to_end(&mut out)).await;
        assert!(
            matches!(read, Ok(Ok(0)) | Ok(Err(_))),
            "{read:?}: {:?}",
            String::from_utf8_lossy(&out)
        );
        assert!(out.is_empty(), "{:?}", String::from_utf8_lossy(&out));
        let refused = get(addr, std::slice::from_ref(&der)).await.unwrap_err();
        assert!(
            !refused.to_string().contains("InvalidContentType"),
            "{refused}"
        );
        // Once the held one closes, the address is served again.
        drop(held);
        let mut served = None;
        for _ in 0..3000 {
            if let Ok(a) = get(addr, std::slice::from_ref(&der)).await {
                served = Some(a);
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let served = served.expect("served once the held connection closed");
        assert!(served.starts_with("HTTP/1.1 200"), "{served}");
    }

    #[tokio::test]
    async fn a_client_that_never_says_hello_gives_way_to_one_that_does() {
        let (key, der) = certificate();
        // A deadline far beyond the test: only giving way lets the client in.
        let limits = Limits {
            max_connections: 2,
            header_timeout: Duration::from_secs(3600),
            ..Limits::TCP
        };
        let addr = listener(Tls::new(key), limits).await;
        // Two sockets that never start a handshake fill the listener...
        let _silent = [
            tokio::net::TcpStream::connect(addr).await.unwrap(),
            tokio::net::TcpStream::connect(addr).await.unwrap(),
        ];
        // ...and a client that does is served all the same (past the cap, it would have
        // been answered a plain-text 503, which its handshake refuses).
        let answer = get(addr, std::slice::from_ref(&der)).await.unwrap();
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    }

    #[tokio::test]
    async fn a_handshake_has_the_heads_deadline() {
        use tokio::io::AsyncReadExt;
        let (key, _) = certificate();
        let limits = Limits {
            header_timeout: Duration::from_millis(200),
            ..Limits::TCP
        };
        let addr = listener(Tls::new(key), limits).await;
        let mut silent = tokio::net::TcpStream::connect(addr).await.unwrap();
        // Closed by the daemon, nothing sent (the bound only stops a hang).
        let mut buf = [0u8; 16];
        let read = tokio::time::timeout(Duration::from_secs(60), silent.read(&mut buf)).await;
        assert!(matches!(read, Ok(Ok(0)) | Ok(Err(_))), "{read:?}");
    }

    #[tokio::test]
    async fn plain_http_to_a_tls_listener_gets_no_answer() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let (key, _) = certificate();
        let addr = listener(Tls::new(key), Limits::TCP).await;
        let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
        s.write_all(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")
            .await
            .unwrap();
        let mut out = Vec::new();
        let _ = s.read_to_end(&mut out).await;
        assert!(!String::from_utf8_lossy(&out).contains("hello"));
        assert!(!out.starts_with(b"HTTP/1.1 200"), "{out:?}");
    }
}
