//! The admin commands, run as the built binary against a temporary database.

// Test code: a failed assumption fails the test.
#![allow(clippy::unwrap_used, clippy::panic)]

mod common;

use std::process::Command;

use common::{PASSWORD, SECRET, TempDb, binary, config, run};
use fastcore_security::{Error, TokenRecord, TokenType};

/// The binary in `temp`'s directory with `args`, then `--database-url`
/// naming `temp`'s database.
fn on_db(temp: &TempDb, args: &[&str]) -> Command {
    let mut command = binary(temp.dir.path());
    command.args(args).arg("--database-url").arg(temp.url());
    command
}

/// Runs `args` on `temp`'s database, with no input.
fn admin(temp: &TempDb, args: &[&str]) -> common::Output {
    run(on_db(temp, args), None)
}

fn add_user(temp: &TempDb, username: &str, stdin: &str) -> common::Output {
    run(
        on_db(temp, &["users", "add", username, "--password-stdin"]),
        Some(stdin),
    )
}

#[tokio::test]
async fn users_add_reads_the_password_from_stdin_and_the_user_can_log_in() {
    let temp = TempDb::new();
    let out = add_user(&temp, "ada", &format!("{PASSWORD}\n"));
    assert!(out.success(), "{out:?}");
    assert!(out.stdout.contains("created user \"ada\""), "{out:?}");
    assert!(!out.stdout.contains(PASSWORD) && !out.stderr.contains(PASSWORD));

    // The trailing newline is not part of the password; the user logs in.
    let db = temp.open().await;
    let user = db.users().find_by_username("ada").await.unwrap().unwrap();
    assert!(user.is_active);
    assert!(user.password_hash().starts_with("$argon2id$"));
    assert!(fastcore_security::verify_password(PASSWORD, user.password_hash()).await);
    let security = db.security(config(&temp.url())).unwrap();
    let users = fastcore_security_server::users::Authenticator::new(
        db.users(),
        security.passwords().clone(),
    );
    let found = fastcore_security::UserAuthentication::authenticate(
        &users,
        &fastcore_security::Credentials::new("ada", PASSWORD),
    )
    .await
    .unwrap();
    assert_eq!(found.map(|u| u.id), Some(user.id));
}

#[test]
fn users_add_twice_fails_with_a_clear_message() {
    let temp = TempDb::new();
    assert!(add_user(&temp, "ada", PASSWORD).success());
    let out = add_user(&temp, "ada", "another password\n");
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert_eq!(
        out.stderr.trim(),
        "error: a user named \"ada\" already exists",
        "{out:?}"
    );
    // Case does not make a different user.
    let out = add_user(&temp, "ADA", "another password\n");
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(out.stderr.contains("already exists"), "{out:?}");
}

#[test]
fn users_add_refuses_names_that_look_like_an_existing_one() {
    let temp = TempDb::new();
    let out = add_user(&temp, "Zo\u{00EB}", "long enough pw\n");
    assert!(out.success(), "{out:?}");
    for variant in ["ZO\u{00CB}", "Zoe\u{0308}", "zo\u{00EB}"] {
        let out = add_user(&temp, variant, "long enough pw\n");
        assert_eq!(out.status.code(), Some(1), "{variant:?}: {out:?}");
        assert!(out.stderr.contains("already exists"), "{out:?}");
        assert!(
            out.stderr.contains("\"Zo\u{00EB}\""),
            "names the existing user: {out:?}"
        );
    }
    // Users disable/enable find the user by any form too.
    let out = admin(&temp, &["users", "disable", "ZOE\u{0308}"]);
    assert!(out.success(), "{out:?}");
    assert!(
        out.stdout.contains("disabled user \"Zo\u{00EB}\""),
        "{out:?}"
    );

    let out = admin(&temp, &["users", "list"]);
    assert_eq!(out.stdout.lines().count(), 2, "one user: {out:?}");
}

#[test]
fn users_add_enforces_the_username_length_cap() {
    let temp = TempDb::new();
    let longest = "a".repeat(320);
    assert!(add_user(&temp, &longest, "long enough pw\n").success());
    for too_long in [
        "b".repeat(321),
        // 30 bytes as typed, 330 once normalized (NFKC), as it would be stored.
        "\u{FDFA}".repeat(10),
    ] {
        let out = add_user(&temp, &too_long, "long enough pw\n");
        assert_eq!(out.status.code(), Some(1), "{out:?}");
        assert!(out.stderr.contains("at most 320 bytes"), "{out:?}");
    }
}

#[test]
fn users_add_refuses_bad_input() {
    let temp = TempDb::new();
    for (username, stdin, expected) in [
        ("ada", "\n", "must not be empty"),
        ("ada", "short\n", "at least 8 characters"),
        (" ada", "long enough pw\n", "whitespace"),
        ("", "long enough pw\n", "must not be empty"),
    ] {
        let out = add_user(&temp, username, stdin);
        assert_eq!(out.status.code(), Some(1), "{out:?}");
        assert!(out.stderr.contains(expected), "{username:?}: {out:?}");
        assert_eq!(out.stderr.lines().count(), 1, "one line: {out:?}");
    }
}

#[test]
fn users_list_disable_and_enable() {
    let temp = TempDb::new();
    assert!(add_user(&temp, "ada", PASSWORD).success());
    assert!(add_user(&temp, "grace", PASSWORD).success());
    let list = |temp: &TempDb| admin(temp, &["users", "list"]);
    let out = list(&temp);
    assert!(out.success(), "{out:?}");
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(lines.len(), 3, "{out:?}");
    assert!(
        lines[0].starts_with("ID") && lines[0].contains("USERNAME"),
        "{out:?}"
    );
    assert!(
        lines[0].contains("ACTIVE") && lines[0].contains("CREATED"),
        "{out:?}"
    );
    assert!(out.stdout.contains("ada") && out.stdout.contains("grace"));
    assert!(
        !out.stdout.contains("argon2"),
        "no hashes in the list: {out:?}"
    );

    let out = admin(&temp, &["users", "disable", "ada"]);
    assert!(out.success(), "{out:?}");
    assert!(out.stdout.contains("disabled user \"ada\""), "{out:?}");
    let out = list(&temp);
    let ada = out.stdout.lines().find(|l| l.contains("ada")).unwrap();
    assert!(ada.split_whitespace().any(|w| w == "no"), "{ada}");

    assert!(admin(&temp, &["users", "enable", "ada"]).success());
    let out = list(&temp);
    let ada = out.stdout.lines().find(|l| l.contains("ada")).unwrap();
    assert!(ada.split_whitespace().any(|w| w == "yes"), "{ada}");

    let out = admin(&temp, &["users", "disable", "nobody"]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(out.stderr.contains("no user named \"nobody\""), "{out:?}");
}

#[test]
fn database_url_comes_from_the_environment_too() {
    let temp = TempDb::new();
    let mut command = binary(temp.dir.path());
    command
        .args(["users", "add", "ada"])
        .env("DATABASE_URL", temp.url());
    assert!(run(command, Some(PASSWORD)).success());
    assert!(temp.path().exists());

    // And the default is a file in the working directory.
    let mut command = binary(temp.dir.path());
    command.arg("migrate");
    let out = run(command, None);
    assert!(out.success(), "{out:?}");
    assert!(temp.dir.path().join("fastcore-security.db").exists());
}

#[tokio::test]
async fn hash_password_prints_an_argon2id_hash_that_verifies() {
    let temp = TempDb::new();
    let mut command = binary(temp.dir.path());
    command.arg("hash-password");
    let out = run(command, Some(&format!("{PASSWORD}\n")));
    assert!(out.success(), "{out:?}");
    let hash = out.stdout.trim();
    assert!(hash.starts_with("$argon2id$"), "{out:?}");
    assert!(fastcore_security::verify_password(PASSWORD, hash).await);
    assert!(!fastcore_security::verify_password("wrong", hash).await);
    assert!(!temp.path().exists(), "hash-password needs no database");
}

#[test]
fn hash_password_applies_the_same_password_rules_as_users_add() {
    let temp = TempDb::new();
    for (stdin, expected) in [
        ("short\n", "at least 8 characters"),
        ("7 chars\n", "at least 8 characters"),
        ("\n", "must not be empty"),
    ] {
        let mut command = binary(temp.dir.path());
        command.arg("hash-password");
        let out = run(command, Some(stdin));
        assert_eq!(out.status.code(), Some(1), "{stdin:?}: {out:?}");
        assert!(out.stderr.contains(expected), "{stdin:?}: {out:?}");
        assert!(out.stdout.is_empty(), "no hash: {out:?}");
        let out = add_user(&temp, "ada", stdin);
        assert_eq!(out.status.code(), Some(1), "{stdin:?}: {out:?}");
        assert!(out.stderr.contains(expected), "{stdin:?}: {out:?}");
    }
    let mut command = binary(temp.dir.path());
    command.arg("hash-password");
    assert!(run(command, Some("8 chars!\n")).success());
}

#[tokio::test]
async fn hash_password_and_users_add_follow_the_password_policy_variables() {
    let temp = TempDb::new();
    let mut command = binary(temp.dir.path());
    command
        .arg("hash-password")
        .env("PASSWORD_ARGON2_MEMORY_KIB", "32768")
        .env("PASSWORD_ARGON2_ITERATIONS", "3");
    let out = run(command, Some(&format!("{PASSWORD}\n")));
    assert!(out.success(), "{out:?}");
    let hash = out.stdout.trim();
    assert!(
        hash.starts_with("$argon2id$v=19$m=32768,t=3,p=1$"),
        "{out:?}"
    );
    assert!(fastcore_security::verify_password(PASSWORD, hash).await);

    // A policy below the floor is refused before any password is read.
    for command in ["hash-password", "users-add"] {
        let mut cmd = binary(temp.dir.path());
        if command == "users-add" {
            cmd.args(["users", "add", "ada", "--password-stdin", "--database-url"])
                .arg(temp.url());
        } else {
            cmd.arg(command);
        }
        cmd.env("PASSWORD_ARGON2_ITERATIONS", "1");
        let out = run(cmd, Some(&format!("{PASSWORD}\n")));
        assert_eq!(out.status.code(), Some(1), "{command}: {out:?}");
        assert!(
            out.stderr.contains("PASSWORD_ARGON2_ITERATIONS"),
            "{command}: {out:?}"
        );
        assert!(!out.stderr.contains(PASSWORD), "{command}: {out:?}");
        assert!(out.stdout.is_empty(), "{command}: {out:?}");
    }
}

#[test]
fn migrate_creates_both_schemas_and_can_run_again() {
    let temp = TempDb::new();
    for _ in 0..2 {
        let out = admin(&temp, &["migrate"]);
        assert!(out.success(), "{out:?}");
        assert!(out.stdout.contains("up to date"), "{out:?}");
    }
}

#[test]
fn migrate_on_an_unreachable_server_names_it_without_the_password() {
    let temp = TempDb::new();
    for url in [
        "postgres://u:hunter2@127.0.0.1:1/x",
        "mysql://u:hunter2@127.0.0.1:1/x",
        "redis://:hunter2@127.0.0.1:1/",
    ] {
        let mut command = binary(temp.dir.path());
        command.args(["migrate", "--database-url", url]);
        let out = run(command, None);
        assert_eq!(out.status.code(), Some(1), "{out:?}");
        assert_eq!(out.stderr.lines().count(), 1, "{out:?}");
        let (scheme, _) = url.split_once(':').unwrap();
        assert!(
            out.stderr
                .starts_with(&format!("error: cannot open the database {scheme}://")),
            "{out:?}"
        );
        assert!(out.stderr.contains("127.0.0.1:1"), "{out:?}");
        assert!(!out.stderr.contains("hunter2"), "{out:?}");
        assert!(!out.stderr.contains("panicked"), "{out:?}");
    }
}

#[test]
fn a_database_url_of_no_known_backend_lists_the_ones_there_are() {
    let temp = TempDb::new();
    for url in ["memory:", "ftp://u:hunter2@host/x", "fastcore-security.db"] {
        let mut command = binary(temp.dir.path());
        command.args(["users", "list", "--database-url", url]);
        let out = run(command, None);
        assert_eq!(out.status.code(), Some(1), "{out:?}");
        assert_eq!(out.stderr.lines().count(), 1, "{out:?}");
        for scheme in ["sqlite:", "postgres:", "mysql:", "mariadb:", "redis:"] {
            assert!(out.stderr.contains(scheme), "{scheme}: {out:?}");
        }
        assert!(!out.stderr.contains("hunter2"), "{out:?}");
    }
}

/// A token pair minted through the library on the test database.
async fn mint(temp: &TempDb) -> (fastcore_security::Security, String, String) {
    let db = temp.open().await;
    let security = db.security(config(&temp.url())).unwrap();
    let pair = security.create_token_pair("user-1", None).await.unwrap();
    (security, pair.access_token, pair.refresh_token)
}

fn inspect(temp: &TempDb, token: &str, secret: Option<&str>) -> common::Output {
    let mut command = on_db(temp, &["token", "inspect", "-"]);
    if let Some(secret) = secret {
        command.env("JWT_SECRET_KEY", secret);
    }
    run(command, Some(&format!("{token}\n")))
}

#[tokio::test]
async fn token_inspect_shows_the_claims_under_an_unverified_banner() {
    let temp = TempDb::new();
    let (security, access, _) = mint(&temp).await;
    let claims = security.decode_token(&access).unwrap();

    // Without the secret: decoded, flagged, nothing verified.
    let mut command = binary(temp.dir.path());
    command.args(["token", "inspect"]).arg(&access);
    let out = run(command, None);
    assert!(out.success(), "{out:?}");
    assert!(out.stdout.starts_with("UNVERIFIED"), "{out:?}");
    assert!(
        out.stdout.contains(&format!("\"jti\": \"{}\"", claims.jti)),
        "{out:?}"
    );
    assert!(out.stdout.contains("\"sub\": \"user-1\""), "{out:?}");
    assert!(out.stdout.contains("\"type\": \"access\""), "{out:?}");
    assert!(out.stdout.contains("\"alg\": \"HS256\""), "{out:?}");
    assert!(out.stdout.contains("Set JWT_SECRET_KEY"), "{out:?}");

    // With the secret: signature, record and verdict.
    let out = inspect(&temp, &access, Some(SECRET));
    assert!(out.success(), "{out:?}");
    assert!(out.stdout.contains("UNVERIFIED"), "{out:?}");
    assert!(
        out.stdout.contains("signature and claims: valid"),
        "{out:?}"
    );
    assert!(
        out.stdout.contains("access token of user user-1"),
        "{out:?}"
    );
    assert!(out.stdout.contains("; live"), "{out:?}");
    assert!(out.stdout.contains("accepted now: yes"), "{out:?}");

    // With another secret, the signature is refused.
    let other = "another-secret-another-secret-another-secret!";
    let out = inspect(&temp, &access, Some(other));
    assert!(out.success(), "{out:?}");
    assert!(
        out.stdout.contains("signature and claims: NOT valid"),
        "{out:?}"
    );
    assert!(out.stdout.contains("accepted now: no"), "{out:?}");

    // Garbage is a clear error.
    let out = inspect(&temp, "not-a-token", None);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(out.stderr.contains("not a JWT"), "{out:?}");
}

#[tokio::test]
async fn token_revoke_by_jti_makes_the_token_fail() {
    let temp = TempDb::new();
    let (security, access, refresh) = mint(&temp).await;
    let jti = security.decode_token(&access).unwrap().jti;

    let out = admin(&temp, &["token", "revoke", &jti]);
    assert!(out.success(), "{out:?}");
    assert!(
        out.stdout.contains(&format!("revoked token {jti}")),
        "{out:?}"
    );
    assert!(matches!(
        security
            .validate_token(&access, Some(TokenType::Access))
            .await,
        Err(Error::RevokedToken)
    ));
    // Only that token.
    assert!(security.validate_token(&refresh, None).await.is_ok());

    // Twice is fine; an unknown id is an error (most likely a typo).
    let out = admin(&temp, &["token", "revoke", &jti]);
    assert!(out.success(), "{out:?}");
    assert!(out.stdout.contains("already revoked"), "{out:?}");
    let out = admin(&temp, &["token", "revoke", "no-such-jti"]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(out.stderr.contains("no token with id"), "{out:?}");
}

#[tokio::test]
async fn token_revoke_user_revokes_every_token_of_the_user() {
    let temp = TempDb::new();
    let db = temp.open().await;
    let hash = fastcore_security::get_password_hash(PASSWORD)
        .await
        .unwrap();
    let ada = db.users().create("ada", &hash).await.unwrap();
    let security = db.security(config(&temp.url())).unwrap();
    let first = security.create_token_pair(&ada.id, None).await.unwrap();
    let second = security.create_token_pair(&ada.id, None).await.unwrap();
    let other = security
        .create_token_pair("someone-else", None)
        .await
        .unwrap();

    // By username (resolved to the id) ...
    let out = admin(&temp, &["token", "revoke", "--user", "ada"]);
    assert!(out.success(), "{out:?}");
    assert!(
        out.stdout
            .contains(&format!("revoked 4 token(s) of user {}", ada.id)),
        "{out:?}"
    );
    for token in [
        &first.access_token,
        &first.refresh_token,
        &second.access_token,
        &second.refresh_token,
    ] {
        assert!(matches!(
            security.validate_token(token, None).await,
            Err(Error::RevokedToken)
        ));
    }
    assert!(
        security
            .validate_token(&other.access_token, None)
            .await
            .is_ok()
    );

    // ... or by id, which also works for users the table does not know.
    let out = admin(&temp, &["token", "revoke", "--user", "someone-else"]);
    assert!(out.success(), "{out:?}");
    assert!(out.stdout.contains("revoked 2 token(s)"), "{out:?}");
    assert!(
        security
            .validate_token(&other.access_token, None)
            .await
            .is_err()
    );
}

#[tokio::test]
async fn token_revoke_user_fails_for_a_user_nobody_knows() {
    let temp = TempDb::new();
    let (security, access, _) = mint(&temp).await;
    let out = admin(&temp, &["token", "revoke", "--user", "nosuch"]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert_eq!(out.stderr.lines().count(), 1, "{out:?}");
    assert!(
        out.stderr.starts_with("error: no user named \"nosuch\""),
        "{out:?}"
    );
    assert!(out.stderr.contains("users list"), "{out:?}");
    assert!(out.stdout.is_empty(), "{out:?}");
    assert!(security.validate_token(&access, None).await.is_ok());
}

#[tokio::test]
async fn token_revoke_given_a_whole_token_says_so_without_echoing_it() {
    let temp = TempDb::new();
    let (security, access, _) = mint(&temp).await;
    let signature = access.rsplit('.').next().unwrap().to_owned();
    for args in [
        vec!["token", "revoke", access.as_str()],
        vec!["token", "revoke", "--user", access.as_str()],
    ] {
        let mut command = binary(temp.dir.path());
        command.args(&args).arg("--database-url").arg(temp.url());
        let out = run(command, None);
        assert_eq!(out.status.code(), Some(1), "{out:?}");
        assert_eq!(out.stderr.lines().count(), 1, "{out:?}");
        assert!(
            out.stderr.contains("that looks like a token, not a"),
            "{out:?}"
        );
        assert!(
            out.stderr
                .contains("run `fastcore-security token inspect -` to see its"),
            "{out:?}"
        );
        assert!(
            !out.stderr.contains(&signature) && !out.stdout.contains(&signature),
            "never echo the token: {out:?}"
        );
    }
    assert!(security.validate_token(&access, None).await.is_ok());
}

#[tokio::test]
async fn token_purge_deletes_expired_records_only() {
    let temp = TempDb::new();
    let db = temp.open().await;
    let store = db.token_store();
    let now = fastcore_security_server::clock::now();
    for (jti, expires_at) in [
        ("old-1", now - 60),
        ("old-2", now - 1),
        ("live", now + 3600),
    ] {
        store
            .insert(&TokenRecord {
                jti: jti.into(),
                token_type: TokenType::Access,
                user_id: "u".into(),
                family_id: None,
                issued_at: now - 7200,
                expires_at,
                revoked_at: None,
                consumed_at: None,
                replaced_by: None,
                session: None,
            })
            .await
            .unwrap();
    }
    let out = admin(&temp, &["token", "purge"]);
    assert!(out.success(), "{out:?}");
    assert!(
        out.stdout.contains("purged 2 expired token record(s)"),
        "{out:?}"
    );
    assert!(store.get("old-1").await.unwrap().is_none());
    assert!(store.get("live").await.unwrap().is_some());
}

/// On a terminal `token purge` draws a progress bar (on a pseudo-terminal
/// made by util-linux's `script`), cleared at the end, then the total.
#[tokio::test]
async fn token_purge_on_a_terminal_shows_a_progress_bar() {
    let script = std::path::Path::new("/usr/bin/script");
    if !script.exists() {
        eprintln!("SKIPPED progress bar test: no /usr/bin/script to make a terminal");
        return;
    }
    let temp = TempDb::new();
    let store = temp.open().await.token_store();
    let now = fastcore_security_server::clock::now();
    for i in 0..25 {
        store
            .insert(&TokenRecord {
                jti: format!("old-{i}"),
                token_type: TokenType::Access,
                user_id: "u".into(),
                family_id: None,
                issued_at: now - 7200,
                expires_at: now - 60,
                revoked_at: None,
                consumed_at: None,
                replaced_by: None,
                session: None,
            })
            .await
            .unwrap();
    }
    let mut command = std::process::Command::new(script);
    command
        .env_clear()
        .env("TERM", "xterm")
        .current_dir(temp.dir.path())
        .args(["-q", "-e", "-c"])
        .arg(format!(
            "{} token purge --batch 10 --database-url {}",
            env!("CARGO_BIN_EXE_fastcore-security"),
            temp.url()
        ))
        .arg("/dev/null");
    let out = run(command, None);
    assert!(out.success(), "{out:?}");
    assert!(
        out.stdout.contains("purging expired token records: "),
        "the bar: {out:?}"
    );
    assert!(
        out.stdout.contains("\u{1b}[2K"),
        "drawn and cleared in place: {out:?}"
    );
    // (A terminal ends its lines with \r\n.)
    let lines: Vec<&str> = out.stdout.trim_end().lines().map(str::trim_end).collect();
    assert!(
        lines[lines.len() - 2].ends_with("purged 25 expired token record(s)"),
        "{out:?}"
    );
    assert_eq!(
        lines[lines.len() - 1],
        "purged 0 ended login throttle window(s)",
        "{out:?}"
    );
    assert!(
        !out.stdout.contains("so far"),
        "no plain lines on a terminal: {out:?}"
    );
    assert!(store.get("old-0").await.unwrap().is_none());
}

#[test]
fn errors_are_one_line_without_a_panic() {
    let temp = TempDb::new();
    let mut command = binary(temp.dir.path());
    command.args([
        "users",
        "list",
        "--database-url",
        "sqlite:///nonexistent-dir/for/sure/x.db",
    ]);
    let out = run(command, None);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert_eq!(out.stderr.lines().count(), 1, "{out:?}");
    assert!(
        out.stderr.starts_with("error: cannot open the database"),
        "{out:?}"
    );
    assert!(!out.stderr.contains("panicked"), "{out:?}");
}

/// Output closed by its reader (`fastcore-security ... | head -1`) ends the
/// command with status 1, quietly; a closed standard error loses the error
/// line but not the status. Neither panics (status 101), as `println!`
/// and `eprintln!` would.
#[test]
fn a_closed_output_or_error_stream_is_status_1_not_a_panic() {
    let temp = TempDb::new();
    // Standard output a pipe nobody reads: the result line cannot be written.
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let mut command = binary(temp.dir.path());
    command
        .args(["migrate", "--database-url"])
        .arg(temp.url())
        .stdin(std::process::Stdio::null())
        .stdout(writer)
        .stderr(std::process::Stdio::piped());
    let out = command.output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(
        stderr.is_empty(),
        "a broken pipe is not worth a line: {stderr}"
    );

    // Standard error a pipe nobody reads, and a command that fails.
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let mut command = binary(temp.dir.path());
    command
        .args([
            "users",
            "list",
            "--database-url",
            "sqlite:///nonexistent-dir/for/sure/x.db",
        ])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(writer);
    let out = command.output().unwrap();
    assert_eq!(out.status.code(), Some(1));
}

#[test]
fn an_unopenable_database_names_the_file_and_the_likely_cause_once() {
    let temp = TempDb::new();
    let missing_dir = temp.dir.path().join("no-such-dir");
    let file = missing_dir.join("x.db");
    let mut command = binary(temp.dir.path());
    command
        .args(["users", "list"])
        .env("DATABASE_URL", format!("sqlite://{}", file.display()));
    let out = run(command, None);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert_eq!(out.stderr.lines().count(), 1, "{out:?}");
    let line = out.stderr.trim_end();
    assert!(
        line.starts_with(&format!(
            "error: cannot open the database file {}: ",
            file.display()
        )),
        "names the file: {out:?}"
    );
    assert_eq!(
        line.matches("unable to open database file").count(),
        1,
        "the cause, once: {out:?}"
    );
    assert!(
        line.contains(&format!(
            "the directory {} does not exist",
            missing_dir.display()
        )),
        "{out:?}"
    );
    assert!(!missing_dir.exists());
}

/// `users unlock` clears the count the server keeps under its keyed hash of
/// the name (any spelling the login accepts), and prints that key; without
/// the server's secret it cannot know the key, and says so.
#[tokio::test]
async fn users_unlock_clears_the_accounts_throttle_count() {
    let temp = TempDb::new();
    assert!(add_user(&temp, "Ada", &format!("{PASSWORD}\n")).success());
    let store = fastcore_security::connect_store(&temp.url()).await.unwrap();
    let security = fastcore_security::Security::new(config(&temp.url()), store.clone()).unwrap();
    let key = security.throttle_keys().account("ada");
    let throttle = store.login_throttle().unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    for _ in 0..5 {
        throttle.hit(&key, 900, now).await.unwrap();
    }

    let out = admin(&temp, &["users", "unlock", "ada"]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(out.stderr.contains("JWT_SECRET_KEY"), "{out:?}");
    assert_eq!(throttle.hit(&key, 900, now).await.unwrap().attempts, 6);

    let mut command = on_db(&temp, &["users", "unlock", "ADA"]);
    command.env("JWT_SECRET_KEY", SECRET);
    let out = run(command, None);
    assert!(out.success(), "{out:?}");
    assert!(
        out.stdout.contains(&format!("throttle_key={key}")),
        "{out:?}"
    );
    assert_eq!(throttle.hit(&key, 900, now).await.unwrap().attempts, 1);

    let mut command = on_db(&temp, &["users", "unlock", "nobody"]);
    command.env("JWT_SECRET_KEY", SECRET);
    let out = run(command, None);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(out.stderr.contains("no user named \"nobody\""), "{out:?}");
}

/// A `sqlite:` URL without a file, or naming a directory, says so (it used
/// to print an empty name, or blame the directory's permissions).
#[test]
fn a_sqlite_url_without_a_file_or_naming_a_directory_says_so() {
    let temp = TempDb::new();
    let dir = temp.dir.path().join("a-directory");
    std::fs::create_dir(&dir).unwrap();
    for (url, expected) in [
        (
            "sqlite://".to_owned(),
            "error: the database URL names no SQLite file: give one, for example \
             sqlite://fastcore-security.db"
                .to_owned(),
        ),
        (
            format!("sqlite://{}", dir.display()),
            format!(
                "error: cannot open the database file {}: it is a directory; name a file in \
                 it, for example sqlite://{}/fastcore-security.db",
                dir.display(),
                dir.display()
            ),
        ),
    ] {
        let mut command = binary(temp.dir.path());
        command.args(["users", "list"]).env("DATABASE_URL", &url);
        let out = run(command, None);
        assert_eq!(out.status.code(), Some(1), "{url}: {out:?}");
        assert_eq!(out.stderr.trim_end(), expected, "{url}: {out:?}");
    }
}

// ------------------------------------------------------------ CLI polish

/// Every command path of the binary, from clap's own description of it.
fn every_command() -> Vec<Vec<String>> {
    use clap::CommandFactory as _;
    fn walk(command: &clap::Command, path: Vec<String>, out: &mut Vec<Vec<String>>) {
        for sub in command.get_subcommands() {
            if sub.get_name() == "help" {
                continue;
            }
            let mut sub_path = path.clone();
            sub_path.push(sub.get_name().to_owned());
            out.push(sub_path.clone());
            walk(sub, sub_path, out);
        }
    }
    let mut out = vec![vec![]];
    walk(
        &fastcore_security_server::cli::Cli::command(),
        vec![],
        &mut out,
    );
    out
}

#[test]
fn every_command_has_help_with_an_example() {
    let temp = TempDb::new();
    let commands = every_command();
    assert!(commands.len() > 15, "{commands:?}");
    for path in commands {
        for flag in ["--help", "-h"] {
            let mut command = binary(temp.dir.path());
            command.args(&path).arg(flag);
            let out = run(command, None);
            assert!(out.success(), "{path:?} {flag}: {out:?}");
            assert!(
                out.stdout.contains("Example"),
                "{path:?} {flag} shows no example: {out:?}"
            );
        }
    }
    // The top level documents the exit codes.
    let mut command = binary(temp.dir.path());
    command.arg("--help");
    let out = run(command, None);
    for code in ["Exit codes:", "  0  ", "  1  ", "  2  "] {
        assert!(out.stdout.contains(code), "{code:?}: {out:?}");
    }
}

/// Every environment variable the library reads (found in its sources:
/// `SecurityConfig::builder_from_lookup`, `PasswordPolicy::from_lookup`,
/// `Environment::VARIABLES`) and the server reads (its options' clap `env`,
/// and RUST_LOG) is listed in the top-level `--help`, and the list names
/// no variable that nothing reads.
#[test]
fn the_top_level_help_lists_every_environment_variable() {
    use clap::CommandFactory as _;
    use std::collections::BTreeSet;

    let is_variable = |name: &str| {
        name.len() > 4
            && name.contains('_')
            && name
                .chars()
                .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
    };
    let library = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../security/src");
    let mut read = BTreeSet::new();
    for file in ["config.rs", "password.rs"] {
        let source = std::fs::read_to_string(library.join(file)).unwrap();
        for call in ["get(\"", "lookup(\"", "number(\""] {
            for after in source.split(call).skip(1) {
                let name = after.split('"').next().unwrap();
                if is_variable(name) {
                    read.insert(name.to_owned());
                }
            }
        }
    }
    read.extend(
        fastcore_security::Environment::VARIABLES
            .iter()
            .map(|name| (*name).to_owned()),
    );
    fn clap_variables(command: &clap::Command, out: &mut BTreeSet<String>) {
        for arg in command.get_arguments() {
            if let Some(name) = arg.get_env() {
                out.insert(name.to_string_lossy().into_owned());
            }
        }
        for sub in command.get_subcommands() {
            clap_variables(sub, out);
        }
    }
    clap_variables(&fastcore_security_server::cli::Cli::command(), &mut read);
    read.insert("RUST_LOG".to_owned());
    // The sources were read: the library alone has over 20.
    assert!(read.len() >= 30, "{read:?}");

    let temp = TempDb::new();
    let mut command = binary(temp.dir.path());
    command.arg("--help");
    let out = run(command, None);
    assert!(out.success(), "{out:?}");
    let words = |text: &str| -> BTreeSet<String> {
        text.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .map(str::to_owned)
            .collect()
    };
    let listed = words(&out.stdout);
    let missing: Vec<_> = read.difference(&listed).collect();
    assert!(missing.is_empty(), "--help misses {missing:?}: {out:?}");
    let unknown: Vec<_> = words(fastcore_security_server::cli::ENVIRONMENT_HELP)
        .into_iter()
        .filter(|name| is_variable(name) && !read.contains(name))
        .collect();
    assert!(
        unknown.is_empty(),
        "--help lists {unknown:?}, which nothing reads"
    );
    // -h stays short and says where the list is.
    let mut command = binary(temp.dir.path());
    command.arg("-h");
    let out = run(command, None);
    assert!(out.stdout.contains("see --help"), "{out:?}");
    assert!(!out.stdout.contains("PASSWORD_MAX_BYTES"), "{out:?}");
}

/// A bad value is reported under the name it was given as: the
/// environment variable's (a configuration error: one line, status 1)
/// when it came from the environment, the flag's (clap's usage error,
/// status 2) when it was typed. "configuration error" is said once.
#[test]
fn bad_values_are_reported_under_the_name_they_were_given_as() {
    let temp = TempDb::new();
    // `--bind` that cannot work (a port already taken): were a value
    // accepted by mistake, the server would stop there instead of serving
    // forever.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let taken = taken.local_addr().unwrap().to_string();
    let serve = || {
        let mut command = binary(temp.dir.path());
        command
            .args(["serve", "--bind", &taken, "--database-url"])
            .arg(temp.url())
            .env("JWT_SECRET_KEY", SECRET);
        command
    };
    for (variable, value, flag) in [
        (
            "LOGIN_THROTTLE_WINDOW_SECONDS",
            "abc",
            "--login-throttle-window",
        ),
        (
            "LOGIN_THROTTLE_WINDOW_SECONDS",
            "0",
            "--login-throttle-window",
        ),
        (
            "LOGIN_MAX_FAILURES_PER_ACCOUNT",
            "-1",
            "--login-max-failures-per-account",
        ),
        (
            "LOGIN_MAX_FAILURES_PER_ADDRESS",
            "many",
            "--login-max-failures-per-address",
        ),
        ("LOGIN_FAILURE_FLOOR_MS", "99999", "--login-failure-floor"),
        ("FASTCORE_PURGE_INTERVAL_SECONDS", "abc", "--purge-interval"),
        ("FASTCORE_REDIS_PREFIX", "", "--redis-prefix"),
        ("PASSWORD_ARGON2_ITERATIONS", "1", "--"),
        ("LOGIN_MAX_FAILURES_PER_ACCOUNT", "x", "--"),
        ("FASTCORE_REFRESH_COOKIE", "yes", "--refresh-cookie"),
        ("FASTCORE_PURGE_INTERVAL_SECONDS", "-3", "--purge-interval"),
        ("PASSWORD_MAX_BYTES", "10", "--"),
        ("JWT_VALIDATION_MODE", "fast", "--validation-mode"),
        ("JWT_SYNC_INTERVAL_MS", "1", "--sync-interval"),
        (
            "FASTCORE_REFRESH_COOKIE_SAME_SITE",
            "none",
            "--refresh-cookie-same-site",
        ),
        ("FASTCORE_ALLOWED_ORIGINS", "nonsense", "--allowed-origin"),
    ] {
        let mut command = serve();
        command.env(variable, value);
        let out = run(command, None);
        let what = format!("{variable}={value:?}: {out:?}");
        assert_eq!(out.status.code(), Some(1), "{what}");
        assert_eq!(out.stderr.lines().count(), 1, "{what}");
        assert!(
            out.stderr.starts_with("error: configuration error: "),
            "{what}"
        );
        assert_eq!(
            out.stderr.matches("configuration error").count(),
            1,
            "{what}"
        );
        assert!(out.stderr.contains(variable), "{what}");
        assert!(!out.stderr.contains(flag), "{what}");
    }
    for (args, variable, good) in [
        (
            vec!["--login-throttle-window", "abc"],
            "LOGIN_THROTTLE_WINDOW_SECONDS",
            "60",
        ),
        (
            vec!["--login-max-failures-per-account=-1"],
            "LOGIN_MAX_FAILURES_PER_ACCOUNT",
            "60",
        ),
        (
            vec!["--purge-interval", "abc"],
            "FASTCORE_PURGE_INTERVAL_SECONDS",
            "60",
        ),
        (vec!["--redis-prefix="], "FASTCORE_REDIS_PREFIX", "60"),
        (
            vec!["--validation-mode", "fast"],
            "JWT_VALIDATION_MODE",
            "strict",
        ),
        (vec!["--sync-interval", "1ms"], "JWT_SYNC_INTERVAL_MS", "60"),
        (vec!["--sync-interval=61s"], "JWT_SYNC_INTERVAL_MS", "60"),
        (
            vec!["--refresh-cookie", "--allowed-origin", "nonsense"],
            "FASTCORE_ALLOWED_ORIGINS",
            "https://app.example.com",
        ),
    ] {
        // The variable holds a good value: the typed flag is what is wrong.
        let mut command = serve();
        command.args(&args).env(variable, good);
        let out = run(command, None);
        let what = format!("{args:?}: {out:?}");
        assert_eq!(out.status.code(), Some(2), "{what}");
        // The flag with the bad value: the last one given.
        let flag = args
            .iter()
            .rev()
            .find(|arg| arg.starts_with("--"))
            .and_then(|arg| arg.split('=').next())
            .unwrap();
        assert!(out.stderr.contains(&format!("'{flag} <")), "{what}");
        assert!(!out.stderr.contains(variable), "{what}");
        assert!(!out.stderr.contains("configuration error"), "{what}");
    }
    // --bind has no variable; an address that cannot be one is a usage
    // error too, before anything is opened.
    for bind in ["nonsense", "127.0.0.1", "localhost:99999"] {
        let mut command = binary(temp.dir.path());
        command
            .args(["serve", "--bind", bind, "--database-url"])
            .arg(temp.url())
            .env("JWT_SECRET_KEY", SECRET);
        let out = run(command, None);
        let what = format!("{bind:?}: {out:?}");
        assert_eq!(out.status.code(), Some(2), "{what}");
        assert!(out.stderr.contains("'--bind <ADDR:PORT>'"), "{what}");
        assert!(!out.stderr.contains("INFO"), "{what}");
    }
}

#[test]
fn exit_codes_are_as_documented() {
    let temp = TempDb::new();
    // 2: the command line is wrong.
    for args in [
        vec!["no-such-command"],
        vec!["users", "list", "--no-such-flag"],
        vec!["token", "revoke"],
        vec!["completions", "tcsh"],
    ] {
        let mut command = binary(temp.dir.path());
        command.args(&args);
        let out = run(command, None);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {out:?}");
    }
    // 1: the command failed.
    assert_eq!(
        admin(&temp, &["users", "disable", "nobody"]).status.code(),
        Some(1)
    );
    // 0: it worked.
    assert_eq!(admin(&temp, &["users", "list"]).status.code(), Some(0));
}

#[test]
fn completions_are_generated_for_every_shell() {
    let temp = TempDb::new();
    for shell in ["bash", "zsh", "fish", "elvish", "powershell"] {
        let mut command = binary(temp.dir.path());
        command.args(["completions", shell]);
        let out = run(command, None);
        assert!(out.success(), "{shell}: {out:?}");
        for word in ["fastcore-security", "inspect", "hash-password", "json"] {
            assert!(out.stdout.contains(word), "{shell} lacks {word}");
        }
        assert!(out.stderr.is_empty(), "{shell}: {out:?}");
    }
    // It needs no database: nothing was created.
    assert!(!temp.dir.path().join("fastcore-security.db").exists());
}

#[test]
fn users_list_json() {
    let temp = TempDb::new();
    let list = |temp: &TempDb| {
        let out = admin(temp, &["users", "list", "--json"]);
        assert!(out.success(), "{out:?}");
        serde_json::from_str::<serde_json::Value>(&out.stdout)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {out:?}"))
    };
    assert_eq!(list(&temp), serde_json::json!([]));
    assert!(add_user(&temp, "ada", PASSWORD).success());
    let users = list(&temp);
    let users = users.as_array().unwrap();
    assert_eq!(users.len(), 1);
    assert_eq!(users[0]["username"], "ada");
    assert_eq!(users[0]["is_active"], true);
    assert!(users[0]["id"].is_string() && users[0]["created_at"].is_string());
    let text = serde_json::to_string(&users).unwrap();
    assert!(
        !text.contains("argon2") && !text.contains("password"),
        "{text}"
    );
}

#[test]
fn keys_list_json() {
    let temp = TempDb::new();
    let file = temp.dir.path().join("keys.json");
    for kid in ["k1", "k2"] {
        let mut command = binary(temp.dir.path());
        command
            .args(["keys", "generate", "--alg", "EdDSA", "--kid", kid, "--file"])
            .arg(&file);
        let out = run(command, None);
        assert!(out.success(), "{out:?}");
    }
    let mut command = binary(temp.dir.path());
    command
        .args(["keys", "list", "--json", "--file"])
        .arg(&file);
    let out = run(command, None);
    assert!(out.success(), "{out:?}");
    let keys: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(
        keys,
        serde_json::json!([
            {"kid": "k1", "alg": "EdDSA", "status": "verify", "created_at": keys[0]["created_at"], "kind": "private key"},
            {"kid": "k2", "alg": "EdDSA", "status": "active", "created_at": keys[1]["created_at"], "kind": "private key"},
        ]),
        "{out:?}"
    );
    assert!(!out.stdout.contains("PRIVATE KEY"));
}

#[tokio::test]
async fn token_inspect_json() {
    let temp = TempDb::new();
    let (security, access, _) = mint(&temp).await;
    let claims = security.decode_token(&access).unwrap();
    let inspect_json = |secret: Option<&str>| {
        let mut command = on_db(&temp, &["token", "inspect", "-", "--json"]);
        if let Some(secret) = secret {
            command.env("JWT_SECRET_KEY", secret);
        }
        let out = run(command, Some(&format!("{access}\n")));
        assert!(out.success(), "{out:?}");
        assert!(!out.stdout.contains(&access), "the token is echoed");
        serde_json::from_str::<serde_json::Value>(&out.stdout)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {out:?}"))
    };

    let without_key = inspect_json(None);
    assert_eq!(without_key["verified"], false);
    assert_eq!(without_key["header"]["alg"], "HS256");
    assert_eq!(without_key["claims"]["jti"], claims.jti.as_str());
    assert_eq!(without_key["verification"], serde_json::Value::Null);

    let with_key = inspect_json(Some(SECRET));
    let verification = &with_key["verification"];
    assert_eq!(verification["signature_valid"], true, "{with_key}");
    assert_eq!(verification["accepted"], true);
    assert_eq!(verification["refusal"], serde_json::Value::Null);
    assert_eq!(verification["store_record"]["state"], "live");
    assert_eq!(verification["store_record"]["user_id"], "user-1");
    assert_eq!(verification["store_record"]["token_type"], "access");

    security.revoke_token(&access).await.unwrap();
    let revoked = inspect_json(Some(SECRET));
    assert_eq!(revoked["verification"]["accepted"], false);
    assert_eq!(revoked["verification"]["store_record"]["state"], "revoked");
    assert!(revoked["verification"]["refusal"].is_string());

    // Garbage is still exit code 1, with nothing on stdout.
    let mut command = binary(temp.dir.path());
    command.args(["token", "inspect", "-", "--json"]);
    let out = run(command, Some("garbage\n"));
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(out.stdout.is_empty(), "{out:?}");
}

/// An unreadable `RUST_LOG` falls back to the default level, and says so
/// (it used to be ignored without a word).
#[test]
fn an_unreadable_rust_log_is_reported() {
    let temp = TempDb::new();
    let mut command = binary(temp.dir.path());
    command.env("RUST_LOG", "[[[").args(["completions", "bash"]);
    let out = run(command, None);
    assert!(out.success(), "{out:?}");
    assert!(
        out.stderr
            .contains("RUST_LOG is not a valid log filter; logging at the default level"),
        "{out:?}"
    );
    assert!(!out.stdout.is_empty());
}
