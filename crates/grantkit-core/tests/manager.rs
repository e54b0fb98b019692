//! TokenManager behaviour against a mocked provider and the memory store.

mod support;

use grantkit_core::mock::MockTokenStore;
use grantkit_core::{
    Error, Logout, MemoryTokenStore, Revocation, SecretUrl, TokenManager, TokenStore,
    provider::{REVOCATION_PENDING, Renewal},
    store::{Lease, Precondition, Version, Versioned},
};
use std::sync::Arc;
use std::time::Duration;
use support::*;

const MINUTE: Duration = Duration::from_secs(60);

/// A `MockTokenStore` that declares leases and pending authorizations, like the memory
/// store; tests add the expectations they care about.
fn mock_store() -> MockTokenStore {
    let mut store = MockTokenStore::new();
    store.expect_capabilities().return_const(
        grantkit_core::store::StoreCapabilities::none()
            .with_leases(true)
            .with_pending_authorizations(true),
    );
    store
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn ten_thousand_callers_on_an_expired_token_cause_one_refresh() {
    let mut mock = mock_provider();
    let fresh_until = std::time::SystemTime::now() + 3 * MINUTE * 60;
    mock.expect_refresh()
        .times(1)
        .returning(move |_| Ok(tokens("new-access", Some("rt-2"), fresh_until)));
    let provider = Arc::new(Wrapped::new(mock).gated());
    let fx = fixture(provider.clone());
    fx.seed(&tokens("old-access", Some("rt-1"), fx.now() - MINUTE))
        .await;

    let barrier = Arc::new(tokio::sync::Barrier::new(10_001));
    let mut callers = Vec::with_capacity(10_000);
    for _ in 0..10_000 {
        let manager = fx.manager.clone();
        let barrier = barrier.clone();
        callers.push(tokio::spawn(async move {
            barrier.wait().await;
            manager.access_token(&key()).await
        }));
    }
    barrier.wait().await;
    // Let the callers pile up behind the one refresh before it may finish.
    eventually("the refresh has started", || async {
        provider.refresh_count() == 1
    })
    .await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    provider.open();

    for caller in callers {
        let tokens = caller.await.unwrap().expect("every caller gets a token");
        assert_eq!(tokens.access_token.expose_secret(), "new-access");
    }
    assert_eq!(provider.refresh_count(), 1);
    let stored = fx.store.get(&key()).await.unwrap().unwrap();
    assert_eq!(stored.value.refresh_token.unwrap().expose_secret(), "rt-2");
}

#[tokio::test]
async fn a_caller_that_gives_up_does_not_abandon_the_refresh() {
    let mut mock = mock_provider();
    let later = std::time::SystemTime::now() + 120 * MINUTE;
    mock.expect_refresh()
        .times(1)
        .returning(move |_| Ok(tokens("new-access", Some("rt-2"), later)));
    let provider = Arc::new(Wrapped::new(mock).gated());
    let fx = fixture(provider.clone());
    fx.seed(&tokens("old-access", Some("rt-1"), fx.now() - MINUTE))
        .await;

    let gave_up =
        tokio::time::timeout(Duration::from_millis(50), fx.manager.access_token(&key())).await;
    assert!(gave_up.is_err(), "the refresh is held at the gate");
    provider.open();

    eventually("the refreshed token is stored", || async {
        let stored = fx.store.get(&key()).await.unwrap().unwrap();
        stored.value.access_token.expose_secret() == "new-access"
    })
    .await;
    assert_eq!(provider.refresh_count(), 1);
}

#[tokio::test]
async fn a_token_is_refreshed_ahead_of_expiry_in_the_background() {
    let mut mock = mock_provider();
    let later = std::time::SystemTime::now() + 120 * MINUTE;
    mock.expect_refresh()
        .times(1)
        .returning(move |_| Ok(tokens("new-access", Some("rt-1"), later)));
    let provider = Arc::new(Wrapped::new(mock));
    let fx = fixture(provider.clone());
    fx.seed(&tokens("old-access", Some("rt-1"), fx.now() + 10 * MINUTE))
        .await;

    let first = fx.manager.access_token(&key()).await.unwrap();
    assert_eq!(first.access_token.expose_secret(), "old-access");
    assert_eq!(
        provider.refresh_count(),
        0,
        "fresh tokens are not refreshed"
    );

    // Just before the one-minute margin (the store is re-read: the cache age has passed)…
    fx.clock.advance(9 * MINUTE - Duration::from_secs(10));
    fx.manager.access_token(&key()).await.unwrap();
    assert_eq!(provider.refresh_count(), 0);
    // …then inside it: the current token is served at once and a refresh starts behind it.
    fx.clock.advance(Duration::from_secs(20));
    let during = fx.manager.access_token(&key()).await.unwrap();
    assert_eq!(during.access_token.expose_secret(), "old-access");
    eventually("the background refresh lands", || async {
        fx.manager
            .access_token(&key())
            .await
            .unwrap()
            .access_token
            .expose_secret()
            == "new-access"
    })
    .await;
    assert_eq!(provider.refresh_count(), 1);
}

#[tokio::test]
async fn fresh_tokens_are_served_from_memory_until_the_cache_age() {
    let mut store = mock_store();
    let stored = Versioned {
        value: tokens("access", None, std::time::SystemTime::now() + 600 * MINUTE),
        version: Version::from_u64(7),
    };
    // Two reads: the first call, and one more after the maximum cache age.
    store
        .expect_get()
        .times(2)
        .returning(move |_| Ok(Some(stored.clone())));
    let provider = Arc::new(mock_provider());
    let clock = Arc::new(grantkit_core::clock::ManualClock::starting_now());
    let manager = TokenManager::builder(provider, Arc::new(store))
        .clock(clock.clone())
        .build()
        .unwrap();
    for _ in 0..100 {
        manager.access_token(&key()).await.unwrap();
    }
    clock.advance(Duration::from_secs(31));
    for _ in 0..100 {
        manager.access_token(&key()).await.unwrap();
    }
}

#[tokio::test]
async fn a_token_deleted_elsewhere_is_noticed_after_the_cache_age() {
    let mut mock = mock_provider();
    mock.expect_refresh().never();
    let fx = fixture(Arc::new(mock));
    let mut forever = tokens("joindin-style", None, fx.now());
    forever.expires_at = None;
    fx.seed(&forever).await;
    fx.manager.access_token(&key()).await.unwrap();

    fx.store.delete(&key(), Precondition::Any).await.unwrap();
    assert!(
        fx.manager.access_token(&key()).await.is_ok(),
        "still cached"
    );
    fx.clock.advance(Duration::from_secs(31));
    let err = fx.manager.access_token(&key()).await.unwrap_err();
    assert!(err.is_reauthorization_required(), "{err}");
}

#[tokio::test]
async fn a_rotated_refresh_token_is_written_with_the_version_precondition() {
    let now = std::time::SystemTime::now();
    let base = Version::from_u64(41);
    let expired = Versioned {
        value: tokens("old-access", Some("rt-1"), now - MINUTE),
        version: base,
    };
    let mut store = mock_store();
    store
        .expect_get()
        .returning(move |_| Ok(Some(expired.clone())));
    store
        .expect_try_lease()
        .times(1)
        .returning(|key, _| Ok(Some(Lease::new_holder(key.clone()))));
    store.expect_renew_lease().returning(|_, _| Ok(()));
    store
        .expect_put()
        .withf(move |_, tokens, precondition| {
            *precondition == Precondition::Version(base)
                && tokens.refresh_token.as_ref().unwrap().expose_secret() == "rt-2"
        })
        .times(1)
        .returning(|_, _, _| Ok(Version::from_u64(42)));
    store.expect_release_lease().times(1).returning(|_| Ok(()));

    let mut provider = mock_provider();
    provider
        .expect_refresh()
        .times(1)
        .returning(move |_| Ok(tokens("new-access", Some("rt-2"), now + 60 * MINUTE)));
    let manager = TokenManager::builder(Arc::new(provider), Arc::new(store))
        .build()
        .unwrap();
    let tokens = manager.access_token(&key()).await.unwrap();
    assert_eq!(tokens.access_token.expose_secret(), "new-access");
}

#[tokio::test]
async fn a_refresh_without_a_new_refresh_token_keeps_the_old_one() {
    let mut mock = mock_provider();
    let later = std::time::SystemTime::now() + 120 * MINUTE;
    mock.expect_refresh()
        .returning(move |_| Ok(tokens("new-access", None, later)));
    let fx = fixture(Arc::new(mock));
    fx.seed(&tokens("old-access", Some("rt-keep"), fx.now() - MINUTE))
        .await;
    fx.manager.access_token(&key()).await.unwrap();
    let stored = fx.store.get(&key()).await.unwrap().unwrap();
    assert_eq!(
        stored.value.refresh_token.unwrap().expose_secret(),
        "rt-keep"
    );
}

#[tokio::test]
async fn invalid_grant_after_a_peers_rotation_recovers_from_the_store() {
    let store = Arc::new(MemoryTokenStore::new());
    let mut mock = mock_provider();
    mock.expect_refresh().never();
    let later = std::time::SystemTime::now() + 120 * MINUTE;
    let peer_store = store.clone();
    // While this process's refresh is in flight, a peer (which does not honour the lease)
    // rotates the grant and stores it; the provider then refuses our old refresh token.
    let provider = Arc::new(Wrapped::new(mock).with_hook(move || {
        let peer_store = peer_store.clone();
        async move {
            peer_store
                .put(
                    &key(),
                    &tokens("peer-access", Some("rt-peer"), later),
                    Precondition::Any,
                )
                .await
                .unwrap();
            Some(Err(Error::oauth("invalid_grant", None)))
        }
    }));
    let fx = fixture_with_store(provider.clone(), store);
    fx.seed(&tokens("old-access", Some("rt-1"), fx.now() - MINUTE))
        .await;

    let tokens = fx.manager.access_token(&key()).await.unwrap();
    assert_eq!(tokens.access_token.expose_secret(), "peer-access");
    let stored = fx.store.get(&key()).await.unwrap().unwrap();
    assert_eq!(
        stored.value.refresh_token.unwrap().expose_secret(),
        "rt-peer"
    );
    assert_eq!(provider.refresh_count(), 1);
}

#[tokio::test]
async fn invalid_grant_with_nothing_newer_deletes_the_grant_and_asks_to_reauthorize() {
    let mut mock = mock_provider();
    mock.expect_refresh()
        .times(1)
        .returning(|_| Err(Error::oauth("invalid_grant", Some("revoked".into()))));
    let fx = fixture(Arc::new(mock));
    fx.seed(&tokens("old-access", Some("rt-1"), fx.now() - MINUTE))
        .await;
    let err = fx.manager.access_token(&key()).await.unwrap_err();
    assert!(err.is_reauthorization_required(), "{err}");
    assert!(
        fx.store.get(&key()).await.unwrap().is_none(),
        "the dead grant is deleted"
    );
    // And it stays that way: no loop, no second refresh.
    let err = fx.manager.access_token(&key()).await.unwrap_err();
    assert!(err.is_reauthorization_required(), "{err}");
}

#[tokio::test]
async fn a_transient_failure_keeps_a_still_valid_token() {
    let mut mock = mock_provider();
    let mut calls = 0;
    let later = std::time::SystemTime::now() + 120 * MINUTE;
    mock.expect_refresh().times(2).returning(move |_| {
        calls += 1;
        if calls == 1 {
            Err(Error::unavailable(503, None))
        } else {
            Ok(tokens("new-access", Some("rt-1"), later))
        }
    });
    let provider = Arc::new(Wrapped::new(mock));
    let fx = fixture(provider.clone());
    fx.seed(&tokens(
        "old-access",
        Some("rt-1"),
        fx.now() + 30 * Duration::from_secs(1),
    ))
    .await;

    // Due (inside the margin) but valid: served, refresh fails in the background.
    let served = fx.manager.access_token(&key()).await.unwrap();
    assert_eq!(served.access_token.expose_secret(), "old-access");
    eventually("the failed refresh ran", || async {
        provider.refresh_count() == 1
    })
    .await;
    let again = fx.manager.access_token(&key()).await.unwrap();
    assert_eq!(again.access_token.expose_secret(), "old-access");
    assert_eq!(provider.refresh_count(), 1, "no retry before the backoff");
    let stored = fx.store.get(&key()).await.unwrap().unwrap();
    assert_eq!(stored.value.access_token.expose_secret(), "old-access");

    // After the backoff it tries again and succeeds.
    fx.clock.advance(Duration::from_secs(6));
    eventually("the retried refresh lands", || async {
        fx.manager
            .access_token(&key())
            .await
            .unwrap()
            .access_token
            .expose_secret()
            == "new-access"
    })
    .await;
}

#[tokio::test]
async fn a_transient_failure_on_an_expired_token_is_a_retryable_error_and_keeps_the_grant() {
    let mut mock = mock_provider();
    mock.expect_refresh()
        .returning(|_| Err(Error::unavailable(502, None)));
    let fx = fixture(Arc::new(mock));
    fx.seed(&tokens("old-access", Some("rt-1"), fx.now() - MINUTE))
        .await;
    let err = fx.manager.access_token(&key()).await.unwrap_err();
    assert!(err.is_retryable(), "{err}");
    assert!(fx.store.get(&key()).await.unwrap().is_some());
}

#[tokio::test]
async fn a_token_that_cannot_refresh_asks_for_renewal_without_calling_the_provider() {
    let mut mock = bare_mock_provider();
    mock.expect_renewal().returning(|_| {
        Renewal::Renew(SecretUrl::new(
            "https://renew.example/?access_token=implicit-token",
        ))
    });
    mock.expect_refresh().never();
    let fx = fixture(Arc::new(mock));
    fx.seed(&tokens("implicit-token", None, fx.now() - MINUTE))
        .await;
    let err = fx.manager.access_token(&key()).await.unwrap_err();
    match &err {
        Error::RenewRequired { renew_url } => {
            assert!(renew_url.expose_secret().contains("implicit-token"));
        }
        other => panic!("expected renew required, got {other}"),
    }
    assert!(!err.to_string().contains("implicit-token"));
    assert!(!format!("{err:?}").contains("implicit-token"));
}

#[tokio::test]
async fn token_rejected_refreshes_only_the_current_token() {
    let mut mock = mock_provider();
    let later = std::time::SystemTime::now() + 120 * MINUTE;
    mock.expect_refresh()
        .times(1)
        .returning(move |_| Ok(tokens("new-access", Some("rt-2"), later)));
    let provider = Arc::new(Wrapped::new(mock));
    let fx = fixture(provider.clone());
    fx.seed(&tokens("old-access", Some("rt-1"), fx.now() + 600 * MINUTE))
        .await;
    let old = fx.manager.access_token(&key()).await.unwrap();

    let first = fx
        .manager
        .token_rejected(&key(), &old.access_token, false)
        .await
        .unwrap();
    assert_eq!(first.access_token.expose_secret(), "new-access");
    // A late failure of a request sent with the old token does not refresh again.
    let late = fx
        .manager
        .token_rejected(&key(), &old.access_token, false)
        .await
        .unwrap();
    assert_eq!(late.access_token.expose_secret(), "new-access");
    assert_eq!(provider.refresh_count(), 1);
}

/// Some servers sign identical tokens within one second, others answer a refresh with the
/// still-valid access token: "replaced" is the store's new version, not a new string.
#[tokio::test]
async fn a_refresh_that_reissues_the_same_access_token_is_made_once() {
    let mut mock = mock_provider();
    let later = std::time::SystemTime::now() + 120 * MINUTE;
    let rotation = std::sync::atomic::AtomicUsize::new(1);
    mock.expect_refresh().times(2).returning(move |_| {
        let n = rotation.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
        Ok(tokens("same-access", Some(&format!("rt-{n}")), later))
    });
    let provider = Arc::new(Wrapped::new(mock));
    let fx = fixture(provider.clone());
    fx.seed(&tokens(
        "same-access",
        Some("rt-1"),
        fx.now() + 600 * MINUTE,
    ))
    .await;

    let forced = fx
        .manager
        .refresh(&key())
        .await
        .expect("one forced refresh");
    assert_eq!(forced.access_token.expose_secret(), "same-access");
    assert_eq!(provider.refresh_count(), 1, "a forced refresh is made once");
    let stored = fx.store.get(&key()).await.unwrap().unwrap();
    assert_eq!(stored.value.refresh_token.unwrap().expose_secret(), "rt-2");

    fx.clock.advance(Duration::from_secs(1));
    let rejected = fx
        .manager
        .token_rejected(&key(), &forced.access_token, false)
        .await
        .expect("one refresh for a rejected token");
    assert_eq!(rejected.access_token.expose_secret(), "same-access");
    assert_eq!(
        provider.refresh_count(),
        2,
        "a rejection causes one refresh"
    );
    let stored = fx.store.get(&key()).await.unwrap().unwrap();
    assert_eq!(stored.value.refresh_token.unwrap().expose_secret(), "rt-3");
}

#[tokio::test]
async fn an_invalid_token_without_refresh_is_deleted_and_every_caller_must_reauthorize() {
    let mut mock = mock_provider();
    mock.expect_refresh().never();
    let fx = fixture(Arc::new(mock));
    let mut forever = tokens("deleted-on-server", None, fx.now());
    forever.expires_at = None;
    fx.seed(&forever).await;
    let current = fx.manager.access_token(&key()).await.unwrap();

    let mut callers = Vec::new();
    for _ in 0..100 {
        let manager = fx.manager.clone();
        let rejected = current.access_token.clone();
        callers.push(tokio::spawn(async move {
            manager.token_rejected(&key(), &rejected, true).await
        }));
    }
    for caller in callers {
        let err = caller.await.unwrap().unwrap_err();
        assert!(err.is_reauthorization_required(), "{err}");
    }
    assert!(fx.store.get(&key()).await.unwrap().is_none());
}

#[tokio::test]
async fn a_renewal_that_does_not_revive_the_token_ends_the_grant() {
    let mut mock = bare_mock_provider();
    mock.expect_renewal()
        .returning(|_| Renewal::Renew(SecretUrl::new("https://renew.example/?access_token=t")));
    mock.expect_complete_renewal()
        .times(1)
        .returning(|_, _, _| Err(Error::reauthorize("still expired")));
    let fx = fixture(Arc::new(mock));
    let mut implicit = tokens("implicit-token", None, fx.now() - MINUTE);
    implicit.grant = grantkit_core::GrantKind::Implicit;
    fx.seed(&implicit).await;
    let err = fx
        .manager
        .complete_renewal(
            &key(),
            &grantkit_core::Callback::parse("/cb?renewed=1").unwrap(),
        )
        .await
        .unwrap_err();
    assert!(err.is_reauthorization_required(), "{err}");
    assert_eq!(
        err.restart().map(|r| r.flow),
        Some(grantkit_core::flow::FlowKind::Implicit)
    );
    assert!(fx.store.get(&key()).await.unwrap().is_none(), "deleted");
}

#[tokio::test]
async fn a_store_outage_after_the_refresh_keeps_the_new_token_and_saves_it_later() {
    // The provider has committed the rotation; losing the new refresh token would lose the
    // grant. The store refuses the write, so the token is served from memory and written
    // on a later attempt.
    let now = std::time::SystemTime::now();
    let base = Version::from_u64(1);
    let expired = Versioned {
        value: tokens("old-access", Some("rt-1"), now - MINUTE),
        version: base,
    };
    let mut store = mock_store();
    store
        .expect_get()
        .returning(move |_| Ok(Some(expired.clone())));
    store
        .expect_try_lease()
        .returning(|key, _| Ok(Some(Lease::new_holder(key.clone()))));
    store.expect_renew_lease().returning(|_, _| Ok(()));
    store.expect_release_lease().returning(|_| Ok(()));
    store.expect_get_many().never();
    let mut puts = 0;
    store
        .expect_put()
        .times(5)
        .returning(move |_, tokens, precondition| {
            assert_eq!(precondition, Precondition::Version(base));
            assert_eq!(
                tokens.refresh_token.as_ref().unwrap().expose_secret(),
                "rt-2"
            );
            puts += 1;
            if puts <= 4 {
                Err(Error::Store {
                    message: "connection refused".into(),
                    retryable: true,
                    source: None,
                })
            } else {
                Ok(Version::from_u64(2))
            }
        });
    let mut provider = mock_provider();
    provider
        .expect_refresh()
        .times(1)
        .returning(move |_| Ok(tokens("new-access", Some("rt-2"), now + 600 * MINUTE)));
    let clock = Arc::new(grantkit_core::clock::ManualClock::new(now));
    let manager = TokenManager::builder(Arc::new(provider), Arc::new(store))
        .clock(clock.clone())
        .build()
        .unwrap();
    let tokens = manager.access_token(&key()).await.unwrap();
    assert_eq!(tokens.access_token.expose_secret(), "new-access");
    // After the backoff the unsaved token is old, yet a warm-up must not replace it with
    // what the store holds: its refresh token is the only live one.
    clock.advance(Duration::from_secs(6));
    assert_eq!(manager.warm(&[key()]).await.unwrap(), 0);
    // The next call writes the kept token (the fifth put).
    let tokens = manager.access_token(&key()).await.unwrap();
    assert_eq!(tokens.access_token.expose_secret(), "new-access");
}

#[tokio::test]
async fn logout_revokes_where_possible_and_deletes_locally() {
    let mut mock = mock_provider();
    mock.expect_revoke()
        .times(1)
        .returning(|_| Ok(grantkit_core::Revocation::Revoked));
    let fx = fixture(Arc::new(mock));
    fx.seed(&tokens("access", Some("rt"), fx.now() + 60 * MINUTE))
        .await;
    fx.manager.access_token(&key()).await.unwrap();
    let logout = fx.manager.logout(&key()).await.unwrap();
    assert!(
        matches!(
            logout,
            Logout::Deleted {
                remote: Revocation::Revoked
            }
        ),
        "{logout}"
    );
    assert!(fx.store.get(&key()).await.unwrap().is_none());
    assert!(
        fx.manager
            .access_token(&key())
            .await
            .unwrap_err()
            .is_reauthorization_required()
    );
}

#[tokio::test]
async fn logout_keeps_an_unrevoked_grant_unused_until_a_later_logout_revokes_it() {
    let mut mock = mock_provider();
    let attempts = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let seen = attempts.clone();
    mock.expect_revoke().returning(move |_| {
        match seen.fetch_add(1, std::sync::atomic::Ordering::SeqCst) {
            0 => Err(Error::unavailable(503, None)),
            1 => Err(Error::Timeout {
                what: "revocation".into(),
            }),
            _ => Ok(Revocation::Revoked),
        }
    });
    mock.expect_refresh().never();
    let fx = fixture(Arc::new(mock));
    fx.seed(&tokens("access", Some("rt"), fx.now() + 60 * MINUTE))
        .await;
    fx.manager.access_token(&key()).await.unwrap();

    let logout = fx.manager.logout(&key()).await.unwrap();
    assert!(
        matches!(logout, Logout::RevocationPending { .. }),
        "{logout}"
    );
    assert!(!logout.is_complete());
    let kept = fx
        .store
        .get(&key())
        .await
        .unwrap()
        .expect("kept for revocation");
    assert!(kept.value.extras.contains_key(REVOCATION_PENDING));
    let err = fx.manager.access_token(&key()).await.unwrap_err();
    assert!(err.is_reauthorization_required(), "no longer served: {err}");
    let err = fx.manager.refresh(&key()).await.unwrap_err();
    assert!(err.is_reauthorization_required(), "never refreshed: {err}");

    // A manager starting later finishes the logout.
    let later = TokenManager::builder(fx.manager.provider().clone(), fx.store.clone())
        .build()
        .unwrap();
    let finished = later.finish_logouts().await.unwrap();
    assert_eq!(finished.len(), 1);
    assert!(matches!(finished[0].1, Logout::RevocationPending { .. }));
    let finished = later.finish_logouts().await.unwrap();
    assert!(matches!(
        finished.as_slice(),
        [(
            _,
            Logout::Deleted {
                remote: Revocation::Revoked
            }
        )]
    ));
    assert!(fx.store.get(&key()).await.unwrap().is_none());
    assert_eq!(attempts.load(std::sync::atomic::Ordering::SeqCst), 3);
}

#[tokio::test]
async fn a_forced_logout_deletes_an_unrevoked_grant_and_says_so() {
    let mut mock = mock_provider();
    mock.expect_revoke()
        .returning(|_| Err(Error::unavailable(503, None)));
    let fx = fixture(Arc::new(mock));
    fx.seed(&tokens("access", Some("rt"), fx.now() + 60 * MINUTE))
        .await;
    let logout = fx.manager.force_logout(&key()).await.unwrap();
    assert!(
        matches!(logout, Logout::DeletedUnrevoked { .. }),
        "{logout}"
    );
    assert!(logout.to_string().contains("may stay live"), "{logout}");
    assert!(fx.store.get(&key()).await.unwrap().is_none());
    assert!(matches!(
        fx.manager.logout(&key()).await.unwrap(),
        Logout::NotStored
    ));
}

#[test]
fn a_lease_shorter_than_the_provider_timeout_is_refused() {
    let provider = Arc::new(mock_provider());
    let err = TokenManager::builder(provider, Arc::new(MemoryTokenStore::new()))
        .config(grantkit_core::ManagerConfig::default().with_lease_ttl(Duration::from_secs(5)))
        .build()
        .unwrap_err();
    assert!(matches!(err, Error::Configuration { .. }), "{err}");
}

#[tokio::test]
async fn asking_to_refresh_a_token_that_cannot_refresh_is_unsupported_and_keeps_it() {
    let mut mock = mock_provider();
    mock.expect_refresh().never();
    let fx = fixture(Arc::new(mock));
    let mut forever = tokens("password-grant", None, fx.now());
    forever.expires_at = None;
    fx.seed(&forever).await;
    let err = fx.manager.refresh(&key()).await.unwrap_err();
    assert!(matches!(err, Error::Unsupported { .. }), "{err}");
    assert!(
        fx.store.get(&key()).await.unwrap().is_some(),
        "nothing is deleted"
    );
    assert!(fx.manager.access_token(&key()).await.is_ok());
}

#[tokio::test]
async fn a_peer_rotation_that_is_also_expired_is_refreshed_once_more() {
    // Our refresh token was rotated by a peer whose own new token has expired meanwhile:
    // the manager refreshes again with the peer's refresh token instead of giving up.
    let store = Arc::new(MemoryTokenStore::new());
    let mut mock = mock_provider();
    let later = std::time::SystemTime::now() + 120 * MINUTE;
    mock.expect_refresh()
        .withf(|t| t.refresh_token.as_ref().unwrap().expose_secret() == "rt-peer")
        .times(1)
        .returning(move |_| Ok(tokens("final-access", Some("rt-final"), later)));
    let peer_store = store.clone();
    let calls = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let hook_calls = calls.clone();
    let provider = Arc::new(Wrapped::new(mock).with_hook(move || {
        let peer_store = peer_store.clone();
        let first = hook_calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst) == 0;
        async move {
            if !first {
                return None;
            }
            let stale = std::time::SystemTime::now() - MINUTE;
            peer_store
                .put(
                    &key(),
                    &tokens("peer-access", Some("rt-peer"), stale),
                    Precondition::Any,
                )
                .await
                .unwrap();
            Some(Err(Error::oauth("invalid_grant", None)))
        }
    }));
    let fx = fixture_with_store(provider.clone(), store);
    fx.seed(&tokens("old-access", Some("rt-1"), fx.now() - MINUTE))
        .await;
    let tokens = fx.manager.access_token(&key()).await.unwrap();
    assert_eq!(tokens.access_token.expose_secret(), "final-access");
    assert_eq!(provider.refresh_count(), 2);
}

#[tokio::test]
async fn a_token_that_lives_shorter_than_the_margin_is_not_refreshed_without_end() {
    let mut mock = mock_provider();
    mock.expect_refresh().returning(|_| {
        let now = std::time::SystemTime::now();
        Ok(tokens("short", Some("rt"), now).expiring_in(now, Duration::from_secs(20)))
    });
    let provider = Arc::new(Wrapped::new(mock));
    let fx = fixture(provider.clone());
    fx.seed(&tokens("old", Some("rt"), fx.now() - MINUTE)).await;
    fx.manager.access_token(&key()).await.unwrap();
    assert_eq!(provider.refresh_count(), 1);
    // A 20-second token with a one-minute margin: due only half-way through its life.
    for _ in 0..50 {
        fx.manager.access_token(&key()).await.unwrap();
        tokio::task::yield_now().await;
    }
    assert_eq!(
        provider.refresh_count(),
        1,
        "a fresh short-lived token was refreshed again"
    );
}

#[tokio::test]
async fn a_refresh_with_an_unknown_outcome_is_never_replayed_automatically() {
    // The provider rotates refresh tokens: a refresh that may have been committed without
    // its answer arriving is not sent again by the manager; the current token is served
    // until it expires, then the caller must decide.
    let mut mock = mock_provider();
    let mut calls = 0;
    let later = std::time::SystemTime::now() + 600 * MINUTE;
    mock.expect_refresh().returning(move |_| {
        calls += 1;
        if calls == 1 {
            Err(Error::Timeout {
                what: "refresh".into(),
            })
        } else {
            Ok(tokens("new-access", Some("rt-2"), later))
        }
    });
    let provider = Arc::new(Wrapped::new(mock));
    let fx = fixture(provider.clone());
    fx.seed(&tokens(
        "old-access",
        Some("rt-1"),
        fx.now() + 30 * Duration::from_secs(1),
    ))
    .await;

    let served = fx.manager.access_token(&key()).await.unwrap();
    assert_eq!(served.access_token.expose_secret(), "old-access");
    eventually("the refresh ran", || async {
        provider.refresh_count() == 1
    })
    .await;
    fx.clock.advance(Duration::from_secs(20));
    for _ in 0..10 {
        let served = fx.manager.access_token(&key()).await.unwrap();
        assert_eq!(served.access_token.expose_secret(), "old-access");
        tokio::task::yield_now().await;
    }
    assert_eq!(provider.refresh_count(), 1, "the refresh was replayed");
    let stored = fx.store.get(&key()).await.unwrap().unwrap();
    assert!(
        stored
            .value
            .extras
            .contains_key(grantkit_core::provider::REFRESH_OUTCOME_UNKNOWN)
    );

    fx.clock.advance(Duration::from_secs(20));
    let err = fx.manager.access_token(&key()).await.unwrap_err();
    assert!(err.is_reauthorization_required(), "{err}");
    assert_eq!(provider.refresh_count(), 1);
    assert!(
        fx.store.get(&key()).await.unwrap().is_some(),
        "the grant is kept"
    );

    // The caller may choose to try once more.
    let tokens = fx.manager.refresh(&key()).await.unwrap();
    assert_eq!(tokens.access_token.expose_secret(), "new-access");
    let stored = fx.store.get(&key()).await.unwrap().unwrap();
    assert!(
        !stored
            .value
            .extras
            .contains_key(grantkit_core::provider::REFRESH_OUTCOME_UNKNOWN)
    );
}

#[tokio::test]
async fn a_panicking_refresh_neither_blocks_the_key_nor_keeps_the_lease() {
    let mut mock = mock_provider();
    let later = std::time::SystemTime::now() + 600 * MINUTE;
    mock.expect_refresh()
        .times(1)
        .returning(move |_| Ok(tokens("new-access", Some("rt-2"), later)));
    // The panic comes from a hook in front of the mock, so the mock itself stays usable.
    let panicked = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flag = panicked.clone();
    let mock = Wrapped::new(mock).with_hook(move || {
        let first = !flag.swap(true, std::sync::atomic::Ordering::SeqCst);
        async move {
            assert!(!first, "a provider bug");
            None
        }
    });
    let fx = fixture(Arc::new(mock));
    fx.seed(&tokens("old-access", Some("rt-1"), fx.now() - MINUTE))
        .await;
    let err = fx.manager.access_token(&key()).await.unwrap_err();
    assert!(matches!(err, Error::Internal { .. }), "{err}");
    assert!(!err.to_string().contains("a provider bug"));
    eventually("the lease is released", || async {
        match fx
            .store
            .try_lease(&key(), Duration::from_secs(1))
            .await
            .unwrap()
        {
            Some(lease) => {
                fx.store.release_lease(&lease).await.unwrap();
                true
            }
            None => false,
        }
    })
    .await;
    let tokens = fx.manager.access_token(&key()).await.unwrap();
    assert_eq!(tokens.access_token.expose_secret(), "new-access");
}

#[tokio::test]
async fn a_refreshed_token_the_store_never_took_is_refreshed_from_memory_not_from_the_store() {
    // The store keeps refusing writes; the stored record still has the spent refresh token.
    // When the kept token expires, the next refresh must use the live refresh token.
    let now = std::time::SystemTime::now();
    let stored = Versioned {
        value: tokens("old-access", Some("rt-1"), now - MINUTE),
        version: Version::from_u64(1),
    };
    let mut store = mock_store();
    store
        .expect_get()
        .returning(move |_| Ok(Some(stored.clone())));
    store
        .expect_try_lease()
        .returning(|key, _| Ok(Some(Lease::new_holder(key.clone()))));
    store.expect_renew_lease().returning(|_, _| Ok(()));
    store.expect_release_lease().returning(|_| Ok(()));
    store.expect_put().returning(|_, _, _| {
        Err(Error::Store {
            message: "read-only".into(),
            retryable: false,
            source: None,
        })
    });
    let mut provider = mock_provider();
    provider
        .expect_refresh()
        .withf(|t| t.refresh_token.as_ref().unwrap().expose_secret() == "rt-1")
        .times(1)
        .returning(move |_| Ok(tokens("access-2", Some("rt-2"), now + MINUTE * 10)));
    provider
        .expect_refresh()
        .withf(|t| t.refresh_token.as_ref().unwrap().expose_secret() == "rt-2")
        .times(1)
        .returning(move |_| Ok(tokens("access-3", Some("rt-3"), now + MINUTE * 60)));
    let clock = Arc::new(grantkit_core::clock::ManualClock::new(now));
    let manager = TokenManager::builder(Arc::new(provider), Arc::new(store))
        .clock(clock.clone())
        .build()
        .unwrap();
    let first = manager.access_token(&key()).await.unwrap();
    assert_eq!(first.access_token.expose_secret(), "access-2");
    clock.advance(MINUTE * 11);
    let second = manager.access_token(&key()).await.unwrap();
    assert_eq!(second.access_token.expose_secret(), "access-3");
}

/// A store that keeps token sets and nothing else: no leases, no pending authorizations.
#[derive(Debug, Default)]
struct TokenSetsOnly(MemoryTokenStore);

#[async_trait::async_trait]
impl TokenStore for TokenSetsOnly {
    fn capabilities(&self) -> grantkit_core::store::StoreCapabilities {
        grantkit_core::store::StoreCapabilities::none()
    }
    async fn get(
        &self,
        key: &grantkit_core::TokenKey,
    ) -> grantkit_core::Result<Option<Versioned<grantkit_core::TokenSet>>> {
        self.0.get(key).await
    }
    async fn put(
        &self,
        key: &grantkit_core::TokenKey,
        tokens: &grantkit_core::TokenSet,
        precondition: Precondition,
    ) -> grantkit_core::Result<Version> {
        self.0.put(key, tokens, precondition).await
    }
    async fn delete(
        &self,
        key: &grantkit_core::TokenKey,
        precondition: Precondition,
    ) -> grantkit_core::Result<bool> {
        self.0.delete(key, precondition).await
    }
    async fn list(
        &self,
        filter: &grantkit_core::store::KeyFilter,
    ) -> grantkit_core::Result<Vec<grantkit_core::TokenKey>> {
        self.0.list(filter).await
    }
}

#[tokio::test]
async fn a_store_of_token_sets_alone_is_enough() {
    let mut mock = mock_provider();
    let later = std::time::SystemTime::now() + 120 * MINUTE;
    mock.expect_authorization_url().returning(|request| {
        let mut url = url::Url::parse("https://as.example/authorize").unwrap();
        url.query_pairs_mut()
            .append_pair("state", request.state.expose_secret());
        Ok(url)
    });
    mock.expect_exchange()
        .returning(move |_| Ok(tokens("first-access", Some("rt-1"), later)));
    mock.expect_refresh()
        .times(1)
        .returning(move |_| Ok(tokens("second-access", Some("rt-2"), later)));
    let store = Arc::new(TokenSetsOnly::default());
    let manager = TokenManager::builder(Arc::new(mock), store.clone())
        .build()
        .unwrap();

    // The pending authorization waits in the manager's memory.
    let flow = grantkit_core::RedirectFlow::authorization_code("http://127.0.0.1:9/cb");
    let url = manager.start_authorization(&flow).await.unwrap();
    let state = url::Url::parse(url.expose_secret())
        .unwrap()
        .query_pairs()
        .find(|(name, _)| name == "state")
        .unwrap()
        .1
        .into_owned();
    let callback =
        grantkit_core::Callback::parse(&format!("http://127.0.0.1:9/cb?code=c&state={state}"))
            .unwrap();
    let key = manager.complete_authorization(&callback).await.unwrap();
    assert_eq!(manager.account().await.unwrap(), key);

    // Refreshes are coordinated among this process's tasks, without a lease.
    let refreshed = manager.refresh(&key).await.unwrap();
    assert_eq!(refreshed.access_token.expose_secret(), "second-access");
    let stored = store.get(&key).await.unwrap().unwrap();
    assert_eq!(stored.value.access_token.expose_secret(), "second-access");
}

#[tokio::test]
async fn a_token_response_without_scope_granted_what_was_asked() {
    let mut mock = mock_provider();
    let later = std::time::SystemTime::now() + 120 * MINUTE;
    mock.expect_authorization_url().returning(|request| {
        let mut url = url::Url::parse("https://as.example/authorize").unwrap();
        url.query_pairs_mut()
            .append_pair("state", request.state.expose_secret());
        Ok(url)
    });
    // The first answer names no scope, the second names its own.
    let mut answers = vec![
        tokens("second", None, later).with_scopes(["narrower"]),
        tokens("first", None, later),
    ];
    mock.expect_exchange()
        .times(2)
        .returning(move |_| Ok(answers.pop().unwrap()));
    let store = Arc::new(MemoryTokenStore::new());
    let manager = TokenManager::builder(Arc::new(mock), store.clone())
        .build()
        .unwrap();
    let flow = grantkit_core::RedirectFlow::authorization_code("http://127.0.0.1:9/cb")
        .with_scopes(["read", "write"]);
    let mut granted = Vec::new();
    for _ in 0..2 {
        let url = manager.start_authorization(&flow).await.unwrap();
        let state = url::Url::parse(url.expose_secret())
            .unwrap()
            .query_pairs()
            .find(|(name, _)| name == "state")
            .unwrap()
            .1
            .into_owned();
        let callback =
            grantkit_core::Callback::parse(&format!("http://127.0.0.1:9/cb?code=c&state={state}"))
                .unwrap();
        let key = manager.complete_authorization(&callback).await.unwrap();
        granted.push(store.get(&key).await.unwrap().unwrap().value.scopes);
    }
    assert_eq!(granted[0], ["read", "write"], "RFC 6749 §5.1: as requested");
    assert_eq!(granted[1], ["narrower"], "what the server said it granted");
}

#[tokio::test]
async fn warm_loads_many_grants_in_one_read_and_serves_them_from_memory() {
    let now = std::time::SystemTime::now();
    let account = |i: usize| grantkit_core::TokenKey::new(PROVIDER, CLIENT, format!("user-{i}"));
    let keys: Vec<_> = (0..1000).map(account).collect();
    let mut store = mock_store();
    let answered = keys.clone();
    // One read for all of them; never one key at a time.
    store.expect_get_many().times(1).returning(move |asked| {
        assert_eq!(asked, answered.as_slice());
        Ok((0..asked.len())
            .map(|i| match i {
                // No grant; a grant due for refresh; one logged out; an unreadable record.
                0 => Ok(None),
                1 => Ok(Some(Versioned {
                    value: tokens("expired", Some("rt"), now - MINUTE),
                    version: Version::from_u64(1),
                })),
                2 => {
                    let mut logged_out = tokens("logged-out", None, now + 600 * MINUTE);
                    logged_out
                        .extras
                        .insert(REVOCATION_PENDING.to_owned(), "1".to_owned());
                    Ok(Some(Versioned {
                        value: logged_out,
                        version: Version::from_u64(1),
                    }))
                }
                3 => Err(Error::CorruptRecord {
                    key: "user-3".to_owned(),
                    reason: "unreadable".to_owned(),
                }),
                _ => Ok(Some(Versioned {
                    value: tokens(&format!("token-{i}"), Some("rt"), now + 600 * MINUTE),
                    version: Version::from_u64(1),
                })),
            })
            .collect())
    });
    store.expect_get().never();
    let mut provider = mock_provider();
    provider.expect_refresh().never();
    let clock = Arc::new(grantkit_core::clock::ManualClock::new(now));
    let manager = TokenManager::builder(Arc::new(provider), Arc::new(store))
        .clock(clock.clone())
        .build()
        .unwrap();

    assert_eq!(manager.warm(&keys).await.unwrap(), 996);
    for (i, key) in keys.iter().enumerate().skip(4) {
        let served = manager.access_token(key).await.unwrap();
        assert_eq!(served.access_token.expose_secret(), format!("token-{i}"));
    }
    // A second warm-up finds them all in memory and reads nothing.
    assert_eq!(manager.warm(&keys[4..]).await.unwrap(), 0);
}
