//! Key Vault's REST API: read one secret version with the bearer token sent
//! up front (the scope is known from the cloud, so there is no 401 challenge
//! round trip), and decode the answers, including Azure's error JSON.
//!
//! Returns wire shapes only; turning them into files is `render`'s job, and
//! choosing identities is `auth`'s.

use std::borrow::Cow;

use secrecy::SecretString;
use serde::Deserialize;
use thiserror::Error;

use crate::auth::AccessToken;
use crate::http::{Http, SendError};

/// The Key Vault data-plane API version (the one upstream v1.8.2 sends).
pub const API_VERSION: &str = "7.4";

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

/// The last non-empty path segment of a Key Vault object id.
pub fn version_of(id: &str) -> &str {
    id.trim_end_matches('/').rsplit('/').next().unwrap_or("")
}

/// Why a read failed.
#[derive(Debug, Error)]
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
}

impl KeyVaultError {
    /// A short, bounded code for metrics and logs: Key Vault's error code
    /// (`SecretNotFound`, `Forbidden`, …), `Throttled` for 429, or the
    /// transport's code.
    pub fn code(&self) -> Cow<'static, str> {
        match self {
            Self::Service { status: 429, .. } => Cow::Borrowed("Throttled"),
            Self::Service { code, .. } => Cow::Owned(code.clone()),
            Self::Unreachable { source, .. } => Cow::Borrowed(source.code()),
            Self::Malformed { .. } => Cow::Borrowed("MalformedResponse"),
        }
    }
}

/// Reads objects over the shared client.
#[derive(Clone, Debug)]
pub struct KeyVault {
    http: Http,
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
struct ErrorAnswer {
    error: Option<ErrorBody>,
}

#[derive(Deserialize)]
struct ErrorBody {
    code: Option<String>,
    message: Option<String>,
}

// === impl KeyVault ===

impl KeyVault {
    pub fn new(http: Http) -> Self {
        Self { http }
    }

    /// `GET {vault_url}secrets/{name}/{version}`; an empty version reads the
    /// latest.
    pub async fn get_secret(
        &self,
        vault: VaultRef<'_>,
        token: &AccessToken,
        name: &str,
        version: &str,
    ) -> Result<SecretBundle, KeyVaultError> {
        let url = object_url(vault.url, "secrets", name, version);
        let builder = self
            .http
            .request(reqwest::Method::GET, &url)
            .query(&[("api-version", API_VERSION)])
            .bearer_auth(token.bearer())
            .header(reqwest::header::ACCEPT, "application/json");
        let response =
            self.http
                .send(builder, &url)
                .await
                .map_err(|source| KeyVaultError::Unreachable {
                    vault: vault.name.to_owned(),
                    source,
                })?;
        decode_secret(vault.name, response.status.as_u16(), &response.body)
    }
}

/// The vault a request goes to: its name (for errors) and base URL.
#[derive(Clone, Copy, Debug)]
pub struct VaultRef<'a> {
    pub name: &'a str,
    /// `https://{name}.{suffix}/`
    pub url: &'a str,
}

/// Builds `{base}{collection}/{name}/{version}` with each segment
/// percent-encoded, so an object name can never change the path.
fn object_url(base: &str, collection: &str, name: &str, version: &str) -> String {
    let mut url = String::with_capacity(base.len() + name.len() + version.len() + 16);
    url.push_str(base.trim_end_matches('/'));
    url.push('/');
    url.push_str(collection);
    url.push('/');
    push_segment(&mut url, name);
    url.push('/');
    push_segment(&mut url, version);
    url
}

fn push_segment(url: &mut String, segment: &str) {
    for byte in segment.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_' | b'.' | b'~') {
            url.push(byte as char);
        } else {
            url.push_str(&format!("%{byte:02X}"));
        }
    }
}

/// Decodes a secret answer or Key Vault's error JSON.
pub fn decode_secret(vault: &str, status: u16, body: &[u8]) -> Result<SecretBundle, KeyVaultError> {
    if !(200..300).contains(&status) {
        return Err(decode_error(vault, status, body));
    }
    let malformed = |reason: String| KeyVaultError::Malformed {
        vault: vault.to_owned(),
        status,
        reason,
    };
    let answer: SecretAnswer = serde_json::from_slice(body).map_err(|e| {
        malformed(format!(
            "invalid secret JSON at line {} column {}",
            e.line(),
            e.column()
        ))
    })?;
    let value = answer
        .value
        .ok_or_else(|| malformed("secret value is nil".into()))?;
    let id = answer
        .id
        .ok_or_else(|| malformed("secret id is nil".into()))?;
    Ok(SecretBundle {
        value: SecretString::from(value),
        id,
        content_type: answer.content_type,
        kid: answer.kid,
    })
}

fn decode_error(vault: &str, status: u16, body: &[u8]) -> KeyVaultError {
    match serde_json::from_slice::<ErrorAnswer>(body) {
        Ok(ErrorAnswer {
            error: Some(ErrorBody { code, message }),
        }) => KeyVaultError::Service {
            vault: vault.to_owned(),
            status,
            code: code.unwrap_or_else(|| "Unknown".into()),
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
    fn url_encodes_segments_and_keeps_empty_version() {
        assert_eq!(
            object_url("https://kv.vault.azure.net/", "secrets", "a", ""),
            "https://kv.vault.azure.net/secrets/a/"
        );
        assert_eq!(
            object_url("https://kv.vault.azure.net/", "secrets", "a/../b?x", "v1"),
            "https://kv.vault.azure.net/secrets/a%2F..%2Fb%3Fx/v1"
        );
    }

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
