//! Several real processes sharing one Redis, on standalone and on the cluster:
//!
//! - compare-and-swap: 4 processes × 500 read-modify-write increments end at exactly 2,000;
//! - one refresh: 4 processes × 250 tasks asking for an expired token cause exactly one
//!   call to the join.me emulator's token endpoint;
//! - a lease holder killed before its refresh request went out: another process refreshes
//!   once the lease expires (one call in all);
//! - a lease holder killed after the server rotated the refresh token: the others get
//!   `ReauthorizationRequired`, with one more (refused) call and no expired token served.
//!
//! This binary is its own harness (`harness = false`): run normally it is the coordinator;
//! started with `GRANTKIT_REDIS_TEST_ROLE` set it is a worker, configured by environment
//! variables, reporting on stdout.

use grantkit_conformance::processes::{Scenario, Worker, run_scenarios};
use grantkit_core::{
    AccessToken, Error, GrantKind, ManagerConfig, Provider, RefreshToken, Revocation, TokenKey,
    TokenManager, TokenSet, TokenStore,
    flow::FlowKind,
    provider::{AuthorizationRequest, Capabilities, Grant},
    store::Precondition,
};
use grantkit_emulator::{JoinMeEmulator, JoinMeEndpoint, JoinMeGrant};
use grantkit_store_redis::testing::{TestRedis, random_prefix};
use grantkit_store_redis::{RedisTokenStore, RedisTokenStoreBuilder};
use std::collections::BTreeMap;
use std::io::Write as _;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

const ROLE: &str = "GRANTKIT_REDIS_TEST_ROLE";
const ACCOUNT: &str = "GRANTKIT_REDIS_TEST_ACCOUNT";
const PROVIDER_ID: &str = "GRANTKIT_REDIS_TEST_PROVIDER";
const INCREMENTS: &str = "GRANTKIT_REDIS_TEST_INCREMENTS";
const TASKS: &str = "GRANTKIT_REDIS_TEST_TASKS";
const TOKEN_URL: &str = "GRANTKIT_REDIS_TEST_TOKEN_URL";
const CLIENT_ID: &str = "GRANTKIT_REDIS_TEST_CLIENT_ID";
const CLIENT_SECRET: &str = "GRANTKIT_REDIS_TEST_CLIENT_SECRET";
const LEASE_TTL_MS: &str = "GRANTKIT_REDIS_TEST_LEASE_TTL_MS";
const HANG: &str = "GRANTKIT_REDIS_TEST_HANG";

const SCENARIO_TIMEOUT: Duration = Duration::from_secs(240);
const WORKER_TIMEOUT: Duration = Duration::from_secs(180);
/// The provider's request timeout in the workers; the lease TTL must exceed it.
const REQUEST_TIMEOUT: Duration = Duration::from_millis(1000);
/// The lease TTL of a worker that will be killed: short, so the test does not wait long
/// for the dead holder's lease to expire.
const SHORT_LEASE_TTL: Duration = Duration::from_millis(1500);
/// The lease TTL of the other workers: long enough that a slow machine never lets a live
/// holder's lease lapse between renewals (which would allow a second refresh).
const LEASE_TTL: Duration = Duration::from_secs(5);

fn main() -> ExitCode {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a tokio runtime");
    match std::env::var(ROLE) {
        Ok(role) => runtime.block_on(worker::run(&role)),
        Err(_) => coordinator::run(&runtime),
    }
}

fn env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| panic!("the worker needs {name}"))
}

fn env_number(name: &str) -> u64 {
    env(name)
        .parse()
        .unwrap_or_else(|_| panic!("{name} is not a number"))
}

fn counter_tokens(count: u64) -> TokenSet {
    TokenSet::new(
        AccessToken::new(format!("count-{count}")),
        GrantKind::Password,
    )
}

fn count_of(tokens: &TokenSet) -> u64 {
    tokens
        .access_token
        .expose_secret()
        .strip_prefix("count-")
        .and_then(|n| n.parse().ok())
        .expect("a counter token")
}

/// A refresh-only join.me client for the workers: posts the refresh grant to the token
/// endpoint with reqwest. Optionally hangs (to be killed) just before sending the request
/// or just after the provider answered.
#[derive(Debug)]
struct RefreshingProvider {
    token_url: String,
    client_id: String,
    client_secret: String,
    provider_id: String,
    http: reqwest::Client,
    capabilities: Capabilities,
    hang: Option<String>,
}

impl RefreshingProvider {
    fn from_env() -> Self {
        Self {
            token_url: env(TOKEN_URL),
            client_id: env(CLIENT_ID),
            client_secret: env(CLIENT_SECRET),
            provider_id: env(PROVIDER_ID),
            http: reqwest::Client::builder()
                .timeout(REQUEST_TIMEOUT)
                .build()
                .expect("a reqwest client"),
            capabilities: Capabilities::default()
                .with_flows([FlowKind::AuthorizationCode])
                .with_refresh(true)
                .with_rotation(true),
            hang: std::env::var(HANG).ok().filter(|h| !h.is_empty()),
        }
    }

    /// Tells the coordinator where this process stopped, then never returns.
    async fn hang_if(&self, point: &str) {
        if self.hang.as_deref() == Some(point) {
            println!("HANGING {point}");
            let _ = std::io::stdout().flush();
            std::future::pending::<()>().await;
        }
    }
}

#[async_trait::async_trait]
impl Provider for RefreshingProvider {
    fn id(&self) -> &str {
        &self.provider_id
    }

    fn client_id(&self) -> &str {
        &self.client_id
    }

    fn capabilities(&self) -> &Capabilities {
        &self.capabilities
    }

    fn request_timeout(&self) -> Duration {
        REQUEST_TIMEOUT
    }

    async fn authorization_url(&self, _: &AuthorizationRequest) -> grantkit_core::Result<url::Url> {
        Err(Error::unsupported("this test provider only refreshes"))
    }

    async fn exchange(&self, _: Grant) -> grantkit_core::Result<TokenSet> {
        Err(Error::unsupported("this test provider only refreshes"))
    }

    async fn refresh(&self, tokens: &TokenSet) -> grantkit_core::Result<TokenSet> {
        let refresh_token = tokens
            .refresh_token
            .as_ref()
            .ok_or_else(|| Error::unsupported("no refresh token"))?;
        self.hang_if("before-request").await;
        let response = self
            .http
            .post(&self.token_url)
            .form(&[
                ("grant_type", "refresh_token"),
                ("refresh_token", refresh_token.expose_secret()),
                ("client_id", self.client_id.as_str()),
                ("client_secret", self.client_secret.as_str()),
            ])
            .send()
            .await?;
        let status = response.status();
        let body: serde_json::Value = response
            .json()
            .await
            .map_err(|_| Error::bad_response("the token response is not JSON"))?;
        self.hang_if("after-response").await;
        if !status.is_success() {
            let code = body["error"].as_str().unwrap_or("unknown_error").to_owned();
            let description = body["error_description"].as_str().map(str::to_owned);
            return Err(Error::oauth(code, description));
        }
        let access = body["access_token"]
            .as_str()
            .ok_or_else(|| Error::bad_response("no access_token"))?;
        let mut refreshed = TokenSet::new(AccessToken::new(access), GrantKind::AuthorizationCode);
        if let Some(refresh) = body["refresh_token"].as_str() {
            refreshed = refreshed.with_refresh_token(RefreshToken::new(refresh));
        }
        let lifetime = body["expires_in"].as_u64().unwrap_or(86_400);
        Ok(refreshed.expiring_in(SystemTime::now(), Duration::from_secs(lifetime)))
    }

    async fn identify(&self, _: &TokenSet) -> grantkit_core::Result<String> {
        Err(Error::unsupported("this test provider only refreshes"))
    }

    async fn revoke(&self, _: &TokenSet) -> grantkit_core::Result<Revocation> {
        Ok(Revocation::NotSupported)
    }
}

mod worker {
    use super::*;

    pub(super) async fn run(role: &str) -> ExitCode {
        match role {
            "cas" => cas().await,
            "refresh" => refresh().await,
            other => panic!("unknown worker role {other}"),
        }
        ExitCode::SUCCESS
    }

    async fn store() -> RedisTokenStore {
        RedisTokenStoreBuilder::from_env()
            .expect("the coordinator sets the store's environment")
            .build()
            .await
            .expect("the worker connects to Redis")
    }

    /// Adds 1 to the counter `INCREMENTS` times by read-modify-write with the version
    /// precondition, retrying on conflict.
    async fn cas() {
        let store = store().await;
        let key = TokenKey::new(env(PROVIDER_ID), "client", env(ACCOUNT));
        let mut conflicts = 0u64;
        for _ in 0..env_number(INCREMENTS) {
            loop {
                let current = store.get(&key).await.expect("get").expect("the counter");
                let next = counter_tokens(count_of(&current.value) + 1);
                match store
                    .put(&key, &next, Precondition::Version(current.version))
                    .await
                {
                    Ok(_) => break,
                    Err(Error::Conflict { .. }) => conflicts += 1,
                    Err(other) => panic!("increment failed: {other}"),
                }
            }
        }
        println!("DONE conflicts={conflicts}");
    }

    /// `TASKS` tasks ask the manager for the token at once; reports what each got.
    async fn refresh() {
        let store: Arc<dyn TokenStore> = Arc::new(store().await);
        let provider = Arc::new(RefreshingProvider::from_env());
        let key = TokenKey::new(env(PROVIDER_ID), env(CLIENT_ID), env(ACCOUNT));
        let config = ManagerConfig::default()
            .with_lease_ttl(Duration::from_millis(env_number(LEASE_TTL_MS)));
        let manager = TokenManager::builder(provider, store)
            .config(config)
            .build()
            .expect("a manager");
        let mut tasks = Vec::new();
        for _ in 0..env_number(TASKS) {
            let manager = manager.clone();
            let key = key.clone();
            tasks.push(tokio::spawn(
                async move { manager.access_token(&key).await },
            ));
        }
        let mut tokens: BTreeMap<String, u64> = BTreeMap::new();
        let mut reauthorize = 0u64;
        let mut errors = Vec::new();
        for task in tasks {
            match task.await.expect("a task panicked") {
                Ok(tokens_now) => {
                    *tokens
                        .entry(tokens_now.access_token.expose_secret().to_owned())
                        .or_default() += 1;
                }
                Err(Error::ReauthorizationRequired { .. }) => reauthorize += 1,
                Err(other) => errors.push(other.to_string()),
            }
        }
        let report = serde_json::json!({
            "tokens": tokens,
            "reauthorization_required": reauthorize,
            "errors": errors,
        });
        println!("RESULT {report}");
    }
}

mod coordinator {
    use super::*;

    const SCENARIOS: &[(&str, Scenario)] = &[
        ("cas_across_processes_standalone", || {
            Box::pin(cas_across_processes(Topo::Standalone))
        }),
        ("cas_across_processes_cluster", || {
            Box::pin(cas_across_processes(Topo::Cluster))
        }),
        ("one_refresh_across_processes_standalone", || {
            Box::pin(one_refresh_across_processes(Topo::Standalone))
        }),
        ("one_refresh_across_processes_cluster", || {
            Box::pin(one_refresh_across_processes(Topo::Cluster))
        }),
        ("holder_killed_before_its_request_standalone", || {
            Box::pin(holder_killed_before_its_request(Topo::Standalone))
        }),
        ("holder_killed_after_rotation_standalone", || {
            Box::pin(holder_killed_after_rotation(Topo::Standalone))
        }),
        ("holder_killed_after_rotation_cluster", || {
            Box::pin(holder_killed_after_rotation(Topo::Cluster))
        }),
    ];

    pub(super) fn run(runtime: &tokio::runtime::Runtime) -> ExitCode {
        run_scenarios(runtime, SCENARIOS, SCENARIO_TIMEOUT)
    }

    #[derive(Clone, Copy, Debug)]
    enum Topo {
        Standalone,
        Cluster,
    }

    async fn redis(topo: Topo) -> &'static TestRedis {
        tokio::task::spawn_blocking(move || match topo {
            Topo::Standalone => TestRedis::standalone(),
            Topo::Cluster => TestRedis::cluster(),
        })
        .await
        .expect("starting Redis panicked")
        .unwrap_or_else(|e| panic!("no Redis: {e}"))
    }

    /// A worker process: this executable in the worker `role`.
    fn spawn_worker(role: &str, vars: &[(&str, String)]) -> Worker {
        let mut vars = vars.to_vec();
        vars.push((ROLE, role.to_owned()));
        Worker::spawn(&vars, WORKER_TIMEOUT)
    }

    async fn cas_across_processes(topo: Topo) {
        let redis = redis(topo).await;
        let prefix = random_prefix();
        let store = redis
            .store_builder()
            .key_prefix(&prefix)
            .build()
            .await
            .unwrap();
        let key = TokenKey::new("multiprocess", "client", "counter");
        store
            .put(&key, &counter_tokens(0), Precondition::Absent)
            .await
            .unwrap();
        let mut vars = redis.store_env(&prefix);
        vars.extend([
            (PROVIDER_ID, "multiprocess".to_owned()),
            (ACCOUNT, "counter".to_owned()),
            (INCREMENTS, "500".to_owned()),
        ]);
        let mut workers: Vec<Worker> = (0..4).map(|_| spawn_worker("cas", &vars)).collect();
        for worker in &mut workers {
            worker.line_starting("DONE").await;
        }
        for worker in workers {
            worker.succeed().await;
        }
        let stored = store.get(&key).await.unwrap().unwrap();
        assert_eq!(
            count_of(&stored.value),
            2000,
            "increments were lost or doubled"
        );
    }

    /// The join.me emulator with rotating refresh tokens and one-hour access tokens, a
    /// code-grant token pair it issued, and that pair stored already expired.
    struct RefreshSetup {
        emulator: JoinMeEmulator,
        store: RedisTokenStore,
        key: TokenKey,
        vars: Vec<(&'static str, String)>,
    }

    async fn refresh_setup(topo: Topo) -> RefreshSetup {
        let redis = redis(topo).await;
        let emulator = tokio::task::spawn_blocking(|| {
            JoinMeEmulator::builder()
                .with_quirks(|q| {
                    q.refresh_rotation = true;
                    q.token_expires_in = Some(3600);
                })
                .start()
        })
        .await
        .unwrap()
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
        let prefix = random_prefix();
        let store = redis
            .store_builder()
            .key_prefix(&prefix)
            .build()
            .await
            .unwrap();
        let key = TokenKey::new("joinme", &fixtures.client_id, &fixtures.email);
        let expired = TokenSet::new(
            AccessToken::new(issued.access_token.clone()),
            GrantKind::AuthorizationCode,
        )
        .with_refresh_token(RefreshToken::new(
            issued
                .refresh_token
                .clone()
                .expect("a code grant has a refresh token"),
        ));
        let mut expired = expired;
        expired.expires_at = Some(SystemTime::now() - Duration::from_secs(3600));
        store
            .put(&key, &expired, Precondition::Absent)
            .await
            .unwrap();
        let mut vars = redis.store_env(&prefix);
        vars.extend([
            (PROVIDER_ID, "joinme".to_owned()),
            (ACCOUNT, fixtures.email.clone()),
            (TOKEN_URL, emulator.token_url()),
            (CLIENT_ID, fixtures.client_id.clone()),
            (CLIENT_SECRET, fixtures.client_secret.clone()),
        ]);
        RefreshSetup {
            emulator,
            store,
            key,
            vars,
        }
    }

    struct Report {
        tokens: BTreeMap<String, u64>,
        reauthorization_required: u64,
        errors: Vec<String>,
    }

    async fn report(worker: &mut Worker) -> Report {
        let line = worker.line_starting("RESULT").await;
        let value: serde_json::Value = serde_json::from_str(&line).expect("a JSON report");
        Report {
            tokens: value["tokens"]
                .as_object()
                .expect("tokens")
                .iter()
                .map(|(token, n)| (token.clone(), n.as_u64().unwrap()))
                .collect(),
            reauthorization_required: value["reauthorization_required"].as_u64().unwrap(),
            errors: value["errors"]
                .as_array()
                .expect("errors")
                .iter()
                .map(|e| e.as_str().unwrap_or_default().to_owned())
                .collect(),
        }
    }

    /// Starts `count` refreshing workers of `tasks` tasks each and collects their reports.
    async fn refresh_workers(
        vars: &[(&'static str, String)],
        count: usize,
        tasks: u64,
    ) -> Vec<Report> {
        let mut vars = vars.to_vec();
        vars.push((TASKS, tasks.to_string()));
        vars.push((LEASE_TTL_MS, LEASE_TTL.as_millis().to_string()));
        let mut workers: Vec<Worker> = (0..count).map(|_| spawn_worker("refresh", &vars)).collect();
        let mut reports = Vec::new();
        for worker in &mut workers {
            reports.push(report(worker).await);
        }
        for worker in workers {
            worker.succeed().await;
        }
        reports
    }

    /// Every task of every report got the same token; returns it.
    fn one_token_for_all(reports: &[Report], tasks_each: u64) -> String {
        let mut all: BTreeMap<String, u64> = BTreeMap::new();
        for report in reports {
            assert!(report.errors.is_empty(), "errors: {:?}", report.errors);
            assert_eq!(report.reauthorization_required, 0);
            assert_eq!(report.tokens.values().sum::<u64>(), tasks_each);
            for (token, n) in &report.tokens {
                *all.entry(token.clone()).or_default() += n;
            }
        }
        assert_eq!(all.len(), 1, "the processes were served different tokens");
        all.into_keys().next().unwrap()
    }

    async fn one_refresh_across_processes(topo: Topo) {
        let setup = refresh_setup(topo).await;
        let reports = refresh_workers(&setup.vars, 4, 250).await;
        let token = one_token_for_all(&reports, 250);
        assert_eq!(
            setup.emulator.count(JoinMeEndpoint::Token),
            1,
            "4 processes × 250 tasks made more than one token-endpoint call"
        );
        let stored = setup.store.get(&setup.key).await.unwrap().unwrap();
        assert_eq!(stored.value.access_token.expose_secret(), token);
        assert!(!stored.value.is_expired(SystemTime::now()));
    }

    async fn holder_killed_before_its_request(topo: Topo) {
        let setup = refresh_setup(topo).await;
        let mut vars = setup.vars.clone();
        vars.push((HANG, "before-request".to_owned()));
        vars.push((TASKS, "10".to_owned()));
        vars.push((LEASE_TTL_MS, SHORT_LEASE_TTL.as_millis().to_string()));
        let mut victim = spawn_worker("refresh", &vars);
        victim.line_starting("HANGING before-request").await;
        victim.kill().await;
        assert_eq!(setup.emulator.count(JoinMeEndpoint::Token), 0);

        // The others wait for the dead holder's lease to expire, then one refreshes.
        let reports = refresh_workers(&setup.vars, 3, 50).await;
        let token = one_token_for_all(&reports, 50);
        assert_eq!(setup.emulator.count(JoinMeEndpoint::Token), 1);
        let stored = setup.store.get(&setup.key).await.unwrap().unwrap();
        assert_eq!(stored.value.access_token.expose_secret(), token);
    }

    async fn holder_killed_after_rotation(topo: Topo) {
        let setup = refresh_setup(topo).await;
        let mut vars = setup.vars.clone();
        vars.push((HANG, "after-response".to_owned()));
        vars.push((TASKS, "10".to_owned()));
        vars.push((LEASE_TTL_MS, SHORT_LEASE_TTL.as_millis().to_string()));
        let mut victim = spawn_worker("refresh", &vars);
        victim.line_starting("HANGING after-response").await;
        // The emulator rotated the refresh token; the new pair dies with the victim.
        victim.kill().await;
        assert_eq!(setup.emulator.count(JoinMeEndpoint::Token), 1);

        let reports = refresh_workers(&setup.vars, 3, 50).await;
        for report in &reports {
            assert!(report.errors.is_empty(), "errors: {:?}", report.errors);
            assert!(
                report.tokens.is_empty(),
                "an expired or unknown token was served: {:?}",
                report.tokens
            );
            assert_eq!(report.reauthorization_required, 50);
        }
        assert_eq!(
            setup.emulator.count(JoinMeEndpoint::Token),
            2,
            "one refused refresh, then no more calls"
        );
        assert!(
            setup.store.get(&setup.key).await.unwrap().is_none(),
            "the dead grant was deleted"
        );
    }
}
