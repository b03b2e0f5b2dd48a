//! A provider under faults: short per-request timeouts, a VM identity and a
//! pod identity bound for the blog pod, token lifetimes shorter than the
//! cache's refresh margin (so every mount asks its token endpoint), a fresh
//! projected token per mount, and [`check`]: success with the blog secret
//! or one error line naming the endpoint that failed.

#![allow(dead_code)]

use std::time::Duration;

use akv_csi_provider::proto::{MountRequest, MountResponse};
use fake_azure::{BLOG_CLIENT_ID, BLOG_SECRET_VALUE, BLOG_TENANT_ID, BLOG_VAULT, Seed};

use crate::support::driver::{self, Pod, ServiceAccountToken};
use crate::support::harness::{BLOG_SPC, Harness, ISSUER};

/// The identity a scenario mounts with, and so the token endpoint it
/// reaches.
#[derive(Clone, Copy, Debug)]
pub enum Via {
    /// Workload identity with a fresh service-account token (a cache
    /// miss): Entra ID, then Key Vault.
    WorkloadIdentity,
    /// VM managed identity: IMDS, then Key Vault.
    Imds,
    /// Pod identity: NMI, then Key Vault.
    Nmi,
}

#[derive(Clone, Copy, Debug)]
pub enum Endpoint {
    KeyVault,
    Aad,
    Imds,
    Nmi,
}

pub const MOUNTS_PER_SCENARIO: usize = 2;
pub const REQUEST_TIMEOUT: &str = "--request-timeout=1s";
/// Longer than the per-request timeout.
pub const STALL: Duration = Duration::from_secs(3);

/// The blog seed; its app is also the VM's and the pod's identity.
pub fn chaos_seed() -> Seed {
    Seed::blog_walkthrough(ISSUER)
}

pub struct Chaos {
    pub harness: Harness,
    pub pod: Pod,
    /// Makes every projected token unique, so Entra ID is asked each time.
    pub minted: std::sync::atomic::AtomicU64,
}

impl Chaos {
    pub async fn start(extra: &[&str]) -> Self {
        let mut args = vec![REQUEST_TIMEOUT, "--mount-timeout=30s"];
        args.extend(extra);
        let harness = Harness::start_with(chaos_seed(), &args).await;
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

    pub fn request(&self, via: Via, history: bool) -> MountRequest {
        let object = if history {
            "    objectVersionHistory: 2\n"
        } else {
            ""
        };
        let mut spc = crate::support::driver::spc_from_yaml(BLOG_SPC).unwrap();
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

    pub fn fresh_token(&self) -> ServiceAccountToken {
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

    pub fn endpoint(&self, endpoint: Endpoint) -> String {
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
pub fn check(what: &str, result: Result<MountResponse, tonic::Status>, endpoint: &str) -> bool {
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
