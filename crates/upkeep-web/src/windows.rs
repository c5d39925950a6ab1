//! The maintenance window routes: `GET /api/v1/windows[?all=true]` and
//! `GET /api/v1/windows/{id}` (read), `POST /api/v1/windows` (schedule),
//! `PUT /api/v1/windows/{id}` (edit) and `POST /api/v1/windows/{id}/{cancel|start|finish|extend}`
//! (write). Handlers parse and call [`Control`]; what a window may do is decided behind it.

use axum::Json;
use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::Uri;
use serde::Deserialize;
use upkeep_core::window::{ExtendRequest, Window, WindowAction, WindowRequest};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::ApiError;
use crate::api::{AppState, bad_json, path_params};
use crate::auth::By;

pub(crate) fn read_routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list))
        .routes(routes!(show))
}

pub(crate) fn write_routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(add))
        .routes(routes!(edit))
        .routes(routes!(act))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
struct ListQuery {
    #[serde(default)]
    all: bool,
}

/// A window number from the path: not a number (or past i64, `99999999999999999999`) is a
/// 400, as for an incident; any number is looked up, so one no window has (`0`, `-1`) is a
/// 404 "no maintenance window number 0", as an unknown incident is (break-it, session 9:
/// `0` was a 400 here and a 404 there).
fn window_id(raw: &str) -> Result<i64, ApiError> {
    raw.parse::<i64>().ok().ok_or_else(|| ApiError::BadRequest {
        message: format!("`{raw}` is not a window number"),
        hint: Some("`upkeep maint ls` lists the windows".into()),
    })
}

#[utoipa::path(
    get,
    path = "/api/v1/windows",
    tag = "read",
    params(ListQuery),
    responses((status = 200, description = "Maintenance windows not done (every one with `all`)", body = Vec<Window>), crate::openapi::Failure)
)]
async fn list(
    State(s): State<AppState>,
    query: Result<Query<ListQuery>, QueryRejection>,
) -> Result<Json<Vec<Window>>, ApiError> {
    let Query(q) = query.map_err(|e| ApiError::bad_request(e.body_text()))?;
    s.control.windows(q.all).await.map(Json)
}

#[utoipa::path(
    get,
    path = "/api/v1/windows/{id}",
    tag = "read",
    params(("id" = i64, Path, description = "A window number")),
    responses((status = 200, description = "One maintenance window", body = Window), crate::openapi::Failure)
)]
async fn show(
    State(s): State<AppState>,
    uri: Uri,
    path: Result<Path<String>, PathRejection>,
) -> Result<Json<Window>, ApiError> {
    let id = window_id(&path_params(path, "the window number", &uri)?)?;
    s.control.window(id).await.map(Json)
}

#[utoipa::path(
    post,
    path = "/api/v1/windows",
    tag = "write",
    request_body = WindowRequest,
    responses((status = 200, description = "Schedules a maintenance window against the lead-time policy", body = Window), crate::openapi::Failure)
)]
async fn add(
    State(s): State<AppState>,
    By(by): By,
    body: Result<Json<WindowRequest>, JsonRejection>,
) -> Result<Json<Window>, ApiError> {
    let Json(req) = body.map_err(bad_json)?;
    s.control.add_window(req, &by).await.map(Json)
}

#[utoipa::path(
    put,
    path = "/api/v1/windows/{id}",
    tag = "write",
    params(("id" = i64, Path, description = "A window number")),
    request_body = WindowRequest,
    responses((status = 200, description = "Changes a maintenance window", body = Window), crate::openapi::Failure)
)]
async fn edit(
    State(s): State<AppState>,
    By(by): By,
    uri: Uri,
    path: Result<Path<String>, PathRejection>,
    body: Result<Json<WindowRequest>, JsonRejection>,
) -> Result<Json<Window>, ApiError> {
    let id = window_id(&path_params(path, "the window number", &uri)?)?;
    let Json(req) = body.map_err(bad_json)?;
    s.control.edit_window(id, req, &by).await.map(Json)
}

#[utoipa::path(
    post,
    path = "/api/v1/windows/{id}/{action}",
    tag = "write",
    params(("id" = i64, Path, description = "A window number"), ("action" = String, Path, description = "cancel, start, finish or extend (with a body `{\"until\": TIME}`)")),
    request_body = Option<ExtendRequest>,
    responses((status = 200, description = "Cancels, starts, finishes or extends a window", body = Window), crate::openapi::Failure)
)]
async fn act(
    State(s): State<AppState>,
    By(by): By,
    uri: Uri,
    path: Result<Path<(String, String)>, PathRejection>,
    body: bytes::Bytes,
) -> Result<Json<Window>, ApiError> {
    let (id, action) = path_params(path, "the window number or the action", &uri)?;
    let id = window_id(&id)?;
    let action = match action.as_str() {
        "cancel" => WindowAction::Cancel,
        "start" => WindowAction::Start,
        "finish" => WindowAction::Finish,
        "extend" => match serde_json::from_slice::<ExtendRequest>(&body) {
            Ok(ExtendRequest { until }) => WindowAction::Extend { until },
            Err(e) => {
                return Err(ApiError::BadRequest {
                    message: format!(
                        "extend needs a body such as {{\"until\": \"2026-12-01T06:00:00Z\"}}: {e}"
                    ),
                    hint: None,
                });
            }
        },
        other => {
            return Err(ApiError::BadRequest {
                message: format!("unknown window action `{other}`"),
                hint: Some("use cancel, start, finish or extend".into()),
            });
        }
    };
    s.control.window_action(id, action, &by).await.map(Json)
}
