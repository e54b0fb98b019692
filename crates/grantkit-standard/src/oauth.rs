//! The `oauth2` crate, used to build requests: authorization URLs, and token and
//! introspection requests with their client authentication.
//!
//! RFC 7009 revocation requests are built here instead ([`authenticated_form`]): `oauth2`
//! refuses a revocation endpoint that is not HTTPS even on a loopback address, where
//! development servers (and the test server) live.
//!
//! The token-endpoint requests are built by `oauth2` and sent by grantkit: `oauth2` hands
//! each finished `http::Request` to its HTTP-client seam, where [`prepare`] takes it
//! instead of sending it. grantkit then sends it through `ProviderHttp` (timeouts, size
//! cap, no redirects) and reads the answer itself, because `oauth2`'s own reading accepts
//! only status 200 with a JSON content type, parses strictly (`expires_in` as a string
//! fails), and loses the status of a non-JSON error (a 503 and a 429 look alike).

use crate::ClientAuth;
use grantkit_core::{ClientSecret, Error, Result};
use oauth2::basic::BasicClient;
use oauth2::{
    AuthType, ClientId, EndpointMaybeSet, EndpointNotSet, ErrorResponse, HttpRequest, HttpResponse,
    RequestTokenError,
};
use std::fmt;
use url::Url;

/// An `oauth2` client of one server: authorization, introspection and token endpoints
/// each set where the server has them.
pub(crate) type OAuthClient = BasicClient<
    EndpointMaybeSet,
    EndpointNotSet,
    EndpointMaybeSet,
    EndpointNotSet,
    EndpointMaybeSet,
>;

/// The endpoints of an [`OAuthClient`].
pub(crate) struct ClientEndpoints<'a> {
    pub(crate) authorization: Option<&'a Url>,
    pub(crate) token: Option<&'a Url>,
    pub(crate) introspection: Option<&'a Url>,
}

/// An `oauth2` client authenticating as `client_id` with `auth`.
pub(crate) fn client(
    client_id: &str,
    secret: &ClientSecret,
    auth: ClientAuth,
    endpoints: &ClientEndpoints<'_>,
) -> OAuthClient {
    BasicClient::new(ClientId::new(client_id.to_owned()))
        .set_client_secret(oauth2::ClientSecret::new(secret.expose_secret().to_owned()))
        .set_auth_type(match auth {
            // RFC 6749 §2.3.1: oauth2 form-urlencodes the id and the secret before base64.
            ClientAuth::ClientSecretBasic => AuthType::BasicAuth,
            ClientAuth::ClientSecretPost => AuthType::RequestBody,
        })
        .set_auth_uri_option(
            endpoints
                .authorization
                .map(|u| oauth2::AuthUrl::from_url(u.clone())),
        )
        .set_token_uri_option(
            endpoints
                .token
                .map(|u| oauth2::TokenUrl::from_url(u.clone())),
        )
        .set_introspection_url_option(
            endpoints
                .introspection
                .map(|u| oauth2::IntrospectionUrl::from_url(u.clone())),
        )
}

/// A form POST to `endpoint`, authenticated as the client with `auth`: what `oauth2` builds
/// for token requests, for an endpoint `oauth2` will not address.
pub(crate) fn authenticated_form(
    endpoint: &Url,
    client_id: &str,
    secret: &ClientSecret,
    auth: ClientAuth,
    params: &[(&str, &str)],
) -> Result<HttpRequest> {
    let mut form = url::form_urlencoded::Serializer::new(String::new());
    form.extend_pairs(params);
    let mut request = http::Request::builder()
        .method(http::Method::POST)
        .uri(endpoint.as_str())
        .header(http::header::ACCEPT, "application/json")
        .header(
            http::header::CONTENT_TYPE,
            "application/x-www-form-urlencoded",
        );
    match auth {
        ClientAuth::ClientSecretBasic => {
            let mut value = http::HeaderValue::from_str(&basic_credentials(client_id, secret))
                .map_err(|_| Error::configuration("the client credentials cannot form a header"))?;
            value.set_sensitive(true);
            request = request.header(http::header::AUTHORIZATION, value);
        }
        ClientAuth::ClientSecretPost => {
            form.append_pair("client_id", client_id);
            form.append_pair("client_secret", secret.expose_secret());
        }
    }
    request
        .body(form.finish().into_bytes())
        .map_err(|_| Error::configuration("the request could not be built"))
}

/// `Basic` credentials as RFC 6749 §2.3.1 wants them: the id and the secret each
/// form-urlencoded, then joined with `:` and base64-encoded.
pub(crate) fn basic_credentials(client_id: &str, secret: &ClientSecret) -> String {
    use base64::Engine as _;
    let encode =
        |text: &str| url::form_urlencoded::byte_serialize(text.as_bytes()).collect::<String>();
    let joined = format!("{}:{}", encode(client_id), encode(secret.expose_secret()));
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(joined)
    )
}

/// The request `oauth2` built, taken at its HTTP-client seam. `Debug` and `Display` show
/// nothing of it: its header or body carries the client secret.
pub(crate) struct Prepared(Box<HttpRequest>);

impl fmt::Debug for Prepared {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Prepared(..)")
    }
}

impl fmt::Display for Prepared {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a prepared request")
    }
}

impl std::error::Error for Prepared {}

/// The "HTTP client" handed to `oauth2`'s `request`: it keeps the request and sends
/// nothing.
pub(crate) fn prepare(request: HttpRequest) -> std::result::Result<HttpResponse, Prepared> {
    Err(Prepared(Box::new(request)))
}

/// The request out of what `oauth2`'s `request(&prepare)` returned.
pub(crate) fn prepared<T, TE: ErrorResponse>(
    outcome: std::result::Result<T, RequestTokenError<Prepared, TE>>,
) -> Result<HttpRequest> {
    match outcome {
        Err(RequestTokenError::Request(Prepared(request))) => Ok(*request),
        // Only configuration problems (a missing endpoint, an unbuildable request) end
        // here: nothing was sent and nothing answered.
        Err(RequestTokenError::Other(what)) => Err(Error::configuration(format!(
            "the request could not be built: {what}"
        ))),
        Err(_) | Ok(_) => Err(Error::configuration(
            "the request could not be built".to_owned(),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine as _;
    use base64::engine::general_purpose::STANDARD;
    use oauth2::AuthorizationCode;

    /// Reads `Authorization: Basic` back into its two form-urlencoded halves.
    fn decode_basic(header: &str) -> (String, String) {
        let encoded = header.strip_prefix("Basic ").expect("a Basic header");
        let decoded = String::from_utf8(STANDARD.decode(encoded).unwrap()).unwrap();
        let (id, secret) = decoded.split_once(':').expect("id:secret");
        (id.to_owned(), secret.to_owned())
    }

    fn endpoints(token: &Url) -> ClientEndpoints<'_> {
        ClientEndpoints {
            authorization: None,
            token: Some(token),
            introspection: None,
        }
    }

    #[test]
    fn basic_credentials_are_form_urlencoded_before_base64() {
        let token = Url::parse("https://as.example/token").unwrap();
        let secret = ClientSecret::new("s:e@c+r%e&t=/ ~!");
        let client = client(
            "id:with space",
            &secret,
            ClientAuth::ClientSecretBasic,
            &endpoints(&token),
        );
        let request = prepared(
            client
                .exchange_code(AuthorizationCode::new("c".into()))
                .unwrap()
                .request(&prepare),
        )
        .unwrap();
        let header = request.headers()["authorization"].to_str().unwrap();
        let (id, secret) = decode_basic(header);
        assert_eq!(id, "id%3Awith+space");
        assert_eq!(secret, "s%3Ae%40c%2Br%25e%26t%3D%2F+%7E%21");
        let body = String::from_utf8(request.body().clone()).unwrap();
        assert!(!body.contains("client_secret"), "{body}");
        assert!(
            !body.contains("client_id"),
            "basic sends no client_id in the body"
        );
    }

    #[test]
    fn post_credentials_travel_in_the_body() {
        let token = Url::parse("https://as.example/token").unwrap();
        let secret = ClientSecret::new("p&s=1");
        let client = client(
            "cid",
            &secret,
            ClientAuth::ClientSecretPost,
            &endpoints(&token),
        );
        let request = prepared(
            client
                .exchange_client_credentials()
                .unwrap()
                .request(&prepare),
        )
        .unwrap();
        assert!(request.headers().get("authorization").is_none());
        let body = String::from_utf8(request.body().clone()).unwrap();
        let pairs: Vec<(String, String)> = url::form_urlencoded::parse(body.as_bytes())
            .into_owned()
            .collect();
        assert!(pairs.contains(&("client_id".into(), "cid".into())));
        assert!(pairs.contains(&("client_secret".into(), "p&s=1".into())));
        assert!(pairs.contains(&("grant_type".into(), "client_credentials".into())));
    }

    #[test]
    fn direct_requests_encode_credentials_as_oauth2_does() {
        let token = Url::parse("https://as.example/token").unwrap();
        let secret = ClientSecret::new("s:e@c+r%e&t=/ ~!");
        let built_by_oauth2 = prepared(
            client(
                "id:x",
                &secret,
                ClientAuth::ClientSecretBasic,
                &endpoints(&token),
            )
            .exchange_client_credentials()
            .unwrap()
            .request(&prepare),
        )
        .unwrap();
        let direct = authenticated_form(
            &token,
            "id:x",
            &secret,
            ClientAuth::ClientSecretBasic,
            &[("token", "t")],
        )
        .unwrap();
        assert_eq!(
            direct.headers()["authorization"],
            built_by_oauth2.headers()["authorization"]
        );
        assert!(direct.headers()["authorization"].is_sensitive());
        assert_eq!(direct.body(), b"token=t");

        let post = authenticated_form(
            &token,
            "cid",
            &secret,
            ClientAuth::ClientSecretPost,
            &[("token", "t")],
        )
        .unwrap();
        assert!(post.headers().get("authorization").is_none());
        let pairs: Vec<(String, String)> = url::form_urlencoded::parse(post.body())
            .into_owned()
            .collect();
        assert_eq!(
            pairs,
            [
                ("token".to_owned(), "t".to_owned()),
                ("client_id".to_owned(), "cid".to_owned()),
                ("client_secret".to_owned(), "s:e@c+r%e&t=/ ~!".to_owned()),
            ]
        );
    }

    #[test]
    fn a_prepared_request_shows_nothing() {
        let request = http::Request::new(b"client_secret=hidden".to_vec());
        let prepared = Prepared(Box::new(request));
        assert!(!format!("{prepared:?} {prepared}").contains("hidden"));
    }

    #[test]
    fn a_missing_endpoint_is_a_configuration_error() {
        let secret = ClientSecret::new("s");
        let client = client(
            "cid",
            &secret,
            ClientAuth::ClientSecretBasic,
            &ClientEndpoints {
                authorization: None,
                token: None,
                introspection: None,
            },
        );
        assert!(client.exchange_client_credentials().is_err());
    }
}
