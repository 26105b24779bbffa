//! A deadline on every store call. Pools bound the wait for a connection,
//! but a query on a connection whose network died mid-flight can hang for
//! minutes; an auth check must fail fast (503) instead.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;

use super::{Rotation, TokenRecord, TokenStore};
use crate::error::StoreError;
use crate::metrics::Recorder;
use crate::throttle::LoginThrottle;

/// Wraps a [`TokenStore`] so every call fails with a [`StoreError`] after
/// `timeout`. [`Security`](crate::Security) applies it to its store.
#[derive(Clone)]
pub(crate) struct TimeoutStore {
    inner: Arc<dyn TokenStore>,
    timeout: Duration,
    metrics: Recorder,
}

impl TimeoutStore {
    pub(crate) fn new(inner: Arc<dyn TokenStore>, timeout: Duration, metrics: Recorder) -> Self {
        Self {
            inner,
            timeout,
            metrics,
        }
    }
}

#[derive(Debug, thiserror::Error)]
#[error("the store did not answer within {0:?}")]
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
impl TokenStore for TimeoutStore {
    fn backend(&self) -> &'static str {
        self.inner.backend()
    }

    async fn insert(&self, record: &TokenRecord) -> Result<(), StoreError> {
        bounded(
            &self.metrics,
            "insert",
            self.timeout,
            self.inner.insert(record),
        )
        .await
    }

    async fn get(&self, jti: &str) -> Result<Option<TokenRecord>, StoreError> {
        bounded(&self.metrics, "get", self.timeout, self.inner.get(jti)).await
    }

    async fn revoke(&self, jti: &str, at: i64) -> Result<bool, StoreError> {
        bounded(
            &self.metrics,
            "revoke",
            self.timeout,
            self.inner.revoke(jti, at),
        )
        .await
    }

    async fn rotate(
        &self,
        parent_jti: &str,
        child: &TokenRecord,
        at: i64,
    ) -> Result<Rotation, StoreError> {
        bounded(
            &self.metrics,
            "rotate",
            self.timeout,
            self.inner.rotate(parent_jti, child, at),
        )
        .await
    }

    async fn cut_off_user(&self, user_id: &str, at: i64) -> Result<(), StoreError> {
        bounded(
            &self.metrics,
            "cut_off_user",
            self.timeout,
            self.inner.cut_off_user(user_id, at),
        )
        .await
    }

    async fn revoke_family(&self, family_id: &str, at: i64) -> Result<u64, StoreError> {
        bounded(
            &self.metrics,
            "revoke_family",
            self.timeout,
            self.inner.revoke_family(family_id, at),
        )
        .await
    }

    async fn revoke_user(
        &self,
        user_id: &str,
        except_family: Option<&str>,
        at: i64,
    ) -> Result<u64, StoreError> {
        bounded(
            &self.metrics,
            "revoke_user",
            self.timeout,
            self.inner.revoke_user(user_id, except_family, at),
        )
        .await
    }

    async fn list_live(&self, user_id: &str, now: i64) -> Result<Vec<TokenRecord>, StoreError> {
        bounded(
            &self.metrics,
            "list_live",
            self.timeout,
            self.inner.list_live(user_id, now),
        )
        .await
    }

    async fn purge_expired(&self, before: i64, batch: u32) -> Result<u64, StoreError> {
        // A purge batch is bulk work; give it more room than a request lookup.
        let purged = bounded(
            &self.metrics,
            "purge_expired",
            self.timeout.saturating_mul(6),
            self.inner.purge_expired(before, batch),
        )
        .await?;
        self.metrics.purged("tokens", purged);
        Ok(purged)
    }

    async fn ping(&self) -> Result<(), StoreError> {
        bounded(&self.metrics, "ping", self.timeout, self.inner.ping()).await
    }

    fn login_throttle(&self) -> Option<Arc<dyn LoginThrottle>> {
        self.inner.login_throttle()
    }

    fn revocation_feed(&self) -> Option<Arc<dyn crate::tokens::feed::RevocationFeed>> {
        // The sync task bounds each feed call itself.
        self.inner.revocation_feed()
    }
}
