//! Quirk switches and fault rules as text.
//!
//! The binary's `--quirk` and `--fault`, a shell script or another project's CI all speak
//! text, not Rust. This module is the one place that maps that text onto
//! [`JoindinQuirks`], [`JoinMeQuirks`] and [`FaultRule`], so the command line reaches every
//! behaviour an in-process test does, and a value printed by
//! [`switches`](JoindinQuirks::switches) is always one [`set`](JoindinQuirks::set) takes
//! back.
//!
//! ```
//! use grantkit_emulator::JoindinQuirks;
//! use grantkit_emulator::switches::parse_joindin_fault;
//!
//! let mut quirks = JoindinQuirks::default();
//! quirks.set("development_mode", "off")?;
//! quirks.set("comment_rate_limit", "5/10m")?;
//! assert!(!quirks.development_mode);
//! let rule = parse_joindin_fault("token:server-error=502@2,method=POST")?;
//! # let _ = rule;
//! # Ok::<(), grantkit_emulator::switches::SwitchError>(())
//! ```

use std::fmt;
use std::time::Duration;

use crate::{
    CommentRateLimit, Fault, FaultRule, InactiveBody, JoinMeEndpoint, JoinMeQuirks,
    JoinMeRateLimit, JoindinEndpoint, JoindinQuirks,
};

/// One quirk switch as text: what `grantkit-emulator --list-quirks` shows.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Switch {
    /// The switch's name: the field of the quirks struct.
    pub name: &'static str,
    /// The current value, in a form `set` accepts back.
    pub value: String,
    /// The default value, in the same form.
    pub default: String,
    /// The values accepted, e.g. `on|off` or `MAX/WINDOW (30/1h) | off`.
    pub form: String,
    /// What the switch reproduces, in one line.
    pub help: &'static str,
}

impl Switch {
    fn of<T: SwitchValue>(name: &'static str, value: &T, default: &T, help: &'static str) -> Self {
        Self {
            name,
            value: value.show(),
            default: default.show(),
            form: T::form(),
            help,
        }
    }
}

/// A switch or fault spec that cannot be applied.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum SwitchError {
    /// No switch has this name.
    UnknownSwitch {
        /// The name asked for.
        name: String,
        /// Every switch of that provider.
        valid: Vec<&'static str>,
    },
    /// The value does not parse as the switch's type.
    BadValue {
        /// The switch.
        name: String,
        /// The value given.
        value: String,
        /// The form the switch accepts.
        expected: String,
    },
    /// A fault spec does not parse.
    BadFault {
        /// The spec given (left out of the message: callers print it beside the flag).
        spec: String,
        /// What is wrong with it, naming what is accepted instead.
        reason: String,
    },
}

impl fmt::Display for SwitchError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::UnknownSwitch { name, valid } => {
                write!(
                    f,
                    "unknown switch `{name}`; valid switches: {}",
                    valid.join(", ")
                )
            }
            Self::BadValue {
                name,
                value,
                expected,
            } => write!(f, "bad value `{value}` for `{name}`: expected {expected}"),
            Self::BadFault { reason, .. } => f.write_str(reason),
        }
    }
}

impl std::error::Error for SwitchError {}

/// A switch's field type as text. Every `u16` switch is an HTTP status, so `u16` is read
/// as one.
trait SwitchValue: Sized {
    /// The accepted text, for listings and error messages.
    fn form() -> String;
    /// `None` when `text` is not of the form.
    fn parse(text: &str) -> Option<Self>;
    /// The value in a form `parse` accepts.
    fn show(&self) -> String;
}

impl SwitchValue for bool {
    fn form() -> String {
        "on|off (or true/false, 1/0, yes/no)".into()
    }
    fn parse(text: &str) -> Option<Self> {
        match text.trim().to_ascii_lowercase().as_str() {
            "on" | "true" | "1" | "yes" => Some(true),
            "off" | "false" | "0" | "no" => Some(false),
            _ => None,
        }
    }
    fn show(&self) -> String {
        String::from(if *self { "on" } else { "off" })
    }
}

impl SwitchValue for u16 {
    fn form() -> String {
        "an HTTP status (100-599)".into()
    }
    fn parse(text: &str) -> Option<Self> {
        text.trim()
            .parse::<u16>()
            .ok()
            .filter(|s| (100..=599).contains(s))
    }
    fn show(&self) -> String {
        self.to_string()
    }
}

impl SwitchValue for u64 {
    fn form() -> String {
        "a whole number".into()
    }
    fn parse(text: &str) -> Option<Self> {
        text.trim().parse().ok()
    }
    fn show(&self) -> String {
        self.to_string()
    }
}

impl SwitchValue for String {
    fn form() -> String {
        "text".into()
    }
    fn parse(text: &str) -> Option<Self> {
        Some(text.to_owned())
    }
    fn show(&self) -> String {
        self.clone()
    }
}

impl SwitchValue for Vec<String> {
    fn form() -> String {
        "a comma-separated list (empty for none)".into()
    }
    fn parse(text: &str) -> Option<Self> {
        Some(
            text.split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect(),
        )
    }
    fn show(&self) -> String {
        self.join(",")
    }
}

/// How durations are written: what [`parse_duration`] takes.
const DURATION_FORM: &str = "a duration (500ms, 90s, 2m, 1h, 1d; a bare number is seconds)";

impl SwitchValue for Duration {
    fn form() -> String {
        DURATION_FORM.into()
    }
    fn parse(text: &str) -> Option<Self> {
        parse_duration(text)
    }
    fn show(&self) -> String {
        show_duration(*self)
    }
}

impl SwitchValue for InactiveBody {
    fn form() -> String {
        "html|json".into()
    }
    fn parse(text: &str) -> Option<Self> {
        match text.trim().to_ascii_lowercase().as_str() {
            "html" => Some(Self::Html),
            "json" => Some(Self::Json),
            _ => None,
        }
    }
    fn show(&self) -> String {
        let name = match self {
            Self::Html => "html",
            Self::Json => "json",
        };
        name.into()
    }
}

impl SwitchValue for CommentRateLimit {
    fn form() -> String {
        "MAX/WINDOW, e.g. 30/1h".into()
    }
    fn parse(text: &str) -> Option<Self> {
        let (max, window) = text.trim().split_once('/')?;
        Some(Self {
            max: max.trim().parse().ok()?,
            window: parse_duration(window)?,
        })
    }
    fn show(&self) -> String {
        format!("{}/{}", self.max, show_duration(self.window))
    }
}

impl SwitchValue for JoinMeRateLimit {
    fn form() -> String {
        "QPS/s,QUOTA/PERIOD, e.g. 2/s,5000/1d".into()
    }
    fn parse(text: &str) -> Option<Self> {
        let (qps, quota) = text.trim().split_once(',')?;
        let (quota, period) = quota.split_once('/')?;
        Some(Self {
            qps: qps.trim().strip_suffix("/s")?.trim().parse().ok()?,
            quota: quota.trim().parse().ok()?,
            quota_period: parse_duration(period)?,
        })
    }
    fn show(&self) -> String {
        format!(
            "{}/s,{}/{}",
            self.qps,
            self.quota,
            show_duration(self.quota_period)
        )
    }
}

/// `off` (or `none`) is `None`: a limit disabled, a field omitted, a lifetime unlimited.
impl<T: SwitchValue> SwitchValue for Option<T> {
    fn form() -> String {
        format!("{} | off", T::form())
    }
    fn parse(text: &str) -> Option<Self> {
        match text.trim().to_ascii_lowercase().as_str() {
            "off" | "none" => Some(None),
            _ => T::parse(text).map(Some),
        }
    }
    fn show(&self) -> String {
        self.as_ref().map_or_else(|| "off".into(), T::show)
    }
}

/// `500ms`, `90s`, `2m`, `1h`, `1d`, or bare seconds; whole numbers only, so that every
/// value [`show_duration`] prints parses back to the same duration.
fn parse_duration(text: &str) -> Option<Duration> {
    let text = text.trim();
    let (digits, unit) = text.split_at(
        text.find(|c: char| !c.is_ascii_digit())
            .unwrap_or(text.len()),
    );
    let n: u64 = digits.parse().ok()?;
    let seconds = match unit.trim() {
        "ns" => return Some(Duration::from_nanos(n)),
        "us" => return Some(Duration::from_micros(n)),
        "ms" => return Some(Duration::from_millis(n)),
        "" | "s" => 1,
        "m" => 60,
        "h" => 3_600,
        "d" => 86_400,
        _ => return None,
    };
    n.checked_mul(seconds).map(Duration::from_secs)
}

/// The largest unit that divides the duration exactly (`1d`, `1h`, `90s`, `1500ms`,
/// `250us`), so that what is shown parses back to the same duration.
fn show_duration(d: Duration) -> String {
    let nanos = d.subsec_nanos();
    if !nanos.is_multiple_of(1_000) {
        return format!("{}ns", d.as_nanos());
    }
    if !nanos.is_multiple_of(1_000_000) {
        return format!("{}us", d.as_micros());
    }
    if nanos != 0 {
        return format!("{}ms", d.as_millis());
    }
    let s = d.as_secs();
    [("d", 86_400_u64), ("h", 3_600), ("m", 60)]
        .into_iter()
        .find(|&(_, unit)| s != 0 && s.is_multiple_of(unit))
        .map_or_else(
            || format!("{s}s"),
            |(name, unit)| format!("{}{name}", s / unit),
        )
}

fn parse_as<T: SwitchValue>(name: &str, value: &str) -> Result<T, SwitchError> {
    T::parse(value).ok_or_else(|| SwitchError::BadValue {
        name: name.to_owned(),
        value: value.to_owned(),
        expected: T::form(),
    })
}

/// Writes `set` and `switches` for a quirks struct from one list of its fields, so the
/// names, the listing and the error's list of valid names cannot disagree.
macro_rules! quirk_switches {
    ($quirks:ident { $($field:ident: $help:literal,)* }) => {
        impl $quirks {
            /// Sets the switch `name` (a field name, as [`switches`](Self::switches) lists
            /// them) from text: `on`/`off` for flags, `90s`/`500ms`/`2m` for durations,
            /// comma-separated lists, `off` for an optional setting.
            pub fn set(&mut self, name: &str, value: &str) -> Result<(), SwitchError> {
                $(if name == stringify!($field) {
                    self.$field = parse_as(name, value)?;
                    return Ok(());
                })*
                Err(SwitchError::UnknownSwitch {
                    name: name.to_owned(),
                    valid: vec![$(stringify!($field)),*],
                })
            }

            /// Every switch with its current value, its default, the form it accepts and
            /// what it reproduces.
            pub fn switches(&self) -> Vec<Switch> {
                // Names every field: a field added without a switch fails to compile here.
                let Self { $($field: _),* } = self;
                let default = Self::default();
                vec![$(Switch::of(stringify!($field), &self.$field, &default.$field, $help)),*]
            }
        }
    };
}

quirk_switches!(JoindinQuirks {
    development_mode: "mode=development: Authorization honoured over plain HTTP; off is production (header ignored unless server_sees_https)",
    server_sees_https: "behave as behind TLS: https:// links, Authorization honoured even in production mode",
    unknown_token_is_user_zero: "an unknown token identifies user 0 (the HEAD behaviour of spec §2.3)",
    unverified_is_403: "an unverified user's sign-in fails with 403 instead of 401 (pre-2017 servers)",
    expirable_client_ids: "consumers whose idle tokens POST /token deletes",
    numeric_tokens: "issue all-digit tokens, which numeric coercion turns into JSON numbers",
    numeric_coercion: "JsonView::numericCheck: numeric-looking values become JSON numbers; off sends PDO's strings",
    comment_rate_limit: "talk-comment rate limit per user, MAX/WINDOW; off disables it",
    spam_check: "Akismet spam check: comments containing viagra-test-123 fail it",
    missing_user_empty_list: "a missing user is 200 {\"users\":[]} instead of 404",
    jsonp: "a callback parameter wraps the body as JSONP",
    case_insensitive_credentials: "tokens, client credentials and usernames match case-insensitively",
    legacy_oauth_allow: "serve the legacy /user/oauth_allow page; off, every /user/* page is 404",
});

quirk_switches!(JoinMeQuirks {
    access_ttl: "access-token lifetime before 401 stale_token",
    authorize_error_status: "status of the authorize error page",
    x_frame_options: "send X-Frame-Options: DENY on the consent page",
    deny_error: "error sent to the callback when the user declines",
    implicit_fragment_extras: "the implicit fragment adds token_type=bearer&expires_in=<ttl>",
    code_ttl: "authorization-code lifetime",
    lenient_redirect_uri: "accept a redirect_uri differing only in case or a trailing slash (off: byte-exact)",
    token_expires_in: "expires_in in token responses, in seconds (off: omitted)",
    token_type_field: "token_type: \"bearer\" in token responses (off: omitted)",
    token_scope_field: "scope in token responses (off: omitted)",
    invalid_client_status: "status of invalid_client (400 is the other common choice)",
    refresh_rotation: "a refresh returns a new refresh token and retires the old one",
    revoke_old_on_refresh: "a refresh revokes the access tokens issued earlier under that refresh token",
    refresh_ttl: "refresh-token lifetime (off: unlimited)",
    expire_access_path: "path of Expire Access",
    expire_access_delay: "delay before Expire Access takes effect (the real service took up to 600s)",
    success_as_string: "Expire Access answers \"success\": \"true\" (a string) instead of true",
    renew_authorization: "serve renewauthorization (only LogMeIn's sample code shows it); off, it is the authorize error page",
    renew_flag_value: "value of isAuthorizationRenewed after a renew",
    renew_revives_expired: "a renew also revives tokens expired through Expire Access",
    tokeninfo_endpoint: "serve GET /api/public/v1/auth/tokenInfo",
    inactive_body: "body of the 403 Developer Inactive: html (Mashery's default) or json (LogMeIn's stub)",
    insufficient_scope_status: "status for a token lacking the needed scope",
    user_get_status: "status of GET /v1/user (the documentation says 201)",
    strict_booleans: "accept only JSON booleans, not \"true\"/\"false\" strings",
    schedule_status: "status of POST /v1/meetings",
    delete_returns_empty_object: "DELETE /v1/meetings/{id} answers 200 {} instead of 204",
    rate_limit: "Mashery throttling per API key, QPS/s,QUOTA/PERIOD; off: none",
    throttle_status: "status of throttled requests (403 is Mashery's default; some tenants use 429)",
    plan_headers: "with rate_limit: send Mashery's X-Plan-QPS-* and X-Plan-Quota-* headers",
    webhooks: "register start-meeting webhooks and answer webhooksStatus",
    presenters_api: "serve the Business presenters API (/v1/presenters)",
});

/// Joind.in endpoints by command-line name.
const JOINDIN_ENDPOINTS: &[(&str, JoindinEndpoint)] = &[
    ("token", JoindinEndpoint::Token),
    ("api", JoindinEndpoint::Api),
    ("oauth-allow", JoindinEndpoint::OAuthAllow),
    ("login", JoindinEndpoint::Login),
    ("web", JoindinEndpoint::Web),
];

/// join.me endpoints by command-line name.
const JOINME_ENDPOINTS: &[(&str, JoinMeEndpoint)] = &[
    ("authorize", JoinMeEndpoint::Authorize),
    ("token", JoinMeEndpoint::Token),
    ("expire-access", JoinMeEndpoint::ExpireAccess),
    ("renew-authorization", JoinMeEndpoint::RenewAuthorization),
    ("token-info", JoinMeEndpoint::TokenInfo),
    ("api", JoinMeEndpoint::Api),
    ("start-meeting", JoinMeEndpoint::StartMeeting),
    ("other", JoinMeEndpoint::Other),
];

/// Fault kinds by command-line name: name, argument, alias, what is sent.
const FAULT_KINDS: &[(&str, &str, &str, &str)] = &[
    (
        "latency",
        "=DURATION",
        "slow",
        "wait (real time), then answer normally; latencies add up",
    ),
    (
        "server-error",
        "[=STATUS]",
        "",
        "a 5xx HTML page (default 500; join.me API: Mashery headers)",
    ),
    (
        "service-unavailable",
        "[=SECS]",
        "",
        "503 with Retry-After: SECS (default 1)",
    ),
    (
        "backend-error",
        "",
        "",
        "the provider's own failure: Joind.in [\"Database error\"], join.me server_error or {\"Message\"}",
    ),
    (
        "too-many-requests",
        "[=SECS]",
        "",
        "429 with Retry-After: SECS (default 1)",
    ),
    (
        "mashery-over-qps",
        "[=SECS]",
        "over-qps",
        "Mashery's 403 ERR_403_DEVELOPER_OVER_QPS with Retry-After: SECS (default 1)",
    ),
    (
        "malformed-json",
        "",
        "",
        "200, a JSON content type, a body no parser accepts",
    ),
    (
        "truncated-body",
        "",
        "truncated",
        "200 whose body ends before its Content-Length",
    ),
    (
        "oversized-body",
        "",
        "oversized",
        "200 with a 10 MiB JSON body",
    ),
    (
        "connection-reset",
        "",
        "reset",
        "the connection is reset without any response",
    ),
];

/// The fault-spec grammar, for messages.
const FAULT_SYNTAX: &str =
    "[ENDPOINT:]KIND[=ARG][@N|@always|@every:N|@chance:P[:SEED]][,method=METHOD][,after]";

/// Parses a Joind.in fault spec (see [`fault_help`]); the endpoint defaults to the API.
pub fn parse_joindin_fault(spec: &str) -> Result<FaultRule<JoindinEndpoint>, SwitchError> {
    parse_fault(spec, JOINDIN_ENDPOINTS, JoindinEndpoint::Api)
}

/// Parses a join.me fault spec (see [`fault_help`]); the endpoint defaults to the REST API.
pub fn parse_joinme_fault(spec: &str) -> Result<FaultRule<JoinMeEndpoint>, SwitchError> {
    parse_fault(spec, JOINME_ENDPOINTS, JoinMeEndpoint::Api)
}

/// The fault-spec syntax, the endpoints of both providers and every fault kind.
pub fn fault_help() -> String {
    let joindin: Vec<&str> = JOINDIN_ENDPOINTS.iter().map(|e| e.0).collect();
    let joinme: Vec<&str> = JOINME_ENDPOINTS.iter().map(|e| e.0).collect();
    let mut lines = vec![
        "Fault specs (--fault SPEC, repeatable; injected once started, checked in the order given):".to_owned(),
        format!("  {FAULT_SYNTAX}"),
        format!("  ENDPOINT   joindin: {}", joindin.join(", ")),
        format!("             joinme: {}", joinme.join(", ")),
        "             any: every endpoint (default: api)".to_owned(),
        "  @N         the next N matching requests (default @1)".to_owned(),
        "  @always    every matching request".to_owned(),
        "  @every:N   every N-th matching request".to_owned(),
        "  @chance:P[:SEED]  each matching request with probability P (0 to 1); the same SEED (default 0) repeats a run".to_owned(),
        "  method=M   only requests with method M; the others neither fire nor use up the rule".to_owned(),
        "  after      process the request first (a token is issued or rotated), then replace the response".to_owned(),
        "Kinds:".to_owned(),
    ];
    lines.extend(FAULT_KINDS.iter().map(|(name, arg, alias, help)| {
        let alias = if alias.is_empty() {
            String::new()
        } else {
            format!(" (or {alias})")
        };
        format!("  {name}{arg}{alias}: {help}")
    }));
    lines.push(
        "Examples: service-unavailable=2@3   token:server-error=502,method=POST,after   any:slow=2s@always"
            .to_owned(),
    );
    lines.join("\n")
}

/// `[ENDPOINT:]KIND[=ARG][@TRIGGER][,OPTION…]`: options after the first comma, the trigger
/// after `@` (so `@every:N` never reads as an endpoint), the endpoint before `:`.
fn parse_fault<E: Copy>(
    spec: &str,
    endpoints: &[(&str, E)],
    default: E,
) -> Result<FaultRule<E>, SwitchError> {
    let bad = |reason: String| SwitchError::BadFault {
        spec: spec.to_owned(),
        reason,
    };
    let mut parts = spec.split(',');
    let head = parts.next().unwrap_or_default();
    let (body, trigger) = match head.split_once('@') {
        Some((body, trigger)) => (body, Some(trigger)),
        None => (head, None),
    };
    let (endpoint, kind) = match body.split_once(':') {
        Some((endpoint, kind)) => (Some(normalize(endpoint)), kind),
        None => (None, body),
    };
    let (kind, arg) = match kind.split_once('=') {
        Some((kind, arg)) => (kind, Some(arg.trim())),
        None => (kind, None),
    };
    let fault = parse_fault_kind(&normalize(kind), arg).map_err(bad)?;
    let mut rule = match endpoint.as_deref() {
        None => FaultRule::on(default, fault),
        Some("any") => FaultRule::on_any(fault),
        Some(name) => {
            let target = endpoints
                .iter()
                .find(|(n, _)| *n == name)
                .map(|(_, e)| *e)
                .ok_or_else(|| {
                    let valid: Vec<&str> = endpoints.iter().map(|e| e.0).collect();
                    bad(format!(
                        "unknown endpoint `{name}`; endpoints: {}, any",
                        valid.join(", ")
                    ))
                })?;
            FaultRule::on(target, fault)
        }
    };
    if let Some(trigger) = trigger {
        rule = parse_trigger(rule, trigger.trim()).map_err(bad)?;
    }
    for option in parts.map(str::trim) {
        rule = match option.split_once('=') {
            None if option == "after" => rule.after_processing(),
            Some((key, method)) if key.trim() == "method" => {
                let method =
                    http::Method::from_bytes(method.trim().to_ascii_uppercase().as_bytes())
                        .map_err(|_| {
                            bad(format!("bad method `{method}`; expected e.g. method=GET"))
                        })?;
                rule.for_method(method)
            }
            _ => {
                return Err(bad(format!(
                    "unknown option `{option}`; options: method=METHOD, after ({FAULT_SYNTAX})"
                )));
            }
        };
    }
    Ok(rule)
}

fn normalize(name: &str) -> String {
    name.trim().to_ascii_lowercase().replace('_', "-")
}

fn parse_fault_kind(kind: &str, arg: Option<&str>) -> Result<Fault, String> {
    let retry_after = || match arg {
        None => Ok(1),
        Some(a) => a
            .parse::<u32>()
            .map_err(|_| format!("`{kind}` takes Retry-After seconds, not `{a}`")),
    };
    let bare = |fault: Fault| match arg {
        None => Ok(fault),
        Some(a) => Err(format!("`{kind}` takes no argument, got `={a}`")),
    };
    match kind {
        "latency" | "slow" => {
            let a = arg.ok_or_else(|| format!("`{kind}` needs a duration, e.g. `{kind}=2s`"))?;
            parse_duration(a)
                .map(Fault::Latency)
                .ok_or_else(|| format!("`{kind}` takes {DURATION_FORM}, not `{a}`"))
        }
        "server-error" => {
            let status = match arg {
                None => 500,
                Some(a) => a
                    .parse::<u16>()
                    .ok()
                    .filter(|s| (500..=599).contains(s))
                    .ok_or_else(|| format!("`server-error` takes a 5xx status, not `{a}`"))?,
            };
            Ok(Fault::ServerError { status })
        }
        "service-unavailable" => Ok(Fault::ServiceUnavailable {
            retry_after_s: retry_after()?,
        }),
        "backend-error" => bare(Fault::BackendError),
        "too-many-requests" => Ok(Fault::TooManyRequests {
            retry_after_s: retry_after()?,
        }),
        "mashery-over-qps" | "over-qps" => Ok(Fault::MasheryOverQps {
            retry_after_s: retry_after()?,
        }),
        "malformed-json" => bare(Fault::MalformedJson),
        "truncated-body" | "truncated" => bare(Fault::TruncatedBody),
        "oversized-body" | "oversized" => bare(Fault::OversizedBody),
        "connection-reset" | "reset" => bare(Fault::ConnectionReset),
        _ => {
            let kinds: Vec<&str> = FAULT_KINDS.iter().map(|k| k.0).collect();
            Err(format!(
                "unknown fault kind `{kind}`; kinds: {}",
                kinds.join(", ")
            ))
        }
    }
}

fn parse_trigger<E>(rule: FaultRule<E>, trigger: &str) -> Result<FaultRule<E>, String> {
    let count = |n: &str| n.trim().parse::<u32>().ok().filter(|n| *n > 0);
    if trigger == "always" {
        return Ok(rule.always());
    }
    if let Some(n) = trigger.strip_prefix("every:") {
        return count(n)
            .map(|n| rule.every_nth(n))
            .ok_or_else(|| format!("`@every:N` needs a whole N of at least 1, not `{n}`"));
    }
    if let Some(rest) = trigger.strip_prefix("chance:") {
        let (p, seed) = rest.split_once(':').unwrap_or((rest, "0"));
        let p = p
            .trim()
            .parse::<f64>()
            .ok()
            .filter(|p| (0.0..=1.0).contains(p))
            .ok_or_else(|| format!("`@chance:P` needs P from 0 to 1, not `{p}`"))?;
        let seed = seed
            .trim()
            .parse::<u64>()
            .map_err(|_| format!("`@chance:P:SEED` needs a whole SEED, not `{seed}`"))?;
        return Ok(rule.with_probability(p, seed));
    }
    count(trigger).map(|n| rule.times(n)).ok_or_else(|| {
        format!("bad trigger `@{trigger}`; expected @N (at least 1), @always, @every:N or @chance:P[:SEED]")
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{FaultKind, Trigger};

    fn bad_value(err: SwitchError) -> String {
        match err {
            SwitchError::BadValue { expected, .. } => expected,
            other => panic!("not a bad value: {other:?}"),
        }
    }

    fn bad_fault(spec: &str) -> String {
        match parse_joindin_fault(spec) {
            Err(SwitchError::BadFault { spec: s, reason }) => {
                assert_eq!(s, spec);
                reason
            }
            other => panic!("{spec}: {other:?}"),
        }
    }

    #[test]
    fn every_listed_switch_round_trips_at_its_default() {
        let joindin = JoindinQuirks::default();
        let mut copy = joindin.clone();
        for s in joindin.switches() {
            assert_eq!(s.value, s.default, "{}", s.name);
            copy.set(s.name, &s.value).expect(s.name);
        }
        assert_eq!(copy, joindin);
        let joinme = JoinMeQuirks::default();
        let mut copy = joinme.clone();
        for s in joinme.switches() {
            copy.set(s.name, &s.value).expect(s.name);
        }
        assert_eq!(copy, joinme);
    }

    #[test]
    fn changed_switches_round_trip_through_their_listing() {
        let mut joinme = JoinMeQuirks::default();
        for (name, value) in [
            ("access_ttl", "90s"),
            ("code_ttl", "500ms"),
            ("refresh_ttl", "30d"),
            ("expire_access_delay", "10m"),
            ("token_expires_in", "86400"),
            ("rate_limit", "2/s, 5000/1d"),
            ("inactive_body", "JSON"),
            ("throttle_status", "429"),
            ("deny_error", "user_denied"),
            ("x_frame_options", "yes"),
        ] {
            joinme.set(name, value).expect(name);
        }
        let mut copy = JoinMeQuirks::default();
        for s in joinme.switches() {
            copy.set(s.name, &s.value).expect(s.name);
        }
        assert_eq!(copy, joinme);

        let mut joindin = JoindinQuirks::default();
        joindin.set("comment_rate_limit", "5/90s").expect("limit");
        joindin
            .set("expirable_client_ids", "web2, other,")
            .expect("ids");
        joindin.set("development_mode", "0").expect("mode");
        let mut copy = JoindinQuirks::default();
        for s in joindin.switches() {
            copy.set(s.name, &s.value).expect(s.name);
        }
        assert_eq!(copy, joindin);
    }

    #[test]
    fn switches_name_the_documented_ones_once() {
        for names in [
            JoindinQuirks::default()
                .switches()
                .iter()
                .map(|s| s.name)
                .collect::<Vec<_>>(),
            JoinMeQuirks::default()
                .switches()
                .iter()
                .map(|s| s.name)
                .collect(),
        ] {
            let mut unique = names.clone();
            unique.sort_unstable();
            unique.dedup();
            assert_eq!(unique.len(), names.len(), "{names:?}");
        }
        let joindin = JoindinQuirks::default().switches();
        let mode = joindin
            .iter()
            .find(|s| s.name == "development_mode")
            .expect("listed");
        assert_eq!(mode.value, "on");
        assert!(!mode.help.is_empty());
        let joinme = JoinMeQuirks::default().switches();
        let delay = joinme
            .iter()
            .find(|s| s.name == "expire_access_delay")
            .expect("listed");
        assert_eq!(
            (delay.value.as_str(), delay.form.as_str()),
            ("0s", DURATION_FORM)
        );
        assert!(
            joinme
                .iter()
                .all(|s| !s.help.is_empty() && !s.form.is_empty())
        );
    }

    #[test]
    fn values_parse_in_every_documented_form() {
        let mut q = JoindinQuirks::default();
        for (text, want) in [
            ("off", false),
            ("TRUE", true),
            ("0", false),
            ("on", true),
            (" no ", false),
        ] {
            q.set("development_mode", text).expect(text);
            assert_eq!(q.development_mode, want, "{text}");
        }
        q.set("comment_rate_limit", "30/3600s").expect("limit");
        assert_eq!(q.comment_rate_limit, Some(CommentRateLimit::default()));
        q.set("comment_rate_limit", "off").expect("off");
        assert_eq!(q.comment_rate_limit, None);
        q.set("expirable_client_ids", "").expect("empty list");
        assert!(q.expirable_client_ids.is_empty());

        let mut q = JoinMeQuirks::default();
        for (text, want) in [
            ("90", Duration::from_secs(90)),
            ("90s", Duration::from_secs(90)),
            ("500ms", Duration::from_millis(500)),
            ("2m", Duration::from_secs(120)),
            ("1 h", Duration::from_secs(3600)),
            ("1d", Duration::from_secs(86_400)),
        ] {
            q.set("expire_access_delay", text).expect(text);
            assert_eq!(q.expire_access_delay, want, "{text}");
        }
        q.set("rate_limit", "2/s,5000/1d").expect("rate limit");
        assert_eq!(
            q.rate_limit,
            Some(JoinMeRateLimit {
                qps: 2,
                quota: 5000,
                quota_period: Duration::from_secs(86_400)
            })
        );
        q.set("token_expires_in", "none").expect("none");
        assert_eq!(q.token_expires_in, None);
        q.set("refresh_ttl", "1h").expect("ttl");
        assert_eq!(q.refresh_ttl, Some(Duration::from_secs(3600)));
        q.set("expire_access_path", "/expire").expect("path");
        assert_eq!(q.expire_access_path, "/expire");
        assert_eq!(show_duration(Duration::from_millis(1500)), "1500ms");
        assert_eq!(show_duration(Duration::from_secs(7200)), "2h");
        // Whatever is shown parses back to the same duration, below a millisecond too.
        for d in [
            Duration::ZERO,
            Duration::from_nanos(1),
            Duration::from_micros(250),
            Duration::from_millis(1),
            Duration::from_secs(90),
            Duration::new(3, 7),
        ] {
            assert_eq!(parse_duration(&show_duration(d)), Some(d), "{d:?}");
        }
    }

    #[test]
    fn an_unknown_switch_lists_the_valid_ones() {
        let err = JoindinQuirks::default()
            .set("production", "on")
            .unwrap_err();
        let message = err.to_string();
        assert!(message.contains("`production`"), "{message}");
        assert!(message.contains("development_mode") && message.contains("legacy_oauth_allow"));
        let err = JoinMeQuirks::default()
            .set("development_mode", "on")
            .unwrap_err();
        assert!(
            matches!(&err, SwitchError::UnknownSwitch { valid, .. } if valid.contains(&"expire_access_delay"))
        );
    }

    #[test]
    fn a_bad_value_names_the_expected_form() {
        let mut q = JoinMeQuirks::default();
        for (name, value, form) in [
            ("x_frame_options", "maybe", "on|off"),
            ("expire_access_delay", "soon", "duration"),
            ("expire_access_delay", "5x", "duration"),
            ("expire_access_delay", "-1s", "duration"),
            ("expire_access_delay", "", "duration"),
            ("expire_access_delay", "99999999999999999999d", "duration"),
            ("access_ttl", "999999999999999999d", "duration"),
            ("user_get_status", "99", "HTTP status"),
            ("user_get_status", "600", "HTTP status"),
            ("token_expires_in", "-5", "whole number | off"),
            ("refresh_ttl", "forever", "| off"),
            ("inactive_body", "xml", "html|json"),
            ("rate_limit", "2,5000/1d", "QPS/s"),
            ("rate_limit", "2/s", "QPS/s"),
        ] {
            let err = q.set(name, value).unwrap_err();
            assert!(err.to_string().contains(&format!("`{name}`")), "{err}");
            let expected = bad_value(err);
            assert!(expected.contains(form), "{name}={value}: {expected}");
        }
        let err = JoindinQuirks::default()
            .set("comment_rate_limit", "30")
            .unwrap_err();
        assert!(bad_value(err).contains("MAX/WINDOW"));
        assert_eq!(q, JoinMeQuirks::default(), "a failed set changes nothing");
    }

    #[test]
    fn fault_specs_parse() {
        let api = |fault| FaultRule::on(JoindinEndpoint::Api, fault);
        let ok = |spec: &str| parse_joindin_fault(spec).unwrap_or_else(|e| panic!("{spec}: {e}"));
        assert_eq!(
            ok("service-unavailable=1@2"),
            api(Fault::ServiceUnavailable { retry_after_s: 1 }).times(2)
        );
        assert_eq!(ok("reset"), api(Fault::ConnectionReset));
        assert_eq!(
            ok("token:server-error=502@always,method=post,after"),
            FaultRule::on(JoindinEndpoint::Token, Fault::ServerError { status: 502 })
                .always()
                .for_method(http::Method::POST)
                .after_processing()
        );
        assert_eq!(
            ok("OAuth_Allow:Slow=2s@every:3"),
            FaultRule::on(
                JoindinEndpoint::OAuthAllow,
                Fault::Latency(Duration::from_secs(2))
            )
            .every_nth(3)
        );
        assert_eq!(
            ok("any:malformed-json@chance:0.25:7"),
            FaultRule::on_any(Fault::MalformedJson).with_probability(0.25, 7)
        );
        assert_eq!(
            ok("truncated@chance:1").trigger(),
            &Trigger::Probability { p: 1.0, seed: 0 }
        );
        assert_eq!(
            parse_joinme_fault("expire-access:backend-error").expect("joinme"),
            FaultRule::on(JoinMeEndpoint::ExpireAccess, Fault::BackendError)
        );
        assert_eq!(
            parse_joinme_fault("over-qps=30").expect("default endpoint"),
            FaultRule::on(
                JoinMeEndpoint::Api,
                Fault::MasheryOverQps { retry_after_s: 30 }
            )
        );
    }

    /// Exhaustive, so a new fault kind fails to compile here until it has a name.
    fn kind_name(kind: FaultKind) -> &'static str {
        match kind {
            FaultKind::Latency => "latency",
            FaultKind::ServerError => "server-error",
            FaultKind::ServiceUnavailable => "service-unavailable",
            FaultKind::BackendError => "backend-error",
            FaultKind::TooManyRequests => "too-many-requests",
            FaultKind::MasheryOverQps => "mashery-over-qps",
            FaultKind::MalformedJson => "malformed-json",
            FaultKind::TruncatedBody => "truncated-body",
            FaultKind::OversizedBody => "oversized-body",
            FaultKind::ConnectionReset => "connection-reset",
        }
    }

    #[test]
    fn every_fault_kind_parses_by_name_and_alias() {
        for (name, arg, alias, _) in FAULT_KINDS {
            let arg = if arg.starts_with('=') { "=1s" } else { "" };
            for spelling in [*name, *alias].into_iter().filter(|s| !s.is_empty()) {
                let rule = parse_joindin_fault(&format!("{spelling}{arg}")).expect(spelling);
                assert_eq!(kind_name(rule.fault().kind()), *name);
            }
        }
        assert_eq!(FAULT_KINDS.len(), 10, "one entry per FaultKind");
        let defaults = [
            "server-error",
            "service-unavailable",
            "too-many-requests",
            "mashery-over-qps",
        ]
        .map(|k| parse_joindin_fault(k).expect(k).fault().clone());
        assert_eq!(
            defaults,
            [
                Fault::ServerError { status: 500 },
                Fault::ServiceUnavailable { retry_after_s: 1 },
                Fault::TooManyRequests { retry_after_s: 1 },
                Fault::MasheryOverQps { retry_after_s: 1 },
            ]
        );
    }

    #[test]
    fn endpoint_tables_name_every_endpoint_once() {
        fn joindin(e: JoindinEndpoint) -> &'static str {
            match e {
                JoindinEndpoint::Token => "token",
                JoindinEndpoint::Api => "api",
                JoindinEndpoint::OAuthAllow => "oauth-allow",
                JoindinEndpoint::Login => "login",
                JoindinEndpoint::Web => "web",
            }
        }
        fn joinme(e: JoinMeEndpoint) -> &'static str {
            match e {
                JoinMeEndpoint::Authorize => "authorize",
                JoinMeEndpoint::Token => "token",
                JoinMeEndpoint::ExpireAccess => "expire-access",
                JoinMeEndpoint::RenewAuthorization => "renew-authorization",
                JoinMeEndpoint::TokenInfo => "token-info",
                JoinMeEndpoint::Api => "api",
                JoinMeEndpoint::StartMeeting => "start-meeting",
                JoinMeEndpoint::Other => "other",
            }
        }
        assert_eq!(JOINDIN_ENDPOINTS.len(), 5);
        assert_eq!(JOINME_ENDPOINTS.len(), 8);
        for (name, e) in JOINDIN_ENDPOINTS {
            assert_eq!(joindin(*e), *name);
            let spec = format!("{name}:reset");
            assert_eq!(parse_joindin_fault(&spec).expect(name).target(), Some(e));
        }
        for (name, e) in JOINME_ENDPOINTS {
            assert_eq!(joinme(*e), *name);
            let spec = format!("{name}:reset");
            assert_eq!(parse_joinme_fault(&spec).expect(name).target(), Some(e));
        }
    }

    #[test]
    fn bad_fault_specs_say_what_is_accepted() {
        for (spec, needle) in [
            ("", "unknown fault kind ``"),
            ("meltdown", "kinds: latency, server-error"),
            ("nowhere:reset", "endpoints: token, api"),
            ("expire-access:reset", "unknown endpoint"),
            ("latency", "needs a duration"),
            ("slow=fast", "takes a duration"),
            ("server-error=404", "5xx"),
            ("service-unavailable=soon", "Retry-After seconds"),
            ("reset=1", "takes no argument"),
            ("reset@0", "@N (at least 1)"),
            ("reset@sometimes", "@always"),
            ("reset@every:0", "@every:N"),
            ("reset@chance:2", "from 0 to 1"),
            ("reset@chance:NaN", "from 0 to 1"),
            ("reset@chance:0.5:x", "SEED"),
            ("reset,later", "options: method=METHOD, after"),
            ("reset,method=", "bad method"),
            ("reset,method=GE T", "bad method"),
        ] {
            let reason = bad_fault(spec);
            assert!(reason.contains(needle), "{spec}: {reason}");
        }
        let err = parse_joinme_fault("oauth-allow:reset").unwrap_err();
        assert!(err.to_string().contains("renew-authorization"), "{err}");
    }

    #[test]
    fn fault_help_lists_every_endpoint_and_kind() {
        let help = fault_help();
        let names = JOINDIN_ENDPOINTS
            .iter()
            .map(|e| e.0)
            .chain(JOINME_ENDPOINTS.iter().map(|e| e.0))
            .chain(FAULT_KINDS.iter().map(|k| k.0));
        for name in names {
            assert!(help.contains(name), "{name} in {help}");
        }
        assert!(help.contains(FAULT_SYNTAX));
    }
}
