//! Signals to a running service: `POST /api/v1/services/{name}/signal` with
//! `{"signal": "HUP", "group": false}`, and `POST /api/v1/services/{name}/reload`, which sends
//! the service's `reload_signal` (write routes). Handlers parse and call [`Control`]; which
//! signals may be sent, and to what, is decided behind it (`upkeep/src/ops/signal.rs`).
//!
//! [`Control`]: crate::Control

use axum::extract::State;
use axum::extract::rejection::JsonRejection;
use axum::routing::post;
use axum::{Json, Router};
use upkeep_core::api::{SignalRequest, SignalResult};

use crate::ApiError;
use crate::api::{AppState, Name, bad_json};
use crate::auth::By;

pub(crate) fn write_routes() -> Router<AppState> {
    Router::new()
        .route("/api/v1/services/{name}/signal", post(signal))
        .route("/api/v1/services/{name}/reload", post(reload))
}

async fn signal(
    State(s): State<AppState>,
    By(by): By,
    Name(name): Name,
    body: Result<Json<SignalRequest>, JsonRejection>,
) -> Result<Json<SignalResult>, ApiError> {
    let Json(req) = body.map_err(bad_json)?;
    s.control.signal(&name, Some(req), &by).await.map(Json)
}

async fn reload(
    State(s): State<AppState>,
    By(by): By,
    Name(name): Name,
) -> Result<Json<SignalResult>, ApiError> {
    s.control.signal(&name, None, &by).await.map(Json)
}
