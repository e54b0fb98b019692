//! Mapping database failures into grantkit's [`Error`]: typed, retryable where an outage may
//! pass, never quoting a record, a parameter or a URL.

use grantkit_core::Error;
use grantkit_core::provider::text::untrusted;
use std::fmt;
use std::time::Duration;

/// What went wrong in the database, as far as it may be shown: the kind of failure, the
/// SQLSTATE (or SQLite result code) and the server's message, capped and escaped. The
/// driver's own error is not kept: some of its forms quote the connection URL.
#[derive(Debug)]
pub(crate) struct DatabaseFailure {
    kind: &'static str,
    code: Option<String>,
    message: Option<String>,
}

impl fmt::Display for DatabaseFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.kind)?;
        if let Some(code) = &self.code {
            write!(f, " [{code}]")?;
        }
        if let Some(message) = &self.message {
            write!(f, ": {message}")?;
        }
        Ok(())
    }
}

impl std::error::Error for DatabaseFailure {}

/// The longest a server message is quoted.
const MAX_MESSAGE: usize = 200;

/// `Error::Store` for a failed statement or connection.
pub(crate) fn failed(what: &str, err: sqlx::Error) -> Error {
    let (kind, code, message, retryable) = match &err {
        sqlx::Error::Database(db) => {
            let code = db.code().map(|c| c.into_owned());
            let retryable = code.as_deref().is_some_and(is_transient_code);
            (
                "the database refused the statement",
                code,
                Some(untrusted(db.message(), MAX_MESSAGE)),
                retryable,
            )
        }
        sqlx::Error::Io(_) => ("the connection failed", None, None, true),
        // A refused certificate or a server without TLS where TLS is required: settings to
        // fix, not an outage to wait out.
        sqlx::Error::Tls(_) => ("TLS to the database failed", None, None, false),
        sqlx::Error::Protocol(_) => ("the server broke the protocol", None, None, true),
        sqlx::Error::PoolTimedOut => ("no connection was free in time", None, None, true),
        sqlx::Error::PoolClosed => ("the pool is closed", None, None, false),
        sqlx::Error::WorkerCrashed => ("the database worker stopped", None, None, true),
        sqlx::Error::Configuration(_) => ("the connection settings are invalid", None, None, false),
        _ => ("the database call failed", None, None, false),
    };
    let summary = if retryable {
        format!("{what}: the database is unavailable ({kind})")
    } else {
        format!("{what}: {kind}")
    };
    Error::store(
        summary,
        retryable,
        DatabaseFailure {
            kind,
            code,
            message,
        },
    )
}

/// SQLSTATE classes and SQLite result codes that an outage or contention explains:
/// connection exceptions (08), insufficient resources (53), a lock not available in time
/// (55), operator intervention such as a shutdown, a server starting or a cancelled
/// statement (57), serialization failures and deadlocks (40), and SQLite's BUSY (5) and
/// LOCKED (6) with their extended forms.
fn is_transient_code(code: &str) -> bool {
    if code.len() == 5 {
        // A SQLSTATE: two characters of class, three of subclass.
        return ["08", "53", "57", "40"]
            .iter()
            .any(|class| code.starts_with(class));
    }
    // A SQLite result code: the primary code in the low byte.
    code.parse::<u32>().is_ok_and(|n| matches!(n & 0xff, 5 | 6))
}

/// Whether SQLite answered BUSY (in any extended form): another connection held a lock
/// this one could not wait for.
#[cfg(feature = "sqlite")]
pub(crate) fn is_sqlite_busy(err: &sqlx::Error) -> bool {
    match err {
        sqlx::Error::Database(db) => db
            .code()
            .and_then(|code| code.parse::<u32>().ok())
            .is_some_and(|code| code & 0xff == 5),
        _ => false,
    }
}

/// `Error::Store` for a call that ran out of time.
pub(crate) fn timed_out(what: &str, limit: Duration) -> Error {
    Error::store(
        format!("{what}: timed out"),
        true,
        DatabaseFailure {
            kind: "no answer within the operation timeout",
            code: None,
            message: Some(format!("{limit:?}")),
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outages_are_retryable_and_refusals_are_not() {
        for code in [
            "08006", "57P01", "57P03", "53300", "40001", "40P01", "5", "517", "6",
        ] {
            assert!(is_transient_code(code), "{code}");
        }
        for code in ["23505", "42P01", "28P01", "1", "19", "2067"] {
            assert!(!is_transient_code(code), "{code}");
        }
        assert!(failed("reading", sqlx::Error::PoolTimedOut).is_retryable());
        assert!(!failed("reading", sqlx::Error::PoolClosed).is_retryable());
    }
}
