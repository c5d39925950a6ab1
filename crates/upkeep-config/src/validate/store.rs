//! `[daemon] store`, its password and `node`: where history is kept and under which host name.
//!
//! A PostgreSQL URL is checked here (scheme, host, database, no password in it); the password
//! itself is read by the daemon when it opens the store, from the environment variable or the
//! file named here, so a config never holds it and `check` never reads secrets.

use std::path::{Path, PathBuf};

use crate::raw::RawDaemon;

use super::Validator;

/// Where history (events, incidents, revisions) is kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreConfig {
    /// `upkeep.db` in the data dir: the default, nothing to set up.
    Sqlite,
    /// A PostgreSQL database, for hosts that outgrow one file or share one database.
    Postgres {
        /// Without a password.
        url: url::Url,
        password: Option<SecretSource>,
    },
}

/// Where a secret comes from. Only its name is in the config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretSource {
    Env(String),
    File(PathBuf),
}

impl SecretSource {
    /// Reads the secret: an environment variable's value, or a file's first line.
    pub fn read(&self) -> Result<String, String> {
        match self {
            SecretSource::Env(name) => std::env::var(name)
                .map_err(|_| format!("the environment variable {name} is not set")),
            SecretSource::File(path) => {
                let text =
                    upkeep_core::files::read_small_text(path, upkeep_core::files::SMALL_FILE_MAX)
                        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
                Ok(text.lines().next().unwrap_or_default().to_owned())
            }
        }
    }
}

/// True when `url` carries a password: after the user name, or as a query parameter
/// (`?password=`, which PostgreSQL's URLs also take).
pub fn secret_in_url(url: &url::Url) -> bool {
    url.password().is_some()
        || url.query_pairs().any(|(k, _)| {
            let k = k.to_ascii_lowercase();
            k == "password" || k == "sslpassword"
        })
}

/// The longest node name: it is shown in lists and stored in every row's node table.
const NODE_NAME_MAX: usize = 64;

impl Validator<'_> {
    pub(super) fn store(&mut self, raw: &RawDaemon, base: &Path) -> StoreConfig {
        let password = match (&raw.store_password_env, &raw.store_password_file) {
            (Some(_), Some(_)) => {
                self.problem(
                    &["daemon", "store_password_file"],
                    "store_password_env and store_password_file both name the password",
                    Some("keep one of them".into()),
                );
                None
            }
            (Some(var), None) => {
                if var.is_empty() || var.contains(['=', '\0']) {
                    self.problem(
                        &["daemon", "store_password_env"],
                        format!("`{var}` is not an environment variable name"),
                        None,
                    );
                }
                Some(SecretSource::Env(var.clone()))
            }
            (None, Some(file)) => {
                if file.is_empty() || file.contains('\0') {
                    self.problem(
                        &["daemon", "store_password_file"],
                        "store_password_file is not a file name",
                        None,
                    );
                }
                Some(SecretSource::File(base.join(file)))
            }
            (None, None) => None,
        };
        let Some(text) = raw.store.as_deref() else {
            if password.is_some() {
                let key = if raw.store_password_env.is_some() {
                    "store_password_env"
                } else {
                    "store_password_file"
                };
                self.problem(
                    &["daemon", key],
                    "a store password is set, but no store: history is kept in SQLite",
                    Some("set store = \"postgres://user@host/db\", or remove the password".into()),
                );
            }
            return StoreConfig::Sqlite;
        };
        if text == "sqlite" {
            return StoreConfig::Sqlite;
        }
        let hint = || Some("e.g. store = \"postgres://upkeep@127.0.0.1:5432/upkeep\"".into());
        let url = match url::Url::parse(text) {
            Ok(url) => url,
            Err(e) => {
                self.problem(
                    &["daemon", "store"],
                    format!("store is not a URL ({e})"),
                    hint(),
                );
                return StoreConfig::Sqlite;
            }
        };
        let problem = if !matches!(url.scheme(), "postgres" | "postgresql") {
            Some(format!(
                "store `{}` is not a PostgreSQL URL (postgres://...)",
                url.scheme()
            ))
        } else if secret_in_url(&url) {
            // Never repeated in the message: it is a secret, and messages end up in logs.
            Some("store holds a password; a config must not".into())
        } else if url.host_str().is_none_or(str::is_empty) {
            Some("store names no host".into())
        } else if url.path().trim_start_matches('/').is_empty() {
            Some("store names no database".into())
        } else {
            None
        };
        if let Some(message) = problem {
            let hint = if secret_in_url(&url) {
                Some("put it in the environment variable named by store_password_env, or in the file named by store_password_file".into())
            } else {
                hint()
            };
            self.problem(&["daemon", "store"], message, hint);
            return StoreConfig::Sqlite;
        }
        StoreConfig::Postgres { url, password }
    }

    pub(super) fn node_name(&mut self, name: Option<&str>) -> Option<String> {
        let name = name?;
        if name.trim().is_empty()
            || name.chars().count() > NODE_NAME_MAX
            || name.chars().any(char::is_control)
        {
            self.problem(
                &["daemon", "node"],
                format!("node must be a name of 1 to {NODE_NAME_MAX} printable characters"),
                Some("e.g. node = \"web-1\"".into()),
            );
            return None;
        }
        Some(name.to_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{check, one_problem};
    use super::*;

    #[test]
    fn the_default_store_is_sqlite_and_a_postgres_url_is_taken_with_its_password_source() {
        assert_eq!(check("").unwrap().daemon.store, StoreConfig::Sqlite);
        let c = check(
            "[daemon]\nstore = \"postgres://upkeep@db.local:5432/upkeep\"\nstore_password_env = \"DB_PASS\"\nnode = \"web-1\"\n",
        )
        .unwrap();
        let StoreConfig::Postgres { url, password } = c.daemon.store else {
            panic!("{:?}", c.daemon.store)
        };
        assert_eq!(url.as_str(), "postgres://upkeep@db.local:5432/upkeep");
        assert_eq!(password, Some(SecretSource::Env("DB_PASS".into())));
        assert_eq!(c.daemon.node.as_deref(), Some("web-1"));
    }

    #[test]
    fn a_bad_store_is_located_and_a_password_in_it_is_never_repeated() {
        for (text, says) in [
            ("store = \"mysql://a@b/c\"", "not a PostgreSQL URL"),
            ("store = \"postgres://u:s3cret@h/db\"", "holds a password"),
            (
                "store = \"postgres://u@h/db?password=s3cret\"",
                "holds a password",
            ),
            (
                "store = \"postgres://u@h/db?sslmode=require&PassWord=s3cret\"",
                "holds a password",
            ),
            ("store = \"postgres://u@h\"", "names no database"),
            ("store = \"not a url\"", "not a URL"),
            ("store_password_env = \"X\"", "no store"),
            (
                "store = \"postgres://u@h/d\"\nstore_password_env = \"X\"\nstore_password_file = \"f\"",
                "both",
            ),
            ("node = \"\"", "node must be"),
            ("node = \"a\\u0007b\"", "node must be"),
        ] {
            let (p, _) = one_problem(&format!("[daemon]\n{text}\n"));
            assert!(p.message.contains(says), "{text}: {p:?}");
            assert!(p.line >= 2, "{text}: {p:?}");
            assert!(!format!("{p:?}").contains("s3cret"), "{p:?}");
        }
    }
}
