//! One connection per cold host. The client pools connections and speaks
//! HTTP/2 (by ALPN), so once a connection to a host exists every request
//! shares it. But while none exists, each concurrent request opens its own:
//! HTTP/2 is only known after the TLS handshake, so the pool cannot make
//! the others wait. A node rebooting with 500 pods would make 500 TLS
//! handshakes to Entra ID and again to the vault.
//!
//! So when a host has not answered recently, the first request goes alone
//! and the others to that host wait until it has an answer (or failed, or
//! [`MAX_WAIT`] passed), then share its connection. "Recently" is the
//! pool's idle timeout: after that the connection is gone anyway.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::watch;
use tokio::time::Instant;

/// The longest a request waits for another's connection before opening its
/// own: the first answer is the only sign that the connection is up (the
/// pool does not tell), and a slow one must not hold the others for long.
pub const MAX_WAIT: Duration = Duration::from_secs(1);

/// Hosts kept before idle ones are forgotten.
const MAX_HOSTS: usize = 1024;

#[derive(Default)]
struct Host {
    /// When the host last answered (any status): its connection was alive.
    answered: Option<Instant>,
    /// Set while a first request is under way; dropped when it ends.
    opening: Option<watch::Receiver<()>>,
}

/// Per-host state, shared by the clones of one client.
#[derive(Clone)]
pub struct Warmup {
    hosts: Arc<Mutex<HashMap<String, Host>>>,
    /// How long an answer keeps a host warm (the pool's idle timeout).
    warm_for: Duration,
}

/// Held by the request that opens a cold host's connection; dropping it
/// lets the waiting requests go.
pub struct Opener {
    hosts: Arc<Mutex<HashMap<String, Host>>>,
    host: String,
    _release: watch::Sender<()>,
}

enum Entry {
    Go,
    Open(Opener),
    Wait(watch::Receiver<()>),
}

impl std::fmt::Debug for Warmup {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Warmup")
            .field("warm_for", &self.warm_for)
            .finish_non_exhaustive()
    }
}

impl Warmup {
    pub fn new(warm_for: Duration) -> Self {
        Self {
            hosts: Arc::default(),
            warm_for,
        }
    }

    /// Returns when a request to `url` may be sent; the first request to a
    /// cold `https` host gets the [`Opener`] to hold until it has an answer.
    pub async fn enter(&self, url: &str) -> Option<Opener> {
        let host = host_of(url)?;
        match self.entry(host) {
            Entry::Go => None,
            Entry::Open(opener) => Some(opener),
            Entry::Wait(mut rx) => {
                // Ends when the opener is dropped (its request ended).
                let _ = tokio::time::timeout(MAX_WAIT, rx.changed()).await;
                None
            }
        }
    }

    fn entry(&self, host: String) -> Entry {
        let now = Instant::now();
        let mut hosts = lock(&self.hosts);
        if hosts.len() >= MAX_HOSTS {
            let warm_for = self.warm_for;
            hosts.retain(|_, h| {
                h.opening.is_some() || h.answered.is_some_and(|t| now - t < warm_for)
            });
        }
        let state = hosts.entry(host.clone()).or_default();
        if state.answered.is_some_and(|t| now - t < self.warm_for) {
            return Entry::Go;
        }
        if let Some(rx) = &state.opening {
            return Entry::Wait(rx.clone());
        }
        let (tx, rx) = watch::channel(());
        state.opening = Some(rx);
        Entry::Open(Opener {
            hosts: self.hosts.clone(),
            host,
            _release: tx,
        })
    }

    /// Records the end of a request to `url`: an answer (any status) keeps
    /// the host warm; then the opener, if this request held it, lets the
    /// waiting requests go.
    pub fn finish(&self, url: &str, opener: Option<Opener>, answered: bool) {
        if answered && let Some(host) = host_of(url) {
            let mut hosts = lock(&self.hosts);
            if hosts.len() < MAX_HOSTS || hosts.contains_key(&host) {
                hosts.entry(host).or_default().answered = Some(Instant::now());
            }
        }
        drop(opener);
    }
}

impl Drop for Opener {
    fn drop(&mut self) {
        if let Some(state) = lock(&self.hosts).get_mut(&self.host) {
            state.opening = None;
        }
        // Dropping the sender (after this) wakes the waiters.
    }
}

/// `https://host:port` of a URL; `None` for anything else (plain HTTP to
/// node-local endpoints needs no TLS and is not gated).
fn host_of(url: &str) -> Option<String> {
    let parsed = reqwest::Url::parse(url).ok()?;
    if parsed.scheme() != "https" {
        return None;
    }
    Some(format!(
        "{}:{}",
        parsed.host_str()?,
        parsed.port_or_known_default()?
    ))
}

fn lock(hosts: &Mutex<HashMap<String, Host>>) -> MutexGuard<'_, HashMap<String, Host>> {
    // Poisoning only means a holder panicked; the map stays usable.
    hosts.lock().unwrap_or_else(|e| e.into_inner())
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    const KV: &str = "https://kv.vault.azure.net/secrets/a";

    #[tokio::test(start_paused = true)]
    async fn the_first_request_to_a_cold_host_goes_alone() {
        let warmup = Warmup::new(Duration::from_secs(300));
        let alone = Arc::new(AtomicUsize::new(0));
        let opener = warmup.enter(KV).await;
        assert!(opener.is_some(), "the first request opens the connection");
        let mut waiters = Vec::new();
        for _ in 0..10 {
            let (warmup, alone) = (warmup.clone(), alone.clone());
            waiters.push(tokio::spawn(async move {
                assert!(warmup.enter(KV).await.is_none());
                alone.fetch_add(1, Ordering::SeqCst);
            }));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert_eq!(alone.load(Ordering::SeqCst), 0, "the others wait");
        warmup.finish(KV, opener, true);
        for waiter in waiters {
            waiter.await.unwrap();
        }
        assert_eq!(alone.load(Ordering::SeqCst), 10);
        let start = Instant::now();
        assert!(warmup.enter(KV).await.is_none(), "warm now");
        assert_eq!(Instant::now(), start);
        assert!(
            warmup
                .enter("https://login.microsoftonline.com/t/oauth2/v2.0/token")
                .await
                .is_some(),
            "per host"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn waiting_is_bounded_and_a_failed_opener_leaves_the_host_cold() {
        let warmup = Warmup::new(Duration::from_secs(300));
        let opener = warmup.enter(KV).await;
        let start = Instant::now();
        assert!(warmup.enter(KV).await.is_none());
        assert_eq!(Instant::now() - start, MAX_WAIT);
        warmup.finish(KV, opener, false);
        assert!(warmup.enter(KV).await.is_some(), "no answer: still cold");
    }

    #[tokio::test(start_paused = true)]
    async fn hosts_go_cold_after_the_idle_timeout() {
        let warmup = Warmup::new(Duration::from_secs(300));
        let opener = warmup.enter(KV).await;
        warmup.finish(KV, opener, true);
        tokio::time::sleep(Duration::from_secs(200)).await;
        assert!(warmup.enter(KV).await.is_none());
        warmup.finish(KV, None, true);
        tokio::time::sleep(Duration::from_secs(299)).await;
        assert!(
            warmup.enter(KV).await.is_none(),
            "every answer keeps it warm"
        );
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert!(warmup.enter(KV).await.is_some());
    }

    #[test]
    fn only_https_hosts_are_gated() {
        assert_eq!(host_of(KV).as_deref(), Some("kv.vault.azure.net:443"));
        assert_eq!(host_of("http://127.0.0.1:8080/metadata"), None);
        assert_eq!(host_of("the token proxy https://x"), None);
    }
}
