//! Retries and throttling, counted with the fake's counters: 5xx answers and
//! cut-off responses are retried, client errors are not; a 429's
//! `Retry-After` holds every mount's requests to that vault; a throttled
//! mount that runs out of time says so; `--keyvault-qps` limits the rate;
//! and many pods mounting through a storm each succeed or name the vault.

use std::time::Duration;

use fake_azure::{Limit, Target};

use crate::support::chaos::{Chaos, Endpoint, Via, check};
use crate::support::pods::*;

const VAULT: &str = fake_azure::BLOG_VAULT;

// === retries ===

#[tokio::test]
async fn a_5xx_burst_and_cut_off_responses_are_retried_to_success() {
    let harness = start_with_secrets(0, &[]).await;
    harness.fake.fail_5xx(Target::Aad, 500, 2).unwrap();
    harness.fake.fail_5xx(Target::KeyVault, 503, 3).unwrap();
    let response = harness
        .mount_pod(&spc_reading(&[SECRET]), 0)
        .await
        .expect("mount succeeds");
    assert_eq!(file_text(&response, SECRET), fake_azure::BLOG_SECRET_VALUE);
    let counters = harness.fake.counters();
    assert_eq!(counters.token_requests_total(), 3, "{counters:?}");
    assert_eq!(counters.tokens_issued(), 1);
    assert_eq!(harness.gets(503), 3);
    assert_eq!(harness.gets(200), 1);

    // A transport fault applies to the next answer whatever it is, so the
    // cut-off comes in a mount of its own: a 200 whose body breaks.
    harness.fake.reset_counters();
    harness.fake.reset_responses(Target::KeyVault, 1);
    let response = harness
        .mount_pod(&spc_reading(&[SECRET]), 0)
        .await
        .expect("mount succeeds");
    assert_eq!(file_text(&response, SECRET), fake_azure::BLOG_SECRET_VALUE);
    let counters = harness.fake.counters();
    assert_eq!(counters.responses_cut_off, 1);
    assert_eq!(harness.gets(200), 2, "the cut-off answer and the whole one");
}

#[tokio::test]
async fn client_errors_are_not_retried() {
    let harness = start_with_secrets(0, &[]).await;
    let message = error_message(harness.mount_pod(&spc_reading(&["missing"]), 0).await);
    assert!(message.contains("404 SecretNotFound"), "{message}");
    assert_eq!(harness.gets(404), 1);
    assert_eq!(
        harness
            .metric("akv_http_retries_total{service=\"keyvault\"}")
            .await,
        0.0
    );
}

// === throttling ===

#[tokio::test]
async fn retry_after_holds_a_second_mount_until_the_window_ends() {
    let harness = start_with_secrets(1, &[]).await;
    harness
        .fake
        .throttle(Target::KeyVault, Some(3), Limit::Count(1));
    let (spc_first, spc_second) = (spc_reading(&[SECRET]), spc_reading(&["s0"]));
    let first = harness.mount_pod(&spc_first, 0);
    let second = async {
        // Start once the provider has seen the first mount's 429 (the
        // fake counts it before the answer is on its way).
        while harness
            .metric("akv_http_throttled_total{service=\"keyvault\"}")
            .await
            == 0.0
        {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let mount = harness.mount_pod(&spc_second, 1);
        let check = async {
            tokio::time::sleep(Duration::from_millis(1000)).await;
            harness.fake.counters().keyvault_requests_total()
        };
        tokio::join!(mount, check)
    };
    let (first, (second, during_window)) = tokio::join!(first, second);
    first.expect("the throttled mount succeeds after the window");
    second.expect("the second mount succeeds after the window");
    assert_eq!(
        during_window, 1,
        "only the 429 reached Key Vault inside the 3 s window"
    );
    assert_eq!(
        (harness.gets(429), harness.gets(200)),
        (1, 2),
        "{:?}",
        harness.fake.counters()
    );
    assert!(
        harness
            .metric("akv_http_retries_total{service=\"keyvault\"}")
            .await
            >= 1.0
    );
}

#[tokio::test]
async fn a_throttled_mount_succeeds_once_throttling_stops() {
    let harness = start_with_secrets(0, &[]).await;
    harness.fake.throttle(
        Target::KeyVault,
        Some(1),
        Limit::Until(std::time::Instant::now() + Duration::from_millis(1500)),
    );
    let response = harness
        .mount_pod(&spc_reading(&[SECRET]), 0)
        .await
        .expect("mount succeeds");
    assert_eq!(file_text(&response, SECRET), fake_azure::BLOG_SECRET_VALUE);
    let throttled = harness.gets(429);
    assert!(
        (1..=3).contains(&throttled),
        "a request per window, not a storm: {throttled}"
    );
    assert_eq!(harness.gets(200), 1);
    assert_eq!(
        harness
            .metric("akv_http_throttled_total{service=\"keyvault\"}")
            .await,
        throttled as f64
    );
}

#[tokio::test]
async fn a_mount_out_of_time_while_throttled_says_so_and_names_the_vault() {
    let harness = start_with_secrets(0, &["--mount-timeout=3s"]).await;
    harness
        .fake
        .throttle(Target::KeyVault, Some(10), Limit::Count(100));
    let message = error_message(harness.mount_pod(&spc_reading(&[SECRET]), 0).await);
    assert!(
        message.starts_with(&format!(
            "failed to mount objects, error: failed to get objectType:secret, objectName:{SECRET}, objectVersion:: \
             keyvault {VAULT} throttled the request (429 Too Many Requests) and asks to wait 10.0s, longer than the "
        )),
        "{message}"
    );
    assert!(
        message.contains("left of this mount's time budget"),
        "{message}"
    );
    assert_eq!(harness.gets(429), 1, "no retry that cannot succeed in time");
}

#[tokio::test]
async fn keyvault_qps_spaces_requests_and_fails_a_mount_it_cannot_fit() {
    // One request per second: three objects need two seconds.
    let harness = start_with_secrets(5, &["--keyvault-qps=1"]).await;
    harness
        .mount_pod(&spc_reading(&["s0", "s1", "s2"]), 0)
        .await
        .expect("fits in the default budget");
    assert_eq!(harness.gets(200), 3);
    let harness = start_with_secrets(5, &["--keyvault-qps=1", "--mount-timeout=2500ms"]).await;
    let names = ["s0", "s1", "s2", "s3", "s4"];
    let message = error_message(harness.mount_pod(&spc_reading(&names), 0).await);
    assert!(
        message.contains(&format!(
            "keyvault {VAULT}: --keyvault-qps would delay this request by"
        )),
        "{message}"
    );
    assert!(
        harness.gets(200) <= 1,
        "the mount gives up as soon as it cannot fit: {:?}",
        harness.fake.counters()
    );
}

/// Ten pods mounting at once through a Key Vault 429 storm and a 503
/// burst: each ends in success or an error naming the vault.
#[tokio::test]
async fn concurrent_mounts_through_a_storm_succeed_or_name_the_vault() {
    let chaos = Chaos::start(&[]).await;
    let fake = &chaos.harness.fake;
    fake.throttle(Target::KeyVault, Some(1), Limit::Count(6));
    fake.fail_5xx(Target::KeyVault, 503, 6).unwrap();
    let endpoint = chaos.endpoint(Endpoint::KeyVault);
    let mounts = (0..10).map(|_| {
        let request = chaos.request(Via::WorkloadIdentity, false);
        chaos.harness.mount_raw(request)
    });
    let results = futures_util::future::join_all(mounts).await;
    for result in results {
        check("storm", result, &endpoint);
    }
    fake.clear_faults();
    let request = chaos.request(Via::WorkloadIdentity, false);
    assert!(check(
        "after the storm",
        chaos.harness.mount_raw(request).await,
        &endpoint
    ));
}
