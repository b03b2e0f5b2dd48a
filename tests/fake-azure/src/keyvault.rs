//! Key Vault's data plane: the checks every request passes (faults, vault,
//! `api-version`, bearer token, access) and routing to object collections.
//!
//! Collections live in their own files: `keyvault/secrets.rs`, and
//! `keyvault/objects.rs` for keys and certificates.
//! Responses use Key Vault's `{"error":{"code","message"}}` shape, and every
//! 401 carries the `WWW-Authenticate` challenge the SDKs' challenge policy
//! parses (authority from the request host's cloud, the vault's tenant).

use serde_json::{Value, json};

use crate::cloud::Cloud;
use crate::counters::op;
use crate::fake::Shared;
use crate::faults::Injected;
use crate::ids;
use crate::state::{Kind, State, Vault};
use crate::wire::{self, Req, Resp};

mod objects;
mod secrets;

/// Region reported in headers and 403 messages.
const REGION: &str = "eastus";

/// A Key Vault error before it is rendered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct KvError {
    pub status: u16,
    pub code: &'static str,
    pub message: String,
    pub inner: Option<&'static str>,
    /// For 401: the tenant named in the challenge.
    pub challenge_tenant: Option<String>,
    pub retry_after_secs: Option<u64>,
}

/// What a request asks of the vault.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum KvRoute<'a> {
    Secrets(secrets::Route<'a>),
    KeysOrCertificates(objects::Route<'a>),
    /// A path or method the fake does not implement: writes, listing all
    /// objects of a collection.
    Unsupported,
}

// === impl KvRoute ===

impl<'a> KvRoute<'a> {
    pub(crate) fn parse(method: &hyper::Method, segs: &[&'a str]) -> Self {
        if method != hyper::Method::GET {
            return Self::Unsupported;
        }
        match segs {
            ["secrets", rest @ ..] => {
                secrets::Route::parse(rest).map_or(Self::Unsupported, Self::Secrets)
            }
            ["keys", rest @ ..] => objects::Route::parse(Kind::Keys, rest)
                .map_or(Self::Unsupported, Self::KeysOrCertificates),
            ["certificates", rest @ ..] => objects::Route::parse(Kind::Certificates, rest)
                .map_or(Self::Unsupported, Self::KeysOrCertificates),
            _ => Self::Unsupported,
        }
    }

    /// The counter label of this operation.
    pub(crate) fn op(&self) -> &'static str {
        match self {
            Self::Secrets(r) => r.op(),
            Self::KeysOrCertificates(r) => r.op(),
            Self::Unsupported => op::UNSUPPORTED,
        }
    }

    /// The access-policy permission this operation needs, e.g. `secrets get`.
    fn permission(&self) -> &'static str {
        match self {
            Self::Secrets(r) => r.permission(),
            Self::KeysOrCertificates(r) => r.permission(),
            Self::Unsupported => "unknown",
        }
    }
}

/// Handles one request to `vault_name` on a vault host of `cloud`.
pub(crate) fn handle(
    shared: &Shared,
    cloud: &'static Cloud,
    vault_name: &str,
    req: &Req,
    fault: Option<Injected>,
) -> Resp {
    let (segs, _) = req.segments();
    let route = KvRoute::parse(&req.method, &segs);
    let result = match fault {
        Some(Injected::EchoCredential) => Err(KvError::new(
            401,
            "Unauthorized",
            format!(
                "AKV10032: Invalid issuer in {}.",
                req.header("authorization").unwrap_or_default()
            ),
        )),
        Some(f) => Err(fault_error(f)),
        None => respond(&shared.state(), cloud, vault_name, req, &route),
    };
    let mut resp = match result {
        Ok(body) => wire::json(200, &body),
        Err(e) => e.render(cloud),
    };
    shared
        .counters()
        .keyvault_request(vault_name, route.op(), resp.status().as_u16());
    let request_id = shared.state().new_uuid();
    wire::set_header(&mut resp, "cache-control", "no-cache");
    wire::set_header(&mut resp, "pragma", "no-cache");
    wire::set_header(&mut resp, "expires", "-1");
    wire::set_header(&mut resp, "x-ms-request-id", &request_id);
    wire::set_header(&mut resp, "x-ms-keyvault-region", REGION);
    wire::set_header(&mut resp, "x-ms-keyvault-service-version", "1.9.0.0");
    if let Some(id) = req.header("x-ms-client-request-id") {
        wire::set_header(&mut resp, "x-ms-client-request-id", id);
    }
    resp
}

/// The checks in the order Key Vault applies them, then the operation.
fn respond(
    state: &State,
    cloud: &Cloud,
    vault_name: &str,
    req: &Req,
    route: &KvRoute<'_>,
) -> Result<Value, KvError> {
    let vault = state.vault(vault_name).ok_or_else(|| {
        KvError::new(404, "VaultNotFound", format!(
            "fake-azure: no vault named '{vault_name}' (a real client would fail to resolve {})",
            req.host
        ))
    })?;
    if req.query("api-version").is_none_or(str::is_empty) {
        return Err(KvError::bad_parameter(
            "The request is missing the required 'api-version' query parameter.".to_string(),
        ));
    }
    let client_id = authorize(state, cloud, vault, req)?;
    if *route == KvRoute::Unsupported {
        return Err(KvError::new(
            405,
            "NotSupported",
            format!("fake-azure does not implement {} {}", req.method, req.path),
        ));
    }
    check_access(state, vault, &client_id, route.permission())?;
    let base = format!("https://{}", req.host);
    match route {
        KvRoute::Secrets(r) => r.serve(vault, &base, req, state.page_size()),
        KvRoute::KeysOrCertificates(r) => r.serve(vault, &base, req, state.page_size()),
        KvRoute::Unsupported => Err(KvError::new(405, "NotSupported", "unsupported".to_string())),
    }
}

/// Validates the bearer token; returns the caller's client id.
fn authorize(state: &State, cloud: &Cloud, vault: &Vault, req: &Req) -> Result<String, KvError> {
    let unauthorized = |message: String| KvError {
        challenge_tenant: Some(vault.tenant_id.clone()),
        ..KvError::new(401, "Unauthorized", message)
    };
    let bearer = req
        .header("authorization")
        .and_then(|h| h.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, token)| token.trim());
    let Some(token) = bearer.filter(|t| !t.is_empty()) else {
        return Err(unauthorized(
            "AKV10000: Request is missing a Bearer or PoP token.".to_string(),
        ));
    };
    let Some(grant) = state.token(token) else {
        return Err(unauthorized(
            "AKV10001: The token could not be validated: it was not issued by this Entra ID."
                .to_string(),
        ));
    };
    if grant.expires_at <= ids::now_unix() {
        return Err(unauthorized(
            "[TokenExpired] Error validating token: 'S2S12086'.".to_string(),
        ));
    }
    if grant.resource != cloud.vault_resource {
        return Err(unauthorized(format!(
            "AKV10022: Invalid audience. Expected {}, found: {}.",
            cloud.vault_resource, grant.resource
        )));
    }
    if grant.tenant_id != vault.tenant_id {
        return Err(unauthorized(format!(
            "AKV10032: Invalid issuer. Expected one of https://sts.windows.net/{t}/, \
             https://{login}/{t}/v2.0, found https://sts.windows.net/{found}/.",
            t = vault.tenant_id,
            login = cloud.login_host,
            found = grant.tenant_id
        )));
    }
    Ok(grant.client_id.clone())
}

fn check_access(
    state: &State,
    vault: &Vault,
    client_id: &str,
    permission: &str,
) -> Result<(), KvError> {
    if vault.allows(client_id) {
        return Ok(());
    }
    let oid = state
        .app(client_id)
        .map_or("00000000-0000-0000-0000-000000000000", |a| &a.object_id);
    Err(KvError {
        inner: Some("AccessDenied"),
        ..KvError::new(
            403,
            "Forbidden",
            format!(
                "The user, group or application 'appid={client_id};oid={oid};iss=https://sts.windows.net/{}/' \
             does not have {permission} permission on key vault '{};location={REGION}'. For help \
             resolving this issue, please see https://go.microsoft.com/fwlink/?linkid=2125287",
                vault.tenant_id, vault.name
            ),
        )
    })
}

fn fault_error(fault: Injected) -> KvError {
    match fault {
        Injected::Throttled { retry_after_secs } => KvError {
            retry_after_secs,
            ..KvError::new(
                429,
                "Throttled",
                "Operations per second rate limit reached. Retry \
                after the time given in the Retry-After header."
                    .to_string(),
            )
        },
        Injected::EchoCredential => KvError::new(401, "Unauthorized", "echo".to_string()),
        Injected::ServerError(status) => {
            let code = match status {
                500 => "InternalServerError",
                503 => "ServiceUnavailable",
                _ => "ServerError",
            };
            KvError::new(
                status,
                code,
                format!("fake-azure injected a {status} fault."),
            )
        }
    }
}

// === impl KvError ===

impl KvError {
    pub(crate) fn new(status: u16, code: &'static str, message: String) -> Self {
        Self {
            status,
            code,
            message,
            inner: None,
            challenge_tenant: None,
            retry_after_secs: None,
        }
    }

    pub(crate) fn bad_parameter(message: String) -> Self {
        Self::new(400, "BadParameter", message)
    }

    /// The JSON body.
    pub(crate) fn body(&self) -> Value {
        let mut error = json!({"code": self.code, "message": self.message});
        if let (Some(inner), Some(obj)) = (self.inner, error.as_object_mut()) {
            obj.insert("innererror".to_string(), json!({"code": inner}));
        }
        json!({"error": error})
    }

    fn render(&self, cloud: &Cloud) -> Resp {
        let mut resp = wire::json(self.status, &self.body());
        if let Some(tenant) = &self.challenge_tenant {
            let challenge = format!(
                "Bearer authorization=\"https://{}/{tenant}\", resource=\"{}\"",
                cloud.login_host, cloud.vault_resource
            );
            wire::set_header(&mut resp, "www-authenticate", &challenge);
        }
        if let Some(secs) = self.retry_after_secs {
            wire::set_header(&mut resp, "retry-after", &secs.to_string());
        }
        resp
    }
}

#[cfg(test)]
mod tests;
