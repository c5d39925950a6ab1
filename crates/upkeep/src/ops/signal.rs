//! Signals to a running service: `upkeep signal NAME SIGNAL [--group]` and `upkeep reload
//! NAME` (its `reload_signal`, to the main process: nginx, PostgreSQL and most daemons reload
//! their config on SIGHUP without a restart). The supervisor sends it and records it as an
//! operator action (an intervention, with who asked); nothing restarts.
//!
//! What is refused, and why (each a 4xx with a message): an unknown signal; a service that is
//! not running (nothing to signal: no error would be seen otherwise); an external one; a
//! reload of a service without `reload_signal`; SIGKILL and SIGSTOP; SIGTSTP, SIGTTIN and
//! SIGTTOU (a terminal's job control: they freeze most programs, as SIGSTOP does, break-it
//! session 11). SIGKILL and SIGSTOP cannot be caught, so they ask the program nothing: SIGKILL is a crash the restart policy answers
//! (`upkeep restart` stops the whole tree and records why), SIGSTOP freezes it until a probe
//! calls it hung. Every other signal goes, SIGTERM included (the service then exits, and its
//! restart policy decides, as after any `kill`).

use nix::sys::signal::Signal;
use upkeep_core::api::{SignalRequest, SignalResult};
use upkeep_core::{Actor, Principal, ServiceName};
use upkeep_supervisor::SignalError as NotSent;

use crate::control::Daemon;

#[derive(Debug, thiserror::Error)]
pub enum SignalError {
    #[error("no service named `{0}` is configured")]
    UnknownService(ServiceName),
    #[error("service `{0}` is external (probes only): upkeep runs no process of it to signal")]
    External(ServiceName),
    /// What was asked, as [`quoted`] makes it fit to show.
    #[error("`{0}` is not a signal")]
    UnknownSignal(String),
    #[error("{signal} cannot be caught, so it cannot ask `{service}` anything")]
    Uncatchable {
        service: ServiceName,
        signal: &'static str,
    },
    /// SIGTSTP, SIGTTIN, SIGTTOU: a terminal's job control, meaningless to a service; unless
    /// it handles them they stop (freeze) it, and it would still show as up.
    #[error(
        "{signal} is a terminal's job control: it would freeze `{service}` until SIGCONT, still shown as up"
    )]
    JobControl {
        service: ServiceName,
        signal: &'static str,
    },
    #[error("service `{0}` has no reload_signal")]
    NoReloadSignal(ServiceName),
    #[error("{0}")]
    NotSent(#[from] NotSent),
}

impl SignalError {
    /// What to do instead, where there is something.
    pub fn hint(&self) -> Option<String> {
        match self {
            SignalError::UnknownSignal(_) => {
                Some("use a name such as HUP, SIGUSR1 or TERM, or a number".into())
            }
            SignalError::Uncatchable { service, .. } | SignalError::JobControl { service, .. } => {
                Some(format!(
                    "`upkeep restart {service}` or `upkeep stop {service}` end the whole tree and record it"
                ))
            }
            SignalError::NoReloadSignal(service) => Some(format!(
                "set reload_signal = \"SIGHUP\" (or what the program reloads on) in [services.{service}], then `upkeep reload`; or `upkeep restart {service}`"
            )),
            SignalError::NotSent(NotSent::NotRunning(service)) => {
                Some(format!("start it first: `upkeep start {service}`"))
            }
            _ => None,
        }
    }
}

/// Sends `req`'s signal to `name`, or (with no request) its `reload_signal` to its main
/// process.
pub async fn send(
    daemon: &Daemon,
    name: &ServiceName,
    req: Option<SignalRequest>,
    by: &Principal,
) -> Result<SignalResult, SignalError> {
    let (supervisor, reload_signal) = {
        let live = daemon.live.lock().await;
        let Some(handles) = live.services.get(name) else {
            return Err(SignalError::UnknownService(name.clone()));
        };
        let Some(supervisor) = handles.supervisor.clone() else {
            return Err(SignalError::External(name.clone()));
        };
        let reload_signal = live
            .config
            .services
            .get(name)
            .and_then(|s| s.managed.as_ref())
            .and_then(|m| m.reload_signal);
        (supervisor, reload_signal)
    };
    let reload = req.is_none();
    let (number, group) = match req {
        Some(req) => {
            let n = upkeep_config::parse_signal(&req.signal)
                .ok_or_else(|| SignalError::UnknownSignal(quoted(&req.signal)))?;
            (n, req.group)
        }
        None => (
            reload_signal.ok_or_else(|| SignalError::NoReloadSignal(name.clone()))?,
            false,
        ),
    };
    let signal =
        Signal::try_from(number).map_err(|_| SignalError::UnknownSignal(number.to_string()))?;
    if matches!(signal, Signal::SIGKILL | Signal::SIGSTOP) {
        return Err(SignalError::Uncatchable {
            service: name.clone(),
            signal: signal.as_str(),
        });
    }
    if matches!(signal, Signal::SIGTSTP | Signal::SIGTTIN | Signal::SIGTTOU) {
        return Err(SignalError::JobControl {
            service: name.clone(),
            signal: signal.as_str(),
        });
    }
    tracing::info!(service = %name, signal = signal.as_str(), group, reload, by = %by, "operator signal");
    let sent = supervisor
        .signal(name, number, group, reload, Actor::Principal(by.clone()))
        .await?;
    // The event is sent before the answer; let the store have it, so that `upkeep events`
    // right after shows it.
    daemon.store_caught_up().await;
    Ok(SignalResult {
        service: name.clone(),
        signal: signal.as_str().into(),
        pid: sent.pid,
        group,
        by: by.clone(),
    })
}

/// At most 32 characters of what a client sent, control characters escaped: a signal name is
/// short, and an error message must not echo a megabyte, or a terminal escape, back whole.
fn quoted(text: &str) -> String {
    const MAX: usize = 32;
    let mut out: String = text
        .chars()
        .take(MAX)
        .flat_map(char::escape_debug)
        .collect();
    if text.chars().nth(MAX).is_some() {
        out.push('…');
    }
    out
}

#[cfg(test)]
mod quoted_tests {
    #[test]
    fn what_a_client_sent_is_cut_short_and_escaped() {
        assert_eq!(super::quoted("HUPP"), "HUPP");
        assert_eq!(super::quoted("\u{1b}[2J"), "\\u{1b}[2J");
        let long = super::quoted(&"A".repeat(1_000_000));
        assert_eq!(long, format!("{}…", "A".repeat(32)));
    }
}
