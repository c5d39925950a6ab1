//! The availability report: what goes in (facts read from the store) and what comes out (the
//! figures). Data only: `upkeep_state::report` computes, the store reads, web and the CLI show.

use std::collections::BTreeMap;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use crate::{ServiceName, State};

/// A service entered `to` at `at`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Transition {
    pub service: ServiceName,
    pub at: Timestamp,
    pub to: State,
}

/// An incident: an outage from `started` to `resolved` (None while open).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct IncidentSpan {
    pub service: ServiceName,
    pub started: Timestamp,
    pub resolved: Option<Timestamp>,
}

/// A drill on `service`: from the fault's injection to the service being up again.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct DrillSpan {
    pub service: ServiceName,
    pub started: Timestamp,
    pub ended: Timestamp,
}

/// Everything the report of one period needs.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ReportInputs {
    /// Every status change up to the end of the period (earlier ones give the state at its
    /// start), ordered by time.
    pub transitions: Vec<Transition>,
    /// Incidents that started within the period.
    pub incidents: Vec<IncidentSpan>,
    /// Automatic restarts (after a crash or a heal) within the period.
    pub heals: Vec<(ServiceName, Timestamp)>,
    /// Operator actions within the period.
    pub interventions: Vec<(ServiceName, Timestamp)>,
    /// Drills that overlap the period. A drill is an outage on purpose: its time, and the
    /// incidents and restarts within it, are counted apart.
    #[serde(default)]
    pub drills: Vec<DrillSpan>,
}

/// The figures of one service, or of all together.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Figures {
    /// Available time / (available + outage time). None when nothing was observed.
    pub availability: Option<f64>,
    /// Time up, degraded or starting.
    pub available_ms: u64,
    /// Time down, recovering or failed.
    pub outage_ms: u64,
    /// Time in maintenance: counted apart, not in the availability.
    pub maintenance_ms: u64,
    /// Time no daemon watched (between a killed daemon and the next): counted apart.
    #[serde(default)]
    pub unknown_ms: u64,
    /// Drills that began in the period.
    #[serde(default)]
    pub drills: u32,
    /// Time in drills (fault to recovery): counted apart, not in the availability, and the
    /// incidents and automatic restarts of a drill are not counted either.
    #[serde(default)]
    pub drill_ms: u64,
    pub incidents: u32,
    /// Mean time to recovery over the resolved incidents.
    pub mttr_ms: Option<u64>,
    /// Mean time between failures: available time per incident.
    pub mtbf_ms: Option<u64>,
    pub automatic_heals: u32,
    pub manual_interventions: u32,
    /// Probe response times over the period (whole hours), of answered checks.
    #[serde(default)]
    pub probe_latency: Option<crate::latency::Percentiles>,
}

/// What a stretch of time adds up to for one service: times and counts that add across
/// stretches, so that an hour's rollup plus the raw minutes at a period's edges give the same
/// figures as one pass over the whole period. Kept per service and hour (and day) by the
/// store's rollups; [`Tally::figures`] turns a sum into the report's figures.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Tally {
    pub available_ms: u64,
    pub outage_ms: u64,
    pub maintenance_ms: u64,
    pub unknown_ms: u64,
    /// Drills that began in the stretch, and the time in drills.
    pub drills: u32,
    pub drill_ms: u64,
    /// Incidents that began in the stretch; of them, `repaired` were resolved, in
    /// `repair_ms` in all.
    pub incidents: u32,
    pub repaired: u32,
    pub repair_ms: u64,
    pub heals: u32,
    pub interventions: u32,
}

impl Tally {
    /// Adds `other` (a later or earlier stretch of the same service, or another service).
    pub fn add(&mut self, other: &Tally) {
        self.available_ms += other.available_ms;
        self.outage_ms += other.outage_ms;
        self.maintenance_ms += other.maintenance_ms;
        self.unknown_ms += other.unknown_ms;
        self.drills += other.drills;
        self.drill_ms += other.drill_ms;
        self.incidents += other.incidents;
        self.repaired += other.repaired;
        self.repair_ms += other.repair_ms;
        self.heals += other.heals;
        self.interventions += other.interventions;
    }

    pub fn figures(&self) -> Figures {
        let observed = self.available_ms + self.outage_ms;
        Figures {
            availability: (observed > 0).then(|| self.available_ms as f64 / observed as f64),
            available_ms: self.available_ms,
            outage_ms: self.outage_ms,
            maintenance_ms: self.maintenance_ms,
            unknown_ms: self.unknown_ms,
            drills: self.drills,
            drill_ms: self.drill_ms,
            incidents: self.incidents,
            mttr_ms: (self.repaired > 0).then(|| self.repair_ms / u64::from(self.repaired)),
            mtbf_ms: (self.incidents > 0).then(|| self.available_ms / u64::from(self.incidents)),
            automatic_heals: self.heals,
            manual_interventions: self.interventions,
            probe_latency: None,
        }
    }
}

/// Adds tallies of the same services (each map: service → its tally over some stretch).
pub fn add_tallies(into: &mut BTreeMap<ServiceName, Tally>, more: &BTreeMap<ServiceName, Tally>) {
    for (name, t) in more {
        into.entry(name.clone()).or_default().add(t);
    }
}

impl PeriodReport {
    /// The report of `[from, to)` from each service's tally over it.
    pub fn from_tallies(
        from: Timestamp,
        to: Timestamp,
        tallies: &BTreeMap<ServiceName, Tally>,
    ) -> PeriodReport {
        let mut all = Tally::default();
        for t in tallies.values() {
            all.add(t);
        }
        PeriodReport {
            from: Some(from),
            to: Some(to),
            overall: all.figures(),
            services: tallies
                .iter()
                .map(|(n, t)| (n.clone(), t.figures()))
                .collect(),
        }
    }

    /// Adds each service's probe latency percentiles, and all services' together.
    pub fn with_latency(
        mut self,
        latency: &BTreeMap<ServiceName, crate::latency::Latency>,
    ) -> PeriodReport {
        let mut all = crate::latency::Latency::default();
        for (name, l) in latency {
            all.add(l);
            self.services.entry(name.clone()).or_default().probe_latency = l.percentiles();
        }
        self.overall.probe_latency = all.percentiles();
        self
    }
}

/// One period's report.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct PeriodReport {
    pub from: Option<Timestamp>,
    pub to: Option<Timestamp>,
    pub overall: Figures,
    pub services: BTreeMap<ServiceName, Figures>,
}

/// `GET /api/v1/report`: this period beside the previous period of the same length.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Report {
    pub current: PeriodReport,
    pub previous: PeriodReport,
}

/// The longest report period: ten years. Longer ones are refused, so that no arithmetic on
/// them (the previous period of the same length before it) can overflow (issue 14, B4).
pub const MAX_PERIOD_DAYS: i64 = 3660;

/// The start of a report period: `24h`, `7d`, `90m` (that long before `now`), an RFC 3339 time,
/// or a date (`2026-11-01`, midnight UTC); at most [`MAX_PERIOD_DAYS`] before `now`.
pub fn parse_since(text: &str, now: Timestamp) -> Result<Timestamp, String> {
    let text = text.trim();
    let bad = || {
        format!("`{text}` is not a period: write e.g. 24h, 7d, 30d, or a date such as 2026-11-01")
    };
    let max = jiff::SignedDuration::from_hours(MAX_PERIOD_DAYS * 24);
    let too_long =
        || format!("`{text}` is too long ago: a report covers at most {MAX_PERIOD_DAYS} days");
    let ago = |d: jiff::SignedDuration| {
        if d > max {
            return Err(too_long());
        }
        now.checked_sub(d).map_err(|_| bad())
    };
    let from = if let Some(days) = text
        .strip_suffix('d')
        .and_then(|d| d.trim().parse::<i64>().ok())
    {
        if !(0..=MAX_PERIOD_DAYS).contains(&days) {
            return Err(too_long());
        }
        ago(jiff::SignedDuration::from_hours(days * 24))?
    } else if let Ok(d) = text.parse::<jiff::SignedDuration>() {
        ago(d)?
    } else if let Ok(t) = text.parse::<Timestamp>() {
        t
    } else if let Ok(date) = text.parse::<jiff::civil::Date>() {
        date.to_zoned(jiff::tz::TimeZone::UTC)
            .map(|z| z.timestamp())
            .map_err(|_| bad())?
    } else {
        return Err(bad());
    };
    if now.duration_since(from) > max {
        return Err(too_long());
    }
    Ok(from)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn periods() {
        let now: Timestamp = "2026-11-24T12:00:00Z".parse().unwrap();
        assert_eq!(
            parse_since("7d", now).unwrap().to_string(),
            "2026-11-17T12:00:00Z"
        );
        assert_eq!(
            parse_since("36h", now).unwrap().to_string(),
            "2026-11-23T00:00:00Z"
        );
        assert_eq!(
            parse_since("2026-11-01", now).unwrap().to_string(),
            "2026-11-01T00:00:00Z"
        );
        assert_eq!(
            parse_since("2026-11-20T08:00:00Z", now)
                .unwrap()
                .to_string(),
            "2026-11-20T08:00:00Z"
        );
        assert!(parse_since("last week", now).is_err());
    }

    #[test]
    fn absurd_periods_are_refused_not_panicked_on() {
        let now: Timestamp = "2026-11-24T12:00:00Z".parse().unwrap();
        for text in [
            "999999999999999d",
            "-5d",
            "9223372036854775807d",
            "3661d",
            "99999999h",
            "1000-01-01",
            "-009999-01-01T00:00:00Z",
            "2000000h",
        ] {
            assert!(parse_since(text, now).is_err(), "{text}");
        }
        assert!(parse_since("3660d", now).is_ok());
    }
}
