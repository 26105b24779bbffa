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
    let body = serde_json::json!({
        "type": "about:blank",
        "title": status.canonical_reason().unwrap_or("Error"),
        "status": status.as_u16(),
        "detail": detail,
        "code": code,
    });
    let mut response = (status, body.to_string()).into_response();
    set_problem_headers(response.headers_mut());
    response
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
