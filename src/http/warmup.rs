//! One connection per cold host. The client pools connections and speaks
//! HTTP/2 (by ALPN), so once a connection to a host exists every request
//! shares it. But while none exists, each concurrent request opens its own:
//! HTTP/2 is only known after the TLS handshake, so the pool cannot make
//! the others wait. A node rebooting with 500 pods would make 500 TLS
//! handshakes to Entra ID and again to the vault.
//!
//! So when a host has not answered recently, the first request goes alone
//! and the others to that host wait until its connection is up with HTTP/2
//! negotiated ([`ConnectSignal`], a layer around the client's connector,
//! reports it: the pool then holds a shareable connection), or until the
//! first request has an answer (HTTP/1.1, or a connector that cannot say),
//! failed, or [`MAX_WAIT`] passed; then they share its connection.
//! "Recently" is the pool's idle timeout: after that the connection is gone
//! anyway.
//!
//! The layer learns the host from the connector's request only through its
//! `Debug` text (reqwest does not name the type); when that cannot be read
//! the waiters fall back to waiting for the first answer.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::watch;
use tokio::time::Instant;

/// The longest a request waits for another's connection before opening its
/// own: the first answer is the only sign that the connection is up (the
/// pool does not tell), and a slow one must not hold the others for long.
pub const MAX_WAIT: Duration = Duration::from_secs(1);

/// How long after a connection is up the waiting requests go (see
/// [`Signalling`]).
const SIGNAL_DELAY: Duration = Duration::from_millis(10);

/// Hosts kept before idle ones are forgotten.
const MAX_HOSTS: usize = 1024;

#[derive(Default)]
struct Host {
    /// When the host last answered (any status): its connection was alive.
    answered: Option<Instant>,
    /// Set while a first request is under way; dropped when it ends, or
    /// sent on when its connection is up with HTTP/2.
    opening: Option<watch::Sender<()>>,
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
        if let Some(tx) = &state.opening {
            return Entry::Wait(tx.subscribe());
        }
        let (tx, _) = watch::channel(());
        state.opening = Some(tx);
        Entry::Open(Opener {
            hosts: self.hosts.clone(),
            host,
        })
    }

    /// A connection to `host` (`name:port`) is up with HTTP/2: the host is
    /// warm (later requests share the pooled connection) and the requests
    /// waiting for it go now.
    pub fn connected(&self, host: &str) {
        let mut hosts = lock(&self.hosts);
        if hosts.len() >= MAX_HOSTS && !hosts.contains_key(host) {
            return;
        }
        let state = hosts.entry(host.to_owned()).or_default();
        state.answered = Some(Instant::now());
        if let Some(tx) = &state.opening {
            tx.send_replace(());
        }
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
            // Dropping the sender wakes the waiters.
            state.opening = None;
        }
    }
}

/// A layer around the client's connector that tells [`Warmup`] when a
/// connection is up with HTTP/2 negotiated.
#[derive(Clone)]
pub struct ConnectSignal {
    warmup: Warmup,
}

/// The service of [`ConnectSignal`].
#[derive(Clone)]
pub struct Signalling<S> {
    inner: S,
    warmup: Warmup,
}

impl ConnectSignal {
    pub fn new(warmup: Warmup) -> Self {
        Self { warmup }
    }
}

impl<S> tower::Layer<S> for ConnectSignal {
    type Service = Signalling<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Signalling {
            inner,
            warmup: self.warmup.clone(),
        }
    }
}

impl<S, R> tower::Service<R> for Signalling<S>
where
    S: tower::Service<R>,
    S::Response: hyper_util::client::legacy::connect::Connection,
    S::Future: Send + 'static,
    R: std::fmt::Debug,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future =
        std::pin::Pin<Box<dyn std::future::Future<Output = Result<S::Response, S::Error>> + Send>>;

    fn poll_ready(
        &mut self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: R) -> Self::Future {
        let host = host_of_debug(&format!("{request:?}"));
        let (future, warmup) = (self.inner.call(request), self.warmup.clone());
        Box::pin(async move {
            let conn = future.await?;
            if let Some(host) = host
                && hyper_util::client::legacy::connect::Connection::connected(&conn)
                    .is_negotiated_h2()
            {
                // The client registers the connection as HTTP/2 in progress
                // (new requests then wait for it) right after this returns,
                // in the same poll; signal a moment later, so the waiters
                // find it registered rather than open their own.
                tokio::spawn(async move {
                    tokio::time::sleep(SIGNAL_DELAY).await;
                    warmup.connected(&host);
                });
            }
            Ok(conn)
        })
    }
}

/// The `https://host:port` in the `Debug` text of the connector's request
/// (`Unnameable(https://host/…)`).
fn host_of_debug(text: &str) -> Option<String> {
    let start = text.find("https://")?;
    let url = text[start..].split([')', ' ']).next()?;
    host_of(url)
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

    #[tokio::test(start_paused = true)]
    async fn waiters_go_as_soon_as_the_connection_is_up_with_http2() {
        let warmup = Warmup::new(Duration::from_secs(300));
        let opener = warmup.enter(KV).await;
        let waiter = {
            let warmup = warmup.clone();
            tokio::spawn(async move {
                let start = Instant::now();
                assert!(warmup.enter(KV).await.is_none());
                Instant::now() - start
            })
        };
        tokio::time::sleep(Duration::from_millis(20)).await;
        warmup.connected("kv.vault.azure.net:443");
        let waited = waiter.await.unwrap();
        assert_eq!(waited, Duration::from_millis(20), "not until the answer");
        // New requests go at once while the first still waits for its answer.
        let start = Instant::now();
        assert!(warmup.enter(KV).await.is_none());
        assert_eq!(Instant::now(), start);
        warmup.finish(KV, opener, true);
    }

    #[test]
    fn the_host_is_read_from_the_connector_request() {
        assert_eq!(
            host_of_debug("Unnameable(https://kv.vault.azure.net/)").as_deref(),
            Some("kv.vault.azure.net:443")
        );
        assert_eq!(
            host_of_debug("Unnameable(https://login.test:8443/t/oauth2)").as_deref(),
            Some("login.test:8443")
        );
        assert_eq!(host_of_debug("Unnameable(http://127.0.0.1/)"), None);
        assert_eq!(host_of_debug("something else"), None);
    }

    #[test]
    fn only_https_hosts_are_gated() {
        assert_eq!(host_of(KV).as_deref(), Some("kv.vault.azure.net:443"));
        assert_eq!(host_of("http://127.0.0.1:8080/metadata"), None);
        assert_eq!(host_of("the token proxy https://x"), None);
    }
}
