//! The store conformance suite on MemoryTokenStore.
grantkit_conformance::store_tests!(std::sync::Arc::new(grantkit_core::MemoryTokenStore::new()));
