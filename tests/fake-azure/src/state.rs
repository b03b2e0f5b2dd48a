//! The fake's live registry: app registrations, vaults with versioned
//! secrets, keys and certificates, and the access tokens it has issued.
//!
//! Built from a [`Seed`](crate::Seed) and mutated through `FakeAzure` or the
//! control API. It is plain data behind one mutex; it performs no I/O and
//! knows nothing of HTTP. Names follow Key Vault: vault names, secret names
//! and client ids compare case-insensitively, and every secret version gets
//! a fresh 32-hex-digit id and a strictly increasing `created` time.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;

use crate::ids::IdGen;
use crate::seed::{
    AppSeed, CertificateSeed, FederatedCredential, KeySeed, SecretSeed, Seed, VaultSeed,
};

/// How long issued access tokens live unless changed (Entra ID's usual value).
pub(crate) const DEFAULT_TOKEN_LIFETIME_SECS: i64 = 3599;

/// Spacing of seeded versions' `created` times, so their order is clear.
const SEED_VERSION_SPACING_SECS: i64 = 60;

/// Version listings' page length when the client sends no `maxresults`
/// (Key Vault's default).
const DEFAULT_PAGE_SIZE: usize = 25;

/// Issued tokens kept before expired ones are pruned.
const TOKEN_PRUNE_THRESHOLD: usize = 4096;

/// A registered application.
#[derive(Debug)]
pub(crate) struct App {
    pub client_id: String,
    pub tenant_id: String,
    pub client_secret: Option<String>,
    pub federated: Vec<FederatedCredential>,
    /// The service principal's object id, shown in Key Vault's 403 text.
    pub object_id: String,
}

/// One vault.
#[derive(Debug)]
pub(crate) struct Vault {
    pub name: String,
    pub tenant_id: String,
    access: BTreeSet<String>,
    secrets: BTreeMap<String, Secret>,
    keys: BTreeMap<String, Versioned<KeyData>>,
    certificates: BTreeMap<String, Versioned<CertificateData>>,
}

/// The object collections of a vault.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// `/secrets`.
    Secrets,
    /// `/keys`.
    Keys,
    /// `/certificates`.
    Certificates,
}

/// A key or certificate and its versions, oldest first.
#[derive(Debug)]
pub(crate) struct Versioned<T> {
    pub name: String,
    pub versions: Vec<Version<T>>,
}

/// One version of a key or certificate.
#[derive(Debug)]
pub(crate) struct Version<T> {
    pub version: String,
    pub enabled: bool,
    pub created: i64,
    pub updated: i64,
    /// Whether it belongs to a certificate (keys: `managed: true`).
    pub managed: bool,
    pub data: T,
}

/// A key version's public JWK fields.
#[derive(Debug, Clone)]
pub(crate) struct KeyData {
    pub kty: String,
    pub crv: Option<String>,
    pub n: Option<String>,
    pub e: Option<String>,
    pub x: Option<String>,
    pub y: Option<String>,
}

/// A certificate version's DER (base64).
#[derive(Debug, Clone)]
pub(crate) struct CertificateData {
    pub cer: String,
}

/// A secret and its versions, oldest first.
#[derive(Debug)]
pub(crate) struct Secret {
    pub name: String,
    pub versions: Vec<SecretVersion>,
}

/// One immutable secret version (only `enabled` and `updated` change).
pub(crate) struct SecretVersion {
    pub version: String,
    pub value: String,
    pub content_type: Option<String>,
    pub enabled: bool,
    pub created: i64,
    pub updated: i64,
    pub cert_backed: bool,
}

/// What an issued access token stands for.
#[derive(Debug, Clone)]
pub(crate) struct TokenGrant {
    pub tenant_id: String,
    pub client_id: String,
    /// The resource (audience), without `/.default` or a trailing slash.
    pub resource: String,
    pub expires_at: i64,
}

/// A mutation the registry refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum StateError {
    UnknownVault(String),
    UnknownSecret {
        vault: String,
        name: String,
    },
    UnknownVersion {
        vault: String,
        name: String,
        version: String,
    },
    DuplicateApp(String),
    DuplicateVault(String),
    UnknownApp(String),
    InvalidName {
        kind: &'static str,
        name: String,
    },
}

/// The managed identities of the node the fake's IMDS answers for (client
/// ids of registered apps, lowercased).
#[derive(Debug, Default, Clone)]
pub(crate) struct NodeIdentities {
    pub system_assigned: Option<String>,
    pub user_assigned: Vec<String>,
}

/// The registry.
#[derive(Debug)]
pub(crate) struct State {
    apps: BTreeMap<String, App>,
    vaults: BTreeMap<String, Vault>,
    tokens: HashMap<String, TokenGrant>,
    ids: IdGen,
    token_lifetime_secs: i64,
    node: NodeIdentities,
    /// (namespace, pod name) → client id, as aad-pod-identity's NMI sees it.
    pod_identities: BTreeMap<(String, String), String>,
    page_size: usize,
}

// === impl State ===

impl State {
    /// Builds the registry from a seed; `now` stamps the newest versions.
    pub(crate) fn from_seed(seed: &Seed, ids: IdGen, now: i64) -> Result<Self, StateError> {
        let mut state = Self {
            apps: BTreeMap::new(),
            vaults: BTreeMap::new(),
            tokens: HashMap::new(),
            ids,
            token_lifetime_secs: DEFAULT_TOKEN_LIFETIME_SECS,
            node: NodeIdentities::default(),
            pod_identities: BTreeMap::new(),
            page_size: DEFAULT_PAGE_SIZE,
        };
        for app in &seed.apps {
            state.add_app(app)?;
        }
        for vault in &seed.vaults {
            state.add_vault(vault, now)?;
        }
        Ok(state)
    }

    pub(crate) fn add_app(&mut self, app: &AppSeed) -> Result<(), StateError> {
        let key = app.client_id.to_ascii_lowercase();
        if key.is_empty() || app.tenant_id.is_empty() {
            return Err(StateError::InvalidName {
                kind: "app",
                name: app.client_id.clone(),
            });
        }
        if self.apps.contains_key(&key) {
            return Err(StateError::DuplicateApp(app.client_id.clone()));
        }
        let object_id = self.ids.uuid();
        self.apps.insert(
            key,
            App {
                client_id: app.client_id.clone(),
                tenant_id: app.tenant_id.to_ascii_lowercase(),
                client_secret: app.client_secret.clone(),
                federated: app.federated_credentials.clone(),
                object_id,
            },
        );
        Ok(())
    }

    /// Adds a vault; its seeded versions are spaced a minute apart, the
    /// newest of each secret stamped `now`.
    pub(crate) fn add_vault(&mut self, seed: &VaultSeed, now: i64) -> Result<(), StateError> {
        let key = seed.name.to_ascii_lowercase();
        if !valid_vault_name(&key) || seed.tenant_id.is_empty() {
            return Err(StateError::InvalidName {
                kind: "vault",
                name: seed.name.clone(),
            });
        }
        if self.vaults.contains_key(&key) {
            return Err(StateError::DuplicateVault(seed.name.clone()));
        }
        let mut vault = Vault {
            name: key.clone(),
            tenant_id: seed.tenant_id.to_ascii_lowercase(),
            access: seed.access.iter().map(|c| c.to_ascii_lowercase()).collect(),
            secrets: BTreeMap::new(),
            keys: BTreeMap::new(),
            certificates: BTreeMap::new(),
        };
        let created = |names: &mut dyn Iterator<Item = &String>, name: &str| {
            let later = names.filter(|n| n.eq_ignore_ascii_case(name)).count();
            now - i64::try_from(later).unwrap_or(0) * SEED_VERSION_SPACING_SECS
        };
        for (i, secret) in seed.secrets.iter().enumerate() {
            let at = created(
                &mut seed.secrets[i + 1..].iter().map(|s| &s.name),
                &secret.name,
            );
            vault.push_version(secret, &mut self.ids, at)?;
        }
        for (i, key) in seed.keys.iter().enumerate() {
            let at = created(&mut seed.keys[i + 1..].iter().map(|k| &k.name), &key.name);
            let version = self.ids.version_id();
            vault.push_key(key, version, at, false)?;
        }
        for (i, cert) in seed.certificates.iter().enumerate() {
            let rest = &seed.certificates[i + 1..];
            let at = created(&mut rest.iter().map(|c| &c.name), &cert.name);
            vault.push_certificate(cert, &mut self.ids, at)?;
        }
        self.vaults.insert(key, vault);
        Ok(())
    }

    /// Adds a new newest version; returns its version id.
    pub(crate) fn set_secret(
        &mut self,
        vault: &str,
        secret: &SecretSeed,
        now: i64,
    ) -> Result<String, StateError> {
        let v = self
            .vaults
            .get_mut(&vault.to_ascii_lowercase())
            .ok_or_else(|| StateError::UnknownVault(vault.to_string()))?;
        v.push_version(secret, &mut self.ids, now)
    }

    /// Adds a new newest key version; returns its version id.
    pub(crate) fn add_key(
        &mut self,
        vault: &str,
        key: &KeySeed,
        now: i64,
    ) -> Result<String, StateError> {
        let v = self
            .vaults
            .get_mut(&vault.to_ascii_lowercase())
            .ok_or_else(|| StateError::UnknownVault(vault.to_string()))?;
        let version = self.ids.version_id();
        v.push_key(key, version, now, false)
    }

    /// Adds a new newest certificate version (and its secret and key
    /// versions); returns the version id they share.
    pub(crate) fn add_certificate(
        &mut self,
        vault: &str,
        cert: &CertificateSeed,
        now: i64,
    ) -> Result<String, StateError> {
        let v = self
            .vaults
            .get_mut(&vault.to_ascii_lowercase())
            .ok_or_else(|| StateError::UnknownVault(vault.to_string()))?;
        v.push_certificate(cert, &mut self.ids, now)
    }

    /// Enables or disables one version of a key or certificate (a
    /// certificate's secret and key versions follow it).
    pub(crate) fn set_object_version_enabled(
        &mut self,
        vault: &str,
        kind: Kind,
        name: &str,
        version: &str,
        enabled: bool,
        now: i64,
    ) -> Result<(), StateError> {
        if kind == Kind::Secrets {
            return self.set_version_enabled(vault, name, version, enabled, now);
        }
        let v = self
            .vaults
            .get_mut(&vault.to_ascii_lowercase())
            .ok_or_else(|| StateError::UnknownVault(vault.to_string()))?;
        let unknown = || StateError::UnknownVersion {
            vault: vault.to_string(),
            name: name.to_string(),
            version: version.to_string(),
        };
        let key = name.to_ascii_lowercase();
        if kind == Kind::Certificates {
            let cert = v.certificates.get_mut(&key).ok_or_else(unknown)?;
            set_enabled(&mut cert.versions, version, enabled, now).ok_or_else(unknown)?;
        }
        if let Some(k) = v.keys.get_mut(&key) {
            let found = set_enabled(&mut k.versions, version, enabled, now);
            if kind == Kind::Keys {
                found.ok_or_else(unknown)?;
            }
        } else if kind == Kind::Keys {
            return Err(unknown());
        }
        if kind == Kind::Certificates
            && let Some(secret) = v.secrets.get_mut(&key)
            && let Some(sv) = secret
                .versions
                .iter_mut()
                .find(|sv| sv.version.eq_ignore_ascii_case(version))
        {
            sv.enabled = enabled;
            sv.updated = now.max(sv.created);
        }
        Ok(())
    }

    pub(crate) fn set_version_enabled(
        &mut self,
        vault: &str,
        name: &str,
        version: &str,
        enabled: bool,
        now: i64,
    ) -> Result<(), StateError> {
        let v = self
            .vaults
            .get_mut(&vault.to_ascii_lowercase())
            .ok_or_else(|| StateError::UnknownVault(vault.to_string()))?;
        let unknown_secret = || StateError::UnknownSecret {
            vault: vault.to_string(),
            name: name.to_string(),
        };
        let secret = v
            .secrets
            .get_mut(&name.to_ascii_lowercase())
            .ok_or_else(unknown_secret)?;
        let found = secret
            .versions
            .iter_mut()
            .find(|sv| sv.version.eq_ignore_ascii_case(version))
            .ok_or_else(|| StateError::UnknownVersion {
                vault: vault.to_string(),
                name: name.to_string(),
                version: version.to_string(),
            })?;
        found.enabled = enabled;
        found.updated = now.max(found.created);
        Ok(())
    }

    pub(crate) fn grant(
        &mut self,
        vault: &str,
        client_id: &str,
        allow: bool,
    ) -> Result<(), StateError> {
        let v = self
            .vaults
            .get_mut(&vault.to_ascii_lowercase())
            .ok_or_else(|| StateError::UnknownVault(vault.to_string()))?;
        let client = client_id.to_ascii_lowercase();
        if allow {
            v.access.insert(client);
        } else {
            v.access.remove(&client);
        }
        Ok(())
    }

    /// Version ids of a secret, oldest first.
    pub(crate) fn versions(&self, vault: &str, name: &str) -> Result<Vec<String>, StateError> {
        let v = self
            .vault(vault)
            .ok_or_else(|| StateError::UnknownVault(vault.to_string()))?;
        let s = v.secret(name).ok_or_else(|| StateError::UnknownSecret {
            vault: vault.to_string(),
            name: name.to_string(),
        })?;
        Ok(s.versions.iter().map(|sv| sv.version.clone()).collect())
    }

    pub(crate) fn vault(&self, name: &str) -> Option<&Vault> {
        self.vaults.get(&name.to_ascii_lowercase())
    }

    pub(crate) fn app(&self, client_id: &str) -> Option<&App> {
        self.apps.get(&client_id.to_ascii_lowercase())
    }

    /// A tenant exists when some app or vault lives in it.
    pub(crate) fn tenant_known(&self, tenant: &str) -> bool {
        let t = tenant.to_ascii_lowercase();
        self.apps.values().any(|a| a.tenant_id == t)
            || self.vaults.values().any(|v| v.tenant_id == t)
    }

    /// Page length of version listings without `maxresults`.
    pub(crate) fn page_size(&self) -> usize {
        self.page_size
    }

    /// Sets the page length (1..=25) of listings without `maxresults`.
    pub(crate) fn set_page_size(&mut self, size: usize) {
        self.page_size = size.clamp(1, DEFAULT_PAGE_SIZE);
    }

    pub(crate) fn token_lifetime_secs(&self) -> i64 {
        self.token_lifetime_secs
    }

    pub(crate) fn set_token_lifetime_secs(&mut self, secs: i64) {
        self.token_lifetime_secs = secs.max(1);
    }

    /// Records a new access token and returns it.
    pub(crate) fn issue_token(&mut self, grant: TokenGrant, now: i64) -> String {
        if self.tokens.len() >= TOKEN_PRUNE_THRESHOLD {
            self.tokens.retain(|_, g| g.expires_at > now);
        }
        let token = self.ids.access_token();
        self.tokens.insert(token.clone(), grant);
        token
    }

    pub(crate) fn issued_tokens(&self) -> Vec<String> {
        self.tokens.keys().cloned().collect()
    }

    pub(crate) fn token(&self, token: &str) -> Option<&TokenGrant> {
        self.tokens.get(token)
    }

    /// Makes every issued token expired (for refresh tests).
    pub(crate) fn expire_tokens(&mut self, now: i64) {
        for grant in self.tokens.values_mut() {
            grant.expires_at = grant.expires_at.min(now - 1);
        }
    }

    pub(crate) fn new_uuid(&mut self) -> String {
        self.ids.uuid()
    }

    /// Sets the node's managed identities; each must be a registered app.
    pub(crate) fn set_node_identities(
        &mut self,
        system_assigned: Option<&str>,
        user_assigned: &[&str],
    ) -> Result<(), StateError> {
        let known = |id: &str| {
            self.app(id)
                .map(|_| id.to_ascii_lowercase())
                .ok_or_else(|| StateError::UnknownApp(id.to_string()))
        };
        let system_assigned = system_assigned.map(known).transpose()?;
        let user_assigned = user_assigned
            .iter()
            .map(|id| known(id))
            .collect::<Result<_, _>>()?;
        self.node = NodeIdentities {
            system_assigned,
            user_assigned,
        };
        Ok(())
    }

    pub(crate) fn node(&self) -> &NodeIdentities {
        &self.node
    }

    /// Assigns a registered app to a pod (aad-pod-identity's binding).
    pub(crate) fn bind_pod_identity(
        &mut self,
        namespace: &str,
        pod: &str,
        client_id: &str,
    ) -> Result<(), StateError> {
        if self.app(client_id).is_none() {
            return Err(StateError::UnknownApp(client_id.to_string()));
        }
        self.pod_identities.insert(
            (namespace.to_string(), pod.to_string()),
            client_id.to_ascii_lowercase(),
        );
        Ok(())
    }

    /// The client id assigned to a pod, if any.
    pub(crate) fn pod_identity(&self, namespace: &str, pod: &str) -> Option<&str> {
        self.pod_identities
            .get(&(namespace.to_string(), pod.to_string()))
            .map(String::as_str)
    }
}

// === impl Vault ===

impl Vault {
    pub(crate) fn secret(&self, name: &str) -> Option<&Secret> {
        self.secrets.get(&name.to_ascii_lowercase())
    }

    pub(crate) fn allows(&self, client_id: &str) -> bool {
        self.access.contains(&client_id.to_ascii_lowercase())
    }

    pub(crate) fn key(&self, name: &str) -> Option<&Versioned<KeyData>> {
        self.keys.get(&name.to_ascii_lowercase())
    }

    pub(crate) fn certificate(&self, name: &str) -> Option<&Versioned<CertificateData>> {
        self.certificates.get(&name.to_ascii_lowercase())
    }

    fn push_key(
        &mut self,
        seed: &KeySeed,
        version: String,
        now: i64,
        managed: bool,
    ) -> Result<String, StateError> {
        let data = KeyData {
            kty: seed.kty.clone(),
            crv: seed.crv.clone(),
            n: seed.n.clone(),
            e: seed.e.clone(),
            x: seed.x.clone(),
            y: seed.y.clone(),
        };
        push(
            &mut self.keys,
            "key",
            &seed.name,
            version.clone(),
            now,
            seed.enabled,
            managed,
            data,
        )?;
        Ok(version)
    }

    fn push_certificate(
        &mut self,
        seed: &CertificateSeed,
        ids: &mut IdGen,
        now: i64,
    ) -> Result<String, StateError> {
        let version = ids.version_id();
        let data = CertificateData {
            cer: seed.cer.clone(),
        };
        let created = push(
            &mut self.certificates,
            "certificate",
            &seed.name,
            version.clone(),
            now,
            seed.enabled,
            true,
            data,
        )?;
        let secret = SecretSeed {
            name: seed.name.clone(),
            value: seed.secret_value.clone(),
            content_type: Some(seed.content_type.clone()),
            enabled: seed.enabled,
            kid: true,
        };
        self.push_secret_version(&secret, version.clone(), created)?;
        if let Some(key) = &seed.key {
            let key = KeySeed {
                name: seed.name.clone(),
                enabled: seed.enabled,
                ..key.clone()
            };
            self.push_key(&key, version.clone(), created, true)?;
        }
        Ok(version)
    }

    fn push_version(
        &mut self,
        seed: &SecretSeed,
        ids: &mut IdGen,
        now: i64,
    ) -> Result<String, StateError> {
        let version = ids.version_id();
        self.push_secret_version(seed, version, now)
    }

    fn push_secret_version(
        &mut self,
        seed: &SecretSeed,
        version: String,
        now: i64,
    ) -> Result<String, StateError> {
        if !valid_object_name(&seed.name) {
            return Err(StateError::InvalidName {
                kind: "secret",
                name: seed.name.clone(),
            });
        }
        let secret = self
            .secrets
            .entry(seed.name.to_ascii_lowercase())
            .or_insert_with(|| Secret {
                name: seed.name.clone(),
                versions: Vec::new(),
            });
        let created = secret
            .versions
            .last()
            .map_or(now, |last| now.max(last.created + 1));
        secret.versions.push(SecretVersion {
            version: version.clone(),
            value: seed.value.clone(),
            content_type: seed.content_type.clone(),
            enabled: seed.enabled,
            created,
            updated: created,
            cert_backed: seed.kid,
        });
        Ok(version)
    }
}

/// Appends a version to a key or certificate; returns its `created` time.
#[allow(clippy::too_many_arguments)]
fn push<T>(
    map: &mut BTreeMap<String, Versioned<T>>,
    kind: &'static str,
    name: &str,
    version: String,
    now: i64,
    enabled: bool,
    managed: bool,
    data: T,
) -> Result<i64, StateError> {
    if !valid_object_name(name) {
        return Err(StateError::InvalidName {
            kind,
            name: name.to_string(),
        });
    }
    let object = map
        .entry(name.to_ascii_lowercase())
        .or_insert_with(|| Versioned {
            name: name.to_string(),
            versions: Vec::new(),
        });
    let created = object
        .versions
        .last()
        .map_or(now, |last| now.max(last.created + 1));
    object.versions.push(Version {
        version: version.clone(),
        enabled,
        created,
        updated: created,
        managed,
        data,
    });
    Ok(created)
}

fn set_enabled<T>(
    versions: &mut [Version<T>],
    version: &str,
    enabled: bool,
    now: i64,
) -> Option<()> {
    let found = versions
        .iter_mut()
        .find(|v| v.version.eq_ignore_ascii_case(version))?;
    found.enabled = enabled;
    found.updated = now.max(found.created);
    Some(())
}

// === impl Versioned ===

impl<T> Versioned<T> {
    /// The current version: the newest, whether or not it is enabled.
    pub(crate) fn latest(&self) -> Option<&Version<T>> {
        self.versions.last()
    }

    pub(crate) fn version(&self, version: &str) -> Option<&Version<T>> {
        self.versions
            .iter()
            .find(|v| v.version.eq_ignore_ascii_case(version))
    }

    /// Versions in listing order: by version id, unrelated to age.
    pub(crate) fn listing_order(&self) -> Vec<&Version<T>> {
        let mut all: Vec<&Version<T>> = self.versions.iter().collect();
        all.sort_by(|a, b| a.version.cmp(&b.version));
        all
    }
}

// === impl Secret ===

impl Secret {
    /// The current version: the newest, whether or not it is enabled.
    pub(crate) fn latest(&self) -> Option<&SecretVersion> {
        self.versions.last()
    }

    pub(crate) fn version(&self, version: &str) -> Option<&SecretVersion> {
        self.versions
            .iter()
            .find(|v| v.version.eq_ignore_ascii_case(version))
    }

    /// Versions in the order Key Vault lists them: by version id, which is
    /// unrelated to age. Clients must sort by `created` themselves.
    pub(crate) fn listing_order(&self) -> Vec<&SecretVersion> {
        let mut all: Vec<&SecretVersion> = self.versions.iter().collect();
        all.sort_by(|a, b| a.version.cmp(&b.version));
        all
    }
}

impl fmt::Debug for SecretVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SecretVersion")
            .field("version", &self.version)
            .field("value", &"...")
            .field("enabled", &self.enabled)
            .field("created", &self.created)
            .finish_non_exhaustive()
    }
}

impl fmt::Display for StateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::UnknownVault(v) => write!(f, "no vault named '{v}'"),
            Self::UnknownSecret { vault, name } => {
                write!(f, "vault '{vault}' has no secret '{name}'")
            }
            Self::UnknownVersion {
                vault,
                name,
                version,
            } => {
                write!(
                    f,
                    "vault '{vault}' secret '{name}' has no version '{version}'"
                )
            }
            Self::DuplicateApp(c) => write!(f, "an app with client id '{c}' already exists"),
            Self::DuplicateVault(v) => write!(f, "a vault named '{v}' already exists"),
            Self::UnknownApp(c) => write!(f, "no app with client id '{c}'"),
            Self::InvalidName { kind, name } => write!(f, "invalid {kind} name '{name}'"),
        }
    }
}

impl std::error::Error for StateError {}

/// Key Vault's vault-name rule: 3–24 of `[a-z0-9-]`, starting with a letter.
pub(crate) fn valid_vault_name(name: &str) -> bool {
    (3..=24).contains(&name.len())
        && name.starts_with(|c: char| c.is_ascii_alphabetic())
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
}

/// Key Vault's object-name rule: 1–127 of `[0-9a-zA-Z-]`.
pub(crate) fn valid_object_name(name: &str) -> bool {
    (1..=127).contains(&name.len()) && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seeded() -> State {
        let seed = Seed::from_json(
            r#"{"apps":[{"client_id":"C1","tenant_id":"T1"}],
                "vaults":[{"name":"Vault1","tenant_id":"t1","access":["c1"],"secrets":[
                  {"name":"s","value":"1"},{"name":"other","value":"x"},{"name":"S","value":"2"}]}]}"#,
        )
        .expect("seed");
        State::from_seed(&seed, IdGen::with_seed(3), 10_000).expect("state")
    }

    #[test]
    fn seeded_versions_are_ordered_by_creation() {
        let state = seeded();
        let vault = state.vault("VAULT1").expect("vault");
        let secret = vault.secret("s").expect("secret");
        assert_eq!(secret.versions.len(), 2);
        assert_eq!(secret.versions[0].created, 10_000 - 60);
        assert_eq!(secret.latest().map(|v| v.value.as_str()), Some("2"));
        assert!(vault.allows("C1"));
        assert!(state.tenant_known("T1"));
        assert!(!state.tenant_known("t2"));
    }

    #[test]
    fn set_secret_adds_a_strictly_newer_version() {
        let mut state = seeded();
        let v = state
            .set_secret("vault1", &SecretSeed::new("s", "3"), 0)
            .expect("set");
        let secret = state
            .vault("vault1")
            .and_then(|x| x.secret("s"))
            .expect("secret");
        assert_eq!(
            secret.latest().map(|x| x.version.as_str()),
            Some(v.as_str())
        );
        assert_eq!(secret.versions[2].created, secret.versions[1].created + 1);
        assert_eq!(state.versions("vault1", "S").expect("versions").len(), 3);
    }

    #[test]
    fn mutations_report_unknown_objects() {
        let mut state = seeded();
        assert_eq!(
            state.set_secret("nope", &SecretSeed::new("s", "x"), 0),
            Err(StateError::UnknownVault("nope".into()))
        );
        assert!(matches!(
            state.set_version_enabled("vault1", "s", "0000", false, 0),
            Err(StateError::UnknownVersion { .. })
        ));
        assert!(matches!(
            state.set_secret("vault1", &SecretSeed::new("bad_name", "x"), 0),
            Err(StateError::InvalidName { .. })
        ));
        assert!(
            state
                .add_app(&AppSeed {
                    client_id: "c1".into(),
                    tenant_id: "t".into(),
                    ..Default::default()
                })
                .is_err()
        );
    }

    #[test]
    fn name_rules_follow_key_vault() {
        assert!(valid_vault_name("kv-blogpost-jx01"));
        assert!(!valid_vault_name("kv"));
        assert!(!valid_vault_name("1kv"));
        assert!(valid_object_name("MySecretPassword"));
        assert!(!valid_object_name("my.secret"));
        assert!(!valid_object_name(""));
    }

    #[test]
    fn expired_tokens_are_pruned_eventually() {
        let mut state = seeded();
        let grant = TokenGrant {
            tenant_id: "t1".into(),
            client_id: "c1".into(),
            resource: "r".into(),
            expires_at: 5,
        };
        let t = state.issue_token(grant, 0);
        assert!(state.token(&t).is_some());
        state.expire_tokens(3);
        assert_eq!(state.token(&t).map(|g| g.expires_at), Some(2));
    }
}
