//! The admin pages of incidents and feedback (issue 17, item 4), behind the gate of `mod.rs`:
//! the open and recent incidents (paged), one incident with its updates and timeline and the
//! forms that write to it (an update, which goes out as a notice; resolve; priority; the
//! post-mortem), a form to open one by hand, and the feedback people sent from the status page
//! (paged, newest first).
//!
//! Nothing is decided here: each form becomes the [`IncidentWrite`] the JSON API sends
//! (`incidents.rs` in this crate), handed to [`crate::Control::write_incident`] with the
//! signed-in user as the principal, so the checks, the notices and the record of who did it
//! are the daemon's, the same as for `upkeep incident ...`. Feedback is read through
//! [`crate::Control::feedback`]; it has no "handled" flag to set, so the page only lists.
//!
//! Paging: `paging.rs` (an offset into the store's list, so any page works); the open
//! incidents are read whole on every page of the list, however old they are.

use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use upkeep_core::incident::{
    IncidentPriority, IncidentStatus, IncidentWrite, OpenRequest, Postmortem, PriorityRequest,
    ResolveRequest, UpdateRequest, WHYS,
};

use super::Csrf;
use super::pages::{failed, name_of, page, service_names};
use super::paging::{PageQuery, listed, page_number};
use super::render;
use crate::ApiError;
use crate::api::AppState;
use crate::auth::By;

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/admin/incidents", get(list).post(open))
        .route("/admin/incidents/{id}", get(show))
        .route("/admin/incidents/{id}/{action}", post(act))
        .route("/admin/feedback", get(feedback))
}

fn incident_id(raw: &str) -> Result<i64, ApiError> {
    raw.parse::<i64>()
        .ok()
        .filter(|id| *id > 0)
        .ok_or_else(|| ApiError::NotFound(format!("`{raw}` is not an incident number")))
}

/// An `application/x-www-form-urlencoded` body as its fields, in order, each trimmed.
fn fields(body: &[u8]) -> Result<Vec<(String, String)>, ApiError> {
    let pairs: Vec<(String, String)> = serde_urlencoded::from_bytes(body)
        .map_err(|e| ApiError::bad_request(format!("the form does not decode: {e}")))?;
    Ok(pairs
        .into_iter()
        .map(|(k, v)| (k, v.trim().to_owned()))
        .collect())
}

fn one<'a>(fields: &'a [(String, String)], name: &str) -> &'a str {
    fields
        .iter()
        .find(|(k, _)| k == name)
        .map_or("", |(_, v)| v.as_str())
}

fn priority_of(raw: &str) -> Result<Option<IncidentPriority>, ApiError> {
    if raw.is_empty() {
        return Ok(None);
    }
    IncidentPriority::parse(raw)
        .map(Some)
        .ok_or_else(|| ApiError::bad_request(format!("`{raw}` is not a priority (P1 to P4)")))
}

/// The open form: a service, a title, maybe a priority and a first update.
fn open_request(body: &[u8]) -> Result<OpenRequest, ApiError> {
    let f = fields(body)?;
    let message = one(&f, "message");
    Ok(OpenRequest {
        service: name_of(one(&f, "service"))?,
        title: one(&f, "title").to_owned(),
        priority: priority_of(one(&f, "priority"))?,
        message: (!message.is_empty()).then(|| message.to_owned()),
    })
}

/// The update form: a status and a message (the daemon checks the message).
fn update_request(body: &[u8]) -> Result<UpdateRequest, ApiError> {
    let f = fields(body)?;
    let raw = one(&f, "status");
    let status = IncidentStatus::parse(raw)
        .filter(|s| *s != IncidentStatus::Resolved)
        .ok_or_else(|| {
            ApiError::bad_request(format!(
                "`{raw}` is not a status: investigating, identified or monitoring (resolve with its own button)"
            ))
        })?;
    Ok(UpdateRequest {
        status,
        message: one(&f, "message").to_owned(),
    })
}

fn resolve_request(body: &[u8]) -> Result<ResolveRequest, ApiError> {
    let f = fields(body)?;
    let message = one(&f, "message");
    Ok(ResolveRequest {
        message: (!message.is_empty()).then(|| message.to_owned()),
    })
}

/// The post-mortem form: a summary, a root cause, the five `why` fields in order, and the
/// actions one per line of their text area (blank lines left out). The daemon checks it.
fn postmortem_of(body: &[u8]) -> Result<Postmortem, ApiError> {
    let f = fields(body)?;
    let whys = f
        .iter()
        .filter(|(k, _)| k == "why")
        .map(|(_, v)| v.clone())
        .collect();
    let actions = one(&f, "actions")
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(str::to_owned)
        .collect();
    Ok(Postmortem {
        summary: one(&f, "summary").to_owned(),
        root_cause: one(&f, "root_cause").to_owned(),
        whys,
        actions,
    })
}

async fn list(
    State(s): State<AppState>,
    headers: HeaderMap,
    by: By,
    axum::Extension(csrf): axum::Extension<Csrf>,
    q: Result<Query<PageQuery>, QueryRejection>,
) -> Response {
    let result = async {
        let p = page_number(q)?;
        let open = s.control.open_incidents().await?;
        let rows = s.control.incidents_page(p.offset, p.read).await?;
        let mut v = listed("incidents", Some(rows), p);
        v["open"] = serde_json::to_value(open).map_err(|e| ApiError::Internal(Box::new(e)))?;
        Ok::<_, ApiError>(v)
    }
    .await;
    match result {
        Ok(mut v) => {
            v["names"] = service_names(&s).await.into();
            v["priorities"] = IncidentPriority::ALL.map(|p| p.as_str()).into();
            render::page(page(&headers, &by, &csrf, "incidents"), &v)
        }
        Err(e) => failed(&headers, e),
    }
}

async fn show(
    State(s): State<AppState>,
    headers: HeaderMap,
    by: By,
    axum::Extension(csrf): axum::Extension<Csrf>,
    Path(raw): Path<String>,
) -> Response {
    let result = async { s.control.incident(incident_id(&raw)?).await }.await;
    let detail = match result {
        Ok(d) => d,
        Err(e) => return failed(&headers, e),
    };
    // The editor comes filled in with the post-mortem written so far, five whys always.
    let written = detail.notes.postmortem.as_ref().map(|w| &w.postmortem);
    let mut whys = written.map(|p| p.whys.clone()).unwrap_or_default();
    whys.resize(WHYS, String::new());
    let form = serde_json::json!({
        "summary": written.map_or("", |p| p.summary.as_str()),
        "root_cause": written.map_or("", |p| p.root_cause.as_str()),
        "whys": whys,
        "actions": written.map(|p| p.actions.join("\n")).unwrap_or_default(),
    });
    let statuses: Vec<_> = IncidentStatus::ALL
        .into_iter()
        .filter(|s| *s != IncidentStatus::Resolved)
        .map(IncidentStatus::as_str)
        .collect();
    render::page(
        page(&headers, &by, &csrf, "incident"),
        &serde_json::json!({
            "detail": detail,
            "pm": form,
            "statuses": statuses,
            "priorities": IncidentPriority::ALL.map(|p| p.as_str()),
        }),
    )
}

/// Sends `write` to the daemon; on success, to the incident's page.
async fn write(s: &AppState, headers: &HeaderMap, by: &By, write: IncidentWrite) -> Response {
    match s.control.write_incident(write, &by.0).await {
        Ok(d) => Redirect::to(&format!("/admin/incidents/{}", d.incident.id)).into_response(),
        Err(e) => failed(headers, e),
    }
}

async fn open(State(s): State<AppState>, headers: HeaderMap, by: By, body: Bytes) -> Response {
    match open_request(&body) {
        Ok(req) => write(&s, &headers, &by, IncidentWrite::Open(req)).await,
        Err(e) => failed(&headers, e),
    }
}

/// A form on an incident's page (`updates`, `resolve`, `priority`, `postmortem`): read, then
/// sent to the daemon as the API's write.
async fn act(
    State(s): State<AppState>,
    headers: HeaderMap,
    by: By,
    Path((raw, action)): Path<(String, String)>,
    body: Bytes,
) -> Response {
    let request = || {
        let id = incident_id(&raw)?;
        Ok::<_, ApiError>(match action.as_str() {
            "updates" => IncidentWrite::Update(id, update_request(&body)?),
            "resolve" => IncidentWrite::Resolve(id, resolve_request(&body)?),
            "priority" => {
                let f = fields(&body)?;
                let priority = priority_of(one(&f, "priority"))?
                    .ok_or_else(|| ApiError::bad_request("choose a priority (P1 to P4)"))?;
                IncidentWrite::Priority(id, PriorityRequest { priority })
            }
            "postmortem" => IncidentWrite::Postmortem(id, postmortem_of(&body)?),
            _ => return Err(ApiError::NotFound(format!("no action `{action}`"))),
        })
    };
    match request() {
        Ok(req) => write(&s, &headers, &by, req).await,
        Err(e) => failed(&headers, e),
    }
}

async fn feedback(
    State(s): State<AppState>,
    headers: HeaderMap,
    by: By,
    axum::Extension(csrf): axum::Extension<Csrf>,
    q: Result<Query<PageQuery>, QueryRejection>,
) -> Response {
    let result = async {
        let p = page_number(q)?;
        let rows = match s.control.feedback() {
            Some(_) => Some(s.control.feedback_page(p.offset, p.read).await?),
            None => None,
        };
        Ok::<_, ApiError>(listed("feedback", rows, p))
    }
    .await;
    match result {
        Ok(v) => render::page(page(&headers, &by, &csrf, "feedback"), &v),
        Err(e) => failed(&headers, e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn an_incident_page_shows_every_written_text_as_text() {
        let x = "<script>x</script>";
        let by = serde_json::json!({"name": x, "via": "session"});
        let data = serde_json::json!({
            "detail": {
                "incident": {"id": 7, "service": "db", "started": "2026-12-06T02:00:00Z",
                             "resolved": null, "duration_ms": 1, "reason": x, "drill": false},
                "timeline": [{"id": 1, "at": "2026-12-06T02:00:00Z", "service": "db",
                              "kind": "probe_failed", "intervention": false,
                              "detail": {"reason": x}}],
                "notes": {"title": x, "opened_by": by, "updates": [
                    {"id": 1, "at": "2026-12-06T02:01:00Z", "status": "identified",
                     "message": x, "by": by}],
                    "postmortem": {"summary": x, "root_cause": x, "whys": [x, x, x, x, x],
                                   "actions": [x], "at": "2026-12-06T03:00:00Z", "by": by}},
            },
            "pm": {"summary": x, "root_cause": x, "whys": [x, x, x, x, x], "actions": x},
            "statuses": ["investigating", "identified", "monitoring"],
            "priorities": ["P1", "P2", "P3", "P4"],
        });
        let h = HeaderMap::new();
        let p = super::super::render::Page {
            headers: &h,
            user: "ada",
            csrf: "tok",
            name: "incident",
        };
        let r = render::page(p, &data);
        let bytes = axum::body::to_bytes(r.into_body(), usize::MAX)
            .await
            .unwrap();
        let out = String::from_utf8(bytes.to_vec()).unwrap();
        assert!(!out.contains("<script>x"), "{out}");
        // Title, reason, update, its author, the post-mortem's fields and the timeline's.
        assert!(out.matches("&lt;script&gt;x").count() >= 15, "{out}");
        assert_eq!(out.matches("name=\"why\"").count(), WHYS, "{out}");
        assert_eq!(
            out.matches("name=\"csrf\" value=\"tok\"").count(),
            5,
            "{out}"
        );
    }

    #[test]
    fn the_forms_become_the_apis_requests() {
        let pm = postmortem_of(
            b"csrf=x&summary=disk+full&root_cause=logs&why=a&why=b&why=c&why=d&why=e\
              &actions=rotate+logs%0D%0A%0D%0A+alert+at+80%25+",
        )
        .unwrap();
        assert_eq!(pm.whys, ["a", "b", "c", "d", "e"]);
        assert_eq!(pm.actions, ["rotate logs", "alert at 80%"]);
        assert!(pm.check().is_empty(), "{:?}", pm.check());
        let up = update_request(b"status=identified&message=%3Cb%3E").unwrap();
        assert_eq!(
            (up.status, up.message.as_str()),
            (IncidentStatus::Identified, "<b>")
        );
        assert!(update_request(b"status=resolved&message=x").is_err());
        assert!(update_request(b"status=&message=x").is_err());
        let open = open_request(b"service=db&title=t&priority=p2&message=").unwrap();
        assert_eq!(open.priority, Some(IncidentPriority::P2));
        assert_eq!(open.message, None);
        assert!(open_request(b"service=a%20b&title=t").is_err());
        assert!(open_request(b"service=db&title=t&priority=P9").is_err());
        assert_eq!(resolve_request(b"message=+").unwrap().message, None);
    }
}
