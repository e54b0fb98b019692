//! join.me's REST API models: camelCase, tolerant of absent and unknown fields.
//!
//! Responses are read leniently (every field but the meeting id is optional, numbers and
//! booleans may arrive as strings, `registrationDate` has no zone); requests are written
//! strictly (real JSON booleans, UTC times with `Z`).

use chrono::{DateTime, NaiveDateTime, Utc};
use grantkit_core::SecretUrl;
use serde::de::{self, Deserializer};
use serde::{Deserialize, Serialize};
use std::fmt;

/// A scheduled meeting's id.
pub type MeetingId = u64;

/// The signed-in user (`GET /v1/user`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", default)]
#[non_exhaustive]
pub struct User {
    /// The login id: join.me's only identifier of a user.
    pub email: String,
    /// The display name.
    pub full_name: Option<String>,
    /// e.g. `en-US`.
    pub language: Option<String>,
    /// Meetings hosted so far.
    #[serde(deserialize_with = "lenient_u64")]
    pub number_of_meetings_hosted: Option<u64>,
    /// The personal URL name (defined, and not a Free user, only).
    pub personal_url: Option<String>,
    /// When the user registered. join.me sends it without a zone
    /// (`2014-03-22T20:45:00`); an unreadable value is `None`.
    #[serde(deserialize_with = "lenient_naive")]
    pub registration_date: Option<NaiveDateTime>,
    /// `Free`, `Pro`, `Business`, … (not a closed set).
    pub subscription_type: Option<String>,
    /// The audio conference (absent for Free users).
    pub conference_settings: Option<ConferenceSettings>,
}

/// An audio conference: `conferenceSettings`, `audioConference`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", default)]
#[non_exhaustive]
pub struct ConferenceSettings {
    /// The 9-digit conference id.
    #[serde(deserialize_with = "lenient_string")]
    pub conference_id: Option<String>,
    /// Where the call-in numbers are listed.
    pub conference_call_numbers_url: Option<String>,
    /// The 4-digit organizer code.
    #[serde(deserialize_with = "lenient_string")]
    pub organizer_code: Option<String>,
}

/// How viewers see a meeting.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ViewerMode {
    /// The usual viewer.
    Default,
    /// No viewer controls; pair with `viewer_app_detection: Some(false)`.
    Headless,
}

/// One webhook: join.me POSTs to `callback_url`, adding `custom_callback_data` to the body.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Webhook {
    /// An absolute URL.
    pub callback_url: String,
    /// Added to the callback's body.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub custom_callback_data: Option<serde_json::Value>,
}

impl Webhook {
    /// A webhook without custom data.
    pub fn new(callback_url: impl Into<String>) -> Self {
        Self {
            callback_url: callback_url.into(),
            custom_callback_data: None,
        }
    }

    /// Adds custom data to the callback's body.
    pub fn with_data(mut self, data: serde_json::Value) -> Self {
        self.custom_callback_data = Some(data);
        self
    }
}

/// The webhooks of a started meeting.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Webhooks {
    /// When the presenter launched the meeting.
    #[serde(rename = "meeting.start", skip_serializing_if = "Option::is_none")]
    pub meeting_start: Option<Webhook>,
    /// When all parties left.
    #[serde(rename = "meeting.end", skip_serializing_if = "Option::is_none")]
    pub meeting_end: Option<Webhook>,
}

/// `POST /v1/meetings/start`, and `POST /v1/meetings/{id}/start` (where
/// `StartMeeting::default()` starts the meeting as scheduled).
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StartMeeting {
    /// Start on the personal URL rather than a 9-digit code. Required for an ad-hoc
    /// meeting; for a scheduled one `None` keeps the meeting's own setting.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub start_with_personal_url: Option<bool>,
    /// The viewer's mode.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub viewer_mode: Option<ViewerMode>,
    /// Whether viewers are offered the app (join.me's default: yes).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub viewer_app_detection: Option<bool>,
    /// Webhooks to register.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub webhooks: Option<Webhooks>,
}

impl StartMeeting {
    /// An ad-hoc meeting, on the personal URL or not.
    pub fn new(start_with_personal_url: bool) -> Self {
        Self {
            start_with_personal_url: Some(start_with_personal_url),
            viewer_mode: None,
            viewer_app_detection: None,
            webhooks: None,
        }
    }

    /// Sets the viewer mode.
    pub fn with_viewer_mode(mut self, mode: ViewerMode) -> Self {
        self.viewer_mode = Some(mode);
        self
    }

    /// Sets viewer app detection.
    pub fn with_viewer_app_detection(mut self, detect: bool) -> Self {
        self.viewer_app_detection = Some(detect);
        self
    }

    /// Sets the webhooks.
    pub fn with_webhooks(mut self, webhooks: Webhooks) -> Self {
        self.webhooks = Some(webhooks);
        self
    }
}

/// What a start call returns.
#[derive(Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
#[non_exhaustive]
pub struct StartedMeeting {
    /// The presenter's one-time link (valid 10 minutes). Whoever opens it presents the
    /// meeting, so it is a [`SecretUrl`]: hand it to the presenter's browser, never log it.
    #[serde(deserialize_with = "secret_url")]
    pub presenter_link: Option<SecretUrl>,
    /// The link viewers open.
    pub viewer_link: Option<String>,
    /// The meeting's audio conference.
    pub audio_conference: Option<ConferenceSettings>,
    /// How the webhooks' registration went: only when webhooks were sent, and `None` too
    /// when join.me answers it in a shape other than an object (it does not document it;
    /// the meeting has started either way).
    #[serde(deserialize_with = "lenient_webhooks_status")]
    pub webhooks_status: Option<WebhooksStatus>,
}

/// How each webhook of a start call was registered: join.me may start a meeting while
/// registering a webhook fails, so check [`is_registered`](Self::is_registered). join.me
/// does not document the values; `"registered"` is the one known to mean success, and
/// every other value is kept as sent.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct WebhooksStatus {
    entries: std::collections::BTreeMap<String, serde_json::Value>,
}

/// A `webhooksStatus` object; anything else is `None` rather than an error, since the
/// answer of a start call must never be lost to an undocumented field.
fn lenient_webhooks_status<'de, D: Deserializer<'de>>(
    d: D,
) -> Result<Option<WebhooksStatus>, D::Error> {
    Ok(match serde_json::Value::deserialize(d)? {
        serde_json::Value::Object(map) => Some(WebhooksStatus {
            entries: map.into_iter().collect(),
        }),
        _ => None,
    })
}

impl WebhooksStatus {
    /// The events join.me reported on, e.g. `meeting.start`.
    pub fn events(&self) -> impl Iterator<Item = &str> {
        self.entries.keys().map(String::as_str)
    }

    /// The status of `meeting.start` or `meeting.end`, as join.me wrote it.
    pub fn status(&self, event: &str) -> Option<String> {
        self.entries.get(event).map(|value| match value {
            serde_json::Value::String(text) => text.clone(),
            other => other.to_string(),
        })
    }

    /// Whether the webhook for `event` (`meeting.start`, `meeting.end`) was registered.
    pub fn is_registered(&self, event: &str) -> bool {
        self.status(event)
            .is_some_and(|s| s.eq_ignore_ascii_case("registered"))
    }
}

/// A presenter seat of a join.me Business account (`provisioning` scope).
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct Presenter {
    /// Its id.
    #[serde(deserialize_with = "required_u64")]
    pub id: u64,
    /// The presenter's e-mail address.
    #[serde(default, deserialize_with = "lenient_string")]
    pub email: Option<String>,
    /// Whether the presenter accepted the invitation.
    #[serde(default, deserialize_with = "lenient_bool")]
    pub is_invitation_accepted: Option<bool>,
    /// Whether a seat of the plan is assigned to the presenter.
    #[serde(default, deserialize_with = "lenient_bool")]
    pub is_seat_assigned: Option<bool>,
}

impl fmt::Debug for StartedMeeting {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StartedMeeting")
            .field("presenter_link", &self.presenter_link)
            .field("viewer_link", &self.viewer_link)
            .field("audio_conference", &self.audio_conference)
            .field("webhooks_status", &self.webhooks_status)
            .finish()
    }
}

/// A scheduled meeting.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct Meeting {
    /// Its id.
    #[serde(deserialize_with = "required_u64")]
    pub meeting_id: MeetingId,
    /// Its name.
    #[serde(default)]
    pub meeting_name: Option<String>,
    /// When it starts (UTC).
    #[serde(default, deserialize_with = "lenient_utc")]
    pub meeting_start: Option<DateTime<Utc>>,
    /// When it ends (UTC).
    #[serde(default, deserialize_with = "lenient_utc")]
    pub meeting_end: Option<DateTime<Utc>>,
    /// Whether it starts on the personal URL (else on a 9-digit code).
    #[serde(default, deserialize_with = "lenient_bool")]
    pub start_with_personal_url: Option<bool>,
    /// The participants' e-mail addresses.
    #[serde(default, deserialize_with = "null_as_empty")]
    pub participants: Vec<String>,
    /// The conference id.
    #[serde(default, deserialize_with = "lenient_string")]
    pub conference_id: Option<String>,
    /// The viewer link, active once the meeting was started.
    #[serde(default)]
    pub viewer_link: Option<String>,
}

/// `POST /v1/meetings`: a meeting to schedule.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct NewMeeting {
    /// Its name.
    pub meeting_name: String,
    /// When it starts; sent as UTC with `Z`, in whole seconds.
    #[serde(serialize_with = "utc_seconds")]
    pub meeting_start: DateTime<Utc>,
    /// When it ends; sent as UTC with `Z`, in whole seconds.
    #[serde(serialize_with = "utc_seconds")]
    pub meeting_end: DateTime<Utc>,
    /// Start on the personal URL (default: a 9-digit code).
    pub start_with_personal_url: bool,
    /// The participants' e-mail addresses.
    pub participants: Vec<String>,
}

impl NewMeeting {
    /// A meeting from `start` to `end`, on a 9-digit code, without participants.
    pub fn new(name: impl Into<String>, start: DateTime<Utc>, end: DateTime<Utc>) -> Self {
        Self {
            meeting_name: name.into(),
            meeting_start: start,
            meeting_end: end,
            start_with_personal_url: false,
            participants: Vec::new(),
        }
    }

    /// Starts it on the personal URL.
    pub fn with_personal_url(mut self, yes: bool) -> Self {
        self.start_with_personal_url = yes;
        self
    }

    /// Sets the participants.
    pub fn with_participants<I, S>(mut self, emails: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.participants = emails.into_iter().map(Into::into).collect();
        self
    }
}

/// `PATCH /v1/meetings/{id}`: the fields to change. `None` leaves a field unchanged (it is
/// not sent at all).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MeetingUpdate {
    /// A new name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub meeting_name: Option<String>,
    /// A new start.
    #[serde(
        skip_serializing_if = "Option::is_none",
        serialize_with = "optional_utc_seconds"
    )]
    pub meeting_start: Option<DateTime<Utc>>,
    /// A new end.
    #[serde(
        skip_serializing_if = "Option::is_none",
        serialize_with = "optional_utc_seconds"
    )]
    pub meeting_end: Option<DateTime<Utc>>,
    /// Start on the personal URL, or not.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub start_with_personal_url: Option<bool>,
    /// A new participant list.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub participants: Option<Vec<String>>,
}

/// `GET /v1/meetings`: always wrapped.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct MeetingList {
    #[serde(deserialize_with = "null_as_empty")]
    pub(crate) meetings: Vec<Meeting>,
}

// ---- writers ------------------------------------------------------------------------------

/// join.me's format: `2015-06-02T09:00:00Z` (UTC, `Z`, whole seconds).
fn utc_seconds<S: serde::Serializer>(time: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&time.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
}

fn optional_utc_seconds<S: serde::Serializer>(
    time: &Option<DateTime<Utc>>,
    s: S,
) -> Result<S::Ok, S::Error> {
    match time {
        Some(time) => utc_seconds(time, s),
        None => s.serialize_none(),
    }
}

// ---- lenient readers --------------------------------------------------------------------

fn secret_url<'de, D: Deserializer<'de>>(d: D) -> Result<Option<SecretUrl>, D::Error> {
    Ok(Option::<String>::deserialize(d)?
        .filter(|s| !s.is_empty())
        .map(SecretUrl::new))
}

fn null_as_empty<'de, D, T>(d: D) -> Result<Vec<T>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Ok(Option::<Vec<T>>::deserialize(d)?.unwrap_or_default())
}

/// A number, or a string holding one.
fn number(value: serde_json::Value) -> Option<u64> {
    match value {
        serde_json::Value::Number(n) => n.as_u64(),
        serde_json::Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

fn lenient_u64<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    Ok(Option::<serde_json::Value>::deserialize(d)?.and_then(number))
}

fn required_u64<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    let value = serde_json::Value::deserialize(d)?;
    number(value).ok_or_else(|| de::Error::custom("the meeting id is not a non-negative integer"))
}

/// A string, or a number written as one (ids and codes that are digits).
fn lenient_string<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    Ok(match Option::<serde_json::Value>::deserialize(d)? {
        Some(serde_json::Value::String(s)) => Some(s),
        Some(serde_json::Value::Number(n)) => Some(n.to_string()),
        _ => None,
    })
}

fn lenient_bool<'de, D: Deserializer<'de>>(d: D) -> Result<Option<bool>, D::Error> {
    Ok(match Option::<serde_json::Value>::deserialize(d)? {
        Some(serde_json::Value::Bool(b)) => Some(b),
        Some(serde_json::Value::String(s)) if s.eq_ignore_ascii_case("true") => Some(true),
        Some(serde_json::Value::String(s)) if s.eq_ignore_ascii_case("false") => Some(false),
        _ => None,
    })
}

fn lenient_utc<'de, D: Deserializer<'de>>(d: D) -> Result<Option<DateTime<Utc>>, D::Error> {
    Ok(
        Option::<serde_json::Value>::deserialize(d)?.and_then(|v| match v {
            serde_json::Value::String(s) => parse_utc(&s),
            _ => None,
        }),
    )
}

fn lenient_naive<'de, D: Deserializer<'de>>(d: D) -> Result<Option<NaiveDateTime>, D::Error> {
    Ok(
        Option::<serde_json::Value>::deserialize(d)?.and_then(|v| match v {
            serde_json::Value::String(s) => parse_naive(&s),
            _ => None,
        }),
    )
}

/// RFC 3339 with any offset (normalised to UTC); a zoneless time is taken as UTC, which
/// is what join.me documents for its API times.
pub(crate) fn parse_utc(text: &str) -> Option<DateTime<Utc>> {
    let text = text.trim();
    DateTime::parse_from_rfc3339(text)
        .map(|t| t.with_timezone(&Utc))
        .ok()
        .or_else(|| parse_naive(text).map(|t| t.and_utc()))
}

/// `2014-03-22T20:45:00`, with or without fractional seconds; a time with a zone is
/// converted to UTC and its zone dropped.
pub(crate) fn parse_naive(text: &str) -> Option<NaiveDateTime> {
    let text = text.trim();
    NaiveDateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S%.f")
        .ok()
        .or_else(|| {
            DateTime::parse_from_rfc3339(text)
                .ok()
                .map(|t| t.naive_utc())
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_webhooks_status_of_another_shape_does_not_lose_the_started_meeting() {
        for status in [r#""registered""#, "[1]", "null", "7"] {
            let body = format!(
                r#"{{"presenterLink":"https://secure.join.me/x?token=t","webhooksStatus":{status}}}"#
            );
            let started: StartedMeeting = serde_json::from_str(&body).expect(&body);
            assert!(started.presenter_link.is_some());
            assert_eq!(started.webhooks_status, None, "{status}");
        }
        let started: StartedMeeting = serde_json::from_str(
            r#"{"webhooksStatus":{"meeting.start":"registered","meeting.end":{"code":3}}}"#,
        )
        .unwrap();
        let status = started.webhooks_status.unwrap();
        assert!(status.is_registered("meeting.start"));
        assert_eq!(
            status.status("meeting.end").as_deref(),
            Some(r#"{"code":3}"#)
        );
        assert_eq!(
            status.events().collect::<Vec<_>>(),
            ["meeting.end", "meeting.start"]
        );
    }
    use chrono::TimeZone as _;
    use serde_json::json;

    #[test]
    fn the_documented_user_reads_with_its_zoneless_date() {
        let user: User = serde_json::from_value(json!({
            "email": "grantkit@example.com",
            "fullName": "Grant Kit",
            "language": "en-US",
            "numberOfMeetingsHosted": 42,
            "personalUrl": "grantkit",
            "registrationDate": "2014-03-22T20:45:00",
            "subscriptionType": "Pro",
            "conferenceSettings": {"conferenceId": "123456789", "conferenceCallNumbersUrl": "https://x/y", "organizerCode": "1234"},
            "somethingNew": {"ignored": true}
        }))
        .unwrap();
        assert_eq!(user.email, "grantkit@example.com");
        assert_eq!(user.number_of_meetings_hosted, Some(42));
        assert_eq!(
            user.registration_date,
            Some(
                chrono::NaiveDate::from_ymd_opt(2014, 3, 22)
                    .unwrap()
                    .and_hms_opt(20, 45, 0)
                    .unwrap()
            )
        );
        let conference = user.conference_settings.unwrap();
        assert_eq!(conference.conference_id.as_deref(), Some("123456789"));
        assert_eq!(conference.organizer_code.as_deref(), Some("1234"));
    }

    #[test]
    fn a_free_user_with_odd_fields_still_reads() {
        let user: User = serde_json::from_value(json!({
            "email": "free@example.com",
            "numberOfMeetingsHosted": "7",
            "registrationDate": "yesterday",
            "personalUrl": null
        }))
        .unwrap();
        assert_eq!(user.number_of_meetings_hosted, Some(7));
        assert_eq!(user.registration_date, None);
        assert!(user.conference_settings.is_none());
        let user: User = serde_json::from_value(json!({
            "email": "z@example.com", "registrationDate": "2014-03-22T20:45:00.123Z"
        }))
        .unwrap();
        assert!(user.registration_date.is_some());
    }

    #[test]
    fn meetings_read_leniently_and_write_utc_with_z_and_real_booleans() {
        let meeting: Meeting = serde_json::from_value(json!({
            "meetingId": "1000001",
            "meetingName": "Weekly",
            "meetingStart": "2099-06-02T11:00:00+02:00",
            "meetingEnd": "2099-06-02T10:00:00Z",
            "startWithPersonalUrl": "true",
            "participants": null,
            "conferenceId": 123456789
        }))
        .unwrap();
        assert_eq!(meeting.meeting_id, 1_000_001);
        assert_eq!(
            meeting.meeting_start,
            Some(Utc.with_ymd_and_hms(2099, 6, 2, 9, 0, 0).unwrap())
        );
        assert_eq!(meeting.start_with_personal_url, Some(true));
        assert!(meeting.participants.is_empty());
        assert_eq!(meeting.conference_id.as_deref(), Some("123456789"));
        assert!(serde_json::from_value::<Meeting>(json!({"meetingName": "x"})).is_err());

        let start = Utc.with_ymd_and_hms(2099, 6, 2, 9, 0, 0).unwrap();
        let new = NewMeeting::new("Weekly", start, start + chrono::Duration::hours(1))
            .with_participants(["a@example.com"]);
        assert_eq!(
            serde_json::to_value(&new).unwrap(),
            json!({
                "meetingName": "Weekly",
                "meetingStart": "2099-06-02T09:00:00Z",
                "meetingEnd": "2099-06-02T10:00:00Z",
                "startWithPersonalUrl": false,
                "participants": ["a@example.com"]
            })
        );
        let update = MeetingUpdate {
            meeting_name: Some("Renamed".into()),
            ..MeetingUpdate::default()
        };
        assert_eq!(
            serde_json::to_value(&update).unwrap(),
            json!({"meetingName": "Renamed"})
        );
        let update = MeetingUpdate {
            meeting_end: Some(start + chrono::Duration::milliseconds(1_500)),
            ..MeetingUpdate::default()
        };
        assert_eq!(
            serde_json::to_value(&update).unwrap(),
            json!({"meetingEnd": "2099-06-02T09:00:01Z"})
        );
        let start = StartMeeting::new(true)
            .with_viewer_mode(ViewerMode::Headless)
            .with_viewer_app_detection(false)
            .with_webhooks(Webhooks {
                meeting_start: Some(
                    Webhook::new("https://app.example/hook").with_data(json!({"k": 1})),
                ),
                meeting_end: None,
            });
        assert_eq!(
            serde_json::to_value(&start).unwrap(),
            json!({
                "startWithPersonalUrl": true,
                "viewerMode": "headless",
                "viewerAppDetection": false,
                "webhooks": {"meeting.start": {"callbackUrl": "https://app.example/hook", "customCallbackData": {"k": 1}}}
            })
        );
    }

    #[test]
    fn the_presenter_link_is_secret() {
        let started: StartedMeeting = serde_json::from_value(json!({
            "presenterLink": "https://secure.join.me/API/Public/StartMeeting.aspx?token=pr3senter",
            "viewerLink": "https://secure.join.me/123456789",
            "audioConference": {"conferenceId": "123456789"}
        }))
        .unwrap();
        assert!(!format!("{started:?}").contains("pr3senter"));
        assert!(
            started
                .presenter_link
                .unwrap()
                .expose_secret()
                .ends_with("pr3senter")
        );
    }
}
