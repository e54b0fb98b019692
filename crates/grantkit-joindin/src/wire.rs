//! What Joind.in puts on the wire: `["message"]` errors, `meta.user_uri`, and the reading
//! of an API response into a [`ResponseClass`].

use crate::lenient::{id_from_uri, text_of};
use grantkit_core::{
    Error,
    provider::{ApiResponse, ResponseClass, retry_after},
};
use serde_json::Value;

/// The longest server message an error repeats.
const MAX_MESSAGE: usize = 200;

/// The message of a Joind.in error body (`["<message>"]`), if the body is one.
pub(crate) fn error_message(body: &[u8]) -> Option<String> {
    match serde_json::from_slice::<Value>(body).ok()? {
        // Numeric coercion spares no list element: a message may arrive as a number.
        Value::Array(items) => items
            .first()
            .and_then(text_of)
            .map(|message| message.chars().take(MAX_MESSAGE).collect()),
        _ => None,
    }
}

/// Who a response says the caller is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Caller {
    /// `user_uri` names a real user.
    User {
        /// The `user_uri` as the server wrote it.
        uri: String,
        /// The user id, its last segment.
        id: u64,
    },
    /// `user_uri` names user 0: the server did not know the token (spec §2.3, HEAD).
    UserZero,
    /// A JSON document without `user_uri`: the request was anonymous.
    Anonymous,
    /// No JSON document to read (empty, not JSON, a scalar): nothing can be said.
    Unknown,
}

/// Reads `user_uri` from a response body: `meta.user_uri`, or a top-level `user_uri`
/// (the token response, and the documents that carry no `meta`).
pub(crate) fn caller(body: &[u8]) -> Caller {
    let Ok(document) = serde_json::from_slice::<Value>(body) else {
        return Caller::Unknown;
    };
    let Value::Object(map) = &document else {
        // A bare list or a scalar is no Joind.in document: nothing can be said.
        return Caller::Unknown;
    };
    let uri = map
        .get("meta")
        .and_then(|meta| meta.get("user_uri"))
        .or_else(|| map.get("user_uri"));
    match uri.and_then(text_of) {
        // Absence means "anonymous" only in a document Joind.in would have given the user
        // to: one with `meta` (every list), or the root (its links, and no `meta` when
        // anonymous). Any other object — `{}` from a proxy, say — says nothing, so it
        // never costs a grant.
        None if map.get("meta").is_some_and(Value::is_object) || is_root(map) => Caller::Anonymous,
        None => Caller::Unknown,
        Some(uri) => match id_from_uri(&uri) {
            Some(0) => Caller::UserZero,
            Some(id) => Caller::User { uri, id },
            None => Caller::Unknown,
        },
    }
}

/// Whether a document is the API root (`GET /v2.1/`): its links are strings.
fn is_root(map: &serde_json::Map<String, Value>) -> bool {
    ["events", "hot-events", "upcoming-events"]
        .iter()
        .all(|link| map.get(*link).is_some_and(Value::is_string))
}

/// Whether a refusal message says the request was anonymous ("You must be logged in…",
/// "You must log in…").
fn says_not_logged_in(message: &str) -> bool {
    let message = message.to_ascii_lowercase();
    message.starts_with("you must be logged in") || message.starts_with("you must log in")
}

/// Classifies a response to a request that carried a token.
///
/// Joind.in has no invalid-token error: a token it does not know makes the request
/// anonymous. So a successful JSON document without `user_uri` (or naming user 0) means
/// the token is gone, and so does a `["…"]` refusal saying the caller is not logged in.
/// Bodies that cannot be read say nothing about the token and are never called invalid.
pub(crate) fn classify(response: &ApiResponse<'_>) -> ResponseClass {
    match response.status.as_u16() {
        200..=299 => match caller(response.body) {
            Caller::User { .. } | Caller::Unknown => ResponseClass::Ok,
            Caller::UserZero | Caller::Anonymous => ResponseClass::TokenInvalid,
        },
        429 => ResponseClass::RateLimited {
            retry_after: retry_after(response.headers),
        },
        status @ 400..=499 => refusal(status, response.body),
        500..=599 => ResponseClass::Transient,
        _ => ResponseClass::Ok,
    }
}

/// A 4xx other than 429.
fn refusal(status: u16, body: &[u8]) -> ResponseClass {
    match (status, error_message(body)) {
        // Every 401 of the API means "not logged in" on a protected call; one without
        // Joind.in's `["…"]` body came from something else (a proxy) and says nothing.
        (401, Some(_)) => ResponseClass::TokenInvalid,
        (400, Some(message)) if says_not_logged_in(&message) => ResponseClass::TokenInvalid,
        // A 403 is also what a dead token meets on `/token` at HEAD, but an untrusted
        // client or a user without the right meets the same answer with a valid token:
        // never invalid. Joind.in has no scopes, so it is an ordinary refusal, and the
        // caller gets the server's message with it.
        _ => ResponseClass::Permanent,
    }
}

/// The error for a refused API call: the server's message where it sent one.
pub(crate) fn api_error(status: http::StatusCode, body: &[u8]) -> Error {
    match status.as_u16() {
        500..=599 => Error::unavailable(status.as_u16(), None),
        code => Error::api(
            code,
            error_message(body)
                .unwrap_or_else(|| format!("HTTP {code} without a Joind.in error message")),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::{HeaderMap, HeaderValue, StatusCode};
    use std::time::Duration;

    fn class(status: u16, body: &str) -> ResponseClass {
        class_with(status, body, &HeaderMap::new())
    }

    fn class_with(status: u16, body: &str, headers: &HeaderMap) -> ResponseClass {
        classify(&ApiResponse {
            status: StatusCode::from_u16(status).unwrap(),
            headers,
            body: body.as_bytes(),
        })
    }

    #[test]
    fn identified_documents_are_ok_and_anonymous_ones_invalid() {
        let user = r#"{"events":"x","meta":{"user_uri":"https://api.joind.in/v2.1/users/7"}}"#;
        assert_eq!(class(200, user), ResponseClass::Ok);
        let zero = r#"{"meta":{"count":0,"user_uri":"https://api.joind.in/v2.1/users/0"}}"#;
        assert_eq!(class(200, zero), ResponseClass::TokenInvalid);
        let anonymous_root = r#"{"events":"e","hot-events":"h","upcoming-events":"u"}"#;
        assert_eq!(class(200, anonymous_root), ResponseClass::TokenInvalid);
        assert_eq!(
            class(200, r#"{"events":[],"meta":{"count":0}}"#),
            ResponseClass::TokenInvalid
        );
        let top = r#"{"is_attending":true,"user_uri":"https://api.joind.in/v2.1/users/3"}"#;
        assert_eq!(class(200, top), ResponseClass::Ok);
    }

    #[test]
    fn unreadable_bodies_are_never_invalid() {
        for body in ["", "{not json", "<html>down</html>", "true", "cb({});"] {
            assert_eq!(class(200, body), ResponseClass::Ok, "{body}");
        }
        assert_eq!(class(201, ""), ResponseClass::Ok);
        assert_eq!(class(204, ""), ResponseClass::Ok);
        assert_eq!(class(401, "<html>proxy</html>"), ResponseClass::Permanent);
        assert_eq!(class(401, ""), ResponseClass::Permanent);
        let odd = r#"{"meta":{"user_uri":"https://api.joind.in/v2.1/users/me"}}"#;
        assert_eq!(class(200, odd), ResponseClass::Ok);
        // Objects Joind.in would not send (a proxy's `{}`, a document without `meta`) and
        // bare lists say nothing about the token.
        for body in ["{}", r#"{"events":"x"}"#, r#"{"status":"ok"}"#, "[]"] {
            assert_eq!(class(200, body), ResponseClass::Ok, "{body}");
        }
    }

    #[test]
    fn refusals_are_classified() {
        assert_eq!(
            class(401, r#"["You must be logged in to create data"]"#),
            ResponseClass::TokenInvalid
        );
        assert_eq!(
            class(400, r#"["You must log in to comment"]"#),
            ResponseClass::TokenInvalid
        );
        assert_eq!(
            class(400, r#"["Duplicate comment"]"#),
            ResponseClass::Permanent
        );
        assert_eq!(
            class(
                403,
                r#"["You can not access the token list with this client"]"#
            ),
            ResponseClass::Permanent
        );
        assert_eq!(
            class(404, r#"["Talk not found"]"#),
            ResponseClass::Permanent
        );
        let mut headers = HeaderMap::new();
        headers.insert("retry-after", HeaderValue::from_static("12"));
        assert_eq!(
            class_with(
                429,
                r#"["Rate limit exceeded. Try again in 12 seconds"]"#,
                &headers
            ),
            ResponseClass::RateLimited {
                retry_after: Some(Duration::from_secs(12))
            }
        );
        assert_eq!(
            class(500, r#"["Database error"]"#),
            ResponseClass::Transient
        );
        assert_eq!(class(503, "<html></html>"), ResponseClass::Transient);
    }

    #[test]
    fn error_messages_are_read_leniently_and_capped() {
        assert_eq!(
            error_message(br#"["Signin failed"]"#).as_deref(),
            Some("Signin failed")
        );
        assert_eq!(error_message(b"[404]").as_deref(), Some("404"));
        assert_eq!(error_message(b"{}"), None);
        assert_eq!(error_message(b""), None);
        let long = format!(r#"["{}"]"#, "a".repeat(1000));
        assert_eq!(error_message(long.as_bytes()).unwrap().len(), MAX_MESSAGE);
    }
}
