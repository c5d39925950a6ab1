//! Admin users as the API shows them (`upkeep user ...` over `/api/v1/users` on the control
//! socket). A password travels only in [`UserRequest`], from the CLI to the daemon over the
//! socket (mode 0600); it is never answered, listed or logged.

use serde::{Deserialize, Serialize};

/// One user of the admin pages.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct UserInfo {
    pub name: String,
    pub created: jiff::Timestamp,
    /// Sessions open now (signed-in browsers).
    pub sessions: i64,
}

/// `POST /api/v1/users` (add) and `PUT /api/v1/users/{name}/password` (change).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UserRequest {
    /// The user's name; absent in a password change (the path names the user).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    pub password: String,
}

impl std::fmt::Debug for UserRequest {
    /// Never the password, even in a debug log.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UserRequest")
            .field("name", &self.name)
            .field("password", &"<hidden>")
            .finish()
    }
}

/// A user name: 1 to 64 letters, digits, `_`, `-`, `.` and `@`, not starting with `.` or `-`
/// (shown in the event history and the admin pages, so nothing that needs escaping).
pub fn check_user_name(name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && !name.starts_with(['.', '-'])
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | '@'));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "user name `{name}` must be 1 to 64 letters, digits, `_`, `-`, `.` or `@`, not starting with `.` or `-`"
        ))
    }
}

/// Shortest password taken: an admin password guards every service's start and stop.
pub const MIN_PASSWORD: usize = 10;
/// Longest password taken, in bytes: a passphrase fits, a file pasted by mistake does not.
pub const MAX_PASSWORD: usize = 1024;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_checked() {
        for good in ["ada", "ops.team", "a@example.com", "x_1"] {
            assert!(check_user_name(good).is_ok(), "{good}");
        }
        for bad in ["", ".x", "-x", "a b", "<script>", &"a".repeat(65)] {
            assert!(check_user_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_request_does_not_debug_print_its_password() {
        let r = UserRequest {
            name: Some("ada".into()),
            password: "hunter2hunter2".into(),
        };
        assert!(!format!("{r:?}").contains("hunter2"));
    }
}
