//! `ProviderHttp`: the HTTP client providers use for their own calls, and the tolerant
//! reading of OAuth token-endpoint answers they share.
//!
//! Every call has a timeout and a cap on the body it reads; plain HTTP is refused except to
//! loopback addresses; errors never carry a URL or a body (either may hold a token).

use crate::codec::describe_json_error;
use crate::error::{Error, Result};
use crate::net::ensure_safe_destination;
use crate::provider::retry_after;
use crate::secret::{AccessToken, RefreshToken};
use crate::token::{GrantKind, TokenSet};
use http::{HeaderMap, StatusCode};
use serde::Deserialize;
use std::fmt;
use std::time::{Duration, SystemTime};

/// The default timeout of one provider call.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
/// The default cap on a provider's answer: token responses are a few hundred bytes.
pub const DEFAULT_MAX_BODY: usize = 1024 * 1024;

/// An HTTP client for a provider's own calls (token endpoint, revocation, identity).
///
/// The default client uses rustls, follows no redirects (a redirected token request could
/// carry credentials elsewhere), and times out after [`DEFAULT_TIMEOUT`]. A client of your
/// own ([`ProviderHttp::with_client`]) keeps its settings; give it
/// `redirect(Policy::none())`.
#[derive(Clone)]
pub struct ProviderHttp {
    client: reqwest::Client,
    timeout: Duration,
    max_body: usize,
}

impl fmt::Debug for ProviderHttp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ProviderHttp")
            .field("timeout", &self.timeout)
            .field("max_body", &self.max_body)
            .finish_non_exhaustive()
    }
}

impl ProviderHttp {
    /// The default client.
    pub fn new() -> Result<Self> {
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(Duration::from_secs(10))
            .build()
            .map_err(|err| Error::configuration(format!("cannot build the HTTP client: {err}")))?;
        Ok(Self::with_client(client))
    }

    /// Uses the caller's `reqwest::Client` (its proxy, TLS roots, pool).
    pub fn with_client(client: reqwest::Client) -> Self {
        Self {
            client,
            timeout: DEFAULT_TIMEOUT,
            max_body: DEFAULT_MAX_BODY,
        }
    }

    /// Sets the timeout of each call.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Sets the cap on an answer's body.
    pub fn with_max_body(mut self, bytes: usize) -> Self {
        self.max_body = bytes;
        self
    }

    /// The timeout of each call.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// The underlying client, for building requests.
    pub fn client(&self) -> &reqwest::Client {
        &self.client
    }

    /// Sends a request and reads its answer, within the timeout and the body cap.
    pub async fn send(&self, request: reqwest::RequestBuilder) -> Result<HttpResponse> {
        let request = request.timeout(self.timeout).build()?;
        ensure_safe_destination(request.url())?;
        let call = async {
            let response = self.client.execute(request).await?;
            let status = response.status();
            let headers = response.headers().clone();
            let body = read_capped(response, self.max_body).await?;
            Ok(HttpResponse {
                status,
                headers,
                body,
            })
        };
        // reqwest's timeout covers the body too; this outer one also bounds a client of the
        // caller's that was built without one.
        tokio::time::timeout(self.timeout + Duration::from_millis(100), call)
            .await
            .unwrap_or_else(|_| {
                Err(Error::Timeout {
                    what: "provider call".to_owned(),
                })
            })
    }

    /// Sends an `http::Request`: the shape the `oauth2` crate's `AsyncHttpClient` wants, so
    /// a provider can pass `&|request| http.execute(request)`.
    pub async fn execute(
        &self,
        request: http::Request<Vec<u8>>,
    ) -> Result<http::Response<Vec<u8>>> {
        let (parts, body) = request.into_parts();
        let url = parts.uri.to_string();
        let builder = self
            .client
            .request(parts.method, url)
            .headers(parts.headers)
            .body(body);
        let answer = self.send(builder).await?;
        let mut response = http::Response::new(answer.body);
        *response.status_mut() = answer.status;
        *response.headers_mut() = answer.headers;
        Ok(response)
    }
}

/// A provider's answer, read within the cap. `Debug` shows the status and the body's length
/// only: bodies hold tokens.
#[derive(Clone)]
pub struct HttpResponse {
    /// The status.
    pub status: StatusCode,
    /// The headers.
    pub headers: HeaderMap,
    /// The body.
    pub body: Vec<u8>,
}

impl fmt::Debug for HttpResponse {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpResponse")
            .field("status", &self.status)
            .field("body_len", &self.body.len())
            .finish()
    }
}

impl HttpResponse {
    /// Parses the body as JSON; errors describe what was wrong without quoting the body.
    pub fn json<T: serde::de::DeserializeOwned>(&self) -> Result<T> {
        serde_json::from_slice(&self.body).map_err(|err| {
            Error::bad_response(format!("the answer is {}", describe_json_error(&err)))
        })
    }
}

/// The error for a token endpoint's failed answer: an RFC 6749 §5.2 body becomes
/// [`Error::OAuth`]; 429 rate limited; 5xx unavailable; anything else a bad response.
pub fn token_endpoint_error(response: &HttpResponse) -> Error {
    #[derive(Deserialize)]
    struct OAuthError {
        error: String,
        error_description: Option<String>,
    }
    if let Ok(body) = serde_json::from_slice::<OAuthError>(&response.body)
        && !body.error.is_empty()
        && body.error.len() <= 128
    {
        return Error::oauth(
            body.error,
            body.error_description
                .map(|d| redact_token_like(&d).chars().take(512).collect()),
        );
    }
    match response.status.as_u16() {
        429 => Error::RateLimited {
            retry_after: retry_after(&response.headers),
        },
        500..=599 => Error::Unavailable {
            status: response.status.as_u16(),
        },
        status => Error::bad_response(format!(
            "the token endpoint answered HTTP {status} without an OAuth error"
        )),
    }
}

/// The fields of a token response, each read as whatever JSON it is: after a refresh with
/// rotation the old refresh token is spent, so an odd `scope` or `expires_in` must never
/// cost the new tokens.
#[derive(Deserialize)]
struct RawTokenResponse {
    access_token: Option<serde_json::Value>,
    token_type: Option<serde_json::Value>,
    expires_in: Option<serde_json::Value>,
    refresh_token: Option<serde_json::Value>,
    refresh_token_expires_in: Option<serde_json::Value>,
    scope: Option<serde_json::Value>,
}

/// Seconds from a number or a numeric string; `None` for anything else.
fn seconds(value: &serde_json::Value) -> Option<Duration> {
    let number = match value {
        serde_json::Value::Number(n) => n.as_f64()?,
        serde_json::Value::String(text) => text.trim().parse().ok()?,
        _ => return None,
    };
    (0.0..1e12)
        .contains(&number)
        .then(|| Duration::from_secs(number as u64))
}

fn text(value: Option<serde_json::Value>) -> Option<String> {
    match value {
        Some(serde_json::Value::String(text)) => Some(text),
        _ => None,
    }
}

/// A scope as RFC 6749 writes it (one space-separated string), or as a list of strings.
fn scopes(value: Option<serde_json::Value>) -> Vec<String> {
    match value {
        Some(serde_json::Value::String(list)) => {
            list.split_whitespace().map(str::to_owned).collect()
        }
        Some(serde_json::Value::Array(items)) => items
            .into_iter()
            .filter_map(|item| text(Some(item)))
            .collect(),
        _ => Vec::new(),
    }
}

/// Replaces every run of 20 or more token-like characters that mixes letters and digits
/// with `[redacted]`: servers sometimes echo the token they refused in an error's
/// description.
pub fn redact_token_like(text: &str) -> String {
    fn token_char(c: char) -> bool {
        c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '~' | '+' | '/' | '=')
    }
    let mut out = String::with_capacity(text.len());
    let mut run = String::new();
    let flush = |run: &mut String, out: &mut String| {
        let looks_like_token = run.len() >= 20
            && run.chars().any(|c| c.is_ascii_digit())
            && run.chars().any(|c| c.is_ascii_alphabetic());
        out.push_str(if looks_like_token {
            crate::REDACTED
        } else {
            run
        });
        run.clear();
    };
    for c in text.chars() {
        if token_char(c) {
            run.push(c);
        } else {
            flush(&mut run, &mut out);
            out.push(c);
        }
    }
    flush(&mut run, &mut out);
    out
}

/// How to read a token response.
#[derive(Clone, Copy, Debug)]
pub struct TokenResponseRules {
    /// The grant the response answers.
    pub grant: GrantKind,
    /// When it was received.
    pub now: SystemTime,
    /// The lifetime to assume when `expires_in` is missing, if the provider documents one.
    pub default_lifetime: Option<Duration>,
}

/// Reads an RFC 6749 §5.1 token response tolerantly: `expires_in` as a number or a string,
/// a missing `token_type` (bearer), a missing `expires_in` (the rule's default), the scope
/// as a space-separated list. Strict where it matters: the access token must be a
/// non-empty string without whitespace, and the token type, when given, `bearer`.
pub fn parse_token_response(body: &[u8], rules: TokenResponseRules) -> Result<TokenSet> {
    let raw: RawTokenResponse = serde_json::from_slice(body).map_err(|err| {
        Error::bad_response(format!(
            "the token response is {}",
            describe_json_error(&err)
        ))
    })?;
    let access = match raw.access_token {
        Some(serde_json::Value::String(text)) => text,
        Some(_) => {
            return Err(Error::bad_response(
                "the token response's access_token is not a string",
            ));
        }
        None => {
            return Err(Error::bad_response(
                "the token response has no access_token",
            ));
        }
    };
    if access.is_empty() || access.chars().any(char::is_whitespace) {
        return Err(Error::bad_response(
            "the token response's access_token is empty or has whitespace",
        ));
    }
    let token_type = text(raw.token_type)
        .unwrap_or_else(|| "bearer".to_owned())
        .to_ascii_lowercase();
    if token_type != "bearer" {
        return Err(Error::unsupported(format!(
            "token type `{}` (only bearer tokens are supported)",
            token_type.chars().take(32).collect::<String>()
        )));
    }
    // An `expires_in` that is not a number of seconds counts as absent.
    let lifetime = raw
        .expires_in
        .as_ref()
        .and_then(seconds)
        .or(rules.default_lifetime);
    let mut tokens = TokenSet::new(AccessToken::new(access), rules.grant);
    tokens.token_type = token_type;
    tokens.expires_at = lifetime.map(|l| rules.now + l);
    tokens.obtained_at = Some(rules.now);
    tokens.refresh_token = text(raw.refresh_token)
        .filter(|t| !t.is_empty())
        .map(RefreshToken::new);
    tokens.refresh_expires_at = raw
        .refresh_token_expires_in
        .as_ref()
        .and_then(seconds)
        .map(|l| rules.now + l);
    tokens.scopes = scopes(raw.scope);
    Ok(tokens)
}

/// Reads a body, refusing it once it grows past `max` bytes.
pub async fn read_capped(mut response: reqwest::Response, max: usize) -> Result<Vec<u8>> {
    if response
        .content_length()
        .is_some_and(|len| len > max as u64)
    {
        return Err(Error::bad_response(format!(
            "the response is larger than {max} bytes"
        )));
    }
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await? {
        if body.len() + chunk.len() > max {
            return Err(Error::bad_response(format!(
                "the response is larger than {max} bytes"
            )));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules() -> TokenResponseRules {
        TokenResponseRules {
            grant: GrantKind::AuthorizationCode,
            now: SystemTime::UNIX_EPOCH + Duration::from_secs(1_000),
            default_lifetime: Some(Duration::from_secs(86_400)),
        }
    }

    #[test]
    fn token_responses_are_read_tolerantly() {
        let tokens = parse_token_response(
            br#"{"access_token":"a","expires_in":"3600","refresh_token":"r","scope":"x y","token_type":"Bearer","extra":1}"#,
            rules(),
        )
        .unwrap();
        assert_eq!(
            tokens.expires_at,
            Some(rules().now + Duration::from_secs(3600))
        );
        assert_eq!(tokens.refresh_token.unwrap().expose_secret(), "r");
        assert_eq!(tokens.scopes, ["x", "y"]);
        assert_eq!(tokens.token_type, "bearer");

        let tokens =
            parse_token_response(br#"{"access_token":"a","refresh_token":"r"}"#, rules()).unwrap();
        assert_eq!(
            tokens.expires_at,
            Some(rules().now + Duration::from_secs(86_400))
        );
        assert_eq!(tokens.token_type, "bearer");

        let tokens =
            parse_token_response(br#"{"access_token":"a","expires_in":60.0}"#, rules()).unwrap();
        assert_eq!(
            tokens.expires_at,
            Some(rules().now + Duration::from_secs(60))
        );
    }

    #[test]
    fn bad_token_responses_are_typed_and_quote_nothing() {
        for body in [
            &br#"{"access_token":"sec ret"}"#[..],
            br#"{"access_token":""}"#,
            br#"{"token_type":"bearer"}"#,
            br#"{"access_token":12345}"#,
            br#"{"access_token":"secret""#,
            b"<html>secret</html>",
            b"",
        ] {
            let err = parse_token_response(body, rules()).unwrap_err();
            assert!(matches!(err, Error::BadResponse { .. }), "{err}");
            assert!(!err.to_string().contains("secret"), "{err}");
            assert!(!format!("{err:?}").contains("secret"), "{err:?}");
        }
        let err = parse_token_response(br#"{"access_token":"a","token_type":"mac"}"#, rules())
            .unwrap_err();
        assert!(matches!(err, Error::Unsupported { .. }), "{err}");
    }

    #[test]
    fn token_like_runs_are_redacted_from_descriptions() {
        assert_eq!(
            redact_token_like("Invalid refresh token: 8xZ3kPq7Lm2Nc9Vb4Rt6Yw1Q"),
            "Invalid refresh token: [redacted]"
        );
        let plain = "the authorization_code grant is not allowed (ticket d685626822)";
        assert_eq!(redact_token_like(plain), plain);
    }

    #[test]
    fn token_endpoint_errors_are_classified() {
        let response = |status: u16, body: &str| HttpResponse {
            status: StatusCode::from_u16(status).unwrap(),
            headers: HeaderMap::new(),
            body: body.as_bytes().to_vec(),
        };
        let err = token_endpoint_error(&response(
            400,
            r#"{"error":"invalid_grant","error_description":"gone"}"#,
        ));
        assert!(err.is_invalid_grant());
        assert!(matches!(
            token_endpoint_error(&response(503, "<html>down</html>")),
            Error::Unavailable { status: 503 }
        ));
        assert!(matches!(
            token_endpoint_error(&response(429, "")),
            Error::RateLimited { .. }
        ));
        assert!(matches!(
            token_endpoint_error(&response(400, "nope")),
            Error::BadResponse { .. }
        ));
    }
}
