//! join.me end to end: each flow through `TokenManager` with the memory store, against the
//! join.me emulator over real HTTP, and the stampedes the design promises, read from the
//! emulator's counters. Time is the tests' to move: the manager, the provider and the
//! emulator share one manual time line.

use chrono::{DateTime, Utc};
use futures::future::join_all;
use grantkit_conformance::Decision;
use grantkit_core::{
    Callback, Error, GrantKind, ManagerConfig, MemoryTokenStore, Provider, RedirectFlow,
    Revocation, TokenKey, TokenManager, TokenSet,
    clock::{Clock, ManualClock},
    flow::FlowKind,
};
use grantkit_emulator::{
    EmulatorClock, Fault, FaultRule, JoinMeEmulator, JoinMeEndpoint, JoinMeQuirks,
};
use grantkit_joinme::testing::{consent, provider_for};
use grantkit_joinme::{
    JoinMeClient, JoinMeProvider, MeetingUpdate, NewMeeting, Scope, StartMeeting,
};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

const DAY: Duration = Duration::from_secs(86_400);
const CALLERS: usize = 1_000;

/// An emulator, a provider and a manager on one manual clock.
struct JoinMe {
    emulator: JoinMeEmulator,
    provider: Arc<JoinMeProvider>,
    manager: TokenManager,
    clock: Arc<ManualClock>,
    browser: reqwest::Client,
    http: reqwest::Client,
}

impl JoinMe {
    fn start(change: impl FnOnce(&mut JoinMeQuirks)) -> Self {
        // Whole seconds: the emulator counts in seconds.
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs();
        let t0 = UNIX_EPOCH + Duration::from_secs(now);
        let emulator = JoinMeEmulator::builder()
            .clock(EmulatorClock::frozen_at(t0))
            .with_quirks(change)
            .start()
            .expect("the emulator starts");
        let clock = Arc::new(ManualClock::new(t0));
        let timeout = Duration::from_secs(10);
        let provider = Arc::new(
            provider_for(&emulator, |b| {
                b.clock(clock.clone() as Arc<dyn Clock>).timeout(timeout)
            })
            .build()
            .expect("a valid provider"),
        );
        let manager = TokenManager::builder(provider.clone(), Arc::new(MemoryTokenStore::new()))
            .clock(clock.clone())
            .config(ManagerConfig::default().with_refresh_jitter(Duration::ZERO))
            .build()
            .expect("a valid manager");
        let browser = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(10))
            .build()
            .unwrap();
        Self {
            emulator,
            provider,
            manager,
            clock,
            browser,
            http: reqwest::Client::new(),
        }
    }

    /// Moves the manager's, the provider's and the emulator's time forward together.
    fn advance(&self, by: Duration) {
        self.clock.advance(by);
        self.emulator.clock().advance(by);
    }

    fn now(&self) -> SystemTime {
        self.clock.now()
    }

    fn token_calls(&self) -> u64 {
        self.emulator.count(JoinMeEndpoint::Token)
    }

    fn flow(&self, kind: FlowKind) -> RedirectFlow {
        let redirect_uri = self.emulator.fixtures().redirect_uri.clone();
        let flow = match kind {
            FlowKind::Implicit => RedirectFlow::implicit(redirect_uri),
            _ => RedirectFlow::authorization_code(redirect_uri),
        };
        flow.with_scopes([Scope::UserInfo, Scope::Scheduler, Scope::StartMeeting])
    }

    /// The whole flow: begin, the user's consent in the browser, the callback.
    async fn authorize(&self, kind: FlowKind) -> TokenKey {
        let flow = self.flow(kind);
        let url = self
            .manager
            .start_authorization(&flow)
            .await
            .expect("begin");
        let callback = consent(
            &self.emulator,
            &self.browser,
            url.expose_secret(),
            Decision::Approve,
        )
        .await
        .expect("the user consents");
        self.manager
            .complete_authorization(&Callback::parse(&callback).unwrap())
            .await
            .expect("the flow completes")
    }

    async fn stored(&self, key: &TokenKey) -> TokenSet {
        self.manager
            .store()
            .get(key)
            .await
            .unwrap()
            .expect("a stored grant")
            .value
    }

    fn client(&self, key: &TokenKey) -> JoinMeClient {
        JoinMeClient::new(
            self.manager
                .authorized_client(self.http.clone(), key.clone()),
            self.provider.endpoints().api_base.as_str(),
        )
        .expect("a valid API base")
    }
}

fn utc(time: SystemTime) -> DateTime<Utc> {
    DateTime::<Utc>::from(time)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn code_flow_through_the_manager_and_every_api_call() {
    let jm = JoinMe::start(|_| {});
    let fixtures = jm.emulator.fixtures().clone();
    let t0 = jm.now();
    let key = jm.authorize(FlowKind::AuthorizationCode).await;
    assert_eq!(
        key,
        TokenKey::new("joinme", &fixtures.client_id, &fixtures.email)
    );
    assert_eq!(jm.token_calls(), 1, "one code exchange");
    let tokens = jm.stored(&key).await;
    assert_eq!(tokens.grant, GrantKind::AuthorizationCode);
    assert!(tokens.refresh_token.is_some());
    assert_eq!(tokens.token_type, "bearer");
    // join.me sends no expires_in: its documented 24 hours.
    assert_eq!(tokens.expires_at, Some(t0 + DAY));

    let joinme = jm.client(&key);
    let user = joinme.user().await.expect("the user");
    assert_eq!(user.email, fixtures.email);
    assert_eq!(user.full_name.as_deref(), Some("Grant Kit"));
    assert_eq!(user.personal_url.as_deref(), Some("grantkit"));
    assert_eq!(
        user.registration_date.map(|d| d.to_string()),
        Some("2014-03-22 20:45:00".to_owned())
    );
    let conference = joinme.conference_settings().await.expect("conference");
    assert_eq!(conference.conference_id.as_deref(), Some("123456789"));
    assert_eq!(user.conference_settings, Some(conference));

    let adhoc = joinme
        .start_meeting(&StartMeeting::new(true))
        .await
        .expect("an ad-hoc meeting");
    assert!(adhoc.viewer_link.as_deref().unwrap().ends_with("/grantkit"));
    let presenter = adhoc.presenter_link.as_ref().expect("a presenter link");
    assert!(!format!("{adhoc:?}").contains(presenter.expose_secret()));

    let start = utc(t0 + DAY);
    let end = start + chrono::Duration::hours(1);
    let meeting = joinme
        .schedule_meeting(
            &NewMeeting::new("Weekly sync", start, end).with_participants(["a@example.com"]),
        )
        .await
        .expect("scheduled");
    assert_eq!(meeting.meeting_name.as_deref(), Some("Weekly sync"));
    assert_eq!(meeting.meeting_start, Some(start));
    assert_eq!(meeting.participants, ["a@example.com"]);
    let listed = joinme.meetings(None).await.expect("the list");
    assert_eq!(listed, std::slice::from_ref(&meeting));
    assert!(
        joinme
            .meetings(Some(utc(t0)))
            .await
            .expect("the list up to now")
            .is_empty()
    );
    let fetched = joinme
        .meeting(meeting.meeting_id)
        .await
        .expect("the meeting");
    assert_eq!(fetched, meeting);
    let renamed = joinme
        .update_meeting(
            meeting.meeting_id,
            &MeetingUpdate {
                meeting_name: Some("Renamed".into()),
                ..MeetingUpdate::default()
            },
        )
        .await
        .expect("updated");
    assert_eq!(renamed.meeting_name.as_deref(), Some("Renamed"));
    assert_eq!(
        renamed.meeting_start,
        Some(start),
        "unset fields are unchanged"
    );
    assert_eq!(renamed.participants, ["a@example.com"]);
    let started = joinme
        .start_scheduled_meeting(meeting.meeting_id, &StartMeeting::default())
        .await
        .expect("the scheduled meeting starts");
    let viewer = started.viewer_link.expect("a viewer link");
    assert_eq!(
        joinme
            .meeting(meeting.meeting_id)
            .await
            .unwrap()
            .viewer_link,
        Some(viewer)
    );
    joinme
        .delete_meeting(meeting.meeting_id)
        .await
        .expect("deleted");
    assert_eq!(jm.emulator.meeting_count(), 0);
    let err = joinme.meeting(meeting.meeting_id).await.unwrap_err();
    assert!(
        matches!(&err, Error::Api { status: 404, message, .. } if message.contains("not found")),
        "{err:?}"
    );

    // A day later the manager refreshes before the call, once.
    jm.advance(DAY);
    joinme.user().await.expect("after the refresh");
    assert_eq!(jm.token_calls(), 2);
    let refreshed = jm.stored(&key).await;
    assert!(refreshed.access_token != tokens.access_token);
    assert!(
        refreshed.refresh_token == tokens.refresh_token,
        "join.me returned the same refresh token"
    );

    let logout = jm.manager.logout(&key).await.expect("logout");
    assert!(matches!(
        logout,
        grantkit_core::Logout::Deleted {
            remote: Revocation::AccessExpired
        }
    ));
    assert!(
        jm.manager
            .access_token(&key)
            .await
            .unwrap_err()
            .is_reauthorization_required()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn joinme_expired_implicit_token_requires_the_initial_flow() {
    // join.me's documentation: "Expired access token obtained through the implicit grant
    // cannot be refreshed. Once expiring an implicit grant access token, you will need to
    // send the user into the initial OAuth 2.0 workflow again."
    let jm = JoinMe::start(|_| {});
    let key = jm.authorize(FlowKind::Implicit).await;
    let tokens = jm.stored(&key).await;
    jm.client(&key).user().await.expect("the token works");

    jm.advance(DAY + Duration::from_secs(1));
    let err = jm.manager.access_token(&key).await.unwrap_err();
    assert!(err.is_reauthorization_required(), "{err:?}");
    let restart = err.restart().expect("what to start again").clone();
    assert_eq!(restart.flow, FlowKind::Implicit);
    assert_eq!(restart.scopes, tokens.scopes);
    assert_eq!(restart.key, key);
    assert!(
        jm.manager.accounts().await.unwrap().is_empty(),
        "the dead grant is deleted"
    );

    // The initial flow again, from what the error carried.
    let flow = restart
        .redirect_flow(jm.emulator.fixtures().redirect_uri.clone())
        .expect("a browser flow");
    let url = jm.manager.start_authorization(&flow).await.unwrap();
    let callback = consent(
        &jm.emulator,
        &jm.browser,
        url.expose_secret(),
        Decision::Approve,
    )
    .await
    .unwrap();
    let again = jm
        .manager
        .complete_authorization(&Callback::parse(&callback).unwrap())
        .await
        .unwrap();
    assert_eq!(again, key);
    jm.client(&key).user().await.expect("the new token works");
    assert_eq!(jm.token_calls(), 0, "no token endpoint for implicit grants");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn joinme_implicit_token_expired_by_expire_access_requires_the_initial_flow() {
    let jm = JoinMe::start(|q| q.expire_access_delay = Duration::from_secs(600));
    let key = jm.authorize(FlowKind::Implicit).await;
    let tokens = jm.stored(&key).await;
    let joinme = jm.client(&key);
    assert_eq!(
        jm.provider.revoke(&tokens).await.unwrap(),
        Revocation::AccessExpired
    );
    joinme
        .user()
        .await
        .expect("still valid while Expire Access propagates");
    jm.advance(Duration::from_secs(601));
    let err = joinme.user().await.unwrap_err();
    assert!(err.is_reauthorization_required(), "{err:?}");
    assert_eq!(err.restart().map(|r| r.flow), Some(FlowKind::Implicit));
    assert!(jm.manager.accounts().await.unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn implicit_flow_through_the_manager_then_opt_in_renewal() {
    let jm = JoinMe::start(|q| q.renew_authorization = true);
    let t0 = jm.now();
    let key = jm.authorize(FlowKind::Implicit).await;
    assert_eq!(key.account, jm.emulator.fixtures().email);
    let tokens = jm.stored(&key).await;
    assert_eq!(tokens.grant, GrantKind::Implicit);
    assert!(tokens.refresh_token.is_none());
    assert_eq!(tokens.expires_at, Some(t0 + DAY));
    assert_eq!(tokens.scopes, ["user_info", "scheduler", "start_meeting"]);
    let joinme = jm.client(&key);
    joinme
        .user()
        .await
        .expect("the API accepts the implicit token");

    // 24 hours later the token is stale and cannot be refreshed: the user renews it.
    jm.advance(DAY + Duration::from_secs(1));
    let Err(Error::RenewRequired { renew_url }) = jm.manager.access_token(&key).await else {
        panic!("an expired implicit token needs renewal");
    };
    let url = renew_url.expose_url().expect("a URL");
    assert_eq!(url.path(), "/api/public/v1/auth/renewauthorization");
    let pairs: Vec<(String, String)> = url.query_pairs().into_owned().collect();
    assert_eq!(
        pairs,
        [
            (
                "client_id".to_owned(),
                jm.emulator.fixtures().client_id.clone()
            ),
            (
                "access_token".to_owned(),
                tokens.access_token.expose_secret().to_owned()
            ),
        ]
    );
    let page = jm
        .browser
        .get(renew_url.expose_secret())
        .send()
        .await
        .unwrap();
    assert!(page.status().is_redirection());
    let callback = page.headers()["location"].to_str().unwrap().to_owned();
    assert!(
        callback.contains("isAuthorizationRenewed=true"),
        "{callback}"
    );
    let renewed = jm
        .manager
        .complete_renewal(&key, &Callback::parse(&callback).unwrap())
        .await
        .expect("the renewal completes");
    assert!(
        renewed.access_token == tokens.access_token,
        "the same token lives on"
    );
    assert_eq!(renewed.expires_at, Some(jm.now() + DAY));
    joinme.user().await.expect("the renewed token works");
    assert_eq!(
        jm.token_calls(),
        0,
        "the implicit flow never uses the token endpoint"
    );
}

/// Runs `CALLERS` API calls at once and returns their results.
async fn stampede(joinme: &JoinMeClient) -> Vec<grantkit_core::Result<grantkit_joinme::User>> {
    join_all((0..CALLERS).map(|_| {
        let joinme = joinme.clone();
        tokio::spawn(async move { joinme.user().await })
    }))
    .await
    .into_iter()
    .map(|joined| joined.expect("no caller panics"))
    .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn code_grant_stampede_on_a_token_the_api_calls_stale_refreshes_once() {
    let jm = JoinMe::start(|_| {});
    let key = jm.authorize(FlowKind::AuthorizationCode).await;
    let old = jm.stored(&key).await;
    let joinme = jm.client(&key);
    joinme.user().await.expect("warm: the token is cached");
    // The server has expired the token; the manager still thinks it fresh, so every
    // caller sends it, and every caller is told it is stale.
    assert!(jm.emulator.mark_stale(old.access_token.expose_secret()));
    let before = jm.token_calls();
    let api_before = jm.emulator.count(JoinMeEndpoint::Api);
    let results = stampede(&joinme).await;
    assert!(
        jm.emulator.count(JoinMeEndpoint::Api) - api_before >= CALLERS as u64,
        "every caller reached the API"
    );
    let failed: Vec<_> = results.iter().filter_map(|r| r.as_ref().err()).collect();
    assert!(
        failed.is_empty(),
        "{} callers failed, e.g. {:?}",
        failed.len(),
        failed[0]
    );
    assert_eq!(
        jm.token_calls(),
        before + 1,
        "{CALLERS} rejected calls, exactly one token-endpoint call"
    );
    assert!(jm.stored(&key).await.access_token != old.access_token);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn code_grant_stampede_on_an_expired_token_refreshes_once() {
    let jm = JoinMe::start(|_| {});
    let key = jm.authorize(FlowKind::AuthorizationCode).await;
    let old = jm.stored(&key).await;
    let joinme = jm.client(&key);
    joinme.user().await.expect("warm: the token is cached");
    // A day passes on both sides: the token has expired for the manager and the API.
    jm.advance(DAY + Duration::from_secs(1));
    let before = jm.token_calls();
    let results = stampede(&joinme).await;
    let failed: Vec<_> = results.iter().filter_map(|r| r.as_ref().err()).collect();
    assert!(
        failed.is_empty(),
        "{} callers failed, e.g. {:?}",
        failed.len(),
        failed[0]
    );
    assert_eq!(
        jm.token_calls(),
        before + 1,
        "{CALLERS} callers, exactly one token-endpoint call"
    );
    assert!(jm.stored(&key).await.access_token != old.access_token);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn implicit_stampede_on_a_stale_token_sends_every_caller_to_the_initial_flow() {
    let jm = JoinMe::start(|_| {});
    let key = jm.authorize(FlowKind::Implicit).await;
    let tokens = jm.stored(&key).await;
    let joinme = jm.client(&key);
    joinme.user().await.expect("warm: the token is cached");
    let before = jm.token_calls();
    assert!(jm.emulator.mark_stale(tokens.access_token.expose_secret()));
    for result in stampede(&joinme).await {
        let err = result.expect_err("the token is dead");
        assert!(err.is_reauthorization_required(), "{err:?}");
    }
    assert_eq!(jm.token_calls(), before, "no token-endpoint call");
    assert!(jm.manager.accounts().await.unwrap().is_empty(), "deleted");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn implicit_stampede_on_a_stale_token_asks_every_caller_to_renew_when_opted_in() {
    let jm = JoinMe::start(|q| q.renew_authorization = true);
    let key = jm.authorize(FlowKind::Implicit).await;
    let tokens = jm.stored(&key).await;
    let joinme = jm.client(&key);
    joinme.user().await.expect("warm: the token is cached");
    let before = jm.token_calls();
    let check = |results: Vec<grantkit_core::Result<grantkit_joinme::User>>| {
        for result in results {
            match result {
                Err(Error::RenewRequired { renew_url }) => {
                    let url = renew_url.expose_url().unwrap();
                    assert!(url.path().ends_with("/auth/renewauthorization"));
                    assert!(url.query_pairs().any(|(k, v)| {
                        k == "access_token" && v == tokens.access_token.expose_secret()
                    }));
                    let shown = format!(
                        "{:?} {}",
                        Error::RenewRequired {
                            renew_url: renew_url.clone()
                        },
                        Error::RenewRequired { renew_url }
                    );
                    assert!(!shown.contains(tokens.access_token.expose_secret()));
                }
                other => panic!("expected renew required, got {other:?}"),
            }
        }
    };

    // The API calls the token stale while the manager still thinks it fresh.
    assert!(jm.emulator.mark_stale(tokens.access_token.expose_secret()));
    check(stampede(&joinme).await);
    // And once the day has passed for the manager too.
    jm.advance(DAY + Duration::from_secs(1));
    check(stampede(&joinme).await);

    assert_eq!(jm.token_calls(), before, "no token-endpoint call");
    assert!(
        jm.stored(&key).await.access_token == tokens.access_token,
        "the grant is kept for its renewal"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn expire_access_works_after_its_propagation_delay_then_the_manager_refreshes() {
    let jm = JoinMe::start(|q| q.expire_access_delay = Duration::from_secs(600));
    let key = jm.authorize(FlowKind::AuthorizationCode).await;
    let old = jm.stored(&key).await;
    let joinme = jm.client(&key);
    assert_eq!(
        jm.provider.revoke(&old).await.expect("Expire Access"),
        Revocation::AccessExpired
    );
    let before = jm.token_calls();

    joinme.user().await.expect("the old token works at once");
    jm.advance(Duration::from_secs(599));
    joinme.user().await.expect("and until the delay has passed");
    assert_eq!(jm.token_calls(), before);
    assert!(jm.stored(&key).await.access_token == old.access_token);

    jm.advance(Duration::from_secs(2));
    joinme
        .user()
        .await
        .expect("after the delay the manager refreshes and replays");
    assert_eq!(jm.token_calls(), before + 1, "one refresh");
    let new = jm.stored(&key).await;
    assert!(new.access_token != old.access_token);
    assert!(
        new.refresh_token == old.refresh_token,
        "the refresh token survives Expire Access"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn no_secret_reaches_an_error_or_debug_output() {
    let jm = JoinMe::start(|_| {});
    let fixtures = jm.emulator.fixtures().clone();
    let key = jm.authorize(FlowKind::AuthorizationCode).await;
    let tokens = jm.stored(&key).await;
    let access = tokens.access_token.expose_secret().to_owned();
    let refresh = tokens
        .refresh_token
        .as_ref()
        .unwrap()
        .expose_secret()
        .to_owned();

    let mut shown = vec![
        format!("{:?}", jm.provider),
        format!("{:?}", jm.manager),
        format!("{:?}", jm.client(&key)),
        format!("{tokens:?}"),
    ];
    let mut show = |err: Error| shown.push(format!("{err} | {err:?}"));

    // A replayed code, a refused refresh token, a renew prompt, refusals by the API.
    let flow = jm.flow(FlowKind::AuthorizationCode);
    let url = jm.manager.start_authorization(&flow).await.unwrap();
    let callback = consent(
        &jm.emulator,
        &jm.browser,
        url.expose_secret(),
        Decision::Approve,
    )
    .await
    .unwrap();
    let code = Callback::parse(&callback).unwrap();
    let code = code.query.get("code").unwrap().to_owned();
    jm.manager
        .complete_authorization(&Callback::parse(&callback).unwrap())
        .await
        .unwrap();
    let replay = jm
        .provider
        .exchange(grantkit_core::provider::Grant::AuthorizationCode {
            code: grantkit_core::provider::AuthorizationCode::new(code.clone()),
            redirect_uri: fixtures.redirect_uri.clone(),
            pkce_verifier: None,
        })
        .await
        .unwrap_err();
    assert!(replay.is_invalid_grant(), "{replay}");
    show(replay);
    let implicit = TokenSet::new(tokens.access_token.clone(), GrantKind::Implicit);
    let renewing = provider_for(&jm.emulator, |b| b.renew_authorization(true))
        .build()
        .unwrap();
    let grantkit_core::provider::Renewal::Renew(renew_url) = renewing.renewal(&implicit) else {
        panic!("renewal is on");
    };
    show(Error::RenewRequired { renew_url });
    jm.emulator.revoke_refresh_token(&refresh);
    show(jm.provider.refresh(&tokens).await.unwrap_err());
    jm.emulator.revoke_access_token(&access);
    show(jm.provider.identify(&tokens).await.unwrap_err());
    // The grant stored by the second authorization, revoked too: the manager gives up.
    let current = jm.stored(&key).await;
    jm.emulator
        .revoke_access_token(current.access_token.expose_secret());
    jm.emulator
        .revoke_refresh_token(current.refresh_token.as_ref().unwrap().expose_secret());
    let err = jm.client(&key).user().await.unwrap_err();
    assert!(err.is_reauthorization_required(), "{err}");
    show(err);
    show(jm.provider.revoke(&tokens).await.unwrap_err());

    for text in &shown {
        for secret in [
            &access,
            &refresh,
            &fixtures.client_secret,
            &code,
            &current.access_token.expose_secret().to_owned(),
        ] {
            assert!(!text.contains(secret.as_str()), "a secret in: {text}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn reads_survive_503s_and_a_reset_and_a_meeting_is_scheduled_at_most_once() {
    let jm = JoinMe::start(|_| {});
    let key = jm.authorize(FlowKind::AuthorizationCode).await;
    let quick = grantkit_core::RetryPolicy::default()
        .with_backoff(Duration::from_millis(5), Duration::from_millis(20));
    let joinme = JoinMeClient::new(
        jm.manager
            .authorized_client(jm.http.clone(), key.clone())
            .with_retry(quick),
        jm.provider.endpoints().api_base.as_str(),
    )
    .unwrap();
    let sent = |method: &str| {
        jm.emulator
            .requests()
            .iter()
            .filter(|r| r.endpoint == JoinMeEndpoint::Api && r.method == method)
            .count()
    };
    let faults = |method: reqwest::Method| {
        jm.emulator.inject(
            FaultRule::on(
                JoinMeEndpoint::Api,
                Fault::ServiceUnavailable { retry_after_s: 0 },
            )
            .for_method(method.clone())
            .times(2),
        );
        jm.emulator
            .inject(FaultRule::on(JoinMeEndpoint::Api, Fault::ConnectionReset).for_method(method));
    };

    // Signing in read the user once already.
    let before = sent("GET");
    faults(reqwest::Method::GET);
    let user = joinme.user().await.expect("the read survives");
    assert_eq!(user.email, jm.emulator.fixtures().email);
    assert_eq!(
        sent("GET") - before,
        4,
        "two 503s, a reset, then the answer"
    );

    let start = utc(jm.now() + DAY);
    let meeting = NewMeeting::new("Retry", start, start + chrono::Duration::hours(1));
    faults(reqwest::Method::POST);
    for attempt in 1..=3 {
        let err = joinme.schedule_meeting(&meeting).await.unwrap_err();
        assert!(err.is_retryable(), "{err:?}");
        assert_eq!(sent("POST"), attempt, "sent once, not retried");
    }
    assert_eq!(jm.emulator.meeting_count(), 0, "nothing was scheduled");
    joinme.schedule_meeting(&meeting).await.expect("scheduled");
    assert_eq!(jm.emulator.meeting_count(), 1);
    assert_eq!(jm.token_calls(), 1, "no fault cost the token");
}
