//! `upkeep jobs [NAME]`: jobs (services with `schedule`) and their recent runs, from
//! `GET /api/v1/jobs`. Without a name, one row a job (schedule, state, next run, last run);
//! with one, a row a run, then the output of the latest. Text from outside (output lines,
//! reasons) goes through `esc`, like every other table.

use comfy_table::Table;
use comfy_table::presets::NOTHING;
use upkeep_core::job::{JobInfo, JobRun};

use upkeep_core::i18n::{Msg, tr};

use super::escape::field as esc;
use super::output::duration_ms;

fn at(t: Option<jiff::Timestamp>) -> String {
    t.map_or("-".into(), |t| t.strftime("%Y-%m-%d %H:%M:%S").to_string())
}

fn outcome(r: &JobRun) -> String {
    if r.interrupted {
        tr(Msg::JobInterrupted, &[])
    } else if r.status.is_unknown() {
        tr(Msg::JobUnknown, &[])
    } else if r.status.success() {
        tr(Msg::JobOk, &[])
    } else {
        tr(Msg::JobFailed, &[&r.status])
    }
}

fn trigger(r: &JobRun) -> String {
    match (&r.by, r.due) {
        (upkeep_core::Actor::Principal(p), _) => tr(Msg::ByWhom, &[&esc(&p.to_string())]),
        (_, Some(due)) => tr(Msg::JobDue, &[&due.strftime("%H:%M")]),
        (_, None) => "-".into(),
    }
}

/// Every job, one a row.
pub fn list(jobs: &[JobInfo]) -> String {
    if jobs.is_empty() {
        return format!("{}\n", tr(Msg::NoJobs, &[]));
    }
    let mut t = Table::new();
    t.load_preset(NOTHING);
    t.set_header(
        [
            Msg::ColName,
            Msg::ColSchedule,
            Msg::ColState,
            Msg::ColNext,
            Msg::ColLastRun,
            Msg::ColResult,
            Msg::ColTook,
            Msg::ColSkipped,
        ]
        .map(|m| tr(m, &[])),
    );
    for j in jobs {
        let last = j.runs.first();
        t.add_row(vec![
            j.name.to_string(),
            esc(&j.schedule).into_owned(),
            match j.running_since {
                Some(s) => tr(Msg::JobRunningSince, &[&s.strftime("%H:%M:%S")]),
                None => j.state.to_string(),
            },
            at(j.next),
            at(last.map(|r| r.started)),
            last.map_or("-".into(), outcome),
            last.map_or("-".into(), |r| duration_ms(r.duration_ms)),
            j.skipped.len().to_string(),
        ]);
    }
    let mut out = t.to_string();
    out.push('\n');
    for j in jobs {
        if let Some(e) = &j.history_error {
            let why = tr(Msg::JobNoHistory, &[&esc(e)]);
            out.push_str(&format!("{}: {why}\n", j.name));
        }
    }
    out
}

/// One job: its runs, then the latest run's output.
pub fn detail(j: &JobInfo) -> String {
    let mut out = format!(
        "{}  {}  {}  {}\n",
        j.name,
        esc(&j.schedule),
        j.state,
        tr(Msg::JobNext, &[&at(j.next)])
    );
    if let Some(e) = &j.history_error {
        out.push_str(&format!("{}\n", tr(Msg::JobNoHistory, &[&esc(e)])));
        return out;
    }
    if j.runs.is_empty() {
        out.push_str(&format!("{}\n", tr(Msg::JobNoRuns, &[])));
    } else {
        let mut t = Table::new();
        t.load_preset(NOTHING);
        t.set_header(
            [
                Msg::ColStarted,
                Msg::ColResult,
                Msg::ColTook,
                Msg::ColTrigger,
            ]
            .map(|m| tr(m, &[])),
        );
        for r in &j.runs {
            t.add_row(vec![
                at(Some(r.started)),
                outcome(r),
                duration_ms(r.duration_ms),
                trigger(r),
            ]);
        }
        out.push_str(&t.to_string());
        out.push('\n');
    }
    if !j.skipped.is_empty() {
        let times: Vec<String> = j.skipped.iter().map(|t| at(Some(*t))).collect();
        out.push_str(&format!(
            "{}\n",
            tr(Msg::JobSkippedList, &[&times.join(", ")])
        ));
    }
    if let Some(r) = j.runs.first() {
        out.push_str(&format!(
            "\n{}\n",
            tr(Msg::JobOutputOf, &[&at(Some(r.started))])
        ));
        if r.output_dropped > 0 {
            let dropped = tr(Msg::JobOutputDropped, &[&r.output_dropped]);
            out.push_str(&format!("  {dropped}\n"));
        }
        for line in &r.output {
            out.push_str(&format!("  {}\n", esc(line)));
        }
    }
    out
}
