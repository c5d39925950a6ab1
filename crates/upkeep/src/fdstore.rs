//! systemd's fd store: each service's output pipes outlive a daemon that crashed or was
//! killed, so that the daemon systemd starts again adopts the services instead of stopping
//! them (issue 18, item 8: the unit says `KillMode=process`).
//!
//! Under systemd (`NOTIFY_SOCKET` set, and `FDSTORE`, which systemd 254 and later set to
//! `FileDescriptorStoreMax=`, not 0) every run's pipes are sent to the store when the run is
//! spawned (`FDSTORE=1`, `FDNAME=<service>.<out|err>.<pid>`, the descriptor by SCM_RIGHTS;
//! sd_notify(3)) and taken out (`FDSTOREREMOVE=1`) once the run ended and its output is read
//! (the supervisor's [`PipeKeeper`]). A daemon that died kept no reader, but the store kept
//! the pipes open: the services never see SIGPIPE, and what they write meanwhile waits in
//! the pipe. systemd hands the store back to the next daemon it starts (`LISTEN_FDS`,
//! `LISTEN_FDNAMES`, `LISTEN_PID`; sd_listen_fds(3)): [`take`], before anything else opens a
//! descriptor. [`adopt`] then takes over each run whose run record names the same pid and
//! start time and that still runs (not a zombie): its supervisor reads on from the pipes and
//! watches its end through a pidfd (`upkeep_sys::pidfd`: not our child any more, so its exit
//! status is unknown), and no restart is counted. A run without both of its pipes, or ended,
//! is left to `takeover.rs`, which stops it as after any killed daemon; their pipes are
//! closed and taken out of the store.
//!
//! Pipes are named by the process spawned; a forking service's run is its daemon, which its
//! start command forked: the run record names both, and the pipes are matched by the
//! start command's pid (the record's `pipes`). What the dead daemon's supervisor knew of the
//! run comes from the note it left after the run record (`upkeep_supervisor::RunNote`):
//! whether the run had said it was ready (one still starting is adopted starting, and what
//! depends on it waits; the read end of a `ready = { fd = N }` pipe is kept in the store too,
//! until the run is ready, so that it can still say so), its restart count, crash-loop window and backoff attempt, and a
//! job's due time and who asked, so that its end is recorded as a run of the job. Without a
//! note (a daemon from before it), a run is taken for ready, its counts afresh.
//!
//! `systemctl stop upkeep` is SIGTERM to the daemon: it stops every service as always. Without
//! systemd nothing here does anything. Not here: in-place upgrades (`upgrade.rs`), which hand
//! the pipes over across execve instead.

use std::collections::BTreeMap;
use std::io::IoSlice;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixDatagram;
use std::time::Duration;

use upkeep_core::ServiceName;
use upkeep_supervisor::{Adoption, HandedPipe, Lineage, PipeKeeper, RunNote, Stream, procfs};

/// The daemon's end of systemd's notify socket, for the fd store's messages.
pub struct FdStore {
    socket: UnixDatagram,
}

impl FdStore {
    /// The store, if the daemon runs under a service manager that keeps descriptors for it:
    /// `NOTIFY_SOCKET` is set and `FDSTORE` (the unit's `FileDescriptorStoreMax=`, told by
    /// systemd 254 and later) is not 0.
    pub fn from_env() -> Option<FdStore> {
        let path = std::env::var_os("NOTIFY_SOCKET")?;
        if std::env::var("FDSTORE").is_ok_and(|max| max.trim() == "0") {
            return None;
        }
        let socket = UnixDatagram::unbound().ok()?;
        let bytes = std::os::unix::ffi::OsStrExt::as_bytes(path.as_os_str());
        let connected = match bytes.strip_prefix(b"@") {
            Some(abstract_name) => {
                use std::os::linux::net::SocketAddrExt;
                std::os::unix::net::SocketAddr::from_abstract_name(abstract_name)
                    .and_then(|a| socket.connect_addr(&a))
            }
            None => socket.connect(&path),
        };
        if let Err(e) = connected {
            tracing::warn!(socket = ?path, "cannot reach the service manager's fd store: {e}");
            return None;
        }
        // Never wait on the service manager on a service's restart path.
        let _ = socket.set_nonblocking(true);
        Some(FdStore { socket })
    }

    fn send(&self, text: &str, fd: Option<BorrowedFd<'_>>) {
        let iov = [IoSlice::new(text.as_bytes())];
        let fds: Vec<RawFd> = fd.map(|f| f.as_raw_fd()).into_iter().collect();
        let cmsg = [nix::sys::socket::ControlMessage::ScmRights(&fds)];
        let cmsgs: &[nix::sys::socket::ControlMessage] = if fds.is_empty() { &[] } else { &cmsg };
        if let Err(e) = nix::sys::socket::sendmsg::<()>(
            self.socket.as_raw_fd(),
            &iov,
            cmsgs,
            nix::sys::socket::MsgFlags::MSG_NOSIGNAL,
            None,
        ) {
            tracing::warn!(
                message = text.trim(),
                "the service manager's fd store refused: {e}"
            );
        }
    }

    /// Takes the pipes named `names` out of the store (ones not adopted).
    fn remove(&self, names: &[String]) {
        for name in names {
            self.send(&format!("FDSTOREREMOVE=1\nFDNAME={name}\n"), None);
        }
    }
}

/// Which pipe of a run a descriptor in the store is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Part {
    Output(Stream),
    /// The read end of its readiness pipe (`ready = { fd = N }`), until it is ready.
    Ready,
}

/// The name a run's pipe has in the store: `<service>.<out|err|ready>.<pid>` (service names
/// hold no `:`, the one character systemd refuses, and are at most 64 characters).
fn fd_name(name: &ServiceName, part: Part, pid: u32) -> String {
    let s = match part {
        Part::Output(Stream::Stdout) => "out",
        Part::Output(Stream::Stderr) => "err",
        Part::Ready => "ready",
    };
    format!("{name}.{s}.{pid}")
}

/// The service, part and pid a name of ours says (see [`fd_name`]).
fn parse_name(text: &str) -> Option<(ServiceName, Part, u32)> {
    let mut parts = text.rsplitn(3, '.');
    let pid = parts.next()?.parse().ok()?;
    let part = match parts.next()? {
        "out" => Part::Output(Stream::Stdout),
        "err" => Part::Output(Stream::Stderr),
        "ready" => Part::Ready,
        _ => return None,
    };
    let name = ServiceName::new(parts.next()?).ok()?;
    Some((name, part, pid))
}

impl PipeKeeper for FdStore {
    fn keep(&self, name: &ServiceName, stream: Stream, pid: u32, fd: BorrowedFd<'_>) {
        self.send(
            &format!(
                "FDSTORE=1\nFDNAME={}\n",
                fd_name(name, Part::Output(stream), pid)
            ),
            Some(fd),
        );
    }

    fn let_go(&self, name: &ServiceName, stream: Stream, pid: u32) {
        self.remove(&[fd_name(name, Part::Output(stream), pid)]);
    }

    fn keep_ready(&self, name: &ServiceName, pid: u32, fd: BorrowedFd<'_>) {
        self.send(
            &format!("FDSTORE=1\nFDNAME={}\n", fd_name(name, Part::Ready, pid)),
            Some(fd),
        );
    }

    fn let_go_ready(&self, name: &ServiceName, pid: u32) {
        self.remove(&[fd_name(name, Part::Ready, pid)]);
    }
}

/// One run's pipes as the service manager handed them back.
#[derive(Debug, Default)]
struct RunPipes {
    out: Option<OwnedFd>,
    err: Option<OwnedFd>,
    ready: Option<OwnedFd>,
}

/// The pipes the service manager handed back at start, by the run they belong to.
#[derive(Debug, Default)]
pub struct Stored {
    runs: BTreeMap<(ServiceName, u32), RunPipes>,
    /// Names of descriptors that are not a pipe of ours: closed, and taken out of the store.
    foreign: Vec<String>,
}

/// In the daemon, before anything opens a descriptor or starts a thread: the descriptors
/// systemd handed back (`LISTEN_FDS` for this pid), made close-on-exec, and the variables
/// removed so that no service inherits them.
pub fn take() -> Stored {
    let mut stored = Stored::default();
    let fds = match sd_notify::listen_fds_with_names(true) {
        Ok(fds) => fds,
        Err(e) => {
            tracing::warn!("the descriptors the service manager handed over are unreadable: {e}");
            return stored;
        }
    };
    for (fd, text) in fds {
        // SAFETY: systemd passed it open at this number (LISTEN_FDS counts it), and nothing
        // of ours has run yet to own it.
        let owned = unsafe { OwnedFd::from_raw_fd(fd) };
        let fifo = nix::sys::stat::fstat(&owned)
            .is_ok_and(|st| st.st_mode & libc::S_IFMT == libc::S_IFIFO);
        match parse_name(&text).filter(|_| fifo) {
            Some((name, part, pid)) => {
                let slot = stored.runs.entry((name, pid)).or_default();
                match part {
                    Part::Output(Stream::Stdout) => slot.out = Some(owned),
                    Part::Output(Stream::Stderr) => slot.err = Some(owned),
                    Part::Ready => slot.ready = Some(owned),
                }
            }
            None => stored.foreign.push(text),
        }
    }
    stored
}

/// Adopts each stored run that its service's run record names (same pid), that still runs
/// with the recorded start time, whose service is still a managed one of `config`, and whose
/// two pipes came back. The rest is closed and taken out of the store; `takeover.rs` stops
/// what of it still runs. Needs the runtime (the pidfd watch is a task).
pub fn adopt(
    mut stored: Stored,
    store: Option<&FdStore>,
    config: &upkeep_config::Config,
    lineage: &Lineage,
    now: jiff::Timestamp,
) -> BTreeMap<ServiceName, Adoption> {
    let records = lineage.runs();
    let mut adopted = BTreeMap::new();
    let mut drop_names = std::mem::take(&mut stored.foreign);
    for ((name, pid), pipes) in std::mem::take(&mut stored.runs) {
        let names = [
            fd_name(&name, Part::Output(Stream::Stdout), pid),
            fd_name(&name, Part::Output(Stream::Stderr), pid),
            fd_name(&name, Part::Ready, pid),
        ];
        let managed = config.services.get(&name).and_then(|c| c.managed.as_ref());
        // Named by the process spawned: a forking service's start command (`pipes`).
        let run = records
            .get(name.as_str())
            .filter(|r| r.pipes == pid && managed.is_some() && !adopted.contains_key(&name));
        let (
            Some(run),
            RunPipes {
                out: Some(out),
                err: Some(err),
                ready: ready_pipe,
            },
        ) = (run, pipes)
        else {
            drop_names.extend(names);
            continue;
        };
        let Some(exit) = upkeep_supervisor::pidfd::watch_exit(run.pid, run.start_ticks) else {
            tracing::info!(service = %name, pid = run.pid, "its run ended while no daemon watched: stopped as a leftover");
            drop_names.extend(names);
            continue;
        };
        let uptime = uptime_of(run.start_ticks);
        let since = now
            .checked_sub(jiff::SignedDuration::try_from(uptime).unwrap_or_default())
            .unwrap_or(now);
        let note = lineage
            .note(name.as_str())
            .and_then(|text| RunNote::of_run(&text, run.pid, run.start_ticks));
        tracing::info!(service = %name, pid = run.pid, noted = note.is_some(), "adopting a run the last daemon left, with its pipes from the fd store");
        let carried = note.as_ref().map(|n| n.carried_at(now));
        adopted.insert(
            name,
            Adoption {
                pid: run.pid,
                pipes: pid,
                pgid: run.pgid,
                start_ticks: run.start_ticks,
                uptime,
                // Without a note (a daemon from before it) a run that has been going is
                // taken for ready.
                ready: note.as_ref().is_none_or(|n| n.ready),
                since,
                restarts: carried.as_ref().map_or(0, |c| c.total),
                job: note.and_then(|n| n.job),
                carried,
                ready_pipe,
                stdout: Some(HandedPipe {
                    fd: out,
                    partial: Vec::new(),
                }),
                stderr: Some(HandedPipe {
                    fd: err,
                    partial: Vec::new(),
                }),
                exit,
            },
        );
    }
    if let Some(store) = store {
        store.remove(&drop_names);
    }
    adopted
}

/// How long the process that started at `start_ticks` (after boot) has run.
fn uptime_of(start_ticks: u64) -> Duration {
    let hz = procfs::ticks_per_second().max(1);
    let since_boot = std::fs::read_to_string("/proc/uptime")
        .ok()
        .and_then(|t| t.split_whitespace().next()?.parse::<f64>().ok())
        .unwrap_or(0.0);
    let started = start_ticks as f64 / hz as f64;
    Duration::from_secs_f64((since_boot - started).max(0.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_say_service_stream_and_pid_even_with_dots_in_the_service() {
        let web = ServiceName::new("api.v2").unwrap();
        let n = fd_name(&web, Part::Output(Stream::Stderr), 4242);
        assert_eq!(n, "api.v2.err.4242");
        assert_eq!(
            parse_name(&n),
            Some((web.clone(), Part::Output(Stream::Stderr), 4242))
        );
        let r = fd_name(&web, Part::Ready, 4242);
        assert_eq!(parse_name(&r), Some((web, Part::Ready, 4242)));
        for bad in ["web.out", "web.log.12", "web.out.x", "stored", ".out.1"] {
            assert_eq!(parse_name(bad), None, "{bad}");
        }
    }
}
