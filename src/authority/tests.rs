//! Tests for the `:authority` rewrite: the I/O-free [`Rewriter`] against a
//! loona-hpack decoder standing in for h2, the adapter over small reads,
//! and end to end against a tonic server on a unix socket.

use std::io;
use std::path::{Path, PathBuf};

use loona_hpack::{Decoder, Encoder};
use prost::Message;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixListener;
use tokio_stream::StreamExt;
use tokio_stream::wrappers::UnixListenerStream;
use tonic::transport::{Endpoint, Server, Uri};
use tonic::{Request, Response, Status};

use super::*;
use crate::proto::csi_driver_provider_client::CsiDriverProviderClient;
use crate::proto::csi_driver_provider_server::{CsiDriverProvider, CsiDriverProviderServer};
use crate::proto::{MountRequest, MountResponse, VersionRequest, VersionResponse};

#[path = "../../tests/support/raw_h2.rs"]
mod raw_h2;

use raw_h2::{DATA, PING, SETTINGS, WINDOW_UPDATE, put_frame};

const SOCKET_PATH: &str = "/var/run/secrets-store-csi-providers/azure.sock";
const PERCENT_RELATIVE: &str = "var%2Frun%2Fsecrets-store-csi-providers%2Fazure.sock";
const PERCENT_ABSOLUTE: &str = "%2Fvar%2Frun%2Fsecrets-store-csi-providers%2Fazure.sock";
const VERSION_PATH: &str = "/v1alpha1.CSIDriverProvider/Version";
const PROTOCOL_ERROR: u32 = 0x1;

type Fields = Vec<(Vec<u8>, Vec<u8>)>;

// === client side: what a driver sends ===

/// A gRPC request's header fields, as grpc-go orders them.
fn request_fields(authority: &str, path: &str) -> Fields {
    [
        (":method", "POST"),
        (":scheme", "http"),
        (":path", path),
        (":authority", authority),
        ("content-type", "application/grpc"),
        ("te", "trailers"),
    ]
    .iter()
    .map(|(n, v)| (n.as_bytes().to_vec(), v.as_bytes().to_vec()))
    .collect()
}

fn encode(encoder: &mut Encoder<'_>, fields: &Fields) -> Vec<u8> {
    encoder.encode(fields.iter().map(|(n, v)| (&n[..], &v[..])))
}

/// Appends `block` as HEADERS plus CONTINUATIONs of at most `max` bytes.
fn put_block(out: &mut Vec<u8>, stream: u32, flags: u8, block: &[u8], max: usize) {
    let mut chunks = block.chunks(max).peekable();
    let mut kind = HEADERS;
    let mut flags = flags;
    while let Some(chunk) = chunks.next() {
        let end = if chunks.peek().is_none() {
            END_HEADERS
        } else {
            0
        };
        put_frame(out, kind, flags | end, stream, chunk);
        (kind, flags) = (CONTINUATION, 0);
    }
}

/// A connection carrying one request per authority on streams 1, 3, …,
/// with one encoder, so later blocks use its dynamic table.
fn connection(authorities: &[&str]) -> Vec<u8> {
    let mut encoder = Encoder::new();
    let mut out = PREFACE.to_vec();
    put_frame(&mut out, SETTINGS, 0, 0, &[]);
    put_frame(&mut out, WINDOW_UPDATE, 0, 0, &1_000_000u32.to_be_bytes());
    for (stream, authority) in (1..).step_by(2).zip(authorities) {
        let path = format!("/v1alpha1.CSIDriverProvider/Call{stream}");
        let block = encode(&mut encoder, &request_fields(authority, &path));
        put_block(&mut out, stream, 0, &block, MAX_FRAME_SIZE);
        put_frame(&mut out, DATA, END_STREAM, stream, b"\0\0\0\0\x02\x0a\x00");
    }
    put_frame(&mut out, PING, 0, 0, b"12345678");
    out
}

// === server side: what h2 would see ===

/// Runs the whole input through a rewriter at once.
fn rewrite(input: &[u8]) -> io::Result<Vec<u8>> {
    let mut rewriter = Rewriter::new();
    rewriter.push(input);
    let output = drain(&mut rewriter)?;
    rewriter.finish()?;
    Ok(output)
}

/// Runs the input through a rewriter one byte at a time.
fn rewrite_bytewise(input: &[u8]) -> io::Result<Vec<u8>> {
    let mut rewriter = Rewriter::new();
    let mut output = Vec::new();
    for byte in input {
        rewriter.push(&[*byte]);
        output.extend(drain(&mut rewriter)?);
    }
    rewriter.finish()?;
    Ok(output)
}

fn drain(rewriter: &mut Rewriter) -> io::Result<Vec<u8>> {
    let mut output = Vec::new();
    loop {
        rewriter.process()?;
        if rewriter.output.is_empty() {
            return Ok(output);
        }
        output.extend_from_slice(&rewriter.output.split());
    }
}

/// What h2 gets out of the rewritten bytes.
#[derive(Debug, Default)]
struct H2View {
    /// Frames other than HEADERS and CONTINUATION: kind, flags, stream, payload.
    frames: Vec<(u8, u8, u32, Vec<u8>)>,
    /// Decoded header blocks: stream, flags of the HEADERS frame, fields.
    blocks: Vec<(u32, u8, Fields)>,
    /// Raw HEADERS payloads, padding and priority included.
    headers_payloads: Vec<Vec<u8>>,
}

impl H2View {
    fn authorities(&self) -> Vec<String> {
        self.blocks
            .iter()
            .map(|(_, _, fields)| field(fields, ":authority"))
            .collect()
    }
}

fn field(fields: &Fields, name: &str) -> String {
    let value = fields
        .iter()
        .find(|(n, _)| n == name.as_bytes())
        .map(|(_, v)| v);
    String::from_utf8_lossy(value.map_or(&[][..], |v| &v[..])).into_owned()
}

/// Parses rewritten output like h2 would, with one HPACK decoder for the
/// connection, and checks what h2 checks: frame sizes, CONTINUATION order,
/// and that every `:authority` is a valid `Authority`.
fn h2_view(output: &[u8]) -> H2View {
    let rest = output.strip_prefix(&PREFACE[..]).expect("preface first");
    let mut decoder = Decoder::new();
    let mut view = H2View::default();
    let mut pending: Option<(u32, u8, Vec<u8>)> = None;
    let mut rest = rest;
    while let Some(head) = FrameHead::peek(rest) {
        let payload = rest[FRAME_HEAD_LEN..FRAME_HEAD_LEN + head.len].to_vec();
        rest = &rest[FRAME_HEAD_LEN + head.len..];
        match (head.kind, &mut pending) {
            (HEADERS, None) => {
                assert!(head.len <= MAX_FRAME_SIZE, "HEADERS of {} bytes", head.len);
                view.headers_payloads.push(payload.clone());
                let fragment = HeaderBlock::start(&head, &payload).unwrap().fragment;
                pending = Some((head.stream_id, head.flags, fragment));
            }
            (CONTINUATION, Some((stream, _, fragment))) if *stream == head.stream_id => {
                assert!(
                    head.len <= MAX_FRAME_SIZE,
                    "CONTINUATION of {} bytes",
                    head.len
                );
                fragment.extend_from_slice(&payload);
            }
            (_, None) => view
                .frames
                .push((head.kind, head.flags, head.stream_id, payload)),
            _ => panic!("frame {} interrupts a header block", head.kind),
        }
        if matches!(head.kind, HEADERS | CONTINUATION) && head.flags & END_HEADERS != 0 {
            let (stream, flags, fragment) = pending.take().unwrap();
            let fields = decoder.decode(&fragment).expect("h2 decodes the block");
            let authority = field(&fields, ":authority");
            assert!(
                Authority::try_from(authority.as_str()).is_ok(),
                "h2 rejects {authority}"
            );
            view.blocks.push((stream, flags, fields));
        }
    }
    assert!(
        rest.is_empty() && pending.is_none(),
        "output ends mid-frame"
    );
    view
}

fn assert_invalid(result: io::Result<Vec<u8>>, needle: &str) {
    let error = result.expect_err("input must be rejected");
    assert!(
        error.to_string().contains(needle),
        "{error} does not mention {needle:?}"
    );
}

// === rewriting ===

#[test]
fn valid_authority_is_forwarded_byte_for_byte() {
    let input = connection(&["localhost", "localhost", "localhost:1234"]);
    assert_eq!(rewrite(&input).unwrap(), input);
}

#[test]
fn socket_path_authority_becomes_localhost() {
    let input = connection(&[SOCKET_PATH]);
    let view = h2_view(&rewrite(&input).unwrap());
    assert_eq!(view.authorities(), ["localhost"]);
    let (_, _, fields) = &view.blocks[0];
    let expected = request_fields("localhost", "/v1alpha1.CSIDriverProvider/Call1");
    assert_eq!(fields, &expected);
    // Everything but the header block is untouched.
    let kinds: Vec<u8> = view.frames.iter().map(|f| f.0).collect();
    assert_eq!(kinds, [SETTINGS, WINDOW_UPDATE, DATA, PING]);
    assert_eq!(view.frames[2].3, b"\0\0\0\0\x02\x0a\x00");
}

#[test]
fn every_authority_h2_rejects_becomes_localhost() {
    for authority in [
        SOCKET_PATH,
        PERCENT_RELATIVE,
        PERCENT_ABSOLUTE,
        "/tmp/x/azure.sock",
        "",
    ] {
        assert!(
            Authority::try_from(authority).is_err(),
            "{authority} is valid"
        );
        let view = h2_view(&rewrite(&connection(&[authority])).unwrap());
        assert_eq!(view.authorities(), ["localhost"], "for {authority:?}");
    }
}

#[test]
fn dynamic_table_stays_in_sync_across_requests() {
    let authorities = [
        "localhost",
        SOCKET_PATH,
        SOCKET_PATH,
        "localhost",
        SOCKET_PATH,
    ];
    let input = connection(&authorities);
    let mut rewriter = Rewriter::new();
    rewriter.push(&input);
    let output = drain(&mut rewriter).unwrap();
    assert!(
        rewriter.reencode,
        "the second request switched to re-encoding"
    );
    let view = h2_view(&output);
    assert_eq!(view.authorities(), ["localhost"; 5]);
    for (i, (stream, _, fields)) in view.blocks.iter().enumerate() {
        assert_eq!(*stream, 2 * i as u32 + 1);
        let path = format!("/v1alpha1.CSIDriverProvider/Call{stream}");
        assert_eq!(fields, &request_fields("localhost", &path));
    }
    // The first block went through as sent; the rest were re-encoded.
    assert_eq!(output[..100], input[..100]);
}

/// RFC 7541 C.4: three requests with Huffman strings and incremental
/// indexing, then an old driver's block that indexes its path, then blocks
/// that refer to every entry by index.
#[test]
fn huffman_and_indexed_blocks_from_rfc7541() {
    let mut old = vec![0x82, 0x86, 0x84, 0x41, 11];
    old.extend_from_slice(b"/tmp/x.sock");
    let blocks: [&[u8]; 6] = [
        &hex("828684418cf1e3c2e5f23a6ba0ab90f4ff"),
        &hex("828684be5886a8eb10649cbf"),
        &hex("828785bf408825a849e95ba97d7f8925a849e95bb8e8b4bf"),
        &old,
        &hex("828684bec0bf"), // 62 = the path, 64 = cache-control, 63 = custom-key
        &hex("828684c1"),     // 65 = www.example.com
    ];
    let mut input = PREFACE.to_vec();
    for (stream, block) in (1..).step_by(2).zip(blocks) {
        put_frame(&mut input, HEADERS, END_HEADERS, stream, block);
    }
    let output = rewrite(&input).unwrap();
    let verbatim = PREFACE.len() + blocks[..3].iter().map(|b| b.len() + 9).sum::<usize>();
    assert_eq!(output[..verbatim], input[..verbatim]);
    let view = h2_view(&output);
    let get = |scheme: &str, path: &str, authority: &str, extra: &[(&str, &str)]| {
        let base = [
            (":method", "GET"),
            (":scheme", scheme),
            (":path", path),
            (":authority", authority),
        ];
        let all = base.iter().chain(extra);
        all.map(|(n, v)| (n.as_bytes().to_vec(), v.as_bytes().to_vec()))
            .collect::<Fields>()
    };
    let cache = ("cache-control", "no-cache");
    let custom = ("custom-key", "custom-value");
    let expected = [
        get("http", "/", "www.example.com", &[]),
        get("http", "/", "www.example.com", &[cache]),
        get("https", "/index.html", "www.example.com", &[custom]),
        get("http", "/", "localhost", &[]),
        get("http", "/", "localhost", &[cache, custom]),
        get("http", "/", "www.example.com", &[]),
    ];
    let decoded: Vec<&Fields> = view.blocks.iter().map(|(_, _, fields)| fields).collect();
    assert_eq!(decoded, expected.iter().collect::<Vec<_>>());
}

fn hex(s: &str) -> Vec<u8> {
    let digit = |i: usize| u8::from_str_radix(&s[i..i + 2], 16).unwrap();
    (0..s.len()).step_by(2).map(digit).collect()
}

#[test]
fn table_size_updates_are_applied_and_bounded() {
    // Block 1 indexes `:authority: /tmp/x.sock` (static name index 1).
    let mut first = vec![0x41, 11];
    first.extend_from_slice(b"/tmp/x.sock");
    let mut input = PREFACE.to_vec();
    put_frame(&mut input, HEADERS, END_HEADERS, 1, &first);
    // Block 2 empties the table (size 0, back to 4096), then refers to
    // entry 62, which must now be gone.
    let mut stale = input.clone();
    put_frame(
        &mut stale,
        HEADERS,
        END_HEADERS,
        3,
        &[0x20, 0x3f, 0xe1, 0x1f, 0x80 | 62],
    );
    assert_invalid(rewrite(&stale), "HPACK");
    // Without the eviction, entry 62 is there.
    let mut fresh = input.clone();
    put_frame(&mut fresh, HEADERS, END_HEADERS, 3, &[0x80 | 62]);
    assert_eq!(
        h2_view(&rewrite(&fresh).unwrap()).authorities(),
        ["localhost"; 2]
    );
    // A table larger than h2's 4096 bytes is refused (size update 4097).
    let mut larger = input;
    put_frame(
        &mut larger,
        HEADERS,
        END_HEADERS,
        3,
        &[0x3f, 0xe2, 0x1f, 0x82],
    );
    assert_invalid(rewrite(&larger), "HPACK");
}

#[test]
fn padded_and_priority_headers_are_unwrapped() {
    let priority = [0x80, 0, 0, 0, 15]; // exclusive, on stream 0, weight 16
    let flags = END_STREAM | END_HEADERS | PADDED | PRIORITY;
    let headers = |authority: &str| {
        let block = encode(
            &mut Encoder::new(),
            &request_fields(authority, VERSION_PATH),
        );
        let mut payload = vec![4];
        payload.extend_from_slice(&priority);
        payload.extend_from_slice(&block);
        payload.extend_from_slice(&[0; 4]);
        let mut input = PREFACE.to_vec();
        put_frame(&mut input, HEADERS, flags, 1, &payload);
        input
    };
    let valid = headers("localhost");
    assert_eq!(
        rewrite(&valid).unwrap(),
        valid,
        "padding kept when forwarded"
    );

    let view = h2_view(&rewrite(&headers(SOCKET_PATH)).unwrap());
    let (stream, out_flags, fields) = &view.blocks[0];
    assert_eq!(
        (*stream, *out_flags),
        (1, END_STREAM | END_HEADERS | PRIORITY)
    );
    assert_eq!(view.headers_payloads[0][..5], priority);
    assert_eq!(fields, &request_fields("localhost", VERSION_PATH));
}

#[test]
fn continuation_frames_are_joined() {
    let block = encode(
        &mut Encoder::new(),
        &request_fields(SOCKET_PATH, VERSION_PATH),
    );
    let mut input = PREFACE.to_vec();
    put_block(&mut input, 1, END_STREAM, &block, 7);
    let view = h2_view(&rewrite(&input).unwrap());
    assert_eq!(view.blocks.len(), 1);
    assert_eq!(view.blocks[0].1, END_STREAM | END_HEADERS);
    assert_eq!(view.blocks[0].2, request_fields("localhost", VERSION_PATH));
    assert!(view.frames.is_empty(), "no CONTINUATION left over");
}

#[test]
fn large_blocks_are_split_into_continuations() {
    let mut fields = request_fields(SOCKET_PATH, VERSION_PATH);
    fields.push((b"x-large".to_vec(), vec![b'a'; 40_000]));
    let block = encode(&mut Encoder::new(), &fields);
    let mut input = PREFACE.to_vec();
    put_block(&mut input, 1, 0, &block, MAX_FRAME_SIZE);
    let output = rewrite(&input).unwrap();
    let view = h2_view(&output);
    let count = |kind| {
        let mut rest = &output[PREFACE.len()..];
        let mut n = 0;
        while let Some(head) = FrameHead::peek(rest) {
            n += usize::from(head.kind == kind);
            rest = &rest[FRAME_HEAD_LEN + head.len..];
        }
        n
    };
    assert_eq!((count(HEADERS), count(CONTINUATION)), (1, 2));
    fields[3].1 = b"localhost".to_vec();
    assert_eq!(view.blocks[0].2, fields);
}

#[test]
fn byte_by_byte_input_gives_the_same_output() {
    for authorities in [
        &["localhost", "localhost"][..],
        &[SOCKET_PATH, "localhost", SOCKET_PATH],
    ] {
        let input = connection(authorities);
        assert_eq!(rewrite_bytewise(&input).unwrap(), rewrite(&input).unwrap());
    }
    let block = encode(
        &mut Encoder::new(),
        &request_fields(PERCENT_ABSOLUTE, VERSION_PATH),
    );
    let mut input = PREFACE.to_vec();
    put_block(&mut input, 1, 0, &block, 5);
    put_frame(&mut input, DATA, END_STREAM, 1, &[7; 300]);
    assert_eq!(rewrite_bytewise(&input).unwrap(), rewrite(&input).unwrap());
}

// === rejection ===

#[test]
fn oversize_blocks_are_rejected_before_buffering() {
    let mut fields = request_fields(SOCKET_PATH, VERSION_PATH);
    fields.push((b"x-large".to_vec(), vec![b'a'; 70_000]));
    let block = encode(&mut Encoder::new(), &fields);
    let mut input = PREFACE.to_vec();
    put_block(&mut input, 1, 0, &block, MAX_FRAME_SIZE);
    assert_invalid(rewrite(&input), "64 KiB");
    // Frame headers alone announce too much: no need to wait for payloads.
    let mut rewriter = Rewriter::new();
    let mut heads = PREFACE.to_vec();
    heads.extend_from_slice(&[0x01, 0x00, 0x00, HEADERS, 0, 0, 0, 0, 1]);
    rewriter.push(&heads);
    assert!(rewriter.process().is_err());
}

#[test]
fn decompression_bombs_are_rejected() {
    // One 4000-byte entry in the table, then 100 references to it.
    let mut first = vec![0x40, 7];
    first.extend_from_slice(b"x-bloat");
    first.extend_from_slice(&[0x7f, 0xa1, 0x1e]); // length 4000
    first.extend_from_slice(&[b'b'; 4000]);
    let mut input = PREFACE.to_vec();
    put_frame(&mut input, HEADERS, END_HEADERS, 1, &first);
    put_frame(&mut input, HEADERS, END_HEADERS, 3, &[0x80 | 62; 100]);
    assert_invalid(rewrite(&input), "64 KiB");
}

#[test]
fn protocol_violations_are_errors() {
    let block = encode(
        &mut Encoder::new(),
        &request_fields(SOCKET_PATH, VERSION_PATH),
    );
    let with = |frames: &[(u8, u8, u32, &[u8])]| {
        let mut input = PREFACE.to_vec();
        for (kind, flags, stream, payload) in frames {
            put_frame(&mut input, *kind, *flags, *stream, payload);
        }
        rewrite(&input)
    };
    assert_invalid(rewrite(b"GET / HTTP/1.1\r\n\r\n"), "preface");
    assert_invalid(
        with(&[(HEADERS, 0, 1, &block[..]), (PING, 0, 0, &b"12345678"[..])]),
        "interrupted",
    );
    assert_invalid(
        with(&[(HEADERS, 0, 1, &block[..]), (HEADERS, 4, 3, &block[..])]),
        "interrupted",
    );
    assert_invalid(
        with(&[(HEADERS, 0, 1, &block[..]), (CONTINUATION, 4, 3, &[][..])]),
        "another stream",
    );
    assert_invalid(
        with(&[(CONTINUATION, END_HEADERS, 1, &block[..])]),
        "without HEADERS",
    );
    assert_invalid(with(&[(HEADERS, END_HEADERS, 0, &block[..])]), "stream 0");
    assert_invalid(
        with(&[(PUSH_PROMISE, END_HEADERS, 1, &block[..])]),
        "PUSH_PROMISE",
    );
    assert_invalid(
        with(&[(HEADERS, END_HEADERS | PADDED, 1, &[9, 0x82][..])]),
        "padding",
    );
    assert_invalid(
        with(&[(HEADERS, END_HEADERS | PADDED, 1, &[][..])]),
        "too short",
    );
    assert_invalid(
        with(&[(HEADERS, END_HEADERS | PRIORITY, 1, &[0, 0, 0][..])]),
        "too short",
    );
    assert_invalid(with(&[(HEADERS, END_HEADERS, 1, &[0x80][..])]), "HPACK");
    assert_invalid(
        with(&[(HEADERS, END_HEADERS, 1, &[0x80 | 70][..])]),
        "HPACK",
    );
    assert_invalid(
        with(&[(HEADERS, END_HEADERS, 1, &[0x00, 0x85, 0xff, 0xff][..])]),
        "HPACK",
    );
    assert_invalid(with(&[(HEADERS, END_HEADERS, 1, &[0x20][..])]), "HPACK");
}

#[test]
fn truncated_input_is_unexpected_eof() {
    let input = connection(&[SOCKET_PATH]);
    for cut in [1, 30, PREFACE.len() + 20, input.len() - 3] {
        let error = rewrite(&input[..cut]).expect_err("cut short");
        assert_eq!(error.kind(), io::ErrorKind::UnexpectedEof, "cut at {cut}");
    }
    assert!(
        rewrite(&[]).unwrap().is_empty(),
        "closing before the preface is fine"
    );
}

#[test]
fn errors_are_sticky() {
    let mut rewriter = Rewriter::new();
    rewriter.push(b"garbage, not a preface");
    assert!(rewriter.process().is_err());
    rewriter.push(PREFACE);
    assert!(rewriter.process().is_err());
    assert!(rewriter.finish().is_err());
}

/// A small xorshift generator: reproducible noise without a dependency.
struct Noise(u64);

impl Noise {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

#[test]
fn garbage_is_an_error_not_a_panic() {
    let mut noise = Noise(0x2545_f491_4f6c_dd1d);
    let valid = connection(&[SOCKET_PATH, "localhost", PERCENT_RELATIVE]);
    for round in 0..3_000 {
        let mut input = if round % 2 == 0 {
            valid.clone()
        } else {
            PREFACE.to_vec()
        };
        if round % 2 == 0 {
            for _ in 0..1 + noise.below(4) {
                let at = PREFACE.len() + noise.below(input.len() - PREFACE.len());
                input[at] = noise.next() as u8;
            }
        } else {
            input.extend((0..noise.below(300)).map(|_| noise.next() as u8));
        }
        // Any outcome but a panic is fine; byte-wise must agree with bulk.
        let bulk = rewrite(&input).map_err(|e| e.kind());
        let bytewise = rewrite_bytewise(&input).map_err(|e| e.kind());
        assert_eq!(bulk, bytewise, "round {round}");
    }
}

// === the adapter ===

#[tokio::test]
async fn adapter_survives_tiny_reads_and_big_payloads() {
    let mut input = connection(&[SOCKET_PATH, "localhost"]);
    put_frame(&mut input, DATA, END_STREAM, 5, &vec![9; 40_000]);
    let expected = rewrite(&input).unwrap();

    let (mut client, server) = tokio::io::duplex(7);
    let writer = tokio::spawn(async move {
        client.write_all(&input).await.unwrap();
        client.shutdown().await.unwrap();
    });
    let mut adapter = AuthorityRewrite::new(server);
    let mut output = Vec::new();
    let mut buf = [0; 5];
    loop {
        let n = adapter.read(&mut buf).await.unwrap();
        if n == 0 {
            break;
        }
        output.extend_from_slice(&buf[..n]);
    }
    writer.await.unwrap();
    assert_eq!(output, expected);
}

#[tokio::test]
async fn adapter_reports_bad_input_as_an_error() {
    let (mut client, server) = tokio::io::duplex(64);
    client
        .write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut adapter = AuthorityRewrite::new(server);
    let error = adapter.read_to_end(&mut Vec::new()).await.unwrap_err();
    assert_eq!(error.kind(), io::ErrorKind::InvalidData);
}

// === end to end, through tonic ===

struct TestProvider;

#[tonic::async_trait]
impl CsiDriverProvider for TestProvider {
    async fn version(
        &self,
        request: Request<VersionRequest>,
    ) -> Result<Response<VersionResponse>, Status> {
        Ok(Response::new(VersionResponse {
            version: request.into_inner().version,
            runtime_name: "authority-test".to_owned(),
            runtime_version: "0.0.1".to_owned(),
        }))
    }

    async fn mount(&self, _: Request<MountRequest>) -> Result<Response<MountResponse>, Status> {
        Err(Status::unimplemented("not in this test"))
    }
}

/// Serves [`TestProvider`] on `azure.sock` in `dir`, with or without the
/// adapter in front of tonic.
fn serve(dir: &Path, with_adapter: bool) -> PathBuf {
    let path = dir.join("azure.sock");
    let incoming = UnixListenerStream::new(UnixListener::bind(&path).unwrap());
    let router = Server::builder().add_service(CsiDriverProviderServer::new(TestProvider));
    if with_adapter {
        let incoming = incoming.map(|stream| stream.map(AuthorityRewrite::new));
        tokio::spawn(router.serve_with_incoming(incoming));
    } else {
        tokio::spawn(router.serve_with_incoming(incoming));
    }
    path
}

fn version_request() -> Vec<u8> {
    VersionRequest {
        version: "v1alpha1".to_owned(),
    }
    .encode_to_vec()
}

fn assert_version_served(response: &raw_h2::RawResponse) {
    assert_eq!(response.reset, None, "{response:?}");
    assert_eq!(
        (response.http_status, response.grpc_status),
        (Some(200), Some(0))
    );
    let message = response.message.as_deref().expect("a response message");
    let version = VersionResponse::decode(message).unwrap();
    assert_eq!(
        (&version.version[..], &version.runtime_name[..]),
        ("v1alpha1", "authority-test")
    );
}

#[tokio::test]
async fn tonic_client_is_served_through_the_adapter() {
    let dir = tempfile::tempdir().unwrap();
    let path = serve(dir.path(), true);
    let channel = Endpoint::from_shared(format!("unix:{}", path.display()))
        .unwrap()
        .origin(Uri::from_static("http://localhost"))
        .connect()
        .await
        .unwrap();
    let mut client = CsiDriverProviderClient::new(channel);
    for _ in 0..3 {
        let request = VersionRequest {
            version: "v1alpha1".to_owned(),
        };
        let version = client.version(request).await.unwrap().into_inner();
        assert_eq!(version.runtime_name, "authority-test");
    }
    let status = client.mount(MountRequest::default()).await.unwrap_err();
    assert_eq!(status.code(), tonic::Code::Unimplemented);
}

#[tokio::test]
async fn old_driver_authorities_are_served_through_the_adapter() {
    let dir = tempfile::tempdir().unwrap();
    let path = serve(dir.path(), true);
    let socket = path.display().to_string();
    for authority in [
        &socket[..],
        "/tmp/x/azure.sock",
        PERCENT_RELATIVE,
        PERCENT_ABSOLUTE,
    ] {
        let response = raw_h2::unary(&path, authority, VERSION_PATH, &version_request()).await;
        assert_version_served(&response.unwrap());
    }
}

#[tokio::test]
async fn old_driver_connection_serves_many_requests() {
    let dir = tempfile::tempdir().unwrap();
    let path = serve(dir.path(), true);
    let request = version_request();
    let requests = [&request[..]; 4];
    let responses = raw_h2::unary_many(&path, SOCKET_PATH, VERSION_PATH, &requests).await;
    let responses = responses.unwrap();
    assert_eq!(responses.len(), 4);
    responses.iter().for_each(assert_version_served);
}

#[tokio::test]
async fn old_driver_authority_is_reset_without_the_adapter() {
    let dir = tempfile::tempdir().unwrap();
    let path = serve(dir.path(), false);
    for authority in [SOCKET_PATH, PERCENT_RELATIVE] {
        let response = raw_h2::unary(&path, authority, VERSION_PATH, &version_request()).await;
        let response = response.unwrap();
        assert_eq!(response.reset, Some(PROTOCOL_ERROR), "{response:?}");
        assert_eq!(response.message, None);
    }
    // The same client with v1.6's authority works, so the raw client is sound.
    let response = raw_h2::unary(&path, "localhost", VERSION_PATH, &version_request()).await;
    assert_version_served(&response.unwrap());
}
