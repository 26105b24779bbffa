//! A deadline on every throttle call, as the token store has
//! ([`TimeoutStore`](crate::tokens::store::TimeoutStore)): a login must
//! fail fast (503) when the throttle's store hangs, not wait for it.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;

use super::{LoginThrottle, ThrottleKey, ThrottleWindow};
use crate::error::StoreError;
use crate::metrics::Recorder;

/// Wraps a [`LoginThrottle`] so every call fails with a [`StoreError`]
/// after `timeout`. [`Security`](crate::Security) applies it.
pub(crate) struct TimeoutThrottle {
    inner: Arc<dyn LoginThrottle>,
    timeout: Duration,
    metrics: Recorder,
}

impl TimeoutThrottle {
    pub(crate) fn new(inner: Arc<dyn LoginThrottle>, timeout: Duration, metrics: Recorder) -> Self {
        Self {
            inner,
            timeout,
            metrics,
        }
    }
}

#[derive(Debug, thiserror::Error)]
#[error("the login throttle did not answer within {0:?}")]
struct Elapsed(Duration);

/// Runs `call` within `timeout`, recording its duration and outcome.
async fn bounded<T>(
    metrics: &Recorder,
    operation: &'static str,
    timeout: Duration,
    call: impl Future<Output = Result<T, StoreError>>,
) -> Result<T, StoreError> {
    let started = Instant::now();
    let result = tokio::time::timeout(timeout, call)
        .await
        .unwrap_or_else(|_| Err(StoreError::new(operation, Elapsed(timeout))));
    metrics.store_call(operation, started.elapsed(), result.is_ok());
    result
}

#[async_trait]
impl LoginThrottle for TimeoutThrottle {
    fn backend(&self) -> &'static str {
        self.inner.backend()
    }

    fn is_local(&self) -> bool {
        self.inner.is_local()
    }

    async fn hit(
        &self,
        key: &ThrottleKey,
        window_secs: i64,
        now: i64,
    ) -> Result<ThrottleWindow, StoreError> {
        bounded(
            &self.metrics,
            "throttle_hit",
            self.timeout,
            self.inner.hit(key, window_secs, now),
        )
        .await
    }

    async fn undo(&self, key: &ThrottleKey, window: &ThrottleWindow) -> Result<(), StoreError> {
        bounded(
            &self.metrics,
            "throttle_undo",
            self.timeout,
            self.inner.undo(key, window),
        )
        .await
    }

    async fn reset(&self, key: &ThrottleKey) -> Result<(), StoreError> {
        bounded(
            &self.metrics,
            "throttle_reset",
            self.timeout,
            self.inner.reset(key),
        )
        .await
    }

    async fn purge_expired(&self, now: i64, batch: u32) -> Result<u64, StoreError> {
        let purged = bounded(
            &self.metrics,
            "throttle_purge",
            self.timeout.saturating_mul(6),
            self.inner.purge_expired(now, batch),
        )
        .await?;
        self.metrics.purged("login_throttle_windows", purged);
        Ok(purged)
    }
}
