//! `Provider`: everything particular to one OAuth service.

use crate::device::DeviceAuthorization;
use crate::error::{Error, Result};
use crate::flow::redirect::Callback;
use crate::flow::{FlowKind, ParamLocation};
use crate::provider::{
    ApiResponse, AuthorizationRequest, Capabilities, Grant, Issuer, Renewal, ResponseClass,
    bearer_header, classify_rfc6750,
};
use crate::token::TokenSet;
use async_trait::async_trait;
use http::{HeaderMap, header};
use std::fmt;
use std::time::{Duration, SystemTime};
use url::Url;

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

/// Everything particular to one OAuth service: endpoints, token-endpoint exchanges,
/// identity, and reading API responses.
///
/// Five methods are required — who the provider is ([`id`](Self::id),
/// [`client_id`](Self::client_id), [`capabilities`](Self::capabilities)), how a grant
/// becomes tokens ([`exchange`](Self::exchange)) and whose they are
/// ([`identify`](Self::identify)). The rest have defaults: RFC 6749 redirects, RFC 6750
/// bearer tokens and answers, and "cannot" for refresh, revocation and renewal.
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
    // Who the provider is.

    /// The provider's id, used as [`TokenKey::provider`](crate::TokenKey::provider), e.g.
    /// `joindin`.
    fn id(&self) -> &str;

    /// The OAuth client id, used as [`TokenKey::client`](crate::TokenKey::client).
    fn client_id(&self) -> &str;

    /// What the provider can do.
    fn capabilities(&self) -> &Capabilities;

    /// The timeout of one call to the provider; the manager's lease outlives it.
    ///
    /// # Behavior
    /// - Defaults to 30 seconds.
    fn request_timeout(&self) -> Duration {
        DEFAULT_REQUEST_TIMEOUT
    }

    // Obtaining a grant.

    /// Builds the URL to send the user to.
    ///
    /// # Behavior
    /// - Carries the client id, the redirect URI byte for byte, the scopes, the state and,
    ///   when given, the PKCE challenge with method `S256`.
    /// - Fails with [`Error::Unsupported`] for a flow the provider does not offer (the
    ///   default: a provider without redirect flows).
    async fn authorization_url(&self, request: &AuthorizationRequest) -> Result<Url> {
        Err(Error::unsupported(format!(
            "{} has no {} flow",
            self.id(),
            request.flow
        )))
    }

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

    /// Starts the device authorization grant (RFC 8628 §3.1) for `scopes`.
    ///
    /// # Behavior
    /// - Returns the user code, the verification URI and the device code the provider's
    ///   [`exchange`](Self::exchange) of [`Grant::DeviceCode`] polls with.
    /// - Defaults to [`Error::Unsupported`]: most providers have no device flow.
    async fn start_device_authorization(&self, scopes: &[String]) -> Result<DeviceAuthorization> {
        let _ = scopes;
        Err(Error::unsupported(format!(
            "{} offers no device authorization grant",
            self.id()
        )))
    }

    /// Exchanges a grant for a token set.
    ///
    /// # Behavior
    /// - Sends an authorization code at most once, whatever the outcome.
    /// - Uses a password once and keeps nothing of it.
    /// - Returns a token set with `grant` set to the grant's kind.
    async fn exchange(&self, grant: Grant) -> Result<TokenSet>;

    /// The provider's stable identity of the user: the [`TokenKey`](crate::TokenKey)
    /// account.
    ///
    /// # Behavior
    /// - Comes from the provider (a response of the token endpoint or an API call), never
    ///   from an unverified ID token.
    async fn identify(&self, tokens: &TokenSet) -> Result<String>;

    // Keeping it fresh, and ending it.

    /// Obtains a new access token for `tokens` (refresh grant, or a repeated client
    /// credentials grant).
    ///
    /// # Behavior
    /// - Returns the new set; when the provider sends no new refresh token, the old one is
    ///   kept (the manager also ensures this).
    /// - A refused refresh token is `Error::OAuth` with code `invalid_grant`.
    /// - Fails with [`Error::Unsupported`] for tokens that cannot be refreshed (the
    ///   default).
    async fn refresh(&self, tokens: &TokenSet) -> Result<TokenSet> {
        let _ = tokens;
        Err(Error::unsupported(format!(
            "{} cannot refresh tokens",
            self.id()
        )))
    }

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

    /// Revokes the grant, or expires the access token, where the provider can.
    ///
    /// # Behavior
    /// - Says what happened: revoked, access expired, or not supported (the default).
    async fn revoke(&self, tokens: &TokenSet) -> Result<Revocation> {
        let _ = tokens;
        Ok(Revocation::NotSupported)
    }

    // Using it.

    /// Attaches the credentials of `tokens` to an API request's headers.
    ///
    /// # Behavior
    /// - Defaults to `Authorization: Bearer <token>`, marked sensitive.
    /// - Refuses a token that cannot be a header value.
    fn authenticate(&self, tokens: &TokenSet, headers: &mut HeaderMap) -> Result<()> {
        headers.insert(header::AUTHORIZATION, bearer_header(&tokens.access_token)?);
        Ok(())
    }

    /// Classifies an API response to a request sent with a token. The body is there for
    /// error statuses, and for successes where the provider
    /// [reads them](Capabilities::reads_success_bodies); otherwise it is empty.
    ///
    /// # Behavior
    /// - Defaults to RFC 6750: 401 → token expired; 403 → forbidden, with the scope named
    ///   in `WWW-Authenticate` (`error="insufficient_scope", scope="…"`) when given; 429,
    ///   and 503 with `Retry-After`, → rate limited with its delay; other 5xx →
    ///   transient; other 4xx → permanent; anything else → ok.
    fn classify<'a>(&self, response: &ApiResponse<'a>) -> ResponseClass {
        classify_rfc6750(response)
    }

    /// The error for an API answer that refused the request itself
    /// ([`ResponseClass::Permanent`], or an error status classified as ok).
    ///
    /// # Behavior
    /// - Defaults to [`Error::Api`] with the status and its reason phrase; providers that
    ///   know their error bodies put the server's message there (capped and escaped by
    ///   [`Error::api`]).
    fn refusal<'a>(&self, response: &ApiResponse<'a>) -> Error {
        Error::api(
            response.status.as_u16(),
            response
                .status
                .canonical_reason()
                .unwrap_or("the request was refused"),
        )
    }
}

/// The timeout of one provider call unless the provider says otherwise.
const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
