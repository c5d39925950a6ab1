//! Readiness signals: how a service's process says it is ready, and that it still lives.
//!
//! Owns the per-service plumbing a [`Signals`] holds: the notify socket (`notify.rs`: one
//! datagram socket per service, `READY=1`, `STATUS=`, `WATCHDOG=1`, with the sender checked
//! against the service's process group or cgroup), the readiness pipe of `ready = { fd = N }`
//! (`fd.rs`) and the line watch of `ready = { log = ... }` (`LineWatch`, matched by the log
//! capture). Each turns what it hears into [`Note`]s for the supervisor task, tagged with the
//! run they were heard from, so a late signal of an earlier run is never taken for the current
//! one.
//!
//! It decides nothing: the supervisor turns notes into events (`ready`, `watchdog_missed`) and
//! `state` judges readiness and `ready_timeout`. Nothing here polls: each source is a task
//! woken by its descriptor.

mod fd;
mod notify;

use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::time::Instant;
use upkeep_config::{LogPattern, ManagedConfig, Ready};
use upkeep_core::ServiceName;

pub(crate) use notify::NotifySocket;

/// What a process said about itself, from the run led by `pgid`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Note {
    pub pgid: u32,
    pub kind: NoteKind,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum NoteKind {
    /// Ready, by `notify`, `fd` or `log`.
    Ready(&'static str),
    /// A `STATUS=` line.
    Status(String),
    /// `WATCHDOG=1`.
    Ping,
    /// `WATCHDOG=trigger`: the service says it is hung.
    Trigger,
}

/// The run the signal sources check senders against: its process group (0 between runs) and
/// the service's cgroup, if it has one. Written by the supervisor, read by the notify reader.
#[derive(Debug, Default)]
pub(crate) struct Current {
    pub pgid: AtomicU32,
    /// `cgroup.procs` of the service's cgroup.
    pub cgroup_procs: Option<std::path::PathBuf>,
}

/// `ready = { log = ... }` for one run: the capture of stdout and of stderr share it, and the
/// first matching line of either sends the note.
#[derive(Clone)]
pub(crate) struct LineWatch {
    pattern: LogPattern,
    pgid: u32,
    fired: Arc<AtomicBool>,
    notes: mpsc::Sender<Note>,
}

impl LineWatch {
    /// Whether the watch still waits (the capture stops looking once it has fired).
    pub fn waiting(&self) -> bool {
        !self.fired.load(Ordering::Acquire)
    }

    /// Looks at one line (without its time stamp). Never waits: the capture may not.
    pub fn line(&self, line: &[u8]) {
        if !self.pattern.is_match(line) || self.fired.swap(true, Ordering::AcqRel) {
            return;
        }
        let note = Note {
            pgid: self.pgid,
            kind: NoteKind::Ready("log"),
        };
        if self.notes.try_send(note).is_err() {
            // The supervisor is behind: the next matching line tries again.
            self.fired.store(false, Ordering::Release);
        }
    }
}

/// One service's readiness plumbing, owned by its supervisor.
pub(crate) struct Signals {
    notes_tx: mpsc::Sender<Note>,
    pub notes: mpsc::Receiver<Note>,
    current: Arc<Current>,
    notify: Option<NotifySocket>,
    /// The last `STATUS=` of this run, shown by `upkeep status` (live, never stored).
    pub status_text: Arc<Mutex<Option<String>>>,
    /// This run said it is ready.
    pub ready: bool,
    /// When the watchdog bites (on the supervisor's clock), while armed.
    pub watchdog_at: Option<Instant>,
    /// Asks the run's readiness pipe watch for its read end (see `fd.rs`).
    give_back: Option<fd::GiveBack>,
}

impl Signals {
    pub fn new(cgroup_procs: Option<std::path::PathBuf>) -> Self {
        let (notes_tx, notes) = mpsc::channel(256);
        Signals {
            notes_tx,
            notes,
            current: Arc::new(Current {
                pgid: AtomicU32::new(0),
                cgroup_procs,
            }),
            notify: None,
            status_text: Arc::default(),
            ready: false,
            watchdog_at: None,
            give_back: None,
        }
    }

    /// Opens the notify socket if `cfg` needs one (and closes it if not): `<dir>/NAME`, or an
    /// abstract socket where a path will not do (see [`NotifySocket::bind`]).
    pub fn configure(&mut self, cfg: &ManagedConfig, dir: &Path, node: &str, name: &ServiceName) {
        let wanted = cfg.ready == Ready::Notify || cfg.watchdog.is_some();
        if !wanted {
            self.notify = None;
            return;
        }
        let reachable = cfg
            .user
            .as_ref()
            .is_none_or(|u| u.uid == nix::unistd::geteuid().as_raw());
        // Now run as another user, who cannot reach the data dir: abstract from here on.
        if !reachable && self.notify.as_ref().is_some_and(|n| !n.is_abstract()) {
            self.notify = None;
        }
        if self.notify.is_some() {
            return;
        }
        match NotifySocket::bind(dir, node, name, !reachable) {
            Ok(sock) => {
                self.notify = Some(sock.listen(self.current.clone(), self.notes_tx.clone()))
            }
            // The service will not be found ready and its ready_timeout (if any) applies;
            // said once, here.
            Err(e) => tracing::error!("cannot open the notify socket in {}: {e}", dir.display()),
        }
    }

    /// What the process's environment gets: `NOTIFY_SOCKET`, and `WATCHDOG_USEC`.
    pub fn env(&self, cfg: &ManagedConfig) -> Vec<(&'static str, String)> {
        let mut env = Vec::new();
        if let Some(n) = &self.notify {
            env.push(("NOTIFY_SOCKET", n.address().to_owned()));
            if let Some(w) = cfg.watchdog {
                env.push(("WATCHDOG_USEC", w.as_micros().to_string()));
            }
        }
        env
    }

    /// A run led by `pgid` began.
    pub fn run_started(&mut self, pgid: u32) {
        self.current.pgid.store(pgid, Ordering::Release);
        self.ready = false;
        self.watchdog_at = None;
        *self.status_text.lock().expect("status text poisoned") = None;
    }

    /// The run ended: no sender belongs to it any more.
    pub fn run_ended(&mut self) {
        self.current.pgid.store(0, Ordering::Release);
        self.ready = false;
        self.watchdog_at = None;
        self.give_back = None;
    }

    /// The pipe of `ready = { fd = N }` for the next run: (read end, write end to pass as N).
    pub fn ready_pipe(
        cfg: &ManagedConfig,
    ) -> std::io::Result<Option<(std::os::fd::OwnedFd, std::os::fd::OwnedFd, i32)>> {
        let Ready::Fd(n) = cfg.ready else {
            return Ok(None);
        };
        let (r, w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)?;
        // Above N, so that copying it over N in the child clobbers nothing the spawn needs.
        let w = upkeep_sys::clone::above(w, n)?;
        Ok(Some((r, w, n)))
    }

    /// Listens on the read end of the run's readiness pipe.
    pub fn watch_fd(&mut self, read: std::os::fd::OwnedFd, pgid: u32) {
        let (ask, give_back) = tokio::sync::oneshot::channel();
        self.give_back = Some(ask);
        tokio::spawn(fd::watch(read, pgid, self.notes_tx.clone(), give_back));
    }

    /// Takes the read end of the run's readiness pipe back from its watch (`upkeep upgrade`):
    /// None if there is none, or the watch ended (at the newline: then its note is waiting in
    /// `notes`, or at the end of file).
    pub async fn take_ready_pipe(&mut self) -> Option<std::os::fd::OwnedFd> {
        let (answer, answered) = tokio::sync::oneshot::channel();
        self.give_back.take()?.send(answer).ok()?;
        answered.await.ok()
    }

    /// The line watch of `ready = { log = ... }` for the run led by `pgid`.
    pub fn line_watch(&self, cfg: &ManagedConfig, pgid: u32) -> Option<LineWatch> {
        let Ready::Log(pattern) = &cfg.ready else {
            return None;
        };
        Some(LineWatch {
            pattern: pattern.clone(),
            pgid,
            fired: Arc::default(),
            notes: self.notes_tx.clone(),
        })
    }

    /// Arms (or re-arms) the watchdog from `now`, if the service has one.
    pub fn arm_watchdog(&mut self, cfg: &ManagedConfig, now: Instant) {
        self.watchdog_at = cfg.watchdog.map(|w: Duration| now + w);
    }
}
