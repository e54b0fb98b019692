//! The store conformance suite on FileTokenStore, every test a separate store on one shared directory.
grantkit_conformance::store_tests!(std::sync::Arc::new(
    grantkit_store_file::FileTokenStore::open(concat!(
        env!("CARGO_TARGET_TMPDIR"),
        "/grantkit-store-file-conformance"
    ))
    .await
    .expect("open the file store")
));
