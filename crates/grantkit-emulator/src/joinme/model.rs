//! join.me's data: applications, users, authorization codes, tokens, meetings, and the
//! seeded fixtures.

use std::collections::HashMap;

use crate::time::parse_rfc3339;

/// A join.me developer plan.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum JoinMePlan {
    /// Basic key: no `provisioning` scope.
    Basic,
    /// Business key: may request `provisioning`.
    Business,
}

/// A registered application (API key).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JoinMeApp {
    /// API key (`client_id`), 24 characters `[a-z0-9]` on the real service.
    pub client_id: String,
    /// `client_secret`, 10 characters `[A-Za-z0-9]` on the real service.
    pub client_secret: String,
    /// The single Callback URL; `redirect_uri` must equal it byte for byte.
    pub callback_url: String,
    /// Plan of the key.
    pub plan: JoinMePlan,
}

impl JoinMeApp {
    /// A basic-plan application.
    pub fn new(
        client_id: impl Into<String>,
        client_secret: impl Into<String>,
        callback_url: impl Into<String>,
    ) -> Self {
        Self {
            client_id: client_id.into(),
            client_secret: client_secret.into(),
            callback_url: callback_url.into(),
            plan: JoinMePlan::Basic,
        }
    }

    /// Makes it a business-plan application.
    pub fn business(mut self) -> Self {
        self.plan = JoinMePlan::Business;
        self
    }
}

/// Audio-conference settings of a paying user.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JoinMeConference {
    /// 9-digit conference id.
    pub conference_id: String,
    /// 4-digit organizer code.
    pub organizer_code: String,
}

/// A join.me user.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JoinMeUser {
    /// Login id and the only identifier.
    pub email: String,
    /// Password for the consent page (clear text: a test double).
    pub password: String,
    /// Display name.
    pub full_name: String,
    /// e.g. `en-US`.
    pub language: String,
    /// Meetings hosted so far.
    pub meetings_hosted: u64,
    /// Personal URL name (not shown for `Free` users).
    pub personal_url: Option<String>,
    /// Registration time, seconds since the epoch (sent without zone).
    pub registration_date: i64,
    /// `Free`, `Pro`, `Business`, …
    pub subscription_type: String,
    /// Audio conference (absent for free users).
    pub conference: Option<JoinMeConference>,
}

impl JoinMeUser {
    /// A `Pro` user with a personal URL and audio conference.
    pub fn pro(
        email: impl Into<String>,
        password: impl Into<String>,
        full_name: impl Into<String>,
    ) -> Self {
        let email = email.into();
        let personal = email.split('@').next().unwrap_or("me").to_owned();
        Self {
            email,
            password: password.into(),
            full_name: full_name.into(),
            language: "en-US".into(),
            meetings_hosted: 0,
            personal_url: Some(personal),
            registration_date: parse_rfc3339("2014-03-22T20:45:00Z").unwrap_or(0),
            subscription_type: "Pro".into(),
            conference: Some(JoinMeConference {
                conference_id: "123456789".into(),
                organizer_code: "1234".into(),
            }),
        }
    }

    /// A `Free` user: no personal URL, no conference settings.
    pub fn free(
        email: impl Into<String>,
        password: impl Into<String>,
        full_name: impl Into<String>,
    ) -> Self {
        Self {
            personal_url: None,
            subscription_type: "Free".into(),
            conference: None,
            ..Self::pro(email, password, full_name)
        }
    }
}

/// How a token set was obtained.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum JoinMeGrant {
    /// Authorization-code grant: has a refresh token.
    Code,
    /// Implicit grant: no refresh token.
    Implicit,
}

/// Where an access token stands, as the API would judge it now.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TokenStatus {
    /// Accepted by the API.
    Active,
    /// Older than `access_ttl`, or expired through Expire Access: 401 `stale_token`.
    Stale,
    /// Revoked (test hook or refresh with `revoke_old_on_refresh`): 403 from Mashery.
    Revoked,
}

/// A token set issued by a test hook.
#[derive(Clone, PartialEq, Eq)]
pub struct IssuedTokens {
    /// The access token.
    pub access_token: String,
    /// The refresh token (code grant only).
    pub refresh_token: Option<String>,
}

impl std::fmt::Debug for IssuedTokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IssuedTokens")
            .field("access_token", &"[redacted]")
            .field(
                "refresh_token",
                &self.refresh_token.as_ref().map(|_| "[redacted]"),
            )
            .finish()
    }
}

#[derive(Clone, Debug)]
pub(crate) struct CodeRow {
    pub(crate) client_id: String,
    pub(crate) redirect_uri: String,
    pub(crate) email: String,
    pub(crate) scopes: Vec<String>,
    pub(crate) expires_at: i64,
    pub(crate) used: bool,
}

#[derive(Clone, Debug)]
pub(crate) struct AccessRow {
    pub(crate) client_id: String,
    pub(crate) email: String,
    pub(crate) scopes: Vec<String>,
    pub(crate) grant: JoinMeGrant,
    /// The refresh token this access token was issued with (code grant).
    pub(crate) refresh_token: Option<String>,
    pub(crate) stale_after: i64,
    pub(crate) expired_at: Option<i64>,
    pub(crate) revoked: bool,
}

#[derive(Clone, Debug)]
pub(crate) struct RefreshRow {
    pub(crate) client_id: String,
    pub(crate) email: String,
    pub(crate) scopes: Vec<String>,
    pub(crate) issued_at: i64,
    pub(crate) revoked: bool,
}

#[derive(Clone, Debug)]
pub(crate) struct MeetingRow {
    pub(crate) id: u64,
    pub(crate) owner: String,
    pub(crate) name: String,
    pub(crate) start: i64,
    pub(crate) end: i64,
    pub(crate) start_with_personal_url: bool,
    pub(crate) participants: Vec<String>,
    pub(crate) conference_id: String,
    pub(crate) viewer_link: Option<String>,
}

/// Requests counted for one API key's throttling.
#[derive(Clone, Debug, Default)]
pub(crate) struct Throttle {
    pub(crate) second: i64,
    pub(crate) in_second: u32,
    pub(crate) period_start: i64,
    pub(crate) in_period: u32,
}

#[derive(Debug, Default)]
pub(crate) struct Db {
    pub(crate) apps: Vec<JoinMeApp>,
    pub(crate) users: Vec<JoinMeUser>,
    pub(crate) codes: HashMap<String, CodeRow>,
    pub(crate) access: HashMap<String, AccessRow>,
    pub(crate) refresh: HashMap<String, RefreshRow>,
    pub(crate) meetings: Vec<MeetingRow>,
    pub(crate) presenter_links: HashMap<String, i64>,
    pub(crate) throttles: HashMap<String, Throttle>,
    pub(crate) next_meeting_id: u64,
    pub(crate) presenters: Vec<PresenterRow>,
    pub(crate) next_presenter_id: u64,
    /// Webhooks registered by start-meeting calls: (owner, event, callback URL).
    pub(crate) webhooks: Vec<(String, String, String)>,
}

/// A presenter seat of a Business account (`/v1/presenters`).
#[derive(Clone, Debug)]
pub(crate) struct PresenterRow {
    pub(crate) id: u64,
    pub(crate) owner: String,
    pub(crate) email: String,
    pub(crate) invitation_accepted: bool,
    pub(crate) seat_assigned: bool,
}

impl Db {
    pub(crate) fn new() -> Self {
        Self {
            next_meeting_id: 1_000_001,
            next_presenter_id: 501,
            ..Self::default()
        }
    }

    pub(crate) fn app(&self, client_id: &str) -> Option<&JoinMeApp> {
        self.apps.iter().find(|a| a.client_id == client_id)
    }

    pub(crate) fn user(&self, email: &str) -> Option<&JoinMeUser> {
        self.users
            .iter()
            .find(|u| u.email.eq_ignore_ascii_case(email))
    }

    pub(crate) fn add_app(&mut self, app: JoinMeApp) {
        self.apps.retain(|a| a.client_id != app.client_id);
        self.apps.push(app);
    }

    pub(crate) fn add_user(&mut self, user: JoinMeUser) {
        self.users
            .retain(|u| !u.email.eq_ignore_ascii_case(&user.email));
        self.users.push(user);
    }
}

/// The seeded fixtures' credentials, for tests.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JoinMeFixtures {
    /// Basic-plan API key.
    pub client_id: String,
    /// Its secret.
    pub client_secret: String,
    /// Its Callback URL.
    pub redirect_uri: String,
    /// Business-plan API key (may request `provisioning`).
    pub business_client_id: String,
    /// Its secret.
    pub business_client_secret: String,
    /// Its Callback URL.
    pub business_redirect_uri: String,
    /// A `Pro` user with personal URL and audio conference.
    pub email: String,
    /// Its password.
    pub password: String,
    /// A `Free` user.
    pub free_email: String,
    /// Its password.
    pub free_password: String,
}

impl Default for JoinMeFixtures {
    fn default() -> Self {
        Self {
            client_id: "gkjoinmeclient0123456789".into(),
            client_secret: "S3cr3tKey9".into(),
            redirect_uri: "http://localhost:8765/joinme/callback".into(),
            business_client_id: "gkjoinmebusiness01234567".into(),
            business_client_secret: "Bu5inessK3".into(),
            business_redirect_uri: "http://localhost:8765/joinme/business/callback".into(),
            email: "grantkit@example.com".into(),
            password: "grantkit-password".into(),
            free_email: "free@example.com".into(),
            free_password: "free-password".into(),
        }
    }
}

pub(crate) fn seed(db: &mut Db, fx: &JoinMeFixtures) {
    db.add_app(JoinMeApp::new(
        fx.client_id.clone(),
        fx.client_secret.clone(),
        fx.redirect_uri.clone(),
    ));
    db.add_app(
        JoinMeApp::new(
            fx.business_client_id.clone(),
            fx.business_client_secret.clone(),
            fx.business_redirect_uri.clone(),
        )
        .business(),
    );
    let mut pro = JoinMeUser::pro(fx.email.clone(), fx.password.clone(), "Grant Kit");
    pro.personal_url = Some("grantkit".into());
    pro.meetings_hosted = 42;
    db.presenters.push(PresenterRow {
        id: 500,
        owner: pro.email.clone(),
        email: "presenter@example.com".into(),
        invitation_accepted: true,
        seat_assigned: true,
    });
    db.add_user(pro);
    db.add_user(JoinMeUser::free(
        fx.free_email.clone(),
        fx.free_password.clone(),
        "Free User",
    ));
}
