//! The Joind.in emulator: API v2.1 and the legacy `oauth_allow` page, per
//! `specs/joindin.md`.

mod api;
mod model;
mod php;
mod web;

use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use http::Method;

pub use model::{
    CommentRateLimit, JoindinClient, JoindinEvent, JoindinFixtures, JoindinTalk, JoindinUser,
};

use self::model::Db;
use crate::AutoConsent;
use crate::clock::EmulatorClock;
use crate::control::control_api;
use crate::faults::Fault;
use crate::server::{self, App, AppRequest, ServerHandle, ServerShared};
use crate::wire::{self, HttpResponse};

/// The documented quirks of Joind.in, each a switch (defaults as in the spec's checklist).
///
/// Change them at start with [`JoindinBuilder::with_quirks`] or at run time with
/// [`JoindinEmulator::update_quirks`].
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct JoindinQuirks {
    /// `mode=development`: honour `Authorization` over plain HTTP (on). Off is production:
    /// the header is ignored unless [`server_sees_https`](Self::server_sees_https).
    pub development_mode: bool,
    /// Behave as if the request arrived over HTTPS (off): links use `https://` and the
    /// `Authorization` header is honoured even outside development mode.
    pub server_sees_https: bool,
    /// An unknown token identifies "user 0" (off): the HEAD behaviour of spec §2.3.
    pub unknown_token_is_user_zero: bool,
    /// An unverified user's sign-in fails with 403 instead of 401 (off; pre-2017 servers).
    pub unverified_is_403: bool,
    /// Consumers whose idle tokens `POST /token` deletes (`["web2"]`).
    pub expirable_client_ids: Vec<String>,
    /// Issue all-digit tokens (off), which numeric coercion turns into JSON numbers. Off,
    /// no token that coercion would turn into a number is issued (on the real service about
    /// one in two thousand is), so both positions are repeatable.
    pub numeric_tokens: bool,
    /// `JsonView::numericCheck` (on): numeric-looking values become JSON numbers. Off sends
    /// database columns as the strings PDO returns.
    pub numeric_coercion: bool,
    /// The talk-comment rate limit (30 per hour); `None` disables it.
    pub comment_rate_limit: Option<CommentRateLimit>,
    /// Akismet spam check (off): comments containing `viagra-test-123` fail it.
    pub spam_check: bool,
    /// A missing user is 200 `{"users":[]}` instead of 404 (off).
    pub missing_user_empty_list: bool,
    /// A `callback` parameter wraps the body as JSONP (on).
    pub jsonp: bool,
    /// Match tokens, client credentials and usernames case-insensitively (off).
    pub case_insensitive_credentials: bool,
    /// Serve the legacy `/user/oauth_allow` page (on); off, every `/user/*` page is 404.
    pub legacy_oauth_allow: bool,
}

impl Default for JoindinQuirks {
    fn default() -> Self {
        Self {
            development_mode: true,
            server_sees_https: false,
            unknown_token_is_user_zero: false,
            unverified_is_403: false,
            expirable_client_ids: vec!["web2".into()],
            numeric_tokens: false,
            numeric_coercion: true,
            comment_rate_limit: Some(CommentRateLimit::default()),
            spam_check: false,
            missing_user_empty_list: false,
            jsonp: true,
            case_insensitive_credentials: false,
            legacy_oauth_allow: true,
        }
    }
}

/// What a Joind.in request is, for counters, the log and fault targeting.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum JoindinEndpoint {
    /// `/v2.1/token` and everything under it (password grant, token list, revoke).
    Token,
    /// Every other API path (including the root document and unknown paths).
    Api,
    /// The legacy `/user/oauth_allow` page.
    OAuthAllow,
    /// The legacy `/user/login` page.
    Login,
    /// Any other legacy web page.
    Web,
}

pub(crate) struct JoindinState {
    pub(crate) db: Db,
    pub(crate) quirks: JoindinQuirks,
    pub(crate) auto_consent: Option<AutoConsent>,
    pub(crate) website_url: String,
}

impl std::fmt::Debug for JoindinState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The database holds passwords and tokens: never print it.
        f.debug_struct("JoindinState")
            .field("quirks", &self.quirks)
            .finish_non_exhaustive()
    }
}

#[derive(Debug)]
pub(crate) struct JoindinApp {
    shared: ServerShared<JoindinEndpoint>,
    state: Mutex<JoindinState>,
    /// `Host` used for links when a request has none.
    fallback_host: String,
}

impl JoindinApp {
    fn lock(&self) -> MutexGuard<'_, JoindinState> {
        // Handlers never leave the state half-updated across a panic point that matters
        // more than keeping the emulator answering.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl App for JoindinApp {
    type Endpoint = JoindinEndpoint;
    const PROVIDER: &'static str = "joindin";

    fn classify(&self, _method: &Method, path: &str) -> JoindinEndpoint {
        let path = path.trim_end_matches('/');
        if path == "/user/oauth_allow" {
            JoindinEndpoint::OAuthAllow
        } else if path == "/user/login" {
            JoindinEndpoint::Login
        } else if path.starts_with("/user/") {
            JoindinEndpoint::Web
        } else if path == "/v2.1/token" || path.starts_with("/v2.1/token/") {
            JoindinEndpoint::Token
        } else {
            JoindinEndpoint::Api
        }
    }

    fn handle(&self, request: &AppRequest) -> HttpResponse {
        let now = self.shared.clock.unix_seconds();
        let mut state = self.lock();
        if request.path.starts_with("/user/") {
            web::handle(&mut state, request, now, &self.fallback_host)
        } else {
            api::handle(&mut state, request, now, &self.fallback_host)
        }
    }

    fn fault_response(&self, _endpoint: JoindinEndpoint, fault: &Fault) -> HttpResponse {
        let quirks = self.lock().quirks.clone();
        match fault {
            Fault::ServerError { status } => wire::server_error_page(*status, &[]),
            Fault::ServiceUnavailable { retry_after_s } => {
                wire::server_error_page(503, &[("retry-after", retry_after_s.to_string())])
            }
            Fault::BackendError => api::database_error(&quirks),
            Fault::TooManyRequests { retry_after_s } => api::rate_limited(&quirks, *retry_after_s),
            Fault::MasheryOverQps { retry_after_s } => wire::mashery_over_qps(403, *retry_after_s),
            Fault::MalformedJson => wire::malformed_json(api::CONTENT_TYPE),
            Fault::TruncatedBody => wire::truncated_body(api::CONTENT_TYPE),
            Fault::OversizedBody => wire::oversized_body(api::CONTENT_TYPE),
            // Handled by the server before a response is built.
            Fault::Latency(_) | Fault::ConnectionReset => wire::server_error_page(500, &[]),
        }
    }

    fn shared(&self) -> &ServerShared<JoindinEndpoint> {
        &self.shared
    }
}

/// Configures and starts a [`JoindinEmulator`].
#[derive(Debug, Clone)]
pub struct JoindinBuilder {
    bind: SocketAddr,
    quirks: JoindinQuirks,
    seed: bool,
    clock: Option<EmulatorClock>,
    auto_consent: Option<AutoConsent>,
    website_url: String,
    fixtures: JoindinFixtures,
}

impl Default for JoindinBuilder {
    fn default() -> Self {
        Self {
            bind: SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
            quirks: JoindinQuirks::default(),
            seed: true,
            clock: None,
            auto_consent: None,
            website_url: "https://joind.in".into(),
            fixtures: JoindinFixtures::default(),
        }
    }
}

impl JoindinBuilder {
    /// Listen on `127.0.0.1:port` (0, the default, picks a free port).
    pub fn port(mut self, port: u16) -> Self {
        self.bind = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
        self
    }

    /// Listen on `addr`.
    pub fn bind(mut self, addr: SocketAddr) -> Self {
        self.bind = addr;
        self
    }

    /// Replaces all quirk switches.
    pub fn quirks(mut self, quirks: JoindinQuirks) -> Self {
        self.quirks = quirks;
        self
    }

    /// Changes some quirk switches.
    pub fn with_quirks(mut self, change: impl FnOnce(&mut JoindinQuirks)) -> Self {
        change(&mut self.quirks);
        self
    }

    /// Start empty: no clients, users, events or talks.
    pub fn without_seed(mut self) -> Self {
        self.seed = false;
        self
    }

    /// Share `clock` with the emulator (by default it gets its own).
    pub fn clock(mut self, clock: EmulatorClock) -> Self {
        self.clock = Some(clock);
        self
    }

    /// Make `oauth_allow` approve or deny at once (see [`AutoConsent`]).
    pub fn auto_consent(mut self, consent: AutoConsent) -> Self {
        self.auto_consent = Some(consent);
        self
    }

    /// The web site base used in `website_uri` links (`https://joind.in`).
    pub fn website_url(mut self, url: impl Into<String>) -> Self {
        self.website_url = url.into();
        self
    }

    /// Starts the emulator on its own thread.
    pub fn start(self) -> io::Result<JoindinEmulator> {
        let listener = server::bind(self.bind)?;
        let local = listener.local_addr()?;
        let mut db = Db::new();
        if self.seed {
            model::seed(&mut db, &self.fixtures);
        }
        let app = Arc::new(JoindinApp {
            shared: ServerShared::new(self.clock.unwrap_or_default()),
            state: Mutex::new(JoindinState {
                db,
                quirks: self.quirks,
                auto_consent: self.auto_consent,
                website_url: self.website_url,
            }),
            fallback_host: local.to_string(),
        });
        let server = server::spawn(app.clone(), listener)?;
        Ok(JoindinEmulator {
            server,
            app,
            fixtures: self.fixtures,
        })
    }
}

/// A running Joind.in emulator on loopback.
///
/// ```no_run
/// # fn main() -> std::io::Result<()> {
/// use grantkit_emulator::JoindinEmulator;
/// let joindin = JoindinEmulator::builder().with_quirks(|q| q.development_mode = true).start()?;
/// let token_url = joindin.token_url(); // POST the password grant here
/// # let _ = token_url;
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct JoindinEmulator {
    server: ServerHandle,
    app: Arc<JoindinApp>,
    fixtures: JoindinFixtures,
}

control_api!(JoindinEmulator, JoindinEndpoint);

impl JoindinEmulator {
    /// A builder with the checklist's defaults and seed data.
    pub fn builder() -> JoindinBuilder {
        JoindinBuilder::default()
    }

    /// Starts an emulator with the defaults on a free port.
    pub fn start() -> io::Result<Self> {
        JoindinBuilder::default().start()
    }

    /// `<base>/v2.1`.
    pub fn api_base(&self) -> String {
        format!("{}/v2.1", self.base_url())
    }

    /// `<base>/v2.1/token`: the password grant, token list and revoke.
    pub fn token_url(&self) -> String {
        format!("{}/v2.1/token", self.base_url())
    }

    /// `<base>/user/oauth_allow`: the legacy browser flow.
    pub fn authorize_url(&self) -> String {
        format!("{}/user/oauth_allow", self.base_url())
    }

    /// `<base>/user/login`: the legacy login form.
    pub fn login_url(&self) -> String {
        format!("{}/user/login", self.base_url())
    }

    /// Credentials of the seeded clients and users.
    pub fn fixtures(&self) -> &JoindinFixtures {
        &self.fixtures
    }

    /// The current quirk switches.
    pub fn quirks(&self) -> JoindinQuirks {
        self.app.lock().quirks.clone()
    }

    /// Replaces all quirk switches; takes effect from the next request.
    pub fn set_quirks(&self, quirks: JoindinQuirks) {
        self.app.lock().quirks = quirks;
    }

    /// Changes some quirk switches; takes effect from the next request.
    pub fn update_quirks(&self, change: impl FnOnce(&mut JoindinQuirks)) {
        change(&mut self.app.lock().quirks);
    }

    /// Sets or clears the `oauth_allow` auto-consent.
    pub fn set_auto_consent(&self, consent: Option<AutoConsent>) {
        self.app.lock().auto_consent = consent;
    }

    /// Registers a client (replacing one with the same key).
    pub fn add_client(&self, client: JoindinClient) {
        self.app.lock().db.add_client(client);
    }

    /// Removes a client; its tokens keep working, as on the real service.
    pub fn remove_client(&self, consumer_key: &str) -> bool {
        let mut state = self.app.lock();
        let before = state.db.clients.len();
        state.db.clients.retain(|c| c.consumer_key != consumer_key);
        state.db.clients.len() != before
    }

    /// Adds a user and returns its id.
    pub fn add_user(&self, user: JoindinUser) -> u64 {
        self.app.lock().db.add_user(user)
    }

    /// Changes a user's password; existing tokens keep working.
    pub fn set_password(&self, username: &str, password: &str) -> bool {
        let mut state = self.app.lock();
        match state
            .db
            .users
            .iter_mut()
            .find(|u| u.user.username == username)
        {
            Some(row) => {
                row.user.password = password.to_owned();
                true
            }
            None => false,
        }
    }

    /// Adds an event and returns its id.
    pub fn add_event(&self, event: JoindinEvent) -> u64 {
        self.app.lock().db.add_event(event)
    }

    /// Adds a talk and returns its id.
    pub fn add_talk(&self, talk: JoindinTalk) -> u64 {
        self.app.lock().db.add_talk(talk)
    }

    /// Issues a token for `username` through `consumer_key`, as a successful sign-in would
    /// (test hook). `None` when the user or client is unknown.
    pub fn issue_token(&self, username: &str, consumer_key: &str) -> Option<String> {
        let now = self.clock().unix_seconds();
        let mut state = self.app.lock();
        let user_id = state.db.user_id_by_name(username)?;
        state.db.client(consumer_key)?;
        let quirks = state.quirks.clone();
        Some(api::insert_token(
            &mut state.db,
            &quirks,
            consumer_key,
            user_id,
            now,
        ))
    }

    /// Deletes a token, as a revoke or the idle cleanup would (test hook).
    pub fn revoke_token(&self, token: &str) -> bool {
        let mut state = self.app.lock();
        let before = state.db.tokens.len();
        state.db.tokens.retain(|t| t.token != token);
        state.db.tokens.len() != before
    }

    /// Whether `token` exists.
    pub fn token_exists(&self, token: &str) -> bool {
        self.app.lock().db.tokens.iter().any(|t| t.token == token)
    }

    /// Number of tokens held for `username`.
    pub fn token_count(&self, username: &str) -> usize {
        let state = self.app.lock();
        let Some(user_id) = state.db.user_id_by_name(username) else {
            return 0;
        };
        state
            .db
            .tokens
            .iter()
            .filter(|t| t.user_id == user_id)
            .count()
    }

    /// Number of talk comments stored (all talks).
    pub fn comment_count(&self) -> usize {
        self.app.lock().db.comments.len()
    }

    /// Logs `username` in on the legacy site and returns a `Cookie` header value for that
    /// session (test hook for driving `oauth_allow` without the login form).
    pub fn login_cookie(&self, username: &str) -> Option<String> {
        let mut state = self.app.lock();
        let user_id = state.db.user_id_by_name(username)?;
        let sid = web::login_session(&mut state, user_id);
        Some(format!("ci_session={sid}"))
    }
}
