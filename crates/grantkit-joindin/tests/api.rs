//! The Joind.in API around sign-in, typed, against the emulator over real HTTP: reads
//! without a grant, the writes of a signed-in user, and every link the emulator hands out.

use grantkit_core::{Error, MemoryTokenStore, Password, TokenManager};
use grantkit_emulator::{EmulatorClock, JoindinEmulator};
use grantkit_joindin::testing::JoindinHarness;
use grantkit_joindin::{EventQuery, JoindinClient, NewComment, Paging, SignedIn};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Seeded: event 1 (PHPBenelux, hosted by the admin, two attendees, two event comments),
/// event 2 (hosted by the test user, who speaks at its talk 4), event 3 (no hosts),
/// event 4 (pending, hosted by the test user); talk 1 has two comments and a track.
const BENELUX: u64 = 1;
const NO_HOSTS: u64 = 3;
const PENDING: u64 = 4;
const OAUTH_TALK: u64 = 1;
const YEAR_TALK: u64 = 2;

fn emulator() -> JoindinEmulator {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    JoindinEmulator::builder()
        .clock(EmulatorClock::frozen_at(
            UNIX_EPOCH + Duration::from_secs(now),
        ))
        .start()
        .expect("the emulator starts")
}

async fn signed_in(
    emu: &JoindinEmulator,
    username: &str,
    password: &str,
) -> JoindinClient<SignedIn> {
    let provider = Arc::new(JoindinHarness::provider_for(emu).build().unwrap());
    let manager = TokenManager::builder(provider.clone(), Arc::new(MemoryTokenStore::new()))
        .build()
        .unwrap();
    let key = manager
        .sign_in_with_password(username, Password::new(password))
        .await
        .expect("signed in");
    provider.api_client(manager.authorized_client(reqwest::Client::new(), key))
}

fn names<T>(items: &[T], name: impl Fn(&T) -> Option<&String>) -> Vec<String> {
    items.iter().filter_map(|i| name(i).cloned()).collect()
}

/// Joind.in's documentation: "authentication is only needed to add or edit data or to
/// read private data". Every public read works with no token and no manager.
#[tokio::test]
async fn authentication_is_only_needed_to_add_or_edit_data_or_to_read_private_data() {
    let emu = emulator();
    let anonymous = JoindinClient::anonymous(&emu.api_base()).unwrap();

    let events = anonymous.events(&EventQuery::new()).await.unwrap();
    assert_eq!(events.meta.total, Some(3), "pending events are not public");
    assert!(anonymous.event(BENELUX).await.unwrap().is_some());
    assert!(anonymous.event(PENDING).await.unwrap().is_none());
    assert_eq!(
        anonymous
            .event_talks(BENELUX, Paging::default())
            .await
            .unwrap()
            .items
            .len(),
        3
    );
    assert!(anonymous.talk(OAUTH_TALK).await.unwrap().is_some());

    // Event comments: newest first, `comment_uri` as their link.
    let comments = anonymous
        .event_comments(BENELUX, Paging::default())
        .await
        .unwrap()
        .items;
    assert_eq!(
        names(&comments, |c| c.comment.as_ref()),
        ["Good coffee.", "Well organised, see you next year."]
    );
    let first = comments[1].id().expect("an id from comment_uri");
    let one = anonymous.event_comment(first).await.unwrap().unwrap();
    assert_eq!(one.rating, Some(5));
    assert!(anonymous.event_comment(999).await.unwrap().is_none());

    // Talk comments: a talk's, one by id, an event's.
    let talk_comments = anonymous
        .talk_comments(OAUTH_TALK, Paging::default())
        .await
        .unwrap()
        .items;
    assert_eq!(talk_comments.len(), 2);
    let id = talk_comments[0].id().unwrap();
    assert_eq!(
        anonymous.talk_comment(id).await.unwrap().unwrap().comment,
        talk_comments[0].comment
    );
    let event_talk_comments = anonymous
        .event_talk_comments(BENELUX, Paging::default())
        .await
        .unwrap();
    assert_eq!(event_talk_comments.items.len(), 3);

    // Attendees, tracks, hosts.
    let attendees = anonymous
        .event_attendees(BENELUX, Paging::default())
        .await
        .unwrap()
        .items;
    assert_eq!(
        names(&attendees, |u| u.username.as_ref()),
        ["grantkit", "speaker1984"]
    );
    let tracks = anonymous
        .event_tracks(BENELUX, Paging::default())
        .await
        .unwrap()
        .items;
    assert_eq!(names(&tracks, |t| t.track_name.as_ref()), ["Track 1"]);
    assert_eq!(tracks[0].talks_count, Some(1));
    let track = anonymous
        .track(tracks[0].id().unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(track, tracks[0]);
    assert_eq!(anonymous.talk_tracks(OAUTH_TALK).await.unwrap(), tracks);
    assert!(anonymous.talk_tracks(YEAR_TALK).await.unwrap().is_empty());
    let hosts = anonymous.event_hosts(BENELUX).await.unwrap();
    assert_eq!(names(&hosts, |h| h.host_name.as_ref()), ["Ada Admin"]);
    // No hosts: Joind.in answers an empty body.
    assert!(anonymous.event_hosts(NO_HOSTS).await.unwrap().is_empty());

    // A user's talks, events and comments.
    let user = emu.fixtures().user_id;
    let talks = anonymous
        .user_talks(user, Paging::default())
        .await
        .unwrap()
        .items;
    assert_eq!(
        names(&talks, |t| t.talk_title.as_ref()),
        ["Tokens all the way down"]
    );
    let attended = anonymous
        .user_attended_events(user, Paging::default())
        .await
        .unwrap()
        .items;
    assert_eq!(names(&attended, |e| e.name.as_ref()), ["PHP Benelux 2014"]);
    let hosted = anonymous
        .user_hosted_events(user, Paging::default())
        .await
        .unwrap()
        .items;
    assert_eq!(
        names(&hosted, |e| e.name.as_ref()),
        ["grantkit conf 2099"],
        "the pending event the user hosts is private"
    );
    let their_comments = anonymous
        .user_talk_comments(user, Paging::default())
        .await
        .unwrap();
    assert_eq!(their_comments.items.len(), 2);
    assert!(
        anonymous
            .user_talks(999, Paging::default())
            .await
            .unwrap()
            .items
            .is_empty(),
        "an unknown parent has an empty list"
    );

    // Languages and talk types.
    let languages = anonymous.languages().await.unwrap();
    assert!(
        languages.iter().any(
            |l| l.name.as_deref() == Some("English - UK") && l.code.as_deref() == Some("en_GB")
        )
    );
    let types = anonymous.talk_types().await.unwrap();
    assert!(types.iter().any(|t| t.title.as_deref() == Some("Keynote")));

    // Without a token, a comment on an event is refused as Joind.in documents: 400.
    let response = reqwest::Client::new()
        .post(format!("{}/events/{BENELUX}/comments", emu.api_base()))
        .header("content-type", "application/json")
        .body(r#"{"comment":"Hi","rating":5}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    assert_eq!(
        serde_json::from_slice::<Value>(&response.bytes().await.unwrap()).unwrap(),
        serde_json::json!(["You must log in to comment"])
    );
}

/// Reads without a grant are retried as signed-in ones are, waiting out `Retry-After`.
#[tokio::test]
async fn anonymous_reads_survive_a_503_and_wait_as_asked() {
    use grantkit_emulator::{Fault, FaultRule, JoindinEndpoint};
    let emu = emulator();
    let anonymous = JoindinClient::anonymous(&emu.api_base()).unwrap();
    emu.inject(FaultRule::on(
        JoindinEndpoint::Api,
        Fault::ServiceUnavailable { retry_after_s: 1 },
    ));
    emu.inject(FaultRule::on(JoindinEndpoint::Api, Fault::ConnectionReset));
    let started = std::time::Instant::now();
    assert!(anonymous.event(BENELUX).await.unwrap().is_some());
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "Retry-After honoured"
    );
    // Without retries, the 503 is the answer.
    let once = JoindinClient::anonymous(&emu.api_base())
        .unwrap()
        .with_retry(grantkit_core::RetryPolicy::none());
    emu.inject(FaultRule::on(
        JoindinEndpoint::Api,
        Fault::ServiceUnavailable { retry_after_s: 2 },
    ));
    let err = once.event(BENELUX).await.unwrap_err();
    assert!(
        matches!(err, Error::Unavailable { status: 503, retry_after: Some(d), .. } if d == Duration::from_secs(2)),
        "{err:?}"
    );
}

#[tokio::test]
async fn the_anonymous_client_reads_over_https_only() {
    for base in [
        "http://api.joind.in/v2.1",
        "ftp://api.joind.in/v2.1",
        "not a url",
    ] {
        let err = JoindinClient::anonymous(base).unwrap_err();
        assert!(
            matches!(err, Error::Configuration { .. }),
            "{base}: {err:?}"
        );
    }
    for base in [
        "https://api.joind.in/v2.1",
        "http://127.0.0.1:1/v2.1",
        "http://[::1]:1/v2.1",
        "http://localhost:1/v2.1",
    ] {
        assert!(JoindinClient::anonymous(base).is_ok(), "{base}");
    }
}

/// A signed-in user's writes, each read back through the API.
#[tokio::test]
async fn a_signed_in_user_comments_attends_stars_edits_and_reports() {
    let emu = emulator();
    let fx = emu.fixtures().clone();
    let joindin = signed_in(&emu, &fx.username, &fx.password).await;
    let anonymous = JoindinClient::anonymous(&emu.api_base()).unwrap();

    // An event comment: posted once, read back first (newest first).
    let posted = joindin
        .post_event_comment(BENELUX, &NewComment::new("See you in 2015", 4))
        .await
        .unwrap();
    let comments = anonymous
        .event_comments(BENELUX, Paging::default())
        .await
        .unwrap()
        .items;
    assert_eq!(comments[0].comment.as_deref(), Some("See you in 2015"));
    assert_eq!(comments[0].id(), posted.id);
    assert_eq!(comments[0].username.as_deref(), Some(fx.username.as_str()));
    let event = anonymous.event(BENELUX).await.unwrap().unwrap();
    assert_eq!(event.event_comments_count, Some(3));
    // Ratings outside 1 to 5 never leave.
    let err = joindin
        .post_event_comment(BENELUX, &NewComment::new("Zero", 0))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Configuration { .. }), "{err:?}");
    joindin
        .report_event_comment(posted.id.unwrap())
        .await
        .unwrap();

    // Attendance: the event 2 of the seed has none.
    let conf = 2;
    assert!(!joindin.is_attending(conf).await.unwrap());
    joindin.attend(conf).await.unwrap();
    joindin
        .attend(conf)
        .await
        .expect("attending twice is attending");
    assert!(joindin.is_attending(conf).await.unwrap());
    let attendees = anonymous
        .event_attendees(conf, Paging::default())
        .await
        .unwrap()
        .items;
    assert_eq!(
        names(&attendees, |u| u.username.as_ref()),
        [fx.username.as_str()]
    );
    joindin.unattend(conf).await.unwrap();
    assert!(!joindin.is_attending(conf).await.unwrap());

    // Stars: Joind.in answers a second raw star with 500; the client checks first.
    assert!(!joindin.has_starred(YEAR_TALK).await.unwrap());
    joindin.star(YEAR_TALK).await.unwrap();
    joindin
        .star(YEAR_TALK)
        .await
        .expect("starring twice is starred");
    assert!(joindin.has_starred(YEAR_TALK).await.unwrap());
    let talk = anonymous.talk(YEAR_TALK).await.unwrap().unwrap();
    assert_eq!(talk.starred_count, Some(1));
    joindin.unstar(YEAR_TALK).await.unwrap();
    assert!(!joindin.has_starred(YEAR_TALK).await.unwrap());

    // A private talk comment is read by its author, not by anyone else.
    let private = joindin
        .post_talk_comment(
            YEAR_TALK,
            &NewComment::new("Only for the speaker", 3).private(true),
        )
        .await
        .unwrap();
    let id = private.id.unwrap();
    assert!(anonymous.talk_comment(id).await.unwrap().is_none());
    assert!(joindin.talk_comment(id).await.unwrap().is_some());

    // Editing: the author, within 15 minutes.
    let edited = joindin.edit_talk_comment(id, "Only for you").await.unwrap();
    assert_eq!(edited.comment.as_deref(), Some("Only for you"));
    let speaker = signed_in(&emu, &fx.speaker_username, &fx.speaker_password).await;
    let err = speaker.edit_talk_comment(id, "Mine now").await.unwrap_err();
    assert!(
        matches!(&err, Error::Api { status: 403, message, .. } if message == "You are not the comment author"),
        "{err:?}"
    );
    emu.clock().advance(Duration::from_secs(16 * 60));
    let err = joindin.edit_talk_comment(id, "Too late").await.unwrap_err();
    assert!(
        matches!(&err, Error::Api { status: 400, message, .. } if message == "Cannot edit the comment after 15 minutes"),
        "{err:?}"
    );

    // Reporting answers 202 and sends nothing back.
    joindin.report_talk_comment(id).await.unwrap();
    let err = joindin.report_talk_comment(999).await.unwrap_err();
    assert!(matches!(err, Error::Api { status: 404, .. }), "{err:?}");
}

/// Keys whose value is an action, not a document: (key, method).
const ACTIONS: [(&str, &str); 3] = [
    ("reported_uri", "POST"),
    ("remove_track_uri", "DELETE"),
    ("approval_uri", "POST"),
];

/// Every `*_uri` (and paging link) in every answer, followed from the root: a document
/// link answers 2xx, anonymously and signed in; an action link answers its documented
/// refusal to a caller who may not act (401 anonymous, 403 for a user without the right).
#[tokio::test]
async fn every_link_in_every_answer_leads_somewhere() {
    let emu = emulator();
    let fx = emu.fixtures().clone();
    let token = emu
        .issue_token(&fx.username, &fx.client_id)
        .expect("a token for the test user");
    let http = reqwest::Client::new();
    let api = emu.api_base();
    let mut keys_seen: BTreeMap<String, usize> = BTreeMap::new();
    for signed_in in [false, true] {
        let mut queue: VecDeque<(String, String)> =
            VecDeque::from([("root".into(), format!("{api}/"))]);
        // Start from every list a user would open, too.
        queue.push_back(("users".into(), format!("{api}/users/{}", fx.user_id)));
        queue.push_back(("languages".into(), format!("{api}/languages")));
        queue.push_back(("talk_types".into(), format!("{api}/talk_types")));
        queue.push_back(("events".into(), format!("{api}/events/{BENELUX}/comments")));
        // Small pages, so that `next_page` and `prev_page` appear.
        queue.push_back(("events".into(), format!("{api}/events?resultsperpage=1")));
        let mut visited = BTreeSet::new();
        while let Some((key, link)) = queue.pop_front() {
            if !visited.insert((key.clone(), link.clone())) {
                continue;
            }
            assert!(visited.len() < 5_000, "the walk does not end");
            let method = ACTIONS
                .iter()
                .find(|(action, _)| *action == key)
                .map_or("GET", |(_, method)| method);
            let mut request = http.request(method.parse().unwrap(), &link);
            if signed_in {
                request = request.bearer_auth(&token);
            }
            let response = request.send().await.unwrap();
            let status = response.status().as_u16();
            if method != "GET" {
                let expected: &[u16] = if signed_in { &[202, 403] } else { &[401] };
                assert!(
                    expected.contains(&status),
                    "{method} {key} {link} (signed in: {signed_in}): {status}"
                );
                *keys_seen.entry(key).or_default() += 1;
                continue;
            }
            assert!(
                response.status().is_success(),
                "GET {key} {link} (signed in: {signed_in}): {status}"
            );
            *keys_seen.entry(key).or_default() += 1;
            let body = response.bytes().await.unwrap();
            if body.is_empty() {
                continue;
            }
            let document: Value = serde_json::from_slice(&body).unwrap();
            collect_links(&document, &api, &mut queue);
        }
    }
    let expected = [
        "uri",
        "verbose_uri",
        "comments_uri",
        "talks_uri",
        "tracks_uri",
        "attending_uri",
        "images_uri",
        "hosts_uri",
        "attendees_uri",
        "approval_uri",
        "starred_uri",
        "verbose_comments_uri",
        "event_uri",
        "speakers_uri",
        "track_uri",
        "remove_track_uri",
        "speaker_uri",
        "talk_uri",
        "talk_comments_uri",
        "reported_uri",
        "user_uri",
        "attended_events_uri",
        "hosted_events_uri",
        "comment_uri",
        "verbose_comment_uri",
        "event_comments_uri",
        "host_uri",
        "next_page",
        "prev_page",
        "this_page",
    ];
    let missing: Vec<&str> = expected
        .iter()
        .copied()
        .filter(|key| !keys_seen.contains_key(*key))
        .collect();
    assert!(
        missing.is_empty(),
        "never met: {missing:?}; met: {keys_seen:?}"
    );
}

/// Queues every link to the API in `value`: keys ending in `_uri`, `uri`, and the paging
/// links; the root document's named lists.
fn collect_links(value: &Value, api: &str, queue: &mut VecDeque<(String, String)>) {
    match value {
        Value::Object(map) => {
            for (key, item) in map {
                match item {
                    Value::String(link)
                        if link.starts_with(api)
                            && (key.ends_with("_uri")
                                || key == "uri"
                                || key.ends_with("_page")
                                || key.ends_with("events")
                                || key == "open-cfps") =>
                    {
                        queue.push_back((key.clone(), link.clone()));
                    }
                    _ => collect_links(item, api, queue),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|i| collect_links(i, api, queue)),
        _ => {}
    }
}
