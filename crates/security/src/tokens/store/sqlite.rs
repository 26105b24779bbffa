//! SQLite backend (the default): one embedded file, no server to run.

use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteRow,
    SqliteSynchronous,
};
use sqlx::{ConnectOptions as _, Connection as _, SqliteConnection, migrate::Migrator};

use super::sql::{self, not_cut_off, select_record};
use super::{MIGRATIONS_TABLE, Rotation, TokenRecord, TokenStore};
use crate::error::{Error, Result, StoreError};
use crate::tokens::feed::{
    LOG_RETENTION_SECS, RevocationBatch, RevocationFeed, batch, cursor_of, expiring_after,
    log_covers, no_changes, seq_of,
};

static MIGRATOR: Migrator = sqlx::migrate!("./migrations/sqlite");

/// A [`TokenStore`] on SQLite through sqlx.
#[derive(Debug, Clone)]
pub struct SqliteTokenStore {
    pool: SqlitePool,
    /// The database file (`None` in memory or for a pool given to
    /// [`from_pool`](Self::from_pool)): [`ping`](TokenStore::ping) and every
    /// connection checks it is still the file that was opened.
    file: Option<DatabaseFile>,
}

impl SqliteTokenStore {
    /// Opens (and creates if missing) the database at `url`
    /// (`sqlite://tokens.db`, `sqlite::memory:`). Does not migrate: call
    /// [`SqliteTokenStore::migrate`].
    ///
    /// The file is created here, once; the pool's later connections never
    /// create it. So a database file removed while the server runs makes
    /// requests fail with [`Error::StoreUnavailable`] and `/health` answer
    /// 503, instead of a new, empty database silently taking its place
    /// (where every issued token would be unknown).
    pub async fn connect(url: &str) -> Result<Self> {
        let in_memory = url.contains(":memory:") || url.contains("mode=memory");
        let options = SqliteConnectOptions::from_str(url)
            .map_err(|e| Error::Config(format!("DATABASE_URL is not a valid SQLite URL: {e}")))?
            .create_if_missing(false)
            .busy_timeout(Duration::from_secs(5))
            .foreign_keys(true)
            // No statement in the log, even at debug (slow ones at warn
            // included): the log says what happened, never our SQL.
            .disable_statement_logging();
        let options = if in_memory {
            options
        } else {
            options
                .journal_mode(SqliteJournalMode::Wal)
                .synchronous(SqliteSynchronous::Normal)
        };
        // Switching a new file to WAL needs a moment of exclusive access, and
        // SQLite answers "database is locked" at once (no busy wait) when
        // another process opens the same new file at that instant, as
        // instances started together do. Retry briefly.
        let path = (!in_memory).then(|| options.get_filename().to_path_buf());
        let mut attempt = 0u64;
        loop {
            match Self::open_pool(options.clone(), path.clone()).await {
                Err(err) if attempt < 20 && is_busy(&err) => {
                    attempt += 1;
                    tokio::time::sleep(Duration::from_millis(25 * attempt)).await;
                }
                Err(err) => return Err(StoreError::new("connect", err).into()),
                Ok((pool, file)) => return Ok(Self { pool, file }),
            }
        }
    }

    /// The pool on `options`, and the identity of its database file;
    /// `path` is the file's path (`None` in memory).
    async fn open_pool(
        options: SqliteConnectOptions,
        path: Option<PathBuf>,
    ) -> sqlx::Result<(SqlitePool, Option<DatabaseFile>)> {
        let in_memory = path.is_none();
        let file = match path {
            Some(path) => {
                // The one connection allowed to create the file.
                SqliteConnection::connect_with(&options.clone().create_if_missing(true))
                    .await?
                    .close()
                    .await?;
                Some(DatabaseFile::of(path).map_err(sqlx::Error::Io)?)
            }
            None => None,
        };
        let (on_acquire, on_connect) = (file.clone(), file.clone());
        let pool = SqlitePoolOptions::new()
            // An idle connection to a file that was removed or replaced
            // (`rm`, a backup moved into place) would go on writing to the
            // unlinked file, lost at the next start: drop it instead. The
            // new connection that replaces it is refused too, so requests
            // fail with `store_unavailable` until the server is restarted
            // on the file now at the path. (One `stat` per acquire.)
            .before_acquire(move |_conn, _meta| {
                let same = on_acquire.as_ref().is_none_or(DatabaseFile::unchanged);
                Box::pin(async move { Ok(same) })
            })
            .after_connect(move |_conn, _meta| {
                let same = on_connect.as_ref().is_none_or(DatabaseFile::unchanged);
                Box::pin(async move {
                    if same {
                        Ok(())
                    } else {
                        Err(sqlx::Error::Io(DatabaseFile::changed_error()))
                    }
                })
            })
            .max_connections(if in_memory { 1 } else { 8 })
            .min_connections(if in_memory { 1 } else { 0 })
            .idle_timeout(if in_memory {
                None
            } else {
                Some(Duration::from_secs(600))
            })
            .max_lifetime(if in_memory {
                None
            } else {
                Some(Duration::from_secs(1800))
            })
            .acquire_timeout(Duration::from_secs(5))
            .connect_with(options)
            .await?;
        Ok((pool, file))
    }

    /// Wraps an existing pool (for applications that already have one).
    pub fn from_pool(pool: SqlitePool) -> Self {
        Self { pool, file: None }
    }

    /// The underlying pool.
    pub fn pool(&self) -> &SqlitePool {
        &self.pool
    }

    /// Creates or updates the token tables (embedded migrations).
    pub async fn migrate(&self) -> Result<()> {
        let mut migrator = Migrator {
            migrations: MIGRATOR.migrations.clone(),
            ..Migrator::DEFAULT
        };
        migrator.dangerous_set_table_name(MIGRATIONS_TABLE);
        // sqlx takes no lock around SQLite migrations: two processes
        // migrating one new file at once both apply a migration, and the
        // second fails on the migrations table's key. Its transaction rolled
        // back and the winner's committed, so running again finds the
        // migration applied (and checks its checksum). A racer can lose
        // once per migration (each run gets one further), so it may retry
        // as often as there are migrations.
        // And while another process migrates, a migration's transaction
        // may find the file locked: SQLite answers "database is locked" at
        // once, without waiting, when two transactions would deadlock
        // (both read, then both want to write). It rolled back: wait a
        // moment and run again.
        let max_races = 2 * migrator.migrations.len() + 8;
        let (mut races, mut busy) = (0usize, 0u64);
        loop {
            match migrator.run(&self.pool).await {
                Err(err) if busy < 20 && busy_anywhere(&err) => {
                    busy += 1;
                    tokio::time::sleep(Duration::from_millis(10 * busy)).await;
                }
                Err(err) if races < max_races && lost_migration_race(&err) => races += 1,
                done => {
                    return done
                        .map_err(|e| Error::StoreUnavailable(StoreError::new("migrate", e)));
                }
            }
        }
    }
}

/// The database file the store opened: its path, and (on Unix) its device
/// and inode, so a file removed or replaced at that path is noticed.
#[derive(Debug, Clone)]
struct DatabaseFile {
    path: PathBuf,
    identity: Option<(u64, u64)>,
}

impl DatabaseFile {
    fn of(path: PathBuf) -> std::io::Result<Self> {
        let identity = Self::identity_at(&path)?;
        Ok(Self { path, identity })
    }

    #[cfg(unix)]
    fn identity_at(path: &std::path::Path) -> std::io::Result<Option<(u64, u64)>> {
        use std::os::unix::fs::MetadataExt as _;
        let meta = std::fs::metadata(path)?;
        Ok(Some((meta.dev(), meta.ino())))
    }

    #[cfg(not(unix))]
    fn identity_at(path: &std::path::Path) -> std::io::Result<Option<(u64, u64)>> {
        std::fs::metadata(path).map(|_| None)
    }

    /// The file at the path is still the one that was opened.
    fn unchanged(&self) -> bool {
        matches!(Self::identity_at(&self.path), Ok(now) if now == self.identity)
    }

    fn changed_error() -> std::io::Error {
        std::io::Error::new(
            std::io::ErrorKind::NotFound,
            "the SQLite database file was removed or replaced while in use; restart to open the file now at its path",
        )
    }
}

/// Whether SQLite's "busy" or "locked" is anywhere in `err`'s chain.
fn busy_anywhere(err: &(dyn std::error::Error + 'static)) -> bool {
    let mut next = Some(err);
    while let Some(cause) = next {
        if cause.downcast_ref::<sqlx::Error>().is_some_and(is_busy) {
            return true;
        }
        next = cause.source();
    }
    false
}

/// A failure that means another process applied the same migration
/// meanwhile: a unique-key failure while recording it, or (for a
/// migration that adds columns, which SQLite cannot guard with IF NOT
/// EXISTS) a column that is already there. The failed transaction rolled
/// back; running again re-reads which migrations are applied.
fn lost_migration_race(err: &sqlx::migrate::MigrateError) -> bool {
    let mut next: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(cause) = next {
        if let Some(sqlx::Error::Database(db)) = cause.downcast_ref::<sqlx::Error>()
            && (db.is_unique_violation() || db.message().starts_with("duplicate column name"))
        {
            return true;
        }
        next = cause.source();
    }
    false
}

/// SQLITE_BUSY (5) or SQLITE_LOCKED (6), or one of their extended codes
/// (SQLITE_BUSY_SNAPSHOT is 517): another connection holds the lock.
fn is_busy(err: &sqlx::Error) -> bool {
    match err {
        sqlx::Error::Database(db) => db
            .code()
            .and_then(|code| code.parse::<i64>().ok())
            .is_some_and(|code| matches!(code & 0xff, 5 | 6)),
        _ => false,
    }
}

/// Ids are TEXT here: they decode as they are.
fn record_from_row(row: &SqliteRow) -> Result<TokenRecord, sqlx::Error> {
    sql::record_from_row(row, sql::as_text)
}

/// Inserts a record; `generation` is the user's current cut-off
/// generation unless given (a rotation's child inherits its parent's).
async fn insert_record<'e, E>(
    executor: E,
    r: &TokenRecord,
    generation: Option<i64>,
) -> Result<(), sqlx::Error>
where
    E: sqlx::Executor<'e, Database = sqlx::Sqlite>,
{
    let session = r.session.as_ref();
    sqlx::query(
        "INSERT INTO fastcore_tokens \
         (jti, token_type, user_id, family_id, issued_at, expires_at, revoked_at, \
          consumed_at, replaced_by, session_started_at, user_agent, ip, generation) \
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, COALESCE(?, \
          (SELECT generation FROM fastcore_user_cutoffs WHERE user_id = ?), 0))",
    )
    .bind(&r.jti)
    .bind(r.token_type.as_str())
    .bind(&r.user_id)
    .bind(&r.family_id)
    .bind(r.issued_at)
    .bind(r.expires_at)
    .bind(r.revoked_at)
    .bind(r.consumed_at)
    .bind(&r.replaced_by)
    .bind(session.map(|s| s.started_at))
    .bind(session.and_then(|s| s.user_agent.as_deref()))
    .bind(session.and_then(|s| s.ip.as_deref()))
    .bind(generation)
    .bind(&r.user_id)
    .execute(executor)
    .await?;
    Ok(())
}

#[async_trait]
impl TokenStore for SqliteTokenStore {
    fn backend(&self) -> &'static str {
        "sqlite"
    }

    async fn insert(&self, r: &TokenRecord) -> Result<(), StoreError> {
        insert_record(&self.pool, r, None)
            .await
            .map_err(|e| StoreError::new("insert", e))
    }

    async fn get(&self, jti: &str) -> Result<Option<TokenRecord>, StoreError> {
        let row = sqlx::query(select_record!("WHERE t.jti = ?"))
            .bind(jti)
            .fetch_optional(&self.pool)
            .await
            .map_err(|e| StoreError::new("get", e))?;
        row.as_ref()
            .map(record_from_row)
            .transpose()
            .map_err(|e| StoreError::new("get", e))
    }

    async fn revoke(&self, jti: &str, at: i64) -> Result<bool, StoreError> {
        let update = sqlx::query(concat!(
            "UPDATE fastcore_tokens SET revoked_at = ? WHERE jti = ? AND revoked_at IS NULL",
            not_cut_off!()
        ))
        .bind(at)
        .bind(jti);
        let changed = self
            .logged(update, "token", jti, at)
            .await
            .map_err(|e| StoreError::new("revoke", e))?;
        Ok(changed > 0)
    }

    async fn rotate(
        &self,
        parent_jti: &str,
        child: &TokenRecord,
        at: i64,
    ) -> Result<Rotation, StoreError> {
        let err = |e| StoreError::new("rotate", e);
        let mut tx = self.pool.begin().await.map_err(err)?;
        // The conditional update is the first statement, so the transaction
        // takes SQLite's write lock at once; of concurrent rotations exactly
        // one finds the parent unconsumed.
        let won: Option<i64> = sqlx::query_scalar(concat!(
            "UPDATE fastcore_tokens SET consumed_at = ?, replaced_by = ? \
             WHERE jti = ? AND token_type = 'refresh' AND consumed_at IS NULL \
             AND revoked_at IS NULL AND expires_at > ?",
            not_cut_off!(),
            " RETURNING generation"
        ))
        .bind(at)
        .bind(&child.jti)
        .bind(parent_jti)
        .bind(at)
        .fetch_optional(&mut *tx)
        .await
        .map_err(err)?;
        if let Some(generation) = won {
            insert_record(&mut *tx, child, Some(generation))
                .await
                .map_err(err)?;
            tx.commit().await.map_err(err)?;
            return Ok(Rotation::Rotated);
        }
        let row = sqlx::query(select_record!("WHERE t.jti = ?"))
            .bind(parent_jti)
            .fetch_optional(&mut *tx)
            .await
            .map_err(err)?;
        tx.rollback().await.map_err(err)?;
        let parent = row.as_ref().map(record_from_row).transpose().map_err(err)?;
        Ok(super::classify_unrotated(parent, at))
    }

    async fn cut_off_user(&self, user_id: &str, at: i64) -> Result<(), StoreError> {
        let update = sqlx::query(
            "INSERT INTO fastcore_user_cutoffs (user_id, generation, revoked_at) VALUES (?, 1, ?) \
             ON CONFLICT (user_id) DO UPDATE SET generation = generation + 1, \
             revoked_at = excluded.revoked_at",
        )
        .bind(user_id)
        .bind(at);
        self.logged(update, "cutoff", user_id, at)
            .await
            .map_err(|e| StoreError::new("cut_off_user", e))?;
        Ok(())
    }

    async fn revoke_family(&self, family_id: &str, at: i64) -> Result<u64, StoreError> {
        let update = sqlx::query(concat!(
            "UPDATE fastcore_tokens SET revoked_at = ? \
             WHERE family_id = ? AND revoked_at IS NULL",
            not_cut_off!()
        ))
        .bind(at)
        .bind(family_id);
        self.logged(update, "family", family_id, at)
            .await
            .map_err(|e| StoreError::new("revoke_family", e))
    }

    async fn revoke_user(
        &self,
        user_id: &str,
        except_family: Option<&str>,
        at: i64,
    ) -> Result<u64, StoreError> {
        let update = sqlx::query(concat!(
            "UPDATE fastcore_tokens SET revoked_at = ? \
             WHERE user_id = ? AND revoked_at IS NULL \
             AND (? IS NULL OR family_id IS NULL OR family_id <> ?)",
            not_cut_off!()
        ))
        .bind(at)
        .bind(user_id)
        .bind(except_family)
        .bind(except_family);
        self.logged(update, "user", user_id, at)
            .await
            .map_err(|e| StoreError::new("revoke_user", e))
    }

    async fn list_live(&self, user_id: &str, now: i64) -> Result<Vec<TokenRecord>, StoreError> {
        let rows = sqlx::query(select_record!(
            "WHERE t.user_id = ? AND t.revoked_at IS NULL \
             AND t.consumed_at IS NULL AND t.expires_at > ? \
             AND (c.generation IS NULL OR t.generation >= c.generation) \
             ORDER BY t.issued_at, t.jti"
        ))
        .bind(user_id)
        .bind(now)
        .fetch_all(&self.pool)
        .await
        .map_err(|e| StoreError::new("list_live", e))?;
        rows.iter()
            .map(record_from_row)
            .collect::<Result<_, _>>()
            .map_err(|e| StoreError::new("list_live", e))
    }
    async fn purge_expired(&self, before: i64, batch: u32) -> Result<u64, StoreError> {
        let done = sqlx::query(
            "DELETE FROM fastcore_tokens WHERE jti IN \
             (SELECT jti FROM fastcore_tokens WHERE expires_at < ? LIMIT ?)",
        )
        .bind(before)
        .bind(i64::from(batch))
        .execute(&self.pool)
        .await
        .map_err(|e| StoreError::new("purge_expired", e))?;
        // The change log's old entries go too (not counted: not records).
        sqlx::query(
            "DELETE FROM fastcore_revocation_log WHERE seq IN \
             (SELECT seq FROM fastcore_revocation_log WHERE at < ? LIMIT ?)",
        )
        .bind(before.saturating_sub(LOG_RETENTION_SECS))
        .bind(i64::from(batch))
        .execute(&self.pool)
        .await
        .map_err(|e| StoreError::new("purge_expired", e))?;
        Ok(done.rows_affected())
    }

    /// The token table answers, and the database file is still where it
    /// was opened: connections already open keep a removed file alive, so
    /// only the path tells that its data will be gone at the next start.
    async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1 FROM fastcore_tokens LIMIT 1")
            .execute(&self.pool)
            .await
            .map_err(|e| StoreError::new("ping", e))?;
        if let Some(file) = &self.file
            && !file.unchanged()
        {
            return Err(StoreError::new("ping", DatabaseFile::changed_error()));
        }
        Ok(())
    }

    fn login_throttle(&self) -> Option<std::sync::Arc<dyn crate::throttle::LoginThrottle>> {
        Some(std::sync::Arc::new(
            crate::throttle::sqlite::SqliteLoginThrottle::new(self.pool.clone()),
        ))
    }

    fn revocation_feed(&self) -> Option<std::sync::Arc<dyn RevocationFeed>> {
        Some(std::sync::Arc::new(SqliteFeed {
            pool: self.pool.clone(),
        }))
    }
}

type SqliteQuery<'q> = sqlx::query::Query<'q, sqlx::Sqlite, sqlx::sqlite::SqliteArguments>;

impl SqliteTokenStore {
    /// Runs a revoking statement and, if it changed anything, records the
    /// change in the revocation log, in one transaction (see the migration
    /// `..._revocation_log`). Returns the rows the statement changed.
    async fn logged(
        &self,
        update: SqliteQuery<'_>,
        kind: &'static str,
        subject: &str,
        at: i64,
    ) -> Result<u64, sqlx::Error> {
        let mut tx = self.pool.begin().await?;
        // The first statement writes, so the transaction holds SQLite's
        // write lock from here: log numbers commit in order.
        let changed = update.execute(&mut *tx).await?.rows_affected();
        if changed > 0 {
            let seq: i64 = sqlx::query_scalar(
                "UPDATE fastcore_revocation_seq SET seq = seq + 1 WHERE id = 1 RETURNING seq",
            )
            .fetch_one(&mut *tx)
            .await?;
            sqlx::query(
                "INSERT INTO fastcore_revocation_log (seq, kind, subject, at) VALUES (?, ?, ?, ?) \
                 ON CONFLICT DO NOTHING",
            )
            .bind(seq)
            .bind(kind)
            .bind(subject)
            .bind(at)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(changed)
    }
}

/// The SQLite store's revocation feed: polls the change log.
#[derive(Debug)]
struct SqliteFeed {
    pool: SqlitePool,
}

#[async_trait]
impl RevocationFeed for SqliteFeed {
    async fn snapshot(&self, expiring_after: i64) -> Result<RevocationBatch, StoreError> {
        let err = |e| StoreError::new("revocation_snapshot", e);
        // The cursor first: a change committing meanwhile is read again
        // by the next catch-up.
        let head: i64 = sqlx::query_scalar("SELECT seq FROM fastcore_revocation_seq WHERE id = 1")
            .fetch_one(&self.pool)
            .await
            .map_err(err)?;
        let tokens: Vec<(String, i64)> = sqlx::query_as(
            "SELECT jti, expires_at FROM fastcore_tokens \
             WHERE expires_at > ? AND revoked_at IS NOT NULL",
        )
        .bind(expiring_after)
        .fetch_all(&self.pool)
        .await
        .map_err(err)?;
        let cutoffs: Vec<(String, i64)> =
            sqlx::query_as("SELECT user_id, revoked_at FROM fastcore_user_cutoffs")
                .fetch_all(&self.pool)
                .await
                .map_err(err)?;
        Ok(batch(cursor_of(head), tokens, cutoffs))
    }

    async fn changes_since(&self, cursor: u64) -> Result<Option<RevocationBatch>, StoreError> {
        let err = |e| StoreError::new("revocation_changes", e);
        let after = seq_of(cursor);
        let head: i64 = sqlx::query_scalar("SELECT seq FROM fastcore_revocation_seq WHERE id = 1")
            .fetch_one(&self.pool)
            .await
            .map_err(err)?;
        if head == after {
            return Ok(Some(no_changes(cursor)));
        }
        let first: Option<i64> =
            sqlx::query_scalar("SELECT MIN(seq) FROM fastcore_revocation_log WHERE seq > ?")
                .bind(after)
                .fetch_one(&self.pool)
                .await
                .map_err(err)?;
        if !log_covers(after, head, first) {
            return Ok(None);
        }
        let tokens: Vec<(String, i64)> = sqlx::query_as(
            "SELECT t.jti, t.expires_at FROM fastcore_revocation_log l \
               JOIN fastcore_tokens t ON t.jti = l.subject \
               WHERE l.kind = 'token' AND l.seq > ?1 AND l.seq <= ?2 \
               AND t.revoked_at IS NOT NULL AND t.expires_at > ?3 \
             UNION SELECT t.jti, t.expires_at FROM fastcore_revocation_log l \
               JOIN fastcore_tokens t ON t.family_id = l.subject \
               WHERE l.kind = 'family' AND l.seq > ?1 AND l.seq <= ?2 \
               AND t.revoked_at IS NOT NULL AND t.expires_at > ?3 \
             UNION SELECT t.jti, t.expires_at FROM fastcore_revocation_log l \
               JOIN fastcore_tokens t ON t.user_id = l.subject \
               WHERE l.kind = 'user' AND l.seq > ?1 AND l.seq <= ?2 \
               AND t.revoked_at IS NOT NULL AND t.expires_at > ?3",
        )
        .bind(after)
        .bind(head)
        .bind(expiring_after())
        .fetch_all(&self.pool)
        .await
        .map_err(err)?;
        let cutoffs: Vec<(String, i64)> = sqlx::query_as(
            "SELECT c.user_id, c.revoked_at FROM fastcore_revocation_log l \
             JOIN fastcore_user_cutoffs c ON c.user_id = l.subject \
             WHERE l.kind = 'cutoff' AND l.seq > ? AND l.seq <= ?",
        )
        .bind(after)
        .bind(head)
        .fetch_all(&self.pool)
        .await
        .map_err(err)?;
        Ok(Some(batch(cursor_of(head), tokens, cutoffs)))
    }
}
