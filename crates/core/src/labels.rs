//! Label sets of every metric, each value bounded: fixed words from small
//! enums, error codes filtered by [`ErrorCode`], object names filtered to
//! Key Vault's name alphabet. Nothing here can carry free text, a secret or
//! an identity.

use std::borrow::Cow;

use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue, LabelValueEncoder};

use crate::object::ObjectType;

/// Longest error code kept; longer ones become [`ErrorCode::OTHER`].
const MAX_CODE_LEN: usize = 48;
/// Key Vault object names are 1–127 characters of `[0-9A-Za-z-]`.
const MAX_OBJECT_NAME_LEN: usize = 127;

/// A short error code for the `error` and `grpc_message` labels and the
/// `result` of token requests: `""` for success, otherwise a word such as
/// `SecretNotFound`, `Forbidden`, `Throttled`, `AADSTS70021`, `Timeout`,
/// `InvalidParameters` or `Internal`. Anything outside `[A-Za-z0-9_.-]`
/// or longer than 48 characters becomes `Other`, so a code can never carry
/// a message, a name or a value.
#[derive(Clone, Debug, Default, Hash, PartialEq, Eq)]
pub struct ErrorCode(Cow<'static, str>);

impl ErrorCode {
    /// The code of a code-less failure (a bug, or a value we refused).
    pub const OTHER: &'static str = "Other";

    /// Success: the empty label value, as upstream.
    pub fn none() -> Self {
        Self(Cow::Borrowed(""))
    }

    /// A bounded code from any code text.
    pub fn new(code: impl Into<Cow<'static, str>>) -> Self {
        let code = code.into();
        let valid = !code.is_empty()
            && code.len() <= MAX_CODE_LEN
            && code
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'));
        if valid {
            Self(code)
        } else {
            Self(Cow::Borrowed(Self::OTHER))
        }
    }

    /// `None` → success, `Some(code)` → that code, bounded.
    pub fn of(code: Option<Cow<'static, str>>) -> Self {
        code.map_or_else(Self::none, Self::new)
    }

    /// The code as a label value.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Lets a code ride on a gRPC status (as its source) to the gRPC layer.
impl std::error::Error for ErrorCode {}

impl EncodeLabelValue for ErrorCode {
    fn encode(&self, encoder: &mut LabelValueEncoder<'_>) -> Result<(), std::fmt::Error> {
        EncodeLabelValue::encode(&self.0.as_ref(), encoder)
    }
}

/// The `object_name` label: the name if it is a valid Key Vault object
/// name, else `invalid`. Its cardinality is the number of distinct objects
/// mounted (kept for upstream dashboards; see the README).
pub fn object_name(name: &str) -> String {
    let valid = !name.is_empty()
        && name.len() <= MAX_OBJECT_NAME_LEN
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-');
    if valid {
        name.to_owned()
    } else {
        "invalid".to_owned()
    }
}

/// `keyvault_request` (upstream's labels; `os_type`, `provider` and
/// `service_name` are constant labels of the registry).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KeyVaultRequest {
    pub object_type: &'static str,
    pub object_name: String,
    pub error: ErrorCode,
}

/// `grpc_request` (upstream's labels, minus the constant ones).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct GrpcRequest {
    pub grpc_method: &'static str,
    pub grpc_code: &'static str,
    pub grpc_message: ErrorCode,
}

/// `akv_token_requests_total`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TokenRequest {
    pub mode: &'static str,
    /// `success` or an error code.
    pub result: ErrorCode,
}

/// `akv_token_cache_lookups_total`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TokenCache {
    pub mode: &'static str,
    /// `hit` or `miss`.
    pub result: &'static str,
}

/// `akv_http_requests_total`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct HttpRequest {
    pub service: &'static str,
    /// `2xx`, `3xx`, `4xx`, `5xx`, or `error` when no response came.
    pub status_class: &'static str,
}

/// `akv_http_throttled_total`, `akv_http_retries_total`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct HttpService {
    pub service: &'static str,
}

/// `akv_optional_objects_missing_total`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ObjectTypeLabel {
    pub object_type: &'static str,
}

/// Which Azure service an outbound request went to, from its URL.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Service {
    KeyVault,
    Aad,
    Imds,
    Other,
}

// === impl Service ===

impl Service {
    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::KeyVault => "keyvault",
            Self::Aad => "aad",
            Self::Imds => "imds",
            Self::Other => "other",
        }
    }
}

/// `2xx` … `5xx`, or `error` for no response.
pub fn status_class(status: Option<u16>) -> &'static str {
    match status {
        Some(100..=199) => "1xx",
        Some(200..=299) => "2xx",
        Some(300..=399) => "3xx",
        Some(400..=499) => "4xx",
        Some(500..=599) => "5xx",
        Some(_) => "other",
        None => "error",
    }
}

/// The `object_type` label value.
pub fn object_type(object_type: ObjectType) -> &'static str {
    object_type.as_str()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_codes_are_bounded() {
        assert_eq!(ErrorCode::new("SecretNotFound").as_str(), "SecretNotFound");
        assert_eq!(ErrorCode::new("AADSTS70021").as_str(), "AADSTS70021");
        assert_eq!(ErrorCode::new("invalid_client").as_str(), "invalid_client");
        assert_eq!(ErrorCode::new("a secret value").as_str(), "Other");
        assert_eq!(ErrorCode::new("x".repeat(49)).as_str(), "Other");
        assert_eq!(ErrorCode::new("").as_str(), "Other");
        assert_eq!(ErrorCode::new("quote\"").as_str(), "Other");
        assert_eq!(ErrorCode::of(None).as_str(), "");
    }

    #[test]
    fn object_names_are_bounded() {
        assert_eq!(object_name("MySecretPassword"), "MySecretPassword");
        assert_eq!(object_name("tls-cert-01"), "tls-cert-01");
        assert_eq!(object_name("../etc"), "invalid");
        assert_eq!(object_name(&"a".repeat(128)), "invalid");
        assert_eq!(object_name(""), "invalid");
    }

    #[test]
    fn status_classes() {
        assert_eq!(status_class(Some(200)), "2xx");
        assert_eq!(status_class(Some(429)), "4xx");
        assert_eq!(status_class(Some(503)), "5xx");
        assert_eq!(status_class(None), "error");
    }
}
