//! What an application needs to sign a user in again once their grant has ended.

use crate::flow::FlowKind;
use crate::flow::redirect::RedirectFlow;
use crate::key::TokenKey;
use crate::token::{GrantKind, TokenSet};

/// How to sign the user in again after their grant ended (expired beyond renewal, refused,
/// revoked): the flow it came from and the scopes it held. Carried by
/// [`Error::ReauthorizationRequired`](crate::Error::ReauthorizationRequired) when the manager
/// deleted a stored grant; read it with [`Error::restart`](crate::Error::restart).
///
/// ```
/// # use grantkit_core::{Error, TokenManager};
/// # async fn example(manager: &TokenManager, err: Error) -> grantkit_core::Result<()> {
/// if let Some(restart) = err.restart() {
///     if let Some(flow) = restart.redirect_flow("http://127.0.0.1:8765/callback") {
///         let url = manager.start_authorization(&flow).await?;
///         // Send the user to `url` again, as on the first sign-in.
///         # let _ = url;
///     }
/// }
/// # Ok(()) }
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Restart {
    /// The flow that obtained the grant.
    pub flow: FlowKind,
    /// The scopes the grant held.
    pub scopes: Vec<String>,
    /// The grant's key: the account to sign in again.
    pub key: TokenKey,
}

impl Restart {
    /// The restart of the grant stored under `key`.
    pub fn of(key: &TokenKey, tokens: &TokenSet) -> Self {
        Self {
            flow: match tokens.grant {
                GrantKind::AuthorizationCode => FlowKind::AuthorizationCode,
                GrantKind::Implicit => FlowKind::Implicit,
                GrantKind::Password => FlowKind::Password,
                GrantKind::ClientCredentials => FlowKind::ClientCredentials,
                GrantKind::DeviceCode => FlowKind::DeviceCode,
            },
            scopes: tokens.scopes.clone(),
            key: key.clone(),
        }
    }

    /// The same browser flow with the same scopes, to the registered `redirect_uri`; `None`
    /// when the grant came from a flow without a browser (password, client credentials,
    /// device).
    pub fn redirect_flow(&self, redirect_uri: impl Into<String>) -> Option<RedirectFlow> {
        let flow = match self.flow {
            FlowKind::AuthorizationCode => RedirectFlow::authorization_code(redirect_uri),
            FlowKind::Implicit => RedirectFlow::implicit(redirect_uri),
            _ => return None,
        };
        Some(flow.with_scopes(self.scopes.clone()))
    }
}
