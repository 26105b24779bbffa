//! Shared helpers: an in-process server on a real listener, and the built
//! binary run as a child process with its output captured line by line.
//!
//! Nothing here sleeps to wait for a state: a test waits for the line that
//! proves the state it needs ("listening on ...", the demo credentials), for
//! a response, or for the process to exit. The timeouts are only a safety
//! net so a broken build fails instead of hanging CI.

#![allow(dead_code, unreachable_pub, missing_docs)]
// Test helpers fail the test by panicking, like `assert!` does.
#![allow(clippy::panic)]

pub mod backends;
// The per-test server helpers the library's tests use too.
#[path = "../../../security/tests/common/servers.rs"]
pub mod servers;

use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender, channel};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use fastcore_security::{Security, SecurityConfig, ValidationMode};
use fastcore_security_server::connections::{ConnectionLimits, serve_connections};
use fastcore_security_server::database::{Database, OpenOptions};
use fastcore_security_server::serve::app_with_body_timeout;
use fastcore_security_server::users::{Authenticator, User};
use serde_json::Value;
use tempfile::TempDir;

/// A signing secret for tests (64 bytes, long enough for every HMAC size).
pub const SECRET: &str = "test-secret-0123456789abcdef0123456789abcdef0123456789abcdef0123";

/// The password the tests give their users.
pub const PASSWORD: &str = "correct horse battery staple";

/// The safety-net wait for a line or an exit.
pub const PATIENCE: Duration = Duration::from_secs(120);

/// A temporary directory holding one SQLite database file.
#[derive(Debug)]
pub struct TempDb {
    pub dir: TempDir,
}

impl TempDb {
    pub fn new() -> Self {
        Self {
            dir: tempfile::tempdir().expect("a temporary directory"),
        }
    }

    pub fn path(&self) -> PathBuf {
        self.dir.path().join("test.db")
    }

    pub fn url(&self) -> String {
        format!("sqlite://{}", self.path().display())
    }

    pub async fn open(&self) -> Database {
        Database::open(&self.url())
            .await
            .expect("the database opens")
    }
}

pub fn config(url: &str) -> SecurityConfig {
    SecurityConfig::builder()
        .secret(SECRET)
        .database_url(url)
        .build()
        .expect("a valid test configuration")
}

/// How a [`TestServer`] serves: the production defaults unless a test
/// shortens a limit.
#[derive(Debug, Clone, Copy)]
pub struct TestOptions {
    pub body_timeout: Duration,
    pub limits: ConnectionLimits,
    pub validation_mode: ValidationMode,
}

impl Default for TestOptions {
    fn default() -> Self {
        Self {
            body_timeout: fastcore_security_server::problem::DEFAULT_BODY_TIMEOUT,
            limits: ConnectionLimits::default(),
            validation_mode: ValidationMode::Strict,
        }
    }
}

/// The server's router on 127.0.0.1:0, in this process, over its own
/// temporary database, served like `serve` serves it.
pub struct TestServer {
    pub base: String,
    pub db: Database,
    pub security: Security,
    pub client: reqwest::Client,
    /// The SQLite file's directory when the server made its own database.
    pub temp: Option<TempDb>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    served: Option<tokio::task::JoinHandle<()>>,
}

impl TestServer {
    pub async fn start() -> Self {
        Self::start_with(TestOptions::default()).await
    }

    pub async fn start_with_body_timeout(body_timeout: Duration) -> Self {
        Self::start_with(TestOptions {
            body_timeout,
            ..TestOptions::default()
        })
        .await
    }

    pub async fn start_with_limits(limits: ConnectionLimits) -> Self {
        Self::start_with(TestOptions {
            limits,
            ..TestOptions::default()
        })
        .await
    }

    pub async fn start_with(options: TestOptions) -> Self {
        let temp = TempDb::new();
        let mut server = Self::start_on_with(&temp.url(), &OpenOptions::default(), options).await;
        server.temp = Some(temp);
        server
    }

    /// A server on the database at `url` (opened and migrated here), as
    /// `serve --database-url URL` would run it. Several servers on one URL
    /// are several instances sharing one store.
    pub async fn start_on(url: &str, open: &OpenOptions) -> Self {
        Self::start_on_with(url, open, TestOptions::default()).await
    }

    pub async fn start_on_with(url: &str, open: &OpenOptions, options: TestOptions) -> Self {
        let db = Database::open_with(url, open)
            .await
            .unwrap_or_else(|e| panic!("the database opens: {e:#}"));
        let config = SecurityConfig::builder()
            .secret(SECRET)
            .database_url(url)
            .validation_mode(options.validation_mode)
            .sync_interval(Duration::from_millis(50))
            .build()
            .expect("a valid test configuration");
        let security = db.security(config).expect("security");
        let users = Arc::new(Authenticator::new(db.users(), security.passwords().clone()));
        let router = app_with_body_timeout(security.clone(), users, options.body_timeout);
        let (base, stop, served) = serve_in_background(router, options.limits).await;
        Self {
            base,
            db,
            security,
            client: reqwest::Client::new(),
            temp: None,
            stop: Some(stop),
            served: Some(served),
        }
    }

    /// Starts the graceful shutdown and returns the task that ends when
    /// the server has stopped.
    pub fn shut_down(&mut self) -> tokio::task::JoinHandle<()> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        self.served.take().expect("shut down once")
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// The listening address, for raw TCP clients.
    pub fn addr(&self) -> std::net::SocketAddr {
        self.base
            .trim_start_matches("http://")
            .parse()
            .expect("an address")
    }

    pub async fn add_user(&self, username: &str, password: &str) -> User {
        let hash = fastcore_security::get_password_hash(password)
            .await
            .expect("hash");
        self.db.users().create(username, &hash).await.expect("user")
    }

    pub async fn login_form(&self, username: &str, password: &str) -> reqwest::Response {
        self.client
            .post(self.url("/auth/login"))
            .form(&[
                ("grant_type", "password"),
                ("username", username),
                ("password", password),
                ("scope", ""),
                ("client_id", ""),
                ("client_secret", ""),
            ])
            .send()
            .await
            .expect("login request")
    }

    /// Logs in and returns (access token, refresh token).
    pub async fn tokens(&self, username: &str, password: &str) -> (String, String) {
        let response = self.login_form(username, password).await;
        assert_eq!(response.status(), 200, "login of {username}");
        let body: Value = response.json().await.expect("json");
        (
            body["access_token"].as_str().expect("access").to_owned(),
            body["refresh_token"].as_str().expect("refresh").to_owned(),
        )
    }

    pub async fn me(&self, access: &str) -> reqwest::Response {
        self.client
            .get(self.url("/auth/me"))
            .bearer_auth(access)
            .send()
            .await
            .expect("me request")
    }

    pub async fn logout(&self, access: &str) -> reqwest::Response {
        self.post_bearer("/auth/logout", access).await
    }

    pub async fn logout_all(&self, access: &str) -> reqwest::Response {
        self.post_bearer("/auth/logout-all", access).await
    }

    pub async fn post_bearer(&self, path: &str, token: &str) -> reqwest::Response {
        self.client
            .post(self.url(path))
            .bearer_auth(token)
            .send()
            .await
            .expect("request")
    }

    /// A plain `GET` of `path`.
    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.client
            .get(self.url(path))
            .send()
            .await
            .expect("GET request")
    }

    pub async fn health(&self) -> reqwest::Response {
        self.client
            .get(self.url("/health"))
            .send()
            .await
            .expect("health request")
    }

    pub async fn refresh_json(&self, refresh: &str) -> reqwest::Response {
        self.client
            .post(self.url("/auth/refresh"))
            .json(&serde_json::json!({ "refresh_token": refresh }))
            .send()
            .await
            .expect("refresh request")
    }
}

/// `GET {base}/auth/me` with `access` as the bearer token, for a server
/// run as a process.
pub async fn me_at(client: &reqwest::Client, base: &str, access: &str) -> reqwest::Response {
    client
        .get(format!("{base}/auth/me"))
        .bearer_auth(access)
        .send()
        .await
        .expect("me request")
}

/// The JSON body of `GET url`.
pub async fn get_json(client: &reqwest::Client, url: &str) -> Value {
    client
        .get(url)
        .send()
        .await
        .expect("GET request")
        .json()
        .await
        .expect("a JSON body")
}

/// The built binary, with an empty environment: no JWT_SECRET_KEY,
/// DATABASE_URL, RUST_LOG or APP_ENV leaks in from the developer's shell.
pub fn binary(dir: &Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_fastcore-security"));
    command.env_clear().current_dir(dir);
    command
}

/// What a finished command printed.
pub struct Output {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

impl Output {
    pub fn success(&self) -> bool {
        self.status.success()
    }
}

impl std::fmt::Debug for Output {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "status: {}\n--- stdout\n{}--- stderr\n{}",
            self.status, self.stdout, self.stderr
        )
    }
}

/// Runs `command` to completion, feeding `stdin` (if any) and closing it.
pub fn run(mut command: Command, stdin: Option<&str>) -> Output {
    command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = command.spawn().expect("the binary starts");
    let mut pipe = child.stdin.take().expect("stdin");
    if let Some(input) = stdin {
        // The command may exit before reading (e.g. a refused username).
        let _ = pipe.write_all(input.as_bytes());
    }
    drop(pipe);
    let out = child.wait_with_output().expect("the binary runs");
    Output {
        status: out.status,
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// Which pipe a line came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    Stdout,
    Stderr,
}

/// A long-running child (the server), its output read line by line by two
/// threads into a channel and into one capture of everything it printed.
pub struct Running {
    pub child: Child,
    lines: Receiver<(Stream, String)>,
    seen: Vec<(Stream, String)>,
    captured: Arc<Mutex<String>>,
}

fn pump(
    stream: Stream,
    pipe: impl Read + Send + 'static,
    tx: Sender<(Stream, String)>,
    all: Arc<Mutex<String>>,
) {
    std::thread::spawn(move || {
        for line in BufReader::new(pipe).lines() {
            let Ok(line) = line else { break };
            all.lock().expect("capture").push_str(&format!("{line}\n"));
            if tx.send((stream, line)).is_err() {
                // Nobody waits for lines any more; keep capturing.
            }
        }
    });
}

impl Running {
    pub fn spawn(mut command: Command) -> Self {
        command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = command.spawn().expect("the binary starts");
        let (tx, rx) = channel();
        let captured = Arc::new(Mutex::new(String::new()));
        pump(
            Stream::Stdout,
            child.stdout.take().expect("stdout"),
            tx.clone(),
            Arc::clone(&captured),
        );
        pump(
            Stream::Stderr,
            child.stderr.take().expect("stderr"),
            tx,
            Arc::clone(&captured),
        );
        Self {
            child,
            lines: rx,
            seen: Vec::new(),
            captured,
        }
    }

    /// The first line of `stream` (since the start) that satisfies
    /// `matches`, waiting for it if it has not been printed yet.
    pub fn wait_for(&mut self, stream: Stream, matches: impl Fn(&str) -> bool) -> String {
        let hit = |s: &Stream, line: &str| *s == stream && matches(line);
        if let Some((_, line)) = self.seen.iter().find(|(s, l)| hit(s, l)) {
            return line.clone();
        }
        loop {
            match self.lines.recv_timeout(PATIENCE) {
                Ok((s, line)) => {
                    let found = hit(&s, &line);
                    self.seen.push((s, line.clone()));
                    if found {
                        return line;
                    }
                }
                Err(RecvTimeoutError::Timeout) => {
                    panic!("no matching line; output so far:\n{}", self.captured())
                }
                Err(RecvTimeoutError::Disconnected) => {
                    panic!("the process ended first; output:\n{}", self.captured())
                }
            }
        }
    }

    /// Waits for the credentials `serve --demo` prints and returns the
    /// password: the line after its label, alone on it.
    pub fn demo_password(&mut self) -> String {
        const LABEL: &str = "password (shown only this once";
        self.wait_for(Stream::Stdout, |l| l.contains(LABEL));
        self.wait_for(Stream::Stdout, |l| l.contains("read -rs PW"));
        let stdout = self.lines_matching(Stream::Stdout, |_| true);
        let label = stdout
            .iter()
            .position(|l| l.contains(LABEL))
            .unwrap_or_else(|| panic!("no password label in {stdout:?}"));
        stdout[label + 1].clone()
    }

    /// Waits for the "listening on http://ADDR" log line; returns the base URL.
    pub fn wait_until_listening(&mut self) -> String {
        let line = self.wait_for(Stream::Stderr, |l| l.contains("listening on http://"));
        let start = line.find("http://").expect("url");
        line[start..]
            .split_whitespace()
            .next()
            .expect("url")
            .to_owned()
    }

    /// Sends SIGTERM and waits for the process to exit.
    pub fn terminate(&mut self) -> ExitStatus {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("kill runs");
        assert!(status.success(), "kill -TERM failed");
        self.child.wait().expect("the server exits")
    }

    /// Sends SIGTERM and waits at most `patience` for the process to exit;
    /// kills it and fails the test if it does not.
    pub fn terminate_within(&mut self, patience: Duration) -> ExitStatus {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("kill runs");
        assert!(status.success(), "kill -TERM failed");
        let started = std::time::Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return status;
            }
            if started.elapsed() > patience {
                let _ = self.child.kill();
                let _ = self.child.wait();
                panic!(
                    "still running {patience:?} after SIGTERM; output:\n{}",
                    self.captured()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Everything printed so far (complete once the process has exited and
    /// its pipes are drained).
    pub fn captured(&self) -> String {
        self.captured.lock().expect("capture").clone()
    }

    /// Waits until both pipes are closed, so `captured` is complete.
    pub fn drain(&mut self) {
        while let Ok(line) = self.lines.recv_timeout(PATIENCE) {
            self.seen.push(line);
        }
    }

    /// The lines of `stream` that satisfy `matches`, among those seen so far.
    pub fn lines_matching(&self, stream: Stream, matches: impl Fn(&str) -> bool) -> Vec<String> {
        self.seen
            .iter()
            .filter(|(s, l)| *s == stream && matches(l))
            .map(|(_, l)| l.clone())
            .collect()
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Serves `router` with `limits` on 127.0.0.1:0 in a background task, as
/// `serve` does. Returns the base URL, the shutdown trigger, and the task.
pub async fn serve_in_background(
    router: axum::Router,
    limits: ConnectionLimits,
) -> (
    String,
    tokio::sync::oneshot::Sender<()>,
    tokio::task::JoinHandle<()>,
) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let served = tokio::spawn(serve_connections(listener, router, limits, async move {
        // A dropped trigger (the test ended) also stops the server.
        let _ = stopped.await;
    }));
    (format!("http://{addr}"), stop, served)
}

/// Waits for the server to close `stream`: true if it did (end of stream or
/// a reset) within [`SOCKET_PATIENCE`], false if the connection is still
/// open then. Bytes the server sends first are skipped.
pub async fn closed_by_server(stream: &mut tokio::net::TcpStream) -> bool {
    use tokio::io::AsyncReadExt as _;
    let wait = async {
        let mut chunk = [0u8; 4096];
        loop {
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    };
    tokio::time::timeout(SOCKET_PATIENCE, wait).await.is_ok()
}

/// The safety net for raw-socket waits in async tests: long enough for a
/// loaded CI machine, short enough that a server that never answers (or
/// never closes) fails the test instead of hanging it.
pub const SOCKET_PATIENCE: Duration = Duration::from_secs(30);

/// One HTTP/1.1 response read off a raw socket.
#[derive(Debug)]
pub struct RawResponse {
    pub status: u16,
    /// Header names lowercased.
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl RawResponse {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).expect("a JSON body")
    }
}

/// Reads one response (status line, headers, a Content-Length body) from
/// `stream`, failing the test if it does not arrive within [`SOCKET_PATIENCE`].
pub async fn read_response(stream: &mut tokio::net::TcpStream) -> RawResponse {
    use tokio::io::AsyncReadExt as _;
    let read = async {
        let mut buffer = Vec::new();
        let head_end = loop {
            if let Some(at) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
                break at + 4;
            }
            let mut chunk = [0u8; 4096];
            let n = stream.read(&mut chunk).await.expect("read");
            assert!(n > 0, "connection closed before a response: {buffer:?}");
            buffer.extend_from_slice(&chunk[..n]);
        };
        let head = String::from_utf8_lossy(&buffer[..head_end]).into_owned();
        let mut lines = head.split("\r\n");
        let status_line = lines.next().expect("status line");
        let status = status_line
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("bad status line {status_line:?}"));
        let headers: Vec<(String, String)> = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
            .collect();
        let length: usize = headers
            .iter()
            .find(|(n, _)| n == "content-length")
            .map_or(0, |(_, v)| v.parse().expect("content-length"));
        let mut body = buffer[head_end..].to_vec();
        while body.len() < length {
            let mut chunk = [0u8; 4096];
            let n = stream.read(&mut chunk).await.expect("read");
            assert!(n > 0, "connection closed in the body");
            body.extend_from_slice(&chunk[..n]);
        }
        RawResponse {
            status,
            headers,
            body: String::from_utf8_lossy(&body).into_owned(),
        }
    };
    tokio::time::timeout(SOCKET_PATIENCE, read)
        .await
        .unwrap_or_else(|_| panic!("no response within {SOCKET_PATIENCE:?}"))
}
