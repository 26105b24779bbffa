//! Token life cycle on top of the codec and the store: create, validate
//! (stateful), refresh, revoke, log out.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::config::SecurityConfig;
use crate::error::{Error, InvalidTokenReason, Result};
use crate::password::PasswordHasher;
use crate::tokens::claims::{Audience, Claims, RESERVED_CLAIMS, TokenType};
use crate::tokens::jwt::JwtCodec;
use crate::tokens::store::{TimeoutStore, TokenRecord, TokenStore};

/// Longest `sub` accepted when issuing a token, in bytes.
pub const MAX_SUBJECT_BYTES: usize = 1024;

/// The security handle: configuration, keys, token store and password
/// hasher. Cheap to clone (one `Arc`); use it as (or inside) axum state.
///
/// ```
/// use std::sync::Arc;
/// use fastcore_security::{MemoryTokenStore, Security, SecurityConfig, TokenType};
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> fastcore_security::Result<()> {
/// let config = SecurityConfig::builder()
///     .secret("an-example-secret-that-is-at-least-32-bytes")
///     .build()?;
/// let security = Security::new(config, Arc::new(MemoryTokenStore::new()))?;
///
/// let pair = security.create_token_pair("42", None).await?;
/// let claims = security.validate_token(&pair.access_token, Some(TokenType::Access)).await?;
/// assert_eq!(claims.sub, "42");
///
/// security.revoke_token(&pair.access_token).await?;
/// assert!(security.validate_token(&pair.access_token, None).await.is_err());
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Security {
    inner: Arc<Inner>,
}

struct Inner {
    config: SecurityConfig,
    codec: JwtCodec,
    store: Arc<dyn TokenStore>,
    passwords: PasswordHasher,
}

impl std::fmt::Debug for Security {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Security")
            .field("config", &self.inner.config)
            .field("store", &self.inner.store.backend())
            .finish_non_exhaustive()
    }
}

/// A freshly issued token.
#[derive(Debug, Clone)]
pub struct IssuedToken {
    /// The encoded JWT.
    pub token: String,
    /// Its claims.
    pub claims: Claims,
    /// Seconds until it expires.
    pub expires_in: u64,
}

/// An access and a refresh token from one login (the seed's
/// `create_token_pair` result), serialized as the OAuth2 token response.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct TokenPair {
    /// The access token.
    pub access_token: String,
    /// The refresh token.
    pub refresh_token: String,
    /// Always `"bearer"`.
    pub token_type: String,
    /// Seconds until the access token expires.
    pub expires_in: u64,
    /// Seconds until the refresh token expires.
    pub refresh_expires_in: u64,
}

/// A new access token minted from a refresh token, serialized as the OAuth2
/// token response.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct AccessToken {
    /// The access token.
    pub access_token: String,
    /// Always `"bearer"`.
    pub token_type: String,
    /// Seconds until it expires.
    pub expires_in: u64,
}

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

impl Security {
    /// Builds the handle from a configuration and a store, with the default
    /// password policy. The store must already be migrated; see
    /// [`setup_security`](crate::setup_security) for the one-call setup.
    pub fn new(config: SecurityConfig, store: Arc<dyn TokenStore>) -> Result<Self> {
        Self::with_password_hasher(config, store, PasswordHasher::default())
    }

    /// Like [`Security::new`] with a custom password hasher.
    pub fn with_password_hasher(
        config: SecurityConfig,
        store: Arc<dyn TokenStore>,
        passwords: PasswordHasher,
    ) -> Result<Self> {
        let codec = JwtCodec::from_config(&config)?;
        let store: Arc<dyn TokenStore> = Arc::new(TimeoutStore::new(store, config.store_timeout()));
        Ok(Self {
            inner: Arc::new(Inner {
                config,
                codec,
                store,
                passwords,
            }),
        })
    }

    /// The configuration.
    pub fn config(&self) -> &SecurityConfig {
        &self.inner.config
    }

    /// The token store (the seed's `TokenRepository`).
    pub fn store(&self) -> &Arc<dyn TokenStore> {
        &self.inner.store
    }

    /// The password hasher.
    pub fn passwords(&self) -> &PasswordHasher {
        &self.inner.passwords
    }

    /// The JWT codec (stateless encode/verify).
    pub fn codec(&self) -> &JwtCodec {
        &self.inner.codec
    }

    /// Issues an access token for `sub`, recorded in the store. `extra`
    /// claims are added as given; reserved names (`sub`, `exp`...) are refused.
    pub async fn create_access_token(
        &self,
        sub: &str,
        extra: Option<Map<String, Value>>,
    ) -> Result<IssuedToken> {
        self.issue(sub, TokenType::Access, None, extra).await
    }

    /// Issues a refresh token for `sub`, starting a new session.
    pub async fn create_refresh_token(
        &self,
        sub: &str,
        extra: Option<Map<String, Value>>,
    ) -> Result<IssuedToken> {
        let session = uuid::Uuid::new_v4().to_string();
        self.issue(sub, TokenType::Refresh, Some(session), extra)
            .await
    }

    /// Issues an access and a refresh token for one new session (a login).
    /// Both carry the same `sid`, so logout ends both.
    pub async fn create_token_pair(
        &self,
        sub: &str,
        extra: Option<Map<String, Value>>,
    ) -> Result<TokenPair> {
        let session = uuid::Uuid::new_v4().to_string();
        let refresh = self
            .issue(
                sub,
                TokenType::Refresh,
                Some(session.clone()),
                extra.clone(),
            )
            .await?;
        let access = self
            .issue(sub, TokenType::Access, Some(session), extra)
            .await?;
        Ok(TokenPair {
            access_token: access.token,
            refresh_token: refresh.token,
            token_type: "bearer".into(),
            expires_in: access.expires_in,
            refresh_expires_in: refresh.expires_in,
        })
    }

    async fn issue(
        &self,
        sub: &str,
        token_type: TokenType,
        sid: Option<String>,
        extra: Option<Map<String, Value>>,
    ) -> Result<IssuedToken> {
        // NUL cannot be stored by every backend (PostgreSQL text refuses it).
        if sub.is_empty() || sub.len() > MAX_SUBJECT_BYTES || sub.contains('\0') {
            return Err(Error::InvalidInput(format!(
                "the subject must be 1 to {MAX_SUBJECT_BYTES} bytes long"
            )));
        }
        let extra = extra.unwrap_or_default();
        if let Some(name) = extra.keys().find(|k| RESERVED_CLAIMS.contains(&k.as_str())) {
            return Err(Error::InvalidInput(format!(
                "`{name}` is a reserved claim and cannot be set as an extra claim"
            )));
        }
        let config = &self.inner.config;
        let ttl = match token_type {
            TokenType::Access => config.access_token_ttl(),
            TokenType::Refresh => config.refresh_token_ttl(),
        };
        let iat = now();
        let exp = iat.saturating_add(i64::try_from(ttl.as_secs()).unwrap_or(i64::MAX));
        let claims = Claims {
            sub: sub.to_owned(),
            jti: uuid::Uuid::new_v4().to_string(),
            token_type,
            exp,
            iat,
            nbf: None,
            aud: config.audience().map(|a| Audience::One(a.to_owned())),
            iss: config.issuer().map(str::to_owned),
            sid,
            extra,
        };
        let token = self.inner.codec.encode(&claims)?;
        // Validation refuses tokens over `max_token_bytes` unread; issuing
        // one would hand out a token that fails on every request.
        let max = config.max_token_bytes();
        if token.len() > max {
            return Err(Error::InvalidInput(format!(
                "the token would be {} bytes, over max_token_bytes ({max}); \
                 send fewer or smaller extra claims",
                token.len()
            )));
        }
        self.inner
            .store
            .insert(&TokenRecord {
                jti: claims.jti.clone(),
                token_type,
                user_id: claims.sub.clone(),
                family_id: claims.sid.clone(),
                issued_at: iat,
                expires_at: exp,
                revoked_at: None,
            })
            .await?;
        Ok(IssuedToken {
            token,
            claims,
            expires_in: ttl.as_secs(),
        })
    }

    /// Stateful validation: signature, `exp`/`nbf`, `aud`/`iss`, the
    /// expected type, `jti` and `sub` present, and the store's record exists,
    /// matches and is not revoked. A store failure is
    /// [`Error::StoreUnavailable`], never a token error.
    pub async fn validate_token(&self, token: &str, expected: Option<TokenType>) -> Result<Claims> {
        let claims = self.inner.codec.verify(token, expected)?;
        let record = self
            .inner
            .store
            .get(&claims.jti)
            .await?
            .ok_or(Error::InvalidToken(InvalidTokenReason::UnknownToken))?;
        if record.user_id != claims.sub || record.token_type != claims.token_type {
            return Err(Error::InvalidToken(InvalidTokenReason::RecordMismatch));
        }
        if record.revoked_at.is_some() {
            return Err(Error::RevokedToken);
        }
        Ok(claims)
    }

    /// Stateless validation: signature and claims only, no store lookup (the
    /// seed's `validate_jwt_stateless`). A revoked token still passes: use it
    /// only where the store cannot be reached.
    pub fn validate_jwt_stateless(
        &self,
        token: &str,
        expected: Option<TokenType>,
    ) -> Result<Claims> {
        self.inner.codec.verify(token, expected)
    }

    /// Verifies the signature and claims but not expiry (the seed's
    /// `decode_token`). Never use the result to authorize a request.
    pub fn decode_token(&self, token: &str) -> Result<Claims> {
        self.inner.codec.decode(token)
    }

    /// Signs arbitrary claims with the active key (the seed's `encode_jwt`).
    /// The token is not recorded in the store, so `validate_token` refuses it.
    pub fn encode_jwt<T: Serialize>(&self, claims: &T) -> Result<String> {
        self.inner.codec.encode(claims)
    }

    /// Exchanges a valid refresh token for a new access token of the same
    /// session and the same application claims (the seed's `refresh_access_token`).
    ///
    /// It checks the token, not the user: an endpoint built on it should
    /// also check that the user still exists and is active, as
    /// [`auth_router`](crate::auth_router)'s `/auth/refresh` does.
    pub async fn refresh_access_token(&self, refresh_token: &str) -> Result<AccessToken> {
        let claims = self
            .validate_token(refresh_token, Some(TokenType::Refresh))
            .await?;
        self.access_token_from_refresh(claims).await
    }

    /// Mints the access token for refresh claims that `validate_token` has
    /// just accepted (split out so the HTTP layer can check the user in between).
    pub(crate) async fn access_token_from_refresh(&self, claims: Claims) -> Result<AccessToken> {
        let refresh_jti = claims.jti;
        let access = self
            .issue(
                &claims.sub,
                TokenType::Access,
                claims.sid,
                Some(claims.extra),
            )
            .await?;
        // A logout (or logout-all) may have landed between the check above
        // and the insert of the new token: its family revocation then ran
        // before our record existed and missed it. Look again: if the
        // refresh token is no longer live, the new token must not be either.
        // (Either the revocation saw our record, or we see the revocation.)
        let still_live = self
            .inner
            .store
            .get(&refresh_jti)
            .await?
            .is_some_and(|r| r.revoked_at.is_none());
        if !still_live {
            self.inner.store.revoke(&access.claims.jti, now()).await?;
            return Err(Error::RevokedToken);
        }
        Ok(AccessToken {
            access_token: access.token,
            token_type: "bearer".into(),
            expires_in: access.expires_in,
        })
    }

    /// Revokes one token (the seed's `revoke_token`). The signature must be
    /// valid; expiry is not checked. Revoking twice is not an error.
    pub async fn revoke_token(&self, token: &str) -> Result<()> {
        let claims = self.inner.codec.decode(token)?;
        self.revoke_jti(&claims.jti).await.map(|_| ())
    }

    /// Revokes a token by id (for admins, who see ids but never tokens);
    /// returns whether a live token changed.
    pub async fn revoke_jti(&self, jti: &str) -> Result<bool> {
        Ok(self.inner.store.revoke(jti, now()).await?)
    }

    /// Ends the login session a token belongs to: the token itself and every
    /// token sharing its `sid` (the refresh token and the access tokens
    /// minted from it). A token without `sid` is revoked alone. Expired
    /// tokens are accepted, so clients can always log out. Returns how many
    /// tokens were revoked.
    pub async fn logout(&self, token: &str) -> Result<u64> {
        let claims = self.inner.codec.decode(token)?;
        let at = now();
        let mut revoked = u64::from(self.inner.store.revoke(&claims.jti, at).await?);
        if let Some(sid) = &claims.sid {
            revoked += self.inner.store.revoke_family(sid, at).await?;
            // Twice, for a refresh racing this logout: see
            // `revoke_all_user_tokens`.
            revoked += self.inner.store.revoke_family(sid, at).await?;
        }
        Ok(revoked)
    }

    /// Revokes every token of a user, optionally keeping one session alive
    /// (pass the caller's `sid` to "log out other devices"). Returns how many
    /// tokens were revoked.
    pub async fn revoke_all_user_tokens(
        &self,
        user_id: &str,
        keep_session: Option<&str>,
    ) -> Result<u64> {
        let at = now();
        let first = self
            .inner
            .store
            .revoke_user(user_id, keep_session, at)
            .await?;
        // A second pass, started after the first committed. Under READ
        // COMMITTED (PostgreSQL) the first UPDATE works on a snapshot and can
        // miss an access token a concurrent refresh inserts meanwhile; that
        // refresh's own re-check (see `access_token_from_refresh`) may also
        // have run before the first pass committed. Whatever the first pass
        // missed was inserted before the second began, so the second sees
        // it; a token inserted later is caught by its refresh's re-check.
        let second = self
            .inner
            .store
            .revoke_user(user_id, keep_session, at)
            .await?;
        Ok(first + second)
    }

    /// Deletes expired token records in batches; returns how many went.
    pub async fn purge_expired_tokens(&self, batch: u32) -> Result<u64> {
        let cutoff = now();
        let mut total = 0;
        loop {
            let n = self.inner.store.purge_expired(cutoff, batch.max(1)).await?;
            total += n;
            if n < u64::from(batch.max(1)) {
                return Ok(total);
            }
        }
    }

    /// The user's live tokens (not revoked, not expired).
    pub async fn list_user_tokens(&self, user_id: &str) -> Result<Vec<TokenRecord>> {
        Ok(self.inner.store.list_live(user_id, now()).await?)
    }

    /// How long the store took to answer a ping, or why it did not.
    pub(crate) async fn ping_store(&self) -> Result<Duration> {
        let started = std::time::Instant::now();
        self.inner.store.ping().await?;
        Ok(started.elapsed())
    }
}
