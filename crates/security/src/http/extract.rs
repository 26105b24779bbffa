//! Extractors: the seed's `get_token_data`, `get_current_user_dependency`
//! and `get_refresh_token_data`, as axum types.

use std::marker::PhantomData;
use std::sync::Arc;

use axum::extract::{FromRef, FromRequest, FromRequestParts, Request};
use axum::http::{HeaderMap, header, request::Parts};
use serde::Deserialize;

use super::body::{has_body, parse, read_limited, refuse_secrets_in_query};
use super::rejection::AuthRejection;
use crate::error::{Error, InvalidTokenReason};
use crate::tokens::claims::{Claims, TokenType};
use crate::tokens::service::Security;
use crate::users::UserAuthentication;

/// The bearer token of a request, if it has one.
///
/// `Ok(None)` when there is no `Authorization` header or it uses another
/// scheme; an error when the header is unreadable, a `Bearer` header is
/// empty, or several `Authorization` headers are present.
pub fn bearer_token(headers: &HeaderMap) -> Result<Option<&str>, AuthRejection> {
    let mut values = headers.get_all(header::AUTHORIZATION).iter();
    let Some(value) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(AuthRejection::InvalidRequest(
            "send exactly one Authorization header".into(),
        ));
    }
    let value = value
        .to_str()
        .map_err(|_| Error::InvalidToken(InvalidTokenReason::Malformed))?;
    let (scheme, rest) = value.split_once(' ').unwrap_or((value, ""));
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Ok(None);
    }
    let token = rest.trim();
    if token.is_empty() || token.contains(' ') {
        return Err(Error::InvalidToken(InvalidTokenReason::Malformed).into());
    }
    Ok(Some(token))
}

/// The validated claims of the request's access token (the seed's
/// `get_token_data` dependency). Checks the store: a revoked token is refused.
///
/// It does not load the user, so a user disabled after the token was issued
/// still passes until the token expires or is revoked; use [`CurrentUser`]
/// where that matters (the server's `users disable` also revokes the user's
/// tokens).
#[derive(Debug, Clone)]
pub struct TokenData(pub Claims);

impl<S> FromRequestParts<S> for TokenData
where
    S: Send + Sync,
    Security: FromRef<S>,
{
    type Rejection = AuthRejection;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        if let Some(data) = parts.extensions.get::<TokenData>() {
            return Ok(data.clone());
        }
        let token = bearer_token(&parts.headers)?.ok_or(AuthRejection::MissingToken)?;
        let security = Security::from_ref(state);
        let claims = security
            .validate_token(token, Some(TokenType::Access))
            .await?;
        let data = TokenData(claims);
        // Later extractors of the same request (CurrentUser) reuse it.
        parts.extensions.insert(data.clone());
        Ok(data)
    }
}

/// The user behind the request's access token, loaded through the
/// application's [`UserAuthentication`] (the seed's
/// `get_current_user_dependency`). Refused if the user no longer exists or
/// is no longer active.
///
/// Needs `Arc<A>: FromRef<S>` besides `Security: FromRef<S>`.
pub struct CurrentUser<A: UserAuthentication> {
    /// The user.
    pub user: A::User,
    /// The access token's claims.
    pub claims: Claims,
    _auth: PhantomData<fn() -> A>,
}

impl<A: UserAuthentication> std::fmt::Debug for CurrentUser<A> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CurrentUser")
            .field("sub", &self.claims.sub)
            .finish_non_exhaustive()
    }
}

impl<S, A> FromRequestParts<S> for CurrentUser<A>
where
    S: Send + Sync,
    Security: FromRef<S>,
    Arc<A>: FromRef<S>,
    A: UserAuthentication,
{
    type Rejection = AuthRejection;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let TokenData(claims) = TokenData::from_request_parts(parts, state).await?;
        let users = Arc::<A>::from_ref(state);
        let user = users
            .get_user_by_id(&claims.sub)
            .await?
            .ok_or_else(|| Error::Authentication("the token's user does not exist".into()))?;
        if !users.is_active(&user) {
            return Err(Error::Authentication("the token's user is disabled".into()).into());
        }
        Ok(CurrentUser {
            user,
            claims,
            _auth: PhantomData,
        })
    }
}

/// The refresh request: JSON, or the OAuth2 refresh form.
#[derive(Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub(crate) struct RefreshRequest {
    /// `refresh_token` when given (the OAuth2 refresh grant).
    #[serde(default)]
    grant_type: Option<String>,
    /// The refresh token.
    refresh_token: String,
}

/// Reads the raw refresh token of a request: from a JSON body
/// `{"refresh_token": ...}`, an OAuth2 form
/// `grant_type=refresh_token&refresh_token=...`, or else the
/// `Authorization: Bearer` header. Never from the URL.
pub(crate) async fn raw_refresh_token(req: Request) -> Result<String, AuthRejection> {
    let (parts, body) = req.into_parts();
    explicit_refresh_token(&parts, body).await?.ok_or_else(|| {
        AuthRejection::InvalidRequest(
            "send the refresh token as refresh_token in the request body".into(),
        )
    })
}

/// The refresh token a request sends itself (body or bearer header, as
/// [`raw_refresh_token`]), or `None` when it sends none: a request that
/// a refresh cookie may then authenticate.
pub(crate) async fn explicit_refresh_token(
    parts: &Parts,
    body: axum::body::Body,
) -> Result<Option<String>, AuthRejection> {
    refuse_secrets_in_query(parts)?;
    if has_body(&parts.headers) {
        let bytes = read_limited(&parts.headers, body).await?;
        if !bytes.is_empty() {
            let body: RefreshRequest = parse(&parts.headers, &bytes, "a refresh_token field")?;
            if let Some(grant) = body.grant_type.as_deref()
                && grant != "refresh_token"
            {
                return Err(AuthRejection::InvalidRequest(
                    "grant_type must be refresh_token".into(),
                ));
            }
            return Ok(Some(body.refresh_token));
        }
    }
    Ok(bearer_token(&parts.headers)?.map(str::to_owned))
}

/// The validated claims of a refresh token sent in the request body or the
/// bearer header (the seed's `get_refresh_token_data`). Consumes the body.
#[derive(Debug, Clone)]
pub struct RefreshTokenData {
    /// The refresh token's claims.
    pub claims: Claims,
    /// The token as sent, for handlers that pass it on to
    /// [`Security::refresh_access_token`].
    pub token: String,
}

impl<S> FromRequest<S> for RefreshTokenData
where
    S: Send + Sync,
    Security: FromRef<S>,
{
    type Rejection = AuthRejection;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let token = raw_refresh_token(req).await?;
        let security = Security::from_ref(state);
        let claims = security
            .validate_token(&token, Some(TokenType::Refresh))
            .await?;
        Ok(RefreshTokenData { claims, token })
    }
}
