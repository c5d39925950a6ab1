//! A stand-in for systemd's side of the fd store, for tests of a daemon restarted after a crash
//! (there is no systemd as PID 1 where the tests run).
//!
//! [`FdStorePeer`] is the datagram socket a daemon finds in `NOTIFY_SOCKET`: it takes
//! `FDSTORE=1` messages with their descriptors (SCM_RIGHTS) under their `FDNAME=`, and drops a
//! name's on `FDSTOREREMOVE=1`, as sd_notify(3) says systemd does. [`FdStorePeer::stored`] then
//! hands the kept descriptors to [`crate::TestDaemon::hand_fds`], which starts the next daemon
//! with them at 3, 4, ... and `LISTEN_FDS`, `LISTEN_FDNAMES` and `LISTEN_PID` (set by a
//! `sh -c 'LISTEN_PID=$$ exec ...'` wrapper, so that it is the daemon's own pid).

use std::collections::BTreeMap;
use std::io::IoSliceMut;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// What the peer holds: each name's descriptors, and every message it was sent.
#[derive(Default)]
struct Held {
    fds: BTreeMap<String, Vec<OwnedFd>>,
    messages: Vec<String>,
}

pub struct FdStorePeer {
    _dir: tempfile::TempDir,
    path: PathBuf,
    held: Arc<Mutex<Held>>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl FdStorePeer {
    pub fn start() -> FdStorePeer {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("notify");
        let socket = UnixDatagram::bind(&path).expect("bind the notify socket");
        socket
            .set_read_timeout(Some(Duration::from_millis(50)))
            .expect("read timeout");
        let held = Arc::new(Mutex::new(Held::default()));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = std::thread::spawn({
            let (held, stop) = (held.clone(), stop.clone());
            move || {
                while !stop.load(Ordering::Relaxed) {
                    if let Some((text, fds)) = receive(&socket) {
                        take(&mut held.lock().expect("peer poisoned"), text, fds);
                    }
                }
            }
        });
        FdStorePeer {
            _dir: dir,
            path,
            held,
            stop,
            thread: Some(thread),
        }
    }

    /// The address for `NOTIFY_SOCKET`.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The names it holds descriptors under, sorted.
    pub fn names(&self) -> Vec<String> {
        self.held
            .lock()
            .expect("peer poisoned")
            .fds
            .keys()
            .cloned()
            .collect()
    }

    /// Every message received so far, in order.
    pub fn messages(&self) -> Vec<String> {
        self.held.lock().expect("peer poisoned").messages.clone()
    }

    /// Waits (at most `timeout`) until `check` holds of the names held; panics saying `what`.
    pub fn wait_names(&self, what: &str, timeout: Duration, check: impl Fn(&[String]) -> bool) {
        let deadline = Instant::now() + timeout;
        loop {
            let names = self.names();
            if check(&names) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "waited {timeout:?} for the fd store to hold {what}; it holds {names:?}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// A copy of every descriptor held, with its name, in the order systemd would pass them.
    pub fn stored(&self) -> Vec<(String, OwnedFd)> {
        let held = self.held.lock().expect("peer poisoned");
        held.fds
            .iter()
            .flat_map(|(name, fds)| {
                fds.iter().map(|fd| {
                    (
                        name.clone(),
                        fd.try_clone().expect("dup a stored descriptor"),
                    )
                })
            })
            .collect()
    }
}

impl Drop for FdStorePeer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// One datagram and the descriptors it carried, if one came within the read timeout.
fn receive(socket: &UnixDatagram) -> Option<(String, Vec<OwnedFd>)> {
    let mut buf = vec![0u8; 4096];
    let mut iov = [IoSliceMut::new(&mut buf)];
    let mut space = nix::cmsg_space!([RawFd; 16]);
    let msg = nix::sys::socket::recvmsg::<()>(
        socket.as_raw_fd(),
        &mut iov,
        Some(&mut space),
        nix::sys::socket::MsgFlags::MSG_CMSG_CLOEXEC,
    )
    .ok()?;
    let mut fds = Vec::new();
    for c in msg.cmsgs().into_iter().flatten() {
        if let nix::sys::socket::ControlMessageOwned::ScmRights(raw) = c {
            // SAFETY: the kernel just installed these descriptors in this process for us.
            fds.extend(
                raw.into_iter()
                    .map(|fd| unsafe { OwnedFd::from_raw_fd(fd) }),
            );
        }
    }
    let n = msg.bytes;
    Some((String::from_utf8_lossy(&buf[..n]).into_owned(), fds))
}

/// What systemd does with one message (sd_notify(3)): FDSTORE=1 keeps the descriptors under
/// FDNAME= (default "stored"), FDSTOREREMOVE=1 drops every descriptor of that name.
fn take(held: &mut Held, text: String, fds: Vec<OwnedFd>) {
    let mut name = "stored".to_owned();
    let (mut store, mut remove) = (false, false);
    for line in text.lines() {
        match line.split_once('=') {
            Some(("FDNAME", n)) => name = n.to_owned(),
            Some(("FDSTORE", "1")) => store = true,
            Some(("FDSTOREREMOVE", "1")) => remove = true,
            _ => {}
        }
    }
    if store && !fds.is_empty() {
        held.fds.entry(name.clone()).or_default().extend(fds);
    } else if remove {
        held.fds.remove(&name);
    }
    held.messages.push(text);
}

/// A command that runs `bin` (its arguments added by the caller) as systemd starts a service
/// with its fd store: `fds` at 3, 4, ..., `LISTEN_FDS`, `LISTEN_FDNAMES`, and `LISTEN_PID`
/// the daemon's own pid (a shell sets it to its `$$`, then executes the daemon in place).
pub(crate) fn listen_fds_command(bin: &Path, fds: Vec<(String, OwnedFd)>) -> std::process::Command {
    use std::os::unix::process::CommandExt;
    let names: Vec<&str> = fds.iter().map(|(n, _)| n.as_str()).collect();
    let mut cmd = std::process::Command::new("/bin/sh");
    cmd.args(["-c", r#"LISTEN_PID=$$ exec "$0" "$@""#])
        .arg(bin)
        .env("LISTEN_FDS", fds.len().to_string())
        .env("LISTEN_FDNAMES", names.join(":"));
    // Above any number the child could hold, so that moving them to 3.. clobbers none.
    let high: Vec<OwnedFd> = fds
        .into_iter()
        .map(|(_, fd)| {
            let raw = nix::fcntl::fcntl(&fd, nix::fcntl::FcntlArg::F_DUPFD_CLOEXEC(1000))
                .expect("dup a descriptor to hand over");
            // SAFETY: fcntl just made it, for us alone.
            unsafe { OwnedFd::from_raw_fd(raw) }
        })
        .collect();
    // SAFETY: only dup2 between fork and exec, which is async-signal-safe.
    unsafe {
        cmd.pre_exec(move || {
            for (i, fd) in high.iter().enumerate() {
                // dup2 leaves the copy without close-on-exec: the daemon inherits it.
                if nix::libc::dup2(fd.as_raw_fd(), 3 + i as i32) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
            }
            Ok(())
        });
    }
    cmd
}
