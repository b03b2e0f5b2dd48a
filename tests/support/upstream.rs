//! Upstream's provider (`Azure/secrets-store-csi-driver-provider-azure`,
//! built from its Go module by `scripts/go-tools.sh`) as a process on a unix
//! socket of its own, pointed at the same Azure fake as ours with the same
//! settings: `HTTPS_PROXY` (Entra ID and Key Vault through the fake's
//! CONNECT proxy; Go proxies every host name but loopback), `HTTP_PROXY`
//! (IMDS, whose address upstream hard-codes, reaches the fake as a plain
//! forward proxy), `SSL_CERT_FILE` (the fake's CA). Pod identity's NMI is
//! hard-coded at `http://localhost:2579`, which Go never proxies, so
//! [`NmiForwarder`] relays that port to the fake.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use akv_csi_provider::proto::{MountRequest, MountResponse, VersionRequest};
use fake_azure::FakeAzure;
use tokio::net::{TcpListener, TcpStream};
use tokio::process::{Child, Command};

use super::driver;

/// The release the differential test compares with: the newest tag.
pub const UPSTREAM_VERSION: &str = "v1.8.2";

/// Where upstream's binary is: `AKV_UPSTREAM_PROVIDER`, else what
/// `scripts/go-tools.sh azure-provider-v1.8.2` builds. A missing binary is
/// a failure naming the command that builds it, never a skip.
pub fn binary() -> PathBuf {
    let path = std::env::var_os("AKV_UPSTREAM_PROVIDER").map_or_else(
        || {
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join(".tools/go/bin")
                .join(format!("azure-provider-{UPSTREAM_VERSION}"))
        },
        PathBuf::from,
    );
    assert!(
        path.is_file(),
        "upstream's provider is not at {} (build it with `scripts/go-tools.sh \
         azure-provider-{UPSTREAM_VERSION}`, which `make test` runs, or set \
         AKV_UPSTREAM_PROVIDER)",
        path.display()
    );
    path
}

/// A running upstream provider.
pub struct Upstream {
    pub socket: PathBuf,
    log: PathBuf,
    child: Child,
}

impl Upstream {
    /// Starts `binary` on `<dir>/upstream.sock` against `fake`, trusting
    /// the CA file `ca`, with the fake's AKS token proxy for identity
    /// binding (`--token-proxy-url`, `--sni-name`: upstream reads the
    /// service-account CA only from its fixed path, which does not exist
    /// here, so it trusts `SSL_CERT_FILE`); returns once it answers
    /// `Version`.
    pub async fn start(binary: &Path, fake: &FakeAzure, ca: &Path, dir: &Path) -> Self {
        let socket = dir.join("upstream.sock");
        let log = dir.join("upstream.log");
        let out = std::fs::File::create(&log).expect("upstream log file");
        let err = out.try_clone().expect("upstream log file");
        let mut identity_binding = Vec::new();
        if has_flag(binary, "token-proxy-url").await {
            identity_binding.push(format!("--token-proxy-url={}", fake.token_proxy_url()));
            identity_binding.push(format!("--sni-name={}", fake.token_proxy_server_name()));
        }
        let child = Command::new(binary)
            .arg(format!("--endpoint=unix://{}", socket.display()))
            .arg(format!("--healthz-port={}", free_port()))
            .arg(format!("--prometheus-port={}", free_port()))
            .args(identity_binding)
            .arg("-v=2")
            .env_clear()
            .env("HTTPS_PROXY", fake.proxy_url())
            .env("HTTP_PROXY", fake.proxy_url())
            .env("SSL_CERT_FILE", ca)
            .env("HOME", dir)
            .stdin(Stdio::null())
            .stdout(Stdio::from(out))
            .stderr(Stdio::from(err))
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| panic!("upstream's provider {} starts: {e}", binary.display()));
        let upstream = Self { socket, log, child };
        upstream.wait_ready().await;
        upstream
    }

    async fn wait_ready(&self) {
        for _ in 0..300 {
            if self.socket.exists() && self.version().await.is_ok() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!(
            "upstream's provider did not serve within 15s; logs:\n{}",
            self.logs()
        );
    }

    /// `Version` as the driver asks it.
    pub async fn version(&self) -> anyhow::Result<String> {
        let mut client = driver::connect(&self.socket).await?;
        let request = VersionRequest {
            version: "v1alpha1".into(),
        };
        let answer = client.version(request).await?.into_inner();
        Ok(answer.runtime_version)
    }

    /// Sends a prepared Mount request.
    pub async fn mount(&self, request: MountRequest) -> Result<MountResponse, tonic::Status> {
        let mut client = driver::connect(&self.socket)
            .await
            .expect("connect to upstream");
        client.mount(request).await.map(|r| r.into_inner())
    }

    /// Everything upstream wrote to stdout and stderr so far.
    pub fn logs(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Whether the process is still running.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }
}

/// Whether the binary knows `--<name>` (v1.5 has no identity-binding
/// flags), from the usage Go's flag package prints for `--help`.
async fn has_flag(binary: &Path, name: &str) -> bool {
    let output = Command::new(binary)
        .arg("--help")
        .env_clear()
        .stdin(Stdio::null())
        .output()
        .await
        .unwrap_or_else(|e| panic!("{} --help: {e}", binary.display()));
    let usage = [output.stdout, output.stderr].concat();
    String::from_utf8_lossy(&usage).contains(&format!("-{name} "))
}

/// A free loopback port (bound, then released) for upstream's health and
/// metrics listeners, which cannot be given port 0 to pick one.
fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    listener.local_addr().expect("local address").port()
}

/// NMI's fixed address, `localhost:2579`, relayed to the fake's plain-HTTP
/// port for as long as it lives.
pub struct NmiForwarder {
    task: tokio::task::JoinHandle<()>,
}

/// The port upstream's pod identity calls NMI on.
pub const NMI_PORT: u16 = 2579;

impl NmiForwarder {
    /// Listens on 127.0.0.1:2579 and relays each connection to `fake`.
    pub async fn start(fake: &FakeAzure) -> Self {
        let listener = TcpListener::bind(("127.0.0.1", NMI_PORT))
            .await
            .unwrap_or_else(|e| {
                panic!("NMI's port 127.0.0.1:{NMI_PORT} for upstream's pod identity: {e}")
            });
        let target = fake.addr();
        let task = tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                tokio::spawn(async move {
                    if let Ok(mut outbound) = TcpStream::connect(target).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
            }
        });
        Self { task }
    }
}

impl Drop for NmiForwarder {
    fn drop(&mut self) {
        self.task.abort();
    }
}
