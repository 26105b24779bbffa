//! Configuration through the public API: the seed's environment variable
//! names, the secret-length rule, development secrets, and configurations
//! that would make a service refuse the very tokens it issues.

// Test helpers may panic: a panic is a failed test.
#![allow(clippy::unwrap_used, clippy::panic)]

mod common;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use common::*;
use fastcore_security::{
    Algorithm, Environment, Error, InvalidTokenReason, MemoryTokenStore, PasswordPolicy, Security,
    SecurityConfig, TokenType,
};
use serde_json::json;

fn lookup(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> + use<> {
    let map: HashMap<String, String> = pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    move |name| map.get(name).cloned()
}

fn config_error(result: fastcore_security::Result<SecurityConfig>) -> String {
    match result {
        Err(Error::Config(msg)) => msg,
        other => panic!("expected a configuration error, got {other:?}"),
    }
}

#[test]
fn the_seeds_variables_configure_everything() {
    let config = SecurityConfig::builder_from_lookup(lookup(&[
        ("JWT_SECRET_KEY", TEST_SECRET),
        ("JWT_ALGORITHM", "hs384"),
        ("JWT_ACCESS_TOKEN_EXPIRE_MINUTES", "15"),
        ("JWT_REFRESH_TOKEN_EXPIRE_DAYS", "3"),
        ("JWT_AUDIENCE", "api"),
        ("JWT_ISSUER", "auth"),
        ("JWT_ALLOWED_AUDIENCES", "api, admin ,"),
        ("JWT_LEEWAY_SECONDS", "0"),
        ("DATABASE_URL", "sqlite://tokens.db"),
    ]))
    .unwrap()
    .build()
    .unwrap();
    assert_eq!(config.algorithm(), Algorithm::HS384);
    assert_eq!(config.access_token_ttl(), Duration::from_secs(15 * 60));
    assert_eq!(config.refresh_token_ttl(), Duration::from_secs(3 * 86_400));
    assert_eq!(config.audience(), Some("api"));
    assert_eq!(config.issuer(), Some("auth"));
    assert_eq!(config.allowed_audiences(), ["api", "admin"]);
    assert_eq!(config.leeway(), Duration::ZERO);
    assert_eq!(config.database_url(), Some("sqlite://tokens.db"));
    assert_eq!(config.environment(), Environment::Development);
    assert!(!config.uses_generated_secret());

    // Defaults: the seed's 30 minutes and 7 days, HS256, 5 s leeway.
    let config = SecurityConfig::builder_from_lookup(lookup(&[("JWT_SECRET_KEY", TEST_SECRET)]))
        .unwrap()
        .build()
        .unwrap();
    assert_eq!(config.algorithm(), Algorithm::HS256);
    assert_eq!(config.access_token_ttl(), Duration::from_secs(30 * 60));
    assert_eq!(config.refresh_token_ttl(), Duration::from_secs(7 * 86_400));
    assert_eq!(config.leeway(), Duration::from_secs(5));
    assert!(config.allowed_audiences().is_empty());
}

#[test]
fn short_secrets_are_refused_per_algorithm_without_echoing_them() {
    for (algorithm, min) in [
        (Algorithm::HS256, 32),
        (Algorithm::HS384, 48),
        (Algorithm::HS512, 64),
    ] {
        let short = "s".repeat(min - 1);
        let msg = config_error(
            SecurityConfig::builder()
                .secret(short.clone())
                .algorithm(algorithm)
                .build(),
        );
        assert!(msg.contains("JWT_SECRET_KEY"), "{msg}");
        assert!(msg.contains(&format!("at least {min}")), "{msg}");
        assert!(!msg.contains(&short), "{msg}");
        SecurityConfig::builder()
            .secret("s".repeat(min))
            .algorithm(algorithm)
            .build()
            .unwrap();
    }
    let msg = config_error(
        SecurityConfig::builder()
            .secret(TEST_SECRET)
            .algorithm(Algorithm::RS256)
            .build(),
    );
    assert!(msg.contains("HS256"), "{msg}");
}

#[test]
fn bad_values_name_their_variable() {
    for (name, value) in [
        ("JWT_ALGORITHM", "none"),
        ("JWT_ALGORITHM", "RS256"),
        ("JWT_ACCESS_TOKEN_EXPIRE_MINUTES", "0"),
        ("JWT_ACCESS_TOKEN_EXPIRE_MINUTES", "1.5"),
        ("JWT_REFRESH_TOKEN_EXPIRE_DAYS", "-1"),
        ("JWT_REFRESH_TOKEN_EXPIRE_DAYS", "9999"),
        ("JWT_LEEWAY_SECONDS", "301"),
        ("PASSWORD_ARGON2_MEMORY_KIB", "4096"),
        ("PASSWORD_ARGON2_MEMORY_KIB", "19 MiB"),
        ("PASSWORD_ARGON2_ITERATIONS", "1"),
        ("PASSWORD_ARGON2_ITERATIONS", "99999999999"),
        ("PASSWORD_ARGON2_PARALLELISM", "0"),
        ("PASSWORD_MAX_BYTES", "16"),
        ("PASSWORD_MAX_BYTES", "10485760"),
        ("LOGIN_MAX_FAILURES_PER_ACCOUNT", "-1"),
        ("LOGIN_MAX_FAILURES_PER_ADDRESS", "lots"),
        ("LOGIN_THROTTLE_WINDOW_SECONDS", "15m"),
        ("LOGIN_FAILURE_FLOOR_MS", "20000"),
    ] {
        let err = SecurityConfig::builder_from_lookup(lookup(&[
            ("JWT_SECRET_KEY", TEST_SECRET),
            (name, value),
        ]))
        .unwrap_err();
        assert!(
            matches!(&err, Error::Config(m) if m.contains(name)),
            "{name}={value}: {err:?}"
        );
        // Said once, whatever wrapped what.
        let text = err.to_string();
        assert_eq!(
            text.matches("configuration error").count(),
            1,
            "{name}={value}: {text}"
        );
        assert!(text.starts_with("configuration error: "), "{text}");
    }
}

#[test]
fn a_missing_secret_is_an_error_and_only_development_may_generate_one() {
    let msg = config_error(SecurityConfig::builder().build());
    assert!(msg.contains("JWT_SECRET_KEY"), "{msg}");

    let dev = SecurityConfig::builder()
        .generate_development_secret(true)
        .build()
        .unwrap();
    assert!(dev.uses_generated_secret());

    for (name, value) in [
        ("FASTCORE_ENV", "production"),
        ("APP_ENV", "Production"),
        ("ENVIRONMENT", " prod "),
    ] {
        let builder = SecurityConfig::builder_from_lookup(lookup(&[(name, value)])).unwrap();
        let msg = config_error(builder.generate_development_secret(true).build());
        assert!(msg.contains("production"), "{msg}");
    }
    // A real secret is fine in production.
    let prod = SecurityConfig::builder_from_lookup(lookup(&[
        ("APP_ENV", "production"),
        ("JWT_SECRET_KEY", TEST_SECRET),
    ]))
    .unwrap()
    .generate_development_secret(true)
    .build()
    .unwrap();
    assert_eq!(prod.environment(), Environment::Production);
    assert!(!prod.uses_generated_secret());
}

#[tokio::test]
async fn two_generated_secrets_do_not_accept_each_others_tokens() {
    let a = memory_security_with(
        SecurityConfig::builder()
            .generate_development_secret(true)
            .build()
            .unwrap(),
    );
    let b = memory_security_with(
        SecurityConfig::builder()
            .generate_development_secret(true)
            .build()
            .unwrap(),
    );
    let token = a.create_access_token("1", None).await.unwrap().token;
    assert!(matches!(
        b.validate_jwt_stateless(&token, None),
        Err(Error::InvalidToken(InvalidTokenReason::BadSignature))
    ));
}

#[test]
fn debug_output_never_shows_the_secret_or_a_url_password() {
    let config = config_builder()
        .database_url("postgres://app:hunter2@db:5432/auth")
        .build()
        .unwrap();
    let debug = format!("{config:?}");
    assert!(!debug.contains(TEST_SECRET), "{debug}");
    assert!(!debug.contains("hunter2"), "{debug}");
    let builder = format!("{:?}", config_builder());
    assert!(!builder.contains(TEST_SECRET), "{builder}");
    assert_eq!(
        fastcore_security::redact_url("postgres://app:hunter2@db:5432/auth"),
        "postgres://app:***@db:5432/auth"
    );
    assert_eq!(
        fastcore_security::redact_url("sqlite://tokens.db"),
        "sqlite://tokens.db"
    );
}

#[test]
fn empty_audience_issuer_and_tiny_limits_are_refused() {
    assert!(config_error(config_builder().audience(" ").build()).contains("audience"));
    assert!(config_error(config_builder().issuer("").build()).contains("issuer"));
    config_error(config_builder().access_token_ttl(Duration::ZERO).build());
    config_error(
        config_builder()
            .refresh_token_ttl(Duration::from_millis(999))
            .build(),
    );
    config_error(config_builder().leeway(Duration::from_secs(301)).build());
    config_error(config_builder().max_token_bytes(255).build());
}

/// A service must accept the tokens it issues: its own `aud` has to be
/// among the audiences it accepts, or login works and every later request
/// (and every refresh) fails.
#[tokio::test]
async fn an_audience_the_service_itself_would_refuse_is_a_configuration_error() {
    let msg = config_error(
        config_builder()
            .allowed_audiences(["admin-api".to_owned()])
            .build(),
    );
    assert!(
        msg.contains("JWT_ALLOWED_AUDIENCES") && msg.contains("JWT_AUDIENCE"),
        "{msg}"
    );
    assert!(!msg.contains("  "), "no runs of spaces: {msg:?}");
    config_error(config_builder().allowed_audiences(Vec::new()).build());
    let msg = config_error(
        SecurityConfig::builder()
            .secret(TEST_SECRET)
            .allowed_audiences(["api".to_owned()])
            .build(),
    );
    assert!(msg.contains("JWT_AUDIENCE"), "{msg}");
    assert!(!msg.contains("  "), "no runs of spaces: {msg:?}");
    let err = SecurityConfig::builder_from_lookup(lookup(&[
        ("JWT_SECRET_KEY", TEST_SECRET),
        ("JWT_AUDIENCE", "api"),
        ("JWT_ALLOWED_AUDIENCES", "other"),
    ]))
    .unwrap()
    .build();
    config_error(err);

    // The accepted shapes: the audience alone, or listed among others.
    for builder in [
        config_builder(),
        config_builder().allowed_audiences(["other".to_owned(), AUDIENCE.to_owned()]),
    ] {
        let security = memory_security_with(builder.build().unwrap());
        let pair = security.create_token_pair("1", None).await.unwrap();
        security
            .validate_token(&pair.access_token, Some(TokenType::Access))
            .await
            .unwrap();
        security
            .refresh_access_token(&pair.refresh_token)
            .await
            .unwrap();
    }
}

/// Issuing a token longer than `max_token_bytes` would hand out a token
/// that the service then refuses on every request: refuse to issue it.
#[tokio::test]
async fn a_token_too_large_to_be_accepted_is_never_issued() {
    let security = memory_security_with(config_builder().max_token_bytes(512).build().unwrap());
    let big = extra(&[("roles", json!(["x".repeat(600)]))]);
    for result in [
        security
            .create_access_token("1", Some(big.clone()))
            .await
            .map(|t| t.token),
        security
            .create_refresh_token("1", Some(big.clone()))
            .await
            .map(|t| t.token),
        security
            .create_token_pair("1", Some(big.clone()))
            .await
            .map(|p| p.access_token),
    ] {
        let err = result.unwrap_err();
        assert!(
            matches!(&err, Error::InvalidInput(m) if m.contains("512")),
            "{err:?}"
        );
    }
    assert!(
        security.list_user_tokens("1").await.unwrap().is_empty(),
        "nothing recorded"
    );

    let small = extra(&[("roles", json!(["admin"]))]);
    let pair = security.create_token_pair("1", Some(small)).await.unwrap();
    assert!(pair.access_token.len() <= 512);
    security
        .validate_token(&pair.access_token, None)
        .await
        .unwrap();
}

#[tokio::test]
async fn the_password_policy_comes_from_the_environment_and_hashes_new_passwords() {
    let config = SecurityConfig::builder_from_lookup(lookup(&[
        ("JWT_SECRET_KEY", TEST_SECRET),
        ("PASSWORD_ARGON2_MEMORY_KIB", "32768"),
        ("PASSWORD_ARGON2_ITERATIONS", "3"),
        ("PASSWORD_MAX_BYTES", "128"),
    ]))
    .unwrap()
    .build()
    .unwrap();
    let policy = *config.password_policy();
    assert_eq!(
        (policy.memory_kib, policy.iterations, policy.parallelism),
        (32_768, 3, 1)
    );
    assert_eq!(policy.max_password_bytes, 128);

    let security = Security::new(config, Arc::new(MemoryTokenStore::new())).unwrap();
    let hash = security.passwords().hash("correct horse").await.unwrap();
    assert!(
        hash.starts_with("$argon2id$v=19$m=32768,t=3,p=1$"),
        "{hash}"
    );
    assert!(matches!(
        security.passwords().hash(&"x".repeat(129)).await,
        Err(Error::InvalidInput(_))
    ));

    // The builder checks a policy given in code the same way.
    let weak = PasswordPolicy {
        iterations: 1,
        ..PasswordPolicy::default()
    };
    let msg = config_error(
        SecurityConfig::builder()
            .secret(TEST_SECRET)
            .password_policy(weak)
            .build(),
    );
    assert!(msg.contains("floor"), "{msg}");
}

/// The throttle's keys of usernames and addresses are keyed: with
/// `LOGIN_THROTTLE_SECRET`, else with a key derived from `JWT_SECRET_KEY`;
/// with a key set and no throttle secret there is nothing shared to key
/// them with. Instances agree exactly when their secrets do.
#[test]
fn login_throttle_keys_are_keyed_with_a_shared_secret() {
    use fastcore_security::{KeySet, SigningKey, ThrottleKey};

    let from_env = |pairs: &[(&str, &str)]| {
        SecurityConfig::builder_from_lookup(lookup(pairs))
            .unwrap()
            .build()
            .unwrap()
            .login_throttle_keys()
    };
    let other_secret = "another-secret-that-is-at-least-32-bytes-long";
    let throttle_secret = "a-throttle-secret-of-at-least-32-bytes!!";

    // Derived from the signing secret: the same secret, the same keys.
    let derived = from_env(&[("JWT_SECRET_KEY", TEST_SECRET)]);
    assert!(derived.is_keyed());
    assert_ne!(derived.account("ada"), ThrottleKey::account("ada"));
    let ip = "192.0.2.7".parse().unwrap();
    assert_ne!(derived.address(ip), ThrottleKey::address(ip));
    assert_eq!(
        derived.account("ada"),
        from_env(&[("JWT_SECRET_KEY", TEST_SECRET)]).account("ADA")
    );
    assert_ne!(
        derived.account("ada"),
        from_env(&[("JWT_SECRET_KEY", other_secret)]).account("ada")
    );

    // LOGIN_THROTTLE_SECRET wins over the signing secret.
    let explicit = from_env(&[
        ("JWT_SECRET_KEY", TEST_SECRET),
        ("LOGIN_THROTTLE_SECRET", throttle_secret),
    ]);
    assert_ne!(explicit.account("ada"), derived.account("ada"));
    assert_eq!(
        explicit.account("ada"),
        from_env(&[
            ("JWT_SECRET_KEY", other_secret),
            ("LOGIN_THROTTLE_SECRET", throttle_secret),
        ])
        .account("ada")
    );

    // A key set: unkeyed unless a throttle secret is given.
    let keys = || {
        KeySet::new(vec![
            SigningKey::hmac(Some("k1".into()), Algorithm::HS256, TEST_SECRET.as_bytes()).unwrap(),
        ])
        .unwrap()
    };
    let with_keys = SecurityConfig::builder().key_set(keys()).build().unwrap();
    assert!(!with_keys.login_throttle_keys().is_keyed());
    assert_eq!(
        with_keys.login_throttle_keys().account("ada"),
        ThrottleKey::account("ada")
    );
    let with_keys = SecurityConfig::builder()
        .key_set(keys())
        .login_throttle_secret(throttle_secret)
        .build()
        .unwrap();
    assert_eq!(
        with_keys.login_throttle_keys().account("ada"),
        explicit.account("ada")
    );
}

#[test]
fn a_short_login_throttle_secret_is_refused_without_echoing_it() {
    let short = "short-throttle-secret";
    let msg = config_error(
        SecurityConfig::builder_from_lookup(lookup(&[
            ("JWT_SECRET_KEY", TEST_SECRET),
            ("LOGIN_THROTTLE_SECRET", short),
        ]))
        .unwrap()
        .build(),
    );
    assert!(msg.contains("LOGIN_THROTTLE_SECRET"), "{msg}");
    assert!(msg.contains("at least 32"), "{msg}");
    assert!(!msg.contains(short), "{msg}");
    // Set but blank is no secret at all, not "unset": a deployment
    // template that fills in nothing must not end up unkeyed.
    let long_blank = " ".repeat(40);
    for blank in ["", "   ", long_blank.as_str()] {
        let msg = config_error(
            SecurityConfig::builder_from_lookup(lookup(&[
                ("JWT_SECRET_KEY", TEST_SECRET),
                ("LOGIN_THROTTLE_SECRET", blank),
            ]))
            .unwrap()
            .build(),
        );
        assert!(msg.contains("LOGIN_THROTTLE_SECRET"), "{msg}");
    }
    let config = config_builder()
        .login_throttle_secret("a-throttle-secret-of-at-least-32-bytes!!")
        .build()
        .unwrap();
    let debug = format!("{config:?}");
    assert!(!debug.contains("a-throttle-secret"), "{debug}");
}
