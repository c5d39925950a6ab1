//! The daemon: builds every stage, wires them, and shuts them down in order.
//!
//! Data flow: supervisors send events → the state task (statuses, snapshot) → the store
//! writer. The API (over `<data_dir>/upkeep.sock`, mode 0600, and over TCP at `listen`,
//! `public_listen` and `metrics_listen` when configured) reads through [`Control`] and sends
//! commands to supervisors.
//!
//! Start-up: lock the data dir (one daemon per data dir), become a child subreaper, bind every
//! listener (a taken port ends the start before anything runs: `listeners.rs`), open the
//! store (or, if it cannot be reached, go on without it: it is opened in the background),
//! stop any process an earlier daemon left running (found by its run records), then start
//! every service whose desired state is running. What the last daemon left is read from the
//! store, or from the data dir while the store is away (`takeover.rs`).
//!
//! Shutdown starts at the sources: supervisors stop their process groups, then the state task
//! drains, then the store writer writes what is left. Past `shutdown_timeout` we log what still
//! runs and exit anyway.

use std::collections::BTreeMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use nix::fcntl::{Flock, FlockArg};
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use upkeep_config::Config;
use upkeep_config::StoreConfig;
use upkeep_core::api::StoreHealth;
use upkeep_core::{Clock, Desired, Event, TestClock};
use upkeep_probes::{HttpClients, ProbeDeps};
use upkeep_state::Heal;
use upkeep_store::{LazyStore, Location, PgLocation, Store};
use upkeep_supervisor::{Lineage, LogHub, Reaper, SupervisorDeps, trust};
use upkeep_web::Limits;

use crate::control::{Daemon, Live};
use crate::intent::Intent;
use crate::takeover;
use crate::wiring::Wiring;

/// Files in the data dir.
pub fn socket_path(data_dir: &Path) -> PathBuf {
    data_dir.join("upkeep.sock")
}
fn lock_path(data_dir: &Path) -> PathBuf {
    data_dir.join("upkeep.lock")
}

/// Whether a daemon holds `data_dir`'s lock now (one being started by another `upkeep up`
/// may not answer yet).
pub fn data_dir_locked(data_dir: &Path) -> bool {
    let Ok(file) = File::open(lock_path(data_dir)) else {
        return false;
    };
    matches!(
        Flock::lock(file, FlockArg::LockSharedNonblock),
        Err((_, nix::errno::Errno::EWOULDBLOCK))
    )
}

/// Why the daemon could not start, when the CLI should say it plainly (exit 2, no chain).
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("{0}")]
    AlreadyRunning(String),
}

/// Holds the data dir's lock for the daemon's lifetime.
pub struct DataDirLock {
    _lock: Flock<File>,
}

/// Opens a file of the data dir for reading and writing, never through a symlink, and checks
/// that it is the daemon's own (see `upkeep_sys::trust`).
pub fn open_private(path: &Path) -> Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .read(true)
        .write(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)
        .with_context(|| format!("opening {}", path.display()))?;
    trust::check_owned(&file.metadata()?, path)?;
    Ok(file)
}

/// Makes the data dir (0700) or checks that an existing one is ours and private, and takes
/// its lock, or says which daemon holds it.
pub fn lock_data_dir(data_dir: &Path) -> Result<DataDirLock> {
    trust::private_dir(data_dir).with_context(|| format!("data dir {}", data_dir.display()))?;
    let path = lock_path(data_dir);
    let file = open_private(&path)?;
    let mut lock = match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
        Ok(lock) => lock,
        Err((_, nix::errno::Errno::EWOULDBLOCK)) => {
            let pid = std::fs::read_to_string(&path)
                .unwrap_or_default()
                .trim()
                .chars()
                .take(20)
                .collect::<String>();
            let msg = upkeep_core::i18n::tr(
                upkeep_core::i18n::Msg::DaemonAlready,
                &[&pid, &data_dir.display()],
            );
            return Err(StartError::AlreadyRunning(msg).into());
        }
        Err((_, e)) => return Err(e).with_context(|| format!("locking {}", path.display())),
    };
    use std::io::{Seek, Write};
    lock.set_len(0)?;
    lock.rewind()?;
    writeln!(lock, "{}", std::process::id())?;
    Ok(DataDirLock { _lock: lock })
}

/// The claim of one daemon on its config file, held while it runs (see [`claim_config`]).
pub struct ConfigClaim {
    _socket: std::os::unix::net::UnixListener,
}

/// Claims the config file at `path` for this daemon, or says which daemon runs it already.
/// The data dir's lock keeps two daemons out of one data dir; this keeps two daemons with
/// different data dirs (`--data-dir`, `UPKEEP_DATA_DIR`) from running the same services
/// twice (break-it, session 12). The claim is a listening socket in the abstract namespace,
/// named by the file's real path: the kernel lets it go when the daemon ends, however it
/// ends (no file to clean up after a kill -9), and is close-on-exec, so that an upgrade's
/// new image claims it again. A second daemon learns the first one's pid by connecting.
pub fn claim_config(path: &Path) -> Result<ConfigClaim> {
    use sha2::Digest;
    use std::os::linux::net::SocketAddrExt;
    use std::os::unix::net::{SocketAddr, UnixListener, UnixStream};
    let real = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_owned());
    let digest = sha2::Sha256::digest(real.as_os_str().as_encoded_bytes());
    let name: String = digest[..16].iter().map(|b| format!("{b:02x}")).collect();
    let addr = SocketAddr::from_abstract_name(format!("upkeep/config/{name}"))
        .context("naming the config file's claim")?;
    match UnixListener::bind_addr(&addr) {
        Ok(socket) => Ok(ConfigClaim { _socket: socket }),
        Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => {
            let pid = UnixStream::connect_addr(&addr)
                .ok()
                .and_then(|s| {
                    nix::sys::socket::getsockopt(&s, nix::sys::socket::sockopt::PeerCredentials)
                        .ok()
                })
                .map_or_else(|| "?".to_owned(), |c| c.pid().to_string());
            let msg = upkeep_core::i18n::tr(
                upkeep_core::i18n::Msg::ConfigAlreadyRun,
                &[&pid, &real.display()],
            );
            Err(StartError::AlreadyRunning(msg).into())
        }
        Err(e) => Err(e).context("claiming the config file"),
    }
}

/// The data dir's node id: made once, kept in `<data_dir>/node-id`, so that every process this
/// data dir's daemons start carries it (see `upkeep_sys::lineage`), whatever the host is
/// called.
pub fn node_id(data_dir: &Path) -> Result<String> {
    use std::io::Read;
    let path = data_dir.join("node-id");
    let mut file = open_private(&path)?;
    let mut text = String::new();
    (&mut file).take(64).read_to_string(&mut text)?;
    let id = text.trim();
    if id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Ok(id.to_owned());
    }
    let id = format!("{:032x}", fastrand::u128(..));
    // A new node has no events anywhere: numbering starts at 1, known without the store.
    upkeep_store::start_numbering(&data_dir.join("seq"))
        .with_context(|| format!("writing {}", data_dir.join("seq").display()))?;
    file.set_len(0)?;
    std::os::unix::fs::FileExt::write_all_at(&file, format!("{id}\n").as_bytes(), 0)?;
    file.sync_all()?;
    Ok(id)
}

/// Claims node `id` on this host for as long as the daemon runs: an abstract Unix socket named
/// after it (no file; the kernel frees it when the process ends, however it ends). Two
/// daemons with one node id (a data dir copied with its `node-id`) would take each other's
/// cgroups, marks and rows for their own and kill each other's services (found by a
/// fresh-eyes test); the second is refused. Across hosts sharing one database this does not
/// reach.
fn claim_node(id: &str, data_dir: &Path) -> Result<std::os::unix::net::UnixListener> {
    use std::os::linux::net::SocketAddrExt;
    let addr = std::os::unix::net::SocketAddr::from_abstract_name(format!("upkeep-node-{id}"))?;
    match std::os::unix::net::UnixListener::bind_addr(&addr) {
        Ok(claim) => Ok(claim),
        Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => anyhow::bail!(
            "another upkeep daemon on this host has node id {id} (is {} a copy of its data dir?); \
             remove {} to make this one a node of its own",
            data_dir.display(),
            data_dir.join("node-id").display()
        ),
        Err(e) => Err(e).context("claiming this node's id"),
    }
}

/// This host as the store knows it: the id kept in the data dir, the name from the config or
/// the host name.
pub fn node(config: &Config, id: &str) -> upkeep_store::Node {
    upkeep_store::Node {
        id: id.to_owned(),
        name: match &config.daemon.node {
            Some(name) => name.clone(),
            None => nix::unistd::gethostname()
                .ok()
                .and_then(|h| h.into_string().ok())
                .unwrap_or_else(|| id.to_owned()),
        },
    }
}

/// Where the config says the store is (SQLite in the data dir by default), with the password
/// read: a password file that cannot be read is a config error, found at once.
pub fn store_location(config: &Config) -> Result<Location> {
    Ok(match &config.daemon.store {
        StoreConfig::Sqlite => Location::Sqlite(config.daemon.data_dir.join("upkeep.db")),
        StoreConfig::Postgres { url, password } => Location::Postgres(PgLocation {
            url: url.clone(),
            password: match password {
                Some(source) => Some(
                    source
                        .read()
                        .map_err(anyhow::Error::msg)
                        .context("reading the store's password")?,
                ),
                None => None,
            },
        }),
    })
}

/// Opens the store the config names as this node, or, if it cannot be reached now, returns it
/// unopened: it is opened in the background (see `upkeep_store::LazyStore`).
async fn open_store(config: &Config, node_id: &str) -> Result<Arc<LazyStore>> {
    let location = store_location(config)?;
    let shown = match &location {
        Location::Sqlite(path) => path.display().to_string(),
        Location::Postgres(at) => at.url.to_string(),
    };
    LazyStore::open(location, node(config, node_id))
        .await
        .with_context(|| format!("opening the store {shown}"))
}

/// How long after start-up the start-up code is unmapped (see `upkeep_sys::drop_startup_pages`).
const STARTUP: std::time::Duration = std::time::Duration::from_secs(10);

/// Runs the daemon in the foreground until SIGTERM, SIGINT or `upkeep down`.
pub fn run(config: Config) -> Result<()> {
    // Before anything opens a file or starts a thread: what an upgrade handed over.
    let taken = crate::upgrade::take();
    #[cfg(debug_assertions)]
    if taken.is_some() {
        crate::upgrade::test_hold_new_image();
    }
    // And what systemd's fd store handed back after a crash (`fdstore.rs`).
    let stored = crate::fdstore::take();
    let lock = lock_data_dir(&config.daemon.data_dir)?;
    let _claim = claim_config(&config.path)?;
    upkeep_supervisor::set_child_subreaper().context("becoming a child subreaper")?;
    // Before any child: the secrets the config names stay the daemon's (break-it, session 12).
    upkeep_supervisor::environ::withhold(config.secret_vars());
    // Sockets for probes in flight, pipes and log files for services: more than the usual
    // soft limit of 1,024 at scale. Children still get the limit we started with.
    match upkeep_supervisor::raise_open_files() {
        Ok((before, after)) if before != after => {
            tracing::debug!(before, after, "raised the open-file limit")
        }
        Ok(_) => {}
        Err(e) => tracing::warn!("could not raise the open-file limit: {e}"),
    }
    // One thread: supervision is latency-bound, not CPU-bound, and one thread keeps the
    // daemon small. Blocking work (file writes, /proc scans) has its own threads.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .max_blocking_threads(8)
        .build()
        .context("starting the async runtime")?;
    let data_dir = config.daemon.data_dir.clone();
    let result = rt.block_on(run_async(config, taken, stored));
    if let Ok(Some(handed)) = result {
        // Returns only if no binary could be executed.
        let failed = crate::upgrade::exec(handed, &data_dir);
        drop(lock);
        return Err(failed);
    }
    drop(lock);
    result.map(|_| ())
}

async fn run_async(
    config: Config,
    mut taken: Option<crate::upgrade::Taken>,
    stored: crate::fdstore::Stored,
) -> Result<Option<crate::upgrade::Handed>> {
    let data_dir = config.daemon.data_dir.clone();
    // One clock for every stage. A test clock only in a test build (config refuses it
    // otherwise): it runs with real time and `POST /api/v1/test/clock` moves it on.
    let test_clock = config
        .daemon
        .test_clock
        .then(|| TestClock::running_from(test_clock_start(&data_dir)));
    let clock = test_clock
        .as_ref()
        .map_or_else(Clock::system, TestClock::clock);
    if clock.is_test() {
        tracing::warn!("test clock: POST /api/v1/test/clock moves this daemon's time");
    }
    let shutdown_timeout = config.daemon.shutdown_timeout;
    let metrics_listen = config.daemon.metrics_listen;
    let trusted_proxies = config.daemon.trusted_proxies.clone();
    let per_address = config.daemon.max_connections_per_address as usize;
    let request_timeout = config.daemon.request_timeout;
    let (listen, public_listen) = (config.daemon.listen, config.daemon.public_listen);
    // Served all the same (refusing would take HTTPS away), but said: a certificate out of,
    // or near the end of, its dates.
    for warning in config.warnings(jiff::Timestamp::now()) {
        tracing::warn!("{warning}");
    }
    // HTTPS on `listen` and `public_listen`, one certificate for both, renewed by a reload.
    let tls = config
        .daemon
        .tls
        .as_ref()
        .map(|t| upkeep_web::Tls::new(t.certified.clone()));
    let reaper = Reaper::start().context("installing the SIGCHLD handler")?;
    let node = node_id(&data_dir)?;
    let _node_claim = claim_node(&node, &data_dir)?;
    // Every listener before any service starts: a taken port ends the start here, with
    // nothing started (`listeners.rs`).
    let socket = socket_path(&data_dir);
    let bound = crate::listeners::bind(
        taken.as_mut(),
        &socket,
        [
            ("metrics_listen", metrics_listen),
            ("listen", listen),
            ("public_listen", public_listen),
        ],
    )?;
    let lineage = Lineage::open(&data_dir, &node, config.daemon.cgroups)
        .with_context(|| format!("opening the run records in {}", data_dir.display()))?;
    // The processes an upgrade handed over, still ours: taken over, not stopped.
    let mut adoptions = match taken.as_mut() {
        Some(t) => t.adopt(&config, &reaper),
        None => BTreeMap::new(),
    };
    // Under systemd, each run's pipes are kept in its fd store, and the runs a killed daemon
    // left whose pipes came back are adopted, not stopped (`fdstore.rs`).
    let fd_store = crate::fdstore::FdStore::from_env().map(Arc::new);
    let adopt_now = clock.now();
    for (name, a) in
        crate::fdstore::adopt(stored, fd_store.as_deref(), &config, &lineage, adopt_now)
    {
        adoptions.entry(name).or_insert(a);
    }
    let adopted: std::collections::BTreeSet<String> =
        adoptions.keys().map(|n| n.to_string()).collect();
    // What earlier daemons left running, looked for while the store opens.
    let found = takeover::look_for_leftovers(&lineage);
    // What the last image knew of each service, running or not (`upkeep upgrade`).
    let carried = taken
        .as_mut()
        .map(crate::upgrade::Taken::take_carried)
        .unwrap_or_default();
    for file in [
        "upkeep.db",
        "upkeep.db-wal",
        "upkeep.db-shm",
        "journal",
        "seq",
        "intent.json",
        "logs",
    ] {
        trust::check_if_present(&data_dir.join(file))?;
    }
    let lazy = open_store(&config, &node).await?;
    let store: Arc<dyn Store> = lazy.clone();

    // Stages, from the sink up.
    let (store_tx, store_rx) = mpsc::channel::<Event>(4096);
    let (written_tx, stored) = tokio::sync::watch::channel(0u64);
    let paths = upkeep_store::writer::Paths {
        journal: data_dir.join("journal"),
        numbers: data_dir.join("seq"),
    };
    upkeep_store::writer::check_journal(&paths.journal)
        .await
        .with_context(|| format!("opening the journal {}", paths.journal.display()))?;
    let (health_tx, store_health) = tokio::sync::watch::channel(StoreHealth {
        journaled: upkeep_store::writer::journaled(&paths.journal).await,
        reachable: lazy.is_open(),
        since: (!lazy.is_open()).then(jiff::Timestamp::now),
        error: lazy.why_not_open(),
        ..upkeep_store::writer::healthy(store.engine())
    });
    // Committed events, for live views and durable consumers (SSE and the outbox, to come).
    let committed = upkeep_store::fanout::Fanout::new();
    let writer = tokio::spawn({
        let store = store.clone();
        let fanout = committed.clone();
        async move {
            let channels = upkeep_store::writer::Channels {
                events: store_rx,
                written: written_tx,
                health: health_tx,
                fanout,
            };
            upkeep_store::writer::run(store, &paths, channels).await
        }
    });
    // Notices (`[notify]`): the dispatcher and the incident planner, tasks of their own.
    // Before any service starts: a channel that cannot be built stops the start.
    let notices =
        crate::notices::start(&config, store.clone(), clock.clone(), &committed, &node).await?;
    let (events_tx, events_rx) = mpsc::channel::<Event>(4096);
    let (control_tx, control_rx) = mpsc::channel(256);
    let (heal_tx, heal_rx) = mpsc::channel(256);
    let channels = upkeep_state::StateChannels {
        events: events_rx,
        control: control_rx,
        store: store_tx,
        heals: heal_tx,
    };
    let (state, snapshot) = upkeep_state::StateTask::new(channels, clock.clone());
    let state_drain = CancellationToken::new();
    let state_task = tokio::spawn(state.run(state_drain.clone()));
    let logs = LogHub::start(data_dir.join("logs"), events_tx.clone(), clock.clone())
        .context("starting the log writer")?;
    if let Some(store) = &fd_store {
        logs.keep_pipes_with(store.clone());
    }

    // What the last daemon left: from the store if it answers, else from the data dir, and
    // the rest once the store is back (`takeover::later`).
    let started = clock.now();
    let (intent, _) = Intent::load(&data_dir);
    let intent = Arc::new(intent);
    let mut inherited = takeover::inherit(&lazy, &store_health, &intent, started).await;
    let stopped = takeover::stop_stale_processes(
        &config,
        &lineage,
        found,
        &inherited.records,
        &adopted,
        inherited.from_store,
        &events_tx,
        &clock,
    )
    .await;
    // Rollups of each closed hour, and `retain`, in the background (a store not open yet is
    // tried again with backoff). Probes record each answer's latency in `latency`; the rollup
    // task stores each closed hour.
    let latency = Arc::new(upkeep_core::latency::LatencyBook::default());
    let rollups = tokio::spawn(upkeep_store::rollup::run(
        store.clone(),
        clock.clone(),
        config.daemon.retain,
        latency.clone(),
    ));
    let alive = open_private(&data_dir.join("alive"))?;
    // After an upgrade, the last image watched until it executed this one: no time went
    // unwatched (marked unknown, it would stay so: the services' models are carried on).
    let last_alive = takeover::last_alive(&alive).filter(|_| taken.is_none());
    let pending = takeover::Pending::at(&data_dir);
    let mut last_config = None;
    if inherited.from_store {
        let earlier = pending.read().await;
        if !earlier.is_empty() {
            // Earlier daemons started without the store and may have buried runs only it
            // knew of: what this one did not stop or adopt is recorded now.
            let skip = |name: &upkeep_core::ServiceName, pid: u32, ticks: u64| {
                stopped.get(name) == Some(&pid)
                    || upkeep_supervisor::procfs::running_start_ticks(pid) == Some(ticks)
            };
            match takeover::record_buried_starts(store.as_ref(), &earlier, skip, &events_tx, &clock)
                .await
            {
                Ok(still) => pending.keep_only(&still).await,
                Err(e) => tracing::warn!(
                    "cannot look for runs only the store knew of; the next start looks again: {}",
                    e.with_causes()
                ),
            }
        }
        takeover::record_unwatched_time(last_alive, store.as_ref(), &events_tx, started).await;
        takeover::record_cut_runs(
            &config,
            store.as_ref(),
            &stopped,
            last_alive,
            started,
            &events_tx,
            &clock,
        )
        .await;
        // Read before this daemon's revision is stored: a failed service whose config
        // changed since is started again. Parsed only when a service was left failed: it is
        // a second parse of the whole config on the start's path.
        if inherited.unfinished.values().any(|u| u.failed.is_some()) {
            last_config = takeover::last_config(store.as_ref()).await;
        }
        let upgraded = taken.is_some();
        if let Err(e) =
            takeover::apply_revision(store.as_ref(), &config, &events_tx, started, upgraded).await
        {
            tracing::error!(
                "cannot store the config revision; the next reload or start stores it: {}",
                e.with_causes()
            );
        }
    } else {
        tracing::warn!(
            "starting without the store: desired states and maintenance from {}, the rest once it is back",
            crate::intent::path(&data_dir).display()
        );
        // Before any service starts (its start would bury the last daemon's under its own).
        pending.add(started).await;
    }

    let cancel = CancellationToken::new();
    let tasks = TaskTracker::new();
    let wiring = Wiring {
        supervisor: SupervisorDeps {
            reaper: reaper.clone(),
            logs: logs.clone(),
            events: events_tx,
            lineage: lineage.clone(),
            clock: clock.clone(),
            notify_dir: data_dir.join("notify"),
            seal: Default::default(),
        },
        state: control_tx,
        snapshot: snapshot.clone(),
        probe_deps: ProbeDeps {
            http: HttpClients::default(),
            gates: Default::default(),
            reaper,
            lag: Default::default(),
            latency: latency.clone(),
            clock: clock.clone(),
        },
        cancel: cancel.clone(),
        tasks: tasks.clone(),
        targets: Default::default(),
        gates: Default::default(),
        store: store.clone(),
        logs_dir: data_dir.join("logs"),
        adoptions: std::sync::Mutex::new(adoptions),
        carried: std::sync::Mutex::new(carried),
    };
    let mut unfinished = std::mem::take(&mut inherited.unfinished);
    let mut desired = BTreeMap::new();
    let mut services = BTreeMap::new();
    // Services that depend on nothing first, each spawned as soon as it is set up (its
    // supervisor runs at the yield), not once every service is: setting up 100 took a debug
    // build 100 ms (issue 18's cold start). The others wait for their dependencies anyway;
    // yielding after each of them too, the readiness of a root that comes meanwhile is read
    // (and its dependents set up by then started) at once, not after the whole set-up.
    let (roots, dependents): (Vec<_>, Vec<_>) = config
        .services
        .iter()
        .partition(|(_, cfg)| cfg.depends_on.is_empty());
    for (name, cfg) in roots.into_iter().chain(dependents) {
        let want = inherited.desired(&intent, name, cfg).await;
        desired.insert(name.clone(), want);
        let left = takeover::still_ended(
            name,
            unfinished.remove(name),
            cfg,
            want,
            last_config.as_ref(),
        );
        let ended = left
            .as_ref()
            .is_some_and(|u| u.exited || u.failed.is_some());
        let run = want == Desired::Running && !ended;
        services.insert(name.clone(), wiring.start(name, cfg, run, left).await);
        if run {
            tokio::task::yield_now().await;
        }
    }
    if let Some(t) = &taken {
        let _ = wiring
            .supervisor
            .events
            .send(t.event(clock.now(), adopted.len()))
            .await;
    }
    if let Err(e) = intent.start_with(&desired).await {
        tracing::error!("{:#}", anyhow::Error::new(e));
    }
    if inherited.from_store
        && desired
            .iter()
            .any(|(n, d)| inherited.records.get(n).is_some_and(|r| r.desired != *d))
    {
        intent.push_soon();
    }
    let later = (!inherited.from_store).then(|| takeover::Later {
        store: lazy.clone(),
        started,
        last_alive,
        config: config.clone(),
        stopped,
        upgraded: taken.is_some(),
    });

    let shutdown = CancellationToken::new();
    // The dead-man's switch (`heartbeat.rs`): a task of its own, off the supervision path.
    if let Some(url) = config.daemon.heartbeat_url.clone() {
        crate::heartbeat::spawn(url, clock.clone(), shutdown.child_token());
    }
    let maintenance = watch::channel(config.maintenance.clone()).0;
    let accounts =
        crate::accounts::StoreAccounts::new(lazy.clone(), clock.clone(), maintenance.subscribe())?;
    let daemon = Arc::new(Daemon {
        config_path: config.path.clone(),
        data_dir: data_dir.clone(),
        live: tokio::sync::Mutex::new(Live {
            config,
            services,
            desired,
        }),
        store: store.clone(),
        wiring: Arc::new(wiring),
        snapshot,
        stored,
        store_health,
        committed,
        shutdown: shutdown.clone(),
        drills: Default::default(),
        reloading: Default::default(),
        planner: Default::default(),
        windows: Default::default(),
        maintenance,
        clock: clock.clone(),
        test_clock,
        intent: intent.clone(),
        notices: notices.clone(),
        site: upkeep_web::Site::new(),
        upgrade: crate::upgrade::Upgrades::new(taken.as_ref().and_then(|t| t.error.clone())),
        accounts: Arc::new(accounts),
        tls: tls.clone(),
    });
    // The status page's first render comes from memory before any listener serves: no
    // request waits for a first page.
    crate::statuspage::start(daemon.clone(), latency.clone()).await;
    // Maintenance windows: announced, reminded, started, completed, on the clock.
    tokio::spawn(
        crate::planner::Planner {
            store: store.clone(),
            clock: clock.clone(),
            events: daemon.wiring.supervisor.events.clone(),
            snapshot: daemon.snapshot.clone(),
            wake: daemon.planner.clone(),
            config: daemon.maintenance.subscribe(),
            notices,
        }
        .run(),
    );
    tokio::spawn(route_heals(daemon.clone(), heal_rx));
    let later = later.map(|l| tokio::spawn(takeover::later(daemon.clone(), l)));
    tokio::spawn(crate::intent::keep_store_in_step(
        intent,
        store.clone(),
        daemon.store_health.clone(),
    ));
    tokio::spawn(crate::wiring::follow_targets(daemon.wiring.clone()));
    tokio::spawn(crate::deps::follow_permits(daemon.wiring.clone()));

    // Listeners an upgrade hands to the next image (key, descriptor).
    let mut kept = Vec::new();
    let listener = tokio::net::UnixListener::from_std(bound.socket)?;
    bound.socket_file.served();
    kept.extend(crate::upgrade::keep_fd(&listener).map(|fd| ("socket".to_owned(), fd)));
    let api_cancel = CancellationToken::new();
    // The TCP listeners bound at start, each with its router.
    for (key, addr, std_listener) in bound.tcp {
        let (limits, tls, app) = match key {
            "metrics_listen" => (
                Limits::METRICS,
                None,
                upkeep_web::metrics_router(daemon.clone(), api_cancel.clone()),
            ),
            "listen" => (
                Limits::TCP,
                tls.clone(),
                upkeep_web::tcp_router(
                    daemon.clone(),
                    Arc::new(crate::tokens::TokenCache::new(&data_dir)),
                    api_cancel.clone(),
                ),
            ),
            _ => (
                Limits::TCP,
                tls.clone(),
                upkeep_web::public_router(daemon.clone(), api_cancel.clone()),
            ),
        };
        // One deadline for a whole request, its head's included (`daemon.request_timeout`).
        let limits = Limits {
            per_address,
            header_timeout: request_timeout,
            request_timeout,
            ..limits
        };
        // Behind a reverse proxy, the client its headers name (see upkeep_web::trust_proxies).
        let app = upkeep_web::trust_proxies(app, &trusted_proxies);
        kept.extend(crate::upgrade::keep_fd(&std_listener).map(|fd| (key.to_owned(), fd)));
        if key == "public_listen" {
            crate::public::serve_apart(
                std_listener,
                app,
                limits,
                &trusted_proxies,
                tls,
                api_cancel.clone(),
            )?;
            continue;
        }
        let tcp = tokio::net::TcpListener::from_std(std_listener)?;
        tracing::info!(%addr, key, https = tls.is_some(), "serving over TCP");
        let (cancel, trusted) = (api_cancel.clone(), trusted_proxies.clone());
        tokio::spawn(async move {
            upkeep_web::serve_with(tcp, app, limits, &trusted, tls, cancel).await;
        });
    }
    let api = tokio::spawn(upkeep_web::serve(
        listener,
        upkeep_web::socket_router(daemon.clone(), api_cancel.clone()),
        Limits::CONTROL,
        api_cancel.clone(),
    ));
    tracing::info!(socket = %socket.display(), pid = std::process::id(), "upkeep daemon ready");
    // Start-up code (config, migrations, the first spawn of every service, probes' first
    // checks) is not needed again: once it is over, let it go, so the daemon keeps resident
    // only the code it runs. A one-off timer, not a poll.
    tokio::spawn(async {
        tokio::time::sleep(STARTUP).await;
        match tokio::task::spawn_blocking(upkeep_supervisor::drop_startup_pages).await {
            Ok(Ok(bytes)) => tracing::debug!(bytes, "start-up pages unmapped"),
            Ok(Err(e)) => tracing::debug!("could not unmap start-up pages: {e}"),
            Err(_) => {}
        }
    });
    let last_mark = alive.try_clone().context("keeping the alive mark")?;
    tokio::spawn(heartbeat(alive, clock.clone()));
    crate::systemd::notify_ready();
    let watchdog = crate::systemd::spawn_watchdog();

    wait_for_shutdown(&shutdown).await;
    let deadline = tokio::time::Instant::now() + shutdown_timeout;
    // Notices: nothing more is leased; the sends under way finish and are marked while the
    // services are handed over or stopped, so that the next daemon does not send them again.
    let stop_sending = {
        let notices = daemon.notices.clone();
        tokio::spawn(async move { notices.stop_sending().await })
    };
    // An upgrade: every service stays running, handed to the next image (`upgrade.rs`).
    let mut handed = match daemon.upgrade.take_plan() {
        Some(plan) => {
            tracing::info!("upgrading: handing the services over");
            Some(crate::upgrade::release(&daemon, plan, std::mem::take(&mut kept)).await)
        }
        None => {
            tracing::info!("shutting down: stopping services");
            let _ = sd_notify::notify(false, &[sd_notify::NotifyState::Stopping]);
            // Dependents first, each service before what it depends on; then whatever is left.
            let ordered = crate::ops::services::stop_in_order(&daemon);
            let _ = tokio::time::timeout_at(deadline, ordered).await;
            None
        }
    };
    drop(kept);
    if tokio::time::timeout_at(deadline, stop_sending)
        .await
        .is_err()
    {
        tracing::warn!(
            sends = daemon.notices.sends_under_way(),
            "shutdown timeout passed with notices still being sent; the next daemon sends them again"
        );
    }
    cancel.cancel();
    tasks.close();
    if tokio::time::timeout_at(deadline, tasks.wait())
        .await
        .is_err()
    {
        tracing::warn!(
            still_running = tasks.len(),
            "shutdown timeout passed with supervisors still stopping; exiting anyway"
        );
    }
    if let Some(w) = watchdog {
        w.abort();
    }
    // What is left is ours and nobody's service: orphans that came to us as subreaper (a
    // probe's `setsid` background job, say). Nothing survives `upkeep down`. (An upgrade's
    // services are still our children: they stay.)
    if handed.is_none() {
        end_orphans();
    }
    api_cancel.cancel();
    let _ = api.await;
    // Watched until now: the next daemon counts no time before this as unwatched (a heartbeat
    // up to a minute old would turn that minute, or a test clock's jump, into "unknown").
    mark_alive(&last_mark, &clock);
    rollups.abort();
    // The latency of the hour in progress, so that a restart loses none of it.
    let keep = upkeep_store::rollup::store_latency(store.as_ref(), &latency, None);
    if let Ok(Err(e)) = tokio::time::timeout(Duration::from_secs(5), keep).await {
        tracing::warn!("probe latency of this hour not stored: {}", e.with_causes());
    }
    // What the store alone knew of the last daemons, if it is being taken up now: finished,
    // so that what it records is stored before state drains (else, or with the store away,
    // the next start takes it up: `takeover::Pending`).
    if let Some(mut later) = later {
        if daemon.store_health.borrow().reachable {
            let _ = tokio::time::timeout(Duration::from_secs(5), &mut later).await;
        }
        later.abort();
    }
    drop(daemon);
    // Sources are done: let state drain into the store writer, then let the writer finish.
    state_drain.cancel();
    let models = tokio::time::timeout(Duration::from_secs(5), state_task).await;
    if let (Some(h), Ok(Ok(models))) = (handed.as_mut(), models) {
        h.carry_models(models);
    }
    let _ = tokio::time::timeout(Duration::from_secs(5), writer).await;
    tokio::task::spawn_blocking(move || logs.shutdown())
        .await
        .ok();
    if handed.is_some() {
        tracing::info!("upkeep daemon handing over");
        return Ok(handed);
    }
    let _ = std::fs::remove_file(&socket);
    // Again: an orphan whose parent (a probe's shell) was still exiting at the first sweep
    // comes to us only now.
    end_orphans();
    lineage.release();
    tracing::info!("upkeep daemon stopped");
    Ok(None)
}

/// Passes `state`'s heal requests to the supervisors. Ends with the daemon (its last `Daemon`
/// reference is dropped after the sources stop, and the state task closes the channel).
async fn route_heals(daemon: Arc<Daemon>, mut heals: mpsc::Receiver<Heal>) {
    while let Some(Heal { service, reason }) = heals.recv().await {
        let sup = daemon
            .live
            .lock()
            .await
            .services
            .get(&service)
            .and_then(|h| h.supervisor.clone());
        if let Some(sup) = sup {
            sup.heal(reason).await;
        }
    }
}

/// Ends every child of the daemon's: at shutdown, what is left is orphans it adopted.
fn end_orphans() {
    for pid in upkeep_supervisor::procfs::children_of(std::process::id()) {
        tracing::info!(pid, "ending an adopted orphan at shutdown");
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid as i32),
            nix::sys::signal::Signal::SIGKILL,
        );
    }
}

/// How often the daemon marks itself alive (see [`heartbeat`]).
const HEARTBEAT: Duration = Duration::from_secs(60);

/// Writes the time into `<data_dir>/alive` now and once a [`HEARTBEAT`]: if this daemon is
/// killed, the next one knows when a daemon was last watching (to within a minute), and counts
/// the time after as unknown rather than in the last recorded state. One small write a minute,
/// no fsync.
async fn heartbeat(alive: File, clock: Clock) {
    // The beat is real time; what it writes is the clock's, the time line of the events.
    let mut tick = tokio::time::interval(HEARTBEAT);
    loop {
        tick.tick().await;
        mark_alive(&alive, &clock);
    }
}

fn mark_alive(alive: &File, clock: &Clock) {
    let now = clock.now().as_millisecond();
    let _ = std::os::unix::fs::FileExt::write_all_at(alive, format!("{now:<20}\n").as_bytes(), 0);
}

async fn wait_for_shutdown(shutdown: &CancellationToken) {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int), Ok(mut hup), Ok(mut quit)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
        signal(SignalKind::hangup()),
        signal(SignalKind::quit()),
    ) else {
        shutdown.cancelled().await;
        return;
    };
    // Signals whose default action would end the daemon on the spot, orphaning every service
    // (a stray `kill -USR1` did, for a tester): caught, logged, otherwise ignored. Caught, not
    // ignored (SIG_IGN): an ignored signal stays ignored in every child the daemon starts, and
    // nginx, for one, reopens its logs on SIGUSR1.
    for (kind, name) in [
        (SignalKind::user_defined1(), "SIGUSR1"),
        (SignalKind::user_defined2(), "SIGUSR2"),
        (SignalKind::alarm(), "SIGALRM"),
    ] {
        if let Ok(mut stray) = signal(kind) {
            tokio::spawn(async move {
                while stray.recv().await.is_some() {
                    tracing::warn!(
                        signal = name,
                        "signal ignored: the daemon stops on SIGTERM, SIGINT or SIGQUIT"
                    );
                }
            });
        }
    }
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = term.recv() => return,
            _ = int.recv() => return,
            _ = quit.recv() => return,
            // The terminal that started us hung up (SSH logout): services keep running.
            _ = hup.recv() => tracing::info!("SIGHUP ignored: the daemon outlives the terminal that started it"),
        }
    }
}

/// Where a test clock keeps how far ahead of real time its tests moved it, so that a test
/// daemon killed and started again resumes that time (a reminder due "while it was down").
pub fn test_clock_file(data_dir: &Path) -> PathBuf {
    data_dir.join("test-clock-offset-ms")
}

fn test_clock_start(data_dir: &Path) -> jiff::Timestamp {
    let now = jiff::Timestamp::now();
    let ahead = std::fs::read_to_string(test_clock_file(data_dir))
        .ok()
        .and_then(|t| t.trim().parse::<i64>().ok())
        .unwrap_or(0);
    now.checked_add(jiff::SignedDuration::from_millis(ahead.max(0)))
        .unwrap_or(now)
}
