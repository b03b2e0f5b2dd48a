//! Imitates the Secrets Store CSI Driver (v1.6) on the provider's side of
//! the socket: wraps the request `akv_csi_provider::spc::driver_request`
//! builds from a SecretProviderClass, pod information and service-account
//! tokens (the same builder as the dry run's) into a `MountRequest`, dials
//! the unix socket with `:authority` `localhost`, and writes returned files
//! and synced Secrets like the driver would (for the demo).
//!
//! Shared by the integration tests and `examples/driver.rs`.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use akv_csi_provider::proto::csi_driver_provider_client::CsiDriverProviderClient;
use akv_csi_provider::proto::{MountRequest, MountResponse, VersionRequest};
use akv_csi_provider::spc;
use anyhow::Context as _;
use tonic::transport::{Channel, Endpoint};

/// Audience of the workload-identity token request.
pub const WORKLOAD_IDENTITY_AUDIENCE: &str = akv_csi_provider::params::WORKLOAD_IDENTITY_AUDIENCE;

/// The pod a mount is for.
#[derive(Clone, Debug)]
pub struct Pod {
    pub namespace: String,
    pub name: String,
    pub uid: String,
    pub service_account: String,
}

impl Pod {
    /// The blog's busybox pod.
    pub fn blog() -> Self {
        Self {
            namespace: "blog-post".into(),
            name: "busybox-secrets-store-inline".into(),
            uid: "9d5e5f9a-3c1b-4a53-8f0e-6f1c2b3a4d5e".into(),
            service_account: "kv-access-account".into(),
        }
    }
}

pub use akv_csi_provider::spc::{SecretProviderClass, ServiceAccountToken};

/// The pod volume's name (part of kubelet's target path).
pub const VOLUME: &str = "secrets-store-inline";

impl Pod {
    /// What kubelet tells the driver about the pod and its volume.
    pub fn info(&self) -> spc::PodInfo<'_> {
        spc::PodInfo {
            namespace: &self.namespace,
            name: &self.name,
            uid: &self.uid,
            service_account: &self.service_account,
            volume: VOLUME,
        }
    }
}

/// Parses the SecretProviderClass YAML a user applies with kubectl (the
/// provider's own reader, as the dry run uses it).
pub fn spc_from_yaml(text: &str) -> anyhow::Result<SecretProviderClass> {
    spc::parse(text).context("SecretProviderClass YAML")
}

/// Reads a SecretProviderClass file.
pub fn spc_from_file(path: &Path) -> anyhow::Result<SecretProviderClass> {
    let text = std::fs::read_to_string(path).with_context(|| path.display().to_string())?;
    spc_from_yaml(&text)
}

/// The Mount request the driver sends for `pod` (built by
/// `akv_csi_provider::spc::driver_request`, as the dry run's).
pub fn request(
    spc: &SecretProviderClass,
    pod: &Pod,
    tokens: &[ServiceAccountToken],
    secrets: Option<&BTreeMap<String, String>>,
) -> MountRequest {
    let parts = spc::driver_request(spc, &pod.info(), tokens, secrets);
    MountRequest {
        attributes: parts.attributes,
        secrets: parts.secrets,
        target_path: parts.target_path,
        permission: parts.permission,
        current_object_version: Vec::new(),
    }
}

/// `attributes` as the driver sends them: SPC parameters, then the volume
/// context (pod info, `ephemeral`, `secretProviderClass`, tokens)
/// overriding them.
pub fn attributes(spc: &SecretProviderClass, pod: &Pod, tokens: &[ServiceAccountToken]) -> String {
    request(spc, pod, tokens, None).attributes
}

/// A Mount request like the driver's around prepared `attributes` (which
/// a test may have broken on purpose): `secrets` is `null` without a
/// nodePublishSecretRef, `permission` is always "420".
pub fn mount_request(
    attributes: String,
    secrets: Option<&BTreeMap<String, String>>,
    pod: &Pod,
) -> MountRequest {
    let nothing = SecretProviderClass {
        name: String::new(),
        namespace: None,
        provider: "azure".into(),
        parameters: BTreeMap::new(),
        secret_objects: Vec::new(),
    };
    MountRequest {
        attributes,
        ..request(&nothing, pod, &[], secrets)
    }
}

/// Dials the provider socket as driver v1.6 does (`:authority` localhost).
pub async fn connect(socket: &Path) -> anyhow::Result<CsiDriverProviderClient<Channel>> {
    let socket: PathBuf = socket.to_owned();
    let channel = Endpoint::try_from("http://localhost")?
        .connect_with_connector(tower::service_fn(move |_| {
            let socket = socket.clone();
            async move {
                let stream = tokio::net::UnixStream::connect(socket).await?;
                Ok::<_, std::io::Error>(hyper_util::rt::TokioIo::new(stream))
            }
        }))
        .await
        .context("connecting to the provider socket")?;
    Ok(CsiDriverProviderClient::new(channel).max_decoding_message_size(4 << 20))
}

/// Waits until the provider at `socket` answers a `Version` call, as the
/// driver's health check does, polling every millisecond (the benchmark
/// times start-up with it); gives up after `within`. Returns the time
/// waited.
pub async fn wait_serving(socket: &Path, within: Duration) -> anyhow::Result<Duration> {
    let started = Instant::now();
    while started.elapsed() < within {
        if socket.exists()
            && let Ok(mut client) = connect(socket).await
        {
            let request = VersionRequest {
                version: "v1alpha1".into(),
            };
            if client.version(request).await.is_ok() {
                return Ok(started.elapsed());
            }
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    anyhow::bail!(
        "the provider at {} did not serve within {within:?}",
        socket.display()
    )
}

/// Writes the files of a response under `dir` as the driver would (paths
/// are relative; modes applied explicitly).
pub fn write_files(dir: &Path, response: &MountResponse) -> anyhow::Result<Vec<PathBuf>> {
    use std::os::unix::fs::PermissionsExt as _;
    let mut written = Vec::new();
    for file in &response.files {
        anyhow::ensure!(
            !file.path.is_empty()
                && !file.path.starts_with('/')
                && !file.path.split('/').any(|e| e == ".."),
            "unsafe path {:?} in the response",
            file.path
        );
        let path = dir.join(&file.path);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(&path, &file.contents)?;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(file.mode as u32))?;
        written.push(path);
    }
    Ok(written)
}

/// A synced Secret: (name, type, [(key, bytes)]).
pub type SyncedSecret = (String, String, Vec<(String, Vec<u8>)>);

/// The Secrets the driver's sync controller would build from a response:
/// (secret name, type, [(key, bytes)]). Like the driver, a key whose file
/// is missing is an error.
pub fn synced_secrets(
    spc: &SecretProviderClass,
    response: &MountResponse,
) -> anyhow::Result<Vec<SyncedSecret>> {
    spc.secret_objects
        .iter()
        .map(|object| {
            let data = object
                .data
                .iter()
                .map(|(key, file)| {
                    let found = response.files.iter().find(|f| &f.path == file);
                    let found = found.with_context(|| {
                        format!("file matching objectName {file} not found in the pod")
                    })?;
                    Ok((key.clone(), found.contents.clone()))
                })
                .collect::<anyhow::Result<Vec<_>>>()?;
            Ok((object.secret_name.clone(), object.secret_type.clone(), data))
        })
        .collect()
}
