//! Signing in and out: `GET /admin/login` (the form), `POST /admin/login`, `POST /admin/logout`.
//!
//! Attempts are throttled before a password is checked, per account and per client address
//! (governor, as the subscription form is): guessing one account's password is slow from any
//! number of addresses, and one address cannot walk through many accounts. Past a quota the
//! answer is a 429 with `Retry-After`, whatever the password. Every attempt counts, good or
//! bad, so the throttle says nothing about whether a password was right.
//!
//! The login form has no session yet, so its CSRF token is a double submit: a random value in
//! a cookie of its own (`SameSite=Strict`) and the same in a hidden field; with the Origin
//! check, another site can neither read nor forge the pair (login CSRF would sign a victim in
//! as the attacker).

use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::Request;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use governor::{DefaultKeyedRateLimiter, Quota};
use serde::Deserialize;

use super::{Accounts, LOGIN_COOKIE, SESSION_COOKIE, cookie, render, same_origin, set_cookie};
use crate::Peer;
use crate::api::AppState;

/// Attempts one account may take at once, then one every [`ACCOUNT_REFILL`].
const ACCOUNT_BURST: u32 = 5;
const ACCOUNT_REFILL: Duration = Duration::from_secs(20);
/// Attempts one address may take at once (a few people behind one NAT), then one every
/// [`ADDRESS_REFILL`].
const ADDRESS_BURST: u32 = 20;
const ADDRESS_REFILL: Duration = Duration::from_secs(3);
/// Keys kept before quiet ones are dropped (a scan from many addresses costs memory only
/// while it lasts).
const MAX_KEYS: usize = 10_000;

#[derive(Clone)]
struct Throttle {
    accounts: Arc<DefaultKeyedRateLimiter<String>>,
    addresses: Arc<DefaultKeyedRateLimiter<IpAddr>>,
}

fn quota(burst: u32, refill: Duration) -> Quota {
    Quota::with_period(refill)
        .expect("a non-zero period")
        .allow_burst(NonZeroU32::new(burst).expect("a non-zero burst"))
}

impl Throttle {
    fn new() -> Throttle {
        Throttle {
            accounts: Arc::new(governor::RateLimiter::keyed(quota(
                ACCOUNT_BURST,
                ACCOUNT_REFILL,
            ))),
            addresses: Arc::new(governor::RateLimiter::keyed(quota(
                ADDRESS_BURST,
                ADDRESS_REFILL,
            ))),
        }
    }

    /// Takes one attempt for `user` from `addr`; the wait in seconds when either is spent.
    fn take(&self, user: &str, addr: Option<IpAddr>) -> Result<(), u64> {
        let clock = governor::clock::DefaultClock::default();
        let wait = |n: governor::NotUntil<governor::clock::QuantaInstant>| {
            n.wait_time_from(governor::clock::Clock::now(&clock))
                .as_secs()
                .max(1)
        };
        if self.addresses.len() > MAX_KEYS {
            self.addresses.retain_recent();
        }
        if self.accounts.len() > MAX_KEYS {
            self.accounts.retain_recent();
        }
        if let Some(addr) = addr {
            self.addresses.check_key(&addr).map_err(wait)?;
        }
        // Names are compared as typed; an unknown one is throttled like a known one.
        self.accounts.check_key(&user.to_owned()).map_err(wait)
    }
}

#[derive(Clone)]
struct LoginState {
    accounts: Arc<dyn Accounts>,
    throttle: Throttle,
}

pub(super) fn routes(accounts: Arc<dyn Accounts>) -> Router<AppState> {
    let state = LoginState {
        accounts,
        throttle: Throttle::new(),
    };
    Router::new()
        .route("/admin/login", get(form).post(sign_in))
        .route("/admin/logout", post(sign_out))
        .route("/admin", get(|| async { Redirect::to("/admin/services") }))
        .route("/admin/", get(|| async { Redirect::to("/admin/services") }))
        .layer(axum::Extension(state))
}

/// The login form, with a fresh double-submit token.
async fn form(headers: HeaderMap) -> Response {
    login_page(&headers, StatusCode::OK, None)
}

fn login_page(headers: &HeaderMap, status: StatusCode, error: Option<&str>) -> Response {
    let token = match super::pages::random_token() {
        Ok(t) => t,
        Err(e) => return e.into_response(),
    };
    let page = render::login(headers, &token, error);
    let mut resp = (status, page).into_response();
    if let Ok(v) = set_cookie(headers, LOGIN_COOKIE, &token, Duration::from_secs(3600)).parse() {
        resp.headers_mut().insert(header::SET_COOKIE, v);
    }
    resp
}

/// Whether reading a body failed because it is larger than its cap (and not, say, because
/// the client went away).
fn is_length_limit(e: &axum::Error) -> bool {
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(c) = cause {
        if c.is::<http_body_util::LengthLimitError>() {
            return true;
        }
        cause = c.source();
    }
    false
}

#[derive(Deserialize)]
struct Credentials {
    user: String,
    password: String,
    #[serde(default)]
    csrf: String,
}

async fn sign_in(axum::Extension(state): axum::Extension<LoginState>, req: Request) -> Response {
    let headers = req.headers().clone();
    let addr = match req.extensions().get::<Peer>() {
        Some(Peer::Remote(a)) => Some(a.ip()),
        _ => None,
    };
    if let Err(why) = same_origin(&headers) {
        return render::problem(&headers, StatusCode::FORBIDDEN, why);
    }
    let limits = req
        .extensions()
        .get::<crate::Limits>()
        .copied()
        .unwrap_or(crate::Limits::TCP);
    // Larger than the listener takes: a 413 (said up front or found on reading). Its time
    // is bounded by the request's deadline, as every route's is (`arrival.rs`).
    let too_large = || {
        render::problem(
            &headers,
            StatusCode::PAYLOAD_TOO_LARGE,
            &format!(
                "the form is larger than {} KiB",
                limits.max_body_bytes / 1024
            ),
        )
    };
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limits.max_body_bytes as u64) {
        return too_large();
    }
    let body = match axum::body::to_bytes(req.into_body(), limits.max_body_bytes).await {
        Ok(b) => b,
        Err(e) if is_length_limit(&e) => return too_large(),
        Err(_) => {
            return render::problem(
                &headers,
                StatusCode::BAD_REQUEST,
                "the form did not arrive whole",
            );
        }
    };
    let Ok(c) = serde_urlencoded::from_bytes::<Credentials>(&body) else {
        return login_page(
            &headers,
            StatusCode::BAD_REQUEST,
            Some("send a user name and a password"),
        );
    };
    let expected = cookie(&headers, LOGIN_COOKIE).unwrap_or("");
    if !super::token_matches(Some(&c.csrf), expected) {
        return render::problem(
            &headers,
            StatusCode::FORBIDDEN,
            "this login form is stale (its CSRF token does not match): reload the page and try again",
        );
    }
    // No account has a longer password: refused before the throttle and any hashing.
    if c.password.len() > upkeep_core::account::MAX_PASSWORD {
        let wrong = render::word(&headers, "wrong_password");
        return login_page(&headers, StatusCode::UNAUTHORIZED, Some(&wrong));
    }
    if let Err(secs) = state.throttle.take(&c.user, addr) {
        tracing::warn!(user = %c.user, ?addr, "admin login throttled");
        let mut resp = login_page(
            &headers,
            StatusCode::TOO_MANY_REQUESTS,
            Some(&render::word(&headers, "throttled").replace("{s}", &secs.to_string())),
        );
        if let Ok(v) = secs.to_string().parse() {
            resp.headers_mut().insert(header::RETRY_AFTER, v);
        }
        return resp;
    }
    match state.accounts.check_password(&c.user, &c.password).await {
        Ok(true) => {}
        Ok(false) => {
            tracing::info!(user = %c.user, ?addr, "admin login refused");
            let wrong = render::word(&headers, "wrong_password");
            return login_page(&headers, StatusCode::UNAUTHORIZED, Some(&wrong));
        }
        // Too many sign-ins being checked (or the store away): said on the form, with when
        // to come back, rather than as a bare API error.
        Err(crate::ApiError::Unavailable { message, .. }) => {
            tracing::warn!(user = %c.user, ?addr, "admin login not checked: {message}");
            let mut resp = login_page(
                &headers,
                StatusCode::SERVICE_UNAVAILABLE,
                Some(&render::word(&headers, "unavailable")),
            );
            resp.headers_mut()
                .insert(header::RETRY_AFTER, header::HeaderValue::from_static("2"));
            return resp;
        }
        Err(e) => return e.into_response(),
    }
    let opened = match state.accounts.open_session(&c.user).await {
        Ok(o) => o,
        Err(e) => return e.into_response(),
    };
    tracing::info!(user = %c.user, ?addr, "admin signed in");
    let mut resp = Redirect::to("/admin/services").into_response();
    let h = resp.headers_mut();
    let session = set_cookie(&headers, SESSION_COOKIE, &opened.secret, opened.lifetime);
    let spent = set_cookie(&headers, LOGIN_COOKIE, "", Duration::ZERO);
    for v in [session, spent] {
        if let Ok(v) = v.parse() {
            h.append(header::SET_COOKIE, v);
        }
    }
    resp
}

/// Ends the session. Outside the gate (a stale page may still sign out), but it must come
/// from this site and carry the session's token, like any form.
async fn sign_out(
    axum::Extension(state): axum::Extension<LoginState>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    if let Err(why) = same_origin(&headers) {
        return render::problem(&headers, StatusCode::FORBIDDEN, why);
    }
    if let Some(secret) = cookie(&headers, SESSION_COOKIE) {
        match state.accounts.session(secret).await {
            Ok(Some(s)) => {
                let sent = super::form_field(&body, "csrf");
                if !super::token_matches(sent.as_deref(), &s.csrf) {
                    return render::problem(
                        &headers,
                        StatusCode::FORBIDDEN,
                        "this form is stale (its CSRF token does not match): reload the page and try again",
                    );
                }
                if let Err(e) = state.accounts.close_session(secret).await {
                    return e.into_response();
                }
                tracing::info!(user = %s.user, "admin signed out");
            }
            Ok(None) => {}
            Err(e) => return e.into_response(),
        }
    }
    let mut resp = Redirect::to("/admin/login").into_response();
    if let Ok(v) = set_cookie(&headers, SESSION_COOKIE, "", Duration::ZERO).parse() {
        resp.headers_mut().insert(header::SET_COOKIE, v);
    }
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_account_is_throttled_from_any_address() {
        let t = Throttle::new();
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "10.0.0.2".parse().unwrap();
        for i in 0..ACCOUNT_BURST {
            let from = if i % 2 == 0 { a } else { b };
            assert!(t.take("ada", Some(from)).is_ok(), "attempt {i}");
        }
        assert!(t.take("ada", Some("10.0.0.3".parse().unwrap())).is_err());
        assert!(
            t.take("bob", Some(a)).is_ok(),
            "another account is not held up"
        );
    }

    #[test]
    fn an_address_is_throttled_across_accounts() {
        let t = Throttle::new();
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        for i in 0..ADDRESS_BURST {
            assert!(t.take(&format!("user{i}"), Some(a)).is_ok(), "attempt {i}");
        }
        let wait = t.take("someone", Some(a)).unwrap_err();
        assert!(wait >= 1);
        assert!(t.take("someone", Some("10.0.0.9".parse().unwrap())).is_ok());
    }
}
