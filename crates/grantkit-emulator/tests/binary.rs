//! The `grantkit-emulator` binary: started as a child process, it prints its JSON line and
//! answers a full join.me authorization-code flow driven by a plain HTTP client.

mod common;

use std::process::Stdio;

use common::{client, param, params_of, send};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

async fn spawn(args: &[&str]) -> (Child, Value) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_grantkit-emulator"))
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("binary starts");
    let stdout = child.stdout.take().expect("stdout piped");
    let mut lines = BufReader::new(stdout).lines();
    let line = lines
        .next_line()
        .await
        .expect("stdout readable")
        .expect("one line");
    let ready: Value = serde_json::from_str(&line).expect("the line is JSON");
    (child, ready)
}

#[tokio::test]
async fn binary_serves_a_full_joinme_code_flow() {
    let (mut child, ready) = spawn(&["joinme", "--auto-approve", "grantkit@example.com"]).await;
    let keys = [
        "provider",
        "base_url",
        "authorize_url",
        "token_url",
        "api_base",
        "client_id",
        "client_secret",
        "redirect_uri",
        "username",
        "password",
    ];
    let object = ready.as_object().expect("object");
    assert_eq!(object.len(), keys.len(), "{ready}");
    for key in keys {
        assert!(ready[key].is_string(), "{key} in {ready}");
    }
    assert_eq!(ready["provider"], json!("joinme"));
    let s = |k: &str| ready[k].as_str().expect("string").to_owned();
    let http = client();

    // Authorize: auto-approved, 302 to the callback with a code.
    let r = send(http.get(s("authorize_url")).query(&[
        ("response_type", "code"),
        ("client_id", s("client_id").as_str()),
        ("scope", "user_info scheduler start_meeting"),
        ("redirect_uri", s("redirect_uri").as_str()),
        ("state", "flow-1"),
    ]))
    .await
    .expect(302);
    let pairs = params_of(r.header("location").expect("location"), false);
    assert_eq!(param(&pairs, "state"), Some("flow-1"));
    let code = param(&pairs, "code").expect("code").to_owned();

    // Token.
    let v = send(http.post(s("token_url")).form(&[
        ("grant_type", "authorization_code"),
        ("code", code.as_str()),
        ("client_id", s("client_id").as_str()),
        ("client_secret", s("client_secret").as_str()),
        ("redirect_uri", s("redirect_uri").as_str()),
    ]))
    .await
    .expect(200)
    .json();
    let access = v["access_token"].as_str().expect("access").to_owned();
    let refresh = v["refresh_token"].as_str().expect("refresh").to_owned();

    // API.
    let user = send(
        http.get(format!("{}/user", s("api_base")))
            .bearer_auth(&access),
    )
    .await
    .expect(200)
    .json();
    assert_eq!(user["email"], ready["username"]);

    // Refresh.
    let v = send(http.post(s("token_url")).form(&[
        ("grant_type", "refresh_token"),
        ("refresh_token", refresh.as_str()),
        ("client_id", s("client_id").as_str()),
        ("client_secret", s("client_secret").as_str()),
    ]))
    .await
    .expect(200)
    .json();
    let access = v["access_token"].as_str().expect("access").to_owned();
    send(
        http.get(format!("{}/user", s("api_base")))
            .bearer_auth(&access),
    )
    .await
    .expect(200);

    // Expire Access, then the token is stale.
    let v = send(
        http.post(format!("{}/api/public/v1/auth/expireaccess", s("base_url")))
            .form(&[
                ("access_token", access.as_str()),
                ("client_id", s("client_id").as_str()),
                ("client_secret", s("client_secret").as_str()),
            ]),
    )
    .await
    .expect(200)
    .json();
    assert_eq!(
        v,
        json!({"success": true, "message": "Access Token Expired"})
    );
    let r = send(
        http.get(format!("{}/user", s("api_base")))
            .bearer_auth(&access),
    )
    .await
    .expect(401);
    assert_eq!(r.json()["ErrorCode"], json!("stale_token"));

    child.kill().await.expect("killed");
}

#[tokio::test]
async fn binary_joindin_line_and_deny() {
    let (mut child, ready) = spawn(&["joindin", "--deny"]).await;
    assert_eq!(ready["provider"], json!("joindin"));
    let s = |k: &str| ready[k].as_str().expect("string").to_owned();
    assert!(s("authorize_url").ends_with("/user/oauth_allow"));
    let http = client();
    let v = send(http.post(s("token_url")).json(&json!({
        "grant_type": "password", "username": s("username"), "password": s("password"),
        "client_id": s("client_id"), "client_secret": s("client_secret"),
    })))
    .await
    .expect(200)
    .json();
    assert!(v["access_token"].is_string());
    // The key holds `+`, `/` and `=`: sent encoded, it matches, and `--deny` declines at once.
    let key: String = url::form_urlencoded::byte_serialize(s("client_id").as_bytes()).collect();
    let r = send(http.get(format!(
        "{}?api_key={key}&callback={}&state=x",
        s("authorize_url"),
        s("redirect_uri")
    )))
    .await
    .expect(200);
    assert!(r.text.contains("Access was not granted"), "{}", r.text);
    assert!(r.header("location").is_none());
    child.kill().await.expect("killed");
}

#[tokio::test]
async fn binary_rejects_bad_arguments() {
    let output = Command::new(env!("CARGO_BIN_EXE_grantkit-emulator"))
        .args(["joinme", "--auto-approve", "x", "--deny"])
        .output()
        .await
        .expect("runs");
    assert!(!output.status.success());
    assert!(output.stdout.is_empty());
}
