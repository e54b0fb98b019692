//! The store suite, on a standalone Redis server and on a 3-master Redis Cluster, each
//! test with two handles (connections) on one key prefix, as two processes would have.

use grantkit_store_redis::testing::TestRedis;
use std::sync::Arc;

mod standalone {
    use super::*;
    grantkit_conformance::store_tests!(pair: {
        let (a, b) = TestRedis::shared_standalone_pair().await;
        (Arc::new(a), Arc::new(b))
    });
}

mod cluster {
    use super::*;
    grantkit_conformance::store_tests!(pair: {
        let (a, b) = TestRedis::shared_cluster_pair().await;
        (Arc::new(a), Arc::new(b))
    });
}
