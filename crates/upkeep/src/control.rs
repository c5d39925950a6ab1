//! What the API can ask of the daemon: [`Daemon`] implements [`upkeep_web::Control`].
//!
//! Reads come from the state snapshot and the store; actions are operations (`crate::ops`),
//! whose errors become HTTP answers here, in one `From` per error type for `ApiError`.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use futures_util::StreamExt;
use tokio::sync::{broadcast, watch};
use tokio_util::sync::CancellationToken;
use upkeep_config::Config;
use upkeep_core::api::{
    ActionResult, AddService, Health, PublicStatus, ReloadResult, ServiceDetail, ServiceInfo,
    StoredEvent,
};
use upkeep_core::report::PeriodReport;
use upkeep_core::window::{Window, WindowAction, WindowRequest};
use upkeep_core::{
    Clock, Desired, Event, LastCheck, Principal, ServiceName, ServiceStatus, TestClock,
};
use upkeep_state::Snapshot;
use upkeep_store::Store;
use upkeep_supervisor::{Stream, procfs};
use upkeep_web::{Action, ApiError, Control, LogStream, Target};

use crate::ops::OpsError;
use crate::ops::drill::DrillError;
use crate::ops::notify::NotifyError;
use crate::ops::reports::ReportError;
use crate::ops::signal::SignalError;
use crate::ops::windows::{self, WindowError};
use crate::wiring::{ServiceHandles, Wiring};

/// The running configuration and the tasks built from it.
pub struct Live {
    pub config: Config,
    pub services: BTreeMap<ServiceName, ServiceHandles>,
    pub desired: BTreeMap<ServiceName, Desired>,
}

/// What a service's row shows besides its status.
struct Extra {
    desired: Desired,
    depends_on: Vec<upkeep_core::Dependency>,
    notify_status: Option<String>,
}

/// A service as `infos` needs it, read under the `Live` lock.
struct LiveService {
    name: ServiceName,
    desired: Desired,
    last_checks: BTreeMap<String, LastCheck>,
    depends_on: Vec<upkeep_core::Dependency>,
    /// The last `STATUS=` its process sent (live, from its supervisor).
    notify_status: Option<String>,
}

pub struct Daemon {
    pub config_path: PathBuf,
    pub data_dir: PathBuf,
    pub live: tokio::sync::Mutex<Live>,
    pub store: Arc<dyn Store>,
    pub wiring: Arc<Wiring>,
    pub snapshot: watch::Receiver<Arc<Snapshot>>,
    /// How many events the store writer has kept, stored or journaled (see [`Snapshot::seq`]).
    pub stored: watch::Receiver<u64>,
    /// Whether the store takes events, from the writer.
    pub store_health: watch::Receiver<upkeep_core::api::StoreHealth>,
    /// Committed events: a broadcast for live views, cursors for durable consumers.
    pub committed: upkeep_store::fanout::Fanout,
    /// Cancelled by `upkeep down`.
    pub shutdown: CancellationToken,
    /// Held by the one reload (or add) in progress: reloads never interleave, and none holds
    /// `live` while services stop.
    pub reloading: tokio::sync::Mutex<()>,
    /// Services a drill is running on (one drill per service at a time). A std Mutex: never
    /// held across an await.
    pub drills: std::sync::Mutex<std::collections::HashSet<ServiceName>>,
    /// Wakes the maintenance planner after an operator changed a window.
    pub planner: Arc<tokio::sync::Notify>,
    /// Held by the one window operation in progress: operators' steps never interleave.
    pub windows: tokio::sync::Mutex<()>,
    /// `[maintenance]` as configured: the planner and window operations read it; a reload
    /// sends the new one.
    pub maintenance: watch::Sender<upkeep_config::MaintenanceConfig>,
    /// The time every stage reads (see `upkeep_core::Clock`).
    pub clock: Clock,
    /// The same clock's hand, when `daemon.test_clock` is set: `POST /api/v1/test/clock`.
    pub test_clock: Option<TestClock>,
    /// What operators asked for, kept in the data dir (and in the store when it answers).
    pub intent: Arc<crate::intent::Intent>,
    /// Plans notices (window steps, tests) and wakes the dispatcher.
    pub notices: crate::notices::Notices,
    /// The public status page's rendered bytes, kept current by `statuspage.rs`.
    pub site: upkeep_web::Site,
    /// Where this image runs from and since when, and an upgrade asked for (`upgrade.rs`).
    pub upgrade: crate::upgrade::Upgrades,
    /// Admin users and sessions (`accounts.rs`).
    pub accounts: Arc<crate::accounts::StoreAccounts>,
    /// The certificate `listen` and `public_listen` serve HTTPS with (`[daemon] tls`); a
    /// reload hands it the files read again.
    pub tls: Option<upkeep_web::Tls>,
}

fn internal(e: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> ApiError {
    ApiError::Internal(e.into())
}

impl From<ReportError> for ApiError {
    fn from(e: ReportError) -> Self {
        match e {
            ReportError::UnknownIncident(_) => ApiError::NotFound(e.to_string()),
            ReportError::Period { .. } => ApiError::bad_request(e.to_string()),
            ReportError::Store { source, .. } => store_error(source),
            ReportError::Away(away) => away.into(),
        }
    }
}

impl From<DrillError> for ApiError {
    fn from(e: DrillError) -> Self {
        let message = e.to_string();
        match e {
            DrillError::UnknownService(_) => ApiError::NotFound(message),
            DrillError::External(_)
            | DrillError::AlreadyRunning(_)
            | DrillError::NotUp { .. }
            | DrillError::NoProcess(_)
            | DrillError::Unsettled(_)
            | DrillError::NoListener(_)
            | DrillError::NotInjected { .. } => ApiError::Conflict(message),
            DrillError::WouldNotHeal { .. } => ApiError::Unprocessable {
                message,
                hint: Some("drill a service that upkeep restarts when it fails".into()),
            },
            DrillError::NeedsProbe { .. } => ApiError::Unprocessable {
                message,
                hint: Some("add a process, tcp or http probe to the service".into()),
            },
            DrillError::NotRecovered { .. } => ApiError::Unprocessable {
                message,
                hint: Some("see `upkeep status` and its events for why".into()),
            },
            DrillError::Events(source) => store_error(source),
            DrillError::NeverNoticed(_) | DrillError::Task(_) => ApiError::Internal(Box::new(e)),
        }
    }
}

impl From<WindowError> for ApiError {
    fn from(e: WindowError) -> Self {
        let message = e.to_string();
        match e {
            WindowError::Invalid(_)
            | WindowError::NoWhy
            | WindowError::BadExtend { .. }
            | WindowError::TooLong(_) => ApiError::bad_request(message),
            WindowError::Policy(refusal) => ApiError::Unprocessable {
                message,
                hint: Some(format!(
                    "start at {} or later, or schedule it anyway with a reason (--force --why \"...\"; force_why in the API)",
                    refusal.earliest
                )),
            },
            WindowError::Unknown(_) => ApiError::NotFound(message),
            WindowError::Cancelled(_)
            | WindowError::Over(_)
            | WindowError::NotRunning(_)
            | WindowError::Running(_)
            | WindowError::NothingLeft(_) => ApiError::Conflict(message),
            WindowError::Away(away) => away.into(),
            WindowError::Store { source, .. } => store_error(source),
        }
    }
}

impl From<SignalError> for ApiError {
    fn from(e: SignalError) -> Self {
        let message = e.to_string();
        let hint = e.hint();
        match e {
            SignalError::UnknownService(_) => ApiError::NotFound(message),
            SignalError::UnknownSignal(_) => ApiError::BadRequest { message, hint },
            SignalError::External(_) | SignalError::NotSent(_) => ApiError::Conflict(match hint {
                Some(h) => format!("{message}; {h}"),
                None => message,
            }),
            SignalError::Uncatchable { .. }
            | SignalError::JobControl { .. }
            | SignalError::NoReloadSignal(_) => ApiError::Unprocessable { message, hint },
        }
    }
}

impl From<NotifyError> for ApiError {
    fn from(e: NotifyError) -> Self {
        let message = e.to_string();
        match e {
            NotifyError::Unknown(_) => ApiError::NotFound(message),
            NotifyError::UnknownChannel(_) => ApiError::NotFound(message),
            NotifyError::NotFailed { .. } => ApiError::Conflict(message),
            NotifyError::BadRecipient { .. } | NotifyError::NoRecipient(_) => {
                ApiError::bad_request(message)
            }
            NotifyError::Away(away) => away.into(),
            NotifyError::Store { source, .. } => store_error(source),
        }
    }
}

/// The one place where what an operation refused or failed at becomes an HTTP answer:
/// the user's mistakes are 4xx with what to do, the daemon's own failures a 500 or 503 whose
/// cause chain goes to the log.
impl From<OpsError> for ApiError {
    fn from(e: OpsError) -> Self {
        let message = e.to_string();
        match e {
            OpsError::UnknownService(_) => ApiError::NotFound(message),
            OpsError::External { .. }
            | OpsError::NotInMaintenance(_)
            | OpsError::InWindow { .. }
            | OpsError::Upgrading(_) => ApiError::Conflict(message),
            OpsError::Edit(upkeep_config::EditError::Exists(_)) => ApiError::Conflict(message),
            OpsError::Edit(_) => ApiError::bad_request(message),
            OpsError::DataDirMoved { .. } => ApiError::Unprocessable {
                message,
                hint: Some(
                    "run `upkeep down`, then `upkeep up` to start over in the new data dir".into(),
                ),
            },
            OpsError::InvalidConfig(_) => ApiError::Unprocessable {
                message,
                hint: Some(
                    "the running config stays in force; fix the file and run `upkeep reload` again"
                        .into(),
                ),
            },
            OpsError::FileDoesNotLoad(_) => ApiError::Unprocessable {
                message,
                hint: Some(
                    "the running config stays in force and the file is unchanged; fix it (`upkeep check`) and `upkeep reload`, then add"
                        .into(),
                ),
            },
            OpsError::EditsWaiting(_) => ApiError::Unprocessable {
                message,
                hint: Some(
                    "nothing was added; `upkeep reload` applies those changes (or undo them), then add"
                        .into(),
                ),
            },
            OpsError::NotAdded { why, .. } => ApiError::Unprocessable {
                message,
                hint: why.problems().iter().find_map(|p| p.hint.clone()),
            },
            OpsError::RevisionNotStored(source) => ApiError::Unavailable {
                message: format!("{message} ({source})"),
                hint: Some(
                    "the running config stays in force; see the daemon's log, then reload again"
                        .into(),
                ),
            },
            OpsError::IntentNotSaved(_)
            | OpsError::WriteConfig { .. }
            | OpsError::Task(_) => ApiError::Internal(Box::new(e)),
        }
    }
}

/// A store that fails (PostgreSQL away, SQLite locked) makes reads unavailable for a while,
/// not broken: 503, and its cause chain in the message.
fn store_error(e: upkeep_store::Error) -> ApiError {
    ApiError::Unavailable {
        message: format!("the store is unreachable: {}", e.with_causes()),
        hint: Some("supervision goes on; events are kept and stored once it is back".into()),
    }
}

impl From<crate::ops::StoreAway> for ApiError {
    fn from(away: crate::ops::StoreAway) -> Self {
        ApiError::Unavailable {
            message: away.to_string(),
            hint: Some(format!(
                "supervision goes on; {} events wait in the journal until it is back",
                away.journaled
            )),
        }
    }
}

fn unknown(name: &ServiceName) -> ApiError {
    ApiError::NotFound(format!("no service named `{name}` is configured"))
}

/// How long `ls` samples CPU use: long enough for a few clock ticks, short enough to feel instant.
const CPU_SAMPLE: Duration = Duration::from_millis(100);

impl Daemon {
    /// The services the public may see (not `public = false`), as the running config says.
    async fn public_services(&self) -> std::collections::BTreeSet<ServiceName> {
        crate::subscriptions::public_services(&self.live.lock().await.config)
    }

    /// Fails at once, with why, while the writer finds the store unreachable: a read would
    /// only wait out the connection timeout.
    pub(crate) fn store_ready(&self) -> Result<(), crate::ops::StoreAway> {
        let h = self.store_health.borrow();
        if h.reachable {
            return Ok(());
        }
        Err(crate::ops::StoreAway {
            engine: h.engine.clone(),
            error: h.error.clone().unwrap_or_else(|| "no answer".into()),
            journaled: h.journaled,
        })
    }

    /// Ready to read history: the store reachable (else why not, at once) and holding every
    /// event the status shown so far has seen.
    pub(crate) async fn history_ready(&self) -> Result<(), crate::ops::StoreAway> {
        self.store_ready()?;
        self.store_caught_up().await;
        Ok(())
    }

    /// Waits (briefly) until the store holds every event the state snapshot has seen, so that
    /// a reader never finds the store behind the status it was just shown.
    pub(crate) async fn store_caught_up(&self) {
        let seq = self.snapshot.borrow().seq;
        let _ = tokio::time::timeout(
            Duration::from_secs(2),
            self.stored.clone().wait_for(|n| *n >= seq),
        )
        .await;
    }

    fn status_of(&self, snapshot: &Snapshot, name: &ServiceName) -> ServiceStatus {
        snapshot
            .services
            .get(name)
            .cloned()
            .unwrap_or_else(|| ServiceStatus::new(name.clone()))
    }

    /// Sends `event` through state and waits until state has taken it in and the store has
    /// it (each at most a few seconds), so that a `status` right after the answer shows it and
    /// a daemon killed right after the answer does not forget it (maintenance acknowledged,
    /// then lost to a kill -9, was seen in the tests).
    pub async fn record(&self, event: Event) {
        let seq = self.snapshot.borrow().seq;
        let _ = self.wiring.supervisor.events.send(event).await;
        let mut rx = self.snapshot.clone();
        let _ = tokio::time::timeout(Duration::from_secs(5), rx.wait_for(|s| s.seq > seq)).await;
        self.store_caught_up().await;
    }

    /// What `infos` needs of a running service: its desired state, its probes' last checks,
    /// its dependencies and what its process last said.
    fn live_of(live: &Live, name: &ServiceName) -> LiveService {
        let handles = live.services.get(name);
        LiveService {
            name: name.clone(),
            // Every configured service has one; should one be missing, it is not worth a panic.
            desired: live.desired.get(name).copied().unwrap_or(Desired::Running),
            last_checks: handles.map(ServiceHandles::last_checks).unwrap_or_default(),
            depends_on: live
                .config
                .services
                .get(name)
                .map(|c| c.depends_on.clone())
                .unwrap_or_default(),
            notify_status: handles
                .and_then(|h| h.supervisor.as_ref())
                .and_then(|s| s.notify_status()),
        }
    }

    /// Every configured service, as `infos` needs it.
    async fn live_services(&self) -> Vec<LiveService> {
        let live = self.live.lock().await;
        live.config
            .services
            .keys()
            .map(|n| Self::live_of(&live, n))
            .collect()
    }

    /// The service's status with its probes' last checks, and what else `infos` shows.
    fn status_with_checks(&self, snapshot: &Snapshot, l: LiveService) -> (ServiceStatus, Extra) {
        let mut status = self.status_of(snapshot, &l.name);
        for (probe, last) in l.last_checks {
            if let Some(p) = status.probes.get_mut(&probe) {
                p.last = Some(last);
            }
        }
        let extra = Extra {
            desired: l.desired,
            depends_on: l.depends_on,
            notify_status: l.notify_status,
        };
        (status, extra)
    }

    /// Status, desired state, probes' last checks and live CPU/memory of each service.
    async fn infos(&self, names: Vec<LiveService>) -> Result<Vec<ServiceInfo>, ApiError> {
        let snapshot = self.snapshot.borrow().clone();
        let statuses: Vec<(ServiceStatus, Extra)> = names
            .into_iter()
            .map(|l| self.status_with_checks(&snapshot, l))
            .collect();
        let pgids: Vec<u32> = statuses.iter().filter_map(|(s, _)| s.pid).collect();
        let usage = if pgids.is_empty() {
            None
        } else {
            // Each read stamped when it was taken: a busy daemon may sleep far longer than
            // CPU_SAMPLE, and dividing by CPU_SAMPLE then showed 2,000% for one thread.
            let read = |p: Vec<u32>| async move {
                tokio::task::spawn_blocking(move || {
                    (std::time::Instant::now(), procfs::group_usage(&p))
                })
                .await
                .map_err(internal)
            };
            let (t0, first) = read(pgids.clone()).await?;
            tokio::time::sleep(CPU_SAMPLE).await;
            let (t1, second) = read(pgids).await?;
            Some((
                first,
                second,
                t1.duration_since(t0).as_secs_f64().max(0.001),
            ))
        };
        let hz = procfs::ticks_per_second() as f64;
        Ok(statuses
            .into_iter()
            .map(|(status, extra)| {
                let (mut cpu, mut mem, mut procs) = (None, None, None);
                if let (Some(pid), Some((a, b, elapsed))) = (status.pid, &usage)
                    && let Some(now) = b.get(&pid)
                {
                    let before = a.get(&pid).map_or(now.ticks, |u| u.ticks);
                    let secs = now.ticks.saturating_sub(before) as f64 / hz;
                    cpu = Some((secs / elapsed * 1000.0).round() / 10.0);
                    mem = Some(now.rss_bytes);
                    procs = Some(now.processes);
                }
                ServiceInfo {
                    status,
                    desired: extra.desired,
                    cpu_percent: cpu,
                    memory_bytes: mem,
                    processes: procs,
                    depends_on: extra.depends_on,
                    notify_status: extra.notify_status,
                }
            })
            .collect())
    }

    fn log_path(&self, name: &ServiceName, stderr: bool) -> PathBuf {
        self.wiring.supervisor.logs.path(
            name,
            if stderr {
                Stream::Stderr
            } else {
                Stream::Stdout
            },
        )
    }
}

#[async_trait]
impl Control for Daemon {
    async fn health(&self) -> Health {
        Health {
            ok: true,
            version: env!("CARGO_PKG_VERSION").into(),
            pid: std::process::id(),
            config_path: self.config_path.display().to_string(),
            data_dir: self.data_dir.display().to_string(),
            store: self.store_health.borrow().clone(),
            started: Some(self.upgrade.started),
            upgrade_error: self.upgrade.error.clone(),
        }
    }

    async fn statuses(&self) -> Vec<PublicStatus> {
        let names: Vec<ServiceName> = {
            let live = self.live.lock().await;
            // `public = false`: left off every public view, this one too.
            live.config
                .services
                .iter()
                .filter(|(_, svc)| !svc.page.hidden)
                .map(|(name, _)| name.clone())
                .collect()
        };
        let snapshot = self.snapshot.borrow().clone();
        names
            .into_iter()
            .map(|name| {
                let st = self.status_of(&snapshot, &name);
                PublicStatus {
                    name,
                    state: st.state,
                    since: st.since,
                }
            })
            .collect()
    }

    async fn services(&self) -> Result<Vec<ServiceInfo>, ApiError> {
        let live = self.live_services().await;
        self.infos(live).await
    }

    async fn service(&self, name: &ServiceName) -> Result<ServiceDetail, ApiError> {
        let (cfg, l) = {
            let live = self.live.lock().await;
            let cfg = live
                .config
                .services
                .get(name)
                .cloned()
                .ok_or_else(|| unknown(name))?;
            (cfg, Self::live_of(&live, name))
        };
        let info = self.infos(vec![l]).await?.remove(0);
        // While the store is away (or fails this read) the status is still worth showing,
        // without its history, saying why.
        let history = match self.history_ready().await {
            Ok(()) => tokio::try_join!(
                self.store.events(Some(name), 20),
                self.store.incidents(Some(name), 10)
            )
            .map_err(|e| format!("{:?}", store_error(e))),
            Err(away) => Err(away.to_string()),
        };
        let (events, incidents, history_unavailable) = match history {
            Ok((events, incidents)) => (events, incidents, None),
            Err(why) => {
                tracing::warn!("status of {name} without its history: {why}");
                (Vec::new(), Vec::new(), Some(why))
            }
        };
        let m = cfg.managed.as_ref();
        Ok(ServiceDetail {
            info,
            command: m.map(|m| m.program.argv.clone()).unwrap_or_default(),
            cwd: m
                .and_then(|m| m.cwd.as_ref())
                .map(|p| p.display().to_string()),
            restart: m
                .map_or("external (probes only)", |m| m.restart.as_str())
                .into(),
            stdout_log: self.log_path(name, false).display().to_string(),
            stderr_log: self.log_path(name, true).display().to_string(),
            readiness: m.and_then(readiness),
            events,
            incidents,
            history_unavailable,
        })
    }

    async fn act(
        &self,
        target: Target,
        action: Action,
        by: &Principal,
    ) -> Result<ActionResult, ApiError> {
        Ok(crate::ops::services::act(self, target, action, by).await?)
    }

    async fn drill(
        &self,
        req: upkeep_core::api::DrillRequest,
        by: &Principal,
    ) -> Result<upkeep_core::api::DrillResult, ApiError> {
        Ok(crate::ops::drill::run(self, req, by).await?)
    }

    async fn maintenance(
        &self,
        name: &ServiceName,
        req: Option<upkeep_core::api::MaintenanceRequest>,
        by: &Principal,
    ) -> Result<ActionResult, ApiError> {
        Ok(crate::ops::maintenance::set(self, name, req, by).await?)
    }

    async fn announcements(&self) -> Result<Vec<upkeep_core::window::Announcement>, ApiError> {
        let list = windows::announcements(self).await?;
        Ok(crate::hidden::announcements(
            list,
            &self.public_services().await,
        ))
    }

    async fn public_incidents(
        &self,
        limit: u32,
    ) -> Result<Vec<upkeep_core::api::Incident>, ApiError> {
        let all = crate::ops::reports::incidents(self, None, limit.saturating_mul(2)).await?;
        let all = crate::hidden::incidents(all, &self.public_services().await);
        Ok(all
            .into_iter()
            .filter(|i| !i.drill)
            .take(limit as usize)
            .map(|i| upkeep_core::api::Incident {
                reason: String::new(),
                ..i
            })
            .collect())
    }

    async fn public_incident(
        &self,
        id: i64,
    ) -> Result<Option<upkeep_web::site::model::PageIncident>, ApiError> {
        self.store_ready()?;
        crate::statuspage::public_incident(self, id)
            .await
            .map_err(|e| ApiError::Internal(Box::new(e)))
    }

    async fn windows(&self, all: bool) -> Result<Vec<Window>, ApiError> {
        Ok(windows::list(self, all).await?)
    }

    async fn window(&self, id: i64) -> Result<Window, ApiError> {
        Ok(windows::get(self, id).await?)
    }

    async fn add_window(&self, req: WindowRequest, by: &Principal) -> Result<Window, ApiError> {
        Ok(windows::add(self, req, by).await?)
    }

    async fn edit_window(
        &self,
        id: i64,
        req: WindowRequest,
        by: &Principal,
    ) -> Result<Window, ApiError> {
        Ok(windows::edit(self, id, req, by).await?)
    }

    async fn window_action(
        &self,
        id: i64,
        action: WindowAction,
        by: &Principal,
    ) -> Result<Window, ApiError> {
        Ok(windows::act(self, id, action, by).await?)
    }

    async fn notices(
        &self,
        state: Option<&str>,
        limit: u32,
    ) -> Result<Vec<upkeep_core::api::OutboxNotice>, ApiError> {
        Ok(crate::ops::notify::list(self, state, limit).await?)
    }

    async fn retry_notice(
        &self,
        id: i64,
        by: &Principal,
    ) -> Result<upkeep_core::api::OutboxNotice, ApiError> {
        Ok(crate::ops::notify::retry(self, id, by).await?)
    }

    async fn test_notice(
        &self,
        req: upkeep_core::api::NotifyTestRequest,
        by: &Principal,
    ) -> Result<Vec<upkeep_core::api::OutboxNotice>, ApiError> {
        Ok(crate::ops::notify::test(self, req, by).await?)
    }

    async fn metrics(&self) -> Result<upkeep_web::MetricsData, ApiError> {
        let live = self.live_services().await;
        let snapshot = self.snapshot.borrow().clone();
        let services = live
            .into_iter()
            .map(|l| self.status_with_checks(&snapshot, l).0)
            .collect();
        self.store_caught_up().await;
        let now = self.clock.now();
        let hours = |h: i64| {
            now.checked_sub(jiff::SignedDuration::from_hours(h))
                .map_err(internal)
        };
        // The three windows from the rollups and raw edges: a scrape costs the same after a
        // year. A store that is away leaves them out (and says so): the live figures are
        // still worth a scrape.
        let mut windows = Vec::new();
        let mut store_up = self.store_ready().is_ok();
        if store_up {
            for (name, h) in [("24h", 24), ("7d", 7 * 24), ("30d", 30 * 24)] {
                let from = hours(h)?;
                let store = self.store.as_ref();
                let book = &self.wiring.probe_deps.latency;
                let figures = async {
                    let t = upkeep_store::rollup::tallies(store, from, now).await?;
                    let l = upkeep_store::rollup::latency(store, book, from, now).await?;
                    Ok::<_, upkeep_store::Error>(
                        PeriodReport::from_tallies(from, now, &t).with_latency(&l),
                    )
                };
                match figures.await {
                    Ok(r) => windows.push((name, r)),
                    Err(e) => {
                        tracing::debug!("metrics without windows: {}", e.with_causes());
                        store_up = false;
                        windows.clear();
                        break;
                    }
                }
            }
        }
        let own = procfs::own_process();
        let process = upkeep_web::ProcessStats {
            cpu_seconds: own.cpu_seconds,
            resident_bytes: own.rss_bytes,
            start_time_seconds: own.start_time_seconds,
            open_fds: own.open_fds,
            threads: own.threads,
        };
        let lag = self.wiring.probe_deps.lag.snapshot();
        let mut bounds: Vec<f64> = upkeep_probes::LAG_BUCKETS.to_vec();
        bounds.push(f64::INFINITY);
        let probe_lag = (
            bounds.into_iter().zip(lag.cumulative).collect(),
            lag.sum_seconds,
        );
        Ok(upkeep_web::MetricsData {
            services,
            windows,
            store_up,
            process,
            probe_lag,
        })
    }

    async fn report(
        &self,
        from: jiff::Timestamp,
        to: jiff::Timestamp,
    ) -> Result<upkeep_core::report::Report, ApiError> {
        Ok(crate::ops::reports::report(self, from, to).await?)
    }

    async fn events(
        &self,
        service: Option<&ServiceName>,
        limit: u32,
    ) -> Result<Vec<StoredEvent>, ApiError> {
        Ok(crate::ops::reports::events(self, service, limit).await?)
    }

    async fn jobs(
        &self,
        only: Option<&ServiceName>,
        runs: u32,
    ) -> Result<Vec<upkeep_core::job::JobInfo>, ApiError> {
        crate::ops::jobs::jobs(self, only, runs)
            .await
            .map_err(|e| match e {
                crate::ops::jobs::JobsError::Unknown(_) => ApiError::NotFound(e.to_string()),
                crate::ops::jobs::JobsError::NotAJob(_) => ApiError::BadRequest {
                    message: e.to_string(),
                    hint: Some("`upkeep jobs` lists the jobs".into()),
                },
            })
    }

    async fn incidents(
        &self,
        service: Option<&ServiceName>,
        limit: u32,
    ) -> Result<Vec<upkeep_core::api::Incident>, ApiError> {
        Ok(crate::ops::reports::incidents(self, service, limit).await?)
    }

    async fn incident(&self, id: i64) -> Result<upkeep_core::api::IncidentDetail, ApiError> {
        Ok(crate::ops::reports::incident(self, id).await?)
    }

    async fn incidents_page(
        &self,
        offset: u32,
        limit: u32,
    ) -> Result<Vec<upkeep_core::api::Incident>, ApiError> {
        Ok(crate::ops::pages::incidents(self, span(offset, limit)).await?)
    }

    async fn open_incidents(&self) -> Result<Vec<upkeep_core::api::Incident>, ApiError> {
        Ok(crate::ops::pages::open_incidents(self).await?)
    }

    async fn feedback_page(
        &self,
        offset: u32,
        limit: u32,
    ) -> Result<Vec<upkeep_core::feedback::FeedbackItem>, ApiError> {
        Ok(crate::ops::pages::feedback(self, span(offset, limit)).await?)
    }

    async fn notices_page(
        &self,
        offset: u32,
        limit: u32,
    ) -> Result<Vec<upkeep_core::api::OutboxNotice>, ApiError> {
        Ok(crate::ops::pages::notices(self, span(offset, limit)).await?)
    }

    async fn subscribers_page(
        &self,
        offset: u32,
        limit: u32,
    ) -> Result<Vec<upkeep_core::subscription::SubscriberInfo>, ApiError> {
        Ok(crate::ops::pages::subscribers(self, span(offset, limit)).await?)
    }

    async fn actions_page(&self, offset: u32, limit: u32) -> Result<Vec<StoredEvent>, ApiError> {
        Ok(crate::ops::pages::actions(self, span(offset, limit)).await?)
    }

    async fn write_incident(
        &self,
        write: upkeep_core::incident::IncidentWrite,
        by: &Principal,
    ) -> Result<upkeep_core::api::IncidentDetail, ApiError> {
        Ok(crate::ops::incidents::write(self, write, by).await?)
    }

    async fn public_incident_updates(
        &self,
        limit: u32,
    ) -> Result<Vec<upkeep_core::incident::PublicUpdate>, ApiError> {
        let recent = crate::ops::incidents::recent(self, limit).await?;
        Ok(crate::hidden::updates(
            recent,
            &self.public_services().await,
        ))
    }

    async fn reload(&self, by: &Principal) -> Result<ReloadResult, ApiError> {
        Ok(crate::ops::reload::reload(self, by).await?)
    }

    async fn signal(
        &self,
        name: &ServiceName,
        req: Option<upkeep_core::api::SignalRequest>,
        by: &Principal,
    ) -> Result<upkeep_core::api::SignalResult, ApiError> {
        Ok(crate::ops::signal::send(self, name, req, by).await?)
    }

    async fn add(&self, req: AddService, by: &Principal) -> Result<ReloadResult, ApiError> {
        Ok(crate::ops::reload::add(self, req, by).await?)
    }

    async fn log_tail(
        &self,
        name: &ServiceName,
        stderr: bool,
        lines: usize,
    ) -> Result<LogStream, ApiError> {
        self.known(name).await?;
        let path = self.log_path(name, stderr);
        // Found off the runtime's thread (a large log is a lot of reading), then streamed from
        // the file up to where it ended when asked: later lines are the follower's.
        let found = tokio::task::spawn_blocking(move || {
            let mut file = match std::fs::File::open(&path) {
                Ok(f) => f,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
                Err(e) => return Err(e),
            };
            let (start, len) = upkeep_supervisor::tail_start(&mut file, lines)?;
            std::io::Seek::seek(&mut file, std::io::SeekFrom::Start(start))?;
            Ok(Some((file, len - start)))
        })
        .await
        .map_err(internal)?
        .map_err(internal)?;
        let Some((file, len)) = found else {
            return Ok(futures_util::stream::empty().boxed());
        };
        let file = tokio::io::AsyncReadExt::take(tokio::fs::File::from_std(file), len);
        Ok(tokio_util::io::ReaderStream::new(file).boxed())
    }

    async fn log_follow(
        &self,
        name: &ServiceName,
        stderr: bool,
    ) -> Result<broadcast::Receiver<Bytes>, ApiError> {
        // Known names only: each name followed keeps a channel for as long as the daemon runs.
        self.known(name).await?;
        Ok(self.wiring.supervisor.logs.subscribe(
            name,
            if stderr {
                Stream::Stderr
            } else {
                Stream::Stdout
            },
        ))
    }

    fn follow_events(&self) -> broadcast::Receiver<Arc<[upkeep_core::Committed]>> {
        self.committed.subscribe()
    }

    async fn upgrade(
        &self,
        req: upkeep_core::api::UpgradeRequest,
        by: &Principal,
    ) -> Result<upkeep_core::api::UpgradeStarted, ApiError> {
        crate::upgrade::ask(self, req, by).await
    }

    fn shutdown(&self, by: &Principal) {
        tracing::info!(by = %by, "shutdown asked");
        self.shutdown.cancel();
    }

    fn site(&self) -> Option<upkeep_web::Site> {
        Some(self.site.clone())
    }
    fn feedback(&self) -> Option<Arc<dyn upkeep_web::Feedbacks>> {
        Some(Arc::new(crate::feedback::Desk {
            store: self.store.clone(),
            clock: self.clock.clone(),
            site: self.site.clone(),
        }))
    }
    fn accounts(&self) -> Option<Arc<dyn upkeep_web::Accounts>> {
        Some(self.accounts.clone())
    }

    fn subscriptions(&self) -> Option<Arc<dyn upkeep_web::Subscriptions>> {
        self.notices
            .desk()
            .map(|d| d as Arc<dyn upkeep_web::Subscriptions>)
    }

    fn clock(&self) -> Clock {
        self.clock.clone()
    }

    async fn advance_clock(
        &self,
        by: Duration,
        who: &Principal,
    ) -> Result<upkeep_core::api::TestClockState, ApiError> {
        // The route exists only with a test clock; this is for a caller that skipped it.
        let Some(hand) = &self.test_clock else {
            return Err(ApiError::NotFound(
                "this daemon's clock is the system's".into(),
            ));
        };
        tracing::info!(by = ?by, who = %who, "test clock moved");
        // How long the answer waits for what the move made due (real time).
        const SETTLE: Duration = Duration::from_secs(5);
        let settled = hand.advance(by, SETTLE).await;
        // Kept for the next daemon on this data dir (see `daemon::test_clock_file`).
        let ahead = hand
            .now()
            .duration_since(jiff::Timestamp::now())
            .as_millis();
        let file = crate::daemon::test_clock_file(&self.data_dir);
        if let Err(e) = std::fs::write(&file, ahead.to_string()) {
            tracing::warn!("cannot keep the test clock in {}: {e}", file.display());
        }
        Ok(upkeep_core::api::TestClockState {
            now: hand.now(),
            settled,
        })
    }
}

impl Daemon {
    async fn known(&self, name: &ServiceName) -> Result<(), ApiError> {
        if self.live.lock().await.config.services.contains_key(name) {
            Ok(())
        } else {
            Err(unknown(name))
        }
    }
}

/// A page of an admin list, as the store reads it.
fn span(offset: u32, limit: u32) -> upkeep_store::Span {
    upkeep_store::Span { offset, limit }
}

/// How a managed service says it is ready, for `upkeep status` (None: once spawned).
fn readiness(m: &upkeep_config::ManagedConfig) -> Option<upkeep_core::api::Readiness> {
    use upkeep_config::Ready;
    let detail = match &m.ready {
        Ready::Spawned => return None,
        Ready::Notify | Ready::Probe => None,
        Ready::Fd(n) => Some(n.to_string()),
        Ready::Log(p) => Some(p.as_str().to_owned()),
    };
    Some(upkeep_core::api::Readiness {
        kind: m.ready.as_str().into(),
        detail,
        timeout_ms: m.ready_timeout.map(|t| t.as_millis() as u64),
    })
}
