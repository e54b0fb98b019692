//! The token stores the matrix runs against, and how to build each.

use super::Guard;
use futures::future::BoxFuture;
use grantkit_core::{MemoryTokenStore, TokenStore};
use std::sync::Arc;

/// Builds a store for one cell.
pub(crate) type Factory =
    Box<dyn Fn() -> BoxFuture<'static, Result<Arc<dyn TokenStore>, String>> + Send + Sync>;

/// A store backend of the matrix.
pub(crate) struct StoreTarget {
    /// The column name: `memory`, `file`, `redis`, `redis-cluster`.
    pub(crate) name: String,
    /// Builds the store for a cell.
    pub(crate) make: Factory,
    /// Servers and directories the backend needs, dropped at the end of the run.
    pub(crate) _guard: Option<Guard>,
}

/// The backends available on this machine, with notes on those that are not.
pub(crate) struct Targets {
    pub(crate) stores: Vec<StoreTarget>,
    pub(crate) notes: Vec<String>,
}

/// Every store backend this machine can run.
pub(crate) async fn available() -> Targets {
    let stores = vec![StoreTarget {
        name: "memory".to_owned(),
        make: Box::new(|| {
            Box::pin(async { Ok(Arc::new(MemoryTokenStore::new()) as Arc<dyn TokenStore>) })
        }),
        _guard: None,
    }];
    Targets {
        stores,
        notes: Vec::new(),
    }
}
