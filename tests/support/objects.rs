//! Objects for the tests: the OpenSSL-made fixtures of `tests/data/pki`
//! (PEM chains, PFX files, JWKs), certificate and key seeds built from
//! them, the `objects` YAML of a list of entries, and mounting the blog
//! SecretProviderClass with such a list.

#![allow(dead_code)]

use base64::Engine as _;
use fake_azure::{CertificateSeed, KeySeed};

use crate::support::driver::Pod;
use crate::support::harness::Harness;

pub const VAULT: &str = "kv-blogpost-jx01";
pub const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

pub fn fixture(path: &str) -> &'static [u8] {
    macro_rules! fixtures {
        ($($name:literal,)*) => {
            match path {
                $($name => include_bytes!(concat!("../data/pki/", $name)).as_slice(),)*
                other => panic!("no fixture {other}"),
            }
        };
    }
    fixtures!(
        "rsa/key.pem",
        "rsa/leaf.pem",
        "rsa/int.pem",
        "rsa/root.pem",
        "ec/key.pem",
        "ec/leaf.pem",
        "ec/int.pem",
        "ec/root.pem",
        "noaki/key.pem",
        "noaki/leaf.pem",
        "noaki/int.pem",
        "noaki/root.pem",
        "rsa-kv.pfx",
        "rsa-aes.pfx",
        "ec-legacy.pfx",
        "noaki-3des.pfx",
        "jwk/rsa2048.json",
        "jwk/rsa2048.pub.pem",
        "jwk/rsa3072-e3.json",
        "jwk/rsa3072-e3.pub.pem",
        "jwk/ec-p256.json",
        "jwk/ec-p256.pub.pem",
        "jwk/ec-p384.json",
        "jwk/ec-p384.pub.pem",
        "jwk/ec-p521.json",
        "jwk/ec-p521.pub.pem",
    )
}

pub fn text(path: &str) -> String {
    String::from_utf8(fixture(path).to_vec()).unwrap()
}

/// Key, then leaf, intermediate, root: what upstream writes.
pub fn ordered(chain: &str) -> String {
    ["key", "leaf", "int", "root"]
        .iter()
        .map(|f| text(&format!("{chain}/{f}.pem")))
        .collect()
}

/// The DER of a PEM fixture, base64: a certificate bundle's `cer`.
pub fn cer(path: &str) -> String {
    let pem = text(path);
    let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    body
}

pub fn jwk(name: &str) -> KeySeed {
    let value: serde_json::Value =
        serde_json::from_slice(fixture(&format!("jwk/{name}.json"))).unwrap();
    let get = |k: &str| value[k].as_str().map(str::to_owned);
    KeySeed {
        name: String::new(),
        kty: get("kty").unwrap(),
        crv: get("crv"),
        n: get("n"),
        e: get("e"),
        x: get("x"),
        y: get("y"),
        enabled: true,
    }
}

/// A certificate whose secret is a PFX fixture.
pub fn pfx_certificate(name: &str, pfx: &str, leaf: &str) -> CertificateSeed {
    CertificateSeed {
        name: name.into(),
        cer: cer(leaf),
        secret_value: B64.encode(fixture(pfx)),
        content_type: "application/x-pkcs12".into(),
        key: None,
        enabled: true,
    }
}

pub fn objects(entries: &[&str]) -> String {
    let mut yaml = String::from("array:\n");
    for entry in entries {
        yaml.push_str("  - |\n");
        for line in entry.lines() {
            yaml.push_str("    ");
            yaml.push_str(line.trim());
            yaml.push('\n');
        }
    }
    yaml
}

pub async fn mount(
    harness: &Harness,
    entries: &[&str],
) -> Result<akv_csi_provider::proto::MountResponse, tonic::Status> {
    harness
        .mount_spc(
            &Harness::blog_spc_with_objects(&objects(entries)),
            &Pod::blog(),
        )
        .await
}
