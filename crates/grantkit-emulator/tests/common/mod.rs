//! Helpers shared by the emulator's HTTP tests.

#![allow(dead_code, unreachable_pub)]

use reqwest::header::HeaderMap;
use serde_json::Value;

/// A plain HTTP client that never follows redirects.
pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client builds")
}

/// A response read in full.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: HeaderMap,
    pub text: String,
}

impl Reply {
    pub async fn read(response: reqwest::Response) -> Reply {
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let text = response.text().await.expect("body reads");
        Reply {
            status,
            headers,
            text,
        }
    }

    pub fn json(&self) -> Value {
        serde_json::from_str(&self.text).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text))
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .get(name)
            .map(|v| v.to_str().expect("visible ASCII header"))
    }

    /// Asserts the status and returns self.
    #[track_caller]
    pub fn expect(self, status: u16) -> Self {
        assert_eq!(
            self.status, status,
            "unexpected status; body: {}",
            self.text
        );
        self
    }
}

/// Sends a request and reads the reply.
pub async fn send(request: reqwest::RequestBuilder) -> Reply {
    Reply::read(request.send().await.expect("request is answered")).await
}

/// Query parameters of a URL (or of its fragment when `fragment` is true).
pub fn params_of(location: &str, fragment: bool) -> Vec<(String, String)> {
    let url = url::Url::parse(location).expect("absolute URL");
    let part = if fragment {
        url.fragment().unwrap_or("").to_owned()
    } else {
        url.query().unwrap_or("").to_owned()
    };
    url::form_urlencoded::parse(part.as_bytes())
        .into_owned()
        .collect()
}

/// The value of `key` in `pairs`.
pub fn param<'a>(pairs: &'a [(String, String)], key: &str) -> Option<&'a str> {
    pairs
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
}
