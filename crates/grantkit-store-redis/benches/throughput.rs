//! Throughput of `get` and `put` at 64 concurrent tasks against raw commands on the same
//! server, in the same run, on a standalone server and on a 3-master cluster.
//!
//! Groups (read by `cargo xtask bench` as time ratios subject / baseline), for each
//! topology `T` (`redis` and `redis_cluster`):
//! - `T_get`: `baseline_raw_get` (a `GET` of the store's own record, on a connection with
//!   the store's timeouts) vs `get`;
//! - `T_get_vs_connection_without_timeouts`: `baseline_raw_get_without_timeouts` (the same
//!   `GET` on a connection that never times out, the client library's floor) vs `get`;
//! - `T_put`: `baseline_raw_set` (a `SET` of a record of the store's) vs `put` (replacing
//!   the version it read, as a refresh does);
//! - `T_put_cas_floor`: `baseline_raw_lua_cas` (the least a compare-and-swap script can
//!   do: `GET`, compare the version at the front of the value, `SET` the value with the
//!   next version, run raw with `EVALSHA`) vs `put` and `put_any` (precondition `Any`: the
//!   script decides the version).
//!
//! - `T_get_paired`, `T_get_paired_vs_connection_without_timeouts`, `T_put_paired`,
//!   `T_put_cas_floor_paired`: `get` and `put` against the same baselines measured in
//!   alternating rounds rather than one after the other (see `paired`), written as figures
//!   in ns for `cargo xtask bench`: on a shared machine, the figures to read targets from.
//!
//! - `T_get_many_1000_vs_sequential_gets`: `baseline_raw_gets_x1000_one_after_another` vs
//!   `get_many_1000` (1,000 grants in one call);
//! - `T_get_many_1000_vs_raw_pipeline`: `baseline_raw_pipeline_1000` (standalone: one
//!   pipeline of the same 1,000 `GET`s; cluster: the 1,000 `GET`s sent at once, which the
//!   cluster connection pipelines per node) vs `get_many_1000`.
//!
//! And on the standalone server, `redis_warm_100000_grants`:
//! `baseline_access_token_one_by_one` (a new manager's first `access_token` of each of
//! 100,000 grants, one after another) vs `warm` (a new manager's `warm` of the same keys).
//!
//! Both sides use one multiplexed, reconnecting connection with the same timeouts: a
//! response timeout on each command and, on the cluster, the client's overall timeout across
//! redirects and reconnects; any bound the store adds beyond its connection's is charged to
//! the store. Each of the 64 tasks works on its own key. The servers are started by the
//! `testing` harness. The paired groups run under `cargo bench` (not `cargo test
//! --benches`), when there is no filter or the group's name contains it.

use criterion::{Criterion, criterion_main};
use futures::StreamExt as _;
use grantkit_core::provider::{AuthorizationRequest, Capabilities, Grant};
use grantkit_core::{
    AccessToken, GrantKind, Provider, RefreshToken, Revocation, TokenKey, TokenManager, TokenSet,
    TokenStore,
    store::{Precondition, Version},
};
use grantkit_store_redis::RedisTokenStore;
use grantkit_store_redis::testing::TestRedis;
use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use redis::cluster::ClusterClientBuilder;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime};

const TASKS: u64 = 64;

/// The store's timeouts, given to the store and to the baselines' connections alike.
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(2);
const OPERATION_TIMEOUT: Duration = Duration::from_secs(5);

async fn store_on(redis: &TestRedis) -> RedisTokenStore {
    redis
        .store_builder()
        .response_timeout(RESPONSE_TIMEOUT)
        .operation_timeout(OPERATION_TIMEOUT)
        .build()
        .await
        .expect("the store connects")
}

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

/// The least a compare-and-swap can do on the server: read, compare the version the value
/// starts with, write. ARGV: the expected start (`<version>|`), the new value.
const MINIMAL_CAS: &str = r#"
local current = redis.call('GET', KEYS[1])
if not current or string.sub(current, 1, #ARGV[1]) ~= ARGV[1] then
  return 0
end
redis.call('SET', KEYS[1], ARGV[2])
return 1
"#;

/// The value the raw CAS keeps: its version, `|`, the record.
fn versioned_value(version: u64, record: &[u8]) -> Vec<u8> {
    let mut value = format!("{version}|").into_bytes();
    value.extend_from_slice(record);
    value
}

fn throughput(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a tokio runtime");
    let standalone = TestRedis::start_standalone().unwrap_or_else(|e| panic!("{e}"));
    let url = standalone.topology().urls()[0].clone();
    let standalone_connection = |response_timeout| {
        let client = redis::Client::open(url.as_str()).expect("a client");
        let config = ConnectionManagerConfig::new().set_response_timeout(response_timeout);
        runtime
            .block_on(ConnectionManager::new_with_config(client, config))
            .expect("the raw connection")
    };
    let raw = standalone_connection(Some(RESPONSE_TIMEOUT));
    let bare = standalone_connection(None);
    topology(c, &runtime, "redis", &standalone, raw.clone(), bare);
    bulk(c, &runtime, "redis", &standalone, raw, |raw, keys| {
        Box::pin(async move {
            let mut pipeline = redis::pipe();
            for key in keys.iter() {
                pipeline.cmd("GET").arg(key);
            }
            let mut conn = raw;
            let found: Vec<Option<Vec<u8>>> =
                pipeline.query_async(&mut conn).await.expect("a pipeline");
            found.len()
        })
    });
    warm_up(c, &runtime, &standalone);
    drop(standalone);

    let cluster = TestRedis::start_cluster().unwrap_or_else(|e| panic!("{e}"));
    let urls = cluster.topology().urls().to_vec();
    let cluster_connection = |timeouts: bool| {
        let builder = ClusterClientBuilder::new(urls.clone());
        let builder = if timeouts {
            builder
                .response_timeout(RESPONSE_TIMEOUT)
                .overall_response_timeout(Some(OPERATION_TIMEOUT))
        } else {
            builder
        };
        let client = builder.build().expect("a cluster client");
        runtime
            .block_on(client.get_async_connection())
            .expect("the raw cluster connection")
    };
    let raw = cluster_connection(true);
    let bare = cluster_connection(false);
    topology(c, &runtime, "redis_cluster", &cluster, raw.clone(), bare);
    bulk(c, &runtime, "redis_cluster", &cluster, raw, |raw, keys| {
        Box::pin(async move {
            let gets = keys.iter().map(|key| {
                let mut conn = raw.clone();
                async move {
                    let found: Option<Vec<u8>> = redis::cmd("GET")
                        .arg(key)
                        .query_async(&mut conn)
                        .await
                        .expect("GET");
                    found
                }
            });
            futures::future::join_all(gets).await.len()
        })
    });
}

/// The raw side of `T_get_many_1000_vs_raw_pipeline`: reads `keys` at once, returns how
/// many answers came back.
type RawBatch<C> = fn(C, Arc<Vec<String>>) -> std::pin::Pin<Box<dyn Future<Output = usize> + Send>>;

const BULK: u64 = 1000;

/// `get_many` of 1,000 grants against the same reads made raw.
fn bulk<C>(
    c: &mut Criterion,
    runtime: &tokio::runtime::Runtime,
    name: &str,
    redis: &TestRedis,
    raw: C,
    raw_batch: RawBatch<C>,
) where
    C: ConnectionLike + Clone + Send + Sync + 'static,
{
    let store = runtime.block_on(async { Arc::new(store_on(redis).await) });
    let keys: Arc<Vec<TokenKey>> = Arc::new((0..BULK).map(key).collect());
    // The raw reads read the store's own records.
    let raw_keys: Arc<Vec<String>> =
        Arc::new(keys.iter().map(|key| store.record_key(key)).collect());
    runtime.block_on(async {
        for (i, key) in keys.iter().enumerate() {
            store
                .put(key, &tokens(i as u64), Precondition::Any)
                .await
                .expect("seeding the store");
        }
    });
    let get_many = |b: &mut criterion::Bencher<'_>| {
        b.iter(|| {
            let answers = runtime.block_on(store.get_many(&keys)).expect("get_many");
            assert!(answers.iter().all(|a| matches!(a, Ok(Some(_)))));
        })
    };

    let mut group = c.benchmark_group(format!("{name}_get_many_1000_vs_sequential_gets"));
    configure(&mut group);
    group.bench_function("baseline_raw_gets_x1000_one_after_another", |b| {
        b.iter(|| {
            runtime.block_on(async {
                let mut conn = raw.clone();
                for key in raw_keys.iter() {
                    let found: Option<Vec<u8>> = redis::cmd("GET")
                        .arg(key)
                        .query_async(&mut conn)
                        .await
                        .expect("GET");
                    assert!(found.is_some());
                }
            })
        })
    });
    group.bench_function("get_many_1000", get_many);
    group.finish();

    let mut group = c.benchmark_group(format!("{name}_get_many_1000_vs_raw_pipeline"));
    configure(&mut group);
    group.bench_function("baseline_raw_pipeline_1000", |b| {
        b.iter(|| {
            let answered = runtime.block_on(raw_batch(raw.clone(), raw_keys.clone()));
            assert_eq!(answered as u64, BULK);
        })
    });
    group.bench_function("get_many_1000", get_many);
    group.finish();
}

const WARM_GRANTS: u64 = 100_000;

/// A provider for a manager that only ever serves fresh tokens: nothing leaves the process.
#[derive(Debug)]
struct Inert(Capabilities);

#[async_trait::async_trait]
impl Provider for Inert {
    fn id(&self) -> &str {
        "joinme"
    }
    fn client_id(&self) -> &str {
        "bench-client"
    }
    fn capabilities(&self) -> &Capabilities {
        &self.0
    }
    fn request_timeout(&self) -> Duration {
        Duration::from_secs(5)
    }
    async fn authorization_url(&self, _: &AuthorizationRequest) -> grantkit_core::Result<url::Url> {
        Err(grantkit_core::Error::unsupported(
            "the benchmark starts no flow",
        ))
    }
    async fn exchange(&self, _: Grant) -> grantkit_core::Result<TokenSet> {
        Err(grantkit_core::Error::unsupported(
            "the benchmark starts no flow",
        ))
    }
    async fn refresh(&self, _: &TokenSet) -> grantkit_core::Result<TokenSet> {
        Err(grantkit_core::Error::unsupported(
            "the benchmark's tokens are fresh",
        ))
    }
    async fn identify(&self, _: &TokenSet) -> grantkit_core::Result<String> {
        Err(grantkit_core::Error::unsupported(
            "the benchmark signs no one in",
        ))
    }
    async fn revoke(&self, _: &TokenSet) -> grantkit_core::Result<Revocation> {
        Ok(Revocation::NotSupported)
    }
}

/// A new manager's warm-up of 100,000 grants against their first access one by one.
fn warm_up(c: &mut Criterion, runtime: &tokio::runtime::Runtime, redis: &TestRedis) {
    let store: Arc<dyn TokenStore> =
        runtime.block_on(async { Arc::new(redis.store().await.expect("the store connects")) });
    let keys: Arc<Vec<TokenKey>> = Arc::new((0..WARM_GRANTS).map(key).collect());
    runtime.block_on(futures::stream::iter(0..WARM_GRANTS).for_each_concurrent(
        TASKS as usize,
        |i| {
            let (store, keys) = (store.clone(), keys.clone());
            async move {
                store
                    .put(&keys[i as usize], &tokens(i), Precondition::Any)
                    .await
                    .expect("seeding the store");
            }
        },
    ));
    let provider: Arc<dyn Provider> = Arc::new(Inert(Capabilities::default()));
    let manager = || {
        TokenManager::builder(provider.clone(), store.clone())
            .build()
            .expect("a manager")
    };

    let mut group = c.benchmark_group("redis_warm_100000_grants");
    group
        .sample_size(10)
        .warm_up_time(Duration::from_millis(1))
        .measurement_time(Duration::from_secs(1));
    group.bench_function("baseline_access_token_one_by_one", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let manager = manager();
                let started = Instant::now();
                runtime.block_on(async {
                    for key in keys.iter() {
                        manager.access_token(key).await.expect("a fresh token");
                    }
                });
                total += started.elapsed();
            }
            total
        })
    });
    group.bench_function("warm", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let manager = manager();
                let started = Instant::now();
                let loaded = runtime.block_on(manager.warm(&keys)).expect("warm");
                total += started.elapsed();
                assert_eq!(loaded as u64, WARM_GRANTS);
            }
            total
        })
    });
    group.finish();
}

/// The groups of one topology; `raw` is the baselines' own connection to the same servers,
/// with the store's timeouts, and `bare` one without any.
fn topology<C>(
    c: &mut Criterion,
    runtime: &tokio::runtime::Runtime,
    name: &str,
    redis: &TestRedis,
    raw: C,
    bare: C,
) where
    C: ConnectionLike + Clone + Send + Sync + 'static,
{
    let store = Arc::new(runtime.block_on(store_on(redis)));
    // Everything a caller would already hold is built once, outside the measurement.
    let keys: Arc<Vec<TokenKey>> = Arc::new((0..TASKS).map(key).collect());
    let sets: Arc<Vec<TokenSet>> = Arc::new((0..TASKS).map(tokens).collect());
    let raw_keys: Arc<Vec<String>> = Arc::new(
        (0..TASKS)
            .map(|task| format!("{}raw:{{{task}}}", store.key_prefix()))
            .collect(),
    );
    // A `GET` reads the store's own record of the task's grant.
    let record_keys: Arc<Vec<String>> =
        Arc::new(keys.iter().map(|key| store.record_key(key)).collect());
    let cas_keys: Arc<Vec<String>> =
        Arc::new(raw_keys.iter().map(|k| format!("{k}-cas")).collect());
    let cas = Arc::new(redis::Script::new(MINIMAL_CAS));
    // The version each task's key holds, in the store and in the raw CAS's value.
    let versions: Arc<Vec<AtomicU64>> = Arc::new((0..TASKS).map(|_| AtomicU64::new(0)).collect());
    let raw_versions: Arc<Vec<AtomicU64>> =
        Arc::new((0..TASKS).map(|_| AtomicU64::new(1)).collect());
    let records: Arc<Vec<Vec<u8>>> = Arc::new(runtime.block_on(async {
        let mut conn = raw.clone();
        cas.load_async(&mut conn)
            .await
            .expect("loading the CAS script");
        let mut records = Vec::new();
        for task in 0..TASKS {
            let version = store
                .put(
                    &keys[task as usize],
                    &sets[task as usize],
                    Precondition::Any,
                )
                .await
                .expect("seeding the store");
            versions[task as usize].store(version.as_u64(), Ordering::Relaxed);
            // The raw writes write what the store wrote.
            let record: Vec<u8> = redis::cmd("GET")
                .arg(&record_keys[task as usize])
                .query_async(&mut conn)
                .await
                .expect("reading the store's record");
            redis::cmd("SET")
                .arg(&raw_keys[task as usize])
                .arg(&record)
                .query_async::<()>(&mut conn)
                .await
                .expect("seeding the raw keys");
            redis::cmd("SET")
                .arg(&cas_keys[task as usize])
                .arg(versioned_value(1, &record))
                .query_async::<()>(&mut conn)
                .await
                .expect("seeding the raw CAS keys");
            records.push(record);
        }
        records
    }));
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
    // `put` replaces the version the task wrote last, as a refresh replaces the one it read;
    // `put_any` writes whatever is stored (the script decides the version).
    let put_with = |replace: bool| {
        let (store, keys, sets, versions) =
            (store.clone(), keys.clone(), sets.clone(), versions.clone());
        move |iters| {
            let (store, keys, sets, versions) =
                (store.clone(), keys.clone(), sets.clone(), versions.clone());
            concurrently(iters, move |task| {
                let (store, keys, sets, versions) =
                    (store.clone(), keys.clone(), sets.clone(), versions.clone());
                async move {
                    let at = &versions[task as usize];
                    let precondition = if replace {
                        Precondition::Version(Version::from_u64(at.load(Ordering::Relaxed)))
                    } else {
                        Precondition::Any
                    };
                    let written = store
                        .put(&keys[task as usize], &sets[task as usize], precondition)
                        .await
                        .expect("put");
                    at.store(written.as_u64(), Ordering::Relaxed);
                }
            })
        }
    };
    let put = put_with(true);
    let put_any = put_with(false);

    let raw_get = |conn: C| {
        let record_keys = record_keys.clone();
        move |iters| {
            let (conn, record_keys) = (conn.clone(), record_keys.clone());
            concurrently(iters, move |task| {
                let (mut conn, record_keys) = (conn.clone(), record_keys.clone());
                async move {
                    let bytes: Option<Vec<u8>> = redis::cmd("GET")
                        .arg(&record_keys[task as usize])
                        .query_async(&mut conn)
                        .await
                        .expect("GET");
                    assert!(bytes.is_some());
                }
            })
        }
    };
    for (group_name, baseline, conn) in [
        (format!("{name}_get"), "baseline_raw_get", raw.clone()),
        (
            format!("{name}_get_vs_connection_without_timeouts"),
            "baseline_raw_get_without_timeouts",
            bare.clone(),
        ),
    ] {
        let mut group = c.benchmark_group(group_name);
        configure(&mut group);
        let baseline_get = raw_get(conn);
        group.bench_function(baseline, |b| {
            b.iter_custom(|iters| runtime.block_on(baseline_get(iters)))
        });
        group.bench_function("get", |b| {
            b.iter_custom(|iters| runtime.block_on(get(iters)))
        });
        group.finish();
    }

    let raw_set = {
        let (raw, records, raw_keys) = (raw.clone(), records.clone(), raw_keys.clone());
        move |iters| {
            let (raw, records, raw_keys) = (raw.clone(), records.clone(), raw_keys.clone());
            concurrently(iters, move |task| {
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
            })
        }
    };
    let raw_cas = {
        let raw = raw.clone();
        move |iters| {
            let (raw, records, cas_keys, cas, raw_versions) = (
                raw.clone(),
                records.clone(),
                cas_keys.clone(),
                cas.clone(),
                raw_versions.clone(),
            );
            concurrently(iters, move |task| {
                let (mut conn, records, cas_keys, cas, raw_versions) = (
                    raw.clone(),
                    records.clone(),
                    cas_keys.clone(),
                    cas.clone(),
                    raw_versions.clone(),
                );
                async move {
                    let at = &raw_versions[task as usize];
                    let version = at.load(Ordering::Relaxed);
                    let mut call = redis::cmd("EVALSHA");
                    call.arg(cas.get_hash())
                        .arg(1)
                        .arg(&cas_keys[task as usize])
                        .arg(format!("{version}|"))
                        .arg(versioned_value(version + 1, &records[task as usize]));
                    let written: i64 = call.query_async(&mut conn).await.expect("EVALSHA");
                    assert_eq!(written, 1);
                    at.store(version + 1, Ordering::Relaxed);
                }
            })
        }
    };

    let mut group = c.benchmark_group(format!("{name}_put"));
    configure(&mut group);
    group.bench_function("baseline_raw_set", |b| {
        b.iter_custom(|iters| runtime.block_on(raw_set(iters)))
    });
    group.bench_function("put", |b| {
        b.iter_custom(|iters| runtime.block_on(put(iters)))
    });
    group.finish();

    let mut group = c.benchmark_group(format!("{name}_put_cas_floor"));
    configure(&mut group);
    group.bench_function("baseline_raw_lua_cas", |b| {
        b.iter_custom(|iters| runtime.block_on(raw_cas(iters)))
    });
    group.bench_function("put", |b| {
        b.iter_custom(|iters| runtime.block_on(put(iters)))
    });
    group.bench_function("put_any", |b| {
        b.iter_custom(|iters| runtime.block_on(put_any(iters)))
    });
    group.finish();

    // The same comparisons measured in pairs (see `paired`): the figures the targets are
    // read from on a shared machine.
    let pair = |group: &str, baseline: &str, subject: &str| {
        (
            format!("{name}_{group}"),
            baseline.to_owned(),
            subject.to_owned(),
        )
    };
    let timed_get = raw_get(raw.clone());
    let untimed_get = raw_get(bare);
    paired(
        runtime,
        pair("get_paired", "baseline_raw_get", "get"),
        &timed_get,
        &get,
    );
    paired(
        runtime,
        pair(
            "get_paired_vs_connection_without_timeouts",
            "baseline_raw_get_without_timeouts",
            "get",
        ),
        &untimed_get,
        &get,
    );
    paired(
        runtime,
        pair("put_paired", "baseline_raw_set", "put"),
        &raw_set,
        &put,
    );
    paired(
        runtime,
        pair("put_cas_floor_paired", "baseline_raw_lua_cas", "put"),
        &raw_cas,
        &put,
    );
}

/// Rounds of a paired measurement (after one unmeasured round), and operations per side in
/// each round.
const PAIRED_ROUNDS: usize = 32;
const PAIRED_OPS: u64 = 6_400;

/// A paired measurement of `subject` against `baseline`, each a function of a number of
/// operations returning their wall time: the two alternate in rounds, each round in the
/// other order than the last, so a slow second of a shared machine slows both sides rather
/// than one (criterion measures one side for seconds, then the other). Each side's figure is
/// its median time per operation over the rounds, written where `cargo xtask bench` reads
/// figures (`<target>/grantkit-bench/<group>/<id>.json`, in ns).
fn paired<B, BF, S, SF>(
    runtime: &tokio::runtime::Runtime,
    (group, baseline_id, subject_id): (String, String, String),
    baseline: &B,
    subject: &S,
) where
    B: Fn(u64) -> BF,
    BF: Future<Output = Duration>,
    S: Fn(u64) -> SF,
    SF: Future<Output = Duration>,
{
    if !selected(&group) {
        return;
    }
    let per_op = |elapsed: Duration| elapsed.as_nanos() as f64 / PAIRED_OPS as f64;
    runtime.block_on(baseline(PAIRED_OPS));
    runtime.block_on(subject(PAIRED_OPS));
    let (mut baseline_ns, mut subject_ns) = (Vec::new(), Vec::new());
    for round in 0..PAIRED_ROUNDS {
        if round.is_multiple_of(2) {
            baseline_ns.push(per_op(runtime.block_on(baseline(PAIRED_OPS))));
            subject_ns.push(per_op(runtime.block_on(subject(PAIRED_OPS))));
        } else {
            subject_ns.push(per_op(runtime.block_on(subject(PAIRED_OPS))));
            baseline_ns.push(per_op(runtime.block_on(baseline(PAIRED_OPS))));
        }
    }
    let (baseline_ns, subject_ns) = (median(baseline_ns), median(subject_ns));
    write_figure(&group, &baseline_id, baseline_ns);
    write_figure(&group, &subject_id, subject_ns);
    println!(
        "{group}: {subject_id} {subject_ns:.0} ns vs {baseline_id} {baseline_ns:.0} ns per operation = {:.2}x (median of {PAIRED_ROUNDS} alternating rounds)",
        subject_ns / baseline_ns
    );
}

/// Whether this process measures (`cargo bench` passes `--bench`, `cargo test --benches` and
/// `--list` do not measure) and its filter, if any, is part of `group`'s name.
fn selected(group: &str) -> bool {
    // Criterion's options that take a value; the first other bare word is the filter.
    const WITH_VALUE: [&str; 16] = [
        "--warm-up-time",
        "--measurement-time",
        "--sample-size",
        "--save-baseline",
        "--baseline",
        "--baseline-lenient",
        "--load-baseline",
        "--profile-time",
        "--noise-threshold",
        "--confidence-level",
        "--significance-level",
        "--nresamples",
        "--output-format",
        "--color",
        "--plotting-backend",
        "--format",
    ];
    let args: Vec<String> = std::env::args().skip(1).collect();
    if !args.iter().any(|a| a == "--bench") || args.iter().any(|a| a == "--list") {
        return false;
    }
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        if WITH_VALUE.contains(&arg.as_str()) {
            args.next();
        } else if !arg.starts_with('-') {
            return group.contains(arg.as_str());
        }
    }
    true
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    let middle = values.len() / 2;
    if values.len().is_multiple_of(2) {
        (values[middle - 1] + values[middle]) / 2.0
    } else {
        values[middle]
    }
}

/// Writes one figure of a paired measurement for `cargo xtask bench`.
fn write_figure(group: &str, id: &str, ns: f64) {
    // The bench binary is `<target>/<profile>/deps/<name>`.
    let exe = std::env::current_exe().expect("the bench's own path");
    let target = exe.ancestors().nth(3).expect("the target directory");
    let dir = target.join("grantkit-bench").join(group);
    std::fs::create_dir_all(&dir).expect("the figures directory");
    let figure = format!("{{\"value\": {ns:.1}, \"unit\": \"ns\"}}\n");
    std::fs::write(dir.join(format!("{id}.json")), figure).expect("writing a figure");
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
