//! `Flow`: a thin state machine that obtains the first token set of a grant.
//!
//! Redirect flows ([`RedirectFlow`]) build an authorization URL and a
//! [`PendingAuthorization`], then check the callback (state in constant time, expiry, error
//! redirects, `iss`) before the provider's exchange. Direct flows ([`PasswordFlow`],
//! [`ClientCredentialsFlow`]) are one call into the provider.

use crate::error::{CallbackError, Error, Result};
use crate::pending::PendingAuthorization;
use crate::provider::{AuthorizationRequest, Grant, Issuer, Provider};
use crate::secret::{AuthorizationCode, Password, PkceVerifier, SecretUrl, StateToken};
use crate::token::TokenSet;
use async_trait::async_trait;
use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime};
use url::Url;

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
}

impl FlowKind {
    /// The stable name used in stored records and reports.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::AuthorizationCode => "authorization_code",
            Self::Implicit => "implicit",
            Self::Password => "password",
            Self::ClientCredentials => "client_credentials",
        }
    }

    /// The inverse of [`as_str`](Self::as_str).
    pub fn parse(name: &str) -> Option<Self> {
        Some(match name {
            "authorization_code" => Self::AuthorizationCode,
            "implicit" => Self::Implicit,
            "password" => Self::Password,
            "client_credentials" => Self::ClientCredentials,
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

/// A redirect back to the client: where it arrived, and the parameters of its query and
/// of its fragment.
///
/// Where it arrived (scheme, host, port and path) is checked against the redirect URI of
/// the pending authorization before anything else is read: a callback that names another
/// address was not sent to this client.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Callback {
    /// The query parameters.
    pub query: CallbackParams,
    /// The fragment parameters.
    pub fragment: CallbackParams,
    /// Where the redirect arrived.
    received_at: ReceivedAt,
}

/// Where a callback arrived: a whole URL, or only the path (a server handling the request
/// knows its own scheme, host and port).
#[derive(Clone, Debug, PartialEq, Eq)]
enum ReceivedAt {
    /// Scheme, host, port and path; query and fragment removed.
    Url(Url),
    /// The path alone.
    Path(String),
}

/// Callbacks longer than this are refused unparsed.
pub const MAX_CALLBACK_LEN: usize = 16 * 1024;

fn too_long() -> Error {
    Error::callback(CallbackError::Malformed("longer than 16 KiB"))
}

impl Callback {
    /// Parses the URL the browser was redirected to: absolute, or the path with query and
    /// fragment that a server received (`/callback?code=…`).
    pub fn parse(url: &str) -> Result<Self> {
        if url.len() > MAX_CALLBACK_LEN {
            return Err(too_long());
        }
        let (received_at, parsed) = received_at(url)?;
        Ok(Self {
            query: CallbackParams::parse(parsed.query().unwrap_or("")).map_err(Error::callback)?,
            fragment: CallbackParams::parse(parsed.fragment().unwrap_or(""))
                .map_err(Error::callback)?,
            received_at,
        })
    }

    /// A callback whose fragment was relayed by the page at `page` (see the loopback
    /// helper): the relayed string is parsed as the fragment, `page` (absolute, or a path)
    /// is where the redirect arrived.
    pub fn from_fragment(page: &str, fragment: &str) -> Result<Self> {
        if fragment.len() > MAX_CALLBACK_LEN || page.len() > MAX_CALLBACK_LEN {
            return Err(too_long());
        }
        Ok(Self {
            query: CallbackParams::default(),
            fragment: CallbackParams::parse(fragment.trim_start_matches('#'))
                .map_err(Error::callback)?,
            received_at: received_at(page)?.0,
        })
    }

    /// The parameters at `location`.
    pub fn params(&self, location: ParamLocation) -> &CallbackParams {
        match location {
            ParamLocation::Query => &self.query,
            ParamLocation::Fragment => &self.fragment,
        }
    }

    /// Whether the callback arrived at `redirect_uri`: same scheme, host, port and path
    /// (only the path when the callback was given as one). The redirect URI's own query,
    /// which the server appends to, is not compared.
    pub fn arrived_at(&self, redirect_uri: &str) -> bool {
        let Ok(expected) = Url::parse(redirect_uri) else {
            return false;
        };
        match &self.received_at {
            ReceivedAt::Url(url) => {
                url.scheme() == expected.scheme()
                    && url.host() == expected.host()
                    && url.port_or_known_default() == expected.port_or_known_default()
                    && url.path() == expected.path()
            }
            ReceivedAt::Path(path) => *path == expected.path(),
        }
    }
}

/// Where `url` (absolute, or a path) points, and the parsed URL.
fn received_at(url: &str) -> Result<(ReceivedAt, Url)> {
    let malformed = || Error::callback(CallbackError::Malformed("not a URL"));
    match Url::parse(url) {
        Ok(parsed) => {
            let mut at = parsed.clone();
            at.set_query(None);
            at.set_fragment(None);
            Ok((ReceivedAt::Url(at), parsed))
        }
        Err(url::ParseError::RelativeUrlWithoutBase) if url.starts_with('/') => {
            let base = Url::parse("http://callback.invalid/").expect("static URL");
            let parsed = base.join(url).map_err(|_| malformed())?;
            // `//host/path` is a network-path reference, not a path.
            if parsed.host_str() != Some("callback.invalid") {
                return Err(malformed());
            }
            Ok((ReceivedAt::Path(parsed.path().to_owned()), parsed))
        }
        Err(_) => Err(malformed()),
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

/// A thin state machine that obtains the first token set of a grant.
///
/// # Contract
///
/// - The provider does every exchange; a flow only builds requests and checks callbacks.
/// - Nothing reaches the token endpoint before the callback's state has been checked.
#[cfg_attr(feature = "mock", mockall::automock)]
#[async_trait]
pub trait Flow: Send + Sync + fmt::Debug {
    /// Which flow this is.
    fn kind(&self) -> FlowKind;

    /// The provider the flow runs against.
    fn provider(&self) -> Arc<dyn Provider>;

    /// Starts the flow.
    ///
    /// # Behavior
    /// - Redirect flows return the authorization URL and a pending authorization with a
    ///   fresh state (and PKCE verifier where used) expiring after the flow's TTL.
    /// - Direct flows call the provider and return the token set.
    async fn start(&self, now: SystemTime) -> Result<FlowStart>;

    /// Finishes a redirect flow with the callback that answered `pending`.
    ///
    /// # Behavior
    /// - Refuses a pending authorization of another provider, client or flow, or one
    ///   expired at `now`.
    /// - Refuses a missing or different `state` (compared in constant time) before
    ///   anything else is read.
    /// - Refuses a callback that arrived at another scheme, host, port or path than the
    ///   pending authorization's redirect URI.
    /// - Refuses an `iss` that does not name the provider's issuer, and a missing `iss`
    ///   where the server promises one (RFC 9207).
    /// - Turns an error redirect (`error=access_denied`, …) into [`Error::OAuth`].
    /// - Then calls the provider's exchange, once.
    /// - Direct flows fail with [`Error::Unsupported`].
    async fn finish(
        &self,
        pending: PendingAuthorization,
        callback: &Callback,
        now: SystemTime,
    ) -> Result<TokenSet>;
}

/// A redirect URI must not carry the code or token over plain HTTP to another machine:
/// `https`, plain `http` only to a loopback address (RFC 8252 §7.3), or an app's private
/// scheme (RFC 8252 §7.1).
fn check_redirect_uri(redirect_uri: &str) -> Result<()> {
    let url = Url::parse(redirect_uri)
        .map_err(|_| Error::configuration("the redirect URI is not an absolute URL"))?;
    if url.scheme() == "http" && !crate::is_loopback(&url) {
        return Err(Error::configuration(
            "the redirect URI uses plain HTTP to a host that is not a loopback address: use HTTPS",
        ));
    }
    if url.fragment().is_some() {
        return Err(Error::configuration(
            "the redirect URI must not have a fragment (RFC 6749 §3.1.2)",
        ));
    }
    Ok(())
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

/// An authorization-code or implicit flow through the user's browser.
///
/// ```
/// # use grantkit_core::{RedirectFlow, Provider};
/// # use std::sync::Arc;
/// # fn example(provider: Arc<dyn Provider>) {
/// let flow = RedirectFlow::authorization_code(provider, "http://127.0.0.1:8765/callback")
///     .with_scopes(["user_info", "scheduler"]);
/// # }
/// ```
#[derive(Clone, Debug)]
pub struct RedirectFlow {
    provider: Arc<dyn Provider>,
    kind: FlowKind,
    redirect_uri: String,
    scopes: Vec<String>,
    pkce: bool,
    ttl: Duration,
}

impl RedirectFlow {
    /// The authorization-code flow, with PKCE when the provider supports it.
    pub fn authorization_code(
        provider: Arc<dyn Provider>,
        redirect_uri: impl Into<String>,
    ) -> Self {
        let pkce = provider.capabilities().pkce;
        Self {
            provider,
            kind: FlowKind::AuthorizationCode,
            redirect_uri: redirect_uri.into(),
            scopes: Vec::new(),
            pkce,
            ttl: DEFAULT_PENDING_TTL,
        }
    }

    /// The implicit flow: the token arrives in the redirect. Prefer the authorization code
    /// flow wherever the provider offers it (RFC 9700 §2.1.2).
    pub fn implicit(provider: Arc<dyn Provider>, redirect_uri: impl Into<String>) -> Self {
        Self {
            provider,
            kind: FlowKind::Implicit,
            redirect_uri: redirect_uri.into(),
            scopes: Vec::new(),
            pkce: false,
            ttl: DEFAULT_PENDING_TTL,
        }
    }

    /// Sets the scopes to ask for.
    pub fn with_scopes<I, S>(mut self, scopes: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.scopes = scopes.into_iter().map(Into::into).collect();
        self
    }

    /// Sets how long the callback may take.
    pub fn with_ttl(mut self, ttl: Duration) -> Self {
        self.ttl = ttl;
        self
    }

    /// The redirect URI.
    pub fn redirect_uri(&self) -> &str {
        &self.redirect_uri
    }
}

#[async_trait]
impl Flow for RedirectFlow {
    fn kind(&self) -> FlowKind {
        self.kind
    }

    fn provider(&self) -> Arc<dyn Provider> {
        self.provider.clone()
    }

    async fn start(&self, now: SystemTime) -> Result<FlowStart> {
        check_redirect_uri(&self.redirect_uri)?;
        if !self.provider.capabilities().supports(self.kind) {
            return Err(Error::unsupported(format!(
                "{} does not offer the {} flow",
                self.provider.id(),
                self.kind
            )));
        }
        let state = StateToken::generate();
        let verifier = self.pkce.then(PkceVerifier::generate);
        let request = AuthorizationRequest {
            flow: self.kind,
            redirect_uri: self.redirect_uri.clone(),
            scopes: self.scopes.clone(),
            state: state.clone(),
            pkce_challenge: verifier.as_ref().map(PkceVerifier::s256_challenge),
        };
        let url = self.provider.authorization_url(&request).await?;
        let pending = PendingAuthorization {
            state,
            flow: self.kind,
            provider: self.provider.id().to_owned(),
            client: self.provider.client_id().to_owned(),
            redirect_uri: self.redirect_uri.clone(),
            scopes: self.scopes.clone(),
            pkce_verifier: verifier,
            created_at: now,
            expires_at: now + self.ttl,
            extras: BTreeMap::new(),
        };
        Ok(FlowStart::Redirect {
            url: SecretUrl::new(String::from(url)),
            pending,
        })
    }

    async fn finish(
        &self,
        pending: PendingAuthorization,
        callback: &Callback,
        now: SystemTime,
    ) -> Result<TokenSet> {
        if pending.flow != self.kind
            || pending.provider != self.provider.id()
            || pending.client != self.provider.client_id()
        {
            return Err(Error::callback(CallbackError::WrongFlow));
        }
        if pending.is_expired(now) {
            return Err(Error::callback(CallbackError::Expired));
        }
        let params = callback.params(self.provider.callback_location(self.kind));
        let state = params
            .get("state")
            .ok_or(Error::callback(CallbackError::MissingParameter("state")))?;
        if StateToken::new(state) != pending.state {
            return Err(Error::callback(CallbackError::StateMismatch));
        }
        if !callback.arrived_at(&pending.redirect_uri) {
            return Err(Error::callback(CallbackError::WrongAddress));
        }
        check_issuer(params.get("iss"), self.provider.issuer())?;
        if let Some(code) = params.get("error") {
            return Err(Error::oauth(
                code,
                params.get("error_description").map(str::to_owned),
            ));
        }
        let grant = match self.kind {
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
        self.provider.exchange(grant).await
    }
}

/// The resource-owner password flow (Joind.in). The password is used once: the flow
/// hands it to the provider at `start` and keeps it only until dropped.
pub struct PasswordFlow {
    provider: Arc<dyn Provider>,
    username: String,
    password: Password,
}

impl PasswordFlow {
    /// A password flow for one login.
    pub fn new(
        provider: Arc<dyn Provider>,
        username: impl Into<String>,
        password: Password,
    ) -> Self {
        Self {
            provider,
            username: username.into(),
            password,
        }
    }
}

impl fmt::Debug for PasswordFlow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PasswordFlow")
            .field("provider", &self.provider.id())
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

    fn provider(&self) -> Arc<dyn Provider> {
        self.provider.clone()
    }

    async fn start(&self, _now: SystemTime) -> Result<FlowStart> {
        let tokens = self
            .provider
            .exchange(Grant::Password {
                username: self.username.clone(),
                password: self.password.clone(),
            })
            .await?;
        Ok(FlowStart::Complete(tokens))
    }

    async fn finish(
        &self,
        _: PendingAuthorization,
        _: &Callback,
        _: SystemTime,
    ) -> Result<TokenSet> {
        Err(Error::unsupported("the password flow has no callback"))
    }
}

/// The client-credentials flow: the client acts for itself.
#[derive(Debug)]
pub struct ClientCredentialsFlow {
    provider: Arc<dyn Provider>,
    scopes: Vec<String>,
}

impl ClientCredentialsFlow {
    /// A client-credentials flow asking for `scopes`.
    pub fn new<I, S>(provider: Arc<dyn Provider>, scopes: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Self {
            provider,
            scopes: scopes.into_iter().map(Into::into).collect(),
        }
    }
}

#[async_trait]
impl Flow for ClientCredentialsFlow {
    fn kind(&self) -> FlowKind {
        FlowKind::ClientCredentials
    }

    fn provider(&self) -> Arc<dyn Provider> {
        self.provider.clone()
    }

    async fn start(&self, _now: SystemTime) -> Result<FlowStart> {
        let tokens = self
            .provider
            .exchange(Grant::ClientCredentials {
                scopes: self.scopes.clone(),
            })
            .await?;
        Ok(FlowStart::Complete(tokens))
    }

    async fn finish(
        &self,
        _: PendingAuthorization,
        _: &Callback,
        _: SystemTime,
    ) -> Result<TokenSet> {
        Err(Error::unsupported(
            "the client-credentials flow has no callback",
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn callback_parses_query_and_fragment_and_hides_values() {
        let cb =
            Callback::parse("http://127.0.0.1:1/cb?code=c0de&state=s1#access_token=t0k&state=s2")
                .unwrap();
        assert_eq!(cb.query.get("code"), Some("c0de"));
        assert_eq!(cb.fragment.get("access_token"), Some("t0k"));
        assert_eq!(cb.fragment.get("state"), Some("s2"));
        let shown = format!("{cb:?}");
        for secret in ["c0de", "t0k", "s1", "s2"] {
            assert!(!shown.contains(secret), "{shown}");
        }
        let relative = Callback::parse("/cb?code=x").unwrap();
        assert_eq!(relative.query.get("code"), Some("x"));
    }

    #[test]
    fn redirect_uris_never_carry_codes_in_clear_to_other_machines() {
        for ok in [
            "https://app.example/callback",
            "http://127.0.0.1:8765/callback",
            "http://[::1]:8765/callback",
            "http://localhost:8765/callback",
            "com.example.app:/oauth2redirect",
        ] {
            assert!(check_redirect_uri(ok).is_ok(), "{ok}");
        }
        for bad in [
            "http://app.example/callback",
            "https://app.example/cb#x",
            "/relative",
        ] {
            let err = check_redirect_uri(bad).unwrap_err();
            assert!(matches!(err, Error::Configuration { .. }), "{bad}: {err}");
        }
    }

    #[test]
    fn callback_refuses_duplicates_and_huge_input() {
        let err = Callback::parse("/cb?state=a&state=b").unwrap_err();
        assert!(matches!(
            err,
            Error::InvalidCallback {
                reason: CallbackError::Malformed(_)
            }
        ));
        let err = Callback::parse(&format!("/cb?x={}", "a".repeat(MAX_CALLBACK_LEN))).unwrap_err();
        assert!(matches!(err, Error::InvalidCallback { .. }));
    }
}
