//! No user enumeration through `POST /auth/login`: a login for a user that
//! does not exist and a login for a real user with a wrong password give
//! the same answer, byte for byte, and take the same time.
//!
//! Two ways to the same time: the hashing work is the same (an unknown user
//! is verified against a dummy hash of the policy; measured with the
//! failure floor off), and the failure floor holds every failure to the
//! same minimum, which also covers accounts whose stored hash is slower
//! than the policy's (a legacy bcrypt hash; measured with the floor on).
//!
//! Time is compared statistically, so that the test holds on a busy shared
//! machine: many logins of each kind, interleaved in pairs (the order
//! alternating) so that load from other processes falls on both kinds
//! alike, after a warm-up, and compared through medians and trimmed means,
//! never a threshold on one call.

// Test helpers may panic: a panic is a failed test.
#![allow(clippy::unwrap_used, clippy::panic)]

mod common;

use std::time::{Duration, Instant};

use tokio::sync::Mutex;

use axum::Router;
use axum::http::{HeaderMap, StatusCode};
use common::*;
use fastcore_security::auth_router;

/// Pairs measured per kind of wrong password.
const PAIRS: usize = 60;
/// Logins of each kind before measuring (the dummy hash, caches, threads).
const WARM_UP: usize = 6;
/// The ratio of the two kinds' typical durations must be within this: a
/// few percent (a missing dummy hash gives a ratio near 0.01).
const TOLERANCE: (f64, f64) = (0.92, 1.087);
/// Measuring rounds: a round that load from other processes skewed is
/// measured again; a real difference fails every round.
const ROUNDS: usize = 3;

/// The tests here measure time: one at a time, so neither loads the
/// machine while the other measures.
static MEASURING: Mutex<()> = Mutex::const_new(());

/// `auth_router` over a directory whose only user, `ada`, has an argon2id
/// hash at the default policy (argon2-cffi's, from the Python fixtures), so
/// her hash costs what the dummy hash of an unknown user costs. The
/// failure floor is off: this router shows the hashing work itself is the
/// same.
fn router() -> Router {
    let vectors = python_vectors();
    let hash = vectors["passlib_argon2"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["password"] == PASSWORD && str_of(v, "source").starts_with("argon2-cffi"))
        .map(|v| str_of(v, "hash").to_owned())
        .unwrap();
    assert!(hash.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"));
    let directory = TestDirectory::default();
    directory.add("1", "ada", &hash);
    // The throttle stays on (its cost is part of every login) with limits
    // this test never reaches: it is about hashing, not refusals.
    let config = config_builder()
        .login_max_failures_per_account(1_000_000)
        .login_max_failures_per_address(1_000_000)
        .login_failure_floor(Duration::ZERO)
        .build()
        .unwrap();
    auth_router(auth_state(memory_security_with(config), &directory))
}

async fn timed_login(router: &Router, username: &str, password: &str) -> (TestResponse, Duration) {
    let request = post_form(
        "/auth/login",
        &[
            ("grant_type", "password"),
            ("username", username),
            ("password", password),
        ],
    );
    let start = Instant::now();
    let response = send(router, request).await;
    (response, start.elapsed())
}

/// Headers that may differ between any two responses (none are set by the
/// router today; a server in front may add them).
fn comparable(headers: &HeaderMap) -> Vec<(String, Vec<u8>)> {
    let mut kept: Vec<_> = headers
        .iter()
        .filter(|(name, _)| {
            let name = name.as_str();
            !(name == "date" || name.contains("time") || name.contains("request-id"))
        })
        .map(|(name, value)| (name.as_str().to_owned(), value.as_bytes().to_vec()))
        .collect();
    kept.sort();
    kept
}

fn assert_same_answer(reference: &TestResponse, other: &TestResponse, what: &str) {
    assert_eq!(other.status, reference.status, "{what}");
    assert_eq!(other.body, reference.body, "{what}");
    assert_eq!(
        comparable(&other.headers),
        comparable(&reference.headers),
        "{what}"
    );
}

fn median(samples: &[Duration]) -> f64 {
    let mut secs: Vec<f64> = samples.iter().map(Duration::as_secs_f64).collect();
    secs.sort_by(f64::total_cmp);
    let n = secs.len();
    if n % 2 == 1 {
        secs[n / 2]
    } else {
        (secs[n / 2 - 1] + secs[n / 2]) / 2.0
    }
}

/// The mean of the middle 60 % (20 % cut at each end).
fn trimmed_mean(samples: &[Duration]) -> f64 {
    let mut secs: Vec<f64> = samples.iter().map(Duration::as_secs_f64).collect();
    secs.sort_by(f64::total_cmp);
    let cut = secs.len() / 5;
    let middle = &secs[cut..secs.len() - cut];
    middle.iter().sum::<f64>() / middle.len() as f64
}

/// Durations of `pairs` interleaved logins of each kind, every answer
/// checked against `reference`.
async fn measure(
    router: &Router,
    reference: &TestResponse,
    pairs: usize,
    a: (&str, &str),
    b: (&str, &str),
) -> (Vec<Duration>, Vec<Duration>) {
    let (mut times_a, mut times_b) = (Vec::with_capacity(pairs), Vec::with_capacity(pairs));
    for i in 0..pairs {
        // Alternate which kind goes first, so neither always runs second.
        let (first, second) = if i % 2 == 0 { (a, b) } else { (b, a) };
        let (r1, t1) = timed_login(router, first.0, first.1).await;
        let (r2, t2) = timed_login(router, second.0, second.1).await;
        assert_same_answer(reference, &r1, first.0);
        assert_same_answer(reference, &r2, second.0);
        let (ta, tb) = if i % 2 == 0 { (t1, t2) } else { (t2, t1) };
        times_a.push(ta);
        times_b.push(tb);
    }
    (times_a, times_b)
}

struct Comparison {
    median_ratio: f64,
    trimmed_ratio: f64,
    summary: String,
}

fn compare(label: &str, unknown: &[Duration], known: &[Duration]) -> Comparison {
    let (mu, mk) = (median(unknown), median(known));
    let (tu, tk) = (trimmed_mean(unknown), trimmed_mean(known));
    let c = Comparison {
        median_ratio: mu / mk,
        trimmed_ratio: tu / tk,
        summary: format!(
            "{label}: {} pairs; median {:.2} ms vs {:.2} ms (ratio {:.3}); \
             trimmed mean {:.2} ms vs {:.2} ms (ratio {:.3})",
            unknown.len(),
            mu * 1e3,
            mk * 1e3,
            mu / mk,
            tu * 1e3,
            tk * 1e3,
            tu / tk,
        ),
    };
    eprintln!("{}", c.summary);
    c
}

fn within_tolerance(ratio: f64) -> bool {
    (TOLERANCE.0..=TOLERANCE.1).contains(&ratio)
}

fn assert_indistinguishable(c: &Comparison) {
    assert!(within_tolerance(c.median_ratio), "{}", c.summary);
    assert!(within_tolerance(c.trimmed_ratio), "{}", c.summary);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_users_and_wrong_passwords_look_and_time_the_same() {
    let _one_at_a_time = MEASURING.lock().await;
    let router = router();
    let wrong = "not the password";
    // A wrong password that is not in NFKC form takes the raw-bytes
    // fallback (two verifications); an unknown user must take it too.
    let wrong_non_nfkc = "\u{fb01}\u{ff4e}\u{ff41}\u{ff4c} caf\u{65}\u{301}";

    // The reference answer: a real user, a wrong password.
    let (reference, _) = timed_login(&router, "ada", wrong).await;
    assert_eq!(
        reference.status,
        StatusCode::UNAUTHORIZED,
        "{}",
        reference.text()
    );
    assert_eq!(reference.json()["code"], "invalid_credentials");
    for text in [wrong, "ada", "argon2", "nobody-here"] {
        assert!(!reference.text().contains(text), "{text}");
    }

    for _ in 0..WARM_UP {
        for (user, pw) in [("nobody-here", wrong), ("ada", wrong)] {
            let (res, _) = timed_login(&router, user, pw).await;
            assert_same_answer(&reference, &res, user);
        }
    }

    let mut round = 0;
    let (plain, fallback) = loop {
        round += 1;
        let (unknown, known) = measure(
            &router,
            &reference,
            PAIRS,
            ("nobody-here", wrong),
            ("ada", wrong),
        )
        .await;
        let plain = compare("ASCII wrong password", &unknown, &known);

        let (unknown, known) = measure(
            &router,
            &reference,
            PAIRS / 2,
            ("nobody-here", wrong_non_nfkc),
            ("ada", wrong_non_nfkc),
        )
        .await;
        let fallback = compare("non-NFKC wrong password", &unknown, &known);
        let same = [&plain, &fallback]
            .iter()
            .all(|c| within_tolerance(c.median_ratio) && within_tolerance(c.trimmed_ratio));
        if same || round == ROUNDS {
            break (plain, fallback);
        }
        eprintln!("round {round} outside the tolerance; measuring again");
    };

    // Control: the same measure tells apart logins that hash from logins
    // that do not (a password over the byte limit is refused unhashed), so
    // a missing dummy hash for unknown users would be caught.
    let over_long = "x".repeat(2048);
    let (unhashed, hashed) = measure(
        &router,
        &reference,
        PAIRS / 3,
        ("ada", &over_long),
        ("ada", wrong),
    )
    .await;
    let control = compare("control: no hashing vs hashing", &unhashed, &hashed);
    assert!(
        !within_tolerance(control.median_ratio) && !within_tolerance(control.trimmed_ratio),
        "the measure cannot tell hashing from no hashing: {}",
        control.summary
    );

    assert_indistinguishable(&plain);
    assert_indistinguishable(&fallback);
}

/// bcrypt cost of the legacy account: slower to verify than the policy's
/// argon2id dummy hash (cost 12 is ~4 times slower again; 10 keeps the
/// test short).
const LEGACY_BCRYPT_COST: u32 = 10;
/// The floor for the legacy-hash test: above a cost-10 verification with
/// room for a loaded machine.
const TEST_FLOOR: Duration = Duration::from_millis(200);
/// Pairs measured with the floor on (each login takes the floor).
const FLOOR_PAIRS: usize = 30;

/// `auth_router` over a directory whose only user, `legacy`, has a bcrypt
/// hash (as passlib made them before the move to argon2id), with the
/// failure floor at `floor`.
fn legacy_router(floor: Duration) -> Router {
    let hash = bcrypt::hash(PASSWORD, LEGACY_BCRYPT_COST).unwrap();
    let directory = TestDirectory::default();
    directory.add("7", "legacy", &hash);
    let config = config_builder()
        .login_max_failures_per_account(1_000_000)
        .login_max_failures_per_address(1_000_000)
        .login_failure_floor(floor)
        .build()
        .unwrap();
    auth_router(auth_state(memory_security_with(config), &directory))
}

/// An account with a legacy bcrypt hash fails more slowly than an unknown
/// user (whose dummy hash is the policy's argon2id), so without the floor
/// its existence shows in the timing; with a floor above the bcrypt time,
/// a wrong password for it and an unknown user take the same time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_failure_floor_hides_a_legacy_bcrypt_account() {
    let _one_at_a_time = MEASURING.lock().await;
    let wrong = "not the password";

    // Without the floor, the measure tells the two apart: the leak the
    // floor exists for.
    let bare = legacy_router(Duration::ZERO);
    let (reference, _) = timed_login(&bare, "legacy", wrong).await;
    assert_eq!(reference.status, StatusCode::UNAUTHORIZED);
    for _ in 0..WARM_UP {
        for user in ["nobody-here", "legacy"] {
            let (res, _) = timed_login(&bare, user, wrong).await;
            assert_same_answer(&reference, &res, user);
        }
    }
    let (unknown, legacy) = measure(
        &bare,
        &reference,
        PAIRS / 3,
        ("nobody-here", wrong),
        ("legacy", wrong),
    )
    .await;
    let leak = compare(
        "floor off: unknown user vs bcrypt account",
        &unknown,
        &legacy,
    );
    assert!(
        !within_tolerance(leak.median_ratio) && !within_tolerance(leak.trimmed_ratio),
        "a bcrypt cost-{LEGACY_BCRYPT_COST} account should fail measurably slower than an \
         unknown user without the floor: {}",
        leak.summary
    );

    // With the floor, every failure takes the floor.
    let floored = legacy_router(TEST_FLOOR);
    let (reference, _) = timed_login(&floored, "legacy", wrong).await;
    for user in ["nobody-here", "legacy"] {
        let (res, _) = timed_login(&floored, user, wrong).await;
        assert_same_answer(&reference, &res, user);
    }
    let mut round = 0;
    let same = loop {
        round += 1;
        let (unknown, legacy) = measure(
            &floored,
            &reference,
            FLOOR_PAIRS,
            ("nobody-here", wrong),
            ("legacy", wrong),
        )
        .await;
        // A sleep never ends early: the floor is a lower bound on every failure.
        assert!(
            unknown.iter().chain(&legacy).all(|t| *t >= TEST_FLOOR),
            "a failure was answered before the floor"
        );
        let c = compare(
            "floor on: unknown user vs bcrypt account",
            &unknown,
            &legacy,
        );
        if (within_tolerance(c.median_ratio) && within_tolerance(c.trimmed_ratio))
            || round == ROUNDS
        {
            break c;
        }
        eprintln!("round {round} outside the tolerance; measuring again");
    };
    assert_indistinguishable(&same);
}
