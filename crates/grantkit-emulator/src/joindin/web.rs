//! The retired legacy web site's pages: `/user/oauth_allow` (the browser flow the
//! published API documentation describes) and the `/user/login` form it relies on.

use http::Method;

use super::JoindinState;
use super::api::{insert_token, request_base};
use super::model::{Flash, Session};
use super::php;
use crate::AutoConsent;
use crate::server::AppRequest;
use crate::wire::{self, HttpResponse, html_escape, respond};

const SESSION_COOKIE: &str = "ci_session";
const HTML: &str = "text/html; charset=utf-8";

fn page(status: u16, title: &str, body: &str, headers: &[(&str, String)]) -> HttpResponse {
    let html = format!(
        "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>{} - Joind.in</title></head>\
         <body><h1>{}</h1>\n{body}\n</body></html>\n",
        html_escape(title),
        html_escape(title)
    );
    respond(status, Some(HTML), headers, html)
}

/// The page the site shows for a path it does not have.
pub(crate) fn not_found() -> HttpResponse {
    page(
        404,
        "Page not found",
        "<p>The page you requested was not found.</p>",
        &[],
    )
}

/// The session id from the request, or a new session; returns `(id, is_new)`.
fn session_id(state: &mut JoindinState, req: &AppRequest) -> (String, bool) {
    if let Some(id) = wire::cookie(&req.headers, SESSION_COOKIE)
        && state.db.sessions.contains_key(&id)
    {
        return (id, false);
    }
    let id = wire::random_string(wire::LOWER_HEX, 32);
    state.db.sessions.insert(id.clone(), Session::default());
    (id, true)
}

/// Creates a logged-in session for `user_id` and returns its id (test hook).
pub(crate) fn login_session(state: &mut JoindinState, user_id: u64) -> String {
    let id = wire::random_string(wire::LOWER_HEX, 32);
    state.db.sessions.insert(
        id.clone(),
        Session {
            user_id: Some(user_id),
            ..Session::default()
        },
    );
    id
}

fn cookie_header(id: &str) -> (&'static str, String) {
    (
        "set-cookie",
        format!("{SESSION_COOKIE}={id}; Path=/; HttpOnly"),
    )
}

/// Answers a request under `/user/`.
pub(crate) fn handle(
    state: &mut JoindinState,
    req: &AppRequest,
    now: i64,
    fallback_host: &str,
) -> HttpResponse {
    if !state.quirks.legacy_oauth_allow {
        return not_found();
    }
    let (sid, new_session) = session_id(state, req);
    let mut headers = Vec::new();
    if new_session {
        headers.push(cookie_header(&sid));
    }
    // CodeIgniter flashdata lives for exactly one request after it was set.
    let flash = state.db.sessions.get_mut(&sid).and_then(|s| s.flash.take());
    let base = request_base(req, &state.quirks, fallback_host).replacen("https://", "http://", 1);
    match (req.path.trim_end_matches('/'), &req.method) {
        ("/user/oauth_allow", &Method::GET) => allow_get(state, req, &sid, &base, now, headers),
        ("/user/oauth_allow", &Method::POST) => {
            allow_post(state, req, &sid, &base, flash, now, headers)
        }
        ("/user/login", &Method::GET) => login_form(None, headers),
        ("/user/login", &Method::POST) => login_post(state, req, &sid, headers),
        _ => not_found(),
    }
}

fn login_form(error: Option<&str>, headers: Vec<(&str, String)>) -> HttpResponse {
    let error = error.map_or_else(String::new, |e| {
        format!("<p class=\"error\">{}</p>", html_escape(e))
    });
    let form = format!(
        "{error}<form method=\"post\" action=\"/user/login\">\
         <label>Username <input type=\"text\" name=\"user\"></label>\
         <label>Password <input type=\"password\" name=\"pass\"></label>\
         <input type=\"submit\" name=\"sub\" value=\"Login\"></form>"
    );
    page(200, "Login", &form, &headers)
}

fn login_post(
    state: &mut JoindinState,
    req: &AppRequest,
    sid: &str,
    mut headers: Vec<(&str, String)>,
) -> HttpResponse {
    let form = wire::form_pairs(&req.body);
    let field = |name: &str| {
        form.iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    };
    let (user, pass) = (field("user"), field("pass"));
    let found = state
        .db
        .users
        .iter()
        .find(|u| u.user.username == user && u.user.password == pass && u.user.verified);
    let Some(user_id) = found.map(|u| u.id) else {
        return login_form(Some("Login failed"), headers);
    };
    let session = state.db.sessions.entry(sid.to_owned()).or_default();
    session.user_id = Some(user_id);
    let target = session.return_to.take().unwrap_or_else(|| "/".into());
    headers.push(("location", target));
    respond(302, Some(HTML), &headers, "")
}

/// The user the page acts for: the auto-consent user, else the session's.
fn acting_user(state: &JoindinState, sid: &str) -> Option<u64> {
    match &state.auto_consent {
        Some(AutoConsent::Approve(name)) => state.db.user_id_by_name(name),
        _ => state.db.sessions.get(sid).and_then(|s| s.user_id),
    }
}

fn require_login(
    state: &mut JoindinState,
    req: &AppRequest,
    sid: &str,
    base: &str,
    mut headers: Vec<(&str, String)>,
) -> HttpResponse {
    let return_to = match &req.query {
        Some(q) => format!("{}?{q}", req.path),
        None => req.path.clone(),
    };
    state
        .db
        .sessions
        .entry(sid.to_owned())
        .or_default()
        .return_to = Some(return_to);
    headers.push(("refresh", format!("0;url={base}/user/login")));
    page(
        200,
        "Please log in",
        &format!("<p>Please <a href=\"{base}/user/login\">log in</a> first.</p>"),
        &headers,
    )
}

fn redirect_with_token(
    callback: &str,
    token: &str,
    state: &str,
    headers: &mut Vec<(&str, String)>,
) -> HttpResponse {
    let separator = if callback.contains('?') { '&' } else { '?' };
    let mut location = format!("{callback}{separator}access_token={token}");
    if !state.is_empty() {
        location.push_str("&state=");
        location.push_str(state);
    }
    headers.push(("location", location));
    respond(302, Some(HTML), headers, "")
}

fn deny_page(flash: Option<&Flash>, headers: &[(&str, String)]) -> HttpResponse {
    let link = match flash {
        Some(f) if !f.state.is_empty() => format!("{}?&state={}", f.callback, f.state),
        Some(f) => format!("{}?", f.callback),
        None => "?".into(),
    };
    page(
        200,
        "Access denied",
        &format!(
            "<p>Access was not granted. We hope you enjoy joind.in</p><p><a href=\"{}\">Return to the application</a></p>",
            html_escape(&link)
        ),
        headers,
    )
}

fn allow_get(
    state: &mut JoindinState,
    req: &AppRequest,
    sid: &str,
    base: &str,
    now: i64,
    mut headers: Vec<(&str, String)>,
) -> HttpResponse {
    let auto = state.auto_consent.clone();
    let user = acting_user(state, sid);
    if user.is_none() && !matches!(auto, Some(AutoConsent::Deny)) {
        return require_login(state, req, sid, base, headers);
    }
    let query = php::parse_query(req.query.as_deref().unwrap_or(""));
    let get = |name: &str| match query.iter().find(|(k, _)| k == name) {
        Some((_, php::QVal::Str(s))) => s.clone(),
        _ => String::new(),
    };
    let api_key = get("api_key");
    // The page decodes `callback` a second time after PHP's own decoding.
    let callback = php::urldecode(&get("callback"));
    let oauth_state = get("state");
    if api_key.is_empty() {
        return page(
            200,
            "Access request",
            "<p>The client identifier <code>api_key</code> was not recognised.</p>",
            &headers,
        );
    }
    if callback.is_empty() {
        return page(
            200,
            "Access request",
            "<p>Callback URL <code>callback</code> is missing or incorrect.</p>",
            &headers,
        );
    }
    let known =
        state.db.clients.iter().any(|c| {
            c.consumer_key == api_key && c.callback_url.as_deref() == Some(callback.as_str())
        });
    if !known {
        return page(
            200,
            "Access request",
            "<p>Access cannot be granted for this key.</p>",
            &headers,
        );
    }
    let flash = Flash {
        api_key,
        callback,
        state: oauth_state,
    };
    match (auto, user) {
        (Some(AutoConsent::Approve(_)), Some(user_id)) => {
            let quirks = state.quirks.clone();
            let token = insert_token(&mut state.db, &quirks, &flash.api_key, user_id, now);
            redirect_with_token(&flash.callback, &token, &flash.state, &mut headers)
        }
        (Some(AutoConsent::Deny), _) => deny_page(Some(&flash), &headers),
        _ => {
            let application = state
                .db
                .client(&flash.api_key)
                .map_or_else(String::new, |c| html_escape(&c.application));
            if let Some(session) = state.db.sessions.get_mut(sid) {
                session.flash = Some(flash);
            }
            let form = format!(
                "<p>The application <strong>{application}</strong> would like to access your joind.in account.</p>\
                 <form method=\"post\" action=\"/user/oauth_allow\">\
                 <label><input type=\"radio\" name=\"access\" value=\"allow\"> Allow</label>\
                 <label><input type=\"radio\" name=\"access\" value=\"deny\" checked=\"checked\"> Deny</label>\
                 <input type=\"submit\" name=\"sub\" value=\"Submit\"></form>"
            );
            page(200, "Access request", &form, &headers)
        }
    }
}

fn allow_post(
    state: &mut JoindinState,
    req: &AppRequest,
    sid: &str,
    base: &str,
    flash: Option<Flash>,
    now: i64,
    mut headers: Vec<(&str, String)>,
) -> HttpResponse {
    let Some(user_id) = acting_user(state, sid) else {
        return require_login(state, req, sid, base, headers);
    };
    let form = wire::form_pairs(&req.body);
    let access = form
        .iter()
        .find(|(k, _)| k == "access")
        .map_or("deny", |(_, v)| v.as_str());
    if access != "allow" {
        return deny_page(flash.as_ref(), &headers);
    }
    match flash {
        Some(flash) if !flash.callback.is_empty() => {
            let quirks = state.quirks.clone();
            let token = insert_token(&mut state.db, &quirks, &flash.api_key, user_id, now);
            redirect_with_token(&flash.callback, &token, &flash.state, &mut headers)
        }
        _ => page(
            200,
            "Access granted",
            "<p>Access was granted, but we cannot return you to your application.</p>",
            &headers,
        ),
    }
}
