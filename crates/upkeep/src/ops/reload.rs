//! Reload and add: the config file read again (or edited, then read) and applied over the
//! running config. Removed services stop (dependents first), added ones start (each once its
//! dependencies allow), changed ones are reconfigured (restarted if how they run changed; a
//! changed `depends_on` only changes what the gate allows), the rest are left alone. The
//! `config_applied` event names who asked.
//!
//! One reload at a time (`Daemon::reloading`), in three steps: the revision is stored first,
//! so one that cannot be stored changes nothing; then the running config, desired states and
//! handles change at once under the `live` lock (nothing there waits); then, with no lock held,
//! removed services stop and changed ones restart, so that `ls`, `status`, metrics and heals go
//! on during a reload that waits out long stop timeouts (issue 15, item 10). Nothing after the
//! first step can fail, so a reload is applied whole or not at all.
//!
//! `[notify]` is applied like services: built whole before anything changes (channels with
//! their secrets, templates, the subscribers' key: `notices::build`), so a missing secret is
//! a reload error at its place in the file and the running notices stay; then swapped in
//! under the lock (`Notices::swap`). It is built and swapped at every reload, even with the
//! config unchanged, so that rotated secret files are read again.
//!
//! `[daemon]` (listeners, store, data dir, limits) is what the daemon was started with: a
//! reload applies none of its changes (not one key, so nothing runs half on each), and says
//! which keys wait for a restart, in its answer (`restart_needed`) and in the log. A moved
//! data dir is refused.
//! One exception: `tls`'s certificate and key are read again and served from the next
//! handshake on (certbot renews them in place); only turning HTTPS on or off waits.

use std::path::PathBuf;

use upkeep_config::Config;
use upkeep_core::api::{AddService, ReloadResult};
use upkeep_core::{Actor, Desired, EventKind, Principal};

use super::OpsError;
use crate::control::Daemon;

/// Applies the config file again.
pub async fn reload(daemon: &Daemon, by: &Principal) -> Result<ReloadResult, OpsError> {
    let _one = daemon.reloading.lock().await;
    // Not once an upgrade's hand-over began (its restarts would be left undone), and none
    // begins while this one applies (`upkeep_supervisor::Seal`).
    let _inside = daemon.wiring.supervisor.seal.enter("a reload")?;
    let new = load_config(daemon.config_path.clone()).await?;
    tracing::info!(by = %by, "reload asked");
    apply(daemon, new, by).await
}

/// Adds a service to the config file (keeping its comments and layout), then applies it.
///
/// Only to a file the daemon runs as it is: applying the edited file applies all of it, so an
/// edit waiting in the file (half done, not reviewed) went live with the added service, its
/// services restarted, and the add said nothing of it (break-it, session 11). Such a file is
/// refused, naming what differs, as `upgrade` refuses it; `upkeep reload` applies it first.
/// Refused rather than the service added alone: the file would then hold the waiting edit and
/// the new service together, for the next reload to apply unannounced, and an editor open on
/// the file would save over the service the daemon runs.
pub async fn add(
    daemon: &Daemon,
    req: AddService,
    by: &Principal,
) -> Result<ReloadResult, OpsError> {
    let _one = daemon.reloading.lock().await;
    // As a reload: not once an upgrade's hand-over began, and none begins while this one
    // edits and applies (an add that wrote the file as the upgrade checked it was applied
    // during the hand-over, or left an edit the next image never applied).
    let _inside = daemon
        .wiring
        .supervisor
        .seal
        .enter(format!("{} (adding)", req.name))?;
    let path = daemon.config_path.clone();
    let p = path.clone();
    let _edit = tokio::task::spawn_blocking(move || ConfigLock::acquire(&p))
        .await?
        .map_err(|source| OpsError::WriteConfig {
            path: path.clone(),
            source,
        })?;
    // Read and validated as a reload would (a regular file, bounded, UTF-8).
    let p = path.clone();
    let (current, file) = tokio::task::spawn_blocking(move || {
        let text = upkeep_config::read(&p)?;
        let file = upkeep_config::parse(&p, &text)?;
        Ok((text, file))
    })
    .await?
    .map_err(OpsError::FileDoesNotLoad)?;
    let waiting = unapplied(&daemon.live.lock().await.config, &file);
    if !waiting.is_empty() {
        return Err(OpsError::EditsWaiting(waiting));
    }
    let edited = upkeep_config::add_service(
        &current,
        &req.name,
        &req.command,
        req.cwd.as_deref(),
        req.restart.as_deref(),
    )
    .map_err(OpsError::Edit)?;
    // Validate before writing: a bad `add` must leave the file as it was.
    let (p, text) = (path.clone(), edited.clone());
    let new = tokio::task::spawn_blocking(move || upkeep_config::parse(&p, &text))
        .await?
        .map_err(|why| OpsError::NotAdded {
            name: req.name.clone(),
            why,
        })?;
    write_atomically(&path, &edited)
        .await
        .map_err(|source| OpsError::WriteConfig {
            path: path.clone(),
            source,
        })?;
    let store = daemon
        .store_ready()
        .is_ok()
        .then_some(daemon.store.as_ref());
    daemon
        .intent
        .set_desired(std::slice::from_ref(&req.name), Desired::Running, store)
        .await
        .map_err(OpsError::IntentNotSaved)?;
    tracing::info!(service = %req.name, by = %by, "service added");
    apply(daemon, new, by).await
}

/// What `file` would change if applied over `running`, `[daemon]` aside (no reload applies
/// it, see [`restart_needed`], but a moved data dir, which `apply` refuses): services new,
/// gone or changed (changed as `apply` judges it, so an edited `env_file` counts), `[notify]`
/// and `[maintenance]`. Empty: the file says what runs, whatever its comments and layout.
pub(crate) fn unapplied(running: &Config, file: &Config) -> Vec<String> {
    let mut out = Vec::new();
    if running.daemon.data_dir != file.daemon.data_dir {
        out.push("daemon.data_dir (moved)".to_owned());
    }
    for (name, cfg) in &file.services {
        match running.services.get(name) {
            None => out.push(format!("services.{name} (new)")),
            Some(old) if old != cfg => out.push(format!("services.{name} (changed)")),
            Some(_) => {}
        }
    }
    for name in running.services.keys() {
        if !file.services.contains_key(name) {
            out.push(format!("services.{name} (removed)"));
        }
    }
    if running.notify != file.notify {
        out.push("notify".to_owned());
    }
    if running.maintenance != file.maintenance {
        out.push("maintenance".to_owned());
    }
    out
}

/// The keys of `[daemon]` (as `daemon.KEY`; the store's keys as `daemon.store`) on which
/// the running daemon and `new` differ: what a reload does not apply (`[notify]` it does). The running config keeps what the daemon started with (see [`apply`]),
/// so a second reload of the same file says the same. Every field is named here: a new one
/// is a compile error until it is.
pub(crate) fn restart_needed(running: &Config, new: &Config) -> Vec<String> {
    let upkeep_config::DaemonConfig {
        data_dir: _, // a move is refused before this
        shutdown_timeout,
        metrics_listen,
        listen,
        public_listen,
        tls,
        cgroups,
        store,
        node,
        retain,
        test_clock,
        heartbeat_url,
        trusted_proxies,
        max_connections_per_address,
        request_timeout,
    } = &running.daemon;
    let now = &new.daemon;
    let mut keys = Vec::new();
    macro_rules! differ {
        ($($field:ident),*) => {$(
            if *$field != now.$field {
                keys.push(concat!("daemon.", stringify!($field)).to_owned());
            }
        )*};
    }
    differ!(
        cgroups,
        heartbeat_url,
        listen,
        max_connections_per_address,
        metrics_listen,
        node,
        public_listen,
        request_timeout,
        retain,
        shutdown_timeout,
        store,
        test_clock,
        trusted_proxies
    );
    // Files of their own (a renewal) are served from the next handshake on: only turning
    // HTTPS on or off needs the listeners made again.
    if tls.is_some() != now.tls.is_some() {
        keys.push("daemon.tls".into());
    }
    keys
}

/// Loads and validates a config off the runtime (validation touches the file system).
async fn load_config(path: PathBuf) -> Result<Config, OpsError> {
    tokio::task::spawn_blocking(move || upkeep_config::load(&path))
        .await?
        .map_err(OpsError::InvalidConfig)
}

/// Applies `new` over the running config: stops removed services, starts added ones,
/// reconfigures changed ones (which restarts them if running) and leaves the rest alone. The
/// caller holds `Daemon::reloading`.
pub(crate) async fn apply(
    daemon: &Daemon,
    new: Config,
    by: &Principal,
) -> Result<ReloadResult, OpsError> {
    let data_dir = daemon.live.lock().await.config.daemon.data_dir.clone();
    if new.daemon.data_dir != data_dir {
        return Err(OpsError::DataDirMoved {
            from: data_dir,
            to: new.daemon.data_dir.clone(),
        });
    }
    // `[notify]` built before anything changes: a secret that cannot be read is a reload
    // error at its place in the file, and the notices in force stay. Built at every reload,
    // changed or not: its files (a password or secret file, a CA, the templates) may have
    // been rotated under an unchanged config, and a reload is how they are read again
    // (break-it, session 11).
    let notify_changed = daemon.live.lock().await.config.notify != new.notify;
    let notify = if notify_changed || new.notify.is_some() {
        Some(crate::notices::build(&new).map_err(OpsError::InvalidConfig)?)
    } else {
        None
    };
    // Stored first: a revision that cannot be stored (database locked, disk full) changes
    // nothing, instead of leaving half the services on the new config (issue 14, B6).
    let revision = daemon
        .store
        .save_revision(&new.path.display().to_string(), &new.source)
        .await
        .map_err(OpsError::RevisionNotStored)?;
    let mut result = ReloadResult {
        revision,
        by: Some(by.clone()),
        ..Default::default()
    };
    let mut new = new;
    // What waits (stops, restarts) is collected here and awaited once the lock is gone.
    let mut slow: Vec<futures_util::future::BoxFuture<'static, ()>> = Vec::new();
    let mut removed_handles = Vec::new();
    {
        let mut live = daemon.live.lock().await;
        // The running `[daemon]` stays (its store password among them): what either names.
        upkeep_supervisor::environ::withhold(
            live.config
                .secret_vars()
                .into_iter()
                .chain(new.secret_vars()),
        );
        result.restart_needed = restart_needed(&live.config, &new);
        if !result.restart_needed.is_empty() {
            // Listeners, the store and the rest of `[daemon]` were set up at start.
            tracing::warn!(
                keys = ?result.restart_needed,
                "reload: these keys changed and take effect only when the daemon restarts; the running daemon keeps them as they were"
            );
        }
        // What runs stays what the running config says (`upkeep status`, the next reload's
        // comparison): none of it half-applied.
        let renewed = match (&daemon.tls, new.daemon.tls.take()) {
            (Some(serving), Some(files)) => {
                // Read and checked by the load: a renewed certificate (certbot) from the
                // next handshake on, the listeners never closed. Out of its dates it is
                // served all the same, and said.
                serving.renew(files.certified.clone());
                if let Some(w) = files.validity_warning(jiff::Timestamp::now()) {
                    tracing::warn!("reload: {w}");
                    result.warnings.push(w);
                }
                Some(files)
            }
            _ => None,
        };
        new.daemon = live.config.daemon.clone();
        if renewed.is_some() {
            new.daemon.tls = renewed;
        }
        for name in live.config.services.keys() {
            if !new.services.contains_key(name) {
                result.removed.push(name.clone());
            }
        }
        for name in &result.removed {
            if let Some(h) = live.services.remove(name) {
                removed_handles.push((name.clone(), h));
            }
            live.desired.remove(name);
        }
        for (name, cfg) in &new.services {
            match live.config.services.get(name).cloned() {
                None => {
                    let run = cfg.managed.as_ref().is_some_and(|m| m.autostart);
                    let want = if run || cfg.managed.is_none() {
                        Desired::Running
                    } else {
                        Desired::Stopped
                    };
                    let handles = daemon.wiring.start(name, cfg, run, None).await;
                    live.services.insert(name.clone(), handles);
                    live.desired.insert(name.clone(), want);
                    result.added.push(name.clone());
                }
                Some(old) if &old != cfg => {
                    let run = live.desired.get(name) == Some(&Desired::Running);
                    if let Some(h) = live.services.get_mut(name) {
                        slow.extend(daemon.wiring.update(name, h, &old, cfg, run).await);
                    }
                    result.changed.push(name.clone());
                }
                Some(_) => result.unchanged.push(name.clone()),
            }
        }
        daemon.maintenance.send_replace(new.maintenance.clone());
        daemon
            .notices
            .set_public(crate::subscriptions::public_services(&new));
        if let Some(built) = notify {
            daemon.notices.swap(built);
            tracing::info!("reload: [notify] applied");
        }
        live.config = new;
    }
    if notify_changed {
        if let Err(e) = daemon.notices.move_digests().await {
            tracing::warn!(
                "cannot move the digest's rows to its new time: {}",
                e.with_causes()
            );
        }
        match daemon.notices.fail_orphaned().await {
            Ok(0) => {}
            Ok(n) => tracing::warn!(
                rows = n,
                "notices of channels no longer in the config are marked failed"
            ),
            Err(e) => tracing::warn!(
                "cannot fail the notices of channels no longer configured: {}",
                e.with_causes()
            ),
        }
    }
    // Removed services stop dependents first (by the graph they were in), layer by layer,
    // while the rest of the reload's stops and restarts go on.
    let names: Vec<_> = removed_handles.iter().map(|(n, _)| n.clone()).collect();
    let layers = daemon.wiring.gates.stop_layers(&names);
    let (wiring, clock) = (daemon.wiring.clone(), daemon.clock.clone());
    slow.push(Box::pin(async move {
        let mut handles = removed_handles;
        for layer in layers {
            let (now, later): (Vec<_>, Vec<_>) =
                handles.into_iter().partition(|(n, _)| layer.contains(n));
            handles = later;
            let stops = now.into_iter().map(|(name, h)| {
                let wiring = wiring.clone();
                let removed = clock.event(&name, EventKind::Removed);
                async move {
                    wiring.remove(&name, h).await;
                    let _ = wiring.supervisor.events.send(removed).await;
                }
            });
            futures_util::future::join_all(stops).await;
        }
    }));
    // Each service stops or restarts on its own stop_timeout, all at once.
    futures_util::future::join_all(slow).await;
    let kind = EventKind::ConfigApplied {
        revision: result.revision,
        added: result.added.len() as u32,
        removed: result.removed.len() as u32,
        changed: result.changed.len() as u32,
        by: Actor::Principal(by.clone()),
    };
    // Answered once state and the store have it (and the removals before it), so that what
    // the caller reads next shows the reload.
    daemon.record(daemon.clock.daemon_event(kind)).await;
    Ok(result)
}

/// Writes `text` to `path` through a temporary file and a rename, keeping the file's mode, so
/// that a crash never leaves half a config behind.
async fn write_atomically(path: &std::path::Path, text: &str) -> std::io::Result<()> {
    let (path, text) = (path.to_owned(), text.to_owned());
    tokio::task::spawn_blocking(move || write_config(&path, &text))
        .await
        .map_err(std::io::Error::other)?
}

/// Replaces the config file with `text` at once (also for `upkeep import`): written beside
/// it, synced, then renamed over it, with its mode and owner. A file that does not exist yet
/// is made private (0600): an imported `env` may hold secrets.
pub(crate) fn write_config(path: &std::path::Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    // A symlinked config is edited where it points: replacing the link with a file would
    // leave its target stale.
    let path = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_owned());
    // A name of this process's own: two writers never share a half-written file.
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = path.with_file_name(format!(".{name}.upkeep-tmp-{}", std::process::id()));
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(&tmp)?;
    file.write_all(text.as_bytes())?;
    match std::fs::metadata(&path) {
        Ok(meta) => {
            use std::os::unix::fs::MetadataExt;
            file.set_permissions(meta.permissions())?;
            // And its owner and group (a root daemon would make them root's); best effort.
            let _ = std::os::unix::fs::fchown(&file, Some(meta.uid()), Some(meta.gid()));
        }
        Err(_) => file.set_permissions(std::fs::Permissions::from_mode(0o600))?,
    }
    // On disk before the rename, and the rename on disk before we answer: a power cut
    // leaves the old config or the new one, never an empty file (issue 14, E22).
    file.sync_all()?;
    drop(file);
    std::fs::rename(&tmp, &path)?;
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty());
    std::fs::File::open(dir.unwrap_or(std::path::Path::new("."))).and_then(|d| d.sync_all())
}

/// Held while a config file is read, edited and written back (`add`, `import`): writers in
/// any process take turns, so none writes over what another just added. A lock file beside
/// the config (the config itself is replaced by each write, so a lock on it would not hold).
pub(crate) struct ConfigLock(#[allow(dead_code)] nix::fcntl::Flock<std::fs::File>);

impl ConfigLock {
    /// Waits for the lock on `path`'s edits.
    pub(crate) fn acquire(path: &std::path::Path) -> std::io::Result<ConfigLock> {
        use std::os::unix::fs::OpenOptionsExt;
        let path = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_owned());
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW)
            .open(path.with_file_name(format!(".{name}.upkeep-lock")))?;
        nix::fcntl::Flock::lock(file, nix::fcntl::FlockArg::LockExclusive)
            .map(ConfigLock)
            .map_err(|(_, e)| std::io::Error::from(e))
    }
}
