//! The gRPC edge: `v1alpha1.CSIDriverProvider` (`Version`, `Mount`). Turns a
//! `MountRequest` into parsed parameters, runs the mount, and maps the
//! outcome to a response or to the one error status users see in pod events
//! (`Unknown`, `failed to mount objects, error: <cause>`, as upstream).
//!
//! Each mount is logged once here, with pod, SecretProviderClass, object
//! count, duration and result; a panic inside a mount becomes that mount's
//! error instead of taking the connection down. Each mount runs within its
//! time budget (`budget`: `--mount-timeout`, or the driver's `grpc-timeout`
//! when shorter), whose [`Context`] is made here and passed down.
//!
//! At shutdown, mounts still running when the drain time
//! (`--drain-timeout`) is over are cancelled through [`Drain`] and answer
//! a clear error, so the driver retries them on the next provider.
//!
//! What runs a parsed mount is a [`RunMount`] (`mount::Mounter` in the
//! process), so tests can drive the panic isolation without a hook in
//! production code. This module must not fetch or convert.

use std::borrow::Cow;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::FutureExt as _;
use tonic::{Request, Response, Status};

use crate::budget::{self, Budget, Context};
use crate::metrics::ErrorCode;
use crate::mount::{MountError, MountOutput, Mounter};
use crate::params::{self, MountParams, ParseOptions};
use crate::proto;
use crate::proto::csi_driver_provider_server::CsiDriverProvider;

/// API version served.
pub const API_VERSION: &str = "v1alpha1";
/// Runtime name reported by `Version`.
pub const RUNTIME_NAME: &str = "akv-csi-provider";

/// Runs one parsed mount within the budget's context.
pub trait RunMount: Send + Sync + 'static {
    /// The whole mount's time limit when the driver sends no deadline.
    fn mount_timeout(&self) -> Duration;

    /// Fetches and renders every object of `params`.
    fn run(
        &self,
        cx: &Context,
        params: &MountParams,
    ) -> impl Future<Output = Result<MountOutput, MountError>> + Send;
}

/// The provider service.
#[derive(Clone, Debug)]
pub struct Provider<M = Mounter> {
    mounter: M,
    parse: ParseOptions,
    drain: tokio::sync::watch::Receiver<bool>,
}

/// Cancels the mounts still running when the drain time is over.
#[derive(Debug)]
pub struct Drain(tokio::sync::watch::Sender<bool>);

// === impl Drain ===

impl Drain {
    pub fn new() -> Self {
        Self(tokio::sync::watch::Sender::new(false))
    }

    /// Every running and later mount fails with the shutdown error.
    pub fn cancel_mounts(&self) {
        self.0.send_replace(true);
    }
}

impl Default for Drain {
    fn default() -> Self {
        Self::new()
    }
}

/// Completes once the mounts are cancelled; never if they cannot be.
async fn cancelled(mut drain: tokio::sync::watch::Receiver<bool>) {
    if drain.wait_for(|cancelled| *cancelled).await.is_err() {
        std::future::pending::<()>().await;
    }
}

// === impl Mounter ===

impl RunMount for Mounter {
    fn mount_timeout(&self) -> Duration {
        Mounter::mount_timeout(self)
    }

    fn run(
        &self,
        cx: &Context,
        params: &MountParams,
    ) -> impl Future<Output = Result<MountOutput, MountError>> + Send {
        Mounter::run(self, cx, params)
    }
}

// === impl Provider ===

impl<M: RunMount> Provider<M> {
    pub fn new(mounter: M, parse: ParseOptions) -> Self {
        let drain = Drain::new().0.subscribe();
        Self {
            mounter,
            parse,
            drain,
        }
    }

    /// Mounts fail with a shutdown error once `drain` cancels them.
    pub fn with_drain(mut self, drain: &Drain) -> Self {
        self.drain = drain.0.subscribe();
        self
    }

    /// Parses and runs one mount within its time budget; the error is the
    /// user-facing cause.
    async fn mount(
        &self,
        request: &proto::MountRequest,
        deadline: Option<Duration>,
        log: &mut MountLog,
    ) -> Result<MountOutput, Failure> {
        let params: MountParams = params::parse(
            &request.attributes,
            &request.secrets,
            &request.permission,
            &self.parse,
        )
        .map_err(|e| Failure::new(e.code(), &e))?;
        log.describe(&params);
        let budget = Budget::new(self.mounter.mount_timeout(), deadline);
        // A misspelled identity or cloud key shows up as a failure here.
        let hints = params.hints.for_mount_error();
        let (mounter, params) = (&self.mounter, &params);
        let run = budget.run(|cx| async move { mounter.run(&cx, params).await });
        tokio::select! {
            outcome = run => match outcome {
                Ok(Ok(output)) => Ok(output),
                Ok(Err(e)) => Err(Failure::new(e.code(), &format_args!("{e}{hints}"))),
                Err(exceeded) => Err(Failure::new("Timeout", &format_args!("{exceeded}{hints}"))),
            },
            () = cancelled(self.drain.clone()) => Err(Failure::new("ShuttingDown", &SHUTTING_DOWN)),
        }
    }
}

#[tonic::async_trait]
impl<M: RunMount> CsiDriverProvider for Provider<M> {
    async fn version(
        &self,
        _request: Request<proto::VersionRequest>,
    ) -> Result<Response<proto::VersionResponse>, Status> {
        Ok(Response::new(proto::VersionResponse {
            version: API_VERSION.to_owned(),
            runtime_name: RUNTIME_NAME.to_owned(),
            runtime_version: env!("CARGO_PKG_VERSION").to_owned(),
        }))
    }

    async fn mount(
        &self,
        request: Request<proto::MountRequest>,
    ) -> Result<Response<proto::MountResponse>, Status> {
        let deadline = request
            .metadata()
            .get("grpc-timeout")
            .and_then(|v| v.to_str().ok())
            .and_then(budget::parse_grpc_timeout);
        let request = request.into_inner();
        let mut log = MountLog::default();
        let outcome = AssertUnwindSafe(self.mount(&request, deadline, &mut log))
            .catch_unwind()
            .await
            .unwrap_or_else(|_| Err(Failure::new("Internal", &"internal error: the mount panicked; this is a bug in akv-csi-provider, please report it")));
        log.finish(&outcome);
        match outcome {
            Ok(output) => Ok(Response::new(response(output))),
            Err(failure) => {
                let mut status = Status::unknown(format!(
                    "failed to mount objects, error: {}",
                    failure.message
                ));
                // For the grpc_request metric (metrics/grpc.rs); never sent.
                status.set_source(Arc::new(failure.code));
                Err(status)
            }
        }
    }
}

fn response(output: MountOutput) -> proto::MountResponse {
    let files = output
        .files
        .into_iter()
        .map(|mut file| proto::File {
            path: file.path,
            mode: file.mode.bits() as i32,
            contents: std::mem::take(&mut *file.contents),
        })
        .collect();
    let object_version = output
        .versions
        .into_iter()
        .map(|v| proto::ObjectVersion {
            id: v.id,
            version: v.version,
        })
        .collect();
    proto::MountResponse {
        object_version,
        error: None,
        files,
    }
}

/// Why a mount failed: the bounded code (metrics, logs) and the cause users
/// see after `failed to mount objects, error: `.
struct Failure {
    code: ErrorCode,
    message: String,
}

impl Failure {
    fn new(code: impl Into<Cow<'static, str>>, error: &dyn std::fmt::Display) -> Self {
        Self {
            code: ErrorCode::new(code),
            message: one_line(&error.to_string()),
        }
    }
}

/// The error of a mount cancelled at shutdown.
pub const SHUTTING_DOWN: &str = "the provider is shutting down and cancelled this mount when its \
     drain time (--drain-timeout) ran out; the driver retries the mount";

/// Longest error message sent to the driver (it ends up in a pod event).
pub const MAX_MESSAGE_BYTES: usize = 4096;

/// An error message as users see it: control characters escaped (a value
/// from the SecretProviderClass must not start a new log line or event
/// line) and at most [`MAX_MESSAGE_BYTES`], cut at a character boundary.
pub fn one_line(message: &str) -> String {
    const CUT: &str = " …";
    let mut out = String::with_capacity(message.len().min(MAX_MESSAGE_BYTES));
    let mut piece = String::new();
    for c in message.chars() {
        piece.clear();
        if c.is_control() {
            piece.extend(c.escape_default());
        } else {
            piece.push(c);
        }
        if out.len() + piece.len() > MAX_MESSAGE_BYTES - CUT.len() {
            out.push_str(CUT);
            break;
        }
        out.push_str(&piece);
    }
    out
}

/// The fields of the one log line per mount.
struct MountLog {
    started: Instant,
    namespace: String,
    pod: String,
    spc: String,
    objects: usize,
}

impl Default for MountLog {
    fn default() -> Self {
        Self {
            started: Instant::now(),
            namespace: String::new(),
            pod: String::new(),
            spc: String::new(),
            objects: 0,
        }
    }
}

impl MountLog {
    fn describe(&mut self, params: &MountParams) {
        self.namespace = params.pod.namespace.clone();
        self.pod = params.pod.name.clone();
        self.spc = params.secret_provider_class.clone().unwrap_or_default();
        self.objects = params.objects.len();
    }

    fn finish(&self, outcome: &Result<MountOutput, Failure>) {
        let duration_ms = self.started.elapsed().as_millis() as u64;
        match outcome {
            Ok(output) => tracing::info!(
                namespace = %self.namespace,
                pod = %self.pod,
                secret_provider_class = %self.spc,
                objects = self.objects,
                files = output.files.len(),
                duration_ms,
                "mount succeeded"
            ),
            Err(failure) => tracing::warn!(
                namespace = %self.namespace,
                pod = %self.pod,
                secret_provider_class = %self.spc,
                objects = self.objects,
                duration_ms,
                code = %failure.code,
                error = %failure.message,
                "mount failed"
            ),
        }
    }
}

#[cfg(test)]
mod tests;
