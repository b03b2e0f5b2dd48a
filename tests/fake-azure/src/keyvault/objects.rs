//! The `keys` and `certificates` collections: get a version (current or
//! given) and list an object's versions with `maxresults` / `$skiptoken`
//! paging, shaped like Key Vault's key bundles (`key` JWK with `kid`) and
//! certificate bundles (`id`, `kid`, `sid`, `cer`).
//!
//! Secrets live in `secrets.rs`; authentication and access are checked by
//! `keyvault.rs` before a route is served.

use serde_json::{Value, json};

use super::KvError;
use super::secrets::{Page, encode_skiptoken};
use crate::counters::op;
use crate::state::{Kind, Vault, Version, Versioned, valid_object_name};
use crate::wire::Req;

/// A request on the keys or certificates collection.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Route<'a> {
    /// `GET /{keys|certificates}/{name}[/{version}]`.
    Get {
        kind: Kind,
        name: &'a str,
        version: Option<&'a str>,
    },
    /// `GET /{keys|certificates}/{name}/versions`.
    Versions { kind: Kind, name: &'a str },
}

// === impl Route ===

impl<'a> Route<'a> {
    /// Parses the segments after `keys` or `certificates`.
    pub(crate) fn parse(kind: Kind, rest: &[&'a str]) -> Option<Self> {
        match rest {
            [name] => Some(Self::Get {
                kind,
                name,
                version: None,
            }),
            [name, "versions"] => Some(Self::Versions { kind, name }),
            [name, version] => Some(Self::Get {
                kind,
                name,
                version: Some(version),
            }),
            _ => None,
        }
    }

    fn kind(&self) -> Kind {
        match self {
            Self::Get { kind, .. } | Self::Versions { kind, .. } => *kind,
        }
    }

    pub(crate) fn op(&self) -> &'static str {
        match (self, self.kind()) {
            (Self::Get { .. }, Kind::Keys) => op::GET_KEY,
            (Self::Versions { .. }, Kind::Keys) => op::LIST_KEY_VERSIONS,
            (Self::Get { .. }, _) => op::GET_CERTIFICATE,
            (Self::Versions { .. }, _) => op::LIST_CERTIFICATE_VERSIONS,
        }
    }

    pub(crate) fn permission(&self) -> &'static str {
        match (self, self.kind()) {
            (Self::Get { .. }, Kind::Keys) => "keys get",
            (Self::Versions { .. }, Kind::Keys) => "keys list",
            (Self::Get { .. }, _) => "certificates get",
            (Self::Versions { .. }, _) => "certificates list",
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
        let (Self::Get { name, .. } | Self::Versions { name, .. }) = self;
        if !valid_object_name(name) {
            return Err(KvError::bad_parameter(format!(
                "The request URI contains an invalid name: {name}"
            )));
        }
        let api = req.query("api-version").unwrap_or("7.4");
        match (self, self.kind()) {
            (Self::Get { version, .. }, Kind::Keys) => {
                let key = vault.key(name).ok_or_else(|| not_found(Kind::Keys, name))?;
                let v = pick(Kind::Keys, key, name, *version)?;
                Ok(key_bundle(base, key, v))
            }
            (Self::Get { version, .. }, _) => {
                let cert = vault
                    .certificate(name)
                    .ok_or_else(|| not_found(Kind::Certificates, name))?;
                let v = pick(Kind::Certificates, cert, name, *version)?;
                Ok(certificate_bundle(base, cert, v))
            }
            (Self::Versions { .. }, Kind::Keys) => {
                let key = vault.key(name).ok_or_else(|| not_found(Kind::Keys, name))?;
                let page = Page::from_query(req, page_size)?;
                Ok(list(base, "keys", key, page, api, |v| {
                    json!({"kid": format!("{base}/keys/{}/{}", key.name, v.version),
                        "attributes": attributes(v), "tags": {}, "managed": v.managed})
                }))
            }
            (Self::Versions { .. }, _) => {
                let cert = vault
                    .certificate(name)
                    .ok_or_else(|| not_found(Kind::Certificates, name))?;
                let page = Page::from_query(req, page_size)?;
                Ok(list(base, "certificates", cert, page, api, |v| {
                    json!({"id": format!("{base}/certificates/{}/{}", cert.name, v.version),
                        "attributes": attributes(v), "tags": {}})
                }))
            }
        }
    }
}

fn not_found(kind: Kind, what: &str) -> KvError {
    let (code, noun) = match kind {
        Kind::Keys => ("KeyNotFound", "key"),
        _ => ("CertificateNotFound", "certificate"),
    };
    KvError::new(
        404,
        code,
        format!(
            "A {noun} with (name/id) {what} was not found in this key vault. If you recently \
             deleted this {noun} you may be able to recover it using the correct recovery \
             command. For help resolving this issue, please see \
             https://go.microsoft.com/fwlink/?linkid=2125182"
        ),
    )
}

/// The current or named version; disabled versions answer 403.
fn pick<'v, T>(
    kind: Kind,
    object: &'v Versioned<T>,
    name: &str,
    version: Option<&str>,
) -> Result<&'v Version<T>, KvError> {
    let found = match version {
        None => object.latest(),
        Some(v) => object.version(v),
    };
    let v =
        found.ok_or_else(|| not_found(kind, &format!("{name}/{}", version.unwrap_or_default())))?;
    if !v.enabled {
        let (inner, noun) = match kind {
            Kind::Keys => ("KeyDisabled", "key"),
            _ => ("CertificateDisabled", "certificate"),
        };
        return Err(KvError {
            inner: Some(inner),
            ..KvError::new(
                403,
                "Forbidden",
                format!("Operation get is not allowed on a disabled {noun}."),
            )
        });
    }
    Ok(v)
}

fn attributes<T>(v: &Version<T>) -> Value {
    json!({
        "enabled": v.enabled,
        "created": v.created,
        "updated": v.updated,
        "recoveryLevel": "Recoverable+Purgeable",
        "recoverableDays": 90,
    })
}

fn key_bundle(
    base: &str,
    key: &Versioned<crate::state::KeyData>,
    v: &Version<crate::state::KeyData>,
) -> Value {
    let d = &v.data;
    let ops = if d.kty.starts_with("EC") {
        json!(["sign", "verify"])
    } else {
        json!([
            "encrypt",
            "decrypt",
            "sign",
            "verify",
            "wrapKey",
            "unwrapKey"
        ])
    };
    let mut jwk = json!({
        "kid": format!("{base}/keys/{}/{}", key.name, v.version),
        "kty": d.kty,
        "key_ops": ops,
    });
    if let Some(obj) = jwk.as_object_mut() {
        for (field, value) in [
            ("crv", &d.crv),
            ("n", &d.n),
            ("e", &d.e),
            ("x", &d.x),
            ("y", &d.y),
        ] {
            if let Some(value) = value {
                obj.insert(field.to_string(), json!(value));
            }
        }
    }
    let mut bundle = json!({"key": jwk, "attributes": attributes(v), "tags": {}});
    if v.managed
        && let Some(obj) = bundle.as_object_mut()
    {
        obj.insert("managed".to_string(), json!(true));
    }
    bundle
}

fn certificate_bundle(
    base: &str,
    cert: &Versioned<crate::state::CertificateData>,
    v: &Version<crate::state::CertificateData>,
) -> Value {
    let name = &cert.name;
    let version = &v.version;
    json!({
        "id": format!("{base}/certificates/{name}/{version}"),
        "kid": format!("{base}/keys/{name}/{version}"),
        "sid": format!("{base}/secrets/{name}/{version}"),
        "cer": v.data.cer,
        "attributes": attributes(v),
        "tags": {},
    })
}

/// One page of a version listing, with Key Vault's `nextLink` (port 443
/// named explicitly).
fn list<T>(
    base: &str,
    collection: &str,
    object: &Versioned<T>,
    page: Page,
    api: &str,
    item: impl Fn(&Version<T>) -> Value,
) -> Value {
    let all = object.listing_order();
    let items: Vec<Value> = all
        .iter()
        .skip(page.offset)
        .take(page.max)
        .map(|v| item(v))
        .collect();
    let end = page.offset.saturating_add(page.max);
    let next = (end < all.len()).then(|| {
        let api = form_urlencoded::byte_serialize(api.as_bytes()).collect::<String>();
        format!(
            "{base}:443/{collection}/{}/versions?api-version={api}&$skiptoken={}&maxresults={}",
            object.name,
            encode_skiptoken(end),
            page.max
        )
    });
    json!({"value": items, "nextLink": next})
}
