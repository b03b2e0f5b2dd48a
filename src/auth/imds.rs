//! VM managed identity: a token from the instance metadata service (IMDS),
//! `GET {base}/metadata/identity/oauth2/token?api-version=2018-02-01&resource=…[&client_id=…]`
//! with `Metadata: true`.
//!
//! The system-assigned identity is used when `userAssignedIdentityID` is
//! empty (then `client_id` is omitted, as upstream does since v1.8.1). The
//! base URL is `AZURE_POD_IDENTITY_AUTHORITY_HOST` when set at start-up (the
//! Azure SDKs' override), else `http://169.254.169.254`. Requests never go
//! through a proxy (see `Http::direct`).

use std::time::Duration;

use secrecy::SecretString;
use serde::Deserialize;

use super::aad::{self, AadError};
use super::{AccessToken, Cause};
use crate::http::Http;

/// The IMDS address on every Azure VM.
pub const DEFAULT_ENDPOINT: &str = "http://169.254.169.254";

/// The environment variable that overrides [`DEFAULT_ENDPOINT`].
pub const ENDPOINT_ENV: &str = "AZURE_POD_IDENTITY_AUTHORITY_HOST";

/// IMDS token API version (the one the Go SDK sends).
const API_VERSION: &str = "2018-02-01";

/// One IMDS token request.
#[derive(Clone, Debug)]
pub(super) struct ImdsRequest {
    /// Base URL, e.g. `http://169.254.169.254`.
    pub base: String,
    /// The Key Vault resource, e.g. `https://vault.azure.net`.
    pub resource: String,
    /// User-assigned identity client id; empty for system-assigned.
    pub client_id: String,
}

#[derive(Deserialize)]
struct Answer {
    access_token: Option<String>,
    client_id: Option<String>,
    expires_in: Option<serde_json::Value>,
}

// === impl ImdsRequest ===

impl ImdsRequest {
    /// The token endpoint (no query: it is not secret, but long).
    pub(super) fn endpoint(&self) -> String {
        format!(
            "{}/metadata/identity/oauth2/token",
            self.base.trim_end_matches('/')
        )
    }

    /// Asks IMDS for a token; the client id of the answer (the identity IMDS
    /// chose) goes into the token.
    pub(super) async fn fetch(
        &self,
        http: &Http,
        tenant_id: &str,
    ) -> Result<(AccessToken, Option<Duration>), Cause> {
        let endpoint = self.endpoint();
        let mut query = vec![("api-version", API_VERSION), ("resource", &self.resource)];
        if !self.client_id.is_empty() {
            query.push(("client_id", &self.client_id));
        }
        let builder = http
            .request(reqwest::Method::GET, &endpoint)
            .query(&query)
            .header("Metadata", "true");
        let response = http.send(builder, &endpoint).await.map_err(Cause::Send)?;
        let (token, client_id, lifetime) = decode(response.status.as_u16(), &response.body)
            .map_err(|source| Cause::Rejected {
                endpoint: endpoint.clone(),
                source,
            })?;
        let client_id = match client_id {
            Some(id) if !id.is_empty() => id,
            _ => self.client_id.clone(),
        };
        Ok((AccessToken::new(token, tenant_id, &client_id), lifetime))
    }
}

/// Decodes an IMDS answer: token, client id, lifetime.
pub fn decode(
    status: u16,
    body: &[u8],
) -> Result<(SecretString, Option<String>, Option<Duration>), AadError> {
    if !(200..300).contains(&status) {
        return aad::decode_error(status, body);
    }
    let answer: Answer = serde_json::from_slice(body).map_err(|e| AadError::Malformed {
        status,
        reason: format!("invalid token JSON: {}", aad::json_reason(&e)),
    })?;
    let lifetime = aad::seconds(answer.expires_in.as_ref()).map(Duration::from_secs);
    match answer.access_token {
        Some(token) if !token.is_empty() => {
            Ok((SecretString::from(token), answer.client_id, lifetime))
        }
        _ => Err(AadError::Malformed {
            status,
            reason: "no access_token in the answer".into(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::ExposeSecret as _;

    #[test]
    fn endpoint_is_base_plus_path() {
        let request = ImdsRequest {
            base: "http://127.0.0.1:8080/".into(),
            resource: "https://vault.azure.net".into(),
            client_id: String::new(),
        };
        assert_eq!(
            request.endpoint(),
            "http://127.0.0.1:8080/metadata/identity/oauth2/token"
        );
    }

    #[test]
    fn decodes_string_lifetimes_and_the_chosen_identity() {
        let (token, client_id, lifetime) = decode(
            200,
            br#"{"access_token":"tok","client_id":"abc","expires_in":"86399","expires_on":"1","resource":"https://vault.azure.net","token_type":"Bearer"}"#,
        )
        .unwrap();
        assert_eq!(token.expose_secret(), "tok");
        assert_eq!(client_id.as_deref(), Some("abc"));
        assert_eq!(lifetime, Some(Duration::from_secs(86399)));
    }

    #[test]
    fn imds_errors_keep_their_description() {
        let err = decode(
            400,
            br#"{"error":"invalid_request","error_description":"Identity not found"}"#,
        )
        .unwrap_err();
        assert_eq!(err.to_string(), "400 invalid_request: Identity not found");
        assert!(matches!(
            decode(200, br#"{"client_id":"x"}"#),
            Err(AadError::Malformed { .. })
        ));
    }
}
