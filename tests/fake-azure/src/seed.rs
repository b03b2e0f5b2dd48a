//! The fake's starting state as plain data: app registrations and vaults,
//! readable from JSON, plus the blog-walkthrough scenario.
//!
//! A seed is only a description; `state.rs` turns it into the live registry
//! (version ids, timestamps, tokens).
//!
//! ```json
//! {
//!   "apps": [{
//!     "client_id": "4f6f3c2a-1b9e-4f0e-9d8a-0c1b2d3e4f50",
//!     "tenant_id": "f1a2b3c4-5d6e-4f70-8a9b-0c1d2e3f4a5b",
//!     "client_secret": "optional",
//!     "federated_credentials": [{
//!       "issuer": "https://oidc.example/issuer",
//!       "subject": "system:serviceaccount:blog-post:kv-access-account",
//!       "audience": "api://AzureADTokenExchange"
//!     }]
//!   }],
//!   "vaults": [{
//!     "name": "kv-blogpost-jx01",
//!     "tenant_id": "f1a2b3c4-5d6e-4f70-8a9b-0c1d2e3f4a5b",
//!     "access": ["4f6f3c2a-1b9e-4f0e-9d8a-0c1b2d3e4f50"],
//!     "secrets": [
//!       {"name": "MySecretPassword", "value": "older"},
//!       {"name": "MySecretPassword", "value": "newer", "content_type": "text/plain"},
//!       {"name": "tls", "value": "-----BEGIN ...", "content_type": "application/x-pem-file", "kid": true},
//!       {"name": "old", "value": "x", "enabled": false}
//!     ]
//!   }]
//! }
//! ```
//!
//! Entries with the same secret name are successive versions, oldest first.
//! Vaults may also list `keys` ([`KeySeed`]: `name`, `kty`, `crv`, `n`,
//! `e`, `x`, `y`, `enabled`) and `certificates` ([`CertificateSeed`]:
//! `name`, `cer`, `secret_value`, `content_type`, optional `key`,
//! `enabled`); a certificate version creates its backing secret (and key)
//! version with the same version id, as Key Vault does.
//! `kid: true` marks a certificate-backed secret: the bundle then carries
//! `kid` (`https://{vault}.../keys/{name}/{version}`) and `managed: true`.

use serde::{Deserialize, Serialize};
use std::path::Path;

/// Tenant of the blog-walkthrough scenario (a fictional GUID).
pub const BLOG_TENANT_ID: &str = "f1a2b3c4-5d6e-4f70-8a9b-0c1d2e3f4a5b";
/// Client id of the blog's user-assigned identity.
pub const BLOG_CLIENT_ID: &str = "4f6f3c2a-1b9e-4f0e-9d8a-0c1b2d3e4f50";
/// A client secret on the same app, for service-principal tests.
pub const BLOG_CLIENT_SECRET: &str = "fake-blog-client-secret-Qx7~not-real";
/// Namespace of the blog's workload.
pub const BLOG_NAMESPACE: &str = "blog-post";
/// Service account of the blog's workload.
pub const BLOG_SERVICE_ACCOUNT: &str = "kv-access-account";
/// Federated credential subject: `system:serviceaccount:blog-post:kv-access-account`.
pub const BLOG_SUBJECT: &str = "system:serviceaccount:blog-post:kv-access-account";
/// Audience of workload-identity assertions.
pub const BLOG_AUDIENCE: &str = "api://AzureADTokenExchange";
/// The blog's vault.
pub const BLOG_VAULT: &str = "kv-blogpost-jx01";
/// The blog's secret.
pub const BLOG_SECRET_NAME: &str = "MySecretPassword";
/// The value of [`BLOG_SECRET_NAME`] (one version).
pub const BLOG_SECRET_VALUE: &str = "Blog-P@ssw0rd-from-fake-kv";

/// Everything the fake knows at start.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Seed {
    /// App registrations (service principals / managed identities).
    #[serde(default)]
    pub apps: Vec<AppSeed>,
    /// Key Vaults.
    #[serde(default)]
    pub vaults: Vec<VaultSeed>,
    /// Service-account issuers with their own keys (e.g. a real cluster's
    /// JWKS); other issuers of federated credentials publish the fake's
    /// built-in keys.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub issuers: Vec<IssuerSeed>,
}

/// A service-account issuer and the JWKS Entra ID verifies its tokens with.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IssuerSeed {
    /// The issuer URL (`iss`), exactly.
    pub issuer: String,
    /// Its JSON Web Key Set (`{"keys": [...]}`).
    pub jwks: serde_json::Value,
}

/// One app registration in Entra ID.
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AppSeed {
    /// Application (client) id.
    pub client_id: String,
    /// Home tenant; tokens are only issued from this tenant's endpoint.
    pub tenant_id: String,
    /// Accepted `client_secret`, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_secret: Option<String>,
    /// Trusted issuers of client assertions (workload identity).
    #[serde(default)]
    pub federated_credentials: Vec<FederatedCredential>,
}

/// A federated identity credential: which external tokens an app trusts.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FederatedCredential {
    /// Expected `iss`, compared exactly.
    pub issuer: String,
    /// Expected `sub`, compared exactly.
    pub subject: String,
    /// Expected to appear in `aud`.
    pub audience: String,
}

/// One Key Vault.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VaultSeed {
    /// Vault name: the first label of its host name.
    pub name: String,
    /// The tenant whose tokens the vault accepts.
    pub tenant_id: String,
    /// Client ids allowed to get and list secrets.
    #[serde(default)]
    pub access: Vec<String>,
    /// Secret versions, oldest first.
    #[serde(default)]
    pub secrets: Vec<SecretSeed>,
    /// Key versions, oldest first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub keys: Vec<KeySeed>,
    /// Certificate versions, oldest first (each also creates the backing
    /// secret and, with a `key`, the key version of the same id).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub certificates: Vec<CertificateSeed>,
}

/// One key version: the public JSON Web Key Key Vault returns (base64url
/// fields, unpadded).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeySeed {
    /// Key name.
    pub name: String,
    /// `kty`: `RSA`, `RSA-HSM`, `EC`, `EC-HSM`, `oct`, `oct-HSM`.
    pub kty: String,
    /// `crv` of EC keys: `P-256`, `P-384`, `P-521`, `P-256K`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub crv: Option<String>,
    /// RSA modulus.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub n: Option<String>,
    /// RSA public exponent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub e: Option<String>,
    /// EC x coordinate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub x: Option<String>,
    /// EC y coordinate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub y: Option<String>,
    /// Whether this version is enabled (default true).
    #[serde(default = "enabled_default")]
    pub enabled: bool,
}

/// One certificate version.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CertificateSeed {
    /// Certificate name (also the name of its secret and key).
    pub name: String,
    /// The certificate, base64 (standard, padded) DER: the bundle's `cer`.
    pub cer: String,
    /// The backing secret's value: base64 PFX or PEM text.
    pub secret_value: String,
    /// The backing secret's content type: `application/x-pkcs12` or
    /// `application/x-pem-file`.
    pub content_type: String,
    /// The public key, served at `/keys/{name}/{version}` when given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<KeySeed>,
    /// Whether this version is enabled (default true).
    #[serde(default = "enabled_default")]
    pub enabled: bool,
}

impl std::fmt::Debug for CertificateSeed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CertificateSeed")
            .field("name", &self.name)
            .field("secret_value", &"...")
            .field("content_type", &self.content_type)
            .field("enabled", &self.enabled)
            .finish_non_exhaustive()
    }
}

/// One secret version.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SecretSeed {
    /// Secret name (case-insensitive in lookups, as in Key Vault).
    pub name: String,
    /// Secret value.
    pub value: String,
    /// Optional `contentType`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_type: Option<String>,
    /// Whether this version is enabled (default true).
    #[serde(default = "enabled_default")]
    pub enabled: bool,
    /// True for a certificate-backed secret (adds `kid` and `managed`).
    #[serde(default)]
    pub kid: bool,
}

fn enabled_default() -> bool {
    true
}

// === impl SecretSeed ===

impl SecretSeed {
    /// An enabled, plain secret version.
    pub fn new(name: impl Into<String>, value: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            value: value.into(),
            content_type: None,
            enabled: true,
            kid: false,
        }
    }
}

impl std::fmt::Debug for AppSeed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppSeed")
            .field("client_id", &self.client_id)
            .field("tenant_id", &self.tenant_id)
            .field("client_secret", &self.client_secret.as_ref().map(|_| "..."))
            .field("federated_credentials", &self.federated_credentials)
            .finish()
    }
}

impl std::fmt::Debug for SecretSeed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SecretSeed")
            .field("name", &self.name)
            .field("value", &"...")
            .field("content_type", &self.content_type)
            .field("enabled", &self.enabled)
            .field("kid", &self.kid)
            .finish()
    }
}

// === impl Seed ===

impl Seed {
    /// Parses a seed from JSON text.
    pub fn from_json(text: &str) -> anyhow::Result<Self> {
        serde_json::from_str(text).map_err(|e| anyhow::anyhow!("invalid seed JSON: {e}"))
    }

    /// Reads a seed from a JSON file.
    pub fn from_file(path: impl AsRef<Path>) -> anyhow::Result<Self> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path)
            .map_err(|e| anyhow::anyhow!("reading seed {}: {e}", path.display()))?;
        Self::from_json(&text).map_err(|e| anyhow::anyhow!("seed {}: {e}", path.display()))
    }

    /// The scenario of the workload-identity blog walkthrough: one app
    /// ([`BLOG_CLIENT_ID`] in [`BLOG_TENANT_ID`]) trusting service account
    /// `blog-post/kv-access-account` tokens from `issuer` with audience
    /// `api://AzureADTokenExchange`, granted on vault [`BLOG_VAULT`] holding
    /// [`BLOG_SECRET_NAME`] = [`BLOG_SECRET_VALUE`]. The app also accepts
    /// [`BLOG_CLIENT_SECRET`].
    pub fn blog_walkthrough(issuer: &str) -> Self {
        Self {
            apps: vec![AppSeed {
                client_id: BLOG_CLIENT_ID.to_string(),
                tenant_id: BLOG_TENANT_ID.to_string(),
                client_secret: Some(BLOG_CLIENT_SECRET.to_string()),
                federated_credentials: vec![FederatedCredential {
                    issuer: issuer.to_string(),
                    subject: BLOG_SUBJECT.to_string(),
                    audience: BLOG_AUDIENCE.to_string(),
                }],
            }],
            vaults: vec![VaultSeed {
                name: BLOG_VAULT.to_string(),
                tenant_id: BLOG_TENANT_ID.to_string(),
                access: vec![BLOG_CLIENT_ID.to_string()],
                secrets: vec![SecretSeed::new(BLOG_SECRET_NAME, BLOG_SECRET_VALUE)],
                ..VaultSeed::default()
            }],
            issuers: Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_documented_shape_with_defaults() {
        let seed = Seed::from_json(
            r#"{"apps":[{"client_id":"c","tenant_id":"t"}],
                "vaults":[{"name":"v","tenant_id":"t","secrets":[
                  {"name":"s","value":"1"},{"name":"s","value":"2","enabled":false,"kid":true}]}]}"#,
        )
        .expect("parses");
        assert!(seed.apps[0].federated_credentials.is_empty());
        assert!(seed.vaults[0].access.is_empty());
        assert!(seed.vaults[0].secrets[0].enabled);
        assert!(!seed.vaults[0].secrets[1].enabled);
        assert!(seed.vaults[0].secrets[1].kid);
    }

    #[test]
    fn rejects_unknown_fields() {
        assert!(Seed::from_json(r#"{"apps":[],"vault":[]}"#).is_err());
    }

    #[test]
    fn blog_subject_matches_namespace_and_account() {
        assert_eq!(
            BLOG_SUBJECT,
            format!("system:serviceaccount:{BLOG_NAMESPACE}:{BLOG_SERVICE_ACCOUNT}")
        );
        let seed = Seed::blog_walkthrough("https://issuer.test");
        let json = serde_json::to_string(&seed).expect("serializes");
        assert_eq!(Seed::from_json(&json).expect("parses"), seed);
    }

    #[test]
    fn debug_hides_secret_values() {
        let dbg = format!("{:?}", SecretSeed::new("n", "hunter2"));
        assert!(!dbg.contains("hunter2"));
    }
}
