//! `kind = "cpu"`: CPU use of the whole process group at most `max_percent` of one core.
//!
//! Owns the cpu probe's key (`max_percent`), its bounds and [`CpuProbeConfig`]. It measures
//! nothing: `upkeep-probes/src/kinds/cpu.rs` does. Input: the probe's own keys, sorted out by
//! `mod.rs`; output: `ProbeKind::Cpu`, or problems.

use serde::Deserialize;

use super::{ProbeKind, ProbeSite, RawKind, Validator};
use crate::bounds;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawCpuProbe {
    max_percent: Option<f64>,
}

/// CPU of the whole process group (% of one core, over `every`) above this is a failure.
#[derive(Debug, Clone, PartialEq)]
pub struct CpuProbeConfig {
    /// Within `bounds::CPU_MAX_PERCENT`: above 0, finite.
    pub max_percent: f64,
}

impl RawKind for RawCpuProbe {
    const NAME: &'static str = "cpu";
    const WATCHES_PROCESS: bool = true;

    fn validate(self, v: &mut Validator<'_>, at: &ProbeSite<'_>) -> Option<ProbeKind> {
        let limits = bounds::CPU_MAX_PERCENT;
        let example = "max_percent = 90 (percent of one core)";
        let pct = at.needs(v, "max_percent", self.max_percent, example)?;
        // Also false for NaN, which TOML allows.
        if !(pct > limits.min && pct <= limits.max) {
            v.problem(
                &at.key("max_percent"),
                format!(
                    "max_percent {pct} is not above {} and at most {} (percent of one core)",
                    limits.min, limits.max
                ),
                Some("e.g. max_percent = 90 (90% of one core), or 400 for four cores".into()),
            );
            return None;
        }
        Some(ProbeKind::Cpu(CpuProbeConfig { max_percent: pct }))
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{kind_of, probe, refused};
    use super::*;

    #[test]
    fn takes_a_percentage_of_one_core_above_zero() {
        for (written, pct) in [("90", 90.0), ("400.5", 400.5), ("100000", 100_000.0)] {
            assert_eq!(
                kind_of(&probe(&format!("kind = \"cpu\"\nmax_percent = {written}"))),
                ProbeKind::Cpu(CpuProbeConfig { max_percent: pct })
            );
        }
        for pct in ["inf", "nan", "0", "-5", "100001"] {
            refused(
                &format!("kind = \"cpu\"\nmax_percent = {pct}"),
                "max_percent",
                5,
                15,
            );
        }
        let (p, text) = refused(
            "kind = \"cpu\"\nmax_percent = \"90%\"",
            "max_percent",
            5,
            15,
        );
        assert!(
            p.message.contains("invalid type: string, expected f64"),
            "{text}"
        );
        refused("kind = \"cpu\"", "kind", 4, 8);
    }

    #[test]
    fn refuses_keys_of_other_kinds() {
        let (p, _) = refused(
            "kind = \"cpu\"\nmax_percent = 90\nmax = \"1GiB\"",
            "max",
            6,
            7,
        );
        assert_eq!(p.message, "`max` does not apply to a cpu probe");
    }
}
