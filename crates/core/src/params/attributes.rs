//! The `attributes`, `secrets` and `permission` inputs of a `MountRequest`:
//! JSON maps of strings (values wiped on drop), the parameter keys, the
//! pod, the file mode and the cloud.
//!
//! Reads the inputs only; must not choose an identity (`identity`) or read
//! the objects (`objects`), and never quotes a value in an error.

use std::collections::BTreeMap;

use thiserror::Error;
use zeroize::Zeroize;

use super::{ParamsError, ParseOptions};
use crate::cloud::{self, Cloud, CloudError};
use crate::object::FileMode;

// Keys of `attributes` (case-sensitive, values whitespace-trimmed).
pub(super) const POD_NAME: &str = "csi.storage.k8s.io/pod.name";
pub(super) const POD_NAMESPACE: &str = "csi.storage.k8s.io/pod.namespace";
pub(super) const POD_UID: &str = "csi.storage.k8s.io/pod.uid";
pub(super) const SERVICE_ACCOUNT_NAME: &str = "csi.storage.k8s.io/serviceAccount.name";
/// Audience → token map; in `attributes`, or in `secrets` (Kubernetes ≥ 1.35).
pub const SERVICE_ACCOUNT_TOKENS: &str = "csi.storage.k8s.io/serviceAccount.tokens";
pub(super) const SECRET_PROVIDER_CLASS: &str = "secretProviderClass";
pub(super) const KEYVAULT_NAME: &str = "keyvaultName";
pub(super) const TENANT_ID: &str = "tenantID";
pub(super) const TENANT_ID_LEGACY: &str = "tenantId";
pub(super) const CLIENT_ID: &str = "clientID";
pub(super) const USE_POD_IDENTITY: &str = "usePodIdentity";
pub(super) const USE_VM_MANAGED_IDENTITY: &str = "useVMManagedIdentity";
pub(super) const USE_AZURE_TOKEN_PROXY: &str = "useAzureTokenProxy";
pub(super) const USER_ASSIGNED_IDENTITY_ID: &str = "userAssignedIdentityID";
pub(super) const CLOUD_NAME: &str = "cloudName";
pub(super) const CLOUD_ENV_FILE_NAME: &str = "cloudEnvFileName";
pub(super) const OBJECTS: &str = "objects";

/// The pod the volume is mounted for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PodInfo {
    pub name: String,
    pub namespace: String,
    pub uid: Option<String>,
    pub service_account: Option<String>,
}

/// Where the cloud's endpoints come from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CloudSpec {
    Known(Cloud),
    /// Read this JSON file (`cloudEnvFileName`) and pass its contents to
    /// [`Cloud::from_environment_json`]; wrap failures as
    /// `cloudName <name> is not valid, error: <cause>`.
    AzureStack {
        /// The cloud name as the user spelled it (or `--cloud-name`).
        name: String,
        env_file: String,
    },
}

/// A JSON decoding failure whose text never quotes an input value (serde
/// would quote a mistyped string, which may be a token or a secret).
#[derive(Debug, Error, Clone, PartialEq, Eq)]
#[error("{0}")]
pub struct JsonError(String);

// === impl JsonError ===

impl JsonError {
    pub(super) fn new(e: &serde_json::Error, expected: &str) -> Self {
        match e.classify() {
            serde_json::error::Category::Data => Self(format!(
                "unexpected value type at line {} column {}, expected {expected}",
                e.line(),
                e.column()
            )),
            _ => Self(e.to_string()),
        }
    }
}

/// A JSON object of strings (`attributes`, `secrets`) whose values are
/// wiped on drop: they carry tokens and client secrets.
#[derive(Default)]
pub(super) struct StringMap(pub(super) BTreeMap<String, String>);

impl StringMap {
    /// `null` gives `None`; a `null` value reads as "" (as Go does).
    pub(super) fn from_json(json: &str) -> Result<Option<Self>, JsonError> {
        let parsed: Option<BTreeMap<String, Option<String>>> = serde_json::from_str(json)
            .map_err(|e| JsonError::new(&e, "a JSON object of strings"))?;
        Ok(parsed.map(|map| {
            Self(
                map.into_iter()
                    .map(|(k, v)| (k, v.unwrap_or_default()))
                    .collect(),
            )
        }))
    }

    /// The trimmed value, "" when absent.
    pub(super) fn get(&self, key: &str) -> &str {
        self.0.get(key).map_or("", |v| v.trim())
    }
}

impl Drop for StringMap {
    fn drop(&mut self) {
        self.0.values_mut().for_each(Zeroize::zeroize);
    }
}

/// `permission` is a JSON integer (the driver sends `420`). Values above
/// `0o7777` are rejected; setuid/setgid/sticky bits are dropped, since a
/// secret file never needs them.
pub(super) fn parse_permission(permission: &str) -> Result<FileMode, ParamsError> {
    let bits: u32 =
        serde_json::from_str(permission).map_err(|e| ParamsError::Permission(e.to_string()))?;
    if bits > 0o7777 {
        return Err(ParamsError::Permission(format!(
            "file mode {bits} ({bits:#o}) is outside the permission range 0..=0o7777"
        )));
    }
    Ok(FileMode::new(bits & FileMode::MAX).expect("masked to permission bits"))
}

pub(super) fn pod_info(attrs: &StringMap) -> Result<PodInfo, ParamsError> {
    let name = non_empty(attrs.get(POD_NAME)).ok_or(ParamsError::PodNameMissing)?;
    let namespace = non_empty(attrs.get(POD_NAMESPACE)).ok_or(ParamsError::PodNamespaceMissing)?;
    Ok(PodInfo {
        name,
        namespace,
        uid: non_empty(attrs.get(POD_UID)),
        service_account: non_empty(attrs.get(SERVICE_ACCOUNT_NAME)),
    })
}

/// `cloudName` (empty: `--cloud-name`), case-insensitive. Azure Stack is
/// returned as the file to read: `cloudEnvFileName`, else the
/// `AZURE_ENVIRONMENT_FILEPATH` the process started with; the process
/// environment is never read or changed here.
pub(super) fn cloud_spec(attrs: &StringMap, opts: &ParseOptions) -> Result<CloudSpec, ParamsError> {
    let env_file = attrs.get(CLOUD_ENV_FILE_NAME);
    if env_file.contains('\0') {
        return Err(ParamsError::CloudEnvFileName(env_file.to_owned()));
    }
    let name = attrs.get(CLOUD_NAME);
    let effective = match (name, opts.default_cloud_name.trim()) {
        ("", "") => "AzurePublicCloud",
        ("", default) => default,
        (name, _) => name,
    };
    let invalid = |source| ParamsError::InvalidCloudName {
        name: name.to_owned(),
        source,
    };
    if !cloud::is_azure_stack(effective) {
        return Cloud::from_name(effective)
            .map(CloudSpec::Known)
            .map_err(invalid);
    }
    let file = match env_file {
        "" => opts.environment_file.trim(),
        file => file,
    };
    match file {
        "" => Err(ParamsError::InvalidCloudName {
            name: effective.to_owned(),
            source: CloudError::EnvironmentFileNotSet,
        }),
        file => Ok(CloudSpec::AzureStack {
            name: effective.to_owned(),
            env_file: file.to_owned(),
        }),
    }
}

pub(super) fn non_empty(s: &str) -> Option<String> {
    (!s.is_empty()).then(|| s.to_owned())
}
