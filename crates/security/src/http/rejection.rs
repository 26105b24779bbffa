//! How errors become HTTP responses: RFC 6750 challenges and RFC 9457
//! problem bodies with a stable `code`.

use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use crate::error::Error;

/// Why an auth extractor or endpoint refused a request. Implements
/// [`IntoResponse`]; applications can match on it to remap responses.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AuthRejection {
    /// No `Authorization: Bearer` credentials were sent.
    #[error("authentication is required")]
    MissingToken,
    /// The request is malformed (a body of the wrong type, a missing field,
    /// a refresh token in the URL, several `Authorization` headers).
    #[error("invalid request: {0}")]
    InvalidRequest(String),
    /// The named resource (a session id) does not exist for this user.
    #[error("not found: {0}")]
    NotFound(String),
    /// The request body is larger than the endpoint accepts.
    #[error("the request body is too large")]
    BodyTooLarge,
    /// A request that a cookie would authenticate came from another site
    /// or origin (or said nothing of where it came from): 403 with code
    /// `csrf_check_failed` (see [`CookieConfig::check_request_origin`](super::CookieConfig::check_request_origin)).
    #[error("cross-site request refused: {0}")]
    CrossSiteRequest(&'static str),
    /// The token, credentials or store check failed.
    #[error(transparent)]
    Error(#[from] Error),
}

/// An error body (RFC 9457 problem details, `application/problem+json`)
/// with a stable machine-readable `code`.
#[derive(Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub(crate) struct Problem<'a> {
    /// Always `about:blank`: the status says what kind of problem it is.
    #[serde(rename = "type")]
    kind: &'static str,
    /// The status's reason phrase.
    title: &'static str,
    /// The HTTP status code.
    status: u16,
    /// What went wrong, for people; never a token, a password or SQL.
    detail: &'a str,
    /// What went wrong, for programs: stable between releases.
    code: &'a str,
}

const RETRY_AFTER_SECONDS: &str = "5";

fn problem(status: StatusCode, code: &str, detail: &str, extra: HeaderMap) -> Response {
    let body = Problem {
        kind: "about:blank",
        title: status.canonical_reason().unwrap_or("Error"),
        status: status.as_u16(),
        detail,
        code,
    };
    let json = serde_json::to_vec(&body).unwrap_or_else(|_| b"{}".to_vec());
    let mut response = (status, json).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/problem+json"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.extend(extra);
    response
}

fn challenge(error: Option<(&str, &str)>) -> HeaderMap {
    let value = match error {
        None => "Bearer".to_owned(),
        Some((code, description)) => {
            // RFC 6750 allows only %x20-21 / %x23-5B / %x5D-7E here; an
            // application's own message may hold anything else.
            let description: String = description
                .chars()
                .map(|c| match c {
                    ' ' | '!' | '#'..='[' | ']'..='~' => c,
                    _ => '?',
                })
                .collect();
            format!("Bearer error=\"{code}\", error_description=\"{description}\"")
        }
    };
    let mut headers = HeaderMap::new();
    if let Ok(v) = HeaderValue::from_str(&value) {
        headers.insert(header::WWW_AUTHENTICATE, v);
    }
    headers
}

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        let code = self.code();
        match &self {
            Error::InvalidToken(reason) => {
                let description = reason.to_string();
                problem(
                    StatusCode::UNAUTHORIZED,
                    code,
                    &description,
                    challenge(Some(("invalid_token", &description))),
                )
            }
            Error::ExpiredToken
            | Error::RevokedToken
            | Error::RefreshTokenReused
            | Error::Authentication(_) => {
                let description = self.to_string();
                problem(
                    StatusCode::UNAUTHORIZED,
                    code,
                    &description,
                    challenge(Some(("invalid_token", &description))),
                )
            }
            Error::InvalidCredentials => problem(
                StatusCode::UNAUTHORIZED,
                code,
                "invalid username or password",
                challenge(None),
            ),
            Error::TooManyAttempts { retry_after } => {
                // Whole seconds, rounded up: never "retry now" early.
                let secs = retry_after.as_secs() + u64::from(retry_after.subsec_nanos() > 0);
                let mut headers = HeaderMap::new();
                headers.insert(header::RETRY_AFTER, HeaderValue::from(secs.max(1)));
                problem(
                    StatusCode::TOO_MANY_REQUESTS,
                    code,
                    "too many failed login attempts; try again later",
                    headers,
                )
            }
            Error::Forbidden(_) => {
                let description = self.to_string();
                problem(
                    StatusCode::FORBIDDEN,
                    code,
                    &description,
                    challenge(Some(("insufficient_scope", &description))),
                )
            }
            Error::InvalidInput(msg) => {
                problem(StatusCode::BAD_REQUEST, code, msg, HeaderMap::new())
            }
            Error::StoreUnavailable(source) => {
                tracing::error!(
                    operation = source.operation(),
                    cause = %std::error::Error::source(source).map(ToString::to_string).unwrap_or_default(),
                    "token store unavailable"
                );
                let mut headers = HeaderMap::new();
                headers.insert(
                    header::RETRY_AFTER,
                    HeaderValue::from_static(RETRY_AFTER_SECONDS),
                );
                problem(
                    StatusCode::SERVICE_UNAVAILABLE,
                    code,
                    "the authentication service is temporarily unavailable; retry shortly",
                    headers,
                )
            }
            Error::Config(_) | Error::Internal(_) => {
                tracing::error!(error = %self, "internal error in the security layer");
                problem(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    code,
                    "an internal error occurred",
                    HeaderMap::new(),
                )
            }
        }
    }
}

impl IntoResponse for AuthRejection {
    fn into_response(self) -> Response {
        match self {
            AuthRejection::MissingToken => problem(
                StatusCode::UNAUTHORIZED,
                "missing_token",
                "a bearer token is required",
                challenge(None),
            ),
            AuthRejection::InvalidRequest(detail) => problem(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                &detail,
                HeaderMap::new(),
            ),
            AuthRejection::NotFound(detail) => problem(
                StatusCode::NOT_FOUND,
                "not_found",
                &detail,
                HeaderMap::new(),
            ),
            AuthRejection::BodyTooLarge => problem(
                StatusCode::PAYLOAD_TOO_LARGE,
                "body_too_large",
                "the request body is too large",
                HeaderMap::new(),
            ),
            AuthRejection::CrossSiteRequest(why) => problem(
                StatusCode::FORBIDDEN,
                "csrf_check_failed",
                &format!("cross-site request refused: {why}"),
                HeaderMap::new(),
            ),
            AuthRejection::Error(err) => err.into_response(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn application_messages_cannot_break_the_challenge() {
        let response = Error::Authentication("user \"x\" is gone \u{fc}\\".into()).into_response();
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
        let challenge = response.headers()[header::WWW_AUTHENTICATE]
            .to_str()
            .unwrap();
        assert_eq!(
            challenge,
            "Bearer error=\"invalid_token\", error_description=\"authentication failed: user ?x? is gone ??\""
        );
    }
}
