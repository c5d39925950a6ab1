//! Admin accounts in the store: users (a name and an argon2 hash) and their sessions (the
//! SHA-256 of a cookie's secret, its CSRF token, its expiry).
//!
//! This file keeps rows only. Hashing and checking passwords, making secrets and hashing them,
//! and deciding how long a session lives are the daemon's (`upkeep/src/accounts.rs`); a
//! password or a session secret never reaches the store. A session belongs to a user's row
//! id, and is found only while that row exists and the session has not expired, so removing
//! a user ends its sessions at the next request even without the explicit delete done here.

use async_trait::async_trait;
use jiff::Timestamp;
use sqlx::any::AnyRow;

use crate::Error;
use crate::sql::{SqlStore, col, q};

/// A user as listed (never with its hash).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserRow {
    pub name: String,
    pub created: Timestamp,
    /// Sessions not expired at the time of the listing.
    pub sessions: i64,
}

/// A session to record. `hash` is the hash of the secret the browser holds.
#[derive(Debug, Clone, Copy)]
pub struct NewSession<'a> {
    pub user: &'a str,
    pub hash: &'a str,
    pub csrf: &'a str,
    pub now: Timestamp,
    pub expires: Timestamp,
}

/// A live session as found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionRow {
    pub user: String,
    pub csrf: String,
    pub expires: Timestamp,
}

#[async_trait]
pub trait Accounts: Send + Sync {
    /// Adds user `name` with password hash `hash`; false if the name is taken.
    async fn add_user(&self, name: &str, hash: &str, now: Timestamp) -> Result<bool, Error>;
    /// Replaces `name`'s password hash and ends its sessions; false if there is no such user.
    async fn set_password(&self, name: &str, hash: &str) -> Result<bool, Error>;
    /// Removes user `name` and its sessions; false if there was none.
    async fn remove_user(&self, name: &str) -> Result<bool, Error>;
    /// Every user, by name.
    async fn users(&self, now: Timestamp) -> Result<Vec<UserRow>, Error>;
    /// The stored hash of `name`'s password, None if there is no such user.
    async fn password_hash(&self, name: &str) -> Result<Option<String>, Error>;
    /// Records a session of `user` (and deletes every expired one); false if the user is gone.
    async fn open_session(&self, s: NewSession<'_>) -> Result<bool, Error>;
    /// The live session whose secret hashes to `hash`: not expired at `now`, its user still there.
    async fn session(&self, hash: &str, now: Timestamp) -> Result<Option<SessionRow>, Error>;
    /// Ends a session (a logout); nothing if it was gone already.
    async fn close_session(&self, hash: &str) -> Result<(), Error>;
}

fn ms(t: i64) -> Option<Timestamp> {
    Timestamp::from_millisecond(t).ok()
}

fn user_row(r: &AnyRow) -> Option<UserRow> {
    Some(UserRow {
        name: col(r, "name")?,
        created: ms(col(r, "created_ms")?)?,
        sessions: col(r, "sessions")?,
    })
}

#[async_trait]
impl Accounts for SqlStore {
    async fn add_user(&self, name: &str, hash: &str, now: Timestamp) -> Result<bool, Error> {
        let added = sqlx::query(
            "INSERT INTO users (node, name, password, created_ms) VALUES ($1, $2, $3, $4)
             ON CONFLICT (node, name) DO NOTHING",
        )
        .bind(&self.node)
        .bind(name)
        .bind(hash)
        .bind(now.as_millisecond())
        .execute(&self.pool)
        .await
        .map_err(q("add a user"))?
        .rows_affected();
        Ok(added > 0)
    }

    async fn set_password(&self, name: &str, hash: &str) -> Result<bool, Error> {
        let mut tx = self.pool.begin().await.map_err(q("begin"))?;
        let changed = sqlx::query("UPDATE users SET password = $1 WHERE node = $2 AND name = $3")
            .bind(hash)
            .bind(&self.node)
            .bind(name)
            .execute(&mut *tx)
            .await
            .map_err(q("change a password"))?
            .rows_affected()
            > 0;
        // A new password ends every session the old one opened (a stolen one too).
        sqlx::query(
            "DELETE FROM sessions WHERE node = $1
                 AND user_id IN (SELECT id FROM users WHERE node = $1 AND name = $2)",
        )
        .bind(&self.node)
        .bind(name)
        .execute(&mut *tx)
        .await
        .map_err(q("end a user's sessions"))?;
        tx.commit().await.map_err(q("commit a password change"))?;
        Ok(changed)
    }

    async fn remove_user(&self, name: &str) -> Result<bool, Error> {
        let mut tx = self.pool.begin().await.map_err(q("begin"))?;
        sqlx::query(
            "DELETE FROM sessions WHERE node = $1
                 AND user_id IN (SELECT id FROM users WHERE node = $1 AND name = $2)",
        )
        .bind(&self.node)
        .bind(name)
        .execute(&mut *tx)
        .await
        .map_err(q("end a user's sessions"))?;
        let gone = sqlx::query("DELETE FROM users WHERE node = $1 AND name = $2")
            .bind(&self.node)
            .bind(name)
            .execute(&mut *tx)
            .await
            .map_err(q("remove a user"))?
            .rows_affected()
            > 0;
        tx.commit().await.map_err(q("commit a user's removal"))?;
        Ok(gone)
    }

    async fn users(&self, now: Timestamp) -> Result<Vec<UserRow>, Error> {
        let rows = sqlx::query(
            "SELECT u.name, u.created_ms,
                    (SELECT COUNT(*) FROM sessions s
                      WHERE s.node = u.node AND s.user_id = u.id AND s.expires_ms > $2) AS sessions
             FROM users u WHERE u.node = $1 ORDER BY u.name",
        )
        .bind(&self.node)
        .bind(now.as_millisecond())
        .fetch_all(&self.pool)
        .await
        .map_err(q("list the users"))?;
        Ok(rows.iter().filter_map(user_row).collect())
    }

    async fn password_hash(&self, name: &str) -> Result<Option<String>, Error> {
        let row = sqlx::query("SELECT password FROM users WHERE node = $1 AND name = $2")
            .bind(&self.node)
            .bind(name)
            .fetch_optional(&self.pool)
            .await
            .map_err(q("read a password hash"))?;
        Ok(row.and_then(|r| col(&r, "password")))
    }

    async fn open_session(&self, s: NewSession<'_>) -> Result<bool, Error> {
        let mut tx = self.pool.begin().await.map_err(q("begin"))?;
        sqlx::query("DELETE FROM sessions WHERE node = $1 AND expires_ms <= $2")
            .bind(&self.node)
            .bind(s.now.as_millisecond())
            .execute(&mut *tx)
            .await
            .map_err(q("forget expired sessions"))?;
        let opened = sqlx::query(
            "INSERT INTO sessions (hash, node, user_id, csrf, created_ms, expires_ms)
             SELECT $1, $2, id, $3, $4, $5 FROM users WHERE node = $2 AND name = $6",
        )
        .bind(s.hash)
        .bind(&self.node)
        .bind(s.csrf)
        .bind(s.now.as_millisecond())
        .bind(s.expires.as_millisecond())
        .bind(s.user)
        .execute(&mut *tx)
        .await
        .map_err(q("open a session"))?
        .rows_affected()
            > 0;
        tx.commit().await.map_err(q("commit a session"))?;
        Ok(opened)
    }

    async fn session(&self, hash: &str, now: Timestamp) -> Result<Option<SessionRow>, Error> {
        let row = sqlx::query(
            "SELECT u.name, s.csrf, s.expires_ms FROM sessions s
             JOIN users u ON u.id = s.user_id AND u.node = s.node
             WHERE s.node = $1 AND s.hash = $2 AND s.expires_ms > $3",
        )
        .bind(&self.node)
        .bind(hash)
        .bind(now.as_millisecond())
        .fetch_optional(&self.pool)
        .await
        .map_err(q("find a session"))?;
        Ok(row.and_then(|r| {
            Some(SessionRow {
                user: col(&r, "name")?,
                csrf: col(&r, "csrf")?,
                expires: ms(col(&r, "expires_ms")?)?,
            })
        }))
    }

    async fn close_session(&self, hash: &str) -> Result<(), Error> {
        sqlx::query("DELETE FROM sessions WHERE node = $1 AND hash = $2")
            .bind(&self.node)
            .bind(hash)
            .execute(&self.pool)
            .await
            .map_err(q("close a session"))?;
        Ok(())
    }
}
