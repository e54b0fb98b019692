//! Joind.in's data: consumers (API clients), users, tokens, events, talks, comments and
//! legacy web sessions, plus the seed data of the spec's checklist item 22.

use std::collections::HashMap;
use std::time::Duration;

use crate::time::parse_rfc3339;

/// An API consumer (`oauth_consumers` row).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JoindinClient {
    /// `consumer_key` (the `client_id` / `api_key`).
    pub consumer_key: String,
    /// `consumer_secret`.
    pub consumer_secret: String,
    /// Application name; becomes the `source` of comments posted with its tokens.
    pub application: String,
    /// Registered callback for the legacy `oauth_allow` page (compared byte for byte).
    pub callback_url: Option<String>,
    /// Trusted: may use the password grant and list or revoke tokens.
    pub enable_password_grant: bool,
    /// Whether its tokens show in the token list and can be revoked.
    pub can_be_revoked: bool,
    /// Username of the user who registered the application (`application_owner`).
    pub owner_username: Option<String>,
}

impl JoindinClient {
    /// A trusted, revocable client without callback.
    pub fn trusted(
        key: impl Into<String>,
        secret: impl Into<String>,
        application: impl Into<String>,
    ) -> Self {
        Self {
            consumer_key: key.into(),
            consumer_secret: secret.into(),
            application: application.into(),
            callback_url: None,
            enable_password_grant: true,
            can_be_revoked: true,
            owner_username: None,
        }
    }

    /// An untrusted (legacy API key) client with a callback for `oauth_allow`.
    pub fn untrusted(
        key: impl Into<String>,
        secret: impl Into<String>,
        callback_url: impl Into<String>,
    ) -> Self {
        Self {
            consumer_key: key.into(),
            consumer_secret: secret.into(),
            application: "Legacy application".into(),
            callback_url: Some(callback_url.into()),
            enable_password_grant: false,
            can_be_revoked: true,
            owner_username: None,
        }
    }

    /// Sets the callback URL.
    pub fn with_callback(mut self, callback_url: impl Into<String>) -> Self {
        self.callback_url = Some(callback_url.into());
        self
    }
}

/// A user account.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JoindinUser {
    /// Login name.
    pub username: String,
    /// Password (kept in clear: this is a test double).
    pub password: String,
    /// Display name.
    pub full_name: String,
    /// E-mail address.
    pub email: String,
    /// Whether the e-mail address was verified (unverified users cannot sign in).
    pub verified: bool,
    /// Site administrator.
    pub admin: bool,
    /// Trusted commenter.
    pub trusted: bool,
    /// Free text.
    pub biography: Option<String>,
    /// Twitter handle.
    pub twitter_username: Option<String>,
}

impl JoindinUser {
    /// A verified, non-admin user.
    pub fn new(
        username: impl Into<String>,
        password: impl Into<String>,
        full_name: impl Into<String>,
    ) -> Self {
        let username = username.into();
        Self {
            email: format!("{username}@example.com"),
            username,
            password: password.into(),
            full_name: full_name.into(),
            verified: true,
            admin: false,
            trusted: false,
            biography: None,
            twitter_username: None,
        }
    }

    /// Marks the account unverified.
    pub fn unverified(mut self) -> Self {
        self.verified = false;
        self
    }
}

/// An event.
#[derive(Clone, Debug, PartialEq)]
pub struct JoindinEvent {
    /// Name.
    pub name: String,
    /// Short name (exact-match filter `stub`).
    pub stub: Option<String>,
    /// Description.
    pub description: String,
    /// Start, seconds since the epoch.
    pub start: i64,
    /// End, seconds since the epoch.
    pub end: i64,
    /// Time-zone continent, e.g. `Europe`.
    pub tz_continent: String,
    /// Time-zone place, e.g. `Amsterdam`.
    pub tz_place: String,
    /// Event web site.
    pub href: Option<String>,
    /// Venue.
    pub location: String,
    /// Latitude.
    pub latitude: f64,
    /// Longitude.
    pub longitude: f64,
    /// Organiser name.
    pub contact_name: Option<String>,
    /// Hashtag.
    pub hashtag: Option<String>,
    /// Tags (numeric-looking tags become numbers on the wire).
    pub tags: Vec<String>,
    /// Icon file name; also gives the event an `images` object.
    pub icon: Option<String>,
    /// Whether comments are enabled.
    pub comments_enabled: bool,
    /// Call for papers opens (seconds since the epoch).
    pub cfp_start: Option<i64>,
    /// Call for papers closes.
    pub cfp_end: Option<i64>,
    /// Call for papers URL.
    pub cfp_url: Option<String>,
    /// Awaiting approval (only listed with `filter=pending`, for admins).
    pub pending: bool,
    /// Usernames of the hosts.
    pub hosts: Vec<String>,
    /// Usernames of attendees.
    pub attendees: Vec<String>,
}

impl JoindinEvent {
    /// An event with the given name and times (RFC 3339; unparsable times become 0) in
    /// `tz` (`Continent/Place`).
    pub fn new(name: impl Into<String>, start: &str, end: &str, tz: &str) -> Self {
        let (tz_continent, tz_place) = tz.split_once('/').unwrap_or(("UTC", ""));
        Self {
            name: name.into(),
            stub: None,
            description: String::new(),
            start: parse_rfc3339(start).unwrap_or(0),
            end: parse_rfc3339(end).unwrap_or(0),
            tz_continent: tz_continent.into(),
            tz_place: tz_place.into(),
            href: None,
            location: String::new(),
            latitude: 0.0,
            longitude: 0.0,
            contact_name: None,
            hashtag: None,
            tags: Vec::new(),
            icon: None,
            comments_enabled: true,
            cfp_start: None,
            cfp_end: None,
            cfp_url: None,
            pending: false,
            hosts: Vec::new(),
            attendees: Vec::new(),
        }
    }

    pub(crate) fn zone(&self) -> String {
        if self.tz_continent.is_empty() || self.tz_place.is_empty() {
            "UTC".into()
        } else {
            format!("{}/{}", self.tz_continent, self.tz_place)
        }
    }
}

/// A talk.
#[derive(Clone, Debug, PartialEq)]
pub struct JoindinTalk {
    /// Id of the event it belongs to.
    pub event_id: u64,
    /// Title (a numeric-looking title becomes a number on the wire).
    pub title: String,
    /// Description.
    pub description: String,
    /// `Talk`, `Keynote`, `Workshop`, …
    pub talk_type: String,
    /// Start, seconds since the epoch.
    pub start: i64,
    /// Minutes.
    pub duration: u32,
    /// Short name.
    pub stub: Option<String>,
    /// Speakers: display name and, when they have an account, their username.
    pub speakers: Vec<(String, Option<String>)>,
    /// Track names.
    pub tracks: Vec<String>,
    /// Slides URL.
    pub slides_link: Option<String>,
    /// Language, e.g. `English - UK`.
    pub language: String,
    /// Whether comments are enabled.
    pub comments_enabled: bool,
    /// Usernames who starred the talk.
    pub starred_by: Vec<String>,
}

impl JoindinTalk {
    /// A talk in `event_id` starting at `start` (RFC 3339; unparsable becomes 0).
    pub fn new(event_id: u64, title: impl Into<String>, start: &str) -> Self {
        Self {
            event_id,
            title: title.into(),
            description: String::new(),
            talk_type: "Talk".into(),
            start: parse_rfc3339(start).unwrap_or(0),
            duration: 45,
            stub: None,
            speakers: Vec::new(),
            tracks: Vec::new(),
            slides_link: None,
            language: "English - UK".into(),
            comments_enabled: true,
            starred_by: Vec::new(),
        }
    }
}

#[derive(Clone, Debug)]
pub(crate) struct UserRow {
    pub(crate) id: u64,
    pub(crate) user: JoindinUser,
}

#[derive(Clone, Debug)]
pub(crate) struct TokenRow {
    pub(crate) id: u64,
    pub(crate) token: String,
    pub(crate) consumer_key: String,
    pub(crate) user_id: u64,
    pub(crate) created: i64,
    pub(crate) last_used: i64,
}

#[derive(Clone, Debug)]
pub(crate) struct CommentRow {
    pub(crate) id: u64,
    pub(crate) talk_id: u64,
    pub(crate) user_id: u64,
    pub(crate) comment: String,
    pub(crate) rating: i64,
    pub(crate) private: bool,
    pub(crate) source: String,
    pub(crate) created: i64,
    /// Reported for moderation (`POST …/reported`).
    pub(crate) reported: bool,
}

/// A comment on an event (`event_comments` row): no privacy flag, a rating from 1 to 5.
#[derive(Clone, Debug)]
pub(crate) struct EventCommentRow {
    pub(crate) id: u64,
    pub(crate) event_id: u64,
    pub(crate) user_id: u64,
    pub(crate) comment: String,
    pub(crate) rating: i64,
    pub(crate) source: String,
    pub(crate) created: i64,
    pub(crate) reported: bool,
}

/// The legacy site's `oauth_allow` parameters kept for exactly one request.
#[derive(Clone, Debug)]
pub(crate) struct Flash {
    pub(crate) api_key: String,
    pub(crate) callback: String,
    pub(crate) state: String,
}

#[derive(Clone, Debug, Default)]
pub(crate) struct Session {
    pub(crate) user_id: Option<u64>,
    pub(crate) flash: Option<Flash>,
    pub(crate) return_to: Option<String>,
}

/// The comment rate limit: at most `max` comments per user in `window`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CommentRateLimit {
    /// Comments allowed in one window.
    pub max: u32,
    /// Window length.
    pub window: Duration,
}

impl Default for CommentRateLimit {
    fn default() -> Self {
        Self {
            max: 30,
            window: Duration::from_secs(3600),
        }
    }
}

#[derive(Debug, Default)]
pub(crate) struct Db {
    pub(crate) clients: Vec<JoindinClient>,
    pub(crate) users: Vec<UserRow>,
    pub(crate) tokens: Vec<TokenRow>,
    pub(crate) events: Vec<(u64, JoindinEvent)>,
    pub(crate) talks: Vec<(u64, JoindinTalk)>,
    pub(crate) comments: Vec<CommentRow>,
    pub(crate) event_comments: Vec<EventCommentRow>,
    pub(crate) sessions: HashMap<String, Session>,
    pub(crate) next_user_id: u64,
    pub(crate) next_token_id: u64,
    pub(crate) next_event_id: u64,
    pub(crate) next_talk_id: u64,
    pub(crate) next_comment_id: u64,
    pub(crate) next_event_comment_id: u64,
}

impl Db {
    pub(crate) fn new() -> Self {
        Self {
            next_user_id: 1,
            next_token_id: 1,
            next_event_id: 1,
            next_talk_id: 1,
            next_comment_id: 1,
            next_event_comment_id: 1,
            ..Self::default()
        }
    }

    pub(crate) fn add_user(&mut self, user: JoindinUser) -> u64 {
        let id = self.next_user_id;
        self.next_user_id += 1;
        self.users.push(UserRow { id, user });
        id
    }

    pub(crate) fn add_event(&mut self, event: JoindinEvent) -> u64 {
        let id = self.next_event_id;
        self.next_event_id += 1;
        self.events.push((id, event));
        id
    }

    pub(crate) fn add_talk(&mut self, talk: JoindinTalk) -> u64 {
        let id = self.next_talk_id;
        self.next_talk_id += 1;
        self.talks.push((id, talk));
        id
    }

    pub(crate) fn add_comment(&mut self, mut row: CommentRow) -> u64 {
        row.id = self.next_comment_id;
        self.next_comment_id += 1;
        let id = row.id;
        self.comments.push(row);
        id
    }

    pub(crate) fn add_event_comment(&mut self, mut row: EventCommentRow) -> u64 {
        row.id = self.next_event_comment_id;
        self.next_event_comment_id += 1;
        let id = row.id;
        self.event_comments.push(row);
        id
    }

    /// Adds a client, replacing one with the same key.
    pub(crate) fn add_client(&mut self, client: JoindinClient) {
        self.clients
            .retain(|c| c.consumer_key != client.consumer_key);
        self.clients.push(client);
    }

    pub(crate) fn user(&self, id: u64) -> Option<&JoindinUser> {
        self.users.iter().find(|u| u.id == id).map(|u| &u.user)
    }

    pub(crate) fn user_id_by_name(&self, username: &str) -> Option<u64> {
        self.users
            .iter()
            .find(|u| u.user.username == username)
            .map(|u| u.id)
    }

    pub(crate) fn event(&self, id: u64) -> Option<&JoindinEvent> {
        self.events.iter().find(|(i, _)| *i == id).map(|(_, e)| e)
    }

    pub(crate) fn talk(&self, id: u64) -> Option<&JoindinTalk> {
        self.talks.iter().find(|(i, _)| *i == id).map(|(_, t)| t)
    }

    pub(crate) fn client(&self, key: &str) -> Option<&JoindinClient> {
        self.clients.iter().find(|c| c.consumer_key == key)
    }
}

/// The seeded fixtures' credentials, for tests.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JoindinFixtures {
    /// Trusted client (password grant, token list), with a callback for `oauth_allow`.
    pub client_id: String,
    /// Its secret (contains `+` and `/`, as base64 keys do).
    pub client_secret: String,
    /// The trusted client's callback URL.
    pub redirect_uri: String,
    /// Untrusted legacy API key (no password grant), with a callback.
    pub legacy_client_id: String,
    /// Its secret.
    pub legacy_client_secret: String,
    /// The legacy key's callback URL.
    pub legacy_redirect_uri: String,
    /// The web2 client key (trusted, tokens not revocable).
    pub web2_client_id: String,
    /// The web2 client secret.
    pub web2_client_secret: String,
    /// A verified user.
    pub username: String,
    /// Its password.
    pub password: String,
    /// Its user id.
    pub user_id: u64,
    /// An unverified user.
    pub unverified_username: String,
    /// Its password.
    pub unverified_password: String,
    /// An administrator.
    pub admin_username: String,
    /// Its password.
    pub admin_password: String,
    /// A verified user whose `full_name` is the numeric-looking `1984`; speaker of talk 1.
    pub speaker_username: String,
    /// Its password.
    pub speaker_password: String,
}

impl Default for JoindinFixtures {
    fn default() -> Self {
        Self {
            client_id: "Z2tUcnVzdGVkQ2xpZW50+/=".into(),
            client_secret: "c2VjcmV0+/".into(),
            redirect_uri: "http://localhost:8765/joindin/callback".into(),
            legacy_client_id: "legacykey0123456789abcdef".into(),
            legacy_client_secret: "legacysecr".into(),
            legacy_redirect_uri: "http://localhost:8765/legacy/callback".into(),
            web2_client_id: "web2".into(),
            web2_client_secret: "web2secret".into(),
            username: "grantkit".into(),
            password: "grantkit-password".into(),
            user_id: 1,
            unverified_username: "unverified".into(),
            unverified_password: "unverified-password".into(),
            admin_username: "admin".into(),
            admin_password: "admin-password".into(),
            speaker_username: "speaker1984".into(),
            speaker_password: "speaker-password".into(),
        }
    }
}

fn ts(s: &str) -> i64 {
    parse_rfc3339(s).unwrap_or(0)
}

/// Fills `db` with the checklist's seed data. Dates are fixed so responses are repeatable.
pub(crate) fn seed(db: &mut Db, fx: &JoindinFixtures) {
    db.add_client(JoindinClient {
        consumer_key: fx.web2_client_id.clone(),
        consumer_secret: fx.web2_client_secret.clone(),
        application: "Joind.in Web2".into(),
        callback_url: None,
        enable_password_grant: true,
        can_be_revoked: false,
        owner_username: None,
    });
    db.add_client(
        JoindinClient {
            owner_username: Some(fx.username.clone()),
            ..JoindinClient::trusted(
                fx.client_id.clone(),
                fx.client_secret.clone(),
                "grantkit tests",
            )
        }
        .with_callback(fx.redirect_uri.clone()),
    );
    db.add_client(JoindinClient {
        application: "grantkit legacy app".into(),
        owner_username: Some(fx.username.clone()),
        ..JoindinClient::untrusted(
            fx.legacy_client_id.clone(),
            fx.legacy_client_secret.clone(),
            fx.legacy_redirect_uri.clone(),
        )
    });

    let mut grant = JoindinUser::new(fx.username.clone(), fx.password.clone(), "Grant Kit");
    grant.biography = Some("Writes OAuth libraries.".into());
    grant.twitter_username = Some("grantkit".into());
    db.add_user(grant);
    db.add_user(
        JoindinUser::new(
            fx.unverified_username.clone(),
            fx.unverified_password.clone(),
            "Una Verified",
        )
        .unverified(),
    );
    db.add_user(JoindinUser::new(
        fx.speaker_username.clone(),
        fx.speaker_password.clone(),
        "1984",
    ));
    let mut admin = JoindinUser::new(
        fx.admin_username.clone(),
        fx.admin_password.clone(),
        "Ada Admin",
    );
    admin.admin = true;
    admin.trusted = true;
    db.add_user(admin);

    let mut bnl = JoindinEvent::new(
        "PHP Benelux 2014",
        "2014-01-24T09:00:00+01:00",
        "2014-01-25T18:00:00+01:00",
        "Europe/Amsterdam",
    );
    bnl.stub = Some("phpbnl14".into());
    bnl.description = "The Benelux PHP conference.".into();
    bnl.href = Some("http://conference.phpbenelux.eu/2014/".into());
    bnl.location = "Hotel Ter Elst, Edegem".into();
    bnl.latitude = 51.1654;
    bnl.longitude = 4.4326;
    bnl.contact_name = Some("PHPBenelux".into());
    bnl.hashtag = Some("#phpbnl14".into());
    bnl.tags = vec!["php".into(), "benelux".into()];
    bnl.icon = Some("phpbnl14.png".into());
    bnl.cfp_start = Some(ts("2013-09-01T00:00:00Z"));
    bnl.cfp_end = Some(ts("2013-10-15T23:59:59Z"));
    bnl.cfp_url = Some("http://cfp.phpbenelux.eu/".into());
    bnl.hosts = vec![fx.admin_username.clone()];
    bnl.attendees = vec![fx.username.clone(), fx.speaker_username.clone()];
    let bnl_id = db.add_event(bnl);

    let mut conf = JoindinEvent::new(
        "grantkit conf 2099",
        "2099-05-10T09:00:00-04:00",
        "2099-05-11T17:00:00-04:00",
        "America/New_York",
    );
    conf.stub = Some("gkconf99".into());
    conf.description = "Tokens, grants and the people who refresh them.".into();
    conf.location = "New York".into();
    conf.tags = vec!["oauth".into(), "2024".into()];
    conf.cfp_start = Some(ts("2020-01-01T00:00:00Z"));
    conf.cfp_end = Some(ts("2099-03-01T00:00:00Z"));
    conf.cfp_url = Some("https://cfp.example.com/gkconf99".into());
    conf.hosts = vec![fx.username.clone()];
    let conf_id = db.add_event(conf);

    let mut orwell = JoindinEvent::new(
        "1984",
        "2023-06-15T09:00:00+01:00",
        "2023-06-16T17:00:00+01:00",
        "Europe/London",
    );
    orwell.stub = Some("0101".into());
    orwell.description = "A conference named after a year.".into();
    orwell.location = "London".into();
    db.add_event(orwell);

    let mut pending = JoindinEvent::new(
        "Pending Conf",
        "2099-09-01T09:00:00Z",
        "2099-09-01T17:00:00Z",
        "Europe/London",
    );
    pending.pending = true;
    pending.hosts = vec![fx.username.clone()];
    db.add_event(pending);

    let mut oauth = JoindinTalk::new(
        bnl_id,
        "Securing APIs with OAuth",
        "2014-01-24T10:00:00+01:00",
    );
    oauth.description = "Tokens, scopes and the password grant.".into();
    oauth.speakers = vec![("1984".into(), Some(fx.speaker_username.clone()))];
    oauth.tracks = vec!["Track 1".into()];
    oauth.slides_link = Some("https://slides.example.com/oauth".into());
    oauth.starred_by = vec![fx.username.clone()];
    let oauth_id = db.add_talk(oauth);

    let mut year = JoindinTalk::new(bnl_id, "1984", "2014-01-24T11:00:00+01:00");
    year.description = "Big Brother is logging your tokens.".into();
    year.speakers = vec![("Jane Doe".into(), None)];
    let year_id = db.add_talk(year);

    let mut keynote = JoindinTalk::new(bnl_id, "Keynote: The Future", "2014-01-24T09:15:00+01:00");
    keynote.talk_type = "Keynote".into();
    keynote.duration = 60;
    keynote.speakers = vec![("Ada Admin".into(), Some(fx.admin_username.clone()))];
    db.add_talk(keynote);

    let mut down = JoindinTalk::new(
        conf_id,
        "Tokens all the way down",
        "2099-05-10T10:00:00-04:00",
    );
    down.speakers = vec![("Grant Kit".into(), Some(fx.username.clone()))];
    db.add_talk(down);

    let comment = |talk_id, user_id, text: &str, rating, created: &str| CommentRow {
        id: 0,
        talk_id,
        user_id,
        comment: text.into(),
        rating,
        private: false,
        source: "joind.in".into(),
        created: ts(created),
        reported: false,
    };
    db.add_comment(comment(
        oauth_id,
        1,
        "Great talk, thanks!",
        5,
        "2014-01-24T12:00:00+01:00",
    ));
    db.add_comment(comment(oauth_id, 4, "42", 4, "2014-01-24T12:30:00+01:00"));
    db.add_comment(comment(
        year_id,
        1,
        "Doubleplusgood",
        4,
        "2014-01-24T13:00:00+01:00",
    ));
    let event_comment = |user_id, text: &str, rating, created: &str| EventCommentRow {
        id: 0,
        event_id: bnl_id,
        user_id,
        comment: text.into(),
        rating,
        source: "joind.in".into(),
        created: ts(created),
        reported: false,
    };
    db.add_event_comment(event_comment(
        1,
        "Well organised, see you next year.",
        5,
        "2014-01-25T18:00:00+01:00",
    ));
    db.add_event_comment(event_comment(
        4,
        "Good coffee.",
        4,
        "2014-01-25T19:00:00+01:00",
    ));
}
