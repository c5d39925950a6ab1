//! `upkeep incident VERB ...`: what people write to incidents (issue 16), a thin client of
//! the incident write routes: `open --service S --title T`, `update ID --status S "message"`,
//! `resolve ID ["message"]`, `priority ID P1`, `postmortem ID --file pm.toml|pm.json`, and
//! `show ID` (also `upkeep incident ID`, as scripts have it). Checks are the daemon's; the
//! post-mortem file is read and checked here first, so a mistake names the file.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use clap::Subcommand;
use upkeep_core::ServiceName;
use upkeep_core::api::IncidentDetail;
use upkeep_core::i18n::{Lang, Msg, tr};
use upkeep_core::incident::{
    IncidentNotes, IncidentPriority, IncidentStatus, OpenRequest, Postmortem, PriorityRequest,
    ResolveRequest, UpdateRequest,
};

use super::client::{ApiPath, Client, ClientError};
use super::escape::field as esc;
use super::{JsonFlag, Usage, print_json};

#[derive(Subcommand, Debug)]
pub(super) enum IncidentCmd {
    /// One incident: its timeline, updates and post-mortem (also `upkeep incident ID`)
    Show {
        id: i64,
        #[command(flatten)]
        json: JsonFlag,
    },
    /// Open an incident the probes did not see (a third party is down)
    Open {
        #[arg(long)]
        service: ServiceName,
        #[arg(long)]
        title: String,
        /// P1 (most urgent) to P4; default: the service's `priority`, else P3
        #[arg(long, value_parser = priority)]
        priority: Option<IncidentPriority>,
        /// A first update (status investigating)
        #[arg(long)]
        message: Option<String>,
        #[command(flatten)]
        json: JsonFlag,
    },
    /// Write an update: it goes out as a notice and shows on the status page
    Update {
        id: i64,
        #[arg(long, value_parser = status)]
        status: IncidentStatus,
        message: String,
        #[command(flatten)]
        json: JsonFlag,
    },
    /// Resolve an incident by hand, with an optional last word
    Resolve {
        id: i64,
        message: Option<String>,
        #[command(flatten)]
        json: JsonFlag,
    },
    /// Set an incident's priority (P1 to P4): its next notices route by it
    Priority {
        id: i64,
        #[arg(value_parser = priority)]
        priority: IncidentPriority,
        #[command(flatten)]
        json: JsonFlag,
    },
    /// Write the post-mortem (summary, root_cause, five whys, actions) from a TOML or JSON file
    Postmortem {
        id: i64,
        #[arg(long)]
        file: PathBuf,
        #[command(flatten)]
        json: JsonFlag,
    },
}

fn status(s: &str) -> Result<IncidentStatus, String> {
    IncidentStatus::parse(s).ok_or_else(|| {
        format!("`{s}` is not a status: use investigating, identified, monitoring or resolved")
    })
}

fn priority(s: &str) -> Result<IncidentPriority, String> {
    IncidentPriority::parse(s).ok_or_else(|| format!("`{s}` is not a priority: use P1 to P4"))
}

fn incident_path(id: i64) -> ApiPath {
    ApiPath::new("/api/v1/incidents").segment(id.to_string())
}

/// The daemon's "no such incident" (404) or "it is resolved" (409): the command was well
/// formed and the operation failed, so it exits 1 as the README says, not 2 (usage). Carries
/// the answer without the `ClientError` in its chain, which would count as a usage error.
#[derive(Debug, thiserror::Error)]
#[error("{}", .0.error)]
pub(super) struct Refused(pub(super) upkeep_core::api::ErrorBody);

pub(super) fn refused(e: ClientError) -> anyhow::Error {
    match e {
        ClientError::Api {
            status: hyper::StatusCode::NOT_FOUND | hyper::StatusCode::CONFLICT,
            body,
        } => Refused(body).into(),
        other => other.into(),
    }
}

pub(super) async fn run(client: &Client, cmd: IncidentCmd) -> Result<()> {
    let (d, json): (IncidentDetail, bool) = match cmd {
        IncidentCmd::Show { id, json } => (
            client.get(incident_path(id)).await.map_err(refused)?,
            json.json,
        ),
        IncidentCmd::Open {
            service,
            title,
            priority,
            message,
            json,
        } => {
            let req = OpenRequest {
                service,
                title,
                priority,
                message,
            };
            (
                client
                    .post("/api/v1/incidents", Some(&req))
                    .await
                    .map_err(refused)?,
                json.json,
            )
        }
        IncidentCmd::Update {
            id,
            status,
            message,
            json,
        } => {
            let req = UpdateRequest { status, message };
            (
                client
                    .post(incident_path(id).segment("updates"), Some(&req))
                    .await
                    .map_err(refused)?,
                json.json,
            )
        }
        IncidentCmd::Resolve { id, message, json } => {
            let req = ResolveRequest { message };
            (
                client
                    .post(incident_path(id).segment("resolve"), Some(&req))
                    .await
                    .map_err(refused)?,
                json.json,
            )
        }
        IncidentCmd::Priority { id, priority, json } => {
            let req = PriorityRequest { priority };
            (
                client
                    .put(incident_path(id).segment("priority"), Some(&req))
                    .await
                    .map_err(refused)?,
                json.json,
            )
        }
        IncidentCmd::Postmortem { id, file, json } => {
            let pm = read_postmortem(&file)?;
            (
                client
                    .put(incident_path(id).segment("postmortem"), Some(&pm))
                    .await
                    .map_err(refused)?,
                json.json,
            )
        }
    };
    if json {
        print_json(&d);
    } else {
        print!("{}", super::output::incident_detail(&d));
    }
    Ok(())
}

/// The most of a post-mortem file read: what the control socket takes in one request.
const MAX_POSTMORTEM: usize = upkeep_web::Limits::CONTROL.max_body_bytes;

/// A post-mortem file's text: a regular file (a FIFO or a device is refused, not waited on or
/// read without end) of at most [`MAX_POSTMORTEM`] bytes, read no further than that.
fn read_bounded(file: &Path) -> Result<String> {
    use std::io::Read;
    use std::os::unix::fs::OpenOptionsExt;
    let shown = file.display().to_string();
    // Non-blocking open: a FIFO with no writer would otherwise hang the open itself.
    let f = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(file)
        .with_context(|| format!("reading the post-mortem {shown}"))?;
    let meta = f
        .metadata()
        .with_context(|| format!("reading the post-mortem {shown}"))?;
    if !meta.is_file() {
        return Err(Usage(tr(Msg::PostmortemNotFile, &[&shown])).into());
    }
    let mut bytes = Vec::new();
    (&f).take(MAX_POSTMORTEM as u64 + 1)
        .read_to_end(&mut bytes)
        .with_context(|| format!("reading the post-mortem {shown}"))?;
    if bytes.len() > MAX_POSTMORTEM {
        return Err(Usage(tr(Msg::PostmortemTooBig, &[&shown, &MAX_POSTMORTEM])).into());
    }
    String::from_utf8(bytes)
        .map_err(|_| Usage(format!("the post-mortem {shown} is not UTF-8 text")).into())
}

/// A post-mortem file: JSON if it ends in `.json`, TOML otherwise; checked whole.
fn read_postmortem(file: &Path) -> Result<Postmortem> {
    let text = read_bounded(file)?;
    let pm: Postmortem = if file.extension().is_some_and(|e| e == "json") {
        serde_json::from_str(&text).map_err(|e| {
            Usage(format!(
                "{}:{}:{}: {e}",
                file.display(),
                e.line(),
                e.column()
            ))
        })?
    } else {
        toml::from_str(&text).map_err(|e| {
            let at = e
                .span()
                .map(|s| {
                    let before = &text[..s.start.min(text.len())];
                    let line = before.matches('\n').count() + 1;
                    let column = before.len() - before.rfind('\n').map_or(0, |i| i + 1) + 1;
                    format!(":{line}:{column}")
                })
                .unwrap_or_default();
            Usage(format!("{}{at}: {}", file.display(), e.message()))
        })?
    };
    let problems = pm.check();
    if !problems.is_empty() {
        return Err(Usage(format!("{}: {}", file.display(), problems.join("; "))).into());
    }
    Ok(pm)
}

/// What people wrote, for `upkeep incident show`: title, priority, who opened and resolved
/// it, the updates and the post-mortem. Empty when nobody wrote anything.
pub(super) fn notes_text(n: &IncidentNotes) -> String {
    let zh = Lang::current() == Lang::ZhCn;
    let w = |en: &'static str, cn: &'static str| if zh { cn } else { en };
    let mut out = String::new();
    if let Some(t) = &n.title {
        out.push_str(&format!("{}: {}\n", w("Title", "标题"), esc(t)));
    }
    if let Some(p) = n.priority {
        out.push_str(&format!("{}: {p}\n", w("Priority", "优先级")));
    }
    if let Some(p) = &n.opened_by {
        out.push_str(&format!(
            "{}: {}\n",
            w("Opened by", "开启者"),
            esc(&p.to_string())
        ));
    }
    if let Some(p) = &n.resolved_by {
        out.push_str(&format!(
            "{}: {}\n",
            w("Resolved by", "解决者"),
            esc(&p.to_string())
        ));
    }
    if !n.updates.is_empty() {
        out.push_str(&format!("\n{}:\n", w("Updates", "进展")));
        for u in &n.updates {
            out.push_str(&format!(
                "  {}  {}  {}  ({})\n",
                u.at.strftime("%Y-%m-%d %H:%M:%S"),
                u.status,
                esc(&u.message),
                esc(&u.by.name)
            ));
        }
    }
    if let Some(pm) = &n.postmortem {
        let p = &pm.postmortem;
        out.push_str(&format!(
            "\n{} ({} {}):\n  {}: {}\n  {}: {}\n  {}:\n",
            w("Post-mortem", "事后复盘"),
            esc(&pm.by.name),
            pm.at.strftime("%Y-%m-%d %H:%M"),
            w("Summary", "概要"),
            esc(&p.summary),
            w("Root cause", "根本原因"),
            esc(&p.root_cause),
            w("Five whys", "五个为什么"),
        ));
        for (i, why) in p.whys.iter().enumerate() {
            out.push_str(&format!("    {}. {}\n", i + 1, esc(why)));
        }
        if !p.actions.is_empty() {
            out.push_str(&format!("  {}:\n", w("Actions", "改进措施")));
            for a in &p.actions {
                out.push_str(&format!("    - {}\n", esc(a)));
            }
        }
    }
    out
}
