//! Turns a [`PageModel`] into what the site serves: the page and its history pages in each
//! language, the badges, the live-update message and `banner.js`'s data. Runs when the model
//! changes, never per request.
//!
//! Every text that comes from people (names, descriptions, window titles and reasons) goes
//! through minijinja's HTML escaping (the templates' names end in `.html`), into JSON through
//! serde_json with `<`, `>` and `&` escaped further (it is inlined in a script), and into
//! SVG through [`xml`]. The uptime bar is drawn as runs of days: one SVG line per run of like
//! days (dash-patterned into day cells by the stylesheet), so 90 days of 100 services stay a
//! few kilobytes.

use std::fmt::Write;
use std::sync::OnceLock;

use jiff::Timestamp;
use minijinja::Environment;
use serde::Serialize;
use upkeep_core::State;
use upkeep_core::i18n::Lang;
use upkeep_core::window::{Announcement, WindowStatus};

use super::model::{DAYS, Day, HistoryItem, Overall, PageModel, PageService, Shade, kind_of};
use super::words::{self, Words};

/// History lines per page.
pub const PER_PAGE: usize = 25;

fn env() -> &'static Environment<'static> {
    static ENV: OnceLock<Environment<'static>> = OnceLock::new();
    ENV.get_or_init(|| {
        let mut env = Environment::new();
        env.set_undefined_behavior(minijinja::UndefinedBehavior::Strict);
        env.add_template("page.html", include_str!("assets/page.html"))
            .expect("the page template compiles (tested)");
        env
    })
}

/// `s` escaped for XML text and attributes.
pub fn xml(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// JSON safe to inline in a script or an HTML attribute.
pub fn script_json<T: Serialize>(v: &T) -> String {
    serde_json::to_string(v)
        .unwrap_or_else(|_| "null".into())
        .replace('<', "\\u003c")
        .replace('>', "\\u003e")
        .replace('&', "\\u0026")
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

fn percent(a: f64) -> String {
    let p = a * 100.0;
    if p >= 99.995 {
        "100%".into()
    } else {
        format!("{:.2}%", (p * 100.0).floor() / 100.0)
    }
}

/// The uptime bar's runs: days alike (same shade, no incidents, no maintenance) in one line.
pub fn bar(days: &[Day], t: &Words) -> String {
    let mut out = String::new();
    // Right-aligned: a service watched for 10 days has its 10 cells at the right end.
    let offset = DAYS.saturating_sub(days.len());
    let plain = |d: &Day| d.incidents == 0 && d.maintenance_ms == 0;
    let mut i = 0;
    while i < days.len() {
        let d = days[i];
        let mut j = i + 1;
        if plain(&d) && matches!(d.shade(), Shade::Full | Shade::None) {
            while j < days.len() && plain(&days[j]) && days[j].shade() == d.shade() {
                j += 1;
            }
        }
        let class = match (d.maintenance_ms > 0 && d.shade() == Shade::Full, d.shade()) {
            (true, _) => "mnt",
            (_, Shade::None) => "none",
            (_, Shade::Full) => "full",
            (_, Shade::Minor) => "minor",
            (_, Shade::Major) => "major",
            (_, Shade::Bad) => "bad",
        };
        let mut title = d.date.to_string();
        if j - i > 1 {
            let _ = write!(title, " – {}", days[j - 1].date);
        }
        match d.availability {
            Some(a) => {
                let _ = write!(title, " · {}", percent(a));
            }
            None => {
                let _ = write!(title, " · {}", t.no_data);
            }
        }
        if d.incidents > 0 {
            let sep = if t.html_lang == "en" { " " } else { "" };
            let _ = write!(title, " · {}{sep}{}", d.incidents, t.incidents_word);
        }
        if d.maintenance_ms > 0 {
            let _ = write!(
                title,
                " · {} {}",
                t.maintenance_word,
                t.span(d.maintenance_ms as i64)
            );
        }
        let (x1, x2) = ((offset + i) * 5, (offset + j) * 5 - 1);
        let _ = write!(
            out,
            "<g class=\"{class}\"><title>{}</title><line x1=\"{x1}\" x2=\"{x2}\"/></g>",
            xml(&title)
        );
        i = j;
    }
    out
}

/// The sparkline's polylines (an hour without checks breaks the line), scaled to the day's
/// slowest hour; and its text (the last hour's median).
pub fn sparkline(points: &[Option<f64>]) -> Option<(String, String)> {
    let max = points.iter().flatten().fold(0.0_f64, |m, v| m.max(*v));
    let last = points.iter().rev().flatten().next()?;
    let step = 230.0 / (points.len().max(2) - 1) as f64;
    let mut out = String::new();
    let mut line = String::new();
    let flush = |line: &mut String, out: &mut String| {
        if !line.is_empty() {
            let _ = write!(out, "<polyline points=\"{}\"/>", line.trim_end());
            line.clear();
        }
    };
    for (i, p) in points.iter().enumerate() {
        match p {
            Some(v) => {
                let y = if max > 0.0 {
                    30.0 - v / max * 28.0
                } else {
                    30.0
                };
                let _ = write!(line, "{:.0},{:.1} ", i as f64 * step, y);
            }
            None => flush(&mut line, &mut out),
        }
    }
    flush(&mut line, &mut out);
    Some((out, format!("{last:.0} ms")))
}

#[derive(Serialize)]
struct ServiceView {
    name: String,
    display: String,
    description: Option<String>,
    kind: Overall,
    state_text: &'static str,
    bar: String,
    uptime: String,
    spark: Option<String>,
    spark_text: String,
}

#[derive(Serialize)]
struct GroupView {
    name: Option<String>,
    services: Vec<ServiceView>,
}

#[derive(Serialize)]
struct StepView {
    at: TimeView,
    text: String,
}

#[derive(Serialize)]
struct IncidentView {
    service: String,
    title: Option<String>,
    started: TimeView,
    lasting: String,
    steps: Vec<StepView>,
}

#[derive(Serialize)]
struct AffectedView {
    name: String,
    impact: &'static str,
}

#[derive(Serialize)]
struct WindowView {
    ongoing: bool,
    kind: &'static str,
    title: String,
    start: TimeView,
    end: TimeView,
    to: TimeView,
    to_word: &'static str,
    to_text: String,
    reason: String,
    affected: Vec<AffectedView>,
    alternative: String,
    follow_up: String,
}

#[derive(Serialize)]
struct HistoryView {
    what: &'static str,
    start: TimeView,
    text: String,
    end: Option<TimeView>,
    end_word: &'static str,
    lasted: Option<String>,
    /// What people wrote: their updates and the post-mortem.
    updates: Vec<StepView>,
    postmortem: Option<super::written::PmView>,
}

#[derive(Serialize)]
struct PageView {
    t: &'static Words,
    overall: Overall,
    overall_text: &'static str,
    labels: String,
    overall_texts: String,
    notices: u64,
    groups: Vec<GroupView>,
    incidents: Vec<IncidentView>,
    windows: Vec<WindowView>,
    history: Option<Vec<HistoryView>>,
    page: usize,
    pages: usize,
    generated: TimeView,
    /// The forms: the subscription one offered or not, the one this page shows (none: the
    /// status page or a history page), and the public services they offer.
    subscribe: bool,
    form: Option<&'static str>,
    choices: Vec<ChoiceView>,
}

#[derive(Serialize)]
struct ChoiceView {
    name: String,
    display: String,
}

fn display_of<'a>(m: &'a PageModel, name: &'a upkeep_core::ServiceName) -> &'a str {
    m.services
        .iter()
        .find(|s| &s.name == name)
        .map_or(name.as_str(), |s| s.display.as_str())
}

pub(super) fn kind_word(k: upkeep_core::window::WindowKind, lang: Lang) -> &'static str {
    use upkeep_core::window::WindowKind as K;
    match (k, lang) {
        (K::Maintenance, Lang::En) => "Maintenance",
        (K::Upgrade, Lang::En) => "Upgrade",
        (K::Repair, Lang::En) => "Repair",
        (K::Expansion, Lang::En) => "Expansion",
        (K::Emergency, Lang::En) => "Emergency maintenance",
        (K::Maintenance, Lang::ZhCn) => "例行维护",
        (K::Upgrade, Lang::ZhCn) => "升级",
        (K::Repair, Lang::ZhCn) => "修复",
        (K::Expansion, Lang::ZhCn) => "扩容",
        (K::Emergency, Lang::ZhCn) => "紧急维护",
    }
}

fn service_view(s: &PageService, t: &Words) -> ServiceView {
    let spark = s.sparkline.as_deref().and_then(sparkline);
    ServiceView {
        name: s.name.to_string(),
        display: s.display.clone(),
        description: s.description.clone(),
        kind: kind_of(s.state),
        state_text: t.state(s.state),
        bar: bar(&s.days, t),
        uptime: s.uptime(DAYS).map(percent).unwrap_or_default(),
        spark_text: spark.as_ref().map(|s| s.1.clone()).unwrap_or_default(),
        spark: spark.map(|s| s.0),
    }
}

fn window_view(m: &PageModel, a: &Announcement, now: Timestamp, lang: Lang) -> WindowView {
    let t = words::of(lang);
    let ongoing = matches!(a.status, WindowStatus::Running | WindowStatus::Overrun);
    let to = if ongoing { a.end } else { a.start };
    WindowView {
        ongoing,
        kind: kind_word(a.kind, lang),
        title: a.title.clone(),
        start: time(a.start),
        end: time(a.end),
        to: time(to),
        to_word: if ongoing { t.ends_in } else { t.starts_in },
        to_text: t.span(to.as_millisecond() - now.as_millisecond()),
        reason: a.reason.clone(),
        affected: a
            .services
            .iter()
            .map(|s| AffectedView {
                name: display_of(m, &s.service).to_owned(),
                impact: t.impact(s.impact),
            })
            .collect(),
        alternative: a.alternative.clone(),
        follow_up: a.follow_up.clone(),
    }
}

fn history_view(m: &PageModel, h: &HistoryItem, lang: Lang) -> HistoryView {
    let t = words::of(lang);
    match h {
        HistoryItem::Incident {
            service,
            started,
            resolved,
            written,
            ..
        } => HistoryView {
            what: "incident",
            start: time(*started),
            text: match &written.title {
                Some(title) => format!("{} {}: {title}", t.incident_on, display_of(m, service)),
                None => format!("{} {}", t.incident_on, display_of(m, service)),
            },
            end: resolved.map(time),
            end_word: t.resolved,
            lasted: resolved.map(|r| t.span(r.as_millisecond() - started.as_millisecond())),
            updates: written
                .updates
                .iter()
                .map(|(at, status, message)| StepView {
                    at: time(*at),
                    text: super::written::update_text(*status, message, lang),
                })
                .collect(),
            postmortem: super::written::postmortem(written, lang),
        },
        HistoryItem::Maintenance(a) => HistoryView {
            what: "maintenance",
            start: time(a.start),
            text: format!("{}: {}", kind_word(a.kind, lang), a.title),
            end: Some(time(a.end)),
            end_word: if a.status == WindowStatus::Cancelled {
                t.cancelled
            } else {
                t.completed
            },
            lasted: None,
            updates: Vec::new(),
            postmortem: None,
        },
    }
}

/// A number that changes when the incidents or the maintenance shown change: the page's
/// script fetches the page again when it does.
pub fn notices_version(m: &PageModel) -> u64 {
    let mut text = String::new();
    for i in &m.incidents {
        let _ = write!(
            text,
            "i{}:{}:{}:{:?};",
            i.id,
            i.timeline.len(),
            i.written.updates.len(),
            i.resolved
        );
    }
    for w in &m.windows {
        let _ = write!(text, "w{}:{}:{};", w.id, w.revision, w.status.as_str());
    }
    if let Some(h) = m.history.first() {
        let _ = write!(text, "h{}", h.at());
    }
    fnv(text.as_bytes()) >> 11 // fits a JavaScript number
}

/// FNV-1a: stable across runs, for ETags and versions.
pub fn fnv(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

fn labels(t: &Words) -> String {
    let all = [
        State::Starting,
        State::Up,
        State::Degraded,
        State::Down,
        State::Recovering,
        State::Stopping,
        State::Stopped,
        State::Exited,
        State::Failed,
        State::Maintenance,
        State::Unknown,
    ];
    let map: serde_json::Map<String, serde_json::Value> = all
        .iter()
        .map(|s| {
            (
                s.as_str().to_owned(),
                serde_json::json!([t.state(*s), kind_of(*s)]),
            )
        })
        .collect();
    script_json(&map)
}

fn overall_texts(t: &Words) -> String {
    let map: serde_json::Map<String, serde_json::Value> = [
        Overall::Up,
        Overall::Degraded,
        Overall::Outage,
        Overall::Maintenance,
        Overall::Starting,
    ]
    .iter()
    .map(|o| {
        (
            serde_json::to_value(o)
                .ok()
                .and_then(|v| v.as_str().map(str::to_owned))
                .unwrap_or_default(),
            t.overall(*o).into(),
        )
    })
    .collect();
    script_json(&map)
}

/// The page (`history` None) or history page `history` (1-based) in `lang`.
pub fn page(m: &PageModel, lang: Lang, history: Option<usize>) -> Result<String, minijinja::Error> {
    view(m, lang, history, None)
}

/// The page of one of the forms (`subscribe`, `feedback`) in `lang`: a page of its own, so
/// that a list of every public service is not in every view of the status page.
pub fn form_page(
    m: &PageModel,
    lang: Lang,
    form: &'static str,
) -> Result<String, minijinja::Error> {
    view(m, lang, None, Some(form))
}

fn view(
    m: &PageModel,
    lang: Lang,
    history: Option<usize>,
    form: Option<&'static str>,
) -> Result<String, minijinja::Error> {
    let t = words::of(lang);
    let now = m.now.unwrap_or(Timestamp::UNIX_EPOCH);
    let overall = m.overall();
    let pages = m.history.len().div_ceil(PER_PAGE).max(1);
    // Services (each with its 90 day cells), incidents and maintenance are the front page's
    // alone: a history or form page built them for nothing, and a publish renders some twenty
    // of those (a burst of flapping incidents changes the history at every store read).
    let front = history.is_none() && form.is_none();
    let view = PageView {
        t,
        overall,
        overall_text: t.overall(overall),
        labels: labels(t),
        overall_texts: overall_texts(t),
        notices: notices_version(m),
        groups: if front { m.groups() } else { Vec::new() }
            .into_iter()
            .map(|(name, list)| GroupView {
                name: name.map(str::to_owned),
                services: list.into_iter().map(|s| service_view(s, t)).collect(),
            })
            .collect(),
        incidents: m
            .incidents
            .iter()
            .filter(|_| front)
            .map(|i| {
                // The probes' steps and people's updates, in the order they happened.
                let mut steps: Vec<(Timestamp, String)> = i
                    .timeline
                    .iter()
                    .map(|(at, s)| (*at, t.step(*s)))
                    .chain(i.written.updates.iter().map(|(at, status, message)| {
                        (*at, super::written::update_text(*status, message, lang))
                    }))
                    .collect();
                steps.sort_by_key(|(at, _)| *at);
                IncidentView {
                    service: display_of(m, &i.service).to_owned(),
                    title: i.written.title.clone(),
                    started: time(i.started),
                    lasting: t.span(now.as_millisecond() - i.started.as_millisecond()),
                    steps: steps
                        .into_iter()
                        .map(|(at, text)| StepView { at: time(at), text })
                        .collect(),
                }
            })
            .collect(),
        windows: m
            .windows
            .iter()
            .filter(|_| front)
            .map(|a| window_view(m, a, now, lang))
            .collect(),
        history: history.map(|p| {
            m.history
                .iter()
                .skip((p.max(1) - 1) * PER_PAGE)
                .take(PER_PAGE)
                .map(|h| history_view(m, h, lang))
                .collect()
        }),
        page: history.unwrap_or(1),
        pages,
        generated: time(now),
        subscribe: m.subscribe,
        form,
        choices: match form {
            None => Vec::new(),
            Some(_) => m
                .services
                .iter()
                .map(|s| ChoiceView {
                    name: s.name.to_string(),
                    display: s.display.clone(),
                })
                .collect(),
        },
    };
    env()
        .get_template("page.html")?
        .render(minijinja::Value::from(minijinja::value::Serde(&view)))
}

/// What the stream sends and the page's script applies: the headline, every public service's
/// state, and the version of the incidents and maintenance shown.
pub fn live(m: &PageModel) -> String {
    let services: serde_json::Map<String, serde_json::Value> = m
        .services
        .iter()
        .map(|s| (s.name.to_string(), s.state.as_str().into()))
        .collect();
    script_json(&serde_json::json!({
        "overall": m.overall(),
        "services": services,
        "notices": notices_version(m),
    }))
}

/// `banner.js`: its data (what to show, in both languages, or null) and its code.
pub fn banner_js(m: &PageModel) -> String {
    let now = m.now.unwrap_or(Timestamp::UNIX_EPOCH);
    let soon = now
        .checked_add(jiff::SignedDuration::from_hours(24))
        .unwrap_or(now);
    let text = |lang: Lang| -> Option<(String, &'static str)> {
        let t = words::of(lang);
        if let Some(i) = m.incidents.first() {
            return Some((
                format!("{} {}", t.incident_on, display_of(m, &i.service)),
                "outage",
            ));
        }
        let w = m.windows.iter().find(|w| w.start <= soon)?;
        let ongoing = matches!(w.status, WindowStatus::Running | WindowStatus::Overrun);
        let when = if ongoing {
            format!(
                "{} {}",
                t.ends_in,
                t.span(w.end.as_millisecond() - now.as_millisecond())
            )
        } else {
            format!(
                "{} {}",
                t.starts_in,
                t.span(w.start.as_millisecond() - now.as_millisecond())
            )
        };
        Some((
            format!("{}: {} ({when})", kind_word(w.kind, lang), w.title),
            "maintenance",
        ))
    };
    let data = match (text(Lang::En), text(Lang::ZhCn)) {
        (Some((en, level)), Some((zh, _))) => serde_json::json!({
            "level": level,
            "en": { "text": en, "link": words::EN.status_page },
            "zh": { "text": zh, "link": words::ZH.status_page },
        }),
        _ => serde_json::Value::Null,
    };
    format!(
        "// upkeep banner: one script tag with src=\".../banner.js\" shows maintenance and incidents.\n(function () {{\n  var D = {};\n{}",
        script_json(&data),
        include_str!("assets/banner.js.tail")
    )
}

/// A badge: `label` on the left, `value` on a `color` ground on the right.
fn badge(label: &str, value: &str, color: &str) -> String {
    // About 6.5 px a character at 11 px Verdana, as shields-style badges assume.
    let w = |s: &str| 10 + (s.chars().count() as u32 * 13).div_ceil(2);
    let (lw, vw) = (w(label), w(value));
    let total = lw + vw;
    let (label, value) = (xml(label), xml(value));
    format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{total}\" height=\"20\" role=\"img\" aria-label=\"{label}: {value}\"><title>{label}: {value}</title>\
<rect width=\"{lw}\" height=\"20\" fill=\"#555\"/><rect x=\"{lw}\" width=\"{vw}\" height=\"20\" fill=\"{color}\"/>\
<g fill=\"#fff\" font-family=\"Verdana,DejaVu Sans,sans-serif\" font-size=\"11\" text-anchor=\"middle\">\
<text x=\"{}\" y=\"14\">{label}</text><text x=\"{}\" y=\"14\">{value}</text></g></svg>",
        lw / 2,
        lw + vw / 2
    )
}

fn color_of(k: Overall) -> &'static str {
    match k {
        Overall::Up => "#2e9e5b",
        Overall::Degraded => "#dd8a00",
        Overall::Outage => "#d9443a",
        Overall::Maintenance => "#3b82c4",
        Overall::Starting => "#8a8f98",
    }
}

/// The state badge of a service.
pub fn status_badge(s: &PageService) -> String {
    badge(
        &s.display,
        words::EN.state(s.state),
        color_of(kind_of(s.state)),
    )
}

/// The 30-day uptime badge of a service.
pub fn uptime_badge(s: &PageService) -> String {
    let (value, color) = match s.uptime(30) {
        Some(a) => (
            percent(a),
            match (Day {
                date: jiff::civil::date(2000, 1, 1),
                availability: Some(a),
                incidents: 0,
                maintenance_ms: 0,
            })
            .shade()
            {
                Shade::Full => "#2e9e5b",
                Shade::Minor => "#97ca00",
                Shade::Major => "#dd8a00",
                _ => "#d9443a",
            },
        ),
        None => ("no data".to_owned(), "#9f9f9f"),
    };
    badge("uptime 30d", &value, color)
}
