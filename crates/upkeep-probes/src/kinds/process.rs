//! `process`: the managed process group exists and no member is stopped (SIGSTOP, a debugger)
//! or a zombie leader: alive is not enough, it must be able to run.

use std::time::Instant;

use crate::probe::{ProbeOutcome, Target};

pub(crate) struct ProcessProbe;

impl ProcessProbe {
    pub fn check(&self, target: &Target) -> Option<ProbeOutcome> {
        let pgid = target.pgid?;
        let start = Instant::now();
        let states = upkeep_sys::procfs::group_states(pgid);
        let outcome = if let Some((pid, _)) = states.iter().find(|(_, s)| matches!(s, 'T' | 't')) {
            ProbeOutcome::down(
                format!("process {pid} is stopped (SIGSTOP or traced)"),
                start.elapsed(),
            )
        } else if !states.iter().any(|(pid, s)| *pid == pgid && *s != 'Z') {
            ProbeOutcome::down(format!("process {pgid} is gone"), start.elapsed())
        } else {
            ProbeOutcome::up(
                format!("{} process(es) running", states.len()),
                start.elapsed(),
            )
        };
        Some(outcome)
    }
}
