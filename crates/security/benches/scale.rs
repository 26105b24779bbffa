//! Scale on SQLite (the default store): validating a token with 1 thousand
//! and with 1 million live token records in the store, strict and synced
//! (criterion), then the time to purge 1 million expired records in the
//! server's default batches of 1000, and in batches of 10 000 (printed,
//! one run each).
//!
//! Records are bulk-inserted with one SQL statement (what matters is how
//! many rows the store holds, not how they got there), with random
//! 128-bit hex `jti`s like the uuids the library issues (their order is
//! what makes deletion costly: see BENCHMARKS.md).
//!
//! Run: `cargo bench -p fastcore-security --bench scale`
//! (`BENCH_SCALE_N=100000` for a smaller "large" store).

#![allow(missing_docs, clippy::unwrap_used)]

mod support;

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use fastcore_security::{Security, SqliteTokenStore, TokenStore, TokenType, ValidationMode};

use support::config;

/// The server's purge batch (`--purge-batch`, default 1000).
const PURGE_BATCH: u32 = 1000;

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// A migrated SQLite store in `dir` holding `n` access-token records
/// expiring at `expires_at`, spread over 10 000 users.
async fn store_with(dir: &std::path::Path, n: u64, expires_at: i64) -> SqliteTokenStore {
    let url = format!("sqlite://{}", dir.join("tokens.db").display());
    let store = SqliteTokenStore::connect(&url).await.unwrap();
    store.migrate().await.unwrap();
    sqlx::query(
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ?) \
         INSERT INTO fastcore_tokens (jti, token_type, user_id, issued_at, expires_at) \
         SELECT lower(hex(randomblob(16))), 'access', 'user-' || (i % 10000), ?, ? FROM n",
    )
    .bind(i64::try_from(n).unwrap())
    .bind(now() - 60)
    .bind(expires_at)
    .execute(store.pool())
    .await
    .unwrap();
    store
}

fn scale(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let large: u64 = std::env::var("BENCH_SCALE_N")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);

    let mut group = c.benchmark_group("scale");
    for n in [1_000, large] {
        let dir = tempfile::tempdir().unwrap();
        let (strict, synced, token) = runtime.block_on(async {
            let store: Arc<dyn TokenStore> =
                Arc::new(store_with(dir.path(), n, now() + 3_600).await);
            let strict = Security::new(config(ValidationMode::Strict), store.clone()).unwrap();
            let synced = Security::new(config(ValidationMode::Synced), store).unwrap();
            let token = strict.create_access_token("42", None).await.unwrap().token;
            while synced.revocation_view_synced() != Some(true) {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            synced
                .validate_token(&token, Some(TokenType::Access))
                .await
                .unwrap();
            (strict, synced, token)
        });
        group.bench_function(format!("strict_sqlite_{n}_live"), |b| {
            b.to_async(&runtime).iter(|| async {
                strict
                    .validate_token(black_box(&token), Some(TokenType::Access))
                    .await
                    .unwrap()
            });
        });
        group.bench_function(format!("synced_sqlite_{n}_live"), |b| {
            b.to_async(&runtime).iter(|| async {
                synced
                    .validate_token(black_box(&token), Some(TokenType::Access))
                    .await
                    .unwrap()
            });
        });
        runtime.block_on(async move { drop((strict, synced)) });
        drop(dir);
    }
    group.finish();

    // Purge: `large` expired records, deleted as the server's background
    // purge and `token purge` do.
    for batch in [PURGE_BATCH, 10 * PURGE_BATCH] {
        purge(&runtime, large, batch);
    }
}

fn purge(runtime: &tokio::runtime::Runtime, large: u64, batch: u32) {
    let dir = tempfile::tempdir().unwrap();
    runtime.block_on(async {
        let store = store_with(dir.path(), large, now() - 3_600).await;
        let start = Instant::now();
        let mut purged = 0;
        loop {
            let n = store.purge_expired(now(), batch).await.unwrap();
            if n == 0 {
                break;
            }
            purged += n;
        }
        let took = start.elapsed();
        assert_eq!(purged, large);
        println!(
            "scale/purge_sqlite_{large}_expired: {purged} records in {:.2} s ({:.0} records/s, batches of {batch})",
            took.as_secs_f64(),
            purged as f64 / took.as_secs_f64()
        );
    });
}

criterion_group!(benches, scale);
criterion_main!(benches);
