//! Many processes, one grant: every instance of this program uses the join.me grant kept
//! in Redis. When its token expires, exactly one process refreshes it — the store's lease —
//! and the others wait for that refresh and use its result.
//!
//! Configure with `JOINME_CLIENT_ID`, `JOINME_CLIENT_SECRET`, `JOINME_REDIRECT_URI` (the
//! registered Callback URL, a loopback one, for the first sign-in), `GRANTKIT_REDIS_URL`
//! (`redis://…`, or several URLs of a Redis Cluster), and `JOINME_BASE_URL` to use an
//! emulator instead of join.me.

use grantkit::loopback::LoopbackRedirect;
use grantkit::provider::joinme::{JoinMeProvider, Scope};
use grantkit::store::redis::RedisTokenStore;
use grantkit::{ClientSecret, RedirectFlow, TokenManager};
use grantkit_examples::env;
use std::sync::Arc;

#[tokio::main]
async fn main() -> grantkit::Result<()> {
    let secret = ClientSecret::new(env("JOINME_CLIENT_SECRET")?);
    let mut builder = JoinMeProvider::builder(env("JOINME_CLIENT_ID")?, secret);
    if let Ok(base) = env("JOINME_BASE_URL") {
        builder = builder.base_url(&base);
    }
    let provider = Arc::new(builder.build()?);
    let store = Arc::new(RedisTokenStore::connect(&env("GRANTKIT_REDIS_URL")?).await?);
    let manager = TokenManager::builder(provider.clone(), store).build()?;

    let key = match manager.account().await {
        Ok(key) => key,
        Err(err) if err.is_reauthorization_required() => {
            let redirect_uri = env("JOINME_REDIRECT_URI")?;
            let listener = LoopbackRedirect::bind_to(&redirect_uri).await?;
            let flow =
                RedirectFlow::authorization_code(redirect_uri).with_scopes([Scope::UserInfo]);
            let url = manager.start_authorization(&flow).await?;
            println!("Open this page to sign in: {}", url.expose_secret());
            manager
                .complete_authorization(&listener.wait().await?)
                .await?
        }
        Err(err) => return Err(err),
    };
    let http = grantkit::reqwest::Client::new();
    let joinme = provider.api_client(manager.authorized_client(http, key));
    println!("Signed in as {}", joinme.user().await?.email);
    Ok(())
}
