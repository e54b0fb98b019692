//! `StandardHarness`: the provider suite's view of the test server, one per server and
//! client configuration.

use super::proxy::Route;
use super::server::{AuthServer, AuthServerOptions};
use super::{
    AuthServerError, BASIC_CLIENT, POST_CLIENT, REDIRECT_URI, SERVICE_CLIENT, TEST_ACCOUNT,
    TestClient,
};
use crate::{ClientAuth, StandardProvider};
use async_trait::async_trait;
use grantkit_conformance::provider::HarnessResult;
use grantkit_conformance::{
    Decision, HarnessCapabilities, ProviderHarness, ServerEndpoint, ServerFault,
};
use grantkit_core::{Provider, TokenSet, flow::FlowKind};
use std::sync::Arc;
use std::time::Duration;

/// The provider's timeout in the harnesses: short, so the slow fault stays short.
pub const HARNESS_TIMEOUT: Duration = Duration::from_secs(3);

/// A server and client configuration the provider suite runs under. The default is the
/// strictest server: rotating refresh tokens, and the client authenticating with
/// `client_secret_basic` and a secret full of reserved characters; each other variant
/// changes one thing.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum HarnessVariant {
    /// Authorization code with PKCE, `client_secret_basic`, rotating refresh tokens.
    Default,
    /// As the default, with a server that keeps refresh tokens.
    NoRotation,
    /// As the default, authenticating with `client_secret_post`.
    ClientSecretPost,
    /// The client-credentials grant, for a service client.
    ClientCredentials,
}

impl HarnessVariant {
    /// Every variant, default first.
    pub const ALL: [Self; 4] = [
        Self::Default,
        Self::NoRotation,
        Self::ClientSecretPost,
        Self::ClientCredentials,
    ];

    /// The matrix column: `standard`, with the changed setting in brackets.
    pub fn name(self) -> &'static str {
        match self {
            Self::Default => "standard",
            Self::NoRotation => "standard[no-rotation]",
            Self::ClientSecretPost => "standard[client_secret_post]",
            Self::ClientCredentials => "standard[client_credentials]",
        }
    }

    /// The test client the variant authenticates as.
    pub fn client(self) -> TestClient {
        match self {
            Self::Default | Self::NoRotation => BASIC_CLIENT,
            Self::ClientSecretPost => POST_CLIENT,
            Self::ClientCredentials => SERVICE_CLIENT,
        }
    }

    fn flow(self) -> FlowKind {
        match self {
            Self::ClientCredentials => FlowKind::ClientCredentials,
            _ => FlowKind::AuthorizationCode,
        }
    }

    fn server_options(self) -> AuthServerOptions {
        AuthServerOptions::default()
            .with_rotation(self != Self::NoRotation)
            .with_slow_delay(HARNESS_TIMEOUT + Duration::from_secs(2))
    }
}

/// The provider suite's harness: a [`StandardProvider`] against its own [`AuthServer`].
#[derive(Debug)]
pub struct StandardHarness {
    variant: HarnessVariant,
    server: AuthServer,
    provider: Arc<StandardProvider>,
}

impl StandardHarness {
    /// Starts a server for `variant` and builds the provider against it by discovery.
    pub async fn start(variant: HarnessVariant) -> Result<Self, AuthServerError> {
        let server = AuthServer::start(variant.server_options()).await?;
        let mut builder = server
            .provider(&variant.client())
            .timeout(HARNESS_TIMEOUT)
            .flows([variant.flow()])
            .refresh_token_rotation(variant != HarnessVariant::NoRotation);
        if variant == HarnessVariant::ClientSecretPost {
            builder = builder.client_auth(ClientAuth::ClientSecretPost);
        }
        let provider = builder.build().await.map_err(|err| {
            AuthServerError::Start(format!("the provider could not be built: {err}"))
        })?;
        Ok(Self {
            variant,
            server,
            provider: Arc::new(provider),
        })
    }

    /// The variant.
    pub fn variant(&self) -> HarnessVariant {
        self.variant
    }

    /// The server.
    pub fn server(&self) -> &AuthServer {
        &self.server
    }

    /// The provider, as its concrete type.
    pub fn standard_provider(&self) -> &Arc<StandardProvider> {
        &self.provider
    }
}

/// A harness for `variant` on a fresh server; panics with the reason when the server
/// cannot start (for test set-up).
pub async fn harness(variant: HarnessVariant) -> Arc<StandardHarness> {
    match StandardHarness::start(variant).await {
        Ok(harness) => Arc::new(harness),
        Err(err) => panic!("the standard provider's test server: {err}"),
    }
}

/// One harness per [`HarnessVariant`], each on its own server.
pub async fn try_harnesses() -> Result<Vec<Arc<dyn ProviderHarness>>, AuthServerError> {
    let mut all: Vec<Arc<dyn ProviderHarness>> = Vec::new();
    for variant in HarnessVariant::ALL {
        all.push(Arc::new(StandardHarness::start(variant).await?));
    }
    Ok(all)
}

/// One harness per [`HarnessVariant`], each on its own server, for `cargo xtask
/// conformance`. Panics with the reason (Node.js or npm missing, install failed) when a
/// server cannot start; [`try_harnesses`] returns it instead.
pub async fn harnesses() -> Vec<Arc<dyn ProviderHarness>> {
    try_harnesses()
        .await
        .unwrap_or_else(|err| panic!("the standard provider's test server: {err}"))
}

#[async_trait]
impl ProviderHarness for StandardHarness {
    fn name(&self) -> String {
        self.variant.name().to_owned()
    }

    fn provider(&self) -> Arc<dyn Provider> {
        self.provider.clone()
    }

    fn capabilities(&self) -> HarnessCapabilities {
        let user_grant = self.variant.flow() == FlowKind::AuthorizationCode;
        HarnessCapabilities::default()
            .with_deny_redirects(user_grant)
            .with_server_side_expiry(true)
            // A client-credentials grant cannot be taken away: the client just asks again.
            .with_server_side_revocation(user_grant)
            .with_fault_injection(true)
    }

    fn redirect_uri(&self) -> String {
        REDIRECT_URI.to_owned()
    }

    fn scopes(&self) -> Vec<String> {
        match self.variant.flow() {
            // `openid` lets the userinfo endpoint answer; `read` is an API scope.
            FlowKind::AuthorizationCode => vec!["openid".to_owned(), "read".to_owned()],
            _ => vec!["read".to_owned()],
        }
    }

    fn account(&self) -> String {
        match self.variant.flow() {
            FlowKind::ClientCredentials => self.variant.client().id.to_owned(),
            _ => TEST_ACCOUNT.to_owned(),
        }
    }

    async fn authorize(
        &self,
        authorization_url: &str,
        decision: Decision,
    ) -> HarnessResult<String> {
        self.server
            .authorize(authorization_url, decision)
            .await
            .map_err(|err| err.to_string())
    }

    async fn token_endpoint_calls(&self) -> HarnessResult<u64> {
        Ok(self.server.proxy().token_requests())
    }

    async fn expire_access_token(&self, tokens: &TokenSet) -> HarnessResult<()> {
        self.server
            .expire_access_token(&tokens.access_token)
            .await
            .map_err(|err| err.to_string())
    }

    /// Revokes the grant at the server's RFC 7009 endpoint, as the client itself could:
    /// written out here rather than through the provider under test.
    async fn invalidate_grant(&self, tokens: &TokenSet) -> HarnessResult<()> {
        let endpoint = self
            .provider
            .metadata()
            .revocation_endpoint
            .clone()
            .ok_or("the server has no revocation endpoint")?;
        let (hint, token) = match &tokens.refresh_token {
            Some(refresh) => ("refresh_token", refresh.expose_secret()),
            None => ("access_token", tokens.access_token.expose_secret()),
        };
        let client = self.variant.client();
        let response = reqwest::Client::new()
            .post(endpoint)
            .form(&[
                ("token", token),
                ("token_type_hint", hint),
                ("client_id", client.id),
                ("client_secret", client.secret),
            ])
            .timeout(Duration::from_secs(10))
            .send()
            .await
            .map_err(|err| format!("the revocation request failed: {}", err.without_url()))?;
        if response.status().is_success() {
            Ok(())
        } else {
            Err(format!(
                "the revocation endpoint answered {}",
                response.status()
            ))
        }
    }

    fn api_probe(&self) -> (http::Method, String) {
        let path = match self.variant.flow() {
            // The userinfo endpoint: the server's own protected resource.
            FlowKind::AuthorizationCode => "/me",
            // Userinfo takes only user tokens; the launcher's resource takes every token.
            _ => "/grantkit/resource",
        };
        (http::Method::GET, format!("{}{path}", self.server.issuer()))
    }

    async fn inject_fault(
        &self,
        endpoint: ServerEndpoint,
        fault: ServerFault,
        count: u32,
    ) -> HarnessResult<()> {
        let route = match endpoint {
            ServerEndpoint::Token => Route::Token,
            ServerEndpoint::Api => Route::Api,
        };
        self.server.proxy().inject(route, fault, count);
        Ok(())
    }

    async fn clear_faults(&self) -> HarnessResult<()> {
        self.server.proxy().clear_faults();
        Ok(())
    }
}
