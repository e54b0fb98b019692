//! The providers the matrix runs against: each provider crate's harnesses (its emulator, or
//! a real authorization server), one per server configuration.

use grantkit_conformance::ProviderHarness;
use std::sync::Arc;

/// The available harnesses, with notes on providers that could not be started.
pub(crate) struct Providers {
    pub(crate) harnesses: Vec<Arc<dyn ProviderHarness>>,
    pub(crate) notes: Vec<String>,
}

/// Every provider harness this machine can run.
pub(crate) async fn available() -> Providers {
    Providers {
        harnesses: Vec::new(),
        notes: Vec::new(),
    }
}
