//! A client that opens gRPC streams on the provider's socket and leaves
//! them unfinished: each sends its headers and a message prefix declaring
//! `declared` bytes, then all but the last of them, and never ends the
//! stream. The `h2` crate does the flow control (it queues what the
//! server's windows do not admit yet). Used by the limits tests and the
//! attack measurements (examples/attack.rs).

#![allow(dead_code)]

use std::path::Path;
use std::time::Duration;

use bytes::Bytes;
use tokio::net::UnixStream;

/// The streams of one or more connections, kept open while this lives.
pub struct Stalled {
    /// Each stream's sending half (dropping it would reset the stream).
    senders: Vec<h2::SendStream<Bytes>>,
    /// Each stream's answer, once the server sends one.
    responses: Vec<h2::client::ResponseFuture>,
}

/// The Mount method's path.
const MOUNT: &str = "http://localhost/v1alpha1.CSIDriverProvider/Mount";

impl Stalled {
    /// Opens `streams` streams on each of `connections` connections, each
    /// declaring a message of `declared` bytes and sending `sent` of them
    /// (`declared` 0: headers only). A connection whose server admits no
    /// further stream for a second (its concurrent-stream limit) gets no
    /// more.
    pub async fn open(
        socket: &Path,
        connections: usize,
        streams: usize,
        declared: usize,
        sent: usize,
    ) -> anyhow::Result<Self> {
        let mut stalled = Self {
            senders: Vec::new(),
            responses: Vec::new(),
        };
        let mut body = vec![0u8];
        body.extend_from_slice(&u32::try_from(declared)?.to_be_bytes());
        body.resize(5 + sent.min(declared), b'x');
        let body = Bytes::from(body);
        for _ in 0..connections {
            let io = UnixStream::connect(socket).await?;
            let (mut client, connection) = h2::client::Builder::new()
                .max_concurrent_reset_streams(usize::MAX)
                .handshake::<_, Bytes>(io)
                .await?;
            tokio::spawn(connection);
            for _ in 0..streams {
                let Ok(ready) = tokio::time::timeout(Duration::from_secs(1), client.ready()).await
                else {
                    break;
                };
                client = ready?;
                let request = http::Request::post(MOUNT)
                    .header("content-type", "application/grpc")
                    .header("te", "trailers")
                    .body(())?;
                let (response, mut sender) = client.send_request(request, false)?;
                if declared > 0 {
                    sender.send_data(body.clone(), false)?;
                }
                stalled.senders.push(sender);
                stalled.responses.push(response);
            }
        }
        Ok(stalled)
    }

    /// The `grpc-status` of each stream answered within `wait` and not
    /// reported before (`None`: reset, or no status).
    pub async fn answered(&mut self, wait: Duration) -> Vec<Option<i32>> {
        let mut codes = Vec::new();
        let deadline = tokio::time::Instant::now() + wait;
        for mut response in std::mem::take(&mut self.responses) {
            let Ok(answer) = tokio::time::timeout_at(deadline, &mut response).await else {
                self.responses.push(response);
                continue;
            };
            let code = answer.ok().and_then(|response| {
                let status = response.headers().get("grpc-status")?;
                status.to_str().ok()?.parse().ok()
            });
            codes.push(code);
        }
        codes
    }

    /// How many streams are open.
    pub fn len(&self) -> usize {
        self.senders.len()
    }
}
