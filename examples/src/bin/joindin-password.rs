//! Joind.in: the first run signs in with the password grant — the password read from
//! standard input, never from an argument — and every run reads with the stored grant.
//!
//! Configure with `JOINDIN_CLIENT_ID`, `JOINDIN_CLIENT_SECRET`, `JOINDIN_USERNAME`,
//! `GRANTKIT_STORE_DIR`, and `JOINDIN_BASE_URL` to use an emulator instead of Joind.in.

use grantkit::provider::joindin::{EventQuery, JoindinProvider, Paging};
use grantkit::store::file::FileTokenStore;
use grantkit::{ClientSecret, Password, TokenManager};
use grantkit_examples::env;
use std::sync::Arc;
use tokio::io::{AsyncBufReadExt as _, BufReader};

#[tokio::main]
async fn main() -> grantkit::Result<()> {
    let secret = ClientSecret::new(env("JOINDIN_CLIENT_SECRET")?);
    let mut builder = JoindinProvider::builder(env("JOINDIN_CLIENT_ID")?, secret);
    if let Ok(base) = env("JOINDIN_BASE_URL") {
        builder = builder.base_url(&base);
    }
    let provider = Arc::new(builder.build()?);
    let store = Arc::new(FileTokenStore::open(env("GRANTKIT_STORE_DIR")?).await?);
    let manager = TokenManager::builder(provider.clone(), store).build()?;

    let key = match manager.account().await {
        Ok(key) => key,
        Err(err) if err.is_reauthorization_required() => {
            eprintln!(
                "Password for {} (standard input):",
                env("JOINDIN_USERNAME")?
            );
            let mut line = String::new();
            BufReader::new(tokio::io::stdin())
                .read_line(&mut line)
                .await
                .map_err(|err| grantkit::Error::configuration(format!("no password: {err}")))?;
            let password = Password::new(line.trim_end_matches(['\r', '\n']));
            manager
                .sign_in_with_password(env("JOINDIN_USERNAME")?, password)
                .await?
        }
        Err(err) => return Err(err),
    };
    let http = grantkit::reqwest::Client::new();
    let joindin = provider.api_client(manager.authorized_client(http, key));
    println!("Signed in as user {}", joindin.whoami().await?.user_id);
    let events = joindin
        .events(&EventQuery::new().paging(Paging::per_page(3)))
        .await?;
    for event in events.items {
        println!("- {}", event.name.unwrap_or_default());
    }
    Ok(())
}
