//! The process-wide access-token cache: one entry per identity *and
//! credential*, bounded in size (least recently used entries go first), with
//! one request for concurrent misses of the same key; built from the
//! `shared` toolkit.
//!
//! A key is (mode, authority, tenant, identity, resource, SHA-256 of the
//! exact assertion or client secret). Two pods share an entry only when
//! they present the identical service-account token (or the same client
//! secret), so a token is never handed to a caller that could not have
//! obtained it itself. Keys hold digests, never the raw credential.
//!
//! An entry is fresh until the token's expiry minus [`REFRESH_MARGIN`], and
//! never beyond the expiry of the service-account token it was exchanged
//! for. A failed request is not cached. Fetches run as their own task
//! (`SingleFlight::run_detached`), so a mount that gives up (deadline,
//! cancellation) does not strand the callers waiting on the same key, and
//! the token still lands in the cache for the retry. This module must not
//! know HTTP.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use sha2::{Digest as _, Sha256};
use tokio::time::Instant;

use super::AuthError;
use crate::budget::Context;
use crate::params::IdentityKind;
use crate::shared::{Cache, Role, SingleFlight};
use crate::token::AccessToken;

/// How long before a token's expiry it stops being served from the cache.
/// Longer than any mount may take (`--mount-timeout`, kubelet's 2 minutes),
/// so a cached token never expires in the middle of a mount.
pub const REFRESH_MARGIN: Duration = Duration::from_secs(5 * 60);

/// Entries kept by default.
pub const DEFAULT_CAPACITY: usize = 4096;

/// What identifies a token. `Debug` shows a digest prefix only.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct CacheKey {
    pub mode: IdentityKind,
    /// Authority host, IMDS or NMI base URL, or token proxy URL.
    pub authority: String,
    pub tenant_id: String,
    /// Client id, user-assigned identity id or `namespace/pod/uid`.
    pub identity: String,
    /// Scope or resource the token is for.
    pub resource: String,
    /// SHA-256 of the assertion or client secret, if the mode has one.
    pub credential: Option<[u8; 32]>,
}

/// A token as fetched, before the cache decides how long to keep it.
#[derive(Debug)]
pub struct Fetched {
    pub token: AccessToken,
    /// Lifetime from the answer (`expires_in`); `None`: do not cache.
    pub lifetime: Option<Duration>,
}

/// Counts for metrics (monotonic, except `entries`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CacheSnapshot {
    /// Served from a fresh entry.
    pub hits: u64,
    /// Started a request.
    pub misses: u64,
    /// Waited for a request another caller had started.
    pub coalesced: u64,
    /// Dropped to stay within the capacity.
    pub evictions: u64,
    /// Entries now (cached, fresh or stale, plus requests in flight).
    pub entries: u64,
}

type Answer = Result<AccessToken, AuthError>;

struct Inner {
    tokens: Cache<CacheKey, AccessToken>,
    flights: Arc<SingleFlight<CacheKey, Answer>>,
    hits: AtomicU64,
    misses: AtomicU64,
    coalesced: AtomicU64,
}

/// The shared cache; clones share entries.
#[derive(Clone)]
pub struct TokenCache {
    inner: Arc<Inner>,
}

/// How a lookup was answered (for metrics).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Lookup {
    /// A fresh cached token.
    Hit,
    /// No usable entry: this caller started the request.
    Miss,
    /// Another caller's request for the same key was under way.
    Coalesced,
}

// === impl CacheKey ===

impl CacheKey {
    /// SHA-256 of a credential, for [`CacheKey::credential`].
    pub fn digest(credential: &str) -> [u8; 32] {
        Sha256::digest(credential.as_bytes()).into()
    }

    /// The [`CacheKey::credential`] of a verified service-account token
    /// (`--token-cache-scope=service-account`): a digest of its issuer,
    /// subject and audiences, domain-separated from token digests.
    pub fn service_account(claims: &super::verify::Claims) -> [u8; 32] {
        let mut hash = Sha256::new();
        hash.update(b"akv-csi-provider service-account scope\0");
        for part in [&claims.iss, &claims.sub].into_iter().chain(&claims.aud) {
            hash.update((part.len() as u64).to_be_bytes());
            hash.update(part.as_bytes());
        }
        hash.finalize().into()
    }
}

impl std::fmt::Debug for CacheKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CacheKey")
            .field("mode", &self.mode)
            .field("authority", &self.authority)
            .field("tenant_id", &self.tenant_id)
            .field("identity", &self.identity)
            .field("resource", &self.resource)
            .field(
                "credential",
                &self.credential.map(|d| hex::encode(&d[..4]) + "…"),
            )
            .finish()
    }
}

// === impl TokenCache ===

impl TokenCache {
    pub fn new(capacity: usize) -> Self {
        Self {
            inner: Arc::new(Inner {
                tokens: Cache::new(capacity, usize::MAX),
                flights: Arc::default(),
                hits: AtomicU64::new(0),
                misses: AtomicU64::new(0),
                coalesced: AtomicU64::new(0),
            }),
        }
    }

    /// The cached token for `key`, or the result of `fetch` (run once for
    /// all concurrent callers, as its own task). `not_after` caps the
    /// entry's freshness (the service-account token's expiry); `endpoint`
    /// names the request in the mount's budget error while it waits.
    pub async fn lookup_or_fetch<Fut>(
        &self,
        cx: &Context,
        key: CacheKey,
        not_after: Option<SystemTime>,
        endpoint: &str,
        fetch: Fut,
    ) -> (Answer, Lookup)
    where
        Fut: Future<Output = Result<Fetched, AuthError>> + Send + 'static,
    {
        let inner = &self.inner;
        if let Some(token) = inner.tokens.get(&key) {
            inner.hits.fetch_add(1, Ordering::Relaxed);
            return (Ok(token), Lookup::Hit);
        }
        let _waiting = cx.waiting_on(endpoint);
        let cap = not_after.map(|t| instant_of(t, Instant::now()));
        let mode = key.mode;
        let work = {
            let (inner, key) = (inner.clone(), key.clone());
            async move { inner.file(key, cap, fetch.await) }
        };
        let lost = move || Err(AuthError::internal(mode, "the token request task failed"));
        let (answer, role) = inner.flights.run_detached(key, work, lost).await;
        let (counter, lookup) = match role {
            Role::Leader => (&inner.misses, Lookup::Miss),
            Role::Follower => (&inner.coalesced, Lookup::Coalesced),
        };
        counter.fetch_add(1, Ordering::Relaxed);
        (answer, lookup)
    }

    /// Removes the entry holding `token`, if any.
    pub fn forget(&self, token: &AccessToken) {
        self.inner
            .tokens
            .remove_where(|cached| cached.same_as(token));
    }

    /// Counts so far.
    pub fn snapshot(&self) -> CacheSnapshot {
        let inner = &self.inner;
        let load = |c: &AtomicU64| c.load(Ordering::Relaxed);
        let entries = inner.tokens.size().0 + inner.flights.in_flight();
        CacheSnapshot {
            hits: load(&inner.hits),
            misses: load(&inner.misses),
            coalesced: load(&inner.coalesced),
            evictions: inner.tokens.evictions(),
            entries: entries as u64,
        }
    }
}

// === impl Inner ===

impl Inner {
    /// Keeps a fetched token while it is fresh; hands the result on.
    fn file(
        &self,
        key: CacheKey,
        cap: Option<Instant>,
        result: Result<Fetched, AuthError>,
    ) -> Answer {
        let fetched = result?;
        if let Some(until) = fresh_until(Instant::now(), fetched.lifetime, cap) {
            self.tokens.insert(key, fetched.token.clone(), 0, until);
        }
        Ok(fetched.token)
    }
}

/// Expiry minus the margin, capped by `cap`; `None` when that is not in
/// the future (or the lifetime is unknown).
fn fresh_until(now: Instant, lifetime: Option<Duration>, cap: Option<Instant>) -> Option<Instant> {
    let usable = lifetime?.checked_sub(REFRESH_MARGIN)?;
    let until = now + usable;
    let until = cap.map_or(until, |cap| until.min(cap));
    (until > now).then_some(until)
}

/// A wall-clock time as an `Instant` (the past maps to `now`).
fn instant_of(time: SystemTime, now: Instant) -> Instant {
    match time.duration_since(SystemTime::now()) {
        Ok(ahead) => now + ahead,
        Err(_) => now,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::SecretString;
    use std::sync::atomic::AtomicUsize;

    impl TokenCache {
        /// [`TokenCache::lookup_or_fetch`] outside any mount.
        async fn get_or_fetch<Fut>(
            &self,
            key: CacheKey,
            not_after: Option<SystemTime>,
            endpoint: &str,
            fetch: Fut,
        ) -> Answer
        where
            Fut: Future<Output = Result<Fetched, AuthError>> + Send + 'static,
        {
            let cx = Context::until(Instant::now() + Duration::from_secs(100));
            self.lookup_or_fetch(&cx, key, not_after, endpoint, fetch)
                .await
                .0
        }
    }

    fn key(credential: &str) -> CacheKey {
        CacheKey {
            mode: IdentityKind::WorkloadIdentity,
            authority: "https://login.microsoftonline.com/".into(),
            tenant_id: "t".into(),
            identity: "c".into(),
            resource: "https://vault.azure.net/.default".into(),
            credential: Some(CacheKey::digest(credential)),
        }
    }

    fn token(value: &str) -> AccessToken {
        AccessToken::new(SecretString::from(value), "t", "c")
    }

    /// A fetch that counts its runs and returns `value` after `delay`.
    fn counted(
        runs: &Arc<AtomicUsize>,
        value: &'static str,
        lifetime: Option<Duration>,
        delay: Duration,
    ) -> impl Future<Output = Result<Fetched, AuthError>> + Send + 'static {
        let runs = runs.clone();
        async move {
            runs.fetch_add(1, Ordering::SeqCst);
            tokio::time::sleep(delay).await;
            Ok(Fetched {
                token: token(value),
                lifetime,
            })
        }
    }

    const HOUR: Option<Duration> = Some(Duration::from_secs(3600));

    #[tokio::test(start_paused = true)]
    async fn same_credential_hits_other_credential_misses() {
        let cache = TokenCache::new(16);
        let runs = Arc::new(AtomicUsize::new(0));
        let zero = Duration::ZERO;
        let a = cache
            .get_or_fetch(key("sa-1"), None, "e", counted(&runs, "A", HOUR, zero))
            .await
            .unwrap();
        let again = cache
            .get_or_fetch(key("sa-1"), None, "e", counted(&runs, "X", HOUR, zero))
            .await
            .unwrap();
        assert_eq!((a.bearer(), again.bearer()), ("A", "A"));
        assert_eq!(runs.load(Ordering::SeqCst), 1, "second call is a hit");
        let other = cache
            .get_or_fetch(key("sa-2"), None, "e", counted(&runs, "B", HOUR, zero))
            .await
            .unwrap();
        assert_eq!(
            other.bearer(),
            "B",
            "another assertion never gets A's token"
        );
        assert_eq!(runs.load(Ordering::SeqCst), 2);
        let snap = cache.snapshot();
        assert_eq!((snap.hits, snap.misses, snap.entries), (1, 2, 2));
    }

    #[tokio::test(start_paused = true)]
    async fn concurrent_misses_make_one_request() {
        let cache = TokenCache::new(16);
        let runs = Arc::new(AtomicUsize::new(0));
        let calls = (0..20).map(|_| {
            cache.get_or_fetch(
                key("same"),
                None,
                "e",
                counted(&runs, "T", HOUR, Duration::from_millis(50)),
            )
        });
        let results = futures_util::future::join_all(calls).await;
        assert!(results.iter().all(|r| r.as_ref().unwrap().bearer() == "T"));
        assert_eq!(runs.load(Ordering::SeqCst), 1);
        let snap = cache.snapshot();
        assert_eq!((snap.misses, snap.coalesced), (1, 19));
    }

    #[tokio::test(start_paused = true)]
    async fn failures_are_shared_but_not_cached() {
        let cache = TokenCache::new(16);
        let runs = Arc::new(AtomicUsize::new(0));
        let failing = || {
            let runs = runs.clone();
            async move {
                runs.fetch_add(1, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(10)).await;
                Err::<Fetched, _>(AuthError::internal(IdentityKind::WorkloadIdentity, "boom"))
            }
        };
        let (a, b) = tokio::join!(
            cache.get_or_fetch(key("k"), None, "e", failing()),
            cache.get_or_fetch(key("k"), None, "e", failing()),
        );
        assert!(a.is_err() && b.is_err());
        assert_eq!(runs.load(Ordering::SeqCst), 1);
        let _ = cache.get_or_fetch(key("k"), None, "e", failing()).await;
        assert_eq!(runs.load(Ordering::SeqCst), 2, "an error is not kept");
    }

    #[tokio::test(start_paused = true)]
    async fn entries_expire_a_margin_before_the_token() {
        let cache = TokenCache::new(16);
        let runs = Arc::new(AtomicUsize::new(0));
        let zero = Duration::ZERO;
        let get =
            |value| cache.get_or_fetch(key("k"), None, "e", counted(&runs, value, HOUR, zero));
        get("1").await.unwrap();
        tokio::time::advance(Duration::from_secs(3600) - REFRESH_MARGIN - Duration::from_secs(1))
            .await;
        assert_eq!(get("2").await.unwrap().bearer(), "1");
        tokio::time::advance(Duration::from_secs(2)).await;
        assert_eq!(get("3").await.unwrap().bearer(), "3", "refreshed");
        assert_eq!(runs.load(Ordering::SeqCst), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn short_lived_tokens_and_expired_assertions_are_not_kept() {
        let cache = TokenCache::new(16);
        let runs = Arc::new(AtomicUsize::new(0));
        let zero = Duration::ZERO;
        let short = Some(REFRESH_MARGIN);
        for _ in 0..2 {
            cache
                .get_or_fetch(key("a"), None, "e", counted(&runs, "s", short, zero))
                .await
                .unwrap();
        }
        assert_eq!(runs.load(Ordering::SeqCst), 2, "lifetime within the margin");
        let past = SystemTime::now() - Duration::from_secs(1);
        for _ in 0..2 {
            cache
                .get_or_fetch(key("b"), Some(past), "e", counted(&runs, "s", HOUR, zero))
                .await
                .unwrap();
        }
        assert_eq!(runs.load(Ordering::SeqCst), 4, "the assertion has expired");
        for _ in 0..2 {
            cache
                .get_or_fetch(key("c"), None, "e", counted(&runs, "s", None, zero))
                .await
                .unwrap();
        }
        assert_eq!(runs.load(Ordering::SeqCst), 6, "unknown lifetime");
    }

    #[tokio::test(start_paused = true)]
    async fn entries_never_outlive_the_assertion() {
        let cache = TokenCache::new(16);
        let runs = Arc::new(AtomicUsize::new(0));
        let zero = Duration::ZERO;
        let sa_expiry = SystemTime::now() + Duration::from_secs(600);
        let get = || {
            cache.get_or_fetch(
                key("k"),
                Some(sa_expiry),
                "e",
                counted(&runs, "t", HOUR, zero),
            )
        };
        get().await.unwrap();
        tokio::time::advance(Duration::from_secs(590)).await;
        get().await.unwrap();
        assert_eq!(runs.load(Ordering::SeqCst), 1);
        tokio::time::advance(Duration::from_secs(20)).await;
        get().await.unwrap();
        assert_eq!(runs.load(Ordering::SeqCst), 2, "past the SA token's exp");
    }

    #[tokio::test(start_paused = true)]
    async fn least_recently_used_entries_are_evicted() {
        let cache = TokenCache::new(2);
        let runs = Arc::new(AtomicUsize::new(0));
        let zero = Duration::ZERO;
        for k in ["a", "b", "a", "c"] {
            cache
                .get_or_fetch(key(k), None, "e", counted(&runs, "t", HOUR, zero))
                .await
                .unwrap();
        }
        assert_eq!(runs.load(Ordering::SeqCst), 3);
        let snap = cache.snapshot();
        assert_eq!((snap.entries, snap.evictions), (2, 1));
        // "a" was used after "b", so "b" went.
        cache
            .get_or_fetch(key("a"), None, "e", counted(&runs, "t", HOUR, zero))
            .await
            .unwrap();
        assert_eq!(runs.load(Ordering::SeqCst), 3);
        cache
            .get_or_fetch(key("b"), None, "e", counted(&runs, "t", HOUR, zero))
            .await
            .unwrap();
        assert_eq!(runs.load(Ordering::SeqCst), 4);
    }

    #[tokio::test(start_paused = true)]
    async fn a_rejected_token_can_be_forgotten() {
        let cache = TokenCache::new(16);
        let runs = Arc::new(AtomicUsize::new(0));
        let zero = Duration::ZERO;
        let first = cache
            .get_or_fetch(key("k"), None, "e", counted(&runs, "1", HOUR, zero))
            .await
            .unwrap();
        // An unrelated token with the same value does not evict it.
        cache.forget(&token("1"));
        assert_eq!(cache.snapshot().entries, 1);
        cache.forget(&first);
        let second = cache
            .get_or_fetch(key("k"), None, "e", counted(&runs, "2", HOUR, zero))
            .await
            .unwrap();
        assert_eq!(second.bearer(), "2");
        // Forgetting the old token again leaves the new entry alone.
        cache.forget(&first);
        assert_eq!(cache.snapshot().entries, 1);
        assert_eq!(runs.load(Ordering::SeqCst), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn a_cancelled_caller_leaves_the_request_running_for_the_others() {
        let cache = TokenCache::new(16);
        let runs = Arc::new(AtomicUsize::new(0));
        let slow = Duration::from_secs(1);
        let first = {
            let (cache, fetch) = (cache.clone(), counted(&runs, "T", HOUR, slow));
            tokio::spawn(async move { cache.get_or_fetch(key("k"), None, "e", fetch).await })
        };
        tokio::time::sleep(Duration::from_millis(10)).await;
        first.abort();
        let second = cache
            .get_or_fetch(key("k"), None, "e", counted(&runs, "X", HOUR, slow))
            .await
            .unwrap();
        assert_eq!(second.bearer(), "T", "joined the first request");
        assert_eq!(runs.load(Ordering::SeqCst), 1);
        let snap = cache.snapshot();
        assert_eq!((snap.misses, snap.coalesced, snap.entries), (0, 1, 1));
    }

    #[test]
    fn keys_hold_digests_not_credentials() {
        let k = key("eyJhbGciOiJSUzI1NiJ9.secret-payload.signature");
        let dbg = format!("{k:?}");
        assert!(!dbg.contains("secret-payload"), "{dbg}");
        assert_ne!(key("a"), key("b"));
        assert_eq!(key("a"), key("a"));
    }
}
