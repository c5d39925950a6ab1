//! `upkeep import pm2|supervisord|systemd`: another supervisor's set-up into the config file.
//!
//! Reads the source (`crate::import`), fits it to this config (`import::write::settle`), puts
//! the services into the file's text keeping its comments, validates the result as `upkeep
//! check` would, and only then writes it (or, with `--dry-run`, prints the services' TOML).
//! Prints what was imported and every note on what was not carried over. Needs no daemon:
//! `upkeep reload` applies the file afterwards. A config file that does not exist is created.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use upkeep_core::i18n::{Msg, tr};

use super::{Global, escape};
use crate::import::{self, Import, ImportError};

#[derive(Subcommand, Debug)]
pub enum ImportFrom {
    /// PM2 apps: from an ecosystem file (evaluated by node, as PM2 does: its code runs,
    /// with --dry-run too, so import only a file you trust), or from the PM2 that runs
    /// (`pm2 jlist`, $PM2_HOME) when no file is named
    Pm2 {
        /// ecosystem.config.js, .cjs, .mjs or .json
        file: Option<PathBuf>,
        /// Apply the app's env_NAME over its env, as `pm2 start --env NAME` does
        #[arg(long = "env", value_name = "NAME", requires = "file")]
        profile: Option<String>,
        #[command(flatten)]
        opts: ImportOpts,
    },
    /// supervisord programs: its config file and the files its [include] names
    Supervisord {
        file: PathBuf,
        #[command(flatten)]
        opts: ImportOpts,
    },
    /// systemd service units: paths, or names found in /etc/systemd/system and
    /// /lib/systemd/system (nginx, ssh.service, getty@tty1)
    Systemd {
        #[arg(required = true, value_name = "UNIT")]
        units: Vec<String>,
        #[command(flatten)]
        opts: ImportOpts,
    },
}

#[derive(Args, Debug)]
pub struct ImportOpts {
    /// Print the services as TOML instead of writing them into the config file
    #[arg(long)]
    dry_run: bool,
    /// Replace services the config has already under the same names
    #[arg(long)]
    replace: bool,
}

pub fn run(g: &Global, from: ImportFrom) -> Result<ExitCode> {
    let (mut import, opts, source) = match from {
        ImportFrom::Pm2 {
            file: Some(file),
            profile,
            opts,
        } => (
            import::pm2::read_file(&file, profile.as_deref())?,
            opts,
            file.display().to_string(),
        ),
        ImportFrom::Pm2 {
            file: None, opts, ..
        } => (import::pm2::read_running()?, opts, "the running PM2".into()),
        ImportFrom::Supervisord { file, opts } => (
            import::supervisord::read(&file)?,
            opts,
            file.display().to_string(),
        ),
        ImportFrom::Systemd { units, opts } => {
            let source = units.join(", ");
            (import::systemd::read(&units)?, opts, source)
        }
    };
    if import.services.is_empty() {
        return Err(ImportError::Nothing(source).into());
    }
    let path = g.config_path();
    // Other edits (another import, `upkeep add`) wait their turn: none is lost.
    let _edit = (!opts.dry_run)
        .then(|| crate::ops::reload::ConfigLock::acquire(&path))
        .transpose()
        .with_context(|| format!("locking {} for editing", path.display()))?;
    // Read as the daemon reads it (a regular file, bounded, UTF-8): no file yet is an empty one.
    let current = match upkeep_config::read(&path) {
        Ok(text) => text,
        Err(upkeep_config::ConfigError::Read { source, .. })
            if source.kind() == std::io::ErrorKind::NotFound =>
        {
            String::new()
        }
        Err(e) => return Err(e.into()),
    };
    import::write::settle(
        &mut import,
        shutdown_timeout(&current),
        &existing_services(&current),
    );
    let edited =
        upkeep_config::put_services(&current, import::write::tables(&import), opts.replace)
            .map_err(ImportError::from)?;
    let checked = upkeep_config::parse(&path, &edited);
    if opts.dry_run {
        print!("{}", import::write::preview(&import));
        if let Err(e) = checked {
            eprintln!("{}", escape::text(&e.to_string()));
            return Ok(ExitCode::from(2));
        }
        return Ok(ExitCode::SUCCESS);
    }
    checked.map_err(ImportError::WouldBeInvalid)?;
    crate::ops::reload::write_config(&path, &edited)
        .with_context(|| format!("writing {}", path.display()))?;
    report(&import, &path);
    Ok(ExitCode::SUCCESS)
}

/// The config's `daemon.shutdown_timeout`, or its default: every stop timeout must be shorter.
/// The services the config file has (none if it does not parse: then the result will not
/// validate either, and says why).
fn existing_services(text: &str) -> std::collections::BTreeSet<String> {
    toml::from_str::<toml::Table>(text)
        .ok()
        .and_then(|t| Some(t.get("services")?.as_table()?.keys().cloned().collect()))
        .unwrap_or_default()
}

fn shutdown_timeout(text: &str) -> Duration {
    toml::from_str::<toml::Table>(text)
        .ok()
        .and_then(|t| {
            let d = t
                .get("daemon")?
                .get("shutdown_timeout")?
                .as_str()?
                .to_owned();
            upkeep_core::duration::parse(&d)
        })
        .unwrap_or(Duration::from_secs(30))
}

/// What was imported, then each note, one per line under its service.
fn report(import: &Import, path: &Path) {
    let names: Vec<&str> = import.services.iter().map(|s| s.name.as_str()).collect();
    println!(
        "{}",
        tr(
            Msg::Imported,
            &[&names.len(), &path.display(), &names.join(", ")]
        )
    );
    let notes: Vec<_> = import.all_notes().collect();
    if !notes.is_empty() {
        println!("{}", tr(Msg::NotCarriedOver, &[]));
        for n in notes {
            let line = format!("  {}: {}", n.subject, import::write::note_text(n));
            println!("{}", escape::text(&line));
        }
    }
    println!("{}", tr(Msg::ImportNext, &[]));
}
