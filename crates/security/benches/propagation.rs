//! Revocation propagation between two instances in synced mode: instance
//! A (strict) revokes a token that instance B (synced, the default 250 ms
//! sync interval) has already accepted; B validates it in a loop until it
//! is refused. The delay is measured from the start of A's revoke call
//! (so it includes A's commit), and printed as p50/p99/max per backend:
//! PostgreSQL and Redis push a signal at commit, SQLite and MySQL are
//! polled (their delay is up to one interval by design).
//!
//! Run: `cargo bench -p fastcore-security --all-features --bench propagation`.
//! `BENCH_BACKENDS=postgres,redis` picks backends, `BENCH_SAMPLES=N` the
//! samples per pushed backend (default 300; polled ones take a fifth).

#![allow(missing_docs, clippy::unwrap_used, clippy::panic)]

mod support;

use std::time::{Duration, Instant};

use fastcore_security::{Error, Security, TokenType, ValidationMode};

use support::{config, percentile};

fn main() {
    // `cargo bench` passes `--bench`; nothing to parse.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let only = std::env::var("BENCH_BACKENDS").ok();
    let samples: usize = std::env::var("BENCH_SAMPLES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(300);
    println!("revocation propagation, A revokes -> B (synced, 250 ms interval) refuses");
    println!(
        "{:<10} {:>7} {:>10} {:>10} {:>10} {:>12}",
        "backend", "samples", "p50", "p99", "max", "revoke p50"
    );
    runtime.block_on(async {
        for backend in support::backends(only.as_deref()).await {
            let a = Security::new(config(ValidationMode::Strict), backend.a.clone()).unwrap();
            let b = Security::new(config(ValidationMode::Synced), backend.b.clone()).unwrap();
            while b.revocation_view_synced() != Some(true) {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            let pushed = matches!(backend.name, "postgres" | "redis");
            let n = if pushed {
                samples
            } else {
                (samples / 5).max(10)
            };
            let mut delays = Vec::with_capacity(n);
            let mut revokes = Vec::with_capacity(n);
            for i in 0..n {
                let token = a
                    .create_access_token(&format!("p{i}"), None)
                    .await
                    .unwrap()
                    .token;
                for _ in 0..2 {
                    b.validate_token(&token, Some(TokenType::Access))
                        .await
                        .unwrap();
                }
                // Not in step with the poll (or the signal): a polled
                // store's delay is then spread over its interval.
                let pause = rand::random_range(0..if pushed { 20 } else { 250u64 });
                tokio::time::sleep(Duration::from_millis(pause)).await;
                let start = Instant::now();
                a.revoke_token(&token).await.unwrap();
                revokes.push(start.elapsed());
                loop {
                    match b.validate_token(&token, Some(TokenType::Access)).await {
                        Ok(_) => tokio::task::yield_now().await,
                        Err(Error::RevokedToken) => break,
                        Err(other) => panic!("unexpected {other:?}"),
                    }
                    assert!(
                        start.elapsed() < Duration::from_secs(10),
                        "not seen in 10 s"
                    );
                }
                delays.push(start.elapsed());
            }
            delays.sort();
            revokes.sort();
            let ms = |d: Duration| format!("{:.2} ms", d.as_secs_f64() * 1000.0);
            println!(
                "{:<10} {:>7} {:>10} {:>10} {:>10} {:>12}",
                backend.name,
                n,
                ms(percentile(&delays, 50.0)),
                ms(percentile(&delays, 99.0)),
                ms(*delays.last().unwrap()),
                ms(percentile(&revokes, 50.0)),
            );
            drop((a, b));
            drop(backend);
        }
    });
}
