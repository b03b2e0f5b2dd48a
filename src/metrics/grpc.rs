//! The tower layer that records `grpc_request` for every RPC served on the
//! provider's socket, installed once with `Server::builder().layer(…)`:
//! handlers contain no metrics code.
//!
//! The method label is one of the known methods (or `other`: the path is
//! chosen by the client). The code comes from the `tonic::Status` tonic
//! puts in the response's extensions (or the `grpc-status` header); the
//! message label is the [`ErrorCode`] a handler attached as the status's
//! source, never the status message.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Instant;

use tower::{Layer, Service};

use super::{ErrorCode, Metrics};

/// RPCs of `v1alpha1.CSIDriverProvider` and `grpc.health.v1.Health/Check`,
/// by full method path.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum GrpcMethod {
    Version,
    Mount,
    HealthCheck,
    Other,
}

// === impl GrpcMethod ===

impl GrpcMethod {
    pub fn from_path(path: &str) -> Self {
        match path {
            "/v1alpha1.CSIDriverProvider/Version" => Self::Version,
            "/v1alpha1.CSIDriverProvider/Mount" => Self::Mount,
            "/grpc.health.v1.Health/Check" => Self::HealthCheck,
            _ => Self::Other,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Version => "/v1alpha1.CSIDriverProvider/Version",
            Self::Mount => "/v1alpha1.CSIDriverProvider/Mount",
            Self::HealthCheck => "/grpc.health.v1.Health/Check",
            Self::Other => "other",
        }
    }
}

/// Go's name of a gRPC code (`codes.Code.String()`), as upstream reports it.
pub fn go_code_name(code: tonic::Code) -> &'static str {
    use tonic::Code::*;
    match code {
        Ok => "OK",
        Cancelled => "Canceled",
        Unknown => "Unknown",
        InvalidArgument => "InvalidArgument",
        DeadlineExceeded => "DeadlineExceeded",
        NotFound => "NotFound",
        AlreadyExists => "AlreadyExists",
        PermissionDenied => "PermissionDenied",
        ResourceExhausted => "ResourceExhausted",
        FailedPrecondition => "FailedPrecondition",
        Aborted => "Aborted",
        OutOfRange => "OutOfRange",
        Unimplemented => "Unimplemented",
        Internal => "Internal",
        Unavailable => "Unavailable",
        DataLoss => "DataLoss",
        Unauthenticated => "Unauthenticated",
    }
}

/// Wraps the gRPC router so each request is timed and recorded.
#[derive(Clone, Debug)]
pub struct GrpcMetricsLayer {
    metrics: Metrics,
}

impl GrpcMetricsLayer {
    pub fn new(metrics: Metrics) -> Self {
        Self { metrics }
    }
}

impl<S> Layer<S> for GrpcMetricsLayer {
    type Service = GrpcMetricsService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        GrpcMetricsService {
            inner,
            metrics: self.metrics.clone(),
        }
    }
}

/// See [`GrpcMetricsLayer`].
#[derive(Clone, Debug)]
pub struct GrpcMetricsService<S> {
    inner: S,
    metrics: Metrics,
}

impl<S, B, RB> Service<http::Request<B>> for GrpcMetricsService<S>
where
    S: Service<http::Request<B>, Response = http::Response<RB>>,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<S::Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let method = GrpcMethod::from_path(request.uri().path());
        let started = Instant::now();
        let response = self.inner.call(request);
        let metrics = self.metrics.clone();
        Box::pin(async move {
            let response = response.await;
            if let Ok(response) = &response {
                let (code, message) = outcome(response);
                metrics.grpc_request(method, code, message, started.elapsed());
            }
            response
        })
    }
}

/// The status code and error code of a response. A unary error is a
/// "trailers-only" response whose `Status` tonic keeps in the extensions.
fn outcome<B>(response: &http::Response<B>) -> (tonic::Code, ErrorCode) {
    if let Some(status) = response.extensions().get::<tonic::Status>() {
        let code = std::error::Error::source(status)
            .and_then(|source| source.downcast_ref::<ErrorCode>())
            .cloned()
            .unwrap_or_else(ErrorCode::none);
        return (status.code(), code);
    }
    let code = response
        .headers()
        .get("grpc-status")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<i32>().ok())
        .map_or(tonic::Code::Ok, tonic::Code::from_i32);
    (code, ErrorCode::none())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn methods_are_bounded() {
        assert_eq!(
            GrpcMethod::from_path("/v1alpha1.CSIDriverProvider/Mount"),
            GrpcMethod::Mount
        );
        assert_eq!(
            GrpcMethod::from_path("/anything/the-client-wants"),
            GrpcMethod::Other
        );
    }

    #[test]
    fn status_source_is_the_message_label() {
        let mut status = tonic::Status::unknown("failed to mount objects, error: long text");
        status.set_source(std::sync::Arc::new(ErrorCode::new("SecretNotFound")));
        let response: http::Response<()> = status.into_http();
        let (code, message) = outcome(&response);
        assert_eq!(code, tonic::Code::Unknown);
        assert_eq!(message.as_str(), "SecretNotFound");

        let plain: http::Response<()> = tonic::Status::unimplemented("no such method").into_http();
        let (code, message) = outcome(&plain);
        assert_eq!(code, tonic::Code::Unimplemented);
        assert_eq!(message.as_str(), "");

        let ok = http::Response::new(());
        assert_eq!(outcome(&ok).0, tonic::Code::Ok);
    }

    #[test]
    fn go_names() {
        assert_eq!(go_code_name(tonic::Code::Ok), "OK");
        assert_eq!(go_code_name(tonic::Code::Cancelled), "Canceled");
        assert_eq!(go_code_name(tonic::Code::Unknown), "Unknown");
    }
}
