//! A freshly started provider under a burst of pods: one connection per
//! Azure host (the first request opens it, the others wait until it is up
//! with HTTP/2 and share it), counted as TLS handshakes and CONNECT tunnels
//! at the fake. How long the first mounts take is measured by `make bench`
//! (P1 cold row), not here.

use std::time::Duration;

use fake_azure::Target;

use crate::support::pods::*;

#[tokio::test]
async fn a_burst_on_a_cold_process_opens_one_connection_per_host() {
    let harness = start_with_secrets(2, &[]).await;
    // Slow answers: the waiting requests are released by the connection,
    // long before the first answer, and must still share it.
    harness
        .fake
        .set_latency(Target::Aad, Duration::from_millis(300));
    harness
        .fake
        .set_latency(Target::KeyVault, Duration::from_millis(300));
    let spc = spc_reading(&["s0", "s1"]);
    let mounts = (0..24).map(|i| harness.mount_pod(&spc, i));
    let results = futures_util::future::join_all(mounts).await;
    assert!(results.iter().all(Result::is_ok), "{results:?}");
    let counters = harness.fake.counters();
    assert_eq!(harness.token_requests(), 24);
    assert!(
        harness.gets(200) >= 2,
        "identical reads in flight are coalesced"
    );
    assert_eq!(
        counters.tls_handshakes, 2,
        "one connection to Entra ID and one to the vault: {counters:?}"
    );
}
