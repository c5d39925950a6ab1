//! `upkeep maint ...`: maintenance windows from the command line, a thin client of
//! `/api/v1/windows`. Times are read as RFC 3339 with an offset (`2026-12-01T02:00:00+08:00`),
//! or as a wall time (`2026-12-01 02:00`) in `--tz` (default: this machine's zone), and
//! shown in the reader's zone (`--tz`, or this machine's).

use anyhow::Result;
use clap::{Args, Subcommand};
use comfy_table::Table;
use comfy_table::presets::NOTHING;
use jiff::Timestamp;
use jiff::tz::TimeZone;
use upkeep_core::ServiceName;
use upkeep_core::i18n::{Msg, tr};
use upkeep_core::window::{
    AffectedService, ExtendRequest, Impact, Priority, Step, Window, WindowKind, WindowRequest,
    WindowSpec,
};

use super::client::{ApiPath, Client};
use super::{JsonFlag, Usage, escape, print_json};

#[derive(Subcommand, Debug)]
pub(super) enum MaintCmd {
    /// Schedule a window: announced at once, reminded 24 h and 1 h before
    Add {
        #[command(flatten)]
        spec: SpecArgs,
        #[command(flatten)]
        force: Force,
        #[command(flatten)]
        json: JsonFlag,
    },
    /// Windows to come and under way (--all: also past and cancelled ones)
    Ls {
        #[arg(long)]
        all: bool,
        /// Show times in this IANA zone (default: this machine's)
        #[arg(long)]
        tz: Option<String>,
        #[command(flatten)]
        json: JsonFlag,
    },
    /// One window: every field and every step of its life
    Show {
        id: i64,
        #[arg(long)]
        tz: Option<String>,
        #[command(flatten)]
        json: JsonFlag,
    },
    /// Change a scheduled window (only what you give changes)
    Edit {
        id: i64,
        #[command(flatten)]
        spec: SpecArgs,
        #[command(flatten)]
        force: Force,
        #[command(flatten)]
        json: JsonFlag,
    },
    /// Call a window off (its services leave maintenance if it is under way)
    Cancel { id: i64 },
    /// Start the next occurrence now
    Start { id: i64 },
    /// The work is done: its services leave maintenance
    Finish { id: i64 },
    /// Move the expected end: --until TIME, or --by DURATION from the current end
    Extend {
        id: i64,
        #[arg(long, conflicts_with = "by")]
        until: Option<String>,
        #[arg(long)]
        by: Option<String>,
        #[arg(long)]
        tz: Option<String>,
    },
}

#[derive(Args, Debug, Default)]
pub(super) struct SpecArgs {
    /// maintenance | upgrade | repair | expansion | emergency
    #[arg(long)]
    kind: Option<String>,
    #[arg(long)]
    title: Option<String>,
    /// Why the work is done
    #[arg(long)]
    reason: Option<String>,
    /// When it starts: RFC 3339 with an offset, or a wall time in --tz
    #[arg(long)]
    start: Option<String>,
    /// When it should be over (or --for)
    #[arg(long, conflicts_with = "length")]
    end: Option<String>,
    /// How long it should take, e.g. 2h
    #[arg(long = "for", value_name = "DURATION")]
    length: Option<String>,
    /// The IANA zone of wall times and of the repeat rule, e.g. Asia/Shanghai
    #[arg(long)]
    tz: Option<String>,
    /// An RFC 5545 recurrence rule, e.g. "FREQ=WEEKLY;BYDAY=SU"
    #[arg(long)]
    repeat: Option<String>,
    /// The services it affects, comma-separated
    #[arg(long, value_delimiter = ',')]
    services: Vec<ServiceName>,
    /// outage | degraded (for every service named)
    #[arg(long)]
    impact: Option<String>,
    /// What people can use meanwhile
    #[arg(long)]
    alternative: Option<String>,
    /// Where people get news and help
    #[arg(long = "follow-up")]
    follow_up: Option<String>,
    /// emergency | important | routine
    #[arg(long)]
    priority: Option<String>,
}

#[derive(Args, Debug)]
pub(super) struct Force {
    /// Schedule it even though it breaks the lead-time policy (needs --why)
    #[arg(long, requires = "why")]
    force: bool,
    /// Why it cannot give the notice the policy asks (recorded with your name)
    #[arg(long, requires = "force")]
    why: Option<String>,
}

fn usage(message: String) -> anyhow::Error {
    Usage(message).into()
}

/// The reader's zone: `--tz`, or this machine's.
fn zone(tz: Option<&str>) -> Result<TimeZone> {
    match tz {
        Some(name) => TimeZone::get(name).map_err(|_| {
            usage(format!(
                "`{name}` is not a time zone (write an IANA name such as Asia/Shanghai)"
            ))
        }),
        None => Ok(TimeZone::system()),
    }
}

fn zone_name(tz: &TimeZone) -> String {
    tz.iana_name().unwrap_or("UTC").to_owned()
}

/// A time as people type it: with an offset or Z, that instant; else a wall time in `tz`
/// (read as the admin pages' window form reads it: `upkeep_core::when`).
fn parse_time(text: &str, tz: &TimeZone) -> Result<Timestamp> {
    upkeep_core::when::parse_time(text, tz).map_err(|e| usage(e.to_string()))
}

fn duration(text: &str) -> Result<jiff::SignedDuration> {
    upkeep_core::duration::parse(text)
        .filter(|d| !d.is_zero())
        .and_then(|d| jiff::SignedDuration::try_from(d).ok())
        .ok_or_else(|| usage(format!("`{text}` is not a duration (try 2h, 30m, 1d)")))
}

fn pick<T: Copy>(text: &str, what: &str, all: &[(&str, T)]) -> Result<T> {
    all.iter()
        .find(|(n, _)| *n == text)
        .map(|(_, v)| *v)
        .ok_or_else(|| {
            let names: Vec<&str> = all.iter().map(|(n, _)| *n).collect();
            usage(format!("{what} `{text}`: use {}", names.join(", ")))
        })
}

impl SpecArgs {
    /// The spec: these arguments over `base` (an edit) or over nothing (an add, where the
    /// title, start, end and services are required).
    fn spec(self, base: Option<WindowSpec>) -> Result<WindowSpec> {
        let tz = match (&self.tz, &base) {
            (Some(name), _) => zone(Some(name))?,
            (None, Some(b)) => zone(Some(&b.tz))?,
            (None, None) => TimeZone::system(),
        };
        let need = |what: &str| usage(format!("--{what} is required"));
        let kind = match &self.kind {
            Some(k) => pick(k, "kind", &WindowKind::ALL.map(|k| (k.as_str(), k)))?,
            None => base.as_ref().map_or(WindowKind::Maintenance, |b| b.kind),
        };
        let start = match &self.start {
            Some(s) => parse_time(s, &tz)?,
            None => base
                .as_ref()
                .map(|b| b.start)
                .ok_or_else(|| need("start"))?,
        };
        let end = match (&self.end, &self.length) {
            (Some(e), _) => parse_time(e, &tz)?,
            (None, Some(d)) => start
                .checked_add(duration(d)?)
                .map_err(|e| usage(format!("--for {d}: {e}")))?,
            (None, None) => match &base {
                // An edit that moves the start keeps the length.
                Some(b) => start
                    .checked_add(b.end.duration_since(b.start))
                    .map_err(|e| usage(e.to_string()))?,
                None => return Err(usage("--end or --for is required".into())),
            },
        };
        let impact = match &self.impact {
            Some(i) => Some(pick(
                i,
                "impact",
                &[("outage", Impact::Outage), ("degraded", Impact::Degraded)],
            )?),
            None => None,
        };
        let services = if self.services.is_empty() {
            let mut s = base
                .as_ref()
                .map(|b| b.services.clone())
                .unwrap_or_default();
            if let Some(i) = impact {
                s.iter_mut().for_each(|a| a.impact = i);
            }
            s
        } else {
            self.services
                .into_iter()
                .map(|service| AffectedService {
                    service,
                    impact: impact.unwrap_or(Impact::Outage),
                })
                .collect()
        };
        let priority = match &self.priority {
            Some(p) => Some(pick(
                p,
                "priority",
                &[
                    ("emergency", Priority::Emergency),
                    ("important", Priority::Important),
                    ("routine", Priority::Routine),
                ],
            )?),
            None => base.as_ref().and_then(|b| b.priority),
        };
        let text = |new: Option<String>, old: Option<&String>| {
            new.or_else(|| old.cloned()).unwrap_or_default()
        };
        Ok(WindowSpec {
            kind,
            title: match self.title {
                Some(t) => t,
                None => base
                    .as_ref()
                    .map(|b| b.title.clone())
                    .ok_or_else(|| need("title"))?,
            },
            reason: text(self.reason, base.as_ref().map(|b| &b.reason)),
            start,
            end,
            tz: zone_name(&tz),
            repeat: self
                .repeat
                .or_else(|| base.as_ref().and_then(|b| b.repeat.clone())),
            services,
            alternative: text(self.alternative, base.as_ref().map(|b| &b.alternative)),
            follow_up: text(self.follow_up, base.as_ref().map(|b| &b.follow_up)),
            priority,
        })
    }
}

fn path(id: i64) -> ApiPath {
    ApiPath::new("/api/v1/windows").segment(id.to_string())
}

/// When window `id`'s current occurrence ends (for `upkeep status` of a service in it);
/// None if the daemon cannot say (the store away, the window gone).
pub(super) async fn occurrence_end(client: &Client, id: i64) -> Option<Timestamp> {
    let w: Window = client.get(path(id)).await.ok()?;
    w.current.map(|o| o.end)
}

pub(super) async fn run(client: &Client, cmd: MaintCmd) -> Result<()> {
    match cmd {
        MaintCmd::Add { spec, force, json } => {
            let req = WindowRequest {
                spec: spec.spec(None)?,
                force_why: force.why,
            };
            let w: Window = client.post("/api/v1/windows", Some(&req)).await?;
            done(&w, json.json, Msg::WindowScheduled)
        }
        MaintCmd::Ls { all, tz, json } => {
            let path = ApiPath::new("/api/v1/windows").query("all", all);
            let ws: Vec<Window> = client.get(path).await?;
            if json.json {
                print_json(&ws);
            } else {
                print!("{}", list(&ws, &zone(tz.as_deref())?));
            }
            Ok(())
        }
        MaintCmd::Show { id, tz, json } => {
            let w: Window = client.get(path(id)).await?;
            if json.json {
                print_json(&w);
            } else {
                print!("{}", detail(&w, &zone(tz.as_deref())?));
            }
            Ok(())
        }
        MaintCmd::Edit {
            id,
            spec,
            force,
            json,
        } => {
            let w: Window = client.get(path(id)).await?;
            let req = WindowRequest {
                spec: spec.spec(Some(w.spec))?,
                force_why: force.why,
            };
            let body = serde_json::to_vec(&req)?;
            let resp = client
                .send(hyper::Method::PUT, path(id), Some(body))
                .await?;
            let bytes = http_body_util::BodyExt::collect(resp.into_body())
                .await?
                .to_bytes();
            let w: Window = serde_json::from_slice(&bytes)?;
            done(&w, json.json, Msg::WindowDone)
        }
        MaintCmd::Cancel { id } => act(client, id, "cancel", None).await,
        MaintCmd::Start { id } => act(client, id, "start", None).await,
        MaintCmd::Finish { id } => act(client, id, "finish", None).await,
        MaintCmd::Extend { id, until, by, tz } => {
            let until = match (until, by) {
                (Some(u), _) => {
                    let w: Window = client.get(path(id)).await?;
                    parse_time(&u, &zone(tz.as_deref().or(Some(&w.spec.tz)))?)?
                }
                (None, Some(d)) => {
                    let w: Window = client.get(path(id)).await?;
                    let end = w.current.map_or(w.spec.end, |o| o.end);
                    end.checked_add(duration(&d)?)
                        .map_err(|e| usage(e.to_string()))?
                }
                (None, None) => return Err(usage("--until TIME or --by DURATION".into())),
            };
            act(client, id, "extend", Some(ExtendRequest { until })).await
        }
    }
}

async fn act(client: &Client, id: i64, action: &str, body: Option<ExtendRequest>) -> Result<()> {
    let w: Window = client.post(path(id).segment(action), body.as_ref()).await?;
    done(&w, false, Msg::WindowDone)
}

fn done(w: &Window, json: bool, msg: Msg) -> Result<()> {
    // Told whatever the output: the text goes out as written.
    for n in &w.names_hidden {
        eprintln!(
            "{}",
            tr(
                Msg::WindowNamesHidden,
                &[&n.field, &escape::field(n.service.as_ref())]
            )
        );
    }
    if json {
        print_json(w);
    } else {
        println!(
            "{}",
            tr(
                msg,
                &[
                    &w.id,
                    &format!("{} ({})", escape::field(&w.spec.title), w.status.as_str())
                ]
            )
        );
    }
    Ok(())
}

fn when(t: Timestamp, tz: &TimeZone) -> String {
    t.to_zoned(tz.clone())
        .strftime("%Y-%m-%d %H:%M %Z")
        .to_string()
}

fn list(ws: &[Window], tz: &TimeZone) -> String {
    if ws.is_empty() {
        return format!("{}\n", tr(Msg::NoWindows, &[]));
    }
    let mut t = Table::new();
    t.load_preset(NOTHING);
    t.set_header(
        [
            Msg::ColId,
            Msg::ColStatus,
            Msg::ColKind,
            Msg::ColStart,
            Msg::ColEnd,
            Msg::ColServices,
            Msg::ColTitle,
        ]
        .map(|m| tr(m, &[])),
    );
    for w in ws {
        let o = w.current.unwrap_or(upkeep_core::window::Occurrence {
            start: w.spec.start,
            end: w.spec.end,
        });
        let services: Vec<&str> = w.spec.services.iter().map(|s| s.service.as_str()).collect();
        t.add_row(vec![
            w.id.to_string(),
            w.status.as_str().to_owned(),
            w.spec.kind.as_str().to_owned(),
            when(o.start, tz),
            when(o.end, tz),
            services.join(","),
            escape::field(&w.spec.title).into_owned(),
        ]);
    }
    format!("{t}\n")
}

fn step_text(step: &Step, tz: &TimeZone) -> String {
    match step {
        Step::Reminder { before_s } => format!(
            "reminder ({} before)",
            super::output::duration_ms(before_s * 1000)
        ),
        Step::Extended { until } => format!("extended to {}", when(*until, tz)),
        Step::Overrun { end } => format!("overrun (expected end {})", when(*end, tz)),
        other => other.name().to_owned(),
    }
}

fn detail(w: &Window, tz: &TimeZone) -> String {
    let s = &w.spec;
    let o = w.current.unwrap_or(upkeep_core::window::Occurrence {
        start: s.start,
        end: s.end,
    });
    let mut out = format!(
        "#{} {} [{} · {} · {}]\n",
        w.id,
        escape::field(&s.title),
        s.kind.as_str(),
        w.status.as_str(),
        s.priority().as_str()
    );
    let mut line = |label: Msg, value: String| {
        if !value.is_empty() {
            out.push_str(&format!("  {:<14} {value}\n", tr(label, &[])));
        }
    };
    line(Msg::ColStart, when(o.start, tz));
    line(Msg::ColEnd, when(o.end, tz));
    line(
        Msg::WindowRepeat,
        s.repeat
            .clone()
            .map(|r| format!("{r} ({})", s.tz))
            .unwrap_or_default(),
    );
    line(Msg::WindowReason, escape::field(&s.reason).into_owned());
    let impact: Vec<String> = s
        .services
        .iter()
        .map(|a| format!("{} ({})", a.service, a.impact.as_str()))
        .collect();
    line(Msg::WindowImpact, impact.join(", "));
    line(
        Msg::WindowAlternative,
        escape::field(&s.alternative).into_owned(),
    );
    line(
        Msg::WindowFollowUp,
        escape::field(&s.follow_up).into_owned(),
    );
    out.push_str(&format!(
        "  {}\n",
        tr(
            Msg::WindowCreated,
            &[
                &when(w.created, tz),
                &escape::field(&w.created_by.to_string())
            ]
        )
    ));
    if let Some(why) = &w.forced_why {
        out.push_str(&format!(
            "  {}\n",
            tr(
                Msg::WindowForced,
                &[&escape::field(&w.created_by.name), &escape::field(why)]
            )
        ));
    }
    if !w.steps.is_empty() {
        out.push_str(&format!("  {}:\n", tr(Msg::WindowSteps, &[])));
        for st in &w.steps {
            let by = st
                .by
                .as_ref()
                .map(|p| format!(" ({})", escape::field(&p.to_string())))
                .unwrap_or_default();
            out.push_str(&format!(
                "    {}  {}{by}\n",
                when(st.at, tz),
                step_text(&st.step, tz)
            ));
        }
    }
    out
}
