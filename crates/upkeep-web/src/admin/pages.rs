//! The admin pages and their forms, behind the gate of `mod.rs` (a session, and for a POST
//! the same origin and the session's CSRF token): services (state, start, stop, restart, a log
//! tail), maintenance windows (list, schedule, edit, cancel), the outbox (retry), subscribers,
//! and who did what (the operator actions in the event history); incidents and feedback are
//! `incidents.rs`'s.
//!
//! Each handler reads or acts through [`crate::Control`], the calls the JSON API makes, with
//! the signed-in user as the principal, so each action is recorded with their name. A form
//! that succeeds answers with a redirect to its page (POST, redirect, GET: a reload does not
//! repeat it); one that fails answers the error's status with a page that says why.

use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use futures_util::StreamExt;
use upkeep_core::ServiceName;
use upkeep_core::window::{
    AffectedService, Impact, Priority, WindowAction, WindowKind, WindowRequest, WindowSpec,
};

use super::Csrf;
use super::paging::{PageQuery, listed, page_number, read_from, shown};
use super::render::{self, Page};
use crate::ApiError;
use crate::api::{Action, AppState, Target};
use crate::auth::By;

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/admin/services", get(services))
        .route("/admin/services/{name}", get(service))
        .route("/admin/services/{name}/{action}", post(act))
        .route("/admin/windows", get(windows).post(add_window))
        .route("/admin/windows/{id}", get(window).post(edit_window))
        .route("/admin/windows/{id}/cancel", post(cancel_window))
        .route("/admin/outbox", get(outbox))
        .route("/admin/outbox/{id}/retry", post(retry))
        .route("/admin/subscribers", get(subscribers))
        .route("/admin/audit", get(audit))
        .merge(super::incidents::routes())
}

/// A random token (32 bytes from the OS, hex) for the login form's double submit.
pub(super) fn random_token() -> Result<String, ApiError> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|e| ApiError::Internal(e.to_string().into()))?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// What every page shows: who is signed in, their CSRF token, the language.
pub(super) fn page<'a>(
    headers: &'a HeaderMap,
    by: &'a By,
    csrf: &'a Csrf,
    name: &'static str,
) -> Page<'a> {
    Page {
        headers,
        user: &by.0.name,
        csrf: &csrf.0,
        name,
    }
}

/// An error of an action as a page, with the status the API would answer.
pub(super) fn failed(headers: &HeaderMap, e: ApiError) -> Response {
    let (status, message) = match e {
        ApiError::BadRequest { message, hint } | ApiError::Unprocessable { message, hint } => {
            let status = StatusCode::UNPROCESSABLE_ENTITY;
            (status, with_hint(message, hint))
        }
        ApiError::NotFound(m) => (StatusCode::NOT_FOUND, m),
        ApiError::Conflict(m) => (StatusCode::CONFLICT, m),
        ApiError::Unavailable { message, hint } => {
            (StatusCode::SERVICE_UNAVAILABLE, with_hint(message, hint))
        }
        other => return other.into_response(),
    };
    render::problem(headers, status, &message)
}

fn with_hint(message: String, hint: Option<String>) -> String {
    match hint {
        Some(h) => format!("{message} ({h})"),
        None => message,
    }
}

pub(super) fn name_of(raw: &str) -> Result<ServiceName, ApiError> {
    ServiceName::new(raw).map_err(|e| ApiError::bad_request(e.to_string()))
}

async fn services(
    State(s): State<AppState>,
    headers: HeaderMap,
    by: By,
    axum::Extension(csrf): axum::Extension<Csrf>,
) -> Response {
    match s.control.services().await {
        Ok(list) => render::page(
            page(&headers, &by, &csrf, "services"),
            &serde_json::json!({
                "services": list,
            }),
        ),
        Err(e) => failed(&headers, e),
    }
}

/// The most of a log tail a page shows.
const TAIL_LINES: usize = 100;
const TAIL_BYTES: usize = 64 * 1024;

async fn tail(s: &AppState, name: &ServiceName, stderr: bool) -> Result<String, ApiError> {
    let mut stream = s.control.log_tail(name, stderr, TAIL_LINES).await?;
    let mut text = Vec::new();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| ApiError::Internal(Box::new(e)))?;
        text.extend_from_slice(&chunk);
        if text.len() > TAIL_BYTES {
            let cut = text.len() - TAIL_BYTES;
            text.drain(..cut);
        }
    }
    Ok(String::from_utf8_lossy(&text).into_owned())
}

async fn service(
    State(s): State<AppState>,
    headers: HeaderMap,
    by: By,
    axum::Extension(csrf): axum::Extension<Csrf>,
    Path(raw): Path<String>,
) -> Response {
    let result = async {
        let name = name_of(&raw)?;
        let detail = s.control.service(&name).await?;
        let out = tail(&s, &name, false).await?;
        let err = tail(&s, &name, true).await?;
        Ok::<_, ApiError>(serde_json::json!({
            "service": detail, "stdout": out, "stderr": err,
        }))
    }
    .await;
    match result {
        Ok(v) => render::page(page(&headers, &by, &csrf, "service"), &v),
        Err(e) => failed(&headers, e),
    }
}

async fn act(
    State(s): State<AppState>,
    headers: HeaderMap,
    By(by): By,
    Path((raw, action)): Path<(String, String)>,
) -> Response {
    let result = async {
        let name = name_of(&raw)?;
        let action = match action.as_str() {
            "start" => Action::Start,
            "stop" => Action::Stop,
            "restart" => Action::Restart,
            other => {
                return Err(ApiError::bad_request(format!(
                    "unknown action `{other}`: start, stop or restart"
                )));
            }
        };
        s.control.act(Target::One(name), action, &by).await
    }
    .await;
    match result {
        Ok(_) => Redirect::to("/admin/services").into_response(),
        Err(e) => failed(&headers, e),
    }
}

/// The window form's fields, as typed.
#[derive(Debug, Default, serde::Serialize)]
pub(super) struct WindowForm {
    kind: String,
    title: String,
    reason: String,
    /// A wall time (`2026-12-06T02:00`, what `<input type=datetime-local>` sends) in `tz`.
    start: String,
    tz: String,
    /// The offset that says which of a wall time the zone passes twice (or one it skips)
    /// is meant (`-04:00`): a datetime-local input takes none. Empty: the zone's own.
    offset: String,
    /// How long: `2h`, `90m`.
    duration: String,
    services: Vec<String>,
    impact: String,
    alternative: String,
    follow_up: String,
    priority: String,
    force_why: String,
}

impl WindowForm {
    fn parse(body: &[u8]) -> Result<WindowForm, ApiError> {
        let pairs: Vec<(String, String)> = serde_urlencoded::from_bytes(body)
            .map_err(|e| ApiError::bad_request(format!("the form does not decode: {e}")))?;
        let mut f = WindowForm::default();
        for (k, v) in pairs {
            let v = v.trim().to_owned();
            match k.as_str() {
                "kind" => f.kind = v,
                "title" => f.title = v,
                "reason" => f.reason = v,
                "start" => f.start = v,
                "tz" => f.tz = v,
                "offset" => f.offset = v,
                "duration" => f.duration = v,
                "service" => f.services.push(v),
                "impact" => f.impact = v,
                "alternative" => f.alternative = v,
                "follow_up" => f.follow_up = v,
                "priority" => f.priority = v,
                "force_why" => f.force_why = v,
                _ => {} // csrf, and anything a future form adds
            }
        }
        Ok(f)
    }

    /// The form as a request, or a 400 naming the field to fix.
    fn request(&self) -> Result<WindowRequest, ApiError> {
        let bad = |m: String| ApiError::bad_request(m);
        let kind = WindowKind::ALL
            .into_iter()
            .find(|k| k.as_str() == self.kind)
            .ok_or_else(|| bad(format!("`{}` is not a kind of window", self.kind)))?;
        let typed = if self.tz.is_empty() { "UTC" } else { &self.tz };
        let when = |e: upkeep_core::when::WhenError| bad(e.to_string());
        let tz = upkeep_core::when::zone(typed).map_err(when)?;
        let tz_name = upkeep_core::when::zone_name(&tz, typed);
        // The CLI's reading: an offset or Z is that instant, a wall time is in the zone; the
        // offset field, when set, is that wall time's offset.
        let typed_start = if self.offset.is_empty() {
            self.start.clone()
        } else {
            let offset = hh_mm(&self.offset);
            let o = offset.as_bytes();
            let well_formed = o.len() == 6
                && matches!(o[0], b'+' | b'-')
                && o[3] == b':'
                && [1, 2, 4, 5].iter().all(|i| o[*i].is_ascii_digit());
            if !well_formed {
                return Err(bad(format!(
                    "`{}` in the Offset field is not an offset: write hours and minutes, such as -04:00 or +05:30 (or leave it empty)",
                    self.offset
                )));
            }
            format!("{}{offset}", self.start)
        };
        let start = upkeep_core::when::parse_time(&typed_start, &tz).map_err(|e| {
            // The CLI's words ask for an offset typed after the time, which a
            // datetime-local input cannot take: the form has its field for it.
            use upkeep_core::when::WhenError;
            match e {
                WhenError::Twice {
                    text,
                    zone,
                    first,
                    second,
                } => bad(format!(
                    "`{text}` happens twice in {zone} (clocks go back): say which in the Offset field, {} (the first) or {} (the second)",
                    hh_mm(&first),
                    hh_mm(&second)
                )),
                WhenError::Skipped {
                    text,
                    zone,
                    before,
                    after,
                } => bad(format!(
                    "`{text}` does not exist in {zone}: clocks jump from {} to {} there; choose a time outside the jump, or write {} in the Offset field",
                    hh_mm(&before),
                    hh_mm(&after),
                    hh_mm(&before)
                )),
                e => when(e),
            }
        })?;
        let length = upkeep_core::duration::parse(&self.duration)
            .filter(|d| !d.is_zero())
            .and_then(|d| jiff::SignedDuration::try_from(d).ok())
            .ok_or_else(|| {
                bad(format!(
                    "`{}` is not a duration (2h, 90m, 1d)",
                    self.duration
                ))
            })?;
        let end = start
            .checked_add(length)
            .map_err(|_| bad("the window ends too far away".into()))?;
        let impact = match self.impact.as_str() {
            "degraded" => Impact::Degraded,
            _ => Impact::Outage,
        };
        let services = self
            .services
            .iter()
            .map(|s| {
                Ok(AffectedService {
                    service: name_of(s)?,
                    impact,
                })
            })
            .collect::<Result<Vec<_>, ApiError>>()?;
        let priority = match self.priority.as_str() {
            "" => None,
            "emergency" => Some(Priority::Emergency),
            "important" => Some(Priority::Important),
            "routine" => Some(Priority::Routine),
            other => return Err(bad(format!("`{other}` is not a priority"))),
        };
        Ok(WindowRequest {
            spec: WindowSpec {
                kind,
                title: self.title.clone(),
                reason: self.reason.clone(),
                start,
                end,
                tz: tz_name,
                repeat: None,
                services,
                alternative: self.alternative.clone(),
                follow_up: self.follow_up.clone(),
                priority,
            },
            force_why: (!self.force_why.is_empty()).then(|| self.force_why.clone()),
        })
    }

    /// A stored window's fields, to edit.
    fn of(w: &upkeep_core::window::Window) -> WindowForm {
        let tz = jiff::tz::TimeZone::get(&w.spec.tz).unwrap_or(jiff::tz::TimeZone::UTC);
        let length = w.spec.end.duration_since(w.spec.start);
        WindowForm {
            kind: w.spec.kind.as_str().into(),
            title: w.spec.title.clone(),
            reason: w.spec.reason.clone(),
            start: w
                .spec
                .start
                .to_zoned(tz)
                .strftime("%Y-%m-%dT%H:%M")
                .to_string(),
            tz: w.spec.tz.clone(),
            offset: String::new(),
            duration: format!("{}m", length.as_secs().max(60) / 60),
            services: w
                .spec
                .services
                .iter()
                .map(|s| s.service.to_string())
                .collect(),
            impact: w
                .spec
                .services
                .first()
                .map_or("outage", |s| s.impact.as_str())
                .into(),
            alternative: w.spec.alternative.clone(),
            follow_up: w.spec.follow_up.clone(),
            priority: w.spec.priority.map_or("", |p| p.as_str()).into(),
            force_why: String::new(),
        }
    }
}

/// The lead-time rule, for the page and for `admin.js` (in data attributes, in seconds).
fn rule(s: &AppState) -> serde_json::Value {
    match s.control.accounts() {
        Some(a) => {
            let r = a.lead_time();
            serde_json::json!({
                "short_max": r.short_max.as_secs(),
                "short_notice": r.short_notice.as_secs(),
                "long_notice": r.long_notice.as_secs(),
                "short_max_text": render::span(r.short_max),
                "short_notice_text": render::span(r.short_notice),
                "long_notice_text": render::span(r.long_notice),
            })
        }
        None => serde_json::Value::Null,
    }
}

/// Every configured service, `public = false` ones too: operators may put any in a window
/// (the public views leave hidden ones out of it).
pub(super) async fn service_names(s: &AppState) -> Vec<String> {
    s.control
        .services()
        .await
        .map(|list| {
            list.into_iter()
                .map(|i| i.status.name.to_string())
                .collect()
        })
        .unwrap_or_default()
}

async fn windows(
    State(s): State<AppState>,
    headers: HeaderMap,
    by: By,
    axum::Extension(csrf): axum::Extension<Csrf>,
    q: Result<Query<PageQuery>, QueryRejection>,
) -> Response {
    let result = async {
        let p = page_number(q)?;
        let all = s.control.windows(false).await?;
        Ok::<_, ApiError>(listed("windows", Some(read_from(all, p)), p))
    }
    .await;
    let mut v = match result {
        Ok(v) => v,
        Err(e) => return failed(&headers, e),
    };
    let form = WindowForm {
        kind: "maintenance".into(),
        tz: "UTC".into(),
        duration: "1h".into(),
        impact: "outage".into(),
        ..WindowForm::default()
    };
    v["form"] = serde_json::json!(form);
    v["action"] = "/admin/windows".into();
    v["names"] = service_names(&s).await.into();
    v["rule"] = rule(&s);
    render::page(page(&headers, &by, &csrf, "windows"), &v)
}

async fn add_window(
    State(s): State<AppState>,
    headers: HeaderMap,
    By(by): By,
    body: Bytes,
) -> Response {
    let result = async {
        let req = WindowForm::parse(&body)?.request()?;
        s.control.add_window(req, &by).await.map_err(form_hint)
    }
    .await;
    match result {
        Ok(_) => Redirect::to("/admin/windows").into_response(),
        Err(e) => failed(&headers, e),
    }
}

/// An offset as the form's field takes it: `-04` (jiff's way of writing a whole hour) as
/// `-04:00`; anything else as it is.
fn hh_mm(offset: &str) -> String {
    let o = offset.trim();
    let b = o.as_bytes();
    if b.len() == 3 && matches!(b[0], b'+' | b'-') && b[1..].iter().all(u8::is_ascii_digit) {
        format!("{o}:00")
    } else {
        o.to_owned()
    }
}

/// The lead-time refusal (the one unprocessable answer to a window's add or edit) with the
/// form's way out, not the CLI's flags.
fn form_hint(e: ApiError) -> ApiError {
    match e {
        ApiError::Unprocessable { message, .. } => ApiError::Unprocessable {
            message,
            hint: Some(
                "start later, or fill in \"Announce late anyway, because…\" to announce it as it is"
                    .into(),
            ),
        },
        e => e,
    }
}

fn window_id(raw: &str) -> Result<i64, ApiError> {
    raw.parse::<i64>()
        .ok()
        .filter(|id| *id > 0)
        .ok_or_else(|| ApiError::NotFound(format!("`{raw}` is not a window number")))
}

async fn window(
    State(s): State<AppState>,
    headers: HeaderMap,
    by: By,
    axum::Extension(csrf): axum::Extension<Csrf>,
    Path(raw): Path<String>,
) -> Response {
    let result = async {
        let id = window_id(&raw)?;
        s.control.window(id).await
    }
    .await;
    match result {
        Ok(w) => render::page(
            page(&headers, &by, &csrf, "window"),
            &serde_json::json!({
                "window": w,
                "form": WindowForm::of(&w),
                "action": format!("/admin/windows/{}", w.id),
                "names": service_names(&s).await,
                "rule": rule(&s),
            }),
        ),
        Err(e) => failed(&headers, e),
    }
}

async fn edit_window(
    State(s): State<AppState>,
    headers: HeaderMap,
    By(by): By,
    Path(raw): Path<String>,
    body: Bytes,
) -> Response {
    let result = async {
        let id = window_id(&raw)?;
        let req = WindowForm::parse(&body)?.request()?;
        s.control.edit_window(id, req, &by).await.map_err(form_hint)
    }
    .await;
    match result {
        Ok(_) => Redirect::to("/admin/windows").into_response(),
        Err(e) => failed(&headers, e),
    }
}

async fn cancel_window(
    State(s): State<AppState>,
    headers: HeaderMap,
    By(by): By,
    Path(raw): Path<String>,
) -> Response {
    let result = async {
        let id = window_id(&raw)?;
        s.control.window_action(id, WindowAction::Cancel, &by).await
    }
    .await;
    match result {
        Ok(_) => Redirect::to("/admin/windows").into_response(),
        Err(e) => failed(&headers, e),
    }
}

async fn outbox(
    State(s): State<AppState>,
    headers: HeaderMap,
    by: By,
    axum::Extension(csrf): axum::Extension<Csrf>,
    q: Result<Query<PageQuery>, QueryRejection>,
) -> Response {
    let result = async {
        let p = page_number(q)?;
        let rows = s.control.notices_page(p.offset, p.read).await?;
        Ok::<_, ApiError>(listed("notices", Some(rows), p))
    }
    .await;
    match result {
        Ok(v) => render::page(page(&headers, &by, &csrf, "outbox"), &v),
        Err(e) => failed(&headers, e),
    }
}

async fn retry(
    State(s): State<AppState>,
    headers: HeaderMap,
    By(by): By,
    Path(raw): Path<String>,
) -> Response {
    let result = async {
        let id = raw
            .parse::<i64>()
            .map_err(|_| ApiError::NotFound(format!("`{raw}` is not a notice number")))?;
        s.control.retry_notice(id, &by).await
    }
    .await;
    match result {
        Ok(_) => Redirect::to("/admin/outbox").into_response(),
        Err(e) => failed(&headers, e),
    }
}

async fn subscribers(
    State(s): State<AppState>,
    headers: HeaderMap,
    by: By,
    axum::Extension(csrf): axum::Extension<Csrf>,
    q: Result<Query<PageQuery>, QueryRejection>,
) -> Response {
    let result = async {
        let p = page_number(q)?;
        let rows = match s.control.subscriptions() {
            Some(_) => Some(s.control.subscribers_page(p.offset, p.read).await?),
            None => None,
        };
        Ok::<_, ApiError>(listed("subscribers", rows, p))
    }
    .await;
    match result {
        Ok(v) => render::page(page(&headers, &by, &csrf, "subscribers"), &v),
        Err(e) => failed(&headers, e),
    }
}

async fn audit(
    State(s): State<AppState>,
    headers: HeaderMap,
    by: By,
    axum::Extension(csrf): axum::Extension<Csrf>,
    q: Result<Query<PageQuery>, QueryRejection>,
) -> Response {
    let p = match page_number(q) {
        Ok(p) => p,
        Err(e) => return failed(&headers, e),
    };
    // Interventions (an operator changed a service's state), and every other event a person
    // caused: what they wrote to an incident, the windows they scheduled (the store finds
    // them, a page at a time).
    match s.control.actions_page(p.offset, p.read).await {
        Ok(events) => {
            let (events, newer, older) = shown(events, p);
            let actions: Vec<_> = events
                .into_iter()
                .filter_map(|e| {
                    let who = e.detail.get("by").and_then(|b| b.get("principal")).cloned();
                    (e.intervention || who.is_some()).then_some((e, who))
                })
                .map(|(e, who)| {
                    serde_json::json!({
                        "id": e.id, "at": e.at, "service": e.service, "kind": e.kind,
                        "who": who, "detail": e.detail.to_string(),
                    })
                })
                .collect();
            render::page(
                page(&headers, &by, &csrf, "audit"),
                &serde_json::json!({
                    "actions": actions, "page": p.number, "newer": newer, "older": older,
                }),
            )
        }
        Err(e) => failed(&headers, e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_window_form_becomes_a_request() {
        let body = b"csrf=x&kind=upgrade&title=PostgreSQL+17&reason=fixes&start=2026-12-06T02%3A00\
            &tz=Asia%2FShanghai&duration=2h&service=db&service=api&impact=degraded&priority=";
        let req = WindowForm::parse(body).unwrap().request().unwrap();
        assert_eq!(req.spec.kind, WindowKind::Upgrade);
        assert_eq!(req.spec.start.to_string(), "2026-12-05T18:00:00Z");
        assert_eq!(req.spec.end.to_string(), "2026-12-05T20:00:00Z");
        assert_eq!(req.spec.services.len(), 2);
        assert_eq!(req.spec.services[1].impact, Impact::Degraded);
        assert_eq!(req.spec.priority, None);
        assert_eq!(req.force_why, None);
    }

    #[test]
    fn an_offset_or_z_in_the_form_is_that_instant() {
        let start = |body: &[u8]| {
            let req = WindowForm::parse(body).unwrap().request().unwrap();
            (req.spec.start.to_string(), req.spec.tz)
        };
        assert_eq!(
            start(b"kind=repair&start=2026-12-01T10%3A00-05%3A00&tz=Asia%2FTokyo&duration=1h"),
            ("2026-12-01T15:00:00Z".into(), "Asia/Tokyo".into())
        );
        assert_eq!(
            start(b"kind=repair&start=2026-12-01T15%3A00Z&tz=asia%2Ftokyo&duration=1h"),
            ("2026-12-01T15:00:00Z".into(), "Asia/Tokyo".into())
        );
    }

    /// Break-it, session 10: a wall time the zone passes twice was refused asking for an
    /// offset typed after it, which the form's datetime-local input cannot take. The form
    /// has an Offset field, its error speaks of it, and what it asks for is taken.
    #[test]
    fn a_wall_time_passed_twice_is_chosen_with_the_offset_field() {
        let ask = |body: &[u8]| WindowForm::parse(body).unwrap().request();
        let twice = b"kind=repair&start=2026-11-01T01%3A30&tz=America%2FNew_York&duration=1h";
        let msg = match ask(twice) {
            Err(ApiError::BadRequest { message, .. }) => message,
            other => panic!("{other:?}"),
        };
        assert!(
            msg.contains("say which in the Offset field, -04:00 (the first) or -05:00"),
            "{msg}"
        );
        assert!(!msg.contains("write which with an offset"), "{msg}");
        let chosen = |offset: &str| {
            let body = format!(
                "kind=repair&start=2026-11-01T01%3A30&tz=America%2FNew_York&duration=1h&offset={}",
                offset.replace('+', "%2B")
            );
            ask(body.as_bytes()).unwrap().spec.start.to_string()
        };
        assert_eq!(chosen("-04:00"), "2026-11-01T05:30:00Z");
        assert_eq!(chosen("-05:00"), "2026-11-01T06:30:00Z");
        assert_eq!(chosen("-05"), "2026-11-01T06:30:00Z");
        let skipped = b"kind=repair&start=2026-03-08T02%3A30&tz=America%2FNew_York&duration=1h";
        let msg = match ask(skipped) {
            Err(ApiError::BadRequest { message, .. }) => message,
            other => panic!("{other:?}"),
        };
        assert!(msg.contains("write -05:00 in the Offset field"), "{msg}");
    }

    #[test]
    fn the_lead_time_refusal_speaks_of_the_form_not_the_cli() {
        let refusal = ApiError::Unprocessable {
            message: "a 1 h window needs 24 h notice".into(),
            hint: Some("... --force --why".into()),
        };
        match form_hint(refusal) {
            ApiError::Unprocessable { hint: Some(h), .. } => {
                assert!(h.contains("Announce late anyway"), "{h}");
                assert!(!h.contains("--"), "{h}");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_bad_field_is_named() {
        let msg = |body: &[u8]| match WindowForm::parse(body).unwrap().request() {
            Err(ApiError::BadRequest { message, .. }) => message,
            other => panic!("{other:?}"),
        };
        assert!(msg(b"kind=nap&start=2026-12-06T02:00&duration=1h").contains("kind"));
        assert!(msg(b"kind=repair&start=soon&duration=1h").contains("not a time"));
        assert!(
            msg(b"kind=repair&start=2027-03-28T02:30&duration=1h&tz=Europe/Berlin")
                .contains("does not exist in Europe/Berlin")
        );
        assert!(
            msg(b"kind=repair&start=2026-12-06T02:00&duration=1h&tz=Factory").contains("time zone")
        );
        assert!(
            msg(b"kind=repair&start=2026-12-06T02:00&duration=1h&offset=%2B8")
                .contains("Offset field")
        );
        assert!(msg(b"kind=repair&start=2026-12-06T02:00&duration=0").contains("duration"));
        assert!(
            msg(b"kind=repair&start=2026-12-06T02:00&duration=1h&tz=Mars/Base")
                .contains("time zone")
        );
        assert!(
            msg(b"kind=repair&start=2026-12-06T02:00&duration=1h&service=a%20b").contains("a b")
        );
    }
}
