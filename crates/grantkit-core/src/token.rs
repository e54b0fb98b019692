//! `TokenSet`: what a grant yields and what stores keep.

use crate::secret::{AccessToken, RefreshToken};
use serde::de::{MapAccess, Visitor};
use serde::ser::SerializeMap as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
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
    pub extras: Extras,
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
            extras: Extras::new(),
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
            .field("extras", &self.extras.names().collect::<Vec<_>>())
            .finish()
    }
}

/// The provider-specific, non-secret values of a token set: names mapped to values, kept
/// in name order.
///
/// Kept compact, in one exact-size allocation plus the strings: a service caches a token
/// set for every signed-in user, and most carry one or two extras (a general-purpose map
/// would cost more than the rest of the token set).
///
/// ```
/// use grantkit_core::provider::Extras;
///
/// let mut extras = Extras::new();
/// extras.insert("user_uri", "https://api.joind.in/v2.1/users/42");
/// assert_eq!(extras.get("user_uri"), Some("https://api.joind.in/v2.1/users/42"));
/// assert_eq!(extras.insert("user_uri", "…/43").as_deref(), Some("https://api.joind.in/v2.1/users/42"));
/// assert_eq!(extras.len(), 1);
/// ```
#[derive(Clone, Default, PartialEq, Eq, Hash)]
pub struct Extras(Box<[(Box<str>, Box<str>)]>);

impl Extras {
    /// No extras.
    pub fn new() -> Self {
        Self::default()
    }

    fn position(&self, name: &str) -> Result<usize, usize> {
        self.0.binary_search_by(|(n, _)| (**n).cmp(name))
    }

    /// The value named `name`.
    pub fn get(&self, name: &str) -> Option<&str> {
        let at = self.position(name).ok()?;
        Some(&self.0[at].1)
    }

    /// Whether a value is named `name`.
    pub fn contains_key(&self, name: &str) -> bool {
        self.position(name).is_ok()
    }

    /// Sets the value named `name`; returns the value it replaces.
    pub fn insert(&mut self, name: impl Into<String>, value: impl Into<String>) -> Option<String> {
        let (name, value) = (name.into(), value.into().into_boxed_str());
        match self.position(&name) {
            Ok(at) => Some(std::mem::replace(&mut self.0[at].1, value).into()),
            Err(at) => {
                let mut entries = std::mem::take(&mut self.0).into_vec();
                entries.insert(at, (name.into_boxed_str(), value));
                self.0 = entries.into_boxed_slice();
                None
            }
        }
    }

    /// Removes the value named `name` and returns it.
    pub fn remove(&mut self, name: &str) -> Option<String> {
        let at = self.position(name).ok()?;
        let mut entries = std::mem::take(&mut self.0).into_vec();
        let (_, value) = entries.remove(at);
        self.0 = entries.into_boxed_slice();
        Some(value.into())
    }

    /// Removes every value.
    pub fn clear(&mut self) {
        self.0 = Box::default();
    }

    /// How many values there are.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The names and values, in name order.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = (&str, &str)> + '_ {
        self.0.iter().map(|(name, value)| (&**name, &**value))
    }

    /// The names, in order.
    pub fn names(&self) -> impl ExactSizeIterator<Item = &str> + '_ {
        self.0.iter().map(|(name, _)| &**name)
    }
}

impl fmt::Debug for Extras {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.iter()).finish()
    }
}

impl<N: Into<String>, V: Into<String>> FromIterator<(N, V)> for Extras {
    /// Of a name given twice, the last value counts.
    fn from_iter<I: IntoIterator<Item = (N, V)>>(pairs: I) -> Self {
        let mut extras = Self::new();
        extras.extend(pairs);
        extras
    }
}

impl<N: Into<String>, V: Into<String>> Extend<(N, V)> for Extras {
    fn extend<I: IntoIterator<Item = (N, V)>>(&mut self, pairs: I) {
        let pairs = pairs.into_iter();
        let mut entries: Vec<(Box<str>, Box<str>)> = std::mem::take(&mut self.0).into_vec();
        // Sized up front, so the slice below needs no second allocation.
        entries.reserve_exact(pairs.size_hint().0);
        for (name, value) in pairs {
            let (name, value) = (name.into().into_boxed_str(), value.into().into_boxed_str());
            match entries.binary_search_by(|(n, _)| n.cmp(&name)) {
                Ok(at) => entries[at].1 = value,
                Err(at) => entries.insert(at, (name, value)),
            }
        }
        self.0 = entries.into_boxed_slice();
    }
}

impl<'a> IntoIterator for &'a Extras {
    type Item = (&'a str, &'a str);
    type IntoIter = std::iter::Map<
        std::slice::Iter<'a, (Box<str>, Box<str>)>,
        fn(&'a (Box<str>, Box<str>)) -> (&'a str, &'a str),
    >;

    fn into_iter(self) -> Self::IntoIter {
        self.0.iter().map(|(name, value)| (&**name, &**value))
    }
}

/// Stored as a JSON object (the codec's `extras`), names in order.
impl Serialize for Extras {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.len()))?;
        for (name, value) in self {
            map.serialize_entry(name, value)?;
        }
        map.end()
    }
}

impl<'de> Deserialize<'de> for Extras {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Names;
        impl<'de> Visitor<'de> for Names {
            type Value = Extras;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an object of string values")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Extras, A::Error> {
                let mut pairs: Vec<(String, String)> =
                    Vec::with_capacity(map.size_hint().unwrap_or(0).min(64));
                while let Some(pair) = map.next_entry::<String, String>()? {
                    pairs.push(pair);
                }
                Ok(pairs.into_iter().collect())
            }
        }
        deserializer.deserialize_map(Names)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extras_keep_name_order_and_the_last_value_of_a_name() {
        let mut extras: Extras = [("b", "2"), ("a", "1"), ("b", "3")].into_iter().collect();
        assert_eq!(extras.iter().collect::<Vec<_>>(), [("a", "1"), ("b", "3")]);
        assert_eq!(extras.insert("c", "4"), None);
        assert_eq!(extras.insert("a", "5").as_deref(), Some("1"));
        assert_eq!(extras.names().collect::<Vec<_>>(), ["a", "b", "c"]);
        assert_eq!(extras.remove("b").as_deref(), Some("3"));
        assert_eq!(extras.remove("b"), None);
        assert!(extras.contains_key("c") && !extras.contains_key("b"));
        assert_eq!((extras.get("a"), extras.get("zz")), (Some("5"), None));
        extras.clear();
        assert!(extras.is_empty());
    }

    #[test]
    fn extras_are_stored_as_the_json_object_they_always_were() {
        let extras: Extras = [("user_uri", "https://api/users/1"), ("ä", "ö")]
            .into_iter()
            .collect();
        let json = serde_json::to_string(&extras).unwrap();
        assert_eq!(json, r#"{"user_uri":"https://api/users/1","ä":"ö"}"#);
        let back: Extras = serde_json::from_str(&json).unwrap();
        assert_eq!(back, extras);
        // A record written by a map with its own order reads back the same.
        let back: Extras =
            serde_json::from_str(r#"{"ä":"ö","user_uri":"https://api/users/1"}"#).unwrap();
        assert_eq!(back, extras);
        assert!(serde_json::from_str::<Extras>(r#"{"a":1}"#).is_err());
        assert!(serde_json::from_str::<Extras>("[]").is_err());
    }
}
