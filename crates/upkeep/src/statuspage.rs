//! Keeps the public status page current (issue 17): one task builds the page's model and has
//! `upkeep_web::Site` render it, so that requests only pick bytes.
//!
//! Two tasks, two speeds. What changes often and must show within a second (each service's
//! state, so the headline) comes from the status snapshot, a `watch` in memory: the page task
//! publishes every change within a second, paced by `pace.rs` (a settle of 100 ms, at most
//! two renders a second, always the latest state, none queued). What needs the store (90
//! days of rollups, 24 hours of probe latency, incidents, windows, the history) is read by a
//! [`StoreReader`] of its own when a committed event says an incident or maintenance changed
//! (at most once per [`STORE_EVERY`]) and once a minute otherwise; the 89 past days only when
//! the day turns or every [`PAST_DAYS_EVERY`] (late events can change them). It hands each
//! read over whole through a `watch`, and the page task renders with the last one handed
//! over: a render never waits on the store. Why: the page task used to read the store inline,
//! so a burst of flapping services (an incident opened or resolved every second, each a read
//! of every incident's timeline and notes) or a slow store held every state change back,
//! renders 1.2 to 3.6 s apart (bench/statuspage, session 11). Rendering, a few milliseconds,
//! runs on a thread of its own below supervision's priority (`pace.rs`).
//!
//! The first render is made from the snapshot alone before [`start`] returns, and the daemon
//! awaits it before its listeners serve, so no request waits for a first page (the site holds
//! requests until one exists). A store that is away leaves the last figures in place.
//!
//! Input: the daemon (config, snapshot, store, committed events) and the probes' latency book.
//! Output: `Daemon::site`.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;
use tokio::sync::{broadcast, watch};
use tokio::time::Instant;
use upkeep_core::latency::LatencyBook;
use upkeep_core::report::Tally;
use upkeep_core::window::WindowStatus;
use upkeep_core::{EventKind, ServiceName, State};
use upkeep_web::site::model::{
    DAYS, Day, HistoryItem, PageIncident, PageModel, PageService, Step, Written,
};

use crate::control::Daemon;
use crate::pace::{Pacer, RenderLane};

/// The store is read at most this often for incidents and maintenance, and at least once per
/// [`REFRESH`].
const STORE_EVERY: Duration = Duration::from_secs(1);
const REFRESH: Duration = Duration::from_secs(60);
/// The past days' rollups are read again this often (late events may change them).
const PAST_DAYS_EVERY: Duration = Duration::from_secs(600);
/// History lines kept (incidents and maintenance).
const HISTORY: usize = 250;
/// The newest resolved incidents whose updates and post-mortem the history shows (each is
/// a read of the store; older ones show what the probes saw).
const WRITTEN_IN_HISTORY: usize = 50;

const DAY_MS: i64 = 86_400_000;
const HOUR_MS: i64 = 3_600_000;

/// Each service's tallies of the past days, oldest first.
type PastDays = Vec<BTreeMap<ServiceName, Tally>>;

/// What the store says, as last read. Written by the [`StoreReader`] alone, handed to the
/// page task whole (a clone per read: the 89 past days behind an `Arc`).
#[derive(Default, Clone)]
struct FromStore {
    /// Each service's tallies of the 89 past days (oldest first), and the day they end on.
    past: Option<(i64, Arc<PastDays>, Instant)>,
    today: BTreeMap<ServiceName, Tally>,
    latency: BTreeMap<ServiceName, Vec<Option<f64>>>,
    incidents: Vec<PageIncident>,
    windows: Vec<upkeep_core::window::Announcement>,
    history: Vec<HistoryItem>,
}

/// Publishes the first page (from memory) and then keeps the page current on tasks of its
/// own until the daemon shuts down. The daemon awaits this before its listeners serve.
pub async fn start(daemon: Arc<Daemon>, latency: Arc<LatencyBook>) {
    let lane = match RenderLane::start(daemon.site.clone()) {
        Ok(lane) => lane,
        Err(e) => {
            tracing::error!("status page not rendered: no thread for it: {e}");
            return;
        }
    };
    let (handed, from_store) = watch::channel(Arc::new(FromStore::default()));
    let mut pacer = Pacer::default();
    // First from memory alone; then with the store's figures, once the reader has them.
    pacer.published(Instant::now());
    publish(&daemon, &lane, &FromStore::default()).await;
    tokio::spawn(
        StoreReader {
            daemon: daemon.clone(),
            book: latency,
            handed,
        }
        .run(),
    );
    tokio::spawn(keep_current(daemon, lane, from_store, pacer));
}

/// The page task: renders on every change of the snapshot or of what the store reader hands
/// over, paced; never awaits the store.
async fn keep_current(
    daemon: Arc<Daemon>,
    lane: RenderLane,
    mut from_store: watch::Receiver<Arc<FromStore>>,
    mut pacer: Pacer,
) {
    let mut snapshot = daemon.snapshot.clone();
    // False once the reader is gone (shutdown, or it failed): states still show.
    let mut reading = true;
    loop {
        let due = pacer.due();
        tokio::select! {
            _ = daemon.shutdown.cancelled() => return,
            changed = snapshot.changed() => {
                if changed.is_err() {
                    return;
                }
                snapshot.borrow_and_update();
                pacer.changed(Instant::now());
            }
            changed = from_store.changed(), if reading => match changed {
                Ok(()) => pacer.changed(Instant::now()),
                Err(_) => reading = false,
            },
            // A change seen while this publish renders marks the page changed again, so it
            // is the next publish's.
            _ = tokio::time::sleep_until(due.unwrap_or_else(Instant::now)), if due.is_some() => {
                pacer.published(Instant::now());
                let s = from_store.borrow_and_update().clone();
                publish(&daemon, &lane, &s).await;
            }
        }
    }
}

/// Reads what the page needs from the store, on its own schedule, and hands each read over.
struct StoreReader {
    daemon: Arc<Daemon>,
    book: Arc<LatencyBook>,
    /// The page task's receiver: the last read, whole.
    handed: watch::Sender<Arc<FromStore>>,
}

impl StoreReader {
    /// Runs until the daemon shuts down (a read under way is dropped then: a slow store does
    /// not hold shutdown).
    async fn run(self) {
        let daemon = &self.daemon;
        let mut events = daemon.committed.subscribe();
        let mut s = FromStore::default();
        let mut due = true;
        let mut last_read: Option<Instant> = None;
        loop {
            if due && last_read.is_none_or(|t| t.elapsed() >= STORE_EVERY) {
                tokio::select! {
                    _ = daemon.shutdown.cancelled() => return,
                    () = read_store(daemon, &self.book, &mut s) => {}
                }
                last_read = Some(Instant::now());
                due = false;
                if self.handed.send(Arc::new(s.clone())).is_err() {
                    return; // the page task is gone
                }
            }
            let wait = if due { STORE_EVERY } else { REFRESH }
                .saturating_sub(last_read.map_or(Duration::ZERO, |t| t.elapsed()));
            tokio::select! {
                _ = daemon.shutdown.cancelled() => return,
                batch = events.recv() => match batch {
                    Ok(batch) => due |= batch.iter().any(|c| shown(&c.event.kind)),
                    Err(broadcast::error::RecvError::Lagged(_)) => due = true,
                    Err(broadcast::error::RecvError::Closed) => return,
                },
                _ = tokio::time::sleep(wait) => due = true,
            }
        }
    }
}

/// Events that change what the page shows from the store.
fn shown(kind: &EventKind) -> bool {
    matches!(
        kind,
        EventKind::IncidentOpened { .. }
            | EventKind::IncidentResolved { .. }
            | EventKind::IncidentReopened { .. }
            | EventKind::IncidentNoted { .. }
            | EventKind::MaintenanceStarted { .. }
            | EventKind::MaintenanceEnded { .. }
            | EventKind::WindowStep { .. }
            | EventKind::HealRequested { .. }
    )
}

async fn publish(daemon: &Arc<Daemon>, lane: &RenderLane, s: &FromStore) {
    let model = model(daemon, s).await;
    if let Err(e) = lane.publish(model).await {
        tracing::warn!("status page not rendered: {e:#}");
    }
}

fn day_start(t: Timestamp) -> i64 {
    t.as_millisecond().div_euclid(DAY_MS) * DAY_MS
}

fn ts(ms: i64) -> Timestamp {
    Timestamp::from_millisecond(ms).unwrap_or(Timestamp::UNIX_EPOCH)
}

/// The model: services from the config and the snapshot, the rest from the store's last
/// answers.
async fn model(daemon: &Daemon, s: &FromStore) -> PageModel {
    let now = daemon.clock.now();
    let snapshot = daemon.snapshot.borrow().clone();
    let today = day_start(now);
    let mut services = Vec::new();
    {
        let live = daemon.live.lock().await;
        for (name, config) in &live.config.services {
            if config.page.hidden {
                continue;
            }
            let state = snapshot
                .services
                .get(name)
                .map_or(State::Starting, |st| st.state);
            let http = config
                .probes
                .iter()
                .any(|p| matches!(p.kind, upkeep_config::ProbeKind::Http(_)));
            let days = match &s.past {
                Some((end, past, _)) if *end == today => {
                    let mut days: Vec<Day> = past
                        .iter()
                        .enumerate()
                        .map(|(i, m)| day(today - (past.len() - i) as i64 * DAY_MS, m.get(name)))
                        .collect();
                    days.push(day(today, s.today.get(name)));
                    // A service not watched yet on a day: leave its leading days out.
                    let first = days
                        .iter()
                        .position(|d| d.availability.is_some() || d.maintenance_ms > 0);
                    days.split_off(first.unwrap_or(days.len()))
                }
                _ => Vec::new(),
            };
            services.push(PageService {
                name: name.clone(),
                display: config
                    .page
                    .display_name
                    .clone()
                    .unwrap_or_else(|| name.to_string()),
                description: config.page.description.clone(),
                group: config.page.group.clone(),
                state,
                days,
                sparkline: http.then(|| {
                    s.latency
                        .get(name)
                        .cloned()
                        .unwrap_or_else(|| vec![None; 24])
                }),
            });
        }
    }
    let public: std::collections::HashSet<&ServiceName> =
        services.iter().map(|s| &s.name).collect();
    PageModel {
        now: Some(now),
        incidents: s
            .incidents
            .iter()
            .filter(|i| public.contains(&i.service))
            .cloned()
            .collect(),
        windows: s
            .windows
            .iter()
            .filter(|w| w.services.iter().any(|a| public.contains(&a.service)))
            .cloned()
            .collect(),
        history: s
            .history
            .iter()
            .filter(|h| match h {
                HistoryItem::Incident { service, .. } => public.contains(service),
                HistoryItem::Maintenance(w) => {
                    w.services.iter().any(|a| public.contains(&a.service))
                }
            })
            .cloned()
            .collect(),
        services,
        subscribe: daemon.notices.desk().is_some(),
    }
}

fn day(start_ms: i64, t: Option<&Tally>) -> Day {
    let date = ts(start_ms).to_zoned(jiff::tz::TimeZone::UTC).date();
    let Some(t) = t else {
        return Day {
            date,
            availability: None,
            incidents: 0,
            maintenance_ms: 0,
        };
    };
    let f = t.figures();
    Day {
        date,
        availability: f.availability,
        incidents: t.incidents,
        maintenance_ms: t.maintenance_ms,
    }
}

/// Reads what the page needs from the store; what cannot be read stays as it was.
async fn read_store(daemon: &Daemon, book: &LatencyBook, s: &mut FromStore) {
    if daemon.store_ready().is_err() {
        return;
    }
    let store = daemon.store.as_ref();
    let now = daemon.clock.now();
    let today = day_start(now);
    let past_fresh = s
        .past
        .as_ref()
        .is_some_and(|(end, _, at)| *end == today && at.elapsed() < PAST_DAYS_EVERY);
    if !past_fresh {
        let mut past = Vec::with_capacity(DAYS - 1);
        for i in (1..DAYS as i64).rev() {
            let from = today - i * DAY_MS;
            match upkeep_store::rollup::tallies(store, ts(from), ts(from + DAY_MS)).await {
                Ok(t) => past.push(t),
                Err(e) => {
                    tracing::debug!("status page: rollups not read: {}", e.with_causes());
                    return;
                }
            }
            // A hundred reads: let supervision in between.
            tokio::task::yield_now().await;
        }
        s.past = Some((today, Arc::new(past), Instant::now()));
    }
    if let Ok(t) = upkeep_store::rollup::tallies(store, ts(today), now).await {
        s.today = t;
    }
    // The last 24 whole hours and the one in progress.
    let first_hour = (now.as_millisecond().div_euclid(HOUR_MS) - 23) * HOUR_MS;
    let mut per_hour: BTreeMap<ServiceName, Vec<Option<f64>>> = BTreeMap::new();
    let stored = store.latency(ts(first_hour), now).await.unwrap_or_default();
    let mut sums: BTreeMap<(ServiceName, i64), upkeep_core::latency::Latency> = BTreeMap::new();
    for (hour, name, l) in stored.into_iter().chain(book.peek(ts(first_hour), now)) {
        sums.entry((name, hour.as_millisecond()))
            .or_default()
            .add(&l);
    }
    for ((name, hour), l) in sums {
        let i = (hour - first_hour).div_euclid(HOUR_MS);
        if (0..24).contains(&i) {
            per_hour.entry(name).or_insert_with(|| vec![None; 24])[i as usize] = l.quantile(0.5);
        }
    }
    s.latency = per_hour;

    match store.incidents(None, HISTORY as u32 * 2).await {
        Ok(list) => {
            let list: Vec<_> = list.into_iter().filter(|i| !i.drill).collect();
            // Open ones however old (an outage of weeks is older than the latest 500).
            let open_now: Vec<upkeep_core::api::Incident> = match store.open_incidents().await {
                Ok(o) => o.into_iter().filter(|i| !i.drill).collect(),
                Err(_) => list
                    .iter()
                    .filter(|i| i.resolved.is_none())
                    .cloned()
                    .collect(),
            };
            let mut open = Vec::new();
            for i in open_now.iter() {
                let timeline = match store.incident(i.id, 200).await {
                    Ok(Some(d)) => d
                        .timeline
                        .iter()
                        .filter_map(|e| step(e).map(|s| (e.at, s)))
                        .collect(),
                    _ => Vec::new(),
                };
                open.push(PageIncident {
                    id: i.id,
                    service: i.service.clone(),
                    started: i.started,
                    resolved: None,
                    timeline,
                    written: written(store, i.id).await,
                });
            }
            s.incidents = open;
            let mut history: Vec<HistoryItem> = Vec::new();
            for (n, i) in list.iter().filter(|i| i.resolved.is_some()).enumerate() {
                history.push(HistoryItem::Incident {
                    id: i.id,
                    service: i.service.clone(),
                    started: i.started,
                    resolved: i.resolved,
                    written: if n < WRITTEN_IN_HISTORY {
                        written(store, i.id).await
                    } else {
                        Written::default()
                    },
                });
            }
            if let Ok(windows) = crate::ops::windows::list(daemon, true).await {
                let shown = crate::subscriptions::public_services(&daemon.live.lock().await.config);
                let all: Vec<upkeep_core::window::Announcement> = windows
                    .iter()
                    .filter_map(|w| {
                        upkeep_core::window::Announcement::from(w).public(|s| shown.contains(s))
                    })
                    .collect();
                s.windows = all
                    .iter()
                    .filter(|w| {
                        matches!(
                            w.status,
                            WindowStatus::Scheduled | WindowStatus::Running | WindowStatus::Overrun
                        )
                    })
                    .cloned()
                    .collect();
                s.windows.sort_by_key(|w| w.start);
                history.extend(
                    all.into_iter()
                        .filter(|w| {
                            matches!(w.status, WindowStatus::Completed | WindowStatus::Cancelled)
                        })
                        .map(HistoryItem::Maintenance),
                );
            }
            history.sort_by_key(|h| std::cmp::Reverse(h.at()));
            history.truncate(HISTORY);
            s.history = history;
        }
        Err(e) => tracing::debug!("status page: incidents not read: {}", e.with_causes()),
    }
}

/// Incident `id` as its own public page shows it (`/incidents/{id}`, the link in notices):
/// None for an unknown id, a drill, or a service that is not public (`public = false`).
pub async fn public_incident(
    daemon: &Daemon,
    id: i64,
) -> Result<Option<PageIncident>, upkeep_store::Error> {
    let Some(detail) = daemon.store.incident(id, 200).await? else {
        return Ok(None);
    };
    let i = detail.incident;
    let public = crate::subscriptions::public_services(&daemon.live.lock().await.config);
    if i.drill || !public.contains(&i.service) {
        return Ok(None);
    }
    Ok(Some(PageIncident {
        id: i.id,
        service: i.service,
        started: i.started,
        resolved: i.resolved,
        timeline: public_steps(&detail.timeline),
        written: written(daemon.store.as_ref(), id).await,
    }))
}

/// What people wrote about incident `id`, as the page shows it (nothing if the store does
/// not answer: the page shows what the probes saw).
async fn written(store: &dyn upkeep_store::Store, id: i64) -> Written {
    match store.incident_notes(id).await {
        Ok(Some(notes)) => Written {
            title: notes.title,
            updates: notes
                .updates
                .into_iter()
                .map(|u| (u.at, u.status, u.message))
                .collect(),
            postmortem: notes.postmortem.map(|p| p.postmortem),
        },
        _ => Written::default(),
    }
}

/// An incident's timeline as the public reads it: the steps of [`step`], each change of
/// state once (a daemon's restart does not repeat the state it found).
fn public_steps(timeline: &[upkeep_core::api::StoredEvent]) -> Vec<(jiff::Timestamp, Step)> {
    let mut steps: Vec<(jiff::Timestamp, Step)> = Vec::new();
    for e in timeline {
        let Some(s) = step(e) else { continue };
        let last_state = steps.iter().rev().find_map(|(_, s)| match s {
            Step::Became(to) => Some(*to),
            _ => None,
        });
        if matches!(s, Step::Became(to) if Some(to) == last_state) {
            continue;
        }
        steps.push((e.at, s));
    }
    steps
}

/// A stored event of an incident's timeline as a step the public may read (no reasons, and
/// none of the supervisor's passing states: `starting`, `recovering`, `stopping` and a
/// restarted daemon's `unknown` say nothing to a reader; break-it, session 12).
fn step(e: &upkeep_core::api::StoredEvent) -> Option<Step> {
    match e.kind.as_str() {
        "incident_opened" => Some(Step::Opened),
        "incident_reopened" => Some(Step::Reopened),
        "incident_resolved" => Some(Step::Resolved),
        "heal_requested" => Some(Step::Healed),
        "status_changed" => {
            let to: State = serde_json::from_value(e.detail.get("to")?.clone()).ok()?;
            matches!(
                to,
                State::Up
                    | State::Degraded
                    | State::Down
                    | State::Failed
                    | State::Maintenance
                    | State::Stopped
            )
            .then_some(Step::Became(to))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(kind: &str, to: Option<&str>) -> upkeep_core::api::StoredEvent {
        upkeep_core::api::StoredEvent {
            id: 0,
            at: jiff::Timestamp::UNIX_EPOCH,
            service: None,
            kind: kind.into(),
            intervention: false,
            detail: to.map_or(
                serde_json::Value::Null,
                |to| serde_json::json!({ "to": to }),
            ),
        }
    }

    /// Break-it, session 12: every daemon restart added "Now: Unknown / Starting /
    /// Recovering" to what the public reads of an open incident.
    #[test]
    fn the_public_timeline_has_no_passing_states_and_no_repeats() {
        let timeline = [
            ev("status_changed", Some("down")),
            ev("incident_opened", None),
            ev("status_changed", Some("unknown")),
            ev("status_changed", Some("starting")),
            ev("status_changed", Some("recovering")),
            ev("status_changed", Some("down")),
            ev("status_changed", Some("up")),
            ev("incident_resolved", None),
        ];
        let steps: Vec<Step> = public_steps(&timeline)
            .into_iter()
            .map(|(_, s)| s)
            .collect();
        assert_eq!(
            steps,
            [
                Step::Became(State::Down),
                Step::Opened,
                Step::Became(State::Up),
                Step::Resolved
            ]
        );
    }
}
