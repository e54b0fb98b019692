//! The join.me REST API behind an emulated Mashery gateway: token checks, throttling,
//! scopes, `/v1/user`, the start-meeting calls and scheduled meetings.

// Validation helpers return the finished error response; it is built at most once per
// request, so boxing it would only add noise.
#![allow(clippy::result_large_err)]

use http::Method;
use serde_json::{Map, Value, json};

use super::model::{Db, JoinMeUser, MeetingRow, PresenterRow, TokenStatus};
use super::oauth::status_of;
use super::{InactiveBody, JoinMeState, START_MEETING_PATH};
use crate::server::AppRequest;
use crate::time::{civil_from_days, format_naive, format_utc_z, parse_rfc3339};
use crate::wire::{self, HttpResponse, respond};

const JSON: &str = "application/json; charset=utf-8";
/// How long a presenter link works.
const PRESENTER_LINK_TTL_S: i64 = 600;

fn json_response(status: u16, body: &Value) -> HttpResponse {
    respond(status, Some(JSON), &[], body.to_string())
}

fn message(status: u16, text: &str) -> HttpResponse {
    json_response(status, &json!({"Message": text}))
}

/// Headers Mashery adds to errors it generates or relays for `status`.
pub(crate) fn mashery_error_headers(status: u16) -> Vec<(&'static str, String)> {
    let code = match status {
        502 => "ERR_502_BAD_GATEWAY",
        503 => "ERR_503_SERVICE_UNAVAILABLE",
        504 => "ERR_504_GATEWAY_TIMEOUT",
        _ => "ERR_500_INTERNAL_SERVER_ERROR",
    };
    vec![
        ("server", "Mashery Proxy".into()),
        ("x-mashery-error-code", code.into()),
    ]
}

/// The backend's own failure answer.
pub(crate) fn backend_error() -> HttpResponse {
    message(500, "An error has occurred.")
}

fn not_authorized() -> HttpResponse {
    respond(
        401,
        Some("text/xml"),
        &[
            ("server", "Mashery Proxy".into()),
            ("www-authenticate", "Bearer realm=\"api.join.me\"".into()),
            ("x-mashery-error-code", "ERR_403_NOT_AUTHORIZED".into()),
        ],
        "<h1>Not Authorized</h1>",
    )
}

fn developer_inactive(body: InactiveBody) -> HttpResponse {
    let headers = [
        ("server", "Mashery Proxy".to_owned()),
        (
            "www-authenticate",
            "Bearer realm=\"api.join.me\", error=\"invalid_token\"".to_owned(),
        ),
        ("x-error-detail-header", "Account Inactive".to_owned()),
        (
            "x-mashery-error-code",
            "ERR_403_DEVELOPER_INACTIVE".to_owned(),
        ),
    ];
    match body {
        InactiveBody::Html => respond(
            403,
            Some("text/xml"),
            &headers,
            "<h1>Developer Inactive</h1>",
        ),
        InactiveBody::Json => respond(
            403,
            Some(JSON),
            &headers,
            json!({"message": "Developer Inactive", "code": "invalid_token"}).to_string(),
        ),
    }
}

fn over_rate(status: u16) -> HttpResponse {
    respond(
        status,
        Some("text/xml"),
        &[
            ("server", "Mashery Proxy".into()),
            ("x-error-detail-header", "Account Over Rate Limit".into()),
            ("x-mashery-error-code", "ERR_403_DEVELOPER_OVER_RATE".into()),
        ],
        "<h1>Developer Over Rate</h1>",
    )
}

fn stale() -> HttpResponse {
    json_response(
        401,
        &json!({"Message": "The access token has expired.", "ErrorCode": "stale_token"}),
    )
}

fn insufficient_scope(status: u16, needed: &str) -> HttpResponse {
    respond(
        status,
        Some(JSON),
        &[(
            "www-authenticate",
            format!("Bearer realm=\"api.join.me\", error=\"insufficient_scope\", scope=\"{needed}\""),
        )],
        json!({"Message": "Authorization has been denied for this request.", "ErrorCode": "insufficient_scope"})
            .to_string(),
    )
}

/// Counts a request against the key's limits; `Some(response)` when it is throttled.
fn throttle(state: &mut JoinMeState, client_id: &str, now: i64) -> Option<HttpResponse> {
    let limit = state.quirks.rate_limit?;
    let status = if state.quirks.throttle_status == 429 {
        429
    } else {
        403
    };
    let period = i64::try_from(limit.quota_period.as_secs())
        .unwrap_or(i64::MAX)
        .max(1);
    let t = state.db.throttles.entry(client_id.to_owned()).or_default();
    if t.second != now {
        t.second = now;
        t.in_second = 0;
    }
    let period_start = now - now.rem_euclid(period);
    if t.period_start != period_start {
        t.period_start = period_start;
        t.in_period = 0;
    }
    if t.in_period >= limit.quota {
        return Some(over_rate(status));
    }
    if t.in_second >= limit.qps {
        return Some(wire::mashery_over_qps(status, 1));
    }
    t.in_second += 1;
    t.in_period += 1;
    None
}

/// Mashery's `X-Plan-*` headers for `client_id`'s counters (with `plan_headers` and a
/// rate limit).
fn plan_headers(state: &JoinMeState, client_id: &str) -> Vec<(&'static str, String)> {
    let (Some(limit), true) = (state.quirks.rate_limit, state.quirks.plan_headers) else {
        return Vec::new();
    };
    let t = state
        .db
        .throttles
        .get(client_id)
        .cloned()
        .unwrap_or_default();
    let period = i64::try_from(limit.quota_period.as_secs()).unwrap_or(i64::MAX);
    vec![
        ("x-plan-qps-allotted", limit.qps.to_string()),
        ("x-plan-qps-current", t.in_second.to_string()),
        ("x-plan-quota-allotted", limit.quota.to_string()),
        ("x-plan-quota-current", t.in_period.to_string()),
        (
            "x-plan-quota-reset",
            mashery_date(t.period_start.saturating_add(period)),
        ),
    ]
}

/// Mashery's date: `Thursday, June 4, 2015 12:00:00 AM GMT`.
fn mashery_date(ts: i64) -> String {
    const DAYS: [&str; 7] = [
        "Sunday",
        "Monday",
        "Tuesday",
        "Wednesday",
        "Thursday",
        "Friday",
        "Saturday",
    ];
    const MONTHS: [&str; 12] = [
        "January",
        "February",
        "March",
        "April",
        "May",
        "June",
        "July",
        "August",
        "September",
        "October",
        "November",
        "December",
    ];
    let days = ts.div_euclid(86_400);
    let seconds = ts.rem_euclid(86_400);
    let (year, month, day) = civil_from_days(days);
    // 1970-01-01 was a Thursday.
    let weekday = DAYS[(days + 4).rem_euclid(7) as usize];
    let (hour, minute, second) = (seconds / 3600, seconds / 60 % 60, seconds % 60);
    let (hour12, half) = match hour {
        0 => (12, "AM"),
        1..=11 => (hour, "AM"),
        12 => (12, "PM"),
        _ => (hour - 12, "PM"),
    };
    format!(
        "{weekday}, {} {day}, {year} {hour12}:{minute:02}:{second:02} {half} GMT",
        MONTHS[month as usize - 1]
    )
}

/// The routes of `/v1`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Route {
    User,
    ConferenceSettings,
    StartNow,
    Meetings,
    Meeting(u64),
    MeetingStart(u64),
    /// A meeting path whose id is not a number: 404 from the backend.
    NoSuchMeeting,
    Presenters,
    Presenter(Option<u64>),
}

fn route(path: &str, presenters_api: bool) -> Option<Route> {
    let trimmed = path.trim_end_matches('/');
    let segs: Vec<&str> = trimmed.split('/').skip(2).collect();
    let id = |s: &str| s.parse::<u64>().ok();
    match segs.as_slice() {
        ["user"] => Some(Route::User),
        ["user", s] if s.eq_ignore_ascii_case("conferenceSettings") => {
            Some(Route::ConferenceSettings)
        }
        ["meetings"] => Some(Route::Meetings),
        ["meetings", "start"] => Some(Route::StartNow),
        ["meetings", m] => Some(id(m).map_or(Route::NoSuchMeeting, Route::Meeting)),
        ["meetings", m, "start"] => Some(id(m).map_or(Route::NoSuchMeeting, Route::MeetingStart)),
        ["presenters"] if presenters_api => Some(Route::Presenters),
        ["presenters", p] if presenters_api => Some(Route::Presenter(id(p))),
        _ => None,
    }
}

/// Answers a request under `/v1`, with the `X-Plan-*` headers when they are on.
pub(crate) fn handle(
    state: &mut JoinMeState,
    req: &AppRequest,
    now: i64,
    base: &str,
) -> HttpResponse {
    let mut response = answer(state, req, now, base);
    let client_id =
        bearer(req).and_then(|token| state.db.access.get(&token).map(|r| r.client_id.clone()));
    if let Some(client_id) = client_id {
        for (name, value) in plan_headers(state, &client_id) {
            if let Ok(value) = http::HeaderValue::try_from(value) {
                response.headers_mut().insert(name, value);
            }
        }
    }
    response
}

/// The Bearer token of a request, as Mashery reads it.
fn bearer(req: &AppRequest) -> Option<String> {
    req.headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, token)| {
            scheme.eq_ignore_ascii_case("bearer") && !token.is_empty() && !token.contains(' ')
        })
        .map(|(_, token)| token.to_owned())
}

fn answer(state: &mut JoinMeState, req: &AppRequest, now: i64, base: &str) -> HttpResponse {
    // Mashery: a Bearer token must be present, then known and active.
    let Some(token) = bearer(req) else {
        return not_authorized();
    };
    let Some(row) = state.db.access.get(&token).cloned() else {
        return developer_inactive(state.quirks.inactive_body);
    };
    let status = status_of(&row, now);
    if status == TokenStatus::Revoked {
        return developer_inactive(state.quirks.inactive_body);
    }
    if let Some(throttled) = throttle(state, &row.client_id, now) {
        return throttled;
    }
    // The backend: staleness, routing, scope.
    if status == TokenStatus::Stale {
        return stale();
    }
    let Some(route) = route(&req.path, state.quirks.presenters_api) else {
        return message(
            404,
            &format!(
                "No HTTP resource was found that matches the request URI '{base}{}'.",
                req.path
            ),
        );
    };
    let allowed: &[Method] = match route {
        Route::User | Route::ConferenceSettings => &[Method::GET],
        Route::StartNow | Route::MeetingStart(_) => &[Method::POST],
        Route::Meetings => &[Method::GET, Method::POST],
        Route::Meeting(_) | Route::NoSuchMeeting => &[Method::GET, Method::PATCH, Method::DELETE],
        Route::Presenters => &[Method::GET, Method::POST],
        Route::Presenter(_) => &[Method::GET],
    };
    if !allowed.contains(&req.method) {
        return message(
            405,
            &format!(
                "The requested resource does not support http method '{}'.",
                req.method
            ),
        );
    }
    let needed = match route {
        Route::User | Route::ConferenceSettings => "user_info",
        Route::StartNow | Route::MeetingStart(_) => "start_meeting",
        Route::Presenters | Route::Presenter(_) => "provisioning",
        _ => "scheduler",
    };
    if !row.scopes.iter().any(|s| s == needed) {
        return insufficient_scope(state.quirks.insufficient_scope_status, needed);
    }
    let Some(user) = state.db.user(&row.email).cloned() else {
        return message(404, "The user no longer exists.");
    };
    let body = match parse_body(req) {
        Ok(body) => body,
        Err(response) => return response,
    };
    let ctx = Ctx {
        base,
        now,
        user: &user,
    };
    match route {
        Route::User => json_response(state.quirks.user_get_status, &user_json(&user, base)),
        Route::ConferenceSettings => match conference_json(&user, base) {
            Some(c) => json_response(200, &c),
            None => message(404, "The user has no audio conference."),
        },
        Route::StartNow => start_meeting(state, &ctx, &body, None),
        Route::MeetingStart(id) => start_meeting(state, &ctx, &body, Some(id)),
        Route::Meetings if req.method == Method::GET => list_meetings(state, &ctx, req),
        Route::Meetings => schedule(state, &ctx, &body),
        Route::NoSuchMeeting => message(404, "Meeting not found."),
        Route::Presenters if req.method == Method::GET => {
            let list: Vec<Value> = state
                .db
                .presenters
                .iter()
                .filter(|p| p.owner == user.email)
                .map(presenter_json)
                .collect();
            json_response(200, &Value::Array(list))
        }
        Route::Presenters => invite_presenter(state, &user, &body),
        Route::Presenter(id) => match state
            .db
            .presenters
            .iter()
            .find(|p| Some(p.id) == id && p.owner == user.email)
        {
            Some(p) => json_response(200, &presenter_json(p)),
            None => message(404, "Presenter not found."),
        },
        Route::Meeting(id) => match req.method {
            Method::GET => get_meeting(&state.db, &ctx, id),
            Method::PATCH => update_meeting(state, &ctx, &body, id),
            _ => delete_meeting(state, &ctx, id),
        },
    }
}

fn presenter_json(p: &PresenterRow) -> Value {
    json!({
        "id": p.id,
        "email": p.email,
        "isInvitationAccepted": p.invitation_accepted,
        "isSeatAssigned": p.seat_assigned,
    })
}

/// `POST /v1/presenters {"email"}`: an invitation, not yet accepted, no seat yet.
fn invite_presenter(
    state: &mut JoinMeState,
    user: &JoinMeUser,
    body: &Map<String, Value>,
) -> HttpResponse {
    let email = match body.get("email") {
        Some(Value::String(e)) if looks_like_email(e) => e.trim().to_owned(),
        _ => return message(400, "The email field must be an e-mail address."),
    };
    if state
        .db
        .presenters
        .iter()
        .any(|p| p.owner == user.email && p.email.eq_ignore_ascii_case(&email))
    {
        return message(400, "The presenter has already been invited.");
    }
    let row = PresenterRow {
        id: state.db.next_presenter_id,
        owner: user.email.clone(),
        email,
        invitation_accepted: false,
        seat_assigned: false,
    };
    state.db.next_presenter_id += 1;
    let response = presenter_json(&row);
    state.db.presenters.push(row);
    json_response(201, &response)
}

fn looks_like_email(s: &str) -> bool {
    s.trim()
        .split_once('@')
        .is_some_and(|(local, domain)| !local.is_empty() && domain.contains('.'))
}

/// Registers `webhooks` (`meeting.start`, `meeting.end`) and says how each went: an
/// absolute http(s) callback is registered, anything else failed.
fn register_webhooks(state: &mut JoinMeState, owner: &str, webhooks: &Value) -> Value {
    let mut status = Map::new();
    if let Value::Object(hooks) = webhooks {
        for (event, hook) in hooks {
            if event != "meeting.start" && event != "meeting.end" {
                status.insert(event.clone(), json!("unknownEvent"));
                continue;
            }
            let url = hook
                .get("callbackUrl")
                .and_then(Value::as_str)
                .unwrap_or("");
            let absolute = url::Url::parse(url)
                .is_ok_and(|u| matches!(u.scheme(), "http" | "https") && u.has_host());
            if absolute {
                state
                    .db
                    .webhooks
                    .push((owner.to_owned(), event.clone(), url.to_owned()));
                status.insert(event.clone(), json!("registered"));
            } else {
                status.insert(event.clone(), json!("invalidCallbackUrl"));
            }
        }
    }
    Value::Object(status)
}

struct Ctx<'a> {
    base: &'a str,
    now: i64,
    user: &'a JoinMeUser,
}

/// The JSON body: none or `{}` for GET/DELETE, an object otherwise.
fn parse_body(req: &AppRequest) -> Result<Map<String, Value>, HttpResponse> {
    if req.body.iter().all(u8::is_ascii_whitespace) {
        return Ok(Map::new());
    }
    match serde_json::from_slice::<Value>(&req.body) {
        Ok(Value::Object(map)) => Ok(map),
        _ => Err(message(400, "The request is invalid.")),
    }
}

fn conference_json(user: &JoinMeUser, base: &str) -> Option<Value> {
    let c = user.conference.as_ref()?;
    Some(json!({
        "conferenceId": c.conference_id,
        "conferenceCallNumbersUrl": format!("{base}/api/public/intphone.aspx?conferenceId={}", c.conference_id),
        "organizerCode": c.organizer_code,
    }))
}

fn user_json(user: &JoinMeUser, base: &str) -> Value {
    let mut m = Map::new();
    m.insert("email".into(), json!(user.email));
    m.insert("fullName".into(), json!(user.full_name));
    m.insert("language".into(), json!(user.language));
    m.insert("numberOfMeetingsHosted".into(), json!(user.meetings_hosted));
    if user.subscription_type != "Free"
        && let Some(url) = &user.personal_url
    {
        m.insert("personalUrl".into(), json!(url));
    }
    m.insert(
        "registrationDate".into(),
        json!(format_naive(user.registration_date)),
    );
    m.insert("subscriptionType".into(), json!(user.subscription_type));
    if let Some(c) = conference_json(user, base) {
        m.insert("conferenceSettings".into(), c);
    }
    Value::Object(m)
}

/// A boolean field: JSON booleans, and `"true"`/`"false"` unless `strict_booleans`.
fn boolean(body: &Map<String, Value>, key: &str, strict: bool) -> Result<Option<bool>, ()> {
    match body.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(*b)),
        Some(Value::String(s)) if !strict && s.eq_ignore_ascii_case("true") => Ok(Some(true)),
        Some(Value::String(s)) if !strict && s.eq_ignore_ascii_case("false") => Ok(Some(false)),
        Some(_) => Err(()),
    }
}

fn start_response(
    state: &mut JoinMeState,
    ctx: &Ctx<'_>,
    personal: bool,
    meeting_code: Option<&str>,
) -> (Value, String) {
    let link_token = wire::random_string(wire::LOWER_ALNUM, 24);
    state
        .db
        .presenter_links
        .insert(link_token.clone(), ctx.now + PRESENTER_LINK_TTL_S);
    let code = meeting_code.map_or_else(|| wire::random_string(wire::DIGITS, 9), str::to_owned);
    let viewer = match (&ctx.user.personal_url, personal) {
        (Some(url), true) if ctx.user.subscription_type != "Free" => format!("{}/{url}", ctx.base),
        _ => format!("{}/{code}", ctx.base),
    };
    let conference = conference_json(ctx.user, ctx.base).unwrap_or_else(|| {
        let id = wire::random_string(wire::DIGITS, 9);
        json!({
            "conferenceId": id,
            "conferenceCallNumbersUrl": format!("{}/api/public/intphone.aspx?conferenceId={id}", ctx.base),
            "organizerCode": wire::random_string(wire::DIGITS, 4),
        })
    });
    let body = json!({
        "presenterLink": format!("{}{START_MEETING_PATH}?token={link_token}", ctx.base),
        "viewerLink": viewer,
        "audioConference": conference,
    });
    (body, viewer)
}

fn start_meeting(
    state: &mut JoinMeState,
    ctx: &Ctx<'_>,
    body: &Map<String, Value>,
    id: Option<u64>,
) -> HttpResponse {
    let strict = state.quirks.strict_booleans;
    let meeting = match id {
        Some(id) => match state
            .db
            .meetings
            .iter()
            .find(|m| m.id == id && m.owner == ctx.user.email)
        {
            Some(m) => Some(m.clone()),
            None => return message(404, "Meeting not found."),
        },
        None => None,
    };
    let personal = match (boolean(body, "startWithPersonalUrl", strict), &meeting) {
        (Err(()), _) => return message(400, "The value of startWithPersonalUrl is not valid."),
        (Ok(Some(b)), _) => b,
        (Ok(None), Some(m)) => m.start_with_personal_url,
        (Ok(None), None) => return message(400, "The startWithPersonalUrl field is required."),
    };
    match body.get("viewerMode") {
        None | Some(Value::Null) => {}
        Some(Value::String(s)) if s == "default" || s == "headless" => {}
        Some(_) => return message(400, "The value of viewerMode is not valid."),
    }
    if boolean(body, "viewerAppDetection", strict).is_err() {
        return message(400, "The value of viewerAppDetection is not valid.");
    }
    let code = meeting.as_ref().map(|m| m.conference_id.clone());
    let (mut response, viewer) = start_response(state, ctx, personal, code.as_deref());
    if state.quirks.webhooks
        && let Some(webhooks) = body.get("webhooks")
    {
        let status = register_webhooks(state, &ctx.user.email, webhooks);
        if let Value::Object(map) = &mut response {
            map.insert("webhooksStatus".into(), status);
        }
    }
    if let Some(m) = meeting.and_then(|m| state.db.meetings.iter_mut().find(|x| x.id == m.id)) {
        m.viewer_link = Some(viewer);
    }
    json_response(201, &response)
}

fn meeting_json(m: &MeetingRow) -> Value {
    let mut v = json!({
        "meetingId": m.id,
        "meetingName": m.name,
        "meetingStart": format_utc_z(m.start),
        "meetingEnd": format_utc_z(m.end),
        "startWithPersonalUrl": m.start_with_personal_url,
        "participants": m.participants,
        "conferenceId": m.conference_id,
    });
    if let (Some(link), Value::Object(map)) = (&m.viewer_link, &mut v) {
        map.insert("viewerLink".into(), json!(link));
    }
    v
}

fn time_field(body: &Map<String, Value>, key: &str) -> Result<Option<i64>, HttpResponse> {
    match body.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => parse_rfc3339(s)
            .map(Some)
            .ok_or_else(|| message(400, &format!("The value of {key} is not a valid date."))),
        Some(_) => Err(message(
            400,
            &format!("The value of {key} is not a valid date."),
        )),
    }
}

fn participants(body: &Map<String, Value>) -> Result<Option<Vec<String>>, HttpResponse> {
    match body.get("participants") {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Array(items)) => items
            .iter()
            .map(|v| {
                v.as_str()
                    .map(str::to_owned)
                    .ok_or_else(|| message(400, "The participants must be e-mail addresses."))
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Some),
        Some(_) => Err(message(400, "The participants must be e-mail addresses.")),
    }
}

fn schedule(state: &mut JoinMeState, ctx: &Ctx<'_>, body: &Map<String, Value>) -> HttpResponse {
    let name = match body.get("meetingName") {
        Some(Value::String(s)) if !s.trim().is_empty() => s.clone(),
        _ => return message(400, "The meetingName field is required."),
    };
    let (start, end) = match (
        time_field(body, "meetingStart"),
        time_field(body, "meetingEnd"),
    ) {
        (Err(e), _) | (_, Err(e)) => return e,
        (Ok(None), _) => return message(400, "The meetingStart field is required."),
        (_, Ok(None)) => return message(400, "The meetingEnd field is required."),
        (Ok(Some(s)), Ok(Some(e))) => (s, e),
    };
    if end < start {
        return message(400, "The meetingEnd must not be before meetingStart.");
    }
    let personal = match boolean(body, "startWithPersonalUrl", state.quirks.strict_booleans) {
        Ok(b) => b.unwrap_or(false),
        Err(()) => return message(400, "The value of startWithPersonalUrl is not valid."),
    };
    let participants = match participants(body) {
        Ok(p) => p.unwrap_or_default(),
        Err(e) => return e,
    };
    let id = state.db.next_meeting_id;
    state.db.next_meeting_id += 1;
    let row = MeetingRow {
        id,
        owner: ctx.user.email.clone(),
        name,
        start,
        end,
        start_with_personal_url: personal,
        participants,
        conference_id: wire::random_string(wire::DIGITS, 9),
        viewer_link: None,
    };
    let response = meeting_json(&row);
    state.db.meetings.push(row);
    json_response(state.quirks.schedule_status, &response)
}

fn list_meetings(state: &JoinMeState, ctx: &Ctx<'_>, req: &AppRequest) -> HttpResponse {
    let query = wire::form_pairs(req.query.as_deref().unwrap_or("").as_bytes());
    let end_date = match query
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("endDate"))
    {
        None => None,
        Some((_, v)) => match parse_rfc3339(v) {
            Some(t) => Some(t),
            None => return message(400, "The value of endDate is not a valid date."),
        },
    };
    let mut meetings: Vec<&MeetingRow> = state
        .db
        .meetings
        .iter()
        .filter(|m| {
            m.owner == ctx.user.email && m.end >= ctx.now && end_date.is_none_or(|e| m.start <= e)
        })
        .collect();
    meetings.sort_by_key(|m| (m.start, m.id));
    json_response(
        200,
        &json!({"meetings": meetings.into_iter().map(meeting_json).collect::<Vec<_>>()}),
    )
}

fn get_meeting(db: &Db, ctx: &Ctx<'_>, id: u64) -> HttpResponse {
    match db
        .meetings
        .iter()
        .find(|m| m.id == id && m.owner == ctx.user.email)
    {
        Some(m) => json_response(200, &meeting_json(m)),
        None => message(404, "Meeting not found."),
    }
}

fn update_meeting(
    state: &mut JoinMeState,
    ctx: &Ctx<'_>,
    body: &Map<String, Value>,
    id: u64,
) -> HttpResponse {
    let strict = state.quirks.strict_booleans;
    let Some(index) = state
        .db
        .meetings
        .iter()
        .position(|m| m.id == id && m.owner == ctx.user.email)
    else {
        return message(404, "Meeting not found.");
    };
    let mut m = state.db.meetings[index].clone();
    match body.get("meetingName") {
        None | Some(Value::Null) => {}
        Some(Value::String(s)) if !s.trim().is_empty() => m.name = s.clone(),
        Some(_) => return message(400, "The value of meetingName is not valid."),
    }
    match time_field(body, "meetingStart") {
        Ok(Some(t)) => m.start = t,
        Ok(None) => {}
        Err(e) => return e,
    }
    match time_field(body, "meetingEnd") {
        Ok(Some(t)) => m.end = t,
        Ok(None) => {}
        Err(e) => return e,
    }
    if m.end < m.start {
        return message(400, "The meetingEnd must not be before meetingStart.");
    }
    match boolean(body, "startWithPersonalUrl", strict) {
        Ok(Some(b)) => m.start_with_personal_url = b,
        Ok(None) => {}
        Err(()) => return message(400, "The value of startWithPersonalUrl is not valid."),
    }
    match participants(body) {
        Ok(Some(p)) => m.participants = p,
        Ok(None) => {}
        Err(e) => return e,
    }
    let response = meeting_json(&m);
    state.db.meetings[index] = m;
    json_response(200, &response)
}

fn delete_meeting(state: &mut JoinMeState, ctx: &Ctx<'_>, id: u64) -> HttpResponse {
    let before = state.db.meetings.len();
    state
        .db
        .meetings
        .retain(|m| !(m.id == id && m.owner == ctx.user.email));
    if state.db.meetings.len() == before {
        return message(404, "Meeting not found.");
    }
    if state.quirks.delete_returns_empty_object {
        json_response(200, &json!({}))
    } else {
        respond(204, None, &[], "")
    }
}

/// `GET /API/Public/StartMeeting.aspx?token=…`: the one-time presenter link.
pub(crate) fn presenter_page(state: &mut JoinMeState, req: &AppRequest, now: i64) -> HttpResponse {
    let query = wire::form_pairs(req.query.as_deref().unwrap_or("").as_bytes());
    let token = query
        .into_iter()
        .find(|(k, _)| k == "token")
        .map(|(_, v)| v)
        .unwrap_or_default();
    let html = "text/html; charset=utf-8";
    match state.db.presenter_links.remove(&token) {
        Some(expires) if now < expires => respond(
            200,
            Some(html),
            &[],
            "<!DOCTYPE html><html><body><h1>Your meeting is starting</h1></body></html>\n",
        ),
        _ => respond(
            410,
            Some(html),
            &[],
            "<!DOCTYPE html><html><body><h1>This link has expired</h1></body></html>\n",
        ),
    }
}
