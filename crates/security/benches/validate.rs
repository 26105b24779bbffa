//! Token validation, one token at a time on a Tokio runtime:
//!
//! - `encode`: signing an access token's claims (HS256), no store;
//! - `stateless`: signature and claims only ([`Security::validate_jwt_stateless`]);
//! - `strict_memory`: strict mode on the memory store;
//! - `strict_<backend>`: strict mode, a store read per request;
//! - `synced_<backend>`: synced mode on the same store, the token already
//!   seen once (the usual case): signature plus hash lookups, with 1000
//!   other revocations in the view.
//!
//! Backends: SQLite (a file, WAL), and with their features PostgreSQL,
//! MariaDB/MySQL and Redis on the test servers (the integration tests'
//! `FASTCORE_TEST_*` URLs, defaults on 127.0.0.1); one whose server is down
//! is skipped with a message. `BENCH_BACKENDS=sqlite,redis` picks some.
//!
//! Run: `cargo bench -p fastcore-security --all-features --bench validate`
//! (`-- --quick` for a quick look).

#![allow(missing_docs, clippy::unwrap_used)]

mod support;

use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use fastcore_security::{MemoryTokenStore, Security, TokenType, ValidationMode};

use support::config;

fn validate(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let only = std::env::var("BENCH_BACKENDS").ok();
    let (memory, memory_token) = runtime.block_on(async {
        let memory = Security::new(
            config(ValidationMode::Strict),
            Arc::new(MemoryTokenStore::new()),
        )
        .unwrap();
        let token = memory.create_access_token("42", None).await.unwrap().token;
        (memory, token)
    });
    let claims = memory.decode_token(&memory_token).unwrap();

    let mut group = c.benchmark_group("validate");
    group.bench_function("encode", |b| {
        b.iter(|| memory.encode_jwt(black_box(&claims)).unwrap());
    });
    group.bench_function("stateless", |b| {
        b.iter(|| {
            memory
                .validate_jwt_stateless(black_box(&memory_token), Some(TokenType::Access))
                .unwrap()
        });
    });
    group.bench_function("strict_memory", |b| {
        b.to_async(&runtime).iter(|| async {
            memory
                .validate_token(black_box(&memory_token), Some(TokenType::Access))
                .await
                .unwrap()
        });
    });

    for backend in runtime.block_on(support::backends(only.as_deref())) {
        let (strict, synced, token) = runtime.block_on(async {
            let strict = Security::new(config(ValidationMode::Strict), backend.a.clone()).unwrap();
            let synced = Security::new(config(ValidationMode::Synced), backend.b.clone()).unwrap();
            // Some other users' revocations in the view, as in a real deployment.
            for i in 0..1_000 {
                let pair = strict
                    .create_token_pair(&format!("u{i}"), None)
                    .await
                    .unwrap();
                strict.logout(&pair.access_token).await.unwrap();
            }
            let token = strict.create_access_token("42", None).await.unwrap().token;
            while synced.revocation_view_synced() != Some(true) {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            // First sight reads the record; every later request is in memory.
            synced
                .validate_token(&token, Some(TokenType::Access))
                .await
                .unwrap();
            (strict, synced, token)
        });
        group.bench_function(format!("strict_{}", backend.name), |b| {
            b.to_async(&runtime).iter(|| async {
                strict
                    .validate_token(black_box(&token), Some(TokenType::Access))
                    .await
                    .unwrap()
            });
        });
        group.bench_function(format!("synced_{}", backend.name), |b| {
            b.to_async(&runtime).iter(|| async {
                synced
                    .validate_token(black_box(&token), Some(TokenType::Access))
                    .await
                    .unwrap()
            });
        });
        runtime.block_on(async move {
            drop((strict, synced));
            drop(backend);
        });
    }
    group.finish();
}

criterion_group!(benches, validate);
criterion_main!(benches);
