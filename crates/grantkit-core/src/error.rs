//! `Error`: grantkit's one public error type.
//!
//! Every crate maps its failures into it. No variant ever holds a token, a secret or a raw
//! response body: provider errors carry their code and description, bad responses a
//! description written here, and the renew URL (which carries a token) a [`SecretUrl`].

use crate::flow::Restart;
use crate::provider::text;
use crate::secret::SecretUrl;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

/// The longest OAuth error code kept: RFC 6749 codes are a few words.
const MAX_CODE_LEN: usize = 64;

/// `Result` with grantkit's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A boxed source error, shared so that [`Error`] can be cloned to every waiter of a refresh.
pub type Source = Arc<dyn std::error::Error + Send + Sync + 'static>;

/// Why a redirect callback was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum CallbackError {
    /// The callback's `state` differs from the pending authorization's.
    StateMismatch,
    /// No pending authorization has this state: it was never issued here, or it has been
    /// used already (a replay).
    UnknownState,
    /// The pending authorization expired before the callback arrived.
    Expired,
    /// A parameter the flow needs is missing.
    MissingParameter(&'static str),
    /// The `iss` parameter (RFC 9207) names another issuer, or is missing where the server
    /// promises it.
    IssuerMismatch,
    /// The callback arrived at another scheme, host, port or path than the redirect URI.
    WrongAddress,
    /// The pending authorization belongs to another provider, client or flow.
    WrongFlow,
    /// The callback could not be parsed.
    Malformed(&'static str),
}

impl fmt::Display for CallbackError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::StateMismatch => {
                f.write_str("the state does not match the pending authorization")
            }
            Self::UnknownState => f.write_str(
                "no pending authorization has this state (never issued here, or already used)",
            ),
            Self::Expired => f.write_str("the pending authorization has expired"),
            Self::MissingParameter(name) => write!(f, "the callback has no `{name}` parameter"),
            Self::IssuerMismatch => {
                f.write_str("the callback's `iss` is missing or does not name the expected issuer")
            }
            Self::WrongAddress => f.write_str(
                "the callback arrived at another address than the redirect URI (scheme, host, \
                 port or path differ)",
            ),
            Self::WrongFlow => {
                f.write_str("the pending authorization belongs to another provider, client or flow")
            }
            Self::Malformed(what) => write!(f, "the callback is malformed: {what}"),
        }
    }
}

/// Everything that can go wrong in grantkit.
#[derive(Clone, Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The provider answered with an OAuth error: RFC 6749 §5.2 from a token endpoint, or an
    /// error redirect such as `access_denied`. Refresh failures that mean the grant is gone
    /// are normalised to `invalid_grant`.
    ///
    /// Built with [`Error::oauth`], which caps and escapes the server's text.
    #[error("OAuth error `{code}`{}", description.as_deref().map(|d| format!(": {d}")).unwrap_or_default())]
    #[non_exhaustive]
    OAuth {
        /// The error code, e.g. `invalid_grant`, `access_denied`.
        code: String,
        /// The provider's description, if any.
        description: Option<String>,
    },

    /// The grant is gone (no token stored, refused refresh token, revoked token, an
    /// expired token nothing can renew): the user must authorize again.
    #[error("re-authorization required: {reason}")]
    #[non_exhaustive]
    ReauthorizationRequired {
        /// What showed it.
        reason: String,
        /// When the manager deleted a stored grant: the flow and scopes to start again
        /// (also [`Error::restart`]).
        restart: Option<Box<Restart>>,
    },

    /// The token expired and cannot be refreshed, but the user can renew it by opening the
    /// provider's renew URL (join.me's implicit grant, where renewal was opted into).
    #[error("the user must renew the authorization at the provider's renew URL")]
    RenewRequired {
        /// Where to send the user; it carries the access token, so it is never printed.
        renew_url: SecretUrl,
    },

    /// The user of a new grant could not be identified, so the grant could not be stored
    /// under a key. A grant nobody can use must not stay live at the provider: it was
    /// revoked where the provider could (`revocation` says what happened).
    #[error("the user of the new grant could not be identified: {reason}; {revocation}")]
    Unidentified {
        /// What each source of identity said (every endpoint tried).
        reason: String,
        /// What became of the grant at the provider.
        revocation: String,
    },

    /// Several accounts are signed in where one was expected
    /// ([`TokenManager::account`](crate::TokenManager::account)).
    #[error("{count} accounts are signed in; choose one of TokenManager::accounts")]
    AmbiguousAccount {
        /// How many.
        count: usize,
    },

    /// A store write's precondition did not hold: the record changed since it was read.
    #[error("store conflict on {key}: the record changed since it was read")]
    Conflict {
        /// The key, as `provider/client/account`.
        key: String,
    },

    /// A lease expired and was taken by another holder before it was renewed.
    #[error("the lease on {key} was lost")]
    LeaseLost {
        /// The key, as `provider/client/account`.
        key: String,
    },

    /// The store's backend failed.
    #[error("token store error: {message}")]
    Store {
        /// What failed.
        message: String,
        /// Whether trying again may succeed (an outage rather than a misconfiguration).
        retryable: bool,
        /// The backend's error.
        #[source]
        source: Option<Source>,
    },

    /// A stored record is corrupt, foreign, or from a newer format.
    #[error("stored record for {key} cannot be read: {reason}")]
    CorruptRecord {
        /// The key, as `provider/client/account`.
        key: String,
        /// Why; never quotes the record.
        reason: String,
    },

    /// The request did not complete: connection refused or reset, TLS, I/O.
    #[error("transport error: {message}")]
    Transport {
        /// What failed.
        message: String,
        /// Whether the request may have reached the server (it was not a connect failure):
        /// then its outcome is unknown.
        request_sent: bool,
        /// The underlying error, stripped of URLs.
        #[source]
        source: Option<Source>,
    },

    /// Something took longer than its timeout.
    #[error("timed out: {what}")]
    Timeout {
        /// What timed out.
        what: String,
    },

    /// The provider asks the client to slow down.
    #[error("rate limited{}", retry_after.map(|d| format!("; retry after {}s", d.as_secs())).unwrap_or_default())]
    RateLimited {
        /// How long the provider asked to wait, if it said.
        retry_after: Option<Duration>,
    },

    /// The client's quota is used up; retrying before the reset is pointless.
    #[error("quota exceeded{}", reset.as_deref().map(|r| format!("; resets {r}")).unwrap_or_default())]
    QuotaExceeded {
        /// When the quota resets, as the provider wrote it.
        reset: Option<String>,
    },

    /// The token is valid but lacks a permission (insufficient scope).
    #[error("forbidden{}", scope.as_deref().map(|s| format!(": needs scope `{s}`")).unwrap_or_default())]
    Forbidden {
        /// The scope the provider says is needed, if it says.
        scope: Option<String>,
    },

    /// The provider failed (5xx, gateway errors): worth retrying later.
    #[error("provider unavailable (HTTP {status}){}", retry_after.map(|d| format!("; retry after {}s", d.as_secs())).unwrap_or_default())]
    #[non_exhaustive]
    Unavailable {
        /// The HTTP status.
        status: u16,
        /// How long the provider asked to wait (`Retry-After`), if it said.
        retry_after: Option<Duration>,
    },

    /// The provider refused the request itself (validation, not found, …).
    ///
    /// Built with [`Error::api`], which caps and escapes the server's message.
    #[error("provider API error (HTTP {status}): {message}")]
    #[non_exhaustive]
    Api {
        /// The HTTP status.
        status: u16,
        /// The provider's message.
        message: String,
    },

    /// A response could not be understood: malformed, truncated, oversized, wrong shape.
    #[error("bad response from the provider: {message}")]
    BadResponse {
        /// What was wrong; never quotes the body.
        message: String,
    },

    /// A redirect callback was refused.
    #[error("invalid callback: {reason}")]
    InvalidCallback {
        /// Why.
        reason: CallbackError,
    },

    /// The provider or store does not offer this.
    #[error("unsupported: {what}")]
    Unsupported {
        /// What was asked for, and the alternative where there is one.
        what: String,
    },

    /// The configuration is wrong.
    #[error("configuration error: {message}")]
    Configuration {
        /// What is wrong.
        message: String,
    },

    /// The request was rejected for an expired token and its body cannot be sent again. The
    /// token has been refreshed; send a new request.
    #[error("the token was refreshed but the request body cannot be replayed")]
    NotReplayable,

    /// A bug: a task grantkit runs (such as a refresh) panicked. The panic's message is not
    /// carried here, as it could quote a response.
    #[error("internal error: {what} failed unexpectedly")]
    Internal {
        /// What failed.
        what: String,
    },
}

impl Error {
    /// Whether trying the same operation again later may succeed.
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::Transport { .. }
            | Self::Timeout { .. }
            | Self::RateLimited { .. }
            | Self::Unavailable { .. } => true,
            Self::Store { retryable, .. } => *retryable,
            Self::OAuth { code, .. } => {
                matches!(code.as_str(), "server_error" | "temporarily_unavailable")
            }
            _ => false,
        }
    }

    /// Whether a request's outcome is unknown: it may have reached the server, which may
    /// have acted on it, but no readable answer came back (a timeout, a connection lost
    /// after sending, a body cut short or unreadable).
    pub fn is_outcome_unknown(&self) -> bool {
        match self {
            Self::Timeout { .. } | Self::BadResponse { .. } => true,
            Self::Transport { request_sent, .. } => *request_sent,
            _ => false,
        }
    }

    /// Whether the provider refused a grant (RFC 6749 `invalid_grant`): the refresh token or
    /// code is no longer valid.
    pub fn is_invalid_grant(&self) -> bool {
        matches!(self, Self::OAuth { code, .. } if code == "invalid_grant")
    }

    /// Whether the user must authorize again.
    pub fn is_reauthorization_required(&self) -> bool {
        matches!(self, Self::ReauthorizationRequired { .. })
    }

    /// An OAuth error from its code and optional description, as a server or a callback
    /// wrote them: both are capped and escaped ([`text::untrusted`]), the description is
    /// cleared of anything that looks like a token.
    pub fn oauth(code: impl AsRef<str>, description: Option<String>) -> Self {
        Self::OAuth {
            code: text::untrusted(code.as_ref(), MAX_CODE_LEN),
            description: description
                .map(|d| text::untrusted(d.trim(), text::MAX_UNTRUSTED_LEN))
                .filter(|d| !d.is_empty()),
        }
    }

    /// A refused API request, with the provider's message capped and escaped.
    pub fn api(status: u16, message: impl AsRef<str>) -> Self {
        Self::Api {
            status,
            message: text::untrusted(message.as_ref(), text::MAX_UNTRUSTED_LEN),
        }
    }

    /// The provider failed with `status`; `retry_after` is its `Retry-After`, if any.
    pub fn unavailable(status: u16, retry_after: Option<Duration>) -> Self {
        Self::Unavailable {
            status,
            retry_after,
        }
    }

    /// How long the provider asked to wait before trying again: the `Retry-After` of a
    /// rate-limited or unavailable answer.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Self::RateLimited { retry_after } | Self::Unavailable { retry_after, .. } => {
                *retry_after
            }
            _ => None,
        }
    }

    /// Re-authorization required, for the given reason.
    pub fn reauthorize(reason: impl Into<String>) -> Self {
        Self::ReauthorizationRequired {
            reason: reason.into(),
            restart: None,
        }
    }

    /// Re-authorization required for a grant that ended: `restart` says how it began.
    pub fn grant_ended(reason: impl Into<String>, restart: Restart) -> Self {
        Self::ReauthorizationRequired {
            reason: reason.into(),
            restart: Some(Box::new(restart)),
        }
    }

    /// How to sign the user in again, when this error ended a stored grant.
    pub fn restart(&self) -> Option<&Restart> {
        match self {
            Self::ReauthorizationRequired { restart, .. } => restart.as_deref(),
            _ => None,
        }
    }

    /// A bad response, described without quoting it.
    pub fn bad_response(message: impl Into<String>) -> Self {
        Self::BadResponse {
            message: message.into(),
        }
    }

    /// A refused callback.
    pub fn callback(reason: CallbackError) -> Self {
        Self::InvalidCallback { reason }
    }

    /// A configuration error.
    pub fn configuration(message: impl Into<String>) -> Self {
        Self::Configuration {
            message: message.into(),
        }
    }

    /// Something not offered.
    pub fn unsupported(what: impl Into<String>) -> Self {
        Self::Unsupported { what: what.into() }
    }

    /// A store backend error.
    pub fn store<E>(message: impl Into<String>, retryable: bool, source: E) -> Self
    where
        E: std::error::Error + Send + Sync + 'static,
    {
        Self::Store {
            message: message.into(),
            retryable,
            source: Some(Arc::new(source)),
        }
    }
}

#[cfg(feature = "reqwest")]
impl From<reqwest::Error> for Error {
    /// Maps a reqwest error, dropping its URL (a URL may carry a token in its query).
    fn from(err: reqwest::Error) -> Self {
        let err = err.without_url();
        if err.is_timeout() && !err.is_connect() {
            return Self::Timeout {
                what: "HTTP request".to_owned(),
            };
        }
        let message = if err.is_connect() {
            "could not connect"
        } else if err.is_body() || err.is_decode() {
            "the response body could not be read"
        } else if err.is_redirect() {
            "redirect refused"
        } else if err.is_builder() {
            "the request could not be built"
        } else {
            "the request failed"
        };
        Self::Transport {
            message: message.to_owned(),
            request_sent: !err.is_connect(),
            source: Some(Arc::new(err)),
        }
    }
}
