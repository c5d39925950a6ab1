//! The daemon's notices: from `[notify]`, it builds the channels (reading their secrets,
//! so a missing password stops the start, or a reload, with its place in the config), starts
//! the dispatcher and the incident planner as tasks of their own, and plans the notices of
//! window steps for the planner and operators ([`Notices::take_step`]).
//!
//! `[notify]` is live: a reload that changes it builds it whole first ([`build`]: secrets,
//! templates, the subscribers' key), so a bad one changes nothing, then swaps it in
//! ([`Notices::swap`]). What is in force is one `watch` of an `Arc` each user borrows per
//! notice (the routes for window steps, people's writings and tests; the incident planner's
//! [`Planning`]; the dispatcher's channels and templates, [`Setup`]): a notice is planned
//! whole with one config, and a send in flight finishes on the channel it began with. Rows
//! still waiting for a channel the reload removed are marked failed, saying why, as at a
//! start.
//!
//! What a notice says, where it goes and how it is sent is upkeep-outbox's; this file only
//! wires it to the daemon's store, clock and committed events. Without `[notify]` nothing
//! starts and no rows are written: the rest of the daemon is the same.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::OnceLock;

use anyhow::{Context, Result};
use tokio::sync::{Notify, watch};
use upkeep_config::{Config, ConfigError};
use upkeep_core::Clock;
use upkeep_core::window::{self, Step};
use upkeep_outbox::{
    BuildContext, Dispatcher, IncidentPlanner, Lane, NotifyConfig, Planning, PublicServices, Setup,
    SubscriptionKeys, Templates,
};
use upkeep_store::fanout::Fanout;
use upkeep_store::{NewNotice, Store, StoredWindow};

/// What the planner and operations need to plan notices. Cheap to clone: every clone sees
/// what a reload swaps in.
#[derive(Clone)]
pub struct Notices(Arc<Hub>);

struct Hub {
    node: String,
    store: Arc<dyn Store>,
    clock: Clock,
    fanout: Fanout,
    /// The dispatcher's: rows were added.
    wake: Arc<Notify>,
    /// The subscription desk's turn for confirmation mails, one for every desk a reload
    /// builds: a desk built anew must not let a request through beside one still counting
    /// on the last (`Desk::confirming`).
    confirming: Arc<tokio::sync::Mutex<()>>,
    /// `[notify]` and the subscription desk in force, borrowed once per notice.
    current: watch::Sender<Arc<Current>>,
    /// The same, as the incident planner plans with it.
    planning: watch::Sender<Option<Arc<Planning>>>,
    /// The dispatcher's channels and templates, once it runs: the dispatcher and the
    /// incident planner start with the first `[notify]`, at the start or a reload, and stay,
    /// idle, if a reload removes it.
    setups: OnceLock<watch::Sender<Arc<Setup>>>,
    /// Stops the dispatcher, once it runs ([`Notices::stop_sending`]).
    stopper: OnceLock<upkeep_outbox::Stopper>,
    /// What subscribers may name and hear of (kept current by every reload).
    public: PublicServices,
}

/// `[notify]` in force.
#[derive(Default)]
struct Current {
    config: Option<Arc<NotifyConfig>>,
    /// With `[notify.subscribers]`: the subscription desk (its links' keys sign the
    /// subscribers' rows of each notice).
    desk: Option<Arc<crate::subscriptions::Desk>>,
}

/// `[notify]` checked whole, its channels built (secrets read), its templates compiled and
/// the subscribers' key read: ready to be swapped in.
pub struct Built {
    notify: Arc<NotifyConfig>,
    lanes: BTreeMap<String, Lane>,
    templates: Templates,
    keys: Option<SubscriptionKeys>,
}

impl Notices {
    fn now(&self) -> Arc<Current> {
        self.0.current.borrow().clone()
    }

    /// The rows of a window's step (none without `[notify]`).
    fn window_rows_of(
        &self,
        now: &Current,
        w: &StoredWindow,
        occurrence: jiff::Timestamp,
        step: Step,
        at: jiff::Timestamp,
    ) -> Vec<NewNotice> {
        let Some(config) = &now.config else {
            return Vec::new();
        };
        let (start, end) = occurrence_times(w, occurrence, step, at);
        let step_of = upkeep_outbox::WindowStep {
            id: w.id,
            spec: &w.spec,
            occurrence,
            start,
            end,
            step,
            at,
        };
        config.window_rows(&self.0.node, &step_of)
    }

    /// Takes a window's step in the store with its notices: the routes' rows, and, with
    /// `[notify.subscribers]`, a row per confirmed subscriber of its services, all in the
    /// step's transaction. True if the step was new (then the dispatcher is woken).
    pub async fn take_step(
        &self,
        store: &dyn Store,
        w: &StoredWindow,
        occurrence: jiff::Timestamp,
        step: Step,
        at: jiff::Timestamp,
        by: Option<&upkeep_core::Principal>,
    ) -> Result<bool, upkeep_store::Error> {
        // One config for the whole step: the routes' rows and the subscribers' alike.
        let now = self.now();
        let notices = self.window_rows_of(&now, w, occurrence, step, at);
        let fanout = match (&now.config, &now.desk) {
            (Some(config), Some(desk)) => {
                let (start, end) = occurrence_times(w, occurrence, step, at);
                let step_of = upkeep_outbox::WindowStep {
                    id: w.id,
                    spec: &w.spec,
                    occurrence,
                    start,
                    end,
                    step,
                    at,
                };
                config.window_fanout(&self.0.node, &step_of, &desk.keys, &desk.services.get())
            }
            _ => None,
        };
        let new = store
            .take_step_fanned(upkeep_store::StepTake {
                id: w.id,
                occurrence,
                step,
                at,
                by,
                notices: &notices,
                fanout: fanout
                    .as_ref()
                    .map(|f| f as &dyn upkeep_store::SubscriberRows),
            })
            .await?;
        if new && (!notices.is_empty() || fanout.is_some()) {
            self.added();
        }
        Ok(new)
    }

    /// The notices of what a person wrote to an incident (`ops/incidents.rs`), made once the
    /// incident's id is known, in the store's transaction: the routes' rows by the
    /// incident's priority, and, with `[notify.subscribers]`, its service's subscribers'.
    /// Without `[notify]`, none.
    pub fn incident_plan(
        &self,
        w: IncidentWriting,
    ) -> impl Fn(i64) -> upkeep_store::Planned + Send + Sync + use<> {
        let now = self.now();
        let config = now.config.clone();
        let keys = now.desk.as_ref().map(|d| d.keys.clone());
        let public = now
            .desk
            .as_ref()
            .map(|d| d.services.get())
            .unwrap_or_default();
        let node = self.0.node.clone();
        // Each writing is news of its own: its rows' keys differ from every other's.
        let nonce = format!("{:016x}", fastrand::u64(..));
        move |id| {
            let Some(config) = &config else {
                return upkeep_store::Planned {
                    notices: Vec::new(),
                    fanout: None,
                };
            };
            let resolved = w.status == upkeep_core::incident::IncidentStatus::Resolved;
            let news = upkeep_outbox::IncidentNews {
                service: w.service.clone(),
                since: w.since,
                reason: w.title.clone().unwrap_or_default(),
                resolved: resolved.then(|| (w.at, w.at.duration_since(w.since))),
                seq: 0,
                incident_id: Some(id),
                priority: config.incident_priority(&w.service, w.priority),
                title: w.title.clone(),
                written: Some(upkeep_outbox::Written {
                    status: w.status,
                    message: w.message.clone(),
                    key: format!("written:{id}:{nonce}"),
                    opened: w.opened,
                }),
                at: w.at,
            };
            upkeep_store::Planned {
                notices: config.incident_rows(&node, &news),
                fanout: keys
                    .as_ref()
                    .and_then(|k| config.incident_fanout(&node, &news, k, &public))
                    .map(|f| Box::new(f) as Box<dyn upkeep_store::SubscriberRows>),
            }
        }
    }

    /// The notices of an incident's new priority (`ops/incidents.rs`), in the store's
    /// transaction: to the routes the new priority reaches and the old one did not
    /// (upkeep-outbox's `priority_rows`); none to subscribers. Without `[notify]`, none.
    pub fn priority_plan(
        &self,
        c: PriorityChange,
    ) -> impl Fn(i64) -> upkeep_store::Planned + Send + Sync + use<> {
        let config = self.now().config.clone();
        let node = self.0.node.clone();
        let nonce = format!("{:016x}", fastrand::u64(..));
        move |id| {
            let notices = match &config {
                Some(config) => {
                    let was = config.incident_priority(&c.service, c.was);
                    let news = upkeep_outbox::IncidentNews {
                        service: c.service.clone(),
                        since: c.since,
                        reason: String::new(),
                        resolved: None,
                        seq: 0,
                        incident_id: Some(id),
                        priority: c.now,
                        title: c.title.clone(),
                        written: Some(upkeep_outbox::Written {
                            status: upkeep_core::incident::IncidentStatus::Investigating,
                            message: None,
                            key: format!("priority:{id}:{nonce}"),
                            opened: false,
                        }),
                        at: c.at,
                    };
                    config.priority_rows(&node, &news, was)
                }
                None => Vec::new(),
            };
            upkeep_store::Planned {
                notices,
                fanout: None,
            }
        }
    }

    /// The subscription desk, with `[notify.subscribers]`.
    pub fn desk(&self) -> Option<Arc<crate::subscriptions::Desk>> {
        self.now().desk.clone()
    }

    /// The rows of a test notice through `channel`; None if no such channel is configured.
    pub fn test_rows(
        &self,
        channel: &str,
        to: Option<&str>,
        at: jiff::Timestamp,
    ) -> Option<Vec<NewNotice>> {
        let now = self.now();
        let config = now.config.as_ref()?;
        config.channels.get(channel)?;
        let nonce = format!("{:016x}", fastrand::u64(..));
        Some(config.test_rows(&self.0.node, channel, to, at, &nonce))
    }

    /// How channel `name` addresses its recipients, if it is configured.
    pub fn channel(&self, name: &str) -> Option<upkeep_outbox::Addressing> {
        Some(
            self.now()
                .config
                .as_ref()?
                .channels
                .get(name)?
                .config
                .addressing(),
        )
    }

    /// Rows were added: the dispatcher looks.
    pub fn added(&self) {
        self.0.wake.notify_one();
    }

    /// The services subscribers may name and hear of, after a reload.
    pub fn set_public(&self, services: std::collections::BTreeSet<upkeep_core::ServiceName>) {
        self.0.public.set(services);
    }

    /// Puts `built` in force (None: `[notify]` is gone): notices planned from now on follow
    /// its routes, the dispatcher sends with its channels (those in flight finish on the
    /// old), and the dispatcher and the incident planner start if they did not run yet.
    /// Nothing here fails: what could was done by [`build`].
    pub fn swap(&self, built: Option<Built>) {
        let hub = &self.0;
        let Some(built) = built else {
            hub.current.send_replace(Arc::new(Current::default()));
            hub.planning.send_replace(None);
            if let Some(setups) = hub.setups.get() {
                setups.send_modify(|s| {
                    *s = Arc::new(Setup {
                        lanes: BTreeMap::new(),
                        ..Setup::clone(s)
                    })
                });
            }
            return;
        };
        let notify = built.notify;
        let desk = built.keys.clone().map(|keys| {
            Arc::new(crate::subscriptions::Desk {
                store: hub.store.clone(),
                clock: hub.clock.clone(),
                config: notify.clone(),
                keys,
                node: hub.node.clone(),
                services: hub.public.clone(),
                wake: hub.wake.clone(),
                confirming: hub.confirming.clone(),
            })
        });
        hub.current.send_replace(Arc::new(Current {
            config: Some(notify.clone()),
            desk,
        }));
        hub.planning.send_replace(Some(Arc::new(Planning {
            config: notify.clone(),
            keys: built.keys,
        })));
        let mut lanes = built.lanes;
        if let Some(setups) = hub.setups.get() {
            keep_unchanged(&mut lanes, &setups.borrow().lanes);
        }
        let setup = Arc::new(Setup {
            templates: built.templates,
            lanes,
            lease: notify.lease,
            give_up_after: notify.give_up_after,
        });
        if let Some(setups) = hub.setups.get() {
            setups.send_replace(setup);
        } else {
            let setups = hub.setups.get_or_init(|| watch::channel(setup.clone()).0);
            let owner = format!(
                "{}.{}.{:08x}",
                hub.node,
                std::process::id(),
                fastrand::u32(..)
            );
            let dispatcher = Dispatcher::new(
                hub.store.clone(),
                hub.clock.clone(),
                setup.templates.clone(),
                setup.lanes.clone(),
                upkeep_outbox::Settings {
                    owner,
                    lease: setup.lease,
                    give_up_after: setup.give_up_after,
                },
            )
            .with_waker(hub.wake.clone())
            .with_setups(setups.subscribe());
            let _ = hub.stopper.set(dispatcher.stopper());
            tokio::spawn(dispatcher.run());
            tokio::spawn(
                IncidentPlanner {
                    store: hub.store.clone(),
                    fanout: hub.fanout.clone(),
                    planning: hub.planning.subscribe(),
                    clock: hub.clock.clone(),
                    node: hub.node.clone(),
                    wake: hub.wake.clone(),
                    public: hub.public.clone(),
                }
                .run(),
            );
            tracing::info!(
                channels = notify.channels.len(),
                "notices: dispatcher started"
            );
        }
        hub.wake.notify_one();
    }

    /// Stops sending (an upgrade's hand-over, a shutdown): the dispatcher leases nothing
    /// more and gives back what it has not begun to send; returns once the sends under way
    /// are done and marked, so that the next daemon sends none of them again. The caller
    /// bounds the wait (a send ends within its channel's timeout).
    pub async fn stop_sending(&self) {
        let Some(stopper) = self.0.stopper.get() else {
            return;
        };
        stopper.stop().await;
    }

    /// Sends still under way since [`Notices::stop_sending`] began (None before, or
    /// without a dispatcher).
    pub fn sends_under_way(&self) -> Option<usize> {
        self.0.stopper.get().and_then(|s| s.busy())
    }

    /// The digest rows still waiting go with the next digest of `[notify]` in force (its
    /// `digest_at` and zone may have changed since they were planned: break-it, session 11,
    /// two digests went, at the old time and the new); how many moved.
    pub async fn move_digests(&self) -> Result<u64, upkeep_store::Error> {
        let Some(config) = self.now().config.clone() else {
            return Ok(0);
        };
        let now = self.0.clock.now();
        let moved = self
            .0
            .store
            .move_digests(now, config.next_digest(now))
            .await?;
        if moved > 0 {
            tracing::info!(rows = moved, at = %config.next_digest(now), "notices: the digest's rows wait for its new time");
            self.added();
        }
        Ok(moved)
    }

    /// Marks failed the rows still waiting for a channel no longer configured (all of them
    /// without `[notify]`); how many.
    pub async fn fail_orphaned(&self) -> Result<u64, upkeep_store::Error> {
        let configured: Vec<String> = self
            .now()
            .config
            .as_ref()
            .map(|c| c.channels.keys().cloned().collect())
            .unwrap_or_default();
        self.0.store.fail_orphaned_notices(&configured).await
    }
}

/// What a person wrote to an incident, for [`Notices::incident_plan`].
pub struct IncidentWriting {
    pub service: upkeep_core::ServiceName,
    /// When the incident began (its identity, with the service).
    pub since: jiff::Timestamp,
    /// The incident's own priority, if it has one.
    pub priority: Option<upkeep_core::incident::IncidentPriority>,
    pub title: Option<String>,
    pub status: upkeep_core::incident::IncidentStatus,
    pub message: Option<String>,
    /// It was just opened by hand.
    pub opened: bool,
    pub at: jiff::Timestamp,
}

/// An incident's priority set by a person, for [`Notices::priority_plan`].
pub struct PriorityChange {
    pub service: upkeep_core::ServiceName,
    /// When the incident began.
    pub since: jiff::Timestamp,
    /// Its own priority before (None: its service's, else P3).
    pub was: Option<upkeep_core::incident::IncidentPriority>,
    pub now: upkeep_core::incident::IncidentPriority,
    pub title: Option<String>,
    /// When it was set (a digest row waits for the first digest after it).
    pub at: jiff::Timestamp,
}

/// The expected end of `w`'s occurrence starting at `occurrence`, after any extension.
/// When the occurrence began (or begins) and its expected end, as its step at `at` tells
/// them: an occurrence started early began then and lasts its length from then.
fn occurrence_times(
    w: &StoredWindow,
    occurrence: jiff::Timestamp,
    step: Step,
    at: jiff::Timestamp,
) -> (jiff::Timestamp, jiff::Timestamp) {
    let began = match step {
        Step::Started => at.min(occurrence),
        _ => window::began(&w.taken, occurrence),
    };
    let length = w.spec.end.duration_since(w.spec.start);
    let mut end = began.checked_add(length).unwrap_or(began);
    for t in w.taken.iter().filter(|t| t.occurrence == occurrence) {
        if let Step::Extended { until } = t.step {
            end = until;
        }
    }
    (began, end)
}

/// Keeps, in `lanes` (just built), each running channel of the same name built from the same
/// settings and secret values ([`upkeep_outbox::Channel::settings`]): a reload rebuilt every
/// channel, so each reload closed the SMTP channels' idle connections and the next mails
/// opened new ones, though nothing of them had changed. Its lane's limits are the new ones.
fn keep_unchanged(lanes: &mut BTreeMap<String, Lane>, running: &BTreeMap<String, Lane>) {
    for (name, lane) in lanes.iter_mut() {
        if let Some(old) = running.get(name)
            && let Some(settings) = lane.channel.settings()
            && old.channel.settings() == Some(settings)
        {
            lane.channel = old.channel.clone();
        }
    }
}

/// Builds `[notify]` whole (None without it): each channel with its secrets, the templates,
/// the subscribers' key. What cannot be built is a config error at its key's place in the
/// file, every problem at once, as validation's own are: a start stops, a reload keeps what
/// runs. Reads small files and the environment: cheap, and never blocks on a FIFO (see
/// `upkeep_core::files`).
pub fn build(config: &Config) -> Result<Option<Built>, ConfigError> {
    let Some(notify) = config.notify.clone() else {
        return Ok(None);
    };
    let notify = Arc::new(notify);
    fn env(name: &str) -> Option<String> {
        std::env::var(name).ok()
    }
    let ctx = BuildContext {
        // Receivers check signatures' times against their own clocks: real time, even when
        // the daemon's clock is a test's.
        clock: Clock::system(),
        base_dir: config
            .path
            .parent()
            .map(ToOwned::to_owned)
            .unwrap_or_else(|| ".".into()),
        env: &env,
    };
    let mut lanes = BTreeMap::new();
    let mut problems = Vec::new();
    for (name, spec) in &notify.channels {
        match spec.config.build(name, &ctx) {
            Ok(channel) => {
                lanes.insert(
                    name.clone(),
                    Lane {
                        channel,
                        concurrency: spec.concurrency,
                        rate: spec.rate,
                    },
                );
            }
            Err(e) => problems.extend(e.problems.into_iter().map(|p| {
                let key = ["notify", "channels", name.as_str(), p.field.as_str()]
                    .map(str::to_owned)
                    .to_vec();
                (key, format!("channel `{name}`: {}", p.message), p.hint)
            })),
        }
    }
    let templates = match Templates::load(notify.templates_dir.as_deref()) {
        Ok(t) => Some(t),
        Err(e) => {
            let key = ["notify", "templates_dir"].map(str::to_owned).to_vec();
            problems.push((key, format!("{:#}", anyhow::Error::new(e)), None));
            None
        }
    };
    let keys = match &notify.subscribers {
        Some(c) => match crate::subscriptions::load_keys(c, &config.daemon.data_dir) {
            Ok(k) => Some(k),
            Err(e) => {
                let field = if c.secret_env.is_some() {
                    "secret_env"
                } else if c.secret_file.is_some() {
                    "secret_file"
                } else {
                    "subscribers"
                };
                let mut key = vec!["notify".to_owned(), "subscribers".to_owned()];
                if field != "subscribers" {
                    key.push(field.to_owned());
                }
                problems.push((key, format!("{e:#}"), None));
                None
            }
        },
        None => None,
    };
    match templates {
        Some(templates) if problems.is_empty() => Ok(Some(Built {
            notify,
            lanes,
            templates,
            keys,
        })),
        _ => Err(config.error_at(problems)),
    }
}

/// Builds `[notify]` and starts the dispatcher and the incident planner; without it, nothing
/// runs until a reload brings it. A channel that cannot be built (a secret missing) is a
/// config error, located in the file.
pub async fn start(
    config: &Config,
    store: Arc<dyn Store>,
    clock: Clock,
    fanout: &Fanout,
    node: &str,
) -> Result<Notices> {
    let built = build(config).context("building the notice channels")?;
    let notices = Notices(Arc::new(Hub {
        node: node.to_owned(),
        store: store.clone(),
        clock: clock.clone(),
        fanout: fanout.clone(),
        wake: Arc::new(Notify::new()),
        confirming: Default::default(),
        current: watch::channel(Arc::new(Current::default())).0,
        planning: watch::channel(None).0,
        setups: OnceLock::new(),
        stopper: OnceLock::new(),
        public: PublicServices::new(crate::subscriptions::public_services(config)),
    }));
    if built.is_none() {
        // Rows an earlier config queued would wait for ever: say why they will not go.
        match notices.fail_orphaned().await {
            Ok(0) => {}
            Ok(n) => tracing::warn!(
                rows = n,
                "notices left unsent: [notify] is no longer configured"
            ),
            Err(e) => tracing::debug!("cannot look for notices left unsent: {}", e.with_causes()),
        }
        return Ok(notices);
    }
    let released = store
        .release_leases(clock.now())
        .await
        .context("taking back the outbox rows an earlier daemon held")?;
    if released > 0 {
        tracing::warn!(
            rows = released,
            "notices an earlier daemon was sending go out again (with the same idempotency key)"
        );
    }
    notices.swap(built);
    // `digest_at` may have changed while no daemon ran.
    if let Err(e) = notices.move_digests().await {
        tracing::warn!(
            "cannot move the digest's rows to its time: {}",
            e.with_causes()
        );
    }
    let orphaned = notices
        .fail_orphaned()
        .await
        .context("failing the notices of channels no longer configured")?;
    if orphaned > 0 {
        tracing::warn!(
            rows = orphaned,
            "notices of channels no longer in the config are marked failed"
        );
    }
    Ok(notices)
}
