//! No secret reaches `Debug`, `Display`, an error or a log line.

mod support;

use grantkit_core::{
    AccessToken, Callback, CallbackError, ClientSecret, Error, Password, RedirectFlow,
    RefreshToken, SecretUrl, TokenStore,
    flow::{Flow, FlowStart, PasswordFlow},
    provider::{Grant, PkceVerifier},
    store::StateToken,
};
use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};
use support::*;

const SECRETS: [&str; 8] = [
    "ACCESS-5ecret",
    "REFRESH-5ecret",
    "CLIENT-5ecret",
    "PASSWORD-5ecret",
    "CODE-5ecret",
    "VERIFIER-5ecret",
    "STATE-5ecret",
    "RENEW-5ecret",
];

fn assert_clean(what: &str, text: &str) {
    for secret in SECRETS {
        assert!(!text.contains(secret), "{what} shows a secret: {text}");
    }
}

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[test]
fn every_type_holding_a_secret_is_redacted_in_debug_and_display() {
    let mut tokens = tokens(SECRETS[0], Some(SECRETS[1]), SystemTime::now());
    tokens.extras.insert("note", "not secret");
    let pending = grantkit_core::store::PendingAuthorization {
        state: StateToken::new(SECRETS[6]),
        flow: grantkit_core::flow::FlowKind::AuthorizationCode,
        provider: "p".into(),
        client: "c".into(),
        redirect_uri: "http://127.0.0.1/cb".into(),
        scopes: vec![],
        pkce_verifier: Some(PkceVerifier::new(SECRETS[5])),
        created_at: SystemTime::now(),
        expires_at: SystemTime::now(),
        extras: Default::default(),
    };
    let callback = Callback::parse(&format!(
        "/cb?code={}&state={}#access_token={}",
        SECRETS[4], SECRETS[6], SECRETS[0]
    ))
    .unwrap();
    let grants = [
        Grant::AuthorizationCode {
            code: grantkit_core::provider::AuthorizationCode::new(SECRETS[4]),
            redirect_uri: "x".into(),
            pkce_verifier: Some(PkceVerifier::new(SECRETS[5])),
        },
        Grant::Implicit {
            params: callback.fragment.clone(),
            scopes: vec![],
        },
        Grant::Password {
            username: "alice".into(),
            password: Password::new(SECRETS[3]),
        },
    ];
    let errors = [
        Error::RenewRequired {
            renew_url: SecretUrl::new(format!("https://x/?access_token={}", SECRETS[7])),
        },
        Error::callback(CallbackError::StateMismatch),
        Error::oauth("invalid_grant", Some("refresh token expired".into())),
    ];
    let flow = PasswordFlow::new("alice", Password::new(SECRETS[3]));
    let start = FlowStart::Redirect {
        url: SecretUrl::new(format!("https://auth/?state={}", SECRETS[6])),
        pending: pending.clone(),
    };
    let shown = [
        format!("{tokens:?}"),
        format!("{tokens:#?}"),
        format!("{pending:?}"),
        format!("{callback:?}"),
        format!("{grants:?}"),
        format!("{errors:?}"),
        errors
            .iter()
            .map(|e| e.to_string())
            .collect::<Vec<_>>()
            .join("\n"),
        format!("{flow:?}"),
        format!("{start:?}"),
        format!(
            "{:?} {}",
            ClientSecret::new(SECRETS[2]),
            ClientSecret::new(SECRETS[2])
        ),
        format!(
            "{:?} {}",
            RefreshToken::new(SECRETS[1]),
            AccessToken::new(SECRETS[0])
        ),
    ];
    for (i, text) in shown.iter().enumerate() {
        assert_clean(&format!("formatting #{i}"), text);
    }
}

#[tokio::test]
async fn logs_of_every_manager_path_hold_no_secret() {
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    // A redirect flow: start, complete (exchange), then refresh, a failed refresh, a refused
    // refresh, and a logout — the current-thread runtime runs the manager's spawned tasks
    // on this thread, under this subscriber.
    let mut mock = mock_provider();
    mock.expect_authorization_url()
        .returning(|_| Ok(url::Url::parse("https://auth.example/authorize").unwrap()));
    let soon = SystemTime::now() - Duration::from_secs(60);
    mock.expect_exchange()
        .returning(move |_| Ok(tokens(SECRETS[0], Some(SECRETS[1]), soon)));
    let mut calls = 0;
    mock.expect_refresh().returning(move |_| {
        calls += 1;
        match calls {
            1 => Ok(tokens("ACCESS-5ecret-2", Some(SECRETS[1]), soon)),
            2 => Err(Error::unavailable(503, None)),
            _ => Err(Error::oauth("invalid_grant", None)),
        }
    });
    mock.expect_revoke()
        .returning(|_| Ok(grantkit_core::Revocation::Revoked));
    let provider = Arc::new(mock);
    let fx = fixture(provider.clone());
    let flow = RedirectFlow::authorization_code("http://127.0.0.1:9/cb");
    let url = fx.manager.start_authorization(&flow).await.unwrap();
    assert!(url.expose_secret().starts_with("https://auth.example/"));
    let pending_state = {
        // The state is only in the pending authorization; recover it by starting directly.
        let FlowStart::Redirect { pending, .. } =
            flow.start(provider.as_ref(), fx.now()).await.unwrap()
        else {
            panic!("a redirect flow redirects")
        };
        fx.store
            .put_pending(&pending, Duration::from_secs(60))
            .await
            .unwrap();
        pending.state
    };
    let callback = Callback::parse(&format!(
        "/cb?code={}&state={}",
        SECRETS[4],
        pending_state.expose_secret()
    ))
    .unwrap();
    fx.manager.complete_authorization(&callback).await.unwrap();
    let _ = fx.manager.access_token(&key()).await;
    let _ = fx.manager.access_token(&key()).await;
    let _ = fx.manager.access_token(&key()).await;
    let _ = fx.manager.logout(&key()).await;

    let logs = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    assert!(
        logs.contains("token refreshed"),
        "the paths did log: {logs}"
    );
    assert!(logs.contains("refresh failed"), "{logs}");
    assert_clean("the logs", &logs);
    assert!(!logs.contains(pending_state.expose_secret()));
}
