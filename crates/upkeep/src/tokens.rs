//! Bearer tokens of the TCP API, kept in `<data_dir>/tokens.json`: made, listed and revoked
//! by the CLI (`upkeep token ...`, no daemon needed: it edits the file), checked by the daemon
//! on each TCP request that needs a scope.
//!
//! The file holds each token's name, scope, creation time and the SHA-256 of its secret, never
//! the secret itself: the CLI prints a secret once, when it makes it. A secret is 32 random
//! bytes from the OS (hex, after an `upk_` prefix that secret scanners can match), so a fast
//! hash is right: a password hash (argon2) protects low-entropy secrets from guessing, and 256
//! random bits cannot be guessed. Hashes are compared in constant time, and against every
//! token, so the answer's timing says nothing about which bytes matched.
//!
//! The file is the daemon's own (mode 0600, never through a symlink, see `upkeep_sys::trust`)
//! and is replaced whole (temporary file, fsync, rename), so a reader sees the old list or the
//! new, never half of one. Edits hold `<data_dir>/tokens.lock`, so two `token create` at once
//! both land. The daemon ([`TokenCache`]) looks at the file's identity (inode, size, mtime) on
//! each check, one `stat`, and reads it again when it changed: a revoke takes effect at the
//! next request, without a restart.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use upkeep_core::api::Scope;
use upkeep_web::Grant;

/// The tokens file in a data dir.
pub fn path(data_dir: &Path) -> PathBuf {
    data_dir.join("tokens.json")
}

fn lock_path(data_dir: &Path) -> PathBuf {
    data_dir.join("tokens.lock")
}

/// What every secret starts with.
const PREFIX: &str = "upk_";

#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error(
        "token name `{0}` must be 1 to 64 characters of letters, digits, `_`, `-` and `.`, not starting with `.` or `-`"
    )]
    BadName(String),
    #[error("a token named `{0}` exists already")]
    Exists(String),
    #[error("no token named `{0}`")]
    Unknown(String),
    #[error("reading {path}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} is not a tokens file: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("writing {path}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("no random bytes from the operating system: {0}")]
    Random(String),
}

impl TokenError {
    /// The user's input is wrong (exit 2), rather than something failing (exit 1).
    pub fn is_usage(&self) -> bool {
        matches!(
            self,
            TokenError::BadName(_) | TokenError::Exists(_) | TokenError::Unknown(_)
        )
    }

    pub fn hint(&self) -> Option<&'static str> {
        match self {
            TokenError::Exists(_) => {
                Some("revoke it first (`upkeep token revoke NAME`) or pick another name")
            }
            TokenError::Unknown(_) => Some("`upkeep token ls` lists the tokens"),
            TokenError::Parse { .. } => {
                Some("fix or remove the file; `upkeep token create` writes a new one")
            }
            _ => None,
        }
    }
}

/// A token's name: what the events and the audit log show for its actions. The alphabet of
/// service names, so it is safe in terminals, logs and JSON alike.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct TokenName(String);

impl TokenName {
    pub fn new(name: impl Into<String>) -> Result<Self, TokenError> {
        let name = name.into();
        let ok_char = |c: char| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.');
        if name.is_empty()
            || name.len() > 64
            || !name.chars().all(ok_char)
            || name.starts_with(['.', '-'])
        {
            // Shown escaped by the CLI, as every error is; cut, as a name may be huge.
            return Err(TokenError::BadName(name.chars().take(64).collect()));
        }
        Ok(Self(name))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for TokenName {
    type Error = TokenError;
    fn try_from(s: String) -> Result<Self, TokenError> {
        Self::new(s)
    }
}

impl From<TokenName> for String {
    fn from(n: TokenName) -> String {
        n.0
    }
}

impl std::str::FromStr for TokenName {
    type Err = TokenError;
    fn from_str(s: &str) -> Result<Self, TokenError> {
        Self::new(s)
    }
}

impl std::fmt::Display for TokenName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// One token as the file holds it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Token {
    pub name: TokenName,
    pub scope: Scope,
    pub created: jiff::Timestamp,
    /// SHA-256 of the secret, hex.
    #[serde(with = "hex32")]
    sha256: [u8; 32],
}

/// The file: a version, so a later format can be told apart, and the tokens.
#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct TokenFile {
    version: u32,
    tokens: Vec<Token>,
}

const VERSION: u32 = 1;

mod hex32 {
    pub fn serialize<S: serde::Serializer>(v: &[u8; 32], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&hex::encode(v))
    }

    pub fn deserialize<'de, D: serde::Deserializer<'de>>(d: D) -> Result<[u8; 32], D::Error> {
        let text: String = serde::Deserialize::deserialize(d)?;
        let mut out = [0u8; 32];
        hex::decode_to_slice(&text, &mut out)
            .map_err(|_| serde::de::Error::custom("sha256 must be 64 hex digits"))?;
        Ok(out)
    }
}

fn digest(secret: &str) -> [u8; 32] {
    Sha256::digest(secret.as_bytes()).into()
}

/// The grant of the token whose secret is `secret`, if any. Every token's hash is compared,
/// each in constant time, whatever matched before.
pub fn find(tokens: &[Token], secret: &str) -> Option<Grant> {
    // Secrets are of one shape; anything else is not worth hashing.
    if secret.len() != PREFIX.len() + 64 {
        return None;
    }
    let hash = digest(secret);
    let mut found = None;
    for t in tokens {
        if bool::from(t.sha256.ct_eq(&hash)) {
            found = Some(Grant {
                name: t.name.to_string(),
                scope: t.scope,
            });
        }
    }
    found
}

/// Reads the tokens of `path`; a file that does not exist holds none.
pub fn load(path: &Path) -> Result<Vec<Token>, TokenError> {
    // Someone else's, or writable by others: its tokens would be theirs to mint. A list of
    // thousands of tokens is a few hundred KiB; more is not a tokens file.
    match upkeep_supervisor::trust::read_own(path, 16 * 1024 * 1024) {
        Ok(Some(bytes)) => parse(path, &String::from_utf8_lossy(&bytes)),
        Ok(None) => Ok(Vec::new()),
        Err(source) => Err(TokenError::Read {
            path: path.to_owned(),
            source,
        }),
    }
}

fn parse(path: &Path, text: &str) -> Result<Vec<Token>, TokenError> {
    let file: TokenFile = serde_json::from_str(text).map_err(|e| TokenError::Parse {
        path: path.to_owned(),
        message: e.to_string(),
    })?;
    if file.version != VERSION {
        return Err(TokenError::Parse {
            path: path.to_owned(),
            message: format!(
                "version {} is not one this upkeep reads ({VERSION})",
                file.version
            ),
        });
    }
    Ok(file.tokens)
}

/// Replaces the file at `path` with `tokens`: a temporary file (0600) beside it, written and
/// synced, then renamed over it, and the rename synced.
fn save(path: &Path, tokens: &[Token]) -> Result<(), TokenError> {
    let file = TokenFile {
        version: VERSION,
        tokens: tokens.to_vec(),
    };
    let mut text = serde_json::to_string_pretty(&file).expect("tokens serialise");
    text.push('\n');
    upkeep_supervisor::trust::replace_own(path, text.as_bytes()).map_err(|source| {
        TokenError::Write {
            path: path.to_owned(),
            source,
        }
    })
}

/// Runs `edit` on the tokens of `data_dir` under the edit lock, and saves what it leaves.
fn edit<T>(
    data_dir: &Path,
    edit: impl FnOnce(&mut Vec<Token>) -> Result<T, TokenError>,
) -> Result<T, TokenError> {
    upkeep_supervisor::trust::private_dir(data_dir).map_err(|source| TokenError::Write {
        path: data_dir.to_owned(),
        source,
    })?;
    let lock_file = lock_path(data_dir);
    let file = crate::daemon::open_private(&lock_file).map_err(|e| TokenError::Write {
        path: lock_file.clone(),
        source: std::io::Error::other(format!("{e:#}")),
    })?;
    let _lock =
        nix::fcntl::Flock::lock(file, nix::fcntl::FlockArg::LockExclusive).map_err(|(_, e)| {
            TokenError::Write {
                path: lock_file.clone(),
                source: e.into(),
            }
        })?;
    let path = path(data_dir);
    let mut tokens = load(&path)?;
    let out = edit(&mut tokens)?;
    save(&path, &tokens)?;
    Ok(out)
}

/// Makes a token: stores its hash and returns its secret, which nothing keeps.
pub fn create(data_dir: &Path, name: TokenName, scope: Scope) -> Result<String, TokenError> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|e| TokenError::Random(e.to_string()))?;
    let secret = format!("{PREFIX}{}", hex::encode(bytes));
    edit(data_dir, |tokens| {
        if tokens.iter().any(|t| t.name == name) {
            return Err(TokenError::Exists(name.to_string()));
        }
        tokens.push(Token {
            name,
            scope,
            created: jiff::Timestamp::now(),
            sha256: digest(&secret),
        });
        Ok(())
    })?;
    Ok(secret)
}

/// Removes a token: from the daemon's next request on, its secret is refused.
pub fn revoke(data_dir: &Path, name: &TokenName) -> Result<(), TokenError> {
    edit(data_dir, |tokens| {
        let before = tokens.len();
        tokens.retain(|t| &t.name != name);
        if tokens.len() == before {
            return Err(TokenError::Unknown(name.to_string()));
        }
        Ok(())
    })
}

/// The daemon's view of the tokens file, read again whenever the file changes.
pub struct TokenCache {
    path: PathBuf,
    /// A std Mutex: held only for a `stat` and, after a change, a read of a small file;
    /// never across an await.
    state: Mutex<Cached>,
}

#[derive(Default)]
struct Cached {
    /// (device, inode, size, mtime and ctime in ns) of the file read; `None`: absent. The
    /// ctime changes with a chmod or chown too, so a file made writable by others is checked
    /// (and refused) at once.
    stamp: Option<(u64, u64, u64, i128, i128)>,
    read: bool,
    tokens: Arc<Vec<Token>>,
}

impl TokenCache {
    pub fn new(data_dir: &Path) -> Self {
        Self {
            path: path(data_dir),
            state: Mutex::default(),
        }
    }

    /// The tokens as the file holds them now. A file that cannot be read or parsed grants
    /// nothing (and says why in the log, once per version of the file).
    fn current(&self) -> Arc<Vec<Token>> {
        use std::os::unix::fs::MetadataExt;
        let stamp = std::fs::symlink_metadata(&self.path).ok().map(|m| {
            let ns = |s: i64, n: i64| s as i128 * 1_000_000_000 + n as i128;
            let (mtime, ctime) = (ns(m.mtime(), m.mtime_nsec()), ns(m.ctime(), m.ctime_nsec()));
            (m.dev(), m.ino(), m.size(), mtime, ctime)
        });
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if state.read && state.stamp == stamp {
            return state.tokens.clone();
        }
        let tokens = match load(&self.path) {
            Ok(t) => t,
            Err(e) => {
                let error = format!("{:#}", anyhow::Error::from(e));
                tracing::error!(
                    %error,
                    "the tokens file cannot be used: every token is refused until it is fixed"
                );
                Vec::new()
            }
        };
        tracing::debug!(tokens = tokens.len(), "tokens file read");
        *state = Cached {
            stamp,
            read: true,
            tokens: Arc::new(tokens),
        };
        state.tokens.clone()
    }
}

impl upkeep_web::Tokens for TokenCache {
    fn check(&self, secret: &str) -> Option<Grant> {
        find(&self.current(), secret)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(s: &str) -> TokenName {
        TokenName::new(s).unwrap()
    }

    #[test]
    fn names_are_safe_words() {
        for ok in ["ci", "deploy-bot", "a.b_c", "X9"] {
            name(ok);
        }
        let long = "n".repeat(65);
        for bad in [
            "",
            ".hidden",
            "-x",
            "a/b",
            "../x",
            "a b",
            "é",
            "a\u{1b}[2J",
            &long,
        ] {
            assert!(TokenName::new(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn created_tokens_are_found_by_secret_and_only_by_it() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let read = create(&data, name("ci"), Scope::Read).unwrap();
        let write = create(&data, name("deploy"), Scope::Write).unwrap();
        assert!(read.starts_with("upk_") && read.len() == 68, "{read}");
        assert_ne!(read, write);
        let tokens = load(&path(&data)).unwrap();
        assert_eq!(
            find(&tokens, &read),
            Some(Grant {
                name: "ci".into(),
                scope: Scope::Read
            })
        );
        assert_eq!(find(&tokens, &write).unwrap().scope, Scope::Write);
        // One character off, a prefix, the hash itself, nothing: no grant.
        let mut off = read.clone().into_bytes();
        off[10] = if off[10] == b'0' { b'1' } else { b'0' };
        assert_eq!(find(&tokens, std::str::from_utf8(&off).unwrap()), None);
        assert_eq!(find(&tokens, &read[..20]), None);
        assert_eq!(find(&tokens, &hex::encode(tokens[0].sha256)), None);
        assert_eq!(find(&tokens, ""), None);
        // The file holds no secret, and only its owner may read it.
        let text = std::fs::read_to_string(path(&data)).unwrap();
        assert!(!text.contains(&read[4..]) && text.contains("\"scope\": \"read\""));
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(path(&data)).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    #[test]
    fn names_are_unique_and_revoke_removes() {
        let dir = tempfile::tempdir().unwrap();
        let secret = create(dir.path(), name("ci"), Scope::Read).unwrap();
        assert!(matches!(
            create(dir.path(), name("ci"), Scope::Write),
            Err(TokenError::Exists(_))
        ));
        revoke(dir.path(), &name("ci")).unwrap();
        assert!(matches!(
            revoke(dir.path(), &name("ci")),
            Err(TokenError::Unknown(_))
        ));
        assert_eq!(find(&load(&path(dir.path())).unwrap(), &secret), None);
    }

    #[test]
    fn the_daemon_sees_a_revoke_at_once() {
        use upkeep_web::Tokens;
        let dir = tempfile::tempdir().unwrap();
        let cache = TokenCache::new(dir.path());
        let secret = create(dir.path(), name("ci"), Scope::Write).unwrap();
        assert_eq!(cache.check(&secret).unwrap().name, "ci");
        revoke(dir.path(), &name("ci")).unwrap();
        assert_eq!(cache.check(&secret), None);
        let again = create(dir.path(), name("ci"), Scope::Read).unwrap();
        assert_eq!(cache.check(&again).unwrap().scope, Scope::Read);
        // Made writable by others (a chmod alone), it grants nothing: its tokens could be
        // anyone's.
        use std::os::unix::fs::PermissionsExt;
        let perm = std::fs::Permissions::from_mode;
        std::fs::set_permissions(path(dir.path()), perm(0o666)).unwrap();
        assert_eq!(cache.check(&again), None);
        std::fs::set_permissions(path(dir.path()), perm(0o600)).unwrap();
        assert_eq!(cache.check(&again).unwrap().scope, Scope::Read);
        // A file spoilt by hand grants nothing, and a fixed one works again.
        let good = std::fs::read_to_string(path(dir.path())).unwrap();
        std::fs::write(path(dir.path()), "{ not json").unwrap();
        assert_eq!(cache.check(&again), None);
        std::fs::write(path(dir.path()), good).unwrap();
        assert_eq!(cache.check(&again).unwrap().scope, Scope::Read);
    }

    #[test]
    fn parses_strictly() {
        let p = Path::new("/x/tokens.json");
        assert!(parse(p, r#"{"version":1,"tokens":[]}"#).unwrap().is_empty());
        let one = r#"{"version":1,"tokens":[{"name":"ci","scope":"read","created":"2025-01-01T00:00:00Z","sha256":"00"}]}"#;
        assert!(parse(p, one).is_err(), "a short hash");
        let bad_name = format!(
            r#"{{"version":1,"tokens":[{{"name":"a/b","scope":"read","created":"2025-01-01T00:00:00Z","sha256":"{}"}}]}}"#,
            "0".repeat(64)
        );
        assert!(parse(p, &bad_name).is_err());
        assert!(parse(p, r#"{"version":2,"tokens":[]}"#).is_err());
        assert!(parse(p, r#"{"version":1,"tokens":[],"x":1}"#).is_err());
    }
}
