//! What the public status page shows, as plain data: [`PageModel`], built by the daemon from
//! the status snapshot, the rollups, probe latency, incidents and maintenance windows (never
//! per request), and what follows from it alone (the overall banner, a day's colour, the
//! 30-day uptime). Pure: no I/O, no clock; `render.rs` turns it into bytes.

use jiff::Timestamp;
use serde::Serialize;
use upkeep_core::window::Announcement;
use upkeep_core::{ServiceName, State};

/// Days in the uptime bar.
pub const DAYS: usize = 90;

/// Everything the page shows at one moment.
#[derive(Debug, Clone, Default)]
pub struct PageModel {
    /// The moment the model describes (countdowns and "for N min" count from it).
    pub now: Option<Timestamp>,
    /// The public services, in the order the page lists them (groups in their first
    /// service's order; see [`PageModel::groups`]).
    pub services: Vec<PageService>,
    /// Open incidents, newest first, with their timelines.
    pub incidents: Vec<PageIncident>,
    /// Maintenance under way or to come, soonest first.
    pub windows: Vec<Announcement>,
    /// Resolved incidents and finished maintenance, newest first.
    pub history: Vec<HistoryItem>,
    /// Whether the page offers its subscription form (`[notify.subscribers]` is set).
    pub subscribe: bool,
}

/// One service as the public sees it.
#[derive(Debug, Clone)]
pub struct PageService {
    pub name: ServiceName,
    /// `display_name`, or the name.
    pub display: String,
    pub description: Option<String>,
    pub group: Option<String>,
    pub state: State,
    /// The last [`DAYS`] days, oldest first, today last (empty until the store answered).
    pub days: Vec<Day>,
    /// Median probe response time of each of the last 24 hours, oldest first, for services
    /// with HTTP probes (None: no HTTP probe); an hour without checks is None.
    pub sparkline: Option<Vec<Option<f64>>>,
}

/// One day of a service's uptime bar.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Day {
    pub date: jiff::civil::Date,
    /// Available / (available + outage); None when nothing was observed.
    pub availability: Option<f64>,
    /// Incidents that began that day.
    pub incidents: u32,
    /// Time in maintenance that day.
    pub maintenance_ms: u64,
}

/// A day's colour, by availability.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Shade {
    /// Nothing observed.
    None,
    /// 100 %, or rounds to it (≥ 99.95 %).
    Full,
    /// ≥ 99 %.
    Minor,
    /// ≥ 95 %.
    Major,
    /// Below.
    Bad,
}

impl Day {
    pub fn shade(&self) -> Shade {
        match self.availability {
            None => Shade::None,
            Some(a) if a >= 0.9995 => Shade::Full,
            Some(a) if a >= 0.99 => Shade::Minor,
            Some(a) if a >= 0.95 => Shade::Major,
            Some(_) => Shade::Bad,
        }
    }
}

/// An open incident, as the public sees it: when, which service, and what happened since,
/// in words of the page (never a probe's reason: it may name internal hosts).
#[derive(Debug, Clone)]
pub struct PageIncident {
    pub id: i64,
    pub service: ServiceName,
    pub started: Timestamp,
    pub resolved: Option<Timestamp>,
    pub timeline: Vec<(Timestamp, Step)>,
    /// What people wrote about it.
    pub written: Written,
}

/// What people wrote about an incident (issue 16): the page shows it as written, escaped.
#[derive(Debug, Clone, Default)]
pub struct Written {
    /// An incident opened by hand names itself.
    pub title: Option<String>,
    /// Oldest first.
    pub updates: Vec<(Timestamp, upkeep_core::incident::IncidentStatus, String)>,
    pub postmortem: Option<upkeep_core::incident::Postmortem>,
}

/// A step of an incident's public timeline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    Opened,
    /// The service's state became this.
    Became(State),
    /// Restarted automatically.
    Healed,
    Reopened,
    Resolved,
}

/// A line of the history.
#[derive(Debug, Clone)]
pub enum HistoryItem {
    Incident {
        id: i64,
        service: ServiceName,
        started: Timestamp,
        resolved: Option<Timestamp>,
        written: Written,
    },
    Maintenance(Announcement),
}

impl HistoryItem {
    pub fn at(&self) -> Timestamp {
        match self {
            HistoryItem::Incident { started, .. } => *started,
            HistoryItem::Maintenance(a) => a.start,
        }
    }
}

/// The page's headline, from the services' states.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Overall {
    Up,
    Degraded,
    Outage,
    Maintenance,
    /// Nothing is wrong but something has not come up yet (after a start or a reload): the
    /// page must not say everything is operational while it is not serving.
    Starting,
}

/// How one state counts for the headline and the colour of its label.
pub fn kind_of(state: State) -> Overall {
    match state {
        State::Up => Overall::Up,
        State::Starting => Overall::Starting,
        State::Degraded | State::Recovering | State::Unknown => Overall::Degraded,
        State::Down | State::Failed | State::Stopping | State::Stopped | State::Exited => {
            Overall::Outage
        }
        State::Maintenance => Overall::Maintenance,
    }
}

impl PageModel {
    /// An outage anywhere is the headline; then something degraded; then something still
    /// starting; then maintenance.
    pub fn overall(&self) -> Overall {
        let kinds: Vec<Overall> = self.services.iter().map(|s| kind_of(s.state)).collect();
        [
            Overall::Outage,
            Overall::Degraded,
            Overall::Starting,
            Overall::Maintenance,
        ]
        .into_iter()
        .find(|k| kinds.contains(k))
        .unwrap_or(Overall::Up)
    }

    /// The services by group, groups in the order their first service comes; ungrouped
    /// services first, under no heading.
    pub fn groups(&self) -> Vec<(Option<&str>, Vec<&PageService>)> {
        let mut out: Vec<(Option<&str>, Vec<&PageService>)> = vec![(None, Vec::new())];
        for s in &self.services {
            let g = s.group.as_deref();
            match out.iter_mut().find(|(name, _)| *name == g) {
                Some((_, list)) => list.push(s),
                None => out.push((g, vec![s])),
            }
        }
        out.retain(|(_, list)| !list.is_empty());
        out
    }
}

impl PageService {
    /// Availability over the last `n` days with observations, None if none.
    pub fn uptime(&self, n: usize) -> Option<f64> {
        let recent = &self.days[self.days.len().saturating_sub(n)..];
        let seen: Vec<f64> = recent.iter().filter_map(|d| d.availability).collect();
        (!seen.is_empty()).then(|| seen.iter().sum::<f64>() / seen.len() as f64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn svc(name: &str, group: Option<&str>, state: State) -> PageService {
        PageService {
            name: ServiceName::new(name).unwrap(),
            display: name.into(),
            description: None,
            group: group.map(Into::into),
            state,
            days: Vec::new(),
            sparkline: None,
        }
    }

    fn model(services: Vec<PageService>) -> PageModel {
        PageModel {
            services,
            ..PageModel::default()
        }
    }

    #[test]
    fn the_headline_is_the_worst_kind_outage_first() {
        let m = |states: &[State]| {
            let list = states
                .iter()
                .enumerate()
                .map(|(i, s)| svc(&format!("s{i}"), None, *s))
                .collect();
            model(list).overall()
        };
        assert_eq!(m(&[State::Up, State::Up]), Overall::Up);
        assert_eq!(m(&[]), Overall::Up);
        assert_eq!(m(&[State::Up, State::Maintenance]), Overall::Maintenance);
        assert_eq!(m(&[State::Maintenance, State::Degraded]), Overall::Degraded);
        assert_eq!(
            m(&[State::Degraded, State::Down, State::Maintenance]),
            Overall::Outage
        );
        assert_eq!(m(&[State::Failed]), Overall::Outage);
        assert_eq!(m(&[State::Up, State::Starting]), Overall::Starting);
        assert_eq!(m(&[State::Starting, State::Maintenance]), Overall::Starting);
        assert_eq!(m(&[State::Starting, State::Degraded]), Overall::Degraded);
    }

    #[test]
    fn groups_keep_the_order_of_their_first_service_ungrouped_first() {
        let m = model(vec![
            svc("a", Some("Shop"), State::Up),
            svc("b", None, State::Up),
            svc("c", Some("API"), State::Up),
            svc("d", Some("Shop"), State::Up),
        ]);
        let g: Vec<(Option<&str>, Vec<&str>)> = m
            .groups()
            .into_iter()
            .map(|(n, l)| (n, l.iter().map(|s| s.name.as_str()).collect()))
            .collect();
        assert_eq!(
            g,
            vec![
                (None, vec!["b"]),
                (Some("Shop"), vec!["a", "d"]),
                (Some("API"), vec!["c"]),
            ]
        );
    }

    #[test]
    fn a_day_is_shaded_by_its_availability() {
        let d = |a: Option<f64>| Day {
            date: jiff::civil::date(2026, 11, 1),
            availability: a,
            incidents: 0,
            maintenance_ms: 0,
        };
        assert_eq!(d(None).shade(), Shade::None);
        assert_eq!(d(Some(1.0)).shade(), Shade::Full);
        assert_eq!(d(Some(0.9996)).shade(), Shade::Full);
        assert_eq!(d(Some(0.995)).shade(), Shade::Minor);
        assert_eq!(d(Some(0.96)).shade(), Shade::Major);
        assert_eq!(d(Some(0.5)).shade(), Shade::Bad);
    }

    #[test]
    fn uptime_averages_the_observed_days_only() {
        let mut s = svc("a", None, State::Up);
        for (i, a) in [None, Some(1.0), Some(0.5), None].into_iter().enumerate() {
            s.days.push(Day {
                date: jiff::civil::date(2026, 11, 1 + i as i8),
                availability: a,
                incidents: 0,
                maintenance_ms: 0,
            });
        }
        assert_eq!(s.uptime(30), Some(0.75));
        assert_eq!(s.uptime(1), None);
        assert_eq!(svc("b", None, State::Up).uptime(30), None);
    }
}
