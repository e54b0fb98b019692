//! `AuthServer`: the test authorization server as a child process, behind its proxy.

use super::browser;
use super::install::{self, last_lines};
use super::proxy::FaultProxy;
use super::{AuthServerError, TestClient};
use crate::StandardProviderBuilder;
use grantkit_conformance::Decision;
use grantkit_core::{AccessToken, ClientSecret};
use rand::RngCore as _;
use serde::Deserialize;
use std::collections::VecDeque;
use std::io::{BufRead as _, BufReader, Read};
use std::net::{Ipv4Addr, SocketAddr};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;
use tokio::net::TcpListener;
use url::Url;

/// How long the server may take to print its ready line.
const START_TIMEOUT: Duration = Duration::from_secs(30);
/// The environment variable that hands the launcher its control key.
const CONTROL_KEY_ENV: &str = "GRANTKIT_AUTHSERVER_CONTROL_KEY";
/// Lines of the server's stderr kept for error messages.
const LOG_LINES: usize = 200;

/// How to run the test server.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct AuthServerOptions {
    /// Every refresh rotates the refresh token, and reusing a rotated one revokes the whole
    /// grant (the server's reuse detection). Default: on.
    pub rotate_refresh_tokens: bool,
    /// Access-token lifetime, whole seconds (default 300 s).
    pub access_token_ttl: Duration,
    /// Refresh-token lifetime, whole seconds (default one day).
    pub refresh_token_ttl: Duration,
    /// How long the proxy's slow fault holds a request before dropping it unanswered: more
    /// than the provider's timeout (default 5 s).
    pub slow_delay: Duration,
}

impl Default for AuthServerOptions {
    fn default() -> Self {
        Self {
            rotate_refresh_tokens: true,
            access_token_ttl: Duration::from_secs(300),
            refresh_token_ttl: Duration::from_secs(86_400),
            slow_delay: Duration::from_secs(5),
        }
    }
}

impl AuthServerOptions {
    /// Sets `rotate_refresh_tokens`.
    pub fn with_rotation(mut self, rotate: bool) -> Self {
        self.rotate_refresh_tokens = rotate;
        self
    }
    /// Sets `access_token_ttl` (at least one second).
    pub fn with_access_token_ttl(mut self, ttl: Duration) -> Self {
        self.access_token_ttl = ttl;
        self
    }
    /// Sets `refresh_token_ttl` (at least one second).
    pub fn with_refresh_token_ttl(mut self, ttl: Duration) -> Self {
        self.refresh_token_ttl = ttl;
        self
    }
    /// Sets `slow_delay`.
    pub fn with_slow_delay(mut self, delay: Duration) -> Self {
        self.slow_delay = delay;
        self
    }
}

/// The launcher's ready line.
#[derive(Deserialize)]
struct Ready {
    issuer: String,
    port: u16,
}

/// A running test server: `oidc-provider` in a `node` child process on a free loopback
/// port, reached through a [`FaultProxy`] whose address is the issuer clients see.
/// Dropping it (or [`stop`](Self::stop)) kills the process; if the test process dies
/// instead, the server exits when its stdin pipe closes.
pub struct AuthServer {
    child: Child,
    // Held open: the launcher's lifeline.
    _stdin: Option<ChildStdin>,
    issuer: String,
    issuer_url: Url,
    proxy: FaultProxy,
    control_key: String,
    log: Arc<Mutex<VecDeque<String>>>,
    options: AuthServerOptions,
}

impl std::fmt::Debug for AuthServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthServer")
            .field("pid", &self.child.id())
            .field("issuer", &self.issuer)
            .field("proxy", &self.proxy.addr())
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

impl Drop for AuthServer {
    fn drop(&mut self) {
        // The process is ours and holds nothing worth a graceful stop.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl AuthServer {
    /// Installs the server if needed (see [`ensure_installed`](super::ensure_installed)),
    /// starts it with the fixed test clients and headless consent, and waits for its ready
    /// line.
    pub async fn start(options: AuthServerOptions) -> Result<Self, AuthServerError> {
        for (name, ttl) in [
            ("access_token_ttl", options.access_token_ttl),
            ("refresh_token_ttl", options.refresh_token_ttl),
        ] {
            if ttl.as_secs() == 0 {
                return Err(AuthServerError::Start(format!(
                    "{name} must be at least one second"
                )));
            }
        }
        let dir = tokio::task::spawn_blocking(install::ensure_installed)
            .await
            .map_err(|err| AuthServerError::Install(format!("the install task failed: {err}")))??;

        // The proxy's port comes first: it is the issuer the server must name.
        let listener = TcpListener::bind(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)))
            .await
            .map_err(|err| AuthServerError::Start(format!("no free loopback port: {err}")))?;
        let public = listener
            .local_addr()
            .map_err(|err| AuthServerError::Start(err.to_string()))?;
        let issuer = format!("http://127.0.0.1:{}", public.port());
        let issuer_url =
            Url::parse(&issuer).map_err(|err| AuthServerError::Start(err.to_string()))?;
        let proxy = FaultProxy::start(listener, options.slow_delay)
            .map_err(|err| AuthServerError::Start(err.to_string()))?;
        let mut key = [0u8; 24];
        rand::rng().fill_bytes(&mut key);
        let control_key: String = key.iter().map(|b| format!("{b:02x}")).collect();

        let mut command = Command::new("node");
        command
            .arg("authserver.mjs")
            .args(["--port", "0", "--issuer", &issuer, "--stdin-lifeline"])
            .arg("--access-token-ttl")
            .arg(options.access_token_ttl.as_secs().to_string())
            .arg("--refresh-token-ttl")
            .arg(options.refresh_token_ttl.as_secs().to_string())
            .current_dir(&dir)
            .env(CONTROL_KEY_ENV, &control_key)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        if options.rotate_refresh_tokens {
            command.arg("--rotate");
        }
        let mut child = command.spawn().map_err(|err| match err.kind() {
            std::io::ErrorKind::NotFound => AuthServerError::NodeMissing,
            _ => AuthServerError::Start(format!("cannot run node: {err}")),
        })?;
        let stdin = child.stdin.take();
        let log = Arc::new(Mutex::new(VecDeque::new()));
        let stderr_reader = child.stderr.take().map(|stderr| {
            let log = log.clone();
            std::thread::spawn(move || collect_log(stderr, &log))
        });
        let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
        if let Some(stdout) = child.stdout.take() {
            std::thread::spawn(move || {
                let mut lines = BufReader::new(stdout).lines();
                let _ = ready_tx.send(lines.next().and_then(Result::ok));
                // Anything after the ready line is drained so the server never blocks.
                for _ in lines {}
            });
        }

        let mut server = Self {
            child,
            _stdin: stdin,
            issuer: issuer.clone(),
            issuer_url,
            proxy,
            control_key,
            log: log.clone(),
            options: options.clone(),
        };
        let line = match tokio::time::timeout(START_TIMEOUT, ready_rx).await {
            Ok(Ok(Some(line))) => line,
            Ok(_) => {
                // Exited before the ready line: wait for its last words.
                let status = server
                    .child
                    .wait()
                    .map(|s| s.to_string())
                    .unwrap_or_default();
                if let Some(reader) = stderr_reader {
                    let _ = reader.join();
                }
                return Err(AuthServerError::Start(format!(
                    "the server exited ({status}) before it was ready:\n{}",
                    server.log_tail(20)
                )));
            }
            Err(_) => {
                return Err(AuthServerError::Start(format!(
                    "no ready line within {}s:\n{}",
                    START_TIMEOUT.as_secs(),
                    server.log_tail(20)
                )));
            }
        };
        let ready: Ready = serde_json::from_str(&line).map_err(|_| {
            AuthServerError::Start(format!(
                "an unexpected first line on stdout: {}",
                line.chars().take(200).collect::<String>()
            ))
        })?;
        if ready.issuer != issuer {
            return Err(AuthServerError::Start(format!(
                "the server says its issuer is {}, not {issuer}",
                ready.issuer
            )));
        }
        // The proxy forwards to the port the server found.
        server
            .proxy
            .set_upstream(SocketAddr::from((Ipv4Addr::LOCALHOST, ready.port)));
        Ok(server)
    }

    /// The issuer identifier clients use: the proxy's address.
    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// The proxy in front of the server: token-request counter and log, faults, pairing.
    pub fn proxy(&self) -> &FaultProxy {
        &self.proxy
    }

    /// The options the server runs with.
    pub fn options(&self) -> &AuthServerOptions {
        &self.options
    }

    /// A provider builder for `client` against this server, discovering it from its issuer.
    pub fn provider(&self, client: &TestClient) -> StandardProviderBuilder {
        crate::StandardProvider::builder(client.id, ClientSecret::new(client.secret))
            .issuer(self.issuer.clone())
    }

    /// Plays the test user's browser: opens `authorization_url`, answers `decision`, and
    /// returns the URL of the redirect back to the client (not opened).
    pub async fn authorize(
        &self,
        authorization_url: &str,
        decision: Decision,
    ) -> Result<String, AuthServerError> {
        browser::authorize(&self.issuer_url, authorization_url, decision, false)
            .await
            .map_err(AuthServerError::Browser)
    }

    /// As [`authorize`](Self::authorize), and then opens the redirect back to the client,
    /// as a browser would: for a loopback listener waiting for it.
    pub async fn authorize_and_deliver(
        &self,
        authorization_url: &str,
        decision: Decision,
    ) -> Result<String, AuthServerError> {
        browser::authorize(&self.issuer_url, authorization_url, decision, true)
            .await
            .map_err(AuthServerError::Browser)
    }

    /// Plays the user on another device (RFC 8628): opens `verification_uri_complete`,
    /// confirms the code and answers `decision` on the consent step.
    pub async fn approve_device(
        &self,
        verification_uri_complete: &str,
        decision: Decision,
    ) -> Result<(), AuthServerError> {
        browser::approve_device(&self.issuer_url, verification_uri_complete, decision)
            .await
            .map_err(AuthServerError::Browser)
    }

    /// Makes the server refuse `token` as it refuses an expired one; the grant and its
    /// refresh token live on.
    pub async fn expire_access_token(&self, token: &AccessToken) -> Result<(), AuthServerError> {
        let response = reqwest::Client::new()
            .post(format!(
                "{}/grantkit/control/expire-access-token",
                self.issuer
            ))
            .header("x-grantkit-control", &self.control_key)
            .form(&[("token", token.expose_secret())])
            .timeout(Duration::from_secs(10))
            .send()
            .await
            .map_err(|err| {
                AuthServerError::Control(format!(
                    "the control request failed: {}",
                    err.without_url()
                ))
            })?;
        match response.status().as_u16() {
            204 => Ok(()),
            404 => Err(AuthServerError::Control(
                "the server holds no such access token".to_owned(),
            )),
            status => Err(AuthServerError::Control(format!(
                "the control endpoint answered HTTP {status}"
            ))),
        }
    }

    /// The last `lines` lines the server wrote to stderr (its notices and the reasons
    /// behind its error answers).
    pub fn log_tail(&self, lines: usize) -> String {
        let log = self.log.lock().unwrap_or_else(PoisonError::into_inner);
        let text: Vec<&str> = log.iter().map(String::as_str).collect();
        last_lines(&text.join("\n"), lines)
    }

    /// Stops the server.
    pub fn stop(self) {}
}

fn collect_log(stderr: impl Read, log: &Mutex<VecDeque<String>>) {
    for line in BufReader::new(stderr).lines() {
        let Ok(line) = line else { break };
        let mut log = log.lock().unwrap_or_else(PoisonError::into_inner);
        if log.len() == LOG_LINES {
            log.pop_front();
        }
        log.push_back(line);
    }
}
