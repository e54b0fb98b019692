//! `TokenKey`: which grant a token set belongs to.

use crate::error::{Error, Result};
use crate::provider::text::escape_controls;
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

/// The longest account a provider may name: a key part, not a document.
const MAX_ACCOUNT_LEN: usize = 1024;

/// Checks an account a provider read from a server before it becomes a key: not empty, at
/// most 1 KiB, no control characters (it is printed in errors and logs).
pub fn check_account(account: &str) -> Result<()> {
    if account.is_empty()
        || account.len() > MAX_ACCOUNT_LEN
        || account.chars().any(char::is_control)
    {
        return Err(Error::bad_response(
            "the account the server named is empty, longer than 1 KiB or has control characters",
        ));
    }
    Ok(())
}

/// The longest a key part is shown in `Display`: errors and log lines stay readable.
const MAX_SHOWN_PART: usize = 256;

impl fmt::Display for TokenKey {
    /// `provider/client/account`, each part with control characters escaped and cut at
    /// 256 bytes: the account comes from a server, and a key is printed in errors and logs.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let shown = |part: &str| escape_controls(part, MAX_SHOWN_PART);
        write!(
            f,
            "{}/{}/{}",
            shown(&self.provider),
            shown(&self.client),
            shown(&self.account)
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_print_on_one_line_and_briefly() {
        let key = TokenKey::new("p", "c", format!("a\n\u{1b}[2J{}", "x".repeat(2000)));
        let shown = key.to_string();
        assert!(shown.starts_with(r"p/c/a\u{a}\u{1b}[2J"), "{shown}");
        assert!(!shown.chars().any(char::is_control));
        assert!(shown.len() <= 4 + 3 * MAX_SHOWN_PART);
    }
}
