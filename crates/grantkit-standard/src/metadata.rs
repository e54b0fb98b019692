//! `ServerMetadata`: what an authorization server says about itself (RFC 8414), discovered
//! from its issuer or written out by hand for a server that publishes nothing.

use grantkit_core::provider::http::{HttpResponse, ProviderHttp, token_endpoint_error};
use grantkit_core::store::codec::describe_json_error;
use grantkit_core::{Error, Result, provider::is_loopback};
use serde::Deserialize;
use url::Url;

/// The grant type of the device authorization grant (RFC 8628 §3.4).
pub(crate) const DEVICE_CODE_GRANT: &str = "urn:ietf:params:oauth:grant-type:device_code";

/// The path RFC 8414 §3 inserts between the issuer's host and its path.
const OAUTH_WELL_KNOWN: &str = "/.well-known/oauth-authorization-server";
/// The path OpenID Connect Discovery 1.0 §4 appends to the issuer.
const OPENID_WELL_KNOWN: &str = "/.well-known/openid-configuration";

/// An authorization server's metadata: its endpoints and what it supports.
///
/// [`discover`](Self::discover) reads it from the server (RFC 8414, falling back to OpenID
/// Connect discovery); [`manual`](Self::manual) and the `with_*` setters describe a server
/// that publishes none. Lists the server leaves out are `None`, and mean what RFC 8414 says
/// they mean when omitted.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct ServerMetadata {
    /// The issuer identifier: checked against the discovery URL's issuer, and against the
    /// `iss` of callbacks where the server sends it.
    pub issuer: Option<String>,
    /// Where the user's browser is sent.
    pub authorization_endpoint: Option<Url>,
    /// Where grants are exchanged for tokens.
    pub token_endpoint: Option<Url>,
    /// The OpenID Connect userinfo endpoint.
    pub userinfo_endpoint: Option<Url>,
    /// The RFC 7662 introspection endpoint.
    pub introspection_endpoint: Option<Url>,
    /// The RFC 7009 revocation endpoint.
    pub revocation_endpoint: Option<Url>,
    /// The RFC 8628 device authorization endpoint.
    pub device_authorization_endpoint: Option<Url>,
    /// The scopes the server knows.
    pub scopes_supported: Option<Vec<String>>,
    /// The `response_type` values the authorization endpoint accepts.
    pub response_types_supported: Vec<String>,
    /// The grant types the token endpoint accepts; omitted means `authorization_code` and
    /// `implicit` (RFC 8414 §2).
    pub grant_types_supported: Option<Vec<String>>,
    /// How clients authenticate at the token endpoint; omitted means
    /// `client_secret_basic`.
    pub token_endpoint_auth_methods_supported: Option<Vec<String>>,
    /// How clients authenticate at the revocation endpoint; omitted means as at the token
    /// endpoint.
    pub revocation_endpoint_auth_methods_supported: Option<Vec<String>>,
    /// How clients authenticate at the introspection endpoint; omitted means as at the
    /// token endpoint.
    pub introspection_endpoint_auth_methods_supported: Option<Vec<String>>,
    /// The PKCE methods the server accepts; omitted means unknown.
    pub code_challenge_methods_supported: Option<Vec<String>>,
    /// The server puts `iss` into every authorization response (RFC 9207).
    pub authorization_response_iss_parameter_supported: bool,
}

/// The metadata document as it arrives: URLs are checked afterwards, field by field, so an
/// error can name the field.
#[derive(Deserialize)]
struct RawMetadata {
    issuer: Option<String>,
    authorization_endpoint: Option<String>,
    token_endpoint: Option<String>,
    userinfo_endpoint: Option<String>,
    introspection_endpoint: Option<String>,
    revocation_endpoint: Option<String>,
    device_authorization_endpoint: Option<String>,
    scopes_supported: Option<Vec<String>>,
    response_types_supported: Option<Vec<String>>,
    grant_types_supported: Option<Vec<String>>,
    token_endpoint_auth_methods_supported: Option<Vec<String>>,
    revocation_endpoint_auth_methods_supported: Option<Vec<String>>,
    introspection_endpoint_auth_methods_supported: Option<Vec<String>>,
    code_challenge_methods_supported: Option<Vec<String>>,
    #[serde(default)]
    authorization_response_iss_parameter_supported: bool,
}

impl ServerMetadata {
    /// Metadata for a server that publishes none, known by its token endpoint.
    ///
    /// It offers the `code` response type once an authorization endpoint is set, and the
    /// `authorization_code`, `refresh_token` and `client_credentials` grants; narrow the
    /// flows with [`StandardProviderBuilder::flows`](crate::StandardProviderBuilder::flows)
    /// to those your client is registered for.
    pub fn manual(token_endpoint: Url) -> Self {
        Self {
            issuer: None,
            authorization_endpoint: None,
            token_endpoint: Some(token_endpoint),
            userinfo_endpoint: None,
            introspection_endpoint: None,
            revocation_endpoint: None,
            device_authorization_endpoint: None,
            scopes_supported: None,
            response_types_supported: Vec::new(),
            grant_types_supported: Some(
                ["authorization_code", "refresh_token", "client_credentials"]
                    .map(str::to_owned)
                    .to_vec(),
            ),
            token_endpoint_auth_methods_supported: None,
            revocation_endpoint_auth_methods_supported: None,
            introspection_endpoint_auth_methods_supported: None,
            code_challenge_methods_supported: None,
            authorization_response_iss_parameter_supported: false,
        }
    }

    /// Sets the issuer identifier.
    pub fn with_issuer(mut self, issuer: impl Into<String>) -> Self {
        self.issuer = Some(issuer.into());
        self
    }

    /// Sets the authorization endpoint, which offers the `code` response type unless
    /// [`with_response_types`](Self::with_response_types) says otherwise.
    pub fn with_authorization_endpoint(mut self, url: Url) -> Self {
        self.authorization_endpoint = Some(url);
        if self.response_types_supported.is_empty() {
            self.response_types_supported = vec!["code".to_owned()];
        }
        self
    }

    /// Sets the userinfo endpoint.
    pub fn with_userinfo_endpoint(mut self, url: Url) -> Self {
        self.userinfo_endpoint = Some(url);
        self
    }

    /// Sets the introspection endpoint (RFC 7662).
    pub fn with_introspection_endpoint(mut self, url: Url) -> Self {
        self.introspection_endpoint = Some(url);
        self
    }

    /// Sets the revocation endpoint (RFC 7009).
    pub fn with_revocation_endpoint(mut self, url: Url) -> Self {
        self.revocation_endpoint = Some(url);
        self
    }

    /// Sets the device authorization endpoint (RFC 8628), which offers the device grant.
    pub fn with_device_authorization_endpoint(mut self, url: Url) -> Self {
        self.device_authorization_endpoint = Some(url);
        if let Some(types) = &mut self.grant_types_supported
            && !types.iter().any(|t| t == DEVICE_CODE_GRANT)
        {
            types.push(DEVICE_CODE_GRANT.to_owned());
        }
        self
    }

    /// Sets the response types the authorization endpoint accepts. Include `token` only for
    /// a server that still offers the implicit grant.
    pub fn with_response_types<I, S>(mut self, types: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.response_types_supported = types.into_iter().map(Into::into).collect();
        self
    }

    /// Sets the grant types the token endpoint accepts.
    pub fn with_grant_types<I, S>(mut self, types: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.grant_types_supported = Some(types.into_iter().map(Into::into).collect());
        self
    }

    /// Sets the client authentication methods of the token endpoint.
    pub fn with_token_endpoint_auth_methods<I, S>(mut self, methods: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.token_endpoint_auth_methods_supported =
            Some(methods.into_iter().map(Into::into).collect());
        self
    }

    /// Sets the scopes the server knows.
    pub fn with_scopes<I, S>(mut self, scopes: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.scopes_supported = Some(scopes.into_iter().map(Into::into).collect());
        self
    }

    /// Sets whether the server sends `iss` in authorization responses (RFC 9207); it is
    /// then required, and must equal the issuer.
    pub fn with_iss_parameter(mut self, supported: bool) -> Self {
        self.authorization_response_iss_parameter_supported = supported;
        self
    }

    /// Reads the metadata of the server whose issuer identifier is `issuer`.
    ///
    /// Tries RFC 8414 (`/.well-known/oauth-authorization-server`, inserted before the
    /// issuer's path), then OpenID Connect discovery (`/.well-known/openid-configuration`,
    /// appended to it) when the first answers with a client error. The document must name
    /// exactly `issuer` as its issuer (RFC 8414 §3.3), or discovery fails.
    pub async fn discover(issuer: &str, http: &ProviderHttp) -> Result<Self> {
        let issuer_url = parse_issuer(issuer)?;
        let path = issuer_url.path().trim_end_matches('/');
        let mut oauth = issuer_url.clone();
        oauth.set_path(&format!("{OAUTH_WELL_KNOWN}{path}"));
        let mut openid = issuer_url.clone();
        openid.set_path(&format!("{path}{OPENID_WELL_KNOWN}"));

        let mut refused = Vec::new();
        for location in [oauth, openid] {
            let response = http
                .send(
                    http.client()?
                        .get(location.clone())
                        .header(http::header::ACCEPT, "application/json"),
                )
                .await?;
            match response.status.as_u16() {
                200 => {
                    let metadata = Self::from_json(&response.body)?;
                    return match metadata.issuer.as_deref() {
                        Some(named) if named == issuer => Ok(metadata),
                        named => Err(Error::configuration(format!(
                            "issuer mismatch: the metadata at {location} names the issuer {}, \
                             not {issuer} (RFC 8414 §3.3; the two must be identical, trailing \
                             slash included)",
                            named.map_or_else(|| "(none)".to_owned(), shorten)
                        ))),
                    };
                }
                400..=499 if response.status.as_u16() != 429 => {
                    refused.push(format!("{location} answered HTTP {}", response.status));
                }
                _ => return Err(failure(&response)),
            }
        }
        Err(Error::configuration(format!(
            "no authorization server metadata for {issuer}: {}",
            refused.join("; ")
        )))
    }

    /// Reads a metadata document (RFC 8414 §2) and checks its endpoints. The issuer is not
    /// compared with anything here: [`discover`](Self::discover) does that.
    pub fn from_json(document: &[u8]) -> Result<Self> {
        let raw: RawMetadata = serde_json::from_slice(document).map_err(|err| {
            Error::bad_response(format!(
                "the authorization server metadata is {}",
                describe_json_error(&err)
            ))
        })?;
        if let Some(issuer) = &raw.issuer {
            parse_issuer(issuer)?;
        }
        Ok(Self {
            authorization_endpoint: endpoint("authorization_endpoint", raw.authorization_endpoint)?,
            token_endpoint: endpoint("token_endpoint", raw.token_endpoint)?,
            userinfo_endpoint: endpoint("userinfo_endpoint", raw.userinfo_endpoint)?,
            introspection_endpoint: endpoint("introspection_endpoint", raw.introspection_endpoint)?,
            revocation_endpoint: endpoint("revocation_endpoint", raw.revocation_endpoint)?,
            device_authorization_endpoint: endpoint(
                "device_authorization_endpoint",
                raw.device_authorization_endpoint,
            )?,
            issuer: raw.issuer,
            scopes_supported: raw.scopes_supported,
            response_types_supported: raw.response_types_supported.unwrap_or_default(),
            grant_types_supported: raw.grant_types_supported,
            token_endpoint_auth_methods_supported: raw.token_endpoint_auth_methods_supported,
            revocation_endpoint_auth_methods_supported: raw
                .revocation_endpoint_auth_methods_supported,
            introspection_endpoint_auth_methods_supported: raw
                .introspection_endpoint_auth_methods_supported,
            code_challenge_methods_supported: raw.code_challenge_methods_supported,
            authorization_response_iss_parameter_supported: raw
                .authorization_response_iss_parameter_supported,
        })
    }

    /// The grant types the token endpoint accepts, with RFC 8414's default for an omitted
    /// list.
    pub fn grant_types(&self) -> Vec<&str> {
        match &self.grant_types_supported {
            Some(types) => types.iter().map(String::as_str).collect(),
            None => vec!["authorization_code", "implicit"],
        }
    }

    /// Whether the authorization endpoint offers the plain implicit grant: `token` alone as
    /// a response type. (`grant_types_supported` is no guide: OpenID servers list
    /// `implicit` there for `id_token` responses, which carry no access token.)
    pub fn offers_implicit(&self) -> bool {
        self.authorization_endpoint.is_some()
            && self.response_types_supported.iter().any(|t| t == "token")
    }

    /// Whether the authorization-code grant is on offer.
    pub fn offers_authorization_code(&self) -> bool {
        self.authorization_endpoint.is_some()
            && self.token_endpoint.is_some()
            && self.response_types_supported.iter().any(|t| t == "code")
            && self.grant_types().contains(&"authorization_code")
    }

    /// Whether the device authorization grant (RFC 8628) is on offer: a device
    /// authorization endpoint, and the grant type among the token endpoint's.
    pub fn offers_device_code(&self) -> bool {
        self.device_authorization_endpoint.is_some()
            && self.token_endpoint.is_some()
            && self.grant_types().contains(&DEVICE_CODE_GRANT)
    }

    /// Whether the client-credentials grant is on offer.
    pub fn offers_client_credentials(&self) -> bool {
        self.token_endpoint.is_some() && self.grant_types().contains(&"client_credentials")
    }

    /// Whether PKCE with S256 can be used: the server lists it, or says nothing about PKCE
    /// (a server that does not know PKCE ignores the parameters).
    pub fn accepts_s256(&self) -> bool {
        self.code_challenge_methods_supported
            .as_ref()
            .is_none_or(|methods| methods.iter().any(|m| m == "S256"))
    }
}

/// The error for a discovery answer that is neither metadata nor a client error.
fn failure(response: &HttpResponse) -> Error {
    match token_endpoint_error(response) {
        err @ (Error::RateLimited { .. } | Error::Unavailable { .. }) => err,
        _ => Error::bad_response(format!(
            "the metadata endpoint answered HTTP {}",
            response.status
        )),
    }
}

/// Checks an issuer identifier: an absolute `https` URL (plain `http` only on loopback)
/// without query or fragment (RFC 8414 §2).
fn parse_issuer(issuer: &str) -> Result<Url> {
    let url = Url::parse(issuer).map_err(|err| {
        Error::configuration(format!(
            "the issuer {} is not a URL: {err}",
            shorten(issuer)
        ))
    })?;
    if url.query().is_some() || url.fragment().is_some() {
        return Err(Error::configuration(format!(
            "the issuer {} has a query or fragment (RFC 8414 §2 forbids both)",
            shorten(issuer)
        )));
    }
    check_secure(&url)
        .map_err(|why| Error::configuration(format!("the issuer {}: {why}", shorten(issuer))))?;
    Ok(url)
}

fn endpoint(field: &str, value: Option<String>) -> Result<Option<Url>> {
    let Some(value) = value else {
        return Ok(None);
    };
    let url = Url::parse(&value).map_err(|err| {
        Error::bad_response(format!("the metadata's {field} is not a URL: {err}"))
    })?;
    check_secure(&url)
        .map_err(|why| Error::bad_response(format!("the metadata's {field}: {why}")))?;
    Ok(Some(url))
}

/// Endpoints are HTTPS, or plain HTTP on the loopback interface only.
pub(crate) fn check_secure(url: &Url) -> std::result::Result<(), &'static str> {
    match url.scheme() {
        "https" => Ok(()),
        "http" if is_loopback(url) => Ok(()),
        "http" => Err("plain HTTP is allowed only on a loopback address"),
        _ => Err("only https URLs can be used"),
    }
}

/// A value from a server, cut to a length fit for an error message.
fn shorten(text: &str) -> String {
    const MAX: usize = 200;
    if text.chars().count() <= MAX {
        text.to_owned()
    } else {
        format!("{}…", text.chars().take(MAX).collect::<String>())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DOCUMENT: &str = r#"{
        "issuer": "https://as.example.com",
        "authorization_endpoint": "https://as.example.com/auth",
        "token_endpoint": "https://as.example.com/token",
        "revocation_endpoint": "https://as.example.com/revoke",
        "response_types_supported": ["code id_token", "code", "id_token", "none"],
        "grant_types_supported": ["implicit", "authorization_code", "refresh_token"],
        "code_challenge_methods_supported": ["S256"],
        "authorization_response_iss_parameter_supported": true,
        "some_extension": {"nested": [1, 2, 3]}
    }"#;

    #[test]
    fn a_document_is_read_with_its_endpoints() {
        let metadata = ServerMetadata::from_json(DOCUMENT.as_bytes()).unwrap();
        assert_eq!(metadata.issuer.as_deref(), Some("https://as.example.com"));
        assert_eq!(
            metadata.token_endpoint.unwrap().as_str(),
            "https://as.example.com/token"
        );
        assert!(metadata.authorization_response_iss_parameter_supported);
        assert!(metadata.userinfo_endpoint.is_none());
    }

    #[test]
    fn implicit_needs_the_plain_token_response_type_not_the_grant_type() {
        let metadata = ServerMetadata::from_json(DOCUMENT.as_bytes()).unwrap();
        assert!(metadata.grant_types().contains(&"implicit"));
        assert!(
            !metadata.offers_implicit(),
            "`id_token` responses are no implicit grant"
        );
        assert!(metadata.offers_authorization_code());
        assert!(!metadata.offers_client_credentials());
        let with_token = metadata.with_response_types(["code", "token"]);
        assert!(with_token.offers_implicit());
    }

    #[test]
    fn omitted_lists_take_rfc_8414_defaults() {
        let metadata = ServerMetadata::from_json(
            br#"{"issuer":"https://a.example","authorization_endpoint":"https://a.example/a",
                 "token_endpoint":"https://a.example/t","response_types_supported":["code"]}"#,
        )
        .unwrap();
        assert_eq!(metadata.grant_types(), ["authorization_code", "implicit"]);
        assert!(metadata.offers_authorization_code());
        assert!(!metadata.offers_client_credentials());
        assert!(
            metadata.accepts_s256(),
            "silence about PKCE does not rule it out"
        );
        let plain_only = ServerMetadata {
            code_challenge_methods_supported: Some(vec!["plain".into()]),
            ..metadata
        };
        assert!(!plain_only.accepts_s256());
    }

    #[test]
    fn insecure_or_malformed_endpoints_are_refused_by_name() {
        for (document, field) in [
            (
                r#"{"token_endpoint":"http://as.example.com/token"}"#,
                "token_endpoint",
            ),
            (
                r#"{"revocation_endpoint":"not a url"}"#,
                "revocation_endpoint",
            ),
            (
                r#"{"authorization_endpoint":"ftp://as.example.com/a"}"#,
                "authorization_endpoint",
            ),
        ] {
            let err = ServerMetadata::from_json(document.as_bytes()).unwrap_err();
            assert!(matches!(err, Error::BadResponse { .. }), "{err}");
            assert!(err.to_string().contains(field), "{err}");
        }
        let loopback =
            ServerMetadata::from_json(br#"{"token_endpoint":"http://127.0.0.1:9/token"}"#);
        assert!(loopback.is_ok(), "plain HTTP is fine on loopback");
    }

    #[test]
    fn a_malformed_document_is_described_without_quoting_it() {
        for document in [
            &br#"{"issuer": "https://a.example", "token_endpoint": 12}"#[..],
            br#"{"issuer": "secret-looking-value"#,
            b"<html>secret-looking-value</html>",
        ] {
            let err = ServerMetadata::from_json(document).unwrap_err();
            assert!(!err.to_string().contains("secret-looking-value"), "{err}");
        }
    }

    #[test]
    fn issuers_must_be_secure_urls_without_query_or_fragment() {
        for issuer in [
            "https://a.example?x=1",
            "https://a.example#f",
            "http://a.example",
            "a.example",
        ] {
            let err = parse_issuer(issuer).unwrap_err();
            assert!(
                matches!(err, Error::Configuration { .. }),
                "{issuer}: {err}"
            );
        }
        parse_issuer("https://a.example/tenant/1").unwrap();
        parse_issuer("http://127.0.0.1:8080").unwrap();
        parse_issuer("http://[::1]:8080").unwrap();
    }
}
