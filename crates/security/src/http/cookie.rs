//! The refresh token in a cookie, for browser apps, and the cross-site
//! request checks that make such a cookie safe to accept.
//!
//! With [`AuthState::with_cookies`](super::AuthState::with_cookies), the
//! login and refresh endpoints put the refresh token in an `HttpOnly`,
//! `Secure`, `SameSite=Strict` cookie scoped to the auth routes, instead of
//! the JSON body: page scripts never see it, so an XSS bug can steal at most
//! a short-lived access token (which stays in the body, for the app to keep
//! in memory and send as `Authorization: Bearer`). `/auth/refresh` and
//! `/auth/logout` accept the token from that cookie.
//!
//! ```no_run
//! use std::sync::Arc;
//! use fastcore_security::{AuthState, CookieConfig, CookieSameSite, auth_router};
//! # fn app<A>(security: fastcore_security::Security, users: Arc<A>) -> fastcore_security::Result<axum::Router>
//! # where A: fastcore_security::UserAuthentication, A::User: serde::Serialize {
//! let cookies = CookieConfig::builder()
//!     .same_site(CookieSameSite::Strict)
//!     // Only for browsers without Fetch Metadata, or a front end on another origin.
//!     .allowed_origin("https://app.example.com")
//!     .build()?;
//! let router = auth_router(AuthState::new(security, users).with_cookies(cookies));
//! # Ok(router) }
//! ```
//!
//! A cookie is sent by the browser whoever made the page that sends the
//! request, so every request the cookie authenticates is checked for
//! cross-site request forgery first ([`CookieConfig::check_request_origin`]):
//! `Sec-Fetch-Site: same-origin` (or `none`) passes; otherwise the `Origin`
//! must be one of the configured allowed origins; a request with neither
//! header is refused. `SameSite` alone is not enough: it treats every
//! subdomain and every port of a site as "same site".

use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use cookie::Cookie;
use serde::Serialize;

use super::rejection::AuthRejection;
use crate::error::{Error, Result};
use crate::tokens::service::TokenPair;

/// The cookie name without its prefix.
const BASE_NAME: &str = "fastcore_refresh";
/// The default cookie path: every route of [`auth_router`](super::auth_router)
/// that reads the cookie (`/auth/refresh`, `/auth/logout`) is under it.
pub const DEFAULT_COOKIE_PATH: &str = "/auth";

/// The `SameSite` attribute of the refresh cookie.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CookieSameSite {
    /// Sent only with requests made by pages of the same site (the default).
    #[default]
    Strict,
    /// Also sent on top-level navigations from other sites (following a
    /// link to the app). Only useful if a plain link must land on a page
    /// that refreshes through a form post or navigation; `fetch` calls
    /// from the app's own pages work with `Strict`.
    Lax,
}

impl CookieSameSite {
    fn attribute(self) -> cookie::SameSite {
        match self {
            CookieSameSite::Strict => cookie::SameSite::Strict,
            CookieSameSite::Lax => cookie::SameSite::Lax,
        }
    }
}

/// How the refresh cookie is made and which cross-site requests may use
/// it. Build one with [`CookieConfig::builder`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CookieConfig {
    name: String,
    path: String,
    domain: Option<String>,
    same_site: CookieSameSite,
    secure: bool,
    allowed_origins: Vec<String>,
}

impl CookieConfig {
    /// A builder with the defaults: `Secure`, `HttpOnly`, `SameSite=Strict`,
    /// `Path=/auth`, no `Domain` (host-only), named
    /// `__Secure-fastcore_refresh`, no extra allowed origin.
    pub fn builder() -> CookieConfigBuilder {
        CookieConfigBuilder::default()
    }

    /// The cookie's name, with its `__Host-`/`__Secure-` prefix if it has one.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The cookie's `Path`.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// The cookie's `Domain`, if it is not host-only.
    pub fn domain(&self) -> Option<&str> {
        self.domain.as_deref()
    }

    /// The cookie's `SameSite`.
    pub fn same_site(&self) -> CookieSameSite {
        self.same_site
    }

    /// Whether the cookie is `Secure` (sent over HTTPS only; browsers also
    /// treat `http://localhost` as secure).
    pub fn secure(&self) -> bool {
        self.secure
    }

    /// The origins (`scheme://host[:port]`, lower case) whose requests may
    /// use the cookie although `Sec-Fetch-Site` does not say `same-origin`.
    pub fn allowed_origins(&self) -> &[String] {
        &self.allowed_origins
    }

    /// The `Set-Cookie` value that stores `token` for `max_age_secs`.
    pub fn set_cookie_value(&self, token: &str, max_age_secs: u64) -> String {
        let max_age = i64::try_from(max_age_secs).unwrap_or(i64::MAX);
        self.cookie(token.to_owned())
            .max_age(cookie::time::Duration::seconds(max_age))
            .build()
            .to_string()
    }

    /// The `Set-Cookie` value that deletes the cookie: empty, `Max-Age=0`,
    /// an `Expires` in the past, and the same name, path, domain and
    /// attributes (a browser deletes only the cookie they all match).
    pub fn clear_cookie_value(&self) -> String {
        let mut cookie = self.cookie(String::new()).build();
        cookie.make_removal();
        cookie.to_string()
    }

    fn cookie(&self, value: String) -> cookie::CookieBuilder<'static> {
        let mut builder = Cookie::build((self.name.clone(), value))
            .path(self.path.clone())
            .http_only(true)
            .secure(self.secure)
            .same_site(self.same_site.attribute());
        if let Some(domain) = &self.domain {
            builder = builder.domain(domain.clone());
        }
        builder
    }

    /// The refresh token in the request's cookies, if any.
    ///
    /// Refused when the cookie is present more than once: a sibling
    /// subdomain can plant a second cookie of the same name with a longer
    /// path, and taking either one could log the user into the planter's
    /// session.
    pub fn token_from_cookies(&self, headers: &HeaderMap) -> Result<Option<String>, AuthRejection> {
        let mut found = None;
        for value in headers.get_all(header::COOKIE) {
            let Ok(value) = value.to_str() else {
                continue;
            };
            for cookie in Cookie::split_parse(value).flatten() {
                if cookie.name() != self.name {
                    continue;
                }
                if found.is_some() {
                    return Err(AuthRejection::InvalidRequest(format!(
                        "the {} cookie was sent more than once",
                        self.name
                    )));
                }
                found = Some(cookie.value().to_owned());
            }
        }
        Ok(found.filter(|v| !v.is_empty()))
    }

    /// The cross-site request forgery check for a request that a cookie
    /// authenticates:
    ///
    /// 1. `Sec-Fetch-Site: same-origin` or `none` (the user typed the URL)
    ///    passes: browsers set it and pages cannot;
    /// 2. else an `Origin` in [`allowed_origins`](Self::allowed_origins) passes;
    /// 3. anything else is refused with 403 and code `csrf_check_failed`:
    ///    a cross-site or same-site (another subdomain or port) request, an
    ///    origin not listed, `Origin: null`, and a request with neither
    ///    header.
    pub fn check_request_origin(&self, headers: &HeaderMap) -> Result<(), AuthRejection> {
        self.check(headers, false)
    }

    /// The check for a request that *sets* the cookie (login): as
    /// [`check_request_origin`](Self::check_request_origin), except that a
    /// request with neither header passes. That is a client other than a
    /// browser (browsers send `Origin` on every cross-origin POST), which
    /// no other site can make send anything; refusing it would stop
    /// command-line clients logging in.
    pub fn check_login_origin(&self, headers: &HeaderMap) -> Result<(), AuthRejection> {
        self.check(headers, true)
    }

    fn check(&self, headers: &HeaderMap, allow_without_headers: bool) -> Result<(), AuthRejection> {
        let fetch_site = single_header(headers, "sec-fetch-site");
        if let Some(Some(site)) = &fetch_site
            && (site.eq_ignore_ascii_case("same-origin") || site.eq_ignore_ascii_case("none"))
        {
            return Ok(());
        }
        match single_header(headers, header::ORIGIN.as_str()) {
            Some(Some(origin)) => {
                let origin = origin.to_ascii_lowercase();
                if self.allowed_origins.contains(&origin) {
                    Ok(())
                } else {
                    Err(AuthRejection::CrossSiteRequest(
                        "the request's origin is not allowed",
                    ))
                }
            }
            // Several or unreadable Origin headers: no browser sends that.
            Some(None) => Err(AuthRejection::CrossSiteRequest(
                "the request's origin is not allowed",
            )),
            None if fetch_site.is_some() => Err(AuthRejection::CrossSiteRequest(
                "the request comes from another site",
            )),
            None if allow_without_headers => Ok(()),
            None => Err(AuthRejection::CrossSiteRequest(
                "the request has neither Sec-Fetch-Site nor Origin",
            )),
        }
    }

    /// The token response of a login or a refresh by cookie: the refresh
    /// token goes into the cookie, the body keeps the access token (and
    /// when the refresh token expires, so the app knows when to log in
    /// again). Not cacheable.
    pub(crate) fn token_response(&self, pair: &TokenPair) -> Response {
        let body = CookieTokenResponse {
            access_token: &pair.access_token,
            token_type: &pair.token_type,
            expires_in: pair.expires_in,
            refresh_expires_in: pair.refresh_expires_in,
        };
        let mut response = super::routes::no_store(body);
        self.append_set_cookie(
            response.headers_mut(),
            &self.set_cookie_value(&pair.refresh_token, pair.refresh_expires_in),
        );
        response
    }

    /// Adds a `Set-Cookie` that deletes the cookie.
    pub(crate) fn append_clear(&self, headers: &mut HeaderMap) {
        self.append_set_cookie(headers, &self.clear_cookie_value());
    }

    /// The response to a failed refresh or logout by cookie: the error,
    /// and when the token itself was refused (not when the store is down),
    /// a deleted cookie, so the browser stops sending a dead token.
    pub(crate) fn failure_response(&self, rejection: AuthRejection) -> Response {
        let clear = matches!(
            &rejection,
            AuthRejection::Error(err) if err.is_token_error() || matches!(err, Error::Authentication(_))
        );
        let mut response = rejection.into_response();
        if clear {
            self.append_clear(response.headers_mut());
        }
        response
    }

    fn append_set_cookie(&self, headers: &mut HeaderMap, value: &str) {
        match HeaderValue::from_str(value) {
            Ok(value) => {
                headers.append(header::SET_COOKIE, value);
            }
            // Unreachable: the builder checked every part, and tokens are
            // base64url. Never log the value.
            Err(_) => tracing::error!(cookie = %self.name, "refresh cookie is not a valid header"),
        }
    }
}

/// `None`: no such header; `Some(None)`: several, or not visible ASCII;
/// `Some(Some(v))`: exactly one.
fn single_header<'a>(headers: &'a HeaderMap, name: &str) -> Option<Option<&'a str>> {
    let mut values = headers.get_all(name).iter();
    let first = values.next()?;
    if values.next().is_some() {
        return Some(None);
    }
    Some(first.to_str().ok().map(str::trim))
}

/// The token response of a login or refresh with the refresh cookie: the
/// refresh token is in `Set-Cookie`, not here.
#[derive(Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub(crate) struct CookieTokenResponse<'a> {
    /// The access token.
    access_token: &'a str,
    /// Always `"bearer"`.
    token_type: &'a str,
    /// Seconds until the access token expires.
    expires_in: u64,
    /// Seconds until the refresh token (in the cookie) expires.
    refresh_expires_in: u64,
}

/// Builds a [`CookieConfig`]; [`build`](Self::build) checks it.
#[derive(Debug, Clone, Default)]
pub struct CookieConfigBuilder {
    name: Option<String>,
    path: Option<String>,
    domain: Option<String>,
    same_site: CookieSameSite,
    insecure: bool,
    allowed_origins: Vec<String>,
}

impl CookieConfigBuilder {
    /// The cookie's full name. By default `fastcore_refresh` with the
    /// strongest prefix the other settings allow: `__Host-` (path `/`, no
    /// domain, secure), else `__Secure-` (secure), else none. A name given
    /// here with a prefix must satisfy that prefix's rules.
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// The cookie's `Path` (default [`DEFAULT_COOKIE_PATH`], `/auth`). It
    /// must cover the refresh and logout routes: if the auth router is
    /// nested under a prefix, include it (`/api/auth`). `/` allows the
    /// `__Host-` prefix, at the cost of sending the cookie with every
    /// request to the host.
    pub fn path(mut self, path: impl Into<String>) -> Self {
        self.path = Some(path.into());
        self
    }

    /// A `Domain`, to share the cookie with subdomains. Avoid it unless the
    /// auth routes are served on another subdomain than the app: every
    /// subdomain then receives the refresh token.
    pub fn domain(mut self, domain: impl Into<String>) -> Self {
        self.domain = Some(domain.into());
        self
    }

    /// `SameSite=Strict` (default) or `Lax`.
    pub fn same_site(mut self, same_site: CookieSameSite) -> Self {
        self.same_site = same_site;
        self
    }

    /// Drops the `Secure` attribute (and with it the name prefix), for
    /// development over plain HTTP on a host name that browsers do not
    /// treat as secure. Never in production: the token would then travel
    /// in clear. (`http://localhost` needs no such thing in Chrome and
    /// Firefox.)
    pub fn insecure_for_development(mut self) -> Self {
        self.insecure = true;
        self
    }

    /// An origin (`https://app.example.com`, `http://localhost:5173`) whose
    /// requests may use the cookie although `Sec-Fetch-Site` does not say
    /// `same-origin`: a front end on another origin, or the site itself
    /// for browsers without Fetch Metadata headers. Never `*` or `null`.
    pub fn allowed_origin(mut self, origin: impl Into<String>) -> Self {
        self.allowed_origins.push(origin.into());
        self
    }

    /// Several [`allowed_origin`](Self::allowed_origin)s at once.
    pub fn allowed_origins<I, S>(mut self, origins: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.allowed_origins
            .extend(origins.into_iter().map(Into::into));
        self
    }

    /// Checks the settings: a path starting with `/`, a domain and name
    /// that fit in a cookie, prefixes whose rules hold, allowed origins of
    /// the form `scheme://host[:port]`. Errors are [`Error::Config`].
    pub fn build(self) -> Result<CookieConfig> {
        let secure = !self.insecure;
        let path = self.path.unwrap_or_else(|| DEFAULT_COOKIE_PATH.to_owned());
        if !path.starts_with('/') || !is_cookie_attribute(&path) {
            return Err(Error::config(
                "the refresh cookie path must start with / and hold no ';', spaces or control characters",
            ));
        }
        let domain = match self.domain {
            Some(d) => {
                let d = d.trim_start_matches('.').to_ascii_lowercase();
                if d.is_empty()
                    || !d
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.')
                {
                    return Err(Error::config(
                        "the refresh cookie domain is not a host name",
                    ));
                }
                Some(d)
            }
            None => None,
        };
        let host_prefix_ok = secure && path == "/" && domain.is_none();
        let name = match self.name {
            Some(name) => name,
            None if host_prefix_ok => format!("__Host-{BASE_NAME}"),
            None if secure => format!("__Secure-{BASE_NAME}"),
            None => BASE_NAME.to_owned(),
        };
        if name.is_empty() || !name.bytes().all(is_token_char) {
            return Err(Error::config(
                "the refresh cookie name must be an HTTP token (letters, digits, -_.!#$%&'*+^`|~)",
            ));
        }
        let lower = name.to_ascii_lowercase();
        if lower.starts_with("__host-") && !host_prefix_ok {
            return Err(Error::config(
                "a __Host- cookie must be Secure, with path / and no domain",
            ));
        }
        if lower.starts_with("__secure-") && !secure {
            return Err(Error::config("a __Secure- cookie must be Secure"));
        }
        let allowed_origins = self
            .allowed_origins
            .iter()
            .map(|o| normalize_origin(o))
            .collect::<Result<Vec<_>>>()?;
        Ok(CookieConfig {
            name,
            path,
            domain,
            same_site: self.same_site,
            secure,
            allowed_origins,
        })
    }
}

fn is_token_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

fn is_cookie_attribute(value: &str) -> bool {
    value.chars().all(|c| c.is_ascii_graphic() && c != ';')
}

/// `scheme://host[:port]` in the form browsers send in `Origin`: lower
/// case, no default port, no path.
fn normalize_origin(origin: &str) -> Result<String> {
    let bad = || {
        Error::config(format!(
            "allowed origin {origin:?} must look like https://app.example.com or http://localhost:5173"
        ))
    };
    let lower = origin.trim().to_ascii_lowercase();
    let (scheme, rest) = lower.split_once("://").ok_or_else(bad)?;
    if scheme != "http" && scheme != "https" {
        return Err(bad());
    }
    let rest = rest.strip_suffix('/').unwrap_or(rest);
    if rest.is_empty() || rest.contains(['/', '?', '#', '@', '*']) || !is_cookie_attribute(rest) {
        return Err(bad());
    }
    let host_port = match rest.rsplit_once(':') {
        // An IPv6 literal's own colons are inside the brackets.
        Some((host, port)) if !port.contains(']') => {
            port.parse::<u16>().map_err(|_| bad())?;
            let default =
                (scheme == "https" && port == "443") || (scheme == "http" && port == "80");
            if default {
                host.to_owned()
            } else {
                rest.to_owned()
            }
        }
        _ => rest.to_owned(),
    };
    Ok(format!("{scheme}://{host_port}"))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn default_cookie_attributes() {
        let config = CookieConfig::builder().build().unwrap();
        assert_eq!(config.name(), "__Secure-fastcore_refresh");
        let set = config.set_cookie_value("abc.def.ghi", 60);
        for part in [
            "__Secure-fastcore_refresh=abc.def.ghi",
            "HttpOnly",
            "SameSite=Strict",
            "Secure",
            "Path=/auth",
            "Max-Age=60",
        ] {
            assert!(set.split("; ").any(|p| p == part), "{part} in {set}");
        }
        assert!(!set.contains("Domain"), "{set}");
    }

    #[test]
    fn prefixes_follow_the_rules() {
        let root = CookieConfig::builder().path("/").build().unwrap();
        assert_eq!(root.name(), "__Host-fastcore_refresh");
        let dev = CookieConfig::builder()
            .insecure_for_development()
            .build()
            .unwrap();
        assert_eq!(dev.name(), "fastcore_refresh");
        assert!(!dev.set_cookie_value("t", 1).contains("Secure"));
        assert!(
            CookieConfig::builder().name("__Host-x").build().is_err(),
            "__Host- needs path /"
        );
        assert!(
            CookieConfig::builder()
                .name("__Secure-x")
                .insecure_for_development()
                .build()
                .is_err()
        );
        assert!(CookieConfig::builder().name("a b").build().is_err());
        assert!(CookieConfig::builder().path("auth").build().is_err());
        assert!(CookieConfig::builder().path("/a;b").build().is_err());
    }

    #[test]
    fn removal_has_the_same_attributes() {
        let config = CookieConfig::builder()
            .same_site(CookieSameSite::Lax)
            .domain("Example.com")
            .build()
            .unwrap();
        let clear = config.clear_cookie_value();
        for part in [
            "__Secure-fastcore_refresh=",
            "HttpOnly",
            "SameSite=Lax",
            "Secure",
            "Path=/auth",
            "Domain=example.com",
            "Max-Age=0",
        ] {
            assert!(clear.split("; ").any(|p| p == part), "{part} in {clear}");
        }
        assert!(clear.contains("Expires="), "{clear}");
    }

    #[test]
    fn origins_are_normalized() {
        assert_eq!(
            normalize_origin("HTTPS://App.Example.com:443/").unwrap(),
            "https://app.example.com"
        );
        assert_eq!(
            normalize_origin("http://localhost:5173").unwrap(),
            "http://localhost:5173"
        );
        assert_eq!(
            normalize_origin("http://[::1]:8080").unwrap(),
            "http://[::1]:8080"
        );
        for bad in [
            "*",
            "null",
            "app.example.com",
            "https://a/b",
            "ftp://a",
            "https://a:x",
        ] {
            assert!(normalize_origin(bad).is_err(), "{bad}");
        }
    }

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (k, v) in pairs {
            map.append(*k, HeaderValue::from_static(v));
        }
        map
    }

    #[test]
    fn origin_rules() {
        let config = CookieConfig::builder()
            .allowed_origin("https://app.example.com")
            .build()
            .unwrap();
        let ok =
            |h: &[(&'static str, &'static str)]| config.check_request_origin(&headers(h)).is_ok();
        assert!(ok(&[("sec-fetch-site", "same-origin")]));
        assert!(ok(&[("sec-fetch-site", "none")]));
        assert!(ok(&[("origin", "https://app.example.com")]));
        assert!(ok(&[
            ("sec-fetch-site", "same-site"),
            ("origin", "https://app.example.com")
        ]));
        assert!(!ok(&[("sec-fetch-site", "cross-site")]));
        assert!(!ok(&[
            ("sec-fetch-site", "same-site"),
            ("origin", "https://evil.example.com")
        ]));
        assert!(!ok(&[("origin", "null")]));
        assert!(!ok(&[("origin", "https://evil.example")]));
        assert!(!ok(&[
            ("origin", "https://app.example.com"),
            ("origin", "https://app.example.com")
        ]));
        assert!(!ok(&[]));
        assert!(config.check_login_origin(&headers(&[])).is_ok());
        assert!(
            config
                .check_login_origin(&headers(&[("sec-fetch-site", "cross-site")]))
                .is_err()
        );
    }

    #[test]
    fn duplicate_cookies_are_refused() {
        let config = CookieConfig::builder().build().unwrap();
        let one = headers(&[("cookie", "a=1; __Secure-fastcore_refresh=tok; b=2")]);
        assert_eq!(
            config.token_from_cookies(&one).unwrap().as_deref(),
            Some("tok")
        );
        let two = headers(&[
            ("cookie", "__Secure-fastcore_refresh=tok"),
            ("cookie", "__Secure-fastcore_refresh=other"),
        ]);
        assert!(config.token_from_cookies(&two).is_err());
        let none = headers(&[("cookie", "fastcore_refresh=tok")]);
        assert_eq!(config.token_from_cookies(&none).unwrap(), None);
    }
}
