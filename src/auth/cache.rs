//! The process-wide access-token cache: one entry per identity *and
//! credential*, bounded in size (least recently used entries go first), with
//! one request for concurrent misses of the same key.
//!
//! A key is (mode, authority, tenant, identity, resource, SHA-256 of the
//! exact assertion or client secret). Two pods share an entry only when
//! they present the identical service-account token (or the same client
//! secret), so a token is never handed to a caller that could not have
//! obtained it itself. Keys hold digests, never the raw credential.
//!
//! An entry is fresh until the token's expiry minus [`REFRESH_MARGIN`], and
//! never beyond the expiry of the service-account token it was exchanged
//! for. A failed request is not cached. Fetches run as their own task, so
//! a mount that gives up (deadline, cancellation) does not strand the
//! callers waiting on the same key, and the token still lands in the cache
//! for the retry.

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, SystemTime};

use futures_util::FutureExt as _;
use futures_util::future::{BoxFuture, Shared};
use sha2::{Digest as _, Sha256};
use tokio::time::Instant;

use super::{AccessToken, AuthError};
use crate::params::IdentityKind;

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
    /// Entries now (fresh, stale or in flight).
    pub entries: u64,
}

type SharedFetch = Shared<BoxFuture<'static, Result<AccessToken, AuthError>>>;

enum Slot {
    Ready {
        token: AccessToken,
        fresh_until: Instant,
    },
    Pending {
        id: u64,
        fetch: SharedFetch,
    },
}

/// Map plus recency order (tick → key).
#[derive(Default)]
struct Lru {
    map: HashMap<CacheKey, (Slot, u64)>,
    order: BTreeMap<u64, CacheKey>,
    tick: u64,
}

struct Inner {
    capacity: usize,
    lru: Mutex<Lru>,
    next_id: AtomicU64,
    hits: AtomicU64,
    misses: AtomicU64,
    coalesced: AtomicU64,
    evictions: AtomicU64,
}

/// The shared cache; clones share entries.
#[derive(Clone)]
pub struct TokenCache {
    inner: Arc<Inner>,
}

enum Action {
    Hit(AccessToken),
    Wait(SharedFetch, Lookup),
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
                capacity: capacity.max(1),
                lru: Mutex::new(Lru::default()),
                next_id: AtomicU64::new(0),
                hits: AtomicU64::new(0),
                misses: AtomicU64::new(0),
                coalesced: AtomicU64::new(0),
                evictions: AtomicU64::new(0),
            }),
        }
    }

    /// The cached token for `key`, or the result of `fetch` (run once for
    /// all concurrent callers). `not_after` caps the entry's freshness (the
    /// service-account token's expiry); `endpoint` names the request in a
    /// mount-budget error while callers wait.
    #[cfg(test)]
    pub async fn get_or_fetch<Fut>(
        &self,
        key: CacheKey,
        not_after: Option<SystemTime>,
        endpoint: &str,
        fetch: Fut,
    ) -> Result<AccessToken, AuthError>
    where
        Fut: Future<Output = Result<Fetched, AuthError>> + Send + 'static,
    {
        self.lookup_or_fetch(key, not_after, endpoint, fetch)
            .await
            .0
    }

    /// [`TokenCache::get_or_fetch`], also telling how the lookup went.
    pub async fn lookup_or_fetch<Fut>(
        &self,
        key: CacheKey,
        not_after: Option<SystemTime>,
        endpoint: &str,
        fetch: Fut,
    ) -> (Result<AccessToken, AuthError>, Lookup)
    where
        Fut: Future<Output = Result<Fetched, AuthError>> + Send + 'static,
    {
        let action = self.lookup(key, not_after, fetch);
        match action {
            Action::Hit(token) => (Ok(token), Lookup::Hit),
            Action::Wait(fetch, lookup) => {
                let _waiting = crate::budget::waiting_on(endpoint);
                (fetch.await, lookup)
            }
        }
    }

    /// Removes `key`'s entry if it holds `token`.
    pub fn forget(&self, key: &CacheKey, token: &AccessToken) {
        let mut lru = self.inner.lock();
        if let Some(Slot::Ready { token: cached, .. }) = lru.get(key)
            && cached.same_as(token)
        {
            lru.remove(key);
        }
    }

    /// Counts so far.
    pub fn snapshot(&self) -> CacheSnapshot {
        let load = |c: &AtomicU64| c.load(Ordering::Relaxed);
        CacheSnapshot {
            hits: load(&self.inner.hits),
            misses: load(&self.inner.misses),
            coalesced: load(&self.inner.coalesced),
            evictions: load(&self.inner.evictions),
            entries: self.inner.lock().map.len() as u64,
        }
    }

    fn lookup<Fut>(&self, key: CacheKey, not_after: Option<SystemTime>, fetch: Fut) -> Action
    where
        Fut: Future<Output = Result<Fetched, AuthError>> + Send + 'static,
    {
        let inner = &self.inner;
        let mut lru = inner.lock();
        let now = Instant::now();
        match lru.get(&key) {
            Some(Slot::Ready { token, fresh_until }) if *fresh_until > now => {
                let token = token.clone();
                lru.touch(&key);
                inner.hits.fetch_add(1, Ordering::Relaxed);
                return Action::Hit(token);
            }
            Some(Slot::Pending { fetch, .. }) => {
                let fetch = fetch.clone();
                lru.touch(&key);
                inner.coalesced.fetch_add(1, Ordering::Relaxed);
                return Action::Wait(fetch, Lookup::Coalesced);
            }
            _ => {}
        }
        inner.misses.fetch_add(1, Ordering::Relaxed);
        let id = inner.next_id.fetch_add(1, Ordering::Relaxed);
        let cap = not_after.map(|t| instant_of(t, now));
        let mode = key.mode;
        let task = tokio::spawn(lead(inner.clone(), key.clone(), id, cap, fetch));
        let shared = async move {
            task.await
                .unwrap_or_else(|_| Err(AuthError::internal(mode, "the token request task failed")))
        }
        .boxed()
        .shared();
        let evicted = lru.insert(
            key,
            Slot::Pending {
                id,
                fetch: shared.clone(),
            },
            inner.capacity,
        );
        inner.evictions.fetch_add(evicted, Ordering::Relaxed);
        Action::Wait(shared, Lookup::Miss)
    }
}

/// Runs one fetch and files its result under `key` (if the slot is still
/// this fetch's: it may have been evicted meanwhile).
async fn lead<Fut>(
    inner: Arc<Inner>,
    key: CacheKey,
    id: u64,
    cap: Option<Instant>,
    fetch: Fut,
) -> Result<AccessToken, AuthError>
where
    Fut: Future<Output = Result<Fetched, AuthError>>,
{
    let key = Arc::new(key);
    let result = fetch.await.map(|mut fetched| {
        fetched.token.cache_key = Some(key.clone());
        fetched
    });
    let now = Instant::now();
    let mut lru = inner.lock();
    let still_ours =
        matches!(lru.get(&key), Some(Slot::Pending { id: current, .. }) if *current == id);
    if !still_ours {
        return result.map(|f| f.token);
    }
    match &result {
        Ok(fetched) => match fresh_until(now, fetched.lifetime, cap) {
            Some(fresh_until) => lru.replace(
                &key,
                Slot::Ready {
                    token: fetched.token.clone(),
                    fresh_until,
                },
            ),
            None => lru.remove(&key),
        },
        Err(_) => lru.remove(&key),
    }
    result.map(|f| f.token)
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

// === impl Inner ===

impl Inner {
    fn lock(&self) -> MutexGuard<'_, Lru> {
        self.lru.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

// === impl Lru ===

impl Lru {
    fn get(&self, key: &CacheKey) -> Option<&Slot> {
        self.map.get(key).map(|(slot, _)| slot)
    }

    fn next_tick(&mut self) -> u64 {
        self.tick += 1;
        self.tick
    }

    fn touch(&mut self, key: &CacheKey) {
        let tick = self.next_tick();
        if let Some((_, old)) = self.map.get_mut(key) {
            self.order.remove(old);
            *old = tick;
            self.order.insert(tick, key.clone());
        }
    }

    fn replace(&mut self, key: &CacheKey, slot: Slot) {
        if let Some((current, _)) = self.map.get_mut(key) {
            *current = slot;
        }
    }

    fn remove(&mut self, key: &CacheKey) {
        if let Some((_, tick)) = self.map.remove(key) {
            self.order.remove(&tick);
        }
    }

    /// Inserts as most recent; returns how many entries were evicted.
    fn insert(&mut self, key: CacheKey, slot: Slot, capacity: usize) -> u64 {
        self.remove(&key);
        let mut evicted = 0;
        while self.map.len() >= capacity {
            let Some((_, oldest)) = self.order.pop_first() else {
                break;
            };
            self.map.remove(&oldest);
            evicted += 1;
        }
        let tick = self.next_tick();
        self.order.insert(tick, key.clone());
        self.map.insert(key, (slot, tick));
        evicted
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::SecretString;
    use std::sync::atomic::AtomicUsize;

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
        let key_of_first = first
            .cache_key
            .clone()
            .expect("cached tokens know their key");
        // An unrelated token with the same value does not evict it.
        cache.forget(&key_of_first, &token("1"));
        assert_eq!(cache.snapshot().entries, 1);
        cache.forget(&key_of_first, &first);
        let second = cache
            .get_or_fetch(key("k"), None, "e", counted(&runs, "2", HOUR, zero))
            .await
            .unwrap();
        assert_eq!(second.bearer(), "2");
        // Forgetting the old token again leaves the new entry alone.
        cache.forget(&key_of_first, &first);
        assert_eq!(cache.snapshot().entries, 1);
        assert_eq!(runs.load(Ordering::SeqCst), 2);
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
