//! Key Vault reads shared between mounts: identical reads in flight at the
//! same time are sent once (coalescing, always on), and with `--cache-ttl`
//! answers are kept for that long (the value cache, off by default).
//!
//! Both are keyed by [`ReadKey`]: the tenant and client id of the token the
//! mount itself obtained (or validly took from the token cache), the vault,
//! the object type, name and version. So a read is never shared across
//! identities, and a mount only gets here after its own token request
//! succeeded: a pod that cannot prove the identity gets nothing from
//! another pod's read.
//!
//! Cancellation: the mount that leads a flight runs it in its own task; if
//! it is cancelled (its budget, or another of its objects failed), a
//! waiting mount takes the flight over with its own token. A waiting mount
//! that receives an error that belongs to the leader — its budget ran out
//! while throttled, or its token was rejected — tries once more itself.
//!
//! Built from the `shared` toolkit (single flight, bounded cache); the
//! mount's [`Context`] is passed to the read that leads. This module must
//! not decide retries or know identities beyond the token's tenant and
//! client id.

use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use crate::budget::Context;
use crate::keyvault::{
    CertificateBundle, Collection, KeyBundle, KeyVault, KeyVaultError, ListedVersion, SecretBundle,
    VaultRef,
};
use crate::metrics::Metrics;
use crate::shared::{Cache, Role, SingleFlight};
use crate::token::AccessToken;

/// Most answers kept in the value cache.
pub const CACHE_MAX_ENTRIES: usize = 4096;

/// Most bytes of answers kept (Key Vault secrets are at most 25 KiB, so
/// this holds at least 640 of the largest).
pub const CACHE_MAX_BYTES: usize = 16 << 20;

/// The shared reads' settings, read once at start-up.
#[derive(Clone, Debug)]
pub struct ReadsConfig {
    /// `--cache-ttl`: how long Key Vault answers are kept (`None`: not at
    /// all).
    pub cache_ttl: Option<Duration>,
    /// Most answers kept.
    pub cache_max_entries: usize,
    /// Most bytes of answers kept.
    pub cache_max_bytes: usize,
}

/// What is read.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum What {
    Secret,
    Key,
    Certificate,
    /// The version listing of an object.
    Versions(Collection),
}

/// Who may share a read: identity, vault, object, version.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ReadKey {
    tenant_id: String,
    client_id: String,
    vault_url: String,
    what: What,
    name: String,
    /// Empty for the latest.
    version: String,
}

/// A Key Vault answer, shared by the mounts that read it.
#[derive(Debug)]
pub enum Read {
    Secret(SecretBundle),
    Key(KeyBundle),
    Certificate(CertificateBundle),
    Versions(Vec<ListedVersion>),
}

type Answer = Result<Arc<Read>, KeyVaultError>;

/// The shared read path; clones share flights and cache.
#[derive(Clone, Debug)]
pub struct Reads {
    keyvault: KeyVault,
    flights: Arc<SingleFlight<ReadKey, Answer>>,
    cache: Option<Arc<ValueCache>>,
    metrics: Metrics,
}

/// Answers kept for a fixed time after they arrived.
#[derive(Debug)]
struct ValueCache {
    ttl: Duration,
    answers: Cache<ReadKey, Arc<Read>>,
}

// === impl ReadsConfig ===

impl Default for ReadsConfig {
    fn default() -> Self {
        Self {
            cache_ttl: None,
            cache_max_entries: CACHE_MAX_ENTRIES,
            cache_max_bytes: CACHE_MAX_BYTES,
        }
    }
}

// === impl ReadKey ===

impl ReadKey {
    pub fn new(
        token: &AccessToken,
        vault: VaultRef<'_>,
        what: What,
        name: &str,
        version: &str,
    ) -> Self {
        Self {
            tenant_id: token.tenant_id.clone(),
            client_id: token.client_id.clone(),
            vault_url: vault.url.to_owned(),
            what,
            name: name.to_owned(),
            version: version.to_owned(),
        }
    }

    fn bytes(&self) -> usize {
        self.tenant_id.len()
            + self.client_id.len()
            + self.vault_url.len()
            + self.name.len()
            + self.version.len()
    }
}

// === impl Read ===

impl Read {
    /// Approximate heap size, for the cache's byte budget.
    fn bytes(&self) -> usize {
        use secrecy::ExposeSecret as _;
        let opt = |s: &Option<String>| s.as_ref().map_or(0, String::len);
        match self {
            Self::Secret(b) => {
                b.value.expose_secret().len() + b.id.len() + opt(&b.content_type) + opt(&b.kid)
            }
            Self::Key(k) => {
                k.kid.len()
                    + opt(&k.kty)
                    + opt(&k.crv)
                    + opt(&k.n)
                    + opt(&k.e)
                    + opt(&k.x)
                    + opt(&k.y)
            }
            Self::Certificate(c) => c.id.len() + c.cer.len(),
            Self::Versions(v) => v
                .iter()
                .map(|e| e.version.len() + std::mem::size_of::<ListedVersion>())
                .sum(),
        }
    }
}

// === impl Reads ===

impl Reads {
    pub fn new(keyvault: KeyVault, config: &ReadsConfig) -> Self {
        let cache = config.cache_ttl.filter(|ttl| !ttl.is_zero()).map(|ttl| {
            Arc::new(ValueCache {
                ttl,
                answers: Cache::new(config.cache_max_entries, config.cache_max_bytes),
            })
        });
        Self {
            keyvault,
            flights: Arc::default(),
            cache,
            metrics: Metrics::default(),
        }
    }

    /// Counts coalesced reads.
    pub fn with_metrics(mut self, metrics: Metrics) -> Self {
        self.metrics = metrics;
        self
    }

    /// One object version (`What::Secret`/`Key`/`Certificate`) or listing
    /// (`What::Versions`), from the cache, an identical read in flight, or
    /// Key Vault.
    pub async fn read(
        &self,
        cx: &Context,
        vault: VaultRef<'_>,
        token: &AccessToken,
        what: What,
        name: &str,
        version: &str,
    ) -> Answer {
        let key = ReadKey::new(token, vault, what, name, version);
        if let Some(hit) = self.cache.as_ref().and_then(|c| c.answers.get(&key)) {
            return Ok(hit);
        }
        let mut own_try_left = true;
        loop {
            let (answer, role) = self
                .flights
                .run(key.clone(), || self.fetch(cx, vault, token, &key))
                .await;
            if role == Role::Follower {
                if own_try_left && answer.as_ref().is_err_and(KeyVaultError::is_callers_own) {
                    own_try_left = false;
                    continue;
                }
                self.metrics.coalesced_read();
            }
            return answer;
        }
    }

    async fn fetch(
        &self,
        cx: &Context,
        vault: VaultRef<'_>,
        token: &AccessToken,
        key: &ReadKey,
    ) -> Answer {
        let kv = &self.keyvault;
        let (name, version) = (key.name.as_str(), key.version.as_str());
        let read = match key.what {
            What::Secret => Read::Secret(kv.get_secret(cx, vault, token, name, version).await?),
            What::Key => Read::Key(kv.get_key(cx, vault, token, name, version).await?),
            What::Certificate => {
                Read::Certificate(kv.get_certificate(cx, vault, token, name, version).await?)
            }
            What::Versions(collection) => {
                Read::Versions(kv.list_versions(cx, vault, token, collection, name).await?)
            }
        };
        let read = Arc::new(read);
        if let Some(cache) = &self.cache {
            let bytes = read.bytes() + key.bytes();
            let expires = Instant::now() + cache.ttl;
            cache
                .answers
                .insert(key.clone(), read.clone(), bytes, expires);
        }
        Ok(read)
    }
}
