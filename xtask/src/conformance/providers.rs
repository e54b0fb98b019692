//! The providers the matrix runs against: each provider crate's harnesses (its emulator, or
//! a real authorization server), one per server configuration.

use grantkit_conformance::ProviderHarness;
use std::sync::Arc;

/// The available harnesses.
pub(crate) struct Providers {
    pub(crate) harnesses: Vec<Arc<dyn ProviderHarness>>,
    /// Providers that should have run and could not: the run fails.
    pub(crate) errors: Vec<String>,
}

/// Every provider harness this machine can run: Joind.in and join.me against their
/// emulators (in process), and the standard provider against the independent
/// authorization server (Node.js).
pub(crate) async fn available() -> Providers {
    let mut harnesses = Vec::new();
    let mut errors = Vec::new();
    eprintln!("starting the Joind.in and join.me emulators…");
    harnesses.extend(grantkit_joindin::testing::harnesses().await);
    harnesses.extend(grantkit_joinme::testing::harnesses().await);
    eprintln!("starting the independent authorization server…");
    match grantkit_standard::testing::try_harnesses().await {
        Ok(standard) => harnesses.extend(standard),
        Err(err) => errors.push(format!(
            "the standard provider's test server did not start: {err}"
        )),
    }
    Providers { harnesses, errors }
}
