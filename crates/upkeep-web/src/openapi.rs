//! The OpenAPI 3.1 document of the JSON API, served at `GET /api/v1/openapi.json` on the
//! control socket and on `listen` (no token needed: it describes, it reveals nothing).
//!
//! It is not written by hand: every API route is registered with `utoipa_axum::routes!` from
//! a handler that carries its `#[utoipa::path]` (method, path, parameters, body and answers),
//! and the types it takes and answers derive `ToSchema`. So the router and the document are
//! made from the same list and cannot drift; a unit test below refuses an `/api/` route
//! registered any other way. The audience of each route (public, read, write, users) is its
//! tag, and the read and write routes name the bearer token scope they need.

use std::sync::OnceLock;

use axum::http::header;
use axum::response::{IntoResponse, Response};
use upkeep_core::api::ErrorBody;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme};
use utoipa::openapi::{ContentBuilder, InfoBuilder, OpenApi, Ref, ResponseBuilder, Responses};

use crate::api::AppState;

/// The answers any route may give when it fails, each with the API's JSON error body.
#[allow(dead_code)] // Only its derived description is used: handlers answer `ApiError`.
#[derive(utoipa::IntoResponses)]
pub(crate) enum Failure {
    /// A malformed request, or a value that is not valid; the message says which.
    #[response(status = 400)]
    BadRequest(ErrorBody),
    /// No bearer token, or one that is not valid.
    #[response(status = 401)]
    Unauthorized(ErrorBody),
    /// A token without the scope the route needs.
    #[response(status = 403)]
    Forbidden(ErrorBody),
    /// No such service, incident, window, notice, subscriber or user.
    #[response(status = 404)]
    NotFound(ErrorBody),
    /// The body did not arrive in time.
    #[response(status = 408)]
    Timeout(ErrorBody),
    /// The request conflicts with the current state (a job still running, a resolved incident).
    #[response(status = 409)]
    Conflict(ErrorBody),
    /// The body is larger than the listener takes.
    #[response(status = 413)]
    TooLarge(ErrorBody),
    /// Understood but cannot be applied (an invalid config on reload).
    #[response(status = 422)]
    Unprocessable(ErrorBody),
    /// Too many requests from this address: `Retry-After` says when to try again.
    #[response(status = 429)]
    TooMany(ErrorBody),
    /// Something the daemon depends on (its store) fails for now: try again later.
    #[response(status = 503)]
    Unavailable(ErrorBody),
}

/// The name of the bearer token scheme in the document.
const TOKEN: &str = "token";

/// The whole document: every route any listener serves under `/api/v1` (and `/metrics`),
/// with the test clock's route only where a daemon runs on a test clock.
pub fn document() -> &'static OpenApi {
    static DOC: OnceLock<OpenApi> = OnceLock::new();
    DOC.get_or_init(|| finish(crate::api::api_routes(false).into_openapi()))
}

/// Title, version, the token scheme, and each gated operation's scope.
fn finish(mut doc: OpenApi) -> OpenApi {
    doc.info = InfoBuilder::new()
        .title("upkeep")
        .version(env!("CARGO_PKG_VERSION"))
        .description(Some(
            "The JSON API of upkeep's daemon: over its Unix socket (the CLI), and over TCP \
             (`daemon.listen`) with a bearer token of the `read` or `write` scope (`upkeep token \
             create`). Routes tagged `public` need no token; those tagged `users` are served on \
             the control socket only. Every error is JSON: `{\"error\": ..., \"hint\": ...}`.",
        ))
        .build();
    let components = doc.components.get_or_insert_with(Default::default);
    components.add_security_scheme(
        TOKEN,
        SecurityScheme::Http(
            HttpBuilder::new()
                .scheme(HttpAuthScheme::Bearer)
                .description(Some("A token made with `upkeep token add`"))
                .build(),
        ),
    );
    for (path, item) in doc.paths.paths.iter_mut() {
        for (method, op) in [
            ("get", &mut item.get),
            ("put", &mut item.put),
            ("post", &mut item.post),
            ("delete", &mut item.delete),
            ("patch", &mut item.patch),
        ]
        .into_iter()
        .filter_map(|(m, op)| Some((m, op.as_mut()?)))
        {
            // Handlers of different routes share names (`list`): the id is the route's own.
            let words: Vec<&str> = path
                .split(|c: char| !c.is_ascii_alphanumeric())
                .filter(|w| !w.is_empty() && *w != "api" && *w != "v1")
                .collect();
            op.operation_id = Some(format!("{method}_{}", words.join("_")));
            every_listener_may(&mut op.responses);
            let tags = op.tags.clone().unwrap_or_default();
            let scope = if tags.iter().any(|t| t == "read") {
                "read"
            } else if tags.iter().any(|t| t == "write") {
                "write"
            } else {
                continue;
            };
            op.security = Some(vec![SecurityRequirement::new(TOKEN, [scope])]);
        }
    }
    doc
}

/// The answers any route of any listener may give whatever its handler does, added to each
/// operation that does not list them already (break-it, session 8: the public operations
/// did not): a 408 when the request does not arrive whole in time (`arrival.rs`), a 503 when
/// the listener is full or its streams are (`serve.rs`, `streams.rs`).
fn every_listener_may(responses: &mut Responses) {
    for (status, description) in [
        (
            "408",
            "The request (head and body) did not arrive whole in time; the connection is closed",
        ),
        (
            "503",
            "Every connection of the listener is busy with a request, every stream permit is              taken (for a stream), or the store is unavailable: try again later (`Retry-After`,              when it says)",
        ),
    ] {
        responses
            .responses
            .entry(status.to_owned())
            .or_insert_with(|| {
                ResponseBuilder::new()
                    .description(description)
                    .content(
                        "application/json",
                        ContentBuilder::new()
                            .schema(Some(Ref::from_schema_name("ErrorBody")))
                            .build(),
                    )
                    .into()
            });
    }
}

/// `GET /api/v1/openapi.json`.
async fn serve() -> Response {
    static JSON: OnceLock<String> = OnceLock::new();
    let body = JSON.get_or_init(|| {
        document()
            .to_pretty_json()
            .expect("the OpenAPI document is plain data")
    });
    ([(header::CONTENT_TYPE, "application/json")], body.as_str()).into_response()
}

/// The document's own route, ungated.
pub(crate) fn routes() -> axum::Router<AppState> {
    axum::Router::new().route("/api/v1/openapi.json", axum::routing::get(serve))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every `/api/` route is registered with `routes!`, from a described handler: a plain
    /// `.route` of an `/api/` path would be served but missing from the document. (The
    /// document's own route is the one exception.)
    #[test]
    fn no_api_route_is_registered_without_its_description() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
        let mut found = Vec::new();
        let mut stack = vec![dir];
        while let Some(d) = stack.pop() {
            for e in std::fs::read_dir(&d).unwrap() {
                let p = e.unwrap().path();
                if p.is_dir() {
                    stack.push(p);
                } else if p.extension().is_some_and(|x| x == "rs") {
                    let text = std::fs::read_to_string(&p).unwrap();
                    let squeezed: String = text.split_whitespace().collect();
                    for (i, _) in squeezed.match_indices(".route(\"/api/") {
                        let rest = &squeezed[i..];
                        if !rest.starts_with(".route(\"/api/v1/openapi.json\"") {
                            found.push(format!("{}: {}", p.display(), &rest[..rest.len().min(60)]));
                        }
                    }
                }
            }
        }
        assert!(found.is_empty(), "{found:#?}");
    }

    #[test]
    fn every_gated_operation_names_its_scope_and_public_ones_none() {
        let doc = document();
        let mut seen = 0;
        for (path, item) in &doc.paths.paths {
            for op in [&item.get, &item.put, &item.post, &item.delete]
                .into_iter()
                .flatten()
            {
                seen += 1;
                let tags = op.tags.clone().unwrap_or_default();
                assert_eq!(tags.len(), 1, "{path}: {tags:?}");
                let json = serde_json::to_value(&op.security).unwrap();
                match tags[0].as_str() {
                    "public" => assert!(op.security.is_none(), "{path}"),
                    "read" => {
                        assert_eq!(json, serde_json::json!([{ "token": ["read"] }]), "{path}")
                    }
                    "write" => {
                        assert_eq!(json, serde_json::json!([{ "token": ["write"] }]), "{path}")
                    }
                    // The control socket's own: no token there, and not served over TCP.
                    "users" => assert!(op.security.is_none(), "{path}"),
                    other => panic!("{path}: tag {other}"),
                }
            }
        }
        assert!(seen > 40, "{seen} operations");
        assert!(doc.paths.paths.contains_key("/api/v1/services/{name}"));
        assert!(!doc.paths.paths.contains_key("/api/v1/test/clock"));
        assert!(doc.paths.paths.contains_key("/api/v1/subscribe"));
        // Whatever its handler does, a listener may answer 408 and 503 to any request, and a
        // subscription is rate-limited (429).
        for (path, item) in &doc.paths.paths {
            for op in [&item.get, &item.put, &item.post, &item.delete]
                .into_iter()
                .flatten()
            {
                for status in ["408", "503"] {
                    assert!(
                        op.responses.responses.contains_key(status),
                        "{path}: {status}"
                    );
                }
            }
        }
        let subscribe = doc.paths.paths["/api/v1/subscribe"].post.as_ref().unwrap();
        assert!(subscribe.responses.responses.contains_key("429"));
        // The post-mortem's five whys.
        let json = serde_json::to_value(doc).unwrap();
        let whys = &json["components"]["schemas"]["Postmortem"]["properties"]["whys"];
        assert_eq!(
            (&whys["minItems"], &whys["maxItems"]),
            (&5.into(), &5.into()),
            "{whys}"
        );
        // The daemon's health, not a probe's.
        let schemas = &doc.components.as_ref().unwrap().schemas;
        assert!(schemas.contains_key("DaemonHealth"), "{:?}", schemas.keys());
    }
}
