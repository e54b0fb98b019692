//! Benchmarks of `FileTokenStore::put`, on the disk under the target directory.
//!
//! - `file_put_scaling`: a durable put into a store of 100 grants (baseline) and of 100,000
//!   grants: one file per grant means the cost must not grow with the store.
//! - `file_durable_put`: a durable put against the least any durable replacement costs —
//!   write a temporary file, fsync it, rename it over the record, fsync the directory — with
//!   the same bytes, in the same file system (baseline).
//!
//! Both run under `CARGO_TARGET_TMPDIR` (the target directory), which is on a real disk
//! even where `/tmp` is a tmpfs.
#![allow(missing_docs)] // criterion_group! generates an undocumented public function

use criterion::{Criterion, criterion_group, criterion_main};
use grantkit_core::{
    AccessToken, GrantKind, RefreshToken, TokenKey, TokenSet, TokenStore as _, store::Precondition,
};
use grantkit_store_file::{Durability, FileTokenStore};
use std::fs::{self, File};
use std::io::Write as _;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};
use tokio::runtime::Runtime;

/// How many keys of each store the measured puts cycle through.
const HOT_KEYS: usize = 100;

fn bench_root() -> PathBuf {
    PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("grantkit-store-file-bench")
}

/// A fresh private directory for one store.
fn fresh_dir(name: &str) -> PathBuf {
    let dir = bench_root().join(name);
    if dir.exists() {
        fs::remove_dir_all(&dir).expect("remove an old bench directory");
    }
    fs::create_dir_all(&dir).expect("create the bench directory");
    fs::set_permissions(&dir, fs::Permissions::from_mode(0o700)).expect("chmod 700");
    dir
}

fn key(i: usize) -> TokenKey {
    TokenKey::new("joinme", "bench-client", format!("user-{i}@example.com"))
}

fn tokens(i: usize) -> TokenSet {
    TokenSet::new(
        AccessToken::new(format!("at-{i:08}-q2VtKxWZ7pLmN4sRb8TdYc1FhJ0gU3oA")),
        GrantKind::AuthorizationCode,
    )
    .with_refresh_token(RefreshToken::new(format!(
        "rt-{i:08}-Hy6Pw9EzQk2XvB5nMj7LsD4aG8fC1tR"
    )))
    .expiring_in(SystemTime::now(), Duration::from_secs(3600))
    .with_scopes(["scheduler", "meetings", "user_info"])
    .with_extra("email", format!("user-{i}@example.com"))
}

/// A store of `count` grants, filled without fsync (the fill is set-up, not measured), then
/// reopened durable.
fn filled_store(runtime: &Runtime, name: &str, count: usize) -> FileTokenStore {
    let dir = fresh_dir(name);
    runtime.block_on(async {
        let filler = Arc::new(
            FileTokenStore::builder(&dir)
                .durability(Durability::NoFsync)
                .open()
                .await
                .expect("open the store to fill"),
        );
        let workers = 8;
        let mut tasks = Vec::new();
        for worker in 0..workers {
            let filler = filler.clone();
            tasks.push(tokio::spawn(async move {
                for i in (worker..count).step_by(workers) {
                    filler
                        .put(&key(i), &tokens(i), Precondition::Any)
                        .await
                        .expect("fill");
                }
            }));
        }
        for task in tasks {
            task.await.expect("fill task");
        }
        FileTokenStore::open(&dir).await.expect("reopen durable")
    })
}

/// Flushes the unsynced fill to disk, so its write-back does not slow down whichever
/// benchmark runs first.
fn flush_file_systems() {
    match std::process::Command::new("sync").status() {
        Ok(status) if status.success() => {}
        other => {
            eprintln!("bench: `sync` did not run ({other:?}); the first measurement may be slower")
        }
    }
}

fn put_scaling(c: &mut Criterion) {
    let runtime = Runtime::new().expect("runtime");
    let large = filled_store(&runtime, "put-100000", 100_000);
    let small = filled_store(&runtime, "put-100", 100);
    flush_file_systems();

    let mut group = c.benchmark_group("file_put_scaling");
    group
        .sample_size(20)
        .measurement_time(Duration::from_secs(4));
    for (id, store) in [("baseline_put_100", &small), ("put_100000", &large)] {
        let mut i = 0;
        group.bench_function(id, |b| {
            b.to_async(&runtime).iter(|| {
                i = (i + 1) % HOT_KEYS;
                let (key, tokens) = (key(i), tokens(i));
                async move {
                    store
                        .put(&key, &tokens, Precondition::Any)
                        .await
                        .expect("put")
                }
            });
        });
    }
    group.finish();
}

/// The raw durable replacement the store's put is measured against.
fn raw_durable_write(dir: &Path, dir_handle: &File, bytes: &[u8]) {
    let tmp = dir.join("record.json.tmp");
    let mut file = File::create(&tmp).expect("create");
    file.write_all(bytes).expect("write");
    file.sync_all().expect("fsync");
    drop(file);
    fs::rename(&tmp, dir.join("record.json")).expect("rename");
    dir_handle.sync_all().expect("fsync the directory");
}

fn durable_put(c: &mut Criterion) {
    let runtime = Runtime::new().expect("runtime");
    let store_dir = fresh_dir("durable-put");
    let store = runtime
        .block_on(FileTokenStore::open(&store_dir))
        .expect("open");
    runtime
        .block_on(store.put(&key(0), &tokens(0), Precondition::Any))
        .expect("first put");
    // The exact bytes the store writes for this put.
    let record = fs::read_dir(store_dir.join("tokens"))
        .expect("list")
        .map(|entry| entry.expect("entry").path())
        .find(|path| path.extension().is_some_and(|ext| ext == "json"))
        .expect("the record file");
    let bytes = fs::read(record).expect("read the record");

    let raw_dir = fresh_dir("raw-durable-write");
    let raw_handle = File::open(&raw_dir).expect("open the directory");

    let mut group = c.benchmark_group("file_durable_put");
    group
        .sample_size(20)
        .measurement_time(Duration::from_secs(4));
    group.bench_function("baseline_raw_durable_write", |b| {
        b.iter(|| raw_durable_write(&raw_dir, &raw_handle, &bytes));
    });
    let (key, tokens) = (key(0), tokens(0));
    group.bench_function("put", |b| {
        b.to_async(&runtime).iter(|| async {
            store
                .put(&key, &tokens, Precondition::Any)
                .await
                .expect("put")
        });
    });
    group.finish();
}

criterion_group!(benches, put_scaling, durable_put);
criterion_main!(benches);
