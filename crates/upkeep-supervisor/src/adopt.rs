//! Handing a running service from one daemon image to the next (`upkeep upgrade`), without
//! stopping it: the old supervisor lets go of its run ([`Handover`]), the new one takes it
//! over ([`Adoption`]).
//!
//! What a run is to its supervisor is its leader's pid (execve keeps the daemon's pid, so the
//! leader is still its child and its exit still comes to the reaper) and the read ends of its
//! output pipes. The old supervisor stops its log readers between two reads, takes the pipes
//! back with the start of any line they had read no end of, and ends without stopping the
//! process; the new one registers the pid with the reaper (checked by start time and parent,
//! in `upkeep_sys::Reaper::adopt`) and reads on. Nothing the service writes meanwhile is
//! lost: it waits in the pipe (1 MiB each, see `spawn.rs`).
//!
//! A daemon killed under systemd (`KillMode=process`) hands nothing over: the next one adopts
//! the runs whose pipes systemd's fd store kept (`upkeep/src/fdstore.rs`). What the supervisor
//! knew of the run is then read from the [`RunNote`] it left after the run record (written
//! at each spawn and when the run said it was ready): ready or still starting, the restart
//! count and crash-loop window, a job's due time.
//!
//! It does not carry the descriptors across execve or write the state record (the daemon
//! does, in `upkeep/src/upgrade.rs`), and it does not decide whether to adopt at all.

use std::os::fd::OwnedFd;
use std::time::Duration;

use tokio::sync::oneshot;
use upkeep_core::{Actor, Event, EventKind, ExitStatus};

use crate::logs::Stream;
use crate::logs::tap::Tap;
use crate::supervisor::{First, JobRun, Running, Supervisor};

/// One output pipe of a run: its read end and the start of a line read with no end yet.
#[derive(Debug)]
pub struct HandedPipe {
    pub fd: OwnedFd,
    pub partial: Vec<u8>,
}

/// What the old supervisor hands over of its running process.
#[derive(Debug)]
pub struct Handover {
    pub pid: u32,
    /// The pid its pipes are kept under (see [`Adoption::pipes`]).
    pub pipes: u32,
    /// The group its tree is stopped by (not `pid` for a forking daemon that kept its start
    /// command's group).
    pub pgid: u32,
    pub start_ticks: u64,
    /// How long the run has been going (on the supervisor's clock).
    pub uptime: Duration,
    /// The run had said it was ready.
    pub ready: bool,
    /// None where the reader had ended (the service closed its end).
    pub stdout: Option<HandedPipe>,
    pub stderr: Option<HandedPipe>,
    /// A job's run: what its record needs.
    pub job: Option<HandedJob>,
    /// The read end of its readiness pipe (`ready = { fd = N }`) while it is not ready: the
    /// next image reads on from it (issue 18: it was closed, and the run never became ready).
    pub ready_pipe: Option<OwnedFd>,
}

/// A job's run handed over with its process: what its `job_ran` needs, so that its end is
/// recorded as a run of the job like any other (break-it, session 10: a run spanning an
/// upgrade ended as a plain `exited`, missing from `upkeep jobs`). Serialised into the
/// upgrade's state record; a field added later must have a default.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct HandedJob {
    pub started: jiff::Timestamp,
    #[serde(default)]
    pub due: Option<jiff::Timestamp>,
    #[serde(default)]
    pub by: Actor,
    /// The last lines of its output read so far (the record keeps the last 100), and how
    /// many were let go before them.
    #[serde(default)]
    pub output: Vec<String>,
    #[serde(default)]
    pub output_dropped: u64,
}

/// What a supervisor knew besides its process, carried to the next image so that an upgrade
/// changes none of it (break-it, session 9: a failed service was started again, a crash
/// loop's backoff and count began afresh). Serialised into the upgrade's state record; a
/// field added later must have a default.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Carried {
    /// Restarts since the last healthy run (the backoff's exponent).
    pub attempt: u32,
    /// How long before the hand-over (ms) each restart still in the crash-loop window was.
    pub recent_ms: Vec<u64>,
    /// Restarts by policy since an operator last started it.
    pub total: u32,
    /// It was backing off: its restart is due this long after the hand-over (ms).
    pub restart_in_ms: Option<u64>,
    /// It waited for its dependencies to start it.
    pub held: bool,
    /// An operator stopped it (a job's schedule waits for `upkeep start`).
    pub stopped: bool,
    /// It had a process, handed over with this.
    pub running: bool,
}

/// What a supervisor hands over when it lets go: its process, if it had one, and what it knew.
#[derive(Debug)]
pub struct Released {
    pub run: Option<Handover>,
    pub carried: Carried,
}

/// How a supervisor of the next image begins (`upkeep upgrade`): with what the last one
/// carried, and its process if the reaper accepted it.
#[derive(Debug)]
pub struct TakeOver {
    pub carried: Carried,
    pub adoption: Option<Adoption>,
}

/// What the new supervisor takes over: a handed run whose pid the reaper accepted.
#[derive(Debug)]
pub struct Adoption {
    pub pid: u32,
    /// The pid its output pipes are named by where they are kept (systemd's fd store): the
    /// spawned process's, a forking service's start command's, not `pid`.
    pub pipes: u32,
    pub pgid: u32,
    pub start_ticks: u64,
    pub uptime: Duration,
    pub ready: bool,
    /// Since when it has been in its state, and its restart count, as the old daemon saw
    /// them: the `adopted` event carries them on.
    pub since: jiff::Timestamp,
    pub restarts: u32,
    pub stdout: Option<HandedPipe>,
    pub stderr: Option<HandedPipe>,
    /// A job's run, carried on (see [`HandedJob`]).
    pub job: Option<HandedJob>,
    /// From `Reaper::adopt`.
    pub exit: oneshot::Receiver<ExitStatus>,
    /// What the supervisor knew besides (its restart counts), when it did not come with a
    /// [`TakeOver`]: from the [`RunNote`] after a killed daemon.
    pub carried: Option<Carried>,
    /// The read end of its readiness pipe (`ready = { fd = N }`), kept by systemd's fd
    /// store for a run not yet ready when the daemon was killed.
    pub ready_pipe: Option<OwnedFd>,
}

/// What the supervisor knew of its current run, written after the run record (see
/// `upkeep_sys::ServiceLineage::note`) when the run began, and again when it said it was
/// ready: a daemon killed meanwhile leaves it to the next, which adopts the run from
/// systemd's fd store. One line of JSON; a field added later must have a default.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct RunNote {
    /// The run it is of: its leader and start time, as in the run record.
    pub pid: u32,
    pub start_ticks: u64,
    /// When it was written (the daemon's clock): the ages in `carried` are from then.
    pub at: jiff::Timestamp,
    /// The run had said it was ready.
    pub ready: bool,
    /// The restart count and crash-loop window as they were.
    pub carried: Carried,
    /// A job's run: its due time and who asked (its output is in its log).
    #[serde(default)]
    pub job: Option<HandedJob>,
}

impl RunNote {
    /// The note in `text`, if it is one and is of the run `pid` that began at `start_ticks`.
    pub fn of_run(text: &str, pid: u32, start_ticks: u64) -> Option<RunNote> {
        serde_json::from_str::<RunNote>(text)
            .ok()
            .filter(|n| n.pid == pid && n.start_ticks == start_ticks)
    }

    /// What it carries, its ages counted to `now`.
    pub fn carried_at(&self, now: jiff::Timestamp) -> Carried {
        let since = now
            .duration_since(self.at)
            .max(jiff::SignedDuration::ZERO)
            .as_millis() as u64;
        Carried {
            recent_ms: self
                .carried
                .recent_ms
                .iter()
                .map(|ms| ms.saturating_add(since))
                .collect(),
            ..self.carried.clone()
        }
    }
}

impl Supervisor {
    /// Lets go of the running process, if any, without stopping it (the readers stop and hand
    /// their pipes back), and says what it knew. The supervisor ends after this.
    pub(crate) async fn release(&mut self) -> Released {
        let now = self.clock.instant();
        let (attempt, ages, total) = self.tracker.carry(now);
        let carried = Carried {
            attempt,
            recent_ms: ages.iter().map(|a| a.as_millis() as u64).collect(),
            total,
            restart_in_ms: self
                .restart_at
                .map(|at| at.saturating_duration_since(now).as_millis() as u64),
            held: self.held.is_some(),
            stopped: self.stopped,
            running: self.running.is_some(),
        };
        Released {
            run: self.release_run().await,
            carried,
        }
    }

    /// Takes over what the last image's supervisor carried (see [`Carried`]): the restart
    /// count and crash-loop window go on, a backoff ends when it would have, a failed or
    /// stopped service stays so. Answers how to begin, and the first events.
    pub(crate) fn take_over(&mut self, t: TakeOver) -> (First, Vec<Event>) {
        let c = t.carried;
        let now = self.clock.instant();
        let ages: Vec<Duration> = c
            .recent_ms
            .iter()
            .map(|ms| Duration::from_millis(*ms))
            .collect();
        self.tracker = crate::policy::RestartTracker::carried(c.attempt, &ages, c.total, now);
        self.stopped = c.stopped;
        if let Some(a) = t.adoption {
            return (First::Nothing, vec![self.resume(a)]);
        }
        if c.running || c.held {
            // Its process ended during the hand-over (or it waited for its dependencies): it
            // starts as it would have, its count going on.
            return (First::Launch, Vec::new());
        }
        if let Some(ms) = c.restart_in_ms {
            self.restart_at = Some(now + Duration::from_millis(ms));
        }
        (First::Nothing, Vec::new())
    }

    async fn release_run(&mut self) -> Option<Handover> {
        let run = self.running.take()?;
        // Not ready yet: the read end of its readiness pipe goes with it. Its watch gives it
        // back between two reads; one that ended at the newline left its note waiting.
        let ready_pipe = if self.signals.ready {
            None
        } else {
            self.signals.take_ready_pipe().await
        };
        while let Ok(note) = self.signals.notes.try_recv() {
            if note.pgid == run.pid && matches!(note.kind, crate::ready::NoteKind::Ready(_)) {
                self.signals.ready = true;
            }
        }
        let ready_pipe = ready_pipe.filter(|_| !self.signals.ready);
        if run.ready_pipe_kept && ready_pipe.is_none() {
            // Not handed over across execve: the next image's keeper must not hold it. One
            // handed over stays kept under its name, which the next image lets go of.
            self.logs.let_go_ready(&self.name, run.pipes);
        }
        let pgid = run.group();
        let ready = self.signals.ready;
        self.signals.run_ended();
        let job = run.job;
        let mut stdout = None;
        let mut stderr = None;
        for (stream, capture) in run.captures {
            let handed = capture
                .release()
                .await
                .map(|(fd, partial)| HandedPipe { fd, partial });
            match stream {
                Stream::Stdout => stdout = handed,
                Stream::Stderr => stderr = handed,
            }
        }
        // Once the readers stopped: every line read so far is in the tap.
        let job = match job {
            Some(j) => {
                let (output, output_dropped) = j.tap.finished(Duration::ZERO).await;
                Some(HandedJob {
                    started: j.started,
                    due: j.due,
                    by: j.by,
                    output,
                    output_dropped,
                })
            }
            None => None,
        };
        Some(Handover {
            pid: run.pid,
            pipes: run.pipes,
            pgid,
            start_ticks: run.start_ticks,
            uptime: self.clock.instant().saturating_duration_since(run.started),
            ready,
            stdout,
            stderr,
            job,
            ready_pipe,
        })
    }

    /// Takes over a run an earlier image of the daemon started: reads on from its pipes and
    /// waits for its exit, as if this supervisor had spawned it. Answers the `adopted` event,
    /// the first this supervisor sends.
    pub(crate) fn resume(&mut self, a: Adoption) -> Event {
        self.stopped = false;
        // After an upgrade it is still our child; after a killed daemon, systemd's.
        self.orphaned = parent_of(a.pid) != Some(std::process::id());
        self.signals.run_started(a.pid);
        let now = self.clock.instant();
        if a.ready {
            self.signals.ready = true;
            self.signals.arm_watchdog(&self.cfg, now);
        }
        let watch = if a.ready {
            None
        } else {
            self.signals.line_watch(&self.cfg, a.pid)
        };
        // Read on from its readiness pipe, if it is still to say it is ready; else let go.
        let ready_pipe_kept = a.ready_pipe.is_some();
        match a.ready_pipe {
            Some(fd) if !a.ready => self.signals.watch_fd(fd, a.pid),
            Some(_) => self.logs.let_go_ready(&self.name, a.pipes),
            None => {}
        }
        // A job's record goes on from the lines the last image kept, with the streams handed.
        let streams = usize::from(a.stdout.is_some()) + usize::from(a.stderr.is_some());
        let job = a.job.map(|j| JobRun {
            started: j.started,
            due: j.due,
            by: j.by,
            tap: Tap::carried_on(j.output, j.output_dropped, streams),
        });
        let forking = matches!(self.cfg.kind, upkeep_config::ServiceType::Forking { .. });
        let mut captures = Vec::new();
        for (stream, pipe) in [(Stream::Stdout, a.stdout), (Stream::Stderr, a.stderr)] {
            if let Some(p) = pipe {
                let tap = job.as_ref().map(|j| j.tap.stream(stream == Stream::Stderr));
                let c = self.logs.capture(
                    &self.name,
                    stream,
                    (!forking).then_some(a.pipes),
                    (p.fd, p.partial),
                    watch.clone(),
                    tap,
                );
                captures.push((stream, c));
            }
        }
        self.running = Some(Running {
            pid: a.pid,
            pipes: a.pipes,
            pipes_until_end: forking,
            ready_pipe_kept: ready_pipe_kept && !a.ready,
            pgid: a.pgid,
            start_ticks: a.start_ticks,
            started: now.checked_sub(a.uptime).unwrap_or(now),
            exit: a.exit,
            job,
            captures,
        });
        // A daemon killed from here on leaves the next one what this one knew.
        self.write_note();
        self.clock.event(
            &self.name,
            EventKind::Adopted {
                pid: a.pid,
                start_ticks: a.start_ticks,
                since: a.since,
                restarts: a.restarts,
                ready: a.ready,
            },
        )
    }
}

impl Supervisor {
    /// Writes the [`RunNote`] of the current run, if any. On the restart path: one small
    /// serialisation and one `pwrite`.
    pub(crate) fn write_note(&self) {
        let Some(run) = self.running.as_ref() else {
            return;
        };
        let now = self.clock.instant();
        let (attempt, ages, total) = self.tracker.carry(now);
        let note = RunNote {
            pid: run.pid,
            start_ticks: run.start_ticks,
            at: self.clock.now(),
            ready: self.signals.ready,
            carried: Carried {
                attempt,
                recent_ms: ages.iter().map(|a| a.as_millis() as u64).collect(),
                total,
                running: true,
                ..Carried::default()
            },
            job: run.job.as_ref().map(|j| HandedJob {
                started: j.started,
                due: j.due,
                by: j.by.clone(),
                output: Vec::new(),
                output_dropped: 0,
            }),
        };
        match serde_json::to_vec(&note) {
            Ok(line) => self.lineage.note(&line),
            Err(e) => tracing::warn!("cannot write the run's note: {e}"),
        }
    }
}

/// The parent of `pid`, if it exists.
fn parent_of(pid: u32) -> Option<u32> {
    upkeep_sys::procfs::process(pid).map(|p| p.ppid)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_note_counts_only_for_its_own_run_and_ages_its_restarts_to_now() {
        let at: jiff::Timestamp = "2026-01-01T00:00:00Z".parse().unwrap();
        let note = RunNote {
            pid: 4242,
            start_ticks: 77,
            at,
            ready: false,
            carried: Carried {
                attempt: 2,
                recent_ms: vec![5_000, 100],
                total: 2,
                running: true,
                ..Carried::default()
            },
            job: None,
        };
        let text = serde_json::to_string(&note).unwrap();
        assert!(!text.contains('\n'), "one line: {text}");
        assert_eq!(RunNote::of_run(&text, 4242, 77), Some(note.clone()));
        // Another run of the same pid, another pid, or not a note at all: none.
        assert_eq!(RunNote::of_run(&text, 4242, 78), None);
        assert_eq!(RunNote::of_run(&text, 4243, 77), None);
        assert_eq!(RunNote::of_run("short", 4242, 77), None);
        let later = at.checked_add(jiff::SignedDuration::from_secs(3)).unwrap();
        let c = note.carried_at(later);
        assert_eq!(c.recent_ms, [8_000, 3_100]);
        assert_eq!((c.attempt, c.total, c.running), (2, 2, true));
        // A clock that went back ages nothing.
        let earlier = at.checked_sub(jiff::SignedDuration::from_secs(3)).unwrap();
        assert_eq!(note.carried_at(earlier).recent_ms, [5_000, 100]);
    }
}
