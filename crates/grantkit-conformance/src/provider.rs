//! The provider suite: the behaviours every provider shows against its server.
//!
//! A provider is tested together with the server behind it (an emulator, or a real
//! authorization server). A [`ProviderHarness`] gives the suite what a test needs that the
//! `Provider` trait does not: driving the browser step, reading the server's token-endpoint
//! counter, changing server-side state, and injecting faults. Each behaviour runs for one
//! flow and one token store ([`ProviderFixture`]); [`PROVIDER_SUITE`] lists them with what
//! they need, chosen from the provider's declared capabilities and the harness's.

use async_trait::async_trait;
use futures::future::BoxFuture;
use grantkit_core::flow::{Flow as _, FlowKind, FlowStart, finish};
use grantkit_core::provider::{ApiResponse, Renewal, ResponseClass};
use grantkit_core::{
    AccessToken, Callback, CallbackError, Error, Logout, ManagerConfig, Password, Provider,
    RedirectFlow, TokenKey, TokenManager, TokenSet, TokenStore, clock::ManualClock,
    store::Precondition,
};
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

/// A fault the harness can make its server produce.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ServerFault {
    /// A 5xx with an HTML body.
    ServerErrorHtml,
    /// A 200 whose JSON body is malformed.
    MalformedJson,
    /// A body cut short of its declared length.
    Truncated,
    /// A 10 MiB body.
    Oversized,
    /// An answer slower than the provider's request timeout.
    Slow,
    /// The connection closed without an answer.
    Reset,
    /// 429 (or the provider's equivalent) with `Retry-After`.
    RateLimited,
}

impl ServerFault {
    /// Every fault that must turn into a typed error without costing a valid token.
    pub const BREAKING: [ServerFault; 6] = [
        Self::ServerErrorHtml,
        Self::MalformedJson,
        Self::Truncated,
        Self::Oversized,
        Self::Slow,
        Self::Reset,
    ];
}

/// Which server endpoint a fault hits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ServerEndpoint {
    /// The token endpoint (code exchange, refresh, password grant).
    Token,
    /// The API the probe request calls.
    Api,
}

/// The user's answer on the authorization page.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Grant access.
    Approve,
    /// Refuse access.
    Deny,
}

/// What the harness (the server behind the provider) can do for the suite.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct HarnessCapabilities {
    /// A denied authorization redirects back with `error=access_denied`.
    pub deny_redirects: bool,
    /// [`ProviderHarness::expire_access_token`] works.
    pub server_side_expiry: bool,
    /// [`ProviderHarness::invalidate_grant`] works.
    pub server_side_revocation: bool,
    /// [`ProviderHarness::inject_fault`] works.
    pub fault_injection: bool,
}

impl HarnessCapabilities {
    /// Sets `deny_redirects`.
    pub fn with_deny_redirects(mut self, yes: bool) -> Self {
        self.deny_redirects = yes;
        self
    }
    /// Sets `server_side_expiry`.
    pub fn with_server_side_expiry(mut self, yes: bool) -> Self {
        self.server_side_expiry = yes;
        self
    }
    /// Sets `server_side_revocation`.
    pub fn with_server_side_revocation(mut self, yes: bool) -> Self {
        self.server_side_revocation = yes;
        self
    }
    /// Sets `fault_injection`.
    pub fn with_fault_injection(mut self, yes: bool) -> Self {
        self.fault_injection = yes;
        self
    }
}

/// A harness error: what went wrong driving the server.
pub type HarnessResult<T> = std::result::Result<T, String>;

/// The server behind a provider, as the suite drives it.
#[async_trait]
pub trait ProviderHarness: Send + Sync + fmt::Debug {
    /// The matrix column: the provider's id, plus the server switches this harness sets,
    /// e.g. `joinme[rotation]`.
    fn name(&self) -> String {
        self.provider().id().to_owned()
    }

    /// The provider under test, configured against this server.
    fn provider(&self) -> Arc<dyn Provider>;

    /// What this harness can do.
    fn capabilities(&self) -> HarnessCapabilities;

    /// The flows to run: by default every flow the provider declares.
    fn flows(&self) -> Vec<FlowKind> {
        self.provider().capabilities().flows.clone()
    }

    /// The redirect URI registered with the server.
    fn redirect_uri(&self) -> String;

    /// The scopes to ask for.
    fn scopes(&self) -> Vec<String>;

    /// The account [`Provider::identify`] must return for the test user.
    fn account(&self) -> String;

    /// The test user's name and password, for the password flow.
    fn password_credentials(&self) -> Option<(String, Password)> {
        None
    }

    /// Plays the user's browser: opens `authorization_url`, answers `decision` as the test
    /// user, and returns the URL the browser was finally sent to (with its fragment).
    async fn authorize(&self, authorization_url: &str, decision: Decision)
    -> HarnessResult<String>;

    /// Plays the user's browser on a renew-authorization URL (see
    /// [`Renewal::Renew`]) and returns the URL the browser was
    /// finally sent to. By default, the same as approving an authorization.
    async fn renew(&self, renew_url: &str) -> HarnessResult<String> {
        self.authorize(renew_url, Decision::Approve).await
    }

    /// How many requests the server's token endpoint has received so far.
    async fn token_endpoint_calls(&self) -> HarnessResult<u64>;

    /// Makes the server treat `tokens`' access token as expired, as time passing would.
    async fn expire_access_token(&self, tokens: &TokenSet) -> HarnessResult<()>;

    /// Makes the server forget the grant of `tokens` (revoked, deleted, user gone).
    async fn invalidate_grant(&self, tokens: &TokenSet) -> HarnessResult<()>;

    /// An API request (method and URL) that succeeds with a valid token.
    fn api_probe(&self) -> (http::Method, String);

    /// Makes the next `count` requests to `endpoint` fail with `fault`.
    async fn inject_fault(
        &self,
        endpoint: ServerEndpoint,
        fault: ServerFault,
        count: u32,
    ) -> HarnessResult<()>;

    /// Removes every injected fault.
    async fn clear_faults(&self) -> HarnessResult<()>;
}

/// A capability a provider behaviour needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProviderRequirement {
    /// The flow under test goes through the browser.
    RedirectFlow,
    /// The flow under test is the authorization-code flow.
    CodeFlow,
    /// The flow under test yields tokens the provider can refresh.
    Refresh,
    /// The flow under test yields tokens that cannot refresh but that the user can renew.
    Renewal,
    /// The flow under test is a direct one (password, client credentials).
    DirectFlow,
    /// The harness: a denial redirects back with an error.
    DenyRedirects,
    /// The harness: access tokens can be expired server-side.
    ServerSideExpiry,
    /// The harness: grants can be invalidated server-side.
    ServerSideRevocation,
    /// The harness: faults can be injected.
    FaultInjection,
}

impl ProviderRequirement {
    fn name(self) -> &'static str {
        match self {
            Self::RedirectFlow => "a redirect flow",
            Self::CodeFlow => "the authorization-code flow",
            Self::Refresh => "refreshable tokens from this flow",
            Self::Renewal => "renewable (not refreshable) tokens from this flow",
            Self::DirectFlow => "a direct flow",
            Self::DenyRedirects => "error redirects on denial",
            Self::ServerSideExpiry => "server-side expiry in the harness",
            Self::ServerSideRevocation => "server-side revocation in the harness",
            Self::FaultInjection => "fault injection in the harness",
        }
    }
}

/// Whether `flow` yields tokens the provider can refresh (client credentials "refresh" by
/// repeating the grant).
fn refreshable(flow: FlowKind, caps: &grantkit_core::provider::Capabilities) -> bool {
    match flow {
        FlowKind::AuthorizationCode => caps.refresh,
        FlowKind::ClientCredentials => true,
        _ => false,
    }
}

/// One cell's set-up: a harness, the flow under test and the token store.
#[derive(Clone)]
pub struct ProviderFixture {
    /// The server and provider.
    pub harness: Arc<dyn ProviderHarness>,
    /// The flow under test.
    pub flow: FlowKind,
    /// The token store the manager uses.
    pub store: Arc<dyn TokenStore>,
}

impl fmt::Debug for ProviderFixture {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ProviderFixture")
            .field("harness", &self.harness)
            .field("flow", &self.flow)
            .finish_non_exhaustive()
    }
}

/// One behaviour of the provider suite.
#[derive(Clone, Copy)]
pub struct ProviderBehavior {
    /// Its name.
    pub name: &'static str,
    /// What it needs.
    pub requires: &'static [ProviderRequirement],
    /// Runs it.
    pub run: fn(ProviderFixture) -> BoxFuture<'static, ()>,
}

impl fmt::Debug for ProviderBehavior {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ProviderBehavior")
            .field("name", &self.name)
            .field("requires", &self.requires)
            .finish()
    }
}

impl ProviderBehavior {
    /// Why the behaviour cannot run for this fixture, or `None` when it can.
    pub fn skip_reason(&self, fixture: &ProviderFixture) -> Option<String> {
        let provider = fixture.harness.provider();
        let caps = provider.capabilities();
        let harness = fixture.harness.capabilities();
        let missing: Vec<&str> = self
            .requires
            .iter()
            .filter(|r| !match r {
                ProviderRequirement::RedirectFlow => fixture.flow.is_redirect(),
                ProviderRequirement::CodeFlow => fixture.flow == FlowKind::AuthorizationCode,
                ProviderRequirement::Refresh => refreshable(fixture.flow, caps),
                ProviderRequirement::Renewal => {
                    caps.renew_authorization && !refreshable(fixture.flow, caps)
                }
                ProviderRequirement::DirectFlow => !fixture.flow.is_redirect(),
                ProviderRequirement::DenyRedirects => harness.deny_redirects,
                ProviderRequirement::ServerSideExpiry => harness.server_side_expiry,
                ProviderRequirement::ServerSideRevocation => harness.server_side_revocation,
                ProviderRequirement::FaultInjection => harness.fault_injection,
            })
            .map(|r| r.name())
            .collect();
        (!missing.is_empty()).then(|| format!("needs {}", missing.join(", ")))
    }
}

/// The list of provider behaviours, written once: expanded into [`PROVIDER_SUITE`] here and
/// into named tests by [`provider_tests!`](crate::provider_tests).
#[doc(hidden)]
#[macro_export]
macro_rules! __provider_suite {
    (@list $mode:ident [$($arg:tt)*]) => {
        $crate::__provider_suite!(@expand $mode [$($arg)*]
            authorization_url_carries_the_request [RedirectFlow],
            flow_round_trip_stores_the_identified_grant [],
            identify_returns_the_account [],
            changed_state_is_rejected_before_any_token_request [RedirectFlow],
            finish_checks_the_callback_before_any_token_request [RedirectFlow],
            replayed_callback_is_rejected_and_the_code_not_resent [RedirectFlow],
            expired_pending_authorization_is_rejected [RedirectFlow],
            denied_authorization_is_a_typed_error [RedirectFlow, DenyRedirects],
            code_exchange_yields_a_complete_token_set [CodeFlow],
            code_exchange_faults_are_typed_and_the_code_not_resent [CodeFlow, FaultInjection],
            direct_grant_faults_are_typed [DirectFlow, FaultInjection],
            refresh_yields_a_working_token [Refresh],
            rotated_refresh_tokens_are_persisted [Refresh],
            server_side_expiry_is_handled_as_the_provider_says [ServerSideExpiry],
            renewal_revives_the_token [Renewal, ServerSideExpiry],
            server_side_revocation_requires_reauthorization [ServerSideRevocation],
            api_responses_are_classified [FaultInjection],
            authorized_client_round_trip_with_refresh_and_replay [Refresh, ServerSideExpiry],
            token_endpoint_faults_are_typed_and_keep_the_token [Refresh, FaultInjection],
            api_faults_are_typed_and_keep_the_token [FaultInjection],
            logout_says_what_happened_and_forgets_the_grant [],
        );
    };
    (@expand registry [] $($name:ident [$($req:ident),*]),* $(,)?) => {
        /// Every provider behaviour, in order.
        pub static PROVIDER_SUITE: &[ProviderBehavior] = &[
            $(ProviderBehavior {
                name: stringify!($name),
                requires: &[$(ProviderRequirement::$req),*],
                run: |fixture| Box::pin($name(fixture)),
            }),*
        ];
    };
    (@expand tests [$harness:expr, $store:expr] $($name:ident [$($req:ident),*]),* $(,)?) => {
        $(
            #[::tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn $name() {
                let harness: $crate::__private::Arc<dyn $crate::provider::ProviderHarness> = $harness;
                for flow in harness.flows() {
                    let store: $crate::__private::Arc<dyn $crate::__private::TokenStore> = $store;
                    let fixture = $crate::provider::ProviderFixture { harness: harness.clone(), flow, store };
                    $crate::provider::run_provider_test(stringify!($name), fixture).await;
                }
            }
        )*
    };
}

/// Stamps the provider suite into one named `#[tokio::test]` per behaviour, each running
/// every flow the harness offers. `$harness` yields an `Arc<dyn ProviderHarness>` and
/// `$store` an `Arc<dyn TokenStore>` (both may `.await`; the store is built once per flow).
///
/// ```
/// //! The provider conformance suite on MyProvider against its emulator.
/// # use grantkit_conformance::ProviderHarness;
/// # use std::sync::Arc;
/// # async fn harness() -> Arc<dyn ProviderHarness> { unimplemented!("your harness") }
/// grantkit_conformance::provider_tests!(harness().await, Arc::new(grantkit_core::MemoryTokenStore::new()));
/// # fn main() {}
/// ```
#[macro_export]
macro_rules! provider_tests {
    ($harness:expr, $store:expr) => {
        $crate::__provider_suite!(@list tests [$harness, $store]);
    };
}

crate::__provider_suite!(@list registry []);

// ---- helpers -------------------------------------------------------------------------------

/// A manager for the fixture, with the given clock (or the system clock).
fn manager(fixture: &ProviderFixture, clock: Option<Arc<ManualClock>>) -> TokenManager {
    let provider = fixture.harness.provider();
    let config = ManagerConfig::default().with_refresh_jitter(Duration::ZERO);
    let mut builder = TokenManager::builder(provider, fixture.store.clone()).config(config);
    if let Some(clock) = clock {
        builder = builder.clock(clock);
    }
    builder.build().expect("a valid manager configuration")
}

fn redirect_flow(fixture: &ProviderFixture) -> RedirectFlow {
    let flow = match fixture.flow {
        FlowKind::Implicit => RedirectFlow::implicit(fixture.harness.redirect_uri()),
        _ => RedirectFlow::authorization_code(fixture.harness.redirect_uri()),
    };
    flow.with_scopes(fixture.harness.scopes())
}

async fn token_calls(fixture: &ProviderFixture) -> u64 {
    fixture
        .harness
        .token_endpoint_calls()
        .await
        .expect("the harness reads the token-endpoint counter")
}

/// Runs the fixture's flow to the end and returns the stored grant's key.
async fn authorize(fixture: &ProviderFixture, manager: &TokenManager) -> TokenKey {
    match fixture.flow {
        FlowKind::Password => {
            let (username, password) = fixture
                .harness
                .password_credentials()
                .expect("a harness for a password flow has credentials");
            manager
                .sign_in_with_password(username, password)
                .await
                .expect("the password grant")
        }
        FlowKind::ClientCredentials => manager
            .sign_in_with_client_credentials(fixture.harness.scopes())
            .await
            .expect("the client-credentials grant"),
        _ => {
            let flow = redirect_flow(fixture);
            let callback = browse(fixture, manager, &flow, Decision::Approve).await;
            manager
                .complete_authorization(&Callback::parse(&callback).expect("a parsable callback"))
                .await
                .expect("the redirect flow completes")
        }
    }
}

/// Starts a redirect flow through the manager and plays the browser; returns the callback.
async fn browse(
    fixture: &ProviderFixture,
    manager: &TokenManager,
    flow: &RedirectFlow,
    decision: Decision,
) -> String {
    let url = manager
        .start_authorization(flow)
        .await
        .expect("the flow starts");
    fixture
        .harness
        .authorize(url.expose_secret(), decision)
        .await
        .expect("the harness plays the browser")
}

/// Sends the harness's probe with `tokens` attached and classifies the answer.
async fn probe_class(
    fixture: &ProviderFixture,
    access_token: &AccessToken,
    template: &TokenSet,
) -> (http::StatusCode, ResponseClass) {
    let provider = fixture.harness.provider();
    let (method, url) = fixture.harness.api_probe();
    let mut tokens = template.clone();
    tokens.access_token = access_token.clone();
    let mut headers = http::HeaderMap::new();
    provider
        .authenticate(&tokens, &mut headers)
        .expect("the provider attaches the token");
    let response = reqwest::Client::new()
        .request(method, url)
        .headers(headers)
        .timeout(Duration::from_secs(30))
        .send()
        .await
        .expect("the probe reaches the server");
    let status = response.status();
    let headers = response.headers().clone();
    let body = response.bytes().await.expect("the probe's body");
    let class = provider.classify(&ApiResponse {
        status,
        headers: &headers,
        body: &body,
    });
    (status, class)
}

/// Sends the probe through an `AuthorizedClient`.
/// Sends the harness's probe through an [`AuthorizedClient`](grantkit_core::AuthorizedClient)
/// and reads the answer as an application would: within 1 MiB, so the oversized-body fault
/// is refused; with the provider's timeout, so the slow fault ends as a timeout instead of
/// a late success.
async fn probe(
    fixture: &ProviderFixture,
    manager: &TokenManager,
    key: &TokenKey,
) -> grantkit_core::Result<Answer> {
    probe_with(fixture, manager, key, grantkit_core::RetryPolicy::default()).await
}

/// [`probe`] with the client's retry policy given.
async fn probe_with(
    fixture: &ProviderFixture,
    manager: &TokenManager,
    key: &TokenKey,
    retry: grantkit_core::RetryPolicy,
) -> grantkit_core::Result<Answer> {
    let (method, url) = fixture.harness.api_probe();
    let http = reqwest::Client::builder()
        .timeout(manager.provider().request_timeout())
        .build()
        .expect("an HTTP client with a timeout");
    let client = manager
        .authorized_client(http, key.clone())
        .with_max_read(1 << 20)
        .with_retry(retry);
    let response = client.send(client.http().request(method, url)).await?;
    let status = response.status();
    grantkit_core::provider::http::read_capped(response, 1 << 20).await?;
    Ok(Answer { status })
}

/// An API answer the probe read whole.
#[derive(Debug)]
struct Answer {
    status: http::StatusCode,
}

impl Answer {
    fn status(&self) -> http::StatusCode {
        self.status
    }
}

async fn stored(fixture: &ProviderFixture, key: &TokenKey) -> Option<TokenSet> {
    fixture
        .store
        .get(key)
        .await
        .expect("the store answers")
        .map(|v| v.value)
}

/// Marks the stored access token as expired, as if its lifetime had passed on this side.
async fn expire_locally(fixture: &ProviderFixture, key: &TokenKey) {
    let current = fixture
        .store
        .get(key)
        .await
        .unwrap()
        .expect("a stored grant");
    let mut tokens = current.value;
    tokens.expires_at = Some(SystemTime::now() - Duration::from_secs(1));
    fixture
        .store
        .put(key, &tokens, Precondition::Version(current.version))
        .await
        .expect("rewrite the grant as expired");
}

fn param<'a>(url: &'a url::Url, value: &str) -> Option<std::borrow::Cow<'a, str>> {
    url.query_pairs().find(|(_, v)| v == value).map(|(k, _)| k)
}

// ---- behaviours ------------------------------------------------------------------------------

/// The authorization URL carries the client id, the redirect URI byte for byte, the state
/// and, with PKCE, the S256 challenge of the pending verifier.
pub async fn authorization_url_carries_the_request(fixture: ProviderFixture) {
    let provider = fixture.harness.provider();
    let flow = redirect_flow(&fixture);
    let FlowStart::Redirect { url, pending } = flow
        .start(fixture.harness.provider().as_ref(), SystemTime::now())
        .await
        .expect("start")
    else {
        panic!("a redirect flow must redirect");
    };
    let url = url.expose_url().expect("an absolute authorization URL");
    assert!(
        param(&url, provider.client_id()).is_some(),
        "the authorization URL does not carry the client id"
    );
    assert!(
        param(&url, &fixture.harness.redirect_uri()).is_some(),
        "the authorization URL does not carry the redirect URI byte for byte"
    );
    assert!(
        param(&url, pending.state.expose_secret()).is_some(),
        "the authorization URL does not carry the state"
    );
    assert_eq!(pending.redirect_uri, fixture.harness.redirect_uri());
    for scope in fixture.harness.scopes() {
        assert!(
            url.query_pairs()
                .any(|(_, v)| v.split(' ').any(|asked| asked == scope)),
            "the authorization URL does not ask for the scope `{scope}`"
        );
    }
    match &pending.pkce_verifier {
        Some(verifier) => {
            assert_eq!(
                param(&url, &verifier.s256_challenge()).as_deref(),
                Some("code_challenge"),
                "the PKCE challenge is missing or not S256 of the verifier"
            );
            assert!(
                url.query_pairs()
                    .any(|(k, v)| k == "code_challenge_method" && v == "S256")
            );
            assert!(
                url.query_pairs()
                    .all(|(_, v)| v != verifier.expose_secret()),
                "the PKCE verifier itself is in the URL"
            );
        }
        None => assert!(
            !(provider.capabilities().pkce && fixture.flow == FlowKind::AuthorizationCode),
            "the provider supports PKCE but the code flow did not use it"
        ),
    }
}

/// The flow runs end to end: the grant is stored under the identified account and works
/// on the API.
pub async fn flow_round_trip_stores_the_identified_grant(fixture: ProviderFixture) {
    let manager = manager(&fixture, None);
    let key = authorize(&fixture, &manager).await;
    assert_eq!(key.provider, fixture.harness.provider().id());
    assert_eq!(key.client, fixture.harness.provider().client_id());
    assert_eq!(key.account, fixture.harness.account());
    let tokens = stored(&fixture, &key).await.expect("the grant is stored");
    assert_eq!(tokens.grant.as_str(), fixture.flow.as_str());
    let response = probe(&fixture, &manager, &key)
        .await
        .expect("the API accepts the new token");
    assert!(
        response.status().is_success(),
        "probe answered {}",
        response.status()
    );
}

/// `identify` returns the test user's account.
pub async fn identify_returns_the_account(fixture: ProviderFixture) {
    let manager = manager(&fixture, None);
    let key = authorize(&fixture, &manager).await;
    let tokens = stored(&fixture, &key).await.expect("stored");
    let account = fixture
        .harness
        .provider()
        .identify(&tokens)
        .await
        .expect("identify");
    assert_eq!(account, fixture.harness.account());
}

/// A callback with a changed state is refused, and nothing reaches the token endpoint; the
/// genuine callback still completes.
pub async fn changed_state_is_rejected_before_any_token_request(fixture: ProviderFixture) {
    let manager = manager(&fixture, None);
    let flow = redirect_flow(&fixture);
    let callback = browse(&fixture, &manager, &flow, Decision::Approve).await;
    let before = token_calls(&fixture).await;
    let genuine = Callback::parse(&callback).expect("parsable");
    let location = fixture.harness.provider().callback_location(fixture.flow);
    let state = genuine
        .params(location)
        .get("state")
        .expect("the callback echoes the state")
        .to_owned();
    let forged = callback.replacen(&state, "forged-state-value", 1);
    let err = manager
        .complete_authorization(&Callback::parse(&forged).expect("parsable"))
        .await
        .expect_err("a changed state must be refused");
    assert!(
        matches!(
            err,
            Error::InvalidCallback {
                reason: CallbackError::UnknownState | CallbackError::StateMismatch
            }
        ),
        "unexpected error: {err}"
    );
    assert_eq!(
        token_calls(&fixture).await,
        before,
        "a token request was made for a forged callback"
    );
    manager
        .complete_authorization(&genuine)
        .await
        .expect("the genuine callback still completes");
}

/// [`finish`] itself refuses, before any token request: a
/// pending authorization of another client or of a direct flow, a callback whose state differs (compared in constant time), an `iss`
/// naming another issuer (RFC 9207 §2.4, advertised or not) or missing where the server
/// promises it, and a callback that arrived at another scheme, host, port or path than the
/// redirect URI.
pub async fn finish_checks_the_callback_before_any_token_request(fixture: ProviderFixture) {
    let provider = fixture.harness.provider();
    let flow = redirect_flow(&fixture);
    let FlowStart::Redirect { url, pending } = flow
        .start(fixture.harness.provider().as_ref(), SystemTime::now())
        .await
        .expect("start")
    else {
        panic!("a redirect flow must redirect");
    };
    let callback = fixture
        .harness
        .authorize(url.expose_secret(), Decision::Approve)
        .await
        .expect("the harness plays the browser");
    let location = fixture.harness.provider().callback_location(fixture.flow);
    let before = token_calls(&fixture).await;
    let expect_refused =
        |outcome: grantkit_core::Result<TokenSet>, reason: CallbackError| match outcome {
            Err(Error::InvalidCallback { reason: got }) => assert_eq!(got, reason),
            other => panic!("expected {reason:?}, got {other:?}"),
        };

    let mut foreign = pending.clone();
    foreign.client = format!("{}-other", foreign.client);
    let genuine = Callback::parse(&callback).unwrap();
    expect_refused(
        finish(provider.as_ref(), foreign, &genuine, SystemTime::now()).await,
        CallbackError::WrongFlow,
    );

    let mut other_state = pending.clone();
    other_state.state = grantkit_core::store::StateToken::generate();
    expect_refused(
        finish(provider.as_ref(), other_state, &genuine, SystemTime::now()).await,
        CallbackError::StateMismatch,
    );

    // RFC 9207 §2.4: an `iss` that is present must name the provider's issuer, whether
    // or not the server advertises it; where it promises `iss`, the genuine one is there.
    let issuer = fixture.harness.provider().issuer();
    if let Some(issuer) = issuer.as_ref().filter(|issuer| issuer.always_sent) {
        assert_eq!(
            genuine.params(location).get("iss"),
            Some(issuer.identifier.as_str()),
            "a server that promises `iss` sends its issuer"
        );
    }
    let foreign_iss = with_param(&callback, location, "iss", "https://evil.example");
    expect_refused(
        finish(
            provider.as_ref(),
            pending.clone(),
            &Callback::parse(&foreign_iss).unwrap(),
            SystemTime::now(),
        )
        .await,
        CallbackError::IssuerMismatch,
    );
    if issuer.is_some_and(|issuer| issuer.always_sent) {
        let without_iss = without_param(&callback, location, "iss");
        expect_refused(
            finish(
                provider.as_ref(),
                pending.clone(),
                &Callback::parse(&without_iss).unwrap(),
                SystemTime::now(),
            )
            .await,
            CallbackError::IssuerMismatch,
        );
    }

    // A callback that arrived anywhere but the redirect URI was not meant for this client.
    for elsewhere in elsewhere(&callback) {
        expect_refused(
            finish(
                provider.as_ref(),
                pending.clone(),
                &Callback::parse(&elsewhere).unwrap(),
                SystemTime::now(),
            )
            .await,
            CallbackError::WrongAddress,
        );
    }
    assert_eq!(
        token_calls(&fixture).await,
        before,
        "a refused callback reached the token endpoint"
    );

    // A pending authorization of a direct flow has no callback to finish.
    let mut direct = pending.clone();
    direct.flow = FlowKind::Password;
    expect_refused(
        finish(provider.as_ref(), direct, &genuine, SystemTime::now()).await,
        CallbackError::WrongFlow,
    );

    // The genuine callback still completes.
    finish(provider.as_ref(), pending, &genuine, SystemTime::now())
        .await
        .expect("the genuine callback completes");
}

/// A callback used twice is refused the second time, and the code is not sent again.
pub async fn replayed_callback_is_rejected_and_the_code_not_resent(fixture: ProviderFixture) {
    let manager = manager(&fixture, None);
    let flow = redirect_flow(&fixture);
    let callback =
        Callback::parse(&browse(&fixture, &manager, &flow, Decision::Approve).await).unwrap();
    manager
        .complete_authorization(&callback)
        .await
        .expect("first use");
    let before = token_calls(&fixture).await;
    let err = manager
        .complete_authorization(&callback)
        .await
        .expect_err("a replayed callback must be refused");
    assert!(
        matches!(
            err,
            Error::InvalidCallback {
                reason: CallbackError::UnknownState
            }
        ),
        "unexpected error: {err}"
    );
    assert_eq!(
        token_calls(&fixture).await,
        before,
        "the replay reached the token endpoint"
    );
}

/// A callback after the pending authorization expired is refused without a token request.
pub async fn expired_pending_authorization_is_rejected(fixture: ProviderFixture) {
    let clock = Arc::new(ManualClock::starting_now());
    let manager = manager(&fixture, Some(clock.clone()));
    let flow = redirect_flow(&fixture).with_ttl(Duration::from_secs(60));
    let callback =
        Callback::parse(&browse(&fixture, &manager, &flow, Decision::Approve).await).unwrap();
    clock.advance(Duration::from_secs(61));
    let before = token_calls(&fixture).await;
    let err = manager
        .complete_authorization(&callback)
        .await
        .expect_err("an expired pending authorization must be refused");
    assert!(
        matches!(
            err,
            Error::InvalidCallback {
                reason: CallbackError::Expired
            }
        ),
        "unexpected error: {err}"
    );
    assert_eq!(token_calls(&fixture).await, before);
}

/// A denial comes back as `Error::OAuth` with code `access_denied`.
pub async fn denied_authorization_is_a_typed_error(fixture: ProviderFixture) {
    let manager = manager(&fixture, None);
    let flow = redirect_flow(&fixture);
    let before = token_calls(&fixture).await;
    let callback =
        Callback::parse(&browse(&fixture, &manager, &flow, Decision::Deny).await).unwrap();
    let err = manager
        .complete_authorization(&callback)
        .await
        .expect_err("a denial is an error");
    assert!(
        matches!(&err, Error::OAuth { code, .. } if code == "access_denied"),
        "unexpected error: {err}"
    );
    assert_eq!(token_calls(&fixture).await, before);
}

/// The code exchange yields a bearer token set with an expiry, and a refresh token where the
/// provider refreshes.
pub async fn code_exchange_yields_a_complete_token_set(fixture: ProviderFixture) {
    let manager = manager(&fixture, None);
    let before = token_calls(&fixture).await;
    let key = authorize(&fixture, &manager).await;
    assert!(
        token_calls(&fixture).await > before,
        "the code was exchanged at the token endpoint"
    );
    let tokens = stored(&fixture, &key).await.expect("stored");
    assert_eq!(tokens.grant, grantkit_core::GrantKind::AuthorizationCode);
    assert_eq!(tokens.token_type, "bearer");
    assert!(!tokens.access_token.expose_secret().is_empty());
    if fixture.harness.provider().capabilities().refresh {
        assert!(
            tokens.refresh_token.is_some(),
            "a refreshing provider returned no refresh token"
        );
    }
    let expires = tokens
        .expires_at
        .expect("a code-grant token has an expiry (or the provider's default)");
    assert!(
        expires > SystemTime::now(),
        "the new token is already expired"
    );
}

/// Checks that a fault became the error it stands for: a failing server is unavailable, a
/// malformed or oversized answer a bad response, a slow one a timeout, a reset connection a
/// transport error (a body cut short is either of the last two, depending on where it is
/// cut).
fn assert_typed_failure(what: &str, fault: ServerFault, err: &Error) {
    let expected = match fault {
        ServerFault::ServerErrorHtml => matches!(err, Error::Unavailable { .. }),
        ServerFault::MalformedJson | ServerFault::Oversized => {
            matches!(err, Error::BadResponse { .. })
        }
        ServerFault::Truncated => {
            matches!(err, Error::BadResponse { .. } | Error::Transport { .. })
        }
        ServerFault::Slow => matches!(err, Error::Timeout { .. }),
        ServerFault::Reset => matches!(err, Error::Transport { .. }),
        ServerFault::RateLimited => matches!(err, Error::RateLimited { .. }),
    };
    assert!(
        expected,
        "{what} meeting {fault:?} gave the wrong error: {err:?}"
    );
}

/// A code exchange that meets a fault fails with a typed error after exactly one token
/// request, and the code is never sent again.
pub async fn code_exchange_faults_are_typed_and_the_code_not_resent(fixture: ProviderFixture) {
    let manager = manager(&fixture, None);
    for fault in ServerFault::BREAKING {
        let flow = redirect_flow(&fixture);
        let callback =
            Callback::parse(&browse(&fixture, &manager, &flow, Decision::Approve).await).unwrap();
        fixture
            .harness
            .inject_fault(ServerEndpoint::Token, fault, 1)
            .await
            .unwrap();
        let before = token_calls(&fixture).await;
        let err = manager
            .complete_authorization(&callback)
            .await
            .expect_err("an exchange that meets a fault fails");
        assert_typed_failure("the code exchange", fault, &err);
        fixture.harness.clear_faults().await.unwrap();
        assert_eq!(
            token_calls(&fixture).await,
            before + 1,
            "{fault:?}: the code was sent more than once"
        );
        let again = manager.complete_authorization(&callback).await;
        assert!(
            matches!(
                again,
                Err(Error::InvalidCallback {
                    reason: CallbackError::UnknownState
                })
            ),
            "{fault:?}: a second completion was not refused: {again:?}"
        );
        assert_eq!(
            token_calls(&fixture).await,
            before + 1,
            "{fault:?}: the code was sent again"
        );
    }
    authorize(&fixture, &manager).await;
}

/// A direct grant (password, client credentials) that meets a fault fails with a typed
/// error and stores nothing; a clean attempt afterwards succeeds.
pub async fn direct_grant_faults_are_typed(fixture: ProviderFixture) {
    let manager = manager(&fixture, None);
    let provider = fixture.harness.provider();
    let key = TokenKey::new(
        provider.id(),
        provider.client_id(),
        fixture.harness.account(),
    );
    fixture
        .store
        .delete(&key, Precondition::Any)
        .await
        .expect("a clean start");
    for fault in ServerFault::BREAKING {
        fixture
            .harness
            .inject_fault(ServerEndpoint::Token, fault, 1)
            .await
            .unwrap();
        let outcome = match fixture.flow {
            FlowKind::Password => {
                let (username, password) = fixture
                    .harness
                    .password_credentials()
                    .expect("a harness for a password flow has credentials");
                manager.sign_in_with_password(username, password).await
            }
            _ => {
                manager
                    .sign_in_with_client_credentials(fixture.harness.scopes())
                    .await
            }
        };
        fixture.harness.clear_faults().await.unwrap();
        let err = outcome.expect_err("a grant that meets a fault fails");
        assert_typed_failure("the direct grant", fault, &err);
        assert!(
            stored(&fixture, &key).await.is_none(),
            "{fault:?}: a failed grant was stored"
        );
    }
    let stored_key = authorize(&fixture, &manager).await;
    assert_eq!(stored_key, key);
    assert!(stored(&fixture, &key).await.is_some());
}

/// A refresh reaches the token endpoint once and yields a token the API accepts.
pub async fn refresh_yields_a_working_token(fixture: ProviderFixture) {
    let manager = manager(&fixture, None);
    let key = authorize(&fixture, &manager).await;
    let before = token_calls(&fixture).await;
    let old = stored(&fixture, &key).await.unwrap();
    let new = manager.refresh(&key).await.expect("refresh");
    assert_eq!(
        token_calls(&fixture).await,
        before + 1,
        "one refresh is one token request"
    );
    assert!(
        new.access_token != old.access_token,
        "the refresh returned the same access token"
    );
    let response = probe(&fixture, &manager, &key)
        .await
        .expect("the API accepts the refreshed token");
    assert!(response.status().is_success());
}

/// Whatever the provider returns on refresh is what the store keeps: two refreshes in a row
/// succeed (a stale refresh token would fail the second where tokens rotate).
pub async fn rotated_refresh_tokens_are_persisted(fixture: ProviderFixture) {
    let manager = manager(&fixture, None);
    let key = authorize(&fixture, &manager).await;
    for round in 0..3 {
        let before = stored(&fixture, &key).await.unwrap();
        let refreshed = manager
            .refresh(&key)
            .await
            .unwrap_or_else(|e| panic!("refresh #{round}: {e}"));
        let after = stored(&fixture, &key).await.expect("still stored");
        assert!(
            after.access_token == refreshed.access_token,
            "the store keeps the new access token"
        );
        // A client-credentials grant has no refresh token to keep: it is renewed by
        // repeating the grant.
        assert!(
            after.refresh_token.is_some() || before.refresh_token.is_none(),
            "the refresh token survives the refresh"
        );
        // Whether or not it rotated, what the store keeps is what the manager serves.
        assert!(
            after.refresh_token == refreshed.refresh_token,
            "the stored refresh token is not the one the refresh produced"
        );
    }
    let response = probe(&fixture, &manager, &key)
        .await
        .expect("the API accepts the latest token");
    assert!(response.status().is_success());
}

/// After the server expires the access token, the API says so and the manager refreshes,
/// asks for renewal, or asks for re-authorization — as the provider's `renewal` says.
pub async fn server_side_expiry_is_handled_as_the_provider_says(fixture: ProviderFixture) {
    let manager = manager(&fixture, None);
    let key = authorize(&fixture, &manager).await;
    let tokens = stored(&fixture, &key).await.unwrap();
    fixture
        .harness
        .expire_access_token(&tokens)
        .await
        .expect("server-side expiry");
    let before = token_calls(&fixture).await;
    let outcome = probe(&fixture, &manager, &key).await;
    match fixture.harness.provider().renewal(&tokens) {
        Renewal::Refresh => {
            let response = outcome.expect("the manager refreshes and replays");
            assert!(response.status().is_success());
            assert_eq!(token_calls(&fixture).await, before + 1);
        }
        Renewal::Renew(_) => {
            match outcome {
                Err(Error::RenewRequired { renew_url }) => {
                    renew_url.expose_url().expect("the renew URL is a URL");
                }
                other => panic!("expected renew required, got {other:?}"),
            }
            assert_eq!(
                token_calls(&fixture).await,
                before,
                "a renewal needs no token request"
            );
        }
        Renewal::Reauthorize => {
            let err = outcome.expect_err("the expired token cannot be used");
            assert!(err.is_reauthorization_required(), "unexpected error: {err}");
            let restart = err.restart().expect("the error says what to start again");
            assert_eq!(restart.flow, fixture.flow, "the flow the grant came from");
            assert_eq!(restart.key, key);
            assert!(
                stored(&fixture, &key).await.is_none(),
                "the dead grant is deleted"
            );
        }
    }
}

/// A token the provider cannot refresh but the user can renew: once the server expires
/// it, the manager asks for renewal with the provider's URL; after the user renews there,
/// the same grant works again, without any token request.
pub async fn renewal_revives_the_token(fixture: ProviderFixture) {
    let manager = manager(&fixture, None);
    let key = authorize(&fixture, &manager).await;
    let tokens = stored(&fixture, &key).await.unwrap();
    fixture
        .harness
        .expire_access_token(&tokens)
        .await
        .expect("server-side expiry");
    let before = token_calls(&fixture).await;
    let renew_url = match probe(&fixture, &manager, &key).await {
        Err(Error::RenewRequired { renew_url }) => renew_url,
        other => panic!("expected renew required, got {other:?}"),
    };
    let callback = fixture
        .harness
        .renew(renew_url.expose_secret())
        .await
        .expect("the harness renews at the provider");
    let renewed = manager
        .complete_renewal(
            &key,
            &Callback::parse(&callback).expect("a parsable callback"),
        )
        .await
        .expect("the renewal completes");
    assert!(
        !renewed.is_expired(SystemTime::now()),
        "the renewed token is already expired"
    );
    let response = probe(&fixture, &manager, &key)
        .await
        .expect("the renewed grant works");
    assert!(response.status().is_success());
    assert_eq!(
        token_calls(&fixture).await,
        before,
        "a renewal needs no token request"
    );
}

/// After the server forgets the grant, every use ends in re-authorization required, and the
/// dead grant is deleted locally.
pub async fn server_side_revocation_requires_reauthorization(fixture: ProviderFixture) {
    let manager = manager(&fixture, None);
    let key = authorize(&fixture, &manager).await;
    let tokens = stored(&fixture, &key).await.unwrap();
    fixture
        .harness
        .invalidate_grant(&tokens)
        .await
        .expect("server-side revocation");
    let err = probe(&fixture, &manager, &key)
        .await
        .expect_err("a revoked grant cannot be used");
    assert!(err.is_reauthorization_required(), "unexpected error: {err}");
    assert!(
        stored(&fixture, &key).await.is_none(),
        "the dead grant is deleted"
    );
    let err = manager
        .access_token(&key)
        .await
        .expect_err("and stays gone");
    assert!(err.is_reauthorization_required(), "unexpected error: {err}");
}

/// The provider reads its API's answers: success, a refused token, rate limiting, failure.
pub async fn api_responses_are_classified(fixture: ProviderFixture) {
    let manager = manager(&fixture, None);
    let key = authorize(&fixture, &manager).await;
    let tokens = stored(&fixture, &key).await.unwrap();

    let (status, class) = probe_class(&fixture, &tokens.access_token, &tokens).await;
    assert_eq!(
        class,
        ResponseClass::Ok,
        "a valid token's probe ({status}) must classify as ok"
    );

    let unknown = AccessToken::new("0000000000000000unknowntoken");
    let (status, class) = probe_class(&fixture, &unknown, &tokens).await;
    assert!(
        matches!(
            class,
            ResponseClass::TokenExpired | ResponseClass::TokenInvalid
        ),
        "an unknown token's probe ({status}) classified as {class:?}"
    );

    fixture
        .harness
        .inject_fault(ServerEndpoint::Api, ServerFault::RateLimited, 1)
        .await
        .unwrap();
    let (status, class) = probe_class(&fixture, &tokens.access_token, &tokens).await;
    assert!(
        matches!(
            class,
            ResponseClass::RateLimited {
                retry_after: Some(_)
            }
        ),
        "a throttled probe ({status}) classified as {class:?}"
    );

    fixture
        .harness
        .inject_fault(ServerEndpoint::Api, ServerFault::ServerErrorHtml, 1)
        .await
        .unwrap();
    let (status, class) = probe_class(&fixture, &tokens.access_token, &tokens).await;
    assert_eq!(
        class,
        ResponseClass::Transient,
        "a failing server ({status}) must classify as transient"
    );
    fixture.harness.clear_faults().await.unwrap();
}

/// Twenty requests rejected together after a server-side expiry cause one refresh, and all
/// are replayed with the new token.
pub async fn authorized_client_round_trip_with_refresh_and_replay(fixture: ProviderFixture) {
    let manager = manager(&fixture, None);
    let key = authorize(&fixture, &manager).await;
    let tokens = stored(&fixture, &key).await.unwrap();
    fixture
        .harness
        .expire_access_token(&tokens)
        .await
        .expect("server-side expiry");
    let before = token_calls(&fixture).await;
    let mut requests = tokio::task::JoinSet::new();
    for _ in 0..20 {
        let fixture = fixture.clone();
        let manager = manager.clone();
        let key = key.clone();
        requests.spawn(async move { probe(&fixture, &manager, &key).await });
    }
    for response in requests.join_all().await {
        let response = response.expect("refreshed and replayed");
        assert!(response.status().is_success());
    }
    assert_eq!(
        token_calls(&fixture).await,
        before + 1,
        "twenty rejections, one refresh"
    );
}

/// Each injected token-endpoint fault makes a refresh fail with a typed error, and the
/// stored token survives and still works.
pub async fn token_endpoint_faults_are_typed_and_keep_the_token(fixture: ProviderFixture) {
    let manager = manager(&fixture, None);
    let key = authorize(&fixture, &manager).await;
    let original = stored(&fixture, &key).await.unwrap();
    for fault in ServerFault::BREAKING {
        fixture
            .harness
            .inject_fault(ServerEndpoint::Token, fault, 1)
            .await
            .unwrap();
        let err = manager
            .refresh(&key)
            .await
            .expect_err("a refresh that meets a fault fails");
        assert_typed_failure("a refresh", fault, &err);
        fixture.harness.clear_faults().await.unwrap();
        let kept = stored(&fixture, &key)
            .await
            .expect("the grant survives a failed refresh");
        assert!(
            kept.access_token == original.access_token,
            "{fault:?} cost the stored token"
        );
        let current = manager
            .access_token(&key)
            .await
            .expect("the still-valid token is served");
        assert!(current.access_token == original.access_token);
    }
    let response = probe(&fixture, &manager, &key)
        .await
        .expect("the kept token works");
    assert!(response.status().is_success());
    // Expiring it locally now leads to a refresh that succeeds: nothing was poisoned.
    expire_locally(&fixture, &key).await;
    let _ = manager
        .refresh(&key)
        .await
        .expect("a clean refresh after the faults");
}

/// Each injected API fault is a typed error through `AuthorizedClient` (retries off); the
/// token is kept and the next request works. With the default retry policy, a read that
/// meets one 5xx page or one reset connection is retried and succeeds.
pub async fn api_faults_are_typed_and_keep_the_token(fixture: ProviderFixture) {
    let manager = manager(&fixture, None);
    let key = authorize(&fixture, &manager).await;
    let original = stored(&fixture, &key).await.unwrap();
    let (method, _) = fixture.harness.api_probe();
    if method.is_idempotent() {
        for fault in [ServerFault::ServerErrorHtml, ServerFault::Reset] {
            fixture
                .harness
                .inject_fault(ServerEndpoint::Api, fault, 1)
                .await
                .unwrap();
            let response = probe(&fixture, &manager, &key)
                .await
                .unwrap_or_else(|err| panic!("{fault:?} once was not retried: {err:?}"));
            assert!(response.status().is_success());
            fixture.harness.clear_faults().await.unwrap();
        }
    }
    for fault in ServerFault::BREAKING {
        fixture
            .harness
            .inject_fault(ServerEndpoint::Api, fault, 1)
            .await
            .unwrap();
        let outcome =
            probe_with(&fixture, &manager, &key, grantkit_core::RetryPolicy::none()).await;
        match (&fault, &outcome) {
            // A malformed or truncated 200 is the caller's to parse; the client reports
            // only what it had to read itself.
            (ServerFault::MalformedJson, Ok(_)) => {}
            (
                _,
                Err(
                    Error::Unavailable { .. }
                    | Error::BadResponse { .. }
                    | Error::Transport { .. }
                    | Error::Timeout { .. },
                ),
            ) => {}
            (_, other) => panic!("{fault:?} on the API gave {other:?}"),
        }
        fixture.harness.clear_faults().await.unwrap();
        let kept = stored(&fixture, &key)
            .await
            .expect("the grant survives an API fault");
        assert!(
            kept.access_token == original.access_token,
            "{fault:?} cost the stored token"
        );
    }
    let response = probe(&fixture, &manager, &key)
        .await
        .expect("the token still works");
    assert!(response.status().is_success());
}

/// Logout says what happened at the provider and forgets the grant locally.
pub async fn logout_says_what_happened_and_forgets_the_grant(fixture: ProviderFixture) {
    let manager = manager(&fixture, None);
    let key = authorize(&fixture, &manager).await;
    let logout = manager.logout(&key).await.expect("logout");
    let caps = fixture.harness.provider().capabilities().clone();
    match logout {
        Logout::Deleted {
            remote: grantkit_core::Revocation::Revoked,
        } => assert!(caps.revoke_grant),
        Logout::Deleted {
            remote: grantkit_core::Revocation::AccessExpired,
        } => assert!(caps.expire_access),
        Logout::Deleted {
            remote: grantkit_core::Revocation::NotSupported,
        } => {
            assert!(
                !caps.revoke_grant && !caps.expire_access,
                "a capable provider did not revoke"
            )
        }
        other => panic!("logout did not revoke and delete: {other}"),
    }
    assert!(stored(&fixture, &key).await.is_none());
    let err = manager.access_token(&key).await.expect_err("logged out");
    assert!(err.is_reauthorization_required());
}

/// Runs a provider behaviour on a fixture, skipping it (with a message) when the fixture
/// lacks what it needs.
pub async fn run_provider_test(name: &str, fixture: ProviderFixture) {
    let behaviour = PROVIDER_SUITE
        .iter()
        .find(|b| b.name == name)
        .unwrap_or_else(|| panic!("no provider behaviour named {name}"));
    if let Some(reason) = behaviour.skip_reason(&fixture) {
        eprintln!("skipped {name}: {reason}");
        return;
    }
    (behaviour.run)(fixture).await;
}

/// `callback` with the parameter `name` set to `value` (replacing any) where the provider
/// delivers its parameters.
fn with_param(
    callback: &str,
    location: grantkit_core::flow::ParamLocation,
    name: &str,
    value: &str,
) -> String {
    edit_params(callback, location, |params| {
        params.retain(|(k, _)| k != name);
        params.push((name.to_owned(), value.to_owned()));
    })
}

/// `callback` without the parameter `name`.
fn without_param(
    callback: &str,
    location: grantkit_core::flow::ParamLocation,
    name: &str,
) -> String {
    edit_params(callback, location, |params| {
        params.retain(|(k, _)| k != name)
    })
}

fn edit_params(
    callback: &str,
    location: grantkit_core::flow::ParamLocation,
    edit: impl FnOnce(&mut Vec<(String, String)>),
) -> String {
    let mut url = url::Url::parse(callback).expect("the harness returns an absolute callback");
    let part = match location {
        grantkit_core::flow::ParamLocation::Query => url.query(),
        grantkit_core::flow::ParamLocation::Fragment => url.fragment(),
    };
    let mut params: Vec<(String, String)> =
        url::form_urlencoded::parse(part.unwrap_or("").as_bytes())
            .into_owned()
            .collect();
    edit(&mut params);
    let encoded = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(&params)
        .finish();
    match location {
        grantkit_core::flow::ParamLocation::Query => url.set_query(Some(&encoded)),
        grantkit_core::flow::ParamLocation::Fragment => url.set_fragment(Some(&encoded)),
    }
    url.into()
}

/// `callback` with the same parameters at other addresses: another host, port, path and
/// scheme, and a `javascript:` URL.
fn elsewhere(callback: &str) -> Vec<String> {
    let url = url::Url::parse(callback).expect("the harness returns an absolute callback");
    let mut other_host = url.clone();
    other_host
        .set_host(Some("evil.example"))
        .expect("an http(s) URL has a host");
    let mut other_port = url.clone();
    let port = url.port_or_known_default().unwrap_or(80);
    other_port
        .set_port(Some(if port == 1 { 2 } else { port - 1 }))
        .expect("an http(s) URL has a port");
    let mut other_path = url.clone();
    other_path.set_path(&format!("{}/elsewhere", url.path().trim_end_matches('/')));
    let mut other_scheme = url.clone();
    other_scheme
        .set_scheme(if url.scheme() == "https" {
            "http"
        } else {
            "https"
        })
        .expect("http and https swap");
    let params = match (url.query(), url.fragment()) {
        (Some(query), Some(fragment)) => format!("?{query}#{fragment}"),
        (Some(query), None) => format!("?{query}"),
        (None, Some(fragment)) => format!("#{fragment}"),
        (None, None) => String::new(),
    };
    vec![
        other_host.into(),
        other_port.into(),
        other_path.into(),
        other_scheme.into(),
        format!("javascript:alert(1){params}"),
    ]
}
