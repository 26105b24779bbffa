//! Small, bounded parsing of the auth endpoints' bodies: OAuth2 forms
//! (`application/x-www-form-urlencoded`) and JSON.

use axum::body::Body;
use axum::http::{HeaderMap, header, request::Parts};
use serde::de::DeserializeOwned;

use super::rejection::AuthRejection;

/// Auth bodies are a few hundred bytes; anything bigger is refused unread.
pub(crate) const MAX_AUTH_BODY_BYTES: usize = 16 * 1024;

pub(crate) enum BodyKind {
    Json,
    Form,
}

fn kind_of(headers: &HeaderMap) -> Option<BodyKind> {
    let ct = headers.get(header::CONTENT_TYPE)?.to_str().ok()?;
    let essence = ct.split(';').next()?.trim().to_ascii_lowercase();
    match essence.as_str() {
        "application/json" => Some(BodyKind::Json),
        "application/x-www-form-urlencoded" => Some(BodyKind::Form),
        e if e.starts_with("application/") && e.ends_with("+json") => Some(BodyKind::Json),
        _ => None,
    }
}

/// Reads the whole body, refusing more than [`MAX_AUTH_BODY_BYTES`]
/// (413): at once, unread, when `Content-Length` (or the body's own size)
/// already says so, instead of waiting for bytes that would be refused.
/// A body that cannot be read (a malformed chunk, a connection closed
/// before `Content-Length` bytes came) is a bad request (400), not a
/// large one.
pub(crate) async fn read_limited(
    headers: &HeaderMap,
    body: Body,
) -> Result<axum::body::Bytes, AuthRejection> {
    use axum::body::HttpBody as _;
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .unwrap_or(0);
    let limit = MAX_AUTH_BODY_BYTES as u64;
    if declared > limit || body.size_hint().lower() > limit {
        return Err(AuthRejection::BodyTooLarge);
    }
    axum::body::to_bytes(body, MAX_AUTH_BODY_BYTES)
        .await
        .map_err(|err| {
            if over_limit(&err) {
                AuthRejection::BodyTooLarge
            } else {
                AuthRejection::InvalidRequest("the request body could not be read".into())
            }
        })
}

/// Whether a body error is a length limit's (this one's, or a limit layer's
/// such as tower-http's `RequestBodyLimitLayer`, which uses the same type).
fn over_limit(err: &axum::Error) -> bool {
    let mut next: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(cause) = next {
        if cause.is::<http_body_util::LengthLimitError>() {
            return true;
        }
        next = cause.source();
    }
    false
}

/// Parses a JSON or form body into `T`. Error texts name the expected
/// fields, never the values sent (which may be passwords or tokens).
pub(crate) fn parse<T: DeserializeOwned>(
    headers: &HeaderMap,
    bytes: &[u8],
    expected: &str,
) -> Result<T, AuthRejection> {
    let bad = || AuthRejection::InvalidRequest(format!("the body must contain {expected}"));
    match kind_of(headers) {
        Some(BodyKind::Json) => serde_json::from_slice(bytes).map_err(|_| bad()),
        Some(BodyKind::Form) => serde_urlencoded::from_bytes(bytes).map_err(|_| bad()),
        None => Err(AuthRejection::InvalidRequest(format!(
            "send {expected} as application/x-www-form-urlencoded or application/json"
        ))),
    }
}

/// Refuses credentials or tokens in the URL: they would end up in access
/// logs, proxies and browser history.
pub(crate) fn refuse_secrets_in_query(parts: &Parts) -> Result<(), AuthRejection> {
    let Some(query) = parts.uri.query() else {
        return Ok(());
    };
    let secret_names = ["refresh_token", "access_token", "password", "token"];
    let leaks = form_urlencoded_keys(query).any(|k| secret_names.contains(&k.as_str()));
    if leaks {
        return Err(AuthRejection::InvalidRequest(
            "tokens and passwords must be sent in the request body, never in the URL".into(),
        ));
    }
    Ok(())
}

fn form_urlencoded_keys(query: &str) -> impl Iterator<Item = String> + '_ {
    serde_urlencoded::from_str::<Vec<(String, String)>>(query)
        .unwrap_or_default()
        .into_iter()
        .map(|(k, _)| k)
}

/// Whether a request carries a body worth parsing.
pub(crate) fn has_body(headers: &HeaderMap) -> bool {
    headers.contains_key(header::CONTENT_TYPE)
}
