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

use akv_csi_provider::proto::{MountRequest, MountResponse};
use fake_azure::{
    BLOG_CLIENT_ID, BLOG_SECRET_VALUE, BLOG_TENANT_ID, BLOG_VAULT, Limit, Seed, Target, Transport,
};

use crate::driver::{self, Pod, SecretProviderClass, ServiceAccountToken};
use crate::util::{BLOG_SPC, Harness, ISSUER};

/// The identity a scenario mounts with, and so the token endpoint it
/// reaches.
#[derive(Clone, Copy, Debug)]
enum Via {
    /// Workload identity with a fresh service-account token (a cache
    /// miss): Entra ID, then Key Vault.
    WorkloadIdentity,
    /// VM managed identity: IMDS, then Key Vault.
    Imds,
    /// Pod identity: NMI, then Key Vault.
    Nmi,
}

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

#[derive(Clone, Copy, Debug)]
enum Endpoint {
    KeyVault,
    Aad,
    Imds,
    Nmi,
}

const MOUNTS_PER_SCENARIO: usize = 2;
const REQUEST_TIMEOUT: &str = "--request-timeout=1s";
/// Longer than the per-request timeout.
const STALL: Duration = Duration::from_secs(3);

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

/// The blog seed; its app is also the VM's and the pod's identity.
fn seed() -> Seed {
    Seed::blog_walkthrough(ISSUER)
}

struct Chaos {
    harness: Harness,
    pod: Pod,
    /// Makes every projected token unique, so Entra ID is asked each time.
    minted: std::sync::atomic::AtomicU64,
}

impl Chaos {
    async fn start(extra: &[&str]) -> Self {
        let mut args = vec![REQUEST_TIMEOUT, "--mount-timeout=30s"];
        args.extend(extra);
        let harness = Harness::start_with(seed(), &args).await;
        let pod = Pod::blog();
        let fake = &harness.fake;
        fake.set_vm_identities(Some(BLOG_CLIENT_ID), &[]).unwrap();
        fake.bind_pod_identity(&pod.namespace, &pod.name, BLOG_CLIENT_ID)
            .unwrap();
        // Shorter than the token cache's refresh margin: every mount asks
        // its token endpoint again, so token faults hit every mount.
        fake.set_token_lifetime(Duration::from_secs(120));
        Self {
            harness,
            pod,
            minted: Default::default(),
        }
    }

    fn request(&self, via: Via, history: bool) -> MountRequest {
        let object = if history {
            "    objectVersionHistory: 2\n"
        } else {
            ""
        };
        let mut spc = SecretProviderClass::from_yaml(BLOG_SPC).unwrap();
        spc.parameters.insert(
            "objects".into(),
            format!(
                "array:\n  - |\n    objectName: MySecretPassword\n    objectType: secret\n{object}"
            ),
        );
        let tokens = match via {
            Via::WorkloadIdentity => vec![self.fresh_token()],
            Via::Imds | Via::Nmi => {
                spc.parameters.remove("clientID");
                let flag = match via {
                    Via::Imds => "useVMManagedIdentity",
                    _ => "usePodIdentity",
                };
                spc.parameters.insert(flag.into(), "true".into());
                Vec::new()
            }
        };
        let attributes = driver::attributes(&spc, &self.pod, &tokens);
        driver::mount_request(attributes, None, &self.pod)
    }

    fn fresh_token(&self) -> ServiceAccountToken {
        let n = self
            .minted
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        ServiceAccountToken {
            audience: driver::WORKLOAD_IDENTITY_AUDIENCE.into(),
            token: fake_azure::mint_service_account_token(
                ISSUER,
                &self.pod.namespace,
                &self.pod.service_account,
                driver::WORKLOAD_IDENTITY_AUDIENCE,
                Duration::from_secs(3600 + n),
            ),
            expiration: "2099-01-01T00:00:00Z".into(),
        }
    }

    fn endpoint(&self, endpoint: Endpoint) -> String {
        let local = self.harness.fake.http_url();
        match endpoint {
            Endpoint::KeyVault => format!("https://{BLOG_VAULT}.vault.azure.net/"),
            Endpoint::Aad => {
                format!("https://login.microsoftonline.com/{BLOG_TENANT_ID}/oauth2/v2.0/token")
            }
            Endpoint::Imds => format!("{local}/metadata/identity/oauth2/token"),
            Endpoint::Nmi => format!("{local}/host/token/"),
        }
    }
}

/// Success with the blog secret, or one error line naming `endpoint` (Key
/// Vault errors may name the vault instead of its URL).
fn check(what: &str, result: Result<MountResponse, tonic::Status>, endpoint: &str) -> bool {
    match result {
        Ok(response) => {
            let contents = response.files.first().map(|f| f.contents.as_slice());
            assert_eq!(contents, Some(BLOG_SECRET_VALUE.as_bytes()), "{what}");
            true
        }
        Err(status) => {
            let message = status.message();
            assert_eq!(status.code(), tonic::Code::Unknown, "{what}: {message}");
            assert!(
                message.starts_with("failed to mount objects, error: "),
                "{what}: {message}"
            );
            assert!(!message.contains('\n'), "{what}: one line: {message}");
            let names_vault =
                endpoint.contains(".vault.") && message.contains(&format!("keyvault {BLOG_VAULT}"));
            assert!(
                message.contains(endpoint) || names_vault,
                "{what}: the error must name {endpoint}: {message}"
            );
            false
        }
    }
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

/// Ten pods mounting at once through a Key Vault 429 storm and a 503
/// burst: each ends in success or an error naming the vault.
#[tokio::test]
async fn concurrent_mounts_through_a_storm() {
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

/// Nothing listens where IMDS or NMI should be: the error names the
/// address it tried, and the next mount of another identity still works.
#[tokio::test]
async fn imds_and_nmi_down() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let base = format!("http://127.0.0.1:{port}");
    let nmi = format!("--nmi-endpoint={base}");
    let harness = Harness::start_with_env(
        seed(),
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
