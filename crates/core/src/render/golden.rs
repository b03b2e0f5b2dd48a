//! Golden tests: PFX, JWK and certificate fixtures made by
//! `tests/data/pki/gen.sh` with OpenSSL, compared byte for byte with the
//! PEM files OpenSSL wrote for the same keys and certificates.

use base64::Engine as _;
use secrecy::SecretString;

use super::*;
use crate::object::{FileMode, KeyVaultObject, ObjectEncoding, ObjectFormat, ObjectType};

fn fixture(path: &str) -> Vec<u8> {
    crate::render::fixtures::bytes(path).to_vec()
}

fn text(path: &str) -> String {
    crate::render::fixtures::text(path).to_owned()
}

/// What upstream writes for a chain directory: the key, then leaf,
/// intermediate, root.
fn ordered(chain: &str) -> String {
    ["key", "leaf", "int", "root"]
        .iter()
        .map(|f| text(&format!("{chain}/{f}.pem")))
        .collect()
}

/// The PFX's own order: key, then leaf, root, intermediate.
fn original(chain: &str) -> String {
    ["key", "leaf", "root", "int"]
        .iter()
        .map(|f| text(&format!("{chain}/{f}.pem")))
        .collect()
}

fn object(name: &str) -> KeyVaultObject {
    KeyVaultObject {
        name: name.into(),
        alias: String::new(),
        version: String::new(),
        version_history: 0,
        object_type: ObjectType::Secret,
        format: ObjectFormat::Pem,
        encoding: ObjectEncoding::Utf8,
        file_permission: None,
        raw_type: "secret".into(),
        extensions: Default::default(),
    }
}

fn pfx_secret(pfx: &str) -> Fetched {
    Fetched::Secret {
        value: SecretString::from(base64::engine::general_purpose::STANDARD.encode(fixture(pfx))),
        version: "0123abcd".into(),
        content_type: Some("application/x-pkcs12".into()),
        certificate_backed: true,
    }
}

fn mode() -> FileMode {
    FileMode::from_octal_str("0644").unwrap()
}

fn render_with(object: &KeyVaultObject, fetched: Fetched, options: RenderOptions) -> Output {
    render(object, Slot::Single, fetched, mode(), options).unwrap()
}

fn contents(output: &Output) -> Vec<(String, String)> {
    output
        .files
        .iter()
        .map(|r| {
            (
                r.file.path.clone(),
                String::from_utf8(r.file.contents.to_vec()).unwrap(),
            )
        })
        .collect()
}

/// Checklist 19: PKCS#12 default → keys first as PKCS#8 `PRIVATE KEY`, then
/// the certificates leaf → root, in every encryption (legacy RC2-40/3DES
/// with SHA-1 MAC, 3DES, PBES2/AES-256 with SHA-256 MAC, Key Vault's null
/// password), RSA and EC.
#[test]
fn pkcs12_keys_first_then_chain() {
    for chain in ["rsa", "ec"] {
        for kind in ["legacy", "3des", "aes"] {
            let pfx = format!("{chain}-{kind}.pfx");
            let output = render_with(&object("c"), pfx_secret(&pfx), RenderOptions::default());
            assert_eq!(
                contents(&output),
                vec![("c".into(), ordered(chain))],
                "{pfx}"
            );
            assert!(output.warnings.is_empty(), "{pfx}");
        }
    }
    let output = render_with(
        &object("c"),
        pfx_secret("rsa-kv.pfx"),
        RenderOptions::default(),
    );
    assert_eq!(
        contents(&output)[0].1,
        ordered("rsa"),
        "Key Vault's null password"
    );
    let output = render_with(
        &object("c"),
        pfx_secret("p521-aes.pfx"),
        RenderOptions::default(),
    );
    assert_eq!(
        contents(&output)[0].1,
        text("p521/key.pem") + &text("p521/leaf.pem")
    );
}

/// Checklist 19: with `--construct-pem-chain=false` the certificates keep
/// the PFX order.
#[test]
fn pkcs12_without_chain_construction_keeps_file_order() {
    let options = RenderOptions {
        construct_pem_chain: false,
        ..RenderOptions::default()
    };
    for pfx in ["rsa-legacy.pfx", "ec-aes.pfx", "noaki-3des.pfx"] {
        let chain = pfx.split('-').next().unwrap();
        let output = render_with(&object("c"), pfx_secret(pfx), options);
        assert_eq!(contents(&output)[0].1, original(chain), "{pfx}");
    }
}

/// Upstream #1739 (and #879) fixed: a chain without AKI/SKI is ordered by issuer name
/// and signature.
#[test]
fn chain_without_key_ids_is_ordered_by_names() {
    for kind in ["legacy", "3des", "aes"] {
        let output = render_with(
            &object("c"),
            pfx_secret(&format!("noaki-{kind}.pfx")),
            RenderOptions::default(),
        );
        assert_eq!(contents(&output)[0].1, ordered("noaki"), "{kind}");
        assert!(output.warnings.is_empty());
    }
}

/// Checklist 19: an incomplete chain keeps the original order, with a
/// warning.
#[test]
fn incomplete_chain_keeps_order_and_warns() {
    let output = render_with(
        &object("c"),
        pfx_secret("partial-aes.pfx"),
        RenderOptions::default(),
    );
    let want = text("rsa/key.pem") + &text("rsa/leaf.pem") + &text("rsa/root.pem");
    assert_eq!(contents(&output)[0].1, want);
    assert_eq!(output.warnings.len(), 1);
    assert!(
        output.warnings[0].contains("not complete"),
        "{:?}",
        output.warnings
    );
}

/// Checklist 19: `objectFormat: pfx` (any case, validated in `object`)
/// passes the base64 text through; with `objectEncoding: base64` that is
/// the binary PFX.
#[test]
fn pfx_passthrough() {
    let mut o = object("c");
    o.format = ObjectFormat::Pfx;
    let stored = base64::engine::general_purpose::STANDARD.encode(fixture("rsa-aes.pfx"));
    let output = render_with(&o, pfx_secret("rsa-aes.pfx"), RenderOptions::default());
    assert_eq!(contents(&output)[0].1, stored);
    o.encoding = ObjectEncoding::Base64;
    let output = render_with(&o, pfx_secret("rsa-aes.pfx"), RenderOptions::default());
    assert_eq!(
        output.files[0].file.contents.as_slice(),
        fixture("rsa-aes.pfx")
    );
}

/// Checklist 19: `application/x-pem-file` is written as stored (no
/// reordering), and an unknown or missing content type is upstream's error.
#[test]
fn pem_content_type_as_stored_and_unknown_types() {
    let stored = original("rsa").replace('\n', "\r\n");
    let fetched = Fetched::Secret {
        value: SecretString::from(stored.clone()),
        version: "v".into(),
        content_type: Some("application/x-pem-file".into()),
        certificate_backed: true,
    };
    let output = render_with(&object("c"), fetched, RenderOptions::default());
    assert_eq!(contents(&output)[0].1, stored);
    for content_type in [Some("application/json"), Some("Application/X-Pkcs12"), None] {
        let fetched = Fetched::Secret {
            value: SecretString::from("x".to_owned()),
            version: "v".into(),
            content_type: content_type.map(str::to_owned),
            certificate_backed: true,
        };
        let err = render(
            &object("c"),
            Slot::Single,
            fetched,
            mode(),
            RenderOptions::default(),
        )
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "failed to get certificate. unknown content type '{}'",
                content_type.unwrap_or("")
            )
        );
    }
}

/// Checklist 20: `.crt` and `.key` before the main file, each with its own
/// object id (upstream repeats one id); same version, same mode.
#[test]
fn separate_cert_and_key_files() {
    let options = RenderOptions {
        write_cert_and_key_in_separate_files: true,
        ..RenderOptions::default()
    };
    let mut o = object("tls");
    o.alias = "dir/server".into();
    o.file_permission = FileMode::from_octal_str("0600");
    let output = render_with(&o, pfx_secret("ec-legacy.pfx"), options);
    let certs: String = ["leaf", "int", "root"]
        .iter()
        .map(|f| text(&format!("ec/{f}.pem")))
        .collect();
    assert_eq!(
        contents(&output),
        vec![
            ("dir/server.crt".into(), certs),
            ("dir/server.key".into(), text("ec/key.pem")),
            ("dir/server".into(), ordered("ec")),
        ]
    );
    let ids: Vec<(&str, &str)> = output
        .files
        .iter()
        .map(|r| (r.version.id.as_str(), r.version.version.as_str()))
        .collect();
    assert_eq!(
        ids,
        vec![
            ("secret/tls.crt", "0123abcd"),
            ("secret/tls.key", "0123abcd"),
            ("secret/tls", "0123abcd"),
        ]
    );
    assert!(output.files.iter().all(|r| r.file.mode.bits() == 0o600));

    // History entries: `<name>/<i>.crt`, ids `<type>/<name>/<i>.crt`.
    let output = render(
        &object("tls"),
        Slot::History(2),
        pfx_secret("rsa-aes.pfx"),
        mode(),
        options,
    )
    .unwrap();
    let paths: Vec<(&str, &str)> = output
        .files
        .iter()
        .map(|r| (r.file.path.as_str(), r.version.id.as_str()))
        .collect();
    assert_eq!(
        paths,
        vec![
            ("tls/2.crt", "secret/tls/2.crt"),
            ("tls/2.key", "secret/tls/2.key"),
            ("tls/2", "secret/tls/2"),
        ]
    );

    // PFX format: the split finds no PEM blocks, so both are empty.
    let mut pfx = object("p");
    pfx.format = ObjectFormat::Pfx;
    let output = render_with(&pfx, pfx_secret("rsa-aes.pfx"), options);
    assert_eq!(output.files.len(), 3);
    assert!(output.files[0].file.contents.is_empty() && output.files[1].file.contents.is_empty());

    // Only certificate-backed secrets are split.
    let plain = Fetched::Secret {
        value: SecretString::from("v".to_owned()),
        version: "1".into(),
        content_type: None,
        certificate_backed: false,
    };
    assert_eq!(render_with(&object("s"), plain, options).files.len(), 1);
}

/// Checklist 21 (end to end through `render`): a key object is its public
/// key PEM, with id `key/<name>`.
#[test]
fn key_objects() {
    let json: serde_json::Value = serde_json::from_slice(&fixture("jwk/ec-p384.json")).unwrap();
    let get = |k: &str| json[k].as_str().map(str::to_owned);
    let mut o = object("k");
    o.object_type = ObjectType::Key;
    o.raw_type = "key".into();
    let fetched = Fetched::Key {
        version: "kv1".into(),
        jwk: Jwk {
            kty: Some("EC-HSM".into()),
            crv: get("crv"),
            x: get("x"),
            y: get("y"),
            ..Jwk::default()
        },
    };
    let output = render_with(&o, fetched, RenderOptions::default());
    assert_eq!(
        contents(&output),
        vec![("k".into(), text("jwk/ec-p384.pub.pem"))]
    );
    assert_eq!(output.files[0].version.id, "key/k");
}

/// Checklist 22: a cert object is the `cer` field as one CERTIFICATE PEM
/// (leaf only), with id `cert/<name>`.
#[test]
fn cert_objects() {
    let leaf = text("rsa/leaf.pem");
    let der = &crate::render::pem::decode_all(leaf.as_bytes())[0].bytes;
    let mut o = object("c");
    o.object_type = ObjectType::Cert;
    o.raw_type = "cert".into();
    let fetched = Fetched::Certificate {
        version: "cv1".into(),
        cer: base64::engine::general_purpose::STANDARD.encode(der),
    };
    let output = render_with(&o, fetched, RenderOptions::default());
    assert_eq!(contents(&output), vec![("c".into(), leaf)]);
    assert_eq!(output.files[0].version.id, "cert/c");
    let bad = Fetched::Certificate {
        version: "cv1".into(),
        cer: "MII$".into(),
    };
    assert_eq!(
        render(&o, Slot::Single, bad, mode(), RenderOptions::default()).unwrap_err(),
        RenderError::CertificateBase64 { offset: 3 }
    );
}

/// Checklist 18: base64 values wrapped in lines (CR/LF are skipped, as Go
/// does) decode; the error offset counts the original input.
#[test]
fn base64_skips_line_breaks() {
    let mut o = object("b");
    o.encoding = ObjectEncoding::Base64;
    let wrapped = Fetched::Secret {
        value: SecretString::from("aGVs\r\nbG8g\nd29y\nbGQ=\n".to_owned()),
        version: "1".into(),
        content_type: None,
        certificate_backed: false,
    };
    let output = render_with(&o, wrapped, RenderOptions::default());
    assert_eq!(output.files[0].file.contents.as_slice(), b"hello world");
    let bad = Fetched::Secret {
        value: SecretString::from("aGVs\nbG8$".to_owned()),
        version: "1".into(),
        content_type: None,
        certificate_backed: false,
    };
    assert_eq!(
        render(&o, Slot::Single, bad, mode(), RenderOptions::default()).unwrap_err(),
        RenderError::Base64 { offset: 8 }
    );
}

/// Version-history files are `<alias-or-name>/<i>` with ids
/// `<type>/<name>/<i>` (checklist 16, 17).
#[test]
fn history_paths_and_ids() {
    let mut o = object("name");
    o.alias = "alias".into();
    let fetched = Fetched::Secret {
        value: SecretString::from("v".to_owned()),
        version: "abc".into(),
        content_type: None,
        certificate_backed: false,
    };
    let output = render(
        &o,
        Slot::History(3),
        fetched,
        mode(),
        RenderOptions::default(),
    )
    .unwrap();
    assert_eq!(output.files[0].file.path, "alias/3");
    assert_eq!(
        output.files[0].version,
        ObjectVersion {
            id: "secret/name/3".into(),
            version: "abc".into()
        }
    );
}

#[test]
fn generated_paths_still_obey_the_drivers_rules() {
    let mut o = object("n");
    o.alias = "a".repeat(253);
    let options = RenderOptions {
        write_cert_and_key_in_separate_files: true,
        ..RenderOptions::default()
    };
    let err = render(&o, Slot::Single, pfx_secret("rsa-aes.pfx"), mode(), options).unwrap_err();
    assert!(
        matches!(&err, RenderError::FileName { path, .. } if path.ends_with(".crt")),
        "{err}"
    );
}

/// Hostile PFX content: errors, never panics, never key bytes in messages.
#[test]
fn hostile_pfx_values_are_errors() {
    let pfx = fixture("rsa-legacy.pfx");
    for cut in [10, pfx.len() / 3, pfx.len() - 1] {
        let fetched = Fetched::Secret {
            value: SecretString::from(
                base64::engine::general_purpose::STANDARD.encode(&pfx[..cut]),
            ),
            version: "v".into(),
            content_type: Some("application/x-pkcs12".into()),
            certificate_backed: true,
        };
        let err = render(
            &object("c"),
            Slot::Single,
            fetched,
            mode(),
            RenderOptions::default(),
        )
        .unwrap_err();
        assert!(err.to_string().starts_with("pkcs12: "), "{err}");
    }
    assert!(
        std::panic::catch_unwind(|| guarded("test", || panic!("boom"))).is_ok(),
        "guarded turns a panic into an error"
    );
    assert_eq!(
        guarded("X.509", || -> () { panic!("boom") })
            .unwrap_err()
            .to_string(),
        "reading the certificate failed unexpectedly (X.509); the object was not mounted"
    );
}
