//! The admin HTTP endpoints, apart from the gRPC socket: liveness on
//! `--healthz-port`/`--healthz-path` (a `grpc.health.v1.Health/Check` call
//! with service `""` over the provider's own socket within
//! `--healthz-timeout`, as upstream), readiness on
//! `/readyz` of the same port (a latch set once the socket serves, cleared
//! when shutdown begins), and Prometheus `/metrics` on `--prometheus-port`.
//!
//! Both listeners bind every interface by default, like upstream: on the
//! host network kubelet probes the node's address. `--admin-bind-address`
//! narrows them (tests use `127.0.0.1` with port 0; the bound addresses are
//! logged). Paths are matched by hand, so no `--healthz-path` value can make
//! the router panic. This module holds no provider logic.

use std::future::Future;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::Duration;

use axum::extract::State;
use axum::http::{StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use prometheus_client::registry::Registry;
use thiserror::Error;
use tokio::net::TcpListener;

use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

/// Where and how the admin endpoints are served.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AdminConfig {
    /// `None`: every interface (dual-stack when IPv6 is available).
    pub bind: Option<IpAddr>,
    pub healthz_port: u16,
    pub healthz_path: String,
    pub healthz_timeout: Duration,
    pub prometheus_port: u16,
}

/// A listener could not be bound.
#[derive(Debug, Error)]
#[error("cannot listen on {address} ({flag}): {source}")]
pub struct BindError {
    address: String,
    flag: &'static str,
    #[source]
    source: std::io::Error,
}

/// What `/healthz` dials: the provider's own gRPC endpoint.
#[derive(Clone, Debug)]
pub enum Probe {
    Unix(PathBuf),
    Tcp(SocketAddr),
}

/// The readiness latch: starting → ready → stopping.
#[derive(Clone, Debug, Default)]
pub struct Readiness(Arc<AtomicU8>);

const STARTING: u8 = 0;
const READY: u8 = 1;
const STOPPING: u8 = 2;

// === impl Readiness ===

impl Readiness {
    /// The socket is serving.
    pub fn set_ready(&self) {
        let _ = self
            .0
            .compare_exchange(STARTING, READY, Ordering::SeqCst, Ordering::SeqCst);
    }

    /// Shutdown has begun; stays so.
    pub fn set_stopping(&self) {
        self.0.store(STOPPING, Ordering::SeqCst);
    }

    /// `Ok` when ready, else why not.
    fn check(&self) -> Result<(), &'static str> {
        match self.0.load(Ordering::SeqCst) {
            READY => Ok(()),
            STOPPING => Err("shutting down"),
            _ => Err("starting"),
        }
    }
}

/// The bound admin listeners, before serving.
#[derive(Debug)]
pub struct Listeners {
    health: TcpListener,
    /// `None` when metrics share the health port.
    metrics: Option<TcpListener>,
}

/// Everything the handlers need.
#[derive(Clone, Debug)]
pub struct AdminState {
    pub registry: Arc<Registry>,
    pub readiness: Readiness,
    pub probe: Probe,
    pub healthz_path: String,
    pub healthz_timeout: Duration,
    /// Failures of the socket's accept loop (the open-file limit).
    pub accept: crate::socket::AcceptHealth,
}

#[derive(Clone, Debug)]
struct Routes {
    state: AdminState,
    metrics: bool,
}

// === impl Listeners ===

impl Listeners {
    /// Binds both listeners (one when the ports are equal and not 0).
    pub async fn bind(config: &AdminConfig) -> Result<Self, BindError> {
        let health = bind(config.bind, config.healthz_port, "--healthz-port").await?;
        let shared = config.prometheus_port == config.healthz_port && config.healthz_port != 0;
        let metrics = if shared {
            None
        } else {
            Some(bind(config.bind, config.prometheus_port, "--prometheus-port").await?)
        };
        Ok(Self { health, metrics })
    }

    /// The health listener's address.
    pub fn health_addr(&self) -> Option<SocketAddr> {
        self.health.local_addr().ok()
    }

    /// The metrics listener's address.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        match &self.metrics {
            Some(listener) => listener.local_addr().ok(),
            None => self.health_addr(),
        }
    }

    /// Serves until `shutdown` completes.
    pub async fn serve(
        self,
        state: AdminState,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) {
        let (stop, stopped) = tokio::sync::watch::channel(false);
        let signal = move || {
            let mut stopped = stopped.clone();
            async move {
                let _ = stopped.wait_for(|s| *s).await;
            }
        };
        let address = |a: Option<SocketAddr>| a.map_or_else(String::new, |a| a.to_string());
        tracing::info!(address = %address(self.health_addr()), path = %state.healthz_path, "serving health checks and /readyz");
        tracing::info!(address = %address(self.metrics_addr()), "serving /metrics");
        let health = serve_one(
            self.health,
            Routes {
                state: state.clone(),
                metrics: self.metrics.is_none(),
            },
            signal(),
        );
        let metrics = self.metrics.map(|listener| {
            let routes = Routes {
                state,
                metrics: true,
            };
            serve_one(listener, routes, signal())
        });
        let serving = async {
            match metrics {
                Some(metrics) => {
                    tokio::join!(health, metrics);
                }
                None => health.await,
            }
        };
        tokio::pin!(serving);
        tokio::select! {
            () = &mut serving => {}
            () = shutdown => {
                let _ = stop.send(true);
                serving.await;
            }
        }
    }
}

async fn serve_one(
    listener: TcpListener,
    routes: Routes,
    shutdown: impl Future<Output = ()> + Send + 'static,
) {
    let router = axum::Router::new().fallback(route).with_state(routes);
    if let Err(e) = axum::serve(listener, router)
        .with_graceful_shutdown(shutdown)
        .await
    {
        tracing::error!(error = %e, "admin HTTP server failed");
    }
}

/// Binds `ip:port`, or every interface: `[::]` (dual-stack on Linux),
/// falling back to `0.0.0.0` where IPv6 is disabled.
async fn bind(ip: Option<IpAddr>, port: u16, flag: &'static str) -> Result<TcpListener, BindError> {
    let candidates = match ip {
        Some(ip) => vec![SocketAddr::new(ip, port)],
        None => vec![
            SocketAddr::new(IpAddr::V6(Ipv6Addr::UNSPECIFIED), port),
            SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), port),
        ],
    };
    let mut last = None;
    for address in candidates {
        match TcpListener::bind(address).await {
            Ok(listener) => return Ok(listener),
            Err(e) => last = Some((address, e)),
        }
    }
    let (address, source) = last.expect("at least one candidate address");
    Err(BindError {
        address: address.to_string(),
        flag,
        source,
    })
}

async fn route(State(routes): State<Routes>, uri: Uri) -> Response {
    let path = uri.path();
    if path == routes.state.healthz_path {
        healthz(&routes.state).await
    } else if path == "/readyz" {
        readyz(&routes.state.readiness)
    } else if path == "/metrics" && routes.metrics {
        metrics(&routes.state.registry)
    } else {
        (StatusCode::NOT_FOUND, "not found\n").into_response()
    }
}

/// 200 `ok` when `Health/Check` answers `SERVING` over the socket in time,
/// else 503 with the reason.
async fn healthz(state: &AdminState) -> Response {
    let limit = state.healthz_timeout;
    let outcome = match state.accept.failing() {
        Some(failing) => Err(failing),
        None => match tokio::time::timeout(limit, check(&state.probe)).await {
            Ok(outcome) => outcome,
            Err(_) => Err(format!("Health/Check did not answer within {limit:?}")),
        },
    };
    match outcome {
        Ok(()) => (StatusCode::OK, "ok").into_response(),
        Err(reason) => {
            let reason = format!("health check over {}: {reason}", state.probe);
            tracing::warn!(%reason, "health check failed");
            (StatusCode::SERVICE_UNAVAILABLE, reason).into_response()
        }
    }
}

fn readyz(readiness: &Readiness) -> Response {
    match readiness.check() {
        Ok(()) => (StatusCode::OK, "ok").into_response(),
        Err(why) => (StatusCode::SERVICE_UNAVAILABLE, format!("not ready: {why}")).into_response(),
    }
}

fn metrics(registry: &Registry) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        crate::metrics::encode(registry),
    )
        .into_response()
}

/// One `Health/Check` (service `""`) on a fresh connection to the
/// provider's endpoint, as upstream's `/healthz` makes.
async fn check(probe: &Probe) -> Result<(), String> {
    let probe = probe.clone();
    let channel = tonic::transport::Endpoint::from_static("http://localhost")
        .connect_with_connector(tower::service_fn(move |_| {
            let probe = probe.clone();
            async move { connect(&probe).await }
        }))
        .await
        .map_err(|e| format!("cannot connect: {}", root_cause(&e)))?;
    let request = HealthCheckRequest {
        service: String::new(),
    };
    let response = HealthClient::new(channel)
        .check(request)
        .await
        .map_err(|status| format!("Health/Check failed: {}", status.code()))?;
    match response.into_inner().status() {
        ServingStatus::Serving => Ok(()),
        other => Err(format!(
            "expected health check response serving, got {}",
            other.as_str_name()
        )),
    }
}

type Io = hyper_util::rt::TokioIo<Box<dyn IoStream>>;

trait IoStream: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Unpin {}
impl<T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Unpin> IoStream for T {}

async fn connect(probe: &Probe) -> std::io::Result<Io> {
    let stream: Box<dyn IoStream> = match probe {
        Probe::Unix(path) => Box::new(tokio::net::UnixStream::connect(path).await?),
        Probe::Tcp(addr) => Box::new(tokio::net::TcpStream::connect(addr).await?),
    };
    Ok(hyper_util::rt::TokioIo::new(stream))
}

fn root_cause(error: &(dyn std::error::Error + 'static)) -> String {
    let mut current = error;
    while let Some(next) = current.source() {
        current = next;
    }
    current.to_string()
}

impl std::fmt::Display for Probe {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Unix(path) => write!(f, "unix://{}", path.display()),
            Self::Tcp(addr) => write!(f, "tcp://{addr}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn readiness_latch() {
        let readiness = Readiness::default();
        assert_eq!(readiness.check(), Err("starting"));
        readiness.set_ready();
        assert_eq!(readiness.check(), Ok(()));
        readiness.set_stopping();
        readiness.set_ready();
        assert_eq!(readiness.check(), Err("shutting down"));
    }
}
