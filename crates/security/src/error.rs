//! One error type for the whole crate, with a stable machine-readable code.
//!
//! The variants mirror the seed module's exceptions (`InvalidTokenError`,
//! `ExpiredTokenError`, `RevokedTokenError`, `InvalidCredentialsError`,
//! `AuthenticationError`) plus the failures a real deployment meets: a store
//! that does not answer and a configuration that cannot work.

use std::fmt;

/// Shorthand for `Result<T, fastcore_security::Error>`.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in authentication.
///
/// `Display` texts are safe to show to a client: they never contain a token,
/// a password, key material or SQL. Store failures keep their cause in
/// [`std::error::Error::source`] for operators' logs only.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The token is not acceptable: malformed, badly signed, wrong type,
    /// wrong audience or issuer, not yet valid, or unknown to the store.
    #[error("invalid token: {0}")]
    InvalidToken(InvalidTokenReason),
    /// The token's `exp` lies in the past.
    #[error("token has expired")]
    ExpiredToken,
    /// The token was revoked (logout, admin action, or a user-wide cut-off).
    #[error("token has been revoked")]
    RevokedToken,
    /// A refresh token that had already been exchanged was presented again
    /// after the grace interval: a sign that it was stolen. Its whole login
    /// session has been revoked (RFC 9700 section 4.14.2).
    #[error("the refresh token was already used; its session has been ended")]
    RefreshTokenReused,
    /// Username or password is wrong. Deliberately says nothing about which.
    #[error("invalid username or password")]
    InvalidCredentials,
    /// The token is fine but the user it names cannot be used (unknown,
    /// disabled or deleted), or the user lookup refused the request.
    #[error("authentication failed: {0}")]
    Authentication(String),
    /// Too many failed logins for this account or from this client
    /// address within the throttle window: the attempt was refused before
    /// any credential check (see [`Security::begin_login`](crate::Security::begin_login)).
    /// The same for every username, known or not.
    #[error("too many failed login attempts; try again later")]
    TooManyAttempts {
        /// How long until the window ends and attempts are counted anew.
        retry_after: std::time::Duration,
    },
    /// The caller is authenticated but not allowed to do this.
    #[error("forbidden: {0}")]
    Forbidden(String),
    /// The input was rejected before any check ran (for example a password
    /// longer than the policy allows, or a reserved claim name in extra claims).
    #[error("invalid input: {0}")]
    InvalidInput(String),
    /// The token store (or the user store) did not answer. Never turned into
    /// a 401, so an outage does not log everyone out.
    #[error("the token store is unavailable")]
    StoreUnavailable(#[source] StoreError),
    /// The configuration cannot work; the message names the setting.
    #[error("configuration error: {0}")]
    Config(String),
    /// A bug or an environment failure (for example a hashing thread that
    /// panicked). The message is for logs; clients see a generic text.
    #[error("internal error: {0}")]
    Internal(String),
}

impl Error {
    /// A short, stable, machine-readable code for this error, used in HTTP
    /// bodies and metrics. It never changes between releases.
    pub fn code(&self) -> &'static str {
        match self {
            Error::InvalidToken(_) => "invalid_token",
            Error::ExpiredToken => "token_expired",
            Error::RevokedToken => "token_revoked",
            Error::RefreshTokenReused => "refresh_token_reused",
            Error::InvalidCredentials => "invalid_credentials",
            Error::TooManyAttempts { .. } => "too_many_attempts",
            Error::Authentication(_) => "authentication_failed",
            Error::Forbidden(_) => "forbidden",
            Error::InvalidInput(_) => "invalid_request",
            Error::StoreUnavailable(_) => "store_unavailable",
            Error::Config(_) => "configuration_error",
            Error::Internal(_) => "internal_error",
        }
    }

    /// Whether the error is about the presented token (so a client should
    /// drop it and authenticate again).
    pub fn is_token_error(&self) -> bool {
        matches!(
            self,
            Error::InvalidToken(_)
                | Error::ExpiredToken
                | Error::RevokedToken
                | Error::RefreshTokenReused
        )
    }

    pub(crate) fn config(msg: impl Into<String>) -> Self {
        Error::Config(msg.into())
    }
}

/// Why a token was refused as invalid. The `Display` text is the
/// `error_description` sent in the `WWW-Authenticate` challenge.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum InvalidTokenReason {
    /// Not three base64url segments of JSON, or claims of the wrong shape.
    Malformed,
    /// The signature does not verify with any configured key.
    BadSignature,
    /// The header names an algorithm this service does not accept.
    DisallowedAlgorithm,
    /// The header's `kid` names no configured key.
    UnknownKey,
    /// A refresh token where an access token was expected, or the reverse.
    WrongType,
    /// `aud` does not name this service.
    Audience,
    /// `iss` is not the configured issuer.
    Issuer,
    /// `nbf` (or `iat`) lies in the future.
    NotYetValid,
    /// A required claim (`sub`, `jti`, `exp`, `type`...) is absent or empty.
    MissingClaim,
    /// A claim is present but its value cannot be used: a negative `exp`
    /// or `nbf` (time claims are unsigned NumericDates here).
    InvalidClaim,
    /// The signature is valid but the store has no record of this `jti`.
    UnknownToken,
    /// The store's record does not match the token (other user or type).
    RecordMismatch,
    /// The token is larger than any token this service issues.
    TooLarge,
}

impl fmt::Display for InvalidTokenReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            InvalidTokenReason::Malformed => "the token is malformed",
            InvalidTokenReason::BadSignature => "the token signature is invalid",
            InvalidTokenReason::DisallowedAlgorithm => "the token algorithm is not accepted",
            InvalidTokenReason::UnknownKey => "the token was signed with an unknown key",
            InvalidTokenReason::WrongType => "the token is of the wrong type",
            InvalidTokenReason::Audience => "the token audience is not accepted",
            InvalidTokenReason::Issuer => "the token issuer is not accepted",
            InvalidTokenReason::NotYetValid => "the token is not valid yet",
            InvalidTokenReason::MissingClaim => "the token lacks a required claim",
            InvalidTokenReason::InvalidClaim => "a claim of the token has an invalid value",
            InvalidTokenReason::UnknownToken => "the token is not known to this service",
            InvalidTokenReason::RecordMismatch => "the token does not match its record",
            InvalidTokenReason::TooLarge => "the token is too large",
        })
    }
}

/// A failure of a [`TokenStore`](crate::TokenStore) backend.
///
/// `Display` names only the operation; the driver's error is kept as the
/// source for logs. SQL text is never part of it.
#[derive(Debug, thiserror::Error)]
#[error("token store operation `{operation}` failed")]
pub struct StoreError {
    operation: &'static str,
    #[source]
    source: Box<dyn std::error::Error + Send + Sync>,
}

impl StoreError {
    /// Wraps a backend error, naming the store operation that failed.
    pub fn new(
        operation: &'static str,
        source: impl Into<Box<dyn std::error::Error + Send + Sync>>,
    ) -> Self {
        Self {
            operation,
            source: source.into(),
        }
    }

    /// The store operation that failed (`insert`, `get`, `revoke`...).
    pub fn operation(&self) -> &'static str {
        self.operation
    }
}

impl From<StoreError> for Error {
    fn from(err: StoreError) -> Self {
        Error::StoreUnavailable(err)
    }
}
