//! The provider suite's harnesses: [`JoinMeProvider`] against the join.me emulator
//! (feature `testing`).
//!
//! [`harnesses`] gives one harness per server configuration the suite must pass under: the
//! emulator's defaults, then each switch for a behaviour `specs/joinme.md` marks unknown,
//! flipped to its other position one at a time. Each harness starts its own emulator on a
//! free loopback port and plays the user's browser through the real consent form.

use crate::provider::{JoinMeProvider, JoinMeProviderBuilder};
use crate::scope::Scopes;
use async_trait::async_trait;
use grantkit_conformance::provider::HarnessResult;
use grantkit_conformance::{
    Decision, HarnessCapabilities, ProviderHarness, ServerEndpoint, ServerFault,
};
use grantkit_core::{ClientSecret, Provider, TokenSet};
use grantkit_emulator::{
    Fault, FaultRule, InactiveBody, JoinMeEmulator, JoinMeEndpoint, JoinMeQuirks,
};
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

/// The provider's request timeout under the harness: short, so the "slow answer" fault
/// (an answer later than this) costs the suite little time.
pub const HARNESS_REQUEST_TIMEOUT: Duration = Duration::from_secs(2);

/// A change to the emulator's switches.
pub type QuirkChange = fn(&mut JoinMeQuirks);

/// The server configurations the provider suite runs under: the name's bracket says which
/// switch is flipped (`joinme` is the emulator's defaults).
///
/// Each is a behaviour `specs/joinme.md` marks unknown, in the position the emulator does
/// not take by default:
///
/// | name | switch | what it exercises |
/// |---|---|---|
/// | `joinme` | defaults: no `expires_in`, no `token_type`, refresh token kept, HTML "Developer Inactive", 403 throttling | the documented service |
/// | `joinme[expires_in=86400]` | `token_expires_in` | an explicit lifetime instead of the 24 h default |
/// | `joinme[token_type=bearer]` | `token_type_field` | a `token_type` in token responses |
/// | `joinme[token_scope]` | `token_scope_field` | a `scope` in token responses |
/// | `joinme[rotation]` | `refresh_rotation` | a new refresh token per refresh, the old one retired |
/// | `joinme[revoke_old_on_refresh]` | `revoke_old_on_refresh` | earlier access tokens die at a refresh |
/// | `joinme[refresh_ttl=30d]` | `refresh_ttl` | a limited refresh-token lifetime |
/// | `joinme[invalid_client_status=400]` | `invalid_client_status` | `invalid_client` as 400 |
/// | `joinme[lenient_redirect_uri]` | `lenient_redirect_uri` | a server that normalises the callback |
/// | `joinme[expire_access_path]` | `expire_access_path` | Expire Access at another URL (the provider is configured for it) |
/// | `joinme[expire_access_delay=600s]` | `expire_access_delay` | Expire Access taking its documented 10 minutes |
/// | `joinme[success_as_string]` | `success_as_string` | `"success": "true"` |
/// | `joinme[renew_authorization]` | `renew_authorization` (and the provider opted in) | LogMeIn's renew page for expired implicit tokens |
/// | `joinme[renew_flag=True]` | `renew_authorization`, `renew_flag_value` | another spelling of `isAuthorizationRenewed` |
/// | `joinme[renew_keeps_expired]` | `renew_authorization`, `renew_revives_expired` off | renewal that does not revive expired tokens |
/// | `joinme[inactive_body=json]` | `inactive_body` | LogMeIn's JSON "Developer Inactive" body |
/// | `joinme[insufficient_scope_status=401]` | `insufficient_scope_status` | scope refusals as 401 |
/// | `joinme[user_get_status=201]` | `user_get_status` | `GET /v1/user` answering 201 as documented |
/// | `joinme[throttle_status=429]` | `throttle_status` | throttling as 429 |
/// | `joinme[implicit_fragment_extras=off]` | `implicit_fragment_extras` | a fragment with `access_token` and `state` only |
/// | `joinme[schedule_status=200]` | `schedule_status` | scheduling answering 200 |
/// | `joinme[delete_returns_empty_object]` | `delete_returns_empty_object` | `DELETE` answering `200 {}` |
/// | `joinme[strict_booleans]` | `strict_booleans` | a server that refuses string booleans |
pub fn variants() -> Vec<(&'static str, QuirkChange)> {
    vec![
        ("joinme", |_| {}),
        ("joinme[expires_in=86400]", |q| {
            q.token_expires_in = Some(86_400);
        }),
        ("joinme[token_type=bearer]", |q| q.token_type_field = true),
        ("joinme[token_scope]", |q| q.token_scope_field = true),
        ("joinme[rotation]", |q| q.refresh_rotation = true),
        ("joinme[revoke_old_on_refresh]", |q| {
            q.revoke_old_on_refresh = true;
        }),
        ("joinme[refresh_ttl=30d]", |q| {
            q.refresh_ttl = Some(Duration::from_secs(30 * 86_400));
        }),
        ("joinme[invalid_client_status=400]", |q| {
            q.invalid_client_status = 400;
        }),
        ("joinme[lenient_redirect_uri]", |q| {
            q.lenient_redirect_uri = true;
        }),
        ("joinme[expire_access_path]", |q| {
            q.expire_access_path = "/api/public/v1/auth/expireAccessToken".into();
        }),
        ("joinme[expire_access_delay=600s]", |q| {
            q.expire_access_delay = Duration::from_secs(600);
        }),
        ("joinme[success_as_string]", |q| q.success_as_string = true),
        ("joinme[renew_authorization]", |q| {
            q.renew_authorization = true
        }),
        ("joinme[renew_flag=True]", |q| {
            q.renew_authorization = true;
            q.renew_flag_value = "True".into();
        }),
        ("joinme[renew_keeps_expired]", |q| {
            q.renew_authorization = true;
            q.renew_revives_expired = false;
        }),
        ("joinme[inactive_body=json]", |q| {
            q.inactive_body = InactiveBody::Json;
        }),
        ("joinme[insufficient_scope_status=401]", |q| {
            q.insufficient_scope_status = 401;
        }),
        ("joinme[user_get_status=201]", |q| q.user_get_status = 201),
        ("joinme[throttle_status=429]", |q| q.throttle_status = 429),
        ("joinme[implicit_fragment_extras=off]", |q| {
            q.implicit_fragment_extras = false;
        }),
        ("joinme[schedule_status=200]", |q| q.schedule_status = 200),
        ("joinme[delete_returns_empty_object]", |q| {
            q.delete_returns_empty_object = true;
        }),
        ("joinme[strict_booleans]", |q| q.strict_booleans = true),
    ]
}

/// One harness per entry of [`variants`], each with its own emulator.
///
/// # Panics
/// When an emulator cannot start (no loopback port): the suite cannot run at all then.
pub async fn harnesses() -> Vec<Arc<dyn ProviderHarness>> {
    variants()
        .into_iter()
        .map(|(name, change)| {
            let harness = JoinMeHarness::start(name, change)
                .unwrap_or_else(|err| panic!("the join.me emulator for {name} starts: {err}"));
            Arc::new(harness) as Arc<dyn ProviderHarness>
        })
        .collect()
}

/// The harness on the emulator's defaults.
///
/// # Panics
/// When the emulator cannot start.
pub async fn harness() -> Arc<dyn ProviderHarness> {
    Arc::new(JoinMeHarness::start("joinme", |_| {}).expect("the join.me emulator starts"))
}

/// [`JoinMeProvider`] against a running join.me emulator, as the provider suite drives it.
pub struct JoinMeHarness {
    name: String,
    emulator: JoinMeEmulator,
    provider: Arc<JoinMeProvider>,
    browser: reqwest::Client,
}

impl fmt::Debug for JoinMeHarness {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JoinMeHarness")
            .field("name", &self.name)
            .field("emulator", &self.emulator.base_url())
            .finish_non_exhaustive()
    }
}

impl JoinMeHarness {
    /// Starts an emulator with `change` applied to its default switches, and a provider
    /// configured for it (seeded basic-plan application; [`HARNESS_REQUEST_TIMEOUT`]).
    pub fn start(
        name: impl Into<String>,
        change: impl FnOnce(&mut JoinMeQuirks),
    ) -> std::io::Result<Self> {
        let emulator = JoinMeEmulator::builder().with_quirks(change).start()?;
        let provider = Arc::new(
            provider_for(&emulator, |b| b)
                .build()
                .map_err(|err| std::io::Error::other(err.to_string()))?,
        );
        let browser = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(10))
            .build()
            .map_err(std::io::Error::other)?;
        Ok(Self {
            name: name.into(),
            emulator,
            provider,
            browser,
        })
    }

    /// The emulator: its counters, clock, switches and test hooks.
    pub fn emulator(&self) -> &JoinMeEmulator {
        &self.emulator
    }

    /// The provider under test.
    pub fn joinme_provider(&self) -> Arc<JoinMeProvider> {
        self.provider.clone()
    }

    /// A builder for another provider on the same emulator (e.g. with a manual clock).
    pub fn provider_builder(&self) -> JoinMeProviderBuilder {
        provider_for(&self.emulator, |b| b)
    }
}

/// A provider builder for `emulator`'s seeded basic-plan application and endpoints, renewing
/// implicit tokens where the emulator serves the renew page.
pub fn provider_for(
    emulator: &JoinMeEmulator,
    change: impl FnOnce(JoinMeProviderBuilder) -> JoinMeProviderBuilder,
) -> JoinMeProviderBuilder {
    let fixtures = emulator.fixtures();
    let builder = JoinMeProvider::builder(
        fixtures.client_id.clone(),
        ClientSecret::new(fixtures.client_secret.clone()),
    )
    .authorize_url(emulator.authorize_url())
    .token_url(emulator.token_url())
    .expire_access_url(emulator.expire_access_url())
    .renew_authorization_url(emulator.renew_url())
    .renew_authorization(emulator.quirks().renew_authorization)
    .api_base(emulator.api_base())
    .default_scopes(Scopes::usual())
    .timeout(HARNESS_REQUEST_TIMEOUT);
    change(builder)
}

/// Plays the user's browser on the emulator: opens `authorization_url`, answers the
/// consent form as the seeded user, and returns where the browser was sent (with its
/// fragment). Shared by the harness and end-to-end tests.
pub async fn consent(
    emulator: &JoinMeEmulator,
    browser: &reqwest::Client,
    authorization_url: &str,
    decision: Decision,
) -> HarnessResult<String> {
    let url = url::Url::parse(authorization_url)
        .map_err(|err| format!("the authorization URL does not parse: {err}"))?;
    let page = browser
        .get(url.clone())
        .send()
        .await
        .map_err(|err| format!("the authorize page is unreachable: {}", err.without_url()))?;
    let status = page.status();
    if status.is_redirection() {
        // Auto-consent is on: the emulator has already decided.
        return location(&page);
    }
    if status != reqwest::StatusCode::OK {
        return Err(format!(
            "the authorize page answered {status} instead of the consent form"
        ));
    }
    // The consent form posts its hidden fields (the request's parameters) back to the
    // authorize endpoint, with the user's answer.
    let fixtures = emulator.fixtures();
    let body = {
        let mut form = url::form_urlencoded::Serializer::new(String::new());
        for (name, value) in url.query_pairs() {
            if matches!(
                name.as_ref(),
                "response_type" | "client_id" | "redirect_uri" | "scope" | "state"
            ) {
                form.append_pair(&name, &value);
            }
        }
        form.append_pair("email", &fixtures.email)
            .append_pair("password", &fixtures.password)
            .append_pair(
                "decision",
                match decision {
                    Decision::Approve => "allow",
                    Decision::Deny => "deny",
                },
            );
        form.finish()
    };
    let mut action = url;
    action.set_query(None);
    let answer = browser
        .post(action)
        .header(
            http::header::CONTENT_TYPE,
            "application/x-www-form-urlencoded",
        )
        .body(body)
        .send()
        .await
        .map_err(|err| format!("the consent form could not be sent: {}", err.without_url()))?;
    if !answer.status().is_redirection() {
        return Err(format!(
            "the consent form answered {} instead of a redirect",
            answer.status()
        ));
    }
    location(&answer)
}

fn location(response: &reqwest::Response) -> HarnessResult<String> {
    response
        .headers()
        .get(http::header::LOCATION)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
        .ok_or_else(|| "the redirect has no Location".to_owned())
}

fn emulator_endpoint(endpoint: ServerEndpoint) -> JoinMeEndpoint {
    match endpoint {
        ServerEndpoint::Token => JoinMeEndpoint::Token,
        ServerEndpoint::Api => JoinMeEndpoint::Api,
    }
}

#[async_trait]
impl ProviderHarness for JoinMeHarness {
    fn name(&self) -> String {
        self.name.clone()
    }

    fn provider(&self) -> Arc<dyn Provider> {
        self.provider.clone()
    }

    fn capabilities(&self) -> HarnessCapabilities {
        HarnessCapabilities::default()
            .with_deny_redirects(true)
            .with_server_side_expiry(true)
            .with_server_side_revocation(true)
            .with_fault_injection(true)
    }

    fn redirect_uri(&self) -> String {
        self.emulator.fixtures().redirect_uri.clone()
    }

    fn scopes(&self) -> Vec<String> {
        Scopes::usual().names()
    }

    fn account(&self) -> String {
        self.emulator.fixtures().email.clone()
    }

    async fn authorize(
        &self,
        authorization_url: &str,
        decision: Decision,
    ) -> HarnessResult<String> {
        consent(&self.emulator, &self.browser, authorization_url, decision).await
    }

    async fn token_endpoint_calls(&self) -> HarnessResult<u64> {
        Ok(self.emulator.count(JoinMeEndpoint::Token))
    }

    /// As 24 hours passing would: the API answers 401 `stale_token`.
    async fn expire_access_token(&self, tokens: &TokenSet) -> HarnessResult<()> {
        self.emulator
            .mark_stale(tokens.access_token.expose_secret())
            .then_some(())
            .ok_or_else(|| "the emulator never issued this access token".to_owned())
    }

    /// Revokes the access token (Mashery then answers 403 "Developer Inactive") and the
    /// refresh token.
    async fn invalidate_grant(&self, tokens: &TokenSet) -> HarnessResult<()> {
        if !self
            .emulator
            .revoke_access_token(tokens.access_token.expose_secret())
        {
            return Err("the emulator never issued this access token".to_owned());
        }
        if let Some(refresh) = &tokens.refresh_token {
            self.emulator.revoke_refresh_token(refresh.expose_secret());
        }
        Ok(())
    }

    fn api_probe(&self) -> (http::Method, String) {
        (
            http::Method::GET,
            format!("{}/user", self.emulator.api_base()),
        )
    }

    async fn inject_fault(
        &self,
        endpoint: ServerEndpoint,
        fault: ServerFault,
        count: u32,
    ) -> HarnessResult<()> {
        let target = emulator_endpoint(endpoint);
        let rule = |fault: Fault| FaultRule::on(target, fault).times(count);
        match fault {
            ServerFault::ServerErrorHtml => {
                self.emulator
                    .inject(rule(Fault::ServerError { status: 503 }));
            }
            ServerFault::MalformedJson => {
                self.emulator.inject(rule(Fault::MalformedJson));
            }
            ServerFault::Truncated => {
                self.emulator.inject(rule(Fault::TruncatedBody));
            }
            ServerFault::Oversized => {
                self.emulator.inject(rule(Fault::OversizedBody));
            }
            ServerFault::Reset => {
                self.emulator.inject(rule(Fault::ConnectionReset));
            }
            ServerFault::Slow => {
                // Later than the provider's timeout, and then not processed at all: the
                // gateway gives up with a 504, as Mashery does on a slow backend. (A slow
                // answer that went on to succeed would commit a refresh the client has
                // given up on, which is a different test.)
                self.emulator.inject(rule(Fault::Latency(
                    HARNESS_REQUEST_TIMEOUT + Duration::from_millis(600),
                )));
                self.emulator
                    .inject(rule(Fault::ServerError { status: 504 }));
            }
            ServerFault::RateLimited => {
                let fault = match endpoint {
                    // Mashery's throttle (403, or 429 where the tenant says so).
                    ServerEndpoint::Api => Fault::MasheryOverQps { retry_after_s: 1 },
                    ServerEndpoint::Token => Fault::TooManyRequests { retry_after_s: 1 },
                };
                self.emulator.inject(rule(fault));
            }
        }
        Ok(())
    }

    async fn clear_faults(&self) -> HarnessResult<()> {
        self.emulator.clear_faults();
        Ok(())
    }
}
