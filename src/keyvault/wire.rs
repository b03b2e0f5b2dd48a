//! Key Vault's wire format: the answers of the secret, key, certificate and
//! version-list reads, Azure's error JSON, and the errors of a read. Decoding
//! is pure (the fuzz targets call `decode_*` through `keyvault`).
//!
//! This module must not send requests or know tokens; the bodies it is given
//! never appear in its errors beyond Key Vault's own bounded message.

use std::borrow::Cow;
use std::time::Duration;

use secrecy::SecretString;
use serde::Deserialize;
use thiserror::Error;

use crate::http::SendError;

/// Longest Key Vault error message kept in an error.
const MAX_MESSAGE: usize = 400;

/// A secret version as Key Vault returns it. `Debug` hides the value.
pub struct SecretBundle {
    pub value: SecretString,
    /// `https://{vault}.{suffix}/secrets/{name}/{version}`.
    pub id: String,
    pub content_type: Option<String>,
    /// Set when the secret backs a certificate.
    pub kid: Option<String>,
}

impl std::fmt::Debug for SecretBundle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SecretBundle")
            .field("id", &self.id)
            .field("content_type", &self.content_type)
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

impl SecretBundle {
    /// The version id: the last path segment of `id`.
    pub fn version(&self) -> &str {
        version_of(&self.id)
    }
}

/// A key version as Key Vault returns it: the JWK fields of its public
/// part (base64url text, decoded by `render`).
#[derive(Clone, Debug, Default)]
pub struct KeyBundle {
    /// `key.kid`: `https://{vault}.{suffix}/keys/{name}/{version}`.
    pub kid: String,
    pub kty: Option<String>,
    pub crv: Option<String>,
    pub n: Option<String>,
    pub e: Option<String>,
    pub x: Option<String>,
    pub y: Option<String>,
}

impl KeyBundle {
    /// The version id: the last path segment of `kid`.
    pub fn version(&self) -> &str {
        version_of(&self.kid)
    }
}

/// A certificate version as Key Vault returns it.
#[derive(Clone, Debug)]
pub struct CertificateBundle {
    /// `https://{vault}.{suffix}/certificates/{name}/{version}`.
    pub id: String,
    /// The certificate, base64 DER.
    pub cer: String,
}

impl CertificateBundle {
    /// The version id: the last path segment of `id`.
    pub fn version(&self) -> &str {
        version_of(&self.id)
    }
}

/// The object collections of a vault.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Collection {
    Secrets,
    Keys,
    Certificates,
}

impl Collection {
    /// The path segment.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Secrets => "secrets",
            Self::Keys => "keys",
            Self::Certificates => "certificates",
        }
    }
}

/// One enabled version from a version listing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ListedVersion {
    pub version: String,
    /// `attributes.created` (Unix seconds); 0 when Key Vault sent none.
    pub created: i64,
}

/// The last non-empty path segment of a Key Vault object id.
pub fn version_of(id: &str) -> &str {
    id.trim_end_matches('/').rsplit('/').next().unwrap_or("")
}

/// Why a read failed.
#[derive(Clone, Debug, Error)]
pub enum KeyVaultError {
    /// Key Vault answered with an error code (SecretNotFound, Forbidden, …).
    #[error("keyvault {vault} answered {status} {code}: {message}")]
    Service {
        vault: String,
        status: u16,
        code: String,
        message: String,
    },
    /// Key Vault could not be reached or did not answer in time.
    #[error("keyvault {vault}: {source}")]
    Unreachable {
        vault: String,
        #[source]
        source: SendError,
    },
    /// The answer was not what Key Vault sends.
    #[error("keyvault {vault}: unexpected answer (HTTP {status}): {reason}")]
    Malformed {
        vault: String,
        status: u16,
        reason: String,
    },
    /// Key Vault answered 429 and the wait it asks for does not fit in what
    /// is left of the mount's budget.
    #[error(
        "keyvault {vault} throttled the request (429 Too Many Requests) and asks to wait {}, \
         longer than the {} left of this mount's time budget; the mount fails now and kubelet \
         will retry it (if this persists, lower the load on the vault: --cache-ttl, \
         --keyvault-qps, fewer pods mounting at once)",
        seconds(*.wait),
        seconds(*.remaining)
    )]
    Throttled {
        vault: String,
        wait: Duration,
        remaining: Duration,
    },
    /// Our own `--keyvault-qps` would hold the request past the budget.
    #[error(
        "keyvault {vault}: --keyvault-qps would delay this request by {}, longer than the {} \
         left of this mount's time budget; raise --keyvault-qps",
        seconds(*.wait),
        seconds(*.remaining)
    )]
    RateLimited {
        vault: String,
        wait: Duration,
        remaining: Duration,
    },
}

/// `1.5s`: durations in errors, to a tenth of a second.
fn seconds(duration: Duration) -> String {
    format!("{:.1}s", duration.as_secs_f64())
}

impl KeyVaultError {
    /// A short, bounded code for metrics and logs: Key Vault's error code
    /// (`SecretNotFound`, `Forbidden`, …), `Throttled` for 429, or the
    /// transport's code.
    pub fn code(&self) -> Cow<'static, str> {
        match self {
            Self::Service { status: 429, .. } | Self::Throttled { .. } => {
                Cow::Borrowed("Throttled")
            }
            Self::Service { code, .. } => Cow::Owned(code.clone()),
            Self::Unreachable { source, .. } => Cow::Borrowed(source.code()),
            Self::Malformed { .. } => Cow::Borrowed("MalformedResponse"),
            Self::RateLimited { .. } => Cow::Borrowed("RateLimited"),
        }
    }

    /// True when the failure belongs to the caller that made the request
    /// rather than to the object: its budget ran out while throttled, or
    /// its token was rejected. A coalesced caller with its own token and
    /// budget tries again itself instead of sharing such an error.
    pub fn is_callers_own(&self) -> bool {
        matches!(
            self,
            Self::Throttled { .. } | Self::RateLimited { .. } | Self::Service { status: 401, .. }
        )
    }
}

#[derive(Deserialize)]
struct SecretAnswer {
    value: Option<String>,
    id: Option<String>,
    #[serde(rename = "contentType")]
    content_type: Option<String>,
    kid: Option<String>,
}

#[derive(Deserialize)]
struct KeyAnswer {
    key: Option<JwkAnswer>,
}

#[derive(Deserialize)]
struct JwkAnswer {
    kid: Option<String>,
    kty: Option<String>,
    crv: Option<String>,
    n: Option<String>,
    e: Option<String>,
    x: Option<String>,
    y: Option<String>,
}

#[derive(Deserialize)]
struct CertificateAnswer {
    id: Option<String>,
    cer: Option<String>,
}

#[derive(Deserialize)]
struct ListAnswer {
    #[serde(default)]
    value: Vec<ListItem>,
    #[serde(rename = "nextLink")]
    next_link: Option<String>,
}

#[derive(Deserialize)]
struct ListItem {
    /// Secrets and certificates.
    id: Option<String>,
    /// Keys.
    kid: Option<String>,
    attributes: Option<ListAttributes>,
}

#[derive(Deserialize)]
struct ListAttributes {
    enabled: Option<bool>,
    created: Option<i64>,
}

#[derive(Deserialize)]
struct ErrorAnswer {
    error: Option<ErrorBody>,
}

#[derive(Deserialize)]
struct ErrorBody {
    code: Option<String>,
    message: Option<String>,
}

pub(super) fn malformed(vault: &str, status: u16, reason: &str) -> KeyVaultError {
    KeyVaultError::Malformed {
        vault: vault.to_owned(),
        status,
        reason: reason.to_owned(),
    }
}

/// Decodes a secret answer or Key Vault's error JSON.
pub fn decode_secret(vault: &str, status: u16, body: &[u8]) -> Result<SecretBundle, KeyVaultError> {
    let answer: SecretAnswer = decode_json(vault, status, body, "secret")?;
    let value = answer
        .value
        .ok_or_else(|| malformed(vault, status, "secret value is nil"))?;
    let id = answer
        .id
        .ok_or_else(|| malformed(vault, status, "secret id is nil"))?;
    Ok(SecretBundle {
        value: SecretString::from(value),
        id,
        content_type: answer.content_type,
        kid: answer.kid,
    })
}

/// Parses a 2xx JSON answer or returns Key Vault's error.
fn decode_json<T: for<'de> Deserialize<'de>>(
    vault: &str,
    status: u16,
    body: &[u8],
    what: &str,
) -> Result<T, KeyVaultError> {
    if !(200..300).contains(&status) {
        return Err(decode_error(vault, status, body));
    }
    serde_json::from_slice(body).map_err(|e| {
        malformed(
            vault,
            status,
            &format!(
                "invalid {what} JSON at line {} column {}",
                e.line(),
                e.column()
            ),
        )
    })
}

/// Decodes a key answer (upstream's nil checks: `key value is nil`,
/// `key id is nil`).
pub fn decode_key(vault: &str, status: u16, body: &[u8]) -> Result<KeyBundle, KeyVaultError> {
    let answer: KeyAnswer = decode_json(vault, status, body, "key")?;
    let key = answer
        .key
        .ok_or_else(|| malformed(vault, status, "key value is nil"))?;
    let kid = key
        .kid
        .ok_or_else(|| malformed(vault, status, "key id is nil"))?;
    Ok(KeyBundle {
        kid,
        kty: key.kty,
        crv: key.crv,
        n: key.n,
        e: key.e,
        x: key.x,
        y: key.y,
    })
}

/// Decodes a certificate answer (`certificate value is nil`,
/// `certificate id is nil`).
pub fn decode_certificate(
    vault: &str,
    status: u16,
    body: &[u8],
) -> Result<CertificateBundle, KeyVaultError> {
    let answer: CertificateAnswer = decode_json(vault, status, body, "certificate")?;
    let cer = answer
        .cer
        .filter(|c| !c.is_empty())
        .ok_or_else(|| malformed(vault, status, "certificate value is nil"))?;
    let id = answer
        .id
        .ok_or_else(|| malformed(vault, status, "certificate id is nil"))?;
    Ok(CertificateBundle { id, cer })
}

/// One page of a version listing.
#[derive(Debug)]
pub struct ListPage {
    pub versions: Vec<ListedVersion>,
    pub next_link: Option<String>,
}

/// Decodes a page of `…/versions`: entries without attributes or with
/// `enabled: false` are dropped, a missing `created` counts as 0 (the Unix
/// epoch), as upstream does.
pub fn decode_list(vault: &str, status: u16, body: &[u8]) -> Result<ListPage, KeyVaultError> {
    let answer: ListAnswer = decode_json(vault, status, body, "version list")?;
    let mut versions = Vec::with_capacity(answer.value.len());
    for item in answer.value {
        let Some(attributes) = item.attributes else {
            continue;
        };
        if attributes.enabled == Some(false) {
            continue;
        }
        let id = item
            .id
            .or(item.kid)
            .ok_or_else(|| malformed(vault, status, "a listed version has no id"))?;
        versions.push(ListedVersion {
            version: version_of(&id).to_owned(),
            created: attributes.created.unwrap_or(0),
        });
    }
    Ok(ListPage {
        versions,
        next_link: answer.next_link.filter(|l| !l.is_empty()),
    })
}

fn decode_error(vault: &str, status: u16, body: &[u8]) -> KeyVaultError {
    match serde_json::from_slice::<ErrorAnswer>(body) {
        Ok(ErrorAnswer {
            error: Some(ErrorBody { code, message }),
        }) => KeyVaultError::Service {
            vault: vault.to_owned(),
            status,
            // An error code is one word; a line break in it (fuzzing
            // found one) must not reach the message.
            code: bounded(code.as_deref().unwrap_or("Unknown")),
            message: bounded(message.as_deref().unwrap_or("")),
        },
        _ => KeyVaultError::Malformed {
            vault: vault.to_owned(),
            status,
            reason: "the body is not Key Vault's error JSON".into(),
        },
    }
}

fn bounded(text: &str) -> String {
    let flat = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if flat.len() <= MAX_MESSAGE {
        return flat;
    }
    let mut end = MAX_MESSAGE;
    while !flat.is_char_boundary(end) {
        end -= 1;
    }
    format!("{} …", &flat[..end])
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::ExposeSecret;

    #[test]
    fn version_is_last_segment() {
        assert_eq!(
            version_of("https://kv.vault.azure.net/secrets/s/abc123"),
            "abc123"
        );
        assert_eq!(
            version_of("https://kv.vault.azure.net/secrets/s/abc123/"),
            "abc123"
        );
    }

    #[test]
    fn secret_answer() {
        let body = br#"{"value":"p@ss","id":"https://kv.vault.azure.net/secrets/s/0123","attributes":{"enabled":true}}"#;
        let bundle = decode_secret("kv", 200, body).unwrap();
        assert_eq!(bundle.value.expose_secret(), "p@ss");
        assert_eq!(bundle.version(), "0123");
        assert!(bundle.kid.is_none());
        assert!(!format!("{bundle:?}").contains("p@ss"));
    }

    #[test]
    fn not_found_keeps_code_and_vault() {
        let body = br#"{"error":{"code":"SecretNotFound","message":"A secret with (name/id) s was not found in this key vault."}}"#;
        let err = decode_secret("kv", 404, body).unwrap_err().to_string();
        assert_eq!(
            err,
            "keyvault kv answered 404 SecretNotFound: A secret with (name/id) s was not found in this key vault."
        );
    }

    #[test]
    fn key_answer() {
        let body = br#"{"key":{"kid":"https://kv.vault.azure.net/keys/k/abc","kty":"EC","crv":"P-256","x":"AQ","y":"Ag"},"attributes":{"enabled":true}}"#;
        let bundle = decode_key("kv", 200, body).unwrap();
        assert_eq!(bundle.version(), "abc");
        assert_eq!(bundle.kty.as_deref(), Some("EC"));
        assert_eq!(bundle.crv.as_deref(), Some("P-256"));
        assert_eq!(bundle.x.as_deref(), Some("AQ"));
        let err = decode_key("kv", 200, br#"{"attributes":{}}"#).unwrap_err();
        assert!(err.to_string().ends_with("key value is nil"), "{err}");
        let err = decode_key("kv", 200, br#"{"key":{"kty":"RSA"}}"#).unwrap_err();
        assert!(err.to_string().ends_with("key id is nil"), "{err}");
        let body = br#"{"error":{"code":"KeyNotFound","message":"A key with (name/id) k was not found in this key vault."}}"#;
        assert!(
            decode_key("kv", 404, body)
                .unwrap_err()
                .to_string()
                .contains("404 KeyNotFound")
        );
    }

    #[test]
    fn certificate_answer() {
        let body = br#"{"id":"https://kv.vault.azure.net/certificates/c/0a1b","kid":"x","sid":"y","cer":"MIIB"}"#;
        let bundle = decode_certificate("kv", 200, body).unwrap();
        assert_eq!((bundle.version(), bundle.cer.as_str()), ("0a1b", "MIIB"));
        for (body, want) in [
            (&br#"{"id":"x"}"#[..], "certificate value is nil"),
            (&br#"{"id":"x","cer":""}"#[..], "certificate value is nil"),
            (&br#"{"cer":"MIIB"}"#[..], "certificate id is nil"),
        ] {
            let err = decode_certificate("kv", 200, body).unwrap_err().to_string();
            assert!(err.ends_with(want), "{err}");
        }
    }

    #[test]
    fn list_pages_skip_disabled_and_attribute_less_versions() {
        let body = br#"{"value":[
            {"id":"https://kv.vault.azure.net/secrets/s/v1","attributes":{"enabled":true,"created":100}},
            {"id":"https://kv.vault.azure.net/secrets/s/v2","attributes":{"enabled":false,"created":200}},
            {"id":"https://kv.vault.azure.net/secrets/s/v3"},
            {"kid":"https://kv.vault.azure.net/keys/s/v4","attributes":{}}
          ],"nextLink":"https://kv.vault.azure.net:443/secrets/s/versions?api-version=7.4&$skiptoken=abc"}"#;
        let page = decode_list("kv", 200, body).unwrap();
        assert_eq!(
            page.versions,
            vec![
                ListedVersion {
                    version: "v1".into(),
                    created: 100
                },
                ListedVersion {
                    version: "v4".into(),
                    created: 0
                },
            ]
        );
        assert!(page.next_link.unwrap().contains("$skiptoken=abc"));
        let last = decode_list("kv", 200, br#"{"value":[],"nextLink":null}"#).unwrap();
        assert!(last.versions.is_empty() && last.next_link.is_none());
    }

    #[test]
    fn malformed_answers_never_echo_the_body() {
        let err = decode_secret("kv", 200, br#"{"value": "hunter2""#)
            .unwrap_err()
            .to_string();
        assert!(!err.contains("hunter2"), "{err}");
        assert!(matches!(
            decode_secret("kv", 200, br#"{"id":"x"}"#),
            Err(KeyVaultError::Malformed { .. })
        ));
        assert!(matches!(
            decode_secret("kv", 502, b"<html>"),
            Err(KeyVaultError::Malformed { .. })
        ));
    }
}
