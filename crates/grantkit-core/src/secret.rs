//! Secret values: tokens, client secrets, passwords, PKCE verifiers, state and URLs that
//! carry a token.
//!
//! Every type here wraps [`secrecy::SecretString`]: the value is zeroed on drop, `Debug` and
//! `Display` print `[redacted]`, equality is constant time, and the only way to read the
//! value is the explicit [`expose_secret`](AccessToken::expose_secret). None of them
//! implements `Serialize`; stores persist them through [`crate::store::codec`], which names every
//! field it writes.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::RngCore as _;
use secrecy::{ExposeSecret as _, SecretString};
use sha2::{Digest as _, Sha256};
use std::fmt;
use subtle::ConstantTimeEq as _;

/// What `Debug` and `Display` print in place of any secret.
pub(crate) const REDACTED: &str = "[redacted]";

macro_rules! secret_type {
    ($(#[$meta:meta])* $name:ident) => {
        $(#[$meta])*
        #[derive(Clone)]
        pub struct $name(SecretString);

        impl $name {
            /// Wraps a secret value.
            pub fn new(value: impl Into<String>) -> Self {
                Self(SecretString::from(value.into()))
            }

            /// The secret value. Call it where the value is put on the wire or into a
            /// store, and nowhere else: never log what it returns.
            pub fn expose_secret(&self) -> &str {
                self.0.expose_secret()
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, concat!(stringify!($name), "({})"), REDACTED)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(REDACTED)
            }
        }

        impl PartialEq for $name {
            /// Constant time, so a comparison leaks nothing through timing.
            fn eq(&self, other: &Self) -> bool {
                self.expose_secret()
                    .as_bytes()
                    .ct_eq(other.expose_secret().as_bytes())
                    .into()
            }
        }

        impl Eq for $name {}
    };
}

secret_type!(
    /// An OAuth access token (or Joind.in's opaque token).
    AccessToken
);
secret_type!(
    /// An OAuth refresh token.
    RefreshToken
);
secret_type!(
    /// An OAuth client secret.
    ClientSecret
);
secret_type!(
    /// A user's password, used once for a password grant and never stored.
    Password
);
secret_type!(
    /// An authorization code from a redirect; exchanged at most once.
    AuthorizationCode
);
secret_type!(
    /// A PKCE code verifier (RFC 7636), kept with the pending authorization.
    PkceVerifier
);
secret_type!(
    /// The device code of the device authorization grant (RFC 8628): it obtains the tokens
    /// once the user has approved, so it is as secret as they are.
    DeviceCode
);
secret_type!(
    /// The `state` value of a redirect flow. Only its [`StateHash`] is ever used as a key.
    StateToken
);
secret_type!(
    /// A URL that carries a secret, such as join.me's renew-authorization URL with the
    /// access token in its query. Open it in the user's browser; never log it.
    SecretUrl
);

/// 32 random bytes, base64url without padding: 256 bits of entropy in 43 characters.
fn random_token() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

impl StateToken {
    /// A fresh, unguessable state value.
    pub fn generate() -> Self {
        Self::new(random_token())
    }

    /// The SHA-256 of the state, which stores use as the key of a pending authorization so
    /// that the state itself never becomes a key, a file name or a log field.
    pub fn hash(&self) -> StateHash {
        StateHash(hex::encode(Sha256::digest(self.expose_secret().as_bytes())))
    }
}

impl PkceVerifier {
    /// A fresh verifier: 43 characters from the RFC 7636 unreserved set.
    pub fn generate() -> Self {
        Self::new(random_token())
    }

    /// The S256 challenge: base64url(SHA-256(verifier)), without padding.
    pub fn s256_challenge(&self) -> String {
        URL_SAFE_NO_PAD.encode(Sha256::digest(self.expose_secret().as_bytes()))
    }
}

impl SecretUrl {
    /// Parses the URL. The result is a plain `Url`, whose `Display` and `Debug` show the
    /// secret: hand it to the browser, never to a log.
    pub fn expose_url(&self) -> Result<url::Url, url::ParseError> {
        url::Url::parse(self.expose_secret())
    }
}

/// The hex SHA-256 of a [`StateToken`]: safe to use as a key and to log.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct StateHash(String);

impl StateHash {
    /// The 64 lowercase hex characters.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Rebuilds a hash read back from a store; `None` unless it is 64 lowercase hex digits.
    pub fn from_hex(hex: &str) -> Option<Self> {
        let valid = hex.len() == 64 && hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
        valid.then(|| Self(hex.to_owned()))
    }
}

impl fmt::Display for StateHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_secret_type_is_redacted() {
        let value = "s3cr3t-value";
        let shown = [
            format!("{:?} {}", AccessToken::new(value), AccessToken::new(value)),
            format!(
                "{:?} {}",
                RefreshToken::new(value),
                RefreshToken::new(value)
            ),
            format!(
                "{:?} {}",
                ClientSecret::new(value),
                ClientSecret::new(value)
            ),
            format!("{:?} {}", Password::new(value), Password::new(value)),
            format!(
                "{:?} {}",
                AuthorizationCode::new(value),
                AuthorizationCode::new(value)
            ),
            format!(
                "{:?} {}",
                PkceVerifier::new(value),
                PkceVerifier::new(value)
            ),
            format!("{:?} {}", StateToken::new(value), StateToken::new(value)),
            format!("{:?} {}", SecretUrl::new(value), SecretUrl::new(value)),
            format!("{:#?}", Some(AccessToken::new(value))),
        ];
        for text in shown {
            assert!(!text.contains(value), "{text}");
            assert!(text.contains(REDACTED), "{text}");
        }
    }

    #[test]
    fn equality_compares_values() {
        assert_eq!(AccessToken::new("a"), AccessToken::new("a"));
        assert_ne!(AccessToken::new("a"), AccessToken::new("b"));
        assert_ne!(AccessToken::new("a"), AccessToken::new("aa"));
    }

    #[test]
    fn state_hash_is_sha256_hex_and_round_trips() {
        let state = StateToken::new("abc");
        let hash = state.hash();
        assert_eq!(
            hash.as_str(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(StateHash::from_hex(hash.as_str()), Some(hash));
        assert_eq!(StateHash::from_hex("../etc/passwd"), None);
        assert_eq!(StateHash::from_hex(&"A".repeat(64)), None);
    }

    #[test]
    fn generated_values_are_distinct_and_unreserved() {
        let a = StateToken::generate();
        let b = StateToken::generate();
        assert_ne!(a, b);
        assert_eq!(a.expose_secret().len(), 43);
        let verifier = PkceVerifier::generate();
        assert!(
            verifier
                .expose_secret()
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        );
    }

    #[test]
    fn s256_challenge_matches_rfc7636_appendix_b() {
        let verifier = PkceVerifier::new("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk");
        assert_eq!(
            verifier.s256_challenge(),
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        );
    }
}
