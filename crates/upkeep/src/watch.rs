//! `watch`: restarts a service when files under its watched paths change, for development
//! (PM2's `--watch`).
//!
//! inotify (through `notify`, recursive) feeds notify's mini debouncer, which gives a path
//! once no change to it came for `watch_debounce` (its `Any`; the `AnyContinuous` it gives
//! in the middle of a burst is dropped): an editor's save or a burst of writes is one change.
//! Reads are not changes: the service opening its own files at start would restart it again
//! (`ChangesOnly`). Its thread hands each batch to one task per service, which drops what
//! does not count (`node_modules`, `.git`, the service's own log files, `watch_ignore`) and
//! asks the supervisor for a planned restart, recorded as `restart_planned` with the reason
//! `file changed: PATH`. Event driven from end to end: nothing polls. A stopped service is
//! not started by a change.
//!
//! Recursive watching adds an inotify watch per folder, `node_modules` included (their events
//! are dropped here, but the watches are taken). Symlinks are never followed: a tree of
//! folders linking to each other had the walk go through every path of links (exponential),
//! and a link may lead anywhere (`/proc/self/cwd`). A watched path holding more than
//! [`MAX_FOLDERS`] folders, or on a pseudo-file system (`/proc`, `/sys`: their entries change
//! by themselves), is not watched. The walk and the watches are set up on a blocking thread,
//! never on the runtime: a slow disk delays the watching, never the daemon.
//!
//! Restarts from changes are damped (break-it session 11: a service writing into its own
//! folder restarted three times a second for good): a file that changed right after the
//! start of two runs in a row (the run's `since` in the state's snapshot) is the service's
//! own (it writes it as it starts) and no longer counts; and the supervisor counts each
//! restart from a change as a restart, in the one crash-loop window of the service (issue 18:
//! they kept a budget of their own here, and `ls` did not count them): past `max_restarts`
//! restarts within `window`, crashes and changes together, a change restarts nothing until
//! the oldest of them is older than `window`. Both are said in a `watch_failed` event. No
//! backoff, and a change never fails a service. A folder made later in a watched tree is watched as
//! it comes (by notify), past the cap too: the cap is the kernel's `max_user_watches` then.
//!
//! A path that cannot be watched (missing, unreadable, out of watches, too big) or that is
//! removed while watched is said in a `watch_failed` event (shown by `upkeep status`), and the
//! other paths are watched all the same (issue 18): never a silent end of watching.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use notify_debouncer_mini::notify::event::{AccessKind, AccessMode};
use notify_debouncer_mini::notify::{
    self, EventHandler, RecommendedWatcher, RecursiveMode, Watcher, WatcherKind,
};
use notify_debouncer_mini::{
    DebounceEventResult, DebouncedEventKind, Debouncer, new_debouncer_opt,
};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use upkeep_config::{ALWAYS_IGNORED, WatchConfig};
use upkeep_core::{Clock, Event, EventKind, ServiceName};
use upkeep_state::Snapshot;
use upkeep_supervisor::{ChangeRestart, SupervisorHandle};

/// The most folders one watched path may hold (each is an inotify watch, and the walk that
/// counts them is bounded by it). 8192 is the kernel's historical `max_user_watches`.
pub const MAX_FOLDERS: usize = 8192;

/// Where a watcher says what it could not watch: `watch_failed` events of its service.
#[derive(Clone)]
pub struct Report {
    pub name: ServiceName,
    pub events: mpsc::Sender<Event>,
    pub clock: Clock,
}

impl Report {
    pub async fn failed(&self, path: &Path, error: String) {
        tracing::warn!(service = %self.name, path = %path.display(), "cannot watch files: {error}");
        let kind = EventKind::WatchFailed {
            path: path.display().to_string(),
            error,
        };
        let _ = self.events.send(self.clock.event(&self.name, kind)).await;
    }
}

/// Starts watching `w` for service `name` until `cancel` (`deps.logs_dir` holds its own
/// logs). Returns at once: the watches are set up on a blocking thread. Each path that cannot
/// be watched is said in a `watch_failed` event, the rest watched.
pub fn start(
    name: &ServiceName,
    w: &WatchConfig,
    sup: SupervisorHandle,
    deps: &crate::schedule::Deps<'_>,
    cancel: CancellationToken,
) {
    let report = Report {
        name: name.clone(),
        events: deps.events.clone(),
        clock: deps.clock.clone(),
    };
    let logs_dir = deps.logs_dir;
    let filter = Filter {
        roots: w.paths.clone(),
        ignore: w
            .ignore
            .iter()
            .filter_map(|p| glob::Pattern::new(p).ok())
            .collect(),
        logs_dir: logs_dir.to_owned(),
        log_prefix: format!("{name}."),
        // The daemon's own files (the store, its journal, run records, every log): a watch of
        // a folder that holds the data dir would otherwise restart the service for ever, each
        // restart writing there again.
        data_dir: logs_dir.parent().map(|d| {
            let mut both = vec![d.to_owned()];
            both.extend(std::fs::canonicalize(d).ok());
            both
        }),
    };
    let task = Task {
        filter,
        damper: Damper::new(w.debounce),
        refusal_said: false,
        snapshot: deps.snapshot.clone(),
        sup,
        report,
    };
    let (paths, debounce, name) = (w.paths.clone(), w.debounce, name.clone());
    tokio::spawn(async move {
        // A batch waiting means a restart is coming: a full channel loses nothing that matters.
        let (tx, rx) = mpsc::channel::<Vec<PathBuf>>(16);
        let set_up = tokio::task::spawn_blocking(move || set_up(&paths, debounce, tx));
        let (debouncer, failed) = tokio::select! {
            _ = cancel.cancelled() => return,
            r = set_up => match r {
                Ok(r) => r,
                Err(e) => {
                    tracing::error!(service = %name, "setting up the file watches failed: {e}");
                    return;
                }
            },
        };
        for (path, error) in failed {
            task.report.failed(&path, error).await;
        }
        let Some(debouncer) = debouncer else { return };
        tracing::info!(service = %name, paths = ?task.filter.roots, "watching files");
        task.run(debouncer, rx, cancel).await;
    });
}

/// On a blocking thread: makes the watcher and watches each of `paths`; returns it (None when
/// none could be made) and the paths that could not be watched, with why.
fn set_up(
    paths: &[PathBuf],
    debounce: Duration,
    tx: mpsc::Sender<Vec<PathBuf>>,
) -> (Option<Debouncer<ChangesOnly>>, Vec<(PathBuf, String)>) {
    let config = notify_debouncer_mini::Config::default()
        .with_timeout(debounce)
        .with_notify_config(notify::Config::default().with_follow_symlinks(false));
    let made = new_debouncer_opt::<_, ChangesOnly>(config, move |res: DebounceEventResult| {
        match res {
            Ok(events) => {
                // `AnyContinuous` comes while a path still changes (the debouncer's first
                // deadline falls inside a burst): only `Any`, once it is quiet, restarts, or a
                // burst of writes would restart twice.
                let quiet: Vec<PathBuf> = events
                    .into_iter()
                    .filter(|e| e.kind == DebouncedEventKind::Any)
                    .map(|e| e.path)
                    .collect();
                if !quiet.is_empty() {
                    let _ = tx.try_send(quiet);
                }
            }
            Err(e) => tracing::warn!("file watch: {e}"),
        }
    });
    match made {
        Ok(mut debouncer) => {
            let failed = watch_each(debouncer.watcher(), paths);
            (Some(debouncer), failed)
        }
        Err(e) => (
            None,
            paths.iter().map(|p| (p.clone(), e.to_string())).collect(),
        ),
    }
}

/// Watches each of `paths` (recursively, if it fits: [`fits`]); returns those that could not
/// be, with why.
fn watch_each(watcher: &mut dyn Watcher, paths: &[PathBuf]) -> Vec<(PathBuf, String)> {
    paths
        .iter()
        .filter_map(|path| {
            let e = match fits(path, MAX_FOLDERS) {
                Err(e) => e,
                Ok(()) => watcher
                    .watch(path, RecursiveMode::Recursive)
                    .err()?
                    .to_string(),
            };
            Some((path.clone(), e))
        })
        .collect()
}

/// Whether `root` may be watched: not on a pseudo-file system, and holding at most `cap`
/// folders, counted without following symlinks (as the watcher walks) and each folder once by
/// (device, inode). A root that cannot be read is left to the watcher to say why.
fn fits(root: &Path, cap: usize) -> Result<(), String> {
    use std::os::unix::fs::MetadataExt;
    let Ok(meta) = std::fs::metadata(root) else {
        return Ok(());
    };
    if let Some(kind) = pseudo_fs(root) {
        return Err(format!(
            "it is on {kind}, whose entries change by themselves: not watched"
        ));
    }
    if !meta.is_dir() {
        return Ok(());
    }
    let mut seen = HashSet::from([(meta.dev(), meta.ino())]);
    let mut todo = vec![root.to_owned()];
    while let Some(dir) = todo.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            // The entry's own type: a symlink is not a folder here.
            if !entry.file_type().is_ok_and(|t| t.is_dir()) {
                continue;
            }
            let Ok(m) = entry.metadata() else { continue };
            if seen.insert((m.dev(), m.ino())) {
                if seen.len() > cap {
                    return Err(format!(
                        "it holds more than {cap} folders (symlinks are not followed): not \
                         watched; watch the folders that hold the sources instead"
                    ));
                }
                todo.push(entry.path());
            }
        }
    }
    Ok(())
}

/// The name of the pseudo-file system `path` is on, if it is one.
fn pseudo_fs(path: &Path) -> Option<&'static str> {
    use nix::sys::statfs as fs;
    let t = fs::statfs(path).ok()?.filesystem_type();
    [
        (fs::PROC_SUPER_MAGIC, "procfs"),
        (fs::SYSFS_MAGIC, "sysfs"),
        (fs::CGROUP_SUPER_MAGIC, "cgroupfs"),
        (fs::CGROUP2_SUPER_MAGIC, "cgroup2fs"),
        (fs::DEBUGFS_MAGIC, "debugfs"),
        (fs::TRACEFS_MAGIC, "tracefs"),
        (fs::SECURITYFS_MAGIC, "securityfs"),
        (fs::DEVPTS_SUPER_MAGIC, "devpts"),
        (fs::BPF_FS_MAGIC, "bpffs"),
    ]
    .into_iter()
    .find(|(magic, _)| *magic == t)
    .map(|(_, name)| name)
}

/// inotify without the reads: an open, or a close after reading, changes nothing (a service
/// reading its own sources at start restarted itself again). A close after writing stays: a
/// file truncated to what it was gives nothing else.
struct ChangesOnly(RecommendedWatcher);

impl Watcher for ChangesOnly {
    fn new<F: EventHandler>(mut handler: F, config: notify::Config) -> notify::Result<Self> {
        let changes = move |e: notify::Result<notify::Event>| {
            let read = e.as_ref().is_ok_and(|e| match e.kind {
                notify::EventKind::Access(k) => k != AccessKind::Close(AccessMode::Write),
                _ => false,
            });
            if !read {
                handler.handle_event(e);
            }
        };
        RecommendedWatcher::new(changes, config).map(Self)
    }

    fn watch(&mut self, path: &Path, mode: RecursiveMode) -> notify::Result<()> {
        self.0.watch(path, mode)
    }

    fn unwatch(&mut self, path: &Path) -> notify::Result<()> {
        self.0.unwatch(path)
    }

    fn configure(&mut self, config: notify::Config) -> notify::Result<bool> {
        self.0.configure(config)
    }

    fn kind() -> WatcherKind {
        RecommendedWatcher::kind()
    }
}

/// What the watching task of a service holds.
struct Task {
    filter: Filter,
    damper: Damper,
    /// The state's snapshot: when the service's run started.
    snapshot: tokio::sync::watch::Receiver<Arc<Snapshot>>,
    sup: SupervisorHandle,
    report: Report,
    /// Whether the supervisor's refusal (its restart budget spent) was said since it last
    /// restarted the service for a change.
    refusal_said: bool,
}

impl Task {
    async fn run<D: Send + 'static>(
        mut self,
        debouncer: D,
        mut batches: mpsc::Receiver<Vec<PathBuf>>,
        cancel: CancellationToken,
    ) {
        let (filter, report) = (&self.filter, &self.report);
        loop {
            let batch = tokio::select! {
                _ = cancel.cancelled() => break,
                b = batches.recv() => match b { Some(b) => b, None => break },
            };
            // A watched root removed: its watch is gone with it (a folder made again in its
            // place is not watched until the next start or reload).
            for root in filter
                .roots
                .iter()
                .filter(|r| batch.contains(r) && !r.exists())
            {
                report
                    .failed(root, "it was removed: no longer watched".into())
                    .await;
            }
            let changed: Vec<(PathBuf, PathBuf)> = batch
                .iter()
                .filter_map(|p| Some((p.clone(), filter.counts(p)?)))
                .collect();
            let started = self
                .snapshot
                .borrow()
                .services
                .get(&report.name)
                .and_then(|s| s.since);
            let fresh = self.damper.fresh(started, report.clock.now());
            let verdict = self.damper.judge(&changed, fresh);
            for (path, error) in verdict.said {
                report.failed(&path, error).await;
            }
            let Some((abs, rel)) = verdict.restart else {
                continue;
            };
            match self
                .sup
                .changed(format!("file changed: {}", rel.display()))
                .await
            {
                Some(ChangeRestart::Restarted) => self.refusal_said = false,
                Some(ChangeRestart::OverBudget { restarts, window }) => {
                    if !std::mem::replace(&mut self.refusal_said, true) {
                        report.failed(&abs, over_budget(restarts, window)).await;
                    }
                }
                Some(ChangeRestart::NotRunning) | None => {}
            }
        }
        // Stops the watcher and its thread.
        drop(debouncer);
    }
}

/// What the supervisor refusing a restart for a change is said as: `restarts` restarts
/// (crashes and changes) within `window`, the service's `max_restarts`.
fn over_budget(restarts: u32, window: Duration) -> String {
    format!(
        "it restarted {restarts} times within {window:?} (max_restarts, crashes and file changes \
         together): changes restart nothing until the oldest of those is older than that"
    )
}

/// What a batch of changes comes to.
#[derive(Debug, PartialEq, Default)]
struct Verdict {
    /// A restart, for this change (absolute, and relative to its root).
    restart: Option<(PathBuf, PathBuf)>,
    /// What to say (`watch_failed` of the path): a file found to be the service's own.
    said: Vec<(PathBuf, String)>,
}

/// Damps restarts from changes (see the module docs). Time comes in as arguments.
#[derive(Debug)]
struct Damper {
    /// How soon after the run's start a change comes to be one the service made as it started
    /// (the debouncer gives it `debounce` to twice that after the write).
    settle: Duration,
    /// The files that changed right after the last restart from a change.
    after_last: HashSet<PathBuf>,
    /// Files found to be the service's own: they no longer count.
    own: HashSet<PathBuf>,
}

impl Damper {
    fn new(debounce: Duration) -> Self {
        Self {
            settle: debounce * 2 + Duration::from_secs(2),
            after_last: HashSet::new(),
            own: HashSet::new(),
        }
    }

    /// Whether a batch given at `now` came right after the start of the run (`started`).
    fn fresh(&self, started: Option<jiff::Timestamp>, now: jiff::Timestamp) -> bool {
        let settle =
            jiff::SignedDuration::try_from(self.settle).unwrap_or(jiff::SignedDuration::MAX);
        started.is_some_and(|s| now.duration_since(s) <= settle)
    }

    /// `changed`: each change that counts, as (absolute, relative to its root); `fresh`: they
    /// came right after the run's start ([`Damper::fresh`]).
    fn judge(&mut self, changed: &[(PathBuf, PathBuf)], fresh: bool) -> Verdict {
        // Changed right after the start of this run and of the one before: the service writes
        // it.
        let mut verdict = Verdict::default();
        if fresh {
            for (abs, _) in changed {
                if self.after_last.contains(abs) && self.own.insert(abs.clone()) {
                    let e = "it changed right as the service started, twice in a row (the service \
                             writes it as it starts?): its changes no longer restart it; hint: \
                             add it to watch_ignore";
                    verdict.said.push((abs.clone(), e.into()));
                }
            }
        }
        let changed: Vec<&(PathBuf, PathBuf)> = changed
            .iter()
            .filter(|(abs, _)| !self.own.contains(abs))
            .collect();
        let Some(first) = changed.first().copied() else {
            return verdict;
        };
        // Only what changed right after a start may be the service's own.
        self.after_last = if fresh {
            changed.iter().map(|(a, _)| a.clone()).collect()
        } else {
            HashSet::new()
        };
        verdict.restart = Some(first.clone());
        verdict
    }
}

/// Which changed paths count.
struct Filter {
    roots: Vec<PathBuf>,
    ignore: Vec<glob::Pattern>,
    logs_dir: PathBuf,
    log_prefix: String,
    /// The daemon's data dir, as given and resolved: nothing in it counts.
    data_dir: Option<Vec<PathBuf>>,
}

impl Filter {
    /// The path to name in the reason (relative to its watched root), if a change to `path`
    /// counts.
    fn counts(&self, path: &Path) -> Option<PathBuf> {
        // A folder's own events (its times change when an entry in it does) come with the
        // entry's: the entry names the change.
        if path.is_dir() {
            return None;
        }
        if self.data_dir.iter().flatten().any(|d| path.starts_with(d)) {
            return None;
        }
        if path.starts_with(&self.logs_dir)
            && path
                .file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with(&self.log_prefix))
        {
            return None;
        }
        let rel = self
            .roots
            .iter()
            .find_map(|r| path.strip_prefix(r).ok())
            .unwrap_or(path);
        let ignored = rel.components().any(|c| {
            let c = c.as_os_str().to_string_lossy();
            ALWAYS_IGNORED.contains(&c.as_ref()) || self.ignore.iter().any(|p| p.matches(&c))
        }) || self.ignore.iter().any(|p| p.matches_path(rel));
        if ignored {
            return None;
        }
        Some(if rel.as_os_str().is_empty() {
            path.to_owned()
        } else {
            rel.to_owned()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use notify_debouncer_mini::new_debouncer;

    #[test]
    fn node_modules_git_own_logs_and_patterns_do_not_count() {
        let f = Filter {
            roots: vec![PathBuf::from("/srv/app/src")],
            ignore: vec![
                glob::Pattern::new("*.tmp").unwrap(),
                glob::Pattern::new("gen/**").unwrap(),
            ],
            logs_dir: PathBuf::from("/srv/app/src/logs"),
            log_prefix: "web.".into(),
            data_dir: None,
        };
        let counts = |p: &str| f.counts(Path::new(p));
        assert_eq!(counts("/srv/app/src/a/b.js"), Some(PathBuf::from("a/b.js")));
        assert_eq!(counts("/srv/app/src/node_modules/x/index.js"), None);
        assert_eq!(counts("/srv/app/src/.git/HEAD"), None);
        assert_eq!(counts("/srv/app/src/logs/web.out.log"), None);
        assert!(counts("/srv/app/src/logs/other.out.log").is_some());
        assert_eq!(counts("/srv/app/src/x.tmp"), None);
        assert_eq!(counts("/srv/app/src/gen/a/b.rs"), None);
    }

    /// Issue 18: a path that cannot be watched is named, and the others are watched all the
    /// same (a change there arrives).
    #[test]
    fn a_path_that_cannot_be_watched_leaves_the_others_watched() {
        let dir = tempfile::tempdir().unwrap();
        let good = dir.path().join("src");
        std::fs::create_dir(&good).unwrap();
        let missing = dir.path().join("gone");
        let (tx, rx) = std::sync::mpsc::channel();
        let mut debouncer = new_debouncer(
            std::time::Duration::from_millis(20),
            move |res: DebounceEventResult| {
                if let Ok(events) = res {
                    let _ = tx.send(events.into_iter().map(|e| e.path).collect::<Vec<_>>());
                }
            },
        )
        .unwrap();
        let failed = watch_each(debouncer.watcher(), &[missing.clone(), good.clone()]);
        assert_eq!(failed.len(), 1, "{failed:?}");
        assert_eq!(failed[0].0, missing);
        std::fs::write(good.join("a.js"), "x").unwrap();
        let seen = rx
            .recv_timeout(std::time::Duration::from_secs(20))
            .expect("a change under the good path");
        assert!(seen.iter().any(|p| p.ends_with("a.js")), "{seen:?}");
    }

    #[test]
    fn nothing_in_the_daemons_data_dir_counts() {
        let f = Filter {
            roots: vec![PathBuf::from("/srv/app")],
            ignore: Vec::new(),
            logs_dir: PathBuf::from("/srv/app/.upkeep/logs"),
            log_prefix: "web.".into(),
            data_dir: Some(vec![PathBuf::from("/srv/app/.upkeep")]),
        };
        let counts = |p: &str| f.counts(Path::new(p));
        assert_eq!(counts("/srv/app/.upkeep/upkeep.db-wal"), None);
        assert_eq!(counts("/srv/app/.upkeep/run/web"), None);
        assert_eq!(counts("/srv/app/.upkeep/logs/other.out.log"), None);
        assert_eq!(counts("/srv/app/main.py"), Some(PathBuf::from("main.py")));
    }

    /// Break-it session 11: folders linking to each other are walked once each (symlinks not
    /// followed), and a tree past the cap is refused with the number in the reason.
    #[test]
    fn the_walk_follows_no_symlink_and_stops_at_the_cap() {
        let dir = tempfile::tempdir().unwrap();
        let web = dir.path().join("web");
        upkeep_testkit::symlink_mesh(&web, 8);
        // web and its 8 folders: 9.
        assert_eq!(fits(&web, 9), Ok(()));
        let e = fits(&web, 8).unwrap_err();
        assert!(e.contains("more than 8 folders"), "{e}");
    }

    #[test]
    fn a_pseudo_file_system_is_not_watched() {
        let e = fits(Path::new("/proc"), MAX_FOLDERS).unwrap_err();
        assert!(e.contains("procfs"), "{e}");
        let e = fits(Path::new("/sys"), MAX_FOLDERS).unwrap_err();
        assert!(e.contains("sysfs"), "{e}");
    }

    /// A file read is not a change: only the file written comes.
    #[test]
    fn reading_a_watched_file_is_no_change() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("read.js"), "x").unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        let config = notify_debouncer_mini::Config::default()
            .with_timeout(Duration::from_millis(20))
            .with_notify_config(notify::Config::default().with_follow_symlinks(false));
        let mut debouncer =
            new_debouncer_opt::<_, ChangesOnly>(config, move |res: DebounceEventResult| {
                if let Ok(events) = res {
                    let _ = tx.send(events.into_iter().map(|e| e.path).collect::<Vec<_>>());
                }
            })
            .unwrap();
        assert!(watch_each(debouncer.watcher(), &[dir.path().to_owned()]).is_empty());
        std::fs::read(dir.path().join("read.js")).unwrap();
        std::fs::write(dir.path().join("written.js"), "x").unwrap();
        let seen = rx.recv_timeout(Duration::from_secs(20)).expect("a change");
        assert!(seen.iter().any(|p| p.ends_with("written.js")), "{seen:?}");
        assert!(!seen.iter().any(|p| p.ends_with("read.js")), "{seen:?}");
    }

    fn change(p: &str) -> Vec<(PathBuf, PathBuf)> {
        vec![(PathBuf::from("/srv/app").join(p), PathBuf::from(p))]
    }

    /// Break-it session 11: a file the service writes as it starts restarts it once more at
    /// most, then is its own; other files still restart it.
    #[test]
    fn a_file_changed_as_each_run_starts_is_the_services_own() {
        let mut d = Damper::new(Duration::from_millis(300));
        let restart = |p: &str| Some((PathBuf::from("/srv/app").join(p), PathBuf::from(p)));
        // An edit, well after the start: a restart.
        let v = d.judge(&change("app.js"), false);
        assert_eq!(v.restart, restart("app.js"));
        // The run writes started.txt as it starts: once more...
        let v = d.judge(&change("started.txt"), true);
        assert_eq!(v.restart, restart("started.txt"));
        // ...and then never.
        let v = d.judge(&change("started.txt"), true);
        assert_eq!(v.restart, None);
        assert_eq!(v.said.len(), 1);
        assert!(v.said[0].1.contains("watch_ignore"), "{v:?}");
        assert_eq!(d.judge(&change("started.txt"), false), Verdict::default());
        let v = d.judge(&change("app.js"), true);
        assert_eq!(v.restart, restart("app.js"));
    }
}
