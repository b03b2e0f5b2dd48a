//! Kind to Key Vault under load (issue 5), counted with the fake's counters:
//! identical concurrent reads coalesce (never across identities), the value
//! cache (`--cache-ttl`) serves only mounts that obtained their own token,
//! a 429's `Retry-After` holds every mount's requests to that vault, 5xx
//! answers and cut-off responses are retried, a throttled mount that runs
//! out of time says so, `--keyvault-qps` limits the rate, and the first
//! error of a mount cancels its other requests.
//!
//! Latency is injected only to make requests overlap; every assertion is on
//! counts and messages, not on durations.

use std::time::Duration;

use fake_azure::{AppSeed, Limit, SecretSeed, Seed, Target, op};

use crate::driver::{self, Pod, SecretProviderClass, ServiceAccountToken};
use crate::util::{Harness, ISSUER};

const VAULT: &str = fake_azure::BLOG_VAULT;
const SECRET: &str = fake_azure::BLOG_SECRET_NAME;
const MI_USER_1: &str = "5a5a5a5a-0000-4000-8000-000000000012";
const MI_USER_2: &str = "5a5a5a5a-0000-4000-8000-000000000013";

/// The blog seed, secrets `s0..s{n-1}`, and two user-assigned VM
/// identities that may read the vault.
fn seed(n: usize) -> Seed {
    let mut seed = Seed::blog_walkthrough(ISSUER);
    for i in 0..n {
        seed.vaults[0]
            .secrets
            .push(SecretSeed::new(format!("s{i}"), format!("value-{i}")));
    }
    for id in [MI_USER_1, MI_USER_2] {
        seed.apps.push(AppSeed {
            client_id: id.into(),
            tenant_id: fake_azure::BLOG_TENANT_ID.into(),
            ..Default::default()
        });
        seed.vaults[0].access.push(id.into());
    }
    seed
}

async fn start(n: usize, args: &[&str]) -> Harness {
    let harness = Harness::start_with(seed(n), args).await;
    harness
        .fake
        .set_vm_identities(None, &[MI_USER_1, MI_USER_2])
        .unwrap();
    harness
}

/// The blog SPC reading `names` (secrets).
fn spc(names: &[&str]) -> SecretProviderClass {
    let mut objects = String::from("array:\n");
    for name in names {
        objects.push_str(&format!(
            "  - |\n    objectName: {name}\n    objectType: secret\n"
        ));
    }
    Harness::blog_spc_with_objects(&objects)
}

/// The same objects read with a user-assigned VM identity.
fn vm_spc(names: &[&str], client_id: &str) -> SecretProviderClass {
    let mut spc = spc(names);
    spc.parameters.remove("clientID");
    spc.parameters
        .insert("useVMManagedIdentity".into(), "true".into());
    spc.parameters
        .insert("userAssignedIdentityID".into(), client_id.into());
    spc
}

/// Pod `i` of the blog Deployment, with its own projected token (kubelet
/// binds each token to its pod, so no two pods present the same one).
fn pod(i: usize) -> (Pod, ServiceAccountToken) {
    let pod = Pod {
        name: format!("blog-{i}"),
        uid: format!("00000000-0000-4000-8000-{i:012}"),
        ..Pod::blog()
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let token = fake_azure::mint_jwt(&serde_json::json!({
        "aud": [driver::WORKLOAD_IDENTITY_AUDIENCE],
        "exp": now + 3600, "iat": now, "nbf": now, "iss": ISSUER,
        "sub": fake_azure::BLOG_SUBJECT,
        "kubernetes.io": {"namespace": pod.namespace, "pod": {"name": pod.name, "uid": pod.uid}},
    }));
    let token = ServiceAccountToken {
        audience: driver::WORKLOAD_IDENTITY_AUDIENCE.into(),
        token,
        expiration: "2099-01-01T00:00:00Z".into(),
    };
    (pod, token)
}

impl Harness {
    async fn mount_pod(
        &self,
        spc: &SecretProviderClass,
        i: usize,
    ) -> Result<akv_csi_provider::proto::MountResponse, tonic::Status> {
        let (pod, token) = pod(i);
        let attributes = driver::attributes(spc, &pod, &[token]);
        self.mount_raw(driver::mount_request(attributes, None, &pod))
            .await
    }

    /// Key Vault GETs of secrets answered with `status`.
    fn gets(&self, status: u16) -> u64 {
        self.fake
            .counters()
            .keyvault_requests_with(VAULT, op::GET_SECRET, status)
    }

    /// A counter from /metrics (0 when the series does not exist yet).
    async fn metric(&self, series: &str) -> f64 {
        let text = self.scrape().await;
        text.lines()
            .find_map(|line| line.strip_prefix(series)?.trim().parse().ok())
            .unwrap_or(0.0)
    }
}

fn file_text(response: &akv_csi_provider::proto::MountResponse, path: &str) -> String {
    let file = response
        .files
        .iter()
        .find(|f| f.path == path)
        .unwrap_or_else(|| panic!("no file {path}"));
    String::from_utf8(file.contents.clone()).unwrap()
}

fn message(result: Result<akv_csi_provider::proto::MountResponse, tonic::Status>) -> String {
    result.expect_err("the mount fails").message().to_owned()
}

// --- coalescing ------------------------------------------------------------

#[tokio::test]
async fn identical_concurrent_reads_of_one_identity_make_one_request() {
    let harness = start(0, &[]).await;
    // Long enough that every mount's read starts while the first is in flight.
    harness
        .fake
        .set_latency(Target::KeyVault, Duration::from_millis(1500));
    let spc = spc(&[SECRET]);
    let mounts = (0..20).map(|i| harness.mount_pod(&spc, i));
    for result in futures_util::future::join_all(mounts).await {
        let response = result.expect("mount succeeds");
        assert_eq!(file_text(&response, SECRET), fake_azure::BLOG_SECRET_VALUE);
    }
    let counters = harness.fake.counters();
    assert_eq!(counters.tokens_issued(), 20, "one token per pod");
    assert_eq!(harness.gets(200), 1, "{counters:?}");
    assert_eq!(harness.metric("akv_coalesced_reads_total").await, 19.0);
}

#[tokio::test]
async fn reads_are_never_shared_across_identities() {
    let harness = start(0, &[]).await;
    harness
        .fake
        .set_latency(Target::KeyVault, Duration::from_millis(1500));
    let wi = spc(&[SECRET]);
    let vm1 = vm_spc(&[SECRET], MI_USER_1);
    let vm2 = vm_spc(&[SECRET], MI_USER_2);
    let mut mounts = Vec::new();
    for i in 0..3 {
        mounts.push(harness.mount_pod(&wi, i));
        mounts.push(harness.mount_pod(&vm1, 10 + i));
        mounts.push(harness.mount_pod(&vm2, 20 + i));
    }
    for result in futures_util::future::join_all(mounts).await {
        result.expect("mount succeeds");
    }
    assert_eq!(
        harness.gets(200),
        3,
        "one read per identity: {:?}",
        harness.fake.counters()
    );
}

// --- the value cache -------------------------------------------------------

#[tokio::test]
async fn the_value_cache_serves_the_same_identity_only() {
    let harness = start(0, &["--cache-ttl=30s"]).await;
    let spc = spc(&[SECRET]);
    for i in 0..3 {
        harness.mount_pod(&spc, i).await.expect("mount succeeds");
    }
    assert_eq!(
        harness.gets(200),
        1,
        "pods of one identity share the answer"
    );
    harness
        .mount_pod(&vm_spc(&[SECRET], MI_USER_1), 10)
        .await
        .expect("mount succeeds");
    assert_eq!(harness.gets(200), 2, "another identity reads for itself");
}

#[tokio::test]
async fn a_mount_whose_own_token_request_fails_gets_nothing_from_the_cache() {
    let harness = start(0, &["--cache-ttl=30s"]).await;
    let spc = spc(&[SECRET]);
    harness.mount_pod(&spc, 0).await.expect("mount succeeds");
    // The same identity, but a token Entra ID rejects (wrong issuer).
    let (pod, _) = pod(1);
    let forged = ServiceAccountToken {
        audience: driver::WORKLOAD_IDENTITY_AUDIENCE.into(),
        token: fake_azure::mint_service_account_token(
            "https://oidc.other-cluster.test/issuer",
            &pod.namespace,
            &pod.service_account,
            driver::WORKLOAD_IDENTITY_AUDIENCE,
            Duration::from_secs(3600),
        ),
        expiration: "2099-01-01T00:00:00Z".into(),
    };
    let attributes = driver::attributes(&spc, &pod, &[forged]);
    let message = message(
        harness
            .mount_raw(driver::mount_request(attributes, None, &pod))
            .await,
    );
    assert!(
        message.contains("failed to get a Key Vault token for workload identity"),
        "{message}"
    );
    assert_eq!(harness.gets(200), 1, "no Key Vault read, cached or not");
}

#[tokio::test]
async fn a_rotated_secret_is_served_once_the_cache_entry_expires() {
    let harness = start(0, &["--cache-ttl=1s"]).await;
    let spc = spc(&[SECRET]);
    let before = harness.mount_pod(&spc, 0).await.expect("mount");
    assert_eq!(file_text(&before, SECRET), fake_azure::BLOG_SECRET_VALUE);
    harness
        .fake
        .add_secret_version(VAULT, SecretSeed::new(SECRET, "rotated"))
        .unwrap();
    // The documented trade-off: up to --cache-ttl of staleness.
    let stale = harness.mount_pod(&spc, 1).await.expect("mount");
    assert_eq!(file_text(&stale, SECRET), fake_azure::BLOG_SECRET_VALUE);
    assert_eq!(harness.gets(200), 1);
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let after = harness.mount_pod(&spc, 2).await.expect("mount");
    assert_eq!(file_text(&after, SECRET), "rotated");
    assert_eq!(harness.gets(200), 2);
}

// --- throttling and retries ------------------------------------------------

#[tokio::test]
async fn retry_after_holds_a_second_mount_until_the_window_ends() {
    let harness = start(1, &[]).await;
    harness
        .fake
        .throttle(Target::KeyVault, Some(3), Limit::Count(1));
    let (spc_first, spc_second) = (spc(&[SECRET]), spc(&["s0"]));
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
    let harness = start(0, &[]).await;
    harness.fake.throttle(
        Target::KeyVault,
        Some(1),
        Limit::Until(std::time::Instant::now() + Duration::from_millis(1500)),
    );
    let response = harness
        .mount_pod(&spc(&[SECRET]), 0)
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
    let harness = start(0, &["--mount-timeout=3s"]).await;
    harness
        .fake
        .throttle(Target::KeyVault, Some(10), Limit::Count(100));
    let message = message(harness.mount_pod(&spc(&[SECRET]), 0).await);
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
async fn a_5xx_burst_and_cut_off_responses_are_retried_to_success() {
    let harness = start(0, &[]).await;
    harness.fake.fail_5xx(Target::Aad, 500, 2).unwrap();
    harness.fake.fail_5xx(Target::KeyVault, 503, 3).unwrap();
    let response = harness
        .mount_pod(&spc(&[SECRET]), 0)
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
        .mount_pod(&spc(&[SECRET]), 0)
        .await
        .expect("mount succeeds");
    assert_eq!(file_text(&response, SECRET), fake_azure::BLOG_SECRET_VALUE);
    let counters = harness.fake.counters();
    assert_eq!(counters.responses_cut_off, 1);
    assert_eq!(harness.gets(200), 2, "the cut-off answer and the whole one");
}

#[tokio::test]
async fn client_errors_are_not_retried() {
    let harness = start(0, &[]).await;
    let message = message(harness.mount_pod(&spc(&["missing"]), 0).await);
    assert!(message.contains("404 SecretNotFound"), "{message}");
    assert_eq!(harness.gets(404), 1);
    assert_eq!(
        harness
            .metric("akv_http_retries_total{service=\"keyvault\"}")
            .await,
        0.0
    );
}

#[tokio::test]
async fn keyvault_qps_spaces_requests_and_fails_a_mount_it_cannot_fit() {
    // One request per second: three objects need two seconds.
    let harness = start(5, &["--keyvault-qps=1"]).await;
    harness
        .mount_pod(&spc(&["s0", "s1", "s2"]), 0)
        .await
        .expect("fits in the default budget");
    assert_eq!(harness.gets(200), 3);
    let harness = start(5, &["--keyvault-qps=1", "--mount-timeout=2500ms"]).await;
    let names = ["s0", "s1", "s2", "s3", "s4"];
    let message = message(harness.mount_pod(&spc(&names), 0).await);
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

// --- concurrency within a mount --------------------------------------------

#[tokio::test]
async fn the_first_error_cancels_the_other_requests() {
    let harness = start(8, &["--max-concurrent-fetches=4"]).await;
    // Warm connections first: on a cold host the first request goes alone
    // and the others wait for its answer (http/warmup.rs).
    harness.mount_pod(&spc(&[SECRET]), 99).await.expect("mount");
    harness.fake.reset_counters();
    let slow = Duration::from_millis(1500);
    for i in 0..8 {
        harness.fake.set_object_latency(&format!("s{i}"), slow);
    }
    let names = ["s0", "missing", "s1", "s2", "s3", "s4", "s5", "s6", "s7"];
    let message = message(harness.mount_pod(&spc(&names), 0).await);
    assert!(message.contains("objectName:missing"), "{message}");
    // Had the mount waited for s0 (declared before the failing object),
    // its read would have completed and been counted by now.
    tokio::time::sleep(slow + Duration::from_millis(500)).await;
    assert_eq!(harness.gets(404), 1);
    assert_eq!(
        harness.gets(200),
        0,
        "the slow reads in flight were cancelled, the rest never sent: {:?}",
        harness.fake.counters()
    );
}

#[tokio::test]
async fn objects_come_back_in_declaration_order_whatever_order_they_arrive_in() {
    let harness = start(4, &[]).await;
    harness
        .fake
        .set_object_latency("s0", Duration::from_millis(600));
    harness
        .fake
        .set_object_latency("s1", Duration::from_millis(300));
    let response = harness
        .mount_pod(&spc(&["s0", "s1", "s2", "s3"]), 0)
        .await
        .expect("mount succeeds");
    let paths: Vec<&str> = response.files.iter().map(|f| f.path.as_str()).collect();
    assert_eq!(paths, ["s0", "s1", "s2", "s3"]);
    let ids: Vec<&str> = response
        .object_version
        .iter()
        .map(|v| v.id.as_str())
        .collect();
    assert_eq!(ids, ["secret/s0", "secret/s1", "secret/s2", "secret/s3"]);
}
