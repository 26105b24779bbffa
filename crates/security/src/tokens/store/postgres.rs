//! PostgreSQL backend: the store that several app instances share.

use std::str::FromStr;

use async_trait::async_trait;
use sqlx::migrate::Migrator;
use sqlx::postgres::{PgConnectOptions, PgPool, PgRow};

use super::sql::{self, not_cut_off, select_record};
use super::{MIGRATIONS_TABLE, Rotation, TokenRecord, TokenStore};
use crate::error::{Error, Result, StoreError};
use crate::tokens::feed::{
    LOG_RETENTION_SECS, RevocationBatch, RevocationFeed, batch, cursor_of, expiring_after,
    log_covers, no_changes, seq_of,
};

/// The channel revocations are signalled on (`pg_notify` at commit), as an
/// SQL expression: one channel per schema, so deployments that share a
/// database in schemas of their own do not wake each other's instances.
/// The schema goes in as its MD5: a channel name is at most 63 bytes.
macro_rules! channel {
    () => {
        "'fastcore_revocations_' || md5(COALESCE(current_schema(), ''))"
    };
}

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
        let pool = sql::server_pool(options).await?;
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

/// How often [`TokenStore::rotate`] retries a transaction the server
/// aborted as a deadlock or serialisation failure.
const ROTATE_RETRIES: u32 = 5;

/// Ids are TEXT here: they decode as they are.
fn record_from_row(row: &PgRow) -> Result<TokenRecord, sqlx::Error> {
    sql::record_from_row(row, sql::as_text)
}

/// Inserts a record; `generation` is the user's current cut-off generation
/// (read by the INSERT itself) unless given: a rotation's child inherits
/// its parent's.
async fn insert_record<'e, E>(
    executor: E,
    r: &TokenRecord,
    generation: Option<i64>,
) -> Result<(), sqlx::Error>
where
    E: sqlx::Executor<'e, Database = sqlx::Postgres>,
{
    let session = r.session.as_ref();
    sqlx::query(
        "INSERT INTO fastcore_tokens \
         (jti, token_type, user_id, family_id, issued_at, expires_at, revoked_at, \
          consumed_at, replaced_by, session_started_at, user_agent, ip, generation) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, COALESCE($13, \
          (SELECT c.generation FROM fastcore_user_cutoffs c WHERE c.user_id = $3), 0))",
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
    .execute(executor)
    .await?;
    Ok(())
}

/// Counts the rows a revocation changed (their `replaced_by`) and gives the
/// successors to revoke next, if any.
///
/// Under READ COMMITTED a revocation's UPDATE sees the rows of its snapshot
/// only. A rotation that commits meanwhile consumes its parent and inserts
/// the child; the UPDATE, blocked on the parent's row lock, re-checks the
/// parent's new version and revokes it, but never sees the child, so the
/// session would go on from it. The returned `replaced_by`s name those
/// children, committed before the UPDATE took the parent's lock: the next
/// statement (a new snapshot) sees them, and so on until it revokes a
/// token that was not consumed, which no rotation can consume afterwards.
fn successors(count: &mut u64, changed: Vec<Option<String>>) -> Option<Vec<String>> {
    *count += changed.len() as u64;
    let next: Vec<String> = changed.into_iter().flatten().collect();
    (!next.is_empty()).then_some(next)
}

/// A deadlock or serialisation failure: the server rolled the transaction
/// back, and running it again is safe.
fn is_retryable(err: &sqlx::Error) -> bool {
    match err {
        sqlx::Error::Database(db) => matches!(db.code().as_deref(), Some("40001" | "40P01")),
        _ => false,
    }
}

impl PostgresTokenStore {
    /// One attempt of [`TokenStore::rotate`].
    async fn try_rotate(
        &self,
        parent_jti: &str,
        child: &TokenRecord,
        at: i64,
    ) -> Result<Rotation, sqlx::Error> {
        // READ COMMITTED whatever the server's default: a rotation blocked
        // on the parent's row lock re-checks the WHERE against the winner's
        // committed row, finds it consumed and changes nothing (instead of
        // failing to serialise), and the read below sees the winner's child.
        let mut tx = self
            .pool
            .begin_with("BEGIN ISOLATION LEVEL READ COMMITTED")
            .await?;
        let won: Option<i64> = sqlx::query_scalar(concat!(
            "UPDATE fastcore_tokens SET consumed_at = $1, replaced_by = $2 \
             WHERE jti = $3 AND token_type = 'refresh' AND consumed_at IS NULL \
             AND revoked_at IS NULL AND expires_at > $1",
            not_cut_off!(),
            " RETURNING generation"
        ))
        .bind(at)
        .bind(&child.jti)
        .bind(parent_jti)
        .fetch_optional(&mut *tx)
        .await?;
        if let Some(generation) = won {
            insert_record(&mut *tx, child, Some(generation)).await?;
            tx.commit().await?;
            return Ok(Rotation::Rotated);
        }
        let row = sqlx::query(select_record!("WHERE t.jti = $1"))
            .bind(parent_jti)
            .fetch_optional(&mut *tx)
            .await?;
        tx.rollback().await?;
        let parent = row.as_ref().map(record_from_row).transpose()?;
        Ok(super::classify_unrotated(parent, at))
    }

    /// Revokes a group of tokens (a session's, a user's) in one
    /// transaction, shared by `revoke_family` and `revoke_user`:
    /// `update(None)` revokes the group, `update(Some(jtis))` the tokens
    /// `jtis` of the group, and both return the changed rows'
    /// `replaced_by`, whose [`successors`] are revoked next until none is
    /// left. Logs the revocation if it changed anything; returns how many
    /// rows changed.
    async fn revoke_chasing<'q>(
        &self,
        operation: &'static str,
        kind: &'static str,
        subject: &str,
        at: i64,
        update: impl Fn(Option<Vec<String>>) -> PgUpdate<'q>,
    ) -> Result<u64, StoreError> {
        let err = |e| StoreError::new(operation, e);
        let mut tx = self.pool.begin().await.map_err(err)?;
        let mut changed = update(None).fetch_all(&mut *tx).await.map_err(err)?;
        // See `successors`: the children of tokens a rotation consumed while
        // this ran, which the UPDATE's snapshot did not contain.
        let mut count = 0;
        while let Some(next) = successors(&mut count, changed) {
            changed = update(Some(next)).fetch_all(&mut *tx).await.map_err(err)?;
        }
        if count > 0 {
            log_revocation(&mut tx, kind, subject, at)
                .await
                .map_err(err)?;
        }
        tx.commit().await.map_err(err)?;
        Ok(count)
    }
}

/// A revoking UPDATE of [`PostgresTokenStore::revoke_chasing`]: it returns
/// the changed rows' `replaced_by`.
type PgUpdate<'q> = sqlx::query::QueryScalar<
    'q,
    sqlx::Postgres,
    Option<String>,
    <sqlx::Postgres as sqlx::Database>::Arguments,
>;

#[async_trait]
impl TokenStore for PostgresTokenStore {
    fn backend(&self) -> &'static str {
        "postgres"
    }

    async fn insert(&self, r: &TokenRecord) -> Result<(), StoreError> {
        insert_record(&self.pool, r, None)
            .await
            .map_err(|e| StoreError::new("insert", e))
    }

    async fn get(&self, jti: &str) -> Result<Option<TokenRecord>, StoreError> {
        let row = sqlx::query(select_record!("WHERE t.jti = $1"))
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
        let err = |e| StoreError::new("revoke", e);
        let mut tx = self.pool.begin().await.map_err(err)?;
        let done = sqlx::query(concat!(
            "UPDATE fastcore_tokens SET revoked_at = $1 WHERE jti = $2 AND revoked_at IS NULL",
            not_cut_off!()
        ))
        .bind(at)
        .bind(jti)
        .execute(&mut *tx)
        .await
        .map_err(err)?;
        let changed = done.rows_affected() > 0;
        if changed {
            log_revocation(&mut tx, "token", jti, at)
                .await
                .map_err(err)?;
        }
        tx.commit().await.map_err(err)?;
        Ok(changed)
    }

    async fn rotate(
        &self,
        parent_jti: &str,
        child: &TokenRecord,
        at: i64,
    ) -> Result<Rotation, StoreError> {
        sql::retry(ROTATE_RETRIES, is_retryable, || {
            self.try_rotate(parent_jti, child, at)
        })
        .await
        .map_err(|e| StoreError::new("rotate", e))
    }

    async fn cut_off_user(&self, user_id: &str, at: i64) -> Result<(), StoreError> {
        let err = |e| StoreError::new("cut_off_user", e);
        let mut tx = self.pool.begin().await.map_err(err)?;
        sqlx::query(
            "INSERT INTO fastcore_user_cutoffs (user_id, generation, revoked_at) \
             VALUES ($1, 1, $2) \
             ON CONFLICT (user_id) DO UPDATE SET \
             generation = fastcore_user_cutoffs.generation + 1, \
             revoked_at = EXCLUDED.revoked_at",
        )
        .bind(user_id)
        .bind(at)
        .execute(&mut *tx)
        .await
        .map_err(err)?;
        log_revocation(&mut tx, "cutoff", user_id, at)
            .await
            .map_err(err)?;
        tx.commit().await.map_err(err)?;
        Ok(())
    }

    async fn revoke_family(&self, family_id: &str, at: i64) -> Result<u64, StoreError> {
        self.revoke_chasing(
            "revoke_family",
            "family",
            family_id,
            at,
            |next| match next {
                None => sqlx::query_scalar(concat!(
                    "UPDATE fastcore_tokens SET revoked_at = $1 \
                 WHERE family_id = $2 AND revoked_at IS NULL",
                    not_cut_off!(),
                    " RETURNING replaced_by"
                ))
                .bind(at)
                .bind(family_id),
                Some(next) => sqlx::query_scalar(concat!(
                    "UPDATE fastcore_tokens SET revoked_at = $1 \
                 WHERE jti = ANY($3) AND family_id = $2 AND revoked_at IS NULL",
                    not_cut_off!(),
                    " RETURNING replaced_by"
                ))
                .bind(at)
                .bind(family_id)
                .bind(next),
            },
        )
        .await
    }

    async fn revoke_user(
        &self,
        user_id: &str,
        except_family: Option<&str>,
        at: i64,
    ) -> Result<u64, StoreError> {
        self.revoke_chasing("revoke_user", "user", user_id, at, |next| match next {
            None => sqlx::query_scalar(concat!(
                "UPDATE fastcore_tokens SET revoked_at = $1 \
                 WHERE user_id = $2 AND revoked_at IS NULL \
                 AND ($3::text IS NULL OR family_id IS NULL OR family_id <> $3)",
                not_cut_off!(),
                " RETURNING replaced_by"
            ))
            .bind(at)
            .bind(user_id)
            .bind(except_family),
            Some(next) => sqlx::query_scalar(concat!(
                "UPDATE fastcore_tokens SET revoked_at = $1 \
                 WHERE jti = ANY($4) AND user_id = $2 AND revoked_at IS NULL \
                 AND ($3::text IS NULL OR family_id IS NULL OR family_id <> $3)",
                not_cut_off!(),
                " RETURNING replaced_by"
            ))
            .bind(at)
            .bind(user_id)
            .bind(except_family)
            .bind(next),
        })
        .await
    }

    async fn list_live(&self, user_id: &str, now: i64) -> Result<Vec<TokenRecord>, StoreError> {
        let rows = sqlx::query(select_record!(
            "WHERE t.user_id = $1 AND t.revoked_at IS NULL \
             AND t.consumed_at IS NULL AND t.expires_at > $2 \
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
        // The change log's old entries go too (not counted: not records).
        sqlx::query(
            "DELETE FROM fastcore_revocation_log WHERE seq IN \
             (SELECT seq FROM fastcore_revocation_log WHERE at < $1 LIMIT $2)",
        )
        .bind(before.saturating_sub(LOG_RETENTION_SECS))
        .bind(i64::from(batch))
        .execute(&self.pool)
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
            crate::throttle::postgres::PostgresLoginThrottle::new(self.pool.clone()),
        ))
    }

    fn revocation_feed(&self) -> Option<std::sync::Arc<dyn RevocationFeed>> {
        Some(std::sync::Arc::new(PostgresFeed {
            pool: self.pool.clone(),
        }))
    }
}

/// Records a revocation that changed something in the change log, inside
/// its transaction, and signals it (delivered at commit). The counter's row
/// lock, held to the commit, orders the numbers (see the migration
/// `..._revocation_log`).
async fn log_revocation(
    tx: &mut sqlx::PgConnection,
    kind: &'static str,
    subject: &str,
    at: i64,
) -> Result<(), sqlx::Error> {
    let seq: i64 = sqlx::query_scalar(
        "UPDATE fastcore_revocation_seq SET seq = seq + 1 WHERE id = 1 RETURNING seq",
    )
    .fetch_one(&mut *tx)
    .await?;
    sqlx::query(
        "INSERT INTO fastcore_revocation_log (seq, kind, subject, at) VALUES ($1, $2, $3, $4) \
         ON CONFLICT DO NOTHING",
    )
    .bind(seq)
    .bind(kind)
    .bind(subject)
    .bind(at)
    .execute(&mut *tx)
    .await?;
    sqlx::query(concat!("SELECT pg_notify(", channel!(), ", '')"))
        .execute(&mut *tx)
        .await?;
    Ok(())
}

/// The PostgreSQL store's revocation feed: the change log, read on each
/// `NOTIFY` and at every poll.
#[derive(Debug)]
struct PostgresFeed {
    pool: PgPool,
}

#[async_trait]
impl RevocationFeed for PostgresFeed {
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
             WHERE expires_at > $1 AND revoked_at IS NOT NULL",
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
            sqlx::query_scalar("SELECT MIN(seq) FROM fastcore_revocation_log WHERE seq > $1")
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
               WHERE l.kind = 'token' AND l.seq > $1 AND l.seq <= $2 \
               AND t.revoked_at IS NOT NULL AND t.expires_at > $3 \
             UNION SELECT t.jti, t.expires_at FROM fastcore_revocation_log l \
               JOIN fastcore_tokens t ON t.family_id = l.subject \
               WHERE l.kind = 'family' AND l.seq > $1 AND l.seq <= $2 \
               AND t.revoked_at IS NOT NULL AND t.expires_at > $3 \
             UNION SELECT t.jti, t.expires_at FROM fastcore_revocation_log l \
               JOIN fastcore_tokens t ON t.user_id = l.subject \
               WHERE l.kind = 'user' AND l.seq > $1 AND l.seq <= $2 \
               AND t.revoked_at IS NOT NULL AND t.expires_at > $3",
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
             WHERE l.kind = 'cutoff' AND l.seq > $1 AND l.seq <= $2",
        )
        .bind(after)
        .bind(head)
        .fetch_all(&self.pool)
        .await
        .map_err(err)?;
        Ok(Some(batch(cursor_of(head), tokens, cutoffs)))
    }

    async fn subscribe(&self) -> Result<Option<tokio::sync::mpsc::Receiver<()>>, StoreError> {
        let err = |e| StoreError::new("revocation_subscribe", e);
        let mut listener = sqlx::postgres::PgListener::connect_with(&self.pool)
            .await
            .map_err(err)?;
        // A lost connection must end the subscription (so the reader
        // reloads what it missed), not be replaced silently.
        listener.eager_reconnect(false);
        // Asked on the listener's own connection: its `search_path` is the
        // one the store's connections have.
        let channel: String = sqlx::query_scalar(concat!("SELECT ", channel!()))
            .fetch_one(&mut listener)
            .await
            .map_err(err)?;
        listener.listen(&channel).await.map_err(err)?;
        let (tx, rx) = tokio::sync::mpsc::channel(1);
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    received = listener.try_recv() => match received {
                        Ok(Some(_)) => {
                            // Full: a wake-up is pending already.
                            let _ = tx.try_send(());
                        }
                        // Lost, or failed: dropping `tx` tells the reader.
                        Ok(None) | Err(_) => return,
                    },
                    () = tx.closed() => return,
                }
            }
        });
        Ok(Some(rx))
    }
}
