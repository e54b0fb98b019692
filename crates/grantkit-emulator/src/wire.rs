//! Small HTTP helpers shared by both emulators: response building, form and query
//! decoding, random identifiers, and the generic fault bodies.

use std::time::Duration;

use axum::body::Body;
use bytes::Bytes;
use http::header::{CONTENT_LENGTH, CONTENT_TYPE};
use http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use rand::Rng;

/// The response type every handler produces.
pub(crate) type HttpResponse = http::Response<Body>;

/// Largest request body read; larger bodies get 413 without being read.
pub(crate) const MAX_REQUEST_BODY: usize = 1024 * 1024;

/// Size of [`Fault::OversizedBody`](crate::Fault::OversizedBody) responses.
pub(crate) const OVERSIZED_BODY_LEN: usize = 10 * 1024 * 1024;

/// Builds a response; header values that are not valid HTTP are dropped rather than
/// panicking (they can only come from hostile input echoed back).
pub(crate) fn respond(
    status: u16,
    content_type: Option<&str>,
    headers: &[(&str, String)],
    body: impl Into<Body>,
) -> HttpResponse {
    let mut response = http::Response::new(body.into());
    *response.status_mut() =
        StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let map = response.headers_mut();
    if let Some(ct) = content_type {
        let value = HeaderValue::try_from(ct)
            .unwrap_or_else(|_| HeaderValue::from_static("application/octet-stream"));
        map.insert(CONTENT_TYPE, value);
    }
    for (name, value) in headers {
        if let (Ok(name), Ok(value)) = (
            HeaderName::try_from(*name),
            HeaderValue::from_bytes(value.as_bytes()),
        ) {
            map.append(name, value);
        }
    }
    response
}

/// Decodes `application/x-www-form-urlencoded` (or a query string) into ordered pairs.
pub(crate) fn form_pairs(input: &[u8]) -> Vec<(String, String)> {
    url::form_urlencoded::parse(input)
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

/// The value of the first header `name`, if it is visible ASCII.
pub(crate) fn header_str<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// The media type of `Content-Type` without parameters, lower-cased.
pub(crate) fn media_type(headers: &HeaderMap) -> Option<String> {
    header_str(headers, "content-type").map(|ct| {
        ct.split(';')
            .next()
            .unwrap_or_default()
            .trim()
            .to_ascii_lowercase()
    })
}

/// A random string of `len` characters from `alphabet`.
pub(crate) fn random_string(alphabet: &[u8], len: usize) -> String {
    let mut rng = rand::rng();
    (0..len)
        .map(|_| char::from(alphabet[rng.random_range(0..alphabet.len())]))
        .collect()
}

/// Lower-case letters and digits, the join.me token alphabet.
pub(crate) const LOWER_ALNUM: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
/// Lower-case hex digits.
pub(crate) const LOWER_HEX: &[u8] = b"0123456789abcdef";
/// Decimal digits.
pub(crate) const DIGITS: &[u8] = b"0123456789";

/// Minimal HTML escaping for text echoed into the emulators' pages.
pub(crate) fn html_escape(input: &str) -> String {
    let mut out = String::with_capacity(input.len());
    for c in input.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A 5xx page as a proxy or crashed backend serves it.
pub(crate) fn server_error_page(status: u16, headers: &[(&str, String)]) -> HttpResponse {
    let code = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let reason = code.canonical_reason().unwrap_or("Error");
    let body = format!(
        "<!DOCTYPE html>\n<html><head><title>{} {reason}</title></head>\
         <body><h1>{reason}</h1><p>The server could not complete your request.</p></body></html>\n",
        code.as_u16()
    );
    respond(
        code.as_u16(),
        Some("text/html; charset=utf-8"),
        headers,
        body,
    )
}

/// 200 with a JSON content type and a body that no JSON parser accepts.
pub(crate) fn malformed_json(content_type: &str) -> HttpResponse {
    respond(
        200,
        Some(content_type),
        &[],
        "{\"access_token\": malformed, \"meta\": {\"count\": 1,",
    )
}

/// 200 that declares a longer body than it sends, then drops the connection.
pub(crate) fn truncated_body(content_type: &str) -> HttpResponse {
    const SENT: &str = "{\"access_token\":\"partial";
    const DECLARED: usize = 512;
    let stream = futures::stream::unfold(0u8, |step| async move {
        match step {
            0 => Some((
                Ok::<Bytes, std::io::Error>(Bytes::from_static(SENT.as_bytes())),
                1,
            )),
            1 => {
                // Give the connection time to flush what was sent before the error aborts it.
                tokio::time::sleep(Duration::from_millis(20)).await;
                Some((
                    Err(std::io::Error::new(
                        std::io::ErrorKind::ConnectionAborted,
                        "truncated by fault injection",
                    )),
                    2,
                ))
            }
            _ => None,
        }
    });
    let mut response = respond(200, Some(content_type), &[], Body::from_stream(stream));
    response
        .headers_mut()
        .insert(CONTENT_LENGTH, HeaderValue::from(DECLARED));
    response
}

/// 200 with a 10 MiB JSON body, streamed in chunks.
pub(crate) fn oversized_body(content_type: &str) -> HttpResponse {
    const CHUNK: usize = 64 * 1024;
    static FILL: [u8; CHUNK] = [b'a'; CHUNK];
    let head: &'static [u8] = b"{\"padding\":\"";
    let tail: &'static [u8] = b"\"}";
    let fill_len = OVERSIZED_BODY_LEN - head.len() - tail.len();
    let mut chunks: Vec<Result<Bytes, std::io::Error>> = vec![Ok(Bytes::from_static(head))];
    let mut left = fill_len;
    while left > 0 {
        let n = left.min(CHUNK);
        chunks.push(Ok(Bytes::from_static(&FILL[..n])));
        left -= n;
    }
    chunks.push(Ok(Bytes::from_static(tail)));
    let mut response = respond(
        200,
        Some(content_type),
        &[],
        Body::from_stream(futures::stream::iter(chunks)),
    );
    response
        .headers_mut()
        .insert(CONTENT_LENGTH, HeaderValue::from(OVERSIZED_BODY_LEN));
    response
}

/// Mashery's over-QPS answer (`ERR_403_DEVELOPER_OVER_QPS`), with `status` 403 or 429.
pub(crate) fn mashery_over_qps(status: u16, retry_after_s: u32) -> HttpResponse {
    respond(
        status,
        Some("text/xml"),
        &[
            ("server", "Mashery Proxy".into()),
            (
                "x-error-detail-header",
                "Account Over Queries Per Second Limit".into(),
            ),
            ("x-mashery-error-code", "ERR_403_DEVELOPER_OVER_QPS".into()),
            ("retry-after", retry_after_s.to_string()),
        ],
        "<h1>Developer Over Qps</h1>",
    )
}

/// Finds a cookie value in the `Cookie` header.
pub(crate) fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all("cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|pair| {
            let (k, v) = pair.trim().split_once('=')?;
            (k == name).then(|| v.to_owned())
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invalid_header_values_are_dropped_not_panicking() {
        let r = respond(
            200,
            Some("text/plain"),
            &[("location", "a\nb".into()), ("x-ok", "yes".into())],
            "",
        );
        assert!(r.headers().get("location").is_none());
        assert_eq!(
            r.headers().get("x-ok").and_then(|v| v.to_str().ok()),
            Some("yes")
        );
    }

    #[test]
    fn escapes_html() {
        assert_eq!(
            html_escape("<a href=\"x\">&'"),
            "&lt;a href=&quot;x&quot;&gt;&amp;&#39;"
        );
    }
}
