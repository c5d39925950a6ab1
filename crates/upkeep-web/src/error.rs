//! [`ApiError`]: every error answer of the API, as JSON `{ "error": ..., "hint": ... }`.
//!
//! Bad input is a 4xx with a message that says what to fix; internal failures are logged in
//! full and answered with a short generic 500, never a panic.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use upkeep_core::api::ErrorBody;

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
    Internal(String),
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
            ApiError::Internal(detail) => {
                tracing::error!(%detail, "internal error answering an API request");
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal error; the daemon's log has the details".into(),
                    None,
                )
            }
        };
        (status, Json(ErrorBody { error, hint })).into_response()
    }
}
