//! Admin users and their sessions, for the admin pages (`upkeep_web::Accounts`), kept in the
//! store (`upkeep_store::Accounts`).
//!
//! Passwords are hashed with argon2id (RustCrypto's `argon2`, its default parameters: 19 MiB,
//! 2 passes), a salt of 16 random bytes each; the PHC string is what the store keeps. Hashing
//! and checking take tens of milliseconds of one core on purpose, so they run in one bounded
//! lane off the daemon's runtime thread (`hashing.rs`): a sign-in that finds it full is
//! answered 503 before anything is hashed. A name that has no user is checked against
//! a hash made at start-up, so a wrong name costs what a wrong password does.
//!
//! A session is 32 random bytes (hex) in the browser's cookie; the store keeps their SHA-256
//! (a fast hash is right: 256 random bits cannot be guessed, as for API tokens) and a CSRF
//! token of 32 more random bytes. It lasts [`SESSION_LIFETIME`] from sign-in, on the daemon's
//! clock; removing the user or changing their password ends it at once.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use anyhow::Context;
use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use async_trait::async_trait;
use sha2::{Digest, Sha256};
use tokio::sync::watch;
use upkeep_core::account::UserInfo;
use upkeep_core::{Clock, Principal};
use upkeep_store::{Accounts as Rows, LazyStore, NewSession};
use upkeep_web::{ApiError, LeadTimeRule, Opened, Session};

use crate::hashing::HashPool;

/// When the decoy hash is made, after the start (see `StoreAccounts::decoy`).
const DECOY_AFTER: Duration = Duration::from_secs(30);

/// How long a sign-in lasts: a working day.
pub const SESSION_LIFETIME: Duration = Duration::from_secs(12 * 3600);

pub struct StoreAccounts {
    store: Arc<LazyStore>,
    clock: Clock,
    maintenance: watch::Receiver<upkeep_config::MaintenanceConfig>,
    /// What an unknown name's password is checked against: made on the lane [`DECOY_AFTER`]
    /// the start, not on the start-up path (one argon2 hash is tens of milliseconds of a
    /// core, which every service waited for), or by the first check that needs it before.
    decoy: Arc<OnceLock<String>>,
    /// Where every hash and check runs, one at a time.
    lane: HashPool,
}

fn random_hex(n: usize) -> Result<String, ApiError> {
    let mut bytes = vec![0u8; n];
    getrandom::fill(&mut bytes)
        .map_err(|e| ApiError::Internal(format!("no random bytes from the system: {e}").into()))?;
    Ok(hex::encode(bytes))
}

/// The decoy hash (of random bytes no one knows), made once.
fn make_decoy(decoy: &OnceLock<String>) -> &str {
    decoy.get_or_init(|| {
        let secret = random_hex(16).unwrap_or_else(|_| "no random bytes: never matches".into());
        hash_password(&secret).unwrap_or_default()
    })
}

/// The argon2id PHC string of `password`, with a fresh salt.
pub fn hash_password(password: &str) -> Result<String, ApiError> {
    let mut salt = [0u8; 16];
    getrandom::fill(&mut salt)
        .map_err(|e| ApiError::Internal(format!("no random bytes from the system: {e}").into()))?;
    let salt = SaltString::encode_b64(&salt)
        .map_err(|e| ApiError::Internal(format!("encoding a salt: {e}").into()))?;
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| ApiError::Internal(format!("hashing a password: {e}").into()))
}

/// Whether `password` matches the PHC string `stored` (a string that does not parse matches
/// nothing).
fn verify(stored: &str, password: &str) -> bool {
    PasswordHash::new(stored).is_ok_and(|h| {
        Argon2::default()
            .verify_password(password.as_bytes(), &h)
            .is_ok()
    })
}

fn session_hash(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

fn store_error(e: upkeep_store::Error) -> ApiError {
    ApiError::Unavailable {
        message: format!("the store is unreachable: {}", e.with_causes()),
        hint: Some(
            "admin users and sessions are kept in the store: try again once it is back".into(),
        ),
    }
}

impl StoreAccounts {
    pub fn new(
        store: Arc<LazyStore>,
        clock: Clock,
        maintenance: watch::Receiver<upkeep_config::MaintenanceConfig>,
    ) -> anyhow::Result<StoreAccounts> {
        crate::hashing::release_big_allocations();
        let decoy = Arc::new(OnceLock::new());
        let lane = HashPool::new(crate::hashing::PERMITS, crate::hashing::QUEUE)
            .context("starting the password hashing thread")?;
        // Not at once: on two cores the hash took one from the services' start (11% of a
        // cold start's samples).
        tokio::spawn({
            let (decoy, lane) = (decoy.clone(), lane.clone());
            async move {
                tokio::time::sleep(DECOY_AFTER).await;
                let _ = lane.run(move || make_decoy(&decoy).len()).await;
            }
        });
        Ok(StoreAccounts {
            store,
            clock,
            maintenance,
            decoy,
            lane,
        })
    }

    /// An operator's new password, hashed when the lane is free.
    async fn hash(&self, password: &str) -> Result<String, ApiError> {
        let password = password.to_owned();
        self.lane.run(move || hash_password(&password)).await?
    }
}

#[async_trait]
impl upkeep_web::Accounts for StoreAccounts {
    async fn check_password(&self, user: &str, password: &str) -> Result<bool, ApiError> {
        let stored = self.store.password_hash(user).await.map_err(store_error)?;
        let known = stored.is_some();
        let (decoy, password) = (self.decoy.clone(), password.to_owned());
        let matched = self
            .lane
            .try_run(move || match stored {
                Some(stored) => verify(&stored, &password),
                None => verify(make_decoy(&decoy), &password),
            })
            .await?;
        Ok(known && matched)
    }

    async fn open_session(&self, user: &str) -> Result<Opened, ApiError> {
        let secret = random_hex(32)?;
        let csrf = random_hex(32)?;
        let now = self.clock.now();
        let expires = now
            .checked_add(jiff::SignedDuration::from_secs(
                SESSION_LIFETIME.as_secs() as i64
            ))
            .map_err(|e| ApiError::Internal(Box::new(e)))?;
        let opened = self
            .store
            .open_session(NewSession {
                user,
                hash: &session_hash(&secret),
                csrf: &csrf,
                now,
                expires,
            })
            .await
            .map_err(store_error)?;
        if !opened {
            return Err(ApiError::NotFound(format!("no user named `{user}`")));
        }
        Ok(Opened {
            secret,
            csrf,
            lifetime: SESSION_LIFETIME,
        })
    }

    async fn session(&self, secret: &str) -> Result<Option<Session>, ApiError> {
        // A cookie that is not one of ours is not looked up (nor hashed at any length).
        if secret.len() != 64 || !secret.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Ok(None);
        }
        let row = self
            .store
            .session(&session_hash(secret), self.clock.now())
            .await
            .map_err(store_error)?;
        Ok(row.map(|r| Session {
            user: r.user,
            csrf: r.csrf,
        }))
    }

    async fn close_session(&self, secret: &str) -> Result<(), ApiError> {
        self.store
            .close_session(&session_hash(secret))
            .await
            .map_err(store_error)
    }

    async fn users(&self) -> Result<Vec<UserInfo>, ApiError> {
        let rows = self
            .store
            .users(self.clock.now())
            .await
            .map_err(store_error)?;
        Ok(rows
            .into_iter()
            .map(|u| UserInfo {
                name: u.name,
                created: u.created,
                sessions: u.sessions,
            })
            .collect())
    }

    async fn add_user(
        &self,
        name: &str,
        password: &str,
        by: &Principal,
    ) -> Result<UserInfo, ApiError> {
        let hash = self.hash(password).await?;
        let now = self.clock.now();
        if !self
            .store
            .add_user(name, &hash, now)
            .await
            .map_err(store_error)?
        {
            return Err(ApiError::Conflict(format!(
                "a user named `{name}` exists already (`upkeep user passwd {name}` changes its password)"
            )));
        }
        tracing::info!(user = name, by = %by, "admin user added");
        Ok(UserInfo {
            name: name.to_owned(),
            created: now,
            sessions: 0,
        })
    }

    async fn set_password(
        &self,
        name: &str,
        password: &str,
        by: &Principal,
    ) -> Result<(), ApiError> {
        let hash = self.hash(password).await?;
        if !self
            .store
            .set_password(name, &hash)
            .await
            .map_err(store_error)?
        {
            return Err(ApiError::NotFound(format!("no user named `{name}`")));
        }
        tracing::info!(user = name, by = %by, "admin password changed; sessions ended");
        Ok(())
    }

    async fn remove_user(&self, name: &str, by: &Principal) -> Result<(), ApiError> {
        if !self.store.remove_user(name).await.map_err(store_error)? {
            return Err(ApiError::NotFound(format!("no user named `{name}`")));
        }
        tracing::info!(user = name, by = %by, "admin user removed; sessions ended");
        Ok(())
    }

    fn lead_time(&self) -> LeadTimeRule {
        let m = self.maintenance.borrow();
        LeadTimeRule {
            short_max: m.short_max,
            short_notice: m.short_notice,
            long_notice: m.long_notice,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_password_hash_checks_that_password_only() {
        let h = hash_password("correct horse battery").unwrap();
        assert!(h.starts_with("$argon2id$"), "{h}");
        assert!(!h.contains("correct horse"));
        assert!(verify(&h, "correct horse battery"));
        assert!(!verify(&h, "correct horse battery "));
        assert!(!verify("not a hash", "x"));
        assert_ne!(h, hash_password("correct horse battery").unwrap(), "salted");
    }
}
