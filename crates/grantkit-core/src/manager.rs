//! `TokenManager`: composes a provider and a store into what users call every request.

use crate::clock::{Clock, SystemClock};
use crate::error::{CallbackError, Error, Result};
use crate::flow::{Callback, Flow, FlowStart};
use crate::key::TokenKey;
use crate::provider::{Provider, Renewal, Revocation};
use crate::secret::{AccessToken, SecretUrl, StateToken};
use crate::store::{Lease, Precondition, TokenStore, Version, Versioned};
use crate::token::TokenSet;
use futures::FutureExt as _;
use futures::future::{BoxFuture, Shared};
use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tracing::Instrument as _;

/// Tuning of a [`TokenManager`]. The defaults suit most services.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct ManagerConfig {
    /// Refresh this long before the access token expires.
    pub refresh_margin: Duration,
    /// Up to this much more, spread over keys, so tokens issued together are not all
    /// refreshed in the same second.
    pub refresh_jitter: Duration,
    /// A cached token is re-read from the store after this long, so a deletion or a
    /// refresh by another process is seen even for tokens that never expire.
    pub max_cache_age: Duration,
    /// The TTL of the cross-process refresh lease. Must exceed the provider's request
    /// timeout; it is renewed while the refresh runs.
    pub lease_ttl: Duration,
    /// How long to wait for a peer that holds the lease before giving up.
    pub lease_wait: Duration,
    /// After a refresh fails while the current token is still valid, try again after this.
    pub retry_backoff: Duration,
}

impl ManagerConfig {
    /// Defaults for a provider whose calls time out after `request_timeout`.
    pub fn for_timeout(request_timeout: Duration) -> Self {
        let lease_ttl = (request_timeout * 2).max(Duration::from_secs(10));
        Self {
            refresh_margin: Duration::from_secs(60),
            refresh_jitter: Duration::from_secs(30),
            max_cache_age: Duration::from_secs(30),
            lease_ttl,
            lease_wait: lease_ttl * 2 + Duration::from_secs(5),
            retry_backoff: Duration::from_secs(5),
        }
    }

    /// Sets `refresh_margin`.
    pub fn with_refresh_margin(mut self, margin: Duration) -> Self {
        self.refresh_margin = margin;
        self
    }
    /// Sets `refresh_jitter`.
    pub fn with_refresh_jitter(mut self, jitter: Duration) -> Self {
        self.refresh_jitter = jitter;
        self
    }
    /// Sets `max_cache_age`.
    pub fn with_max_cache_age(mut self, age: Duration) -> Self {
        self.max_cache_age = age;
        self
    }
    /// Sets `lease_ttl`, and `lease_wait` to twice that plus five seconds.
    pub fn with_lease_ttl(mut self, ttl: Duration) -> Self {
        self.lease_ttl = ttl;
        self.lease_wait = ttl * 2 + Duration::from_secs(5);
        self
    }
    /// Sets `lease_wait`.
    pub fn with_lease_wait(mut self, wait: Duration) -> Self {
        self.lease_wait = wait;
        self
    }
    /// Sets `retry_backoff`.
    pub fn with_retry_backoff(mut self, backoff: Duration) -> Self {
        self.retry_backoff = backoff;
        self
    }
}

/// Builds a [`TokenManager`].
#[derive(Debug)]
pub struct TokenManagerBuilder {
    provider: Arc<dyn Provider>,
    store: Arc<dyn TokenStore>,
    clock: Arc<dyn Clock>,
    config: ManagerConfig,
}

impl TokenManagerBuilder {
    /// Sets the clock (for tests of expiry).
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// Sets the configuration.
    pub fn config(mut self, config: ManagerConfig) -> Self {
        self.config = config;
        self
    }

    /// Checks the configuration and builds the manager.
    pub fn build(self) -> Result<TokenManager> {
        let timeout = self.provider.request_timeout();
        if self.config.lease_ttl <= timeout {
            return Err(Error::configuration(format!(
                "the lease TTL ({:?}) must exceed the provider's request timeout ({timeout:?}), \
                 or a slow refresh could outlive its lease",
                self.config.lease_ttl
            )));
        }
        if self.config.lease_wait < self.config.lease_ttl {
            return Err(Error::configuration(
                "lease_wait must be at least lease_ttl, or a dead holder's lease never expires in time",
            ));
        }
        Ok(TokenManager {
            inner: Arc::new(Inner {
                provider: self.provider,
                store: self.store,
                clock: self.clock,
                config: self.config,
                cache: RwLock::new(HashMap::new()),
                jobs: Mutex::new(HashMap::new()),
            }),
        })
    }
}

/// What [`TokenManager::begin`] produced.
#[derive(Debug)]
pub enum Authorization {
    /// Send the user to this URL; the callback goes to
    /// [`complete_authorization`](TokenManager::complete_authorization).
    Redirect(SecretUrl),
    /// A direct flow finished: the grant is stored under this key.
    Complete(TokenKey),
}

/// What [`TokenManager::logout`] did.
#[derive(Debug)]
pub struct Logout {
    /// What happened at the provider: revoked, access expired, not supported, or the
    /// error that prevented it.
    pub remote: Result<Revocation>,
    /// Whether a stored grant was deleted.
    pub deleted: bool,
}

/// Obtains, stores, refreshes and revokes tokens: the part users call every request.
///
/// It composes a [`Provider`] and a [`TokenStore`]:
///
/// - [`access_token`](Self::access_token) answers from memory without I/O while the token
///   is fresh. Ahead of expiry (margin plus jitter) it refreshes in the background; once
///   expired, callers wait for the refresh.
/// - One refresh per key at a time: it runs in a spawned task that every waiter shares, so
///   a caller that gives up never abandons a refresh the provider has already committed.
///   Across processes it takes the store's lease (renewed while the refresh runs), re-reads
///   the store (a peer may have refreshed), refreshes, writes with the version
///   precondition, and releases.
/// - A refused refresh token (`invalid_grant`) is re-read from the store once (a peer may
///   have rotated it); if still refused, the grant is deleted under the version
///   precondition and the caller gets [`Error::ReauthorizationRequired`].
/// - A transient refresh failure while the current token is still valid returns the
///   current token.
///
/// ```no_run
/// # async fn example(provider: std::sync::Arc<dyn grantkit_core::Provider>, key: grantkit_core::TokenKey) -> grantkit_core::Result<()> {
/// use grantkit_core::{MemoryTokenStore, TokenManager};
/// use std::sync::Arc;
///
/// let manager = TokenManager::builder(provider, Arc::new(MemoryTokenStore::new())).build()?;
/// let tokens = manager.access_token(&key).await?;
/// let bearer = tokens.access_token.expose_secret();
/// # let _ = bearer; Ok(()) }
/// ```
#[derive(Clone)]
pub struct TokenManager {
    inner: Arc<Inner>,
}

impl fmt::Debug for TokenManager {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenManager")
            .field("provider", &self.inner.provider.id())
            .field("store", &self.inner.store)
            .field("config", &self.inner.config)
            .finish_non_exhaustive()
    }
}

type Job = Shared<BoxFuture<'static, Result<Arc<TokenSet>>>>;

struct Inner {
    provider: Arc<dyn Provider>,
    store: Arc<dyn TokenStore>,
    clock: Arc<dyn Clock>,
    config: ManagerConfig,
    cache: RwLock<HashMap<TokenKey, Entry>>,
    jobs: Mutex<HashMap<TokenKey, Job>>,
}

/// A cached token set and when to look at it again.
#[derive(Clone)]
struct Entry {
    tokens: Arc<TokenSet>,
    /// Refresh from here on (in the background until the token expires).
    refresh_at: Option<SystemTime>,
    /// Re-read the store from here on.
    reload_at: SystemTime,
    /// A refreshed token the store refused to take: the version it should replace.
    unsaved_base: Option<Version>,
}

/// Why a job runs.
#[derive(Clone)]
enum Trigger {
    /// The cached token is missing, old, or due for refresh.
    Due,
    /// The API refused this access token: as expired, or (`invalid`) as no longer valid.
    Rejected {
        access_token: AccessToken,
        invalid: bool,
    },
    /// The caller asked for a refresh of this access token.
    Forced { access_token: AccessToken },
}

impl Trigger {
    /// The access token this trigger is about, when it names one.
    fn replaces(&self) -> Option<&AccessToken> {
        match self {
            Self::Due => None,
            Self::Rejected { access_token, .. } | Self::Forced { access_token } => {
                Some(access_token)
            }
        }
    }
}

impl TokenManager {
    /// A builder with the system clock and defaults derived from the provider's timeout.
    pub fn builder(provider: Arc<dyn Provider>, store: Arc<dyn TokenStore>) -> TokenManagerBuilder {
        let config = ManagerConfig::for_timeout(provider.request_timeout());
        TokenManagerBuilder {
            provider,
            store,
            clock: Arc::new(SystemClock),
            config,
        }
    }

    /// The provider.
    pub fn provider(&self) -> &Arc<dyn Provider> {
        &self.inner.provider
    }

    /// The store.
    pub fn store(&self) -> &Arc<dyn TokenStore> {
        &self.inner.store
    }

    /// The clock.
    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.inner.clock
    }

    /// Starts a flow. A redirect flow's pending authorization goes into the store (so the
    /// callback may land on any instance); a direct flow's grant is identified and stored.
    pub async fn begin(&self, flow: &dyn Flow) -> Result<Authorization> {
        self.inner.check_flow(flow)?;
        let now = self.inner.clock.now();
        match flow.start(now).await? {
            FlowStart::Redirect { url, pending } => {
                let ttl = pending
                    .expires_at
                    .duration_since(now)
                    .unwrap_or(Duration::ZERO);
                self.inner.store.put_pending(&pending, ttl).await?;
                Ok(Authorization::Redirect(url))
            }
            FlowStart::Complete(tokens) => {
                Ok(Authorization::Complete(self.save_grant(tokens).await?))
            }
        }
    }

    /// Finishes a redirect flow: takes the pending authorization named by the callback's
    /// state (once), lets the flow check the callback and exchange, identifies the user,
    /// and stores the grant.
    pub async fn complete_authorization(
        &self,
        flow: &dyn Flow,
        callback: &Callback,
    ) -> Result<TokenKey> {
        self.inner.check_flow(flow)?;
        let location = self.inner.provider.callback_location(flow.kind());
        let state = callback
            .params(location)
            .get("state")
            .ok_or(Error::callback(CallbackError::MissingParameter("state")))?;
        let pending = self
            .inner
            .store
            .take_pending(&StateToken::new(state).hash())
            .await?
            .ok_or(Error::callback(CallbackError::UnknownState))?;
        let tokens = flow
            .finish(pending, callback, self.inner.clock.now())
            .await?;
        self.save_grant(tokens).await
    }

    /// Identifies the user of a new grant and stores it, replacing any earlier grant of the
    /// same user. Returns the key.
    pub async fn save_grant(&self, tokens: TokenSet) -> Result<TokenKey> {
        let account = self.inner.provider.identify(&tokens).await?;
        let key = TokenKey::new(
            self.inner.provider.id(),
            self.inner.provider.client_id(),
            account,
        );
        let version = self
            .inner
            .store
            .put(&key, &tokens, Precondition::Any)
            .await?;
        self.inner.remember(&key, Arc::new(tokens), version, None);
        tracing::info!(key = %key, "authorization stored");
        Ok(key)
    }

    /// A fresh access token for `key`.
    ///
    /// Answers from memory while the token is fresh. Errors:
    /// [`Error::ReauthorizationRequired`] when no grant is stored or the grant is gone,
    /// [`Error::RenewRequired`] when an expired token can only be renewed by the user.
    pub async fn access_token(&self, key: &TokenKey) -> Result<Arc<TokenSet>> {
        let now = self.inner.clock.now();
        let due_but_valid = {
            let cache = self
                .inner
                .cache
                .read()
                .unwrap_or_else(PoisonError::into_inner);
            match cache.get(key) {
                Some(entry) if now < entry.reload_at => {
                    if entry.refresh_at.is_none_or(|at| now < at) {
                        return Ok(entry.tokens.clone());
                    }
                    (!entry.tokens.is_expired(now)).then(|| entry.tokens.clone())
                }
                _ => None,
            }
        };
        if let Some(tokens) = due_but_valid {
            // Refresh in the background; answer with the still-valid token now.
            drop(self.inner.clone().job(key, Trigger::Due));
            return Ok(tokens);
        }
        self.inner.clone().job(key, Trigger::Due).await
    }

    /// Tells the manager that the API refused `rejected` for `key` as expired (`invalid:
    /// false`) or no longer valid (`invalid: true`), and returns the token to use instead.
    ///
    /// Refreshes only if `rejected` is still the current token, so a thousand requests
    /// failing together cause one refresh. When the token cannot be refreshed: renew
    /// required (expired, renewable) or re-authorization required (the grant is deleted).
    pub async fn token_rejected(
        &self,
        key: &TokenKey,
        rejected: &AccessToken,
        invalid: bool,
    ) -> Result<Arc<TokenSet>> {
        let trigger = Trigger::Rejected {
            access_token: rejected.clone(),
            invalid,
        };
        self.replace(key, trigger).await
    }

    /// Refreshes the token of `key` now, whatever its expiry (one refresh per key at a
    /// time, as always). Tokens that cannot be refreshed give [`Error::Unsupported`].
    pub async fn refresh(&self, key: &TokenKey) -> Result<Arc<TokenSet>> {
        let current = self.inner.clone().job(key, Trigger::Due).await?;
        let trigger = Trigger::Forced {
            access_token: current.access_token.clone(),
        };
        self.replace(key, trigger).await
    }

    /// Runs (or joins) the job that replaces the token `trigger` names.
    async fn replace(&self, key: &TokenKey, trigger: Trigger) -> Result<Arc<TokenSet>> {
        let old = trigger
            .replaces()
            .expect("a replacing trigger names its token")
            .clone();
        // Twice at most: the first job joined may have been started for another reason
        // and may return the very token that is to be replaced.
        for _ in 0..2 {
            if let Some(tokens) = self.inner.cached_tokens(key)
                && tokens.access_token != old
            {
                return Ok(tokens);
            }
            let tokens = self.inner.clone().job(key, trigger.clone()).await?;
            if tokens.access_token != old {
                return Ok(tokens);
            }
        }
        Err(Error::reauthorize(
            "the provider keeps refusing the current token",
        ))
    }

    /// Completes a renewal the user made at the URL of [`Error::RenewRequired`].
    pub async fn complete_renewal(
        &self,
        key: &TokenKey,
        callback: &Callback,
    ) -> Result<Arc<TokenSet>> {
        let current = self
            .inner
            .store
            .get(key)
            .await?
            .ok_or_else(|| Error::reauthorize("no grant is stored for this key"))?;
        let renewed = self
            .inner
            .provider
            .complete_renewal(&current.value, callback, self.inner.clock.now())
            .await?;
        let version = self
            .inner
            .store
            .put(key, &renewed, Precondition::Version(current.version))
            .await?;
        Ok(self.inner.remember(key, Arc::new(renewed), version, None))
    }

    /// Logs out: revokes the grant (or expires the access token) where the provider can,
    /// deletes the local copy, and says which happened.
    pub async fn logout(&self, key: &TokenKey) -> Result<Logout> {
        let Some(current) = self.inner.store.get(key).await? else {
            self.inner.forget(key);
            return Ok(Logout {
                remote: Ok(Revocation::NotSupported),
                deleted: false,
            });
        };
        let remote = self.inner.provider.revoke(&current.value).await;
        if let Err(err) = &remote {
            tracing::warn!(key = %key, error = %err, "revocation failed; deleting the local copy anyway");
        }
        let deleted = self.inner.store.delete(key, Precondition::Any).await?;
        self.inner.forget(key);
        Ok(Logout { remote, deleted })
    }

    /// An HTTP client that sends requests for `key` with its token attached.
    #[cfg(feature = "reqwest")]
    pub fn authorized_client(
        &self,
        http: reqwest::Client,
        key: TokenKey,
    ) -> crate::AuthorizedClient {
        crate::AuthorizedClient::new(self.clone(), http, key)
    }
}

/// A jitter in `0..=max` derived from the version, so the same record always gets the same
/// refresh time and records written together spread out.
fn jitter(version: Version, max: Duration) -> Duration {
    let max_ms = u64::try_from(max.as_millis()).unwrap_or(u64::MAX);
    if max_ms == 0 {
        return Duration::ZERO;
    }
    Duration::from_millis(version.as_u64() % (max_ms + 1))
}

impl Inner {
    fn check_flow(&self, flow: &dyn Flow) -> Result<()> {
        let provider = flow.provider();
        if provider.id() != self.provider.id() || provider.client_id() != self.provider.client_id()
        {
            return Err(Error::configuration(
                "the flow runs against another provider or client than this manager",
            ));
        }
        Ok(())
    }

    fn cached(&self, key: &TokenKey) -> Option<Entry> {
        self.cache
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(key)
            .cloned()
    }

    fn cached_tokens(&self, key: &TokenKey) -> Option<Arc<TokenSet>> {
        self.cache
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(key)
            .map(|entry| entry.tokens.clone())
    }

    fn forget(&self, key: &TokenKey) {
        self.cache
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(key);
    }

    fn refresh_at(&self, tokens: &TokenSet, version: Version) -> Option<SystemTime> {
        let lead = self.config.refresh_margin + jitter(version, self.config.refresh_jitter);
        tokens
            .expires_at
            .map(|at| at.checked_sub(lead).unwrap_or(UNIX_EPOCH))
    }

    /// Whether `stored` must be refreshed (or renewed) for `trigger`.
    fn needs_work(&self, stored: &Versioned<TokenSet>, trigger: &Trigger, now: SystemTime) -> bool {
        match trigger {
            Trigger::Due => self
                .refresh_at(&stored.value, stored.version)
                .is_some_and(|at| now >= at),
            Trigger::Rejected { access_token, .. } | Trigger::Forced { access_token } => {
                stored.value.access_token == *access_token
            }
        }
    }

    fn remember(
        &self,
        key: &TokenKey,
        tokens: Arc<TokenSet>,
        version: Version,
        unsaved_base: Option<Version>,
    ) -> Arc<TokenSet> {
        let refresh_at = self.refresh_at(&tokens, version);
        self.cache_entry(key, tokens, refresh_at, unsaved_base)
    }

    /// Caches a token that cannot be refreshed ahead of expiry: look at it again only once
    /// it has expired.
    fn remember_until_expiry(&self, key: &TokenKey, stored: &Versioned<TokenSet>) -> Arc<TokenSet> {
        let tokens = Arc::new(stored.value.clone());
        let refresh_at = tokens.expires_at;
        self.cache_entry(key, tokens, refresh_at, None)
    }

    /// Keeps serving a still-valid token after a failed refresh, and tries again later.
    fn remember_with_backoff(&self, key: &TokenKey, stored: Versioned<TokenSet>) -> Arc<TokenSet> {
        let retry_at = self.clock.now() + self.config.retry_backoff;
        let tokens = Arc::new(stored.value);
        let refresh_at = Some(tokens.expires_at.map_or(retry_at, |at| at.min(retry_at)));
        self.cache_entry(key, tokens, refresh_at, None)
    }

    fn cache_entry(
        &self,
        key: &TokenKey,
        tokens: Arc<TokenSet>,
        refresh_at: Option<SystemTime>,
        unsaved_base: Option<Version>,
    ) -> Arc<TokenSet> {
        let now = self.clock.now();
        // A token the store has not taken yet is offered to the store again soon.
        let reload_after = if unsaved_base.is_some() {
            self.config.retry_backoff
        } else {
            self.config.max_cache_age
        };
        let entry = Entry {
            refresh_at,
            reload_at: now + reload_after,
            tokens: tokens.clone(),
            unsaved_base,
        };
        self.cache
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(key.clone(), entry);
        tokens
    }

    /// Joins the job running for `key`, or starts one in a spawned task that outlives
    /// every caller.
    fn job(self: Arc<Self>, key: &TokenKey, trigger: Trigger) -> Job {
        let mut jobs = self.jobs.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(job) = jobs.get(key) {
            return job.clone();
        }
        let inner = self.clone();
        let job_key = key.clone();
        let span = tracing::info_span!("grantkit.ensure_token", key = %key);
        let handle = tokio::spawn(
            async move {
                let result = inner.run_job(&job_key, trigger).await;
                // The cache is updated by now, so a caller arriving after this removal
                // finds the new token instead of starting another job.
                inner
                    .jobs
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .remove(&job_key);
                result
            }
            .instrument(span),
        );
        let job = async move {
            handle.await.unwrap_or_else(|err| {
                Err(Error::Configuration {
                    message: format!("the token refresh task failed: {err}"),
                })
            })
        }
        .boxed()
        .shared();
        jobs.insert(key.clone(), job.clone());
        job
    }

    async fn run_job(&self, key: &TokenKey, trigger: Trigger) -> Result<Arc<TokenSet>> {
        if let Some(tokens) = self.save_unsaved(key).await {
            return Ok(tokens);
        }
        let Some(current) = self.store.get(key).await? else {
            self.forget(key);
            return Err(Error::reauthorize("no grant is stored for this key"));
        };
        let now = self.clock.now();
        if !self.needs_work(&current, &trigger, now) {
            return Ok(self.remember(key, Arc::new(current.value), current.version, None));
        }
        if let Some(outcome) = self.without_refresh(key, &current, &trigger, now).await {
            return outcome;
        }
        let lease = match self.acquire_lease(key, &current, &trigger).await? {
            Ok(lease) => lease,
            Err(done) => return Ok(done),
        };
        let renewer = self.keep_renewed(lease.clone());
        let result = self.refresh_holding_lease(key, &trigger).await;
        renewer.abort();
        if let Err(err) = self.store.release_lease(&lease).await {
            tracing::warn!(key = %key, error = %err, "releasing the refresh lease failed; it will expire");
        }
        result
    }

    /// The outcome for a token that must not be refreshed, or `None` to refresh it.
    async fn without_refresh(
        &self,
        key: &TokenKey,
        current: &Versioned<TokenSet>,
        trigger: &Trigger,
        now: SystemTime,
    ) -> Option<Result<Arc<TokenSet>>> {
        let renewal = self.provider.renewal(&current.value);
        if renewal == Renewal::Refresh {
            return None;
        }
        match trigger {
            Trigger::Forced { .. } => Some(Err(Error::unsupported(format!(
                "{} cannot refresh this grant's tokens",
                self.provider.id()
            )))),
            // Ahead of expiry there is nothing to do but serve the token until it expires.
            Trigger::Due if !current.value.is_expired(now) => {
                Some(Ok(self.remember_until_expiry(key, current)))
            }
            Trigger::Due | Trigger::Rejected { invalid: false, .. } => {
                self.forget(key);
                if let Renewal::Renew(renew_url) = renewal {
                    // Kept: the user's renewal makes this very token valid again.
                    return Some(Err(Error::RenewRequired { renew_url }));
                }
                if matches!(trigger, Trigger::Rejected { .. }) {
                    self.delete_grant(key, current.version).await;
                }
                Some(Err(Error::reauthorize(
                    "the token has expired and cannot be refreshed",
                )))
            }
            Trigger::Rejected { invalid: true, .. } => {
                // The provider refused the token as invalid: the grant is gone. Delete it,
                // unless a peer has replaced it meanwhile.
                self.delete_grant(key, current.version).await;
                self.forget(key);
                Some(Err(Error::reauthorize(
                    "the provider refused the token and it cannot be refreshed",
                )))
            }
        }
    }

    async fn delete_grant(&self, key: &TokenKey, version: Version) {
        match self.store.delete(key, Precondition::Version(version)).await {
            Ok(_) | Err(Error::Conflict { .. }) => {}
            Err(err) => tracing::warn!(key = %key, error = %err, "deleting a dead grant failed"),
        }
    }

    /// Takes the refresh lease, or returns (as `Err`) the token a peer stored meanwhile.
    async fn acquire_lease(
        &self,
        key: &TokenKey,
        current: &Versioned<TokenSet>,
        trigger: &Trigger,
    ) -> Result<std::result::Result<Lease, Arc<TokenSet>>> {
        let deadline = tokio::time::Instant::now() + self.config.lease_wait;
        let mut delay = Duration::from_millis(10);
        loop {
            if let Some(lease) = self.store.try_lease(key, self.config.lease_ttl).await? {
                return Ok(Ok(lease));
            }
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(Duration::from_millis(250));
            match self.store.get(key).await? {
                None => {
                    self.forget(key);
                    return Err(Error::reauthorize(
                        "the grant was deleted while waiting to refresh it",
                    ));
                }
                Some(stored)
                    if stored.version != current.version
                        && !self.needs_work(&stored, trigger, self.clock.now()) =>
                {
                    return Ok(Err(self.remember(
                        key,
                        Arc::new(stored.value),
                        stored.version,
                        None,
                    )));
                }
                Some(_) => {}
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(Error::Timeout {
                    what: format!("waiting for another process's refresh lease on {key}"),
                });
            }
        }
    }

    /// Renews the lease every third of its TTL until aborted.
    fn keep_renewed(&self, lease: Lease) -> tokio::task::JoinHandle<()> {
        let store = self.store.clone();
        let ttl = self.config.lease_ttl;
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(ttl / 3).await;
                if let Err(err) = store.renew_lease(&lease, ttl).await {
                    // The refresh goes on; the version precondition still protects the record.
                    tracing::warn!(key = %lease.key, error = %err, "could not renew the refresh lease");
                    return;
                }
            }
        })
    }

    async fn refresh_holding_lease(
        &self,
        key: &TokenKey,
        trigger: &Trigger,
    ) -> Result<Arc<TokenSet>> {
        // At most two refreshes: a second only when the first refresh token was refused
        // because a peer had rotated it, and the peer's grant needs refreshing too.
        for attempt in 1..=2 {
            // Re-read under the lease: a peer may have refreshed since our last read.
            let Some(current) = self.store.get(key).await? else {
                self.forget(key);
                return Err(Error::reauthorize("the grant was deleted"));
            };
            let now = self.clock.now();
            if !self.needs_work(&current, trigger, now) {
                return Ok(self.remember(key, Arc::new(current.value), current.version, None));
            }
            if let Some(outcome) = self.without_refresh(key, &current, trigger, now).await {
                return outcome;
            }
            match self.call_refresh(&current.value).await {
                Ok(mut tokens) => {
                    if tokens.refresh_token.is_none() {
                        // RFC 6749 §6: without a new refresh token the old one stays valid.
                        tokens.refresh_token = current.value.refresh_token.clone();
                        tokens.refresh_expires_at = tokens
                            .refresh_expires_at
                            .or(current.value.refresh_expires_at);
                    }
                    tracing::info!(key = %key, "token refreshed");
                    return Ok(self.persist(key, tokens, current.version).await);
                }
                Err(err) if err.is_invalid_grant() => {
                    let rotated_by_peer = self
                        .store
                        .get(key)
                        .await?
                        .is_some_and(|stored| stored.version != current.version);
                    if rotated_by_peer && attempt == 1 {
                        tracing::info!(key = %key, "refresh token refused, but a peer stored a new grant");
                        continue;
                    }
                    self.delete_grant(key, current.version).await;
                    self.forget(key);
                    tracing::warn!(key = %key, "refresh token refused (invalid_grant); grant deleted");
                    return Err(Error::reauthorize(
                        "the provider refused the refresh token (invalid_grant)",
                    ));
                }
                Err(err) => {
                    if matches!(trigger, Trigger::Due) && !current.value.is_expired(now) {
                        tracing::warn!(key = %key, error = %err, "refresh failed; serving the current token until it expires");
                        return Ok(self.remember_with_backoff(key, current));
                    }
                    tracing::warn!(key = %key, error = %err, "refresh failed");
                    return Err(err);
                }
            }
        }
        Err(Error::reauthorize(
            "the provider refused the refresh tokens of this grant",
        ))
    }

    /// The provider's refresh, under a safety net over its own timeout. When the net fires
    /// the outcome is unknown, and the refresh is not replayed.
    async fn call_refresh(&self, tokens: &TokenSet) -> Result<TokenSet> {
        let limit = self.provider.request_timeout() * 2;
        tokio::time::timeout(limit, self.provider.refresh(tokens))
            .await
            .unwrap_or_else(|_| {
                Err(Error::Timeout {
                    what: "refresh at the provider".to_owned(),
                })
            })
    }

    /// Writes a refreshed token set with the version precondition. The provider has already
    /// committed it, so it is never dropped: a write that fails is kept in memory and
    /// retried by the next job.
    async fn persist(&self, key: &TokenKey, tokens: TokenSet, base: Version) -> Arc<TokenSet> {
        let tokens = Arc::new(tokens);
        let mut delay = Duration::from_millis(50);
        for attempt in 0..4 {
            match self
                .store
                .put(key, &tokens, Precondition::Version(base))
                .await
            {
                Ok(version) => return self.remember(key, tokens, version, None),
                Err(Error::Conflict { .. }) => {
                    // Someone wrote despite our lease (it expired under a stalled process).
                    // Prefer what they stored when it is usable; ours still works meanwhile.
                    tracing::warn!(key = %key, "the grant changed during the refresh");
                    if let Ok(Some(stored)) = self.store.get(key).await
                        && !stored.value.is_expired(self.clock.now())
                    {
                        return self.remember(key, Arc::new(stored.value), stored.version, None);
                    }
                    return self.remember(key, tokens, base, None);
                }
                Err(err) if err.is_retryable() && attempt < 3 => {
                    tracing::warn!(key = %key, error = %err, "saving the refreshed token failed; retrying");
                    tokio::time::sleep(delay).await;
                    delay *= 2;
                }
                Err(err) => {
                    tracing::error!(key = %key, error = %err, "saving the refreshed token failed; keeping it in memory");
                    break;
                }
            }
        }
        self.remember(key, tokens, base, Some(base))
    }

    /// Retries the write of a refreshed token the store refused earlier. Returns the token
    /// when it is still the one to serve.
    async fn save_unsaved(&self, key: &TokenKey) -> Option<Arc<TokenSet>> {
        let entry = self.cached(key)?;
        let base = entry.unsaved_base?;
        match self
            .store
            .put(key, &entry.tokens, Precondition::Version(base))
            .await
        {
            Ok(version) => {
                tracing::info!(key = %key, "saved the refreshed token kept in memory");
                let tokens = self.remember(key, entry.tokens.clone(), version, None);
                let now = self.clock.now();
                self.refresh_at(&tokens, version)
                    .is_none_or(|at| now < at)
                    .then_some(tokens)
            }
            Err(Error::Conflict { .. }) => {
                // Another writer replaced the grant; theirs wins.
                self.forget(key);
                None
            }
            Err(err) => {
                tracing::warn!(key = %key, error = %err, "the store still refuses the refreshed token");
                let tokens = self.remember(key, entry.tokens.clone(), base, Some(base));
                (!tokens.is_expired(self.clock.now())).then_some(tokens)
            }
        }
    }
}
