//! The admin pages at `/admin` on the TCP API's listener (`daemon.listen`): people sign in
//! with a name and a password and act on services, maintenance windows, incidents, the outbox
//! and subscribers, and read feedback, each action recorded with their name.
//!
//! Why that listener: the pages act (start, stop, schedule), so they belong beside the API
//! that acts, never on `public_listen` (which publishes the status page and must publish
//! nothing else); the control socket needs no login (its peer is named by uid) and a browser
//! cannot reach it. An operator who keeps `listen` on loopback reaches the pages through an
//! SSH tunnel or a proxy; the public listener can face the internet without exposing them.
//!
//! Security, in this file: a session is a random secret in a cookie (`HttpOnly`,
//! `SameSite=Strict`, `Secure` when the request came over HTTPS, scoped to `/admin`), looked
//! up on every request through [`Accounts`] (which keeps only its hash, and ends it when it
//! expires or its user is removed). Every POST must come from this site (its `Origin`, or else
//! its `Referer`, names the host the request was sent to) and carry the session's CSRF token
//! in a hidden field; the login form carries a token of its own in a cookie and a field
//! (double submit), since it has no session yet. Login attempts are throttled per account and
//! per client address (`login.rs`). Pages are rendered with minijinja's HTML escaping and
//! served with a Content-Security-Policy that allows no inline script (`render.rs`).
//!
//! What each action does is [`crate::Control`]'s, the same calls the JSON API makes, with the
//! user as the [`Principal`]. Users themselves are managed from the host (`upkeep user ...`
//! over the control socket, `users.rs`), never from these pages. Start at [`routes`].
//! Layout: `login.rs` (sign in and out, throttling), `pages.rs` (the pages and their forms),
//! `incidents.rs` (incidents: updates, resolve, post-mortem; feedback), `paging.rs` (which
//! page of a list),
//! `render.rs` (templates, headers), `words.rs` (en and zh-CN), `users.rs` (the socket's
//! `/api/v1/users` routes), `assets/`.

mod incidents;
mod login;
mod pages;
mod paging;
mod render;
mod users;
mod words;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use axum::Router;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use upkeep_core::account::UserInfo;
use upkeep_core::{Principal, Via};

use crate::api::AppState;
use crate::{ApiError, Peer};

pub(crate) use users::routes as user_routes;

/// The session cookie's name.
const SESSION_COOKIE: &str = "upkeep_session";
/// The login form's own CSRF cookie (double submit: the form's field must match it).
const LOGIN_COOKIE: &str = "upkeep_login";

/// How long the lead-time policy asks windows to be announced (`[maintenance]`), shown on the
/// window form.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LeadTimeRule {
    /// Windows up to this long are short.
    pub short_max: Duration,
    pub short_notice: Duration,
    pub long_notice: Duration,
}

/// A session just opened: the secret goes to the browser, once.
pub struct Opened {
    pub secret: String,
    pub csrf: String,
    pub lifetime: Duration,
}

/// A live session.
#[derive(Debug, Clone)]
pub struct Session {
    pub user: String,
    pub csrf: String,
}

/// Users and sessions, which the daemon keeps in its store.
#[async_trait]
pub trait Accounts: Send + Sync + 'static {
    /// Whether `password` is `user`'s. An unknown user costs the same work as a known one
    /// (a hash is checked either way), so the answer's timing does not tell names apart.
    async fn check_password(&self, user: &str, password: &str) -> Result<bool, ApiError>;
    async fn open_session(&self, user: &str) -> Result<Opened, ApiError>;
    /// The live session whose secret is `secret`, if any.
    async fn session(&self, secret: &str) -> Result<Option<Session>, ApiError>;
    async fn close_session(&self, secret: &str) -> Result<(), ApiError>;
    async fn users(&self) -> Result<Vec<UserInfo>, ApiError>;
    async fn add_user(
        &self,
        name: &str,
        password: &str,
        by: &Principal,
    ) -> Result<UserInfo, ApiError>;
    /// Sets a new password and ends the user's sessions.
    async fn set_password(
        &self,
        name: &str,
        password: &str,
        by: &Principal,
    ) -> Result<(), ApiError>;
    /// Removes a user and ends its sessions.
    async fn remove_user(&self, name: &str, by: &Principal) -> Result<(), ApiError>;
    /// The lead-time policy in force.
    fn lead_time(&self) -> LeadTimeRule;
}

/// The admin pages, for the TCP API's router; nothing when the daemon keeps no accounts.
pub(crate) fn routes(accounts: Option<Arc<dyn Accounts>>) -> Router<AppState> {
    let Some(accounts) = accounts else {
        return Router::new();
    };
    // Layers run outside in: the body is read within the listener's caps first, then the
    // gate finds the session and checks the form's token in it.
    let gated = pages::routes()
        .route_layer(axum::middleware::from_fn_with_state(accounts.clone(), gate))
        .route_layer(axum::middleware::from_fn(crate::serve::bounded_body))
        .route_layer(axum::middleware::from_fn(refusals_as_pages));
    login::routes(accounts)
        .merge(gated)
        .merge(render::asset_routes())
        .layer(axum::middleware::map_response(render::secure))
}

/// A form too large for the listener is refused by `bounded_body` in the API's JSON, before
/// any page's code runs: a browser that sent the form gets a page saying so, like every
/// other refusal of the admin pages (break-it, session 10).
async fn refusals_as_pages(req: Request, next: Next) -> Response {
    let headers = req.headers().clone();
    let answer = next.run(req).await;
    let json = answer
        .headers()
        .get(axum::http::header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
    if answer.status() != StatusCode::PAYLOAD_TOO_LARGE || !json {
        return answer;
    }
    let bytes = axum::body::to_bytes(answer.into_body(), 64 * 1024)
        .await
        .unwrap_or_default();
    let said: serde_json::Value = serde_json::from_slice(&bytes).unwrap_or_default();
    let message = said["error"].as_str().unwrap_or("the form is too large");
    render::problem(&headers, StatusCode::PAYLOAD_TOO_LARGE, message)
}

/// The page for a request to the admin pages not whole within its deadline (`arrival.rs`
/// answers it, past the router): `message` with the admin pages' headers.
pub(crate) async fn late_page(headers: &HeaderMap, message: &str) -> Response {
    render::secure(render::problem(
        headers,
        StatusCode::REQUEST_TIMEOUT,
        message,
    ))
    .await
}

/// The signed-in user's CSRF token, for the forms of a page.
#[derive(Clone)]
pub(crate) struct Csrf(pub String);

/// Finds the session; refuses a POST from elsewhere or without the session's CSRF token;
/// puts the user as the [`Principal`] and its [`Csrf`] into the request.
async fn gate(State(accounts): State<Arc<dyn Accounts>>, req: Request, next: Next) -> Response {
    let session = match cookie(req.headers(), SESSION_COOKIE) {
        Some(secret) => match accounts.session(secret).await {
            Ok(s) => s,
            Err(e) => return e.into_response(),
        },
        None => None,
    };
    let Some(session) = session else {
        if req.method() == Method::GET {
            return Redirect::to("/admin/login").into_response();
        }
        return refuse(
            req.headers(),
            "sign in first: this session is over or unknown",
        );
    };
    let (parts, body) = req.into_parts();
    if parts.method == Method::POST {
        if let Err(why) = same_origin(&parts.headers) {
            return refuse(&parts.headers, why);
        }
        // The body is in memory already (`bounded_body` read it within the listener's caps).
        let bytes = match axum::body::to_bytes(body, usize::MAX).await {
            Ok(b) => b,
            Err(_) => return refuse(&parts.headers, "the form did not arrive whole"),
        };
        if !token_matches(form_field(&bytes, "csrf").as_deref(), &session.csrf) {
            return refuse(
                &parts.headers,
                "this form is stale or was not sent from the admin pages (its CSRF token does not match): reload the page and try again",
            );
        }
        let req = Request::from_parts(parts, axum::body::Body::from(bytes));
        return next.run(with_user(req, session)).await;
    }
    next.run(with_user(Request::from_parts(parts, body), session))
        .await
}

fn with_user(mut req: Request, session: Session) -> Request {
    let from = req.extensions().get::<Peer>().and_then(Peer::remote);
    req.extensions_mut().insert(Principal {
        name: session.user,
        via: Via::Session,
        from,
    });
    req.extensions_mut().insert(Csrf(session.csrf));
    req
}

/// A 403 page in the reader's language.
fn refuse(headers: &HeaderMap, why: &str) -> Response {
    render::problem(headers, StatusCode::FORBIDDEN, why)
}

/// The value of cookie `name` in the request, if it has one.
fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|c| c.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
        .filter(|v| !v.is_empty())
}

/// A form field of an `application/x-www-form-urlencoded` body.
fn form_field(body: &[u8], name: &str) -> Option<String> {
    serde_urlencoded::from_bytes::<Vec<(String, String)>>(body)
        .ok()?
        .into_iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v)
}

/// Compares a submitted token with the expected one in constant time.
fn token_matches(sent: Option<&str>, expected: &str) -> bool {
    use subtle::ConstantTimeEq;
    match sent {
        Some(s) => !expected.is_empty() && bool::from(s.as_bytes().ct_eq(expected.as_bytes())),
        None => false,
    }
}

/// Whether the request came over HTTPS: from a proxy that says so (`X-Forwarded-Proto` or
/// `Forwarded: proto=https`). Believing a client that lies about it only makes its own cookie
/// `Secure`, which costs it nothing but the cookie.
fn over_https(headers: &HeaderMap) -> bool {
    let forwarded_proto = headers
        .get("x-forwarded-proto")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("https"));
    let forwarded = headers
        .get_all(header::FORWARDED)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split([';', ',']))
        .any(|p| p.trim().eq_ignore_ascii_case("proto=https"));
    forwarded_proto || forwarded
}

/// A `Set-Cookie` value for the admin pages.
fn set_cookie(headers: &HeaderMap, name: &str, value: &str, max_age: Duration) -> String {
    let secure = if over_https(headers) { "; Secure" } else { "" };
    format!(
        "{name}={value}; Path=/admin; HttpOnly; SameSite=Strict; Max-Age={}{secure}",
        max_age.as_secs()
    )
}

/// A POST must come from a page of this site: its `Origin` (or, without one, its `Referer`)
/// must name the host the request was sent to. Browsers send `Origin` with every form POST;
/// a request with neither is refused.
pub(crate) fn same_origin(headers: &HeaderMap) -> Result<(), &'static str> {
    let host = headers
        .get("x-forwarded-host")
        .or_else(|| headers.get(header::HOST))
        .and_then(|v| v.to_str().ok())
        .map(|h| h.trim().to_ascii_lowercase())
        .ok_or("the request names no host")?;
    let claimed = headers
        .get(header::ORIGIN)
        .or_else(|| headers.get(header::REFERER))
        .and_then(|v| v.to_str().ok())
        .ok_or("a form must be sent from the admin pages (the request has no Origin)")?;
    let authority = claimed
        .split_once("://")
        .map(|(_, rest)| rest.split(['/', '?', '#']).next().unwrap_or(""))
        .unwrap_or("")
        .to_ascii_lowercase();
    if authority == host {
        Ok(())
    } else {
        Err("this form was sent from another site (its Origin is not this host)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn a_post_must_come_from_this_host() {
        let ok = |h: &[(&'static str, &str)]| same_origin(&headers(h)).is_ok();
        assert!(ok(&[
            ("host", "127.0.0.1:8080"),
            ("origin", "http://127.0.0.1:8080")
        ]));
        assert!(ok(&[
            ("host", "ops.example"),
            ("origin", "https://OPS.example")
        ]));
        assert!(ok(&[
            ("host", "ops.example"),
            ("referer", "https://ops.example/admin/windows?x=1")
        ]));
        assert!(!ok(&[
            ("host", "ops.example"),
            ("origin", "https://evil.example")
        ]));
        assert!(!ok(&[("host", "ops.example"), ("origin", "null")]));
        assert!(!ok(&[("host", "ops.example")]));
        assert!(!ok(&[("origin", "https://ops.example")]));
        assert!(!ok(&[
            ("host", "ops.example"),
            ("origin", "https://ops.example.evil.example")
        ]));
    }

    #[test]
    fn cookies_are_found_by_exact_name() {
        let h = headers(&[("cookie", "lang=en; upkeep_session_x=1; upkeep_session=abc")]);
        assert_eq!(cookie(&h, SESSION_COOKIE), Some("abc"));
        assert_eq!(cookie(&h, LOGIN_COOKIE), None);
    }

    #[test]
    fn a_cookie_is_secure_behind_https_only() {
        let plain = set_cookie(&HeaderMap::new(), "a", "b", Duration::from_secs(60));
        assert_eq!(
            plain,
            "a=b; Path=/admin; HttpOnly; SameSite=Strict; Max-Age=60"
        );
        let tls = set_cookie(
            &headers(&[("x-forwarded-proto", "https")]),
            "a",
            "b",
            Duration::from_secs(60),
        );
        assert!(tls.ends_with("; Secure"), "{tls}");
        let fwd = headers(&[("forwarded", "for=1.2.3.4;proto=https")]);
        assert!(over_https(&fwd));
    }

    #[test]
    fn tokens_match_exactly() {
        assert!(token_matches(Some("abc"), "abc"));
        assert!(!token_matches(Some("abd"), "abc"));
        assert!(!token_matches(Some(""), ""));
        assert!(!token_matches(None, "abc"));
        assert_eq!(
            form_field(b"a=1&csrf=x%20y", "csrf").as_deref(),
            Some("x y")
        );
    }
}
