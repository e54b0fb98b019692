//! One refresh across processes: `TokenManager`s in several processes share a
//! `FileTokenStore`, and the join.me emulator's token endpoint (real HTTP on loopback,
//! rotating refresh tokens) counts exactly the refreshes it should — also when a lease
//! holder dies before its request, or after the server rotated the refresh token.
//!
//! The workers' provider is a refresh-only join.me client written here: it posts the
//! refresh grant to the emulator with reqwest.

mod support;

use async_trait::async_trait;
use grantkit_core::{
    AccessToken, Error, GrantKind, ManagerConfig, Provider, RefreshToken, Result, Revocation,
    TokenKey, TokenManager, TokenSet, TokenStore as _,
    flow::FlowKind,
    provider::{AuthorizationRequest, Capabilities, Grant},
    store::Precondition,
};
use grantkit_emulator::{JoinMeEmulator, JoinMeEndpoint, JoinMeGrant};
use grantkit_store_file::FileTokenStore;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};
use support::{
    Worker, report, run_worker, runtime, store_path, test_dir, wait_for_parent, worker_args,
};
use url::Url;

const WAIT: Duration = Duration::from_secs(60);

// ---- the emulator (parent) ----------------------------------------------------------------

/// The join.me emulator with rotating refresh tokens, and a code-grant token pair it issued,
/// stored already expired.
struct Setup {
    emulator: JoinMeEmulator,
    key: TokenKey,
    issued_access: String,
    store_dir: PathBuf,
    _dir: tempfile::TempDir,
}

impl Setup {
    fn start(rt: &tokio::runtime::Runtime, name: &str) -> Self {
        let dir = test_dir(name);
        let store_dir = store_path(dir.path());
        let emulator = JoinMeEmulator::builder()
            .with_quirks(|q| {
                q.refresh_rotation = true;
                q.token_expires_in = Some(3600);
            })
            .start()
            .expect("the join.me emulator starts");
        let fixtures = emulator.fixtures().clone();
        let issued = emulator
            .issue_tokens(
                &fixtures.email,
                &fixtures.client_id,
                &["user_info", "scheduler"],
                JoinMeGrant::Code,
            )
            .expect("the emulator issues a token pair");
        let key = TokenKey::new("joinme", &fixtures.client_id, &fixtures.email);
        let mut expired = TokenSet::new(
            AccessToken::new(issued.access_token.clone()),
            GrantKind::AuthorizationCode,
        )
        .with_refresh_token(RefreshToken::new(
            issued
                .refresh_token
                .clone()
                .expect("a code grant has a refresh token"),
        ));
        expired.expires_at = Some(SystemTime::now() - Duration::from_secs(3600));
        let store = rt.block_on(FileTokenStore::open(&store_dir)).expect("open");
        rt.block_on(store.put(&key, &expired, Precondition::Absent))
            .expect("put");
        Self {
            emulator,
            key,
            issued_access: issued.access_token,
            store_dir,
            _dir: dir,
        }
    }

    fn token_calls(&self) -> u64 {
        self.emulator.count(JoinMeEndpoint::Token)
    }

    /// A worker of the test `test`: `tasks` tasks calling `access_token`.
    fn worker(
        &self,
        test: &str,
        mode: &str,
        tasks: usize,
        timeout_ms: u64,
        lease_ttl_ms: u64,
    ) -> Worker {
        let fixtures = self.emulator.fixtures();
        Worker::spawn(
            test,
            &[
                "access",
                self.store_dir.to_str().unwrap(),
                &self.emulator.token_url(),
                &fixtures.client_id,
                &fixtures.client_secret,
                &fixtures.email,
                mode,
                &tasks.to_string(),
                &timeout_ms.to_string(),
                &lease_ttl_ms.to_string(),
            ],
        )
    }

    fn stored(&self, rt: &tokio::runtime::Runtime) -> Option<TokenSet> {
        let store = rt.block_on(FileTokenStore::open(&self.store_dir)).unwrap();
        rt.block_on(store.get(&self.key)).unwrap().map(|v| v.value)
    }
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

/// A refresh-only join.me client.
#[derive(Debug)]
struct RefreshingProvider {
    token_url: Url,
    client_id: String,
    client_secret: String,
    http: reqwest::Client,
    capabilities: Capabilities,
    timeout: Duration,
    mode: Mode,
}

impl RefreshingProvider {
    async fn post_refresh(&self, tokens: &TokenSet) -> Result<TokenSet> {
        let refresh_token = tokens
            .refresh_token
            .as_ref()
            .ok_or_else(|| Error::unsupported("no refresh token"))?;
        let body = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("grant_type", "refresh_token")
            .append_pair("refresh_token", refresh_token.expose_secret())
            .append_pair("client_id", &self.client_id)
            .append_pair("client_secret", &self.client_secret)
            .finish();
        let response = self
            .http
            .post(self.token_url.clone())
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
                json["error"].as_str().unwrap_or("unknown_error"),
                json["error_description"].as_str().map(str::to_owned),
            ));
        }
        let access = json["access_token"]
            .as_str()
            .ok_or_else(|| Error::bad_response("no access_token"))?;
        let lifetime = Duration::from_secs(json["expires_in"].as_u64().unwrap_or(86_400));
        let mut refreshed = TokenSet::new(AccessToken::new(access), GrantKind::AuthorizationCode)
            .expiring_in(SystemTime::now(), lifetime);
        refreshed.refresh_token = json["refresh_token"].as_str().map(RefreshToken::new);
        Ok(refreshed)
    }
}

#[async_trait]
impl Provider for RefreshingProvider {
    fn id(&self) -> &str {
        "joinme"
    }
    fn client_id(&self) -> &str {
        &self.client_id
    }
    fn capabilities(&self) -> &Capabilities {
        &self.capabilities
    }
    fn request_timeout(&self) -> Duration {
        self.timeout
    }
    async fn authorization_url(&self, _request: &AuthorizationRequest) -> Result<Url> {
        Err(Error::unsupported("this test provider only refreshes"))
    }
    async fn exchange(&self, _grant: Grant) -> Result<TokenSet> {
        Err(Error::unsupported("this test provider only refreshes"))
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
        Err(Error::unsupported("this test provider only refreshes"))
    }
    async fn revoke(&self, _tokens: &TokenSet) -> Result<Revocation> {
        Ok(Revocation::NotSupported)
    }
}

/// Worker: `access <store> <token url> <client id> <client secret> <email> <mode> <tasks>
/// <timeout ms> <lease ttl ms>` — after `go`, calls `access_token` from `tasks` tasks at once
/// and reports what they got: `ok <token>` when all got the same token, `reauth` when all
/// were told to authorize again.
fn access_worker(args: &[String]) {
    let store_dir = PathBuf::from(&args[1]);
    let mode = match args[6].as_str() {
        "normal" => Mode::Normal,
        "hang-before-request" => Mode::HangBeforeRequest,
        "hang-after-response" => Mode::HangAfterResponse,
        other => panic!("unknown mode {other}"),
    };
    let tasks: usize = args[7].parse().expect("a task count");
    let timeout = Duration::from_millis(args[8].parse().expect("a timeout"));
    let lease_ttl = Duration::from_millis(args[9].parse().expect("a TTL"));
    let provider = RefreshingProvider {
        token_url: Url::parse(&args[2]).expect("the token URL"),
        client_id: args[3].clone(),
        client_secret: args[4].clone(),
        http: reqwest::Client::builder()
            .timeout(timeout)
            .build()
            .expect("a client"),
        capabilities: Capabilities::default()
            .with_flows([FlowKind::AuthorizationCode])
            .with_refresh(true)
            .with_rotation(true),
        timeout,
        mode,
    };
    let key = TokenKey::new("joinme", &args[3], &args[5]);
    runtime().block_on(async move {
        let store = FileTokenStore::open(&store_dir).await.expect("open");
        let manager = TokenManager::builder(Arc::new(provider), Arc::new(store))
            .config(ManagerConfig::default().with_lease_ttl(lease_ttl))
            .build()
            .expect("manager");
        report("ready");
        wait_for_parent();
        let mut handles = Vec::new();
        for _ in 0..tasks {
            let (manager, key) = (manager.clone(), key.clone());
            handles.push(tokio::spawn(
                async move { manager.access_token(&key).await },
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
                        .or_default() += 1;
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

fn start_together(workers: &mut [Worker]) {
    for worker in workers.iter_mut() {
        worker.expect("ready", WAIT);
    }
    for worker in workers.iter_mut() {
        worker.send("go");
    }
}

/// The token every worker reports; fails unless all report the same one.
fn one_token_for_all(workers: &mut [Worker]) -> String {
    let mut tokens = Vec::new();
    for worker in workers.iter_mut() {
        let result = worker.expect("", WAIT);
        let token = result
            .strip_prefix("ok ")
            .unwrap_or_else(|| panic!("a worker's tasks did not all get one token: {result}"))
            .to_owned();
        tokens.push(token);
        worker.succeed(WAIT);
    }
    tokens.dedup();
    assert_eq!(
        tokens.len(),
        1,
        "the processes were served different tokens: {tokens:?}"
    );
    tokens.remove(0)
}

#[test]
fn four_processes_of_250_tasks_refresh_an_expired_token_once() {
    const TEST: &str = "four_processes_of_250_tasks_refresh_an_expired_token_once";
    if let Some(args) = worker_args() {
        run_worker(|| access_worker(&args));
    }
    let rt = runtime();
    let setup = Setup::start(&rt, "refresh-once");
    let mut workers: Vec<Worker> = (0..4)
        .map(|_| setup.worker(TEST, "normal", 250, 5_000, 10_000))
        .collect();
    start_together(&mut workers);
    let token = one_token_for_all(&mut workers);
    assert_ne!(token, setup.issued_access, "the expired token was served");
    assert_eq!(
        setup.token_calls(),
        1,
        "4 processes × 250 tasks made more than one token-endpoint call"
    );
    let stored = setup.stored(&rt).expect("the refreshed grant");
    assert_eq!(stored.access_token.expose_secret(), token);
    assert!(!stored.is_expired(SystemTime::now()));
}

#[test]
fn a_holder_killed_before_its_request_is_replaced_once_the_lease_expires() {
    const TEST: &str = "a_holder_killed_before_its_request_is_replaced_once_the_lease_expires";
    if let Some(args) = worker_args() {
        run_worker(|| access_worker(&args));
    }
    let rt = runtime();
    let setup = Setup::start(&rt, "refresh-dead-before");

    // The victim takes the lease and dies before its refresh request goes out.
    let mut victim = setup.worker(TEST, "hang-before-request", 1, 500, 1_500);
    start_together(std::slice::from_mut(&mut victim));
    victim.expect("refreshing", WAIT);
    victim.kill();
    assert_eq!(setup.token_calls(), 0, "the victim's request went out");

    // The others wait for the dead holder's lease to expire, then one of them refreshes.
    let mut others: Vec<Worker> = (0..3)
        .map(|_| setup.worker(TEST, "normal", 20, 500, 1_500))
        .collect();
    start_together(&mut others);
    let token = one_token_for_all(&mut others);
    assert_ne!(token, setup.issued_access);
    assert_eq!(setup.token_calls(), 1);
    assert_eq!(
        setup.stored(&rt).unwrap().access_token.expose_secret(),
        token
    );
}

#[test]
fn a_holder_killed_after_the_server_rotated_leaves_the_others_to_reauthorize() {
    const TEST: &str = "a_holder_killed_after_the_server_rotated_leaves_the_others_to_reauthorize";
    if let Some(args) = worker_args() {
        run_worker(|| access_worker(&args));
    }
    let rt = runtime();
    let setup = Setup::start(&rt, "refresh-dead-after");

    // The victim's refresh commits at the server (the refresh token rotates), and the victim
    // dies before storing the new pair: the stored refresh token is dead.
    let mut victim = setup.worker(TEST, "hang-after-response", 1, 500, 1_500);
    start_together(std::slice::from_mut(&mut victim));
    assert_eq!(victim.expect("refreshed", WAIT), "true");
    victim.kill();
    assert_eq!(setup.token_calls(), 1);

    // The others try the dead refresh token once, are refused, and give up: no loop, and
    // no expired token served.
    let mut others: Vec<Worker> = (0..3)
        .map(|_| setup.worker(TEST, "normal", 20, 500, 1_500))
        .collect();
    start_together(&mut others);
    for worker in &mut others {
        assert_eq!(worker.expect("", WAIT), "reauth");
        worker.succeed(WAIT);
    }
    assert_eq!(
        setup.token_calls(),
        2,
        "the refused refresh was tried more than once"
    );
    assert!(setup.stored(&rt).is_none(), "the dead grant is deleted");
}
