//! Any RFC 6749 server: the provider discovers the server from its issuer (RFC 8414), the
//! first run signs in with the authorization code and PKCE through the loopback helper on
//! a free port (RFC 8252), and every run uses the stored grant.
//!
//! Configure with `OAUTH_ISSUER`, `OAUTH_CLIENT_ID`, `OAUTH_CLIENT_SECRET`, `OAUTH_SCOPES`
//! (space-separated) and `GRANTKIT_STORE_DIR`.

use grantkit::loopback::LoopbackRedirect;
use grantkit::provider::standard::StandardProvider;
use grantkit::store::file::FileTokenStore;
use grantkit::{ClientSecret, RedirectFlow, TokenManager};
use grantkit_examples::env;
use std::sync::Arc;

#[tokio::main]
async fn main() -> grantkit::Result<()> {
    let secret = ClientSecret::new(env("OAUTH_CLIENT_SECRET")?);
    let provider = StandardProvider::builder(env("OAUTH_CLIENT_ID")?, secret)
        .issuer(env("OAUTH_ISSUER")?)
        .build()
        .await?;
    let store = Arc::new(FileTokenStore::open(env("GRANTKIT_STORE_DIR")?).await?);
    let manager = TokenManager::builder(Arc::new(provider), store).build()?;

    let key = match manager.account().await {
        Ok(key) => key,
        Err(err) if err.is_reauthorization_required() => {
            let listener = LoopbackRedirect::bind_any_port("/callback").await?;
            let scopes = env("OAUTH_SCOPES")?;
            let flow = RedirectFlow::authorization_code(listener.redirect_uri())
                .with_scopes(scopes.split_whitespace());
            let url = manager.start_authorization(&flow).await?;
            println!("Open this page to sign in: {}", url.expose_secret());
            manager
                .complete_authorization(&listener.wait().await?)
                .await?
        }
        Err(err) => return Err(err),
    };
    let tokens = manager.access_token(&key).await?;
    println!(
        "Signed in as {}; scopes: {}",
        key.account,
        tokens.scopes.join(" ")
    );
    Ok(())
}
