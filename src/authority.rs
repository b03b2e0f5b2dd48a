//! Lets tonic serve Secrets Store CSI Drivers that send a socket path as
//! the HTTP/2 `:authority`.
//!
//! Driver v1.6 dials with `WithAuthority("localhost")`. Drivers up to v1.5,
//! still shipped by the upstream Azure chart, call `grpc.Dial(socketPath)`
//! with a custom dialer, so grpc-go derives `:authority` from the path:
//! `/var/run/secrets-store-csi-providers/azure.sock`, or a percent-encoded
//! form such as `var%2Frun%2F…%2Fazure.sock`. The `h2` crate under tonic
//! parses `:authority` as an `http::uri::Authority`, finds it malformed and
//! resets the stream with PROTOCOL_ERROR before any handler runs (driver
//! issue #1862, hyperium/h2 #442, grpc/grpc-rust #243). h2 has no switch to
//! relax this, so [`AuthorityRewrite`] fixes the bytes before h2 sees them.
//!
//! It wraps an accepted stream and parses the client's half of the
//! connection: the preface, then frames. Each header block (HEADERS plus
//! CONTINUATIONs) goes through one HPACK decoder per connection, so its
//! dynamic table follows the client's encoder. An `:authority` that
//! `http::uri::Authority` rejects, exactly h2's test, becomes `localhost`.
//!
//! **Conditional, sticky rewrite.** Blocks are forwarded byte for byte
//! until one carries an `:authority` h2 would reject. That block and every
//! later one on the connection are re-encoded: re-encoded blocks use only
//! never-indexed literals without Huffman, so h2's dynamic table stops
//! matching the client's and no later block may reach h2 as sent. A v1.6
//! driver's connection thus reaches h2 exactly as sent (Huffman, indexing,
//! padding and all) for one HPACK decode per request and never depends on
//! the re-encoder; an old driver's connection is re-encoded from its first
//! request. Always re-encoding would be one path fewer, but would route
//! every driver through this code for no gain; the tests cover both paths
//! and the switch. Never-indexed also keeps RFC 7541 §6.2.3's rule for
//! fields the client marked sensitive.
//!
//! HEADERS keep END_STREAM and their PRIORITY fields; padding is dropped.
//! Blocks are split at 16,384 bytes, the smallest SETTINGS_MAX_FRAME_SIZE
//! a peer may advertise and what hyper's server advertises. Our decoder's
//! table limit is 4,096 bytes: tonic has no knob for SETTINGS_HEADER_TABLE_SIZE,
//! so h2 never advertises one and the client may not grow its table past the
//! default. The client's own SETTINGS_HEADER_TABLE_SIZE governs the other
//! direction and is ignored here, as HPACK requires.
//!
//! Everything else is left to h2: other frames pass through unchanged and
//! unchecked (sizes, stream states, flow control), as does the server's
//! half of the connection. Only what this parser must trust is checked:
//! the preface, frame order inside a header block, padding, HPACK, and a
//! 64 KiB limit on a header block before and after re-encoding. Any
//! violation ends the connection with an `io::Error`. Wrapping each
//! accepted stream before `Server::serve_with_incoming` is the caller's job.

use std::fmt;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use bytes::{Buf, BufMut, BytesMut};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tonic::codegen::http::uri::Authority;
use tonic::transport::server::Connected;

#[cfg(test)]
mod tests;

/// What an unusable `:authority` is replaced with: what driver v1.6 sends.
pub const REPLACEMENT_AUTHORITY: &str = "localhost";

const PREFACE: &[u8; 24] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
const FRAME_HEAD_LEN: usize = 9;
/// Largest header block buffered or produced; hyper's server accepts a
/// 16 KiB header list by default, so nothing it would serve is refused.
const MAX_HEADER_BLOCK: usize = 64 * 1024;
/// Largest frame written: the minimum SETTINGS_MAX_FRAME_SIZE (RFC 9113).
const MAX_FRAME_SIZE: usize = 16_384;
/// The HPACK table size h2 allows the client (the protocol default).
const HEADER_TABLE_SIZE: usize = 4_096;
/// Parsing pauses once this much output waits for the reader.
const OUTPUT_HIGH_WATER: usize = 64 * 1024;

const HEADERS: u8 = 0x1;
const PUSH_PROMISE: u8 = 0x5;
const CONTINUATION: u8 = 0x9;
const END_STREAM: u8 = 0x1;
const END_HEADERS: u8 = 0x4;
const PADDED: u8 = 0x8;
const PRIORITY: u8 = 0x20;

/// An accepted connection whose client-to-server bytes are rewritten so
/// that h2 accepts an old driver's `:authority` (see the module docs).
pub struct AuthorityRewrite<S> {
    inner: S,
    rewriter: Rewriter,
}

// === impl AuthorityRewrite ===

impl<S> AuthorityRewrite<S> {
    /// Wraps a freshly accepted stream, before any byte was read from it.
    pub fn new(inner: S) -> Self {
        Self {
            inner,
            rewriter: Rewriter::new(),
        }
    }

    /// The wrapped stream.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }
}

impl<S: fmt::Debug> fmt::Debug for AuthorityRewrite<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuthorityRewrite")
            .field("inner", &self.inner)
            .field("reencoding", &self.rewriter.reencode)
            .finish_non_exhaustive()
    }
}

impl<S: Connected> Connected for AuthorityRewrite<S> {
    type ConnectInfo = S::ConnectInfo;

    fn connect_info(&self) -> Self::ConnectInfo {
        self.inner.connect_info()
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for AuthorityRewrite<S> {
    /// Reads straight into `buf`; bytes that are not the middle of a
    /// passed-through frame move into the rewriter and come back out of it.
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        loop {
            if buf.remaining() == 0 {
                return Poll::Ready(Ok(()));
            }
            this.rewriter.process()?;
            if this.rewriter.drain_into(buf) {
                return Poll::Ready(Ok(()));
            }
            let start = buf.filled().len();
            ready!(Pin::new(&mut this.inner).poll_read(cx, buf))?;
            let read = buf.filled().len() - start;
            if read == 0 {
                return Poll::Ready(this.rewriter.finish());
            }
            let passed = this.rewriter.pass_through(read);
            if passed < read {
                this.rewriter.push(&buf.filled()[start + passed..]);
                buf.set_filled(start + passed);
            }
            if passed > 0 {
                return Poll::Ready(Ok(()));
            }
        }
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for AuthorityRewrite<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

/// Where the parser stands in the client's byte stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Inside the connection preface, `matched` bytes seen.
    Preface { matched: usize },
    /// At a frame boundary.
    FrameHead,
    /// Inside the payload of a frame that passes through unchanged.
    Payload { remaining: usize },
    /// An error was returned; the connection is unusable.
    Failed,
}

/// The I/O-free core: client bytes go in with [`Rewriter::push`], bytes
/// for h2 come out of `output` after [`Rewriter::process`].
struct Rewriter {
    state: State,
    input: BytesMut,
    output: BytesMut,
    block: Option<HeaderBlock>,
    decoder: loona_hpack::Decoder<'static>,
    /// Set by the first rewritten block: h2's HPACK table has diverged.
    reencode: bool,
}

// === impl Rewriter ===

impl Rewriter {
    fn new() -> Self {
        let mut decoder = loona_hpack::Decoder::new();
        decoder.set_max_allowed_table_size(HEADER_TABLE_SIZE);
        Self {
            state: State::Preface { matched: 0 },
            input: BytesMut::new(),
            output: BytesMut::new(),
            block: None,
            decoder,
            reencode: false,
        }
    }

    fn push(&mut self, bytes: &[u8]) {
        self.input.extend_from_slice(bytes);
    }

    /// Parses buffered input until it runs out or enough output waits.
    fn process(&mut self) -> io::Result<()> {
        while self.output.len() < OUTPUT_HIGH_WATER {
            match self.step() {
                Ok(true) => {}
                Ok(false) => break,
                Err(error) => {
                    self.state = State::Failed;
                    self.input.clear();
                    self.output.clear();
                    self.block = None;
                    return Err(error);
                }
            }
        }
        Ok(())
    }

    /// Moves output into `buf`; false when there was none.
    fn drain_into(&mut self, buf: &mut ReadBuf<'_>) -> bool {
        if self.output.is_empty() {
            return false;
        }
        let n = self.output.len().min(buf.remaining());
        buf.put_slice(&self.output[..n]);
        self.output.advance(n);
        true
    }

    /// Claims up to `n` freshly read bytes that continue a passed-through
    /// payload, so they can stay in the reader's buffer; returns how many.
    fn pass_through(&mut self, n: usize) -> usize {
        match self.state {
            State::Payload { remaining } if self.input.is_empty() && self.output.is_empty() => {
                let taken = remaining.min(n);
                self.state = State::after_payload(remaining - taken);
                taken
            }
            _ => 0,
        }
    }

    /// The client closed its side: fine at a frame boundary only.
    fn finish(&self) -> io::Result<()> {
        let at_boundary = matches!(self.state, State::FrameHead | State::Preface { matched: 0 });
        if self.state == State::Failed {
            Err(invalid("connection already failed"))
        } else if at_boundary && self.input.is_empty() && self.block.is_none() {
            Ok(())
        } else {
            Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "HTTP/2 frame cut short",
            ))
        }
    }

    /// One parsing step; false when more input is needed.
    fn step(&mut self) -> io::Result<bool> {
        match self.state {
            State::Preface { matched } => self.step_preface(matched),
            State::FrameHead => self.step_frame(),
            State::Payload { remaining } => Ok(self.step_payload(remaining)),
            State::Failed => Err(invalid("connection already failed")),
        }
    }

    fn step_preface(&mut self, matched: usize) -> io::Result<bool> {
        let n = (PREFACE.len() - matched).min(self.input.len());
        if n == 0 {
            return Ok(false);
        }
        if self.input[..n] != PREFACE[matched..matched + n] {
            return Err(invalid("not an HTTP/2 prior-knowledge connection preface"));
        }
        self.forward(n);
        self.state = match matched + n {
            done if done == PREFACE.len() => State::FrameHead,
            matched => State::Preface { matched },
        };
        Ok(true)
    }

    fn step_frame(&mut self) -> io::Result<bool> {
        let Some(head) = FrameHead::peek(&self.input) else {
            return Ok(false);
        };
        match head.kind {
            HEADERS | CONTINUATION => self.step_block_frame(head),
            PUSH_PROMISE => Err(invalid("PUSH_PROMISE sent by a client")),
            _ if self.block.is_some() => Err(invalid("header block interrupted")),
            _ => {
                self.forward(FRAME_HEAD_LEN);
                self.state = State::after_payload(head.len);
                Ok(true)
            }
        }
    }

    fn step_payload(&mut self, remaining: usize) -> bool {
        let n = remaining.min(self.input.len());
        if n == 0 {
            return false;
        }
        self.forward(n);
        self.state = State::after_payload(remaining - n);
        true
    }

    /// Buffers one whole HEADERS or CONTINUATION frame; at END_HEADERS the
    /// block is decoded and forwarded or re-encoded.
    fn step_block_frame(&mut self, head: FrameHead) -> io::Result<bool> {
        let buffered = self.block.as_ref().map_or(0, |b| b.frames.len());
        if buffered + FRAME_HEAD_LEN + head.len > MAX_HEADER_BLOCK {
            return Err(invalid("header block larger than 64 KiB"));
        }
        match (head.kind, &self.block) {
            (HEADERS, Some(_)) => return Err(invalid("header block interrupted")),
            (HEADERS, None) if head.stream_id == 0 => return Err(invalid("HEADERS on stream 0")),
            (CONTINUATION, None) => return Err(invalid("CONTINUATION without HEADERS")),
            (CONTINUATION, Some(b)) if b.stream_id != head.stream_id => {
                return Err(invalid("CONTINUATION on another stream"));
            }
            _ => {}
        }
        if self.input.len() < FRAME_HEAD_LEN + head.len {
            return Ok(false);
        }
        let frame = self.input.split_to(FRAME_HEAD_LEN + head.len);
        let block = match self.block.take() {
            None => HeaderBlock::start(&head, &frame[FRAME_HEAD_LEN..])?,
            Some(mut block) => {
                block.fragment.extend_from_slice(&frame[FRAME_HEAD_LEN..]);
                block
            }
        };
        let block = self.block.insert(block);
        if block.frames.is_empty() {
            block.frames = frame;
        } else {
            block.frames.extend_from_slice(&frame);
        }
        if head.flags & END_HEADERS != 0 {
            self.end_block()?;
        }
        Ok(true)
    }

    fn end_block(&mut self) -> io::Result<()> {
        let Some(block) = self.block.take() else {
            return Ok(());
        };
        let decoded = reencode(&mut self.decoder, &block.fragment)?;
        if let Some(authority) = decoded.replaced.filter(|_| !self.reencode) {
            tracing::debug!(
                authority = %String::from_utf8_lossy(&authority),
                "re-encoding this connection's requests: h2 rejects their :authority"
            );
            self.reencode = true;
        }
        if self.reencode {
            block.write_reencoded(&decoded.fragment, &mut self.output);
        } else {
            self.emit(block.frames);
        }
        Ok(())
    }

    /// Moves `n` input bytes to the output unchanged.
    fn forward(&mut self, n: usize) {
        let bytes = self.input.split_to(n);
        self.emit(bytes);
    }

    /// Appends to the output, without a copy when it is empty.
    fn emit(&mut self, bytes: BytesMut) {
        if self.output.is_empty() {
            self.output = bytes;
        } else {
            self.output.extend_from_slice(&bytes);
        }
    }
}

// === impl State ===

impl State {
    fn after_payload(remaining: usize) -> Self {
        match remaining {
            0 => State::FrameHead,
            remaining => State::Payload { remaining },
        }
    }
}

/// The 9-byte frame header (RFC 9113 §4.1).
#[derive(Debug, Clone, Copy)]
struct FrameHead {
    len: usize,
    kind: u8,
    flags: u8,
    stream_id: u32,
}

// === impl FrameHead ===

impl FrameHead {
    /// Reads a frame header from the front of `input` without consuming it.
    fn peek(input: &[u8]) -> Option<Self> {
        let h = input.first_chunk::<FRAME_HEAD_LEN>()?;
        Some(Self {
            len: usize::from(h[0]) << 16 | usize::from(h[1]) << 8 | usize::from(h[2]),
            kind: h[3],
            flags: h[4],
            stream_id: u32::from_be_bytes([h[5], h[6], h[7], h[8]]) & 0x7fff_ffff,
        })
    }
}

/// A header block being collected: HEADERS and its CONTINUATIONs.
#[derive(Debug)]
struct HeaderBlock {
    stream_id: u32,
    end_stream: bool,
    priority: Option<[u8; 5]>,
    /// The HPACK fragments, concatenated.
    fragment: Vec<u8>,
    /// The frames as received, for forwarding unchanged.
    frames: BytesMut,
}

// === impl HeaderBlock ===

impl HeaderBlock {
    /// Starts a block from a HEADERS payload, stripping padding and
    /// priority (RFC 9113 §6.2).
    fn start(head: &FrameHead, payload: &[u8]) -> io::Result<Self> {
        let mut rest = payload;
        let mut pad = 0;
        if head.flags & PADDED != 0 {
            let (&len, tail) = rest
                .split_first()
                .ok_or_else(|| invalid("HEADERS too short"))?;
            (pad, rest) = (usize::from(len), tail);
        }
        let mut priority = None;
        if head.flags & PRIORITY != 0 {
            let (fields, tail) = rest
                .split_first_chunk::<5>()
                .ok_or_else(|| invalid("HEADERS too short"))?;
            (priority, rest) = (Some(*fields), tail);
        }
        let end = rest
            .len()
            .checked_sub(pad)
            .ok_or_else(|| invalid("HEADERS padding too long"))?;
        Ok(Self {
            stream_id: head.stream_id,
            end_stream: head.flags & END_STREAM != 0,
            priority,
            fragment: rest[..end].to_vec(),
            frames: BytesMut::new(),
        })
    }

    /// Writes `fragment` as HEADERS plus CONTINUATIONs, none over
    /// [`MAX_FRAME_SIZE`], keeping END_STREAM and the priority fields.
    fn write_reencoded(&self, fragment: &[u8], out: &mut BytesMut) {
        let priority: &[u8] = self.priority.as_ref().map_or(&[], |p| &p[..]);
        let first_len = fragment.len().min(MAX_FRAME_SIZE - priority.len());
        let (first, mut rest) = fragment.split_at(first_len);
        let mut flags = if self.end_stream { END_STREAM } else { 0 };
        flags |= if self.priority.is_some() { PRIORITY } else { 0 };
        flags |= if rest.is_empty() { END_HEADERS } else { 0 };
        let len = priority.len() + first.len();
        put_frame_head(out, len, HEADERS, flags, self.stream_id);
        out.put_slice(priority);
        out.put_slice(first);
        while !rest.is_empty() {
            let (chunk, tail) = rest.split_at(rest.len().min(MAX_FRAME_SIZE));
            rest = tail;
            let flags = if rest.is_empty() { END_HEADERS } else { 0 };
            put_frame_head(out, chunk.len(), CONTINUATION, flags, self.stream_id);
            out.put_slice(chunk);
        }
    }
}

/// Appends a frame header; `len` is at most [`MAX_FRAME_SIZE`].
fn put_frame_head(out: &mut BytesMut, len: usize, kind: u8, flags: u8, stream_id: u32) {
    let len = u32::try_from(len).unwrap_or(u32::MAX).to_be_bytes();
    out.put_slice(&len[1..]);
    out.put_slice(&[kind, flags]);
    out.put_u32(stream_id);
}

/// A decoded block, re-encoded without the dynamic table.
struct Reencoded {
    fragment: Vec<u8>,
    /// The first `:authority` value that was replaced, if any.
    replaced: Option<Vec<u8>>,
}

/// Decodes one complete block, keeping `decoder`'s table in step with the
/// client, and re-encodes it with unusable `:authority` values replaced.
fn reencode(decoder: &mut loona_hpack::Decoder<'static>, fragment: &[u8]) -> io::Result<Reencoded> {
    let mut out = Vec::with_capacity(fragment.len() + 64);
    let mut replaced = None;
    let mut too_large = false;
    let result = decoder.decode_with_cb(fragment, |name, value| {
        let mut value = &value[..];
        if &name[..] == b":authority" && Authority::try_from(value).is_err() {
            replaced.get_or_insert_with(|| value.to_vec());
            value = REPLACEMENT_AUTHORITY.as_bytes();
        }
        too_large |= out.len() + name.len() + value.len() + 16 > MAX_HEADER_BLOCK;
        if !too_large {
            put_never_indexed(&mut out, &name, value);
        }
    });
    result.map_err(|e| invalid(&format!("HPACK decoding failed: {e}")))?;
    if too_large {
        return Err(invalid("decoded header block larger than 64 KiB"));
    }
    Ok(Reencoded {
        fragment: out,
        replaced,
    })
}

/// Appends a "literal header field never indexed" with a literal name and
/// no Huffman coding (RFC 7541 §6.2.3): it neither reads nor changes the
/// receiver's dynamic table.
fn put_never_indexed(out: &mut Vec<u8>, name: &[u8], value: &[u8]) {
    out.push(0x10);
    for string in [name, value] {
        put_integer(out, string.len());
        out.extend_from_slice(string);
    }
}

/// Appends a string length: an HPACK integer with a 7-bit prefix and the
/// Huffman bit clear (RFC 7541 §5.1).
fn put_integer(out: &mut Vec<u8>, mut value: usize) {
    const PREFIX_MAX: usize = 0x7f;
    if value < PREFIX_MAX {
        out.push(value as u8);
        return;
    }
    out.push(PREFIX_MAX as u8);
    value -= PREFIX_MAX;
    while value >= 0x80 {
        out.push((value & 0x7f) as u8 | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

fn invalid(msg: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg.to_owned())
}
