//! `/metrics`: the Prometheus text format of what the daemon knows.
//!
//! Per service: state (one series per state, 1 for the current one), up, restarts, open
//! incident; per probe: up; per window (24h, 7d, 30d): availability, incidents, MTTR,
//! automatic heals, manual interventions; and the daemon's own process metrics. Labels are of
//! bounded cardinality: service and probe names from the config, states and windows from
//! fixed lists. Built fresh per scrape from the data [`Control::metrics`] returns.

use std::fmt::Write;

use upkeep_core::report::PeriodReport;
use upkeep_core::{Health, ServiceStatus, State};

/// What the daemon hands over for one scrape.
#[derive(Debug, Clone, Default)]
pub struct MetricsData {
    pub services: Vec<ServiceStatus>,
    /// ("24h", report), ("7d", ...), ...; empty while the store is unreachable.
    pub windows: Vec<(&'static str, PeriodReport)>,
    /// Whether the store answered this scrape's reads (the windows come from it).
    pub store_up: bool,
    pub process: ProcessStats,
    /// How late probe checks started: (upper bound in seconds, cumulative count) per bucket,
    /// then the sum of all lags in seconds.
    pub probe_lag: (Vec<(f64, u64)>, f64),
}

/// The daemon's own process, from /proc/self.
#[derive(Debug, Clone, Default)]
pub struct ProcessStats {
    pub cpu_seconds: f64,
    pub resident_bytes: u64,
    pub start_time_seconds: f64,
    pub open_fds: u64,
    pub threads: u64,
}

const STATES: [State; 11] = [
    State::Starting,
    State::Up,
    State::Degraded,
    State::Down,
    State::Recovering,
    State::Stopping,
    State::Stopped,
    State::Exited,
    State::Failed,
    State::Maintenance,
    State::Unknown,
];

/// Writes the Prometheus text exposition format (version 0.0.4): `# HELP`, `# TYPE`, then one
/// line per sample. Written here rather than with prometheus-client, which speaks only
/// OpenMetrics (a counter family there is named without `_total`, which Prometheus's text
/// parser and `promtool check metrics` reject).
#[derive(Default)]
struct Exposition {
    out: String,
}

type Labels<'a> = Vec<(&'static str, &'a str)>;

impl Exposition {
    fn family<'a>(
        &mut self,
        name: &str,
        kind: &str,
        help: &str,
        samples: impl IntoIterator<Item = (Labels<'a>, f64)>,
    ) {
        let _ = writeln!(
            self.out,
            "# HELP {name} {}",
            help.replace('\\', "\\\\").replace('\n', "\\n")
        );
        let _ = writeln!(self.out, "# TYPE {name} {kind}");
        for (labels, value) in samples {
            self.out.push_str(name);
            if !labels.is_empty() {
                let parts: Vec<String> = labels
                    .iter()
                    .map(|(k, v)| {
                        format!(
                            "{k}=\"{}\"",
                            v.replace('\\', "\\\\")
                                .replace('"', "\\\"")
                                .replace('\n', "\\n")
                        )
                    })
                    .collect();
                let _ = write!(self.out, "{{{}}}", parts.join(","));
            }
            let _ = writeln!(self.out, " {value}");
        }
    }
}

impl Exposition {
    /// A histogram from cumulative bucket counts (the last count is the total).
    fn histogram(&mut self, name: &str, help: &str, buckets: &[(f64, u64)], sum: f64) {
        let _ = writeln!(self.out, "# HELP {name} {help}");
        let _ = writeln!(self.out, "# TYPE {name} histogram");
        let total = buckets.last().map_or(0, |b| b.1);
        for (le, n) in buckets {
            let le = if le.is_infinite() {
                "+Inf".to_string()
            } else {
                le.to_string()
            };
            let _ = writeln!(self.out, "{name}_bucket{{le=\"{le}\"}} {n}");
        }
        if buckets.last().is_none_or(|b| !b.0.is_infinite()) {
            let _ = writeln!(self.out, "{name}_bucket{{le=\"+Inf\"}} {total}");
        }
        let _ = writeln!(self.out, "{name}_sum {sum}");
        let _ = writeln!(self.out, "{name}_count {total}");
    }
}

fn flag(b: bool) -> f64 {
    if b { 1.0 } else { 0.0 }
}

/// Encodes `data` in the Prometheus text format.
pub fn encode(data: &MetricsData) -> String {
    let mut x = Exposition::default();
    let svcs: Vec<(String, &ServiceStatus)> = data
        .services
        .iter()
        .map(|s| (s.name.to_string(), s))
        .collect();
    let per_service = |f: &dyn Fn(&ServiceStatus) -> f64| -> Vec<(Labels<'_>, f64)> {
        svcs.iter()
            .map(|(n, s)| (vec![("service", n.as_str())], f(s)))
            .collect()
    };
    x.family(
        "upkeep_service_up",
        "gauge",
        "1 when the service is up or degraded, else 0",
        per_service(&|s| flag(s.state.is_available())),
    );
    x.family(
        "upkeep_service_state",
        "gauge",
        "1 for the state the service is in, 0 for the others",
        svcs.iter().flat_map(|(n, s)| {
            STATES.iter().map(move |st| {
                (
                    vec![("service", n.as_str()), ("state", st.as_str())],
                    flag(s.state == *st),
                )
            })
        }),
    );
    x.family(
        "upkeep_service_restarts",
        "gauge",
        "Restarts by policy since an operator last started the service",
        per_service(&|s| s.restarts as f64),
    );
    x.family(
        "upkeep_service_incident_open",
        "gauge",
        "1 while the service has an open incident",
        per_service(&|s| flag(s.incident_since.is_some())),
    );
    x.family(
        "upkeep_probe_up",
        "gauge",
        "1 when the probe passes (up or degraded), 0 when down; absent before a verdict",
        svcs.iter().flat_map(|(n, s)| {
            s.probes.iter().filter_map(move |(p, st)| {
                let v = match st.health {
                    Health::Up | Health::Degraded => 1.0,
                    Health::Down => 0.0,
                    Health::Unknown => return None,
                };
                Some((vec![("service", n.as_str()), ("probe", p.as_str())], v))
            })
        }),
    );
    x.family(
        "upkeep_probe_latency_seconds",
        "gauge",
        "How long the probe's most recent check took",
        svcs.iter().flat_map(|(n, s)| {
            s.probes.iter().filter_map(move |(p, st)| {
                let last = st.last.as_ref()?;
                Some((
                    vec![("service", n.as_str()), ("probe", p.as_str())],
                    last.latency_ms / 1000.0,
                ))
            })
        }),
    );

    x.family(
        "upkeep_store_up",
        "gauge",
        "1 when the store (SQLite or PostgreSQL) answers; while 0 the windowed figures are absent and events wait in memory",
        std::iter::once((Vec::new(), flag(data.store_up))),
    );

    // Per window: all services (service="") and each one.
    let rows: Vec<(&str, String, &upkeep_core::report::Figures)> = data
        .windows
        .iter()
        .flat_map(|(w, r)| {
            std::iter::once((*w, String::new(), &r.overall))
                .chain(r.services.iter().map(move |(n, f)| (*w, n.to_string(), f)))
        })
        .collect();
    let windowed =
        |f: &dyn Fn(&upkeep_core::report::Figures) -> Option<f64>| -> Vec<(Labels<'_>, f64)> {
            rows.iter()
                .filter_map(|(w, n, fig)| {
                    Some((vec![("service", n.as_str()), ("window", *w)], f(fig)?))
                })
                .collect()
        };
    x.family("upkeep_availability_ratio", "gauge", "Available time over available plus outage time in the window; service=\"\" is all services", windowed(&|f| f.availability));
    x.family(
        "upkeep_incidents",
        "gauge",
        "Incidents that began in the window",
        windowed(&|f| Some(f.incidents as f64)),
    );
    x.family(
        "upkeep_mttr_seconds",
        "gauge",
        "Mean time to recovery of the window's resolved incidents",
        windowed(&|f| f.mttr_ms.map(|m| m as f64 / 1000.0)),
    );
    x.family(
        "upkeep_automatic_heals",
        "gauge",
        "Automatic restarts (after a crash or failed probes) in the window",
        windowed(&|f| Some(f.automatic_heals as f64)),
    );
    x.family(
        "upkeep_manual_interventions",
        "gauge",
        "Operator actions in the window",
        windowed(&|f| Some(f.manual_interventions as f64)),
    );
    x.family(
        "upkeep_maintenance_seconds",
        "gauge",
        "Time in maintenance in the window, left out of the availability",
        windowed(&|f| Some(f.maintenance_ms as f64 / 1000.0)),
    );
    x.family(
        "upkeep_unwatched_seconds",
        "gauge",
        "Time no daemon watched in the window (after a killed daemon), left out of the availability",
        windowed(&|f| Some(f.unknown_ms as f64 / 1000.0)),
    );
    x.family(
        "upkeep_drills",
        "gauge",
        "Drills that began in the window",
        windowed(&|f| Some(f.drills as f64)),
    );
    x.family(
        "upkeep_drill_seconds",
        "gauge",
        "Time from a drill's fault to recovery in the window, left out of the availability",
        windowed(&|f| Some(f.drill_ms as f64 / 1000.0)),
    );

    for (q, name, help) in [
        (
            0.5,
            "upkeep_probe_latency_p50_seconds",
            "Median probe response time in the window (answered checks, whole hours, within 19%)",
        ),
        (
            0.99,
            "upkeep_probe_latency_p99_seconds",
            "99th percentile of probe response time in the window (answered checks, whole hours, within 19%)",
        ),
    ] {
        x.family(
            name,
            "gauge",
            help,
            windowed(&|f| {
                let p = f.probe_latency.as_ref()?;
                Some(if q == 0.5 { p.p50_ms } else { p.p99_ms } / 1000.0)
            }),
        );
    }

    x.histogram(
        "upkeep_probe_lag_seconds",
        "How late probe checks started after their scheduled time",
        &data.probe_lag.0,
        data.probe_lag.1,
    );

    let p = &data.process;
    let one = |v: f64| vec![(Labels::new(), v)];
    x.family(
        "process_cpu_seconds_total",
        "counter",
        "CPU time of the upkeep daemon in seconds",
        one(p.cpu_seconds),
    );
    x.family(
        "process_resident_memory_bytes",
        "gauge",
        "Resident memory of the upkeep daemon",
        one(p.resident_bytes as f64),
    );
    x.family(
        "process_start_time_seconds",
        "gauge",
        "Start time of the upkeep daemon, seconds since the Unix epoch",
        one(p.start_time_seconds),
    );
    x.family(
        "process_open_fds",
        "gauge",
        "Open file descriptors of the upkeep daemon",
        one(p.open_fds as f64),
    );
    x.family(
        "process_threads",
        "gauge",
        "Threads of the upkeep daemon",
        one(p.threads as f64),
    );
    x.out
}

#[cfg(test)]
mod tests {
    use super::*;
    use upkeep_core::{ProbeStatus, ServiceName};

    #[test]
    fn encodes_states_probes_windows_and_process() {
        let mut s = ServiceStatus::new(ServiceName::new("web").unwrap());
        s.state = State::Degraded;
        s.probes.insert(
            "http".into(),
            ProbeStatus {
                health: Health::Degraded,
                reason: "slow".into(),
                last: Some(upkeep_core::LastCheck {
                    at: jiff::Timestamp::UNIX_EPOCH,
                    healthy: true,
                    degraded: true,
                    reason: "slow".into(),
                    latency_ms: 1500.0,
                }),
            },
        );
        s.probes.insert("tcp".into(), ProbeStatus::unknown());
        let mut report = PeriodReport::default();
        report.overall.availability = Some(0.999);
        report.overall.mttr_ms = Some(1500);
        let data = MetricsData {
            services: vec![s],
            windows: vec![("24h", report)],
            store_up: true,
            process: ProcessStats {
                cpu_seconds: 1.5,
                ..Default::default()
            },
            probe_lag: (vec![(0.001, 3), (0.01, 4), (f64::INFINITY, 5)], 2.5),
        };
        let text = encode(&data);
        for want in [
            "upkeep_service_up{service=\"web\"} 1",
            "upkeep_service_state{service=\"web\",state=\"degraded\"} 1",
            "upkeep_service_state{service=\"web\",state=\"down\"} 0",
            "upkeep_probe_up{service=\"web\",probe=\"http\"} 1",
            "upkeep_probe_latency_seconds{service=\"web\",probe=\"http\"} 1.5",
            "upkeep_availability_ratio{service=\"\",window=\"24h\"} 0.999",
            "upkeep_mttr_seconds{service=\"\",window=\"24h\"} 1.5",
            "process_cpu_seconds_total 1.5",
            "upkeep_probe_lag_seconds_bucket{le=\"0.001\"} 3",
            "upkeep_probe_lag_seconds_bucket{le=\"+Inf\"} 5",
            "upkeep_probe_lag_seconds_count 5",
            "# TYPE process_cpu_seconds_total counter",
        ] {
            assert!(text.contains(want), "missing {want}:\n{text}");
        }
        assert!(!text.contains("probe=\"tcp\""), "no verdict, no series");
    }

    #[test]
    fn escapes_label_values() {
        let mut x = Exposition::default();
        x.family("m", "gauge", "h", vec![(vec![("l", "a\"b\\c\nd")], 1.0)]);
        assert!(x.out.contains(r#"m{l="a\"b\\c\nd"} 1"#), "{}", x.out);
    }
}
