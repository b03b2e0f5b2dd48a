//! Turns what was fetched for one object into the files and object versions
//! of the mount response: content-type handling, `objectEncoding`, file
//! names (alias or name) and modes.
//!
//! Pure: no I/O, no async. Errors name what is wrong but never contain a byte
//! of the value being rendered.

use base64::Engine as _;
use secrecy::{ExposeSecret, SecretString};
use thiserror::Error;
use zeroize::Zeroizing;

use crate::object::{FileMode, KeyVaultObject, ObjectEncoding, ObjectFormat};

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

/// What was read from Key Vault for one object, already off the wire.
pub enum Fetched {
    /// A secret version. `certificate_backed` is true when Key Vault
    /// returned a `kid` (the secret holds a certificate and its key).
    Secret {
        value: SecretString,
        version: String,
        content_type: Option<String>,
        certificate_backed: bool,
    },
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
    #[error(
        "{what} is not supported by akv-csi-provider yet; it is planned (object parity with the upstream provider)"
    )]
    NotSupportedYet { what: &'static str },
}

impl RenderError {
    /// A short, bounded code for metrics and logs.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Base64 { .. } | Self::Hex { .. } | Self::HexOddLength => "DecodeFailed",
            Self::UnknownContentType(_) => "UnknownContentType",
            Self::NotSupportedYet { .. } => "NotSupported",
            // Variants added later fall back to a generic code.
            #[allow(unreachable_patterns)]
            _ => "RenderFailed",
        }
    }
}

/// Renders one fetched object (single version) into its files.
pub fn render(
    object: &KeyVaultObject,
    fetched: Fetched,
    default_mode: FileMode,
) -> Result<Vec<Rendered>, RenderError> {
    let Fetched::Secret {
        value,
        version,
        content_type,
        certificate_backed,
    } = fetched;
    let raw = if certificate_backed {
        certificate_secret(object, &value, content_type.as_deref())?
    } else {
        Zeroizing::new(value.expose_secret().as_bytes().to_vec())
    };
    let contents = encode(object.encoding, raw)?;
    Ok(vec![Rendered {
        file: File {
            path: object.file_name().to_owned(),
            mode: object.file_permission.unwrap_or(default_mode),
            contents,
        },
        version: ObjectVersion {
            id: object.uid(),
            version,
        },
    }])
}

/// A certificate-backed secret, by content type.
fn certificate_secret(
    object: &KeyVaultObject,
    value: &SecretString,
    content_type: Option<&str>,
) -> Result<Zeroizing<Vec<u8>>, RenderError> {
    let stored = || Zeroizing::new(value.expose_secret().as_bytes().to_vec());
    match content_type.unwrap_or("") {
        PEM_CONTENT_TYPE => Ok(stored()),
        PKCS12_CONTENT_TYPE if object.format == ObjectFormat::Pfx => Ok(stored()),
        PKCS12_CONTENT_TYPE => Err(RenderError::NotSupportedYet {
            what: "converting a PKCS#12 certificate to PEM",
        }),
        other => Err(RenderError::UnknownContentType(other.to_owned())),
    }
}

/// Applies `objectEncoding` to the value's bytes.
fn encode(
    encoding: ObjectEncoding,
    raw: Zeroizing<Vec<u8>>,
) -> Result<Zeroizing<Vec<u8>>, RenderError> {
    match encoding {
        ObjectEncoding::Utf8 => Ok(raw),
        ObjectEncoding::Base64 => decode_base64(&raw),
        ObjectEncoding::Hex => decode_hex(&raw),
    }
}

fn decode_base64(raw: &[u8]) -> Result<Zeroizing<Vec<u8>>, RenderError> {
    use base64::DecodeError as E;
    base64::engine::general_purpose::STANDARD
        .decode(raw)
        .map(Zeroizing::new)
        .map_err(|e| {
            let offset = match e {
                E::InvalidByte(offset, _) | E::InvalidLastSymbol(offset, _) => offset,
                E::InvalidLength(len) => len,
                E::InvalidPadding => raw.len(),
            };
            RenderError::Base64 { offset }
        })
}

fn decode_hex(raw: &[u8]) -> Result<Zeroizing<Vec<u8>>, RenderError> {
    let mut out = Zeroizing::new(vec![0u8; raw.len() / 2]);
    hex::decode_to_slice(raw, &mut out).map_err(|e| match e {
        hex::FromHexError::InvalidHexCharacter { index, .. } => RenderError::Hex { offset: index },
        _ => RenderError::HexOddLength,
    })?;
    Ok(out)
}

#[cfg(test)]
mod tests;
