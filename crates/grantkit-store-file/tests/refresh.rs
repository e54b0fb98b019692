//! One refresh across processes: `TokenManager`s in several processes share a
//! `FileTokenStore`, and the token endpoint — a real HTTP server on loopback, counting
//! refresh requests — sees exactly the refreshes it should, also when a lease holder dies.
//!
//! The token endpoint is a minimal RFC 6749 refresh endpoint written here; the provider the
//! workers use posts the refresh grant to it with reqwest.

mod support;

use async_trait::async_trait;
use axum::extract::{Form, State};
use axum::http::StatusCode;
use axum::routing::post;
use axum::{Json, Router};
use grantkit_core::{
    AccessToken, AuthorizationRequest, Capabilities, Error, FlowKind, Grant, GrantKind,
    ManagerConfig, Precondition, Provider, RefreshToken, Result, Revocation, TokenKey,
    TokenManager, TokenSet, TokenStore as _,
};
use grantkit_store_file::FileTokenStore;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};
use support::{
    Worker, report, run_worker, runtime, store_path, test_dir, wait_for_parent, worker_args,
};
use url::Url;

const WAIT: Duration = Duration::from_secs(60);
const CLIENT_ID: &str = "test-client";

fn key() -> TokenKey {
    TokenKey::new("loopback", CLIENT_ID, "alice@example.com")
}

// ---- the token endpoint (parent) ----------------------------------------------------------

#[derive(Debug)]
struct Grants {
    refresh_token: String,
    issued: u64,
    rotate: bool,
    refresh_requests: u64,
}

type Shared = Arc<Mutex<Grants>>;

async fn token(
    State(grants): State<Shared>,
    Form(form): Form<HashMap<String, String>>,
) -> (StatusCode, Json<serde_json::Value>) {
    let mut grants = grants.lock().unwrap();
    if form.get("grant_type").map(String::as_str) != Some("refresh_token")
        || form.get("client_id").map(String::as_str) != Some(CLIENT_ID)
    {
        return (
            StatusCode::BAD_REQUEST,
            Json(serde_json::json!({"error": "invalid_request"})),
        );
    }
    grants.refresh_requests += 1;
    if form.get("refresh_token") != Some(&grants.refresh_token) {
        return (
            StatusCode::BAD_REQUEST,
            Json(
                serde_json::json!({"error": "invalid_grant", "error_description": "unknown refresh token"}),
            ),
        );
    }
    grants.issued += 1;
    let mut body = serde_json::json!({
        "access_token": format!("at-{}", grants.issued),
        "token_type": "bearer",
        "expires_in": 3600,
    });
    if grants.rotate {
        grants.refresh_token = format!("rt-{}", grants.issued);
        body["refresh_token"] = grants.refresh_token.clone().into();
    }
    (StatusCode::OK, Json(body))
}

/// A token endpoint on a free loopback port; the grant starts with refresh token `rt-0`.
struct TokenEndpoint {
    url: String,
    grants: Shared,
}

impl TokenEndpoint {
    fn start(rt: &tokio::runtime::Runtime, rotate: bool) -> Self {
        let grants = Arc::new(Mutex::new(Grants {
            refresh_token: "rt-0".to_owned(),
            issued: 0,
            rotate,
            refresh_requests: 0,
        }));
        let app = Router::new()
            .route("/token", post(token))
            .with_state(grants.clone());
        let listener = rt
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .expect("bind a loopback port");
        let url = format!("http://{}/token", listener.local_addr().unwrap());
        rt.spawn(async move { axum::serve(listener, app).await });
        Self { url, grants }
    }

    fn refresh_requests(&self) -> u64 {
        self.grants.lock().unwrap().refresh_requests
    }
}

/// An expired grant in the store, refreshable with `rt-0`.
fn store_expired_grant(rt: &tokio::runtime::Runtime, store_dir: &Path) {
    let store = rt.block_on(FileTokenStore::open(store_dir)).expect("open");
    let mut tokens = TokenSet::new(AccessToken::new("at-0"), GrantKind::AuthorizationCode)
        .with_refresh_token(RefreshToken::new("rt-0"));
    tokens.expires_at = Some(SystemTime::now() - Duration::from_secs(3600));
    rt.block_on(store.put(&key(), &tokens, Precondition::Any))
        .expect("put");
}

// ---- the provider (workers) ---------------------------------------------------------------

/// What the provider does in `refresh`, so that a test can kill a worker at a known point.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    /// Refreshes.
    Normal,
    /// Says `refreshing` and hangs before sending the request.
    HangBeforeRequest,
    /// Sends the request, says `refreshed` once the endpoint answered, and hangs.
    HangAfterResponse,
}

#[derive(Debug)]
struct LoopbackProvider {
    endpoint: Url,
    http: reqwest::Client,
    capabilities: Capabilities,
    timeout: Duration,
    mode: Mode,
}

impl LoopbackProvider {
    fn new(endpoint: &str, timeout: Duration, mode: Mode) -> Self {
        Self {
            endpoint: Url::parse(endpoint).expect("endpoint URL"),
            http: reqwest::Client::builder()
                .timeout(timeout)
                .build()
                .expect("client"),
            capabilities: Capabilities::default()
                .with_flows([FlowKind::AuthorizationCode])
                .with_refresh(true)
                .with_rotation(true),
            timeout,
            mode,
        }
    }

    async fn post_refresh(&self, tokens: &TokenSet) -> Result<TokenSet> {
        let refresh_token = tokens
            .refresh_token
            .as_ref()
            .ok_or_else(|| Error::unsupported("no refresh token"))?;
        let body = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("grant_type", "refresh_token")
            .append_pair("refresh_token", refresh_token.expose_secret())
            .append_pair("client_id", CLIENT_ID)
            .finish();
        let response = self
            .http
            .post(self.endpoint.clone())
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body)
            .send()
            .await?;
        let status = response.status();
        let bytes = response.bytes().await?;
        let json: serde_json::Value = serde_json::from_slice(&bytes)
            .map_err(|_| Error::bad_response("the token endpoint did not answer JSON"))?;
        if !status.is_success() {
            return Err(Error::oauth(
                json["error"].as_str().unwrap_or("invalid_request"),
                json["error_description"].as_str().map(str::to_owned),
            ));
        }
        let access = json["access_token"]
            .as_str()
            .ok_or_else(|| Error::bad_response("no access_token"))?;
        let mut refreshed = TokenSet::new(AccessToken::new(access), GrantKind::AuthorizationCode)
            .expiring_in(
                SystemTime::now(),
                Duration::from_secs(json["expires_in"].as_u64().unwrap_or(3600)),
            );
        refreshed.refresh_token = json["refresh_token"].as_str().map(RefreshToken::new);
        Ok(refreshed)
    }
}

#[async_trait]
impl Provider for LoopbackProvider {
    fn id(&self) -> &str {
        "loopback"
    }
    fn client_id(&self) -> &str {
        CLIENT_ID
    }
    fn capabilities(&self) -> &Capabilities {
        &self.capabilities
    }
    fn request_timeout(&self) -> Duration {
        self.timeout
    }
    async fn authorization_url(&self, _request: &AuthorizationRequest) -> Result<Url> {
        Err(Error::unsupported("these tests start from a stored grant"))
    }
    async fn exchange(&self, _grant: Grant) -> Result<TokenSet> {
        Err(Error::unsupported("these tests start from a stored grant"))
    }
    async fn refresh(&self, tokens: &TokenSet) -> Result<TokenSet> {
        match self.mode {
            Mode::Normal => self.post_refresh(tokens).await,
            Mode::HangBeforeRequest => {
                report("refreshing");
                std::future::pending().await
            }
            Mode::HangAfterResponse => {
                let refreshed = self.post_refresh(tokens).await;
                report(&format!("refreshed {}", refreshed.is_ok()));
                std::future::pending().await
            }
        }
    }
    async fn identify(&self, _tokens: &TokenSet) -> Result<String> {
        Ok(key().account)
    }
    async fn revoke(&self, _tokens: &TokenSet) -> Result<Revocation> {
        Ok(Revocation::NotSupported)
    }
}

/// Worker: `access <store> <endpoint> <mode> <tasks> <timeout ms> <lease ttl ms>` — after
/// `go`, calls `access_token` from `tasks` tasks at once and reports what they got: `ok
/// <token>` when all got the same token, `reauth` when all were told to authorize again.
fn access_worker(args: &[String]) {
    let store_dir = PathBuf::from(&args[1]);
    let endpoint = args[2].clone();
    let mode = match args[3].as_str() {
        "normal" => Mode::Normal,
        "hang-before-request" => Mode::HangBeforeRequest,
        "hang-after-response" => Mode::HangAfterResponse,
        other => panic!("unknown mode {other}"),
    };
    let tasks: usize = args[4].parse().expect("a task count");
    let timeout = Duration::from_millis(args[5].parse().expect("a timeout"));
    let lease_ttl = Duration::from_millis(args[6].parse().expect("a TTL"));
    runtime().block_on(async move {
        let store = FileTokenStore::open(&store_dir).await.expect("open");
        let provider = Arc::new(LoopbackProvider::new(&endpoint, timeout, mode));
        let manager = TokenManager::builder(provider, Arc::new(store))
            .config(ManagerConfig::for_timeout(timeout).with_lease_ttl(lease_ttl))
            .build()
            .expect("manager");
        report("ready");
        wait_for_parent();
        let mut handles = Vec::new();
        for _ in 0..tasks {
            let manager = manager.clone();
            handles.push(tokio::spawn(
                async move { manager.access_token(&key()).await },
            ));
        }
        let mut tokens = HashMap::<String, usize>::new();
        let mut reauth = 0;
        let mut other = Vec::new();
        for handle in handles {
            match handle.await.expect("task") {
                Ok(set) => {
                    *tokens
                        .entry(set.access_token.expose_secret().to_owned())
                        .or_default() += 1
                }
                Err(Error::ReauthorizationRequired { .. }) => reauth += 1,
                Err(err) => other.push(err.to_string()),
            }
        }
        match (tokens.len(), reauth, other.is_empty()) {
            (1, 0, true) => report(&format!("ok {}", tokens.keys().next().unwrap())),
            (0, r, true) if r == tasks => report("reauth"),
            _ => report(&format!(
                "mixed tokens={tokens:?} reauth={reauth} errors={other:?}"
            )),
        }
    });
}

fn spawn_access(
    test: &str,
    store_dir: &Path,
    endpoint: &TokenEndpoint,
    mode: &str,
    tasks: usize,
    timeout_ms: u64,
    ttl_ms: u64,
) -> Worker {
    Worker::spawn(
        test,
        &[
            "access",
            store_dir.to_str().unwrap(),
            &endpoint.url,
            mode,
            &tasks.to_string(),
            &timeout_ms.to_string(),
            &ttl_ms.to_string(),
        ],
    )
}

fn start_together(workers: &mut [Worker]) {
    for worker in workers.iter_mut() {
        worker.expect("ready", WAIT);
    }
    for worker in workers.iter_mut() {
        worker.send("go");
    }
}

#[test]
fn four_processes_of_250_tasks_refresh_an_expired_token_once() {
    const TEST: &str = "four_processes_of_250_tasks_refresh_an_expired_token_once";
    if let Some(args) = worker_args() {
        run_worker(|| access_worker(&args));
    }
    let dir = test_dir("refresh-once");
    let store_dir = store_path(dir.path());
    let rt = runtime();
    let endpoint = TokenEndpoint::start(&rt, true);
    store_expired_grant(&rt, &store_dir);

    let mut workers: Vec<Worker> = (0..4)
        .map(|_| spawn_access(TEST, &store_dir, &endpoint, "normal", 250, 5_000, 10_000))
        .collect();
    start_together(&mut workers);
    for worker in &mut workers {
        assert_eq!(
            worker.expect("", WAIT),
            "ok at-1",
            "every task of every process gets the one refreshed token"
        );
        worker.succeed(WAIT);
    }
    assert_eq!(
        endpoint.refresh_requests(),
        1,
        "the token endpoint saw more than one refresh"
    );
    let store = rt.block_on(FileTokenStore::open(&store_dir)).unwrap();
    let stored = rt.block_on(store.get(&key())).unwrap().unwrap();
    assert_eq!(stored.value.access_token.expose_secret(), "at-1");
    assert_eq!(stored.value.refresh_token.unwrap().expose_secret(), "rt-1");
}

#[test]
fn a_holder_killed_before_its_request_is_replaced_once_the_lease_expires() {
    const TEST: &str = "a_holder_killed_before_its_request_is_replaced_once_the_lease_expires";
    if let Some(args) = worker_args() {
        run_worker(|| access_worker(&args));
    }
    let dir = test_dir("refresh-dead-before");
    let store_dir = store_path(dir.path());
    let rt = runtime();
    let endpoint = TokenEndpoint::start(&rt, true);
    store_expired_grant(&rt, &store_dir);

    // The victim takes the lease and dies before its refresh request goes out.
    let mut victim = spawn_access(
        TEST,
        &store_dir,
        &endpoint,
        "hang-before-request",
        1,
        500,
        1_500,
    );
    start_together(std::slice::from_mut(&mut victim));
    victim.expect("refreshing", WAIT);
    victim.kill();
    assert_eq!(
        endpoint.refresh_requests(),
        0,
        "the victim's request went out"
    );

    // The others wait for the dead holder's lease to expire, then one of them refreshes.
    let mut others: Vec<Worker> = (0..3)
        .map(|_| spawn_access(TEST, &store_dir, &endpoint, "normal", 20, 500, 1_500))
        .collect();
    start_together(&mut others);
    for worker in &mut others {
        assert_eq!(worker.expect("", WAIT), "ok at-1");
        worker.succeed(WAIT);
    }
    assert_eq!(endpoint.refresh_requests(), 1);
}

#[test]
fn a_holder_killed_after_the_server_rotated_leaves_the_others_to_reauthorize() {
    const TEST: &str = "a_holder_killed_after_the_server_rotated_leaves_the_others_to_reauthorize";
    if let Some(args) = worker_args() {
        run_worker(|| access_worker(&args));
    }
    let dir = test_dir("refresh-dead-after");
    let store_dir = store_path(dir.path());
    let rt = runtime();
    let endpoint = TokenEndpoint::start(&rt, true);
    store_expired_grant(&rt, &store_dir);

    // The victim's refresh commits at the server (rt-0 → rt-1), and the victim dies before
    // storing the new tokens: the stored rt-0 is dead.
    let mut victim = spawn_access(
        TEST,
        &store_dir,
        &endpoint,
        "hang-after-response",
        1,
        500,
        1_500,
    );
    start_together(std::slice::from_mut(&mut victim));
    assert_eq!(victim.expect("refreshed", WAIT), "true");
    victim.kill();
    assert_eq!(endpoint.refresh_requests(), 1);

    // The others try rt-0 once, are refused, and give up: no loop, no expired token served.
    let mut others: Vec<Worker> = (0..3)
        .map(|_| spawn_access(TEST, &store_dir, &endpoint, "normal", 20, 500, 1_500))
        .collect();
    start_together(&mut others);
    for worker in &mut others {
        assert_eq!(worker.expect("", WAIT), "reauth");
        worker.succeed(WAIT);
    }
    assert_eq!(
        endpoint.refresh_requests(),
        2,
        "the refused refresh was tried more than once"
    );
    let store = rt.block_on(FileTokenStore::open(&store_dir)).unwrap();
    assert!(
        rt.block_on(store.get(&key())).unwrap().is_none(),
        "the dead grant is deleted"
    );
}
