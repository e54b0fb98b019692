//! The provider suite under every emulator configuration of `testing::harnesses()` (the
//! defaults and each unknown switch flipped), both flows, walked the way
//! `cargo xtask conformance` walks it: every cell must pass, or be skipped only because
//! the flow lacks a capability (implicit tokens cannot refresh and have no code).

use futures::StreamExt as _;
use grantkit_conformance::{Outcome, PROVIDER_SUITE, ProviderFixture, ProviderHarness, run_cell};
use grantkit_core::{MemoryTokenStore, flow::FlowKind};
use std::sync::Arc;
use std::time::Duration;

/// The only reasons a join.me cell may be skipped: both flows are redirect flows; the
/// implicit flow has no code and no refresh token; code-grant tokens refresh instead of
/// being renewed.
const FLOW_CAPABILITY_SKIPS: [&str; 4] = [
    "needs the authorization-code flow",
    "needs refreshable tokens from this flow",
    "needs a direct flow",
    "needs renewable (not refreshable) tokens from this flow",
];

async fn run_harness(harness: Arc<dyn ProviderHarness>) -> Vec<(String, Outcome)> {
    let mut cells = Vec::new();
    for flow in harness.flows() {
        for behaviour in PROVIDER_SUITE {
            let fixture = ProviderFixture {
                harness: harness.clone(),
                flow,
                store: Arc::new(MemoryTokenStore::new()),
            };
            let name = format!("{} {} {}", harness.name(), flow, behaviour.name);
            let outcome = match behaviour.skip_reason(&fixture) {
                Some(reason) => Outcome::Skipped(reason),
                None => {
                    run_cell((behaviour.run)(fixture), Duration::from_secs(120))
                        .await
                        .outcome
                }
            };
            cells.push((name, outcome));
        }
    }
    cells
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_harness_passes_the_provider_suite_in_both_flows() {
    let harnesses = grantkit_joinme::testing::harnesses().await;
    let names: Vec<String> = harnesses.iter().map(|h| h.name()).collect();
    let mut unique = names.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), names.len(), "harness names are distinct");
    for harness in &harnesses {
        assert_eq!(
            harness.flows(),
            [FlowKind::AuthorizationCode, FlowKind::Implicit],
            "{} runs both flows",
            harness.name()
        );
    }

    // Each harness has its own emulator, so harnesses run side by side.
    let cells: Vec<(String, Outcome)> = futures::stream::iter(harnesses)
        .map(run_harness)
        .buffer_unordered(6)
        .flat_map(futures::stream::iter)
        .collect()
        .await;

    let mut failures = Vec::new();
    let (mut passed, mut skipped) = (0, 0);
    for (name, outcome) in &cells {
        match outcome {
            Outcome::Passed => passed += 1,
            Outcome::Skipped(reason) => {
                skipped += 1;
                let allowed = reason
                    .trim_start_matches("needs ")
                    .split(", ")
                    .all(|need| FLOW_CAPABILITY_SKIPS.contains(&format!("needs {need}").as_str()));
                let renewal_on_code = name.contains(" authorization_code ")
                    && reason == "needs renewable (not refreshable) tokens from this flow";
                let direct = reason == "needs a direct flow";
                assert!(
                    allowed && (name.contains(" implicit ") || renewal_on_code || direct),
                    "{name} skipped for a reason other than the flow's missing capabilities: {reason}"
                );
            }
            Outcome::Failed(reason) => failures.push(format!("{name}: {reason}")),
        }
    }
    eprintln!(
        "join.me provider suite: {} harnesses, {} cells: {passed} passed, {skipped} skipped, {} failed",
        names.len(),
        cells.len(),
        failures.len()
    );
    assert!(
        failures.is_empty(),
        "failed cells:\n{}",
        failures.join("\n")
    );
    assert_eq!(cells.len(), names.len() * 2 * PROVIDER_SUITE.len());
}
