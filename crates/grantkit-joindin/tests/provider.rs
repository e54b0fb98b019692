//! JoindinProvider against the Joind.in emulator over real HTTP, and against a capturing
//! socket for the exact shape of the password grant.

use grantkit_conformance::Decision;
use grantkit_core::provider::AuthorizationRequest;
use grantkit_core::{
    AccessToken, Callback, ClientSecret, Error, GrantKind, MemoryTokenStore, Password, Provider,
    RedirectFlow, Revocation, TokenManager, TokenSet,
    flow::{CallbackParams, Flow as _, FlowKind},
    provider::Grant,
    store::StateToken,
};
use grantkit_emulator::{Fault, FaultRule, JoindinClient as Consumer, JoindinEndpoint};
use grantkit_joindin::testing::JoindinHarness;
use grantkit_joindin::{JoindinProvider, USER_URI_EXTRA};
use std::sync::Arc;
use std::time::{Duration, SystemTime};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpListener;

fn harness(
    name: &str,
    quirks: impl FnOnce(&mut grantkit_emulator::JoindinQuirks),
) -> JoindinHarness {
    JoindinHarness::start(name, quirks).expect("harness")
}

async fn password_grant(
    provider: &JoindinProvider,
    user: &str,
    password: &str,
) -> grantkit_core::Result<TokenSet> {
    provider
        .exchange(Grant::Password {
            username: user.to_owned(),
            password: Password::new(password),
        })
        .await
}

fn oauth_code(err: &Error) -> &str {
    match err {
        Error::OAuth { code, .. } => code,
        other => panic!("expected an OAuth error, got {other:?}"),
    }
}

/// Reads one HTTP request from a socket and answers it with `answer`; returns the raw
/// request (head and body).
async fn capture_one(listener: TcpListener, answer: String) -> String {
    let (mut socket, _) = listener.accept().await.expect("a connection");
    let mut raw = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let n = socket.read(&mut buf).await.expect("read");
        assert!(n > 0, "the client closed before sending the whole request");
        raw.extend_from_slice(&buf[..n]);
        let text = String::from_utf8_lossy(&raw).to_string();
        if let Some(head_end) = text.find("\r\n\r\n") {
            let length = text[..head_end]
                .lines()
                .find_map(|l| {
                    l.to_ascii_lowercase()
                        .strip_prefix("content-length:")
                        .map(|v| v.trim().parse::<usize>().unwrap())
                })
                .unwrap_or(0);
            if raw.len() >= head_end + 4 + length {
                break;
            }
        }
    }
    socket.write_all(answer.as_bytes()).await.expect("write");
    socket.shutdown().await.ok();
    String::from_utf8(raw).expect("a UTF-8 request")
}

#[tokio::test]
async fn password_grant_sends_exact_json_once_and_keeps_no_password() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let body = format!(r#"{{"access_token":"0123456789abcdef","user_uri":"{base}/v2.1/users/5"}}"#);
    let answer = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: application/json; charset=utf8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let server = tokio::spawn(capture_one(listener, answer));
    let provider = JoindinProvider::builder("key+/=", ClientSecret::new("client-secret-value"))
        .api_base(format!("{base}/v2.1"))
        .build()
        .unwrap();
    let tokens = password_grant(&provider, "alice", "pass-word-value")
        .await
        .expect("grant");
    let request = server.await.unwrap();
    let (head, json) = request.split_once("\r\n\r\n").unwrap();
    let mut lines = head.lines();
    assert_eq!(
        lines.next(),
        Some("POST /v2.1/token HTTP/1.1"),
        "no query string: {head}"
    );
    let headers: Vec<(String, String)> = lines
        .map(|l| {
            let (k, v) = l.split_once(':').unwrap();
            (k.trim().to_ascii_lowercase(), v.trim().to_owned())
        })
        .collect();
    let header = |name: &str| {
        headers
            .iter()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .collect::<Vec<_>>()
    };
    assert_eq!(
        header("content-type"),
        ["application/json"],
        "exactly, without a charset"
    );
    assert_eq!(header("accept"), ["application/json"]);
    assert!(header("authorization").is_empty());
    let sent: serde_json::Value = serde_json::from_str(json).unwrap();
    assert_eq!(
        sent,
        serde_json::json!({"grant_type": "password", "username": "alice", "password": "pass-word-value",
            "client_id": "key+/=", "client_secret": "client-secret-value"})
    );
    assert_eq!(tokens.access_token.expose_secret(), "0123456789abcdef");
    assert_eq!(tokens.grant, GrantKind::Password);
    assert_eq!(tokens.expires_at, None);
    assert!(tokens.refresh_token.is_none());
    assert_eq!(tokens.token_type, "bearer");
    let kept = format!("{tokens:?} {:?}", tokens.extras);
    assert!(
        !kept.contains("pass-word-value") && !kept.contains("client-secret-value"),
        "{kept}"
    );
    assert_eq!(
        provider.identify(&tokens).await.unwrap(),
        format!("{base}/v2.1/users/5")
    );
}

#[tokio::test]
async fn password_grant_against_the_emulator() {
    let h = harness("joindin", |_| {});
    let fx = h.emulator().fixtures().clone();
    let provider = h.joindin_provider();
    let tokens = password_grant(&provider, &fx.username, &fx.password)
        .await
        .unwrap();
    assert!(
        h.emulator()
            .token_exists(tokens.access_token.expose_secret())
    );
    assert_eq!(
        tokens.extras.get(USER_URI_EXTRA),
        Some(format!("{}/users/{}", h.emulator().api_base(), fx.user_id).as_str())
    );
    assert_eq!(
        provider.identify(&tokens).await.unwrap(),
        provider.account_of(fx.user_id)
    );
    assert_eq!(h.emulator().count(JoindinEndpoint::Token), 1);
    // The injected clock stamps when the token was obtained (its only age).
    let at = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
    let clocked = JoindinHarness::provider_for(h.emulator())
        .clock(Arc::new(grantkit_core::clock::ManualClock::new(at)))
        .build()
        .unwrap();
    let tokens = password_grant(&clocked, &fx.username, &fx.password)
        .await
        .unwrap();
    assert_eq!(grantkit_joindin::obtained_at(&tokens), Some(at));
}

#[tokio::test]
async fn password_refusals_are_typed_with_the_server_message() {
    let h = harness("joindin", |_| {});
    let fx = h.emulator().fixtures().clone();
    let provider = h.joindin_provider();
    let err = password_grant(&provider, &fx.username, "wrong")
        .await
        .unwrap_err();
    assert_eq!(oauth_code(&err), "invalid_grant");
    assert!(err.to_string().contains("Signin failed"), "{err}");
    let err = password_grant(&provider, "nobody", "x").await.unwrap_err();
    assert_eq!(oauth_code(&err), "invalid_grant");
    let err = password_grant(&provider, &fx.unverified_username, &fx.unverified_password)
        .await
        .unwrap_err();
    assert_eq!(oauth_code(&err), "unverified_account");
    assert!(err.to_string().contains("Not verified"), "{err}");
    // Case matters unless the server matches like MySQL.
    let err = password_grant(&provider, &fx.username.to_uppercase(), &fx.password)
        .await
        .unwrap_err();
    assert_eq!(oauth_code(&err), "invalid_grant");

    let untrusted = JoindinProvider::builder(
        fx.legacy_client_id.clone(),
        ClientSecret::new(fx.legacy_client_secret.clone()),
    )
    .api_base(h.emulator().api_base())
    .build()
    .unwrap();
    let err = password_grant(&untrusted, &fx.username, &fx.password)
        .await
        .unwrap_err();
    assert_eq!(oauth_code(&err), "unauthorized_client");
    assert!(err.to_string().contains("password grant"), "{err}");
}

#[tokio::test]
async fn unverified_is_unverified_on_old_servers_too() {
    let h = harness("joindin[unverified_is_403]", |q| q.unverified_is_403 = true);
    let fx = h.emulator().fixtures().clone();
    let err = password_grant(
        &h.joindin_provider(),
        &fx.unverified_username,
        &fx.unverified_password,
    )
    .await
    .unwrap_err();
    assert_eq!(oauth_code(&err), "unverified_account");
}

#[tokio::test]
async fn case_insensitive_servers_accept_other_cases() {
    let h = harness("joindin[case_insensitive_credentials]", |q| {
        q.case_insensitive_credentials = true
    });
    let fx = h.emulator().fixtures().clone();
    let tokens = password_grant(
        &h.joindin_provider(),
        &fx.username.to_uppercase(),
        &fx.password,
    )
    .await
    .expect("MySQL collation matches the user name in any case");
    assert_eq!(
        h.joindin_provider().identify(&tokens).await.unwrap(),
        h.joindin_provider().account_of(fx.user_id)
    );
}

#[tokio::test]
async fn a_numeric_token_asks_the_user_to_log_in_again() {
    let h = harness("joindin[numeric_tokens]", |q| q.numeric_tokens = true);
    let fx = h.emulator().fixtures().clone();
    let provider = h.joindin_provider();
    let err = password_grant(&provider, &fx.username, &fx.password)
        .await
        .unwrap_err();
    assert!(err.is_reauthorization_required(), "{err}");
    assert!(err.to_string().contains("log in again"), "{err}");
    // Through the manager too: nothing is stored.
    let store = Arc::new(MemoryTokenStore::new());
    let manager = TokenManager::builder(provider.clone(), store.clone())
        .build()
        .unwrap();
    let err = manager
        .sign_in_with_password(fx.username.clone(), Password::new(fx.password.clone()))
        .await
        .unwrap_err();
    assert!(err.is_reauthorization_required(), "{err}");
}

#[tokio::test]
async fn token_endpoint_faults_are_typed_errors() {
    let h = harness("joindin", |_| {});
    let fx = h.emulator().fixtures().clone();
    let provider = h.joindin_provider();
    type Expected = fn(&Error) -> bool;
    let cases: [(Fault, Expected); 8] = [
        (Fault::ServerError { status: 503 }, |e| {
            matches!(e, Error::Unavailable { status: 503, .. })
        }),
        (Fault::BackendError, |e| {
            matches!(e, Error::Unavailable { status: 500, .. })
        }),
        (Fault::MalformedJson, |e| {
            matches!(e, Error::BadResponse { .. })
        }),
        (Fault::TruncatedBody, |e| {
            matches!(e, Error::Transport { .. } | Error::BadResponse { .. })
        }),
        (Fault::OversizedBody, |e| {
            matches!(e, Error::BadResponse { .. })
        }),
        (Fault::Latency(Duration::from_secs(3)), |e| {
            matches!(e, Error::Timeout { .. })
        }),
        (Fault::ConnectionReset, |e| {
            matches!(e, Error::Transport { .. })
        }),
        (
            Fault::TooManyRequests { retry_after_s: 9 },
            |e| matches!(e, Error::RateLimited { retry_after: Some(d) } if *d == Duration::from_secs(9)),
        ),
    ];
    for (fault, expected) in cases {
        h.emulator()
            .inject(FaultRule::on(JoindinEndpoint::Token, fault.clone()));
        let err = password_grant(&provider, &fx.username, &fx.password)
            .await
            .unwrap_err();
        assert!(expected(&err), "{fault:?} gave {err:?}");
        h.emulator().clear_faults();
    }
    password_grant(&provider, &fx.username, &fx.password)
        .await
        .expect("a clean grant afterwards");
}

#[tokio::test]
async fn the_missing_oauth_allow_page_names_the_password_grant() {
    let h = harness("joindin[legacy_oauth_allow=off]", |q| {
        q.legacy_oauth_allow = false
    });
    let provider = h.joindin_provider();
    let manager = TokenManager::builder(provider.clone(), Arc::new(MemoryTokenStore::new()))
        .build()
        .unwrap();
    let flow = RedirectFlow::implicit(h.emulator().fixtures().redirect_uri.clone());
    let err = manager.start_authorization(&flow).await.unwrap_err();
    match &err {
        Error::Unsupported { what } => {
            assert!(what.contains("password grant"), "{what}");
            assert!(what.contains("oauth_allow"), "{what}");
        }
        other => panic!("expected Unsupported, got {other:?}"),
    }
    assert_eq!(
        h.emulator().count(JoindinEndpoint::OAuthAllow),
        1,
        "one check"
    );
    assert_eq!(
        h.emulator().token_count(&h.emulator().fixtures().username),
        0
    );
}

#[tokio::test]
async fn the_page_check_issues_no_token_even_with_auto_consent() {
    let h = harness("joindin", |_| {});
    let fx = h.emulator().fixtures().clone();
    h.emulator()
        .set_auto_consent(Some(grantkit_emulator::AutoConsent::Approve(
            fx.username.clone(),
        )));
    let provider = h.joindin_provider();
    let request = AuthorizationRequest {
        flow: FlowKind::Implicit,
        redirect_uri: fx.redirect_uri.clone(),
        scopes: Vec::new(),
        state: StateToken::new("s-1"),
        pkce_challenge: None,
    };
    let url = provider
        .authorization_url(&request)
        .await
        .expect("the page is there");
    assert_eq!(
        h.emulator().token_count(&fx.username),
        0,
        "checking issued no token"
    );
    let pairs: Vec<(String, String)> = url
        .query_pairs()
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    assert_eq!(
        pairs,
        [
            ("api_key".to_owned(), fx.client_id.clone()),
            ("callback".to_owned(), fx.redirect_uri.clone()),
            ("state".to_owned(), "s-1".to_owned())
        ]
    );
    assert!(
        url.as_str()
            .starts_with(&format!("{}/user/oauth_allow?", h.emulator().base_url()))
    );
}

#[tokio::test]
async fn authorization_urls_refuse_what_the_page_would_mangle() {
    let h = harness("joindin", |_| {});
    let provider = h.joindin_provider();
    let request = |flow, redirect_uri: &str| AuthorizationRequest {
        flow,
        redirect_uri: redirect_uri.to_owned(),
        scopes: Vec::new(),
        state: StateToken::generate(),
        pkce_challenge: None,
    };
    for bad in [
        "http://localhost:8765/cb?a=%20",
        "http://localhost:8765/c+b",
        "not a url",
    ] {
        let err = provider
            .authorization_url(&request(FlowKind::Implicit, bad))
            .await
            .unwrap_err();
        assert!(matches!(err, Error::Configuration { .. }), "{bad}: {err:?}");
    }
    let err = provider
        .authorization_url(&request(
            FlowKind::AuthorizationCode,
            "http://localhost:8765/cb",
        ))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Unsupported { .. }), "{err:?}");
    assert_eq!(
        h.emulator().count(JoindinEndpoint::OAuthAllow),
        0,
        "refused before any request"
    );
}

#[tokio::test]
async fn a_redirect_without_a_token_is_a_denial() {
    let h = harness("joindin", |_| {});
    let provider = h.joindin_provider();
    let err = provider
        .exchange(Grant::Implicit {
            params: CallbackParams::parse("state=abc").unwrap(),
            scopes: Vec::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(oauth_code(&err), "access_denied");
    let err = provider
        .exchange(Grant::Implicit {
            params: CallbackParams::parse("access_token=0000000000000000&state=abc").unwrap(),
            scopes: Vec::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(
        oauth_code(&err),
        "invalid_grant",
        "a token the server does not know"
    );
}

#[tokio::test]
async fn the_browser_flow_reads_the_token_from_the_query() {
    let h = harness("joindin", |_| {});
    let fx = h.emulator().fixtures().clone();
    let provider = h.joindin_provider();
    let flow = RedirectFlow::implicit(fx.redirect_uri.clone());
    let grantkit_core::flow::FlowStart::Redirect { url, pending } = flow
        .start(provider.as_ref(), SystemTime::now())
        .await
        .unwrap()
    else {
        panic!("a redirect");
    };
    let callback = h
        .browse_as(
            url.expose_secret(),
            &fx.username,
            &fx.password,
            Decision::Approve,
        )
        .await
        .unwrap();
    assert!(
        callback.starts_with(&format!("{}?access_token=", fx.redirect_uri)),
        "query, not fragment"
    );
    let tokens = grantkit_core::flow::finish(
        provider.as_ref(),
        pending,
        &Callback::parse(&callback).unwrap(),
        SystemTime::now(),
    )
    .await
    .unwrap();
    assert_eq!(tokens.grant, GrantKind::Implicit);
    assert_eq!(tokens.expires_at, None);
    assert_eq!(
        provider.identify(&tokens).await.unwrap(),
        provider.account_of(fx.user_id)
    );
    // The identity also works from the API alone, without the stored extra.
    let mut bare = tokens.clone();
    bare.extras.clear();
    assert_eq!(
        provider.identify(&bare).await.unwrap(),
        provider.account_of(fx.user_id)
    );
}

#[tokio::test]
async fn unknown_tokens_are_not_identified_even_as_user_zero() {
    for (name, zero) in [
        ("joindin", false),
        ("joindin[unknown_token_is_user_zero]", true),
    ] {
        let h = harness(name, |q| q.unknown_token_is_user_zero = zero);
        let provider = h.joindin_provider();
        let tokens = TokenSet::new(AccessToken::new("ffffffffffffffff"), GrantKind::Implicit);
        let err = provider.identify(&tokens).await.unwrap_err();
        assert!(err.is_reauthorization_required(), "{name}: {err}");
        let zero_uri = TokenSet::new(AccessToken::new("ffffffffffffffff"), GrantKind::Password)
            .with_extra(
                USER_URI_EXTRA,
                format!("{}/users/0", h.emulator().api_base()),
            );
        assert!(
            provider
                .identify(&zero_uri)
                .await
                .unwrap_err()
                .is_reauthorization_required()
        );
    }
}

#[tokio::test]
async fn logout_cannot_revoke_and_says_so() {
    let h = harness("joindin", |_| {});
    let fx = h.emulator().fixtures().clone();
    let provider = h.joindin_provider();
    let manager = TokenManager::builder(provider.clone(), Arc::new(MemoryTokenStore::new()))
        .build()
        .unwrap();
    let key = manager
        .sign_in_with_password(fx.username.clone(), Password::new(fx.password.clone()))
        .await
        .unwrap();
    let token = manager
        .access_token(&key)
        .await
        .unwrap()
        .access_token
        .expose_secret()
        .to_owned();
    let logout = manager.logout(&key).await.unwrap();
    assert!(matches!(
        logout,
        grantkit_core::Logout::Deleted {
            remote: Revocation::NotSupported
        }
    ));
    assert!(
        h.emulator().token_exists(&token),
        "Joind.in still holds the token"
    );
    let err = provider
        .refresh(&TokenSet::new(AccessToken::new(token), GrantKind::Password))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Unsupported { .. }));
}

#[tokio::test]
async fn revoking_all_application_tokens_deletes_exactly_those() {
    let h = harness("joindin", |_| {});
    let emu = h.emulator();
    let fx = emu.fixtures().clone();
    emu.add_client(Consumer::trusted("otherkey", "othersecret", "another app"));
    let provider = h.joindin_provider();
    let mine: Vec<TokenSet> = futures::future::join_all(
        (0..3).map(|_| password_grant(&provider, &fx.username, &fx.password)),
    )
    .await
    .into_iter()
    .collect::<Result<_, _>>()
    .unwrap();
    let other = emu.issue_token(&fx.username, "otherkey").unwrap();
    let web2 = emu.issue_token(&fx.username, &fx.web2_client_id).unwrap();
    let someone_else = emu.issue_token(&fx.admin_username, &fx.client_id).unwrap();
    let report = provider
        .revoke_all_application_tokens(&mine[1])
        .await
        .unwrap();
    assert_eq!(report.deleted, 3);
    assert_eq!(report.remaining, 0);
    assert!(report.calling_token_revoked);
    for tokens in &mine {
        assert!(!emu.token_exists(tokens.access_token.expose_secret()));
    }
    assert!(
        emu.token_exists(&other),
        "another application's token stays"
    );
    assert!(emu.token_exists(&web2), "web2 tokens are not revocable");
    assert!(
        emu.token_exists(&someone_else),
        "another user's token stays"
    );
    // The calling token is gone now.
    let err = provider
        .revoke_all_application_tokens(&mine[0])
        .await
        .unwrap_err();
    assert!(err.is_reauthorization_required(), "{err}");
}

#[tokio::test]
async fn revoking_all_needs_a_trusted_client_and_a_name() {
    let h = harness("joindin[unknown_token_is_user_zero]", |q| {
        q.unknown_token_is_user_zero = true
    });
    let emu = h.emulator();
    let fx = emu.fixtures().clone();
    let untrusted = JoindinProvider::builder(
        fx.legacy_client_id.clone(),
        ClientSecret::new(fx.legacy_client_secret.clone()),
    )
    .api_base(emu.api_base())
    .application_name("grantkit legacy app")
    .build()
    .unwrap();
    let token = emu.issue_token(&fx.username, &fx.legacy_client_id).unwrap();
    let tokens = TokenSet::new(AccessToken::new(token.clone()), GrantKind::Implicit);
    let err = untrusted
        .revoke_all_application_tokens(&tokens)
        .await
        .unwrap_err();
    assert!(
        matches!(&err, Error::Unsupported { what } if what.contains("trusted")),
        "{err:?}"
    );
    assert!(emu.token_exists(&token));
    // At HEAD a dead token meets the same 403: it is told apart.
    let dead = TokenSet::new(AccessToken::new("dddddddddddddddd"), GrantKind::Password);
    let err = h
        .joindin_provider()
        .revoke_all_application_tokens(&dead)
        .await
        .unwrap_err();
    assert!(err.is_reauthorization_required(), "{err}");
    let unnamed = JoindinHarness::provider_for(emu);
    let _ = unnamed;
    let nameless = JoindinProvider::builder(
        fx.client_id.clone(),
        ClientSecret::new(fx.client_secret.clone()),
    )
    .api_base(emu.api_base())
    .build()
    .unwrap();
    let err = nameless
        .revoke_all_application_tokens(&tokens)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Configuration { .. }), "{err:?}");
}

#[tokio::test]
async fn tokens_with_whitespace_are_never_sent() {
    let h = harness("joindin", |_| {});
    let provider = h.joindin_provider();
    let mut headers = http::HeaderMap::new();
    let good = TokenSet::new(AccessToken::new("0123456789abcdef"), GrantKind::Password);
    provider.authenticate(&good, &mut headers).unwrap();
    assert_eq!(headers["authorization"], "Bearer 0123456789abcdef");
    assert!(headers["authorization"].is_sensitive());
    for bad in ["a b", "a\tb", " ab", ""] {
        let tokens = TokenSet::new(AccessToken::new(bad), GrantKind::Password);
        assert!(
            provider
                .authenticate(&tokens, &mut http::HeaderMap::new())
                .is_err(),
            "{bad:?}"
        );
    }
}

#[tokio::test]
async fn no_secret_reaches_an_error_or_a_debug_string() {
    let h = harness("joindin", |_| {});
    let emu = h.emulator();
    let fx = emu.fixtures().clone();
    let provider = h.joindin_provider();
    let token = password_grant(&provider, &fx.username, &fx.password)
        .await
        .unwrap();
    let token_value = token.access_token.expose_secret().to_owned();
    let mut shown = vec![
        format!("{provider:?}"),
        format!("{token:?}"),
        format!("{:?}", JoindinHarness::provider_for(emu)),
    ];
    let mut errors = Vec::new();
    errors.push(
        password_grant(&provider, &fx.username, "secret-wrong-password")
            .await
            .unwrap_err(),
    );
    errors.push(
        password_grant(&provider, &fx.unverified_username, &fx.unverified_password)
            .await
            .unwrap_err(),
    );
    for fault in [
        Fault::MalformedJson,
        Fault::TruncatedBody,
        Fault::OversizedBody,
        Fault::ServerError { status: 502 },
    ] {
        emu.inject(FaultRule::on(JoindinEndpoint::Token, fault));
        errors.push(
            password_grant(&provider, &fx.username, &fx.password)
                .await
                .unwrap_err(),
        );
    }
    emu.update_quirks(|q| q.numeric_tokens = true);
    errors.push(
        password_grant(&provider, &fx.username, &fx.password)
            .await
            .unwrap_err(),
    );
    emu.update_quirks(|q| q.numeric_tokens = false);
    let dead = TokenSet::new(AccessToken::new("deadbeefdeadbeef"), GrantKind::Password);
    errors.push(provider.identify(&dead).await.unwrap_err());
    errors.push(
        provider
            .revoke_all_application_tokens(&dead)
            .await
            .unwrap_err(),
    );
    errors.push(provider.refresh(&token).await.unwrap_err());
    errors.push(
        provider
            .exchange(Grant::Implicit {
                params: CallbackParams::parse("access_token=deadbeefdeadbeef&state=x").unwrap(),
                scopes: Vec::new(),
            })
            .await
            .unwrap_err(),
    );
    for err in &errors {
        shown.push(format!("{err} {err:?}"));
    }
    let secrets = [
        fx.password.as_str(),
        "secret-wrong-password",
        fx.client_secret.as_str(),
        fx.unverified_password.as_str(),
        token_value.as_str(),
        "deadbeefdeadbeef",
    ];
    for text in &shown {
        for secret in secrets {
            assert!(!text.contains(secret), "{secret:?} leaked into {text}");
        }
    }
}
