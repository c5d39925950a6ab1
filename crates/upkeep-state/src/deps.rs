//! The dependency gate's judgement: from the graph (`depends_on`) and the status snapshot, a
//! [`Permit`] for each managed service: whether it may start, whether a running process must
//! stop, and whether it must restart because a dependency came back.
//!
//! Pure: the snapshot comes in as an argument, so every rule is tested on made-up statuses.
//! The daemon holds one [`Gate`] (`crates/upkeep/src/deps.rs`), judges on every snapshot and
//! sends each permit to its supervisor; the supervisor obeys without knowing the graph. At a
//! snapshot, only the services whose judgement may have changed are judged again
//! ([`Gate::judge_changed`]): at a cold start of 100 services the snapshot changes hundreds of
//! times, mostly for one or two services, and judging all 100 at each was a twentieth of the
//! daemon's CPU.
//!
//! Rules:
//! - a dependency satisfies its condition when its [`Level`] reaches it: `started` (its
//!   process runs), `ready` (the run counts as ready), `healthy` (ready, and every probe
//!   passes); an external service is started always, ready and healthy when its probes pass;
//! - a service may start when every dependency satisfies its condition; otherwise its permit
//!   says what it waits for (`upkeep status` shows it);
//! - a dependency goes down, for a running dependent, when it stops satisfying its condition
//!   or its run changes (it was restarted between two judgements). Then, per the dependent's
//!   `on_dependency_down`: `ignore` keeps it running; `stop` stops it until every dependency
//!   is back; `restart` keeps it running and restarts it once every dependency is back;
//! - stopping goes dependents first ([`Gate::stop_layers`]).

use std::collections::{BTreeMap, BTreeSet};

use jiff::Timestamp;
use upkeep_core::{
    Condition, Dependency, Health, OnDependencyDown, Permit, ServiceName, ServiceStatus, State,
};

/// What the gate knows of one service's config.
#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    /// upkeep runs it (an external service is only watched, and waits for nothing).
    pub managed: bool,
    pub depends_on: Vec<Dependency>,
    pub on_down: OnDependencyDown,
}

/// How far a service has come, in the terms of [`Condition`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    /// Not running (or stopping).
    None,
    Started,
    Ready,
    Healthy,
}

impl Level {
    fn reaches(self, c: Condition) -> bool {
        self >= match c {
            Condition::Started => Level::Started,
            Condition::Ready => Level::Ready,
            Condition::Healthy => Level::Healthy,
        }
    }
}

/// The level of a service whose status is `status` (None: state has not seen it yet).
pub fn level(status: Option<&ServiceStatus>, managed: bool) -> Level {
    let pass = |s: &ServiceStatus| {
        s.probes
            .values()
            .all(|p| matches!(p.health, Health::Up | Health::Degraded))
    };
    if !managed {
        // Only its probes speak for it: with no verdict (a status carried over from the last
        // daemon, before its probes are known), it is not healthy (break-it, session 12).
        return match status {
            Some(s) if !s.probes.is_empty() && pass(s) => Level::Healthy,
            _ => Level::Started,
        };
    }
    let Some(s) = status else {
        return Level::None;
    };
    if s.pid.is_none() || s.state == State::Stopping {
        Level::None
    } else if !s.ready {
        Level::Started
    } else if pass(s) && s.state != State::Down {
        Level::Healthy
    } else {
        Level::Ready
    }
}

/// A run of a managed service, to tell a restarted dependency from one that stayed.
type Run = Option<(u32, Timestamp)>;

fn run_of(status: Option<&ServiceStatus>, managed: bool) -> Run {
    let s = status.filter(|_| managed)?;
    Some((s.pid?, s.since?))
}

/// What the gate remembers of one dependent between judgements.
#[derive(Debug, Default)]
struct Memory {
    permit: Permit,
    /// The run of each satisfied dependency while the dependent ran.
    held: BTreeMap<ServiceName, Run>,
    /// A dependency went down while the dependent ran (`stop` or `restart`): why.
    pending: Option<String>,
}

/// What a judgement reads of one service's status, as itself or as a dependency: a service
/// is judged again only when this changed for it or for one of its dependencies.
#[derive(Debug, Clone, PartialEq)]
struct Seen {
    /// None: not in the snapshot.
    state: Option<State>,
    level: Level,
    run: Run,
    running: bool,
}

/// The graph, and what it remembers of each dependent.
#[derive(Debug, Default)]
pub struct Gate {
    nodes: BTreeMap<ServiceName, Node>,
    memory: BTreeMap<ServiceName, Memory>,
    /// Who depends on each service (made again from `nodes` at each change of the graph).
    dependents: BTreeMap<ServiceName, BTreeSet<ServiceName>>,
    /// What the last judgement read of each service.
    seen: BTreeMap<ServiceName, Seen>,
    /// Services whose place in the graph changed since the last judgement: they and their
    /// dependents are judged again whatever their statuses.
    stale: BTreeSet<ServiceName>,
}

impl Gate {
    /// Adds a service or replaces its node (reload). What it remembers stays.
    pub fn set(&mut self, name: ServiceName, node: Node) {
        self.stale.insert(name.clone());
        self.nodes.insert(name, node);
        self.find_dependents();
    }

    pub fn remove(&mut self, name: &ServiceName) {
        self.nodes.remove(name);
        self.memory.remove(name);
        // Its dependents now wait for a service that is not configured.
        self.stale.insert(name.clone());
        self.find_dependents();
    }

    fn find_dependents(&mut self) {
        self.dependents.clear();
        for (name, node) in &self.nodes {
            for dep in &node.depends_on {
                self.dependents
                    .entry(dep.service.clone())
                    .or_default()
                    .insert(name.clone());
            }
        }
    }

    pub fn depends_on(&self, name: &ServiceName) -> &[Dependency] {
        self.nodes
            .get(name)
            .map_or(&[], |n| n.depends_on.as_slice())
    }

    /// The permit of `name` as last judged (go, for one never judged).
    pub fn permit(&self, name: &ServiceName) -> Permit {
        self.memory
            .get(name)
            .map(|m| m.permit.clone())
            .unwrap_or_default()
    }

    /// Judges every managed service against `statuses` and returns each one's permit.
    pub fn judge(
        &mut self,
        statuses: &BTreeMap<ServiceName, ServiceStatus>,
    ) -> Vec<(ServiceName, Permit)> {
        self.read(statuses);
        self.stale.clear();
        let names: Vec<ServiceName> = self.nodes.keys().cloned().collect();
        names
            .iter()
            .filter_map(|name| self.judge_one(name, statuses))
            .collect()
    }

    /// Judges against `statuses` only the managed services whose permit may differ from their
    /// last: those whose own status or a dependency's changed in what a judgement reads, and
    /// those whose place in the graph changed. Each gets the permit [`Gate::judge`] would
    /// give it; the others' stay as they were (judged again with nothing new, a permit does
    /// not change).
    pub fn judge_changed(
        &mut self,
        statuses: &BTreeMap<ServiceName, ServiceStatus>,
    ) -> Vec<(ServiceName, Permit)> {
        let mut changed = self.read(statuses);
        changed.append(&mut self.stale);
        let mut dirty = BTreeSet::new();
        for name in changed {
            if let Some(d) = self.dependents.get(&name) {
                dirty.extend(d.iter().cloned());
            }
            dirty.insert(name);
        }
        dirty
            .iter()
            .filter_map(|name| self.judge_one(name, statuses))
            .collect()
    }

    /// Reads what a judgement reads of every service in the graph or in `statuses`, and
    /// returns the services for which it changed since the last reading.
    fn read(&mut self, statuses: &BTreeMap<ServiceName, ServiceStatus>) -> BTreeSet<ServiceName> {
        let mut changed = BTreeSet::new();
        let mut seen = BTreeMap::new();
        for name in self.nodes.keys().chain(statuses.keys()) {
            if seen.contains_key(name) {
                continue;
            }
            let status = statuses.get(name);
            let managed = self.nodes.get(name).is_none_or(|n| n.managed);
            let now = Seen {
                state: status.map(|s| s.state),
                level: level(status, managed),
                run: run_of(status, managed),
                running: status.is_some_and(|s| s.pid.is_some() && s.state != State::Stopping),
            };
            if self.seen.remove(name).as_ref() != Some(&now) {
                changed.insert(name.clone());
            }
            seen.insert(name.clone(), now);
        }
        // Gone from both since: its dependents are told.
        changed.extend(std::mem::replace(&mut self.seen, seen).into_keys());
        changed
    }

    /// Judges `name` (None: not a managed service of the graph).
    fn judge_one(
        &mut self,
        name: &ServiceName,
        statuses: &BTreeMap<ServiceName, ServiceStatus>,
    ) -> Option<(ServiceName, Permit)> {
        let node = self.nodes.get(name).filter(|n| n.managed)?;
        let me = statuses.get(name);
        let running = me.is_some_and(|s| s.pid.is_some() && s.state != State::Stopping);
        let mem = self.memory.entry(name.clone()).or_default();
        let mut unmet = Vec::new();
        let mut went_down = Vec::new();
        for dep in &node.depends_on {
            let managed = self.nodes.get(&dep.service).is_none_or(|n| n.managed);
            let status = statuses.get(&dep.service);
            let satisfied = level(status, managed).reaches(dep.condition);
            let run = run_of(status, managed);
            if !satisfied {
                let now = match (status, self.nodes.contains_key(&dep.service)) {
                    (_, false) => "not configured".to_owned(),
                    (Some(s), true) => format!("it is {}", s.state),
                    (None, true) => "it is not running yet".to_owned(),
                };
                unmet.push(format!("{} to be {} ({now})", dep.service, dep.condition));
            }
            if !running {
                continue;
            }
            match mem.held.get(&dep.service) {
                Some(before) if !satisfied || *before != run => {
                    went_down.push(dep.service.to_string());
                    if satisfied {
                        mem.held.insert(dep.service.clone(), run);
                    } else {
                        mem.held.remove(&dep.service);
                    }
                }
                None if satisfied => {
                    mem.held.insert(dep.service.clone(), run);
                }
                _ => {}
            }
        }
        if !running {
            // Nothing runs that could be stopped or restarted; its next start is fresh.
            mem.held.clear();
            mem.pending = None;
        }
        if !went_down.is_empty() && node.on_down != OnDependencyDown::Ignore {
            mem.pending = Some(format!("{} went down", went_down.join(", ")));
        }
        let go = unmet.is_empty();
        let mut permit = mem.permit.clone();
        permit.wait = (!go).then(|| format!("waiting for {}", unmet.join(", ")));
        permit.stop = !go && node.on_down == OnDependencyDown::Stop && mem.pending.is_some();
        if go && let Some(why) = mem.pending.take() {
            // Back before it could stop (`stop`), or back at last (`restart`): a run
            // that began with the old dependency restarts.
            permit.restarts += 1;
            permit.restart_reason = format!("{why} and is back");
        }
        mem.permit = permit.clone();
        Some((name.clone(), permit))
    }

    /// `names` in the order to stop them: layers, each of services no other service of
    /// `names` still waiting to stop depends on (dependents first); the services of one layer
    /// may stop at once.
    pub fn stop_layers(&self, names: &[ServiceName]) -> Vec<Vec<ServiceName>> {
        let mut left: BTreeSet<&ServiceName> = names.iter().collect();
        let mut layers = Vec::new();
        while !left.is_empty() {
            let needed = |n: &ServiceName| {
                left.iter()
                    .any(|m| self.depends_on(m).iter().any(|d| &d.service == n))
            };
            let mut layer: Vec<ServiceName> = left
                .iter()
                .filter(|n| !needed(n))
                .map(|n| (*n).clone())
                .collect();
            if layer.is_empty() {
                // A cycle, which validation refuses: stop the rest together.
                layer = left.iter().map(|n| (*n).clone()).collect();
            }
            for n in &layer {
                left.remove(n);
            }
            layers.push(layer);
        }
        layers
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use upkeep_core::ProbeStatus;

    fn n(s: &str) -> ServiceName {
        ServiceName::new(s).unwrap()
    }

    fn t(secs: i64) -> Timestamp {
        Timestamp::from_second(1_800_000_000 + secs).unwrap()
    }

    fn dep(service: &str, condition: Condition) -> Dependency {
        Dependency {
            service: n(service),
            condition,
        }
    }

    /// A gate over db (managed), pg (external, one probe) and `api` depending on both as
    /// given, reacting with `on_down`.
    fn gate(deps: Vec<Dependency>, on_down: OnDependencyDown) -> Gate {
        let mut g = Gate::default();
        let node = |managed, depends_on| Node {
            managed,
            depends_on,
            on_down: OnDependencyDown::Ignore,
        };
        g.set(n("db"), node(true, vec![]));
        g.set(n("pg"), node(false, vec![]));
        g.set(
            n("api"),
            Node {
                managed: true,
                depends_on: deps,
                on_down,
            },
        );
        g
    }

    /// Statuses: `(name, state, pid and start second, ready, probe health)`.
    type Row = (
        &'static str,
        State,
        Option<(u32, i64)>,
        bool,
        Option<Health>,
    );

    fn statuses(rows: &[Row]) -> BTreeMap<ServiceName, ServiceStatus> {
        rows.iter()
            .map(|(name, state, run, ready, probe)| {
                let mut s = ServiceStatus::new(n(name));
                s.state = *state;
                s.pid = run.map(|r| r.0);
                s.since = run.map(|r| t(r.1));
                s.ready = *ready;
                if let Some(h) = probe {
                    s.probes.insert(
                        "tcp".into(),
                        ProbeStatus {
                            health: *h,
                            reason: String::new(),
                            last: None,
                        },
                    );
                }
                (n(name), s)
            })
            .collect()
    }

    fn api(g: &mut Gate, rows: &[Row]) -> Permit {
        let permits = g.judge(&statuses(rows));
        permits
            .into_iter()
            .find(|(name, _)| name.as_str() == "api")
            .unwrap()
            .1
    }

    use Health::{Down as Bad, Up as Good};
    const DB_STARTING: Row = ("db", State::Starting, Some((10, 0)), false, None);
    const DB_UP: Row = ("db", State::Up, Some((10, 0)), true, None);
    const DB_UP_AGAIN: Row = ("db", State::Up, Some((11, 5)), true, None);
    const DB_DOWN: Row = ("db", State::Down, None, false, None);
    const API_RUNS: Row = ("api", State::Up, Some((20, 1)), true, None);
    const API_WAITS: Row = ("api", State::Starting, None, false, None);

    #[test]
    fn levels_follow_the_run_readiness_and_probes() {
        let s = statuses(&[
            ("a", State::Stopped, None, false, None),
            ("b", State::Starting, Some((1, 0)), false, Some(Good)),
            (
                "c",
                State::Starting,
                Some((1, 0)),
                true,
                Some(Health::Unknown),
            ),
            ("d", State::Up, Some((1, 0)), true, Some(Health::Degraded)),
            ("e", State::Stopping, Some((1, 0)), true, None),
            ("f", State::Down, Some((1, 0)), true, None),
            ("g", State::Down, None, false, Some(Bad)),
            ("h", State::Up, None, false, Some(Good)),
        ]);
        let lv = |name: &str, managed| level(s.get(&n(name)), managed);
        assert_eq!(lv("a", true), Level::None);
        assert_eq!(lv("b", true), Level::Started);
        assert_eq!(lv("c", true), Level::Ready);
        assert_eq!(lv("d", true), Level::Healthy);
        assert_eq!(lv("e", true), Level::None, "stopping");
        assert_eq!(lv("f", true), Level::Ready, "hung: ready, not healthy");
        assert_eq!(lv("nobody", true), Level::None);
        // External: watched always, ready and healthy when its probes pass.
        assert_eq!(lv("g", false), Level::Started);
        assert_eq!(lv("h", false), Level::Healthy);
        // An external service without a probe verdict (as the last daemon left it) is not.
        assert_eq!(lv("a", false), Level::Started);
        assert_eq!(lv("nobody", false), Level::Started);
    }

    #[test]
    fn a_service_waits_until_every_condition_holds_and_says_for_what() {
        let deps = vec![dep("db", Condition::Ready), dep("pg", Condition::Healthy)];
        let mut g = gate(deps, OnDependencyDown::Ignore);
        let pg_bad: Row = ("pg", State::Down, None, false, Some(Bad));
        let pg_good: Row = ("pg", State::Up, None, false, Some(Good));
        let p = api(&mut g, &[DB_STARTING, pg_bad, API_WAITS]);
        assert_eq!(
            p.wait.as_deref(),
            Some("waiting for db to be ready (it is starting), pg to be healthy (it is down)")
        );
        let p = api(&mut g, &[DB_UP, pg_bad, API_WAITS]);
        assert_eq!(
            p.wait.as_deref(),
            Some("waiting for pg to be healthy (it is down)")
        );
        let p = api(&mut g, &[DB_UP, pg_good, API_WAITS]);
        assert_eq!(p, Permit::default(), "go");
        // `started` is met by a run that is not ready yet.
        let mut g = gate(
            vec![dep("db", Condition::Started)],
            OnDependencyDown::Ignore,
        );
        assert_eq!(api(&mut g, &[DB_STARTING, API_WAITS]).wait, None);
        // A service with no dependencies always may; an external one gets no permit.
        let permits = g.judge(&statuses(&[]));
        let names: Vec<&str> = permits.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["api", "db"]);
        assert_eq!(permits[1].1, Permit::default());
    }

    #[test]
    fn ignore_keeps_running_and_only_the_next_start_waits() {
        let mut g = gate(vec![dep("db", Condition::Ready)], OnDependencyDown::Ignore);
        api(&mut g, &[DB_UP, API_RUNS]);
        let p = api(&mut g, &[DB_DOWN, API_RUNS]);
        assert!(p.wait.is_some() && !p.stop);
        let p = api(&mut g, &[DB_UP_AGAIN, API_RUNS]);
        assert_eq!(p, Permit::default(), "no restart");
    }

    #[test]
    fn stop_stops_while_a_dependency_is_down_and_starts_when_it_is_back() {
        let mut g = gate(vec![dep("db", Condition::Ready)], OnDependencyDown::Stop);
        api(&mut g, &[DB_UP, API_RUNS]);
        let p = api(&mut g, &[DB_DOWN, API_RUNS]);
        assert!(p.stop, "{p:?}");
        assert_eq!(
            p.wait.as_deref(),
            Some("waiting for db to be ready (it is down)")
        );
        // The supervisor stopped it; it waits, and goes once db is back, with no restart.
        let p = api(&mut g, &[DB_STARTING, API_WAITS]);
        assert!(!p.stop && p.wait.is_some());
        let p = api(&mut g, &[DB_UP_AGAIN, API_WAITS]);
        assert_eq!(p, Permit::default());
        // Back before the dependent could be stopped (db restarted between two judgements):
        // the dependent restarts instead.
        api(&mut g, &[DB_UP_AGAIN, API_RUNS]);
        let p = api(&mut g, &[DB_UP, API_RUNS]);
        assert_eq!((p.wait.clone(), p.stop, p.restarts), (None, false, 1));
        assert_eq!(p.restart_reason, "db went down and is back");
    }

    #[test]
    fn restart_restarts_once_every_dependency_is_back() {
        let mut g = gate(vec![dep("db", Condition::Ready)], OnDependencyDown::Restart);
        api(&mut g, &[DB_UP, API_RUNS]);
        let p = api(&mut g, &[DB_DOWN, API_RUNS]);
        assert!(!p.stop && p.wait.is_some() && p.restarts == 0, "{p:?}");
        let p = api(&mut g, &[DB_STARTING, API_RUNS]);
        assert_eq!(p.restarts, 0, "not ready yet");
        let p = api(&mut g, &[DB_UP_AGAIN, API_RUNS]);
        assert_eq!((p.wait.clone(), p.restarts), (None, 1));
        // Judged again with nothing new: no second restart.
        let p = api(&mut g, &[DB_UP_AGAIN, API_RUNS]);
        assert_eq!(p.restarts, 1);
        // A dependent that is not running when its dependency comes back just starts.
        api(&mut g, &[DB_DOWN, API_RUNS]);
        api(&mut g, &[DB_DOWN, API_WAITS]);
        let p = api(&mut g, &[DB_UP, API_WAITS]);
        assert_eq!((p.wait, p.restarts), (None, 1));
        // An edge added by a reload to a dependency that is not ready is no "down".
        let mut g = gate(vec![], OnDependencyDown::Restart);
        api(&mut g, &[DB_STARTING, API_RUNS]);
        g.set(
            n("api"),
            Node {
                managed: true,
                depends_on: vec![dep("db", Condition::Ready)],
                on_down: OnDependencyDown::Restart,
            },
        );
        let p = api(&mut g, &[DB_STARTING, API_RUNS]);
        assert!(p.wait.is_some());
        let p = api(&mut g, &[DB_UP, API_RUNS]);
        assert_eq!(p.restarts, 0);
    }

    /// Judging only what changed gives each service the permit judging everything gives, at
    /// every step (restarts, outages, an edge added, a service removed), and leaves alone the
    /// services nothing changed for.
    #[test]
    fn judging_what_changed_gives_the_permits_judging_all_gives() {
        let node = |deps: &[&str], on_down| Node {
            managed: true,
            depends_on: deps.iter().map(|d| dep(d, Condition::Ready)).collect(),
            on_down,
        };
        let graph = |g: &mut Gate| {
            g.set(n("db"), node(&[], OnDependencyDown::Ignore));
            g.set(n("api"), node(&["db"], OnDependencyDown::Restart));
            g.set(n("web"), node(&["api"], OnDependencyDown::Stop));
            g.set(n("lone"), node(&[], OnDependencyDown::Ignore));
        };
        let (mut all, mut changed) = (Gate::default(), Gate::default());
        graph(&mut all);
        graph(&mut changed);
        const API_STARTING: Row = ("api", State::Starting, Some((20, 1)), false, None);
        const API_UP_AGAIN: Row = ("api", State::Up, Some((21, 6)), true, None);
        const WEB_RUNS: Row = ("web", State::Up, Some((30, 2)), true, None);
        const LONE: Row = ("lone", State::Up, Some((40, 0)), true, None);
        let steps: Vec<Vec<Row>> = vec![
            vec![],
            vec![DB_STARTING, LONE],
            vec![DB_UP, LONE],
            vec![DB_UP, API_STARTING, LONE],
            vec![DB_UP, API_RUNS, LONE],
            vec![DB_UP, API_RUNS, WEB_RUNS, LONE],
            vec![DB_UP_AGAIN, API_RUNS, WEB_RUNS, LONE],
            vec![DB_UP_AGAIN, API_UP_AGAIN, WEB_RUNS, LONE],
            vec![DB_DOWN, API_UP_AGAIN, WEB_RUNS, LONE],
            vec![DB_UP, API_UP_AGAIN, WEB_RUNS, LONE],
            vec![DB_UP, API_UP_AGAIN, WEB_RUNS, LONE],
        ];
        let mut skipped = 0;
        for (i, rows) in steps.iter().enumerate() {
            if i == 8 {
                // A reload: lone now needs db, and api is removed (web waits for it).
                for g in [&mut all, &mut changed] {
                    g.set(n("lone"), node(&["db"], OnDependencyDown::Stop));
                    g.remove(&n("api"));
                }
            }
            let st = statuses(rows);
            let want = all.judge(&st);
            let got: BTreeMap<ServiceName, Permit> =
                changed.judge_changed(&st).into_iter().collect();
            skipped += want.len() - got.len();
            for (name, permit) in want {
                let have = got
                    .get(&name)
                    .cloned()
                    .unwrap_or_else(|| changed.permit(&name));
                assert_eq!(have, permit, "step {i}: {name}");
            }
        }
        assert!(skipped > 10, "only {skipped} judgements left out");
    }

    #[test]
    fn stopping_goes_dependents_first() {
        let mut g = Gate::default();
        let node = |deps: &[&str]| Node {
            managed: true,
            depends_on: deps.iter().map(|d| dep(d, Condition::Ready)).collect(),
            on_down: OnDependencyDown::Ignore,
        };
        g.set(n("db"), node(&[]));
        g.set(n("cache"), node(&[]));
        g.set(n("api"), node(&["db", "cache"]));
        g.set(n("web"), node(&["api"]));
        g.set(n("worker"), node(&["db"]));
        g.set(n("lone"), node(&[]));
        let all: Vec<ServiceName> = ["db", "cache", "api", "web", "worker", "lone"]
            .map(n)
            .to_vec();
        let layers = g.stop_layers(&all);
        let layers: Vec<Vec<&str>> = layers
            .iter()
            .map(|l| l.iter().map(ServiceName::as_str).collect())
            .collect();
        assert_eq!(
            layers,
            vec![
                vec!["lone", "web", "worker"],
                vec!["api"],
                vec!["cache", "db"]
            ]
        );
        // Only among those asked: web's dependency on api does not hold db back.
        let some = vec![n("db"), n("web")];
        assert_eq!(g.stop_layers(&some).len(), 1);
    }
}
