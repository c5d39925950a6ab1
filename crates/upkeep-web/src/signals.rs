//! Signals to a running service: `POST /api/v1/services/{name}/signal` with
//! `{"signal": "HUP", "group": false}`, and `POST /api/v1/services/{name}/reload`, which sends
//! the service's `reload_signal` (write routes). Handlers parse and call [`Control`]; which
//! signals may be sent, and to what, is decided behind it (`upkeep/src/ops/signal.rs`).
//!
//! [`Control`]: crate::Control

use axum::Json;
use axum::extract::State;
use axum::extract::rejection::JsonRejection;
use upkeep_core::api::{SignalRequest, SignalResult};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::ApiError;
use crate::api::{AppState, Name, bad_json};
use crate::auth::By;

pub(crate) fn write_routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(signal))
        .routes(routes!(reload))
}

#[utoipa::path(
    post,
    path = "/api/v1/services/{name}/signal",
    tag = "write",
    params(("name" = String, Path, description = "A service name")),
    request_body = SignalRequest,
    responses((status = 200, description = "Sends a signal to a service (or its whole group)", body = SignalResult), crate::openapi::Failure)
)]
async fn signal(
    State(s): State<AppState>,
    By(by): By,
    Name(name): Name,
    body: Result<Json<SignalRequest>, JsonRejection>,
) -> Result<Json<SignalResult>, ApiError> {
    let Json(req) = body.map_err(bad_json)?;
    s.control.signal(&name, Some(req), &by).await.map(Json)
}

#[utoipa::path(
    post,
    path = "/api/v1/services/{name}/reload",
    tag = "write",
    params(("name" = String, Path, description = "A service name")),
    responses((status = 200, description = "Sends the service's `reload_signal`", body = SignalResult), crate::openapi::Failure)
)]
async fn reload(
    State(s): State<AppState>,
    By(by): By,
    Name(name): Name,
) -> Result<Json<SignalResult>, ApiError> {
    s.control.signal(&name, None, &by).await.map(Json)
}
