//! Maintenance windows, asked for by operators: schedule (against the lead-time policy, or
//! forced with a reason), list, show, edit, cancel, start early, finish, extend. Each step an
//! operator takes is stored once with their name and recorded as a `window_step` event; the
//! planner (`planner.rs`) is woken to take what follows (services into or out of
//! maintenance, reminders, completion).

use upkeep_core::window::{
    Occurrence, Step, Window, WindowAction, WindowRequest, WindowSpec, WindowStatus,
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
    #[error("window {0} has no occurrence left to start")]
    NothingLeft(i64),
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
    let plan = planner::plan_of(&w, daemon.clock.now(), &snapshot);
    Window {
        id: w.id,
        spec: w.spec,
        status: plan.status,
        current: plan.current,
        created: w.created,
        created_by: w.created_by,
        forced_why: w.forced_why,
        steps: w.taken,
    }
}

async fn check(daemon: &Daemon, spec: &WindowSpec) -> Result<(), WindowError> {
    let live = daemon.live.lock().await;
    upkeep_maintenance::validate(spec, |n| live.config.services.contains_key(n))?;
    Ok(())
}

/// `force_why`, if given, must say something.
fn why(req: &Option<String>) -> Result<Option<&str>, WindowError> {
    match req.as_deref().map(str::trim) {
        Some("") => Err(WindowError::NoWhy),
        other => Ok(other),
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
    let now = daemon.clock.now();
    let forced = why(&req.force_why)?;
    if forced.is_none() {
        LeadTime::default().check(&req.spec, now)?;
    }
    let id = daemon
        .store
        .add_window(&req.spec, now, by, forced)
        .await
        .map_err(store("storing the window"))?;
    tracing::info!(window = id, by = %by, forced = forced.is_some(), "maintenance window scheduled");
    daemon.planner.notify_one();
    get(daemon, id).await
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
    let w = stored(daemon, id).await?;
    let current = view(daemon, w.clone());
    match current.status {
        WindowStatus::Cancelled => return Err(WindowError::Cancelled(id)),
        WindowStatus::Running | WindowStatus::Overrun => return Err(WindowError::Running(id)),
        _ => {}
    }
    check(daemon, &req.spec).await?;
    if req.spec.start < w.spec.start && why(&req.force_why)?.is_none() {
        LeadTime::default().check(&req.spec, daemon.clock.now())?;
    }
    daemon
        .store
        .edit_window(id, &req.spec, daemon.clock.now())
        .await
        .map_err(store("editing the window"))?;
    tracing::info!(window = id, by = %by, "maintenance window edited");
    daemon.planner.notify_one();
    get(daemon, id).await
}

/// Cancels, starts, finishes or extends a window, as `by`.
pub async fn act(
    daemon: &Daemon,
    id: i64,
    action: WindowAction,
    by: &Principal,
) -> Result<Window, WindowError> {
    let w = stored(daemon, id).await?;
    if w.cancelled {
        return Err(WindowError::Cancelled(id));
    }
    let now = daemon.clock.now();
    let plan = planner::plan_of(&w, now, &daemon.snapshot.borrow().clone());
    let (occurrence, step) = match action {
        WindowAction::Cancel => (
            plan.current.map_or(w.spec.start, |o| o.start),
            Step::Cancelled,
        ),
        WindowAction::Start => {
            if plan.running.is_some() {
                return Err(WindowError::Running(id));
            }
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
            let until = jiff::Timestamp::from_second(until.as_second()).unwrap_or(until);
            if until <= after {
                return Err(WindowError::BadExtend { until, after });
            }
            (o.start, Step::Extended { until })
        }
    };
    let notices = daemon.notices.window_rows(&w, occurrence, step, now);
    let new = daemon
        .store
        .take_step(id, occurrence, step, now, Some(by), &notices)
        .await
        .map_err(store("recording the step"))?;
    if new && !notices.is_empty() {
        daemon.notices.added();
    }
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
