//! [`ServiceName`]: the one identifier of a service, valid by construction.
//!
//! Names appear in file names (logs), URLs (API paths) and SQL rows, so they are restricted to
//! a safe alphabet here once, and nothing downstream re-checks them.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// A service name: 1 to 64 characters of `a-z A-Z 0-9 _ - .`, not starting with `.` or `-`,
/// and not the reserved word `all` (which the CLI uses for every service).
#[derive(
    Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, utoipa::ToSchema,
)]
#[serde(try_from = "String", into = "String")]
pub struct ServiceName(String);

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum NameError {
    #[error("service name is empty")]
    Empty,
    #[error("service name `{0}` is longer than 64 characters")]
    TooLong(String),
    #[error(
        "service name `{0}` may only hold letters, digits, `_`, `-` and `.`, and may not start with `.` or `-`"
    )]
    BadCharacter(String),
    #[error("service name `all` is reserved: it means every service on the command line")]
    Reserved,
}

impl ServiceName {
    /// Below every valid name: a bound for ranges over maps keyed by name. Never a service.
    pub(crate) fn min() -> Self {
        ServiceName(String::new())
    }

    pub fn new(name: impl Into<String>) -> Result<Self, NameError> {
        let name = name.into();
        if name.is_empty() {
            return Err(NameError::Empty);
        }
        if name.len() > 64 {
            return Err(NameError::TooLong(name));
        }
        let ok_char = |c: char| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.');
        if !name.chars().all(ok_char) || name.starts_with(['.', '-']) {
            return Err(NameError::BadCharacter(name));
        }
        if name == "all" {
            return Err(NameError::Reserved);
        }
        Ok(Self(name))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ServiceName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for ServiceName {
    type Err = NameError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::new(s)
    }
}

impl TryFrom<String> for ServiceName {
    type Error = NameError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Self::new(s)
    }
}

impl From<ServiceName> for String {
    fn from(n: ServiceName) -> String {
        n.0
    }
}

impl AsRef<str> for ServiceName {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_ordinary_names() {
        for n in ["web", "api-v2", "db_1", "a.b", "X"] {
            assert_eq!(ServiceName::new(n).unwrap().as_str(), n);
        }
    }

    #[test]
    fn rejects_unsafe_names() {
        assert_eq!(ServiceName::new(""), Err(NameError::Empty));
        assert_eq!(ServiceName::new("all"), Err(NameError::Reserved));
        for n in ["../etc", "a b", ".hidden", "-flag", "a/b", "名字"] {
            assert!(
                matches!(ServiceName::new(n), Err(NameError::BadCharacter(_))),
                "{n}"
            );
        }
        assert!(matches!(
            ServiceName::new("x".repeat(65)),
            Err(NameError::TooLong(_))
        ));
    }
}
