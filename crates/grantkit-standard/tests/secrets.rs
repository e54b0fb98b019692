//! No client secret, token, code or state value reaches `Debug`, `Display`, an error or a
//! log line, whatever goes wrong against the real server.

use grantkit_conformance::{Decision, ServerFault};
use grantkit_core::{
    Callback, ClientSecret, Error, MemoryTokenStore, Provider as _, RedirectFlow, TokenManager,
    TokenStore as _, flow::FlowKind,
};
use grantkit_standard::StandardProvider;
use grantkit_standard::testing::{
    AuthServer, AuthServerOptions, BASIC_CLIENT, REDIRECT_URI, Route,
};
use std::io::Write;
use std::sync::{Arc, Mutex};

/// Everything the subscriber writes, for searching afterwards.
#[derive(Clone, Default)]
struct Logs(Arc<Mutex<Vec<u8>>>);

impl Write for Logs {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Logs {
    type Writer = Logs;
    fn make_writer(&'a self) -> Logs {
        self.clone()
    }
}

fn assert_hidden(what: &str, shown: &str, secrets: &[String]) {
    for secret in secrets {
        assert!(
            !shown.contains(secret.as_str()),
            "{what} shows a secret: {shown}"
        );
    }
}

// Current-thread: the manager's spawned jobs run on this thread, under this subscriber.
#[tokio::test]
async fn secrets_never_reach_errors_debug_output_or_logs() {
    let logs = Logs::default();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(logs.clone())
        .with_ansi(false)
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let server = AuthServer::start(AuthServerOptions::default())
        .await
        .unwrap();
    let provider = Arc::new(
        server
            .provider(&BASIC_CLIENT)
            .flows([FlowKind::AuthorizationCode])
            .build()
            .await
            .unwrap(),
    );
    let store = Arc::new(MemoryTokenStore::new());
    let manager = TokenManager::builder(provider.clone(), store.clone())
        .build()
        .unwrap();
    let flow = RedirectFlow::authorization_code(REDIRECT_URI).with_scopes(["openid", "read"]);
    let url = manager.start_authorization(&flow).await.unwrap();
    let parsed = url.expose_url().unwrap();
    let state = parsed
        .query_pairs()
        .find(|(k, _)| k == "state")
        .unwrap()
        .1
        .into_owned();
    let location = server
        .authorize(url.expose_secret(), Decision::Approve)
        .await
        .unwrap();
    let callback = Callback::parse(&location).unwrap();
    let code = callback.query.get("code").unwrap().to_owned();
    let key = manager.complete_authorization(&callback).await.unwrap();
    let tokens = store.get(&key).await.unwrap().unwrap().value;

    let mut secrets = vec![
        BASIC_CLIENT.secret.to_owned(),
        url::form_urlencoded::byte_serialize(BASIC_CLIENT.secret.as_bytes()).collect(),
        tokens.access_token.expose_secret().to_owned(),
        tokens
            .refresh_token
            .as_ref()
            .unwrap()
            .expose_secret()
            .to_owned(),
        code,
        state,
    ];
    let mut errors: Vec<Error> = Vec::new();

    // A replayed callback.
    errors.push(manager.complete_authorization(&callback).await.unwrap_err());
    // Faults in place of the token endpoint's answer.
    for fault in ServerFault::BREAKING
        .into_iter()
        .filter(|f| *f != ServerFault::Slow)
    {
        server.proxy().inject(Route::Token, fault, 1);
        errors.push(provider.refresh(&tokens).await.unwrap_err());
    }
    server.proxy().clear_faults();
    // A wrong client secret, at the token and the revocation endpoints.
    let wrong = "wrong-secret-value-0123456789";
    secrets.push(wrong.to_owned());
    let impostor = StandardProvider::builder(BASIC_CLIENT.id, ClientSecret::new(wrong))
        .issuer(server.issuer())
        .build()
        .await
        .unwrap();
    errors.push(impostor.refresh(&tokens).await.unwrap_err());
    errors.push(impostor.revoke(&tokens).await.unwrap_err());
    assert!(
        matches!(&errors[errors.len() - 1], Error::OAuth { code, .. } if code == "invalid_client"),
        "{}",
        errors[errors.len() - 1]
    );
    // A refresh rotated, then the old refresh token reused: the grant is revoked.
    let rotated = provider.refresh(&tokens).await.unwrap();
    secrets.push(rotated.access_token.expose_secret().to_owned());
    secrets.push(
        rotated
            .refresh_token
            .as_ref()
            .unwrap()
            .expose_secret()
            .to_owned(),
    );
    errors.push(provider.refresh(&tokens).await.unwrap_err());
    errors.push(provider.identify(&rotated).await.unwrap_err());
    // The manager's view of the dead grant.
    let mut expired = tokens.clone();
    expired.expires_at = Some(std::time::SystemTime::now() - std::time::Duration::from_secs(1));
    store
        .put(&key, &expired, grantkit_core::store::Precondition::Any)
        .await
        .unwrap();
    let fresh = TokenManager::builder(provider.clone(), store.clone())
        .build()
        .unwrap();
    errors.push(fresh.access_token(&key).await.unwrap_err());

    for err in &errors {
        assert_hidden("an error", &format!("{err} {err:?}"), &secrets);
    }
    for shown in [
        format!("{provider:?}"),
        format!("{tokens:?} {rotated:?}"),
        format!("{manager:?}"),
        format!("{server:?}"),
        format!("{callback:?}"),
        format!("{:?}", server.proxy().token_log()),
    ] {
        assert_hidden("debug output", &shown, &secrets);
    }
    let logged = String::from_utf8(logs.0.lock().unwrap().clone()).unwrap();
    assert!(!logged.is_empty(), "the manager logs");
    assert_hidden("the logs", &logged, &secrets);
}
