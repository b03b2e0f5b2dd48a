//! Test-only: the PKI fixtures of `tests/data/pki` (made by its `gen.sh`
//! with OpenSSL), compiled in so the pure modules' tests read no files.

/// The bytes of `tests/data/pki/<path>`.
pub fn bytes(path: &str) -> &'static [u8] {
    macro_rules! fixtures {
        ($($name:literal,)*) => {
            match path {
                $($name => include_bytes!(concat!(
                    env!("CARGO_MANIFEST_DIR"),
                    "/../../tests/data/pki/",
                    $name
                )),)*
                other => panic!("no fixture {other}"),
            }
        };
    }
    fixtures!(
        "ec-3des.pfx",
        "ec-aes.pfx",
        "ec-legacy.pfx",
        "ec/int.pem",
        "ec/key.pem",
        "ec/leaf.pem",
        "ec/root.pem",
        "ec/scrambled-cas.pem",
        "jwk/ec-p256.json",
        "jwk/ec-p256.pub.pem",
        "jwk/ec-p384.json",
        "jwk/ec-p384.pub.pem",
        "jwk/ec-p521.json",
        "jwk/ec-p521.pub.pem",
        "jwk/rsa2048.json",
        "jwk/rsa2048.pub.pem",
        "jwk/rsa3072-e3.json",
        "jwk/rsa3072-e3.pub.pem",
        "noaki-3des.pfx",
        "noaki-aes.pfx",
        "noaki-legacy.pfx",
        "noaki/int.pem",
        "noaki/key.pem",
        "noaki/leaf.pem",
        "noaki/root.pem",
        "noaki/scrambled-cas.pem",
        "p521-aes.pfx",
        "p521/key.pem",
        "p521/leaf.pem",
        "partial-aes.pfx",
        "rsa-3des.pfx",
        "rsa-aes.pfx",
        "rsa-kv.pfx",
        "rsa-legacy.pfx",
        "rsa/int.pem",
        "rsa/key.pem",
        "rsa/leaf.pem",
        "rsa/root.pem",
        "rsa/scrambled-cas.pem",
    )
}

/// A fixture as text.
pub fn text(path: &str) -> &'static str {
    std::str::from_utf8(bytes(path)).expect("fixture is UTF-8")
}

/// The DER of the first PEM block of a fixture.
pub fn pem_der(path: &str) -> Vec<u8> {
    super::pem::decode_all(bytes(path))[0].bytes.to_vec()
}
