//! Joind.in emulator: one test per item of `specs/joindin.md` §5 "Emulator requirements",
//! over real HTTP with reqwest.

mod common;

use std::time::Duration;

use common::{Reply, client, param, params_of, send};
use grantkit_emulator::{
    AutoConsent, CommentRateLimit, JoindinClient, JoindinEmulator, JoindinEndpoint,
};
use serde_json::{Value, json};

const CT: &str = "application/json; charset=utf8";

fn start() -> JoindinEmulator {
    JoindinEmulator::start().expect("emulator starts")
}

/// Signs in through the password grant with the trusted fixture client.
async fn login(emu: &JoindinEmulator, username: &str, password: &str) -> String {
    let fx = emu.fixtures();
    let reply = send(client().post(emu.token_url()).json(&json!({
        "grant_type": "password",
        "username": username,
        "password": password,
        "client_id": fx.client_id,
        "client_secret": fx.client_secret,
    })))
    .await
    .expect(200);
    reply.json()["access_token"]
        .as_str()
        .expect("string token")
        .to_owned()
}

async fn get(emu: &JoindinEmulator, path: &str, token: Option<&str>) -> Reply {
    let mut request = client().get(format!("{}{path}", emu.base_url()));
    if let Some(t) = token {
        request = request.header("authorization", format!("Bearer {t}"));
    }
    send(request).await
}

fn error_body(reply: &Reply) -> String {
    let v = reply.json();
    let list = v.as_array().expect("error body is a list");
    assert_eq!(list.len(), 1, "one message: {v}");
    list[0].as_str().expect("message is a string").to_owned()
}

#[tokio::test]
async fn joindin_01_routing_404_405_and_links() {
    let emu = start();
    let base = emu.base_url();
    for path in ["/", "/v2.1", "/v2.1/"] {
        let root = get(&emu, path, None).await.expect(200).json();
        assert_eq!(
            root["events"],
            json!(format!("{base}/v2.1/events")),
            "{path}"
        );
        assert_eq!(root["docs"], json!("http://joindin.github.io/joindin-api/"));
    }
    for path in ["/v2/events", "/2/events"] {
        let r = get(&emu, path, None).await.expect(400);
        assert_eq!(
            error_body(&r),
            "This API version is no longer supported. Please use v2.1"
        );
    }
    let r = get(&emu, "/v3/events", None).await.expect(404);
    assert_eq!(error_body(&r), "API version must be specified");
    let r = get(&emu, "/v2.1/nothing", None).await.expect(404);
    assert_eq!(error_body(&r), "Endpoint not found");
    for method in [
        reqwest::Method::OPTIONS,
        reqwest::Method::PATCH,
        reqwest::Method::POST,
    ] {
        let r = send(client().request(method.clone(), format!("{base}/v2.1/events")))
            .await
            .expect(405);
        assert_eq!(error_body(&r), "Method not supported", "{method}");
        assert!(r.header("allow").is_none());
    }
    // Trailing slash allowed; non-numeric ids fall back to the collection.
    let events = get(&emu, "/v2.1/events/", None).await.expect(200).json();
    assert_eq!(events["meta"]["total"], json!(3));
    let users = get(&emu, "/v2.1/users/me", None).await.expect(200).json();
    assert_eq!(users["users"].as_array().map(Vec::len), Some(4));
    // Links come from the request's scheme and Host.
    let r = send(
        client()
            .get(format!("{base}/v2.1/events/1"))
            .header("host", "api.example.test:8443"),
    )
    .await
    .expect(200);
    assert_eq!(
        r.json()["events"][0]["uri"],
        json!("http://api.example.test:8443/v2.1/events/1")
    );
}

#[tokio::test]
async fn joindin_02_json_body_only_with_exact_content_type() {
    let emu = start();
    let fx = emu.fixtures().clone();
    let body = json!({"grant_type": "password", "username": fx.username, "password": fx.password,
        "client_id": fx.client_id, "client_secret": fx.client_secret})
    .to_string();
    let with = |ct: &'static str| {
        client()
            .post(emu.token_url())
            .header("content-type", ct)
            .body(body.clone())
    };
    send(with("application/json")).await.expect(200);
    for ignored in [
        "application/json; charset=utf-8",
        "application/json;charset=UTF-8",
        "text/json",
    ] {
        let r = send(with(ignored)).await.expect(400);
        assert_eq!(
            error_body(&r),
            "The field \"grant_type\" is required",
            "{ignored}"
        );
    }
    // Form bodies are never read.
    let form = [
        ("grant_type", "password"),
        ("username", fx.username.as_str()),
        ("password", fx.password.as_str()),
    ];
    let r = send(client().post(emu.token_url()).form(&form))
        .await
        .expect(400);
    assert_eq!(error_body(&r), "The field \"grant_type\" is required");
    // The query string is read on POST too.
    let query = [
        ("grant_type", "password"),
        ("username", fx.username.as_str()),
        ("password", fx.password.as_str()),
        ("client_id", fx.client_id.as_str()),
        ("client_secret", fx.client_secret.as_str()),
    ];
    send(client().post(emu.token_url()).query(&query))
        .await
        .expect(200);
}

#[tokio::test]
async fn joindin_03_authorization_header_is_parsed_before_routing() {
    let emu = start();
    let token = login(
        &emu,
        &emu.fixtures().username.clone(),
        &emu.fixtures().password.clone(),
    )
    .await;
    let base = emu.base_url();
    let cases = [
        ("Bearer", "Invalid Authorization Header"),
        (&*format!("Bearer  {token}"), "Invalid Authorization Header"),
        ("Bearer a b", "Invalid Authorization Header"),
        (
            "Basic dXNlcjpwYXNz",
            "Unknown Authorization Header Received",
        ),
        ("Token abc", "Unknown Authorization Header Received"),
    ];
    for (header, message) in cases {
        for (method, path) in [
            ("GET", "/v2.1/events"),
            ("POST", "/v2.1/token"),
            ("GET", "/v2.1/nowhere"),
            ("GET", "/"),
        ] {
            let request = client()
                .request(method.parse().expect("method"), format!("{base}{path}"))
                .header("authorization", header);
            let r = send(request).await.expect(400);
            assert_eq!(error_body(&r), message, "{header} on {method} {path}");
        }
    }
    let user_uri = format!("{base}/v2.1/users/1");
    for scheme in ["Bearer", "bearer", "BEARER", "OAuth", "oauth"] {
        let r = send(
            client()
                .get(format!("{base}/v2.1/"))
                .header("authorization", format!("{scheme} {token}")),
        )
        .await
        .expect(200);
        assert_eq!(r.json()["meta"]["user_uri"], json!(user_uri), "{scheme}");
    }
}

#[tokio::test]
async fn joindin_04_development_mode_switch() {
    let emu = start();
    let token = login(
        &emu,
        &emu.fixtures().username.clone(),
        &emu.fixtures().password.clone(),
    )
    .await;
    let root = get(&emu, "/v2.1/", Some(&token)).await.expect(200).json();
    assert_eq!(
        root["meta"]["user_uri"],
        json!(format!("{}/v2.1/users/1", emu.base_url()))
    );
    emu.update_quirks(|q| q.development_mode = false);
    // Production over plain HTTP: the header is ignored, even a malformed one.
    let root = get(&emu, "/v2.1/", Some(&token)).await.expect(200).json();
    assert!(root.get("meta").is_none(), "{root}");
    let r = send(
        client()
            .get(emu.api_base())
            .header("authorization", "Bearer"),
    )
    .await
    .expect(200);
    assert!(r.json().get("meta").is_none());
    // Behind HTTPS the header counts again and links are https.
    emu.update_quirks(|q| q.server_sees_https = true);
    let root = get(&emu, "/v2.1/", Some(&token)).await.expect(200).json();
    let https_base = emu.base_url().replacen("http://", "https://", 1);
    assert_eq!(
        root["meta"]["user_uri"],
        json!(format!("{https_base}/v2.1/users/1"))
    );
    assert_eq!(root["events"], json!(format!("{https_base}/v2.1/events")));
}

#[tokio::test]
async fn joindin_05_unknown_token_is_anonymous() {
    let emu = start();
    let unknown = "0123456789abcdef";
    let events = get(&emu, "/v2.1/events", Some(unknown))
        .await
        .expect(200)
        .json();
    assert!(events["meta"].get("user_uri").is_none());
    let post = |token: &'static str| {
        client()
            .post(format!("{}/talks/1/comments", emu.api_base()))
            .header("authorization", format!("Bearer {token}"))
            .json(&json!({"comment": "Nice", "rating": 4}))
    };
    let r = send(post(unknown)).await.expect(401);
    assert_eq!(error_body(&r), "You must be logged in to create data");
    let r = get(&emu, "/v2.1/token", Some(unknown)).await.expect(401);
    assert_eq!(error_body(&r), "You must be logged in");

    // HEAD behaviour: user 0.
    emu.update_quirks(|q| q.unknown_token_is_user_zero = true);
    let events = get(&emu, "/v2.1/events", Some(unknown))
        .await
        .expect(200)
        .json();
    assert_eq!(
        events["meta"]["user_uri"],
        json!(format!("{}/users/0", emu.api_base()))
    );
    let r = get(&emu, "/v2.1/token", Some(unknown)).await.expect(403);
    assert_eq!(
        error_body(&r),
        "You can not access the token list with this client"
    );
    let r = send(post(unknown)).await.expect(201);
    assert!(
        r.header("location")
            .is_some_and(|l| l.starts_with(&format!("{}/talk_comments/", emu.api_base())))
    );
    let r = send(
        client()
            .put(format!("{}/talk_comments/1", emu.api_base()))
            .header("authorization", format!("Bearer {unknown}"))
            .json(&json!({"comment": "edit"})),
    )
    .await
    .expect(401);
    assert_eq!(error_body(&r), "You must log in to edit a comment");
}

async fn token_post(emu: &JoindinEmulator, body: Value) -> Reply {
    send(client().post(emu.token_url()).json(&body)).await
}

#[tokio::test]
async fn joindin_06_password_grant_check_table() {
    let emu = start();
    let fx = emu.fixtures().clone();
    let good = json!({"grant_type": "password", "username": fx.username, "password": fx.password,
        "client_id": fx.client_id, "client_secret": fx.client_secret});
    let with = |changes: &[(&str, Value)]| {
        let mut body = good.clone();
        for (k, v) in changes {
            if v.is_null() {
                body.as_object_mut().expect("object").remove(*k);
            } else {
                body[*k] = v.clone();
            }
        }
        body
    };
    let table: Vec<(Value, u16, &str)> = vec![
        (
            with(&[("grant_type", Value::Null)]),
            400,
            "The field \"grant_type\" is required",
        ),
        (
            with(&[("grant_type", json!(""))]),
            400,
            "The field \"grant_type\" is required",
        ),
        (
            with(&[("grant_type", json!("0"))]),
            400,
            "The field \"grant_type\" is required",
        ),
        (
            with(&[("username", Value::Null)]),
            400,
            "The fields \"username\" and \"password\" are both required",
        ),
        (
            with(&[("password", json!(""))]),
            400,
            "The fields \"username\" and \"password\" are both required",
        ),
        (
            with(&[("grant_type", json!("client_credentials"))]),
            400,
            "Grant type not recognised",
        ),
        (
            with(&[("client_id", json!(["x"]))]),
            400,
            "Expected parameter client_id is not a readable string",
        ),
        (
            with(&[("client_id", json!({"a": 1}))]),
            400,
            "Expected parameter client_id is not a readable string",
        ),
        (
            with(&[("client_secret", json!("wrong"))]),
            403,
            "This client cannot authenticate using the password grant type",
        ),
        (
            with(&[("client_id", Value::Null), ("client_secret", Value::Null)]),
            403,
            "This client cannot authenticate using the password grant type",
        ),
        (
            with(&[
                ("client_id", json!(fx.legacy_client_id)),
                ("client_secret", json!(fx.legacy_client_secret)),
            ]),
            403,
            "This client cannot authenticate using the password grant type",
        ),
        (with(&[("username", json!("nobody"))]), 403, "Signin failed"),
        (
            with(&[
                ("username", json!(fx.unverified_username)),
                ("password", json!("wrong")),
            ]),
            401,
            "Not verified",
        ),
        (with(&[("password", json!("wrong"))]), 403, "Signin failed"),
    ];
    for (body, status, message) in table {
        let r = token_post(&emu, body.clone()).await.expect(status);
        assert_eq!(error_body(&r), message, "{body}");
        assert_eq!(r.header("www-authenticate").is_some(), status == 401);
    }
    let r = token_post(&emu, good.clone()).await.expect(200);
    let v = r.json();
    let keys: Vec<&String> = v.as_object().expect("object").keys().collect();
    assert_eq!(keys.len(), 2, "{v}");
    let token = v["access_token"].as_str().expect("token");
    assert_eq!(token.len(), 16);
    assert!(
        token
            .bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()),
        "{token}"
    );
    assert_eq!(v["user_uri"], json!(format!("{}/users/1", emu.api_base())));
    // Each sign-in adds a token; tokens outlive their client and password changes.
    let second = token_post(&emu, good).await.expect(200).json()["access_token"]
        .as_str()
        .map(str::to_owned);
    assert_ne!(second.as_deref(), Some(token));
    assert_eq!(emu.token_count(&fx.username), 2);
    assert!(emu.remove_client(&fx.client_id));
    assert!(emu.set_password(&fx.username, "changed"));
    let root = get(&emu, "/v2.1/", Some(token)).await.expect(200).json();
    assert_eq!(
        root["meta"]["user_uri"],
        json!(format!("{}/users/1", emu.api_base()))
    );
}

#[tokio::test]
async fn joindin_06_last_used_date_updates_per_use() {
    let emu = start();
    emu.clock().freeze();
    let fx = emu.fixtures().clone();
    let token = login(&emu, &fx.username, &fx.password).await;
    let first = get(&emu, "/v2.1/token", Some(&token))
        .await
        .expect(200)
        .json();
    let created = first["tokens"][0]["created_date"].clone();
    emu.clock().advance(Duration::from_secs(3_600));
    let later = get(&emu, "/v2.1/token", Some(&token))
        .await
        .expect(200)
        .json();
    assert_eq!(later["tokens"][0]["created_date"], created);
    assert_ne!(
        later["tokens"][0]["last_used_date"],
        first["tokens"][0]["last_used_date"]
    );
}

#[tokio::test]
async fn joindin_07_unverified_is_403_switch() {
    let emu = start();
    let fx = emu.fixtures().clone();
    emu.update_quirks(|q| q.unverified_is_403 = true);
    let body = json!({"grant_type": "password", "username": fx.unverified_username, "password": fx.unverified_password,
        "client_id": fx.client_id, "client_secret": fx.client_secret});
    let r = token_post(&emu, body).await.expect(403);
    assert_eq!(error_body(&r), "Not verified");
    assert!(r.header("www-authenticate").is_none());
}

#[tokio::test]
async fn joindin_08_expirable_client_tokens_are_cleaned_up() {
    let emu = start();
    emu.clock().freeze();
    let fx = emu.fixtures().clone();
    let web2 = json!({"grant_type": "password", "username": fx.username, "password": fx.password,
        "client_id": fx.web2_client_id, "client_secret": fx.web2_client_secret});
    let web2_token = token_post(&emu, web2.clone()).await.expect(200).json()["access_token"]
        .as_str()
        .map(str::to_owned);
    let web2_token = web2_token.expect("token");
    let trusted = login(&emu, &fx.username, &fx.password).await;
    emu.clock().advance(Duration::from_secs(3 * 86_400));
    // The cleanup runs in the next POST /token, after the client check.
    login(&emu, &fx.username, &fx.password).await;
    assert!(!emu.token_exists(&web2_token));
    assert!(emu.token_exists(&trusted));
    let root = get(&emu, "/v2.1/", Some(&web2_token))
        .await
        .expect(200)
        .json();
    assert!(root.get("meta").is_none());

    // Without expirable clients nothing is cleaned.
    emu.update_quirks(|q| q.expirable_client_ids.clear());
    let kept = token_post(&emu, web2).await.expect(200).json()["access_token"]
        .as_str()
        .map(str::to_owned);
    emu.clock().advance(Duration::from_secs(3 * 86_400));
    login(&emu, &fx.username, &fx.password).await;
    assert!(emu.token_exists(kept.as_deref().expect("token")));
}

#[tokio::test]
async fn joindin_09_numeric_tokens_switch() {
    let emu = start();
    emu.update_quirks(|q| q.numeric_tokens = true);
    let fx = emu.fixtures().clone();
    let body = json!({"grant_type": "password", "username": fx.username, "password": fx.password,
        "client_id": fx.client_id, "client_secret": fx.client_secret});
    let r = token_post(&emu, body).await.expect(200);
    let v = r.json();
    assert!(
        v["access_token"].is_number(),
        "all-digit token coerced to a number: {}",
        r.text
    );
    assert!(
        r.text.starts_with("{\"access_token\":") && !r.text.starts_with("{\"access_token\":\"")
    );
}

#[tokio::test]
async fn joindin_10_token_list_get_and_revoke() {
    let emu = start();
    let fx = emu.fixtures().clone();
    let base = emu.api_base();
    let r = get(&emu, "/v2.1/token", None).await.expect(401);
    assert_eq!(error_body(&r), "You must be logged in");
    assert_eq!(
        r.header("www-authenticate"),
        Some("Bearer realm=\"api.joind.in")
    );

    let a = login(&emu, &fx.username, &fx.password).await;
    let b = login(&emu, &fx.username, &fx.password).await;
    let web2 = json!({"grant_type": "password", "username": fx.username, "password": fx.password,
        "client_id": fx.web2_client_id, "client_secret": fx.web2_client_secret});
    token_post(&emu, web2).await.expect(200);
    let list = get(&emu, "/v2.1/token", Some(&a)).await.expect(200).json();
    let tokens = list["tokens"].as_array().expect("tokens");
    assert_eq!(tokens.len(), 2, "web2 tokens are hidden: {list}");
    let item = tokens[0].as_object().expect("item");
    let keys: Vec<&str> = item.keys().map(String::as_str).collect();
    for key in [
        "token",
        "application",
        "created_date",
        "last_used_date",
        "application_owner",
        "token_uri",
    ] {
        assert!(keys.contains(&key), "{key} in {keys:?}");
    }
    assert_eq!(list["meta"]["total"], json!(2));
    let id = tokens[0]["token"].as_u64().expect("numeric row id");
    assert_eq!(tokens[0]["token_uri"], json!(format!("{base}/token/{id}")));
    assert_eq!(tokens[0]["application"], json!("grantkit tests"));
    assert!(
        tokens[0]["created_date"]
            .as_str()
            .is_some_and(|d| d.ends_with("+00:00"))
    );

    let one = get(&emu, &format!("/v2.1/token/{id}"), Some(&a))
        .await
        .expect(200)
        .json();
    assert_eq!(one["tokens"].as_array().map(Vec::len), Some(1));
    assert_eq!(one["meta"]["total"], json!(1));
    let none = get(&emu, "/v2.1/token/999", Some(&a))
        .await
        .expect(200)
        .json();
    assert_eq!(none["tokens"], json!([]));
    assert_eq!(none["meta"]["total"], json!(1));
    let r = get(&emu, "/v2.1/token/abc", Some(&a)).await.expect(404);
    assert_eq!(error_body(&r), "Token not found");

    // Revoke b with a.
    let b_id = tokens
        .iter()
        .map(|t| t["token"].as_u64().unwrap_or_default())
        .find(|i| *i != 0)
        .expect("an id");
    let delete = |id: String| {
        send(
            client()
                .delete(format!("{base}/token/{id}"))
                .header("authorization", format!("Bearer {a}")),
        )
    };
    let r = delete(b_id.to_string()).await.expect(204);
    assert_eq!(r.text, "");
    assert_eq!(r.header("location"), Some(format!("{base}/token").as_str()));
    assert_eq!(r.header("content-type"), Some(CT));
    let r = delete(b_id.to_string()).await.expect(404);
    assert_eq!(error_body(&r), "No tokens found");
    let r = delete("abc".into()).await.expect(404);
    assert_eq!(error_body(&r), "Token not found");
    let gone = if emu.token_exists(&a) { &b } else { &a };
    assert!(!emu.token_exists(gone));

    // An untrusted client's token cannot see the list.
    emu.set_auto_consent(Some(AutoConsent::Approve(fx.username.clone())));
    let url = format!(
        "{}?api_key={}&callback={}",
        emu.authorize_url(),
        fx.legacy_client_id,
        fx.legacy_redirect_uri
    );
    let r = send(client().get(url)).await.expect(302);
    let legacy = param(
        &params_of(r.header("location").expect("location"), false),
        "access_token",
    )
    .map(str::to_owned);
    let r = get(&emu, "/v2.1/token", legacy.as_deref())
        .await
        .expect(403);
    assert_eq!(
        error_body(&r),
        "You can not access the token list with this client"
    );
}

#[tokio::test]
async fn joindin_11_envelope_meta_order_and_paging() {
    let emu = start();
    let base = emu.api_base();
    let r = get(&emu, "/v2.1/events?filter=past&resultsperpage=1", None)
        .await
        .expect(200);
    let v = r.json();
    assert_eq!(v["meta"]["count"], json!(1));
    assert_eq!(v["meta"]["total"], json!(2));
    assert_eq!(
        v["meta"]["this_page"],
        json!(format!(
            "{base}/events?filter=past&resultsperpage=1&start=0"
        ))
    );
    assert_eq!(
        v["meta"]["next_page"],
        json!(format!(
            "{base}/events?filter=past&resultsperpage=1&start=1"
        ))
    );
    assert!(v["meta"].get("prev_page").is_none());
    // Envelope key order and meta key order on the wire.
    let order = [
        "\"events\":",
        "\"meta\":",
        "\"count\":",
        "\"total\":",
        "\"this_page\":",
        "\"next_page\":",
    ];
    let positions: Vec<usize> = order.iter().map(|k| r.text.find(k).expect(k)).collect();
    assert!(positions.windows(2).all(|w| w[0] < w[1]), "{}", r.text);

    let v = get(
        &emu,
        "/v2.1/events?start=1&resultsperpage=1&filter=past",
        None,
    )
    .await
    .expect(200)
    .json();
    assert_eq!(
        v["meta"]["prev_page"],
        json!(format!(
            "{base}/events?start=0&resultsperpage=1&filter=past"
        ))
    );
    assert!(v["meta"].get("next_page").is_none());

    // Defaults appended in order; spaces and arrays encoded as PHP does.
    let v = get(&emu, "/v2.1/events?title=php%20benelux&tags[]=php", None)
        .await
        .expect(200)
        .json();
    assert_eq!(
        v["meta"]["this_page"],
        json!(format!(
            "{base}/events?title=php+benelux&tags%5B0%5D=php&start=0&resultsperpage=20"
        ))
    );
    assert_eq!(v["meta"]["total"], json!(1));

    // resultsperpage=0: everything, and next_page at the same offset while total > start.
    let v = get(&emu, "/v2.1/events?resultsperpage=0", None)
        .await
        .expect(200)
        .json();
    assert_eq!(v["meta"]["count"], json!(3));
    assert_eq!(
        v["meta"]["next_page"],
        json!(format!("{base}/events?resultsperpage=0&start=0"))
    );

    // user_uri on every array response when authenticated, including empty ones.
    let fx = emu.fixtures().clone();
    let token = login(&emu, &fx.username, &fx.password).await;
    let user_uri = json!(format!("{base}/users/1"));
    for path in [
        "/v2.1/events",
        "/v2.1/events/999/talks",
        "/v2.1/talks/1",
        "/v2.1/",
        "/v2.1/users?username=nobody",
    ] {
        let v = get(&emu, path, Some(&token)).await.expect(200).json();
        assert_eq!(v["meta"]["user_uri"], user_uri, "{path}");
    }
    let v = get(&emu, "/v2.1/events/999/talks", Some(&token))
        .await
        .expect(200);
    let text = v.text;
    assert!(text.find("\"count\"") < text.find("\"user_uri\""), "{text}");
}

#[tokio::test]
async fn joindin_12_headers_and_error_bodies() {
    let emu = start();
    for path in ["/v2.1/events", "/v2.1/nope", "/v2.1/talks/999"] {
        let r = get(&emu, path, None).await;
        assert_eq!(r.header("content-type"), Some(CT), "{path}");
        assert_eq!(r.header("access-control-allow-origin"), Some("*"), "{path}");
    }
    let r = get(&emu, "/v2.1/talks/999", None).await.expect(404);
    assert_eq!(r.text, "[\"Talk not found\"]");
    let r = send(
        client()
            .post(format!("{}/talks/1/comments", emu.api_base()))
            .json(&json!({"comment": "x"})),
    )
    .await
    .expect(401);
    let values: Vec<_> = r.headers.get_all("www-authenticate").iter().collect();
    assert_eq!(values.len(), 1);
    assert_eq!(values[0].as_bytes(), b"Bearer realm=\"api.joind.in");
    // 429 carries Retry-After.
    emu.update_quirks(|q| {
        q.comment_rate_limit = Some(CommentRateLimit {
            max: 1,
            window: Duration::from_secs(60),
        })
    });
    emu.clock().freeze();
    let fx = emu.fixtures().clone();
    let token = login(&emu, &fx.username, &fx.password).await;
    let post = |text: &'static str| {
        client()
            .post(format!("{}/talks/3/comments", emu.api_base()))
            .bearer_auth(&token)
            .json(&json!({"comment": text, "rating": 3}))
    };
    send(post("first")).await.expect(201);
    let r = send(post("second")).await.expect(429);
    assert_eq!(r.header("retry-after"), Some("60"));
    assert_eq!(
        error_body(&r),
        "Rate limit exceeded. Try again in 60 seconds"
    );
    assert_eq!(r.header("content-type"), Some(CT));
}

#[tokio::test]
async fn joindin_13_numeric_coercion_switch() {
    let emu = start();
    let talk = get(&emu, "/v2.1/talks/2", None).await.expect(200).json();
    assert_eq!(talk["talks"][0]["talk_title"], json!(1984));
    assert_eq!(talk["talks"][0]["id"], json!(2));
    assert_eq!(talk["talks"][0]["duration"], json!(45));
    let event = get(&emu, "/v2.1/events/2", None).await.expect(200).json();
    assert_eq!(event["events"][0]["tags"], json!(["oauth", 2024]));
    let orwell = get(&emu, "/v2.1/events/3", None).await.expect(200).json();
    assert_eq!(orwell["events"][0]["name"], json!(1984));
    assert_eq!(orwell["events"][0]["stub"], json!("0101"), "stub is exempt");
    let speaker = get(&emu, "/v2.1/users/3", None).await.expect(200).json();
    assert_eq!(speaker["users"][0]["full_name"], json!(1984));
    let comments = get(&emu, "/v2.1/talks/1/comments", None)
        .await
        .expect(200)
        .json();
    assert_eq!(
        comments["comments"][1]["comment"],
        json!("42"),
        "comment is exempt"
    );
    assert_eq!(comments["comments"][1]["rating"], json!(4));

    emu.update_quirks(|q| q.numeric_coercion = false);
    let talk = get(&emu, "/v2.1/talks/2", None).await.expect(200).json();
    assert_eq!(talk["talks"][0]["talk_title"], json!("1984"));
    assert_eq!(talk["talks"][0]["id"], json!("2"));
    assert_eq!(talk["meta"]["count"], json!(1));
}

#[tokio::test]
async fn joindin_14_endpoints_and_shapes() {
    let emu = start();
    let base = emu.api_base();
    let events = get(&emu, "/v2.1/events", None).await.expect(200).json();
    let list = events["events"].as_array().expect("events");
    assert_eq!(list.len(), 3);
    assert!(
        list.iter().all(|e| e.get("id").is_none()),
        "events have no id"
    );
    let bnl = list
        .iter()
        .find(|e| e["stub"] == json!("phpbnl14"))
        .expect("seeded event");
    assert_eq!(bnl["uri"], json!(format!("{base}/events/1")));
    assert_eq!(bnl["start_date"], json!("2014-01-24T09:00:00+01:00"));
    assert!(bnl["images"]["orig"]["url"].is_string());
    assert_eq!(bnl["images"]["orig"]["width"], json!(1140));
    let conf = list
        .iter()
        .find(|e| e["stub"] == json!("gkconf99"))
        .expect("seeded event");
    assert_eq!(conf["images"], json!([]));
    assert_eq!(conf["start_date"], json!("2099-05-10T09:00:00-04:00"));
    assert!(bnl.get("latitude").is_none());
    let verbose = get(&emu, "/v2.1/events/1?verbose=yes", None)
        .await
        .expect(200)
        .json();
    assert_eq!(
        verbose["events"][0]["hosts"][0]["host_name"],
        json!("Ada Admin")
    );
    let not_verbose = get(&emu, "/v2.1/events/1?verbose=true", None)
        .await
        .expect(200)
        .json();
    assert!(
        not_verbose["events"][0].get("hosts").is_none(),
        "only exactly verbose=yes"
    );

    for (filter, stubs) in [
        ("upcoming", vec!["gkconf99"]),
        ("past", vec!["0101", "phpbnl14"]),
        ("cfp", vec!["gkconf99"]),
    ] {
        let v = get(&emu, &format!("/v2.1/events?filter={filter}"), None)
            .await
            .expect(200)
            .json();
        let got: Vec<Value> = v["events"]
            .as_array()
            .expect("list")
            .iter()
            .map(|e| e["stub"].clone())
            .collect();
        let want: Vec<Value> = stubs.iter().map(|s| json!(s)).collect();
        assert_eq!(got, want, "{filter}");
    }
    let r = get(&emu, "/v2.1/events?filter=pending", None)
        .await
        .expect(400);
    assert_eq!(
        error_body(&r),
        "You must be logged in to view pending events"
    );
    let r = get(&emu, "/v2.1/events/999", None).await.expect(404);
    assert_eq!(error_body(&r), "Event not found");
    let r = get(&emu, "/v2.1/events/1/nonsense", None).await.expect(404);
    assert_eq!(error_body(&r), "Unknown Subrequest");

    let talks = get(&emu, "/v2.1/events/1/talks", None)
        .await
        .expect(200)
        .json();
    let titles: Vec<Value> = talks["talks"]
        .as_array()
        .expect("talks")
        .iter()
        .map(|t| t["talk_title"].clone())
        .collect();
    assert_eq!(
        titles,
        vec![
            json!("Keynote: The Future"),
            json!("Securing APIs with OAuth"),
            json!(1984)
        ]
    );
    let talk = &talks["talks"][1];
    assert_eq!(talk["id"], json!(1));
    assert_eq!(
        talk["speakers"][0]["speaker_uri"],
        json!(format!("{base}/users/3"))
    );
    assert_eq!(talk["tracks"][0]["track_name"], json!("Track 1"));
    assert_eq!(talk["event_uri"], json!(format!("{base}/events/1")));
    let empty = get(&emu, "/v2.1/events/999/talks", None)
        .await
        .expect(200)
        .json();
    assert_eq!(empty["talks"], json!([]));
    let verbose_talk = get(&emu, "/v2.1/talks/1?verbose=yes", None)
        .await
        .expect(200)
        .json();
    assert_eq!(
        verbose_talk["talks"][0]["user_rating"],
        json!([]),
        "anonymous user_rating"
    );
    assert_eq!(
        verbose_talk["talks"][0]["talk_media"][0]["slides_link"],
        json!("https://slides.example.com/oauth")
    );

    let r = get(&emu, "/v2.1/talks", None).await.expect(405);
    assert_eq!(error_body(&r), "Generic talks listing not supported");
    let found = get(&emu, "/v2.1/talks?title=oauth", None)
        .await
        .expect(200)
        .json();
    assert_eq!(found["meta"]["total"], json!(1));
    let r = get(&emu, "/v2.1/talks/999", None).await.expect(404);
    assert_eq!(error_body(&r), "Talk not found");

    let comments = get(&emu, "/v2.1/talks/1/comments?verbose=yes", None)
        .await
        .expect(200)
        .json();
    let first = &comments["comments"][0];
    assert!(first.get("id").is_none());
    assert_eq!(first["user_uri"], json!(format!("{base}/users/1")));
    assert_eq!(first["source"], json!("joind.in"));
    assert_eq!(first["uri"], json!(format!("{base}/talk_comments/1")));
    assert_eq!(
        get(&emu, "/v2.1/talks/999/comments", None)
            .await
            .expect(200)
            .json()["comments"],
        json!([])
    );
    let r = get(&emu, "/v2.1/talk_comments/999", None).await.expect(404);
    assert_eq!(error_body(&r), "Comment not found");
    assert_eq!(
        get(&emu, "/v2.1/talk_comments/1", None)
            .await
            .expect(200)
            .json()["comments"][0]["rating"],
        json!(5)
    );

    let user = get(&emu, "/v2.1/users/1", None).await.expect(200).json();
    let u = &user["users"][0];
    assert!(u.get("id").is_none());
    assert_eq!(u["username"], json!("grantkit"));
    assert_eq!(
        u["talk_comments_uri"],
        json!(format!("{base}/users/1/talk_comments"))
    );
    let by_name = get(&emu, "/v2.1/users?username=grantkit", None)
        .await
        .expect(200)
        .json();
    assert_eq!(by_name["users"].as_array().map(Vec::len), Some(1));
    let r = get(&emu, "/v2.1/users/999", None).await.expect(404);
    assert_eq!(error_body(&r), "User not found");
    // verbose e-mail only for the user themself.
    let fx = emu.fixtures().clone();
    let token = login(&emu, &fx.username, &fx.password).await;
    let me = get(&emu, "/v2.1/users/1?verbose=yes", Some(&token))
        .await
        .expect(200)
        .json();
    assert_eq!(me["users"][0]["email"], json!("grantkit@example.com"));
    let other = get(&emu, "/v2.1/users/3?verbose=yes", Some(&token))
        .await
        .expect(200)
        .json();
    assert!(other["users"][0].get("email").is_none());
}

#[tokio::test]
async fn joindin_15_comment_post_check_order() {
    let emu = start();
    let base = emu.api_base();
    let fx = emu.fixtures().clone();
    let token = login(&emu, &fx.username, &fx.password).await;
    let post = |path: &str, body: Value, auth: bool| {
        let mut r = client().post(format!("{base}{path}")).json(&body);
        if auth {
            r = r.bearer_auth(&token);
        }
        send(r)
    };
    // 1. anonymous before anything else
    let r = post("/talks/999/comments", json!({}), false)
        .await
        .expect(401);
    assert_eq!(error_body(&r), "You must be logged in to create data");
    // 2. unknown or bad talk id before the fields
    for path in ["/talks/999/comments", "/talks/abc/comments"] {
        let r = post(path, json!({}), true).await.expect(404);
        assert_eq!(error_body(&r), "Talk not found", "{path}");
    }
    // 3. comment, 4. rating (0 counts as empty; no range check)
    let r = post("/talks/2/comments", json!({"rating": 4}), true)
        .await
        .expect(400);
    assert_eq!(error_body(&r), "The field \"comment\" is required");
    let r = post(
        "/talks/2/comments",
        json!({"comment": "Good", "rating": 0}),
        true,
    )
    .await
    .expect(400);
    assert_eq!(error_body(&r), "The field \"rating\" is required");
    // 9. created: 201, Location, empty body
    let r = post(
        "/talks/3/comments",
        json!({"comment": "Inspiring", "rating": 9}),
        true,
    )
    .await
    .expect(201);
    assert_eq!(r.text, "");
    let location = r.header("location").expect("location").to_owned();
    assert!(location.starts_with(&format!("{base}/talk_comments/")));
    let created = send(client().get(format!("{location}?verbose=yes")))
        .await
        .expect(200)
        .json();
    assert_eq!(created["comments"][0]["rating"], json!(9));
    assert_eq!(created["comments"][0]["source"], json!("grantkit tests"));
    // 8. duplicate
    let r = post(
        "/talks/3/comments",
        json!({"comment": "Inspiring", "rating": 5}),
        true,
    )
    .await
    .expect(400);
    assert_eq!(error_body(&r), "Duplicate comment");
    // 7. second rating of the same talk is silently 0; so is a speaker's own rating.
    let r = post(
        "/talks/3/comments",
        json!({"comment": "Again", "rating": 2}),
        true,
    )
    .await
    .expect(201);
    let again = send(client().get(r.header("location").expect("location")))
        .await
        .json();
    assert_eq!(again["comments"][0]["rating"], json!(0));
    let speaker = login(&emu, &fx.speaker_username, &fx.speaker_password).await;
    let r = send(
        client()
            .post(format!("{base}/talks/1/comments"))
            .bearer_auth(&speaker)
            .json(&json!({"comment": "My own talk", "rating": 5})),
    )
    .await
    .expect(201);
    let own = send(client().get(r.header("location").expect("location")))
        .await
        .json();
    assert_eq!(own["comments"][0]["rating"], json!(0));
}

#[tokio::test]
async fn joindin_16_comment_rate_limit_is_configurable() {
    let emu = start();
    emu.clock().freeze();
    emu.update_quirks(|q| {
        q.comment_rate_limit = Some(CommentRateLimit {
            max: 2,
            window: Duration::from_secs(3_600),
        })
    });
    let fx = emu.fixtures().clone();
    let token = login(&emu, &fx.username, &fx.password).await;
    let post = |text: String| {
        send(
            client()
                .post(format!("{}/talks/3/comments", emu.api_base()))
                .bearer_auth(&token)
                .json(&json!({"comment": text, "rating": 1})),
        )
    };
    post("one".into()).await.expect(201);
    emu.clock().advance(Duration::from_secs(600));
    post("two".into()).await.expect(201);
    let r = post("three".into()).await.expect(429);
    assert_eq!(r.header("retry-after"), Some("3000"));
    emu.clock().advance(Duration::from_secs(3_001));
    post("three".into()).await.expect(201);
    // Disabled: no limit.
    emu.update_quirks(|q| q.comment_rate_limit = None);
    for i in 0..5 {
        post(format!("more {i}")).await.expect(201);
    }
    // The default is 30 an hour.
    emu.update_quirks(|q| q.comment_rate_limit = Some(CommentRateLimit::default()));
    assert_eq!(
        CommentRateLimit::default(),
        CommentRateLimit {
            max: 30,
            window: Duration::from_secs(3_600)
        }
    );
}

#[tokio::test]
async fn joindin_17_spam_check_switch() {
    let emu = start();
    let fx = emu.fixtures().clone();
    let token = login(&emu, &fx.username, &fx.password).await;
    let post = |text: &'static str| {
        send(
            client()
                .post(format!("{}/talks/3/comments", emu.api_base()))
                .bearer_auth(&token)
                .json(&json!({"comment": text, "rating": 2})),
        )
    };
    post("viagra-test-123 off").await.expect(201);
    emu.update_quirks(|q| q.spam_check = true);
    let r = post("viagra-test-123 on").await.expect(400);
    assert_eq!(error_body(&r), "Comment failed spam check");
    post("a normal comment").await.expect(201);
}

#[tokio::test]
async fn joindin_18_missing_user_empty_list_switch() {
    let emu = start();
    get(&emu, "/v2.1/users/999", None).await.expect(404);
    emu.update_quirks(|q| q.missing_user_empty_list = true);
    let v = get(&emu, "/v2.1/users/999", None).await.expect(200).json();
    assert_eq!(v["users"], json!([]));
    assert_eq!(v["meta"]["count"], json!(0));
}

#[tokio::test]
async fn joindin_19_jsonp_switch() {
    let emu = start();
    let r = get(&emu, "/v2.1/talks/999?callback=cb", None)
        .await
        .expect(404);
    assert_eq!(r.text, "cb([\"Talk not found\"]);");
    assert_eq!(r.header("content-type"), Some(CT));
    let r = get(&emu, "/v2.1/?callback=handle", None).await.expect(200);
    assert!(
        r.text.starts_with("handle({\"events\":") && r.text.ends_with("});"),
        "{}",
        r.text
    );
    emu.update_quirks(|q| q.jsonp = false);
    let r = get(&emu, "/v2.1/?callback=handle", None).await.expect(200);
    assert!(r.text.starts_with("{\"events\":"));
}

#[tokio::test]
async fn joindin_20_case_insensitive_credentials_switch() {
    let emu = start();
    let fx = emu.fixtures().clone();
    let body = json!({"grant_type": "password", "username": fx.username.to_uppercase(), "password": fx.password,
        "client_id": fx.client_id, "client_secret": fx.client_secret});
    token_post(&emu, body.clone()).await.expect(403);
    let token = login(&emu, &fx.username, &fx.password).await;
    let upper = token.to_uppercase();
    let root = get(&emu, "/v2.1/", Some(&upper)).await.expect(200).json();
    assert!(
        root.get("meta").is_none(),
        "token matched exactly by default"
    );
    emu.update_quirks(|q| q.case_insensitive_credentials = true);
    token_post(&emu, body).await.expect(200);
    let root = get(&emu, "/v2.1/", Some(&upper)).await.expect(200).json();
    assert_eq!(
        root["meta"]["user_uri"],
        json!(format!("{}/users/1", emu.api_base()))
    );
}

fn allow_url(emu: &JoindinEmulator, key: &str, callback: &str, state: Option<&str>) -> String {
    let mut url = format!("{}?api_key={key}&callback={callback}", emu.authorize_url());
    if let Some(s) = state {
        url.push_str("&state=");
        url.push_str(s);
    }
    url
}

#[tokio::test]
async fn joindin_21_oauth_allow_requires_login_and_checks_parameters() {
    let emu = start();
    let fx = emu.fixtures().clone();
    // Not logged in: 200 with a Refresh header to the login page.
    let r = send(client().get(allow_url(
        &emu,
        &fx.legacy_client_id,
        &fx.legacy_redirect_uri,
        Some("s1"),
    )))
    .await
    .expect(200);
    assert_eq!(
        r.header("refresh"),
        Some(format!("0;url={}/user/login", emu.base_url()).as_str())
    );
    let cookie = emu.login_cookie(&fx.username).expect("session");
    let page = |url: String| send(client().get(url).header("cookie", cookie.clone()));
    let cases = [
        (
            allow_url(&emu, "", &fx.legacy_redirect_uri, None),
            "The client identifier <code>api_key</code> was not recognised.",
        ),
        (
            allow_url(&emu, &fx.legacy_client_id, "", None),
            "Callback URL <code>callback</code> is missing or incorrect.",
        ),
        (
            allow_url(&emu, &fx.legacy_client_id, "http://evil.example/cb", None),
            "Access cannot be granted for this key.",
        ),
        (
            allow_url(
                &emu,
                &fx.legacy_client_id,
                &format!("{}/", fx.legacy_redirect_uri),
                None,
            ),
            "Access cannot be granted for this key.",
        ),
        (
            allow_url(&emu, "unknown", &fx.legacy_redirect_uri, None),
            "Access cannot be granted for this key.",
        ),
    ];
    for (url, message) in cases {
        let r = page(url.clone()).await.expect(200);
        assert!(r.text.contains(message), "{url}: {}", r.text);
        assert!(r.header("location").is_none(), "error pages never redirect");
        assert!(
            r.header("content-type")
                .is_some_and(|c| c.starts_with("text/html"))
        );
    }
}

#[tokio::test]
async fn joindin_21_oauth_allow_allow_redirects_with_token_in_query() {
    let emu = start();
    let fx = emu.fixtures().clone();
    let cookie = emu.login_cookie(&fx.username).expect("session");
    let r = send(
        client()
            .get(allow_url(
                &emu,
                &fx.legacy_client_id,
                &fx.legacy_redirect_uri,
                Some("xyz-123"),
            ))
            .header("cookie", cookie.clone()),
    )
    .await
    .expect(200);
    assert!(r.text.contains("name=\"access\" value=\"allow\""));
    assert!(r.text.contains("value=\"deny\" checked"));
    let r = send(
        client()
            .post(emu.authorize_url())
            .header("cookie", cookie.clone())
            .form(&[("access", "allow"), ("sub", "Submit")]),
    )
    .await
    .expect(302);
    let location = r.header("location").expect("location");
    let prefix = format!("{}?access_token=", fx.legacy_redirect_uri);
    assert!(location.starts_with(&prefix), "{location}");
    let rest = &location[prefix.len()..];
    let (token, state) = rest.split_once("&state=").expect("state echoed");
    assert_eq!(state, "xyz-123");
    assert_eq!(token.len(), 16);
    let root = get(&emu, "/v2.1/", Some(token)).await.expect(200).json();
    assert_eq!(
        root["meta"]["user_uri"],
        json!(format!("{}/users/1", emu.api_base()))
    );
    // The flashdata lasted one request: a second allow cannot return to the application.
    let r = send(
        client()
            .post(emu.authorize_url())
            .header("cookie", cookie)
            .form(&[("access", "allow")]),
    )
    .await
    .expect(200);
    assert!(
        r.text
            .contains("Access was granted, but we cannot return you to your application")
    );
}

#[tokio::test]
async fn joindin_21_oauth_allow_callback_with_query_and_no_state() {
    let emu = start();
    let fx = emu.fixtures().clone();
    let callback = "http://localhost:8765/cb?app=1";
    emu.add_client(JoindinClient::untrusted("querykey", "querysecr", callback));
    emu.set_auto_consent(Some(AutoConsent::Approve(fx.username.clone())));
    // `callback` is decoded twice: %253F arrives as `?`.
    let r = send(client().get(format!(
        "{}?api_key=querykey&callback=http://localhost:8765/cb%253Fapp=1",
        emu.authorize_url()
    )))
    .await
    .expect(302);
    let location = r.header("location").expect("location");
    assert!(
        location.starts_with("http://localhost:8765/cb?app=1&access_token="),
        "{location}"
    );
    assert!(!location.contains("state="));
    assert!(!location.contains('#'));
}

#[tokio::test]
async fn joindin_21_oauth_allow_deny_page_and_login_form() {
    let emu = start();
    let fx = emu.fixtures().clone();
    // Log in through the form: the login page returns to oauth_allow.
    let url = allow_url(
        &emu,
        &fx.legacy_client_id,
        &fx.legacy_redirect_uri,
        Some("st"),
    );
    let r = send(client().get(&url)).await.expect(200);
    let cookie = r
        .header("set-cookie")
        .expect("session cookie")
        .split(';')
        .next()
        .expect("pair")
        .to_owned();
    let r = send(
        client()
            .post(emu.login_url())
            .header("cookie", cookie.clone())
            .form(&[
                ("user", fx.username.as_str()),
                ("pass", fx.password.as_str()),
            ]),
    )
    .await
    .expect(302);
    let back = r.header("location").expect("location").to_owned();
    assert!(back.starts_with("/user/oauth_allow?api_key="), "{back}");
    send(
        client()
            .get(format!("{}{back}", emu.base_url()))
            .header("cookie", cookie.clone()),
    )
    .await
    .expect(200);
    let r = send(
        client()
            .post(emu.authorize_url())
            .header("cookie", cookie.clone())
            .form(&[("access", "deny")]),
    )
    .await
    .expect(200);
    assert!(
        r.text
            .contains("Access was not granted. We hope you enjoy joind.in")
    );
    assert!(
        r.text.contains(&format!(
            "href=\"{}?&amp;state=st\"",
            fx.legacy_redirect_uri
        )),
        "{}",
        r.text
    );
    assert!(r.header("location").is_none());
    // Wrong password: the form again.
    let r = send(
        client()
            .post(emu.login_url())
            .form(&[("user", fx.username.as_str()), ("pass", "nope")]),
    )
    .await
    .expect(200);
    assert!(r.text.contains("Login failed"));
}

#[tokio::test]
async fn joindin_21_oauth_allow_auto_consent_and_page_gone() {
    let emu = JoindinEmulator::builder()
        .auto_consent(AutoConsent::Approve("grantkit".into()))
        .start()
        .expect("starts");
    let fx = emu.fixtures().clone();
    let r = send(client().get(allow_url(
        &emu,
        &fx.legacy_client_id,
        &fx.legacy_redirect_uri,
        Some("a"),
    )))
    .await
    .expect(302);
    let pairs = params_of(r.header("location").expect("location"), false);
    assert!(param(&pairs, "access_token").is_some());
    assert_eq!(param(&pairs, "state"), Some("a"));
    emu.set_auto_consent(Some(AutoConsent::Deny));
    let r = send(client().get(allow_url(
        &emu,
        &fx.legacy_client_id,
        &fx.legacy_redirect_uri,
        Some("b"),
    )))
    .await
    .expect(200);
    assert!(r.text.contains("Access was not granted"));
    emu.update_quirks(|q| q.legacy_oauth_allow = false);
    let r = send(client().get(allow_url(
        &emu,
        &fx.legacy_client_id,
        &fx.legacy_redirect_uri,
        None,
    )))
    .await
    .expect(404);
    assert!(!r.text.contains("<form"));
    assert!(emu.count(JoindinEndpoint::OAuthAllow) >= 3);
}

#[tokio::test]
async fn joindin_22_seed_data() {
    let emu = start();
    let fx = emu.fixtures().clone();
    // web2: trusted (password grant works) and its tokens are not revocable (hidden).
    let web2 = json!({"grant_type": "password", "username": fx.username, "password": fx.password,
        "client_id": "web2", "client_secret": "web2secret"});
    let token = token_post(&emu, web2).await.expect(200).json()["access_token"]
        .as_str()
        .map(str::to_owned);
    let list = get(&emu, "/v2.1/token", token.as_deref())
        .await
        .expect(200)
        .json();
    assert_eq!(list["tokens"], json!([]));
    // A trusted client with a base64-looking key, and an untrusted key with a callback.
    assert!(fx.client_id.contains('+') && fx.client_id.contains('/'));
    login(&emu, &fx.username, &fx.password).await;
    let legacy = json!({"grant_type": "password", "username": fx.username, "password": fx.password,
        "client_id": fx.legacy_client_id, "client_secret": fx.legacy_client_secret});
    token_post(&emu, legacy).await.expect(403);
    // Verified, unverified and admin users.
    login(&emu, &fx.admin_username, &fx.admin_password).await;
    let unverified = json!({"grant_type": "password", "username": fx.unverified_username, "password": fx.unverified_password,
        "client_id": fx.client_id, "client_secret": fx.client_secret});
    token_post(&emu, unverified).await.expect(401);
    // Numeric-looking text and events with and without images.
    let talk = get(&emu, "/v2.1/talks/2", None).await.expect(200).json();
    assert_eq!(talk["talks"][0]["talk_title"], json!(1984));
    let events = get(&emu, "/v2.1/events?resultsperpage=0", None)
        .await
        .expect(200)
        .json();
    let images: Vec<bool> = events["events"]
        .as_array()
        .expect("list")
        .iter()
        .map(|e| e["images"].is_object())
        .collect();
    assert!(images.contains(&true) && images.contains(&false));
    // The admin sees pending events.
    let admin = login(&emu, &fx.admin_username, &fx.admin_password).await;
    let pending = get(&emu, "/v2.1/events?filter=pending", Some(&admin))
        .await
        .expect(200)
        .json();
    assert_eq!(
        pending["events"][0]["approval_uri"],
        json!(format!("{}/events/4/approval", emu.api_base()))
    );
    let user = login(&emu, &fx.username, &fx.password).await;
    get(&emu, "/v2.1/events?filter=pending", Some(&user))
        .await
        .expect(403);
}
