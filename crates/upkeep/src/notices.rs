//! The daemon's notices: from `[notify]`, it builds the channels (reading their secrets,
//! so a missing password stops the start with its place in the config), starts the
//! dispatcher and the incident planner as tasks of their own, and plans the notices of
//! window steps for the planner and operators ([`Notices::window_rows`]).
//!
//! What a notice says, where it goes and how it is sent is upkeep-outbox's; this file only
//! wires it to the daemon's store, clock and committed events. Without `[notify]` nothing
//! starts and no rows are written: the rest of the daemon is the same.

use std::collections::BTreeMap;
use std::sync::Arc;

use anyhow::{Context, Result};
use tokio::sync::Notify;
use upkeep_config::Config;
use upkeep_core::Clock;
use upkeep_core::window::Step;
use upkeep_outbox::{BuildContext, Dispatcher, IncidentPlanner, Lane, NotifyConfig, Templates};
use upkeep_store::fanout::Fanout;
use upkeep_store::{NewNotice, Store, StoredWindow};

/// What the planner and operations need to plan notices. Cheap to clone.
#[derive(Clone, Default)]
pub struct Notices {
    config: Option<Arc<NotifyConfig>>,
    node: String,
    /// The dispatcher's: rows were added.
    wake: Arc<Notify>,
    /// With `[notify.subscribers]`: the subscription desk (its links' keys sign the
    /// subscribers' rows of each notice).
    desk: Option<Arc<crate::subscriptions::Desk>>,
}

impl Notices {
    /// The rows of a window's step (none without `[notify]`).
    pub fn window_rows(
        &self,
        w: &StoredWindow,
        occurrence: jiff::Timestamp,
        step: Step,
        at: jiff::Timestamp,
    ) -> Vec<NewNotice> {
        let Some(config) = &self.config else {
            return Vec::new();
        };
        let step_of = upkeep_outbox::WindowStep {
            id: w.id,
            spec: &w.spec,
            occurrence,
            end: occurrence_end(w, occurrence),
            step,
            at,
        };
        config.window_rows(&self.node, &step_of)
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
        let notices = self.window_rows(w, occurrence, step, at);
        let fanout = match (&self.config, &self.desk) {
            (Some(config), Some(desk)) => {
                let step_of = upkeep_outbox::WindowStep {
                    id: w.id,
                    spec: &w.spec,
                    occurrence,
                    end: occurrence_end(w, occurrence),
                    step,
                    at,
                };
                config.window_fanout(&self.node, &step_of, &desk.keys, &desk.services.get())
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
        let config = self.config.clone();
        let keys = self.desk.as_ref().map(|d| d.keys.clone());
        let public = self
            .desk
            .as_ref()
            .map(|d| d.services.get())
            .unwrap_or_default();
        let node = self.node.clone();
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
        let config = self.config.clone();
        let node = self.node.clone();
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
        self.desk.clone()
    }

    /// The rows of a test notice through `channel`; None if no such channel is configured.
    pub fn test_rows(
        &self,
        channel: &str,
        to: Option<&str>,
        at: jiff::Timestamp,
    ) -> Option<Vec<NewNotice>> {
        let config = self.config.as_ref()?;
        config.channels.get(channel)?;
        let nonce = format!("{:016x}", fastrand::u64(..));
        Some(config.test_rows(&self.node, channel, to, at, &nonce))
    }

    /// How channel `name` addresses its recipients, if it is configured.
    pub fn channel(&self, name: &str) -> Option<upkeep_outbox::Addressing> {
        Some(
            self.config
                .as_ref()?
                .channels
                .get(name)?
                .config
                .addressing(),
        )
    }

    /// Rows were added: the dispatcher looks.
    pub fn added(&self) {
        self.wake.notify_one();
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
fn occurrence_end(w: &StoredWindow, occurrence: jiff::Timestamp) -> jiff::Timestamp {
    let length = w.spec.end.duration_since(w.spec.start);
    let mut end = occurrence.checked_add(length).unwrap_or(occurrence);
    for t in w.taken.iter().filter(|t| t.occurrence == occurrence) {
        if let Step::Extended { until } = t.step {
            end = until;
        }
    }
    end
}

/// Builds the channels and starts the dispatcher and the incident planner; without
/// `[notify]`, nothing. A channel that cannot be built (a secret missing) is a config error,
/// located in the file.
pub async fn start(
    config: &Config,
    store: Arc<dyn Store>,
    clock: Clock,
    fanout: &Fanout,
    node: &str,
) -> Result<Notices> {
    let Some(notify) = config.notify.clone() else {
        // Rows an earlier config queued would wait for ever: say why they will not go.
        match store.fail_orphaned_notices(&[]).await {
            Ok(0) => {}
            Ok(n) => tracing::warn!(
                rows = n,
                "notices left unsent: [notify] is no longer configured"
            ),
            Err(e) => tracing::debug!("cannot look for notices left unsent: {}", e.with_causes()),
        }
        return Ok(Notices::default());
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
    if !problems.is_empty() {
        return Err(config.error_at(problems)).context("building the notice channels");
    }
    let templates =
        Templates::load(notify.templates_dir.as_deref()).context("loading the notice templates")?;
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
    let configured: Vec<String> = notify.channels.keys().cloned().collect();
    let orphaned = store
        .fail_orphaned_notices(&configured)
        .await
        .context("failing the notices of channels no longer configured")?;
    if orphaned > 0 {
        tracing::warn!(
            rows = orphaned,
            "notices of channels no longer in the config are marked failed"
        );
    }
    let keys = match &notify.subscribers {
        Some(c) => Some(
            crate::subscriptions::load_keys(c, &config.daemon.data_dir)
                .context("reading the secret subscribers' links are signed with")?,
        ),
        None => None,
    };
    let owner = format!("{node}.{}.{:08x}", std::process::id(), fastrand::u32(..));
    let dispatcher = Dispatcher::new(
        store.clone(),
        clock.clone(),
        templates,
        lanes,
        upkeep_outbox::Settings {
            owner,
            lease: notify.lease,
            give_up_after: notify.give_up_after,
        },
    );
    let wake = dispatcher.waker();
    tokio::spawn(dispatcher.run());
    let public = upkeep_outbox::PublicServices::new(crate::subscriptions::public_services(config));
    tokio::spawn(
        IncidentPlanner {
            store: store.clone(),
            fanout: fanout.clone(),
            config: notify.clone(),
            clock: clock.clone(),
            node: node.to_owned(),
            wake: wake.clone(),
            keys: keys.clone(),
            public: public.clone(),
        }
        .run(),
    );
    let desk = keys.map(|keys| {
        Arc::new(crate::subscriptions::Desk {
            store,
            clock,
            config: notify.clone(),
            keys,
            node: node.to_owned(),
            services: public,
            wake: wake.clone(),
            confirming: Default::default(),
        })
    });
    tracing::info!(
        channels = notify.channels.len(),
        "notices: dispatcher started"
    );
    Ok(Notices {
        config: Some(notify),
        node: node.to_owned(),
        wake,
        desk,
    })
}
