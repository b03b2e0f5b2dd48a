//! Imitates the Secrets Store CSI Driver (v1.6) on the provider's side of
//! the socket: builds `MountRequest.attributes` from a SecretProviderClass
//! YAML, pod information and service-account tokens exactly as the driver
//! and kubelet do, dials the unix socket with `:authority` `localhost`, and
//! writes returned files like the driver's writer would (for the demo).
//!
//! Shared by the integration tests and `examples/driver.rs`.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use akv_csi_provider::proto::csi_driver_provider_client::CsiDriverProviderClient;
use akv_csi_provider::proto::{MountRequest, MountResponse};
use anyhow::Context as _;
use tonic::transport::{Channel, Endpoint};

/// Audience of the workload-identity token request.
pub const WORKLOAD_IDENTITY_AUDIENCE: &str = "api://AzureADTokenExchange";

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

/// A SecretProviderClass document: its name, `spec.parameters` and
/// `spec.secretObjects`.
#[derive(Clone, Debug)]
pub struct SecretProviderClass {
    pub name: String,
    pub parameters: BTreeMap<String, String>,
    pub secret_objects: Vec<SecretObject>,
}

/// One `secretObjects` entry: a Kubernetes Secret built from mounted files.
#[derive(Clone, Debug)]
pub struct SecretObject {
    pub secret_name: String,
    pub secret_type: String,
    /// (key in the Secret, file name in the mount)
    pub data: Vec<(String, String)>,
}

impl SecretProviderClass {
    /// Parses the YAML a user applies with kubectl.
    pub fn from_yaml(text: &str) -> anyhow::Result<Self> {
        let doc: serde_yaml_ng::Value =
            serde_yaml_ng::from_str(text).context("SecretProviderClass YAML")?;
        let name = doc["metadata"]["name"]
            .as_str()
            .context("metadata.name")?
            .to_owned();
        let raw = doc["spec"]["parameters"]
            .as_mapping()
            .context("spec.parameters")?;
        let mut parameters = BTreeMap::new();
        for (key, value) in raw {
            let key = key.as_str().context("parameter key")?.to_owned();
            let value = match value {
                serde_yaml_ng::Value::String(s) => s.clone(),
                other => serde_yaml_ng::to_string(other)?.trim().to_owned(),
            };
            parameters.insert(key, value);
        }
        let mut secret_objects = Vec::new();
        for entry in doc["spec"]["secretObjects"]
            .as_sequence()
            .into_iter()
            .flatten()
        {
            let mut data = Vec::new();
            for item in entry["data"].as_sequence().into_iter().flatten() {
                let key = item["key"].as_str().context("secretObjects data key")?;
                let object = item["objectName"]
                    .as_str()
                    .context("secretObjects data objectName")?;
                data.push((key.to_owned(), object.to_owned()));
            }
            secret_objects.push(SecretObject {
                secret_name: entry["secretName"]
                    .as_str()
                    .context("secretObjects secretName")?
                    .to_owned(),
                secret_type: entry["type"]
                    .as_str()
                    .context("secretObjects type")?
                    .to_owned(),
                data,
            });
        }
        Ok(Self {
            name,
            parameters,
            secret_objects,
        })
    }

    /// Reads a SecretProviderClass file.
    pub fn from_file(path: &Path) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path).with_context(|| path.display().to_string())?;
        Self::from_yaml(&text)
    }
}

/// A token kubelet requested for the pod (one per CSIDriver tokenRequest).
#[derive(Clone, Debug)]
pub struct ServiceAccountToken {
    pub audience: String,
    pub token: String,
    pub expiration: String,
}

/// `attributes` as the driver sends them: SPC parameters, then the volume
/// context (pod info, `secretProviderClass`, tokens) overriding them.
pub fn attributes(spc: &SecretProviderClass, pod: &Pod, tokens: &[ServiceAccountToken]) -> String {
    let mut map = spc.parameters.clone();
    map.insert("csi.storage.k8s.io/pod.name".into(), pod.name.clone());
    map.insert(
        "csi.storage.k8s.io/pod.namespace".into(),
        pod.namespace.clone(),
    );
    map.insert("csi.storage.k8s.io/pod.uid".into(), pod.uid.clone());
    map.insert(
        "csi.storage.k8s.io/serviceAccount.name".into(),
        pod.service_account.clone(),
    );
    map.insert("csi.storage.k8s.io/ephemeral".into(), "true".into());
    map.insert("secretProviderClass".into(), spc.name.clone());
    if !tokens.is_empty() {
        let by_audience: BTreeMap<&str, serde_json::Value> = tokens
            .iter()
            .map(|t| {
                (
                    t.audience.as_str(),
                    serde_json::json!({"token": t.token, "expirationTimestamp": t.expiration}),
                )
            })
            .collect();
        map.insert(
            "csi.storage.k8s.io/serviceAccount.tokens".into(),
            serde_json::to_string(&by_audience).expect("a map of strings serializes"),
        );
    }
    serde_json::to_string(&map).expect("a map of strings serializes")
}

/// A Mount request like the driver's: `secrets` is `null` without a
/// nodePublishSecretRef, `permission` is always "420".
pub fn mount_request(
    attributes: String,
    secrets: Option<&BTreeMap<String, String>>,
    pod: &Pod,
) -> MountRequest {
    MountRequest {
        attributes,
        secrets: match secrets {
            Some(map) => serde_json::to_string(map).expect("a map of strings serializes"),
            None => "null".into(),
        },
        target_path: format!(
            "/var/lib/kubelet/pods/{}/volumes/kubernetes.io~csi/secrets-store-inline/mount",
            pod.uid
        ),
        permission: "420".into(),
        current_object_version: Vec::new(),
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
