//! The provider conformance harnesses: [`JoindinProvider`] against the Joind.in emulator
//! (feature `testing`).
//!
//! [`harnesses`] gives one harness per server configuration the suite must pass under:
//! the emulator's defaults, and each switch the spec marks inferred flipped on its own.
//! Each harness owns an emulator on a free loopback port, stopped when the harness is
//! dropped.

use crate::provider::JoindinProvider;
use async_trait::async_trait;
use grantkit_conformance::provider::HarnessResult;
use grantkit_conformance::{
    Decision, HarnessCapabilities, ProviderHarness, ServerEndpoint, ServerFault,
};
use grantkit_core::{ClientSecret, Password, Provider, TokenSet, flow::FlowKind};
use grantkit_emulator::{Fault, FaultRule, JoindinEmulator, JoindinEndpoint, JoindinQuirks};
use http::header;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

/// The provider's request timeout in the harnesses: short, so the "slow" fault (one
/// second longer) ends a test quickly.
pub const HARNESS_TIMEOUT: Duration = Duration::from_secs(2);

/// The Joind.in emulator with a [`JoindinProvider`] configured against it: the trusted
/// seeded client (password grant, and a registered callback for `oauth_allow`) and the
/// seeded verified user.
pub struct JoindinHarness {
    name: String,
    emulator: JoindinEmulator,
    provider: Arc<JoindinProvider>,
    flows: Vec<FlowKind>,
}

impl fmt::Debug for JoindinHarness {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JoindinHarness")
            .field("name", &self.name)
            .field("base_url", &self.emulator.base_url())
            .field("flows", &self.flows)
            .finish_non_exhaustive()
    }
}

impl JoindinHarness {
    /// Starts an emulator with the default switches, changed by `quirks`, and names the
    /// harness `name` (its matrix column). Both flows run.
    pub fn start(
        name: impl Into<String>,
        quirks: impl FnOnce(&mut JoindinQuirks),
    ) -> Result<Self, String> {
        let emulator = JoindinEmulator::builder()
            .with_quirks(quirks)
            .start()
            .map_err(|err| format!("the Joind.in emulator did not start: {err}"))?;
        let provider = Self::provider_for(&emulator)
            .build()
            .map_err(|err| format!("the provider could not be built: {err}"))?;
        Ok(Self {
            name: name.into(),
            emulator,
            provider: Arc::new(provider),
            flows: vec![FlowKind::Password, FlowKind::Implicit],
        })
    }

    /// A provider builder for `emulator`: its API and web bases, the trusted seeded
    /// client (application name included), and [`HARNESS_TIMEOUT`].
    pub fn provider_for(emulator: &JoindinEmulator) -> crate::JoindinProviderBuilder {
        let fixtures = emulator.fixtures();
        JoindinProvider::builder(
            fixtures.client_id.clone(),
            ClientSecret::new(fixtures.client_secret.clone()),
        )
        .api_base(emulator.api_base())
        .web_base(emulator.base_url())
        .application_name("grantkit tests")
        .timeout(HARNESS_TIMEOUT)
    }

    /// Runs only these flows.
    pub fn with_flows(mut self, flows: impl IntoIterator<Item = FlowKind>) -> Self {
        self.flows = flows.into_iter().collect();
        self
    }

    /// The emulator.
    pub fn emulator(&self) -> &JoindinEmulator {
        &self.emulator
    }

    /// The provider, as its own type.
    pub fn joindin_provider(&self) -> Arc<JoindinProvider> {
        self.provider.clone()
    }

    /// Plays the user's browser through the legacy pages as `username`: opens the
    /// authorization URL, logs in with the form it is sent to, answers the allow/deny
    /// form, and returns where the browser ends up. A denial shows a page whose link
    /// goes back to the callback with the state and no token; the user follows it.
    pub async fn browse_as(
        &self,
        authorization_url: &str,
        username: &str,
        password: &str,
        decision: Decision,
    ) -> HarnessResult<String> {
        let browser = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(10))
            .build()
            .map_err(|e| format!("browser: {e}"))?;
        let base = self.emulator.base_url();
        let page = browser
            .get(authorization_url)
            .send()
            .await
            .map_err(|e| format!("opening the authorization URL: {e}"))?;
        let cookie = page
            .headers()
            .get(header::SET_COOKIE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .map(str::to_owned)
            .ok_or("the oauth_allow page set no session cookie")?;
        let login_url = page
            .headers()
            .get("refresh")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split_once("url=").map(|(_, url)| url.to_owned()))
            .ok_or_else(|| {
                format!(
                    "the oauth_allow page did not ask for a login ({})",
                    page.status()
                )
            })?;
        let login = browser
            .post(login_url)
            .header(header::COOKIE, &cookie)
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(form(&[
                ("user", username),
                ("pass", password),
                ("sub", "Login"),
            ]))
            .send()
            .await
            .map_err(|e| format!("logging in: {e}"))?;
        let back = location(&login).ok_or("the login did not return to oauth_allow")?;
        let back = if back.starts_with('/') {
            format!("{base}{back}")
        } else {
            back
        };
        let consent = browser
            .get(back)
            .header(header::COOKIE, &cookie)
            .send()
            .await
            .map_err(|e| format!("reopening oauth_allow: {e}"))?;
        let text = consent
            .text()
            .await
            .map_err(|e| format!("consent page: {e}"))?;
        if !text.contains("name=\"access\"") {
            return Err("the consent form was not shown".into());
        }
        let answer = match decision {
            Decision::Approve => "allow",
            Decision::Deny => "deny",
        };
        let reply = browser
            .post(self.provider.oauth_allow_url())
            .header(header::COOKIE, &cookie)
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(form(&[("access", answer), ("sub", "Submit")]))
            .send()
            .await
            .map_err(|e| format!("answering the consent form: {e}"))?;
        if let Some(callback) = location(&reply) {
            return Ok(callback);
        }
        let text = reply
            .text()
            .await
            .map_err(|e| format!("answer page: {e}"))?;
        let link = text
            .split("href=\"")
            .nth(1)
            .and_then(|rest| rest.split('"').next())
            .ok_or("the answer page has neither a redirect nor a link back")?;
        Ok(link.replace("&amp;", "&"))
    }
}

fn form(pairs: &[(&str, &str)]) -> String {
    url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(pairs)
        .finish()
}

fn location(response: &reqwest::Response) -> Option<String> {
    response
        .headers()
        .get(header::LOCATION)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

#[async_trait]
impl ProviderHarness for JoindinHarness {
    fn name(&self) -> String {
        self.name.clone()
    }

    fn provider(&self) -> Arc<dyn Provider> {
        self.provider.clone()
    }

    /// Joind.in tokens never expire, so nothing can expire them server-side; a token
    /// deleted at the server is the revocation case.
    fn capabilities(&self) -> HarnessCapabilities {
        HarnessCapabilities::default()
            .with_deny_redirects(true)
            .with_server_side_expiry(false)
            .with_server_side_revocation(true)
            .with_fault_injection(true)
    }

    fn flows(&self) -> Vec<FlowKind> {
        self.flows.clone()
    }

    fn redirect_uri(&self) -> String {
        self.emulator.fixtures().redirect_uri.clone()
    }

    fn scopes(&self) -> Vec<String> {
        Vec::new()
    }

    fn account(&self) -> String {
        self.provider.account_of(self.emulator.fixtures().user_id)
    }

    fn password_credentials(&self) -> Option<(String, Password)> {
        let fixtures = self.emulator.fixtures();
        Some((
            fixtures.username.clone(),
            Password::new(fixtures.password.clone()),
        ))
    }

    async fn authorize(
        &self,
        authorization_url: &str,
        decision: Decision,
    ) -> HarnessResult<String> {
        let fixtures = self.emulator.fixtures().clone();
        self.browse_as(
            authorization_url,
            &fixtures.username,
            &fixtures.password,
            decision,
        )
        .await
    }

    async fn token_endpoint_calls(&self) -> HarnessResult<u64> {
        Ok(self.emulator.count(JoindinEndpoint::Token))
    }

    async fn expire_access_token(&self, _tokens: &TokenSet) -> HarnessResult<()> {
        Err("Joind.in tokens never expire".into())
    }

    async fn invalidate_grant(&self, tokens: &TokenSet) -> HarnessResult<()> {
        if self
            .emulator
            .revoke_token(tokens.access_token.expose_secret())
        {
            Ok(())
        } else {
            Err("the emulator does not hold this token".into())
        }
    }

    fn api_probe(&self) -> (http::Method, String) {
        (http::Method::GET, format!("{}/", self.provider.api_base()))
    }

    async fn inject_fault(
        &self,
        endpoint: ServerEndpoint,
        fault: ServerFault,
        count: u32,
    ) -> HarnessResult<()> {
        let target = match endpoint {
            ServerEndpoint::Token => JoindinEndpoint::Token,
            ServerEndpoint::Api => JoindinEndpoint::Api,
        };
        let fault = match fault {
            ServerFault::ServerErrorHtml => Fault::ServerError { status: 503 },
            ServerFault::MalformedJson => Fault::MalformedJson,
            ServerFault::Truncated => Fault::TruncatedBody,
            ServerFault::Oversized => Fault::OversizedBody,
            ServerFault::Slow => Fault::Latency(HARNESS_TIMEOUT + Duration::from_secs(1)),
            ServerFault::Reset => Fault::ConnectionReset,
            ServerFault::RateLimited => Fault::TooManyRequests { retry_after_s: 7 },
        };
        self.emulator
            .inject(FaultRule::on(target, fault).times(count));
        Ok(())
    }

    async fn clear_faults(&self) -> HarnessResult<()> {
        self.emulator.clear_faults();
        Ok(())
    }
}

/// The default harness: the emulator's defaults, both flows.
pub async fn harness() -> Arc<dyn ProviderHarness> {
    Arc::new(JoindinHarness::start("joindin", |_| {}).expect("the default Joind.in harness"))
}

/// Every configuration the provider suite must pass under, one switch flipped at a time:
///
/// | harness | switch | flows |
/// |---|---|---|
/// | `joindin` | defaults (the other position of every switch below) | password, oauth_allow |
/// | `joindin[unknown_token_is_user_zero]` | an unknown token is "user 0" (HEAD) | both |
/// | `joindin[numeric_tokens]` | every token all digits | oauth_allow only: the password grant's JSON turns such a token into a number, which cannot be used (its own test shows the error) |
/// | `joindin[missing_user_empty_list]` | a missing user is 200 `{"users":[]}` | both |
/// | `joindin[case_insensitive_credentials]` | MySQL-collation matching | both |
/// | `joindin[unverified_is_403]` | pre-2017 `Not verified` status | both |
/// | `joindin[legacy_oauth_allow=off]` | the `oauth_allow` page is gone | password only |
///
/// # Panics
/// When an emulator cannot bind a loopback port.
pub async fn harnesses() -> Vec<Arc<dyn ProviderHarness>> {
    type Switch = fn(&mut JoindinQuirks);
    let variants: [(&str, Switch, &[FlowKind]); 7] = [
        ("joindin", |_| {}, &[FlowKind::Password, FlowKind::Implicit]),
        (
            "joindin[unknown_token_is_user_zero]",
            |q| q.unknown_token_is_user_zero = true,
            &[FlowKind::Password, FlowKind::Implicit],
        ),
        (
            "joindin[numeric_tokens]",
            |q| q.numeric_tokens = true,
            &[FlowKind::Implicit],
        ),
        (
            "joindin[missing_user_empty_list]",
            |q| q.missing_user_empty_list = true,
            &[FlowKind::Password, FlowKind::Implicit],
        ),
        (
            "joindin[case_insensitive_credentials]",
            |q| q.case_insensitive_credentials = true,
            &[FlowKind::Password, FlowKind::Implicit],
        ),
        (
            "joindin[unverified_is_403]",
            |q| q.unverified_is_403 = true,
            &[FlowKind::Password, FlowKind::Implicit],
        ),
        (
            "joindin[legacy_oauth_allow=off]",
            |q| q.legacy_oauth_allow = false,
            &[FlowKind::Password],
        ),
    ];
    variants
        .into_iter()
        .map(|(name, switch, flows)| {
            let harness = JoindinHarness::start(name, switch)
                .unwrap_or_else(|err| panic!("{name}: {err}"))
                .with_flows(flows.iter().copied());
            Arc::new(harness) as Arc<dyn ProviderHarness>
        })
        .collect()
}
