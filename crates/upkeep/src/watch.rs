//! `watch`: restarts a service when files under its watched paths change, for development
//! (PM2's `--watch`).
//!
//! inotify (through `notify`, recursive) feeds notify's mini debouncer, which gives a path
//! once no change to it came for `watch_debounce` (its `Any`; the `AnyContinuous` it gives
//! in the middle of a burst is dropped): an editor's save or a burst of writes is one change. Its thread hands each batch to one task per service, which drops what does not
//! count (`node_modules`, `.git`, the service's own log files, `watch_ignore`) and asks the
//! supervisor for a planned restart, recorded as `restart_planned` with the reason
//! `file changed: PATH`. Event driven from end to end: nothing polls. A stopped service is
//! not started by a change.
//!
//! Recursive watching adds an inotify watch per folder, `node_modules` included (their events
//! are dropped here, but the watches are taken): a tree larger than
//! `fs.inotify.max_user_watches` fails to watch.
//!
//! A path that cannot be watched (missing, unreadable, out of watches) or that is removed
//! while watched is said in a `watch_failed` event (shown by `upkeep status`), and the other
//! paths are watched all the same (issue 18): never a silent end of watching.

use std::path::{Path, PathBuf};

use notify_debouncer_mini::notify::RecursiveMode;
use notify_debouncer_mini::{DebounceEventResult, DebouncedEventKind, new_debouncer};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use upkeep_config::{ALWAYS_IGNORED, WatchConfig};
use upkeep_core::{Clock, Event, EventKind, ServiceName};
use upkeep_supervisor::SupervisorHandle;

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

/// Starts watching `w` for service `name` until `cancel`; `logs_dir` holds its own logs.
/// Each path that cannot be watched is reported (`report`), the rest watched; an error only
/// when no watcher could be made at all.
pub fn start(
    name: &ServiceName,
    w: &WatchConfig,
    sup: SupervisorHandle,
    logs_dir: &Path,
    report: Report,
    cancel: CancellationToken,
) -> Result<(), notify_debouncer_mini::notify::Error> {
    // A batch waiting means a restart is coming: a full channel loses nothing that matters.
    let (tx, rx) = mpsc::channel::<Vec<PathBuf>>(16);
    let mut debouncer = new_debouncer(w.debounce, move |res: DebounceEventResult| match res {
        Ok(events) => {
            // `AnyContinuous` comes while a path still changes (the debouncer's first deadline
            // falls inside a burst): only `Any`, once it is quiet, restarts, or a burst of
            // writes would restart twice.
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
    })?;
    let failed = watch_each(debouncer.watcher(), &w.paths);
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
    tracing::info!(service = %name, paths = ?w.paths, "watching files");
    tokio::spawn(run(debouncer, rx, filter, sup, report, failed, cancel));
    Ok(())
}

/// Watches each of `paths` (recursively); returns those that could not be, with why.
fn watch_each(
    watcher: &mut dyn notify_debouncer_mini::notify::Watcher,
    paths: &[PathBuf],
) -> Vec<(PathBuf, String)> {
    paths
        .iter()
        .filter_map(|path| {
            let e = watcher.watch(path, RecursiveMode::Recursive).err()?;
            Some((path.clone(), e.to_string()))
        })
        .collect()
}

async fn run<D: Send + 'static>(
    debouncer: D,
    mut batches: mpsc::Receiver<Vec<PathBuf>>,
    filter: Filter,
    sup: SupervisorHandle,
    report: Report,
    failed: Vec<(PathBuf, String)>,
    cancel: CancellationToken,
) {
    for (path, error) in failed {
        report.failed(&path, error).await;
    }
    loop {
        let batch = tokio::select! {
            _ = cancel.cancelled() => break,
            b = batches.recv() => match b { Some(b) => b, None => break },
        };
        // A watched root removed: its watch is gone with it (a folder made again in its place
        // is not watched until the next start or reload).
        for root in filter
            .roots
            .iter()
            .filter(|r| batch.contains(r) && !r.exists())
        {
            report
                .failed(root, "it was removed: no longer watched".into())
                .await;
        }
        if let Some(changed) = batch.iter().find_map(|p| filter.counts(p)) {
            sup.planned(format!("file changed: {}", changed.display()))
                .await;
        }
    }
    // Stops the watcher and its thread.
    drop(debouncer);
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
}
