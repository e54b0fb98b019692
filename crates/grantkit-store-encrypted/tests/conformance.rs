//! The store conformance suite on the encryption layer: over a memory store, and over two
//! file stores opened on one directory with one keyring, so compare-and-swap and leases are
//! proven between two handles as between two processes.

use grantkit_store_encrypted::{EncryptedTokenStore, Keyring, SealingKey};
use std::sync::Arc;

fn keyring() -> Keyring {
    Keyring::new(SealingKey::generate("conformance").expect("a valid key id"))
}

mod memory {
    use super::*;
    use grantkit_core::MemoryTokenStore;

    grantkit_conformance::store_tests!(Arc::new(EncryptedTokenStore::new(
        MemoryTokenStore::new(),
        keyring()
    )));
}

mod file {
    use super::*;
    use grantkit_store_file::FileTokenStore;

    const DIR: &str = concat!(
        env!("CARGO_TARGET_TMPDIR"),
        "/grantkit-store-encrypted-conformance"
    );

    async fn open(keys: Keyring) -> Arc<EncryptedTokenStore<FileTokenStore>> {
        let inner = FileTokenStore::open(DIR)
            .await
            .expect("open the file store");
        Arc::new(EncryptedTokenStore::new(inner, keys))
    }

    grantkit_conformance::store_tests!(pair: {
        let keys = keyring();
        (open(keys.clone()).await, open(keys).await)
    });
}
