//! What a hostile callback or an odd provider answer can and cannot do: server text is
//! capped and escaped before it reaches an error, a callback must arrive at the redirect
//! URI, a grant that cannot be identified is revoked, a dead grant is deleted.

mod support;

use grantkit_core::{
    AccessToken, Callback, CallbackError, Error, GrantKind, RedirectFlow, Revocation, TokenKey,
    TokenSet, TokenStore as _, flow::MAX_CALLBACK_LEN,
};
use std::sync::Arc;
use std::time::Duration;
use support::*;
use url::Url;

const REDIRECT_URI: &str = "http://127.0.0.1:8765/callback";

/// A manager whose provider builds authorization URLs and exchanges any code for a token.
fn redirect_fixture() -> (Fixture, RedirectFlow) {
    let mut mock = mock_provider();
    mock.expect_authorization_url().returning(|request| {
        let mut url = Url::parse("https://as.example/authorize").unwrap();
        url.query_pairs_mut()
            .append_pair("state", request.state.expose_secret());
        Ok(url)
    });
    mock.expect_exchange().returning(|_| {
        Ok(TokenSet::new(
            AccessToken::new("access"),
            GrantKind::AuthorizationCode,
        ))
    });
    let provider: Arc<dyn grantkit_core::Provider> = Arc::new(mock);
    let flow = RedirectFlow::authorization_code(REDIRECT_URI);
    (fixture(provider), flow)
}

/// Starts the flow and returns the state the provider was sent.
async fn start(fx: &Fixture, flow: &RedirectFlow) -> String {
    let url = fx
        .manager
        .start_authorization(flow)
        .await
        .expect("the flow starts");
    Url::parse(url.expose_secret())
        .unwrap()
        .query_pairs()
        .find(|(name, _)| name == "state")
        .map(|(_, value)| value.into_owned())
        .expect("the URL carries the state")
}

fn encode(text: &str) -> String {
    url::form_urlencoded::byte_serialize(text.as_bytes()).collect()
}

#[tokio::test]
async fn a_hostile_error_description_becomes_one_short_clean_line() {
    let (fx, flow) = redirect_fixture();
    let hostile = format!(
        "denied\n[INFO] token=8xZ3kPq7Lm2Nc9Vb4Rt6Yw1Q granted\u{1b}[2J\u{0}{}",
        "\n[INFO] forged line".repeat(700)
    );
    // A description that fits in a callback (16 KiB encoded), and one far longer (100 KB).
    for length in [4000, 100 * 1024] {
        let state = start(&fx, &flow).await;
        let description: String = hostile.chars().cycle().take(length).collect();
        let url = format!(
            "{REDIRECT_URI}?state={state}&error={}&error_description={}",
            encode("access_denied\n\u{1b}]0;pwned\u{7}"),
            encode(&description)
        );
        let err = match Callback::parse(&url) {
            Ok(callback) => fx
                .manager
                .complete_authorization(&callback)
                .await
                .unwrap_err(),
            Err(err) => err,
        };
        if length < MAX_CALLBACK_LEN / 3 {
            assert!(matches!(err, Error::OAuth { .. }), "read and kept: {err}");
        } else {
            assert!(matches!(err, Error::InvalidCallback { .. }), "{err}");
        }
        let shown = err.to_string();
        assert!(shown.len() <= 1024, "{} bytes", shown.len());
        assert!(!shown.contains('\n') && !shown.contains('\r'), "{shown}");
        assert!(
            !shown.chars().any(|c| c.is_control()),
            "no control character reaches the error: {shown:?}"
        );
        assert!(!shown.contains("8xZ3kPq7Lm2Nc9Vb4Rt6Yw1Q"), "{shown}");
        let debug = format!("{err:?}");
        assert!(!debug.contains('\u{1b}') && !debug.contains('\u{0}'));
    }
    // The 16 KiB one was read: its code and description are there, escaped.
    let state = start(&fx, &flow).await;
    let url = format!(
        "{REDIRECT_URI}?state={state}&error=access_denied&error_description={}",
        encode("no\nway")
    );
    let err = fx
        .manager
        .complete_authorization(&Callback::parse(&url).unwrap())
        .await
        .unwrap_err();
    assert!(
        matches!(&err, Error::OAuth { code, description: Some(d), .. }
            if code == "access_denied" && d == r"no\u{a}way"),
        "{err:?}"
    );
}

#[tokio::test]
async fn a_callback_that_arrived_elsewhere_is_refused_before_any_token_request() {
    let mut mock = mock_provider();
    mock.expect_authorization_url().returning(|request| {
        let mut url = Url::parse("https://as.example/authorize").unwrap();
        url.query_pairs_mut()
            .append_pair("state", request.state.expose_secret());
        Ok(url)
    });
    mock.expect_exchange().never();
    let provider: Arc<dyn grantkit_core::Provider> = Arc::new(mock);
    let flow = RedirectFlow::authorization_code(REDIRECT_URI);
    let fx = fixture(provider);
    for elsewhere in [
        "http://evil.example:8765/callback",
        "http://127.0.0.1:8766/callback",
        "https://127.0.0.1:8765/callback",
        "http://127.0.0.1:8765/other",
        "javascript:alert(1)",
        "/other",
    ] {
        let state = start(&fx, &flow).await;
        let callback = Callback::parse(&format!("{elsewhere}?code=c&state={state}")).unwrap();
        let err = fx
            .manager
            .complete_authorization(&callback)
            .await
            .unwrap_err();
        assert!(
            matches!(
                err,
                Error::InvalidCallback {
                    reason: CallbackError::WrongAddress
                }
            ),
            "{elsewhere}: {err}"
        );
    }
}

#[tokio::test]
async fn a_callback_at_the_redirect_uri_or_its_path_is_accepted() {
    let (fx, flow) = redirect_fixture();
    for at in [REDIRECT_URI, "/callback"] {
        let state = start(&fx, &flow).await;
        let callback = Callback::parse(&format!("{at}?code=c&state={state}")).unwrap();
        fx.manager
            .complete_authorization(&callback)
            .await
            .unwrap_or_else(|err| panic!("{at}: {err}"));
    }
}

#[tokio::test]
async fn a_foreign_iss_is_refused_from_a_provider_without_an_issuer() {
    let (fx, flow) = redirect_fixture();
    let state = start(&fx, &flow).await;
    let callback = Callback::parse(&format!(
        "{REDIRECT_URI}?code=c&state={state}&iss=http%3A%2F%2Fevil.test"
    ))
    .unwrap();
    let err = fx
        .manager
        .complete_authorization(&callback)
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            Error::InvalidCallback {
                reason: CallbackError::IssuerMismatch
            }
        ),
        "{err}"
    );
}

#[tokio::test]
async fn a_grant_whose_user_cannot_be_identified_is_revoked_and_the_error_says_why() {
    let mut mock = bare_mock_provider();
    mock.expect_capabilities()
        .return_const(grantkit_core::provider::Capabilities::default());
    mock.expect_identify().returning(|_| {
        Err(Error::bad_response(
            "no endpoint named the user (userinfo endpoint: HTTP 500; introspection endpoint: \
             the answer has none of the claims sub)",
        ))
    });
    mock.expect_revoke()
        .times(1)
        .returning(|_| Ok(Revocation::Revoked));
    let fx = fixture(Arc::new(mock));
    let err = fx
        .manager
        .save_grant(TokenSet::new(
            AccessToken::new("access"),
            GrantKind::AuthorizationCode,
        ))
        .await
        .unwrap_err();
    let Error::Unidentified { reason, revocation } = &err else {
        panic!("{err}");
    };
    assert!(reason.contains("userinfo endpoint: HTTP 500"), "{reason}");
    assert!(reason.contains("introspection endpoint"), "{reason}");
    assert_eq!(revocation, "the grant was revoked at the provider");
    assert!(
        fx.store
            .list(&grantkit_core::store::KeyFilter::provider(PROVIDER))
            .await
            .unwrap()
            .is_empty()
    );
}

#[tokio::test]
async fn an_account_with_control_characters_is_refused_and_the_grant_revoked() {
    let mut mock = bare_mock_provider();
    mock.expect_identify()
        .returning(|_| Ok("alice\n[INFO] admin".to_owned()));
    mock.expect_revoke()
        .times(1)
        .returning(|_| Err(Error::unavailable(503, None)));
    let fx = fixture(Arc::new(mock));
    let err = fx
        .manager
        .save_grant(TokenSet::new(
            AccessToken::new("access"),
            GrantKind::AuthorizationCode,
        ))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Unidentified { .. }), "{err}");
    assert!(err.to_string().contains("revoking it failed too"), "{err}");
    assert!(!err.to_string().contains('\n'));
}

#[tokio::test]
async fn an_expired_grant_that_cannot_be_refreshed_is_deleted() {
    let mut mock = mock_provider();
    mock.expect_refresh().never();
    let fx = fixture(Arc::new(mock));
    let mut implicit = tokens("implicit-access", None, fx.now() + Duration::from_secs(60));
    implicit.grant = GrantKind::Implicit;
    fx.seed(&implicit).await;
    assert!(fx.manager.access_token(&key()).await.is_ok());

    fx.clock.advance(Duration::from_secs(61));
    let err = fx.manager.access_token(&key()).await.unwrap_err();
    assert!(err.is_reauthorization_required(), "{err}");
    let restart = err.restart().expect("what to start again");
    assert_eq!(restart.flow, grantkit_core::flow::FlowKind::Implicit);
    assert_eq!(restart.key, key());
    let flow = restart
        .redirect_flow("http://127.0.0.1:9/cb")
        .expect("a browser flow");
    assert_eq!(
        grantkit_core::flow::Flow::kind(&flow),
        grantkit_core::flow::FlowKind::Implicit
    );
    assert!(
        fx.store.get(&key()).await.unwrap().is_none(),
        "a grant that can never be used again is deleted"
    );
}

#[test]
fn keys_in_errors_are_escaped() {
    let key = TokenKey::new("p", "c", "mallory\n[WARN] forged\u{1b}[1m");
    let err = Error::Conflict {
        key: key.to_string(),
    };
    let shown = err.to_string();
    assert!(!shown.chars().any(char::is_control), "{shown:?}");
    assert!(
        shown.contains(r"mallory\u{a}[WARN] forged\u{1b}[1m"),
        "{shown}"
    );
}
