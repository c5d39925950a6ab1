//! Opening a PostgreSQL database: a URL from the config, the password from an environment
//! variable or a file (never in the config or the URL, never logged), its own migrations
//! (`migrations/postgres/`, embedded in the binary). The queries are `sql.rs`'s.

use std::time::Duration;

use sqlx::any::AnyPoolOptions;
use sqlx::{ConnectOptions, Connection, Executor};

use crate::sql::SqlStore;
use crate::{Engine, Error, Node};

/// How long a connection may take (the server away is often seen only at this timeout).
const CONNECT: Duration = Duration::from_secs(5);

/// Where a PostgreSQL database is and how to log in.
#[derive(Clone)]
pub struct PgLocation {
    /// `postgres://user@host:port/db`, without a password.
    pub url: url::Url,
    pub password: Option<String>,
}

impl std::fmt::Debug for PgLocation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the password.
        f.debug_struct("PgLocation")
            .field("url", &self.url.as_str())
            .finish_non_exhaustive()
    }
}

/// Connects and applies pending migrations. Connections are made again as needed: a database
/// that restarts later is used again without a daemon restart.
pub(crate) async fn open(at: &PgLocation, node: &Node, exclusive: bool) -> Result<SqlStore, Error> {
    let open_error = |source| Error::Open {
        path: at.url.to_string(),
        source,
    };
    let mut url = at.url.clone();
    if let Some(password) = &at.password {
        url.set_password(Some(password))
            .map_err(|()| open_error(sqlx::Error::Configuration("bad URL".into())))?;
    }
    let opts = sqlx::any::AnyConnectOptions::from_url(&url).map_err(open_error)?;
    // One connection first: its error says why (refused, a wrong password, no such database)
    // where the pool's says only that it timed out, having retried for its whole timeout.
    match tokio::time::timeout(CONNECT, opts.connect()).await {
        Ok(Ok(conn)) => drop(conn.close().await),
        Ok(Err(e)) => return Err(open_error(e)),
        Err(_) => {
            return Err(open_error(sqlx::Error::Io(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                format!("no answer within {CONNECT:?}"),
            ))));
        }
    }
    let pool = AnyPoolOptions::new()
        // The writer, API readers and a report at once; the server is shared with other nodes.
        .max_connections(4)
        // A query waits this long for a connection while the server is away, then fails and
        // the writer retries with backoff.
        .acquire_timeout(CONNECT)
        .after_connect(|conn, _| {
            Box::pin(async move {
                // A write that waits on another session's lock gives up as SQLite's
                // busy_timeout does (the writer retries, a reload answers 503), and no query
                // holds a connection forever.
                conn.execute("SET lock_timeout = '5s'; SET statement_timeout = '60s'")
                    .await
                    .map(drop)
            })
        })
        .connect_with(opts.clone())
        .await
        .map_err(open_error)?;
    sqlx::migrate!("./migrations/postgres")
        .run(&pool)
        .await
        .map_err(Error::Migrate)?;
    // Before this node's row is claimed: the row names the host that holds the lock.
    let hold = match exclusive {
        true => Some(crate::hold::take(&opts, &pool, node).await?),
        false => None,
    };
    let mut store = SqlStore::claim(pool, Engine::Postgres, node).await?;
    store.hold = hold;
    Ok(store)
}
