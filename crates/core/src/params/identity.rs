//! Which identity a mount authenticates as: the explicit mode flags, the
//! workload-identity and identity-binding tokens (by audience), the service
//! principal's secret; upstream's `buildAuthConfig` order and texts.
//!
//! Selects and carries credentials; must not fetch tokens (the provider's
//! `auth` does) and never puts a credential in an error or `Debug`.

use std::collections::BTreeMap;
use std::fmt;

use secrecy::SecretString;
use serde::Deserialize;
use thiserror::Error;
use zeroize::Zeroize;

use super::ParamsError;
use super::attributes::{
    CLIENT_ID, JsonError, SERVICE_ACCOUNT_TOKENS, StringMap, USE_AZURE_TOKEN_PROXY,
    USE_POD_IDENTITY, USE_VM_MANAGED_IDENTITY, USER_ASSIGNED_IDENTITY_ID,
};

/// Service-account token audience for workload identity.
pub const WORKLOAD_IDENTITY_AUDIENCE: &str = "api://AzureADTokenExchange";
/// Service-account token audience for AKS identity binding.
pub const IDENTITY_BINDING_AUDIENCE: &str = "api://AKSIdentityBinding";

/// Which kind of identity a mount authenticates as: the one type for
/// "which identity" in logs, errors, cache keys and metric labels.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum IdentityKind {
    /// The pod's `api://AzureADTokenExchange` token exchanged at Entra ID.
    WorkloadIdentity,
    /// `clientid`/`clientsecret` of the nodePublishSecretRef, at Entra ID.
    ServicePrincipal,
    /// The node's managed identity at IMDS (`useVMManagedIdentity`).
    VmManagedIdentity,
    /// aad-pod-identity's NMI (`usePodIdentity`).
    PodIdentity,
    /// AKS identity binding through the token proxy (`useAzureTokenProxy`).
    IdentityBinding,
}

/// The identity a mount authenticates as.
#[derive(Clone, Debug)]
pub enum Identity {
    WorkloadIdentity {
        client_id: String,
        token: ServiceAccountToken,
    },
    ServicePrincipal {
        client_id: String,
        client_secret: SecretString,
    },
    /// An empty id means the system-assigned identity.
    VmManagedIdentity {
        user_assigned_identity_id: String,
    },
    PodIdentity,
    TokenProxy {
        client_id: String,
        token: ServiceAccountToken,
    },
}

/// The pod's projected service-account token for one audience.
#[derive(Clone, Debug)]
pub struct ServiceAccountToken {
    pub token: SecretString,
    /// `expirationTimestamp` as sent (RFC 3339), if any.
    pub expiration: Option<String>,
}

/// Why no identity could be configured (upstream texts).
#[derive(Debug, Error, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum AuthConfigError {
    #[error("clientID is required for identity binding")]
    IdentityBindingClientId,
    #[error("service account tokens are required for identity binding")]
    IdentityBindingTokens,
    #[error("failed to parse service account token for identity binding, error: {0}")]
    IdentityBindingToken(TokenError),
    #[error("failed to parse workload identity tokens, error: {0}")]
    WorkloadIdentityToken(TokenError),
    #[error("failed to get credentials, nodePublishSecretRef secret is not set")]
    SecretNotSet,
    #[error("could not find clientid in secrets")]
    ClientIdNotFound,
    #[error("could not find clientsecret in secrets")]
    ClientSecretNotFound,
}

/// Why the service-account token for an audience is unusable.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum TokenError {
    #[error("service account tokens not found")]
    NotFound,
    #[error("failed to unmarshal service account tokens, error: {0}")]
    Unmarshal(JsonError),
    #[error("token for audience {0} not found")]
    AudienceNotFound(&'static str),
}

// === impl IdentityKind ===

impl IdentityKind {
    /// Every kind, in a stable order.
    pub const ALL: [Self; 5] = [
        Self::WorkloadIdentity,
        Self::ServicePrincipal,
        Self::VmManagedIdentity,
        Self::PodIdentity,
        Self::IdentityBinding,
    ];

    /// The name used in errors and logs (also `Display`).
    pub fn name(self) -> &'static str {
        match self {
            Self::WorkloadIdentity => "workload identity",
            Self::ServicePrincipal => "service principal",
            Self::VmManagedIdentity => "VM managed identity",
            Self::PodIdentity => "pod identity",
            Self::IdentityBinding => "identity binding",
        }
    }

    /// The metric label value (`mode` of the token families).
    pub fn label(self) -> &'static str {
        match self {
            Self::WorkloadIdentity => "workload_identity",
            Self::ServicePrincipal => "service_principal",
            Self::VmManagedIdentity => "vm_managed_identity",
            Self::PodIdentity => "pod_identity",
            Self::IdentityBinding => "token_proxy",
        }
    }

    /// Upstream's name of the mode this kind is selected under
    /// (`failed to build auth config for mode …`): workload identity and
    /// service principal are mode `None`.
    pub fn upstream_mode_name(self) -> &'static str {
        match self {
            Self::WorkloadIdentity | Self::ServicePrincipal => "None",
            Self::PodIdentity => "PodIdentity",
            Self::VmManagedIdentity => "VMManagedIdentity",
            Self::IdentityBinding => "AzureTokenProxy",
        }
    }
}

impl fmt::Display for IdentityKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

// === impl Identity ===

impl Identity {
    /// Which kind of identity this is.
    pub fn kind(&self) -> IdentityKind {
        match self {
            Self::WorkloadIdentity { .. } => IdentityKind::WorkloadIdentity,
            Self::ServicePrincipal { .. } => IdentityKind::ServicePrincipal,
            Self::VmManagedIdentity { .. } => IdentityKind::VmManagedIdentity,
            Self::PodIdentity => IdentityKind::PodIdentity,
            Self::TokenProxy { .. } => IdentityKind::IdentityBinding,
        }
    }
}

/// The identity kind the flags (`usePodIdentity`, `useVMManagedIdentity`,
/// `useAzureTokenProxy`) select explicitly; `None`: workload identity or
/// service principal, decided by the credentials.
pub(super) fn explicit_kind(attrs: &StringMap) -> Result<Option<IdentityKind>, ParamsError> {
    let flags = [
        (USE_POD_IDENTITY, IdentityKind::PodIdentity),
        (USE_VM_MANAGED_IDENTITY, IdentityKind::VmManagedIdentity),
        (USE_AZURE_TOKEN_PROXY, IdentityKind::IdentityBinding),
    ];
    let mut enabled = Vec::new();
    for (flag, mode) in flags {
        let value = match attrs.get(flag) {
            "" => false,
            raw => crate::go::parse_bool(raw)
                .map_err(|source| ParamsError::ParseBool { flag, source })?,
        };
        if value {
            enabled.push(mode);
        }
    }
    match enabled[..] {
        [] => Ok(None),
        [mode] => Ok(Some(mode)),
        _ => Err(ParamsError::MultipleIdentityModes),
    }
}

/// Upstream's `buildAuthConfig` + `NewConfig`.
pub(super) fn identity(
    mode: Option<IdentityKind>,
    attrs: &StringMap,
    secrets: Option<&StringMap>,
) -> Result<Identity, AuthConfigError> {
    let client_id = attrs.get(CLIENT_ID);
    // Attributes win; Kubernetes ≥ 1.35 may send the tokens in `secrets`.
    let tokens = match attrs.get(SERVICE_ACCOUNT_TOKENS) {
        "" => secrets.map_or("", |s| s.get(SERVICE_ACCOUNT_TOKENS)),
        tokens => tokens,
    };
    if mode == Some(IdentityKind::IdentityBinding) {
        if client_id.is_empty() {
            return Err(AuthConfigError::IdentityBindingClientId);
        }
        if tokens.is_empty() {
            return Err(AuthConfigError::IdentityBindingTokens);
        }
        let token = token_for_audience(tokens, IDENTITY_BINDING_AUDIENCE)
            .map_err(AuthConfigError::IdentityBindingToken)?;
        let client_id = client_id.to_owned();
        return Ok(Identity::TokenProxy { client_id, token });
    }
    // Upstream quirk, kept for compatibility: a non-empty clientID makes the
    // workload-identity token mandatory in every other mode, even pod
    // identity and VM managed identity, which then never use it.
    let workload_token = match client_id {
        "" => None,
        _ => Some(
            token_for_audience(tokens, WORKLOAD_IDENTITY_AUDIENCE)
                .map_err(AuthConfigError::WorkloadIdentityToken)?,
        ),
    };
    match (mode, workload_token) {
        (Some(IdentityKind::PodIdentity), _) => Ok(Identity::PodIdentity),
        (Some(IdentityKind::VmManagedIdentity), _) => Ok(Identity::VmManagedIdentity {
            user_assigned_identity_id: attrs.get(USER_ASSIGNED_IDENTITY_ID).to_owned(),
        }),
        (_, Some(token)) => Ok(Identity::WorkloadIdentity {
            client_id: client_id.to_owned(),
            token,
        }),
        (_, None) => service_principal(secrets),
    }
}

/// The pod's token for `audience` from the driver's JSON map
/// `audience → {"token", "expirationTimestamp"}`.
fn token_for_audience(
    tokens: &str,
    audience: &'static str,
) -> Result<ServiceAccountToken, TokenError> {
    #[derive(Deserialize)]
    struct Entry {
        token: Option<String>,
        #[serde(rename = "expirationTimestamp")]
        expiration: Option<String>,
    }
    impl Drop for Entry {
        fn drop(&mut self) {
            self.token.zeroize();
        }
    }

    if tokens.is_empty() {
        return Err(TokenError::NotFound);
    }
    let expected = "a JSON object of audience to {token, expirationTimestamp}";
    // `null` at either level reads as empty, as in Go.
    let map: Option<BTreeMap<String, Option<Entry>>> = serde_json::from_str(tokens)
        .map_err(|e| TokenError::Unmarshal(JsonError::new(&e, expected)))?;
    let entry = map
        .as_ref()
        .and_then(|m| m.get(audience))
        .and_then(Option::as_ref);
    match entry.and_then(|e| e.token.as_deref()) {
        None | Some("") => Err(TokenError::AudienceNotFound(audience)),
        Some(token) => Ok(ServiceAccountToken {
            token: SecretString::from(token),
            expiration: entry.and_then(|e| e.expiration.clone()),
        }),
    }
}

/// `clientid` / `clientsecret` from the nodePublishSecretRef data, keys
/// matched case-insensitively (an exact lower-case key first).
fn service_principal(secrets: Option<&StringMap>) -> Result<Identity, AuthConfigError> {
    // A map holding only the service-account tokens (Kubernetes ≥ 1.35
    // without a nodePublishSecretRef) counts as no secret at all.
    let only_tokens = |s: &&StringMap| s.0.len() == 1 && s.0.contains_key(SERVICE_ACCOUNT_TOKENS);
    let secrets = secrets
        .filter(|s| !only_tokens(s))
        .ok_or(AuthConfigError::SecretNotSet)?;
    let lookup = |name: &str| {
        let exact = secrets.0.get(name).into_iter();
        let folded = secrets
            .0
            .iter()
            .filter(|(k, _)| k.to_lowercase() == name)
            .map(|(_, v)| v);
        exact
            .chain(folded)
            .find(|v| !v.is_empty())
            .map(String::as_str)
    };
    let client_id = lookup("clientid").ok_or(AuthConfigError::ClientIdNotFound)?;
    let client_secret = lookup("clientsecret").ok_or(AuthConfigError::ClientSecretNotFound)?;
    Ok(Identity::ServicePrincipal {
        client_id: client_id.to_owned(),
        client_secret: SecretString::from(client_secret),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_have_stable_labels_and_names() {
        let labels: Vec<_> = IdentityKind::ALL.iter().map(|k| k.label()).collect();
        assert_eq!(
            labels,
            [
                "workload_identity",
                "service_principal",
                "vm_managed_identity",
                "pod_identity",
                "token_proxy"
            ]
        );
        assert_eq!(
            IdentityKind::VmManagedIdentity.to_string(),
            "VM managed identity"
        );
        let upstream: Vec<_> = IdentityKind::ALL
            .iter()
            .map(|k| k.upstream_mode_name())
            .collect();
        assert_eq!(
            upstream,
            [
                "None",
                "None",
                "VMManagedIdentity",
                "PodIdentity",
                "AzureTokenProxy"
            ]
        );
    }
}
