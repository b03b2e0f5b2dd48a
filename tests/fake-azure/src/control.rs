//! Plain-HTTP routes on the listener: the `/_fake/...` control API for
//! out-of-process users (demo, e2e, benchmarks). The IMDS and NMI token
//! endpoints share the listener but live in `node.rs`.
//!
//! | Method | Path | Body → answer |
//! |---|---|---|
//! | GET | `/_fake/counters` | → [`Counters`](crate::Counters) JSON |
//! | POST | `/_fake/reset-counters` | → `{}` |
//! | GET | `/_fake/ca.pem` | → the CA certificate |
//! | PUT | `/_fake/vaults/{vault}/secrets/{name}` | `{"value","content_type"?,"kid"?,"enabled"?}` → `{"version","id"}` |
//! | POST | `/_fake/vaults/{vault}/secrets/{name}/{version}/disable` (or `/enable`) | → `{}` |
//! | PUT | `/_fake/vaults/{vault}/keys/{name}` | [`KeySeed`](crate::KeySeed) without `name` → `{"version"}` |
//! | PUT | `/_fake/vaults/{vault}/certificates/{name}` | [`CertificateSeed`](crate::CertificateSeed) without `name` → `{"version"}` |
//! | POST | `/_fake/vaults/{vault}/{keys,certificates}/{name}/{version}/disable` (or `/enable`) | → `{}` |
//! | PUT | `/_fake/page-size/{n}` | → `{}` (version listings' default page length) |
//! | PUT / DELETE | `/_fake/vaults/{vault}/access/{client_id}` | grant / revoke → `{}` |
//! | POST | `/_fake/faults` | [`FaultSpec`](crate::FaultSpec) → `{}` |
//! | DELETE | `/_fake/faults` | → `{}` (clears every fault) |
//! | POST | `/_fake/expire-tokens` | → `{}` |
//! | POST | `/_fake/service-account-token` | `{"issuer","namespace","service_account","audience","ttl_secs"?}` → `{"token"}` |
//! | PUT | `/_fake/vm-identities` | `{"system_assigned"?, "user_assigned"?: [..]}` (client ids of registered apps) → `{}` |
//! | PUT | `/_fake/pod-identities/{namespace}/{pod}` | `{"client_id"}` → `{}` |
//! | GET | `/_fake/token-proxy` | → `{"url", "server_name"}` of the AKS token proxy |
//!
//! Errors are `{"error": "..."}` with 400 (bad request) or 404 (unknown
//! vault, secret, version or route).

use std::time::{Duration, Instant};

use hyper::Method;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::fake::Shared;
use crate::faults::FaultSpec;
use crate::ids;
use crate::jwt;
use crate::seed::{CertificateSeed, KeySeed, SecretSeed};
use crate::state::{Kind, StateError};
use crate::wire::{self, Req, Resp};

/// Default lifetime of minted service-account tokens.
const DEFAULT_SA_TOKEN_TTL_SECS: u64 = 3600;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PutSecret {
    value: String,
    #[serde(default)]
    content_type: Option<String>,
    #[serde(default)]
    kid: bool,
    #[serde(default = "yes")]
    enabled: bool,
}

fn yes() -> bool {
    true
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MintRequest {
    issuer: String,
    namespace: String,
    service_account: String,
    audience: String,
    #[serde(default)]
    ttl_secs: Option<u64>,
}

/// Handles a plain-HTTP request (anything but CONNECT).
pub(crate) fn handle(shared: &Shared, req: &Req) -> Resp {
    let (segs, _) = req.segments();
    let result = match (&req.method, segs.as_slice()) {
        (&Method::GET, ["_fake", "counters"]) => {
            serde_json::to_value(shared.counters().clone()).map_err(|e| (500, e.to_string()))
        }
        (&Method::POST, ["_fake", "reset-counters"]) => {
            *shared.counters() = Default::default();
            Ok(json!({}))
        }
        (&Method::GET, ["_fake", "ca.pem"]) => {
            return wire::text(200, shared.ca_pem.clone(), "application/x-pem-file");
        }
        (&Method::PUT, ["_fake", "vaults", vault, "secrets", name]) => {
            put_secret(shared, vault, name, req)
        }
        (
            &Method::POST,
            [
                "_fake",
                "vaults",
                vault,
                "secrets",
                name,
                version,
                action @ ("disable" | "enable"),
            ],
        ) => {
            let enabled = *action == "enable";
            shared
                .state()
                .set_version_enabled(vault, name, version, enabled, ids::now_unix())
                .map(|()| json!({}))
                .map_err(state_error)
        }
        (&Method::PUT, ["_fake", "vaults", vault, "keys", name]) => {
            parse_named::<KeySeed>(req, name).and_then(|seed| {
                shared
                    .state()
                    .add_key(vault, &seed, ids::now_unix())
                    .map(|version| json!({ "version": version }))
                    .map_err(state_error)
            })
        }
        (&Method::PUT, ["_fake", "vaults", vault, "certificates", name]) => {
            parse_named::<CertificateSeed>(req, name).and_then(|seed| {
                shared
                    .state()
                    .add_certificate(vault, &seed, ids::now_unix())
                    .map(|version| json!({ "version": version }))
                    .map_err(state_error)
            })
        }
        (
            &Method::POST,
            [
                "_fake",
                "vaults",
                vault,
                kind @ ("keys" | "certificates"),
                name,
                version,
                action @ ("disable" | "enable"),
            ],
        ) => {
            let kind = if *kind == "keys" {
                Kind::Keys
            } else {
                Kind::Certificates
            };
            shared
                .state()
                .set_object_version_enabled(
                    vault,
                    kind,
                    name,
                    version,
                    *action == "enable",
                    ids::now_unix(),
                )
                .map(|()| json!({}))
                .map_err(state_error)
        }
        (&Method::PUT, ["_fake", "page-size", size]) => size
            .parse::<usize>()
            .map(|n| {
                shared.state().set_page_size(n);
                json!({})
            })
            .map_err(|_| (400, format!("invalid page size {size:?}"))),
        (m @ (&Method::PUT | &Method::DELETE), ["_fake", "vaults", vault, "access", client_id]) => {
            shared
                .state()
                .grant(vault, client_id, *m == Method::PUT)
                .map(|()| json!({}))
                .map_err(state_error)
        }
        (&Method::POST, ["_fake", "faults"]) => post_faults(shared, req),
        (&Method::DELETE, ["_fake", "faults"]) => {
            shared.faults().clear();
            Ok(json!({}))
        }
        (&Method::POST, ["_fake", "expire-tokens"]) => {
            shared.state().expire_tokens(ids::now_unix());
            Ok(json!({}))
        }
        (&Method::POST, ["_fake", "service-account-token"]) => mint(req),
        (&Method::PUT, ["_fake", "vm-identities"]) => put_vm_identities(shared, req),
        (&Method::PUT, ["_fake", "pod-identities", namespace, pod]) => {
            put_pod_identity(shared, namespace, pod, req)
        }
        (&Method::GET, ["_fake", "token-proxy"]) => Ok(json!({
            "url": shared.token_proxy_url.clone(),
            "server_name": crate::token_proxy::server_name(),
        })),
        _ => Err((
            404,
            format!("fake-azure: no route {} {}", req.method, req.path),
        )),
    };
    match result {
        Ok(body) => wire::json(200, &body),
        Err((status, message)) => wire::json(status, &json!({"error": message})),
    }
}

fn parse<T: for<'de> Deserialize<'de>>(req: &Req) -> Result<T, (u16, String)> {
    serde_json::from_slice(&req.body).map_err(|e| (400, format!("invalid JSON body: {e}")))
}

/// A JSON body with `name` taken from the path.
fn parse_named<T: for<'de> Deserialize<'de>>(req: &Req, name: &str) -> Result<T, (u16, String)> {
    let mut value: Value = parse(req)?;
    match value.as_object_mut() {
        Some(object) => {
            object.insert("name".to_string(), json!(name));
        }
        None => return Err((400, "the body must be a JSON object".to_string())),
    }
    serde_json::from_value(value).map_err(|e| (400, format!("invalid JSON body: {e}")))
}

fn state_error(e: StateError) -> (u16, String) {
    let status = match e {
        StateError::UnknownVault(_)
        | StateError::UnknownApp(_)
        | StateError::UnknownSecret { .. }
        | StateError::UnknownVersion { .. } => 404,
        _ => 400,
    };
    (status, e.to_string())
}

fn put_secret(shared: &Shared, vault: &str, name: &str, req: &Req) -> Result<Value, (u16, String)> {
    let body: PutSecret = parse(req)?;
    let seed = SecretSeed {
        name: name.to_string(),
        value: body.value,
        content_type: body.content_type,
        enabled: body.enabled,
        kid: body.kid,
    };
    let version = shared
        .state()
        .set_secret(vault, &seed, ids::now_unix())
        .map_err(state_error)?;
    Ok(json!({
        "version": version,
        "id": format!("https://{}.vault.azure.net/secrets/{name}/{version}", vault.to_ascii_lowercase()),
    }))
}

fn post_faults(shared: &Shared, req: &Req) -> Result<Value, (u16, String)> {
    let spec: FaultSpec = parse(req)?;
    shared
        .faults()
        .apply(&spec, Instant::now())
        .map(|()| json!({}))
        .map_err(|e| (400, e))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct VmIdentities {
    #[serde(default)]
    system_assigned: Option<String>,
    #[serde(default)]
    user_assigned: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PodIdentity {
    client_id: String,
}

fn put_vm_identities(shared: &Shared, req: &Req) -> Result<Value, (u16, String)> {
    let body: VmIdentities = parse(req)?;
    let users: Vec<&str> = body.user_assigned.iter().map(String::as_str).collect();
    shared
        .state()
        .set_node_identities(body.system_assigned.as_deref(), &users)
        .map(|()| json!({}))
        .map_err(state_error)
}

fn put_pod_identity(
    shared: &Shared,
    namespace: &str,
    pod: &str,
    req: &Req,
) -> Result<Value, (u16, String)> {
    let body: PodIdentity = parse(req)?;
    shared
        .state()
        .bind_pod_identity(namespace, pod, &body.client_id)
        .map(|()| json!({}))
        .map_err(state_error)
}

fn mint(req: &Req) -> Result<Value, (u16, String)> {
    let m: MintRequest = parse(req)?;
    let ttl = Duration::from_secs(m.ttl_secs.unwrap_or(DEFAULT_SA_TOKEN_TTL_SECS));
    let token = jwt::mint_service_account_token(
        &m.issuer,
        &m.namespace,
        &m.service_account,
        &m.audience,
        ttl,
    );
    Ok(json!({"token": token}))
}
