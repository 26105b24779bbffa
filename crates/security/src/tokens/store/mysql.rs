//! MySQL and MariaDB backend.
//!
//! Ids are stored as `VARBINARY` (their UTF-8 bytes): MySQL's text
//! collations fold case or ignore trailing spaces, and user ids, session ids
//! and `jti`s are opaque strings that must match exactly. See the migration
//! for the column sizes.

use std::borrow::Cow;
use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use sqlx::mysql::{MySqlConnectOptions, MySqlPool, MySqlPoolOptions, MySqlRow};
use sqlx::{Row, migrate::Migrator};

use super::{MIGRATIONS_TABLE, TokenRecord, TokenStore};
use crate::error::{Error, Result, StoreError};
use crate::tokens::claims::TokenType;

static MIGRATOR: Migrator = sqlx::migrate!("./migrations/mysql");

/// Column sizes of the migration, in bytes. `user_id` holds any `sub` the
/// library issues (`MAX_SUBJECT_BYTES`); `jti` and `family_id` are uuids
/// when the library makes them.
const MAX_JTI_BYTES: usize = 255;
const MAX_USER_ID_BYTES: usize = 1024;
const MAX_FAMILY_ID_BYTES: usize = 1024;

/// How long `migrate` waits for another instance's migrations to finish.
const MIGRATION_LOCK_WAIT: Duration = Duration::from_secs(300);

/// A [`TokenStore`] on MySQL or MariaDB through sqlx (tested against
/// MariaDB 10.11).
#[derive(Debug, Clone)]
pub struct MySqlTokenStore {
    pool: MySqlPool,
}

impl MySqlTokenStore {
    /// Connects to the database at `url` (`mysql://user:pass@host/db`;
    /// `mariadb://` works too). Does not migrate: call
    /// [`MySqlTokenStore::migrate`].
    ///
    /// Fails with [`Error::StoreUnavailable`] if the server does not answer
    /// within 5 seconds. The pool reconnects by itself after an outage.
    pub async fn connect(url: &str) -> Result<Self> {
        let options = MySqlConnectOptions::from_str(&mysql_url(url))
            .map_err(|e| Error::Config(format!("DATABASE_URL is not a valid MySQL URL: {e}")))?;
        let pool = MySqlPoolOptions::new()
            .max_connections(10)
            .min_connections(0)
            // Below the server's default wait_timeout (8 h), so the pool
            // closes idle connections before the server drops them.
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
            <sqlx::mysql::MySqlConnection as sqlx::Connection>::connect_with(&options),
        )
        .await
        .map_err(|_| StoreError::new("connect", "the server did not answer within 5 s"))?
        .map_err(|e| StoreError::new("connect", e))?;
        let _ = sqlx::Connection::close(first).await;
        Ok(Self { pool })
    }

    /// Wraps an existing pool (for applications that already have one).
    pub fn from_pool(pool: MySqlPool) -> Self {
        Self { pool }
    }

    /// The underlying pool.
    pub fn pool(&self) -> &MySqlPool {
        &self.pool
    }

    /// Creates or updates the token tables (embedded migrations). Safe to
    /// run from several instances at once: they take turns under a named
    /// lock (`GET_LOCK`) on the database.
    pub async fn migrate(&self) -> Result<()> {
        let unavailable = |e: sqlx::Error| Error::StoreUnavailable(StoreError::new("migrate", e));
        let mut conn = self.pool.acquire().await.map_err(unavailable)?;
        // The lock is the session's: closing the connection afterwards
        // releases it even if RELEASE_LOCK cannot run.
        conn.close_on_drop();
        // sqlx's own migration lock asks for GET_LOCK(name, -1), which
        // MariaDB refuses (NULL, "Incorrect timeout value") and sqlx does
        // not check, so two instances starting together would both migrate.
        // Named locks are server-wide: the name carries the database's.
        let locked: Option<i64> = sqlx::query_scalar(
            "SELECT GET_LOCK(CONCAT('fastcore_security_', MD5(COALESCE(DATABASE(), ''))), ?)",
        )
        .bind(MIGRATION_LOCK_WAIT.as_secs())
        .fetch_one(&mut *conn)
        .await
        .map_err(unavailable)?;
        if locked != Some(1) {
            return Err(Error::StoreUnavailable(StoreError::new(
                "migrate",
                "another instance held the migration lock for too long",
            )));
        }
        let mut migrator = Migrator {
            migrations: MIGRATOR.migrations.clone(),
            ..Migrator::DEFAULT
        };
        migrator.dangerous_set_table_name(MIGRATIONS_TABLE);
        migrator.set_locking(false);
        // `run_direct` on the connection, not `run`: `run` is generic over
        // `Acquire`, and with `&mut MySqlConnection` its future is not
        // `Send` for every lifetime, so `migrate` (and `connect_store`,
        // `setup_security`) could not be awaited in a spawned task.
        let migrated = migrator
            .run_direct(None, &mut *conn, false)
            .await
            .map_err(|e| Error::StoreUnavailable(StoreError::new("migrate", e)));
        let _ = sqlx::query(
            "SELECT RELEASE_LOCK(CONCAT('fastcore_security_', MD5(COALESCE(DATABASE(), ''))))",
        )
        .execute(&mut *conn)
        .await;
        migrated
    }
}

/// `mariadb://...` as `mysql://...`, the scheme sqlx's driver documents.
fn mysql_url(url: &str) -> Cow<'_, str> {
    const MARIADB: &str = "mariadb:";
    match url.get(..MARIADB.len()) {
        Some(scheme) if scheme.eq_ignore_ascii_case(MARIADB) => {
            Cow::Owned(format!("mysql:{}", &url[MARIADB.len()..]))
        }
        _ => Cow::Borrowed(url),
    }
}

/// Refuses a value the column cannot hold, whatever the server's
/// `sql_mode` (a non-strict server would silently truncate it).
fn check_len(column: &'static str, value: &str, max: usize) -> Result<(), StoreError> {
    if value.len() > max {
        return Err(StoreError::new(
            "insert",
            format!("{column} is longer than {max} bytes"),
        ));
    }
    Ok(())
}

fn text(row: &MySqlRow, column: &'static str) -> Result<String, sqlx::Error> {
    let bytes: Vec<u8> = row.try_get(column)?;
    String::from_utf8(bytes).map_err(|e| sqlx::Error::ColumnDecode {
        index: column.into(),
        source: e.into(),
    })
}

fn record_from_row(row: &MySqlRow) -> Result<TokenRecord, sqlx::Error> {
    let token_type: String = row.try_get("token_type")?;
    let family_id: Option<Vec<u8>> = row.try_get("family_id")?;
    Ok(TokenRecord {
        jti: text(row, "jti")?,
        token_type: TokenType::from_str(&token_type).map_err(|_| sqlx::Error::ColumnDecode {
            index: "token_type".into(),
            source: "unknown token type".into(),
        })?,
        user_id: text(row, "user_id")?,
        family_id: family_id.map(String::from_utf8).transpose().map_err(|e| {
            sqlx::Error::ColumnDecode {
                index: "family_id".into(),
                source: e.into(),
            }
        })?,
        issued_at: row.try_get("issued_at")?,
        expires_at: row.try_get("expires_at")?,
        revoked_at: row.try_get("revoked_at")?,
    })
}

#[async_trait]
impl TokenStore for MySqlTokenStore {
    fn backend(&self) -> &'static str {
        "mysql"
    }

    async fn insert(&self, r: &TokenRecord) -> Result<(), StoreError> {
        check_len("jti", &r.jti, MAX_JTI_BYTES)?;
        check_len("user_id", &r.user_id, MAX_USER_ID_BYTES)?;
        if let Some(family_id) = &r.family_id {
            check_len("family_id", family_id, MAX_FAMILY_ID_BYTES)?;
        }
        sqlx::query(
            "INSERT INTO fastcore_tokens \
             (jti, token_type, user_id, family_id, issued_at, expires_at, revoked_at) \
             VALUES (?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(r.jti.as_bytes())
        .bind(r.token_type.as_str())
        .bind(r.user_id.as_bytes())
        .bind(r.family_id.as_deref().map(str::as_bytes))
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
        .bind(jti.as_bytes())
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
        .bind(jti.as_bytes())
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
        .bind(family_id.as_bytes())
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
        let except_family = except_family.map(str::as_bytes);
        let done = sqlx::query(
            "UPDATE fastcore_tokens SET revoked_at = ? \
             WHERE user_id = ? AND revoked_at IS NULL \
             AND (? IS NULL OR family_id IS NULL OR family_id <> ?)",
        )
        .bind(at)
        .bind(user_id.as_bytes())
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
        .bind(user_id.as_bytes())
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
            "DELETE FROM fastcore_tokens WHERE expires_at < ? ORDER BY expires_at LIMIT ?",
        )
        .bind(before)
        .bind(batch)
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

#[cfg(test)]
mod tests {
    use super::{MySqlTokenStore, mysql_url};

    /// Compiles only if `migrate` and `connect_store` can run in a spawned
    /// task (their futures are `Send` for any lifetime).
    #[allow(dead_code)]
    fn migrate_runs_in_a_spawned_task(store: MySqlTokenStore) {
        tokio::spawn(async move { store.migrate().await });
        tokio::spawn(async { crate::connect_store("mysql://root@127.0.0.1/test").await });
    }

    #[test]
    fn mariadb_urls_become_mysql_urls() {
        assert_eq!(mysql_url("mariadb://u@h/db"), "mysql://u@h/db");
        assert_eq!(mysql_url("MariaDB://u@h/db"), "mysql://u@h/db");
        assert_eq!(mysql_url("mysql://u@h/db"), "mysql://u@h/db");
        assert_eq!(mysql_url("maria"), "maria");
    }
}
