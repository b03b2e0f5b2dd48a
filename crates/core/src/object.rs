//! Key Vault objects as a SecretProviderClass lists them: type, format,
//! encoding, output file name and mode, UID, and the rules that make one
//! valid, including our extensions over upstream (`optional`, `jmesPath`,
//! a per-object `keyvaultName`). Reading the `objects` YAML is `params`'
//! job; fetching and converting content belongs to `mount` and `render`.

use std::fmt;

use thiserror::Error;

use crate::cloud::{self, VaultNameError};

/// Largest accepted `objectVersionHistory` (each version is one fetch and
/// one file).
pub const MAX_VERSION_HISTORY: i32 = 1000;
/// Longest output path the driver accepts, in bytes.
pub const MAX_FILE_NAME_BYTES: usize = 4096;
/// Longest path element the driver accepts, in bytes.
pub const MAX_FILE_NAME_ELEMENT_BYTES: usize = 255;
/// Longest Key Vault object name (Key Vault's own limit).
pub const MAX_OBJECT_NAME_CHARS: usize = 127;
/// Most `jmesPath` entries on one object (each is one more file).
pub const MAX_JMES_PATH_ENTRIES: usize = 100;
/// Longest `jmesPath` path, in bytes.
pub const MAX_JMES_PATH_BYTES: usize = 256;
/// Most operator and bracket characters (`. [ ( { ! | & ? < > =`) in one
/// `jmesPath` path. The JMESPath parser and interpreter recurse once per
/// operator; this bound keeps them far from the end of a worker thread's
/// stack, which a few hundred levels would reach.
pub const MAX_JMES_PATH_OPERATORS: usize = 32;
/// The characters counted against [`MAX_JMES_PATH_OPERATORS`].
const JMES_PATH_OPERATORS: &[u8] = b".[({!|&?<>=";

/// `objectType`: exactly `secret`, `key` or `cert` (case-sensitive).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ObjectType {
    Secret,
    Key,
    Cert,
}

/// `objectFormat` (case-insensitive, default PEM). PFX applies only to
/// certificate-backed secrets stored as PKCS#12.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum ObjectFormat {
    #[default]
    Pem,
    Pfx,
}

/// `objectEncoding` of a secret's value (case-insensitive, default UTF-8).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum ObjectEncoding {
    #[default]
    Utf8,
    Base64,
    Hex,
}

/// Permission bits of an output file, `0..=0o777`.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct FileMode(u32);

/// One object entry as written in the YAML, every string whitespace-trimmed
/// (upstream's `formatKeyVaultObject`), not yet validated.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ObjectSpec {
    pub name: String,
    pub alias: String,
    pub version: String,
    pub version_history: i32,
    pub object_type: String,
    pub format: String,
    pub encoding: String,
    pub file_permission: String,
    /// `keyvaultName` (extension), as written; empty: the
    /// SecretProviderClass's vault.
    pub keyvault_name: String,
    /// `optional` (extension), as written.
    pub optional: String,
    /// `jmesPath` (extension), as written.
    pub jmes_path: Vec<JmesPathSpec>,
}

/// One `jmesPath` entry as written (the AWS provider's shape), trimmed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct JmesPathSpec {
    pub path: String,
    pub alias: String,
    pub file_permission: String,
}

/// A validated object to fetch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyVaultObject {
    pub name: String,
    /// Output file name; empty means `name`.
    pub alias: String,
    /// Empty means the latest version (`latest` is special only with
    /// version history).
    pub version: String,
    /// `<= 1`: one version; `> 1`: a directory of that many versions.
    pub version_history: i32,
    pub object_type: ObjectType,
    pub format: ObjectFormat,
    pub encoding: ObjectEncoding,
    /// `filePermission`; `None` means the request's default mode.
    pub file_permission: Option<FileMode>,
    /// `objectType` as written, for error texts.
    pub raw_type: String,
    /// Fields upstream does not know (and ignores).
    pub extensions: Extensions,
}

/// Our per-object fields beyond upstream's. Upstream's YAML decoding
/// ignores unknown keys, so a SecretProviderClass using them still mounts
/// with the upstream provider (without their effect).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Extensions {
    /// `keyvaultName`: read this object from another vault of the same
    /// tenant and cloud, with the same identity. `None`: the
    /// SecretProviderClass's vault.
    pub keyvault_name: Option<String>,
    /// `optional: true`: a missing object (or version) is left out of the
    /// mount instead of failing it.
    pub optional: bool,
    /// `jmesPath`: files cut out of a JSON secret, besides the whole one.
    pub jmes_path: Vec<JmesPath>,
}

/// One validated `jmesPath` entry: the value `path` selects from the
/// secret's JSON is written to the file `alias`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JmesPath {
    /// A JMESPath expression that compiled.
    pub path: String,
    /// Output file name (`objectAlias`, required).
    pub alias: String,
    /// `filePermission`; `None` means the object's mode.
    pub file_permission: Option<FileMode>,
}

/// Why one object is invalid. `Display` is the cause upstream prints after
/// `failed to get objectType:<t>, objectName:<n>, objectVersion:<v>: `.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ObjectError {
    #[error("Invalid vaultObjectTypes. Should be secret, key, or cert")]
    InvalidType,
    #[error("invalid objectFormat: {0}, should be PEM or PFX")]
    InvalidFormat(String),
    #[error("PFX format only supported for objectType: secret")]
    PfxNotSecret,
    #[error("objectEncoding only supported for objectType: secret")]
    EncodingNotSecret,
    #[error("invalid objectEncoding: {0}, should be hex, base64 or utf-8")]
    InvalidEncoding(String),
    #[error("file name must not be empty")]
    FileNameEmpty,
    #[error("file name must be a relative path")]
    FileNameAbsolute,
    #[error("file name must not contain '..'")]
    FileNameDotDot,
    #[error("file name must not contain a NUL character")]
    FileNameNul,
    #[error(
        "file name {0:?} must be a clean relative path (no empty or '.' elements, no trailing '/')"
    )]
    FileNameNotClean(String),
    #[error("file name is {0} bytes long, the limit is {MAX_FILE_NAME_BYTES}")]
    FileNameTooLong(usize),
    #[error("file name element {0:?} is longer than {MAX_FILE_NAME_ELEMENT_BYTES} bytes")]
    FileNameElementTooLong(String),
    #[error("invalid objectName: {0:?}, must match [-a-zA-Z0-9]{{1,{MAX_OBJECT_NAME_CHARS}}}")]
    InvalidName(String),
    #[error("invalid objectVersion: {0:?}, must match [-a-zA-Z0-9]*")]
    InvalidVersion(String),
    #[error("invalid filePermission {0:?}: must be an octal mode from 0 to 0777, such as 0644")]
    InvalidFilePermission(String),
    #[error("objectVersionHistory {0} is too large, the limit is {MAX_VERSION_HISTORY}")]
    VersionHistoryTooLarge(i32),
    #[error("invalid optional {0:?}: must be true or false")]
    InvalidOptional(String),
    /// The per-object `keyvaultName`, with upstream's vault-name text.
    #[error("failed to get vault: {0}")]
    InvalidVault(VaultNameError),
    #[error("jmesPath only supported for objectType: secret")]
    JmesPathNotSecret,
    #[error("jmesPath cannot be combined with objectVersionHistory > 1")]
    JmesPathWithHistory,
    #[error("jmesPath lists {0} entries, the limit is {MAX_JMES_PATH_ENTRIES}")]
    TooManyJmesPaths(usize),
    #[error("jmesPath entry {index} (path {path:?}): {reason}")]
    JmesPath {
        index: usize,
        /// The path as written, at most 64 characters of it.
        path: String,
        reason: String,
    },
}

// === impl ObjectType ===

impl ObjectType {
    /// Parses `secret`, `key` or `cert`, case-sensitively as upstream.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "secret" => Some(Self::Secret),
            "key" => Some(Self::Key),
            "cert" => Some(Self::Cert),
            _ => None,
        }
    }

    /// The name upstream uses (`secret`, `key`, `cert`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Secret => "secret",
            Self::Key => "key",
            Self::Cert => "cert",
        }
    }
}

impl fmt::Display for ObjectType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

// === impl ObjectFormat ===

impl ObjectFormat {
    /// Parses `pem` or `pfx`, case-insensitively.
    pub fn parse(s: &str) -> Option<Self> {
        if s.eq_ignore_ascii_case("pem") {
            Some(Self::Pem)
        } else if s.eq_ignore_ascii_case("pfx") {
            Some(Self::Pfx)
        } else {
            None
        }
    }
}

// === impl ObjectEncoding ===

impl ObjectEncoding {
    /// Parses `utf-8`, `base64` or `hex`, case-insensitively.
    pub fn parse(s: &str) -> Option<Self> {
        [
            ("utf-8", Self::Utf8),
            ("base64", Self::Base64),
            ("hex", Self::Hex),
        ]
        .into_iter()
        .find(|(name, _)| s.eq_ignore_ascii_case(name))
        .map(|(_, encoding)| encoding)
    }
}

// === impl FileMode ===

impl FileMode {
    /// The largest mode: permission bits only, no setuid/setgid/sticky.
    pub const MAX: u32 = 0o777;
    /// The driver's default (`420`).
    pub const DEFAULT: Self = Self(0o644);

    /// `None` when `bits` is above `0o777`.
    pub const fn new(bits: u32) -> Option<Self> {
        if bits <= Self::MAX {
            Some(Self(bits))
        } else {
            None
        }
    }

    /// The permission bits.
    pub const fn bits(self) -> u32 {
        self.0
    }

    /// Parses octal digits as upstream's `strconv.ParseInt(s, 8, 32)`
    /// (`0755` and `755` are the same mode; an optional `+` sign), limited
    /// to `0..=0o777`.
    pub fn from_octal_str(s: &str) -> Option<Self> {
        let digits = s.strip_prefix('+').unwrap_or(s);
        if digits.is_empty() || !digits.bytes().all(|b| matches!(b, b'0'..=b'7')) {
            return None;
        }
        u32::from_str_radix(digits, 8).ok().and_then(Self::new)
    }
}

impl fmt::Debug for FileMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "FileMode({:#o})", self.0)
    }
}

impl fmt::Display for FileMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04o}", self.0)
    }
}

// === impl ObjectSpec ===

impl ObjectSpec {
    /// `objectType:<t>, objectName:<n>, objectVersion:<v>`, as written
    /// (`, keyvaultName:<k>` when it names its own vault).
    pub fn context(&self) -> String {
        let context = context(&self.object_type, &self.name, &self.version);
        match self.keyvault_name.as_str() {
            "" => context,
            vault => format!("{context}, keyvaultName:{vault}"),
        }
    }

    /// The output file name: alias, else name.
    pub fn file_name(&self) -> &str {
        if self.alias.is_empty() {
            &self.name
        } else {
            &self.alias
        }
    }
}

// === impl KeyVaultObject ===

impl KeyVaultObject {
    /// Validates one object. Checks run in upstream's order (format,
    /// encoding, file name), with two deliberate changes: `objectType` is
    /// checked first (upstream checks it only at fetch time, after earlier
    /// objects were fetched), and the PFX-only-for-secrets rule ignores
    /// case (upstream's check is case-sensitive while its use is not).
    /// Then come our own checks: object name and version characters, which
    /// also keep them from changing the request path, `filePermission`
    /// (upstream silently used mode 0 for an invalid value), and the
    /// version-history bound.
    pub fn from_spec(spec: ObjectSpec) -> Result<Self, ObjectError> {
        let object_type = ObjectType::parse(&spec.object_type).ok_or(ObjectError::InvalidType)?;
        let format = parse_format(&spec.format, object_type)?;
        let encoding = parse_encoding(&spec.encoding, object_type)?;
        validate_file_name(spec.file_name())?;
        validate_name(&spec.name)?;
        validate_version(&spec.version)?;
        let file_permission = match spec.file_permission.as_str() {
            "" => None,
            s => Some(
                FileMode::from_octal_str(s)
                    .ok_or_else(|| ObjectError::InvalidFilePermission(s.to_owned()))?,
            ),
        };
        if spec.version_history > MAX_VERSION_HISTORY {
            return Err(ObjectError::VersionHistoryTooLarge(spec.version_history));
        }
        let extensions = extensions(&spec, object_type)?;
        Ok(Self {
            name: spec.name,
            alias: spec.alias,
            version: spec.version,
            version_history: spec.version_history,
            object_type,
            format,
            encoding,
            file_permission,
            raw_type: spec.object_type,
            extensions,
        })
    }

    /// The output file name: alias, else name.
    pub fn file_name(&self) -> &str {
        if self.alias.is_empty() {
            &self.name
        } else {
            &self.alias
        }
    }

    /// `<type>/<name>`, the object id the driver stores per file;
    /// `<type>/<name>@<vault>` for an object with its own `keyvaultName`,
    /// so the same name in two vaults gives two ids.
    pub fn uid(&self) -> String {
        let uid = format!("{}/{}", self.object_type.as_str(), self.name);
        match &self.extensions.keyvault_name {
            Some(vault) => format!("{uid}@{vault}"),
            None => uid,
        }
    }

    /// `objectType:<t>, objectName:<n>, objectVersion:<v>`, upstream's
    /// per-object error context (`, keyvaultName:<k>` added for an object
    /// with its own vault).
    pub fn context(&self) -> String {
        self.context_at(&self.version)
    }

    /// Whether one version is fetched (`objectVersionHistory <= 1`).
    pub fn is_single_version(&self) -> bool {
        self.version_history <= 1
    }

    /// The error context of one resolved version (upstream names the
    /// version it was fetching, not the one written).
    pub fn context_at(&self, version: &str) -> String {
        let context = context(&self.raw_type, &self.name, version);
        match &self.extensions.keyvault_name {
            Some(vault) => format!("{context}, keyvaultName:{vault}"),
            None => context,
        }
    }

    /// The vault to read from: the object's own, else `default` (the
    /// SecretProviderClass's).
    pub fn vault<'a>(&'a self, default: &'a str) -> &'a str {
        self.extensions.keyvault_name.as_deref().unwrap_or(default)
    }

    /// The versions a version-history object mounts, index 0 first:
    /// entries sorted by creation time, newest first (ties keep the listing
    /// order), starting at `objectVersion` unless it is empty or `latest`,
    /// at most `objectVersionHistory` of them. A named version that is not
    /// listed (or is disabled) gives none, as upstream.
    ///
    /// Upstream emits one version too many (`objectVersionHistory + 1`)
    /// when more exist; this returns exactly the number asked for.
    pub fn history(&self, mut entries: Vec<VersionEntry>) -> Vec<String> {
        entries.sort_by_key(|e| std::cmp::Reverse(e.created));
        let start = match self.version.as_str() {
            "" | "latest" => Some(0),
            wanted => entries
                .iter()
                .position(|e| e.version.eq_ignore_ascii_case(wanted)),
        };
        let limit = usize::try_from(self.version_history).unwrap_or(0);
        start.map_or_else(Vec::new, |start| {
            entries
                .into_iter()
                .skip(start)
                .take(limit)
                .map(|e| e.version)
                .collect()
        })
    }
}

/// One enabled version from a version listing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VersionEntry {
    pub version: String,
    /// Creation time, Unix seconds (0 when unknown).
    pub created: i64,
}

fn context(object_type: &str, name: &str, version: &str) -> String {
    format!("objectType:{object_type}, objectName:{name}, objectVersion:{version}")
}

/// The extension fields, after upstream's checks passed.
fn extensions(spec: &ObjectSpec, object_type: ObjectType) -> Result<Extensions, ObjectError> {
    let optional = match spec.optional.as_str() {
        "" => false,
        s => crate::go::parse_bool(s)
            .ok()
            .ok_or_else(|| ObjectError::InvalidOptional(s.to_owned()))?,
    };
    let keyvault_name = match spec.keyvault_name.as_str() {
        "" => None,
        name => {
            cloud::validate_vault_name(name).map_err(ObjectError::InvalidVault)?;
            Some(name.to_owned())
        }
    };
    let jmes_path = jmes_paths(spec, object_type)?;
    Ok(Extensions {
        keyvault_name,
        optional,
        jmes_path,
    })
}

/// Validates `jmesPath`: secrets only, one version, bounded entries, each
/// path compiling and bounded, each alias a valid file name distinct from
/// the object's own file and from the other entries.
fn jmes_paths(spec: &ObjectSpec, object_type: ObjectType) -> Result<Vec<JmesPath>, ObjectError> {
    if spec.jmes_path.is_empty() {
        return Ok(Vec::new());
    }
    if object_type != ObjectType::Secret {
        return Err(ObjectError::JmesPathNotSecret);
    }
    if spec.version_history > 1 {
        return Err(ObjectError::JmesPathWithHistory);
    }
    if spec.jmes_path.len() > MAX_JMES_PATH_ENTRIES {
        return Err(ObjectError::TooManyJmesPaths(spec.jmes_path.len()));
    }
    let mut entries: Vec<JmesPath> = Vec::with_capacity(spec.jmes_path.len());
    for (index, entry) in spec.jmes_path.iter().enumerate() {
        let fail = |reason: String| ObjectError::JmesPath {
            index,
            path: entry.path.chars().take(64).collect(),
            reason,
        };
        validate_jmes_path(&entry.path).map_err(fail)?;
        if entry.alias.is_empty() {
            return Err(fail("objectAlias is required".to_owned()));
        }
        validate_file_name(&entry.alias).map_err(|e| fail(format!("objectAlias: {e}")))?;
        if entry.alias == spec.file_name() {
            return Err(fail(format!(
                "objectAlias {:?} is the object's own file",
                entry.alias
            )));
        }
        if let Some(other) = entries.iter().position(|e| e.alias == entry.alias) {
            return Err(fail(format!(
                "objectAlias {:?} is also used by entry {other}",
                entry.alias
            )));
        }
        let file_permission = match entry.file_permission.as_str() {
            "" => None,
            s => Some(FileMode::from_octal_str(s).ok_or_else(|| {
                fail(ObjectError::InvalidFilePermission(s.to_owned()).to_string())
            })?),
        };
        entries.push(JmesPath {
            path: entry.path.clone(),
            alias: entry.alias.clone(),
            file_permission,
        });
    }
    Ok(entries)
}

/// A path must be present, bounded (length and operators) and compile.
fn validate_jmes_path(path: &str) -> Result<(), String> {
    if path.is_empty() {
        return Err("path is required".to_owned());
    }
    if path.len() > MAX_JMES_PATH_BYTES {
        return Err(format!(
            "path is {} bytes long, the limit is {MAX_JMES_PATH_BYTES}",
            path.len()
        ));
    }
    let operators = path
        .bytes()
        .filter(|b| JMES_PATH_OPERATORS.contains(b))
        .count();
    if operators > MAX_JMES_PATH_OPERATORS {
        return Err(format!(
            "path has {operators} operators and brackets (. [ ( {{ ! | & ? < > =), the limit is \
             {MAX_JMES_PATH_OPERATORS}"
        ));
    }
    jmespath::compile(path)
        .map(drop)
        .map_err(|e| format!("invalid JMESPath: {}", jmes_path_error(&e)))
}

/// A JMESPath error on one line: the reason and the column, without the
/// multi-line caret drawing of its `Display`.
pub fn jmes_path_error(e: &jmespath::JmespathError) -> String {
    let reason = e.reason.to_string().replace(['\n', '\r'], " ");
    format!("{reason} (column {})", e.column)
}

fn parse_format(s: &str, object_type: ObjectType) -> Result<ObjectFormat, ObjectError> {
    if s.is_empty() {
        return Ok(ObjectFormat::Pem);
    }
    let format = ObjectFormat::parse(s).ok_or_else(|| ObjectError::InvalidFormat(s.to_owned()))?;
    // As upstream: only the exact `pfx` is refused on a cert or key; any
    // other spelling passes and is ignored (render warns, the file is PEM).
    if s == "pfx" && object_type != ObjectType::Secret {
        return Err(ObjectError::PfxNotSecret);
    }
    Ok(format)
}

fn parse_encoding(s: &str, object_type: ObjectType) -> Result<ObjectEncoding, ObjectError> {
    if s.is_empty() {
        return Ok(ObjectEncoding::Utf8);
    }
    if object_type != ObjectType::Secret {
        return Err(ObjectError::EncodingNotSecret);
    }
    ObjectEncoding::parse(s).ok_or_else(|| ObjectError::InvalidEncoding(s.to_owned()))
}

fn validate_name(name: &str) -> Result<(), ObjectError> {
    let ok = !name.is_empty()
        && name.len() <= MAX_OBJECT_NAME_CHARS
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(ObjectError::InvalidName(name.to_owned()))
    }
}

fn validate_version(version: &str) -> Result<(), ObjectError> {
    let ok = version.len() <= MAX_OBJECT_NAME_CHARS
        && version
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(ObjectError::InvalidVersion(version.to_owned()))
    }
}

/// Upstream's file-name rules (not empty, relative, no `..` anywhere, even
/// inside a name such as `a..b`), then the driver's own path rules, so the
/// user gets the reason here rather than a write error from the driver:
/// no NUL, no empty or `.` elements (`a//b`, `./a`, `a/`), at most 4096
/// bytes, elements at most 255 bytes. Nested paths such as `dir/file` are
/// fine.
pub fn validate_file_name(name: &str) -> Result<(), ObjectError> {
    if name.is_empty() {
        return Err(ObjectError::FileNameEmpty);
    }
    if name.starts_with('/') || std::path::Path::new(name).is_absolute() {
        return Err(ObjectError::FileNameAbsolute);
    }
    if name.contains("..") {
        return Err(ObjectError::FileNameDotDot);
    }
    if name.contains('\0') {
        return Err(ObjectError::FileNameNul);
    }
    if name.len() > MAX_FILE_NAME_BYTES {
        return Err(ObjectError::FileNameTooLong(name.len()));
    }
    for element in name.split('/') {
        if element.is_empty() || element == "." {
            return Err(ObjectError::FileNameNotClean(name.to_owned()));
        }
        if element.len() > MAX_FILE_NAME_ELEMENT_BYTES {
            return Err(ObjectError::FileNameElementTooLong(element.to_owned()));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(object_type: &str, name: &str) -> ObjectSpec {
        ObjectSpec {
            object_type: object_type.into(),
            name: name.into(),
            ..ObjectSpec::default()
        }
    }

    fn err(spec: ObjectSpec) -> String {
        KeyVaultObject::from_spec(spec).unwrap_err().to_string()
    }

    #[test]
    fn defaults_and_accessors() {
        let object = KeyVaultObject::from_spec(spec("secret", "s1")).unwrap();
        assert_eq!(object.format, ObjectFormat::Pem);
        assert_eq!(object.encoding, ObjectEncoding::Utf8);
        assert_eq!(object.file_permission, None);
        assert_eq!(object.file_name(), "s1");
        assert_eq!(object.uid(), "secret/s1");
        assert_eq!(
            object.context(),
            "objectType:secret, objectName:s1, objectVersion:"
        );
        assert!(object.is_single_version());
        let aliased = ObjectSpec {
            alias: "dir/s1.txt".into(),
            version: "abc123".into(),
            ..spec("cert", "c1")
        };
        let object = KeyVaultObject::from_spec(aliased).unwrap();
        assert_eq!(object.file_name(), "dir/s1.txt");
        assert_eq!(object.uid(), "cert/c1");
        assert_eq!(
            object.context(),
            "objectType:cert, objectName:c1, objectVersion:abc123"
        );
    }

    #[test]
    fn types_are_case_sensitive() {
        for (raw, want) in [
            ("secret", ObjectType::Secret),
            ("key", ObjectType::Key),
            ("cert", ObjectType::Cert),
        ] {
            assert_eq!(ObjectType::parse(raw), Some(want));
            assert_eq!(want.as_str(), raw);
        }
        for bad in ["Secret", "certificate", "", "keys"] {
            assert_eq!(
                err(spec(bad, "x")),
                "Invalid vaultObjectTypes. Should be secret, key, or cert"
            );
        }
    }

    #[test]
    fn formats_and_encodings() {
        let with = |t: &str, format: &str, encoding: &str| ObjectSpec {
            format: format.into(),
            encoding: encoding.into(),
            ..spec(t, "x")
        };
        let ok = KeyVaultObject::from_spec(with("secret", "PFX", "Base64")).unwrap();
        assert_eq!(
            (ok.format, ok.encoding),
            (ObjectFormat::Pfx, ObjectEncoding::Base64)
        );
        assert_eq!(
            KeyVaultObject::from_spec(with("secret", "pem", "HEX"))
                .unwrap()
                .encoding,
            ObjectEncoding::Hex
        );
        assert_eq!(
            KeyVaultObject::from_spec(with("key", "PEM", ""))
                .unwrap()
                .format,
            ObjectFormat::Pem
        );
        assert_eq!(
            err(with("secret", "der", "")),
            "invalid objectFormat: der, should be PEM or PFX"
        );
        assert_eq!(
            err(with("key", "pfx", "")),
            "PFX format only supported for objectType: secret"
        );
        // As upstream: any other spelling passes; render ignores it with a
        // warning.
        for (object_type, format) in [("cert", "PFX"), ("key", "Pfx")] {
            assert_eq!(
                KeyVaultObject::from_spec(with(object_type, format, ""))
                    .unwrap()
                    .format,
                ObjectFormat::Pfx,
                "{object_type} {format}"
            );
        }
        assert_eq!(
            err(with("cert", "", "base64")),
            "objectEncoding only supported for objectType: secret"
        );
        assert_eq!(
            err(with("key", "", "nonsense")),
            "objectEncoding only supported for objectType: secret"
        );
        assert_eq!(
            err(with("secret", "", "utf8")),
            "invalid objectEncoding: utf8, should be hex, base64 or utf-8"
        );
    }

    #[test]
    fn file_names() {
        for ok in [
            "a",
            "dir/file",
            "a.b/c-d_e",
            ".hidden",
            "x.",
            &"n".repeat(255),
        ] {
            assert_eq!(validate_file_name(ok), Ok(()), "{ok}");
        }
        let cases = [
            ("", "file name must not be empty"),
            ("/etc/passwd", "file name must be a relative path"),
            ("../x", "file name must not contain '..'"),
            ("a/../b", "file name must not contain '..'"),
            ("a..b", "file name must not contain '..'"),
            ("..data", "file name must not contain '..'"),
            ("a\0b", "file name must not contain a NUL character"),
        ];
        for (name, want) in cases {
            assert_eq!(
                validate_file_name(name).unwrap_err().to_string(),
                want,
                "{name:?}"
            );
        }
        for unclean in ["a//b", "a/", "./a", "a/./b", "."] {
            assert_eq!(
                validate_file_name(unclean),
                Err(ObjectError::FileNameNotClean(unclean.into()))
            );
        }
        assert!(matches!(
            validate_file_name(&"n".repeat(256)),
            Err(ObjectError::FileNameElementTooLong(_))
        ));
        let long = vec!["d".repeat(200); 25].join("/");
        assert_eq!(
            validate_file_name(&long),
            Err(ObjectError::FileNameTooLong(long.len()))
        );
        // The alias is what is checked; the name then only needs Key Vault's rules.
        assert_eq!(
            err(ObjectSpec {
                alias: "../x".into(),
                ..spec("secret", "ok")
            }),
            "file name must not contain '..'"
        );
        assert_eq!(err(spec("secret", "")), "file name must not be empty");
    }

    #[test]
    fn names_and_versions() {
        let aliased = |name: &str, version: &str| ObjectSpec {
            alias: "file".into(),
            version: version.into(),
            ..spec("secret", name)
        };
        assert!(KeyVaultObject::from_spec(aliased("my-Secret-1", "0123abcdef")).is_ok());
        assert!(KeyVaultObject::from_spec(aliased("s", "latest")).is_ok());
        assert_eq!(
            err(aliased("", "")),
            r#"invalid objectName: "", must match [-a-zA-Z0-9]{1,127}"#
        );
        assert_eq!(
            err(aliased("a/versions", "")),
            r#"invalid objectName: "a/versions", must match [-a-zA-Z0-9]{1,127}"#
        );
        assert!(matches!(
            KeyVaultObject::from_spec(aliased(&"n".repeat(128), "")),
            Err(ObjectError::InvalidName(_))
        ));
        assert_eq!(
            err(aliased("s", "v1?x=y")),
            r#"invalid objectVersion: "v1?x=y", must match [-a-zA-Z0-9]*"#
        );
    }

    #[test]
    fn file_permissions() {
        for (raw, bits) in [
            ("0755", 0o755),
            ("755", 0o755),
            ("0", 0),
            ("000644", 0o644),
            ("+600", 0o600),
            ("777", 0o777),
        ] {
            assert_eq!(
                FileMode::from_octal_str(raw).map(FileMode::bits),
                Some(bits),
                "{raw}"
            );
        }
        for bad in [
            "",
            "abc",
            "0x1ff",
            "8",
            "-1",
            "1000",
            "4755",
            "0o755",
            "7_55",
            "99999999999999999999",
        ] {
            assert_eq!(FileMode::from_octal_str(bad), None, "{bad}");
        }
        let object = KeyVaultObject::from_spec(ObjectSpec {
            file_permission: "0600".into(),
            ..spec("secret", "s")
        })
        .unwrap();
        assert_eq!(object.file_permission, FileMode::new(0o600));
        assert_eq!(
            err(ObjectSpec {
                file_permission: "rw-r--r--".into(),
                ..spec("secret", "s")
            }),
            r#"invalid filePermission "rw-r--r--": must be an octal mode from 0 to 0777, such as 0644"#
        );
        assert_eq!(FileMode::new(0o1000), None);
        assert_eq!(FileMode::DEFAULT.bits(), 420);
        assert_eq!(FileMode::DEFAULT.to_string(), "0644");
        assert_eq!(format!("{:?}", FileMode::DEFAULT), "FileMode(0o644)");
    }

    fn entries(list: &[(&str, i64)]) -> Vec<VersionEntry> {
        list.iter()
            .map(|(v, c)| VersionEntry {
                version: (*v).into(),
                created: *c,
            })
            .collect()
    }

    fn history_object(version: &str, n: i32) -> KeyVaultObject {
        KeyVaultObject::from_spec(ObjectSpec {
            version: version.into(),
            version_history: n,
            ..spec("secret", "s")
        })
        .unwrap()
    }

    /// Checklist 17: sorted by created, newest first, starting at
    /// objectVersion unless empty or `latest`, exactly N.
    #[test]
    fn history_selection() {
        let listed = entries(&[("c", 8), ("e", 6), ("b", 9), ("a", 10), ("d", 7)]);
        assert_eq!(
            history_object("", 5).history(listed.clone()),
            ["a", "b", "c", "d", "e"]
        );
        assert_eq!(
            history_object("latest", 2).history(listed.clone()),
            ["a", "b"]
        );
        assert_eq!(
            history_object("c", 5).history(listed.clone()),
            ["c", "d", "e"]
        );
        assert_eq!(history_object("C", 2).history(listed.clone()), ["c", "d"]);
        assert_eq!(history_object("", 200).history(listed.clone()).len(), 5);
        // A version that is not listed (or disabled): no files, as upstream.
        assert!(history_object("zzz", 3).history(listed).is_empty());
        // Equal creation times keep the listing order.
        let ties = entries(&[("x", 5), ("y", 5), ("z", 1)]);
        assert_eq!(history_object("", 3).history(ties), ["x", "y", "z"]);
        assert!(history_object("", 2).history(Vec::new()).is_empty());
    }

    fn jmes(path: &str, alias: &str) -> JmesPathSpec {
        JmesPathSpec {
            path: path.into(),
            alias: alias.into(),
            file_permission: String::new(),
        }
    }

    #[test]
    fn extensions_default_to_upstream_behaviour() {
        let object = KeyVaultObject::from_spec(spec("secret", "s")).unwrap();
        assert_eq!(object.extensions, Extensions::default());
        assert_eq!(object.vault("spc-vault"), "spc-vault");
    }

    #[test]
    fn optional_takes_go_booleans() {
        for (raw, want) in [
            ("true", true),
            ("True", true),
            ("1", true),
            ("false", false),
        ] {
            let object = KeyVaultObject::from_spec(ObjectSpec {
                optional: raw.into(),
                ..spec("secret", "s")
            })
            .unwrap();
            assert_eq!(object.extensions.optional, want, "{raw}");
        }
        assert_eq!(
            err(ObjectSpec {
                optional: "yes".into(),
                ..spec("secret", "s")
            }),
            r#"invalid optional "yes": must be true or false"#
        );
    }

    #[test]
    fn keyvault_name_per_object() {
        let object = KeyVaultObject::from_spec(ObjectSpec {
            keyvault_name: "kv-other".into(),
            version: "v1".into(),
            ..spec("secret", "s")
        })
        .unwrap();
        assert_eq!(object.vault("spc-vault"), "kv-other");
        assert_eq!(object.uid(), "secret/s@kv-other");
        assert_eq!(
            object.context(),
            "objectType:secret, objectName:s, objectVersion:v1, keyvaultName:kv-other"
        );
        assert_eq!(
            object.context_at("v2"),
            "objectType:secret, objectName:s, objectVersion:v2, keyvaultName:kv-other"
        );
        // Upstream's vault-name texts, after the object's context.
        let bad = |name: &str| ObjectSpec {
            keyvault_name: name.into(),
            ..spec("secret", "s")
        };
        assert_eq!(
            err(bad("kv")),
            r#"failed to get vault: Invalid vault name: "kv", must be between 3 and 24 chars"#
        );
        assert_eq!(
            err(bad("kv.evil.example")),
            r#"failed to get vault: Invalid vault name: "kv.evil.example", must match [-a-zA-Z0-9]{3,24}"#
        );
        assert_eq!(
            bad("kv_1").context(),
            "objectType:secret, objectName:s, objectVersion:, keyvaultName:kv_1"
        );
    }

    #[test]
    fn jmes_paths_are_validated() {
        let with = |entries: Vec<JmesPathSpec>| ObjectSpec {
            jmes_path: entries,
            ..spec("secret", "db")
        };
        let object = KeyVaultObject::from_spec(with(vec![
            jmes("username", "db/user"),
            JmesPathSpec {
                file_permission: "0600".into(),
                ..jmes("users[?id==`2`].name | [0]", "db/name")
            },
        ]))
        .unwrap();
        assert_eq!(
            object.extensions.jmes_path,
            [
                JmesPath {
                    path: "username".into(),
                    alias: "db/user".into(),
                    file_permission: None,
                },
                JmesPath {
                    path: "users[?id==`2`].name | [0]".into(),
                    alias: "db/name".into(),
                    file_permission: FileMode::new(0o600),
                },
            ]
        );
        let cases = [
            (
                vec![jmes("", "a")],
                r#"jmesPath entry 0 (path ""): path is required"#,
            ),
            (
                vec![jmes("a", "x"), jmes("b", "")],
                r#"jmesPath entry 1 (path "b"): objectAlias is required"#,
            ),
            (
                vec![jmes("a", "../x")],
                r#"jmesPath entry 0 (path "a"): objectAlias: file name must not contain '..'"#,
            ),
            (
                vec![jmes("a", "/x")],
                r#"jmesPath entry 0 (path "a"): objectAlias: file name must be a relative path"#,
            ),
            (
                vec![jmes("a", "db")],
                r#"jmesPath entry 0 (path "a"): objectAlias "db" is the object's own file"#,
            ),
            (
                vec![jmes("a", "x"), jmes("b", "x")],
                r#"jmesPath entry 1 (path "b"): objectAlias "x" is also used by entry 0"#,
            ),
            (
                vec![JmesPathSpec {
                    file_permission: "rw".into(),
                    ..jmes("a", "x")
                }],
                r#"jmesPath entry 0 (path "a"): invalid filePermission "rw": must be an octal mode from 0 to 0777, such as 0644"#,
            ),
            (
                vec![jmes("a.[", "x")],
                r#"jmesPath entry 0 (path "a.["): invalid JMESPath: "#,
            ),
        ];
        for (entries, want) in cases {
            let got = err(with(entries));
            assert!(got.starts_with(want), "{got}\n  wanted {want}");
            assert!(!got.contains('\n'), "{got}");
        }
        let deep = "a.".repeat(40) + "a";
        assert_eq!(
            err(with(vec![jmes(&deep, "x")])),
            format!(
                "jmesPath entry 0 (path {:?}): path has 40 operators and brackets \
                 (. [ ( {{ ! | & ? < > =), the limit is 32",
                &deep[..64]
            )
        );
        let long = "a".repeat(MAX_JMES_PATH_BYTES + 1);
        assert!(
            err(with(vec![jmes(&long, "x")])).ends_with("path is 257 bytes long, the limit is 256")
        );
        let many = (0..=MAX_JMES_PATH_ENTRIES)
            .map(|i| jmes("a", &format!("f{i}")))
            .collect();
        assert_eq!(
            err(with(many)),
            "jmesPath lists 101 entries, the limit is 100"
        );
        assert_eq!(
            err(ObjectSpec {
                jmes_path: vec![jmes("a", "x")],
                ..spec("key", "k")
            }),
            "jmesPath only supported for objectType: secret"
        );
        assert_eq!(
            err(ObjectSpec {
                jmes_path: vec![jmes("a", "x")],
                version_history: 2,
                ..spec("secret", "s")
            }),
            "jmesPath cannot be combined with objectVersionHistory > 1"
        );
    }

    #[test]
    fn version_history_bound() {
        let with = |n: i32| ObjectSpec {
            version_history: n,
            ..spec("secret", "s")
        };
        assert!(
            !KeyVaultObject::from_spec(with(MAX_VERSION_HISTORY))
                .unwrap()
                .is_single_version()
        );
        assert!(
            KeyVaultObject::from_spec(with(-5))
                .unwrap()
                .is_single_version()
        );
        assert_eq!(
            err(with(MAX_VERSION_HISTORY + 1)),
            "objectVersionHistory 1001 is too large, the limit is 1000"
        );
    }
}
