//! `PendingAuthorization`: what a redirect flow keeps between `start` and the callback.

use crate::flow::FlowKind;
use crate::secret::{PkceVerifier, StateHash, StateToken};
use std::collections::BTreeMap;
use std::fmt;
use std::time::SystemTime;

/// A redirect flow in progress: created by [`Flow::start`](crate::flow::Flow::start), kept in a
/// [`TokenStore`](crate::TokenStore) under the hash of its state, taken exactly once when the
/// callback arrives (on whichever instance of a service it lands).
#[derive(Clone, PartialEq, Eq)]
pub struct PendingAuthorization {
    /// The state sent with the authorization request.
    pub state: StateToken,
    /// Which flow started it.
    pub flow: FlowKind,
    /// The provider's id.
    pub provider: String,
    /// The OAuth client id.
    pub client: String,
    /// The redirect URI sent with the request, byte for byte.
    pub redirect_uri: String,
    /// The scopes asked for.
    pub scopes: Vec<String>,
    /// The PKCE verifier, for flows that use PKCE.
    pub pkce_verifier: Option<PkceVerifier>,
    /// When the flow started.
    pub created_at: SystemTime,
    /// After this the callback is refused.
    pub expires_at: SystemTime,
    /// Provider-specific, non-secret values.
    pub extras: BTreeMap<String, String>,
}

impl PendingAuthorization {
    /// The store key: the SHA-256 of the state.
    pub fn state_hash(&self) -> StateHash {
        self.state.hash()
    }

    /// Whether the callback comes too late at `now`.
    pub fn is_expired(&self, now: SystemTime) -> bool {
        now >= self.expires_at
    }
}

impl fmt::Debug for PendingAuthorization {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PendingAuthorization")
            .field("state", &self.state)
            .field("flow", &self.flow)
            .field("provider", &self.provider)
            .field("client", &self.client)
            .field("redirect_uri", &self.redirect_uri)
            .field("scopes", &self.scopes)
            .field("pkce_verifier", &self.pkce_verifier)
            .field("created_at", &self.created_at)
            .field("expires_at", &self.expires_at)
            .field("extras", &self.extras.keys().collect::<Vec<_>>())
            .finish()
    }
}
