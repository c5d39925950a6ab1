//! The admin pages' HTML: minijinja templates in `assets/` (names ending in `.html`, so every
//! value is HTML-escaped), the words of the reader's language, and the headers every answer
//! carries: a Content-Security-Policy that allows scripts and styles from this site only
//! (no inline script, no inline style), no framing, no caching of pages that show a session's
//! data, and `Referrer-Policy: same-origin` (a browser that sends no `Origin` still names the
//! page a form came from, for the same-origin check).

use std::sync::OnceLock;
use std::time::Duration;

use axum::Router;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use minijinja::Environment;
use serde::Serialize;
use upkeep_core::i18n::Lang;

use super::words;
use crate::api::AppState;

const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

const TEMPLATES: &[(&str, &str)] = &[
    ("layout.html", include_str!("assets/layout.html")),
    ("login.html", include_str!("assets/login.html")),
    ("problem.html", include_str!("assets/problem.html")),
    ("services.html", include_str!("assets/services.html")),
    ("service.html", include_str!("assets/service.html")),
    ("windows.html", include_str!("assets/windows.html")),
    ("window.html", include_str!("assets/window.html")),
    ("window_form.html", include_str!("assets/window_form.html")),
    ("outbox.html", include_str!("assets/outbox.html")),
    ("subscribers.html", include_str!("assets/subscribers.html")),
    ("audit.html", include_str!("assets/audit.html")),
    ("incidents.html", include_str!("assets/incidents.html")),
    ("incident.html", include_str!("assets/incident.html")),
    ("feedback.html", include_str!("assets/feedback.html")),
];

fn env() -> &'static Environment<'static> {
    static ENV: OnceLock<Environment<'static>> = OnceLock::new();
    ENV.get_or_init(|| {
        let mut env = Environment::new();
        env.set_undefined_behavior(minijinja::UndefinedBehavior::Chainable);
        for (name, source) in TEMPLATES {
            env.add_template(name, source)
                .expect("the admin templates compile (tested)");
        }
        env.add_filter("when", when);
        env
    })
}

/// An RFC 3339 time as `2026-12-06 02:00 UTC`; anything else as it is.
fn when(value: String) -> String {
    match value.parse::<jiff::Timestamp>() {
        Ok(t) => t.strftime("%Y-%m-%d %H:%M UTC").to_string(),
        Err(_) => value,
    }
}

/// A span as people write it: `24 h`, `7 d`, `30 min`.
pub(super) fn span(d: Duration) -> String {
    let s = d.as_secs();
    if s > 0 && s.is_multiple_of(86_400) {
        format!("{} d", s / 86_400)
    } else if s.is_multiple_of(3600) {
        format!("{} h", s / 3600)
    } else {
        format!("{} min", s.div_ceil(60))
    }
}

fn lang(headers: &HeaderMap) -> Lang {
    crate::site::pick_lang(None, headers).0
}

/// One word in the reader's language.
pub(super) fn word(headers: &HeaderMap, name: &'static str) -> String {
    words::one(lang(headers), name).to_owned()
}

/// What every signed-in page shows.
pub(super) struct Page<'a> {
    pub headers: &'a HeaderMap,
    pub user: &'a str,
    pub csrf: &'a str,
    /// The template (without `.html`), also the navigation's current entry.
    pub name: &'static str,
}

#[derive(Serialize)]
struct Common<'a, T: Serialize> {
    t: std::collections::BTreeMap<&'static str, &'static str>,
    lang: &'static str,
    user: &'a str,
    csrf: &'a str,
    nav: &'static str,
    #[serde(flatten)]
    data: &'a T,
}

fn render<T: Serialize>(template: &str, ctx: &T) -> Result<String, minijinja::Error> {
    env()
        .get_template(template)?
        .render(minijinja::Value::from(minijinja::value::Serde(ctx)))
}

fn lang_tag(l: Lang) -> &'static str {
    match l {
        Lang::En => "en",
        Lang::ZhCn => "zh-CN",
    }
}

/// A signed-in page, rendered with `data`.
pub(super) fn page<T: Serialize>(p: Page<'_>, data: &T) -> Response {
    let l = lang(p.headers);
    let ctx = Common {
        t: words::all(l),
        lang: lang_tag(l),
        user: p.user,
        csrf: p.csrf,
        nav: p.name,
        data,
    };
    match render(&format!("{}.html", p.name), &ctx) {
        Ok(html) => Html(html).into_response(),
        Err(e) => crate::ApiError::Internal(Box::new(e)).into_response(),
    }
}

/// The login form, with its double-submit token and maybe what went wrong.
pub(super) fn login(headers: &HeaderMap, token: &str, error: Option<&str>) -> Response {
    let l = lang(headers);
    let data = serde_json::json!({ "error": error });
    let ctx = Common {
        t: words::all(l),
        lang: lang_tag(l),
        user: "",
        csrf: token,
        nav: "login",
        data: &data,
    };
    match render("login.html", &ctx) {
        Ok(html) => Html(html).into_response(),
        Err(e) => crate::ApiError::Internal(Box::new(e)).into_response(),
    }
}

/// A page that says why something was refused or failed, with `status`.
pub(super) fn problem(headers: &HeaderMap, status: StatusCode, message: &str) -> Response {
    let l = lang(headers);
    let data = serde_json::json!({ "message": message, "code": status.as_u16() });
    let ctx = Common {
        t: words::all(l),
        lang: lang_tag(l),
        user: "",
        csrf: "",
        nav: "problem",
        data: &data,
    };
    match render("problem.html", &ctx) {
        Ok(html) => (status, Html(html)).into_response(),
        Err(e) => crate::ApiError::Internal(Box::new(e)).into_response(),
    }
}

/// The headers of every admin answer.
pub(super) async fn secure(mut r: Response) -> Response {
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    h.entry(header::CACHE_CONTROL)
        .or_insert(HeaderValue::from_static("no-store"));
    r
}

const CSS: &str = include_str!("assets/admin.css");
const JS: &str = include_str!("assets/admin.js");

/// The stylesheet and the optional script (the lead-time rule while typing).
pub(super) fn asset_routes() -> Router<AppState> {
    let asset = |body: &'static str, kind: &'static str| {
        (
            [
                (header::CONTENT_TYPE, kind),
                (header::CACHE_CONTROL, "public, max-age=300"),
            ],
            body,
        )
    };
    Router::new()
        .route(
            "/admin/admin.css",
            get(move || async move { asset(CSS, "text/css; charset=utf-8") }),
        )
        .route(
            "/admin/admin.js",
            get(move || async move { asset(JS, "text/javascript; charset=utf-8") }),
        )
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn html(r: Response) -> String {
        let bytes = axum::body::to_bytes(r.into_body(), usize::MAX).await;
        String::from_utf8(bytes.unwrap().to_vec()).unwrap()
    }

    #[test]
    fn every_template_compiles() {
        for (name, _) in TEMPLATES {
            env().get_template(name).unwrap();
        }
    }

    #[tokio::test]
    async fn user_text_is_escaped_and_no_script_is_inline() {
        let h = HeaderMap::new();
        let out = html(problem(
            &h,
            StatusCode::FORBIDDEN,
            "<script>alert(1)</script>",
        ))
        .await;
        assert!(
            out.contains("&lt;script&gt;alert(1)&lt;&#x2f;script&gt;"),
            "{out}"
        );
        let p = Page {
            headers: &h,
            user: "ada",
            csrf: "tok",
            name: "windows",
        };
        let data = serde_json::json!({
            "windows": [{"id": 1, "title": "<script>x</script>", "status": "scheduled",
                         "kind": "upgrade", "start": "2026-12-06T02:00:00Z",
                         "end": "2026-12-06T04:00:00Z", "services": [],
                         "created_by": {"name": "<b>", "via": "session"}}],
            "form": {"kind": "maintenance", "title": "\"><script>", "reason": "", "start": "",
                     "tz": "UTC", "duration": "1h", "services": [], "impact": "outage",
                     "alternative": "", "follow_up": "", "priority": "", "force_why": ""},
            "action": "/admin/windows", "names": ["db"],
            "rule": {"short_max": 14400, "short_notice": 86400, "long_notice": 604800,
                     "short_max_text": "4 h", "short_notice_text": "24 h",
                     "long_notice_text": "7 d"},
        });
        let out = html(page(p, &data)).await;
        assert!(!out.contains("<script>"), "{out}");
        assert!(out.contains("&lt;script&gt;x&lt;&#x2f;script&gt;"), "{out}");
        assert!(out.contains("name=\"csrf\" value=\"tok\""), "{out}");
        assert!(out.contains("4 h"), "the rule is shown: {out}");
        let scripts = out.matches("<script").count();
        let external = out.matches("<script src=\"/admin/admin.js\"").count();
        assert_eq!(scripts, external, "only the external script");
        assert!(
            !out.contains("style=\""),
            "no inline style: the CSP forbids it"
        );
    }

    #[test]
    fn spans_read_as_people_write_them() {
        assert_eq!(span(Duration::from_secs(4 * 3600)), "4 h");
        assert_eq!(span(Duration::from_secs(7 * 86_400)), "7 d");
        assert_eq!(span(Duration::from_secs(90)), "2 min");
    }
}
