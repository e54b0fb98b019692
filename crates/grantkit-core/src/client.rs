//! `AuthorizedClient`: sends `reqwest` requests with a managed token attached.

use crate::error::{Error, Result};
use crate::http::read_capped;
use crate::key::TokenKey;
use crate::manager::TokenManager;
use crate::net::ensure_safe_destination;
use crate::provider::{ApiResponse, ResponseClass};
use std::time::Duration;

/// Sends requests for one grant with its token attached, through the user's own
/// `reqwest::Client`.
///
/// - Before each attempt it takes the current token from the [`TokenManager`] and lets the
///   provider attach it. Tokens go only to HTTPS URLs or to loopback addresses.
/// - It reads the response (up to a size cap) and lets the provider classify it. When the
///   token has expired, it refreshes **only if the failed token is still the current one**
///   (so a thousand requests failing together cause one refresh), then replays the request
///   if its body can be replayed. A token the provider calls invalid leads to one refresh
///   attempt where possible, otherwise to [`Error::ReauthorizationRequired`].
/// - It honours `Retry-After` on rate-limited responses, up to a bound.
/// - A request without a timeout of its own gets the provider's request timeout.
/// - Other outcomes: a successful or permanently refused response is returned as it is; a
///   rate limit past the bound, an exhausted quota, a missing scope or a provider failure
///   become the matching [`Error`].
///
/// ```no_run
/// # async fn example(manager: grantkit_core::TokenManager, key: grantkit_core::TokenKey) -> grantkit_core::Result<()> {
/// let client = manager.authorized_client(reqwest::Client::new(), key);
/// let response = client.send(client.http().get("https://api.example.com/v1/user")).await?;
/// # let _ = response; Ok(()) }
/// ```
#[derive(Clone, Debug)]
pub struct AuthorizedClient {
    manager: TokenManager,
    http: reqwest::Client,
    key: TokenKey,
    max_retry_wait: Duration,
    max_body: usize,
}

/// API responses larger than this are refused by default.
pub const DEFAULT_MAX_BODY: usize = 16 * 1024 * 1024;

/// How many rate-limited answers one request waits out before giving up.
const MAX_RATE_LIMITED_RETRIES: u32 = 5;

impl AuthorizedClient {
    /// A client for `key` on the user's `http` client.
    pub fn new(manager: TokenManager, http: reqwest::Client, key: TokenKey) -> Self {
        Self {
            manager,
            http,
            key,
            max_retry_wait: Duration::from_secs(30),
            max_body: DEFAULT_MAX_BODY,
        }
    }

    /// Waits at most this long in total for `Retry-After` (each wait at least 100 ms, at
    /// most five of them) before returning [`Error::RateLimited`]. Zero never waits.
    pub fn with_max_retry_wait(mut self, wait: Duration) -> Self {
        self.max_retry_wait = wait;
        self
    }

    /// Refuses responses larger than `bytes`.
    pub fn with_max_body(mut self, bytes: usize) -> Self {
        self.max_body = bytes;
        self
    }

    /// The underlying `reqwest::Client`, for building requests.
    pub fn http(&self) -> &reqwest::Client {
        &self.http
    }

    /// The grant the client sends requests for.
    pub fn key(&self) -> &TokenKey {
        &self.key
    }

    /// Builds and sends a request.
    pub async fn send(&self, request: reqwest::RequestBuilder) -> Result<reqwest::Response> {
        self.execute(request.build()?).await
    }

    /// Sends a request with the token attached; see the type's documentation.
    pub async fn execute(&self, request: reqwest::Request) -> Result<reqwest::Response> {
        ensure_safe_destination(request.url())?;
        let provider = self.manager.provider().clone();
        let mut request = request;
        // Never wait forever: a request without a timeout of its own gets the provider's.
        if request.timeout().is_none() {
            *request.timeout_mut() = Some(provider.request_timeout());
        }
        let mut refreshed = false;
        let mut waited = Duration::ZERO;
        let mut rate_limited = 0;
        loop {
            let tokens = self.manager.access_token(&self.key).await?;
            let spare = request.try_clone();
            provider.authenticate(&tokens, request.headers_mut())?;
            let sent_to = request.url().clone();
            let response = self.http.execute(request).await?;
            // A client that followed a redirect to another host dropped the token on the way:
            // what comes back says nothing about the token, and must not cost the grant.
            let redirected = response.url() != &sent_to;
            let status = response.status();
            let headers = response.headers().clone();
            let version = response.version();
            let body = read_capped(response, self.max_body).await?;
            let mut class = provider.classify(&ApiResponse {
                status,
                headers: &headers,
                body: &body,
            });
            if redirected
                && matches!(
                    class,
                    ResponseClass::TokenExpired | ResponseClass::TokenInvalid
                )
            {
                tracing::warn!(key = %self.key, "a redirected answer refused the request; the token is kept");
                class = ResponseClass::Permanent;
            }
            match class {
                ResponseClass::Ok | ResponseClass::Permanent => {
                    let mut rebuilt = http::Response::new(body);
                    *rebuilt.status_mut() = status;
                    *rebuilt.headers_mut() = headers;
                    *rebuilt.version_mut() = version;
                    return Ok(reqwest::Response::from(rebuilt));
                }
                ResponseClass::TokenExpired | ResponseClass::TokenInvalid => {
                    if refreshed {
                        return Err(Error::reauthorize(
                            "the provider refused a freshly refreshed token",
                        ));
                    }
                    let invalid = class == ResponseClass::TokenInvalid;
                    tracing::info!(key = %self.key, invalid, "the provider refused the token");
                    self.manager
                        .token_rejected(&self.key, &tokens.access_token, invalid)
                        .await?;
                    refreshed = true;
                    request = spare.ok_or(Error::NotReplayable)?;
                }
                ResponseClass::RateLimited { retry_after } => {
                    // A short floor, so `Retry-After: 0` (or a date in the past) cannot turn
                    // into a tight loop; and a bounded number of waits.
                    let wait = retry_after
                        .unwrap_or(Duration::from_secs(1))
                        .max(Duration::from_millis(100));
                    rate_limited += 1;
                    let within_bound = waited
                        .checked_add(wait)
                        .is_some_and(|total| total <= self.max_retry_wait);
                    match spare {
                        Some(spare) if within_bound && rate_limited <= MAX_RATE_LIMITED_RETRIES => {
                            tracing::info!(key = %self.key, wait_ms = wait.as_millis() as u64, "rate limited; waiting");
                            tokio::time::sleep(wait).await;
                            waited += wait;
                            request = spare;
                        }
                        _ => return Err(Error::RateLimited { retry_after }),
                    }
                }
                other => {
                    return Err(other
                        .to_error(status)
                        .unwrap_or(Error::unavailable(status.as_u16(), None)));
                }
            }
        }
    }
}
