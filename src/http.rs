//! The one HTTP client of the process, shared by every mount: rustls, HTTP/2,
//! pooled connections, the standard proxy variables (`HTTPS_PROXY`,
//! `HTTP_PROXY`, `NO_PROXY`) and an extra CA bundle from `SSL_CERT_FILE`.
//!
//! This module sends requests and reads bounded bodies; it names the endpoint
//! in every error. It does not decide what a response means (that is `auth`
//! and `keyvault`) and never sees request bodies in its errors. Retries are
//! the layer in `http/retrying.rs`, used by Key Vault and Entra ID requests.
//!
//! Callers name what they call with an [`Endpoint`] (service + URL) and
//! pass the mount's [`Context`]; this module never guesses the service from
//! the URL and never imports `mount`.

use std::time::{Duration, Instant};

use reqwest::{Certificate, Client, Method, RequestBuilder, StatusCode, header};
use thiserror::Error;

use crate::budget::Context;
use crate::metrics::{Metrics, Service};

mod retrying;
mod warmup;

pub use retrying::{Gate, Retry, RetryError};
use warmup::Warmup;

/// How long an idle connection is kept: longer than the driver's default
/// rotation poll (2 minutes), so rotation mounts reuse the connection;
/// HTTP/2 pings every 30 s keep it alive through NAT and load balancers.
pub const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(300);

/// The largest response body read from any Azure endpoint. Key Vault secrets
/// are at most 25 KiB; version listings page at 25 items.
pub const MAX_BODY_BYTES: usize = 4 << 20;

/// What a request calls: the service (for metrics) and the URL that names
/// it in errors and in a budget error (scheme, host, path; no query values
/// that could be sensitive).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Endpoint<'a> {
    pub service: Service,
    pub url: &'a str,
}

/// Settings for the shared client, read once at start-up.
#[derive(Clone, Debug)]
pub struct HttpConfig {
    /// User-Agent sent on every request.
    pub user_agent: String,
    /// Extra trust anchors (PEM), e.g. a TLS-inspecting proxy's CA.
    pub extra_roots_pem: Option<ExtraRoots>,
    /// Limit for one request (connect + headers + body).
    pub request_timeout: Duration,
    /// Limit for establishing a connection.
    pub connect_timeout: Duration,
}

/// PEM bundle with the path it came from (for error messages).
#[derive(Clone, Debug)]
pub struct ExtraRoots {
    pub path: String,
    pub pem: Vec<u8>,
}

/// Why the client could not be built.
#[derive(Debug, Error)]
pub enum BuildError {
    #[error("no certificate found in the CA bundle {path} (SSL_CERT_FILE)")]
    NoCertificates { path: String },
    #[error("invalid CA bundle {path} (SSL_CERT_FILE): {source}")]
    BadBundle {
        path: String,
        #[source]
        source: reqwest::Error,
    },
    #[error("failed to build the HTTP client: {0}")]
    Client(#[source] reqwest::Error),
}

/// A request that did not produce a response.
#[derive(Clone, Debug, Error)]
pub enum SendError {
    #[error("request to {endpoint} timed out after {limit:?}")]
    Timeout { endpoint: String, limit: Duration },
    #[error("cannot connect to {endpoint}: {reason}")]
    Connect { endpoint: String, reason: String },
    #[error("request to {endpoint} failed: {reason}")]
    Transport { endpoint: String, reason: String },
    #[error("response from {endpoint} is larger than {limit} bytes")]
    TooLarge { endpoint: String, limit: usize },
}

impl SendError {
    /// A short, bounded code for metrics and logs.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Timeout { .. } => "Timeout",
            Self::Connect { .. } => "ConnectFailed",
            Self::Transport { .. } => "TransportError",
            Self::TooLarge { .. } => "ResponseTooLarge",
        }
    }
}

/// A complete response: status, selected headers and the bounded body.
#[derive(Debug)]
pub struct Response {
    pub status: StatusCode,
    pub retry_after: Option<String>,
    /// `x-ms-retry-after-ms` (or `retry-after-ms`): Azure's wait in
    /// milliseconds, which wins over `Retry-After`.
    pub retry_after_ms: Option<String>,
    pub body: Vec<u8>,
    /// The server's leaf certificate (DER), when the client was built with
    /// `tls_info(true)`.
    pub peer_certificate: Option<Vec<u8>>,
}

/// The shared client plus its per-request limit and the metrics every
/// exchange is counted in.
#[derive(Clone, Debug)]
pub struct Http {
    client: Client,
    request_timeout: Duration,
    metrics: Metrics,
    warmup: Warmup,
}

// === impl Http ===

impl Http {
    /// Builds the process-wide client.
    pub fn new(config: &HttpConfig) -> Result<Self, BuildError> {
        Self::custom(config, |builder| {
            Ok(builder.tls_certs_merge(extra_roots(config)?))
        })
    }

    /// A client that never goes through a proxy, for node-local endpoints
    /// (IMDS, NMI) that no egress proxy can reach.
    pub fn direct(config: &HttpConfig) -> Result<Self, BuildError> {
        Self::custom(config, |builder| {
            Ok(builder.tls_certs_merge(extra_roots(config)?).no_proxy())
        })
    }

    /// A client with the process-wide settings (User-Agent, limits, pool)
    /// that `adjust` completes: trust anchors, proxy, resolver.
    pub fn custom(
        config: &HttpConfig,
        adjust: impl FnOnce(reqwest::ClientBuilder) -> Result<reqwest::ClientBuilder, BuildError>,
    ) -> Result<Self, BuildError> {
        let builder = Client::builder()
            .user_agent(config.user_agent.clone())
            .connect_timeout(config.connect_timeout)
            .pool_idle_timeout(POOL_IDLE_TIMEOUT)
            .http2_keep_alive_interval(Duration::from_secs(30))
            .http2_keep_alive_while_idle(true)
            .tcp_keepalive(Duration::from_secs(60));
        let warmup = Warmup::new(POOL_IDLE_TIMEOUT);
        let builder = builder.connector_layer(warmup::ConnectSignal::new(warmup.clone()));
        let client = adjust(builder)?.build().map_err(BuildError::Client)?;
        Ok(Self {
            client,
            request_timeout: config.request_timeout,
            metrics: Metrics::default(),
            warmup,
        })
    }

    /// Counts every exchange in `metrics` (by service and status class).
    pub fn with_metrics(mut self, metrics: Metrics) -> Self {
        self.metrics = metrics;
        self
    }

    /// The metrics handle, for the layers built on this client.
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// Starts a request; finish it with [`Http::send`].
    pub fn request(&self, method: Method, url: &str) -> RequestBuilder {
        self.client.request(method, url)
    }

    /// Sends a request under the per-request limit and reads the bounded
    /// body; `endpoint` names the target in errors and, while the request is
    /// in flight, in the mount's budget error.
    pub async fn send(
        &self,
        cx: &Context,
        request: RequestBuilder,
        target: Endpoint<'_>,
    ) -> Result<Response, SendError> {
        let endpoint = target.url;
        // Names this endpoint if the mount's overall budget runs out now.
        let _waiting = cx.waiting_on(endpoint);
        let limit = self.request_timeout;
        let started = Instant::now();
        let exchange = async {
            // A cold host: one connection first, then everyone shares it.
            let opener = self.warmup.enter(endpoint).await;
            let result = self.exchange(request, endpoint).await;
            self.warmup.finish(endpoint, opener, result.is_ok());
            result
        };
        let result = match tokio::time::timeout(limit, exchange).await {
            Ok(result) => result,
            Err(_) => Err(SendError::Timeout {
                endpoint: endpoint.to_owned(),
                limit,
            }),
        };
        self.observe(target, &result, started.elapsed());
        result
    }

    /// Counts one exchange and logs it at debug level (endpoint without
    /// query, status, duration; never headers or bodies).
    fn observe(
        &self,
        target: Endpoint<'_>,
        result: &Result<Response, SendError>,
        elapsed: Duration,
    ) {
        let endpoint = target.url;
        let status = result.as_ref().ok().map(|r| r.status.as_u16());
        self.metrics.http_request(target.service, status);
        let duration_ms = elapsed.as_millis() as u64;
        match result {
            Ok(response) => tracing::debug!(
                endpoint,
                status = response.status.as_u16(),
                duration_ms,
                "azure request"
            ),
            Err(error) => tracing::debug!(
                endpoint,
                code = error.code(),
                duration_ms,
                "azure request failed"
            ),
        }
    }

    async fn exchange(
        &self,
        request: RequestBuilder,
        endpoint: &str,
    ) -> Result<Response, SendError> {
        let mut response = request.send().await.map_err(|e| classify(e, endpoint))?;
        let status = response.status();
        let text = |name: &str| {
            response
                .headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        let retry_after = text(header::RETRY_AFTER.as_str());
        let retry_after_ms = text("x-ms-retry-after-ms").or_else(|| text("retry-after-ms"));
        let peer_certificate = response
            .extensions()
            .get::<reqwest::tls::TlsInfo>()
            .and_then(|info| info.peer_certificate())
            .map(<[u8]>::to_vec);
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(|e| classify(e, endpoint))? {
            if body.len() + chunk.len() > MAX_BODY_BYTES {
                return Err(SendError::TooLarge {
                    endpoint: endpoint.to_owned(),
                    limit: MAX_BODY_BYTES,
                });
            }
            body.extend_from_slice(&chunk);
        }
        Ok(Response {
            status,
            retry_after,
            retry_after_ms,
            body,
            peer_certificate,
        })
    }
}

/// The extra trust anchors of `SSL_CERT_FILE`, if any.
pub fn extra_roots(config: &HttpConfig) -> Result<Vec<Certificate>, BuildError> {
    let Some(roots) = &config.extra_roots_pem else {
        return Ok(Vec::new());
    };
    let certs =
        Certificate::from_pem_bundle(&roots.pem).map_err(|source| BuildError::BadBundle {
            path: roots.path.clone(),
            source,
        })?;
    if certs.is_empty() {
        return Err(BuildError::NoCertificates {
            path: roots.path.clone(),
        });
    }
    Ok(certs)
}

/// Turns a reqwest error into a short reason without the URL's query.
fn classify(error: reqwest::Error, endpoint: &str) -> SendError {
    let endpoint = endpoint.to_owned();
    let reason = root_cause(&error);
    if error.is_timeout() {
        SendError::Transport { endpoint, reason }
    } else if error.is_connect() {
        SendError::Connect { endpoint, reason }
    } else {
        SendError::Transport { endpoint, reason }
    }
}

/// The innermost error message: the most specific reason (for example
/// "invalid peer certificate: UnknownIssuer" or "Connection refused").
fn root_cause(error: &(dyn std::error::Error + 'static)) -> String {
    let mut current = error;
    while let Some(next) = current.source() {
        current = next;
    }
    current.to_string()
}

/// The part of a URL that is safe and useful in an error: everything but the
/// query string.
pub fn endpoint_of(url: &str) -> &str {
    url.split('?').next().unwrap_or(url)
}

/// What replaces a credential found in an error body.
pub const REDACTED: &str = "[REDACTED]";

/// Replaces every credential we sent (client secret, assertion, bearer
/// token) in an error `body` before it is decoded into an error users
/// see, in the forms an endpoint could echo it: as sent, form-encoded and
/// JSON-escaped. Defence in depth: Entra ID and Key Vault do not echo
/// credentials today.
pub fn scrub_credentials(body: &mut Vec<u8>, credentials: &[&str]) {
    for credential in credentials.iter().filter(|c| !c.is_empty()) {
        let json = serde_json::to_string(credential).unwrap_or_default();
        let json = json.trim_matches('"').to_owned();
        let form = form_encode(credential);
        for form_of in [credential.to_string(), form, json] {
            replace_all(body, form_of.as_bytes(), REDACTED.as_bytes());
        }
    }
}

/// `application/x-www-form-urlencoded` of `text` (as reqwest's `.form`).
fn form_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'*' | b'-' | b'.' | b'_' => {
                out.push(b as char)
            }
            b' ' => out.push('+'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

fn replace_all(body: &mut Vec<u8>, needle: &[u8], with: &[u8]) {
    if needle.is_empty() || needle.len() > body.len() {
        return;
    }
    let mut out = Vec::with_capacity(body.len());
    let mut at = 0;
    let mut found = false;
    while at < body.len() {
        if body[at..].starts_with(needle) {
            out.extend_from_slice(with);
            at += needle.len();
            found = true;
        } else {
            out.push(body[at]);
            at += 1;
        }
    }
    if found {
        *body = out;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An error body that echoes what we sent loses it in every form.
    #[test]
    fn credentials_are_scrubbed_from_error_bodies() {
        let secret = "s3cr3t value/+&\"x";
        let mut body = format!(
            r#"{{"error":"invalid_client","error_description":"got client_secret={} raw {} json {}"}}"#,
            form_encode(secret),
            secret,
            serde_json::to_string(secret).unwrap().trim_matches('"'),
        )
        .into_bytes();
        scrub_credentials(&mut body, &[secret, ""]);
        let text = String::from_utf8(body).unwrap();
        assert!(!text.contains("s3cr3t"), "{text}");
        assert_eq!(text.matches(REDACTED).count(), 3, "{text}");
    }

    #[test]
    fn endpoint_drops_query() {
        assert_eq!(
            endpoint_of("https://kv.vault.azure.net/secrets/a/?api-version=7.4"),
            "https://kv.vault.azure.net/secrets/a/"
        );
        assert_eq!(endpoint_of("http://x/y"), "http://x/y");
    }

    #[test]
    fn empty_bundle_is_an_error() {
        let config = HttpConfig {
            user_agent: "t".into(),
            extra_roots_pem: Some(ExtraRoots {
                path: "/tmp/none.pem".into(),
                pem: b"not a pem".to_vec(),
            }),
            request_timeout: Duration::from_secs(1),
            connect_timeout: Duration::from_secs(1),
        };
        let err = Http::new(&config).unwrap_err().to_string();
        assert!(err.contains("/tmp/none.pem"), "{err}");
    }
}
