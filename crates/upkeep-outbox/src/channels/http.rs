//! Posting JSON over HTTP and reading the answer, once for every HTTP channel.
//!
//! [`Poster::post`] sends a body exactly as given (signatures are computed over those bytes)
//! and sorts the outcome the same way for every receiver: no answer (refused, reset, timed
//! out) and 408, 429 and 5xx answers are worth a retry, with the receiver's `Retry-After`
//! when it sent one; any other 4xx, or a redirect (a POST is not followed), is permanent. A
//! 2xx comes back as an [`Answer`] for the channel to read: chat bots answer 200 and put
//! their verdict in the body. Errors never carry the URL, which may hold a bot's credential,
//! nor a part of it that the receiver's answer repeats (a 404 page that echoes the path:
//! break-it, session 11).

use std::time::Duration;

use jiff::Timestamp;
use reqwest::StatusCode;
use reqwest::header::{CONTENT_TYPE, HeaderMap, RETRY_AFTER};
use upkeep_core::Clock;

use crate::channel::SendError;

/// A pooled HTTP client with one channel's timeout.
pub(crate) struct Poster {
    client: reqwest::Client,
    clock: Clock,
}

/// A 2xx answer.
pub(crate) struct Answer {
    pub body: bytes::Bytes,
}

impl Answer {
    /// The body as JSON; a 2xx that is not what the vendor documents is worth a retry (a
    /// proxy's page), not a success.
    pub fn json<T: serde::de::DeserializeOwned>(&self, what: &str) -> Result<T, SendError> {
        serde_json::from_slice(&self.body).map_err(|e| {
            SendError::retry(format!(
                "{what} answered 2xx with a body that is not its JSON: {}",
                snippet(&self.body)
            ))
            .caused_by(e)
        })
    }
}

impl Poster {
    pub fn new(timeout: Duration, clock: Clock) -> Poster {
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("upkeep/", env!("CARGO_PKG_VERSION")))
            .build()
            .expect("an HTTP client with these settings always builds");
        Poster { client, clock }
    }

    pub fn now(&self) -> Timestamp {
        self.clock.now()
    }

    /// Posts `body` (JSON) to `url` with `headers` and sorts the answer; `what` names the
    /// receiver in messages.
    pub async fn post(
        &self,
        what: &str,
        url: url::Url,
        headers: &[(&'static str, String)],
        body: Vec<u8>,
    ) -> Result<Answer, SendError> {
        self.exchange(what, url, headers, body)
            .await?
            .classify(what)
    }

    /// Posts like [`Poster::post`] but hands back any answer, for receivers that say more
    /// in an error's body than in its headers (Telegram's `retry_after`).
    pub async fn exchange(
        &self,
        what: &str,
        url: url::Url,
        headers: &[(&'static str, String)],
        body: Vec<u8>,
    ) -> Result<Reply, SendError> {
        let secrets = secrets_of(&url);
        let mut request = self
            .client
            .post(url)
            .header(CONTENT_TYPE, "application/json; charset=utf-8")
            .body(body);
        for (name, value) in headers {
            request = request.header(*name, value);
        }
        let response = request.send().await.map_err(|e| {
            let e = e.without_url();
            let reason = if e.is_timeout() {
                format!("{what} did not answer in time")
            } else if e.is_connect() {
                format!("cannot connect to {what}")
            } else {
                format!("sending to {what} failed")
            };
            if e.is_builder() {
                SendError::permanent(reason).caused_by(e)
            } else {
                SendError::retry(reason).caused_by(e)
            }
        })?;
        let status = response.status();
        let retry_after = retry_after(response.headers(), self.now());
        let body = response.bytes().await.map_err(|e| {
            SendError::retry(format!("{what} broke off its answer")).caused_by(e.without_url())
        })?;
        Ok(Reply {
            status,
            retry_after,
            body: redacted(body, &secrets),
        })
    }
}

/// Any answer, before it is sorted.
pub(crate) struct Reply {
    pub status: StatusCode,
    pub retry_after: Option<Duration>,
    pub body: bytes::Bytes,
}

impl Reply {
    pub fn classify(self, what: &str) -> Result<Answer, SendError> {
        classify(what, self.status, self.retry_after, self.body)
    }
}

fn classify(
    what: &str,
    status: StatusCode,
    after: Option<Duration>,
    body: bytes::Bytes,
) -> Result<Answer, SendError> {
    if status.is_success() {
        return Ok(Answer { body });
    }
    let reason = format!("{what} answered {status}: {}", snippet(&body));
    if status == StatusCode::TOO_MANY_REQUESTS
        || status == StatusCode::REQUEST_TIMEOUT
        || status.is_server_error()
    {
        Err(SendError::retry_after(after, reason))
    } else if status.is_redirection() {
        Err(SendError::permanent(format!(
            "{what} answered {status}: redirects are not followed; configure the final URL"
        )))
    } else {
        Err(SendError::permanent(reason))
    }
}

/// `Retry-After` as seconds or as an HTTP date (RFC 9110 §10.2.3); a date in the past is
/// "now".
fn retry_after(headers: &HeaderMap, now: Timestamp) -> Option<Duration> {
    let value = headers.get(RETRY_AFTER)?.to_str().ok()?.trim();
    parse_retry_after(value, now)
}

pub(crate) fn parse_retry_after(value: &str, now: Timestamp) -> Option<Duration> {
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = jiff::fmt::rfc2822::parse(value).ok()?.timestamp();
    Some(Duration::try_from(at.duration_since(now)).unwrap_or(Duration::ZERO))
}

/// The parts of `url` that may be a credential: its path, its query, its password, and each
/// path segment and query value long enough to be a token, as written and decoded.
fn secrets_of(url: &url::Url) -> Vec<String> {
    const TOKEN: usize = 6;
    fn add(out: &mut Vec<String>, s: &str, min: usize) {
        if s.len() >= min && !out.iter().any(|o| o == s) {
            out.push(s.to_owned());
        }
    }
    let mut out: Vec<String> = Vec::new();
    add(&mut out, url.path(), 2);
    if let Some(q) = url.query() {
        add(&mut out, q, 1);
    }
    if let Some(p) = url.password() {
        add(&mut out, p, 1);
    }
    for segment in url.path_segments().into_iter().flatten() {
        add(&mut out, segment, TOKEN);
        // Telegram's `bot<token>`: an answer may name the token alone.
        if let Some(token) = segment.strip_prefix("bot") {
            add(&mut out, token, TOKEN);
        }
    }
    for (_, value) in url.query_pairs() {
        add(&mut out, &value, TOKEN);
    }
    for raw in out.clone() {
        add(&mut out, &percent_decoded(&raw), TOKEN);
    }
    // The longest first, so that a path is hidden whole rather than piece by piece.
    out.sort_by_key(|s| std::cmp::Reverse(s.len()));
    out
}

fn percent_decoded(s: &str) -> String {
    url::form_urlencoded::parse(format!("x={s}").as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default()
}

/// `body` with every secret of [`secrets_of`] replaced by `[redacted]`: what a receiver
/// answers ends up in logs, `notify ls` and the admin pages.
fn redacted(body: bytes::Bytes, secrets: &[String]) -> bytes::Bytes {
    let found = |b: &[u8], s: &[u8]| b.windows(s.len()).position(|w| w == s);
    if !secrets.iter().any(|s| found(&body, s.as_bytes()).is_some()) {
        return body;
    }
    let mut out = body.to_vec();
    for secret in secrets {
        let s = secret.as_bytes();
        let mut from = 0;
        while let Some(i) = found(&out[from..], s) {
            let at = from + i;
            out.splice(at..at + s.len(), b"[redacted]".iter().copied());
            from = at + b"[redacted]".len();
        }
    }
    bytes::Bytes::from(out)
}

/// The start of a body, on one line, for messages.
pub(crate) fn snippet(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let mut s: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(200)
        .collect();
    if text.chars().count() > 200 {
        s.push('…');
    }
    if s.trim().is_empty() {
        "(empty body)".into()
    } else {
        s.trim().to_owned()
    }
}

/// Cuts `s` to at most `max` bytes on a character boundary (vendors count bytes).
pub(crate) fn cut_bytes(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// Cuts `s` to at most `max` characters (vendors count characters).
pub(crate) fn cut_chars(s: &str, max: usize) -> String {
    s.chars().take(max).collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn an_answer_never_repeats_the_urls_secrets() {
        let url: url::Url =
            "https://api.example/bot123456:AAsecret/sendMessage?access_token=Q%2Fsecret9"
                .parse()
                .unwrap();
        let secrets = super::secrets_of(&url);
        let body = bytes::Bytes::from(
            "{\"description\":\"no route /bot123456:AAsecret/sendMessage; token 123456:AAsecret, Q/secret9\"}",
        );
        let text = String::from_utf8(super::redacted(body, &secrets).to_vec()).unwrap();
        assert!(!text.contains("secret"), "{text}");
        assert!(
            text.starts_with("{\"description\":\"no route [redacted];"),
            "{text}"
        );
        // Still the receiver's JSON, for the channels that read their verdict from it.
        serde_json::from_str::<serde_json::Value>(&text).unwrap();
        // A body without them is the same bytes.
        let plain = bytes::Bytes::from_static(b"{\"ok\":false}");
        assert_eq!(super::redacted(plain.clone(), &secrets), plain);
    }

    use super::*;

    #[test]
    fn retry_after_takes_seconds_or_a_date() {
        let now: Timestamp = "2015-10-21T07:27:00Z".parse().unwrap();
        assert_eq!(parse_retry_after("7", now), Some(Duration::from_secs(7)));
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now),
            Some(Duration::from_secs(60))
        );
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:00:00 GMT", now),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after("soon", now), None);
    }

    #[test]
    fn answers_sort_into_retry_and_permanent() {
        let body = || bytes::Bytes::from_static(b"{\"error\":\"x\"}");
        let after = Some(Duration::from_secs(3));
        let e = classify("hook", StatusCode::TOO_MANY_REQUESTS, after, body()).err();
        assert_eq!(e.unwrap().retry_delay(), after);
        for s in [502, 503, 500, 408] {
            let e = classify("hook", StatusCode::from_u16(s).unwrap(), None, body()).err();
            assert!(!e.unwrap().is_permanent(), "{s}");
        }
        for s in [400, 401, 403, 404, 410, 301] {
            let e = classify("hook", StatusCode::from_u16(s).unwrap(), None, body()).err();
            assert!(e.unwrap().is_permanent(), "{s}");
        }
        assert!(classify("hook", StatusCode::NO_CONTENT, None, body()).is_ok());
    }

    #[test]
    fn cuts_keep_characters_whole() {
        assert_eq!(cut_bytes("维护", 4), "维");
        assert_eq!(cut_bytes("ab", 4), "ab");
        assert_eq!(cut_chars("维护中", 2), "维护");
        assert_eq!(snippet(b"a\nb"), "a b");
    }
}
