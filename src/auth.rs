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
//!
//! The mount's [`Context`] comes in explicitly; the request itself runs with
//! a detached copy (its deadline, not its registry), while the mount names
//! the endpoint as long as it waits. Each mode's cache key and request are
//! planned in `auth/plan.rs`. This module must not log or return secrets.

pub mod aad;
mod cache;
pub mod imds;
pub mod issuer;
mod plan;
pub mod pod_identity;
mod token_proxy;
pub mod verify;

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use thiserror::Error;

use crate::budget::Context;
use crate::cloud::Cloud;
use crate::http::{BuildError, Http, HttpConfig, SendError};
use crate::params::{Identity, IdentityKind, PodInfo};

pub use crate::token::AccessToken;
pub use aad::AadError;
pub use cache::{CacheSnapshot, DEFAULT_CAPACITY, REFRESH_MARGIN};
pub use pod_identity::NmiError;
pub use token_proxy::{TokenProxyConfig, server_name_for as identity_binding_server_name};

use cache::{Fetched, Lookup, TokenCache};
use plan::{Plan, Request};

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
    /// Which workload-identity mounts share a cached token
    /// (`--token-cache-scope`).
    pub cache_scope: CacheScope,
}

/// Which workload-identity mounts may share a cached token.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum CacheScope {
    /// Only mounts presenting the identical service-account token.
    #[default]
    Credential,
    /// Mounts whose service-account tokens verify (signature against the
    /// issuer's JWKS, `exp`, `nbf`, `aud`, `iss`) and name the same issuer,
    /// subject and audience; see `auth/issuer.rs`.
    ServiceAccount,
}

impl Default for AuthConfig {
    fn default() -> Self {
        Self {
            imds_endpoint: imds::DEFAULT_ENDPOINT.to_owned(),
            nmi_endpoint: pod_identity::DEFAULT_ENDPOINT.to_owned(),
            token_proxy: TokenProxyConfig::default(),
            cache_capacity: DEFAULT_CAPACITY,
            cache_scope: CacheScope::Credential,
        }
    }
}

/// The environment variable that overrides the IMDS address.
pub const IMDS_ENDPOINT_ENV: &str = imds::ENDPOINT_ENV;

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
    /// Issuers' keys, for [`CacheScope::ServiceAccount`].
    issuers: issuer::Issuers,
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
            issuers: issuer::Issuers::new(http.clone()),
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
        cx: &Context,
        identity: &Identity,
        tenant_id: &str,
        cloud: &Cloud,
        pod: &PodInfo,
    ) -> Result<AccessToken, AuthError> {
        let mut plan = self.plan(identity, tenant_id, cloud, pod);
        if let Identity::WorkloadIdentity { token, .. } = identity {
            self.widen_to_service_account(cx, &mut plan.key, token)
                .await;
        }
        let (mode, label) = (plan.key.mode, plan.identity.clone());
        let this = self.clone();
        let tenant = tenant_id.to_owned();
        let request = plan.request;
        // The request runs as its own task: hand it this mount's deadline.
        let detached = cx.detached();
        let fetch = async move {
            let started = std::time::Instant::now();
            let result = this.fetch(&detached, request, &tenant).await;
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
            .lookup_or_fetch(cx, plan.key, plan.not_after, &plan.endpoint, fetch)
            .await;
        // A coalesced wait is not a hit: it waits for a request.
        self.http.metrics().token_cache(mode, lookup == Lookup::Hit);
        result
    }

    /// With [`CacheScope::ServiceAccount`], keys the entry by the verified
    /// issuer, subject and audience instead of the exact token. A token
    /// that fails verification, or whose issuer's keys cannot be read,
    /// keeps its per-credential key: it goes to Entra ID as it would
    /// without the flag, and is never served the shared entry.
    async fn widen_to_service_account(
        &self,
        cx: &Context,
        key: &mut cache::CacheKey,
        token: &crate::params::ServiceAccountToken,
    ) {
        use secrecy::ExposeSecret as _;
        if self.config.cache_scope != CacheScope::ServiceAccount {
            return;
        }
        let now = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as i64);
        let audience = crate::params::WORKLOAD_IDENTITY_AUDIENCE;
        match self
            .issuers
            .verify(cx, token.token.expose_secret(), audience, now)
            .await
        {
            Ok(claims) => key.credential = Some(cache::CacheKey::service_account(&claims)),
            Err(issuer::VerifyError::Invalid(reason)) => {
                tracing::debug!(%reason, "service-account token not verified; cached per credential");
            }
            // Already warned once per fetch in `issuer.rs`.
            Err(error @ issuer::VerifyError::Unreachable { .. }) => {
                tracing::debug!(%error, "cached per credential");
            }
        }
    }

    /// Drops `token` from the cache (if it is still the cached one), so the
    /// next mount asks again: Key Vault rejected it (401) before its expiry.
    pub fn forget(&self, token: &AccessToken) {
        self.cache.forget(token);
    }

    /// The token cache's counts (hits, misses, coalesced waits, entries).
    pub fn cache_snapshot(&self) -> CacheSnapshot {
        self.cache.snapshot()
    }

    /// Turns an identity into a cache key and the request to make on a miss.
    fn plan(&self, identity: &Identity, tenant_id: &str, cloud: &Cloud, pod: &PodInfo) -> Plan {
        let target = plan::Target {
            tenant_id,
            cloud,
            imds: &self.config.imds_endpoint,
            nmi: &self.config.nmi_endpoint,
            token_proxy: self.token_proxy.url(),
        };
        plan::plan(&target, identity, pod)
    }

    /// Makes the request of one mode.
    async fn fetch(
        &self,
        cx: &Context,
        request: Request,
        tenant_id: &str,
    ) -> Result<Fetched, Cause> {
        let (token, lifetime) = match request {
            Request::Aad { url, request } => {
                let token = aad::request_token(cx, &self.http, &url, &url, &request)
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
                let token = self.token_proxy.request_token(cx, &request).await?;
                let access = AccessToken::new(token.secret, tenant_id, &request.client_id);
                (access, token.expires_in)
            }
            Request::Imds(request) => request.fetch(cx, &self.local, tenant_id).await?,
            Request::Nmi(request) => request.fetch(cx, &self.local, tenant_id).await?,
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

/// The `exp` claim of a JWT, read without verifying anything.
pub fn jwt_expiry(jwt: &str) -> Option<SystemTime> {
    let bytes = verify::b64(jwt.split('.').nth(1)?)?;
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
