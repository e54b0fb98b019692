//! The device authorization grant (RFC 8628) against the real, independent server: the
//! user approves on "another device" (the test playing its browser), the manager polls.

use grantkit_conformance::Decision;
use grantkit_core::flow::FlowKind;
use grantkit_core::{Error, MemoryTokenStore, Provider as _, TokenManager};
use grantkit_standard::testing::{AuthServer, AuthServerOptions, DEVICE_CLIENT, TEST_ACCOUNT};
use std::sync::Arc;

async fn manager(server: &AuthServer) -> TokenManager {
    let provider = server
        .provider(&DEVICE_CLIENT)
        .build()
        .await
        .expect("discovery");
    assert!(
        provider.capabilities().supports(FlowKind::DeviceCode),
        "the server advertises the device grant"
    );
    TokenManager::builder(Arc::new(provider), Arc::new(MemoryTokenStore::new()))
        .build()
        .unwrap()
}

#[tokio::test]
async fn a_user_who_approves_on_another_device_signs_the_program_in() {
    let server = AuthServer::start(AuthServerOptions::default())
        .await
        .unwrap_or_else(|err| panic!("{err}"));
    let manager = manager(&server).await;

    // Before the user acts: pending.
    let mut waiting = manager
        .start_device_authorization(["openid", "read"])
        .await
        .unwrap();
    assert!(!waiting.user_code().is_empty());
    assert!(waiting.verification_uri().starts_with(server.issuer()));
    assert!(
        manager
            .poll_device_authorization(&mut waiting)
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        format!("{waiting:?}").contains("DeviceCode([redacted])"),
        "the device code never shows: {waiting:?}"
    );

    // The user approves; the next poll stores the grant.
    let mut device = manager
        .start_device_authorization(["openid", "read"])
        .await
        .unwrap();
    let complete = device
        .verification_uri_complete()
        .expect("oidc-provider gives the complete URI")
        .to_owned();
    server
        .approve_device(&complete, Decision::Approve)
        .await
        .expect("the user approves");
    let key = manager
        .poll_device_authorization(&mut device)
        .await
        .unwrap()
        .expect("approved");
    assert_eq!(key.account, TEST_ACCOUNT);
    let tokens = manager.access_token(&key).await.unwrap();
    assert_eq!(tokens.grant, grantkit_core::GrantKind::DeviceCode);
    assert!(tokens.refresh_token.is_some());
    manager.refresh(&key).await.expect("device grants refresh");
}

#[tokio::test]
async fn a_user_who_refuses_ends_the_device_authorization() {
    let server = AuthServer::start(AuthServerOptions::default())
        .await
        .unwrap_or_else(|err| panic!("{err}"));
    let manager = manager(&server).await;
    let mut device = manager.start_device_authorization(["read"]).await.unwrap();
    let complete = device.verification_uri_complete().unwrap().to_owned();
    server
        .approve_device(&complete, Decision::Deny)
        .await
        .expect("the user answers");
    let err = manager
        .poll_device_authorization(&mut device)
        .await
        .unwrap_err();
    assert!(
        matches!(&err, Error::OAuth { code, .. } if code == "access_denied"),
        "{err}"
    );
}
