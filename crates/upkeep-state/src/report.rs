//! Availability accounting: stored facts in, the seed's table out (availability, incidents,
//! MTTR, MTBF, automatic heals, manual interventions). Pure, so a scripted timeline gives
//! exactly known figures.
//!
//! Time counts by state: up, degraded and starting are available; down, recovering and failed
//! are outage; maintenance is counted apart and left out of the availability; stopped,
//! stopping and exited (down on purpose, or done) count for nothing. Before a service's first
//! known state nothing is counted. A drill is an outage on purpose: the time from its fault to
//! recovery is counted apart like maintenance, and the incidents and automatic restarts within
//! it are the drill's, not the service's record.

use std::collections::BTreeMap;

use jiff::Timestamp;
use upkeep_core::report::{PeriodReport, ReportInputs, Tally};
use upkeep_core::{ServiceName, State};

/// Adds `ms` in `state` to `t`, of which `drill_ms` within drills.
fn add_time(t: &mut Tally, state: State, ms: u64, drill_ms: u64) {
    if matches!(
        state,
        State::Up
            | State::Degraded
            | State::Starting
            | State::Down
            | State::Recovering
            | State::Failed
    ) {
        t.drill_ms += drill_ms;
    }
    let ms = if state == State::Maintenance {
        ms
    } else {
        ms - drill_ms
    };
    match state {
        State::Up | State::Degraded | State::Starting => t.available_ms += ms,
        State::Down | State::Recovering | State::Failed => t.outage_ms += ms,
        State::Maintenance => t.maintenance_ms += ms,
        State::Unknown => t.unknown_ms += ms,
        State::Stopped | State::Stopping | State::Exited => {}
    }
}

fn ms_between(a: Timestamp, b: Timestamp) -> u64 {
    b.duration_since(a).as_millis().max(0) as u64
}

/// The figures of the period `[from, to)`.
pub fn compute(inputs: &ReportInputs, from: Timestamp, to: Timestamp) -> PeriodReport {
    PeriodReport::from_tallies(from, to, &tallies(inputs, from, to))
}

/// Each service's tally over `[from, to)`: what [`compute`] sums, and what the store's
/// rollups keep per hour.
pub fn tallies(
    inputs: &ReportInputs,
    from: Timestamp,
    to: Timestamp,
) -> BTreeMap<ServiceName, Tally> {
    let mut accs: BTreeMap<ServiceName, Tally> = BTreeMap::new();
    let in_drill = |svc: &ServiceName, at: Timestamp| {
        inputs
            .drills
            .iter()
            .any(|d| &d.service == svc && d.started <= at && at < d.ended)
    };
    // Walk each service's transitions: each state lasts until the next transition (or `to`).
    let mut current: BTreeMap<&ServiceName, (State, Timestamp)> = BTreeMap::new();
    let close = |accs: &mut BTreeMap<ServiceName, Tally>,
                 svc: &ServiceName,
                 state: State,
                 start: Timestamp,
                 end: Timestamp| {
        let (a, b) = (start.max(from), end.min(to));
        if a < b {
            let drill_ms = inputs
                .drills
                .iter()
                .filter(|d| &d.service == svc)
                .map(|d| {
                    let (x, y) = (d.started.max(a), d.ended.min(b));
                    if x < y { ms_between(x, y) } else { 0 }
                })
                .sum::<u64>()
                .min(ms_between(a, b));
            add_time(
                accs.entry(svc.clone()).or_default(),
                state,
                ms_between(a, b),
                drill_ms,
            );
        }
    };
    for t in inputs.transitions.iter().filter(|t| t.at < to) {
        if let Some((state, since)) = current.insert(&t.service, (t.to, t.at)) {
            close(&mut accs, &t.service, state, since, t.at);
        }
    }
    for (svc, (state, since)) in current {
        close(&mut accs, svc, state, since, to);
    }
    let in_period = |at: &Timestamp| *at >= from && *at < to;
    for d in inputs.drills.iter().filter(|d| in_period(&d.started)) {
        accs.entry(d.service.clone()).or_default().drills += 1;
    }
    for inc in inputs
        .incidents
        .iter()
        .filter(|i| in_period(&i.started) && !in_drill(&i.service, i.started))
    {
        let acc = accs.entry(inc.service.clone()).or_default();
        acc.incidents += 1;
        if let Some(r) = inc.resolved {
            acc.repaired += 1;
            acc.repair_ms += ms_between(inc.started, r);
        }
    }
    for (svc, _) in inputs
        .heals
        .iter()
        .filter(|(svc, at)| in_period(at) && !in_drill(svc, *at))
    {
        accs.entry(svc.clone()).or_default().heals += 1;
    }
    for (svc, _) in inputs.interventions.iter().filter(|(_, at)| in_period(at)) {
        accs.entry(svc.clone()).or_default().interventions += 1;
    }
    accs
}

#[cfg(test)]
mod tests {
    use super::*;
    use upkeep_core::report::{DrillSpan, IncidentSpan, Transition};

    const H: i64 = 3600;

    fn t(secs: i64) -> Timestamp {
        Timestamp::from_second(1_800_000_000 + secs).unwrap()
    }
    fn n(s: &str) -> ServiceName {
        ServiceName::new(s).unwrap()
    }
    fn tr(s: &str, at: i64, to: State) -> Transition {
        Transition {
            service: n(s),
            at: t(at),
            to,
        }
    }

    /// Issue 14, E21: time no daemon watched is counted apart, neither up nor down.
    #[test]
    fn unwatched_time_is_counted_apart() {
        let inputs = ReportInputs {
            transitions: vec![
                tr("web", 0, State::Up),
                tr("web", 10 * H, State::Unknown),
                tr("web", 12 * H, State::Starting),
                tr("web", 12 * H + 60, State::Up),
            ],
            ..Default::default()
        };
        let r = compute(&inputs, t(0), t(20 * H));
        let web = &r.services[&n("web")];
        assert_eq!(web.unknown_ms, 2 * H as u64 * 1000);
        assert_eq!(web.available_ms, 18 * H as u64 * 1000);
        assert_eq!(web.availability, Some(1.0));
    }

    /// A scripted 100-hour period: known events in, known figures out.
    #[test]
    fn a_scripted_timeline_gives_exact_figures() {
        let inputs = ReportInputs {
            transitions: vec![
                // web: up before the period; down 1 h at h10; maintenance 10 h at h50 (not
                // counted); down 30 min at h80 (starting 10 min of it: recovering).
                tr("web", -5 * H, State::Up),
                tr("web", 10 * H, State::Down),
                tr("web", 11 * H, State::Up),
                tr("web", 50 * H, State::Maintenance),
                tr("web", 60 * H, State::Up),
                tr("web", 80 * H, State::Down),
                tr("web", 80 * H + 1200, State::Recovering),
                tr("web", 80 * H + 1800, State::Up),
                // db: appears at h20, stopped by an operator for h40..h45, degraded 5 h.
                tr("db", 20 * H, State::Starting),
                tr("db", 20 * H + 60, State::Up),
                tr("db", 40 * H, State::Stopped),
                tr("db", 45 * H, State::Degraded),
                tr("db", 50 * H, State::Up),
                // After the period: ignored.
                tr("db", 200 * H, State::Down),
            ],
            incidents: vec![
                IncidentSpan {
                    service: n("web"),
                    started: t(10 * H),
                    resolved: Some(t(11 * H)),
                },
                IncidentSpan {
                    service: n("web"),
                    started: t(80 * H),
                    resolved: Some(t(80 * H + 1800)),
                },
                // Before the period: not counted.
                IncidentSpan {
                    service: n("web"),
                    started: t(-H),
                    resolved: Some(t(-H + 60)),
                },
            ],
            heals: vec![
                (n("web"), t(10 * H + 1)),
                (n("web"), t(80 * H + 1)),
                (n("web"), t(-10)),
            ],
            interventions: vec![(n("db"), t(40 * H)), (n("db"), t(45 * H))],
            drills: vec![],
        };
        let r = compute(&inputs, t(0), t(100 * H));
        let web = &r.services[&n("web")];
        // Observed 100 h − 10 h maintenance = 90 h, of which 1.5 h outage.
        assert_eq!(web.maintenance_ms, 10 * H as u64 * 1000);
        assert_eq!(web.outage_ms, 5400 * 1000);
        assert_eq!(web.available_ms, (90 * H as u64 - 5400) * 1000);
        assert_eq!(
            web.availability,
            Some((90.0 * 3600.0 - 5400.0) / (90.0 * 3600.0))
        );
        assert_eq!(web.incidents, 2);
        assert_eq!(web.mttr_ms, Some((3600 + 1800) * 1000 / 2));
        assert_eq!(web.mtbf_ms, Some(web.available_ms / 2));
        assert_eq!((web.automatic_heals, web.manual_interventions), (2, 0));
        let db = &r.services[&n("db")];
        // 80 h from h20, minus 5 h stopped: 75 h available, no outage.
        assert_eq!(db.available_ms, 75 * H as u64 * 1000);
        assert_eq!(
            (db.availability, db.incidents, db.mttr_ms, db.mtbf_ms),
            (Some(1.0), 0, None, None)
        );
        assert_eq!(db.manual_interventions, 2);
        let all = &r.overall;
        assert_eq!(all.outage_ms, 5400 * 1000);
        assert_eq!(all.available_ms, web.available_ms + db.available_ms);
        assert_eq!(
            all.availability,
            Some(all.available_ms as f64 / (all.available_ms + all.outage_ms) as f64)
        );
        assert_eq!(
            (
                all.incidents,
                all.mttr_ms,
                all.automatic_heals,
                all.manual_interventions
            ),
            (2, Some(2700 * 1000), 2, 2)
        );
    }

    /// A drill's time, incident and restart are counted apart; a real outage is not.
    #[test]
    fn drills_are_counted_apart_from_real_outages() {
        let span = |at: i64, secs: i64| IncidentSpan {
            service: n("web"),
            started: t(at),
            resolved: Some(t(at + secs)),
        };
        let inputs = ReportInputs {
            transitions: vec![
                tr("web", -H, State::Up),
                // The drill: fault at h20, noticed 1 s later, up again 3 s after the fault.
                tr("web", 20 * H + 1, State::Down),
                tr("web", 20 * H + 2, State::Recovering),
                tr("web", 20 * H + 3, State::Up),
                // A real outage of 10 minutes at h30.
                tr("web", 30 * H, State::Down),
                tr("web", 30 * H + 600, State::Up),
            ],
            incidents: vec![span(20 * H + 1, 2), span(30 * H, 600)],
            heals: vec![(n("web"), t(20 * H + 1)), (n("web"), t(30 * H + 1))],
            interventions: vec![],
            drills: vec![DrillSpan {
                service: n("web"),
                started: t(20 * H),
                ended: t(20 * H + 3),
            }],
        };
        let r = compute(&inputs, t(0), t(100 * H));
        let web = &r.services[&n("web")];
        assert_eq!((web.drills, web.drill_ms), (1, 3000));
        assert_eq!(web.outage_ms, 600 * 1000);
        assert_eq!(web.available_ms, (100 * H as u64 - 603) * 1000);
        assert_eq!(
            (web.incidents, web.mttr_ms, web.automatic_heals),
            (1, Some(600 * 1000), 1)
        );
        assert_eq!((r.overall.drills, r.overall.drill_ms), (1, 3000));
    }

    #[test]
    fn nothing_observed_is_no_figure_not_a_hundred_percent() {
        let r = compute(&ReportInputs::default(), t(0), t(H));
        assert_eq!(r.overall.availability, None);
        assert!(r.services.is_empty());
    }
}
