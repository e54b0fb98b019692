//! StandardProvider and TokenManager against the real, independent authorization server
//! when it behaves in ways grantkit's own servers never do: identity from a claim other
//! than `sub`, a grant nobody can identify, a refresh that re-issues the same access
//! token, a 429 with an OAuth body, a revocation endpoint that fails.

use grantkit_conformance::Decision;
use grantkit_conformance::ServerFault;
use grantkit_core::{
    Callback, Error, Logout, MemoryTokenStore, RedirectFlow, Revocation, TokenKey, TokenManager,
    flow::FlowKind, provider::REVOCATION_PENDING,
};
use grantkit_standard::StandardProviderBuilder;
use grantkit_standard::testing::{
    AuthServer, AuthServerOptions, BASIC_CLIENT, CannedAnswer, REDIRECT_URI, REVOCATION_PATH,
    Route, TEST_ACCOUNT, TEST_USERNAME,
};
use std::sync::Arc;
use std::time::Duration;

async fn start() -> AuthServer {
    AuthServer::start(AuthServerOptions::default())
        .await
        .unwrap_or_else(|err| panic!("{err}"))
}

async fn manager(
    server: &AuthServer,
    configure: impl FnOnce(StandardProviderBuilder) -> StandardProviderBuilder,
) -> TokenManager {
    let provider = configure(
        server
            .provider(&BASIC_CLIENT)
            .flows([FlowKind::AuthorizationCode]),
    )
    .build()
    .await
    .expect("discovery");
    TokenManager::builder(Arc::new(provider), Arc::new(MemoryTokenStore::new()))
        .build()
        .expect("a valid manager")
}

/// Runs the code flow through the headless browser and completes it.
async fn sign_in(server: &AuthServer, manager: &TokenManager) -> grantkit_core::Result<TokenKey> {
    let flow = RedirectFlow::authorization_code(REDIRECT_URI).with_scopes(["openid", "read"]);
    let url = manager.start_authorization(&flow).await.expect("begin");
    let callback = server
        .authorize(url.expose_secret(), Decision::Approve)
        .await
        .expect("the browser step");
    manager
        .complete_authorization(&Callback::parse(&callback).unwrap())
        .await
}

#[tokio::test]
async fn the_account_can_come_from_a_claim_other_than_sub() {
    let server = start().await;
    // No userinfo endpoint: introspection, which names the user as `username` too.
    server.proxy().hide_path("/me");
    let manager = manager(&server, |builder| builder.account_claims(["username"])).await;
    let key = sign_in(&server, &manager)
        .await
        .expect("identified by username");
    assert_eq!(key.account, TEST_USERNAME);

    let by_default = self::manager(&server, |builder| builder).await;
    let key = sign_in(&server, &by_default).await.unwrap();
    assert_eq!(key.account, TEST_ACCOUNT, "`sub` comes first by default");
}

#[tokio::test]
async fn a_grant_nobody_can_identify_is_revoked_and_the_error_names_every_endpoint() {
    let server = start().await;
    server.proxy().hide_path("/me");
    let manager = manager(&server, |builder| {
        builder.account_claims(["employee_number"])
    })
    .await;
    let revocations = server.proxy().requests_to(REVOCATION_PATH);
    let err = sign_in(&server, &manager).await.unwrap_err();
    let Error::Unidentified { reason, revocation } = &err else {
        panic!("expected Unidentified, got {err}");
    };
    assert!(
        reason.contains("userinfo endpoint") && reason.contains("404"),
        "{reason}"
    );
    assert!(
        reason.contains("introspection endpoint") && reason.contains("employee_number"),
        "{reason}"
    );
    assert_eq!(revocation, "the grant was revoked at the provider");
    assert_eq!(
        server.proxy().requests_to(REVOCATION_PATH),
        revocations + 2,
        "the refresh token, then the access token"
    );
    assert!(
        manager
            .store()
            .list(&grantkit_core::store::KeyFilter::provider("standard"))
            .await
            .unwrap()
            .is_empty(),
        "nothing stored"
    );
}

#[tokio::test]
async fn a_failing_userinfo_endpoint_is_reported_not_swallowed() {
    let server = start().await;
    let manager = manager(&server, |builder| {
        builder.account_claims(["employee_number"])
    })
    .await;
    server
        .proxy()
        .inject(Route::Api, ServerFault::ServerErrorHtml, 1);
    let err = sign_in(&server, &manager).await.unwrap_err();
    let shown = err.to_string();
    assert!(
        shown.contains("userinfo endpoint: provider unavailable (HTTP 503)"),
        "{shown}"
    );
    assert!(shown.contains("introspection endpoint"), "{shown}");

    // With the default claims, introspection's `sub` identifies the user when userinfo fails.
    let by_default = self::manager(&server, |builder| builder).await;
    server
        .proxy()
        .inject(Route::Api, ServerFault::ServerErrorHtml, 1);
    let key = sign_in(&server, &by_default)
        .await
        .expect("introspection names the user");
    assert_eq!(key.account, TEST_ACCOUNT);
}

#[tokio::test]
async fn a_refresh_that_reissues_the_same_access_token_is_sent_once_and_succeeds() {
    let server = start().await;
    let manager = manager(&server, |builder| builder).await;
    let key = sign_in(&server, &manager).await.unwrap();
    let before = manager.store().get(&key).await.unwrap().unwrap().value;

    server.proxy().reissue_on_next_refresh(&before.access_token);
    let calls = server.proxy().token_requests();
    let refreshed = manager.refresh(&key).await.expect("one refresh succeeds");
    assert_eq!(
        server.proxy().token_requests(),
        calls + 1,
        "exactly one refresh request"
    );
    assert!(
        refreshed.access_token == before.access_token,
        "the same token"
    );
    let stored = manager.store().get(&key).await.unwrap().unwrap().value;
    assert!(
        stored.refresh_token != before.refresh_token,
        "the rotated refresh token is kept"
    );

    // The rotated refresh token is the live one: the next refresh works.
    manager
        .refresh(&key)
        .await
        .expect("the rotated refresh token works");
    assert_eq!(server.proxy().token_requests(), calls + 2);
}

#[tokio::test]
async fn a_429_with_an_oauth_body_is_a_rate_limit_with_its_delay() {
    let server = start().await;
    let manager = manager(&server, |builder| builder).await;
    let key = sign_in(&server, &manager).await.unwrap();
    let before = manager.store().get(&key).await.unwrap().unwrap();
    for body in [
        r#"{"error":"slow_down"}"#,
        r#"{"error":"invalid_request","error_description":"too many requests"}"#,
    ] {
        server.proxy().inject_answer(
            Route::Token,
            CannedAnswer::json(429, body).with_header("Retry-After", "3"),
            1,
        );
        let err = manager.refresh(&key).await.unwrap_err();
        assert!(
            matches!(err, Error::RateLimited { retry_after: Some(d) } if d == Duration::from_secs(3)),
            "{body}: {err:?}"
        );
        assert!(err.is_retryable());
    }
    server.proxy().inject_answer(
        Route::Token,
        CannedAnswer::json(503, r#"{"error":"temporarily_unavailable"}"#)
            .with_header("Retry-After", "2"),
        1,
    );
    let err = manager.refresh(&key).await.unwrap_err();
    assert_eq!(err.retry_after(), Some(Duration::from_secs(2)), "{err:?}");
    assert!(err.is_retryable());
    assert_eq!(
        manager.store().get(&key).await.unwrap().unwrap(),
        before,
        "the grant is untouched"
    );
}

#[tokio::test]
async fn a_logout_whose_revocation_fails_keeps_the_grant_until_a_later_logout_revokes_it() {
    let server = start().await;
    let manager = manager(&server, |builder| builder).await;
    let key = sign_in(&server, &manager).await.unwrap();
    server
        .proxy()
        .inject(Route::Revocation, ServerFault::ServerErrorHtml, 1);
    let logout = manager.logout(&key).await.unwrap();
    assert!(
        matches!(logout, Logout::RevocationPending { .. }),
        "{logout}"
    );
    let kept = manager.store().get(&key).await.unwrap().expect("kept");
    assert!(kept.value.extras.contains_key(REVOCATION_PENDING));
    assert!(
        manager
            .access_token(&key)
            .await
            .unwrap_err()
            .is_reauthorization_required(),
        "a grant being logged out is not served"
    );

    let logout = manager.logout(&key).await.unwrap();
    assert!(
        matches!(
            logout,
            Logout::Deleted {
                remote: Revocation::Revoked
            }
        ),
        "{logout}"
    );
    assert!(manager.store().get(&key).await.unwrap().is_none());
    // The server agrees: the old refresh token is dead.
    let err = manager.provider().refresh(&kept.value).await.unwrap_err();
    assert!(err.is_invalid_grant(), "{err}");
}
