//! join.me: the first run signs the user in through the browser (authorization code, the
//! loopback helper on the registered Callback URL); every run uses the stored grant with
//! the typed client. Tokens live in private files, refreshed when due.
//!
//! Configure with `JOINME_CLIENT_ID`, `JOINME_CLIENT_SECRET`, `JOINME_REDIRECT_URI` (the
//! registered Callback URL, a loopback one), `GRANTKIT_STORE_DIR`, and `JOINME_BASE_URL` to
//! use an emulator instead of join.me.

use grantkit::loopback::LoopbackRedirect;
use grantkit::provider::joinme::{JoinMeProvider, Scope};
use grantkit::store::file::FileTokenStore;
use grantkit::{ClientSecret, RedirectFlow, TokenManager};
use grantkit_examples::env;
use std::sync::Arc;

#[tokio::main]
async fn main() -> grantkit::Result<()> {
    let mut builder = JoinMeProvider::builder(
        env("JOINME_CLIENT_ID")?,
        ClientSecret::new(env("JOINME_CLIENT_SECRET")?),
    );
    if let Ok(base) = env("JOINME_BASE_URL") {
        builder = builder.base_url(&base);
    }
    let provider = Arc::new(builder.build()?);
    let store = Arc::new(FileTokenStore::open(env("GRANTKIT_STORE_DIR")?).await?);
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
