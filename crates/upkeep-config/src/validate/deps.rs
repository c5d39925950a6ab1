//! Dependencies in config: `depends_on` and `on_dependency_down`, and the graph they make.
//!
//! Each entry of `depends_on` is a service name (`"db"`, waiting for it to be ready) or a
//! table (`{ service = "cache", condition = "healthy" }`). A name that is not a service of the
//! file, a service listed twice, and a cycle are refused; a cycle is named whole
//! (`a → b → a`) and located at the entry that closes it. Running the graph (start order,
//! reactions to a dependency going down) is the daemon's dependency gate.
//!
//! Input: the service's raw entries, from `Validator::service`, and every validated service
//! for the cycle check (`Validator::config`). Output: [`Dependency`]s, or problems recorded on
//! the `Validator`, each located at its key.

use std::collections::{BTreeMap, BTreeSet};

use upkeep_core::{Condition, Dependency, OnDependencyDown, ServiceName};

use super::{ServiceConfig, Validator};

const HINT: &str = "write depends_on = [\"db\", { service = \"cache\", condition = \"healthy\" }]";

impl Validator<'_> {
    /// The entries of `services.NAME.depends_on`, each checked against `names` (every
    /// service in the file). None with problems recorded.
    pub(super) fn depends_on(
        &mut self,
        name: &str,
        raw: &[toml::Value],
        names: &BTreeSet<String>,
    ) -> Option<Vec<Dependency>> {
        let before = self.problems.len();
        let mut out: Vec<Dependency> = Vec::new();
        for (i, entry) in raw.iter().enumerate() {
            let index = i.to_string();
            let at = |field: Option<&str>| {
                let mut key = vec!["services", name, "depends_on", index.as_str()];
                key.extend(field);
                key.into_iter().map(str::to_owned).collect::<Vec<_>>()
            };
            let (service, condition, service_key) = match entry {
                toml::Value::String(s) => (s.as_str(), Some(Condition::Ready), at(None)),
                toml::Value::Table(t) => {
                    if let Some(other) = t.keys().find(|k| *k != "service" && *k != "condition") {
                        self.problem(
                            &at(Some(other)),
                            format!("unknown key `{}` in a dependency", other.escape_debug()),
                            Some(HINT.into()),
                        );
                        continue;
                    }
                    let condition = match t.get("condition") {
                        None => Some(Condition::Ready),
                        Some(toml::Value::String(c)) => {
                            let parsed = Condition::parse(c);
                            if parsed.is_none() {
                                self.problem(
                                    &at(Some("condition")),
                                    format!("unknown condition `{}`", c.escape_debug()),
                                    Some("use started, ready or healthy".into()),
                                );
                            }
                            parsed
                        }
                        Some(_) => {
                            self.problem(
                                &at(Some("condition")),
                                "condition is not a string",
                                Some("use started, ready or healthy".into()),
                            );
                            None
                        }
                    };
                    match t.get("service") {
                        Some(toml::Value::String(s)) => {
                            (s.as_str(), condition, at(Some("service")))
                        }
                        _ => {
                            self.problem(
                                &at(None),
                                "a dependency table needs `service`, the name of a service",
                                Some(HINT.into()),
                            );
                            continue;
                        }
                    }
                }
                _ => {
                    self.problem(
                        &at(None),
                        "a dependency is a service name or a table",
                        Some(HINT.into()),
                    );
                    continue;
                }
            };
            if service == name {
                self.problem(
                    &service_key,
                    format!("dependency cycle: {name} → {name}: {name} cannot wait for itself"),
                    Some("remove this dependency".into()),
                );
                continue;
            }
            if !names.contains(service) {
                let hint = match names.iter().find(|n| close(n, service)) {
                    Some(near) => format!("did you mean `{near}`?"),
                    None => format!(
                        "services in this file: {}",
                        names.iter().cloned().collect::<Vec<_>>().join(", ")
                    ),
                };
                self.problem(
                    &service_key,
                    format!(
                        "depends_on names `{}`, which is not a service in this file",
                        service.escape_debug()
                    ),
                    Some(hint),
                );
                continue;
            }
            let Ok(service) = ServiceName::new(service) else {
                continue; // its own table is reported as a bad name
            };
            if out.iter().any(|d| d.service == service) {
                self.problem(
                    &service_key,
                    format!("`{service}` is listed twice in depends_on"),
                    Some("keep one entry, with the strictest condition".into()),
                );
                continue;
            }
            if let Some(condition) = condition {
                out.push(Dependency { service, condition });
            }
        }
        (self.problems.len() == before).then_some(out)
    }

    pub(super) fn on_dependency_down(
        &mut self,
        name: &str,
        raw: Option<&str>,
    ) -> Option<OnDependencyDown> {
        let Some(text) = raw else {
            return Some(OnDependencyDown::Ignore);
        };
        let parsed = OnDependencyDown::parse(text);
        if parsed.is_none() {
            self.problem(
                &["services", name, "on_dependency_down"],
                format!("unknown on_dependency_down `{}`", text.escape_debug()),
                Some("use ignore, stop or restart".into()),
            );
        }
        parsed
    }

    /// Refuses every cycle among `services`, each named whole and located at the entry of
    /// `depends_on` that closes it: no service of a cycle could ever start.
    pub(super) fn dependency_cycles(&mut self, services: &BTreeMap<ServiceName, ServiceConfig>) {
        for cycle in cycles(services) {
            let (from, to) = (&cycle[cycle.len() - 2], &cycle[cycle.len() - 1]);
            let index = services[from]
                .depends_on
                .iter()
                .position(|d| &d.service == to)
                .expect("a cycle's edges are dependencies");
            let names: Vec<&str> = cycle.iter().map(ServiceName::as_str).collect();
            let service_key = self.entry_key(from, index);
            self.problem(
                &service_key,
                format!(
                    "dependency cycle: {}: none of these services could ever start",
                    names.join(" → ")
                ),
                Some("remove one of these dependencies".into()),
            );
        }
    }

    /// Refuses a dependency on a job (`schedule`): it runs to completion, so no condition of
    /// it holds between its runs, and a dependent would wait for the next (break-it, session
    /// 11).
    pub(super) fn dependencies_on_jobs(&mut self, services: &BTreeMap<ServiceName, ServiceConfig>) {
        for (from, config) in services {
            for (index, dep) in config.depends_on.iter().enumerate() {
                let job = services
                    .get(&dep.service)
                    .and_then(|s| s.managed.as_ref())
                    .is_some_and(|m| m.job);
                if job {
                    let key = self.entry_key(from, index);
                    self.problem(
                        &key,
                        format!(
                            "`{}` is a job (it has a schedule): it runs to completion, so there is nothing to wait for",
                            dep.service
                        ),
                        Some("remove it from depends_on; a job runs on its schedule whatever depends on it".into()),
                    );
                }
            }
        }
    }

    /// Where entry `index` of `from`'s `depends_on` is: its `service` key when written as a
    /// table, else the entry.
    fn entry_key(&self, from: &ServiceName, index: usize) -> Vec<String> {
        let mut key = vec![
            "services".to_owned(),
            from.to_string(),
            "depends_on".into(),
            index.to_string(),
        ];
        if self.source_has_table_entry(from, index) {
            key.push("service".into());
        }
        key
    }

    /// Whether entry `index` of `from`'s `depends_on` is written as a table (its `service`
    /// key is then where the problem points).
    fn source_has_table_entry(&self, from: &ServiceName, index: usize) -> bool {
        let Ok(doc) = self.source.parse::<toml::Table>() else {
            return false;
        };
        doc.get("services")
            .and_then(|s| s.get(from.as_str()))
            .and_then(|s| s.get("depends_on"))
            .and_then(|d| d.get(index))
            .is_some_and(toml::Value::is_table)
    }
}

/// Every cycle found by a depth-first walk, each as its path with the first service repeated
/// at the end (`[a, b, a]`). Each back edge gives one cycle, so a cycle is reported once.
fn cycles(services: &BTreeMap<ServiceName, ServiceConfig>) -> Vec<Vec<ServiceName>> {
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        New,
        OnPath,
        Done,
    }
    let mut mark: BTreeMap<&ServiceName, Mark> = services.keys().map(|n| (n, Mark::New)).collect();
    let mut found = Vec::new();
    for root in services.keys() {
        if mark[root] != Mark::New {
            continue;
        }
        // (node, index of its next dependency to visit)
        let mut path: Vec<(&ServiceName, usize)> = vec![(root, 0)];
        mark.insert(root, Mark::OnPath);
        while let Some((node, next)) = path.last_mut() {
            let deps = &services[*node].depends_on;
            let Some(dep) = deps.get(*next) else {
                mark.insert(node, Mark::Done);
                path.pop();
                continue;
            };
            *next += 1;
            let Some((dep_name, _)) = services.get_key_value(&dep.service) else {
                continue; // a service with problems of its own
            };
            match mark[dep_name] {
                Mark::New => {
                    mark.insert(dep_name, Mark::OnPath);
                    path.push((dep_name, 0));
                }
                Mark::OnPath => {
                    let start = path
                        .iter()
                        .position(|(n, _)| *n == dep_name)
                        .expect("a service on the path is in it");
                    let mut cycle: Vec<ServiceName> =
                        path[start..].iter().map(|(n, _)| (*n).clone()).collect();
                    cycle.push(dep_name.clone());
                    found.push(cycle);
                }
                Mark::Done => {}
            }
        }
    }
    found
}

/// Names one typo apart (a letter changed, added or removed), for "did you mean".
pub(super) fn close(a: &str, b: &str) -> bool {
    let (a, b): (Vec<char>, Vec<char>) = (a.chars().collect(), b.chars().collect());
    let (short, long) = if a.len() <= b.len() {
        (&a, &b)
    } else {
        (&b, &a)
    };
    match long.len() - short.len() {
        0 => {
            short
                .iter()
                .zip(long.iter())
                .filter(|(x, y)| x != y)
                .count()
                == 1
        }
        1 => (0..long.len()).any(|skip| {
            long.iter()
                .enumerate()
                .filter(|(i, _)| *i != skip)
                .map(|(_, c)| c)
                .eq(short.iter())
        }),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{check, located, one_problem};
    use super::*;

    fn svc(name: &str, extra: &str) -> String {
        format!("[services.{name}]\ncommand = \"sleep 10\"\n{extra}")
    }

    #[test]
    fn names_and_tables_are_read_with_their_conditions() {
        let toml = format!(
            "{}{}{}",
            svc("db", ""),
            svc("cache", ""),
            svc(
                "api",
                "depends_on = [\"db\", { service = \"cache\", condition = \"healthy\" }]\non_dependency_down = \"restart\"\n"
            )
        );
        let c = check(&toml).unwrap();
        let api = &c.services[&ServiceName::new("api").unwrap()];
        let deps: Vec<(&str, Condition)> = api
            .depends_on
            .iter()
            .map(|d| (d.service.as_str(), d.condition))
            .collect();
        assert_eq!(
            deps,
            [("db", Condition::Ready), ("cache", Condition::Healthy)]
        );
        assert_eq!(api.on_dependency_down, OnDependencyDown::Restart);
        let db = &c.services[&ServiceName::new("db").unwrap()];
        assert_eq!(db.on_dependency_down, OnDependencyDown::Ignore);
        // An external service may be depended on.
        let toml = format!(
            "[services.pg]\nprobes = [{{ kind = \"tcp\", addr = \"127.0.0.1:5432\" }}]\n{}",
            svc(
                "api",
                "depends_on = [{ service = \"pg\", condition = \"started\" }]\n"
            )
        );
        check(&toml).unwrap();
    }

    #[test]
    fn an_unknown_service_is_located_with_a_suggestion() {
        let toml = format!(
            "{}{}",
            svc("db", ""),
            svc("api", "depends_on = [\"dbb\"]\n")
        );
        let (p, text) = one_problem(&toml);
        located(&p, &text, "services.api.depends_on.0", 5, 15);
        assert!(text.contains("`dbb`, which is not a service"), "{text}");
        assert!(text.contains("hint: did you mean `db`?"), "{text}");
        let toml = format!(
            "{}{}",
            svc("db", ""),
            svc("api", "depends_on = [\"db\", { service = \"queue\" }]\n")
        );
        let (p, text) = one_problem(&toml);
        located(&p, &text, "services.api.depends_on.1.service", 5, 33);
        assert!(text.contains("services in this file: api, db"), "{text}");
    }

    #[test]
    fn bad_entries_are_located() {
        let db = svc("db", "");
        for (entry, key, col) in [
            (
                "{ service = \"db\", condition = \"up\" }",
                "services.api.depends_on.0.condition",
                45,
            ),
            (
                "{ service = \"db\", when = \"ready\" }",
                "services.api.depends_on.0.when",
                40,
            ),
            ("{ condition = \"ready\" }", "services.api.depends_on.0", 15),
            ("3", "services.api.depends_on.0", 15),
            ("\"api\"", "services.api.depends_on.0", 15),
        ] {
            let toml = format!("{db}{}", svc("api", &format!("depends_on = [{entry}]\n")));
            let (p, text) = one_problem(&toml);
            located(&p, &text, key, 5, col);
        }
        let toml = format!("{db}{}", svc("api", "depends_on = [\"db\", \"db\"]\n"));
        let (p, text) = one_problem(&toml);
        located(&p, &text, "services.api.depends_on.1", 5, 21);
        assert!(text.contains("listed twice"), "{text}");
        let toml = format!("{db}{}", svc("api", "on_dependency_down = \"panic\"\n"));
        let (p, text) = one_problem(&toml);
        located(&p, &text, "services.api.on_dependency_down", 5, 22);
        // An external service starts nothing, so it waits for nothing.
        let toml = format!(
            "{db}[services.pg]\nprobes = [{{ kind = \"tcp\", addr = \"127.0.0.1:5432\" }}]\ndepends_on = [\"db\"]\n"
        );
        let (p, text) = one_problem(&toml);
        located(&p, &text, "services.pg.depends_on", 5, 14);
        // A job runs to completion: nothing of it to wait for between its runs.
        let toml = format!(
            "{db}[services.j]\ncommand = \"true\"\nschedule = \"* * * * *\"\n{}",
            svc(
                "api",
                "depends_on = [{ service = \"j\", condition = \"healthy\" }]\n"
            )
        );
        let (p, text) = one_problem(&toml);
        assert_eq!(p.key, "services.api.depends_on.0.service", "{text}");
        assert!(text.contains("`j` is a job"), "{text}");
    }

    #[test]
    fn a_cycle_is_named_whole_at_the_entry_that_closes_it() {
        let toml = format!(
            "{}{}{}{}",
            svc("a", "depends_on = [\"b\"]\n"),
            svc(
                "b",
                "depends_on = [{ service = \"c\", condition = \"started\" }]\n"
            ),
            svc("c", "depends_on = [\"a\"]\n"),
            svc("d", "depends_on = [\"a\"]\n"),
        );
        let (p, text) = one_problem(&toml);
        located(&p, &text, "services.c.depends_on.0", 9, 15);
        assert!(
            text.contains(
                "dependency cycle: a → b → c → a: none of these services could ever start"
            ),
            "{text}"
        );
        assert!(
            text.contains("hint: remove one of these dependencies"),
            "{text}"
        );
        // Closed by a table entry: located at its `service`.
        let toml = format!(
            "{}{}",
            svc("a", "depends_on = [\"b\"]\n"),
            svc("b", "depends_on = [{ service = \"a\" }]\n"),
        );
        let (p, text) = one_problem(&toml);
        located(&p, &text, "services.b.depends_on.0.service", 6, 27);
        // Two cycles, two problems.
        let toml = format!(
            "{}{}{}{}",
            svc("a", "depends_on = [\"b\"]\n"),
            svc("b", "depends_on = [\"a\"]\n"),
            svc("c", "depends_on = [\"d\"]\n"),
            svc("d", "depends_on = [\"c\"]\n"),
        );
        assert_eq!(check(&toml).unwrap_err().problems().len(), 2);
        // A diamond is no cycle.
        let toml = format!(
            "{}{}{}{}",
            svc("db", ""),
            svc("a", "depends_on = [\"db\"]\n"),
            svc("b", "depends_on = [\"db\"]\n"),
            svc("web", "depends_on = [\"a\", \"b\"]\n"),
        );
        check(&toml).unwrap();
    }

    #[test]
    fn close_names_are_one_typo_apart() {
        assert!(close("db", "dbb"));
        assert!(close("cache", "cashe"));
        assert!(close("api", "ap"));
        assert!(!close("db", "web"));
        assert!(!close("db", "db"));
    }
}
