//! SQLite backend (the default): one embedded file, no server to run.

use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteRow,
    SqliteSynchronous,
};
use sqlx::{Row, migrate::Migrator};

use super::{MIGRATIONS_TABLE, TokenRecord, TokenStore};
use crate::error::{Error, Result, StoreError};
use crate::tokens::claims::TokenType;

static MIGRATOR: Migrator = sqlx::migrate!("./migrations/sqlite");

/// A [`TokenStore`] on SQLite through sqlx.
#[derive(Debug, Clone)]
pub struct SqliteTokenStore {
    pool: SqlitePool,
}

impl SqliteTokenStore {
    /// Opens (and creates if missing) the database at `url`
    /// (`sqlite://tokens.db`, `sqlite::memory:`). Does not migrate: call
    /// [`SqliteTokenStore::migrate`].
    pub async fn connect(url: &str) -> Result<Self> {
        let in_memory = url.contains(":memory:") || url.contains("mode=memory");
        let options = SqliteConnectOptions::from_str(url)
            .map_err(|e| Error::Config(format!("DATABASE_URL is not a valid SQLite URL: {e}")))?
            .create_if_missing(true)
            .busy_timeout(Duration::from_secs(5))
            .foreign_keys(true);
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
        let mut attempt = 0u64;
        loop {
            match Self::open_pool(options.clone(), in_memory).await {
                Err(err) if attempt < 20 && is_busy(&err) => {
                    attempt += 1;
                    tokio::time::sleep(Duration::from_millis(25 * attempt)).await;
                }
                Err(err) => return Err(StoreError::new("connect", err).into()),
                Ok(pool) => return Ok(Self { pool }),
            }
        }
    }

    async fn open_pool(options: SqliteConnectOptions, in_memory: bool) -> sqlx::Result<SqlitePool> {
        SqlitePoolOptions::new()
            // An in-memory database lives in one connection; keep exactly it.
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
            .await
    }

    /// Wraps an existing pool (for applications that already have one).
    pub fn from_pool(pool: SqlitePool) -> Self {
        Self { pool }
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
        // migration applied (and checks its checksum).
        let mut retries = 0;
        loop {
            match migrator.run(&self.pool).await {
                Err(err) if retries < 3 && lost_migration_race(&err) => retries += 1,
                done => {
                    return done
                        .map_err(|e| Error::StoreUnavailable(StoreError::new("migrate", e)));
                }
            }
        }
    }
}

/// A unique-key failure while recording a migration another process applied.
fn lost_migration_race(err: &sqlx::migrate::MigrateError) -> bool {
    let mut next: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(cause) = next {
        if let Some(sqlx::Error::Database(db)) = cause.downcast_ref::<sqlx::Error>() {
            if db.is_unique_violation() {
                return true;
            }
        }
        next = cause.source();
    }
    false
}

/// SQLITE_BUSY (5) or SQLITE_LOCKED (6): another connection holds the lock.
fn is_busy(err: &sqlx::Error) -> bool {
    match err {
        sqlx::Error::Database(db) => matches!(db.code().as_deref(), Some("5" | "6")),
        _ => false,
    }
}

fn record_from_row(row: &SqliteRow) -> Result<TokenRecord, sqlx::Error> {
    let token_type: String = row.try_get("token_type")?;
    Ok(TokenRecord {
        jti: row.try_get("jti")?,
        token_type: TokenType::from_str(&token_type).map_err(|_| sqlx::Error::ColumnDecode {
            index: "token_type".into(),
            source: "unknown token type".into(),
        })?,
        user_id: row.try_get("user_id")?,
        family_id: row.try_get("family_id")?,
        issued_at: row.try_get("issued_at")?,
        expires_at: row.try_get("expires_at")?,
        revoked_at: row.try_get("revoked_at")?,
    })
}

#[async_trait]
impl TokenStore for SqliteTokenStore {
    fn backend(&self) -> &'static str {
        "sqlite"
    }

    async fn insert(&self, r: &TokenRecord) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO fastcore_tokens \
             (jti, token_type, user_id, family_id, issued_at, expires_at, revoked_at) \
             VALUES (?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(&r.jti)
        .bind(r.token_type.as_str())
        .bind(&r.user_id)
        .bind(&r.family_id)
        .bind(r.issued_at)
        .bind(r.expires_at)
        .bind(r.revoked_at)
        .execute(&self.pool)
        .await
        .map_err(|e| StoreError::new("insert", e))?;
        Ok(())
    }

    async fn get(&self, jti: &str) -> Result<Option<TokenRecord>, StoreError> {
        let row = sqlx::query(
            "SELECT jti, token_type, user_id, family_id, issued_at, expires_at, revoked_at \
             FROM fastcore_tokens WHERE jti = ?",
        )
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
        let done = sqlx::query(
            "UPDATE fastcore_tokens SET revoked_at = ? WHERE jti = ? AND revoked_at IS NULL",
        )
        .bind(at)
        .bind(jti)
        .execute(&self.pool)
        .await
        .map_err(|e| StoreError::new("revoke", e))?;
        Ok(done.rows_affected() > 0)
    }

    async fn revoke_family(&self, family_id: &str, at: i64) -> Result<u64, StoreError> {
        let done = sqlx::query(
            "UPDATE fastcore_tokens SET revoked_at = ? \
             WHERE family_id = ? AND revoked_at IS NULL",
        )
        .bind(at)
        .bind(family_id)
        .execute(&self.pool)
        .await
        .map_err(|e| StoreError::new("revoke_family", e))?;
        Ok(done.rows_affected())
    }

    async fn revoke_user(
        &self,
        user_id: &str,
        except_family: Option<&str>,
        at: i64,
    ) -> Result<u64, StoreError> {
        let done = sqlx::query(
            "UPDATE fastcore_tokens SET revoked_at = ? \
             WHERE user_id = ? AND revoked_at IS NULL \
             AND (? IS NULL OR family_id IS NULL OR family_id <> ?)",
        )
        .bind(at)
        .bind(user_id)
        .bind(except_family)
        .bind(except_family)
        .execute(&self.pool)
        .await
        .map_err(|e| StoreError::new("revoke_user", e))?;
        Ok(done.rows_affected())
    }

    async fn list_live(&self, user_id: &str, now: i64) -> Result<Vec<TokenRecord>, StoreError> {
        let rows = sqlx::query(
            "SELECT jti, token_type, user_id, family_id, issued_at, expires_at, revoked_at \
             FROM fastcore_tokens \
             WHERE user_id = ? AND revoked_at IS NULL AND expires_at > ? \
             ORDER BY issued_at, jti",
        )
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
        Ok(done.rows_affected())
    }

    async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1")
            .execute(&self.pool)
            .await
            .map_err(|e| StoreError::new("ping", e))?;
        Ok(())
    }
}
