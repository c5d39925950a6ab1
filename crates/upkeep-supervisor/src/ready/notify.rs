//! `ready = "notify"`: a datagram socket per service, as systemd's `NOTIFY_SOCKET`.
//!
//! The service finds the socket's address in `NOTIFY_SOCKET` and sends lines such as
//! `READY=1`, `STATUS=...` and `WATCHDOG=1` (sd_notify(3)). The socket is
//! `<data_dir>/notify/NAME` (only the daemon's user can reach the data dir); a service run as
//! another user, or a path too long for a socket address, gets an abstract socket instead
//! (`@upkeep/NODE/NAME`), which anyone on the host can reach.
//!
//! Either way a datagram counts only if it comes from the service itself: the socket has
//! `SO_PASSCRED`, so the kernel attaches the sender's real pid to each datagram
//! (`SCM_CREDENTIALS`; an unprivileged sender cannot forge it), and the sender must be in the
//! service's cgroup or in the process group of its current run. Anything else is refused and
//! logged: a hostile process cannot mark a service ready, nor feed its watchdog. The check
//! reads `/proc` when the datagram is read, so a sender that exits at once (a shell's
//! `systemd-notify --ready`) may be gone and refused; send from the service's own process.
//!
//! One task per socket reads it, woken by the kernel (never polled), and passes each line as
//! a [`Note`] to the supervisor, tagged with the run it was checked against.

use std::io::IoSliceMut;
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering;

use nix::sys::socket::{
    ControlMessageOwned, MsgFlags, UnixCredentials, recvmsg, setsockopt, sockopt,
};
use tokio::io::Interest;
use tokio::sync::mpsc;
use tokio_util::task::AbortOnDropHandle;
use upkeep_core::ServiceName;

use super::{Current, Note, NoteKind};

/// The longest datagram read (systemd reads at most a few KiB too); a longer one is refused.
const MAX_DATAGRAM: usize = 4096;
/// A `STATUS=` longer than this is cut: it is shown, not stored.
const MAX_STATUS_CHARS: usize = 512;
/// `sun_path` holds 108 bytes, the final NUL included.
const MAX_PATH: usize = 107;

pub(crate) struct NotifySocket {
    sock: Option<UnixDatagram>,
    /// The file, if not abstract (removed on drop).
    path: Option<PathBuf>,
    /// What `NOTIFY_SOCKET` says: the path, or `@name`.
    address: String,
    reader: Option<AbortOnDropHandle<()>>,
}

impl NotifySocket {
    /// Binds the socket of service `name`: `<dir>/NAME`, or abstract if `abstract_` (or if
    /// the path is too long for a socket address).
    pub fn bind(
        dir: &Path,
        node: &str,
        name: &ServiceName,
        abstract_: bool,
    ) -> std::io::Result<Self> {
        let path = dir.join(name.as_str());
        let (sock, path, address) = if abstract_ || path.as_os_str().len() > MAX_PATH {
            use std::os::linux::net::SocketAddrExt;
            let name = format!("upkeep/{node}/{name}");
            let addr = std::os::unix::net::SocketAddr::from_abstract_name(&name)?;
            (UnixDatagram::bind_addr(&addr)?, None, format!("@{name}"))
        } else {
            use std::os::unix::fs::DirBuilderExt;
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)?;
            // Left by a daemon that was killed: ours to replace (we hold the data dir).
            let _ = std::fs::remove_file(&path);
            let sock = UnixDatagram::bind(&path)?;
            let address = path.display().to_string();
            (sock, Some(path), address)
        };
        setsockopt(&sock, sockopt::PassCred, &true)?;
        sock.set_nonblocking(true)?;
        Ok(NotifySocket {
            sock: Some(sock),
            path,
            address,
            reader: None,
        })
    }

    /// Starts the task that reads it, checking each sender against `current`.
    pub fn listen(mut self, current: Arc<Current>, notes: mpsc::Sender<Note>) -> Self {
        if let Some(sock) = self.sock.take() {
            match tokio::net::UnixDatagram::from_std(sock) {
                Ok(sock) => {
                    let task = tokio::spawn(read(sock, current, notes));
                    self.reader = Some(AbortOnDropHandle::new(task));
                }
                Err(e) => tracing::error!("cannot watch the notify socket: {e}"),
            }
        }
        self
    }

    pub fn address(&self) -> &str {
        &self.address
    }

    pub fn is_abstract(&self) -> bool {
        self.path.is_none()
    }
}

impl Drop for NotifySocket {
    fn drop(&mut self) {
        if let Some(p) = &self.path {
            let _ = std::fs::remove_file(p);
        }
    }
}

async fn read(sock: tokio::net::UnixDatagram, current: Arc<Current>, notes: mpsc::Sender<Note>) {
    let mut buf = vec![0u8; MAX_DATAGRAM];
    let mut refused: u64 = 0;
    loop {
        if sock.readable().await.is_err() {
            return;
        }
        let got = sock.try_io(Interest::READABLE, || receive(sock.as_raw_fd(), &mut buf));
        let (len, pid, truncated) = match got {
            Ok(got) => got,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
            Err(e) => {
                tracing::warn!("reading the notify socket: {e}");
                continue;
            }
        };
        let pgid = pid.and_then(|pid| sender_run(pid, &current));
        let Some(pgid) = pgid else {
            refused += 1;
            // Logged, but not once per datagram: a flood must not flood the log.
            if refused.is_power_of_two() {
                tracing::warn!(
                    pid,
                    refused,
                    "notify datagram refused: its sender is not one of the service's processes"
                );
            }
            continue;
        };
        if truncated {
            tracing::warn!(
                pid,
                "notify datagram refused: longer than {MAX_DATAGRAM} bytes"
            );
            continue;
        }
        for kind in parse(&buf[..len]) {
            if notes.send(Note { pgid, kind }).await.is_err() {
                return;
            }
        }
    }
}

/// One datagram: (its length, the sender's pid from its credentials, whether it was cut).
/// Descriptors sent along (`FDSTORE=1`) find no room in the control buffer and are closed by
/// the kernel.
fn receive(
    sock: std::os::fd::RawFd,
    buf: &mut [u8],
) -> std::io::Result<(usize, Option<u32>, bool)> {
    let mut iov = [IoSliceMut::new(buf)];
    let mut space = nix::cmsg_space!(UnixCredentials);
    let msg = recvmsg::<()>(
        sock,
        &mut iov,
        Some(&mut space),
        MsgFlags::MSG_CMSG_CLOEXEC | MsgFlags::MSG_DONTWAIT,
    )?;
    let pid = msg.cmsgs()?.find_map(|c| match c {
        ControlMessageOwned::ScmCredentials(c) => u32::try_from(c.pid()).ok(),
        _ => None,
    });
    Ok((msg.bytes, pid, msg.flags.contains(MsgFlags::MSG_TRUNC)))
}

/// The process group of the current run, if `pid` belongs to the service: in its cgroup, or
/// in that process group.
fn sender_run(pid: u32, current: &Current) -> Option<u32> {
    let pgid = current.pgid.load(Ordering::Acquire);
    if pgid == 0 {
        return None;
    }
    let in_cgroup = current.cgroup_procs.as_ref().is_some_and(|procs| {
        std::fs::read_to_string(procs).is_ok_and(|t| t.lines().any(|l| l.trim().parse() == Ok(pid)))
    });
    let in_group = || upkeep_sys::procfs::process(pid).is_some_and(|p| p.pgrp == pgid);
    (in_cgroup || in_group()).then_some(pgid)
}

/// The lines of a datagram that mean something to upkeep (others, such as `MAINPID=` or
/// `RELOADING=1`, are ignored).
pub(crate) fn parse(datagram: &[u8]) -> Vec<NoteKind> {
    String::from_utf8_lossy(datagram)
        .split('\n')
        .filter_map(|line| match line.split_once('=')? {
            ("READY", "1") => Some(NoteKind::Ready("notify")),
            ("STATUS", text) => Some(NoteKind::Status(
                text.chars().take(MAX_STATUS_CHARS).collect(),
            )),
            ("WATCHDOG", "1") => Some(NoteKind::Ping),
            ("WATCHDOG", "trigger") => Some(NoteKind::Trigger),
            _ => None,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicU32;

    #[test]
    fn datagrams_are_read_line_by_line() {
        assert_eq!(
            parse(b"READY=1\nSTATUS=Accepting connections\nMAINPID=4\nWATCHDOG=1\n"),
            [
                NoteKind::Ready("notify"),
                NoteKind::Status("Accepting connections".into()),
                NoteKind::Ping
            ]
        );
        assert_eq!(parse(b"WATCHDOG=trigger"), [NoteKind::Trigger]);
        assert_eq!(parse(b"READY=0\nready=1\nREADY\n\xff"), []);
        let long = format!("STATUS={}", "x".repeat(10_000));
        let NoteKind::Status(s) = &parse(long.as_bytes())[0] else {
            panic!()
        };
        assert_eq!(s.len(), MAX_STATUS_CHARS);
    }

    /// A datagram from a process of the run's group is heard; one from another process (in a
    /// process group of its own, like any process outside the service) is refused.
    #[tokio::test]
    async fn only_the_services_own_processes_are_heard() {
        use std::io::BufRead;
        use std::os::unix::process::CommandExt;
        let dir = tempfile::tempdir().unwrap();
        let name = ServiceName::new("db").unwrap();
        // The test process plays the service: its own process group is the run's.
        let own = nix::unistd::getpgrp().as_raw() as u32;
        let current = Arc::new(Current {
            pgid: AtomicU32::new(own),
            cgroup_procs: None,
        });
        let (tx, mut rx) = mpsc::channel(8);
        let sock = NotifySocket::bind(dir.path(), "node", &name, false)
            .unwrap()
            .listen(current.clone(), tx);
        assert_eq!(sock.address(), dir.path().join("db").display().to_string());
        // A hostile process sends READY=1 and stays alive (so that it can be looked up).
        let hostile = "import socket, sys, time\n\
            s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)\n\
            s.sendto(b'READY=1', sys.argv[1])\n\
            print('sent', flush=True)\n\
            time.sleep(60)\n";
        let mut child = std::process::Command::new("python3")
            .args(["-c", hostile, sock.address()])
            .process_group(0)
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("python3");
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        assert_eq!(line.trim(), "sent");
        let client = UnixDatagram::unbound().unwrap();
        client
            .send_to(b"STATUS=warming up\nREADY=1", sock.address())
            .unwrap();
        // The first note to arrive is the service's: the one sent before it was refused.
        let first = rx.recv().await.unwrap();
        let _ = child.kill();
        let _ = child.wait();
        assert_eq!(
            first,
            Note {
                pgid: own,
                kind: NoteKind::Status("warming up".into())
            }
        );
        assert_eq!(rx.recv().await.unwrap().kind, NoteKind::Ready("notify"));
        // The file goes with the socket.
        let path = dir.path().join("db");
        assert!(path.exists());
        drop(sock);
        assert!(!path.exists());
    }

    #[tokio::test]
    async fn an_abstract_socket_is_named_with_an_at() {
        let name = ServiceName::new("web").unwrap();
        let node = format!("test{}", std::process::id());
        let s = NotifySocket::bind(Path::new("/nonexistent"), &node, &name, true).unwrap();
        assert!(s.is_abstract());
        assert_eq!(s.address(), format!("@upkeep/{node}/web"));
        // A path too long for an address also goes abstract.
        let deep = PathBuf::from(format!("/tmp/{}", "d".repeat(120)));
        let s2 =
            NotifySocket::bind(&deep, &node, &ServiceName::new("api").unwrap(), false).unwrap();
        assert!(s2.is_abstract());
    }
}
