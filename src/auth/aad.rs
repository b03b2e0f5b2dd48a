//! Entra ID (Azure AD) v2 token endpoint: the client-credentials grant with a
//! client assertion (workload identity, identity binding) or a client secret
//! (service principal), and the decoding of its answers (IMDS uses the same
//! error shape).
//!
//! Error descriptions are kept (they carry the AADSTS code users search for)
//! but bounded and flattened to one line; request bodies never appear.
//!
//! Requests go through the retry layer (as azidentity's pipeline retries
//! them): 408, 429, 5xx and transport failures are tried again, at most
//! [`TOKEN_POLICY`]'s tries and within the mount's budget; `Retry-After`
//! is honoured for that request (Entra ID throttles per application and
//! tenant, so there is no node-wide gate as for a vault).

use std::borrow::Cow;
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use thiserror::Error;

use crate::budget::Context;
use crate::http::{Endpoint, Http, Retry, RetryError, SendError};
use crate::metrics::Service;
use crate::retry::Policy;

/// Retries of a token request: four tries, like azidentity's default of
/// three retries.
pub(super) const TOKEN_POLICY: Policy = Policy {
    max_attempts: 4,
    base: Duration::from_millis(200),
    max: Duration::from_secs(30),
};

const ASSERTION_TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// Longest AAD error description kept in a message.
const MAX_DESCRIPTION: usize = 600;

/// How the client proves itself.
#[derive(Clone)]
pub(super) enum Credential {
    /// A signed JWT (the pod's projected service-account token).
    Assertion(SecretString),
    /// An application client secret.
    Secret(SecretString),
}

/// One token request (owned: it runs as its own task, see `cache`).
#[derive(Clone)]
pub(super) struct TokenRequest {
    pub tenant_id: String,
    pub client_id: String,
    pub scope: String,
    pub credential: Credential,
}

/// `{authority}/{tenant}/oauth2/v2.0/token`; the authority is e.g.
/// `https://login.microsoftonline.com/` (with or without slash).
pub(super) fn endpoint(authority_host: &str, tenant_id: &str) -> String {
    format!(
        "{}/{tenant_id}/oauth2/v2.0/token",
        authority_host.trim_end_matches('/')
    )
}

/// A token and its lifetime (`Debug` redacts the token).
#[derive(Debug)]
pub struct Token {
    pub secret: SecretString,
    pub expires_in: Option<Duration>,
}

/// An error answer from Entra ID (or IMDS, which uses the same shape).
#[derive(Clone, Debug, Error)]
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
    expires_in: Option<serde_json::Value>,
}

#[derive(Deserialize)]
struct ErrorAnswer {
    error: Option<String>,
    error_description: Option<String>,
    /// `[70021]`; read leniently, it only feeds the metrics code.
    error_codes: Option<serde_json::Value>,
}

/// Posts the form to `url` and returns the access token. `endpoint` names
/// the target in errors (the URL, or how the token proxy is reached); `cx`
/// carries the deadline of the mount that asked (the request runs as its
/// own task, outside the mount).
pub(super) async fn request_token(
    cx: &Context,
    http: &Http,
    url: &str,
    endpoint: &str,
    request: &TokenRequest,
) -> Result<Token, Failure> {
    let mut form: Vec<(&str, &str)> = vec![
        ("grant_type", "client_credentials"),
        ("client_id", &request.client_id),
        ("scope", &request.scope),
    ];
    match &request.credential {
        Credential::Assertion(jwt) => {
            form.push(("client_assertion_type", ASSERTION_TYPE));
            form.push(("client_assertion", jwt.expose_secret()));
        }
        Credential::Secret(secret) => {
            form.push(("client_secret", secret.expose_secret()));
        }
    }
    let build = || {
        http.request(reqwest::Method::POST, url)
            .header(reqwest::header::ACCEPT, "application/json")
            .form(&form)
    };
    let retry = Retry {
        policy: TOKEN_POLICY,
        gate: None,
    };
    let endpoint = Endpoint {
        service: Service::Aad,
        url: endpoint,
    };
    let response = http
        .send_retrying(cx, build, endpoint, retry)
        .await
        .map_err(|e| match e {
            RetryError::Send(source) => Failure::Send(source),
            // Only a vault's gate refuses waits; there is none here.
            RetryError::Busy { .. } => Failure::Aad(AadError::Rejected {
                status: 429,
                error: "throttled".into(),
                description: "Entra ID asked to wait longer than the mount's budget".into(),
                aadsts: None,
            }),
        })?;
    let mut body = response.body;
    if !response.status.is_success() {
        let credential = match &request.credential {
            Credential::Assertion(jwt) => jwt.expose_secret(),
            Credential::Secret(secret) => secret.expose_secret(),
        };
        crate::http::scrub_credentials(&mut body, &[credential]);
    }
    decode(response.status.as_u16(), &body).map_err(Failure::Aad)
}

/// Seconds as a JSON number or a string of digits (IMDS and NMI send
/// strings, Entra ID's v2 endpoint numbers).
pub(super) fn seconds(value: Option<&serde_json::Value>) -> Option<u64> {
    match value? {
        serde_json::Value::Number(n) => n.as_u64(),
        serde_json::Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// Decodes a token endpoint answer.
pub fn decode(status: u16, body: &[u8]) -> Result<Token, AadError> {
    if (200..300).contains(&status) {
        let answer: TokenAnswer =
            serde_json::from_slice(body).map_err(|e| AadError::Malformed {
                status,
                reason: format!("invalid token JSON: {}", json_reason(&e)),
            })?;
        let expires_in = seconds(answer.expires_in.as_ref()).map(Duration::from_secs);
        return match answer.access_token {
            Some(token) if !token.is_empty() => Ok(Token {
                secret: SecretString::from(token),
                expires_in,
            }),
            _ => Err(AadError::Malformed {
                status,
                reason: "no access_token in the answer".into(),
            }),
        };
    }
    decode_error(status, body)
}

/// Decodes an OAuth error answer (`error`, `error_description`).
pub(super) fn decode_error<T>(status: u16, body: &[u8]) -> Result<T, AadError> {
    match serde_json::from_slice::<ErrorAnswer>(body) {
        Ok(answer) => Err(AadError::Rejected {
            status,
            error: one_line(answer.error.as_deref().unwrap_or("error")),
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

/// A JSON error's position and class, never the input text (a token
/// answer that fails to parse may hold a token).
pub(super) fn json_reason(e: &serde_json::Error) -> String {
    format!(
        "{:?} error at line {} column {}",
        e.classify(),
        e.line(),
        e.column()
    )
}

/// Flattens whitespace and bounds the length of a description.
pub(super) fn one_line(text: &str) -> String {
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
            token.map(|t| (t.secret.expose_secret().to_owned(), t.expires_in)),
            Ok(("abc".into(), Some(Duration::from_secs(3599))))
        );
        let token = decode(200, br#"{"expires_in":"86399","access_token":"x"}"#).unwrap();
        assert_eq!(token.expires_in, Some(Duration::from_secs(86399)));
    }

    #[test]
    fn invalid_json_errors_do_not_quote_the_body() {
        let err = decode(200, br#"{"access_token": 5, "x": "eyJsecret"}"#)
            .err()
            .unwrap()
            .to_string();
        assert!(!err.contains("eyJsecret"), "{err}");
        let err = decode(200, br#"{"access_token":"eyJsecret"#)
            .err()
            .unwrap()
            .to_string();
        assert!(!err.contains("eyJsecret"), "{err}");
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
        assert_eq!(
            endpoint("https://login.microsoftonline.com/", "t1"),
            "https://login.microsoftonline.com/t1/oauth2/v2.0/token"
        );
        assert_eq!(
            endpoint("https://login.chinacloudapi.cn", "t1"),
            "https://login.chinacloudapi.cn/t1/oauth2/v2.0/token"
        );
    }
}
