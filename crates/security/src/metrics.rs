//! Prometheus metrics (feature `metrics`): what the security layer did,
//! counted with the Prometheus project's own client, `prometheus-client`.
//!
//! Every [`Security`](crate::Security) handle counts into its
//! [`SecurityMetrics`] ([`Security::metrics`](crate::Security::metrics));
//! [`metrics_router`](crate::http::metrics_router) serves them at
//! `GET /metrics`, or [`SecurityMetrics::register`] adds them to the
//! application's own registry. There is no global registry: two handles in
//! one process (two tests, say) count apart.

#[cfg(feature = "metrics")]
pub use enabled::SecurityMetrics;
#[cfg(feature = "metrics")]
pub(crate) use enabled::SecurityMetrics as Recorder;

#[cfg(not(feature = "metrics"))]
pub(crate) use disabled::Recorder;

/// How a login attempt ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(not(feature = "metrics"), allow(dead_code))]
pub(crate) enum LoginOutcome {
    Success,
    BadCredentials,
    Throttled,
    Error,
}

impl LoginOutcome {
    #[cfg_attr(not(feature = "metrics"), allow(dead_code))]
    fn label(self) -> &'static str {
        match self {
            LoginOutcome::Success => "success",
            LoginOutcome::BadCredentials => "bad_credentials",
            LoginOutcome::Throttled => "throttled",
            LoginOutcome::Error => "error",
        }
    }
}

/// How a refresh ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(not(feature = "metrics"), allow(dead_code))]
pub(crate) enum RefreshOutcome {
    /// The token was exchanged for a new pair.
    Rotated,
    /// A concurrent refresh within the grace: the current pair was sent again.
    Grace,
    /// A spent token came back: its session was revoked.
    Reused,
    /// Refused for any other reason (invalid, expired, revoked, store down).
    Rejected,
}

impl RefreshOutcome {
    #[cfg_attr(not(feature = "metrics"), allow(dead_code))]
    fn label(self) -> &'static str {
        match self {
            RefreshOutcome::Rotated => "rotated",
            RefreshOutcome::Grace => "grace",
            RefreshOutcome::Reused => "reused",
            RefreshOutcome::Rejected => "rejected",
        }
    }
}

/// What a revocation ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(not(feature = "metrics"), allow(dead_code))]
pub(crate) enum RevocationKind {
    /// One token, by itself or by id.
    Token,
    /// One login session (logout, or a session ended by id).
    Session,
    /// Every session of a user but one.
    OtherSessions,
    /// Every token of a user (a cut-off).
    User,
    /// A session ended because its refresh token was reused.
    Reuse,
}

impl RevocationKind {
    #[cfg_attr(not(feature = "metrics"), allow(dead_code))]
    fn label(self) -> &'static str {
        match self {
            RevocationKind::Token => "token",
            RevocationKind::Session => "session",
            RevocationKind::OtherSessions => "other_sessions",
            RevocationKind::User => "user",
            RevocationKind::Reuse => "reuse",
        }
    }
}

/// The validation label values: the mode and the expected token type.
#[cfg_attr(not(feature = "metrics"), allow(dead_code))]
fn token_type_label(expected: Option<crate::TokenType>) -> &'static str {
    match expected {
        Some(crate::TokenType::Access) => "access",
        Some(crate::TokenType::Refresh) => "refresh",
        None => "any",
    }
}

#[cfg(feature = "metrics")]
mod enabled {
    use std::sync::Arc;
    use std::time::Duration;

    use prometheus_client::encoding::EncodeLabelSet;
    use prometheus_client::metrics::counter::Counter;
    use prometheus_client::metrics::family::Family;
    use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
    use prometheus_client::registry::{Registry, Unit};

    use super::{LoginOutcome, RefreshOutcome, RevocationKind, token_type_label};
    use crate::error::Result;

    #[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
    struct OutcomeLabels {
        outcome: &'static str,
    }

    #[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
    struct ValidationLabels {
        mode: &'static str,
        token_type: &'static str,
        outcome: &'static str,
    }

    #[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
    struct KindLabels {
        kind: &'static str,
    }

    #[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
    struct OperationLabels {
        operation: &'static str,
    }

    type HistogramFamily<L> = Family<L, Histogram, fn() -> Histogram>;

    /// Store calls take from a fraction of a millisecond (memory, SQLite)
    /// to the store timeout (5 s by default): 0.5 ms to about 8 s.
    fn store_histogram() -> Histogram {
        Histogram::new(exponential_buckets(0.0005, 2.0, 15))
    }

    /// The security layer's Prometheus metrics. Cheap to clone: clones
    /// count into the same series.
    ///
    /// | metric | labels | what it counts |
    /// |---|---|---|
    /// | `fastcore_security_logins_total` | `outcome`: `success`, `bad_credentials`, `throttled`, `error` | login attempts ([`Security::begin_login`](crate::Security::begin_login) and the [`LoginAttempt`](crate::LoginAttempt) verdict) |
    /// | `fastcore_security_token_validations_total` | `mode`: `strict`, `synced`, `stateless`; `token_type`: `access`, `refresh`, `any`; `outcome`: `valid` or the refusal's [`Error::code`](crate::Error::code) | token validations |
    /// | `fastcore_security_refreshes_total` | `outcome`: `rotated`, `grace`, `reused`, `rejected` | refresh attempts |
    /// | `fastcore_security_refresh_reuse_detections_total` | | spent refresh tokens presented again (each revoked a session) |
    /// | `fastcore_security_revocations_total` | `kind`: `token`, `session`, `other_sessions`, `user`, `reuse` | revocations (one per call, however many tokens it ended) |
    /// | `fastcore_security_store_operation_duration_seconds` | `operation` | histogram of token store and login throttle calls |
    /// | `fastcore_security_store_errors_total` | `operation` | store calls that failed or timed out |
    /// | `fastcore_security_purged_records_total` | `kind`: `tokens`, `login_throttle_windows` | records deleted by purges |
    ///
    /// Label values come from fixed lists: never a user id, a username, a
    /// token, a key id or an address, so the number of series stays bounded
    /// and the metrics endpoint leaks nothing about users.
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
    /// let pair = security.create_token_pair("42", None).await?;
    /// security.validate_token(&pair.access_token, Some(TokenType::Access)).await?;
    ///
    /// let text = security.metrics().encode();
    /// assert!(text.contains(
    ///     r#"fastcore_security_token_validations_total{mode="strict",token_type="access",outcome="valid"} 1"#
    /// ));
    /// assert!(text.ends_with("# EOF\n"));
    /// # Ok(()) }
    /// ```
    #[derive(Clone)]
    pub struct SecurityMetrics {
        logins: Family<OutcomeLabels, Counter>,
        validations: Family<ValidationLabels, Counter>,
        refreshes: Family<OutcomeLabels, Counter>,
        reuse_detections: Counter,
        revocations: Family<KindLabels, Counter>,
        store_duration: HistogramFamily<OperationLabels>,
        store_errors: Family<OperationLabels, Counter>,
        purged: Family<KindLabels, Counter>,
        /// These metrics alone, for [`encode`](Self::encode).
        own: Arc<Registry>,
    }

    impl std::fmt::Debug for SecurityMetrics {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.debug_struct("SecurityMetrics").finish_non_exhaustive()
        }
    }

    impl Default for SecurityMetrics {
        fn default() -> Self {
            Self::new()
        }
    }

    impl SecurityMetrics {
        /// The `Content-Type` of [`encode`](Self::encode)'s text (the
        /// OpenMetrics text format, which Prometheus scrapes natively).
        pub const CONTENT_TYPE: &'static str =
            "application/openmetrics-text; version=1.0.0; charset=utf-8";

        /// Metrics at zero. [`Security`](crate::Security) makes its own;
        /// this is for tests and custom setups.
        pub fn new() -> Self {
            let mut metrics = Self {
                logins: Family::default(),
                validations: Family::default(),
                refreshes: Family::default(),
                reuse_detections: Counter::default(),
                revocations: Family::default(),
                store_duration: Family::new_with_constructor(store_histogram),
                store_errors: Family::default(),
                purged: Family::default(),
                own: Arc::new(Registry::default()),
            };
            let mut own = Registry::default();
            metrics.register(&mut own);
            metrics.own = Arc::new(own);
            // Every login outcome shows from the start (at 0), so a rate
            // of failures can be computed before the first one happens.
            for outcome in [
                LoginOutcome::Success,
                LoginOutcome::BadCredentials,
                LoginOutcome::Throttled,
                LoginOutcome::Error,
            ] {
                let _ = metrics.logins.get_or_create(&OutcomeLabels {
                    outcome: outcome.label(),
                });
            }
            metrics
        }

        /// Registers these metrics in `registry`, under the prefix
        /// `fastcore_security` (so next to the application's own). The
        /// series are shared: what this handle counts shows in both.
        ///
        /// ```
        /// use prometheus_client::registry::Registry;
        /// use fastcore_security::SecurityMetrics;
        ///
        /// let mut registry = Registry::default();
        /// SecurityMetrics::new().register(&mut registry);
        /// let mut text = String::new();
        /// prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
        /// assert!(text.contains("fastcore_security_logins_total"));
        /// ```
        pub fn register(&self, registry: &mut Registry) {
            let registry = registry.sub_registry_with_prefix("fastcore_security");
            registry.register("logins", "Login attempts, by outcome", self.logins.clone());
            registry.register(
                "token_validations",
                "Token validations, by mode (strict: with the store; synced: with the in-memory revocation view; stateless: signature and claims only), expected token type and outcome (valid, or the error code)",
                self.validations.clone(),
            );
            registry.register(
                "refreshes",
                "Refresh attempts, by outcome (rotated, grace: a concurrent refresh got the current pair, reused: a spent token came back, rejected)",
                self.refreshes.clone(),
            );
            registry.register(
                "refresh_reuse_detections",
                "Spent refresh tokens presented again; each one revoked its session",
                self.reuse_detections.clone(),
            );
            registry.register(
                "revocations",
                "Revocations, by kind (one per call, however many tokens it ended)",
                self.revocations.clone(),
            );
            registry.register_with_unit(
                "store_operation_duration",
                "How long token store and login throttle calls took, by operation",
                Unit::Seconds,
                self.store_duration.clone(),
            );
            registry.register(
                "store_errors",
                "Token store and login throttle calls that failed or timed out, by operation",
                self.store_errors.clone(),
            );
            registry.register(
                "purged_records",
                "Expired records deleted by purges, by kind",
                self.purged.clone(),
            );
        }

        /// These metrics as OpenMetrics text (ending `# EOF`), served with
        /// [`CONTENT_TYPE`](Self::CONTENT_TYPE).
        pub fn encode(&self) -> String {
            let mut text = String::new();
            // Writing to a String cannot fail.
            let _ = prometheus_client::encoding::text::encode(&mut text, &self.own);
            text
        }

        pub(crate) fn login(&self, outcome: LoginOutcome) {
            self.logins
                .get_or_create(&OutcomeLabels {
                    outcome: outcome.label(),
                })
                .inc();
        }

        pub(crate) fn validation<T>(
            &self,
            mode: &'static str,
            expected: Option<crate::TokenType>,
            result: &Result<T>,
        ) {
            let outcome = match result {
                Ok(_) => "valid",
                Err(err) => err.code(),
            };
            self.validations
                .get_or_create(&ValidationLabels {
                    mode,
                    token_type: token_type_label(expected),
                    outcome,
                })
                .inc();
        }

        pub(crate) fn refresh(&self, outcome: RefreshOutcome) {
            self.refreshes
                .get_or_create(&OutcomeLabels {
                    outcome: outcome.label(),
                })
                .inc();
            if outcome == RefreshOutcome::Reused {
                self.reuse_detections.inc();
            }
        }

        pub(crate) fn revocation(&self, kind: RevocationKind) {
            self.revocations
                .get_or_create(&KindLabels { kind: kind.label() })
                .inc();
        }

        pub(crate) fn store_call(&self, operation: &'static str, elapsed: Duration, ok: bool) {
            let labels = OperationLabels { operation };
            self.store_duration
                .get_or_create(&labels)
                .observe(elapsed.as_secs_f64());
            if !ok {
                self.store_errors.get_or_create(&labels).inc();
            }
        }

        pub(crate) fn purged(&self, kind: &'static str, records: u64) {
            self.purged
                .get_or_create(&KindLabels { kind })
                .inc_by(records);
        }
    }
}

#[cfg(not(feature = "metrics"))]
mod disabled {
    use std::time::Duration;

    use super::{LoginOutcome, RefreshOutcome, RevocationKind};
    use crate::error::Result;

    /// Without the `metrics` feature: records nothing, costs nothing.
    #[derive(Clone, Debug, Default)]
    pub(crate) struct Recorder;

    impl Recorder {
        pub(crate) fn new() -> Self {
            Self
        }
        pub(crate) fn login(&self, _: LoginOutcome) {}
        pub(crate) fn validation<T>(
            &self,
            _: &'static str,
            _: Option<crate::TokenType>,
            _: &Result<T>,
        ) {
        }
        pub(crate) fn refresh(&self, _: RefreshOutcome) {}
        pub(crate) fn revocation(&self, _: RevocationKind) {}
        pub(crate) fn store_call(&self, _: &'static str, _: Duration, _: bool) {}
        pub(crate) fn purged(&self, _: &'static str, _: u64) {}
    }
}
