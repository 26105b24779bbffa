//! What the validation and propagation benchmarks share: a store pair per
//! backend (two connections pools on one database, as two instances have),
//! made with the integration tests' helpers (each run gets its own
//! PostgreSQL schema, MariaDB database or Redis key prefix, dropped at the
//! end). A backend whose server does not answer is skipped with a line on
//! stderr.

#![allow(dead_code, clippy::unwrap_used, clippy::panic)]

use std::sync::Arc;

use fastcore_security::{SecurityConfig, TokenStore, ValidationMode, connect_store};

#[cfg(any(feature = "postgres", feature = "mysql"))]
#[path = "../../tests/common/databases.rs"]
mod databases;
#[cfg(feature = "redis")]
#[path = "../../tests/common/redis_server.rs"]
mod redis_server;
#[cfg(any(feature = "postgres", feature = "mysql", feature = "redis"))]
#[path = "../../tests/common/servers.rs"]
mod servers;

/// The benchmarks' HMAC secret.
pub(crate) const SECRET: &str = "benchmark-secret-0123456789-abcdefghijklmnopqrstuvwxyz";

/// A configuration in `mode`, with the default sync interval.
pub(crate) fn config(mode: ValidationMode) -> SecurityConfig {
    SecurityConfig::builder()
        .secret(SECRET)
        .audience("bench-api")
        .issuer("bench-auth")
        .validation_mode(mode)
        .build()
        .unwrap()
}

/// Two stores on one backend's data, and what must outlive them.
pub(crate) struct Backend {
    pub(crate) name: &'static str,
    pub(crate) a: Arc<dyn TokenStore>,
    pub(crate) b: Arc<dyn TokenStore>,
    _guard: Box<dyn std::any::Any>,
}

/// The backends that answer, SQLite first; `only` (if given) picks some
/// by name (`sqlite,postgres`).
pub(crate) async fn backends(only: Option<&str>) -> Vec<Backend> {
    let wanted = |name: &str| only.is_none_or(|list| list.split(',').any(|n| n.trim() == name));
    let mut out = Vec::new();
    if wanted("sqlite") {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("tokens.db").display());
        out.push(Backend {
            name: "sqlite",
            a: connect_store(&url).await.unwrap(),
            b: connect_store(&url).await.unwrap(),
            _guard: Box::new(dir),
        });
    }
    #[cfg(feature = "postgres")]
    if wanted("postgres") {
        match databases::postgres().await {
            Some(db) => out.push(Backend {
                name: "postgres",
                a: connect_store(db.url()).await.unwrap(),
                b: connect_store(db.url()).await.unwrap(),
                _guard: Box::new(db),
            }),
            None => eprintln!("postgres: server down, skipped"),
        }
    }
    #[cfg(feature = "mysql")]
    if wanted("mysql") {
        match databases::mysql().await {
            Some(db) => out.push(Backend {
                name: "mysql",
                a: connect_store(db.url()).await.unwrap(),
                b: connect_store(db.url()).await.unwrap(),
                _guard: Box::new(db),
            }),
            None => eprintln!("mysql: server down, skipped"),
        }
    }
    #[cfg(feature = "redis")]
    if wanted("redis") {
        match redis_server::redis().await {
            Some((a, prefix)) => {
                let b = fastcore_security::RedisTokenStore::connect_with_prefix(
                    &redis_server::redis_url(),
                    prefix.prefix(),
                )
                .await
                .unwrap();
                out.push(Backend {
                    name: "redis",
                    a: Arc::new(a),
                    b: Arc::new(b),
                    _guard: Box::new(prefix),
                });
            }
            None => eprintln!("redis: server down, skipped"),
        }
    }
    out
}

/// p-th percentile (0..=100) of sorted samples.
pub(crate) fn percentile(sorted: &[std::time::Duration], p: f64) -> std::time::Duration {
    if sorted.is_empty() {
        return std::time::Duration::ZERO;
    }
    let rank = ((p / 100.0) * (sorted.len() - 1) as f64).round() as usize;
    sorted[rank.min(sorted.len() - 1)]
}
