//! Entra ID (Azure AD) v2 token endpoint: the client-credentials grant with a
//! client assertion (workload identity) or a client secret (service
//! principal), and the decoding of its answers.
//!
//! Error descriptions are kept (they carry the AADSTS code users search for)
//! but bounded and flattened to one line; request bodies never appear.

use std::borrow::Cow;

use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use thiserror::Error;

use crate::http::{Http, SendError};

const ASSERTION_TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// Longest AAD error description kept in a message.
const MAX_DESCRIPTION: usize = 600;

/// How the client proves itself.
pub(super) enum Credential<'a> {
    /// A signed JWT (the pod's projected service-account token).
    Assertion(&'a SecretString),
    /// An application client secret.
    Secret(&'a SecretString),
}

/// One token request.
pub(super) struct TokenRequest<'a> {
    /// e.g. `https://login.microsoftonline.com/` (with or without slash).
    pub authority_host: &'a str,
    pub tenant_id: &'a str,
    pub client_id: &'a str,
    pub scope: &'a str,
    pub credential: Credential<'a>,
}

impl TokenRequest<'_> {
    /// `{authority}/{tenant}/oauth2/v2.0/token`.
    pub(super) fn endpoint(&self) -> String {
        format!(
            "{}/{}/oauth2/v2.0/token",
            self.authority_host.trim_end_matches('/'),
            self.tenant_id
        )
    }
}

/// An error answer from Entra ID.
#[derive(Debug, Error)]
pub enum AadError {
    #[error("{status} {error}: {description}")]
    Rejected {
        status: u16,
        error: String,
        description: String,
        /// The first of `error_codes` (the `AADSTS` number), if any.
        aadsts: Option<u32>,
    },
    #[error("unexpected answer (HTTP {status}): {reason}")]
    Malformed { status: u16, reason: String },
}

impl AadError {
    /// A short, bounded code: `Throttled` for 429, `AADSTS<n>` when Entra ID
    /// sent `error_codes`, else its OAuth `error` (`invalid_client`, …).
    pub fn code(&self) -> Cow<'static, str> {
        match self {
            Self::Rejected { status: 429, .. } => Cow::Borrowed("Throttled"),
            Self::Rejected {
                aadsts: Some(n), ..
            } => Cow::Owned(format!("AADSTS{n}")),
            Self::Rejected { error, .. } => Cow::Owned(error.clone()),
            Self::Malformed { .. } => Cow::Borrowed("MalformedResponse"),
        }
    }
}

pub(super) enum Failure {
    Aad(AadError),
    Send(SendError),
}

#[derive(Deserialize)]
struct TokenAnswer {
    access_token: Option<String>,
}

#[derive(Deserialize)]
struct ErrorAnswer {
    error: Option<String>,
    error_description: Option<String>,
    /// `[70021]`; read leniently, it only feeds the metrics code.
    error_codes: Option<serde_json::Value>,
}

/// Posts the form and returns the access token.
pub(super) async fn request_token(
    http: &Http,
    request: &TokenRequest<'_>,
) -> Result<SecretString, Failure> {
    let endpoint = request.endpoint();
    let mut form: Vec<(&str, &str)> = vec![
        ("grant_type", "client_credentials"),
        ("client_id", request.client_id),
        ("scope", request.scope),
    ];
    match request.credential {
        Credential::Assertion(jwt) => {
            form.push(("client_assertion_type", ASSERTION_TYPE));
            form.push(("client_assertion", jwt.expose_secret()));
        }
        Credential::Secret(secret) => {
            form.push(("client_secret", secret.expose_secret()));
        }
    }
    let builder = http
        .request(reqwest::Method::POST, &endpoint)
        .header(reqwest::header::ACCEPT, "application/json")
        .form(&form);
    let response = http.send(builder, &endpoint).await.map_err(Failure::Send)?;
    decode(response.status.as_u16(), &response.body).map_err(Failure::Aad)
}

/// Decodes a token endpoint answer.
pub(super) fn decode(status: u16, body: &[u8]) -> Result<SecretString, AadError> {
    if (200..300).contains(&status) {
        let answer: TokenAnswer =
            serde_json::from_slice(body).map_err(|e| AadError::Malformed {
                status,
                reason: format!("invalid token JSON: {e}"),
            })?;
        return match answer.access_token {
            Some(token) if !token.is_empty() => Ok(SecretString::from(token)),
            _ => Err(AadError::Malformed {
                status,
                reason: "no access_token in the answer".into(),
            }),
        };
    }
    match serde_json::from_slice::<ErrorAnswer>(body) {
        Ok(answer) => Err(AadError::Rejected {
            status,
            error: answer.error.unwrap_or_else(|| "error".into()),
            description: one_line(answer.error_description.as_deref().unwrap_or("")),
            aadsts: answer
                .error_codes
                .as_ref()
                .and_then(|codes| codes.get(0)?.as_u64())
                .and_then(|n| u32::try_from(n).ok()),
        }),
        Err(_) => Err(AadError::Malformed {
            status,
            reason: "the body is not Entra ID's error JSON".into(),
        }),
    }
}

/// Flattens whitespace and bounds the length of a description.
fn one_line(text: &str) -> String {
    let mut out = String::with_capacity(text.len().min(MAX_DESCRIPTION));
    for word in text.split_whitespace() {
        if out.len() + word.len() + 1 > MAX_DESCRIPTION {
            out.push_str(" …");
            break;
        }
        if !out.is_empty() {
            out.push(' ');
        }
        out.push_str(word);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_answer() {
        let token = decode(
            200,
            br#"{"token_type":"Bearer","expires_in":3599,"access_token":"abc"}"#,
        )
        .map_err(|e| e.to_string());
        assert_eq!(
            token.map(|t| t.expose_secret().to_owned()),
            Ok("abc".into())
        );
    }

    #[test]
    fn aadsts_error_is_kept_on_one_line() {
        let body = br#"{"error":"invalid_grant","error_description":"AADSTS70021: No matching federated identity record found for presented assertion.\r\nTrace ID: 1","error_codes":[70021]}"#;
        let err = decode(400, body).unwrap_err().to_string();
        assert_eq!(
            err,
            "400 invalid_grant: AADSTS70021: No matching federated identity record found for presented assertion. Trace ID: 1"
        );
    }

    #[test]
    fn codes_come_from_error_codes_or_status() {
        let body = br#"{"error":"invalid_grant","error_description":"AADSTS70021: x","error_codes":[70021]}"#;
        assert_eq!(decode(400, body).unwrap_err().code(), "AADSTS70021");
        let body = br#"{"error":"invalid_client","error_description":"no codes"}"#;
        assert_eq!(decode(401, body).unwrap_err().code(), "invalid_client");
        let body = br#"{"error":"temporarily_unavailable","error_codes":[50196]}"#;
        assert_eq!(decode(429, body).unwrap_err().code(), "Throttled");
        assert_eq!(
            decode(500, b"<html>").unwrap_err().code(),
            "MalformedResponse"
        );
    }

    #[test]
    fn garbage_is_malformed_not_panic() {
        assert!(matches!(
            decode(200, b"<html>"),
            Err(AadError::Malformed { .. })
        ));
        assert!(matches!(
            decode(500, b"<html>"),
            Err(AadError::Malformed { .. })
        ));
        assert!(matches!(
            decode(200, b"{}"),
            Err(AadError::Malformed { .. })
        ));
    }

    #[test]
    fn long_descriptions_are_bounded() {
        let long = "word ".repeat(1000);
        assert!(one_line(&long).len() <= MAX_DESCRIPTION + 4);
    }

    #[test]
    fn endpoint_joins_authority_and_tenant() {
        let secret = SecretString::from("s".to_owned());
        let request = TokenRequest {
            authority_host: "https://login.microsoftonline.com/",
            tenant_id: "t1",
            client_id: "c",
            scope: "https://vault.azure.net/.default",
            credential: Credential::Secret(&secret),
        };
        assert_eq!(
            request.endpoint(),
            "https://login.microsoftonline.com/t1/oauth2/v2.0/token"
        );
    }
}
