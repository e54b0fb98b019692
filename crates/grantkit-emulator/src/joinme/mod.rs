//! The join.me emulator: the OAuth 2.0 server under `/api/public/v1/auth/*` and the REST
//! API under `/v1/*` behind an emulated Mashery gateway, per `specs/joinme.md`.

mod api;
mod model;
mod oauth;

use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use http::Method;

pub use model::{
    IssuedTokens, JoinMeApp, JoinMeConference, JoinMeFixtures, JoinMeGrant, JoinMePlan, JoinMeUser,
    TokenStatus,
};

use self::model::Db;
use crate::AutoConsent;
use crate::clock::EmulatorClock;
use crate::control::control_api;
use crate::faults::Fault;
use crate::server::{self, App, AppRequest, ServerHandle, ServerShared};
use crate::wire::{self, HttpResponse};

/// Path of the authorize endpoint.
pub(crate) const AUTHORIZE_PATH: &str = "/api/public/v1/auth/oauth2";
/// Path of the token endpoint.
pub(crate) const TOKEN_PATH: &str = "/api/public/v1/auth/token";
/// Path of renew authorization.
pub(crate) const RENEW_PATH: &str = "/api/public/v1/auth/renewauthorization";
/// Path of the token-info endpoint.
pub(crate) const TOKENINFO_PATH: &str = "/api/public/v1/auth/tokenInfo";
/// Path of the presenter link page.
pub(crate) const START_MEETING_PATH: &str = "/API/Public/StartMeeting.aspx";

/// How Mashery's "Developer Inactive" 403 body looks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum InactiveBody {
    /// `<h1>Developer Inactive</h1>` with `Content-Type: text/xml` (Mashery's default).
    Html,
    /// `{"message": "Developer Inactive", "code": "invalid_token"}` (LogMeIn's stub).
    Json,
}

/// Mashery throttling per API key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct JoinMeRateLimit {
    /// Requests allowed per emulator-clock second.
    pub qps: u32,
    /// Requests allowed per quota period.
    pub quota: u32,
    /// Length of the quota period (e.g. a day).
    pub quota_period: Duration,
}

/// The documented quirks and unknowns of join.me, each a switch (defaults as in the spec's
/// checklist; where the spec says "unknown", the default is its stated guess and the other
/// position is available).
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct JoinMeQuirks {
    /// Access-token lifetime before `stale_token` (`access_ttl_s`, 24 h).
    pub access_ttl: Duration,
    /// Status of the authorize error page (500).
    pub authorize_error_status: u16,
    /// Send `X-Frame-Options: DENY` on the consent page (off).
    pub x_frame_options: bool,
    /// `error` value sent to the callback when the user declines (`access_denied`).
    pub deny_error: String,
    /// Implicit fragment adds `token_type=bearer&expires_in=<ttl>` (on).
    pub implicit_fragment_extras: bool,
    /// Authorization-code lifetime (`code_ttl_s`, 60 s).
    pub code_ttl: Duration,
    /// Accept a `redirect_uri` differing only in letter case or a trailing slash (off:
    /// byte-exact).
    pub lenient_redirect_uri: bool,
    /// `expires_in` in token responses (`None`: omitted; `Some(86400)`).
    pub token_expires_in: Option<u64>,
    /// `token_type: "bearer"` in token responses (off: omitted).
    pub token_type_field: bool,
    /// `scope` in token responses (off: omitted).
    pub token_scope_field: bool,
    /// Status of `invalid_client` (401; 400 is the other common choice).
    pub invalid_client_status: u16,
    /// A refresh returns a new refresh token and retires the old one (off).
    pub refresh_rotation: bool,
    /// A refresh revokes the access tokens issued earlier under that refresh token (off).
    pub revoke_old_on_refresh: bool,
    /// Refresh-token lifetime (`None`: unlimited).
    pub refresh_ttl: Option<Duration>,
    /// Path of Expire Access (`/api/public/v1/auth/expireaccess`).
    pub expire_access_path: String,
    /// Delay before Expire Access takes effect (0; the real service took up to 600 s).
    pub expire_access_delay: Duration,
    /// Expire Access answers `"success": "true"` (a string) instead of `true` (off).
    pub success_as_string: bool,
    /// Serve `renewauthorization` (off). join.me's documentation says an expired implicit
    /// token "cannot be refreshed … you will need to send the user into the initial OAuth
    /// 2.0 workflow again"; only LogMeIn's sample code (spec §4.5) shows a renew page. Off,
    /// the path answers the authorize error page and no token is revived.
    pub renew_authorization: bool,
    /// Value of `isAuthorizationRenewed` after renew (`true`).
    pub renew_flag_value: String,
    /// With `renew_authorization`: renew also revives tokens expired through Expire Access
    /// (on).
    pub renew_revives_expired: bool,
    /// Serve `GET /api/public/v1/auth/tokenInfo` (off).
    pub tokeninfo_endpoint: bool,
    /// Body of the 403 for unknown or revoked tokens (HTML).
    pub inactive_body: InactiveBody,
    /// Status for a token lacking the needed scope (403).
    pub insufficient_scope_status: u16,
    /// Status of `GET /v1/user` (200; the documentation says 201).
    pub user_get_status: u16,
    /// Accept only JSON booleans, not `"true"`/`"false"` (off).
    pub strict_booleans: bool,
    /// Status of `POST /v1/meetings` (201).
    pub schedule_status: u16,
    /// `DELETE /v1/meetings/{id}` answers 200 `{}` instead of 204 (off).
    pub delete_returns_empty_object: bool,
    /// Mashery throttling (off).
    pub rate_limit: Option<JoinMeRateLimit>,
    /// Status of throttled requests (403, Mashery's default; some tenants use 429).
    pub throttle_status: u16,
    /// With `rate_limit`: every answer carries Mashery's `X-Plan-QPS-*` and
    /// `X-Plan-Quota-Allotted/Current/Reset` headers (off).
    pub plan_headers: bool,
    /// Register the `webhooks` of a start-meeting call and answer `webhooksStatus`
    /// (`{"meeting.start": "registered"}`) (off: webhooks are ignored).
    pub webhooks: bool,
    /// Serve the Business presenters API, `/v1/presenters` (off: 404 as any unknown path).
    pub presenters_api: bool,
}

impl Default for JoinMeQuirks {
    fn default() -> Self {
        Self {
            access_ttl: Duration::from_secs(86_400),
            authorize_error_status: 500,
            x_frame_options: false,
            deny_error: "access_denied".into(),
            implicit_fragment_extras: true,
            code_ttl: Duration::from_secs(60),
            lenient_redirect_uri: false,
            token_expires_in: None,
            token_type_field: false,
            token_scope_field: false,
            invalid_client_status: 401,
            refresh_rotation: false,
            revoke_old_on_refresh: false,
            refresh_ttl: None,
            expire_access_path: "/api/public/v1/auth/expireaccess".into(),
            expire_access_delay: Duration::ZERO,
            success_as_string: false,
            renew_authorization: false,
            renew_flag_value: "true".into(),
            renew_revives_expired: true,
            tokeninfo_endpoint: false,
            inactive_body: InactiveBody::Html,
            insufficient_scope_status: 403,
            user_get_status: 200,
            strict_booleans: false,
            schedule_status: 201,
            delete_returns_empty_object: false,
            rate_limit: None,
            throttle_status: 403,
            plan_headers: false,
            webhooks: false,
            presenters_api: false,
        }
    }
}

/// What a join.me request is, for counters, the log and fault targeting.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum JoinMeEndpoint {
    /// `GET`/`POST /api/public/v1/auth/oauth2`.
    Authorize,
    /// `POST /api/public/v1/auth/token`.
    Token,
    /// Expire Access.
    ExpireAccess,
    /// `GET /api/public/v1/auth/renewauthorization`.
    RenewAuthorization,
    /// `GET /api/public/v1/auth/tokenInfo`.
    TokenInfo,
    /// The REST API under `/v1/`.
    Api,
    /// The presenter link page.
    StartMeeting,
    /// Anything else.
    Other,
}

pub(crate) struct JoinMeState {
    pub(crate) db: Db,
    pub(crate) quirks: JoinMeQuirks,
    pub(crate) auto_consent: Option<AutoConsent>,
}

impl std::fmt::Debug for JoinMeState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The database holds secrets and tokens: never print it.
        f.debug_struct("JoinMeState")
            .field("quirks", &self.quirks)
            .finish_non_exhaustive()
    }
}

#[derive(Debug)]
pub(crate) struct JoinMeService {
    shared: ServerShared<JoinMeEndpoint>,
    state: Mutex<JoinMeState>,
    fallback_host: String,
}

impl JoinMeService {
    fn lock(&self) -> MutexGuard<'_, JoinMeState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// `http://<Host>` of a request, for links the emulator serves itself.
pub(crate) fn request_base(req: &AppRequest, fallback_host: &str) -> String {
    let host = wire::header_str(&req.headers, "host")
        .filter(|h| !h.is_empty())
        .unwrap_or(fallback_host);
    format!("http://{host}")
}

impl App for JoinMeService {
    type Endpoint = JoinMeEndpoint;
    const PROVIDER: &'static str = "joinme";

    fn classify(&self, _method: &Method, path: &str) -> JoinMeEndpoint {
        let expire_path = self.lock().quirks.expire_access_path.clone();
        match path {
            AUTHORIZE_PATH => JoinMeEndpoint::Authorize,
            TOKEN_PATH => JoinMeEndpoint::Token,
            RENEW_PATH => JoinMeEndpoint::RenewAuthorization,
            TOKENINFO_PATH => JoinMeEndpoint::TokenInfo,
            START_MEETING_PATH => JoinMeEndpoint::StartMeeting,
            p if p == expire_path => JoinMeEndpoint::ExpireAccess,
            p if p == "/v1" || p.starts_with("/v1/") => JoinMeEndpoint::Api,
            _ => JoinMeEndpoint::Other,
        }
    }

    fn handle(&self, request: &AppRequest) -> HttpResponse {
        let endpoint = self.classify(&request.method, &request.path);
        let now = self.shared.clock.unix_seconds();
        let base = request_base(request, &self.fallback_host);
        let mut state = self.lock();
        match endpoint {
            JoinMeEndpoint::Authorize => oauth::authorize(&mut state, request, now),
            JoinMeEndpoint::Token => oauth::token(&mut state, request, now),
            JoinMeEndpoint::ExpireAccess => oauth::expire_access(&mut state, request, now),
            JoinMeEndpoint::RenewAuthorization => oauth::renew(&mut state, request, now),
            JoinMeEndpoint::TokenInfo => oauth::token_info(&mut state, request, now),
            JoinMeEndpoint::StartMeeting => api::presenter_page(&mut state, request, now),
            JoinMeEndpoint::Api => api::handle(&mut state, request, now, &base),
            JoinMeEndpoint::Other => oauth::not_found(),
        }
    }

    fn fault_response(&self, endpoint: JoinMeEndpoint, fault: &Fault) -> HttpResponse {
        let throttle_status = self.lock().quirks.throttle_status;
        let json = "application/json; charset=utf-8";
        match fault {
            Fault::ServerError { status } if endpoint == JoinMeEndpoint::Api => {
                wire::server_error_page(*status, &api::mashery_error_headers(*status))
            }
            Fault::ServerError { status } => wire::server_error_page(*status, &[]),
            Fault::ServiceUnavailable { retry_after_s } => {
                let mut headers = if endpoint == JoinMeEndpoint::Api {
                    api::mashery_error_headers(503)
                } else {
                    Vec::new()
                };
                headers.push(("retry-after", retry_after_s.to_string()));
                wire::server_error_page(503, &headers)
            }
            Fault::BackendError if endpoint == JoinMeEndpoint::Api => api::backend_error(),
            Fault::BackendError => oauth::server_error(),
            Fault::TooManyRequests { retry_after_s } => wire::respond(
                429,
                Some("text/xml"),
                &[
                    ("server", "Mashery Proxy".into()),
                    ("retry-after", retry_after_s.to_string()),
                ],
                "<h1>Too Many Requests</h1>",
            ),
            Fault::MasheryOverQps { retry_after_s } => wire::mashery_over_qps(
                if throttle_status == 429 { 429 } else { 403 },
                *retry_after_s,
            ),
            Fault::MalformedJson => wire::malformed_json(json),
            Fault::TruncatedBody => wire::truncated_body(json),
            Fault::OversizedBody => wire::oversized_body(json),
            Fault::Latency(_) | Fault::ConnectionReset => wire::server_error_page(500, &[]),
        }
    }

    fn shared(&self) -> &ServerShared<JoinMeEndpoint> {
        &self.shared
    }
}

/// Configures and starts a [`JoinMeEmulator`].
#[derive(Debug, Clone)]
pub struct JoinMeBuilder {
    bind: SocketAddr,
    quirks: JoinMeQuirks,
    seed: bool,
    clock: Option<EmulatorClock>,
    auto_consent: Option<AutoConsent>,
    fixtures: JoinMeFixtures,
}

impl Default for JoinMeBuilder {
    fn default() -> Self {
        Self {
            bind: SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
            quirks: JoinMeQuirks::default(),
            seed: true,
            clock: None,
            auto_consent: None,
            fixtures: JoinMeFixtures::default(),
        }
    }
}

impl JoinMeBuilder {
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
    pub fn quirks(mut self, quirks: JoinMeQuirks) -> Self {
        self.quirks = quirks;
        self
    }

    /// Changes some quirk switches.
    pub fn with_quirks(mut self, change: impl FnOnce(&mut JoinMeQuirks)) -> Self {
        change(&mut self.quirks);
        self
    }

    /// Start empty: no applications or users.
    pub fn without_seed(mut self) -> Self {
        self.seed = false;
        self
    }

    /// Share `clock` with the emulator (by default it gets its own).
    pub fn clock(mut self, clock: EmulatorClock) -> Self {
        self.clock = Some(clock);
        self
    }

    /// Make the authorize page approve or deny at once (see [`AutoConsent`]).
    pub fn auto_consent(mut self, consent: AutoConsent) -> Self {
        self.auto_consent = Some(consent);
        self
    }

    /// Starts the emulator on its own thread.
    pub fn start(self) -> io::Result<JoinMeEmulator> {
        let listener = server::bind(self.bind)?;
        let local = listener.local_addr()?;
        let mut db = Db::new();
        if self.seed {
            model::seed(&mut db, &self.fixtures);
        }
        let app = Arc::new(JoinMeService {
            shared: ServerShared::new(self.clock.unwrap_or_default()),
            state: Mutex::new(JoinMeState {
                db,
                quirks: self.quirks,
                auto_consent: self.auto_consent,
            }),
            fallback_host: local.to_string(),
        });
        let server = server::spawn(app.clone(), listener)?;
        Ok(JoinMeEmulator {
            server,
            app,
            fixtures: self.fixtures,
        })
    }
}

/// A running join.me emulator on loopback: OAuth server and REST API on one port.
///
/// ```no_run
/// # fn main() -> std::io::Result<()> {
/// use grantkit_emulator::{AutoConsent, JoinMeEmulator};
/// let joinme = JoinMeEmulator::builder()
///     .auto_consent(AutoConsent::Approve("grantkit@example.com".into()))
///     .start()?;
/// let authorize = joinme.authorize_url();
/// # let _ = authorize;
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct JoinMeEmulator {
    server: ServerHandle,
    app: Arc<JoinMeService>,
    fixtures: JoinMeFixtures,
}

control_api!(JoinMeEmulator, JoinMeEndpoint);

impl JoinMeEmulator {
    /// A builder with the checklist's defaults and seed data.
    pub fn builder() -> JoinMeBuilder {
        JoinMeBuilder::default()
    }

    /// Starts an emulator with the defaults on a free port.
    pub fn start() -> io::Result<Self> {
        JoinMeBuilder::default().start()
    }

    /// `<base>/api/public/v1/auth/oauth2`.
    pub fn authorize_url(&self) -> String {
        format!("{}{AUTHORIZE_PATH}", self.base_url())
    }

    /// `<base>/api/public/v1/auth/token`.
    pub fn token_url(&self) -> String {
        format!("{}{TOKEN_PATH}", self.base_url())
    }

    /// Expire Access (path per the `expire_access_path` switch).
    pub fn expire_access_url(&self) -> String {
        format!(
            "{}{}",
            self.base_url(),
            self.app.lock().quirks.expire_access_path
        )
    }

    /// `<base>/api/public/v1/auth/renewauthorization`.
    pub fn renew_url(&self) -> String {
        format!("{}{RENEW_PATH}", self.base_url())
    }

    /// `<base>/api/public/v1/auth/tokenInfo` (served when `tokeninfo_endpoint` is on).
    pub fn tokeninfo_url(&self) -> String {
        format!("{}{TOKENINFO_PATH}", self.base_url())
    }

    /// `<base>/v1`: the REST API.
    pub fn api_base(&self) -> String {
        format!("{}/v1", self.base_url())
    }

    /// Credentials of the seeded applications and users.
    pub fn fixtures(&self) -> &JoinMeFixtures {
        &self.fixtures
    }

    /// The current quirk switches.
    pub fn quirks(&self) -> JoinMeQuirks {
        self.app.lock().quirks.clone()
    }

    /// Replaces all quirk switches; takes effect from the next request.
    pub fn set_quirks(&self, quirks: JoinMeQuirks) {
        self.app.lock().quirks = quirks;
    }

    /// Changes some quirk switches; takes effect from the next request.
    pub fn update_quirks(&self, change: impl FnOnce(&mut JoinMeQuirks)) {
        change(&mut self.app.lock().quirks);
    }

    /// Sets or clears the authorize page's auto-consent.
    pub fn set_auto_consent(&self, consent: Option<AutoConsent>) {
        self.app.lock().auto_consent = consent;
    }

    /// Registers an application (replacing one with the same key).
    pub fn add_app(&self, app: JoinMeApp) {
        self.app.lock().db.add_app(app);
    }

    /// Adds a user (replacing one with the same e-mail).
    pub fn add_user(&self, user: JoinMeUser) {
        self.app.lock().db.add_user(user);
    }

    /// Issues tokens as a completed authorization would (test hook). `None` when the
    /// application or user is unknown.
    pub fn issue_tokens(
        &self,
        email: &str,
        client_id: &str,
        scopes: &[&str],
        grant: JoinMeGrant,
    ) -> Option<IssuedTokens> {
        let now = self.clock().unix_seconds();
        let mut state = self.app.lock();
        state.db.app(client_id)?;
        let email = state.db.user(email)?.email.clone();
        let scopes: Vec<String> = scopes.iter().map(|s| (*s).to_owned()).collect();
        Some(oauth::issue(
            &mut state, client_id, &email, &scopes, grant, now,
        ))
    }

    /// Revokes an access token: the gateway then answers 403 "Developer Inactive".
    pub fn revoke_access_token(&self, access_token: &str) -> bool {
        match self.app.lock().db.access.get_mut(access_token) {
            Some(row) => {
                row.revoked = true;
                true
            }
            None => false,
        }
    }

    /// Revokes a refresh token: refreshing with it then fails.
    pub fn revoke_refresh_token(&self, refresh_token: &str) -> bool {
        match self.app.lock().db.refresh.get_mut(refresh_token) {
            Some(row) => {
                row.revoked = true;
                true
            }
            None => false,
        }
    }

    /// Makes an access token stale now (401 `stale_token`), as if its 24 hours had passed.
    pub fn mark_stale(&self, access_token: &str) -> bool {
        let now = self.clock().unix_seconds();
        match self.app.lock().db.access.get_mut(access_token) {
            Some(row) => {
                row.stale_after = now;
                true
            }
            None => false,
        }
    }

    /// How the API would judge `access_token` now; `None` when it was never issued.
    pub fn token_status(&self, access_token: &str) -> Option<TokenStatus> {
        let now = self.clock().unix_seconds();
        self.app
            .lock()
            .db
            .access
            .get(access_token)
            .map(|row| oauth::status_of(row, now))
    }

    /// How `access_token` was obtained; `None` when it was never issued.
    pub fn token_grant(&self, access_token: &str) -> Option<JoinMeGrant> {
        self.app
            .lock()
            .db
            .access
            .get(access_token)
            .map(|row| row.grant)
    }

    /// Authorization codes issued and not yet redeemed or expired.
    pub fn pending_codes(&self) -> usize {
        let now = self.clock().unix_seconds();
        self.app
            .lock()
            .db
            .codes
            .values()
            .filter(|c| !c.used && c.expires_at > now)
            .count()
    }

    /// Scheduled meetings stored (all users).
    pub fn meeting_count(&self) -> usize {
        self.app.lock().db.meetings.len()
    }
}
