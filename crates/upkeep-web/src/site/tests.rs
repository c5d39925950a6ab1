//! The site over a model built by hand: what each page shows, in which language, escaped,
//! with which headers; the stream's first message; badges and banner.js.

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use jiff::Timestamp;
use tower::ServiceExt;
use upkeep_core::window::{
    AffectedService, Announcement, Impact, Priority, WindowKind, WindowStatus,
};
use upkeep_core::{ServiceName, State};

use super::model::{Day, HistoryItem, PageIncident, PageService, Step};
use super::*;

fn t(s: &str) -> Timestamp {
    s.parse().unwrap()
}

fn name(s: &str) -> ServiceName {
    ServiceName::new(s).unwrap()
}

fn days(bad_day: Option<usize>) -> Vec<Day> {
    let first = jiff::civil::date(2026, 8, 29);
    (0..model::DAYS)
        .map(|i| Day {
            date: first.checked_add(jiff::Span::new().days(i as i64)).unwrap(),
            availability: Some(if Some(i) == bad_day { 0.9 } else { 1.0 }),
            incidents: u32::from(Some(i) == bad_day),
            maintenance_ms: 0,
        })
        .collect()
}

fn window(title: &str, status: WindowStatus, start: &str, end: &str) -> Announcement {
    Announcement {
        id: 7,
        kind: WindowKind::Upgrade,
        priority: Priority::Important,
        title: title.into(),
        reason: "<script>alert(1)</script> database upgrade".into(),
        start: t(start),
        end: t(end),
        tz: "UTC".into(),
        repeat: None,
        services: vec![AffectedService {
            service: name("api"),
            impact: Impact::Outage,
        }],
        alternative: "use the mirror".into(),
        follow_up: "ops@example.com".into(),
        status,
        revision: 1,
        updated: t("2026-11-20T00:00:00Z"),
    }
}

fn model() -> PageModel {
    PageModel {
        now: Some(t("2026-11-26T06:00:00Z")),
        services: vec![
            PageService {
                name: name("web"),
                display: "Web <b>shop</b>".into(),
                description: Some("Where people buy".into()),
                group: Some("Shop".into()),
                state: State::Up,
                days: days(None),
                sparkline: Some((0..24).map(|i| Some(10.0 + i as f64)).collect()),
            },
            PageService {
                name: name("api"),
                display: "API".into(),
                description: None,
                group: None,
                state: State::Down,
                days: days(Some(80)),
                sparkline: None,
            },
        ],
        incidents: vec![PageIncident {
            id: 3,
            service: name("api"),
            started: t("2026-11-26T05:00:00Z"),
            resolved: None,
            timeline: vec![
                (t("2026-11-26T05:00:00Z"), Step::Became(State::Down)),
                (t("2026-11-26T05:01:00Z"), Step::Opened),
            ],
            written: Default::default(),
        }],
        windows: vec![window(
            "Database <upgrade>",
            WindowStatus::Scheduled,
            "2026-11-27T02:00:00Z",
            "2026-11-27T03:00:00Z",
        )],
        history: (0..30)
            .map(|i| HistoryItem::Incident {
                id: 100 - i,
                service: name("web"),
                started: t("2026-11-01T00:00:00Z"),
                resolved: Some(t("2026-11-01T00:30:00Z")),
                written: Default::default(),
            })
            .collect(),
        subscribe: true,
    }
}

fn site() -> Site {
    let s = Site::new();
    s.publish(&model()).unwrap();
    s
}

async fn get(site: &Site, uri: &str, headers: &[(&str, &str)]) -> (StatusCode, HeaderMap, String) {
    let app: Router = routes(site.clone());
    let mut req = Request::get(uri);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let r = app.oneshot(req.body(Body::empty()).unwrap()).await.unwrap();
    let status = r.status();
    let headers = r.headers().clone();
    let body = axum::body::to_bytes(r.into_body(), 1 << 22).await.unwrap();
    (status, headers, String::from_utf8(body.to_vec()).unwrap())
}

#[tokio::test]
async fn the_page_shows_services_groups_bars_incidents_and_maintenance() {
    let (status, h, body) = get(&site(), "/", &[]).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(h[header::CONTENT_TYPE], "text/html; charset=utf-8");
    assert!(body.contains("<html lang=\"en\">"), "{body}");
    assert!(body.contains("Some services are down"), "{body}");
    assert!(body.contains("<h3 class=\"group\">Shop</h3>"), "{body}");
    assert!(body.contains("data-svc=\"api\""), "{body}");
    assert!(
        body.contains("<span class=\"st k-outage\">Down</span>"),
        "{body}"
    );
    // 89 perfect days in one run and the bad day on its own, with its tooltip.
    assert!(
        body.contains("<title>2026-11-17 · 90.00% · 1 incidents</title>"),
        "{body}"
    );
    assert!(
        body.contains("<title>2026-08-29 – 2026-11-26 · 100%</title>"),
        "{body}"
    );
    assert!(body.contains("class=\"spark\""), "{body}");
    assert!(body.contains("Incident on API"), "{body}");
    assert!(
        body.contains("Upcoming · Upgrade: Database &lt;upgrade&gt;"),
        "{body}"
    );
    assert!(
        body.contains("<time datetime=\"2026-11-27T02:00:00Z\">2026-11-27 02:00 UTC</time>"),
        "{body}"
    );
    assert!(body.contains("starts in 20 h"), "{body}");
    assert!(
        body.contains("use the mirror") && body.contains("ops@example.com"),
        "{body}"
    );
    assert!(
        body.contains("rel=\"alternate\" type=\"application/atom+xml\""),
        "{body}"
    );
    assert!(body.contains("href=\"/feeds/maintenance.ics\""), "{body}");
}

#[tokio::test]
async fn the_forms_post_without_script_and_offer_each_public_service() {
    let (_, _, main) = get(&site(), "/", &[]).await;
    assert!(
        main.contains("<a href=\"/subscribe\">Get notified</a>")
            && main.contains("<a href=\"/feedback\">Tell us</a>"),
        "{main}"
    );
    assert!(
        !main.contains("<form"),
        "the forms have pages of their own: {main}"
    );
    let (status, h, body) = get(&site(), "/subscribe", &[]).await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        h[header::CONTENT_SECURITY_POLICY]
            .to_str()
            .unwrap()
            .contains("form-action 'self'")
    );
    assert!(
        body.contains("<form id=\"subscribe\" method=\"post\" action=\"/subscribe\">"),
        "{body}"
    );
    assert!(
        body.contains(
            "<input type=\"checkbox\" name=\"service\" value=\"web\"> Web &lt;b&gt;shop&lt;"
        ),
        "{body}"
    );
    assert!(body.contains("name=\"lang\" value=\"en\""), "{body}");
    let (_, _, body) = get(&site(), "/feedback", &[]).await;
    assert!(
        body.contains("<form id=\"feedback\" method=\"post\" action=\"/feedback\">"),
        "{body}"
    );
    assert!(
        body.contains("<option value=\"api\">API</option>"),
        "{body}"
    );
    let (_, _, zh) = get(&site(), "/subscribe?lang=zh-CN", &[]).await;
    assert!(zh.contains("name=\"lang\" value=\"zh-CN\""), "{zh}");
    assert!(zh.contains("订阅通知"), "{zh}");
    // Without subscriptions, no subscription form; feedback stays.
    let s = Site::new();
    s.publish(&PageModel {
        subscribe: false,
        ..model()
    })
    .unwrap();
    let (_, _, main) = get(&s, "/", &[]).await;
    assert!(!main.contains("/subscribe"), "{main}");
    let (status, _, _) = get(&s, "/subscribe", &[]).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _, _) = get(&s, "/feedback", &[]).await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn user_text_is_shown_as_text_never_as_markup() {
    let (_, _, body) = get(&site(), "/", &[]).await;
    assert!(!body.contains("<script>alert"), "{body}");
    assert!(body.contains("&lt;script&gt;alert(1)&lt;"), "{body}");
    assert!(body.contains("Web &lt;b&gt;shop&lt;"), "{body}");
    assert!(
        !body.contains("style="),
        "no inline style: the CSP forbids it"
    );
    // The only script is the page's own file.
    assert_eq!(body.matches("<script").count(), 1, "{body}");
    assert!(body.contains("<script src=\"/static/page.js\" defer></script>"));
}

#[tokio::test]
async fn every_answer_carries_the_security_headers() {
    for uri in [
        "/",
        "/history",
        "/static/page.js",
        "/banner.js",
        "/badge/web/status.svg",
    ] {
        let (_, h, _) = get(&site(), uri, &[]).await;
        let csp = h[header::CONTENT_SECURITY_POLICY].to_str().unwrap();
        assert!(
            csp.contains("script-src 'self'") && !csp.contains("unsafe-inline"),
            "{uri}: {csp}"
        );
        assert!(csp.contains("frame-ancestors 'none'"), "{uri}: {csp}");
        assert_eq!(h[header::X_CONTENT_TYPE_OPTIONS], "nosniff", "{uri}");
    }
}

#[tokio::test]
async fn chinese_comes_from_accept_language_or_the_remembered_switch() {
    let (_, _, zh) = get(
        &site(),
        "/",
        &[("accept-language", "zh-CN,zh;q=0.9,en;q=0.8")],
    )
    .await;
    assert!(
        zh.contains("<html lang=\"zh-CN\">") && zh.contains("部分服务中断"),
        "{zh}"
    );
    let (_, _, en) = get(
        &site(),
        "/",
        &[("accept-language", "fr, en;q=0.5, zh;q=0.3")],
    )
    .await;
    assert!(en.contains("<html lang=\"en\">"), "{en}");
    let (_, h, zh) = get(&site(), "/?lang=zh-CN", &[("accept-language", "en")]).await;
    assert!(zh.contains("当前故障"), "{zh}");
    let cookie = h[header::SET_COOKIE].to_str().unwrap();
    assert!(cookie.starts_with("lang=zh-CN;"), "{cookie}");
    let (_, _, zh) = get(
        &site(),
        "/",
        &[("cookie", "a=b; lang=zh-CN"), ("accept-language", "en")],
    )
    .await;
    assert!(zh.contains("维护计划"), "{zh}");
}

#[tokio::test]
async fn an_unchanged_page_is_a_304_and_a_new_publish_a_new_etag() {
    let s = site();
    let (_, h, _) = get(&s, "/", &[]).await;
    let tag = h[header::ETAG].to_str().unwrap().to_owned();
    let (status, _, body) = get(&s, "/", &[("if-none-match", &tag)]).await;
    assert_eq!((status, body.as_str()), (StatusCode::NOT_MODIFIED, ""));
    let mut m = model();
    m.services[1].state = State::Up;
    s.publish(&m).unwrap();
    let (status, h, body) = get(&s, "/", &[("if-none-match", &tag)]).await;
    assert_eq!(status, StatusCode::OK);
    assert_ne!(h[header::ETAG].to_str().unwrap(), tag);
    assert!(!body.contains("k-outage\">Down"), "{body}");
}

#[tokio::test]
async fn history_is_paged() {
    let s = site();
    let (status, _, one) = get(&s, "/history", &[]).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        one.matches("class=\"h-incident\"").count(),
        render::PER_PAGE
    );
    assert!(one.contains("href=\"/history?page=2\""), "{one}");
    let (_, _, two) = get(&s, "/history?page=2", &[]).await;
    assert_eq!(
        two.matches("class=\"h-incident\"").count(),
        30 - render::PER_PAGE
    );
    assert!(two.contains("lasted 30 min"), "{two}");
    let (status, _, _) = get(&s, "/history?page=3", &[]).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _, _) = get(&s, "/history?page=x", &[]).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn badges_and_the_banner_are_for_any_site() {
    let s = site();
    let (status, h, svg) = get(&s, "/badge/api/status.svg", &[]).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(h[header::CONTENT_TYPE], "image/svg+xml");
    assert_eq!(h[header::ACCESS_CONTROL_ALLOW_ORIGIN], "*");
    assert!(svg.contains(">Down<") && svg.contains("API"), "{svg}");
    let (_, _, svg) = get(&s, "/badge/web/uptime.svg", &[]).await;
    assert!(
        svg.contains(">100%<") && !svg.contains("Web &lt;b&gt;"),
        "{svg}"
    );
    let (status, _, _) = get(&s, "/badge/nope/status.svg", &[]).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, h, js) = get(&s, "/banner.js", &[]).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(h[header::ACCESS_CONTROL_ALLOW_ORIGIN], "*");
    assert!(
        js.contains("\"level\":\"outage\"") && js.contains("Incident on API"),
        "{js}"
    );
    assert!(!js.contains("</script>"), "{js}");
}

#[tokio::test]
async fn the_banner_announces_maintenance_within_a_day_and_nothing_otherwise() {
    let s = Site::new();
    let mut m = model();
    m.incidents.clear();
    s.publish(&m).unwrap();
    let (_, _, js) = get(&s, "/banner.js", &[]).await;
    assert!(
        js.contains("\"level\":\"maintenance\"") && js.contains("starts in 20 h"),
        "{js}"
    );
    assert!(js.contains("Database \\u003cupgrade\\u003e"), "{js}");
    m.windows.clear();
    s.publish(&m).unwrap();
    let (_, _, js) = get(&s, "/banner.js", &[]).await;
    assert!(js.contains("var D = null;"), "{js}");
}

#[tokio::test]
async fn the_stream_sends_the_states_at_once() {
    let s = site();
    let r = super::stream(s.clone(), CancellationToken::new(), None).await;
    assert_eq!(r.headers()[header::CONTENT_TYPE], "text/event-stream");
    let mut body = r.into_body().into_data_stream();
    use futures_util::StreamExt;
    let first = body.next().await.unwrap().unwrap();
    let text = String::from_utf8(first.to_vec()).unwrap();
    assert!(text.starts_with("event: status\ndata: {"), "{text}");
    assert!(
        text.contains("\"api\":\"down\"") && text.contains("\"overall\":\"outage\""),
        "{text}"
    );
    let mut m = model();
    m.services[1].state = State::Up;
    s.publish(&m).unwrap();
    let next = body.next().await.unwrap().unwrap();
    let text = String::from_utf8(next.to_vec()).unwrap();
    assert!(
        text.contains("\"api\":\"up\"") && text.contains("\"overall\":\"up\""),
        "{text}"
    );
}

#[tokio::test]
async fn a_request_before_the_first_render_waits_for_it() {
    let s = Site::new();
    let waiting = tokio::spawn({
        let s = s.clone();
        async move { get(&s, "/", &[]).await }
    });
    tokio::task::yield_now().await;
    s.publish(&model()).unwrap();
    let (status, _, body) = waiting.await.unwrap();
    assert_eq!(status, StatusCode::OK);
    assert!(body.contains("Web &lt;b&gt;shop"));
}

#[test]
fn a_hundred_services_with_90_days_make_a_page_under_100_kb_with_its_css_and_script() {
    let mut m = model();
    let template = m.services[0].clone();
    m.services = (0..100)
        .map(|i| PageService {
            name: name(&format!("service-{i}")),
            display: format!("Service number {i}"),
            description: Some("A service people use every day".into()),
            group: Some(format!("Group {}", i / 10)),
            days: days(if i % 3 == 0 { Some(40 + i % 40) } else { None }),
            ..template.clone()
        })
        .collect();
    let html = render::page(&m, Lang::En, None).unwrap();
    let total =
        html.len() + include_str!("assets/page.css").len() + include_str!("assets/page.js").len();
    assert!(total < 100 * 1024, "a page view is {total} bytes");
}

#[tokio::test]
async fn a_client_that_takes_gzip_gets_the_page_gzipped_with_its_own_etag() {
    use std::io::Read;
    let s = site();
    let ask = |headers: &[(&str, &str)]| {
        let mut req = Request::get("/");
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        routes(s.clone()).oneshot(req.body(Body::empty()).unwrap())
    };
    let r = ask(&[("accept-encoding", "br, gzip;q=0.8")]).await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.headers()[header::CONTENT_ENCODING], "gzip");
    let vary: Vec<String> = r
        .headers()
        .get_all(header::VARY)
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .collect();
    assert!(vary.iter().any(|v| v == "Accept-Encoding"), "{vary:?}");
    assert!(
        vary.iter().any(|v| v.contains("Accept-Language")),
        "{vary:?}"
    );
    let tag = r.headers()[header::ETAG].to_str().unwrap().to_owned();
    let gz = axum::body::to_bytes(r.into_body(), 1 << 22).await.unwrap();
    let mut unzipped = String::new();
    flate2::read::GzDecoder::new(&gz[..])
        .read_to_string(&mut unzipped)
        .unwrap();
    // Without Accept-Encoding, or with gzip refused: the same page, plain, its own tag.
    for headers in [&[][..], &[("accept-encoding", "gzip;q=0, identity")][..]] {
        let (status, h, plain) = get(&s, "/", headers).await;
        assert_eq!(status, StatusCode::OK);
        assert!(h.get(header::CONTENT_ENCODING).is_none(), "{h:?}");
        assert_ne!(h[header::ETAG].to_str().unwrap(), tag);
        assert_eq!(unzipped, plain);
        assert!(
            gz.len() < plain.len() / 2,
            "{} of {}",
            gz.len(),
            plain.len()
        );
    }
    let r = ask(&[("accept-encoding", "gzip"), ("if-none-match", &tag)])
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_MODIFIED);
    assert!(r.headers().get(header::CONTENT_ENCODING).is_none());
}

/// A hundred services whose 90 days all differ from the day before (no run of equal days to
/// draw as one cell): the page's worst case, about 380 KB of HTML.
fn worst_case() -> PageModel {
    let mut m = model();
    let template = m.services[0].clone();
    m.services = (0..100)
        .map(|i| PageService {
            name: name(&format!("service-{i}")),
            display: format!("Service number {i}"),
            description: Some("A service people use every day".into()),
            group: Some(format!("Group {}", i / 10)),
            days: days(None)
                .into_iter()
                .enumerate()
                .map(|(d, day)| Day {
                    availability: Some(0.9 + ((i * 7 + d * 13) % 97) as f64 / 1000.0),
                    incidents: ((i + d) % 3) as u32,
                    ..day
                })
                .collect(),
            ..template.clone()
        })
        .collect();
    m
}

/// The worst case for the uptime bars: gzipped, as the site sends it to a browser that takes
/// gzip, a page view is under 100 KB.
#[test]
fn a_hundred_services_with_90_days_all_different_are_under_100_kb_gzipped() {
    let m = worst_case();
    let html = render::page(&m, Lang::En, None).unwrap();
    let gz = |text: &str| {
        Variant::compressed(text.to_owned())
            .gzip
            .map_or(text.len(), |(b, _)| b.len())
    };
    let plain = html.len();
    let total =
        gz(&html) + gz(include_str!("assets/page.css")) + gz(include_str!("assets/page.js"));
    println!("page view: {plain} bytes of HTML; gzipped with its CSS and script {total}");
    assert!(plain > 200 * 1024, "not the worst case: {plain} bytes");
    assert!(total < 100 * 1024, "a page view is {total} bytes gzipped");
}

/// Issue 17: a flapping burst re-renders the page twice a second; a request meanwhile is
/// answered at once from the page published before, whole, and never waits for the render.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_during_a_render_is_answered_from_the_previous_page() {
    let s = site();
    let (_, h, before) = get(&s, "/", &[]).await;
    let old = h[header::ETAG].to_str().unwrap().to_owned();
    // The worst case in both languages, gzipped: many requests' time.
    let (started_tx, started) = std::sync::mpsc::channel();
    let render = std::thread::spawn({
        let s = s.clone();
        let big = worst_case();
        move || {
            started_tx.send(()).unwrap();
            s.publish(&big).unwrap();
        }
    });
    started.recv().unwrap();
    let mut answered_during = 0;
    let mut new_during = 0;
    while !render.is_finished() {
        let (status, h, body) = get(&s, "/", &[]).await;
        assert_eq!(status, StatusCode::OK);
        if h[header::ETAG] == old.as_str() {
            assert_eq!(body, before, "the previous page, whole");
            answered_during += 1;
        } else {
            assert!(body.contains("Service number 99"), "the new page, whole");
            new_during += 1;
        }
    }
    println!("{answered_during} requests answered from the old page, {new_during} from the new");
    render.join().unwrap();
    // A render of the worst case is hundreds of requests' time: a handful answered from the
    // old page could be requests that came before the render began, not during it.
    assert!(
        answered_during >= 10,
        "{answered_during} requests answered while the page rendered"
    );
    let (_, h, body) = get(&s, "/", &[]).await;
    assert_ne!(h[header::ETAG], old.as_str());
    assert!(body.contains("Service number 99"));
}
