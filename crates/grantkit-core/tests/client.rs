//! AuthorizedClient against a real HTTP server on loopback that accepts only one token.

mod support;

use axum::Router;
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use grantkit_core::{Error, TokenStore, store::Precondition};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, SystemTime};
use support::*;

const MINUTE: Duration = Duration::from_secs(60);

/// A resource server: `/resource` answers 200 to `Bearer new-access` and RFC 6750 401 to
/// anything else; `/limited` answers 429 with `Retry-After: 0` to its first `n` requests;
/// `/echo` returns the request body.
async fn resource_server(limited_first: usize) -> (String, Arc<AtomicUsize>) {
    let hits = Arc::new(AtomicUsize::new(0));
    let limited = Arc::new(AtomicUsize::new(limited_first));
    let counter = hits.clone();
    let app = Router::new()
        .route(
            "/resource",
            get(move |headers: HeaderMap| {
                let counter = counter.clone();
                async move {
                    counter.fetch_add(1, Ordering::SeqCst);
                    match headers.get("authorization").and_then(|v| v.to_str().ok()) {
                        Some("Bearer new-access") => (StatusCode::OK, "resource").into_response(),
                        _ => (
                            StatusCode::UNAUTHORIZED,
                            [("www-authenticate", "Bearer error=\"invalid_token\"")],
                            "",
                        )
                            .into_response(),
                    }
                }
            }),
        )
        .route(
            "/limited",
            get(move || {
                let limited = limited.clone();
                async move {
                    if limited
                        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                        .is_ok()
                    {
                        (
                            StatusCode::TOO_MANY_REQUESTS,
                            [("retry-after", "0")],
                            "slow down",
                        )
                            .into_response()
                    } else {
                        (StatusCode::OK, "done").into_response()
                    }
                }
            }),
        )
        .route(
            "/echo",
            post(|headers: HeaderMap, body: String| async move {
                match headers.get("authorization").and_then(|v| v.to_str().ok()) {
                    Some("Bearer new-access") => (StatusCode::OK, body).into_response(),
                    _ => StatusCode::UNAUTHORIZED.into_response(),
                }
            }),
        )
        .route("/broken", get(|| async { StatusCode::BAD_GATEWAY }))
        .route(
            "/moved",
            get(|headers: HeaderMap| async move {
                // To the same server under another host name: a redirect across origins,
                // on which reqwest drops the Authorization header.
                let host = headers
                    .get("host")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("");
                let port = host.rsplit(':').next().unwrap_or("");
                (
                    StatusCode::FOUND,
                    [("location", format!("http://localhost:{port}/resource"))],
                )
                    .into_response()
            }),
        )
        .route(
            "/busy",
            get(|| async { (StatusCode::TOO_MANY_REQUESTS, [("retry-after", "120")], "") }),
        )
        .route(
            "/missing",
            get(|| async { (StatusCode::NOT_FOUND, "no such thing") }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (base, hits)
}

fn refreshing_provider() -> Arc<Wrapped> {
    let mut mock = mock_provider();
    let later = SystemTime::now() + 600 * MINUTE;
    mock.expect_refresh()
        .times(1)
        .returning(move |_| Ok(tokens("new-access", Some("rt-2"), later)));
    Arc::new(Wrapped::new(mock))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_thousand_requests_rejected_together_cause_one_refresh_and_are_replayed() {
    let (base, hits) = resource_server(0).await;
    let provider = refreshing_provider();
    let fx = fixture(provider.clone());
    // Valid by its expiry, but the server no longer accepts it.
    fx.seed(&tokens("old-access", Some("rt-1"), fx.now() + 600 * MINUTE))
        .await;
    let http = reqwest::Client::new();
    let client = fx.manager.authorized_client(http, key());

    let barrier = Arc::new(tokio::sync::Barrier::new(1_000));
    let mut requests = Vec::new();
    for _ in 0..1_000 {
        let client = client.clone();
        let barrier = barrier.clone();
        let url = format!("{base}/resource");
        requests.push(tokio::spawn(async move {
            barrier.wait().await;
            let response = client.send(client.http().get(url)).await?;
            Ok::<_, Error>((response.status(), response.text().await.unwrap()))
        }));
    }
    for request in requests {
        let (status, body) = request.await.unwrap().expect("replayed after the refresh");
        assert_eq!(status, 200);
        assert_eq!(body, "resource");
    }
    assert_eq!(provider.refresh_count(), 1);
    assert!(hits.load(Ordering::SeqCst) >= 1_000);
    let stored = fx.store.get(&key()).await.unwrap().unwrap();
    assert_eq!(stored.value.access_token.expose_secret(), "new-access");
}

#[tokio::test]
async fn a_request_with_a_body_is_replayed_with_its_body() {
    let (base, _) = resource_server(0).await;
    let fx = fixture(refreshing_provider());
    fx.seed(&tokens("old-access", Some("rt-1"), fx.now() + 600 * MINUTE))
        .await;
    let client = fx.manager.authorized_client(reqwest::Client::new(), key());
    let response = client
        .send(client.http().post(format!("{base}/echo")).body("payload"))
        .await
        .unwrap();
    assert_eq!(response.text().await.unwrap(), "payload");
}

#[tokio::test]
async fn retry_after_is_honoured_up_to_the_bound() {
    let (base, _) = resource_server(2).await;
    let mut mock = mock_provider();
    mock.expect_refresh().never();
    let fx = fixture(Arc::new(mock));
    fx.seed(&tokens("new-access", Some("rt-1"), fx.now() + 600 * MINUTE))
        .await;
    let client = fx.manager.authorized_client(reqwest::Client::new(), key());
    let response = client
        .send(client.http().get(format!("{base}/limited")))
        .await
        .unwrap();
    assert_eq!(response.text().await.unwrap(), "done");

    // A server asking for longer than the bound is not waited for.
    let err = client
        .send(client.http().get(format!("{base}/busy")))
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::RateLimited { retry_after: Some(d) } if d == Duration::from_secs(120)),
        "{err}"
    );
    assert!(err.is_retryable());
}

#[tokio::test]
async fn provider_failures_and_permanent_refusals_are_reported() {
    let (base, _) = resource_server(0).await;
    let mut mock = mock_provider();
    mock.expect_refresh().never();
    let fx = fixture(Arc::new(mock));
    fx.seed(&tokens("new-access", Some("rt-1"), fx.now() + 600 * MINUTE))
        .await;
    // Retries off: the point is the error a 502 becomes once retries are spent.
    let client = fx
        .manager
        .authorized_client(reqwest::Client::new(), key())
        .with_retry(grantkit_core::RetryPolicy::none());
    let err = client
        .send(client.http().get(format!("{base}/broken")))
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::Unavailable { status: 502, .. }),
        "{err}"
    );
    assert!(err.is_retryable());
    // Every answer but a success is an error: a refusal is `Api` with its status.
    let err = client
        .send(client.http().get(format!("{base}/missing")))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Api { status: 404, .. }), "{err}");
    assert!(!err.is_retryable());
}

#[tokio::test]
async fn tokens_never_travel_over_plain_http_to_other_hosts() {
    let fx = fixture(Arc::new(mock_provider()));
    fx.seed(&tokens("new-access", Some("rt-1"), fx.now() + 600 * MINUTE))
        .await;
    let client = fx.manager.authorized_client(reqwest::Client::new(), key());
    let err = client
        .send(client.http().get("http://example.com/resource"))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Configuration { .. }), "{err}");
}

#[tokio::test]
async fn an_oversized_body_the_provider_must_read_is_a_bad_response() {
    let (base, _) = resource_server(0).await;
    let mut mock = mock_provider_with(
        grantkit_core::provider::Capabilities::default().with_success_bodies_read(true),
    );
    mock.expect_refresh().never();
    let fx = fixture(Arc::new(mock));
    fx.store
        .put(
            &key(),
            &tokens("new-access", None, fx.now() + 600 * MINUTE),
            Precondition::Any,
        )
        .await
        .unwrap();
    let client = fx
        .manager
        .authorized_client(reqwest::Client::new(), key())
        .with_max_read(4);
    let err = client
        .send(client.http().get(format!("{base}/resource")))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::BadResponse { .. }), "{err}");
}

#[tokio::test]
async fn a_refusal_after_a_redirect_to_another_host_keeps_the_token() {
    let (base, _) = resource_server(0).await;
    let mut mock = mock_provider();
    mock.expect_refresh().never();
    let fx = fixture(Arc::new(mock));
    fx.seed(&tokens("new-access", Some("rt-1"), fx.now() + 600 * MINUTE))
        .await;
    let client = fx.manager.authorized_client(reqwest::Client::new(), key());
    let err = client
        .send(client.http().get(format!("{base}/moved")))
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::Api { status: 401, .. }),
        "a refusal that says nothing about the token: {err}"
    );
    let stored = fx.store.get(&key()).await.unwrap().unwrap();
    assert_eq!(stored.value.access_token.expose_secret(), "new-access");
}
