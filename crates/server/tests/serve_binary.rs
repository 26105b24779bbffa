//! `fastcore-security serve` as a real process: start-up refusals, the
//! `--demo` credentials, graceful shutdown, and what reaches the log.

// Test code: a failed assumption fails the test.
#![allow(clippy::unwrap_used, clippy::panic)]

mod common;

use common::{Running, SECRET, Stream, TempDb, binary, get_json, me_at, run};
use serde_json::Value;

fn serve(temp: &TempDb) -> std::process::Command {
    let mut command = binary(temp.dir.path());
    command
        .args(["serve", "--bind", "127.0.0.1:0", "--database-url"])
        .arg(temp.url());
    command
}

#[test]
fn serve_without_a_secret_and_without_demo_exits_1_naming_jwt_secret_key() {
    let temp = TempDb::new();
    let out = run(serve(&temp), None);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let lines: Vec<&str> = out.stderr.lines().collect();
    assert_eq!(lines.len(), 1, "one clear line: {out:?}");
    assert!(lines[0].starts_with("error: "), "{out:?}");
    assert!(lines[0].contains("JWT_SECRET_KEY is not set"), "{out:?}");
    assert!(
        lines[0].contains("--demo"),
        "points at the demo mode: {out:?}"
    );
    assert!(!out.stderr.contains("panicked"), "{out:?}");
    assert!(out.stdout.is_empty(), "{out:?}");
    assert!(
        !temp.path().exists(),
        "configuration is checked before the database"
    );

    // In production the hint would be wrong: no --demo there.
    let mut command = serve(&temp);
    command.env("APP_ENV", "production");
    let out = run(command, None);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(out.stderr.contains("JWT_SECRET_KEY is not set"), "{out:?}");
    assert!(!out.stderr.contains("--demo"), "{out:?}");
}

#[test]
fn a_short_secret_is_refused_with_a_clear_message() {
    let temp = TempDb::new();
    let mut command = serve(&temp);
    command.env("JWT_SECRET_KEY", "too-short-secret");
    let out = run(command, None);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert_eq!(out.stderr.lines().count(), 1, "{out:?}");
    assert!(
        out.stderr
            .contains("JWT_SECRET_KEY is 16 bytes long; HS256 needs at least 32"),
        "{out:?}"
    );
    assert!(
        !out.stderr.contains("too-short-secret"),
        "never echo it: {out:?}"
    );
    // --demo does not paper over a bad secret that was given.
    let mut command = serve(&temp);
    command
        .arg("--demo")
        .env("JWT_SECRET_KEY", "too-short-secret");
    assert_eq!(run(command, None).status.code(), Some(1));
}

#[test]
fn demo_mode_is_refused_in_production() {
    let temp = TempDb::new();
    for variable in ["APP_ENV", "FASTCORE_ENV", "ENVIRONMENT"] {
        let mut command = serve(&temp);
        command.arg("--demo").env(variable, "production");
        let out = run(command, None);
        assert_eq!(out.status.code(), Some(1), "{variable}: {out:?}");
        // Straight to the point: not "set JWT_SECRET_KEY", which would
        // only lead to this refusal next.
        assert!(out.stderr.contains("--demo is not allowed"), "{out:?}");
        assert!(!out.stderr.contains("Set JWT_SECRET_KEY"), "{out:?}");
        assert!(!out.stdout.contains("password"), "{out:?}");
    }
    // Not even with a real secret: a production server gets no demo user.
    let mut command = serve(&temp);
    command
        .arg("--demo")
        .env("APP_ENV", "production")
        .env("JWT_SECRET_KEY", SECRET);
    let out = run(command, None);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(out.stderr.contains("--demo is not allowed"), "{out:?}");
    assert!(!out.stdout.contains("password"), "{out:?}");
}

#[test]
fn a_bind_failure_is_one_clear_line() {
    // A well-formed address that cannot be bound: the port is taken.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let taken = taken.local_addr().unwrap().to_string();
    let temp = TempDb::new();
    let mut command = binary(temp.dir.path());
    command
        .args(["serve", "--bind", &taken, "--database-url"])
        .arg(temp.url())
        .env("JWT_SECRET_KEY", SECRET);
    let out = run(command, None);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let error = out.stderr.lines().last().unwrap_or_default();
    assert!(
        error.starts_with(&format!("error: cannot listen on {taken}: ")),
        "{out:?}"
    );
}

fn extract(line: &str, label: &str) -> String {
    line.split_once(label)
        .map(|(_, v)| v.trim().to_owned())
        .unwrap_or_else(|| panic!("no {label} in {line:?}"))
}

#[tokio::test]
async fn serve_demo_prints_working_credentials_once() {
    let temp = TempDb::new();
    let mut command = serve(&temp);
    command.arg("--demo");
    let mut server = Running::spawn(command);
    let username = extract(
        &server.wait_for(Stream::Stdout, |l| l.contains("username:")),
        "username:",
    );
    let password = server.demo_password();
    let login_hint = server.wait_for(Stream::Stdout, |l| l.contains("curl"));
    let base = server.wait_until_listening();
    assert_eq!(username, "demo");
    assert!(password.len() >= 20, "a strong random password");
    assert!(
        password.chars().all(|c| c.is_ascii_alphanumeric()),
        "alone on its line: {password:?}"
    );
    server.wait_for(Stream::Stderr, |l| l.contains("DEVELOPMENT secret"));
    assert!(
        login_hint.contains(&format!("{base}/auth/login")),
        "{login_hint}"
    );
    // The login command reads the password from $PW: it never holds it.
    assert!(login_hint.contains("\"password=$PW\""), "{login_hint}");
    assert!(!login_hint.contains(&password), "{login_hint}");

    let client = reqwest::Client::new();
    let response = client
        .post(format!("{base}/auth/login"))
        .form(&[("username", &username), ("password", &password)])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let pair: Value = response.json().await.unwrap();
    let response = client
        .get(format!("{base}/auth/me"))
        .bearer_auth(pair["access_token"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let me: Value = response.json().await.unwrap();
    assert_eq!(me["username"], "demo");
    let health: Value = get_json(&client, &format!("{base}/health")).await;
    assert_eq!(health["development_secret"], true);

    assert!(server.terminate().success());
    server.drain();
    let log = server.captured();
    assert_eq!(log.matches(&password).count(), 1, "printed once");
    let logged = server.lines_matching(Stream::Stderr, |l| l.contains(&password));
    assert!(logged.is_empty(), "never through the log: {logged:?}");

    // A second start on the same database creates nobody, shows no password,
    // and says on stdout (where the credentials were) how to get back in.
    let mut command = serve(&temp);
    command.arg("--demo");
    let mut again = Running::spawn(command);
    again.wait_until_listening();
    assert!(again.terminate().success());
    again.drain();
    let stdout = again.lines_matching(Stream::Stdout, |_| true).join("\n");
    assert!(
        stdout.contains("already has users, so no demo user was created"),
        "{}",
        again.captured()
    );
    assert!(
        stdout.contains("fastcore-security users add NAME --database-url"),
        "{stdout}"
    );
    assert!(
        stdout.contains(&format!("delete {}", temp.path().display())),
        "{stdout}"
    );
    assert!(!stdout.contains("password (shown"), "{stdout}");
    assert!(!again.captured().contains(&password));
    assert!(again.captured().contains("not creating the demo user"));
}

/// Runs the whole walk-through against the binary with RUST_LOG=debug and
/// checks that no password, token or secret reached the output.
#[tokio::test]
async fn the_log_never_contains_passwords_tokens_or_the_secret() {
    let temp = TempDb::new();
    let password = "pw-that-must-never-be-logged-7f3a";
    let mut command = binary(temp.dir.path());
    command
        .args(["users", "add", "ada", "--database-url"])
        .arg(temp.url());
    assert!(run(command, Some(&format!("{password}\n"))).success());

    let mut command = serve(&temp);
    command
        .env("JWT_SECRET_KEY", SECRET)
        .env("RUST_LOG", "debug");
    let mut server = Running::spawn(command);
    let base = server.wait_until_listening();
    let client = reqwest::Client::new();
    let mut secrets: Vec<String> = vec![password.to_owned(), SECRET.to_owned()];

    // Wrong password, then the walk-through.
    let wrong = client
        .post(format!("{base}/auth/login"))
        .form(&[
            ("username", "ada"),
            ("password", "wrong-password-also-secret"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), 401);
    secrets.push("wrong-password-also-secret".into());
    let pair: Value = client
        .post(format!("{base}/auth/login"))
        .json(&serde_json::json!({ "username": "ada", "password": password }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let access = pair["access_token"].as_str().unwrap().to_owned();
    let refresh = pair["refresh_token"].as_str().unwrap().to_owned();
    let me = me_at(&client, &base, &access).await;
    assert_eq!(me.status(), 200);
    let refreshed: Value = client
        .post(format!("{base}/auth/refresh"))
        .form(&[("grant_type", "refresh_token"), ("refresh_token", &refresh)])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let refreshed = refreshed["access_token"].as_str().unwrap().to_owned();
    // Tokens where they do not belong: the query string, an unknown path.
    let in_query = client
        .post(format!("{base}/auth/refresh?refresh_token={refresh}"))
        .send()
        .await
        .unwrap();
    assert_eq!(in_query.status(), 400);
    let in_path = client
        .get(format!("{base}/auth/me/{access}"))
        .send()
        .await
        .unwrap();
    assert_eq!(in_path.status(), 404);
    let malformed = client
        .post(format!("{base}/auth/login"))
        .header("content-type", "application/json")
        .body(format!(r#"{{"username":"ada","password":"{password}""#))
        .send()
        .await
        .unwrap();
    assert_eq!(malformed.status(), 400);
    let logout = client
        .post(format!("{base}/auth/logout"))
        .bearer_auth(&access)
        .send()
        .await
        .unwrap();
    assert_eq!(logout.status(), 204);
    let after = me_at(&client, &base, &access).await;
    assert_eq!(after.status(), 401);

    assert!(server.terminate().success(), "SIGTERM stops it cleanly");
    server.drain();
    let log = server.captured();
    // The log was captured at debug level, with the requests in it ...
    assert!(log.contains("DEBUG"), "{log}");
    assert!(log.contains("path=/auth/login"), "{log}");
    assert!(log.contains("status=401"), "{log}");
    // A failed login names the client's address (to spot brute force), not the user.
    let failed_login = log
        .lines()
        .find(|l| l.contains("status=401") && l.contains("path=/auth/login"))
        .unwrap_or_else(|| panic!("no failed login line:\n{log}"));
    assert!(failed_login.contains("client=127.0.0.1:"), "{failed_login}");
    assert!(!failed_login.contains("ada"), "{failed_login}");
    assert!(log.contains("path=(no route)"), "{log}");
    assert!(log.contains("shutting down"), "{log}");
    // ... and nothing secret.
    secrets.extend([access.clone(), refresh.clone(), refreshed]);
    for token in [&access, &refresh] {
        // Not even the signature or the claims segment alone.
        secrets.extend(token.split('.').skip(1).map(str::to_owned));
    }
    for secret in &secrets {
        assert!(
            !log.contains(secret.as_str()),
            "the log contains {secret:?}:\n{log}"
        );
    }
    assert!(
        !log.to_lowercase().contains("authorization: bearer"),
        "{log}"
    );
}

#[tokio::test]
async fn a_stalled_body_is_answered_408_and_logged_as_a_warning_not_an_error() {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let temp = TempDb::new();
    let mut command = serve(&temp);
    command
        .args(["--body-timeout", "1s"])
        .env("JWT_SECRET_KEY", SECRET);
    let mut server = Running::spawn(command);
    let base = server.wait_until_listening();
    let addr = base.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream
        .write_all(
            b"POST /auth/login HTTP/1.1\r\nHost: test\r\n\
              Content-Type: application/json\r\nContent-Length: 64\r\n\r\n{\"user",
        )
        .await
        .unwrap();
    let mut response = Vec::new();
    let read = tokio::time::timeout(
        std::time::Duration::from_secs(30),
        stream.read_to_end(&mut response),
    )
    .await;
    assert!(
        read.is_ok(),
        "the server closes the connection after its 408"
    );
    let response = String::from_utf8_lossy(&response);
    assert!(response.starts_with("HTTP/1.1 408"), "{response}");
    assert!(
        response.contains("\"code\":\"request_timeout\""),
        "{response}"
    );

    assert!(server.terminate().success());
    server.drain();
    let log = server.captured();
    assert!(
        log.lines()
            .any(|l| l.contains("WARN") && l.contains("request body in time")),
        "{log}"
    );
    assert!(log.contains("status=408"), "{log}");
    assert!(!log.contains("ERROR"), "{log}");
}

/// A request head the client never finishes, and one whose body never
/// comes: SIGTERM still stops the server, within the shutdown timeout, with
/// exit code 0.
#[tokio::test]
async fn sigterm_stops_the_server_despite_stuck_clients() {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let temp = TempDb::new();
    let mut command = serve(&temp);
    command
        .args([
            "--header-timeout",
            "10m",
            "--idle-timeout",
            "10m",
            "--body-timeout",
            "10m",
            "--shutdown-timeout",
            "1s",
        ])
        .env("JWT_SECRET_KEY", SECRET);
    let mut server = Running::spawn(command);
    let base = server.wait_until_listening();
    let addr = base.trim_start_matches("http://");

    let mut half_head = tokio::net::TcpStream::connect(addr).await.unwrap();
    half_head
        .write_all(b"POST /auth/login HTTP/1.1\r\nHost: te")
        .await
        .unwrap();
    // The body's first byte never comes. Expect: 100-continue tells us when
    // the handler has started reading it, so the request is in progress.
    let mut no_body = tokio::net::TcpStream::connect(addr).await.unwrap();
    no_body
        .write_all(
            b"POST /auth/login HTTP/1.1\r\nHost: test\r\n\
              Content-Type: application/json\r\nContent-Length: 64\r\n\
              Expect: 100-continue\r\n\r\n",
        )
        .await
        .unwrap();
    let mut continue_line = [0u8; 12];
    tokio::time::timeout(
        std::time::Duration::from_secs(30),
        no_body.read_exact(&mut continue_line),
    )
    .await
    .expect("100 Continue")
    .unwrap();
    assert_eq!(&continue_line, b"HTTP/1.1 100");

    let status = server.terminate_within(std::time::Duration::from_secs(30));
    assert_eq!(status.code(), Some(0), "{}", server.captured());
    server.drain();
    let log = server.captured();
    assert!(
        log.contains("closing the connections still open after the shutdown timeout"),
        "{log}"
    );
    assert!(log.contains("stopped"), "{log}");
}

/// `serve` run through `sh` with `ulimit ULIMIT` applied first.
#[cfg(target_os = "linux")]
fn serve_under_ulimit(temp: &TempDb, ulimit: &str, max_connections: &str) -> Running {
    let mut command = std::process::Command::new("/bin/sh");
    command
        .env_clear()
        .current_dir(temp.dir.path())
        .env("JWT_SECRET_KEY", SECRET)
        .arg("-c")
        .arg(format!("ulimit {ulimit} && exec \"$0\" \"$@\""))
        .arg(env!("CARGO_BIN_EXE_fastcore-security"))
        .args(["serve", "--bind", "127.0.0.1:0", "--database-url"])
        .arg(temp.url())
        .args(["--max-connections", max_connections]);
    Running::spawn(command)
}

/// (soft, hard) "Max open files" of a process, from /proc.
#[cfg(target_os = "linux")]
fn open_file_limits(pid: &str) -> (u64, u64) {
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).unwrap();
    let line = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .unwrap();
    let numbers: Vec<u64> = line
        .split_whitespace()
        .filter_map(|w| w.parse().ok())
        .collect();
    (numbers[0], numbers[1])
}

/// macOS starts processes with a soft limit of 256 open files: the default
/// cap would have been unreachable, and accept failed with "Too many open
/// files" instead. The server raises the soft limit to fit.
#[cfg(target_os = "linux")]
#[test]
fn serve_raises_a_low_open_file_limit_to_fit_max_connections() {
    let (_, hard) = open_file_limits("self");
    if hard < 1064 {
        eprintln!("skipped: the hard open-file limit ({hard}) is too low for this test");
        return;
    }
    let temp = TempDb::new();
    let mut server = serve_under_ulimit(&temp, "-S -n 256", "1000");
    server.wait_until_listening();
    let (soft, _) = open_file_limits(&server.child.id().to_string());
    assert!(soft >= 1064, "soft limit {soft}:\n{}", server.captured());
    assert!(server.terminate().success());
    server.drain();
    let log = server.captured();
    assert!(log.contains("max_connections=1000"), "{log}");
    assert!(!log.contains("open-file limit allows"), "{log}");
}

/// When the hard limit is too low, the cap is lowered to fit, with a warning.
#[cfg(target_os = "linux")]
#[test]
fn serve_lowers_max_connections_to_a_hard_open_file_limit() {
    let temp = TempDb::new();
    let mut server = serve_under_ulimit(&temp, "-S -n 200 && ulimit -H -n 200", "1000");
    server.wait_until_listening();
    assert!(server.terminate().success());
    server.drain();
    let log = server.captured();
    assert!(
        log.lines()
            .any(|l| l.contains("WARN") && l.contains("open-file limit allows")),
        "{log}"
    );
    assert!(log.contains("max_connections=136"), "{log}");
}

/// The login throttle as `serve` runs it: in the database's own table,
/// limits from the flags and the environment, a 429 with `Retry-After`
/// once an account's failures are used up, and never the username in
/// the log.
#[tokio::test]
async fn serve_throttles_failed_logins_with_its_flags_and_environment() {
    let temp = TempDb::new();
    let mut command = serve(&temp);
    command
        .args(["--login-max-failures-per-account", "2"])
        .args(["--login-throttle-window", "10m"])
        .env("LOGIN_MAX_FAILURES_PER_ADDRESS", "3")
        .env("LOGIN_FAILURE_FLOOR_MS", "50")
        .env("JWT_SECRET_KEY", SECRET);
    let mut server = Running::spawn(command);
    let base = server.wait_until_listening();
    let config = server.wait_for(Stream::Stderr, |l| l.contains("login throttle"));
    for expected in [
        "sqlite",
        "max_failures_per_account=2",
        "max_failures_per_address=3",
        "window_s=600",
        "failure_floor_ms=50",
    ] {
        assert!(config.contains(expected), "{expected}: {config}");
    }

    let client = reqwest::Client::new();
    let login = |name: &'static str| {
        client
            .post(format!("{base}/auth/login"))
            .form(&[("username", name), ("password", "wrong password")])
            .send()
    };
    let name = "throttled-name-5813";
    assert_eq!(login(name).await.unwrap().status(), 401);
    assert_eq!(login(name).await.unwrap().status(), 401);
    let refused = login(name).await.unwrap();
    assert_eq!(refused.status(), 429);
    let retry_after: u64 = refused.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=600).contains(&retry_after), "{retry_after}");
    let problem: Value = refused.json().await.unwrap();
    assert_eq!(problem["code"], "too_many_attempts");
    // The address's third failure (the refusal did not count), then its limit.
    assert_eq!(login("another-name").await.unwrap().status(), 401);
    assert_eq!(login("a-third-name").await.unwrap().status(), 429);

    assert!(server.terminate().success());
    server.drain();
    let log = server.captured();
    assert!(log.contains("status=429"), "{log}");
    assert!(log.contains("login throttle engaged"), "{log}");
    for name in [name, "another-name", "a-third-name"] {
        assert!(!log.contains(name), "{name} in the log:\n{log}");
    }
}
