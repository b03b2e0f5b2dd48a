//! One budget, shared by every connection of the socket, for the bytes of
//! requests still being received: each gRPC message reserves the length its
//! 5-byte prefix declares, before its bytes are buffered, and gives it back
//! once the message has arrived whole (or the request is dropped). A message
//! that would take the node past [`BUDGET`] is refused at once with
//! `RESOURCE_EXHAUSTED`; one that has not arrived within [`RECEIVE_TIMEOUT`]
//! of its prefix is refused with `DEADLINE_EXCEEDED`, so a stalled client
//! cannot sit on the budget.
//!
//! Why a budget of our own: HTTP/2 flow control bounds only the bytes nobody
//! has read yet, and tonic reads every message into a buffer of its full
//! declared length as it arrives, so the windows alone let 64 unfinished
//! 3.9 MiB messages hold 250 MiB. Must not decode messages: that is
//! tonic's job.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll, ready};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use tonic::Status;
use tower::{Layer, Service};

/// Bytes of unfinished request messages the whole node may hold: four
/// messages of tonic's 4 MiB limit at once, or sixteen 1 MiB `objects`
/// documents. A Mount request is a few KiB plus its `objects`, and arrives
/// in well under a millisecond on a unix socket, so legitimate bursts stay
/// far below it.
pub const BUDGET: usize = 16 << 20;
/// Longest time a reserved message may take to arrive whole.
pub const RECEIVE_TIMEOUT: Duration = Duration::from_secs(10);
/// Largest message tonic accepts (its default decoding limit); a larger
/// prefix is refused by tonic itself, so it reserves nothing here.
const MAX_MESSAGE: usize = 4 << 20;
/// gRPC's message prefix: a compression flag and a big-endian length.
const PREFIX: usize = 5;

/// The node-wide budget.
#[derive(Clone, Debug)]
pub struct Unfinished(Arc<Budget>);

#[derive(Debug)]
struct Budget {
    used: AtomicUsize,
    limit: usize,
}

// === impl Unfinished ===

impl Unfinished {
    pub fn new(limit: usize) -> Self {
        Self(Arc::new(Budget {
            used: AtomicUsize::new(0),
            limit,
        }))
    }

    /// Bytes reserved now.
    pub fn used(&self) -> usize {
        self.0.used.load(Ordering::SeqCst)
    }

    /// Reserves `bytes`, or says how much is reserved already.
    fn reserve(&self, bytes: usize) -> Result<Reservation, usize> {
        self.0
            .used
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |used| {
                used.checked_add(bytes)
                    .filter(|total| *total <= self.0.limit)
            })
            .map(|_| Reservation {
                budget: self.clone(),
                bytes,
            })
    }
}

/// Bytes of one message, given back on drop.
#[derive(Debug)]
struct Reservation {
    budget: Unfinished,
    bytes: usize,
}

impl Drop for Reservation {
    fn drop(&mut self) {
        self.budget.0.used.fetch_sub(self.bytes, Ordering::SeqCst);
    }
}

/// Puts every request body under the budget.
#[derive(Clone, Debug)]
pub struct UnfinishedLayer {
    budget: Unfinished,
}

impl UnfinishedLayer {
    pub fn new(budget: Unfinished) -> Self {
        Self { budget }
    }
}

impl<S> Layer<S> for UnfinishedLayer {
    type Service = UnfinishedService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        UnfinishedService {
            inner,
            budget: self.budget.clone(),
        }
    }
}

/// See [`UnfinishedLayer`].
#[derive(Clone, Debug)]
pub struct UnfinishedService<S> {
    inner: S,
    budget: Unfinished,
}

impl<S> Service<http::Request<tonic::body::Body>> for UnfinishedService<S>
where
    S: Service<http::Request<tonic::body::Body>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<tonic::body::Body>) -> Self::Future {
        let budget = self.budget.clone();
        self.inner
            .call(request.map(|body| tonic::body::Body::new(Receiving::new(body, budget))))
    }
}

/// A request body whose messages are reserved as their prefixes arrive.
struct Receiving<B> {
    inner: B,
    budget: Unfinished,
    prefix: [u8; PREFIX],
    /// Bytes of the current prefix seen so far.
    prefix_seen: usize,
    /// Bytes of the current message still to come.
    remaining: usize,
    held: Option<Reservation>,
    deadline: Option<Pin<Box<tokio::time::Sleep>>>,
}

// === impl Receiving ===

impl<B> Receiving<B> {
    fn new(inner: B, budget: Unfinished) -> Self {
        Self {
            inner,
            budget,
            prefix: [0; PREFIX],
            prefix_seen: 0,
            remaining: 0,
            held: None,
            deadline: None,
        }
    }

    /// Follows the message boundaries through one DATA frame.
    fn account(&mut self, mut data: &[u8]) -> Result<(), Status> {
        while !data.is_empty() {
            if self.remaining > 0 {
                let n = self.remaining.min(data.len());
                self.remaining -= n;
                data = &data[n..];
                if self.remaining == 0 {
                    self.held = None;
                    self.deadline = None;
                }
                continue;
            }
            let n = (PREFIX - self.prefix_seen).min(data.len());
            self.prefix[self.prefix_seen..self.prefix_seen + n].copy_from_slice(&data[..n]);
            self.prefix_seen += n;
            data = &data[n..];
            if self.prefix_seen == PREFIX {
                self.prefix_seen = 0;
                let [_, a, b, c, d] = self.prefix;
                self.begin_message(u32::from_be_bytes([a, b, c, d]) as usize)?;
            }
        }
        Ok(())
    }

    /// Reserves a message of `len` bytes whose prefix has just arrived.
    fn begin_message(&mut self, len: usize) -> Result<(), Status> {
        self.remaining = len;
        if len == 0 || len > MAX_MESSAGE {
            return Ok(());
        }
        let reservation = self.budget.reserve(len).map_err(|used| {
            Status::resource_exhausted(format!(
                "the provider is receiving {used} bytes of unfinished requests on this node \
                 and this request's {len}-byte message would take it past the limit of {} \
                 bytes; retry later",
                self.budget.0.limit
            ))
        })?;
        self.held = Some(reservation);
        self.deadline = Some(Box::pin(tokio::time::sleep(RECEIVE_TIMEOUT)));
        Ok(())
    }

    fn overdue(&mut self) -> Status {
        self.held = None;
        self.deadline = None;
        Status::deadline_exceeded(format!(
            "the request's message did not arrive whole within {} s of its start; \
             {} bytes were still missing",
            RECEIVE_TIMEOUT.as_secs(),
            self.remaining
        ))
    }
}

impl<B> Body for Receiving<B>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: Into<tonic::codegen::StdError>,
{
    type Data = Bytes;
    type Error = Status;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Status>>> {
        let this = &mut *self;
        let frame = match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Pending => {
                if let Some(deadline) = this.deadline.as_mut() {
                    ready!(deadline.as_mut().poll(cx));
                    return Poll::Ready(Some(Err(this.overdue())));
                }
                return Poll::Pending;
            }
            Poll::Ready(frame) => frame,
        };
        let frame = match frame {
            None => {
                this.held = None;
                this.deadline = None;
                return Poll::Ready(None);
            }
            Some(Err(error)) => {
                this.held = None;
                return Poll::Ready(Some(Err(Status::from_error(error.into()))));
            }
            Some(Ok(frame)) => frame,
        };
        if let Some(data) = frame.data_ref()
            && let Err(refused) = this.account(data)
        {
            return Poll::Ready(Some(Err(refused)));
        }
        Poll::Ready(Some(Ok(frame)))
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(len: usize) -> Vec<u8> {
        let mut bytes = vec![0u8];
        bytes.extend_from_slice(&(len as u32).to_be_bytes());
        bytes.resize(PREFIX + len, b'x');
        bytes
    }

    #[tokio::test]
    async fn a_message_holds_its_length_until_it_has_arrived() {
        let budget = Unfinished::new(1000);
        let mut body = Receiving::new((), budget.clone());
        let bytes = message(600);
        body.account(&bytes[..3]).unwrap();
        assert_eq!(budget.used(), 0, "the prefix is not complete yet");
        body.account(&bytes[3..100]).unwrap();
        assert_eq!(budget.used(), 600);
        body.account(&bytes[100..]).unwrap();
        assert_eq!(budget.used(), 0, "arrived whole");
    }

    #[tokio::test]
    async fn a_message_past_the_budget_is_refused_before_its_bytes() {
        let budget = Unfinished::new(1000);
        let mut first = Receiving::new((), budget.clone());
        first.account(&message(600)[..10]).unwrap();
        let mut second = Receiving::new((), budget.clone());
        let refused = second.account(&message(500)[..10]).unwrap_err();
        assert_eq!(refused.code(), tonic::Code::ResourceExhausted);
        assert!(
            refused.message().starts_with(
                "the provider is receiving 600 bytes of unfinished requests on this node and \
                 this request's 500-byte message would take it past the limit of 1000 bytes"
            ),
            "{}",
            refused.message()
        );
        drop(first);
        assert_eq!(budget.used(), 0, "a dropped request gives its bytes back");
        let mut third = Receiving::new((), budget.clone());
        third.account(&message(500)[..10]).unwrap();
        assert_eq!(budget.used(), 500);
    }

    #[tokio::test]
    async fn messages_split_anywhere_are_followed() {
        let budget = Unfinished::new(1000);
        let mut body = Receiving::new((), budget.clone());
        let mut stream = message(7);
        stream.extend(message(300));
        stream.extend(message(0));
        for byte in stream.chunks(1) {
            body.account(byte).unwrap();
            assert!(budget.used() <= 300);
        }
        assert_eq!(budget.used(), 0);
        assert_eq!((body.remaining, body.prefix_seen), (0, 0));
    }
}
