//! `Provider`: everything particular to one OAuth service.

use crate::error::{Error, Result};
use crate::flow::{Callback, CallbackParams, FlowKind, ParamLocation};
use crate::secret::{
    AccessToken, AuthorizationCode, Password, PkceVerifier, SecretUrl, StateToken,
};
use crate::token::TokenSet;
use async_trait::async_trait;
use http::{HeaderMap, HeaderValue, StatusCode, header};
use std::fmt;
use std::time::{Duration, SystemTime};
use url::Url;

/// What a provider can do. The conformance suite chooses its behaviours from these.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Capabilities {
    /// The flows the provider offers.
    pub flows: Vec<FlowKind>,
    /// Refresh tokens can be exchanged for new access tokens.
    pub refresh: bool,
    /// A refresh may return a new refresh token and invalidate the old one. When set, a
    /// refresh whose outcome is unknown is never replayed.
    pub may_rotate_refresh_tokens: bool,
    /// PKCE (RFC 7636, S256) is used in the authorization-code flow.
    pub pkce: bool,
    /// The access token can be expired at the provider while the refresh token survives
    /// (join.me's Expire Access).
    pub expire_access: bool,
    /// The whole grant can be revoked (RFC 7009).
    pub revoke_grant: bool,
    /// An expired token that cannot be refreshed can be renewed by the user at a URL
    /// (join.me implicit grant).
    pub renew_authorization: bool,
    /// The scopes the provider knows.
    pub scopes: Vec<String>,
}

impl Capabilities {
    /// Sets the flows.
    pub fn with_flows(mut self, flows: impl IntoIterator<Item = FlowKind>) -> Self {
        self.flows = flows.into_iter().collect();
        self
    }
    /// Sets `refresh`.
    pub fn with_refresh(mut self, yes: bool) -> Self {
        self.refresh = yes;
        self
    }
    /// Sets `may_rotate_refresh_tokens`.
    pub fn with_rotation(mut self, yes: bool) -> Self {
        self.may_rotate_refresh_tokens = yes;
        self
    }
    /// Sets `pkce`.
    pub fn with_pkce(mut self, yes: bool) -> Self {
        self.pkce = yes;
        self
    }
    /// Sets `expire_access`.
    pub fn with_expire_access(mut self, yes: bool) -> Self {
        self.expire_access = yes;
        self
    }
    /// Sets `revoke_grant`.
    pub fn with_revoke_grant(mut self, yes: bool) -> Self {
        self.revoke_grant = yes;
        self
    }
    /// Sets `renew_authorization`.
    pub fn with_renew_authorization(mut self, yes: bool) -> Self {
        self.renew_authorization = yes;
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
    /// Whether the provider offers `flow`.
    pub fn supports(&self, flow: FlowKind) -> bool {
        self.flows.contains(&flow)
    }
}

/// An authorization server's issuer identifier, as RFC 9207 checks it in callbacks.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Issuer {
    /// The issuer identifier (RFC 8414 `issuer`): an `iss` that is present must equal it.
    pub identifier: String,
    /// The server promises `iss` in every authorization response
    /// (`authorization_response_iss_parameter_supported`): a callback without it is refused.
    pub always_sent: bool,
}

/// The parameters of an authorization request, built by a redirect flow.
#[derive(Clone, Debug)]
pub struct AuthorizationRequest {
    /// `AuthorizationCode` or `Implicit`.
    pub flow: FlowKind,
    /// The redirect URI, sent byte for byte.
    pub redirect_uri: String,
    /// The scopes to ask for.
    pub scopes: Vec<String>,
    /// The state to send.
    pub state: StateToken,
    /// The PKCE S256 challenge, when the flow uses PKCE.
    pub pkce_challenge: Option<String>,
}

/// A grant to exchange at the provider for a token set.
#[derive(Debug)]
#[non_exhaustive]
pub enum Grant {
    /// An authorization code from a redirect.
    AuthorizationCode {
        /// The code; sent at most once.
        code: AuthorizationCode,
        /// The redirect URI of the authorization request, byte for byte.
        redirect_uri: String,
        /// The PKCE verifier, when the request carried a challenge.
        pkce_verifier: Option<PkceVerifier>,
    },
    /// A token delivered in the redirect (implicit grant, Joind.in `oauth_allow`): the
    /// provider reads it from the callback's parameters.
    Implicit {
        /// The parameters of the callback, from where the provider delivers them.
        params: CallbackParams,
        /// The scopes asked for.
        scopes: Vec<String>,
    },
    /// Resource-owner password credentials.
    Password {
        /// The user name.
        username: String,
        /// The password; used once and dropped.
        password: Password,
    },
    /// Client credentials.
    ClientCredentials {
        /// The scopes to ask for.
        scopes: Vec<String>,
    },
}

/// What to do once a token has expired (or the API has refused it).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Renewal {
    /// Call [`Provider::refresh`].
    Refresh,
    /// The user must open this URL; the token cannot be refreshed.
    Renew(SecretUrl),
    /// The user must authorize again.
    Reauthorize,
}

/// What [`Provider::revoke`] achieved at the provider.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Revocation {
    /// The grant was revoked (RFC 7009): neither token works any more.
    Revoked,
    /// The access token was expired at the provider; the refresh token survives
    /// (join.me Expire Access).
    AccessExpired,
    /// The provider cannot revoke this token: only the local copy can be forgotten.
    NotSupported,
}

/// An API response, as a provider sees it for classification: the body is size-capped.
#[derive(Clone, Copy)]
pub struct ApiResponse<'a> {
    /// The HTTP status.
    pub status: StatusCode,
    /// The response headers.
    pub headers: &'a HeaderMap,
    /// The body, read up to the client's cap.
    pub body: &'a [u8],
}

impl fmt::Debug for ApiResponse<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ApiResponse")
            .field("status", &self.status)
            .field("body_len", &self.body.len())
            .finish_non_exhaustive()
    }
}

/// What an API response says about the token that was sent with it.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ResponseClass {
    /// Success, or anything that says nothing about the token.
    Ok,
    /// The token has expired: refresh it (or renew it when it cannot be refreshed).
    TokenExpired,
    /// The token is no longer valid (revoked, unknown): refresh once if possible, else the
    /// user must authorize again.
    TokenInvalid,
    /// Too many requests: wait.
    RateLimited {
        /// How long the provider asked to wait.
        retry_after: Option<Duration>,
    },
    /// The quota is used up; do not retry before it resets.
    QuotaExceeded {
        /// When it resets, as the provider wrote it.
        reset: Option<String>,
    },
    /// The token lacks a permission.
    Forbidden {
        /// The scope needed, when the provider says.
        scope: Option<String>,
    },
    /// The provider failed; worth retrying later.
    Transient,
    /// The request itself was refused; retrying will not help.
    Permanent,
}

impl ResponseClass {
    /// The error for a class that is not `Ok`, `Permanent` or about the token.
    pub fn to_error(&self, status: StatusCode) -> Option<Error> {
        Some(match self {
            Self::RateLimited { retry_after } => Error::RateLimited {
                retry_after: *retry_after,
            },
            Self::QuotaExceeded { reset } => Error::QuotaExceeded {
                reset: reset.clone(),
            },
            Self::Forbidden { scope } => Error::Forbidden {
                scope: scope.clone(),
            },
            Self::Transient => Error::unavailable(status.as_u16(), None),
            Self::Ok | Self::Permanent | Self::TokenExpired | Self::TokenInvalid => return None,
        })
    }
}

/// Everything particular to one OAuth service: endpoints, token-endpoint exchanges,
/// identity, and reading API responses.
///
/// # Contract
///
/// - The provider owns every token-endpoint exchange (code, refresh, password, client
///   credentials, revoke, expire) and normalises responses: numbers as strings, a missing
///   `token_type` (`bearer`), a missing `expires_in` (the provider's documented default).
/// - Every call has a timeout ([`request_timeout`](Provider::request_timeout)) and a cap on
///   the response size; plain HTTP only to loopback addresses.
/// - Errors never hold a token, a secret or a raw body: provider errors map to
///   [`Error::OAuth`] with code and description; a refresh token the provider refuses maps
///   to code `invalid_grant`, whatever the provider calls it.
/// - Malformed, truncated or oversized responses are [`Error::BadResponse`], never a panic.
#[cfg_attr(feature = "mock", mockall::automock)]
#[async_trait]
pub trait Provider: Send + Sync + fmt::Debug {
    /// The provider's id, used as [`TokenKey::provider`](crate::TokenKey::provider), e.g.
    /// `joindin`.
    fn id(&self) -> &str;

    /// The OAuth client id, used as [`TokenKey::client`](crate::TokenKey::client).
    fn client_id(&self) -> &str;

    /// What the provider can do.
    fn capabilities(&self) -> &Capabilities;

    /// The timeout of one call to the provider; the manager's lease outlives it.
    fn request_timeout(&self) -> Duration;

    /// Where the provider puts the parameters of a redirect back to the client.
    ///
    /// # Behavior
    /// - Defaults to the fragment for the implicit flow and the query otherwise.
    fn callback_location(&self, flow: FlowKind) -> ParamLocation {
        match flow {
            FlowKind::Implicit => ParamLocation::Fragment,
            _ => ParamLocation::Query,
        }
    }

    /// The issuer whose identifier an `iss` in a callback must carry (RFC 9207).
    ///
    /// # Behavior
    /// - Defaults to `None`: the provider has no issuer identifier, and a callback that
    ///   carries an `iss` anyway is refused.
    fn issuer(&self) -> Option<Issuer> {
        None
    }

    /// Builds the URL to send the user to.
    ///
    /// # Behavior
    /// - Carries the client id, the redirect URI byte for byte, the scopes, the state and,
    ///   when given, the PKCE challenge with method `S256`.
    /// - Fails with [`Error::Unsupported`] for a flow the provider does not offer.
    async fn authorization_url(&self, request: &AuthorizationRequest) -> Result<Url>;

    /// Exchanges a grant for a token set.
    ///
    /// # Behavior
    /// - Sends an authorization code at most once, whatever the outcome.
    /// - Uses a password once and keeps nothing of it.
    /// - Returns a token set with `grant` set to the grant's kind.
    async fn exchange(&self, grant: Grant) -> Result<TokenSet>;

    /// Obtains a new access token for `tokens` (refresh grant, or a repeated client
    /// credentials grant).
    ///
    /// # Behavior
    /// - Returns the new set; when the provider sends no new refresh token, the old one is
    ///   kept (the manager also ensures this).
    /// - A refused refresh token is `Error::OAuth` with code `invalid_grant`.
    /// - Fails with [`Error::Unsupported`] for tokens that cannot be refreshed.
    async fn refresh(&self, tokens: &TokenSet) -> Result<TokenSet>;

    /// The provider's stable identity of the user: the [`TokenKey`](crate::TokenKey)
    /// account.
    ///
    /// # Behavior
    /// - Comes from the provider (a response of the token endpoint or an API call), never
    ///   from an unverified ID token.
    async fn identify(&self, tokens: &TokenSet) -> Result<String>;

    /// Revokes the grant, or expires the access token, where the provider can.
    ///
    /// # Behavior
    /// - Says what happened: revoked, access expired, or not supported.
    async fn revoke(&self, tokens: &TokenSet) -> Result<Revocation>;

    /// What to do with `tokens` once expired or refused.
    ///
    /// # Behavior
    /// - Defaults to `Refresh` when there is a refresh token (or the grant is client
    ///   credentials), else `Reauthorize`.
    fn renewal(&self, tokens: &TokenSet) -> Renewal {
        if tokens.refresh_token.is_some()
            || tokens.grant == crate::token::GrantKind::ClientCredentials
        {
            Renewal::Refresh
        } else {
            Renewal::Reauthorize
        }
    }

    /// Completes a renewal the user made at the URL of [`Renewal::Renew`].
    ///
    /// # Behavior
    /// - Checks the callback and returns the renewed token set.
    /// - Defaults to [`Error::Unsupported`].
    async fn complete_renewal(
        &self,
        tokens: &TokenSet,
        callback: &Callback,
        now: SystemTime,
    ) -> Result<TokenSet> {
        let _ = (tokens, callback, now);
        Err(Error::unsupported(format!(
            "{} has no renew-authorization step",
            self.id()
        )))
    }

    /// Attaches the credentials of `tokens` to an API request's headers.
    ///
    /// # Behavior
    /// - Defaults to `Authorization: Bearer <token>`, marked sensitive.
    /// - Refuses a token that cannot be a header value.
    fn authenticate(&self, tokens: &TokenSet, headers: &mut HeaderMap) -> Result<()> {
        headers.insert(header::AUTHORIZATION, bearer_header(&tokens.access_token)?);
        Ok(())
    }

    /// Classifies an API response to a request sent with a token.
    ///
    /// # Behavior
    /// - Defaults to RFC 6750: 401 → token expired; 403 → forbidden, with the scope named
    ///   in `WWW-Authenticate` (`error="insufficient_scope", scope="…"`) when given; 429,
    ///   and 503 with `Retry-After`, → rate limited with its delay; other 5xx →
    ///   transient; other 4xx → permanent; anything else → ok.
    fn classify<'a>(&self, response: &ApiResponse<'a>) -> ResponseClass {
        classify_rfc6750(response)
    }
}

/// `Bearer <token>` as a sensitive header value; refuses tokens with whitespace or control
/// characters, which would split or corrupt the header.
pub fn bearer_header(token: &AccessToken) -> Result<HeaderValue> {
    let raw = token.expose_secret();
    if raw.is_empty()
        || raw
            .bytes()
            .any(|b| b.is_ascii_whitespace() || b.is_ascii_control())
    {
        return Err(Error::bad_response(
            "the access token is empty or contains whitespace or control characters",
        ));
    }
    let mut value = HeaderValue::try_from(format!("Bearer {raw}"))
        .map_err(|_| Error::bad_response("the access token is not a valid header value"))?;
    value.set_sensitive(true);
    Ok(value)
}

/// The `Retry-After` header as a duration: delay-seconds, or an HTTP date relative to now.
pub fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let value = headers.get(header::RETRY_AFTER)?.to_str().ok()?.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(
        at.duration_since(SystemTime::now())
            .unwrap_or(Duration::ZERO),
    )
}

/// The value of `name="value"` (or `name=value`) in a `WWW-Authenticate` challenge.
pub fn www_authenticate_param(headers: &HeaderMap, name: &str) -> Option<String> {
    let value = headers.get(header::WWW_AUTHENTICATE)?.to_str().ok()?;
    value.split(',').find_map(|part| {
        let part = part.trim();
        let part = part
            .strip_prefix("Bearer ")
            .or_else(|| part.strip_prefix("bearer "))
            .unwrap_or(part)
            .trim();
        let (key, val) = part.split_once('=')?;
        (key.trim().eq_ignore_ascii_case(name)).then(|| val.trim().trim_matches('"').to_owned())
    })
}

/// RFC 6750 classification, the default of [`Provider::classify`].
pub fn classify_rfc6750(response: &ApiResponse<'_>) -> ResponseClass {
    let status = response.status;
    match status.as_u16() {
        401 => ResponseClass::TokenExpired,
        403 => ResponseClass::Forbidden {
            scope: www_authenticate_param(response.headers, "scope"),
        },
        429 => ResponseClass::RateLimited {
            retry_after: retry_after(response.headers),
        },
        // A 503 that says when to come back is a rate limit (RFC 9110 §10.2.3).
        503 if retry_after(response.headers).is_some() => ResponseClass::RateLimited {
            retry_after: retry_after(response.headers),
        },
        500..=599 => ResponseClass::Transient,
        400..=499 => ResponseClass::Permanent,
        _ => ResponseClass::Ok,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.insert(*name, HeaderValue::from_static(value));
        }
        map
    }

    #[test]
    fn bearer_header_is_sensitive_and_refuses_whitespace() {
        let value = bearer_header(&AccessToken::new("abc")).unwrap();
        assert!(value.is_sensitive());
        assert_eq!(value.to_str().unwrap(), "Bearer abc");
        assert!(!format!("{value:?}").contains("abc"));
        for bad in ["", "a b", "a\tb", "a\nb"] {
            let err = bearer_header(&AccessToken::new(bad)).unwrap_err();
            assert!(matches!(err, Error::BadResponse { .. }));
        }
    }

    #[test]
    fn retry_after_reads_seconds_and_dates() {
        assert_eq!(
            retry_after(&headers(&[("retry-after", "7")])),
            Some(Duration::from_secs(7))
        );
        assert_eq!(
            retry_after(&headers(&[(
                "retry-after",
                "Wed, 21 Oct 2015 07:28:00 GMT"
            )])),
            Some(Duration::ZERO)
        );
        assert_eq!(retry_after(&headers(&[("retry-after", "soon")])), None);
        assert_eq!(retry_after(&HeaderMap::new()), None);
    }

    #[test]
    fn rfc6750_classification() {
        let empty = HeaderMap::new();
        let class = |status: u16, headers: &HeaderMap| {
            classify_rfc6750(&ApiResponse {
                status: StatusCode::from_u16(status).unwrap(),
                headers,
                body: b"",
            })
        };
        assert_eq!(class(200, &empty), ResponseClass::Ok);
        assert_eq!(class(401, &empty), ResponseClass::TokenExpired);
        let scope = headers(&[(
            "www-authenticate",
            "Bearer realm=\"x\", error=\"insufficient_scope\", scope=\"admin\"",
        )]);
        assert_eq!(
            class(403, &scope),
            ResponseClass::Forbidden {
                scope: Some("admin".into())
            }
        );
        assert_eq!(
            class(429, &headers(&[("retry-after", "3")])),
            ResponseClass::RateLimited {
                retry_after: Some(Duration::from_secs(3))
            }
        );
        assert_eq!(class(503, &empty), ResponseClass::Transient);
        assert_eq!(
            class(503, &headers(&[("retry-after", "2")])),
            ResponseClass::RateLimited {
                retry_after: Some(Duration::from_secs(2))
            }
        );
        assert_eq!(class(404, &empty), ResponseClass::Permanent);
    }
}
