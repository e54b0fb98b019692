//! The provider conformance suite on JoindinProvider against the Joind.in emulator (default switches, both flows).
grantkit_conformance::provider_tests!(
    grantkit_joindin::testing::harness().await,
    std::sync::Arc::new(grantkit_core::MemoryTokenStore::new())
);
