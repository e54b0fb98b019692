//! TokenManager's hot path and its refresh stampede, each against a baseline measured in
//! the same run (read by `cargo xtask bench`).
#![allow(missing_docs)] // criterion_group! generates an undocumented public function

mod support;

use criterion::{Criterion, criterion_group, criterion_main};
use grantkit_core::{
    MemoryTokenStore, Provider as _, TokenKey, TokenManager, TokenStore as _, store::Precondition,
};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};
use support::{provider, token_set};

fn key() -> TokenKey {
    TokenKey::new("bench", "client", "account@example.com")
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a runtime")
}

/// `access_token` on a fresh, cached token vs an async read of a
/// `RwLock<HashMap<TokenKey, Arc<TokenSet>>>` plus the `Arc` clone.
fn access_token_fresh(c: &mut Criterion) {
    let rt = runtime();
    let key = key();
    let tokens = token_set("fresh", SystemTime::now() + Duration::from_secs(3600));
    let store = Arc::new(MemoryTokenStore::new());
    rt.block_on(store.put(&key, &tokens, Precondition::Any))
        .expect("seed");
    let manager = TokenManager::builder(provider(), store)
        .build()
        .expect("manager");
    rt.block_on(manager.access_token(&key))
        .expect("warm the cache");

    let map = tokio::sync::RwLock::new(HashMap::from([(key.clone(), Arc::new(tokens))]));

    let mut group = c.benchmark_group("access_token_fresh");
    group.bench_function("baseline_rwlock_hashmap_arc_clone", |b| {
        b.to_async(&rt)
            .iter(|| async { map.read().await.get(&key).cloned() })
    });
    group.bench_function("access_token", |b| {
        b.to_async(&rt)
            .iter(|| async { manager.access_token(&key).await.expect("fresh") })
    });
    group.finish();
}

/// 10,000 concurrent callers on an expired token (one shared refresh) vs the time of the
/// one refresh call itself.
fn stampede(c: &mut Criterion) {
    let rt = runtime();
    let provider = provider();
    let mut group = c.benchmark_group("stampede_10000_callers");
    group.sample_size(10);
    group.bench_function("baseline_one_refresh_call", |b| {
        b.to_async(&rt).iter(|| {
            let provider = provider.clone();
            async move {
                provider
                    .refresh(&token_set("old", SystemTime::now()))
                    .await
                    .expect("refresh")
            }
        })
    });
    group.bench_function("access_token_x10000", |b| {
        b.iter_custom(|iterations| {
            let mut total = Duration::ZERO;
            for _ in 0..iterations {
                let store = Arc::new(MemoryTokenStore::new());
                rt.block_on(store.put(
                    &key(),
                    &token_set("old", SystemTime::now()),
                    Precondition::Any,
                ))
                .expect("seed");
                let manager = TokenManager::builder(provider.clone(), store)
                    .build()
                    .expect("manager");
                let started = Instant::now();
                rt.block_on(async {
                    let callers: Vec<_> = (0..10_000)
                        .map(|_| {
                            let manager = manager.clone();
                            tokio::spawn(async move { manager.access_token(&key()).await })
                        })
                        .collect();
                    for caller in callers {
                        caller.await.expect("task").expect("token");
                    }
                });
                total += started.elapsed();
            }
            total
        })
    });
    group.finish();
}

criterion_group!(benches, access_token_fresh, stampede);
criterion_main!(benches);
