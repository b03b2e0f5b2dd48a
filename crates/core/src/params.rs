//! SecretProviderClass parameters → [`MountParams`]: the `attributes`,
//! `secrets` and `permission` JSON of a `MountRequest` and the `objects`
//! YAML, checked in upstream's order and with upstream's error texts.
//!
//! - `attributes`: the JSON maps and `permission`, the pod, the cloud;
//! - `identity`: which identity the flags and credentials select
//!   ([`Identity`], [`IdentityKind`]);
//! - `objects`: the `objects` YAML (with its depth guard) → validated
//!   [`KeyVaultObject`]s;
//! - `hints`: "did you mean" for misspelled keys.
//!
//! Pure: no I/O, no environment, no logging. The caller reads an Azure
//! Stack environment file ([`CloudSpec::AzureStack`]), checks the vault
//! name (`cloud::validate_vault_name`, upstream's step 14) and turns an
//! empty object list into an empty success.

use thiserror::Error;

use crate::cloud::CloudError;
use crate::object::{FileMode, KeyVaultObject, ObjectError};

mod attributes;
mod hints;
mod identity;
mod objects;
#[cfg(test)]
mod tests;

pub use crate::go::ParseBoolError;
pub use attributes::{CloudSpec, JsonError, PodInfo, SERVICE_ACCOUNT_TOKENS};
pub use hints::{Hints, KeyHint, Topic};
pub use identity::{
    AuthConfigError, IDENTITY_BINDING_AUDIENCE, Identity, IdentityKind, ServiceAccountToken,
    TokenError, WORKLOAD_IDENTITY_AUDIENCE,
};
pub use objects::{
    MAX_ANCHORS, MAX_BLOCK_DEPTH, MAX_EXPANDED_BYTES, MAX_EXPANDED_NODES, MAX_FLOW_DEPTH,
    MAX_OBJECT_VERSIONS, MAX_OBJECTS, MAX_OBJECTS_YAML_BYTES, YamlLimit,
};

use attributes::*;

/// Process-wide inputs to [`parse`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParseOptions {
    /// `--cloud-name`: the cloud when `cloudName` is empty.
    pub default_cloud_name: String,
    /// `AZURE_ENVIRONMENT_FILEPATH` as the process started with it (empty
    /// when unset): the Azure Stack environment file when the request has
    /// no `cloudEnvFileName`, as go-autorest reads it.
    pub environment_file: String,
}

/// A parsed, validated mount request.
#[derive(Clone, Debug)]
pub struct MountParams {
    pub pod: PodInfo,
    /// The `secretProviderClass` attribute, for logs.
    pub secret_provider_class: Option<String>,
    pub keyvault_name: String,
    pub tenant_id: String,
    pub cloud: CloudSpec,
    pub identity: Identity,
    /// Validated, in declaration order; may be empty (an empty success).
    pub objects: Vec<KeyVaultObject>,
    /// The request's `permission`, for objects without `filePermission`.
    pub default_mode: FileMode,
    /// Probably misspelled parameter keys, for errors after parsing.
    pub hints: Hints,
}

/// Why a request is rejected. `Display` is the text upstream puts after
/// `failed to mount objects, error: `.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum ParamsError {
    #[error("failed to unmarshal attributes, error: {0}")]
    Attributes(JsonError),
    #[error("failed to unmarshal secrets, error: {0}")]
    Secrets(JsonError),
    #[error("failed to unmarshal file permission, error: {0}")]
    Permission(String),
    #[error("pod name is not provided")]
    PodNameMissing,
    #[error("pod namespace is not provided")]
    PodNamespaceMissing,
    #[error("failed to parse {flag} flag, error: {source}")]
    ParseBool {
        flag: &'static str,
        source: ParseBoolError,
    },
    #[error(
        "only one identity mode can be enabled at a time: usePodIdentity, useVMManagedIdentity, or useAzureTokenProxy"
    )]
    MultipleIdentityModes,
    #[error("keyvaultName is not provided")]
    KeyvaultNameMissing,
    #[error("tenantId is not provided")]
    TenantIdMissing,
    /// A NUL byte, the one value upstream's `os.Setenv` rejects.
    #[error("failed to set AZURE_ENVIRONMENT_FILEPATH env to {0}, error invalid argument")]
    CloudEnvFileName(String),
    #[error("cloudName {name} is not valid, error: {source}")]
    InvalidCloudName { name: String, source: CloudError },
    /// `mode` is what the flags selected (`None`: workload identity or
    /// service principal), shown by upstream's name.
    #[error("failed to build auth config for mode {}: {source}", upstream_mode_name(*.mode))]
    AuthConfig {
        mode: Option<IdentityKind>,
        source: AuthConfigError,
    },
    #[error("objects is not set")]
    ObjectsNotSet,
    #[error("objects is {0} bytes long, the limit is {MAX_OBJECTS_YAML_BYTES}")]
    ObjectsTooLarge(usize),
    #[error("failed to yaml unmarshal objects, error: {0}")]
    ObjectsYaml(String),
    #[error("objects nests flow collections ([…] or {{…}}) more than {MAX_FLOW_DEPTH} levels deep")]
    ObjectsTooDeep,
    #[error(
        "unmarshal failed for keyVaultObjects at index {0}, error: it nests flow collections \
         ([…] or {{…}}) more than {MAX_FLOW_DEPTH} levels deep"
    )]
    ObjectTooDeep(usize),
    /// Checked before parsing: what the document would cost to build.
    #[error("objects is refused before parsing: {0}")]
    ObjectsOverLimit(YamlLimit),
    #[error("unmarshal failed for keyVaultObjects at index {index}, error: {limit}")]
    ObjectOverLimit { index: usize, limit: YamlLimit },
    #[error("objects lists {0} objects, the limit is {MAX_OBJECTS}")]
    TooManyObjects(usize),
    #[error("objects request {0} object versions in total, the limit is {MAX_OBJECT_VERSIONS}")]
    TooManyVersions(usize),
    #[error("unmarshal failed for keyVaultObjects at index {index}, error: {source}")]
    ObjectUnmarshal {
        index: usize,
        source: serde_yaml_ng::Error,
    },
    #[error("failed to get {context}: {source}")]
    Object {
        context: String,
        source: ObjectError,
    },
    /// An error a misspelled parameter key may explain: upstream's text,
    /// then `(did you mean "clientID"? …)`.
    #[error("{source}{hints}")]
    Hinted {
        source: Box<ParamsError>,
        hints: Hints,
    },
    #[error("object at index {} (objectName:{}) writes the file {path:?}, but object at index {} (objectName:{}) writes {nested_path:?} inside it", .file.0, .file.1, .nested.0, .nested.1)]
    FileDirectoryConflict {
        path: String,
        file: (usize, String),
        nested_path: String,
        nested: (usize, String),
    },
}

impl ParamsError {
    /// A short, bounded code for metrics and logs.
    pub fn code(&self) -> &'static str {
        match self {
            Self::AuthConfig { .. } => "InvalidIdentityConfig",
            Self::ObjectsNotSet
            | Self::ObjectsTooLarge(_)
            | Self::ObjectsYaml(_)
            | Self::ObjectsTooDeep
            | Self::ObjectTooDeep(_)
            | Self::ObjectsOverLimit(_)
            | Self::ObjectOverLimit { .. }
            | Self::TooManyObjects(_)
            | Self::TooManyVersions(_)
            | Self::ObjectUnmarshal { .. }
            | Self::Object { .. }
            | Self::FileDirectoryConflict { .. } => "InvalidObjects",
            _ => "InvalidParameters",
        }
    }
}

/// Upstream's name of the identity mode the flags select.
fn upstream_mode_name(mode: Option<IdentityKind>) -> &'static str {
    mode.map_or("None", IdentityKind::upstream_mode_name)
}

/// Parses one `MountRequest`. Order of checks (upstream §1.4): the three
/// JSON inputs, pod name, pod namespace, the identity flags and their
/// exclusivity, `keyvaultName`, tenant, `cloudEnvFileName`, `cloudName`,
/// the identity, `objects` (presence, YAML, then every object).
pub fn parse(
    attributes: &str,
    secrets: &str,
    permission: &str,
    opts: &ParseOptions,
) -> Result<MountParams, ParamsError> {
    let attrs = StringMap::from_json(attributes)
        .map_err(ParamsError::Attributes)?
        .unwrap_or_default();
    let hints = Hints::from_attrs(&attrs);
    parse_attributes(&attrs, secrets, permission, opts, &hints).map_err(|e| hints.annotate(e))
}

/// [`parse`] once `attributes` is read.
fn parse_attributes(
    attrs: &StringMap,
    secrets: &str,
    permission: &str,
    opts: &ParseOptions,
    hints: &Hints,
) -> Result<MountParams, ParamsError> {
    let secrets = match secrets.trim() {
        // Historic drivers sent "" during rotation; treat it as no secret.
        "" => None,
        json => StringMap::from_json(json).map_err(ParamsError::Secrets)?,
    };
    let default_mode = parse_permission(permission)?;
    let pod = pod_info(attrs)?;
    let mode = identity::explicit_kind(attrs)?;
    let keyvault_name = match attrs.get(KEYVAULT_NAME) {
        "" => return Err(ParamsError::KeyvaultNameMissing),
        name => name.to_owned(),
    };
    let tenant_id = match (attrs.get(TENANT_ID), attrs.get(TENANT_ID_LEGACY)) {
        ("", "") => return Err(ParamsError::TenantIdMissing),
        ("", legacy) => legacy.to_owned(),
        (tenant, _) => tenant.to_owned(),
    };
    let cloud = cloud_spec(attrs, opts)?;
    let identity = identity::identity(mode, attrs, secrets.as_ref())
        .map_err(|source| ParamsError::AuthConfig { mode, source })?;
    let objects = objects::objects(attrs.get(OBJECTS))?;
    Ok(MountParams {
        pod,
        secret_provider_class: non_empty(attrs.get(SECRET_PROVIDER_CLASS)),
        keyvault_name,
        tenant_id,
        cloud,
        identity,
        objects,
        default_mode,
        hints: hints.clone(),
    })
}

// === impl ParseOptions ===

impl Default for ParseOptions {
    fn default() -> Self {
        Self {
            default_cloud_name: "AzurePublicCloud".to_owned(),
            environment_file: String::new(),
        }
    }
}
