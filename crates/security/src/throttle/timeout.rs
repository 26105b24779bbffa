//! A deadline on every throttle call, as the token store has
//! ([`TimeoutStore`](crate::tokens::store::TimeoutStore)): a login must
//! fail fast (503) when the throttle's store hangs, not wait for it.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use super::{LoginThrottle, ThrottleKey, ThrottleWindow};
use crate::error::StoreError;

/// Wraps a [`LoginThrottle`] so every call fails with a [`StoreError`]
/// after `timeout`. [`Security`](crate::Security) applies it.
pub(crate) struct TimeoutThrottle {
    inner: Arc<dyn LoginThrottle>,
    timeout: Duration,
}

impl TimeoutThrottle {
    pub(crate) fn new(inner: Arc<dyn LoginThrottle>, timeout: Duration) -> Self {
        Self { inner, timeout }
    }
}

#[derive(Debug, thiserror::Error)]
#[error("the login throttle did not answer within {0:?}")]
struct Elapsed(Duration);

async fn bounded<T>(
    operation: &'static str,
    timeout: Duration,
    call: impl Future<Output = Result<T, StoreError>>,
) -> Result<T, StoreError> {
    tokio::time::timeout(timeout, call)
        .await
        .unwrap_or_else(|_| Err(StoreError::new(operation, Elapsed(timeout))))
}

#[async_trait]
impl LoginThrottle for TimeoutThrottle {
    fn backend(&self) -> &'static str {
        self.inner.backend()
    }

    async fn hit(
        &self,
        key: &ThrottleKey,
        window_secs: i64,
        now: i64,
    ) -> Result<ThrottleWindow, StoreError> {
        bounded(
            "throttle_hit",
            self.timeout,
            self.inner.hit(key, window_secs, now),
        )
        .await
    }

    async fn undo(&self, key: &ThrottleKey, window: &ThrottleWindow) -> Result<(), StoreError> {
        bounded("throttle_undo", self.timeout, self.inner.undo(key, window)).await
    }

    async fn reset(&self, key: &ThrottleKey) -> Result<(), StoreError> {
        bounded("throttle_reset", self.timeout, self.inner.reset(key)).await
    }

    async fn purge_expired(&self, now: i64, batch: u32) -> Result<u64, StoreError> {
        bounded(
            "throttle_purge",
            self.timeout.saturating_mul(6),
            self.inner.purge_expired(now, batch),
        )
        .await
    }
}
