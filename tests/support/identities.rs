//! Identities for the tests: a seed with node identities, a pod identity and
//! an identity-binding app; SecretProviderClasses for each identity mode;
//! projected tokens; mounting with given tokens and secrets; and the
//! assertions on mount errors the identity tests share.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::time::Duration;

use fake_azure::{AppSeed, FederatedCredential, Seed};
use tonic::Code;

use crate::support::driver::{self, Pod, SecretProviderClass, ServiceAccountToken};
use crate::support::harness::{BLOG_SPC, Harness, ISSUER};

pub const VAULT: &str = fake_azure::BLOG_VAULT;
pub const TENANT: &str = fake_azure::BLOG_TENANT_ID;
pub const MI_SYSTEM: &str = "5a5a5a5a-0000-4000-8000-000000000001";
pub const MI_USER_1: &str = "5a5a5a5a-0000-4000-8000-000000000002";
pub const MI_USER_2: &str = "5a5a5a5a-0000-4000-8000-000000000003";
pub const POD_MI: &str = "5a5a5a5a-0000-4000-8000-000000000004";
pub const IB_CLIENT: &str = "5a5a5a5a-0000-4000-8000-000000000005";
pub const IB_AUDIENCE: &str = "api://AKSIdentityBinding";

/// The blog seed plus node identities, a pod identity and an identity-
/// binding app, each allowed to read the blog vault (unless `grant` says
/// otherwise).
pub fn seed(granted: &[&str]) -> Seed {
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

pub fn all_granted() -> Seed {
    seed(&[MI_SYSTEM, MI_USER_1, MI_USER_2, POD_MI, IB_CLIENT])
}

/// The blog SPC with parameters changed (`""` removes one).
pub fn spc(changes: &[(&str, &str)]) -> SecretProviderClass {
    let mut spc = crate::support::driver::spc_from_yaml(BLOG_SPC).expect("blog SPC parses");
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
pub fn sa_token(audience: &str, ttl_secs: u64) -> ServiceAccountToken {
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

pub fn wi_token(ttl_secs: u64) -> ServiceAccountToken {
    sa_token(driver::WORKLOAD_IDENTITY_AUDIENCE, ttl_secs)
}

pub fn sp_secrets(secret: &str) -> BTreeMap<String, String> {
    [
        ("clientid".to_owned(), fake_azure::BLOG_CLIENT_ID.to_owned()),
        ("clientsecret".to_owned(), secret.to_owned()),
    ]
    .into()
}

impl Harness {
    /// Mounts `spc` for the blog pod with the given tokens and secrets.
    pub async fn mount_with(
        &self,
        spc: &SecretProviderClass,
        tokens: &[ServiceAccountToken],
        secrets: Option<&BTreeMap<String, String>>,
    ) -> Result<akv_csi_provider::proto::MountResponse, tonic::Status> {
        self.mount_as(&Pod::blog(), spc, tokens, secrets).await
    }

    pub async fn mount_as(
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

    pub fn token_requests(&self) -> u64 {
        self.fake.counters().token_requests_total()
    }
}

pub fn assert_blog_secret(response: &akv_csi_provider::proto::MountResponse) {
    assert_eq!(response.files.len(), 1);
    assert_eq!(
        response.files[0].contents,
        fake_azure::BLOG_SECRET_VALUE.as_bytes()
    );
}

pub fn message(result: Result<akv_csi_provider::proto::MountResponse, tonic::Status>) -> String {
    let status = result.expect_err("the mount fails");
    assert_eq!(status.code(), Code::Unknown, "{}", status.message());
    let message = status.message().to_owned();
    assert!(
        message.starts_with("failed to mount objects, error: "),
        "{message}"
    );
    message
}

pub fn assert_contains(message: &str, parts: &[&str]) {
    for part in parts {
        assert!(message.contains(part), "{part:?} missing in: {message}");
    }
}

pub fn ib_spc() -> SecretProviderClass {
    spc(&[("clientID", IB_CLIENT), ("useAzureTokenProxy", "true")])
}

pub fn ib_tokens() -> Vec<ServiceAccountToken> {
    vec![sa_token(IB_AUDIENCE, 3600), wi_token(3600)]
}

/// A provider whose service-account `ca.crt` is `<harness dir>/sa-ca.crt`
/// (read on each identity-binding request, so tests write it after start);
/// `fake_ca` writes the fake's CA there.
pub async fn start_ib(extra: &[&str], fake_ca: bool) -> Harness {
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
pub fn set_sa_ca(harness: &Harness, pem: &str) {
    let path = std::fs::read_to_string(harness.dir().join("sa-ca-path")).unwrap();
    std::fs::write(path, pem).unwrap();
}
