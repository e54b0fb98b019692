//! Throughput of the PostgreSQL store's `get` and `put` at 16 concurrent tasks against raw
//! sqlx statements on the same pool, in the same run (read by `cargo xtask bench` as time
//! ratios subject / baseline: a throughput of at least 0.8× the raw statement is a time
//! ratio of at most 1.25×).
//!
//! - `postgres_get`: `baseline_raw_select` (the single-row `SELECT` of a row's version and
//!   record by its primary key) vs `get` (the same read, decoded into a token set);
//! - `postgres_put`: `baseline_raw_update` (an `UPDATE … WHERE key_hash = $1 AND version =
//!   $4` of a record already encoded) vs `put` replacing the version it holds, as a refresh
//!   does.
//!
//! Each task works on its own grant. The server is started by the `testing` harness (or is
//! `GRANTKIT_TEST_POSTGRES_URL`).
#![allow(missing_docs)] // criterion_group! generates an undocumented public function

use criterion::{Criterion, criterion_group, criterion_main};
use grantkit_core::store::{Precondition, Version, codec::encode_token_set};
use grantkit_core::{AccessToken, GrantKind, RefreshToken, TokenKey, TokenSet, TokenStore};
use grantkit_store_sql::SqlTokenStore;
use grantkit_store_sql::testing::{TestPostgres, postgres_pool, random_prefix};
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

const TASKS: u64 = 16;

/// A realistic grant: 40-character tokens, expiries, scopes and one extra.
fn tokens(task: u64) -> TokenSet {
    TokenSet::new(
        AccessToken::new(format!("{task:04}-access-0123456789abcdefghijklmnopqrstu")),
        GrantKind::AuthorizationCode,
    )
    .with_refresh_token(RefreshToken::new(format!(
        "{task:04}-refresh-0123456789abcdefghijklmnopqrst"
    )))
    .with_scopes(["user_info", "scheduler"])
    .with_extra("email", "bench@example.com")
    .expiring_in(SystemTime::now(), Duration::from_secs(3600))
}

fn key(task: u64) -> TokenKey {
    TokenKey::new("joinme", "bench-client", format!("user-{task}@example.com"))
}

/// Runs `iters` operations spread over the tasks; returns the wall time.
async fn concurrently<F, Fut>(iters: u64, operation: F) -> Duration
where
    F: Fn(u64) -> Fut + Clone + Send + 'static,
    Fut: Future<Output = ()> + Send,
{
    let started = Instant::now();
    let mut handles = Vec::with_capacity(TASKS as usize);
    for task in 0..TASKS {
        let share = iters / TASKS + u64::from(task < iters % TASKS);
        let operation = operation.clone();
        handles.push(tokio::spawn(async move {
            for _ in 0..share {
                operation(task).await;
            }
        }));
    }
    for handle in handles {
        handle.await.expect("a benchmark task panicked");
    }
    started.elapsed()
}

/// Each task's current version, for the writes that replace it.
struct Versions(Vec<std::sync::Mutex<Version>>);

impl Versions {
    fn get(&self, task: u64) -> Version {
        *self.0[task as usize].lock().expect("a version")
    }

    fn set(&self, task: u64, version: Version) {
        *self.0[task as usize].lock().expect("a version") = version;
    }
}

fn throughput(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a tokio runtime");
    let postgres = TestPostgres::start().unwrap_or_else(|e| panic!("{e}"));
    let prefix = random_prefix();
    let table = format!("\"{prefix}tokens\"");
    let store = runtime.block_on(async {
        SqlTokenStore::builder()
            .url(postgres.url())
            .table_prefix(prefix)
            .max_connections(TASKS as u32)
            .open()
            .await
            .expect("the store opens")
    });
    let pool = postgres_pool(&store).expect("a PostgreSQL store");
    let store = Arc::new(store);
    let versions = Arc::new(Versions(
        (0..TASKS)
            .map(|task| {
                let version = runtime
                    .block_on(store.put(&key(task), &tokens(task), Precondition::Any))
                    .expect("seeding");
                std::sync::Mutex::new(version)
            })
            .collect(),
    ));
    // The raw side addresses the same rows by their primary key.
    let hashes: Arc<Vec<Vec<u8>>> = Arc::new(runtime.block_on(async {
        let mut hashes = Vec::new();
        for task in 0..TASKS {
            let hash: Vec<u8> =
                sqlx::query_scalar(&format!("SELECT key_hash FROM {table} WHERE account = $1"))
                    .bind(key(task).account.into_bytes())
                    .fetch_one(&pool)
                    .await
                    .expect("a seeded row");
            hashes.push(hash);
        }
        hashes
    }));

    let mut group = c.benchmark_group("postgres_get");
    configure(&mut group);
    let select: Arc<str> =
        format!("SELECT version, record FROM {table} WHERE key_hash = $1").into();
    group.bench_function("baseline_raw_select", |b| {
        b.iter_custom(|iters| {
            let (pool, hashes, select) = (pool.clone(), hashes.clone(), select.clone());
            runtime.block_on(concurrently(iters, move |task| {
                let (pool, hashes, select) = (pool.clone(), hashes.clone(), select.clone());
                async move {
                    let row: (i64, Vec<u8>) = sqlx::query_as(&select)
                        .bind(&hashes[task as usize])
                        .fetch_one(&pool)
                        .await
                        .expect("a row");
                    std::hint::black_box(row);
                }
            }))
        })
    });
    group.bench_function("get", |b| {
        b.iter_custom(|iters| {
            let store = store.clone();
            runtime.block_on(concurrently(iters, move |task| {
                let store = store.clone();
                async move {
                    let found = store.get(&key(task)).await.expect("get");
                    std::hint::black_box(found.expect("a grant"));
                }
            }))
        })
    });
    group.finish();

    let mut group = c.benchmark_group("postgres_put");
    configure(&mut group);
    let update: Arc<str> = format!(
        "UPDATE {table} SET version = $2, record = $3, purge_after_ms = NULL \
         WHERE key_hash = $1 AND version = $4"
    )
    .into();
    let records: Arc<Vec<Vec<u8>>> =
        Arc::new((0..TASKS).map(|t| encode_token_set(&tokens(t))).collect());
    group.bench_function("baseline_raw_update", |b| {
        b.iter_custom(|iters| {
            let (pool, hashes, update, records, versions) = (
                pool.clone(),
                hashes.clone(),
                update.clone(),
                records.clone(),
                versions.clone(),
            );
            runtime.block_on(concurrently(iters, move |task| {
                let (pool, hashes, update, records, versions) = (
                    pool.clone(),
                    hashes.clone(),
                    update.clone(),
                    records.clone(),
                    versions.clone(),
                );
                async move {
                    let next = Version::random();
                    let done = sqlx::query(&update)
                        .bind(&hashes[task as usize])
                        .bind(next.as_u64() as i64)
                        .bind(&records[task as usize])
                        .bind(versions.get(task).as_u64() as i64)
                        .execute(&pool)
                        .await
                        .expect("an update");
                    assert_eq!(done.rows_affected(), 1, "the version held");
                    versions.set(task, next);
                }
            }))
        })
    });
    group.bench_function("put", |b| {
        b.iter_custom(|iters| {
            let (store, versions) = (store.clone(), versions.clone());
            runtime.block_on(concurrently(iters, move |task| {
                let (store, versions) = (store.clone(), versions.clone());
                async move {
                    let next = store
                        .put(
                            &key(task),
                            &tokens(task),
                            Precondition::Version(versions.get(task)),
                        )
                        .await
                        .expect("a put");
                    versions.set(task, next);
                }
            }))
        })
    });
    group.finish();
}

fn configure(group: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>) {
    group
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
}

criterion_group!(benches, throughput);
criterion_main!(benches);
