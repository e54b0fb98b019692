//! Fault injection, request log and counters, body caps and hostile input, on both
//! emulators over real HTTP.

mod common;

use std::time::Duration;

use common::{client, send};
use grantkit_emulator::{
    Fault, FaultKind, FaultRule, JoinMeEmulator, JoinMeEndpoint, JoinMeGrant, JoindinEmulator,
    JoindinEndpoint,
};
use serde_json::json;

fn joindin() -> JoindinEmulator {
    JoindinEmulator::start().expect("starts")
}

fn joinme_with_token() -> (JoinMeEmulator, String) {
    let emu = JoinMeEmulator::start().expect("starts");
    let id = emu.fixtures().client_id.clone();
    let tokens = emu
        .issue_tokens(
            "grantkit@example.com",
            &id,
            &["user_info"],
            JoinMeGrant::Code,
        )
        .expect("issued");
    (emu, tokens.access_token)
}

#[tokio::test]
async fn latency_delays_then_answers_normally() {
    let emu = joindin();
    emu.inject(FaultRule::on(
        JoindinEndpoint::Api,
        Fault::Latency(Duration::from_millis(30)),
    ));
    send(client().get(emu.api_base())).await.expect(200);
    send(client().get(emu.api_base())).await.expect(200);
    let log = emu.requests();
    assert_eq!(log[0].fault, Some(FaultKind::Latency));
    assert_eq!(log[0].status, Some(200));
    assert_eq!(log[1].fault, None);
}

#[tokio::test]
async fn server_error_has_an_html_body() {
    let emu = joindin();
    emu.inject(FaultRule::on(JoindinEndpoint::Token, Fault::ServerError { status: 503 }).times(2));
    for _ in 0..2 {
        let r = send(client().post(emu.token_url()).json(&json!({})))
            .await
            .expect(503);
        assert!(
            r.header("content-type")
                .is_some_and(|c| c.starts_with("text/html"))
        );
        assert!(r.text.contains("<h1>Service Unavailable</h1>"));
    }
    send(client().post(emu.token_url()).json(&json!({})))
        .await
        .expect(400);
    // Only the token endpoint was targeted.
    emu.inject(FaultRule::on(
        JoindinEndpoint::Token,
        Fault::ServerError { status: 500 },
    ));
    send(client().get(emu.api_base())).await.expect(200);
    assert_eq!(emu.active_faults().len(), 1);
}

#[tokio::test]
async fn backend_error_is_the_providers_own() {
    let emu = joindin();
    emu.inject(FaultRule::on_any(Fault::BackendError));
    let r = send(client().get(format!("{}/events", emu.api_base())))
        .await
        .expect(500);
    assert_eq!(r.text, "[\"Database error\"]");
}

#[tokio::test]
async fn too_many_requests_carries_retry_after() {
    let emu = joindin();
    emu.inject(FaultRule::on(
        JoindinEndpoint::Api,
        Fault::TooManyRequests { retry_after_s: 7 },
    ));
    let r = send(client().get(emu.api_base())).await.expect(429);
    assert_eq!(r.header("retry-after"), Some("7"));
    assert_eq!(r.text, "[\"Rate limit exceeded. Try again in 7 seconds\"]");
    let (jm, token) = joinme_with_token();
    jm.inject(FaultRule::on(
        JoinMeEndpoint::Api,
        Fault::TooManyRequests { retry_after_s: 3 },
    ));
    let r = send(
        client()
            .get(format!("{}/user", jm.api_base()))
            .bearer_auth(&token),
    )
    .await
    .expect(429);
    assert_eq!(r.header("retry-after"), Some("3"));
}

#[tokio::test]
async fn mashery_over_qps_403_with_retry_after() {
    let (emu, token) = joinme_with_token();
    emu.inject(FaultRule::on(
        JoinMeEndpoint::Api,
        Fault::MasheryOverQps { retry_after_s: 2 },
    ));
    let r = send(
        client()
            .get(format!("{}/user", emu.api_base()))
            .bearer_auth(&token),
    )
    .await
    .expect(403);
    assert_eq!(
        r.header("x-mashery-error-code"),
        Some("ERR_403_DEVELOPER_OVER_QPS")
    );
    assert_eq!(r.header("retry-after"), Some("2"));
    assert_eq!(r.header("server"), Some("Mashery Proxy"));
    emu.update_quirks(|q| q.throttle_status = 429);
    emu.inject(FaultRule::on(
        JoinMeEndpoint::Api,
        Fault::MasheryOverQps { retry_after_s: 2 },
    ));
    send(
        client()
            .get(format!("{}/user", emu.api_base()))
            .bearer_auth(&token),
    )
    .await
    .expect(429);
}

#[tokio::test]
async fn malformed_json_does_not_parse() {
    let (emu, _) = joinme_with_token();
    emu.inject(FaultRule::on(JoinMeEndpoint::Token, Fault::MalformedJson));
    let response = client()
        .post(emu.token_url())
        .form(&[("grant_type", "refresh_token")])
        .send()
        .await
        .expect("answered");
    assert_eq!(response.status().as_u16(), 200);
    assert!(
        response.headers()["content-type"]
            .to_str()
            .is_ok_and(|c| c.starts_with("application/json"))
    );
    assert!(response.json::<serde_json::Value>().await.is_err());
}

#[tokio::test]
async fn truncated_body_fails_to_read() {
    let emu = joindin();
    emu.inject(FaultRule::on(JoindinEndpoint::Token, Fault::TruncatedBody));
    let response = client()
        .post(emu.token_url())
        .json(&json!({}))
        .send()
        .await
        .expect("headers arrive");
    assert_eq!(response.status().as_u16(), 200);
    assert_eq!(response.content_length(), Some(512));
    assert!(response.bytes().await.is_err(), "the body ends early");
    assert_eq!(emu.requests()[0].fault, Some(FaultKind::TruncatedBody));
}

#[tokio::test]
async fn oversized_body_is_ten_mebibytes() {
    let (emu, token) = joinme_with_token();
    emu.inject(FaultRule::on(JoinMeEndpoint::Api, Fault::OversizedBody));
    let response = client()
        .get(format!("{}/user", emu.api_base()))
        .bearer_auth(&token)
        .send()
        .await
        .expect("answered");
    assert_eq!(response.content_length(), Some(10 * 1024 * 1024));
    let body = response.bytes().await.expect("body");
    assert_eq!(body.len(), 10 * 1024 * 1024);
    assert!(serde_json::from_slice::<serde_json::Value>(&body).is_ok());
}

#[tokio::test]
async fn connection_reset_sends_no_response() {
    let emu = joindin();
    emu.inject(FaultRule::on(
        JoindinEndpoint::Token,
        Fault::ConnectionReset,
    ));
    let error = client()
        .post(emu.token_url())
        .json(&json!({}))
        .send()
        .await
        .expect_err("no response");
    assert!(!error.is_status() && !error.is_timeout(), "{error:?}");
    // The next request is served, on a fresh connection.
    send(client().post(emu.token_url()).json(&json!({})))
        .await
        .expect(400);
    let log = emu.requests();
    assert_eq!(log[0].status, None);
    assert_eq!(log[0].fault, Some(FaultKind::ConnectionReset));
    assert_eq!(
        emu.counters().by_fault.get(&FaultKind::ConnectionReset),
        Some(&1)
    );
}

#[tokio::test]
async fn seeded_probability_is_repeatable() {
    async fn run() -> Vec<u16> {
        let emu = JoindinEmulator::start().expect("starts");
        emu.inject(
            FaultRule::on(JoindinEndpoint::Api, Fault::ServerError { status: 500 })
                .with_probability(0.5, 7),
        );
        let mut statuses = Vec::new();
        for _ in 0..24 {
            statuses.push(send(client().get(emu.api_base())).await.status);
        }
        statuses
    }
    let a = run().await;
    assert_eq!(a, run().await);
    assert!(a.contains(&500) && a.contains(&200), "{a:?}");
}

#[tokio::test]
async fn after_processing_commits_then_loses_the_response() {
    let (emu, _) = joinme_with_token();
    let fx = emu.fixtures().clone();
    let issued = emu
        .issue_tokens(&fx.email, &fx.client_id, &["user_info"], JoinMeGrant::Code)
        .expect("issued");
    let refresh = issued.refresh_token.expect("refresh token");
    emu.update_quirks(|q| q.refresh_rotation = true);
    emu.inject(FaultRule::on(JoinMeEndpoint::Token, Fault::ConnectionReset).after_processing());
    let form = [
        ("grant_type", "refresh_token"),
        ("refresh_token", refresh.as_str()),
        ("client_id", fx.client_id.as_str()),
        ("client_secret", fx.client_secret.as_str()),
    ];
    client()
        .post(emu.token_url())
        .form(&form)
        .send()
        .await
        .expect_err("response lost");
    // The rotation happened: the old refresh token is spent.
    let r = send(client().post(emu.token_url()).form(&form))
        .await
        .expect(400);
    assert_eq!(r.json()["error"], json!("invalid_grant"));
}

#[tokio::test]
async fn counters_and_log_never_hold_secrets() {
    let (emu, token) = joinme_with_token();
    let fx = emu.fixtures().clone();
    send(
        client()
            .get(format!("{}/user?access_token={token}", emu.api_base()))
            .bearer_auth(&token),
    )
    .await
    .expect(200);
    send(
        client()
            .post(emu.token_url())
            .form(&[("client_secret", fx.client_secret.as_str())]),
    )
    .await
    .expect(400);
    let counters = emu.counters();
    assert_eq!(counters.total, 2);
    assert_eq!(counters.endpoint(JoinMeEndpoint::Token), 1);
    assert_eq!(counters.status(400), 1);
    let log = format!("{:?}", emu.requests());
    assert!(
        !log.contains(&token) && !log.contains(&fx.client_secret),
        "{log}"
    );
    assert_eq!(emu.requests()[0].path, "/v1/user");
    emu.reset_counters();
    assert_eq!(emu.counters().total, 0);
    assert!(emu.requests().is_empty());
}

#[tokio::test]
async fn request_bodies_are_capped() {
    let emu = joindin();
    let big = vec![b'a'; 2 * 1024 * 1024];
    let r = send(
        client()
            .post(emu.token_url())
            .header("content-type", "application/json")
            .body(big),
    )
    .await;
    assert_eq!(r.status, 413);
    // A streamed (chunked) body over the cap is refused too.
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> =
        (0..40).map(|_| Ok(vec![b'{'; 64 * 1024])).collect();
    let body = reqwest::Body::wrap_stream(futures::stream::iter(chunks));
    let r = send(client().post(emu.token_url()).body(body)).await;
    assert_eq!(r.status, 413);
    send(client().get(emu.api_base())).await.expect(200);
}

#[tokio::test]
async fn hostile_input_never_breaks_the_emulators() {
    let emu = joindin();
    let base = emu.base_url();
    let paths = [
        "/v2.1/events?start=-5",
        "/v2.1/events?resultsperpage=-1",
        "/v2.1/events?start=99999999999999999999999&resultsperpage=abc",
        "/v2.1/events?tags[][][]=x&%zz=%&&=&[=1",
        "/v2.1/users/%FF%FE",
        "/v2.1/events?startdate=not-a-date&enddate=%00",
        "/v2.1/talks?title=%E2%98%83",
        "/user/oauth_allow?callback=%25%25%25&api_key[]=x",
    ];
    for path in paths {
        let r = send(client().get(format!("{base}{path}"))).await;
        assert!(
            r.status < 500 || r.text == "[\"Database error\"]",
            "{path}: {} {}",
            r.status,
            r.text
        );
    }
    for body in [
        "{",
        "[1,2]",
        "null",
        "\"x\"",
        "{\"grant_type\": {\"a\": [1]}}",
        "{\"rating\": 1e999}",
    ] {
        let r = send(
            client()
                .post(emu.token_url())
                .header("content-type", "application/json")
                .body(body),
        )
        .await;
        assert_eq!(r.status, 400, "{body}");
        let r = send(
            client()
                .post(format!("{}/talks/1/comments", emu.api_base()))
                .header("content-type", "application/json")
                .body(body),
        )
        .await;
        assert_eq!(r.status, 401, "{body}");
    }
    let (jm, token) = joinme_with_token();
    let jm_base = jm.base_url();
    for body in ["{", "[]", "{\"meetingName\": [1]}", "\u{0}"] {
        let r = send(
            client()
                .post(format!("{jm_base}/v1/meetings/start"))
                .bearer_auth(&token)
                .body(body),
        )
        .await;
        assert!(r.status == 400 || r.status == 403, "{body}: {}", r.status);
        let r = send(
            client()
                .post(jm.token_url())
                .header("content-type", "application/json")
                .body(body),
        )
        .await;
        assert_eq!(r.status, 400, "{body}");
    }
    let r = send(client().get(format!(
        "{jm_base}/api/public/v1/auth/oauth2?%%%=&client_id=%FF"
    )))
    .await;
    assert_eq!(r.status, 500);
    send(client().get(emu.api_base())).await.expect(200);
    send(
        client()
            .get(format!("{}/user", jm.api_base()))
            .bearer_auth(&token),
    )
    .await
    .expect(200);
}

#[tokio::test]
async fn shutdown_releases_the_port() {
    let emu = joindin();
    let addr = emu.addr();
    send(client().get(emu.api_base())).await.expect(200);
    emu.shutdown();
    assert!(std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(2)).is_err());
    let dropped = JoinMeEmulator::start().expect("starts");
    let addr = dropped.addr();
    drop(dropped);
    assert!(std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(2)).is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn counters_are_exact_under_concurrency() {
    let emu = joindin();
    let http = client();
    let calls = (0..200).map(|_| {
        let request = http.post(emu.token_url()).json(&json!({}));
        async move { request.send().await.map(|r| r.status().as_u16()) }
    });
    let statuses = futures::future::join_all(calls).await;
    assert!(
        statuses.iter().all(|s| matches!(s, Ok(400))),
        "{statuses:?}"
    );
    assert_eq!(emu.count(JoindinEndpoint::Token), 200);
    assert_eq!(emu.counters().status(400), 200);
    assert_eq!(emu.requests().len(), 200);
    let rules = {
        emu.inject(
            FaultRule::on(JoindinEndpoint::Api, Fault::MalformedJson)
                .times(3)
                .after_processing(),
        );
        emu.active_faults()
    };
    let (_, rule) = &rules[0];
    assert_eq!(rule.target(), Some(&JoindinEndpoint::Api));
    assert_eq!(rule.fault(), &Fault::MalformedJson);
    assert_eq!(rule.trigger(), &grantkit_emulator::Trigger::Next(3));
    assert!(rule.is_after_processing());
}
