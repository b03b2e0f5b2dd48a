//! Every identity mode over the socket against the fake: which one a
//! SecretProviderClass chooses, workload identity, service principal
//! (nodePublishSecretRef), VM managed identity (IMDS), pod identity (NMI)
//! and AKS identity binding (token proxy), with the errors users see
//! (AADSTS codes, upstream's NMI texts, did-you-mean hints). Their token
//! caching is in `caching.rs`, their timeouts in `timeouts.rs`.

use fake_azure::{KeySeed, Seed, grant};
use tonic::Code;

use crate::support::driver::{Pod, SecretProviderClass};
use crate::support::harness::{BLOG_SPC, Harness};
use crate::support::identities::*;
use crate::support::objects::{jwk, mount, pfx_certificate};

const VAULT: &str = fake_azure::BLOG_VAULT;

fn blog_spc() -> SecretProviderClass {
    crate::support::driver::spc_from_yaml(BLOG_SPC).expect("blog SPC parses")
}

// === which identity ===

/// With `clientID` and a WI token, workload identity is used
/// (a client-assertion exchange); the service-principal path is
/// `mount::service_principal_from_node_publish_secret_ref`.
#[tokio::test]
async fn client_id_and_a_token_choose_workload_identity() {
    let harness = Harness::start().await;
    harness.fake.reset_counters();
    mount(
        &harness,
        &["objectName: MySecretPassword\nobjectType: secret"],
    )
    .await
    .unwrap();
    let counters = harness.fake.counters();
    assert_eq!(
        counters.token_requests_with(fake_azure::grant::CLIENT_ASSERTION, fake_azure::OUTCOME_OK),
        1
    );
    assert_eq!(counters.token_requests_total(), 1);
}

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

// === workload identity ===

/// One client-assertion exchange per mount, whatever the
/// number and types of objects, with the vault scope sent up front (no 401
/// challenge).
#[tokio::test]
async fn workload_identity_is_one_exchange_with_the_vault_scope_up_front() {
    let harness = Harness::start().await;
    harness
        .fake
        .add_key_version(
            VAULT,
            KeySeed {
                name: "k".into(),
                ..jwk("ec-p256")
            },
        )
        .unwrap();
    harness
        .fake
        .add_certificate_version(VAULT, pfx_certificate("c", "rsa-aes.pfx", "rsa/leaf.pem"))
        .unwrap();
    harness.fake.reset_counters();
    mount(
        &harness,
        &[
            "objectName: MySecretPassword\nobjectType: secret",
            "objectName: k\nobjectType: key",
            "objectName: c\nobjectType: cert",
            "objectName: c\nobjectType: secret\nobjectAlias: c.pem",
        ],
    )
    .await
    .unwrap();
    let counters = harness.fake.counters();
    assert_eq!(counters.token_requests_total(), 1, "{counters:?}");
    assert_eq!(counters.challenges, 0);
    assert_eq!(counters.keyvault_requests_total(), 4);
}

#[tokio::test]
async fn wrong_service_account_fails_with_aadsts70021() {
    let harness = Harness::start().await;
    let pod = Pod {
        service_account: "default".into(),
        ..Pod::blog()
    };
    let status = harness
        .mount_spc(&blog_spc(), &pod)
        .await
        .expect_err("mount fails");
    assert_eq!(status.code(), Code::Unknown);
    let message = status.message();
    assert!(
        message.starts_with("failed to mount objects, error: "),
        "{message}"
    );
    assert!(message.contains("AADSTS70021"), "{message}");
    assert!(
        message.contains(fake_azure::BLOG_TENANT_ID),
        "names the tenant: {message}"
    );
    assert!(
        message.contains(fake_azure::BLOG_CLIENT_ID),
        "names the client id: {message}"
    );
    assert!(
        message.contains("login.microsoftonline.com"),
        "names the endpoint: {message}"
    );
    assert_eq!(harness.fake.counters().keyvault_requests_total(), 0);
}

// === service principal ===

#[tokio::test]
async fn service_principal_from_node_publish_secret_ref() {
    let harness = Harness::start().await;
    let mut spc = blog_spc();
    spc.parameters.remove("clientID");
    let pod = Pod::blog();
    let secrets: std::collections::BTreeMap<String, String> = [
        ("ClientID".to_owned(), fake_azure::BLOG_CLIENT_ID.to_owned()),
        (
            "clientsecret".to_owned(),
            fake_azure::BLOG_CLIENT_SECRET.to_owned(),
        ),
    ]
    .into();
    let attributes = crate::support::driver::attributes(&spc, &pod, &[]);
    let response = harness
        .mount_raw(crate::support::driver::mount_request(
            attributes,
            Some(&secrets),
            &pod,
        ))
        .await
        .expect("mount succeeds");
    assert_eq!(
        response.files[0].contents,
        fake_azure::BLOG_SECRET_VALUE.as_bytes()
    );
    let counters = harness.fake.counters();
    assert_eq!(
        counters.token_requests_with(fake_azure::grant::CLIENT_SECRET, fake_azure::OUTCOME_OK),
        1,
        "{counters:?}"
    );

    // Without the secret ref, the upstream error text.
    let attributes = crate::support::driver::attributes(&spc, &pod, &[]);
    let status = harness
        .mount_raw(crate::support::driver::mount_request(
            attributes, None, &pod,
        ))
        .await
        .expect_err("no identity");
    assert_eq!(
        status.message(),
        "failed to mount objects, error: failed to build auth config for mode None: failed to get credentials, nodePublishSecretRef secret is not set"
    );
}

// === VM managed identity (IMDS) ===

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

// === pod identity (NMI) ===

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

// === identity binding (AKS token proxy) ===

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
