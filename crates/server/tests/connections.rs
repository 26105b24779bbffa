//! Connection handling over raw sockets: slow or idle clients are
//! disconnected, the number of connections is capped, and shutdown does not
//! wait forever. Each test shortens the limit it checks to about a second
//! and waits at most [`common::SOCKET_PATIENCE`] for the server to act;
//! nothing asserts how fast anything is.

// Test code: a failed assumption fails the test.
#![allow(clippy::unwrap_used, clippy::panic)]

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use axum::routing::get;
use common::{
    SOCKET_PATIENCE, TestOptions, TestServer, closed_by_server, read_response, serve_in_background,
};
use fastcore_security_server::connections::ConnectionLimits;
use tokio::io::AsyncWriteExt as _;
use tokio::net::TcpStream;

const SHORT: Duration = Duration::from_secs(1);
const LONG: Duration = Duration::from_secs(600);

const HEALTH: &[u8] = b"GET /health HTTP/1.1\r\nHost: test\r\n\r\n";

fn limits(header: Duration, idle: Duration) -> ConnectionLimits {
    ConnectionLimits {
        header_timeout: header,
        idle_timeout: idle,
        ..ConnectionLimits::default()
    }
}

async fn connect(server: &TestServer) -> TcpStream {
    TcpStream::connect(server.addr()).await.unwrap()
}

/// Sends a login request head with `Expect: 100-continue` and waits for the
/// server's `100 Continue`, which hyper sends when the handler starts
/// reading the body: the request is then in progress for sure.
async fn send_head_and_wait_until_the_body_is_read(stream: &mut TcpStream) {
    use tokio::io::AsyncReadExt as _;
    stream
        .write_all(
            b"POST /auth/login HTTP/1.1\r\nHost: test\r\n\
              Content-Type: application/json\r\nContent-Length: 100\r\n\
              Expect: 100-continue\r\n\r\n",
        )
        .await
        .unwrap();
    let mut seen = Vec::new();
    let wait = async {
        while !seen.windows(4).any(|w| w == b"\r\n\r\n") {
            let mut byte = [0u8; 1];
            let n = stream.read(&mut byte).await.unwrap();
            assert!(n > 0, "closed before 100 Continue");
            seen.push(byte[0]);
        }
    };
    tokio::time::timeout(SOCKET_PATIENCE, wait)
        .await
        .expect("100 Continue");
    let text = String::from_utf8_lossy(&seen);
    assert!(text.starts_with("HTTP/1.1 100 Continue"), "{text}");
}

#[tokio::test]
async fn a_half_sent_request_head_is_disconnected_after_the_header_timeout() {
    let server = TestServer::start_with_limits(limits(SHORT, LONG)).await;
    let mut partial = connect(&server).await;
    partial
        .write_all(b"GET /health HTTP/1.1\r\nHost: test\r\nX-Slow: ")
        .await
        .unwrap();
    let mut silent = connect(&server).await;
    assert!(closed_by_server(&mut partial).await, "partial head");
    assert!(closed_by_server(&mut silent).await, "nothing sent at all");
    // The server still answers.
    let response = server.get("/health").await;
    assert_eq!(response.status(), 200);
}

#[tokio::test]
async fn an_idle_keep_alive_connection_is_closed_after_the_idle_timeout() {
    let server = TestServer::start_with_limits(limits(LONG, SHORT)).await;
    let mut stream = connect(&server).await;
    stream.write_all(HEALTH).await.unwrap();
    let response = read_response(&mut stream).await;
    assert_eq!(response.status, 200, "{response:?}");
    assert_ne!(response.header("connection"), Some("close"));
    assert!(closed_by_server(&mut stream).await);
}

#[tokio::test]
async fn the_idle_timeout_not_the_header_timeout_applies_between_requests() {
    let server = TestServer::start_with_limits(limits(SHORT, LONG)).await;
    let mut stream = connect(&server).await;
    stream.write_all(HEALTH).await.unwrap();
    assert_eq!(read_response(&mut stream).await.status, 200);
    // Longer than the header timeout between two requests: still served,
    // since the header timeout runs from the next request's first byte.
    tokio::time::sleep(SHORT * 2).await;
    stream.write_all(HEALTH).await.unwrap();
    assert_eq!(read_response(&mut stream).await.status, 200);
}

#[tokio::test]
async fn connections_over_the_cap_wait_until_one_closes() {
    let server = TestServer::start_with_limits(ConnectionLimits {
        max_connections: 2,
        ..limits(LONG, LONG)
    })
    .await;
    // Two connections take both slots (accepted in order, sending nothing).
    let mut first = connect(&server).await;
    let second = connect(&server).await;
    first.write_all(HEALTH).await.unwrap();
    assert_eq!(read_response(&mut first).await.status, 200);

    let mut third = connect(&server).await;
    third.write_all(HEALTH).await.unwrap();
    let early = tokio::time::timeout(SHORT / 2, read_response(&mut third)).await;
    assert!(early.is_err(), "served over the cap: {early:?}");

    // A slot frees when a connection closes; the third is then served.
    drop(first);
    let response = read_response(&mut third).await;
    assert_eq!(response.status, 200, "{response:?}");
    drop(second);
}

#[tokio::test]
async fn handlers_see_the_client_address() {
    let router = Router::new().route(
        "/whoami",
        get(|ConnectInfo(client): ConnectInfo<SocketAddr>| async move { client.to_string() }),
    );
    let (base, _stop, _served) = serve_in_background(router, ConnectionLimits::default()).await;
    let mut stream = TcpStream::connect(base.trim_start_matches("http://"))
        .await
        .unwrap();
    let local = stream.local_addr().unwrap();
    stream
        .write_all(b"GET /whoami HTTP/1.1\r\nHost: test\r\n\r\n")
        .await
        .unwrap();
    let response = read_response(&mut stream).await;
    assert_eq!(response.status, 200, "{response:?}");
    assert_eq!(response.body, local.to_string());
}

#[tokio::test]
async fn shutdown_closes_idle_and_half_sent_connections_without_waiting() {
    // Long limits everywhere: only the shutdown itself may close these.
    let mut server = TestServer::start_with(TestOptions {
        body_timeout: LONG,
        limits: ConnectionLimits {
            shutdown_timeout: LONG,
            ..limits(LONG, LONG)
        },
        ..TestOptions::default()
    })
    .await;
    let mut silent = connect(&server).await;
    let mut partial = connect(&server).await;
    partial
        .write_all(b"POST /auth/login HTTP/1.1\r\nHost: te")
        .await
        .unwrap();
    let mut idle = connect(&server).await;
    idle.write_all(HEALTH).await.unwrap();
    assert_eq!(read_response(&mut idle).await.status, 200);

    let stopped = server.shut_down();
    assert!(closed_by_server(&mut silent).await, "nothing sent");
    assert!(closed_by_server(&mut partial).await, "half a head");
    assert!(closed_by_server(&mut idle).await, "idle keep-alive");
    tokio::time::timeout(SOCKET_PATIENCE, stopped)
        .await
        .expect("the server stops without waiting for the shutdown timeout")
        .unwrap();
    assert!(
        TcpStream::connect(server.addr()).await.is_err(),
        "no longer listening"
    );
}

#[tokio::test]
async fn shutdown_drops_a_stuck_request_after_the_shutdown_timeout() {
    let mut server = TestServer::start_with(TestOptions {
        body_timeout: LONG,
        limits: ConnectionLimits {
            shutdown_timeout: SHORT,
            ..limits(LONG, LONG)
        },
        ..TestOptions::default()
    })
    .await;
    // A request whose body never comes: in progress until the body timeout.
    let mut stuck = connect(&server).await;
    send_head_and_wait_until_the_body_is_read(&mut stuck).await;
    stuck.write_all(b"{").await.unwrap();

    let stopped = server.shut_down();
    tokio::time::timeout(SOCKET_PATIENCE, stopped)
        .await
        .expect("the server stops after the shutdown timeout")
        .unwrap();
    assert!(closed_by_server(&mut stuck).await);
}

/// Everything the server sends back on `stream` until it closes (or the
/// patience runs out), its write half sending `request` meanwhile: hyper
/// may stop reading a request it refuses.
async fn exchange(stream: TcpStream, request: Vec<u8>) -> Vec<u8> {
    use tokio::io::AsyncReadExt as _;
    let (mut reader, mut writer) = stream.into_split();
    let sending = tokio::spawn(async move {
        // The server may close before reading it all.
        let _ = writer.write_all(&request).await;
        writer
    });
    let mut received = Vec::new();
    let read = async {
        let mut chunk = [0u8; 4096];
        loop {
            match reader.read(&mut chunk).await {
                Ok(0) | Err(_) => break,
                Ok(n) => received.extend_from_slice(&chunk[..n]),
            }
        }
    };
    tokio::time::timeout(SOCKET_PATIENCE, read)
        .await
        .expect("the server answers and closes");
    sending.abort();
    received
}

/// Requests hyper refuses before any route sees them (too many or too
/// large headers, a URI too long, a malformed head) get the problem+json
/// body every other error has, with their status, and the connection is
/// closed.
#[tokio::test]
async fn requests_that_cannot_be_parsed_get_a_problem_body() {
    let server = TestServer::start().await;
    let many_headers = {
        let mut head = b"GET /health HTTP/1.1\r\nHost: test\r\n".to_vec();
        for i in 0..150 {
            head.extend_from_slice(format!("X-Header-{i}: v\r\n").as_bytes());
        }
        head.extend_from_slice(b"\r\n");
        head
    };
    let huge_header = {
        let mut head = b"GET /health HTTP/1.1\r\nHost: test\r\nX-Huge: ".to_vec();
        head.extend(std::iter::repeat_n(b'a', 500_000));
        head.extend_from_slice(b"\r\n\r\n");
        head
    };
    let long_uri = {
        let mut head = b"GET /".to_vec();
        head.extend(std::iter::repeat_n(b'a', 70_000));
        head.extend_from_slice(b" HTTP/1.1\r\nHost: test\r\n\r\n");
        head
    };
    let malformed = b"GET /health HTTP/1.1\r\nHost: test\r\nno colon here\r\n\r\n".to_vec();
    for (what, request, status, code) in [
        ("150 headers", many_headers, 431, "headers_too_large"),
        ("a 500 KB header", huge_header, 431, "headers_too_large"),
        ("a 70 KB URI", long_uri, 414, "uri_too_long"),
        (
            "a header without a colon",
            malformed,
            400,
            "invalid_request",
        ),
    ] {
        let answer = exchange(connect(&server).await, request).await;
        let text = String::from_utf8_lossy(&answer);
        let (head, body) = text
            .split_once("\r\n\r\n")
            .unwrap_or_else(|| panic!("{what}: no response: {text:?}"));
        let mut lines = head.split("\r\n");
        let status_line = lines.next().unwrap();
        assert!(
            status_line.starts_with(&format!("HTTP/1.1 {status} ")),
            "{what}: {head}"
        );
        let headers: Vec<(String, String)> = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
            .collect();
        let header = |name: &str| {
            headers
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, v)| v.as_str())
        };
        assert_eq!(
            header("content-type"),
            Some("application/problem+json"),
            "{what}: {head}"
        );
        assert_eq!(header("connection"), Some("close"), "{what}");
        assert_eq!(
            header("content-length"),
            Some(body.len().to_string().as_str()),
            "{what}"
        );
        let json: serde_json::Value = serde_json::from_str(body).unwrap();
        assert_eq!(json["status"], status, "{what}: {json}");
        assert_eq!(json["code"], code, "{what}: {json}");
        assert_eq!(json["type"], "about:blank", "{what}");
        assert!(
            json["title"].is_string() && json["detail"].is_string(),
            "{what}"
        );
    }
    // The server is none the worse.
    let mut stream = connect(&server).await;
    stream.write_all(HEALTH).await.unwrap();
    assert_eq!(read_response(&mut stream).await.status, 200);
}
