//! The OpenAPI 3.1 description of [`auth_router`](super::auth_router)'s
//! routes (feature `openapi`), built with `utoipa`'s types.
//!
//! Every operation is written out here, one per [`AuthRoute`], in a
//! `match` the compiler checks for completeness: a route added to the
//! router cannot be left undocumented. Error responses list the exact
//! problem `code`s each route can answer with (as an `enum` narrowing the
//! shared `Problem` schema), with the `WWW-Authenticate` and `Retry-After`
//! headers that go with them.
//!
//! The description covers both transports of the refresh token: the JSON
//! body, and the refresh cookie of
//! [`AuthState::with_cookies`](super::AuthState::with_cookies) (the
//! `refreshCookie` security scheme, the `Set-Cookie` header and the
//! cookie-mode body `CookieTokenResponse`, and 403 `csrf_check_failed`).

use axum::Router;
use axum::body::Bytes;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response as HttpResponse};
use axum::routing::get;
use serde_json::json;
use utoipa::openapi::header::HeaderBuilder;
use utoipa::openapi::path::{
    HttpMethod, Operation, OperationBuilder, ParameterBuilder, ParameterIn,
};
use utoipa::openapi::request_body::RequestBodyBuilder;
use utoipa::openapi::response::{Response, ResponseBuilder};
use utoipa::openapi::schema::{
    AllOfBuilder, AnyOfBuilder, ArrayBuilder, ComponentsBuilder, ObjectBuilder, Schema, Type,
};
use utoipa::openapi::security::{
    ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme,
};
use utoipa::openapi::tag::TagBuilder;
use utoipa::openapi::{
    ContentBuilder, InfoBuilder, LicenseBuilder, OpenApi, OpenApiBuilder, Paths, Ref, RefOr,
    Required,
};

use super::cookie::CookieTokenResponse;
use super::extract::RefreshRequest;
use super::rejection::Problem;
use super::routes::{AuthRoute, LoginRequest, Revoked, SessionList, SessionView};
use crate::manager::SecurityStatus;
use crate::tokens::service::{Session, TokenPair};

/// Where the server (and [`openapi_router`]) serves the description.
pub const OPENAPI_PATH: &str = "/openapi.json";

/// The name of the bearer security scheme in the description.
const BEARER: &str = "bearerAuth";

/// The name of the refresh cookie's security scheme in the description.
const REFRESH_COOKIE: &str = "refreshCookie";

const PROBLEM_JSON: &str = "application/problem+json";
const JSON: &str = "application/json";
const FORM: &str = "application/x-www-form-urlencoded";

/// The problem codes of a refused access token.
const TOKEN_CODES: &[&str] = &[
    "missing_token",
    "invalid_token",
    "token_expired",
    "token_revoked",
];

/// The OpenAPI 3.1 description of every route [`auth_router`](super::auth_router)
/// serves ([`AuthRoute::ALL`]): request and response bodies, the bearer
/// security scheme (`bearerAuth`, a JWT access token), and every error
/// response as `application/problem+json` with the `code`s it can carry.
///
/// Merge your own operations into it (`utoipa`'s [`OpenApi::merge`]) and
/// serve it with [`openapi_router`]. `GET /auth/me` returns your
/// application's user type, so its schema is a free-form object here:
/// replace it if you want it precise.
///
/// ```
/// let spec = fastcore_security::openapi();
/// let json = serde_json::to_value(&spec).unwrap();
/// assert_eq!(json["openapi"], "3.1.0");
/// assert!(json["paths"]["/auth/login"]["post"].is_object());
/// assert_eq!(
///     json["components"]["securitySchemes"]["bearerAuth"]["scheme"],
///     "bearer"
/// );
/// ```
pub fn openapi() -> OpenApi {
    let mut paths = Paths::new();
    for route in AuthRoute::ALL {
        paths.add_path_operation(route.path(), vec![http_method(*route)], operation(*route));
    }
    let components = ComponentsBuilder::new()
        .schema_from::<TokenPair>()
        .schema_from::<CookieTokenResponse<'static>>()
        .schema_from::<Session>()
        .schema_from::<SessionView>()
        .schema_from::<SessionList>()
        .schema_from::<Revoked>()
        .schema_from::<SecurityStatus>()
        .schema_from::<LoginRequest>()
        .schema_from::<RefreshRequest>()
        .schema_from::<Problem<'static>>()
        .schema("JwkSet", jwk_set_schema())
        .security_scheme(
            BEARER,
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .description(Some(
                        "An access token from /auth/login or /auth/refresh, as \
                         `Authorization: Bearer <token>` (RFC 6750).",
                    ))
                    .build(),
            ),
        )
        .security_scheme(
            REFRESH_COOKIE,
            SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::with_description(
                "__Secure-fastcore_refresh",
                "Only when the server uses the refresh cookie (browser apps): the refresh \
                 token, set by /auth/login and /auth/refresh (HttpOnly, Secure, Path=/auth). \
                 Requests it authenticates must come from the server's own origin \
                 (`Sec-Fetch-Site: same-origin`) or an allowed `Origin`; otherwise 403 \
                 `csrf_check_failed`. The name is configurable.",
            ))),
        )
        .build();
    OpenApiBuilder::new()
        .info(
            InfoBuilder::new()
                .title("fastcore-security")
                .version(env!("CARGO_PKG_VERSION"))
                .description(Some(
                    "Stateful JWT authentication: login, refresh with rotation and reuse \
                     detection, logout, sessions, public keys and health. Errors are RFC 9457 \
                     problem details with a stable `code`; token errors also carry an RFC 6750 \
                     `WWW-Authenticate` challenge.",
                ))
                .license(Some(
                    LicenseBuilder::new().name("MIT OR Apache-2.0").build(),
                ))
                .build(),
        )
        .paths(paths)
        .components(Some(components))
        .tags(Some([
            TagBuilder::new()
                .name("auth")
                .description(Some("Logging in and out, and the current user"))
                .build(),
            TagBuilder::new()
                .name("sessions")
                .description(Some("The user's logins"))
                .build(),
            TagBuilder::new()
                .name("service")
                .description(Some("Public keys and health"))
                .build(),
        ]))
        .build()
}

/// Adds `GET /openapi.json` (the description itself) to `spec`: for an
/// application that serves it with [`openapi_router`] and wants every
/// route it serves described.
///
/// ```
/// use fastcore_security::http::{OPENAPI_PATH, openapi, with_openapi_route};
///
/// let spec = with_openapi_route(openapi());
/// assert!(spec.paths.get_path_item(OPENAPI_PATH).is_some());
/// ```
pub fn with_openapi_route(mut spec: OpenApi) -> OpenApi {
    let operation = OperationBuilder::new()
        .tag("service")
        .operation_id(Some("openapi"))
        .summary(Some("This description"))
        .description(Some(
            "The OpenAPI 3.1 description of this service, as JSON.",
        ))
        .response(
            "200",
            ResponseBuilder::new()
                .description("The description")
                .content(
                    JSON,
                    ContentBuilder::new()
                        .schema(Some(
                            ObjectBuilder::new()
                                .schema_type(Type::Object)
                                .description(Some("An OpenAPI 3.1 document")),
                        ))
                        .build(),
                ),
        )
        .build();
    spec.paths
        .add_path_operation(OPENAPI_PATH, vec![HttpMethod::Get], operation);
    spec
}

/// Adds `GET /metrics` ([`metrics_router`](super::metrics_router), feature
/// `metrics`) to `spec`.
///
/// ```
/// use fastcore_security::http::{METRICS_PATH, openapi, with_metrics_route};
///
/// let spec = with_metrics_route(openapi());
/// assert!(spec.paths.get_path_item(METRICS_PATH).is_some());
/// ```
#[cfg(feature = "metrics")]
pub fn with_metrics_route(mut spec: OpenApi) -> OpenApi {
    let operation = OperationBuilder::new()
        .tag("service")
        .operation_id(Some("metrics"))
        .summary(Some("Prometheus metrics"))
        .description(Some(
            "Logins, token validations, refreshes, reuse detections, revocations, store latency \
             and purges as OpenMetrics text. No label names a user, a token or an address; \
             still, expose it to your monitoring network only.",
        ))
        .response(
            "200",
            ResponseBuilder::new().description("The metrics").content(
                crate::SecurityMetrics::CONTENT_TYPE,
                ContentBuilder::new().schema(Some(string_schema())).build(),
            ),
        )
        .build();
    spec.paths.add_path_operation(
        super::metrics::METRICS_PATH,
        vec![HttpMethod::Get],
        operation,
    );
    spec
}

/// A router serving `spec` as JSON at `GET /openapi.json` (see
/// [`OPENAPI_PATH`]). The document is serialized once, here.
///
/// ```
/// use axum::Router;
/// use fastcore_security::http::{openapi, openapi_router};
///
/// let app: Router = Router::new().merge(openapi_router(&openapi()));
/// ```
pub fn openapi_router(spec: &OpenApi) -> Router {
    // Serializing the spec's own types cannot fail; an empty object is
    // the safe answer if it ever did.
    let body = Bytes::from(spec.to_json().unwrap_or_else(|_| "{}".into()));
    Router::new().route(OPENAPI_PATH, get(move || serve(body.clone())))
}

async fn serve(body: Bytes) -> HttpResponse {
    let mut response = body.into_response();
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(JSON));
    response
}

fn http_method(route: AuthRoute) -> HttpMethod {
    let method = route.method();
    if method == axum::http::Method::GET {
        HttpMethod::Get
    } else if method == axum::http::Method::DELETE {
        HttpMethod::Delete
    } else {
        HttpMethod::Post
    }
}

fn schema_ref(name: &str) -> RefOr<Schema> {
    RefOr::Ref(Ref::from_schema_name(name))
}

fn string_schema() -> Schema {
    ObjectBuilder::new().schema_type(Type::String).into()
}

fn json_response(description: &str, schema: &str) -> Response {
    ResponseBuilder::new()
        .description(description)
        .content(
            JSON,
            ContentBuilder::new()
                .schema(Some(schema_ref(schema)))
                .build(),
        )
        .build()
}

/// A token response: JSON, never cached (RFC 6749 section 5.1).
fn token_response(description: &str) -> Response {
    // anyOf, not oneOf: neither schema forbids extra properties, so a
    // `TokenPair` body also matches `CookieTokenResponse`, and oneOf
    // demands exactly one match.
    let body: Schema = AnyOfBuilder::new()
        .item(schema_ref("TokenPair"))
        .item(schema_ref("CookieTokenResponse"))
        .description(Some(
            "`TokenPair`; with the refresh cookie, `CookieTokenResponse` (no `refresh_token`: \
             it is in `Set-Cookie`)",
        ))
        .build()
        .into();
    ResponseBuilder::new()
        .description(description)
        .content(JSON, ContentBuilder::new().schema(Some(body)).build())
        .header(
            "Cache-Control",
            HeaderBuilder::new()
                .schema(Some(string_schema()))
                .description(Some("`no-store`"))
                .build(),
        )
        .header(
            "Set-Cookie",
            HeaderBuilder::new()
                .schema(Some(string_schema()))
                .description(Some(
                    "Only with the refresh cookie: the refresh token (`HttpOnly; Secure; \
                     SameSite=Strict; Path=/auth` by default; SameSite, path and domain are \
                     settings)",
                ))
                .build(),
        )
        .build()
}

/// 403 of the routes that set or read the refresh cookie: the user lookup
/// refused the user, or (with the refresh cookie) the request came from
/// another site.
fn forbidden_or_cross_site() -> Response {
    problem(
        "The application's user lookup refused the user; or, with the refresh cookie, a \
         request from another site (neither `Sec-Fetch-Site: same-origin` nor an allowed \
         `Origin`)",
        &["forbidden", "csrf_check_failed"],
        &[ErrorHeader::Challenge],
    )
}

/// 403 of logout with the refresh cookie: the request came from another site.
fn cross_site() -> Response {
    problem(
        "With the refresh cookie: a request from another site (neither \
         `Sec-Fetch-Site: same-origin` nor an allowed `Origin`)",
        &["csrf_check_failed"],
        &[],
    )
}

fn refresh_cookie() -> SecurityRequirement {
    SecurityRequirement::new(REFRESH_COOKIE, Vec::<String>::new())
}

fn no_content(description: &str) -> Response {
    ResponseBuilder::new().description(description).build()
}

/// What the header of an error response means.
enum ErrorHeader {
    /// An RFC 6750 challenge.
    Challenge,
    /// When to try again, in seconds.
    RetryAfter,
}

/// An error response: a `Problem` whose `code` is one of `codes`.
fn problem(description: &str, codes: &[&str], headers: &[ErrorHeader]) -> Response {
    let code_list = codes
        .iter()
        .map(|c| format!("`{c}`"))
        .collect::<Vec<_>>()
        .join(", ");
    let schema: Schema = AllOfBuilder::new()
        .item(schema_ref("Problem"))
        .item(
            ObjectBuilder::new().property(
                "code",
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .enum_values(Some(codes.iter().copied())),
            ),
        )
        .build()
        .into();
    let mut response = ResponseBuilder::new()
        .description(format!("{description} (code: {code_list})"))
        .content(
            PROBLEM_JSON,
            ContentBuilder::new()
                .schema(Some(schema))
                .example(Some(json!({
                    "type": "about:blank",
                    "title": "…",
                    "status": 0,
                    "detail": "…",
                    "code": codes.first().copied().unwrap_or("…"),
                })))
                .build(),
        );
    for header in headers {
        response = match header {
            ErrorHeader::Challenge => response.header(
                "WWW-Authenticate",
                HeaderBuilder::new()
                    .schema(Some(string_schema()))
                    .description(Some(
                        "`Bearer` without a token; `Bearer error=\"invalid_token\", \
                         error_description=\"...\"` for a refused one (RFC 6750 section 3)",
                    ))
                    .build(),
            ),
            ErrorHeader::RetryAfter => response.header(
                "Retry-After",
                HeaderBuilder::new()
                    .schema(Some(ObjectBuilder::new().schema_type(Type::Integer)))
                    .description(Some("Seconds to wait before trying again"))
                    .build(),
            ),
        };
    }
    response.build()
}

/// An error response in this description's style, for documenting an
/// application's own routes or the answers of its layers:
/// `application/problem+json`, the `Problem` schema, its `code` one of
/// `codes`.
///
/// ```
/// use fastcore_security::http::problem_response;
///
/// let response = problem_response("The request took too long", &["request_timeout"]);
/// let json = serde_json::to_value(&response).unwrap();
/// let schema = &json["content"]["application/problem+json"]["schema"];
/// assert_eq!(schema["allOf"][0]["$ref"], "#/components/schemas/Problem");
/// assert_eq!(schema["allOf"][1]["properties"]["code"]["enum"][0], "request_timeout");
/// ```
pub fn problem_response(description: &str, codes: &[&str]) -> Response {
    problem(description, codes, &[])
}

fn bad_request(what: &str) -> Response {
    problem(what, &["invalid_request"], &[])
}

fn token_refused(extra: &[&str]) -> Response {
    let codes: Vec<&str> = TOKEN_CODES.iter().chain(extra).copied().collect();
    problem(
        "The bearer token is missing or refused",
        &codes,
        &[ErrorHeader::Challenge],
    )
}

fn store_unavailable() -> Response {
    problem(
        "The token store did not answer; nobody is logged out, try again",
        &["store_unavailable"],
        &[ErrorHeader::RetryAfter],
    )
}

fn forbidden() -> Response {
    problem(
        "The application's user lookup refused the user",
        &["forbidden"],
        &[ErrorHeader::Challenge],
    )
}

fn internal() -> Response {
    problem(
        "An internal error (details only in the server's log)",
        &["internal_error"],
        &[],
    )
}

fn too_large() -> Response {
    problem("The body is over 16 KiB", &["body_too_large"], &[])
}

fn bearer() -> SecurityRequirement {
    SecurityRequirement::new(BEARER, Vec::<String>::new())
}

/// The operation of one route.
fn operation(route: AuthRoute) -> Operation {
    let op = OperationBuilder::new();
    match route {
        AuthRoute::Login => op
            .tag("auth")
            .operation_id(Some("login"))
            .summary(Some("Log in"))
            .description(Some(
                "Checks a username and password and starts a session: an access and a refresh \
                 token. Takes the OAuth2 password form (`grant_type=password`, RFC 6749 section \
                 4.3) or the same fields as JSON. Failed logins are throttled per account and \
                 per client address: then `429` with `Retry-After`, before any password check. \
                 A wrong password and an unknown user get the same answer, and every such \
                 `401` takes at least the configured failure floor (default 500 ms), so that \
                 its timing says nothing about the account either.",
            ))
            .request_body(Some(
                RequestBodyBuilder::new()
                    .required(Some(Required::True))
                    .content(
                        FORM,
                        ContentBuilder::new()
                            .schema(Some(schema_ref("LoginRequest")))
                            .build(),
                    )
                    .content(
                        JSON,
                        ContentBuilder::new()
                            .schema(Some(schema_ref("LoginRequest")))
                            .build(),
                    )
                    .build(),
            ))
            .response("200", token_response("Logged in: a new session's tokens"))
            .response(
                "400",
                bad_request("The body is malformed, `grant_type` is not `password`, or a password was sent in the URL"),
            )
            .response(
                "401",
                problem(
                    "Wrong username or password, or the user may not log in",
                    &["invalid_credentials", "authentication_failed"],
                    &[ErrorHeader::Challenge],
                ),
            )
            .response("403", forbidden_or_cross_site())
            .response("413", too_large())
            .response(
                "429",
                problem(
                    "Too many failed logins for this account or client address",
                    &["too_many_attempts"],
                    &[ErrorHeader::RetryAfter],
                ),
            )
            .response("500", internal())
            .response("503", store_unavailable())
            .build(),
        AuthRoute::Refresh => op
            .tag("auth")
            .operation_id(Some("refresh"))
            .summary(Some("Refresh a session"))
            .description(Some(
                "Exchanges a refresh token for a new pair of the same session; the refresh \
                 token is spent (rotation, RFC 9700 section 4.14.2). A spent token presented \
                 again ends the whole session (`refresh_token_reused`), except within a few \
                 seconds for the client that rotated it (two tabs refreshing at once). The \
                 token goes in the body (JSON, or the OAuth2 form with \
                 `grant_type=refresh_token`), or else as the bearer token; never in the URL. \
                 With the refresh cookie (browser apps), a request without a token in the body \
                 uses the cookie, and the new refresh token comes back in `Set-Cookie`.",
            ))
            .request_body(Some(
                RequestBodyBuilder::new()
                    .required(Some(Required::False))
                    .content(
                        JSON,
                        ContentBuilder::new()
                            .schema(Some(schema_ref("RefreshRequest")))
                            .build(),
                    )
                    .content(
                        FORM,
                        ContentBuilder::new()
                            .schema(Some(schema_ref("RefreshRequest")))
                            .build(),
                    )
                    .build(),
            ))
            .securities(Some([SecurityRequirement::default(), bearer(), refresh_cookie()]))
            .response("200", token_response("The session's new tokens"))
            .response(
                "400",
                bad_request("No refresh token, a malformed body, a wrong `grant_type`, or a token in the URL"),
            )
            .response(
                "401",
                problem(
                    "The refresh token is refused, was reused (its session is now ended), or its user is disabled",
                    &[
                        "invalid_token",
                        "token_expired",
                        "token_revoked",
                        "refresh_token_reused",
                        "authentication_failed",
                    ],
                    &[ErrorHeader::Challenge],
                ),
            )
            .response("403", forbidden_or_cross_site())
            .response("413", too_large())
            .response("500", internal())
            .response("503", store_unavailable())
            .build(),
        AuthRoute::Logout => op
            .tag("auth")
            .operation_id(Some("logout"))
            .summary(Some("Log out"))
            .description(Some(
                "Ends the bearer token's whole session (its access and refresh tokens). An \
                 expired or already revoked token is fine: logging out always works.",
            ))
            .securities(Some([bearer(), refresh_cookie()]))
            .response(
                "204",
                no_content(
                    "The session is ended (with the refresh cookie, also a `Set-Cookie` that \
                     deletes it)",
                ),
            )
            .response(
                "400",
                bad_request("Several `Authorization` headers, or several refresh cookies"),
            )
            .response(
                "401",
                problem(
                    "No bearer token, or one this service did not sign",
                    &["missing_token", "invalid_token"],
                    &[ErrorHeader::Challenge],
                ),
            )
            .response("403", cross_site())
            .response("503", store_unavailable())
            .build(),
        AuthRoute::LogoutAll => op
            .tag("auth")
            .operation_id(Some("logoutAll"))
            .summary(Some("Log out everywhere"))
            .description(Some(
                "Revokes every token of the user issued so far, on every device, access tokens \
                 included (one write: a per-user cut-off).",
            ))
            .security(bearer())
            .response("204", no_content("Every session of the user is ended"))
            .response("400", bad_request("Several `Authorization` headers"))
            .response("401", token_refused(&[]))
            .response("503", store_unavailable())
            .build(),
        AuthRoute::LogoutOthers => op
            .tag("sessions")
            .operation_id(Some("logoutOthers"))
            .summary(Some("Log out the other sessions"))
            .description(Some(
                "Ends every session of the user but the caller's own; `revoked` is the \
                 number of sessions ended (not tokens).",
            ))
            .security(bearer())
            .response(
                "200",
                json_response("The other sessions are ended; how many", "Revoked"),
            )
            .response(
                "400",
                bad_request("The token belongs to no session, or several `Authorization` headers"),
            )
            .response("401", token_refused(&[]))
            .response("503", store_unavailable())
            .build(),
        AuthRoute::ListSessions => op
            .tag("sessions")
            .operation_id(Some("listSessions"))
            .summary(Some("List the user's sessions"))
            .description(Some(
                "The user's live sessions, oldest first, with the client each one last came \
                 from; `current` marks the caller's.",
            ))
            .security(bearer())
            .parameter(
                ParameterBuilder::new()
                    .name("exclude_current")
                    .parameter_in(ParameterIn::Query)
                    .required(Required::False)
                    .description(Some("Leave out the caller's own session"))
                    .schema(Some(
                        ObjectBuilder::new()
                            .schema_type(Type::Boolean)
                            .default(Some(json!(false))),
                    )),
            )
            .response("200", json_response("The sessions", "SessionList"))
            .response(
                "400",
                bad_request("`exclude_current` is not a boolean, or several `Authorization` headers"),
            )
            .response("401", token_refused(&[]))
            .response("503", store_unavailable())
            .build(),
        AuthRoute::DeleteSession => op
            .tag("sessions")
            .operation_id(Some("deleteSession"))
            .summary(Some("End one session"))
            .description(Some(
                "Ends one of the user's own sessions. Another user's session id is answered \
                 like an unknown one.",
            ))
            .security(bearer())
            .parameter(
                ParameterBuilder::new()
                    .name("id")
                    .parameter_in(ParameterIn::Path)
                    .required(Required::True)
                    .description(Some("The session id (`id` in the session list)"))
                    .schema(Some(string_schema())),
            )
            .response("204", no_content("The session is ended"))
            .response(
                "400",
                bad_request("The session id is not valid, or several `Authorization` headers"),
            )
            .response("401", token_refused(&[]))
            .response(
                "404",
                problem("The user has no such session", &["not_found"], &[]),
            )
            .response("503", store_unavailable())
            .build(),
        AuthRoute::Me => op
            .tag("auth")
            .operation_id(Some("me"))
            .summary(Some("The current user"))
            .description(Some(
                "The user the access token was issued to, as the application's user type \
                 serializes; refused if the user no longer exists or is disabled.",
            ))
            .security(bearer())
            .response(
                "200",
                ResponseBuilder::new()
                    .description("The current user")
                    .content(
                        JSON,
                        ContentBuilder::new()
                            .schema(Some(
                                ObjectBuilder::new()
                                    .schema_type(Type::Object)
                                    .description(Some("The application's user type")),
                            ))
                            .build(),
                    )
                    .build(),
            )
            .response("400", bad_request("Several `Authorization` headers"))
            .response("401", token_refused(&["authentication_failed"]))
            .response("403", forbidden())
            .response("500", internal())
            .response("503", store_unavailable())
            .build(),
        AuthRoute::Jwks => op
            .tag("service")
            .operation_id(Some("jwks"))
            .summary(Some("The public keys"))
            .description(Some(
                "The public halves of the RSA, EC and Ed25519 signing keys as a JWK Set \
                 (RFC 7517), active key first; empty with HMAC keys, which are never \
                 published. Cacheable for 300 s.",
            ))
            .response("200", json_response("The JWK Set", "JwkSet"))
            .build(),
        AuthRoute::Health => op
            .tag("service")
            .operation_id(Some("health"))
            .summary(Some("Health"))
            .description(Some(
                "Whether the security layer is set up and its token store answers.",
            ))
            .response("200", json_response("Healthy", "SecurityStatus"))
            .response(
                "503",
                ResponseBuilder::new()
                    .description("The token store does not answer")
                    .content(
                        JSON,
                        ContentBuilder::new()
                            .schema(Some(schema_ref("SecurityStatus")))
                            .build(),
                    )
                    .header(
                        "Retry-After",
                        HeaderBuilder::new()
                            .schema(Some(ObjectBuilder::new().schema_type(Type::Integer)))
                            .description(Some("Seconds to wait before trying again"))
                            .build(),
                    )
                    .build(),
            )
            .build(),
    }
}

/// A JWK Set: `{"keys": [JWK, ...]}` (RFC 7517 section 5).
fn jwk_set_schema() -> Schema {
    let key = ObjectBuilder::new()
        .schema_type(Type::Object)
        .description(Some(
            "A public JWK (RFC 7517): `kty`, `kid`, `alg`, `use` and the key's public parameters",
        ))
        .property("kty", string_schema())
        .required("kty")
        .property("kid", string_schema())
        .property("alg", string_schema())
        .property("use", string_schema());
    ObjectBuilder::new()
        .schema_type(Type::Object)
        .property("keys", ArrayBuilder::new().items(key))
        .required("keys")
        .into()
}
