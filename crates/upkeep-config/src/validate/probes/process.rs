//! `kind = "process"`: the managed process group exists and can run (not stopped, not a
//! zombie).
//!
//! Owns [`ProcessProbeConfig`]; the kind has no keys of its own, and needs a service upkeep
//! runs (`mod.rs` refuses it on an external one). It looks at no process:
//! `upkeep-probes/src/kinds/process.rs` does. Input: the probe's own keys (none), sorted out by
//! `mod.rs`; output: `ProbeKind::Process`.

use serde::Deserialize;

use super::{ProbeKind, ProbeSite, RawKind, Validator};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawProcessProbe {}

/// The managed process exists and is not stopped (SIGSTOP) or a zombie.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcessProbeConfig;

impl RawKind for RawProcessProbe {
    const NAME: &'static str = "process";
    const WATCHES_PROCESS: bool = true;

    fn validate(self, _: &mut Validator<'_>, _: &ProbeSite<'_>) -> Option<ProbeKind> {
        Some(ProbeKind::Process(ProcessProbeConfig))
    }
}

#[cfg(test)]
mod tests {
    use super::super::super::tests::check;
    use super::super::tests::{kind_of, probe, refused};
    use super::*;

    #[test]
    fn needs_a_service_upkeep_runs() {
        assert_eq!(
            kind_of(&probe("kind = \"process\"")),
            ProbeKind::Process(ProcessProbeConfig)
        );
        let err = check("[services.db]\nprobes = [{ kind = \"process\" }]\n").unwrap_err();
        let p = &err.problems()[0];
        assert_eq!(
            (p.key.as_str(), p.line, p.column),
            ("services.db.probes.0.kind", 2, 20)
        );
        assert!(
            p.message.contains("watches the process upkeep runs"),
            "{err}"
        );
    }

    #[test]
    fn refuses_keys_of_other_kinds() {
        let (p, _) = refused("kind = \"process\"\nmax_percent = 50", "max_percent", 5, 15);
        assert_eq!(p.message, "`max_percent` does not apply to a process probe");
    }
}
