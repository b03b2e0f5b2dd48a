//! Access tokens for Key Vault, one per mount, for the identity the
//! SecretProviderClass selects: workload identity (the pod's service-account
//! token exchanged as a client assertion) or a service principal's client
//! secret, both at Entra ID's v2 token endpoint (see `auth/aad.rs`).
//!
//! Identity selection itself is pure and lives in `params`; this module only
//! performs the exchange. It never logs or returns a token, an assertion or a
//! client secret in an error.

mod aad;

use std::borrow::Cow;

use secrecy::{ExposeSecret, SecretString};
use thiserror::Error;

use crate::cloud::Cloud;
use crate::http::{Http, SendError};
use crate::metrics::TokenMode;
use crate::params::Identity;

pub use aad::AadError;

/// A bearer token for Key Vault. `Debug` never shows the token.
pub struct AccessToken {
    secret: SecretString,
    /// Tenant the token was issued in.
    pub tenant_id: String,
    /// Client id of the identity the token represents.
    pub client_id: String,
}

impl AccessToken {
    /// The bearer value, for the `Authorization` header only.
    pub fn bearer(&self) -> &str {
        self.secret.expose_secret()
    }
}

impl std::fmt::Debug for AccessToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AccessToken")
            .field("tenant_id", &self.tenant_id)
            .field("client_id", &self.client_id)
            .finish_non_exhaustive()
    }
}

/// Why no token could be obtained.
#[derive(Debug, Error)]
pub enum AuthError {
    /// Entra ID answered with an error (AADSTS code and description).
    #[error(
        "failed to get a Key Vault token for {mode} (tenant {tenant_id}, client id {client_id}) from {endpoint}: {source}"
    )]
    Aad {
        mode: &'static str,
        tenant_id: String,
        client_id: String,
        endpoint: String,
        #[source]
        source: AadError,
    },
    /// The token endpoint could not be reached.
    #[error(
        "failed to get a Key Vault token for {mode} (tenant {tenant_id}, client id {client_id}): {source}"
    )]
    Unreachable {
        mode: &'static str,
        tenant_id: String,
        client_id: String,
        #[source]
        source: SendError,
    },
    /// An identity mode this build cannot use yet.
    #[error(
        "identity mode {mode} is not supported by akv-csi-provider yet; use workload identity (clientID + the api://AzureADTokenExchange token request) or a service principal (nodePublishSecretRef)"
    )]
    Unsupported { mode: &'static str },
}

impl AuthError {
    /// A short, bounded code for metrics and logs (`AADSTS70021`,
    /// `Throttled`, `Timeout`, …).
    pub fn code(&self) -> Cow<'static, str> {
        match self {
            Self::Aad { source, .. } => source.code(),
            Self::Unreachable { source, .. } => Cow::Borrowed(source.code()),
            Self::Unsupported { .. } => Cow::Borrowed("UnsupportedIdentity"),
        }
    }
}

/// Obtains tokens over the shared HTTP client.
#[derive(Clone, Debug)]
pub struct Authenticator {
    http: Http,
}

// === impl Authenticator ===

impl Authenticator {
    pub fn new(http: Http) -> Self {
        Self { http }
    }

    /// A token for `cloud`'s Key Vault resource in `tenant_id`.
    pub async fn token(
        &self,
        identity: &Identity,
        tenant_id: &str,
        cloud: &Cloud,
    ) -> Result<AccessToken, AuthError> {
        let (mode, client_id, credential) = match identity {
            Identity::WorkloadIdentity { client_id, token } => (
                "workload identity",
                client_id,
                aad::Credential::Assertion(&token.token),
            ),
            Identity::ServicePrincipal {
                client_id,
                client_secret,
            } => (
                "service principal",
                client_id,
                aad::Credential::Secret(client_secret),
            ),
            Identity::VmManagedIdentity { .. } => {
                return Err(AuthError::Unsupported {
                    mode: "VMManagedIdentity",
                });
            }
            Identity::PodIdentity => {
                return Err(AuthError::Unsupported {
                    mode: "PodIdentity",
                });
            }
            Identity::TokenProxy { .. } => {
                return Err(AuthError::Unsupported {
                    mode: "AzureTokenProxy",
                });
            }
        };
        let request = aad::TokenRequest {
            authority_host: cloud.authority_host(),
            tenant_id,
            client_id,
            scope: &cloud.keyvault_scope(),
            credential,
        };
        let endpoint = request.endpoint();
        let secret = aad::request_token(&self.http, &request)
            .await
            .map_err(|e| match e {
                aad::Failure::Aad(source) => AuthError::Aad {
                    mode,
                    tenant_id: tenant_id.to_owned(),
                    client_id: client_id.clone(),
                    endpoint: endpoint.clone(),
                    source,
                },
                aad::Failure::Send(source) => AuthError::Unreachable {
                    mode,
                    tenant_id: tenant_id.to_owned(),
                    client_id: client_id.clone(),
                    source,
                },
            });
        let mode_label = TokenMode::of(identity);
        let error = secret.as_ref().err().map(AuthError::code);
        self.http.metrics().token_request(mode_label, error);
        let secret = secret?;
        Ok(AccessToken {
            secret,
            tenant_id: tenant_id.to_owned(),
            client_id: client_id.clone(),
        })
    }
}
