//! What the manager benchmarks share: a provider that never leaves the process.

use async_trait::async_trait;
use grantkit_core::{
    AccessToken, GrantKind, Provider, RefreshToken, Result, Revocation, TokenSet,
    provider::{AuthorizationRequest, Capabilities, Grant},
};
use std::sync::Arc;
use std::time::{Duration, SystemTime};
use url::Url;

/// A provider whose refresh takes a fixed time, as a token endpoint on a fast network would.
#[derive(Debug)]
pub(crate) struct TimedProvider {
    capabilities: Capabilities,
    refresh_time: Duration,
}

#[async_trait]
impl Provider for TimedProvider {
    fn id(&self) -> &str {
        "bench"
    }
    fn client_id(&self) -> &str {
        "client"
    }
    fn capabilities(&self) -> &Capabilities {
        &self.capabilities
    }
    fn request_timeout(&self) -> Duration {
        Duration::from_secs(5)
    }
    async fn authorization_url(&self, _: &AuthorizationRequest) -> Result<Url> {
        unreachable!("the benchmark never starts a flow")
    }
    async fn exchange(&self, _: Grant) -> Result<TokenSet> {
        unreachable!("the benchmark never starts a flow")
    }
    async fn refresh(&self, _: &TokenSet) -> Result<TokenSet> {
        tokio::time::sleep(self.refresh_time).await;
        Ok(token_set(
            "refreshed",
            SystemTime::now() + Duration::from_secs(3600),
        ))
    }
    async fn identify(&self, _: &TokenSet) -> Result<String> {
        Ok("account".to_owned())
    }
    async fn revoke(&self, _: &TokenSet) -> Result<Revocation> {
        Ok(Revocation::NotSupported)
    }
}

pub(crate) fn token_set(access: &str, expires_at: SystemTime) -> TokenSet {
    let mut tokens = TokenSet::new(AccessToken::new(access), GrantKind::AuthorizationCode)
        .with_refresh_token(RefreshToken::new("refresh"));
    tokens.expires_at = Some(expires_at);
    tokens
}

pub(crate) fn provider() -> Arc<TimedProvider> {
    Arc::new(TimedProvider {
        capabilities: Capabilities::default().with_refresh(true),
        refresh_time: Duration::from_millis(2),
    })
}
