//! Turns what was fetched for one object version into the files and object
//! versions of the mount response: secrets by content type (certificate
//! bundles: PKCS#12 → PEM with the chain ordered, PFX passthrough, split
//! `.crt`/`.key` files), keys as public-key PEM, certificates as PEM,
//! `objectEncoding`, file names (alias or name, `/<i>` for version
//! history), modes and object ids; and our extensions: PEM → PFX for
//! `objectFormat: pfx`, `jmesPath` files.
//!
//! Pure: no I/O, no async. Errors name what is wrong but never contain a byte
//! of the value being rendered. Submodules: `pem` (Go-compatible PEM),
//! `der` (the DER we write), `jwk` (keys), `pkcs12` (PFX reading), `pfx`
//! (PFX writing), `private_key` (PKCS#8 as upstream writes it), `chain`
//! (leaf → root), `jmes_path` (JSON extraction).
//!
//! Public on purpose: [`render()`] and its types, and the format building
//! blocks `chain`, `jwk`, `pem`, `pkcs12` and `private_key`, which the fuzz
//! targets and property tests drive directly. `der`, `pfx` and `jmes_path`
//! are reached through [`render()`] only.

pub mod chain;
mod der;
#[cfg(test)]
mod fixtures;
mod jmes_path;
pub mod jwk;
pub mod pem;
mod pfx;
pub mod pkcs12;
pub mod private_key;

pub use jmes_path::JmesPathError;
pub use jwk::{Jwk, KeyError};
pub use pfx::PfxError;
pub use pkcs12::Pkcs12Error;
pub use private_key::PrivateKeyError;

use base64::Engine as _;
use secrecy::{ExposeSecret, SecretString};
use thiserror::Error;
use zeroize::Zeroizing;

use crate::object::{FileMode, KeyVaultObject, ObjectEncoding, ObjectFormat, ObjectType};

const PEM_CONTENT_TYPE: &str = "application/x-pem-file";
const PKCS12_CONTENT_TYPE: &str = "application/x-pkcs12";

/// One file of the volume. `Debug` hides the contents.
pub struct File {
    pub path: String,
    pub mode: FileMode,
    pub contents: Zeroizing<Vec<u8>>,
}

impl std::fmt::Debug for File {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("File")
            .field("path", &self.path)
            .field("mode", &self.mode)
            .field("len", &self.contents.len())
            .finish()
    }
}

/// The object id and version reported for one file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ObjectVersion {
    pub id: String,
    pub version: String,
}

/// A file with its object version.
#[derive(Debug)]
pub struct Rendered {
    pub file: File,
    pub version: ObjectVersion,
}

/// What was read from Key Vault for one object version, already off the
/// wire.
pub enum Fetched {
    /// A secret version. `certificate_backed` is true when Key Vault
    /// returned a non-empty `kid` (the secret holds a certificate and its
    /// key).
    Secret {
        value: SecretString,
        version: String,
        content_type: Option<String>,
        certificate_backed: bool,
    },
    /// A key version (public part only).
    Key { version: String, jwk: Jwk },
    /// A certificate version: its `cer` field, base64 DER.
    Certificate { version: String, cer: String },
}

/// Switches from the command line that change what is written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RenderOptions {
    /// `--construct-pem-chain`: order PKCS#12 certificates leaf → root.
    pub construct_pem_chain: bool,
    /// `--write-cert-and-key-in-separate-files`: also write `<file>.crt`
    /// and `<file>.key` for certificate-backed secrets.
    pub write_cert_and_key_in_separate_files: bool,
}

impl Default for RenderOptions {
    fn default() -> Self {
        Self {
            construct_pem_chain: true,
            write_cert_and_key_in_separate_files: false,
        }
    }
}

/// Which version of an object is rendered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Slot {
    /// `objectVersionHistory <= 1`: file `<alias-or-name>`, id `<type>/<name>`.
    Single,
    /// Entry `i` of the version history: file `<alias-or-name>/<i>`, id
    /// `<type>/<name>/<i>`.
    History(usize),
}

/// The files of one object version, and warnings for the log.
#[derive(Debug, Default)]
pub struct Output {
    pub files: Vec<Rendered>,
    pub warnings: Vec<String>,
}

/// Why an object could not be turned into files.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum RenderError {
    #[error("illegal base64 data at input byte {offset}")]
    Base64 { offset: usize },
    #[error("encoding/hex: invalid byte at input byte {offset}")]
    Hex { offset: usize },
    #[error("encoding/hex: odd length hex string")]
    HexOddLength,
    #[error("failed to get certificate. unknown content type '{0}'")]
    UnknownContentType(String),
    #[error(transparent)]
    Key(#[from] KeyError),
    #[error(transparent)]
    Pkcs12(#[from] Pkcs12Error),
    #[error("{0}")]
    PrivateKey(#[from] PrivateKeyError),
    #[error("the certificate's cer is not base64 (illegal data at input byte {offset})")]
    CertificateBase64 { offset: usize },
    #[error("output file {path:?}: {reason}")]
    FileName { path: String, reason: String },
    #[error("reading the certificate failed unexpectedly ({0}); the object was not mounted")]
    Panicked(&'static str),
    #[error(transparent)]
    Pfx(#[from] PfxError),
    #[error(transparent)]
    JmesPath(#[from] JmesPathError),
}

impl RenderError {
    /// A short, bounded code for metrics and logs.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Base64 { .. } | Self::Hex { .. } | Self::HexOddLength => "DecodeFailed",
            Self::UnknownContentType(_) => "UnknownContentType",
            Self::Key(_) => "UnsupportedKey",
            Self::Pkcs12(_) => "InvalidPkcs12",
            Self::PrivateKey(_) => "InvalidPrivateKey",
            Self::CertificateBase64 { .. } => "InvalidCertificate",
            Self::FileName { .. } => "InvalidFileName",
            Self::Panicked(_) => "Internal",
            Self::Pfx(_) => "PfxFailed",
            Self::JmesPath(e) => e.code(),
        }
    }
}

/// Renders one fetched object version into its files.
pub fn render(
    object: &KeyVaultObject,
    slot: Slot,
    fetched: Fetched,
    default_mode: FileMode,
    options: RenderOptions,
) -> Result<Output, RenderError> {
    let (path, id) = match slot {
        Slot::Single => (object.file_name().to_owned(), object.uid()),
        Slot::History(i) => (
            format!("{}/{i}", object.file_name()),
            format!("{}/{i}", object.uid()),
        ),
    };
    let mut output = Output::default();
    if object.format == ObjectFormat::Pfx && object.object_type != ObjectType::Secret {
        output.warnings.push(format!(
            "objectFormat PFX is ignored on objectType {}: only a secret becomes a PFX; the file is PEM, as upstream",
            object.raw_type
        ));
    }
    let (version, contents) = match fetched {
        Fetched::Secret {
            value,
            version,
            content_type,
            certificate_backed,
        } => {
            let raw = if certificate_backed {
                let raw = certificate_secret(
                    object,
                    &value,
                    content_type.as_deref(),
                    options,
                    &mut output.warnings,
                )?;
                if options.write_cert_and_key_in_separate_files {
                    // A PFX built from PEM is split from the PEM it came from.
                    let pem_to_pfx = object.format == ObjectFormat::Pfx
                        && content_type.as_deref() == Some(PEM_CONTENT_TYPE);
                    let source = if pem_to_pfx {
                        Zeroizing::new(value.expose_secret().as_bytes().to_vec())
                    } else {
                        Zeroizing::new(raw.to_vec())
                    };
                    let (certs, keys) = pem::split_cert_and_key(&source);
                    for (suffix, part) in [(".crt", certs), (".key", keys)] {
                        let file = file(
                            object,
                            &path,
                            suffix,
                            default_mode,
                            encode(object.encoding, part)?,
                        )?;
                        output.files.push(Rendered {
                            file,
                            version: ObjectVersion {
                                id: format!("{id}{suffix}"),
                                version: version.clone(),
                            },
                        });
                    }
                }
                raw
            } else {
                Zeroizing::new(value.expose_secret().as_bytes().to_vec())
            };
            (version, encode(object.encoding, raw)?)
        }
        Fetched::Key { version, jwk } => (version, Zeroizing::new(jwk::public_key_pem(&jwk)?)),
        Fetched::Certificate { version, cer } => {
            let der = crate::go::std_base64_decode(cer.as_bytes())
                .map_err(|offset| RenderError::CertificateBase64 { offset })?;
            (version, pem::encode(pem::CERTIFICATE, &der))
        }
    };
    let jmes_path = &object.extensions.jmes_path;
    let selected = match jmes_path.is_empty() {
        true => Vec::new(),
        false => guarded("JMESPath", || jmes_path::select(&contents, jmes_path))??,
    };
    output.files.push(Rendered {
        file: file(object, &path, "", default_mode, contents)?,
        version: ObjectVersion {
            id: id.clone(),
            version: version.clone(),
        },
    });
    for (entry, contents) in jmes_path.iter().zip(selected) {
        let mut file = file(object, &entry.alias, "", default_mode, contents)?;
        if let Some(mode) = entry.file_permission {
            file.mode = mode;
        }
        output.files.push(Rendered {
            file,
            version: ObjectVersion {
                id: format!("{id}#{}", entry.alias),
                version: version.clone(),
            },
        });
    }
    Ok(output)
}

/// One output file; the final path must still satisfy the driver's rules
/// (the history index and `.crt`/`.key` suffixes lengthen it).
fn file(
    object: &KeyVaultObject,
    path: &str,
    suffix: &str,
    default_mode: FileMode,
    contents: Zeroizing<Vec<u8>>,
) -> Result<File, RenderError> {
    let path = format!("{path}{suffix}");
    crate::object::validate_file_name(&path).map_err(|e| RenderError::FileName {
        path: path.clone(),
        reason: e.to_string(),
    })?;
    Ok(File {
        path,
        mode: object.file_permission.unwrap_or(default_mode),
        contents,
    })
}

/// A certificate-backed secret, by content type.
fn certificate_secret(
    object: &KeyVaultObject,
    value: &SecretString,
    content_type: Option<&str>,
    options: RenderOptions,
    warnings: &mut Vec<String>,
) -> Result<Zeroizing<Vec<u8>>, RenderError> {
    let stored = || Zeroizing::new(value.expose_secret().as_bytes().to_vec());
    match content_type.unwrap_or("") {
        PEM_CONTENT_TYPE if object.format == ObjectFormat::Pfx => {
            pem_to_pfx(value.expose_secret().as_bytes(), warnings)
        }
        PEM_CONTENT_TYPE => Ok(stored()),
        PKCS12_CONTENT_TYPE if object.format == ObjectFormat::Pfx => Ok(stored()),
        PKCS12_CONTENT_TYPE => pkcs12_to_pem(value.expose_secret().as_bytes(), options, warnings),
        other => Err(RenderError::UnknownContentType(other.to_owned())),
    }
}

/// Upstream's PFX → PEM: every private key as PKCS#8 `PRIVATE KEY`, then
/// the certificates, ordered leaf → root when `construct_pem_chain`.
fn pkcs12_to_pem(
    base64_pfx: &[u8],
    options: RenderOptions,
    warnings: &mut Vec<String>,
) -> Result<Zeroizing<Vec<u8>>, RenderError> {
    let pfx = crate::go::std_base64_decode(base64_pfx)
        .map_err(|offset| RenderError::Base64 { offset })?;
    let contents = guarded("PKCS#12", || pkcs12::decode(&pfx))??;
    let mut out = Zeroizing::new(Vec::with_capacity(pfx.len() * 2));
    for key in &contents.keys {
        let pkcs8 = private_key::normalize_pkcs8(key)?;
        pem::encode_into(&mut out, pem::PRIVATE_KEY, &pkcs8);
    }
    let order: Vec<usize> = if options.construct_pem_chain {
        let (order, outcome) = guarded("X.509", || chain::order(&contents.certs))?;
        if let chain::Outcome::Unordered(reason) = outcome {
            warnings.push(format!(
                "{reason}; the certificates keep the order of the PKCS#12 file"
            ));
        }
        order
    } else {
        (0..contents.certs.len()).collect()
    };
    for i in order {
        pem::encode_into(&mut out, pem::CERTIFICATE, &contents.certs[i]);
    }
    Ok(out)
}

/// Our extension: a PEM bundle as a PFX (empty password), base64 text like
/// the PKCS#12 passthrough, so `objectEncoding: base64` makes it binary.
fn pem_to_pfx(
    pem_text: &[u8],
    warnings: &mut Vec<String>,
) -> Result<Zeroizing<Vec<u8>>, RenderError> {
    let built = guarded("PEM", || pfx::from_pem(pem_text))??;
    if let Some(reason) = built.unordered {
        warnings.push(format!(
            "{reason}; the PFX keeps the certificates in the PEM's order"
        ));
    }
    let text = base64::engine::general_purpose::STANDARD.encode(built.der.as_slice());
    Ok(Zeroizing::new(text.into_bytes()))
}

/// Runs a parser of untrusted input; a panic in it becomes an error of
/// this object instead of unwinding through the mount.
fn guarded<T>(what: &'static str, f: impl FnOnce() -> T) -> Result<T, RenderError> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(f))
        .map_err(|_| RenderError::Panicked(what))
}

/// Applies `objectEncoding` to the value's bytes.
fn encode(
    encoding: ObjectEncoding,
    raw: Zeroizing<Vec<u8>>,
) -> Result<Zeroizing<Vec<u8>>, RenderError> {
    match encoding {
        ObjectEncoding::Utf8 => Ok(raw),
        ObjectEncoding::Base64 => {
            crate::go::std_base64_decode(&raw).map_err(|offset| RenderError::Base64 { offset })
        }
        ObjectEncoding::Hex => decode_hex(&raw),
    }
}

/// `hex.DecodeString` as upstream calls it: the first invalid character is
/// reported before an odd length (Go checks the pairs, then the odd last
/// character, then the length). The text names the offset, not the byte
/// Go quotes, so no character of a secret reaches an error.
fn decode_hex(raw: &[u8]) -> Result<Zeroizing<Vec<u8>>, RenderError> {
    if let Some(offset) = raw.iter().position(|b| !b.is_ascii_hexdigit()) {
        return Err(RenderError::Hex { offset });
    }
    let mut out = Zeroizing::new(vec![0u8; raw.len() / 2]);
    hex::decode_to_slice(raw, &mut out).map_err(|e| match e {
        hex::FromHexError::InvalidHexCharacter { index, .. } => RenderError::Hex { offset: index },
        _ => RenderError::HexOddLength,
    })?;
    Ok(out)
}

#[cfg(test)]
mod tests;
