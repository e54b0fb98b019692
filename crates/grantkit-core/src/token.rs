//! `TokenSet`: what a grant yields and what stores keep.

use crate::secret::{AccessToken, RefreshToken};
use std::collections::BTreeMap;
use std::fmt;
use std::time::{Duration, SystemTime};

/// How a token set was obtained; decides what can be done when it expires.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum GrantKind {
    /// OAuth 2.0 authorization code, with or without PKCE.
    AuthorizationCode,
    /// A token delivered in the redirect itself: OAuth 2.0 implicit (join.me, fragment) or
    /// Joind.in's legacy `oauth_allow` page (query). Cannot be refreshed.
    Implicit,
    /// Resource-owner password grant (Joind.in).
    Password,
    /// Client credentials: no user; "refreshing" repeats the grant.
    ClientCredentials,
    /// The device authorization grant (RFC 8628).
    DeviceCode,
}

impl GrantKind {
    /// The stable name used in stored records.
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
}

/// The tokens of one grant.
///
/// `Debug` redacts both tokens and shows only the names of the extras. Serialisation for
/// storage is explicit: [`crate::store::codec::encode_token_set`].
#[derive(Clone, PartialEq, Eq)]
pub struct TokenSet {
    /// The access token.
    pub access_token: AccessToken,
    /// The refresh token, when the grant has one.
    pub refresh_token: Option<RefreshToken>,
    /// The token type, normalised to lower case (`bearer`).
    pub token_type: String,
    /// When the access token expires; `None` when the provider never says (Joind.in).
    pub expires_at: Option<SystemTime>,
    /// When the refresh token expires, when the provider says.
    pub refresh_expires_at: Option<SystemTime>,
    /// When the access token was obtained; with `expires_at` it gives the token's lifetime,
    /// which bounds how early it is refreshed. Set by the manager when it stores a grant.
    pub obtained_at: Option<SystemTime>,
    /// The granted scopes, in the provider's spelling.
    pub scopes: Vec<String>,
    /// How the grant was obtained.
    pub grant: GrantKind,
    /// Provider-specific, non-secret values (e.g. Joind.in's `user_uri`). A provider must
    /// never put a secret here.
    pub extras: BTreeMap<String, String>,
}

impl TokenSet {
    /// A bearer token set of the given grant with nothing else known.
    pub fn new(access_token: AccessToken, grant: GrantKind) -> Self {
        Self {
            access_token,
            refresh_token: None,
            token_type: "bearer".to_owned(),
            expires_at: None,
            refresh_expires_at: None,
            obtained_at: None,
            scopes: Vec::new(),
            grant,
            extras: BTreeMap::new(),
        }
    }

    /// Sets the refresh token.
    pub fn with_refresh_token(mut self, token: RefreshToken) -> Self {
        self.refresh_token = Some(token);
        self
    }

    /// Sets the expiry to `now + lifetime`, and `obtained_at` to `now`.
    pub fn expiring_in(mut self, now: SystemTime, lifetime: Duration) -> Self {
        self.expires_at = Some(now + lifetime);
        self.obtained_at = Some(now);
        self
    }

    /// Sets the scopes.
    pub fn with_scopes<I, S>(mut self, scopes: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.scopes = scopes.into_iter().map(Into::into).collect();
        self
    }

    /// Adds a non-secret provider extra.
    pub fn with_extra(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.extras.insert(name.into(), value.into());
        self
    }

    /// Whether the access token has expired at `now`. A token without expiry never has.
    pub fn is_expired(&self, now: SystemTime) -> bool {
        self.expires_at.is_some_and(|at| now >= at)
    }

    /// Whether the refresh token is known to have expired at `now`.
    pub fn is_refresh_expired(&self, now: SystemTime) -> bool {
        self.refresh_expires_at.is_some_and(|at| now >= at)
    }
}

impl fmt::Debug for TokenSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenSet")
            .field("access_token", &self.access_token)
            .field("refresh_token", &self.refresh_token)
            .field("token_type", &self.token_type)
            .field("expires_at", &self.expires_at)
            .field("refresh_expires_at", &self.refresh_expires_at)
            .field("obtained_at", &self.obtained_at)
            .field("scopes", &self.scopes)
            .field("grant", &self.grant)
            .field("extras", &self.extras.keys().collect::<Vec<_>>())
            .finish()
    }
}
