//! The Joind.in API v2.1 request pipeline: parameters, the `Authorization` header,
//! version and route matching, the controllers, the envelope and the JSON view.

use std::collections::HashMap;

use http::Method;
use serde_json::Value;
use sha2::{Digest, Sha256};

use super::model::{CommentRow, Db, JoindinEvent, JoindinTalk, TokenRow};
use super::php::{self, MapBuilder, PVal, QVal};
use super::{JoindinQuirks, JoindinState};
use crate::server::AppRequest;
use crate::time::{format_with_offset, parse_rfc3339, zone_offset};
use crate::wire::{self, HttpResponse, respond};

mod resources;

/// `WWW-Authenticate` on every 401, closing quote missing as in the source.
pub(crate) const WWW_AUTHENTICATE: &str = "Bearer realm=\"api.joind.in";
/// `Content-Type` of every API response (sic: `utf8`).
pub(crate) const CONTENT_TYPE: &str = "application/json; charset=utf8";
/// Where `"docs"` in the root document points.
const DOCS_URL: &str = "http://joindin.github.io/joindin-api/";

/// An API error: status and the single message of the `["message"]` body.
#[derive(Debug)]
pub(crate) struct ApiError {
    status: u16,
    message: String,
    headers: Vec<(&'static str, String)>,
}

fn err(status: u16, message: impl Into<String>) -> ApiError {
    ApiError {
        status,
        message: message.into(),
        headers: Vec::new(),
    }
}

/// What a controller returned.
#[derive(Debug)]
enum Outcome {
    /// An array rendered as JSON (status 200).
    Content(PVal),
    /// No body (PHP rendered `false`/`null`), with a status and headers.
    Void {
        status: u16,
        headers: Vec<(&'static str, String)>,
    },
}

type ApiResult = Result<Outcome, ApiError>;

/// Who the request is from.
#[derive(Clone, Debug, PartialEq)]
enum Identity {
    Anonymous,
    User {
        user_id: u64,
        consumer_key: String,
    },
    /// An unknown token under `unknown_token_is_user_zero`: `isset()` but `empty()`.
    Zero,
}

impl Identity {
    /// `isset($request->user_id)`.
    fn is_set(&self) -> bool {
        !matches!(self, Identity::Anonymous)
    }

    /// A real user (`!empty($request->user_id)`).
    fn user_id(&self) -> Option<u64> {
        match self {
            Identity::User { user_id, .. } => Some(*user_id),
            _ => None,
        }
    }

    fn uri_id(&self) -> Option<u64> {
        match self {
            Identity::User { user_id, .. } => Some(*user_id),
            Identity::Zero => Some(0),
            Identity::Anonymous => None,
        }
    }
}

/// Per-request context.
struct Ctx {
    base: String,
    path_info: String,
    query: Vec<(String, QVal)>,
    params: HashMap<String, Value>,
    identity: Identity,
    verbose: bool,
    now: i64,
    website: String,
}

impl Ctx {
    fn param(&self, key: &str) -> Option<&Value> {
        self.params.get(key)
    }

    fn param_str(&self, key: &str) -> Option<String> {
        match self.params.get(key) {
            Some(Value::String(s)) => Some(s.clone()),
            Some(Value::Number(n)) => Some(n.to_string()),
            _ => None,
        }
    }

    fn api(&self) -> String {
        format!("{}/v2.1", self.base)
    }
}

fn qval_to_json(v: &QVal) -> Value {
    match v {
        QVal::Str(s) => Value::String(s.clone()),
        QVal::Arr(items) => Value::Object(
            items
                .iter()
                .map(|(k, v)| (k.clone(), qval_to_json(v)))
                .collect(),
        ),
    }
}

/// Percent-decodes a path as the web server does before PHP sees `PATH_INFO`.
fn decode_path(path: &str) -> String {
    let bytes = path.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let Some(b) = std::str::from_utf8(&bytes[i + 1..i + 3])
                .ok()
                .and_then(|h| u8::from_str_radix(h, 16).ok())
        {
            out.push(b);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The request's `base`: scheme as the server sees it, plus `Host`.
pub(crate) fn request_base(
    req: &AppRequest,
    quirks: &JoindinQuirks,
    fallback_host: &str,
) -> String {
    let scheme = if quirks.server_sees_https {
        "https"
    } else {
        "http"
    };
    let host = wire::header_str(&req.headers, "host")
        .filter(|h| !h.is_empty())
        .unwrap_or(fallback_host);
    format!("{scheme}://{host}")
}

fn credentials_equal(quirks: &JoindinQuirks, a: &str, b: &str) -> bool {
    if quirks.case_insensitive_credentials {
        a.eq_ignore_ascii_case(b)
    } else {
        a == b
    }
}

/// Renders the view: JSON (or JSONP) body, the API's fixed headers.
fn render(
    status: u16,
    body: Option<&PVal>,
    extra: &[(&'static str, String)],
    quirks: &JoindinQuirks,
    jsonp: Option<&str>,
) -> HttpResponse {
    let mut headers: Vec<(&str, String)> = vec![("access-control-allow-origin", "*".into())];
    if status == 401 {
        headers.push(("www-authenticate", WWW_AUTHENTICATE.into()));
    }
    headers.extend(extra.iter().map(|(k, v)| (*k, v.clone())));
    // `json_encode` failing returns false, and PHP echoes an empty body.
    let json = body
        .and_then(|b| php::encode(b, quirks.numeric_coercion))
        .unwrap_or_default();
    let text = match (jsonp, body) {
        (Some(cb), Some(_)) => format!("{cb}({json});"),
        _ => json,
    };
    respond(status, Some(CONTENT_TYPE), &headers, text)
}

fn render_error(e: &ApiError, quirks: &JoindinQuirks, jsonp: Option<&str>) -> HttpResponse {
    let body = PVal::List(vec![PVal::str(e.message.clone())]);
    render(e.status, Some(&body), &e.headers, quirks, jsonp)
}

/// The PDO-error answer, also used for the `BackendError` fault.
pub(crate) fn database_error(quirks: &JoindinQuirks) -> HttpResponse {
    render_error(&err(500, "Database error"), quirks, None)
}

/// Renders a 429 the way the API does.
pub(crate) fn rate_limited(quirks: &JoindinQuirks, retry_after_s: u32) -> HttpResponse {
    let mut e = err(
        429,
        format!("Rate limit exceeded. Try again in {retry_after_s} seconds"),
    );
    e.headers.push(("retry-after", retry_after_s.to_string()));
    render_error(&e, quirks, None)
}

/// Answers one API request.
pub(crate) fn handle(
    state: &mut JoindinState,
    req: &AppRequest,
    now: i64,
    fallback_host: &str,
) -> HttpResponse {
    let quirks = state.quirks.clone();
    let base = request_base(req, &quirks, fallback_host);
    let query = php::parse_query(req.query.as_deref().unwrap_or(""));
    let mut params: HashMap<String, Value> = query
        .iter()
        .map(|(k, v)| (k.clone(), qval_to_json(v)))
        .collect();
    let is_write = req.method == Method::POST || req.method == Method::PUT;
    let exact_json = req
        .headers
        .get("content-type")
        .is_some_and(|v| v.as_bytes() == b"application/json");
    if is_write
        && exact_json
        && let Ok(Value::Object(body)) = serde_json::from_slice::<Value>(&req.body)
    {
        params.extend(body);
    }
    let jsonp: Option<String> = if quirks.jsonp {
        match params.get("callback") {
            Some(Value::String(s)) => Some(s.clone()),
            Some(Value::Number(n)) => Some(n.to_string()),
            _ => None,
        }
    } else {
        None
    };
    let jsonp = jsonp.as_deref();

    let honour_header = quirks.server_sees_https || quirks.development_mode;
    let identity = if honour_header {
        match req.headers.get("authorization") {
            Some(value) => match identify(
                &String::from_utf8_lossy(value.as_bytes()),
                &mut state.db,
                &quirks,
                now,
            ) {
                Ok(identity) => identity,
                Err(e) => return render_error(&e, &quirks, jsonp),
            },
            None => Identity::Anonymous,
        }
    } else {
        Identity::Anonymous
    };

    let path_info = decode_path(&req.path);
    let verbose = matches!(params.get("verbose"), Some(Value::String(s)) if s == "yes");
    let ctx = Ctx {
        base,
        path_info: path_info.clone(),
        query,
        params,
        identity,
        verbose,
        now,
        website: state.website_url.clone(),
    };

    let result = dispatch(&ctx, &req.method, &path_info, state);
    match result {
        Ok(Outcome::Content(mut content)) => {
            if let (Some(id), PVal::Map(_)) = (ctx.identity.uri_id(), &content) {
                set_meta(
                    &mut content,
                    "user_uri",
                    PVal::str(format!("{}/users/{id}", ctx.api())),
                );
            }
            add_count(&mut content);
            render(200, Some(&content), &[], &quirks, jsonp)
        }
        Ok(Outcome::Void { status, headers }) => render(status, None, &headers, &quirks, jsonp),
        Err(e) => render_error(&e, &quirks, jsonp),
    }
}

/// Adds (or replaces) `meta.<key>`, creating `meta` at the end when missing.
fn set_meta(content: &mut PVal, key: &str, value: PVal) {
    let PVal::Map(entries) = content else { return };
    if !entries.iter().any(|(k, _)| k == "meta") {
        entries.push(("meta".into(), PVal::Map(Vec::new())));
    }
    if let Some((_, PVal::Map(meta))) = entries.iter_mut().find(|(k, _)| k == "meta") {
        match meta.iter_mut().find(|(k, _)| k == key) {
            Some(slot) => slot.1 = value,
            None => meta.push((key.into(), value)),
        }
    }
}

/// `ApiView::addCount`: `meta.count` is the size of each non-meta array element.
fn add_count(content: &mut PVal) {
    let PVal::Map(entries) = content else { return };
    let count = entries
        .iter()
        .filter(|(k, _)| k != "meta")
        .filter_map(|(_, v)| match v {
            PVal::List(l) => Some(l.len()),
            PVal::Map(m) => Some(m.len()),
            _ => None,
        })
        .next_back();
    if let Some(n) = count {
        set_meta(content, "count", PVal::Int(n as i64));
    }
}

/// `Request::identifyUser`.
fn identify(
    header: &str,
    db: &mut Db,
    quirks: &JoindinQuirks,
    now: i64,
) -> Result<Identity, ApiError> {
    let parts: Vec<&str> = header.split(' ').collect();
    if parts.len() != 2 {
        return Err(err(400, "Invalid Authorization Header"));
    }
    let scheme = parts[0].to_lowercase();
    if scheme != "bearer" && scheme != "oauth" {
        return Err(err(400, "Unknown Authorization Header Received"));
    }
    let token = parts[1];
    let found = db
        .tokens
        .iter_mut()
        .find(|t| credentials_equal(quirks, &t.token, token));
    match found {
        Some(row) => {
            row.last_used = now;
            Ok(Identity::User {
                user_id: row.user_id,
                consumer_key: row.consumer_key.clone(),
            })
        }
        None if quirks.unknown_token_is_user_zero => Ok(Identity::Zero),
        None => Ok(Identity::Anonymous),
    }
}

/// Which implemented rule a path and verb hit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Route {
    Events,
    EventsPost,
    EventsDelete,
    TalksSearch,
    TalkSub,
    Talk,
    TalksPost,
    TalksDelete,
    EventCommentsGet,
    EventCommentsPost,
    TalkCommentsPost,
    Tracks,
    Languages,
    TalkTypes,
    TokenPost,
    TokenList,
    TokenGet,
    TokenDelete,
    Users,
    TalkCommentsGet,
    TalkCommentsPut,
}

/// `(/[^/]+)*/?$` on what follows a rule's prefix: non-empty segments, then an optional
/// trailing slash.
fn any_segments(rest: &[&str]) -> bool {
    match rest.split_last() {
        None => true,
        Some((_, init)) => init.iter().all(|s| !s.is_empty()),
    }
}

/// `/?$` on what follows a rule's prefix.
fn end(rest: &[&str]) -> bool {
    rest.is_empty() || (rest.len() == 1 && rest[0].is_empty())
}

fn numeric(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())
}

/// The route table, in the source's order (only the rules the emulator implements).
fn match_route(method: &Method, segs: &[&str]) -> Result<Route, ApiError> {
    let Some((head, rest)) = segs.split_first() else {
        return Err(err(404, "Endpoint not found"));
    };
    // `{resource}/{id}/{action}`: the shape of every write below a resource.
    let action = |resource: &str| {
        *head == resource && rest.len() >= 2 && numeric(rest[0]) && any_segments(&rest[1..])
    };
    let rules: [(Route, Method, bool); 21] = [
        (
            Route::Events,
            Method::GET,
            *head == "events" && any_segments(rest),
        ),
        (Route::EventsPost, Method::POST, action("events")),
        (Route::EventsDelete, Method::DELETE, action("events")),
        (
            Route::TalksSearch,
            Method::GET,
            *head == "talks" && end(rest),
        ),
        (
            Route::TalkSub,
            Method::GET,
            *head == "talks"
                && rest.len() >= 2
                && numeric(rest[0])
                && !rest[1].is_empty()
                && end(&rest[2..]),
        ),
        (
            Route::Talk,
            Method::GET,
            *head == "talks" && !rest.is_empty() && numeric(rest[0]) && end(&rest[1..]),
        ),
        (
            Route::TalksPost,
            Method::POST,
            *head == "talks" && any_segments(rest),
        ),
        (Route::TalksDelete, Method::DELETE, action("talks")),
        (
            Route::TokenPost,
            Method::POST,
            *head == "token" && any_segments(rest),
        ),
        (Route::TokenList, Method::GET, *head == "token" && end(rest)),
        (
            Route::TokenGet,
            Method::GET,
            *head == "token" && !rest.is_empty() && !rest[0].is_empty() && end(&rest[1..]),
        ),
        (
            Route::TokenDelete,
            Method::DELETE,
            *head == "token" && any_segments(rest),
        ),
        (
            Route::Users,
            Method::GET,
            *head == "users" && any_segments(rest),
        ),
        (
            Route::TalkCommentsGet,
            Method::GET,
            *head == "talk_comments" && any_segments(rest),
        ),
        (
            Route::TalkCommentsPut,
            Method::PUT,
            *head == "talk_comments" && any_segments(rest),
        ),
        (
            Route::TalkCommentsPost,
            Method::POST,
            action("talk_comments"),
        ),
        (
            Route::EventCommentsGet,
            Method::GET,
            *head == "event_comments" && any_segments(rest),
        ),
        (
            Route::EventCommentsPost,
            Method::POST,
            action("event_comments"),
        ),
        (
            Route::Tracks,
            Method::GET,
            *head == "tracks" && any_segments(rest),
        ),
        (
            Route::Languages,
            Method::GET,
            *head == "languages" && any_segments(rest),
        ),
        (
            Route::TalkTypes,
            Method::GET,
            *head == "talk_types" && any_segments(rest),
        ),
    ];
    let mut path_matched = false;
    for (route, verb, matches) in rules {
        if matches {
            if verb == *method {
                return Ok(route);
            }
            path_matched = true;
        }
    }
    if path_matched {
        Err(err(405, "Method not supported"))
    } else {
        Err(err(404, "Endpoint not found"))
    }
}

fn dispatch(ctx: &Ctx, method: &Method, path: &str, state: &mut JoindinState) -> ApiResult {
    let segs: Vec<&str> = path.split('/').skip(1).collect();
    let version = segs.first().copied().unwrap_or("");
    let rest: &[&str] = if segs.is_empty() { &[] } else { &segs[1..] };
    if (version.is_empty() && rest.is_empty()) || (version == "v2.1" && end(rest)) {
        return root(ctx);
    }
    match version {
        "v2.1" => {}
        "v2" | "2" => {
            return Err(err(
                400,
                "This API version is no longer supported. Please use v2.1",
            ));
        }
        _ => return Err(err(404, "API version must be specified")),
    }
    // `getItemId` and friends read `url_elements` (index 3 = first after the resource).
    let elements: Vec<&str> = rest.to_vec();
    let route = match_route(method, &elements)?;
    let id_at = |i: usize| {
        elements
            .get(i)
            .filter(|s| numeric(s))
            .and_then(|s| s.parse::<u64>().ok())
    };
    let sub = elements.get(2).copied().filter(|s| !s.is_empty());
    let db = &mut state.db;
    let quirks = &state.quirks;
    match route {
        Route::Events => match id_at(1) {
            Some(id) => match sub {
                None => event_single(ctx, db, id),
                Some("talks") => event_talks(ctx, db, id),
                Some(sub) => resources::event_sub(ctx, db, id, sub),
            },
            None => events_list(ctx, db),
        },
        Route::EventsPost => resources::event_post(ctx, db, id_at(1).unwrap_or(0), sub),
        Route::EventsDelete => resources::event_delete(ctx, db, id_at(1).unwrap_or(0), sub),
        Route::TalksSearch => talks_search(ctx, db),
        Route::Talk => talk_single(ctx, db, id_at(1).unwrap_or(0)),
        Route::TalkSub => match sub {
            Some("comments") => talk_comments(ctx, db, id_at(1).unwrap_or(0)),
            _ => resources::talk_sub(ctx, db, id_at(1).unwrap_or(0), sub),
        },
        Route::TalksPost if sub == Some("starred") => {
            resources::star(ctx, db, id_at(1).unwrap_or(0))
        }
        Route::TalksPost => talks_post(ctx, db, quirks, id_at(1), sub),
        Route::TalksDelete => {
            resources::talk_delete(ctx, db, id_at(1).unwrap_or(0), &elements[2..])
        }
        Route::EventCommentsGet => resources::event_comment_single(ctx, db, id_at(1)),
        Route::EventCommentsPost => {
            resources::report_event_comment(ctx, db, id_at(1).unwrap_or(0), sub)
        }
        Route::TalkCommentsPost => {
            resources::report_talk_comment(ctx, db, id_at(1).unwrap_or(0), sub)
        }
        Route::Tracks => resources::track_single(ctx, db, id_at(1)),
        Route::Languages => resources::languages(ctx, id_at(1)),
        Route::TalkTypes => resources::talk_types(ctx, id_at(1)),
        Route::TokenPost => token_post(ctx, db, quirks),
        Route::TokenList => token_list(ctx, db, None),
        Route::TokenGet => token_list(ctx, db, Some(elements.get(1).copied().unwrap_or(""))),
        Route::TokenDelete => token_delete(ctx, db, elements.get(1).copied().unwrap_or("")),
        Route::Users => users_get(ctx, db, quirks, elements.get(1).copied(), sub),
        Route::TalkCommentsGet => match id_at(1) {
            // `getComments` returns false without an id: 200 and an empty body.
            None => Ok(Outcome::Void {
                status: 200,
                headers: Vec::new(),
            }),
            Some(id) => comment_single(ctx, db, id),
        },
        Route::TalkCommentsPut => comment_update(ctx, db, id_at(1)),
    }
}

fn root(ctx: &Ctx) -> ApiResult {
    let api = ctx.api();
    Ok(Outcome::Content(
        MapBuilder::new()
            .put("events", PVal::str(format!("{api}/events")))
            .put("hot-events", PVal::str(format!("{api}/events?filter=hot")))
            .put(
                "upcoming-events",
                PVal::str(format!("{api}/events?filter=upcoming")),
            )
            .put(
                "past-events",
                PVal::str(format!("{api}/events?filter=past")),
            )
            .put("open-cfps", PVal::str(format!("{api}/events?filter=cfp")))
            .put("docs", PVal::str(DOCS_URL))
            .build(),
    ))
}

/// Paging parameters: `(start, resultsperpage)` as PHP casts them.
fn paging(ctx: &Ctx) -> (i64, i64) {
    let start = ctx.param("start").map_or(0, |v| php::as_php_int(Some(v)));
    let rpp = ctx
        .param("resultsperpage")
        .map_or(20, |v| php::as_php_int(Some(v)));
    (start, rpp)
}

/// `buildLimit` applied to an in-memory result; negative limits are SQL errors.
fn slice<T: Clone>(items: &[T], start: i64, rpp: i64) -> Result<Vec<T>, ApiError> {
    if rpp == 0 {
        return Ok(items.to_vec());
    }
    if start < 0 || rpp < 0 {
        return Err(err(500, "Database error"));
    }
    let start = usize::try_from(start).unwrap_or(usize::MAX);
    let rpp = usize::try_from(rpp).unwrap_or(usize::MAX);
    Ok(items.iter().skip(start).take(rpp).cloned().collect())
}

/// `ApiMapper::getPaginationLinks` plus the envelope.
fn envelope(
    ctx: &Ctx,
    plural: &str,
    list: Vec<PVal>,
    total: usize,
    start: i64,
    rpp: i64,
    start_param: Option<i64>,
) -> PVal {
    let mut params = ctx.query.clone();
    if let Some(s) = start_param
        && !params.iter().any(|(k, _)| k == "start")
    {
        params.push(("start".into(), QVal::Str(s.to_string())));
    }
    if !params.iter().any(|(k, _)| k == "start") {
        params.push(("start".into(), QVal::Str("0".into())));
    }
    if !params.iter().any(|(k, _)| k == "resultsperpage") {
        params.push(("resultsperpage".into(), QVal::Str("20".into())));
    }
    let link = |start_value: i64| {
        let mut p = params.clone();
        if let Some(slot) = p.iter_mut().find(|(k, _)| k == "start") {
            slot.1 = QVal::Str(start_value.to_string());
        }
        format!(
            "{}{}?{}",
            ctx.base,
            ctx.path_info,
            php::http_build_query(&p)
        )
    };
    let total_i = total as i64;
    let mut meta = MapBuilder::new()
        .put("count", PVal::Int(list.len() as i64))
        .put("total", PVal::Int(total_i))
        .put(
            "this_page",
            PVal::str(format!(
                "{}{}?{}",
                ctx.base,
                ctx.path_info,
                php::http_build_query(&params)
            )),
        );
    if start.saturating_add(rpp) < total_i {
        meta.push("next_page", PVal::str(link(start.saturating_add(rpp))));
    }
    if start > 0 {
        meta.push("prev_page", PVal::str(link((start - rpp).max(0))));
    }
    MapBuilder::new()
        .put(plural, PVal::List(list))
        .put("meta", meta.build())
        .build()
}

fn paged<T: Clone>(
    ctx: &Ctx,
    plural: &str,
    items: &[T],
    render_item: impl Fn(&T) -> PVal,
) -> ApiResult {
    let (start, rpp) = paging(ctx);
    let page = slice(items, start, rpp)?;
    let list = page.iter().map(render_item).collect();
    Ok(Outcome::Content(envelope(
        ctx,
        plural,
        list,
        items.len(),
        start,
        rpp,
        None,
    )))
}

/// `inflect`: keep `[0-9a-zA-Z- ]`, spaces to dashes, lower case.
fn inflect(s: &str) -> String {
    s.chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == ' ')
        .map(|c| {
            if c == ' ' {
                '-'
            } else {
                c.to_ascii_lowercase()
            }
        })
        .collect()
}

fn event_date(event: &JoindinEvent, ts: i64) -> PVal {
    PVal::str(format_with_offset(ts, zone_offset(&event.zone(), ts)))
}

fn gravatar_hash(email: &str) -> String {
    hex::encode(Sha256::digest(email.trim().to_lowercase().as_bytes()))
}

fn bool_col(b: bool) -> PVal {
    PVal::col(u8::from(b))
}

fn viewer_username(ctx: &Ctx, db: &Db) -> Option<String> {
    ctx.identity
        .user_id()
        .and_then(|id| db.user(id))
        .map(|u| u.username.clone())
}

fn is_admin(ctx: &Ctx, db: &Db) -> bool {
    ctx.identity
        .user_id()
        .and_then(|id| db.user(id))
        .is_some_and(|u| u.admin)
}

fn talk_ratings(db: &Db, talk_id: u64) -> Vec<i64> {
    db.comments
        .iter()
        .filter(|c| c.talk_id == talk_id && c.rating > 0)
        .map(|c| c.rating)
        .collect()
}

/// The mean rating, rounded down; 0 without ratings.
fn average_rating(ratings: &[i64]) -> i64 {
    match ratings.len() {
        0 => 0,
        n => ratings.iter().sum::<i64>() / n as i64,
    }
}

fn event_item(ctx: &Ctx, db: &Db, id: u64, e: &JoindinEvent) -> PVal {
    let api = ctx.api();
    let uri = format!("{api}/events/{id}");
    let talks: Vec<u64> = db
        .talks
        .iter()
        .filter(|(_, t)| t.event_id == id)
        .map(|(i, _)| *i)
        .collect();
    let mut tracks: Vec<&str> = db
        .talks
        .iter()
        .filter(|(_, t)| t.event_id == id)
        .flat_map(|(_, t)| t.tracks.iter().map(String::as_str))
        .collect();
    tracks.sort_unstable();
    tracks.dedup();
    let talk_comments = db
        .comments
        .iter()
        .filter(|c| talks.contains(&c.talk_id))
        .count();
    let event_ratings: Vec<i64> = db
        .event_comments
        .iter()
        .filter(|c| c.event_id == id)
        .map(|c| c.rating)
        .collect();
    let viewer = viewer_username(ctx, db);
    let friendly = inflect(&e.name);
    let images = event_images(ctx, e);
    let mut m = MapBuilder::new()
        .put("name", PVal::str(e.name.clone()))
        .put("url_friendly_name", PVal::str(friendly.clone()))
        .put("start_date", event_date(e, e.start))
        .put("end_date", event_date(e, e.end))
        .put("description", PVal::str(e.description.clone()))
        .put("stub", PVal::opt_str(e.stub.as_deref()))
        .put("href", PVal::opt_str(e.href.as_deref()))
        .put("tz_continent", PVal::str(e.tz_continent.clone()))
        .put("tz_place", PVal::str(e.tz_place.clone()))
        .put("attendee_count", PVal::col(e.attendees.len()))
        .put(
            "attending",
            PVal::Bool(viewer.as_ref().is_some_and(|v| e.attendees.contains(v))),
        )
        .put(
            "event_average_rating",
            PVal::col(average_rating(&event_ratings)),
        )
        .put("event_comments_count", PVal::col(event_ratings.len()))
        .put("tracks_count", PVal::col(tracks.len()))
        .put("talks_count", PVal::col(talks.len()))
        .put("icon", PVal::opt_str(e.icon.as_deref()))
        .put("location", PVal::str(e.location.clone()));
    if ctx.verbose {
        let date = |t: Option<i64>| t.map_or(PVal::Null, |t| event_date(e, t));
        let hosts = e
            .hosts
            .iter()
            .filter_map(|h| db.users.iter().find(|u| &u.user.username == h))
            .map(|u| {
                MapBuilder::new()
                    .put("host_name", PVal::str(u.user.full_name.clone()))
                    .put("host_uri", PVal::str(format!("{api}/users/{}", u.id)))
                    .build()
            })
            .collect();
        let can_edit = is_admin(ctx, db) || viewer.as_ref().is_some_and(|v| e.hosts.contains(v));
        m = m
            .put("latitude", PVal::col(e.latitude))
            .put("longitude", PVal::col(e.longitude))
            .put("contact_name", PVal::opt_str(e.contact_name.as_deref()))
            .put("hashtag", PVal::opt_str(e.hashtag.as_deref()))
            .put("comments_enabled", bool_col(e.comments_enabled))
            .put("cfp_start_date", date(e.cfp_start))
            .put("cfp_end_date", date(e.cfp_end))
            .put("cfp_url", PVal::opt_str(e.cfp_url.as_deref()))
            .put("talk_comments_count", PVal::col(talk_comments))
            .put("hosts", PVal::List(hosts))
            .put("can_edit", PVal::Bool(can_edit));
    }
    m = m
        .put("rejection_reason", PVal::Null)
        .put("images", images)
        .put(
            "tags",
            PVal::List(e.tags.iter().map(|t| PVal::str(t.clone())).collect()),
        )
        .put("uri", PVal::str(uri.clone()))
        .put("verbose_uri", PVal::str(format!("{uri}?verbose=yes")))
        .put("comments_uri", PVal::str(format!("{uri}/comments")))
        .put("talks_uri", PVal::str(format!("{uri}/talks")))
        .put("tracks_uri", PVal::str(format!("{uri}/tracks")))
        .put("attending_uri", PVal::str(format!("{uri}/attending")))
        .put("images_uri", PVal::str(format!("{uri}/images")))
        .put("hosts_uri", PVal::str(format!("{uri}/hosts")))
        .put("pending", bool_col(e.pending));
    if e.pending {
        m.push("approval_uri", PVal::str(format!("{uri}/approval")));
    }
    m.push(
        "website_uri",
        PVal::str(format!("{}/event/{friendly}", ctx.website)),
    );
    if let Some(stub) = &e.stub {
        m.push(
            "humane_website_uri",
            PVal::str(format!("{}/e/{stub}", ctx.website)),
        );
    }
    m.push("attendees_uri", PVal::str(format!("{uri}/attendees")));
    m.build()
}

/// Reads a date filter (`YYYY-MM-DD` or RFC 3339) as `strtotime` would, in UTC.
fn date_param(ctx: &Ctx, key: &str) -> Option<i64> {
    let s = ctx.param_str(key)?;
    parse_rfc3339(&s).or_else(|| parse_rfc3339(&format!("{s}T00:00:00Z")))
}

fn events_list(ctx: &Ctx, db: &Db) -> ApiResult {
    let filter = ctx.param_str("filter");
    let now = ctx.now;
    let mut events: Vec<(u64, JoindinEvent)> = if filter.as_deref() == Some("pending") {
        if ctx.identity.user_id().is_none() {
            return Err(err(400, "You must be logged in to view pending events"));
        }
        if !is_admin(ctx, db) {
            return Err(err(403, "You don't have permission to view pending events"));
        }
        db.events
            .iter()
            .filter(|(_, e)| e.pending)
            .cloned()
            .collect()
    } else {
        db.events
            .iter()
            .filter(|(_, e)| !e.pending)
            .cloned()
            .collect()
    };
    let mut default_start = None;
    match filter.as_deref() {
        Some("hot") => events.sort_by(|a, b| {
            b.1.attendees
                .len()
                .cmp(&a.1.attendees.len())
                .then(b.1.start.cmp(&a.1.start))
        }),
        Some("upcoming") => {
            events.retain(|(_, e)| e.end >= now);
            events.sort_by_key(|(_, e)| e.start);
        }
        Some("past") => {
            events.retain(|(_, e)| e.end < now);
            events.sort_by_key(|(_, e)| std::cmp::Reverse(e.start));
        }
        Some("cfp") => {
            events.retain(|(_, e)| {
                e.cfp_start.is_some_and(|s| s <= now) && e.cfp_end.is_some_and(|end| end >= now)
            });
            events.sort_by_key(|(_, e)| e.cfp_end);
        }
        Some("all") => {
            events.sort_by_key(|(_, e)| e.start);
            if ctx.param("start").is_none() {
                default_start = Some(
                    events
                        .iter()
                        .position(|(_, e)| e.end >= now)
                        .unwrap_or(events.len()) as i64,
                );
            }
        }
        _ => events.sort_by_key(|(_, e)| std::cmp::Reverse(e.start)),
    }
    if let Some(title) = ctx.param_str("title") {
        let needle = title.to_lowercase();
        events.retain(|(_, e)| e.name.to_lowercase().contains(&needle));
    }
    if let Some(stub) = ctx.param_str("stub") {
        events.retain(|(_, e)| e.stub.as_deref() == Some(stub.as_str()));
    }
    if let Some(Value::Object(tags)) = ctx.param("tags") {
        let wanted: Vec<String> = tags
            .values()
            .filter_map(|v| v.as_str().map(str::to_lowercase))
            .collect();
        events.retain(|(_, e)| {
            wanted
                .iter()
                .all(|w| e.tags.iter().any(|t| t.to_lowercase() == *w))
        });
    }
    if let Some(from) = date_param(ctx, "startdate") {
        events.retain(|(_, e)| e.start >= from);
    }
    if let Some(until) = date_param(ctx, "enddate") {
        events.retain(|(_, e)| e.start <= until);
    }
    let (start, rpp) = paging(ctx);
    let start = default_start.unwrap_or(start);
    let page = slice(&events, start, rpp)?;
    let list = page
        .iter()
        .map(|(id, e)| event_item(ctx, db, *id, e))
        .collect();
    Ok(Outcome::Content(envelope(
        ctx,
        "events",
        list,
        events.len(),
        start,
        rpp,
        default_start,
    )))
}

fn visible_event<'a>(ctx: &Ctx, db: &'a Db, id: u64) -> Option<&'a JoindinEvent> {
    let e = db.event(id)?;
    let host = viewer_username(ctx, db).is_some_and(|v| e.hosts.contains(&v));
    (!e.pending || is_admin(ctx, db) || host).then_some(e)
}

fn event_single(ctx: &Ctx, db: &Db, id: u64) -> ApiResult {
    let event = visible_event(ctx, db, id).ok_or_else(|| err(404, "Event not found"))?;
    let item = event_item(ctx, db, id, event);
    let (start, rpp) = paging(ctx);
    Ok(Outcome::Content(envelope(
        ctx,
        "events",
        vec![item],
        1,
        start,
        rpp,
        None,
    )))
}

fn talk_item(ctx: &Ctx, db: &Db, id: u64, t: &JoindinTalk) -> PVal {
    let api = ctx.api();
    let uri = format!("{api}/talks/{id}");
    let event = db.event(t.event_id);
    let date = event.map_or_else(
        || PVal::str(format_with_offset(t.start, 0)),
        |e| event_date(e, t.start),
    );
    let average = average_rating(&talk_ratings(db, id));
    let comment_count = db
        .comments
        .iter()
        .filter(|c| c.talk_id == id && !c.private)
        .count();
    let viewer = viewer_username(ctx, db);
    let mut m = MapBuilder::new()
        .put("id", PVal::col(id))
        .put("talk_title", PVal::str(t.title.clone()))
        .put("url_friendly_talk_title", PVal::str(inflect(&t.title)))
        .put("talk_description", PVal::str(t.description.clone()))
        .put("type", PVal::str(t.talk_type.clone()))
        .put("start_date", date)
        .put("duration", PVal::col(t.duration))
        .put("stub", PVal::opt_str(t.stub.as_deref()))
        .put("average_rating", PVal::col(average))
        .put("comments_enabled", bool_col(t.comments_enabled))
        .put("comment_count", PVal::col(comment_count))
        .put(
            "starred",
            PVal::Bool(viewer.as_ref().is_some_and(|v| t.starred_by.contains(v))),
        )
        .put("starred_count", PVal::col(t.starred_by.len()));
    if ctx.verbose {
        let user_rating = match ctx.identity.user_id() {
            None => PVal::List(Vec::new()),
            Some(uid) => db
                .comments
                .iter()
                .find(|c| c.talk_id == id && c.user_id == uid && c.rating > 0)
                .map_or(PVal::Bool(false), |c| PVal::col(c.rating)),
        };
        let media = t.slides_link.as_ref().map_or(PVal::Null, |s| {
            PVal::List(vec![
                MapBuilder::new()
                    .put("slides_link", PVal::str(s.clone()))
                    .build(),
            ])
        });
        m = m
            .put("slides_link", PVal::opt_str(t.slides_link.as_deref()))
            .put("talk_media", media)
            .put("language", PVal::str(t.language.clone()))
            .put("user_rating", user_rating);
    }
    let speakers = t
        .speakers
        .iter()
        .map(|(name, username)| {
            let mut s = MapBuilder::new().put("speaker_name", PVal::str(name.clone()));
            if let Some(uid) = username.as_ref().and_then(|u| db.user_id_by_name(u)) {
                s.push("speaker_uri", PVal::str(format!("{api}/users/{uid}")));
            }
            s.build()
        })
        .collect();
    let tracks = t
        .tracks
        .iter()
        .map(|name| {
            let track_id = track_id(db, t.event_id, name);
            MapBuilder::new()
                .put("track_name", PVal::str(name.clone()))
                .put("track_uri", PVal::str(format!("{api}/tracks/{track_id}")))
                .put(
                    "remove_track_uri",
                    PVal::str(format!("{uri}/tracks/{track_id}")),
                )
                .build()
        })
        .collect();
    m.put("speakers", PVal::List(speakers))
        .put("tracks", PVal::List(tracks))
        .put("uri", PVal::str(uri.clone()))
        .put("verbose_uri", PVal::str(format!("{uri}?verbose=yes")))
        .put(
            "website_uri",
            PVal::str(format!("{}/talk/view/{id}", ctx.website)),
        )
        .put("starred_uri", PVal::str(format!("{uri}/starred")))
        .put("tracks_uri", PVal::str(format!("{uri}/tracks")))
        .put("comments_uri", PVal::str(format!("{uri}/comments")))
        .put(
            "verbose_comments_uri",
            PVal::str(format!("{uri}/comments?verbose=yes")),
        )
        .put(
            "event_uri",
            PVal::str(format!("{api}/events/{}", t.event_id)),
        )
        .put("speakers_uri", PVal::str(format!("{uri}/speakers")))
        .build()
}

/// Every track as `(event id, name)`. Tracks have no table of their own here: a track's id
/// is its 1-based position in this stable ordering.
fn all_tracks(db: &Db) -> Vec<(u64, String)> {
    let mut all: Vec<(u64, String)> = db
        .talks
        .iter()
        .flat_map(|(_, t)| t.tracks.iter().map(move |n| (t.event_id, n.clone())))
        .collect();
    all.sort_unstable();
    all.dedup();
    all
}

fn track_id(db: &Db, event_id: u64, name: &str) -> usize {
    all_tracks(db)
        .iter()
        .position(|(e, n)| *e == event_id && n == name)
        .map_or(0, |p| p + 1)
}

/// An event's `images`: `[]` without an icon, else a map of sizes.
fn event_images(ctx: &Ctx, e: &JoindinEvent) -> PVal {
    match &e.icon {
        None => PVal::List(Vec::new()),
        Some(icon) => {
            let image = |kind: &str, size: u32| {
                MapBuilder::new()
                    .put("type", PVal::str(kind))
                    .put(
                        "url",
                        PVal::str(format!("{}/inc/img/event_icons/{kind}/{icon}", ctx.website)),
                    )
                    .put("width", PVal::col(size))
                    .put("height", PVal::col(size))
                    .build()
            };
            MapBuilder::new()
                .put("orig", image("orig", 1140))
                .put("small", image("small", 140))
                .build()
        }
    }
}

fn talks_of_event(ctx: &Ctx, db: &Db, event_id: u64) -> Vec<(u64, JoindinTalk)> {
    let visible = visible_event(ctx, db, event_id).is_some();
    let mut talks: Vec<(u64, JoindinTalk)> = db
        .talks
        .iter()
        .filter(|(_, t)| visible && t.event_id == event_id)
        .cloned()
        .collect();
    talks.sort_by_key(|(id, t)| (t.start, *id));
    talks
}

fn event_talks(ctx: &Ctx, db: &Db, event_id: u64) -> ApiResult {
    let talks = talks_of_event(ctx, db, event_id);
    paged(ctx, "talks", &talks, |(id, t)| talk_item(ctx, db, *id, t))
}

fn talks_search(ctx: &Ctx, db: &Db) -> ApiResult {
    let Some(title) = ctx.param_str("title") else {
        return Err(err(405, "Generic talks listing not supported"));
    };
    let needle = title.to_lowercase();
    let talks: Vec<(u64, JoindinTalk)> = db
        .talks
        .iter()
        .filter(|(_, t)| t.title.to_lowercase().contains(&needle))
        .filter(|(_, t)| visible_event(ctx, db, t.event_id).is_some())
        .cloned()
        .collect();
    paged(ctx, "talks", &talks, |(id, t)| talk_item(ctx, db, *id, t))
}

fn talk_single(ctx: &Ctx, db: &Db, id: u64) -> ApiResult {
    let talk = db
        .talk(id)
        .filter(|t| visible_event(ctx, db, t.event_id).is_some())
        .ok_or_else(|| err(404, "Talk not found"))?;
    let item = talk_item(ctx, db, id, talk);
    let (start, rpp) = paging(ctx);
    Ok(Outcome::Content(envelope(
        ctx,
        "talks",
        vec![item],
        1,
        start,
        rpp,
        None,
    )))
}

fn comment_item(ctx: &Ctx, db: &Db, c: &CommentRow) -> PVal {
    let api = ctx.api();
    let uri = format!("{api}/talk_comments/{}", c.id);
    let talk = db.talk(c.talk_id);
    let event = talk.and_then(|t| db.event(t.event_id));
    let user = db.user(c.user_id);
    let created = event.map_or_else(
        || PVal::str(format_with_offset(c.created, 0)),
        |e| event_date(e, c.created),
    );
    let mut m = MapBuilder::new()
        .put("rating", PVal::col(c.rating))
        .put("comment", PVal::str(c.comment.clone()))
        .put(
            "user_display_name",
            PVal::str(user.map_or(String::new(), |u| u.full_name.clone())),
        )
        .put("username", PVal::opt_str(user.map(|u| u.username.as_str())))
        .put("talk_title", PVal::opt_str(talk.map(|t| t.title.as_str())))
        .put("created_date", created)
        .put("uri", PVal::str(uri.clone()))
        .put("verbose_uri", PVal::str(format!("{uri}?verbose=yes")))
        .put("talk_uri", PVal::str(format!("{api}/talks/{}", c.talk_id)))
        .put(
            "talk_comments_uri",
            PVal::str(format!("{api}/talks/{}/comments", c.talk_id)),
        )
        .put("reported_uri", PVal::str(format!("{uri}/reported")));
    if c.user_id != 0 {
        m.push("user_uri", PVal::str(format!("{api}/users/{}", c.user_id)));
    }
    if ctx.verbose {
        m.push("source", PVal::str(c.source.clone()));
        m.push(
            "gravatar_hash",
            PVal::str(user.map_or_else(String::new, |u| gravatar_hash(&u.email))),
        );
    }
    m.build()
}

fn visible_comment(ctx: &Ctx, db: &Db, c: &CommentRow) -> bool {
    let talk_visible = db
        .talk(c.talk_id)
        .is_some_and(|t| visible_event(ctx, db, t.event_id).is_some());
    talk_visible && (!c.private || ctx.identity.user_id() == Some(c.user_id) || is_admin(ctx, db))
}

fn talk_comments(ctx: &Ctx, db: &Db, talk_id: u64) -> ApiResult {
    let mut comments: Vec<CommentRow> = db
        .comments
        .iter()
        .filter(|c| c.talk_id == talk_id && visible_comment(ctx, db, c))
        .cloned()
        .collect();
    comments.sort_by_key(|c| (c.created, c.id));
    paged(ctx, "comments", &comments, |c| comment_item(ctx, db, c))
}

fn comment_single(ctx: &Ctx, db: &Db, id: u64) -> ApiResult {
    let comment = db
        .comments
        .iter()
        .find(|c| c.id == id && visible_comment(ctx, db, c))
        .ok_or_else(|| err(404, "Comment not found"))?;
    let item = comment_item(ctx, db, comment);
    let (start, rpp) = paging(ctx);
    Ok(Outcome::Content(envelope(
        ctx,
        "comments",
        vec![item],
        1,
        start,
        rpp,
        None,
    )))
}

/// Akismet's documented test trigger: comments containing it are spam when the check is on.
pub(crate) const SPAM_MARKER: &str = "viagra-test-123";

fn talks_post(
    ctx: &Ctx,
    db: &mut Db,
    quirks: &JoindinQuirks,
    id: Option<u64>,
    sub: Option<&str>,
) -> ApiResult {
    if !ctx.identity.is_set() {
        return Err(err(401, "You must be logged in to create data"));
    }
    let talk_id = id.filter(|id| {
        db.talk(*id)
            .is_some_and(|t| visible_event(ctx, db, t.event_id).is_some())
    });
    let Some(talk_id) = talk_id else {
        return Err(err(404, "Talk not found"));
    };
    if sub != Some("comments") {
        return Err(err(404, "Operation not supported, sorry"));
    }
    if php::is_empty(ctx.param("comment")) {
        return Err(err(400, "The field \"comment\" is required"));
    }
    if php::is_empty(ctx.param("rating")) {
        return Err(err(400, "The field \"rating\" is required"));
    }
    let user_id = ctx.identity.user_id().unwrap_or(0);
    if let Some(limit) = quirks.comment_rate_limit {
        let window = i64::try_from(limit.window.as_secs()).unwrap_or(i64::MAX);
        let recent: Vec<i64> = db
            .comments
            .iter()
            .filter(|c| c.user_id == user_id && c.created > ctx.now.saturating_sub(window))
            .map(|c| c.created)
            .collect();
        if recent.len() >= limit.max as usize {
            let oldest = recent.iter().copied().min().unwrap_or(ctx.now);
            let wait = (oldest.saturating_add(window) - ctx.now).max(1);
            let mut e = err(
                429,
                format!("Rate limit exceeded. Try again in {wait} seconds"),
            );
            e.headers.push(("retry-after", wait.to_string()));
            return Err(e);
        }
    }
    let comment = php::as_php_string(ctx.param("comment")).unwrap_or_default();
    if quirks.spam_check && comment.to_lowercase().contains(SPAM_MARKER) {
        return Err(err(400, "Comment failed spam check"));
    }
    let mut rating = php::as_php_int(ctx.param("rating"));
    let username = db.user(user_id).map(|u| u.username.clone());
    let already_rated = db
        .comments
        .iter()
        .any(|c| c.talk_id == talk_id && c.user_id == user_id && c.rating > 0);
    let is_speaker = username.is_some_and(|u| {
        db.talk(talk_id)
            .is_some_and(|t| t.speakers.iter().any(|(_, s)| s.as_deref() == Some(&u)))
    });
    if already_rated || is_speaker {
        rating = 0;
    }
    if db
        .comments
        .iter()
        .any(|c| c.talk_id == talk_id && c.user_id == user_id && c.comment == comment)
    {
        return Err(err(400, "Duplicate comment"));
    }
    let source = match &ctx.identity {
        Identity::User { consumer_key, .. } => {
            db.client(consumer_key).map(|c| c.application.clone())
        }
        _ => None,
    }
    .unwrap_or_else(|| "joind.in".into());
    let private = !php::is_empty(ctx.param("private"));
    let id = db.add_comment(CommentRow {
        id: 0,
        talk_id,
        user_id,
        comment,
        rating,
        private,
        source,
        created: ctx.now,
        reported: false,
    });
    Ok(Outcome::Void {
        status: 201,
        headers: vec![("location", format!("{}/talk_comments/{id}", ctx.api()))],
    })
}

/// How long after posting a comment may still be edited.
const COMMENT_EDIT_WINDOW_S: i64 = 15 * 60;

fn comment_update(ctx: &Ctx, db: &mut Db, id: Option<u64>) -> ApiResult {
    let Some(user_id) = ctx.identity.user_id() else {
        return Err(err(401, "You must log in to edit a comment"));
    };
    if php::is_empty(ctx.param("comment")) {
        return Err(err(400, "The field \"comment\" is required"));
    }
    let text = php::as_php_string(ctx.param("comment")).unwrap_or_default();
    let Some(row) = id.and_then(|id| db.comments.iter_mut().find(|c| c.id == id)) else {
        return Err(err(404, "Comment not found"));
    };
    if row.user_id != user_id {
        return Err(err(403, "You are not the comment author"));
    }
    if row.created < ctx.now - COMMENT_EDIT_WINDOW_S {
        return Err(err(400, "Cannot edit the comment after 15 minutes"));
    }
    row.comment = text;
    let row = row.clone();
    let item = comment_item(ctx, db, &row);
    let (start, rpp) = paging(ctx);
    Ok(Outcome::Content(envelope(
        ctx,
        "comments",
        vec![item],
        1,
        start,
        rpp,
        None,
    )))
}

fn user_item(ctx: &Ctx, db: &Db, id: u64) -> PVal {
    let api = ctx.api();
    let uri = format!("{api}/users/{id}");
    let Some(u) = db.user(id) else {
        return PVal::Null;
    };
    let mut m = MapBuilder::new()
        .put("username", PVal::str(u.username.clone()))
        .put("full_name", PVal::str(u.full_name.clone()))
        .put("biography", PVal::opt_str(u.biography.as_deref()))
        .put(
            "twitter_username",
            PVal::opt_str(u.twitter_username.as_deref()),
        )
        .put("uri", PVal::str(uri.clone()))
        .put("verbose_uri", PVal::str(format!("{uri}?verbose=yes")))
        .put(
            "website_uri",
            PVal::str(format!("{}/user/{}", ctx.website, u.username)),
        )
        .put("talks_uri", PVal::str(format!("{uri}/talks")))
        .put("attended_events_uri", PVal::str(format!("{uri}/attended")))
        .put("hosted_events_uri", PVal::str(format!("{uri}/hosted")))
        .put(
            "talk_comments_uri",
            PVal::str(format!("{uri}/talk_comments")),
        );
    if ctx.verbose {
        let admin = is_admin(ctx, db);
        let own = ctx.identity.user_id() == Some(id);
        m.push("trusted", bool_col(u.trusted));
        m.push("gravatar_hash", PVal::str(gravatar_hash(&u.email)));
        if own || admin {
            m.push("email", PVal::str(u.email.clone()));
        }
        if admin {
            m.push("admin", bool_col(u.admin));
        }
        m.push("can_edit", PVal::Bool(own || admin));
    }
    m.build()
}

fn users_get(
    ctx: &Ctx,
    db: &Db,
    quirks: &JoindinQuirks,
    id: Option<&str>,
    sub: Option<&str>,
) -> ApiResult {
    let (start, rpp) = paging(ctx);
    if let Some(id) = id
        .filter(|s| numeric(s))
        .and_then(|s| s.parse::<u64>().ok())
    {
        if let Some(sub) = sub {
            return resources::user_sub(ctx, db, id, sub);
        }
        return match db.user(id) {
            Some(_) => Ok(Outcome::Content(envelope(
                ctx,
                "users",
                vec![user_item(ctx, db, id)],
                1,
                start,
                rpp,
                None,
            ))),
            None if quirks.missing_user_empty_list => Ok(Outcome::Content(envelope(
                ctx,
                "users",
                Vec::new(),
                0,
                start,
                rpp,
                None,
            ))),
            None => Err(err(404, "User not found")),
        };
    }
    let ids: Vec<u64> = if let Some(name) = ctx.param_str("username") {
        db.users
            .iter()
            .filter(|u| credentials_equal(quirks, &u.user.username, &name))
            .map(|u| u.id)
            .take(1)
            .collect()
    } else if let Some(keyword) = ctx.param_str("keyword") {
        let k = keyword.to_lowercase();
        db.users
            .iter()
            .filter(|u| {
                u.user.username.to_lowercase().contains(&k)
                    || u.user.full_name.to_lowercase().contains(&k)
            })
            .map(|u| u.id)
            .collect()
    } else {
        db.users.iter().map(|u| u.id).collect()
    };
    paged(ctx, "users", &ids, |id| user_item(ctx, db, *id))
}

/// `TokenController::postAction`, the password grant.
fn token_post(ctx: &Ctx, db: &mut Db, quirks: &JoindinQuirks) -> ApiResult {
    if php::is_empty(ctx.param("grant_type")) {
        return Err(err(400, "The field \"grant_type\" is required"));
    }
    if php::is_empty(ctx.param("username")) || php::is_empty(ctx.param("password")) {
        return Err(err(
            400,
            "The fields \"username\" and \"password\" are both required",
        ));
    }
    if php::as_php_string(ctx.param("grant_type")).as_deref() != Some("password") {
        return Err(err(400, "Grant type not recognised"));
    }
    let Some(client_id) = php::as_php_string(ctx.param("client_id")) else {
        return Err(err(
            400,
            "Expected parameter client_id is not a readable string",
        ));
    };
    let Some(client_secret) = php::as_php_string(ctx.param("client_secret")) else {
        return Err(err(
            400,
            "Expected parameter client_secret is not a readable string",
        ));
    };
    let trusted = db.clients.iter().any(|c| {
        c.enable_password_grant
            && credentials_equal(quirks, &c.consumer_key, &client_id)
            && credentials_equal(quirks, &c.consumer_secret, &client_secret)
    });
    if !trusted {
        return Err(err(
            403,
            "This client cannot authenticate using the password grant type",
        ));
    }
    expire_old_tokens(db, quirks, ctx.now);
    let consumer_key = db
        .clients
        .iter()
        .find(|c| c.enable_password_grant && credentials_equal(quirks, &c.consumer_key, &client_id))
        .map(|c| c.consumer_key.clone())
        .unwrap_or(client_id);
    let username = php::as_php_string(ctx.param("username")).unwrap_or_default();
    let password = php::as_php_string(ctx.param("password")).unwrap_or_default();
    let Some(row) = db
        .users
        .iter()
        .find(|u| credentials_equal(quirks, &u.user.username, &username))
    else {
        return Err(err(403, "Signin failed"));
    };
    if !row.user.verified {
        return Err(if quirks.unverified_is_403 {
            err(403, "Not verified")
        } else {
            err(401, "Not verified")
        });
    }
    if row.user.password != password {
        return Err(err(403, "Signin failed"));
    }
    let user_id = row.id;
    let token = insert_token(db, quirks, &consumer_key, user_id, ctx.now);
    Ok(Outcome::Content(
        MapBuilder::new()
            .put("access_token", PVal::str(token))
            .put(
                "user_uri",
                PVal::str(format!("{}/users/{user_id}", ctx.api())),
            )
            .build(),
    ))
}

/// `expireOldTokens`: tokens of the expirable consumers last used before yesterday (UTC).
fn expire_old_tokens(db: &mut Db, quirks: &JoindinQuirks, now: i64) {
    let cutoff = now.div_euclid(86_400) * 86_400 - 86_400;
    db.tokens.retain(|t| {
        !(quirks.expirable_client_ids.contains(&t.consumer_key) && t.last_used < cutoff)
    });
}

/// Creates a token row and returns the token.
pub(crate) fn insert_token(
    db: &mut Db,
    quirks: &JoindinQuirks,
    consumer_key: &str,
    user_id: u64,
    now: i64,
) -> String {
    let token = loop {
        let candidate = if quirks.numeric_tokens {
            wire::random_string(wire::DIGITS, 16)
        } else {
            wire::random_string(wire::LOWER_HEX, 16)
        };
        // With the switch off, a token the JSON view would turn into a number (all
        // digits, or digits-e-digits: about one in two thousand) is never issued, so each
        // position of `numeric_tokens` behaves the same on every run.
        let coerced = !quirks.numeric_tokens && php::numeric_value(&candidate).is_some();
        if !coerced
            && !db
                .tokens
                .iter()
                .any(|t| t.token.eq_ignore_ascii_case(&candidate))
        {
            break candidate;
        }
    };
    let id = db.next_token_id;
    db.next_token_id += 1;
    db.tokens.push(TokenRow {
        id,
        token: token.clone(),
        consumer_key: consumer_key.to_owned(),
        user_id,
        created: now,
        last_used: now,
    });
    token
}

/// The shared gate of the token list and revoke calls.
fn token_gate(ctx: &Ctx, db: &Db) -> Result<u64, ApiError> {
    if !ctx.identity.is_set() {
        return Err(err(401, "You must be logged in"));
    }
    let trusted = match &ctx.identity {
        Identity::User { consumer_key, .. } => db
            .client(consumer_key)
            .is_some_and(|c| c.enable_password_grant),
        _ => false,
    };
    if !trusted {
        return Err(err(
            403,
            "You can not access the token list with this client",
        ));
    }
    Ok(ctx.identity.user_id().unwrap_or(0))
}

fn token_item(ctx: &Ctx, db: &Db, t: &TokenRow) -> PVal {
    let client = db.client(&t.consumer_key);
    let owner = client
        .and_then(|c| c.owner_username.as_deref())
        .and_then(|u| db.users.iter().find(|r| r.user.username == u))
        .map(|r| r.user.full_name.clone());
    MapBuilder::new()
        .put("token", PVal::col(t.id))
        .put(
            "application",
            PVal::opt_str(client.map(|c| c.application.as_str())),
        )
        .put("created_date", PVal::str(format_with_offset(t.created, 0)))
        .put(
            "last_used_date",
            PVal::str(format_with_offset(t.last_used, 0)),
        )
        .put("application_owner", PVal::opt_str(owner.as_deref()))
        .put(
            "token_uri",
            PVal::str(format!("{}/token/{}", ctx.api(), t.id)),
        )
        .build()
}

fn revocable_tokens_of(db: &Db, user_id: u64) -> Vec<TokenRow> {
    let mut rows: Vec<TokenRow> = db
        .tokens
        .iter()
        .filter(|t| {
            t.user_id == user_id && db.client(&t.consumer_key).is_some_and(|c| c.can_be_revoked)
        })
        .cloned()
        .collect();
    rows.sort_by_key(|t| std::cmp::Reverse((t.created, t.id)));
    rows
}

fn token_list(ctx: &Ctx, db: &Db, id: Option<&str>) -> ApiResult {
    let user_id = token_gate(ctx, db)?;
    let rows = revocable_tokens_of(db, user_id);
    match id {
        None => paged(ctx, "tokens", &rows, |t| token_item(ctx, db, t)),
        Some(id) => {
            let Some(id) = Some(id)
                .filter(|s| numeric(s))
                .and_then(|s| s.parse::<u64>().ok())
            else {
                return Err(err(404, "Token not found"));
            };
            let list: Vec<PVal> = rows
                .iter()
                .filter(|t| t.id == id)
                .map(|t| token_item(ctx, db, t))
                .collect();
            let (start, rpp) = paging(ctx);
            Ok(Outcome::Content(envelope(
                ctx, "tokens", list, 1, start, rpp, None,
            )))
        }
    }
}

fn token_delete(ctx: &Ctx, db: &mut Db, id: &str) -> ApiResult {
    let user_id = token_gate(ctx, db)?;
    let Some(id) = Some(id)
        .filter(|s| numeric(s))
        .and_then(|s| s.parse::<u64>().ok())
    else {
        return Err(err(404, "Token not found"));
    };
    if !revocable_tokens_of(db, user_id).iter().any(|t| t.id == id) {
        return Err(err(404, "No tokens found"));
    }
    db.tokens.retain(|t| t.id != id);
    Ok(Outcome::Void {
        status: 204,
        headers: vec![("location", format!("{}/token", ctx.api()))],
    })
}
