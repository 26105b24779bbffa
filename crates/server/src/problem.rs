//! One error shape for the whole server: every error response is an RFC 9457
//! problem body (`application/problem+json` with `type`, `title`, `status`,
//! `detail` and `code`), like the library's own.
//!
//! The library's endpoints already answer that way. The responses made by
//! the layers around them were not: axum's 405 (empty), the body limit's 413
//! (text/plain), the timeout's 503 (empty). [`problem_responses`] is the one
//! place that fixes them up, keeping their status and headers (`Allow` on a
//! 405). It also puts a deadline on the request body: a client that stops
//! sending one gets 408, not a 503 after the whole request timeout.
//!
//! A request hyper cannot parse never reaches the router: hyper answers it
//! itself, with an empty body, and closes the connection (431 for a head
//! over its buffer or with too many headers, 414 for a URI too long, 400
//! for anything else malformed). [`crate::connections`] rewrites those
//! answers, on their way to the socket, into the same problem bodies
//! ([`parse_error_response`]).

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::{Body, Bytes, HttpBody};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse as _, Response};
use tower_http::timeout::{DeadlineBody, TimeoutError};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// How long a client may take to send a request body, counted from when its
/// headers are in. The auth endpoints' bodies are a few hundred bytes.
pub const DEFAULT_BODY_TIMEOUT: Duration = Duration::from_secs(10);

/// The media type of a problem body.
pub const PROBLEM_JSON: &str = "application/problem+json";

/// A problem response: `status` with a JSON body in the library's shape.
pub fn problem(status: StatusCode, code: &str, detail: &str) -> Response {
    let mut response = (status, problem_body(status, code, detail)).into_response();
    set_problem_headers(response.headers_mut());
    response
}

/// The JSON text of a problem body: `type`, `title`, `status`, `detail`, `code`.
pub fn problem_body(status: StatusCode, code: &str, detail: &str) -> String {
    serde_json::json!({
        "type": "about:blank",
        "title": status.canonical_reason().unwrap_or("Error"),
        "status": status.as_u16(),
        "detail": detail,
        "code": code,
    })
    .to_string()
}

fn set_problem_headers(headers: &mut HeaderMap) {
    headers.remove(header::CONTENT_LENGTH);
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
}

/// Middleware (for [`axum::middleware::from_fn_with_state`], with the body
/// timeout as state): gives the request body a deadline, and turns any error
/// response that is not JSON into a problem body.
pub async fn problem_responses(
    State(body_timeout): State<Duration>,
    request: Request,
    next: Next,
) -> Response {
    let method = request.method().clone();
    let timed_out = Arc::new(AtomicBool::new(false));
    let request = request.map(|body| {
        Body::new(DeadlinedBody {
            inner: Box::pin(DeadlineBody::new(body_timeout, body)),
            timed_out: Arc::clone(&timed_out),
        })
    });
    let response = next.run(request).await;
    if timed_out.load(Ordering::Relaxed) {
        // Whatever the handler made of a body cut short (the library calls
        // an unreadable body too large), the client was too slow.
        tracing::warn!(
            timeout_s = body_timeout.as_secs_f64(),
            "the client did not send the request body in time"
        );
        let mut response = problem(
            StatusCode::REQUEST_TIMEOUT,
            "request_timeout",
            "the request body was not received in time",
        );
        // The rest of the body may still arrive: do not read it as a request.
        response
            .headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
        return response;
    }
    if needs_problem_body(&response) {
        return into_problem(response, &method);
    }
    response
}

/// An error status without a JSON body (problem or plain JSON, as /health's 503).
fn needs_problem_body(response: &Response) -> bool {
    let status = response.status();
    if !(status.is_client_error() || status.is_server_error()) {
        return false;
    }
    let json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(|essence| {
            let essence = essence.trim().to_ascii_lowercase();
            essence == "application/json" || essence.ends_with("+json")
        });
    json != Some(true)
}

/// The same status and headers, with a problem body instead of the old one.
fn into_problem(response: Response, method: &Method) -> Response {
    let (mut parts, _old_body) = response.into_parts();
    let status = parts.status;
    let (code, detail) = match status {
        StatusCode::METHOD_NOT_ALLOWED => (
            "method_not_allowed",
            format!("this route does not accept {method}; the Allow header lists what it does"),
        ),
        StatusCode::PAYLOAD_TOO_LARGE => ("body_too_large", "the request body is too large".into()),
        StatusCode::REQUEST_TIMEOUT => (
            "request_timeout",
            "the request was not received in time".into(),
        ),
        StatusCode::SERVICE_UNAVAILABLE => (
            "service_unavailable",
            "the server could not answer in time; retry shortly".into(),
        ),
        StatusCode::NOT_FOUND => ("not_found", "no such route".into()),
        StatusCode::UNSUPPORTED_MEDIA_TYPE => (
            "unsupported_media_type",
            "the request body has an unsupported content type".into(),
        ),
        StatusCode::INTERNAL_SERVER_ERROR => {
            ("internal_error", "an internal error occurred".into())
        }
        _ if status.is_client_error() => ("invalid_request", "the request was refused".into()),
        _ => ("server_error", "the server could not answer".into()),
    };
    let fresh = problem(status, code, &detail);
    let (fresh_parts, body) = fresh.into_parts();
    set_problem_headers(&mut parts.headers);
    drop(fresh_parts);
    Response::from_parts(parts, body)
}

/// A request body with a deadline that remembers whether the deadline passed,
/// so the response can say 408 whatever the handler made of the error.
struct DeadlinedBody {
    inner: Pin<Box<DeadlineBody<Body>>>,
    timed_out: Arc<AtomicBool>,
}

impl HttpBody for DeadlinedBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, BoxError>>> {
        let polled = self.inner.as_mut().poll_frame(cx);
        if matches!(&polled, Poll::Ready(Some(Err(err))) if err.is::<TimeoutError>()) {
            self.timed_out.store(true, Ordering::Relaxed);
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

/// The problem response (head and body, as bytes for the socket) that
/// replaces hyper's own empty answer to a request it could not parse, or
/// `None` when `written` is not such an answer.
///
/// hyper writes those answers (400, 414, 431) as one head-only buffer,
/// `HTTP/1.1 <status> <reason>`, `connection: close`, `content-length: 0`,
/// maybe `date`, nothing else: a shape no response of the router has (its
/// error responses all carry a problem body). The date is kept.
pub fn parse_error_response(written: &[u8]) -> Option<Vec<u8>> {
    let text = std::str::from_utf8(written).ok()?;
    let head = text.strip_suffix("\r\n\r\n")?;
    let mut lines = head.split("\r\n");
    let status = lines.next()?.strip_prefix("HTTP/1.1 ")?;
    let (status, code, detail) = match status {
        "431 Request Header Fields Too Large" => (
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            "headers_too_large",
            "the request headers are too large or too many",
        ),
        "414 URI Too Long" => (
            StatusCode::URI_TOO_LONG,
            "uri_too_long",
            "the request URI is too long",
        ),
        "400 Bad Request" => (
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "the request is not valid HTTP/1.1",
        ),
        _ => return None,
    };
    let mut date = None;
    let mut closes = false;
    let mut empty = false;
    for line in lines {
        let (name, value) = line.split_once(": ")?;
        match name.to_ascii_lowercase().as_str() {
            "connection" if value == "close" => closes = true,
            "content-length" if value == "0" => empty = true,
            "date" => date = Some(value),
            _ => return None,
        }
    }
    if !(closes && empty) {
        return None;
    }
    let body = problem_body(status, code, detail);
    let mut response = format!(
        "HTTP/1.1 {status}\r\nconnection: close\r\ncontent-type: {PROBLEM_JSON}\r\n\
         cache-control: no-store\r\ncontent-length: {}\r\n",
        body.len()
    );
    if let Some(date) = date {
        response.push_str(&format!("date: {date}\r\n"));
    }
    response.push_str("\r\n");
    response.push_str(&body);
    Some(response.into_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_error_responses_get_a_problem_body_and_keep_their_headers() {
        let mut response = (StatusCode::METHOD_NOT_ALLOWED, "").into_response();
        response
            .headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static("POST"));
        assert!(needs_problem_body(&response));
        let fixed = into_problem(response, &Method::GET);
        assert_eq!(fixed.status(), StatusCode::METHOD_NOT_ALLOWED);
        assert_eq!(fixed.headers()[header::ALLOW], "POST");
        assert_eq!(fixed.headers()[header::CONTENT_TYPE], PROBLEM_JSON);
        assert!(!needs_problem_body(&fixed));
    }

    #[test]
    fn hypers_own_parse_error_answers_get_a_problem_body() {
        let hyper = b"HTTP/1.1 431 Request Header Fields Too Large\r\nconnection: close\r\n\
                      content-length: 0\r\ndate: Fri, 04 Dec 2026 17:04:15 GMT\r\n\r\n";
        let fixed = String::from_utf8(parse_error_response(hyper).unwrap()).unwrap();
        let (head, body) = fixed.split_once("\r\n\r\n").unwrap();
        assert!(head.starts_with("HTTP/1.1 431 Request Header Fields Too Large\r\n"));
        assert!(head.contains("\r\ncontent-type: application/problem+json"));
        assert!(head.contains("\r\nconnection: close"));
        assert!(head.contains("\r\ndate: Fri, 04 Dec 2026 17:04:15 GMT"));
        assert!(head.contains(&format!("\r\ncontent-length: {}", body.len())));
        let json: serde_json::Value = serde_json::from_str(body).unwrap();
        assert_eq!(json["status"], 431);
        assert_eq!(json["code"], "headers_too_large");
        for (line, status) in [
            ("HTTP/1.1 414 URI Too Long", 414),
            ("HTTP/1.1 400 Bad Request", 400),
        ] {
            let hyper = format!("{line}\r\nconnection: close\r\ncontent-length: 0\r\n\r\n");
            let fixed = String::from_utf8(parse_error_response(hyper.as_bytes()).unwrap()).unwrap();
            let body = fixed.split_once("\r\n\r\n").unwrap().1;
            let json: serde_json::Value = serde_json::from_str(body).unwrap();
            assert_eq!(json["status"], status);
        }
        // Anything else goes out as written: a response with a body, a
        // kept-alive one, other statuses, a body chunk.
        for other in [
            &b"HTTP/1.1 400 Bad Request\r\ncontent-type: application/problem+json\r\ncontent-length: 2\r\n\r\n"[..],
            b"HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-length: 0\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nconnection: close\r\ncontent-length: 0\r\n\r\n",
            b"HTTP/1.1 100 Continue\r\n\r\n",
            b"{\"ok\":true}",
            b"",
        ] {
            assert!(parse_error_response(other).is_none(), "{other:?}");
        }
    }

    #[test]
    fn json_and_successful_responses_are_left_alone() {
        let ok = (StatusCode::OK, "fine").into_response();
        assert!(!needs_problem_body(&ok));
        let mut health = (StatusCode::SERVICE_UNAVAILABLE, "{}").into_response();
        health.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json; charset=utf-8"),
        );
        assert!(!needs_problem_body(&health));
        let mut library = (StatusCode::UNAUTHORIZED, "{}").into_response();
        library
            .headers_mut()
            .insert(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
        assert!(!needs_problem_body(&library));
    }
}
