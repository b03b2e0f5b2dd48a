//! What a mount's identity turns into before any request: the token
//! cache's key, the identity as named in errors, the endpoint named while
//! waiting, and the request to make on a miss. One function per identity
//! mode; [`plan`] picks it.
//!
//! Pure planning: this module must not send requests or read files.

use secrecy::ExposeSecret;

use super::cache::CacheKey;
use super::{aad, imds, jwt_expiry, pod_identity};
use crate::cloud::Cloud;
use crate::params::IdentityKind;
use crate::params::{Identity, PodInfo, ServiceAccountToken};
use std::time::SystemTime;

/// What one mount's identity turns into.
pub(super) struct Plan {
    pub key: CacheKey,
    pub identity: String,
    /// Named in a mount-budget error while the request is awaited.
    pub endpoint: String,
    /// The service-account token's `exp`, which caps the cache entry.
    pub not_after: Option<SystemTime>,
    pub request: Request,
}

/// The request of one mode, owned (it runs as its own task).
pub(super) enum Request {
    Aad {
        url: String,
        request: aad::TokenRequest,
    },
    Imds(imds::ImdsRequest),
    Nmi(pod_identity::NmiRequest),
    TokenProxy(aad::TokenRequest),
}

/// Where a mount's tokens come from: its tenant and cloud, and the
/// process's endpoints.
pub(super) struct Target<'a> {
    pub tenant_id: &'a str,
    pub cloud: &'a Cloud,
    /// IMDS base URL.
    pub imds: &'a str,
    /// NMI base URL.
    pub nmi: &'a str,
    /// The token proxy URL as configured.
    pub token_proxy: &'a str,
}

/// The plan of `identity`'s mode.
pub(super) fn plan(target: &Target<'_>, identity: &Identity, pod: &PodInfo) -> Plan {
    match identity {
        Identity::WorkloadIdentity { client_id, token } => {
            workload_identity(target, client_id, token)
        }
        Identity::ServicePrincipal {
            client_id,
            client_secret,
        } => service_principal(target, client_id, client_secret),
        Identity::TokenProxy { client_id, token } => identity_binding(target, client_id, token),
        Identity::VmManagedIdentity {
            user_assigned_identity_id,
        } => vm_managed_identity(target, user_assigned_identity_id),
        Identity::PodIdentity => pod_identity(target, pod),
    }
}

/// The pod's service-account token exchanged at Entra ID.
fn workload_identity(target: &Target<'_>, client_id: &str, token: &ServiceAccountToken) -> Plan {
    let mode = IdentityKind::WorkloadIdentity;
    let credential = aad::Credential::Assertion(token.token.clone());
    let (key, request) = aad_request(target, mode, client_id, credential);
    let url = aad::endpoint(target.cloud.authority_host(), target.tenant_id);
    Plan {
        key,
        identity: described(target, mode, client_id),
        endpoint: url.clone(),
        not_after: assertion_expiry(token),
        request: Request::Aad { url, request },
    }
}

/// `clientid` / `clientsecret` at Entra ID.
fn service_principal(
    target: &Target<'_>,
    client_id: &str,
    client_secret: &secrecy::SecretString,
) -> Plan {
    let mode = IdentityKind::ServicePrincipal;
    let credential = aad::Credential::Secret(client_secret.clone());
    let (key, request) = aad_request(target, mode, client_id, credential);
    let url = aad::endpoint(target.cloud.authority_host(), target.tenant_id);
    Plan {
        key,
        identity: described(target, mode, client_id),
        endpoint: url.clone(),
        not_after: None,
        request: Request::Aad { url, request },
    }
}

/// The pod's token exchanged through the AKS token proxy.
fn identity_binding(target: &Target<'_>, client_id: &str, token: &ServiceAccountToken) -> Plan {
    let mode = IdentityKind::IdentityBinding;
    let credential = aad::Credential::Assertion(token.token.clone());
    let (mut key, request) = aad_request(target, mode, client_id, credential);
    key.authority = target.token_proxy.to_owned();
    Plan {
        key,
        identity: described(target, mode, client_id),
        endpoint: format!("the token proxy {}", target.token_proxy),
        not_after: assertion_expiry(token),
        request: Request::TokenProxy(request),
    }
}

/// IMDS, system- or user-assigned.
fn vm_managed_identity(target: &Target<'_>, user_assigned_identity_id: &str) -> Plan {
    let mode = IdentityKind::VmManagedIdentity;
    let request = imds::ImdsRequest {
        base: target.imds.to_owned(),
        resource: target.cloud.keyvault_resource().to_owned(),
        client_id: user_assigned_identity_id.to_owned(),
    };
    let identity = match user_assigned_identity_id {
        "" => format!("{mode} (system-assigned)"),
        id => format!("{mode} (user-assigned client id {id})"),
    };
    Plan {
        key: CacheKey {
            mode,
            authority: request.base.clone(),
            tenant_id: String::new(),
            identity: user_assigned_identity_id.to_owned(),
            resource: request.resource.clone(),
            credential: None,
        },
        identity,
        endpoint: request.endpoint(),
        not_after: None,
        request: Request::Imds(request),
    }
}

/// aad-pod-identity's NMI, per pod.
fn pod_identity(target: &Target<'_>, pod: &PodInfo) -> Plan {
    let mode = IdentityKind::PodIdentity;
    let request = pod_identity::NmiRequest {
        base: target.nmi.to_owned(),
        resource: target.cloud.keyvault_resource().to_owned(),
        pod_name: pod.name.clone(),
        pod_namespace: pod.namespace.clone(),
    };
    // NMI decides the identity per pod; a recreated pod (new uid) may be
    // bound to another one.
    let pod_key = format!(
        "{}/{}/{}",
        pod.namespace,
        pod.name,
        pod.uid.as_deref().unwrap_or("")
    );
    Plan {
        key: CacheKey {
            mode,
            authority: request.base.clone(),
            tenant_id: String::new(),
            identity: pod_key,
            resource: request.resource.clone(),
            credential: None,
        },
        identity: format!("{mode} (pod {}/{})", pod.namespace, pod.name),
        endpoint: request.endpoint(),
        not_after: None,
        request: Request::Nmi(request),
    }
}

/// The cache key and the Entra ID request of a client-credentials mode.
fn aad_request(
    target: &Target<'_>,
    mode: IdentityKind,
    client_id: &str,
    credential: aad::Credential,
) -> (CacheKey, aad::TokenRequest) {
    let scope = target.cloud.keyvault_scope();
    let secret = match &credential {
        aad::Credential::Assertion(s) | aad::Credential::Secret(s) => s.expose_secret(),
    };
    let key = CacheKey {
        mode,
        authority: target.cloud.authority_host().to_owned(),
        tenant_id: target.tenant_id.to_owned(),
        identity: client_id.to_owned(),
        resource: scope.clone(),
        credential: Some(CacheKey::digest(secret)),
    };
    let request = aad::TokenRequest {
        tenant_id: target.tenant_id.to_owned(),
        client_id: client_id.to_owned(),
        scope,
        credential,
    };
    (key, request)
}

/// `<mode> (tenant …, client id …)`.
fn described(target: &Target<'_>, mode: IdentityKind, client_id: &str) -> String {
    format!(
        "{mode} (tenant {}, client id {client_id})",
        target.tenant_id
    )
}

/// The `exp` claim of a service-account token (a JWT), read without
/// verifying anything: it only shortens how long a token obtained with the
/// assertion is cached. When it cannot be read, the epoch: the Key Vault
/// token is then used for this mount and not cached.
fn assertion_expiry(token: &ServiceAccountToken) -> Option<SystemTime> {
    Some(jwt_expiry(token.token.expose_secret()).unwrap_or(SystemTime::UNIX_EPOCH))
}
