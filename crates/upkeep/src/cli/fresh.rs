//! From nothing to running in one command (issue 18, item 0): `upkeep add web -- python3 -m
//! http.server 8000` in a folder with no config makes `./upkeep.toml`, starts the daemon
//! (detached, as `upkeep up`) and adds the service, which then runs; `upkeep up` with no
//! config says how to make one.
//!
//! How the other commands find that daemon: the file made here names its data dir
//! (`.upkeep`, beside the file), and the control socket is `<data_dir>/upkeep.sock`; `ls`,
//! `logs`, `stop` run from the same folder read `./upkeep.toml` first, so they reach it. From
//! another folder they read that folder's config (or the user's, or `/etc`'s): `-c
//! PATH/upkeep.toml` reaches this one. Run twice, `add` finds the file and the daemon and only
//! adds (a name already there is refused by the daemon, as always). Two at once take turns
//! (issue 18): making the file and starting the daemon happen under the config's edit lock
//! (the lock file the daemon's own `add` takes, `.upkeep.toml.upkeep-lock`), so the second
//! finds the file whole and the daemon answering, and only adds. (Before, the second could
//! find the daemon started but not yet answering, and gave up with its service.) The file
//! appears whole or not at all: written aside, then linked into place.
//!
//! It does not edit a config that exists (the daemon's `add` does, keeping its comments), and
//! makes none where one was named (`-c`, `$UPKEEP_CONFIG`) but is missing: that stays an error.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use upkeep_core::i18n::{Msg, tr};

use super::{ClientError, Global, lifecycle};

/// The data dir the made config names, relative to it.
const DATA_DIR: &str = ".upkeep";

/// What `add` writes at `path` when there is no config: a `[daemon]` section and what it
/// means, with the command that reaches it from elsewhere.
fn template(path: &Path) -> String {
    let path = std::path::absolute(path).unwrap_or_else(|_| path.to_owned());
    let shown = path.display().to_string();
    // A path a shell would split or expand is quoted.
    let shown = if shown
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "/._-+".contains(c))
    {
        shown
    } else {
        format!("'{}'", shown.replace('\'', "'\\''"))
    };
    format!(
        "# upkeep's config, made by `upkeep add`. Each service is a [services.NAME] table;\n\
         # `upkeep check` validates this file, `upkeep reload` applies it.\n\
         \n\
         [daemon]\n\
         # History (SQLite), logs and the control socket ({DATA_DIR}/upkeep.sock), relative to\n\
         # this file. `upkeep ls`, `logs`, `stop`... run in this folder reach the daemon through\n\
         # it; from elsewhere, name this file: `upkeep -c {shown} ls`.\n\
         data_dir = \"{DATA_DIR}\"\n"
    )
}

/// No config file where one was looked for: what `up` (and `daemon`) say.
#[derive(Debug, thiserror::Error)]
#[error("{}", tr(Msg::NoConfigFile, &[&.looked]))]
pub struct NoConfig {
    looked: String,
}

impl NoConfig {
    pub fn hint(&self) -> String {
        tr(Msg::NoConfigHint, &[])
    }
}

/// Fails with [`NoConfig`] when the config file `g` points to does not exist.
pub(super) fn require_config(g: &Global) -> Result<()> {
    let path = g.config_path();
    if path.exists() {
        return Ok(());
    }
    let looked = if g.config.is_some() {
        path.display().to_string()
    } else {
        looked_for()
    };
    Err(NoConfig { looked }.into())
}

/// The places `upkeep_config::default_config_path` looks, as the user would write them.
fn looked_for() -> String {
    let mut places = vec!["./upkeep.toml".to_owned()];
    if std::env::var_os("XDG_CONFIG_HOME").is_some_and(|v| !v.is_empty()) {
        places.push("$XDG_CONFIG_HOME/upkeep/upkeep.toml".into());
    } else {
        places.push("~/.config/upkeep/upkeep.toml".into());
    }
    places.push("/etc/upkeep/upkeep.toml".into());
    places.join(", ")
}

/// Before `add` talks to the daemon: makes the config if there is none, and starts the daemon
/// if none answers.
pub(super) fn prepare_add(g: &Global) -> Result<()> {
    let path = g.config_path();
    // One `add` at a time makes the file and starts the daemon (see the module docs); the
    // daemon takes the same lock for its edit, after this one is let go.
    let _turn = crate::ops::reload::ConfigLock::acquire(&path)
        .with_context(|| format!("locking the edits of {}", path.display()))?;
    // Only where none was named: a named file that is not there is a typo as likely as a
    // wish (issue 14), and would start a second daemon beside the one meant.
    if !path.exists() && g.config.is_none() {
        make_config(&path)?;
    }
    let data_dir = g.data_dir()?;
    let client = super::Client::new(&data_dir);
    let rt = super::runtime()?;
    let answers = || {
        rt.block_on(client.get::<upkeep_core::api::Health>("/api/v1/daemon"))
            .map(|_| ())
    };
    match answers() {
        Ok(()) => return Ok(()),
        Err(ClientError::NoDaemon { .. }) => {}
        Err(e) => return Err(e.into()),
    }
    if let Err(e) = lifecycle::up(g) {
        // Another `add` started it meanwhile: the data dir's lock let one daemon run.
        if answers().is_ok() {
            return Ok(());
        }
        return Err(e);
    }
    Ok(())
}

/// Writes the template at `path`, unless something is there by now: written to a file
/// beside it, then linked into place (a link never replaces), so a reader never finds it
/// half-written.
fn make_config(path: &Path) -> Result<()> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let aside = path.with_file_name(format!(".{name}.{}.new", std::process::id()));
    let written = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&aside)
        .and_then(|mut f| f.write_all(template(path).as_bytes()))
        .and_then(|()| std::fs::hard_link(&aside, path));
    let _ = std::fs::remove_file(&aside);
    match written {
        Ok(()) => {}
        // Made by someone else meanwhile: use theirs.
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => return Ok(()),
        Err(e) => return Err(e).with_context(|| format!("making {}", path.display())),
    }
    let data_dir: PathBuf = path.parent().unwrap_or(Path::new(".")).join(DATA_DIR);
    println!(
        "{}",
        tr(Msg::ConfigCreated, &[&path.display(), &data_dir.display()])
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_made_config_is_valid_and_names_its_data_dir() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("upkeep.toml");
        make_config(&path).unwrap();
        let config = upkeep_config::load(&path).unwrap();
        assert_eq!(config.daemon.data_dir, dir.path().join(".upkeep"));
        assert!(config.services.is_empty());
        // A second one leaves the first alone.
        std::fs::write(&path, "# mine\n").unwrap();
        make_config(&path).unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "# mine\n");
        // Nothing left beside it but the file.
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["upkeep.toml"]);
    }

    /// Issue 18: the made file names itself where a placeholder stood.
    #[test]
    fn the_made_config_says_how_to_reach_it_from_elsewhere() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("upkeep.toml");
        make_config(&path).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(!text.contains('{'), "{text}");
        assert!(
            text.contains(&format!("`upkeep -c {} ls`", path.display())),
            "{text}"
        );
        let odd = template(Path::new("/srv/my app/it's.toml"));
        assert!(
            odd.contains(r"`upkeep -c '/srv/my app/it'\''s.toml' ls`"),
            "{odd}"
        );
    }
}
