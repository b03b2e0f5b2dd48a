//! A small Key Vault client: read one secret, key or certificate version
//! and list an object's versions (following `nextLink` within the vault),
//! with the bearer token sent up front (the scope is known from the cloud,
//! so there is no 401 challenge round trip). Decoding the answers is
//! `keyvault/wire.rs`.
//!
//! Every GET goes through the retry layer (`http::Http::send_retrying`)
//! with the mount's [`Context`], and the vault's gate (`throttle`), shared
//! by every mount: a 429 holds all requests to that vault for the
//! `Retry-After` window, and 5xx answers and broken connections are tried
//! again within the mount's budget.
//!
//! Returns wire shapes only; turning them into files is `render`'s job, and
//! choosing identities is `auth`'s.

mod wire;

use std::sync::Arc;

use crate::budget::Context;
use crate::http::{Endpoint, Gate, Http, Retry, RetryError};
use crate::metrics::Service;
use crate::retry::Policy;
use crate::throttle::VaultGates;
use crate::token::AccessToken;

use wire::malformed;
pub use wire::{
    CertificateBundle, Collection, KeyBundle, KeyVaultError, ListPage, ListedVersion, SecretBundle,
    decode_certificate, decode_key, decode_list, decode_secret, version_of,
};

/// The Key Vault data-plane API version (the one upstream v1.8.2 sends).
pub const API_VERSION: &str = "7.4";

/// Most pages followed for one listing (25 versions each).
const MAX_PAGES: usize = 1000;

/// The client's settings, read once at start-up.
#[derive(Clone, Debug, Default)]
pub struct KeyVaultConfig {
    /// `--keyvault-qps`: requests per second per vault (`None`: no limit of
    /// our own).
    pub qps: Option<f64>,
}

/// Reads objects over the shared client, through the vaults' shared gates.
#[derive(Clone, Debug)]
pub struct KeyVault {
    http: Http,
    gates: Arc<VaultGates>,
    policy: Policy,
}

// === impl KeyVault ===

impl KeyVault {
    pub fn new(http: Http, config: &KeyVaultConfig) -> Self {
        Self {
            http,
            gates: Arc::new(VaultGates::new(config.qps)),
            policy: Policy::default(),
        }
    }

    /// `GET {vault_url}secrets/{name}/{version}`; an empty version reads the
    /// latest.
    pub async fn get_secret(
        &self,
        cx: &Context,
        vault: VaultRef<'_>,
        token: &AccessToken,
        name: &str,
        version: &str,
    ) -> Result<SecretBundle, KeyVaultError> {
        let url = object_url(vault.url, "secrets", name, version);
        let (status, body) = self.get(cx, vault, token, &url, true).await?;
        decode_secret(vault.name, status, &body)
    }

    /// `GET {vault_url}keys/{name}/{version}`.
    pub async fn get_key(
        &self,
        cx: &Context,
        vault: VaultRef<'_>,
        token: &AccessToken,
        name: &str,
        version: &str,
    ) -> Result<KeyBundle, KeyVaultError> {
        let url = object_url(vault.url, "keys", name, version);
        let (status, body) = self.get(cx, vault, token, &url, true).await?;
        decode_key(vault.name, status, &body)
    }

    /// `GET {vault_url}certificates/{name}/{version}`.
    pub async fn get_certificate(
        &self,
        cx: &Context,
        vault: VaultRef<'_>,
        token: &AccessToken,
        name: &str,
        version: &str,
    ) -> Result<CertificateBundle, KeyVaultError> {
        let url = object_url(vault.url, "certificates", name, version);
        let (status, body) = self.get(cx, vault, token, &url, true).await?;
        decode_certificate(vault.name, status, &body)
    }

    /// `GET {vault_url}{collection}/{name}/versions`, every page: the
    /// enabled versions (upstream skips disabled ones and entries without
    /// attributes), in listing order. `nextLink` is only followed within
    /// the vault.
    pub async fn list_versions(
        &self,
        cx: &Context,
        vault: VaultRef<'_>,
        token: &AccessToken,
        collection: Collection,
        name: &str,
    ) -> Result<Vec<ListedVersion>, KeyVaultError> {
        let mut url = object_url(vault.url, collection.as_str(), name, "versions");
        let mut with_api_version = true;
        let mut versions = Vec::new();
        for _ in 0..MAX_PAGES {
            let (status, body) = self.get(cx, vault, token, &url, with_api_version).await?;
            let page = decode_list(vault.name, status, &body)?;
            versions.extend(page.versions);
            match page.next_link {
                Some(next) if next != url => {
                    check_next_link(vault, &next)?;
                    url = next;
                    with_api_version = false;
                }
                Some(_) => return Err(malformed(vault.name, status, "nextLink repeats itself")),
                None => return Ok(versions),
            }
        }
        Err(malformed(
            vault.name,
            200,
            &format!("more than {MAX_PAGES} pages of versions"),
        ))
    }

    /// One authenticated GET; `api-version` is added unless the URL (a
    /// `nextLink`) carries it.
    async fn get(
        &self,
        cx: &Context,
        vault: VaultRef<'_>,
        token: &AccessToken,
        url: &str,
        with_api_version: bool,
    ) -> Result<(u16, Vec<u8>), KeyVaultError> {
        let build = || {
            let mut builder = self.http.request(reqwest::Method::GET, url);
            if with_api_version {
                builder = builder.query(&[("api-version", API_VERSION)]);
            }
            builder
                .bearer_auth(token.bearer())
                .header(reqwest::header::ACCEPT, "application/json")
        };
        let retry = Retry {
            policy: self.policy,
            gate: Some(Gate {
                gates: &self.gates,
                vault: vault.url,
            }),
        };
        let endpoint = Endpoint {
            service: Service::KeyVault,
            url,
        };
        let vault_name = || vault.name.to_owned();
        let response = self
            .http
            .send_retrying(cx, build, endpoint, retry)
            .await
            .map_err(|e| match e {
                RetryError::Send(source) => KeyVaultError::Unreachable {
                    vault: vault_name(),
                    source,
                },
                RetryError::Busy {
                    wait,
                    remaining,
                    throttled: true,
                    ..
                } => KeyVaultError::Throttled {
                    vault: vault_name(),
                    wait,
                    remaining,
                },
                RetryError::Busy {
                    wait, remaining, ..
                } => KeyVaultError::RateLimited {
                    vault: vault_name(),
                    wait,
                    remaining,
                },
            })?;
        let mut body = response.body;
        if !response.status.is_success() {
            crate::http::scrub_credentials(&mut body, &[token.bearer()]);
        }
        Ok((response.status.as_u16(), body))
    }
}

/// A `nextLink` must stay on the vault's own host (it carries our token).
fn check_next_link(vault: VaultRef<'_>, next: &str) -> Result<(), KeyVaultError> {
    let same_origin = |a: &reqwest::Url, b: &reqwest::Url| {
        a.scheme() == "https"
            && a.scheme() == b.scheme()
            && a.host_str() == b.host_str()
            && a.port_or_known_default() == b.port_or_known_default()
    };
    match (reqwest::Url::parse(next), reqwest::Url::parse(vault.url)) {
        (Ok(next), Ok(base)) if same_origin(&next, &base) => Ok(()),
        _ => Err(malformed(
            vault.name,
            200,
            "nextLink does not point into the vault; not followed",
        )),
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

#[cfg(test)]
mod tests {
    use super::*;

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
    fn next_links_must_stay_in_the_vault() {
        let vault = VaultRef {
            name: "kv",
            url: "https://kv.vault.azure.net/",
        };
        for ok in [
            "https://kv.vault.azure.net:443/secrets/s/versions?$skiptoken=a",
            "https://kv.vault.azure.net/keys/s/versions?$skiptoken=a",
        ] {
            assert!(check_next_link(vault, ok).is_ok(), "{ok}");
        }
        for bad in [
            "https://evil.example/secrets/s/versions",
            "http://kv.vault.azure.net/secrets/s/versions",
            "https://kv.vault.azure.net:8443/secrets/s/versions",
            "https://kv.vault.azure.net.evil.example/x",
            "/relative",
        ] {
            assert!(check_next_link(vault, bad).is_err(), "{bad}");
        }
    }
}
