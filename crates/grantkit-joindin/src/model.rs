//! Joind.in's resources as typed values, read leniently (see the crate docs).
//!
//! Dates are kept as the server wrote them: RFC 3339 with the event's UTC offset
//! (`2014-01-24T09:00:00+01:00`). Ids come from the last segment of `uri`; only talks
//! carry an `id` of their own.

use crate::lenient::{
    self, id_from_uri, opt_bool, opt_f64, opt_text, opt_u64, record_list, text, text_list,
};
use serde::{Deserialize, Deserializer};
use serde_json::Value;
use std::collections::BTreeMap;

/// The paging part of a list's `meta`.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[non_exhaustive]
pub struct Meta {
    /// Items in this page.
    #[serde(default, deserialize_with = "opt_u64")]
    pub count: Option<u64>,
    /// Items in the whole list.
    #[serde(default, deserialize_with = "opt_u64")]
    pub total: Option<u64>,
    /// This page's URL.
    #[serde(default, deserialize_with = "opt_text")]
    pub this_page: Option<String>,
    /// The next page's URL, when there is one.
    #[serde(default, deserialize_with = "opt_text")]
    pub next_page: Option<String>,
    /// The previous page's URL, when there is one.
    #[serde(default, deserialize_with = "opt_text")]
    pub prev_page: Option<String>,
    /// The caller, when the request carried a token Joind.in knows.
    #[serde(default, deserialize_with = "opt_text")]
    pub user_uri: Option<String>,
}

/// One page of a list.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct Page<T> {
    /// The items.
    pub items: Vec<T>,
    /// Counts and links.
    pub meta: Meta,
}

/// The root document, `GET /`.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[non_exhaustive]
pub struct Root {
    /// All events.
    #[serde(default, deserialize_with = "opt_text")]
    pub events: Option<String>,
    /// Hot events.
    #[serde(default, rename = "hot-events", deserialize_with = "opt_text")]
    pub hot_events: Option<String>,
    /// Upcoming events.
    #[serde(default, rename = "upcoming-events", deserialize_with = "opt_text")]
    pub upcoming_events: Option<String>,
    /// Past events.
    #[serde(default, rename = "past-events", deserialize_with = "opt_text")]
    pub past_events: Option<String>,
    /// Events with an open call for papers.
    #[serde(default, rename = "open-cfps", deserialize_with = "opt_text")]
    pub open_cfps: Option<String>,
    /// The API documentation.
    #[serde(default, deserialize_with = "opt_text")]
    pub docs: Option<String>,
    /// `meta.user_uri`: who the token belongs to.
    #[serde(default)]
    pub meta: Meta,
}

/// Who a token belongs to, from `meta.user_uri` of the root document.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct WhoAmI {
    /// The user's id.
    pub user_id: u64,
    /// The `user_uri` as the server wrote it.
    pub user_uri: String,
}

/// One size of an event's image.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[non_exhaustive]
pub struct Image {
    /// `orig`, `small`, …
    #[serde(default, rename = "type", deserialize_with = "opt_text")]
    pub kind: Option<String>,
    /// Where it is.
    #[serde(default, deserialize_with = "opt_text")]
    pub url: Option<String>,
    /// Width in pixels.
    #[serde(default, deserialize_with = "opt_u64")]
    pub width: Option<u64>,
    /// Height in pixels.
    #[serde(default, deserialize_with = "opt_u64")]
    pub height: Option<u64>,
}

/// `images`: `[]` when the event has none, else a map from size name to image.
fn images<'de, D: Deserializer<'de>>(d: D) -> Result<BTreeMap<String, Image>, D::Error> {
    Ok(match Option::<Value>::deserialize(d)? {
        Some(Value::Object(map)) => map
            .into_iter()
            .filter_map(|(name, v)| Some((name, serde_json::from_value(v).ok()?)))
            .collect(),
        _ => BTreeMap::new(),
    })
}

/// An event host, in verbose events.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[non_exhaustive]
pub struct Host {
    /// Display name.
    #[serde(default, deserialize_with = "opt_text")]
    pub host_name: Option<String>,
    /// The host's user.
    #[serde(default, deserialize_with = "opt_text")]
    pub host_uri: Option<String>,
}

/// An event.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[non_exhaustive]
pub struct Event {
    /// Its URI; the id is its last segment ([`id`](Self::id)).
    #[serde(deserialize_with = "text")]
    pub uri: String,
    /// Name (a numeric-looking name arrives as a number and is read back as text).
    #[serde(default, deserialize_with = "opt_text")]
    pub name: Option<String>,
    /// URL-friendly name.
    #[serde(default, deserialize_with = "opt_text")]
    pub url_friendly_name: Option<String>,
    /// Start, RFC 3339 in the event's offset.
    #[serde(default, deserialize_with = "opt_text")]
    pub start_date: Option<String>,
    /// End, RFC 3339 in the event's offset.
    #[serde(default, deserialize_with = "opt_text")]
    pub end_date: Option<String>,
    /// Description.
    #[serde(default, deserialize_with = "opt_text")]
    pub description: Option<String>,
    /// Short name (never coerced by the server).
    #[serde(default, deserialize_with = "opt_text")]
    pub stub: Option<String>,
    /// The event's own web site.
    #[serde(default, deserialize_with = "opt_text")]
    pub href: Option<String>,
    /// Time-zone continent, e.g. `Europe`.
    #[serde(default, deserialize_with = "opt_text")]
    pub tz_continent: Option<String>,
    /// Time-zone place, e.g. `Amsterdam`.
    #[serde(default, deserialize_with = "opt_text")]
    pub tz_place: Option<String>,
    /// Attendees.
    #[serde(default, deserialize_with = "opt_u64")]
    pub attendee_count: Option<u64>,
    /// Whether the caller attends.
    #[serde(default, deserialize_with = "opt_bool")]
    pub attending: Option<bool>,
    /// Average rating.
    #[serde(default, deserialize_with = "opt_f64")]
    pub event_average_rating: Option<f64>,
    /// Event comments.
    #[serde(default, deserialize_with = "opt_u64")]
    pub event_comments_count: Option<u64>,
    /// Tracks.
    #[serde(default, deserialize_with = "opt_u64")]
    pub tracks_count: Option<u64>,
    /// Talks.
    #[serde(default, deserialize_with = "opt_u64")]
    pub talks_count: Option<u64>,
    /// Icon file name.
    #[serde(default, deserialize_with = "opt_text")]
    pub icon: Option<String>,
    /// Venue.
    #[serde(default, deserialize_with = "opt_text")]
    pub location: Option<String>,
    /// Images by size name; empty when the server sent `[]`.
    #[serde(default, deserialize_with = "images")]
    pub images: BTreeMap<String, Image>,
    /// Tags (numeric-looking tags are read back as text).
    #[serde(default, deserialize_with = "text_list")]
    pub tags: Vec<String>,
    /// Awaiting approval.
    #[serde(default, deserialize_with = "opt_bool")]
    pub pending: Option<bool>,
    /// The event's talks.
    #[serde(default, deserialize_with = "opt_text")]
    pub talks_uri: Option<String>,
    /// The event's comments.
    #[serde(default, deserialize_with = "opt_text")]
    pub comments_uri: Option<String>,
    /// The event's page on the web site.
    #[serde(default, deserialize_with = "opt_text")]
    pub website_uri: Option<String>,
    /// The short link on the web site.
    #[serde(default, deserialize_with = "opt_text")]
    pub humane_website_uri: Option<String>,
    /// Verbose: latitude.
    #[serde(default, deserialize_with = "opt_f64")]
    pub latitude: Option<f64>,
    /// Verbose: longitude.
    #[serde(default, deserialize_with = "opt_f64")]
    pub longitude: Option<f64>,
    /// Verbose: organiser.
    #[serde(default, deserialize_with = "opt_text")]
    pub contact_name: Option<String>,
    /// Verbose: hashtag.
    #[serde(default, deserialize_with = "opt_text")]
    pub hashtag: Option<String>,
    /// Verbose: whether comments are open.
    #[serde(default, deserialize_with = "opt_bool")]
    pub comments_enabled: Option<bool>,
    /// Verbose: call for papers opens.
    #[serde(default, deserialize_with = "opt_text")]
    pub cfp_start_date: Option<String>,
    /// Verbose: call for papers closes.
    #[serde(default, deserialize_with = "opt_text")]
    pub cfp_end_date: Option<String>,
    /// Verbose: call for papers URL.
    #[serde(default, deserialize_with = "opt_text")]
    pub cfp_url: Option<String>,
    /// Verbose: hosts.
    #[serde(default, deserialize_with = "record_list")]
    pub hosts: Vec<Host>,
    /// Verbose: whether the caller may edit it.
    #[serde(default, deserialize_with = "opt_bool")]
    pub can_edit: Option<bool>,
}

impl Event {
    /// The event's id: the last segment of its URI (events have no `id` field).
    pub fn id(&self) -> Option<u64> {
        id_from_uri(&self.uri)
    }
}

/// A talk's speaker.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[non_exhaustive]
pub struct Speaker {
    /// Display name.
    #[serde(default, deserialize_with = "opt_text")]
    pub speaker_name: Option<String>,
    /// The speaker's user, when they have an account.
    #[serde(default, deserialize_with = "opt_text")]
    pub speaker_uri: Option<String>,
}

/// A talk's track.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[non_exhaustive]
pub struct Track {
    /// Name (never coerced by the server).
    #[serde(default, deserialize_with = "opt_text")]
    pub track_name: Option<String>,
    /// The track.
    #[serde(default, deserialize_with = "opt_text")]
    pub track_uri: Option<String>,
}

/// A link in a verbose talk's `talk_media`.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[non_exhaustive]
pub struct TalkMedia {
    /// Slides.
    #[serde(default, deserialize_with = "opt_text")]
    pub slides_link: Option<String>,
}

/// The caller's rating of a talk, in verbose talks.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum UserRating {
    /// Not in the answer (not verbose).
    #[default]
    Absent,
    /// The request was anonymous (`[]`).
    Anonymous,
    /// The caller has not rated the talk (`false`).
    NotRated,
    /// The caller's rating.
    Rated(u64),
}

fn user_rating<'de, D: Deserializer<'de>>(d: D) -> Result<UserRating, D::Error> {
    Ok(match Option::<Value>::deserialize(d)? {
        None | Some(Value::Null) => UserRating::Absent,
        Some(Value::Array(_)) => UserRating::Anonymous,
        Some(Value::Bool(false)) => UserRating::NotRated,
        Some(other) => lenient::u64_of(&other).map_or(UserRating::Absent, UserRating::Rated),
    })
}

/// A talk.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[non_exhaustive]
pub struct Talk {
    /// Its URI.
    #[serde(deserialize_with = "text")]
    pub uri: String,
    /// The talk's `id` field (talks are the only resource with one).
    #[serde(default, rename = "id", deserialize_with = "opt_u64")]
    pub id_field: Option<u64>,
    /// Title (a title such as `1984` arrives as a number and is read back as text).
    #[serde(default, deserialize_with = "opt_text")]
    pub talk_title: Option<String>,
    /// URL-friendly title.
    #[serde(default, deserialize_with = "opt_text")]
    pub url_friendly_talk_title: Option<String>,
    /// Description.
    #[serde(default, deserialize_with = "opt_text")]
    pub talk_description: Option<String>,
    /// `Talk`, `Keynote`, `Workshop`, …
    #[serde(default, rename = "type", deserialize_with = "opt_text")]
    pub talk_type: Option<String>,
    /// Start, RFC 3339 in the event's offset.
    #[serde(default, deserialize_with = "opt_text")]
    pub start_date: Option<String>,
    /// Minutes.
    #[serde(default, deserialize_with = "opt_u64")]
    pub duration: Option<u64>,
    /// Short name.
    #[serde(default, deserialize_with = "opt_text")]
    pub stub: Option<String>,
    /// Average rating.
    #[serde(default, deserialize_with = "opt_f64")]
    pub average_rating: Option<f64>,
    /// Whether comments are open.
    #[serde(default, deserialize_with = "opt_bool")]
    pub comments_enabled: Option<bool>,
    /// Comments.
    #[serde(default, deserialize_with = "opt_u64")]
    pub comment_count: Option<u64>,
    /// Whether the caller starred it.
    #[serde(default, deserialize_with = "opt_bool")]
    pub starred: Option<bool>,
    /// How many starred it.
    #[serde(default, deserialize_with = "opt_u64")]
    pub starred_count: Option<u64>,
    /// Speakers.
    #[serde(default, deserialize_with = "record_list")]
    pub speakers: Vec<Speaker>,
    /// Tracks.
    #[serde(default, deserialize_with = "record_list")]
    pub tracks: Vec<Track>,
    /// Comments.
    #[serde(default, deserialize_with = "opt_text")]
    pub comments_uri: Option<String>,
    /// The event.
    #[serde(default, deserialize_with = "opt_text")]
    pub event_uri: Option<String>,
    /// The talk's page on the web site.
    #[serde(default, deserialize_with = "opt_text")]
    pub website_uri: Option<String>,
    /// Verbose: slides.
    #[serde(default, deserialize_with = "opt_text")]
    pub slides_link: Option<String>,
    /// Verbose: media links (`null` reads as none).
    #[serde(default, deserialize_with = "record_list")]
    pub talk_media: Vec<TalkMedia>,
    /// Verbose: language.
    #[serde(default, deserialize_with = "opt_text")]
    pub language: Option<String>,
    /// Verbose: the caller's rating.
    #[serde(default, deserialize_with = "user_rating")]
    pub user_rating: UserRating,
}

impl Talk {
    /// The talk's id: its `id` field, or the last segment of its URI.
    pub fn id(&self) -> Option<u64> {
        self.id_field.or_else(|| id_from_uri(&self.uri))
    }

    /// The id of the event it belongs to.
    pub fn event_id(&self) -> Option<u64> {
        self.event_uri.as_deref().and_then(id_from_uri)
    }
}

/// A comment on a talk.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[non_exhaustive]
pub struct TalkComment {
    /// Its URI; the id is its last segment.
    #[serde(deserialize_with = "text")]
    pub uri: String,
    /// Rating (0 when the author had rated already or is the speaker).
    #[serde(default, deserialize_with = "opt_u64")]
    pub rating: Option<u64>,
    /// Text (never coerced by the server).
    #[serde(default, deserialize_with = "opt_text")]
    pub comment: Option<String>,
    /// Author's display name.
    #[serde(default, deserialize_with = "opt_text")]
    pub user_display_name: Option<String>,
    /// Author's user name.
    #[serde(default, deserialize_with = "opt_text")]
    pub username: Option<String>,
    /// The talk's title.
    #[serde(default, deserialize_with = "opt_text")]
    pub talk_title: Option<String>,
    /// When, RFC 3339.
    #[serde(default, deserialize_with = "opt_text")]
    pub created_date: Option<String>,
    /// The talk.
    #[serde(default, deserialize_with = "opt_text")]
    pub talk_uri: Option<String>,
    /// The author, when not anonymous.
    #[serde(default, deserialize_with = "opt_text")]
    pub user_uri: Option<String>,
    /// Verbose: the application it was posted with.
    #[serde(default, deserialize_with = "opt_text")]
    pub source: Option<String>,
}

impl TalkComment {
    /// The comment's id: the last segment of its URI.
    pub fn id(&self) -> Option<u64> {
        id_from_uri(&self.uri)
    }
}

/// A user.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[non_exhaustive]
pub struct User {
    /// Its URI; the id is its last segment.
    #[serde(deserialize_with = "text")]
    pub uri: String,
    /// User name (never coerced by the server).
    #[serde(default, deserialize_with = "opt_text")]
    pub username: Option<String>,
    /// Display name (a name such as `123` arrives as a number and is read back as text).
    #[serde(default, deserialize_with = "opt_text")]
    pub full_name: Option<String>,
    /// Biography.
    #[serde(default, deserialize_with = "opt_text")]
    pub biography: Option<String>,
    /// Twitter handle.
    #[serde(default, deserialize_with = "opt_text")]
    pub twitter_username: Option<String>,
    /// The user's page on the web site.
    #[serde(default, deserialize_with = "opt_text")]
    pub website_uri: Option<String>,
    /// The user's talks.
    #[serde(default, deserialize_with = "opt_text")]
    pub talks_uri: Option<String>,
    /// Verbose: trusted commenter.
    #[serde(default, deserialize_with = "opt_bool")]
    pub trusted: Option<bool>,
    /// Verbose: Gravatar hash.
    #[serde(default, deserialize_with = "opt_text")]
    pub gravatar_hash: Option<String>,
    /// Verbose, own account or admin: e-mail address.
    #[serde(default, deserialize_with = "opt_text")]
    pub email: Option<String>,
    /// Verbose, admin only: administrator flag.
    #[serde(default, deserialize_with = "opt_bool")]
    pub admin: Option<bool>,
    /// Verbose: whether the caller may edit it.
    #[serde(default, deserialize_with = "opt_bool")]
    pub can_edit: Option<bool>,
}

impl User {
    /// The user's id: the last segment of its URI.
    pub fn id(&self) -> Option<u64> {
        id_from_uri(&self.uri)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn coerced_and_uncoerced_events_read_the_same() {
        let coerced = json!({
            "name": 1984, "stub": "0101", "attendee_count": 2, "attending": false,
            "event_average_rating": 0, "images": [], "tags": ["php", 2024],
            "uri": "https://api.joind.in/v2.1/events/3", "pending": 0, "unknown_key": {"x": 1}
        });
        let uncoerced = json!({
            "name": "1984", "stub": "0101", "attendee_count": "2", "attending": false,
            "event_average_rating": "0", "images": [], "tags": ["php", "2024"],
            "uri": "https://api.joind.in/v2.1/events/3", "pending": "0"
        });
        let a: Event = serde_json::from_value(coerced).unwrap();
        let b: Event = serde_json::from_value(uncoerced).unwrap();
        assert_eq!(a, b);
        assert_eq!(a.name.as_deref(), Some("1984"));
        assert_eq!(a.tags, ["php", "2024"]);
        assert_eq!(a.id(), Some(3));
        assert!(a.images.is_empty());
        assert_eq!(a.pending, Some(false));
    }

    #[test]
    fn images_as_a_map_are_read() {
        let event: Event = serde_json::from_value(json!({
            "uri": "https://api.joind.in/v2.1/events/1",
            "images": {"orig": {"type": "orig", "url": "https://x/a.png", "width": 1140, "height": "1140"}}
        }))
        .unwrap();
        let orig = &event.images["orig"];
        assert_eq!(orig.width, Some(1140));
        assert_eq!(orig.height, Some(1140));
    }

    #[test]
    fn talks_read_verbose_variants() {
        let base = |rating: Value, media: Value| {
            serde_json::from_value::<Talk>(json!({
                "id": "4", "talk_title": 1984, "uri": "https://api.joind.in/v2.1/talks/4",
                "user_rating": rating, "talk_media": media, "comments_enabled": 1,
                "speakers": [{"speaker_name": "Jane"}], "event_uri": "https://api.joind.in/v2.1/events/1"
            }))
            .unwrap()
        };
        let talk = base(json!([]), json!(null));
        assert_eq!(talk.id(), Some(4));
        assert_eq!(talk.event_id(), Some(1));
        assert_eq!(talk.talk_title.as_deref(), Some("1984"));
        assert_eq!(talk.user_rating, UserRating::Anonymous);
        assert!(talk.talk_media.is_empty());
        assert_eq!(talk.comments_enabled, Some(true));
        assert_eq!(
            base(json!(false), json!([])).user_rating,
            UserRating::NotRated
        );
        let rated = base(json!(4), json!([{"slides_link": "https://s"}]));
        assert_eq!(rated.user_rating, UserRating::Rated(4));
        assert_eq!(
            rated.talk_media[0].slides_link.as_deref(),
            Some("https://s")
        );
        let absent: Talk =
            serde_json::from_value(json!({"uri": "https://api.joind.in/v2.1/talks/9"})).unwrap();
        assert_eq!(absent.user_rating, UserRating::Absent);
        assert_eq!(absent.id(), Some(9));
    }

    #[test]
    fn a_missing_uri_is_an_error() {
        assert!(serde_json::from_value::<User>(json!({"username": "x"})).is_err());
        let user: User = serde_json::from_value(
            json!({"uri": "https://api.joind.in/v2.1/users/3", "full_name": 123}),
        )
        .unwrap();
        assert_eq!(user.full_name.as_deref(), Some("123"));
        assert_eq!(user.id(), Some(3));
    }
}

/// A comment on an event. Event comments name their link `comment_uri`, not `uri`.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[non_exhaustive]
pub struct EventComment {
    /// Its URI; the id is its last segment.
    #[serde(deserialize_with = "text")]
    pub comment_uri: String,
    /// Rating, 1 to 5.
    #[serde(default, deserialize_with = "opt_u64")]
    pub rating: Option<u64>,
    /// Text (never coerced by the server).
    #[serde(default, deserialize_with = "opt_text")]
    pub comment: Option<String>,
    /// Author's display name.
    #[serde(default, deserialize_with = "opt_text")]
    pub user_display_name: Option<String>,
    /// Author's user name.
    #[serde(default, deserialize_with = "opt_text")]
    pub username: Option<String>,
    /// When, RFC 3339.
    #[serde(default, deserialize_with = "opt_text")]
    pub created_date: Option<String>,
    /// The event.
    #[serde(default, deserialize_with = "opt_text")]
    pub event_uri: Option<String>,
    /// The author, when not anonymous.
    #[serde(default, deserialize_with = "opt_text")]
    pub user_uri: Option<String>,
    /// Where to report it (`POST`, signed in).
    #[serde(default, deserialize_with = "opt_text")]
    pub reported_uri: Option<String>,
    /// Verbose: the application it was posted with.
    #[serde(default, deserialize_with = "opt_text")]
    pub source: Option<String>,
}

impl EventComment {
    /// The comment's id: the last segment of its URI.
    pub fn id(&self) -> Option<u64> {
        id_from_uri(&self.comment_uri)
    }
}

/// A track of an event, as the track lists give it (a talk's own `tracks` are [`Track`]
/// links).
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[non_exhaustive]
pub struct EventTrack {
    /// Its URI; the id is its last segment.
    #[serde(deserialize_with = "text")]
    pub uri: String,
    /// Name (never coerced by the server).
    #[serde(default, deserialize_with = "opt_text")]
    pub track_name: Option<String>,
    /// Description.
    #[serde(default, deserialize_with = "opt_text")]
    pub track_description: Option<String>,
    /// Talks in the track.
    #[serde(default, deserialize_with = "opt_u64")]
    pub talks_count: Option<u64>,
    /// The event.
    #[serde(default, deserialize_with = "opt_text")]
    pub event_uri: Option<String>,
}

impl EventTrack {
    /// The track's id: the last segment of its URI.
    pub fn id(&self) -> Option<u64> {
        id_from_uri(&self.uri)
    }
}

/// A language a talk can be given in.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[non_exhaustive]
pub struct Language {
    /// Its URI; the id is its last segment.
    #[serde(deserialize_with = "text")]
    pub uri: String,
    /// Name, e.g. `English - UK`.
    #[serde(default, deserialize_with = "opt_text")]
    pub name: Option<String>,
    /// Code, e.g. `en_GB`.
    #[serde(default, deserialize_with = "opt_text")]
    pub code: Option<String>,
}

/// A kind of talk: talk, keynote, workshop…
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[non_exhaustive]
pub struct TalkType {
    /// Its URI; the id is its last segment.
    #[serde(deserialize_with = "text")]
    pub uri: String,
    /// Title, e.g. `Keynote`.
    #[serde(default, deserialize_with = "opt_text")]
    pub title: Option<String>,
    /// Description.
    #[serde(default, deserialize_with = "opt_text")]
    pub description: Option<String>,
}
