//! `JoinMeClient`: join.me's REST API, typed, over an [`AuthorizedClient`].

use crate::model::{
    ConferenceSettings, Meeting, MeetingId, MeetingList, MeetingUpdate, NewMeeting, Presenter,
    StartMeeting, StartedMeeting, User,
};
use chrono::{DateTime, SecondsFormat, Utc};
use grantkit_core::provider::http::read_capped;
use grantkit_core::store::codec::describe_json_error;
use grantkit_core::{AuthorizedClient, Error, Result};
use http::Method;
use http::header::{ACCEPT, CONTENT_TYPE};
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::time::Duration;
use url::Url;

const JSON: &str = "application/json";
/// The default timeout of one API call.
pub const DEFAULT_API_TIMEOUT: Duration = Duration::from_secs(30);
/// The largest answer the client reads: join.me's documents are a few KiB, a meeting list
/// a few hundred.
const MAX_ANSWER: usize = 16 * 1024 * 1024;

/// join.me's REST API for one grant: the user, ad-hoc and scheduled meetings.
///
/// Requests go through an [`AuthorizedClient`], which attaches the token, refreshes it
/// (code grant) or reports [`Error::ReauthorizationRequired`] (implicit grant; or
/// [`Error::RenewRequired`] with renewal opted in) when join.me says it is stale, and
/// retries reads (and any request that never reached join.me) after Mashery's per-second
/// throttle, a 5xx or a reset connection, as its [`grantkit_core::RetryPolicy`] says;
/// a meeting is never scheduled or started twice by a retry. Answers are read
/// leniently: any 2xx is a success (join.me documents 201 where it sends 200), `DELETE`
/// may answer 204 or `200 {}`, and a refusal becomes [`Error::Api`] with join.me's
/// `Message`.
///
/// ```no_run
/// # async fn example(client: grantkit_core::AuthorizedClient) -> grantkit_core::Result<()> {
/// use grantkit_joinme::{JoinMeClient, StartMeeting};
///
/// let joinme = JoinMeClient::new(client, "https://api.join.me/v1")?;
/// let user = joinme.user().await?;
/// let started = joinme.start_meeting(&StartMeeting::new(false)).await?;
/// println!("{} starts a meeting; viewers join at {:?}", user.email, started.viewer_link);
/// # Ok(()) }
/// ```
#[derive(Clone, Debug)]
pub struct JoinMeClient {
    client: AuthorizedClient,
    api_base: Url,
    timeout: Duration,
}

impl JoinMeClient {
    /// A client for the API at `api_base` (e.g. `https://api.join.me/v1`, or
    /// `provider.endpoints().api_base`).
    pub fn new(client: AuthorizedClient, api_base: impl AsRef<str>) -> Result<Self> {
        let raw = api_base.as_ref().trim_end_matches('/');
        let api_base = Url::parse(raw).map_err(|err| {
            Error::configuration(format!("the join.me API base is not a URL: {err}"))
        })?;
        if api_base.cannot_be_a_base() {
            return Err(Error::configuration(
                "the join.me API base cannot take a path",
            ));
        }
        Ok(Self::from_url(client, api_base))
    }

    /// A client on an API base already checked (the provider's).
    pub(crate) fn from_url(client: AuthorizedClient, api_base: Url) -> Self {
        Self {
            client,
            api_base,
            timeout: DEFAULT_API_TIMEOUT,
        }
    }

    /// Sets the timeout of each call (default 30 s).
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The underlying authorized client.
    pub fn authorized_client(&self) -> &AuthorizedClient {
        &self.client
    }

    /// `GET /v1/user` (`user_info`).
    pub async fn user(&self) -> Result<User> {
        let user: User = self.call(Method::GET, &["user"], None, NoBody).await?;
        if user.email.is_empty() {
            return Err(Error::bad_response("join.me's user has no `email`"));
        }
        Ok(user)
    }

    /// `GET /v1/user/conferenceSettings` (`user_info`): the audio conference. Free users
    /// have none (join.me answers 404, an [`Error::Api`]).
    pub async fn conference_settings(&self) -> Result<ConferenceSettings> {
        self.call(Method::GET, &["user", "conferenceSettings"], None, NoBody)
            .await
    }

    /// `POST /v1/meetings/start` (`start_meeting`): starts an ad-hoc meeting.
    pub async fn start_meeting(&self, request: &StartMeeting) -> Result<StartedMeeting> {
        if request.start_with_personal_url.is_none() {
            return Err(Error::configuration(
                "an ad-hoc meeting needs start_with_personal_url (join.me requires it)",
            ));
        }
        self.call(Method::POST, &["meetings", "start"], None, Body(request))
            .await
    }

    /// `POST /v1/meetings` (`scheduler`): schedules a meeting and returns it.
    pub async fn schedule_meeting(&self, meeting: &NewMeeting) -> Result<Meeting> {
        if meeting.meeting_end < meeting.meeting_start {
            return Err(Error::configuration("the meeting ends before it starts"));
        }
        self.call(Method::POST, &["meetings"], None, Body(meeting))
            .await
    }

    /// `GET /v1/meetings` (`scheduler`): upcoming meetings, those starting by `end_date`
    /// when given.
    pub async fn meetings(&self, end_date: Option<DateTime<Utc>>) -> Result<Vec<Meeting>> {
        let end = end_date.map(|t| t.to_rfc3339_opts(SecondsFormat::Secs, true));
        let query = end.as_deref().map(|e| ("endDate", e));
        let list: MeetingList = self.call(Method::GET, &["meetings"], query, NoBody).await?;
        Ok(list.meetings)
    }

    /// `GET /v1/meetings/{id}` (`scheduler`).
    pub async fn meeting(&self, id: MeetingId) -> Result<Meeting> {
        let id = id.to_string();
        self.call(Method::GET, &["meetings", &id], None, NoBody)
            .await
    }

    /// `PATCH /v1/meetings/{id}` (`scheduler`): changes the fields set in `update` and
    /// returns the meeting.
    pub async fn update_meeting(&self, id: MeetingId, update: &MeetingUpdate) -> Result<Meeting> {
        if let (Some(start), Some(end)) = (update.meeting_start, update.meeting_end)
            && end < start
        {
            return Err(Error::configuration("the meeting ends before it starts"));
        }
        let id = id.to_string();
        self.call(Method::PATCH, &["meetings", &id], None, Body(update))
            .await
    }

    /// `DELETE /v1/meetings/{id}` (`scheduler`).
    pub async fn delete_meeting(&self, id: MeetingId) -> Result<()> {
        let id = id.to_string();
        // 204, or 200 with `{}` (or nothing): the body carries nothing to read.
        self.send(Method::DELETE, &["meetings", &id], None, None)
            .await
            .map(|_| ())
    }

    /// `POST /v1/meetings/{id}/start` (`start_meeting`): starts a scheduled meeting.
    /// `request` may carry webhooks; its personal-URL choice, when `None`, is the
    /// meeting's own.
    pub async fn start_scheduled_meeting(
        &self,
        id: MeetingId,
        request: &StartMeeting,
    ) -> Result<StartedMeeting> {
        let id = id.to_string();
        self.call(
            Method::POST,
            &["meetings", &id, "start"],
            None,
            Body(request),
        )
        .await
    }

    /// `GET /v1/presenters` (`provisioning`, Business keys): the account's presenters.
    pub async fn presenters(&self) -> Result<Vec<Presenter>> {
        self.call(Method::GET, &["presenters"], None, NoBody).await
    }

    /// `GET /v1/presenters/{id}` (`provisioning`).
    pub async fn presenter(&self, id: u64) -> Result<Presenter> {
        let id = id.to_string();
        self.call(Method::GET, &["presenters", &id], None, NoBody)
            .await
    }

    /// `POST /v1/presenters` (`provisioning`): invites `email` to present; the seat is the
    /// presenter's once they accept. Sent once (a POST is never retried).
    pub async fn invite_presenter(&self, email: &str) -> Result<Presenter> {
        let email = email.trim();
        if !email.contains('@') {
            return Err(Error::configuration(
                "a presenter is invited by e-mail address",
            ));
        }
        let body = serde_json::json!({ "email": email });
        self.call(Method::POST, &["presenters"], None, Body(&body))
            .await
    }

    /// Sends a request and reads a JSON answer.
    async fn call<T: DeserializeOwned, B: RequestBody>(
        &self,
        method: Method,
        path: &[&str],
        query: Option<(&str, &str)>,
        body: B,
    ) -> Result<T> {
        let body = body.encode()?;
        let (_, answer) = self.send(method, path, query, body).await?;
        let text: &[u8] = if answer.iter().all(u8::is_ascii_whitespace) {
            b"{}"
        } else {
            &answer
        };
        serde_json::from_slice(text).map_err(|err| {
            Error::bad_response(format!("join.me's answer is {}", describe_json_error(&err)))
        })
    }

    /// Sends a request; a success (any 2xx) gives the status and body, anything else the
    /// matching error.
    async fn send(
        &self,
        method: Method,
        path: &[&str],
        query: Option<(&str, &str)>,
        body: Option<Vec<u8>>,
    ) -> Result<(http::StatusCode, Vec<u8>)> {
        let mut url = self.api_base.clone();
        url.path_segments_mut()
            .map_err(|()| Error::configuration("the join.me API base cannot take a path"))?
            .pop_if_empty()
            .extend(path);
        if let Some((name, value)) = query {
            url.query_pairs_mut().append_pair(name, value);
        }
        let mut request = self
            .client
            .http()
            .request(method, url)
            .header(ACCEPT, JSON)
            .timeout(self.timeout);
        if let Some(body) = body {
            request = request.header(CONTENT_TYPE, JSON).body(body);
        }
        // Every answer but a success is already the provider's typed error.
        let response = self.client.send(request).await?;
        let status = response.status();
        let body = read_capped(response, MAX_ANSWER).await?;
        Ok((status, body))
    }
}

/// What a request carries: nothing, or a JSON body.
trait RequestBody {
    fn encode(self) -> Result<Option<Vec<u8>>>;
}

struct NoBody;

impl RequestBody for NoBody {
    fn encode(self) -> Result<Option<Vec<u8>>> {
        Ok(None)
    }
}

struct Body<'a, T: Serialize>(&'a T);

impl<T: Serialize> RequestBody for Body<'_, T> {
    fn encode(self) -> Result<Option<Vec<u8>>> {
        serde_json::to_vec(self.0)
            .map(Some)
            .map_err(|_| Error::configuration("the request could not be written as JSON"))
    }
}
