//! Reading api.join.me's answers: the Mashery gateway's codes, join.me's own
//! `{"Message", "ErrorCode"}` errors, and the status.

use grantkit_core::provider::text::untrusted;
use grantkit_core::{
    Error,
    provider::{ApiResponse, ResponseClass, retry_after, www_authenticate_param},
};
use http::{HeaderMap, StatusCode};
use serde::Deserialize;
use std::time::Duration;

/// The header in which Mashery names the error it generated.
pub(crate) const MASHERY_ERROR_CODE: &str = "x-mashery-error-code";
/// Mashery's "when does the quota reset" header (plan headers, optional).
pub(crate) const PLAN_QUOTA_RESET: &str = "x-plan-quota-reset";

/// Mashery's per-second throttle; its window is one second, so a missing `Retry-After`
/// means one second.
const OVER_QPS: &str = "ERR_403_DEVELOPER_OVER_QPS";
const OVER_RATE: &str = "ERR_403_DEVELOPER_OVER_RATE";
const INACTIVE: &str = "ERR_403_DEVELOPER_INACTIVE";
const NOT_AUTHORIZED: &str = "ERR_403_NOT_AUTHORIZED";

/// Bodies larger than this are not parsed for an error code: join.me's are tiny.
const MAX_ERROR_BODY: usize = 64 * 1024;

/// join.me's application error body, `{"Message": "...", "ErrorCode": "..."}`, and the
/// LogMeIn stub's lower-case `{"message", "code"}`. Unknown fields are ignored.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct ErrorBody {
    #[serde(rename = "Message", alias = "message", default)]
    message: Option<serde_json::Value>,
    #[serde(rename = "ErrorCode", alias = "errorCode", alias = "code", default)]
    error_code: Option<serde_json::Value>,
}

impl ErrorBody {
    /// The body's error fields, or nothing when it is not a small JSON object (HTML, XML,
    /// empty, anything else).
    pub(crate) fn parse(body: &[u8]) -> Self {
        if body.len() > MAX_ERROR_BODY {
            return Self::default();
        }
        serde_json::from_slice(body).unwrap_or_default()
    }

    /// `ErrorCode`, when it is a short string.
    pub(crate) fn code(&self) -> Option<&str> {
        match &self.error_code {
            Some(serde_json::Value::String(code)) if code.len() <= 64 => Some(code),
            _ => None,
        }
    }

    /// `Message` (or `message`), capped and escaped.
    pub(crate) fn message(&self) -> Option<String> {
        match &self.message {
            Some(serde_json::Value::String(text)) => Some(untrusted(text, 300)),
            _ => None,
        }
    }
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name)?.to_str().ok().map(str::trim)
}

/// Classifies an api.join.me response; the first matching rule wins (`specs/joinme.md`
/// §8 "Client requirements").
///
/// 1. Success and anything below 400 is ok.
/// 2. Mashery's over-rate (quota) code → quota exceeded, with `X-Plan-Quota-Reset`. It is
///    checked before the status because tenants that throttle with 429 send it there too,
///    and retrying before the reset is pointless.
/// 3. Mashery's over-QPS code, or any 429 → rate limited, with `Retry-After`.
/// 4. 5xx → transient.
/// 5. `ErrorCode: "stale_token"` → token expired (refresh; an implicit token cannot be).
/// 6. Insufficient scope (`ErrorCode` or `WWW-Authenticate … error="insufficient_scope"`),
///    whatever the status → forbidden, with the scope join.me names.
/// 7. Mashery's "developer inactive" (unknown or revoked token), `error="invalid_token"` in
///    the challenge or the body, or Mashery's 401 "not authorized" → token invalid.
/// 8. Any other 403 without a Mashery code → forbidden; any other 401 (join.me says
///    `stale_token` when a token expires, Mashery names an invalid one: a bare 401 came
///    from something else, a proxy say), other Mashery codes and other 4xx → permanent. An
///    answer nothing explains never refreshes, renews or ends a grant.
pub fn classify_response(response: &ApiResponse<'_>) -> ResponseClass {
    let status = response.status;
    if status.as_u16() < 400 {
        return ResponseClass::Ok;
    }
    let headers = response.headers;
    let mashery = header(headers, MASHERY_ERROR_CODE).map(str::to_ascii_uppercase);
    let mashery = mashery.as_deref();
    if mashery == Some(OVER_RATE) {
        return ResponseClass::QuotaExceeded {
            reset: header(headers, PLAN_QUOTA_RESET)
                .filter(|v| !v.is_empty())
                .map(|v| untrusted(v, 64)),
        };
    }
    if mashery == Some(OVER_QPS) {
        return ResponseClass::RateLimited {
            retry_after: Some(retry_after(headers).unwrap_or(Duration::from_secs(1))),
        };
    }
    if status == StatusCode::TOO_MANY_REQUESTS {
        return ResponseClass::RateLimited {
            retry_after: retry_after(headers),
        };
    }
    if status.is_server_error() {
        return ResponseClass::Transient;
    }
    let body = ErrorBody::parse(response.body);
    let challenge_error = www_authenticate_param(headers, "error");
    if body.code() == Some("stale_token") {
        return ResponseClass::TokenExpired;
    }
    if body.code() == Some("insufficient_scope")
        || challenge_error.as_deref() == Some("insufficient_scope")
    {
        return ResponseClass::Forbidden {
            scope: www_authenticate_param(headers, "scope")
                .filter(|s| !s.is_empty())
                .map(|s| untrusted(&s, 64)),
        };
    }
    if mashery == Some(INACTIVE)
        || mashery == Some(NOT_AUTHORIZED)
        || challenge_error.as_deref() == Some("invalid_token")
        || body.code() == Some("invalid_token")
    {
        return ResponseClass::TokenInvalid;
    }
    match status.as_u16() {
        403 if mashery.is_none() => ResponseClass::Forbidden { scope: None },
        _ => ResponseClass::Permanent,
    }
}

/// The error for an API answer that is not a success, from its class: what
/// [`AuthorizedClient`](grantkit_core::AuthorizedClient) would have returned, and for
/// refusals the provider's message (never the body itself).
pub(crate) fn api_error(status: StatusCode, class: &ResponseClass, body: &[u8]) -> Error {
    if let Some(err) = class.to_error(status) {
        return err;
    }
    let parsed = ErrorBody::parse(body);
    match class {
        ResponseClass::TokenExpired => Error::reauthorize(format!(
            "join.me answered HTTP {} {}: the token has expired",
            status.as_u16(),
            parsed.code().unwrap_or("")
        )),
        ResponseClass::TokenInvalid => {
            Error::reauthorize("join.me no longer accepts the token (unknown or revoked)")
        }
        _ => Error::api(
            status.as_u16(),
            parsed
                .message()
                .unwrap_or_else(|| format!("join.me answered HTTP {}", status.as_u16())),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn classify(
        status: u16,
        headers: &[(&'static str, &'static str)],
        body: &str,
    ) -> ResponseClass {
        let mut map = HeaderMap::new();
        for (name, value) in headers {
            map.insert(*name, HeaderValue::from_static(value));
        }
        classify_response(&ApiResponse {
            status: StatusCode::from_u16(status).unwrap(),
            headers: &map,
            body: body.as_bytes(),
        })
    }

    const INACTIVE_HEADERS: [(&str, &str); 4] = [
        ("server", "Mashery Proxy"),
        (
            "www-authenticate",
            "Bearer realm=\"api.join.me\", error=\"invalid_token\"",
        ),
        ("x-error-detail-header", "Account Inactive"),
        ("x-mashery-error-code", "ERR_403_DEVELOPER_INACTIVE"),
    ];

    #[test]
    fn success_is_ok_whatever_the_2xx() {
        for status in [200, 201, 204, 304] {
            assert_eq!(classify(status, &[], ""), ResponseClass::Ok);
        }
    }

    #[test]
    fn stale_token_is_expired_on_401_and_403() {
        let body = r#"{"Message":"The access token has expired.","ErrorCode":"stale_token"}"#;
        assert_eq!(classify(401, &[], body), ResponseClass::TokenExpired);
        assert_eq!(classify(403, &[], body), ResponseClass::TokenExpired);
    }

    #[test]
    fn mashery_inactive_and_not_authorized_are_invalid_tokens() {
        assert_eq!(
            classify(403, &INACTIVE_HEADERS, "<h1>Developer Inactive</h1>"),
            ResponseClass::TokenInvalid
        );
        assert_eq!(
            classify(
                403,
                &INACTIVE_HEADERS,
                r#"{"message": "Developer Inactive", "code": "invalid_token"}"#
            ),
            ResponseClass::TokenInvalid
        );
        // The JSON stub alone, without the gateway headers.
        assert_eq!(
            classify(
                403,
                &[],
                r#"{"message":"Developer Inactive","code":"invalid_token"}"#
            ),
            ResponseClass::TokenInvalid
        );
        assert_eq!(
            classify(
                401,
                &[
                    ("www-authenticate", "Bearer realm=\"api.join.me\""),
                    ("x-mashery-error-code", "ERR_403_NOT_AUTHORIZED"),
                ],
                "<h1>Not Authorized</h1>"
            ),
            ResponseClass::TokenInvalid
        );
    }

    #[test]
    fn throttling_is_rate_limited_and_quota_is_exceeded() {
        let qps = [
            ("x-mashery-error-code", "ERR_403_DEVELOPER_OVER_QPS"),
            ("retry-after", "3"),
        ];
        assert_eq!(
            classify(403, &qps, "<h1>Developer Over Qps</h1>"),
            ResponseClass::RateLimited {
                retry_after: Some(Duration::from_secs(3))
            }
        );
        assert_eq!(
            classify(429, &qps, ""),
            ResponseClass::RateLimited {
                retry_after: Some(Duration::from_secs(3))
            }
        );
        // Mashery's QPS window is one second.
        assert_eq!(
            classify(
                403,
                &[("x-mashery-error-code", "ERR_403_DEVELOPER_OVER_QPS")],
                ""
            ),
            ResponseClass::RateLimited {
                retry_after: Some(Duration::from_secs(1))
            }
        );
        assert_eq!(
            classify(429, &[("retry-after", "7")], "<h1>Too Many Requests</h1>"),
            ResponseClass::RateLimited {
                retry_after: Some(Duration::from_secs(7))
            }
        );
        assert_eq!(
            classify(429, &[], ""),
            ResponseClass::RateLimited { retry_after: None }
        );
        let rate = [
            ("x-mashery-error-code", "ERR_403_DEVELOPER_OVER_RATE"),
            (
                "x-plan-quota-reset",
                "Thursday, June 4, 2015 12:00:00 AM GMT",
            ),
        ];
        for status in [403, 429] {
            assert_eq!(
                classify(status, &rate, "<h1>Developer Over Rate</h1>"),
                ResponseClass::QuotaExceeded {
                    reset: Some("Thursday, June 4, 2015 12:00:00 AM GMT".into())
                }
            );
        }
        assert_eq!(
            classify(
                403,
                &[("x-mashery-error-code", "ERR_403_DEVELOPER_OVER_RATE")],
                ""
            ),
            ResponseClass::QuotaExceeded { reset: None }
        );
    }

    #[test]
    fn insufficient_scope_is_forbidden_with_the_scope_whatever_the_status() {
        let headers = [(
            "www-authenticate",
            "Bearer realm=\"api.join.me\", error=\"insufficient_scope\", scope=\"provisioning\"",
        )];
        let body = r#"{"Message":"Authorization has been denied for this request.","ErrorCode":"insufficient_scope"}"#;
        for status in [403, 401, 400] {
            assert_eq!(
                classify(status, &headers, body),
                ResponseClass::Forbidden {
                    scope: Some("provisioning".into())
                },
                "status {status}"
            );
        }
        assert_eq!(
            classify(403, &[], body),
            ResponseClass::Forbidden { scope: None }
        );
        assert_eq!(
            classify(403, &[], r#"{"Message":"Nope."}"#),
            ResponseClass::Forbidden { scope: None }
        );
    }

    #[test]
    fn failures_and_refusals() {
        for status in [500, 502, 503, 504] {
            assert_eq!(
                classify(
                    status,
                    &[("x-mashery-error-code", "ERR_503_SERVICE_UNAVAILABLE")],
                    "<html>down</html>"
                ),
                ResponseClass::Transient
            );
        }
        assert_eq!(
            classify(400, &[], r#"{"Message":"bad"}"#),
            ResponseClass::Permanent
        );
        assert_eq!(classify(404, &[], ""), ResponseClass::Permanent);
        assert_eq!(
            classify(
                403,
                &[("x-mashery-error-code", "ERR_403_DEVELOPER_SOMETHING")],
                ""
            ),
            ResponseClass::Permanent
        );
    }

    #[test]
    fn unexplained_refusals_never_touch_the_grant() {
        for body in ["", "<html>?</html>", "{", r#"{"ErrorCode": 5}"#, "null"] {
            assert_eq!(classify(401, &[], body), ResponseClass::Permanent, "{body}");
            assert_ne!(
                classify(403, &[], body),
                ResponseClass::TokenInvalid,
                "{body}"
            );
            assert_ne!(
                classify(400, &[], body),
                ResponseClass::TokenInvalid,
                "{body}"
            );
        }
        let huge = format!(
            r#"{{"ErrorCode":"invalid_token","pad":"{}"}}"#,
            "x".repeat(70_000)
        );
        assert_eq!(classify(400, &[], &huge), ResponseClass::Permanent);
    }

    #[test]
    fn api_errors_carry_the_message_but_never_the_body() {
        let err = api_error(
            StatusCode::NOT_FOUND,
            &ResponseClass::Permanent,
            br#"{"Message":"Meeting not found.","secret":"tok3n"}"#,
        );
        assert!(
            matches!(&err, Error::Api { status: 404, message, .. } if message == "Meeting not found.")
        );
        let err = api_error(
            StatusCode::BAD_REQUEST,
            &ResponseClass::Permanent,
            b"<html>tok3n</html>",
        );
        assert!(!err.to_string().contains("tok3n"));
        assert!(matches!(err, Error::Api { status: 400, .. }));
        let err = api_error(
            StatusCode::BAD_REQUEST,
            &ResponseClass::Permanent,
            br#"{"message":"lower-case works too"}"#,
        );
        assert!(err.to_string().contains("lower-case works too"));
        let err = api_error(
            StatusCode::FORBIDDEN,
            &ResponseClass::Forbidden {
                scope: Some("scheduler".into()),
            },
            b"",
        );
        assert!(matches!(err, Error::Forbidden { scope: Some(ref s) } if s == "scheduler"));
    }
}
