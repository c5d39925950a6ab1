//! `smtp`: email through an SMTP server (lettre on tokio, TLS by rustls), over a pool of
//! connections.
//!
//! The URL says how to talk: `smtp://` plain (a relay on this host), `smtp+starttls://` or
//! `submission://` upgrading with STARTTLS (port 587), `smtps://` TLS from the first byte
//! (port 465). The password comes from `password_env` or `password_file`, never from the
//! config or the URL, and is never shown. Each message is multipart (plain text and HTML);
//! its Message-ID is `<key@domain-of-from>`, so a resend after a crash is the same message to
//! every mail system that deduplicates; a recipient with an unsubscribe URL gets
//! `List-Unsubscribe` and `List-Unsubscribe-Post: List-Unsubscribe=One-Click` (RFC 8058).
//! SMTP's own verdicts decide: a 4xx reply or no connection is worth a retry, a 5xx reply
//! (no such user, refused) or an invalid address is permanent.
//!
//! Connections: for `smtp://` and STARTTLS the channel keeps connections of its own (up to
//! `pool_size` idle ones, checked with NOOP before reuse) on sockets with `TCP_NODELAY`:
//! lettre writes a message's body and its final `.` in two writes, and with Nagle's algorithm
//! the second waits for the server's delayed ACK (40 ms on Linux), which held one connection
//! to about 17 messages a second whatever the server (measured by `bench/outbox`). lettre's
//! own pool has no hook for socket options; `smtps://` (TLS from the first byte) still uses
//! it.

use std::time::Duration;

use async_trait::async_trait;
use lettre::address::Envelope;
use lettre::message::header::{HeaderName, HeaderValue};
use lettre::message::{Mailbox, MultiPart};
use lettre::transport::smtp::authentication::{Credentials, Mechanism};
use lettre::transport::smtp::client::{AsyncSmtpConnection, Certificate, Tls, TlsParameters};
use lettre::transport::smtp::extension::ClientId;
use lettre::transport::smtp::{AsyncSmtpTransport, PoolConfig};
use lettre::{AsyncTransport, Message, Tokio1Executor};
use serde::Deserialize;

use crate::channel::{Channel, Delivery, SendError};
use crate::config::{BuildContext, Check, ConfigErrors, is_loopback};
use crate::notice::{IdempotencyKey, Recipient};
use crate::render::Rendered;

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SmtpConfig {
    /// `smtp://host[:port]`, `smtp+starttls://`, `submission://` or `smtps://`.
    pub url: String,
    /// The sender: `upkeep <noreply@example.com>`; its domain names Message-IDs.
    pub from: String,
    pub reply_to: Option<String>,
    pub username: Option<String>,
    pub password_env: Option<String>,
    pub password_file: Option<String>,
    /// A PEM file of a CA to trust besides the public ones (a private mail relay).
    pub ca_file: Option<String>,
    /// Connections kept open to the server (default 4).
    pub pool_size: Option<u32>,
    pub timeout: Option<String>,
}

pub(crate) struct Smtp {
    /// What it was built from ([`SmtpConfig::settings`]): a reload that builds the same keeps
    /// this one, and its open connections.
    settings: [u8; 32],
    connections: Connections,
    /// For the whole exchange: lettre's own timeout covers connecting only, so a server that
    /// takes the connection and never speaks would hold a send for ever.
    timeout: Duration,
    from: Mailbox,
    reply_to: Option<Mailbox>,
}

const LIST_UNSUBSCRIBE: HeaderName = HeaderName::new_from_ascii_str("List-Unsubscribe");
const LIST_UNSUBSCRIBE_POST: HeaderName = HeaderName::new_from_ascii_str("List-Unsubscribe-Post");

impl SmtpConfig {
    pub(crate) fn build(&self, name: &str, ctx: &BuildContext) -> Result<Smtp, ConfigErrors> {
        let mut c = Check::new(ctx);
        let endpoint = endpoint(&mut c, &self.url);
        let from = mailbox(&mut c, "from", &self.from);
        let reply_to = self
            .reply_to
            .as_ref()
            .and_then(|r| mailbox(&mut c, "reply_to", r));
        let password = c.secret("password", &self.password_env, &self.password_file, false);
        let ca_pem = self
            .ca_file
            .as_ref()
            .and_then(|f| Some((f, c.read_file("ca_file", f)?)));
        let settings = self.settings(password.as_ref().map(|p| p.expose()), ca_pem.as_ref());
        let credentials = match (&self.username, password) {
            (Some(user), Some(pw)) => Some(Credentials::new(user.clone(), pw.expose().into())),
            (None, None) => None,
            (user, _) => {
                let missing = if user.is_some() {
                    "password"
                } else {
                    "user name"
                };
                c.problem(
                    "username",
                    format!("the {missing} is missing"),
                    Some("set username and one of password_env or password_file, or none".into()),
                );
                None
            }
        };
        let plain = endpoint
            .as_ref()
            .is_some_and(|e| matches!(e.mode, Mode::Plain));
        if plain
            && credentials.is_some()
            && !endpoint.as_ref().is_some_and(|e| is_loopback(&e.host))
        {
            c.problem(
                "url",
                "smtp:// sends the password unencrypted to another host",
                Some("use submission:// (STARTTLS) or smtps://".into()),
            );
        }
        let ca = ca_pem.and_then(|(f, pem)| {
            Certificate::from_pem(&pem)
                .map_err(|e| {
                    c.problem(
                        "ca_file",
                        format!("{f} is not a PEM certificate ({e})"),
                        None,
                    )
                })
                .ok()
        });
        if ca.is_some() && plain {
            c.problem("ca_file", "ca_file is for TLS; smtp:// has none", None);
        }
        let pool_size = self.pool_size.unwrap_or(4);
        if !(1..=64).contains(&pool_size) {
            c.problem(
                "pool_size",
                format!("pool_size {pool_size} is not between 1 and 64"),
                None,
            );
        }
        let timeout = c.timeout(&self.timeout);
        // lettre's pool starts a task as it is built (and another as it is dropped).
        if tokio::runtime::Handle::try_current().is_err() {
            c.problem(
                "kind",
                "an SMTP channel must be built inside a tokio runtime",
                None,
            );
        }
        let (Some(endpoint), Some(from)) = (endpoint, from) else {
            return c.finish(name, None);
        };
        let tls = match tls(endpoint.mode, &endpoint.host, ca) {
            Ok(tls) => tls,
            Err(e) => {
                c.problem(
                    "url",
                    format!("cannot set up TLS for {} ({e})", endpoint.host),
                    None,
                );
                return c.finish(name, None);
            }
        };
        if !c.is_clean() {
            return c.finish(name, None);
        }
        let connections = match tls {
            Tls::Wrapper(_) => {
                let pool = PoolConfig::new().max_size(pool_size).idle_timeout(IDLE);
                let mut builder =
                    AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&endpoint.host)
                        .port(endpoint.port)
                        .tls(tls)
                        .timeout(Some(timeout))
                        .pool_config(pool);
                if let Some(credentials) = credentials {
                    builder = builder.credentials(credentials);
                }
                Connections::Lettre(builder.build())
            }
            Tls::Required(params) => {
                Connections::Own(Own::new(endpoint, Some(params), credentials, pool_size))
            }
            _ => Connections::Own(Own::new(endpoint, None, credentials, pool_size)),
        };
        c.finish(
            name,
            Some(Smtp {
                settings,
                connections,
                timeout,
                from,
                reply_to,
            }),
        )
    }
}

impl SmtpConfig {
    /// A digest of the config and of the values it names (the password, the CA file's
    /// bytes): the same for a reload that changes nothing of this channel, another for a
    /// rotated password file.
    fn settings(&self, password: Option<&str>, ca: Option<&(&String, Vec<u8>)>) -> [u8; 32] {
        use sha2::{Digest, Sha256};
        let mut h = Sha256::new();
        // Each part with its length first: no two different inputs run together alike.
        for part in [
            format!("{self:?}").as_bytes(),
            password.unwrap_or_default().as_bytes(),
            ca.map_or(&[][..], |(_, pem)| pem.as_slice()),
        ] {
            h.update((part.len() as u64).to_le_bytes());
            h.update(part);
        }
        h.finalize().into()
    }
}

/// Where the server is and how to talk to it, from the URL.
struct Endpoint {
    mode: Mode,
    host: String,
    port: u16,
}

fn endpoint(c: &mut Check, text: &str) -> Option<Endpoint> {
    let hint = || {
        Some("e.g. url = \"submission://mail.example.com\" (STARTTLS on 587) or \"smtps://mail.example.com\"".into())
    };
    let url = url::Url::parse(text)
        .map_err(|e| c.problem("url", format!("`{text}` is not a URL ({e})"), hint()))
        .ok()?;
    if !url.username().is_empty() || url.password().is_some() {
        // Not repeated: it may hold a password.
        c.problem(
            "url",
            "the URL holds a user name or password; a config must not",
            Some(
                "write the user in username and the password in password_env or password_file"
                    .into(),
            ),
        );
        return None;
    }
    let (mode, port) = match url.scheme() {
        "smtp" => (Mode::Plain, 25),
        "smtp+starttls" | "submission" => (Mode::StartTls, 587),
        "smtps" => (Mode::Tls, 465),
        other => {
            c.problem("url", format!("`{other}://` is not an SMTP URL"), hint());
            return None;
        }
    };
    match url.host_str() {
        Some(host) if !host.is_empty() => Some(Endpoint {
            mode,
            host: host.to_owned(),
            port: url.port().unwrap_or(port),
        }),
        _ => {
            c.problem("url", "the URL names no host", hint());
            None
        }
    }
}

#[derive(Debug, Clone, Copy)]
enum Mode {
    Plain,
    StartTls,
    Tls,
}

fn tls(
    mode: Mode,
    host: &str,
    ca: Option<Certificate>,
) -> Result<Tls, lettre::transport::smtp::Error> {
    let params = || {
        let mut b = TlsParameters::builder(host.to_owned());
        if let Some(ca) = ca {
            b = b.add_root_certificate(ca);
        }
        b.build_rustls()
    };
    Ok(match mode {
        Mode::Plain => Tls::None,
        Mode::StartTls => Tls::Required(params()?),
        Mode::Tls => Tls::Wrapper(params()?),
    })
}

fn mailbox(c: &mut Check, field: &str, text: &str) -> Option<Mailbox> {
    // A name alone (`upkeep <>`) may parse, but leaves Message-IDs without a domain.
    let parsed = text
        .parse::<Mailbox>()
        .ok()
        .filter(|m| !m.email.domain().is_empty());
    if parsed.is_none() {
        let hint = Some("e.g. \"upkeep <noreply@example.com>\"".into());
        c.problem(field, format!("`{text}` is not an email address"), hint);
    }
    parsed
}

impl Smtp {
    fn message(
        &self,
        to: &Recipient,
        notice: &Rendered,
        key: &IdempotencyKey,
    ) -> Result<Message, SendError> {
        let to_box: Mailbox = to.address.parse().map_err(|e| {
            SendError::permanent(format!("`{}` is not an email address", to.address)).caused_by(e)
        })?;
        let mut b = Message::builder()
            .from(self.from.clone())
            .to(to_box)
            .subject(notice.subject.clone())
            .message_id(Some(message_id(key, &self.from)));
        if let Some(r) = &self.reply_to {
            b = b.reply_to(r.clone());
        }
        if let Some(url) = &to.unsubscribe {
            b = b
                .raw_header(HeaderValue::new(LIST_UNSUBSCRIBE, format!("<{url}>")))
                .raw_header(HeaderValue::new(
                    LIST_UNSUBSCRIBE_POST,
                    "List-Unsubscribe=One-Click".into(),
                ));
        }
        b.multipart(MultiPart::alternative_plain_html(
            notice.text.clone(),
            notice.html.clone(),
        ))
        .map_err(|e| SendError::permanent("the message cannot be built").caused_by(e))
    }
}

/// Why `text` is not an address a message can go to, if it is not.
pub(crate) fn check_address(text: &str) -> Result<(), String> {
    match text.parse::<Mailbox>() {
        Ok(m) if !m.email.domain().is_empty() => Ok(()),
        _ => Err(format!("`{text}` is not an email address")),
    }
}

/// `<key@domain-of-from>`: the same for every attempt of one delivery.
fn message_id(key: &IdempotencyKey, from: &Mailbox) -> String {
    format!("<{key}@{}>", from.email.domain())
}

#[async_trait]
impl Channel for Smtp {
    fn kind(&self) -> &'static str {
        "smtp"
    }

    fn settings(&self) -> Option<[u8; 32]> {
        Some(self.settings)
    }

    async fn send(
        &self,
        to: &Recipient,
        notice: &Rendered,
        key: &IdempotencyKey,
    ) -> Result<Delivery, SendError> {
        let message = self.message(to, notice, key)?;
        let id = message_id(key, &self.from);
        let send = async {
            match &self.connections {
                Connections::Lettre(t) => t.send(message).await.map(drop).map_err(classify),
                Connections::Own(own) => own.send(message.envelope(), &message.formatted()).await,
            }
        };
        match tokio::time::timeout(self.timeout, send).await {
            Ok(Ok(())) => Ok(Delivery { id: Some(id) }),
            Ok(Err(e)) => Err(e),
            Err(_) => Err(SendError::retry(format!(
                "the mail server did not finish within {}s",
                self.timeout.as_secs_f32()
            ))),
        }
    }
}

/// How long an idle connection is kept.
const IDLE: Duration = Duration::from_secs(60);

/// How messages reach the server.
enum Connections {
    /// `smtps://`: lettre's pooled transport.
    Lettre(AsyncSmtpTransport<Tokio1Executor>),
    /// `smtp://` and STARTTLS: connections of our own, with `TCP_NODELAY`.
    Own(Own),
}

struct Own {
    host: String,
    port: u16,
    /// STARTTLS, required.
    starttls: Option<TlsParameters>,
    credentials: Option<Credentials>,
    hello: ClientId,
    /// Idle connections and when each was last used. A std Mutex: never held across an
    /// await.
    idle: std::sync::Mutex<Vec<(AsyncSmtpConnection, std::time::Instant)>>,
    keep: usize,
}

impl Own {
    fn new(
        endpoint: Endpoint,
        starttls: Option<TlsParameters>,
        credentials: Option<Credentials>,
        keep: u32,
    ) -> Own {
        Own {
            host: endpoint.host,
            port: endpoint.port,
            starttls,
            credentials,
            hello: ClientId::default(),
            idle: Default::default(),
            keep: keep as usize,
        }
    }

    async fn send(&self, envelope: &Envelope, email: &[u8]) -> Result<(), SendError> {
        let mut conn = loop {
            let kept = self.idle.lock().unwrap_or_else(|e| e.into_inner()).pop();
            match kept {
                // The server may have closed it meanwhile: NOOP says.
                Some((mut c, at)) => {
                    if at.elapsed() < IDLE && c.test_connected().await {
                        break c;
                    }
                    c.abort().await;
                }
                None => break self.connect().await?,
            }
        };
        match conn.send(envelope, email).await {
            Ok(_) => {
                let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
                if idle.len() < self.keep {
                    idle.push((conn, std::time::Instant::now()));
                }
                Ok(())
            }
            Err(e) => {
                conn.abort().await;
                Err(classify(e))
            }
        }
    }

    async fn connect(&self) -> Result<AsyncSmtpConnection, SendError> {
        let tcp = tokio::net::TcpStream::connect((self.host.as_str(), self.port))
            .await
            .map_err(|e| SendError::retry("cannot connect to the mail server").caused_by(e))?;
        // See the top of this file: without it each message waits out a delayed ACK.
        let _ = tcp.set_nodelay(true);
        let mut conn = AsyncSmtpConnection::connect_with_transport(Box::new(tcp), &self.hello)
            .await
            .map_err(classify)?;
        if let Some(params) = &self.starttls {
            if !conn.can_starttls() {
                conn.abort().await;
                // Often a server the operator can fix; the notice waits for it.
                return Err(SendError::retry("the mail server does not offer STARTTLS"));
            }
            conn.starttls(params.clone(), &self.hello)
                .await
                .map_err(classify)?;
        }
        if let Some(credentials) = &self.credentials {
            conn.auth(&[Mechanism::Plain, Mechanism::Login], credentials)
                .await
                .map_err(classify)?;
        }
        Ok(conn)
    }
}

fn classify(e: lettre::transport::smtp::Error) -> SendError {
    let code = e.status().map(|c| c.to_string()).unwrap_or_default();
    if e.is_permanent() {
        SendError::permanent(format!("the mail server refused the message ({code})")).caused_by(e)
    } else if e.is_transient() {
        SendError::retry(format!("the mail server deferred the message ({code})")).caused_by(e)
    } else if e.is_client() {
        SendError::permanent("the message cannot be sent as built").caused_by(e)
    } else if e.is_timeout() {
        SendError::retry("the mail server did not answer in time").caused_by(e)
    } else if e.is_tls() {
        // Often a certificate the operator can fix; the notice waits for it.
        SendError::retry("TLS with the mail server failed").caused_by(e)
    } else {
        SendError::retry("cannot talk to the mail server").caused_by(e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(url: &str) -> SmtpConfig {
        SmtpConfig {
            url: url.into(),
            from: "upkeep <noreply@example.com>".into(),
            reply_to: None,
            username: None,
            password_env: None,
            password_file: None,
            ca_file: None,
            pool_size: None,
            timeout: None,
        }
    }

    fn problems(cfg: &SmtpConfig) -> String {
        let env = |k: &str| (k == "PW").then(|| "pw".to_owned());
        let ctx = BuildContext {
            clock: upkeep_core::Clock::system(),
            base_dir: ".".into(),
            env: &env,
        };
        cfg.build("mail", &ctx)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default()
    }

    #[tokio::test]
    async fn each_scheme_builds() {
        for url in [
            "smtp://127.0.0.1:2525",
            "submission://mail.example.com",
            "smtp+starttls://mail.example.com:25",
            "smtps://mail.example.com",
        ] {
            assert_eq!(problems(&config(url)), "", "{url}");
        }
    }

    /// What a reload compares to keep a channel and its connections: the same config and
    /// secret give the same digest; a rotated password file or another setting, another.
    #[tokio::test]
    async fn the_settings_digest_covers_the_config_and_the_secrets_values() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("pw"), "first\n").unwrap();
        let env = |_: &str| None;
        let ctx = BuildContext {
            clock: upkeep_core::Clock::system(),
            base_dir: dir.path().into(),
            env: &env,
        };
        let mut cfg = config("submission://mail.example.com");
        cfg.username = Some("u".into());
        cfg.password_file = Some("pw".into());
        let digest = |cfg: &SmtpConfig| cfg.build("mail", &ctx).unwrap().settings().unwrap();
        let first = digest(&cfg);
        assert_eq!(digest(&cfg), first, "built again from the same");
        std::fs::write(dir.path().join("pw"), "second\n").unwrap();
        let rotated = digest(&cfg);
        assert_ne!(rotated, first, "the password file was rotated");
        cfg.timeout = Some("20s".into());
        assert_ne!(digest(&cfg), rotated, "the timeout changed");
    }

    #[test]
    fn every_problem_is_reported_at_once() {
        let mut cfg = config("http://user:hunter2@mail.example.com");
        cfg.from = "not an address".into();
        cfg.username = Some("u".into());
        cfg.pool_size = Some(0);
        let text = problems(&cfg);
        assert!(text.contains("holds a user name or password"), "{text}");
        cfg.url = "http://mail.example.com".into();
        assert!(problems(&cfg).contains("`http://` is not an SMTP URL"));
        assert!(
            text.contains("`not an address` is not an email address"),
            "{text}"
        );
        assert!(text.contains("the password is missing"), "{text}");
        assert!(text.contains("pool_size 0"), "{text}");
        assert!(!text.contains("hunter2"), "{text}");
    }

    #[tokio::test]
    async fn a_password_does_not_cross_the_network_in_clear() {
        let mut cfg = config("smtp://mail.example.com");
        cfg.username = Some("u".into());
        cfg.password_env = Some("PW".into());
        assert!(problems(&cfg).contains("unencrypted"));
        cfg.url = "smtp://127.0.0.1:2525".into();
        assert_eq!(problems(&cfg), "");
    }

    #[test]
    fn message_id_is_the_key_at_the_senders_domain() {
        let from: Mailbox = "upkeep <noreply@example.com>".parse().unwrap();
        let key = IdempotencyKey::new("n42.email").unwrap();
        assert_eq!(message_id(&key, &from), "<n42.email@example.com>");
    }
}
