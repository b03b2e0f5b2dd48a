//! [`FakeAzure`], the handle tests hold: start, point clients at it, mutate
//! state, inject faults, read counters, shut down.
//!
//! The handle owns the listener task; the shared state it hands to the
//! server lives in [`Shared`]. Transport is in `server.rs`, the services in
//! `aad.rs` and `keyvault.rs`.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use anyhow::{Context as _, bail};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::counters::Counters;
use crate::faults::{Faults, Limit, Target, Transport};
use crate::ids::{self, IdGen};
use crate::oidc::Issuers;
use crate::seed::{AppSeed, CertificateSeed, KeySeed, SecretSeed, Seed, VaultSeed};
use crate::server;
use crate::state::{Kind, State};
use crate::tls;
use crate::token_proxy;

/// State shared by the handle and every connection.
#[derive(Debug)]
pub(crate) struct Shared {
    state: Mutex<State>,
    faults: Mutex<Faults>,
    counters: Mutex<Counters>,
    issuers: Mutex<Issuers>,
    pub(crate) ca_pem: String,
    /// `https://localhost:PORT` of the token proxy (empty in unit tests).
    pub(crate) token_proxy_url: String,
}

// === impl Shared ===

impl Shared {
    pub(crate) fn new(state: State, ca_pem: String) -> Self {
        Self {
            state: Mutex::new(state),
            faults: Mutex::new(Faults::default()),
            counters: Mutex::new(Counters::default()),
            issuers: Mutex::new(Issuers::default()),
            ca_pem,
            token_proxy_url: String::new(),
        }
    }

    // A panic while a lock is held cannot leave these structures half
    // updated in a way that matters to a test fake, so poisoning is ignored.

    pub(crate) fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn issuers(&self) -> MutexGuard<'_, Issuers> {
        self.issuers.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn faults(&self) -> MutexGuard<'_, Faults> {
        self.faults.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn counters(&self) -> MutexGuard<'_, Counters> {
        self.counters.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// A running fake of Entra ID and Key Vault on a loopback port.
///
/// Dropping the handle stops the server too; [`FakeAzure::shutdown`] also
/// waits for the listener to close.
#[derive(Debug)]
pub struct FakeAzure {
    shared: Arc<Shared>,
    addr: SocketAddr,
    shutdown: watch::Sender<bool>,
    task: Option<JoinHandle<()>>,
    token_proxy_task: Option<JoinHandle<()>>,
}

// === impl FakeAzure ===

impl FakeAzure {
    /// Starts the fake on `127.0.0.1:0` (a free port).
    pub async fn start(seed: Seed) -> anyhow::Result<Self> {
        Self::start_on(seed, SocketAddr::from((Ipv4Addr::LOCALHOST, 0))).await
    }

    /// Starts the fake on `listen`, which must be a loopback address.
    pub async fn start_on(seed: Seed, listen: SocketAddr) -> anyhow::Result<Self> {
        if !listen.ip().is_loopback() {
            bail!("refusing to listen on {listen}: fake-azure only listens on loopback");
        }
        Self::bind(seed, listen).await
    }

    /// Starts the fake on any address, loopback or not. Only for running
    /// the fake as a pod in a throwaway test cluster (`make e2e-kind`),
    /// where the provider reaches it through a Service; tests and demos on
    /// a machine use [`FakeAzure::start`] or [`FakeAzure::start_on`].
    pub async fn start_in_cluster(seed: Seed, listen: SocketAddr) -> anyhow::Result<Self> {
        if !listen.ip().is_loopback() {
            tracing::warn!(%listen, "listening beyond loopback (in-cluster e2e only)");
        }
        Self::bind(seed, listen).await
    }

    async fn bind(seed: Seed, listen: SocketAddr) -> anyhow::Result<Self> {
        let state = State::from_seed(&seed, IdGen::from_os()?, ids::now_unix())
            .map_err(|e| anyhow::anyhow!("invalid seed: {e}"))?;
        let issuers = Issuers::from_seed(&seed);
        let pki = tls::generate(&issuers.hosts()).context("generating the fake's certificates")?;
        let listener = TcpListener::bind(listen)
            .await
            .with_context(|| format!("binding {listen}"))?;
        let addr = listener.local_addr()?;
        let proxy_listener = TcpListener::bind(SocketAddr::new(listen.ip(), 0))
            .await
            .with_context(|| format!("binding the token proxy on {}", listen.ip()))?;
        let token_proxy_addr = proxy_listener.local_addr()?;
        let mut shared = Shared::new(state, pki.ca_pem);
        *shared
            .issuers
            .get_mut()
            .unwrap_or_else(PoisonError::into_inner) = issuers;
        shared.token_proxy_url = format!("https://localhost:{}", token_proxy_addr.port());
        let shared = Arc::new(shared);
        let (shutdown, rx) = watch::channel(false);
        let task = tokio::spawn(server::run(
            listener,
            shared.clone(),
            pki.server_config,
            rx.clone(),
        ));
        let token_proxy_task = tokio::spawn(token_proxy::run(
            proxy_listener,
            shared.clone(),
            pki.token_proxy_config,
            rx,
        ));
        tracing::info!(%addr, %token_proxy_addr, "fake-azure listening");
        Ok(Self {
            shared,
            addr,
            shutdown,
            task: Some(task),
            token_proxy_task: Some(token_proxy_task),
        })
    }

    /// The listening address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT`, for `HTTPS_PROXY` or `reqwest::Proxy::all`.
    pub fn proxy_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The base URL of the plain-HTTP endpoints on the same port: IMDS
    /// (for `AZURE_POD_IDENTITY_AUTHORITY_HOST`) and NMI.
    pub fn http_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// `https://localhost:PORT`: the fake AKS API server / token proxy.
    pub fn token_proxy_url(&self) -> String {
        self.shared.token_proxy_url.clone()
    }

    /// The server name (SNI) the token proxy answers to.
    pub fn token_proxy_server_name(&self) -> String {
        token_proxy::server_name()
    }

    /// Publishes `jwks` as `issuer`'s keys (key rotation, a real cluster's
    /// keys): Entra ID verifies assertions of `issuer` with them, and the
    /// issuer's JWKS URL serves them. Its host must have been known at
    /// start (a federated credential's or a seeded issuer's) for TLS.
    pub fn set_issuer_jwks(&self, issuer: &str, jwks: serde_json::Value) {
        self.shared.issuers().set_jwks(issuer, jwks);
    }

    /// Makes `issuer`'s discovery and JWKS URLs answer 503 (`false`), or
    /// answer again (`true`). Entra ID's own checks are not affected.
    pub fn set_issuer_reachable(&self, issuer: &str, reachable: bool) {
        self.shared.issuers().set_reachable(issuer, reachable);
    }

    /// Sets the managed identities IMDS answers for (client ids of
    /// registered apps); replaces earlier ones.
    pub fn set_vm_identities(
        &self,
        system_assigned: Option<&str>,
        user_assigned: &[&str],
    ) -> anyhow::Result<()> {
        Ok(self
            .shared
            .state()
            .set_node_identities(system_assigned, user_assigned)?)
    }

    /// Assigns a registered app to a pod, as an AzureIdentityBinding would;
    /// NMI then answers for `namespace/pod`.
    pub fn bind_pod_identity(
        &self,
        namespace: &str,
        pod: &str,
        client_id: &str,
    ) -> anyhow::Result<()> {
        Ok(self
            .shared
            .state()
            .bind_pod_identity(namespace, pod, client_id)?)
    }

    /// Every access token issued so far (Entra ID, IMDS, NMI, token proxy),
    /// so tests can check none of them leaks into logs.
    pub fn issued_tokens(&self) -> Vec<String> {
        self.shared.state().issued_tokens()
    }

    /// The CA certificate (PEM) clients must trust.
    pub fn ca_pem(&self) -> &str {
        &self.shared.ca_pem
    }

    /// Writes the CA certificate (PEM) to `path`, e.g. for `SSL_CERT_FILE`.
    pub fn write_ca_pem(&self, path: impl AsRef<Path>) -> anyhow::Result<()> {
        let path = path.as_ref();
        std::fs::write(path, &self.shared.ca_pem)
            .with_context(|| format!("writing CA to {}", path.display()))
    }

    /// Adds a new current version of a secret (creating the secret if
    /// needed); returns its version id.
    pub fn set_secret(
        &self,
        vault: &str,
        name: &str,
        value: &str,
        content_type: Option<&str>,
    ) -> anyhow::Result<String> {
        let mut seed = SecretSeed::new(name, value);
        seed.content_type = content_type.map(str::to_string);
        self.add_secret_version(vault, seed)
    }

    /// Adds a new version described in full (e.g. certificate-backed or
    /// disabled); returns its version id.
    pub fn add_secret_version(&self, vault: &str, secret: SecretSeed) -> anyhow::Result<String> {
        Ok(self
            .shared
            .state()
            .set_secret(vault, &secret, ids::now_unix())?)
    }

    /// Disables one version; getting it then fails with 403 SecretDisabled.
    pub fn disable_secret_version(
        &self,
        vault: &str,
        name: &str,
        version: &str,
    ) -> anyhow::Result<()> {
        Ok(self
            .shared
            .state()
            .set_version_enabled(vault, name, version, false, ids::now_unix())?)
    }

    /// Re-enables one version.
    pub fn enable_secret_version(
        &self,
        vault: &str,
        name: &str,
        version: &str,
    ) -> anyhow::Result<()> {
        Ok(self
            .shared
            .state()
            .set_version_enabled(vault, name, version, true, ids::now_unix())?)
    }

    /// Adds a new current version of a key; returns its version id.
    pub fn add_key_version(&self, vault: &str, key: KeySeed) -> anyhow::Result<String> {
        Ok(self.shared.state().add_key(vault, &key, ids::now_unix())?)
    }

    /// Adds a new current version of a certificate, with its backing
    /// secret (and key, if given) under the same version id; returns it.
    pub fn add_certificate_version(
        &self,
        vault: &str,
        certificate: CertificateSeed,
    ) -> anyhow::Result<String> {
        Ok(self
            .shared
            .state()
            .add_certificate(vault, &certificate, ids::now_unix())?)
    }

    /// Enables or disables one version of a secret, key or certificate
    /// (a certificate's secret and key versions follow it).
    pub fn set_version_enabled(
        &self,
        vault: &str,
        kind: Kind,
        name: &str,
        version: &str,
        enabled: bool,
    ) -> anyhow::Result<()> {
        Ok(self.shared.state().set_object_version_enabled(
            vault,
            kind,
            name,
            version,
            enabled,
            ids::now_unix(),
        )?)
    }

    /// Page length of version listings when the client sends no
    /// `maxresults` (Key Vault's is 25; smaller values exercise paging).
    pub fn set_list_page_size(&self, size: usize) {
        self.shared.state().set_page_size(size);
    }

    /// Version ids of a secret, oldest first.
    pub fn secret_versions(&self, vault: &str, name: &str) -> anyhow::Result<Vec<String>> {
        Ok(self.shared.state().versions(vault, name)?)
    }

    /// Registers an app.
    pub fn add_app(&self, app: AppSeed) -> anyhow::Result<()> {
        Ok(self.shared.state().add_app(&app)?)
    }

    /// Creates a vault.
    pub fn add_vault(&self, vault: VaultSeed) -> anyhow::Result<()> {
        Ok(self.shared.state().add_vault(&vault, ids::now_unix())?)
    }

    /// Lets `client_id` get and list secrets in `vault`.
    pub fn grant(&self, vault: &str, client_id: &str) -> anyhow::Result<()> {
        Ok(self.shared.state().grant(vault, client_id, true)?)
    }

    /// Withdraws a grant; requests then get 403.
    pub fn revoke(&self, vault: &str, client_id: &str) -> anyhow::Result<()> {
        Ok(self.shared.state().grant(vault, client_id, false)?)
    }

    /// Sets `expires_in` of tokens issued from now on (default 3599 s).
    pub fn set_token_lifetime(&self, lifetime: Duration) {
        let secs = i64::try_from(lifetime.as_secs()).unwrap_or(i64::MAX);
        self.shared.state().set_token_lifetime_secs(secs);
    }

    /// Makes every token issued so far expired; Key Vault then answers 401.
    pub fn expire_tokens(&self) {
        self.shared.state().expire_tokens(ids::now_unix());
    }

    /// Delays every response of `target` (zero clears it).
    pub fn set_latency(&self, target: Target, latency: Duration) {
        self.shared.faults().set_latency(target, latency);
    }

    /// Answers 429 (with `Retry-After` if given) for a number of requests
    /// or until an instant.
    pub fn throttle(&self, target: Target, retry_after_secs: Option<u64>, limit: Limit) {
        self.shared
            .faults()
            .throttle(target, retry_after_secs, limit);
    }

    /// The next `count` requests to `target` (Entra ID or Key Vault) fail
    /// with 401 and the credential they carried in the error text.
    pub fn echo_credential(&self, target: Target, count: u32) {
        self.shared.faults().echo_credential(target, count);
    }

    /// Answers `status` (500..=599) to the next `count` requests.
    pub fn fail_5xx(&self, target: Target, status: u16, count: u32) -> anyhow::Result<()> {
        self.shared
            .faults()
            .fail_5xx(target, status, count)
            .map_err(anyhow::Error::msg)
    }

    /// Delays Key Vault requests for the object `name` (in any vault) by
    /// `latency` on top of the target's latency (zero clears it).
    pub fn set_object_latency(&self, name: &str, latency: Duration) {
        self.shared.faults().set_object_latency(name, latency);
    }

    /// Cuts the next `count` responses of `target` off after the headers
    /// and part of the body, as a reset connection would.
    pub fn reset_responses(&self, target: Target, count: u32) {
        self.transport_fault(target, Transport::ResetMidBody, count);
    }

    /// Breaks the transport of the next `count` responses of `target`.
    pub fn transport_fault(&self, target: Target, fault: Transport, count: u32) {
        self.shared.faults().transport(target, fault, count);
    }

    /// Removes all latency, throttling and errors.
    pub fn clear_faults(&self) {
        self.shared.faults().clear();
    }

    /// A snapshot of the counters.
    pub fn counters(&self) -> Counters {
        self.shared.counters().clone()
    }

    /// Zeroes the counters.
    pub fn reset_counters(&self) {
        *self.shared.counters() = Counters::default();
    }

    /// Stops accepting, closes every connection and waits for the listener.
    pub async fn shutdown(mut self) {
        let _ = self.shutdown.send(true);
        for task in [self.task.take(), self.token_proxy_task.take()]
            .into_iter()
            .flatten()
        {
            let _ = task.await;
        }
    }
}

impl Drop for FakeAzure {
    fn drop(&mut self) {
        let _ = self.shutdown.send(true);
    }
}
