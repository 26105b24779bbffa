//! `GET /.well-known/jwks.json`: the public keys, for services that verify
//! this service's tokens themselves.

use axum::Router;
use axum::body::Bytes;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, get};

use crate::tokens::service::Security;

/// The path the JWK Set is served at (RFC 8414's well-known location).
pub const JWKS_PATH: &str = "/.well-known/jwks.json";

/// How long clients and caches may keep the JWK Set. A verifier with a
/// cached copy may not know a freshly activated key for this long; good
/// JWKS clients refetch when a token names a `kid` they do not know.
const CACHE_CONTROL: &str = "public, max-age=300";

/// A router serving [`Security::jwks`] at `GET /.well-known/jwks.json`
/// (`application/json`, `Cache-Control: public, max-age=300`).
///
/// Only the public parameters of asymmetric keys (RS*, PS*, ES*, EdDSA)
/// are served, the active key first, then the keys that still verify;
/// HMAC keys are never published, so a service signing with a shared
/// secret serves an empty set (`{"keys":[]}`).
///
/// The keys are fixed for the life of the [`Security`] handle, so the
/// document is serialized once, here.
///
/// ```
/// use axum::Router;
/// use fastcore_security::Security;
/// use fastcore_security::http::jwks_router;
///
/// fn app(security: Security) -> Router {
///     Router::new().merge(jwks_router(security))
/// }
/// ```
pub fn jwks_router(security: Security) -> Router {
    Router::new().route(JWKS_PATH, jwks_handler(&security))
}

/// `GET` of the JWK Set, for a router of any state.
pub(crate) fn jwks_handler<S>(security: &Security) -> MethodRouter<S>
where
    S: Clone + Send + Sync + 'static,
{
    // Serializing a JWK Set (strings only) cannot fail; an empty set is
    // the safe answer if it ever did.
    let body = Bytes::from(
        serde_json::to_vec(&security.jwks()).unwrap_or_else(|_| b"{\"keys\":[]}".to_vec()),
    );
    get(move || serve(body.clone()))
}

async fn serve(body: Bytes) -> Response {
    let mut response = body.into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static(CACHE_CONTROL),
    );
    response
}
