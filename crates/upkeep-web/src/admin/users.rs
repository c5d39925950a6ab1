//! `/api/v1/users`, on the control socket only (`upkeep user ...`): list (GET), add (POST
//! `{"name", "password"}`), change a password (PUT `/api/v1/users/{name}/password`), remove
//! (DELETE `/api/v1/users/{name}`). Users are the host's business: a bearer token, even of
//! write scope, cannot make one, and nor can a signed-in user.

use axum::Json;
use axum::extract::rejection::{JsonRejection, PathRejection};
use axum::extract::{Path, State};
use axum::http::Uri;
use upkeep_core::account::{MAX_PASSWORD, MIN_PASSWORD, UserInfo, UserRequest, check_user_name};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::ApiError;
use crate::api::{AppState, bad_json, path_params};
use crate::auth::By;

/// The routes; the caller puts them behind the socket's gate.
pub(crate) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list, add))
        .routes(routes!(remove))
        .routes(routes!(passwd))
}

fn accounts(s: &AppState) -> Result<std::sync::Arc<dyn super::Accounts>, ApiError> {
    s.control.accounts().ok_or_else(|| ApiError::Unavailable {
        message: "this daemon keeps no admin users".into(),
        hint: None,
    })
}

fn check(name: &str, password: &str) -> Result<(), ApiError> {
    check_user_name(name).map_err(ApiError::bad_request)?;
    if password.chars().count() < MIN_PASSWORD {
        return Err(ApiError::BadRequest {
            message: format!("the password is shorter than {MIN_PASSWORD} characters"),
            hint: Some("a passphrase of a few words is long enough and easy to type".into()),
        });
    }
    if password.len() > MAX_PASSWORD {
        return Err(ApiError::BadRequest {
            message: format!("the password is longer than {MAX_PASSWORD} bytes"),
            hint: None,
        });
    }
    Ok(())
}

#[utoipa::path(
    get,
    path = "/api/v1/users",
    tag = "users",
    responses((status = 200, description = "Admin users (control socket only)", body = Vec<UserInfo>), crate::openapi::Failure)
)]
async fn list(State(s): State<AppState>) -> Result<Json<Vec<UserInfo>>, ApiError> {
    accounts(&s)?.users().await.map(Json)
}

#[utoipa::path(
    post,
    path = "/api/v1/users",
    tag = "users",
    request_body = UserRequest,
    responses((status = 200, description = "Adds an admin user (control socket only)", body = UserInfo), crate::openapi::Failure)
)]
async fn add(
    State(s): State<AppState>,
    By(by): By,
    body: Result<Json<UserRequest>, JsonRejection>,
) -> Result<Json<UserInfo>, ApiError> {
    let Json(req) = body.map_err(bad_json)?;
    let name = req
        .name
        .as_deref()
        .ok_or_else(|| ApiError::bad_request("give the user's `name`"))?;
    check(name, &req.password)?;
    accounts(&s)?
        .add_user(name, &req.password, &by)
        .await
        .map(Json)
}

#[utoipa::path(
    put,
    path = "/api/v1/users/{name}/password",
    tag = "users",
    params(("name" = String, Path, description = "A user name")),
    request_body = UserRequest,
    responses((status = 200, description = "Changes a user's password (control socket only)", body = serde_json::Value), crate::openapi::Failure)
)]
async fn passwd(
    State(s): State<AppState>,
    By(by): By,
    uri: Uri,
    path: Result<Path<String>, PathRejection>,
    body: Result<Json<UserRequest>, JsonRejection>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let name = path_params(path, "the user's name", &uri)?;
    let Json(req) = body.map_err(bad_json)?;
    check(&name, &req.password)?;
    accounts(&s)?
        .set_password(&name, &req.password, &by)
        .await?;
    Ok(Json(serde_json::json!({ "name": name, "changed": true })))
}

#[utoipa::path(
    delete,
    path = "/api/v1/users/{name}",
    tag = "users",
    params(("name" = String, Path, description = "A user name")),
    responses((status = 200, description = "Removes an admin user and ends their sessions (control socket only)", body = serde_json::Value), crate::openapi::Failure)
)]
async fn remove(
    State(s): State<AppState>,
    By(by): By,
    uri: Uri,
    path: Result<Path<String>, PathRejection>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let name = path_params(path, "the user's name", &uri)?;
    accounts(&s)?.remove_user(&name, &by).await?;
    Ok(Json(serde_json::json!({ "name": name, "removed": true })))
}
