//! SecretProviderClass parameters → [`MountParams`]: the `attributes`,
//! `secrets` and `permission` JSON of a `MountRequest` and the `objects`
//! YAML, checked in upstream's order and with upstream's error texts.
//!
//! Pure: no I/O, no environment, no logging. The caller reads an Azure
//! Stack environment file ([`CloudSpec::AzureStack`]), checks the vault
//! name (`cloud::validate_vault_name`, upstream's step 14) and turns an
//! empty object list into an empty success.

use std::collections::BTreeMap;
use std::fmt::{self, Write as _};

use secrecy::SecretString;
use serde::{Deserialize, Deserializer};
use thiserror::Error;
use zeroize::Zeroize;

use crate::cloud::{self, Cloud, CloudError};
use crate::object::{FileMode, JmesPathSpec, KeyVaultObject, ObjectError, ObjectSpec};

mod hints;
#[cfg(test)]
mod tests;
mod yaml;

pub use hints::{Hints, KeyHint, Topic};
pub use yaml::MAX_FLOW_DEPTH;

// Keys of `attributes` (case-sensitive, values whitespace-trimmed).
const POD_NAME: &str = "csi.storage.k8s.io/pod.name";
const POD_NAMESPACE: &str = "csi.storage.k8s.io/pod.namespace";
const POD_UID: &str = "csi.storage.k8s.io/pod.uid";
const SERVICE_ACCOUNT_NAME: &str = "csi.storage.k8s.io/serviceAccount.name";
/// Audience → token map; in `attributes`, or in `secrets` (Kubernetes ≥ 1.35).
pub const SERVICE_ACCOUNT_TOKENS: &str = "csi.storage.k8s.io/serviceAccount.tokens";
const SECRET_PROVIDER_CLASS: &str = "secretProviderClass";
const KEYVAULT_NAME: &str = "keyvaultName";
const TENANT_ID: &str = "tenantID";
const TENANT_ID_LEGACY: &str = "tenantId";
const CLIENT_ID: &str = "clientID";
const USE_POD_IDENTITY: &str = "usePodIdentity";
const USE_VM_MANAGED_IDENTITY: &str = "useVMManagedIdentity";
const USE_AZURE_TOKEN_PROXY: &str = "useAzureTokenProxy";
const USER_ASSIGNED_IDENTITY_ID: &str = "userAssignedIdentityID";
const CLOUD_NAME: &str = "cloudName";
const CLOUD_ENV_FILE_NAME: &str = "cloudEnvFileName";
const OBJECTS: &str = "objects";

/// Service-account token audience for workload identity.
pub const WORKLOAD_IDENTITY_AUDIENCE: &str = "api://AzureADTokenExchange";
/// Service-account token audience for AKS identity binding.
pub const IDENTITY_BINDING_AUDIENCE: &str = "api://AKSIdentityBinding";

/// Largest `objects` YAML accepted (a SecretProviderClass is stored in etcd,
/// itself limited to about 1.5 MiB).
pub const MAX_OBJECTS_YAML_BYTES: usize = 1 << 20;
/// Most objects in one SecretProviderClass.
pub const MAX_OBJECTS: usize = 1000;
/// Most object versions (fetches) in one mount: every object counts
/// `max(1, objectVersionHistory)`.
pub const MAX_OBJECT_VERSIONS: usize = 10_000;

/// Process-wide inputs to [`parse`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParseOptions {
    /// `--cloud-name`: the cloud when `cloudName` is empty.
    pub default_cloud_name: String,
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
    /// `cloudName <x> is not valid, error: <cause>`.
    AzureStack {
        env_file: String,
    },
}

/// The identity a mount authenticates as.
#[derive(Clone, Debug)]
pub enum Identity {
    WorkloadIdentity {
        client_id: String,
        token: ServiceAccountToken,
    },
    ServicePrincipal {
        client_id: String,
        client_secret: SecretString,
    },
    /// An empty id means the system-assigned identity.
    VmManagedIdentity {
        user_assigned_identity_id: String,
    },
    PodIdentity,
    TokenProxy {
        client_id: String,
        token: ServiceAccountToken,
    },
}

/// The pod's projected service-account token for one audience.
#[derive(Clone, Debug)]
pub struct ServiceAccountToken {
    pub token: SecretString,
    /// `expirationTimestamp` as sent (RFC 3339), if any.
    pub expiration: Option<String>,
}

/// The explicit identity mode; `None` means workload identity or service
/// principal. `Display` is upstream's name.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum IdentityMode {
    #[default]
    None,
    PodIdentity,
    VmManagedIdentity,
    AzureTokenProxy,
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
    #[error("failed to build auth config for mode {mode}: {source}")]
    AuthConfig {
        mode: IdentityMode,
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
    #[error("objects at index {} (objectName:{}) and index {} (objectName:{}) write the same file {path:?}", .first.0, .first.1, .second.0, .second.1)]
    DuplicateFileName {
        path: String,
        first: (usize, String),
        second: (usize, String),
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
            | Self::TooManyObjects(_)
            | Self::TooManyVersions(_)
            | Self::ObjectUnmarshal { .. }
            | Self::Object { .. }
            | Self::DuplicateFileName { .. }
            | Self::FileDirectoryConflict { .. } => "InvalidObjects",
            _ => "InvalidParameters",
        }
    }
}

/// Why no identity could be configured (upstream texts).
#[derive(Debug, Error, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum AuthConfigError {
    #[error("clientID is required for identity binding")]
    IdentityBindingClientId,
    #[error("service account tokens are required for identity binding")]
    IdentityBindingTokens,
    #[error("failed to parse service account token for identity binding, error: {0}")]
    IdentityBindingToken(TokenError),
    #[error("failed to parse workload identity tokens, error: {0}")]
    WorkloadIdentityToken(TokenError),
    #[error("failed to get credentials, nodePublishSecretRef secret is not set")]
    SecretNotSet,
    #[error("could not find clientid in secrets")]
    ClientIdNotFound,
    #[error("could not find clientsecret in secrets")]
    ClientSecretNotFound,
}

/// Why the service-account token for an audience is unusable.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum TokenError {
    #[error("service account tokens not found")]
    NotFound,
    #[error("failed to unmarshal service account tokens, error: {0}")]
    Unmarshal(JsonError),
    #[error("token for audience {0} not found")]
    AudienceNotFound(&'static str),
}

/// A JSON decoding failure whose text never quotes an input value (serde
/// would quote a mistyped string, which may be a token or a secret).
#[derive(Debug, Error, Clone, PartialEq, Eq)]
#[error("{0}")]
pub struct JsonError(String);

/// Go's `strconv.ParseBool` failure.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
#[error("strconv.ParseBool: parsing {}: invalid syntax", go_quote(.value))]
pub struct ParseBoolError {
    pub value: String,
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
    let mode = identity_mode(attrs)?;
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
    let identity = identity(mode, attrs, secrets.as_ref())
        .map_err(|source| ParamsError::AuthConfig { mode, source })?;
    let objects = objects(attrs.get(OBJECTS))?;
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
        }
    }
}

// === impl Identity ===

impl Identity {
    /// The mode this identity was selected under.
    pub fn mode(&self) -> IdentityMode {
        match self {
            Self::WorkloadIdentity { .. } | Self::ServicePrincipal { .. } => IdentityMode::None,
            Self::VmManagedIdentity { .. } => IdentityMode::VmManagedIdentity,
            Self::PodIdentity => IdentityMode::PodIdentity,
            Self::TokenProxy { .. } => IdentityMode::AzureTokenProxy,
        }
    }
}

// === impl IdentityMode ===

impl fmt::Display for IdentityMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::None => "None",
            Self::PodIdentity => "PodIdentity",
            Self::VmManagedIdentity => "VMManagedIdentity",
            Self::AzureTokenProxy => "AzureTokenProxy",
        })
    }
}

// === impl JsonError ===

impl JsonError {
    fn new(e: &serde_json::Error, expected: &str) -> Self {
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
struct StringMap(BTreeMap<String, String>);

impl StringMap {
    /// `null` gives `None`; a `null` value reads as "" (as Go does).
    fn from_json(json: &str) -> Result<Option<Self>, JsonError> {
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
    fn get(&self, key: &str) -> &str {
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
fn parse_permission(permission: &str) -> Result<FileMode, ParamsError> {
    let bits: u32 =
        serde_json::from_str(permission).map_err(|e| ParamsError::Permission(e.to_string()))?;
    if bits > 0o7777 {
        return Err(ParamsError::Permission(format!(
            "file mode {bits} ({bits:#o}) is outside the permission range 0..=0o7777"
        )));
    }
    Ok(FileMode::new(bits & FileMode::MAX).expect("masked to permission bits"))
}

fn pod_info(attrs: &StringMap) -> Result<PodInfo, ParamsError> {
    let name = non_empty(attrs.get(POD_NAME)).ok_or(ParamsError::PodNameMissing)?;
    let namespace = non_empty(attrs.get(POD_NAMESPACE)).ok_or(ParamsError::PodNamespaceMissing)?;
    Ok(PodInfo {
        name,
        namespace,
        uid: non_empty(attrs.get(POD_UID)),
        service_account: non_empty(attrs.get(SERVICE_ACCOUNT_NAME)),
    })
}

fn identity_mode(attrs: &StringMap) -> Result<IdentityMode, ParamsError> {
    let flags = [
        (USE_POD_IDENTITY, IdentityMode::PodIdentity),
        (USE_VM_MANAGED_IDENTITY, IdentityMode::VmManagedIdentity),
        (USE_AZURE_TOKEN_PROXY, IdentityMode::AzureTokenProxy),
    ];
    let mut enabled = Vec::new();
    for (flag, mode) in flags {
        let value = match attrs.get(flag) {
            "" => false,
            raw => parse_go_bool(raw).map_err(|source| ParamsError::ParseBool { flag, source })?,
        };
        if value {
            enabled.push(mode);
        }
    }
    match enabled[..] {
        [] => Ok(IdentityMode::None),
        [mode] => Ok(mode),
        _ => Err(ParamsError::MultipleIdentityModes),
    }
}

/// `cloudName` (empty: `--cloud-name`), case-insensitive. Azure Stack is
/// returned as the file to read; the process environment is never touched.
fn cloud_spec(attrs: &StringMap, opts: &ParseOptions) -> Result<CloudSpec, ParamsError> {
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
    match env_file {
        "" => Err(invalid(CloudError::EnvironmentFileNotSet)),
        file => Ok(CloudSpec::AzureStack {
            env_file: file.to_owned(),
        }),
    }
}

/// Upstream's `buildAuthConfig` + `NewConfig`.
fn identity(
    mode: IdentityMode,
    attrs: &StringMap,
    secrets: Option<&StringMap>,
) -> Result<Identity, AuthConfigError> {
    let client_id = attrs.get(CLIENT_ID);
    // Attributes win; Kubernetes ≥ 1.35 may send the tokens in `secrets`.
    let tokens = match attrs.get(SERVICE_ACCOUNT_TOKENS) {
        "" => secrets.map_or("", |s| s.get(SERVICE_ACCOUNT_TOKENS)),
        tokens => tokens,
    };
    if mode == IdentityMode::AzureTokenProxy {
        if client_id.is_empty() {
            return Err(AuthConfigError::IdentityBindingClientId);
        }
        if tokens.is_empty() {
            return Err(AuthConfigError::IdentityBindingTokens);
        }
        let token = token_for_audience(tokens, IDENTITY_BINDING_AUDIENCE)
            .map_err(AuthConfigError::IdentityBindingToken)?;
        let client_id = client_id.to_owned();
        return Ok(Identity::TokenProxy { client_id, token });
    }
    // Upstream quirk, kept for compatibility: a non-empty clientID makes the
    // workload-identity token mandatory in every other mode, even pod
    // identity and VM managed identity, which then never use it.
    let workload_token = match client_id {
        "" => None,
        _ => Some(
            token_for_audience(tokens, WORKLOAD_IDENTITY_AUDIENCE)
                .map_err(AuthConfigError::WorkloadIdentityToken)?,
        ),
    };
    match (mode, workload_token) {
        (IdentityMode::PodIdentity, _) => Ok(Identity::PodIdentity),
        (IdentityMode::VmManagedIdentity, _) => Ok(Identity::VmManagedIdentity {
            user_assigned_identity_id: attrs.get(USER_ASSIGNED_IDENTITY_ID).to_owned(),
        }),
        (_, Some(token)) => Ok(Identity::WorkloadIdentity {
            client_id: client_id.to_owned(),
            token,
        }),
        (_, None) => service_principal(secrets),
    }
}

/// The pod's token for `audience` from the driver's JSON map
/// `audience → {"token", "expirationTimestamp"}`.
fn token_for_audience(
    tokens: &str,
    audience: &'static str,
) -> Result<ServiceAccountToken, TokenError> {
    #[derive(Deserialize)]
    struct Entry {
        token: Option<String>,
        #[serde(rename = "expirationTimestamp")]
        expiration: Option<String>,
    }
    impl Drop for Entry {
        fn drop(&mut self) {
            self.token.zeroize();
        }
    }

    if tokens.is_empty() {
        return Err(TokenError::NotFound);
    }
    let expected = "a JSON object of audience to {token, expirationTimestamp}";
    // `null` at either level reads as empty, as in Go.
    let map: Option<BTreeMap<String, Option<Entry>>> = serde_json::from_str(tokens)
        .map_err(|e| TokenError::Unmarshal(JsonError::new(&e, expected)))?;
    let entry = map
        .as_ref()
        .and_then(|m| m.get(audience))
        .and_then(Option::as_ref);
    match entry.and_then(|e| e.token.as_deref()) {
        None | Some("") => Err(TokenError::AudienceNotFound(audience)),
        Some(token) => Ok(ServiceAccountToken {
            token: SecretString::from(token),
            expiration: entry.and_then(|e| e.expiration.clone()),
        }),
    }
}

/// `clientid` / `clientsecret` from the nodePublishSecretRef data, keys
/// matched case-insensitively (an exact lower-case key first).
fn service_principal(secrets: Option<&StringMap>) -> Result<Identity, AuthConfigError> {
    // A map holding only the service-account tokens (Kubernetes ≥ 1.35
    // without a nodePublishSecretRef) counts as no secret at all.
    let only_tokens = |s: &&StringMap| s.0.len() == 1 && s.0.contains_key(SERVICE_ACCOUNT_TOKENS);
    let secrets = secrets
        .filter(|s| !only_tokens(s))
        .ok_or(AuthConfigError::SecretNotSet)?;
    let lookup = |name: &str| {
        let exact = secrets.0.get(name).into_iter();
        let folded = secrets
            .0
            .iter()
            .filter(|(k, _)| k.to_lowercase() == name)
            .map(|(_, v)| v);
        exact
            .chain(folded)
            .find(|v| !v.is_empty())
            .map(String::as_str)
    };
    let client_id = lookup("clientid").ok_or(AuthConfigError::ClientIdNotFound)?;
    let client_secret = lookup("clientsecret").ok_or(AuthConfigError::ClientSecretNotFound)?;
    Ok(Identity::ServicePrincipal {
        client_id: client_id.to_owned(),
        client_secret: SecretString::from(client_secret),
    })
}

/// `{array: [<yaml string>, ...]}`.
#[derive(Deserialize)]
struct ObjectList {
    /// Outer `None`: no `array` key; inner `None`: `array:` with no value.
    #[serde(default, deserialize_with = "present")]
    array: Option<Option<Vec<Option<String>>>>,
}

/// One element of `array`. Scalars of any YAML type read as their text
/// (yaml.v3 does the same for string fields); unknown keys are ignored.
#[derive(Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawObject {
    object_name: Option<String>,
    object_alias: Option<String>,
    object_version: Option<String>,
    object_version_history: Option<i32>,
    object_type: Option<String>,
    object_format: Option<String>,
    object_encoding: Option<String>,
    file_permission: Option<String>,
    // Extensions (upstream ignores these keys).
    keyvault_name: Option<String>,
    optional: Option<String>,
    jmes_path: Option<Vec<Option<RawJmesPath>>>,
}

/// One `jmesPath` entry (the AWS provider's shape).
#[derive(Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawJmesPath {
    path: Option<String>,
    object_alias: Option<String>,
    file_permission: Option<String>,
}

fn present<'de, D: Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<Option<T>, D::Error> {
    T::deserialize(d).map(Some)
}

/// Parses and validates every object before anything is fetched.
fn objects(yaml: &str) -> Result<Vec<KeyVaultObject>, ParamsError> {
    if yaml.is_empty() {
        return Err(ParamsError::ObjectsNotSet);
    }
    if yaml.len() > MAX_OBJECTS_YAML_BYTES {
        return Err(ParamsError::ObjectsTooLarge(yaml.len()));
    }
    if yaml::flow_depth(yaml) > MAX_FLOW_DEPTH {
        return Err(ParamsError::ObjectsTooDeep);
    }
    let list: ObjectList =
        serde_yaml_ng::from_str(yaml).map_err(|e| ParamsError::ObjectsYaml(e.to_string()))?;
    // Deliberate: upstream reads a missing `array` key as an empty list and
    // mounts nothing; that is always a typo, so say so.
    let array = list
        .array
        .ok_or_else(|| ParamsError::ObjectsYaml("missing field `array`".to_owned()))?
        .unwrap_or_default();
    if array.len() > MAX_OBJECTS {
        return Err(ParamsError::TooManyObjects(array.len()));
    }
    let mut objects = Vec::with_capacity(array.len());
    for (index, element) in array.iter().enumerate() {
        let spec = object_spec(element.as_deref().unwrap_or_default(), index)?;
        let context = spec.context();
        let object = KeyVaultObject::from_spec(spec)
            .map_err(|source| ParamsError::Object { context, source })?;
        objects.push(object);
    }
    let versions: usize = objects
        .iter()
        .map(|o| o.version_history.max(1).unsigned_abs() as usize)
        .sum();
    if versions > MAX_OBJECT_VERSIONS {
        return Err(ParamsError::TooManyVersions(versions));
    }
    check_output_paths(&objects)?;
    Ok(objects)
}

fn object_spec(yaml: &str, index: usize) -> Result<ObjectSpec, ParamsError> {
    if yaml::flow_depth(yaml) > MAX_FLOW_DEPTH {
        return Err(ParamsError::ObjectTooDeep(index));
    }
    let raw: Option<RawObject> = serde_yaml_ng::from_str(yaml)
        .map_err(|source| ParamsError::ObjectUnmarshal { index, source })?;
    let raw = raw.unwrap_or_default();
    let trim = |s: Option<String>| s.map(|s| s.trim().to_owned()).unwrap_or_default();
    Ok(ObjectSpec {
        name: trim(raw.object_name),
        alias: trim(raw.object_alias),
        version: trim(raw.object_version),
        version_history: raw.object_version_history.unwrap_or(0),
        object_type: trim(raw.object_type),
        format: trim(raw.object_format),
        encoding: trim(raw.object_encoding),
        file_permission: trim(raw.file_permission),
        keyvault_name: trim(raw.keyvault_name),
        optional: trim(raw.optional),
        jmes_path: raw
            .jmes_path
            .unwrap_or_default()
            .into_iter()
            .map(|entry| {
                let entry = entry.unwrap_or_default();
                JmesPathSpec {
                    path: trim(entry.path),
                    alias: trim(entry.object_alias),
                    file_permission: trim(entry.file_permission),
                }
            })
            .collect(),
    })
}

/// Two objects must not write the same file, and no object may write a file
/// where another needs a directory (`a` and `a/b`). Deliberate: upstream
/// returns both and the driver silently keeps the last (or fails to write).
fn check_output_paths(objects: &[KeyVaultObject]) -> Result<(), ParamsError> {
    let owner = |index: usize| (index, objects[index].name.clone());
    let mut paths: BTreeMap<String, usize> = BTreeMap::new();
    for (index, object) in objects.iter().enumerate() {
        for path in output_paths(object) {
            if let Some(&first) = paths.get(&path) {
                return Err(ParamsError::DuplicateFileName {
                    path,
                    first: owner(first),
                    second: owner(index),
                });
            }
            paths.insert(path, index);
        }
    }
    for (nested_path, &nested) in &paths {
        for (end, _) in nested_path.match_indices('/') {
            let path = &nested_path[..end];
            if let Some(&file) = paths.get(path) {
                return Err(ParamsError::FileDirectoryConflict {
                    path: path.to_owned(),
                    file: owner(file),
                    nested_path: nested_path.clone(),
                    nested: owner(nested),
                });
            }
        }
    }
    Ok(())
}

/// The files an object writes: its file name (and its `jmesPath` files),
/// or `<name>/<i>` per version.
fn output_paths(object: &KeyVaultObject) -> Vec<String> {
    let base = object.file_name();
    if object.is_single_version() {
        let jmes_path = object.extensions.jmes_path.iter();
        return std::iter::once(base.to_owned())
            .chain(jmes_path.map(|entry| entry.alias.clone()))
            .collect();
    }
    (0..object.version_history)
        .map(|i| format!("{base}/{i}"))
        .collect()
}

fn non_empty(s: &str) -> Option<String> {
    (!s.is_empty()).then(|| s.to_owned())
}

/// Go's `strconv.ParseBool`.
fn parse_go_bool(s: &str) -> Result<bool, ParseBoolError> {
    match s {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Ok(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Ok(false),
        _ => Err(ParseBoolError {
            value: s.to_owned(),
        }),
    }
}

/// Go's `strconv.Quote` (and `%q`), for upstream error texts. Go's notion
/// of a printable rune is approximated: control, non-ASCII space and
/// common format/private-use characters are escaped.
pub fn go_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '\x07' => out.push_str(r"\a"),
            '\x08' => out.push_str(r"\b"),
            '\x0c' => out.push_str(r"\f"),
            '\n' => out.push_str(r"\n"),
            '\r' => out.push_str(r"\r"),
            '\t' => out.push_str(r"\t"),
            '\x0b' => out.push_str(r"\v"),
            '\\' => out.push_str(r"\\"),
            '"' => out.push_str("\\\""),
            c if go_printable(c) => out.push(c),
            c if (c as u32) < 0x20 || c == '\x7f' => _ = write!(out, "\\x{:02x}", c as u32),
            c if (c as u32) < 0x10000 => _ = write!(out, "\\u{:04x}", c as u32),
            c => _ = write!(out, "\\U{:08x}", c as u32),
        }
    }
    out.push('"');
    out
}

fn go_printable(c: char) -> bool {
    if c == ' ' {
        return true;
    }
    let format_or_private = matches!(c,
        '\u{ad}' | '\u{600}'..='\u{605}' | '\u{61c}' | '\u{6dd}' | '\u{70f}' | '\u{180e}'
        | '\u{200b}'..='\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2060}'..='\u{206f}'
        | '\u{feff}' | '\u{fff9}'..='\u{fffb}' | '\u{e000}'..='\u{f8ff}' | '\u{f0000}'..);
    !(c.is_control() || c.is_whitespace() || format_or_private)
}
