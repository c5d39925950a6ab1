//! What people write to incidents (issue 16), all write routes: `POST /api/v1/incidents`
//! (open one the probes did not see), `POST /api/v1/incidents/{id}/updates` (an update with
//! a status), `POST /api/v1/incidents/{id}/resolve` (by hand, with an optional last word),
//! `PUT /api/v1/incidents/{id}/priority` and `PUT /api/v1/incidents/{id}/postmortem`.
//! Reading an incident stays `GET /api/v1/incidents/{id}` (`api.rs`).
//!
//! Handlers parse and call [`Control::write_incident`](crate::Control::write_incident):
//! what may be written, and when, is decided behind it (an unknown id is a 404, a resolved
//! incident takes only a post-mortem: 409, bad text a 400 naming every problem).

use axum::Json;
use axum::extract::rejection::{JsonRejection, PathRejection};
use axum::extract::{Path, State};
use axum::http::Uri;
use upkeep_core::api::IncidentDetail;
use upkeep_core::incident::{
    IncidentWrite, OpenRequest, Postmortem, PriorityRequest, ResolveRequest, UpdateRequest,
};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::ApiError;
use crate::api::{AppState, bad_json, path_params};
use crate::auth::By;

pub(crate) fn write_routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(open))
        .routes(routes!(update))
        .routes(routes!(resolve))
        .routes(routes!(priority))
        .routes(routes!(postmortem))
}

fn incident_id(path: Result<Path<String>, PathRejection>, uri: &Uri) -> Result<i64, ApiError> {
    let raw = path_params(path, "the incident number", uri)?;
    raw.parse::<i64>()
        .ok()
        .filter(|id| *id > 0)
        .ok_or_else(|| ApiError::BadRequest {
            message: format!("`{raw}` is not an incident number"),
            hint: Some("`upkeep incidents` lists them".into()),
        })
}

#[utoipa::path(
    post,
    path = "/api/v1/incidents",
    tag = "write",
    request_body = OpenRequest,
    responses((status = 200, description = "Opens an incident the probes did not see", body = IncidentDetail), crate::openapi::Failure)
)]
async fn open(
    State(s): State<AppState>,
    By(by): By,
    body: Result<Json<OpenRequest>, JsonRejection>,
) -> Result<Json<IncidentDetail>, ApiError> {
    let Json(req) = body.map_err(bad_json)?;
    s.control
        .write_incident(IncidentWrite::Open(req), &by)
        .await
        .map(Json)
}

#[utoipa::path(
    post,
    path = "/api/v1/incidents/{id}/updates",
    tag = "write",
    params(("id" = i64, Path, description = "An incident number")),
    request_body = UpdateRequest,
    responses((status = 200, description = "Writes an update with a status; it goes out as a notice", body = IncidentDetail), crate::openapi::Failure)
)]
async fn update(
    State(s): State<AppState>,
    By(by): By,
    uri: Uri,
    path: Result<Path<String>, PathRejection>,
    body: Result<Json<UpdateRequest>, JsonRejection>,
) -> Result<Json<IncidentDetail>, ApiError> {
    let id = incident_id(path, &uri)?;
    let Json(req) = body.map_err(bad_json)?;
    s.control
        .write_incident(IncidentWrite::Update(id, req), &by)
        .await
        .map(Json)
}

#[utoipa::path(
    post,
    path = "/api/v1/incidents/{id}/resolve",
    tag = "write",
    params(("id" = i64, Path, description = "An incident number")),
    request_body = Option<ResolveRequest>,
    responses((status = 200, description = "Resolves an incident by hand, with an optional last word", body = IncidentDetail), crate::openapi::Failure)
)]
async fn resolve(
    State(s): State<AppState>,
    By(by): By,
    uri: Uri,
    path: Result<Path<String>, PathRejection>,
    body: bytes::Bytes,
) -> Result<Json<IncidentDetail>, ApiError> {
    let id = incident_id(path, &uri)?;
    // The body is optional: an empty one resolves without a last word.
    let req = if body.iter().all(u8::is_ascii_whitespace) {
        ResolveRequest::default()
    } else {
        serde_json::from_slice::<ResolveRequest>(&body).map_err(|e| ApiError::BadRequest {
            message: format!("the body cannot be read: {e}"),
            hint: Some("send nothing, or {\"message\": \"...\"}".into()),
        })?
    };
    s.control
        .write_incident(IncidentWrite::Resolve(id, req), &by)
        .await
        .map(Json)
}

#[utoipa::path(
    put,
    path = "/api/v1/incidents/{id}/priority",
    tag = "write",
    params(("id" = i64, Path, description = "An incident number")),
    request_body = PriorityRequest,
    responses((status = 200, description = "Changes an incident's priority", body = IncidentDetail), crate::openapi::Failure)
)]
async fn priority(
    State(s): State<AppState>,
    By(by): By,
    uri: Uri,
    path: Result<Path<String>, PathRejection>,
    body: Result<Json<PriorityRequest>, JsonRejection>,
) -> Result<Json<IncidentDetail>, ApiError> {
    let id = incident_id(path, &uri)?;
    let Json(req) = body.map_err(bad_json)?;
    s.control
        .write_incident(IncidentWrite::Priority(id, req), &by)
        .await
        .map(Json)
}

#[utoipa::path(
    put,
    path = "/api/v1/incidents/{id}/postmortem",
    tag = "write",
    params(("id" = i64, Path, description = "An incident number")),
    request_body = Postmortem,
    responses((status = 200, description = "Writes the post-mortem", body = IncidentDetail), crate::openapi::Failure)
)]
async fn postmortem(
    State(s): State<AppState>,
    By(by): By,
    uri: Uri,
    path: Result<Path<String>, PathRejection>,
    body: Result<Json<Postmortem>, JsonRejection>,
) -> Result<Json<IncidentDetail>, ApiError> {
    let id = incident_id(path, &uri)?;
    let Json(pm) = body.map_err(bad_json)?;
    s.control
        .write_incident(IncidentWrite::Postmortem(id, pm), &by)
        .await
        .map(Json)
}
