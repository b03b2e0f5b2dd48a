//! `grpc.health.v1.Health` on the provider socket, next to
//! `v1alpha1.CSIDriverProvider`, as upstream registers it. Statuses are kept
//! by `tonic-health`'s reporter: `SERVING` for `""` and for the provider
//! service while the socket serves, `NOT_SERVING` for both once shutdown
//! begins (draining). `/healthz` (`admin.rs`) calls `Check` with `""`.
//!
//! Differences from upstream, which answers `SERVING` to everything: a
//! service name other than those two is `NotFound` (the gRPC health
//! protocol's answer, so a probe naming a wrong service fails instead of
//! passing), and the status follows draining. `Watch` is `Unimplemented`
//! with upstream's text: an open watch stream would hold the graceful drain
//! open. This module holds no provider logic.

use tonic::{Request, Response, Status};
use tonic_health::ServingStatus;
use tonic_health::pb::health_server::{Health as HealthRpc, HealthServer};
use tonic_health::pb::{HealthCheckRequest, HealthCheckResponse};
use tonic_health::server::HealthReporter;

/// The provider service's full name, as `Check` requests name it.
pub const PROVIDER_SERVICE: &str = "v1alpha1.CSIDriverProvider";

/// The statuses served; cloned handles share them.
#[derive(Clone, Debug)]
pub struct Health {
    reporter: HealthReporter,
}

/// The `grpc.health.v1.Health` service over a [`Health`]'s statuses.
#[derive(Debug)]
pub struct HealthService {
    inner: tonic_health::server::HealthService,
}

// === impl Health ===

impl Health {
    /// Both names `SERVING`.
    pub async fn serving() -> Self {
        let health = Self {
            reporter: HealthReporter::new(),
        };
        health.set(ServingStatus::Serving).await;
        health
    }

    /// Both names `NOT_SERVING`: shutdown has begun.
    pub async fn set_draining(&self) {
        self.set(ServingStatus::NotServing).await;
    }

    /// The gRPC service to add next to the provider's.
    pub fn service(&self) -> HealthServer<HealthService> {
        HealthServer::new(HealthService {
            inner: tonic_health::server::HealthService::from_health_reporter(self.reporter.clone()),
        })
    }

    async fn set(&self, status: ServingStatus) {
        for name in ["", PROVIDER_SERVICE] {
            self.reporter.set_service_status(name, status).await;
        }
    }
}

// === impl HealthService ===

#[tonic::async_trait]
impl HealthRpc for HealthService {
    async fn check(
        &self,
        request: Request<HealthCheckRequest>,
    ) -> Result<Response<HealthCheckResponse>, Status> {
        self.inner.check(request).await
    }

    type WatchStream = futures_util::stream::Empty<Result<HealthCheckResponse, Status>>;

    async fn watch(
        &self,
        _request: Request<HealthCheckRequest>,
    ) -> Result<Response<Self::WatchStream>, Status> {
        Err(Status::unimplemented("Watch is not supported"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tonic_health::pb::health_check_response::ServingStatus as Wire;

    async fn check(service: &HealthService, name: &str) -> Result<i32, tonic::Code> {
        let request = Request::new(HealthCheckRequest {
            service: name.to_owned(),
        });
        service
            .check(request)
            .await
            .map(|r| r.into_inner().status)
            .map_err(|s| s.code())
    }

    #[tokio::test]
    async fn serving_then_not_serving_once_draining() {
        let health = Health::serving().await;
        let service = HealthService {
            inner: tonic_health::server::HealthService::from_health_reporter(
                health.reporter.clone(),
            ),
        };
        for name in ["", PROVIDER_SERVICE] {
            assert_eq!(
                check(&service, name).await,
                Ok(Wire::Serving as i32),
                "{name:?}"
            );
        }
        health.set_draining().await;
        for name in ["", PROVIDER_SERVICE] {
            assert_eq!(
                check(&service, name).await,
                Ok(Wire::NotServing as i32),
                "{name:?}"
            );
        }
        assert_eq!(
            check(&service, "v1alpha1.Other").await,
            Err(tonic::Code::NotFound)
        );
    }
}
