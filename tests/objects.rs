//! Object types, formats, encodings and version history, with upstream's
//! bytes: keys (SPKI PEM), certificates (the leaf), certificate-backed
//! secrets (PKCS#12 → PEM key first then the chain, PFX passthrough, PEM
//! as stored, `.crt`/`.key` files), plain secrets with `objectEncoding`,
//! and `objectVersionHistory`. Expected bytes come from `tests/data/pki`
//! (made by OpenSSL in its `gen.sh`), never from the code under test.

use base64::Engine as _;
use fake_azure::{CertificateSeed, KeySeed, ObjectKind, SecretSeed};

use crate::support::driver::Pod;
use crate::support::harness::{Harness, ISSUER};
use crate::support::harness::{failure, files, ids};
use crate::support::objects::*;

const VAULT: &str = "kv-blogpost-jx01";

// === keys and certificates ===

/// SPKI `PUBLIC KEY` PEM for RSA/RSA-HSM/EC/EC-HSM on
/// P-256/384/521, byte-identical to `openssl pkey -pubout`; other key types
/// fail with upstream's text.
#[tokio::test]
async fn key_objects_are_spki_public_key_pem() {
    let harness = Harness::start().await;
    let mut versions = Vec::new();
    for (name, fixture, hsm) in [
        ("rsa", "rsa2048", false),
        ("rsa-hsm", "rsa3072-e3", true),
        ("ec256", "ec-p256", false),
        ("ec384-hsm", "ec-p384", true),
        ("ec521", "ec-p521", false),
    ] {
        let mut seed = jwk(fixture);
        seed.name = name.into();
        if hsm {
            seed.kty.push_str("-HSM");
        }
        let version = harness.fake.add_key_version(VAULT, seed).unwrap();
        versions.push((name, fixture, version));
    }
    let entries: Vec<String> = versions
        .iter()
        .map(|(name, _, _)| format!("objectName: {name}\nobjectType: key"))
        .collect();
    let entries: Vec<&str> = entries.iter().map(String::as_str).collect();
    let response = mount(&harness, &entries).await.expect("mount succeeds");
    let want_files: Vec<(String, String)> = versions
        .iter()
        .map(|(name, fixture, _)| ((*name).to_owned(), text(&format!("jwk/{fixture}.pub.pem"))))
        .collect();
    assert_eq!(files(&response), want_files);
    let want_ids: Vec<(String, String)> = versions
        .iter()
        .map(|(name, _, v)| (format!("key/{name}"), v.clone()))
        .collect();
    assert_eq!(ids(&response), want_ids);

    harness
        .fake
        .add_key_version(
            VAULT,
            KeySeed {
                name: "sym".into(),
                kty: "oct-HSM".into(),
                enabled: true,
                ..KeySeed::default()
            },
        )
        .unwrap();
    let status = mount(&harness, &["objectName: sym\nobjectType: key"])
        .await
        .unwrap_err();
    assert_eq!(
        failure(&status),
        "failed to get objectType:key, objectName:sym, objectVersion:: failed to get key. key type 'oct-HSM' currently not supported"
    );
    let mut k256 = jwk("ec-p256");
    k256.name = "secp".into();
    k256.crv = Some("P-256K".into());
    harness.fake.add_key_version(VAULT, k256).unwrap();
    let status = mount(&harness, &["objectName: secp\nobjectType: key"])
        .await
        .unwrap_err();
    assert!(
        failure(&status).ends_with(": curve P-256K is not supported"),
        "{}",
        status.message()
    );
}

/// The `cer` field as one CERTIFICATE PEM (leaf only).
#[tokio::test]
async fn cert_objects_are_the_leaf_pem() {
    let harness = Harness::start().await;
    let mut seed = pfx_certificate("web", "ec-legacy.pfx", "ec/leaf.pem");
    seed.key = Some(jwk("ec-p256"));
    let version = harness.fake.add_certificate_version(VAULT, seed).unwrap();
    let response = mount(
        &harness,
        &["objectName: web\nobjectType: cert\nobjectAlias: tls/web.crt"],
    )
    .await
    .expect("mount succeeds");
    assert_eq!(
        files(&response),
        vec![("tls/web.crt".into(), text("ec/leaf.pem"))]
    );
    assert_eq!(ids(&response), vec![("cert/web".into(), version)]);
}

/// Issue 12: `objectFormat` spelled other than lower-case `pfx` on a cert or
/// key passes and is ignored, as upstream: the file is PEM, one warning
/// names the object.
#[tokio::test]
async fn upper_case_pfx_on_a_cert_or_key_is_ignored_with_a_warning() {
    let harness = Harness::start().await;
    let mut seed = pfx_certificate("web", "ec-legacy.pfx", "ec/leaf.pem");
    seed.key = Some(jwk("ec-p256"));
    harness.fake.add_certificate_version(VAULT, seed).unwrap();
    let response = mount(
        &harness,
        &[
            "objectName: web\nobjectType: cert\nobjectFormat: PFX",
            "objectName: web\nobjectType: key\nobjectFormat: Pfx\nobjectAlias: web.key",
        ],
    )
    .await
    .expect("mount succeeds");
    assert_eq!(
        files(&response),
        vec![
            ("web".into(), text("ec/leaf.pem")),
            ("web.key".into(), text("jwk/ec-p256.pub.pem")),
        ]
    );
    let logs = harness.logs();
    let warnings: Vec<&str> = logs
        .lines()
        .filter(|l| l.contains("objectFormat PFX is ignored"))
        .collect();
    assert_eq!(warnings.len(), 2, "{logs}");
    assert!(warnings[0].contains("objectName:web"), "{logs}");
}

// === certificate-backed secrets ===

/// PKCS#12 (here the Key Vault form: RC2-40 certificates,
/// 3DES key, SHA-1 MAC, null password) → the key as PKCS#8 first, then the
/// certificates leaf → intermediate → root; `PFX` passthrough (any case)
/// with `objectEncoding: base64` yields the binary PFX; PEM as stored.
#[tokio::test]
async fn pkcs12_secrets_are_the_key_then_the_chain_leaf_first() {
    let harness = Harness::start().await;
    let kv = harness
        .fake
        .add_certificate_version(
            VAULT,
            pfx_certificate("kv-cert", "rsa-kv.pfx", "rsa/leaf.pem"),
        )
        .unwrap();
    harness
        .fake
        .add_certificate_version(
            VAULT,
            pfx_certificate("ec-cert", "ec-legacy.pfx", "ec/leaf.pem"),
        )
        .unwrap();
    harness
        .fake
        .add_certificate_version(
            VAULT,
            pfx_certificate("noaki", "noaki-3des.pfx", "noaki/leaf.pem"),
        )
        .unwrap();
    let stored_pem = text("rsa/key.pem") + &text("rsa/leaf.pem") + &text("rsa/root.pem");
    harness
        .fake
        .add_certificate_version(
            VAULT,
            CertificateSeed {
                name: "pem-cert".into(),
                cer: cer("rsa/leaf.pem"),
                secret_value: stored_pem.clone(),
                content_type: "application/x-pem-file".into(),
                key: None,
                enabled: true,
            },
        )
        .unwrap();
    let response = mount(
        &harness,
        &[
            "objectName: kv-cert\nobjectType: secret",
            "objectName: ec-cert\nobjectType: secret",
            "objectName: noaki\nobjectType: secret",
            "objectName: kv-cert\nobjectType: secret\nobjectFormat: PFX\nobjectEncoding: base64\nobjectAlias: kv.pfx",
            "objectName: kv-cert\nobjectType: secret\nobjectFormat: pfx\nobjectAlias: kv.pfx.b64",
            "objectName: pem-cert\nobjectType: secret",
        ],
    )
    .await
    .expect("mount succeeds");
    let got = files(&response);
    assert_eq!(got[0], ("kv-cert".into(), ordered("rsa")));
    assert_eq!(got[1], ("ec-cert".into(), ordered("ec")));
    assert_eq!(
        got[2],
        ("noaki".into(), ordered("noaki")),
        "#1739: ordered without AKI/SKI"
    );
    assert_eq!(response.files[3].path, "kv.pfx");
    assert_eq!(response.files[3].contents, fixture("rsa-kv.pfx"));
    assert_eq!(
        got[4],
        ("kv.pfx.b64".into(), B64.encode(fixture("rsa-kv.pfx")))
    );
    assert_eq!(
        got[5],
        ("pem-cert".into(), stored_pem),
        "PEM as stored, not reordered"
    );
    assert_eq!(ids(&response)[0], ("secret/kv-cert".into(), kv));
}

/// Checklist 19: `--construct-pem-chain=false` keeps the PFX's order.
#[tokio::test]
async fn construct_pem_chain_false_keeps_the_pfx_order() {
    let harness = Harness::start_with(
        fake_azure::Seed::blog_walkthrough(ISSUER),
        &["--construct-pem-chain=false"],
    )
    .await;
    harness
        .fake
        .add_certificate_version(VAULT, pfx_certificate("c", "rsa-aes.pfx", "rsa/leaf.pem"))
        .unwrap();
    let response = mount(&harness, &["objectName: c\nobjectType: secret"])
        .await
        .unwrap();
    let original: String = ["key", "leaf", "root", "int"]
        .iter()
        .map(|f| text(&format!("rsa/{f}.pem")))
        .collect();
    assert_eq!(files(&response), vec![("c".into(), original)]);
}

/// Any other content type, or none, is upstream's error (a
/// missing content type panicked upstream).
#[tokio::test]
async fn an_unknown_content_type_is_an_error() {
    let harness = Harness::start().await;
    for (name, content_type) in [("json-cert", Some("application/json")), ("bare-cert", None)] {
        let mut seed = SecretSeed::new(name, "x");
        seed.content_type = content_type.map(str::to_owned);
        seed.kid = true;
        harness.fake.add_secret_version(VAULT, seed).unwrap();
        let entry = format!("objectName: {name}\nobjectType: secret");
        let status = mount(&harness, &[&entry]).await.unwrap_err();
        assert_eq!(
            failure(&status),
            format!(
                "failed to get objectType:secret, objectName:{name}, objectVersion:: failed to get certificate. unknown content type '{}'",
                content_type.unwrap_or("")
            )
        );
    }
}

/// Checklist 20: `<name>.crt` and `<name>.key` before `<name>`, same
/// version, each with its own object id (upstream repeats one id).
#[tokio::test]
async fn separate_cert_and_key_files_come_before_the_bundle() {
    let harness = Harness::start_with(
        fake_azure::Seed::blog_walkthrough(ISSUER),
        &["--write-cert-and-key-in-separate-files=true"],
    )
    .await;
    let version = harness
        .fake
        .add_certificate_version(
            VAULT,
            pfx_certificate("tls", "ec-legacy.pfx", "ec/leaf.pem"),
        )
        .unwrap();
    let response = mount(
        &harness,
        &[
            "objectName: tls\nobjectType: secret\nobjectAlias: certs/tls\nfilePermission: \"0640\"",
            "objectName: MySecretPassword\nobjectType: secret",
        ],
    )
    .await
    .expect("mount succeeds");
    let certs: String = ["leaf", "int", "root"]
        .iter()
        .map(|f| text(&format!("ec/{f}.pem")))
        .collect();
    assert_eq!(
        files(&response),
        vec![
            ("certs/tls.crt".into(), certs),
            ("certs/tls.key".into(), text("ec/key.pem")),
            ("certs/tls".into(), ordered("ec")),
            (
                "MySecretPassword".into(),
                fake_azure::BLOG_SECRET_VALUE.into()
            ),
        ]
    );
    let got = ids(&response);
    assert_eq!(
        got[..3],
        [
            ("secret/tls.crt".to_owned(), version.clone()),
            ("secret/tls.key".to_owned(), version.clone()),
            ("secret/tls".to_owned(), version),
        ]
    );
    let unique: std::collections::BTreeSet<_> = got.iter().map(|(id, _)| id).collect();
    assert_eq!(unique.len(), got.len(), "object ids are unique");
    assert!(response.files[..3].iter().all(|f| f.mode == 0o640));

    // Another object aliased onto a split file: both are returned, as
    // upstream (the driver keeps the later one), with the duplicate warning.
    let response = mount(
        &harness,
        &[
            "objectName: tls\nobjectType: secret",
            "objectName: MySecretPassword\nobjectType: secret\nobjectAlias: tls.key",
        ],
    )
    .await
    .expect("mounts as with upstream");
    let paths: Vec<&str> = response.files.iter().map(|f| f.path.as_str()).collect();
    assert_eq!(paths, ["tls.crt", "tls.key", "tls", "tls.key"]);
    assert!(
        harness.logs().contains("two objects write the same file"),
        "{}",
        harness.logs()
    );
}

// === plain secrets ===

/// Plain secrets as stored, then `objectEncoding`; base64
/// wrapped in lines decodes as in Go; a plain secret's content type and
/// `objectFormat` are ignored.
#[tokio::test]
async fn plain_secrets_are_decoded_per_object_encoding() {
    let harness = Harness::start().await;
    harness
        .fake
        .set_secret(
            VAULT,
            "wrapped",
            "aGVsbG8g\nd29ybGQ=\n",
            Some("application/x-pkcs12"),
        )
        .unwrap();
    let response = mount(
        &harness,
        &[
            "objectName: wrapped\nobjectType: secret\nobjectEncoding: Base64",
            "objectName: wrapped\nobjectType: secret\nobjectFormat: pfx\nobjectAlias: raw",
        ],
    )
    .await
    .unwrap();
    assert_eq!(response.files[0].contents, b"hello world");
    assert_eq!(response.files[1].contents, b"aGVsbG8g\nd29ybGQ=\n");
}

#[tokio::test]
async fn versions_aliases_encodings_and_modes() {
    let harness = Harness::start().await;
    let old = harness
        .fake
        .set_secret(VAULT, "multi", "first", None)
        .unwrap();
    let new = harness
        .fake
        .set_secret(VAULT, "multi", "second", None)
        .unwrap();
    harness
        .fake
        .set_secret(VAULT, "b64", "aGVsbG8gd29ybGQ=", None)
        .unwrap();
    harness
        .fake
        .set_secret(VAULT, "hexed", "68657821", None)
        .unwrap();
    let objects = format!(
        "array:\n\
         \x20 - |\n    objectName: multi\n    objectType: secret\n    objectVersion: {old}\n    objectAlias: nested/dir/old\n\
         \x20 - |\n    objectName: multi\n    objectType: secret\n    filePermission: \"0755\"\n\
         \x20 - |\n    objectName: b64\n    objectType: secret\n    objectEncoding: base64\n\
         \x20 - |\n    objectName: hexed\n    objectType: secret\n    objectEncoding: HEX\n"
    );
    let response = harness
        .mount_spc(&Harness::blog_spc_with_objects(&objects), &Pod::blog())
        .await
        .expect("mount succeeds");
    let files: Vec<_> = response
        .files
        .iter()
        .map(|f| (f.path.as_str(), f.mode, f.contents.as_slice()))
        .collect();
    assert_eq!(
        files,
        vec![
            ("nested/dir/old", 0o644, b"first".as_slice()),
            ("multi", 0o755, b"second".as_slice()),
            ("b64", 0o644, b"hello world".as_slice()),
            ("hexed", 0o644, b"hex!".as_slice()),
        ]
    );
    let versions: Vec<_> = response
        .object_version
        .iter()
        .map(|v| (v.id.as_str(), v.version.as_str()))
        .collect();
    assert_eq!(versions[0], ("secret/multi", old.as_str()));
    assert_eq!(versions[1], ("secret/multi", new.as_str()));
}

// === version history ===

/// List (all pages), skip disabled, newest first, N files
/// `<alias>/<i>` with ids `<type>/<name>/<i>`, each version fetched.
#[tokio::test]
async fn version_history_lists_enabled_versions_newest_first() {
    let harness = Harness::start().await;
    harness.fake.set_list_page_size(2);
    let mut versions = Vec::new();
    for i in 0..6 {
        versions.push(
            harness
                .fake
                .set_secret(VAULT, "rotating", &format!("value-{i}"), None)
                .unwrap(),
        );
    }
    // The newest but one is disabled: it is skipped.
    harness
        .fake
        .set_version_enabled(VAULT, ObjectKind::Secrets, "rotating", &versions[4], false)
        .unwrap();
    harness.fake.reset_counters();
    let response = mount(
        &harness,
        &["objectName: rotating\nobjectType: secret\nobjectAlias: hist\nobjectVersionHistory: 3"],
    )
    .await
    .expect("mount succeeds");
    assert_eq!(
        files(&response),
        vec![
            ("hist/0".into(), "value-5".into()),
            ("hist/1".into(), "value-3".into()),
            ("hist/2".into(), "value-2".into()),
        ],
        "exactly N files (upstream writes N+1)"
    );
    assert_eq!(
        ids(&response),
        vec![
            ("secret/rotating/0".into(), versions[5].clone()),
            ("secret/rotating/1".into(), versions[3].clone()),
            ("secret/rotating/2".into(), versions[2].clone()),
        ]
    );
    let counters = harness.fake.counters();
    assert_eq!(
        counters.keyvault_requests_with(VAULT, fake_azure::op::LIST_SECRET_VERSIONS, 200),
        3,
        "7 versions in pages of 2 (the first secret was seeded): {counters:?}"
    );
    assert_eq!(
        counters.keyvault_requests_with(VAULT, fake_azure::op::GET_SECRET, 200),
        3
    );

    // Starting at a named version; `latest` means the newest.
    let entry = format!(
        "objectName: rotating\nobjectType: secret\nobjectVersion: {}\nobjectVersionHistory: 2",
        versions[2]
    );
    let response = mount(&harness, &[&entry]).await.unwrap();
    assert_eq!(
        files(&response),
        vec![
            ("rotating/0".into(), "value-2".into()),
            ("rotating/1".into(), "value-1".into())
        ]
    );
    let response = mount(
        &harness,
        &["objectName: rotating\nobjectType: secret\nobjectVersion: latest\nobjectVersionHistory: 2"],
    )
    .await
    .unwrap();
    assert_eq!(response.files[0].contents, b"value-5");
}

/// A named version that is not listed produces no files for
/// that object, as upstream.
#[tokio::test]
async fn version_history_from_an_unknown_version_is_empty() {
    let harness = Harness::start().await;
    harness
        .fake
        .set_secret(VAULT, "rotating", "a", None)
        .unwrap();
    let response = mount(
        &harness,
        &[
            "objectName: rotating\nobjectType: secret\nobjectVersion: 0123456789abcdef0123456789abcdef\nobjectVersionHistory: 2",
            "objectName: MySecretPassword\nobjectType: secret",
        ],
    )
    .await
    .expect("mount succeeds");
    assert_eq!(files(&response).len(), 1);
    assert_eq!(response.files[0].path, "MySecretPassword");
}

/// Keys and certificates have version history too (and a
/// certificate's history of its backing secret renders each PFX).
#[tokio::test]
async fn version_history_of_keys_and_certificates() {
    let harness = Harness::start().await;
    let mut key = jwk("ec-p256");
    key.name = "k".into();
    let k1 = harness.fake.add_key_version(VAULT, key.clone()).unwrap();
    let mut rsa = jwk("rsa2048");
    rsa.name = "k".into();
    let k2 = harness.fake.add_key_version(VAULT, rsa).unwrap();
    let c1 = harness
        .fake
        .add_certificate_version(VAULT, pfx_certificate("c", "ec-legacy.pfx", "ec/leaf.pem"))
        .unwrap();
    let c2 = harness
        .fake
        .add_certificate_version(VAULT, pfx_certificate("c", "rsa-aes.pfx", "rsa/leaf.pem"))
        .unwrap();
    let response = mount(
        &harness,
        &[
            "objectName: k\nobjectType: key\nobjectVersionHistory: 5",
            "objectName: c\nobjectType: cert\nobjectVersionHistory: 2",
            "objectName: c\nobjectType: secret\nobjectVersionHistory: 2\nobjectAlias: bundle",
        ],
    )
    .await
    .expect("mount succeeds");
    assert_eq!(
        files(&response),
        vec![
            ("k/0".into(), text("jwk/rsa2048.pub.pem")),
            ("k/1".into(), text("jwk/ec-p256.pub.pem")),
            ("c/0".into(), text("rsa/leaf.pem")),
            ("c/1".into(), text("ec/leaf.pem")),
            ("bundle/0".into(), ordered("rsa")),
            ("bundle/1".into(), ordered("ec")),
        ]
    );
    assert_eq!(
        ids(&response),
        vec![
            ("key/k/0".into(), k2),
            ("key/k/1".into(), k1),
            ("cert/c/0".into(), c2.clone()),
            ("cert/c/1".into(), c1.clone()),
            ("secret/c/0".into(), c2),
            ("secret/c/1".into(), c1),
        ]
    );
}
