//! Many pods of one Deployment, each with its own projected token, reading
//! secrets `s0..sN` of the blog vault, with workload identity or one of two
//! user-assigned VM identities; Key Vault GETs counted by status and
//! counters read from /metrics. For tests of caching, coalescing,
//! throttling and concurrency.

#![allow(dead_code)]

use fake_azure::{AppSeed, SecretSeed, Seed, op};

use crate::support::driver::{self, Pod, SecretProviderClass, ServiceAccountToken};
use crate::support::harness::{Harness, ISSUER};

const VAULT: &str = fake_azure::BLOG_VAULT;

pub const SECRET: &str = fake_azure::BLOG_SECRET_NAME;
pub const VM_USER_1: &str = "5a5a5a5a-0000-4000-8000-000000000012";
pub const VM_USER_2: &str = "5a5a5a5a-0000-4000-8000-000000000013";

/// The blog seed, secrets `s0..s{n-1}`, and two user-assigned VM
/// identities that may read the vault.
pub fn seed_with_secrets(n: usize) -> Seed {
    let mut seed = Seed::blog_walkthrough(ISSUER);
    for i in 0..n {
        seed.vaults[0]
            .secrets
            .push(SecretSeed::new(format!("s{i}"), format!("value-{i}")));
    }
    for id in [VM_USER_1, VM_USER_2] {
        seed.apps.push(AppSeed {
            client_id: id.into(),
            tenant_id: fake_azure::BLOG_TENANT_ID.into(),
            ..Default::default()
        });
        seed.vaults[0].access.push(id.into());
    }
    seed
}

pub async fn start_with_secrets(n: usize, args: &[&str]) -> Harness {
    let harness = Harness::start_with(seed_with_secrets(n), args).await;
    harness
        .fake
        .set_vm_identities(None, &[VM_USER_1, VM_USER_2])
        .unwrap();
    harness
}

/// The blog SPC reading `names` (secrets).
pub fn spc_reading(names: &[&str]) -> SecretProviderClass {
    let mut objects = String::from("array:\n");
    for name in names {
        objects.push_str(&format!(
            "  - |\n    objectName: {name}\n    objectType: secret\n"
        ));
    }
    Harness::blog_spc_with_objects(&objects)
}

/// The same objects read with a user-assigned VM identity.
pub fn vm_spc_reading(names: &[&str], client_id: &str) -> SecretProviderClass {
    let mut spc = spc_reading(names);
    spc.parameters.remove("clientID");
    spc.parameters
        .insert("useVMManagedIdentity".into(), "true".into());
    spc.parameters
        .insert("userAssignedIdentityID".into(), client_id.into());
    spc
}

/// Pod `i` of the blog Deployment, with its own projected token (kubelet
/// binds each token to its pod, so no two pods present the same one).
pub fn pod_with_token(i: usize) -> (Pod, ServiceAccountToken) {
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
    pub async fn mount_pod(
        &self,
        spc: &SecretProviderClass,
        i: usize,
    ) -> Result<akv_csi_provider::proto::MountResponse, tonic::Status> {
        let (pod, token) = pod_with_token(i);
        let attributes = driver::attributes(spc, &pod, &[token]);
        self.mount_raw(driver::mount_request(attributes, None, &pod))
            .await
    }

    /// Key Vault GETs of secrets answered with `status`.
    pub fn gets(&self, status: u16) -> u64 {
        self.fake
            .counters()
            .keyvault_requests_with(VAULT, op::GET_SECRET, status)
    }

    /// A counter from /metrics (0 when the series does not exist yet).
    pub async fn metric(&self, series: &str) -> f64 {
        let text = self.scrape().await;
        text.lines()
            .find_map(|line| line.strip_prefix(series)?.trim().parse().ok())
            .unwrap_or(0.0)
    }
}

pub fn file_text(response: &akv_csi_provider::proto::MountResponse, path: &str) -> String {
    let file = response
        .files
        .iter()
        .find(|f| f.path == path)
        .unwrap_or_else(|| panic!("no file {path}"));
    String::from_utf8(file.contents.clone()).unwrap()
}

pub fn error_message(
    result: Result<akv_csi_provider::proto::MountResponse, tonic::Status>,
) -> String {
    result.expect_err("the mount fails").message().to_owned()
}
