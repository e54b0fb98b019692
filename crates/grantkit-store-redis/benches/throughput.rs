//! Throughput of `get` and `put` at 64 concurrent tasks against raw commands on the same
//! server, in the same run, on a standalone server and on a 3-master cluster.
//!
//! Groups (read by `cargo xtask bench` as time ratios subject / baseline), for each
//! topology `T` (`redis` and `redis_cluster`):
//! - `T_get`: `baseline_raw_get` (a `GET` of a record of the same size) vs `get`;
//! - `T_put`: `baseline_raw_set` (a `SET` of it) vs `put` (compare-and-swap, precondition
//!   `Any`);
//! - `T_put_cas_floor`: `baseline_raw_lua_cas` (the least a compare-and-swap script can
//!   do: `GET`, compare, `SET`, run raw with `EVALSHA`) vs `put`.
//!
//! Both sides use one multiplexed, reconnecting connection, and each of the 64 tasks works
//! on its own key. The servers are started by the `testing` harness.

use criterion::{Criterion, criterion_main};
use grantkit_core::store::codec::encode_token_set;
use grantkit_core::{
    AccessToken, GrantKind, RefreshToken, TokenKey, TokenSet, TokenStore, store::Precondition,
};
use grantkit_store_redis::testing::TestRedis;
use redis::aio::{ConnectionLike, ConnectionManager};
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

/// The least a compare-and-swap can do on the server: read, compare, write.
const MINIMAL_CAS: &str = r#"
local current = redis.call('GET', KEYS[1])
if current and ARGV[1] ~= 'any' and string.sub(current, 1, #ARGV[1]) ~= ARGV[1] then
  return 0
end
redis.call('SET', KEYS[1], ARGV[2])
return 1
"#;

fn throughput(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a tokio runtime");
    let standalone = TestRedis::start_standalone().unwrap_or_else(|e| panic!("{e}"));
    let url = standalone.topology().urls()[0].clone();
    let raw = runtime.block_on(async {
        ConnectionManager::new(redis::Client::open(url).expect("a client"))
            .await
            .expect("the raw connection")
    });
    topology(c, &runtime, "redis", &standalone, raw);
    drop(standalone);

    let cluster = TestRedis::start_cluster().unwrap_or_else(|e| panic!("{e}"));
    let urls = cluster.topology().urls().to_vec();
    let raw = runtime.block_on(async {
        redis::cluster::ClusterClient::new(urls)
            .expect("a cluster client")
            .get_async_connection()
            .await
            .expect("the raw cluster connection")
    });
    topology(c, &runtime, "redis_cluster", &cluster, raw);
}

/// The groups of one topology; `raw` is the baseline's own connection to the same servers.
fn topology<C>(
    c: &mut Criterion,
    runtime: &tokio::runtime::Runtime,
    name: &str,
    redis: &TestRedis,
    raw: C,
) where
    C: ConnectionLike + Clone + Send + Sync + 'static,
{
    let store =
        runtime.block_on(async { Arc::new(redis.store().await.expect("the store connects")) });
    // Everything a caller would already hold is built once, outside the measurement.
    let keys: Arc<Vec<TokenKey>> = Arc::new((0..TASKS).map(key).collect());
    let sets: Arc<Vec<TokenSet>> = Arc::new((0..TASKS).map(tokens).collect());
    let raw_keys: Arc<Vec<String>> = Arc::new(
        (0..TASKS)
            .map(|task| format!("{}raw:{{{task}}}", store.key_prefix()))
            .collect(),
    );
    let records: Arc<Vec<Vec<u8>>> = Arc::new(sets.iter().map(encode_token_set).collect());
    let cas = Arc::new(redis::Script::new(MINIMAL_CAS));
    runtime.block_on(async {
        let mut conn = raw.clone();
        cas.load_async(&mut conn)
            .await
            .expect("loading the CAS script");
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
    let get = {
        let (store, keys) = (store.clone(), keys.clone());
        move |iters| {
            let (store, keys) = (store.clone(), keys.clone());
            concurrently(iters, move |task| {
                let (store, keys) = (store.clone(), keys.clone());
                async move {
                    let read = store.get(&keys[task as usize]).await.expect("get");
                    assert!(read.is_some());
                }
            })
        }
    };
    let put = {
        let (store, keys, sets) = (store.clone(), keys.clone(), sets.clone());
        move |iters| {
            let (store, keys, sets) = (store.clone(), keys.clone(), sets.clone());
            concurrently(iters, move |task| {
                let (store, keys, sets) = (store.clone(), keys.clone(), sets.clone());
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
            })
        }
    };

    let mut group = c.benchmark_group(format!("{name}_get"));
    configure(&mut group);
    group.bench_function("baseline_raw_get", |b| {
        b.iter_custom(|iters| {
            let (raw, raw_keys) = (raw.clone(), raw_keys.clone());
            runtime.block_on(concurrently(iters, move |task| {
                let (mut conn, raw_keys) = (raw.clone(), raw_keys.clone());
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
        b.iter_custom(|iters| runtime.block_on(get(iters)))
    });
    group.finish();

    let mut group = c.benchmark_group(format!("{name}_put"));
    configure(&mut group);
    group.bench_function("baseline_raw_set", |b| {
        b.iter_custom(|iters| {
            let (raw, records, raw_keys) = (raw.clone(), records.clone(), raw_keys.clone());
            runtime.block_on(concurrently(iters, move |task| {
                let (mut conn, records, raw_keys) =
                    (raw.clone(), records.clone(), raw_keys.clone());
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
        b.iter_custom(|iters| runtime.block_on(put(iters)))
    });
    group.finish();

    let mut group = c.benchmark_group(format!("{name}_put_cas_floor"));
    configure(&mut group);
    group.bench_function("baseline_raw_lua_cas", |b| {
        b.iter_custom(|iters| {
            let (raw, records, raw_keys, cas) =
                (raw.clone(), records.clone(), raw_keys.clone(), cas.clone());
            runtime.block_on(concurrently(iters, move |task| {
                let (mut conn, records, raw_keys, cas) =
                    (raw.clone(), records.clone(), raw_keys.clone(), cas.clone());
                async move {
                    let mut call = redis::cmd("EVALSHA");
                    call.arg(cas.get_hash())
                        .arg(1)
                        .arg(&raw_keys[task as usize])
                        .arg("any")
                        .arg(&records[task as usize]);
                    let written: i64 = call.query_async(&mut conn).await.expect("EVALSHA");
                    assert_eq!(written, 1);
                }
            }))
        });
    });
    group.bench_function("put", |b| {
        b.iter_custom(|iters| runtime.block_on(put(iters)))
    });
    group.finish();
}

fn configure(group: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>) {
    group
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
}

mod harness {
    #![allow(missing_docs)] // criterion_group! generates an undocumented `pub fn`.
    criterion::criterion_group!(benches, super::throughput);
}
criterion_main!(harness::benches);
