//! The invariant checks behind the fuzz targets in `fuzz/` (cargo-fuzz)
//! and the replay of their corpora and crash regressions in `make test`
//! (`tests/corpus.rs`). Like ripgrep's fuzz targets calling `globset`, they
//! use only public APIs: akv-core's parsers and renderers, and the
//! provider crate's wire decoders (`keyvault::decode_*`,
//! `authority::AuthorityRewrite` over the client's bytes,
//! `auth::{aad,imds,pod_identity}::decode`, `auth::jwt_expiry`) and message
//! limits (`server::one_line`).
//!
//! Each function takes raw bytes, drives one parser of untrusted input the
//! way the provider does, and checks invariants that must hold for any
//! input. A panic here is a finding: libFuzzer aborts on it, `make test`
//! fails on it. Nothing is logged; no I/O. Test code only: the provider
//! binary does not depend on this crate.

use std::collections::BTreeSet;

use akv_core::labels::ErrorCode;
use akv_core::object::{
    FileMode, JmesPathSpec, KeyVaultObject, MAX_VERSION_HISTORY, ObjectEncoding, ObjectFormat,
    ObjectSpec, validate_file_name,
};
use akv_core::params::{self, MountParams, ParseOptions};
use akv_core::render::{self, Fetched, Jwk, RenderOptions, Slot, chain, pem, pkcs12, private_key};
use akv_csi_provider::auth::{self, aad, imds, pod_identity};
use akv_csi_provider::{keyvault, server};
use secrecy::SecretString;

/// A fuzz target: any bytes in, no panic out.
pub type Target = fn(&[u8]);

/// The fuzz targets, by name (the names of `fuzz/fuzz_targets/*.rs` and of
/// the corpus directories).
pub const TARGETS: &[(&str, Target)] = &[
    ("params", params),
    ("objects", objects),
    ("pkcs12", pkcs12),
    ("chain", chain),
    ("jwk", jwk),
    ("pem", pem),
    ("keyvault", keyvault),
    ("token", token),
    ("secret", secret),
    ("jmespath", jmespath),
    ("authority", authority),
    ("spc", spc),
];

/// `attributes`, `secrets` and `permission` of a `MountRequest`, separated
/// by NUL bytes (a missing `secrets` is empty, a missing `permission` is
/// the driver's `420`).
pub fn params(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let mut parts = text.splitn(3, '\0');
    let attributes = parts.next().unwrap_or_default();
    let secrets = parts.next().unwrap_or_default();
    let permission = parts.next().unwrap_or("420");
    match params::parse(attributes, secrets, permission, &ParseOptions::default()) {
        Ok(parsed) => check_params(&parsed),
        Err(e) => check_error(&e.to_string(), e.code()),
    }
}

/// The `objects` YAML of an otherwise valid request.
pub fn objects(data: &[u8]) {
    let yaml = String::from_utf8_lossy(data);
    let attributes = serde_json::json!({
        "csi.storage.k8s.io/pod.name": "pod",
        "csi.storage.k8s.io/pod.namespace": "ns",
        "keyvaultName": "kv",
        "tenantId": "tenant",
        "usePodIdentity": "true",
        "objects": yaml,
    })
    .to_string();
    match params::parse(&attributes, "", "420", &ParseOptions::default()) {
        Ok(parsed) => check_params(&parsed),
        Err(e) => check_error(&e.to_string(), e.code()),
    }
}

/// A PFX (DER) through the conversion upstream's PKCS#12 → PEM does:
/// decode, normalize every key, order the chain, write PEM.
pub fn pkcs12(data: &[u8]) {
    let Ok(contents) = pkcs12::decode(data) else {
        return;
    };
    let mut out = Vec::new();
    for key in &contents.keys {
        if let Ok(pkcs8) = private_key::normalize_pkcs8(key) {
            pem::encode_into(&mut out, pem::PRIVATE_KEY, &pkcs8);
        }
    }
    let order = check_order(&contents.certs);
    for i in order {
        pem::encode_into(&mut out, pem::CERTIFICATE, &contents.certs[i]);
    }
    let blocks = pem::decode_all(&out);
    assert!(blocks.len() <= contents.keys.len() + contents.certs.len());
}

/// Certificates (DER) one after the other, as a PFX holds them.
pub fn chain(data: &[u8]) {
    check_order(&split_der(data));
}

/// A Key Vault key answer → the public key PEM.
pub fn jwk(data: &[u8]) {
    let Ok(bundle) = keyvault::decode_key("kv", 200, data) else {
        return;
    };
    let jwk = Jwk {
        kty: bundle.kty,
        crv: bundle.crv,
        n: bundle.n,
        e: bundle.e,
        x: bundle.x,
        y: bundle.y,
    };
    match render::jwk::public_key_pem(&jwk) {
        Ok(text) => {
            let blocks = pem::decode_all(&text);
            assert_eq!(blocks.len(), 1, "one PUBLIC KEY block");
            assert_eq!(blocks[0].kind, pem::PUBLIC_KEY);
        }
        Err(e) => check_error(&e.to_string(), "UnsupportedKey"),
    }
}

/// PEM text as a secret's value: decode, split into certificates and the
/// rest; the split parts read back as the same blocks.
pub fn pem(data: &[u8]) {
    let blocks = pem::decode_all(data);
    let (certs, keys) = pem::split_cert_and_key(data);
    if blocks.iter().all(|b| is_plain_kind(&b.kind)) {
        let again = pem::decode_all(&certs).len() + pem::decode_all(&keys).len();
        assert_eq!(again, blocks.len(), "split re-reads as the same blocks");
    }
    for block in &blocks {
        let written = pem::encode(&block.kind, &block.bytes);
        let read = pem::decode_all(&written);
        if is_plain_kind(&block.kind) {
            assert_eq!(read.len(), 1, "a written block reads back");
            assert_eq!(*read[0].bytes, *block.bytes);
        }
    }
}

/// Key Vault answers. The first byte picks the decoder and the status.
pub fn keyvault(data: &[u8]) {
    let (selector, body) = data.split_first().unwrap_or((&0, &[]));
    let status = STATUSES[usize::from(selector >> 2) % STATUSES.len()];
    let result = match selector & 3 {
        0 => keyvault::decode_secret("kv", status, body).map(drop),
        1 => keyvault::decode_key("kv", status, body).map(drop),
        2 => keyvault::decode_certificate("kv", status, body).map(drop),
        _ => keyvault::decode_list("kv", status, body).map(|page| {
            for v in &page.versions {
                assert!(!v.version.contains('/'), "a version id has no '/'");
            }
        }),
    };
    if let Err(e) = result {
        check_answer_error(&e.to_string(), &e.code());
    }
}

/// Token answers of Entra ID, IMDS and NMI, and the expiry read from a
/// service-account token. The first byte picks the decoder and status.
pub fn token(data: &[u8]) {
    let (selector, body) = data.split_first().unwrap_or((&0, &[]));
    let status = STATUSES[usize::from(selector >> 2) % STATUSES.len()];
    match selector & 3 {
        0 => {
            if let Err(e) = aad::decode(status, body) {
                check_answer_error(&e.to_string(), &e.code());
            }
        }
        1 => {
            if let Err(e) = imds::decode(status, body) {
                check_answer_error(&e.to_string(), &e.code());
            }
        }
        2 => {
            let now = std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_700_000_000);
            if let Err(e) = pod_identity::decode(status, body, now) {
                check_answer_error(&e.to_string(), "Nmi");
            }
        }
        _ => {
            let _ = auth::jwt_expiry(&String::from_utf8_lossy(body));
        }
    }
}

/// A secret version through `render`: the first byte picks encoding,
/// content type, format and switches; the rest is the value.
pub fn secret(data: &[u8]) {
    let (selector, value) = data.split_first().unwrap_or((&0, &[]));
    let encoding = ["utf-8", "base64", "hex"][usize::from(selector & 3) % 3];
    let content_type = match (selector >> 2) & 3 {
        0 => None,
        1 => Some("application/x-pem-file"),
        2 => Some("application/x-pkcs12"),
        _ => Some("text/plain"),
    };
    let format = if selector & 0x10 != 0 { "pfx" } else { "pem" };
    let spec = ObjectSpec {
        name: "s".into(),
        alias: "dir/s".into(),
        object_type: "secret".into(),
        format: format.into(),
        encoding: encoding.into(),
        ..Default::default()
    };
    let object = KeyVaultObject::from_spec(spec).expect("a valid object");
    assert_eq!(object.format == ObjectFormat::Pfx, selector & 0x10 != 0);
    assert!(matches!(
        object.encoding,
        ObjectEncoding::Utf8 | ObjectEncoding::Base64 | ObjectEncoding::Hex
    ));
    let fetched = Fetched::Secret {
        value: SecretString::from(String::from_utf8_lossy(value).into_owned()),
        version: "v1".into(),
        content_type: content_type.map(str::to_owned),
        certificate_backed: content_type.is_some(),
    };
    let options = RenderOptions {
        construct_pem_chain: selector & 0x20 == 0,
        write_cert_and_key_in_separate_files: selector & 0x40 != 0,
    };
    let slot = if selector & 0x80 != 0 {
        Slot::History(7)
    } else {
        Slot::Single
    };
    let mode = FileMode::DEFAULT;
    match render::render(&object, slot, fetched, mode, options) {
        Ok(output) => {
            let mut paths = BTreeSet::new();
            for item in &output.files {
                assert_eq!(validate_file_name(&item.file.path), Ok(()));
                assert!(paths.insert(item.file.path.clone()), "unique paths");
            }
        }
        Err(e) => check_error(&e.to_string(), e.code()),
    }
}

/// `jmesPath` on a JSON secret: a path, a NUL byte, the secret's value.
/// The path is validated as the parameters are; a valid one is evaluated.
pub fn jmespath(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let (path, value) = text.split_once('\0').unwrap_or((&text, "{}"));
    let spec = ObjectSpec {
        name: "s".into(),
        object_type: "secret".into(),
        jmes_path: vec![JmesPathSpec {
            path: path.trim().to_owned(),
            alias: "out".into(),
            file_permission: String::new(),
        }],
        ..Default::default()
    };
    let object = match KeyVaultObject::from_spec(spec) {
        Ok(object) => object,
        Err(e) => return check_error(&e.to_string(), "InvalidObjects"),
    };
    let fetched = Fetched::Secret {
        value: SecretString::from(value.to_owned()),
        version: "v1".into(),
        content_type: None,
        certificate_backed: false,
    };
    let mode = FileMode::DEFAULT;
    match render::render(
        &object,
        Slot::Single,
        fetched,
        mode,
        RenderOptions::default(),
    ) {
        Ok(output) => assert_eq!(output.files.len(), 2, "the secret and the entry"),
        Err(e) => check_error(&e.to_string(), e.code()),
    }
}

/// Statuses a decoder may see with a body.
const STATUSES: [u16; 8] = [200, 400, 401, 403, 404, 429, 500, 503];

/// What holds for every accepted request.
fn check_params(parsed: &MountParams) {
    assert!(parsed.objects.len() <= params::MAX_OBJECTS);
    let mut files = BTreeSet::new();
    for object in &parsed.objects {
        assert_eq!(validate_file_name(object.file_name()), Ok(()));
        assert!(!object.name.is_empty());
        assert!(object.version_history <= MAX_VERSION_HISTORY);
        files.insert(object.file_name().to_owned());
    }
    // The same file twice is accepted (as upstream); a file where another
    // object needs a directory is not.
    for file in &files {
        for (end, _) in file.match_indices('/') {
            assert!(!files.contains(&file[..end]), "file/directory clash");
        }
    }
    // `Debug` of the parsed request (logged nowhere, but it must not panic).
    let _ = format!("{parsed:?}");
}

/// What holds for every error: a bounded, printable code, and a message
/// that `server` can show (one line, bounded, after its flattening).
fn check_error(message: &str, code: &str) {
    let code = ErrorCode::new(code.to_owned());
    let code = code.as_str();
    assert!(!code.is_empty() && code.len() <= 48, "{code:?}");
    let shown = server::one_line(message);
    assert!(!shown.contains(['\n', '\r']), "{shown:?}");
    assert!(shown.len() <= server::MAX_MESSAGE_BYTES);
}

/// Errors about an Azure answer are one bounded line by construction: a
/// response body never runs into a message.
fn check_answer_error(message: &str, code: &str) {
    check_error(message, code);
    assert!(!message.contains(['\n', '\r']), "{message:?}");
    assert!(message.len() <= 2048, "{} bytes", message.len());
}

/// Orders certificates and checks the order is a permutation.
fn check_order(certs: &[Vec<u8>]) -> Vec<usize> {
    let (order, _) = chain::order(certs);
    let mut sorted = order.clone();
    sorted.sort_unstable();
    assert_eq!(
        sorted,
        (0..certs.len()).collect::<Vec<_>>(),
        "a permutation"
    );
    order
}

/// Splits concatenated DER elements by their length headers; what does
/// not parse as an element is one last blob.
pub fn split_der(mut data: &[u8]) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    while !data.is_empty() {
        let len = der_element_len(data).filter(|&n| n <= data.len());
        let take = len.unwrap_or(data.len());
        out.push(data[..take].to_vec());
        data = &data[take..];
    }
    out
}

/// The length of the DER element at the start of `data` (tag, length,
/// contents), if its header is well formed.
fn der_element_len(data: &[u8]) -> Option<usize> {
    let first = *data.get(1)?;
    if first < 0x80 {
        return Some(2 + usize::from(first));
    }
    let count = usize::from(first & 0x7f);
    if count == 0 || count > 4 {
        return None;
    }
    let bytes = data.get(2..2 + count)?;
    let len = bytes.iter().fold(0usize, |n, &b| (n << 8) | usize::from(b));
    (2 + count).checked_add(len)
}

/// Block types Go re-reads as written: no `:` (a header line) and no
/// dashes at the ends.
fn is_plain_kind(kind: &str) -> bool {
    !kind.contains(':') && !kind.contains("-----") && !kind.ends_with('-')
}

/// The client's half of an HTTP/2 connection through the `:authority`
/// rewriter (a bug there resets every mount on the node). It must end
/// (never wait on bytes it already has), never panic, and what it passes
/// on starts with the connection preface it checked.
pub fn authority(data: &[u8]) {
    use std::pin::Pin;
    use std::task::{Context, Poll, Waker};
    use tokio::io::{AsyncRead, ReadBuf};

    let mut rewrite = akv_csi_provider::authority::AuthorityRewrite::new(data);
    let mut cx = Context::from_waker(Waker::noop());
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let mut read = ReadBuf::new(&mut buf);
        match Pin::new(&mut rewrite).poll_read(&mut cx, &mut read) {
            Poll::Ready(Ok(())) if read.filled().is_empty() => break,
            Poll::Ready(Ok(())) => out.extend_from_slice(read.filled()),
            Poll::Ready(Err(e)) => {
                assert!(!e.to_string().is_empty());
                break;
            }
            Poll::Pending => panic!("the rewriter waits on an in-memory reader"),
        }
    }
    const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
    let n = out.len().min(PREFACE.len());
    assert_eq!(&out[..n], &PREFACE[..n], "output starts with the preface");
}

/// A SecretProviderClass document (`akv-csi-provider mount --spc`):
/// parsed or refused with a one-line error, never a panic; a parsed one
/// has a name and string parameters.
pub fn spc(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    match akv_core::spc::parse(&text) {
        Ok(spc) => assert!(!spc.name.is_empty(), "a parsed class has a name"),
        Err(e) => assert!(!e.to_string().is_empty()),
    }
}
