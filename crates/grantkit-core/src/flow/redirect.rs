//! `RedirectFlow` and `Callback`: a flow through the user's browser, and the redirect that
//! ends it. Both are re-exported at the crate root.

use super::{DEFAULT_PENDING_TTL, Flow, FlowKind, FlowStart, ParamLocation};
use crate::Provider;
use crate::error::{CallbackError, Error, Result};
use crate::flow::CallbackParams;
use crate::pending::PendingAuthorization;
use crate::provider::AuthorizationRequest;
use crate::secret::{PkceVerifier, SecretUrl, StateToken};
use async_trait::async_trait;
use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};
use url::Url;

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

/// A redirect URI must not carry the code or token over plain HTTP to another machine:
/// `https`, plain `http` only to a loopback address (RFC 8252 §7.3), or an app's private
/// scheme (RFC 8252 §7.1).
fn check_redirect_uri(redirect_uri: &str) -> Result<()> {
    let url = Url::parse(redirect_uri)
        .map_err(|_| Error::configuration("the redirect URI is not an absolute URL"))?;
    if url.scheme() == "http" && !crate::net::is_loopback(&url) {
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

/// An authorization-code or implicit flow through the user's browser: what to ask for and
/// where the browser comes back. Start it with
/// [`TokenManager::start_authorization`](crate::TokenManager::start_authorization).
///
/// ```
/// use grantkit_core::RedirectFlow;
///
/// let flow = RedirectFlow::authorization_code("http://127.0.0.1:8765/callback")
///     .with_scopes(["user_info", "scheduler"]);
/// assert_eq!(flow.redirect_uri(), "http://127.0.0.1:8765/callback");
/// ```
#[derive(Clone, Debug)]
pub struct RedirectFlow {
    kind: FlowKind,
    redirect_uri: String,
    scopes: Vec<String>,
    ttl: Duration,
}

impl RedirectFlow {
    /// The authorization-code flow, with PKCE (S256) wherever the provider supports it.
    pub fn authorization_code(redirect_uri: impl Into<String>) -> Self {
        Self::new(FlowKind::AuthorizationCode, redirect_uri)
    }

    /// The implicit flow: the token arrives in the redirect. Prefer the authorization code
    /// flow wherever the provider offers it (RFC 9700 §2.1.2).
    pub fn implicit(redirect_uri: impl Into<String>) -> Self {
        Self::new(FlowKind::Implicit, redirect_uri)
    }

    fn new(kind: FlowKind, redirect_uri: impl Into<String>) -> Self {
        Self {
            kind,
            redirect_uri: redirect_uri.into(),
            scopes: Vec::new(),
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

    /// Sets how long the callback may take (default ten minutes).
    pub fn with_ttl(mut self, ttl: Duration) -> Self {
        self.ttl = ttl;
        self
    }

    /// The redirect URI.
    pub fn redirect_uri(&self) -> &str {
        &self.redirect_uri
    }

    /// The scopes asked for.
    pub fn scopes(&self) -> &[String] {
        &self.scopes
    }
}

#[async_trait]
impl Flow for RedirectFlow {
    fn kind(&self) -> FlowKind {
        self.kind
    }

    async fn start(
        &self,
        provider: &(dyn Provider + 'static),
        now: SystemTime,
    ) -> Result<FlowStart> {
        check_redirect_uri(&self.redirect_uri)?;
        if !provider.capabilities().supports(self.kind) {
            return Err(Error::unsupported(format!(
                "{} does not offer the {} flow",
                provider.id(),
                self.kind
            )));
        }
        let state = StateToken::generate();
        let pkce = self.kind == FlowKind::AuthorizationCode && provider.capabilities().pkce;
        let verifier = pkce.then(PkceVerifier::generate);
        let request = AuthorizationRequest {
            flow: self.kind,
            redirect_uri: self.redirect_uri.clone(),
            scopes: self.scopes.clone(),
            state: state.clone(),
            pkce_challenge: verifier.as_ref().map(PkceVerifier::s256_challenge),
        };
        let url = provider.authorization_url(&request).await?;
        let pending = PendingAuthorization {
            state,
            flow: self.kind,
            provider: provider.id().to_owned(),
            client: provider.client_id().to_owned(),
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
