//! What operators asked for, kept in the data dir first and in the store second: each
//! service's desired state (`upkeep start` / `stop`) and the maintenance it is in, in
//! `<data_dir>/intent.json`. A daemon that starts while the store is away reads them from here,
//! so that a service an operator stopped is not started again, and one in maintenance is not
//! healed, just because the database was away.
//!
//! The file is replaced whole (a temporary file, fsync, rename, fsync of the folder) each time
//! an operator changes something, before the answer; a daemon killed at any instant leaves
//! the old file or the new one. One that does not read (edited by hand, another version) is
//! set aside with a log line, never a panic: start-up then asks the store, or the config.
//!
//! The store's copy of desired states (`Store::set_desired`) follows: written at once when the
//! store answers, else marked behind and pushed by [`keep_store_in_step`] when it is back.
//! Maintenance is in the store as events already (through state).
//!
//! Read at start-up by `takeover.rs`; written by `ops/services.rs`, `ops/reload.rs` (add) and
//! `ops/maintenance.rs`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::sync::{Mutex, Notify, watch};
use upkeep_core::api::StoreHealth;
use upkeep_core::{Desired, Maintenance, ServiceName};
use upkeep_store::Store;

const VERSION: u32 = 1;

/// The file's contents.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct IntentFile {
    version: u32,
    #[serde(default)]
    desired: BTreeMap<ServiceName, Desired>,
    #[serde(default)]
    maintenance: BTreeMap<ServiceName, Maintenance>,
}

#[derive(Debug, thiserror::Error)]
pub enum IntentError {
    #[error("reading {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} is not a file this upkeep reads: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("writing {path}")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

pub fn path(data_dir: &Path) -> PathBuf {
    data_dir.join("intent.json")
}

/// Operators' intent, as the file holds it. One writer at a time (the async mutex is held
/// while the file is replaced, so two actions never interleave their writes).
pub struct Intent {
    path: PathBuf,
    file: Mutex<IntentFile>,
    /// The store's desired states are older than the file's.
    behind: AtomicBool,
    wake: Notify,
}

impl Intent {
    /// Reads the file of `data_dir`. None if there is none yet; a file that cannot be read is
    /// logged and read as none (start-up then asks the store).
    pub fn load(data_dir: &Path) -> (Intent, bool) {
        let path = path(data_dir);
        let (file, found) = match read(&path) {
            Ok(Some(f)) => (f, true),
            Ok(None) => (IntentFile::default(), false),
            Err(e) => {
                tracing::error!(
                    "{:#}; desired states come from the store or the config instead",
                    anyhow::Error::new(e)
                );
                (IntentFile::default(), false)
            }
        };
        (
            Intent {
                path,
                file: Mutex::new(file),
                behind: AtomicBool::new(false),
                wake: Notify::new(),
            },
            found,
        )
    }

    /// What the file says `name` should be, if it says.
    pub async fn desired(&self, name: &ServiceName) -> Option<Desired> {
        self.file.lock().await.desired.get(name).copied()
    }

    /// The maintenance each service is in, by the file, ending after `now` (one whose end
    /// passed ended while no daemon ran, or was ended by the last one).
    pub async fn maintenance(&self, now: jiff::Timestamp) -> BTreeMap<ServiceName, Maintenance> {
        let file = self.file.lock().await;
        file.maintenance
            .iter()
            .filter(|(_, m)| m.until.is_none_or(|u| u > now))
            .map(|(n, m)| (n.clone(), m.clone()))
            .collect()
    }

    /// Keeps every service's desired state as start-up decided it (from the file, the store or
    /// the config), so that the next start finds them here.
    pub async fn start_with(
        &self,
        desired: &BTreeMap<ServiceName, Desired>,
    ) -> Result<(), IntentError> {
        let mut file = self.file.lock().await;
        let mut next = file.clone();
        next.desired
            .extend(desired.iter().map(|(n, d)| (n.clone(), *d)));
        self.replace(&mut file, next).await
    }

    /// Sets the desired state of `names`: in the file (an error if it cannot be written: the
    /// caller does not act then), then in the store, if `store` is given and answers; if
    /// not, the store is marked behind and brought in step once it is back.
    pub async fn set_desired(
        &self,
        names: &[ServiceName],
        desired: Desired,
        store: Option<&dyn Store>,
    ) -> Result<(), IntentError> {
        {
            let mut file = self.file.lock().await;
            let mut next = file.clone();
            for n in names {
                next.desired.insert(n.clone(), desired);
            }
            self.replace(&mut file, next).await?;
        }
        let Some(store) = store else {
            self.mark_behind("the store is unreachable");
            return Ok(());
        };
        for n in names {
            if let Err(e) = store.set_desired(n, desired).await {
                self.mark_behind(&e.with_causes());
                break;
            }
        }
        Ok(())
    }

    /// Records the maintenance `name` is in (None: none).
    pub async fn set_maintenance(
        &self,
        name: &ServiceName,
        maintenance: Option<Maintenance>,
    ) -> Result<(), IntentError> {
        let mut file = self.file.lock().await;
        let mut next = file.clone();
        match maintenance {
            Some(m) => next.maintenance.insert(name.clone(), m),
            None => next.maintenance.remove(name),
        };
        self.replace(&mut file, next).await
    }

    /// The store's desired states are older than the file's: [`keep_store_in_step`] pushes
    /// them once it answers.
    pub fn mark_behind(&self, why: &str) {
        if !self.behind.swap(true, Ordering::SeqCst) {
            tracing::warn!(
                "desired states kept in {} only ({why}); stored once the store answers",
                self.path.display()
            );
        }
        self.wake.notify_one();
    }

    /// Has [`keep_store_in_step`] write the file's desired states to the store, without a
    /// word: start-up found the store's older than the file's (a daemon killed before it
    /// could store what an operator asked while the store was away).
    pub fn push_soon(&self) {
        self.behind.store(true, Ordering::SeqCst);
        self.wake.notify_one();
    }

    /// Writes every desired state the file holds to the store.
    async fn push(&self, store: &dyn Store) -> Result<(), upkeep_store::Error> {
        let desired = self.file.lock().await.desired.clone();
        // Cleared first: a change made meanwhile marks it behind again.
        self.behind.store(false, Ordering::SeqCst);
        for (name, d) in &desired {
            if let Err(e) = store.set_desired(name, *d).await {
                self.behind.store(true, Ordering::SeqCst);
                return Err(e);
            }
        }
        Ok(())
    }

    async fn replace(
        &self,
        file: &mut IntentFile,
        mut next: IntentFile,
    ) -> Result<(), IntentError> {
        next.version = VERSION;
        if *file == next {
            return Ok(());
        }
        let (path, text) = (self.path.clone(), serde_json::to_string_pretty(&next));
        let text = text.expect("intent serialises");
        tokio::task::spawn_blocking(move || save(&path, &text))
            .await
            .map_err(|e| IntentError::Write {
                path: self.path.clone(),
                source: std::io::Error::other(e),
            })??;
        *file = next;
        Ok(())
    }
}

/// Pushes the file's desired states to the store whenever it is behind and the store
/// answers: at once when told, again on every change of the store's health, and every few
/// seconds while a push fails. Ends when the health reports end (the writer is gone).
pub async fn keep_store_in_step(
    intent: std::sync::Arc<Intent>,
    store: std::sync::Arc<dyn Store>,
    mut health: watch::Receiver<StoreHealth>,
) {
    const RETRY: Duration = Duration::from_secs(5);
    loop {
        if intent.behind.load(Ordering::SeqCst) && health.borrow().reachable {
            match intent.push(store.as_ref()).await {
                Ok(()) => tracing::info!("desired states stored again"),
                Err(e) => tracing::debug!("desired states not stored yet: {}", e.with_causes()),
            }
        }
        let retry = intent.behind.load(Ordering::SeqCst);
        tokio::select! {
            changed = health.changed() => if changed.is_err() { return },
            _ = intent.wake.notified() => {}
            _ = tokio::time::sleep(RETRY), if retry => {}
        }
    }
}

fn read(path: &Path) -> Result<Option<IntentFile>, IntentError> {
    let read = |source| IntentError::Read {
        path: path.to_owned(),
        source,
    };
    // A few lines per service; more is not a file of ours.
    let Some(bytes) = upkeep_supervisor::trust::read_own(path, 16 * 1024 * 1024).map_err(read)?
    else {
        return Ok(None);
    };
    let text = String::from_utf8_lossy(&bytes);
    let parse = |message: String| IntentError::Parse {
        path: path.to_owned(),
        message,
    };
    let file: IntentFile = serde_json::from_str(&text).map_err(|e| parse(e.to_string()))?;
    if file.version != VERSION {
        return Err(parse(format!(
            "version {} is not one this upkeep reads ({VERSION})",
            file.version
        )));
    }
    Ok(Some(file))
}

/// Replaces the file at `path` with `text`, whole (see [`upkeep_supervisor::trust::replace_own`]).
fn save(path: &Path, text: &str) -> Result<(), IntentError> {
    upkeep_supervisor::trust::replace_own(path, format!("{text}\n").as_bytes()).map_err(|source| {
        IntentError::Write {
            path: path.to_owned(),
            source,
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(s: &str) -> ServiceName {
        ServiceName::new(s).unwrap()
    }

    fn private_dir() -> tempfile::TempDir {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
        dir
    }

    #[tokio::test]
    async fn desired_states_and_maintenance_survive_reloading() {
        let dir = private_dir();
        let (intent, found) = Intent::load(dir.path());
        assert!(!found);
        let start = BTreeMap::from([(name("a"), Desired::Running), (name("b"), Desired::Running)]);
        intent.start_with(&start).await.unwrap();
        intent
            .set_desired(&[name("b")], Desired::Stopped, None)
            .await
            .unwrap();
        assert!(intent.behind.load(Ordering::SeqCst));
        let now = jiff::Timestamp::now();
        let m = |until: Option<jiff::Timestamp>| Maintenance {
            since: now,
            until,
            reason: "disk swap".into(),
            window: None,
        };
        let hour = jiff::SignedDuration::from_hours(1);
        intent
            .set_maintenance(&name("a"), Some(m(Some(now + hour))))
            .await
            .unwrap();
        intent
            .set_maintenance(&name("b"), Some(m(Some(now - hour))))
            .await
            .unwrap();
        intent
            .set_maintenance(&name("c"), Some(m(None)))
            .await
            .unwrap();
        intent.set_maintenance(&name("c"), None).await.unwrap();

        let (again, found) = Intent::load(dir.path());
        assert!(found);
        assert_eq!(again.desired(&name("a")).await, Some(Desired::Running));
        assert_eq!(again.desired(&name("b")).await, Some(Desired::Stopped));
        assert_eq!(again.desired(&name("c")).await, None);
        // Only maintenance that has not ended by now.
        let held = again.maintenance(now).await;
        assert_eq!(held.keys().collect::<Vec<_>>(), [&name("a")]);
        assert_eq!(held[&name("a")], m(Some(now + hour)));
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(path(dir.path()))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    /// A file cut short, edited into something else, or of another version is set aside,
    /// never a panic, and the next write replaces it whole.
    #[tokio::test]
    async fn a_torn_or_foreign_file_is_set_aside() {
        let dir = private_dir();
        let whole = format!(
            "{{\"version\":{VERSION},\"desired\":{{\"web\":\"stopped\"}},\"maintenance\":{{}}}}"
        );
        for bad in [
            whole[..whole.len() / 2].to_string(),
            whole.replace("stopped", "sleeping"),
            whole.replace("web", "no such name!"),
            whole.replace(&format!("\"version\":{VERSION}"), "\"version\":99"),
            whole.replace("\"desired\"", "\"wanted\""),
            "\u{0}\u{0}\u{0}".to_string(),
            String::new(),
        ] {
            std::fs::write(path(dir.path()), &bad).unwrap();
            let (intent, found) = Intent::load(dir.path());
            assert!(!found, "{bad:?}");
            assert_eq!(intent.desired(&name("web")).await, None, "{bad:?}");
        }
        std::fs::write(path(dir.path()), &whole).unwrap();
        let (intent, found) = Intent::load(dir.path());
        assert!(found);
        assert_eq!(intent.desired(&name("web")).await, Some(Desired::Stopped));
        intent
            .set_desired(&[name("web")], Desired::Running, None)
            .await
            .unwrap();
        let (again, _) = Intent::load(dir.path());
        assert_eq!(again.desired(&name("web")).await, Some(Desired::Running));
    }

    #[tokio::test]
    async fn a_symlink_in_its_place_is_not_followed() {
        let dir = private_dir();
        let elsewhere = dir.path().join("elsewhere.json");
        std::fs::write(&elsewhere, format!("{{\"version\":{VERSION}}}")).unwrap();
        std::os::unix::fs::symlink(&elsewhere, path(dir.path())).unwrap();
        let (_, found) = Intent::load(dir.path());
        assert!(!found);
    }
}
