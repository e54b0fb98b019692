//! `AuthorizedClient` streams: a 100 MiB success body reaches the caller chunk by chunk and
//! is never held whole. Its own test binary, so the peak memory measured is this test's.

mod support;

use axum::Router;
use axum::body::Body;
use axum::routing::get;
use futures::stream;
use std::sync::Arc;
use std::time::Duration;
use support::*;

const CHUNK: usize = 64 * 1024;
const TOTAL: usize = 100 * 1024 * 1024;
const MAX_RSS: u64 = 50 * 1024 * 1024;

/// The process's peak resident set (`VmHWM`), in bytes.
fn peak_rss() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("Linux /proc");
    let kib: u64 = status
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("a VmHWM line");
    kib * 1024
}

#[tokio::test]
async fn a_100_mib_answer_streams_chunk_by_chunk_in_little_memory() {
    // A server that makes the body as it sends it, 64 KiB at a time.
    let app = Router::new().route(
        "/big",
        get(|| async {
            let chunks = stream::iter(
                (0..TOTAL / CHUNK).map(|_| Ok::<_, std::io::Error>(vec![b'x'; CHUNK])),
            );
            Body::from_stream(chunks)
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

    let mut mock = mock_provider();
    mock.expect_refresh().never();
    let fx = fixture(Arc::new(mock));
    fx.seed(&tokens(
        "access",
        Some("rt"),
        fx.now() + Duration::from_secs(3600),
    ))
    .await;
    let client = fx.manager.authorized_client(reqwest::Client::new(), key());

    let before = peak_rss();
    let mut response = client
        .send(client.http().get(format!("{base}/big")))
        .await
        .expect("a success streams to the caller");
    let (mut read, mut chunks) = (0, 0);
    while let Some(chunk) = response.chunk().await.unwrap() {
        read += chunk.len();
        chunks += 1;
    }
    let peak = peak_rss();
    eprintln!("peak resident memory: {} MiB", peak >> 20);
    assert_eq!(read, TOTAL, "every byte arrived");
    assert!(
        chunks >= 100,
        "read in pieces, not at once ({chunks} chunks)"
    );
    assert!(
        peak < MAX_RSS,
        "the process peaked at {} MiB (was {} MiB before the request)",
        peak >> 20,
        before >> 20
    );
}
