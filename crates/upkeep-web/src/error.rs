//! [`ApiError`]: every error answer of the API, as JSON `{ "error": ..., "hint": ... }`.
//!
//! Bad input is a 4xx with a message that says what to fix; internal failures are logged in
//! full and answered with a short generic 500, never a panic. A request without a valid token
//! is a 401 with `WWW-Authenticate: Bearer` (RFC 6750); a token without the scope a 403.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use upkeep_core::api::{ErrorBody, Scope};

#[derive(Debug)]
pub enum ApiError {
    BadRequest {
        message: String,
        hint: Option<String>,
    },
    NotFound(String),
    /// The path exists, the method does not (axum adds the `Allow` header).
    MethodNotAllowed(String),
    Conflict(String),
    /// The request was understood but cannot be applied (an invalid config on reload).
    Unprocessable {
        message: String,
        hint: Option<String>,
    },
    /// Something the daemon depends on (its store) fails for now: try again later.
    Unavailable {
        message: String,
        hint: Option<String>,
    },
    /// No token, or one that is not valid (unknown, revoked, malformed). `invalid`: a token
    /// was sent (the challenge then says `error="invalid_token"`).
    Unauthorized {
        message: String,
        invalid: bool,
    },
    /// A valid token without the scope the route needs.
    Forbidden {
        message: String,
        need: Scope,
    },
    /// The request body is larger than the listener allows.
    TooLarge(String),
    /// The request body did not arrive in time.
    Timeout(String),
    /// A budget shared by every client is spent for now (confirmation mails, feedback): a
    /// 429 with `Retry-After`.
    TooMany {
        message: String,
        retry_after: std::time::Duration,
    },
    /// A failure of the daemon's own: logged with its whole cause chain, answered with a
    /// short generic message.
    Internal(Box<dyn std::error::Error + Send + Sync>),
}

/// At most 200 characters of `text` (cut at a character boundary, marked with `…`): what an
/// error message may quote of what a client sent, so a megabyte of input is not echoed back.
pub fn clip(text: &str) -> String {
    const MAX: usize = 200;
    match text.char_indices().nth(MAX) {
        None => text.to_owned(),
        Some((at, _)) => format!("{}…", &text[..at]),
    }
}

impl ApiError {
    pub fn bad_request(message: impl Into<String>) -> Self {
        ApiError::BadRequest {
            message: message.into(),
            hint: None,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let challenge = match &self {
            ApiError::Unauthorized { invalid: false, .. } => Some("Bearer realm=\"upkeep\""),
            ApiError::Unauthorized { invalid: true, .. } => {
                Some("Bearer realm=\"upkeep\", error=\"invalid_token\"")
            }
            ApiError::Forbidden {
                need: Scope::Read, ..
            } => Some("Bearer realm=\"upkeep\", error=\"insufficient_scope\", scope=\"read\""),
            ApiError::Forbidden {
                need: Scope::Write, ..
            } => Some("Bearer realm=\"upkeep\", error=\"insufficient_scope\", scope=\"write\""),
            _ => None,
        };
        let (status, error, hint) = match self {
            ApiError::BadRequest { message, hint } => (StatusCode::BAD_REQUEST, message, hint),
            ApiError::NotFound(m) => (StatusCode::NOT_FOUND, m, None),
            ApiError::MethodNotAllowed(m) => (StatusCode::METHOD_NOT_ALLOWED, m, None),
            ApiError::Conflict(m) => (StatusCode::CONFLICT, m, None),
            ApiError::Unprocessable { message, hint } => {
                (StatusCode::UNPROCESSABLE_ENTITY, message, hint)
            }
            ApiError::Unavailable { message, hint } => {
                tracing::warn!(%message, "answering 503");
                (StatusCode::SERVICE_UNAVAILABLE, message, hint)
            }
            ApiError::Unauthorized { message, .. } => (
                StatusCode::UNAUTHORIZED,
                message,
                Some("send `Authorization: Bearer <token>`; `upkeep token create NAME --scope read` makes one".into()),
            ),
            ApiError::Forbidden { message, need } => (
                StatusCode::FORBIDDEN,
                message,
                Some(format!(
                    "use a token of scope {}: `upkeep token create NAME --scope {}`",
                    need.as_str(),
                    need.as_str()
                )),
            ),
            ApiError::TooLarge(m) => (StatusCode::PAYLOAD_TOO_LARGE, m, None),
            ApiError::Timeout(m) => (StatusCode::REQUEST_TIMEOUT, m, None),
            ApiError::TooMany {
                message,
                retry_after,
            } => {
                let secs = retry_after.as_secs().max(1);
                let mut r = (
                    StatusCode::TOO_MANY_REQUESTS,
                    Json(ErrorBody {
                        error: message,
                        hint: Some(format!("try again in {} min", secs.div_ceil(60))),
                    }),
                )
                    .into_response();
                r.headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from(secs));
                return r;
            }
            ApiError::Internal(e) => {
                let mut detail = e.to_string();
                let mut cause = e.source();
                while let Some(c) = cause {
                    detail.push_str(&format!(": {c}"));
                    cause = c.source();
                }
                tracing::error!(%detail, "internal error answering an API request");
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal error; the daemon's log has the details".into(),
                    None,
                )
            }
        };
        let mut resp = (status, Json(ErrorBody { error, hint })).into_response();
        if let Some(c) = challenge {
            resp.headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static(c));
        }
        resp
    }
}
