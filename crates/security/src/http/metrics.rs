//! `GET /metrics`: the security layer's Prometheus metrics.

use axum::Router;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use crate::metrics::SecurityMetrics;
use crate::tokens::service::Security;

/// The path [`metrics_router`] serves the metrics at.
pub const METRICS_PATH: &str = "/metrics";

/// A router serving [`Security::metrics`] at `GET /metrics`, as
/// OpenMetrics text (which Prometheus scrapes natively).
///
/// The metrics name no user, token or address, but they do tell how busy
/// the service is and how many logins fail: expose the route to your
/// monitoring network only (a separate listener, or a proxy rule).
///
/// ```
/// use axum::Router;
/// use fastcore_security::Security;
/// use fastcore_security::http::metrics_router;
///
/// fn app(security: Security) -> Router {
///     Router::new().merge(metrics_router(security))
/// }
/// ```
pub fn metrics_router(security: Security) -> Router {
    let metrics = security.metrics().clone();
    Router::new().route(METRICS_PATH, get(move || serve(metrics.clone())))
}

async fn serve(metrics: SecurityMetrics) -> Response {
    let mut response = metrics.encode().into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(SecurityMetrics::CONTENT_TYPE),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}
