//! Token validation, one token at a time on a Tokio runtime:
//!
//! - `encode`: signing an access token's claims (HS256), no store;
//! - `stateless`: signature and claims only ([`Security::validate_jwt_stateless`]);
//! - `strict_memory` / `strict_sqlite`: strict mode, a store read per
//!   request (memory store; SQLite file in WAL mode);
//! - `synced_sqlite`: synced mode on the same SQLite store, the token
//!   already seen once (the usual case): signature plus hash lookups.
//!
//! Run: `cargo bench -p fastcore-security --bench validate`, or for a
//! quick look `cargo bench -p fastcore-security --bench validate -- --quick`.

#![allow(missing_docs, clippy::unwrap_used)]

use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use fastcore_security::{
    MemoryTokenStore, Security, SecurityConfig, TokenType, ValidationMode, connect_store,
};

const SECRET: &str = "benchmark-secret-0123456789-abcdefghijklmnopqrstuvwxyz";

fn config(mode: ValidationMode) -> SecurityConfig {
    SecurityConfig::builder()
        .secret(SECRET)
        .audience("bench-api")
        .issuer("bench-auth")
        .validation_mode(mode)
        .build()
        .unwrap()
}

fn validate(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("tokens.db").display());

    let (memory, sqlite, synced, memory_token, sqlite_token) = runtime.block_on(async {
        let memory = Security::new(
            config(ValidationMode::Strict),
            Arc::new(MemoryTokenStore::new()),
        )
        .unwrap();
        let store = connect_store(&url).await.unwrap();
        let sqlite = Security::new(config(ValidationMode::Strict), Arc::clone(&store)).unwrap();
        let synced = Security::new(config(ValidationMode::Synced), store).unwrap();
        // Some other users' revocations in the view, as in a real deployment.
        for i in 0..1_000 {
            let pair = sqlite
                .create_token_pair(&format!("u{i}"), None)
                .await
                .unwrap();
            sqlite.logout(&pair.access_token).await.unwrap();
        }
        let memory_token = memory.create_access_token("42", None).await.unwrap().token;
        let sqlite_token = sqlite.create_access_token("42", None).await.unwrap().token;
        while synced.revocation_view_synced() != Some(true) {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        // First sight reads the record; every later request is in memory.
        synced
            .validate_token(&sqlite_token, Some(TokenType::Access))
            .await
            .unwrap();
        (memory, sqlite, synced, memory_token, sqlite_token)
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
    group.bench_function("strict_sqlite", |b| {
        b.to_async(&runtime).iter(|| async {
            sqlite
                .validate_token(black_box(&sqlite_token), Some(TokenType::Access))
                .await
                .unwrap()
        });
    });
    group.bench_function("synced_sqlite", |b| {
        b.to_async(&runtime).iter(|| async {
            synced
                .validate_token(black_box(&sqlite_token), Some(TokenType::Access))
                .await
                .unwrap()
        });
    });
    group.finish();
    drop((memory, sqlite, synced));
    drop(dir);
}

criterion_group!(benches, validate);
criterion_main!(benches);
