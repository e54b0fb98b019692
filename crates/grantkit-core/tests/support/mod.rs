//! Shared fixtures for the core tests: a `MockProvider` with the provider's defaults, and a
//! provider wrapper that can hold a refresh at a gate or run a hook inside it.
#![allow(dead_code, unreachable_pub)]

use async_trait::async_trait;
use grantkit_core::mock::MockProvider;
use grantkit_core::{
    AccessToken, Callback, GrantKind, ManagerConfig, MemoryTokenStore, Provider, RefreshToken,
    Result, Revocation, TokenKey, TokenManager, TokenSet, TokenStore,
    clock::ManualClock,
    flow::{FlowKind, ParamLocation},
    provider::{ApiResponse, AuthorizationRequest, Capabilities, Grant, Renewal, ResponseClass},
    store::Precondition,
};
use http::HeaderMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, SystemTime};
use tokio::sync::Semaphore;
use url::Url;

pub const PROVIDER: &str = "mock";
pub const CLIENT: &str = "client-1";

pub fn key() -> TokenKey {
    TokenKey::new(PROVIDER, CLIENT, "alice@example.com")
}

pub fn tokens(access: &str, refresh: Option<&str>, expires_at: SystemTime) -> TokenSet {
    let mut tokens = TokenSet::new(AccessToken::new(access), GrantKind::AuthorizationCode);
    tokens.refresh_token = refresh.map(RefreshToken::new);
    tokens.expires_at = Some(expires_at);
    tokens
}

/// A `MockProvider` whose identity, capabilities and default methods behave like the trait's
/// defaults; tests add the expectations they care about (`refresh`, `exchange`, …).
pub fn mock_provider() -> MockProvider {
    mock_provider_with(
        Capabilities::default()
            .with_flows([FlowKind::AuthorizationCode, FlowKind::Implicit])
            .with_refresh(true)
            .with_rotation(true)
            .with_pkce(true),
    )
}

/// [`mock_provider`] with these capabilities.
pub fn mock_provider_with(capabilities: Capabilities) -> MockProvider {
    let mut mock = bare_mock_provider();
    mock.expect_capabilities().return_const(capabilities);
    mock.expect_callback_location()
        .returning(|flow| match flow {
            FlowKind::Implicit => ParamLocation::Fragment,
            _ => ParamLocation::Query,
        });
    mock.expect_issuer().returning(|| None);
    mock.expect_renewal().returning(|tokens: &TokenSet| {
        if tokens.refresh_token.is_some() {
            Renewal::Refresh
        } else {
            Renewal::Reauthorize
        }
    });
    mock.expect_authenticate()
        .returning(|tokens: &TokenSet, headers: &mut HeaderMap| {
            headers.insert(
                http::header::AUTHORIZATION,
                grantkit_core::provider::bearer_header(&tokens.access_token)?,
            );
            Ok(())
        });
    mock.expect_classify()
        .returning(|response: &ApiResponse<'_>| {
            grantkit_core::provider::classify_rfc6750(response)
        });
    mock.expect_refusal()
        .returning(|response: &ApiResponse<'_>| {
            grantkit_core::Error::api(response.status.as_u16(), "refused")
        });
    mock.expect_identify()
        .returning(|_| Ok("alice@example.com".to_owned()));
    mock
}

/// A `MockProvider` with only its identity and timeout.
pub fn bare_mock_provider() -> MockProvider {
    let mut mock = MockProvider::new();
    mock.expect_id().return_const(PROVIDER.to_owned());
    mock.expect_client_id().return_const(CLIENT.to_owned());
    mock.expect_request_timeout()
        .return_const(Duration::from_secs(5));
    mock
}

type Hook =
    Box<dyn Fn() -> Pin<Box<dyn Future<Output = Option<Result<TokenSet>>> + Send>> + Send + Sync>;

/// Wraps a provider: counts refreshes, can hold them at a gate until the test opens it, and
/// can run an async hook inside the refresh (e.g. a peer writing to the store) whose
/// `Some(result)` replaces the inner provider's answer.
pub struct Wrapped {
    pub inner: Box<dyn Provider>,
    pub refreshes: AtomicUsize,
    pub gate: Option<Semaphore>,
    pub hook: Option<Hook>,
}

impl std::fmt::Debug for Wrapped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Wrapped").finish_non_exhaustive()
    }
}

impl Wrapped {
    pub fn new(inner: impl Provider + 'static) -> Self {
        Self {
            inner: Box::new(inner),
            refreshes: AtomicUsize::new(0),
            gate: None,
            hook: None,
        }
    }

    /// Refreshes wait until `open` is called.
    pub fn gated(mut self) -> Self {
        self.gate = Some(Semaphore::new(0));
        self
    }

    pub fn with_hook<F, Fut>(mut self, hook: F) -> Self
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Option<Result<TokenSet>>> + Send + 'static,
    {
        self.hook = Some(Box::new(move || Box::pin(hook())));
        self
    }

    pub fn open(&self) {
        if let Some(gate) = &self.gate {
            gate.add_permits(1_000_000);
        }
    }

    pub fn refresh_count(&self) -> usize {
        self.refreshes.load(Ordering::SeqCst)
    }
}

#[async_trait]
impl Provider for Wrapped {
    fn id(&self) -> &str {
        self.inner.id()
    }
    fn client_id(&self) -> &str {
        self.inner.client_id()
    }
    fn capabilities(&self) -> &Capabilities {
        self.inner.capabilities()
    }
    fn request_timeout(&self) -> Duration {
        self.inner.request_timeout()
    }
    fn callback_location(&self, flow: FlowKind) -> ParamLocation {
        self.inner.callback_location(flow)
    }
    fn issuer(&self) -> Option<grantkit_core::provider::Issuer> {
        self.inner.issuer()
    }
    async fn authorization_url(&self, request: &AuthorizationRequest) -> Result<Url> {
        self.inner.authorization_url(request).await
    }
    async fn exchange(&self, grant: Grant) -> Result<TokenSet> {
        self.inner.exchange(grant).await
    }
    async fn refresh(&self, tokens: &TokenSet) -> Result<TokenSet> {
        self.refreshes.fetch_add(1, Ordering::SeqCst);
        if let Some(gate) = &self.gate {
            gate.acquire().await.expect("gate open").forget();
        }
        if let Some(hook) = &self.hook
            && let Some(result) = hook().await
        {
            return result;
        }
        self.inner.refresh(tokens).await
    }
    async fn identify(&self, tokens: &TokenSet) -> Result<String> {
        self.inner.identify(tokens).await
    }
    async fn revoke(&self, tokens: &TokenSet) -> Result<Revocation> {
        self.inner.revoke(tokens).await
    }
    fn renewal(&self, tokens: &TokenSet) -> Renewal {
        self.inner.renewal(tokens)
    }
    async fn complete_renewal(
        &self,
        tokens: &TokenSet,
        callback: &Callback,
        now: SystemTime,
    ) -> Result<TokenSet> {
        self.inner.complete_renewal(tokens, callback, now).await
    }
    fn authenticate(&self, tokens: &TokenSet, headers: &mut HeaderMap) -> Result<()> {
        self.inner.authenticate(tokens, headers)
    }
    fn classify(&self, response: &ApiResponse<'_>) -> ResponseClass {
        self.inner.classify(response)
    }
    fn refusal(&self, response: &ApiResponse<'_>) -> grantkit_core::Error {
        self.inner.refusal(response)
    }
}

/// A manager over `provider` and a memory store, with a manual clock, no jitter, a one-minute
/// margin and short lease timings.
pub struct Fixture {
    pub clock: Arc<ManualClock>,
    pub store: Arc<MemoryTokenStore>,
    pub manager: TokenManager,
}

pub fn fixture(provider: Arc<dyn Provider>) -> Fixture {
    fixture_with_store(provider, Arc::new(MemoryTokenStore::new()))
}

pub fn fixture_with_store(provider: Arc<dyn Provider>, store: Arc<MemoryTokenStore>) -> Fixture {
    let clock = Arc::new(ManualClock::starting_now());
    let manager = TokenManager::builder(provider, store.clone())
        .clock(clock.clone())
        .config(
            ManagerConfig::default()
                .with_refresh_jitter(Duration::ZERO)
                .with_refresh_margin(Duration::from_secs(60)),
        )
        .build()
        .expect("valid configuration");
    Fixture {
        clock,
        store,
        manager,
    }
}

impl Fixture {
    pub async fn seed(&self, tokens: &TokenSet) -> grantkit_core::store::Version {
        self.store
            .put(&key(), tokens, Precondition::Any)
            .await
            .expect("seed the store")
    }

    pub fn now(&self) -> SystemTime {
        use grantkit_core::clock::Clock as _;
        self.clock.now()
    }
}

/// Polls `check` (yielding to the runtime) until it holds, for at most ten seconds of real
/// time.
pub async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !check().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "never happened: {what}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}
