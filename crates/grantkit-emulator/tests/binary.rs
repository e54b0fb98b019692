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
    assert_eq!(object.len(), keys.len() + 1, "{ready}");
    for key in keys {
        assert!(ready[key].is_string(), "{key} in {ready}");
    }
    let quirks = ready["quirks"].as_object().expect("quirks object");
    assert!(quirks.values().all(Value::is_string), "{ready}");
    assert_eq!(ready["quirks"]["expire_access_delay"], json!("0s"));
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

/// Runs the binary to its end: the paths that exit without serving.
async fn run(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_grantkit-emulator"))
        .args(args)
        .output()
        .await
        .expect("runs")
}

#[tokio::test]
async fn binary_lists_the_quirks_of_both_providers() {
    let out = run(&["joindin", "--list-quirks"]).await;
    assert!(out.status.success(), "{out:?}");
    let table = String::from_utf8(out.stdout).expect("UTF-8");
    let row = table
        .lines()
        .find(|l| l.starts_with("development_mode "))
        .unwrap_or_else(|| panic!("development_mode in {table}"));
    assert_eq!(row.split_whitespace().nth(1), Some("on"), "{row}");

    let out = run(&["joinme", "--list-quirks"]).await;
    assert!(out.status.success(), "{out:?}");
    let table = String::from_utf8(out.stdout).expect("UTF-8");
    assert!(
        table.lines().any(|l| l.starts_with("expire_access_delay ")),
        "{table}"
    );

    let out = run(&[
        "joinme",
        "--quirk",
        "expire_access_delay=10m",
        "--list-quirks",
        "--json",
    ])
    .await;
    assert!(out.status.success(), "{out:?}");
    let rows: Value = serde_json::from_slice(&out.stdout).expect("a JSON array");
    let row = rows
        .as_array()
        .expect("array")
        .iter()
        .find(|r| r["name"] == json!("expire_access_delay"))
        .expect("expire_access_delay listed");
    assert_eq!(row["value"], json!("10m"));
    assert_eq!(row["default"], json!("0s"));
    assert!(row["help"].as_str().is_some_and(|h| !h.is_empty()), "{row}");
}

#[tokio::test]
async fn binary_quirks_show_in_the_ready_line() {
    let (mut child, ready) = spawn(&[
        "joindin",
        "--quirk",
        "development_mode=off",
        "--quirk",
        "comment_rate_limit=5/10m",
    ])
    .await;
    assert_eq!(ready["quirks"]["development_mode"], json!("off"), "{ready}");
    assert_eq!(
        ready["quirks"]["comment_rate_limit"],
        json!("5/10m"),
        "{ready}"
    );
    assert_eq!(ready["quirks"]["jsonp"], json!("on"), "untouched: {ready}");
    child.kill().await.expect("killed");
}

#[tokio::test]
async fn binary_rejects_bad_switches_before_starting() {
    let cases: [(&[&str], &str); 5] = [
        (
            &["joindin", "--quirk", "no_such_switch=on"],
            "development_mode",
        ),
        (
            &["joinme", "--quirk", "expire_access_delay=soon"],
            "duration",
        ),
        (&["joinme", "--quirk", "x_frame_options"], "NAME=VALUE"),
        (
            &["joindin", "--fault", "api:meltdown"],
            "service-unavailable",
        ),
        (
            &["joinme", "--fault", "oauth-allow:reset"],
            "renew-authorization",
        ),
    ];
    for (args, needle) in cases {
        let out = run(args).await;
        assert_eq!(out.status.code(), Some(2), "{args:?}: {out:?}");
        assert!(out.stdout.is_empty(), "nothing started: {args:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        let prefix = format!("grantkit-emulator: {} {}: ", args[1], args[2]);
        assert!(stderr.starts_with(&prefix), "{prefix} in {stderr}");
        assert!(stderr.contains(needle), "{needle} in {stderr}");
    }
}

#[tokio::test]
async fn binary_injects_faults_from_the_command_line() {
    let (mut child, ready) = spawn(&["joindin", "--fault", "service-unavailable=1@2"]).await;
    let events = format!("{}/events", ready["api_base"].as_str().expect("api_base"));
    let http = client();
    for _ in 0..2 {
        let r = send(http.get(events.as_str())).await.expect(503);
        assert_eq!(r.header("retry-after"), Some("1"));
    }
    send(http.get(events.as_str())).await.expect(200);
    child.kill().await.expect("killed");
}
