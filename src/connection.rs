//! The socket's connections, each served on its own: an idle timer per
//! connection that knows about its requests in flight (a connection with a
//! mount in progress is never idle), a graceful close (HTTP/2 GOAWAY: grpc-go
//! dials again for its next call instead of failing one) when the timer runs
//! out or the provider stops, and a hard close of a connection that has
//! nothing in flight and is still open [`CLOSE_GRACE`] after that (a peer
//! that never sent the HTTP/2 preface, or stopped answering).
//!
//! tonic's server closes connections gracefully only all at once, at
//! shutdown, so each connection gets a tonic server of its own here; gRPC
//! itself (routes, `grpc-timeout`, status mapping) stays tonic's. Must not
//! interpret requests beyond counting them.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use futures_util::task::AtomicWaker;
use futures_util::{Stream, StreamExt as _};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::watch;
use tokio::task::JoinSet;
use tonic::transport::server::Connected;
use tower::{Layer, Service};

/// After a close was asked for, how long a connection with nothing in
/// flight may take to finish it (GOAWAY, PING, GOAWAY take well under a
/// millisecond on a unix socket) before it is closed hard.
pub const CLOSE_GRACE: Duration = Duration::from_secs(2);

/// Requests of one connection, as the idle timer sees them.
#[derive(Clone, Copy, Debug, Default)]
struct Requests {
    /// Requests whose answer is not complete yet.
    open: usize,
    /// Requests ever started: a request that comes and goes between two
    /// looks of the timer still restarts it.
    started: u64,
}

/// One connection's requests in flight and its hard-close switch; the
/// connection's `ConnectInfo`, so [`ActivityLayer`] finds it in every
/// request's extensions.
#[derive(Clone, Debug)]
pub struct Activity(Arc<Shared>);

#[derive(Debug)]
struct Shared {
    requests: watch::Sender<Requests>,
    killed: AtomicBool,
    reader: AtomicWaker,
}

// === impl Activity ===

impl Activity {
    fn new() -> Self {
        Self(Arc::new(Shared {
            requests: watch::Sender::new(Requests::default()),
            killed: AtomicBool::new(false),
            reader: AtomicWaker::new(),
        }))
    }

    /// Counts a request as in flight until the guard is dropped.
    fn begin(&self) -> InFlight {
        self.0.requests.send_modify(|requests| {
            requests.open += 1;
            requests.started += 1;
        });
        InFlight(self.clone())
    }

    fn open_requests(&self) -> usize {
        self.0.requests.borrow().open
    }

    /// Completes once no request has been in flight for `timeout`.
    async fn idle_for(&self, timeout: Duration) {
        let mut requests = self.0.requests.subscribe();
        loop {
            let Ok(now) = requests.wait_for(|r| r.open == 0).await.map(|r| *r) else {
                return std::future::pending().await;
            };
            let busy = requests.wait_for(|r| r.open > 0 || r.started != now.started);
            if tokio::time::timeout(timeout, busy).await.is_err() {
                return;
            }
        }
    }

    /// Makes every later read and write of the connection fail, so hyper
    /// drops it.
    fn kill(&self) {
        self.0.killed.store(true, Ordering::SeqCst);
        self.0.reader.wake();
    }

    fn killed(&self) -> bool {
        self.0.killed.load(Ordering::SeqCst)
    }
}

/// A request in flight on its connection.
struct InFlight(Activity);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.0.requests.send_modify(|requests| requests.open -= 1);
    }
}

/// An accepted stream with its connection's [`Activity`]; dropping it (hyper
/// is done with the connection) tells the connection's task.
#[derive(Debug)]
pub struct Tracked<S> {
    inner: S,
    activity: Activity,
    _open: tokio::sync::oneshot::Sender<()>,
}

// === impl Tracked ===

impl<S> Tracked<S> {
    fn new(inner: S) -> (Self, Activity, tokio::sync::oneshot::Receiver<()>) {
        let activity = Activity::new();
        let (open, closed) = tokio::sync::oneshot::channel();
        let tracked = Self {
            inner,
            activity: activity.clone(),
            _open: open,
        };
        (tracked, activity, closed)
    }

    fn aborted() -> io::Error {
        io::Error::new(
            io::ErrorKind::ConnectionAborted,
            "connection closed by the provider",
        )
    }
}

impl<S> Connected for Tracked<S> {
    type ConnectInfo = Activity;

    fn connect_info(&self) -> Self::ConnectInfo {
        self.activity.clone()
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Tracked<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        this.activity.0.reader.register(cx.waker());
        if this.activity.killed() {
            return Poll::Ready(Err(Self::aborted()));
        }
        Pin::new(&mut this.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Tracked<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if this.activity.killed() {
            return Poll::Ready(Err(Self::aborted()));
        }
        Pin::new(&mut this.inner).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

/// Counts each request as in flight on its connection until its answer is
/// ready (or the request is dropped), for the idle timer.
#[derive(Clone, Copy, Debug, Default)]
pub struct ActivityLayer;

impl<S> Layer<S> for ActivityLayer {
    type Service = ActivityService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        ActivityService { inner }
    }
}

/// See [`ActivityLayer`].
#[derive(Clone, Debug)]
pub struct ActivityService<S> {
    inner: S,
}

impl<S, B> Service<http::Request<B>> for ActivityService<S>
where
    S: Service<http::Request<B>>,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<S::Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let in_flight = request.extensions().get::<Activity>().map(Activity::begin);
        let answer = self.inner.call(request);
        Box::pin(async move {
            let answer = answer.await;
            drop(in_flight);
            answer
        })
    }
}

/// How connections are served.
#[derive(Clone, Copy, Debug)]
pub struct ConnectionLimits {
    /// Close a connection after this long without a request in flight;
    /// `None`: never.
    pub idle_timeout: Option<Duration>,
}

/// Completes when a connection should close (gracefully).
pub type CloseSignal = Pin<Box<dyn Future<Output = ()> + Send>>;

/// Serves one connection until it closes by itself, or until the signal
/// completes and it has then closed gracefully.
pub type ServeOne<IO> =
    Arc<dyn Fn(Tracked<IO>, CloseSignal) -> Pin<Box<dyn Future<Output = ()> + Send>> + Send + Sync>;

/// Serves every connection of `incoming` with `serve_one` until `shutdown`,
/// then closes them gracefully and waits for them.
pub async fn serve<IO: Send + 'static>(
    serve_one: ServeOne<IO>,
    incoming: impl Stream<Item = io::Result<IO>>,
    shutdown: impl Future<Output = ()>,
    limits: ConnectionLimits,
) {
    let (stop, stopping) = watch::channel(false);
    let mut connections = JoinSet::new();
    // Boxed, not pinned on the stack, so that dropping it at shutdown
    // closes the listener at once (clients then fail fast, not hang).
    let mut incoming = Box::pin(incoming);
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            () = &mut shutdown => break,
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
            accepted = incoming.next() => match accepted {
                Some(Ok(io)) => {
                    connections.spawn(one(serve_one.clone(), io, stopping.clone(), limits));
                }
                Some(Err(error)) => tracing::debug!(%error, "accept failed"),
                None => break,
            },
        }
    }
    drop(incoming);
    stop.send_replace(true);
    while connections.join_next().await.is_some() {}
}

/// Why a connection is asked to close.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Close {
    Idle,
    Shutdown,
    ClosedByPeer,
}

/// Serves one connection until it closes.
async fn one<IO: Send + 'static>(
    serve_one: ServeOne<IO>,
    io: IO,
    mut stopping: watch::Receiver<bool>,
    limits: ConnectionLimits,
) {
    let (tracked, activity, closed) = Tracked::new(io);
    let (asked, reason) = watch::channel(None::<Close>);
    let idle = {
        let activity = activity.clone();
        async move {
            match limits.idle_timeout {
                Some(timeout) => activity.idle_for(timeout).await,
                None => std::future::pending().await,
            }
        }
    };
    let close = async move {
        let why = tokio::select! {
            () = idle => Close::Idle,
            _ = stopping.wait_for(|stop| *stop) => Close::Shutdown,
            _ = closed => Close::ClosedByPeer,
        };
        if why == Close::Idle {
            tracing::debug!(timeout = ?limits.idle_timeout, "closing an idle connection (GOAWAY)");
        }
        asked.send_replace(Some(why));
    };
    let served = serve_one(tracked, Box::pin(close));
    tokio::pin!(served);
    tokio::select! {
        () = &mut served => return,
        () = close_overdue(&activity, reason) => {}
    }
    tracing::debug!("closing a connection that did not finish closing");
    activity.kill();
    served.await;
}

/// Completes when a close was asked for and the connection, with nothing
/// in flight, is still open [`CLOSE_GRACE`] later.
async fn close_overdue(activity: &Activity, mut reason: watch::Receiver<Option<Close>>) {
    if reason.wait_for(Option::is_some).await.is_err() {
        return std::future::pending().await;
    }
    loop {
        tokio::time::sleep(CLOSE_GRACE).await;
        if activity.open_requests() == 0 {
            return;
        }
    }
}
