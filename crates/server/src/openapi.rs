//! The OpenAPI description the server serves at `/openapi.json`: the
//! library's description of the auth routes, plus `/openapi.json` and
//! `/metrics` themselves, plus what the server's own layers can answer on
//! any route ([`crate::problem`]): `408 request_timeout` for a request body
//! that does not arrive within `--body-timeout`, `413 body_too_large` for a
//! body over [`MAX_BODY_BYTES`](crate::serve::MAX_BODY_BYTES) (on every
//! route and method, whether or not it reads a body), and
//! `503 service_unavailable` for a request that takes longer than
//! [`REQUEST_TIMEOUT`](crate::serve::REQUEST_TIMEOUT).

use fastcore_security::http::{openapi, problem_response, with_metrics_route, with_openapi_route};
use serde_json::{Value, json};
use utoipa::openapi::OpenApi;

const PROBLEM_JSON: &str = "application/problem+json";

/// The server's description (see the module docs).
pub fn spec() -> OpenApi {
    let spec = with_metrics_route(with_openapi_route(openapi()));
    // The layers' answers are added on the JSON form, where merging a
    // code into an existing response's `code` enum is a few lines.
    let Ok(mut document) = serde_json::to_value(&spec) else {
        return spec;
    };
    add_layer_responses(&mut document);
    serde_json::from_value(document).unwrap_or(spec)
}

fn add_layer_responses(document: &mut Value) {
    let Some(paths) = document.get_mut("paths").and_then(Value::as_object_mut) else {
        return;
    };
    for item in paths.values_mut() {
        let Some(item) = item.as_object_mut() else {
            continue;
        };
        for operation in item.values_mut() {
            let takes_body = operation.get("requestBody").is_some();
            let Some(responses) = operation
                .get_mut("responses")
                .and_then(Value::as_object_mut)
            else {
                continue;
            };
            if takes_body {
                add_code(
                    responses,
                    "408",
                    "The request body did not arrive within `serve --body-timeout` (default \
                     10 s); the connection is closed",
                    "request_timeout",
                );
            }
            // The body limit refuses by Content-Length before any handler
            // runs; login and refresh keep their own, smaller limit's 413.
            if !responses.contains_key("413") {
                add_code(
                    responses,
                    "413",
                    &format!(
                        "The request body is over the server's {} KiB limit",
                        crate::serve::MAX_BODY_BYTES / 1024
                    ),
                    "body_too_large",
                );
            }
            add_code(
                responses,
                "503",
                "The request took longer than 30 s (`service_unavailable`)",
                "service_unavailable",
            );
        }
    }
}

/// Adds `code` to the `status` response: a new problem response, or one
/// more value of an existing problem response's `code` enum, or a problem
/// body next to an existing response of another type (as `/health`'s
/// JSON 503).
fn add_code(
    responses: &mut serde_json::Map<String, Value>,
    status: &str,
    description: &str,
    code: &str,
) {
    let fresh = serde_json::to_value(problem_response(description, &[code])).unwrap_or(Value::Null);
    let Some(existing) = responses.get_mut(status) else {
        responses.insert(status.to_owned(), fresh);
        return;
    };
    let codes = existing
        .pointer_mut("/content/application~1problem+json/schema/allOf/1/properties/code/enum")
        .and_then(Value::as_array_mut);
    match codes {
        Some(codes) => {
            if !codes.contains(&json!(code)) {
                codes.push(json!(code));
            }
        }
        None => {
            let Some(content) = existing.get_mut("content").and_then(Value::as_object_mut) else {
                responses.insert(status.to_owned(), fresh);
                return;
            };
            if let Some(body) =
                fresh.pointer(&format!("/content/{}", PROBLEM_JSON.replace('/', "~1")))
            {
                content.insert(PROBLEM_JSON.to_owned(), body.clone());
            }
        }
    }
    if let Some(text) = existing.get_mut("description") {
        let extended = format!(
            "{}; or, from the server: {description}",
            text.as_str().unwrap_or_default()
        );
        *text = Value::String(extended);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_layers_answers_are_documented_on_every_route() {
        let document = serde_json::to_value(spec()).unwrap();
        let login = &document["paths"]["/auth/login"]["post"]["responses"];
        let codes = |response: &Value| {
            response["content"]["application/problem+json"]["schema"]["allOf"][1]["properties"]
                ["code"]["enum"]
                .clone()
        };
        assert_eq!(codes(&login["408"]), json!(["request_timeout"]));
        assert_eq!(
            codes(&login["503"]),
            json!(["store_unavailable", "service_unavailable"])
        );
        // The store's Retry-After is kept.
        assert!(login["503"]["headers"]["Retry-After"].is_object());
        // GET routes take no body: no 408.
        let me = &document["paths"]["/auth/me"]["get"]["responses"];
        assert!(me["408"].is_null());
        // /health keeps its JSON 503 and gains the problem body.
        let health = &document["paths"]["/health"]["get"]["responses"]["503"]["content"];
        assert!(health["application/json"].is_object());
        assert_eq!(
            codes(&document["paths"]["/health"]["get"]["responses"]["503"]),
            json!(["service_unavailable"])
        );
        // Every route documents the body limit's 413; login keeps its own.
        assert_eq!(codes(&login["413"]), json!(["body_too_large"]));
        assert!(
            login["413"]["description"]
                .as_str()
                .unwrap()
                .contains("16 KiB")
        );
        assert_eq!(codes(&me["413"]), json!(["body_too_large"]));
        // JWKS had no 503: it gets the layer's.
        let jwks = &document["paths"]["/.well-known/jwks.json"]["get"]["responses"]["503"];
        assert_eq!(codes(jwks), json!(["service_unavailable"]));
    }
}
