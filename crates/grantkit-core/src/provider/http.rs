//! `ProviderHttp`: the HTTP client providers use for their own calls, and the tolerant
//! reading of OAuth token-endpoint answers they share.
//!
//! Every call has a timeout and a cap on the body it reads; plain HTTP is refused except to
//! loopback addresses; errors never carry a URL or a body (either may hold a token).

use crate::error::{Error, Result};
use crate::net::ensure_safe_destination;
use crate::provider::retry_after;
use crate::secret::{AccessToken, RefreshToken};
use crate::store::codec::describe_json_error;
use crate::token::{GrantKind, TokenSet};
use http::{HeaderMap, StatusCode};
use serde::Deserialize;
use std::fmt;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, SystemTime};

/// The default timeout of one provider call.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
/// The default cap on a provider's answer: token responses are a few hundred bytes.
pub const DEFAULT_MAX_BODY: usize = 1024 * 1024;

/// An HTTP client for a provider's own calls (token endpoint, revocation, identity).
///
/// The default client uses rustls, follows no redirects (a redirected token request could
/// carry credentials elsewhere), and times out after [`DEFAULT_TIMEOUT`]. It is built on
/// first use: loading the system's root certificates costs milliseconds that a program
/// reading a cached token never needs to spend. A client of your own
/// ([`ProviderHttp::with_client`]) keeps its settings; give it `redirect(Policy::none())`.
#[derive(Clone)]
pub struct ProviderHttp {
    client: Arc<OnceLock<std::result::Result<reqwest::Client, String>>>,
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

impl Default for ProviderHttp {
    fn default() -> Self {
        Self::new()
    }
}

impl ProviderHttp {
    /// The default client, built on first use.
    pub fn new() -> Self {
        Self {
            client: Arc::new(OnceLock::new()),
            timeout: DEFAULT_TIMEOUT,
            max_body: DEFAULT_MAX_BODY,
        }
    }

    /// Uses the caller's `reqwest::Client` (its proxy, TLS roots, pool).
    pub fn with_client(client: reqwest::Client) -> Self {
        Self {
            client: Arc::new(OnceLock::from(Ok(client))),
            ..Self::new()
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

    /// The underlying client, for building requests; the default one is built here the
    /// first time.
    ///
    /// # Errors
    ///
    /// [`Error::Configuration`] when the default client cannot be built (no usable TLS
    /// roots, for example).
    pub fn client(&self) -> Result<&reqwest::Client> {
        self.client
            .get_or_init(|| {
                reqwest::Client::builder()
                    .redirect(reqwest::redirect::Policy::none())
                    .connect_timeout(Duration::from_secs(10))
                    .build()
                    .map_err(|err| format!("cannot build the HTTP client: {err}"))
            })
            .as_ref()
            .map_err(|reason| Error::configuration(reason.clone()))
    }

    /// Sends a request and reads its answer, within the timeout and the body cap.
    pub async fn send(&self, request: reqwest::RequestBuilder) -> Result<HttpResponse> {
        let request = request.timeout(self.timeout).build()?;
        ensure_safe_destination(request.url())?;
        let call = async {
            let response = self.client()?.execute(request).await?;
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
            .client()?
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

/// The error for a token endpoint's failed answer. The status decides first: 429, and a
/// 503 with `Retry-After`, are rate limits with their delay whatever the body says (a
/// server's `{"error":"slow_down"}` included); then an RFC 6749 §5.2 body becomes
/// [`Error::OAuth`]; any other 5xx is unavailable; anything else a bad response.
pub fn token_endpoint_error(response: &HttpResponse) -> Error {
    #[derive(Deserialize)]
    struct OAuthError {
        error: String,
        error_description: Option<String>,
    }
    if let Some(err) = throttled(response.status, &response.headers) {
        return err;
    }
    if let Ok(body) = serde_json::from_slice::<OAuthError>(&response.body)
        && !body.error.is_empty()
        && body.error.len() <= 128
    {
        return Error::oauth(body.error, body.error_description);
    }
    match response.status.as_u16() {
        status @ 500..=599 => Error::unavailable(status, retry_after(&response.headers)),
        status => Error::bad_response(format!(
            "the token endpoint answered HTTP {status} without an OAuth error"
        )),
    }
}

/// The error for an answer whose status alone says "slow down": 429, or 503 with
/// `Retry-After` (RFC 9110 §10.2.3). Its delay comes with it.
pub fn throttled(status: StatusCode, headers: &HeaderMap) -> Option<Error> {
    let delay = retry_after(headers);
    match status.as_u16() {
        429 => Some(Error::RateLimited { retry_after: delay }),
        503 if delay.is_some() => Some(Error::unavailable(503, delay)),
        _ => None,
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

/// The longest lifetime grantkit believes a token has. A server that says a token lives
/// longer (`1e30`, `2^64-1` seconds) is believed for this long, and the cap is logged:
/// the token is then refreshed (or re-checked) within a year instead of never.
pub const MAX_TOKEN_LIFETIME: Duration = Duration::from_secs(366 * 24 * 60 * 60);

/// A token's lifetime from an `expires_in` (or `refresh_token_expires_in`) value, a JSON
/// number or a numeric string:
///
/// - zero or negative: already expired (`Duration::ZERO`);
/// - longer than [`MAX_TOKEN_LIFETIME`]: that maximum, logged;
/// - anything else that is not a number (`"soon"`, `null`, `true`): `None`, so that the
///   provider's documented default applies, as when the field is missing.
pub fn lifetime(value: &serde_json::Value) -> Option<Duration> {
    match value {
        serde_json::Value::Number(n) => lifetime_of(n.as_f64()?),
        serde_json::Value::String(text) => lifetime_from_text(text),
        _ => None,
    }
}

/// [`lifetime`] of a value that arrived as text (a redirect's fragment).
pub fn lifetime_from_text(text: &str) -> Option<Duration> {
    lifetime_of(text.trim().parse::<f64>().ok()?)
}

fn lifetime_of(seconds: f64) -> Option<Duration> {
    if !seconds.is_finite() {
        return None;
    }
    if seconds <= 0.0 {
        return Some(Duration::ZERO);
    }
    if seconds > MAX_TOKEN_LIFETIME.as_secs_f64() {
        tracing::warn!(
            max_seconds = MAX_TOKEN_LIFETIME.as_secs(),
            "the server gave a token a lifetime beyond the maximum; using the maximum"
        );
        return Some(MAX_TOKEN_LIFETIME);
    }
    Some(Duration::from_secs(seconds as u64))
}

/// Checks an access token as it is received: it must be non-empty, without whitespace or
/// control characters. Such a token could never be sent in a header, and taking it would
/// replace a working token with a useless one.
pub fn check_access_token(token: &str) -> Result<()> {
    if token.is_empty() || token.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(Error::bad_response(
            "the access token is empty or contains whitespace or control characters",
        ));
    }
    Ok(())
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
    check_access_token(&access)?;
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
    let access_lifetime = raw
        .expires_in
        .as_ref()
        .and_then(lifetime)
        .or(rules.default_lifetime);
    let mut tokens = TokenSet::new(AccessToken::new(access), rules.grant);
    tokens.token_type = token_type;
    tokens.expires_at = access_lifetime.map(|l| rules.now + l);
    tokens.obtained_at = Some(rules.now);
    tokens.refresh_token = text(raw.refresh_token)
        .filter(|t| !t.is_empty())
        .map(RefreshToken::new);
    tokens.refresh_expires_at = raw
        .refresh_token_expires_in
        .as_ref()
        .and_then(lifetime)
        .map(|l| rules.now + l);
    tokens.scopes = scopes(raw.scope);
    Ok(tokens)
}

/// Reads at most `max` bytes of a body and drops the rest: enough to classify an error
/// answer, whatever its size.
pub async fn read_prefix(mut response: reqwest::Response, max: usize) -> Result<Vec<u8>> {
    let mut body = Vec::new();
    while body.len() < max {
        let Some(chunk) = response.chunk().await? else {
            break;
        };
        let room = max - body.len();
        body.extend_from_slice(&chunk[..chunk.len().min(room)]);
    }
    Ok(body)
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
    fn out_of_range_lifetimes_expire_at_once_are_capped_or_take_the_default() {
        let day = Duration::from_secs(86_400);
        for (expires_in, lifetime) in [
            ("-5", Duration::ZERO),
            ("0", Duration::ZERO),
            (r#""-5""#, Duration::ZERO),
            ("1e30", MAX_TOKEN_LIFETIME),
            ("18446744073709551615", MAX_TOKEN_LIFETIME),
            (r#""1e30""#, MAX_TOKEN_LIFETIME),
            (r#""soon""#, day),
            ("null", day),
            ("true", day),
            (r#""NaN""#, day),
            ("3600", Duration::from_secs(3600)),
        ] {
            let body = format!(r#"{{"access_token":"a","expires_in":{expires_in}}}"#);
            let tokens = parse_token_response(body.as_bytes(), rules()).unwrap();
            assert_eq!(
                tokens.expires_at,
                Some(rules().now + lifetime),
                "expires_in {expires_in}"
            );
        }
        let expired =
            parse_token_response(br#"{"access_token":"a","expires_in":-5}"#, rules()).unwrap();
        assert!(expired.is_expired(rules().now));
    }

    #[test]
    fn access_tokens_with_control_characters_are_refused_on_receipt() {
        for token in [r"a\u0001b", r"a\u007fb", r"a\u2028b", r"a\u00a0b", r"a\tb"] {
            let body = format!(r#"{{"access_token":"{token}"}}"#);
            let err = parse_token_response(body.as_bytes(), rules()).unwrap_err();
            assert!(matches!(err, Error::BadResponse { .. }), "{token}: {err}");
        }
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
            Error::Unavailable { status: 503, .. }
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

    #[test]
    fn the_status_decides_a_rate_limit_whatever_the_body() {
        let with_retry_after = |status: u16, body: &str| {
            let mut headers = HeaderMap::new();
            headers.insert(http::header::RETRY_AFTER, "7".parse().unwrap());
            HttpResponse {
                status: StatusCode::from_u16(status).unwrap(),
                headers,
                body: body.as_bytes().to_vec(),
            }
        };
        for body in [
            r#"{"error":"slow_down"}"#,
            r#"{"error":"invalid_request","error_description":"too many"}"#,
            "Too Many Requests",
        ] {
            let err = token_endpoint_error(&with_retry_after(429, body));
            assert!(
                matches!(err, Error::RateLimited { retry_after: Some(d) } if d.as_secs() == 7),
                "{body}: {err:?}"
            );
            assert!(err.is_retryable());
            let err = token_endpoint_error(&with_retry_after(503, body));
            assert!(
                matches!(err, Error::Unavailable { status: 503, retry_after: Some(d), .. } if d.as_secs() == 7),
                "{body}: {err:?}"
            );
            assert!(err.is_retryable());
            assert_eq!(err.retry_after(), Some(Duration::from_secs(7)));
        }
    }
}
