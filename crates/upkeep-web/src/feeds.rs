//! What the public can follow, on the public router: `GET /api/v1/announcements` (maintenance
//! under way and to come, for client apps: an ETag, and 304 to `If-None-Match`), an iCalendar
//! feed of maintenance windows (`/feeds/maintenance.ics`: one VEVENT per window, recurring
//! ones with their RRULE in their own zone, SEQUENCE counting edits, STATUS:CANCELLED once
//! called off) and an Atom feed of maintenance, incidents and the updates people wrote to
//! them (`/feeds/atom.xml`).
//!
//! Only what [`Announcement`] and the public incident view carry goes out: never who
//! scheduled what, a command, a path or a probe's reason (which may name internal hosts).

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use upkeep_core::window::{Announcement, WindowStatus};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::ApiError;
use crate::api::AppState;

pub(crate) fn public_api() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(announcements))
}

pub(crate) fn public_routes() -> Router<AppState> {
    Router::new()
        .route("/feeds/maintenance.ics", get(ical))
        .route("/feeds/atom.xml", get(atom))
}

/// A strong ETag of `body` (FNV-1a: stable across runs and builds, unlike std's hasher).
fn etag(body: &[u8]) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in body {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    format!("\"{h:016x}\"")
}

/// `body` as `content_type` with its ETag, or a 304 when the client has it already.
fn cached(headers: &HeaderMap, content_type: &'static str, body: Vec<u8>) -> Response {
    let tag = etag(&body);
    let matches = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == tag || t.trim() == "*"));
    let tag = HeaderValue::from_str(&tag).expect("hex in quotes is a header value");
    if matches {
        return (StatusCode::NOT_MODIFIED, [(header::ETAG, tag)]).into_response();
    }
    (
        [
            (header::CONTENT_TYPE, HeaderValue::from_static(content_type)),
            (header::ETAG, tag),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
        ],
        body,
    )
        .into_response()
}

#[utoipa::path(
    get,
    path = "/api/v1/announcements",
    tag = "public",
    responses((status = 200, description = "Maintenance under way and to come (ETag; 304 to If-None-Match)", body = Vec<Announcement>), crate::openapi::Failure)
)]
async fn announcements(
    State(s): State<AppState>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let list = s.control.announcements().await?;
    let body = serde_json::to_vec(&list).map_err(|e| ApiError::Internal(Box::new(e)))?;
    let mut r = cached(&headers, "application/json", body);
    // For client apps and other sites' pages (banner.js's neighbours): any origin may read it.
    r.headers_mut().insert(
        header::ACCESS_CONTROL_ALLOW_ORIGIN,
        HeaderValue::from_static("*"),
    );
    Ok(r)
}

fn utc(t: jiff::Timestamp) -> chrono::DateTime<chrono::Utc> {
    chrono::DateTime::from_timestamp_millis(t.as_millisecond()).unwrap_or_default()
}

/// The description people read in their calendar: every content field.
fn description(a: &Announcement) -> String {
    let services: Vec<String> = a
        .services
        .iter()
        .map(|s| format!("{} ({})", s.service, s.impact.as_str()))
        .collect();
    let mut text = format!("{}\n\nAffected: {}", a.reason, services.join(", "));
    if !a.alternative.is_empty() {
        text.push_str(&format!("\nMeanwhile: {}", a.alternative));
    }
    if !a.follow_up.is_empty() {
        text.push_str(&format!("\nFollow-up: {}", a.follow_up));
    }
    text
}

fn vevent(a: &Announcement, host: &str) -> icalendar::Event {
    use icalendar::{Component, EventLike, Property};
    let mut e = icalendar::Event::new();
    e.uid(&format!("window-{}@{host}", a.id))
        .summary(&format!("[{}] {}", a.kind.as_str(), a.title))
        .description(&description(a))
        .timestamp(utc(a.updated))
        .add_property("SEQUENCE", a.revision.to_string())
        .add_property(
            "PRIORITY",
            match a.priority {
                upkeep_core::window::Priority::Emergency => "1",
                upkeep_core::window::Priority::Important => "5",
                upkeep_core::window::Priority::Routine => "9",
            },
        );
    match (&a.repeat, jiff::tz::TimeZone::get(&a.tz)) {
        // Recurring: the first start in its own zone, so calendars follow its rule through
        // daylight-saving changes as upkeep does.
        (Some(rule), Ok(tz)) => {
            let wall =
                |t: jiff::Timestamp| t.to_zoned(tz.clone()).strftime("%Y%m%dT%H%M%S").to_string();
            e.append_property(
                Property::new("DTSTART", wall(a.start))
                    .add_parameter("TZID", &a.tz)
                    .done(),
            );
            e.append_property(
                Property::new("DTEND", wall(a.end))
                    .add_parameter("TZID", &a.tz)
                    .done(),
            );
            e.add_property("RRULE", rule.trim().trim_start_matches("RRULE:"));
        }
        _ => {
            e.starts(utc(a.start)).ends(utc(a.end));
        }
    }
    let status = match a.status {
        WindowStatus::Cancelled => "CANCELLED",
        _ => "CONFIRMED",
    };
    e.add_property("STATUS", status);
    e.done()
}

async fn ical(State(s): State<AppState>, headers: HeaderMap) -> Result<Response, ApiError> {
    let list = s.control.announcements().await?;
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .map(|h| h.split(':').next().unwrap_or(h))
        .filter(|h| {
            !h.is_empty()
                && h.chars()
                    .all(|c| c.is_ascii_alphanumeric() || ".-".contains(c))
        })
        .unwrap_or("upkeep");
    let mut cal = icalendar::Calendar::new();
    cal.name("Maintenance");
    for a in &list {
        cal.push(vevent(a, host));
    }
    let body = cal.to_string().into_bytes();
    Ok(cached(&headers, "text/calendar; charset=utf-8", body))
}

async fn atom(State(s): State<AppState>, headers: HeaderMap) -> Result<Response, ApiError> {
    use atom_syndication::{Content, Entry, Feed, Link, Text};
    let windows = s.control.announcements().await?;
    let incidents = s.control.public_incidents(50).await?;
    let mut entries: Vec<Entry> = Vec::new();
    for a in &windows {
        let mut e = Entry::default();
        e.set_id(format!("urn:upkeep:window:{}:{}", a.id, a.revision));
        e.set_title(Text::plain(format!(
            "[{} · {}] {}",
            a.kind.as_str(),
            a.status.as_str(),
            a.title
        )));
        e.set_updated(utc(a.updated).fixed_offset());
        e.set_published(Some(utc(a.start).fixed_offset()));
        let mut c = Content::default();
        c.set_content_type(Some("text".to_owned()));
        c.set_value(Some(format!(
            "{} → {} (UTC)\n{}",
            a.start,
            a.end,
            description(a)
        )));
        e.set_content(Some(c));
        entries.push(e);
    }
    for i in &incidents {
        let mut e = Entry::default();
        e.set_id(format!("urn:upkeep:incident:{}", i.id));
        let state = match i.resolved {
            Some(_) => "resolved",
            None => "ongoing",
        };
        e.set_title(Text::plain(format!("[incident · {state}] {}", i.service)));
        e.set_updated(utc(i.resolved.unwrap_or(i.started)).fixed_offset());
        e.set_published(Some(utc(i.started).fixed_offset()));
        let mut c = Content::default();
        c.set_content_type(Some("text".to_owned()));
        c.set_value(Some(match i.resolved {
            Some(r) => format!("{} was down from {} to {}.", i.service, i.started, r),
            None => format!("{} is down since {}.", i.service, i.started),
        }));
        e.set_content(Some(c));
        entries.push(e);
    }
    // What people wrote, each update an entry of its own (no names: the public reads it).
    for u in s.control.public_incident_updates(50).await? {
        let mut e = Entry::default();
        e.set_id(format!(
            "urn:upkeep:incident:{}:update:{}",
            u.incident, u.id
        ));
        e.set_title(Text::plain(format!(
            "[incident · {}] {}",
            u.status.as_str(),
            u.service
        )));
        e.set_updated(utc(u.at).fixed_offset());
        e.set_published(Some(utc(u.at).fixed_offset()));
        let mut c = Content::default();
        c.set_content_type(Some("text".to_owned()));
        c.set_value(Some(u.message));
        e.set_content(Some(c));
        entries.push(e);
    }
    entries.sort_by(|a, b| b.updated().cmp(a.updated()));
    let updated = entries
        .first()
        .map(|e| *e.updated())
        .unwrap_or_else(|| utc(jiff::Timestamp::UNIX_EPOCH).fixed_offset());
    let mut feed = Feed::default();
    feed.set_id("urn:upkeep:status");
    feed.set_title(Text::plain("Status: maintenance and incidents"));
    feed.set_updated(updated);
    let mut me = Link::default();
    me.set_href("/feeds/atom.xml");
    me.set_rel("self");
    feed.set_links(vec![me]);
    feed.set_entries(entries);
    Ok(cached(
        &headers,
        "application/atom+xml; charset=utf-8",
        feed.to_string().into_bytes(),
    ))
}
