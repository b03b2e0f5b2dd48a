//! Pod identity (aad-pod-identity, deprecated, Linux): the node's NMI hands
//! out a token for the pod named in the `podname` / `podns` headers,
//! `GET {nmi}/host/token/?resource=<KeyVaultEndpoint>` (the resource is sent
//! as is, not URL-encoded, like upstream).
//!
//! Error texts are upstream's (`nmi response failed with status code: …`,
//! `nmi did not return expected values in response: token and clientid`);
//! the response body quoted in the first is bounded and flattened to one
//! line. The NMI base URL is `--nmi-endpoint` (default
//! `http://localhost:2579`); requests never go through a proxy.

use std::time::Duration;

use secrecy::SecretString;
use serde::Deserialize;
use thiserror::Error;

use super::aad;
use super::{AccessToken, Cause};
use crate::http::Http;

/// aad-pod-identity's NMI on the node (the provider runs with host network).
pub const DEFAULT_ENDPOINT: &str = "http://localhost:2579";

/// Longest NMI error body quoted in an error.
const MAX_BODY: usize = 300;

/// One NMI token request.
#[derive(Clone, Debug)]
pub(super) struct NmiRequest {
    pub base: String,
    /// The Key Vault resource, e.g. `https://vault.azure.net`.
    pub resource: String,
    pub pod_name: String,
    pub pod_namespace: String,
}

/// What went wrong with NMI's answer (upstream texts).
#[derive(Clone, Debug, Error, PartialEq, Eq)]
pub enum NmiError {
    #[error("nmi response failed with status code: {status}, response body: {body}")]
    Status { status: u16, body: String },
    #[error("nmi response is not the expected JSON: {0}")]
    Json(String),
    #[error("nmi did not return expected values in response: token and clientid")]
    Incomplete,
}

#[derive(Deserialize)]
struct Answer {
    token: Option<TokenAnswer>,
    clientid: Option<String>,
}

#[derive(Deserialize)]
struct TokenAnswer {
    access_token: Option<String>,
    expires_in: Option<serde_json::Value>,
    expires_on: Option<serde_json::Value>,
}

// === impl NmiRequest ===

impl NmiRequest {
    /// `{base}/host/token/`, for errors.
    pub(super) fn endpoint(&self) -> String {
        format!("{}/host/token/", self.base.trim_end_matches('/'))
    }

    pub(super) async fn fetch(
        &self,
        http: &Http,
        tenant_id: &str,
    ) -> Result<(AccessToken, Option<Duration>), Cause> {
        let endpoint = self.endpoint();
        let url = format!("{endpoint}?resource={}", self.resource);
        let builder = http
            .request(reqwest::Method::GET, &url)
            .header("podns", &self.pod_namespace)
            .header("podname", &self.pod_name);
        let response = http.send(builder, &endpoint).await.map_err(Cause::Send)?;
        let now = std::time::SystemTime::now();
        let (token, client_id, lifetime) = decode(response.status.as_u16(), &response.body, now)
            .map_err(|source| Cause::Nmi {
                endpoint: endpoint.clone(),
                source,
            })?;
        Ok((AccessToken::new(token, tenant_id, &client_id), lifetime))
    }
}

/// Decodes NMI's answer: token, client id, lifetime (from `expires_in`, or
/// `expires_on` relative to `now`).
pub fn decode(
    status: u16,
    body: &[u8],
    now: std::time::SystemTime,
) -> Result<(SecretString, String, Option<Duration>), NmiError> {
    if status != 200 {
        let text = String::from_utf8_lossy(body);
        let mut body = aad::one_line(&text);
        if body.len() > MAX_BODY {
            let cut = (0..=MAX_BODY)
                .rev()
                .find(|&i| body.is_char_boundary(i))
                .unwrap_or(0);
            body.truncate(cut);
            body.push_str(" …");
        }
        return Err(NmiError::Status { status, body });
    }
    let answer: Answer =
        serde_json::from_slice(body).map_err(|e| NmiError::Json(aad::json_reason(&e)))?;
    let token = answer.token.ok_or(NmiError::Incomplete)?;
    let (Some(access), Some(client_id)) = (token.access_token, answer.clientid) else {
        return Err(NmiError::Incomplete);
    };
    if access.is_empty() || client_id.is_empty() {
        return Err(NmiError::Incomplete);
    }
    let lifetime = aad::seconds(token.expires_in.as_ref())
        .map(Duration::from_secs)
        .or_else(|| {
            let on = aad::seconds(token.expires_on.as_ref())?;
            let on = std::time::UNIX_EPOCH + Duration::from_secs(on);
            on.duration_since(now).ok()
        });
    Ok((SecretString::from(access), client_id, lifetime))
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::ExposeSecret as _;
    use std::time::{SystemTime, UNIX_EPOCH};

    #[test]
    fn decodes_token_client_id_and_lifetime() {
        let now = UNIX_EPOCH + Duration::from_secs(1_000);
        let (token, client, lifetime) = decode(
            200,
            br#"{"token":{"access_token":"tok","expires_on":"4600","resource":"https://vault.azure.net"},"clientid":"cid"}"#,
            now,
        )
        .unwrap();
        assert_eq!(
            (token.expose_secret(), client.as_str(), lifetime),
            ("tok", "cid", Some(Duration::from_secs(3600)))
        );
    }

    #[test]
    fn upstream_error_texts() {
        let now = SystemTime::now();
        assert_eq!(
            decode(
                404,
                b"no AzureAssignedIdentity found for pod:ns/p in assigned state\n",
                now
            )
            .unwrap_err()
            .to_string(),
            "nmi response failed with status code: 404, response body: no AzureAssignedIdentity found for pod:ns/p in assigned state"
        );
        for body in [
            &br#"{"token":{"access_token":""},"clientid":"c"}"#[..],
            br#"{"token":{"access_token":"t"}}"#,
            br#"{"clientid":"c"}"#,
        ] {
            assert_eq!(
                decode(200, body, now).unwrap_err().to_string(),
                "nmi did not return expected values in response: token and clientid"
            );
        }
    }

    #[test]
    fn error_bodies_are_bounded_and_json_errors_quote_nothing() {
        let long = "x".repeat(5000);
        let err = decode(500, long.as_bytes(), SystemTime::now()).unwrap_err();
        assert!(err.to_string().len() < 420, "{err}");
        let err = decode(
            200,
            br#"{"token":{"access_token":"eyJsecret"#,
            SystemTime::now(),
        )
        .unwrap_err()
        .to_string();
        assert!(!err.contains("eyJsecret"), "{err}");
    }
}
