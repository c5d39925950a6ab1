//! `upkeep daemon`, `upkeep up` and `upkeep down`: running the daemon in the foreground, in the
//! background, and stopping it.
//!
//! `up` starts `upkeep daemon` in a new session (setsid: no controlling terminal, so closing
//! the SSH connection that ran it sends it nothing), with stdin from /dev/null and output to
//! `<data_dir>/upkeep.log`, and returns once the daemon's socket answers.

use std::os::unix::process::CommandExt;
use std::process::{ExitCode, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use upkeep_core::api::Health;
use upkeep_core::i18n::{Msg, tr};

use super::{ClientError, Global, runtime};

pub fn daemon(g: &Global) -> Result<ExitCode> {
    super::fresh::require_config(g)?;
    let config = g.load_config()?;
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("UPKEEP_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        // Colours for a terminal only: `upkeep up` writes the log to a file.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    crate::daemon::run(config)?;
    Ok(ExitCode::SUCCESS)
}

pub fn up(g: &Global) -> Result<ExitCode> {
    super::fresh::require_config(g)?;
    let config = g.load_config()?;
    let data_dir = config.daemon.data_dir.clone();
    let client = super::Client::new(&data_dir);
    let rt = runtime()?;
    if let Ok(h) = rt.block_on(client.get::<Health>("/api/v1/daemon")) {
        bail!(crate::daemon::StartError::AlreadyRunning(tr(
            Msg::DaemonAlready,
            &[&h.pid, &data_dir.display()]
        )));
    }
    // Made as the daemon makes it (0700), or checked as the daemon checks it: `up` writes its
    // log there first, and must not write through a symlink or into a folder others own.
    upkeep_supervisor::trust::private_dir(&data_dir)
        .with_context(|| format!("data dir {}", data_dir.display()))?;
    let log_path = data_dir.join("upkeep.log");
    let log = {
        use std::os::unix::fs::OpenOptionsExt;
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&log_path)
            .with_context(|| format!("opening {}", log_path.display()))?
    };
    upkeep_supervisor::trust::check_owned(&log.metadata()?, &log_path)?;
    // Where this attempt's lines begin: an earlier attempt's are not this one's reasons.
    let attempt_starts = log.metadata()?.len();
    let exe = std::env::current_exe().context("finding the upkeep binary")?;
    let mut cmd = std::process::Command::new(exe);
    cmd.arg("daemon")
        .arg("-c")
        .arg(&config.path)
        .arg("--data-dir")
        .arg(&data_dir);
    cmd.stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log);
    // SAFETY: setsid is async-signal-safe and touches no memory of the parent.
    unsafe {
        cmd.pre_exec(|| {
            nix::unistd::setsid()
                .map(|_| ())
                .map_err(std::io::Error::from)
        });
    }
    let mut child = cmd.spawn().context("starting the daemon")?;
    let deadline = Instant::now() + Duration::from_secs(30);
    // Another `upkeep up` at the same moment may win the data dir: ours then exits, and the
    // answer is the winner's pid once it answers (break-it, session 12: "exited at start",
    // "already running (pid )").
    let mut lost = false;
    loop {
        if lost {
            if let Ok(h) = rt.block_on(client.get::<Health>("/api/v1/daemon")) {
                bail!(crate::daemon::StartError::AlreadyRunning(tr(
                    Msg::DaemonAlready,
                    &[&h.pid, &data_dir.display()]
                )));
            }
        } else if let Some(status) = child.try_wait()? {
            if crate::daemon::data_dir_locked(&data_dir) {
                lost = true;
                continue;
            }
            let said = attempt_tail(&log_path, attempt_starts, 15);
            if said.trim().is_empty() {
                bail!(
                    "the daemon exited at start ({status}) and wrote nothing to {}",
                    log_path.display()
                );
            }
            // What the daemon said is the error: quoted once, as it said it (its own
            // `error:` prefix included), with where the rest of its log is.
            bail!(
                "the daemon exited at start ({status}); from its log {}:\n{}",
                log_path.display(),
                said.trim_end()
            );
        }
        if let Ok(h) = rt.block_on(client.get::<Health>("/api/v1/daemon")) {
            if h.pid == child.id() {
                println!("{}", tr(Msg::DaemonStarted, &[&h.pid, &data_dir.display()]));
                return Ok(ExitCode::SUCCESS);
            }
            // Another's daemon answers: ours finds the data dir taken.
            lost = true;
            continue;
        }
        if Instant::now() > deadline {
            bail!(
                "the daemon did not answer within 30s; see {}",
                log_path.display()
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The last `lines` lines `path` got from byte `from` on (this attempt's), read from at most
/// its last 64 KiB; "" when it cannot be read.
fn attempt_tail(path: &std::path::Path, from: u64, lines: usize) -> String {
    use std::io::{Read, Seek, SeekFrom};
    const MOST: u64 = 64 * 1024;
    let Ok(mut f) = std::fs::File::open(path) else {
        return String::new();
    };
    let end = f.metadata().map(|m| m.len()).unwrap_or(0);
    let start = from.max(end.saturating_sub(MOST));
    let mut bytes = Vec::new();
    if f.seek(SeekFrom::Start(start)).is_err() || f.take(MOST).read_to_end(&mut bytes).is_err() {
        return String::new();
    }
    let text = String::from_utf8_lossy(&bytes);
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

pub fn down(g: &Global) -> Result<ExitCode> {
    let data_dir = g.data_dir()?;
    let client = super::Client::new(&data_dir);
    let rt = runtime()?;
    let pid = rt.block_on(client.get::<Health>("/api/v1/daemon"))?.pid;
    rt.block_on(client.post::<serde_json::Value>("/api/v1/shutdown", None::<&()>))?;
    // The daemon answers before it stops; wait until it is gone (its services stop first,
    // each within its stop_timeout).
    // Not `kill(pid, 0)`: it succeeds on a zombie, and a daemon that is our unreaped child
    // stays one until we exit.
    let alive = || upkeep_supervisor::procfs::is_running(pid);
    let deadline = Instant::now() + Duration::from_secs(120);
    while alive() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
        if matches!(
            rt.block_on(client.get::<Health>("/api/v1/daemon")),
            Err(ClientError::NoDaemon { .. })
        ) && !alive()
        {
            break;
        }
    }
    if alive() {
        bail!("the daemon (pid {pid}) is still running after 120s");
    }
    println!("{}", tr(Msg::DaemonStopped, &[]));
    Ok(ExitCode::SUCCESS)
}

/// `upkeep upgrade`: asks the daemon to re-execute itself from `binary`, then waits for the
/// new image to answer (same pid, a new start time) and prints both versions.
pub async fn upgrade(
    client: &super::Client,
    binary: Option<std::path::PathBuf>,
) -> Result<ExitCode> {
    use upkeep_core::api::{UpgradeRequest, UpgradeStarted};
    let before: Health = client.get("/api/v1/daemon").await?;
    let binary = binary
        .map(std::path::absolute)
        .transpose()?
        .map(|p| p.display().to_string());
    // A refusal (the binary or the config failed a check, another upgrade is under way) is
    // the operation failing, not a mistake in the command line: exit 1, as the README says.
    let asked: UpgradeStarted = client
        .post("/api/v1/upgrade", Some(&UpgradeRequest { binary }))
        .await
        .map_err(|e| match e {
            ClientError::Api { status, body } if status.is_client_error() => {
                anyhow::Error::new(super::incidents::Refused(body))
            }
            other => other.into(),
        })?;
    // Done when the image that took this request is gone: an upgrade another client asked
    // for just before (this one then went to the new image) does not count as this one.
    let replaced = asked.started.or(before.started);
    let deadline = Instant::now() + Duration::from_secs(120);
    let now = loop {
        tokio::time::sleep(Duration::from_millis(20)).await;
        match client.get::<Health>("/api/v1/daemon").await {
            Ok(h) if h.started != replaced => break h,
            _ if !upkeep_supervisor::procfs::is_running(asked.pid) => bail!(
                "the daemon (pid {}) exited during the upgrade to {}; start it again (upkeep up): it stops what was left running and starts every service",
                asked.pid,
                asked.binary
            ),
            _ if Instant::now() > deadline => bail!(
                "the daemon (pid {}) did not answer within 120s of its upgrade to {}",
                asked.pid,
                asked.binary
            ),
            _ => {}
        }
    };
    if let Some(error) = &now.upgrade_error {
        eprintln!(
            "{}",
            tr(Msg::UpgradeFailed, &[error, &now.version, &now.pid])
        );
        return Ok(ExitCode::FAILURE);
    }
    let services: Vec<upkeep_core::api::ServiceInfo> = client.get("/api/v1/services").await?;
    let running = services.iter().filter(|s| s.status.pid.is_some()).count();
    println!(
        "{}",
        tr(
            Msg::Upgraded,
            &[&asked.from, &now.version, &now.pid, &running]
        )
    );
    Ok(ExitCode::SUCCESS)
}
