//! `grantkit token` on a fresh cached token, the whole process — start, read the profile,
//! open the store, print — against `cat` of a file of the same size (baseline), both
//! spawned the same way in the same run. Target: ≤ 5×.
#![allow(missing_docs)] // criterion_group! generates an undocumented public function

use criterion::{Criterion, criterion_group, criterion_main};
use grantkit::store::{Precondition, file::FileTokenStore};
use grantkit::{AccessToken, GrantKind, RefreshToken, TokenKey, TokenSet, TokenStore as _};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, SystemTime};

const CLIENT_ID: &str = "benchjoinmekey0123456789";

/// A user's configuration with one join.me profile and a token valid for an hour.
fn home() -> (tempfile::TempDir, String) {
    let home = tempfile::tempdir().expect("a temporary directory");
    let config = home.path().join("config.toml");
    let store = home.path().join("tokens");
    std::fs::write(
        &config,
        format!(
            "[profiles.jm]\nprovider = \"joinme\"\nclient_id = \"{CLIENT_ID}\"\n\
             client_secret = {{ env = \"BENCH_SECRET\" }}\nstore = \"{}\"\n",
            store.display()
        ),
    )
    .expect("write the profile");
    let access = "bench-access-token-q2VtKxWZ7pLmN4sRb8TdYc1FhJ0gU3oA";
    let tokens = TokenSet::new(AccessToken::new(access), GrantKind::AuthorizationCode)
        .with_refresh_token(RefreshToken::new("bench-refresh-Hy6Pw9EzQk2XvB5nMj7LsD4a"))
        .expiring_in(SystemTime::now(), Duration::from_secs(3600))
        .with_scopes(["user_info"]);
    let runtime = tokio::runtime::Runtime::new().expect("a runtime");
    runtime.block_on(async {
        let store = FileTokenStore::open(&store).await.expect("open the store");
        let key = TokenKey::new("joinme", CLIENT_ID, "bench@example.com");
        store
            .put(&key, &tokens, Precondition::Absent)
            .await
            .expect("store the token");
    });
    (home, format!("{access}\n"))
}

fn run(command: &mut Command) {
    let status = command
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("spawn");
    assert!(status.success(), "{command:?} failed");
}

fn token(c: &mut Criterion) {
    let (home, printed) = home();
    let same_size: PathBuf = home.path().join("printed");
    std::fs::write(&same_size, &printed).expect("write the baseline file");
    let grantkit = env!("CARGO_BIN_EXE_grantkit");
    let config: &Path = &home.path().join("config.toml");

    // The profile works and prints exactly what `cat` prints.
    let out = Command::new(grantkit)
        .args(["token", "jm"])
        .env("GRANTKIT_CONFIG", config)
        .env("BENCH_SECRET", "bench-secret")
        .output()
        .expect("spawn grantkit");
    assert_eq!(String::from_utf8_lossy(&out.stdout), printed, "{out:?}");

    let mut group = c.benchmark_group("cli_token");
    group.bench_function("baseline_cat_same_size", |b| {
        b.iter(|| run(Command::new("cat").arg(&same_size)));
    });
    group.bench_function("grantkit_token_cached", |b| {
        b.iter(|| {
            run(Command::new(grantkit)
                .args(["token", "jm"])
                .env("GRANTKIT_CONFIG", config)
                .env("BENCH_SECRET", "bench-secret"));
        });
    });
    group.finish();
}

criterion_group!(benches, token);
criterion_main!(benches);
