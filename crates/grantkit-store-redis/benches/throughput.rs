//! Throughput of `get` and `put` at 64 concurrent tasks against raw `GET`/`SET` of the same
//! bytes on the same server, in the same run.
//!
//! Groups (read by `cargo xtask bench` as time ratios subject / baseline):
//! - `redis_get`: `baseline_raw_get` (a `GET` of the encoded record) vs `get`;
//! - `redis_put`: `baseline_raw_set` (a `SET` of the encoded record) vs `put` (the
//!   compare-and-swap script with precondition `Any`).
//!
//! Both sides use one multiplexed, reconnecting connection (`ConnectionManager`), and each
//! of the 64 tasks works on its own key. The server is started by the `testing` harness, or
//! named by `GRANTKIT_TEST_REDIS_URL`.

use criterion::{Criterion, criterion_main};
use grantkit_core::store::codec::encode_token_set;
use grantkit_core::{
    AccessToken, GrantKind, RefreshToken, TokenKey, TokenSet, TokenStore, store::Precondition,
};
use grantkit_store_redis::testing::TestRedis;
use redis::aio::ConnectionManager;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

const TASKS: u64 = 64;

/// A realistic grant: 40-character tokens, expiries, scopes and one extra.
fn tokens(task: u64) -> TokenSet {
    let mut tokens = TokenSet::new(
        AccessToken::new(format!("{task:04}-access-0123456789abcdefghijklmnopqrstu")),
        GrantKind::AuthorizationCode,
    )
    .with_refresh_token(RefreshToken::new(format!(
        "{task:04}-refresh-0123456789abcdefghijklmnopqrst"
    )))
    .with_scopes(["user_info", "scheduler"])
    .with_extra("email", "bench@example.com")
    .expiring_in(SystemTime::now(), Duration::from_secs(3600));
    tokens.refresh_expires_at = None;
    tokens
}

fn key(task: u64) -> TokenKey {
    TokenKey::new("joinme", "bench-client", format!("user-{task}@example.com"))
}

/// Runs `iters` operations spread over 64 concurrent tasks; returns the wall time.
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

fn throughput(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a tokio runtime");
    let redis = TestRedis::start_standalone().unwrap_or_else(|e| panic!("{e}"));
    let url = redis.topology().urls()[0].clone();
    let (store, raw) = runtime.block_on(async {
        let store = Arc::new(redis.store().await.expect("the store connects"));
        let raw = ConnectionManager::new(redis::Client::open(url).expect("a client"))
            .await
            .expect("the raw connection");
        (store, raw)
    });
    // Everything a caller would already hold is built once, outside the measurement.
    let keys: Arc<Vec<TokenKey>> = Arc::new((0..TASKS).map(key).collect());
    let sets: Arc<Vec<TokenSet>> = Arc::new((0..TASKS).map(tokens).collect());
    let raw_keys: Arc<Vec<String>> = Arc::new(
        (0..TASKS)
            .map(|task| format!("{}raw:{task}", store.key_prefix()))
            .collect(),
    );
    let records: Arc<Vec<Vec<u8>>> = Arc::new(sets.iter().map(encode_token_set).collect());
    runtime.block_on(async {
        let mut conn = raw.clone();
        for task in 0..TASKS {
            store
                .put(
                    &keys[task as usize],
                    &sets[task as usize],
                    Precondition::Any,
                )
                .await
                .expect("seeding the store");
            redis::cmd("SET")
                .arg(&raw_keys[task as usize])
                .arg(&records[task as usize])
                .query_async::<()>(&mut conn)
                .await
                .expect("seeding the raw keys");
        }
    });

    let mut group = c.benchmark_group("redis_get");
    group
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    group.bench_function("baseline_raw_get", |b| {
        b.iter_custom(|iters| {
            let raw = raw.clone();
            let raw_keys = raw_keys.clone();
            runtime.block_on(concurrently(iters, move |task| {
                let mut conn = raw.clone();
                let raw_keys = raw_keys.clone();
                async move {
                    let bytes: Option<Vec<u8>> = redis::cmd("GET")
                        .arg(&raw_keys[task as usize])
                        .query_async(&mut conn)
                        .await
                        .expect("GET");
                    assert!(bytes.is_some());
                }
            }))
        });
    });
    group.bench_function("get", |b| {
        b.iter_custom(|iters| {
            let store = store.clone();
            let keys = keys.clone();
            runtime.block_on(concurrently(iters, move |task| {
                let store = store.clone();
                let keys = keys.clone();
                async move {
                    let read = store.get(&keys[task as usize]).await.expect("get");
                    assert!(read.is_some());
                }
            }))
        });
    });
    group.finish();

    let mut group = c.benchmark_group("redis_put");
    group
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    group.bench_function("baseline_raw_set", |b| {
        b.iter_custom(|iters| {
            let raw = raw.clone();
            let records = records.clone();
            let raw_keys = raw_keys.clone();
            runtime.block_on(concurrently(iters, move |task| {
                let mut conn = raw.clone();
                let records = records.clone();
                let raw_keys = raw_keys.clone();
                async move {
                    redis::cmd("SET")
                        .arg(&raw_keys[task as usize])
                        .arg(&records[task as usize])
                        .query_async::<()>(&mut conn)
                        .await
                        .expect("SET");
                }
            }))
        });
    });
    group.bench_function("put", |b| {
        b.iter_custom(|iters| {
            let store = store.clone();
            let keys = keys.clone();
            let sets = sets.clone();
            runtime.block_on(concurrently(iters, move |task| {
                let store = store.clone();
                let keys = keys.clone();
                let sets = sets.clone();
                async move {
                    store
                        .put(
                            &keys[task as usize],
                            &sets[task as usize],
                            Precondition::Any,
                        )
                        .await
                        .expect("put");
                }
            }))
        });
    });
    group.finish();
    drop(store);
    drop(redis);
}

mod harness {
    #![allow(missing_docs)] // criterion_group! generates an undocumented `pub fn`.
    criterion::criterion_group!(benches, super::throughput);
}
criterion_main!(harness::benches);
