//! The rotation race, with real processes: against the real server with refresh-token
//! rotation on, two processes sharing one `FileTokenStore` refresh the same expired token
//! at once.
//!
//! - With the store's lease, exactly one refresh reaches the server and both processes
//!   keep a working grant.
//! - Without leases (a store wrapper that declares none), both
//!   refreshes reach the server, which sees the consumed refresh token reused and revokes
//!   the whole grant: the lease is what prevents it.
//!
//! The proxy in front of the server holds the first refresh until the second arrives (or
//! three seconds pass), so the two processes always meet; it then forwards them one after
//! the other. The two processes are copies of this executable, started with
//! `GRANTKIT_RACE_ROLE` set; that is why this test has no libtest harness.

use async_trait::async_trait;
use grantkit_conformance::Decision;
use grantkit_core::{
    Callback, ClientSecret, ManagerConfig, Provider as _, RedirectFlow, TokenKey, TokenManager,
    TokenSet, TokenStore,
    flow::FlowKind,
    store::{
        KeyFilter, PendingAuthorization, Precondition, StateHash, StoreCapabilities, Version,
        Versioned,
    },
};
use grantkit_standard::StandardProvider;
use grantkit_standard::testing::{
    AuthServer, AuthServerOptions, BASIC_CLIENT, REDIRECT_URI, TEST_ACCOUNT,
};
use grantkit_store_file::FileTokenStore;
use sha2::{Digest as _, Sha256};
use std::path::PathBuf;
use std::process::{ExitCode, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};
use tokio::io::{AsyncBufReadExt as _, AsyncWriteExt as _, BufReader};

const ROLE: &str = "GRANTKIT_RACE_ROLE";
const STORE: &str = "GRANTKIT_RACE_STORE";
const ISSUER: &str = "GRANTKIT_RACE_ISSUER";
const LEASES: &str = "GRANTKIT_RACE_LEASES";

/// The providers' timeout: the lease (twice this) outlives a held refresh.
const TIMEOUT: Duration = Duration::from_secs(10);
/// How long the proxy holds a lone refresh waiting for a second one.
const PAIRING_WAIT: Duration = Duration::from_secs(3);
/// How long a process may take at each step.
const STEP: Duration = Duration::from_secs(60);

fn key() -> TokenKey {
    TokenKey::new("standard", BASIC_CLIENT.id, TEST_ACCOUNT)
}

fn fingerprint(tokens: &TokenSet) -> String {
    hex::encode(Sha256::digest(
        tokens.access_token.expose_secret().as_bytes(),
    ))
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a runtime")
}

// ---- the racing process ----------------------------------------------------------------------

/// A store that declares no leases: every process refreshes on its own.
#[derive(Debug)]
struct NoLeases(FileTokenStore);

#[async_trait]
impl TokenStore for NoLeases {
    fn capabilities(&self) -> StoreCapabilities {
        StoreCapabilities::none().with_pending_authorizations(true)
    }
    async fn get(&self, key: &TokenKey) -> grantkit_core::Result<Option<Versioned<TokenSet>>> {
        self.0.get(key).await
    }
    async fn put(
        &self,
        key: &TokenKey,
        tokens: &TokenSet,
        precondition: Precondition,
    ) -> grantkit_core::Result<Version> {
        self.0.put(key, tokens, precondition).await
    }
    async fn delete(
        &self,
        key: &TokenKey,
        precondition: Precondition,
    ) -> grantkit_core::Result<bool> {
        self.0.delete(key, precondition).await
    }
    async fn list(&self, filter: &KeyFilter) -> grantkit_core::Result<Vec<TokenKey>> {
        self.0.list(filter).await
    }
    async fn put_pending(
        &self,
        pending: &PendingAuthorization,
        ttl: Duration,
    ) -> grantkit_core::Result<()> {
        self.0.put_pending(pending, ttl).await
    }
    async fn take_pending(
        &self,
        state_hash: &StateHash,
    ) -> grantkit_core::Result<Option<PendingAuthorization>> {
        self.0.take_pending(state_hash).await
    }
}

/// One racing process: opens the shared store, says `ready`, waits for `go` on stdin,
/// asks its manager for the (expired) token, and prints the outcome as one JSON line.
async fn racer() -> Result<(), String> {
    let var = |name: &str| std::env::var(name).map_err(|_| format!("{name} is not set"));
    let files = FileTokenStore::open(PathBuf::from(var(STORE)?))
        .await
        .map_err(|e| e.to_string())?;
    let store: Arc<dyn TokenStore> = if var(LEASES)? == "on" {
        Arc::new(files)
    } else {
        Arc::new(NoLeases(files))
    };
    let provider =
        StandardProvider::builder(BASIC_CLIENT.id, ClientSecret::new(BASIC_CLIENT.secret))
            .issuer(var(ISSUER)?)
            .flows([FlowKind::AuthorizationCode])
            .timeout(TIMEOUT)
            .build()
            .await
            .map_err(|e| e.to_string())?;
    let manager = TokenManager::builder(Arc::new(provider), store)
        .config(ManagerConfig::default().with_refresh_jitter(Duration::ZERO))
        .build()
        .map_err(|e| e.to_string())?;
    println!("ready");
    let mut line = String::new();
    BufReader::new(tokio::io::stdin())
        .read_line(&mut line)
        .await
        .map_err(|e| e.to_string())?;
    let outcome = match manager.access_token(&key()).await {
        Ok(tokens) => serde_json::json!({ "ok": true, "token": fingerprint(&tokens) }),
        Err(err) => serde_json::json!({ "ok": false, "error": err.to_string() }),
    };
    println!("{outcome}");
    Ok(())
}

// ---- the test --------------------------------------------------------------------------------

/// What the race left behind.
struct Race {
    server: AuthServer,
    store: Arc<FileTokenStore>,
    provider: Arc<StandardProvider>,
    /// Each process's JSON outcome.
    outcomes: Vec<serde_json::Value>,
    /// Token requests the race sent to the server.
    refreshes: u64,
    _dir: tempfile::TempDir,
}

/// Authorizes once, expires the stored token locally, and lets two processes race.
async fn race(leases: bool) -> Race {
    let server = AuthServer::start(AuthServerOptions::default().with_rotation(true))
        .await
        .unwrap_or_else(|err| panic!("{err}"));
    let dir = tempfile::tempdir().unwrap();
    // The store creates its own directory, private to this user.
    let root = dir.path().join("tokens");
    let store = Arc::new(FileTokenStore::open(&root).await.unwrap());
    let provider = Arc::new(
        server
            .provider(&BASIC_CLIENT)
            .flows([FlowKind::AuthorizationCode])
            .timeout(TIMEOUT)
            .build()
            .await
            .unwrap(),
    );
    let manager = TokenManager::builder(provider.clone(), store.clone())
        .build()
        .unwrap();
    let flow = RedirectFlow::authorization_code(REDIRECT_URI).with_scopes(["openid", "read"]);
    let url = manager.start_authorization(&flow).await.unwrap();
    let callback = server
        .authorize(url.expose_secret(), Decision::Approve)
        .await
        .unwrap();
    let key = manager
        .complete_authorization(&Callback::parse(&callback).unwrap())
        .await
        .unwrap();
    assert_eq!(key, self::key());
    expire(&store, &key).await;

    let before = server.proxy().token_requests();
    server.proxy().pair_next_token_requests(PAIRING_WAIT);
    let mut racers = Vec::new();
    for _ in 0..2 {
        let mut child = tokio::process::Command::new(std::env::current_exe().unwrap())
            .env(ROLE, "racer")
            .env(STORE, &root)
            .env(ISSUER, server.issuer())
            .env(LEASES, if leases { "on" } else { "off" })
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .expect("start a racing process");
        let stdin = child.stdin.take().unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let ready = tokio::time::timeout(STEP, lines.next_line()).await;
        assert!(
            matches!(&ready, Ok(Ok(Some(line))) if line == "ready"),
            "a racing process did not get ready: {ready:?}"
        );
        racers.push((child, stdin, lines));
    }
    // Both are ready: let them go together.
    for (_, stdin, _) in &mut racers {
        stdin.write_all(b"go\n").await.unwrap();
        stdin.flush().await.unwrap();
    }
    let mut outcomes = Vec::new();
    for (mut child, _, mut lines) in racers {
        let line = tokio::time::timeout(STEP, lines.next_line())
            .await
            .expect("a racing process answers")
            .unwrap()
            .expect("an outcome line");
        outcomes.push(serde_json::from_str(&line).expect("a JSON outcome"));
        let status = tokio::time::timeout(STEP, child.wait())
            .await
            .unwrap()
            .unwrap();
        assert!(status.success(), "a racing process failed: {status}");
    }
    let refreshes = server.proxy().token_requests() - before;
    Race {
        server,
        store,
        provider,
        outcomes,
        refreshes,
        _dir: dir,
    }
}

/// Rewrites the stored grant as expired, as if its lifetime had passed.
async fn expire(store: &FileTokenStore, key: &TokenKey) {
    let current = store.get(key).await.unwrap().expect("a stored grant");
    let mut tokens = current.value;
    tokens.expires_at = Some(SystemTime::now() - Duration::from_secs(1));
    store
        .put(key, &tokens, Precondition::Version(current.version))
        .await
        .unwrap();
}

async fn status_of(server: &AuthServer, tokens: &TokenSet) -> u16 {
    reqwest::Client::new()
        .get(format!("{}/me", server.issuer()))
        .bearer_auth(tokens.access_token.expose_secret())
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

async fn the_lease_lets_exactly_one_refresh_reach_the_server() {
    let race = race(true).await;
    assert_eq!(race.refreshes, 1, "exactly one refresh reached the server");
    let stored = race
        .store
        .get(&key())
        .await
        .unwrap()
        .expect("the grant is kept")
        .value;
    for outcome in &race.outcomes {
        assert_eq!(outcome["ok"], true, "{outcome}");
        assert_eq!(
            outcome["token"].as_str(),
            Some(fingerprint(&stored).as_str()),
            "both processes use the one refreshed token"
        );
    }
    assert_eq!(status_of(&race.server, &stored).await, 200);
    // The grant lives on: its (rotated) refresh token refreshes again.
    let next = race
        .provider
        .refresh(&stored)
        .await
        .expect("the grant still refreshes");
    assert_eq!(status_of(&race.server, &next).await, 200);
}

async fn without_the_lease_the_server_revokes_the_whole_grant() {
    let race = race(false).await;
    assert!(
        race.refreshes >= 2,
        "both processes refreshed with the same refresh token ({} requests)",
        race.refreshes
    );
    // Whatever each process believes it holds, the server has revoked the grant.
    let stored = race
        .store
        .get(&key())
        .await
        .unwrap()
        .expect("a stored grant")
        .value;
    assert_eq!(
        status_of(&race.server, &stored).await,
        401,
        "{:?}",
        race.outcomes
    );
    let err = race
        .provider
        .refresh(&stored)
        .await
        .expect_err("the newest refresh token died with the grant");
    assert!(err.is_invalid_grant(), "{err}");
    // And a manager finds out: re-authorization required.
    expire(&race.store, &key()).await;
    let manager = TokenManager::builder(race.provider.clone(), race.store.clone())
        .build()
        .unwrap();
    let err = manager.access_token(&key()).await.unwrap_err();
    assert!(err.is_reauthorization_required(), "{err}");
    assert!(race.provider.capabilities().may_rotate_refresh_tokens);
}

fn main() -> ExitCode {
    if std::env::var_os(ROLE).is_some() {
        return match runtime().block_on(racer()) {
            Ok(()) => ExitCode::SUCCESS,
            Err(why) => {
                eprintln!("racing process: {why}");
                ExitCode::FAILURE
            }
        };
    }
    type Test = fn() -> std::pin::Pin<Box<dyn std::future::Future<Output = ()>>>;
    let tests: [(&str, Test); 2] = [
        (
            "the_lease_lets_exactly_one_refresh_reach_the_server",
            || Box::pin(the_lease_lets_exactly_one_refresh_reach_the_server()),
        ),
        (
            "without_the_lease_the_server_revokes_the_whole_grant",
            || Box::pin(without_the_lease_the_server_revokes_the_whole_grant()),
        ),
    ];
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.iter().any(|a| a == "--list") {
        for (name, _) in tests {
            println!("{name}: test");
        }
        return ExitCode::SUCCESS;
    }
    // Like libtest: the words that are not flags filter by name; `--exact` matches whole.
    let exact = args.iter().any(|a| a == "--exact");
    let filters: Vec<&String> = args.iter().filter(|a| !a.starts_with('-')).collect();
    let selected: Vec<_> = tests
        .iter()
        .filter(|(name, _)| {
            filters.is_empty()
                || filters.iter().any(|f| {
                    if exact {
                        name == f
                    } else {
                        name.contains(f.as_str())
                    }
                })
        })
        .collect();
    println!("\nrunning {} tests", selected.len());
    let started = Instant::now();
    let (mut passed, mut failed) = (0, Vec::new());
    for (name, test) in &selected {
        let outcome = std::panic::catch_unwind(|| runtime().block_on(test()));
        match outcome {
            Ok(()) => {
                println!("test {name} ... ok");
                passed += 1;
            }
            Err(_) => {
                println!("test {name} ... FAILED");
                failed.push(*name);
            }
        }
    }
    if !failed.is_empty() {
        println!("\nfailures:");
        for name in &failed {
            println!("    {name}");
        }
    }
    println!(
        "\ntest result: {}. {passed} passed; {} failed; 0 ignored; 0 measured; {} filtered out; finished in {:.2}s\n",
        if failed.is_empty() { "ok" } else { "FAILED" },
        failed.len(),
        tests.len() - selected.len(),
        started.elapsed().as_secs_f64()
    );
    if failed.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(101)
    }
}
