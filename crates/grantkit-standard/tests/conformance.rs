//! The provider conformance suite on StandardProvider against a real, independent OAuth
//! server (oidc-provider), one fresh server per test, with the memory store.

use grantkit_core::MemoryTokenStore;
use grantkit_standard::testing::{HarnessVariant, harness};
use std::sync::Arc;

grantkit_conformance::provider_tests!(
    harness(HarnessVariant::Default).await,
    Arc::new(MemoryTokenStore::new())
);

mod no_rotation {
    use super::*;
    grantkit_conformance::provider_tests!(
        harness(HarnessVariant::NoRotation).await,
        Arc::new(MemoryTokenStore::new())
    );
}

mod client_secret_post {
    use super::*;
    grantkit_conformance::provider_tests!(
        harness(HarnessVariant::ClientSecretPost).await,
        Arc::new(MemoryTokenStore::new())
    );
}

mod client_credentials {
    use super::*;
    grantkit_conformance::provider_tests!(
        harness(HarnessVariant::ClientCredentials).await,
        Arc::new(MemoryTokenStore::new())
    );
}
