//! One daemon per node id on a shared PostgreSQL database. Every row a daemon writes carries its
//! node id, and an event numbered twice is stored once (`ON CONFLICT DO NOTHING`), so two
//! daemons with one id (a data dir copied to a second host with its `node-id`) would silently
//! drop each other's events and stop each other's processes. On one host an abstract socket
//! guards the id (`daemon.rs`); across hosts only the database can: the daemon holds a session
//! advisory lock on its id, on a connection of its own, for as long as it runs.
//!
//! The lock goes with the connection: a daemon that is killed, or whose host dies, lets go of it
//! when the server sees the connection end. The holder checks its connection twice a minute and,
//! if it was lost (the server restarted), takes the lock again; if another daemon has taken it
//! meanwhile, that is said loudly in the log, and this daemon goes on supervising.
//!
//! SQLite needs none of this: its file is on one host, where the abstract socket guards it.

use std::time::Duration;

use sqlx::AnyConnection;
use sqlx::any::AnyConnectOptions;
use sqlx::{ConnectOptions, Connection, Row};

use crate::{Error, Node};

/// The first of the lock's two keys: "upkp", so that upkeep's locks are told from others'.
const CLASS: i32 = 0x7570_6b70;
/// How long `take` waits for a lock held by a daemon that was just killed: 20 × 50 ms, well
/// within the daemon's first try at opening the store (`lazy.rs`).
const WAIT_TRIES: u32 = 20;
const WAIT_STEP: Duration = Duration::from_millis(50);
/// How often the holder checks that its connection is still there.
const CHECK: Duration = Duration::from_secs(30);

/// Holds node `id`'s lock until dropped.
pub(crate) struct NodeHold {
    task: tokio::task::JoinHandle<()>,
}

impl Drop for NodeHold {
    fn drop(&mut self) {
        // The task owns the connection: ending it closes the connection, which lets go.
        self.task.abort();
    }
}

/// Takes node `node`'s lock on a connection of its own, or says which daemon holds it (by the
/// host name it last recorded, read from `pool`'s `nodes` table).
pub(crate) async fn take(
    opts: &AnyConnectOptions,
    pool: &sqlx::AnyPool,
    node: &Node,
) -> Result<NodeHold, Error> {
    let mut conn = opts.connect().await.map_err(|source| Error::Open {
        path: "the node lock's connection".into(),
        source,
    })?;
    // A daemon killed a moment ago holds the lock until the server sees its connection end:
    // wait for that a little, rather than start as if the store were away.
    let mut held = try_lock(&mut conn, &node.id).await?;
    for _ in 0..WAIT_TRIES {
        if held {
            break;
        }
        tokio::time::sleep(WAIT_STEP).await;
        held = try_lock(&mut conn, &node.id).await?;
    }
    if !held {
        let name = sqlx::query("SELECT name FROM nodes WHERE id = $1")
            .bind(&node.id)
            .fetch_optional(pool)
            .await
            .ok()
            .flatten()
            .and_then(|row| row.try_get::<String, _>(0).ok())
            .unwrap_or_else(|| "unknown".into());
        return Err(Error::NodeTaken {
            id: node.id.clone(),
            name,
        });
    }
    let (opts, id) = (opts.clone(), node.id.clone());
    Ok(NodeHold {
        task: tokio::spawn(keep(conn, opts, id)),
    })
}

async fn try_lock(conn: &mut AnyConnection, id: &str) -> Result<bool, Error> {
    let row = sqlx::query("SELECT pg_try_advisory_lock($1, hashtext($2))")
        .bind(CLASS)
        .bind(id)
        .fetch_one(&mut *conn)
        .await
        .map_err(crate::sql::q("take this node's lock"))?;
    row.try_get::<bool, _>(0)
        .map_err(crate::sql::q("read this node's lock"))
}

/// Checks the connection now and then; once lost, connects again and takes the lock again.
async fn keep(mut conn: AnyConnection, opts: AnyConnectOptions, id: String) {
    loop {
        tokio::time::sleep(CHECK).await;
        if conn.ping().await.is_ok() {
            continue;
        }
        tracing::warn!(node = %id, "lost the connection that holds this node's lock; taking it again");
        let mut said = false;
        conn = loop {
            tokio::time::sleep(CHECK / 6).await;
            let Ok(mut fresh) = opts.connect().await else {
                continue;
            };
            match try_lock(&mut fresh, &id).await {
                Ok(true) => break fresh,
                Ok(false) if !std::mem::replace(&mut said, true) => {
                    tracing::error!(node = %id, "another upkeep daemon took this node's id on the database while the connection was down; both write as one node: stop one of them, or give it a new id (remove its data dir's node-id)")
                }
                Ok(false) => {}
                Err(e) => {
                    tracing::debug!(node = %id, "cannot take this node's lock yet: {}", e.with_causes())
                }
            }
        };
        tracing::info!(node = %id, "this node's lock is held again");
    }
}
