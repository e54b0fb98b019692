//! The providers the matrix runs against: each provider crate's harnesses (its emulator, or
//! a real authorization server), one per server configuration.

use super::SkippedBackend;
use grantkit_conformance::ProviderHarness;
use grantkit_standard::testing::AuthServerError;
use std::sync::Arc;

/// The available harnesses.
pub(crate) struct Providers {
    pub(crate) harnesses: Vec<Arc<dyn ProviderHarness>>,
    /// Providers this machine lacks the tools for: skipped, with how to install them.
    pub(crate) skipped: Vec<SkippedBackend>,
    /// Providers that should have run and could not: the run fails.
    pub(crate) errors: Vec<String>,
}

/// Every provider harness this machine can run: Joind.in and join.me against their
/// emulators (in process), and the standard provider against the independent
/// authorization server (Node.js).
pub(crate) async fn available() -> Providers {
    let mut harnesses = Vec::new();
    let mut skipped = Vec::new();
    let mut errors = Vec::new();
    eprintln!("starting the Joind.in and join.me emulators…");
    harnesses.extend(grantkit_joindin::testing::harnesses().await);
    harnesses.extend(grantkit_joinme::testing::harnesses().await);
    eprintln!("starting the independent authorization server…");
    match grantkit_standard::testing::try_harnesses().await {
        Ok(standard) => harnesses.extend(standard),
        // A machine without Node.js runs everything else; `--strict` refuses that.
        Err(
            err @ (AuthServerError::NodeMissing
            | AuthServerError::NodeTooOld { .. }
            | AuthServerError::NpmMissing),
        ) => skipped.push(SkippedBackend {
            backend: "standard (every harness)".to_owned(),
            reason: err.to_string(),
            install: "sudo apt-get install nodejs npm   # Node.js 20.18 or newer; or nodejs.org"
                .to_owned(),
        }),
        Err(err) => errors.push(format!(
            "the standard provider's test server did not start: {err}"
        )),
    }
    Providers {
        harnesses,
        skipped,
        errors,
    }
}
