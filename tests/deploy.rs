//! The kind e2e's expectations, checked here without a cluster: the seed
//! `make e2e-kind` gives the in-cluster fake (deploy/e2e/seed.json, with the
//! cluster's issuer and JWKS filled in) and the SecretProviderClasses it applies
//! (deploy/examples, deploy/e2e/manifests) mount through the real provider,
//! and the e2e's wrong service account fails with AADSTS70021.

use fake_azure::Seed;

use crate::support::driver::{self, Pod, SecretProviderClass};
use crate::support::harness::{Harness, ISSUER};

const E2E_SEED: &str = include_str!("../deploy/e2e/seed.json");
const SYNC_SPC: &str = include_str!("../deploy/examples/secretproviderclass-sync.yaml");
const WRONG_IDENTITY: &str = include_str!("../deploy/e2e/manifests/blog-wrong-identity.yaml");
const BATS_SYNC_SPC: &str = include_str!("../deploy/e2e/manifests/bats-sync-spc.yaml");
const BATS_MULTIPLE_SPC: &str = include_str!("../deploy/e2e/manifests/bats-multiple-spc.yaml");
const BATS_INLINE: &str = include_str!("../deploy/e2e/manifests/bats-inline.yaml");

/// The seed as deploy/e2e/run.sh writes it, for the test issuer.
fn e2e_seed() -> Seed {
    assert!(
        E2E_SEED.contains("__ISSUER__"),
        "run.sh replaces __ISSUER__"
    );
    assert!(
        E2E_SEED.contains("\"__JWKS__\""),
        "run.sh replaces \"__JWKS__\" with the cluster's JWKS"
    );
    // The test "cluster" signs with the fake's built-in keys.
    let jwks = fake_azure::builtin_jwks().to_string();
    let seed = E2E_SEED
        .replace("__ISSUER__", ISSUER)
        .replace("\"__JWKS__\"", &jwks);
    Seed::from_json(&seed).expect("e2e seed parses")
}

/// The YAML documents of a multi-document file.
fn documents(text: &str) -> Vec<&str> {
    text.split("\n---\n").collect()
}

fn spc(text: &str) -> SecretProviderClass {
    crate::support::driver::spc_from_yaml(text).expect("SecretProviderClass parses")
}

/// A pod of the azure.bats scenarios: service account `default`.
fn bats_pod(namespace: &str) -> Pod {
    Pod {
        namespace: namespace.into(),
        name: "busybox-deployment-0".into(),
        service_account: "default".into(),
        ..Pod::blog()
    }
}

#[tokio::test]
async fn blog_examples_mount_with_the_e2e_seed() {
    let harness = Harness::start_with(e2e_seed(), &[]).await;
    for text in [crate::support::harness::BLOG_SPC, SYNC_SPC] {
        let spc = spc(text);
        let response = harness
            .mount_spc(&spc, &Pod::blog())
            .await
            .expect("blog mount succeeds");
        assert_eq!(response.files.len(), 1);
        assert_eq!(response.files[0].path, "MySecretPassword");
        assert_eq!(response.files[0].contents, b"Blog-P@ssw0rd-from-fake-kv");
    }
    let synced = driver::synced_secrets(&spc(SYNC_SPC), &{
        harness
            .mount_spc(&spc(SYNC_SPC), &Pod::blog())
            .await
            .expect("mount")
    })
    .expect("sync");
    assert_eq!(
        synced,
        vec![(
            "secret-blog-post".to_string(),
            "Opaque".to_string(),
            vec![(
                "Password".to_string(),
                b"Blog-P@ssw0rd-from-fake-kv".to_vec()
            )]
        )]
    );
}

#[tokio::test]
async fn the_e2e_wrong_service_account_gets_aadsts70021() {
    let harness = Harness::start_with(e2e_seed(), &[]).await;
    let pod_doc: serde_yaml_ng::Value =
        serde_yaml_ng::from_str(documents(WRONG_IDENTITY)[1]).expect("pod YAML");
    let account = pod_doc["spec"]["serviceAccountName"]
        .as_str()
        .expect("serviceAccountName");
    assert_eq!(
        pod_doc["spec"]["volumes"][0]["csi"]["volumeAttributes"]["secretProviderClass"],
        "azure-kv-password-provider"
    );
    let pod = Pod {
        service_account: account.into(),
        name: "busybox-wrong-identity".into(),
        ..Pod::blog()
    };
    let status = harness
        .mount_spc(&spc(SYNC_SPC), &pod)
        .await
        .expect_err("no federated credential for this account");
    assert!(status.message().contains("AADSTS70021"), "{status:?}");
    // kubelet puts the driver's error into a FailedMount event; keep the
    // code near the front so a truncated event still shows it.
    let at = status.message().find("AADSTS70021").unwrap_or(usize::MAX);
    assert!(at < 600, "AADSTS70021 at offset {at}: {}", status.message());
}

#[tokio::test]
async fn azure_bats_classes_mount_for_each_federated_namespace() {
    let harness = Harness::start_with(e2e_seed(), &[]).await;
    let inline = spc(documents(BATS_INLINE)[0]);
    let response = harness
        .mount_spc(&inline, &bats_pod("default"))
        .await
        .expect("inline mount");
    assert_eq!(response.files[0].path, "secret1");
    assert_eq!(response.files[0].contents, b"test");

    let mut classes = vec![spc(BATS_SYNC_SPC)];
    classes.extend(documents(BATS_MULTIPLE_SPC).into_iter().map(spc));
    for namespace in ["default", "test-ns"] {
        for class in &classes {
            let response = harness
                .mount_spc(class, &bats_pod(namespace))
                .await
                .unwrap_or_else(|e| panic!("{} in {namespace}: {e:?}", class.name));
            let synced = driver::synced_secrets(class, &response).expect("sync");
            assert_eq!(synced.len(), 1);
            assert_eq!(
                synced[0].2,
                vec![("username".to_string(), b"test".to_vec())]
            );
        }
    }
}
