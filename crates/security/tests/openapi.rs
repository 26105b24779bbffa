//! The OpenAPI description (feature `openapi`): fetched over HTTP from the
//! router that serves it, parsed with an OpenAPI 3.1 parser that is not
//! utoipa (`oas3`), and checked against the routes the router really has
//! ([`AuthRoute::ALL`], the list `auth_router` is built from).

// Test code: a failed assumption fails the test.
#![allow(clippy::unwrap_used, clippy::panic)]

mod common;

use std::collections::BTreeSet;

use axum::Router;
use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use common::*;
use fastcore_security::http::{OPENAPI_PATH, openapi_router};
use fastcore_security::{AuthRoute, auth_router, openapi};
use serde_json::Value;

/// The application as a user would build it: the auth routes and the
/// description of them.
fn app() -> Router {
    app_with(memory_security())
}

fn app_with(security: fastcore_security::Security) -> Router {
    // User 7 exists (no password: it never logs in, its tokens are minted).
    let directory = TestDirectory::default();
    directory.add("7", "seven", "");
    auth_router(auth_state(security, &directory)).merge(openapi_router(&openapi()))
}

async fn fetch_spec(app: &Router) -> (String, Value) {
    let res = send(app, get(OPENAPI_PATH, None)).await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.text());
    assert_eq!(res.header(header::CONTENT_TYPE), Some("application/json"));
    let text = res.text();
    let json: Value = serde_json::from_str(&text).unwrap();
    (text, json)
}

/// The method names the description uses for a route's method.
fn method_key(method: &Method) -> &'static str {
    match *method {
        Method::GET => "get",
        Method::POST => "post",
        Method::DELETE => "delete",
        Method::PUT => "put",
        Method::PATCH => "patch",
        _ => panic!("no route uses {method}"),
    }
}

/// Every error code the library can put in a problem body.
const KNOWN_CODES: &[&str] = &[
    "invalid_token",
    "token_expired",
    "token_revoked",
    "refresh_token_reused",
    "invalid_credentials",
    "too_many_attempts",
    "authentication_failed",
    "forbidden",
    "invalid_request",
    "store_unavailable",
    "configuration_error",
    "internal_error",
    "missing_token",
    "not_found",
    "body_too_large",
    "csrf_check_failed",
];

#[tokio::test]
async fn the_served_spec_is_valid_openapi_3_and_lists_every_route() {
    let app = app();
    let (text, spec) = fetch_spec(&app).await;

    // An independent OpenAPI 3.1 parser accepts it.
    let parsed = oas3::from_json(&text).unwrap_or_else(|e| panic!("not OpenAPI 3.1: {e}"));
    assert!(parsed.openapi.starts_with("3."), "{}", parsed.openapi);
    assert_eq!(parsed.info.title, "fastcore-security");
    assert!(!parsed.info.version.is_empty());

    // Descriptions come from doc comments: no rustdoc link syntax leaks in.
    assert!(
        !text.contains("[`"),
        "rustdoc link syntax in the description"
    );

    // Required fields, read from the raw JSON too.
    assert!(spec["openapi"].as_str().unwrap().starts_with("3."));
    assert!(spec["info"]["title"].is_string());
    assert!(spec["info"]["version"].is_string());
    let paths = spec["paths"].as_object().unwrap();

    // Every route the router serves is documented...
    let mut served = BTreeSet::new();
    for route in AuthRoute::ALL {
        let key = method_key(&route.method());
        let operation = &spec["paths"][route.path()][key];
        assert!(
            operation.is_object(),
            "{} {} is served but not in the OpenAPI description",
            route.method(),
            route.path()
        );
        assert!(
            operation["operationId"].is_string(),
            "{route:?} has no operationId"
        );
        let responses = operation["responses"].as_object().unwrap();
        assert!(
            responses.keys().any(|status| status.starts_with('2')),
            "{route:?} documents no success response"
        );
        served.insert((key.to_owned(), route.path().to_owned()));
    }
    // ...and nothing else is.
    let mut documented = BTreeSet::new();
    for (path, item) in paths {
        for method in item.as_object().unwrap().keys() {
            documented.insert((method.clone(), path.clone()));
        }
    }
    assert_eq!(documented, served);

    // The probe below tells a served route from a missing one.
    let res = send(&app, get("/auth/not-a-route", None)).await;
    assert_eq!(res.status, StatusCode::NOT_FOUND);
    let res = send(
        &app,
        Request::builder()
            .method(Method::PUT)
            .uri("/auth/login")
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(res.status, StatusCode::METHOD_NOT_ALLOWED);

    // AuthRoute::ALL is what the router really serves: each route answers
    // (a refusal, without credentials), none falls through to 404/405.
    for route in AuthRoute::ALL {
        let uri = route.path().replace("{id}", "some-session");
        let request = Request::builder()
            .method(route.method())
            .uri(&uri)
            .body(Body::empty())
            .unwrap();
        let res = send(&app, request).await;
        assert!(
            res.status != StatusCode::NOT_FOUND && res.status != StatusCode::METHOD_NOT_ALLOWED,
            "{} {uri}: {}",
            route.method(),
            res.status
        );
    }
}

#[tokio::test]
async fn the_bearer_scheme_and_every_error_response_are_described() {
    let (_, spec) = fetch_spec(&app()).await;
    let scheme = &spec["components"]["securitySchemes"]["bearerAuth"];
    assert_eq!(scheme["type"], "http");
    assert_eq!(scheme["scheme"], "bearer");
    assert_eq!(scheme["bearerFormat"], "JWT");
    let problem = &spec["components"]["schemas"]["Problem"];
    for field in ["type", "title", "status", "detail", "code"] {
        assert!(
            problem["properties"][field].is_object(),
            "Problem lacks {field}: {problem}"
        );
    }

    let operation =
        |route: AuthRoute| spec["paths"][route.path()][method_key(&route.method())].clone();
    // The codes an error response documents (its `code` enum).
    let codes = |route: AuthRoute, status: &str| -> BTreeSet<String> {
        let response = &operation(route)["responses"][status];
        let content = &response["content"]["application/problem+json"];
        assert!(
            content.is_object(),
            "{route:?} {status} is not problem+json: {response}"
        );
        content["schema"]["allOf"][1]["properties"]["code"]["enum"]
            .as_array()
            .unwrap_or_else(|| panic!("{route:?} {status} lists no codes: {response}"))
            .iter()
            .map(|c| c.as_str().unwrap().to_owned())
            .collect()
    };
    let set = |codes: &[&str]| {
        codes
            .iter()
            .map(|c| (*c).to_owned())
            .collect::<BTreeSet<_>>()
    };

    // Every route that takes a bearer token says so, and documents its 401
    // (with the challenge header) and the 503 of a store outage.
    for route in [
        AuthRoute::Logout,
        AuthRoute::LogoutAll,
        AuthRoute::LogoutOthers,
        AuthRoute::ListSessions,
        AuthRoute::DeleteSession,
        AuthRoute::Me,
    ] {
        let op = operation(route);
        assert_eq!(
            op["security"][0]["bearerAuth"],
            Value::Array(vec![]),
            "{route:?}"
        );
        assert!(codes(route, "401").contains("missing_token"), "{route:?}");
        assert!(
            op["responses"]["401"]["headers"]["WWW-Authenticate"].is_object(),
            "{route:?}"
        );
        assert_eq!(
            codes(route, "503"),
            set(&["store_unavailable"]),
            "{route:?}"
        );
        assert!(op["responses"]["503"]["headers"]["Retry-After"].is_object());
    }
    assert_eq!(
        codes(AuthRoute::Me, "401"),
        set(&[
            "missing_token",
            "invalid_token",
            "token_expired",
            "token_revoked",
            "authentication_failed"
        ])
    );
    assert_eq!(codes(AuthRoute::Me, "403"), set(&["forbidden"]));

    // Login: bad credentials, throttling, oversized bodies.
    assert_eq!(
        codes(AuthRoute::Login, "401"),
        set(&["invalid_credentials", "authentication_failed"])
    );
    assert_eq!(codes(AuthRoute::Login, "429"), set(&["too_many_attempts"]));
    assert!(operation(AuthRoute::Login)["responses"]["429"]["headers"]["Retry-After"].is_object());
    assert_eq!(codes(AuthRoute::Login, "413"), set(&["body_too_large"]));
    assert_eq!(codes(AuthRoute::Login, "503"), set(&["store_unavailable"]));
    let login_body = &operation(AuthRoute::Login)["requestBody"]["content"];
    assert!(login_body["application/x-www-form-urlencoded"].is_object());
    assert!(login_body["application/json"].is_object());

    // Refresh: reuse detection is a documented outcome.
    assert!(codes(AuthRoute::Refresh, "401").contains("refresh_token_reused"));
    assert_eq!(codes(AuthRoute::Refresh, "413"), set(&["body_too_large"]));

    // Sessions: someone else's session is a 404.
    assert_eq!(codes(AuthRoute::DeleteSession, "404"), set(&["not_found"]));

    // Health answers 503 with its status body, not a problem.
    assert!(
        operation(AuthRoute::Health)["responses"]["503"]["content"]["application/json"].is_object()
    );

    // Every code anywhere in the description is one the library really sends.
    for route in AuthRoute::ALL {
        for (status, response) in operation(*route)["responses"].as_object().unwrap() {
            if response["content"]["application/problem+json"].is_object() {
                for code in codes(*route, status) {
                    assert!(
                        KNOWN_CODES.contains(&code.as_str()),
                        "{route:?} {status}: {code}"
                    );
                }
            }
        }
    }
}

#[tokio::test]
async fn documented_refusals_match_what_the_router_answers() {
    let config = config_builder()
        .login_max_failures_per_account(1)
        .build()
        .unwrap();
    let security = memory_security_with(config);
    let app = app_with(security.clone());
    let (_, spec) = fetch_spec(&app).await;
    let pair = security.create_token_pair("7", None).await.unwrap();
    let access = pair.access_token.as_str();
    let delete_other = Request::builder()
        .method(Method::DELETE)
        .uri("/auth/sessions/someone-elses")
        .header(header::AUTHORIZATION, format!("Bearer {access}"))
        .body(Body::empty())
        .unwrap();
    let oversized = "x".repeat(20 * 1024);
    // A sample of real refusals: each status and code is in the description.
    let cases = [
        (
            post_form(
                "/auth/login",
                &[("username", "throttled"), ("password", "wrong")],
            ),
            AuthRoute::Login,
        ),
        (
            // The account's one failure is used up: 429.
            post_form(
                "/auth/login",
                &[("username", "throttled"), ("password", "wrong")],
            ),
            AuthRoute::Login,
        ),
        (
            post_form(
                "/auth/login",
                &[
                    ("grant_type", "client_credentials"),
                    ("username", "a"),
                    ("password", "b"),
                ],
            ),
            AuthRoute::Login,
        ),
        (
            post_form(
                "/auth/login",
                &[("username", "big"), ("password", &oversized)],
            ),
            AuthRoute::Login,
        ),
        (delete_other, AuthRoute::DeleteSession),
        (
            Request::builder()
                .method(Method::POST)
                .uri("/auth/logout")
                .body(Body::empty())
                .unwrap(),
            AuthRoute::Logout,
        ),
        (
            get("/auth/sessions?exclude_current=maybe", Some(access)),
            AuthRoute::ListSessions,
        ),
        (
            post_bearer("/auth/logout-all", &tamper_signature(access)),
            AuthRoute::LogoutAll,
        ),
        (get("/auth/me", None), AuthRoute::Me),
        (
            get("/auth/sessions", Some("not.a.jwt")),
            AuthRoute::ListSessions,
        ),
        (
            post_form(
                "/auth/login",
                &[("username", "nobody"), ("password", "wrong")],
            ),
            AuthRoute::Login,
        ),
        (
            post_json(
                "/auth/refresh",
                &serde_json::json!({"refresh_token": "x.y.z"}),
                None,
            ),
            AuthRoute::Refresh,
        ),
    ];
    let mut statuses = BTreeSet::new();
    for (request, route) in cases {
        let res = send(&app, request).await;
        statuses.insert(res.status.as_u16());
        let body = res.json();
        let status = res.status.as_str().to_owned();
        let documented = &spec["paths"][route.path()][method_key(&route.method())]["responses"]
            [&status]["content"]["application/problem+json"]["schema"]["allOf"][1]["properties"]["code"]
            ["enum"];
        assert!(
            documented
                .as_array()
                .is_some_and(|codes| codes.contains(&body["code"])),
            "{route:?} answered {status} {body}, documented: {documented}"
        );
    }
    // The sample covers every kind of refusal the routes give.
    assert_eq!(
        statuses,
        BTreeSet::from([400, 401, 404, 413, 429]),
        "statuses seen"
    );
}

/// Every `$ref` in `value`, with where it was found.
fn refs<'a>(value: &'a Value, at: String, out: &mut Vec<(String, &'a str)>) {
    match value {
        Value::Object(map) => {
            for (key, item) in map {
                if key == "$ref" {
                    if let Some(target) = item.as_str() {
                        out.push((at.clone(), target));
                    }
                } else {
                    refs(item, format!("{at}/{key}"), out);
                }
            }
        }
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                refs(item, format!("{at}/{i}"), out);
            }
        }
        _ => {}
    }
}

/// Resolves a local JSON pointer (`#/components/schemas/Problem`).
fn resolve<'a>(spec: &'a Value, reference: &str) -> Option<&'a Value> {
    let pointer = reference.strip_prefix('#')?;
    spec.pointer(&pointer.replace("~1", "/").replace("~0", "~"))
        .or_else(|| spec.pointer(pointer))
}

#[tokio::test]
async fn every_reference_resolves_and_every_schema_is_used() {
    let (_, spec) = fetch_spec(&app()).await;
    let mut found = Vec::new();
    refs(&spec, String::new(), &mut found);
    assert!(found.len() > 10, "suspiciously few $refs: {found:?}");
    for (at, target) in &found {
        assert!(
            target.starts_with("#/"),
            "{at}: {target} is not a local reference"
        );
        assert!(
            resolve(&spec, target).is_some_and(Value::is_object),
            "{at}: {target} does not resolve"
        );
    }
    // Every component schema is referred to from somewhere (no dead ones).
    let used: BTreeSet<&str> = found.iter().map(|(_, t)| *t).collect();
    for name in spec["components"]["schemas"].as_object().unwrap().keys() {
        let target = format!("#/components/schemas/{name}");
        assert!(used.contains(target.as_str()), "{name} is never used");
    }
    // Every operation's security names a declared scheme.
    let schemes = spec["components"]["securitySchemes"].as_object().unwrap();
    for (path, item) in spec["paths"].as_object().unwrap() {
        for (method, operation) in item.as_object().unwrap() {
            for requirement in operation["security"].as_array().into_iter().flatten() {
                for name in requirement.as_object().unwrap().keys() {
                    assert!(schemes.contains_key(name), "{method} {path}: {name}");
                }
            }
            // Path parameters match the template.
            for name in path.split('{').skip(1).filter_map(|p| p.split_once('}')) {
                let declared = operation["parameters"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .any(|p| p["in"] == "path" && p["name"] == name.0);
                assert!(
                    declared,
                    "{method} {path}: path parameter {} undeclared",
                    name.0
                );
            }
        }
    }
}

#[tokio::test]
async fn a_store_outage_is_answered_as_documented() {
    let dir = tempfile::tempdir().unwrap();
    let store = fastcore_security::SqliteTokenStore::connect(&sqlite_url(&dir))
        .await
        .unwrap();
    store.migrate().await.unwrap();
    let security =
        fastcore_security::Security::new(config(), std::sync::Arc::new(store.clone())).unwrap();
    let pair = security.create_token_pair("7", None).await.unwrap();
    let app = app_with(security);
    let (_, spec) = fetch_spec(&app).await;
    store.pool().close().await;

    let requests = [
        (get("/auth/me", Some(&pair.access_token)), AuthRoute::Me),
        (
            get("/auth/sessions", Some(&pair.access_token)),
            AuthRoute::ListSessions,
        ),
        (
            post_bearer("/auth/logout", &pair.access_token),
            AuthRoute::Logout,
        ),
        (
            post_json(
                "/auth/refresh",
                &serde_json::json!({"refresh_token": pair.refresh_token}),
                None,
            ),
            AuthRoute::Refresh,
        ),
        (get("/health", None), AuthRoute::Health),
    ];
    for (request, route) in requests {
        let res = send(&app, request).await;
        assert_eq!(res.status, StatusCode::SERVICE_UNAVAILABLE, "{route:?}");
        let documented =
            &spec["paths"][route.path()][method_key(&route.method())]["responses"]["503"];
        assert!(documented.is_object(), "{route:?} documents no 503");
        assert!(
            documented["headers"]["Retry-After"].is_object(),
            "{route:?}"
        );
        assert!(res.header(header::RETRY_AFTER).is_some(), "{route:?}");
        let media = res.header(header::CONTENT_TYPE).unwrap().to_owned();
        assert!(
            documented["content"][&media].is_object(),
            "{route:?}: {media}"
        );
    }
}

/// With the refresh cookie on, the router's answers (the cookie-mode token
/// body, `Set-Cookie`, 403 `csrf_check_failed`) are in the same description.
#[tokio::test]
async fn cookie_mode_answers_are_documented() {
    let security = memory_security();
    let directory = TestDirectory::default();
    directory.add("7", "seven", "");
    let cookies = fastcore_security::CookieConfig::builder().build().unwrap();
    let app = auth_router(auth_state(security.clone(), &directory).with_cookies(cookies))
        .merge(openapi_router(&openapi()));
    let (_, spec) = fetch_spec(&app).await;

    // The cookie scheme, and the routes that accept it.
    assert_eq!(
        spec["components"]["securitySchemes"]["refreshCookie"]["in"],
        "cookie"
    );
    for route in [AuthRoute::Refresh, AuthRoute::Logout] {
        let security = &spec["paths"][route.path()][method_key(&route.method())]["security"];
        assert!(
            security
                .as_array()
                .unwrap()
                .iter()
                .any(|s| s.get("refreshCookie").is_some()),
            "{route:?}: {security}"
        );
    }

    // A refresh by a cross-site page: 403 csrf_check_failed, documented.
    for route in [AuthRoute::Refresh, AuthRoute::Logout] {
        let request = Request::builder()
            .method(Method::POST)
            .uri(route.path())
            .header("sec-fetch-site", "cross-site")
            .header(header::ORIGIN, "https://evil.example")
            .header(header::COOKIE, "__Secure-fastcore_refresh=x.y.z")
            .body(Body::empty())
            .unwrap();
        let res = send(&app, request).await;
        assert_eq!(res.status, StatusCode::FORBIDDEN, "{route:?}");
        let body = res.json();
        let documented = &spec["paths"][route.path()][method_key(&route.method())]["responses"]["403"]
            ["content"]["application/problem+json"]["schema"]["allOf"][1]["properties"]["code"]["enum"];
        assert!(
            documented
                .as_array()
                .is_some_and(|codes| codes.contains(&body["code"])),
            "{route:?} answered 403 {body}, documented: {documented}"
        );
    }

    // A refresh by cookie from the app's own page: the documented cookie
    // body (no refresh_token) and Set-Cookie.
    let pair = security.create_token_pair("7", None).await.unwrap();
    let request = Request::builder()
        .method(Method::POST)
        .uri("/auth/refresh")
        .header("sec-fetch-site", "same-origin")
        .header(
            header::COOKIE,
            format!("__Secure-fastcore_refresh={}", pair.refresh_token),
        )
        .body(Body::empty())
        .unwrap();
    let res = send(&app, request).await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.text());
    assert!(res.header(header::SET_COOKIE).is_some());
    let body = res.json();
    let schema = &spec["components"]["schemas"]["CookieTokenResponse"];
    let mut documented: Vec<&str> = schema["properties"]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    let mut sent: Vec<&str> = body
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    documented.sort_unstable();
    sent.sort_unstable();
    assert_eq!(documented, sent);
    let response = &spec["paths"]["/auth/refresh"]["post"]["responses"]["200"];
    assert!(response["headers"]["Set-Cookie"].is_object(), "{response}");
    let body_schema = &response["content"]["application/json"]["schema"];
    assert!(
        body_schema["anyOf"]
            .as_array()
            .is_some_and(|alternatives| alternatives
                .iter()
                .any(|s| s["$ref"] == "#/components/schemas/CookieTokenResponse")),
        "{body_schema}"
    );
}

/// Which of a combinator's alternatives (`$ref`s to object schemas) a body
/// satisfies: every required property present, and no property the
/// alternative forbids with `additionalProperties: false`.
fn matching_alternatives(spec: &Value, alternatives: &[Value], body: &Value) -> usize {
    let body = body.as_object().unwrap();
    alternatives
        .iter()
        .filter(|alternative| {
            let name = alternative["$ref"]
                .as_str()
                .unwrap()
                .trim_start_matches("#/components/schemas/");
            let schema = &spec["components"]["schemas"][name];
            let required = schema["required"].as_array().cloned().unwrap_or_default();
            let has_required = required
                .iter()
                .all(|field| body.contains_key(field.as_str().unwrap()));
            let closed = schema["additionalProperties"] == Value::Bool(false);
            let no_extra = !closed
                || body
                    .keys()
                    .all(|key| schema["properties"].get(key).is_some());
            has_required && no_extra
        })
        .count()
}

/// The token responses' body schema accepts what login and refresh really
/// send, in body mode and in cookie mode: with `oneOf` a body matching
/// both alternatives would be invalid.
#[tokio::test]
async fn token_bodies_match_their_combined_schema() {
    let security = memory_security();
    let app = app_with(security.clone());
    let (_, spec) = fetch_spec(&app).await;
    let pair = security.create_token_pair("7", None).await.unwrap();
    let res = send(
        &app,
        post_json(
            "/auth/refresh",
            &serde_json::json!({"refresh_token": pair.refresh_token}),
            None,
        ),
    )
    .await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.text());
    let body = res.json();
    for route in [AuthRoute::Login, AuthRoute::Refresh] {
        let schema = &spec["paths"][route.path()]["post"]["responses"]["200"]["content"]["application/json"]
            ["schema"];
        let (alternatives, exactly_one) = match (schema.get("oneOf"), schema.get("anyOf")) {
            (Some(one_of), None) => (one_of.as_array().unwrap().clone(), true),
            (None, Some(any_of)) => (any_of.as_array().unwrap().clone(), false),
            _ => panic!("{route:?}: {schema}"),
        };
        let matches = matching_alternatives(&spec, &alternatives, &body);
        if exactly_one {
            assert_eq!(
                matches, 1,
                "{route:?}: oneOf with {matches} matches for {body}"
            );
        } else {
            assert!(matches >= 1, "{route:?}: no alternative matches {body}");
        }
    }
}
