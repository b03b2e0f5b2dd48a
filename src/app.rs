//! Builds the long-lived parts from the configuration — one HTTP client, the
//! authenticator, the Key Vault client, the mount pipeline — and serves the
//! provider on its socket until SIGTERM or SIGINT. Shutdown is graceful:
//! the socket stops accepting, in-flight mounts finish, the socket file is
//! removed.

use std::future::Future;

use futures_util::TryStreamExt as _;
use thiserror::Error;
use tokio_stream::wrappers::{TcpListenerStream, UnixListenerStream};
use tonic::transport::Server;

use crate::auth::Authenticator;
use crate::authority::AuthorityRewrite;
use crate::config::Config;
use crate::http::{BuildError, Http};
use crate::keyvault::KeyVault;
use crate::mount::Mounter;
use crate::proto::csi_driver_provider_server::CsiDriverProviderServer;
use crate::server::Provider;
use crate::socket::{self, Endpoint, SocketError};

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
    #[error("gRPC server failed: {0}")]
    Serve(#[from] tonic::transport::Error),
}

/// Builds the provider service from the configuration.
pub fn provider(config: &Config) -> Result<Provider, AppError> {
    let http = Http::new(&config.http)?;
    let auth = Authenticator::new(http.clone(), &config.http, config.auth.clone())?;
    let mounter = Mounter::new(auth, KeyVault::new(http), config.mount.clone());
    Ok(Provider::new(mounter, config.parse.clone()))
}

/// Serves until `shutdown` completes.
pub async fn run(
    config: Config,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), AppError> {
    let service = CsiDriverProviderServer::new(provider(&config)?);
    let server = Server::builder().add_service(service);
    match &config.endpoint {
        Endpoint::Unix(path) => {
            let listener = socket::bind_unix(path)?;
            tracing::info!(endpoint = %config.endpoint, "serving the provider");
            // Old drivers send the socket path as :authority; see authority.rs.
            let incoming = UnixListenerStream::new(listener).map_ok(AuthorityRewrite::new);
            let served = server
                .serve_with_incoming_shutdown(incoming, shutdown)
                .await;
            socket::cleanup(path);
            served?;
        }
        Endpoint::Tcp(addr) => {
            let listener = tokio::net::TcpListener::bind(addr)
                .await
                .map_err(|source| AppError::Listen {
                    endpoint: config.endpoint.to_string(),
                    source,
                })?;
            tracing::info!(endpoint = %config.endpoint, "serving the provider (tcp, for debugging only)");
            let incoming = TcpListenerStream::new(listener);
            server
                .serve_with_incoming_shutdown(incoming, shutdown)
                .await?;
        }
    }
    tracing::info!("stopped");
    Ok(())
}

/// Completes on SIGTERM or SIGINT.
pub async fn shutdown_signal() {
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
    }
}
