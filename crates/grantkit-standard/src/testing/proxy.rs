//! `FaultProxy`: a small HTTP/1.1 proxy in front of the test server that counts token
//! requests, records how clients authenticate, injects faults, and can pair two token
//! requests to replay a race deterministically.
//!
//! `oidc-provider` has no fault injection of its own, so faults are made here: a faulted
//! request never reaches the server, and the proxy answers in its place. Each connection
//! carries one request (`Connection: close` both ways), which keeps the proxy to a few
//! hundred lines: requests must have a `Content-Length` body or none, as every client here
//! sends them.

use grantkit_conformance::ServerFault;
use grantkit_core::AccessToken;
use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::Duration;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, OwnedMutexGuard};

/// The token endpoint's path at the test server (oidc-provider's default route).
pub const TOKEN_PATH: &str = "/token";
/// The API paths: the userinfo endpoint and the launcher's protected resource.
pub const API_PATHS: [&str; 2] = ["/me", "/grantkit/resource"];
/// The revocation endpoint's path at the test server (RFC 7009).
pub const REVOCATION_PATH: &str = "/token/revocation";

const MAX_HEAD: usize = 64 * 1024;
const MAX_BODY: usize = 1024 * 1024;
/// How long one forwarded exchange may take before the proxy gives up on it.
const RELAY_TIMEOUT: Duration = Duration::from_secs(60);
/// What the oversized-body fault announces and sends.
const OVERSIZED: usize = 10 * 1024 * 1024;

/// Which kind of server endpoint a request is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Route {
    /// The token endpoint.
    Token,
    /// The userinfo endpoint or the protected resource.
    Api,
    /// The revocation endpoint.
    Revocation,
    /// Anything else (discovery, authorization, introspection, control).
    Other,
}

impl Route {
    fn of(path: &str) -> Self {
        if path == TOKEN_PATH {
            Self::Token
        } else if API_PATHS.contains(&path) {
            Self::Api
        } else if path == REVOCATION_PATH {
            Self::Revocation
        } else {
            Self::Other
        }
    }
}

/// What the proxy saw of one token request. Nothing secret: whether a secret was sent, not
/// the secret.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TokenRequest {
    /// The `grant_type` form parameter.
    pub grant_type: Option<String>,
    /// The request carried `Authorization: Basic`.
    pub basic_auth: bool,
    /// The form body carried a `client_secret`.
    pub secret_in_body: bool,
}

/// What the proxy answers in the server's place.
#[derive(Clone, Debug)]
enum Reply {
    /// One of the suite's faults.
    Fault(ServerFault),
    /// A whole answer given by the test.
    Canned(CannedAnswer),
}

/// An answer the proxy gives in the server's place, as the test wrote it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CannedAnswer {
    /// The status, e.g. 429.
    pub status: u16,
    /// Headers besides `Content-Length` and `Connection`.
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: String,
}

impl CannedAnswer {
    /// An answer with a JSON body.
    pub fn json(status: u16, body: impl Into<String>) -> Self {
        Self {
            status,
            headers: vec![("Content-Type".to_owned(), "application/json".to_owned())],
            body: body.into(),
        }
    }

    /// Adds a header.
    pub fn with_header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }
}

/// A reply armed for the next requests of a route.
#[derive(Debug)]
struct ArmedFault {
    route: Route,
    reply: Reply,
    remaining: u32,
}

/// Two token requests to be paired: the first waits for the second, then they go to the
/// server one after the other.
#[derive(Debug)]
struct Pairing {
    wait: Duration,
    arrived: usize,
    second: Arc<Notify>,
    sequence: Arc<tokio::sync::Mutex<()>>,
}

#[derive(Debug)]
struct State {
    upstream: OnceLock<SocketAddr>,
    slow_delay: Duration,
    token_requests: AtomicU64,
    token_log: Mutex<Vec<TokenRequest>>,
    faults: Mutex<VecDeque<ArmedFault>>,
    hidden_paths: Mutex<Vec<String>>,
    pairing: Mutex<Option<Pairing>>,
    /// Requests per path, all routes.
    path_counts: Mutex<HashMap<String, u64>>,
    /// The access token the next refresh answer carries instead of the server's.
    reissue: Mutex<Option<String>>,
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A fault-injecting HTTP proxy on a loopback port. Dropping it stops it.
#[derive(Debug)]
pub struct FaultProxy {
    addr: SocketAddr,
    state: Arc<State>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl FaultProxy {
    /// Serves `listener`; requests are answered 502 until [`set_upstream`](Self::set_upstream)
    /// names the server. The slow fault holds a request for `slow_delay` and then drops it
    /// unanswered: choose it longer than the client's timeout.
    pub fn start(listener: TcpListener, slow_delay: Duration) -> std::io::Result<Self> {
        let addr = listener.local_addr()?;
        let state = Arc::new(State {
            upstream: OnceLock::new(),
            slow_delay,
            token_requests: AtomicU64::new(0),
            token_log: Mutex::new(Vec::new()),
            faults: Mutex::new(VecDeque::new()),
            hidden_paths: Mutex::new(Vec::new()),
            pairing: Mutex::new(None),
            path_counts: Mutex::new(HashMap::new()),
            reissue: Mutex::new(None),
        });
        let serving = state.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    // Out of file descriptors, say: wait instead of spinning.
                    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                    continue;
                };
                let state = serving.clone();
                tokio::spawn(async move {
                    // A failed exchange only closes that connection.
                    let _ = serve(stream, state).await;
                });
            }
        });
        Ok(Self { addr, state, task })
    }

    /// Sets the server requests go to; once.
    pub fn set_upstream(&self, upstream: SocketAddr) {
        let _ = self.state.upstream.set(upstream);
    }

    /// The proxy's address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// How many requests reached the token endpoint's path, faulted ones included.
    pub fn token_requests(&self) -> u64 {
        self.state.token_requests.load(Ordering::SeqCst)
    }

    /// What the proxy saw of each token request, in order.
    pub fn token_log(&self) -> Vec<TokenRequest> {
        lock(&self.state.token_log).clone()
    }

    /// Answers the next `count` requests of `route` with `fault` instead of forwarding them.
    pub fn inject(&self, route: Route, fault: ServerFault, count: u32) {
        lock(&self.state.faults).push_back(ArmedFault {
            route,
            reply: Reply::Fault(fault),
            remaining: count,
        });
    }

    /// Answers the next `count` requests of `route` with `answer` instead of forwarding
    /// them.
    pub fn inject_answer(&self, route: Route, answer: CannedAnswer, count: u32) {
        lock(&self.state.faults).push_back(ArmedFault {
            route,
            reply: Reply::Canned(answer),
            remaining: count,
        });
    }

    /// How many requests reached `path` (any route, faulted ones included).
    pub fn requests_to(&self, path: &str) -> u64 {
        lock(&self.state.path_counts)
            .get(path)
            .copied()
            .unwrap_or(0)
    }

    /// The next refresh reaches the server as usual, but its answer carries `access_token`
    /// instead of the new one: what a server does that re-issues the same access token
    /// (identical tokens signed within one second, or the still-valid token returned).
    pub fn reissue_on_next_refresh(&self, access_token: &AccessToken) {
        *lock(&self.state.reissue) = Some(access_token.expose_secret().to_owned());
    }

    /// Removes every armed fault.
    pub fn clear_faults(&self) {
        lock(&self.state.faults).clear();
    }

    /// Answers 404 for `path` from now on, as a server without that endpoint would.
    pub fn hide_path(&self, path: impl Into<String>) {
        lock(&self.state.hidden_paths).push(path.into());
    }

    /// Pairs the next two token requests: the first is held until the second arrives (or
    /// `wait` passes), then they reach the server one after the other, the second once the
    /// first has been answered. Two clients racing with one refresh token then meet the
    /// server's reuse detection every time, instead of when the timing happens to allow.
    pub fn pair_next_token_requests(&self, wait: Duration) {
        *lock(&self.state.pairing) = Some(Pairing {
            wait,
            arrived: 0,
            second: Arc::new(Notify::new()),
            sequence: Arc::new(tokio::sync::Mutex::new(())),
        });
    }
}

/// A request as read from the client.
struct Request {
    path: String,
    /// The request line and headers, `Connection` headers left out.
    head: Vec<String>,
    basic_auth: bool,
    body: Vec<u8>,
}

async fn serve(mut client: TcpStream, state: Arc<State>) -> std::io::Result<()> {
    let Some(request) = read_request(&mut client).await? else {
        return Ok(());
    };
    let route = Route::of(&request.path);
    *lock(&state.path_counts)
        .entry(request.path.clone())
        .or_default() += 1;
    if lock(&state.hidden_paths).contains(&request.path) {
        return respond(&mut client, "404 Not Found", "text/plain", b"not found\n").await;
    }
    if route == Route::Token {
        record(&state, &request);
    }
    match take_fault(&state, route) {
        Some(Reply::Fault(fault)) => return answer_fault(client, fault, state.slow_delay).await,
        Some(Reply::Canned(answer)) => return answer_canned(&mut client, &answer).await,
        None => {}
    }
    let turn = match route {
        Route::Token => take_turn(&state).await,
        _ => None,
    };
    let reissue =
        if route == Route::Token && grant_type(&request).as_deref() == Some("refresh_token") {
            lock(&state.reissue).take()
        } else {
            None
        };
    let upstream = state.upstream.get().copied();
    let relayed = tokio::time::timeout(RELAY_TIMEOUT, async {
        match reissue {
            Some(token) => relay_reissuing(&mut client, &request, upstream, &token).await,
            None => relay(&mut client, &request, upstream).await,
        }
    })
    .await;
    drop(turn);
    match relayed {
        Ok(result) => result,
        Err(_) => Ok(()),
    }
}

/// Counts a token request and notes how the client authenticated.
fn record(state: &State, request: &Request) {
    state.token_requests.fetch_add(1, Ordering::SeqCst);
    lock(&state.token_log).push(TokenRequest {
        grant_type: grant_type(request),
        basic_auth: request.basic_auth,
        secret_in_body: url::form_urlencoded::parse(&request.body)
            .any(|(k, _)| k == "client_secret"),
    });
}

/// The `grant_type` of a form body.
fn grant_type(request: &Request) -> Option<String> {
    url::form_urlencoded::parse(&request.body)
        .find(|(k, _)| k == "grant_type")
        .map(|(_, v)| v.into_owned())
}

/// Waits for this request's turn when a pairing is armed; the guard is its turn.
async fn take_turn(state: &State) -> Option<OwnedMutexGuard<()>> {
    let (first, second, sequence, wait) = {
        let mut pairing = lock(&state.pairing);
        let armed = pairing.as_mut()?;
        armed.arrived += 1;
        let values = (
            armed.arrived == 1,
            armed.second.clone(),
            armed.sequence.clone(),
            armed.wait,
        );
        if armed.arrived >= 2 {
            *pairing = None;
        }
        values
    };
    if first {
        let guard = sequence.lock_owned().await;
        // Alone after `wait`: the pairing is over, whoever comes later passes freely.
        if tokio::time::timeout(wait, second.notified()).await.is_err() {
            lock(&state.pairing).take();
        }
        Some(guard)
    } else {
        // `notify_one` keeps a permit if the first is not waiting yet.
        second.notify_one();
        Some(sequence.lock_owned().await)
    }
}

fn take_fault(state: &State, route: Route) -> Option<Reply> {
    let mut faults = lock(&state.faults);
    let index = faults.iter().position(|f| f.route == route)?;
    let armed = &mut faults[index];
    let fault = armed.reply.clone();
    armed.remaining = armed.remaining.saturating_sub(1);
    if armed.remaining == 0 {
        faults.remove(index);
    }
    Some(fault)
}

/// Reads one request: head and `Content-Length` body. `None` when the client closed first.
async fn read_request(client: &mut TcpStream) -> std::io::Result<Option<Request>> {
    let mut buffer = Vec::with_capacity(4096);
    let head_end = loop {
        if let Some(end) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
            break end;
        }
        if buffer.len() > MAX_HEAD {
            respond(
                client,
                "431 Request Header Fields Too Large",
                "text/plain",
                b"",
            )
            .await?;
            return Ok(None);
        }
        let mut chunk = [0u8; 4096];
        let read = client.read(&mut chunk).await?;
        if read == 0 {
            return Ok(None);
        }
        buffer.extend_from_slice(&chunk[..read]);
    };
    let head_text = String::from_utf8_lossy(&buffer[..head_end]).into_owned();
    let mut lines = head_text.split("\r\n");
    let request_line = lines.next().unwrap_or_default().to_owned();
    let target = request_line.split(' ').nth(1).unwrap_or_default();
    let path = target.split('?').next().unwrap_or_default().to_owned();

    let mut head = vec![request_line.clone()];
    let mut length = 0usize;
    let mut basic_auth = false;
    for line in lines {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let name = name.trim().to_ascii_lowercase();
        let value = value.trim();
        match name.as_str() {
            "content-length" => length = value.parse().unwrap_or(0),
            "transfer-encoding" => {
                respond(
                    client,
                    "501 Not Implemented",
                    "text/plain",
                    b"chunked bodies are not supported\n",
                )
                .await?;
                return Ok(None);
            }
            // Hop-by-hop: the proxy sets its own.
            "connection" | "keep-alive" | "proxy-connection" => continue,
            "authorization" => {
                basic_auth = value.len() > 6 && value[..6].eq_ignore_ascii_case("basic ")
            }
            _ => {}
        }
        head.push(line.to_owned());
    }
    if length > MAX_BODY {
        respond(client, "413 Content Too Large", "text/plain", b"").await?;
        return Ok(None);
    }
    let mut body = buffer[head_end + 4..].to_vec();
    while body.len() < length {
        let mut chunk = vec![0u8; (length - body.len()).min(64 * 1024)];
        let read = client.read(&mut chunk).await?;
        if read == 0 {
            return Ok(None);
        }
        body.extend_from_slice(&chunk[..read]);
    }
    body.truncate(length);
    Ok(Some(Request {
        path,
        head,
        basic_auth,
        body,
    }))
}

/// Forwards the request with `Connection: close` and copies the answer back until the
/// server closes.
async fn relay(
    client: &mut TcpStream,
    request: &Request,
    upstream: Option<SocketAddr>,
) -> std::io::Result<()> {
    let connected = match upstream {
        Some(upstream) => TcpStream::connect(upstream).await.ok(),
        None => None,
    };
    let mut server = match connected {
        Some(server) => server,
        None => {
            return respond(
                client,
                "502 Bad Gateway",
                "text/plain",
                b"the test server is not reachable\n",
            )
            .await;
        }
    };
    let mut head = request.head.join("\r\n");
    head.push_str("\r\nConnection: close\r\n\r\n");
    server.write_all(head.as_bytes()).await?;
    server.write_all(&request.body).await?;
    server.flush().await?;
    tokio::io::copy(&mut server, client).await?;
    client.shutdown().await
}

/// Forwards a refresh like [`relay`], but reads the server's whole answer and hands the
/// client the same answer with `access_token` in place of the server's new access token.
async fn relay_reissuing(
    client: &mut TcpStream,
    request: &Request,
    upstream: Option<SocketAddr>,
    access_token: &str,
) -> std::io::Result<()> {
    let Some(mut server) = connect(upstream).await else {
        return respond(client, "502 Bad Gateway", "text/plain", b"unreachable\n").await;
    };
    let mut head = request.head.join("\r\n");
    head.push_str("\r\nConnection: close\r\n\r\n");
    server.write_all(head.as_bytes()).await?;
    server.write_all(&request.body).await?;
    let mut answer = Vec::new();
    server.read_to_end(&mut answer).await?;
    let mut headers = [httparse::EMPTY_HEADER; 64];
    let mut parsed = httparse::Response::new(&mut headers);
    let Ok(httparse::Status::Complete(head_len)) = parsed.parse(&answer) else {
        return respond(
            client,
            "502 Bad Gateway",
            "text/plain",
            b"unreadable answer\n",
        )
        .await;
    };
    let status = parsed.code.unwrap_or(502);
    let mut body: serde_json::Value = match serde_json::from_slice(&answer[head_len..]) {
        Ok(body) => body,
        // Not a token answer (an error page, chunked): passed on untouched.
        Err(_) => {
            client.write_all(&answer).await?;
            return client.shutdown().await;
        }
    };
    if let Some(token) = body.get_mut("access_token") {
        *token = serde_json::Value::String(access_token.to_owned());
    }
    let body = body.to_string();
    answer_canned(
        client,
        &CannedAnswer::json(status, body).with_header("Cache-Control", "no-store"),
    )
    .await
}

async fn connect(upstream: Option<SocketAddr>) -> Option<TcpStream> {
    TcpStream::connect(upstream?).await.ok()
}

/// Writes a canned answer.
async fn answer_canned(client: &mut TcpStream, answer: &CannedAnswer) -> std::io::Result<()> {
    let reason = http::StatusCode::from_u16(answer.status)
        .ok()
        .and_then(|status| status.canonical_reason())
        .unwrap_or("Status");
    let mut head = format!("HTTP/1.1 {} {reason}\r\n", answer.status);
    for (name, value) in &answer.headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str(&format!(
        "Content-Length: {}\r\nConnection: close\r\n\r\n",
        answer.body.len()
    ));
    client.write_all(head.as_bytes()).await?;
    client.write_all(answer.body.as_bytes()).await?;
    client.shutdown().await
}

async fn respond(
    client: &mut TcpStream,
    status: &str,
    content_type: &str,
    body: &[u8],
) -> std::io::Result<()> {
    let head = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    client.write_all(head.as_bytes()).await?;
    client.write_all(body).await?;
    client.shutdown().await
}

/// Answers in the server's place with `fault`.
async fn answer_fault(
    mut client: TcpStream,
    fault: ServerFault,
    slow_delay: Duration,
) -> std::io::Result<()> {
    match fault {
        ServerFault::ServerErrorHtml => {
            respond(
                &mut client,
                "503 Service Unavailable",
                "text/html",
                b"<html><body><h1>503 Service Unavailable</h1></body></html>",
            )
            .await
        }
        ServerFault::MalformedJson => {
            respond(
                &mut client,
                "200 OK",
                "application/json",
                b"{\"access_token\" \"broken\",",
            )
            .await
        }
        ServerFault::Truncated => {
            let head = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 200\r\nConnection: close\r\n\r\n";
            client.write_all(head.as_bytes()).await?;
            client.write_all(b"{\"access_token\":\"cut-sh").await?;
            client.shutdown().await
        }
        ServerFault::Oversized => {
            let head = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {OVERSIZED}\r\nConnection: close\r\n\r\n"
            );
            client.write_all(head.as_bytes()).await?;
            let chunk = vec![b' '; 64 * 1024];
            let mut sent = 0;
            // The client stops reading at its cap and closes: a write error ends this.
            while sent < OVERSIZED {
                client.write_all(&chunk).await?;
                sent += chunk.len();
            }
            client.shutdown().await
        }
        ServerFault::Slow => {
            // Longer than the client's timeout, then no answer at all.
            tokio::time::sleep(slow_delay).await;
            client.set_zero_linger()?;
            Ok(())
        }
        ServerFault::Reset => {
            client.set_zero_linger()?;
            Ok(())
        }
        ServerFault::RateLimited => {
            let body = b"Too Many Requests\n";
            let head = format!(
                "HTTP/1.1 429 Too Many Requests\r\nContent-Type: text/plain\r\nRetry-After: 1\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            );
            client.write_all(head.as_bytes()).await?;
            client.write_all(body).await?;
            client.shutdown().await
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

    /// A stand-in server that answers every request `200 {"ok":true}` after `delay`, and
    /// notes how many it served at once at most.
    async fn upstream(delay: Duration) -> (SocketAddr, Arc<AtomicUsize>, Arc<AtomicUsize>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (now, peak) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
        let (active, most) = (now.clone(), peak.clone());
        tokio::spawn(async move {
            loop {
                let (mut stream, _) = listener.accept().await.unwrap();
                let (active, most) = (active.clone(), most.clone());
                tokio::spawn(async move {
                    let mut head = Vec::new();
                    let mut byte = [0u8; 1];
                    while !head.ends_with(b"\r\n\r\n") {
                        if stream.read(&mut byte).await.unwrap_or(0) == 0 {
                            return;
                        }
                        head.push(byte[0]);
                    }
                    assert!(String::from_utf8_lossy(&head).contains("Connection: close"));
                    let at_once = active.fetch_add(1, Ordering::SeqCst) + 1;
                    most.fetch_max(at_once, Ordering::SeqCst);
                    tokio::time::sleep(delay).await;
                    active.fetch_sub(1, Ordering::SeqCst);
                    let _ = stream
                        .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 11\r\nConnection: close\r\n\r\n{\"ok\":true}")
                        .await;
                });
            }
        });
        (addr, now, peak)
    }

    async fn proxy(upstream: SocketAddr) -> FaultProxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let proxy = FaultProxy::start(listener, Duration::from_millis(200)).unwrap();
        proxy.set_upstream(upstream);
        proxy
    }

    fn client() -> reqwest::Client {
        reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()
            .unwrap()
    }

    async fn post_token(proxy: &FaultProxy) -> reqwest::Result<reqwest::Response> {
        client()
            .post(format!("http://{}{TOKEN_PATH}", proxy.addr()))
            .header("authorization", "Basic abc")
            .body("grant_type=refresh_token&refresh_token=r")
            .send()
            .await
    }

    #[tokio::test]
    async fn requests_are_forwarded_counted_and_recorded() {
        let (upstream, _, _) = upstream(Duration::ZERO).await;
        let proxy = proxy(upstream).await;
        let response = post_token(&proxy).await.unwrap();
        assert_eq!(response.status(), 200);
        assert_eq!(response.text().await.unwrap(), "{\"ok\":true}");
        let api = client()
            .get(format!("http://{}/me", proxy.addr()))
            .send()
            .await
            .unwrap();
        assert_eq!(api.status(), 200);
        assert_eq!(proxy.token_requests(), 1, "only the token path counts");
        assert_eq!(
            proxy.token_log(),
            [TokenRequest {
                grant_type: Some("refresh_token".into()),
                basic_auth: true,
                secret_in_body: false,
            }]
        );
        proxy.hide_path("/me");
        let hidden = client()
            .get(format!("http://{}/me", proxy.addr()))
            .send()
            .await
            .unwrap();
        assert_eq!(hidden.status(), 404);
    }

    #[tokio::test]
    async fn faults_answer_in_the_servers_place_and_run_out() {
        let (upstream, _, _) = upstream(Duration::ZERO).await;
        let proxy = proxy(upstream).await;
        proxy.inject(Route::Token, ServerFault::ServerErrorHtml, 2);
        proxy.inject(Route::Api, ServerFault::RateLimited, 1);
        for _ in 0..2 {
            assert_eq!(post_token(&proxy).await.unwrap().status(), 503);
        }
        assert_eq!(post_token(&proxy).await.unwrap().status(), 200, "used up");
        let limited = client()
            .get(format!("http://{}/me", proxy.addr()))
            .send()
            .await
            .unwrap();
        assert_eq!(limited.status(), 429);
        assert_eq!(limited.headers()["retry-after"], "1");

        for fault in [
            ServerFault::Truncated,
            ServerFault::Reset,
            ServerFault::Slow,
        ] {
            proxy.inject(Route::Token, fault, 1);
            let outcome = match post_token(&proxy).await {
                Ok(response) => response.bytes().await.map(|_| ()),
                Err(err) => Err(err),
            };
            assert!(outcome.is_err(), "{fault:?} must break the exchange");
        }
        proxy.inject(Route::Token, ServerFault::MalformedJson, 1);
        let body = post_token(&proxy).await.unwrap().bytes().await.unwrap();
        assert!(serde_json::from_slice::<serde_json::Value>(&body).is_err());
        proxy.inject(Route::Token, ServerFault::Oversized, 1);
        let response = post_token(&proxy).await.unwrap();
        assert_eq!(response.content_length(), Some(OVERSIZED as u64));
        proxy.inject(Route::Token, ServerFault::Oversized, 5);
        proxy.clear_faults();
        assert_eq!(post_token(&proxy).await.unwrap().status(), 200);
    }

    #[tokio::test]
    async fn paired_requests_reach_the_server_one_after_the_other() {
        let (upstream, _, peak) = upstream(Duration::from_millis(200)).await;
        let proxy = proxy(upstream).await;
        proxy.pair_next_token_requests(Duration::from_secs(10));
        let (a, b) = tokio::join!(post_token(&proxy), post_token(&proxy));
        assert_eq!(a.unwrap().status(), 200);
        assert_eq!(b.unwrap().status(), 200);
        assert_eq!(peak.load(Ordering::SeqCst), 1, "never both at once");

        // Alone, the first goes on after the wait.
        proxy.pair_next_token_requests(Duration::from_millis(100));
        assert_eq!(post_token(&proxy).await.unwrap().status(), 200);
        // The pairing is over: later requests pass freely.
        let (a, b) = tokio::join!(post_token(&proxy), post_token(&proxy));
        assert!(a.is_ok() && b.is_ok());
    }
}
