//! join.me's scopes: a closed set, sent space-separated.

use grantkit_core::{Error, Result};
use std::fmt;
use std::str::FromStr;

/// One join.me OAuth scope.
///
/// Converts into `String` so it can be handed to a flow directly:
/// `RedirectFlow::authorization_code(…).with_scopes([Scope::UserInfo, Scope::Scheduler])`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Scope {
    /// `user_info`: `GET /v1/user` (it "cannot be used to schedule a meeting").
    UserInfo,
    /// `scheduler`: scheduled meetings (`/v1/meetings` CRUD).
    Scheduler,
    /// `start_meeting`: `POST /v1/meetings/start` and `POST /v1/meetings/{id}/start`.
    StartMeeting,
    /// `provisioning`: the Business API (`/v1/presenters*`), Business keys only.
    Provisioning,
}

impl Scope {
    /// Every scope, in join.me's documentation order.
    pub const ALL: [Scope; 4] = [
        Self::UserInfo,
        Self::Scheduler,
        Self::StartMeeting,
        Self::Provisioning,
    ];

    /// The wire name, e.g. `user_info`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::UserInfo => "user_info",
            Self::Scheduler => "scheduler",
            Self::StartMeeting => "start_meeting",
            Self::Provisioning => "provisioning",
        }
    }

    /// The scope with this wire name.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == name)
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Scope {
    type Err = Error;

    fn from_str(name: &str) -> Result<Self> {
        Self::parse(name).ok_or_else(|| {
            Error::configuration(format!(
                "`{}` is not a join.me scope (user_info, scheduler, start_meeting, provisioning)",
                name.chars().take(64).collect::<String>()
            ))
        })
    }
}

impl From<Scope> for String {
    fn from(scope: Scope) -> Self {
        scope.as_str().to_owned()
    }
}

/// A set of join.me scopes, written as join.me wants them: each once, separated by one
/// space, in a stable order.
#[derive(Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct Scopes(u8);

impl Scopes {
    /// No scope.
    pub const fn empty() -> Self {
        Self(0)
    }

    /// The usual set of a meeting application: `user_info scheduler start_meeting`.
    pub const fn usual() -> Self {
        Self(0b0111)
    }

    fn bit(scope: Scope) -> u8 {
        1 << (scope as u8)
    }

    /// Adds a scope.
    pub fn with(mut self, scope: Scope) -> Self {
        self.insert(scope);
        self
    }

    /// Adds a scope in place.
    pub fn insert(&mut self, scope: Scope) {
        self.0 |= Self::bit(scope);
    }

    /// Whether the set holds `scope`.
    pub fn contains(self, scope: Scope) -> bool {
        self.0 & Self::bit(scope) != 0
    }

    /// Whether the set is empty.
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// The scopes, in documentation order.
    pub fn iter(self) -> impl Iterator<Item = Scope> {
        Scope::ALL.into_iter().filter(move |s| self.contains(*s))
    }

    /// The wire names, in documentation order.
    pub fn names(self) -> Vec<String> {
        self.iter().map(String::from).collect()
    }

    /// Reads scope names (a flow's list, or a space-separated `scope` value split by the
    /// caller); an unknown name is a configuration error that names it.
    pub fn from_names<I, S>(names: I) -> Result<Self>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        names
            .into_iter()
            .filter(|n| !n.as_ref().is_empty())
            .map(|n| n.as_ref().parse::<Scope>())
            .collect()
    }
}

impl FromIterator<Scope> for Scopes {
    fn from_iter<I: IntoIterator<Item = Scope>>(iter: I) -> Self {
        let mut set = Self::empty();
        for scope in iter {
            set.insert(scope);
        }
        set
    }
}

impl<const N: usize> From<[Scope; N]> for Scopes {
    fn from(scopes: [Scope; N]) -> Self {
        scopes.into_iter().collect()
    }
}

impl FromStr for Scopes {
    type Err = Error;

    /// Parses a space-separated list such as `user_info scheduler`.
    fn from_str(text: &str) -> Result<Self> {
        Self::from_names(text.split(' '))
    }
}

impl fmt::Display for Scopes {
    /// Each scope once, separated by one space: `user_info scheduler start_meeting`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, scope) in self.iter().enumerate() {
            if i > 0 {
                f.write_str(" ")?;
            }
            f.write_str(scope.as_str())?;
        }
        Ok(())
    }
}

impl fmt::Debug for Scopes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.iter()).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_round_trip_and_join_with_one_space() {
        for scope in Scope::ALL {
            assert_eq!(Scope::parse(scope.as_str()), Some(scope));
            assert_eq!(String::from(scope), scope.to_string());
        }
        let set: Scopes = [Scope::StartMeeting, Scope::UserInfo, Scope::UserInfo].into();
        assert_eq!(set.to_string(), "user_info start_meeting");
        assert_eq!(
            Scopes::usual().to_string(),
            "user_info scheduler start_meeting"
        );
        let all: Scopes = Scope::ALL.into();
        assert_eq!(
            all.to_string(),
            "user_info scheduler start_meeting provisioning"
        );
        assert_eq!(
            "scheduler  user_info".parse::<Scopes>().unwrap(),
            Scopes::from([Scope::UserInfo, Scope::Scheduler])
        );
        assert!(Scopes::empty().is_empty());
        assert_eq!(Scopes::empty().to_string(), "");
    }

    #[test]
    fn unknown_scopes_are_configuration_errors_naming_them() {
        let err = "user_info admin".parse::<Scopes>().unwrap_err();
        assert!(matches!(err, Error::Configuration { .. }), "{err}");
        assert!(err.to_string().contains("`admin`"), "{err}");
        assert!("USER_INFO".parse::<Scope>().is_err());
    }
}
