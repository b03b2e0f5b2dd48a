//! Upstream's provider as the benchmark runs it: the binary
//! `scripts/go-tools.sh azure-provider-v1.8.2` built from the pinned Go
//! module (`e2e/tools/azure-v1.8.2`), started as a child process against
//! the same in-process fake as ours.
//!
//! It reaches the fake the way ours does, with real Azure host names:
//! `HTTPS_PROXY` (Go's `http.ProxyFromEnvironment`, which azcore's default
//! transport uses, so Entra ID and the vault are `CONNECT`ed through the
//! fake on port 443) and `SSL_CERT_FILE` (Go reads it for the system roots
//! on Linux). Nothing else is set: the SecretProviderClass is the same
//! workload-identity class ours mounts, and upstream's SDK does its own
//! instance discovery, OpenID metadata and Key Vault challenge against the
//! fake. Its health and metrics listeners take free ports (`0`); it has no
//! bind-address flag, which is why `make bench` runs inside the loopback-only
//! network namespace (`scripts/netns-run`).

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use anyhow::Context as _;

/// The release the measured column is for.
pub(super) const VERSION: &str = "v1.8.2";

/// Where `scripts/go-tools.sh` puts the binary, relative to the checkout.
pub(super) const DEFAULT_BINARY: &str = ".tools/go/bin/azure-provider-v1.8.2";

static BINARY: OnceLock<PathBuf> = OnceLock::new();

/// Records the binary to run (from `--upstream`, else the default) after
/// checking it exists and answers `--version`; returns that answer.
pub(super) fn locate(path: Option<PathBuf>) -> anyhow::Result<String> {
    let path = path.unwrap_or_else(|| PathBuf::from(DEFAULT_BINARY));
    let output = std::process::Command::new(&path)
        .arg("--version")
        .env_clear()
        .output()
        .with_context(|| {
            format!(
                "upstream's provider {} cannot run; build it with `scripts/go-tools.sh azure-provider-{VERSION}` (make bench does)",
                path.display()
            )
        })?;
    anyhow::ensure!(
        output.status.success(),
        "upstream's provider {} --version failed: {}",
        path.display(),
        String::from_utf8_lossy(&output.stderr).trim()
    );
    let version = String::from_utf8_lossy(&output.stdout).trim().to_owned();
    let _ = BINARY.set(path);
    Ok(version)
}

/// The binary recorded by [`locate`].
pub(super) fn binary() -> &'static Path {
    BINARY
        .get()
        .map_or(Path::new(DEFAULT_BINARY), PathBuf::as_path)
}

/// Upstream's flags for a socket: its defaults otherwise (it has none of
/// our tuning flags), with the health and metrics ports free ones.
pub(super) fn args(socket: &Path) -> Vec<String> {
    vec![
        format!("--endpoint=unix://{}", socket.display()),
        "--healthz-port=0".into(),
        "--prometheus-port=0".into(),
    ]
}
