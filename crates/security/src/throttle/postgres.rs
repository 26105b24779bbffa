//! The login throttle on PostgreSQL: the table `fastcore_login_throttle`,
//! next to the token store's tables (created by its migrations).

use async_trait::async_trait;
use sqlx::postgres::PgPool;

use super::{LoginThrottle, ThrottleKey, ThrottleWindow};
use crate::error::StoreError;

/// Counts in the token store's PostgreSQL database, shared by every
/// instance on it.
#[derive(Debug, Clone)]
pub(crate) struct PostgresLoginThrottle {
    pool: PgPool,
}

impl PostgresLoginThrottle {
    pub(crate) fn new(pool: PgPool) -> Self {
        Self { pool }
    }
}

#[async_trait]
impl LoginThrottle for PostgresLoginThrottle {
    fn backend(&self) -> &'static str {
        "postgres"
    }

    async fn hit(
        &self,
        key: &ThrottleKey,
        window_secs: i64,
        now: i64,
    ) -> Result<ThrottleWindow, StoreError> {
        // The upsert locks the row: concurrent hits on one key queue, and
        // each sees the count the one before it left.
        let (attempts, ends_at): (i64, i64) = sqlx::query_as(
            "INSERT INTO fastcore_login_throttle AS t (throttle_key, attempts, window_ends_at) \
             VALUES ($1, 1, $2 + $3) \
             ON CONFLICT (throttle_key) DO UPDATE SET \
             attempts = CASE WHEN t.window_ends_at <= $2 THEN 1 ELSE t.attempts + 1 END, \
             window_ends_at = CASE WHEN t.window_ends_at <= $2 THEN $2 + $3 \
             ELSE t.window_ends_at END \
             RETURNING attempts, window_ends_at",
        )
        .bind(key.as_str())
        .bind(now)
        .bind(window_secs)
        .fetch_one(&self.pool)
        .await
        .map_err(|e| StoreError::new("throttle_hit", e))?;
        Ok(ThrottleWindow::from_stored(attempts, ends_at))
    }

    async fn undo(&self, key: &ThrottleKey, window: &ThrottleWindow) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE fastcore_login_throttle SET attempts = attempts - 1 \
             WHERE throttle_key = $1 AND window_ends_at = $2 AND attempts > 0",
        )
        .bind(key.as_str())
        .bind(window.ends_at)
        .execute(&self.pool)
        .await
        .map_err(|e| StoreError::new("throttle_undo", e))?;
        Ok(())
    }

    async fn reset(&self, key: &ThrottleKey) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM fastcore_login_throttle WHERE throttle_key = $1")
            .bind(key.as_str())
            .execute(&self.pool)
            .await
            .map_err(|e| StoreError::new("throttle_reset", e))?;
        Ok(())
    }

    async fn purge_expired(&self, now: i64, batch: u32) -> Result<u64, StoreError> {
        // SKIP LOCKED: instances purging at once take different rows, and
        // a purge never waits on a login's row lock.
        let done = sqlx::query(
            "DELETE FROM fastcore_login_throttle WHERE throttle_key IN \
             (SELECT throttle_key FROM fastcore_login_throttle WHERE window_ends_at <= $1 \
              LIMIT $2 FOR UPDATE SKIP LOCKED)",
        )
        .bind(now)
        .bind(i64::from(batch))
        .execute(&self.pool)
        .await
        .map_err(|e| StoreError::new("throttle_purge", e))?;
        Ok(done.rows_affected())
    }
}
