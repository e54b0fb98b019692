//! Mapping Redis failures into grantkit's [`Error`]: typed, retryable where an outage may
//! pass, never quoting a record or a URL.

use grantkit_core::Error;
use redis::{ErrorKind, RedisError, RetryMethod, ServerErrorKind};
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

/// A store call that did not finish within the operation timeout.
#[derive(Debug)]
pub(crate) struct OperationTimedOut(pub(crate) Duration);

impl fmt::Display for OperationTimedOut {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Redis did not answer within the operation timeout of {:?}",
            self.0
        )
    }
}

impl std::error::Error for OperationTimedOut {}

/// A reply of an unexpected shape (a bug or a foreign server), never quoting the reply.
#[derive(Debug)]
pub(crate) struct UnexpectedReply(pub(crate) &'static str);

impl fmt::Display for UnexpectedReply {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0)
    }
}

impl std::error::Error for UnexpectedReply {}

/// Whether an outage may explain `err`: lost or refused connections, timeouts, a server
/// still loading its data after a restart, a cluster reconfiguring.
pub(crate) fn is_retryable(err: &RedisError) -> bool {
    if err.kind() == ErrorKind::AuthenticationFailed {
        return false;
    }
    if matches!(
        err.kind(),
        ErrorKind::Server(ServerErrorKind::BusyLoading | ServerErrorKind::ReadOnly)
    ) {
        return true;
    }
    !matches!(err.retry_method(), RetryMethod::NoRetry)
}

/// `Error::Store` for a failed Redis command.
pub(crate) fn command_failed(what: &str, err: RedisError) -> Error {
    let retryable = is_retryable(&err);
    let message = if retryable {
        format!("{what}: Redis is unavailable ({})", err.category())
    } else {
        format!("{what}: Redis refused the command ({})", err.category())
    };
    Error::Store {
        message,
        retryable,
        source: Some(Arc::new(err)),
    }
}

/// `Error::Store` for a store call that ran out of time.
pub(crate) fn timed_out(what: &str, limit: Duration) -> Error {
    Error::Store {
        message: format!("{what}: timed out"),
        retryable: true,
        source: Some(Arc::new(OperationTimedOut(limit))),
    }
}

/// `Error::Store` for a reply this store cannot have produced.
pub(crate) fn unexpected(what: &str, detail: &'static str) -> Error {
    Error::Store {
        message: format!("{what}: unexpected reply from Redis"),
        retryable: false,
        source: Some(Arc::new(UnexpectedReply(detail))),
    }
}

/// Whether Redis refused a command because the key holds another type (a foreign value
/// under one of this store's keys).
pub(crate) fn is_wrong_type(err: &RedisError) -> bool {
    err.code() == Some("WRONGTYPE")
}
