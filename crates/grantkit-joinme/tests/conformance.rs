//! The provider conformance suite on JoinMeProvider against the join.me emulator (defaults).
grantkit_conformance::provider_tests!(
    grantkit_joinme::testing::harness().await,
    std::sync::Arc::new(grantkit_core::MemoryTokenStore::new())
);
