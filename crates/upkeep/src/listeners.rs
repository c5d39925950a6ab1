//! The daemon's listeners (the TCP ones at `listen`, `public_listen` and `metrics_listen`, and
//! the control socket), bound before anything starts.
//!
//! Why first: a daemon that started its services and then found a port taken would exit with
//! them still running and nothing supervising them (a break-it finding, session 9). Bound
//! here, before the store's takeover and the first spawn, a taken port ends the start with a
//! message naming the key and the address, and nothing has started. What is bound is served
//! later, once the routers exist (`daemon.rs`); a client that connects meanwhile waits in the
//! kernel's backlog. Listeners an upgrade handed over are reused, not bound again. This file
//! does not serve anything or build routers.

use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use anyhow::{Context, Result};

use crate::upgrade::Taken;

/// What [`bind`] bound: the TCP listeners by their config key, and the control socket.
pub struct Bound {
    /// `(key, address, listener)` for each TCP listener the config sets, in the order asked.
    pub tcp: Vec<(&'static str, SocketAddr, std::net::TcpListener)>,
    pub socket: std::os::unix::net::UnixListener,
    /// Removes the socket's file if the start ends before it is served.
    pub socket_file: SocketFile,
}

/// The control socket's file, bound by this start: removed if the start ends before the
/// socket is served (a later step failed, a channel's secret missing, say), since a file with
/// no daemon behind it tells clients that one runs. A socket an upgrade handed over is left.
pub struct SocketFile(Option<std::path::PathBuf>);

impl SocketFile {
    /// The socket is served: the file stays.
    pub fn served(mut self) {
        self.0 = None;
    }
}

impl Drop for SocketFile {
    fn drop(&mut self) {
        if let Some(path) = self.0.take() {
            let _ = std::fs::remove_file(path);
        }
    }
}

/// A TCP listener that could not be bound: the config key and the address name it.
#[derive(Debug, thiserror::Error)]
#[error("cannot listen on {addr} (daemon.{key}); nothing was started")]
pub struct BindError {
    key: &'static str,
    addr: SocketAddr,
    #[source]
    source: std::io::Error,
}

impl BindError {
    /// What the operator can do about it.
    pub fn hint(&self) -> Option<&'static str> {
        match self.source.kind() {
            std::io::ErrorKind::AddrInUse => Some(
                "another process (or another of upkeep's listeners) holds this port: \
                 `ss -ltnp` names it; free the port or give this key another one",
            ),
            std::io::ErrorKind::AddrNotAvailable => {
                Some("no interface of this host has this address")
            }
            std::io::ErrorKind::PermissionDenied => {
                Some("ports below 1024 need root or CAP_NET_BIND_SERVICE")
            }
            _ => None,
        }
    }
}

/// Binds (or takes from `taken`, after an upgrade) every TCP listener in `tcp` that is set,
/// then the control socket at `socket` (mode 0600). The TCP ones come first so that a taken
/// port leaves no socket file behind.
pub fn bind(
    mut taken: Option<&mut Taken>,
    socket: &Path,
    tcp: [(&'static str, Option<SocketAddr>); 3],
) -> Result<Bound> {
    let mut bound = Vec::new();
    for (key, addr) in tcp {
        let Some(addr) = addr else { continue };
        let handed = taken
            .as_deref_mut()
            .and_then(|t| t.listener(key))
            .map(std::net::TcpListener::from)
            .filter(|l| l.local_addr().is_ok_and(|a| a == addr) && l.set_nonblocking(true).is_ok());
        let listener = match handed {
            Some(l) => l,
            None => {
                let l = std::net::TcpListener::bind(addr).map_err(|source| BindError {
                    key,
                    addr,
                    source,
                })?;
                l.set_nonblocking(true)?;
                l
            }
        };
        bound.push((key, addr, listener));
    }
    let (socket, socket_file) = match taken.and_then(|t| t.listener("socket")) {
        // The same socket, still bound: clients never found it closed.
        Some(fd) => {
            let std = std::os::unix::net::UnixListener::from(fd);
            std.set_nonblocking(true)?;
            (std, SocketFile(None))
        }
        None => {
            let _ = std::fs::remove_file(socket); // stale from a killed daemon; we hold the lock
            let listener = std::os::unix::net::UnixListener::bind(socket)
                .with_context(|| format!("binding {}", socket.display()))?;
            let file = SocketFile(Some(socket.to_owned()));
            listener.set_nonblocking(true)?;
            std::fs::set_permissions(socket, std::fs::Permissions::from_mode(0o600))?;
            (listener, file)
        }
    };
    Ok(Bound {
        tcp: bound,
        socket,
        socket_file,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_taken_port_names_its_key_and_address_and_binds_no_socket() {
        let dir = tempfile::tempdir().unwrap();
        let holder = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let taken = holder.local_addr().unwrap();
        let socket = dir.path().join("upkeep.sock");
        let err = bind(
            None,
            &socket,
            [
                ("listen", Some(taken)),
                ("public_listen", None),
                ("metrics_listen", None),
            ],
        )
        .err()
        .expect("the port is taken");
        let text = format!("{err:#}");
        assert!(
            text.contains(&format!("cannot listen on {taken} (daemon.listen)")),
            "{text}"
        );
        assert!(
            err.downcast_ref::<BindError>()
                .and_then(BindError::hint)
                .is_some_and(|h| h.contains("ss -ltnp")),
            "{text}"
        );
        assert!(!socket.exists(), "a socket file was left");
    }

    #[test]
    fn free_ports_and_the_socket_are_bound() {
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("upkeep.sock");
        let free = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        let b = bind(
            None,
            &socket,
            [
                ("listen", None),
                ("public_listen", Some(free)),
                ("metrics_listen", None),
            ],
        )
        .unwrap();
        assert_eq!(b.tcp.len(), 1);
        assert_eq!(b.tcp[0].0, "public_listen");
        assert_eq!(b.tcp[0].2.local_addr().unwrap(), free);
        let mode = std::fs::metadata(&socket).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        // A start that ends before serving takes its socket file away.
        drop(b);
        assert!(!socket.exists(), "a socket file with no daemon behind it");
        let b = bind(
            None,
            &socket,
            [
                ("listen", None),
                ("public_listen", None),
                ("metrics_listen", None),
            ],
        )
        .unwrap();
        b.socket_file.served();
        assert!(socket.exists(), "a served socket's file stays");
    }
}
