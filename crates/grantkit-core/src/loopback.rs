//! Loopback redirect helper for native apps and CLIs (RFC 8252 §7.3).
//!
//! Listens on 127.0.0.1, on a configured port (Joind.in and join.me compare the redirect
//! URI byte for byte, so it must be the registered one) or a free port where the server
//! allows any. It serves exactly one callback, then closes. Redirects that carry their
//! parameters in the fragment (implicit grant) never reach a server, so for a callback
//! without a query it serves a small relay page that posts `location.hash` back.

use crate::error::{CallbackError, Error, Result};
use crate::flow::MAX_CALLBACK_LEN;
use crate::flow::redirect::Callback;
use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

/// Settings of a [`LoopbackRedirect`].
#[derive(Clone, Debug)]
pub struct LoopbackConfig {
    /// The port; 0 picks a free one.
    pub port: u16,
    /// The callback path, e.g. `/callback`.
    pub path: String,
    /// How long to wait for the callback.
    pub timeout: Duration,
}

impl Default for LoopbackConfig {
    fn default() -> Self {
        Self {
            port: 0,
            path: "/callback".to_owned(),
            timeout: Duration::from_secs(300),
        }
    }
}

/// A one-shot HTTP listener on 127.0.0.1 that receives the redirect of a browser flow.
///
/// ```no_run
/// # async fn example(manager: grantkit_core::TokenManager, flow: grantkit_core::RedirectFlow) -> grantkit_core::Result<()> {
/// use grantkit_core::loopback::{LoopbackConfig, LoopbackRedirect};
///
/// let listener = LoopbackRedirect::bind(LoopbackConfig { port: 8765, ..Default::default() }).await?;
/// // The flow's redirect URI must be `listener.redirect_uri()`.
/// let url = manager.start_authorization(&flow).await?;
/// println!("Open this page to sign in: {}", url.expose_secret());
/// let callback = listener.wait().await?;
/// let key = manager.complete_authorization(&callback).await?;
/// # let _ = key; Ok(()) }
/// ```
#[derive(Debug)]
pub struct LoopbackRedirect {
    listener: TcpListener,
    config: LoopbackConfig,
    redirect_uri: String,
}

const HEAD_LIMIT: usize = 16 * 1024;
const CONNECTION_TIMEOUT: Duration = Duration::from_secs(10);

impl LoopbackRedirect {
    /// Binds 127.0.0.1 on the configured port.
    pub async fn bind(config: LoopbackConfig) -> Result<Self> {
        if !config.path.starts_with('/') {
            return Err(Error::configuration(
                "the loopback callback path must start with `/`",
            ));
        }
        let listener = TcpListener::bind(SocketAddr::from((Ipv4Addr::LOCALHOST, config.port)))
            .await
            .map_err(|err| {
                Error::configuration(format!("cannot listen on 127.0.0.1:{}: {err}", config.port))
            })?;
        let port = listener
            .local_addr()
            .map_err(|err| Error::configuration(format!("no local address: {err}")))?
            .port();
        let redirect_uri = format!("http://127.0.0.1:{port}{}", config.path);
        Ok(Self {
            listener,
            config,
            redirect_uri,
        })
    }

    /// The redirect URI to register and send: `http://127.0.0.1:<port><path>`.
    pub fn redirect_uri(&self) -> &str {
        &self.redirect_uri
    }

    /// Waits for the one callback, answers the browser, and closes the listener.
    pub async fn wait(self) -> Result<Callback> {
        let (tx, mut rx) = mpsc::channel::<Result<Callback>>(1);
        let path = self.config.path.clone();
        let origin = self.redirect_uri[..self.redirect_uri.len() - path.len()].to_owned();
        let serve = async {
            loop {
                let Ok((stream, _)) = self.listener.accept().await else {
                    // Out of file descriptors, say: wait instead of spinning.
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                };
                let tx = tx.clone();
                let (origin, path) = (origin.clone(), path.clone());
                // One task per connection: a browser's idle preconnect must not block the
                // real redirect.
                tokio::spawn(async move {
                    if let Ok(Some(callback)) = tokio::time::timeout(
                        CONNECTION_TIMEOUT,
                        serve_connection(stream, &origin, &path),
                    )
                    .await
                    .unwrap_or(Ok(None))
                    {
                        let _ = tx.send(callback).await;
                    }
                });
            }
        };
        tokio::select! {
            _ = serve => Err(Error::configuration("the loopback listener stopped")),
            received = rx.recv() => received.unwrap_or(Err(Error::callback(CallbackError::Malformed("the listener closed")))),
            _ = tokio::time::sleep(self.config.timeout) => Err(Error::Timeout {
                what: format!("waiting for the browser's redirect to {}", self.redirect_uri),
            }),
        }
    }
}

/// Serves one connection. `Ok(Some(_))` when it carried the callback.
/// `base` is `http://127.0.0.1:<port>`: where the browser's redirect arrived.
async fn serve_connection(
    mut stream: TcpStream,
    base: &str,
    path: &str,
) -> std::io::Result<Option<Result<Callback>>> {
    let mut buffer = Vec::with_capacity(2048);
    let head_end = loop {
        if let Some(end) = find(&buffer, b"\r\n\r\n") {
            break end + 4;
        }
        if buffer.len() >= HEAD_LIMIT {
            respond(
                &mut stream,
                "431 Request Header Fields Too Large",
                PAGE_ERROR,
            )
            .await?;
            return Ok(None);
        }
        let mut chunk = [0u8; 2048];
        let read = stream.read(&mut chunk).await?;
        if read == 0 {
            return Ok(None);
        }
        buffer.extend_from_slice(&chunk[..read]);
    };
    let head = String::from_utf8_lossy(&buffer[..head_end]).into_owned();
    let mut lines = head.split("\r\n");
    let mut request_line = lines.next().unwrap_or("").split(' ');
    let (method, target) = (
        request_line.next().unwrap_or(""),
        request_line.next().unwrap_or(""),
    );
    let (target_path, query) = target.split_once('?').unwrap_or((target, ""));
    if target_path != path {
        respond(&mut stream, "404 Not Found", PAGE_NOT_FOUND).await?;
        return Ok(None);
    }
    match method {
        "GET" if query.is_empty() => {
            // Either a fragment response, which only the browser can read, or nothing.
            respond(&mut stream, "200 OK", PAGE_RELAY).await?;
            Ok(None)
        }
        "GET" => {
            let callback = Callback::parse(&format!("{base}{target}"));
            respond(&mut stream, "200 OK", page_for(&callback)).await?;
            Ok(Some(callback))
        }
        "POST" => {
            let headers: Vec<(&str, &str)> = lines
                .filter_map(|line| line.split_once(':'))
                .map(|(name, value)| (name.trim(), value.trim()))
                .collect();
            // Only the relay page, served from this very origin, may post the fragment: a
            // page elsewhere in the browser must not end the wait with a forged callback.
            let origin = headers
                .iter()
                .find(|(name, _)| name.eq_ignore_ascii_case("origin"))
                .map(|(_, value)| *value);
            if origin.is_some_and(|o| Some(o) != host_origin(&headers).as_deref()) {
                respond(&mut stream, "403 Forbidden", PAGE_ERROR).await?;
                return Ok(None);
            }
            let length = headers
                .iter()
                .find(|(name, _)| name.eq_ignore_ascii_case("content-length"))
                .and_then(|(_, value)| value.parse::<usize>().ok())
                .unwrap_or(0);
            if length == 0 {
                // A reload of the relay page after it cleared the fragment: nothing to take.
                respond(&mut stream, "200 OK", PAGE_RELAY).await?;
                return Ok(None);
            }
            if length > MAX_CALLBACK_LEN {
                respond(&mut stream, "413 Content Too Large", PAGE_ERROR).await?;
                return Ok(Some(Err(Error::callback(CallbackError::Malformed(
                    "the relayed fragment is longer than 16 KiB",
                )))));
            }
            let mut body = buffer[head_end..].to_vec();
            while body.len() < length {
                let mut chunk = [0u8; 2048];
                let read = stream.read(&mut chunk).await?;
                if read == 0 {
                    return Ok(None);
                }
                body.extend_from_slice(&chunk[..read]);
            }
            body.truncate(length);
            let callback = std::str::from_utf8(&body)
                .map_err(|_| {
                    Error::callback(CallbackError::Malformed(
                        "the relayed fragment is not UTF-8",
                    ))
                })
                .and_then(|fragment| Callback::from_fragment(&format!("{base}{path}"), fragment));
            respond(&mut stream, "200 OK", page_for(&callback)).await?;
            Ok(Some(callback))
        }
        _ => {
            respond(&mut stream, "405 Method Not Allowed", PAGE_ERROR).await?;
            Ok(None)
        }
    }
}

/// `http://<Host header>`: the origin a page served by this listener posts from.
fn host_origin(headers: &[(&str, &str)]) -> Option<String> {
    headers
        .iter()
        .find(|(name, _)| name.eq_ignore_ascii_case("host"))
        .map(|(_, host)| format!("http://{host}"))
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

fn page_for(callback: &Result<Callback>) -> &'static str {
    match callback {
        Ok(_) => PAGE_DONE,
        Err(_) => PAGE_ERROR,
    }
}

async fn respond(stream: &mut TcpStream, status: &str, body: &str) -> std::io::Result<()> {
    // The pages never echo a parameter back, so nothing from the callback reaches the page.
    let response = format!(
        "HTTP/1.1 {status}\r\nContent-Type: text/html; charset=utf-8\r\nContent-Length: {}\r\n\
         Cache-Control: no-store\r\nReferrer-Policy: no-referrer\r\nX-Content-Type-Options: nosniff\r\n\
         Connection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(response.as_bytes()).await?;
    stream.shutdown().await
}

const PAGE_DONE: &str = "<!doctype html><meta charset=utf-8><title>Signed in</title>\
<p>Authorization received. You can close this window and return to the application.</p>";

const PAGE_ERROR: &str = "<!doctype html><meta charset=utf-8><title>Sign-in failed</title>\
<p>The authorization response could not be read. Return to the application and try again.</p>";

const PAGE_NOT_FOUND: &str =
    "<!doctype html><meta charset=utf-8><title>Not found</title><p>Not found.</p>";

/// Posts the fragment back to this listener, then clears it from the address bar and
/// history.
const PAGE_RELAY: &str = "<!doctype html><meta charset=utf-8><title>Signing in…</title>\
<p id=m>Completing sign-in…</p><script>\
var f=location.hash.slice(1);history.replaceState(null,'',location.pathname);\
if(!f){document.getElementById('m').textContent='Nothing to complete here. Return to the application.';}else \
fetch(location.pathname,{method:'POST',headers:{'Content-Type':'application/x-www-form-urlencoded'},body:f})\
.then(function(r){document.getElementById('m').textContent=r.ok?'Authorization received. You can close this window.':'Sign-in failed.';})\
.catch(function(){document.getElementById('m').textContent='Sign-in failed.';});\
</script>";

#[cfg(test)]
mod tests {
    use super::*;

    async fn raw(addr: &str, request: &str) -> String {
        let mut stream = TcpStream::connect(addr).await.unwrap();
        stream.write_all(request.as_bytes()).await.unwrap();
        let mut out = String::new();
        stream.read_to_string(&mut out).await.unwrap();
        out
    }

    #[tokio::test]
    async fn query_callback_is_served_once() {
        let listener = LoopbackRedirect::bind(LoopbackConfig::default())
            .await
            .unwrap();
        let uri = listener.redirect_uri().to_owned();
        let addr = uri
            .trim_start_matches("http://")
            .trim_end_matches("/callback")
            .to_owned();
        let waiter = tokio::spawn(listener.wait());
        let miss = raw(&addr, "GET /favicon.ico HTTP/1.1\r\nHost: x\r\n\r\n").await;
        assert!(miss.starts_with("HTTP/1.1 404"));
        let hit = raw(
            &addr,
            "GET /callback?code=abc&state=xyz HTTP/1.1\r\nHost: x\r\n\r\n",
        )
        .await;
        assert!(hit.starts_with("HTTP/1.1 200"));
        assert!(!hit.contains("abc") && !hit.contains("xyz"));
        let callback = waiter.await.unwrap().unwrap();
        assert_eq!(callback.query.get("code"), Some("abc"));
        assert!(
            TcpStream::connect(&addr).await.is_err(),
            "the listener is closed"
        );
    }

    #[tokio::test]
    async fn fragment_callback_is_relayed() {
        let listener = LoopbackRedirect::bind(LoopbackConfig::default())
            .await
            .unwrap();
        let addr = listener
            .redirect_uri()
            .trim_start_matches("http://")
            .trim_end_matches("/callback")
            .to_owned();
        let waiter = tokio::spawn(listener.wait());
        let relay = raw(&addr, "GET /callback HTTP/1.1\r\nHost: x\r\n\r\n").await;
        assert!(relay.contains("location.hash"));
        let body = "access_token=t0k&state=s";
        let posted = raw(
            &addr,
            &format!(
                "POST /callback HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            ),
        )
        .await;
        assert!(posted.starts_with("HTTP/1.1 200"));
        let callback = waiter.await.unwrap().unwrap();
        assert_eq!(callback.fragment.get("access_token"), Some("t0k"));
    }

    #[tokio::test]
    async fn an_idle_connection_does_not_block_the_callback() {
        let listener = LoopbackRedirect::bind(LoopbackConfig::default())
            .await
            .unwrap();
        let addr = listener
            .redirect_uri()
            .trim_start_matches("http://")
            .trim_end_matches("/callback")
            .to_owned();
        let waiter = tokio::spawn(listener.wait());
        let _idle = TcpStream::connect(&addr).await.unwrap();
        raw(&addr, "GET /callback?state=s&code=c HTTP/1.1\r\n\r\n").await;
        assert!(waiter.await.unwrap().is_ok());
    }

    #[tokio::test]
    async fn forged_or_empty_posts_do_not_end_the_wait() {
        let listener = LoopbackRedirect::bind(LoopbackConfig::default())
            .await
            .unwrap();
        let addr = listener
            .redirect_uri()
            .trim_start_matches("http://")
            .trim_end_matches("/callback")
            .to_owned();
        let waiter = tokio::spawn(listener.wait());
        let body = "access_token=forged&state=s";
        let forged = raw(
            &addr,
            &format!(
                "POST /callback HTTP/1.1\r\nHost: {addr}\r\nOrigin: https://evil.example\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            ),
        )
        .await;
        assert!(forged.starts_with("HTTP/1.1 403"), "{forged}");
        let empty = raw(
            &addr,
            &format!("POST /callback HTTP/1.1\r\nHost: {addr}\r\nContent-Length: 0\r\n\r\n"),
        )
        .await;
        assert!(empty.starts_with("HTTP/1.1 200"));
        assert!(!waiter.is_finished(), "neither post ended the wait");
        let body = "access_token=real&state=s";
        raw(
            &addr,
            &format!(
                "POST /callback HTTP/1.1\r\nHost: {addr}\r\nOrigin: http://{addr}\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            ),
        )
        .await;
        let callback = waiter.await.unwrap().unwrap();
        assert_eq!(callback.fragment.get("access_token"), Some("real"));
    }

    #[tokio::test(start_paused = true)]
    async fn waiting_times_out() {
        let listener = LoopbackRedirect::bind(LoopbackConfig {
            timeout: Duration::from_secs(5),
            ..Default::default()
        })
        .await
        .unwrap();
        let err = listener.wait().await.unwrap_err();
        assert!(matches!(err, Error::Timeout { .. }), "{err}");
    }
}
