//! JoinMeClient against the join.me emulator over real HTTP: every call, under the
//! switches where join.me's documentation and behaviour disagree, and its refusals.

use chrono::{DateTime, Duration as Span, SubsecRound as _, Utc};
use grantkit_core::{
    AccessToken, Error, GrantKind, MemoryTokenStore, RefreshToken, TokenManager, TokenSet,
};
use grantkit_emulator::{
    Fault, FaultRule, JoinMeEndpoint, JoinMeGrant, JoinMeQuirks, JoinMeRateLimit,
};
use grantkit_joinme::testing::JoinMeHarness;
use grantkit_joinme::{
    DEFAULT_TOKEN_LIFETIME, JoinMeClient, MeetingUpdate, NewMeeting, StartMeeting, ViewerMode,
};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

struct Fixture {
    harness: JoinMeHarness,
    joinme: JoinMeClient,
}

/// A grant for the seeded Pro user with `scopes`, stored in a manager, and its client.
/// `scopes` include `user_info`: the manager identifies the user by `GET /v1/user`.
async fn fixture(change: impl FnOnce(&mut JoinMeQuirks), scopes: &[&str]) -> Fixture {
    fixture_for(change, scopes, "grantkit@example.com").await
}

async fn fixture_for(
    change: impl FnOnce(&mut JoinMeQuirks),
    scopes: &[&str],
    email: &str,
) -> Fixture {
    let harness = JoinMeHarness::start("joinme[client]", change).expect("the emulator starts");
    let emulator = harness.emulator();
    let issued = emulator
        .issue_tokens(
            email,
            &emulator.fixtures().client_id,
            scopes,
            JoinMeGrant::Code,
        )
        .expect("a seeded user");
    let mut tokens = TokenSet::new(
        AccessToken::new(issued.access_token),
        GrantKind::AuthorizationCode,
    )
    .expiring_in(SystemTime::now(), DEFAULT_TOKEN_LIFETIME)
    .with_scopes(scopes.iter().copied());
    tokens.refresh_token = issued.refresh_token.map(RefreshToken::new);
    let provider = harness.joinme_provider();
    let manager = TokenManager::builder(provider.clone(), Arc::new(MemoryTokenStore::new()))
        .build()
        .unwrap();
    let key = manager
        .save_grant(tokens)
        .await
        .expect("identified and stored");
    let client = manager
        .authorized_client(reqwest::Client::new(), key)
        .with_retry(grantkit_core::RetryPolicy::none());
    let joinme = JoinMeClient::new(client, provider.endpoints().api_base.as_str()).unwrap();
    Fixture { harness, joinme }
}

/// A day from now, in whole seconds as join.me keeps times.
fn tomorrow() -> DateTime<Utc> {
    (Utc::now() + Span::days(1)).trunc_subsecs(0)
}

#[tokio::test]
async fn scheduling_accepts_200_or_201_and_deleting_204_or_an_empty_object() {
    for (schedule_status, empty_object) in [(201, false), (200, true)] {
        let f = fixture(
            |q| {
                q.schedule_status = schedule_status;
                q.delete_returns_empty_object = empty_object;
            },
            &["user_info", "scheduler"],
        )
        .await;
        let start = tomorrow();
        let meeting = f
            .joinme
            .schedule_meeting(&NewMeeting::new("Plan", start, start + Span::hours(1)))
            .await
            .expect("scheduled");
        assert!(meeting.meeting_id > 0);
        f.joinme
            .delete_meeting(meeting.meeting_id)
            .await
            .expect("deleted");
        assert_eq!(f.harness.emulator().meeting_count(), 0);
    }
}

#[tokio::test]
async fn requests_send_real_json_booleans() {
    // A server that refuses string booleans accepts everything the client sends.
    let f = fixture(
        |q| q.strict_booleans = true,
        &["user_info", "scheduler", "start_meeting"],
    )
    .await;
    let started = f
        .joinme
        .start_meeting(
            &StartMeeting::new(false)
                .with_viewer_mode(ViewerMode::Headless)
                .with_viewer_app_detection(false),
        )
        .await
        .expect("started");
    assert!(started.presenter_link.is_some());
    let start = tomorrow();
    let meeting = f
        .joinme
        .schedule_meeting(
            &NewMeeting::new("B", start, start + Span::hours(1)).with_personal_url(true),
        )
        .await
        .unwrap();
    assert_eq!(meeting.start_with_personal_url, Some(true));
    let updated = f
        .joinme
        .update_meeting(
            meeting.meeting_id,
            &MeetingUpdate {
                start_with_personal_url: Some(false),
                meeting_end: Some(start + Span::hours(2)),
                ..MeetingUpdate::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(updated.start_with_personal_url, Some(false));
    assert_eq!(updated.meeting_end, Some(start + Span::hours(2)));
    assert_eq!(updated.meeting_name.as_deref(), Some("B"));
}

#[tokio::test]
async fn the_list_is_upcoming_and_bounded_by_end_date() {
    let f = fixture(|_| {}, &["user_info", "scheduler"]).await;
    let soon = tomorrow();
    let later = soon + Span::days(7);
    for (name, start) in [("later", later), ("soon", soon)] {
        f.joinme
            .schedule_meeting(&NewMeeting::new(name, start, start + Span::hours(1)))
            .await
            .unwrap();
    }
    let all = f.joinme.meetings(None).await.unwrap();
    let names: Vec<_> = all
        .iter()
        .map(|m| m.meeting_name.as_deref().unwrap())
        .collect();
    assert_eq!(names, ["soon", "later"]);
    let bounded = f.joinme.meetings(Some(soon + Span::days(1))).await.unwrap();
    assert_eq!(bounded.len(), 1);
    assert!(
        f.joinme
            .meetings(Some(Utc::now()))
            .await
            .unwrap()
            .is_empty()
    );
}

#[tokio::test]
async fn a_missing_scope_is_forbidden_with_the_scope_whatever_the_status() {
    for status in [403, 401] {
        let f = fixture(|q| q.insufficient_scope_status = status, &["user_info"]).await;
        let err = f.joinme.meetings(None).await.unwrap_err();
        assert!(
            matches!(&err, Error::Forbidden { scope: Some(s) } if s == "scheduler"),
            "{status}: {err:?}"
        );
        let err = f
            .joinme
            .start_meeting(&StartMeeting::new(false))
            .await
            .unwrap_err();
        assert!(
            matches!(&err, Error::Forbidden { scope: Some(s) } if s == "start_meeting"),
            "{status}: {err:?}"
        );
        // The grant is untouched.
        f.joinme.user().await.expect("still valid");
        assert_eq!(f.harness.emulator().count(JoinMeEndpoint::Token), 0);
    }
}

#[tokio::test]
async fn refusals_carry_join_me_s_message() {
    let f = fixture(|_| {}, &["scheduler", "start_meeting", "user_info"]).await;
    let err = f.joinme.meeting(999).await.unwrap_err();
    assert!(
        matches!(&err, Error::Api { status: 404, message, .. } if message == "Meeting not found."),
        "{err:?}"
    );
    let err = f
        .joinme
        .start_scheduled_meeting(999, &StartMeeting::default())
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Api { status: 404, .. }), "{err:?}");
    // Refused before sending: join.me requires the personal-URL choice.
    assert!(matches!(
        f.joinme
            .start_meeting(&StartMeeting::default())
            .await
            .unwrap_err(),
        Error::Configuration { .. }
    ));
    let start = tomorrow();
    assert!(matches!(
        f.joinme
            .schedule_meeting(&NewMeeting::new("x", start, start - Span::hours(1)))
            .await
            .unwrap_err(),
        Error::Configuration { .. }
    ));
    // A validation error from join.me itself.
    let err = f
        .joinme
        .schedule_meeting(&NewMeeting::new(" ", start, start + Span::hours(1)))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, Error::Api { status: 400, message, .. } if message.contains("meetingName")),
        "{err:?}"
    );
}

#[tokio::test]
async fn a_free_user_has_no_conference_and_the_user_reads_with_201() {
    let f = fixture_for(
        |q| q.user_get_status = 201,
        &["user_info", "start_meeting"],
        "free@example.com",
    )
    .await;
    let user = f.joinme.user().await.unwrap();
    assert_eq!(user.subscription_type.as_deref(), Some("Free"));
    assert!(user.personal_url.is_none() && user.conference_settings.is_none());
    let err = f.joinme.conference_settings().await.unwrap_err();
    assert!(matches!(err, Error::Api { status: 404, .. }), "{err:?}");
    let started = f
        .joinme
        .start_meeting(&StartMeeting::new(true))
        .await
        .unwrap();
    let viewer = started.viewer_link.unwrap();
    assert!(
        viewer.rsplit('/').next().unwrap().len() == 9,
        "a free user's meeting runs on a 9-digit code: {viewer}"
    );
}

#[tokio::test]
async fn throttling_is_rate_limited_and_the_quota_exceeded() {
    for status in [403, 429] {
        let f = fixture(
            |q| {
                q.throttle_status = status;
                q.rate_limit = Some(JoinMeRateLimit {
                    qps: 1_000,
                    quota: 3,
                    quota_period: Duration::from_secs(86_400),
                });
            },
            &["user_info"],
        )
        .await;
        // identify() at save_grant used one request of the quota.
        f.joinme.user().await.unwrap();
        f.joinme.user().await.unwrap();
        let err = f.joinme.user().await.unwrap_err();
        assert!(
            matches!(err, Error::QuotaExceeded { .. }),
            "{status}: {err:?}"
        );
        assert!(!err.is_retryable());

        let f = fixture(|q| q.throttle_status = status, &["user_info"]).await;
        f.harness.emulator().inject(FaultRule::on(
            JoinMeEndpoint::Api,
            Fault::MasheryOverQps { retry_after_s: 2 },
        ));
        let err = f.joinme.user().await.unwrap_err();
        assert!(
            matches!(err, Error::RateLimited { retry_after: Some(d) } if d == Duration::from_secs(2)),
            "{status}: {err:?}"
        );
        f.joinme.user().await.expect("the next call goes through");
    }
}

#[tokio::test]
async fn faults_are_typed_errors() {
    let f = fixture(|_| {}, &["user_info"]).await;
    let emulator = f.harness.emulator();
    for (fault, check) in [
        (Fault::ServerError { status: 502 }, "unavailable"),
        (Fault::BackendError, "unavailable"),
        (Fault::MalformedJson, "bad"),
        (Fault::OversizedBody, "bad"),
        (Fault::TruncatedBody, "transport"),
        (Fault::ConnectionReset, "transport"),
    ] {
        emulator.inject(FaultRule::on(JoinMeEndpoint::Api, fault.clone()));
        let err = f.joinme.user().await.unwrap_err();
        let ok = match check {
            "unavailable" => matches!(err, Error::Unavailable { .. }),
            "bad" => matches!(err, Error::BadResponse { .. }),
            _ => matches!(err, Error::Transport { .. }),
        };
        assert!(ok, "{fault:?} gave {err:?}");
    }
    f.joinme.user().await.expect("and then it works");
}

#[tokio::test]
async fn calls_time_out() {
    let f = fixture(|_| {}, &["user_info"]).await;
    let joinme = f.joinme.clone().with_timeout(Duration::from_millis(300));
    f.harness.emulator().inject(FaultRule::on(
        JoinMeEndpoint::Api,
        Fault::Latency(Duration::from_secs(2)),
    ));
    let err = joinme.user().await.unwrap_err();
    assert!(matches!(err, Error::Timeout { .. }), "{err:?}");
}

#[tokio::test]
async fn the_quota_reset_of_the_plan_headers_reaches_quota_exceeded() {
    let f = fixture(
        |q| {
            q.plan_headers = true;
            q.rate_limit = Some(JoinMeRateLimit {
                qps: 1_000,
                quota: 2,
                quota_period: Duration::from_secs(86_400),
            });
        },
        &["user_info"],
    )
    .await;
    // Mashery's format, for the next midnight UTC (the period is a day).
    let next_midnight = || {
        let tomorrow = Utc::now().date_naive() + Span::days(1);
        tomorrow
            .and_hms_opt(0, 0, 0)
            .unwrap()
            .format("%A, %B %-d, %Y %-I:%M:%S %p GMT")
            .to_string()
    };
    let before = next_midnight();
    // identify() at save_grant used one request of the quota.
    f.joinme.user().await.unwrap();
    let err = f.joinme.user().await.unwrap_err();
    let after = next_midnight();
    let Error::QuotaExceeded { reset: Some(reset) } = &err else {
        panic!("expected the quota with its reset: {err:?}");
    };
    assert!(*reset == before || *reset == after, "{reset}");
    assert!(err.to_string().contains(reset.as_str()));
}

#[tokio::test]
async fn business_presenters_are_listed_read_and_invited() {
    let scopes = ["user_info", "provisioning"];
    // Off (the default), the API has no such path.
    let f = fixture(|_| {}, &scopes).await;
    let err = f.joinme.presenters().await.unwrap_err();
    assert!(matches!(err, Error::Api { status: 404, .. }), "{err:?}");

    let f = fixture(|q| q.presenters_api = true, &scopes).await;
    let seeded = f.joinme.presenters().await.unwrap();
    assert_eq!(seeded.len(), 1);
    assert_eq!(seeded[0].email.as_deref(), Some("presenter@example.com"));
    assert_eq!(seeded[0].is_invitation_accepted, Some(true));
    assert_eq!(f.joinme.presenter(seeded[0].id).await.unwrap(), seeded[0]);

    let invited = f.joinme.invite_presenter("new@example.com").await.unwrap();
    assert_eq!(invited.email.as_deref(), Some("new@example.com"));
    assert_eq!(invited.is_invitation_accepted, Some(false));
    assert_eq!(invited.is_seat_assigned, Some(false));
    assert_eq!(f.joinme.presenters().await.unwrap().len(), 2);
    assert_eq!(f.joinme.presenter(invited.id).await.unwrap(), invited);

    let err = f
        .joinme
        .invite_presenter("new@example.com")
        .await
        .unwrap_err();
    assert!(
        matches!(&err, Error::Api { status: 400, message, .. } if message.contains("already been invited")),
        "{err:?}"
    );
    let err = f.joinme.presenter(9_999).await.unwrap_err();
    assert!(matches!(err, Error::Api { status: 404, .. }), "{err:?}");
    let err = f
        .joinme
        .invite_presenter("not an address")
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Configuration { .. }), "{err:?}");

    // Without `provisioning` the token is refused, naming the scope.
    let f = fixture(|q| q.presenters_api = true, &["user_info"]).await;
    let err = f.joinme.presenters().await.unwrap_err();
    assert!(
        matches!(&err, Error::Forbidden { scope: Some(s) } if s == "provisioning"),
        "{err:?}"
    );
}

#[tokio::test]
async fn webhook_registration_is_reported_per_event() {
    use grantkit_joinme::{Webhook, Webhooks};
    let webhooks = Webhooks {
        meeting_start: Some(Webhook::new("https://hooks.example.com/start")),
        meeting_end: Some(Webhook::new("not a url")),
    };
    let request = StartMeeting::new(false).with_webhooks(webhooks);
    let f = fixture(|q| q.webhooks = true, &["user_info", "start_meeting"]).await;
    let started = f.joinme.start_meeting(&request).await.unwrap();
    let status = started.webhooks_status.expect("a status for the webhooks");
    assert!(status.is_registered("meeting.start"));
    assert!(!status.is_registered("meeting.end"));
    assert_eq!(
        status.status("meeting.end").as_deref(),
        Some("invalidCallbackUrl")
    );
    // A server that ignores webhooks sends no status.
    let f = fixture(|_| {}, &["user_info", "start_meeting"]).await;
    let started = f.joinme.start_meeting(&request).await.unwrap();
    assert_eq!(started.webhooks_status, None);
}
