//! Flows: thin state machines that obtain the first token set of a grant, and what a
//! flow author needs to write one.
//!
//! An application starts flows through the [`TokenManager`](crate::TokenManager):
//! [`start_authorization`](crate::TokenManager::start_authorization) with a
//! [`RedirectFlow`](crate::RedirectFlow) then
//! [`complete_authorization`](crate::TokenManager::complete_authorization) with the
//! [`Callback`], or one call such as
//! [`sign_in_with_password`](crate::TokenManager::sign_in_with_password). A redirect flow
//! builds an authorization URL and a [`PendingAuthorization`]; [`finish`] checks the
//! callback (state in constant time, expiry, where it arrived, `iss`, error redirects)
//! before the provider's exchange. Direct flows ([`PasswordFlow`],
//! [`ClientCredentialsFlow`]) are one call into the provider.

pub(crate) mod redirect;
mod restart;

use crate::Provider;
use crate::error::{CallbackError, Error, Result};
use crate::flow::redirect::Callback;
use crate::pending::PendingAuthorization;
use crate::provider::{Grant, Issuer};
use crate::secret::{AuthorizationCode, Password, SecretUrl, StateToken};
use crate::token::TokenSet;
use async_trait::async_trait;
use std::collections::BTreeMap;
use std::fmt;
use std::time::{Duration, SystemTime};

pub use redirect::MAX_CALLBACK_LEN;
pub use restart::Restart;

/// The kinds of flow grantkit knows.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum FlowKind {
    /// Authorization code, with PKCE where the provider supports it.
    AuthorizationCode,
    /// A token delivered in the redirect: OAuth 2.0 implicit (discouraged by RFC 9700; only
    /// for providers that offer nothing better) or Joind.in's `oauth_allow`.
    Implicit,
    /// Resource-owner password credentials (Joind.in's only current way in).
    Password,
    /// Client credentials: the client acts for itself.
    ClientCredentials,
    /// The device authorization grant (RFC 8628): the user signs in on another device with
    /// a short code.
    DeviceCode,
}

impl FlowKind {
    /// The stable name used in stored records and reports.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::AuthorizationCode => "authorization_code",
            Self::Implicit => "implicit",
            Self::Password => "password",
            Self::ClientCredentials => "client_credentials",
            Self::DeviceCode => "device_code",
        }
    }

    /// The inverse of [`as_str`](Self::as_str).
    pub fn parse(name: &str) -> Option<Self> {
        Some(match name {
            "authorization_code" => Self::AuthorizationCode,
            "implicit" => Self::Implicit,
            "password" => Self::Password,
            "client_credentials" => Self::ClientCredentials,
            "device_code" => Self::DeviceCode,
            _ => return None,
        })
    }

    /// Whether the flow goes through the user's browser.
    pub fn is_redirect(self) -> bool {
        matches!(self, Self::AuthorizationCode | Self::Implicit)
    }
}

impl fmt::Display for FlowKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where a redirect carries its parameters.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ParamLocation {
    /// The query string.
    Query,
    /// The fragment (`#…`), which only the browser sees.
    Fragment,
}

/// The parameters of one part of a callback. `Debug` shows only their names: values
/// include codes, tokens and state.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct CallbackParams(BTreeMap<String, String>);

impl CallbackParams {
    /// The value of `name`.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(String::as_str)
    }

    /// Whether there are no parameters.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The parameter names.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.0.keys().map(String::as_str)
    }

    /// Parses `a=1&b=2` (form-urlencoded). A repeated name is refused: parameter
    /// pollution must never choose which `state` or `code` counts.
    pub fn parse(encoded: &str) -> std::result::Result<Self, CallbackError> {
        let mut params = BTreeMap::new();
        for (name, value) in url::form_urlencoded::parse(encoded.as_bytes()) {
            if params
                .insert(name.into_owned(), value.into_owned())
                .is_some()
            {
                return Err(CallbackError::Malformed("a parameter appears twice"));
            }
        }
        Ok(Self(params))
    }
}

impl<K: Into<String>, V: Into<String>> FromIterator<(K, V)> for CallbackParams {
    fn from_iter<I: IntoIterator<Item = (K, V)>>(iter: I) -> Self {
        Self(
            iter.into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
        )
    }
}

impl fmt::Debug for CallbackParams {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.0.keys()).finish()
    }
}

/// What [`Flow::start`] produced.
#[derive(Debug)]
pub enum FlowStart {
    /// Send the user to `url`; keep `pending` until the callback.
    Redirect {
        /// The authorization URL. It carries the state, so it is a [`SecretUrl`].
        url: SecretUrl,
        /// What the callback is checked against.
        pending: PendingAuthorization,
    },
    /// A direct flow finished at once.
    Complete(TokenSet),
}

/// A thin state machine that obtains the first token set of a grant from a provider.
///
/// # Contract
///
/// - The provider does every exchange; a flow only builds requests, and [`finish`] checks
///   callbacks.
/// - A flow holds no provider: it runs against the one it is given, which is the
///   [`TokenManager`](crate::TokenManager)'s.
// `mockall` needs the provider's lifetime spelt out, and then sees the parentheses as
// unneeded where they are not.
#[cfg_attr(feature = "mock", mockall::automock, allow(unused_parens))]
#[async_trait]
pub trait Flow: Send + Sync + fmt::Debug {
    /// Which flow this is.
    fn kind(&self) -> FlowKind;

    /// Starts the flow against `provider`.
    ///
    /// # Behavior
    /// - Redirect flows return the authorization URL and a pending authorization with a
    ///   fresh state (and PKCE verifier where the provider uses PKCE) expiring after the
    ///   flow's TTL; they fail with [`Error::Unsupported`] for a flow the provider does
    ///   not offer.
    /// - Direct flows call the provider and return the token set.
    async fn start(
        &self,
        provider: &(dyn Provider + 'static),
        now: SystemTime,
    ) -> Result<FlowStart>;
}

/// Finishes a redirect flow with the callback that answered `pending`, and exchanges it at
/// `provider`.
///
/// # Behavior
/// - Refuses a pending authorization of another provider or client, or one expired at
///   `now`.
/// - Refuses a missing or different `state` (compared in constant time) before anything
///   else is read.
/// - Refuses a callback that arrived at another scheme, host, port or path than the
///   pending authorization's redirect URI.
/// - Refuses an `iss` that does not name the provider's issuer, and a missing `iss` where
///   the server promises one (RFC 9207).
/// - Turns an error redirect (`error=access_denied`, …) into [`Error::OAuth`].
/// - Then calls the provider's exchange, once.
pub async fn finish(
    provider: &(dyn Provider + 'static),
    pending: PendingAuthorization,
    callback: &Callback,
    now: SystemTime,
) -> Result<TokenSet> {
    if !pending.flow.is_redirect()
        || pending.provider != provider.id()
        || pending.client != provider.client_id()
    {
        return Err(Error::callback(CallbackError::WrongFlow));
    }
    if pending.is_expired(now) {
        return Err(Error::callback(CallbackError::Expired));
    }
    let params = callback.params(provider.callback_location(pending.flow));
    let state = params
        .get("state")
        .ok_or(Error::callback(CallbackError::MissingParameter("state")))?;
    if StateToken::new(state) != pending.state {
        return Err(Error::callback(CallbackError::StateMismatch));
    }
    if !callback.arrived_at(&pending.redirect_uri) {
        return Err(Error::callback(CallbackError::WrongAddress));
    }
    check_issuer(params.get("iss"), provider.issuer())?;
    if let Some(code) = params.get("error") {
        return Err(Error::oauth(
            code,
            params.get("error_description").map(str::to_owned),
        ));
    }
    let grant = match pending.flow {
        FlowKind::AuthorizationCode => Grant::AuthorizationCode {
            code: AuthorizationCode::new(
                params
                    .get("code")
                    .ok_or(Error::callback(CallbackError::MissingParameter("code")))?,
            ),
            redirect_uri: pending.redirect_uri.clone(),
            pkce_verifier: pending.pkce_verifier.clone(),
        },
        _ => Grant::Implicit {
            params: params.clone(),
            scopes: pending.scopes.clone(),
        },
    };
    let mut tokens = provider.exchange(grant).await?;
    if tokens.scopes.is_empty() {
        // RFC 6749 §5.1: a response that names no scope granted the scope requested.
        tokens.scopes = pending.scopes;
    }
    Ok(tokens)
}

/// RFC 9207 §2.4: an `iss` that is present must name the provider's issuer, whatever the
/// server's metadata says (a provider without an issuer identifier cannot have sent one);
/// a server that promises `iss` must send it.
fn check_issuer(iss: Option<&str>, issuer: Option<Issuer>) -> Result<()> {
    let matches = match (iss, &issuer) {
        (Some(iss), Some(issuer)) => iss == issuer.identifier,
        (Some(_), None) => false,
        (None, Some(issuer)) => !issuer.always_sent,
        (None, None) => true,
    };
    if matches {
        Ok(())
    } else {
        Err(Error::callback(CallbackError::IssuerMismatch))
    }
}

/// How long a redirect flow waits for its callback, by default.
pub const DEFAULT_PENDING_TTL: Duration = Duration::from_secs(600);

/// The resource-owner password flow (Joind.in). The password is used once: the flow
/// hands it to the provider at `start` and keeps it only until dropped.
pub struct PasswordFlow {
    username: String,
    password: Password,
}

impl PasswordFlow {
    /// A password flow for one login.
    pub fn new(username: impl Into<String>, password: Password) -> Self {
        Self {
            username: username.into(),
            password,
        }
    }
}

impl fmt::Debug for PasswordFlow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PasswordFlow")
            .field("username", &self.username)
            .field("password", &self.password)
            .finish()
    }
}

#[async_trait]
impl Flow for PasswordFlow {
    fn kind(&self) -> FlowKind {
        FlowKind::Password
    }

    async fn start(
        &self,
        provider: &(dyn Provider + 'static),
        _now: SystemTime,
    ) -> Result<FlowStart> {
        let tokens = provider
            .exchange(Grant::Password {
                username: self.username.clone(),
                password: self.password.clone(),
            })
            .await?;
        Ok(FlowStart::Complete(tokens))
    }
}

/// The client-credentials flow: the client acts for itself.
#[derive(Debug)]
pub struct ClientCredentialsFlow {
    scopes: Vec<String>,
}

impl ClientCredentialsFlow {
    /// A client-credentials flow asking for `scopes`.
    pub fn new<I, S>(scopes: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Self {
            scopes: scopes.into_iter().map(Into::into).collect(),
        }
    }
}

#[async_trait]
impl Flow for ClientCredentialsFlow {
    fn kind(&self) -> FlowKind {
        FlowKind::ClientCredentials
    }

    async fn start(
        &self,
        provider: &(dyn Provider + 'static),
        _now: SystemTime,
    ) -> Result<FlowStart> {
        let tokens = provider
            .exchange(Grant::ClientCredentials {
                scopes: self.scopes.clone(),
            })
            .await?;
        Ok(FlowStart::Complete(tokens))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn callback_params_refuse_duplicates() {
        assert!(CallbackParams::parse("state=a&state=b").is_err());
        let params = CallbackParams::parse("a=1&b=2").unwrap();
        assert_eq!(params.get("b"), Some("2"));
        assert_eq!(format!("{params:?}"), r#"{"a", "b"}"#);
    }

    #[test]
    fn an_iss_is_checked_whenever_present() {
        let issuer = |always_sent| {
            Some(Issuer {
                identifier: "https://as.example".into(),
                always_sent,
            })
        };
        assert!(check_issuer(Some("https://as.example"), issuer(false)).is_ok());
        assert!(check_issuer(Some("https://evil.example"), issuer(false)).is_err());
        assert!(check_issuer(Some("https://as.example"), None).is_err());
        assert!(check_issuer(None, issuer(false)).is_ok());
        assert!(check_issuer(None, issuer(true)).is_err());
        assert!(check_issuer(None, None).is_ok());
    }
}
