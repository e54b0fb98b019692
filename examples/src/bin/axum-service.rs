//! A web service that signs in many users of join.me. `/login` starts the
//! authorization-code flow; `/callback` completes it on whichever instance the browser
//! reaches, because the pending authorization waits in the shared Redis store; `/me?account=…`
//! calls join.me for that user with a token refreshed when due, one refresh across all
//! instances.
//!
//! Configure with `JOINME_CLIENT_ID`, `JOINME_CLIENT_SECRET`, `JOINME_REDIRECT_URI` (the
//! service's public `/callback` URL, registered with join.me), `GRANTKIT_REDIS_URL`,
//! `LISTEN` (e.g. `127.0.0.1:8080`), and `JOINME_BASE_URL` to use an emulator.

use axum::Router;
use axum::extract::{Query, State};
use axum::http::{StatusCode, Uri};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use grantkit::provider::joinme::{JoinMeProvider, Scope};
use grantkit::store::redis::RedisTokenStore;
use grantkit::{Callback, ClientSecret, Error, RedirectFlow, TokenManager};
use grantkit_examples::env;
use serde::Deserialize;
use std::sync::Arc;

#[derive(Clone)]
struct App {
    manager: TokenManager,
    provider: Arc<JoinMeProvider>,
    redirect_uri: String,
    http: grantkit::reqwest::Client,
}

async fn login(State(app): State<App>) -> Result<Redirect, Failure> {
    let flow = RedirectFlow::authorization_code(&app.redirect_uri).with_scopes([Scope::UserInfo]);
    let url = app.manager.start_authorization(&flow).await?;
    Ok(Redirect::to(url.expose_secret()))
}

async fn callback(State(app): State<App>, uri: Uri) -> Result<String, Failure> {
    let key = app
        .manager
        .complete_authorization(&Callback::parse(&uri.to_string())?)
        .await?;
    Ok(format!("Signed in as {}\n", key.account))
}

#[derive(Deserialize)]
struct Who {
    account: String,
}

async fn me(State(app): State<App>, Query(who): Query<Who>) -> Result<String, Failure> {
    let key = app.manager.key_for(who.account);
    let joinme = app
        .provider
        .api_client(app.manager.authorized_client(app.http.clone(), key));
    let user = joinme.user().await?;
    Ok(format!(
        "{} <{}>\n",
        user.full_name.unwrap_or_default(),
        user.email
    ))
}

/// An error as an HTTP answer: its message is safe to show (grantkit's errors never hold a
/// token or a secret).
struct Failure(Error);

impl From<Error> for Failure {
    fn from(err: Error) -> Self {
        Self(err)
    }
}

impl IntoResponse for Failure {
    fn into_response(self) -> Response {
        let status = match &self.0 {
            err if err.is_reauthorization_required() => StatusCode::UNAUTHORIZED,
            Error::InvalidCallback { .. } | Error::OAuth { .. } => StatusCode::BAD_REQUEST,
            err if err.is_retryable() => StatusCode::SERVICE_UNAVAILABLE,
            _ => StatusCode::BAD_GATEWAY,
        };
        (status, format!("{}\n", self.0)).into_response()
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let secret = ClientSecret::new(env("JOINME_CLIENT_SECRET")?);
    let mut builder = JoinMeProvider::builder(env("JOINME_CLIENT_ID")?, secret);
    if let Ok(base) = env("JOINME_BASE_URL") {
        builder = builder.base_url(&base);
    }
    let provider = Arc::new(builder.build()?);
    let store = Arc::new(RedisTokenStore::connect(&env("GRANTKIT_REDIS_URL")?).await?);
    let app = App {
        manager: TokenManager::builder(provider.clone(), store).build()?,
        provider,
        redirect_uri: env("JOINME_REDIRECT_URI")?,
        http: grantkit::reqwest::Client::new(),
    };
    let callback_path = grantkit::url::Url::parse(&app.redirect_uri)?
        .path()
        .to_owned();
    let router = Router::new()
        .route("/login", get(login))
        .route(&callback_path, get(callback))
        .route("/me", get(me))
        .with_state(app);
    let listener = tokio::net::TcpListener::bind(env("LISTEN")?).await?;
    println!("Listening on http://{}", listener.local_addr()?);
    axum::serve(listener, router).await?;
    Ok(())
}
