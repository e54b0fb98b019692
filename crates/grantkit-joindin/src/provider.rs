//! `JoindinProvider`: the password grant, the legacy `oauth_allow` page, identity from
//! `user_uri`, and the reading of Joind.in's answers.

use crate::lenient::{id_from_uri, text_of};
use crate::wire::{self, Caller, error_message};
use async_trait::async_trait;
use grantkit_core::provider::http::{HttpResponse, ProviderHttp, check_access_token, throttled};
use grantkit_core::{
    AccessToken, ClientSecret, Error, GrantKind, Password, Provider, Result, Revocation, TokenSet,
    clock::{Clock, SystemClock},
    flow::{FlowKind, ParamLocation},
    provider::{
        ApiResponse, AuthorizationRequest, Capabilities, Grant, ResponseClass, bearer_header,
        is_loopback, retry_after,
    },
};
use http::{HeaderMap, HeaderValue, StatusCode, header};
use serde_json::Value;
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use url::Url;

/// The provider id, used as [`TokenKey::provider`](grantkit_core::TokenKey::provider).
pub const PROVIDER_ID: &str = "joindin";
/// The live API, version 2.1.
pub const DEFAULT_API_BASE: &str = "https://api.joind.in/v2.1";
/// The retired legacy web site, the only one that ever served `/user/oauth_allow`.
pub const DEFAULT_WEB_BASE: &str = "https://legacy.joind.in";
/// The default timeout of one call to Joind.in.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
/// The token-set extra holding the `user_uri` the server reported (not a secret).
pub const USER_URI_EXTRA: &str = "user_uri";
/// The token-set extra holding when the token was obtained, in seconds since the Unix
/// epoch: Joind.in tokens never expire, so this is the only age they have.
pub const OBTAINED_AT_EXTRA: &str = "obtained_at";

const JSON: &str = "application/json";

/// Builds a [`JoindinProvider`].
pub struct JoindinProviderBuilder {
    api_key: String,
    secret: ClientSecret,
    api_base: String,
    web_base: String,
    http_client: Option<reqwest::Client>,
    timeout: Duration,
    max_body: Option<usize>,
    clock: Arc<dyn Clock>,
    application_name: Option<String>,
}

impl fmt::Debug for JoindinProviderBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JoindinProviderBuilder")
            .field("api_key", &self.api_key)
            .field("secret", &self.secret)
            .field("api_base", &self.api_base)
            .field("web_base", &self.web_base)
            .field("timeout", &self.timeout)
            .field("application_name", &self.application_name)
            .finish_non_exhaustive()
    }
}

impl JoindinProviderBuilder {
    /// Uses another API base (an emulator, a staging server): everything before `/token`,
    /// e.g. `https://api.joind.in/v2.1`.
    pub fn api_base(mut self, base: impl Into<String>) -> Self {
        self.api_base = base.into();
        self
    }

    /// Uses another web site for the legacy `oauth_allow` page, e.g.
    /// `https://legacy.joind.in`.
    pub fn web_base(mut self, base: impl Into<String>) -> Self {
        self.web_base = base.into();
        self
    }

    /// Sends the provider's own calls through your `reqwest::Client` (proxy, TLS roots).
    /// Give it `redirect(Policy::none())`: a redirected password grant would carry the
    /// password elsewhere.
    pub fn http_client(mut self, client: reqwest::Client) -> Self {
        self.http_client = Some(client);
        self
    }

    /// Serves the API and the web site from one base URL with Joind.in's paths, as the
    /// emulator does: the API at `{base}/v2.1`, the `oauth_allow` page at `{base}/user/…`.
    pub fn base_url(self, base: &str) -> Self {
        let base = base.trim_end_matches('/');
        self.api_base(format!("{base}/v2.1")).web_base(base)
    }

    /// The timeout of each call to Joind.in ([`DEFAULT_TIMEOUT`]).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The cap on an answer from Joind.in to the provider's own calls (default 1 MiB).
    pub fn max_body(mut self, bytes: usize) -> Self {
        self.max_body = Some(bytes);
        self
    }

    /// The clock that stamps [`OBTAINED_AT_EXTRA`] (for tests).
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// The application name registered with this client id, as Joind.in's token list
    /// shows it. Needed only by
    /// [`revoke_all_application_tokens`](JoindinProvider::revoke_all_application_tokens):
    /// the list names applications, not client ids.
    pub fn application_name(mut self, name: impl Into<String>) -> Self {
        self.application_name = Some(name.into());
        self
    }

    /// Checks the configuration and builds the provider.
    ///
    /// Fails with [`Error::Configuration`] when a base URL is not HTTPS (plain HTTP is
    /// allowed to loopback addresses only), the client id is empty, or the HTTP client
    /// cannot be built.
    pub fn build(self) -> Result<JoindinProvider> {
        if self.api_key.is_empty() {
            return Err(Error::configuration(
                "the Joind.in client id (api_key) is empty",
            ));
        }
        let api_base = checked_base(&self.api_base, "API base")?;
        let web_base = checked_base(&self.web_base, "web base")?;
        let http = match self.http_client {
            Some(client) => ProviderHttp::with_client(client),
            None => ProviderHttp::new(),
        }
        .with_timeout(self.timeout);
        let http = match self.max_body {
            Some(bytes) => http.with_max_body(bytes),
            None => http,
        };
        Ok(JoindinProvider {
            api_key: self.api_key,
            secret: self.secret,
            api_base,
            web_base,
            http,
            clock: self.clock,
            application_name: self.application_name,
            // A token Joind.in does not know makes a request anonymous, answered 200: only
            // the body (no `meta.user_uri`) says so.
            capabilities: Capabilities::default()
                .with_flows([FlowKind::Password, FlowKind::Implicit])
                .with_success_bodies_read(true),
        })
    }
}

/// A base URL without its trailing slash, HTTPS or loopback HTTP.
fn checked_base(base: &str, what: &str) -> Result<String> {
    let trimmed = base.trim_end_matches('/');
    let url = Url::parse(trimmed)
        .map_err(|_| Error::configuration(format!("the Joind.in {what} is not a URL")))?;
    let secure = match url.scheme() {
        "https" => true,
        "http" => is_loopback(&url),
        _ => false,
    };
    if !secure {
        return Err(Error::configuration(format!(
            "the Joind.in {what} must be HTTPS (plain HTTP only to a loopback address): {}://{}",
            url.scheme(),
            url.host_str().unwrap_or("")
        )));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(Error::configuration(format!(
            "the Joind.in {what} must not have a query or fragment"
        )));
    }
    Ok(trimmed.to_owned())
}

/// The Joind.in API v2.1 as a grantkit [`Provider`].
///
/// - **Password grant** ([`PasswordFlow`](grantkit_core::flow::PasswordFlow)): `POST /token`
///   with a JSON body, for trusted clients (`enable_password_grant`). The password is
///   sent once and kept nowhere.
/// - **Legacy `oauth_allow`** ([`RedirectFlow::implicit`](grantkit_core::RedirectFlow::implicit)):
///   the token arrives in the callback's *query*. The page exists only on the retired
///   legacy site; [`authorization_url`](Provider::authorization_url) checks that it is
///   still there and otherwise names the password grant as the way in.
/// - Tokens never expire and cannot be refreshed; a token Joind.in no longer knows is
///   seen when a response comes back anonymous, and the user must log in again.
/// - Joind.in cannot revoke one token: [`revoke`](Provider::revoke) says
///   [`Revocation::NotSupported`] (logout forgets the grant locally). Trusted clients may
///   call [`revoke_all_application_tokens`](Self::revoke_all_application_tokens).
pub struct JoindinProvider {
    api_key: String,
    secret: ClientSecret,
    api_base: String,
    web_base: String,
    http: ProviderHttp,
    clock: Arc<dyn Clock>,
    application_name: Option<String>,
    capabilities: Capabilities,
}

impl fmt::Debug for JoindinProvider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JoindinProvider")
            .field("api_key", &self.api_key)
            .field("secret", &self.secret)
            .field("api_base", &self.api_base)
            .field("web_base", &self.web_base)
            .field("http", &self.http)
            .field("application_name", &self.application_name)
            .finish_non_exhaustive()
    }
}

/// What [`JoindinProvider::revoke_all_application_tokens`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct ApplicationTokensRevoked {
    /// Token rows of this application that Joind.in deleted.
    pub deleted: usize,
    /// Rows of this application still listed: they could not be deleted because the
    /// token making the calls was itself deleted first.
    pub remaining: usize,
    /// Whether the token used for the calls no longer works (it belongs to this
    /// application too, so normally it does not).
    pub calling_token_revoked: bool,
}

impl JoindinProvider {
    /// A builder for the client `api_key` (the OAuth client id) and its secret, against the
    /// live service.
    pub fn builder(api_key: impl Into<String>, secret: ClientSecret) -> JoindinProviderBuilder {
        JoindinProviderBuilder {
            api_key: api_key.into(),
            secret,
            api_base: DEFAULT_API_BASE.to_owned(),
            web_base: DEFAULT_WEB_BASE.to_owned(),
            http_client: None,
            timeout: DEFAULT_TIMEOUT,
            max_body: None,
            clock: Arc::new(SystemClock),
            application_name: None,
        }
    }

    /// The API base, without a trailing slash (e.g. `https://api.joind.in/v2.1`).
    pub fn api_base(&self) -> &str {
        &self.api_base
    }

    /// The web site of the legacy `oauth_allow` page, without a trailing slash.
    pub fn web_base(&self) -> &str {
        &self.web_base
    }

    /// `<web base>/user/oauth_allow`.
    pub fn oauth_allow_url(&self) -> String {
        format!("{}/user/oauth_allow", self.web_base)
    }

    /// `<API base>/token`.
    pub fn token_url(&self) -> String {
        format!("{}/token", self.api_base)
    }

    /// The account (the [`TokenKey`](grantkit_core::TokenKey) account) of user `id`:
    /// `<API base>/users/<id>`, the `user_uri` of that user as seen through this API base.
    pub fn account_of(&self, user_id: u64) -> String {
        format!("{}/users/{user_id}", self.api_base)
    }

    /// The typed API client for one grant (see [`crate::JoindinClient`]).
    pub fn api_client(&self, client: grantkit_core::AuthorizedClient) -> crate::JoindinClient {
        crate::JoindinClient::new(client, &self.api_base)
    }

    /// Deletes, at Joind.in, every token this user holds for this application: all its
    /// logins on every device, including the token passed in. For trusted clients only
    /// (`enable_password_grant`); opt-in, because Joind.in cannot revoke a single token.
    ///
    /// Exactly what it does, with `tokens` as the credential:
    /// 1. `GET <API base>/token?resultsperpage=0` lists the user's revocable tokens (row ids,
    ///    application names and dates; never token values). When several rows of this
    ///    application were last used in the same second as the newest, it lists again
    ///    after a second (at most twice), so that the calling token's row stands out.
    /// 2. Keeps the rows whose `application` equals the configured
    ///    [`application_name`](JoindinProviderBuilder::application_name) exactly.
    /// 3. `DELETE <API base>/token/<row id>` for each, least recently used first, so the
    ///    row of the calling token (used by step 1) normally goes last. A row already gone
    ///    counts as deleted; once the calling token is gone the rest stay and are counted
    ///    as remaining.
    /// 4. `GET <API base>/` tells whether the calling token still works.
    ///
    /// It deletes nothing locally: follow it with
    /// [`TokenManager::logout`](grantkit_core::TokenManager::logout) for this user's key.
    ///
    /// # Errors
    /// [`Error::Configuration`] without an application name; [`Error::Unsupported`] when
    /// the client is not trusted; [`Error::ReauthorizationRequired`] when Joind.in no
    /// longer knows the token; transport, rate-limit and availability errors as usual.
    pub async fn revoke_all_application_tokens(
        &self,
        tokens: &TokenSet,
    ) -> Result<ApplicationTokensRevoked> {
        let application = self.application_name.as_deref().ok_or_else(|| {
            Error::configuration(
                "revoking application tokens needs the application name \
                 (JoindinProviderBuilder::application_name): Joind.in's token list names \
                 applications, not client ids",
            )
        })?;
        let mut list_url = Url::parse(&self.token_url())
            .map_err(|_| Error::configuration("the token URL is not a URL"))?;
        list_url
            .query_pairs_mut()
            .append_pair("resultsperpage", "0");
        let mut rows = Vec::new();
        for attempt in 0..3 {
            if attempt > 0 {
                // Dates have a resolution of one second: once it has passed, the listing
                // call itself makes the calling token's row the most recently used.
                tokio::time::sleep(Duration::from_millis(1100)).await;
            }
            let listing = self.authorized_get(tokens, list_url.as_str()).await?;
            if !listing.status.is_success() {
                return Err(self.token_list_refusal(tokens, &listing).await);
            }
            rows = token_rows(&listing.body, application)?;
            let newest = rows.iter().map(|row| &row.last_used).max();
            let tied = rows
                .iter()
                .filter(|row| Some(&row.last_used) == newest)
                .count();
            if tied <= 1 {
                break;
            }
        }
        // Least recently used first; ISO-8601 UTC dates of one format sort as text.
        rows.sort_by(|a, b| (&a.last_used, a.id).cmp(&(&b.last_used, b.id)));
        let mut deleted = 0;
        let mut remaining = 0;
        let mut calling_token_gone = false;
        for row in &rows {
            if calling_token_gone {
                remaining += 1;
                continue;
            }
            let url = format!("{}/token/{}", self.api_base, row.id);
            let mut headers = HeaderMap::new();
            headers.insert(header::AUTHORIZATION, bearer_header(&tokens.access_token)?);
            headers.insert(header::ACCEPT, HeaderValue::from_static(JSON));
            let answer = self
                .http
                .send(self.http.client()?.delete(url).headers(headers))
                .await?;
            match answer.status.as_u16() {
                // 404 "No tokens found": gone already (another logout got there first).
                204 | 404 => deleted += 1,
                401 => {
                    calling_token_gone = true;
                    remaining += 1;
                }
                _ => return Err(unexpected(&answer)),
            }
        }
        let calling_token_revoked =
            calling_token_gone || !matches!(self.caller(tokens).await?, Caller::User { .. });
        tracing::info!(
            deleted,
            remaining,
            calling_token_revoked,
            "revoked this application's Joind.in tokens"
        );
        Ok(ApplicationTokensRevoked {
            deleted,
            remaining,
            calling_token_revoked,
        })
    }

    /// Why `GET /token` was refused: a dead token, or a client that is not trusted.
    async fn token_list_refusal(&self, tokens: &TokenSet, answer: &HttpResponse) -> Error {
        match answer.status.as_u16() {
            401 => Error::reauthorize("Joind.in no longer knows the token"),
            403 => match self.caller(tokens).await {
                // At HEAD a dead token also meets this 403; only a live one means the
                // client is not trusted.
                Ok(Caller::User { .. }) => Error::unsupported(
                    "listing and deleting tokens needs a trusted Joind.in client \
                     (enable_password_grant); this one is not",
                ),
                Ok(_) => Error::reauthorize("Joind.in no longer knows the token"),
                Err(err) => err,
            },
            _ => unexpected(answer),
        }
    }

    /// `GET` with the token attached, through the provider's own client.
    async fn authorized_get(&self, tokens: &TokenSet, url: &str) -> Result<HttpResponse> {
        let mut headers = HeaderMap::new();
        headers.insert(header::AUTHORIZATION, bearer_header(&tokens.access_token)?);
        headers.insert(header::ACCEPT, HeaderValue::from_static(JSON));
        self.http
            .send(self.http.client()?.get(url).headers(headers))
            .await
    }

    /// Who `GET <API base>/` says the token belongs to: the cheapest "who am I".
    async fn caller(&self, tokens: &TokenSet) -> Result<Caller> {
        let answer = self
            .authorized_get(tokens, &format!("{}/", self.api_base))
            .await?;
        if !answer.status.is_success() {
            return Err(unexpected(&answer));
        }
        Ok(wire::caller(&answer.body))
    }

    /// The account for a `user_uri`, refusing user 0 and URIs without a numeric id.
    fn account_from_user_uri(&self, user_uri: &str) -> Result<String> {
        match id_from_uri(user_uri) {
            Some(0) => Err(Error::reauthorize(
                "Joind.in identified the token as user 0: it does not know the token",
            )),
            Some(id) => Ok(self.account_of(id)),
            None => Err(Error::bad_response(
                "Joind.in's user_uri does not end in a user id",
            )),
        }
    }

    fn obtained_now(&self, tokens: TokenSet) -> TokenSet {
        let seconds = self
            .clock
            .now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs();
        tokens.with_extra(OBTAINED_AT_EXTRA, seconds.to_string())
    }

    /// The password grant: `POST /token` with a JSON body, once.
    async fn password_grant(&self, username: &str, password: &Password) -> Result<TokenSet> {
        let body = serde_json::to_vec(&serde_json::json!({
            "grant_type": "password",
            "username": username,
            "password": password.expose_secret(),
            "client_id": self.api_key,
            "client_secret": self.secret.expose_secret(),
        }))
        .map_err(|_| Error::configuration("the password grant request could not be written"))?;
        // Joind.in reads a JSON body only when the content type is exactly this: with a
        // charset parameter the body is silently ignored.
        let request = self
            .http
            .client()?
            .post(self.token_url())
            .header(header::CONTENT_TYPE, HeaderValue::from_static(JSON))
            .header(header::ACCEPT, HeaderValue::from_static(JSON))
            .body(body);
        let answer = self.http.send(request).await?;
        if answer.status != StatusCode::OK {
            return Err(password_grant_error(&answer));
        }
        let tokens = self.read_token_response(&answer.body)?;
        tracing::info!("Joind.in password grant succeeded");
        Ok(tokens)
    }

    fn read_token_response(&self, body: &[u8]) -> Result<TokenSet> {
        let document: Value = serde_json::from_slice(body).map_err(|err| {
            Error::bad_response(format!(
                "the token response is {}",
                grantkit_core::store::codec::describe_json_error(&err)
            ))
        })?;
        let access = match document.get("access_token") {
            Some(Value::String(token)) => token.clone(),
            // Joind.in's JSON view turns an all-digit token (about one in two thousand)
            // into a number, losing leading zeros or digits: the token is unrecoverable.
            Some(Value::Number(_)) => {
                return Err(Error::reauthorize(
                    "Joind.in sent the new access token as a JSON number (its numeric \
                     coercion of all-digit tokens), so the token cannot be recovered: log in \
                     again to get another one",
                ));
            }
            Some(_) => {
                return Err(Error::bad_response(
                    "the token response's access_token is not a string",
                ));
            }
            None => {
                return Err(Error::bad_response(
                    "the token response has no access_token",
                ));
            }
        };
        check_access_token(&access)?;
        let user_uri = document
            .get("user_uri")
            .and_then(text_of)
            .ok_or_else(|| Error::bad_response("the token response has no user_uri"))?;
        self.account_from_user_uri(&user_uri)?;
        let tokens = TokenSet::new(AccessToken::new(access), GrantKind::Password)
            .with_extra(USER_URI_EXTRA, user_uri);
        Ok(self.obtained_now(tokens))
    }

    /// The legacy flow's token, read from the callback's query, then identified.
    async fn redirect_token(
        &self,
        params: &grantkit_core::flow::CallbackParams,
    ) -> Result<TokenSet> {
        let Some(access) = params.get("access_token").filter(|t| !t.is_empty()) else {
            // The deny page links back with the state and nothing else.
            return Err(Error::oauth(
                "access_denied",
                Some("Joind.in returned no access token: the user did not allow access".into()),
            ));
        };
        check_access_token(access)?;
        let tokens = TokenSet::new(AccessToken::new(access), GrantKind::Implicit);
        match self.caller(&tokens).await? {
            Caller::User { uri, .. } => {
                Ok(self.obtained_now(tokens.with_extra(USER_URI_EXTRA, uri)))
            }
            Caller::UserZero | Caller::Anonymous => Err(Error::oauth(
                "invalid_grant",
                Some("Joind.in does not know the token from the redirect".into()),
            )),
            Caller::Unknown => Err(Error::bad_response(
                "Joind.in's root document could not be read to identify the token",
            )),
        }
    }

    /// Whether the legacy `oauth_allow` page is still served. A side-effect-free `GET`
    /// with the client id alone: the page asks for a login or complains that `callback`
    /// is missing; it never issues a token without a callback.
    async fn check_oauth_allow_page(&self) -> Result<()> {
        let mut url = Url::parse(&self.oauth_allow_url())
            .map_err(|_| Error::configuration("the oauth_allow URL is not a URL"))?;
        url.query_pairs_mut().append_pair("api_key", &self.api_key);
        let answer = self
            .http
            .send(
                self.http
                    .client()?
                    .get(url.as_str())
                    .header(header::ACCEPT, "text/html"),
            )
            .await?;
        if let Some(err) = throttled(answer.status, &answer.headers) {
            return Err(err);
        }
        match answer.status.as_u16() {
            200 if looks_like_oauth_allow(&answer) => Ok(()),
            300..=399 if redirects_to_login(&answer.headers) => Ok(()),
            status @ 500..=599 => Err(Error::unavailable(status, None)),
            status => Err(Error::unsupported(format!(
                "Joind.in's legacy oauth_allow page is gone ({} answered HTTP {status} \
                 without the page): use the password grant (PasswordFlow) with a trusted \
                 client instead",
                self.oauth_allow_url()
            ))),
        }
    }
}

/// The legacy page answers either "please log in" (a `Refresh` to `/user/login`) or, for a
/// logged-in user, one of its own messages about the parameters, or its form.
fn looks_like_oauth_allow(answer: &HttpResponse) -> bool {
    let refresh_to_login = answer
        .headers
        .get("refresh")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("/user/login"));
    let body = String::from_utf8_lossy(&answer.body).to_ascii_lowercase();
    refresh_to_login
        || body.contains("name=\"access\"")
        || (body.contains("callback") && body.contains("missing or incorrect"))
        || (body.contains("api_key") && body.contains("not recognised"))
}

fn redirects_to_login(headers: &HeaderMap) -> bool {
    headers
        .get(header::LOCATION)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("/user/login"))
}

/// The error for a refused password grant: Joind.in's `["message"]` mapped to OAuth codes,
/// keeping the message as the description.
fn password_grant_error(answer: &HttpResponse) -> Error {
    let status = answer.status.as_u16();
    if let Some(err) = throttled(answer.status, &answer.headers) {
        return err;
    }
    if answer.status.is_server_error() {
        return Error::unavailable(status, None);
    }
    let Some(message) = error_message(&answer.body) else {
        return Error::bad_response(format!(
            "the token endpoint answered HTTP {status} without a Joind.in error message"
        ));
    };
    let code = match (status, message.as_str()) {
        (401 | 403, "Not verified") => "unverified_account",
        (403, "Signin failed") => "invalid_grant",
        (403, m) if m.contains("cannot authenticate using the password grant") => {
            "unauthorized_client"
        }
        (400, "Grant type not recognised") => "unsupported_grant_type",
        (400, m) if m.contains("client_id") || m.contains("client_secret") => "invalid_client",
        (400, _) => "invalid_request",
        (401 | 403, _) => "access_denied",
        _ => {
            return Error::api(status, message);
        }
    };
    Error::oauth(code, Some(message))
}

/// An answer the call did not expect, described without quoting it.
fn unexpected(answer: &HttpResponse) -> Error {
    match answer.status.as_u16() {
        429 => Error::RateLimited {
            retry_after: retry_after(&answer.headers),
        },
        _ => wire::api_error(answer.status, &answer.body),
    }
}

/// One row of `GET /token`.
struct TokenRow {
    id: u64,
    last_used: String,
}

/// The rows of `application` in a token list.
fn token_rows(body: &[u8], application: &str) -> Result<Vec<TokenRow>> {
    let document: Value = serde_json::from_slice(body).map_err(|err| {
        Error::bad_response(format!(
            "the token list is {}",
            grantkit_core::store::codec::describe_json_error(&err)
        ))
    })?;
    let Some(rows) = document.get("tokens").and_then(Value::as_array) else {
        return Err(Error::bad_response("the token list has no `tokens` list"));
    };
    Ok(rows
        .iter()
        .filter(|row| row.get("application").and_then(text_of).as_deref() == Some(application))
        .filter_map(|row| {
            let id = row
                .get("token")
                .and_then(crate::lenient::u64_of)
                .or_else(|| {
                    row.get("token_uri")
                        .and_then(text_of)
                        .and_then(|u| id_from_uri(&u))
                })?;
            let last_used = row
                .get("last_used_date")
                .and_then(text_of)
                .unwrap_or_default();
            Some(TokenRow { id, last_used })
        })
        .collect())
}

#[async_trait]
impl Provider for JoindinProvider {
    fn id(&self) -> &str {
        PROVIDER_ID
    }

    fn client_id(&self) -> &str {
        &self.api_key
    }

    fn capabilities(&self) -> &Capabilities {
        &self.capabilities
    }

    fn request_timeout(&self) -> Duration {
        self.http.timeout()
    }

    /// `oauth_allow` puts the token and the state in the callback's query.
    fn callback_location(&self, _flow: FlowKind) -> ParamLocation {
        ParamLocation::Query
    }

    /// `<web base>/user/oauth_allow?api_key=…&callback=…&state=…`, once a
    /// side-effect-free request has shown that the page still exists.
    ///
    /// Fails with [`Error::Unsupported`] for any flow but `Implicit`, and when the page
    /// is gone (naming the password grant as the way in); with
    /// [`Error::Configuration`] for a callback the page would mangle (it decodes
    /// `callback` twice, so `%` and `+` cannot be sent faithfully).
    async fn authorization_url(&self, request: &AuthorizationRequest) -> Result<Url> {
        if request.flow != FlowKind::Implicit {
            return Err(Error::unsupported(format!(
                "Joind.in has no {} flow: use the password grant, or the legacy oauth_allow \
                 page (the implicit flow)",
                request.flow
            )));
        }
        let callback = &request.redirect_uri;
        if callback.contains(['%', '+']) {
            return Err(Error::configuration(
                "Joind.in's oauth_allow page decodes the callback twice: a callback URL \
                 containing `%` or `+` cannot match the registered one",
            ));
        }
        Url::parse(callback)
            .map_err(|_| Error::configuration("the callback is not an absolute URL"))?;
        self.check_oauth_allow_page().await?;
        let mut url = Url::parse(&self.oauth_allow_url())
            .map_err(|_| Error::configuration("the oauth_allow URL is not a URL"))?;
        url.query_pairs_mut()
            .append_pair("api_key", &self.api_key)
            .append_pair("callback", callback)
            .append_pair("state", request.state.expose_secret());
        Ok(url)
    }

    /// The password grant (`POST /token`), or the token of an `oauth_allow` redirect
    /// (identified with `GET /`). No other grant exists at Joind.in.
    async fn exchange(&self, grant: Grant) -> Result<TokenSet> {
        match grant {
            Grant::Password { username, password } => {
                // The password is dropped (and zeroed) when this call returns.
                self.password_grant(&username, &password).await
            }
            Grant::Implicit { params, .. } => self.redirect_token(&params).await,
            _ => Err(Error::unsupported(
                "Joind.in offers only the password grant and the legacy oauth_allow page",
            )),
        }
    }

    /// Joind.in tokens cannot be refreshed.
    async fn refresh(&self, _tokens: &TokenSet) -> Result<TokenSet> {
        Err(Error::unsupported(
            "Joind.in tokens cannot be refreshed: log in again",
        ))
    }

    /// The `user_uri` of the password grant's answer (kept as an extra), or else
    /// `meta.user_uri` of `GET /`; user 0 or none means Joind.in does not know the token.
    async fn identify(&self, tokens: &TokenSet) -> Result<String> {
        if let Some(user_uri) = tokens.extras.get(USER_URI_EXTRA) {
            return self.account_from_user_uri(user_uri);
        }
        match self.caller(tokens).await? {
            Caller::User { id, .. } => Ok(self.account_of(id)),
            Caller::UserZero | Caller::Anonymous => Err(Error::reauthorize(
                "Joind.in does not know the token (its answer names no user)",
            )),
            Caller::Unknown => Err(Error::bad_response(
                "Joind.in's root document could not be read to identify the token",
            )),
        }
    }

    /// Joind.in cannot revoke one token (its token list shows row ids, not token values):
    /// only the local copy can be forgotten.
    async fn revoke(&self, _tokens: &TokenSet) -> Result<Revocation> {
        tracing::info!(
            "Joind.in cannot revoke a single token; only the local copy is deleted \
             (revoke_all_application_tokens deletes all of this application's tokens)"
        );
        Ok(Revocation::NotSupported)
    }

    /// `Authorization: Bearer <token>`, refusing tokens with whitespace.
    fn authenticate(&self, tokens: &TokenSet, headers: &mut HeaderMap) -> Result<()> {
        headers.insert(header::AUTHORIZATION, bearer_header(&tokens.access_token)?);
        Ok(())
    }

    fn classify<'a>(&self, response: &ApiResponse<'a>) -> ResponseClass {
        wire::classify(response)
    }

    /// The refused call's error, with Joind.in's `["message"]` where it sent one.
    fn refusal<'a>(&self, response: &ApiResponse<'a>) -> Error {
        wire::api_error(response.status, response.body)
    }
}

/// Seconds since the epoch of [`OBTAINED_AT_EXTRA`], when present.
pub fn obtained_at(tokens: &TokenSet) -> Option<SystemTime> {
    let seconds = tokens.extras.get(OBTAINED_AT_EXTRA)?.parse().ok()?;
    Some(UNIX_EPOCH + Duration::from_secs(seconds))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(status: u16, body: &str) -> HttpResponse {
        HttpResponse {
            status: StatusCode::from_u16(status).unwrap(),
            headers: HeaderMap::new(),
            body: body.as_bytes().to_vec(),
        }
    }

    fn code_of(err: Error) -> (String, Option<String>) {
        match err {
            Error::OAuth {
                code, description, ..
            } => (code, description),
            other => panic!("expected an OAuth error, got {other:?}"),
        }
    }

    #[test]
    fn password_grant_refusals_map_to_oauth_codes() {
        let cases = [
            (403, r#"["Signin failed"]"#, "invalid_grant"),
            (401, r#"["Not verified"]"#, "unverified_account"),
            (403, r#"["Not verified"]"#, "unverified_account"),
            (
                403,
                r#"["This client cannot authenticate using the password grant type"]"#,
                "unauthorized_client",
            ),
            (
                400,
                r#"["Grant type not recognised"]"#,
                "unsupported_grant_type",
            ),
            (
                400,
                r#"["Expected parameter client_id is not a readable string"]"#,
                "invalid_client",
            ),
            (
                400,
                r#"["The field \"grant_type\" is required"]"#,
                "invalid_request",
            ),
        ];
        for (status, body, expected) in cases {
            let (code, description) = code_of(password_grant_error(&answer(status, body)));
            assert_eq!(code, expected, "{body}");
            let message: Vec<String> = serde_json::from_str(body).unwrap();
            assert_eq!(description.as_deref(), Some(message[0].as_str()));
        }
        assert!(matches!(
            password_grant_error(&answer(503, "<html></html>")),
            Error::Unavailable { status: 503, .. }
        ));
        assert!(matches!(
            password_grant_error(&answer(429, r#"["Rate limit exceeded"]"#)),
            Error::RateLimited { .. }
        ));
        assert!(matches!(
            password_grant_error(&answer(400, "<html>nope</html>")),
            Error::BadResponse { .. }
        ));
    }

    #[test]
    fn bases_must_be_https_or_loopback() {
        let build = |base: &str| {
            JoindinProvider::builder("key", ClientSecret::new("s"))
                .api_base(base)
                .build()
        };
        assert!(build("https://api.joind.in/v2.1/").is_ok());
        assert!(build("http://127.0.0.1:8080/v2.1").is_ok());
        assert!(build("http://localhost:8080/v2.1").is_ok());
        assert!(build("http://[::1]:8080/v2.1").is_ok());
        for bad in [
            "http://api.joind.in/v2.1",
            "ftp://x/v2.1",
            "not a url",
            "https://x/v2.1?a=1",
        ] {
            assert!(
                matches!(build(bad), Err(Error::Configuration { .. })),
                "{bad}"
            );
        }
        let web = JoindinProvider::builder("key", ClientSecret::new("s"))
            .web_base("http://joind.in")
            .build();
        assert!(matches!(web, Err(Error::Configuration { .. })));
        let empty = JoindinProvider::builder("", ClientSecret::new("s")).build();
        assert!(matches!(empty, Err(Error::Configuration { .. })));
    }

    #[test]
    fn token_responses_are_read_strictly_where_it_matters() {
        let provider = JoindinProvider::builder("key", ClientSecret::new("s"))
            .build()
            .unwrap();
        let tokens = provider
            .read_token_response(
                br#"{"access_token":"0a1b2c3d4e5f6a7b","user_uri":"https://api.joind.in/v2.1/users/12"}"#,
            )
            .unwrap();
        assert_eq!(tokens.access_token.expose_secret(), "0a1b2c3d4e5f6a7b");
        assert_eq!(tokens.expires_at, None);
        assert_eq!(tokens.refresh_token, None);
        assert_eq!(tokens.grant, GrantKind::Password);
        assert_eq!(
            tokens.extras.get(USER_URI_EXTRA),
            Some("https://api.joind.in/v2.1/users/12")
        );
        assert!(obtained_at(&tokens).is_some());
        for numeric in [
            &br#"{"access_token":1234567890123456,"user_uri":"https://api.joind.in/v2.1/users/1"}"#[..],
            br#"{"access_token":1.234567890123456e+15,"user_uri":"https://api.joind.in/v2.1/users/1"}"#,
        ] {
            let err = provider.read_token_response(numeric).unwrap_err();
            assert!(err.is_reauthorization_required(), "{err}");
            assert!(err.to_string().contains("log in again"), "{err}");
        }
        for bad in [
            &br#"{"access_token":"a b","user_uri":"https://api.joind.in/v2.1/users/1"}"#[..],
            br#"{"access_token":"abc"}"#,
            br#"{"access_token":"abc","user_uri":"https://api.joind.in/v2.1/users/x"}"#,
            br#"{"user_uri":"https://api.joind.in/v2.1/users/1"}"#,
            br#"{"access_token":["abc"]}"#,
            b"<html>",
        ] {
            let err = provider.read_token_response(bad).unwrap_err();
            assert!(matches!(err, Error::BadResponse { .. }), "{err}");
            assert!(!err.to_string().contains("abc"), "{err}");
        }
    }

    #[test]
    fn token_rows_are_chosen_by_application_name() {
        let body = br#"{"tokens":[
            {"token":3,"application":"mine","last_used_date":"2024-01-02T00:00:00+00:00","token_uri":"x/token/3"},
            {"token":"4","application":"other","last_used_date":"2024-01-01T00:00:00+00:00"},
            {"application":"mine","last_used_date":"2024-01-01T00:00:00+00:00","token_uri":"https://a/v2.1/token/5"}
        ],"meta":{"count":3}}"#;
        let rows = token_rows(body, "mine").unwrap();
        assert_eq!(rows.iter().map(|r| r.id).collect::<Vec<_>>(), [3, 5]);
        assert!(token_rows(b"{}", "mine").is_err());
    }
}
