//! Refresh rotation, reuse detection, sessions and log-out-everywhere,
//! through `Security` on every backend (RFC 9700 section 4.14.2).
//!
//! Each test runs on memory, SQLite and, with their features, PostgreSQL,
//! MySQL/MariaDB and Redis, each on a database or key prefix of its own
//! (`tests/common/`). Without their server those are skipped, except under
//! `CI`. The outcomes asserted are exact: they do not depend on timing.
// Test helpers may panic: a panic is a failed test.
#![allow(clippy::unwrap_used, clippy::panic)]

mod common;

use std::any::Any;
use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use fastcore_security::{
    ClientInfo, Error, MemoryTokenStore, Security, SecurityConfig, TokenPair, TokenStore,
    TokenType, connect_store,
};

/// How many refreshes race with one refresh token.
const RACERS: usize = 64;

/// A `Security` on one backend, and whatever must live as long as it.
struct Target {
    security: Security,
    _guard: Option<Box<dyn Any + Send>>,
}

/// Opens a fresh store of `backend`, or `None` to skip.
async fn store_of(backend: &str) -> Option<(Arc<dyn TokenStore>, Option<Box<dyn Any + Send>>)> {
    match backend {
        "memory" => Some((Arc::new(MemoryTokenStore::new()), None)),
        "sqlite" => {
            let dir = tempfile::tempdir().unwrap();
            let store = connect_store(&common::sqlite_url(&dir)).await.unwrap();
            Some((store, Some(Box::new(dir))))
        }
        #[cfg(feature = "postgres")]
        "postgres" => {
            let db = common::databases::postgres().await?;
            let store = connect_store(db.url()).await.unwrap();
            Some((store, Some(Box::new(db))))
        }
        #[cfg(feature = "mysql")]
        "mysql" => {
            let db = common::databases::mysql().await?;
            let store = connect_store(db.url()).await.unwrap();
            Some((store, Some(Box::new(db))))
        }
        #[cfg(feature = "redis")]
        "redis" => {
            let (store, prefix) = common::redis_server::redis().await?;
            Some((Arc::new(store), Some(Box::new(prefix))))
        }
        other => panic!("unknown backend {other}"),
    }
}

async fn target(backend: &str, config: SecurityConfig) -> Option<Target> {
    let (store, guard) = store_of(backend).await?;
    Some(Target {
        security: Security::new(config, store).unwrap(),
        _guard: guard,
    })
}

fn with_grace(seconds: u64) -> SecurityConfig {
    common::config_builder()
        .refresh_reuse_grace(Duration::from_secs(seconds))
        .build()
        .unwrap()
}

/// The claims of a token without the store check (for tokens that are
/// expected to be revoked).
fn claims_unchecked(security: &Security, token: &str) -> fastcore_security::Claims {
    security.decode_token(token).unwrap()
}

async fn claims(security: &Security, token: &str) -> fastcore_security::Claims {
    security.validate_token(token, None).await.unwrap()
}

fn assert_err(result: fastcore_security::Result<impl std::fmt::Debug>, expected: &str) {
    match result {
        Err(e) => assert_eq!(e.code(), expected, "{e:?}"),
        Ok(v) => panic!("expected {expected}, got {v:?}"),
    }
}

/// The refresh tokens of a session that are still live, by `jti`.
async fn live_refresh_jtis(security: &Security, user: &str, sid: &str) -> Vec<String> {
    security
        .list_user_tokens(user)
        .await
        .unwrap()
        .into_iter()
        .filter(|r| r.token_type == TokenType::Refresh && r.family_id.as_deref() == Some(sid))
        .map(|r| r.jti)
        .collect()
}

async fn race(
    security: &Security,
    refresh_token: &str,
) -> Vec<fastcore_security::Result<TokenPair>> {
    let tasks: Vec<_> = (0..RACERS)
        .map(|_| {
            let security = security.clone();
            let token = refresh_token.to_owned();
            tokio::spawn(async move { security.refresh_access_token(&token).await })
        })
        .collect();
    let mut results = Vec::new();
    for task in tasks {
        results.push(task.await.unwrap());
    }
    results
}

mod suite {
    use super::*;

    /// 64 refreshes with one token inside the grace interval: one
    /// rotation; every caller gets the same successor refresh token (so
    /// the session has exactly one live refresh token) and an access
    /// token of its own; nothing is revoked.
    pub(super) async fn concurrent_refreshes_within_grace_share_one_rotation(backend: &str) {
        let Some(t) = target(backend, with_grace(30)).await else {
            return;
        };
        let s = &t.security;
        let pair = s.create_token_pair("racer", None).await.unwrap();
        let sid = claims(s, &pair.access_token).await.sid.unwrap();

        let results = race(s, &pair.refresh_token).await;
        let pairs: Vec<TokenPair> = results
            .into_iter()
            .map(|r| r.expect("every racer inside the grace succeeds"))
            .collect();
        let mut successor_jtis = HashSet::new();
        let mut access_jtis = HashSet::new();
        for p in &pairs {
            let refresh = claims(s, &p.refresh_token).await;
            assert_eq!(refresh.sid.as_deref(), Some(sid.as_str()));
            successor_jtis.insert(refresh.jti);
            let access = claims(s, &p.access_token).await;
            assert_eq!(access.sid.as_deref(), Some(sid.as_str()));
            access_jtis.insert(access.jti);
        }
        assert_eq!(successor_jtis.len(), 1, "one rotation, one successor");
        assert_eq!(access_jtis.len(), RACERS, "an access token per caller");
        assert_eq!(
            live_refresh_jtis(s, "racer", &sid).await,
            successor_jtis.into_iter().collect::<Vec<_>>(),
            "no duplicate live children"
        );
        // The login's access token was not touched.
        claims(s, &pair.access_token).await;
    }

    /// The same race with the grace disabled: one rotation wins, every
    /// later presentation is reuse, and the session ends revoked, the
    /// winner's new tokens included.
    pub(super) async fn concurrent_refreshes_without_grace_end_the_session(backend: &str) {
        let Some(t) = target(backend, with_grace(0)).await else {
            return;
        };
        let s = &t.security;
        let pair = s.create_token_pair("racer", None).await.unwrap();
        let bystander = s.create_token_pair("racer", None).await.unwrap();

        let parent_jti = claims(s, &pair.refresh_token).await.jti;
        let results = race(s, &pair.refresh_token).await;
        let (mut winners, mut reused, mut revoked) = (Vec::new(), 0, 0);
        for r in results {
            match r {
                Ok(p) => winners.push(p),
                Err(Error::RefreshTokenReused) => reused += 1,
                // After the first reuse revoked the session, later callers
                // (and possibly the winner's final check) see it revoked.
                Err(Error::RevokedToken) => revoked += 1,
                Err(other) => panic!("unexpected refusal {other:?}"),
            }
        }
        assert!(winners.len() <= 1, "at most one caller gets tokens");
        assert!(reused >= 1, "the first replay after consumption is reuse");
        assert_eq!(winners.len() + reused + revoked, RACERS);
        // Exactly one rotation: the login's refresh token names one successor.
        let parent = s.store().get(&parent_jti).await.unwrap().unwrap();
        let successor = parent.replaced_by.expect("one rotation happened");
        assert!(parent.consumed_at.is_some());
        if let Some(winner) = winners.first() {
            assert_eq!(claims_unchecked(s, &winner.refresh_token).jti, successor);
            for dead in [&winner.access_token, &winner.refresh_token] {
                assert_err(s.validate_token(dead, None).await, "token_revoked");
            }
        }
        // The family ends revoked: the successor too, and nothing is live.
        let successor = s.store().get(&successor).await.unwrap().unwrap();
        assert!(successor.revoked_at.is_some(), "the successor is revoked");
        for dead in [&pair.access_token, &pair.refresh_token] {
            assert!(s.validate_token(dead, None).await.is_err());
        }
        let sid = parent.family_id.unwrap();
        assert!(live_refresh_jtis(s, "racer", &sid).await.is_empty());
        assert!(
            s.list_user_tokens("racer")
                .await
                .unwrap()
                .iter()
                .all(|r| r.family_id.as_deref() != Some(sid.as_str())),
            "no token of the session is live"
        );
        // Only that session ended.
        claims(s, &bystander.access_token).await;
        claims(s, &bystander.refresh_token).await;
    }

    /// Replaying a consumed refresh token after the grace revokes every
    /// token of its session, and the revocation stays even though the
    /// request failed.
    pub(super) async fn replay_after_rotation_revokes_the_family(backend: &str) {
        let Some(t) = target(backend, with_grace(0)).await else {
            return;
        };
        let s = &t.security;
        let login = s.create_token_pair("victim", None).await.unwrap();
        let first = s.refresh_access_token(&login.refresh_token).await.unwrap();
        let second = s.refresh_access_token(&first.refresh_token).await.unwrap();
        let other = s.create_token_pair("victim", None).await.unwrap();

        // An attacker replays the stolen first refresh token.
        assert_err(
            s.refresh_access_token(&first.refresh_token).await,
            "refresh_token_reused",
        );
        for dead in [
            &login.access_token,
            &first.access_token,
            &second.access_token,
            &second.refresh_token,
        ] {
            assert_err(s.validate_token(dead, None).await, "token_revoked");
        }
        // The legitimate client's next refresh fails too: it must log in.
        assert_err(
            s.refresh_access_token(&second.refresh_token).await,
            "token_revoked",
        );
        claims(s, &other.access_token).await;
        // Presenting it again changes nothing and still fails.
        assert!(s.refresh_access_token(&first.refresh_token).await.is_err());
    }

    /// Inside the grace a second presentation gets the current successor;
    /// once that successor has itself been rotated, a late presentation of
    /// the first token is refused without ending the session.
    pub(super) async fn grace_hands_out_the_successor_only_while_it_is_current(backend: &str) {
        let Some(t) = target(backend, with_grace(30)).await else {
            return;
        };
        let s = &t.security;
        let login = s.create_token_pair("tabs", None).await.unwrap();
        let tab_a = s.refresh_access_token(&login.refresh_token).await.unwrap();
        let tab_b = s.refresh_access_token(&login.refresh_token).await.unwrap();
        let a = claims(s, &tab_a.refresh_token).await;
        let b = claims(s, &tab_b.refresh_token).await;
        assert_eq!(a.jti, b.jti, "the same successor");
        assert_ne!(
            claims(s, &tab_a.access_token).await.jti,
            claims(s, &tab_b.access_token).await.jti
        );

        let next = s.refresh_access_token(&tab_a.refresh_token).await.unwrap();
        assert_err(
            s.refresh_access_token(&login.refresh_token).await,
            "token_revoked",
        );
        // Nothing was punished: the session's current tokens still work.
        claims(s, &next.access_token).await;
        claims(s, &next.refresh_token).await;
        claims(s, &tab_b.access_token).await;
    }

    /// Inside the grace, the same spent token from another client (another
    /// address or user agent than the one that rotated it) is theft racing
    /// its owner: the session is revoked.
    pub(super) async fn grace_is_only_for_the_client_that_rotated(backend: &str) {
        let Some(t) = target(backend, with_grace(30)).await else {
            return;
        };
        let s = &t.security;
        let owner = ClientInfo {
            user_agent: Some("Browser/1".into()),
            ip: Some("192.0.2.1".into()),
        };
        let login = s.create_session("u", None, &owner).await.unwrap();
        let rotated = s
            .refresh_session(&login.refresh_token, &owner)
            .await
            .unwrap();
        // A second tab of the same browser is fine.
        let tab = s
            .refresh_session(&login.refresh_token, &owner)
            .await
            .unwrap();
        assert_eq!(
            claims(s, &tab.refresh_token).await.jti,
            claims(s, &rotated.refresh_token).await.jti
        );
        for thief in [
            ClientInfo {
                ip: Some("203.0.113.9".into()),
                ..owner.clone()
            },
            ClientInfo {
                user_agent: Some("curl/8".into()),
                ..owner.clone()
            },
        ] {
            let other = s.create_session("u", None, &owner).await.unwrap();
            let next = s
                .refresh_session(&other.refresh_token, &owner)
                .await
                .unwrap();
            assert_err(
                s.refresh_session(&other.refresh_token, &thief).await,
                "refresh_token_reused",
            );
            assert_err(
                s.validate_token(&next.refresh_token, None).await,
                "token_revoked",
            );
            assert_err(
                s.validate_token(&next.access_token, None).await,
                "token_revoked",
            );
        }
        // The first session was not involved.
        claims(s, &rotated.refresh_token).await;
    }

    /// Sessions: listed with their client and times, only their owner's,
    /// ended one at a time by their owner only.
    pub(super) async fn sessions_are_listed_and_ended_by_their_owner(backend: &str) {
        let Some(t) = target(backend, common::config()).await else {
            return;
        };
        let s = &t.security;
        let phone = ClientInfo {
            user_agent: Some("Phone/1.0 ü".into()),
            ip: Some("192.0.2.7".into()),
        };
        let laptop = ClientInfo {
            user_agent: Some("x".repeat(2000)),
            ip: None,
        };
        let p = s.create_session("owner", None, &phone).await.unwrap();
        let l = s.create_session("owner", None, &laptop).await.unwrap();
        let stranger = s.create_session("stranger", None, &phone).await.unwrap();
        let p_sid = claims(s, &p.access_token).await.sid.unwrap();
        let l_sid = claims(s, &l.access_token).await.sid.unwrap();
        let stranger_sid = claims(s, &stranger.access_token).await.sid.unwrap();

        let sessions = s.list_sessions("owner").await.unwrap();
        assert_eq!(sessions.len(), 2);
        let phone_session = sessions.iter().find(|x| x.id == p_sid).unwrap();
        assert_eq!(phone_session.user_agent.as_deref(), Some("Phone/1.0 ü"));
        assert_eq!(phone_session.ip.as_deref(), Some("192.0.2.7"));
        let laptop_session = sessions.iter().find(|x| x.id == l_sid).unwrap();
        assert_eq!(
            laptop_session.user_agent.as_ref().map(String::len),
            Some(fastcore_security::MAX_USER_AGENT_BYTES),
            "long user agents are cut"
        );
        assert!(phone_session.created_at <= phone_session.last_used_at);
        assert!(phone_session.expires_at > phone_session.last_used_at);

        // A refresh keeps the session (same id and start) with its client.
        let p2 = s.refresh_access_token(&p.refresh_token).await.unwrap();
        let sessions = s.list_sessions("owner").await.unwrap();
        assert_eq!(sessions.len(), 2, "rotation does not add a session");
        let after = sessions.iter().find(|x| x.id == p_sid).unwrap();
        assert_eq!(after.created_at, phone_session.created_at);
        assert_eq!(after.user_agent.as_deref(), Some("Phone/1.0 ü"));

        // Nobody ends someone else's session; the owner ends their own.
        assert!(!s.revoke_session("owner", &stranger_sid).await.unwrap());
        assert!(!s.revoke_session("owner", "no-such-session").await.unwrap());
        claims(s, &stranger.access_token).await;
        assert!(s.revoke_session("owner", &p_sid).await.unwrap());
        assert_err(
            s.validate_token(&p2.access_token, None).await,
            "token_revoked",
        );
        assert_err(
            s.validate_token(&p2.refresh_token, None).await,
            "token_revoked",
        );
        claims(s, &l.access_token).await;
        let ids: Vec<_> = s
            .list_sessions("owner")
            .await
            .unwrap()
            .into_iter()
            .map(|x| x.id)
            .collect();
        assert_eq!(ids, [l_sid]);
        // Ending it twice is not an error; it is just gone.
        assert!(!s.revoke_session("owner", &p_sid).await.unwrap());
    }

    /// Log out everywhere: every token issued so far, access tokens
    /// included, is revoked; a login afterwards works at once.
    pub(super) async fn logout_everywhere_revokes_issued_access_tokens(backend: &str) {
        let Some(t) = target(backend, common::config()).await else {
            return;
        };
        let s = &t.security;
        let a = s.create_token_pair("u", None).await.unwrap();
        let b = s.create_token_pair("u", None).await.unwrap();
        let lone = s.create_access_token("u", None).await.unwrap();
        let rotated = s.refresh_access_token(&a.refresh_token).await.unwrap();
        let other_user = s.create_token_pair("v", None).await.unwrap();

        s.revoke_all_user_tokens("u").await.unwrap();
        for dead in [
            &a.access_token,
            &b.access_token,
            &b.refresh_token,
            &lone.token,
            &rotated.access_token,
            &rotated.refresh_token,
        ] {
            assert_err(s.validate_token(dead, None).await, "token_revoked");
        }
        assert_err(
            s.refresh_access_token(&rotated.refresh_token).await,
            "token_revoked",
        );
        assert!(s.list_sessions("u").await.unwrap().is_empty());
        claims(s, &other_user.access_token).await;

        let again = s.create_token_pair("u", None).await.unwrap();
        claims(s, &again.access_token).await;
        let next = s.refresh_access_token(&again.refresh_token).await.unwrap();
        claims(s, &next.access_token).await;
        assert_eq!(s.list_sessions("u").await.unwrap().len(), 1);
    }

    /// An access token minted by a refresh has its own `jti` and `iat`;
    /// revoking it leaves the refresh token and the login's access token.
    pub(super) async fn minted_access_tokens_are_independent(backend: &str) {
        let Some(t) = target(backend, common::config()).await else {
            return;
        };
        let s = &t.security;
        // A refresh token issued an hour ago (its record says so too).
        let mut old = common::claims_for(s, "u", TokenType::Refresh, 3600);
        old.sid = Some("old-session".into());
        let refresh = common::encode_and_record(s, &old).await;
        let fresh = s.refresh_access_token(&refresh).await.unwrap();
        let access = claims(s, &fresh.access_token).await;
        assert_ne!(access.jti, old.jti);
        assert!(
            access.iat >= common::now() - 60,
            "its own iat, not the refresh token's"
        );
        assert_eq!(access.sid.as_deref(), Some("old-session"));

        let login = s.create_token_pair("u", None).await.unwrap();
        s.revoke_token(&fresh.access_token).await.unwrap();
        claims(s, &fresh.refresh_token).await;
        claims(s, &login.access_token).await;
    }
}

macro_rules! on_backend {
    ($backend:ident $(, #[$cfg:meta])?) => {
        on_backend!(@tests $backend, [$(#[$cfg])?], [
            concurrent_refreshes_within_grace_share_one_rotation,
            concurrent_refreshes_without_grace_end_the_session,
            replay_after_rotation_revokes_the_family,
            grace_hands_out_the_successor_only_while_it_is_current,
            grace_is_only_for_the_client_that_rotated,
            sessions_are_listed_and_ended_by_their_owner,
            logout_everywhere_revokes_issued_access_tokens,
            minted_access_tokens_are_independent,
        ]);
    };
    (@tests $backend:ident, [$(#[$cfg:meta])?], [$($test:ident),* $(,)?]) => {
        $(#[$cfg])?
        mod $backend {
            use super::suite;
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $test() {
                    suite::$test(stringify!($backend)).await;
                }
            )*
        }
    };
}

on_backend!(memory);
on_backend!(sqlite);
on_backend!(postgres, #[cfg(feature = "postgres")]);
on_backend!(mysql, #[cfg(feature = "mysql")]);
on_backend!(redis, #[cfg(feature = "redis")]);
