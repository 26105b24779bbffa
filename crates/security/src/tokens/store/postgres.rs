//! PostgreSQL backend: the store that several app instances share.

use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions, PgRow};
use sqlx::{Row, migrate::Migrator};

use super::{MIGRATIONS_TABLE, TokenRecord, TokenStore};
use crate::error::{Error, Result, StoreError};
use crate::tokens::claims::TokenType;

static MIGRATOR: Migrator = sqlx::migrate!("./migrations/postgres");

/// A [`TokenStore`] on PostgreSQL through sqlx.
///
/// The tokens table lives in the connection's `search_path` (usually
/// `public`); put `?options=-c%20search_path%3Dauth` in the URL to keep it
/// in a schema of its own.
#[derive(Debug, Clone)]
pub struct PostgresTokenStore {
    pool: PgPool,
}

impl PostgresTokenStore {
    /// Connects to the database at `url` (`postgres://user:pass@host/db`;
    /// `postgresql://` works too). Does not migrate: call
    /// [`PostgresTokenStore::migrate`].
    ///
    /// Fails with [`Error::StoreUnavailable`] if the server does not answer
    /// within 5 seconds. The pool reconnects by itself after an outage.
    pub async fn connect(url: &str) -> Result<Self> {
        let mut options = PgConnectOptions::from_str(url).map_err(|e| {
            Error::Config(format!("DATABASE_URL is not a valid PostgreSQL URL: {e}"))
        })?;
        if options.get_application_name().is_none() {
            // Names our sessions in pg_stat_activity.
            options = options.application_name("fastcore-security");
        }
        let pool = PgPoolOptions::new()
            .max_connections(10)
            .min_connections(0)
            .idle_timeout(Duration::from_secs(600))
            .max_lifetime(Duration::from_secs(1800))
            // An outage must surface as a StoreError quickly (a 503), not
            // as a request that hangs; the ping before each use drops
            // connections the server closed, so the pool heals by itself.
            .acquire_timeout(Duration::from_secs(5))
            .test_before_acquire(true)
            .connect_lazy_with(options.clone());
        // One direct attempt first: the pool would retry a refused or
        // misconfigured connection until its timeout and then report only
        // "pool timed out", hiding the driver's reason.
        let first = tokio::time::timeout(
            Duration::from_secs(5),
            <sqlx::postgres::PgConnection as sqlx::Connection>::connect_with(&options),
        )
        .await
        .map_err(|_| StoreError::new("connect", "the server did not answer within 5 s"))?
        .map_err(|e| StoreError::new("connect", e))?;
        let _ = sqlx::Connection::close(first).await;
        Ok(Self { pool })
    }

    /// Wraps an existing pool (for applications that already have one).
    pub fn from_pool(pool: PgPool) -> Self {
        Self { pool }
    }

    /// The underlying pool.
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// Creates or updates the token tables (embedded migrations). Safe to
    /// run from several instances at once: sqlx serialises them with an
    /// advisory lock.
    pub async fn migrate(&self) -> Result<()> {
        let mut migrator = Migrator {
            migrations: MIGRATOR.migrations.clone(),
            ..Migrator::DEFAULT
        };
        migrator.dangerous_set_table_name(MIGRATIONS_TABLE);
        migrator
            .run(&self.pool)
            .await
            .map_err(|e| Error::StoreUnavailable(StoreError::new("migrate", e)))
    }
}

fn record_from_row(row: &PgRow) -> Result<TokenRecord, sqlx::Error> {
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
impl TokenStore for PostgresTokenStore {
    fn backend(&self) -> &'static str {
        "postgres"
    }

    async fn insert(&self, r: &TokenRecord) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO fastcore_tokens \
             (jti, token_type, user_id, family_id, issued_at, expires_at, revoked_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
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
             FROM fastcore_tokens WHERE jti = $1",
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
            "UPDATE fastcore_tokens SET revoked_at = $1 WHERE jti = $2 AND revoked_at IS NULL",
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
            "UPDATE fastcore_tokens SET revoked_at = $1 \
             WHERE family_id = $2 AND revoked_at IS NULL",
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
            "UPDATE fastcore_tokens SET revoked_at = $1 \
             WHERE user_id = $2 AND revoked_at IS NULL \
             AND ($3::text IS NULL OR family_id IS NULL OR family_id <> $3)",
        )
        .bind(at)
        .bind(user_id)
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
             WHERE user_id = $1 AND revoked_at IS NULL AND expires_at > $2 \
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
        // SKIP LOCKED: instances purging at the same time take different
        // batches instead of queueing behind each other's row locks.
        let done = sqlx::query(
            "DELETE FROM fastcore_tokens WHERE jti IN \
             (SELECT jti FROM fastcore_tokens WHERE expires_at < $1 \
              LIMIT $2 FOR UPDATE SKIP LOCKED)",
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
