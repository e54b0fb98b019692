//! `AccountClaims`: which claim of a userinfo or introspection answer names the user.

use serde_json::{Map, Value};
use std::fmt;
use std::sync::Arc;

/// The claims tried, in this order, unless the builder names others: `sub` (the standard
/// subject), then `username` (RFC 7662), then `email`.
pub const DEFAULT_ACCOUNT_CLAIMS: [&str; 3] = ["sub", "username", "email"];

type Picker = dyn Fn(&Map<String, Value>) -> Option<String> + Send + Sync;

/// How the account of a grant — the [`TokenKey`](grantkit_core::TokenKey) account — is
/// read from a userinfo or introspection answer: the first of a list of claims that is a
/// non-empty string, or a function of your own.
#[derive(Clone)]
pub enum AccountClaims {
    /// The first of these claims that the answer carries as a non-empty string.
    First(Vec<String>),
    /// A function of the answer's JSON object; `None` when it cannot name the user.
    Custom(Arc<Picker>),
}

impl Default for AccountClaims {
    fn default() -> Self {
        Self::First(DEFAULT_ACCOUNT_CLAIMS.map(str::to_owned).to_vec())
    }
}

impl fmt::Debug for AccountClaims {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::First(claims) => f.debug_tuple("First").field(claims).finish(),
            Self::Custom(_) => f.write_str("Custom(..)"),
        }
    }
}

impl AccountClaims {
    /// The account `answer` names, if any.
    pub(crate) fn pick(&self, answer: &Map<String, Value>) -> Option<String> {
        match self {
            Self::First(claims) => claims.iter().find_map(|claim| match answer.get(claim) {
                Some(Value::String(value)) if !value.is_empty() => Some(value.clone()),
                _ => None,
            }),
            Self::Custom(pick) => pick(answer),
        }
    }

    /// What the answer lacked, for an error: the claims tried, or "the account function".
    pub(crate) fn describe(&self) -> String {
        match self {
            Self::First(claims) => format!("none of the claims {}", claims.join(", ")),
            Self::Custom(_) => "nothing the account function accepts".to_owned(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(json: &str) -> Map<String, Value> {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn the_default_order_is_sub_then_username_then_email() {
        let claims = AccountClaims::default();
        let all = answer(r#"{"sub":"s","username":"u","email":"e@x"}"#);
        assert_eq!(claims.pick(&all).as_deref(), Some("s"));
        let no_sub = answer(r#"{"active":true,"username":"u","email":"e@x"}"#);
        assert_eq!(claims.pick(&no_sub).as_deref(), Some("u"));
        let email_only = answer(r#"{"sub":"","username":42,"email":"e@x"}"#);
        assert_eq!(claims.pick(&email_only).as_deref(), Some("e@x"));
        assert_eq!(claims.pick(&answer(r#"{"active":true}"#)), None);
        assert_eq!(claims.describe(), "none of the claims sub, username, email");
    }

    #[test]
    fn a_function_can_name_the_account() {
        let claims = AccountClaims::Custom(Arc::new(|answer| {
            answer
                .get("tenant")
                .and_then(Value::as_str)
                .map(|t| format!("{t}:x"))
        }));
        assert_eq!(
            claims.pick(&answer(r#"{"tenant":"acme"}"#)).as_deref(),
            Some("acme:x")
        );
        assert!(format!("{claims:?}").contains("Custom"));
    }
}
