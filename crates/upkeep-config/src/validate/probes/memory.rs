//! `kind = "memory"`: resident memory of the whole process group at most `max`.
//!
//! Owns the memory probe's key (`max`, a size such as "512MiB"), its lower bound and
//! [`MemoryProbeConfig`]. It reads no memory: `upkeep-probes/src/kinds/memory.rs` does. Input:
//! the probe's own keys, sorted out by `mod.rs`; output: `ProbeKind::Memory`, or problems.

use serde::Deserialize;

use super::{ProbeKind, ProbeSite, RawKind, Validator};
use crate::bounds;
use crate::validate::show_bytes;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawMemoryProbe {
    max: Option<String>,
}

/// Resident memory of the whole process group above `max_bytes` counts as a failure.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemoryProbeConfig {
    /// At least `bounds::MEMORY_MAX_MIN_BYTES`.
    pub max_bytes: u64,
}

impl RawKind for RawMemoryProbe {
    const NAME: &'static str = "memory";
    const WATCHES_PROCESS: bool = true;

    fn validate(self, v: &mut Validator<'_>, at: &ProbeSite<'_>) -> Option<ProbeKind> {
        let max = at.needs(v, "max", self.max, "max = \"512MiB\"")?;
        let Ok(size) = max.parse::<bytesize::ByteSize>() else {
            v.problem(
                &at.key("max"),
                format!("`{max}` is not a size"),
                Some("write a size such as \"512MiB\"".into()),
            );
            return None;
        };
        if size.as_u64() < bounds::MEMORY_MAX_MIN_BYTES {
            let min = show_bytes(bounds::MEMORY_MAX_MIN_BYTES);
            v.problem(
                &at.key("max"),
                format!(
                    "max `{max}` is below {min}: no process fits, so this probe would always fail and restart the service forever"
                ),
                Some(format!("write at least max = \"{min}\"")),
            );
            return None;
        }
        Some(ProbeKind::Memory(MemoryProbeConfig {
            max_bytes: size.as_u64(),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{kind_of, probe, refused};
    use super::*;

    #[test]
    fn takes_a_size_of_at_least_one_mib() {
        assert_eq!(
            kind_of(&probe("kind = \"memory\"\nmax = \"1MiB\"")),
            ProbeKind::Memory(MemoryProbeConfig { max_bytes: 1 << 20 })
        );
        // No process group fits in less: the probe would restart the service forever.
        let (_, text) = refused("kind = \"memory\"\nmax = \"1KiB\"", "max", 5, 7);
        assert!(
            text.contains("hint: write at least max = \"1MiB\""),
            "{text}"
        );
        let (p, text) = refused("kind = \"memory\"\nmax = \"lots\"", "max", 5, 7);
        assert!(p.message.contains("not a size"), "{text}");
        refused("kind = \"memory\"", "kind", 4, 8);
    }

    #[test]
    fn refuses_keys_of_other_kinds() {
        let (p, _) = refused(
            "kind = \"memory\"\nmax = \"1GiB\"\ncommand = \"true\"",
            "command",
            6,
            11,
        );
        assert_eq!(p.message, "`command` does not apply to a memory probe");
    }
}
