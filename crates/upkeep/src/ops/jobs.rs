//! Jobs, read: each job's schedule, state, next run and its recent runs and skips, from the
//! running config, the state snapshot and the job's stored events (`job_ran`, `job_skipped`).
//! A store that is away leaves the history empty and says why, rather than failing the list.

use upkeep_core::ServiceName;
use upkeep_core::job::{JobInfo, JobRun, skipped_of};

use crate::control::Daemon;

/// Why jobs could not be listed.
#[derive(Debug, thiserror::Error)]
pub enum JobsError {
    #[error("no service named `{0}` is configured")]
    Unknown(ServiceName),
    #[error("service `{0}` is not a job (it has no `schedule`)")]
    NotAJob(ServiceName),
}

/// Each job (or the one named), with at most `runs` of its latest runs.
pub async fn jobs(
    daemon: &Daemon,
    only: Option<&ServiceName>,
    runs: u32,
) -> Result<Vec<JobInfo>, JobsError> {
    let jobs: Vec<(ServiceName, String)> = {
        let live = daemon.live.lock().await;
        if let Some(name) = only {
            match live.config.services.get(name) {
                None => return Err(JobsError::Unknown(name.clone())),
                Some(cfg) if cfg.job.is_none() => return Err(JobsError::NotAJob(name.clone())),
                Some(_) => {}
            }
        }
        live.config
            .services
            .iter()
            .filter(|(n, _)| only.is_none_or(|o| o == *n))
            .filter_map(|(n, c)| Some((n.clone(), c.job.as_ref()?.schedule.as_str().to_owned())))
            .collect()
    };
    let now = daemon.clock.now();
    let history = daemon.history_ready().await;
    let snapshot = daemon.snapshot.borrow().clone();
    let mut out = Vec::new();
    for (name, text) in jobs {
        let schedule = {
            let live = daemon.live.lock().await;
            live.config.services.get(&name).and_then(|c| c.job.clone())
        };
        let status = snapshot.services.get(&name);
        let mut info = JobInfo {
            next: schedule.and_then(|j| j.schedule.next_after(now)),
            name: name.clone(),
            schedule: text,
            state: status.map_or(upkeep_core::State::Stopped, |s| s.state),
            running_since: status.filter(|s| s.pid.is_some()).and_then(|s| s.since),
            runs: Vec::new(),
            skipped: Vec::new(),
            history_error: None,
        };
        // About six events a run: enough to find `runs` of them among the rest.
        let read = match &history {
            Ok(()) => daemon
                .store
                .events(Some(&name), runs.saturating_mul(8).clamp(50, 10_000))
                .await
                .map_err(|e| e.with_causes()),
            Err(away) => Err(away.to_string()),
        };
        match read {
            Ok(events) => {
                info.runs = events
                    .iter()
                    .filter_map(JobRun::from_stored)
                    .take(runs as usize)
                    .collect();
                info.skipped = events.iter().filter_map(skipped_of).collect();
            }
            Err(e) => info.history_error = Some(e),
        }
        out.push(info);
    }
    Ok(out)
}
