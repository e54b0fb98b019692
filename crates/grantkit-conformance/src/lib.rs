#![doc = include_str!("../README.md")]

pub mod processes;
pub mod provider;
pub mod store;

use std::any::Any;
use std::fmt;
use std::future::Future;
use std::time::{Duration, Instant};

pub use provider::{
    Decision, HarnessCapabilities, PROVIDER_SUITE, ProviderBehavior, ProviderFixture,
    ProviderHarness, ProviderRequirement, ServerEndpoint, ServerFault,
};
pub use store::{STORE_SUITE, StoreBehavior, StoreFixture, StoreRequirement};

/// How one cell of the matrix ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The behaviour held.
    Passed,
    /// It did not: the assertion message, the panic, or the timeout.
    Failed(String),
    /// The backend does not declare a capability the behaviour needs.
    Skipped(String),
}

impl Outcome {
    /// `passed`, `failed` or `skipped`.
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Passed => "passed",
            Self::Failed(_) => "failed",
            Self::Skipped(_) => "skipped",
        }
    }

    /// The reason, for failures and skips.
    pub fn reason(&self) -> Option<&str> {
        match self {
            Self::Passed => None,
            Self::Failed(reason) | Self::Skipped(reason) => Some(reason),
        }
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.reason() {
            Some(reason) => write!(f, "{}: {reason}", self.as_str()),
            None => f.write_str(self.as_str()),
        }
    }
}

/// A finished cell: its outcome and how long it ran.
#[derive(Clone, Debug)]
pub struct CellResult {
    /// How it ended.
    pub outcome: Outcome,
    /// Wall time.
    pub duration: Duration,
}

/// Runs one behaviour as a cell of the matrix: in its own task (so a panic is caught and
/// reported instead of ending the run), with a timeout.
pub async fn run_cell<F>(behaviour: F, timeout: Duration) -> CellResult
where
    F: Future<Output = ()> + Send + 'static,
{
    let started = Instant::now();
    let task = tokio::spawn(behaviour);
    let abort = task.abort_handle();
    let outcome = match tokio::time::timeout(timeout, task).await {
        Ok(Ok(())) => Outcome::Passed,
        Ok(Err(err)) if err.is_panic() => Outcome::Failed(panic_message(err.into_panic())),
        Ok(Err(err)) => Outcome::Failed(format!("the behaviour's task ended: {err}")),
        Err(_) => {
            abort.abort();
            Outcome::Failed(format!("timed out after {}s", timeout.as_secs_f32()))
        }
    };
    CellResult {
        outcome,
        duration: started.elapsed(),
    }
}

fn panic_message(payload: Box<dyn Any + Send>) -> String {
    if let Some(text) = payload.downcast_ref::<&str>() {
        (*text).to_owned()
    } else if let Some(text) = payload.downcast_ref::<String>() {
        text.clone()
    } else {
        "panicked with a non-text payload".to_owned()
    }
}

/// Items the test macros use; not part of the API.
#[doc(hidden)]
pub mod __private {
    pub use grantkit_core::TokenStore;
    pub use std::sync::Arc;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_cell_reports_pass_panic_and_timeout() {
        let passed = run_cell(async {}, Duration::from_secs(5)).await;
        assert_eq!(passed.outcome, Outcome::Passed);

        let failed = run_cell(
            async { assert_eq!(1 + 1, 3, "arithmetic") },
            Duration::from_secs(5),
        )
        .await;
        match failed.outcome {
            Outcome::Failed(reason) => assert!(reason.contains("arithmetic"), "{reason}"),
            other => panic!("expected a failure, got {other}"),
        }

        let hung = run_cell(std::future::pending::<()>(), Duration::from_millis(50)).await;
        assert!(matches!(hung.outcome, Outcome::Failed(ref r) if r.contains("timed out")));
    }

    #[test]
    fn every_behaviour_is_registered_once() {
        let mut names: Vec<&str> = STORE_SUITE.iter().map(|b| b.name).collect();
        names.extend(PROVIDER_SUITE.iter().map(|b| b.name));
        let count = names.len();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), count, "a behaviour name appears twice");
    }
}
