//! The built binary on every backend: `migrate`, the admin commands,
//! `serve` with login, me and logout over HTTP, `token purge`, and the
//! background purge of `serve`.
//!
//! Each test has its own SQLite file, PostgreSQL schema, MariaDB database
//! or Redis key prefix (`common/backends.rs`). Without a server, its tests
//! are skipped (one `SKIPPED` line), except under `CI`, where they fail.

// Test code: a failed assumption fails the test.
#![allow(clippy::unwrap_used, clippy::panic)]

mod common;

use std::process::Command;
use std::time::Duration;

use common::backends::{Kind, TestStore, on_each_backend, record};
use common::{PASSWORD, Running, SECRET, Stream, binary, get_json, me_at, run};
use fastcore_security_server::clock;
use serde_json::Value;

/// Bounded polling for what comes by itself (the background purge).
const POLL_TRIES: u32 = 150;
const POLL_PAUSE: Duration = Duration::from_millis(200);

on_each_backend!(
    migrate_admin_commands_and_serve_work_end_to_end,
    token_purge_deletes_exactly_the_expired_records,
    serve_purges_expired_records_in_the_background,
);

/// The binary, in the store's directory, with `args` then the store's
/// `--database-url` (and `--redis-prefix`).
fn command(store: &TestStore, args: &[&str]) -> Command {
    let mut command = binary(&store.work_dir());
    command.args(args).args(store.args());
    command
}

fn backend_name(kind: Kind) -> &'static str {
    match kind {
        Kind::Sqlite => "sqlite",
        Kind::Postgres => "postgres",
        Kind::MySql => "mysql",
        Kind::Redis => "redis",
    }
}

async fn login(client: &reqwest::Client, base: &str, username: &str) -> reqwest::Response {
    client
        .post(format!("{base}/auth/login"))
        .form(&[("username", username), ("password", PASSWORD)])
        .send()
        .await
        .unwrap()
}

async fn access_token(response: reqwest::Response) -> String {
    assert_eq!(response.status(), 200);
    let pair: Value = response.json().await.unwrap();
    pair["access_token"].as_str().unwrap().to_owned()
}

mod scenario {
    use super::*;

    /// `migrate` (twice), `users add|list|disable|enable`, `serve` with
    /// login, me and logout, `token inspect` and `token revoke --user`,
    /// all through the built binary on one backend.
    pub(super) async fn migrate_admin_commands_and_serve_work_end_to_end(store: TestStore) {
        for _ in 0..2 {
            let out = run(command(&store, &["migrate"]), None);
            assert!(out.success(), "{out:?}");
            assert!(out.stdout.starts_with("database "), "{out:?}");
        }
        let out = run(
            command(&store, &["users", "add", "Ada"]),
            Some(&format!("{PASSWORD}\n")),
        );
        assert!(out.success(), "{out:?}");
        assert!(out.stdout.contains("created user \"Ada\""), "{out:?}");
        let out = run(
            command(&store, &["users", "add", "ADA"]),
            Some(&format!("{PASSWORD}\n")),
        );
        assert_eq!(out.status.code(), Some(1), "{out:?}");
        assert!(out.stderr.contains("already exists as \"Ada\""), "{out:?}");
        let out = run(command(&store, &["users", "list"]), None);
        assert!(out.success(), "{out:?}");
        let row = out.stdout.lines().nth(1).unwrap_or_default().to_owned();
        assert!(row.contains("Ada") && row.contains("yes"), "{out:?}");

        let mut serve = command(&store, &["serve", "--bind", "127.0.0.1:0"]);
        serve.env("JWT_SECRET_KEY", SECRET);
        let mut server = Running::spawn(serve);
        let base = server.wait_until_listening();
        let client = reqwest::Client::new();

        let health: Value = get_json(&client, &format!("{base}/health")).await;
        assert_eq!(
            health["store_backend"],
            backend_name(store.kind),
            "{health}"
        );

        let access = access_token(login(&client, &base, "ada").await).await;
        let response = me_at(&client, &base, &access).await;
        assert_eq!(response.status(), 200);
        let user: Value = response.json().await.unwrap();
        assert_eq!(user["username"], "Ada");
        let logout = client
            .post(format!("{base}/auth/logout"))
            .bearer_auth(&access)
            .send()
            .await
            .unwrap();
        assert_eq!(logout.status(), 204);
        assert_eq!(me_at(&client, &base, &access).await.status(), 401);

        // The operator's commands act on the same store as the server.
        let access = access_token(login(&client, &base, "ada").await).await;
        let mut inspect = command(&store, &["token", "inspect", "-"]);
        inspect.env("JWT_SECRET_KEY", SECRET);
        let out = run(inspect, Some(&format!("{access}\n")));
        assert!(out.success(), "{out:?}");
        assert!(out.stdout.contains("; live"), "{out:?}");
        assert!(out.stdout.contains("accepted now: yes"), "{out:?}");
        let out = run(command(&store, &["token", "revoke", "--user", "ada"]), None);
        assert!(out.success(), "{out:?}");
        assert!(out.stdout.contains("revoked 2 token(s)"), "{out:?}");
        assert_eq!(me_at(&client, &base, &access).await.status(), 401);

        let out = run(command(&store, &["users", "disable", "ada"]), None);
        assert!(out.success(), "{out:?}");
        assert_eq!(login(&client, &base, "ada").await.status(), 401);
        let out = run(command(&store, &["users", "enable", "ADA"]), None);
        assert!(out.success(), "{out:?}");
        let access = access_token(login(&client, &base, "ada").await).await;
        assert_eq!(me_at(&client, &base, &access).await.status(), 200);

        assert!(server.terminate().success(), "{}", server.captured());
        server.drain();
        let log = server.captured();
        assert!(
            log.contains(&format!("backend=\"{}\"", backend_name(store.kind)))
                || log.contains(&format!("backend={}", backend_name(store.kind))),
            "{log}"
        );
        assert!(!log.contains(&access), "{log}");
    }

    /// `token purge --batch 10` on 25 expired and 7 live records deletes
    /// exactly the 25 (in three batches), with plain lines on a pipe; then
    /// the login throttle's ended windows (the SQL stores keep those
    /// rows; Redis has expired them by itself).
    pub(super) async fn token_purge_deletes_exactly_the_expired_records(store: TestStore) {
        let tokens = store.open().await.token_store();
        let now = clock::now();
        let throttle = tokens.login_throttle().unwrap();
        for name in ["a", "b", "c"] {
            let key = fastcore_security::ThrottleKey::account(name);
            throttle.hit(&key, 1, now - 60).await.unwrap();
        }
        let live = fastcore_security::ThrottleKey::account("live");
        throttle.hit(&live, 600, now).await.unwrap();
        let ended_windows = if store.kind == Kind::Redis { 0 } else { 3 };
        // Expired a little while ago (Redis keeps a record for five minutes
        // past its expiry, so it has these to purge too).
        for i in 0..25 {
            tokens
                .insert(&record(&format!("old-{i}"), "u", now - 5 - i))
                .await
                .unwrap();
        }
        for i in 0..6 {
            tokens
                .insert(&record(&format!("live-{i}"), "u", now + 3600))
                .await
                .unwrap();
        }
        // Revoked is not expired: it stays until it expires.
        let mut revoked = record("revoked-live", "u", now + 3600);
        revoked.revoked_at = Some(now - 1);
        tokens.insert(&revoked).await.unwrap();

        let out = run(command(&store, &["token", "purge", "--batch", "10"]), None);
        assert!(out.success(), "{out:?}");
        assert!(
            !out.stdout.contains('\r') && !out.stdout.contains('\u{1b}'),
            "plain lines on a pipe, no progress bar: {out:?}"
        );
        let lines: Vec<&str> = out.stdout.lines().collect();
        assert!(
            lines[0].starts_with("purging the records of tokens that expired before ")
                && lines[0].ends_with("(10 per batch)"),
            "{out:?}"
        );
        assert!(lines.contains(&"deleted 10 record(s) so far"), "{out:?}");
        assert_eq!(
            lines[lines.len() - 2..],
            [
                "purged 25 expired token record(s)",
                &format!("purged {ended_windows} ended login throttle window(s)")
            ],
            "{out:?}"
        );
        // The live window is still counting.
        assert_eq!(throttle.hit(&live, 600, now).await.unwrap().attempts, 2);
        for i in 0..25 {
            assert!(
                tokens.get(&format!("old-{i}")).await.unwrap().is_none(),
                "old-{i}"
            );
        }
        for i in 0..6 {
            assert!(
                tokens.get(&format!("live-{i}")).await.unwrap().is_some(),
                "live-{i}"
            );
        }
        assert!(tokens.get("revoked-live").await.unwrap().is_some());

        let out = run(command(&store, &["token", "purge"]), None);
        assert!(out.success(), "{out:?}");
        assert!(
            out.stdout.ends_with(
                "purged 0 expired token record(s)\npurged 0 ended login throttle window(s)\n"
            ),
            "{out:?}"
        );
    }

    /// `serve --purge-interval 1s` purges at start, then again and again:
    /// records that expire while it runs go too, live ones stay, each
    /// purge's count is logged, and it stops cleanly.
    pub(super) async fn serve_purges_expired_records_in_the_background(store: TestStore) {
        let tokens = store.open().await.token_store();
        let now = clock::now();
        for i in 0..6 {
            tokens
                .insert(&record(&format!("before-{i}"), "u", now - 5 - i))
                .await
                .unwrap();
        }
        tokens
            .insert(&record("live", "u", now + 3600))
            .await
            .unwrap();
        let mut serve = command(
            &store,
            &[
                "serve",
                "--bind",
                "127.0.0.1:0",
                "--purge-interval",
                "1s",
                "--purge-batch",
                "4",
            ],
        );
        serve.env("JWT_SECRET_KEY", SECRET);
        let mut server = Running::spawn(serve);
        server.wait_until_listening();
        server.wait_for(Stream::Stderr, |l| {
            l.contains("purging expired token records in the background") && l.contains("batch=4")
        });
        wait_until_purged(&*tokens, "before", 6, &server).await;

        let now = clock::now();
        for i in 0..10 {
            tokens
                .insert(&record(&format!("later-{i}"), "u", now - 5 - i))
                .await
                .unwrap();
        }
        wait_until_purged(&*tokens, "later", 10, &server).await;
        assert!(tokens.get("live").await.unwrap().is_some());

        assert_eq!(server.terminate().code(), Some(0), "{}", server.captured());
        server.drain();
        let log = server.captured();
        let purged: u64 = server
            .lines_matching(Stream::Stderr, |l| {
                l.contains(" INFO ") && l.contains("purged the records of expired tokens")
            })
            .iter()
            .map(|l| {
                let (_, rest) = l.split_once("purged=").unwrap();
                rest.split_whitespace()
                    .next()
                    .unwrap()
                    .parse::<u64>()
                    .unwrap()
            })
            .sum();
        assert_eq!(purged, 16, "each purge logs its count:\n{log}");
        assert!(log.contains("stopped"), "{log}");
        assert!(!log.contains("WARN"), "{log}");
    }
}

/// Polls (bounded) until none of the `count` records `{name}-{i}` is left.
async fn wait_until_purged(
    tokens: &dyn fastcore_security::TokenStore,
    name: &str,
    count: i64,
    server: &Running,
) {
    for _ in 0..POLL_TRIES {
        let mut left = 0;
        for i in 0..count {
            if tokens.get(&format!("{name}-{i}")).await.unwrap().is_some() {
                left += 1;
            }
        }
        if left == 0 {
            return;
        }
        tokio::time::sleep(POLL_PAUSE).await;
    }
    panic!(
        "{name}-* records left after {POLL_TRIES} tries:\n{}",
        server.captured()
    );
}

/// The interval also comes from `FASTCORE_PURGE_INTERVAL_SECONDS`, and `0`
/// turns the background purge off.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_purge_interval_comes_from_the_environment_and_0_turns_it_off() {
    let store = TestStore::sqlite();
    let tokens = store.open().await.token_store();
    tokens
        .insert(&record("old", "u", clock::now() - 60))
        .await
        .unwrap();

    let mut serve = command(&store, &["serve", "--bind", "127.0.0.1:0"]);
    serve
        .env("JWT_SECRET_KEY", SECRET)
        .env("FASTCORE_PURGE_INTERVAL_SECONDS", "0");
    let mut server = Running::spawn(serve);
    server.wait_until_listening();
    server.wait_for(Stream::Stderr, |l| l.contains("background purge is off"));
    assert!(server.terminate().success());
    server.drain();
    assert!(tokens.get("old").await.unwrap().is_some(), "nothing purged");

    let mut serve = command(&store, &["serve", "--bind", "127.0.0.1:0"]);
    serve
        .env("JWT_SECRET_KEY", SECRET)
        .env("FASTCORE_PURGE_INTERVAL_SECONDS", "3600");
    let mut server = Running::spawn(serve);
    server.wait_until_listening();
    // The first purge runs at start.
    let line = server.wait_for(Stream::Stderr, |l| {
        l.contains("purged the records of expired tokens")
    });
    assert!(line.contains("purged=1"), "{line}");
    assert!(
        server
            .lines_matching(Stream::Stderr, |l| l.contains("interval_s=3600"))
            .len()
            == 1,
        "{}",
        server.captured()
    );
    assert!(server.terminate().success());
    assert!(tokens.get("old").await.unwrap().is_none());

    let mut serve = command(&store, &["serve", "--purge-interval", "2d"]);
    serve.env("JWT_SECRET_KEY", SECRET);
    let out = run(serve, None);
    assert_eq!(out.status.code(), Some(2), "a usage error: {out:?}");
    assert!(out.stderr.contains("--purge-interval"), "{out:?}");
}
