//! `Failure`: how a command ends when it does not succeed — the exit code a script can
//! branch on, what went wrong, and what to do next.

use grantkit::Error;
use std::fmt;

/// The documented exit codes (see `grantkit --help`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Exit {
    /// Something failed that none of the codes below describes.
    Failed = 1,
    /// The command line or a profile is wrong.
    Usage = 2,
    /// The user must log in (again): no grant, or the provider refused it.
    Login = 3,
    /// The token expired and the user must renew it in the browser (join.me, implicit).
    Renew = 4,
    /// The provider (or the token store) is unavailable or limits the rate: try again.
    Unavailable = 5,
}

/// A failed command.
#[derive(Debug)]
pub(crate) struct Failure {
    pub(crate) exit: Exit,
    /// What went wrong; never a secret (grantkit's errors hold none).
    pub(crate) message: String,
    /// What to do next.
    pub(crate) hint: Option<String>,
}

impl Failure {
    pub(crate) fn usage(message: impl Into<String>) -> Self {
        Self {
            exit: Exit::Usage,
            message: message.into(),
            hint: None,
        }
    }

    pub(crate) fn failed(message: impl Into<String>) -> Self {
        Self {
            exit: Exit::Failed,
            message: message.into(),
            hint: None,
        }
    }

    pub(crate) fn with_hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }

    /// A grantkit error met while working with `profile`, with the next step for it.
    pub(crate) fn from_error(err: Error, profile: &str) -> Self {
        let login = format!("run `grantkit login {profile}`");
        let (exit, hint) = match &err {
            err if err.is_reauthorization_required() => (Exit::Login, Some(login)),
            Error::Unidentified { .. } => (
                Exit::Login,
                Some(format!("check the profile's scopes, then {login}")),
            ),
            Error::RenewRequired { .. } => (
                Exit::Renew,
                Some(format!(
                    "run `grantkit login {profile}` to renew the authorization"
                )),
            ),
            Error::AmbiguousAccount { .. } => (
                Exit::Usage,
                Some(format!(
                    "pass --account (see `grantkit status {profile}`), or `grantkit logout {profile} --account …` the others"
                )),
            ),
            Error::Configuration { .. } => (
                Exit::Usage,
                Some("check the profile with `grantkit profile list`".to_owned()),
            ),
            err if err.is_retryable() => (
                Exit::Unavailable,
                Some(match err.retry_after() {
                    Some(after) => format!("try again in {} s", after.as_secs().max(1)),
                    None => "try again later".to_owned(),
                }),
            ),
            Error::CorruptRecord { .. } => (
                Exit::Failed,
                Some(format!(
                    "if the profile seals its store, check its key (`grantkit profile list`); else {login}: a new grant replaces the record"
                )),
            ),
            Error::Unsupported { .. } => (Exit::Failed, None),
            _ => (Exit::Failed, None),
        };
        Self {
            exit,
            message: err.to_string(),
            hint,
        }
    }

    /// The name of the exit code, for `--json` output.
    pub(crate) fn kind(&self) -> &'static str {
        match self.exit {
            Exit::Failed => "failed",
            Exit::Usage => "usage",
            Exit::Login => "login_required",
            Exit::Renew => "renewal_required",
            Exit::Unavailable => "unavailable",
        }
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_error_has_its_exit_code_and_next_step() {
        let login = Failure::from_error(Error::reauthorize("gone"), "joinme");
        assert_eq!(login.exit, Exit::Login);
        assert_eq!(login.hint.as_deref(), Some("run `grantkit login joinme`"));
        let busy = Failure::from_error(
            Error::RateLimited {
                retry_after: Some(std::time::Duration::from_secs(7)),
            },
            "joinme",
        );
        assert_eq!(busy.exit, Exit::Unavailable);
        assert_eq!(busy.hint.as_deref(), Some("try again in 7 s"));
        assert_eq!(
            Failure::from_error(Error::unavailable(503, None), "x").exit,
            Exit::Unavailable
        );
        assert_eq!(Failure::usage("bad").exit as i32, 2);
    }
}
