//! `kind = "http"`: a request answered with an accepted status (and body), in time.
//!
//! Owns the http probe's keys (`url`, `method`, `headers`, `status`, `body_contains`,
//! `body_regex`, `follow_redirects`, `tls_verify`, `degraded_after`), their defaults and checks,
//! and [`HttpProbeConfig`]. What passes here is what the HTTP client can send: the URL is
//! parsed, headers are checked, the regex compiles. It sends nothing:
//! `upkeep-probes/src/kinds/http.rs` does. Input: the probe's own keys, sorted out by `mod.rs`,
//! and its `timeout`; output: `ProbeKind::Http`, or problems.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Deserialize;

use super::{ProbeKind, ProbeSite, RawKind, Validator};
use crate::bounds;
use crate::validate::show;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawHttpProbe {
    url: Option<String>,
    /// GET when absent.
    method: Option<String>,
    #[serde(default)]
    headers: BTreeMap<String, String>,
    status: Option<Vec<u16>>,
    body_contains: Option<String>,
    body_regex: Option<String>,
    /// Off when absent: a redirect usually means the health URL is wrong.
    follow_redirects: Option<bool>,
    /// On when absent.
    tls_verify: Option<bool>,
    degraded_after: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct HttpProbeConfig {
    pub url: String,
    pub method: String,
    pub headers: Vec<(String, String)>,
    /// Accepted status codes; empty means any 2xx or 3xx.
    pub status: Vec<u16>,
    pub body_contains: Option<String>,
    /// Validated here; compiled by the probe.
    pub body_regex: Option<String>,
    pub follow_redirects: bool,
    pub tls_verify: bool,
    /// A healthy answer slower than this makes the service degraded. Shorter than the
    /// probe's `timeout`.
    pub degraded_after: Option<Duration>,
}

const EXAMPLE: &str = "url = \"http://127.0.0.1:8080/health\"";
const METHODS: &[&str] = &["GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "PATCH"];

impl RawKind for RawHttpProbe {
    const NAME: &'static str = "http";

    fn validate(self, v: &mut Validator<'_>, at: &ProbeSite<'_>) -> Option<ProbeKind> {
        let url = at.needs(v, "url", self.url, EXAMPLE)?;
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            v.problem(
                &at.key("url"),
                format!("`{url}` is not an http:// or https:// URL"),
                None,
            );
        } else if let Err(e) = url::Url::parse(&url) {
            // The parser the HTTP client uses: what passes here, the probe can request.
            // (`http://` alone has no host; the probe would fail on every check.)
            v.problem(
                &at.key("url"),
                format!("url `{url}` is not a valid URL: {e}"),
                Some(format!("e.g. {EXAMPLE}")),
            );
        }
        let method = self.method.as_deref().unwrap_or("GET").to_ascii_uppercase();
        if !METHODS.contains(&method.as_str()) {
            v.problem(
                &at.key("method"),
                format!("unknown HTTP method `{method}`"),
                None,
            );
        }
        if let Some(codes) = &self.status
            && let Some(bad) = codes.iter().find(|c| !(100..=599).contains(*c))
        {
            v.problem(
                &at.key("status"),
                format!("{bad} is not an HTTP status code"),
                None,
            );
        }
        if let Some(re) = &self.body_regex
            && let Err(e) = regex::Regex::new(re)
        {
            v.problem(
                &at.key("body_regex"),
                format!("invalid regular expression: {e}"),
                None,
            );
        }
        check_headers(v, at, &self.headers);
        let degraded_after = self
            .degraded_after
            .as_deref()
            .and_then(|d| v.duration(&at.key("degraded_after"), d, bounds::DEGRADED_AFTER));
        // No healthy answer is slower than the timeout: it would never be degraded.
        if let (Some(d), Some(t)) = (degraded_after, at.timeout)
            && d >= t
        {
            v.problem(
                &at.key("degraded_after"),
                format!(
                    "degraded_after ({}) must be shorter than the probe's timeout ({}), or no answer could ever be degraded",
                    show(d),
                    show(t)
                ),
                Some("lower degraded_after, or raise timeout".into()),
            );
        }
        Some(ProbeKind::Http(HttpProbeConfig {
            url,
            method,
            headers: self.headers.into_iter().collect(),
            status: self.status.unwrap_or_default(),
            body_contains: self.body_contains,
            body_regex: self.body_regex,
            follow_redirects: self.follow_redirects.unwrap_or(false),
            tls_verify: self.tls_verify.unwrap_or(true),
            degraded_after,
        }))
    }
}

/// Headers as the HTTP client checks them: a bad one would fail every request.
fn check_headers(v: &mut Validator<'_>, at: &ProbeSite<'_>, headers: &BTreeMap<String, String>) {
    for (name, value) in headers {
        let key = at.path(["headers".to_owned(), name.clone()]);
        if http::HeaderName::from_bytes(name.as_bytes()).is_err() {
            v.problem(
                &key,
                format!("`{}` is not a valid HTTP header name", name.escape_debug()),
                Some("header names are letters, digits and `-`, e.g. X-Health-Token".into()),
            );
        }
        // The value is not shown: it may be a token.
        if http::HeaderValue::from_str(value).is_err() {
            v.problem(
                &key,
                format!(
                    "the value of header `{}` holds a character HTTP does not allow (a newline, a NUL or another control character)",
                    name.escape_debug()
                ),
                None,
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::super::tests::{SVC, check, located, one_problem};
    use super::super::tests::refused;
    use super::super::tests::{kind_of, probe};
    use super::*;

    const HTTP: &str = "[[services.web.probes]]\nkind = \"http\"\n";

    #[test]
    fn takes_a_url_with_defaults_for_the_rest() {
        let ProbeKind::Http(h) = kind_of(&probe(
            "kind = \"http\"\nurl = \"https://127.0.0.1:1/health\"\nmethod = \"head\"",
        )) else {
            panic!("not an http probe")
        };
        assert_eq!(h.url, "https://127.0.0.1:1/health");
        assert_eq!(h.method, "HEAD");
        assert!(h.status.is_empty() && h.headers.is_empty());
        assert!(!h.follow_redirects && h.tls_verify);
        assert_eq!(h.degraded_after, None);
    }

    #[test]
    fn refuses_a_bad_method_status_or_regex_at_its_key() {
        let url = "kind = \"http\"\nurl = \"http://127.0.0.1:1/\"";
        for (line, key, column, message) in [
            (
                "method = \"FETCH\"",
                "method",
                10,
                "unknown HTTP method `FETCH`",
            ),
            (
                "status = [200, 99]",
                "status",
                10,
                "99 is not an HTTP status code",
            ),
            (
                "body_regex = \"(\"",
                "body_regex",
                14,
                "invalid regular expression",
            ),
            (
                "status = [\"ok\"]",
                "status.0",
                11,
                "invalid type: string, expected u16",
            ),
        ] {
            let (p, text) = refused(&format!("{url}\n{line}"), key, 6, column);
            assert!(p.message.contains(message), "{text}");
        }
        let (p, text) = refused("kind = \"http\"", "kind", 4, 8);
        assert!(p.message.contains("needs `url`"), "{text}");
    }

    #[test]
    fn refuses_keys_of_other_kinds() {
        let (p, _) = refused(
            "kind = \"http\"\nurl = \"http://127.0.0.1:1/\"\naddr = \"127.0.0.1:1\"",
            "addr",
            6,
            8,
        );
        assert_eq!(p.message, "`addr` does not apply to an http probe");
    }

    #[test]
    fn urls_and_headers_must_be_requestable() {
        // Issue: no host, so every check failed with a client error.
        let (p, text) = one_problem(&format!("{SVC}{HTTP}url = \"http://\"\n"));
        located(&p, &text, "services.web.probes.0.url", 5, 7);
        assert!(p.message.contains("empty host"), "{text}");
        let ok_url = "url = \"http://127.0.0.1:1/\"\n";
        let (p, text) = one_problem(&format!(
            "{SVC}{HTTP}{ok_url}headers = {{ \"Bad Name\" = \"x\" }}\n"
        ));
        located(&p, &text, "services.web.probes.0.headers.Bad Name", 6, 26);
        assert!(p.message.contains("header name"), "{text}");
        let (p, text) = one_problem(&format!(
            "{SVC}{HTTP}{ok_url}headers = {{ Authorization = \"Bearer s3cret\\nX-Injected: 1\" }}\n"
        ));
        located(
            &p,
            &text,
            "services.web.probes.0.headers.Authorization",
            6,
            29,
        );
        assert!(p.message.contains("header `Authorization`"), "{text}");
        assert!(
            !text.contains("s3cret"),
            "a header value may be a secret: {text}"
        );
        check(&format!(
            "{SVC}{HTTP}{ok_url}headers = {{ X-Token = \"abc\", Accept = \"text/plain; q=0.9\" }}\n"
        ))
        .unwrap();
    }

    #[test]
    fn probe_timeout_may_exceed_every_but_degraded_after_may_not_exceed_timeout() {
        // Defined rather than rejected: checks never overlap (see `ProbeConfig::timeout`),
        // and tests and the bench rely on a timeout longer than `every`.
        let probe = "[[services.web.probes]]\nkind = \"http\"\nurl = \"http://127.0.0.1:1/\"\n";
        let c = check(&format!(
            "{SVC}{probe}every = \"100ms\"\ntimeout = \"1s\"\n"
        ))
        .unwrap();
        let web = c.services.values().next().unwrap();
        assert_eq!(web.probes[0].timeout, Duration::from_secs(1));
        let (p, text) = one_problem(&format!(
            "{SVC}{probe}timeout = \"1s\"\ndegraded_after = \"1s\"\n"
        ));
        located(&p, &text, "services.web.probes.0.degraded_after", 7, 18);
        assert!(
            p.message.contains("shorter than the probe's timeout (1s)"),
            "{text}"
        );
    }
}
