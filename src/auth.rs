//! Access tokens for Key Vault, for the identity the SecretProviderClass
//! selects (identity selection itself is pure and lives in `params`):
//!
//! | mode | where the token comes from | module |
//! |---|---|---|
//! | workload identity | the pod's `api://AzureADTokenExchange` token, exchanged at Entra ID | `auth/aad.rs` |
//! | service principal | `clientid` / `clientsecret` of the nodePublishSecretRef, at Entra ID | `auth/aad.rs` |
//! | VM managed identity | IMDS (`AZURE_POD_IDENTITY_AUTHORITY_HOST`, else 169.254.169.254) | `auth/imds.rs` |
//! | pod identity | aad-pod-identity's NMI (`--nmi-endpoint`) | `auth/pod_identity.rs` |
//! | identity binding | the pod's `api://AKSIdentityBinding` token, through the AKS token proxy | `auth/token_proxy.rs` |
//!
//! Every token goes through one cache (`auth/cache.rs`) keyed by identity
//! and the SHA-256 of the exact credential presented. Errors name the mode,
//! the identity (tenant, client id, pod) and the endpoint; they never carry
//! a token, an assertion or a client secret.

pub mod aad;
mod cache;
pub mod imds;
pub mod pod_identity;
mod token_proxy;

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use secrecy::{ExposeSecret, SecretString};
use thiserror::Error;

use crate::cloud::Cloud;
use crate::http::{BuildError, Http, HttpConfig, SendError};
use crate::params::{Identity, IdentityKind, PodInfo, ServiceAccountToken};

pub use aad::AadError;
pub use cache::{CacheSnapshot, DEFAULT_CAPACITY, REFRESH_MARGIN};
pub use pod_identity::NmiError;
pub use token_proxy::{TokenProxyConfig, server_name_for as identity_binding_server_name};

use cache::{CacheKey, Fetched, Lookup, TokenCache};

/// Where each mode's tokens come from; built once at start-up.
#[derive(Clone, Debug)]
pub struct AuthConfig {
    /// IMDS base URL (`AZURE_POD_IDENTITY_AUTHORITY_HOST`, else
    /// `http://169.254.169.254`).
    pub imds_endpoint: String,
    /// NMI base URL (`--nmi-endpoint`).
    pub nmi_endpoint: String,
    pub token_proxy: TokenProxyConfig,
    /// Most tokens kept in the cache.
    pub cache_capacity: usize,
}

impl Default for AuthConfig {
    fn default() -> Self {
        Self {
            imds_endpoint: imds::DEFAULT_ENDPOINT.to_owned(),
            nmi_endpoint: pod_identity::DEFAULT_ENDPOINT.to_owned(),
            token_proxy: TokenProxyConfig::default(),
            cache_capacity: DEFAULT_CAPACITY,
        }
    }
}

/// The environment variable that overrides the IMDS address.
pub const IMDS_ENDPOINT_ENV: &str = imds::ENDPOINT_ENV;

/// A bearer token for Key Vault. `Debug` never shows the token; clones
/// share it.
#[derive(Clone)]
pub struct AccessToken {
    secret: Arc<SecretString>,
    /// Tenant the token was issued in (as configured for the mount).
    pub tenant_id: String,
    /// Client id of the identity the token represents (from the answer for
    /// IMDS and NMI).
    pub client_id: String,
    /// The cache entry holding this token, if any (see [`Authenticator::forget`]).
    cache_key: Option<Arc<CacheKey>>,
}

/// Why no token could be obtained: the identity, then the cause (which
/// names the endpoint).
#[derive(Clone, Debug, Error)]
#[error("failed to get a Key Vault token for {identity}: {cause}")]
pub struct AuthError {
    pub mode: IdentityKind,
    /// e.g. `workload identity (tenant …, client id …)`.
    pub identity: String,
    pub cause: Cause,
}

/// The cause of an [`AuthError`].
#[derive(Clone, Debug, Error)]
pub enum Cause {
    /// Entra ID, IMDS or the token proxy answered with an error.
    #[error("{endpoint} answered {source}")]
    Rejected { endpoint: String, source: AadError },
    /// NMI answered with an error (upstream texts).
    #[error("{endpoint}: {source}")]
    Nmi { endpoint: String, source: NmiError },
    /// The endpoint could not be reached or did not answer in time.
    #[error(transparent)]
    Send(SendError),
    /// Identity binding could not be set up (upstream's prefix).
    #[error("proxy transport not available: {0}")]
    TokenProxy(String),
    /// A bug: the request task did not complete.
    #[error("internal error: {0}")]
    Internal(String),
}

/// Obtains tokens over the shared HTTP clients, through the cache.
#[derive(Clone)]
pub struct Authenticator {
    /// Entra ID (through `HTTPS_PROXY` when set).
    http: Http,
    /// IMDS and NMI: never proxied.
    local: Http,
    token_proxy: token_proxy::TokenProxy,
    config: Arc<AuthConfig>,
    cache: TokenCache,
}

/// What one mount's identity turns into.
struct Plan {
    key: CacheKey,
    identity: String,
    /// Named in a mount-budget error while the request is awaited.
    endpoint: String,
    /// The service-account token's `exp`, which caps the cache entry.
    not_after: Option<SystemTime>,
    request: Request,
}

/// The request of one mode, owned (it runs as its own task).
enum Request {
    Aad {
        url: String,
        request: aad::TokenRequest,
    },
    Imds(imds::ImdsRequest),
    Nmi(pod_identity::NmiRequest),
    TokenProxy(aad::TokenRequest),
}

// === impl AccessToken ===

impl AccessToken {
    pub(crate) fn new(secret: SecretString, tenant_id: &str, client_id: &str) -> Self {
        Self {
            secret: Arc::new(secret),
            tenant_id: tenant_id.to_owned(),
            client_id: client_id.to_owned(),
            cache_key: None,
        }
    }

    /// True when both share one token value (same fetch).
    fn same_as(&self, other: &AccessToken) -> bool {
        Arc::ptr_eq(&self.secret, &other.secret)
    }

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

// === impl AuthError ===

impl AuthError {
    /// A short, bounded code for metrics and logs (`AADSTS70021`,
    /// `Throttled`, `Timeout`, …).
    pub fn code(&self) -> std::borrow::Cow<'static, str> {
        use std::borrow::Cow;
        match &self.cause {
            Cause::Rejected { source, .. } => source.code(),
            Cause::Nmi { .. } => Cow::Borrowed("NmiError"),
            Cause::Send(source) => Cow::Borrowed(source.code()),
            Cause::TokenProxy(_) => Cow::Borrowed("TokenProxyUnavailable"),
            Cause::Internal(_) => Cow::Borrowed("Internal"),
        }
    }

    pub(crate) fn internal(mode: IdentityKind, reason: &str) -> Self {
        Self {
            mode,
            identity: mode.to_string(),
            cause: Cause::Internal(reason.to_owned()),
        }
    }
}

// === impl Authenticator ===

impl Authenticator {
    /// `http` is the shared client; IMDS, NMI and the token proxy get
    /// their own (never proxied) built from `http_config`.
    pub fn new(
        http: Http,
        http_config: &HttpConfig,
        config: AuthConfig,
    ) -> Result<Self, BuildError> {
        let local = Http::direct(http_config)?.with_metrics(http.metrics().clone());
        Ok(Self {
            http,
            local,
            token_proxy: token_proxy::TokenProxy::new(
                config.token_proxy.clone(),
                http_config.clone(),
            ),
            cache: TokenCache::new(config.cache_capacity),
            config: Arc::new(config),
        })
    }

    /// A token for `cloud`'s Key Vault in `tenant_id`, from the cache when
    /// the same identity presented the same credential before.
    pub async fn token(
        &self,
        identity: &Identity,
        tenant_id: &str,
        cloud: &Cloud,
        pod: &PodInfo,
    ) -> Result<AccessToken, AuthError> {
        let plan = self.plan(identity, tenant_id, cloud, pod);
        let (mode, label) = (plan.key.mode, plan.identity.clone());
        let this = self.clone();
        let tenant = tenant_id.to_owned();
        let request = plan.request;
        // The request runs as its own task: hand it this mount's deadline.
        let deadline = crate::budget::deadline();
        let fetch = async move {
            let started = std::time::Instant::now();
            let result = this.fetch(request, &tenant, deadline).await;
            tracing::debug!(
                %mode,
                identity = %label,
                ok = result.is_ok(),
                duration_ms = started.elapsed().as_millis() as u64,
                "token request"
            );
            let result = result.map_err(|cause| AuthError {
                mode,
                identity: label,
                cause,
            });
            let error = result.as_ref().err().map(AuthError::code);
            this.http.metrics().token_request(mode, error);
            result
        };
        let (result, lookup) = self
            .cache
            .lookup_or_fetch(plan.key, plan.not_after, &plan.endpoint, fetch)
            .await;
        // A coalesced wait is not a hit: it waits for a request.
        self.http.metrics().token_cache(mode, lookup == Lookup::Hit);
        result
    }

    /// Drops `token` from the cache (if it is still the cached one), so the
    /// next mount asks again: Key Vault rejected it (401) before its expiry.
    pub fn forget(&self, token: &AccessToken) {
        if let Some(key) = &token.cache_key {
            self.cache.forget(key, token);
        }
    }

    /// The token cache's counts (hits, misses, coalesced waits, entries).
    pub fn cache_snapshot(&self) -> CacheSnapshot {
        self.cache.snapshot()
    }

    /// Turns an identity into a cache key and the request to make on a miss.
    fn plan(&self, identity: &Identity, tenant_id: &str, cloud: &Cloud, pod: &PodInfo) -> Plan {
        let scope = cloud.keyvault_scope();
        let authority = cloud.authority_host().to_owned();
        let aad_plan = |mode: IdentityKind, client_id: &str, credential: aad::Credential| {
            let secret = match &credential {
                aad::Credential::Assertion(s) | aad::Credential::Secret(s) => s.expose_secret(),
            };
            let key = CacheKey {
                mode,
                authority: authority.clone(),
                tenant_id: tenant_id.to_owned(),
                identity: client_id.to_owned(),
                resource: scope.clone(),
                credential: Some(CacheKey::digest(secret)),
            };
            let request = aad::TokenRequest {
                tenant_id: tenant_id.to_owned(),
                client_id: client_id.to_owned(),
                scope: scope.clone(),
                credential,
            };
            (key, request)
        };
        let described = |mode: IdentityKind, client_id: &str| {
            format!("{mode} (tenant {tenant_id}, client id {client_id})")
        };
        match identity {
            Identity::WorkloadIdentity { client_id, token } => {
                let mode = IdentityKind::WorkloadIdentity;
                let (key, request) = aad_plan(
                    mode,
                    client_id,
                    aad::Credential::Assertion(token.token.clone()),
                );
                let url = aad::endpoint(&authority, tenant_id);
                Plan {
                    key,
                    identity: described(mode, client_id),
                    endpoint: url.clone(),
                    not_after: assertion_expiry(token),
                    request: Request::Aad { url, request },
                }
            }
            Identity::ServicePrincipal {
                client_id,
                client_secret,
            } => {
                let mode = IdentityKind::ServicePrincipal;
                let (key, request) = aad_plan(
                    mode,
                    client_id,
                    aad::Credential::Secret(client_secret.clone()),
                );
                let url = aad::endpoint(&authority, tenant_id);
                Plan {
                    key,
                    identity: described(mode, client_id),
                    endpoint: url.clone(),
                    not_after: None,
                    request: Request::Aad { url, request },
                }
            }
            Identity::TokenProxy { client_id, token } => {
                let mode = IdentityKind::IdentityBinding;
                let (mut key, request) = aad_plan(
                    mode,
                    client_id,
                    aad::Credential::Assertion(token.token.clone()),
                );
                key.authority = self.token_proxy.url().to_owned();
                Plan {
                    key,
                    identity: described(mode, client_id),
                    endpoint: format!("the token proxy {}", self.token_proxy.url()),
                    not_after: assertion_expiry(token),
                    request: Request::TokenProxy(request),
                }
            }
            Identity::VmManagedIdentity {
                user_assigned_identity_id,
            } => {
                let request = imds::ImdsRequest {
                    base: self.config.imds_endpoint.clone(),
                    resource: cloud.keyvault_resource().to_owned(),
                    client_id: user_assigned_identity_id.clone(),
                };
                let identity = match user_assigned_identity_id.as_str() {
                    "" => format!("{} (system-assigned)", IdentityKind::VmManagedIdentity),
                    id => format!(
                        "{} (user-assigned client id {id})",
                        IdentityKind::VmManagedIdentity
                    ),
                };
                Plan {
                    key: CacheKey {
                        mode: IdentityKind::VmManagedIdentity,
                        authority: request.base.clone(),
                        tenant_id: String::new(),
                        identity: user_assigned_identity_id.clone(),
                        resource: request.resource.clone(),
                        credential: None,
                    },
                    identity,
                    endpoint: request.endpoint(),
                    not_after: None,
                    request: Request::Imds(request),
                }
            }
            Identity::PodIdentity => {
                let request = pod_identity::NmiRequest {
                    base: self.config.nmi_endpoint.clone(),
                    resource: cloud.keyvault_resource().to_owned(),
                    pod_name: pod.name.clone(),
                    pod_namespace: pod.namespace.clone(),
                };
                // NMI decides the identity per pod; a recreated pod (new
                // uid) may be bound to another one.
                let pod_key = format!(
                    "{}/{}/{}",
                    pod.namespace,
                    pod.name,
                    pod.uid.as_deref().unwrap_or("")
                );
                Plan {
                    key: CacheKey {
                        mode: IdentityKind::PodIdentity,
                        authority: request.base.clone(),
                        tenant_id: String::new(),
                        identity: pod_key,
                        resource: request.resource.clone(),
                        credential: None,
                    },
                    identity: format!(
                        "{} (pod {}/{})",
                        IdentityKind::PodIdentity,
                        pod.namespace,
                        pod.name
                    ),
                    endpoint: request.endpoint(),
                    not_after: None,
                    request: Request::Nmi(request),
                }
            }
        }
    }

    /// Makes the request of one mode.
    async fn fetch(
        &self,
        request: Request,
        tenant_id: &str,
        deadline: Option<tokio::time::Instant>,
    ) -> Result<Fetched, Cause> {
        let (token, lifetime) = match request {
            Request::Aad { url, request } => {
                let token = aad::request_token(&self.http, &url, &url, &request, deadline)
                    .await
                    .map_err(|failure| match failure {
                        aad::Failure::Aad(source) => Cause::Rejected {
                            endpoint: url.clone(),
                            source,
                        },
                        aad::Failure::Send(source) => Cause::Send(source),
                    })?;
                let access = AccessToken::new(token.secret, tenant_id, &request.client_id);
                (access, token.expires_in)
            }
            Request::TokenProxy(request) => {
                let token = self.token_proxy.request_token(&request, deadline).await?;
                let access = AccessToken::new(token.secret, tenant_id, &request.client_id);
                (access, token.expires_in)
            }
            Request::Imds(request) => request.fetch(&self.local, tenant_id).await?,
            Request::Nmi(request) => request.fetch(&self.local, tenant_id).await?,
        };
        Ok(Fetched { token, lifetime })
    }
}

impl std::fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Authenticator")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

/// The `exp` claim of a service-account token (a JWT), read without
/// verifying anything: it only shortens how long a token obtained with the
/// assertion is cached. When it cannot be read, the epoch: the Key Vault
/// token is then used for this mount and not cached.
fn assertion_expiry(token: &ServiceAccountToken) -> Option<SystemTime> {
    Some(jwt_expiry(token.token.expose_secret()).unwrap_or(SystemTime::UNIX_EPOCH))
}

pub fn jwt_expiry(jwt: &str) -> Option<SystemTime> {
    use base64::Engine as _;
    let payload = jwt.split('.').nth(1)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .ok()?;
    let claims: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
    let exp = claims.get("exp")?.as_f64()?;
    (exp.is_finite() && exp > 0.0)
        .then(|| SystemTime::UNIX_EPOCH + Duration::from_secs_f64(exp.min(1e11)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine as _;

    fn jwt(payload: &str) -> String {
        let enc = |s: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s);
        format!("{}.{}.sig", enc(r#"{"alg":"RS256"}"#), enc(payload))
    }

    #[test]
    fn reads_exp_without_trusting_anything_else() {
        assert_eq!(
            jwt_expiry(&jwt(r#"{"exp":1700000000,"iss":"x"}"#)),
            Some(SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000))
        );
        assert_eq!(jwt_expiry(&jwt(r#"{"iss":"x"}"#)), None);
        assert_eq!(jwt_expiry(&jwt(r#"{"exp":"soon"}"#)), None);
        assert_eq!(jwt_expiry(&jwt(r#"{"exp":-5}"#)), None);
        assert_eq!(jwt_expiry("not-a-jwt"), None);
        assert_eq!(jwt_expiry("a.%%%.c"), None);
    }
}
