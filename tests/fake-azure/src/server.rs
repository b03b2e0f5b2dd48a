//! Transport: one loopback TCP listener that is both an HTTPS proxy and the
//! control endpoint, and the TLS termination behind the proxy.
//!
//! * `CONNECT host:port` → `200`, then TLS with the fake's leaf certificate
//!   on the tunnel, then HTTP/1.1 or HTTP/2 (by ALPN) routed by the
//!   request's `Host` / `:authority` — not by the CONNECT target.
//! * Any other request → the node-local token endpoints (IMDS, NMI) in
//!   `node.rs`, else the plain-HTTP control routes in `control.rs`.
//!
//! A CONNECT to the host of a vault that does not exist is refused with
//! `502`, as a real proxy does when DNS fails. Every request is logged once
//! at info with method, host, path and status; never bodies or headers.
//! Transport faults (`faults::Transport`) are applied here, to the answer a
//! handler gave.

use std::future::Future as _;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::Instant;

use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use hyper::body::{Body, Frame, Incoming, SizeHint};
use hyper::service::service_fn;
use hyper::upgrade::Upgraded;
use hyper::{Method, Request};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;
use tracing::{debug, info, warn};

use crate::cloud::{self, Route};
use crate::fake::Shared;
use crate::faults::{Injected, Target, Transport};
use crate::wire::{self, Req, Resp};
use crate::{aad, control, keyvault, node};

/// What every connection task needs.
struct Ctx {
    shared: Arc<Shared>,
    tls: TlsAcceptor,
    shutdown: watch::Receiver<bool>,
}

/// Accepts connections until shutdown is signalled.
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
    accept_until_shutdown(listener, stop, "fake-azure listener", |stream| {
        serve_plain(ctx.clone(), stream)
    })
    .await;
}

/// Accepts connections until shutdown is signalled, serving each in its
/// own task; `what` names the listener in logs. Shared by every listener
/// of the fake.
pub(crate) async fn accept_until_shutdown<F, Fut>(
    listener: TcpListener,
    mut stop: watch::Receiver<bool>,
    what: &str,
    serve: F,
) where
    F: Fn(TcpStream) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    loop {
        tokio::select! {
            _ = stopped(&mut stop) => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _peer)) => {
                    tokio::spawn(serve(no_delay(stream)));
                }
                Err(error) => {
                    warn!(%error, "{what}: accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                }
            },
        }
    }
    debug!("{what} closed");
}

/// An accepted socket with `TCP_NODELAY`, as Azure's front ends (and Go's
/// and reqwest's clients) use: without it, Nagle's algorithm holds the TLS
/// handshake's small writes behind the client's delayed ACK, some 40 ms per
/// new connection on loopback, which made every cold connection look slow.
pub(crate) fn no_delay(stream: TcpStream) -> TcpStream {
    if let Err(error) = stream.set_nodelay(true) {
        debug!(%error, "TCP_NODELAY not set");
    }
    stream
}

/// Resolves once shutdown is signalled (or the handle is gone).
pub(crate) async fn stopped(rx: &mut watch::Receiver<bool>) {
    let _ = rx.wait_for(|stop| *stop).await;
}

/// Serves plain HTTP/1.1 on an accepted socket, with CONNECT upgrades.
async fn serve_plain(ctx: Arc<Ctx>, stream: TcpStream) {
    let mut stop = ctx.shutdown.clone();
    let svc_ctx = ctx.clone();
    let svc = service_fn(move |req| plain_request(svc_ctx.clone(), req));
    let conn = hyper::server::conn::http1::Builder::new()
        .serve_connection(TokioIo::new(stream), svc)
        .with_upgrades();
    tokio::select! {
        result = conn => if let Err(error) = result {
            debug!(%error, "plain connection ended with an error");
        },
        _ = stopped(&mut stop) => {}
    }
}

async fn plain_request(
    ctx: Arc<Ctx>,
    req: Request<Incoming>,
) -> Result<hyper::Response<FaultBody>, std::io::Error> {
    if req.method() == Method::CONNECT {
        return Ok(connect(&ctx, req).map(FaultBody::Whole));
    }
    let started = Instant::now();
    let (parts, body) = req.into_parts();
    let (host, target, resp) = match wire::read_body(body).await {
        Ok(body) => {
            let req = Req::from_parts(&parts, body);
            let target = plain_target(&req);
            (
                req.host.clone(),
                target,
                route_plain(&ctx.shared, &req).await,
            )
        }
        Err(_) => (String::new(), None, too_large()),
    };
    log(&parts.method, &host, parts.uri.path(), &resp, started);
    let fault = target.and_then(|t| ctx.shared.faults().take_transport(t));
    apply_transport(resp, fault).await
}

/// The node-local service a plain request is for, if any.
fn plain_target(req: &Req) -> Option<Target> {
    match req.segments().0.as_slice() {
        ["metadata", "identity", "oauth2", "token"] => Some(Target::Imds),
        ["host", "token"] => Some(Target::Nmi),
        _ => None,
    }
}

/// Plain HTTP: the node-local token endpoints (IMDS, NMI) with their
/// latency and faults, else the control API.
pub(crate) async fn route_plain(shared: &Shared, req: &Req) -> Resp {
    let Some(target) = plain_target(req) else {
        return control::handle(shared, req);
    };
    let fault = delay_and_fault(shared, target).await;
    match target {
        Target::Imds => node::imds(shared, req, fault),
        _ => node::nmi(shared, req, fault),
    }
}

/// Sleeps for the target's latency, then consumes one of its faults.
pub(crate) async fn delay_and_fault(shared: &Shared, target: Target) -> Option<Injected> {
    let latency = shared.faults().latency(target);
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
    shared.faults().take(target, Instant::now())
}

/// Answers a CONNECT and serves TLS on the tunnel once hyper hands it over.
fn connect(ctx: &Arc<Ctx>, mut req: Request<Incoming>) -> Resp {
    let target = req
        .uri()
        .authority()
        .map(|a| a.as_str().to_string())
        .unwrap_or_default();
    let host = cloud::normalize_host(&target);
    if let Route::KeyVault { vault, .. } = cloud::route(&host)
        && ctx.shared.state().vault(&vault).is_none()
    {
        info!(method = "CONNECT", host = %host, status = 502, "tunnel refused: no such vault");
        return wire::empty(502);
    }
    ctx.shared.counters().tunnels += 1;
    let on_upgrade = hyper::upgrade::on(&mut req);
    let ctx = ctx.clone();
    tokio::spawn(async move {
        match on_upgrade.await {
            Ok(upgraded) => serve_tls(ctx, upgraded).await,
            Err(error) => debug!(%error, "CONNECT upgrade failed"),
        }
    });
    info!(method = "CONNECT", host = %host, status = 200, "tunnel");
    wire::empty(200)
}

/// Terminates TLS on a tunnel and serves HTTP/1.1 or HTTP/2 on it.
async fn serve_tls(ctx: Arc<Ctx>, upgraded: Upgraded) {
    let mut stop = ctx.shutdown.clone();
    let handshake = tokio::select! {
        result = ctx.tls.accept(TokioIo::new(upgraded)) => result,
        _ = stopped(&mut stop) => return,
    };
    let stream = match handshake {
        Ok(stream) => {
            ctx.shared.counters().tls_handshakes += 1;
            stream
        }
        Err(error) => {
            ctx.shared.counters().tls_handshake_failures += 1;
            debug!(%error, "TLS handshake failed");
            return;
        }
    };
    let svc_ctx = ctx.clone();
    let svc = service_fn(move |req| {
        let ctx = svc_ctx.clone();
        async move { azure_request(&ctx.shared, req).await }
    });
    let builder = auto::Builder::new(TokioExecutor::new());
    let conn = builder.serve_connection(TokioIo::new(stream), svc);
    tokio::select! {
        result = conn => if let Err(error) = result {
            debug!(%error, "TLS connection ended with an error");
        },
        _ = stopped(&mut stop) => {}
    }
}

async fn azure_request(
    shared: &Shared,
    req: Request<Incoming>,
) -> Result<hyper::Response<FaultBody>, std::io::Error> {
    let started = Instant::now();
    let (parts, body) = req.into_parts();
    if let Some(agent) = parts.headers.get(hyper::header::USER_AGENT) {
        let agent = String::from_utf8_lossy(agent.as_bytes());
        shared.counters().user_agent(&agent);
    }
    let (host, resp) = match wire::read_body(body).await {
        Ok(body) => {
            let req = Req::from_parts(&parts, body);
            (req.host.clone(), route_azure(shared, &req).await)
        }
        Err(_) => (String::new(), too_large()),
    };
    log(&parts.method, &host, parts.uri.path(), &resp, started);
    let target = match cloud::route(&host) {
        Route::Aad(_) => Some(Target::Aad),
        Route::KeyVault { .. } => Some(Target::KeyVault),
        Route::Unknown => None,
    };
    let fault = target.and_then(|t| shared.faults().take_transport(t));
    if fault == Some(Transport::ResetMidBody) {
        shared.counters().responses_cut_off += 1;
    }
    apply_transport(resp, fault).await
}

/// A handler's answer with a transport fault applied: `Err` drops it (the
/// connection or stream is reset without an answer).
async fn apply_transport(
    resp: Resp,
    fault: Option<Transport>,
) -> Result<hyper::Response<FaultBody>, std::io::Error> {
    let Some(fault) = fault else {
        return Ok(resp.map(FaultBody::Whole));
    };
    if fault == Transport::Drop {
        return Err(std::io::Error::new(
            std::io::ErrorKind::ConnectionReset,
            "fault: no answer",
        ));
    }
    let (mut parts, body) = resp.into_parts();
    let bytes = match body.collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(never) => match never {},
    };
    let half = bytes.len() / 2;
    let body = match fault {
        Transport::Malformed => {
            parts.headers.remove(hyper::header::CONTENT_LENGTH);
            FaultBody::Whole(Full::new(bytes.slice(..half)))
        }
        Transport::ResetMidBody | Transport::StallBody(_) => FaultBody::Broken {
            len: bytes.len() as u64,
            first: Some(bytes.slice(..half)),
            // Before a reset too: HTTP/2 drops the frames of a reset stream
            // that are not sent yet, headers included.
            pause: Some(Box::pin(tokio::time::sleep(match fault {
                Transport::StallBody(pause) => pause,
                _ => std::time::Duration::from_millis(20),
            }))),
            reset: fault == Transport::ResetMidBody,
            rest: Some(bytes.slice(half..)),
        },
        Transport::Drop => unreachable!("handled above"),
    };
    Ok(hyper::Response::from_parts(parts, body))
}

/// A response body that may break on purpose: sent whole, or in two parts
/// with a pause or a reset between them.
pub(crate) enum FaultBody {
    Whole(Full<Bytes>),
    Broken {
        /// The whole body's length (announced as `Content-Length`).
        len: u64,
        first: Option<Bytes>,
        pause: Option<Pin<Box<tokio::time::Sleep>>>,
        reset: bool,
        rest: Option<Bytes>,
    },
}

impl Body for FaultBody {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        match self.get_mut() {
            Self::Whole(body) => Pin::new(body)
                .poll_frame(cx)
                .map_err(|never| match never {}),
            Self::Broken {
                first,
                pause,
                reset,
                rest,
                ..
            } => {
                if let Some(first) = first.take() {
                    return Poll::Ready(Some(Ok(Frame::data(first))));
                }
                if let Some(sleep) = pause {
                    ready!(sleep.as_mut().poll(cx));
                    *pause = None;
                }
                if std::mem::take(reset) {
                    return Poll::Ready(Some(Err(std::io::Error::new(
                        std::io::ErrorKind::ConnectionReset,
                        "fault: reset mid-body",
                    ))));
                }
                Poll::Ready(rest.take().map(|rest| Ok(Frame::data(rest))))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            Self::Whole(body) => body.is_end_stream(),
            Self::Broken { first, rest, .. } => first.is_none() && rest.is_none(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            Self::Whole(body) => body.size_hint(),
            Self::Broken { len, .. } => SizeHint::with_exact(*len),
        }
    }
}

/// Applies latency and faults for the request's service, then handles it.
pub(crate) async fn route_azure(shared: &Shared, req: &Req) -> Resp {
    let route = cloud::route(&req.host);
    let target = match &route {
        Route::Aad(_) => Some(Target::Aad),
        Route::KeyVault { .. } => Some(Target::KeyVault),
        Route::Unknown => None,
    };
    if let Some(target) = target {
        let latency = shared.faults().latency(target);
        if !latency.is_zero() {
            tokio::time::sleep(latency).await;
        }
    }
    if let Route::KeyVault { .. } = &route {
        let (segs, _) = req.segments();
        let extra = segs.get(1).map_or_else(Default::default, |name| {
            shared.faults().object_latency(name)
        });
        if !extra.is_zero() {
            tokio::time::sleep(extra).await;
        }
    }
    let fault = target.and_then(|t| shared.faults().take(t, Instant::now()));
    match route {
        Route::Aad(cloud) => aad::handle(shared, cloud, req, fault),
        Route::KeyVault { vault, cloud } => keyvault::handle(shared, cloud, &vault, req, fault),
        Route::Unknown => match shared.issuers().serve(req) {
            Some(resp) => resp,
            None => wire::json(
                404,
                &serde_json::json!({"error": {"code": "UnknownHost",
                "message": format!("fake-azure does not serve host '{}'", req.host)}}),
            ),
        },
    }
}

fn too_large() -> Resp {
    wire::json(
        413,
        &serde_json::json!({"error": {"code": "RequestEntityTooLarge",
            "message": format!("request bodies are limited to {} bytes", wire::MAX_BODY_BYTES)}}),
    )
}

fn log(method: &Method, host: &str, path: &str, resp: &Resp, started: Instant) {
    info!(
        %method,
        host,
        path,
        status = resp.status().as_u16(),
        elapsed_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
        "request"
    );
}
