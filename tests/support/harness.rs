//! Test harness: one Azure fake (in-process) and one provider process per
//! test, each in its own temporary directory. The provider's environment is
//! cleared and then given only `HTTPS_PROXY` (the fake), `SSL_CERT_FILE`
//! (the fake's CA) and `AZURE_POD_IDENTITY_AUTHORITY_HOST` (the fake's
//! IMDS); unless a test says otherwise, NMI and the AKS token proxy are the
//! fake's too, and the service-account CA file does not exist. So it can
//! reach nothing but the fake: never 169.254.169.254, localhost:2579 or
//! kubernetes.default.svc.

#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use akv_csi_provider::proto::MountResponse;
use fake_azure::{FakeAzure, Seed};
use tempfile::TempDir;
use tokio::process::{Child, Command};

use super::driver::{self, Pod, SecretProviderClass, ServiceAccountToken};

/// The cluster's service-account issuer the fake trusts.
pub const ISSUER: &str = "https://oidc.blog-post.test/issuer";

/// The SecretProviderClass of the blog, as shipped under deploy/examples.
pub const BLOG_SPC: &str = include_str!("../../deploy/examples/secretproviderclass.yaml");

/// Flags every test provider gets before the test's own: the health and
/// metrics listeners on loopback, on free ports (a later flag overrides
/// these, as in Go).
pub const ADMIN_TEST_FLAGS: [&str; 3] = [
    "--admin-bind-address=127.0.0.1",
    "--healthz-port=0",
    "--prometheus-port=0",
];

/// A running fake and provider.
pub struct Harness {
    pub fake: FakeAzure,
    pub socket: PathBuf,
    dir: TempDir,
    log: PathBuf,
    child: Option<Child>,
    /// One projected token per (namespace, service account), reused like
    /// kubelet reuses a token within its lifetime (minting anew would
    /// depend on the clock's second and make cache counts flaky).
    tokens: std::sync::Mutex<std::collections::HashMap<(String, String), ServiceAccountToken>>,
}

impl Harness {
    /// The blog's vault and identity, provider with default flags.
    pub async fn start() -> Self {
        Self::start_with(Seed::blog_walkthrough(ISSUER), &[]).await
    }

    /// A given seed and extra provider flags.
    pub async fn start_with(seed: Seed, args: &[&str]) -> Self {
        Self::start_with_env(seed, args, &[]).await
    }

    /// A given seed, extra flags and extra environment variables.
    pub async fn start_with_env(seed: Seed, args: &[&str], env: &[(&str, &str)]) -> Self {
        let fake = FakeAzure::start(seed).await.expect("fake starts");
        let dir = tempfile::tempdir().expect("tempdir");
        let ca = dir.path().join("ca.pem");
        std::fs::write(&ca, fake.ca_pem()).expect("write CA");
        let socket = dir.path().join("azure.sock");
        let log = dir.path().join("provider.log");
        let child = spawn_provider(&socket, &ca, &fake, dir.path(), &log, args, env);
        let harness = Self {
            tokens: Default::default(),
            fake,
            socket,
            dir,
            log,
            child: Some(child),
        };
        harness.wait_ready().await;
        harness
    }

    async fn wait_ready(&self) {
        if let Err(error) = driver::wait_serving(&self.socket, Duration::from_secs(10)).await {
            panic!("{error:#}; logs:\n{}", self.logs());
        }
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The provider's process id.
    pub fn pid(&self) -> u32 {
        self.child
            .as_ref()
            .and_then(Child::id)
            .expect("provider running")
    }

    /// A `kB` field of `/proc/<pid>/status` in bytes (`VmHWM`: peak
    /// resident memory, `VmRSS`: now).
    pub fn memory(&self, field: &str) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid()))
            .expect("/proc/<pid>/status");
        status
            .lines()
            .find_map(|line| line.strip_prefix(field)?.strip_prefix(':'))
            .and_then(|rest| rest.trim().strip_suffix("kB")?.trim().parse::<u64>().ok())
            .map(|kib| kib * 1024)
            .unwrap_or_else(|| panic!("{field} in /proc/<pid>/status"))
    }

    /// Whether the provider process is still running.
    pub fn is_running(&mut self) -> bool {
        let child = self.child.as_mut().expect("provider running");
        matches!(child.try_wait(), Ok(None))
    }

    /// Open file descriptors of the provider (`/proc/<pid>/fd`).
    pub fn open_fds(&self) -> usize {
        std::fs::read_dir(format!("/proc/{}/fd", self.pid()))
            .expect("/proc/<pid>/fd")
            .count()
    }

    /// Threads of the provider (`/proc/<pid>/task`): tokio's workers and
    /// blocking threads, which a leak of blocking work would grow.
    pub fn threads(&self) -> usize {
        std::fs::read_dir(format!("/proc/{}/task", self.pid()))
            .expect("/proc/<pid>/task")
            .count()
    }

    /// The projected service-account token of a pod's service account for
    /// the WI audience (the same one for the harness's lifetime).
    pub fn token(&self, namespace: &str, service_account: &str) -> ServiceAccountToken {
        let key = (namespace.to_owned(), service_account.to_owned());
        let mut tokens = self.tokens.lock().unwrap_or_else(|e| e.into_inner());
        tokens
            .entry(key)
            .or_insert_with(|| mint_token(namespace, service_account))
            .clone()
    }
}

/// A freshly minted WI token (its claims carry the current second).
fn mint_token(namespace: &str, service_account: &str) -> ServiceAccountToken {
    ServiceAccountToken {
        audience: driver::WORKLOAD_IDENTITY_AUDIENCE.into(),
        token: fake_azure::mint_service_account_token(
            ISSUER,
            namespace,
            service_account,
            driver::WORKLOAD_IDENTITY_AUDIENCE,
            Duration::from_secs(3600),
        ),
        expiration: "2099-01-01T00:00:00Z".into(),
    }
}

impl Harness {
    /// Mounts a SecretProviderClass for a pod with its WI token.
    pub async fn mount_spc(
        &self,
        spc: &SecretProviderClass,
        pod: &Pod,
    ) -> Result<MountResponse, tonic::Status> {
        let tokens = [self.token(&pod.namespace, &pod.service_account)];
        let attributes = driver::attributes(spc, pod, &tokens);
        self.mount_raw(driver::mount_request(attributes, None, pod))
            .await
    }

    /// Sends a prepared request with a `grpc-timeout`, as a driver whose
    /// context has a deadline does.
    pub async fn mount_with_deadline(
        &self,
        request: akv_csi_provider::proto::MountRequest,
        deadline: Duration,
    ) -> Result<MountResponse, tonic::Status> {
        let mut client = driver::connect(&self.socket).await.expect("connect");
        let mut request = tonic::Request::new(request);
        request.set_timeout(deadline);
        client.mount(request).await.map(|r| r.into_inner())
    }

    /// Sends a prepared request.
    pub async fn mount_raw(
        &self,
        request: akv_csi_provider::proto::MountRequest,
    ) -> Result<MountResponse, tonic::Status> {
        let mut client = driver::connect(&self.socket).await.expect("connect");
        client.mount(request).await.map(|r| r.into_inner())
    }

    /// Starts the blog walkthrough's mount on a connection of its own and
    /// returns once the provider has obtained its token (the mount then
    /// waits on Key Vault, whose latency the caller set).
    pub async fn blog_mount_in_flight(
        &self,
    ) -> tokio::task::JoinHandle<Result<tonic::Response<MountResponse>, tonic::Status>> {
        let spc = driver::spc_from_yaml(BLOG_SPC).expect("blog SPC parses");
        let pod = Pod::blog();
        let tokens = [self.token(&pod.namespace, &pod.service_account)];
        let request = driver::mount_request(driver::attributes(&spc, &pod, &tokens), None, &pod);
        let mut client = driver::connect(&self.socket).await.expect("connect");
        let in_flight = tokio::spawn(async move { client.mount(request).await });
        for _ in 0..100 {
            if self.fake.counters().tokens_issued() > 0 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        in_flight
    }

    /// The blog SPC with its `objects` replaced.
    pub fn blog_spc_with_objects(objects_yaml: &str) -> SecretProviderClass {
        let mut spc = super::driver::spc_from_yaml(BLOG_SPC).expect("blog SPC parses");
        spc.parameters.insert("objects".into(), objects_yaml.into());
        spc
    }

    /// Everything the provider wrote to stdout and stderr so far.
    pub fn logs(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The address the provider logged for a listener (`what` is a part of
    /// the log message, e.g. "serving /metrics"), text or JSON logs.
    pub async fn logged_address(&self, what: &str) -> SocketAddr {
        for _ in 0..200 {
            let logs = self.logs();
            let found = logs
                .lines()
                .filter(|line| line.contains(what))
                .find_map(|line| log_field(line, "address"));
            if let Some(address) = found.and_then(|a| a.parse().ok()) {
                return address;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("no address logged for {what:?}; logs:\n{}", self.logs());
    }

    /// The health listener (`--healthz-port`, also `/readyz`).
    pub async fn health_addr(&self) -> SocketAddr {
        self.logged_address("serving health checks").await
    }

    /// The metrics listener (`--prometheus-port`).
    pub async fn metrics_addr(&self) -> SocketAddr {
        self.logged_address("serving /metrics").await
    }

    /// `GET /metrics` as text.
    pub async fn scrape(&self) -> String {
        let (status, body) = http_get(self.metrics_addr().await, "/metrics").await;
        assert_eq!(status, 200, "{body}");
        body
    }

    /// Sends SIGTERM without waiting.
    pub fn send_sigterm(&self) {
        self.send_signal("TERM");
    }

    /// Sends a signal by name (`TERM`, `HUP`) without waiting.
    pub fn send_signal(&self, name: &str) {
        let child = self.child.as_ref().expect("provider running");
        let pid = child.id().expect("pid").to_string();
        let status = std::process::Command::new("kill")
            .args([&format!("-{name}"), &pid])
            .status()
            .expect("kill");
        assert!(status.success());
    }

    /// Waits for the provider to exit (after [`Harness::send_sigterm`]).
    pub async fn wait_exit(&mut self) -> std::process::ExitStatus {
        let mut child = self.child.take().expect("provider running");
        tokio::time::timeout(Duration::from_secs(10), child.wait())
            .await
            .expect("provider exits within 10s")
            .expect("wait")
    }

    /// Sends SIGTERM and waits for the exit status.
    pub async fn terminate(&mut self) -> std::process::ExitStatus {
        self.send_sigterm();
        let mut child = self.child.take().expect("provider running");
        tokio::time::timeout(Duration::from_secs(10), child.wait())
            .await
            .expect("provider exits within 10s after SIGTERM")
            .expect("wait")
    }
}

/// A plain HTTP GET on loopback: (status, body).
pub async fn http_get(addr: SocketAddr, path: &str) -> (u16, String) {
    let client = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(20))
        .build()
        .expect("client");
    let response = client
        .get(format!("http://{addr}{path}"))
        .send()
        .await
        .unwrap_or_else(|e| panic!("GET {addr}{path}: {e}"));
    let status = response.status().as_u16();
    (status, response.text().await.unwrap_or_default())
}

/// A field of a log line: `name=value` in text logs, `"name":value` in
/// JSON logs.
pub fn log_field(line: &str, name: &str) -> Option<String> {
    if let Ok(serde_json::Value::Object(map)) = serde_json::from_str(line) {
        return map.get(name).map(|v| match v {
            serde_json::Value::String(s) => s.clone(),
            other => other.to_string(),
        });
    }
    let start = line.find(&format!(" {name}="))? + name.len() + 2;
    let rest = &line[start..];
    if let Some(quoted) = rest.strip_prefix('"') {
        return quoted.split('"').next().map(str::to_owned);
    }
    Some(rest.split(' ').next().unwrap_or("").to_owned())
}

/// Runs the provider binary to completion (for `--version` and `mount`),
/// with only the fake's proxy and CA in its environment when given.
pub async fn run_binary(args: &[&str], fake: Option<(&FakeAzure, &Path)>) -> std::process::Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_akv-csi-provider"));
    command.args(args).env_clear().stdin(Stdio::null());
    if let Some((fake, ca)) = fake {
        command
            .env("HTTPS_PROXY", fake.proxy_url())
            .env("SSL_CERT_FILE", ca);
    }
    tokio::time::timeout(Duration::from_secs(60), command.output())
        .await
        .expect("the command finishes within 60s")
        .expect("the binary runs")
}

fn spawn_provider(
    socket: &Path,
    ca: &Path,
    fake: &FakeAzure,
    dir: &Path,
    log: &Path,
    args: &[&str],
    env: &[(&str, &str)],
) -> Child {
    let out = std::fs::File::create(log).expect("log file");
    let err = out.try_clone().expect("log file");
    let given = |flag: &str| args.iter().any(|a| a.starts_with(flag));
    let mut defaults = Vec::new();
    if !given("--nmi-endpoint") {
        defaults.push(format!("--nmi-endpoint={}", fake.http_url()));
    }
    if !given("--token-proxy-url") {
        defaults.push(format!("--token-proxy-url={}", fake.token_proxy_url()));
    }
    if !given("--token-proxy-ca-file") {
        let absent = dir.join("no-service-account-ca.crt");
        defaults.push(format!("--token-proxy-ca-file={}", absent.display()));
    }
    Command::new(env!("CARGO_BIN_EXE_akv-csi-provider"))
        .arg(format!("--endpoint=unix://{}", socket.display()))
        .args(ADMIN_TEST_FLAGS)
        .args(defaults)
        .args(args)
        .env_clear()
        .env("HTTPS_PROXY", fake.proxy_url())
        .env("SSL_CERT_FILE", ca)
        .env("AZURE_POD_IDENTITY_AUTHORITY_HOST", fake.http_url())
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .stdout(Stdio::from(out))
        .stderr(Stdio::from(err))
        .kill_on_drop(true)
        .spawn()
        .expect("provider binary starts")
}

/// A response's files as (path, text).
pub fn files(response: &MountResponse) -> Vec<(String, String)> {
    response
        .files
        .iter()
        .map(|f| {
            (
                f.path.clone(),
                String::from_utf8_lossy(&f.contents).into_owned(),
            )
        })
        .collect()
}

/// A response's object versions as (id, version).
pub fn ids(response: &MountResponse) -> Vec<(String, String)> {
    response
        .object_version
        .iter()
        .map(|v| (v.id.clone(), v.version.clone()))
        .collect()
}

/// The cause of a failed mount after upstream's prefix; the status must be
/// `Unknown`, as upstream's.
pub fn failure(status: &tonic::Status) -> &str {
    assert_eq!(status.code(), tonic::Code::Unknown, "{}", status.message());
    status
        .message()
        .strip_prefix("failed to mount objects, error: ")
        .unwrap_or_else(|| panic!("upstream prefix: {}", status.message()))
}
