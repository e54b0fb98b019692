//! The store conformance suite on FileTokenStore: every test opens the shared directory
//! twice, so compare-and-swap and leases are proven between two handles as between two
//! processes.

const DIR: &str = concat!(
    env!("CARGO_TARGET_TMPDIR"),
    "/grantkit-store-file-conformance"
);

grantkit_conformance::store_tests!(pair: {
    let open = || async {
        std::sync::Arc::new(
            grantkit_store_file::FileTokenStore::open(DIR)
                .await
                .expect("open the file store"),
        )
    };
    (open().await, open().await)
});
