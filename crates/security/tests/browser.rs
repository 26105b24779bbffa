//! End to end in a real browser: the cookie example (`examples/cookies.rs`,
//! included here) served on a random port of 127.0.0.1, driven in headless
//! Chromium by `tests/browser/cookie_flow.mjs` (Node.js and playwright-core):
//! login through the page, refresh by cookie, forged form posts from
//! another origin and another site refused, logout deleting the cookie.
//!
//! Needs Debian's `chromium` (or `CHROMIUM=/path`), `node`, and
//! `npm ci --prefix crates/security/tests/browser`. Without them the test
//! passes after a `SKIPPED` line, unless `CI` is set: there it fails.

// A panic is a failed test.
#![allow(clippy::unwrap_used, clippy::panic)]

mod common;

#[allow(dead_code, unreachable_pub)]
#[path = "../examples/cookies.rs"]
mod cookies_example;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use common::servers::in_ci;

/// The whole browser run, launch included, stays well under a minute.
const RUN_TIMEOUT: Duration = Duration::from_secs(60);

fn script_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser")
}

/// What is missing to run the browser test, if anything.
fn missing_tools() -> Option<String> {
    let chromium = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    if !Path::new(&chromium).exists() {
        return Some(format!(
            "no {chromium} (apt-get install chromium chromium-driver)"
        ));
    }
    let node = std::process::Command::new("node")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    if !node.is_ok_and(|s| s.success()) {
        return Some("no node on PATH".into());
    }
    if !script_dir().join("node_modules/playwright-core").is_dir() {
        return Some("no playwright-core (npm ci --prefix crates/security/tests/browser)".into());
    }
    None
}

#[tokio::test]
async fn the_cookie_example_in_headless_chromium() {
    if let Some(missing) = missing_tools() {
        assert!(
            !in_ci(),
            "browser suite cannot run: {missing}; CI is set, so it must"
        );
        eprintln!("SKIPPED browser suite: {missing}");
        return;
    }
    let config = common::config_builder()
        .database_url("memory:")
        .build()
        .unwrap();
    let router = cookies_example::app(config).await.unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move {
        axum::serve(
            listener,
            router.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .await
    });

    let run = tokio::process::Command::new("node")
        .arg(script_dir().join("cookie_flow.mjs"))
        .arg(format!("http://{addr}"))
        .current_dir(script_dir())
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(RUN_TIMEOUT, run)
        .await
        .unwrap_or_else(|_| panic!("the browser run took over {RUN_TIMEOUT:?}"))
        .expect("node starts");
    server.abort();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    println!("{stdout}");
    assert!(
        output.status.success(),
        "the browser run failed ({}):\n{stdout}\n{stderr}",
        output.status
    );
    assert!(stdout.contains(" passed, 0 failed"), "{stdout}");
}
