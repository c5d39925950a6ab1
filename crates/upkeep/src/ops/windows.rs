//! Maintenance windows, asked for by operators: schedule (against the lead-time policy, or
//! forced with a reason), list, show, edit, cancel, start early, finish, extend. Each step an
//! operator takes is stored once with their name and recorded as a `window_step` event; the
//! planner (`planner.rs`) is woken to take what follows (services into or out of
//! maintenance, reminders, completion).

use jiff::Timestamp;
use upkeep_core::window::{
    self, Announcement, Occurrence, Step, Window, WindowAction, WindowRequest, WindowSpec,
    WindowStatus,
};
use upkeep_core::{Actor, Principal};
use upkeep_maintenance::{LeadTime, PolicyRefusal, SpecError};
use upkeep_store::StoredWindow;

use crate::control::Daemon;
use crate::planner;

#[derive(Debug, thiserror::Error)]
pub enum WindowError {
    #[error("{0}")]
    Invalid(#[from] SpecError),
    #[error("{0}")]
    Policy(#[from] PolicyRefusal),
    #[error("--force needs --why: say why this window cannot give the notice the policy asks")]
    NoWhy,
    #[error("no maintenance window number {0}")]
    Unknown(i64),
    #[error("window {0} is cancelled")]
    Cancelled(i64),
    #[error("window {0} is not under way: nothing to finish")]
    NotRunning(i64),
    #[error("window {0} is under way: cancel it, finish it or extend it instead")]
    Running(i64),
    #[error("window {0} has no occurrence left")]
    NothingLeft(i64),
    #[error("window {0} is over (completed): schedule a new one")]
    Over(i64),
    #[error("a window may last at most {0} days: schedule another for the rest")]
    TooLong(i64),
    #[error("the new end {until} is not after {after}")]
    BadExtend {
        until: jiff::Timestamp,
        after: jiff::Timestamp,
    },
    #[error(transparent)]
    Away(#[from] crate::ops::StoreAway),
    #[error("{what} in the store")]
    Store {
        what: &'static str,
        #[source]
        source: upkeep_store::Error,
    },
}

fn store(what: &'static str) -> impl FnOnce(upkeep_store::Error) -> WindowError {
    move |source| WindowError::Store { what, source }
}

/// The window as the API shows it: its status and current occurrence as planned now.
pub fn view(daemon: &Daemon, w: StoredWindow) -> Window {
    let snapshot = daemon.snapshot.borrow().clone();
    let rules = planner::rules(&daemon.maintenance.borrow());
    let plan = planner::plan_of(&w, daemon.clock.now(), &snapshot, &rules);
    let updated = w.taken.iter().map(|t| t.at).fold(w.updated, Timestamp::max);
    Window {
        id: w.id,
        spec: w.spec,
        status: plan.status,
        // Shown from when it began: an occurrence started early is under way since then.
        current: plan.current.map(|o| Occurrence {
            start: window::began(&w.taken, o.start),
            ..o
        }),
        created: w.created,
        created_by: w.created_by,
        forced_why: w.forced_why,
        steps: w.taken,
        revision: w.revision,
        updated,
        names_hidden: Vec::new(),
    }
}

/// `w` with the fields of its text that name a hidden service, for the operator who wrote
/// them (`maint add`, `maint edit`).
async fn told(daemon: &Daemon, mut w: Window) -> Window {
    let hidden: std::collections::BTreeSet<_> = {
        let live = daemon.live.lock().await;
        live.config
            .services
            .iter()
            .filter(|(_, c)| c.page.hidden)
            .map(|(n, _)| n.clone())
            .collect()
    };
    let s = &w.spec;
    let fields = [
        ("title", s.title.as_str()),
        ("reason", s.reason.as_str()),
        ("alternative", s.alternative.as_str()),
        ("follow_up", s.follow_up.as_str()),
    ];
    w.names_hidden = crate::hidden::named(&fields, &hidden);
    w
}

/// The lead-time policy as configured (`[maintenance]`).
fn lead_time(daemon: &Daemon) -> LeadTime {
    let c = daemon.maintenance.borrow();
    LeadTime {
        short_max: c.short_max,
        short_notice: c.short_notice,
        long_notice: c.long_notice,
    }
}

async fn check(daemon: &Daemon, spec: &WindowSpec) -> Result<(), WindowError> {
    let live = daemon.live.lock().await;
    upkeep_maintenance::validate(spec, |n| live.config.services.contains_key(n))?;
    Ok(())
}

/// `force_why`, if given, must say something: white space and invisible characters alone
/// (a zero-width space) say nothing.
fn why(req: &Option<String>) -> Result<Option<&str>, WindowError> {
    match req.as_deref().map(str::trim) {
        Some(w) if upkeep_core::text::says_nothing(w) => Err(WindowError::NoWhy),
        other => Ok(other),
    }
}

/// Checks `req` against the lead-time policy: Ok(None) when it gives the notice; with a
/// `force_why`, Ok(the reason) when it does not (recorded: it was needed); else the refusal.
fn policy<'r>(
    daemon: &Daemon,
    req: &'r WindowRequest,
    now: Timestamp,
) -> Result<Option<&'r str>, WindowError> {
    let why = why(&req.force_why)?;
    match (lead_time(daemon).check(&req.spec, now), why) {
        (Ok(()), _) => Ok(None),
        (Err(_), Some(why)) => Ok(Some(why)),
        (Err(refusal), None) => Err(refusal.into()),
    }
}

/// Schedules a window.
pub async fn add(
    daemon: &Daemon,
    mut req: WindowRequest,
    by: &Principal,
) -> Result<Window, WindowError> {
    daemon.store_ready()?;
    upkeep_maintenance::normalize(&mut req.spec);
    check(daemon, &req.spec).await?;
    let _one = daemon.windows.lock().await;
    let now = daemon.clock.now();
    upkeep_maintenance::ahead(&req.spec, now)?;
    let forced = policy(daemon, &req, now)?;
    let id = daemon
        .store
        .add_window(&req.spec, now, by, forced)
        .await
        .map_err(store("storing the window"))?;
    tracing::info!(window = id, by = %by, forced = forced.is_some(), "maintenance window scheduled");
    daemon.planner.notify_one();
    Ok(told(daemon, get(daemon, id).await?).await)
}

async fn stored(daemon: &Daemon, id: i64) -> Result<StoredWindow, WindowError> {
    daemon.store_ready()?;
    daemon
        .store
        .window(id)
        .await
        .map_err(store("reading the window"))?
        .ok_or(WindowError::Unknown(id))
}

pub async fn get(daemon: &Daemon, id: i64) -> Result<Window, WindowError> {
    Ok(view(daemon, stored(daemon, id).await?))
}

/// Windows not done (or all, with `all`), earliest first.
pub async fn list(daemon: &Daemon, all: bool) -> Result<Vec<Window>, WindowError> {
    daemon.store_ready()?;
    let windows = daemon
        .store
        .windows(all)
        .await
        .map_err(store("reading windows"))?;
    Ok(windows.into_iter().map(|w| view(daemon, w)).collect())
}

/// Replaces a scheduled window's spec. A start moved earlier must still give its notice.
pub async fn edit(
    daemon: &Daemon,
    id: i64,
    mut req: WindowRequest,
    by: &Principal,
) -> Result<Window, WindowError> {
    upkeep_maintenance::normalize(&mut req.spec);
    let _one = daemon.windows.lock().await;
    let w = stored(daemon, id).await?;
    let current = view(daemon, w.clone());
    match current.status {
        WindowStatus::Cancelled => return Err(WindowError::Cancelled(id)),
        WindowStatus::Completed => return Err(WindowError::Over(id)),
        WindowStatus::Running | WindowStatus::Overrun => return Err(WindowError::Running(id)),
        WindowStatus::Scheduled => {}
    }
    check(daemon, &req.spec).await?;
    // A moved window must still be to come (an edit of its text alone need not: a weekly
    // window's first start is long past).
    let (old, new) = (&w.spec, &req.spec);
    if (new.start, new.end, &new.repeat) != (old.start, old.end, &old.repeat) {
        upkeep_maintenance::ahead(new, daemon.clock.now())?;
    }
    // An edit that asks more of people than the window did (earlier, longer, no longer an
    // emergency) must give the notice that asks for, as a new window would.
    let (old, new) = (&w.spec, &req.spec);
    let asks_more = new.start < old.start
        || new.end.duration_since(new.start) > old.end.duration_since(old.start)
        || (old.kind == upkeep_core::window::WindowKind::Emergency && new.kind != old.kind);
    let forced = if asks_more {
        policy(daemon, &req, daemon.clock.now())?
    } else {
        None
    };
    daemon
        .store
        .edit_window(id, &req.spec, daemon.clock.now(), forced)
        .await
        .map_err(store("editing the window"))?;
    tracing::info!(window = id, by = %by, "maintenance window edited");
    daemon.planner.notify_one();
    Ok(told(daemon, get(daemon, id).await?).await)
}

/// Cancels, starts, finishes or extends a window, as `by`.
pub async fn act(
    daemon: &Daemon,
    id: i64,
    action: WindowAction,
    by: &Principal,
) -> Result<Window, WindowError> {
    // One operator step at a time: a finish and a cancel racing each other see each other's
    // result (the second is refused), never both taken.
    let _one = daemon.windows.lock().await;
    let w = stored(daemon, id).await?;
    if w.cancelled {
        return Err(WindowError::Cancelled(id));
    }
    let now = daemon.clock.now();
    let rules = planner::rules(&daemon.maintenance.borrow());
    let plan = planner::plan_of(&w, now, &daemon.snapshot.borrow().clone(), &rules);
    if plan.status == WindowStatus::Completed {
        return Err(WindowError::Over(id));
    }
    let (occurrence, step) = match action {
        WindowAction::Cancel => (
            plan.current.map_or(w.spec.start, |o| o.start),
            Step::Cancelled,
        ),
        WindowAction::Start => {
            if plan.running.is_some() {
                return Err(WindowError::Running(id));
            }
            // Begun early, it lasts as long as planned from now (the step's time: see
            // `window::began`), not until its planned end.
            let next = plan.current.ok_or(WindowError::NothingLeft(id))?;
            (next.start, Step::Started)
        }
        WindowAction::Finish => {
            let run = plan.running.ok_or(WindowError::NotRunning(id))?;
            (run.start, Step::Completed)
        }
        WindowAction::Extend { until } => {
            let o: Occurrence = plan.current.ok_or(WindowError::NothingLeft(id))?;
            let after = o.start.max(now);
            let until = whole(until);
            if until <= after {
                return Err(WindowError::BadExtend { until, after });
            }
            if until.duration_since(o.start).as_hours() > upkeep_maintenance::LENGTH_MAX_DAYS * 24 {
                return Err(WindowError::TooLong(upkeep_maintenance::LENGTH_MAX_DAYS));
            }
            (o.start, Step::Extended { until })
        }
    };
    let new = daemon
        .notices
        .take_step(daemon.store.as_ref(), &w, occurrence, step, now, Some(by))
        .await
        .map_err(store("recording the step"))?;
    if new {
        tracing::info!(window = id, step = %step.key(), by = %by, "maintenance window step");
        let event = planner::step_event(
            &daemon.clock,
            &w,
            occurrence,
            step,
            Actor::Principal(by.clone()),
        );
        daemon.record(event).await;
    }
    daemon.planner.notify_one();
    get(daemon, id).await
}

/// What the public sees: windows under way or to come, and those that ended (or were called
/// off) within the last 30 days, earliest first; none naming a service that is not public.
pub async fn announcements(daemon: &Daemon) -> Result<Vec<Announcement>, WindowError> {
    let shown = crate::subscriptions::public_services(&daemon.live.lock().await.config);
    let now = daemon.clock.now();
    let since = now
        .checked_sub(jiff::SignedDuration::from_hours(30 * 24))
        .unwrap_or(now);
    Ok(list(daemon, true)
        .await?
        .iter()
        .filter(|w| {
            !matches!(w.status, WindowStatus::Completed | WindowStatus::Cancelled)
                || w.updated >= since
        })
        .filter_map(|w| Announcement::from(w).public(|s| shown.contains(s)))
        .collect())
}

/// Whole seconds, as windows are stored.
fn whole(t: Timestamp) -> Timestamp {
    Timestamp::from_second(t.as_second()).unwrap_or(t)
}
