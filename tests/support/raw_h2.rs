//! A deliberately small HTTP/2 gRPC client that talks to a unix socket the
//! way Secrets Store CSI Driver ≤ v1.5 does: grpc-go dialled the socket path
//! without an authority override, so `:authority` carries the socket path
//! (`/var/run/secrets-store-csi-providers/azure.sock`, or a percent-encoded
//! form). A tonic client cannot send such an authority, hence this client.
//!
//! It sends the connection preface, an empty SETTINGS, then per call one
//! HEADERS frame and the request as DATA frames with END_STREAM; it answers
//! SETTINGS and PING, returns flow-control credit, and reads until every
//! stream has ended or been reset. It is self-contained (loona-hpack, tokio,
//! bytes) so the unit and integration tests can both include it with
//! `#[path]`. It is not a general client: unary calls only, all request
//! bodies of one connection within the default 65,535-byte window.

#![allow(dead_code)]

use std::io;
use std::path::Path;
use std::time::Duration;

use bytes::{Buf, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixStream;

/// Upper bound for one whole call, connect included.
pub const TIMEOUT: Duration = Duration::from_secs(10);

pub const PREFACE: &[u8; 24] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

pub const DATA: u8 = 0x0;
pub const HEADERS: u8 = 0x1;
pub const RST_STREAM: u8 = 0x3;
pub const SETTINGS: u8 = 0x4;
pub const PING: u8 = 0x6;
pub const GOAWAY: u8 = 0x7;
pub const WINDOW_UPDATE: u8 = 0x8;
pub const CONTINUATION: u8 = 0x9;

pub const END_STREAM: u8 = 0x1;
pub const ACK: u8 = 0x1;
pub const END_HEADERS: u8 = 0x4;
pub const PADDED: u8 = 0x8;
pub const PRIORITY: u8 = 0x20;

/// The smallest SETTINGS_MAX_FRAME_SIZE a peer may advertise (RFC 9113).
const MAX_FRAME: usize = 16_384;
/// The initial flow-control window of every stream and the connection.
const INITIAL_WINDOW: usize = 65_535;
/// Largest frame accepted from the server: its default SETTINGS_MAX_FRAME_SIZE
/// applies to what it sends us, since we advertise nothing.
const MAX_RECV_FRAME: usize = 16_384;

/// What came back for one call.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct RawResponse {
    /// `:status`; `None` when the stream was reset before any headers.
    pub http_status: Option<u16>,
    /// `grpc-status` from the trailers (or a trailers-only response).
    pub grpc_status: Option<i32>,
    /// `grpc-message`, percent-decoded.
    pub grpc_message: Option<String>,
    /// The gRPC message payload, without its 5-byte length prefix.
    pub message: Option<Vec<u8>>,
    /// The RST_STREAM error code, when the server reset the stream.
    pub reset: Option<u32>,
}

/// Makes one unary gRPC call with the given `:authority` and `:path`
/// (e.g. `/v1alpha1.CSIDriverProvider/Version`); `request` is the encoded
/// protobuf message. Fails after [`TIMEOUT`].
pub async fn unary(
    socket: &Path,
    authority: &str,
    method_path: &str,
    request: &[u8],
) -> io::Result<RawResponse> {
    let mut responses = unary_many(socket, authority, method_path, &[request]).await?;
    responses.pop().ok_or_else(|| invalid_data("no response"))
}

/// Makes several calls on one connection (streams 1, 3, 5, …), with one
/// HPACK encoder as grpc-go has, so later requests refer to entries the
/// earlier ones put in the dynamic table (loona-hpack indexes only names
/// missing from the static table, here `te`). The requests share the
/// default 65,535-byte connection window.
pub async fn unary_many(
    socket: &Path,
    authority: &str,
    method_path: &str,
    requests: &[&[u8]],
) -> io::Result<Vec<RawResponse>> {
    let call = async {
        let bytes = request_bytes(authority, method_path, requests)?;
        let mut stream = UnixStream::connect(socket).await?;
        stream.write_all(&bytes).await?;
        read_responses(&mut stream, requests.len()).await
    };
    tokio::time::timeout(TIMEOUT, call)
        .await
        .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, format!("no answer in {TIMEOUT:?}")))?
}

/// Everything the client sends, in order: preface, SETTINGS, then for each
/// request a HEADERS frame and its DATA frames, on streams 1, 3, 5, ….
pub fn request_bytes(
    authority: &str,
    method_path: &str,
    requests: &[&[u8]],
) -> io::Result<Vec<u8>> {
    let body_total: usize = requests.iter().map(|r| r.len() + 5).sum();
    if body_total > INITIAL_WINDOW {
        return Err(invalid_input("requests exceed the initial window"));
    }
    let mut encoder = loona_hpack::Encoder::new();
    let mut out = PREFACE.to_vec();
    put_frame(&mut out, SETTINGS, 0, 0, &[]);
    for (stream, request) in (1..).step_by(2).zip(requests) {
        let block = encoder.encode([
            (&b":method"[..], &b"POST"[..]),
            (b":scheme", b"http"),
            (b":path", method_path.as_bytes()),
            (b":authority", authority.as_bytes()),
            (b"content-type", b"application/grpc"),
            (b"te", b"trailers"),
        ]);
        if block.len() > MAX_FRAME {
            return Err(invalid_input("header block exceeds one frame"));
        }
        put_frame(&mut out, HEADERS, END_HEADERS, stream, &block);
        put_grpc_body(&mut out, stream, request);
    }
    Ok(out)
}

/// Appends `request` as one length-prefixed gRPC message in DATA frames,
/// the last with END_STREAM.
fn put_grpc_body(out: &mut Vec<u8>, stream: u32, request: &[u8]) {
    let mut body = Vec::with_capacity(request.len() + 5);
    body.push(0);
    body.extend_from_slice(
        &u32::try_from(request.len())
            .unwrap_or(u32::MAX)
            .to_be_bytes(),
    );
    body.extend_from_slice(request);
    let mut chunks = body.chunks(MAX_FRAME).peekable();
    while let Some(chunk) = chunks.next() {
        let flags = if chunks.peek().is_none() {
            END_STREAM
        } else {
            0
        };
        put_frame(out, DATA, flags, stream, chunk);
    }
}

/// Appends one frame: the 9-byte header, then `payload`.
pub fn put_frame(out: &mut Vec<u8>, kind: u8, flags: u8, stream: u32, payload: &[u8]) {
    let len = u32::try_from(payload.len())
        .unwrap_or(u32::MAX)
        .to_be_bytes();
    out.extend_from_slice(&len[1..]);
    out.extend_from_slice(&[kind, flags]);
    out.extend_from_slice(&(stream & 0x7fff_ffff).to_be_bytes());
    out.extend_from_slice(payload);
}

/// A frame the server sent, and when it arrived.
#[derive(Debug, Clone)]
pub struct Seen {
    /// Since [`frames_until_closed`] started reading.
    pub at: Duration,
    pub kind: u8,
    pub flags: u8,
    pub stream: u32,
    pub payload: Vec<u8>,
}

impl Seen {
    /// A GOAWAY's error code.
    pub fn goaway_code(&self) -> Option<u32> {
        let code = self.payload.get(4..8)?.first_chunk::<4>()?;
        (self.kind == GOAWAY).then(|| u32::from_be_bytes(*code))
    }
}

/// Reads what the server sends until it closes the connection, answering
/// SETTINGS and PING and returning flow-control credit; fails if it is
/// still open after `limit`.
pub async fn frames_until_closed(
    stream: &mut UnixStream,
    limit: Duration,
) -> io::Result<Vec<Seen>> {
    let started = tokio::time::Instant::now();
    let mut reader = Reader::default();
    let mut seen = Vec::new();
    let read = async {
        loop {
            let frame = match reader.next(stream).await {
                Ok(frame) => frame,
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::UnexpectedEof | io::ErrorKind::ConnectionReset
                    ) =>
                {
                    return Ok(());
                }
                Err(e) => return Err(e),
            };
            let mut reply = Vec::new();
            match frame.kind {
                SETTINGS if frame.flags & ACK == 0 => put_frame(&mut reply, SETTINGS, ACK, 0, &[]),
                PING if frame.flags & ACK == 0 => {
                    put_frame(&mut reply, PING, ACK, 0, &frame.payload)
                }
                DATA if !frame.payload.is_empty() => {
                    let credit = (frame.payload.len() as u32).to_be_bytes();
                    put_frame(&mut reply, WINDOW_UPDATE, 0, 0, &credit);
                }
                _ => {}
            }
            seen.push(Seen {
                at: started.elapsed(),
                kind: frame.kind,
                flags: frame.flags,
                stream: frame.stream,
                payload: frame.payload.to_vec(),
            });
            // The server may already have closed its side.
            let _ = stream.write_all(&reply).await;
        }
    };
    tokio::time::timeout(limit, read).await.map_err(|_| {
        io::Error::new(
            io::ErrorKind::TimedOut,
            format!("still open after {limit:?}"),
        )
    })??;
    Ok(seen)
}

/// One frame as read from the server.
struct Frame {
    kind: u8,
    flags: u8,
    stream: u32,
    payload: BytesMut,
}

/// Reads frames until every stream ends, answering what HTTP/2 requires.
async fn read_responses(stream: &mut UnixStream, count: usize) -> io::Result<Vec<RawResponse>> {
    let mut reader = Reader::default();
    let mut conn = Conn::new(count);
    while !conn.done() {
        let frame = reader.next(stream).await?;
        let reply = conn.on_frame(frame)?;
        if !reply.is_empty() {
            stream.write_all(&reply).await?;
        }
    }
    conn.streams.into_iter().map(Call::finish).collect()
}

#[derive(Default)]
struct Reader {
    buf: BytesMut,
}

impl Reader {
    async fn next(&mut self, stream: &mut UnixStream) -> io::Result<Frame> {
        loop {
            if let Some(frame) = self.parse()? {
                return Ok(frame);
            }
            if stream.read_buf(&mut self.buf).await? == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "connection closed before the streams ended",
                ));
            }
        }
    }

    fn parse(&mut self) -> io::Result<Option<Frame>> {
        let Some(head) = self.buf.first_chunk::<9>() else {
            return Ok(None);
        };
        let len = usize::from(head[0]) << 16 | usize::from(head[1]) << 8 | usize::from(head[2]);
        if len > MAX_RECV_FRAME {
            return Err(invalid_data("frame larger than SETTINGS_MAX_FRAME_SIZE"));
        }
        if self.buf.len() < 9 + len {
            return Ok(None);
        }
        let (kind, flags) = (head[3], head[4]);
        let stream = u32::from_be_bytes([head[5], head[6], head[7], head[8]]) & 0x7fff_ffff;
        self.buf.advance(9);
        let payload = self.buf.split_to(len);
        Ok(Some(Frame {
            kind,
            flags,
            stream,
            payload,
        }))
    }
}

/// The connection: one HPACK decoder and our streams 1, 3, 5, ….
struct Conn {
    decoder: loona_hpack::Decoder<'static>,
    /// A header block waiting for CONTINUATION: stream, fragment, END_STREAM.
    block: Option<(u32, Vec<u8>, bool)>,
    streams: Vec<Call>,
}

impl Conn {
    fn new(count: usize) -> Self {
        let streams = (0..count).map(|_| Call::default()).collect();
        Self {
            decoder: loona_hpack::Decoder::new(),
            block: None,
            streams,
        }
    }

    fn done(&self) -> bool {
        self.streams.iter().all(|s| s.done)
    }

    /// Handles one frame; returns bytes to send back.
    fn on_frame(&mut self, frame: Frame) -> io::Result<Vec<u8>> {
        let mut reply = Vec::new();
        if self.block.is_some() && frame.kind != CONTINUATION {
            return Err(invalid_data("expected CONTINUATION"));
        }
        match frame.kind {
            SETTINGS if frame.flags & ACK == 0 => put_frame(&mut reply, SETTINGS, ACK, 0, &[]),
            PING if frame.flags & ACK == 0 => put_frame(&mut reply, PING, ACK, 0, &frame.payload),
            GOAWAY => goaway(&frame.payload, &self.streams)?,
            HEADERS => self.on_headers(&frame)?,
            CONTINUATION => self.on_continuation(&frame)?,
            DATA => reply = self.on_data(&frame)?,
            RST_STREAM => {
                let code = frame
                    .payload
                    .first_chunk::<4>()
                    .map(|c| u32::from_be_bytes(*c));
                let call = self.call(frame.stream)?;
                call.response.reset = Some(code.ok_or_else(|| invalid_data("short RST_STREAM"))?);
                call.done = true;
            }
            _ => {}
        }
        Ok(reply)
    }

    /// The stream a server frame is about; only ours are acceptable.
    fn call(&mut self, stream: u32) -> io::Result<&mut Call> {
        let index = usize::try_from(stream / 2).unwrap_or(usize::MAX);
        match self.streams.get_mut(index) {
            Some(call) if stream % 2 == 1 => Ok(call),
            _ => Err(invalid_data(&format!("frame on unknown stream {stream}"))),
        }
    }

    fn on_headers(&mut self, frame: &Frame) -> io::Result<()> {
        let mut payload = &frame.payload[..];
        let mut pad = 0;
        if frame.flags & PADDED != 0 {
            let (&p, rest) = payload
                .split_first()
                .ok_or_else(|| invalid_data("short HEADERS"))?;
            (pad, payload) = (usize::from(p), rest);
        }
        if frame.flags & PRIORITY != 0 {
            payload = payload
                .get(5..)
                .ok_or_else(|| invalid_data("short HEADERS"))?;
        }
        let end = payload
            .len()
            .checked_sub(pad)
            .ok_or_else(|| invalid_data("bad padding"))?;
        let ends_stream = frame.flags & END_STREAM != 0;
        self.block = Some((frame.stream, payload[..end].to_vec(), ends_stream));
        self.end_block_if(frame.flags)
    }

    fn on_continuation(&mut self, frame: &Frame) -> io::Result<()> {
        match &mut self.block {
            Some((stream, block, _)) if *stream == frame.stream => {
                block.extend_from_slice(&frame.payload);
            }
            _ => return Err(invalid_data("stray CONTINUATION")),
        }
        self.end_block_if(frame.flags)
    }

    fn end_block_if(&mut self, flags: u8) -> io::Result<()> {
        if flags & END_HEADERS == 0 {
            return Ok(());
        }
        let Some((stream, block, ends_stream)) = self.block.take() else {
            return Ok(());
        };
        let fields = self
            .decoder
            .decode(&block)
            .map_err(|e| invalid_data(&format!("HPACK: {e}")))?;
        let call = self.call(stream)?;
        for (name, value) in fields {
            let value = String::from_utf8_lossy(&value);
            match &name[..] {
                b":status" => call.response.http_status = value.parse().ok(),
                b"grpc-status" => call.response.grpc_status = value.parse().ok(),
                b"grpc-message" => call.response.grpc_message = Some(percent_decode(&value)),
                _ => {}
            }
        }
        call.done |= ends_stream;
        Ok(())
    }

    /// Collects the body and gives the flow-control credit back.
    fn on_data(&mut self, frame: &Frame) -> io::Result<Vec<u8>> {
        let call = self.call(frame.stream)?;
        call.body.extend_from_slice(&frame.payload);
        call.done |= frame.flags & END_STREAM != 0;
        let ended = call.done;
        let mut reply = Vec::new();
        let credit = u32::try_from(frame.payload.len()).unwrap_or(0);
        if credit > 0 {
            put_frame(&mut reply, WINDOW_UPDATE, 0, 0, &credit.to_be_bytes());
            if !ended {
                put_frame(
                    &mut reply,
                    WINDOW_UPDATE,
                    0,
                    frame.stream,
                    &credit.to_be_bytes(),
                );
            }
        }
        Ok(reply)
    }
}

/// One stream's response as it arrives.
#[derive(Default)]
struct Call {
    body: Vec<u8>,
    response: RawResponse,
    done: bool,
}

impl Call {
    fn finish(mut self) -> io::Result<RawResponse> {
        self.response.message = grpc_payload(&self.body)?;
        Ok(self.response)
    }
}

/// Strips the gRPC length prefix of a single uncompressed message.
fn grpc_payload(body: &[u8]) -> io::Result<Option<Vec<u8>>> {
    if body.is_empty() {
        return Ok(None);
    }
    let (prefix, message) = body
        .split_first_chunk::<5>()
        .ok_or_else(|| invalid_data("short gRPC message"))?;
    let len = u32::from_be_bytes([prefix[1], prefix[2], prefix[3], prefix[4]]);
    if prefix[0] != 0 || usize::try_from(len).ok() != Some(message.len()) {
        return Err(invalid_data("not one uncompressed gRPC message"));
    }
    Ok(Some(message.to_vec()))
}

/// Decodes the `%XX` escapes gRPC uses in `grpc-message`.
fn percent_decode(value: &str) -> String {
    let bytes = value.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok());
        match hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
            Some(byte) if bytes[i] == b'%' => {
                out.push(byte);
                i += 3;
            }
            _ => {
                out.push(bytes[i]);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A graceful GOAWAY that still covers every unfinished stream lets them
/// finish; any other ends the call.
fn goaway(payload: &[u8], streams: &[Call]) -> io::Result<()> {
    let word = |at: usize| {
        let bytes = payload.get(at..at + 4).and_then(|b| b.first_chunk::<4>());
        bytes.map(|b| u32::from_be_bytes(*b))
    };
    let highest = streams
        .iter()
        .rposition(|s| !s.done)
        .map_or(0, |i| i * 2 + 1);
    match (word(0), word(4)) {
        (Some(last), Some(0)) if (last & 0x7fff_ffff) as usize >= highest => Ok(()),
        (_, code) => Err(io::Error::new(
            io::ErrorKind::ConnectionAborted,
            format!("GOAWAY before the streams ended (error code {code:?})"),
        )),
    }
}

fn invalid_data(msg: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg.to_owned())
}

fn invalid_input(msg: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, msg)
}
