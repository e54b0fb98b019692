//! The token stores the matrix runs against, and how to build each.

use super::{Guard, SkippedBackend};
use futures::future::BoxFuture;
use grantkit_core::{MemoryTokenStore, TokenStore};
use grantkit_store_encrypted::{EncryptedTokenStore, Keyring, SealingKey};
use grantkit_store_file::FileTokenStore;
use grantkit_store_redis::testing::{TestRedis, redis_server_installed};
use grantkit_store_sql::SqlTokenStore;
use grantkit_store_sql::testing::{TestPostgres, postgres_available};
use std::path::PathBuf;
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
    /// The column name: `memory`, `file`, `redis`, `redis-cluster`, `postgres`, `sqlite`,
    /// and `encrypted-…` for a store under the encryption layer.
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

/// Every store backend this machine can run: memory, file and SQLite always; Redis
/// standalone and cluster when `redis-server` is installed or `GRANTKIT_TEST_REDIS_URL` /
/// `GRANTKIT_TEST_REDIS_CLUSTER_URLS` name running servers; PostgreSQL when its server
/// programs are installed or `GRANTKIT_TEST_POSTGRES_URL` names a database. Memory, file,
/// Redis and PostgreSQL also run under the encryption layer.
pub(crate) async fn available() -> Targets {
    let keys = match SealingKey::generate("conformance") {
        Ok(key) => Keyring::new(key),
        Err(err) => {
            return Targets {
                stores: Vec::new(),
                skipped: Vec::new(),
                errors: vec![format!("no sealing key for the encrypted columns: {err}")],
            };
        }
    };
    let mut stores = vec![memory(), encrypted_memory(keys.clone())];
    let mut skipped = Vec::new();
    let mut errors = Vec::new();
    match scratch_dir("file-store-") {
        Ok(dir) => {
            stores.push(file(dir.clone(), None));
            stores.push(file(dir, Some(keys.clone())));
        }
        Err(reason) => errors.push(format!("the file store could not be opened: {reason}")),
    }
    match scratch_dir("sqlite-store-") {
        Ok(dir) => stores.push(sqlite(dir)),
        Err(reason) => errors.push(format!("the SQLite store could not be opened: {reason}")),
    }
    if postgres_available() {
        eprintln!("starting postgres…");
        match tokio::task::spawn_blocking(TestPostgres::start).await {
            Ok(Ok(postgres)) => {
                let postgres = Arc::new(postgres);
                stores.push(postgres_target(postgres.clone(), None));
                stores.push(postgres_target(postgres, Some(keys.clone())));
            }
            Ok(Err(err)) => errors.push(format!("postgres did not start: {err}")),
            Err(err) => errors.push(format!("postgres did not start: {err}")),
        }
    } else {
        for name in ["postgres", "encrypted-postgres"] {
            skipped.push(SkippedBackend {
                backend: name.to_owned(),
                reason: "PostgreSQL's server programs are not installed and \
                         GRANTKIT_TEST_POSTGRES_URL is not set"
                    .to_owned(),
                install: "sudo apt-get install postgresql".to_owned(),
            });
        }
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
            Ok(Ok(redis)) => {
                let redis: Arc<TestRedis> = Arc::new(redis);
                stores.push(redis_target(name, redis.clone(), None));
                if name == "redis" {
                    stores.push(redis_target(name, redis, Some(keys.clone())));
                }
            }
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

fn encrypted_memory(keys: Keyring) -> StoreTarget {
    StoreTarget {
        name: "encrypted-memory".to_owned(),
        make: Arc::new(move |_| {
            let keys = keys.clone();
            Box::pin(async move {
                let store = EncryptedTokenStore::new(MemoryTokenStore::new(), keys);
                Ok((Arc::new(store) as Arc<dyn TokenStore>, None))
            })
        }),
        _guard: None,
    }
}

/// A private directory under `target/`, which is on a real disk (unlike a tmpfs `/tmp`),
/// removed at the end of the run.
fn scratch_dir(prefix: &str) -> Result<Arc<tempfile::TempDir>, String> {
    let parent = crate::root().join("target/xtask-conformance");
    std::fs::create_dir_all(&parent)
        .map_err(|e| format!("cannot create {}: {e}", parent.display()))?;
    tempfile::Builder::new()
        .prefix(prefix)
        .tempdir_in(&parent)
        .map(Arc::new)
        .map_err(|e| format!("cannot create a directory under {}: {e}", parent.display()))
}

/// Two handles on `store`, each under the encryption layer when `keys` are given.
fn handles<S: TokenStore + 'static>(
    first: S,
    second: Option<S>,
    keys: Option<&Keyring>,
) -> Handles {
    match keys {
        Some(keys) => (
            Arc::new(EncryptedTokenStore::new(first, keys.clone())),
            second.map(|s| {
                Arc::new(EncryptedTokenStore::new(s, keys.clone())) as Arc<dyn TokenStore>
            }),
        ),
        None => (
            Arc::new(first),
            second.map(|s| Arc::new(s) as Arc<dyn TokenStore>),
        ),
    }
}

fn column(base: &str, keys: &Option<Keyring>) -> String {
    match keys {
        Some(_) => format!("encrypted-{base}"),
        None => base.to_owned(),
    }
}

/// A file store in a directory of its own per cell, opened twice.
fn file(dir: Arc<tempfile::TempDir>, keys: Option<Keyring>) -> StoreTarget {
    let root = dir.path().join(column("tokens", &keys));
    StoreTarget {
        name: column("file", &keys),
        make: Arc::new(move |cell| {
            let root = root.join(format!("cell-{cell}"));
            let keys = keys.clone();
            Box::pin(async move {
                let open = || async {
                    FileTokenStore::open(root.clone())
                        .await
                        .map_err(|e| e.to_string())
                };
                Ok(handles(open().await?, Some(open().await?), keys.as_ref()))
            })
        }),
        _guard: Some(dir),
    }
}

/// A SQLite file of its own per cell, opened by two pools.
fn sqlite(dir: Arc<tempfile::TempDir>) -> StoreTarget {
    let root: PathBuf = dir.path().to_owned();
    StoreTarget {
        name: "sqlite".to_owned(),
        make: Arc::new(move |cell| {
            let url = format!("sqlite:{}", root.join(format!("cell-{cell}.db")).display());
            Box::pin(async move {
                let open = || async {
                    SqlTokenStore::connect(&url)
                        .await
                        .map_err(|e| e.to_string())
                };
                Ok(handles(open().await?, Some(open().await?), None))
            })
        }),
        _guard: Some(dir),
    }
}

/// Each cell gets tables of its own (a random prefix), opened by two pools.
fn postgres_target(postgres: Arc<TestPostgres>, keys: Option<Keyring>) -> StoreTarget {
    let server = postgres.clone();
    StoreTarget {
        name: column("postgres", &keys),
        make: Arc::new(move |_| {
            let server = server.clone();
            let keys = keys.clone();
            Box::pin(async move {
                let (a, b) = server.store_pair().await.map_err(|e| e.to_string())?;
                Ok(handles(a, Some(b), keys.as_ref()))
            })
        }),
        _guard: Some(postgres),
    }
}

fn redis_target(name: &str, redis: Arc<TestRedis>, keys: Option<Keyring>) -> StoreTarget {
    let server = redis.clone();
    StoreTarget {
        name: column(name, &keys),
        // Each pair gets a random key prefix of its own.
        make: Arc::new(move |_| {
            let server = server.clone();
            let keys = keys.clone();
            Box::pin(async move {
                let (a, b) = server.store_pair().await.map_err(|e| e.to_string())?;
                Ok(handles(a, Some(b), keys.as_ref()))
            })
        }),
        _guard: Some(redis),
    }
}
