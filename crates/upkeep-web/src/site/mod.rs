//! The public status page (issue 17) on the public router: `/` and `/history?page=N` in
//! English and Chinese, its stylesheet and script (`/static/`), the live stream
//! (`/api/v1/stream`, server-sent events), `/banner.js` for other sites, and SVG badges
//! (`/badge/NAME/status.svg`, `/badge/NAME/uptime.svg`).
//!
//! Rendered from memory, not per request: the daemon builds a [`PageModel`] when something
//! changes and calls [`Site::publish`], which renders every page, badge and message once
//! into [`Published`] bytes (with ETags) and swaps them in; a request only picks bytes (and
//! answers 304 to a matching `If-None-Match`). Until the first publish, a request waits for it
//! (a few seconds at most) rather than getting an empty page.
//!
//! Security: every answer carries a Content-Security-Policy with no inline script
//! (`script-src 'self'`, no `style-src` inline either), `frame-ancestors 'none'`,
//! `X-Content-Type-Options: nosniff` and no referrer; `banner.js` and the badges are for other
//! sites, so they carry `Access-Control-Allow-Origin: *`. Texts are escaped in `render.rs`.
//!
//! The forms' pages (`/subscribe`, `/feedback`) are rendered here too, with the page; what
//! they post is `crate::forms`'s. The pages notices link to (`/incidents/N`, `/windows/N`)
//! are `detail.rs`'s, rendered per request.
//!
//! Layout: `model.rs` (what is shown, pure), `words.rs` (its words in both languages),
//! `detail.rs` (an incident's or a window's own page),
//! `render.rs` (model → bytes), this file (publishing, routes, headers, the stream),
//! `assets/` (template, CSS, scripts). Admin pages, when they come, get modules of their own
//! beside these.

mod detail;
pub mod model;
mod render;
mod words;
mod written;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{Path, Query};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use bytes::Bytes;
use serde::Deserialize;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use upkeep_core::i18n::Lang;

pub use model::PageModel;

pub(crate) use detail::routes as detail_routes;

/// One rendered answer and its ETag, and for the big ones a gzip copy with its own.
#[derive(Debug, Clone)]
struct Variant {
    body: Bytes,
    etag: HeaderValue,
    gzip: Option<(Bytes, HeaderValue)>,
}

impl Variant {
    fn new(body: impl Into<Bytes>) -> Variant {
        let body = body.into();
        let etag = HeaderValue::from_str(&format!("\"{:016x}\"", render::fnv(&body)))
            .expect("hex in quotes is a header value");
        Variant {
            body,
            etag,
            gzip: None,
        }
    }

    /// With a gzip copy, made once here (at a publish) and sent to every client that takes
    /// it: the page with 90 days of 100 services' uptime cells is about 380 KB of HTML, much
    /// of it alike, and a fraction of that gzipped.
    fn compressed(body: impl Into<Bytes>) -> Variant {
        use std::io::Write;
        let mut v = Variant::new(body);
        if v.body.len() >= 1024 {
            let mut gz = flate2::write::GzEncoder::new(
                Vec::with_capacity(v.body.len() / 4),
                flate2::Compression::default(),
            );
            if gz.write_all(&v.body).is_ok()
                && let Ok(gz) = gz.finish()
            {
                let etag = format!("\"{:016x}-gz\"", render::fnv(&v.body));
                let etag = HeaderValue::from_str(&etag).expect("hex in quotes is a header value");
                v.gzip = Some((Bytes::from(gz), etag));
            }
        }
        v
    }
}

/// Whether the request's `Accept-Encoding` takes gzip (named, or `*`, without `q=0`).
fn takes_gzip(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::ACCEPT_ENCODING)
        .iter()
        .filter_map(|h| h.to_str().ok())
        .flat_map(|h| h.split(','))
        .any(|item| {
            let mut parts = item.split(';');
            let name = parts.next().unwrap_or("").trim();
            let refused = parts.any(|p| {
                p.trim()
                    .strip_prefix("q=")
                    .and_then(|q| q.trim().parse::<f32>().ok())
                    .is_some_and(|q| q <= 0.0)
            });
            (name.eq_ignore_ascii_case("gzip") || name == "*") && !refused
        })
}

/// Everything the site serves at one moment, rendered.
#[derive(Debug)]
pub struct Published {
    /// Counts publishes.
    pub version: u64,
    /// The page, in English then Chinese.
    pages: [Variant; 2],
    /// History pages, by language, page 1 first.
    history: [Vec<Variant>; 2],
    /// What the history pages were rendered from (a hash of the model's history).
    history_key: u64,
    /// By service name: the state badge and the uptime badge.
    badges: HashMap<String, [Variant; 2]>,
    banner: Variant,
    /// The forms' pages by language: subscribe (None without subscriptions), feedback.
    forms: [(Option<Variant>, Variant); 2],
    /// The stream's message for this moment.
    live: Bytes,
    /// Each public service's name on the page, by name: what the pages of one incident or
    /// window may name.
    displays: HashMap<String, String>,
}

fn slot(lang: Lang) -> usize {
    match lang {
        Lang::En => 0,
        Lang::ZhCn => 1,
    }
}

/// The site's current bytes: one writer (the daemon's page task), any number of readers.
#[derive(Clone)]
pub struct Site {
    tx: Arc<watch::Sender<Option<Arc<Published>>>>,
}

impl Default for Site {
    fn default() -> Self {
        Self::new()
    }
}

impl Site {
    pub fn new() -> Site {
        Site {
            tx: Arc::new(watch::channel(None).0),
        }
    }

    /// Renders `model` whole and makes it what is served. CPU work (a few milliseconds for a
    /// hundred services): call it off the async threads.
    pub fn publish(&self, model: &PageModel) -> Result<(), minijinja::Error> {
        let (version, kept) = match self.tx.borrow().as_ref() {
            Some(p) => (p.version + 1, Some((p.history_key, p.history.clone()))),
            None => (1, None),
        };
        // History pages change with the store's answers, not with states: a burst of state
        // changes re-renders the page alone.
        let history_key = render::fnv(format!("{:?}", model.history).as_bytes());
        let kept = kept.and_then(|(key, h)| (key == history_key).then_some(h));
        let mut pages = Vec::new();
        let mut history = Vec::new();
        for lang in [Lang::En, Lang::ZhCn] {
            pages.push(Variant::compressed(render::page(model, lang, None)?));
            if kept.is_some() {
                continue;
            }
            let count = model.history.len().div_ceil(render::PER_PAGE).max(1);
            let mut list = Vec::with_capacity(count);
            for p in 1..=count {
                list.push(Variant::compressed(render::page(model, lang, Some(p))?));
            }
            history.push(list);
        }
        if let Some(h) = kept {
            history = h.to_vec();
        }
        let badges = model
            .services
            .iter()
            .map(|s| {
                (
                    s.name.to_string(),
                    [
                        Variant::new(render::status_badge(s)),
                        Variant::new(render::uptime_badge(s)),
                    ],
                )
            })
            .collect();
        let mut forms = Vec::new();
        for lang in [Lang::En, Lang::ZhCn] {
            let subscribe = if model.subscribe {
                Some(Variant::compressed(render::form_page(
                    model,
                    lang,
                    "subscribe",
                )?))
            } else {
                None
            };
            forms.push((
                subscribe,
                Variant::compressed(render::form_page(model, lang, "feedback")?),
            ));
        }
        let forms: [(Option<Variant>, Variant); 2] = forms.try_into().expect("two languages");
        let [en, zh]: [Variant; 2] = pages.try_into().expect("two languages");
        let [hen, hzh]: [Vec<Variant>; 2] = history.try_into().expect("two languages");
        let published = Published {
            version,
            pages: [en, zh],
            history: [hen, hzh],
            history_key,
            badges,
            banner: Variant::compressed(render::banner_js(model)),
            forms,
            live: Bytes::from(render::live(model)),
            displays: model
                .services
                .iter()
                .map(|s| (s.name.to_string(), s.display.clone()))
                .collect(),
        };
        self.tx.send_replace(Some(Arc::new(published)));
        Ok(())
    }

    /// Whether the page now shows service `name` (a public service: the feedback form may
    /// name it). False before the first publish.
    pub fn shows(&self, name: &str) -> bool {
        self.tx
            .borrow()
            .as_ref()
            .is_some_and(|p| p.badges.contains_key(name))
    }

    /// What is served now; None before the first publish.
    pub fn current(&self) -> Option<Arc<Published>> {
        self.tx.borrow().clone()
    }

    /// What is served, waiting for the first publish (a few seconds at most).
    async fn ready(&self) -> Option<Arc<Published>> {
        if let Some(p) = self.current() {
            return Some(p);
        }
        let mut rx = self.tx.subscribe();
        let first = tokio::time::timeout(FIRST_RENDER, rx.wait_for(Option::is_some)).await;
        first.ok()?.ok()?.clone()
    }
}

/// Longest a request waits for the first render before it gets a 503.
const FIRST_RENDER: Duration = Duration::from_secs(5);

const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/// The headers every answer of the site carries.
fn secure(mut r: Response) -> Response {
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
    // Nothing to other sites; the site itself is named, as the feedback form's check of
    // where it was sent from needs (under `no-referrer` a browser sends `Origin: null`).
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    r
}

/// `v` as `content_type` (gzipped if it has a gzip copy and the client takes it), or a 304
/// when the client holds it already.
fn answer(headers: &HeaderMap, v: &Variant, content_type: &'static str) -> Response {
    let (body, etag, gzipped) = match &v.gzip {
        Some((gz, etag)) if takes_gzip(headers) => (gz, etag, true),
        _ => (&v.body, &v.etag, false),
    };
    let fresh = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|h| h.to_str().ok())
        .is_some_and(|h| {
            h.split(',')
                .any(|t| t.trim().as_bytes() == etag.as_bytes() || t.trim() == "*")
        });
    let mut r = if fresh {
        (StatusCode::NOT_MODIFIED, [(header::ETAG, etag.clone())]).into_response()
    } else {
        (
            [
                (header::CONTENT_TYPE, HeaderValue::from_static(content_type)),
                (header::ETAG, etag.clone()),
                (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
            ],
            body.clone(),
        )
            .into_response()
    };
    if gzipped && !fresh {
        r.headers_mut()
            .insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
    }
    if v.gzip.is_some() {
        r.headers_mut()
            .append(header::VARY, HeaderValue::from_static("Accept-Encoding"));
    }
    r
}

fn starting() -> Response {
    (
        StatusCode::SERVICE_UNAVAILABLE,
        [(header::RETRY_AFTER, "1")],
        "the status page is starting; try again in a second\n",
    )
        .into_response()
}

/// The page's live stream, described for the OpenAPI document (`openapi.rs`).
pub(crate) fn api() -> utoipa_axum::router::OpenApiRouter<crate::api::AppState> {
    utoipa_axum::router::OpenApiRouter::new()
        .routes(utoipa_axum::routes!(live))
        .layer(axum::middleware::map_response(|r: Response| async move {
            secure(r)
        }))
}

/// `GET /api/v1/stream`.
#[utoipa::path(
    get,
    path = "/api/v1/stream",
    tag = "public",
    responses(
        (status = 200, description = "Server-sent events: each service's state and the notices' version, at once and on every change (the status page follows it)", body = String, content_type = "text/event-stream"),
        (status = 404, description = "This daemon serves no status page", body = upkeep_core::api::ErrorBody),
        (status = 503, description = "Too many streams are open: `Retry-After` says when to try again", body = String, content_type = "text/plain; charset=utf-8"),
    )
)]
async fn live(
    axum::extract::State(s): axum::extract::State<crate::api::AppState>,
    lease: Option<axum::Extension<crate::serve::Lease>>,
) -> Response {
    match s.control.site() {
        Some(site) => stream(site, s.cancel.clone(), lease.map(|l| l.0)).await,
        None => {
            crate::ApiError::NotFound("this daemon serves no status page".into()).into_response()
        }
    }
}

/// The site's routes, over `site`.
pub(crate) fn routes<S: Clone + Send + Sync + 'static>(site: Site) -> Router<S> {
    let page_site = site.clone();
    let history_site = site.clone();
    let banner_site = site.clone();
    let badge_site = site.clone();
    let subscribe_site = site.clone();
    let feedback_site = site.clone();
    Router::new()
        .route(
            "/",
            get(move |q: Query<LangQuery>, h: HeaderMap| page(page_site.clone(), q, h)),
        )
        .route(
            "/history",
            get(move |q: Query<LangQuery>, h: HeaderMap| history(history_site.clone(), q, h)),
        )
        .route(
            "/subscribe",
            get(move |q: Query<LangQuery>, h: HeaderMap| form(subscribe_site.clone(), q, h, true)),
        )
        .route(
            "/feedback",
            get(move |q: Query<LangQuery>, h: HeaderMap| form(feedback_site.clone(), q, h, false)),
        )
        .route("/static/page.css", get(|h: HeaderMap| asset(h, Asset::Css)))
        .route("/static/page.js", get(|h: HeaderMap| asset(h, Asset::Js)))
        .route(
            "/static/forms.css",
            get(|h: HeaderMap| asset(h, Asset::FormsCss)),
        )
        .route(
            "/banner.js",
            get(move |h: HeaderMap| banner(banner_site.clone(), h)),
        )
        .route(
            "/badge/{name}/{kind}",
            get(move |p: Path<(String, String)>, h: HeaderMap| badge(badge_site.clone(), p, h)),
        )
        .layer(axum::middleware::map_response(|r: Response| async move {
            secure(r)
        }))
}

#[derive(Debug, Deserialize)]
struct LangQuery {
    lang: Option<String>,
    page: Option<String>,
}

/// The language: `?lang=` (then remembered in a cookie), the `lang` cookie, Accept-Language.
pub(crate) fn pick_lang(query: Option<&str>, headers: &HeaderMap) -> (Lang, Option<HeaderValue>) {
    let parse = |s: &str| {
        let s = s.trim().to_ascii_lowercase();
        if s.starts_with("zh") {
            Some(Lang::ZhCn)
        } else if s.starts_with("en") {
            Some(Lang::En)
        } else {
            None
        }
    };
    if let Some(lang) = query.and_then(parse) {
        let value = match lang {
            Lang::En => "lang=en; Path=/; Max-Age=31536000; SameSite=Lax",
            Lang::ZhCn => "lang=zh-CN; Path=/; Max-Age=31536000; SameSite=Lax",
        };
        return (lang, Some(HeaderValue::from_static(value)));
    }
    let cookie = headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|c| c.trim().strip_prefix("lang="))
        .find_map(parse);
    if let Some(lang) = cookie {
        return (lang, None);
    }
    (accept_language(headers), None)
}

/// The best of English and Chinese by Accept-Language's weights; English by default. The
/// subscription pages choose by it too.
pub(crate) fn accept_language(headers: &HeaderMap) -> Lang {
    let mut best: Option<(f32, Lang)> = None;
    for v in headers
        .get_all(header::ACCEPT_LANGUAGE)
        .iter()
        .filter_map(|v| v.to_str().ok())
    {
        for part in v.split(',') {
            let mut bits = part.split(';');
            let tag = bits.next().unwrap_or("").trim().to_ascii_lowercase();
            let q = bits
                .find_map(|b| b.trim().strip_prefix("q=")?.parse::<f32>().ok())
                .unwrap_or(1.0);
            let lang = if tag.starts_with("zh") {
                Lang::ZhCn
            } else if tag.starts_with("en") {
                Lang::En
            } else {
                continue;
            };
            if q > 0.0 && best.is_none_or(|(bq, _)| q > bq) {
                best = Some((q, lang));
            }
        }
    }
    best.map_or(Lang::En, |(_, l)| l)
}

fn html(headers: &HeaderMap, v: &Variant, cookie: Option<HeaderValue>) -> Response {
    let mut r = answer(headers, v, "text/html; charset=utf-8");
    r.headers_mut().append(
        header::VARY,
        HeaderValue::from_static("Accept-Language, Cookie"),
    );
    if let Some(c) = cookie {
        r.headers_mut().insert(header::SET_COOKIE, c);
    }
    r
}

async fn page(site: Site, Query(q): Query<LangQuery>, headers: HeaderMap) -> Response {
    let Some(p) = site.ready().await else {
        return starting();
    };
    let (lang, cookie) = pick_lang(q.lang.as_deref(), &headers);
    html(&headers, &p.pages[slot(lang)], cookie)
}

/// A form's page (the form posts to the same path: `forms.rs`).
async fn form(
    site: Site,
    Query(q): Query<LangQuery>,
    headers: HeaderMap,
    subscribe: bool,
) -> Response {
    let Some(p) = site.ready().await else {
        return starting();
    };
    let (lang, cookie) = pick_lang(q.lang.as_deref(), &headers);
    let (sub, feedback) = &p.forms[slot(lang)];
    match (subscribe, sub) {
        (true, Some(v)) => html(&headers, v, cookie),
        (true, None) => (
            StatusCode::NOT_FOUND,
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            "this status page takes no subscriptions\n",
        )
            .into_response(),
        (false, _) => html(&headers, feedback, cookie),
    }
}

async fn history(site: Site, Query(q): Query<LangQuery>, headers: HeaderMap) -> Response {
    let Some(p) = site.ready().await else {
        return starting();
    };
    let (lang, cookie) = pick_lang(q.lang.as_deref(), &headers);
    let pages = &p.history[slot(lang)];
    let n = match q.page.as_deref().map(str::parse::<usize>) {
        None => 1,
        Some(Ok(n)) if (1..=pages.len()).contains(&n) => n,
        _ => {
            return (
                StatusCode::NOT_FOUND,
                [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
                format!(
                    "no such history page; pages run from 1 to {}\n",
                    pages.len()
                ),
            )
                .into_response();
        }
    };
    html(&headers, &pages[n - 1], cookie)
}

enum Asset {
    Css,
    Js,
    FormsCss,
}

async fn asset(headers: HeaderMap, which: Asset) -> Response {
    use std::sync::OnceLock;
    static CSS: OnceLock<Variant> = OnceLock::new();
    static JS: OnceLock<Variant> = OnceLock::new();
    static FORMS_CSS: OnceLock<Variant> = OnceLock::new();
    let (v, ty) = match which {
        Asset::Css => (
            CSS.get_or_init(|| Variant::compressed(include_str!("assets/page.css"))),
            "text/css; charset=utf-8",
        ),
        Asset::FormsCss => (
            FORMS_CSS.get_or_init(|| Variant::compressed(include_str!("assets/forms.css"))),
            "text/css; charset=utf-8",
        ),
        Asset::Js => (
            JS.get_or_init(|| Variant::compressed(include_str!("assets/page.js"))),
            "text/javascript; charset=utf-8",
        ),
    };
    answer(&headers, v, ty)
}

fn any_origin(mut r: Response) -> Response {
    r.headers_mut().insert(
        header::ACCESS_CONTROL_ALLOW_ORIGIN,
        HeaderValue::from_static("*"),
    );
    r
}

async fn banner(site: Site, headers: HeaderMap) -> Response {
    let Some(p) = site.ready().await else {
        return starting();
    };
    let mut r = answer(&headers, &p.banner, "text/javascript; charset=utf-8");
    // Embedded by other sites' pages: CORS for any origin, and no frame or CSP rule of ours
    // applies to a script another page runs.
    r.headers_mut().insert(
        HeaderName::from_static("cross-origin-resource-policy"),
        HeaderValue::from_static("cross-origin"),
    );
    any_origin(r)
}

async fn badge(
    site: Site,
    Path((name, kind)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    let which = match kind.as_str() {
        "status.svg" => 0,
        "uptime.svg" => 1,
        _ => {
            return (
                StatusCode::NOT_FOUND,
                "no such badge; there are status.svg and uptime.svg\n",
            )
                .into_response();
        }
    };
    let Some(p) = site.ready().await else {
        return starting();
    };
    let Some(b) = p.badges.get(&name) else {
        return (StatusCode::NOT_FOUND, "no public service of that name\n").into_response();
    };
    let mut r = answer(&headers, &b[which], "image/svg+xml");
    r.headers_mut().insert(
        HeaderName::from_static("cross-origin-resource-policy"),
        HeaderValue::from_static("cross-origin"),
    );
    any_origin(r)
}

/// How often the stream sends a comment when nothing changes, so proxies keep it open.
const KEEP_ALIVE: Duration = Duration::from_secs(25);

/// Server-sent events: `status` with the headline, each public service's state and the
/// version of the incidents and maintenance shown, at once and on every publish that changes
/// it. A slow reader skips to the latest (a watch, not a queue). Ends at shutdown.
///
/// A stream holds a stream permit of its listener rather than a connection permit (see
/// `serve.rs`); past the streams' cap it gets a 503 and its connection is closed, and the page
/// itself still answers.
async fn stream(
    site: Site,
    cancel: CancellationToken,
    lease: Option<crate::serve::Lease>,
) -> Response {
    if lease.is_some_and(|l| !l.to_stream()) {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            [
                (header::RETRY_AFTER, "30"),
                (header::CONNECTION, "close"),
                (header::CONTENT_TYPE, "text/plain; charset=utf-8"),
            ],
            "too many live streams are open; the page itself still answers (reload it)\n",
        )
            .into_response();
    }
    let rx = site.tx.subscribe();
    let state = (rx, cancel, None::<Bytes>, true);
    let body =
        futures_util::stream::unfold(state, |(mut rx, cancel, mut last, first)| async move {
            if !first {
                tokio::select! {
                    _ = cancel.cancelled() => return None,
                    changed = tokio::time::timeout(KEEP_ALIVE, rx.changed()) => match changed {
                        Err(_) => {
                            let ping = Bytes::from_static(b": keep-alive\n\n");
                            return Some((Ok::<_, std::io::Error>(ping), (rx, cancel, last, false)));
                        }
                        Ok(Err(_)) => return None,
                        Ok(Ok(())) => {}
                    },
                }
            }
            let live = rx.borrow_and_update().as_ref().map(|p| p.live.clone());
            let out = match live {
                Some(l) if last.as_ref() != Some(&l) => {
                    last = Some(l.clone());
                    let mut msg = Vec::with_capacity(l.len() + 24);
                    msg.extend_from_slice(b"event: status\ndata: ");
                    msg.extend_from_slice(&l);
                    msg.extend_from_slice(b"\n\n");
                    Bytes::from(msg)
                }
                // Unchanged, or not rendered yet: a comment keeps the loop simple.
                _ => Bytes::from_static(b": \n\n"),
            };
            Some((Ok(out), (rx, cancel, last, false)))
        });
    (
        [
            (header::CONTENT_TYPE, "text/event-stream"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        Body::from_stream(body),
    )
        .into_response()
}

#[cfg(test)]
mod tests;
