//! `JoinMeProvider`: join.me's OAuth 2.0 server as a grantkit [`Provider`].

use crate::classify::{api_error, classify_response};
use crate::scope::{Scope, Scopes};
use async_trait::async_trait;
use grantkit_core::provider::http::{
    HttpResponse, ProviderHttp, TokenResponseRules, check_access_token, lifetime_from_text,
    parse_token_response, throttled, token_endpoint_error,
};
use grantkit_core::provider::text::untrusted;
use grantkit_core::{
    AccessToken, Callback, CallbackError, ClientSecret, Error, GrantKind, Provider, Result,
    Revocation, SecretUrl, TokenSet,
    clock::{Clock, SystemClock},
    flow::{CallbackParams, FlowKind},
    provider::{
        ApiResponse, AuthorizationRequest, Capabilities, Grant, Renewal, ResponseClass,
        bearer_header, is_loopback,
    },
};
use http::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE};
use oauth2::basic::BasicClient;
use oauth2::{AuthUrl, ClientId, CsrfToken, EndpointNotSet, EndpointSet, RedirectUrl};
use serde::Deserialize;
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime};
use url::Url;

/// The provider id, used as [`TokenKey::provider`](grantkit_core::TokenKey::provider).
pub const PROVIDER_ID: &str = "joinme";
/// The live authorize endpoint.
pub const DEFAULT_AUTHORIZE_URL: &str = "https://secure.join.me/api/public/v1/auth/oauth2";
/// The live token endpoint.
pub const DEFAULT_TOKEN_URL: &str = "https://secure.join.me/api/public/v1/auth/token";
/// Expire Access. The surviving documentation does not give its URL; this is the
/// `/auth/*` sibling the other endpoints suggest. Override it if join.me says otherwise.
pub const DEFAULT_EXPIRE_ACCESS_URL: &str =
    "https://secure.join.me/api/public/v1/auth/expireaccess";
/// Renew authorization, where the user revives an expired implicit-grant token.
pub const DEFAULT_RENEW_AUTHORIZATION_URL: &str =
    "https://secure.join.me/api/public/v1/auth/renewauthorization";
/// The REST API behind the Mashery gateway.
pub const DEFAULT_API_BASE: &str = "https://api.join.me/v1";
/// The lifetime join.me documents for every access token, assumed when the token
/// response has no `expires_in` (join.me usually sends none).
pub const DEFAULT_TOKEN_LIFETIME: Duration = Duration::from_secs(86_400);
/// The default timeout of one call to join.me.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

const FORM: &str = "application/x-www-form-urlencoded";
const JSON: &str = "application/json";
/// The callback parameter join.me adds after a renewal.
const RENEWED_FLAG: &str = "isAuthorizationRenewed";

type Authorizer =
    BasicClient<EndpointSet, EndpointNotSet, EndpointNotSet, EndpointNotSet, EndpointNotSet>;

/// The endpoints a [`JoinMeProvider`] talks to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Endpoints {
    /// `…/auth/oauth2`.
    pub authorize: Url,
    /// `…/auth/token`.
    pub token: Url,
    /// Expire Access.
    pub expire_access: Url,
    /// `…/auth/renewauthorization`.
    pub renew_authorization: Url,
    /// The REST API base, e.g. `https://api.join.me/v1`.
    pub api_base: Url,
}

/// Builds a [`JoinMeProvider`]; every URL can be overridden (live service, emulator,
/// sandbox).
#[derive(Clone)]
pub struct JoinMeProviderBuilder {
    client_id: String,
    client_secret: ClientSecret,
    authorize: String,
    token: String,
    expire_access: String,
    renew_authorization: String,
    renew: bool,
    api_base: String,
    default_scopes: Scopes,
    http: Option<reqwest::Client>,
    timeout: Duration,
    max_body: Option<usize>,
    clock: Arc<dyn Clock>,
}

impl fmt::Debug for JoinMeProviderBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JoinMeProviderBuilder")
            .field("client_id", &self.client_id)
            .field("client_secret", &self.client_secret)
            .field("authorize", &self.authorize)
            .field("token", &self.token)
            .field("expire_access", &self.expire_access)
            .field("renew_authorization", &self.renew_authorization)
            .field("renew", &self.renew)
            .field("api_base", &self.api_base)
            .field("default_scopes", &self.default_scopes)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl JoinMeProviderBuilder {
    /// Sets the authorize endpoint.
    pub fn authorize_url(mut self, url: impl Into<String>) -> Self {
        self.authorize = url.into();
        self
    }

    /// Sets the token endpoint.
    pub fn token_url(mut self, url: impl Into<String>) -> Self {
        self.token = url.into();
        self
    }

    /// Sets the Expire Access endpoint.
    pub fn expire_access_url(mut self, url: impl Into<String>) -> Self {
        self.expire_access = url.into();
        self
    }

    /// Sets the renew-authorization endpoint (used only with
    /// [`renew_authorization`](Self::renew_authorization)).
    pub fn renew_authorization_url(mut self, url: impl Into<String>) -> Self {
        self.renew_authorization = url.into();
        self
    }

    /// Renew expired implicit tokens at join.me's renew-authorization page instead of
    /// signing the user in again (default: off).
    ///
    /// join.me's documentation says: "Expired access token obtained through the implicit
    /// grant cannot be refreshed. Once expiring an implicit grant access token, you will
    /// need to send the user into the initial OAuth 2.0 workflow again." That is the
    /// default: an expired implicit token is
    /// [`Error::ReauthorizationRequired`](grantkit_core::Error::ReauthorizationRequired)
    /// with the flow to start again, and the dead grant is deleted. Only LogMeIn's own
    /// sample application shows a renew page (`…/auth/renewauthorization`, answered with
    /// `?isAuthorizationRenewed=true` and the same token valid again); on, an expired
    /// implicit token is [`Error::RenewRequired`](grantkit_core::Error::RenewRequired)
    /// carrying that page's URL, completed by
    /// [`TokenManager::complete_renewal`](grantkit_core::TokenManager::complete_renewal).
    pub fn renew_authorization(mut self, yes: bool) -> Self {
        self.renew = yes;
        self
    }

    /// Sets the REST API base (`…/v1`, no trailing slash needed).
    pub fn api_base(mut self, url: impl Into<String>) -> Self {
        self.api_base = url.into();
        self
    }

    /// Serves every endpoint from one base URL with join.me's paths, as the emulator
    /// does: `{base}/api/public/v1/auth/…` and `{base}/v1`.
    pub fn base_url(self, base: &str) -> Self {
        let origin = base.trim_end_matches('/');
        self.authorize_url(format!("{origin}/api/public/v1/auth/oauth2"))
            .token_url(format!("{origin}/api/public/v1/auth/token"))
            .expire_access_url(format!("{origin}/api/public/v1/auth/expireaccess"))
            .renew_authorization_url(format!("{origin}/api/public/v1/auth/renewauthorization"))
            .api_base(format!("{origin}/v1"))
    }

    /// The scopes asked for when a flow names none (join.me refuses an empty scope). The
    /// default is [`Scopes::usual`]: `user_info scheduler start_meeting`. `user_info` is
    /// always added to what a flow asks for: the user is identified with it.
    pub fn default_scopes(mut self, scopes: impl Into<Scopes>) -> Self {
        self.default_scopes = scopes.into();
        self
    }

    /// Uses your `reqwest::Client` (proxy, TLS roots, pool) for the provider's own calls.
    /// Build it with `redirect(Policy::none())`: a redirected token request could carry the
    /// client secret elsewhere.
    pub fn http_client(mut self, client: reqwest::Client) -> Self {
        self.http = Some(client);
        self
    }

    /// The timeout of each call to join.me (default 30 s).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The cap on an answer from join.me (default 1 MiB).
    pub fn max_body(mut self, bytes: usize) -> Self {
        self.max_body = Some(bytes);
        self
    }

    /// The clock that dates token expiries (default: the system clock).
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// Checks the configuration and builds the provider.
    pub fn build(self) -> Result<JoinMeProvider> {
        if self.client_id.trim().is_empty() {
            return Err(Error::configuration(
                "the join.me client id (API key) is empty",
            ));
        }
        if self.client_secret.expose_secret().is_empty() {
            return Err(Error::configuration("the join.me client secret is empty"));
        }
        if self.default_scopes.is_empty() {
            return Err(Error::configuration(
                "the default scopes are empty; join.me requires at least one scope",
            ));
        }
        if self.timeout.is_zero() {
            return Err(Error::configuration("the request timeout is zero"));
        }
        let endpoints = Endpoints {
            authorize: endpoint("authorize", &self.authorize)?,
            token: endpoint("token", &self.token)?,
            expire_access: endpoint("Expire Access", &self.expire_access)?,
            renew_authorization: endpoint("renew authorization", &self.renew_authorization)?,
            api_base: endpoint("API base", self.api_base.trim_end_matches('/'))?,
        };
        let authorizer = BasicClient::new(ClientId::new(self.client_id.clone()))
            .set_auth_uri(AuthUrl::from_url(endpoints.authorize.clone()));
        let http = match self.http {
            Some(client) => ProviderHttp::with_client(client),
            None => ProviderHttp::new(),
        }
        .with_timeout(self.timeout);
        let http = match self.max_body {
            Some(bytes) => http.with_max_body(bytes),
            None => http,
        };
        let capabilities = Capabilities::default()
            .with_flows([FlowKind::AuthorizationCode, FlowKind::Implicit])
            .with_refresh(true)
            // join.me does not say whether a refresh rotates the refresh token: assume it
            // may, so a refresh whose outcome is unknown is never replayed.
            .with_rotation(true)
            .with_pkce(false)
            .with_expire_access(true)
            .with_revoke_grant(false)
            .with_renew_authorization(self.renew)
            .with_scopes(Scope::ALL.map(Scope::as_str));
        Ok(JoinMeProvider {
            client_id: self.client_id,
            client_secret: self.client_secret,
            endpoints,
            default_scopes: self.default_scopes,
            http,
            clock: self.clock,
            capabilities,
            authorizer,
        })
    }
}

/// An endpoint URL: absolute, HTTPS, or plain HTTP to a loopback address only.
fn endpoint(name: &str, raw: &str) -> Result<Url> {
    let url = Url::parse(raw).map_err(|err| {
        Error::configuration(format!("the join.me {name} URL is not a URL: {err}"))
    })?;
    match url.scheme() {
        "https" => Ok(url),
        "http" if is_loopback(&url) => Ok(url),
        scheme => Err(Error::configuration(format!(
            "the join.me {name} URL must be HTTPS (plain HTTP only to loopback), not {scheme}://{}",
            url.host_str().unwrap_or("")
        ))),
    }
}

/// join.me as a grantkit provider: the implicit (fragment) and authorization-code flows,
/// refresh, Expire Access, renew authorization, identity from `GET /v1/user`, and the
/// Mashery gateway's answers classified.
///
/// ```
/// use grantkit_core::ClientSecret;
/// use grantkit_joinme::{JoinMeProvider, Scope};
///
/// let provider = JoinMeProvider::builder("my-api-key", ClientSecret::new("my-secret"))
///     .default_scopes([Scope::UserInfo, Scope::Scheduler])
///     .build()?;
/// assert_eq!(provider.endpoints().api_base.as_str(), "https://api.join.me/v1");
/// # Ok::<(), grantkit_core::Error>(())
/// ```
pub struct JoinMeProvider {
    client_id: String,
    client_secret: ClientSecret,
    endpoints: Endpoints,
    default_scopes: Scopes,
    http: ProviderHttp,
    clock: Arc<dyn Clock>,
    capabilities: Capabilities,
    authorizer: Authorizer,
}

impl fmt::Debug for JoinMeProvider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JoinMeProvider")
            .field("client_id", &self.client_id)
            .field("client_secret", &self.client_secret)
            .field("endpoints", &self.endpoints)
            .field("default_scopes", &self.default_scopes)
            .field("http", &self.http)
            .finish_non_exhaustive()
    }
}

impl JoinMeProvider {
    /// A builder with the live endpoints, the usual scopes, a 30 s timeout and the system
    /// clock.
    pub fn builder(
        client_id: impl Into<String>,
        client_secret: ClientSecret,
    ) -> JoinMeProviderBuilder {
        JoinMeProviderBuilder {
            client_id: client_id.into(),
            client_secret,
            authorize: DEFAULT_AUTHORIZE_URL.to_owned(),
            token: DEFAULT_TOKEN_URL.to_owned(),
            expire_access: DEFAULT_EXPIRE_ACCESS_URL.to_owned(),
            renew_authorization: DEFAULT_RENEW_AUTHORIZATION_URL.to_owned(),
            renew: false,
            api_base: DEFAULT_API_BASE.to_owned(),
            default_scopes: Scopes::usual(),
            http: None,
            timeout: DEFAULT_REQUEST_TIMEOUT,
            max_body: None,
            clock: Arc::new(SystemClock),
        }
    }

    /// The endpoints in use.
    pub fn endpoints(&self) -> &Endpoints {
        &self.endpoints
    }

    /// The scopes asked for when a flow names none.
    pub fn default_scopes(&self) -> Scopes {
        self.default_scopes
    }

    /// The typed API client for one grant (see [`crate::JoinMeClient`]), on this provider's
    /// API base.
    pub fn api_client(&self, client: grantkit_core::AuthorizedClient) -> crate::JoinMeClient {
        crate::JoinMeClient::from_url(client, self.endpoints.api_base.clone())
    }

    /// The renew-authorization URL for `tokens`:
    /// `…/renewauthorization?client_id=…&access_token=…`. It carries the access token, so
    /// it is a [`SecretUrl`]: open it in the user's browser, never log it.
    pub fn renew_url(&self, tokens: &TokenSet) -> SecretUrl {
        let mut url = self.endpoints.renew_authorization.clone();
        url.query_pairs_mut()
            .append_pair("client_id", &self.client_id)
            .append_pair("access_token", tokens.access_token.expose_secret());
        SecretUrl::new(String::from(url))
    }

    fn rules(&self, grant: GrantKind) -> TokenResponseRules {
        TokenResponseRules {
            grant,
            now: self.clock.now(),
            default_lifetime: Some(DEFAULT_TOKEN_LIFETIME),
        }
    }

    /// POSTs a form to `url`, with JSON expected back.
    async fn post_form(&self, url: &Url, params: &[(&str, &str)]) -> Result<HttpResponse> {
        let body = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(params)
            .finish();
        let request = self
            .http
            .client()?
            .post(url.clone())
            .header(CONTENT_TYPE, FORM)
            .header(ACCEPT, JSON)
            .body(body);
        self.http.send(request).await
    }

    /// A token-endpoint exchange: the form, then a tolerant reading of the answer.
    async fn token_exchange(
        &self,
        params: &[(&str, &str)],
        grant: GrantKind,
        refresh: bool,
    ) -> Result<TokenSet> {
        let response = self.post_form(&self.endpoints.token, params).await?;
        tracing::debug!(
            grant_type = if refresh {
                "refresh_token"
            } else {
                "authorization_code"
            },
            status = response.status.as_u16(),
            "join.me token endpoint answered"
        );
        if !response.status.is_success() {
            return Err(token_error(&response, refresh));
        }
        parse_token_response(&response.body, self.rules(grant))
    }

    /// `GET /v1/user` with `tokens`; join.me documents 201 for it, and answers 200 too.
    async fn get_user(&self, tokens: &TokenSet) -> Result<String> {
        #[derive(Deserialize)]
        struct UserEmail {
            email: Option<String>,
        }
        let url = format!("{}/user", self.endpoints.api_base);
        let request = self
            .http
            .client()?
            .get(url)
            .header(ACCEPT, JSON)
            .header(AUTHORIZATION, bearer_header(&tokens.access_token)?);
        let response = self.http.send(request).await?;
        if !response.status.is_success() {
            let class = self.classify(&ApiResponse {
                status: response.status,
                headers: &response.headers,
                body: &response.body,
            });
            return Err(match class {
                ResponseClass::TokenExpired
                    if tokens.refresh_token.is_none() && self.capabilities.renew_authorization =>
                {
                    Error::RenewRequired {
                        renew_url: self.renew_url(tokens),
                    }
                }
                other => api_error(response.status, &other, &response.body),
            });
        }
        let user: UserEmail = response.json()?;
        match user.email.map(|e| e.trim().to_owned()) {
            Some(email)
                if !email.is_empty()
                    && email.len() <= 320
                    && !email.chars().any(|c| c.is_control() || c.is_whitespace()) =>
            {
                Ok(email)
            }
            _ => Err(Error::bad_response(
                "join.me's user has no usable `email` (the account's only identifier)",
            )),
        }
    }

    /// The token set of an implicit grant, from the redirect's fragment.
    fn implicit_tokens(&self, params: &CallbackParams, scopes: Vec<String>) -> Result<TokenSet> {
        let token =
            params
                .get("access_token")
                .ok_or(Error::callback(CallbackError::MissingParameter(
                    "access_token",
                )))?;
        check_access_token(token).map_err(|_| {
            Error::callback(CallbackError::Malformed(
                "the access_token is empty or has whitespace or control characters",
            ))
        })?;
        if let Some(kind) = params.get("token_type")
            && !kind.eq_ignore_ascii_case("bearer")
        {
            return Err(Error::unsupported(format!(
                "token type `{}` (only bearer tokens are supported)",
                untrusted(kind, 32)
            )));
        }
        // join.me's fragment may carry no expiry, or one that is not a number: its tokens
        // live 24 hours.
        let lifetime = params
            .get("expires_in")
            .and_then(lifetime_from_text)
            .unwrap_or(DEFAULT_TOKEN_LIFETIME);
        // join.me's fragment names no scope: the grant has the scopes asked for, which
        // are the flow's plus `user_info` (see `scopes_for`).
        let scopes = match params.get("scope") {
            Some(granted) if !granted.trim().is_empty() => {
                granted.split_whitespace().map(str::to_owned).collect()
            }
            _ => self
                .scopes_for(&scopes)
                .map(Scopes::names)
                .unwrap_or(scopes),
        };
        Ok(TokenSet::new(AccessToken::new(token), GrantKind::Implicit)
            .expiring_in(self.clock.now(), lifetime)
            .with_scopes(scopes))
    }

    /// The scopes to send: the flow's (checked against join.me's set), or the default;
    /// always with `user_info`, without which the user cannot be identified (join.me's only
    /// user identifier is the `email` of `GET /v1/user`).
    fn scopes_for(&self, requested: &[String]) -> Result<Scopes> {
        let scopes = Scopes::from_names(requested)?;
        let scopes = if scopes.is_empty() {
            self.default_scopes
        } else {
            scopes
        };
        Ok(scopes.with(Scope::UserInfo))
    }
}

/// The error of a failed token-endpoint answer.
///
/// join.me's own codes are normalised: `invalid_authorization_code` (expired, used or
/// unknown code) is `invalid_grant`, as is any refusal of a refresh token; `server_error`
/// keeps its `error_ticket_id` (join.me support's reference, not a secret). Everything
/// else is read as RFC 6749 §5.2, with 429 and 5xx typed by status.
fn token_error(response: &HttpResponse, refresh: bool) -> Error {
    #[derive(Deserialize)]
    struct OAuthError {
        error: Option<String>,
        error_description: Option<String>,
        error_ticket_id: Option<String>,
    }
    if let Some(err) = throttled(response.status, &response.headers) {
        return err;
    }
    let Ok(body) = serde_json::from_slice::<OAuthError>(&response.body) else {
        return token_endpoint_error(response);
    };
    let Some(code) = body.error.filter(|c| !c.is_empty() && c.len() <= 128) else {
        return token_endpoint_error(response);
    };
    let description = body
        .error_description
        .filter(|d| !d.trim().is_empty())
        .map(|d| untrusted(&d, 300));
    let status = response.status.as_u16();
    match code.as_str() {
        "invalid_authorization_code" => Error::oauth(
            "invalid_grant",
            Some(
                "join.me: invalid_authorization_code (the code expired, was used, or is unknown)"
                    .into(),
            ),
        ),
        "server_error" => {
            let ticket = body
                .error_ticket_id
                .map(|t| {
                    t.chars()
                        .filter(char::is_ascii_alphanumeric)
                        .take(32)
                        .collect::<String>()
                })
                .filter(|t| !t.is_empty());
            tracing::warn!(
                status,
                error_ticket_id = ticket.as_deref().unwrap_or("-"),
                "join.me's token endpoint failed"
            );
            Error::oauth(
                "server_error",
                Some(match ticket {
                    Some(ticket) => format!("join.me error ticket {ticket}"),
                    None => description.unwrap_or_else(|| "join.me's backend failed".into()),
                }),
            )
        }
        "invalid_grant" | "invalid_token" | "invalid_refresh_token" | "expired_token"
            if refresh =>
        {
            Error::oauth(
                "invalid_grant",
                Some(match description {
                    Some(d) if code == "invalid_grant" => d,
                    _ => format!("join.me refused the refresh token ({code})"),
                }),
            )
        }
        _ => {
            let err = Error::oauth(code, description);
            tracing::info!(status, error = %err, "join.me's token endpoint refused the request");
            err
        }
    }
}

/// Expire Access's answer: `{"success": true | "true" | false | "false", "message": …}`.
#[derive(Deserialize)]
struct ExpireAnswer {
    #[serde(default)]
    success: Option<serde_json::Value>,
    #[serde(default, alias = "Message")]
    message: Option<serde_json::Value>,
}

impl ExpireAnswer {
    /// `Some(true)` for `true`/`"true"`, `Some(false)` for `false`/`"false"`, `None` when
    /// absent or anything else.
    fn success(&self) -> Option<bool> {
        match &self.success {
            Some(serde_json::Value::Bool(b)) => Some(*b),
            Some(serde_json::Value::String(s)) if s.trim().eq_ignore_ascii_case("true") => {
                Some(true)
            }
            Some(serde_json::Value::String(s)) if s.trim().eq_ignore_ascii_case("false") => {
                Some(false)
            }
            _ => None,
        }
    }

    fn message(&self) -> String {
        match &self.message {
            Some(serde_json::Value::String(m)) if !m.trim().is_empty() => untrusted(m, 200),
            _ => "Expire Access failed".to_owned(),
        }
    }
}

#[async_trait]
impl Provider for JoinMeProvider {
    fn id(&self) -> &str {
        PROVIDER_ID
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

    async fn authorization_url(&self, request: &AuthorizationRequest) -> Result<Url> {
        if !matches!(
            request.flow,
            FlowKind::AuthorizationCode | FlowKind::Implicit
        ) {
            return Err(Error::unsupported(format!(
                "join.me offers the authorization-code and implicit flows, not {}",
                request.flow
            )));
        }
        let scopes = self.scopes_for(&request.scopes)?;
        let redirect = RedirectUrl::new(request.redirect_uri.clone())
            .map_err(|err| Error::configuration(format!("the redirect URI is not a URL: {err}")))?;
        let state = CsrfToken::new(request.state.expose_secret().to_owned());
        // join.me wants one `scope` parameter, space-separated; oauth2 joins its scopes
        // with one space, so the set goes in already joined, in a stable order.
        let mut authorize = self
            .authorizer
            .authorize_url(|| state)
            .set_redirect_uri(std::borrow::Cow::Owned(redirect))
            .add_scope(oauth2::Scope::new(scopes.to_string()));
        if request.flow == FlowKind::Implicit {
            authorize = authorize.use_implicit_flow();
        }
        // join.me has no PKCE: a challenge (never asked for, as `pkce` is not declared) is
        // not sent.
        let (url, _state) = authorize.url();
        Ok(url)
    }

    async fn exchange(&self, grant: Grant) -> Result<TokenSet> {
        match grant {
            Grant::AuthorizationCode {
                code, redirect_uri, ..
            } => {
                // The code is sent once: no retry here, whatever happens.
                let params = [
                    ("grant_type", "authorization_code"),
                    ("code", code.expose_secret()),
                    ("client_id", self.client_id.as_str()),
                    ("client_secret", self.client_secret.expose_secret()),
                    ("redirect_uri", redirect_uri.as_str()),
                ];
                self.token_exchange(&params, GrantKind::AuthorizationCode, false)
                    .await
            }
            Grant::Implicit { params, scopes } => self.implicit_tokens(&params, scopes),
            _ => Err(Error::unsupported(
                "join.me offers the authorization-code and implicit flows only",
            )),
        }
    }

    async fn refresh(&self, tokens: &TokenSet) -> Result<TokenSet> {
        let refresh_token = match (&tokens.refresh_token, tokens.grant) {
            (Some(token), GrantKind::AuthorizationCode) => token,
            _ => {
                return Err(Error::unsupported(
                    "join.me refreshes authorization-code tokens only; an implicit token cannot be refreshed",
                ));
            }
        };
        let params = [
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh_token.expose_secret()),
            ("client_id", self.client_id.as_str()),
            ("client_secret", self.client_secret.expose_secret()),
        ];
        let mut fresh = self
            .token_exchange(&params, GrantKind::AuthorizationCode, true)
            .await?;
        // Whether join.me rotates is unknown: without a new refresh token, the old one stays.
        if fresh.refresh_token.is_none() {
            fresh.refresh_token = tokens.refresh_token.clone();
            fresh.refresh_expires_at = fresh.refresh_expires_at.or(tokens.refresh_expires_at);
        }
        if fresh.scopes.is_empty() {
            fresh.scopes = tokens.scopes.clone();
        }
        for (name, value) in &tokens.extras {
            if !fresh.extras.contains_key(name) {
                fresh.extras.insert(name, value);
            }
        }
        Ok(fresh)
    }

    async fn identify(&self, tokens: &TokenSet) -> Result<String> {
        self.get_user(tokens).await
    }

    /// join.me's Expire Access: the access token stops working (after a propagation delay
    /// of up to ten minutes), its refresh token keeps working.
    async fn revoke(&self, tokens: &TokenSet) -> Result<Revocation> {
        let params = [
            ("access_token", tokens.access_token.expose_secret()),
            ("client_id", self.client_id.as_str()),
            ("client_secret", self.client_secret.expose_secret()),
        ];
        let response = self
            .post_form(&self.endpoints.expire_access, &params)
            .await?;
        let status = response.status;
        tracing::debug!(status = status.as_u16(), "join.me Expire Access answered");
        let answer = serde_json::from_slice::<ExpireAnswer>(&response.body).ok();
        if status.is_success() {
            return match answer {
                // A success status is taken at its word unless the body says otherwise.
                Some(answer) if answer.success() == Some(false) => {
                    Err(Error::api(status.as_u16(), answer.message()))
                }
                Some(_) => Ok(Revocation::AccessExpired),
                None if response.body.iter().all(u8::is_ascii_whitespace) => {
                    Ok(Revocation::AccessExpired)
                }
                None => Err(Error::bad_response(
                    "join.me's Expire Access answer is not JSON",
                )),
            };
        }
        match answer {
            Some(answer) if answer.success.is_some() => {
                Err(Error::api(status.as_u16(), answer.message()))
            }
            // An OAuth error (`invalid_client`), 429 or 5xx keeps its type; any other
            // refusal (a 404 page where Expire Access was expected) is the call's failure.
            _ => Err(match token_error(&response, false) {
                Error::BadResponse { .. } => Error::api(
                    status.as_u16(),
                    format!("Expire Access answered HTTP {}", status.as_u16()),
                ),
                other => other,
            }),
        }
    }

    /// Code-grant tokens refresh. Implicit tokens (and any without a refresh token) mean
    /// signing in again through the initial flow, as join.me documents; or, with
    /// [`renew_authorization`](JoinMeProviderBuilder::renew_authorization), renewing at the
    /// renew-authorization URL.
    fn renewal(&self, tokens: &TokenSet) -> Renewal {
        match (&tokens.refresh_token, tokens.grant) {
            (Some(_), GrantKind::AuthorizationCode) => Renewal::Refresh,
            _ if self.capabilities.renew_authorization => Renewal::Renew(self.renew_url(tokens)),
            _ => Renewal::Reauthorize,
        }
    }

    /// After the user renewed at the renew URL, join.me redirects to the callback with
    /// `?isAuthorizationRenewed=true` and no token: the same token is valid for another 24
    /// hours. The callback carries no state, so the renewal is confirmed with the API
    /// (`GET /v1/user`) before the token is dated anew; a forged callback changes nothing.
    async fn complete_renewal(
        &self,
        tokens: &TokenSet,
        callback: &Callback,
        now: SystemTime,
    ) -> Result<TokenSet> {
        if !self.capabilities.renew_authorization {
            return Err(Error::unsupported(
                "renewal is off: an expired join.me implicit token means signing in again \
                 (JoinMeProviderBuilder::renew_authorization turns renewal on)",
            ));
        }
        let params = if callback.query.is_empty() {
            &callback.fragment
        } else {
            &callback.query
        };
        if let Some(code) = params.get("error") {
            return Err(Error::oauth(
                code,
                params.get("error_description").map(str::to_owned),
            ));
        }
        let flag =
            params
                .get(RENEWED_FLAG)
                .ok_or(Error::callback(CallbackError::MissingParameter(
                    RENEWED_FLAG,
                )))?;
        if matches!(
            flag.trim().to_ascii_lowercase().as_str(),
            "false" | "0" | "no"
        ) {
            return Err(Error::oauth(
                "access_denied",
                Some("join.me did not renew the authorization".into()),
            ));
        }
        // The flag's value is not documented beyond `true`: the API has the last word. A
        // token it still calls expired was not revived (Expire Access, or a forged
        // callback): the grant is over.
        match self.get_user(tokens).await {
            Err(Error::RenewRequired { .. }) => {
                return Err(Error::reauthorize(
                    "join.me still calls the token expired after the renewal: sign in again",
                ));
            }
            other => {
                other?;
            }
        }
        let mut renewed = tokens.clone();
        renewed.expires_at = Some(now + DEFAULT_TOKEN_LIFETIME);
        Ok(renewed)
    }

    fn classify<'a>(&self, response: &ApiResponse<'a>) -> ResponseClass {
        classify_response(response)
    }

    /// The refused call's error, with join.me's `Message` where it sent one.
    fn refusal<'a>(&self, response: &ApiResponse<'a>) -> Error {
        api_error(response.status, &ResponseClass::Permanent, response.body)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use grantkit_core::{RefreshToken, store::StateToken};
    use http::StatusCode;

    fn provider() -> JoinMeProvider {
        JoinMeProvider::builder("apikey0123", ClientSecret::new("S3cr3tKey9"))
            .build()
            .unwrap()
    }

    fn request(flow: FlowKind, scopes: &[&str]) -> AuthorizationRequest {
        AuthorizationRequest {
            flow,
            redirect_uri: "https://app.example/cb?x=1".into(),
            scopes: scopes.iter().map(|s| (*s).to_owned()).collect(),
            state: StateToken::new("st4te"),
            pkce_challenge: None,
        }
    }

    #[tokio::test]
    async fn authorization_urls_carry_the_request_for_both_flows() {
        let provider = provider();
        let url = provider
            .authorization_url(&request(
                FlowKind::AuthorizationCode,
                &["scheduler", "user_info"],
            ))
            .await
            .unwrap();
        assert!(url.as_str().starts_with(DEFAULT_AUTHORIZE_URL));
        let pairs: Vec<(String, String)> = url.query_pairs().into_owned().collect();
        let get = |k: &str| pairs.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
        assert_eq!(get("response_type"), Some("code"));
        assert_eq!(get("client_id"), Some("apikey0123"));
        assert_eq!(get("redirect_uri"), Some("https://app.example/cb?x=1"));
        assert_eq!(get("scope"), Some("user_info scheduler"));
        assert_eq!(get("state"), Some("st4te"));
        assert_eq!(pairs.iter().filter(|(k, _)| k == "scope").count(), 1);
        assert!(url.as_str().contains("scope=user_info+scheduler"));

        let url = provider
            .authorization_url(&request(FlowKind::AuthorizationCode, &["provisioning"]))
            .await
            .unwrap();
        assert!(
            url.query_pairs()
                .any(|(k, v)| k == "scope" && v == "user_info provisioning"),
            "user_info is always asked for: the user is identified with it"
        );
        let url = provider
            .authorization_url(&request(FlowKind::Implicit, &[]))
            .await
            .unwrap();
        let pairs: Vec<(String, String)> = url.query_pairs().into_owned().collect();
        assert!(pairs.contains(&("response_type".into(), "token".into())));
        assert!(pairs.contains(&("scope".into(), "user_info scheduler start_meeting".into())));

        let err = provider
            .authorization_url(&request(FlowKind::Password, &[]))
            .await
            .unwrap_err();
        assert!(matches!(err, Error::Unsupported { .. }));
        let err = provider
            .authorization_url(&request(FlowKind::Implicit, &["admin"]))
            .await
            .unwrap_err();
        assert!(matches!(err, Error::Configuration { .. }));
    }

    #[test]
    fn builder_refuses_bad_configuration_and_hides_the_secret() {
        let bad = |b: JoinMeProviderBuilder| b.build().unwrap_err();
        let base = || JoinMeProvider::builder("id", ClientSecret::new("S3cr3tKey9"));
        assert!(matches!(
            bad(base().token_url("http://secure.join.me/token")),
            Error::Configuration { .. }
        ));
        assert!(matches!(
            bad(base().api_base("not a url")),
            Error::Configuration { .. }
        ));
        assert!(matches!(
            bad(JoinMeProvider::builder("", ClientSecret::new("x"))),
            Error::Configuration { .. }
        ));
        assert!(matches!(
            bad(JoinMeProvider::builder("id", ClientSecret::new(""))),
            Error::Configuration { .. }
        ));
        assert!(matches!(
            bad(base().default_scopes(Scopes::empty())),
            Error::Configuration { .. }
        ));
        let local = base().base_url("http://127.0.0.1:8080/").build().unwrap();
        assert_eq!(
            local.endpoints().token.as_str(),
            "http://127.0.0.1:8080/api/public/v1/auth/token"
        );
        assert_eq!(
            local.endpoints().api_base.as_str(),
            "http://127.0.0.1:8080/v1"
        );
        for shown in [format!("{local:?}"), format!("{:?}", base())] {
            assert!(!shown.contains("S3cr3tKey9"), "{shown}");
        }
    }

    #[test]
    fn capabilities_say_what_join_me_can_do() {
        let provider = provider();
        let caps = provider.capabilities();
        assert!(caps.supports(FlowKind::AuthorizationCode) && caps.supports(FlowKind::Implicit));
        assert!(caps.refresh && caps.may_rotate_refresh_tokens && caps.expire_access);
        assert!(!caps.renew_authorization && !caps.revoke_grant && !caps.pkce);
        assert_eq!(provider.id(), "joinme");
    }

    #[test]
    fn joinme_expired_implicit_token_requires_the_initial_flow() {
        // "Expired access token obtained through the implicit grant cannot be refreshed.
        // Once expiring an implicit grant access token, you will need to send the user into
        // the initial OAuth 2.0 workflow again."
        let provider = provider();
        let code = TokenSet::new(AccessToken::new("acc3ss"), GrantKind::AuthorizationCode)
            .with_refresh_token(RefreshToken::new("r3fresh"));
        assert_eq!(provider.renewal(&code), Renewal::Refresh);
        let implicit = TokenSet::new(AccessToken::new("acc3ss"), GrantKind::Implicit);
        assert_eq!(provider.renewal(&implicit), Renewal::Reauthorize);
    }

    #[test]
    fn renewal_when_opted_in_renews_implicit_tokens_at_the_renew_page() {
        let provider = JoinMeProvider::builder("apikey0123", ClientSecret::new("S3cr3tKey9"))
            .renew_authorization(true)
            .build()
            .unwrap();
        assert!(provider.capabilities().renew_authorization);
        let implicit = TokenSet::new(AccessToken::new("acc3ss"), GrantKind::Implicit);
        let Renewal::Renew(url) = provider.renewal(&implicit) else {
            panic!("implicit tokens are renewed when renewal is on");
        };
        let parsed = url.expose_url().unwrap();
        assert_eq!(parsed.path(), "/api/public/v1/auth/renewauthorization");
        let pairs: Vec<(String, String)> = parsed.query_pairs().into_owned().collect();
        assert_eq!(
            pairs,
            [
                ("client_id".to_owned(), "apikey0123".to_owned()),
                ("access_token".to_owned(), "acc3ss".to_owned())
            ]
        );
        assert!(!format!("{url:?} {url}").contains("acc3ss"));
        let err = Error::RenewRequired { renew_url: url };
        assert!(!format!("{err:?} {err}").contains("acc3ss"));
    }

    #[test]
    fn implicit_fragments_are_read_tolerantly() {
        let provider = provider();
        let fragment = |text: &str| CallbackParams::parse(text).unwrap();
        let scopes = vec!["user_info".to_owned()];
        let tokens = provider
            .implicit_tokens(&fragment("access_token=t0k&state=s"), scopes.clone())
            .unwrap();
        assert_eq!(tokens.grant, GrantKind::Implicit);
        assert!(tokens.refresh_token.is_none());
        assert_eq!(tokens.scopes, scopes);
        let expires = tokens.expires_at.unwrap();
        let lifetime = expires.duration_since(SystemTime::now()).unwrap();
        assert!(lifetime > Duration::from_secs(86_000) && lifetime <= DEFAULT_TOKEN_LIFETIME);

        let tokens = provider
            .implicit_tokens(
                &fragment("access_token=t0k&token_type=Bearer&expires_in=60"),
                scopes.clone(),
            )
            .unwrap();
        assert!(tokens.expires_at.unwrap() <= SystemTime::now() + Duration::from_secs(60));

        // An expiry that is not a number is join.me's documented default; one at or below
        // zero is already past.
        let tokens = provider
            .implicit_tokens(
                &fragment("access_token=t0k&expires_in=soon"),
                scopes.clone(),
            )
            .unwrap();
        let lifetime = tokens
            .expires_at
            .unwrap()
            .duration_since(SystemTime::now())
            .unwrap();
        assert!(lifetime > Duration::from_secs(86_000));
        let tokens = provider
            .implicit_tokens(&fragment("access_token=t0k&expires_in=-5"), scopes.clone())
            .unwrap();
        assert!(tokens.is_expired(SystemTime::now()));

        for bad in [
            "state=s",
            "access_token=",
            "access_token=a+b",
            "access_token=t%01k",
        ] {
            let err = provider
                .implicit_tokens(&fragment(bad), scopes.clone())
                .unwrap_err();
            assert!(matches!(err, Error::InvalidCallback { .. }), "{bad}: {err}");
            assert!(!err.to_string().contains("t0k"));
        }
        let err = provider
            .implicit_tokens(&fragment("access_token=t0k&token_type=mac"), scopes)
            .unwrap_err();
        assert!(matches!(err, Error::Unsupported { .. }));
    }

    fn answer(status: u16, body: &str) -> HttpResponse {
        HttpResponse {
            status: StatusCode::from_u16(status).unwrap(),
            headers: http::HeaderMap::new(),
            body: body.as_bytes().to_vec(),
        }
    }

    #[test]
    fn token_errors_are_normalised() {
        let err = token_error(
            &answer(400, r#"{"error": "invalid_authorization_code"}"#),
            false,
        );
        assert!(err.is_invalid_grant(), "{err}");
        let err = token_error(
            &answer(
                500,
                r#"{"error": "server_error", "error_ticket_id": "d685626822", "error_description": ""}"#,
            ),
            false,
        );
        assert!(err.is_retryable());
        assert!(err.to_string().contains("d685626822"), "{err}");
        let err = token_error(&answer(400, r#"{"error": "invalid_token"}"#), true);
        assert!(err.is_invalid_grant(), "{err}");
        let err = token_error(
            &answer(
                401,
                r#"{"error": "invalid_client", "error_description": "Client authentication failed."}"#,
            ),
            true,
        );
        assert!(matches!(&err, Error::OAuth { code, .. } if code == "invalid_client"));
        assert!(matches!(
            token_error(&answer(503, "<html>S3cr3tKey9</html>"), true),
            Error::Unavailable { status: 503, .. }
        ));
        let err = token_error(&answer(400, "S3cr3tKey9"), true);
        assert!(matches!(err, Error::BadResponse { .. }));
        assert!(!format!("{err} {err:?}").contains("S3cr3tKey9"));
    }
}
