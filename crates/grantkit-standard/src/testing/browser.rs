//! The user's browser, played headlessly: follows the authorization server's redirects with
//! its cookies, answers the consent step, and stops at the redirect back to the client.

use grantkit_conformance::Decision;
use std::time::Duration;
use url::Url;

/// Redirects the authorization step may take: to the consent page, back to the
/// authorization endpoint, to the client.
const MAX_HOPS: usize = 8;

/// One cookie the server set.
#[derive(Debug)]
struct Cookie {
    name: String,
    value: String,
    path: String,
}

/// Just enough of a cookie jar for one host (RFC 6265 path matching, expiry by deletion).
#[derive(Debug, Default)]
struct Jar(Vec<Cookie>);

impl Jar {
    fn store(&mut self, headers: &http::HeaderMap, request_path: &str) {
        for value in headers.get_all(http::header::SET_COOKIE) {
            let Ok(text) = value.to_str() else { continue };
            let mut parts = text.split(';');
            let Some((name, value)) = parts.next().and_then(|p| p.split_once('=')) else {
                continue;
            };
            let mut path = default_path(request_path);
            let mut expired = false;
            for attribute in parts {
                let (key, val) = attribute.split_once('=').unwrap_or((attribute, ""));
                match key.trim().to_ascii_lowercase().as_str() {
                    "path" if val.starts_with('/') => path = val.trim().to_owned(),
                    "max-age" => expired |= val.trim().parse::<i64>().is_ok_and(|s| s <= 0),
                    // Servers clear a cookie with an expiry at the epoch.
                    "expires" => expired |= val.contains("1970"),
                    _ => {}
                }
            }
            let (name, value) = (name.trim().to_owned(), value.trim().to_owned());
            self.0.retain(|c| !(c.name == name && c.path == path));
            if !expired {
                self.0.push(Cookie { name, value, path });
            }
        }
    }

    fn header_for(&self, request_path: &str) -> Option<String> {
        let matching: Vec<String> = self
            .0
            .iter()
            .filter(|c| path_matches(request_path, &c.path))
            .map(|c| format!("{}={}", c.name, c.value))
            .collect();
        (!matching.is_empty()).then(|| matching.join("; "))
    }
}

/// RFC 6265 §5.1.4 default path: the request path up to its last `/`.
fn default_path(request_path: &str) -> String {
    match request_path.rfind('/') {
        Some(0) | None => "/".to_owned(),
        Some(i) => request_path[..i].to_owned(),
    }
}

/// RFC 6265 §5.1.4 path match.
fn path_matches(request_path: &str, cookie_path: &str) -> bool {
    request_path == cookie_path
        || (request_path.starts_with(cookie_path)
            && (cookie_path.ends_with('/')
                || request_path.as_bytes().get(cookie_path.len()) == Some(&b'/')))
}

/// Opens `authorization_url` as the test user, answers `decision` on the consent step, and
/// returns the URL the server finally redirects to, outside `issuer`: the callback. When
/// `deliver` is set, that URL is also opened, as a browser would (for a loopback listener).
pub(crate) async fn authorize(
    issuer: &Url,
    authorization_url: &str,
    decision: Decision,
    deliver: bool,
) -> Result<String, String> {
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(30))
        .build()
        .map_err(|e| format!("cannot build the browser's HTTP client: {e}"))?;
    let mut jar = Jar::default();
    let mut url = Url::parse(authorization_url).map_err(|e| format!("not a URL: {e}"))?;
    let mut post = false;
    for _ in 0..MAX_HOPS {
        if url.origin() != issuer.origin() {
            if deliver {
                http.get(url.clone())
                    .send()
                    .await
                    .map_err(|e| format!("delivering the callback failed: {e}"))?;
            }
            return Ok(url.into());
        }
        let mut request = if post {
            http.post(url.clone())
        } else {
            http.get(url.clone())
        };
        if let Some(cookies) = jar.header_for(url.path()) {
            request = request.header(http::header::COOKIE, cookies);
        }
        let response = request
            .send()
            .await
            .map_err(|e| format!("{} failed: {e}", url.path()))?;
        jar.store(response.headers(), url.path());
        let status = response.status();
        let location = response
            .headers()
            .get(http::header::LOCATION)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let Some(location) = location.filter(|_| status.is_redirection()) else {
            let body = response.text().await.unwrap_or_default();
            return Err(format!(
                "{} answered {status} instead of a redirect: {}",
                url.path(),
                body.chars().take(300).collect::<String>()
            ));
        };
        let next = url
            .join(&location)
            .map_err(|e| format!("a redirect to a bad location: {e}"))?;
        // The consent step: the user's answer is a POST to the page's approve or deny form.
        if next.origin() == issuer.origin() && next.path().starts_with("/interaction/") {
            let answer = match decision {
                Decision::Approve => "approve",
                Decision::Deny => "deny",
            };
            url = next
                .join(&format!("{}/{answer}", next.path()))
                .map_err(|e| format!("a bad consent URL: {e}"))?;
            post = true;
        } else {
            url = next;
            post = false;
        }
    }
    Err(format!("more than {MAX_HOPS} redirects"))
}

/// Plays the user on another device (RFC 8628): opens `verification_uri_complete`,
/// confirms the code shown there, and answers `decision` on the consent step.
pub(crate) async fn approve_device(
    issuer: &Url,
    verification_uri_complete: &str,
    decision: Decision,
) -> Result<(), String> {
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(30))
        .build()
        .map_err(|e| format!("cannot build the browser's HTTP client: {e}"))?;
    let mut jar = Jar::default();
    let page_url = Url::parse(verification_uri_complete).map_err(|e| format!("not a URL: {e}"))?;
    let mut request = http.get(page_url.clone());
    if let Some(cookies) = jar.header_for(page_url.path()) {
        request = request.header(http::header::COOKIE, cookies);
    }
    let page = request
        .send()
        .await
        .map_err(|e| format!("the verification page failed: {e}"))?;
    jar.store(page.headers(), page_url.path());
    let html = page.text().await.map_err(|e| e.to_string())?;
    // The confirmation form's hidden fields: what a browser would post.
    let field = |name: &str| -> Result<String, String> {
        let marker = format!("name=\"{name}\" value=\"");
        let start = html
            .find(&marker)
            .ok_or_else(|| format!("the verification page has no `{name}` field"))?
            + marker.len();
        let end = html[start..]
            .find('"')
            .ok_or_else(|| "an unterminated field".to_owned())?;
        Ok(html[start..start + end].to_owned())
    };
    let form = vec![
        ("xsrf", field("xsrf")?),
        ("user_code", field("user_code")?),
        ("confirm", "yes".to_owned()),
    ];
    let mut url = page_url
        .join("/device")
        .map_err(|e| format!("a bad verification URL: {e}"))?;
    let mut body = Some(form);
    for _ in 0..MAX_HOPS {
        let mut request = match body.take() {
            Some(form) => http.post(url.clone()).form(&form),
            None => http.get(url.clone()),
        };
        if let Some(cookies) = jar.header_for(url.path()) {
            request = request.header(http::header::COOKIE, cookies);
        }
        let response = request
            .send()
            .await
            .map_err(|e| format!("{} failed: {e}", url.path()))?;
        jar.store(response.headers(), url.path());
        let status = response.status();
        let location = response
            .headers()
            .get(http::header::LOCATION)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let Some(location) = location.filter(|_| status.is_redirection()) else {
            return if status.is_success() {
                Ok(())
            } else {
                Err(format!("{} answered {status}", url.path()))
            };
        };
        let next = url
            .join(&location)
            .map_err(|e| format!("a redirect to a bad location: {e}"))?;
        if next.origin() != issuer.origin() {
            return Err(format!(
                "the device flow left the server for {}",
                next.origin().ascii_serialization()
            ));
        }
        if next.path().starts_with("/interaction/") {
            let answer = match decision {
                Decision::Approve => "approve",
                Decision::Deny => "deny",
            };
            url = next
                .join(&format!("{}/{answer}", next.path()))
                .map_err(|e| format!("a bad consent URL: {e}"))?;
            // The consent page's forms post nothing but their action.
            body = Some(Vec::new());
        } else {
            url = next;
        }
    }
    Err(format!("more than {MAX_HOPS} redirects"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookie_paths_match_as_rfc_6265_says() {
        assert!(path_matches("/auth/abc", "/auth/abc"));
        assert!(path_matches("/interaction/abc/approve", "/interaction/abc"));
        assert!(!path_matches("/interaction/abcd", "/interaction/abc"));
        assert!(path_matches("/anything", "/"));
        assert_eq!(default_path("/auth"), "/");
        assert_eq!(default_path("/a/b/c"), "/a/b");
    }

    #[test]
    fn the_jar_keeps_sets_and_deletes() {
        let mut headers = http::HeaderMap::new();
        headers.append(
            http::header::SET_COOKIE,
            "_interaction=uid1; path=/interaction/uid1; httponly"
                .parse()
                .unwrap(),
        );
        headers.append(
            http::header::SET_COOKIE,
            "_resume=uid1; path=/auth/uid1; expires=Mon, 01 Jan 2100 00:00:00 GMT"
                .parse()
                .unwrap(),
        );
        let mut jar = Jar::default();
        jar.store(&headers, "/auth");
        assert_eq!(
            jar.header_for("/interaction/uid1/approve").as_deref(),
            Some("_interaction=uid1")
        );
        assert_eq!(
            jar.header_for("/auth/uid1").as_deref(),
            Some("_resume=uid1")
        );
        assert_eq!(jar.header_for("/token"), None);
        let mut clearing = http::HeaderMap::new();
        clearing.append(
            http::header::SET_COOKIE,
            "_resume=; path=/auth/uid1; expires=Thu, 01 Jan 1970 00:00:00 GMT"
                .parse()
                .unwrap(),
        );
        jar.store(&clearing, "/auth/uid1");
        assert_eq!(jar.header_for("/auth/uid1"), None);
    }
}
