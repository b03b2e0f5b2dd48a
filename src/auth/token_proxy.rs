//! AKS identity binding (`useAzureTokenProxy: true`): the client-assertion
//! exchange of workload identity, sent to the AKS token proxy instead of
//! Entra ID, over TLS with a special server name (SNI).
//!
//! * URL: `--token-proxy-url` (default `https://kubernetes.default.svc.cluster.local`)
//!   joined with Entra ID's path, `/{tenant}/oauth2/v2.0/token`.
//! * Server name: `--sni-name`, or computed as upstream does: read the
//!   API server's certificate (at the token proxy URL's host and port), take
//!   the SAN `hcp-kubernetes.<id>.svc.cluster.local`, and form
//!   `a` + base32hex(SHA-256(`identity-binding` + id)) + `.ests.aks`, lowercase.
//! * Trust: the service-account CA (`ca.crt`) when the file exists (re-read
//!   on every request, so a rotated CA is picked up), else the process's
//!   roots. Always dialed directly, never through `HTTPS_PROXY`: the proxy
//!   is the in-cluster API server, and a forward proxy could not route the
//!   SNI name.
//!
//! Nothing happens at start-up: the server name is computed on the first
//! identity-binding mount (and retried on the next one if it failed), so
//! clusters that never use identity binding never dial the API server, and
//! a failure fails only identity-binding mounts, with upstream's prefix
//! `proxy transport not available: `.

use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};

use reqwest::Url;
use rustls_pki_types::CertificateDer;
use sha2::{Digest as _, Sha256};
use tokio::sync::OnceCell;

use super::Cause;
use super::aad::{self, Failure, Token, TokenRequest};
use crate::budget::Context;
use crate::http::{self, BuildError, Endpoint, Http, HttpConfig};
use crate::metrics::Service;

/// Where identity binding reaches the API server inside a cluster.
pub const DEFAULT_URL: &str = "https://kubernetes.default.svc.cluster.local";

/// The service-account CA mounted into every pod.
pub const DEFAULT_CA_FILE: &str = "/var/run/secrets/kubernetes.io/serviceaccount/ca.crt";

const SAN_PREFIX: &str = "hcp-kubernetes.";
const SAN_SUFFIX: &str = ".svc.cluster.local";

/// Identity-binding settings from the flags (validated lazily).
#[derive(Clone, Debug)]
pub struct TokenProxyConfig {
    /// `--token-proxy-url`; empty means [`DEFAULT_URL`].
    pub url: String,
    /// `--sni-name`; empty means computed.
    pub sni_name: String,
    /// `--token-proxy-ca-file`: the CA to trust when the file exists.
    pub ca_file: PathBuf,
}

impl Default for TokenProxyConfig {
    fn default() -> Self {
        Self {
            url: String::new(),
            sni_name: String::new(),
            ca_file: PathBuf::from(DEFAULT_CA_FILE),
        }
    }
}

/// The lazily prepared transport to the token proxy.
#[derive(Clone)]
pub(super) struct TokenProxy {
    inner: Arc<Inner>,
}

struct Inner {
    config: TokenProxyConfig,
    http: HttpConfig,
    target: OnceCell<Target>,
    client: Mutex<Option<Client>>,
}

/// The proxy's URL and the server name to present.
#[derive(Clone, Debug)]
struct Target {
    url: Url,
    server_name: String,
}

/// A client for one CA file content (`None`: the file was absent).
struct Client {
    ca: Option<Vec<u8>>,
    http: Http,
}

// === impl TokenProxy ===

impl TokenProxy {
    pub(super) fn new(config: TokenProxyConfig, http: HttpConfig) -> Self {
        Self {
            inner: Arc::new(Inner {
                config,
                http,
                target: OnceCell::new(),
                client: Mutex::new(None),
            }),
        }
    }

    /// The proxy URL as configured, for cache keys and messages.
    pub(super) fn url(&self) -> &str {
        match self.inner.config.url.as_str() {
            "" => DEFAULT_URL,
            url => url,
        }
    }

    /// Exchanges the assertion through the proxy.
    pub(super) async fn request_token(
        &self,
        cx: &Context,
        request: &TokenRequest,
    ) -> Result<Token, Cause> {
        let target = self
            .inner
            .target
            .get_or_try_init(|| self.prepare(cx))
            .await
            .map_err(Cause::TokenProxy)?;
        let ca = read_ca(&self.inner.config.ca_file)
            .await
            .map_err(Cause::TokenProxy)?;
        let client = self
            .client(target, ca)
            .map_err(|e| Cause::TokenProxy(e.to_string()))?;
        let path = token_path(&target.url, &request.tenant_id);
        let url = request_url(&target.url, &target.server_name, &path);
        let endpoint = format!(
            "{}{path} (token proxy, TLS server name {})",
            origin(&target.url),
            target.server_name
        );
        aad::request_token(cx, &client, &url, &endpoint, request)
            .await
            .map_err(|failure| match failure {
                Failure::Aad(source) => Cause::Rejected { endpoint, source },
                Failure::Send(source) => Cause::Send(source),
            })
    }

    /// Parses the URL and settles the server name (computed if not given).
    async fn prepare(&self, cx: &Context) -> Result<Target, String> {
        let url = parse_url(self.url())?;
        let server_name = match self.inner.config.sni_name.trim() {
            "" => self
                .discover_server_name(cx, &url)
                .await
                .map_err(|e| format!("compute SNI name: {e}"))?,
            name => name.to_ascii_lowercase(),
        };
        tracing::info!(token_proxy = %url, sni_name = %server_name, "identity binding transport ready");
        Ok(Target { url, server_name })
    }

    /// Reads the API server's certificate at the proxy's host and port and
    /// derives the server name from its cluster-id SAN.
    async fn discover_server_name(&self, cx: &Context, url: &Url) -> Result<String, String> {
        let path = &self.inner.config.ca_file;
        let ca = tokio::fs::read(path).await.map_err(|e| {
            format!(
                "extract cluster ID from API server certificate: read CA file {}: {e} \
                 (use --sni-name flag to skip automatic SNI detection)",
                path.display()
            )
        })?;
        let roots = certificates(&ca, path)?;
        let http = Http::custom(&self.inner.http, |b| {
            Ok(b.tls_certs_only(roots).no_proxy().tls_info(true))
        })
        .map_err(|e| e.to_string())?;
        let endpoint = origin(url);
        let target = Endpoint {
            service: Service::Other,
            url: &endpoint,
        };
        let response = http
            .send(cx, http.request(reqwest::Method::GET, &endpoint), target)
            .await
            .map_err(|e| format!("TLS connect to API server: {e}"))?;
        let der = response
            .peer_certificate
            .ok_or_else(|| "no certificates presented by API server".to_owned())?;
        let cluster_id = cluster_id(&der)?;
        Ok(server_name_for(&cluster_id))
    }

    /// The client for the current CA content, rebuilt when it changed.
    fn client(&self, target: &Target, ca: Option<Vec<u8>>) -> Result<Http, BuildError> {
        let mut slot = self
            .inner
            .client
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(client) = slot.as_ref().filter(|c| c.ca == ca) {
            return Ok(client.http.clone());
        }
        let path = self.inner.config.ca_file.display().to_string();
        let config = &self.inner.http;
        let http = Http::custom(config, |b| {
            let host = target.url.host_str().unwrap_or_default();
            let port = target.url.port_or_known_default().unwrap_or(443);
            let b = b.no_proxy().dns_resolver(Arc::new(ToProxy {
                address: format!("{host}:{port}"),
            }));
            Ok(match &ca {
                Some(pem) => b.tls_certs_only(
                    certificates(pem, std::path::Path::new(&path))
                        .map_err(|_| BuildError::NoCertificates { path: path.clone() })?,
                ),
                None => b.tls_certs_merge(http::extra_roots(config)?),
            })
        })?;
        *slot = Some(Client {
            ca,
            http: http.clone(),
        });
        Ok(http)
    }
}

/// Resolves every name to the proxy's own address: requests name the SNI
/// host in their URL (so that rustls sends and verifies it), but go to the
/// proxy.
struct ToProxy {
    /// `host:port` of the proxy.
    address: String,
}

impl reqwest::dns::Resolve for ToProxy {
    fn resolve(&self, _name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let address = self.address.clone();
        Box::pin(async move {
            let addrs: Vec<std::net::SocketAddr> =
                tokio::net::lookup_host(address).await?.collect();
            Ok(Box::new(addrs.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

/// Reads the CA file; `None` when it does not exist.
async fn read_ca(path: &std::path::Path) -> Result<Option<Vec<u8>>, String> {
    match tokio::fs::read(path).await {
        Ok(pem) if pem.is_empty() => Err(format!("CA file {} is empty", path.display())),
        Ok(pem) => Ok(Some(pem)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(format!("read CA file {}: {e}", path.display())),
    }
}

/// The certificates of a PEM bundle.
fn certificates(pem: &[u8], path: &std::path::Path) -> Result<Vec<reqwest::Certificate>, String> {
    match reqwest::Certificate::from_pem_bundle(pem) {
        Ok(certs) if !certs.is_empty() => Ok(certs),
        _ => Err(format!("no valid certificates found in {}", path.display())),
    }
}

/// azidentity's checks of the token proxy URL (as upstream reaches them:
/// https, no user info, query or fragment), plus our own host check.
fn parse_url(text: &str) -> Result<Url, String> {
    let url = Url::parse(text)
        .map_err(|e| format!("failed to parse custom token proxy URL {text:?}: {e}"))?;
    if url.scheme() != "https" {
        return Err(format!(
            "custom token endpoint must use https scheme, got {:?}",
            url.scheme()
        ));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(format!(
            "custom token endpoint URL {text:?} must not contain user info"
        ));
    }
    if url.query().is_some() {
        return Err(format!(
            "custom token endpoint URL {text:?} must not contain a query"
        ));
    }
    if url.fragment().is_some() {
        return Err(format!(
            "custom token endpoint URL {text:?} must not contain a fragment"
        ));
    }
    if url.host_str().is_none() {
        return Err(format!("custom token endpoint URL {text:?} has no host"));
    }
    Ok(url)
}

/// `https://host[:port]` of a URL.
fn origin(url: &Url) -> String {
    let host = url.host_str().unwrap_or_default();
    match url.port() {
        Some(port) => format!("{}://{host}:{port}", url.scheme()),
        None => format!("{}://{host}", url.scheme()),
    }
}

/// The proxy URL's path joined with Entra ID's token path.
fn token_path(proxy: &Url, tenant_id: &str) -> String {
    format!(
        "{}/{tenant_id}/oauth2/v2.0/token",
        proxy.path().trim_end_matches('/')
    )
}

/// `https://{server name}:{proxy port}{path}`: the name rustls sends and
/// verifies; [`ToProxy`] makes it reach the proxy's address.
fn request_url(proxy: &Url, server_name: &str, path: &str) -> String {
    let port = proxy.port_or_known_default().unwrap_or(443);
    format!("https://{server_name}:{port}{path}")
}

/// The cluster id from the API server certificate's SAN
/// `hcp-kubernetes.<id>.svc.cluster.local`.
fn cluster_id(der: &[u8]) -> Result<String, String> {
    let der = CertificateDer::from(der);
    let cert = webpki::EndEntityCert::try_from(&der)
        .map_err(|e| format!("cannot read the API server certificate: {e}"))?;
    for name in cert.valid_dns_names() {
        if let Some(id) = name
            .strip_prefix(SAN_PREFIX)
            .and_then(|rest| rest.strip_suffix(SAN_SUFFIX))
        {
            if id.is_empty() {
                return Err(format!("empty cluster ID in SAN {name:?}"));
            }
            return Ok(id.to_owned());
        }
    }
    Err("cluster ID SAN not found in API server certificate (use --sni-name flag to provide SNI name explicitly)".to_owned())
}

/// `a` + base32hex (no padding) of SHA-256(`identity-binding` + id) +
/// `.ests.aks`, lowercase (53 characters before the suffix).
pub fn server_name_for(cluster_id: &str) -> String {
    let digest = Sha256::digest(format!("identity-binding{cluster_id}").as_bytes());
    format!("a{}.ests.aks", base32hex(&digest)).to_ascii_lowercase()
}

/// RFC 4648 base32 with the extended-hex alphabet, no padding.
fn base32hex(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 32] = b"0123456789ABCDEFGHIJKLMNOPQRSTUV";
    let mut out = String::with_capacity(bytes.len().div_ceil(5) * 8);
    let (mut buffer, mut bits) = (0u64, 0u32);
    for &byte in bytes {
        buffer = (buffer << 8) | u64::from(byte);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            out.push(char::from(ALPHABET[((buffer >> bits) & 31) as usize]));
        }
    }
    if bits > 0 {
        out.push(char::from(ALPHABET[((buffer << (5 - bits)) & 31) as usize]));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_name_matches_upstream_formula_for_a_fixed_cluster_id() {
        // Computed independently: Python hashlib.sha256 + base64.b32hexencode.
        let name = server_name_for("696995ccb303450001b31a18");
        assert_eq!(
            name,
            "aeaf29ip1hi5q38ebc3u4daum81u0unk52t5bg50j25234fmuj78g.ests.aks"
        );
        assert_eq!(name.trim_end_matches(".ests.aks").len(), 53);
        assert_ne!(server_name_for("id1"), server_name_for("id2"));
    }

    #[test]
    fn base32hex_rfc4648_vectors() {
        for (input, expected) in [
            ("", ""),
            ("f", "CO"),
            ("fo", "CPNG"),
            ("foo", "CPNMU"),
            ("foob", "CPNMUOG"),
            ("fooba", "CPNMUOJ1"),
            ("foobar", "CPNMUOJ1E8"),
        ] {
            assert_eq!(base32hex(input.as_bytes()), expected);
        }
    }

    #[tokio::test]
    async fn cluster_id_needs_the_hcp_san() {
        use base64::Engine as _;
        // The fake's CA certificate has no SANs at all.
        let fake = fake_azure::FakeAzure::start(fake_azure::Seed::default())
            .await
            .unwrap();
        let body: String = fake
            .ca_pem()
            .lines()
            .filter(|l| !l.starts_with("-----"))
            .collect();
        let der = base64::engine::general_purpose::STANDARD
            .decode(body)
            .unwrap();
        assert_eq!(
            cluster_id(&der).unwrap_err(),
            "cluster ID SAN not found in API server certificate (use --sni-name flag to provide SNI name explicitly)"
        );
        assert!(
            cluster_id(b"not a certificate")
                .unwrap_err()
                .starts_with("cannot read the API server certificate")
        );
    }

    #[test]
    fn url_rules_follow_upstream() {
        assert!(parse_url("https://kubernetes.default.svc.cluster.local").is_ok());
        assert_eq!(
            parse_url("http://x").unwrap_err(),
            "custom token endpoint must use https scheme, got \"http\""
        );
        assert!(
            parse_url("https://u:p@x")
                .unwrap_err()
                .contains("user info")
        );
        assert!(parse_url("https://x/?a=b").unwrap_err().contains("query"));
        assert!(parse_url("https://x/#f").unwrap_err().contains("fragment"));
        assert!(
            parse_url("not a url")
                .unwrap_err()
                .starts_with("failed to parse")
        );
    }

    #[test]
    fn request_url_keeps_the_proxy_port_and_path() {
        let proxy = Url::parse("https://localhost:8443/prefix/").unwrap();
        let path = token_path(&proxy, "t1");
        assert_eq!(path, "/prefix/t1/oauth2/v2.0/token");
        assert_eq!(
            request_url(&proxy, "a1.ests.aks", &path),
            "https://a1.ests.aks:8443/prefix/t1/oauth2/v2.0/token"
        );
        let default = Url::parse(DEFAULT_URL).unwrap();
        assert_eq!(
            request_url(&default, "a1.ests.aks", &token_path(&default, "t")),
            "https://a1.ests.aks:443/t/oauth2/v2.0/token"
        );
        assert_eq!(origin(&default), DEFAULT_URL);
    }
}
