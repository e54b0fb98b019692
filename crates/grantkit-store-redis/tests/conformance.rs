//! The store suite, on a standalone Redis server and on a 3-master Redis Cluster.

mod standalone {
    grantkit_conformance::store_tests!(std::sync::Arc::new(
        grantkit_store_redis::testing::TestRedis::shared_standalone_store().await
    ));
}

mod cluster {
    grantkit_conformance::store_tests!(std::sync::Arc::new(
        grantkit_store_redis::testing::TestRedis::shared_cluster_store().await
    ));
}
