//! `JoindinClient`: the Joind.in API v2.1 as typed calls over an `AuthorizedClient`.

use crate::model::{
    Event, EventComment, EventTrack, Host, Language, Meta, Page, Root, Talk, TalkComment, TalkType,
    User, WhoAmI,
};
use futures::StreamExt as _;
use futures::stream::BoxStream;
use grantkit_core::provider::http::read_capped;
use grantkit_core::provider::{ApiResponse, ResponseClass, retry_after as retry_after_header};
use grantkit_core::store::codec::describe_json_error;
use grantkit_core::{AuthorizedClient, Error, Result, RetryPolicy};
use http::{HeaderValue, Method, header};
use serde::de::DeserializeOwned;
use serde_json::Value;
use url::Url;

const JSON: &str = "application/json";
/// The most of an answer the client reads: Joind.in's largest lists (`resultsperpage=0`)
/// are a few MiB.
const MAX_ANSWER: usize = 16 * 1024 * 1024;
/// Query parameters never sent: `callback` turns answers into JSONP, `format` into HTML.
const FORBIDDEN_PARAMS: [&str; 2] = ["callback", "format"];

/// The `filter` of an event listing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum EventFilter {
    /// Popular events.
    Hot,
    /// Events not over yet, soonest first.
    Upcoming,
    /// Events that are over, newest first.
    Past,
    /// Events whose call for papers is open.
    Cfp,
    /// All events; without a `start` the server begins at the first upcoming one.
    All,
    /// Events awaiting approval (site administrators only).
    Pending,
}

impl EventFilter {
    fn as_str(self) -> &'static str {
        match self {
            Self::Hot => "hot",
            Self::Upcoming => "upcoming",
            Self::Past => "past",
            Self::Cfp => "cfp",
            Self::All => "all",
            Self::Pending => "pending",
        }
    }
}

/// Which slice of a list to ask for.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Paging {
    /// The offset (`start`); the server's default is 0.
    pub start: Option<u64>,
    /// Items per page (`resultsperpage`); the server's default is 20, and `0` means all
    /// of them in one answer.
    pub per_page: Option<u64>,
}

impl Paging {
    /// `per_page` items per page from the start.
    pub fn per_page(per_page: u64) -> Self {
        Self {
            start: None,
            per_page: Some(per_page),
        }
    }

    /// Everything in one answer (`resultsperpage=0`).
    pub fn all() -> Self {
        Self::per_page(0)
    }

    /// Starts at `start`.
    pub fn starting_at(mut self, start: u64) -> Self {
        self.start = Some(start);
        self
    }

    fn apply(&self, url: &mut Url) {
        let mut pairs = url.query_pairs_mut();
        if let Some(start) = self.start {
            pairs.append_pair("start", &start.to_string());
        }
        if let Some(per_page) = self.per_page {
            pairs.append_pair("resultsperpage", &per_page.to_string());
        }
    }
}

/// Filters of an event listing.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct EventQuery {
    /// `filter`.
    pub filter: Option<EventFilter>,
    /// Events whose name contains this.
    pub title: Option<String>,
    /// The event with exactly this short name.
    pub stub: Option<String>,
    /// Events with all of these tags.
    pub tags: Vec<String>,
    /// Events starting on or after this date (`YYYY-MM-DD`).
    pub start_date: Option<String>,
    /// Events starting on or before this date (`YYYY-MM-DD`).
    pub end_date: Option<String>,
    /// Which page.
    pub paging: Paging,
}

impl EventQuery {
    /// Every event, the server's default order (newest first).
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets the filter.
    pub fn filter(mut self, filter: EventFilter) -> Self {
        self.filter = Some(filter);
        self
    }

    /// Events whose name contains `title`.
    pub fn title(mut self, title: impl Into<String>) -> Self {
        self.title = Some(title.into());
        self
    }

    /// The event with this short name.
    pub fn stub(mut self, stub: impl Into<String>) -> Self {
        self.stub = Some(stub.into());
        self
    }

    /// Adds a tag every event must have.
    pub fn tag(mut self, tag: impl Into<String>) -> Self {
        self.tags.push(tag.into());
        self
    }

    /// Events starting on or after `date` (`YYYY-MM-DD`).
    pub fn start_date(mut self, date: impl Into<String>) -> Self {
        self.start_date = Some(date.into());
        self
    }

    /// Events starting on or before `date` (`YYYY-MM-DD`).
    pub fn end_date(mut self, date: impl Into<String>) -> Self {
        self.end_date = Some(date.into());
        self
    }

    /// Sets the paging.
    pub fn paging(mut self, paging: Paging) -> Self {
        self.paging = paging;
        self
    }

    fn apply(&self, url: &mut Url) {
        {
            let mut pairs = url.query_pairs_mut();
            if let Some(filter) = self.filter {
                pairs.append_pair("filter", filter.as_str());
            }
            if let Some(title) = &self.title {
                pairs.append_pair("title", title);
            }
            if let Some(stub) = &self.stub {
                pairs.append_pair("stub", stub);
            }
            for tag in &self.tags {
                pairs.append_pair("tags[]", tag);
            }
            if let Some(date) = &self.start_date {
                pairs.append_pair("startdate", date);
            }
            if let Some(date) = &self.end_date {
                pairs.append_pair("enddate", date);
            }
        }
        self.paging.apply(url);
    }
}

/// A comment to post on a talk or an event.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewComment {
    /// The text.
    pub comment: String,
    /// The rating, 1 to 5 (Joind.in refuses 0 and stores 0 itself when the author has
    /// rated the talk before or is its speaker).
    pub rating: u8,
    /// Visible only to the author, the speakers and administrators.
    pub private: bool,
}

impl NewComment {
    /// A public comment with a rating from 1 to 5.
    pub fn new(comment: impl Into<String>, rating: u8) -> Self {
        Self {
            comment: comment.into(),
            rating,
            private: false,
        }
    }

    /// Makes the comment private (talk comments only).
    pub fn private(mut self, private: bool) -> Self {
        self.private = private;
        self
    }

    /// Refuses what Joind.in would refuse, before anything is sent.
    fn check(&self) -> Result<()> {
        if self.comment.trim().is_empty() {
            return Err(Error::configuration("a comment needs some text"));
        }
        if !(1..=5).contains(&self.rating) {
            return Err(Error::configuration(
                "a comment needs a rating from 1 to 5 (Joind.in refuses 0)",
            ));
        }
        Ok(())
    }
}

/// Where a `201 Created` says the new `what` is.
fn posted(response: &reqwest::Response, what: &str) -> Result<PostedComment> {
    let uri = response
        .headers()
        .get(header::LOCATION)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
        .ok_or_else(|| {
            Error::bad_response(format!("Joind.in accepted the {what} but sent no Location"))
        })?;
    Ok(PostedComment {
        id: crate::lenient::id_from_uri(&uri),
        uri,
    })
}

/// A comment Joind.in stored: where it is.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct PostedComment {
    /// Its URI, from the answer's `Location`.
    pub uri: String,
    /// Its id, the URI's last segment.
    pub id: Option<u64>,
}

/// Whether `error` is Joind.in's refusal of a comment the same user already posted on
/// the same talk (`400 ["Duplicate comment"]`). Posting it again will not help.
pub fn is_duplicate_comment(error: &Error) -> bool {
    matches!(error, Error::Api { status: 400, message, .. } if message == "Duplicate comment")
}

/// How a [`JoindinClient`] reaches Joind.in: [`Anonymous`] or [`SignedIn`].
pub trait Access: sealed::Transport + Clone + std::fmt::Debug + Send + Sync + 'static {}

mod sealed {
    use futures::future::BoxFuture;
    use grantkit_core::Result;
    use url::Url;

    /// `GET` of a link: the body of a successful answer, every other answer a typed error.
    pub trait Transport {
        fn get<'a>(&'a self, url: &'a Url) -> BoxFuture<'a, Result<Vec<u8>>>;
    }
}

/// A [`JoindinClient`] that sends no token: every public read, no writes.
///
/// Joind.in needs a token only to add or change data and to read private data (a private
/// comment, pending events, whether *you* attend or starred something).
#[derive(Clone, Debug)]
pub struct Anonymous {
    http: reqwest::Client,
    retry: RetryPolicy,
}

/// A [`JoindinClient`] for one grant: every read, and the writes.
#[derive(Clone, Debug)]
pub struct SignedIn {
    client: AuthorizedClient,
}

impl Access for Anonymous {}
impl Access for SignedIn {}

impl sealed::Transport for SignedIn {
    fn get<'a>(&'a self, url: &'a Url) -> futures::future::BoxFuture<'a, Result<Vec<u8>>> {
        Box::pin(async move {
            let request = self
                .client
                .http()
                .get(url.as_str())
                .header(header::ACCEPT, HeaderValue::from_static(JSON));
            let response = self.client.send(request).await?;
            Ok(response.bytes().await?.to_vec())
        })
    }
}

impl sealed::Transport for Anonymous {
    fn get<'a>(&'a self, url: &'a Url) -> futures::future::BoxFuture<'a, Result<Vec<u8>>> {
        Box::pin(anonymous_get(&self.http, &self.retry, url))
    }
}

/// An anonymous read, retried as `retry` says: no token, so nothing to refresh; Joind.in's
/// refusals become `Error::Api` with its message.
async fn anonymous_get(http: &reqwest::Client, retry: &RetryPolicy, url: &Url) -> Result<Vec<u8>> {
    let started = tokio::time::Instant::now();
    let mut failed = 0;
    loop {
        let sent = http
            .get(url.as_str())
            .header(header::ACCEPT, HeaderValue::from_static(JSON))
            .send()
            .await;
        let (err, retry_after) = match sent {
            Err(err) => (Error::from(err), None),
            Ok(response) if response.status().is_success() => {
                return Ok(read_capped(response, MAX_ANSWER).await?.to_vec());
            }
            Ok(response) => {
                let status = response.status();
                let headers = response.headers().clone();
                let body = read_capped(response, 64 * 1024).await.unwrap_or_default();
                let class = crate::wire::classify(&ApiResponse {
                    status,
                    headers: &headers,
                    body: &body,
                });
                let err = match class {
                    ResponseClass::RateLimited { retry_after } => {
                        Error::RateLimited { retry_after }
                    }
                    ResponseClass::Transient => {
                        Error::unavailable(status.as_u16(), retry_after_header(&headers))
                    }
                    _ => crate::wire::api_error(status, &body),
                };
                let retry_after = err.retry_after();
                (err, retry_after)
            }
        };
        failed += 1;
        // A read may always go again: 5xx, rate limits, resets and timeouts.
        let wait = retry.wait(failed, started.elapsed(), retry_after);
        match wait.filter(|_| err.is_retryable()) {
            Some(wait) => {
                tracing::debug!(
                    method = %Method::GET,
                    failure = %err,
                    attempt = failed + 1,
                    wait_ms = wait.as_millis() as u64,
                    "retrying"
                );
                tokio::time::sleep(wait).await;
            }
            None => return Err(err),
        }
    }
}

/// The Joind.in API v2.1, typed: anonymously for reading
/// ([`JoindinClient::anonymous`]), or for one grant through an [`AuthorizedClient`]
/// ([`JoindinProvider::api_client`](crate::JoindinProvider::api_client)), which attaches
/// the token and turns an anonymous answer (a token Joind.in no longer knows) into
/// [`Error::ReauthorizationRequired`]. The reads are the same on both; the writes exist
/// only on `JoindinClient<SignedIn>`.
///
/// Answers are read leniently (text or numbers, `0`/`1` or booleans, `[]` for empty
/// maps); requests send `Accept: application/json` and never `callback` or `format`; they
/// go over HTTPS only (plain HTTP to a loopback address, for tests). Links the server
/// hands out (`next_page`, `*_uri`) are followed only on the API's own host. Reads are
/// retried after a 5xx, a rate limit, a reset or a timeout ([`RetryPolicy`]); a write is
/// sent once.
///
/// ```no_run
/// # async fn example() -> grantkit_core::Result<()> {
/// use grantkit_joindin::{EventFilter, EventQuery, JoindinClient, DEFAULT_API_BASE};
///
/// let joindin = JoindinClient::anonymous(DEFAULT_API_BASE)?;
/// let upcoming = joindin.events(&EventQuery::new().filter(EventFilter::Upcoming)).await?;
/// for event in &upcoming.items {
///     println!("{}", event.name.as_deref().unwrap_or("(no name)"));
/// }
/// # Ok(())
/// # }
/// ```
#[derive(Clone, Debug)]
pub struct JoindinClient<A: Access = SignedIn> {
    access: A,
    api_base: String,
    verbose: bool,
}

impl JoindinClient<Anonymous> {
    /// A client without a token for the API at `api_base` (e.g.
    /// [`DEFAULT_API_BASE`](crate::DEFAULT_API_BASE)), with a
    /// [`DEFAULT_TIMEOUT`](crate::DEFAULT_TIMEOUT) per request.
    ///
    /// # Errors
    /// [`Error::Configuration`] when `api_base` is not an `https://` URL (or `http://` to
    /// a loopback address).
    pub fn anonymous(api_base: &str) -> Result<Self> {
        // Joind.in's API does not redirect; following one could leave HTTPS.
        let http = reqwest::Client::builder()
            .timeout(crate::DEFAULT_TIMEOUT)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|_| Error::configuration("an HTTP client could not be built"))?;
        Self::anonymous_with(http, api_base)
    }

    /// [`anonymous`](Self::anonymous) with your own HTTP client (proxy, TLS roots,
    /// timeouts); redirects follow its policy.
    pub fn anonymous_with(http: reqwest::Client, api_base: &str) -> Result<Self> {
        let base = Url::parse(api_base)
            .map_err(|_| Error::configuration("the Joind.in API base is not a URL"))?;
        let secure = base.scheme() == "https"
            || (base.scheme() == "http" && grantkit_core::provider::is_loopback(&base));
        if !secure {
            return Err(Error::configuration(
                "Joind.in's API is read over HTTPS only (plain HTTP only to a loopback address)",
            ));
        }
        Ok(Self {
            access: Anonymous {
                http,
                retry: RetryPolicy::default(),
            },
            api_base: api_base.trim_end_matches('/').to_owned(),
            verbose: false,
        })
    }

    /// Retries reads as `policy` says ([`RetryPolicy::none`] never retries).
    pub fn with_retry(mut self, policy: RetryPolicy) -> Self {
        self.access.retry = policy;
        self
    }
}

impl JoindinClient<SignedIn> {
    /// A client for the API at `api_base` (e.g. `https://api.joind.in/v2.1`). Prefer
    /// [`JoindinProvider::api_client`](crate::JoindinProvider::api_client), which passes
    /// the provider's base.
    pub fn new(client: AuthorizedClient, api_base: &str) -> Self {
        Self {
            access: SignedIn { client },
            api_base: api_base.trim_end_matches('/').to_owned(),
            verbose: false,
        }
    }

    /// The underlying authorized client.
    pub fn authorized_client(&self) -> &AuthorizedClient {
        &self.access.client
    }
}

impl<A: Access> JoindinClient<A> {
    /// Asks for the verbose form of every resource (`verbose=yes`).
    pub fn verbose(mut self, verbose: bool) -> Self {
        self.verbose = verbose;
        self
    }

    fn url(&self, path: &str) -> Result<Url> {
        let mut url = Url::parse(&format!("{}/{path}", self.api_base))
            .map_err(|_| Error::configuration("the Joind.in API base is not a URL"))?;
        if self.verbose {
            url.query_pairs_mut().append_pair("verbose", "yes");
        }
        Ok(url)
    }

    /// A link from an answer, made safe to send the token to: it must name the API's
    /// host and port; it gets the API base's scheme (a server behind TLS termination
    /// writes `http://` links); `callback` and `format` are removed.
    fn follow(&self, link: &str) -> Result<Url> {
        let base = Url::parse(&self.api_base)
            .map_err(|_| Error::configuration("the Joind.in API base is not a URL"))?;
        let mut url = Url::parse(link)
            .map_err(|_| Error::bad_response("a link in Joind.in's answer is not a URL"))?;
        if url.host_str() != base.host_str() || url.port() != base.port() {
            return Err(Error::bad_response(
                "a link in Joind.in's answer points outside the API; not following it with the token",
            ));
        }
        if url.scheme() != base.scheme() {
            url.set_scheme(base.scheme()).map_err(|()| {
                Error::bad_response("a link in Joind.in's answer cannot be made HTTPS")
            })?;
        }
        if url
            .query_pairs()
            .any(|(name, _)| FORBIDDEN_PARAMS.contains(&name.as_ref()))
        {
            let kept: Vec<(String, String)> = url
                .query_pairs()
                .filter(|(name, _)| !FORBIDDEN_PARAMS.contains(&name.as_ref()))
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect();
            url.query_pairs_mut().clear().extend_pairs(kept);
        }
        Ok(url)
    }

    /// `GET`: the body of a successful answer (every other answer is a typed error).
    async fn get(&self, url: &Url) -> Result<Vec<u8>> {
        sealed::Transport::get(&self.access, url).await
    }

    /// `GET` of a document.
    async fn get_document(&self, url: &Url) -> Result<Value> {
        document(&self.get(url).await?)
    }

    /// The root document: links to the event lists, and `meta.user_uri`.
    pub async fn root(&self) -> Result<Root> {
        let value = self.get_document(&self.url("")?).await?;
        serde_json::from_value(value).map_err(|err| shape_error("root document", &err))
    }

    /// One page of any list the API links to (`talks_uri`, `next_page`, …), following the
    /// link as given (on the API's own host). `plural` names the list: `events`, `talks`,
    /// `comments`, `users`.
    pub async fn page_at<T: DeserializeOwned>(&self, link: &str, plural: &str) -> Result<Page<T>> {
        let url = self.follow(link)?;
        self.page(&url, plural).await
    }

    async fn page<T: DeserializeOwned>(&self, url: &Url, plural: &str) -> Result<Page<T>> {
        let value = self.get_document(url).await?;
        read_page(value, plural)
    }

    /// Every item of a list, page after page: follows `next_page`, and stops when a page
    /// is empty, when `next_page` does not advance the offset (the `resultsperpage=0`
    /// quirk repeats the same offset), or when `total` items have been read. An error ends
    /// the stream after it is yielded.
    fn stream<T>(&self, first: Url, plural: &'static str) -> BoxStream<'static, Result<T>>
    where
        T: DeserializeOwned + Send + 'static,
    {
        let client = self.clone();
        let state = (Some(first), 0u64);
        futures::stream::unfold(state, move |(next, seen)| {
            let client = client.clone();
            async move {
                let url = next?;
                let page = match client.page::<T>(&url, plural).await {
                    Ok(page) => page,
                    Err(err) => return Some((vec![Err(err)], (None, seen))),
                };
                let seen = seen + page.items.len() as u64;
                let mut batch: Vec<Result<T>> = Vec::with_capacity(page.items.len() + 1);
                let next = match next_link(&url, &page.meta, page.items.len(), seen) {
                    Some(link) => match client.follow(&link) {
                        Ok(next) => Some(next),
                        Err(err) => {
                            batch.extend(page.items.into_iter().map(Ok));
                            batch.push(Err(err));
                            return Some((batch, (None, seen)));
                        }
                    },
                    None => None,
                };
                batch.extend(page.items.into_iter().map(Ok));
                Some((batch, (next, seen)))
            }
        })
        .flat_map(futures::stream::iter)
        .boxed()
    }

    /// One page of events.
    pub async fn events(&self, query: &EventQuery) -> Result<Page<Event>> {
        let mut url = self.url("events")?;
        query.apply(&mut url);
        self.page(&url, "events").await
    }

    /// Every event matching `query`, page after page (see [`EventQuery::paging`] for the
    /// page size).
    pub fn event_stream(&self, query: &EventQuery) -> BoxStream<'static, Result<Event>> {
        match self.url("events") {
            Ok(mut url) => {
                query.apply(&mut url);
                self.stream(url, "events")
            }
            Err(err) => futures::stream::iter([Err(err)]).boxed(),
        }
    }

    /// One event; `None` when Joind.in has no such event (404).
    pub async fn event(&self, id: u64) -> Result<Option<Event>> {
        self.single(&format!("events/{id}"), "events").await
    }

    /// One page of an event's talks (an unknown event has none).
    pub async fn event_talks(&self, event_id: u64, paging: Paging) -> Result<Page<Talk>> {
        let mut url = self.url(&format!("events/{event_id}/talks"))?;
        paging.apply(&mut url);
        self.page(&url, "talks").await
    }

    /// Every talk of an event, page after page.
    pub fn event_talk_stream(
        &self,
        event_id: u64,
        paging: Paging,
    ) -> BoxStream<'static, Result<Talk>> {
        match self.url(&format!("events/{event_id}/talks")) {
            Ok(mut url) => {
                paging.apply(&mut url);
                self.stream(url, "talks")
            }
            Err(err) => futures::stream::iter([Err(err)]).boxed(),
        }
    }

    /// One talk; `None` when Joind.in has no such talk (404).
    pub async fn talk(&self, id: u64) -> Result<Option<Talk>> {
        self.single(&format!("talks/{id}"), "talks").await
    }

    /// Talks whose title contains `title`.
    pub async fn search_talks(&self, title: &str, paging: Paging) -> Result<Page<Talk>> {
        let mut url = self.url("talks")?;
        url.query_pairs_mut().append_pair("title", title);
        paging.apply(&mut url);
        self.page(&url, "talks").await
    }

    /// One page of a talk's comments, oldest first (an unknown talk has none).
    pub async fn talk_comments(&self, talk_id: u64, paging: Paging) -> Result<Page<TalkComment>> {
        let mut url = self.url(&format!("talks/{talk_id}/comments"))?;
        paging.apply(&mut url);
        self.page(&url, "comments").await
    }

    /// Every comment of a talk, page after page.
    pub fn talk_comment_stream(
        &self,
        talk_id: u64,
        paging: Paging,
    ) -> BoxStream<'static, Result<TalkComment>> {
        match self.url(&format!("talks/{talk_id}/comments")) {
            Ok(mut url) => {
                paging.apply(&mut url);
                self.stream(url, "comments")
            }
            Err(err) => futures::stream::iter([Err(err)]).boxed(),
        }
    }

    /// One user; `None` when Joind.in has no such user (404, or 200 with an empty list on
    /// newer servers).
    pub async fn user(&self, id: u64) -> Result<Option<User>> {
        self.single(&format!("users/{id}"), "users").await
    }

    /// The user with exactly this user name, if any.
    pub async fn user_by_username(&self, username: &str) -> Result<Option<User>> {
        let mut url = self.url("users")?;
        url.query_pairs_mut().append_pair("username", username);
        let page: Page<User> = self.page(&url, "users").await?;
        Ok(page.items.into_iter().next())
    }

    /// Users whose name contains `keyword`.
    pub async fn search_users(&self, keyword: &str, paging: Paging) -> Result<Page<User>> {
        let mut url = self.url("users")?;
        url.query_pairs_mut().append_pair("keyword", keyword);
        paging.apply(&mut url);
        self.page(&url, "users").await
    }

    /// A single item: `None` on 404 or an empty list.
    async fn single<T: DeserializeOwned>(&self, path: &str, plural: &str) -> Result<Option<T>> {
        let url = self.url(path)?;
        let body = match self.get(&url).await {
            Ok(body) => body,
            Err(Error::Api { status: 404, .. }) => return Ok(None),
            Err(err) => return Err(err),
        };
        let page: Page<T> = read_page(document(&body)?, plural)?;
        Ok(page.items.into_iter().next())
    }

    /// One page of an event's comments, newest first (an unknown event has none).
    pub async fn event_comments(
        &self,
        event_id: u64,
        paging: Paging,
    ) -> Result<Page<EventComment>> {
        self.list(&format!("events/{event_id}/comments"), paging, "comments")
            .await
    }

    /// One event comment; `None` when Joind.in has no such comment.
    pub async fn event_comment(&self, id: u64) -> Result<Option<EventComment>> {
        self.single(&format!("event_comments/{id}"), "comments")
            .await
    }

    /// One page of the comments on all talks of an event, oldest first.
    pub async fn event_talk_comments(
        &self,
        event_id: u64,
        paging: Paging,
    ) -> Result<Page<TalkComment>> {
        self.list(
            &format!("events/{event_id}/talk_comments"),
            paging,
            "comments",
        )
        .await
    }

    /// One talk comment; `None` when Joind.in has no such comment (or it is private and
    /// not yours).
    pub async fn talk_comment(&self, id: u64) -> Result<Option<TalkComment>> {
        self.single(&format!("talk_comments/{id}"), "comments")
            .await
    }

    /// One page of the users attending an event.
    pub async fn event_attendees(&self, event_id: u64, paging: Paging) -> Result<Page<User>> {
        self.list(&format!("events/{event_id}/attendees"), paging, "users")
            .await
    }

    /// The tracks of an event.
    pub async fn event_tracks(&self, event_id: u64, paging: Paging) -> Result<Page<EventTrack>> {
        self.list(&format!("events/{event_id}/tracks"), paging, "tracks")
            .await
    }

    /// One track; `None` when Joind.in has no such track.
    pub async fn track(&self, id: u64) -> Result<Option<EventTrack>> {
        self.single(&format!("tracks/{id}"), "tracks").await
    }

    /// The tracks a talk is in.
    pub async fn talk_tracks(&self, talk_id: u64) -> Result<Vec<EventTrack>> {
        let page = self
            .list(&format!("talks/{talk_id}/tracks"), Paging::all(), "tracks")
            .await?;
        Ok(page.items)
    }

    /// The hosts of an event. Joind.in answers an empty body for an event without hosts:
    /// that is an empty list.
    pub async fn event_hosts(&self, event_id: u64) -> Result<Vec<Host>> {
        let mut url = self.url(&format!("events/{event_id}/hosts"))?;
        Paging::all().apply(&mut url);
        let body = self.get(&url).await?;
        if body.iter().all(u8::is_ascii_whitespace) {
            return Ok(Vec::new());
        }
        Ok(read_page(document(&body)?, "hosts")?.items)
    }

    /// One page of the talks a user gives.
    pub async fn user_talks(&self, user_id: u64, paging: Paging) -> Result<Page<Talk>> {
        self.list(&format!("users/{user_id}/talks"), paging, "talks")
            .await
    }

    /// One page of the events a user attended.
    pub async fn user_attended_events(&self, user_id: u64, paging: Paging) -> Result<Page<Event>> {
        self.list(&format!("users/{user_id}/attended"), paging, "events")
            .await
    }

    /// One page of the events a user hosts.
    pub async fn user_hosted_events(&self, user_id: u64, paging: Paging) -> Result<Page<Event>> {
        self.list(&format!("users/{user_id}/hosted"), paging, "events")
            .await
    }

    /// One page of a user's talk comments, newest first.
    pub async fn user_talk_comments(
        &self,
        user_id: u64,
        paging: Paging,
    ) -> Result<Page<TalkComment>> {
        self.list(
            &format!("users/{user_id}/talk_comments"),
            paging,
            "comments",
        )
        .await
    }

    /// The languages talks are given in.
    pub async fn languages(&self) -> Result<Vec<Language>> {
        Ok(self
            .list("languages", Paging::all(), "languages")
            .await?
            .items)
    }

    /// The kinds of talk (talk, keynote, workshop…).
    pub async fn talk_types(&self) -> Result<Vec<TalkType>> {
        Ok(self
            .list("talk_types", Paging::all(), "talk_types")
            .await?
            .items)
    }

    /// One page of the list at `path`.
    async fn list<T: DeserializeOwned>(
        &self,
        path: &str,
        paging: Paging,
        plural: &str,
    ) -> Result<Page<T>> {
        let mut url = self.url(path)?;
        paging.apply(&mut url);
        self.page(&url, plural).await
    }
}

impl JoindinClient<SignedIn> {
    /// Who the token belongs to (`meta.user_uri` of the root document; the cheapest call).
    pub async fn whoami(&self) -> Result<WhoAmI> {
        let root = self.root().await?;
        let user_uri = root.meta.user_uri.ok_or_else(|| {
            Error::reauthorize("Joind.in answered anonymously: it does not know the token")
        })?;
        match crate::lenient::id_from_uri(&user_uri) {
            Some(0) => Err(Error::reauthorize(
                "Joind.in identified the token as user 0: it does not know the token",
            )),
            Some(user_id) => Ok(WhoAmI { user_id, user_uri }),
            None => Err(Error::bad_response(
                "Joind.in's user_uri does not end in a user id",
            )),
        }
    }

    /// The user the token belongs to.
    pub async fn me(&self) -> Result<User> {
        let who = self.whoami().await?;
        self.user(who.user_id)
            .await?
            .ok_or_else(|| Error::reauthorize("Joind.in no longer has the token's user"))
    }

    /// Posts a comment on a talk, once.
    ///
    /// The token is checked first (`GET /`): Joind.in's newer servers would store a
    /// comment sent with a token they no longer know as "user 0". The post itself is never
    /// retried: a `429` is [`Error::RateLimited`] with the server's `Retry-After`; a
    /// repeated text is `Error::Api` `Duplicate comment` ([`is_duplicate_comment`]).
    ///
    /// # Errors
    /// [`Error::Configuration`] for an empty comment or a rating outside 1 to 5 (nothing is
    /// sent); `Error::Api` 404 for an unknown talk; [`Error::ReauthorizationRequired`]
    /// when the token is gone.
    pub async fn post_talk_comment(
        &self,
        talk_id: u64,
        comment: &NewComment,
    ) -> Result<PostedComment> {
        comment.check()?;
        self.whoami().await?;
        let body = serde_json::json!({
            "comment": comment.comment,
            "rating": comment.rating,
            "private": comment.private,
        });
        // A POST: the client sends it once (no retry on 429, 5xx or a lost answer), so a
        // comment is posted once or not at all.
        let response = self
            .write(
                Method::POST,
                &format!("talks/{talk_id}/comments"),
                Some(body),
            )
            .await?;
        posted(&response, "comment")
    }

    /// Posts a comment on an event, once (a POST is never retried).
    ///
    /// # Errors
    /// [`Error::Configuration`] for an empty comment or a rating outside 1 to 5 (nothing is
    /// sent); `Error::Api` 404 for an unknown event.
    pub async fn post_event_comment(
        &self,
        event_id: u64,
        comment: &NewComment,
    ) -> Result<PostedComment> {
        comment.check()?;
        let body = serde_json::json!({
            "comment": comment.comment,
            "rating": comment.rating,
        });
        let response = self
            .write(
                Method::POST,
                &format!("events/{event_id}/comments"),
                Some(body),
            )
            .await?;
        posted(&response, "comment")
    }

    /// Changes the text of your talk comment: Joind.in allows it for 15 minutes after
    /// posting. Returns the comment as it now reads.
    ///
    /// # Errors
    /// `Error::Api` 403 when the comment is not yours, 400 after the 15 minutes.
    pub async fn edit_talk_comment(&self, id: u64, text: &str) -> Result<TalkComment> {
        if text.trim().is_empty() {
            return Err(Error::configuration("a talk comment needs some text"));
        }
        let body = serde_json::json!({ "comment": text });
        let response = self
            .write(Method::PUT, &format!("talk_comments/{id}"), Some(body))
            .await?;
        let body = read_capped(response, MAX_ANSWER).await?;
        let page: Page<TalkComment> = read_page(document(&body)?, "comments")?;
        page.items
            .into_iter()
            .next()
            .ok_or_else(|| Error::bad_response("Joind.in answered the edit without the comment"))
    }

    /// Reports a talk comment to the moderators (`202 Accepted`).
    pub async fn report_talk_comment(&self, id: u64) -> Result<()> {
        self.write(Method::POST, &format!("talk_comments/{id}/reported"), None)
            .await
            .map(drop)
    }

    /// Reports an event comment to the moderators (`202 Accepted`).
    pub async fn report_event_comment(&self, id: u64) -> Result<()> {
        self.write(Method::POST, &format!("event_comments/{id}/reported"), None)
            .await
            .map(drop)
    }

    /// Whether you attend the event.
    pub async fn is_attending(&self, event_id: u64) -> Result<bool> {
        self.flag(&format!("events/{event_id}/attending"), "is_attending")
            .await
    }

    /// Marks you as attending the event (attending twice is attending).
    pub async fn attend(&self, event_id: u64) -> Result<()> {
        self.write(Method::POST, &format!("events/{event_id}/attending"), None)
            .await
            .map(drop)
    }

    /// Marks you as not attending the event.
    pub async fn unattend(&self, event_id: u64) -> Result<()> {
        self.write(
            Method::DELETE,
            &format!("events/{event_id}/attending"),
            None,
        )
        .await
        .map(drop)
    }

    /// Whether you starred the talk.
    pub async fn has_starred(&self, talk_id: u64) -> Result<bool> {
        self.flag(&format!("talks/{talk_id}/starred"), "has_starred")
            .await
    }

    /// Stars a talk. Joind.in answers a second star with `500 Database error`; this
    /// checks first, so starring a starred talk is `Ok`.
    pub async fn star(&self, talk_id: u64) -> Result<()> {
        if self.has_starred(talk_id).await? {
            return Ok(());
        }
        self.write(Method::POST, &format!("talks/{talk_id}/starred"), None)
            .await
            .map(drop)
    }

    /// Removes your star from a talk.
    pub async fn unstar(&self, talk_id: u64) -> Result<()> {
        self.write(Method::DELETE, &format!("talks/{talk_id}/starred"), None)
            .await
            .map(drop)
    }

    /// `{"<name>": bool}` at `path`.
    async fn flag(&self, path: &str, name: &str) -> Result<bool> {
        let value = self.get_document(&self.url(path)?).await?;
        value
            .get(name)
            .and_then(crate::lenient::bool_of)
            .ok_or_else(|| Error::bad_response(format!("Joind.in's answer has no `{name}`")))
    }

    /// A write with the token: `body` as JSON (exactly `application/json`), sent once
    /// unless it never left (the client's [`RetryPolicy`] retries a `PUT` or `DELETE`).
    async fn write(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<reqwest::Response> {
        let url = self.url(path)?;
        let client = &self.access.client;
        let mut request = client
            .http()
            .request(method, url.as_str())
            .header(header::ACCEPT, HeaderValue::from_static(JSON));
        if let Some(body) = body {
            let body = serde_json::to_vec(&body)
                .map_err(|_| Error::configuration("the request could not be written as JSON"))?;
            request = request
                .header(header::CONTENT_TYPE, HeaderValue::from_static(JSON))
                .body(body);
        }
        client.send(request).await
    }
}

/// Decodes a body as JSON from its bytes, whatever charset label the server sent.
fn document(body: &[u8]) -> Result<Value> {
    serde_json::from_slice(body).map_err(|err| {
        Error::bad_response(format!(
            "Joind.in's answer is {}",
            describe_json_error(&err)
        ))
    })
}

fn shape_error(what: &str, err: &serde_json::Error) -> Error {
    Error::bad_response(format!("Joind.in's {what} is {}", describe_json_error(err)))
}

/// A list envelope `{"<plural>": [...], "meta": {...}}` as a page.
fn read_page<T: DeserializeOwned>(mut value: Value, plural: &str) -> Result<Page<T>> {
    let meta = match value.get_mut("meta").map(Value::take) {
        Some(meta) => serde_json::from_value(meta).map_err(|e| shape_error("meta", &e))?,
        None => Meta::default(),
    };
    let items = match value.get_mut(plural).map(Value::take) {
        Some(Value::Array(items)) => items,
        // An empty PHP array may come out as `{}` or a map keyed by position.
        Some(Value::Object(map)) => map.into_iter().map(|(_, v)| v).collect(),
        Some(Value::Null) | None => Vec::new(),
        Some(_) => {
            return Err(Error::bad_response(format!(
                "Joind.in's `{plural}` is not a list"
            )));
        }
    };
    let items = items
        .into_iter()
        .map(|item| serde_json::from_value(item).map_err(|e| shape_error(plural, &e)))
        .collect::<Result<Vec<T>>>()?;
    Ok(Page { items, meta })
}

/// The `start` query parameter of a URL.
fn start_of(url: &Url) -> Option<u64> {
    url.query_pairs()
        .find(|(name, _)| name == "start")
        .and_then(|(_, value)| value.parse().ok())
}

/// The next page to read, or `None` to stop: on an empty page, once `total` items were
/// read, without `next_page`, or when `next_page` does not move the offset forward.
fn next_link(current: &Url, meta: &Meta, items_in_page: usize, seen: u64) -> Option<String> {
    if items_in_page == 0 || meta.count == Some(0) {
        return None;
    }
    if meta.total.is_some_and(|total| seen >= total) {
        return None;
    }
    let link = meta.next_page.as_deref()?;
    let next_start = start_of(&Url::parse(link).ok()?)?;
    // The server's own `this_page` says where this page began (`filter=all` chooses a
    // start of its own when none was sent).
    let current_start = meta
        .this_page
        .as_deref()
        .and_then(|this| Url::parse(this).ok())
        .and_then(|this| start_of(&this))
        .or_else(|| start_of(current))
        .unwrap_or(0);
    (next_start > current_start).then(|| link.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(count: u64, total: u64, this: &str, next: Option<&str>) -> Meta {
        Meta {
            count: Some(count),
            total: Some(total),
            this_page: Some(this.to_owned()),
            next_page: next.map(str::to_owned),
            ..Meta::default()
        }
    }

    #[test]
    fn paging_stops_where_it_must() {
        let url = Url::parse("http://h/v2.1/events?resultsperpage=10").unwrap();
        let this = "http://h/v2.1/events?resultsperpage=10&start=0";
        let next = "http://h/v2.1/events?resultsperpage=10&start=10";
        assert_eq!(
            next_link(&url, &meta(10, 25, this, Some(next)), 10, 10).as_deref(),
            Some(next)
        );
        // Empty page, total reached, no link.
        assert_eq!(next_link(&url, &meta(0, 25, this, Some(next)), 0, 10), None);
        assert_eq!(
            next_link(&url, &meta(10, 20, this, Some(next)), 10, 20),
            None
        );
        assert_eq!(next_link(&url, &meta(10, 25, this, None), 10, 10), None);
        // resultsperpage=0 repeats the same offset.
        let all = "http://h/v2.1/events?resultsperpage=0&start=3";
        assert_eq!(next_link(&url, &meta(30, 40, all, Some(all)), 30, 30), None);
        // A link going backwards, or without a start.
        let back = "http://h/v2.1/events?resultsperpage=10&start=0";
        let later = "http://h/v2.1/events?resultsperpage=10&start=20";
        assert_eq!(
            next_link(&url, &meta(10, 99, later, Some(back)), 10, 10),
            None
        );
        assert_eq!(
            next_link(
                &url,
                &meta(10, 99, this, Some("http://h/v2.1/events")),
                10,
                10
            ),
            None
        );
    }

    #[test]
    fn pages_read_lists_and_php_maps() {
        let page: Page<Value> = read_page(
            serde_json::json!({"users": [], "meta": {"count": 0, "total": "0"}}),
            "users",
        )
        .unwrap();
        assert!(page.items.is_empty());
        assert_eq!(page.meta.total, Some(0));
        let page: Page<Value> =
            read_page(serde_json::json!({"talks": {"0": 1, "1": 2}}), "talks").unwrap();
        assert_eq!(page.items.len(), 2);
        assert!(read_page::<Value>(serde_json::json!({"talks": "x"}), "talks").is_err());
    }

    fn client(api_base: &str) -> JoindinClient {
        use grantkit_core::{ClientSecret, MemoryTokenStore, TokenKey, TokenManager};
        let provider = crate::JoindinProvider::builder("key", ClientSecret::new("secret"))
            .api_base(api_base)
            .build()
            .unwrap();
        let manager = TokenManager::builder(
            std::sync::Arc::new(provider),
            std::sync::Arc::new(MemoryTokenStore::new()),
        )
        .build()
        .unwrap();
        let key = TokenKey::new("joindin", "key", "https://api.joind.in/v2.1/users/1");
        JoindinClient::new(
            manager.authorized_client(reqwest::Client::new(), key),
            api_base,
        )
    }

    #[test]
    fn links_are_followed_only_on_the_api_host_and_never_downgraded() {
        let joindin = client("https://api.joind.in/v2.1");
        let same = joindin
            .follow("https://api.joind.in/v2.1/events?filter=hot&start=20&resultsperpage=20")
            .unwrap();
        assert_eq!(
            same.as_str(),
            "https://api.joind.in/v2.1/events?filter=hot&start=20&resultsperpage=20"
        );
        // A server behind TLS termination writes http:// links: they go out as HTTPS.
        let upgraded = joindin
            .follow("http://api.joind.in/v2.1/events?start=20")
            .unwrap();
        assert_eq!(upgraded.scheme(), "https");
        for elsewhere in [
            "https://evil.example/v2.1/events",
            "https://api.joind.in:8443/v2.1/events",
            "not a link",
        ] {
            let err = joindin.follow(elsewhere).unwrap_err();
            assert!(
                matches!(err, Error::BadResponse { .. }),
                "{elsewhere}: {err:?}"
            );
        }
        let cleaned = joindin
            .follow(
                "https://api.joind.in/v2.1/events?callback=cb&format=html&tags%5B0%5D=php&start=5",
            )
            .unwrap();
        let names: Vec<String> = cleaned.query_pairs().map(|(k, _)| k.into_owned()).collect();
        assert_eq!(names, ["tags[0]", "start"]);
    }

    #[test]
    fn queries_carry_the_filters_and_never_callback_or_format() {
        let joindin = client("http://127.0.0.1:9/v2.1").verbose(true);
        let mut url = joindin.url("events").unwrap();
        EventQuery::new()
            .filter(EventFilter::Cfp)
            .title("php conf")
            .stub("phpbnl14")
            .tag("php")
            .tag("2024")
            .start_date("2024-01-01")
            .end_date("2024-12-31")
            .paging(Paging::per_page(5).starting_at(10))
            .apply(&mut url);
        let pairs: Vec<(String, String)> = url
            .query_pairs()
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect();
        let expected = [
            ("verbose", "yes"),
            ("filter", "cfp"),
            ("title", "php conf"),
            ("stub", "phpbnl14"),
            ("tags[]", "php"),
            ("tags[]", "2024"),
            ("startdate", "2024-01-01"),
            ("enddate", "2024-12-31"),
            ("start", "10"),
            ("resultsperpage", "5"),
        ];
        assert_eq!(pairs, expected.map(|(k, v)| (k.to_owned(), v.to_owned())));
    }

    #[test]
    fn duplicate_comments_are_recognised() {
        assert!(is_duplicate_comment(&Error::api(400, "Duplicate comment")));
        assert!(!is_duplicate_comment(&Error::api(
            400,
            "The field \"rating\" is required"
        )));
    }
}
