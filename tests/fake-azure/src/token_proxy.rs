//! The AKS API server as the identity-binding token proxy sees it: one TLS
//! listener on loopback whose certificate depends on the server name (SNI)
//! the client sends.
//!
//! * SNI = [`server_name()`] (`a<base32hex(sha256("identity-binding" + id))>.ests.aks`,
//!   lowercase): the token proxy. `POST …/{tenant}/oauth2/v2.0/token` is
//!   Entra ID's client-credentials grant with a client assertion; the app's
//!   federated credential must name the audience `api://AKSIdentityBinding`.
//!   `GET …/{tenant}/v2.0/.well-known/openid-configuration` is passed on to
//!   Entra ID (MSAL reads it first, through the proxy).
//! * Any other name, or none: the API server, whose certificate carries the
//!   SAN `hcp-kubernetes.<cluster id>.svc.cluster.local` the provider reads
//!   to compute the SNI. It answers every request `401 Unauthorized`.
//!
//! Handshakes are counted by server name, token requests under the grant
//! kind `identity_binding` and the host `token-proxy`.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Instant;

use hyper::Request;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use sha2::{Digest as _, Sha256};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;
use tracing::{debug, info};

use crate::aad::{self, Via};
use crate::counters::grant;
use crate::fake::Shared;
use crate::faults::Target;
use crate::server::{accept_until_shutdown, delay_and_fault, stopped};
use crate::wire::{self, Req, Resp};

/// The fake cluster's id, as it appears in the API server's certificate.
pub const CLUSTER_ID: &str = "65f0c0ffee0000000000cafe";

/// The identity-binding server name for [`CLUSTER_ID`].
pub fn server_name() -> String {
    server_name_for(CLUSTER_ID)
}

/// `a` + base32hex (no padding) of SHA-256(`identity-binding` + id) +
/// `.ests.aks`, lowercase: how AKS names the token proxy of a cluster.
pub fn server_name_for(cluster_id: &str) -> String {
    let digest = Sha256::digest(format!("identity-binding{cluster_id}").as_bytes());
    format!("a{}.ests.aks", base32hex(&digest)).to_ascii_lowercase()
}

/// RFC 4648 base32 with the extended-hex alphabet, no padding.
fn base32hex(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 32] = b"0123456789ABCDEFGHIJKLMNOPQRSTUV";
    let mut out = String::with_capacity(bytes.len().div_ceil(5) * 8);
    let (mut buffer, mut bits) = (0u32, 0u32);
    for &byte in bytes {
        buffer = (buffer << 8) | u32::from(byte);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            out.push(ALPHABET[((buffer >> bits) & 31) as usize] as char);
        }
    }
    if bits > 0 {
        out.push(ALPHABET[((buffer << (5 - bits)) & 31) as usize] as char);
    }
    out
}

/// DNS names of the API server's certificate.
pub(crate) fn api_server_names() -> Vec<String> {
    vec![
        "localhost".to_string(),
        "127.0.0.1".to_string(),
        "kubernetes".to_string(),
        "kubernetes.default.svc".to_string(),
        "kubernetes.default.svc.cluster.local".to_string(),
        format!("hcp-kubernetes.{CLUSTER_ID}.svc.cluster.local"),
    ]
}

struct Ctx {
    shared: Arc<Shared>,
    tls: TlsAcceptor,
    shutdown: watch::Receiver<bool>,
}

/// Accepts TLS connections until shutdown is signalled.
pub(crate) async fn run(
    listener: TcpListener,
    shared: Arc<Shared>,
    tls: Arc<rustls::ServerConfig>,
    shutdown: watch::Receiver<bool>,
) {
    let ctx = Arc::new(Ctx {
        shared,
        tls: TlsAcceptor::from(tls),
        shutdown,
    });
    let stop = ctx.shutdown.clone();
    accept_until_shutdown(listener, stop, "fake token proxy", |stream| {
        serve(ctx.clone(), stream)
    })
    .await;
}

async fn serve(ctx: Arc<Ctx>, stream: TcpStream) {
    let mut stop = ctx.shutdown.clone();
    let handshake = tokio::select! {
        result = ctx.tls.accept(stream) => result,
        _ = stopped(&mut stop) => return,
    };
    let stream = match handshake {
        Ok(stream) => stream,
        Err(error) => {
            ctx.shared.counters().tls_handshake_failures += 1;
            debug!(%error, "token proxy TLS handshake failed");
            return;
        }
    };
    let server_name = stream.get_ref().1.server_name().unwrap_or("").to_string();
    {
        let mut counters = ctx.shared.counters();
        counters.tls_handshakes += 1;
        *counters
            .token_proxy_server_names
            .entry(server_name.clone())
            .or_default() += 1;
    }
    let is_proxy = server_name.eq_ignore_ascii_case(&self::server_name());
    let svc_ctx = ctx.clone();
    let svc = service_fn(move |req| {
        let ctx = svc_ctx.clone();
        async move { Ok::<_, Infallible>(request(&ctx.shared, is_proxy, req).await) }
    });
    let builder = auto::Builder::new(TokioExecutor::new());
    let conn = builder.serve_connection(TokioIo::new(stream), svc);
    tokio::select! {
        result = conn => if let Err(error) = result {
            debug!(%error, "token proxy connection ended with an error");
        },
        _ = stopped(&mut stop) => {}
    }
}

async fn request(shared: &Shared, is_proxy: bool, req: Request<Incoming>) -> Resp {
    let started = Instant::now();
    let (parts, body) = req.into_parts();
    let resp = match wire::read_body(body).await {
        Ok(body) => {
            let req = Req::from_parts(&parts, body);
            if is_proxy {
                token_proxy(shared, &req).await
            } else {
                api_server()
            }
        }
        Err(_) => wire::json(413, &serde_json::json!({"error": "request too large"})),
    };
    info!(
        method = %parts.method,
        path = parts.uri.path(),
        status = resp.status().as_u16(),
        token_proxy = is_proxy,
        elapsed_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
        "token proxy request"
    );
    resp
}

async fn token_proxy(shared: &Shared, req: &Req) -> Resp {
    let (segs, _) = req.segments();
    let tenant = match segs.as_slice() {
        [.., tenant, "oauth2", "v2.0", "token"] => tenant.to_ascii_lowercase(),
        // MSAL reads the tenant's metadata before the grant, through the
        // same proxy (azidentity rewrites every request of the credential
        // to it, keeping Entra ID's Host), which passes it to Entra ID.
        [.., tenant, "v2.0", ".well-known", "openid-configuration"] => {
            return aad::metadata_through_proxy(shared, &tenant.to_ascii_lowercase(), req);
        }
        _ => {
            return wire::json(
                404,
                &serde_json::json!({"error": "not_found", "error_description":
                    format!("fake token proxy: no endpoint at {}", req.path)}),
            );
        }
    };
    let fault = delay_and_fault(shared, Target::TokenProxy).await;
    let via = Via {
        host: "token-proxy",
        login: None,
        grant: Some(grant::IDENTITY_BINDING),
    };
    aad::token(shared, &via, &tenant, req, fault)
}

fn api_server() -> Resp {
    wire::json(
        401,
        &serde_json::json!({"kind": "Status", "apiVersion": "v1", "metadata": {},
            "status": "Failure", "message": "Unauthorized", "reason": "Unauthorized", "code": 401}),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_name_follows_the_aks_formula() {
        // Expected values computed independently (Python hashlib + base64.b32hexencode).
        assert_eq!(
            server_name_for("696995ccb303450001b31a18"),
            "aeaf29ip1hi5q38ebc3u4daum81u0unk52t5bg50j25234fmuj78g.ests.aks"
        );
        assert_eq!(
            server_name(),
            "a2kgur0m6tl43iq44sk6m1kmb6kmj30lvrn6rflusuv8ag8r9ddig.ests.aks"
        );
    }

    #[test]
    fn base32hex_matches_rfc4648_vectors() {
        assert_eq!(base32hex(b""), "");
        assert_eq!(base32hex(b"f"), "CO");
        assert_eq!(base32hex(b"fo"), "CPNG");
        assert_eq!(base32hex(b"foo"), "CPNMU");
        assert_eq!(base32hex(b"foob"), "CPNMUOG");
        assert_eq!(base32hex(b"fooba"), "CPNMUOJ1");
        assert_eq!(base32hex(b"foobar"), "CPNMUOJ1E8");
    }
}
