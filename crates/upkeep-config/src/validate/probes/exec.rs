//! `kind = "exec"`: a command that exits 0 within the timeout.
//!
//! Owns the exec probe's key (`command`) and [`ExecProbeConfig`]. The command is resolved like
//! a service's (`Validator::program`: split or run through `sh -c`, found on the daemon's
//! PATH or relative to the service's cwd), so a probe that could never start is refused here.
//! It runs nothing: `upkeep-probes/src/kinds/exec.rs` does. Input: the probe's own keys, sorted
//! out by `mod.rs`, and the service's folder; output: `ProbeKind::Exec`, or problems.

use std::path::PathBuf;

use serde::Deserialize;

use super::{ProbeKind, ProbeSite, RawKind, Validator};
use crate::raw::RawCommand;
use crate::validate::Program;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawExecProbe {
    command: Option<RawCommand>,
}

/// Run `program`, in `cwd`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecProbeConfig {
    pub program: Program,
    /// The service's folder (its `cwd`, or the config file's folder).
    pub cwd: Option<PathBuf>,
}

impl RawKind for RawExecProbe {
    const NAME: &'static str = "exec";

    fn validate(self, v: &mut Validator<'_>, at: &ProbeSite<'_>) -> Option<ProbeKind> {
        let example = "command = \"pg_isready -q\"";
        let command = at.needs(v, "command", self.command, example)?;
        // Run by the daemon, as its own user, in the service's folder (judged with the cwd).
        let daemon = crate::access::Who::of(None);
        let program = v.program(
            &at.key("command"),
            &command,
            at.run_dir,
            None,
            (true, &daemon),
        )?;
        Some(ProbeKind::Exec(ExecProbeConfig {
            program,
            cwd: Some(at.run_dir.to_owned()),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{kind_of, probe, refused};
    use super::*;

    #[test]
    fn resolves_the_command_in_the_services_folder() {
        let ProbeKind::Exec(e) = kind_of(&probe("kind = \"exec\"\ncommand = \"true --x\"")) else {
            panic!("not an exec probe")
        };
        assert_eq!(e.program.argv, ["true", "--x"]);
        assert!(e.program.path.ends_with("true"), "{:?}", e.program.path);
        assert_eq!(e.cwd.as_deref(), Some(std::path::Path::new("/tmp")));
        let ProbeKind::Exec(e) =
            kind_of(&probe("kind = \"exec\"\ncommand = \"test -e x || true\""))
        else {
            panic!("not an exec probe")
        };
        assert_eq!(e.program.argv[..2], ["/bin/sh", "-c"]);
    }

    #[test]
    fn refuses_a_program_that_is_not_found_a_nul_or_no_command() {
        let (p, text) = refused(
            "kind = \"exec\"\ncommand = \"nosuchprogram-xyz\"",
            "command",
            5,
            11,
        );
        assert!(
            p.message.contains("`nosuchprogram-xyz` was not found"),
            "{text}"
        );
        refused(
            "kind = \"exec\"\ncommand = [\"true\\u0000\"]",
            "command.0",
            5,
            12,
        );
        let (p, text) = refused("kind = \"exec\"\ncommand = 5", "command", 5, 11);
        assert!(
            p.message.contains("a command line string or an array"),
            "{text}"
        );
        refused("kind = \"exec\"", "kind", 4, 8);
    }

    #[test]
    fn refuses_keys_of_other_kinds() {
        let (p, _) = refused(
            "kind = \"exec\"\ncommand = \"true\"\nmax = \"1GiB\"",
            "max",
            6,
            7,
        );
        assert_eq!(p.message, "`max` does not apply to an exec probe");
    }
}
