//! `TokenManager`: composes a provider and a store into what users call every request.

use crate::clock::{Clock, SystemClock};
use crate::contract::{Provider, Revocation, TokenStore};
use crate::device::DeviceAuthorization;
use crate::error::{CallbackError, Error, Result};
use crate::flow::redirect::{Callback, RedirectFlow};
use crate::flow::{self, ClientCredentialsFlow, Flow, FlowStart, PasswordFlow, Restart};
use crate::key::TokenKey;
use crate::memory::MemoryTokenStore;
use crate::pending::PendingAuthorization;
use crate::provider::{Grant, Renewal};
use crate::secret::{AccessToken, Password, SecretUrl, StateHash, StateToken};
use crate::store::{KeyFilter, Lease, Precondition, Version, Versioned};
use crate::token::TokenSet;
use futures::FutureExt as _;
use futures::future::{BoxFuture, Shared};
use std::collections::HashMap;
use std::fmt;
use std::hash::{Hash as _, Hasher as _};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, RwLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tracing::Instrument as _;

/// Tuning of a [`TokenManager`]. The defaults suit most services; each setter stands
/// alone.
///
/// ```
/// use grantkit_core::ManagerConfig;
/// use std::time::Duration;
///
/// let config = ManagerConfig::default().with_refresh_margin(Duration::from_secs(300));
/// ```
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct ManagerConfig {
    /// Refresh this long before the access token expires (default one minute).
    pub refresh_margin: Duration,
    /// Up to this much more, spread over keys, so tokens issued together are not all
    /// refreshed in the same second (default 30 s).
    pub refresh_jitter: Duration,
    /// A cached token is re-read from the store after this long, so a deletion or a
    /// refresh by another process is seen even for tokens that never expire (default
    /// 30 s).
    pub max_cache_age: Duration,
    /// The TTL of the cross-process refresh lease; it is renewed while the refresh runs and
    /// must exceed the provider's request timeout. `None` (the default): twice that
    /// timeout, at least ten seconds.
    pub lease_ttl: Option<Duration>,
    /// How long to wait for a peer that holds the lease before giving up. `None` (the
    /// default): twice the lease TTL plus five seconds, so a dead holder's lease expires
    /// within the wait.
    pub lease_wait: Option<Duration>,
    /// After a refresh fails while the current token is still valid, try again after this
    /// (default five seconds).
    pub retry_backoff: Duration,
}

impl Default for ManagerConfig {
    fn default() -> Self {
        Self {
            refresh_margin: Duration::from_secs(60),
            refresh_jitter: Duration::from_secs(30),
            max_cache_age: Duration::from_secs(30),
            lease_ttl: None,
            lease_wait: None,
            retry_backoff: Duration::from_secs(5),
        }
    }
}

impl ManagerConfig {
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
    /// Sets `lease_ttl`.
    pub fn with_lease_ttl(mut self, ttl: Duration) -> Self {
        self.lease_ttl = Some(ttl);
        self
    }
    /// Sets `lease_wait`.
    pub fn with_lease_wait(mut self, wait: Duration) -> Self {
        self.lease_wait = Some(wait);
        self
    }
    /// Sets `retry_backoff`.
    pub fn with_retry_backoff(mut self, backoff: Duration) -> Self {
        self.retry_backoff = backoff;
        self
    }

    /// The configuration with its defaults resolved for a provider whose calls time out
    /// after `request_timeout`.
    fn resolve(&self, request_timeout: Duration) -> Timing {
        let lease_ttl = self
            .lease_ttl
            .unwrap_or_else(|| (request_timeout * 2).max(Duration::from_secs(10)));
        Timing {
            refresh_margin: self.refresh_margin,
            refresh_jitter: self.refresh_jitter,
            max_cache_age: self.max_cache_age,
            lease_ttl,
            lease_wait: self
                .lease_wait
                .unwrap_or(lease_ttl * 2 + Duration::from_secs(5)),
            retry_backoff: self.retry_backoff,
        }
    }
}

/// A [`ManagerConfig`] with every default resolved.
#[derive(Clone, Copy, Debug)]
struct Timing {
    refresh_margin: Duration,
    refresh_jitter: Duration,
    max_cache_age: Duration,
    lease_ttl: Duration,
    lease_wait: Duration,
    retry_backoff: Duration,
}

/// Where pending authorizations wait for their callback: in the store, so a callback may
/// land on any instance; or, for a store that keeps none, in this process.
enum Pending {
    Store(Arc<dyn TokenStore>),
    Local(MemoryTokenStore),
}

impl Pending {
    async fn put(&self, pending: &PendingAuthorization, ttl: Duration) -> Result<()> {
        match self {
            Self::Store(store) => store.put_pending(pending, ttl).await,
            Self::Local(memory) => memory.put_pending(pending, ttl).await,
        }
    }

    async fn take(&self, state_hash: &StateHash) -> Result<Option<PendingAuthorization>> {
        match self {
            Self::Store(store) => store.take_pending(state_hash).await,
            Self::Local(memory) => memory.take_pending(state_hash).await,
        }
    }
}

/// The cache is swept of expired entries once it holds this many.
const SWEEP_MIN: usize = 1024;

/// How many keys [`TokenManager::warm`] reads from the store at a time.
const WARM_BATCH: usize = 4096;

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
        let config = self.config.resolve(timeout);
        if config.lease_ttl <= timeout {
            return Err(Error::configuration(format!(
                "the lease TTL ({:?}) must exceed the provider's request timeout ({timeout:?}), \
                 or a slow refresh could outlive its lease",
                config.lease_ttl
            )));
        }
        if config.lease_wait < config.lease_ttl {
            return Err(Error::configuration(
                "lease_wait must be at least lease_ttl, or a dead holder's lease never expires in time",
            ));
        }
        let pending = if self.store.capabilities().pending_authorizations {
            Pending::Store(self.store.clone())
        } else {
            Pending::Local(MemoryTokenStore::new())
        };
        Ok(TokenManager {
            inner: Arc::new(Inner {
                provider: self.provider,
                store: self.store,
                pending,
                clock: self.clock,
                config,
                cache: RwLock::new(HashMap::new()),
                sweep_at: AtomicUsize::new(SWEEP_MIN),
                jobs: Mutex::new(HashMap::new()),
                next_job: AtomicU64::new(0),
            }),
        })
    }
}

/// What [`TokenManager::logout`] did, at the provider and locally.
#[derive(Debug)]
#[non_exhaustive]
pub enum Logout {
    /// The provider revoked the grant, expired its access token, or cannot revoke (as
    /// `remote` says); the local copy was deleted.
    Deleted {
        /// What happened at the provider.
        remote: Revocation,
    },
    /// Nothing was stored for the key.
    NotStored,
    /// Revoking failed, so the local copy is kept — no longer served, marked for
    /// revocation — to be revoked by the next [`logout`](TokenManager::logout) or
    /// [`finish_logouts`](TokenManager::finish_logouts), or deleted unrevoked by
    /// [`force_logout`](TokenManager::force_logout). Deleting it now would leave a live
    /// grant at the provider with no means to revoke it.
    RevocationPending {
        /// Why revoking failed.
        error: Error,
    },
    /// Forced: revoking failed and the local copy was deleted anyway. The grant may stay
    /// live at the provider until its tokens expire.
    DeletedUnrevoked {
        /// Why revoking failed.
        error: Error,
    },
}

impl Logout {
    /// Whether the grant is gone locally (deleted, or never stored).
    pub fn is_complete(&self) -> bool {
        !matches!(self, Self::RevocationPending { .. })
    }
}

impl fmt::Display for Logout {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Deleted {
                remote: Revocation::Revoked,
            } => f.write_str("revoked at the provider and deleted locally"),
            Self::Deleted {
                remote: Revocation::AccessExpired,
            } => f.write_str(
                "access token expired at the provider (the refresh token survives there) and \
                 deleted locally",
            ),
            Self::Deleted {
                remote: Revocation::NotSupported,
            } => f.write_str("deleted locally (the provider cannot revoke it)"),
            Self::NotStored => f.write_str("nothing was stored"),
            Self::RevocationPending { error } => write!(
                f,
                "revoking failed ({error}); kept locally, unused, until a later logout revokes it"
            ),
            Self::DeletedUnrevoked { error } => write!(
                f,
                "revoking failed ({error}); deleted locally anyway, the grant may stay live at \
                 the provider"
            ),
        }
    }
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

/// The key of the extra the manager sets on a grant whose last refresh has an unknown
/// outcome at a provider that rotates refresh tokens. Keys starting with `grantkit.` are
/// the manager's; providers never use them.
pub const REFRESH_OUTCOME_UNKNOWN: &str = "grantkit.refresh_outcome_unknown";

/// The key of the extra the manager sets on a grant that was logged out but could not be
/// revoked: it is no longer served, and the next logout tries to revoke it again.
pub const REVOCATION_PENDING: &str = "grantkit.revocation_pending";

struct Inner {
    provider: Arc<dyn Provider>,
    store: Arc<dyn TokenStore>,
    pending: Pending,
    clock: Arc<dyn Clock>,
    config: Timing,
    cache: RwLock<HashMap<TokenKey, Entry>>,
    /// When the cache holds this many entries, expired ones are swept out.
    sweep_at: AtomicUsize,
    jobs: Mutex<HashMap<TokenKey, RunningJob>>,
    next_job: AtomicU64,
}

struct RunningJob {
    id: u64,
    job: Job,
}

/// A cached token set and when to look at it again. One per cached grant, so kept small
/// (32 bytes): times as nanoseconds since the epoch, the rare unsaved version boxed.
#[derive(Clone)]
struct Entry {
    tokens: Arc<TokenSet>,
    /// Refresh from here on (in the background until the token expires); `u64::MAX`:
    /// never.
    refresh_at: u64,
    /// Re-read the store from here on.
    reload_at: u64,
    /// A refreshed token set the store has not taken yet: the version it must replace.
    unsaved_base: Option<Box<Version>>,
}

/// A time as nanoseconds since the epoch, exact until the year 2554 and `u64::MAX` after.
fn nanos(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

impl Entry {
    fn new(
        tokens: Arc<TokenSet>,
        refresh_at: Option<SystemTime>,
        reload_at: SystemTime,
        unsaved_base: Option<Version>,
    ) -> Self {
        Self {
            tokens,
            refresh_at: refresh_at.map_or(u64::MAX, nanos),
            reload_at: nanos(reload_at),
            unsaved_base: unsaved_base.map(Box::new),
        }
    }

    /// Whether the store need not be read again at `now`.
    fn is_fresh(&self, now: SystemTime) -> bool {
        nanos(now) < self.reload_at
    }

    /// Whether a refresh is due at `now`.
    fn is_due(&self, now: SystemTime) -> bool {
        nanos(now) >= self.refresh_at
    }

    fn unsaved_base(&self) -> Option<Version> {
        self.unsaved_base.as_deref().copied()
    }

    /// Whether what the store holds may replace this entry: it is old, and it is not a
    /// refreshed token the store has yet to take (its refresh token may be the only live
    /// one).
    fn replaceable_by_store(&self, now: SystemTime) -> bool {
        !self.is_fresh(now) && self.unsaved_base.is_none()
    }
}

/// Why a job runs.
#[derive(Clone)]
enum Trigger {
    /// The cached token is missing, old, or due for refresh.
    Due,
    /// The API refused this token: as expired, or (`invalid`) as no longer valid.
    Rejected { token: Issued, invalid: bool },
    /// The caller asked for a refresh of this token.
    Forced { token: Issued },
}

/// Which issue of a token a trigger is about: the token and when it was obtained. A refresh
/// always makes a new issue, even when a server re-issues the very same access token (some
/// sign identical tokens within one second, others return the still-valid token); a write
/// that only marks a grant (see [`REFRESH_OUTCOME_UNKNOWN`]) keeps the issue.
/// Times are compared in whole milliseconds, the precision stores keep.
#[derive(Clone)]
struct Issued {
    access_token: AccessToken,
    obtained_at_ms: Option<u128>,
}

impl Issued {
    fn of(tokens: &TokenSet) -> Self {
        Self {
            access_token: tokens.access_token.clone(),
            obtained_at_ms: millis(tokens.obtained_at),
        }
    }

    fn is(&self, tokens: &TokenSet) -> bool {
        self.obtained_at_ms == millis(tokens.obtained_at)
            && self.access_token == tokens.access_token
    }
}

fn millis(time: Option<SystemTime>) -> Option<u128> {
    time.map(|t| t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis()))
}

/// Removes a job from the map when its task ends, however it ends (a panic included), so
/// a failed job never blocks its key.
struct JobSlot {
    inner: Arc<Inner>,
    key: TokenKey,
    id: u64,
}

impl Drop for JobSlot {
    fn drop(&mut self) {
        let mut jobs = lock(&self.inner.jobs);
        if jobs
            .get(&self.key)
            .is_some_and(|running| running.id == self.id)
        {
            jobs.remove(&self.key);
        }
    }
}

/// A lease held for a refresh: renewed in the background until released. Dropped without
/// `release` (a panic), it still stops renewing and releases in the background.
struct HeldLease {
    store: Arc<dyn TokenStore>,
    lease: Option<Lease>,
    renewer: tokio::task::JoinHandle<()>,
}

impl HeldLease {
    fn hold(store: Arc<dyn TokenStore>, lease: Lease, ttl: Duration) -> Self {
        let renewing = store.clone();
        let renewed = lease.clone();
        let renewer = tokio::spawn(async move {
            loop {
                tokio::time::sleep(ttl / 3).await;
                match renewing.renew_lease(&renewed, ttl).await {
                    Ok(()) => {}
                    Err(err @ Error::LeaseLost { .. }) => {
                        // The refresh goes on; the version precondition protects the record.
                        tracing::warn!(key = %renewed.key, error = %err, "the refresh lease was lost");
                        return;
                    }
                    Err(err) => {
                        tracing::warn!(key = %renewed.key, error = %err, "renewing the refresh lease failed; retrying");
                    }
                }
            }
        });
        Self {
            store,
            lease: Some(lease),
            renewer,
        }
    }

    async fn release(mut self) {
        self.renewer.abort();
        if let Some(lease) = self.lease.take()
            && let Err(err) = self.store.release_lease(&lease).await
        {
            tracing::warn!(key = %lease.key, error = %err, "releasing the refresh lease failed; it will expire");
        }
    }
}

impl Drop for HeldLease {
    fn drop(&mut self) {
        self.renewer.abort();
        if let Some(lease) = self.lease.take()
            && let Ok(runtime) = tokio::runtime::Handle::try_current()
        {
            let store = self.store.clone();
            runtime.spawn(async move {
                let _ = store.release_lease(&lease).await;
            });
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // Every critical section below is a single map operation: a panic elsewhere cannot
    // leave the map half-changed, so a poisoned lock is still sound to use.
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl TokenManager {
    /// A builder with the system clock and the default [`ManagerConfig`].
    pub fn builder(provider: Arc<dyn Provider>, store: Arc<dyn TokenStore>) -> TokenManagerBuilder {
        TokenManagerBuilder {
            provider,
            store,
            clock: Arc::new(SystemClock),
            config: ManagerConfig::default(),
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

    /// Starts a flow through the user's browser: returns the URL to send the user to. The
    /// pending authorization goes into the store, so the callback may land on any instance
    /// of a service; finish with [`complete_authorization`](Self::complete_authorization).
    ///
    /// The URL carries the flow's state: it is a [`SecretUrl`], never logged.
    pub async fn start_authorization(&self, flow: &RedirectFlow) -> Result<SecretUrl> {
        let now = self.inner.clock.now();
        match flow.start(self.inner.provider.as_ref(), now).await? {
            FlowStart::Redirect { url, pending } => {
                let ttl = pending
                    .expires_at
                    .duration_since(now)
                    .unwrap_or(Duration::ZERO);
                self.inner.pending.put(&pending, ttl).await?;
                Ok(url)
            }
            FlowStart::Complete(_) => {
                Err(Error::unsupported("a redirect flow that did not redirect"))
            }
        }
    }

    /// Finishes a flow through the browser: takes the pending authorization named by the
    /// callback's state (once), checks the callback (state, where it arrived, `iss`, error
    /// redirects), exchanges it, identifies the user, and stores the grant. Returns its
    /// key.
    pub async fn complete_authorization(&self, callback: &Callback) -> Result<TokenKey> {
        // The state is where the provider puts it for the flow, which only the pending
        // authorization knows: query or fragment.
        let hashes: Vec<StateHash> = [&callback.query, &callback.fragment]
            .into_iter()
            .filter_map(|params| params.get("state"))
            .map(|state| StateToken::new(state).hash())
            .collect();
        if hashes.is_empty() {
            return Err(Error::callback(CallbackError::MissingParameter("state")));
        }
        let mut pending = None;
        for hash in &hashes {
            pending = self.inner.pending.take(hash).await?;
            if pending.is_some() {
                break;
            }
        }
        let pending = pending.ok_or(Error::callback(CallbackError::UnknownState))?;
        let tokens = flow::finish(
            self.inner.provider.as_ref(),
            pending,
            callback,
            self.inner.clock.now(),
        )
        .await?;
        self.save_grant(tokens).await
    }

    /// Signs a user in with their name and password (the resource-owner password grant;
    /// Joind.in's way in). The password is used once and never stored. Returns the key of
    /// the stored grant.
    pub async fn sign_in_with_password(
        &self,
        username: impl Into<String>,
        password: Password,
    ) -> Result<TokenKey> {
        self.sign_in(&PasswordFlow::new(username, password)).await
    }

    /// Signs the client in as itself (the client-credentials grant), asking for `scopes`.
    /// Returns the key of the stored grant; its tokens are renewed by repeating the grant.
    pub async fn sign_in_with_client_credentials<I, S>(&self, scopes: I) -> Result<TokenKey>
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.sign_in(&ClientCredentialsFlow::new(scopes)).await
    }

    /// Starts the device authorization grant (RFC 8628) for `scopes`: show the user the
    /// returned code and verification URI, then poll with
    /// [`poll_device_authorization`](Self::poll_device_authorization) or wait with
    /// [`complete_device_authorization`](Self::complete_device_authorization).
    pub async fn start_device_authorization<I, S>(&self, scopes: I) -> Result<DeviceAuthorization>
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let scopes: Vec<String> = scopes.into_iter().map(Into::into).collect();
        if !self
            .inner
            .provider
            .capabilities()
            .supports(crate::flow::FlowKind::DeviceCode)
        {
            return Err(Error::unsupported(format!(
                "{} offers no device authorization grant",
                self.inner.provider.id()
            )));
        }
        let mut device = self
            .inner
            .provider
            .start_device_authorization(&scopes)
            .await?;
        device.scopes = scopes;
        Ok(device)
    }

    /// Asks the provider once whether the user has approved `device`: the key of the
    /// stored grant once approved, `None` while still pending. Call it no more often than
    /// [`device.interval()`](DeviceAuthorization::interval), which this lengthens when the
    /// server asks to slow down (or does not answer).
    ///
    /// Fails with [`Error::OAuth`] `access_denied` when the user refused and
    /// `expired_token` when the codes expired: start again.
    pub async fn poll_device_authorization(
        &self,
        device: &mut DeviceAuthorization,
    ) -> Result<Option<TokenKey>> {
        if self.inner.clock.now() >= device.expires_at() {
            return Err(Error::oauth(
                "expired_token",
                Some("the device code expired before the user approved: start again".into()),
            ));
        }
        let grant = Grant::DeviceCode {
            device_code: device.device_code.clone(),
        };
        match self.inner.provider.exchange(grant).await {
            Ok(mut tokens) => {
                if tokens.scopes.is_empty() {
                    tokens.scopes = device.scopes.clone();
                }
                self.save_grant(tokens).await.map(Some)
            }
            Err(Error::OAuth { code, .. }) if code == "authorization_pending" => Ok(None),
            Err(Error::OAuth { code, .. }) if code == "slow_down" => {
                // RFC 8628 §3.5: five seconds more for this and every later poll.
                device.interval += Duration::from_secs(5);
                Ok(None)
            }
            Err(err) if err.is_retryable() => {
                // §3.5: a client that gets no answer backs off.
                tracing::warn!(error = %err, "polling the device authorization failed; backing off");
                device.interval = (device.interval * 2).min(Duration::from_secs(60));
                Ok(None)
            }
            Err(err) => Err(err),
        }
    }

    /// Polls until the user approves `device` (or refuses, or the codes expire) and returns
    /// the key of the stored grant.
    pub async fn complete_device_authorization(
        &self,
        mut device: DeviceAuthorization,
    ) -> Result<TokenKey> {
        loop {
            tokio::time::sleep(device.interval()).await;
            if let Some(key) = self.poll_device_authorization(&mut device).await? {
                return Ok(key);
            }
        }
    }

    /// Runs a direct flow and stores its grant.
    async fn sign_in(&self, flow: &dyn Flow) -> Result<TokenKey> {
        match flow
            .start(self.inner.provider.as_ref(), self.inner.clock.now())
            .await?
        {
            FlowStart::Complete(tokens) => self.save_grant(tokens).await,
            FlowStart::Redirect { .. } => Err(Error::unsupported(
                "a direct flow that redirected: use start_authorization",
            )),
        }
    }

    /// The key of `account`'s grant with this manager's provider and client: for a service
    /// that remembers its users by account (a session holding `key.account`).
    pub fn key_for(&self, account: impl Into<String>) -> TokenKey {
        TokenKey::new(
            self.inner.provider.id(),
            self.inner.provider.client_id(),
            account,
        )
    }

    /// The accounts signed in with this manager's provider and client, in order.
    pub async fn accounts(&self) -> Result<Vec<TokenKey>> {
        let filter = KeyFilter::provider(self.inner.provider.id())
            .with_client(self.inner.provider.client_id());
        let mut keys = self.inner.store.list(&filter).await?;
        keys.sort();
        Ok(keys)
    }

    /// The one account signed in with this manager's provider and client: what a
    /// single-user program uses on its second run.
    ///
    /// Fails with [`Error::ReauthorizationRequired`] when none is (sign in first), and
    /// [`Error::AmbiguousAccount`] when several are (pick one from
    /// [`accounts`](Self::accounts)).
    pub async fn account(&self) -> Result<TokenKey> {
        let mut accounts = self.accounts().await?;
        match accounts.len() {
            0 => Err(Error::reauthorize(format!(
                "no account is signed in with {} for client {}: sign in first",
                self.inner.provider.id(),
                self.inner.provider.client_id()
            ))),
            1 => Ok(accounts.remove(0)),
            count => Err(Error::AmbiguousAccount { count }),
        }
    }

    /// Identifies the user of a new grant and stores it, replacing any earlier grant of the
    /// same user. Returns the key.
    ///
    /// A grant whose user cannot be identified cannot be stored: it is revoked where the
    /// provider can (a live grant nobody can use or revoke must not stay behind) and the
    /// error is [`Error::Unidentified`].
    pub async fn save_grant(&self, mut tokens: TokenSet) -> Result<TokenKey> {
        tokens.obtained_at.get_or_insert(self.inner.clock.now());
        let account = match self.inner.provider.identify(&tokens).await {
            Ok(account) => crate::key::check_account(&account).map(|()| account),
            Err(err) => Err(err),
        };
        let account = match account {
            Ok(account) => account,
            Err(err) => return Err(self.inner.abandon_unidentified(&tokens, err).await),
        };
        let key = self.key_for(account);
        self.inner.revoke_replaced(&key).await;
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
                Some(entry) if entry.is_fresh(now) => {
                    if !entry.is_due(now) {
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

    /// Loads the grants of `keys` into memory in bulk, so that their first
    /// [`access_token`](Self::access_token) answers without reading the store: what a
    /// service with many grants calls as it starts. Reads through
    /// [`TokenStore::get_many`], a batch at a time.
    ///
    /// Returns how many grants it loaded. Skipped: keys already in memory, keys with no
    /// grant, grants due for refresh (the first `access_token` refreshes them, as ever),
    /// grants logged out, and records that cannot be read (logged). A failure of the store
    /// is an `Err`; what was loaded before it stays loaded.
    ///
    /// ```
    /// # async fn example(manager: grantkit_core::TokenManager) -> grantkit_core::Result<()> {
    /// let keys = manager.accounts().await?;
    /// let loaded = manager.warm(&keys).await?;
    /// println!("{loaded} of {} grants ready", keys.len());
    /// # Ok(()) }
    /// ```
    pub async fn warm(&self, keys: &[TokenKey]) -> Result<usize> {
        let inner = &self.inner;
        let wanted: Vec<TokenKey> = {
            let now = inner.clock.now();
            let cache = inner.cache.read().unwrap_or_else(PoisonError::into_inner);
            keys.iter()
                .filter(|key| {
                    cache
                        .get(*key)
                        .is_none_or(|entry| entry.replaceable_by_store(now))
                })
                .cloned()
                .collect()
        };
        let mut loaded = 0;
        for batch in wanted.chunks(WARM_BATCH) {
            let answers = inner.store.get_many(batch).await?;
            let now = inner.clock.now();
            let ready = batch.iter().zip(answers).filter_map(|(key, answer)| match answer {
                Ok(Some(current))
                    if !revocation_pending(&current.value)
                        && !inner.needs_work(key, &current, &Trigger::Due, now) =>
                {
                    Some((key, current))
                }
                Ok(_) => None,
                Err(err) => {
                    tracing::warn!(key = %key, error = %err, "a grant could not be loaded; it is read again on first use");
                    None
                }
            });
            loaded += inner.cache_new(ready);
        }
        Ok(loaded)
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
        let Some(held) = self.holding(key, rejected).await? else {
            return self.access_token(key).await;
        };
        let trigger = Trigger::Rejected {
            token: Issued::of(&held),
            invalid,
        };
        self.replace(key, trigger).await
    }

    /// Refreshes the token of `key` now, whatever its expiry (one refresh per key at a
    /// time, as always). Tokens that cannot be refreshed give [`Error::Unsupported`].
    pub async fn refresh(&self, key: &TokenKey) -> Result<Arc<TokenSet>> {
        // The token to replace: what this process serves, else what the store holds. No job
        // runs for this read, so a token that was due is not refreshed twice.
        let current = match self.inner.cached(key) {
            Some(entry) => entry.tokens,
            None => Arc::new(
                self.inner
                    .store
                    .get(key)
                    .await?
                    .ok_or_else(|| Error::reauthorize("no grant is stored for this key"))?
                    .value,
            ),
        };
        let trigger = Trigger::Forced {
            token: Issued::of(&current),
        };
        self.replace(key, trigger).await
    }

    /// The current token set of `key` while `token` is its access token, or `None` when
    /// another token has replaced it.
    async fn holding(&self, key: &TokenKey, token: &AccessToken) -> Result<Option<Arc<TokenSet>>> {
        let now = self.inner.clock.now();
        let current = match self.inner.cached(key) {
            Some(entry) if entry.tokens.access_token == *token => return Ok(Some(entry.tokens)),
            Some(entry) if !entry.tokens.is_expired(now) => return Ok(None),
            _ => self.inner.clone().job(key, Trigger::Due).await?,
        };
        Ok((current.access_token == *token).then_some(current))
    }

    /// Runs (or joins) the job that replaces the token `token`. Replaced means a new issue
    /// (see [`Issued`]), not a new string: a server may re-issue the same access token.
    async fn replace(&self, key: &TokenKey, trigger: Trigger) -> Result<Arc<TokenSet>> {
        let (Trigger::Rejected { token, .. } | Trigger::Forced { token }) = &trigger else {
            return self.inner.clone().job(key, trigger).await;
        };
        // A job joined may have been started for another reason (a due refresh) and may
        // return the very token to replace; then ours runs after it.
        for _ in 0..3 {
            let tokens = self.inner.clone().job(key, trigger.clone()).await?;
            if !token.is(&tokens) {
                return Ok(tokens);
            }
        }
        Err(Error::Timeout {
            what: "replacing a refused token while other refreshes kept running".to_owned(),
        })
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
        let renewed = match self
            .inner
            .provider
            .complete_renewal(&current.value, callback, self.inner.clock.now())
            .await
        {
            Ok(renewed) => renewed,
            Err(err) if err.is_reauthorization_required() => {
                // The renewal did not bring the token back: the grant is dead.
                self.inner.delete_grant(key, current.version).await;
                self.inner.forget(key);
                return Err(Error::grant_ended(
                    format!("the renewal did not revive the token: {err}"),
                    Restart::of(key, &current.value),
                ));
            }
            Err(err) => return Err(err),
        };
        let version = self
            .inner
            .store
            .put(key, &renewed, Precondition::Version(current.version))
            .await?;
        Ok(self.inner.remember(key, Arc::new(renewed), version, None))
    }

    /// Logs out: revokes the grant (or expires the access token) where the provider can,
    /// then deletes the local copy, and says which happened.
    ///
    /// When revoking fails (the provider is down, a timeout), the local copy is kept,
    /// marked and no longer served ([`Logout::RevocationPending`]): call `logout` again,
    /// or [`finish_logouts`](Self::finish_logouts) at start-up, to revoke it; or
    /// [`force_logout`](Self::force_logout) to delete it unrevoked.
    pub async fn logout(&self, key: &TokenKey) -> Result<Logout> {
        self.end_grant(key, false).await
    }

    /// Logs out like [`logout`](Self::logout), but deletes the local copy even when
    /// revoking fails ([`Logout::DeletedUnrevoked`]).
    pub async fn force_logout(&self, key: &TokenKey) -> Result<Logout> {
        self.end_grant(key, true).await
    }

    /// Tries again to revoke every grant of this provider and client whose logout is
    /// pending (see [`Logout::RevocationPending`]); returns what became of each.
    pub async fn finish_logouts(&self) -> Result<Vec<(TokenKey, Logout)>> {
        let filter = KeyFilter::provider(self.inner.provider.id())
            .with_client(self.inner.provider.client_id());
        let mut finished = Vec::new();
        for key in self.inner.store.list(&filter).await? {
            let pending = self
                .inner
                .store
                .get(&key)
                .await?
                .is_some_and(|stored| revocation_pending(&stored.value));
            if pending {
                let logout = self.end_grant(&key, false).await?;
                finished.push((key, logout));
            }
        }
        Ok(finished)
    }

    async fn end_grant(&self, key: &TokenKey, force: bool) -> Result<Logout> {
        self.inner.forget(key);
        // A grant refreshed meanwhile is revoked afresh: at most a few rounds.
        for _ in 0..3 {
            let Some(current) = self.inner.store.get(key).await? else {
                return Ok(Logout::NotStored);
            };
            let error = match self.inner.provider.revoke(&current.value).await {
                Ok(remote) => {
                    self.inner.store.delete(key, Precondition::Any).await?;
                    self.inner.forget(key);
                    tracing::info!(key = %key, ?remote, "logged out");
                    return Ok(Logout::Deleted { remote });
                }
                Err(error) => error,
            };
            if force {
                tracing::warn!(key = %key, error = %error, "revocation failed; deleting the local copy as forced");
                self.inner.store.delete(key, Precondition::Any).await?;
                self.inner.forget(key);
                return Ok(Logout::DeletedUnrevoked { error });
            }
            if revocation_pending(&current.value) {
                return Ok(Logout::RevocationPending { error });
            }
            let mut marked = current.value.clone();
            marked
                .extras
                .insert(REVOCATION_PENDING.to_owned(), "1".to_owned());
            match self
                .inner
                .store
                .put(key, &marked, Precondition::Version(current.version))
                .await
            {
                Ok(_) => {
                    self.inner.forget(key);
                    tracing::warn!(key = %key, error = %error, "revocation failed; the grant is kept, unused, until a later logout revokes it");
                    return Ok(Logout::RevocationPending { error });
                }
                // Refreshed or replaced meanwhile: revoke what is stored now.
                Err(Error::Conflict { .. }) => {}
                Err(err) => return Err(err),
            }
        }
        Err(Error::Timeout {
            what: format!("logging out {key} while the grant kept changing"),
        })
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

/// A jitter in `0..=max` derived from the key and the version, so the same record always
/// gets the same refresh time and records written together spread out.
fn jitter(key: &TokenKey, version: Version, max: Duration) -> Duration {
    let max_ms = u64::try_from(max.as_millis()).unwrap_or(u64::MAX);
    if max_ms == 0 {
        return Duration::ZERO;
    }
    // SipHash with fixed keys: the same in every process.
    let mut hasher = std::hash::DefaultHasher::new();
    (key, version.as_u64()).hash(&mut hasher);
    Duration::from_millis(hasher.finish() % (max_ms + 1))
}

fn outcome_unknown_marked(tokens: &TokenSet) -> bool {
    tokens.extras.contains_key(REFRESH_OUTCOME_UNKNOWN)
}

fn revocation_pending(tokens: &TokenSet) -> bool {
    tokens.extras.contains_key(REVOCATION_PENDING)
}

fn logged_out() -> Error {
    Error::reauthorize("the grant was logged out (its revocation at the provider is pending)")
}

impl Inner {
    /// Revokes a grant whose user could not be identified, and says so in the error.
    async fn abandon_unidentified(&self, tokens: &TokenSet, err: Error) -> Error {
        let revocation = match self.provider.revoke(tokens).await {
            Ok(Revocation::Revoked) => "the grant was revoked at the provider".to_owned(),
            Ok(Revocation::AccessExpired) => {
                "its access token was expired at the provider".to_owned()
            }
            Ok(Revocation::NotSupported) => {
                "the provider cannot revoke it; it ends when its tokens expire".to_owned()
            }
            Err(revoke) => format!("revoking it failed too: {revoke}"),
        };
        tracing::warn!(error = %err, revocation, "the user of a new grant could not be identified");
        Error::Unidentified {
            reason: err.to_string(),
            revocation,
        }
    }

    /// Before a new grant replaces the stored one of the same user: a grant whose logout
    /// is still pending is revoked first, or it would be lost unrevoked.
    async fn revoke_replaced(&self, key: &TokenKey) {
        let Ok(Some(stored)) = self.store.get(key).await else {
            return;
        };
        if revocation_pending(&stored.value)
            && let Err(err) = self.provider.revoke(&stored.value).await
        {
            tracing::warn!(key = %key, error = %err, "a grant logged out earlier could still not be revoked; it is replaced unrevoked");
        }
    }

    fn cached(&self, key: &TokenKey) -> Option<Entry> {
        self.cache
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(key)
            .cloned()
    }

    fn forget(&self, key: &TokenKey) {
        self.cache
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(key);
    }

    /// When to refresh: `refresh_margin` plus jitter before expiry, but no earlier than
    /// half-way through the token's lifetime, so tokens that live shorter than the margin
    /// are not refreshed without end.
    fn refresh_at(
        &self,
        key: &TokenKey,
        tokens: &TokenSet,
        version: Version,
    ) -> Option<SystemTime> {
        let expires_at = tokens.expires_at?;
        let mut lead =
            self.config.refresh_margin + jitter(key, version, self.config.refresh_jitter);
        if let Some(lifetime) = tokens
            .obtained_at
            .and_then(|at| expires_at.duration_since(at).ok())
        {
            lead = lead.min(lifetime / 2);
        }
        Some(expires_at.checked_sub(lead).unwrap_or(UNIX_EPOCH))
    }

    /// Whether `current` must be refreshed (or renewed) for `trigger`.
    fn needs_work(
        &self,
        key: &TokenKey,
        current: &Versioned<TokenSet>,
        trigger: &Trigger,
        now: SystemTime,
    ) -> bool {
        match trigger {
            Trigger::Due => self
                .refresh_at(key, &current.value, current.version)
                .is_some_and(|at| now >= at),
            Trigger::Rejected { token, .. } | Trigger::Forced { token } => token.is(&current.value),
        }
    }

    fn remember(
        &self,
        key: &TokenKey,
        tokens: Arc<TokenSet>,
        version: Version,
        unsaved_base: Option<Version>,
    ) -> Arc<TokenSet> {
        let refresh_at = self.refresh_at(key, &tokens, version);
        self.cache_entry(key, tokens, refresh_at, unsaved_base)
    }

    /// Caches a token that will not be refreshed ahead of expiry: look at it again only once
    /// it has expired.
    fn remember_until_expiry(
        &self,
        key: &TokenKey,
        current: &Versioned<TokenSet>,
    ) -> Arc<TokenSet> {
        let tokens = Arc::new(current.value.clone());
        let refresh_at = tokens.expires_at;
        self.cache_entry(key, tokens, refresh_at, None)
    }

    /// Keeps serving a still-valid token after a failed refresh, and tries again later.
    fn remember_with_backoff(
        &self,
        key: &TokenKey,
        tokens: Arc<TokenSet>,
        unsaved_base: Option<Version>,
    ) -> Arc<TokenSet> {
        let retry_at = self.clock.now() + self.config.retry_backoff;
        let refresh_at = Some(tokens.expires_at.map_or(retry_at, |at| at.min(retry_at)));
        self.cache_entry(key, tokens, refresh_at, unsaved_base)
    }

    /// Caches grants read in bulk, under one lock, each only where the cache holds nothing
    /// fresher (a job may have cached a newer token since the read) and nothing unsaved.
    /// Returns how many.
    fn cache_new<'k>(
        &self,
        grants: impl Iterator<Item = (&'k TokenKey, Versioned<TokenSet>)>,
    ) -> usize {
        let now = self.clock.now();
        let reload_at = now + self.config.max_cache_age;
        let mut cache = self.cache.write().unwrap_or_else(PoisonError::into_inner);
        let mut added = 0;
        for (key, current) in grants {
            if cache
                .get(key)
                .is_some_and(|entry| !entry.replaceable_by_store(now))
            {
                continue;
            }
            let refresh_at = self.refresh_at(key, &current.value, current.version);
            cache.insert(
                key.clone(),
                Entry::new(Arc::new(current.value), refresh_at, reload_at, None),
            );
            added += 1;
        }
        // The next single insert sweeps when the cache has doubled again.
        self.sweep_at
            .fetch_max((cache.len() * 2).max(SWEEP_MIN), Ordering::Relaxed);
        added
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
        let entry = Entry::new(tokens.clone(), refresh_at, now + reload_after, unsaved_base);
        let mut cache = self.cache.write().unwrap_or_else(PoisonError::into_inner);
        cache.insert(key.clone(), entry);
        if cache.len() >= self.sweep_at.load(Ordering::Relaxed) {
            // Expired grants of users gone quiet would otherwise stay in memory for good.
            cache.retain(|_, e| !e.tokens.is_expired(now) || e.unsaved_base.is_some());
            self.sweep_at
                .store((cache.len() * 2).max(SWEEP_MIN), Ordering::Relaxed);
        }
        tokens
    }

    /// Joins the job running for `key`, or starts one in a spawned task that outlives
    /// every caller.
    fn job(self: Arc<Self>, key: &TokenKey, trigger: Trigger) -> Job {
        let mut jobs = lock(&self.jobs);
        if let Some(running) = jobs.get(key) {
            return running.job.clone();
        }
        let id = self.next_job.fetch_add(1, Ordering::Relaxed);
        let inner = self.clone();
        let job_key = key.clone();
        let span = tracing::info_span!("grantkit.ensure_token", key = %key);
        let handle = tokio::spawn(
            async move {
                // Dropped last: by then the cache is updated, so a caller arriving after the
                // job leaves the map finds the new token instead of starting another job.
                let _slot = JobSlot {
                    inner: inner.clone(),
                    key: job_key.clone(),
                    id,
                };
                let due = matches!(trigger, Trigger::Due);
                let result = inner.run_job(&job_key, trigger).await;
                if due && result.is_err() {
                    inner.back_off(&job_key);
                }
                result
            }
            .instrument(span),
        );
        let job = async move {
            handle.await.unwrap_or_else(|_| {
                Err(Error::Internal {
                    what: "the token refresh task".to_owned(),
                })
            })
        }
        .boxed()
        .shared();
        jobs.insert(
            key.clone(),
            RunningJob {
                id,
                job: job.clone(),
            },
        );
        job
    }

    /// After a failed background job, keeps serving a cached token that is still valid and
    /// tries again only after the backoff.
    fn back_off(&self, key: &TokenKey) {
        if let Some(entry) = self.cached(key)
            && !entry.tokens.is_expired(self.clock.now())
        {
            let unsaved_base = entry.unsaved_base();
            self.remember_with_backoff(key, entry.tokens, unsaved_base);
        }
    }

    /// The grant to work from: a refreshed set the store has not taken yet (offered to the
    /// store once more first), else what the store holds.
    async fn current(&self, key: &TokenKey) -> Result<Option<Versioned<TokenSet>>> {
        if let Some(entry) = self.cached(key)
            && let Some(base) = entry.unsaved_base()
        {
            match self
                .store
                .put(key, &entry.tokens, Precondition::Version(base))
                .await
            {
                Ok(version) => {
                    tracing::info!(key = %key, "saved the refreshed token kept in memory");
                    self.remember(key, entry.tokens.clone(), version, None);
                    return Ok(Some(Versioned {
                        value: (*entry.tokens).clone(),
                        version,
                    }));
                }
                Err(Error::Conflict { .. }) => {
                    // Another writer replaced the grant; theirs wins.
                    self.forget(key);
                }
                Err(err) => {
                    // Still unsaved: work from it (its refresh token is the live one).
                    tracing::warn!(key = %key, error = %err, "the store still refuses the refreshed token");
                    return Ok(Some(Versioned {
                        value: (*entry.tokens).clone(),
                        version: base,
                    }));
                }
            }
        }
        let stored = self.store.get(key).await?;
        if stored
            .as_ref()
            .is_some_and(|stored| revocation_pending(&stored.value))
        {
            self.forget(key);
            return Err(logged_out());
        }
        Ok(stored)
    }

    async fn run_job(&self, key: &TokenKey, trigger: Trigger) -> Result<Arc<TokenSet>> {
        let Some(current) = self.current(key).await? else {
            self.forget(key);
            return Err(Error::reauthorize("no grant is stored for this key"));
        };
        let now = self.clock.now();
        if !self.needs_work(key, &current, &trigger, now) {
            return Ok(self.remember_current(key, current));
        }
        if let Some(outcome) = self.without_refresh(key, &current, &trigger, now).await {
            return outcome;
        }
        if !self.store.capabilities().leases {
            // Only this process's tasks to coordinate, and the job map already does.
            return self.refresh_holding_lease(key, &trigger).await;
        }
        let lease = match self.acquire_lease(key, &current, &trigger).await? {
            Ok(lease) => HeldLease::hold(self.store.clone(), lease, self.config.lease_ttl),
            Err(done) => return Ok(done),
        };
        let result = self.refresh_holding_lease(key, &trigger).await;
        lease.release().await;
        result
    }

    /// Caches what [`current`](Self::current) returned, unsaved or not.
    fn remember_current(&self, key: &TokenKey, current: Versioned<TokenSet>) -> Arc<TokenSet> {
        let unsaved = self
            .cached(key)
            .and_then(|entry| entry.unsaved_base())
            .filter(|base| *base == current.version);
        self.remember(key, Arc::new(current.value), current.version, unsaved)
    }

    /// The outcome for a token that must not be refreshed, or `None` to refresh it.
    async fn without_refresh(
        &self,
        key: &TokenKey,
        current: &Versioned<TokenSet>,
        trigger: &Trigger,
        now: SystemTime,
    ) -> Option<Result<Arc<TokenSet>>> {
        let forced = matches!(trigger, Trigger::Forced { .. });
        let renewal = self.provider.renewal(&current.value);
        if renewal == Renewal::Refresh && (forced || !outcome_unknown_marked(&current.value)) {
            return None;
        }
        match trigger {
            Trigger::Forced { .. } => Some(Err(Error::unsupported(format!(
                "{} cannot refresh this grant's tokens",
                self.provider.id()
            )))),
            // Nothing to do ahead of expiry but serve the token until it expires.
            Trigger::Due if !current.value.is_expired(now) => {
                Some(Ok(self.remember_until_expiry(key, current)))
            }
            _ if renewal == Renewal::Refresh => {
                // The last refresh may have been committed without its answer arriving; with
                // rotating refresh tokens, sending it again could make the provider revoke
                // the whole grant. Never automatically: the caller may still choose to.
                self.forget(key);
                Some(Err(Error::reauthorize(
                    "the last refresh of this grant has an unknown outcome and the provider \
                     rotates refresh tokens: authorize again, or call TokenManager::refresh \
                     to try the refresh token once more",
                )))
            }
            Trigger::Due | Trigger::Rejected { invalid: false, .. } => {
                self.forget(key);
                if let Renewal::Renew(renew_url) = renewal {
                    // Kept: the user's renewal makes this very token valid again.
                    return Some(Err(Error::RenewRequired { renew_url }));
                }
                // Expired, and nothing can renew it: the grant can never be used again.
                // Deleted, unless a peer has replaced it meanwhile.
                self.delete_grant(key, current.version).await;
                Some(Err(Error::grant_ended(
                    "the token has expired and cannot be refreshed: authorize again",
                    Restart::of(key, &current.value),
                )))
            }
            Trigger::Rejected { invalid: true, .. } => {
                // The provider refused the token as invalid: the grant is gone. Delete it,
                // unless a peer has replaced it meanwhile.
                self.delete_grant(key, current.version).await;
                self.forget(key);
                Some(Err(Error::grant_ended(
                    "the provider refused the token and it cannot be refreshed",
                    Restart::of(key, &current.value),
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
                Some(stored) if revocation_pending(&stored.value) => {
                    self.forget(key);
                    return Err(logged_out());
                }
                Some(stored)
                    if stored.version != current.version
                        && !self.needs_work(key, &stored, trigger, self.clock.now()) =>
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

    async fn refresh_holding_lease(
        &self,
        key: &TokenKey,
        trigger: &Trigger,
    ) -> Result<Arc<TokenSet>> {
        // At most two refreshes: a second only when the first refresh token was refused
        // because a peer had rotated it, and the peer's grant needs refreshing too.
        for attempt in 1..=2 {
            // Re-read under the lease: a peer may have refreshed since our last read.
            let Some(current) = self.current(key).await? else {
                self.forget(key);
                return Err(Error::reauthorize("the grant was deleted"));
            };
            let now = self.clock.now();
            if !self.needs_work(key, &current, trigger, now) {
                return Ok(self.remember_current(key, current));
            }
            if let Some(outcome) = self.without_refresh(key, &current, trigger, now).await {
                return outcome;
            }
            let err = match self.call_refresh(&current.value).await {
                Ok(mut tokens) => {
                    tokens.obtained_at.get_or_insert(now);
                    if tokens.refresh_token.is_none() {
                        // RFC 6749 §6: without a new refresh token the old one stays valid.
                        tokens.refresh_token = current.value.refresh_token.clone();
                        tokens.refresh_expires_at = tokens
                            .refresh_expires_at
                            .or(current.value.refresh_expires_at);
                    }
                    tracing::info!(key = %key, "token refreshed");
                    return self.persist(key, tokens, current.version).await;
                }
                Err(err) => err,
            };
            if err.is_invalid_grant() {
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
                return Err(Error::grant_ended(
                    "the provider refused the refresh token (invalid_grant)",
                    Restart::of(key, &current.value),
                ));
            }
            let unknown =
                err.is_outcome_unknown() && self.provider.capabilities().may_rotate_refresh_tokens;
            let current = if unknown {
                tracing::warn!(key = %key, error = %err, "the refresh's outcome is unknown and the provider rotates refresh tokens: it will not be sent again automatically");
                self.mark_outcome_unknown(key, current).await
            } else {
                current
            };
            if matches!(trigger, Trigger::Due) && !current.value.is_expired(now) {
                tracing::warn!(key = %key, error = %err, "refresh failed; serving the current token until it expires");
                return Ok(if unknown {
                    self.remember_until_expiry(key, &current)
                } else {
                    self.remember_with_backoff(key, Arc::new(current.value), None)
                });
            }
            tracing::warn!(key = %key, error = %err, "refresh failed");
            return Err(err);
        }
        Err(Error::reauthorize(
            "the provider refused the refresh tokens of this grant",
        ))
    }

    /// Records, in the store when it can (so no other process replays the refresh
    /// either), that the grant's last refresh has an unknown outcome.
    async fn mark_outcome_unknown(
        &self,
        key: &TokenKey,
        current: Versioned<TokenSet>,
    ) -> Versioned<TokenSet> {
        let mut marked = current.value.clone();
        marked
            .extras
            .insert(REFRESH_OUTCOME_UNKNOWN.to_owned(), "1".to_owned());
        match self
            .store
            .put(key, &marked, Precondition::Version(current.version))
            .await
        {
            Ok(version) => Versioned {
                value: marked,
                version,
            },
            Err(err) => {
                tracing::warn!(key = %key, error = %err, "could not record the unknown refresh outcome in the store");
                Versioned {
                    value: marked,
                    version: current.version,
                }
            }
        }
    }

    /// The provider's refresh, under a safety net over its own timeout (the lease outlives
    /// both). When the net fires the outcome is unknown.
    async fn call_refresh(&self, tokens: &TokenSet) -> Result<TokenSet> {
        tokio::time::timeout(self.config.lease_ttl, self.provider.refresh(tokens))
            .await
            .unwrap_or_else(|_| {
                Err(Error::Timeout {
                    what: "refresh at the provider".to_owned(),
                })
            })
    }

    /// Writes a refreshed token set with the version precondition. The provider has already
    /// committed it, so it is never dropped: a write that fails is kept in memory and
    /// offered to the store again by the next job.
    async fn persist(
        &self,
        key: &TokenKey,
        tokens: TokenSet,
        base: Version,
    ) -> Result<Arc<TokenSet>> {
        let tokens = Arc::new(tokens);
        let mut base = base;
        let mut delay = Duration::from_millis(50);
        for attempt in 0..4 {
            match self
                .store
                .put(key, &tokens, Precondition::Version(base))
                .await
            {
                Ok(version) => return Ok(self.remember(key, tokens, version, None)),
                Err(Error::Conflict { .. }) => {
                    // Another writer changed the grant during the refresh (a new
                    // authorization, a renewal, a logout, or a peer whose lease had expired).
                    match self.store.get(key).await {
                        Ok(None) => {
                            // Logged out meanwhile: the refreshed tokens are not ours to keep.
                            self.forget(key);
                            return Err(Error::reauthorize(
                                "the grant was deleted during its refresh",
                            ));
                        }
                        Ok(Some(stored)) if !stored.value.is_expired(self.clock.now()) => {
                            tracing::warn!(key = %key, "the grant changed during the refresh; keeping the stored one");
                            return Ok(self.remember(
                                key,
                                Arc::new(stored.value),
                                stored.version,
                                None,
                            ));
                        }
                        Ok(Some(stored)) => {
                            // What they stored is no better than ours: replace it.
                            base = stored.version;
                        }
                        Err(err) => {
                            tracing::warn!(key = %key, error = %err, "the grant changed during the refresh and cannot be read");
                            break;
                        }
                    }
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
        Ok(self.remember(key, tokens, base, Some(base)))
    }
}
