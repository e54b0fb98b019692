//! `RetryPolicy`: when an [`AuthorizedClient`](crate::AuthorizedClient) sends a request
//! again after a transient failure.

use rand::Rng as _;
use std::time::Duration;

/// When and how often an [`AuthorizedClient`](crate::AuthorizedClient) retries a request
/// after a transient failure.
///
/// Only requests that are safe to repeat are retried: the idempotent methods (`GET`,
/// `HEAD`, `PUT`, `DELETE`, `OPTIONS`, `TRACE`) — never a `POST` or `PATCH`, which may
/// create something (a comment, a meeting) the first time even when its answer is lost.
/// The one exception is a connection that could not be made at all: nothing was sent, so
/// any request may try again. A request whose body cannot be replayed (a stream) is never
/// retried.
///
/// A retry follows a 5xx answer, a rate-limited answer (429, or what the provider reads as
/// one), a connection reset or a timeout. Waits grow exponentially from
/// [`initial_backoff`](Self::initial_backoff) to [`max_backoff`](Self::max_backoff), each
/// drawn at random between half and all of its step (so that many clients failing together
/// do not return together), and never shorter than the server's `Retry-After`. No wait
/// starts that would end after [`deadline`](Self::deadline), counted from the first
/// attempt: then the last failure is returned at once, with its `Retry-After`.
///
/// Replaying a request with a refreshed token after a `401` is not a retry: it happens
/// once, for any method, whatever the policy.
///
/// ```
/// use grantkit_core::RetryPolicy;
/// use std::time::Duration;
///
/// let patient = RetryPolicy::default()
///     .with_max_attempts(8)
///     .with_deadline(Duration::from_secs(120));
/// assert_eq!(patient.max_attempts, 8);
/// assert_eq!(RetryPolicy::none().max_attempts, 1);
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct RetryPolicy {
    /// Attempts in all, the first included (default 5; 1 never retries).
    pub max_attempts: u32,
    /// The first wait's step (default 200 ms); each later step doubles.
    pub initial_backoff: Duration,
    /// The largest step (default 5 s).
    pub max_backoff: Duration,
    /// How long after the first attempt a retry may still start (default 30 s): no wait
    /// begins that would end later. The last attempt itself may then run for its own
    /// timeout.
    pub deadline: Duration,
    /// Whether waits are drawn at random within their step (default on).
    pub jitter: bool,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 5,
            initial_backoff: Duration::from_millis(200),
            max_backoff: Duration::from_secs(5),
            deadline: Duration::from_secs(30),
            jitter: true,
        }
    }
}

impl RetryPolicy {
    /// Never retry: every failure is returned as it happens.
    pub fn none() -> Self {
        Self {
            max_attempts: 1,
            ..Self::default()
        }
    }

    /// Sets the number of attempts in all (at least 1).
    pub fn with_max_attempts(mut self, attempts: u32) -> Self {
        self.max_attempts = attempts.max(1);
        self
    }

    /// Sets the first step and the largest step of the waits.
    pub fn with_backoff(mut self, initial: Duration, max: Duration) -> Self {
        self.initial_backoff = initial;
        self.max_backoff = max.max(initial);
        self
    }

    /// Sets how long one request may take with its retries.
    pub fn with_deadline(mut self, deadline: Duration) -> Self {
        self.deadline = deadline;
        self
    }

    /// Waits exactly their step: for tests that count time.
    pub fn without_jitter(mut self) -> Self {
        self.jitter = false;
        self
    }

    /// The wait before attempt `failed + 1`, after `failed` attempts failed within
    /// `elapsed` of the first; `None` to give up. `retry_after` is the server's minimum.
    /// For clients that send without an [`AuthorizedClient`](crate::AuthorizedClient) and
    /// retry the same way.
    pub fn wait(
        &self,
        failed: u32,
        elapsed: Duration,
        retry_after: Option<Duration>,
    ) -> Option<Duration> {
        if failed >= self.max_attempts {
            return None;
        }
        let doublings = failed.saturating_sub(1).min(31);
        let step = self
            .initial_backoff
            .saturating_mul(1 << doublings)
            .min(self.max_backoff);
        let backoff = if self.jitter {
            let half = step / 2;
            half + rand::rng().random_range(Duration::ZERO..=step - half)
        } else {
            step
        };
        let wait = backoff.max(retry_after.unwrap_or(Duration::ZERO));
        (elapsed.saturating_add(wait) <= self.deadline).then_some(wait)
    }
}

/// Whether a request with `method` may be sent twice with the same effect (RFC 9110 §9.2.2).
pub(crate) fn is_idempotent(method: &http::Method) -> bool {
    use http::Method;
    [
        Method::GET,
        Method::HEAD,
        Method::PUT,
        Method::DELETE,
        Method::OPTIONS,
        Method::TRACE,
    ]
    .contains(method)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_double_up_to_the_largest_step_and_stop_at_the_attempts() {
        let policy = RetryPolicy::default()
            .with_backoff(Duration::from_millis(100), Duration::from_millis(350))
            .without_jitter();
        let waits: Vec<_> = (1..=5)
            .map(|failed| policy.wait(failed, Duration::ZERO, None))
            .collect();
        let ms = |n| Some(Duration::from_millis(n));
        assert_eq!(waits, [ms(100), ms(200), ms(350), ms(350), None]);
    }

    #[test]
    fn retry_after_is_a_floor_and_the_deadline_a_ceiling() {
        let policy = RetryPolicy::default().without_jitter();
        let retry_after = Some(Duration::from_secs(3));
        assert_eq!(
            policy.wait(1, Duration::ZERO, retry_after),
            Some(Duration::from_secs(3))
        );
        assert_eq!(policy.wait(1, Duration::from_secs(28), retry_after), None);
        assert_eq!(
            policy.wait(1, Duration::ZERO, Some(Duration::from_secs(120))),
            None,
            "a wait past the deadline is not started"
        );
    }

    #[test]
    fn jitter_stays_within_half_and_all_of_the_step() {
        let policy = RetryPolicy::default();
        for _ in 0..200 {
            let wait = policy.wait(3, Duration::ZERO, None).unwrap();
            assert!(wait >= Duration::from_millis(400) && wait <= Duration::from_millis(800));
        }
    }

    #[test]
    fn only_idempotent_methods() {
        assert!(is_idempotent(&http::Method::GET) && is_idempotent(&http::Method::DELETE));
        assert!(!is_idempotent(&http::Method::POST) && !is_idempotent(&http::Method::PATCH));
        assert_eq!(RetryPolicy::none().wait(1, Duration::ZERO, None), None);
    }
}
