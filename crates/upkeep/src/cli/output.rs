//! How the CLI shows things to people: tables, durations, sizes. `--json` bypasses all of it.
//!
//! Every text that comes from outside the CLI (reasons, commands, paths, event kinds) goes
//! through [`esc`] so a control character in it shows instead of acting on the terminal.

use super::escape::field as esc;
use comfy_table::presets::NOTHING;
use comfy_table::{Cell, Color, Table};
use upkeep_core::State;
use upkeep_core::api::{Incident, IncidentDetail, ServiceDetail, ServiceInfo, StoredEvent};
use upkeep_core::i18n::{Msg, tr};
use upkeep_core::report::{Figures, PeriodReport, Report};

pub fn duration(secs: u64) -> String {
    let (d, h, m, s) = (secs / 86400, secs / 3600 % 24, secs / 60 % 60, secs % 60);
    match (d, h, m) {
        (0, 0, 0) => format!("{s}s"),
        (0, 0, _) => format!("{m}m {s}s"),
        (0, _, _) => format!("{h}h {m}m"),
        _ => format!("{d}d {h}h"),
    }
}

/// Like [`duration`], with tenths of a second below a minute (recovery times are short).
pub fn duration_ms(ms: u64) -> String {
    if ms < 60_000 {
        format!("{:.1}s", ms as f64 / 1000.0)
    } else {
        duration(ms / 1000)
    }
}

pub fn bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut unit = 0;
    while v >= 1024.0 && unit < UNITS.len() - 1 {
        v /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[unit])
    }
}

fn state_cell(state: State) -> Cell {
    let color = match state {
        State::Up => Color::Green,
        State::Starting | State::Recovering | State::Degraded | State::Stopping => Color::Yellow,
        State::Down | State::Failed | State::Exited => Color::Red,
        State::Stopped | State::Maintenance | State::Unknown => Color::DarkGrey,
    };
    Cell::new(state.as_str()).fg(color)
}

pub fn uptime(info: &ServiceInfo) -> String {
    info.status
        .since
        .map(|t| duration(jiff::Timestamp::now().duration_since(t).as_secs().max(0) as u64))
        .unwrap_or_else(|| "-".into())
}

pub fn services_table(infos: &[ServiceInfo]) -> String {
    if infos.is_empty() {
        return tr(Msg::NoServices, &[]);
    }
    let mut t = Table::new();
    t.load_preset(NOTHING);
    t.set_header(
        [
            Msg::ColName,
            Msg::ColState,
            Msg::ColPid,
            Msg::ColUptime,
            Msg::ColRestarts,
            Msg::ColCpu,
            Msg::ColMemory,
        ]
        .map(|m| tr(m, &[])),
    );
    for i in infos {
        t.add_row(vec![
            Cell::new(i.status.name.as_str()),
            state_cell(i.status.state),
            Cell::new(i.status.pid.map_or("-".into(), |p| p.to_string())),
            Cell::new(uptime(i)),
            Cell::new(i.status.restarts),
            Cell::new(i.cpu_percent.map_or("-".into(), |c| format!("{c:.1}%"))),
            Cell::new(i.memory_bytes.map_or("-".into(), bytes)),
        ]);
    }
    t.to_string()
}

/// `upkeep ls --tree`: each service under what it depends on, with the condition it waits
/// for and its state. Services nothing depends on are roots; one that depends on several
/// appears under each, expanded once (later `(see above)`).
///
/// ```text
/// db  up
/// ├─ api (ready)  up
/// │  └─ web (ready)  starting: waiting for api to be ready (it is starting)
/// └─ worker (healthy)  up
/// ```
pub fn services_tree(infos: &[ServiceInfo]) -> String {
    if infos.is_empty() {
        return format!("{}\n", tr(Msg::NoServices, &[]));
    }
    let mut tree = Tree {
        out: String::new(),
        by_name: infos.iter().map(|i| (i.status.name.as_str(), i)).collect(),
        below: Default::default(),
        shown: Default::default(),
    };
    // Edges from a dependency down to its dependents, in name order.
    for i in infos {
        for d in &i.depends_on {
            tree.below
                .entry(d.service.as_str())
                .or_default()
                .push((i.status.name.as_str(), d.condition.as_str()));
        }
    }
    for i in infos.iter().filter(|i| i.depends_on.is_empty()) {
        tree.line("", "", i.status.name.as_str(), None);
    }
    tree.out
}

/// `services_tree` as it is drawn.
struct Tree<'a> {
    out: String,
    by_name: std::collections::BTreeMap<&'a str, &'a ServiceInfo>,
    /// Each service's dependents, with the condition they wait for.
    below: std::collections::BTreeMap<&'a str, Vec<(&'a str, &'a str)>>,
    /// Services drawn already (with their dependents).
    shown: std::collections::BTreeSet<&'a str>,
}

impl<'a> Tree<'a> {
    /// One line, and, the first time a service is drawn, the lines of its dependents.
    fn line(&mut self, lead: &str, branch: &str, name: &'a str, condition: Option<&str>) {
        let condition = condition.map_or(String::new(), |c| format!(" ({c})"));
        let first = self.shown.insert(name);
        let state = match self.by_name.get(name) {
            Some(_) if !first => format!("  {}", tr(Msg::SeeAbove, &[])),
            Some(i) => match &i.status.waiting {
                Some(w) => format!("  {}: {}", i.status.state, esc(w)),
                None => format!("  {}", i.status.state),
            },
            None => String::new(),
        };
        self.out
            .push_str(&format!("{lead}{branch}{}{condition}{state}\n", esc(name)));
        if !first {
            return;
        }
        let Some(children) = self.below.get(name).cloned() else {
            return;
        };
        let lead = match branch {
            "" => lead.to_owned(),
            "└─ " => format!("{lead}   "),
            _ => format!("{lead}│  "),
        };
        for (n, (child, cond)) in children.iter().enumerate() {
            let branch = if n + 1 == children.len() {
                "└─ "
            } else {
                "├─ "
            };
            self.line(&lead, branch, child, Some(cond));
        }
    }
}

/// `#12  2026-11-24 10:00:00  lasted 3.2s  probe http: HTTP 500` (with the service if asked).
fn incident_line(inc: &Incident, with_service: bool) -> String {
    let end = match inc.resolved {
        Some(_) => tr(Msg::Lasted, &[&duration_ms(inc.duration_ms)]),
        None => tr(Msg::OpenFor, &[&duration_ms(inc.duration_ms)]),
    };
    let service = if with_service {
        format!("{}  ", inc.service)
    } else {
        String::new()
    };
    let drill = if inc.drill {
        format!(" ({})", tr(Msg::Drill, &[]))
    } else {
        String::new()
    };
    format!(
        "#{:<4} {service}{}  {end}  {}{drill}",
        inc.id,
        inc.started.strftime("%Y-%m-%d %H:%M:%S"),
        esc(&inc.reason)
    )
}

/// `upkeep incidents`: newest first, one a line.
pub fn incidents(list: &[Incident]) -> String {
    if list.is_empty() {
        return format!("{}\n", tr(Msg::NoIncidents, &[]));
    }
    list.iter().map(|i| incident_line(i, true) + "\n").collect()
}

/// `upkeep incident ID`: the incident, then its timeline.
pub fn incident_detail(d: &IncidentDetail) -> String {
    let mut out = format!(
        "{}\n\n{}:\n",
        incident_line(&d.incident, true),
        tr(Msg::Timeline, &[])
    );
    for e in &d.timeline {
        out.push_str(&format!("  {}\n", event_line(e)));
    }
    let notes = super::incidents::notes_text(&d.notes);
    if !notes.is_empty() {
        out.push('\n');
        out.push_str(&notes);
    }
    out
}

/// Who an event's `by` names, for people: `by alice (socket, uid 1000)`, `by an operator`
/// (events stored before operators were named), nothing for upkeep's own.
pub fn actor(by: &serde_json::Value) -> Option<String> {
    match serde_json::from_value::<upkeep_core::Actor>(by.clone()).ok()? {
        upkeep_core::Actor::Principal(p) => Some(tr(Msg::ByWhom, &[&esc(&p.to_string())])),
        upkeep_core::Actor::Operator => Some(tr(Msg::ByOperator, &[])),
        upkeep_core::Actor::Upkeep => None,
    }
}

fn event_line(e: &StoredEvent) -> String {
    let mut detail = e.detail.clone();
    let who = detail
        .as_object_mut()
        .and_then(|o| o.remove("by"))
        .and_then(|by| actor(&by))
        .map_or(String::new(), |w| format!(" ({w})"));
    // serde_json escapes C0 controls in strings, but not DEL or C1 controls.
    let mut detail = esc(&detail.to_string()).into_owned();
    if detail == "{}" || detail == "null" {
        detail.clear();
    }
    let service = e
        .service
        .as_ref()
        .map_or(String::new(), |s| format!("{s}  "));
    format!(
        "{}  {service}{}{who}  {detail}",
        e.at.strftime("%Y-%m-%d %H:%M:%S"),
        esc(&e.kind)
    )
}

/// `upkeep events`: one line each, as the API gives them (newest first).
pub fn events(list: &[StoredEvent]) -> String {
    if list.is_empty() {
        return format!("{}\n", tr(Msg::NoEvents, &[]));
    }
    list.iter().map(|e| event_line(e) + "\n").collect()
}

/// `upkeep token ls`.
pub fn tokens(list: &[crate::tokens::Token]) -> String {
    if list.is_empty() {
        return format!("{}\n", tr(Msg::NoTokens, &[]));
    }
    let mut t = Table::new();
    t.load_preset(NOTHING);
    t.set_header([Msg::ColName, Msg::ColScope, Msg::ColCreated].map(|m| tr(m, &[])));
    for tok in list {
        t.add_row(vec![
            tok.name.to_string(),
            tok.scope.as_str().into(),
            tok.created.strftime("%Y-%m-%d %H:%M:%S UTC").to_string(),
        ]);
    }
    format!("{t}\n")
}

/// `upkeep status NAME`. `window_end`: when the maintenance window the service is in ends
/// (its current occurrence's end), if the service is in one and the daemon said.
/// What a run that has not said it is ready waits for, and how long it has left (break-it,
/// session 12: `status` showed `recovering` and nothing of what it waited for).
fn readiness_wait(d: &ServiceDetail, now: jiff::Timestamp) -> Option<String> {
    let s = &d.info.status;
    let r = d.readiness.as_ref()?;
    if s.pid.is_none() || s.ready || !matches!(s.state, State::Starting | State::Recovering) {
        return None;
    }
    let detail = esc(r.detail.as_deref().unwrap_or_default()).into_owned();
    let what = match r.kind.as_str() {
        "notify" => tr(Msg::ReadyNotify, &[]),
        "fd" => tr(Msg::ReadyFd, &[&detail]),
        "log" => tr(Msg::ReadyLog, &[&format!("`{detail}`")]),
        _ => tr(Msg::ReadyProbe, &[]),
    };
    let left = r.timeout_ms.zip(s.since).map(|(ms, since)| {
        let spent = now.duration_since(since).as_millis().max(0) as u64;
        ms.saturating_sub(spent).div_ceil(1000)
    });
    Some(match left {
        Some(left) => format!("{what} ({})", tr(Msg::ReadyLeft, &[&left])),
        None => what,
    })
}

pub fn service_detail(d: &ServiceDetail, window_end: Option<jiff::Timestamp>) -> String {
    let i = &d.info;
    let mut out = String::new();
    let mut line = |k: &str, v: String| out.push_str(&format!("{k:>10}: {v}\n"));
    line(&tr(Msg::ColName, &[]), i.status.name.to_string());
    line(
        &tr(Msg::ColState, &[]),
        format!("{} (desired: {})", i.status.state, i.desired.as_str()),
    );
    if let Some(m) = &i.status.maintenance {
        let time = |t: jiff::Timestamp| t.strftime("%Y-%m-%d %H:%M:%S").to_string();
        // A window's maintenance has no `until` of its own (the planner ends it, later if it
        // overruns); maintenance by hand without one lasts until ended. Never a bare flag.
        let until = match (m.until, m.window, window_end) {
            (Some(u), ..) => time(u),
            (None, Some(id), Some(end)) => tr(Msg::MaintWindowEnd, &[&time(end), &id]),
            (None, Some(id), None) => tr(Msg::MaintWindowEndUnknown, &[&id]),
            (None, None, _) => tr(Msg::MaintByHandEnd, &[&i.status.name]),
        };
        line(
            &tr(Msg::ColMaintenance, &[]),
            format!(
                "{} → {until} {}",
                m.since.strftime("%Y-%m-%d %H:%M:%S"),
                esc(&m.reason)
            ),
        );
    }
    line(
        &tr(Msg::ColPid, &[]),
        i.status.pid.map_or("-".into(), |p| p.to_string()),
    );
    line(&tr(Msg::ColUptime, &[]), uptime(i));
    line(&tr(Msg::ColRestarts, &[]), i.status.restarts.to_string());
    if let Some(e) = i.status.last_exit {
        line("last exit", e.to_string());
    }
    if let Some(w) = &i.status.waiting {
        line(&tr(Msg::Waiting, &[]), esc(w).into_owned());
    } else if let Some(w) = readiness_wait(d, jiff::Timestamp::now()) {
        line(&tr(Msg::Waiting, &[]), w);
    }
    if let Some(s) = &i.notify_status {
        line(&tr(Msg::NotifyStatus, &[]), esc(s).into_owned());
    }
    if !i.depends_on.is_empty() {
        let deps: Vec<String> = i
            .depends_on
            .iter()
            .map(|d| format!("{} ({})", d.service, d.condition))
            .collect();
        line(&tr(Msg::DependsOn, &[]), deps.join(", "));
    }
    if let (Some(c), Some(m), Some(p)) = (i.cpu_percent, i.memory_bytes, i.processes) {
        line(&tr(Msg::ColCpu, &[]), format!("{c:.1}%"));
        line(
            &tr(Msg::ColMemory, &[]),
            format!("{} in {p} process(es)", bytes(m)),
        );
    }
    line(
        &tr(Msg::Command, &[]),
        esc(&d.command.join(" ")).into_owned(),
    );
    if let Some(cwd) = &d.cwd {
        line("cwd", esc(cwd).into_owned());
    }
    line("restart", esc(&d.restart).into_owned());
    line(
        &tr(Msg::Logs, &[]),
        format!("{}\n{:>12}{}", esc(&d.stdout_log), "", esc(&d.stderr_log)),
    );
    if i.status.dropped_lines > 0 {
        line("dropped", format!("{} log lines", i.status.dropped_lines));
    }
    if !i.status.probes.is_empty() {
        out.push_str(&format!("\n{}:\n", tr(Msg::Probes, &[])));
        for (name, p) in &i.status.probes {
            let health = serde_json::to_value(p.health)
                .ok()
                .and_then(|v| v.as_str().map(str::to_owned))
                .unwrap_or_default();
            out.push_str(&format!(
                "  {:<12} {health:<9} {}\n",
                esc(name),
                esc(&p.reason)
            ));
            if let Some(last) = &p.last {
                let ago = jiff::Timestamp::now()
                    .duration_since(last.at)
                    .as_millis()
                    .max(0);
                let check = tr(
                    Msg::LastCheck,
                    &[
                        &duration_ms(ago as u64),
                        &esc(&last.reason),
                        &format!("{:.1}", last.latency_ms),
                    ],
                );
                out.push_str(&format!("  {:<12} {:<9} {check}\n", "", ""));
            }
        }
    }
    if !d.incidents.is_empty() {
        out.push_str(&format!("\n{}:\n", tr(Msg::Incidents, &[])));
        for inc in &d.incidents {
            out.push_str(&format!("  {}\n", incident_line(inc, false)));
        }
    }
    out.push_str(&format!("\n{}:\n", tr(Msg::LastEvents, &[])));
    if let Some(why) = &d.history_unavailable {
        out.push_str(&format!(
            "  {}\n",
            tr(Msg::HistoryUnavailable, &[&esc(why)])
        ));
    }
    for e in &d.events {
        out.push_str(&format!("  {}\n", event_line(e)));
    }
    out
}

/// Drill results, then the mean and worst.
pub fn drills(results: &[upkeep_core::api::DrillResult]) -> String {
    let mut t = Table::new();
    t.load_preset(NOTHING);
    t.set_header(
        [
            Msg::ColRun,
            Msg::ColFault,
            Msg::ColDetected,
            Msg::ColRecovered,
            Msg::ColDetectedBy,
        ]
        .map(|m| tr(m, &[])),
    );
    for (i, r) in results.iter().enumerate() {
        t.add_row(vec![
            (i + 1).to_string(),
            r.fault.as_str().into(),
            format!("{} ms", r.detected_ms),
            format!("{} ms", r.recovered_ms),
            esc(&r.detected_by).into_owned(),
        ]);
    }
    let mut out = format!("{t}\n");
    if let Some(max) = results.iter().map(|r| r.recovered_ms).max() {
        let mean = results.iter().map(|r| r.recovered_ms).sum::<u64>() / results.len() as u64;
        out.push_str(&format!(
            "\n{}\n",
            tr(Msg::DrillSummary, &[&mean, &max, &results.len()])
        ));
    }
    out
}

fn pct(f: &Figures) -> String {
    f.availability
        .map_or("-".into(), |a| format!("{:.3}%", a * 100.0))
}

fn opt_ms(v: Option<u64>) -> String {
    v.map_or("-".into(), duration_ms)
}

fn period_label(p: &PeriodReport) -> String {
    match (p.from, p.to) {
        // With the year once a period spans more than one (a ten-year report looked like
        // a week).
        (Some(f), Some(t)) => {
            let fmt = if f.strftime("%Y").to_string() == t.strftime("%Y").to_string() {
                "%m-%d %H:%M"
            } else {
                "%Y-%m-%d %H:%M"
            };
            format!("{} → {}", f.strftime(fmt), t.strftime(fmt))
        }
        _ => "-".into(),
    }
}

/// The seed's table: this period beside the previous one, then availability per service.
pub fn report(r: &Report, markdown: bool) -> String {
    type Row = (Msg, fn(&Figures) -> String);
    let rows: [Row; 10] = [
        (Msg::Availability, pct),
        (Msg::Incidents, |f| f.incidents.to_string()),
        (Msg::Mttr, |f| opt_ms(f.mttr_ms)),
        (Msg::Mtbf, |f| opt_ms(f.mtbf_ms)),
        (Msg::AutomaticHeals, |f| f.automatic_heals.to_string()),
        (Msg::ManualInterventions, |f| {
            f.manual_interventions.to_string()
        }),
        (Msg::InMaintenance, |f| duration_ms(f.maintenance_ms)),
        (Msg::InDrills, |f| {
            format!("{} ({})", f.drills, duration_ms(f.drill_ms))
        }),
        (Msg::Unwatched, |f| duration_ms(f.unknown_ms)),
        (Msg::ProbeLatency, |f| {
            f.probe_latency.as_ref().map_or("-".into(), |p| {
                format!("{:.1} / {:.1} ms", p.p50_ms, p.p99_ms)
            })
        }),
    ];
    let mut t = Table::new();
    if markdown {
        t.load_preset(comfy_table::presets::ASCII_MARKDOWN);
    } else {
        t.load_preset(NOTHING);
    }
    t.set_header(vec![
        "".to_string(),
        tr(Msg::PreviousPeriod, &[&period_label(&r.previous)]),
        tr(Msg::ThisPeriod, &[&period_label(&r.current)]),
    ]);
    for (name, f) in rows {
        t.add_row(vec![
            tr(name, &[]),
            f(&r.previous.overall),
            f(&r.current.overall),
        ]);
    }
    let mut out = format!("{t}\n");
    if !r.current.services.is_empty() {
        let mut s = Table::new();
        s.load_preset(if markdown {
            comfy_table::presets::ASCII_MARKDOWN
        } else {
            NOTHING
        });
        s.set_header(
            [
                Msg::ColService,
                Msg::Availability,
                Msg::Incidents,
                Msg::Mttr,
                Msg::AutomaticHeals,
                Msg::ManualInterventions,
            ]
            .map(|m| tr(m, &[])),
        );
        for (name, f) in &r.current.services {
            s.add_row(vec![
                name.to_string(),
                pct(f),
                f.incidents.to_string(),
                opt_ms(f.mttr_ms),
                f.automatic_heals.to_string(),
                f.manual_interventions.to_string(),
            ]);
        }
        out.push_str(&format!("\n{s}\n"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_and_sizes_read_well() {
        assert_eq!(duration(5), "5s");
        assert_eq!(duration(65), "1m 5s");
        assert_eq!(duration(3 * 3600 + 120), "3h 2m");
        assert_eq!(duration(90000), "1d 1h");
        assert_eq!(duration_ms(4210), "4.2s");
        assert_eq!(duration_ms(61_000), "1m 1s");
        assert_eq!(bytes(512), "512 B");
        assert_eq!(bytes(3 * 1024 * 1024 + 512 * 1024), "3.5 MiB");
    }

    #[test]
    fn the_tree_puts_each_service_under_what_it_depends_on() {
        use upkeep_core::{Condition, Dependency, Desired, ServiceName, ServiceStatus};
        let info = |name: &str, state: State, deps: &[(&str, Condition)]| {
            let mut status = ServiceStatus::new(ServiceName::new(name).unwrap());
            status.state = state;
            ServiceInfo {
                status,
                desired: Desired::Running,
                cpu_percent: None,
                memory_bytes: None,
                processes: None,
                depends_on: deps
                    .iter()
                    .map(|(d, c)| Dependency {
                        service: ServiceName::new(*d).unwrap(),
                        condition: *c,
                    })
                    .collect(),
                notify_status: None,
            }
        };
        let mut web = info("web", State::Starting, &[("api", Condition::Ready)]);
        web.status.waiting = Some("waiting for api to be ready (it is starting)".into());
        let infos = vec![
            info(
                "api",
                State::Starting,
                &[("db", Condition::Ready), ("cache", Condition::Healthy)],
            ),
            info("cache", State::Up, &[]),
            info("db", State::Up, &[]),
            web,
            info("worker", State::Up, &[("db", Condition::Started)]),
        ];
        let expected = [
            "cache  up",
            "└─ api (healthy)  starting",
            "   └─ web (ready)  starting: waiting for api to be ready (it is starting)",
            "db  up",
            "├─ api (ready)  (see above)",
            "└─ worker (started)  up",
        ];
        assert_eq!(services_tree(&infos), expected.join("\n") + "\n");
    }
}
