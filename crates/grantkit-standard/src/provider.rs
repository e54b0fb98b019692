//! `StandardProvider`: the provider for any authorization server that follows RFC 6749.

use crate::account::AccountClaims;
use crate::metadata::{DEVICE_CODE_GRANT, ServerMetadata, check_secure};
use crate::oauth::{self, ClientEndpoints, OAuthClient, prepare, prepared};
use async_trait::async_trait;
use grantkit_core::provider::http::{
    HttpResponse, ProviderHttp, TokenResponseRules, check_access_token, lifetime,
    parse_token_response, throttled, token_endpoint_error,
};
use grantkit_core::provider::text::untrusted;
use grantkit_core::{
    CallbackError, ClientSecret, DeviceAuthorization, Error, GrantKind, Provider, Result,
    Revocation, TokenSet,
    clock::{Clock, SystemClock},
    flow::{CallbackParams, FlowKind},
    provider::{
        AuthorizationRequest, Capabilities, DeviceCode, Grant, Issuer, bearer_header,
        www_authenticate_param,
    },
};
use oauth2::{CsrfToken, PkceCodeVerifier, RedirectUrl, Scope};
use serde::Deserialize;
use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;
use url::Url;

/// The provider id used in [`TokenKey`](grantkit_core::TokenKey)s unless
/// [`StandardProviderBuilder::id`] sets another.
pub const DEFAULT_ID: &str = "standard";

/// The default timeout of one call to the server.
pub const DEFAULT_TIMEOUT: Duration = grantkit_core::provider::http::DEFAULT_TIMEOUT;

/// How the client authenticates at the server's token, revocation and introspection
/// endpoints.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ClientAuth {
    /// HTTP Basic with the client id and secret, each form-urlencoded first (RFC 6749
    /// §2.3.1). What every server must accept, and the default.
    ClientSecretBasic,
    /// `client_id` and `client_secret` in the form body (RFC 6749 §2.3.1).
    ClientSecretPost,
}

impl ClientAuth {
    /// The method's name in server metadata: `client_secret_basic` or `client_secret_post`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ClientSecretBasic => "client_secret_basic",
            Self::ClientSecretPost => "client_secret_post",
        }
    }

    /// The method to use with a server that lists `methods` (`None`: lists nothing, which
    /// means `client_secret_basic`): basic where offered, else post.
    fn choose(methods: Option<&[String]>) -> Option<Self> {
        let Some(methods) = methods else {
            return Some(Self::ClientSecretBasic);
        };
        [Self::ClientSecretBasic, Self::ClientSecretPost]
            .into_iter()
            .find(|method| methods.iter().any(|m| m == method.as_str()))
    }
}

impl fmt::Display for ClientAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where the builder gets the server's metadata from.
#[derive(Debug)]
enum Source {
    Issuer(String),
    Metadata(Box<ServerMetadata>),
}

/// Builds a [`StandardProvider`].
#[derive(Debug)]
pub struct StandardProviderBuilder {
    client_id: String,
    secret: ClientSecret,
    source: Option<Source>,
    id: String,
    http_client: Option<reqwest::Client>,
    timeout: Duration,
    max_body: Option<usize>,
    clock: Arc<dyn Clock>,
    client_auth: Option<ClientAuth>,
    flows: Option<Vec<FlowKind>>,
    rotation: bool,
    default_lifetime: Option<Duration>,
    account: AccountClaims,
}

impl StandardProviderBuilder {
    /// Discovers the server from its issuer identifier when [`build`](Self::build) runs
    /// (RFC 8414, falling back to OpenID Connect discovery); the issuer in the metadata
    /// must be exactly this one.
    pub fn issuer(mut self, issuer: impl Into<String>) -> Self {
        self.source = Some(Source::Issuer(issuer.into()));
        self
    }

    /// Uses metadata already at hand: discovered earlier, or written out with
    /// [`ServerMetadata::manual`] for a server that publishes none.
    pub fn metadata(mut self, metadata: ServerMetadata) -> Self {
        self.source = Some(Source::Metadata(Box::new(metadata)));
        self
    }

    /// Sets the provider id, the `provider` of every [`TokenKey`](grantkit_core::TokenKey)
    /// (default [`DEFAULT_ID`]). Give each server its own id when several share a store.
    pub fn id(mut self, id: impl Into<String>) -> Self {
        self.id = id.into();
        self
    }

    /// Uses your own `reqwest::Client` (proxy, TLS roots, pool) for the calls to the
    /// server. Build it with `redirect(Policy::none())`: a redirected token request could
    /// carry the client's credentials elsewhere.
    pub fn http_client(mut self, client: reqwest::Client) -> Self {
        self.http_client = Some(client);
        self
    }

    /// Sets the timeout of each call to the server (default [`DEFAULT_TIMEOUT`]).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The cap on an answer from the server (default 1 MiB).
    pub fn max_body(mut self, bytes: usize) -> Self {
        self.max_body = Some(bytes);
        self
    }

    /// Sets the clock that turns `expires_in` into an expiry (default: the system clock).
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// Sets the client authentication method instead of choosing it from the server's
    /// metadata (which prefers `client_secret_basic`).
    pub fn client_auth(mut self, method: ClientAuth) -> Self {
        self.client_auth = Some(method);
        self
    }

    /// The flows this client is registered for. Each must be on offer at the server, or
    /// `build` fails; by default every flow the server offers is declared.
    pub fn flows(mut self, flows: impl IntoIterator<Item = FlowKind>) -> Self {
        self.flows = Some(flows.into_iter().collect());
        self
    }

    /// Whether the server may rotate refresh tokens (default `true`: metadata does not say,
    /// and assuming rotation is the safe side — a refresh whose outcome is unknown is then
    /// never replayed). Set `false` only for a server known to keep refresh tokens.
    pub fn refresh_token_rotation(mut self, may_rotate: bool) -> Self {
        self.rotation = may_rotate;
        self
    }

    /// The lifetime to assume for an access token whose response has no `expires_in`
    /// (default: none, the token is used until the server refuses it).
    pub fn default_token_lifetime(mut self, lifetime: Duration) -> Self {
        self.default_lifetime = Some(lifetime);
        self
    }

    /// The claims that name the user in a userinfo or introspection answer, tried in this
    /// order (default [`DEFAULT_ACCOUNT_CLAIMS`](crate::DEFAULT_ACCOUNT_CLAIMS): `sub`,
    /// then `username`, then `email`). The first one the answer carries as a non-empty
    /// string is the account of the grant's [`TokenKey`](grantkit_core::TokenKey).
    pub fn account_claims<I, S>(mut self, claims: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.account = AccountClaims::First(claims.into_iter().map(Into::into).collect());
        self
    }

    /// Names the account with a function of the userinfo (or introspection) answer's JSON
    /// object, for a server whose identity is not one claim; `None` when the answer cannot
    /// name the user.
    pub fn account_with<F>(mut self, pick: F) -> Self
    where
        F: Fn(&serde_json::Map<String, serde_json::Value>) -> Option<String>
            + Send
            + Sync
            + 'static,
    {
        self.account = AccountClaims::Custom(Arc::new(pick));
        self
    }

    /// Discovers the server if needed, and checks the configuration against its metadata.
    pub async fn build(self) -> Result<StandardProvider> {
        if matches!(&self.account, AccountClaims::First(claims) if claims.is_empty()) {
            return Err(Error::configuration(
                "account_claims needs at least one claim to name the user",
            ));
        }
        if self.client_id.is_empty() || self.id.is_empty() {
            return Err(Error::configuration(
                "the client id and the provider id must not be empty",
            ));
        }
        if self.timeout.is_zero() {
            return Err(Error::configuration("the timeout must be longer than zero"));
        }
        let http = match self.http_client {
            Some(client) => ProviderHttp::with_client(client),
            None => ProviderHttp::new(),
        }
        .with_timeout(self.timeout);
        let http = match self.max_body {
            Some(bytes) => http.with_max_body(bytes),
            None => http,
        };
        let metadata = match self.source {
            Some(Source::Issuer(issuer)) => ServerMetadata::discover(&issuer, &http).await?,
            Some(Source::Metadata(metadata)) => *metadata,
            None => {
                return Err(Error::configuration(
                    "the server is not set: call `issuer` (discovery) or `metadata`",
                ));
            }
        };
        for (name, url) in [
            ("authorization endpoint", &metadata.authorization_endpoint),
            ("token endpoint", &metadata.token_endpoint),
        ] {
            if let Some(url) = url {
                check_secure(url)
                    .map_err(|why| Error::configuration(format!("the {name}: {why}")))?;
            }
        }

        let offered = offered_flows(&metadata);
        let flows = match self.flows {
            None => offered,
            Some(wanted) => {
                if let Some(missing) = wanted.iter().find(|f| !offered.contains(f)) {
                    return Err(Error::configuration(format!(
                        "the server does not offer the {missing} flow{}",
                        match missing {
                            FlowKind::Implicit =>
                                " (its response_types_supported has no plain `token`)",
                            FlowKind::Password =>
                                " (grantkit-standard never uses the password grant: RFC 9700 §2.4)",
                            _ => "",
                        }
                    )));
                }
                wanted
            }
        };
        if flows.is_empty() {
            return Err(Error::configuration(
                "the server offers none of the authorization-code, implicit and \
                 client-credentials flows",
            ));
        }

        let token_methods = metadata.token_endpoint_auth_methods_supported.as_deref();
        let token_auth = match self.client_auth {
            Some(method) => method,
            None => ClientAuth::choose(token_methods).ok_or_else(|| {
                Error::configuration(format!(
                    "the token endpoint accepts none of client_secret_basic and \
                     client_secret_post (it lists {})",
                    token_methods.unwrap_or_default().join(", ")
                ))
            })?,
        };
        // Revocation and introspection authenticate as the token endpoint does unless the
        // server lists other methods for them; one that takes neither secret method is
        // not used.
        let side_auth = |listed: Option<&[String]>| match (self.client_auth, listed) {
            (Some(method), _) => Some(method),
            (None, None) => Some(token_auth),
            (None, listed) => ClientAuth::choose(listed),
        };
        let revocation_auth = side_auth(
            metadata
                .revocation_endpoint_auth_methods_supported
                .as_deref(),
        )
        .filter(|_| metadata.revocation_endpoint.is_some());
        let introspection_auth = side_auth(
            metadata
                .introspection_endpoint_auth_methods_supported
                .as_deref(),
        )
        .filter(|_| metadata.introspection_endpoint.is_some());

        let capabilities = Capabilities::default()
            .with_flows(flows)
            .with_refresh(metadata.token_endpoint.is_some())
            .with_rotation(self.rotation)
            .with_pkce(metadata.accepts_s256())
            .with_revoke_grant(revocation_auth.is_some())
            .with_scopes(metadata.scopes_supported.clone().unwrap_or_default());

        Ok(StandardProvider {
            id: self.id,
            client_id: self.client_id,
            secret: self.secret,
            metadata,
            http,
            clock: self.clock,
            capabilities,
            token_auth,
            revocation_auth,
            introspection_auth,
            default_lifetime: self.default_lifetime,
            account: self.account,
        })
    }
}

/// The flows a server's metadata offers. Never the password grant.
fn offered_flows(metadata: &ServerMetadata) -> Vec<FlowKind> {
    let mut flows = Vec::new();
    if metadata.offers_authorization_code() {
        flows.push(FlowKind::AuthorizationCode);
    }
    if metadata.offers_implicit() {
        flows.push(FlowKind::Implicit);
    }
    if metadata.offers_client_credentials() {
        flows.push(FlowKind::ClientCredentials);
    }
    if metadata.offers_device_code() {
        flows.push(FlowKind::DeviceCode);
    }
    flows
}

/// A provider for any authorization server that follows RFC 6749: authorization code with
/// PKCE (S256), client credentials, refresh with or without rotation, RFC 7009 revocation,
/// and — only where the server still offers it, and discouraged — the implicit grant.
///
/// See the [crate documentation](crate) for what it checks and examples.
pub struct StandardProvider {
    id: String,
    client_id: String,
    secret: ClientSecret,
    metadata: ServerMetadata,
    http: ProviderHttp,
    clock: Arc<dyn Clock>,
    capabilities: Capabilities,
    token_auth: ClientAuth,
    revocation_auth: Option<ClientAuth>,
    introspection_auth: Option<ClientAuth>,
    default_lifetime: Option<Duration>,
    account: AccountClaims,
}

impl fmt::Debug for StandardProvider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StandardProvider")
            .field("id", &self.id)
            .field("client_id", &self.client_id)
            .field("issuer", &self.metadata.issuer)
            .field("client_auth", &self.token_auth)
            .field("capabilities", &self.capabilities)
            .finish_non_exhaustive()
    }
}

impl StandardProvider {
    /// A builder for a client with this id and secret.
    pub fn builder(
        client_id: impl Into<String>,
        client_secret: ClientSecret,
    ) -> StandardProviderBuilder {
        StandardProviderBuilder {
            client_id: client_id.into(),
            secret: client_secret,
            source: None,
            id: DEFAULT_ID.to_owned(),
            http_client: None,
            timeout: DEFAULT_TIMEOUT,
            max_body: None,
            clock: Arc::new(SystemClock),
            client_auth: None,
            flows: None,
            rotation: true,
            default_lifetime: None,
            account: AccountClaims::default(),
        }
    }

    /// The server's metadata, as discovered or given.
    pub fn metadata(&self) -> &ServerMetadata {
        &self.metadata
    }

    /// How the client authenticates at the token endpoint.
    pub fn client_auth(&self) -> ClientAuth {
        self.token_auth
    }

    fn oauth_client(&self, auth: ClientAuth) -> OAuthClient {
        oauth::client(
            &self.client_id,
            &self.secret,
            auth,
            &ClientEndpoints {
                authorization: self.metadata.authorization_endpoint.as_ref(),
                token: self.metadata.token_endpoint.as_ref(),
                introspection: self.metadata.introspection_endpoint.as_ref(),
            },
        )
    }

    fn require(&self, flow: FlowKind) -> Result<()> {
        if self.capabilities.supports(flow) {
            Ok(())
        } else {
            Err(Error::unsupported(format!(
                "{} does not offer the {flow} flow for this client",
                self.id
            )))
        }
    }

    /// Sends a token request built by `oauth2` and reads the answer tolerantly.
    async fn token_request(
        &self,
        request: http::Request<Vec<u8>>,
        grant: GrantKind,
        requested_scopes: &[String],
    ) -> Result<TokenSet> {
        // The time of sending: the token cannot outlive `expires_in` counted from here.
        let rules = TokenResponseRules {
            grant,
            now: self.clock.now(),
            default_lifetime: self.default_lifetime,
        };
        let answer = self.send(request).await?;
        read_token_answer(&answer, rules, requested_scopes)
    }

    async fn send(&self, request: http::Request<Vec<u8>>) -> Result<HttpResponse> {
        let (parts, body) = self.http.execute(request).await?.into_parts();
        Ok(HttpResponse {
            status: parts.status,
            headers: parts.headers,
            body,
        })
    }

    async fn client_credentials(&self, scopes: &[String]) -> Result<TokenSet> {
        self.require(FlowKind::ClientCredentials)?;
        let client = self.oauth_client(self.token_auth);
        let request = client
            .exchange_client_credentials()
            .map_err(|err| Error::configuration(err.to_string()))?
            .add_scopes(scopes.iter().cloned().map(Scope::new));
        let request = prepared(request.request(&prepare))?;
        self.token_request(request, GrantKind::ClientCredentials, scopes)
            .await
    }

    /// Starts the device authorization grant (RFC 8628 §3.1–3.2).
    async fn device_authorization(&self, scopes: &[String]) -> Result<DeviceAuthorization> {
        #[derive(Deserialize)]
        struct Answer {
            device_code: String,
            user_code: String,
            verification_uri: String,
            verification_uri_complete: Option<String>,
            expires_in: serde_json::Value,
            interval: Option<serde_json::Value>,
        }
        self.require(FlowKind::DeviceCode)?;
        let endpoint = self
            .metadata
            .device_authorization_endpoint
            .as_ref()
            .ok_or_else(|| Error::unsupported("the server has no device authorization endpoint"))?;
        let scope = scopes.join(" ");
        let mut params = Vec::new();
        if !scope.is_empty() {
            params.push(("scope", scope.as_str()));
        }
        if self.token_auth == ClientAuth::ClientSecretBasic {
            // RFC 8628 §3.1: the client id in the body as well, for servers that want it.
            params.push(("client_id", self.client_id.as_str()));
        }
        let request = oauth::authenticated_form(
            endpoint,
            &self.client_id,
            &self.secret,
            self.token_auth,
            &params,
        )?;
        let sent_at = self.clock.now();
        let answer = self.send(request).await?;
        if !answer.status.is_success() {
            return Err(token_endpoint_error(&answer));
        }
        let answer: Answer = answer.json()?;
        check_access_token(&answer.device_code)
            .map_err(|_| Error::bad_response("the device code is empty or not printable"))?;
        let expires_in = lifetime(&answer.expires_in).ok_or_else(|| {
            Error::bad_response("the device authorization answer has no usable expires_in")
        })?;
        let interval = answer.interval.as_ref().and_then(lifetime);
        let shown = |text: &str| untrusted(text, 512);
        Ok(DeviceAuthorization::new(
            DeviceCode::new(answer.device_code),
            shown(&answer.user_code),
            shown(&answer.verification_uri),
            answer.verification_uri_complete.as_deref().map(shown),
            expires_in,
            interval,
            sent_at,
        ))
    }

    /// One poll of the token endpoint with the device code (RFC 8628 §3.4).
    async fn device_token(&self, device_code: &DeviceCode) -> Result<TokenSet> {
        self.require(FlowKind::DeviceCode)?;
        let endpoint = self
            .metadata
            .token_endpoint
            .as_ref()
            .ok_or_else(|| Error::unsupported("the server has no token endpoint"))?;
        let request = oauth::authenticated_form(
            endpoint,
            &self.client_id,
            &self.secret,
            self.token_auth,
            &[
                ("grant_type", DEVICE_CODE_GRANT),
                ("device_code", device_code.expose_secret()),
            ],
        )?;
        self.token_request(request, GrantKind::DeviceCode, &[])
            .await
    }

    /// Reads the tokens of an implicit-grant redirect (RFC 6749 §4.2.2).
    fn implicit_tokens(&self, params: &CallbackParams, scopes: Vec<String>) -> Result<TokenSet> {
        self.require(FlowKind::Implicit)?;
        if params.get("access_token").is_none() {
            return Err(Error::callback(CallbackError::MissingParameter(
                "access_token",
            )));
        }
        // The fragment's values are strings, which the tolerant reader takes. A refresh
        // token is never part of an implicit response (§4.2.2), so one is not read.
        let fields: serde_json::Map<String, serde_json::Value> =
            ["access_token", "token_type", "expires_in", "scope"]
                .into_iter()
                .filter_map(|name| Some((name.to_owned(), params.get(name)?.to_owned().into())))
                .collect();
        let body = serde_json::to_vec(&fields)
            .map_err(|_| Error::bad_response("the implicit response could not be read"))?;
        let rules = TokenResponseRules {
            grant: GrantKind::Implicit,
            now: self.clock.now(),
            default_lifetime: self.default_lifetime,
        };
        let mut tokens = parse_token_response(&body, rules)?;
        if tokens.scopes.is_empty() {
            tokens.scopes = scopes;
        }
        Ok(tokens)
    }

    /// The account from the userinfo endpoint, or why it named none.
    async fn userinfo_account(&self, endpoint: &Url, tokens: &TokenSet) -> Result<String> {
        let request = self
            .http
            .client()?
            .get(endpoint.clone())
            .header(
                http::header::AUTHORIZATION,
                bearer_header(&tokens.access_token)?,
            )
            .header(http::header::ACCEPT, "application/json");
        let answer = self.http.send(request).await?;
        if let Some(err) = throttled(answer.status, &answer.headers) {
            return Err(err);
        }
        if answer.status.is_server_error() {
            return Err(Error::unavailable(answer.status.as_u16(), None));
        }
        if !answer.status.is_success() {
            let reason = www_authenticate_param(&answer.headers, "error")
                .map(|code| format!(" ({code})"))
                .unwrap_or_default();
            return Err(Error::api(
                answer.status.as_u16(),
                format!("the userinfo endpoint refused the token{reason}"),
            ));
        }
        let is_jwt = answer
            .headers
            .get(http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("application/jwt"));
        if is_jwt {
            // A signed userinfo answer is an unverified JWT here: not a source of identity.
            return Err(Error::unsupported(
                "a signed (JWT) userinfo answer, which is not verified here",
            ));
        }
        self.account_of(&answer.json()?)
    }

    /// The account from the introspection endpoint (RFC 7662), or why it named none.
    async fn introspected_account(&self, auth: ClientAuth, tokens: &TokenSet) -> Result<String> {
        let client = self.oauth_client(auth);
        let access = oauth2::AccessToken::new(tokens.access_token.expose_secret().to_owned());
        let request = client
            .introspect(&access)
            .map_err(|err| Error::configuration(err.to_string()))?
            .set_token_type_hint("access_token");
        let answer = self.send(prepared(request.request(&prepare))?).await?;
        if !answer.status.is_success() {
            return Err(token_endpoint_error(&answer));
        }
        let introspection: serde_json::Map<String, serde_json::Value> = answer.json()?;
        if introspection.get("active") != Some(&serde_json::Value::Bool(true)) {
            return Err(Error::reauthorize("the access token is not active"));
        }
        self.account_of(&introspection)
    }

    /// The account an answer names, by the configured claims.
    fn account_of(&self, answer: &serde_json::Map<String, serde_json::Value>) -> Result<String> {
        let account = self.account.pick(answer).ok_or_else(|| {
            Error::bad_response(format!("the answer has {}", self.account.describe()))
        })?;
        grantkit_core::provider::check_account(&account)?;
        Ok(account)
    }

    /// Revokes one token (RFC 7009 §2.1).
    async fn revoke_one(&self, auth: ClientAuth, token: &str, hint: &str) -> Result<()> {
        let endpoint = self.metadata.revocation_endpoint.as_ref().ok_or_else(|| {
            Error::unsupported("revocation: the server has no revocation endpoint")
        })?;
        let request = oauth::authenticated_form(
            endpoint,
            &self.client_id,
            &self.secret,
            auth,
            &[("token", token), ("token_type_hint", hint)],
        )?;
        let answer = self.send(request).await?;
        if answer.status.is_success() {
            Ok(())
        } else {
            Err(token_endpoint_error(&answer))
        }
    }
}

/// Reads a token endpoint's answer (RFC 6749 §5.1 and §5.2).
fn read_token_answer(
    answer: &HttpResponse,
    rules: TokenResponseRules,
    requested_scopes: &[String],
) -> Result<TokenSet> {
    if !answer.status.is_success() {
        return Err(token_endpoint_error(answer));
    }
    let mut tokens = parse_token_response(&answer.body, rules).map_err(|err| {
        // Some servers answer an error with status 200.
        match token_endpoint_error(answer) {
            oauth @ Error::OAuth { .. } => oauth,
            _ => err,
        }
    })?;
    if tokens.scopes.is_empty() {
        // RFC 6749 §5.1: an omitted scope is the scope requested.
        tokens.scopes = requested_scopes.to_vec();
    }
    Ok(tokens)
}

#[async_trait]
impl Provider for StandardProvider {
    fn id(&self) -> &str {
        &self.id
    }

    fn client_id(&self) -> &str {
        &self.client_id
    }

    fn capabilities(&self) -> &Capabilities {
        &self.capabilities
    }

    fn request_timeout(&self) -> Duration {
        self.http.timeout()
    }

    /// The issuer of the metadata (RFC 9207): a callback's `iss` naming another issuer is
    /// refused, and where the server advertises
    /// `authorization_response_iss_parameter_supported`, a callback without `iss` too.
    fn issuer(&self) -> Option<Issuer> {
        Some(Issuer {
            identifier: self.metadata.issuer.clone()?,
            always_sent: self.metadata.authorization_response_iss_parameter_supported,
        })
    }

    async fn start_device_authorization(&self, scopes: &[String]) -> Result<DeviceAuthorization> {
        self.device_authorization(scopes).await
    }

    async fn authorization_url(&self, request: &AuthorizationRequest) -> Result<Url> {
        self.require(request.flow)?;
        if !request.flow.is_redirect() {
            return Err(Error::unsupported(format!(
                "the {} flow has no authorization URL",
                request.flow
            )));
        }
        let redirect = RedirectUrl::new(request.redirect_uri.clone())
            .map_err(|err| Error::configuration(format!("the redirect URI is not a URL: {err}")))?;
        let client = self.oauth_client(self.token_auth);
        let state = request.state.expose_secret().to_owned();
        let mut authorization = client
            .authorize_url(|| CsrfToken::new(state))
            .map_err(|err| Error::configuration(err.to_string()))?
            .set_redirect_uri(Cow::Owned(redirect))
            .add_scopes(request.scopes.iter().cloned().map(Scope::new));
        if request.flow == FlowKind::Implicit {
            authorization = authorization.use_implicit_flow();
        } else if let Some(challenge) = &request.pkce_challenge {
            authorization = authorization
                .add_extra_param("code_challenge", challenge.clone())
                .add_extra_param("code_challenge_method", "S256");
        }
        Ok(authorization.url().0)
    }

    async fn exchange(&self, grant: Grant) -> Result<TokenSet> {
        match grant {
            Grant::AuthorizationCode {
                code,
                redirect_uri,
                pkce_verifier,
            } => {
                self.require(FlowKind::AuthorizationCode)?;
                let redirect = RedirectUrl::new(redirect_uri).map_err(|err| {
                    Error::configuration(format!("the redirect URI is not a URL: {err}"))
                })?;
                let client = self.oauth_client(self.token_auth);
                let mut request = client
                    .exchange_code(oauth2::AuthorizationCode::new(
                        code.expose_secret().to_owned(),
                    ))
                    .map_err(|err| Error::configuration(err.to_string()))?
                    .set_redirect_uri(Cow::Owned(redirect));
                if let Some(verifier) = pkce_verifier {
                    request = request.set_pkce_verifier(PkceCodeVerifier::new(
                        verifier.expose_secret().to_owned(),
                    ));
                }
                let request = prepared(request.request(&prepare))?;
                // Sent once: ProviderHttp never retries, and nothing here does.
                self.token_request(request, GrantKind::AuthorizationCode, &[])
                    .await
            }
            Grant::Implicit { params, scopes } => self.implicit_tokens(&params, scopes),
            Grant::ClientCredentials { scopes } => self.client_credentials(&scopes).await,
            Grant::DeviceCode { device_code } => self.device_token(&device_code).await,
            Grant::Password { .. } => Err(Error::unsupported(
                "the resource-owner password grant (RFC 9700 §2.4: must not be used); \
                 use the authorization-code flow",
            )),
            _ => Err(Error::unsupported("this grant")),
        }
    }

    async fn refresh(&self, tokens: &TokenSet) -> Result<TokenSet> {
        match tokens.grant {
            // Client credentials have no refresh token: the grant is simply repeated.
            GrantKind::ClientCredentials => self.client_credentials(&tokens.scopes).await,
            GrantKind::Implicit => Err(Error::unsupported(
                "implicit-grant tokens cannot be refreshed; authorize again",
            )),
            grant => {
                let Some(refresh_token) = &tokens.refresh_token else {
                    return Err(Error::unsupported(
                        "the grant has no refresh token; authorize again",
                    ));
                };
                let client = self.oauth_client(self.token_auth);
                let refresh = oauth2::RefreshToken::new(refresh_token.expose_secret().to_owned());
                let request = client
                    .exchange_refresh_token(&refresh)
                    .map_err(|err| Error::configuration(err.to_string()))?;
                let request = prepared(request.request(&prepare))?;
                let mut refreshed = self.token_request(request, grant, &tokens.scopes).await?;
                if refreshed.refresh_token.is_none() {
                    // RFC 6749 §6: no new refresh token means the old one stays valid.
                    refreshed.refresh_token = tokens.refresh_token.clone();
                    refreshed.refresh_expires_at =
                        refreshed.refresh_expires_at.or(tokens.refresh_expires_at);
                }
                refreshed.extras = tokens.extras.clone();
                Ok(refreshed)
            }
        }
    }

    /// The account: the client id for client credentials (the client acts for itself);
    /// otherwise the configured claims ([`account_claims`](StandardProviderBuilder::account_claims))
    /// from the userinfo endpoint, or from introspection when there is no userinfo endpoint
    /// or it names no one (e.g. without the `openid` scope). Never from the ID token, which
    /// is not verified here. When neither names the user, the error says what each said.
    async fn identify(&self, tokens: &TokenSet) -> Result<String> {
        if tokens.grant == GrantKind::ClientCredentials {
            return Ok(self.client_id.clone());
        }
        let mut said = Vec::new();
        match &self.metadata.userinfo_endpoint {
            Some(endpoint) => match self.userinfo_account(endpoint, tokens).await {
                Ok(account) => return Ok(account),
                Err(err) => said.push(format!("userinfo endpoint: {err}")),
            },
            None => said.push("no userinfo endpoint".to_owned()),
        }
        match self.introspection_auth {
            Some(auth) => match self.introspected_account(auth, tokens).await {
                Ok(account) => return Ok(account),
                Err(err) => said.push(format!("introspection endpoint: {err}")),
            },
            None => {
                said.push("no introspection endpoint this client can authenticate at".to_owned())
            }
        }
        Err(Error::bad_response(format!(
            "no endpoint named the user ({})",
            said.join("; ")
        )))
    }

    /// RFC 7009: revokes the refresh token (which ends the grant at RFC-following servers),
    /// then the access token. A server that cannot revoke access tokens
    /// (`unsupported_token_type`) leaves it to expire.
    async fn revoke(&self, tokens: &TokenSet) -> Result<Revocation> {
        let Some(auth) = self.revocation_auth else {
            return Ok(Revocation::NotSupported);
        };
        let revoked_grant = match &tokens.refresh_token {
            Some(refresh) => {
                self.revoke_one(auth, refresh.expose_secret(), "refresh_token")
                    .await?;
                true
            }
            None => false,
        };
        match self
            .revoke_one(auth, tokens.access_token.expose_secret(), "access_token")
            .await
        {
            Ok(()) => Ok(Revocation::Revoked),
            Err(Error::OAuth { code, .. }) if code == "unsupported_token_type" => {
                Ok(if revoked_grant {
                    Revocation::Revoked
                } else {
                    Revocation::NotSupported
                })
            }
            Err(err) if revoked_grant => {
                // The grant is already gone; the access token merely lives out its time.
                tracing::warn!(error = %err, "revoking the access token failed after the grant was revoked");
                Ok(Revocation::Revoked)
            }
            Err(err) => Err(err),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use grantkit_core::{clock::ManualClock, provider::PkceVerifier, store::StateToken};
    use std::time::SystemTime;

    const SECRET: &str = "s3cret-Value:with@chars";

    fn url(text: &str) -> Url {
        Url::parse(text).unwrap()
    }

    fn metadata() -> ServerMetadata {
        ServerMetadata::manual(url("https://as.example/token"))
            .with_issuer("https://as.example")
            .with_authorization_endpoint(url("https://as.example/authorize"))
    }

    fn builder(metadata: ServerMetadata) -> StandardProviderBuilder {
        StandardProvider::builder("cid", ClientSecret::new(SECRET)).metadata(metadata)
    }

    fn request(flow: FlowKind) -> AuthorizationRequest {
        AuthorizationRequest {
            flow,
            redirect_uri: "http://127.0.0.1:5/cb?app=1".to_owned(),
            scopes: vec!["read".to_owned(), "write".to_owned()],
            state: StateToken::new("the-state"),
            pkce_challenge: Some(PkceVerifier::new("v".repeat(43)).s256_challenge()),
        }
    }

    fn query(url: &Url, name: &str) -> Option<String> {
        url.query_pairs()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.into_owned())
    }

    #[tokio::test]
    async fn capabilities_follow_the_metadata_and_the_registration() {
        let provider = builder(metadata()).build().await.unwrap();
        let caps = provider.capabilities();
        assert_eq!(
            caps.flows,
            [FlowKind::AuthorizationCode, FlowKind::ClientCredentials]
        );
        assert!(caps.refresh && caps.pkce && caps.may_rotate_refresh_tokens);
        assert!(!caps.revoke_grant, "no revocation endpoint");
        assert_eq!(
            provider.issuer(),
            Some(Issuer {
                identifier: "https://as.example".into(),
                always_sent: false
            }),
            "iss not advertised: checked when present"
        );

        let with_implicit = metadata()
            .with_response_types(["code", "token"])
            .with_revocation_endpoint(url("https://as.example/revoke"))
            .with_iss_parameter(true);
        let provider = builder(with_implicit.clone())
            .flows([FlowKind::AuthorizationCode, FlowKind::Implicit])
            .refresh_token_rotation(false)
            .build()
            .await
            .unwrap();
        let caps = provider.capabilities();
        assert_eq!(
            caps.flows,
            [FlowKind::AuthorizationCode, FlowKind::Implicit]
        );
        assert!(caps.revoke_grant && !caps.may_rotate_refresh_tokens);
        assert_eq!(
            provider.issuer(),
            Some(Issuer {
                identifier: "https://as.example".into(),
                always_sent: true
            })
        );

        for flow in [FlowKind::Password, FlowKind::Implicit] {
            let err = builder(metadata()).flows([flow]).build().await.unwrap_err();
            assert!(matches!(err, Error::Configuration { .. }), "{err}");
        }
        let nothing = ServerMetadata::manual(url("https://as.example/token"))
            .with_grant_types(["refresh_token"]);
        assert!(builder(nothing).build().await.is_err());
    }

    #[tokio::test]
    async fn client_authentication_is_chosen_from_the_metadata() {
        let chosen = |methods: Option<&[&str]>| {
            let mut metadata = metadata();
            if let Some(methods) = methods {
                metadata = metadata.with_token_endpoint_auth_methods(methods.iter().copied());
            }
            async move { builder(metadata).build().await.map(|p| p.client_auth()) }
        };
        assert_eq!(chosen(None).await.unwrap(), ClientAuth::ClientSecretBasic);
        assert_eq!(
            chosen(Some(&[
                "private_key_jwt",
                "client_secret_post",
                "client_secret_basic"
            ]))
            .await
            .unwrap(),
            ClientAuth::ClientSecretBasic
        );
        assert_eq!(
            chosen(Some(&["client_secret_post"])).await.unwrap(),
            ClientAuth::ClientSecretPost
        );
        let err = chosen(Some(&["private_key_jwt"])).await.unwrap_err();
        assert!(err.to_string().contains("private_key_jwt"), "{err}");
        let forced = builder(metadata().with_token_endpoint_auth_methods(["client_secret_basic"]))
            .client_auth(ClientAuth::ClientSecretPost)
            .build()
            .await
            .unwrap();
        assert_eq!(forced.client_auth(), ClientAuth::ClientSecretPost);
    }

    #[tokio::test]
    async fn the_builder_refuses_an_incomplete_or_insecure_configuration() {
        let err = StandardProvider::builder("cid", ClientSecret::new(SECRET))
            .build()
            .await
            .unwrap_err();
        assert!(err.to_string().contains("issuer"), "{err}");
        let err = StandardProvider::builder("", ClientSecret::new(SECRET))
            .metadata(metadata())
            .build()
            .await
            .unwrap_err();
        assert!(matches!(err, Error::Configuration { .. }));
        for builder in [
            builder(metadata()).id(""),
            builder(metadata()).timeout(Duration::ZERO),
        ] {
            let err = builder.build().await.unwrap_err();
            assert!(matches!(err, Error::Configuration { .. }), "{err}");
        }
        let insecure = ServerMetadata::manual(url("https://as.example/token"))
            .with_authorization_endpoint(url("http://as.example/authorize"));
        let err = builder(insecure).build().await.unwrap_err();
        assert!(err.to_string().contains("authorization endpoint"), "{err}");
    }

    #[tokio::test]
    async fn the_code_flow_url_carries_pkce_and_the_exact_redirect_uri() {
        let provider = builder(metadata()).build().await.unwrap();
        let request = request(FlowKind::AuthorizationCode);
        let url = provider.authorization_url(&request).await.unwrap();
        assert!(url.as_str().starts_with("https://as.example/authorize?"));
        assert_eq!(query(&url, "response_type").as_deref(), Some("code"));
        assert_eq!(query(&url, "client_id").as_deref(), Some("cid"));
        assert_eq!(
            query(&url, "redirect_uri").as_deref(),
            Some("http://127.0.0.1:5/cb?app=1")
        );
        assert_eq!(query(&url, "scope").as_deref(), Some("read write"));
        assert_eq!(query(&url, "state").as_deref(), Some("the-state"));
        assert_eq!(query(&url, "code_challenge"), request.pkce_challenge);
        assert_eq!(
            query(&url, "code_challenge_method").as_deref(),
            Some("S256")
        );
        assert!(!url.as_str().contains(SECRET));

        let err = provider
            .authorization_url(&AuthorizationRequest {
                redirect_uri: "not a url".to_owned(),
                ..request
            })
            .await
            .unwrap_err();
        assert!(matches!(err, Error::Configuration { .. }), "{err}");
    }

    #[tokio::test]
    async fn implicit_tokens_are_read_from_the_fragment_and_never_refresh() {
        let clock = Arc::new(ManualClock::new(
            SystemTime::UNIX_EPOCH + Duration::from_secs(1_000),
        ));
        let provider = builder(metadata().with_response_types(["code", "token"]))
            .clock(clock.clone())
            .build()
            .await
            .unwrap();
        let url = provider
            .authorization_url(&request(FlowKind::Implicit))
            .await
            .unwrap();
        assert_eq!(query(&url, "response_type").as_deref(), Some("token"));
        assert_eq!(query(&url, "code_challenge"), None, "PKCE is for codes");

        let params: CallbackParams = [
            ("access_token", "tok"),
            ("token_type", "Bearer"),
            ("expires_in", "3600"),
            ("scope", "read"),
            ("refresh_token", "must-be-ignored"),
            ("state", "the-state"),
        ]
        .into_iter()
        .collect();
        let tokens = provider
            .exchange(Grant::Implicit {
                params,
                scopes: vec!["read".into(), "write".into()],
            })
            .await
            .unwrap();
        assert_eq!(tokens.grant, GrantKind::Implicit);
        assert_eq!(tokens.access_token.expose_secret(), "tok");
        assert_eq!(
            tokens.expires_at,
            Some(clock.now() + Duration::from_secs(3600))
        );
        assert!(
            tokens.refresh_token.is_none(),
            "no refresh token from an implicit grant"
        );
        assert_eq!(tokens.scopes, ["read"]);

        let err = provider.refresh(&tokens).await.unwrap_err();
        assert!(matches!(err, Error::Unsupported { .. }), "{err}");
        assert_eq!(
            provider.renewal(&tokens),
            grantkit_core::provider::Renewal::Reauthorize
        );

        let missing: CallbackParams = [("state", "s")].into_iter().collect();
        let err = provider
            .exchange(Grant::Implicit {
                params: missing,
                scopes: vec![],
            })
            .await
            .unwrap_err();
        assert!(
            matches!(
                err,
                Error::InvalidCallback {
                    reason: CallbackError::MissingParameter("access_token")
                }
            ),
            "{err}"
        );
    }

    #[tokio::test]
    async fn the_password_grant_and_unoffered_flows_are_unsupported() {
        let provider = builder(metadata())
            .flows([FlowKind::ClientCredentials])
            .build()
            .await
            .unwrap();
        let err = provider
            .exchange(Grant::Password {
                username: "u".into(),
                password: grantkit_core::Password::new("p"),
            })
            .await
            .unwrap_err();
        assert!(matches!(err, Error::Unsupported { .. }), "{err}");
        let err = provider
            .authorization_url(&request(FlowKind::AuthorizationCode))
            .await
            .unwrap_err();
        assert!(matches!(err, Error::Unsupported { .. }), "{err}");
        let tokens = TokenSet::new(
            grantkit_core::AccessToken::new("a"),
            GrantKind::AuthorizationCode,
        );
        let err = provider.refresh(&tokens).await.unwrap_err();
        assert!(
            matches!(err, Error::Unsupported { .. }),
            "no refresh token: {err}"
        );
        assert_eq!(
            provider.revoke(&tokens).await.unwrap(),
            Revocation::NotSupported
        );
    }

    #[test]
    fn token_answers_are_read_tolerantly_and_errors_typed() {
        let rules = TokenResponseRules {
            grant: GrantKind::AuthorizationCode,
            now: SystemTime::UNIX_EPOCH + Duration::from_secs(100),
            default_lifetime: None,
        };
        let answer = |status: u16, body: &str| HttpResponse {
            status: http::StatusCode::from_u16(status).unwrap(),
            headers: http::HeaderMap::new(),
            body: body.as_bytes().to_vec(),
        };
        let requested = ["read".to_owned()];
        let tokens = read_token_answer(
            &answer(
                200,
                r#"{"access_token":"a","expires_in":"60","refresh_token":"r"}"#,
            ),
            rules,
            &requested,
        )
        .unwrap();
        assert_eq!(tokens.expires_at, Some(rules.now + Duration::from_secs(60)));
        assert_eq!(tokens.token_type, "bearer");
        assert_eq!(
            tokens.scopes, requested,
            "an omitted scope is the one requested"
        );
        let tokens =
            read_token_answer(&answer(200, r#"{"access_token":"a"}"#), rules, &[]).unwrap();
        assert_eq!(tokens.expires_at, None, "no expiry known, none assumed");

        let err = read_token_answer(
            &answer(
                200,
                r#"{"error":"invalid_grant","error_description":"gone"}"#,
            ),
            rules,
            &[],
        )
        .unwrap_err();
        assert!(err.is_invalid_grant(), "an error with status 200: {err}");
        let err = read_token_answer(&answer(400, r#"{"error":"invalid_grant"}"#), rules, &[])
            .unwrap_err();
        assert!(err.is_invalid_grant(), "{err}");
        let err = read_token_answer(&answer(503, "<html>down</html>"), rules, &[]).unwrap_err();
        assert!(
            matches!(err, Error::Unavailable { status: 503, .. }),
            "{err}"
        );
        let err = read_token_answer(
            &answer(200, r#"{"access_token":"tok","token_type":"mac"}"#),
            rules,
            &[],
        )
        .unwrap_err();
        assert!(
            matches!(err, Error::Unsupported { .. }),
            "bearer only: {err}"
        );
        let err = read_token_answer(
            &answer(200, "{\"access_token\": \"secret-value"),
            rules,
            &[],
        )
        .unwrap_err();
        assert!(matches!(err, Error::BadResponse { .. }), "{err}");
        assert!(!err.to_string().contains("secret-value"));
    }

    #[tokio::test]
    async fn debug_output_shows_no_secret() {
        let builder = builder(metadata());
        assert!(!format!("{builder:?}").contains(SECRET));
        let provider = builder.build().await.unwrap();
        let shown = format!("{provider:?}");
        assert!(!shown.contains(SECRET), "{shown}");
        assert!(shown.contains("cid"));
    }
}
