//! join.me emulator: one test per item of `specs/joinme.md` §7 "Emulator requirements",
//! over real HTTP with reqwest.

mod common;

use std::time::Duration;

use common::{Reply, client, param, params_of, send};
use grantkit_emulator::{
    AutoConsent, InactiveBody, JoinMeEmulator, JoinMeEndpoint, JoinMeGrant, JoinMeRateLimit,
    TokenStatus,
};
use serde_json::{Value, json};

const ALL_SCOPES: &str = "user_info scheduler start_meeting";

fn approving() -> JoinMeEmulator {
    JoinMeEmulator::builder()
        .auto_consent(AutoConsent::Approve("grantkit@example.com".into()))
        .start()
        .expect("emulator starts")
}

fn authorize_url(
    emu: &JoinMeEmulator,
    response_type: &str,
    scope: &str,
    state: Option<&str>,
) -> String {
    let fx = emu.fixtures();
    let mut url = url::Url::parse(&emu.authorize_url()).expect("url");
    url.query_pairs_mut()
        .append_pair("response_type", response_type)
        .append_pair("client_id", &fx.client_id)
        .append_pair("scope", scope)
        .append_pair("redirect_uri", &fx.redirect_uri);
    if let Some(s) = state {
        url.query_pairs_mut().append_pair("state", s);
    }
    url.to_string()
}

/// Runs the code flow with auto-consent and returns the code.
async fn code(emu: &JoinMeEmulator, scope: &str) -> String {
    let r = send(client().get(authorize_url(emu, "code", scope, Some("st"))))
        .await
        .expect(302);
    let pairs = params_of(r.header("location").expect("location"), false);
    param(&pairs, "code").expect("code").to_owned()
}

async fn exchange(emu: &JoinMeEmulator, code: &str) -> Reply {
    let fx = emu.fixtures();
    send(client().post(emu.token_url()).form(&[
        ("grant_type", "authorization_code"),
        ("code", code),
        ("client_id", fx.client_id.as_str()),
        ("client_secret", fx.client_secret.as_str()),
        ("redirect_uri", fx.redirect_uri.as_str()),
    ]))
    .await
}

/// Access and refresh token from a full code flow.
async fn tokens(emu: &JoinMeEmulator, scope: &str) -> (String, String) {
    let c = code(emu, scope).await;
    let v = exchange(emu, &c).await.expect(200).json();
    (
        v["access_token"].as_str().expect("access").to_owned(),
        v["refresh_token"].as_str().expect("refresh").to_owned(),
    )
}

async fn refresh(emu: &JoinMeEmulator, refresh_token: &str) -> Reply {
    let fx = emu.fixtures();
    send(client().post(emu.token_url()).form(&[
        ("grant_type", "refresh_token"),
        ("refresh_token", refresh_token),
        ("client_id", fx.client_id.as_str()),
        ("client_secret", fx.client_secret.as_str()),
    ]))
    .await
}

async fn api(
    emu: &JoinMeEmulator,
    method: reqwest::Method,
    path: &str,
    token: &str,
    body: Option<Value>,
) -> Reply {
    let mut request = client()
        .request(method, format!("{}{path}", emu.api_base()))
        .bearer_auth(token);
    if let Some(b) = body {
        request = request.json(&b);
    }
    send(request).await
}

async fn expire(emu: &JoinMeEmulator, access: &str) -> Reply {
    let fx = emu.fixtures();
    send(client().post(emu.expire_access_url()).form(&[
        ("access_token", access),
        ("client_id", fx.client_id.as_str()),
        ("client_secret", fx.client_secret.as_str()),
    ]))
    .await
}

fn is_token(s: &str) -> bool {
    s.len() == 24
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
}

#[tokio::test]
async fn joinme_01_hosts_and_injectable_clock() {
    let emu = approving();
    let base = emu.base_url();
    assert_eq!(
        emu.authorize_url(),
        format!("{base}/api/public/v1/auth/oauth2")
    );
    assert_eq!(emu.token_url(), format!("{base}/api/public/v1/auth/token"));
    assert_eq!(emu.api_base(), format!("{base}/v1"));
    assert_eq!(
        emu.expire_access_url(),
        format!("{base}/api/public/v1/auth/expireaccess")
    );
    let (access, _) = tokens(&emu, ALL_SCOPES).await;
    api(&emu, reqwest::Method::GET, "/user", &access, None)
        .await
        .expect(200);
    emu.clock().advance(Duration::from_secs(86_400));
    let r = api(&emu, reqwest::Method::GET, "/user", &access, None)
        .await
        .expect(401);
    assert_eq!(r.json()["ErrorCode"], json!("stale_token"));
    assert_eq!(emu.count(JoinMeEndpoint::Api), 2);
    assert_eq!(emu.count(JoinMeEndpoint::Token), 1);
}

#[tokio::test]
async fn joinme_02_state_formats_and_access_ttl() {
    let emu = JoinMeEmulator::builder()
        .auto_consent(AutoConsent::Approve("grantkit@example.com".into()))
        .with_quirks(|q| q.access_ttl = Duration::from_secs(10))
        .start()
        .expect("starts");
    emu.clock().freeze();
    let fx = emu.fixtures().clone();
    assert!(is_token(&fx.client_id));
    assert!(
        fx.client_secret.len() == 10 && fx.client_secret.bytes().all(|b| b.is_ascii_alphanumeric())
    );
    let c = code(&emu, ALL_SCOPES).await;
    assert!(is_token(&c), "{c}");
    let v = exchange(&emu, &c).await.expect(200).json();
    let access = v["access_token"].as_str().expect("access");
    assert!(is_token(access) && is_token(v["refresh_token"].as_str().expect("refresh")));
    emu.clock().advance(Duration::from_secs(9));
    assert_eq!(emu.token_status(access), Some(TokenStatus::Active));
    emu.clock().advance(Duration::from_secs(1));
    assert_eq!(emu.token_status(access), Some(TokenStatus::Stale));
    api(&emu, reqwest::Method::GET, "/user", access, None)
        .await
        .expect(401);
}

fn assert_error_page(r: &Reply, status: u16) {
    assert_eq!(r.status, status, "{}", r.text);
    assert!(r.header("location").is_none(), "never a redirect");
    let v = r.json();
    assert_eq!(v["StatusCode"], json!(status));
    assert!(v["ExitPointId"].is_u64());
    assert!(v["Message"].is_string());
    let reference = v["ReferenceNumber"].as_str().expect("reference");
    assert_eq!(reference.len(), 10);
}

#[tokio::test]
async fn joinme_03_authorize_validates_before_consent() {
    let emu = approving();
    let fx = emu.fixtures().clone();
    let good = [
        ("response_type", "code"),
        ("client_id", fx.client_id.as_str()),
        ("scope", ALL_SCOPES),
        ("redirect_uri", fx.redirect_uri.as_str()),
    ];
    let slash = format!("{}/", fx.redirect_uri);
    let upper = fx.redirect_uri.to_uppercase();
    let with_query = format!("{}?x=1", fx.redirect_uri);
    let bad: Vec<(&str, &str)> = vec![
        ("response_type", "id_token"),
        ("response_type", ""),
        ("client_id", "unknownclient000000000000"),
        ("redirect_uri", "http://evil.example/callback"),
        ("redirect_uri", &slash),
        ("redirect_uri", &upper),
        ("redirect_uri", &with_query),
        ("scope", ""),
        ("scope", "user_info admin"),
        ("scope", "provisioning"),
    ];
    for (key, value) in bad {
        let params: Vec<(&str, &str)> = good
            .iter()
            .map(|(k, v)| if *k == key { (*k, value) } else { (*k, *v) })
            .collect();
        let r = send(client().get(emu.authorize_url()).query(&params)).await;
        assert_error_page(&r, 500);
    }
    // Missing parameters too.
    let r = send(client().get(emu.authorize_url()).query(&good[..2])).await;
    assert_error_page(&r, 500);
    // provisioning is fine for a business key.
    let r = send(client().get(emu.authorize_url()).query(&[
        ("response_type", "code"),
        ("client_id", fx.business_client_id.as_str()),
        ("scope", "scheduler start_meeting user_info provisioning"),
        ("redirect_uri", fx.business_redirect_uri.as_str()),
    ]))
    .await
    .expect(302);
    assert!(
        r.header("location")
            .is_some_and(|l| l.starts_with(&fx.business_redirect_uri))
    );
    // Switches: error status, X-Frame-Options on the consent page.
    emu.update_quirks(|q| {
        q.authorize_error_status = 400;
        q.x_frame_options = true;
    });
    let r = send(
        client()
            .get(emu.authorize_url())
            .query(&[("response_type", "code")]),
    )
    .await;
    assert_error_page(&r, 400);
    emu.set_auto_consent(None);
    let r = send(client().get(authorize_url(&emu, "code", ALL_SCOPES, None)))
        .await
        .expect(200);
    assert_eq!(r.header("x-frame-options"), Some("DENY"));
    assert!(r.text.contains("Request OAuth 2.0 Permission"));
}

#[tokio::test]
async fn joinme_04_consent_hook_approves_or_denies() {
    let emu = JoinMeEmulator::builder()
        .auto_consent(AutoConsent::Deny)
        .start()
        .expect("starts");
    let r = send(client().get(authorize_url(&emu, "code", ALL_SCOPES, Some("s 1"))))
        .await
        .expect(302);
    let location = r.header("location").expect("location");
    assert_eq!(
        location,
        format!(
            "{}?error=access_denied&state=s+1",
            emu.fixtures().redirect_uri
        )
    );
    let r = send(client().get(authorize_url(&emu, "token", ALL_SCOPES, Some("s2"))))
        .await
        .expect(302);
    assert_eq!(
        r.header("location"),
        Some(
            format!(
                "{}#error=access_denied&state=s2",
                emu.fixtures().redirect_uri
            )
            .as_str()
        )
    );

    // Without auto-consent: the consent page's form, with credentials.
    emu.set_auto_consent(None);
    let fx = emu.fixtures().clone();
    let page = send(client().get(authorize_url(&emu, "code", ALL_SCOPES, Some("s3"))))
        .await
        .expect(200);
    assert!(page.text.contains("name=\"decision\" value=\"allow\""));
    let form = |password: &str, decision: &str| {
        vec![
            ("response_type".to_owned(), "code".to_owned()),
            ("client_id".into(), fx.client_id.clone()),
            ("scope".into(), ALL_SCOPES.into()),
            ("redirect_uri".into(), fx.redirect_uri.clone()),
            ("state".into(), "s3".into()),
            ("email".into(), fx.email.clone()),
            ("password".into(), password.to_owned()),
            ("decision".into(), decision.to_owned()),
        ]
    };
    let r = send(
        client()
            .post(emu.authorize_url())
            .form(&form("wrong", "allow")),
    )
    .await
    .expect(200);
    assert!(r.text.contains("incorrect"));
    let r = send(
        client()
            .post(emu.authorize_url())
            .form(&form(&fx.password, "allow")),
    )
    .await
    .expect(302);
    let pairs = params_of(r.header("location").expect("location"), false);
    assert!(param(&pairs, "code").is_some_and(is_token));
    assert_eq!(param(&pairs, "state"), Some("s3"));
    let r = send(
        client()
            .post(emu.authorize_url())
            .form(&form(&fx.password, "deny")),
    )
    .await
    .expect(302);
    let pairs = params_of(r.header("location").expect("location"), false);
    assert_eq!(param(&pairs, "error"), Some("access_denied"));
}

#[tokio::test]
async fn joinme_05_implicit_grant_fragment() {
    let emu = approving();
    let r = send(client().get(authorize_url(&emu, "token", "user_info", Some("st"))))
        .await
        .expect(302);
    let location = r.header("location").expect("location").to_owned();
    let prefix = format!("{}#access_token=", emu.fixtures().redirect_uri);
    assert!(location.starts_with(&prefix), "{location}");
    let pairs = params_of(&location, true);
    let keys: Vec<&str> = pairs.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(keys, ["access_token", "token_type", "expires_in", "state"]);
    assert_eq!(param(&pairs, "token_type"), Some("bearer"));
    assert_eq!(param(&pairs, "expires_in"), Some("86400"));
    let access = param(&pairs, "access_token").expect("token").to_owned();
    api(&emu, reqwest::Method::GET, "/user", &access, None)
        .await
        .expect(200);
    assert!(!location.contains("refresh_token") && !location.contains("code="));
    emu.update_quirks(|q| q.implicit_fragment_extras = false);
    let r = send(client().get(authorize_url(&emu, "token", "user_info", Some("st"))))
        .await
        .expect(302);
    let pairs = params_of(r.header("location").expect("location"), true);
    let keys: Vec<&str> = pairs.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(keys, ["access_token", "state"]);
}

#[tokio::test]
async fn joinme_06_codes_expire_are_single_use_and_bound() {
    let emu = approving();
    emu.clock().freeze();
    let fx = emu.fixtures().clone();
    let r = send(client().get(authorize_url(&emu, "code", ALL_SCOPES, Some("abc"))))
        .await
        .expect(302);
    let location = r.header("location").expect("location");
    let c = param(&params_of(location, false), "code")
        .expect("code")
        .to_owned();
    assert_eq!(location, format!("{}?code={c}&state=abc", fx.redirect_uri));
    exchange(&emu, &c).await.expect(200);
    let r = exchange(&emu, &c).await.expect(400);
    assert_eq!(r.json(), json!({"error": "invalid_authorization_code"}));

    let late = code(&emu, ALL_SCOPES).await;
    emu.clock().advance(Duration::from_secs(60));
    assert_eq!(
        exchange(&emu, &late).await.expect(400).json(),
        json!({"error": "invalid_authorization_code"})
    );

    // Bound to the client: another valid client cannot redeem it.
    let other = code(&emu, ALL_SCOPES).await;
    let r = send(client().post(emu.token_url()).form(&[
        ("grant_type", "authorization_code"),
        ("code", other.as_str()),
        ("client_id", fx.business_client_id.as_str()),
        ("client_secret", fx.business_client_secret.as_str()),
        ("redirect_uri", fx.business_redirect_uri.as_str()),
    ]))
    .await
    .expect(400);
    assert_eq!(r.json(), json!({"error": "invalid_authorization_code"}));
    // Bound to the redirect URI.
    let bound = code(&emu, ALL_SCOPES).await;
    let r = send(client().post(emu.token_url()).form(&[
        ("grant_type", "authorization_code"),
        ("code", bound.as_str()),
        ("client_id", fx.client_id.as_str()),
        ("client_secret", fx.client_secret.as_str()),
        ("redirect_uri", "http://localhost:8765/other"),
    ]))
    .await
    .expect(400);
    assert_eq!(r.json()["error"], json!("invalid_grant"));
    // Unknown code.
    assert_eq!(
        exchange(&emu, "nosuchcode").await.expect(400).json()["error"],
        json!("invalid_authorization_code")
    );
    // code_ttl switch.
    emu.update_quirks(|q| q.code_ttl = Duration::from_secs(300));
    let long = code(&emu, ALL_SCOPES).await;
    emu.clock().advance(Duration::from_secs(299));
    exchange(&emu, &long).await.expect(200);
}

#[tokio::test]
async fn joinme_07_token_endpoint_bodies_and_errors() {
    let emu = approving();
    let fx = emu.fixtures().clone();
    let c = code(&emu, ALL_SCOPES).await;
    let r = exchange(&emu, &c).await.expect(200);
    let v = r.json();
    let mut keys: Vec<&String> = v.as_object().expect("object").keys().collect();
    keys.sort();
    assert_eq!(keys, ["access_token", "refresh_token"]);
    assert!(
        r.header("content-type")
            .is_some_and(|c| c.starts_with("application/json"))
    );
    // JSON body works too.
    let c = code(&emu, ALL_SCOPES).await;
    let r = send(client().post(emu.token_url()).json(&json!({
        "grant_type": "authorization_code", "code": c, "client_id": fx.client_id,
        "client_secret": fx.client_secret, "redirect_uri": fx.redirect_uri,
    })))
    .await
    .expect(200);
    assert!(r.json()["access_token"].is_string());
    // Errors.
    let r = send(
        client()
            .post(emu.token_url())
            .form(&[("grant_type", "authorization_code")]),
    )
    .await
    .expect(400);
    assert_eq!(r.json()["error"], json!("invalid_request"));
    let r = send(client().post(emu.token_url()).form(&[("code", "x")]))
        .await
        .expect(400);
    assert_eq!(r.json()["error"], json!("invalid_request"));
    let r = send(
        client()
            .post(emu.token_url())
            .form(&[("grant_type", "password")]),
    )
    .await
    .expect(400);
    assert_eq!(r.json()["error"], json!("unsupported_grant_type"));
    let c = code(&emu, ALL_SCOPES).await;
    let r = send(client().post(emu.token_url()).form(&[
        ("grant_type", "authorization_code"),
        ("code", c.as_str()),
        ("client_id", fx.client_id.as_str()),
        ("client_secret", "wrong"),
        ("redirect_uri", fx.redirect_uri.as_str()),
    ]))
    .await
    .expect(401);
    assert_eq!(r.json()["error"], json!("invalid_client"));
    assert!(r.json()["error_description"].is_string());
    let r = send(
        client()
            .post(emu.token_url())
            .header("content-type", "application/json")
            .body("{not json"),
    )
    .await
    .expect(400);
    assert_eq!(r.json()["error"], json!("invalid_request"));
    // Switches: expires_in and token_type present.
    emu.update_quirks(|q| {
        q.token_expires_in = Some(86_400);
        q.token_type_field = true;
        q.invalid_client_status = 400;
    });
    let v = exchange(&emu, &c).await.expect(200).json();
    assert_eq!(v["expires_in"], json!(86_400));
    assert_eq!(v["token_type"], json!("bearer"));
    let r = send(client().post(emu.token_url()).form(&[
        ("grant_type", "refresh_token"),
        ("refresh_token", "x"),
        ("client_id", fx.client_id.as_str()),
        ("client_secret", "wrong"),
    ]))
    .await
    .expect(400);
    assert_eq!(r.json()["error"], json!("invalid_client"));
}

#[tokio::test]
async fn joinme_08_refresh_keeps_refresh_token_and_old_access_token() {
    let emu = approving();
    let (access, refresh_token) = tokens(&emu, ALL_SCOPES).await;
    let v = refresh(&emu, &refresh_token).await.expect(200).json();
    let new_access = v["access_token"].as_str().expect("access").to_owned();
    assert_ne!(new_access, access);
    assert_eq!(v["refresh_token"], json!(refresh_token));
    api(&emu, reqwest::Method::GET, "/user", &access, None)
        .await
        .expect(200);
    api(&emu, reqwest::Method::GET, "/user", &new_access, None)
        .await
        .expect(200);
    let r = refresh(&emu, "notarefreshtoken").await.expect(400);
    assert_eq!(r.json()["error"], json!("invalid_grant"));

    emu.update_quirks(|q| {
        q.refresh_rotation = true;
        q.revoke_old_on_refresh = true;
    });
    let v = refresh(&emu, &refresh_token).await.expect(200).json();
    let rotated = v["refresh_token"].as_str().expect("refresh").to_owned();
    assert_ne!(rotated, refresh_token);
    refresh(&emu, &refresh_token).await.expect(400);
    // The access tokens issued under the old refresh token are revoked.
    api(&emu, reqwest::Method::GET, "/user", &access, None)
        .await
        .expect(403);
    let newest = v["access_token"].as_str().expect("access").to_owned();
    api(&emu, reqwest::Method::GET, "/user", &newest, None)
        .await
        .expect(200);

    emu.update_quirks(|q| q.refresh_ttl = Some(Duration::from_secs(3_600)));
    emu.clock().advance(Duration::from_secs(3_600));
    refresh(&emu, &rotated).await.expect(400);
    assert!(emu.revoke_refresh_token(&rotated));
}

#[tokio::test]
async fn joinme_08_implicit_tokens_cannot_refresh() {
    let emu = approving();
    let issued = emu
        .issue_tokens(
            "grantkit@example.com",
            &emu.fixtures().client_id.clone(),
            &["user_info"],
            JoinMeGrant::Implicit,
        )
        .expect("issued");
    assert!(issued.refresh_token.is_none());
    assert!(format!("{issued:?}").contains("[redacted]"));
}

#[tokio::test]
async fn joinme_09_expire_access() {
    let emu = approving();
    emu.clock().freeze();
    let (access, refresh_token) = tokens(&emu, ALL_SCOPES).await;
    let r = expire(&emu, &access).await.expect(200);
    assert_eq!(
        r.json(),
        json!({"success": true, "message": "Access Token Expired"})
    );
    let r = api(&emu, reqwest::Method::GET, "/user", &access, None)
        .await
        .expect(401);
    assert_eq!(
        r.json(),
        json!({"Message": "The access token has expired.", "ErrorCode": "stale_token"})
    );
    // The refresh token keeps working.
    let fresh = refresh(&emu, &refresh_token).await.expect(200).json()["access_token"]
        .as_str()
        .map(str::to_owned);
    let fresh = fresh.expect("access");
    api(&emu, reqwest::Method::GET, "/user", &fresh, None)
        .await
        .expect(200);
    // Failure.
    let r = expire(&emu, "unknown").await.expect(400);
    assert_eq!(
        r.json(),
        json!({"success": false, "message": "Expire Access Failed"})
    );
    // Propagation delay and success as a string.
    emu.update_quirks(|q| {
        q.expire_access_delay = Duration::from_secs(600);
        q.success_as_string = true;
    });
    let r = expire(&emu, &fresh).await.expect(200);
    assert_eq!(r.json()["success"], json!("true"));
    emu.clock().advance(Duration::from_secs(599));
    api(&emu, reqwest::Method::GET, "/user", &fresh, None)
        .await
        .expect(200);
    emu.clock().advance(Duration::from_secs(1));
    api(&emu, reqwest::Method::GET, "/user", &fresh, None)
        .await
        .expect(401);
    // Another path.
    emu.update_quirks(|q| q.expire_access_path = "/api/public/v1/auth/expire".into());
    assert!(
        emu.expire_access_url()
            .ends_with("/api/public/v1/auth/expire")
    );
    let (other, _) = tokens(&emu, ALL_SCOPES).await;
    expire(&emu, &other).await.expect(200);
    assert_eq!(emu.count(JoinMeEndpoint::ExpireAccess), 4);
}

#[tokio::test]
async fn joinme_10_renew_authorization_and_tokeninfo() {
    let emu = approving();
    emu.clock().freeze();
    let (access, _) = tokens(&emu, ALL_SCOPES).await;
    expire(&emu, &access).await.expect(200);
    emu.clock().advance(Duration::from_secs(86_400));
    api(&emu, reqwest::Method::GET, "/user", &access, None)
        .await
        .expect(401);
    let fx = emu.fixtures().clone();
    // Off by default, as join.me documents: no renew page, nothing revived.
    let r = send(client().get(emu.renew_url()).query(&[
        ("client_id", fx.client_id.as_str()),
        ("access_token", access.as_str()),
    ]))
    .await;
    assert_eq!(r.status, 500);
    assert!(r.header("location").is_none());
    api(&emu, reqwest::Method::GET, "/user", &access, None)
        .await
        .expect(401);
    emu.update_quirks(|q| q.renew_authorization = true);
    let r = send(client().get(emu.renew_url()).query(&[
        ("client_id", fx.client_id.as_str()),
        ("access_token", access.as_str()),
    ]))
    .await
    .expect(302);
    assert_eq!(
        r.header("location"),
        Some(format!("{}?isAuthorizationRenewed=true", fx.redirect_uri).as_str())
    );
    api(&emu, reqwest::Method::GET, "/user", &access, None)
        .await
        .expect(200);
    let r = send(client().get(emu.renew_url()).query(&[
        ("client_id", fx.client_id.as_str()),
        ("access_token", "nope"),
    ]))
    .await;
    assert_eq!(r.status, 500);
    assert!(r.header("location").is_none());

    send(
        client()
            .get(emu.tokeninfo_url())
            .query(&[("access_token", access.as_str())]),
    )
    .await
    .expect(404);
    emu.update_quirks(|q| q.tokeninfo_endpoint = true);
    emu.clock().advance(Duration::from_secs(100));
    let v = send(
        client()
            .get(emu.tokeninfo_url())
            .query(&[("access_token", access.as_str())]),
    )
    .await
    .expect(200)
    .json();
    assert_eq!(v, json!({"expires_in": 86_300}));
}

#[tokio::test]
async fn joinme_11_api_auth_order_and_gateway_errors() {
    let emu = approving();
    let url = format!("{}/user", emu.api_base());
    for auth in [None, Some("Bearer"), Some("Basic abc"), Some("Bearer a b")] {
        let mut request = client().get(&url);
        if let Some(a) = auth {
            request = request.header("authorization", a);
        }
        let r = send(request).await.expect(401);
        assert_eq!(
            r.header("www-authenticate"),
            Some("Bearer realm=\"api.join.me\""),
            "{auth:?}"
        );
        assert_eq!(
            r.header("x-mashery-error-code"),
            Some("ERR_403_NOT_AUTHORIZED")
        );
    }
    let r = api(
        &emu,
        reqwest::Method::GET,
        "/user",
        "unknowntoken000000000000",
        None,
    )
    .await
    .expect(403);
    assert_eq!(r.header("server"), Some("Mashery Proxy"));
    assert_eq!(
        r.header("www-authenticate"),
        Some("Bearer realm=\"api.join.me\", error=\"invalid_token\"")
    );
    assert_eq!(r.header("x-error-detail-header"), Some("Account Inactive"));
    assert_eq!(
        r.header("x-mashery-error-code"),
        Some("ERR_403_DEVELOPER_INACTIVE")
    );
    assert_eq!(r.header("content-type"), Some("text/xml"));
    assert_eq!(r.text, "<h1>Developer Inactive</h1>");

    let (access, _) = tokens(&emu, "user_info").await;
    // Scope: user_info cannot schedule.
    let r = api(&emu, reqwest::Method::GET, "/meetings", &access, None)
        .await
        .expect(403);
    assert_eq!(r.json()["ErrorCode"], json!("insufficient_scope"));
    assert_eq!(
        r.header("www-authenticate"),
        Some("Bearer realm=\"api.join.me\", error=\"insufficient_scope\", scope=\"scheduler\"")
    );
    assert!(r.header("x-mashery-error-code").is_none());
    // Stale comes before scope; revoked before stale.
    assert!(emu.mark_stale(&access));
    let r = api(&emu, reqwest::Method::GET, "/meetings", &access, None)
        .await
        .expect(401);
    assert_eq!(r.json()["ErrorCode"], json!("stale_token"));
    assert!(emu.revoke_access_token(&access));
    api(&emu, reqwest::Method::GET, "/user", &access, None)
        .await
        .expect(403);
    assert_eq!(emu.token_status(&access), Some(TokenStatus::Revoked));
    // Switches.
    emu.update_quirks(|q| {
        q.inactive_body = InactiveBody::Json;
        q.insufficient_scope_status = 401;
    });
    let r = api(&emu, reqwest::Method::GET, "/user", &access, None)
        .await
        .expect(403);
    assert_eq!(
        r.json(),
        json!({"message": "Developer Inactive", "code": "invalid_token"})
    );
    let (info, _) = tokens(&emu, "user_info").await;
    api(&emu, reqwest::Method::GET, "/meetings", &info, None)
        .await
        .expect(401);
}

#[tokio::test]
async fn joinme_12_user_endpoint() {
    let emu = approving();
    let (access, _) = tokens(&emu, "user_info").await;
    let r = api(&emu, reqwest::Method::GET, "/user", &access, None)
        .await
        .expect(200);
    let v = r.json();
    assert_eq!(v["email"], json!("grantkit@example.com"));
    assert_eq!(v["fullName"], json!("Grant Kit"));
    assert_eq!(v["registrationDate"], json!("2014-03-22T20:45:00"));
    assert_eq!(v["personalUrl"], json!("grantkit"));
    assert_eq!(v["conferenceSettings"]["conferenceId"], json!("123456789"));
    assert!(v.get("id").is_none());
    // GET with a `{}` body, as the documentation's cURL sends it.
    api(
        &emu,
        reqwest::Method::GET,
        "/user",
        &access,
        Some(json!({})),
    )
    .await
    .expect(200);
    api(
        &emu,
        reqwest::Method::GET,
        "/user/conferenceSettings",
        &access,
        None,
    )
    .await
    .expect(200);
    emu.update_quirks(|q| q.user_get_status = 201);
    api(&emu, reqwest::Method::GET, "/user", &access, None)
        .await
        .expect(201);
    // A free user has no personal URL or conference settings.
    let free = emu
        .issue_tokens(
            "free@example.com",
            &emu.fixtures().client_id.clone(),
            &["user_info"],
            JoinMeGrant::Code,
        )
        .expect("issued");
    let v = api(
        &emu,
        reqwest::Method::GET,
        "/user",
        &free.access_token,
        None,
    )
    .await
    .json();
    assert_eq!(v["subscriptionType"], json!("Free"));
    assert!(v.get("personalUrl").is_none() && v.get("conferenceSettings").is_none());
}

#[tokio::test]
async fn joinme_13_booleans_and_start_meeting() {
    let emu = approving();
    let (access, _) = tokens(&emu, ALL_SCOPES).await;
    for value in [json!(true), json!("true"), json!(false), json!("FALSE")] {
        let r = api(
            &emu,
            reqwest::Method::POST,
            "/meetings/start",
            &access,
            Some(json!({"startWithPersonalUrl": value, "extra": 1})),
        )
        .await
        .expect(201);
        let v = r.json();
        let presenter = v["presenterLink"].as_str().expect("presenter link");
        let token = presenter.rsplit("token=").next().expect("token");
        assert!(is_token(token));
        assert!(v["audioConference"]["organizerCode"].is_string());
        assert!(v.get("webhooksStatus").is_none());
    }
    let v = api(
        &emu,
        reqwest::Method::POST,
        "/meetings/start",
        &access,
        Some(json!({"startWithPersonalUrl": true})),
    )
    .await
    .json();
    assert_eq!(
        v["viewerLink"],
        json!(format!("{}/grantkit", emu.base_url()))
    );
    let r = api(
        &emu,
        reqwest::Method::POST,
        "/meetings/start",
        &access,
        Some(json!({})),
    )
    .await
    .expect(400);
    assert!(r.json()["Message"].is_string());
    let r = api(
        &emu,
        reqwest::Method::POST,
        "/meetings/start",
        &access,
        Some(json!({"startWithPersonalUrl": "yes"})),
    )
    .await
    .expect(400);
    assert!(r.json()["Message"].is_string());
    emu.update_quirks(|q| q.strict_booleans = true);
    api(
        &emu,
        reqwest::Method::POST,
        "/meetings/start",
        &access,
        Some(json!({"startWithPersonalUrl": "true"})),
    )
    .await
    .expect(400);
    api(
        &emu,
        reqwest::Method::POST,
        "/meetings/start",
        &access,
        Some(json!({"startWithPersonalUrl": true})),
    )
    .await
    .expect(201);
}

#[tokio::test]
async fn joinme_14_scheduled_meetings() {
    let emu = approving();
    emu.clock()
        .set(std::time::UNIX_EPOCH + Duration::from_secs(1_433_203_200)); // 2015-06-02T00:00:00Z
    emu.clock().freeze();
    let (access, _) = tokens(&emu, ALL_SCOPES).await;
    let created = api(
        &emu,
        reqwest::Method::POST,
        "/meetings",
        &access,
        Some(json!({
            "meetingName": "Planning",
            "meetingStart": "2015-06-02T11:00:00+02:00",
            "meetingEnd": "2015-06-02T10:00:00Z",
            "participants": ["a@example.com"],
        })),
    )
    .await
    .expect(201)
    .json();
    assert_eq!(created["meetingStart"], json!("2015-06-02T09:00:00Z"));
    assert_eq!(created["startWithPersonalUrl"], json!(false));
    let id = created["meetingId"].as_u64().expect("integer id");
    assert_eq!(created["conferenceId"].as_str().map(str::len), Some(9));
    assert!(created.get("viewerLink").is_none());
    let later = api(&emu, reqwest::Method::POST, "/meetings", &access, Some(json!({
        "meetingName": "Later", "meetingStart": "2015-07-01T09:00:00Z", "meetingEnd": "2015-07-01T10:00:00Z",
    })))
    .await
    .expect(201)
    .json();
    api(
        &emu,
        reqwest::Method::POST,
        "/meetings",
        &access,
        Some(json!({"meetingName": "x"})),
    )
    .await
    .expect(400);

    let list = api(&emu, reqwest::Method::GET, "/meetings", &access, None)
        .await
        .expect(200)
        .json();
    assert_eq!(list["meetings"].as_array().map(Vec::len), Some(2));
    let list = api(
        &emu,
        reqwest::Method::GET,
        "/meetings?endDate=2015-06-10T00:00:00Z",
        &access,
        None,
    )
    .await
    .expect(200)
    .json();
    assert_eq!(list["meetings"].as_array().map(Vec::len), Some(1));

    let patched = api(
        &emu,
        reqwest::Method::PATCH,
        &format!("/meetings/{id}"),
        &access,
        Some(json!({
            "meetingId": id, "meetingName": "Renamed", "meetingEnd": null,
        })),
    )
    .await
    .expect(200)
    .json();
    assert_eq!(patched["meetingName"], json!("Renamed"));
    assert_eq!(patched["meetingEnd"], json!("2015-06-02T10:00:00Z"));
    let got = api(
        &emu,
        reqwest::Method::GET,
        &format!("/meetings/{id}"),
        &access,
        None,
    )
    .await
    .expect(200)
    .json();
    assert_eq!(got["meetingName"], json!("Renamed"));

    let started = api(
        &emu,
        reqwest::Method::POST,
        &format!("/meetings/{id}/start"),
        &access,
        Some(json!({})),
    )
    .await
    .expect(201)
    .json();
    assert!(started["presenterLink"].is_string());
    let got = api(
        &emu,
        reqwest::Method::GET,
        &format!("/meetings/{id}"),
        &access,
        None,
    )
    .await
    .json();
    assert_eq!(got["viewerLink"], started["viewerLink"]);

    let r = api(
        &emu,
        reqwest::Method::DELETE,
        &format!("/meetings/{id}"),
        &access,
        None,
    )
    .await
    .expect(204);
    assert_eq!(r.text, "");
    let r = api(
        &emu,
        reqwest::Method::GET,
        &format!("/meetings/{id}"),
        &access,
        None,
    )
    .await
    .expect(404);
    assert!(r.json()["Message"].is_string());
    api(&emu, reqwest::Method::GET, "/meetings/abc", &access, None)
        .await
        .expect(404);
    emu.update_quirks(|q| q.delete_returns_empty_object = true);
    let later_id = later["meetingId"].as_u64().expect("id");
    let r = api(
        &emu,
        reqwest::Method::DELETE,
        &format!("/meetings/{later_id}"),
        &access,
        Some(json!({})),
    )
    .await
    .expect(200);
    assert_eq!(r.json(), json!({}));
    // Past meetings are not listed.
    api(&emu, reqwest::Method::POST, "/meetings", &access, Some(json!({
        "meetingName": "Old", "meetingStart": "2015-06-01T09:00:00Z", "meetingEnd": "2015-06-01T10:00:00Z",
    })))
    .await
    .expect(201);
    let list = api(&emu, reqwest::Method::GET, "/meetings", &access, None)
        .await
        .json();
    assert_eq!(list, json!({"meetings": []}));
    // start_meeting scope is needed to start; scheduler to schedule.
    let sched_only = emu
        .issue_tokens(
            "grantkit@example.com",
            &emu.fixtures().client_id.clone(),
            &["scheduler"],
            JoinMeGrant::Code,
        )
        .expect("issued");
    api(
        &emu,
        reqwest::Method::POST,
        "/meetings/start",
        &sched_only.access_token,
        Some(json!({"startWithPersonalUrl": true})),
    )
    .await
    .expect(403);
    // Wrong method on a known path.
    api(
        &emu,
        reqwest::Method::PUT,
        "/meetings",
        &access,
        Some(json!({})),
    )
    .await
    .expect(405);
}

#[tokio::test]
async fn joinme_15_presenter_links_are_one_time_and_expire() {
    let emu = approving();
    emu.clock().freeze();
    let (access, _) = tokens(&emu, ALL_SCOPES).await;
    let start = || {
        api(
            &emu,
            reqwest::Method::POST,
            "/meetings/start",
            &access,
            Some(json!({"startWithPersonalUrl": false})),
        )
    };
    let v = start().await.json();
    let link = v["presenterLink"].as_str().expect("link").to_owned();
    assert!(link.starts_with(&format!(
        "{}/API/Public/StartMeeting.aspx?token=",
        emu.base_url()
    )));
    let viewer = v["viewerLink"].as_str().expect("viewer");
    let code = viewer.rsplit('/').next().expect("code");
    assert!(code.len() == 9 && code.bytes().all(|b| b.is_ascii_digit()));
    send(client().get(&link)).await.expect(200);
    send(client().get(&link)).await.expect(410);
    let v = start().await.json();
    emu.clock().advance(Duration::from_secs(600));
    send(client().get(v["presenterLink"].as_str().expect("link")))
        .await
        .expect(410);
}

#[tokio::test]
async fn joinme_16_webhooks_ignored_with_switch_off() {
    let emu = approving();
    let (access, _) = tokens(&emu, ALL_SCOPES).await;
    let body = json!({"startWithPersonalUrl": false, "webhooks": {"meeting.start": {"callbackUrl": "http://127.0.0.1:9/hook", "customCallbackData": {}}}});
    let v = api(
        &emu,
        reqwest::Method::POST,
        "/meetings/start",
        &access,
        Some(body),
    )
    .await
    .expect(201)
    .json();
    assert!(v.get("webhooksStatus").is_none());
}

#[tokio::test]
async fn joinme_17_rate_limit_and_throttle_status() {
    let emu = approving();
    emu.clock().freeze();
    let (access, _) = tokens(&emu, ALL_SCOPES).await;
    emu.update_quirks(|q| {
        q.rate_limit = Some(JoinMeRateLimit {
            qps: 2,
            quota: 5,
            quota_period: Duration::from_secs(86_400),
        })
    });
    api(&emu, reqwest::Method::GET, "/user", &access, None)
        .await
        .expect(200);
    api(&emu, reqwest::Method::GET, "/user", &access, None)
        .await
        .expect(200);
    let r = api(&emu, reqwest::Method::GET, "/user", &access, None)
        .await
        .expect(403);
    assert_eq!(
        r.header("x-mashery-error-code"),
        Some("ERR_403_DEVELOPER_OVER_QPS")
    );
    assert_eq!(
        r.header("x-error-detail-header"),
        Some("Account Over Queries Per Second Limit")
    );
    assert_eq!(r.header("retry-after"), Some("1"));
    assert_eq!(r.text, "<h1>Developer Over Qps</h1>");
    emu.clock().advance(Duration::from_secs(1));
    api(&emu, reqwest::Method::GET, "/user", &access, None)
        .await
        .expect(200);
    api(&emu, reqwest::Method::GET, "/user", &access, None)
        .await
        .expect(200);
    emu.clock().advance(Duration::from_secs(1));
    api(&emu, reqwest::Method::GET, "/user", &access, None)
        .await
        .expect(200);
    let r = api(&emu, reqwest::Method::GET, "/user", &access, None)
        .await
        .expect(403);
    assert_eq!(
        r.header("x-mashery-error-code"),
        Some("ERR_403_DEVELOPER_OVER_RATE")
    );
    assert_eq!(r.text, "<h1>Developer Over Rate</h1>");
    emu.update_quirks(|q| q.throttle_status = 429);
    api(&emu, reqwest::Method::GET, "/user", &access, None)
        .await
        .expect(429);
    emu.clock().advance(Duration::from_secs(86_400));
    api(&emu, reqwest::Method::GET, "/user", &access, None)
        .await
        .expect(401);
}

#[tokio::test]
async fn joinme_18_fault_injection_per_endpoint() {
    use grantkit_emulator::{Fault, FaultRule};
    let emu = approving();
    let c = code(&emu, ALL_SCOPES).await;
    emu.inject(FaultRule::on(JoinMeEndpoint::Token, Fault::BackendError));
    let r = exchange(&emu, &c).await.expect(500);
    let v = r.json();
    assert_eq!(v["error"], json!("server_error"));
    assert_eq!(v["error_ticket_id"].as_str().map(str::len), Some(10));
    assert_eq!(v["error_description"], json!(""));
    // The code was not consumed by the failed call.
    let v = exchange(&emu, &c).await.expect(200).json();
    let access = v["access_token"].as_str().expect("access").to_owned();
    emu.inject(FaultRule::on(JoinMeEndpoint::Api, Fault::ServerError { status: 502 }).every_nth(2));
    api(&emu, reqwest::Method::GET, "/user", &access, None)
        .await
        .expect(200);
    let r = api(&emu, reqwest::Method::GET, "/user", &access, None)
        .await
        .expect(502);
    assert_eq!(r.header("server"), Some("Mashery Proxy"));
    assert_eq!(
        r.header("x-mashery-error-code"),
        Some("ERR_502_BAD_GATEWAY")
    );
    assert!(
        r.header("content-type")
            .is_some_and(|c| c.starts_with("text/html"))
    );
    api(&emu, reqwest::Method::GET, "/user", &access, None)
        .await
        .expect(200);
    emu.clear_faults();
    api(&emu, reqwest::Method::GET, "/user", &access, None)
        .await
        .expect(200);
}

#[tokio::test]
async fn joinme_19_presenters_api_is_not_emulated() {
    // Left out (see the README): the path is unknown to the backend.
    let emu = approving();
    let business = emu
        .issue_tokens(
            "grantkit@example.com",
            &emu.fixtures().business_client_id.clone(),
            &["provisioning"],
            JoinMeGrant::Code,
        )
        .expect("issued");
    let r = api(
        &emu,
        reqwest::Method::GET,
        "/presenters",
        &business.access_token,
        None,
    )
    .await
    .expect(404);
    assert!(
        r.json()["Message"]
            .as_str()
            .is_some_and(|m| m.starts_with("No HTTP resource was found"))
    );
}
