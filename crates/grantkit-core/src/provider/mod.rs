//! What a provider author needs beside the [`Provider`](crate::Provider) trait: the
//! capabilities a provider declares, the grants it exchanges, how it classifies API
//! answers, and the HTTP and text helpers every provider shares.
//!
//! An application needs none of this: it builds a ready provider (`JoindinProvider`,
//! `JoinMeProvider`, `StandardProvider`) and hands it to a
//! [`TokenManager`](crate::TokenManager).

#[cfg(feature = "reqwest")]
pub mod http;
pub mod text;

use crate::error::{Error, Result};
use crate::flow::{CallbackParams, FlowKind};
use crate::secret::{AccessToken, Password, SecretUrl, StateToken};
use ::http::{HeaderMap, HeaderValue, StatusCode, header};
use std::fmt;
use std::time::{Duration, SystemTime};

pub use crate::key::check_account;
pub use crate::manager::{REFRESH_OUTCOME_UNKNOWN, REVOCATION_PENDING};
pub use crate::net::{ensure_safe_destination, is_loopback};
pub use crate::secret::{AuthorizationCode, DeviceCode, PkceVerifier};
pub use crate::token::Extras;

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
    /// (join.me's implicit grant, where opted in).
    pub renew_authorization: bool,
    /// The scopes the provider knows.
    pub scopes: Vec<String>,
    /// [`Provider::classify`](crate::Provider::classify) must see the body of successful API
    /// answers too (Joind.in answers a request whose token it does not know as an anonymous
    /// one, with 200). Without it, successful answers stream to the caller unread.
    pub reads_success_bodies: bool,
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
    /// Sets `reads_success_bodies`.
    pub fn with_success_bodies_read(mut self, yes: bool) -> Self {
        self.reads_success_bodies = yes;
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
    /// The device authorization grant (RFC 8628 §3.4): one poll of the token endpoint. Until
    /// the user approves, the provider answers `Error::OAuth` with code
    /// `authorization_pending` (or `slow_down`).
    DeviceCode {
        /// The device code from the device authorization endpoint.
        device_code: DeviceCode,
    },
}

/// What to do once a token has expired (or the API has refused it).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Renewal {
    /// Call [`Provider::refresh`](crate::Provider::refresh).
    Refresh,
    /// The user must open this URL; the token cannot be refreshed.
    Renew(SecretUrl),
    /// The user must authorize again.
    Reauthorize,
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

/// RFC 6750 classification, the default of [`Provider::classify`](crate::Provider::classify).
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
