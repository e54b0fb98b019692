//! StandardProvider against the real, independent authorization server (oidc-provider),
//! through the fault proxy that counts its token requests. Each test starts its own server.

use grantkit_conformance::Decision;
use grantkit_core::loopback::LoopbackRedirect;
use grantkit_core::{
    Callback, CallbackError, ClientSecret, Error, GrantKind, Logout, MemoryTokenStore, Provider,
    RedirectFlow, Revocation, TokenKey, TokenManager, TokenSet, TokenStore as _,
    flow::{Flow as _, FlowKind, FlowStart},
    provider::{Grant, Issuer, PkceVerifier},
    store::Precondition,
};
use grantkit_standard::testing::{
    AuthServer, AuthServerOptions, BASIC_CLIENT, POST_CLIENT, REDIRECT_URI, SERVICE_CLIENT,
    TEST_ACCOUNT, TestClient,
};
use grantkit_standard::{ClientAuth, StandardProvider};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

const SCOPES: [&str; 2] = ["openid", "read"];

async fn start(options: AuthServerOptions) -> AuthServer {
    AuthServer::start(options)
        .await
        .unwrap_or_else(|err| panic!("{err}"))
}

async fn provider(server: &AuthServer, client: &TestClient) -> Arc<StandardProvider> {
    Arc::new(
        server
            .provider(client)
            .flows([FlowKind::AuthorizationCode])
            .build()
            .await
            .expect("discovery"),
    )
}

fn manager(provider: Arc<StandardProvider>, store: Arc<MemoryTokenStore>) -> TokenManager {
    TokenManager::builder(provider, store)
        .build()
        .expect("a valid manager")
}

/// Runs the code flow through the headless browser; returns the callback URL.
async fn callback_url(server: &AuthServer, manager: &TokenManager, scopes: &[&str]) -> String {
    let flow = RedirectFlow::authorization_code(REDIRECT_URI).with_scopes(scopes.to_vec());
    let url = manager.start_authorization(&flow).await.expect("begin");
    server
        .authorize(url.expose_secret(), Decision::Approve)
        .await
        .expect("the browser step")
}

/// Runs the code flow through the headless browser; returns the callback.
async fn callback(server: &AuthServer, manager: &TokenManager, scopes: &[&str]) -> Callback {
    Callback::parse(&callback_url(server, manager, scopes).await).expect("a callback URL")
}

/// The callback `url` with its query parameters edited.
fn forged(url: &str, edit: impl FnOnce(&mut Vec<(String, String)>)) -> Callback {
    let mut url = url::Url::parse(url).expect("an absolute callback URL");
    let mut params: Vec<(String, String)> = url.query_pairs().into_owned().collect();
    edit(&mut params);
    url.query_pairs_mut().clear().extend_pairs(&params);
    Callback::parse(url.as_str()).expect("a callback URL")
}

async fn authorize(server: &AuthServer, manager: &TokenManager) -> TokenKey {
    let callback = callback(server, manager, &SCOPES).await;
    manager
        .complete_authorization(&callback)
        .await
        .expect("the code flow completes")
}

async fn stored(manager: &TokenManager, key: &TokenKey) -> Option<TokenSet> {
    manager.store().get(key).await.unwrap().map(|v| v.value)
}

/// The status of `GET path` with `token` as the bearer token.
async fn api_status(server: &AuthServer, path: &str, tokens: &TokenSet) -> u16 {
    reqwest::Client::new()
        .get(format!("{}{path}", server.issuer()))
        .bearer_auth(tokens.access_token.expose_secret())
        .send()
        .await
        .expect("the API answers")
        .status()
        .as_u16()
}

#[tokio::test]
async fn discovery_derives_the_capabilities_from_the_servers_metadata() {
    let server = start(AuthServerOptions::default()).await;
    let provider = server.provider(&BASIC_CLIENT).build().await.unwrap();
    let caps = provider.capabilities();
    assert_eq!(
        caps.flows,
        [
            FlowKind::AuthorizationCode,
            FlowKind::ClientCredentials,
            FlowKind::DeviceCode
        ],
        "no implicit: the server offers no plain `token` response type, though its \
         grant_types_supported lists `implicit`"
    );
    assert!(provider.metadata().grant_types().contains(&"implicit"));
    assert!(caps.pkce && caps.refresh && caps.revoke_grant);
    assert!(caps.may_rotate_refresh_tokens, "assumed unless configured");
    assert!(caps.scopes.iter().any(|s| s == "openid"));
    assert_eq!(
        provider.issuer(),
        Some(Issuer {
            identifier: server.issuer().to_owned(),
            always_sent: true
        }),
        "oidc-provider advertises RFC 9207"
    );
    assert_eq!(provider.client_auth(), ClientAuth::ClientSecretBasic);
    assert_eq!(provider.id(), "standard");

    let err = server
        .provider(&BASIC_CLIENT)
        .flows([FlowKind::Implicit])
        .build()
        .await
        .expect_err("implicit is not on offer");
    assert!(matches!(err, Error::Configuration { .. }), "{err}");
    assert!(err.to_string().contains("token"), "{err}");
}

#[tokio::test]
async fn discovery_falls_back_to_openid_configuration() {
    let server = start(AuthServerOptions::default()).await;
    server
        .proxy()
        .hide_path("/.well-known/oauth-authorization-server");
    let hidden = reqwest::get(format!(
        "{}/.well-known/oauth-authorization-server",
        server.issuer()
    ))
    .await
    .unwrap();
    assert_eq!(hidden.status(), 404, "only OpenID discovery is left");
    let provider = server.provider(&BASIC_CLIENT).build().await.unwrap();
    assert_eq!(provider.metadata().issuer.as_deref(), Some(server.issuer()));
    assert!(provider.metadata().token_endpoint.is_some());
}

#[tokio::test]
async fn discovery_rejects_an_issuer_mismatch() {
    let server = start(AuthServerOptions::default()).await;
    // The same server, named with a trailing slash: RFC 8414 §3.3 wants them identical.
    let err = StandardProvider::builder(BASIC_CLIENT.id, ClientSecret::new(BASIC_CLIENT.secret))
        .issuer(format!("{}/", server.issuer()))
        .build()
        .await
        .expect_err("an issuer mismatch");
    assert!(matches!(err, Error::Configuration { .. }), "{err}");
    assert!(err.to_string().contains("issuer mismatch"), "{err}");
}

#[tokio::test]
async fn code_flow_with_pkce_through_the_loopback_helper() {
    let server = start(AuthServerOptions::default()).await;
    let provider = provider(&server, &BASIC_CLIENT).await;
    let manager = manager(provider.clone(), Arc::new(MemoryTokenStore::new()));
    let listener = LoopbackRedirect::bind_any_port("/callback").await.unwrap();
    let flow = RedirectFlow::authorization_code(listener.redirect_uri()).with_scopes(SCOPES);
    let url = manager.start_authorization(&flow).await.unwrap();
    let parsed = url.expose_url().unwrap();
    let param = |name: &str| {
        parsed
            .query_pairs()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.into_owned())
    };
    assert_eq!(param("code_challenge_method").as_deref(), Some("S256"));
    assert_eq!(param("code_challenge").map(|c| c.len()), Some(43));
    assert_eq!(param("response_type").as_deref(), Some("code"));

    let waiting = tokio::spawn(listener.wait());
    server
        .authorize_and_deliver(url.expose_secret(), Decision::Approve)
        .await
        .unwrap();
    let callback = waiting
        .await
        .unwrap()
        .expect("the loopback helper got the callback");
    assert!(callback.query.get("iss").is_some(), "RFC 9207 iss is sent");
    let key = manager.complete_authorization(&callback).await.unwrap();
    assert_eq!(
        key,
        TokenKey::new("standard", BASIC_CLIENT.id, TEST_ACCOUNT)
    );

    let tokens = stored(&manager, &key).await.unwrap();
    assert_eq!(tokens.grant, GrantKind::AuthorizationCode);
    assert!(tokens.refresh_token.is_some());
    assert!(tokens.expires_at.unwrap() > SystemTime::now());
    assert_eq!(tokens.scopes, SCOPES);
    let client = manager.authorized_client(reqwest::Client::new(), key);
    let me = client
        .send(client.http().get(format!("{}/me", server.issuer())))
        .await
        .unwrap();
    assert_eq!(me.status(), 200);
    let body: serde_json::Value = serde_json::from_slice(&me.bytes().await.unwrap()).unwrap();
    assert_eq!(body["sub"], TEST_ACCOUNT);
}

#[tokio::test]
async fn refresh_with_rotation_stores_the_new_refresh_token_and_reuse_ends_the_grant() {
    let server = start(AuthServerOptions::default().with_rotation(true)).await;
    let provider = provider(&server, &BASIC_CLIENT).await;
    let manager = manager(provider.clone(), Arc::new(MemoryTokenStore::new()));
    let key = authorize(&server, &manager).await;
    let before = stored(&manager, &key).await.unwrap();
    let calls = server.proxy().token_requests();

    let refreshed = manager.refresh(&key).await.unwrap();
    assert_eq!(server.proxy().token_requests(), calls + 1);
    let after = stored(&manager, &key).await.unwrap();
    assert!(after.refresh_token != before.refresh_token, "rotated");
    assert!(after.refresh_token == refreshed.refresh_token, "and stored");
    assert!(after.access_token != before.access_token);
    assert_eq!(api_status(&server, "/me", &after).await, 200);

    // The consumed refresh token is refused, and its reuse makes the server revoke the
    // whole grant: the newest refresh token dies with it. This is what the lease prevents
    // between processes (see tests/rotation_race.rs).
    let err = provider.refresh(&before).await.unwrap_err();
    assert!(err.is_invalid_grant(), "{err}");
    let err = provider.refresh(&after).await.unwrap_err();
    assert!(err.is_invalid_grant(), "{err}");
    assert_eq!(api_status(&server, "/me", &after).await, 401);
}

#[tokio::test]
async fn refresh_without_rotation_keeps_the_refresh_token() {
    let server = start(AuthServerOptions::default().with_rotation(false)).await;
    let provider = Arc::new(
        server
            .provider(&BASIC_CLIENT)
            .flows([FlowKind::AuthorizationCode])
            .refresh_token_rotation(false)
            .build()
            .await
            .unwrap(),
    );
    assert!(!provider.capabilities().may_rotate_refresh_tokens);
    let manager = manager(provider.clone(), Arc::new(MemoryTokenStore::new()));
    let key = authorize(&server, &manager).await;
    let first = stored(&manager, &key).await.unwrap();
    for _ in 0..2 {
        manager.refresh(&key).await.unwrap();
        let now = stored(&manager, &key).await.unwrap();
        assert!(now.refresh_token == first.refresh_token, "kept");
        assert!(now.access_token != first.access_token);
    }
    // The original token set still refreshes: nothing was consumed.
    provider.refresh(&first).await.unwrap();
}

#[tokio::test]
async fn revocation_ends_the_grant_and_the_manager_asks_for_reauthorization() {
    let server = start(AuthServerOptions::default()).await;
    let provider = provider(&server, &BASIC_CLIENT).await;
    let store = Arc::new(MemoryTokenStore::new());
    let manager = manager(provider.clone(), store.clone());
    let key = authorize(&server, &manager).await;
    let old = stored(&manager, &key).await.unwrap();

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
    assert_eq!(
        api_status(&server, "/me", &old).await,
        401,
        "the access token is dead"
    );
    let err = provider.refresh(&old).await.unwrap_err();
    assert!(
        err.is_invalid_grant(),
        "the old refresh token is refused: {err}"
    );

    // A process that still holds the revoked grant, expired, meets the same refusal and
    // is told to authorize again; the dead grant is deleted.
    let mut held = old.clone();
    held.expires_at = Some(SystemTime::now() - Duration::from_secs(1));
    store.put(&key, &held, Precondition::Absent).await.unwrap();
    let elsewhere = self::manager(provider.clone(), store.clone());
    let err = elsewhere.access_token(&key).await.unwrap_err();
    assert!(err.is_reauthorization_required(), "{err}");
    assert!(store.get(&key).await.unwrap().is_none());
}

#[tokio::test]
async fn client_credentials_are_renewed_by_repeating_the_grant() {
    let server = start(AuthServerOptions::default()).await;
    let provider = Arc::new(
        server
            .provider(&SERVICE_CLIENT)
            .flows([FlowKind::ClientCredentials])
            .build()
            .await
            .unwrap(),
    );
    let manager = manager(provider.clone(), Arc::new(MemoryTokenStore::new()));
    let key = manager
        .sign_in_with_client_credentials(["read"])
        .await
        .unwrap();
    assert_eq!(key.account, SERVICE_CLIENT.id, "the client acts for itself");
    let first = stored(&manager, &key).await.unwrap();
    assert_eq!(first.grant, GrantKind::ClientCredentials);
    assert!(first.refresh_token.is_none());
    assert_eq!(first.scopes, ["read"]);
    assert_eq!(api_status(&server, "/grantkit/resource", &first).await, 200);

    let calls = server.proxy().token_requests();
    let renewed = manager.refresh(&key).await.unwrap();
    assert!(renewed.access_token != first.access_token);
    assert_eq!(server.proxy().token_requests(), calls + 1);
    let last = server.proxy().token_log().pop().unwrap();
    assert_eq!(last.grant_type.as_deref(), Some("client_credentials"));
    assert_eq!(
        api_status(&server, "/grantkit/resource", &renewed).await,
        200
    );

    // Revoked at the server, it is simply obtained again.
    assert_eq!(
        provider.revoke(&renewed).await.unwrap(),
        Revocation::Revoked
    );
    assert_eq!(
        api_status(&server, "/grantkit/resource", &renewed).await,
        401
    );
    let client = manager.authorized_client(reqwest::Client::new(), key);
    let response = client
        .send(
            client
                .http()
                .get(format!("{}/grantkit/resource", server.issuer())),
        )
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
}

#[tokio::test]
async fn a_wrong_pkce_verifier_is_invalid_grant() {
    let server = start(AuthServerOptions::default()).await;
    let provider = provider(&server, &BASIC_CLIENT).await;
    let flow = RedirectFlow::authorization_code(REDIRECT_URI).with_scopes(SCOPES);
    let FlowStart::Redirect { url, pending } = flow
        .start(provider.as_ref(), SystemTime::now())
        .await
        .unwrap()
    else {
        panic!("a redirect");
    };
    assert!(pending.pkce_verifier.is_some());
    let callback = server
        .authorize(url.expose_secret(), Decision::Approve)
        .await
        .unwrap();
    let code = Callback::parse(&callback)
        .unwrap()
        .query
        .get("code")
        .unwrap()
        .to_owned();
    let err = provider
        .exchange(Grant::AuthorizationCode {
            code: grantkit_core::provider::AuthorizationCode::new(code),
            redirect_uri: REDIRECT_URI.to_owned(),
            pkce_verifier: Some(PkceVerifier::generate()),
        })
        .await
        .unwrap_err();
    assert!(err.is_invalid_grant(), "{err}");
}

#[tokio::test]
async fn a_changed_state_is_rejected_before_any_token_request() {
    let server = start(AuthServerOptions::default()).await;
    let provider = provider(&server, &BASIC_CLIENT).await;
    let manager = manager(provider.clone(), Arc::new(MemoryTokenStore::new()));
    let url = callback_url(&server, &manager, &SCOPES).await;
    let genuine = Callback::parse(&url).unwrap();
    let calls = server.proxy().token_requests();

    // Through the manager: the forged state names no pending authorization.
    let forged = forged(&url, |params| {
        for (name, value) in params {
            if name == "state" {
                value.push('x');
            }
        }
    });
    let err = manager.complete_authorization(&forged).await.unwrap_err();
    assert!(
        matches!(
            err,
            Error::InvalidCallback {
                reason: CallbackError::UnknownState
            }
        ),
        "{err}"
    );
    // Through the flow, with the pending authorization in hand: a state mismatch.
    let other = RedirectFlow::authorization_code(REDIRECT_URI).with_scopes(SCOPES);
    let FlowStart::Redirect { pending, .. } = other
        .start(provider.as_ref(), SystemTime::now())
        .await
        .unwrap()
    else {
        panic!("a redirect");
    };
    let err = grantkit_core::flow::finish(provider.as_ref(), pending, &genuine, SystemTime::now())
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            Error::InvalidCallback {
                reason: CallbackError::StateMismatch
            }
        ),
        "{err}"
    );
    assert_eq!(
        server.proxy().token_requests(),
        calls,
        "no token request was made"
    );
    manager.complete_authorization(&genuine).await.unwrap();
    assert_eq!(server.proxy().token_requests(), calls + 1);
}

#[tokio::test]
async fn a_changed_or_missing_iss_is_rejected_before_any_token_request() {
    let server = start(AuthServerOptions::default()).await;
    let provider = provider(&server, &BASIC_CLIENT).await;
    let manager = manager(provider.clone(), Arc::new(MemoryTokenStore::new()));
    for forge in [Some("http://127.0.0.1:1"), None] {
        let url = callback_url(&server, &manager, &SCOPES).await;
        let calls = server.proxy().token_requests();
        let forged = forged(&url, |params| {
            params.retain(|(name, _)| name != "iss");
            params.extend(forge.map(|iss| ("iss".to_owned(), iss.to_owned())));
        });
        let err = manager.complete_authorization(&forged).await.unwrap_err();
        assert!(
            matches!(
                err,
                Error::InvalidCallback {
                    reason: CallbackError::IssuerMismatch
                }
            ),
            "{err}"
        );
        assert_eq!(server.proxy().token_requests(), calls);
    }
}

/// RFC 9207 §2.4: an `iss` that is present must name the issuer even where the server does
/// not advertise `authorization_response_iss_parameter_supported`; without that promise a
/// callback without `iss` is accepted.
#[tokio::test]
async fn a_foreign_iss_is_refused_even_where_the_server_does_not_advertise_iss() {
    let server = start(AuthServerOptions::default()).await;
    let discovered = provider(&server, &BASIC_CLIENT).await;
    let quiet = discovered.metadata().clone().with_iss_parameter(false);
    let provider = Arc::new(
        server
            .provider(&BASIC_CLIENT)
            .metadata(quiet)
            .flows([FlowKind::AuthorizationCode])
            .build()
            .await
            .unwrap(),
    );
    assert_eq!(
        provider.issuer().map(|issuer| issuer.always_sent),
        Some(false)
    );
    let manager = manager(provider.clone(), Arc::new(MemoryTokenStore::new()));

    let url = callback_url(&server, &manager, &SCOPES).await;
    let calls = server.proxy().token_requests();
    let evil = forged(&url, |params| {
        params.retain(|(name, _)| name != "iss");
        params.push(("iss".to_owned(), "http://evil.test".to_owned()));
    });
    let err = manager.complete_authorization(&evil).await.unwrap_err();
    assert!(
        matches!(
            err,
            Error::InvalidCallback {
                reason: CallbackError::IssuerMismatch
            }
        ),
        "{err}"
    );
    assert_eq!(
        server.proxy().token_requests(),
        calls,
        "no code was exchanged"
    );

    let url = callback_url(&server, &manager, &SCOPES).await;
    let without_iss = forged(&url, |params| params.retain(|(name, _)| name != "iss"));
    manager
        .complete_authorization(&without_iss)
        .await
        .expect("no `iss` is promised, so none is required");
}

#[tokio::test]
async fn a_client_secret_with_reserved_characters_works_with_client_secret_basic() {
    for reserved in [':', '@', '+', '%', '&', '='] {
        assert!(BASIC_CLIENT.secret.contains(reserved), "{reserved}");
    }
    let server = start(AuthServerOptions::default()).await;
    let provider = Arc::new(
        server
            .provider(&BASIC_CLIENT)
            .flows([FlowKind::AuthorizationCode])
            .client_auth(ClientAuth::ClientSecretBasic)
            .build()
            .await
            .unwrap(),
    );
    let manager = manager(provider.clone(), Arc::new(MemoryTokenStore::new()));
    let key = authorize(&server, &manager).await;
    manager.refresh(&key).await.unwrap();
    let log = server.proxy().token_log();
    assert_eq!(log.len(), 2);
    assert!(
        log.iter().all(|r| r.basic_auth && !r.secret_in_body),
        "{log:?}"
    );

    // The encoding is what makes it work: the same credentials in Basic without
    // form-urlencoding first are refused.
    use base64::Engine as _;
    let raw = base64::engine::general_purpose::STANDARD
        .encode(format!("{}:{}", BASIC_CLIENT.id, BASIC_CLIENT.secret));
    let response = reqwest::Client::new()
        .post(format!("{}/token", server.issuer()))
        .header("authorization", format!("Basic {raw}"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("grant_type=refresh_token&refresh_token=unknown")
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let body: serde_json::Value = serde_json::from_slice(&response.bytes().await.unwrap()).unwrap();
    assert!(
        matches!(
            body["error"].as_str(),
            Some("invalid_request" | "invalid_client")
        ),
        "{status} {body}"
    );
}

#[tokio::test]
async fn client_secret_post_sends_the_secret_in_the_body_only() {
    let server = start(AuthServerOptions::default()).await;
    let provider = Arc::new(
        server
            .provider(&POST_CLIENT)
            .flows([FlowKind::AuthorizationCode])
            .client_auth(ClientAuth::ClientSecretPost)
            .build()
            .await
            .unwrap(),
    );
    let manager = manager(provider.clone(), Arc::new(MemoryTokenStore::new()));
    let key = authorize(&server, &manager).await;
    manager.refresh(&key).await.unwrap();
    let log = server.proxy().token_log();
    assert_eq!(log.len(), 2);
    assert!(
        log.iter().all(|r| !r.basic_auth && r.secret_in_body),
        "{log:?}"
    );
}

#[tokio::test]
async fn without_the_openid_scope_the_account_comes_from_introspection() {
    let server = start(AuthServerOptions::default()).await;
    let provider = provider(&server, &BASIC_CLIENT).await;
    let manager = manager(provider.clone(), Arc::new(MemoryTokenStore::new()));
    let callback = callback(&server, &manager, &["read"]).await;
    let key = manager.complete_authorization(&callback).await.unwrap();
    let tokens = stored(&manager, &key).await.unwrap();
    assert_eq!(tokens.scopes, ["read"]);
    assert_eq!(
        api_status(&server, "/me", &tokens).await,
        403,
        "userinfo wants openid"
    );
    assert_eq!(key.account, TEST_ACCOUNT, "identified by introspection");
}

#[tokio::test]
async fn an_access_token_expiring_at_the_server_is_refreshed_and_the_request_replayed() {
    // The server expires the token ahead of its time; the manager's clock stands still, so
    // only the server's refusal can show that the token expired. (A real short lifetime
    // would also expire the refreshed token before a loaded machine replays the request.)
    let server = start(AuthServerOptions::default()).await;
    let provider = provider(&server, &BASIC_CLIENT).await;
    let clock = Arc::new(grantkit_core::clock::ManualClock::starting_now());
    let manager = TokenManager::builder(provider.clone(), Arc::new(MemoryTokenStore::new()))
        .clock(clock)
        .build()
        .unwrap();
    let key = authorize(&server, &manager).await;
    let tokens = stored(&manager, &key).await.unwrap();
    assert_eq!(api_status(&server, "/me", &tokens).await, 200);
    server
        .expire_access_token(&tokens.access_token)
        .await
        .expect("the server expires the token");
    assert_eq!(
        api_status(&server, "/me", &tokens).await,
        401,
        "expired at the server"
    );
    let calls = server.proxy().token_requests();
    let client = manager.authorized_client(reqwest::Client::new(), key.clone());
    let me = client
        .send(client.http().get(format!("{}/me", server.issuer())))
        .await
        .unwrap();
    assert_eq!(me.status(), 200, "refused, refreshed, replayed");
    assert_eq!(server.proxy().token_requests(), calls + 1, "one refresh");
    let now = stored(&manager, &key).await.unwrap();
    assert!(now.access_token != tokens.access_token);
}
