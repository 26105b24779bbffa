//! The login throttle on MySQL/MariaDB: the table `fastcore_login_throttle`,
//! next to the token store's tables (created by its migrations).

use async_trait::async_trait;
use sqlx::mysql::MySqlPool;

use super::{LoginThrottle, ThrottleKey, ThrottleWindow};
use crate::error::StoreError;
use crate::tokens::store::retry_deadlocks;

/// Counts in the token store's MySQL/MariaDB database, shared by every
/// instance on it.
#[derive(Debug, Clone)]
pub(crate) struct MySqlLoginThrottle {
    pool: MySqlPool,
}

impl MySqlLoginThrottle {
    pub(crate) fn new(pool: MySqlPool) -> Self {
        Self { pool }
    }

    /// One attempt of [`LoginThrottle::hit`]: the upsert, then the row it
    /// left, read in the same transaction under the upsert's row lock.
    async fn try_hit(
        &self,
        key: &ThrottleKey,
        window_secs: i64,
        now: i64,
    ) -> Result<(i64, i64), sqlx::Error> {
        let mut tx = self.pool.begin().await?;
        // MySQL applies the assignments left to right, each seeing the
        // ones before it: `attempts` is computed first, from the old
        // `window_ends_at`, which its own assignment then reads as well.
        sqlx::query(
            "INSERT INTO fastcore_login_throttle (throttle_key, attempts, window_ends_at) \
             VALUES (?, 1, ?) \
             ON DUPLICATE KEY UPDATE \
             attempts = IF(window_ends_at <= ?, 1, attempts + 1), \
             window_ends_at = IF(window_ends_at <= ?, ?, window_ends_at)",
        )
        .bind(key.as_str())
        .bind(now.saturating_add(window_secs))
        .bind(now)
        .bind(now)
        .bind(now.saturating_add(window_secs))
        .execute(&mut *tx)
        .await?;
        let row: (i64, i64) = sqlx::query_as(
            "SELECT attempts, window_ends_at FROM fastcore_login_throttle WHERE throttle_key = ?",
        )
        .bind(key.as_str())
        .fetch_one(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(row)
    }
}

#[async_trait]
impl LoginThrottle for MySqlLoginThrottle {
    fn backend(&self) -> &'static str {
        "mysql"
    }

    async fn hit(
        &self,
        key: &ThrottleKey,
        window_secs: i64,
        now: i64,
    ) -> Result<ThrottleWindow, StoreError> {
        // Concurrent upserts of a new key can deadlock on InnoDB's gap
        // locks; the victim rolled back whole and runs again.
        let (attempts, ends_at) = retry_deadlocks(|| self.try_hit(key, window_secs, now))
            .await
            .map_err(|e| StoreError::new("throttle_hit", e))?;
        Ok(ThrottleWindow::from_stored(attempts, ends_at))
    }

    async fn undo(&self, key: &ThrottleKey, window: &ThrottleWindow) -> Result<(), StoreError> {
        retry_deadlocks(|| {
            sqlx::query(
                "UPDATE fastcore_login_throttle SET attempts = attempts - 1 \
                 WHERE throttle_key = ? AND window_ends_at = ? AND attempts > 0",
            )
            .bind(key.as_str())
            .bind(window.ends_at)
            .execute(&self.pool)
        })
        .await
        .map_err(|e| StoreError::new("throttle_undo", e))?;
        Ok(())
    }

    async fn reset(&self, key: &ThrottleKey) -> Result<(), StoreError> {
        retry_deadlocks(|| {
            sqlx::query("DELETE FROM fastcore_login_throttle WHERE throttle_key = ?")
                .bind(key.as_str())
                .execute(&self.pool)
        })
        .await
        .map_err(|e| StoreError::new("throttle_reset", e))?;
        Ok(())
    }

    async fn purge_expired(&self, now: i64, batch: u32) -> Result<u64, StoreError> {
        let done = retry_deadlocks(|| {
            sqlx::query("DELETE FROM fastcore_login_throttle WHERE window_ends_at <= ? LIMIT ?")
                .bind(now)
                .bind(batch)
                .execute(&self.pool)
        })
        .await
        .map_err(|e| StoreError::new("throttle_purge", e))?;
        Ok(done.rows_affected())
    }
}
