//! `AuthorizedClient`: sends `reqwest` requests with a managed token attached.

use crate::error::{Error, Result};
use crate::key::TokenKey;
use crate::manager::TokenManager;
use crate::net::ensure_safe_destination;
use crate::provider::http::{read_capped, read_prefix};
use crate::provider::{ApiResponse, ResponseClass, retry_after};
use crate::retry::{RetryPolicy, is_idempotent};
use std::time::Duration;

/// Sends requests for one grant with its token attached, through your own
/// `reqwest::Client`.
///
/// # What is `Ok` and what is `Err`
///
/// `Ok(response)` is a successful answer (2xx, or a 3xx the client did not follow), handed
/// over unread: its body streams to you. Every other answer is an `Err` typed from the
/// provider's reading of it — [`Error::Api`] for a refused request (a 404, a 422) with
/// the server's message, [`Error::Forbidden`], [`Error::RateLimited`],
/// [`Error::QuotaExceeded`], [`Error::Unavailable`] for 5xx, and
/// [`Error::ReauthorizationRequired`] or [`Error::RenewRequired`] when the token is refused
/// for good — as are failures to send ([`Error::Transport`], [`Error::Timeout`]).
///
/// # What it does on the way
///
/// - Before each attempt it takes the current token from the [`TokenManager`] and lets the
///   provider attach it. Tokens go only to HTTPS URLs or to loopback addresses.
/// - It reads a body only where the provider must see it to judge the answer: an error
///   answer (at most [`DEFAULT_MAX_READ`](Self::DEFAULT_MAX_READ) of it), or a success from a
///   provider that [reads success bodies](crate::provider::Capabilities::reads_success_bodies)
///   (Joind.in).
/// - When the token has expired, it refreshes **only if the failed token is still the
///   current one** (so a thousand requests failing together cause one refresh), then
///   replays the request if its body can be replayed. A token the provider calls invalid
///   leads to one refresh attempt where possible, otherwise to
///   [`Error::ReauthorizationRequired`].
/// - It retries what is safe to retry — idempotent requests after a 5xx, a rate-limited
///   answer, a reset connection or a timeout — with growing, jittered waits that honour
///   `Retry-After`, within a deadline: see [`RetryPolicy`] ([`with_retry`](Self::with_retry)
///   to change it). A `POST` is sent once.
/// - A request without a timeout of its own gets the provider's request timeout.
///
/// ```no_run
/// # async fn example(manager: grantkit_core::TokenManager, key: grantkit_core::TokenKey) -> grantkit_core::Result<()> {
/// let client = manager.authorized_client(reqwest::Client::new(), key);
/// let mut response = client.send(client.http().get("https://api.example.com/v1/user")).await?;
/// while let Some(chunk) = response.chunk().await? {
///     // Each chunk as it arrives.
/// #   let _ = chunk;
/// }
/// # Ok(()) }
/// ```
#[derive(Clone, Debug)]
pub struct AuthorizedClient {
    manager: TokenManager,
    http: reqwest::Client,
    key: TokenKey,
    retry: RetryPolicy,
    max_read: usize,
}

impl AuthorizedClient {
    /// The most of a body the client reads to judge an answer, by default: all of a
    /// success body the provider must see, the start of an error body.
    pub const DEFAULT_MAX_READ: usize = 16 * 1024 * 1024;

    /// A client for `key` on the user's `http` client.
    pub fn new(manager: TokenManager, http: reqwest::Client, key: TokenKey) -> Self {
        Self {
            manager,
            http,
            key,
            retry: RetryPolicy::default(),
            max_read: Self::DEFAULT_MAX_READ,
        }
    }

    /// Retries as `policy` says (default [`RetryPolicy::default`];
    /// [`RetryPolicy::none`] never retries).
    pub fn with_retry(mut self, policy: RetryPolicy) -> Self {
        self.retry = policy;
        self
    }

    /// Reads at most `bytes` of a body the provider must see (default
    /// [`DEFAULT_MAX_READ`](Self::DEFAULT_MAX_READ)); a success body it must see that is
    /// longer is refused as [`Error::BadResponse`].
    pub fn with_max_read(mut self, bytes: usize) -> Self {
        self.max_read = bytes;
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

    /// The manager the client takes its tokens from.
    pub fn manager(&self) -> &TokenManager {
        &self.manager
    }

    /// Waits before the next attempt of a request after `failed` failed attempts, the last
    /// one with `err`; or returns `err` when the policy gives up.
    async fn before_retry(
        &self,
        method: &http::Method,
        err: &Error,
        failed: u32,
        started: tokio::time::Instant,
        retry_after: Option<Duration>,
    ) -> Result<()> {
        let Some(wait) = self.retry.wait(failed, started.elapsed(), retry_after) else {
            return Err(err.clone());
        };
        // The method, the failure and the attempt: never the URL (a query may hold a
        // token), a header or a body.
        tracing::debug!(
            key = %self.key,
            %method,
            failure = %err,
            attempt = failed + 1,
            wait_ms = wait.as_millis() as u64,
            "retrying"
        );
        tokio::time::sleep(wait).await;
        Ok(())
    }

    /// Builds and sends a request.
    pub async fn send(&self, request: reqwest::RequestBuilder) -> Result<reqwest::Response> {
        self.execute(request.build()?).await
    }

    /// Sends a request with the token attached; see the type's documentation.
    pub async fn execute(&self, request: reqwest::Request) -> Result<reqwest::Response> {
        ensure_safe_destination(request.url())?;
        let provider = self.manager.provider().clone();
        let reads_successes = provider.capabilities().reads_success_bodies;
        let mut request = request;
        // Never wait forever: a request without a timeout of its own gets the provider's.
        if request.timeout().is_none() {
            *request.timeout_mut() = Some(provider.request_timeout());
        }
        let idempotent = is_idempotent(request.method());
        let started = tokio::time::Instant::now();
        let mut failed = 0;
        let mut refreshed = false;
        loop {
            let tokens = self.manager.access_token(&self.key).await?;
            let spare = request.try_clone();
            provider.authenticate(&tokens, request.headers_mut())?;
            let sent_to = request.url().clone();
            let method = request.method().clone();
            let response = match self.http.execute(request).await {
                Ok(response) => response,
                Err(err) => {
                    let err = Error::from(err);
                    // Nothing reached the server when the connection could not be made:
                    // safe for any request. Once sent, only an idempotent one goes again.
                    let safe = match &err {
                        Error::Transport { request_sent, .. } => idempotent || !request_sent,
                        Error::Timeout { .. } => idempotent,
                        _ => false,
                    };
                    failed += 1;
                    match spare.filter(|_| safe) {
                        Some(spare) => {
                            self.before_retry(&method, &err, failed, started, None)
                                .await?;
                            request = spare;
                            continue;
                        }
                        None => return Err(err),
                    }
                }
            };
            let status = response.status();
            let success = status.is_success() || status.is_redirection();
            if success && !reads_successes {
                return Ok(response);
            }
            // A client that followed a redirect to another host dropped the token on the
            // way: what comes back says nothing about the token, and must not cost the grant.
            let redirected = response.url() != &sent_to;
            let headers = response.headers().clone();
            let version = response.version();
            let body = if success {
                read_capped(response, self.max_read).await?
            } else {
                read_prefix(response, self.max_read).await?
            };
            let answer = ApiResponse {
                status,
                headers: &headers,
                body: &body,
            };
            let mut class = provider.classify(&answer);
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
                ResponseClass::Ok if success => {
                    let mut rebuilt = http::Response::new(body);
                    *rebuilt.status_mut() = status;
                    *rebuilt.headers_mut() = headers;
                    *rebuilt.version_mut() = version;
                    return Ok(reqwest::Response::from(rebuilt));
                }
                ResponseClass::Ok | ResponseClass::Permanent => {
                    return Err(provider.refusal(&answer));
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
                    failed += 1;
                    let err = Error::RateLimited { retry_after };
                    match spare.filter(|_| idempotent) {
                        Some(spare) => {
                            self.before_retry(&method, &err, failed, started, retry_after)
                                .await?;
                            request = spare;
                        }
                        None => return Err(err),
                    }
                }
                ResponseClass::Transient => {
                    failed += 1;
                    let retry_after = retry_after(&headers);
                    let err = Error::unavailable(status.as_u16(), retry_after);
                    match spare.filter(|_| idempotent) {
                        Some(spare) => {
                            self.before_retry(&method, &err, failed, started, retry_after)
                                .await?;
                            request = spare;
                        }
                        None => return Err(err),
                    }
                }
                other => {
                    return Err(other
                        .to_error(status)
                        .unwrap_or_else(|| provider.refusal(&answer)));
                }
            }
        }
    }
}
