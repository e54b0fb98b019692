//! Bytes the manager keeps per cached grant, counted by the allocator, against the bytes of
//! the grant's key and token set alone (what any cache of grants must keep), both measured
//! in the same run.
//!
//! Writes, for `cargo xtask bench`, group `manager_bytes_per_cached_grant`:
//! `baseline_key_and_token_set` vs `warm` (100,000 grants loaded by
//! [`TokenManager::warm`]) and `access_token_one_by_one` (the same grants, each loaded by
//! its first `access_token`). The figures are requested bytes (what the program asks the
//! allocator for), so they do not depend on the allocator in use.
#![allow(missing_docs)]

mod support;

use grantkit_core::{
    AccessToken, GrantKind, MemoryTokenStore, RefreshToken, TokenKey, TokenManager, TokenSet,
    TokenStore as _, store::Precondition,
};
use stats_alloc::{INSTRUMENTED_SYSTEM, StatsAlloc};
use std::alloc::System;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

/// The system allocator, counting what is allocated and freed.
#[global_allocator]
static ALLOCATOR: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

/// Bytes live now, as far as this program asked for them.
fn live() -> isize {
    let stats = ALLOCATOR.stats();
    // A reallocation is already counted in these two (growth in one, shrinking in the other).
    signed(stats.bytes_allocated) - signed(stats.bytes_deallocated)
}

fn signed(bytes: usize) -> isize {
    isize::try_from(bytes).unwrap_or(isize::MAX)
}

const GRANTS: usize = 100_000;
const GROUP: &str = "manager_bytes_per_cached_grant";

/// A realistic grant: 40-character tokens, an expiry, two scopes and one extra.
fn grant(i: usize) -> (TokenKey, TokenSet) {
    let key = TokenKey::new("joinme", "bench-client", format!("user-{i}@example.com"));
    let tokens = TokenSet::new(
        AccessToken::new(format!("{i:08}-access-0123456789abcdefghijklmnopq")),
        GrantKind::AuthorizationCode,
    )
    .with_refresh_token(RefreshToken::new(format!(
        "{i:08}-refresh-0123456789abcdefghijklmnop"
    )))
    .with_scopes(["user_info", "scheduler"])
    .with_extra("email", format!("user-{i}@example.com"))
    .expiring_in(SystemTime::now(), Duration::from_secs(3600));
    (key, tokens)
}

/// Bytes live after `build` minus before, per grant; what `build` returns is kept alive
/// across the second reading.
fn per_grant<T>(build: impl FnOnce() -> T) -> (f64, T) {
    let before = live();
    let kept = build();
    let after = live();
    ((after - before) as f64 / GRANTS as f64, kept)
}

fn write_figure(id: &str, bytes: f64) {
    // The bench binary is `<target>/<profile>/deps/<name>`.
    let exe = std::env::current_exe().expect("the bench's own path");
    let target: PathBuf = exe
        .ancestors()
        .nth(3)
        .expect("the target directory")
        .to_path_buf();
    let dir = target.join("grantkit-bench").join(GROUP);
    std::fs::create_dir_all(&dir).expect("the figures directory");
    let figure = format!("{{\"value\": {bytes:.1}, \"unit\": \"B\"}}\n");
    std::fs::write(dir.join(format!("{id}.json")), figure).expect("writing a figure");
    println!("{GROUP}/{id}: {bytes:.1} bytes per grant");
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a runtime");
    let store = Arc::new(MemoryTokenStore::new());
    let keys: Vec<TokenKey> = runtime.block_on(async {
        let mut keys = Vec::with_capacity(GRANTS);
        for i in 0..GRANTS {
            let (key, tokens) = grant(i);
            store
                .put(&key, &tokens, Precondition::Absent)
                .await
                .expect("seeding the store");
            keys.push(key);
        }
        keys
    });

    // What any cache must keep: a key and its token set behind an `Arc`, in a map.
    let (baseline, map) = per_grant(|| {
        let stored = runtime
            .block_on(store.get_many(&keys))
            .expect("reading the grants");
        keys.iter()
            .zip(stored)
            .map(|(key, found)| {
                let found = found.expect("readable").expect("stored");
                (key.clone(), Arc::new(found.value))
            })
            .collect::<std::collections::HashMap<_, _>>()
    });
    drop(map);
    write_figure("baseline_key_and_token_set", baseline);

    let manager = || {
        TokenManager::builder(support::provider(), store.clone())
            .build()
            .expect("a manager")
    };
    let (warmed, kept) = per_grant(|| {
        let manager = manager();
        let loaded = runtime.block_on(manager.warm(&keys)).expect("warming up");
        assert_eq!(loaded, GRANTS);
        manager
    });
    drop(kept);
    write_figure("warm", warmed);

    let (one_by_one, kept) = per_grant(|| {
        let manager = manager();
        runtime.block_on(async {
            for key in &keys {
                manager.access_token(key).await.expect("a fresh token");
            }
        });
        manager
    });
    drop(kept);
    write_figure("access_token_one_by_one", one_by_one);
}
