//! What channel configs share: secrets named by `*_env` / `*_file`, timeouts, URLs, and the
//! list of problems a build reports all at once.
//!
//! Every channel's config is checked while it is built ([`crate::ChannelConfig::build`]):
//! each field problem is collected with the field's name, so the caller (upkeep-config,
//! later) can point at file:line:column. Secrets are read here, once, into [`Secret`], whose
//! `Debug` never shows them; no message repeats a secret or a URL that holds one.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use upkeep_core::Clock;

/// What building a channel needs from outside: time (for signatures), where relative
/// `*_file` paths start, and how to read an environment variable (a parameter, so tests need
/// no process-wide environment).
pub struct BuildContext<'a> {
    pub clock: Clock,
    pub base_dir: PathBuf,
    pub env: &'a (dyn Fn(&str) -> Option<String> + Sync),
}

impl BuildContext<'static> {
    /// The system clock, the current directory and the process environment.
    pub fn system() -> Self {
        fn env(name: &str) -> Option<String> {
            std::env::var(name).ok()
        }
        BuildContext {
            clock: Clock::system(),
            base_dir: PathBuf::from("."),
            env: &env,
        }
    }
}

/// One thing wrong with one field of a channel's config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigProblem {
    /// The config key (`password_env`, `url`).
    pub field: String,
    pub message: String,
    pub hint: Option<String>,
}

/// Every problem found building one channel.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ConfigErrors {
    pub channel: String,
    pub problems: Vec<ConfigProblem>,
}

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, p) in self.problems.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "channel {} ({}): {}", self.channel, p.field, p.message)?;
            if let Some(hint) = &p.hint {
                write!(f, "\n  hint: {hint}")?;
            }
        }
        Ok(())
    }
}

/// A secret read from the environment or a file. Shown as `***` by `Debug`.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct Secret(String);

impl Secret {
    pub fn expose(&self) -> &str {
        &self.0
    }

    #[cfg(test)]
    pub fn for_test(s: &str) -> Secret {
        Secret(s.into())
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

/// Collects the problems of one channel's config while its fields are turned into values.
pub(crate) struct Check<'a, 'c> {
    ctx: &'a BuildContext<'c>,
    problems: Vec<ConfigProblem>,
}

pub(crate) const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
const MAX_TIMEOUT: Duration = Duration::from_secs(300);

impl<'a, 'c> Check<'a, 'c> {
    pub fn new(ctx: &'a BuildContext<'c>) -> Self {
        Check {
            ctx,
            problems: Vec::new(),
        }
    }

    pub fn clock(&self) -> Clock {
        self.ctx.clock.clone()
    }

    pub fn problem(&mut self, field: &str, message: impl Into<String>, hint: Option<String>) {
        self.problems.push(ConfigProblem {
            field: field.into(),
            message: message.into(),
            hint,
        });
    }

    pub fn is_clean(&self) -> bool {
        self.problems.is_empty()
    }

    /// `Ok(value)` when no problem was found, else every problem.
    pub fn finish<T>(self, channel: &str, value: Option<T>) -> Result<T, ConfigErrors> {
        match value {
            Some(v) if self.problems.is_empty() => Ok(v),
            _ => Err(ConfigErrors {
                channel: channel.into(),
                problems: self.problems,
            }),
        }
    }

    /// The secret `what` named by `{what}_env` or `{what}_file` (exactly one of them when
    /// `required`, at most one otherwise).
    pub fn secret(
        &mut self,
        what: &str,
        env: &Option<String>,
        file: &Option<String>,
        required: bool,
    ) -> Option<Secret> {
        let (env_key, file_key) = (format!("{what}_env"), format!("{what}_file"));
        let hint = || {
            Some(format!(
                "name an environment variable with {env_key} or a file with {file_key}; a config never holds the {what} itself"
            ))
        };
        let text = match (env, file) {
            (Some(_), Some(_)) => {
                self.problem(
                    &file_key,
                    format!("{env_key} and {file_key} both name the {what}"),
                    Some("keep one of them".into()),
                );
                return None;
            }
            (None, None) => {
                if required {
                    self.problem(&env_key, format!("the {what} is missing"), hint());
                }
                return None;
            }
            (Some(var), None) => {
                if var.is_empty() || var.contains(['=', '\0']) {
                    self.problem(
                        &env_key,
                        format!("`{var}` is not an environment variable name"),
                        None,
                    );
                    return None;
                }
                match (self.ctx.env)(var) {
                    Some(v) => (v, env_key, format!("the environment variable {var}")),
                    None => {
                        self.problem(
                            &env_key,
                            format!("the environment variable {var} is not set"),
                            Some(format!(
                                "set it in the daemon's environment, or use {file_key}"
                            )),
                        );
                        return None;
                    }
                }
            }
            (None, Some(path)) => {
                let path = self.ctx.base_dir.join(path);
                match upkeep_core::files::read_small_text(&path, upkeep_core::files::SMALL_FILE_MAX)
                {
                    // The first line: a file written by `echo` ends with a newline that is no
                    // part of the secret.
                    Ok(text) => (
                        text.lines().next().unwrap_or_default().to_owned(),
                        file_key,
                        path.display().to_string(),
                    ),
                    Err(e) => {
                        self.problem(
                            &file_key,
                            format!("cannot read {} ({e})", path.display()),
                            None,
                        );
                        return None;
                    }
                }
            }
        };
        let (value, key, source) = text;
        if value.trim().is_empty() {
            self.problem(&key, format!("{source} is empty"), None);
            return None;
        }
        Some(Secret(value.trim().to_owned()))
    }

    /// A URL read from a secret (a bot's webhook URL holds its credential): checked like
    /// [`Check::url`], but no message repeats it.
    pub fn secret_url(
        &mut self,
        env: &Option<String>,
        file: &Option<String>,
    ) -> Option<(url::Url, Secret)> {
        let secret = self.secret("url", env, file, true)?;
        let field = if env.is_some() { "url_env" } else { "url_file" };
        match url::Url::parse(secret.expose()) {
            Ok(url) => {
                if let Some(message) = url_problem(&url) {
                    self.problem(field, format!("the webhook URL {message}"), None);
                    return None;
                }
                Some((url, secret))
            }
            Err(e) => {
                self.problem(field, format!("the webhook URL is not a URL ({e})"), None);
                None
            }
        }
    }

    /// An http(s) URL; plain http only to this host (loopback), since what is posted is not
    /// for everyone to read.
    pub fn url(&mut self, field: &str, text: &str) -> Option<url::Url> {
        match url::Url::parse(text) {
            Ok(url) => match url_problem(&url) {
                Some(message) => {
                    self.problem(field, format!("`{text}` {message}"), None);
                    None
                }
                None => Some(url),
            },
            Err(e) => {
                self.problem(field, format!("`{text}` is not a URL ({e})"), None);
                None
            }
        }
    }

    /// A small file named by `field` (relative to the config's folder), or a problem.
    pub fn read_file(&mut self, field: &str, name: &str) -> Option<Vec<u8>> {
        let path = self.ctx.base_dir.join(name);
        std::fs::read(&path)
            .map_err(|e| self.problem(field, format!("cannot read {} ({e})", path.display()), None))
            .ok()
    }

    /// `timeout = "10s"`: every call that leaves the process ends in time.
    pub fn timeout(&mut self, text: &Option<String>) -> Duration {
        let Some(text) = text else {
            return DEFAULT_TIMEOUT;
        };
        match upkeep_core::duration::parse(text) {
            Some(d) if !d.is_zero() && d <= MAX_TIMEOUT => d,
            _ => {
                self.problem(
                    "timeout",
                    format!("timeout `{text}` is not a duration between 1ms and 5m"),
                    Some("e.g. timeout = \"10s\"".into()),
                );
                DEFAULT_TIMEOUT
            }
        }
    }
}

/// `localhost` or a loopback address (`127.0.0.1`, `[::1]`): traffic that stays on this host.
pub(crate) fn is_loopback(host: &str) -> bool {
    host == "localhost"
        || host
            .trim_matches(['[', ']'])
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

fn url_problem(url: &url::Url) -> Option<&'static str> {
    let loopback = url.host_str().is_some_and(is_loopback);
    match url.scheme() {
        "https" if url.host().is_some() => None,
        "http" if loopback => None,
        "http" => Some("must use https (plain http only to this host)"),
        _ => Some("is not an https URL"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx<'a>(env: &'a (dyn Fn(&str) -> Option<String> + Sync)) -> BuildContext<'a> {
        BuildContext {
            clock: Clock::system(),
            base_dir: std::env::temp_dir(),
            env,
        }
    }

    #[test]
    fn a_secret_comes_from_exactly_one_place_and_is_never_shown() {
        let env = |k: &str| (k == "TOKEN").then(|| "s3cret\n".to_owned());
        let ctx = ctx(&env);
        let mut c = Check::new(&ctx);
        let s = c
            .secret("token", &Some("TOKEN".into()), &None, true)
            .unwrap();
        assert_eq!(s.expose(), "s3cret");
        assert_eq!(format!("{s:?}"), "Secret(***)");
        assert!(c.secret("token", &None, &None, false).is_none());
        assert!(c.problems.is_empty());
        c.secret("token", &Some("T".into()), &Some("f".into()), true);
        c.secret("token", &None, &None, true);
        c.secret("token", &Some("NOPE".into()), &None, true);
        c.secret("token", &None, &Some("does/not/exist".into()), true);
        let e = c.finish::<()>("tg", None).unwrap_err();
        let text = e.to_string();
        assert_eq!(e.problems.len(), 4, "{text}");
        assert!(
            text.contains("token_env and token_file both name the token"),
            "{text}"
        );
        assert!(text.contains("the token is missing"), "{text}");
        assert!(text.contains("NOPE is not set"), "{text}");
        assert!(text.contains("cannot read"), "{text}");
        assert!(!text.contains("s3cret"));
    }

    #[test]
    fn a_secret_url_is_checked_without_repeating_it() {
        let env = |k: &str| match k {
            "PLAIN" => Some("http://chat.example.com/hook?key=s3cret".to_owned()),
            "LOCAL" => Some("http://127.0.0.1:9/hook?key=s3cret".to_owned()),
            _ => Some("not a url s3cret".to_owned()),
        };
        let ctx = ctx(&env);
        let mut c = Check::new(&ctx);
        assert!(c.secret_url(&Some("LOCAL".into()), &None).is_some());
        assert!(c.secret_url(&Some("PLAIN".into()), &None).is_none());
        assert!(c.secret_url(&Some("BAD".into()), &None).is_none());
        let text = c.finish::<()>("bot", None).unwrap_err().to_string();
        assert!(text.contains("must use https"), "{text}");
        assert!(text.contains("is not a URL"), "{text}");
        assert!(!text.contains("s3cret"), "{text}");
    }

    #[test]
    fn timeouts_are_bounded() {
        let env = |_: &str| None;
        let ctx = ctx(&env);
        let mut c = Check::new(&ctx);
        assert_eq!(c.timeout(&None), DEFAULT_TIMEOUT);
        assert_eq!(c.timeout(&Some("3s".into())), Duration::from_secs(3));
        c.timeout(&Some("0".into()));
        c.timeout(&Some("1h".into()));
        assert_eq!(c.problems.len(), 2);
    }
}
