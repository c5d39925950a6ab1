//! `http`: a request answered with an accepted status (and body), in time.
//!
//! All http probes share [`HttpClients`]: one connection pool per combination of redirect and
//! TLS-verification settings (reqwest fixes both per client), so a thousand probes against
//! one server reuse a handful of connections.

use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use upkeep_config::HttpProbeConfig;

use crate::probe::ProbeOutcome;

#[derive(Clone, Default)]
pub struct HttpClients {
    /// Indexed by (follow_redirects, tls_verify).
    clients: Arc<[OnceLock<reqwest::Client>; 4]>,
}

impl HttpClients {
    fn get(&self, follow_redirects: bool, tls_verify: bool) -> reqwest::Client {
        let i = (follow_redirects as usize) * 2 + tls_verify as usize;
        self.clients[i]
            .get_or_init(|| {
                let redirect = if follow_redirects {
                    reqwest::redirect::Policy::limited(10)
                } else {
                    reqwest::redirect::Policy::none()
                };
                reqwest::Client::builder()
                    .redirect(redirect)
                    .danger_accept_invalid_certs(!tls_verify)
                    .user_agent(concat!("upkeep/", env!("CARGO_PKG_VERSION")))
                    .pool_idle_timeout(Duration::from_secs(90))
                    // Enough for thousands of checks a second to one host (each holds a
                    // connection for about a millisecond); a burst beyond it (every probe
                    // starting at once) does not leave thousands of idle sockets behind.
                    .pool_max_idle_per_host(256)
                    .build()
                    .expect("an HTTP client with these settings always builds")
            })
            .clone()
    }
}

pub(crate) struct HttpProbe {
    cfg: HttpProbeConfig,
    client: reqwest::Client,
    regex: Option<regex::Regex>,
}

impl HttpProbe {
    pub fn new(cfg: &HttpProbeConfig, clients: &HttpClients) -> Self {
        Self {
            client: clients.get(cfg.follow_redirects, cfg.tls_verify),
            // Validated in config, so it compiles.
            regex: cfg
                .body_regex
                .as_deref()
                .and_then(|r| regex::Regex::new(r).ok()),
            cfg: cfg.clone(),
        }
    }

    pub async fn check(&self) -> ProbeOutcome {
        let start = Instant::now();
        let method =
            reqwest::Method::from_bytes(self.cfg.method.as_bytes()).unwrap_or(reqwest::Method::GET);
        let mut req = self.client.request(method, &self.cfg.url);
        for (k, v) in &self.cfg.headers {
            req = req.header(k, v);
        }
        let resp = match req.send().await {
            Ok(r) => r,
            Err(e) => return ProbeOutcome::down(describe(&e), start.elapsed()),
        };
        let code = resp.status().as_u16();
        let accepted = if self.cfg.status.is_empty() {
            (200..400).contains(&code)
        } else {
            self.cfg.status.contains(&code)
        };
        if !accepted {
            return ProbeOutcome::down(format!("HTTP {code}"), start.elapsed());
        }
        // Read the body even when nothing checks it: a connection whose answer was not read
        // to the end cannot go back to the pool, and a new connection per check leaves one
        // socket in TIME_WAIT per check (at thousands a second, the ephemeral ports run out).
        let body = match read_capped(resp).await {
            Ok(b) => b,
            Err(e) => {
                return ProbeOutcome::down(
                    format!("reading the body: {}", describe(&e)),
                    start.elapsed(),
                );
            }
        };
        if let Some(needle) = &self.cfg.body_contains
            && !body.contains(needle.as_str())
        {
            return ProbeOutcome::down(
                format!("HTTP {code}, body lacks `{needle}`"),
                start.elapsed(),
            );
        }
        if let Some(re) = &self.regex
            && !re.is_match(&body)
        {
            return ProbeOutcome::down(
                format!("HTTP {code}, body does not match /{}/", re.as_str()),
                start.elapsed(),
            );
        }
        let latency = start.elapsed();
        match self.cfg.degraded_after {
            Some(limit) if latency > limit => ProbeOutcome {
                healthy: true,
                degraded: true,
                reason: format!(
                    "HTTP {code} in {} ms, slower than {} ms",
                    latency.as_millis(),
                    limit.as_millis()
                ),
                latency,
            },
            _ => ProbeOutcome::up(format!("HTTP {code}"), latency),
        }
    }
}

/// `host:port` of a URL, to share a gate (the whole URL if it does not parse: validated
/// config always does).
pub(crate) fn host_of(url: &str) -> String {
    match reqwest::Url::parse(url) {
        Ok(u) => format!(
            "{}:{}",
            u.host_str().unwrap_or_default(),
            u.port_or_known_default().unwrap_or_default()
        ),
        Err(_) => url.to_owned(),
    }
}

/// Bodies past this are not read further (the connection is then closed, not pooled).
const MAX_BODY: usize = 1024 * 1024;

/// The body as text, at most [`MAX_BODY`] bytes of it.
async fn read_capped(mut resp: reqwest::Response) -> Result<String, reqwest::Error> {
    let mut body = Vec::new();
    while let Some(chunk) = resp.chunk().await? {
        body.extend_from_slice(&chunk);
        if body.len() >= MAX_BODY {
            body.truncate(MAX_BODY);
            break;
        }
    }
    Ok(String::from_utf8_lossy(&body).into_owned())
}

/// The innermost cause of a request error ("Connection refused (os error 111)"), which says
/// more than reqwest's outer "error sending request for url".
fn describe(e: &reqwest::Error) -> String {
    let mut inner: &dyn std::error::Error = e;
    while let Some(s) = inner.source() {
        inner = s;
    }
    if e.is_timeout() {
        "timed out".into()
    } else {
        inner.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_of_urls() {
        assert_eq!(host_of("http://127.0.0.1:8080/health"), "127.0.0.1:8080");
        assert_eq!(host_of("https://example.com/"), "example.com:443");
        assert_eq!(host_of("http://example.com"), "example.com:80");
    }
}
