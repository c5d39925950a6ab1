//! Opening the SQLite database: one file in the data dir, private, WAL mode, its own
//! migrations (`migrations/sqlite/`, embedded in the binary). The queries are `sql.rs`'s.

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use sqlx::Executor;
use sqlx::any::AnyPoolOptions;

use crate::sql::{SqlStore, q};
use crate::{Engine, Error, Node};

/// Opens (creating if needed) the database at `path` and applies pending migrations.
pub(crate) async fn open(path: &Path, node: &Node) -> Result<SqlStore, Error> {
    let open_error = |source| Error::Open {
        path: path.display().to_string(),
        source,
    };
    // Made private before SQLite sees it (its WAL and shared-memory files take the database's
    // mode): the history holds config revisions, and configs hold secrets.
    create_private(path).map_err(|e| open_error(sqlx::Error::Io(e)))?;
    // A file URL escapes every character a URL would misread (`?`, `#`, `%`, spaces).
    let file = url::Url::from_file_path(path)
        .map_err(|()| open_error(sqlx::Error::Configuration("not an absolute path".into())))?;
    let url = format!("sqlite://{}?mode=rwc", file.path());
    let opts = sqlx::any::AnyConnectOptions::from_str(&url).map_err(open_error)?;
    // Two connections: the event writer and one reader for API queries. SQLite serialises
    // writers anyway, and each connection costs a thread and a page cache.
    let pool = AnyPoolOptions::new()
        .max_connections(2)
        .after_connect(|conn, _| {
            Box::pin(async move {
                // NORMAL in WAL mode: a power cut may lose the last commits, never corrupt
                // the file. Per connection, as busy_timeout.
                conn.execute("PRAGMA synchronous = NORMAL; PRAGMA busy_timeout = 5000")
                    .await
                    .map(drop)
            })
        })
        .acquire_timeout(Duration::from_secs(30))
        .connect_with(opts)
        .await
        .map_err(open_error)?;
    // WAL is a property of the file: set once, by the first connection.
    sqlx::query("PRAGMA journal_mode = WAL")
        .execute(&pool)
        .await
        .map_err(q("switch to WAL mode"))?;
    sqlx::migrate!("./migrations/sqlite")
        .run(&pool)
        .await
        .map_err(Error::Migrate)?;
    SqlStore::claim(pool, Engine::Sqlite, node).await
}

/// Creates the database file with mode 0600 if it is missing (never through a symlink).
fn create_private(path: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)
        .map(drop)
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    #[tokio::test]
    async fn the_database_is_private_and_its_path_may_hold_any_character() {
        let dir = tempfile::tempdir().unwrap();
        let odd = dir.path().join("a dir?#%x");
        std::fs::create_dir(&odd).unwrap();
        crate::test_store(&odd).await;
        let mode = std::fs::metadata(odd.join("u.db"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
}
