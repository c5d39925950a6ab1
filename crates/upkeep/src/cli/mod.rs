//! The command line: parse arguments, run the command, print the result or the error.
//!
//! Most commands are thin clients of the daemon's API (`client.rs`); `daemon`, `up`, `down`
//! (`lifecycle.rs`), `check`, `startup`, `export` and `import` (`import.rs`) work without one. Exit codes: 0 ok,
//! 1 an operation failed (or no daemon runs), 2 usage or config error.
//!
//! Every service-name argument is parsed into a [`ServiceName`] (or [`Target`]) by clap, so a
//! bad name is a usage error before anything is sent, and every request path is an
//! [`ApiPath`] (issue 14, D18).

mod client;
mod docs;
pub(crate) mod escape;
mod feedback;
mod fresh;
mod import;
mod incidents;
mod jobs;
mod lifecycle;
mod notify;
mod output;
mod signal;
mod subscribers;
mod top;
mod users;
mod windows;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use clap::{Args, Parser, Subcommand};
use http_body_util::BodyExt;
use upkeep_core::ServiceName;
use upkeep_core::api::{ActionResult, AddService, ReloadResult, ServiceDetail, ServiceInfo};
use upkeep_core::i18n::{Msg, tr};

use client::ApiPath;
pub use client::{Client, ClientError};

#[derive(Parser, Debug)]
#[command(
    name = "upkeep",
    version,
    about = "Keep services running, watch them, tell people."
)]
pub struct Cli {
    #[command(flatten)]
    global: Global,
    #[command(subcommand)]
    command: Command,
}

#[derive(Args, Debug, Clone)]
pub struct Global {
    /// Config file [default: $UPKEEP_CONFIG, ./upkeep.toml, ~/.config/upkeep/upkeep.toml, /etc/upkeep/upkeep.toml]
    #[arg(short = 'c', long = "config", global = true, env = "UPKEEP_CONFIG")]
    config: Option<PathBuf>,
    /// Data dir of the daemon to talk to [default: the config's daemon.data_dir]
    #[arg(long, global = true, env = "UPKEEP_DATA_DIR")]
    data_dir: Option<PathBuf>,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run the daemon in the foreground (for systemd and containers)
    Daemon,
    /// Start the daemon in the background, detached from this terminal
    Up,
    /// Stop every service gracefully, then the daemon
    Down,
    /// List services
    Ls(LsArgs),
    /// Show one service: details and last events
    Status {
        name: ServiceName,
        #[command(flatten)]
        json: JsonFlag,
    },
    /// Start a service (or `all`)
    Start { target: Target },
    /// Stop a service (or `all`): stop signal to its whole process group, then SIGKILL
    Stop { target: Target },
    /// Restart a service (or `all`)
    Restart { target: Target },
    /// Show a service's log (control characters escaped, unless --raw)
    Logs {
        name: ServiceName,
        /// Keep printing new lines
        #[arg(short, long)]
        follow: bool,
        /// How many lines to show
        #[arg(short = 'n', long = "lines", default_value_t = 50)]
        lines: usize,
        /// Show stderr instead of stdout
        #[arg(long)]
        stderr: bool,
        /// One JSON object per line: {"at": ..., "line": ...}
        #[arg(long)]
        json: bool,
        /// Write the log's bytes as they are, escape sequences and all (by default control
        /// characters show escaped, e.g. ESC as \x1b, so a line cannot act on the terminal)
        #[arg(long, conflicts_with = "json")]
        raw: bool,
    },
    /// Availability, incidents, MTTR, MTBF, heals and interventions: this period beside the last
    Report {
        /// Period: 24h, 7d, 30d, 90d, a date or an RFC 3339 time
        #[arg(long, default_value = "7d")]
        since: String,
        #[arg(long, conflicts_with = "md")]
        json: bool,
        /// A Markdown table
        #[arg(long)]
        md: bool,
    },
    /// Inject a fault into a running service and measure detection and recovery
    Drill {
        name: ServiceName,
        #[arg(long, value_enum)]
        fault: FaultArg,
        /// How many times, one after the other
        #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=1000))]
        repeat: u32,
        #[arg(long)]
        json: bool,
    },
    /// Jobs (services with `schedule`): schedule, state, next and last run; with a name, its
    /// recent runs (exit code, duration, who or what started it) and the latest run's output
    Jobs {
        name: Option<ServiceName>,
        /// How many runs of each job (at least 1)
        #[arg(short = 'n', long, default_value_t = 20, value_parser = clap::value_parser!(u32).range(1..))]
        limit: u32,
        #[command(flatten)]
        json: JsonFlag,
    },
    /// Incidents, newest first (of one service, or all)
    Incidents {
        name: Option<ServiceName>,
        /// How many (at least 1)
        #[arg(short = 'n', long, default_value_t = 20, value_parser = clap::value_parser!(u32).range(1..))]
        limit: u32,
        #[command(flatten)]
        json: JsonFlag,
    },
    /// Stored events, newest first (of one service, or all), with who asked for each action
    Events {
        name: Option<ServiceName>,
        /// How many
        #[arg(short = 'n', long, default_value_t = 50)]
        limit: u32,
        /// Then go on showing events as they are stored (Ctrl-C to stop)
        #[arg(short, long)]
        follow: bool,
        #[command(flatten)]
        json: JsonFlag,
    },
    /// One incident and its timeline (`upkeep incident ID`), or write to one: open, update,
    /// resolve, priority, postmortem
    #[command(args_conflicts_with_subcommands = true)]
    Incident {
        id: Option<i64>,
        #[command(flatten)]
        json: JsonFlag,
        #[command(subcommand)]
        cmd: Option<incidents::IncidentCmd>,
    },
    /// Put a service in maintenance (no heals, no incidents, time counted apart), or end it
    Maintenance {
        name: ServiceName,
        /// How long, e.g. 30m or 2h (default: until `--end`)
        #[arg(long = "for", value_name = "DURATION", conflicts_with = "end")]
        duration: Option<String>,
        /// Why, for the record
        #[arg(long, default_value = "", conflicts_with = "end")]
        reason: String,
        /// End the maintenance now
        #[arg(long)]
        end: bool,
    },
    /// Maintenance windows: planned work, announced in advance (add, ls, show, edit, cancel,
    /// start, finish, extend)
    Maint {
        #[command(subcommand)]
        cmd: Box<windows::MaintCmd>,
    },
    /// Notices: the outbox (ls), a failed notice sent again (retry), a channel tried (test)
    Notify {
        #[command(subcommand)]
        cmd: notify::NotifyCmd,
    },
    /// What people wrote in the status page's feedback form, newest first
    Feedback {
        /// How many messages, at most
        #[arg(short = 'n', long, default_value_t = 100)]
        limit: u32,
        #[command(flatten)]
        json: JsonFlag,
    },
    /// Users of the admin pages (/admin on `listen`): add, ls, rm, passwd
    User {
        #[command(subcommand)]
        cmd: users::UserCmd,
    },
    /// Subscribers of the public API: list them (ls), delete one (rm), export them
    Subscribers {
        #[command(subcommand)]
        cmd: subscribers::SubscribersCmd,
    },
    /// Apply the config file again (only changed services restart); with a NAME, send that
    /// service its reload_signal instead (no restart)
    Reload {
        /// A running service to reload (e.g. nginx on SIGHUP)
        name: Option<ServiceName>,
        #[command(flatten)]
        json: JsonFlag,
    },
    /// Send a signal (HUP, SIGUSR1, 10...) to a running service's main process, or with
    /// --group to its whole tree; recorded, nothing restarts
    Signal {
        name: ServiceName,
        signal: String,
        /// To every process of the service (its process group and cgroup)
        #[arg(long)]
        group: bool,
        #[command(flatten)]
        json: JsonFlag,
    },
    /// Re-execute the daemon from a new binary in place: every service keeps running (same
    /// pids, no line of log lost, no restart)
    Upgrade {
        /// The new binary [default: the path the daemon was started from]
        #[arg(long)]
        binary: Option<PathBuf>,
    },
    /// Answers a running daemon's check before `upkeep upgrade` executes this binary
    /// (`handover.rs`): not for people
    #[command(name = "__handover-check", hide = true)]
    HandoverCheck { nonce: String, protocol: u32 },
    /// Validate a config file without a daemon
    Check(JsonFlag),
    /// Add a service to the config file (keeping its comments) and start it
    Add {
        name: ServiceName,
        /// Working directory (relative to where you are)
        #[arg(long)]
        cwd: Option<PathBuf>,
        /// always | on-failure | never
        #[arg(long)]
        restart: Option<String>,
        /// The command, after `--`
        #[arg(last = true, required = true, num_args = 1..)]
        command: Vec<String>,
    },
    /// Print (or --install) a systemd unit that runs the upkeep daemon at boot
    Startup {
        /// A user unit (systemctl --user) instead of a system unit
        #[arg(long)]
        user: bool,
        /// Write the unit file instead of printing it
        #[arg(long)]
        install: bool,
    },
    /// Export a service for another supervisor
    Export {
        #[command(subcommand)]
        to: ExportTo,
    },
    /// Bring services over from PM2, supervisord or systemd into the config file (keeping its
    /// comments), and say what could not be carried over
    Import {
        #[command(subcommand)]
        from: import::ImportFrom,
    },
    /// Bearer tokens of the TCP API (`daemon.listen`); no daemon needed
    Token {
        #[command(subcommand)]
        cmd: TokenCmd,
    },
    /// The history store; with the daemon stopped
    Store {
        #[command(subcommand)]
        cmd: StoreCmd,
    },
    /// A live view of the services (state, CPU, memory, restarts, uptime) and the selected
    /// one's log, with keys to restart, stop, start and follow its log
    Top,
    /// Print shell completions, e.g. `upkeep completions bash > /etc/bash_completion.d/upkeep`
    Completions {
        #[arg(value_enum)]
        shell: docs::Shell,
    },
    /// Print the manual page (roff), or write a page per command into --dir
    Man {
        /// Write upkeep.1 and a page for each subcommand into this directory
        #[arg(long, value_name = "DIR")]
        dir: Option<PathBuf>,
    },
}

#[derive(Subcommand, Debug)]
enum StoreCmd {
    /// Copy this host's history (the SQLite file in the data dir) into an empty PostgreSQL
    /// database; then set `[daemon] store` to it
    Copy {
        /// postgres://user@host:port/database (the password from PGPASSWORD, --password-env
        /// or --password-file, never in the URL)
        #[arg(long)]
        to: String,
        /// The environment variable that holds the password
        #[arg(long, conflicts_with = "password_file")]
        password_env: Option<String>,
        /// A file whose first line is the password
        #[arg(long)]
        password_file: Option<std::path::PathBuf>,
    },
}

#[derive(Subcommand, Debug)]
enum TokenCmd {
    /// Make a token and print its secret, once
    Create {
        name: crate::tokens::TokenName,
        /// read: the GET routes; write: read and the actions
        #[arg(long, value_enum)]
        scope: ScopeArg,
        /// Print {"name", "scope", "secret"} as JSON
        #[arg(long)]
        json: bool,
    },
    /// List the tokens (names, scopes, creation times; never secrets)
    Ls(JsonFlag),
    /// Revoke a token: the daemon refuses it from its next request on
    Revoke { name: crate::tokens::TokenName },
}

#[derive(clap::ValueEnum, Clone, Copy, Debug)]
enum ScopeArg {
    Read,
    Write,
}

impl From<ScopeArg> for upkeep_core::api::Scope {
    fn from(s: ScopeArg) -> Self {
        match s {
            ScopeArg::Read => Self::Read,
            ScopeArg::Write => Self::Write,
        }
    }
}

#[derive(Subcommand, Debug)]
enum ExportTo {
    /// A systemd unit for one service
    Systemd {
        name: ServiceName,
        /// Write to this file instead of standard output
        #[arg(short, long)]
        output: Option<PathBuf>,
    },
}

/// What `start`, `stop` and `restart` act on: every service, or one.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Target {
    All,
    One(ServiceName),
}

impl std::str::FromStr for Target {
    type Err = upkeep_core::NameError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s == "all" {
            return Ok(Target::All);
        }
        ServiceName::new(s).map(Target::One)
    }
}

impl Target {
    fn as_str(&self) -> &str {
        match self {
            Target::All => "all",
            Target::One(name) => name.as_str(),
        }
    }
}

#[derive(clap::ValueEnum, Clone, Copy, Debug)]
enum FaultArg {
    /// SIGKILL of the main process
    Crash,
    /// SIGSTOP of the whole process group
    Hang,
    /// SIGKILL of the process holding the listening port
    ClosePort,
}

impl From<FaultArg> for upkeep_core::api::Fault {
    fn from(f: FaultArg) -> Self {
        match f {
            FaultArg::Crash => Self::Crash,
            FaultArg::Hang => Self::Hang,
            FaultArg::ClosePort => Self::ClosePort,
        }
    }
}

#[derive(Args, Debug)]
struct LsArgs {
    /// Print JSON instead of text
    #[arg(long)]
    json: bool,
    /// Show the dependency graph: each service under what it depends on
    #[arg(long)]
    tree: bool,
}

#[derive(Args, Debug)]
struct JsonFlag {
    /// Print JSON instead of text
    #[arg(long)]
    json: bool,
}

/// The hint of an error that carries one.
fn hint_of(e: &(dyn std::error::Error + 'static)) -> Option<String> {
    if let Some(c) = e.downcast_ref::<ClientError>() {
        return c.hint();
    }
    if let Some(r) = e.downcast_ref::<incidents::Refused>() {
        return r.0.hint.clone();
    }
    if let Some(t) = e.downcast_ref::<crate::tokens::TokenError>() {
        return t.hint().map(str::to_owned);
    }
    if let Some(i) = e.downcast_ref::<crate::import::ImportError>() {
        return i.hint().map(str::to_owned);
    }
    if let Some(n) = e.downcast_ref::<fresh::NoConfig>() {
        return Some(n.hint());
    }
    if let Some(b) = e.downcast_ref::<crate::listeners::BindError>() {
        return b.hint().map(str::to_owned);
    }
    e.downcast_ref::<crate::systemd::UnitError>()
        .and_then(|u| u.hint().map(str::to_owned))
}

/// A mistake in the command line that clap cannot see (exit 2).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct Usage(String);

/// Errors that mean "your input is wrong" (exit 2) rather than "it failed" (exit 1).
fn is_usage_error(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<Usage>().is_some()
            || c.downcast_ref::<upkeep_config::ConfigError>().is_some()
            || c.downcast_ref::<crate::daemon::StartError>().is_some()
            || c.downcast_ref::<fresh::NoConfig>().is_some()
            || c.downcast_ref::<upkeep_core::NameError>().is_some()
            || c.downcast_ref::<crate::systemd::UnitError>().is_some()
            || c.downcast_ref::<crate::tokens::TokenError>().is_some_and(|t| t.is_usage())
            || c.downcast_ref::<crate::import::ImportError>().is_some_and(|i| i.is_usage())
            || matches!(c.downcast_ref::<ClientError>(), Some(ClientError::Api { status, .. }) if status.is_client_error())
    })
}

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    if !matches!(cli.command, Command::Daemon | Command::Up) {
        // A command's output piped into `head` ends when the reader does, as any Unix tool's
        // (Rust ignores SIGPIPE, so the next print would panic). Not the daemon's: a client
        // that hangs up must not end it.
        // SAFETY: setting a signal's disposition to its default, before any thread starts.
        unsafe {
            libc::signal(libc::SIGPIPE, libc::SIG_DFL);
        }
    }
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            // Messages quote what the daemon or a file said: show its control characters.
            let mut msg = format!("error: {}", escape::text(&e.to_string()));
            for cause in e.chain().skip(1) {
                let cause = cause.to_string();
                msg.push_str(&format!("\n  caused by: {}", escape::text(&cause)));
            }
            if let Some(hint) = e.chain().find_map(hint_of) {
                msg.push_str(&format!("\n\nhint: {}", escape::text(&hint)));
            }
            eprintln!("{msg}");
            if is_usage_error(&e) {
                ExitCode::from(2)
            } else {
                ExitCode::from(1)
            }
        }
    }
}

fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")
}

impl Global {
    fn config_path(&self) -> PathBuf {
        let p = self
            .config
            .clone()
            .unwrap_or_else(upkeep_config::default_config_path);
        std::path::absolute(&p).unwrap_or(p)
    }

    /// Loads and validates the config, applying `--data-dir`.
    fn load_config(&self) -> Result<upkeep_config::Config> {
        let mut config = upkeep_config::load(&self.config_path())?;
        if let Some(d) = &self.data_dir {
            config.daemon.data_dir = std::path::absolute(d)?;
        }
        Ok(config)
    }

    /// The data dir to find the daemon in. Only needs the `data_dir` key to be readable, so a
    /// config being edited (and invalid right now) does not lock the user out of `ls`.
    /// The file is read as the daemon and `check` read it (`upkeep_config::read`: a regular
    /// file, at most 16 MiB, UTF-8): `-c /dev/zero` grew without end and a FIFO hung. A file
    /// that cannot be read is an error, never a fall back to the default data dir, where
    /// another daemon may run: `stop all` reached it through a typo in the path (issue 14),
    /// a Latin-1 file, or a directory (break-it, session 11). Only where no file was named
    /// and none exists is the default data dir the daemon's, as the daemon would have it.
    fn data_dir(&self) -> Result<PathBuf> {
        if let Some(d) = &self.data_dir {
            return Ok(std::path::absolute(d).unwrap_or_else(|_| d.clone()));
        }
        let path = self.config_path();
        let text = match upkeep_config::read(&path) {
            Ok(text) => text,
            Err(upkeep_config::ConfigError::Read { source, .. })
                if self.config.is_none() && source.kind() == std::io::ErrorKind::NotFound =>
            {
                return Ok(upkeep_config::default_data_dir());
            }
            Err(e) => return Err(e.into()),
        };
        // A `data_dir` that cannot be read out: why the daemon would not start from the
        // file either, rather than a guess.
        let unreadable = || -> anyhow::Error {
            match upkeep_config::parse(&path, &text) {
                Err(e) => e.into(),
                Ok(_) => Usage(format!("cannot read daemon.data_dir in {}", path.display())).into(),
            }
        };
        let named = match toml::from_str::<toml::Table>(&text) {
            Ok(table) => match table.get("daemon").and_then(|d| d.get("data_dir")) {
                None => None,
                Some(toml::Value::String(dir)) => Some(dir.clone()),
                Some(_) => return Err(unreadable()),
            },
            // Mid-edit and not even TOML: find the line by hand; one that mentions a data dir
            // it cannot be read from is refused.
            Err(_) => match data_dir_line(&text) {
                Some(dir) => Some(dir),
                None if text.contains("data_dir") => return Err(unreadable()),
                None => None,
            },
        };
        let Some(named) = named else {
            return Ok(upkeep_config::default_data_dir());
        };
        // Judged as check and the daemon judge it: `data_dir = ""` was the config's folder
        // here (a "no daemon is running" for a daemon that could never start), not the error.
        let base = path.parent().unwrap_or(Path::new("."));
        match upkeep_config::data_dir_problem(&named, base) {
            (_, Some(_)) => Err(unreadable()),
            (dir, None) => Ok(dir),
        }
    }

    fn client(&self) -> Result<Client> {
        Ok(Client::new(&self.data_dir()?))
    }
}

/// Log lines ("<RFC 3339 time> <text>") as newline-delimited JSON objects.
fn log_lines_json(data: &[u8]) -> String {
    String::from_utf8_lossy(data)
        .lines()
        .map(|l| {
            let (at, line) = l.split_once(' ').unwrap_or(("", l));
            format!("{}\n", serde_json::json!({ "at": at, "line": line }))
        })
        .collect()
}

/// `data_dir = "x"` from a file that does not parse as a whole.
fn data_dir_line(text: &str) -> Option<String> {
    text.lines().find_map(|l| {
        let rest = l
            .trim()
            .strip_prefix("data_dir")?
            .trim_start()
            .strip_prefix('=')?
            .trim();
        let quote = rest.chars().next().filter(|c| *c == '"' || *c == '\'')?;
        let inner = &rest[1..];
        Some(inner[..inner.find(quote)?].to_owned())
    })
}

fn print_json(v: &impl serde::Serialize) {
    println!(
        "{}",
        serde_json::to_string_pretty(v).expect("API types serialise")
    );
}

fn run(cli: Cli) -> Result<ExitCode> {
    let g = cli.global;
    match cli.command {
        Command::Daemon => lifecycle::daemon(&g),
        Command::Up => lifecycle::up(&g),
        Command::Down => lifecycle::down(&g),
        Command::Check(f) => check(&g, f.json),
        Command::HandoverCheck { nonce, protocol } => {
            match crate::handover::answer(&nonce, protocol) {
                Ok(line) => println!("{line}"),
                Err(why) => bail!("{why}"),
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Startup { user, install } => startup(&g, user, install),
        Command::Export {
            to: ExportTo::Systemd { name, output },
        } => export_systemd(&g, &name, output),
        Command::Token { cmd } => token(&g, cmd),
        Command::Store { cmd } => store(&g, cmd),
        Command::Import { from } => import::run(&g, from),
        add @ Command::Add { .. } => {
            // With no config or no daemon yet: made and started first.
            fresh::prepare_add(&g)?;
            runtime()?.block_on(client_command(&g, add))
        }
        Command::Completions { shell } => docs::run_completions(shell),
        Command::Man { dir } => docs::run_man(dir),
        Command::Top => top::run(&g),
        other => runtime()?.block_on(client_command(&g, other)),
    }
}

/// Prints events from the live stream as they come: those of `service` (or all), newer than
/// `after` (the list just shown), as text or as JSON lines.
async fn follow_events(
    mut body: hyper::body::Incoming,
    service: Option<&ServiceName>,
    after: i64,
    json: bool,
) -> Result<()> {
    let mut pending: Vec<u8> = Vec::new();
    while let Some(frame) = body.frame().await {
        let frame = frame.context("reading the event stream")?;
        let Some(data) = frame.data_ref() else {
            continue;
        };
        pending.extend_from_slice(data);
        while let Some(end) = pending.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = pending.drain(..=end).collect();
            let Ok(e) = serde_json::from_slice::<upkeep_core::api::StoredEvent>(&line) else {
                // `{"skipped": N}`: this reader fell behind.
                eprintln!("{}", String::from_utf8_lossy(&line).trim_end());
                continue;
            };
            if e.id <= after || service.is_some_and(|s| e.service.as_ref() != Some(s)) {
                continue;
            }
            if json {
                println!("{}", serde_json::to_string(&e)?);
            } else {
                print!("{}", output::events(std::slice::from_ref(&e)));
            }
        }
    }
    Ok(())
}

async fn client_command(g: &Global, cmd: Command) -> Result<ExitCode> {
    let client = g.client()?;
    match cmd {
        Command::Ls(f) => {
            let infos: Vec<ServiceInfo> = client.get("/api/v1/services").await?;
            if f.json {
                print_json(&infos)
            } else if f.tree {
                print!("{}", output::services_tree(&infos));
            } else {
                println!("{}", output::services_table(&infos));
                // Said where people look: events wait, and reads of history fail meanwhile.
                let health: upkeep_core::api::Health = client.get("/api/v1/daemon").await?;
                let s = &health.store;
                if !s.reachable {
                    let since = s.since.map(|t| t.to_string()).unwrap_or_default();
                    let error = s.error.as_deref().unwrap_or_default();
                    let line = tr(
                        Msg::StoreUnreachable,
                        &[&s.engine, &since, &s.journaled, &escape::field(error)],
                    );
                    eprintln!("{line}");
                }
            }
        }
        Command::Status { name, json } => {
            let d: ServiceDetail = client
                .get(ApiPath::new("/api/v1/services").segment(&name))
                .await?;
            if json.json {
                print_json(&d)
            } else {
                let window = d.info.status.maintenance.as_ref().and_then(|m| m.window);
                let window_end = match window {
                    // Its end is the window's; without it (store away) the line says so.
                    Some(id) => windows::occurrence_end(&client, id).await,
                    None => None,
                };
                print!("{}", output::service_detail(&d, window_end))
            }
        }
        Command::Start { target } => {
            let r = act(&client, &target, "start", Msg::Started).await?;
            // One job named, and its run still going: nothing was started.
            if !r.still_running.is_empty() && matches!(target, Target::One(_)) {
                return Ok(ExitCode::from(1));
            }
            // One service named, waiting for one an operator stopped: it will not start.
            if r.waiting.iter().any(|w| !w.stopped.is_empty()) && matches!(target, Target::One(_)) {
                return Ok(ExitCode::from(1));
            }
        }
        Command::Stop { target } => {
            act(&client, &target, "stop", Msg::Stopped).await?;
        }
        Command::Restart { target } => {
            act(&client, &target, "restart", Msg::Restarted).await?;
        }
        Command::Logs {
            name,
            follow,
            lines,
            stderr,
            json,
            raw,
        } => {
            let path = ApiPath::new("/api/v1/services")
                .segment(&name)
                .segment("logs")
                .query("n", lines)
                .query("stderr", stderr)
                .query("follow", follow);
            let mut body = client
                .send(hyper::Method::GET, path, None)
                .await?
                .into_body();
            let mut out = std::io::stdout().lock();
            // Chunks may end mid-line; JSON output needs whole lines.
            let mut pending: Vec<u8> = Vec::new();
            let mut escaper = escape::LogEscaper::default();
            while let Some(frame) = body.frame().await {
                let frame = frame.context("reading the log stream")?;
                let Some(data) = frame.data_ref() else {
                    continue;
                };
                let text = if json {
                    pending.extend_from_slice(data);
                    let Some(end) = pending.iter().rposition(|&b| b == b'\n') else {
                        continue;
                    };
                    let whole: Vec<u8> = pending.drain(..=end).collect();
                    log_lines_json(&whole).into_bytes()
                } else if raw {
                    data.to_vec()
                } else {
                    let mut text = Vec::with_capacity(data.len());
                    escaper.push(data, &mut text);
                    text
                };
                // A closed pipe (`upkeep logs -f | head`) ends the command quietly.
                if out.write_all(&text).and_then(|_| out.flush()).is_err() {
                    return Ok(ExitCode::SUCCESS);
                }
            }
            let mut rest = Vec::new();
            escaper.finish(&mut rest);
            let _ = out.write_all(&rest).and_then(|_| out.flush());
        }
        Command::Report { since, json, md } => {
            let r: upkeep_core::report::Report = client
                .get(ApiPath::new("/api/v1/report").query("since", &since))
                .await?;
            if json {
                print_json(&r)
            } else {
                print!("{}", output::report(&r, md))
            }
        }
        Command::Drill {
            name,
            fault,
            repeat,
            json,
        } => {
            let req = upkeep_core::api::DrillRequest {
                service: name,
                fault: fault.into(),
            };
            let results = drill(&client, &req, repeat, !json).await?;
            if json {
                print_json(&results)
            } else {
                print!("{}", output::drills(&results))
            }
        }
        Command::Jobs { name, limit, json } => {
            let mut path = ApiPath::new("/api/v1/jobs").query("limit", limit);
            if let Some(n) = &name {
                path = path.query("service", n);
            }
            let list: Vec<upkeep_core::job::JobInfo> = client.get(path).await?;
            match (json.json, name, list.first()) {
                (true, _, _) => print_json(&list),
                (false, Some(_), Some(job)) => print!("{}", jobs::detail(job)),
                (false, _, _) => print!("{}", jobs::list(&list)),
            }
        }
        Command::Incidents { name, limit, json } => {
            let mut path = ApiPath::new("/api/v1/incidents").query("limit", limit);
            if let Some(n) = name {
                path = path.query("service", n);
            }
            let list: Vec<upkeep_core::api::Incident> = client.get(path).await?;
            if json.json {
                print_json(&list)
            } else {
                print!("{}", output::incidents(&list))
            }
        }
        Command::Events {
            name,
            limit,
            follow,
            json,
        } => {
            // Subscribed first, so that no event falls between the list and the stream.
            let stream = if follow {
                let path = ApiPath::new("/api/v1/events/stream");
                Some(
                    client
                        .send(hyper::Method::GET, path, None)
                        .await?
                        .into_body(),
                )
            } else {
                None
            };
            let mut path = ApiPath::new("/api/v1/events").query("limit", limit);
            if let Some(n) = &name {
                path = path.query("service", n);
            }
            let mut list: Vec<upkeep_core::api::StoredEvent> = client.get(path).await?;
            if json.json && stream.is_none() {
                print_json(&list)
            } else if json.json {
                list.reverse();
                for e in &list {
                    println!("{}", serde_json::to_string(e)?);
                }
            } else {
                print!("{}", output::events(&list))
            }
            if let Some(body) = stream {
                let last = list.iter().map(|e| e.id).max().unwrap_or(0);
                follow_events(body, name.as_ref(), last, json.json).await?;
            }
        }
        Command::Maint { cmd } => windows::run(&client, *cmd).await?,
        Command::Notify { cmd } => notify::run(&client, cmd).await?,
        Command::Subscribers { cmd } => subscribers::run(&client, cmd).await?,
        Command::User { cmd } => users::run(&client, cmd).await?,
        Command::Feedback { limit, json } => feedback::run(&client, limit, json.json).await?,
        Command::Incident { cmd: Some(cmd), .. } => incidents::run(&client, cmd).await?,
        Command::Incident { id: None, .. } => {
            return Err(Usage(
                "say which incident (`upkeep incident 42`) or what to do (`upkeep incident update 42 --status identified \"...\"`)".into(),
            )
            .into());
        }
        Command::Incident {
            id: Some(id), json, ..
        } => {
            let d: upkeep_core::api::IncidentDetail = client
                .get(ApiPath::new("/api/v1/incidents").segment(id.to_string()))
                .await
                .map_err(incidents::refused)?;
            if json.json {
                print_json(&d)
            } else {
                print!("{}", output::incident_detail(&d))
            }
        }
        Command::Maintenance {
            name,
            duration,
            reason,
            end,
        } => {
            let path = ApiPath::new("/api/v1/services")
                .segment(&name)
                .segment("maintenance");
            if end {
                let r: ActionResult = client.delete(path).await?;
                let by = by_whom(r.by.as_ref());
                println!("{}{by}", tr(Msg::MaintenanceEnded, &[&name]));
            } else {
                // Checked here for a usage error without a round trip; the daemon adds it to
                // its own clock's now (see `MaintenanceRequest::lasting`).
                if let Some(d) = &duration
                    && upkeep_core::duration::parse(d).is_none_or(|s| s.is_zero())
                {
                    return Err(Usage(format!(
                        "`--for {d}` is not a duration longer than 0 (try 30m, 2h, 1h30m or 1d)"
                    ))
                    .into());
                }
                let timed = duration.is_some();
                let req = upkeep_core::api::MaintenanceRequest {
                    reason,
                    until: None,
                    lasting: duration,
                };
                let r: ActionResult = client.post(path, Some(&req)).await?;
                let by = by_whom(r.by.as_ref());
                // When it ends, as the daemon set it.
                let until = if timed {
                    let d: upkeep_core::api::ServiceDetail = client
                        .get(ApiPath::new("/api/v1/services").segment(&name))
                        .await?;
                    d.info.status.maintenance.and_then(|m| m.until)
                } else {
                    None
                };
                let msg = match until {
                    Some(u) => tr(
                        Msg::InMaintenanceUntil,
                        &[&name, &u.strftime("%Y-%m-%d %H:%M:%S UTC").to_string()],
                    ),
                    None => tr(Msg::InMaintenanceNow, &[&name, &name]),
                };
                println!("{msg}{by}");
            }
        }
        Command::Reload {
            name: Some(name),
            json,
        } => signal::reload(&client, &name, json.json).await?,
        Command::Reload { name: None, json } => {
            let r: ReloadResult = client.post("/api/v1/reload", None::<&()>).await?;
            print_reload(&r, json.json);
        }
        Command::Signal {
            name,
            signal: sig,
            group,
            json,
        } => signal::signal(&client, &name, sig, group, json.json).await?,
        Command::Upgrade { binary } => return lifecycle::upgrade(&client, binary).await,
        Command::Add {
            name,
            cwd,
            restart,
            command,
        } => {
            let cwd = cwd
                .map(std::path::absolute)
                .transpose()?
                .map(|p| p.display().to_string());
            let req = AddService {
                name: name.clone(),
                command,
                cwd,
                restart,
            };
            let _: ReloadResult = client.post("/api/v1/services", Some(&req)).await?;
            let health: upkeep_core::api::Health = client.get("/api/v1/daemon").await?;
            println!(
                "{}",
                tr(Msg::Added, &[&name, &escape::field(&health.config_path)])
            );
        }
        Command::Daemon
        | Command::Up
        | Command::Down
        | Command::Check(_)
        | Command::HandoverCheck { .. }
        | Command::Startup { .. }
        | Command::Export { .. }
        | Command::Token { .. }
        | Command::Import { .. }
        | Command::Store { .. }
        | Command::Top
        | Command::Completions { .. }
        | Command::Man { .. } => {
            unreachable!("handled without a client")
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Runs `repeat` drills one after the other, with a spinner on a terminal.
async fn drill(
    client: &Client,
    req: &upkeep_core::api::DrillRequest,
    repeat: u32,
    progress: bool,
) -> Result<Vec<upkeep_core::api::DrillResult>> {
    let bar = if progress && std::io::IsTerminal::is_terminal(&std::io::stderr()) {
        indicatif::ProgressBar::new(repeat as u64)
    } else {
        indicatif::ProgressBar::hidden()
    };
    bar.set_style(
        indicatif::ProgressStyle::with_template("{spinner} drill {pos}/{len} {msg} [{elapsed}]")
            .expect("the template is valid"),
    );
    bar.enable_steady_tick(std::time::Duration::from_millis(100));
    let mut results = Vec::new();
    for i in 0..repeat {
        bar.set_message(format!(
            "{} on {}: waiting for detection and recovery",
            req.fault.as_str(),
            req.service
        ));
        let r: upkeep_core::api::DrillResult = client.post("/api/v1/drills", Some(req)).await?;
        bar.println(format!(
            "  run {}: detected in {} ms, recovered in {} ms ({})",
            i + 1,
            r.detected_ms,
            r.recovered_ms,
            escape::field(&r.detected_by)
        ));
        results.push(r);
        bar.inc(1);
    }
    bar.finish_and_clear();
    Ok(results)
}

async fn act(
    client: &Client,
    target: &Target,
    action: &'static str,
    done: Msg,
) -> Result<ActionResult> {
    let path = ApiPath::new("/api/v1/services")
        .segment(target.as_str())
        .segment(action);
    let r: ActionResult = client.post(path, None::<&()>).await?;
    let by = by_whom(r.by.as_ref());
    for s in &r.services {
        match r.waiting.iter().find(|w| &w.name == s) {
            Some(w) => {
                println!("{s}: {}{by}", tr(Msg::StartWaits, &[&w.reason]));
                for d in &w.stopped {
                    println!("  {}", tr(Msg::StartWaitsStopped, &[d, d]));
                }
            }
            None => println!("{s}: {}{by}", tr(done, &[])),
        }
    }
    for j in &r.still_running {
        let since = j.since.map_or("-".into(), |t| {
            t.to_zoned(jiff::tz::TimeZone::system())
                .strftime("%H:%M:%S")
                .to_string()
        });
        println!("{}: {}", j.name, tr(Msg::JobStillRunning, &[&since]));
    }
    Ok(r)
}

/// ` (by alice (socket, uid 1000))` after an action's answer, or nothing from an older daemon.
fn by_whom(by: Option<&upkeep_core::Principal>) -> String {
    by.map_or(String::new(), |p| {
        format!(" ({})", tr(Msg::ByWhom, &[&escape::field(&p.to_string())]))
    })
}

/// `upkeep token ...`: edits `<data_dir>/tokens.json`, with or without a daemon.
/// `upkeep store copy`: with the daemon stopped (its lock held here meanwhile), this node's
/// SQLite history into a PostgreSQL database.
fn store(g: &Global, cmd: StoreCmd) -> Result<ExitCode> {
    let StoreCmd::Copy {
        to,
        password_env,
        password_file,
    } = cmd;
    let url: url::Url = to
        .parse()
        .map_err(|e| Usage(format!("--to `{}` is not a URL: {e}", escape::field(&to))))?;
    if !matches!(url.scheme(), "postgres" | "postgresql") {
        return Err(Usage(format!(
            "--to must be a postgres:// URL, not {}://",
            url.scheme()
        ))
        .into());
    }
    if upkeep_config::secret_in_url(&url) {
        // Never repeated: a command line is seen by every user of the host (ps).
        return Err(Usage(
            "--to holds a password: put it in PGPASSWORD, --password-env or --password-file".into(),
        )
        .into());
    }
    let password = match (password_env, password_file) {
        (Some(var), _) => Some(upkeep_config::SecretSource::Env(var)),
        (None, Some(file)) => Some(upkeep_config::SecretSource::File(file)),
        (None, None) => None,
    }
    .map(|s| s.read().map_err(anyhow::Error::msg))
    .transpose()?;
    let config = g.load_config()?;
    let data_dir = &config.daemon.data_dir;
    let db = data_dir.join("upkeep.db");
    if !db.exists() {
        anyhow::bail!(
            "there is no history to copy: {} does not exist",
            db.display()
        );
    }
    // Held until the copy is done: no daemon starts and writes meanwhile.
    let _lock = crate::daemon::lock_data_dir(data_dir)
        .context("the daemon must be stopped while its history is copied (`upkeep down`)")?;
    let node = crate::daemon::node(&config, &crate::daemon::node_id(data_dir)?);
    let target = upkeep_store::Location::Postgres(upkeep_store::PgLocation {
        url: url.clone(),
        password,
    });
    let copied = runtime()?.block_on(async {
        let from = upkeep_store::open(&upkeep_store::Location::Sqlite(db.clone()), &node)
            .await
            .with_context(|| format!("opening {}", db.display()))?;
        let into = upkeep_store::open(&target, &node)
            .await
            .with_context(|| format!("opening {url}"))?;
        anyhow::Ok(from.copy_into(&into).await?)
    })?;
    println!(
        "{}",
        tr(
            Msg::StoreCopied,
            &[
                &copied.events,
                &copied.incidents,
                &copied.updates,
                &copied.revisions,
                &copied.services,
                &copied.windows,
                &copied.rollups,
                &copied.subscribers,
                &copied.feedback,
                &copied.users,
                &copied.notices,
                &url,
                &url,
            ]
        )
    );
    Ok(ExitCode::SUCCESS)
}

fn token(g: &Global, cmd: TokenCmd) -> Result<ExitCode> {
    let data_dir = g.data_dir()?;
    match cmd {
        TokenCmd::Create { name, scope, json } => {
            let scope = upkeep_core::api::Scope::from(scope);
            let secret = crate::tokens::create(&data_dir, name.clone(), scope)?;
            if json {
                print_json(&serde_json::json!({
                    "name": name, "scope": scope, "secret": secret
                }));
            } else {
                println!("{}", tr(Msg::TokenCreated, &[&name, &scope.as_str()]));
                println!("\n    {secret}\n");
                println!("{}", tr(Msg::TokenUse, &[]));
            }
        }
        TokenCmd::Ls(f) => {
            let list = crate::tokens::load(&crate::tokens::path(&data_dir))?;
            if f.json {
                // Names, scopes and times: the hashes stay in the file.
                let rows: Vec<_> = list
                    .iter()
                    .map(|t| serde_json::json!({ "name": t.name, "scope": t.scope, "created": t.created }))
                    .collect();
                print_json(&rows)
            } else {
                print!("{}", output::tokens(&list))
            }
        }
        TokenCmd::Revoke { name } => {
            crate::tokens::revoke(&data_dir, &name)?;
            println!("{}", tr(Msg::TokenRevoked, &[&name]));
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn print_reload(r: &ReloadResult, json: bool) {
    if json {
        return print_json(r);
    }
    let (a, rm, c, u) = (
        r.added.len(),
        r.removed.len(),
        r.changed.len(),
        r.unchanged.len(),
    );
    println!(
        "{}{}",
        tr(Msg::Reloaded, &[&r.revision, &a, &rm, &c, &u]),
        by_whom(r.by.as_ref())
    );
    if !r.restart_needed.is_empty() {
        let keys = escape::field(&r.restart_needed.join(", ")).into_owned();
        println!("{}", tr(Msg::ReloadNeedsRestart, &[&keys]));
    }
    for w in &r.warnings {
        eprintln!("warning: {}", escape::field(w));
    }
}

fn check(g: &Global, json: bool) -> Result<ExitCode> {
    let path = g.config_path();
    match upkeep_config::load(&path) {
        Ok(c) => {
            // Served as it is, but said: a certificate out of its dates.
            let warnings = c.warnings(jiff::Timestamp::now());
            if json {
                let names: Vec<_> = c.services.keys().collect();
                print_json(
                    &serde_json::json!({ "ok": true, "path": path, "services": names, "warnings": warnings }),
                );
            } else {
                for w in &warnings {
                    eprintln!("warning: {}", escape::field(w));
                }
                println!(
                    "{}",
                    tr(Msg::ConfigOk, &[&path.display(), &c.services.len()])
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        Err(e) if json => {
            let problems: Vec<_> = e
                .problems()
                .iter()
                .map(|p| serde_json::json!({ "line": p.line, "column": p.column, "key": p.key, "message": p.message, "hint": p.hint }))
                .collect();
            print_json(
                &serde_json::json!({ "ok": false, "path": path, "error": e.to_string(), "problems": problems }),
            );
            Ok(ExitCode::from(2))
        }
        Err(e) => Err(e.into()),
    }
}

fn startup(g: &Global, user: bool, install: bool) -> Result<ExitCode> {
    let config = g.load_config()?;
    let exe = std::env::current_exe().context("finding the upkeep binary")?;
    let unit = crate::systemd::daemon_unit(&exe, &config, user)?;
    if !install {
        print!("{unit}");
        return Ok(ExitCode::SUCCESS);
    }
    let dir = if user {
        let home = std::env::var_os("HOME").context("HOME is not set")?;
        PathBuf::from(home).join(".config/systemd/user")
    } else {
        PathBuf::from("/etc/systemd/system")
    };
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let path = dir.join("upkeep.service");
    write_private(&path, &unit)?;
    let sc = if user {
        "systemctl --user"
    } else {
        "systemctl"
    };
    println!(
        "wrote {}\nnow run: {sc} daemon-reload && {sc} enable --now upkeep",
        path.display()
    );
    Ok(ExitCode::SUCCESS)
}

fn export_systemd(g: &Global, name: &ServiceName, output: Option<PathBuf>) -> Result<ExitCode> {
    let config = g.load_config()?;
    let Some(svc) = config.services.get(name) else {
        bail!("no service named `{name}` in {}", config.path.display());
    };
    let Some(svc) = &svc.managed else {
        bail!("service `{name}` is external (probes only): there is no command for systemd to run");
    };
    let unit = crate::systemd::service_unit(name, svc)?;
    match output {
        Some(p) => write_private(&p, &unit)?,
        None => print!("{unit}"),
    }
    Ok(ExitCode::SUCCESS)
}

/// Writes a unit file only its owner can read (mode 0600): an exported unit holds the
/// service's `env` and `env_file` values, API keys among them (issue 14, D17). A file that
/// exists is made private before anything is written into it; something that is not a
/// regular file (`-o /dev/stdout`) is written as it is.
fn write_private(path: &Path, contents: &str) -> Result<()> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        // Only once private (`set_len` below): a file that cannot be made so is left as it was.
        .truncate(false)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("writing {}", path.display()))?;
    let is_file = f
        .metadata()
        .with_context(|| format!("writing {}", path.display()))?
        .is_file();
    if is_file {
        f.set_permissions(std::fs::Permissions::from_mode(0o600))
            .and_then(|()| f.set_len(0))
            .with_context(|| format!("making {} private (mode 0600)", path.display()))?;
    }
    f.write_all(contents.as_bytes())
        .with_context(|| format!("writing {}", path.display()))
}

#[cfg(test)]
mod tests {
    #[test]
    fn finds_data_dir_in_a_broken_file() {
        assert_eq!(
            super::data_dir_line("[daemon\n  data_dir = \"/x y\" # c\nbogus ="),
            Some("/x y".into())
        );
        assert_eq!(super::data_dir_line("data_dirs = 1"), None);
    }

    /// Break-it, session 12: `upkeep jobs NAME -n 0` said "no runs yet" of a job with runs.
    #[test]
    fn a_list_of_no_runs_or_incidents_is_refused() {
        use clap::Parser;
        for cmd in ["jobs", "incidents"] {
            assert!(super::Cli::try_parse_from(["upkeep", cmd, "-n", "0"]).is_err());
            assert!(super::Cli::try_parse_from(["upkeep", cmd, "-n", "1"]).is_ok());
        }
    }
}
