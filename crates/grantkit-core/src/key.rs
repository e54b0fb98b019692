//! `TokenKey`: which grant a token set belongs to.

use std::fmt;

/// Identifies one grant: a provider, an OAuth client (or application namespace) and the
/// provider's stable identity of the user.
///
/// `client` keeps two applications that share a store from overwriting each other's tokens.
/// `account` is what [`Provider::identify`](crate::Provider::identify) returns: Joind.in's
/// `user_uri`, join.me's `email`, a standard server's `sub`. None of the three is secret;
/// stores may still not use them verbatim as file names or keys (they may hold `/`, `{`, or
/// anything else), and must derive a safe name instead.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TokenKey {
    /// The provider's id, e.g. `joindin`.
    pub provider: String,
    /// The OAuth client id or application namespace.
    pub client: String,
    /// The provider's stable identity of the user.
    pub account: String,
}

impl TokenKey {
    /// A key from its three parts.
    pub fn new(
        provider: impl Into<String>,
        client: impl Into<String>,
        account: impl Into<String>,
    ) -> Self {
        Self {
            provider: provider.into(),
            client: client.into(),
            account: account.into(),
        }
    }
}

impl fmt::Display for TokenKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}/{}", self.provider, self.client, self.account)
    }
}
