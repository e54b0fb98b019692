//! The token stores the matrix runs against, and how to build each.

use super::{Guard, SkippedBackend};
use futures::future::BoxFuture;
use grantkit_core::{MemoryTokenStore, TokenStore};
use grantkit_store_file::FileTokenStore;
use grantkit_store_redis::testing::{TestRedis, redis_server_installed};
use std::sync::Arc;

/// Two handles on one storage, or one where the store lives in a single process.
pub(crate) type Handles = (Arc<dyn TokenStore>, Option<Arc<dyn TokenStore>>);

/// Builds the store of one cell (its index in the plan): each cell gets a store of its
/// own (a fresh memory store, its own directory, its own Redis key prefix), so cells
/// running at the same time never see each other's grants; with a second handle on the
/// same storage where the backend can be opened twice.
pub(crate) type Factory =
    Arc<dyn Fn(usize) -> BoxFuture<'static, Result<Handles, String>> + Send + Sync>;

/// A store backend of the matrix.
pub(crate) struct StoreTarget {
    /// The column name: `memory`, `file`, `redis`, `redis-cluster`.
    pub(crate) name: String,
    /// Builds the store for a cell.
    pub(crate) make: Factory,
    /// Servers and directories the backend needs, dropped at the end of the run.
    pub(crate) _guard: Option<Guard>,
}

/// The backends available on this machine.
pub(crate) struct Targets {
    pub(crate) stores: Vec<StoreTarget>,
    /// Backends this machine lacks the tools for: skipped, with how to install them.
    pub(crate) skipped: Vec<SkippedBackend>,
    /// Backends that should have run and could not: the run fails.
    pub(crate) errors: Vec<String>,
}

/// Every store backend this machine can run: memory and file always; Redis standalone and
/// cluster when `redis-server` is installed or `GRANTKIT_TEST_REDIS_URL` /
/// `GRANTKIT_TEST_REDIS_CLUSTER_URLS` name running servers.
pub(crate) async fn available() -> Targets {
    let mut stores = vec![memory()];
    let mut skipped = Vec::new();
    let mut errors = Vec::new();
    match file().await {
        Ok(target) => stores.push(target),
        Err(reason) => errors.push(format!("the file store could not be opened: {reason}")),
    }
    // A column runs when this machine can start its servers, or when the environment
    // names running ones.
    let installed = redis_server_installed();
    let columns = [
        (
            "redis",
            "GRANTKIT_TEST_REDIS_URL",
            TestRedis::start_standalone as fn() -> _,
        ),
        (
            "redis-cluster",
            "GRANTKIT_TEST_REDIS_CLUSTER_URLS",
            TestRedis::start_cluster as fn() -> _,
        ),
    ];
    for (name, variable, start) in columns {
        if !installed && std::env::var_os(variable).is_none_or(|v| v.is_empty()) {
            skipped.push(SkippedBackend {
                backend: name.to_owned(),
                reason: format!("redis-server is not on PATH and {variable} is not set"),
                install: "sudo apt-get install redis-server redis-tools".to_owned(),
            });
            continue;
        }
        eprintln!("starting {name}…");
        match tokio::task::spawn_blocking(start).await {
            Ok(Ok(redis)) => stores.push(redis_target(name, Arc::new(redis))),
            Ok(Err(err)) => errors.push(format!("{name} did not start: {err}")),
            Err(err) => errors.push(format!("{name} did not start: {err}")),
        }
    }
    Targets {
        stores,
        skipped,
        errors,
    }
}

pub(crate) fn memory() -> StoreTarget {
    StoreTarget {
        name: "memory".to_owned(),
        make: Arc::new(|_| {
            Box::pin(async {
                Ok((
                    Arc::new(MemoryTokenStore::new()) as Arc<dyn TokenStore>,
                    None,
                ))
            })
        }),
        _guard: None,
    }
}

/// A file store in a private directory under `target/`, which is on a real disk (unlike
/// a tmpfs `/tmp`), removed at the end of the run.
async fn file() -> Result<StoreTarget, String> {
    let parent = crate::root().join("target/xtask-conformance");
    std::fs::create_dir_all(&parent)
        .map_err(|e| format!("cannot create {}: {e}", parent.display()))?;
    let dir = Arc::new(
        tempfile::Builder::new()
            .prefix("file-store-")
            .tempdir_in(&parent)
            .map_err(|e| format!("cannot create a directory under {}: {e}", parent.display()))?,
    );
    let root = dir.path().join("tokens");
    Ok(StoreTarget {
        name: "file".to_owned(),
        make: Arc::new(move |cell| {
            let root = root.join(format!("cell-{cell}"));
            Box::pin(async move {
                let open = || async {
                    FileTokenStore::open(root.clone())
                        .await
                        .map(|s| Arc::new(s) as Arc<dyn TokenStore>)
                        .map_err(|e| e.to_string())
                };
                Ok((open().await?, Some(open().await?)))
            })
        }),
        _guard: Some(dir),
    })
}

fn redis_target(name: &str, redis: Arc<TestRedis>) -> StoreTarget {
    let server = redis.clone();
    StoreTarget {
        name: name.to_owned(),
        // Each pair gets a random key prefix of its own.
        make: Arc::new(move |_| {
            let server = server.clone();
            Box::pin(async move {
                let (a, b) = server.store_pair().await.map_err(|e| e.to_string())?;
                Ok((
                    Arc::new(a) as Arc<dyn TokenStore>,
                    Some(Arc::new(b) as Arc<dyn TokenStore>),
                ))
            })
        }),
        _guard: Some(redis),
    }
}
