//! The store suite on PostgreSQL (a server of the tests' own, or `GRANTKIT_TEST_POSTGRES_URL`)
//! and on SQLite (one file per test), each test with two stores — two pools, as two
//! processes would have — on one set of tables.

use grantkit_store_sql::testing::TestPostgres;
use std::sync::Arc;

mod postgres {
    use super::*;
    grantkit_conformance::store_tests!(pair: {
        let (a, b) = TestPostgres::shared_pair().await;
        (Arc::new(a), Arc::new(b))
    });
}

mod sqlite {
    use super::*;
    use grantkit_store_sql::testing::{random_prefix, sqlite_store_pair};
    use std::path::PathBuf;

    /// A file of its own for each test, under cargo's scratch directory for tests; what an
    /// earlier run left there is removed the first time.
    fn fresh_dir() -> PathBuf {
        static CLEARED: std::sync::Once = std::sync::Once::new();
        let parent = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("sqlite-conformance");
        CLEARED.call_once(|| {
            let _ = std::fs::remove_dir_all(&parent);
        });
        let dir = parent.join(random_prefix());
        std::fs::create_dir_all(&dir).expect("creating a directory for SQLite");
        dir
    }

    grantkit_conformance::store_tests!(pair: {
        let (a, b) = sqlite_store_pair(&fresh_dir()).await.expect("opening SQLite");
        (Arc::new(a), Arc::new(b))
    });
}
