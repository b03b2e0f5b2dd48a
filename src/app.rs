//! Builds the long-lived parts from the configuration — one HTTP client, the
//! authenticator, the Key Vault client, the mount pipeline, the metrics
//! registry — and serves the provider and `grpc.health.v1.Health` on its
//! socket (with the gRPC metrics layer) plus the admin endpoints (`admin.rs`)
//! until SIGTERM or SIGINT. Shutdown is graceful but bounded: `/readyz`
//! turns 503, health turns `NOT_SERVING`, the socket stops accepting,
//! in-flight mounts run for at most `--drain-timeout` and are then cancelled
//! with an error the driver retries, the socket file is removed, the admin
//! listeners close last. SIGHUP is logged and ignored (there is no
//! configuration to reload).
//!
//! The socket's HTTP/2 limits (streams, windows, keep-alive) are set here,
//! and its layers: gRPC metrics, requests in flight per connection (for
//! `connection`'s idle timer) and the node-wide budget of unfinished
//! request bytes (`unfinished`); each connection is served by
//! `connection::serve`. Every bound and its reason is in docs/design.md's
//! limits table.

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use futures_util::{StreamExt as _, TryStreamExt as _};
use prometheus_client::registry::Registry;
use thiserror::Error;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_stream::wrappers::TcpListenerStream;
use tonic::transport::Server;
use tonic::transport::server::Router;
use tower::layer::util::{Identity, Stack};

use crate::admin::{self, AdminState, Probe, Readiness};
use crate::auth::Authenticator;
use crate::authority::AuthorityRewrite;
use crate::config::Config;
use crate::connection::{self, ActivityLayer, ConnectionLimits, ServeOne};
use crate::health::Health;
use crate::http::{BuildError, Http};
use crate::keyvault::KeyVault;
use crate::metrics::{GrpcMetricsLayer, Metrics};
use crate::mount::Mounter;
use crate::proto::csi_driver_provider_server::CsiDriverProviderServer;
use crate::reads::Reads;
use crate::server::{Drain, Provider};
use crate::socket::{self, Endpoint, SocketError};
use crate::unfinished::{self, Unfinished, UnfinishedLayer};

/// Why the app stopped with an error.
#[derive(Debug, Error)]
pub enum AppError {
    #[error(transparent)]
    Http(#[from] BuildError),
    #[error(transparent)]
    Socket(#[from] SocketError),
    #[error("cannot listen on {endpoint}: {source}")]
    Listen {
        endpoint: String,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Admin(#[from] admin::BindError),
}

/// Builds the provider service from the configuration, recording into
/// `metrics`.
pub fn provider(config: &Config, metrics: &Metrics) -> Result<Provider, AppError> {
    let http = Http::new(&config.http)?.with_metrics(metrics.clone());
    let auth = Authenticator::new(http.clone(), &config.http, config.auth.clone())?;
    let keyvault = KeyVault::new(http, &config.keyvault);
    let reads = Reads::new(keyvault, &config.reads);
    let mounter = Mounter::new(auth, reads, config.mount.clone()).with_metrics(metrics.clone());
    Ok(Provider::new(mounter, config.parse.clone()))
}

/// Serves the provider socket and the admin endpoints until `shutdown`
/// completes, then drains in-flight mounts.
pub async fn run(
    config: Config,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), AppError> {
    tracing::info!(
        version = env!("CARGO_PKG_VERSION"),
        "starting akv-csi-provider"
    );
    warn_on_stack_without_file(&config);
    let mut registry = Registry::default();
    let metrics = Metrics::register(&mut registry);
    let drain = Drain::new();
    let service = CsiDriverProviderServer::new(provider(&config, &metrics)?.with_drain(&drain));
    let health = Health::serving().await;
    let server = limits(Server::builder())
        .layer(GrpcMetricsLayer::new(metrics))
        .layer(ActivityLayer)
        .layer(UnfinishedLayer::new(Unfinished::new(unfinished::BUDGET)))
        .add_service(service)
        .add_service(health.service());
    // Admin first: a failure there leaves no socket file behind.
    let admin = admin::Listeners::bind(&config.admin).await?;
    let listener = GrpcListener::bind(&config.endpoint).await?;
    let readiness = Readiness::default();
    let accept = socket::AcceptHealth::default();
    let state = AdminState {
        accept: accept.clone(),
        registry: Arc::new(registry),
        readiness: readiness.clone(),
        probe: listener.probe(),
        healthz_path: config.admin.healthz_path.clone(),
        healthz_timeout: config.admin.healthz_timeout,
    };
    let (stop_admin, admin_stopped) = tokio::sync::oneshot::channel::<()>();
    let admin_task = tokio::spawn(admin.serve(state, async {
        let _ = admin_stopped.await;
    }));
    let (stopping, stopped) = tokio::sync::oneshot::channel::<()>();
    let shutdown = async {
        shutdown.await;
        readiness.set_stopping();
        health.set_draining().await;
        let _ = stopping.send(());
    };
    readiness.set_ready();
    let connections = ConnectionLimits {
        idle_timeout: config.serve.connection_idle_timeout,
    };
    let serve = serve_grpc(
        server,
        listener,
        &config.endpoint,
        shutdown,
        &accept,
        connections,
    );
    bounded_drain(serve, stopped, config.serve.drain_timeout, &drain).await;
    let _ = stop_admin.send(());
    // A client holding an admin connection open must not block the exit.
    let _ = tokio::time::timeout(std::time::Duration::from_secs(5), admin_task).await;
    tracing::info!("stopped");
    Ok(())
}

type GrpcRouter =
    Router<Stack<UnfinishedLayer, Stack<ActivityLayer, Stack<GrpcMetricsLayer, Identity>>>>;

/// After the drain time, how long cancelled mounts have to send their
/// error before the process exits anyway.
const CANCEL_GRACE: Duration = Duration::from_secs(2);

/// Runs `serve` to its end, but once `stopping` fires gives it only
/// `drain_timeout` (then cancels the mounts left and waits
/// [`CANCEL_GRACE`] for their answers).
async fn bounded_drain(
    serve: impl Future<Output = ()>,
    stopping: tokio::sync::oneshot::Receiver<()>,
    drain_timeout: Duration,
    drain: &Drain,
) {
    tokio::pin!(serve);
    tokio::select! {
        () = &mut serve => return,
        Ok(()) = stopping => {}
    }
    if tokio::time::timeout(drain_timeout, &mut serve)
        .await
        .is_ok()
    {
        return;
    }
    tracing::warn!(
        drain_timeout_ms = drain_timeout.as_millis() as u64,
        "drain time is over: cancelling the mounts still running"
    );
    drain.cancel_mounts();
    if tokio::time::timeout(CANCEL_GRACE, &mut serve)
        .await
        .is_err()
    {
        tracing::warn!("connections still open after cancelling; exiting anyway");
    }
}

/// The socket's HTTP/2 and gRPC limits (docs/design.md, limits table).
fn limits(builder: Server) -> Server {
    builder
        // A 500-pod burst fits on one driver connection.
        .max_concurrent_streams(Some(MAX_CONCURRENT_STREAMS))
        // Bytes a client may send ahead per stream and per connection:
        // bounds what unfinished requests hold in memory.
        .initial_stream_window_size(Some(STREAM_WINDOW))
        .initial_connection_window_size(Some(CONNECTION_WINDOW))
        // Dead or half-open peers are found and dropped.
        .http2_keepalive_interval(Some(Duration::from_secs(60)))
        .http2_keepalive_timeout(Some(Duration::from_secs(20)))
}

/// Streams one connection may have open (`SETTINGS_MAX_CONCURRENT_STREAMS`).
pub const MAX_CONCURRENT_STREAMS: u32 = 1024;
/// Flow-control window of one stream (bytes a client may send unread).
pub const STREAM_WINDOW: u32 = 1 << 20;
/// Flow-control window of one connection.
pub const CONNECTION_WINDOW: u32 = 8 << 20;

/// Serves the socket until `shutdown`, then removes the socket file.
async fn serve_grpc(
    server: GrpcRouter,
    listener: GrpcListener,
    endpoint: &Endpoint,
    shutdown: impl Future<Output = ()>,
    accept: &socket::AcceptHealth,
    limits: ConnectionLimits,
) {
    match listener {
        GrpcListener::Unix { listener, path, id } => {
            let accept = accept.clone();
            tracing::info!(%endpoint, "serving the provider");
            // Old drivers send the socket path as :authority; see authority.rs.
            let incoming = socket::incoming(listener, accept).map_ok(AuthorityRewrite::new);
            connection::serve(serve_one(server), incoming, shutdown, limits).await;
            socket::cleanup(&path, id);
        }
        GrpcListener::Tcp(listener) => {
            tracing::info!(%endpoint, "serving the provider (tcp, for debugging only)");
            let incoming = TcpListenerStream::new(listener);
            connection::serve(serve_one(server), incoming, shutdown, limits).await;
        }
    }
}

/// Serves one connection with tonic until it closes, or until `close` and
/// then its graceful close (GOAWAY, in-flight requests answered).
fn serve_one<IO>(server: GrpcRouter) -> ServeOne<IO>
where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    Arc::new(move |io, close| {
        let server = server.clone();
        Box::pin(async move {
            // A stream that never ends: only `close` stops this server.
            let incoming = futures_util::stream::iter([Ok::<_, std::io::Error>(io)])
                .chain(futures_util::stream::pending());
            if let Err(error) = server.serve_with_incoming_shutdown(incoming, close).await {
                tracing::debug!(%error, "serving a connection failed");
            }
        })
    })
}

/// The bound gRPC listener.
enum GrpcListener {
    Unix {
        listener: tokio::net::UnixListener,
        path: PathBuf,
        id: socket::SocketId,
    },
    Tcp(tokio::net::TcpListener),
}

impl GrpcListener {
    async fn bind(endpoint: &Endpoint) -> Result<Self, AppError> {
        match endpoint {
            Endpoint::Unix(path) => {
                let (listener, id) = socket::bind_unix(path)?;
                let path = path.clone();
                Ok(Self::Unix { listener, path, id })
            }
            Endpoint::Tcp(addr) => tokio::net::TcpListener::bind(addr)
                .await
                .map(Self::Tcp)
                .map_err(|source| AppError::Listen {
                    endpoint: endpoint.to_string(),
                    source,
                }),
        }
    }

    /// What `/healthz` dials to reach this listener.
    fn probe(&self) -> Probe {
        match self {
            Self::Unix { path, .. } => Probe::Unix(path.clone()),
            Self::Tcp(listener) => {
                let mut addr = listener
                    .local_addr()
                    .unwrap_or_else(|_| SocketAddr::from(([127, 0, 0, 1], 0)));
                if addr.ip().is_unspecified() {
                    addr.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
                }
                Probe::Tcp(addr)
            }
        }
    }
}

/// `--cloud-name=AzureStackCloud` starts (the file is read per mount, so a
/// file that appears later needs no restart); without the variable, say now
/// what mounts without `cloudEnvFileName` will fail with.
fn warn_on_stack_without_file(config: &Config) {
    let parse = &config.parse;
    if crate::cloud::is_azure_stack(&parse.default_cloud_name) && parse.environment_file.is_empty()
    {
        tracing::warn!(
            "--cloud-name={} but AZURE_ENVIRONMENT_FILEPATH is not set: mounts without cloudName and cloudEnvFileName will fail; set it to the path of the cloud environment JSON file",
            parse.default_cloud_name
        );
    }
}

/// Completes on SIGTERM or SIGINT; logs and ignores SIGHUP (its default
/// action would kill the provider and leave a stale socket).
pub async fn shutdown_signal() {
    let hangup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup());
    let hangups = async {
        match hangup {
            Ok(mut signal) => loop {
                signal.recv().await;
                tracing::info!(
                    "SIGHUP ignored: there is no configuration to reload; SIGTERM stops the provider"
                );
            },
            Err(e) => {
                tracing::warn!(error = %e, "cannot watch SIGHUP");
                std::future::pending::<()>().await
            }
        }
    };
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot watch SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    tokio::select! {
        _ = terminate => tracing::info!("SIGTERM: finishing in-flight mounts"),
        _ = tokio::signal::ctrl_c() => tracing::info!("SIGINT: finishing in-flight mounts"),
        () = hangups => {}
    }
}
