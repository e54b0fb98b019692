//! Loopback redirect helper for native apps and CLIs (RFC 8252 §7.3).
//!
//! Listens on the loopback interface at the port and path of the redirect URI — the one
//! registered with the provider: Joind.in and join.me compare it byte for byte, so a
//! listener on any other port or path never receives the redirect. Where the server allows
//! any port (RFC 8252 §7.3), [`LoopbackRedirect::bind_any_port`] picks a free one.
//!
//! It answers from the moment it is bound, so a browser that arrives before
//! [`wait`](LoopbackRedirect::wait) is called is served, and its callback kept. Redirects
//! that carry their parameters in the fragment (implicit grant) never reach a server: for a
//! request without a query it serves a small page that posts `location.hash` back. Every
//! page tells the user whether to return to the program and that the tab may be closed.

use crate::error::{CallbackError, Error, Result};
use crate::flow::MAX_CALLBACK_LEN;
use crate::flow::redirect::Callback;
use bytes::Bytes;
use http::{Method, Request, Response, StatusCode, header};
use http_body_util::{BodyExt as _, Full, Limited};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::watch;
use url::{Host, Url};

/// How long [`LoopbackRedirect::wait`] waits for the browser by default.
pub const DEFAULT_WAIT: Duration = Duration::from_secs(300);

/// How long one connection may take: a browser's idle preconnect must not hold a slot.
const CONNECTION_TIMEOUT: Duration = Duration::from_secs(10);

/// A listener on the loopback interface that receives the redirect of a browser flow.
///
/// ```no_run
/// # async fn example(manager: grantkit_core::TokenManager) -> grantkit_core::Result<()> {
/// use grantkit_core::RedirectFlow;
/// use grantkit_core::loopback::LoopbackRedirect;
///
/// // The redirect URI registered with the provider, byte for byte.
/// let redirect_uri = "http://127.0.0.1:8765/callback";
/// let listener = LoopbackRedirect::bind_to(redirect_uri).await?;
/// let url = manager.start_authorization(&RedirectFlow::authorization_code(redirect_uri)).await?;
/// println!("Open this page to sign in: {}", url.expose_secret());
/// let key = manager.complete_authorization(&listener.wait().await?).await?;
/// # let _ = key; Ok(()) }
/// ```
#[derive(Debug)]
pub struct LoopbackRedirect {
    redirect_uri: String,
    received: watch::Receiver<Option<Result<Callback>>>,
    server: tokio::task::JoinHandle<()>,
    timeout: Duration,
}

impl Drop for LoopbackRedirect {
    fn drop(&mut self) {
        self.server.abort();
    }
}

/// What the connections share: where they listen, and the first callback.
struct Shared {
    /// `http://host:port`, the origin of the relay page.
    origin: String,
    /// The callback path.
    path: String,
    /// Set once, by the first request that carries a callback.
    first: Mutex<bool>,
    sender: watch::Sender<Option<Result<Callback>>>,
}

impl LoopbackRedirect {
    /// Listens on the port and path of `redirect_uri`, which must be plain `http` to a
    /// loopback host (`127.0.0.1`, `[::1]` or `localhost`) with an explicit port.
    ///
    /// Fails with [`Error::Configuration`] for any other redirect URI, and when the port is
    /// taken (say by another sign-in in progress).
    pub async fn bind_to(redirect_uri: &str) -> Result<Self> {
        let url = Url::parse(redirect_uri)
            .map_err(|_| Error::configuration("the redirect URI is not an absolute URL"))?;
        let ip = match url.host() {
            _ if url.scheme() != "http" => None,
            Some(Host::Ipv4(ip)) if ip.is_loopback() => Some(IpAddr::V4(ip)),
            Some(Host::Ipv6(ip)) if ip.is_loopback() => Some(IpAddr::V6(ip)),
            Some(Host::Domain(name)) if name.eq_ignore_ascii_case("localhost") => {
                Some(IpAddr::V4(Ipv4Addr::LOCALHOST))
            }
            _ => None,
        }
        .ok_or_else(|| {
            Error::configuration(
                "the loopback helper listens only on http://127.0.0.1, http://[::1] or \
                 http://localhost redirect URIs",
            )
        })?;
        let port = url.port().ok_or_else(|| {
            Error::configuration("the loopback redirect URI must name its port, as registered")
        })?;
        Self::listen(SocketAddr::new(ip, port), &url, redirect_uri.to_owned()).await
    }

    /// Listens on a free port of 127.0.0.1 at `path` (e.g. `/callback`), for servers that
    /// accept any loopback port (RFC 8252 §7.3). The redirect URI to send is then
    /// [`redirect_uri`](Self::redirect_uri).
    pub async fn bind_any_port(path: &str) -> Result<Self> {
        if !path.starts_with('/') {
            return Err(Error::configuration(
                "the loopback callback path must start with `/`",
            ));
        }
        let url = Url::parse(&format!("http://127.0.0.1:0{path}"))
            .map_err(|_| Error::configuration("the loopback callback path is not a URL path"))?;
        Self::listen(
            SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
            &url,
            String::new(),
        )
        .await
    }

    async fn listen(addr: SocketAddr, url: &Url, redirect_uri: String) -> Result<Self> {
        let listener = TcpListener::bind(addr).await.map_err(|err| {
            Error::configuration(format!(
                "cannot listen on {addr} for the browser's redirect: {err}"
            ))
        })?;
        let bound = listener
            .local_addr()
            .map_err(|err| Error::configuration(format!("no local address: {err}")))?;
        let host = match bound.ip() {
            IpAddr::V6(ip) if ip == Ipv6Addr::LOCALHOST => "[::1]".to_owned(),
            _ => url.host_str().unwrap_or("127.0.0.1").to_owned(),
        };
        let origin = format!("http://{host}:{}", bound.port());
        let redirect_uri = if redirect_uri.is_empty() {
            format!("{origin}{}", url.path())
        } else {
            redirect_uri
        };
        let (sender, received) = watch::channel(None);
        let shared = Arc::new(Shared {
            origin,
            path: url.path().to_owned(),
            first: Mutex::new(false),
            sender,
        });
        let server = tokio::spawn(serve(listener, shared));
        Ok(Self {
            redirect_uri,
            received,
            server,
            timeout: DEFAULT_WAIT,
        })
    }

    /// Waits at most `timeout` in [`wait`](Self::wait) (default five minutes).
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The redirect URI the listener answers: the one given to
    /// [`bind_to`](Self::bind_to), or `http://127.0.0.1:<port><path>`.
    pub fn redirect_uri(&self) -> &str {
        &self.redirect_uri
    }

    /// The first callback the browser brought (even before this was called), then the
    /// listener closes. Times out with [`Error::Timeout`].
    pub async fn wait(mut self) -> Result<Callback> {
        let arrived = tokio::time::timeout(self.timeout, self.received.wait_for(Option::is_some))
            .await
            .map_err(|_| Error::Timeout {
                what: format!(
                    "waiting for the browser's redirect to {}",
                    self.redirect_uri
                ),
            })?
            .map_err(|_| Error::configuration("the loopback listener stopped"))?
            .clone();
        arrived.unwrap_or_else(|| Err(Error::configuration("the loopback listener stopped")))
    }
}

async fn serve(listener: TcpListener, shared: Arc<Shared>) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            // Out of file descriptors, say: wait instead of spinning.
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        let shared = shared.clone();
        // One task per connection: an idle preconnect must not block the real redirect.
        tokio::spawn(async move {
            let service = service_fn(move |request| answer(request, shared.clone()));
            let connection = http1::Builder::new()
                .keep_alive(false)
                .serve_connection(TokioIo::new(stream), service);
            let _ = tokio::time::timeout(CONNECTION_TIMEOUT, connection).await;
        });
    }
}

/// Answers one request: the callback (query, or a relayed fragment), the relay page, or a
/// refusal. Pages never echo a parameter, so nothing from the callback reaches the page.
async fn answer(
    request: Request<Incoming>,
    shared: Arc<Shared>,
) -> std::result::Result<Response<Full<Bytes>>, std::convert::Infallible> {
    if request.uri().path() != shared.path {
        return Ok(page(StatusCode::NOT_FOUND, PAGE_NOT_FOUND));
    }
    let target = request
        .uri()
        .path_and_query()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_default();
    let callback = match *request.method() {
        Method::GET if request.uri().query().is_none_or(str::is_empty) => {
            // A fragment response, which only the browser can read, or nothing.
            return Ok(page(StatusCode::OK, PAGE_RELAY));
        }
        Method::GET => Callback::parse(&format!("{}{target}", shared.origin)),
        Method::POST => {
            // Only the relay page, served from this very origin, may post the fragment: a
            // page elsewhere in the browser must not end the wait with a forged callback.
            let origin = request.headers().get(header::ORIGIN);
            if origin.is_some_and(|o| o.as_bytes() != shared.origin.as_bytes()) {
                return Ok(page(StatusCode::FORBIDDEN, PAGE_ERROR));
            }
            let body = match Limited::new(request.into_body(), MAX_CALLBACK_LEN)
                .collect()
                .await
            {
                Ok(body) => body.to_bytes(),
                Err(_) => return Ok(page(StatusCode::PAYLOAD_TOO_LARGE, PAGE_ERROR)),
            };
            if body.is_empty() {
                // A reload of the relay page after it cleared the fragment.
                return Ok(page(StatusCode::OK, PAGE_RELAY));
            }
            std::str::from_utf8(&body)
                .map_err(|_| {
                    Error::callback(CallbackError::Malformed(
                        "the relayed fragment is not UTF-8",
                    ))
                })
                .and_then(|fragment| {
                    Callback::from_fragment(&format!("{}{}", shared.origin, shared.path), fragment)
                })
        }
        _ => return Ok(page(StatusCode::METHOD_NOT_ALLOWED, PAGE_ERROR)),
    };
    let shown = match &callback {
        Ok(_) => PAGE_DONE,
        Err(_) => PAGE_ERROR,
    };
    let mut first = shared.first.lock().unwrap_or_else(PoisonError::into_inner);
    if *first {
        // Only the first callback counts; a second one (a reload) changes nothing.
        return Ok(page(StatusCode::OK, PAGE_ALREADY));
    }
    *first = true;
    shared.sender.send_replace(Some(callback));
    Ok(page(StatusCode::OK, shown))
}

fn page(status: StatusCode, body: &'static str) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from_static(body.as_bytes())));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    for (name, value) in [
        (header::CONTENT_TYPE, "text/html; charset=utf-8"),
        (header::CACHE_CONTROL, "no-store"),
        (header::REFERRER_POLICY, "no-referrer"),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::CONNECTION, "close"),
    ] {
        headers.insert(name, http::HeaderValue::from_static(value));
    }
    response
}

const PAGE_DONE: &str = "<!doctype html><meta charset=utf-8><title>Signed in</title>\
<p>Authorization received. You can close this tab and return to the program.</p>";

const PAGE_ALREADY: &str = "<!doctype html><meta charset=utf-8><title>Signed in</title>\
<p>The program already has its answer. You can close this tab.</p>";

const PAGE_ERROR: &str = "<!doctype html><meta charset=utf-8><title>Sign-in failed</title>\
<p>The authorization response could not be read. You can close this tab; return to the \
program and try again.</p>";

const PAGE_NOT_FOUND: &str =
    "<!doctype html><meta charset=utf-8><title>Not found</title><p>Not found.</p>";

/// Posts the fragment back to this listener, then clears it from the address bar and
/// history.
const PAGE_RELAY: &str = "<!doctype html><meta charset=utf-8><title>Signing in…</title>\
<p id=m>Completing sign-in…</p><script>\
var f=location.hash.slice(1);history.replaceState(null,'',location.pathname);\
if(!f){document.getElementById('m').textContent='Nothing to complete here. You can close this tab.';}else \
fetch(location.pathname,{method:'POST',headers:{'Content-Type':'application/x-www-form-urlencoded'},body:f})\
.then(function(r){document.getElementById('m').textContent=r.ok?'Authorization received. You can close this tab and return to the program.':'Sign-in failed. You can close this tab and try again.';})\
.catch(function(){document.getElementById('m').textContent='Sign-in failed. You can close this tab and try again.';});\
</script>";

#[cfg(test)]
mod tests {
    use super::*;

    fn client() -> reqwest::Client {
        reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap()
    }

    /// A free loopback port for a "registered" redirect URI.
    fn free_port() -> u16 {
        std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port()
    }

    #[tokio::test]
    async fn it_listens_on_the_registered_port_and_path() {
        let uri = format!("http://127.0.0.1:{}/app/callback", free_port());
        let listener = LoopbackRedirect::bind_to(&uri).await.unwrap();
        assert_eq!(listener.redirect_uri(), uri);
        let miss = client()
            .get(uri.replace("/app/callback", "/favicon.ico"))
            .send()
            .await
            .unwrap();
        assert_eq!(miss.status(), 404);
        let hit = client()
            .get(format!("{uri}?code=abc&state=xyz"))
            .send()
            .await
            .unwrap();
        assert_eq!(hit.status(), 200);
        let page = hit.text().await.unwrap();
        assert!(page.contains("close this tab"), "{page}");
        assert!(!page.contains("abc") && !page.contains("xyz"));
        let callback = listener.wait().await.unwrap();
        assert_eq!(callback.query.get("code"), Some("abc"));
        assert!(callback.arrived_at(&uri));
    }

    #[tokio::test]
    async fn a_browser_that_arrives_before_wait_is_served_and_kept() {
        let listener = LoopbackRedirect::bind_any_port("/callback").await.unwrap();
        let uri = listener.redirect_uri().to_owned();
        let early = client()
            .get(format!("{uri}?code=early&state=s"))
            .send()
            .await
            .unwrap();
        assert_eq!(early.status(), 200, "answered before anyone waits");
        let again = client()
            .get(format!("{uri}?code=second&state=s"))
            .send()
            .await
            .unwrap();
        assert!(again.text().await.unwrap().contains("already"));
        let callback = listener.wait().await.unwrap();
        assert_eq!(
            callback.query.get("code"),
            Some("early"),
            "the first counts"
        );
    }

    #[tokio::test]
    async fn a_fragment_is_relayed_only_from_its_own_page() {
        let listener = LoopbackRedirect::bind_any_port("/callback").await.unwrap();
        let uri = listener.redirect_uri().to_owned();
        let origin = uri.trim_end_matches("/callback").to_owned();
        let relay = client().get(&uri).send().await.unwrap();
        assert!(relay.text().await.unwrap().contains("location.hash"));
        let forged = client()
            .post(&uri)
            .header("origin", "https://evil.example")
            .body("access_token=forged&state=s")
            .send()
            .await
            .unwrap();
        assert_eq!(forged.status(), 403);
        let empty = client()
            .post(&uri)
            .header("origin", &origin)
            .send()
            .await
            .unwrap();
        assert_eq!(empty.status(), 200);
        let huge = client()
            .post(&uri)
            .header("origin", &origin)
            .body("a".repeat(MAX_CALLBACK_LEN + 1))
            .send()
            .await
            .unwrap();
        assert_eq!(huge.status(), 413);
        client()
            .post(&uri)
            .header("origin", &origin)
            .body("access_token=real&state=s")
            .send()
            .await
            .unwrap();
        let callback = listener.wait().await.unwrap();
        assert_eq!(callback.fragment.get("access_token"), Some("real"));
        assert!(callback.arrived_at(&uri));
    }

    #[tokio::test]
    async fn an_idle_connection_does_not_block_the_callback() {
        let listener = LoopbackRedirect::bind_any_port("/callback").await.unwrap();
        let uri = listener.redirect_uri().to_owned();
        let addr = uri
            .trim_start_matches("http://")
            .trim_end_matches("/callback")
            .to_owned();
        let _idle = tokio::net::TcpStream::connect(&addr).await.unwrap();
        client()
            .get(format!("{uri}?state=s&code=c"))
            .send()
            .await
            .unwrap();
        assert!(listener.wait().await.is_ok());
    }

    #[tokio::test]
    async fn only_loopback_redirect_uris_with_a_port_are_accepted() {
        for bad in [
            "https://127.0.0.1:8765/callback",
            "http://app.example:8765/callback",
            "http://127.0.0.1/callback",
            "not a url",
        ] {
            let err = LoopbackRedirect::bind_to(bad).await.unwrap_err();
            assert!(matches!(err, Error::Configuration { .. }), "{bad}: {err}");
        }
        let taken = LoopbackRedirect::bind_any_port("/cb").await.unwrap();
        let err = LoopbackRedirect::bind_to(taken.redirect_uri())
            .await
            .unwrap_err();
        assert!(err.to_string().contains("cannot listen"), "{err}");
    }

    #[tokio::test(start_paused = true)]
    async fn waiting_times_out() {
        let listener = LoopbackRedirect::bind_any_port("/callback")
            .await
            .unwrap()
            .with_timeout(Duration::from_secs(5));
        let err = listener.wait().await.unwrap_err();
        assert!(matches!(err, Error::Timeout { .. }), "{err}");
    }
}
