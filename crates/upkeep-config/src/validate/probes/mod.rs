//! Probes in config: the registry of probe kinds, the keys all kinds share, and the dispatch
//! from a probe's table to its kind.
//!
//! Owns [`ProbeConfig`], [`ProbeKind`] (one variant per kind) and the checks of the shared keys
//! (`kind`, `name`, `every`, `timeout`, `failures`, `successes`, `grace`). It does not know any
//! kind's own keys: each kind's file here holds its raw struct, its validated `*ProbeConfig`,
//! its checks and their tests. Running a probe is `upkeep-probes`' job (`kinds/<kind>.rs`).
//!
//! Input: one probe's TOML table (`RawService::probes`), from `Validator::service`. Output: a
//! [`ProbeConfig`], or problems recorded on the `Validator`, each located at its key.
//!
//! Why not `#[serde(tag = "kind")]`: the shared keys would need `#[serde(flatten)]`, which turns
//! `deny_unknown_fields` off and forgets where values were written. Instead `Validator::probe`
//! reads `kind`, then sorts the table's keys: the shared ones go to [`RawProbe`], the kind's own
//! to its raw struct, a key of another kind is refused as such ("`url` does not apply to a tcp
//! probe") and any other as unknown. Each part is then deserialized on its own, and a value of
//! the wrong type is located by its key path.
//!
//! To add a probe kind `foo`:
//! 1. write `foo.rs` here: `RawFooProbe` (`#[serde(deny_unknown_fields)]`, fields optional so a
//!    missing one gets a message of the kind's own), `FooProbeConfig`, `impl RawKind for
//!    RawFooProbe` (its name and checks) and tests;
//! 2. add `ProbeKind::Foo(FooProbeConfig)` and its line in [`kinds`] and `ProbeKind::as_str`
//!    (the compiler points at the match), and export `FooProbeConfig` from `lib.rs`;
//! 3. implement the check in `upkeep-probes/src/kinds/foo.rs` and its arm in `kinds/mod.rs`.

mod cpu;
mod exec;
mod http;
mod memory;
mod process;
mod tcp;

use std::path::Path;
use std::time::Duration;

use serde::de::DeserializeOwned;

use super::{Validator, without_values};
use crate::bounds;
use crate::raw::RawProbe;

pub use cpu::CpuProbeConfig;
pub use exec::ExecProbeConfig;
pub use http::HttpProbeConfig;
pub use memory::MemoryProbeConfig;
pub use process::ProcessProbeConfig;
pub use tcp::TcpProbeConfig;

/// One health check. `PartialEq` lets reload restart only the probes that changed.
#[derive(Debug, Clone, PartialEq)]
pub struct ProbeConfig {
    /// Unique within the service: `name`, or the kind (`http`, `http#2` for a second one).
    pub name: String,
    pub kind: ProbeKind,
    /// Time between the starts of two checks.
    pub every: Duration,
    /// How long one check may take. It may be longer than `every`: checks of one probe never
    /// overlap, so a check that runs past `every` delays the next, which then starts as soon
    /// as it ends (missed ticks are skipped, not bunched). A target that hangs is therefore
    /// checked once per `timeout`, and is found down after `failures × max(every, timeout)`.
    pub timeout: Duration,
    /// Consecutive failures before the probe counts as down.
    pub failures: u32,
    /// Consecutive successes before a down probe counts as up again.
    pub successes: u32,
    /// After a (re)start, failures within this time are not counted.
    pub grace: Duration,
}

/// What a probe checks: one variant per kind, holding that kind's validated config.
#[derive(Debug, Clone, PartialEq)]
pub enum ProbeKind {
    Tcp(TcpProbeConfig),
    Http(HttpProbeConfig),
    Exec(ExecProbeConfig),
    Process(ProcessProbeConfig),
    Memory(MemoryProbeConfig),
    Cpu(CpuProbeConfig),
}

impl ProbeKind {
    /// The `kind` as written in the config.
    pub fn as_str(&self) -> &'static str {
        match self {
            ProbeKind::Tcp(_) => tcp::RawTcpProbe::NAME,
            ProbeKind::Http(_) => http::RawHttpProbe::NAME,
            ProbeKind::Exec(_) => exec::RawExecProbe::NAME,
            ProbeKind::Process(_) => process::RawProcessProbe::NAME,
            ProbeKind::Memory(_) => memory::RawMemoryProbe::NAME,
            ProbeKind::Cpu(_) => cpu::RawCpuProbe::NAME,
        }
    }
}

/// Every probe kind, in the order messages list them: the one list to extend.
fn kinds() -> [Kind; 6] {
    [
        Kind::of::<tcp::RawTcpProbe>(),
        Kind::of::<http::RawHttpProbe>(),
        Kind::of::<exec::RawExecProbe>(),
        Kind::of::<process::RawProcessProbe>(),
        Kind::of::<memory::RawMemoryProbe>(),
        Kind::of::<cpu::RawCpuProbe>(),
    ]
}

/// A kind's own keys as written: what each kind's file implements.
trait RawKind: DeserializeOwned {
    /// `kind = "tcp"`.
    const NAME: &'static str;
    /// Kinds that look at the managed process group, so a service without `command` cannot
    /// have them.
    const WATCHES_PROCESS: bool = false;
    /// Checks the kind's keys and builds its variant of [`ProbeKind`]; None with problems
    /// recorded on `v`, located with `at`.
    fn validate(self, v: &mut Validator<'_>, at: &ProbeSite<'_>) -> Option<ProbeKind>;
}

/// A kind as the dispatch sees it, built from its [`RawKind`].
struct Kind {
    name: &'static str,
    /// Its own keys, besides the shared ones.
    fields: &'static [&'static str],
    watches_process: bool,
    /// Deserializes the kind's keys and validates them.
    build: fn(&mut Validator<'_>, &ProbeSite<'_>, toml::Table) -> Option<ProbeKind>,
}

impl Kind {
    fn of<K: RawKind>() -> Self {
        Kind {
            name: K::NAME,
            fields: fields_of::<K>(),
            watches_process: K::WATCHES_PROCESS,
            build: |v, at, own| v.probe_part::<K>(at, own)?.validate(v, at),
        }
    }
}

/// Where a probe sits, and what its kind may need to know besides its own keys.
pub(crate) struct ProbeSite<'a> {
    /// Its kind's name, for messages.
    kind: &'static str,
    service: &'a str,
    index: String,
    /// The folder the service runs in: an exec probe's command is resolved and run there.
    pub run_dir: &'a Path,
    /// The probe's `timeout`, if valid: an http probe's `degraded_after` must be shorter.
    pub timeout: Option<Duration>,
}

impl ProbeSite<'_> {
    /// The key path of `field` in this probe: `services.web.probes.0.url`.
    pub fn key(&self, field: &str) -> Vec<String> {
        self.path([field.to_owned()])
    }

    /// The key path of a value inside this probe, e.g. `["headers", "X-Token"]`.
    pub fn path(&self, inner: impl IntoIterator<Item = String>) -> Vec<String> {
        ["services", self.service, "probes", self.index.as_str()]
            .map(String::from)
            .into_iter()
            .chain(inner)
            .collect()
    }

    /// The value of a key this kind cannot do without. If it is absent, a problem at `kind`
    /// ("a tcp probe needs `addr`") with an example of it.
    pub fn needs<T>(
        &self,
        v: &mut Validator<'_>,
        field: &str,
        value: Option<T>,
        example: &str,
    ) -> Option<T> {
        if value.is_none() {
            v.problem(
                &self.key("kind"),
                format!("{} probe needs `{field}`", a(self.kind)),
                Some(format!("e.g. {example}")),
            );
        }
        value
    }
}

impl Validator<'_> {
    /// Probe `index` of `service`, written as `table`. `run_dir` is where the service runs;
    /// `managed`: upkeep runs it (so it has a process group to watch).
    pub(super) fn probe(
        &mut self,
        service: &str,
        index: usize,
        table: &toml::Table,
        run_dir: &Path,
        managed: bool,
    ) -> Option<ProbeConfig> {
        let kinds = kinds();
        let index = index.to_string();
        let kind = match table.get("kind") {
            Some(toml::Value::String(name)) => kinds.iter().find(|k| k.name == name),
            _ => None,
        };
        let Some(kind) = kind else {
            let message = match table.get("kind") {
                None => "a probe needs a `kind`".to_owned(),
                Some(toml::Value::String(other)) => format!("unknown probe kind `{other}`"),
                Some(_) => "`kind` is not a string".to_owned(),
            };
            let names: Vec<&str> = kinds.iter().map(|k| k.name).collect();
            let hint = format!("use one of: {}", names.join(", "));
            let key = ["services", service, "probes", index.as_str(), "kind"];
            self.problem(&key, message, Some(hint));
            return None;
        };
        let mut at = ProbeSite {
            kind: kind.name,
            service,
            index,
            run_dir,
            timeout: None,
        };
        let before = self.problems.len();

        // Sort the keys: shared, the kind's own, or a mistake worth naming.
        let shared_fields = fields_of::<RawProbe>();
        let (mut shared, mut own) = (toml::Table::new(), toml::Table::new());
        for (field, value) in table {
            if shared_fields.contains(&field.as_str()) {
                shared.insert(field.clone(), value.clone());
            } else if kind.fields.contains(&field.as_str()) {
                own.insert(field.clone(), value.clone());
            } else if let Some(other) = kinds.iter().find(|k| k.fields.contains(&field.as_str())) {
                self.problem(
                    &at.key(field),
                    format!("`{field}` does not apply to {} probe", a(kind.name)),
                    Some(format!("`{field}` is a key of {} probes", other.name)),
                );
            } else {
                let takes = [kind.fields, shared_fields].concat().join(", ");
                self.problem(
                    &at.key(field),
                    format!("unknown field `{field}` in {} probe", a(kind.name)),
                    Some(format!("{} probe takes: {takes}", a(kind.name))),
                );
            }
        }

        let shared = self.probe_part::<RawProbe>(&at, shared);
        // Durations first: the http probe's `degraded_after` is checked against `timeout`.
        let (every, timeout, grace) = match &shared {
            Some(p) => (
                self.duration(&at.key("every"), &p.every, bounds::PROBE_EVERY),
                self.duration(&at.key("timeout"), &p.timeout, bounds::PROBE_TIMEOUT),
                self.duration(&at.key("grace"), &p.grace, bounds::PROBE_GRACE),
            ),
            None => (None, None, None),
        };
        at.timeout = timeout;
        let checks = (kind.build)(self, &at, own);
        if kind.watches_process && !managed {
            self.problem(
                &at.key("kind"),
                format!(
                    "{} probe watches the process upkeep runs; this service has no `command`",
                    a(kind.name)
                ),
                None,
            );
        }
        let shared = shared?;
        self.in_range(
            &at.key("failures"),
            shared.failures,
            bounds::CONSECUTIVE,
            None,
        );
        self.in_range(
            &at.key("successes"),
            shared.successes,
            bounds::CONSECUTIVE,
            None,
        );
        if let Some(name) = &shared.name {
            self.probe_name(&at.key("name"), name);
        }
        if self.problems.len() > before {
            return None;
        }
        Some(ProbeConfig {
            name: shared.name.unwrap_or(shared.kind),
            kind: checks?,
            every: every?,
            timeout: timeout?,
            failures: shared.failures,
            successes: shared.successes,
            grace: grace?,
        })
    }

    /// `table` deserialized as `T`. A value of the wrong type is a problem at its own key.
    fn probe_part<T: DeserializeOwned>(
        &mut self,
        at: &ProbeSite<'_>,
        table: toml::Table,
    ) -> Option<T> {
        use serde_path_to_error::Segment;
        serde_path_to_error::deserialize(toml::Value::Table(table))
            .map_err(|e| {
                let inner = e.path().iter().map(|s| match s {
                    Segment::Seq { index } => index.to_string(),
                    Segment::Map { key } | Segment::Enum { variant: key } => key.clone(),
                    Segment::Unknown => "?".to_owned(),
                });
                let key = at.path(inner);
                self.problem(&key, without_values(e.inner().message().trim()), None);
            })
            .ok()
    }

    /// A probe's `name` shows in tables, metrics labels and events: printable, and short.
    fn probe_name(&mut self, key: &[String], name: &str) {
        let max = bounds::PROBE_NAME_MAX_CHARS;
        let problem = if name.trim().is_empty() {
            Some("a probe name is empty".to_owned())
        } else if name.contains(char::is_control) {
            Some(format!(
                "probe name `{}` holds a control character (a newline, a tab, an escape)",
                name.escape_debug()
            ))
        } else if name.chars().count() > max {
            Some(format!(
                "probe name `{name}` is longer than {max} characters"
            ))
        } else {
            None
        };
        if let Some(message) = problem {
            self.problem(
                key,
                message,
                Some("write a short name such as \"health\" or \"api-v2\"".into()),
            );
        }
    }
}

/// "a tcp", "an exec", "an http" (said "aitch"): a kind's name with its article, for messages.
fn a(kind: &str) -> String {
    let vowel = kind.starts_with(['a', 'e', 'i', 'o', 'u']) || kind.starts_with("http");
    format!("{} {kind}", if vowel { "an" } else { "a" })
}

/// The keys of a struct that derives `Deserialize`, as its derive lists them: it hands them to
/// `deserialize_struct`, which this deserializer records and then refuses. One list of keys
/// per kind, written once (in its struct), rather than a second list that could drift.
fn fields_of<T: DeserializeOwned>() -> &'static [&'static str] {
    use serde::de::{Error, Visitor, value};
    struct Fields<'a>(&'a mut &'static [&'static str]);
    impl<'de> serde::Deserializer<'de> for Fields<'_> {
        type Error = value::Error;
        fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, value::Error> {
            Err(value::Error::custom("not a struct"))
        }
        fn deserialize_struct<V: Visitor<'de>>(
            self,
            _: &'static str,
            fields: &'static [&'static str],
            _: V,
        ) -> Result<V::Value, value::Error> {
            *self.0 = fields;
            Err(value::Error::custom("fields read"))
        }
        serde::forward_to_deserialize_any! {
            bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf
            option unit unit_struct newtype_struct seq tuple tuple_struct map enum identifier
            ignored_any
        }
    }
    let mut fields: &'static [&'static str] = &[];
    let _ = T::deserialize(Fields(&mut fields));
    fields
}

#[cfg(test)]
pub(super) mod tests {
    use super::super::tests::{SVC, check, located, one_problem};
    use super::*;
    use crate::error::Problem;
    use upkeep_core::ServiceName;

    /// A config of one managed service `web` with one probe (its table starts on line 3, so
    /// the first line of `body` is line 4).
    pub(crate) fn probe(body: &str) -> String {
        format!("{SVC}[[services.web.probes]]\n{body}\n")
    }

    /// The one problem of the probe written as `body` (see [`probe`]), asserted to be at its
    /// key `field` (`url`, `headers.X-Token`), at `line`:`column`; with the whole message.
    pub(crate) fn refused(
        body: &str,
        field: &str,
        line: usize,
        column: usize,
    ) -> (Problem, String) {
        let (p, text) = one_problem(&probe(body));
        let key = format!("services.web.probes.0.{field}");
        located(&p, &text, &key, line, column);
        (p, text)
    }

    /// The validated kind of the only probe of `toml`.
    pub(crate) fn kind_of(toml: &str) -> ProbeKind {
        let c = check(toml).unwrap_or_else(|e| panic!("{e}"));
        c.services
            .into_values()
            .next()
            .unwrap()
            .probes
            .remove(0)
            .kind
    }

    #[test]
    fn every_kind_lists_its_own_keys_and_none_is_shared() {
        let shared = fields_of::<RawProbe>();
        assert_eq!(
            shared,
            [
                "kind",
                "name",
                "every",
                "timeout",
                "failures",
                "successes",
                "grace"
            ]
        );
        for kind in kinds() {
            assert!(
                kind.fields.iter().all(|f| !shared.contains(f)),
                "{} shadows a shared key",
                kind.name
            );
        }
        assert_eq!(fields_of::<tcp::RawTcpProbe>(), ["addr"]);
        assert!(fields_of::<process::RawProcessProbe>().is_empty());
    }

    #[test]
    fn shared_keys_get_defaults() {
        let c = check(&probe("kind = \"process\"")).unwrap();
        let p = &c.services[&ServiceName::new("web").unwrap()].probes[0];
        assert_eq!(p.name, "process");
        assert_eq!(p.every, Duration::from_secs(5));
        assert_eq!(p.timeout, Duration::from_secs(2));
        assert_eq!((p.failures, p.successes), (3, 1));
        assert_eq!(p.grace, Duration::from_secs(5));
    }

    #[test]
    fn a_missing_or_unknown_kind_is_located_and_lists_the_kinds() {
        let (p, text) = refused("kind = \"smoke\"", "kind", 4, 8);
        assert!(p.message.contains("unknown probe kind `smoke`"), "{text}");
        assert!(
            text.contains("hint: use one of: tcp, http, exec, process, memory, cpu"),
            "{text}"
        );
        let (p, text) = refused("name = \"x\"", "kind", 3, 1);
        assert!(p.message.contains("needs a `kind`"), "{text}");
        refused("kind = 5", "kind", 4, 8);
    }

    #[test]
    fn unknown_keys_and_wrong_types_are_located() {
        let (p, text) = refused(
            "kind = \"tcp\"\naddr = \"127.0.0.1:1\"\nadr = 1",
            "adr",
            6,
            7,
        );
        assert!(
            p.message.contains("unknown field `adr` in a tcp probe"),
            "{text}"
        );
        assert!(
            text.contains("hint: a tcp probe takes: addr, kind, name"),
            "{text}"
        );
        // A wrong type in a shared key and in a kind's own key, each at its value, unquoted.
        let (p, text) = refused(
            "kind = \"process\"\nfailures = \"s3cret\"",
            "failures",
            5,
            12,
        );
        assert!(
            p.message.contains("invalid type: string, expected u32"),
            "{text}"
        );
        assert!(!text.contains("s3cret"), "{text}");
        refused("kind = \"tcp\"\naddr = 80", "addr", 5, 8);
    }

    #[test]
    fn probes_of_every_kind() {
        let toml = r#"
[services.web]
command = "sleep 1000"
[[services.web.probes]]
kind = "http"
url = "http://127.0.0.1:8080/health"
status = [200, 204]
body_regex = "ok|fine"
degraded_after = "200ms"
[[services.web.probes]]
kind = "tcp"
addr = "127.0.0.1:8080"
every = "1s"
[[services.web.probes]]
kind = "memory"
max = "100MiB"
failures = 2
[[services.web.probes]]
kind = "tcp"
addr = "localhost:9"
[services.db]
probes = [{ kind = "exec", command = "true" }, { kind = "tcp", addr = "127.0.0.1:5432" }]
"#;
        let c = check(toml).unwrap();
        let web = &c.services[&ServiceName::new("web").unwrap()];
        assert_eq!(web.on_unhealthy, super::super::OnUnhealthy::Restart);
        let names: Vec<&str> = web.probes.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, ["http", "tcp", "memory", "tcp#2"]);
        let ProbeKind::Http(h) = &web.probes[0].kind else {
            panic!()
        };
        assert_eq!(
            (h.status.as_slice(), h.method.as_str(), h.tls_verify),
            (&[200, 204][..], "GET", true)
        );
        assert_eq!(h.degraded_after, Some(Duration::from_millis(200)));
        assert_eq!(web.probes[1].every, Duration::from_secs(1));
        assert_eq!(
            web.probes[2].kind,
            ProbeKind::Memory(MemoryProbeConfig {
                max_bytes: 100 * 1024 * 1024
            })
        );
        let db = &c.services[&ServiceName::new("db").unwrap()];
        assert!(db.managed.is_none());
        assert_eq!(db.on_unhealthy, super::super::OnUnhealthy::Alert);
        assert_eq!(db.probes[0].failures, 3);
    }

    #[test]
    fn probe_mistakes_are_located() {
        let toml = "[services.db]\nprobes = [\n  { kind = \"tcp\", url = \"http://x\" },\n  { kind = \"memory\", max = \"1GiB\" },\n  { kind = \"smoke\" },\n  { kind = \"http\", url = \"http://x\", body_regex = \"(\" },\n]\non_unhealthy = \"restart\"\n";
        let err = check(toml).unwrap_err();
        let msgs: Vec<String> = err
            .problems()
            .iter()
            .map(|p| format!("{}:{} {}", p.line, p.key, p.message))
            .collect();
        let has = |needle: &str| msgs.iter().any(|m| m.contains(needle));
        assert!(
            has("3:services.db.probes.0.url `url` does not apply to a tcp probe"),
            "{msgs:#?}"
        );
        assert!(has("a tcp probe needs `addr`"), "{msgs:#?}");
        assert!(
            has("4:services.db.probes.1.kind a memory probe watches the process"),
            "{msgs:#?}"
        );
        assert!(
            has("5:services.db.probes.2.kind unknown probe kind `smoke`"),
            "{msgs:#?}"
        );
        assert!(
            has("6:services.db.probes.3.body_regex invalid regular expression"),
            "{msgs:#?}"
        );
        assert!(has("an external service cannot be restarted"), "{msgs:#?}");
        let err = check("[services.x]\ncwd = \"/tmp\"\n").unwrap_err();
        assert!(
            err.to_string().contains("neither a `command` nor `probes`"),
            "{err}"
        );
    }

    #[test]
    fn probe_names_are_short_and_printable() {
        // Probe names show in terminals and metrics.
        refused("kind = \"process\"\nname = \"a\\u001b[2Jb\"", "name", 5, 8);
        let (p, _) = one_problem(&probe(&format!(
            "kind = \"process\"\nname = \"{}\"",
            "n".repeat(65)
        )));
        assert_eq!(p.key, "services.web.probes.0.name");
    }
}
