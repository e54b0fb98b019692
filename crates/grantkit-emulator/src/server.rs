//! The HTTP server both emulators run on: its own thread and runtime, hyper HTTP/1.1,
//! a capped request body, fault injection, counters, the request log, and shutdown.
//!
//! The server runs on a dedicated thread so that an emulator works from synchronous tests,
//! from any async runtime, and under a paused tokio clock in the test's own runtime.

use std::fmt;
use std::hash::Hash;
use std::io;
use std::net::{SocketAddr, TcpListener as StdTcpListener};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use std::thread::JoinHandle;
use std::time::Duration;

use axum::body::Body;
use bytes::Bytes;
use http::{HeaderMap, Method, Request};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::clock::EmulatorClock;
use crate::faults::{Fault, FaultKind, FaultPlan};
use crate::telemetry::{RequestRecord, Telemetry};
use crate::wire::{HttpResponse, MAX_REQUEST_BODY, respond};

/// A request after its body has been read.
#[derive(Debug)]
pub(crate) struct AppRequest {
    pub(crate) method: Method,
    /// Path as received (still percent-encoded).
    pub(crate) path: String,
    /// Raw query string, without `?`.
    pub(crate) query: Option<String>,
    pub(crate) headers: HeaderMap,
    pub(crate) body: Bytes,
}

/// What every emulator shares with the server: counters, log, faults and clock.
#[derive(Debug)]
pub(crate) struct ServerShared<E: Eq + Hash> {
    pub(crate) telemetry: Telemetry<E>,
    pub(crate) faults: FaultPlan<E>,
    pub(crate) clock: EmulatorClock,
}

impl<E: Copy + Eq + Hash + fmt::Debug> ServerShared<E> {
    pub(crate) fn new(clock: EmulatorClock) -> Self {
        Self {
            telemetry: Telemetry::new(),
            faults: FaultPlan::new(),
            clock,
        }
    }
}

/// One emulated provider.
pub(crate) trait App: Send + Sync + 'static {
    /// The provider's endpoint classes, used for counters, the log and fault targeting.
    type Endpoint: Copy + Eq + Hash + fmt::Debug + Send + Sync + 'static;

    /// Provider name for logs.
    const PROVIDER: &'static str;

    /// Classifies a request before anything else happens.
    fn classify(&self, method: &Method, path: &str) -> Self::Endpoint;

    /// Answers a request.
    fn handle(&self, request: &AppRequest) -> HttpResponse;

    /// Renders a status-type fault (everything but latency and connection reset) the way
    /// this provider's endpoint would send it.
    fn fault_response(&self, endpoint: Self::Endpoint, fault: &Fault) -> HttpResponse;

    /// Counters, faults and clock.
    fn shared(&self) -> &ServerShared<Self::Endpoint>;
}

/// A running server; shut down on [`shutdown`](Self::shutdown) or drop.
#[derive(Debug)]
pub(crate) struct ServerHandle {
    addr: SocketAddr,
    stop: Option<watch::Sender<bool>>,
    thread: Option<JoinHandle<()>>,
}

impl ServerHandle {
    pub(crate) fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops accepting, drops every open connection, and waits for the server thread.
    pub(crate) fn shutdown(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(true);
        }
        if let Some(thread) = self.thread.take() {
            // The thread only runs the server; a panic there has already been reported.
            let _ = thread.join();
        }
    }
}

impl Drop for ServerHandle {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// Binds `addr` (port 0 picks a free port) for [`spawn`].
pub(crate) fn bind(addr: SocketAddr) -> io::Result<StdTcpListener> {
    let listener = StdTcpListener::bind(addr)?;
    listener.set_nonblocking(true)?;
    Ok(listener)
}

/// Serves `app` on `listener` from a new thread until the handle is shut down.
pub(crate) fn spawn<A: App>(app: Arc<A>, listener: StdTcpListener) -> io::Result<ServerHandle> {
    let local = listener.local_addr()?;
    let (stop_tx, stop_rx) = watch::channel(false);
    let (ready_tx, ready_rx) = std::sync::mpsc::channel::<io::Result<()>>();
    let thread = std::thread::Builder::new()
        .name(format!("{}-emulator", A::PROVIDER))
        .spawn(move || {
            let runtime = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(rt) => rt,
                Err(e) => {
                    let _ = ready_tx.send(Err(e));
                    return;
                }
            };
            runtime.block_on(accept_loop(app, listener, stop_rx, ready_tx));
        })?;
    match ready_rx.recv() {
        Ok(Ok(())) => Ok(ServerHandle {
            addr: local,
            stop: Some(stop_tx),
            thread: Some(thread),
        }),
        Ok(Err(e)) => {
            let _ = thread.join();
            Err(e)
        }
        Err(_) => {
            let _ = thread.join();
            Err(io::Error::other(
                "emulator thread ended before it was ready",
            ))
        }
    }
}

async fn accept_loop<A: App>(
    app: Arc<A>,
    listener: StdTcpListener,
    mut stop: watch::Receiver<bool>,
    ready: std::sync::mpsc::Sender<io::Result<()>>,
) {
    let listener = match TcpListener::from_std(listener) {
        Ok(l) => l,
        Err(e) => {
            let _ = ready.send(Err(e));
            return;
        }
    };
    let _ = ready.send(Ok(()));
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            _ = stop.changed() => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    connections.spawn(serve_connection(app.clone(), stream));
                }
                Err(e) => {
                    // Out of descriptors and the like: back off instead of spinning.
                    tracing::warn!(provider = A::PROVIDER, error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
    connections.abort_all();
    while connections.join_next().await.is_some() {}
}

async fn serve_connection<A: App>(app: Arc<A>, stream: TcpStream) {
    let _ = stream.set_nodelay(true);
    let reset = Arc::new(AtomicBool::new(false));
    let io = TokioIo::new(ResettableStream {
        inner: stream,
        reset: reset.clone(),
    });
    let service = service_fn(move |request| {
        let app = app.clone();
        let reset = reset.clone();
        async move { handle(app, request, reset).await }
    });
    let result = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(Duration::from_secs(30))
        .keep_alive(true)
        .serve_connection(io, service)
        .await;
    if let Err(e) = result {
        tracing::debug!(provider = A::PROVIDER, error = %e, "connection ended with an error");
    }
}

/// The service error that makes hyper drop the connection without answering.
#[derive(Debug)]
struct ResetByFault;

impl fmt::Display for ResetByFault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("connection reset by fault injection")
    }
}

impl std::error::Error for ResetByFault {}

async fn handle<A: App>(
    app: Arc<A>,
    request: Request<Incoming>,
    reset: Arc<AtomicBool>,
) -> Result<HttpResponse, ResetByFault> {
    let (parts, body) = request.into_parts();
    let method = parts.method;
    let path = parts.uri.path().to_owned();
    let endpoint = app.classify(&method, &path);
    let shared = app.shared();
    let seq = shared.telemetry.arrived(endpoint);
    let decision = shared.faults.decide(endpoint, &method);
    if !decision.latency.is_zero() {
        tokio::time::sleep(decision.latency).await;
    }
    let latency_kind = (!decision.latency.is_zero()).then_some(FaultKind::Latency);
    let record = |status: Option<u16>, fault: Option<FaultKind>| {
        shared.telemetry.answered(RequestRecord {
            seq,
            endpoint,
            method: method.as_str().to_owned(),
            path: path.clone(),
            status,
            fault,
            at: shared.clock.now(),
        });
        tracing::info!(
            provider = A::PROVIDER,
            method = %method,
            path = %path,
            status = status.map_or_else(|| "reset".to_owned(), |s| s.to_string()),
            fault = ?fault,
            "request"
        );
    };

    let (pre_fault, post_fault) = match decision.fault {
        Some(f) if decision.after_processing => (None, Some(f)),
        Some(f) => (Some(f), None),
        None => (None, None),
    };
    if let Some(fault) = pre_fault {
        return apply_fault(&*app, endpoint, &fault, &reset, |status| {
            record(status, Some(fault.kind()))
        });
    }

    let Some(body) = read_capped(body).await else {
        let response = respond(
            413,
            Some("text/plain; charset=utf-8"),
            &[("connection", "close".to_owned())],
            "request body too large\n",
        );
        record(Some(413), latency_kind);
        return Ok(response);
    };
    let app_request = AppRequest {
        method: method.clone(),
        path: path.clone(),
        query: parts.uri.query().map(str::to_owned),
        headers: parts.headers,
        body,
    };
    let response = app.handle(&app_request);
    if let Some(fault) = post_fault {
        drop(response);
        return apply_fault(&*app, endpoint, &fault, &reset, |status| {
            record(status, Some(fault.kind()))
        });
    }
    record(Some(response.status().as_u16()), latency_kind);
    Ok(response)
}

/// How much of an oversized body is read and thrown away before answering 413, so that
/// the client has finished sending and reads the answer instead of a reset.
const DRAIN_LIMIT: usize = 64 * 1024 * 1024;

/// Reads the body up to [`MAX_REQUEST_BODY`]; `None` when it is larger (or unreadable).
async fn read_capped(body: Incoming) -> Option<Bytes> {
    use futures::StreamExt as _;
    let mut stream = Body::new(body).into_data_stream();
    let mut buffer = bytes::BytesMut::new();
    let mut seen = 0usize;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.ok()?;
        seen = seen.saturating_add(chunk.len());
        if seen > DRAIN_LIMIT {
            return None;
        }
        if seen <= MAX_REQUEST_BODY {
            buffer.extend_from_slice(&chunk);
        }
    }
    (seen <= MAX_REQUEST_BODY).then(|| buffer.freeze())
}

fn apply_fault<A: App>(
    app: &A,
    endpoint: A::Endpoint,
    fault: &Fault,
    reset: &AtomicBool,
    record: impl FnOnce(Option<u16>),
) -> Result<HttpResponse, ResetByFault> {
    if matches!(fault, Fault::ConnectionReset) {
        reset.store(true, Ordering::SeqCst);
        record(None);
        return Err(ResetByFault);
    }
    let response = app.fault_response(endpoint, fault);
    record(Some(response.status().as_u16()));
    Ok(response)
}

/// A TCP stream that closes with RST instead of FIN once a fault asks for a reset.
#[derive(Debug)]
struct ResettableStream {
    inner: TcpStream,
    reset: Arc<AtomicBool>,
}

impl Drop for ResettableStream {
    fn drop(&mut self) {
        if self.reset.load(Ordering::SeqCst) {
            // A zero linger makes close() send RST: the client sees a reset, not an EOF.
            let _ = self.inner.set_zero_linger();
        }
    }
}

impl AsyncRead for ResettableStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for ResettableStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}
