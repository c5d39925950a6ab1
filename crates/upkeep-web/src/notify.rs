//! The notice routes: `GET /api/v1/notify[?state=pending|sending|sent|failed&limit=N]`
//! (read: the outbox, newest first), `POST /api/v1/notify/{id}/retry` (write: a failed notice
//! goes back to pending) and `POST /api/v1/notify/test` (write: a test notice through one
//! channel, by way of the outbox). Handlers parse and call [`Control`]; the outbox is the
//! daemon's.

use axum::Json;
use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::Uri;
use serde::Deserialize;
use upkeep_core::api::{NotifyTestRequest, OutboxNotice};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::ApiError;
use crate::api::{AppState, bad_json, path_params};
use crate::auth::By;

pub(crate) fn read_routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(list))
}

pub(crate) fn write_routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(test))
        .routes(routes!(retry))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
struct ListQuery {
    state: Option<String>,
    #[serde(default = "default_limit")]
    limit: u32,
}

fn default_limit() -> u32 {
    100
}

/// The states a notice can be in, as `?state=` takes them.
pub const STATES: [&str; 4] = ["pending", "sending", "sent", "failed"];

#[utoipa::path(
    get,
    path = "/api/v1/notify",
    tag = "read",
    params(ListQuery),
    responses((status = 200, description = "The outbox, newest first", body = Vec<OutboxNotice>), crate::openapi::Failure)
)]
async fn list(
    State(s): State<AppState>,
    query: Result<Query<ListQuery>, QueryRejection>,
) -> Result<Json<Vec<OutboxNotice>>, ApiError> {
    let Query(q) = query.map_err(|e| ApiError::bad_request(e.body_text()))?;
    if let Some(state) = &q.state
        && !STATES.contains(&state.as_str())
    {
        return Err(ApiError::BadRequest {
            message: format!("unknown notice state `{state}`"),
            hint: Some(format!("use one of {}", STATES.join(", "))),
        });
    }
    s.control
        .notices(q.state.as_deref(), q.limit.clamp(1, 10_000))
        .await
        .map(Json)
}

#[utoipa::path(
    post,
    path = "/api/v1/notify/{id}/retry",
    tag = "write",
    params(("id" = i64, Path, description = "A notice number")),
    responses((status = 200, description = "Sends a failed notice again", body = OutboxNotice), crate::openapi::Failure)
)]
async fn retry(
    State(s): State<AppState>,
    By(by): By,
    uri: Uri,
    path: Result<Path<String>, PathRejection>,
) -> Result<Json<OutboxNotice>, ApiError> {
    let raw = path_params(path, "the notice number", &uri)?;
    let id = raw
        .parse::<i64>()
        .ok()
        .filter(|id| *id > 0)
        .ok_or_else(|| ApiError::BadRequest {
            message: format!("`{raw}` is not a notice number"),
            hint: Some("`upkeep notify ls` lists the notices".into()),
        })?;
    s.control.retry_notice(id, &by).await.map(Json)
}

#[utoipa::path(
    post,
    path = "/api/v1/notify/test",
    tag = "write",
    request_body = NotifyTestRequest,
    responses((status = 200, description = "A test notice through one channel, by way of the outbox", body = Vec<OutboxNotice>), crate::openapi::Failure)
)]
async fn test(
    State(s): State<AppState>,
    By(by): By,
    body: Result<Json<NotifyTestRequest>, JsonRejection>,
) -> Result<Json<Vec<OutboxNotice>>, ApiError> {
    let Json(req) = body.map_err(bad_json)?;
    s.control.test_notice(req, &by).await.map(Json)
}
