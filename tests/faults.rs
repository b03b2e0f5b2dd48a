//! Chaos against the fake, with faults counted in requests rather than
//! durations: 429 storms with and without `Retry-After`, 503 bursts,
//! answers slower than the per-request timeout, connections reset
//! mid-body, no answer at all (Entra ID down), IMDS and NMI down, and
//! malformed JSON from Entra ID, IMDS, NMI and Key Vault (secrets and
//! version listings), for every identity that reaches them.
//!
//! What must hold, whatever retries the provider makes: every mount ends
//! in success (the right file) or in one clear error line naming the
//! endpoint that failed; once the faults are gone the next mount succeeds;
//! and nothing is left behind — no mount in flight in /metrics, no file
//! descriptor or thread more than before.

use std::time::Duration;

use fake_azure::{BLOG_CLIENT_ID, Limit, Target, Transport};

use crate::support::chaos::*;
use crate::support::driver::Pod;
use crate::support::harness::Harness;

/// A fault and where the error must point.
struct Scenario {
    what: &'static str,
    via: Via,
    arm: fn(&fake_azure::FakeAzure),
    /// The endpoint an error must name (filled in with the fake's URL).
    endpoint: Endpoint,
    /// A version listing instead of one secret.
    history: bool,
}

fn scenarios() -> Vec<Scenario> {
    use Endpoint as E;
    use Via::{Imds, Nmi, WorkloadIdentity as Wi};
    let s = |what, via, endpoint, arm: fn(&fake_azure::FakeAzure)| Scenario {
        what,
        via,
        arm,
        endpoint,
        history: false,
    };
    vec![
        // Key Vault.
        s(
            "Key Vault 429 storm with Retry-After",
            Wi,
            E::KeyVault,
            |f| f.throttle(Target::KeyVault, Some(1), Limit::Count(2)),
        ),
        s(
            "Key Vault 429 storm without Retry-After",
            Wi,
            E::KeyVault,
            |f| f.throttle(Target::KeyVault, None, Limit::Count(4)),
        ),
        s("Key Vault 503 burst", Wi, E::KeyVault, |f| {
            f.fail_5xx(Target::KeyVault, 503, 3).unwrap()
        }),
        s(
            "Key Vault slower than the request timeout",
            Wi,
            E::KeyVault,
            |f| f.transport_fault(Target::KeyVault, Transport::StallBody(STALL), 1),
        ),
        s("Key Vault reset mid-body", Wi, E::KeyVault, |f| {
            f.transport_fault(Target::KeyVault, Transport::ResetMidBody, 2)
        }),
        s("Key Vault no answer", Wi, E::KeyVault, |f| {
            f.transport_fault(Target::KeyVault, Transport::Drop, 2)
        }),
        s("Key Vault malformed JSON", Wi, E::KeyVault, |f| {
            f.transport_fault(Target::KeyVault, Transport::Malformed, 2)
        }),
        Scenario {
            history: true,
            ..s(
                "Key Vault malformed version listing",
                Wi,
                E::KeyVault,
                |f| f.transport_fault(Target::KeyVault, Transport::Malformed, 2),
            )
        },
        // Entra ID.
        s("Entra ID 429 storm with Retry-After", Wi, E::Aad, |f| {
            f.throttle(Target::Aad, Some(1), Limit::Count(2))
        }),
        s("Entra ID 429 storm without Retry-After", Wi, E::Aad, |f| {
            f.throttle(Target::Aad, None, Limit::Count(4))
        }),
        s("Entra ID 503 burst", Wi, E::Aad, |f| {
            f.fail_5xx(Target::Aad, 503, 3).unwrap()
        }),
        s(
            "Entra ID slower than the request timeout",
            Wi,
            E::Aad,
            |f| f.transport_fault(Target::Aad, Transport::StallBody(STALL), 1),
        ),
        s("Entra ID reset mid-body", Wi, E::Aad, |f| {
            f.transport_fault(Target::Aad, Transport::ResetMidBody, 2)
        }),
        s("Entra ID down", Wi, E::Aad, |f| {
            f.transport_fault(Target::Aad, Transport::Drop, 1000)
        }),
        s("Entra ID malformed JSON", Wi, E::Aad, |f| {
            f.transport_fault(Target::Aad, Transport::Malformed, 2)
        }),
        // IMDS.
        s("IMDS 429 storm", Imds, E::Imds, |f| {
            f.throttle(Target::Imds, None, Limit::Count(4))
        }),
        s("IMDS 503 burst", Imds, E::Imds, |f| {
            f.fail_5xx(Target::Imds, 503, 3).unwrap()
        }),
        s("IMDS slower than the request timeout", Imds, E::Imds, |f| {
            f.transport_fault(Target::Imds, Transport::StallBody(STALL), 1)
        }),
        s("IMDS reset mid-body", Imds, E::Imds, |f| {
            f.transport_fault(Target::Imds, Transport::ResetMidBody, 2)
        }),
        s("IMDS not answering", Imds, E::Imds, |f| {
            f.transport_fault(Target::Imds, Transport::Drop, 1000)
        }),
        s("IMDS malformed JSON", Imds, E::Imds, |f| {
            f.transport_fault(Target::Imds, Transport::Malformed, 2)
        }),
        // NMI.
        s("NMI 503 burst", Nmi, E::Nmi, |f| {
            f.fail_5xx(Target::Nmi, 503, 3).unwrap()
        }),
        s("NMI slower than the request timeout", Nmi, E::Nmi, |f| {
            f.transport_fault(Target::Nmi, Transport::StallBody(STALL), 1)
        }),
        s("NMI reset mid-body", Nmi, E::Nmi, |f| {
            f.transport_fault(Target::Nmi, Transport::ResetMidBody, 2)
        }),
        s("NMI malformed JSON", Nmi, E::Nmi, |f| {
            f.transport_fault(Target::Nmi, Transport::Malformed, 2)
        }),
    ]
}

#[tokio::test]
async fn every_fault_ends_in_success_or_an_error_naming_the_endpoint() {
    let mut chaos = Chaos::start(&[]).await;
    // Warm up every path once (connections, a first token of each kind).
    for via in [Via::WorkloadIdentity, Via::Imds, Via::Nmi] {
        let request = chaos.request(via, false);
        let result = chaos.harness.mount_raw(request).await;
        assert!(check(&format!("warm-up {via:?}"), result, ""), "warm-up");
    }
    let (fds, threads) = (chaos.harness.open_fds(), chaos.harness.threads());

    let mut failures = 0;
    for scenario in scenarios() {
        let fake = &chaos.harness.fake;
        fake.clear_faults();
        (scenario.arm)(fake);
        let endpoint = chaos.endpoint(scenario.endpoint);
        for _ in 0..MOUNTS_PER_SCENARIO {
            let request = chaos.request(scenario.via, scenario.history);
            let result = chaos.harness.mount_raw(request).await;
            if !check(scenario.what, result, &endpoint) {
                failures += 1;
            }
        }
        fake.clear_faults();
        // The faults are gone: the server still serves, and serves right.
        let request = chaos.request(scenario.via, scenario.history);
        let result = chaos.harness.mount_raw(request).await;
        assert!(
            check(scenario.what, result, &endpoint),
            "{}: recovers",
            scenario.what
        );
    }
    // The faults did bite (every mount of "Entra ID down" fails, at least).
    assert!(failures >= MOUNTS_PER_SCENARIO, "{failures} failed mounts");

    assert!(chaos.harness.is_running());
    let metrics = chaos.harness.scrape().await;
    assert!(metrics.contains("akv_mounts_in_flight 0\n"), "{metrics}");
    // Stalled answers may still be draining on the fake's side: wait until
    // the provider's descriptors settle (bounded), then compare.
    let mut now = chaos.harness.open_fds();
    for _ in 0..50 {
        if now <= fds + 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        now = chaos.harness.open_fds();
    }
    assert!(now <= fds + 2, "file descriptors {fds} → {now}");
    let threads_now = chaos.harness.threads();
    assert!(
        threads_now <= threads + 2,
        "threads {threads} → {threads_now}"
    );
}

/// Nothing listens where IMDS or NMI should be: the error names the
/// address it tried, and the next mount of another identity still works.
#[tokio::test]
async fn imds_and_nmi_down_fail_naming_the_address_tried() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let base = format!("http://127.0.0.1:{port}");
    let nmi = format!("--nmi-endpoint={base}");
    let harness = Harness::start_with_env(
        chaos_seed(),
        &[REQUEST_TIMEOUT, &nmi],
        &[("AZURE_POD_IDENTITY_AUTHORITY_HOST", &base)],
    )
    .await;
    let chaos = Chaos {
        harness,
        pod: Pod::blog(),
        minted: Default::default(),
    };
    chaos
        .harness
        .fake
        .set_vm_identities(Some(BLOG_CLIENT_ID), &[])
        .unwrap();
    for (via, path) in [
        (Via::Imds, "/metadata/identity/oauth2/token"),
        (Via::Nmi, "/host/token/"),
    ] {
        for _ in 0..MOUNTS_PER_SCENARIO {
            let result = chaos.harness.mount_raw(chaos.request(via, false)).await;
            let endpoint = format!("{base}{path}");
            assert!(!check(&format!("{via:?} down"), result, &endpoint));
        }
    }
    let result = chaos
        .harness
        .mount_raw(chaos.request(Via::WorkloadIdentity, false))
        .await;
    assert!(check("workload identity", result, ""));
}
