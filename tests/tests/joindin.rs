//! Joind.in end to end: JoindinProvider and JoindinClient through TokenManager and the
//! memory store, against the Joind.in emulator over real HTTP.

use futures::TryStreamExt as _;
use grantkit_conformance::Decision;
use grantkit_core::{
    Callback, Error, MemoryTokenStore, Password, RedirectFlow, Revocation, TokenKey, TokenManager,
    TokenStore, store::Precondition,
};
use grantkit_emulator::{
    CommentRateLimit, Fault, FaultRule, JoindinEndpoint, JoindinEvent, JoindinQuirks,
};
use grantkit_joindin::testing::JoindinHarness;
use grantkit_joindin::{
    EventFilter, EventQuery, JoindinClient, NewComment, Paging, UserRating, is_duplicate_comment,
};
use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

fn start(quirks: impl FnOnce(&mut JoindinQuirks)) -> JoindinHarness {
    JoindinHarness::start("joindin", quirks).expect("the Joind.in emulator starts")
}

fn manager(h: &JoindinHarness) -> (TokenManager, Arc<MemoryTokenStore>) {
    let store = Arc::new(MemoryTokenStore::new());
    let manager = TokenManager::builder(h.joindin_provider(), store.clone())
        .build()
        .expect("a manager");
    (manager, store)
}

async fn log_in(h: &JoindinHarness, manager: &TokenManager) -> TokenKey {
    let fx = h.emulator().fixtures().clone();
    manager
        .sign_in_with_password(fx.username, Password::new(fx.password))
        .await
        .expect("the password grant")
}

fn client(h: &JoindinHarness, manager: &TokenManager, key: &TokenKey) -> JoindinClient {
    h.joindin_provider()
        .api_client(manager.authorized_client(reqwest::Client::new(), key.clone()))
}

async fn stored_token(store: &MemoryTokenStore, key: &TokenKey) -> String {
    store
        .get(key)
        .await
        .unwrap()
        .expect("a stored grant")
        .value
        .access_token
        .expose_secret()
        .to_owned()
}

#[tokio::test]
async fn password_flow_through_the_manager() {
    let h = start(|_| {});
    let (manager, store) = manager(&h);
    let key = log_in(&h, &manager).await;
    let fx = h.emulator().fixtures().clone();
    assert_eq!(key.provider, "joindin");
    assert_eq!(key.client, fx.client_id);
    assert_eq!(
        key.account,
        format!("{}/users/{}", h.emulator().api_base(), fx.user_id)
    );
    let stored = store.get(&key).await.unwrap().unwrap().value;
    assert_eq!(stored.expires_at, None);
    assert!(stored.refresh_token.is_none());
    let joindin = client(&h, &manager, &key);
    let who = joindin.whoami().await.unwrap();
    assert_eq!(who.user_id, fx.user_id);
    let me = joindin.me().await.unwrap();
    assert_eq!(me.username.as_deref(), Some(fx.username.as_str()));
    // Tokens never expire: the manager serves the same one on every call.
    let again = manager.access_token(&key).await.unwrap();
    assert!(again.access_token == stored.access_token);
    let logout = manager.logout(&key).await.unwrap();
    assert!(matches!(
        logout,
        grantkit_core::Logout::Deleted {
            remote: Revocation::NotSupported
        }
    ));
    assert!(store.get(&key).await.unwrap().is_none());
}

#[tokio::test]
async fn oauth_allow_flow_through_the_manager() {
    let h = start(|_| {});
    let fx = h.emulator().fixtures().clone();
    let (manager, store) = manager(&h);
    let flow = RedirectFlow::implicit(fx.redirect_uri.clone());
    let url = manager.start_authorization(&flow).await.unwrap();
    let callback = h
        .browse_as(
            url.expose_secret(),
            &fx.username,
            &fx.password,
            Decision::Approve,
        )
        .await
        .unwrap();
    let key = manager
        .complete_authorization(&Callback::parse(&callback).unwrap())
        .await
        .unwrap();
    assert_eq!(key.account, h.joindin_provider().account_of(fx.user_id));
    let stored = store.get(&key).await.unwrap().unwrap().value;
    assert_eq!(stored.grant, grantkit_core::GrantKind::Implicit);
    let joindin = client(&h, &manager, &key);
    assert_eq!(joindin.whoami().await.unwrap().user_id, fx.user_id);
    assert_eq!(
        h.emulator().count(JoindinEndpoint::Token),
        0,
        "no token endpoint in this flow"
    );

    // A user who says no: the page links back without a token.
    let url = manager.start_authorization(&flow).await.unwrap();
    let callback = h
        .browse_as(
            url.expose_secret(),
            &fx.username,
            &fx.password,
            Decision::Deny,
        )
        .await
        .unwrap();
    let err = manager
        .complete_authorization(&Callback::parse(&callback).unwrap())
        .await
        .unwrap_err();
    assert!(
        matches!(&err, Error::OAuth { code, .. } if code == "access_denied"),
        "{err:?}"
    );
}

#[tokio::test]
async fn without_oauth_allow_only_the_password_grant_works() {
    let h = start(|q| q.legacy_oauth_allow = false);
    let (manager, _) = manager(&h);
    let flow = RedirectFlow::implicit(h.emulator().fixtures().redirect_uri.clone());
    let err = manager.start_authorization(&flow).await.unwrap_err();
    assert!(
        matches!(&err, Error::Unsupported { what } if what.contains("password grant")),
        "{err:?}"
    );
    let key = log_in(&h, &manager).await;
    client(&h, &manager, &key).whoami().await.unwrap();
}

/// The token is deleted at Joind.in; many callers use it at once. Every one of them is
/// told to authorize again, the dead grant is deleted, and no token request is made.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_token_deleted_on_the_server_stops_every_caller() {
    const CALLERS: usize = 400;
    for user_zero in [false, true] {
        let h = start(|q| q.unknown_token_is_user_zero = user_zero);
        let (manager, store) = manager(&h);
        let key = log_in(&h, &manager).await;
        let token = stored_token(&store, &key).await;
        let http = reqwest::Client::new();
        let authorized = manager.authorized_client(http, key.clone());
        // Warm: the token works.
        let joindin = h.joindin_provider().api_client(authorized.clone());
        joindin.whoami().await.unwrap();
        assert!(h.emulator().revoke_token(&token));
        let token_calls = h.emulator().count(JoindinEndpoint::Token);
        let api_calls = h.emulator().count(JoindinEndpoint::Api);

        let root = format!("{}/", h.emulator().api_base());
        let mut callers = Vec::with_capacity(CALLERS);
        for i in 0..CALLERS {
            let authorized = authorized.clone();
            let joindin = joindin.clone();
            let root = root.clone();
            callers.push(tokio::spawn(async move {
                if i % 2 == 0 {
                    authorized
                        .send(authorized.http().get(root))
                        .await
                        .map(|_| ())
                } else {
                    joindin.events(&EventQuery::new()).await.map(|_| ())
                }
            }));
        }
        for caller in callers {
            let outcome = caller.await.unwrap();
            match outcome {
                Err(err) => assert!(
                    err.is_reauthorization_required(),
                    "user_zero={user_zero}: {err:?}"
                ),
                Ok(()) => {
                    panic!("user_zero={user_zero}: a caller used the deleted token successfully")
                }
            }
        }
        assert!(
            store.get(&key).await.unwrap().is_none(),
            "the dead grant is deleted"
        );
        assert_eq!(
            h.emulator().count(JoindinEndpoint::Token),
            token_calls,
            "nothing to refresh"
        );
        let answered = h.emulator().count(JoindinEndpoint::Api) - api_calls;
        assert!(
            answered >= 1 && answered <= CALLERS as u64,
            "{answered} API requests"
        );
        let err = manager.access_token(&key).await.unwrap_err();
        assert!(err.is_reauthorization_required());
    }
}

async fn add_events(h: &JoindinHarness, count: usize) {
    for i in 0..count {
        let event = JoindinEvent::new(
            format!("Paging Conf {i:02}"),
            &format!("2030-01-{:02}T09:00:00Z", i % 28 + 1),
            &format!("2030-01-{:02}T17:00:00Z", i % 28 + 1),
            "Europe/London",
        );
        h.emulator().add_event(event);
    }
}

#[tokio::test]
async fn event_streams_follow_next_page_to_the_end() {
    let h = start(|_| {});
    add_events(&h, 45).await;
    let (manager, _) = manager(&h);
    let key = log_in(&h, &manager).await;
    let joindin = client(&h, &manager, &key);
    let first = joindin.events(&EventQuery::new()).await.unwrap();
    let total = first.meta.total.expect("a total");
    assert_eq!(total, 48, "45 added and 3 seeded public events");

    h.emulator().reset_counters();
    let events: Vec<_> = joindin
        .event_stream(&EventQuery::new().paging(Paging::per_page(10)))
        .try_collect()
        .await
        .unwrap();
    assert_eq!(events.len(), 48);
    let ids: BTreeSet<u64> = events.iter().map(|e| e.id().expect("an id")).collect();
    assert_eq!(ids.len(), 48, "no event twice");
    assert_eq!(
        h.emulator().count(JoindinEndpoint::Api),
        5,
        "five pages of ten"
    );

    // resultsperpage=0 answers everything and still links to the same offset.
    let all = joindin
        .events(&EventQuery::new().paging(Paging::all()))
        .await
        .unwrap();
    assert_eq!(all.items.len(), 48);
    assert!(
        all.meta.next_page.is_some(),
        "the quirk: a next page at the same offset"
    );
    for paging in [Paging::all(), Paging::all().starting_at(5)] {
        h.emulator().reset_counters();
        let events: Vec<_> = joindin
            .event_stream(&EventQuery::new().paging(paging))
            .try_collect()
            .await
            .unwrap();
        assert_eq!(events.len(), 48);
        assert_eq!(
            h.emulator().count(JoindinEndpoint::Api),
            1,
            "one request, no loop"
        );
    }

    // Filters.
    let tagged = joindin
        .events(&EventQuery::new().tag("2024"))
        .await
        .unwrap();
    assert_eq!(tagged.items.len(), 1);
    assert!(tagged.items[0].tags.contains(&"2024".to_owned()));
    let by_stub = joindin
        .events(&EventQuery::new().stub("0101"))
        .await
        .unwrap();
    assert_eq!(by_stub.items[0].name.as_deref(), Some("1984"));
    let upcoming: Vec<_> = joindin
        .event_stream(
            &EventQuery::new()
                .filter(EventFilter::Upcoming)
                .paging(Paging::per_page(7)),
        )
        .try_collect()
        .await
        .unwrap();
    assert!(
        upcoming
            .iter()
            .any(|e| e.name.as_deref() == Some("grantkit conf 2099"))
    );
    assert!(
        upcoming
            .iter()
            .all(|e| e.name.as_deref() != Some("PHP Benelux 2014"))
    );
    let titled = joindin
        .events(&EventQuery::new().title("paging conf 4"))
        .await
        .unwrap();
    assert_eq!(titled.items.len(), 5, "Paging Conf 04 and 40 to 44");
}

#[tokio::test]
async fn talks_comments_and_users_read_alike_with_and_without_coercion() {
    let h = start(|_| {});
    let fx = h.emulator().fixtures().clone();
    let (manager, _) = manager(&h);
    let key = log_in(&h, &manager).await;
    let joindin = client(&h, &manager, &key);
    let verbose = joindin.clone().verbose(true);

    let read = || async {
        let bnl = joindin.event(1).await.unwrap().expect("event 1");
        let conf = joindin.event(2).await.unwrap().expect("event 2");
        let talks: Vec<_> = joindin
            .event_talk_stream(1, Paging::per_page(2))
            .try_collect()
            .await
            .unwrap();
        let year = joindin.talk(2).await.unwrap().expect("talk 2");
        let rated = verbose.talk(1).await.unwrap().expect("talk 1");
        let unrated = verbose.talk(2).await.unwrap().expect("talk 2");
        let comments = joindin
            .talk_comments(1, Paging::default())
            .await
            .unwrap()
            .items;
        let speaker = joindin.user(3).await.unwrap().expect("user 3");
        (bnl, conf, talks, year, rated, unrated, comments, speaker)
    };
    let coerced = read().await;
    let (bnl, conf, talks, year, rated, unrated, comments, speaker) = coerced.clone();
    assert_eq!(bnl.images["orig"].width, Some(1140), "images as a map");
    assert!(conf.images.is_empty(), "images as []");
    assert_eq!(conf.tags, ["oauth", "2024"]);
    assert_eq!(talks.len(), 3);
    assert_eq!(
        talks
            .iter()
            .filter_map(|t| t.id())
            .collect::<BTreeSet<_>>()
            .len(),
        3
    );
    assert_eq!(
        year.talk_title.as_deref(),
        Some("1984"),
        "a numeric title reads as text"
    );
    assert_eq!(year.id(), Some(2));
    assert_eq!(
        rated.user_rating,
        UserRating::Rated(5),
        "the user rated talk 1"
    );
    assert_eq!(rated.talk_media.len(), 1);
    assert_eq!(unrated.user_rating, UserRating::Rated(4));
    assert_eq!(comments.len(), 2);
    assert_eq!(
        comments[1].comment.as_deref(),
        Some("42"),
        "comment text is never coerced"
    );
    assert_eq!(speaker.full_name.as_deref(), Some("1984"));
    assert_eq!(
        speaker.username.as_deref(),
        Some(fx.speaker_username.as_str())
    );

    h.emulator().update_quirks(|q| q.numeric_coercion = false);
    let uncoerced = read().await;
    assert_eq!(
        coerced, uncoerced,
        "the same values whether or not the server coerces"
    );
}

#[tokio::test]
async fn missing_things_are_none_on_old_and_new_servers() {
    for empty_list in [false, true] {
        let h = start(|q| q.missing_user_empty_list = empty_list);
        let (manager, _) = manager(&h);
        let key = log_in(&h, &manager).await;
        let joindin = client(&h, &manager, &key);
        assert_eq!(
            joindin.user(999).await.unwrap(),
            None,
            "empty_list={empty_list}"
        );
        assert!(joindin.user(1).await.unwrap().is_some());
        assert_eq!(joindin.user_by_username("nobody").await.unwrap(), None);
        assert_eq!(
            joindin
                .user_by_username(&h.emulator().fixtures().username)
                .await
                .unwrap()
                .and_then(|u| u.id()),
            Some(1)
        );
        assert_eq!(joindin.event(999).await.unwrap(), None);
        assert_eq!(joindin.talk(999).await.unwrap(), None);
        assert!(
            joindin
                .event_talks(999, Paging::default())
                .await
                .unwrap()
                .items
                .is_empty()
        );
        assert!(
            joindin
                .talk_comments(999, Paging::default())
                .await
                .unwrap()
                .items
                .is_empty()
        );
        // A refusal keeps the server's message and the grant.
        let err = joindin
            .events(&EventQuery::new().filter(EventFilter::Pending))
            .await
            .unwrap_err();
        assert!(
            matches!(&err, Error::Api { status: 403, message, .. } if message.contains("permission")),
            "{err:?}"
        );
        joindin.whoami().await.expect("the token still works");
    }
}

#[tokio::test]
async fn comments_are_posted_once() {
    let h = start(|q| {
        q.comment_rate_limit = Some(CommentRateLimit {
            max: 2,
            window: Duration::from_secs(3600),
        });
    });
    let (manager, _) = manager(&h);
    let key = log_in(&h, &manager).await;
    let joindin = client(&h, &manager, &key);
    let emu = h.emulator();
    let before = emu.comment_count();

    let posted = joindin
        .post_talk_comment(3, &NewComment::new("Inspiring keynote", 4))
        .await
        .unwrap();
    let id = posted.id.expect("an id from Location");
    assert!(posted.uri.ends_with(&format!("/talk_comments/{id}")));
    let comments = joindin
        .talk_comments(3, Paging::default())
        .await
        .unwrap()
        .items;
    assert!(
        comments
            .iter()
            .any(|c| c.id() == Some(id) && c.comment.as_deref() == Some("Inspiring keynote"))
    );

    let err = joindin
        .post_talk_comment(3, &NewComment::new("Inspiring keynote", 4))
        .await
        .unwrap_err();
    assert!(is_duplicate_comment(&err), "{err:?}");

    let posts = |emu: &grantkit_emulator::JoindinEmulator| {
        emu.requests()
            .iter()
            .filter(|r| r.method == "POST" && r.path.ends_with("/comments"))
            .count()
    };
    let sent = posts(emu);
    for bad in [
        NewComment::new("No rating", 0),
        NewComment::new("Too much", 6),
        NewComment::new("  ", 3),
    ] {
        let err = joindin.post_talk_comment(3, &bad).await.unwrap_err();
        assert!(matches!(err, Error::Configuration { .. }), "{err:?}");
    }
    assert_eq!(posts(emu), sent, "invalid comments are never sent");

    joindin
        .post_talk_comment(4, &NewComment::new("Second", 5))
        .await
        .unwrap();
    let sent = posts(emu);
    let err = joindin
        .post_talk_comment(4, &NewComment::new("Third", 5))
        .await
        .unwrap_err();
    match err {
        Error::RateLimited {
            retry_after: Some(wait),
        } => assert!(wait > Duration::ZERO),
        other => panic!("expected the rate limit with Retry-After, got {other:?}"),
    }
    assert_eq!(
        posts(emu),
        sent + 1,
        "a rate-limited comment is not retried"
    );
    assert_eq!(emu.comment_count(), before + 2);
}

/// Everything logged while a test runs (the subscriber is the test thread's).
#[derive(Clone, Default)]
struct Logs(Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Logs {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Logs {
    type Writer = Logs;
    fn make_writer(&'a self) -> Logs {
        self.clone()
    }
}

// Current-thread: the requests run on this thread, under this subscriber.
#[tokio::test]
async fn reads_survive_two_503s_and_a_reset_and_a_comment_is_posted_at_most_once() {
    let logs = Logs::default();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::DEBUG)
        .with_writer(logs.clone())
        .with_ansi(false)
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let h = start(|_| {});
    let (manager, store) = manager(&h);
    let key = log_in(&h, &manager).await;
    let token = stored_token(&store, &key).await;
    let quick = grantkit_core::RetryPolicy::default()
        .with_backoff(Duration::from_millis(5), Duration::from_millis(20));
    let joindin = h.joindin_provider().api_client(
        manager
            .authorized_client(reqwest::Client::new(), key.clone())
            .with_retry(quick),
    );
    let emu = h.emulator();
    let sent = |method: &str| {
        emu.requests()
            .iter()
            .filter(|r| r.method == method && r.path.starts_with("/v2.1/talks/3"))
            .count()
    };
    let two_503s_and_a_reset = |method: reqwest::Method| {
        emu.inject(
            FaultRule::on(JoindinEndpoint::Api, Fault::ServerError { status: 503 })
                .for_method(method.clone())
                .times(2),
        );
        emu.inject(FaultRule::on(JoindinEndpoint::Api, Fault::ConnectionReset).for_method(method));
    };

    two_503s_and_a_reset(reqwest::Method::GET);
    let talk = joindin.talk(3).await.expect("the read survives");
    assert!(talk.is_some());
    assert_eq!(sent("GET"), 4, "two 503s, a reset, then the answer");

    // A server asking to wait is waited for.
    emu.inject(
        FaultRule::on(
            JoindinEndpoint::Api,
            Fault::ServiceUnavailable { retry_after_s: 1 },
        )
        .for_method(reqwest::Method::GET),
    );
    let started = std::time::Instant::now();
    joindin.talk(3).await.expect("after Retry-After");
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "Retry-After honoured"
    );

    // The same faults on the POST that creates a comment: each attempt is sent once and
    // nothing is posted twice.
    let comments = emu.comment_count();
    two_503s_and_a_reset(reqwest::Method::POST);
    for attempt in 1..=3 {
        let err = joindin
            .post_talk_comment(3, &NewComment::new(format!("Attempt {attempt}"), 4))
            .await
            .unwrap_err();
        assert!(err.is_retryable(), "{err:?}");
        assert_eq!(sent("POST"), attempt, "sent once, not retried");
    }
    assert_eq!(emu.comment_count(), comments, "no comment was created");
    // The answer lost after the comment was stored: one comment, not two.
    emu.inject(
        FaultRule::on(JoindinEndpoint::Api, Fault::ConnectionReset)
            .for_method(reqwest::Method::POST)
            .after_processing(),
    );
    let err = joindin
        .post_talk_comment(3, &NewComment::new("Stored, answer lost", 4))
        .await
        .unwrap_err();
    assert!(err.is_outcome_unknown(), "{err:?}");
    assert_eq!(sent("POST"), 4);
    assert_eq!(emu.comment_count(), comments + 1);

    let logged = String::from_utf8(logs.0.lock().unwrap().clone()).unwrap();
    assert!(logged.contains("retrying"), "every retry is logged");
    assert!(
        logged.contains("attempt=2") && logged.contains("attempt=4"),
        "{logged}"
    );
    assert!(!logged.contains(&token), "no token in the logs");
}

#[tokio::test]
async fn a_dead_token_never_posts_as_user_zero() {
    let h = start(|q| q.unknown_token_is_user_zero = true);
    let (manager, store) = manager(&h);
    let key = log_in(&h, &manager).await;
    let joindin = client(&h, &manager, &key);
    h.emulator().revoke_token(&stored_token(&store, &key).await);
    let before = h.emulator().comment_count();
    let err = joindin
        .post_talk_comment(1, &NewComment::new("Ghost comment", 3))
        .await
        .unwrap_err();
    assert!(err.is_reauthorization_required(), "{err:?}");
    assert_eq!(
        h.emulator().comment_count(),
        before,
        "nothing posted as user 0"
    );
    assert!(store.get(&key).await.unwrap().is_none());
}

#[tokio::test]
async fn numeric_tokens_fail_the_password_grant_but_not_oauth_allow() {
    let h = start(|q| q.numeric_tokens = true);
    let fx = h.emulator().fixtures().clone();
    let (manager, store) = manager(&h);
    let err = manager
        .sign_in_with_password(fx.username.clone(), Password::new(fx.password.clone()))
        .await
        .unwrap_err();
    assert!(err.is_reauthorization_required(), "{err:?}");
    assert!(err.to_string().contains("log in again"), "{err}");

    let flow = RedirectFlow::implicit(fx.redirect_uri.clone());
    let url = manager.start_authorization(&flow).await.unwrap();
    let callback = h
        .browse_as(
            url.expose_secret(),
            &fx.username,
            &fx.password,
            Decision::Approve,
        )
        .await
        .unwrap();
    let key = manager
        .complete_authorization(&Callback::parse(&callback).unwrap())
        .await
        .unwrap();
    let token = stored_token(&store, &key).await;
    assert!(
        token.bytes().all(|b| b.is_ascii_digit()),
        "an all-digit token, kept as text"
    );
    assert_eq!(
        client(&h, &manager, &key).whoami().await.unwrap().user_id,
        fx.user_id
    );
    assert!(store.delete(&key, Precondition::Any).await.unwrap());
}
