//! The provider suite on every harness of `testing::harnesses()` (the defaults and each
//! inferred switch flipped), every flow each offers: the Joind.in part of the matrix that
//! `cargo xtask conformance` runs.

use grantkit_conformance::{Outcome, PROVIDER_SUITE, ProviderFixture, run_cell};
use grantkit_core::MemoryTokenStore;
use std::sync::Arc;
use std::time::Duration;

/// The only reasons a Joind.in cell may be skipped: capabilities Joind.in lacks.
const ALLOWED_SKIPS: [&str; 6] = [
    "a redirect flow",
    "a direct flow",
    "the authorization-code flow",
    "refreshable tokens from this flow",
    "renewable (not refreshable) tokens from this flow",
    "server-side expiry in the harness",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_harness_passes_the_provider_suite() {
    let mut passed = 0;
    let mut skipped = 0;
    let mut failures = Vec::new();
    for harness in grantkit_joindin::testing::harnesses().await {
        for flow in harness.flows() {
            for behaviour in PROVIDER_SUITE {
                let fixture = ProviderFixture {
                    harness: harness.clone(),
                    flow,
                    store: Arc::new(MemoryTokenStore::new()),
                };
                let cell = format!("{} · {flow} · {}", harness.name(), behaviour.name);
                if let Some(reason) = behaviour.skip_reason(&fixture) {
                    let needs = reason.trim_start_matches("needs ");
                    assert!(
                        needs.split(", ").all(|n| ALLOWED_SKIPS.contains(&n)),
                        "{cell} skipped for a reason Joind.in should not have: {reason}"
                    );
                    skipped += 1;
                    continue;
                }
                match run_cell((behaviour.run)(fixture), Duration::from_secs(120))
                    .await
                    .outcome
                {
                    Outcome::Passed => passed += 1,
                    Outcome::Failed(reason) => failures.push(format!("{cell}: {reason}")),
                    Outcome::Skipped(reason) => panic!("{cell} skipped while running: {reason}"),
                }
            }
        }
    }
    println!(
        "joindin provider matrix: {passed} passed, {} failed, {skipped} skipped",
        failures.len()
    );
    assert!(
        failures.is_empty(),
        "failed cells:\n{}",
        failures.join("\n")
    );
    assert!(passed > 0);
}
