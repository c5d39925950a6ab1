//! What people write to incidents (issue 16), all write routes: `POST /api/v1/incidents`
//! (open one the probes did not see), `POST /api/v1/incidents/{id}/updates` (an update with
//! a status), `POST /api/v1/incidents/{id}/resolve` (by hand, with an optional last word),
//! `PUT /api/v1/incidents/{id}/priority` and `PUT /api/v1/incidents/{id}/postmortem`.
//! Reading an incident stays `GET /api/v1/incidents/{id}` (`api.rs`).
//!
//! Handlers parse and call [`Control::write_incident`](crate::Control::write_incident):
//! what may be written, and when, is decided behind it (an unknown id is a 404, a resolved
//! incident takes only a post-mortem: 409, bad text a 400 naming every problem).

use axum::extract::rejection::{JsonRejection, PathRejection};
use axum::extract::{Path, State};
use axum::http::Uri;
use axum::routing::{post, put};
use axum::{Json, Router};
use upkeep_core::api::IncidentDetail;
use upkeep_core::incident::{
    IncidentWrite, OpenRequest, Postmortem, PriorityRequest, ResolveRequest, UpdateRequest,
};

use crate::ApiError;
use crate::api::{AppState, bad_json, path_params};
use crate::auth::By;

pub(crate) fn write_routes() -> Router<AppState> {
    Router::new()
        .route("/api/v1/incidents", post(open))
        .route("/api/v1/incidents/{id}/updates", post(update))
        .route("/api/v1/incidents/{id}/resolve", post(resolve))
        .route("/api/v1/incidents/{id}/priority", put(priority))
        .route("/api/v1/incidents/{id}/postmortem", put(postmortem))
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
