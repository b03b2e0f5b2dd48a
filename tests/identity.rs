//! Every identity mode over the socket against the fake — workload identity,
//! service principal, VM managed identity (IMDS), pod identity (NMI) and AKS
//! identity binding (token proxy) — with the token cache's request counts,
//! the sovereign clouds' authority hosts and scopes, the error texts users
//! see (AADSTS codes, upstream NMI texts, did-you-mean hints, endpoints that
//! timed out) and a scan of logs and errors for tokens.

use std::collections::BTreeMap;
use std::time::Duration;

use fake_azure::{AppSeed, FederatedCredential, Seed, Target, grant};
use tonic::Code;

use crate::driver::{self, Pod, SecretProviderClass, ServiceAccountToken};
use crate::util::{BLOG_SPC, Harness, ISSUER};

const VAULT: &str = fake_azure::BLOG_VAULT;
const TENANT: &str = fake_azure::BLOG_TENANT_ID;
const MI_SYSTEM: &str = "5a5a5a5a-0000-4000-8000-000000000001";
const MI_USER_1: &str = "5a5a5a5a-0000-4000-8000-000000000002";
const MI_USER_2: &str = "5a5a5a5a-0000-4000-8000-000000000003";
const POD_MI: &str = "5a5a5a5a-0000-4000-8000-000000000004";
const IB_CLIENT: &str = "5a5a5a5a-0000-4000-8000-000000000005";
const IB_AUDIENCE: &str = "api://AKSIdentityBinding";

/// The blog seed plus node identities, a pod identity and an identity-
/// binding app, each allowed to read the blog vault (unless `grant` says
/// otherwise).
fn seed(granted: &[&str]) -> Seed {
    let mut seed = Seed::blog_walkthrough(ISSUER);
    for id in [MI_SYSTEM, MI_USER_1, MI_USER_2, POD_MI] {
        seed.apps.push(AppSeed {
            client_id: id.into(),
            tenant_id: TENANT.into(),
            ..Default::default()
        });
    }
    seed.apps.push(AppSeed {
        client_id: IB_CLIENT.into(),
        tenant_id: TENANT.into(),
        federated_credentials: vec![FederatedCredential {
            issuer: ISSUER.into(),
            subject: fake_azure::BLOG_SUBJECT.into(),
            audience: IB_AUDIENCE.into(),
        }],
        ..Default::default()
    });
    seed.vaults[0]
        .access
        .extend(granted.iter().map(|id| id.to_string()));
    seed
}

fn all_granted() -> Seed {
    seed(&[MI_SYSTEM, MI_USER_1, MI_USER_2, POD_MI, IB_CLIENT])
}

/// The blog SPC with parameters changed (`""` removes one).
fn spc(changes: &[(&str, &str)]) -> SecretProviderClass {
    let mut spc = SecretProviderClass::from_yaml(BLOG_SPC).expect("blog SPC parses");
    for (key, value) in changes {
        if value.is_empty() {
            spc.parameters.remove(*key);
        } else {
            spc.parameters.insert((*key).into(), (*value).into());
        }
    }
    spc
}

/// A projected token for the blog pod's service account.
fn sa_token(audience: &str, ttl_secs: u64) -> ServiceAccountToken {
    ServiceAccountToken {
        audience: audience.into(),
        token: fake_azure::mint_service_account_token(
            ISSUER,
            fake_azure::BLOG_NAMESPACE,
            fake_azure::BLOG_SERVICE_ACCOUNT,
            audience,
            Duration::from_secs(ttl_secs),
        ),
        expiration: "2099-01-01T00:00:00Z".into(),
    }
}

fn wi_token(ttl_secs: u64) -> ServiceAccountToken {
    sa_token(driver::WORKLOAD_IDENTITY_AUDIENCE, ttl_secs)
}

fn sp_secrets(secret: &str) -> BTreeMap<String, String> {
    [
        ("clientid".to_owned(), fake_azure::BLOG_CLIENT_ID.to_owned()),
        ("clientsecret".to_owned(), secret.to_owned()),
    ]
    .into()
}

impl Harness {
    /// Mounts `spc` for the blog pod with the given tokens and secrets.
    async fn mount_with(
        &self,
        spc: &SecretProviderClass,
        tokens: &[ServiceAccountToken],
        secrets: Option<&BTreeMap<String, String>>,
    ) -> Result<akv_csi_provider::proto::MountResponse, tonic::Status> {
        self.mount_as(&Pod::blog(), spc, tokens, secrets).await
    }

    async fn mount_as(
        &self,
        pod: &Pod,
        spc: &SecretProviderClass,
        tokens: &[ServiceAccountToken],
        secrets: Option<&BTreeMap<String, String>>,
    ) -> Result<akv_csi_provider::proto::MountResponse, tonic::Status> {
        let attributes = driver::attributes(spc, pod, tokens);
        self.mount_raw(driver::mount_request(attributes, secrets, pod))
            .await
    }

    fn token_requests(&self) -> u64 {
        self.fake.counters().token_requests_total()
    }
}

fn assert_blog_secret(response: &akv_csi_provider::proto::MountResponse) {
    assert_eq!(response.files.len(), 1);
    assert_eq!(
        response.files[0].contents,
        fake_azure::BLOG_SECRET_VALUE.as_bytes()
    );
}

fn message(result: Result<akv_csi_provider::proto::MountResponse, tonic::Status>) -> String {
    let status = result.expect_err("the mount fails");
    assert_eq!(status.code(), Code::Unknown, "{}", status.message());
    let message = status.message().to_owned();
    assert!(
        message.starts_with("failed to mount objects, error: "),
        "{message}"
    );
    message
}

fn assert_contains(message: &str, parts: &[&str]) {
    for part in parts {
        assert!(message.contains(part), "{part:?} missing in: {message}");
    }
}

// --- workload identity and service principal: the cache -----------------

#[tokio::test]
async fn workload_identity_second_mount_with_the_same_token_makes_no_token_request() {
    let harness = Harness::start().await;
    let token = wi_token(3600);
    let spc = spc(&[]);
    for _ in 0..3 {
        let response = harness
            .mount_with(&spc, std::slice::from_ref(&token), None)
            .await
            .expect("mount succeeds");
        assert_blog_secret(&response);
    }
    let counters = harness.fake.counters();
    assert_eq!(
        counters.token_requests_total(),
        1,
        "three mounts, one token exchange: {counters:?}"
    );
    assert_eq!(counters.keyvault_requests_total(), 3);

    // Another token (another pod, or a refreshed one): exactly one request.
    let other = wi_token(3599);
    assert_ne!(other.token, token.token);
    harness
        .mount_with(&spc, std::slice::from_ref(&other), None)
        .await
        .expect("mount succeeds");
    harness
        .mount_with(&spc, std::slice::from_ref(&other), None)
        .await
        .expect("mount succeeds");
    assert_eq!(harness.token_requests(), 2);
}

#[tokio::test]
async fn a_token_key_vault_rejects_is_not_served_again() {
    let harness = Harness::start().await;
    let token = wi_token(3600);
    let spc = spc(&[]);
    harness
        .mount_with(&spc, std::slice::from_ref(&token), None)
        .await
        .expect("mount succeeds");
    // Revoked or expired early: Key Vault answers 401 to the cached token.
    harness.fake.expire_tokens();
    let message = message(
        harness
            .mount_with(&spc, std::slice::from_ref(&token), None)
            .await,
    );
    assert_contains(&message, &["answered 401 Unauthorized"]);
    assert_eq!(harness.token_requests(), 1);
    // The entry is gone: the next mount (kubelet retries) gets a new token.
    harness
        .mount_with(&spc, std::slice::from_ref(&token), None)
        .await
        .expect("mount succeeds with a fresh token");
    assert_eq!(harness.token_requests(), 2);
}

#[tokio::test]
async fn concurrent_identical_mounts_make_one_token_request() {
    let harness = Harness::start().await;
    harness
        .fake
        .set_latency(Target::Aad, Duration::from_millis(400));
    let token = wi_token(3600);
    let spc = spc(&[]);
    let mounts = (0..12).map(|_| harness.mount_with(&spc, std::slice::from_ref(&token), None));
    let results = futures_util::future::join_all(mounts).await;
    for result in results {
        assert_blog_secret(&result.expect("mount succeeds"));
    }
    let counters = harness.fake.counters();
    assert_eq!(counters.token_requests_total(), 1, "{counters:?}");
    // One token, so one identity: the twelve reads coalesce (tests/load.rs).
    assert!(counters.keyvault_requests_total() < 12, "{counters:?}");
}

#[tokio::test]
async fn service_principal_is_cached_per_secret() {
    let harness = Harness::start().await;
    let spc = spc(&[("clientID", "")]);
    let good = sp_secrets(fake_azure::BLOG_CLIENT_SECRET);
    for _ in 0..2 {
        assert_blog_secret(
            &harness
                .mount_with(&spc, &[], Some(&good))
                .await
                .expect("mount succeeds"),
        );
    }
    assert_eq!(
        harness
            .fake
            .counters()
            .token_requests_with(grant::CLIENT_SECRET, fake_azure::OUTCOME_OK),
        1
    );
    // A wrong secret for the same client id is a different key: it is sent
    // (and rejected), never answered from the cache.
    let bad = sp_secrets("not-the-secret");
    let message = message(harness.mount_with(&spc, &[], Some(&bad)).await);
    assert_contains(
        &message,
        &[
            "service principal",
            "AADSTS7000215",
            TENANT,
            fake_azure::BLOG_CLIENT_ID,
            &format!("https://login.microsoftonline.com/{TENANT}/oauth2/v2.0/token"),
        ],
    );
    assert_eq!(harness.token_requests(), 2);
}

#[tokio::test]
async fn cache_entries_never_outlive_the_service_account_token() {
    let harness = Harness::start().await;
    let spc = spc(&[]);
    // An assertion whose `exp` has just passed: Entra ID still accepts it
    // (clock skew), but a token obtained with it is never reused.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let expired = fake_azure::mint_jwt(&serde_json::json!({
        "iss": ISSUER,
        "sub": fake_azure::BLOG_SUBJECT,
        "aud": [driver::WORKLOAD_IDENTITY_AUDIENCE],
        "iat": now - 600,
        "nbf": now - 600,
        "exp": now - 5,
    }));
    let token = ServiceAccountToken {
        audience: driver::WORKLOAD_IDENTITY_AUDIENCE.into(),
        token: expired,
        expiration: "2099-01-01T00:00:00Z".into(),
    };
    for _ in 0..2 {
        harness
            .mount_with(&spc, std::slice::from_ref(&token), None)
            .await
            .expect("mount succeeds");
    }
    assert_eq!(
        harness.token_requests(),
        2,
        "not cached past the SA token's exp"
    );

    // A Key Vault token that lives less than the refresh margin is not
    // kept either.
    harness.fake.set_token_lifetime(Duration::from_secs(200));
    let short = wi_token(3598);
    for _ in 0..2 {
        harness
            .mount_with(&spc, std::slice::from_ref(&short), None)
            .await
            .expect("mount succeeds");
    }
    assert_eq!(harness.token_requests(), 4);
}

// --- VM managed identity (IMDS) ------------------------------------------

#[tokio::test]
async fn vm_managed_identity_system_assigned() {
    let harness = Harness::start_with(seed(&[MI_SYSTEM]), &[]).await;
    harness
        .fake
        .set_vm_identities(Some(MI_SYSTEM), &[MI_USER_1])
        .unwrap();
    let spc = spc(&[("clientID", ""), ("useVMManagedIdentity", "true")]);
    for _ in 0..2 {
        assert_blog_secret(&harness.mount_with(&spc, &[], None).await.expect("mount"));
    }
    let counters = harness.fake.counters();
    assert_eq!(
        counters.token_requests_with(grant::MANAGED_IDENTITY, fake_azure::OUTCOME_OK),
        1,
        "cached per (identity, resource): {counters:?}"
    );
    assert_eq!(counters.token_requests_total(), 1);
}

#[tokio::test]
async fn vm_managed_identity_user_assigned_and_its_errors() {
    let harness = Harness::start_with(seed(&[MI_USER_2]), &[]).await;
    harness
        .fake
        .set_vm_identities(None, &[MI_USER_1, MI_USER_2])
        .unwrap();
    let imds = format!("{}/metadata/identity/oauth2/token", harness.fake.http_url());

    let spc2 = spc(&[
        ("clientID", ""),
        ("useVMManagedIdentity", "true"),
        ("userAssignedIdentityID", MI_USER_2),
    ]);
    assert_blog_secret(&harness.mount_with(&spc2, &[], None).await.expect("mount"));

    // Only MI_USER_2 may read the vault: asking for MI_USER_1 gets 403.
    let spc1 = spc(&[
        ("clientID", ""),
        ("useVMManagedIdentity", "true"),
        ("userAssignedIdentityID", MI_USER_1),
    ]);
    let message1 = message(harness.mount_with(&spc1, &[], None).await);
    assert_contains(&message1, &["answered 403 Forbidden"]);

    let unknown = spc(&[
        ("clientID", ""),
        ("useVMManagedIdentity", "true"),
        (
            "userAssignedIdentityID",
            "00000000-0000-0000-0000-000000000000",
        ),
    ]);
    let message2 = message(harness.mount_with(&unknown, &[], None).await);
    assert_contains(
        &message2,
        &[
            "failed to get a Key Vault token for VM managed identity (user-assigned client id 00000000-0000-0000-0000-000000000000)",
            &format!("{imds} answered 400 invalid_request: Identity not found"),
        ],
    );

    // The key misspelled (upstream #853): system-assigned is asked for,
    // IMDS cannot choose, and the hint says why.
    let misspelled = spc(&[
        ("clientID", ""),
        ("useVMManagedIdentity", "true"),
        ("userAssignedIdentityId", MI_USER_2),
    ]);
    let message3 = message(harness.mount_with(&misspelled, &[], None).await);
    assert_contains(
        &message3,
        &[
            "VM managed identity (system-assigned)",
            "Multiple user assigned identities exist",
            "(did you mean \"userAssignedIdentityID\"? \"userAssignedIdentityId\" is not a parameter; parameter names are case-sensitive)",
        ],
    );
    let hint_at = message3.find("did you mean").unwrap();
    assert!(
        message3.find("Multiple user assigned").unwrap() < hint_at,
        "the cause comes first: {message3}"
    );
}

#[tokio::test]
async fn imds_timeout_names_the_imds_endpoint() {
    let harness = Harness::start_with(all_granted(), &["--request-timeout=1s"]).await;
    harness
        .fake
        .set_vm_identities(Some(MI_SYSTEM), &[])
        .unwrap();
    harness
        .fake
        .set_latency(Target::Imds, Duration::from_secs(3));
    let spc = spc(&[("clientID", ""), ("useVMManagedIdentity", "true")]);
    let message = message(harness.mount_with(&spc, &[], None).await);
    assert_contains(
        &message,
        &[
            "VM managed identity (system-assigned)",
            &format!(
                "request to {}/metadata/identity/oauth2/token timed out after 1s",
                harness.fake.http_url()
            ),
        ],
    );
}

// --- pod identity (NMI) --------------------------------------------------

#[tokio::test]
async fn pod_identity_through_nmi() {
    let harness = Harness::start_with(all_granted(), &[]).await;
    let pod = Pod::blog();
    harness
        .fake
        .bind_pod_identity(&pod.namespace, &pod.name, POD_MI)
        .unwrap();
    let spc = spc(&[("clientID", ""), ("usePodIdentity", "true")]);
    for _ in 0..2 {
        assert_blog_secret(&harness.mount_with(&spc, &[], None).await.expect("mount"));
    }
    let counters = harness.fake.counters();
    assert_eq!(
        counters.token_requests_with(grant::POD_IDENTITY, fake_azure::OUTCOME_OK),
        1,
        "{counters:?}"
    );

    // A pod without an AzureAssignedIdentity: upstream's text, NMI's body.
    let other = Pod {
        name: "unbound".into(),
        uid: "11111111-2222-3333-4444-555555555555".into(),
        ..Pod::blog()
    };
    let message = message(harness.mount_as(&other, &spc, &[], None).await);
    assert_contains(
        &message,
        &[
            "failed to get a Key Vault token for pod identity (pod blog-post/unbound)",
            &format!("{}/host/token/", harness.fake.http_url()),
            "nmi response failed with status code: 404, response body: no AzureAssignedIdentity found for pod:blog-post/unbound in assigned state",
        ],
    );
}

#[tokio::test]
async fn pod_identity_without_nmi_names_the_nmi_endpoint() {
    // A port nothing listens on.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let nmi = format!("--nmi-endpoint=http://127.0.0.1:{port}");
    let harness = Harness::start_with(all_granted(), &[&nmi]).await;
    let spc = spc(&[("clientID", ""), ("usePodIdentity", "true")]);
    let message = message(harness.mount_with(&spc, &[], None).await);
    assert_contains(
        &message,
        &[&format!(
            "cannot connect to http://127.0.0.1:{port}/host/token/"
        )],
    );
}

// --- identity binding (AKS token proxy) ----------------------------------

fn ib_spc() -> SecretProviderClass {
    spc(&[("clientID", IB_CLIENT), ("useAzureTokenProxy", "true")])
}

fn ib_tokens() -> Vec<ServiceAccountToken> {
    vec![sa_token(IB_AUDIENCE, 3600), wi_token(3600)]
}

/// A provider whose service-account `ca.crt` is `<harness dir>/sa-ca.crt`
/// (read on each identity-binding request, so tests write it after start);
/// `fake_ca` writes the fake's CA there.
async fn start_ib(extra: &[&str], fake_ca: bool) -> Harness {
    let ca_dir = tempfile::tempdir().unwrap().keep();
    let ca_path = ca_dir.join("sa-ca.crt");
    let ca_flag = format!("--token-proxy-ca-file={}", ca_path.display());
    let mut args: Vec<&str> = extra.to_vec();
    args.push(&ca_flag);
    let harness = Harness::start_with(all_granted(), &args).await;
    if fake_ca {
        std::fs::write(&ca_path, harness.fake.ca_pem()).unwrap();
    }
    std::fs::write(harness.dir().join("sa-ca-path"), ca_path.to_str().unwrap()).unwrap();
    harness
}

/// Replaces the service-account CA of a [`start_ib`] provider.
fn set_sa_ca(harness: &Harness, pem: &str) {
    let path = std::fs::read_to_string(harness.dir().join("sa-ca-path")).unwrap();
    std::fs::write(path, pem).unwrap();
}

#[tokio::test]
async fn identity_binding_with_sni_name_and_service_account_ca() {
    let probe = fake_azure::identity_binding_server_name(fake_azure::CLUSTER_ID);
    let sni = format!("--sni-name={probe}");
    let harness = start_ib(&[&sni], true).await;
    // Minted once: two mints in different seconds are different tokens.
    let tokens = ib_tokens();
    for _ in 0..2 {
        assert_blog_secret(
            &harness
                .mount_with(&ib_spc(), &tokens, None)
                .await
                .expect("mount succeeds"),
        );
    }
    let counters = harness.fake.counters();
    assert_eq!(
        counters.token_requests_with(grant::IDENTITY_BINDING, fake_azure::OUTCOME_OK),
        1,
        "{counters:?}"
    );
    assert_eq!(
        counters.token_requests_total(),
        1,
        "nothing went to Entra ID"
    );
    assert_eq!(counters.token_proxy_server_names.get(&probe), Some(&1));
    assert!(
        !counters.token_proxy_server_names.contains_key("localhost"),
        "no discovery when --sni-name is given: {counters:?}"
    );
}

#[tokio::test]
async fn identity_binding_computes_the_server_name_from_the_api_server_certificate() {
    let harness = start_ib(&[], true).await;
    assert_blog_secret(
        &harness
            .mount_with(&ib_spc(), &ib_tokens(), None)
            .await
            .expect("mount succeeds"),
    );
    let counters = harness.fake.counters();
    let expected = harness.fake.token_proxy_server_name();
    assert_eq!(counters.token_proxy_server_names.get("localhost"), Some(&1));
    assert_eq!(counters.token_proxy_server_names.get(&expected), Some(&1));
    assert!(harness.logs().contains(&expected), "logged once when ready");
}

#[tokio::test]
async fn identity_binding_failures_fail_only_its_mounts() {
    // No ca.crt and no --sni-name: the server name cannot be computed. The
    // provider started anyway and serves other identities.
    let harness = start_ib(&[], false).await;
    let message1 = message(harness.mount_with(&ib_spc(), &ib_tokens(), None).await);
    assert_contains(
        &message1,
        &[
            &format!(
                "failed to get a Key Vault token for identity binding (tenant {TENANT}, client id {IB_CLIENT})"
            ),
            "proxy transport not available: compute SNI name: extract cluster ID from API server certificate: read CA file",
            "(use --sni-name flag to skip automatic SNI detection)",
        ],
    );
    assert_blog_secret(
        &harness
            .mount_with(&spc(&[]), &[wi_token(3600)], None)
            .await
            .expect("workload identity still works"),
    );

    // An http:// proxy URL is upstream's error, on the mount only.
    let bad = Harness::start_with(all_granted(), &["--token-proxy-url=http://127.0.0.1:1"]).await;
    let message2 = message(bad.mount_with(&ib_spc(), &ib_tokens(), None).await);
    assert_contains(
        &message2,
        &[
            "proxy transport not available: custom token endpoint must use https scheme, got \"http\"",
        ],
    );
}

#[tokio::test]
async fn identity_binding_checks_the_name_and_the_ca() {
    // A wrong server name: the API server's certificate does not match it.
    let harness = start_ib(&["--sni-name=awrong.ests.aks"], true).await;
    let message1 = message(harness.mount_with(&ib_spc(), &ib_tokens(), None).await);
    assert_contains(
        &message1,
        &[
            "token proxy, TLS server name awrong.ests.aks",
            "invalid peer certificate: certificate not valid for name \"awrong.ests.aks\"",
        ],
    );

    // A ca.crt from another CA: it is the only trust anchor, so TLS fails
    // even though SSL_CERT_FILE trusts the fake.
    let sni = format!("--sni-name={}", harness.fake.token_proxy_server_name());
    let harness = start_ib(&[&sni], false).await;
    let other = fake_azure::FakeAzure::start(Seed::default()).await.unwrap();
    set_sa_ca(&harness, other.ca_pem());
    let message2 = message(harness.mount_with(&ib_spc(), &ib_tokens(), None).await);
    // Both fakes' CAs share a name, so rustls reports the signature.
    assert_contains(
        &message2,
        &["(token proxy, TLS server name ", "invalid peer certificate"],
    );

    // The CA is re-read on every request: after rotation to the right one,
    // the next mount works.
    set_sa_ca(&harness, harness.fake.ca_pem());
    assert_blog_secret(
        &harness
            .mount_with(&ib_spc(), &ib_tokens(), None)
            .await
            .expect("mount succeeds after the CA file changed"),
    );
}

// --- sovereign clouds ----------------------------------------------------

#[tokio::test]
async fn sovereign_clouds_use_their_authority_and_scope() {
    let harness = Harness::start_with(all_granted(), &[]).await;
    let clouds = [
        ("AzureUSGovernmentCloud", "login.microsoftonline.us"),
        ("AzureChinaCloud", "login.chinacloudapi.cn"),
        ("AzureGermanCloud", "login.microsoftonline.de"),
        ("AzurePublicCloud", "login.microsoftonline.com"),
    ];
    for (i, (cloud, login)) in clouds.iter().enumerate() {
        // A fresh token each time, so every cloud makes its own exchange.
        let token = wi_token(3000 + i as u64);
        let response = harness
            .mount_with(&spc(&[("cloudName", cloud)]), &[token], None)
            .await
            .unwrap_or_else(|e| panic!("{cloud}: {}", e.message()));
        assert_blog_secret(&response);
        let counters = harness.fake.counters();
        assert_eq!(
            counters.token_hosts.get(*login),
            Some(&1),
            "{cloud} asked {login}: {counters:?}"
        );
    }
    // Key Vault accepted each token: the scope was the cloud's vault.
    let counters = harness.fake.counters();
    assert_eq!(
        counters.keyvault_requests_with(VAULT, fake_azure::op::GET_SECRET, 200),
        4
    );

    // IMDS is asked for the cloud's resource too.
    harness
        .fake
        .set_vm_identities(Some(MI_SYSTEM), &[])
        .unwrap();
    let spc = spc(&[
        ("clientID", ""),
        ("useVMManagedIdentity", "true"),
        ("cloudName", "AzureChinaCloud"),
    ]);
    assert_blog_secret(&harness.mount_with(&spc, &[], None).await.expect("mount"));
}

#[tokio::test]
async fn azure_stack_environment_file_sets_authority_and_scope() {
    let harness = Harness::start().await;
    let env_file = harness.dir().join("azurestack.json");
    std::fs::write(
        &env_file,
        r#"{"name":"AzureStackCloud","activeDirectoryEndpoint":"https://login.microsoftonline.com/",
            "keyVaultEndpoint":"https://vault.local.azurestack.external/",
            "keyVaultDNSSuffix":"vault.local.azurestack.external"}"#,
    )
    .unwrap();
    let spc = spc(&[
        ("cloudName", "AzureStackCloud"),
        ("cloudEnvFileName", env_file.to_str().unwrap()),
    ]);
    assert_blog_secret(
        &harness
            .mount_with(&spc, &[wi_token(3600)], None)
            .await
            .expect("mount succeeds"),
    );
}

// --- errors users can act on ---------------------------------------------

#[tokio::test]
async fn misspelled_client_id_says_did_you_mean() {
    let harness = Harness::start().await;
    let spc = spc(&[("clientID", ""), ("clientId", fake_azure::BLOG_CLIENT_ID)]);
    let message = message(harness.mount_with(&spc, &[wi_token(3600)], None).await);
    assert_eq!(
        message,
        "failed to mount objects, error: failed to build auth config for mode None: failed to get credentials, nodePublishSecretRef secret is not set (did you mean \"clientID\"? \"clientId\" is not a parameter; parameter names are case-sensitive)"
    );
    assert_eq!(harness.token_requests(), 0);
}

#[tokio::test]
async fn aad_timeout_names_the_token_endpoint() {
    let harness = Harness::start_with(all_granted(), &["--request-timeout=1s"]).await;
    harness
        .fake
        .set_latency(Target::Aad, Duration::from_secs(3));
    let message = message(harness.mount_with(&spc(&[]), &[wi_token(3600)], None).await);
    assert_contains(
        &message,
        &[
            &format!(
                "workload identity (tenant {TENANT}, client id {})",
                fake_azure::BLOG_CLIENT_ID
            ),
            &format!(
                "request to https://login.microsoftonline.com/{TENANT}/oauth2/v2.0/token timed out after 1s"
            ),
        ],
    );
}

#[tokio::test]
async fn mount_timeout_names_what_was_awaited() {
    let harness = Harness::start_with(all_granted(), &["--mount-timeout=1s"]).await;
    harness
        .fake
        .set_latency(Target::Aad, Duration::from_secs(5));
    let started = std::time::Instant::now();
    let message = message(harness.mount_with(&spc(&[]), &[wi_token(3600)], None).await);
    assert_contains(
        &message,
        &[
            "the mount did not finish within 1s (--mount-timeout); still waiting for",
            &format!("https://login.microsoftonline.com/{TENANT}/oauth2/v2.0/token"),
        ],
    );
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "answered at the budget"
    );
}

#[tokio::test]
async fn driver_deadline_is_honoured_with_our_own_error() {
    let harness = Harness::start_with(all_granted(), &[]).await;
    harness
        .fake
        .set_latency(Target::KeyVault, Duration::from_secs(5));
    let attributes = driver::attributes(&spc(&[]), &Pod::blog(), &[wi_token(3600)]);
    let request = driver::mount_request(attributes, None, &Pod::blog());
    let result = harness
        .mount_with_deadline(request, Duration::from_millis(1500))
        .await;
    let message = message(result);
    assert_contains(
        &message,
        &[
            "(the driver's gRPC deadline, less a margin to answer in time); still waiting for",
            "https://kv-blogpost-jx01.vault.azure.net/secrets/MySecretPassword",
        ],
    );
}

// --- secrets never leak --------------------------------------------------

#[tokio::test]
async fn no_token_in_logs_or_errors_for_any_mode() {
    let sni = format!(
        "--sni-name={}",
        fake_azure::identity_binding_server_name(fake_azure::CLUSTER_ID)
    );
    let harness = start_ib(&["-v=9", &sni], true).await;
    let fake = &harness.fake;
    fake.set_vm_identities(Some(MI_SYSTEM), &[MI_USER_1])
        .unwrap();
    let pod = Pod::blog();
    fake.bind_pod_identity(&pod.namespace, &pod.name, POD_MI)
        .unwrap();
    let wi = wi_token(3600);
    let ib = ib_tokens();
    let secrets = sp_secrets(fake_azure::BLOG_CLIENT_SECRET);
    let mut errors: Vec<String> = Vec::new();
    let error_of = |result: Result<akv_csi_provider::proto::MountResponse, tonic::Status>| {
        result.err().map(|status| status.message().to_owned())
    };
    // Successes in every mode.
    errors.extend(error_of(
        harness
            .mount_with(&spc(&[]), std::slice::from_ref(&wi), None)
            .await,
    ));
    errors.extend(error_of(
        harness
            .mount_with(&spc(&[("clientID", "")]), &[], Some(&secrets))
            .await,
    ));
    let mi = spc(&[("clientID", ""), ("useVMManagedIdentity", "true")]);
    errors.extend(error_of(harness.mount_with(&mi, &[], None).await));
    let pi = spc(&[("clientID", ""), ("usePodIdentity", "true")]);
    errors.extend(error_of(harness.mount_with(&pi, &[], None).await));
    errors.extend(error_of(harness.mount_with(&ib_spc(), &ib, None).await));
    assert!(errors.is_empty(), "every mode mounts: {errors:?}");
    // Failures in every mode, after tokens were issued.
    let missing = Harness::blog_spc_with_objects(
        "array:\n  - |\n    objectName: NoSuchSecret\n    objectType: secret\n",
    );
    errors.extend(error_of(
        harness
            .mount_with(&missing, std::slice::from_ref(&wi), None)
            .await,
    ));
    let bad_secret = sp_secrets("wrong-secret-value-7781");
    errors.extend(error_of(
        harness
            .mount_with(&spc(&[("clientID", "")]), &[], Some(&bad_secret))
            .await,
    ));
    let unknown_mi = spc(&[
        ("clientID", ""),
        ("useVMManagedIdentity", "true"),
        (
            "userAssignedIdentityID",
            "00000000-0000-0000-0000-000000000009",
        ),
    ]);
    errors.extend(error_of(harness.mount_with(&unknown_mi, &[], None).await));
    let wrong_sa = Pod {
        service_account: "default".into(),
        ..Pod::blog()
    };
    let wrong_token = fake_azure::mint_service_account_token(
        ISSUER,
        "blog-post",
        "default",
        driver::WORKLOAD_IDENTITY_AUDIENCE,
        Duration::from_secs(3600),
    );
    errors.extend(error_of(
        harness
            .mount_as(
                &wrong_sa,
                &spc(&[]),
                &[ServiceAccountToken {
                    audience: driver::WORKLOAD_IDENTITY_AUDIENCE.into(),
                    token: wrong_token.clone(),
                    expiration: "2099-01-01T00:00:00Z".into(),
                }],
                None,
            )
            .await,
    ));
    assert_eq!(errors.len(), 4, "{errors:?}");

    let issued = fake.issued_tokens();
    assert!(
        issued.len() >= 5,
        "tokens from every endpoint: {}",
        issued.len()
    );
    let logs = harness.logs();
    assert!(logs.contains("mount succeeded") && logs.contains("mount failed"));
    let mut secrets_to_hide: Vec<String> = issued;
    for t in [&wi.token, &ib[0].token, &wrong_token] {
        secrets_to_hide.push(t.clone());
        secrets_to_hide.push(t.rsplit('.').next().unwrap().to_owned());
        secrets_to_hide.push(t.split('.').nth(1).unwrap().to_owned());
    }
    secrets_to_hide.push(fake_azure::BLOG_CLIENT_SECRET.to_owned());
    secrets_to_hide.push("wrong-secret-value-7781".to_owned());
    for secret in &secrets_to_hide {
        assert!(
            !logs.contains(secret.as_str()),
            "leaked into logs: {secret}"
        );
        for error in &errors {
            assert!(
                !error.contains(secret.as_str()),
                "leaked into an error: {error}"
            );
        }
    }
}
