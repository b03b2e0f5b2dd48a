//! PEM text as Go's `encoding/pem` reads and writes it, which is what the
//! upstream provider's files are made of: blocks written with 64-column
//! base64 and LF line ends, optional `Key: value` headers (`Proc-Type`
//! first, the rest sorted), and a lenient reader that skips anything that is
//! not a well-formed block. Also splits a bundle into its certificates and
//! everything else (`--write-cert-and-key-in-separate-files`).
//!
//! Pure: bytes in, bytes out. Decoded bytes of key blocks are zeroized on
//! drop.

use std::collections::BTreeMap;

use base64::Engine as _;
use zeroize::Zeroizing;

/// The PEM type of an X.509 certificate.
pub const CERTIFICATE: &str = "CERTIFICATE";
/// The PEM type of a PKCS#8 private key.
pub const PRIVATE_KEY: &str = "PRIVATE KEY";
/// The PEM type of a SubjectPublicKeyInfo.
pub const PUBLIC_KEY: &str = "PUBLIC KEY";

const BEGIN: &[u8] = b"-----BEGIN ";
const END: &[u8] = b"\n-----END ";
const DASHES: &[u8] = b"-----";
const LINE: usize = 64;

/// One decoded block.
pub struct Block {
    pub kind: String,
    pub headers: BTreeMap<String, String>,
    pub bytes: Zeroizing<Vec<u8>>,
}

/// Appends one block without headers (Go's `pem.EncodeToMemory` of a block
/// with no headers).
pub fn encode_into(out: &mut Vec<u8>, kind: &str, der: &[u8]) {
    encode_with_headers(out, kind, &BTreeMap::new(), der);
}

/// One block as a new buffer.
pub fn encode(kind: &str, der: &[u8]) -> Zeroizing<Vec<u8>> {
    let mut out = Zeroizing::new(Vec::with_capacity(der.len() * 4 / 3 + 64));
    encode_into(&mut out, kind, der);
    out
}

/// Go's `pem.Encode`: headers with `Proc-Type` first, the others sorted,
/// then a blank line; base64 in 64-column lines.
fn encode_with_headers(
    out: &mut Vec<u8>,
    kind: &str,
    headers: &BTreeMap<String, String>,
    der: &[u8],
) {
    out.extend_from_slice(BEGIN);
    out.extend_from_slice(kind.as_bytes());
    out.extend_from_slice(b"-----\n");
    if !headers.is_empty() {
        let proc_type = headers.get_key_value("Proc-Type");
        let rest = headers.iter().filter(|(k, _)| k.as_str() != "Proc-Type");
        for (key, value) in proc_type.into_iter().chain(rest) {
            out.extend_from_slice(format!("{key}: {value}\n").as_bytes());
        }
        out.push(b'\n');
    }
    let text = Zeroizing::new(base64::engine::general_purpose::STANDARD.encode(der));
    for line in text.as_bytes().chunks(LINE) {
        out.extend_from_slice(line);
        out.push(b'\n');
    }
    out.extend_from_slice(b"-----END ");
    out.extend_from_slice(kind.as_bytes());
    out.extend_from_slice(b"-----\n");
}

/// Every well-formed block of `data`, in order, as Go's `pem.Decode` finds
/// them when called until it returns no block.
pub fn decode_all(data: &[u8]) -> Vec<Block> {
    let mut blocks = Vec::new();
    let mut rest = data;
    while let Some((block, after)) = decode(rest) {
        blocks.push(block);
        rest = after;
    }
    blocks
}

/// How many lines of `data` start a block (`-----BEGIN `): more than
/// [`decode_all`] finds means a block never ends or is cut short.
pub fn begin_lines(data: &[u8]) -> usize {
    let mut count = 0;
    let mut rest = data;
    while let Some(after) = after_begin(rest) {
        count += 1;
        rest = after;
    }
    count
}

/// Go's `pem.Decode`: the first well-formed block and what follows it.
fn decode(data: &[u8]) -> Option<(Block, &[u8])> {
    let mut rest = data;
    loop {
        rest = after_begin(rest)?;
        let (type_line, after_type) = line(rest);
        rest = after_type;
        let Some(kind) = type_line.strip_suffix(DASHES) else {
            continue;
        };
        let (headers, body) = headers(rest)?;
        match block_end(body, kind, headers.is_empty()) {
            Some((base64_text, after)) => {
                if let Some(bytes) = decode_base64(base64_text) {
                    let kind = String::from_utf8_lossy(kind).into_owned();
                    return Some((
                        Block {
                            kind,
                            headers,
                            bytes,
                        },
                        after,
                    ));
                }
                // Go moves past the bad block's BEGIN line only.
                rest = body;
            }
            None => rest = body,
        }
    }
}

/// The input after the next `-----BEGIN ` that starts a line.
fn after_begin(data: &[u8]) -> Option<&[u8]> {
    if let Some(rest) = data.strip_prefix(BEGIN) {
        return Some(rest);
    }
    let needle = b"\n-----BEGIN ";
    let at = find(data, needle)?;
    Some(&data[at + needle.len()..])
}

/// `Key: value` lines right after the type line. `None` when the input ends
/// inside them (Go then finds no block at all).
fn headers(mut rest: &[u8]) -> Option<(BTreeMap<String, String>, &[u8])> {
    let mut headers = BTreeMap::new();
    loop {
        if rest.is_empty() {
            return None;
        }
        let (text, next) = line(rest);
        let Some(colon) = text.iter().position(|&b| b == b':') else {
            return Some((headers, rest));
        };
        let key = String::from_utf8_lossy(text[..colon].trim_ascii()).into_owned();
        let value = String::from_utf8_lossy(text[colon + 1..].trim_ascii()).into_owned();
        headers.insert(key, value);
        rest = next;
    }
}

/// Finds the `-----END <kind>-----` line; returns the base64 text before it
/// and the input after its line.
fn block_end<'a>(body: &'a [u8], kind: &[u8], no_headers: bool) -> Option<(&'a [u8], &'a [u8])> {
    let (text_end, trailer_start) = if no_headers && body.starts_with(&END[1..]) {
        (0, END.len() - 1)
    } else {
        let at = find(body, END)?;
        (at, at + END.len())
    };
    let trailer = &body[trailer_start..];
    let trailer_len = kind.len() + DASHES.len();
    if trailer.len() < trailer_len
        || !trailer[..trailer_len].starts_with(kind)
        || !trailer[..trailer_len].ends_with(DASHES)
    {
        return None;
    }
    let (end_line_rest, _) = line(&trailer[trailer_len..]);
    if !end_line_rest.is_empty() {
        return None;
    }
    let (_, after) = line(&body[text_end + END.len() - 1..]);
    Some((&body[..text_end], after))
}

/// Go's `getLine`: up to the next LF, trailing spaces, tabs and CRs removed.
fn line(data: &[u8]) -> (&[u8], &[u8]) {
    let (text, rest) = match data.iter().position(|&b| b == b'\n') {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &data[data.len()..]),
    };
    let trimmed_len = text
        .iter()
        .rposition(|b| !matches!(b, b' ' | b'\t' | b'\r'))
        .map_or(0, |i| i + 1);
    (&text[..trimmed_len], rest)
}

/// Base64 of a block body: spaces and tabs dropped, CR and LF ignored, as
/// Go's standard decoder does.
fn decode_base64(text: &[u8]) -> Option<Zeroizing<Vec<u8>>> {
    let clean: Zeroizing<Vec<u8>> = Zeroizing::new(
        text.iter()
            .copied()
            .filter(|b| !matches!(b, b' ' | b'\t' | b'\r' | b'\n'))
            .collect(),
    );
    crate::go::STD_BASE64
        .decode(&clean)
        .ok()
        .map(Zeroizing::new)
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// Splits a PEM bundle into (certificates, everything else), each block
/// re-encoded, as upstream's `--write-cert-and-key-in-separate-files` does.
/// Text that is not PEM (a base64 PFX) yields two empty outputs.
pub fn split_cert_and_key(data: &[u8]) -> (Zeroizing<Vec<u8>>, Zeroizing<Vec<u8>>) {
    let mut certs = Zeroizing::new(Vec::new());
    let mut keys = Zeroizing::new(Vec::new());
    for block in decode_all(data) {
        let out: &mut Vec<u8> = if block.kind == CERTIFICATE {
            &mut certs
        } else {
            &mut keys
        };
        encode_with_headers(out, &block.kind, &block.headers, &block.bytes);
    }
    (certs, keys)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_like_go() {
        let der: Vec<u8> = (0u8..=100).collect();
        let pem = encode(CERTIFICATE, &der);
        let text = std::str::from_utf8(&pem).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "-----BEGIN CERTIFICATE-----");
        assert_eq!(lines[1].len(), 64);
        assert_eq!(lines[3].len(), 8);
        assert_eq!(lines[4], "-----END CERTIFICATE-----");
        assert!(text.ends_with("-----\n"));
        assert_eq!(
            std::str::from_utf8(&encode("X", b"")).unwrap(),
            "-----BEGIN X-----\n-----END X-----\n"
        );
    }

    #[test]
    fn headers_are_written_proc_type_first_then_sorted() {
        let mut headers = BTreeMap::new();
        headers.insert("Zeta".to_owned(), "1".to_owned());
        headers.insert("DEK-Info".to_owned(), "x".to_owned());
        headers.insert("Proc-Type".to_owned(), "4,ENCRYPTED".to_owned());
        let mut out = Vec::new();
        encode_with_headers(&mut out, "RSA PRIVATE KEY", &headers, b"abc");
        assert_eq!(
            std::str::from_utf8(&out).unwrap(),
            "-----BEGIN RSA PRIVATE KEY-----\nProc-Type: 4,ENCRYPTED\nDEK-Info: x\nZeta: 1\n\nYWJj\n-----END RSA PRIVATE KEY-----\n"
        );
    }

    #[test]
    fn decodes_blocks_skipping_junk() {
        let text = b"leading text\n-----BEGIN A-----\nYWJj\n-----END A-----\n\
            -----BEGIN BAD-----\n!!!!\n-----END BAD-----\n\
            -----BEGIN B-----\r\nfriendlyName: x\r\n\r\nZGVm\r\nZw==\r\n-----END B-----   \r\ntrailer";
        let blocks = decode_all(text);
        let summary: Vec<(&str, &[u8], usize)> = blocks
            .iter()
            .map(|b| (b.kind.as_str(), b.bytes.as_slice(), b.headers.len()))
            .collect();
        assert_eq!(summary, vec![("A", &b"abc"[..], 0), ("B", &b"defg"[..], 1)]);
        assert_eq!(blocks[1].headers["friendlyName"], "x");
    }

    #[test]
    fn mismatched_or_unterminated_blocks_are_not_blocks() {
        assert!(decode_all(b"-----BEGIN A-----\nYWJj\n-----END B-----\n").is_empty());
        assert!(decode_all(b"-----BEGIN A-----\nYWJj\n").is_empty());
        assert!(decode_all(b"-----BEGIN A-----\nYWJj\n-----END A----- x\n").is_empty());
        assert!(decode_all(b"MIIKXAIBAzCCChYGCSqGSIb3DQEHAaCCCgcEggoDMIIJ").is_empty());
        assert!(decode_all(b"").is_empty());
        assert!(decode_all(b"-----BEGIN ").is_empty());
        assert!(decode_all(b"-----BEGIN A-----").is_empty());
    }

    #[test]
    fn split_normalizes_each_block() {
        let bundle = b"-----BEGIN PRIVATE KEY-----\nYWJj\n-----END PRIVATE KEY-----\n\
            -----BEGIN CERTIFICATE-----\nZGVm\n-----END CERTIFICATE-----\n\
            -----BEGIN CERTIFICATE-----\nZ2hp\n-----END CERTIFICATE-----\n";
        let (certs, keys) = split_cert_and_key(bundle);
        assert_eq!(
            std::str::from_utf8(&certs).unwrap(),
            "-----BEGIN CERTIFICATE-----\nZGVm\n-----END CERTIFICATE-----\n-----BEGIN CERTIFICATE-----\nZ2hp\n-----END CERTIFICATE-----\n"
        );
        assert_eq!(
            std::str::from_utf8(&keys).unwrap(),
            "-----BEGIN PRIVATE KEY-----\nYWJj\n-----END PRIVATE KEY-----\n"
        );
        let (certs, keys) = split_cert_and_key(b"TUlJS1hBSUJBekNDQ2hZ");
        assert!(certs.is_empty() && keys.is_empty());
    }
}
