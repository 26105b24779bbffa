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
use sqlx::migrate::Migrator;
use sqlx::mysql::{MySqlConnectOptions, MySqlPool, MySqlRow};

use super::sql::{self, not_cut_off, select_record};
use super::{
    MAX_IP_BYTES, MAX_USER_AGENT_BYTES, MIGRATIONS_TABLE, Rotation, TokenRecord, TokenStore,
};
use crate::error::{Error, Result, StoreError};
use crate::tokens::feed::{
    LOG_RETENTION_SECS, RevocationBatch, RevocationFeed, batch, cursor_of, expiring_after,
    log_covers, no_changes, seq_of,
};

static MIGRATOR: Migrator = sqlx::migrate!("./migrations/mysql");

/// Column sizes of the migration, in bytes. `user_id` holds any `sub` the
/// library issues (`MAX_SUBJECT_BYTES`); `jti` and `family_id` are uuids
/// when the library makes them.
const MAX_JTI_BYTES: usize = 255;
const MAX_USER_ID_BYTES: usize = 1024;
const MAX_FAMILY_ID_BYTES: usize = 1024;

/// How long `migrate` waits for another instance's migrations to finish.
const MIGRATION_LOCK_WAIT: Duration = Duration::from_secs(300);

/// How often a write that InnoDB rolled back as a deadlock victim is run
/// again (see [`retry_deadlocks`]).
const DEADLOCK_RETRIES: u32 = 5;

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
        let pool = sql::server_pool(options).await?;
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
fn check_len(
    operation: &'static str,
    column: &'static str,
    value: &str,
    max: usize,
) -> Result<(), StoreError> {
    if value.len() > max {
        return Err(StoreError::new(
            operation,
            format!("{column} is longer than {max} bytes"),
        ));
    }
    Ok(())
}

/// Refuses a record whose ids the columns cannot hold (see [`check_len`]).
fn check_ids(operation: &'static str, r: &TokenRecord) -> Result<(), StoreError> {
    check_len(operation, "jti", &r.jti, MAX_JTI_BYTES)?;
    check_len(operation, "user_id", &r.user_id, MAX_USER_ID_BYTES)?;
    if let Some(family_id) = &r.family_id {
        check_len(operation, "family_id", family_id, MAX_FAMILY_ID_BYTES)?;
    }
    if let Some(replaced_by) = &r.replaced_by {
        check_len(operation, "replaced_by", replaced_by, MAX_JTI_BYTES)?;
    }
    Ok(())
}

/// At most `max` bytes of `value`, cut at a character boundary: session
/// metadata longer than the library keeps is cut (the service already does),
/// never refused nor left for the server to cut inside a character.
fn cut(value: &str, max: usize) -> &str {
    let mut end = value.len().min(max);
    while !value.is_char_boundary(end) {
        end -= 1;
    }
    &value[..end]
}

/// The string a VARBINARY column holds, refused if it is not UTF-8.
fn utf8(column: &'static str, bytes: Vec<u8>) -> Result<String, sqlx::Error> {
    String::from_utf8(bytes).map_err(|e| sqlx::Error::ColumnDecode {
        index: column.into(),
        source: e.into(),
    })
}

/// Ids and session fields are VARBINARY here: they decode as UTF-8 bytes.
fn record_from_row(row: &MySqlRow) -> Result<TokenRecord, sqlx::Error> {
    sql::record_from_row(row, utf8)
}

/// Inserts a record whose ids passed [`check_ids`]; `generation` is the
/// user's current cut-off generation (read by the INSERT itself) unless
/// given: a rotation's child inherits its parent's.
async fn insert_record<'e, E>(
    executor: E,
    r: &TokenRecord,
    generation: Option<i64>,
) -> Result<(), sqlx::Error>
where
    E: sqlx::Executor<'e, Database = sqlx::MySql>,
{
    let session = r.session.as_ref();
    sqlx::query(
        "INSERT INTO fastcore_tokens \
         (jti, token_type, user_id, family_id, issued_at, expires_at, revoked_at, \
          consumed_at, replaced_by, session_started_at, user_agent, ip, generation) \
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, COALESCE(?, \
          (SELECT c.generation FROM fastcore_user_cutoffs c WHERE c.user_id = ?), 0))",
    )
    .bind(r.jti.as_bytes())
    .bind(r.token_type.as_str())
    .bind(r.user_id.as_bytes())
    .bind(r.family_id.as_deref().map(str::as_bytes))
    .bind(r.issued_at)
    .bind(r.expires_at)
    .bind(r.revoked_at)
    .bind(r.consumed_at)
    .bind(r.replaced_by.as_deref().map(str::as_bytes))
    .bind(session.map(|s| s.started_at))
    .bind(
        session
            .and_then(|s| s.user_agent.as_deref())
            .map(|ua| cut(ua, MAX_USER_AGENT_BYTES).as_bytes()),
    )
    .bind(
        session
            .and_then(|s| s.ip.as_deref())
            .map(|ip| cut(ip, MAX_IP_BYTES).as_bytes()),
    )
    .bind(generation)
    .bind(r.user_id.as_bytes())
    .execute(executor)
    .await?;
    Ok(())
}

/// A deadlock (SQLSTATE 40001, error 1213): InnoDB rolled the whole
/// transaction back, so running it again is exact.
fn is_deadlock(err: &sqlx::Error) -> bool {
    match err {
        sqlx::Error::Database(db) => db.code().as_deref() == Some("40001"),
        _ => false,
    }
}

/// Runs `attempt` again (a few times, after a short pause) while InnoDB
/// picks it as a deadlock victim. Every write goes through it.
///
/// Under REPEATABLE READ (InnoDB's default) the writes lock more than the
/// rows they change: an UPDATE or DELETE over an index range takes next-key
/// locks (gaps included), and the cut-off subqueries of the writes take
/// shared locks on the user's `fastcore_user_cutoffs` row (or its gap).
/// So cycles arise that no ordering of the statements avoids: a rotation
/// holds its parent row and inserts the child into a gap a `revoke_user`
/// has locked while that waits for the parent; a cut-off's exclusive
/// request on the cut-off row queues behind a rotation's shared lock and
/// ahead of a revocation's; page splits leave gap locks on a page's
/// supremum that two rotations of one parent can deadlock on. InnoDB rolls
/// one side back whole, so running it again is exact.
pub(crate) async fn retry_deadlocks<T, F, Fut>(attempt: F) -> Result<T, sqlx::Error>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, sqlx::Error>>,
{
    sql::retry(DEADLOCK_RETRIES, is_deadlock, attempt).await
}

impl MySqlTokenStore {
    /// One attempt of [`TokenStore::rotate`].
    async fn try_rotate(
        &self,
        parent_jti: &str,
        child: &TokenRecord,
        at: i64,
    ) -> Result<Rotation, sqlx::Error> {
        let mut tx = self.pool.begin().await?;
        // An UPDATE reads the latest committed row under an exclusive row
        // lock, whatever the isolation level: concurrent rotations queue on
        // the parent's lock, and each one after the winner finds it
        // consumed. (The count is of changed rows, and a match always
        // changes consumed_at from NULL.)
        let done = sqlx::query(concat!(
            "UPDATE fastcore_tokens SET consumed_at = ?, replaced_by = ? \
             WHERE jti = ? AND token_type = 'refresh' AND consumed_at IS NULL \
             AND revoked_at IS NULL AND expires_at > ?",
            not_cut_off!()
        ))
        .bind(at)
        .bind(child.jti.as_bytes())
        .bind(parent_jti.as_bytes())
        .bind(at)
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() == 1 {
            // No RETURNING on UPDATE: read the generation back. The row is
            // ours (locked) and its generation never changes.
            let generation: i64 =
                sqlx::query_scalar("SELECT generation FROM fastcore_tokens WHERE jti = ?")
                    .bind(parent_jti.as_bytes())
                    .fetch_one(&mut *tx)
                    .await?;
            insert_record(&mut *tx, child, Some(generation)).await?;
            tx.commit().await?;
            return Ok(Rotation::Rotated);
        }
        tx.rollback().await?;
        // Read outside the transaction: under REPEATABLE READ (InnoDB's
        // default) a read inside it could use a snapshot older than the
        // winner's commit; a statement of its own sees the winner's child.
        let row = sqlx::query(select_record!("WHERE t.jti = ?"))
            .bind(parent_jti.as_bytes())
            .fetch_optional(&self.pool)
            .await?;
        let parent = row.as_ref().map(record_from_row).transpose()?;
        Ok(super::classify_unrotated(parent, at))
    }

    /// Runs a revoking statement (built by `update`, anew for each
    /// attempt) and, if it changed anything, records the change in the
    /// revocation log, in one transaction that [`retry_deadlocks`] runs
    /// again if InnoDB picks it as a deadlock victim. Returns the rows the
    /// statement changed.
    async fn logged<'q>(
        &self,
        update: impl Fn() -> MySqlQuery<'q>,
        kind: &'static str,
        subject: &str,
        at: i64,
    ) -> Result<u64, sqlx::Error> {
        retry_deadlocks(|| async {
            let mut tx = self.pool.begin().await?;
            let changed = update().execute(&mut *tx).await?.rows_affected();
            if changed > 0 {
                log_revocation(&mut tx, kind, subject, at).await?;
            }
            tx.commit().await?;
            Ok(changed)
        })
        .await
    }
}

/// A revoking statement of [`MySqlTokenStore::logged`].
type MySqlQuery<'q> =
    sqlx::query::Query<'q, sqlx::MySql, <sqlx::MySql as sqlx::Database>::Arguments>;

#[async_trait]
impl TokenStore for MySqlTokenStore {
    fn backend(&self) -> &'static str {
        "mysql"
    }

    async fn insert(&self, r: &TokenRecord) -> Result<(), StoreError> {
        check_ids("insert", r)?;
        retry_deadlocks(|| insert_record(&self.pool, r, None))
            .await
            .map_err(|e| StoreError::new("insert", e))
    }

    async fn get(&self, jti: &str) -> Result<Option<TokenRecord>, StoreError> {
        let row = sqlx::query(select_record!("WHERE t.jti = ?"))
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
        let update = || {
            sqlx::query(concat!(
                "UPDATE fastcore_tokens SET revoked_at = ? WHERE jti = ? AND revoked_at IS NULL",
                not_cut_off!()
            ))
            .bind(at)
            .bind(jti.as_bytes())
        };
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
        check_ids("rotate", child)?;
        retry_deadlocks(|| self.try_rotate(parent_jti, child, at))
            .await
            .map_err(|e| StoreError::new("rotate", e))
    }

    async fn cut_off_user(&self, user_id: &str, at: i64) -> Result<(), StoreError> {
        // A user id the column cannot hold has no tokens to cut off (and a
        // non-strict server would cut it to another user's id).
        if user_id.len() > MAX_USER_ID_BYTES {
            return Ok(());
        }
        retry_deadlocks(|| async move {
            let mut tx = self.pool.begin().await?;
            sqlx::query(
                "INSERT INTO fastcore_user_cutoffs (user_id, generation, revoked_at) \
                 VALUES (?, 1, ?) \
                 ON DUPLICATE KEY UPDATE generation = generation + 1, \
                 revoked_at = VALUES(revoked_at)",
            )
            .bind(user_id.as_bytes())
            .bind(at)
            .execute(&mut *tx)
            .await?;
            log_revocation(&mut tx, "cutoff", user_id, at).await?;
            tx.commit().await
        })
        .await
        .map_err(|e| StoreError::new("cut_off_user", e))?;
        Ok(())
    }

    async fn revoke_family(&self, family_id: &str, at: i64) -> Result<u64, StoreError> {
        let update = || {
            sqlx::query(concat!(
                "UPDATE fastcore_tokens SET revoked_at = ? \
                 WHERE family_id = ? AND revoked_at IS NULL",
                not_cut_off!()
            ))
            .bind(at)
            .bind(family_id.as_bytes())
        };
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
        let except_family = except_family.map(str::as_bytes);
        let update = || {
            sqlx::query(concat!(
                "UPDATE fastcore_tokens SET revoked_at = ? \
                 WHERE user_id = ? AND revoked_at IS NULL \
                 AND (? IS NULL OR family_id IS NULL OR family_id <> ?)",
                not_cut_off!()
            ))
            .bind(at)
            .bind(user_id.as_bytes())
            .bind(except_family)
            .bind(except_family)
        };
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
        let done = retry_deadlocks(|| {
            sqlx::query(
                "DELETE FROM fastcore_tokens WHERE expires_at < ? ORDER BY expires_at LIMIT ?",
            )
            .bind(before)
            .bind(batch)
            .execute(&self.pool)
        })
        .await
        .map_err(|e| StoreError::new("purge_expired", e))?;
        // The change log's old entries go too (not counted: not records).
        retry_deadlocks(|| {
            sqlx::query("DELETE FROM fastcore_revocation_log WHERE at < ? ORDER BY at LIMIT ?")
                .bind(before.saturating_sub(LOG_RETENTION_SECS))
                .bind(batch)
                .execute(&self.pool)
        })
        .await
        .map_err(|e| StoreError::new("purge_expired", e))?;
        Ok(done.rows_affected())
    }

    async fn ping(&self) -> Result<(), StoreError> {
        // The table, not `SELECT 1`: a server that answers without it (a
        // dropped table, an empty database restored in its place, revoked
        // grants) fails every request.
        sqlx::query("SELECT 1 FROM fastcore_tokens LIMIT 1")
            .execute(&self.pool)
            .await
            .map_err(|e| StoreError::new("ping", e))?;
        Ok(())
    }

    fn login_throttle(&self) -> Option<std::sync::Arc<dyn crate::throttle::LoginThrottle>> {
        Some(std::sync::Arc::new(
            crate::throttle::mysql::MySqlLoginThrottle::new(self.pool.clone()),
        ))
    }

    fn revocation_feed(&self) -> Option<std::sync::Arc<dyn RevocationFeed>> {
        Some(std::sync::Arc::new(MySqlFeed {
            pool: self.pool.clone(),
        }))
    }
}

/// Records a revocation that changed something in the change log, inside
/// its transaction. The counter's row lock, held to the commit, orders the
/// numbers (see the migration `..._revocation_log`); it is always the last
/// lock the transaction takes, so it adds no deadlock cycle.
async fn log_revocation(
    tx: &mut sqlx::MySqlConnection,
    kind: &'static str,
    subject: &str,
    at: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE fastcore_revocation_seq SET seq = LAST_INSERT_ID(seq + 1) WHERE id = 1")
        .execute(&mut *tx)
        .await?;
    let seq: u64 = sqlx::query_scalar("SELECT LAST_INSERT_ID()")
        .fetch_one(&mut *tx)
        .await?;
    sqlx::query(
        "INSERT IGNORE INTO fastcore_revocation_log (seq, kind, subject, at) VALUES (?, ?, ?, ?)",
    )
    .bind(seq)
    .bind(kind)
    .bind(subject.as_bytes())
    .bind(at)
    .execute(&mut *tx)
    .await?;
    Ok(())
}

/// Rows of (id bytes, number) as (id, number).
fn decode_pairs(rows: Vec<(Vec<u8>, i64)>) -> Result<Vec<(String, i64)>, sqlx::Error> {
    rows.into_iter()
        .map(|(id, n)| Ok((utf8("subject", id)?, n)))
        .collect()
}

/// The MySQL store's revocation feed: polls the change log (MySQL has no
/// notifications).
#[derive(Debug)]
struct MySqlFeed {
    pool: MySqlPool,
}

impl MySqlFeed {
    async fn head(&self) -> Result<i64, sqlx::Error> {
        sqlx::query_scalar("SELECT seq FROM fastcore_revocation_seq WHERE id = 1")
            .fetch_one(&self.pool)
            .await
    }
}

#[async_trait]
impl RevocationFeed for MySqlFeed {
    async fn snapshot(&self, expiring_after: i64) -> Result<RevocationBatch, StoreError> {
        let err = |e| StoreError::new("revocation_snapshot", e);
        // The cursor first: a change committing meanwhile is read again
        // by the next catch-up. (Each statement is its own transaction, so
        // REPEATABLE READ gives each a fresh snapshot.)
        let head = self.head().await.map_err(err)?;
        let tokens: Vec<(Vec<u8>, i64)> = sqlx::query_as(
            "SELECT jti, expires_at FROM fastcore_tokens \
             WHERE expires_at > ? AND revoked_at IS NOT NULL",
        )
        .bind(expiring_after)
        .fetch_all(&self.pool)
        .await
        .map_err(err)?;
        let cutoffs: Vec<(Vec<u8>, i64)> =
            sqlx::query_as("SELECT user_id, revoked_at FROM fastcore_user_cutoffs")
                .fetch_all(&self.pool)
                .await
                .map_err(err)?;
        Ok(batch(
            cursor_of(head),
            decode_pairs(tokens).map_err(err)?,
            decode_pairs(cutoffs).map_err(err)?,
        ))
    }

    async fn changes_since(&self, cursor: u64) -> Result<Option<RevocationBatch>, StoreError> {
        let err = |e| StoreError::new("revocation_changes", e);
        let after = seq_of(cursor);
        let head = self.head().await.map_err(err)?;
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
        let expiring = expiring_after();
        let mut query = sqlx::query_as(
            "SELECT t.jti, t.expires_at FROM fastcore_revocation_log l \
               JOIN fastcore_tokens t ON t.jti = l.subject \
               WHERE l.kind = 'token' AND l.seq > ? AND l.seq <= ? \
               AND t.revoked_at IS NOT NULL AND t.expires_at > ? \
             UNION SELECT t.jti, t.expires_at FROM fastcore_revocation_log l \
               JOIN fastcore_tokens t ON t.family_id = l.subject \
               WHERE l.kind = 'family' AND l.seq > ? AND l.seq <= ? \
               AND t.revoked_at IS NOT NULL AND t.expires_at > ? \
             UNION SELECT t.jti, t.expires_at FROM fastcore_revocation_log l \
               JOIN fastcore_tokens t ON t.user_id = l.subject \
               WHERE l.kind = 'user' AND l.seq > ? AND l.seq <= ? \
               AND t.revoked_at IS NOT NULL AND t.expires_at > ?",
        );
        for _ in 0..3 {
            query = query.bind(after).bind(head).bind(expiring);
        }
        let tokens: Vec<(Vec<u8>, i64)> = query.fetch_all(&self.pool).await.map_err(err)?;
        let cutoffs: Vec<(Vec<u8>, i64)> = sqlx::query_as(
            "SELECT c.user_id, c.revoked_at FROM fastcore_revocation_log l \
             JOIN fastcore_user_cutoffs c ON c.user_id = l.subject \
             WHERE l.kind = 'cutoff' AND l.seq > ? AND l.seq <= ?",
        )
        .bind(after)
        .bind(head)
        .fetch_all(&self.pool)
        .await
        .map_err(err)?;
        Ok(Some(batch(
            cursor_of(head),
            decode_pairs(tokens).map_err(err)?,
            decode_pairs(cutoffs).map_err(err)?,
        )))
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
