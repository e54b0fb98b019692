//! join.me's OAuth 2.0 server: authorize (consent page and auto-consent), token (code and
//! refresh), Expire Access, renew authorization and token info.

use std::collections::HashMap;

use http::Method;
use serde::Serialize;
use serde_json::{Value, json};

use super::JoinMeState;
use super::model::{
    AccessRow, CodeRow, IssuedTokens, JoinMeGrant, JoinMePlan, RefreshRow, TokenStatus,
};
use crate::AutoConsent;
use crate::server::AppRequest;
use crate::wire::{self, HttpResponse, html_escape, respond};

const JSON: &str = "application/json; charset=utf-8";
const HTML: &str = "text/html; charset=utf-8";
/// Scopes join.me knows.
const SCOPES: [&str; 4] = ["user_info", "scheduler", "start_meeting", "provisioning"];

fn random_token() -> String {
    wire::random_string(wire::LOWER_ALNUM, 24)
}

fn reference() -> String {
    wire::random_string(wire::LOWER_HEX, 10)
}

fn json_response(status: u16, body: &Value, headers: &[(&str, String)]) -> HttpResponse {
    respond(status, Some(JSON), headers, body.to_string())
}

/// The ASP.NET backend's 404.
pub(crate) fn not_found() -> HttpResponse {
    respond(
        404,
        Some(HTML),
        &[],
        "<!DOCTYPE html><html><body><h1>Not Found</h1></body></html>\n",
    )
}

/// The token endpoint's backend failure, with an `error_ticket_id`.
pub(crate) fn server_error() -> HttpResponse {
    json_response(
        500,
        &json!({"error": "server_error", "error_ticket_id": reference(), "error_description": ""}),
        &[],
    )
}

/// The authorize error page: JSON, never a redirect.
fn error_page(status: u16) -> HttpResponse {
    let reason = http::StatusCode::from_u16(status)
        .ok()
        .and_then(|s| s.canonical_reason())
        .unwrap_or("Error")
        .replace(' ', "");
    let exit_point: u64 = 101_101_103_000 + u64::from(status % 1000);
    json_response(
        status,
        &json!({"StatusCode": status, "ExitPointId": exit_point, "Message": reason, "ReferenceNumber": reference()}),
        &[],
    )
}

/// Where a token stands at `now`.
pub(crate) fn status_of(row: &AccessRow, now: i64) -> TokenStatus {
    if row.revoked {
        TokenStatus::Revoked
    } else if now >= row.stale_after || row.expired_at.is_some_and(|t| now >= t) {
        TokenStatus::Stale
    } else {
        TokenStatus::Active
    }
}

fn ttl_secs(d: std::time::Duration) -> i64 {
    i64::try_from(d.as_secs()).unwrap_or(i64::MAX)
}

/// Creates an access token (and, for the code grant, a refresh token).
pub(crate) fn issue(
    state: &mut JoinMeState,
    client_id: &str,
    email: &str,
    scopes: &[String],
    grant: JoinMeGrant,
    now: i64,
) -> IssuedTokens {
    let refresh_token = (grant == JoinMeGrant::Code).then(|| {
        let token = random_token();
        state.db.refresh.insert(
            token.clone(),
            RefreshRow {
                client_id: client_id.into(),
                email: email.into(),
                scopes: scopes.to_vec(),
                issued_at: now,
                revoked: false,
            },
        );
        token
    });
    let access_token = new_access(
        state,
        client_id,
        email,
        scopes,
        grant,
        refresh_token.clone(),
        now,
    );
    IssuedTokens {
        access_token,
        refresh_token,
    }
}

fn new_access(
    state: &mut JoinMeState,
    client_id: &str,
    email: &str,
    scopes: &[String],
    grant: JoinMeGrant,
    refresh_token: Option<String>,
    now: i64,
) -> String {
    let token = random_token();
    state.db.access.insert(
        token.clone(),
        AccessRow {
            client_id: client_id.into(),
            email: email.into(),
            scopes: scopes.to_vec(),
            grant,
            refresh_token,
            stale_after: now.saturating_add(ttl_secs(state.quirks.access_ttl)),
            expired_at: None,
            revoked: false,
        },
    );
    token
}

/// First value of each parameter.
fn first_values(pairs: Vec<(String, String)>) -> HashMap<String, String> {
    let mut map = HashMap::new();
    for (k, v) in pairs {
        map.entry(k).or_insert(v);
    }
    map
}

/// Parameters from a form or JSON body (chosen by `Content-Type`, else by the first byte);
/// `None` when a JSON body does not parse or is not an object of scalars.
fn body_params(req: &AppRequest) -> Option<HashMap<String, String>> {
    let media = wire::media_type(&req.headers);
    let looks_json = req.body.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'{');
    let is_json = match media.as_deref() {
        Some("application/json") => true,
        Some("application/x-www-form-urlencoded") => false,
        _ => looks_json,
    };
    if !is_json {
        return Some(first_values(wire::form_pairs(&req.body)));
    }
    let Ok(Value::Object(map)) = serde_json::from_slice::<Value>(&req.body) else {
        return None;
    };
    let mut out = HashMap::new();
    for (k, v) in map {
        let text = match v {
            Value::String(s) => s,
            Value::Number(n) => n.to_string(),
            Value::Bool(b) => b.to_string(),
            Value::Null => continue,
            Value::Array(_) | Value::Object(_) => return None,
        };
        out.insert(k, text);
    }
    Some(out)
}

fn redirect_matches(registered: &str, given: &str, lenient: bool) -> bool {
    if lenient {
        registered
            .trim_end_matches('/')
            .eq_ignore_ascii_case(given.trim_end_matches('/'))
    } else {
        registered == given
    }
}

/// Validated authorize parameters.
#[derive(Debug, Clone)]
struct AuthorizeRequest {
    response_type: String,
    client_id: String,
    redirect_uri: String,
    scopes: Vec<String>,
    state: Option<String>,
}

fn validate(state: &JoinMeState, params: &HashMap<String, String>) -> Option<AuthorizeRequest> {
    let get = |k: &str| params.get(k).cloned().unwrap_or_default();
    let response_type = get("response_type");
    if response_type != "code" && response_type != "token" {
        return None;
    }
    let client_id = get("client_id");
    let app = state.db.app(&client_id)?;
    let redirect_uri = get("redirect_uri");
    if !redirect_matches(
        &app.callback_url,
        &redirect_uri,
        state.quirks.lenient_redirect_uri,
    ) {
        return None;
    }
    let scopes: Vec<String> = get("scope")
        .split(' ')
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect();
    if scopes.is_empty() || !scopes.iter().all(|s| SCOPES.contains(&s.as_str())) {
        return None;
    }
    if scopes.iter().any(|s| s == "provisioning") && app.plan != JoinMePlan::Business {
        return None;
    }
    Some(AuthorizeRequest {
        response_type,
        client_id,
        redirect_uri: app.callback_url.clone(),
        scopes,
        state: params.get("state").cloned(),
    })
}

fn encode(value: &str) -> String {
    url::form_urlencoded::byte_serialize(value.as_bytes()).collect()
}

fn with_params(uri: &str, separator_query: bool, params: &[(&str, String)]) -> String {
    let body: Vec<String> = params
        .iter()
        .map(|(k, v)| format!("{k}={}", encode(v)))
        .collect();
    let joined = body.join("&");
    if separator_query {
        let sep = if uri.contains('?') { '&' } else { '?' };
        format!("{uri}{sep}{joined}")
    } else {
        format!("{uri}#{joined}")
    }
}

fn redirect(location: String) -> HttpResponse {
    respond(
        302,
        Some(HTML),
        &[("location", location), ("cache-control", "no-store".into())],
        "",
    )
}

/// Redirects with the code or token, or the decline.
fn finish(
    state: &mut JoinMeState,
    request: &AuthorizeRequest,
    email: Option<&str>,
    now: i64,
) -> HttpResponse {
    let implicit = request.response_type == "token";
    let mut params: Vec<(&str, String)> = Vec::new();
    match email {
        None => params.push(("error", state.quirks.deny_error.clone())),
        Some(email) if implicit => {
            let tokens = issue(
                state,
                &request.client_id,
                email,
                &request.scopes,
                JoinMeGrant::Implicit,
                now,
            );
            params.push(("access_token", tokens.access_token));
            if state.quirks.implicit_fragment_extras {
                params.push(("token_type", "bearer".into()));
                params.push(("expires_in", state.quirks.access_ttl.as_secs().to_string()));
            }
        }
        Some(email) => {
            let code = random_token();
            state.db.codes.insert(
                code.clone(),
                CodeRow {
                    client_id: request.client_id.clone(),
                    redirect_uri: request.redirect_uri.clone(),
                    email: email.to_owned(),
                    scopes: request.scopes.clone(),
                    expires_at: now.saturating_add(ttl_secs(state.quirks.code_ttl)),
                    used: false,
                },
            );
            params.push(("code", code));
        }
    }
    if let Some(s) = &request.state {
        params.push(("state", s.clone()));
    }
    redirect(with_params(&request.redirect_uri, !implicit, &params))
}

fn consent_page(
    state: &JoinMeState,
    request: &AuthorizeRequest,
    error: Option<&str>,
) -> HttpResponse {
    let hidden = |name: &str, value: &str| {
        format!(
            "<input type=\"hidden\" name=\"{name}\" value=\"{}\">",
            html_escape(value)
        )
    };
    let error = error.map_or_else(String::new, |e| {
        format!("<p class=\"error\">{}</p>", html_escape(e))
    });
    let body = format!(
        "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>Request OAuth 2.0 Permission</title></head><body>\
         <h1>Request OAuth 2.0 Permission</h1>{error}\
         <p>An application would like to access your join.me account: {scopes}.</p>\
         <form method=\"post\" action=\"{AUTHORIZE}\">{rt}{ci}{ru}{sc}{st}\
         <label>E-mail <input type=\"email\" name=\"email\"></label>\
         <label>Password <input type=\"password\" name=\"password\"></label>\
         <button type=\"submit\" name=\"decision\" value=\"allow\">Allow</button>\
         <button type=\"submit\" name=\"decision\" value=\"deny\">Deny</button>\
         </form></body></html>\n",
        scopes = html_escape(&request.scopes.join(", ")),
        AUTHORIZE = super::AUTHORIZE_PATH,
        rt = hidden("response_type", &request.response_type),
        ci = hidden("client_id", &request.client_id),
        ru = hidden("redirect_uri", &request.redirect_uri),
        sc = hidden("scope", &request.scopes.join(" ")),
        st = request
            .state
            .as_deref()
            .map_or_else(String::new, |s| hidden("state", s)),
    );
    let mut headers = vec![("cache-control", "no-store".to_owned())];
    if state.quirks.x_frame_options {
        headers.push(("x-frame-options", "DENY".into()));
    }
    respond(200, Some(HTML), &headers, body)
}

/// `GET`/`POST /api/public/v1/auth/oauth2`.
pub(crate) fn authorize(state: &mut JoinMeState, req: &AppRequest, now: i64) -> HttpResponse {
    let params = match req.method {
        Method::GET => first_values(wire::form_pairs(
            req.query.as_deref().unwrap_or("").as_bytes(),
        )),
        Method::POST => first_values(wire::form_pairs(&req.body)),
        _ => return error_page(405),
    };
    // Parameters are validated before anything else, and failures never redirect.
    let Some(request) = validate(state, &params) else {
        return error_page(state.quirks.authorize_error_status);
    };
    if req.method == Method::GET {
        return match state.auto_consent.clone() {
            Some(AutoConsent::Approve(email)) => {
                match state.db.user(&email).map(|u| u.email.clone()) {
                    Some(email) => finish(state, &request, Some(&email), now),
                    None => consent_page(
                        state,
                        &request,
                        Some("The auto-consent user does not exist."),
                    ),
                }
            }
            Some(AutoConsent::Deny) => finish(state, &request, None, now),
            None => consent_page(state, &request, None),
        };
    }
    if params.get("decision").map(String::as_str) != Some("allow") {
        return finish(state, &request, None, now);
    }
    let email = params.get("email").cloned().unwrap_or_default();
    let password = params.get("password").cloned().unwrap_or_default();
    match state
        .db
        .user(&email)
        .filter(|u| u.password == password)
        .map(|u| u.email.clone())
    {
        Some(email) => finish(state, &request, Some(&email), now),
        None => consent_page(
            state,
            &request,
            Some("The e-mail address or password is incorrect."),
        ),
    }
}

fn oauth_error(status: u16, code: &str, description: Option<&str>) -> HttpResponse {
    let body = match description {
        Some(d) => json!({"error": code, "error_description": d}),
        None => json!({"error": code}),
    };
    json_response(status, &body, &[("cache-control", "no-store".into())])
}

#[derive(Serialize)]
struct TokenResponse {
    access_token: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    refresh_token: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    token_type: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    expires_in: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    scope: Option<String>,
}

fn token_success(
    state: &JoinMeState,
    access_token: String,
    refresh_token: Option<String>,
    scopes: &[String],
) -> HttpResponse {
    let body = TokenResponse {
        access_token,
        refresh_token,
        token_type: state.quirks.token_type_field.then_some("bearer"),
        expires_in: state.quirks.token_expires_in,
        scope: state.quirks.token_scope_field.then(|| scopes.join(" ")),
    };
    let text = serde_json::to_string(&body).unwrap_or_default();
    respond(
        200,
        Some(JSON),
        &[
            ("cache-control", "no-store".into()),
            ("pragma", "no-cache".into()),
        ],
        text,
    )
}

/// `POST /api/public/v1/auth/token`.
pub(crate) fn token(state: &mut JoinMeState, req: &AppRequest, now: i64) -> HttpResponse {
    if req.method != Method::POST {
        return oauth_error(
            405,
            "invalid_request",
            Some("The token endpoint only accepts POST."),
        );
    }
    let Some(params) = body_params(req) else {
        return oauth_error(
            400,
            "invalid_request",
            Some("The request body could not be parsed."),
        );
    };
    let get = |k: &str| params.get(k).filter(|v| !v.is_empty()).cloned();
    let Some(grant_type) = get("grant_type") else {
        return oauth_error(
            400,
            "invalid_request",
            Some("Missing parameter: grant_type"),
        );
    };
    let required: &[&str] = match grant_type.as_str() {
        "authorization_code" => &["code", "client_id", "client_secret", "redirect_uri"],
        "refresh_token" => &["refresh_token", "client_id", "client_secret"],
        _ => {
            return oauth_error(
                400,
                "unsupported_grant_type",
                Some("The grant type is not supported."),
            );
        }
    };
    if let Some(missing) = required.iter().find(|k| get(k).is_none()) {
        return oauth_error(
            400,
            "invalid_request",
            Some(&format!("Missing parameter: {missing}")),
        );
    }
    let client_id = get("client_id").unwrap_or_default();
    let client_secret = get("client_secret").unwrap_or_default();
    if state
        .db
        .app(&client_id)
        .is_none_or(|a| a.client_secret != client_secret)
    {
        return oauth_error(
            state.quirks.invalid_client_status,
            "invalid_client",
            Some("Client authentication failed."),
        );
    }
    if grant_type == "authorization_code" {
        let code = get("code").unwrap_or_default();
        let redirect_uri = get("redirect_uri").unwrap_or_default();
        let Some(row) = state.db.codes.get_mut(&code) else {
            return oauth_error(400, "invalid_authorization_code", None);
        };
        if row.used || now >= row.expires_at || row.client_id != client_id {
            // A used code stays used; an expired one is gone.
            return oauth_error(400, "invalid_authorization_code", None);
        }
        if !redirect_matches(
            &row.redirect_uri,
            &redirect_uri,
            state.quirks.lenient_redirect_uri,
        ) {
            return oauth_error(
                400,
                "invalid_grant",
                Some("The redirect_uri does not match the authorization request."),
            );
        }
        row.used = true;
        let (email, scopes) = (row.email.clone(), row.scopes.clone());
        let tokens = issue(state, &client_id, &email, &scopes, JoinMeGrant::Code, now);
        return token_success(state, tokens.access_token, tokens.refresh_token, &scopes);
    }
    let refresh_token = get("refresh_token").unwrap_or_default();
    let refresh_ttl = state.quirks.refresh_ttl.map(ttl_secs);
    let valid = state.db.refresh.get(&refresh_token).filter(|r| {
        !r.revoked
            && r.client_id == client_id
            && refresh_ttl.is_none_or(|ttl| now < r.issued_at.saturating_add(ttl))
    });
    let Some(row) = valid.cloned() else {
        return oauth_error(
            400,
            "invalid_grant",
            Some("The refresh token is invalid or expired."),
        );
    };
    if state.quirks.revoke_old_on_refresh {
        for access in state.db.access.values_mut() {
            if access.refresh_token.as_deref() == Some(refresh_token.as_str()) {
                access.revoked = true;
            }
        }
    }
    let refresh_out = if state.quirks.refresh_rotation {
        if let Some(old) = state.db.refresh.get_mut(&refresh_token) {
            old.revoked = true;
        }
        let new = random_token();
        state.db.refresh.insert(
            new.clone(),
            RefreshRow {
                issued_at: now,
                revoked: false,
                ..row.clone()
            },
        );
        new
    } else {
        refresh_token
    };
    let access = new_access(
        state,
        &client_id,
        &row.email,
        &row.scopes,
        JoinMeGrant::Code,
        Some(refresh_out.clone()),
        now,
    );
    token_success(state, access, Some(refresh_out), &row.scopes)
}

fn expire_result(state: &JoinMeState, ok: bool) -> HttpResponse {
    let success = if state.quirks.success_as_string {
        json!(ok.to_string())
    } else {
        json!(ok)
    };
    let message = if ok {
        "Access Token Expired"
    } else {
        "Expire Access Failed"
    };
    json_response(
        if ok { 200 } else { 400 },
        &json!({"success": success, "message": message}),
        &[],
    )
}

/// Expire Access: the access token goes stale after the configured delay.
pub(crate) fn expire_access(state: &mut JoinMeState, req: &AppRequest, now: i64) -> HttpResponse {
    if req.method != Method::POST {
        return expire_result(state, false);
    }
    let mut params = body_params(req).unwrap_or_default();
    for (k, v) in wire::form_pairs(req.query.as_deref().unwrap_or("").as_bytes()) {
        params.entry(k).or_insert(v);
    }
    let get = |k: &str| params.get(k).cloned().unwrap_or_default();
    let (token, client_id, secret) = (get("access_token"), get("client_id"), get("client_secret"));
    let client_ok = state
        .db
        .app(&client_id)
        .is_some_and(|a| a.client_secret == secret);
    let delay = ttl_secs(state.quirks.expire_access_delay);
    let ok = client_ok
        && match state.db.access.get_mut(&token) {
            Some(row) if row.client_id == client_id && !row.revoked => {
                let at = now.saturating_add(delay);
                row.expired_at = Some(row.expired_at.map_or(at, |t| t.min(at)));
                true
            }
            _ => false,
        };
    expire_result(state, ok)
}

/// `GET /api/public/v1/auth/renewauthorization?client_id&access_token`.
pub(crate) fn renew(state: &mut JoinMeState, req: &AppRequest, now: i64) -> HttpResponse {
    let params = first_values(wire::form_pairs(
        req.query.as_deref().unwrap_or("").as_bytes(),
    ));
    let get = |k: &str| params.get(k).cloned().unwrap_or_default();
    let (client_id, token) = (get("client_id"), get("access_token"));
    if !state.quirks.renew_authorization {
        return error_page(state.quirks.authorize_error_status);
    }
    let Some(callback) = state.db.app(&client_id).map(|a| a.callback_url.clone()) else {
        return error_page(state.quirks.authorize_error_status);
    };
    if matches!(state.auto_consent, Some(AutoConsent::Deny)) {
        return redirect(with_params(
            &callback,
            true,
            &[("error", state.quirks.deny_error.clone())],
        ));
    }
    let ttl = ttl_secs(state.quirks.access_ttl);
    let revive = state.quirks.renew_revives_expired;
    match state.db.access.get_mut(&token) {
        Some(row) if row.client_id == client_id && !row.revoked => {
            row.stale_after = now.saturating_add(ttl);
            if revive {
                row.expired_at = None;
            }
        }
        _ => return error_page(state.quirks.authorize_error_status),
    }
    redirect(with_params(
        &callback,
        true,
        &[(
            "isAuthorizationRenewed",
            state.quirks.renew_flag_value.clone(),
        )],
    ))
}

/// `GET /api/public/v1/auth/tokenInfo?access_token=…` (when switched on).
pub(crate) fn token_info(state: &mut JoinMeState, req: &AppRequest, now: i64) -> HttpResponse {
    if !state.quirks.tokeninfo_endpoint {
        return not_found();
    }
    let params = first_values(wire::form_pairs(
        req.query.as_deref().unwrap_or("").as_bytes(),
    ));
    let token = params.get("access_token").cloned().unwrap_or_default();
    match state.db.access.get(&token) {
        Some(row) if status_of(row, now) != TokenStatus::Revoked => {
            let end = row
                .expired_at
                .map_or(row.stale_after, |t| t.min(row.stale_after));
            json_response(200, &json!({"expires_in": (end - now).max(0)}), &[])
        }
        _ => oauth_error(400, "invalid_token", Some("The access token is invalid.")),
    }
}
