//! JoinMeProvider against the join.me emulator over real HTTP: the token endpoint's
//! answers, Expire Access, identity and renewal, under the switches that change them.

use grantkit_conformance::Decision;
use grantkit_core::{
    AccessToken, Callback, ClientSecret, Error, GrantKind, Provider, RefreshToken, Revocation,
    TokenSet,
    flow::FlowKind,
    provider::{AuthorizationCode, AuthorizationRequest, Grant},
    store::StateToken,
};
use grantkit_emulator::{
    AutoConsent, Fault, FaultRule, JoinMeEmulator, JoinMeEndpoint, JoinMeGrant, JoinMeQuirks,
    TokenStatus,
};
use grantkit_joinme::testing::{JoinMeHarness, consent};
use grantkit_joinme::{DEFAULT_TOKEN_LIFETIME, JoinMeProvider, Scopes};
use std::time::{Duration, SystemTime};

fn harness(change: impl FnOnce(&mut JoinMeQuirks)) -> JoinMeHarness {
    JoinMeHarness::start("joinme[test]", change).expect("the emulator starts")
}

fn browser() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// Tokens as a completed authorization would issue them (emulator hook).
fn issued(emulator: &JoinMeEmulator, grant: JoinMeGrant, scopes: &[&str]) -> TokenSet {
    let fixtures = emulator.fixtures();
    let tokens = emulator
        .issue_tokens(&fixtures.email, &fixtures.client_id, scopes, grant)
        .expect("the seeded app and user");
    let kind = match grant {
        JoinMeGrant::Code => GrantKind::AuthorizationCode,
        JoinMeGrant::Implicit => GrantKind::Implicit,
    };
    let mut set = TokenSet::new(AccessToken::new(tokens.access_token), kind)
        .expiring_in(SystemTime::now(), DEFAULT_TOKEN_LIFETIME)
        .with_scopes(scopes.iter().copied());
    set.refresh_token = tokens.refresh_token.map(RefreshToken::new);
    set
}

/// A code from the consent page for `provider`'s authorization URL.
async fn code(h: &JoinMeHarness, provider: &JoinMeProvider) -> (String, String) {
    let redirect_uri = h.emulator().fixtures().redirect_uri.clone();
    let url = provider
        .authorization_url(&AuthorizationRequest {
            flow: FlowKind::AuthorizationCode,
            redirect_uri: redirect_uri.clone(),
            scopes: Scopes::usual().names(),
            state: StateToken::new("st"),
            pkce_challenge: None,
        })
        .await
        .unwrap();
    let callback = consent(h.emulator(), &browser(), url.as_str(), Decision::Approve)
        .await
        .unwrap();
    let callback = Callback::parse(&callback).unwrap();
    assert_eq!(callback.query.get("state"), Some("st"));
    (callback.query.get("code").unwrap().to_owned(), redirect_uri)
}

fn code_grant(code: &str, redirect_uri: &str) -> Grant {
    Grant::AuthorizationCode {
        code: AuthorizationCode::new(code),
        redirect_uri: redirect_uri.to_owned(),
        pkce_verifier: None,
    }
}

#[tokio::test]
async fn a_code_is_exchanged_once_with_its_redirect_uri_byte_for_byte() {
    let h = harness(|_| {});
    let provider = h.joinme_provider();
    let (code, redirect_uri) = code(&h, &provider).await;

    // A redirect URI that differs (a trailing slash) is refused and does not use up the code.
    let err = provider
        .exchange(code_grant(&code, &format!("{redirect_uri}/")))
        .await
        .unwrap_err();
    assert!(err.is_invalid_grant(), "{err}");
    let tokens = provider
        .exchange(code_grant(&code, &redirect_uri))
        .await
        .unwrap();
    assert_eq!(tokens.grant, GrantKind::AuthorizationCode);
    assert!(tokens.refresh_token.is_some());
    // A used code: join.me's `invalid_authorization_code`, normalised.
    let err = provider
        .exchange(code_grant(&code, &redirect_uri))
        .await
        .unwrap_err();
    assert!(err.is_invalid_grant(), "{err}");
    assert!(
        err.to_string().contains("invalid_authorization_code"),
        "{err}"
    );
    assert!(!err.to_string().contains(&code));
    assert_eq!(h.emulator().count(JoinMeEndpoint::Token), 3);
}

#[tokio::test]
async fn an_expired_code_is_refused() {
    let h = harness(|_| {});
    let provider = h.joinme_provider();
    let (code, redirect_uri) = code(&h, &provider).await;
    h.emulator().clock().advance(Duration::from_secs(61));
    let err = provider
        .exchange(code_grant(&code, &redirect_uri))
        .await
        .unwrap_err();
    assert!(err.is_invalid_grant(), "{err}");
}

#[tokio::test]
async fn a_wrong_client_secret_is_invalid_client_whatever_the_status() {
    for status in [401, 400] {
        let h = harness(|q| q.invalid_client_status = status);
        let wrong = JoinMeProvider::builder(
            h.emulator().fixtures().client_id.clone(),
            ClientSecret::new("WrongSecret"),
        )
        .base_url(&h.emulator().base_url())
        .build()
        .unwrap();
        let tokens = issued(h.emulator(), JoinMeGrant::Code, &["user_info"]);
        let err = wrong.refresh(&tokens).await.unwrap_err();
        assert!(
            matches!(&err, Error::OAuth { code, .. } if code == "invalid_client"),
            "{status}: {err}"
        );
        assert!(
            !err.is_invalid_grant(),
            "a bad secret must not delete grants"
        );
        assert!(!format!("{err:?}").contains("WrongSecret"));
    }
}

#[tokio::test]
async fn refresh_keeps_or_replaces_the_refresh_token_as_join_me_answers() {
    for rotation in [false, true] {
        let h = harness(|q| q.refresh_rotation = rotation);
        let provider = h.joinme_provider();
        let tokens = issued(h.emulator(), JoinMeGrant::Code, &["user_info", "scheduler"]);
        let fresh = provider.refresh(&tokens).await.expect("refresh");
        assert!(fresh.access_token != tokens.access_token);
        assert_eq!(fresh.refresh_token == tokens.refresh_token, !rotation);
        assert_eq!(fresh.scopes, tokens.scopes, "scopes kept when not returned");
        let again = provider.refresh(&fresh).await.expect("a second refresh");
        if rotation {
            let err = provider.refresh(&tokens).await.unwrap_err();
            assert!(err.is_invalid_grant(), "the retired refresh token: {err}");
        }
        assert_eq!(
            provider.identify(&again).await.unwrap(),
            "grantkit@example.com"
        );
    }
}

#[tokio::test]
async fn token_lifetimes_follow_expires_in_or_the_documented_day() {
    let h = harness(|q| {
        q.token_expires_in = Some(3_600);
        q.token_type_field = true;
        q.token_scope_field = true;
    });
    let tokens = issued(h.emulator(), JoinMeGrant::Code, &["user_info"]);
    let before = SystemTime::now();
    let fresh = h.joinme_provider().refresh(&tokens).await.unwrap();
    let expires = fresh.expires_at.unwrap();
    assert!(expires >= before + Duration::from_secs(3_600));
    assert!(expires <= SystemTime::now() + Duration::from_secs(3_600));
    assert_eq!(fresh.scopes, ["user_info"]);

    let h = harness(|_| {});
    let tokens = issued(h.emulator(), JoinMeGrant::Code, &["user_info"]);
    let before = SystemTime::now();
    let fresh = h.joinme_provider().refresh(&tokens).await.unwrap();
    assert!(fresh.expires_at.unwrap() >= before + DEFAULT_TOKEN_LIFETIME);
}

#[tokio::test]
async fn refresh_is_refused_for_implicit_tokens_and_revoked_refresh_tokens() {
    let h = harness(|_| {});
    let provider = h.joinme_provider();
    let implicit = issued(h.emulator(), JoinMeGrant::Implicit, &["user_info"]);
    assert!(matches!(
        provider.refresh(&implicit).await.unwrap_err(),
        Error::Unsupported { .. }
    ));
    let tokens = issued(h.emulator(), JoinMeGrant::Code, &["user_info"]);
    h.emulator()
        .revoke_refresh_token(tokens.refresh_token.as_ref().unwrap().expose_secret());
    let err = provider.refresh(&tokens).await.unwrap_err();
    assert!(err.is_invalid_grant(), "{err}");
    assert_eq!(h.emulator().count(JoinMeEndpoint::Token), 1);
}

#[tokio::test]
async fn a_backend_failure_keeps_its_error_ticket() {
    let h = harness(|_| {});
    h.emulator()
        .inject(FaultRule::on(JoinMeEndpoint::Token, Fault::BackendError));
    let tokens = issued(h.emulator(), JoinMeGrant::Code, &["user_info"]);
    let err = h.joinme_provider().refresh(&tokens).await.unwrap_err();
    assert!(
        matches!(&err, Error::OAuth { code, description: Some(d), .. } if code == "server_error" && d.starts_with("join.me error ticket ")),
        "{err:?}"
    );
    assert!(err.is_retryable());
    h.emulator().inject(FaultRule::on(
        JoinMeEndpoint::Token,
        Fault::TooManyRequests { retry_after_s: 4 },
    ));
    assert!(matches!(
        h.joinme_provider().refresh(&tokens).await.unwrap_err(),
        Error::RateLimited {
            retry_after: Some(d)
        } if d == Duration::from_secs(4)
    ));
}

#[tokio::test]
async fn expire_access_expires_the_access_token_and_spares_the_refresh_token() {
    for as_string in [false, true] {
        let h = harness(|q| q.success_as_string = as_string);
        let provider = h.joinme_provider();
        let tokens = issued(h.emulator(), JoinMeGrant::Code, &["user_info"]);
        assert_eq!(
            provider.revoke(&tokens).await.unwrap(),
            Revocation::AccessExpired
        );
        assert_eq!(
            h.emulator()
                .token_status(tokens.access_token.expose_secret()),
            Some(TokenStatus::Stale)
        );
        provider
            .refresh(&tokens)
            .await
            .expect("the refresh token survives");
        // A token join.me does not know: `success: false` with 400.
        let unknown = TokenSet::new(
            AccessToken::new("unknowntoken0000000000000"),
            GrantKind::Implicit,
        );
        let err = provider.revoke(&unknown).await.unwrap_err();
        assert!(
            matches!(&err, Error::Api { status: 400, message, .. } if message == "Expire Access Failed"),
            "{err:?}"
        );
    }
}

#[tokio::test]
async fn expire_access_goes_where_the_builder_says() {
    let h = harness(|q| q.expire_access_path = "/api/public/v1/auth/expireAccessToken".into());
    let tokens = issued(h.emulator(), JoinMeGrant::Code, &["user_info"]);
    // The harness's provider is built for the emulator's path.
    assert_eq!(
        h.joinme_provider().revoke(&tokens).await.unwrap(),
        Revocation::AccessExpired
    );
    // A provider with the default path meets join.me's 404 page: a typed error.
    let stale_path = JoinMeProvider::builder(
        h.emulator().fixtures().client_id.clone(),
        ClientSecret::new(h.emulator().fixtures().client_secret.clone()),
    )
    .base_url(&h.emulator().base_url())
    .build()
    .unwrap();
    let err = stale_path.revoke(&tokens).await.unwrap_err();
    assert!(matches!(err, Error::Api { status: 404, .. }), "{err:?}");
}

#[tokio::test]
async fn identify_reads_the_email_with_200_or_201() {
    for status in [200, 201] {
        let h = harness(|q| q.user_get_status = status);
        let tokens = issued(h.emulator(), JoinMeGrant::Implicit, &["user_info"]);
        assert_eq!(
            h.joinme_provider().identify(&tokens).await.unwrap(),
            "grantkit@example.com"
        );
    }
    let h = harness(|_| {});
    let provider = h.joinme_provider();
    let tokens = issued(h.emulator(), JoinMeGrant::Implicit, &["scheduler"]);
    let err = provider.identify(&tokens).await.unwrap_err();
    assert!(
        matches!(&err, Error::Forbidden { scope: Some(s) } if s == "user_info"),
        "{err:?}"
    );
    let tokens = issued(h.emulator(), JoinMeGrant::Implicit, &["user_info"]);
    h.emulator().mark_stale(tokens.access_token.expose_secret());
    let err = provider.identify(&tokens).await.unwrap_err();
    assert!(err.is_reauthorization_required(), "{err:?}");
}

#[tokio::test]
async fn joinme_expired_implicit_token_cannot_be_renewed_by_default() {
    // The emulator's defaults follow join.me's documentation: no renew page, and the
    // provider does not offer one.
    let h = harness(|_| {});
    let provider = h.joinme_provider();
    assert!(!provider.capabilities().renew_authorization);
    let tokens = issued(h.emulator(), JoinMeGrant::Implicit, &["user_info"]);
    h.emulator().clock().advance(DEFAULT_TOKEN_LIFETIME);
    let page = browser()
        .get(
            JoinMeProvider::builder("x", ClientSecret::new("y"))
                .renew_authorization_url(h.emulator().renew_url())
                .renew_authorization(true)
                .build()
                .unwrap()
                .renew_url(&tokens)
                .expose_secret(),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 500, "the renew page is not served");
    assert_eq!(
        h.emulator()
            .token_status(tokens.access_token.expose_secret()),
        Some(TokenStatus::Stale),
        "nothing revived it"
    );
    let err = provider
        .complete_renewal(
            &tokens,
            &Callback::parse("/cb?isAuthorizationRenewed=true").unwrap(),
            SystemTime::now(),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Unsupported { .. }), "{err:?}");
}

/// Opens the renew URL as the user's browser and returns the callback.
async fn renew(provider: &JoinMeProvider, tokens: &TokenSet) -> Callback {
    let page = browser()
        .get(provider.renew_url(tokens).expose_secret())
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 302);
    Callback::parse(page.headers()["location"].to_str().unwrap()).unwrap()
}

#[tokio::test]
async fn renewal_revives_the_same_token_for_a_day() {
    for flag in ["true", "True"] {
        let h = harness(|q| {
            q.renew_authorization = true;
            q.renew_flag_value = flag.into();
        });
        let provider = h.joinme_provider();
        let tokens = issued(h.emulator(), JoinMeGrant::Implicit, &["user_info"]);
        h.emulator().clock().advance(DEFAULT_TOKEN_LIFETIME);
        assert!(matches!(
            provider.identify(&tokens).await.unwrap_err(),
            Error::RenewRequired { .. }
        ));
        let callback = renew(&provider, &tokens).await;
        let now = SystemTime::now();
        let renewed = provider
            .complete_renewal(&tokens, &callback, now)
            .await
            .expect("renewed");
        assert!(renewed.access_token == tokens.access_token);
        assert_eq!(renewed.expires_at, Some(now + DEFAULT_TOKEN_LIFETIME));
        provider.identify(&renewed).await.expect("works again");
    }
}

#[tokio::test]
async fn renewal_is_confirmed_with_the_api_and_refusals_are_typed() {
    // A renewal that does not revive an Expire-Access token: the API still says stale, so
    // the grant is over and the user signs in again.
    let h = harness(|q| {
        q.renew_authorization = true;
        q.renew_revives_expired = false;
    });
    let provider = h.joinme_provider();
    let tokens = issued(h.emulator(), JoinMeGrant::Implicit, &["user_info"]);
    provider.revoke(&tokens).await.unwrap();
    let callback = renew(&provider, &tokens).await;
    let err = provider
        .complete_renewal(&tokens, &callback, SystemTime::now())
        .await
        .unwrap_err();
    assert!(err.is_reauthorization_required(), "{err:?}");

    // A forged callback changes nothing: the API decides.
    let forged = Callback::parse("/joinme/callback?isAuthorizationRenewed=true").unwrap();
    assert!(
        provider
            .complete_renewal(&tokens, &forged, SystemTime::now())
            .await
            .unwrap_err()
            .is_reauthorization_required()
    );

    let h = harness(|q| q.renew_authorization = true);
    h.emulator().set_auto_consent(Some(AutoConsent::Deny));
    let provider = h.joinme_provider();
    let tokens = issued(h.emulator(), JoinMeGrant::Implicit, &["user_info"]);
    let callback = renew(&provider, &tokens).await;
    let err = provider
        .complete_renewal(&tokens, &callback, SystemTime::now())
        .await
        .unwrap_err();
    assert!(
        matches!(&err, Error::OAuth { code, .. } if code == "access_denied"),
        "{err:?}"
    );
    for (url, expected) in [
        ("/cb?isAuthorizationRenewed=false", "access_denied"),
        ("/cb", "missing"),
    ] {
        let err = provider
            .complete_renewal(&tokens, &Callback::parse(url).unwrap(), SystemTime::now())
            .await
            .unwrap_err();
        match expected {
            "missing" => assert!(matches!(err, Error::InvalidCallback { .. }), "{err:?}"),
            code => assert!(
                matches!(&err, Error::OAuth { code: c, .. } if c == code),
                "{err:?}"
            ),
        }
    }
}

#[tokio::test]
async fn the_implicit_fragment_without_extras_still_yields_a_day_long_token() {
    let h = harness(|q| q.implicit_fragment_extras = false);
    let provider = h.joinme_provider();
    let url = provider
        .authorization_url(&AuthorizationRequest {
            flow: FlowKind::Implicit,
            redirect_uri: h.emulator().fixtures().redirect_uri.clone(),
            scopes: vec!["user_info".into()],
            state: StateToken::new("st"),
            pkce_challenge: None,
        })
        .await
        .unwrap();
    let callback = consent(h.emulator(), &browser(), url.as_str(), Decision::Approve)
        .await
        .unwrap();
    let callback = Callback::parse(&callback).unwrap();
    assert_eq!(callback.fragment.get("expires_in"), None);
    let before = SystemTime::now();
    let tokens = provider
        .exchange(Grant::Implicit {
            params: callback.fragment.clone(),
            scopes: vec!["user_info".into()],
        })
        .await
        .unwrap();
    assert!(tokens.expires_at.unwrap() >= before + DEFAULT_TOKEN_LIFETIME);
    assert_eq!(tokens.scopes, ["user_info"]);
    assert_eq!(
        provider.identify(&tokens).await.unwrap(),
        "grantkit@example.com"
    );
}
