//! The `secrets` collection: get a secret (current or given version) and
//! list a secret's versions with `maxresults` / `$skiptoken` paging.
//!
//! Authentication and access are already checked by `keyvault.rs`; this
//! file only shapes secret bundles and pages. Object ids are built from the
//! host the client used, so a vault answers under any cloud's suffix.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};

use super::KvError;
use crate::counters::op;
use crate::state::{Secret, SecretVersion, Vault, valid_object_name};
use crate::wire::Req;

/// Page size when `maxresults` is absent, and its upper bound.
pub(crate) const MAX_RESULTS: usize = 25;

/// A request on the secrets collection.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Route<'a> {
    /// `GET /secrets/{name}[/]` (current version) or `/secrets/{name}/{version}`.
    Get {
        name: &'a str,
        version: Option<&'a str>,
    },
    /// `GET /secrets/{name}/versions`.
    Versions { name: &'a str },
}

// === impl Route ===

impl<'a> Route<'a> {
    /// Parses the segments after `secrets`.
    pub(crate) fn parse(rest: &[&'a str]) -> Option<Self> {
        match rest {
            [name] => Some(Self::Get {
                name,
                version: None,
            }),
            [name, "versions"] => Some(Self::Versions { name }),
            [name, version] => Some(Self::Get {
                name,
                version: Some(version),
            }),
            _ => None,
        }
    }

    pub(crate) fn op(&self) -> &'static str {
        match self {
            Self::Get { .. } => op::GET_SECRET,
            Self::Versions { .. } => op::LIST_SECRET_VERSIONS,
        }
    }

    pub(crate) fn permission(&self) -> &'static str {
        match self {
            Self::Get { .. } => "secrets get",
            Self::Versions { .. } => "secrets list",
        }
    }

    /// Serves the request; `base` is `https://{host}`; `page_size` is the
    /// page length when the client sends no `maxresults`.
    pub(crate) fn serve(
        &self,
        vault: &Vault,
        base: &str,
        req: &Req,
        page_size: usize,
    ) -> Result<Value, KvError> {
        let name = match self {
            Self::Get { name, .. } | Self::Versions { name } => *name,
        };
        if !valid_object_name(name) {
            return Err(KvError::bad_parameter(format!(
                "The request URI contains an invalid name: {name}"
            )));
        }
        match self {
            Self::Get { version, .. } => get(vault, base, name, *version),
            Self::Versions { .. } => {
                let page = Page::from_query(req, page_size)?;
                list_versions(
                    vault,
                    base,
                    name,
                    page,
                    req.query("api-version").unwrap_or("7.4"),
                )
            }
        }
    }
}

fn not_found(what: &str) -> KvError {
    KvError::new(
        404,
        "SecretNotFound",
        format!(
            "A secret with (name/id) {what} was not found in this key vault. If you recently deleted \
         this secret you may be able to recover it using the correct recovery command. For help \
         resolving this issue, please see https://go.microsoft.com/fwlink/?linkid=2125182"
        ),
    )
}

fn get(vault: &Vault, base: &str, name: &str, version: Option<&str>) -> Result<Value, KvError> {
    let secret = vault.secret(name).ok_or_else(|| not_found(name))?;
    let found = match version {
        None => secret.latest(),
        Some(v) => secret.version(v),
    };
    let sv = found.ok_or_else(|| not_found(&format!("{name}/{}", version.unwrap_or_default())))?;
    if !sv.enabled {
        return Err(KvError {
            inner: Some("SecretDisabled"),
            ..KvError::new(
                403,
                "Forbidden",
                "Operation get is not allowed on a disabled secret.".to_string(),
            )
        });
    }
    Ok(bundle(base, secret, sv))
}

/// The secret bundle of one version.
fn bundle(base: &str, secret: &Secret, sv: &SecretVersion) -> Value {
    let mut b = json!({
        "value": sv.value,
        "id": format!("{base}/secrets/{}/{}", secret.name, sv.version),
        "attributes": attributes(sv),
        "tags": {},
    });
    if let Some(obj) = b.as_object_mut() {
        if let Some(ct) = &sv.content_type {
            obj.insert("contentType".to_string(), json!(ct));
        }
        if sv.cert_backed {
            obj.insert(
                "kid".to_string(),
                json!(format!("{base}/keys/{}/{}", secret.name, sv.version)),
            );
            obj.insert("managed".to_string(), json!(true));
        }
    }
    b
}

fn attributes(sv: &SecretVersion) -> Value {
    json!({
        "enabled": sv.enabled,
        "created": sv.created,
        "updated": sv.updated,
        "recoveryLevel": "Recoverable+Purgeable",
        "recoverableDays": 90,
    })
}

/// Where a page starts and how long it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Page {
    pub offset: usize,
    pub max: usize,
}

// === impl Page ===

impl Page {
    pub(crate) fn from_query(req: &Req, default_max: usize) -> Result<Self, KvError> {
        let max = match req.query("maxresults") {
            None => default_max.clamp(1, MAX_RESULTS),
            Some(raw) => raw
                .parse::<usize>()
                .ok()
                .filter(|n| (1..=MAX_RESULTS).contains(n))
                .ok_or_else(|| KvError::bad_parameter(format!(
                    "Invalid value '{raw}' for maxresults: it must be an integer between 1 and {MAX_RESULTS}."
                )))?,
        };
        let offset = match req.query("$skiptoken") {
            None => 0,
            Some(token) => decode_skiptoken(token).ok_or_else(|| {
                KvError::bad_parameter("The $skiptoken is not valid.".to_string())
            })?,
        };
        Ok(Self { offset, max })
    }
}

/// An opaque continuation token, shaped like Key Vault's (base64 JSON).
pub(crate) fn encode_skiptoken(offset: usize) -> String {
    URL_SAFE_NO_PAD
        .encode(json!({"NextMarker": offset.to_string(), "TargetLocation": 0}).to_string())
}

pub(crate) fn decode_skiptoken(token: &str) -> Option<usize> {
    let bytes = URL_SAFE_NO_PAD.decode(token.trim_end_matches('=')).ok()?;
    let value: Value = serde_json::from_slice(&bytes).ok()?;
    value.get("NextMarker")?.as_str()?.parse().ok()
}

fn list_versions(
    vault: &Vault,
    base: &str,
    name: &str,
    page: Page,
    api: &str,
) -> Result<Value, KvError> {
    let secret = vault.secret(name).ok_or_else(|| not_found(name))?;
    let all = secret.listing_order();
    let items: Vec<Value> = all
        .iter()
        .skip(page.offset)
        .take(page.max)
        .map(|sv| item(base, secret, sv))
        .collect();
    let end = page.offset.saturating_add(page.max);
    // Like Key Vault, the next link names port 443 explicitly.
    let next = (end < all.len()).then(|| {
        let api = form_urlencoded::byte_serialize(api.as_bytes()).collect::<String>();
        format!(
            "{base}:443/secrets/{}/versions?api-version={api}&$skiptoken={}&maxresults={}",
            secret.name,
            encode_skiptoken(end),
            page.max
        )
    });
    Ok(json!({"value": items, "nextLink": next}))
}

/// A list item: the bundle without value (nor kid).
fn item(base: &str, secret: &Secret, sv: &SecretVersion) -> Value {
    let mut i = json!({
        "id": format!("{base}/secrets/{}/{}", secret.name, sv.version),
        "attributes": attributes(sv),
        "tags": {},
    });
    if let Some(obj) = i.as_object_mut() {
        if let Some(ct) = &sv.content_type {
            obj.insert("contentType".to_string(), json!(ct));
        }
        if sv.cert_backed {
            obj.insert("managed".to_string(), json!(true));
        }
    }
    i
}
