//! One-call setup (the seed's `setup_security`) and the health report (the
//! seed's `get_security_status`).

use serde::Serialize;

use crate::config::SecurityConfig;
use crate::error::{Error, Result};
use crate::tokens::service::Security;
use crate::tokens::store::connect_store;

/// Connects the token store named by the configuration's `database_url`,
/// runs its embedded migrations, and builds the [`Security`] handle.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> fastcore_security::Result<()> {
/// use fastcore_security::{SecurityConfig, setup_security, get_security_status};
///
/// let config = SecurityConfig::builder()
///     .secret("an-example-secret-that-is-at-least-32-bytes")
///     .database_url("sqlite::memory:")
///     .build()?;
/// let security = setup_security(config).await?;
/// assert!(get_security_status(Some(&security)).await.healthy());
/// # Ok(()) }
/// ```
pub async fn setup_security(config: SecurityConfig) -> Result<Security> {
    let url = config.database_url().ok_or_else(|| {
        Error::Config("DATABASE_URL is not set; e.g. sqlite://fastcore-security.db".into())
    })?;
    let store = connect_store(url).await?;
    Security::new(config, store)
}

/// Whether the security layer is set up and its store answers.
#[derive(Debug, Clone, Serialize, PartialEq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SecurityStatus {
    /// `"ok"` when initialised and the store answers, `"unavailable"` otherwise.
    pub status: &'static str,
    /// A `Security` handle exists.
    pub initialized: bool,
    /// The store backend (`sqlite`, `memory`...), if initialised.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub store_backend: Option<&'static str>,
    /// The store answered a ping.
    pub store_reachable: bool,
    /// How long the ping took, in milliseconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub store_latency_ms: Option<f64>,
    /// Signing algorithm of new tokens.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub algorithm: Option<String>,
    /// True when a throw-away development secret is in use.
    pub development_secret: bool,
    /// `"strict"` or `"synced"` (the validation mode), if initialised.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub validation_mode: Option<&'static str>,
    /// Synced mode: `"synced"` when the in-memory revocation view is
    /// current, `"resyncing"` while it loads or after its feed was lost
    /// (requests are then checked in the store, as in strict mode).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub revocation_view: Option<&'static str>,
}

impl SecurityStatus {
    /// Initialised and the store answers.
    pub fn healthy(&self) -> bool {
        self.initialized && self.store_reachable
    }
}

/// Reports whether security is initialised and whether its store answers.
/// Pass `None` when the application has not set security up (yet).
pub async fn get_security_status(security: Option<&Security>) -> SecurityStatus {
    let Some(security) = security else {
        return SecurityStatus {
            status: "unavailable",
            initialized: false,
            store_backend: None,
            store_reachable: false,
            store_latency_ms: None,
            algorithm: None,
            development_secret: false,
            validation_mode: None,
            revocation_view: None,
        };
    };
    let ping = security.ping_store().await;
    if let Err(err) = &ping {
        tracing::warn!(error = %err, source = ?std::error::Error::source(err).map(ToString::to_string), "token store health check failed");
    }
    let reachable = ping.is_ok();
    SecurityStatus {
        status: if reachable { "ok" } else { "unavailable" },
        initialized: true,
        store_backend: Some(security.store().backend()),
        store_reachable: reachable,
        store_latency_ms: ping.ok().map(|d| d.as_secs_f64() * 1000.0),
        algorithm: Some(format!("{:?}", security.config().algorithm())),
        development_secret: security.config().uses_generated_secret(),
        validation_mode: Some(security.config().validation_mode().as_str()),
        revocation_view: security
            .revocation_view_synced()
            .map(|synced| if synced { "synced" } else { "resyncing" }),
    }
}
