//! The pages notices link to, on the public router: `/incidents/{id}` (an incident's public
//! timeline: the probes' steps in the page's words, the updates people wrote, the post-mortem
//! once written) and `/windows/{id}` (a maintenance window: its times, in UTC and in its own
//! zone, turned into the reader's zone by `page.js`; its services, reason, what to use
//! meanwhile), in English and Chinese like the status page.
//!
//! Unlike the status page these are rendered per request (one store read each: a mail's
//! readers come over minutes, not in one burst, and the listener's caps bound them). They show
//! no more than the page does: an incident of a service that is not public, a drill, or a
//! window that affects no public service is a 404 that says nothing of why, and a window's
//! hidden services are left out of it. The incident's public view comes from
//! [`crate::Control::public_incident`]; the window from [`crate::Control::window`], made an
//! [`Announcement`] and cut to the public services the page shows.

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use jiff::Timestamp;
use serde::Serialize;
use std::sync::OnceLock;
use upkeep_core::i18n::Lang;
use upkeep_core::window::{Announcement, WindowStatus};

use super::model::{PageIncident, Step};
use super::written::{self, PmView};
use super::{LangQuery, Variant, html, pick_lang, starting, words};
use crate::ApiError;
use crate::api::AppState;

pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/incidents/{id}", get(incident))
        .route("/windows/{id}", get(window))
}

fn env() -> &'static minijinja::Environment<'static> {
    static ENV: OnceLock<minijinja::Environment<'static>> = OnceLock::new();
    ENV.get_or_init(|| {
        let mut env = minijinja::Environment::new();
        env.set_undefined_behavior(minijinja::UndefinedBehavior::Strict);
        env.add_template("detail.html", include_str!("assets/detail.html"))
            .expect("the detail template compiles (tested)");
        env
    })
}

/// The same answer for every id the public may not see: no telling a hidden one from none.
fn not_found(what: &str) -> Response {
    (
        StatusCode::NOT_FOUND,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        format!("no such {what} on this status page\n"),
    )
        .into_response()
}

fn id_of(raw: &str) -> Option<i64> {
    raw.parse::<i64>().ok().filter(|id| *id > 0)
}

#[derive(Serialize)]
struct TimeView {
    iso: String,
    text: String,
}

fn time(t: Timestamp) -> TimeView {
    TimeView {
        iso: t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string(),
        text: t.strftime("%Y-%m-%d %H:%M UTC").to_string(),
    }
}

#[derive(Serialize)]
struct StepView {
    at: TimeView,
    text: String,
}

#[derive(Serialize)]
struct IncidentView {
    started: TimeView,
    resolved: Option<TimeView>,
    lasting: String,
    steps: Vec<StepView>,
    postmortem: Option<PmView>,
}

#[derive(Serialize)]
struct AffectedView {
    name: String,
    impact: &'static str,
}

#[derive(Serialize)]
struct WindowView {
    ongoing: bool,
    status: &'static str,
    start: TimeView,
    end: TimeView,
    tz: String,
    /// Start and end as the clock on the wall of the window's zone reads them.
    local: String,
    repeat: Option<String>,
    reason: String,
    affected: Vec<AffectedView>,
    alternative: String,
    follow_up: String,
}

#[derive(Serialize)]
struct DetailView {
    t: &'static words::Words,
    heading: String,
    incident: Option<IncidentView>,
    window: Option<WindowView>,
}

/// Incident `i`'s page in `lang`; `display` is its service's name on the page.
pub(super) fn incident_page(
    i: &PageIncident,
    display: &str,
    now: Timestamp,
    lang: Lang,
) -> Result<String, minijinja::Error> {
    let t = words::of(lang);
    // An incident opened by hand has no probe's opening: its timeline starts at its start
    // all the same.
    let opened = (!i.timeline.iter().any(|(_, s)| *s == Step::Opened))
        .then(|| (i.started, t.step(Step::Opened)));
    let mut steps: Vec<(Timestamp, String)> = opened
        .into_iter()
        .chain(i.timeline.iter().map(|(at, s)| (*at, t.step(*s))))
        .chain(
            i.written
                .updates
                .iter()
                .map(|(at, status, message)| (*at, written::update_text(*status, message, lang))),
        )
        .collect();
    steps.sort_by_key(|(at, _)| *at);
    let until = i.resolved.unwrap_or(now);
    let heading = match &i.written.title {
        Some(title) => format!("{} {display}: {title}", t.incident_on),
        None => format!("{} {display}", t.incident_on),
    };
    let view = DetailView {
        t,
        heading,
        incident: Some(IncidentView {
            started: time(i.started),
            resolved: i.resolved.map(time),
            lasting: t.span(until.as_millisecond() - i.started.as_millisecond()),
            steps: steps
                .into_iter()
                .map(|(at, text)| StepView { at: time(at), text })
                .collect(),
            postmortem: written::postmortem(&i.written, lang),
        }),
        window: None,
    };
    render(&view)
}

/// Window `a`'s page in `lang` (`a` cut to public services already); `display` names them.
pub(super) fn window_page(
    a: &Announcement,
    display: impl Fn(&str) -> String,
    lang: Lang,
) -> Result<String, minijinja::Error> {
    let t = words::of(lang);
    let zone = jiff::tz::TimeZone::get(&a.tz).unwrap_or(jiff::tz::TimeZone::UTC);
    let wall = |ts: Timestamp| {
        ts.to_zoned(zone.clone())
            .strftime("%Y-%m-%d %H:%M")
            .to_string()
    };
    let status = match a.status {
        WindowStatus::Scheduled => t.scheduled,
        WindowStatus::Running => t.ongoing,
        WindowStatus::Overrun => t.overrun,
        WindowStatus::Completed => t.completed,
        WindowStatus::Cancelled => t.cancelled,
    };
    let view = DetailView {
        t,
        heading: format!("{}: {}", super::render::kind_word(a.kind, lang), a.title),
        incident: None,
        window: Some(WindowView {
            ongoing: matches!(a.status, WindowStatus::Running | WindowStatus::Overrun),
            status,
            start: time(a.start),
            end: time(a.end),
            tz: a.tz.clone(),
            local: format!("{} – {}", wall(a.start), wall(a.end)),
            repeat: a.repeat.clone(),
            reason: a.reason.clone(),
            affected: a
                .services
                .iter()
                .map(|s| AffectedView {
                    name: display(s.service.as_str()),
                    impact: t.impact(s.impact),
                })
                .collect(),
            alternative: a.alternative.clone(),
            follow_up: a.follow_up.clone(),
        }),
    };
    render(&view)
}

fn render(view: &DetailView) -> Result<String, minijinja::Error> {
    env()
        .get_template("detail.html")?
        .render(minijinja::Value::from(minijinja::value::Serde(view)))
}

fn page(
    headers: &HeaderMap,
    body: Result<String, minijinja::Error>,
    cookie: Option<axum::http::HeaderValue>,
) -> Response {
    match body {
        Ok(b) => super::secure(html(headers, &Variant::new(b), cookie)),
        Err(e) => ApiError::Internal(Box::new(e)).into_response(),
    }
}

async fn incident(
    State(s): State<AppState>,
    Path(raw): Path<String>,
    Query(q): Query<LangQuery>,
    headers: HeaderMap,
) -> Response {
    let Some(site) = s.control.site() else {
        return not_found("incident");
    };
    let Some(published) = site.ready().await else {
        return starting();
    };
    let Some(id) = id_of(&raw) else {
        return not_found("incident");
    };
    let i = match s.control.public_incident(id).await {
        Ok(Some(i)) => i,
        Ok(None) => return not_found("incident"),
        Err(e) => return e.into_response(),
    };
    // The page's own list of public services decides too: what it does not show, this
    // page does not either.
    let Some(display) = published.displays.get(i.service.as_str()) else {
        return not_found("incident");
    };
    let (lang, cookie) = pick_lang(q.lang.as_deref(), &headers);
    let now = s.control.clock().now();
    page(&headers, incident_page(&i, display, now, lang), cookie)
}

async fn window(
    State(s): State<AppState>,
    Path(raw): Path<String>,
    Query(q): Query<LangQuery>,
    headers: HeaderMap,
) -> Response {
    let Some(site) = s.control.site() else {
        return not_found("maintenance window");
    };
    let Some(published) = site.ready().await else {
        return starting();
    };
    let Some(id) = id_of(&raw) else {
        return not_found("maintenance window");
    };
    let w = match s.control.window(id).await {
        Ok(w) => w,
        Err(ApiError::NotFound(_)) => return not_found("maintenance window"),
        Err(e) => return e.into_response(),
    };
    let shown = |name: &upkeep_core::ServiceName| published.displays.contains_key(name.as_str());
    let Some(a) = Announcement::from(&w).public(shown) else {
        return not_found("maintenance window");
    };
    let (lang, cookie) = pick_lang(q.lang.as_deref(), &headers);
    let display = |name: &str| {
        published
            .displays
            .get(name)
            .cloned()
            .unwrap_or_else(|| name.to_owned())
    };
    page(&headers, window_page(&a, display, lang), cookie)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::site::model::Written;
    use upkeep_core::incident::{IncidentStatus, Postmortem};
    use upkeep_core::window::{AffectedService, Impact, Priority, WindowKind};
    use upkeep_core::{ServiceName, State};

    fn t(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    fn incident(resolved: bool) -> PageIncident {
        PageIncident {
            id: 3,
            service: ServiceName::new("api").unwrap(),
            started: t("2026-11-26T05:00:00Z"),
            resolved: resolved.then(|| t("2026-11-26T05:42:00Z")),
            timeline: vec![
                (t("2026-11-26T05:00:00Z"), Step::Opened),
                (t("2026-11-26T05:01:00Z"), Step::Became(State::Down)),
            ],
            written: Written {
                title: Some("Checkout <fails>".into()),
                updates: vec![(
                    t("2026-11-26T05:10:00Z"),
                    IncidentStatus::Identified,
                    "<script>alert(1)</script> a bad deploy".into(),
                )],
                postmortem: resolved.then(|| Postmortem {
                    summary: "the deploy broke checkout".into(),
                    root_cause: "no canary".into(),
                    whys: vec!["one".into(), "two".into()],
                    actions: vec!["add a canary".into()],
                }),
            },
        }
    }

    #[test]
    fn an_incident_page_shows_its_timeline_updates_and_postmortem_escaped() {
        let now = t("2026-11-26T06:00:00Z");
        let open = incident_page(&incident(false), "API", now, Lang::En).unwrap();
        assert!(
            open.contains("Incident on API: Checkout &lt;fails&gt;"),
            "{open}"
        );
        assert!(open.contains("Identified: &lt;script&gt;"), "{open}");
        assert!(!open.contains("<script>alert"), "{open}");
        assert!(open.contains("Now: Down") && open.contains("1 h"), "{open}");
        // The steps in the order they happened: opened, down, then the update.
        let (a, b) = (
            open.find("Incident opened").unwrap(),
            open.find("Identified").unwrap(),
        );
        assert!(a < b);
        let done = incident_page(&incident(true), "API", now, Lang::ZhCn).unwrap();
        assert!(
            done.contains("lang=\"zh-CN\"") && done.contains("已查明原因"),
            "{done}"
        );
        assert!(
            done.contains("事后复盘") && done.contains("no canary"),
            "{done}"
        );
        assert!(done.contains("42分钟"), "{done}");
    }

    #[test]
    fn a_window_page_shows_its_times_in_utc_and_in_its_zone() {
        let a = Announcement {
            id: 7,
            kind: WindowKind::Upgrade,
            priority: Priority::Important,
            title: "PostgreSQL 17".into(),
            reason: "security fixes".into(),
            start: t("2026-12-05T18:00:00Z"),
            end: t("2026-12-05T20:00:00Z"),
            tz: "Asia/Shanghai".into(),
            repeat: None,
            services: vec![AffectedService {
                service: ServiceName::new("db").unwrap(),
                impact: Impact::Degraded,
            }],
            alternative: "the read-only replica".into(),
            follow_up: "https://status.example.com".into(),
            status: WindowStatus::Scheduled,
            revision: 1,
            updated: t("2026-11-20T00:00:00Z"),
        };
        let en = window_page(&a, |n| format!("The {n}"), Lang::En).unwrap();
        assert!(
            en.contains("Upgrade: PostgreSQL 17") && en.contains("Scheduled"),
            "{en}"
        );
        assert!(en.contains("datetime=\"2026-12-05T18:00:00Z\""), "{en}");
        // (minijinja escapes `/` too.)
        assert!(
            en.contains("(Asia&#x2f;Shanghai): 2026-12-06 02:00 – 2026-12-06 04:00"),
            "{en}"
        );
        assert!(
            en.contains("The db (degraded)") && en.contains("read-only replica"),
            "{en}"
        );
        let zh = window_page(&a, |n| n.to_owned(), Lang::ZhCn).unwrap();
        assert!(
            zh.contains("升级：PostgreSQL 17") || zh.contains("升级: PostgreSQL 17"),
            "{zh}"
        );
        assert!(zh.contains("当地时间") && zh.contains("已计划"), "{zh}");
    }
}
