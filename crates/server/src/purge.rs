//! Deleting the records of expired tokens: the batch loop shared by
//! `token purge` and the background purge of `serve`.
//!
//! Expired records are useless (an expired token never validates) but the
//! SQL stores keep them until they are purged; Redis drops them by itself,
//! so there a purge finds little or nothing. The same goes for the login
//! throttle's ended windows (rows of `fastcore_login_throttle`).

use std::sync::Arc;
use std::time::Duration;

use fastcore_security::{LoginThrottle, StoreError, TokenStore};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::clock;

/// Records deleted per statement unless told otherwise: small enough that
/// one statement holds its locks only briefly.
pub const DEFAULT_PURGE_BATCH: u32 = 1000;

/// A purge that failed part way: how many records went before the error.
#[derive(Debug, thiserror::Error)]
#[error("the purge stopped after deleting {purged} record(s)")]
pub struct PurgeError {
    /// Records deleted before the failure.
    pub purged: u64,
    /// What failed.
    #[source]
    pub source: StoreError,
}

/// Deletes the records of tokens that expired before `cutoff`, `batch` at a
/// time, until a batch comes back short; calls `progress` with the running
/// total after each full batch (when there is more to come). Returns the total.
pub async fn purge_expired(
    store: &dyn TokenStore,
    cutoff: i64,
    batch: u32,
    mut progress: impl FnMut(u64),
) -> Result<u64, PurgeError> {
    let batch = batch.max(1);
    let mut total = 0;
    loop {
        let deleted = store
            .purge_expired(cutoff, batch)
            .await
            .map_err(|source| PurgeError {
                purged: total,
                source,
            })?;
        total += deleted;
        if deleted < u64::from(batch) {
            return Ok(total);
        }
        progress(total);
    }
}

/// Deletes the login throttle's windows that ended before `now`, `batch` at
/// a time, until a batch comes back short. Returns the total.
pub async fn purge_login_throttle(
    throttle: &dyn LoginThrottle,
    now: i64,
    batch: u32,
) -> Result<u64, PurgeError> {
    let batch = batch.max(1);
    let mut total = 0;
    loop {
        let deleted = throttle
            .purge_expired(now, batch)
            .await
            .map_err(|source| PurgeError {
                purged: total,
                source,
            })?;
        total += deleted;
        if deleted < u64::from(batch) {
            return Ok(total);
        }
    }
}

/// Starts `serve`'s background purge: one purge right away, then one every
/// `interval`, until `stop` says `true` (or its sender is dropped). A purge
/// in progress is abandoned at the stop. Each purge deletes the records of
/// expired tokens, then the login throttle's ended windows.
///
/// A failure (the store is down) is logged as a warning and the next
/// interval tries again: the server never stops over it. Each purge logs
/// its count at `info`.
pub fn spawn_background_purge(
    store: Arc<dyn TokenStore>,
    throttle: Arc<dyn LoginThrottle>,
    interval: Duration,
    batch: u32,
    mut stop: watch::Receiver<bool>,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut ticks = tokio::time::interval(interval);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let stopped = |stop: &watch::Receiver<bool>| *stop.borrow();
        loop {
            tokio::select! {
                _ = ticks.tick() => {}
                changed = stop.changed() => {
                    if changed.is_err() || stopped(&stop) {
                        break;
                    }
                    continue;
                }
            }
            let started = std::time::Instant::now();
            let now = clock::now();
            let purge = async {
                let tokens = purge_expired(&*store, now, batch, |_| {}).await?;
                let windows =
                    purge_login_throttle(&*throttle, now, batch)
                        .await
                        .map_err(|err| PurgeError {
                            purged: tokens + err.purged,
                            source: err.source,
                        })?;
                Ok::<_, PurgeError>((tokens, windows))
            };
            let outcome = tokio::select! {
                outcome = purge => outcome,
                changed = stop.changed() => {
                    if changed.is_err() || stopped(&stop) {
                        break;
                    }
                    continue;
                }
            };
            match outcome {
                Ok((purged, throttle_windows)) => tracing::info!(
                    purged,
                    throttle_windows,
                    elapsed_ms = started.elapsed().as_millis(),
                    "purged the records of expired tokens"
                ),
                Err(err) => {
                    let purged = err.purged;
                    tracing::warn!(
                        purged,
                        error = %crate::error_line(&anyhow::Error::new(err)),
                        retry_in_s = interval.as_secs_f64(),
                        "background purge failed; trying again at the next interval"
                    );
                }
            }
        }
        tracing::debug!("background purge stopped");
    })
}
