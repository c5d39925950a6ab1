//! `upkeep upgrade`: the daemon re-executes itself from a new binary without restarting a
//! service (issue 18, item 8).
//!
//! execve keeps the daemon's pid, so its services stay its children (and it stays their
//! subreaper); what the new image needs is what the old one held. The old one, asked over the
//! API ([`ask`]), first opens the binary once and checks that open file (a regular file only
//! its owner may change, not a script, which answers a fresh challenge as upkeep's own code
//! for this hand-over protocol does: `handover.rs`), answers with both versions, then goes
//! down the shutdown path with one difference: each supervisor lets go of its process instead
//! of stopping it (`upkeep_supervisor::Handover`: the read ends of its output pipes, with the
//! start of any line not ended yet), the log writer writes everything read so far, and the state task and
//! the store writer drain, so that numbering goes on from `<data_dir>/seq` and the store.
//! [`exec`] then clears `FD_CLOEXEC` on exactly what it hands over (those pipes, the control
//! socket's listener, the TCP listeners), writes a small state record (0600, in the data dir,
//! named by `UPKEEP_UPGRADE_STATE`) and executes the file it checked, by its descriptor
//! (fexecve), with the arguments it was started with: a file swapped in at the path after the
//! check never runs.
//!
//! The new image ([`take`], before its runtime starts) takes the descriptors the record
//! names, checks each is what the record says (a pipe, a listening socket), marks them
//! close-on-exec again, and adopts each process whose pid is still its child with the same
//! start time ([`adopt`]): its supervisor reads on from the pipes (nothing is lost: the pipe
//! kept what was written meanwhile) and its probes start again. The event `adopted` keeps the
//! run's since and restart count; one `daemon_upgraded` says from which version to which.
//! Every service, running or not, also carries what its supervisor knew (restart count,
//! crash-loop window, a backoff's end, stopped by an operator) and its state model as the
//! state task left it once drained (state, probes, outage, incident): the new image takes
//! them over as they were ([`CarriedService`]), so a failed service is not started, and an
//! open or flapping incident stays the same one, with no event of its own.
//! Nothing runs twice: a process not adopted (gone, not ours, a record that lies) is stopped
//! by the usual takeover, found by its run record, before its service starts again.
//!
//! If execve fails, the old image executes itself again (`/proc/self/exe`, which works even
//! after a package replaced the file) with the same record and the error in it, and the CLI
//! reports it. If the new binary crashes after execve, that is a killed daemon: whoever
//! starts the next one (systemd, `upkeep up`) finds the services by their run records and
//! stops them before starting them again, as after any kill.

use std::collections::BTreeMap;
use std::ffi::CString;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use upkeep_core::api::{UpgradeRequest, UpgradeStarted};
use upkeep_core::{Event, EventKind, ServiceName};
use upkeep_state::CarriedModel;
use upkeep_supervisor::{Adoption, Carried, HandedJob, HandedPipe, Handover, Reaper};
use upkeep_web::ApiError;

use crate::control::Daemon;

/// Names the state record for the new image.
pub const STATE_ENV: &str = "UPKEEP_UPGRADE_STATE";
const VERSION: &str = env!("CARGO_PKG_VERSION");
/// The state record's name in the data dir.
const RECORD: &str = "upgrade-state.json";

/// This image's side of upgrades: where it runs from, since when, what was asked.
pub struct Upgrades {
    /// The binary this image was executed from, as the kernel said at start (a package
    /// upgrade later replaces the file: the path then names the new binary).
    exe: Option<PathBuf>,
    pub started: jiff::Timestamp,
    /// Why the last upgrade did not take (it came back to this version).
    pub error: Option<String>,
    /// Where upgrades stand in this image: one at a time. A std Mutex: never held across an
    /// await.
    turn: std::sync::Mutex<Turn>,
}

/// Upgrades take turns: from the moment one is asked until this image is gone, another is
/// refused ("an upgrade is already under way"). Never back to `Idle` once handed over, so a
/// request that comes while the services are being released cannot be answered "started"
/// and then never carried out.
#[derive(Debug)]
enum Turn {
    Idle,
    /// The binary is being checked.
    Checking,
    /// Checked: the shutdown path is to hand over to it.
    Planned(Plan),
    /// The shutdown path took the plan: this image hands over and executes the next.
    Handing,
}

impl Upgrades {
    pub fn new(error: Option<String>) -> Upgrades {
        Upgrades {
            exe: std::env::current_exe().ok().map(named_path),
            started: jiff::Timestamp::now(),
            error,
            turn: std::sync::Mutex::new(Turn::Idle),
        }
    }

    fn turn(&self) -> std::sync::MutexGuard<'_, Turn> {
        // A panic while it is held leaves a plain value behind: nothing half-written.
        self.turn.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The upgrade asked for, if any (then the daemon hands over instead of stopping).
    pub fn take_plan(&self) -> Option<Plan> {
        let mut turn = self.turn();
        match std::mem::replace(&mut *turn, Turn::Handing) {
            Turn::Planned(plan) => Some(plan),
            // Shutting down for good: an upgrade still being checked will find `Handing`.
            Turn::Idle | Turn::Checking | Turn::Handing => None,
        }
    }
}

/// The path the kernel names this image's file by, without the ` (deleted)` it adds once the
/// file there was replaced (this image was executed from a file then swapped for another):
/// the path is what a later `upkeep upgrade` means by default.
fn named_path(exe: PathBuf) -> PathBuf {
    let bytes = exe.as_os_str().as_bytes();
    match bytes.strip_suffix(b" (deleted)") {
        Some(named) if !exe.exists() => PathBuf::from(std::ffi::OsStr::from_bytes(named)),
        _ => exe,
    }
}

/// Gives the turn back if the check of a binary fails (or the request is dropped).
struct Checking<'a>(&'a Upgrades, bool);

impl Drop for Checking<'_> {
    fn drop(&mut self) {
        if !self.1 {
            let mut turn = self.0.turn();
            if matches!(*turn, Turn::Checking) {
                *turn = Turn::Idle;
            }
        }
    }
}

/// An upgrade the daemon is to carry out.
#[derive(Debug, Clone)]
pub struct Plan {
    /// The path asked for, as shown to people.
    binary: PathBuf,
    /// That file as it was opened and checked (`handover::open_trusted`): what is executed,
    /// whatever the path names by then.
    file: std::sync::Arc<std::fs::File>,
    to: String,
}

/// Tests only (a debug build, `UPKEEP_TEST_UPGRADE_PAUSE=DIR`): a checked upgrade makes
/// `DIR/checked` and waits until a line can be read from `DIR/go` (a FIFO the test writes
/// to), so that a test can swap the file between the check and the exec, or ask a second
/// upgrade meanwhile. A release build has no such wait.
#[cfg(debug_assertions)]
async fn test_pause() {
    let Some(dir) = std::env::var_os("UPKEEP_TEST_UPGRADE_PAUSE").map(PathBuf::from) else {
        return;
    };
    let _ = tokio::task::spawn_blocking(move || {
        let _ = std::fs::write(dir.join("checked"), "");
        let _ = std::fs::read(dir.join("go"));
    })
    .await;
}

/// Tests only (a debug build, `UPKEEP_TEST_UPGRADE_PAUSE=DIR` with a FIFO `DIR/exec`): the
/// new image, right after it took the state record and before anything else, makes
/// `DIR/executed` and waits until a line can be read from `DIR/exec`, so that a test can kill
/// it there (a new image that dies at once). Without `DIR/exec` it goes on; a release build
/// has no such wait.
#[cfg(debug_assertions)]
pub fn test_hold_new_image() {
    let Some(dir) = std::env::var_os("UPKEEP_TEST_UPGRADE_PAUSE").map(PathBuf::from) else {
        return;
    };
    if dir.join("exec").exists() {
        let _ = std::fs::write(dir.join("executed"), "");
        let _ = std::fs::read(dir.join("exec"));
    }
}

/// `POST /api/v1/upgrade`: takes the turn, checks the binary (`handover.rs`), then starts the
/// hand-over (the daemon's shutdown path) and answers at once.
pub async fn ask(
    daemon: &Daemon,
    req: UpgradeRequest,
    by: &upkeep_core::Principal,
) -> Result<UpgradeStarted, ApiError> {
    let binary = match req.binary {
        Some(b) => PathBuf::from(b),
        None => daemon
            .upgrade
            .exe
            .clone()
            .ok_or_else(|| ApiError::Unprocessable {
                message: "cannot tell which binary this daemon was started from".into(),
                hint: Some("name one: upkeep upgrade --binary PATH".into()),
            })?,
    };
    let refuse = |message: String| ApiError::Unprocessable {
        message,
        hint: Some("the daemon keeps running as it is".into()),
    };
    if !binary.is_absolute() {
        return Err(refuse(format!(
            "binary {} is not an absolute path",
            binary.display()
        )));
    }
    // The new image reads the config file at its start, and a file that does not load ends
    // it there, the services left running with no daemon: an edit not yet reloaded (or half
    // done when a package update runs `upkeep upgrade`) is refused now, saying where.
    let path = daemon.config_path.clone();
    let loaded = tokio::task::spawn_blocking(move || upkeep_config::load(&path))
        .await
        .map_err(|e| refuse(format!("cannot check the config file: {e}")))?;
    let file = match loaded {
        Ok(file) => file,
        Err(e) => {
            return Err(ApiError::Unprocessable {
                message: format!(
                    "the config file does not load, and the new daemon would read it at its start: {e}"
                ),
                hint: Some(
                    "the daemon keeps running as it is; fix the file (upkeep check), then upgrade"
                        .into(),
                ),
            });
        }
    };
    // An upgrade changes the binary and nothing else. The new image starts from the file, so
    // what the file says and the daemon does not run yet would be applied without a reload's
    // or a start's checks (a `metrics_listen` on a taken port ended the new image, leaving
    // its services with no daemon: break-it, session 9).
    {
        let live = daemon.live.lock().await;
        let waiting = crate::ops::reload::restart_needed(&live.config, &file);
        if !waiting.is_empty() {
            return Err(ApiError::Unprocessable {
                message: format!(
                    "the config file changes {}, which wait for the daemon's next start; an upgrade keeps what runs",
                    waiting.join(", ")
                ),
                hint: Some(
                    "the daemon keeps running as it is; apply them with `upkeep down` then `upkeep up` (services restart), or undo them, then upgrade"
                        .into(),
                ),
            });
        }
        // The hand-over waits for a stop under way (up to its `stop_timeout`), and nothing is
        // supervised meanwhile; a forking start waiting for its PID file was lost (break-it,
        // session 9). Such moments are short: refused, to be tried again.
        let snapshot = daemon.snapshot.borrow().clone();
        let busy: Vec<String> = snapshot
            .services
            .iter()
            .filter(|(name, st)| {
                st.state == upkeep_core::State::Stopping
                    || (st.state == upkeep_core::State::Starting
                        && live
                            .config
                            .services
                            .get(*name)
                            .and_then(|c| c.managed.as_ref())
                            .is_some_and(|m| {
                                matches!(m.kind, upkeep_config::ServiceType::Forking { .. })
                            }))
            })
            .map(|(name, st)| format!("{name} ({})", st.state.as_str()))
            .collect();
        if !busy.is_empty() {
            return Err(ApiError::Conflict(format!(
                "not while a service is stopping or a forking one is starting: {}; try again once it is done",
                busy.join(", ")
            )));
        }
        // Judged as `upkeep add` judges it: the parsed config, so a comment is no change
        // (break-it, session 12: a comment refused the upgrade, naming nothing).
        let mut waiting = crate::ops::reload::unapplied(&live.config, &file);
        let tls = |c: &upkeep_config::Config| {
            c.daemon
                .tls
                .as_ref()
                .map(|t| (t.cert.clone(), t.key.clone()))
        };
        if tls(&live.config) != tls(&file) {
            waiting.push("daemon.tls (other files)".into());
        }
        if !waiting.is_empty() {
            return Err(ApiError::Unprocessable {
                message: format!(
                    "the config file has changes the daemon has not applied: {}",
                    waiting.join(", ")
                ),
                hint: Some(
                    "the daemon keeps running as it is; `upkeep reload` applies them, then upgrade"
                        .into(),
                ),
            });
        }
    }
    let upgrades = &daemon.upgrade;
    let mut checking = {
        let mut turn = upgrades.turn();
        match *turn {
            Turn::Idle if !daemon.shutdown.is_cancelled() => *turn = Turn::Checking,
            Turn::Idle => {
                return Err(ApiError::Conflict(
                    "the daemon is shutting down: no upgrade now".into(),
                ));
            }
            Turn::Checking | Turn::Planned(_) | Turn::Handing => {
                return Err(ApiError::Conflict(
                    "an upgrade is already under way: wait for it to finish, then check `upkeep ls`"
                        .into(),
                ));
            }
        }
        Checking(upgrades, false)
    };
    let path = binary.clone();
    let file = tokio::task::spawn_blocking(move || crate::handover::open_trusted(&path))
        .await
        .map_err(|e| refuse(format!("cannot check {}: {e}", binary.display())))?
        .map_err(refuse)?;
    let reaper = daemon.wiring.supervisor.reaper.clone();
    let to = crate::handover::check(&reaper, &binary, &file)
        .await
        .map_err(refuse)?;
    #[cfg(debug_assertions)]
    test_pause().await;
    {
        let mut turn = upgrades.turn();
        if !matches!(*turn, Turn::Checking) || daemon.shutdown.is_cancelled() {
            // `upkeep down` came during the check: it stops the services, nothing to hand.
            return Err(ApiError::Conflict(
                "the daemon is shutting down: no upgrade now".into(),
            ));
        }
        // The check above saw no stop under way, but one may have begun since (during the
        // binary's check, say), and the hand-over would wait it out with nothing supervised
        // (break-it, session 10). Sealed in one step with every stop, restart and reload:
        // refused if one is under way, and from here on none begins (`upkeep_supervisor::Seal`).
        if let Err(busy) = daemon.wiring.supervisor.seal.seal() {
            return Err(ApiError::Conflict(format!(
                "not while a service is stopping or restarting, or a reload or an add applies: {}; try again once it is done",
                busy.join(", ")
            )));
        }
        *turn = Turn::Planned(Plan {
            binary: binary.clone(),
            file: std::sync::Arc::new(file),
            to: to.clone(),
        });
        checking.1 = true;
    }
    tracing::info!(by = %by, binary = %binary.display(), from = VERSION, %to, "upgrade asked");
    daemon.shutdown.cancel();
    Ok(UpgradeStarted {
        from: VERSION.into(),
        to,
        binary: binary.display().to_string(),
        pid: std::process::id(),
        started: Some(upgrades.started),
    })
}

/// What the old image hands to the new one, gathered on the shutdown path.
pub struct Handed {
    plan: Plan,
    services: Vec<(ServiceName, Handover, Kept)>,
    listeners: Vec<(String, OwnedFd)>,
    /// What each service's supervisor and state model knew, running or not.
    carried: BTreeMap<ServiceName, CarriedService>,
}

impl Handed {
    /// The state task's models, once it has drained (so they hold every event).
    pub fn carry_models(&mut self, models: BTreeMap<ServiceName, CarriedModel>) {
        for (name, model) in models {
            self.carried.entry(name).or_default().model = Some(model);
        }
    }
}

/// What the last image knew of a service besides its process (break-it, session 9: an upgrade
/// started failed services again, began crash loops' counts and backoffs afresh, and resolved
/// and opened incidents anew). Absent from a record of an image from before it: then each
/// service is taken over as before (adopted if it ran, else as its desired state says).
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct CarriedService {
    #[serde(default)]
    pub supervisor: Option<Carried>,
    #[serde(default)]
    pub model: Option<CarriedModel>,
}

/// What the state task knew of a handed service: carried on by the `adopted` event.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Kept {
    since: Option<jiff::Timestamp>,
    restarts: u32,
}

/// Every supervisor lets go of its process (each stays running) and says what it knew; their
/// pipes, with the listeners `listeners` (key, descriptor), are what `exec` hands over.
pub async fn release(daemon: &Daemon, plan: Plan, listeners: Vec<(String, OwnedFd)>) -> Handed {
    let handles: Vec<_> = {
        let live = daemon.live.lock().await;
        live.services
            .iter()
            .filter_map(|(n, h)| Some((n.clone(), h.supervisor.clone()?)))
            .collect()
    };
    let mut services = Vec::new();
    let mut carried = BTreeMap::new();
    for (name, sup) in handles {
        let Some(released) = sup.release().await else {
            continue;
        };
        carried.insert(
            name.clone(),
            CarriedService {
                supervisor: Some(released.carried),
                model: None,
            },
        );
        if let Some(h) = released.run {
            let snapshot = daemon.snapshot.borrow().clone();
            let st = snapshot.services.get(&name);
            let kept = Kept {
                since: st.and_then(|s| s.since),
                restarts: st.map_or(0, |s| s.restarts),
            };
            services.push((name, h, kept));
        }
    }
    tracing::info!(
        services = services.len(),
        "services released for the upgrade"
    );
    Handed {
        plan,
        services,
        listeners,
        carried,
    }
}

/// The state record: what the new image needs, by descriptor number.
#[derive(Debug, Serialize, Deserialize)]
struct Record {
    from: String,
    to: String,
    /// Why the exec of `to` failed (then this is the old binary again).
    #[serde(default)]
    error: Option<String>,
    services: Vec<ServiceRecord>,
    listeners: Vec<(String, RawFd)>,
    /// Every service's supervisor and model as they were (see [`CarriedService`]). Older
    /// images ignore it and newer ones default it: the protocol stays 1.
    #[serde(default)]
    carried: BTreeMap<ServiceName, CarriedService>,
}

#[derive(Debug, Serialize, Deserialize)]
struct ServiceRecord {
    name: ServiceName,
    pid: u32,
    /// The pid its pipes are kept under in systemd's fd store (`Adoption::pipes`); absent in
    /// a record from before it (then `pid`).
    #[serde(default)]
    pipes: Option<u32>,
    /// Its process group; absent in a record from before forking services (then `pid`).
    #[serde(default)]
    pgid: Option<u32>,
    start_ticks: u64,
    uptime_ms: u64,
    ready: bool,
    kept: Kept,
    stdout: Option<PipeRecord>,
    stderr: Option<PipeRecord>,
    /// A job's run: what its `job_ran` needs. Absent in a record from before it (its end
    /// was then a plain exit).
    #[serde(default)]
    job: Option<HandedJob>,
    /// The read end of its readiness pipe, while it is not ready (issue 18).
    #[serde(default)]
    ready_pipe: Option<RawFd>,
}

#[derive(Debug, Serialize, Deserialize)]
struct PipeRecord {
    fd: RawFd,
    partial: Vec<u8>,
}

/// Re-executes the daemon from the plan's binary with what `handed` holds. Returns only if
/// neither the new binary nor this one could be executed again.
pub fn exec(handed: Handed, data_dir: &Path) -> anyhow::Error {
    let Handed {
        plan,
        services,
        listeners,
        carried,
    } = handed;
    let mut keep: Vec<OwnedFd> = Vec::new();
    let pipe = |p: Option<HandedPipe>, keep: &mut Vec<OwnedFd>| {
        p.map(|p| {
            let fd = p.fd.as_raw_fd();
            keep.push(p.fd);
            PipeRecord {
                fd,
                partial: p.partial,
            }
        })
    };
    let mut record = Record {
        from: VERSION.into(),
        to: plan.to.clone(),
        error: None,
        services: Vec::new(),
        listeners: Vec::new(),
        carried,
    };
    for (name, h, kept) in services {
        let stdout = pipe(h.stdout, &mut keep);
        let stderr = pipe(h.stderr, &mut keep);
        let ready_pipe = h.ready_pipe.map(|fd| {
            let raw = fd.as_raw_fd();
            keep.push(fd);
            raw
        });
        record.services.push(ServiceRecord {
            name,
            pid: h.pid,
            pipes: Some(h.pipes),
            pgid: Some(h.pgid),
            start_ticks: h.start_ticks,
            uptime_ms: h.uptime.as_millis() as u64,
            ready: h.ready,
            kept,
            stdout,
            stderr,
            job: h.job,
            ready_pipe,
        });
    }
    for (key, fd) in listeners {
        record.listeners.push((key, fd.as_raw_fd()));
        keep.push(fd);
    }
    for fd in &keep {
        // Handed on across execve: these, and nothing else of ours.
        if let Err(e) = nix::fcntl::fcntl(
            fd,
            nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::empty()),
        ) {
            return anyhow::anyhow!("cannot hand descriptor {} over: {e}", fd.as_raw_fd());
        }
    }
    let path = data_dir.join(RECORD);
    let attempt = |record: &Record, binary: &Path, file: Option<&std::fs::File>| -> anyhow::Error {
        let bytes = serde_json::to_vec(record).expect("the record serialises");
        if let Err(e) = upkeep_supervisor::trust::replace_own(&path, &bytes) {
            return anyhow::anyhow!("cannot write {}: {e}", path.display());
        }
        match execve(binary, file, &path) {
            Ok(never) => match never {},
            Err(e) => anyhow::anyhow!("cannot execute {}: {e}", binary.display()),
        }
    };
    tracing::info!(binary = %plan.binary.display(), "executing the new binary (the file checked)");
    let failed = attempt(&record, &plan.binary, Some(plan.file.as_ref()));
    tracing::error!("{failed:#}; executing this binary again");
    record.error = Some(format!("{failed:#}"));
    record.to = VERSION.into();
    let again = attempt(&record, Path::new("/proc/self/exe"), None);
    // Nothing to go back to: the services are left running; the next daemon stops them
    // (run records) before starting them again.
    let _ = std::fs::remove_file(&path);
    drop(keep);
    anyhow::anyhow!("{again:#} (after: {failed:#})")
}

/// execve(2) with this process's arguments and environment, plus the record's path: of
/// `file` if given (fexecve: the open file checked, never the path again), else of `binary`.
/// `file` is close-on-exec: the new image does not inherit it.
fn execve(
    binary: &Path,
    file: Option<&std::fs::File>,
    record: &Path,
) -> nix::Result<std::convert::Infallible> {
    let c = |b: &[u8]| CString::new(b).map_err(|_| nix::errno::Errno::EINVAL);
    let path = c(binary.as_os_str().as_bytes())?;
    let argv = std::env::args_os()
        .map(|a| c(a.as_bytes()))
        .collect::<nix::Result<Vec<_>>>()?;
    let mut env = Vec::new();
    for (k, v) in std::env::vars_os() {
        if k != STATE_ENV {
            let mut kv = k.as_bytes().to_vec();
            kv.push(b'=');
            kv.extend_from_slice(v.as_bytes());
            env.push(c(&kv)?);
        }
    }
    let mut kv = format!("{STATE_ENV}=").into_bytes();
    kv.extend_from_slice(record.as_os_str().as_bytes());
    env.push(c(&kv)?);
    match file {
        Some(f) => nix::unistd::fexecve(f, &argv, &env),
        None => nix::unistd::execve(&path, &argv, &env),
    }
}

/// What the new image took over: descriptors checked and owned, processes not yet adopted.
pub struct Taken {
    pub from: String,
    pub error: Option<String>,
    services: Vec<TakenService>,
    listeners: BTreeMap<String, OwnedFd>,
    carried: BTreeMap<ServiceName, CarriedService>,
}

struct TakenService {
    record: ServiceRecord,
    stdout: Option<HandedPipe>,
    stderr: Option<HandedPipe>,
    ready_pipe: Option<OwnedFd>,
}

/// In the new image, before anything else opens or spawns: the state record named by
/// `UPKEEP_UPGRADE_STATE`, if this image was started by an upgrade. Removes the variable (so
/// no service inherits it) and the record.
pub fn take() -> Option<Taken> {
    let path = PathBuf::from(std::env::var_os(STATE_ENV)?);
    // SAFETY: called from `daemon::run` before the runtime and any thread of ours start:
    // nothing reads the environment concurrently.
    unsafe { std::env::remove_var(STATE_ENV) };
    let read = upkeep_supervisor::trust::read_own(&path, 16 << 20);
    let _ = std::fs::remove_file(&path);
    let record: Record = match read {
        Ok(Some(bytes)) => match serde_json::from_slice(&bytes) {
            Ok(r) => r,
            Err(e) => {
                tracing::error!(
                    "the upgrade's state record {} is unreadable: {e}; adopting nothing",
                    path.display()
                );
                return None;
            }
        },
        Ok(None) => {
            tracing::error!(
                "the upgrade's state record {} is missing; adopting nothing",
                path.display()
            );
            return None;
        }
        Err(e) => {
            tracing::error!(
                "cannot read the upgrade's state record {}: {e}; adopting nothing",
                path.display()
            );
            return None;
        }
    };
    let mut taken = Taken {
        from: record.from,
        error: record.error,
        services: Vec::new(),
        listeners: BTreeMap::new(),
        carried: record.carried,
    };
    for (key, fd) in record.listeners {
        if let Some(fd) = own(fd, libc::S_IFSOCK) {
            taken.listeners.insert(key, fd);
        }
    }
    for mut s in record.services {
        let pipe = |p: Option<PipeRecord>| {
            p.and_then(|p| {
                Some(HandedPipe {
                    fd: own(p.fd, libc::S_IFIFO)?,
                    partial: p.partial,
                })
            })
        };
        let stdout = pipe(s.stdout.take());
        let stderr = pipe(s.stderr.take());
        let ready_pipe = s.ready_pipe.take().and_then(|fd| own(fd, libc::S_IFIFO));
        taken.services.push(TakenService {
            record: s,
            stdout,
            stderr,
            ready_pipe,
        });
    }
    Some(taken)
}

/// Takes descriptor `fd` if it is open and of type `kind` (`S_IFIFO`, `S_IFSOCK`), marking it
/// close-on-exec again: a service started later must not inherit it.
fn own(fd: RawFd, kind: libc::mode_t) -> Option<OwnedFd> {
    if fd < 3 {
        return None;
    }
    // SAFETY: fstat only reads; an fd that is not open fails with EBADF.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    if unsafe { libc::fstat(fd, &mut st) } != 0 || st.st_mode & libc::S_IFMT != kind {
        tracing::warn!(
            fd,
            "the upgrade's record names a descriptor that is not what it says; left alone"
        );
        return None;
    }
    // SAFETY: open (fstat said so), inherited across execve and owned by no one else in this
    // image: nothing of ours had run when the record was read.
    let owned = unsafe { OwnedFd::from_raw_fd(fd) };
    let _ = nix::fcntl::fcntl(
        &owned,
        nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::FD_CLOEXEC),
    );
    Some(owned)
}

impl Taken {
    /// What the last image knew of each service (see [`CarriedService`]), for `Wiring`.
    pub fn take_carried(&mut self) -> BTreeMap<ServiceName, CarriedService> {
        std::mem::take(&mut self.carried)
    }

    /// The listener handed over for `key` (`socket`, `listen`, ...), if any.
    pub fn listener(&mut self, key: &str) -> Option<OwnedFd> {
        self.listeners.remove(key)
    }

    /// Adopts each handed process that is still this process's child with the recorded
    /// start time and is a managed service of `config`: by name, for the supervisors.
    /// The rest are let go (their pipes closed); takeover stops them.
    pub fn adopt(
        &mut self,
        config: &upkeep_config::Config,
        reaper: &Reaper,
    ) -> BTreeMap<ServiceName, Adoption> {
        let mut adopted = BTreeMap::new();
        for s in std::mem::take(&mut self.services) {
            let r = &s.record;
            let managed = config
                .services
                .get(&r.name)
                .is_some_and(|c| c.managed.is_some());
            let exit = managed
                .then(|| reaper.adopt(r.pid, r.start_ticks))
                .flatten();
            let Some(exit) = exit else {
                tracing::warn!(service = %r.name, pid = r.pid, "not adopted (gone, not ours, or no longer a managed service): stopped as a leftover");
                continue;
            };
            let uptime = Duration::from_millis(r.uptime_ms);
            let since = r.kept.since.unwrap_or_else(|| {
                jiff::Timestamp::now()
                    .checked_sub(jiff::SignedDuration::try_from(uptime).unwrap_or_default())
                    .unwrap_or_else(|_| jiff::Timestamp::now())
            });
            adopted.insert(
                r.name.clone(),
                Adoption {
                    pid: r.pid,
                    pipes: r.pipes.unwrap_or(r.pid),
                    pgid: r.pgid.unwrap_or(r.pid),
                    start_ticks: r.start_ticks,
                    uptime,
                    ready: r.ready,
                    since,
                    restarts: r.kept.restarts,
                    stdout: s.stdout,
                    stderr: s.stderr,
                    job: s.record.job,
                    exit,
                    // What its supervisor knew comes whole with the record's `carried`.
                    carried: None,
                    ready_pipe: s.ready_pipe,
                },
            );
        }
        adopted
    }

    /// The one event that says the daemon was upgraded.
    pub fn event(&self, at: jiff::Timestamp, adopted: usize) -> Event {
        Event {
            at,
            service: None,
            kind: EventKind::DaemonUpgraded {
                from: self.from.clone(),
                to: VERSION.into(),
                adopted: adopted as u32,
                error: self.error.clone(),
            },
        }
    }
}

/// The descriptors of `listener` and friends, kept for a hand-over.
pub fn keep_fd(fd: &impl std::os::fd::AsFd) -> Option<OwnedFd> {
    fd.as_fd().try_clone_to_owned().ok()
}
