use secrecy::SecretString;

use super::*;
use crate::object::{FileMode, KeyVaultObject, ObjectEncoding, ObjectFormat, ObjectType};

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

fn secret(value: &str) -> Fetched {
    Fetched::Secret {
        value: SecretString::from(value.to_owned()),
        version: "v1".into(),
        content_type: None,
        certificate_backed: false,
    }
}

fn cert_secret(value: &str, content_type: Option<&str>) -> Fetched {
    Fetched::Secret {
        value: SecretString::from(value.to_owned()),
        version: "v2".into(),
        content_type: content_type.map(str::to_owned),
        certificate_backed: true,
    }
}

fn default_mode() -> FileMode {
    FileMode::from_octal_str("644").unwrap()
}

fn one(object: &KeyVaultObject, fetched: Fetched) -> Result<Rendered, RenderError> {
    let mut output = render(
        object,
        Slot::Single,
        fetched,
        default_mode(),
        RenderOptions::default(),
    )?;
    assert_eq!(output.files.len(), 1);
    Ok(output.files.remove(0))
}

#[test]
fn plain_secret_uses_name_default_mode_and_uid() {
    let rendered = one(&object("MySecretPassword"), secret("p@ss")).unwrap();
    assert_eq!(rendered.file.path, "MySecretPassword");
    assert_eq!(rendered.file.mode, default_mode());
    assert_eq!(rendered.file.contents.as_slice(), b"p@ss");
    assert_eq!(
        rendered.version,
        ObjectVersion {
            id: "secret/MySecretPassword".into(),
            version: "v1".into()
        }
    );
}

#[test]
fn alias_and_file_permission_win() {
    let mut o = object("name");
    o.alias = "dir/alias".into();
    o.file_permission = FileMode::from_octal_str("0400");
    let rendered = one(&o, secret("x")).unwrap();
    assert_eq!(rendered.file.path, "dir/alias");
    assert_eq!(rendered.file.mode.bits(), 0o400);
    assert_eq!(
        rendered.version.id, "secret/name",
        "the id names the object, not the alias"
    );
}

#[test]
fn plain_secret_ignores_content_type_and_format() {
    let mut o = object("s");
    o.format = ObjectFormat::Pfx;
    let fetched = Fetched::Secret {
        value: SecretString::from("raw".to_owned()),
        version: "v".into(),
        content_type: Some("application/x-pkcs12".into()),
        certificate_backed: false,
    };
    assert_eq!(one(&o, fetched).unwrap().file.contents.as_slice(), b"raw");
}

#[test]
fn encodings() {
    let mut o = object("s");
    o.encoding = ObjectEncoding::Base64;
    assert_eq!(
        one(&o, secret("aGk=")).unwrap().file.contents.as_slice(),
        b"hi"
    );
    o.encoding = ObjectEncoding::Hex;
    assert_eq!(
        one(&o, secret("6869")).unwrap().file.contents.as_slice(),
        b"hi"
    );
}

#[test]
fn bad_encodings_name_the_offset_not_the_value() {
    let mut o = object("s");
    o.encoding = ObjectEncoding::Base64;
    assert_eq!(
        one(&o, secret("ab$d")).unwrap_err(),
        RenderError::Base64 { offset: 2 }
    );
    assert_eq!(
        one(&o, secret("ab$d")).unwrap_err().to_string(),
        "illegal base64 data at input byte 2"
    );
    assert!(matches!(
        one(&o, secret("aGk")).unwrap_err(),
        RenderError::Base64 { .. }
    ));
    o.encoding = ObjectEncoding::Hex;
    let err = one(&o, secret("6Z")).unwrap_err();
    assert_eq!(err, RenderError::Hex { offset: 1 });
    assert!(!err.to_string().contains('Z'));
    assert_eq!(
        one(&o, secret("686")).unwrap_err(),
        RenderError::HexOddLength
    );
    // Issue 18 (found by the differential test): like Go's hex.Decode, an
    // invalid character is reported before an odd length, wherever it is.
    for (value, want) in [
        ("-----BEGIN CERT", RenderError::Hex { offset: 0 }),
        ("68656Z6", RenderError::Hex { offset: 5 }),
        ("68g", RenderError::Hex { offset: 2 }),
        ("68656", RenderError::HexOddLength),
    ] {
        assert_eq!(one(&o, secret(value)).unwrap_err(), want, "{value}");
    }
}

#[test]
fn certificate_backed_secrets_by_content_type() {
    let pem = "-----BEGIN PRIVATE KEY-----\nAA==\n-----END PRIVATE KEY-----\n";
    let rendered = one(
        &object("c"),
        cert_secret(pem, Some("application/x-pem-file")),
    )
    .unwrap();
    assert_eq!(rendered.file.contents.as_slice(), pem.as_bytes());

    let mut pfx = object("c");
    pfx.format = ObjectFormat::Pfx;
    let rendered = one(&pfx, cert_secret("TUlJ", Some("application/x-pkcs12"))).unwrap();
    assert_eq!(
        rendered.file.contents.as_slice(),
        b"TUlJ",
        "pfx passthrough keeps the base64 text"
    );
    pfx.encoding = ObjectEncoding::Base64;
    let rendered = one(&pfx, cert_secret("TUlJ", Some("application/x-pkcs12"))).unwrap();
    assert_eq!(
        rendered.file.contents.as_slice(),
        b"MII",
        "base64 encoding yields the binary PFX"
    );

    assert_eq!(
        one(&object("c"), cert_secret("x", Some("text/plain")))
            .unwrap_err()
            .to_string(),
        "failed to get certificate. unknown content type 'text/plain'"
    );
    assert_eq!(
        one(&object("c"), cert_secret("x", None))
            .unwrap_err()
            .to_string(),
        "failed to get certificate. unknown content type ''"
    );
    assert_eq!(
        one(&object("c"), cert_secret("x", Some("application/x-pkcs12"))).unwrap_err(),
        RenderError::Base64 { offset: 0 },
        "not a base64 PFX"
    );
}

fn all(object: &KeyVaultObject, fetched: Fetched, options: RenderOptions) -> Output {
    render(object, Slot::Single, fetched, default_mode(), options).unwrap()
}

#[test]
fn jmes_path_files_follow_the_whole_secret() {
    let mut o = object("db");
    o.file_permission = FileMode::new(0o640);
    o.extensions.jmes_path = vec![
        crate::object::JmesPath {
            path: "user".into(),
            alias: "db/user".into(),
            file_permission: None,
        },
        crate::object::JmesPath {
            path: "conn".into(),
            alias: "db/conn.json".into(),
            file_permission: FileMode::new(0o400),
        },
    ];
    let value = r#"{"user":"app","conn":{"port":5432,"host":"h"}}"#;
    let output = all(&o, secret(value), RenderOptions::default());
    let got: Vec<(&str, &[u8], u32, &str, &str)> = output
        .files
        .iter()
        .map(|r| {
            (
                r.file.path.as_str(),
                r.file.contents.as_slice(),
                r.file.mode.bits(),
                r.version.id.as_str(),
                r.version.version.as_str(),
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            ("db", value.as_bytes(), 0o640, "secret/db", "v1"),
            (
                "db/user",
                b"app".as_slice(),
                0o640,
                "secret/db#db/user",
                "v1"
            ),
            (
                "db/conn.json",
                br#"{"host":"h","port":5432}"#.as_slice(),
                0o400,
                "secret/db#db/conn.json",
                "v1"
            ),
        ]
    );
    // The JSON is the file's contents, after objectEncoding.
    o.encoding = ObjectEncoding::Base64;
    let encoded = base64::engine::general_purpose::STANDARD.encode(value);
    let output = all(&o, secret(&encoded), RenderOptions::default());
    assert_eq!(output.files[1].file.contents.as_slice(), b"app");
    // Not JSON: an error naming the problem, not the value.
    o.encoding = ObjectEncoding::Utf8;
    let err = render(
        &o,
        Slot::Single,
        secret("user=app"),
        default_mode(),
        RenderOptions::default(),
    )
    .unwrap_err();
    assert_eq!(err.code(), "SecretNotJson");
    assert!(!err.to_string().contains("app"), "{err}");
}

#[test]
fn pem_to_pfx_is_base64_text_or_binary_and_splits_from_the_pem() {
    let pem = [
        fixtures::text("rsa/key.pem"),
        fixtures::text("rsa/leaf.pem"),
    ]
    .concat();
    let mut o = object("c");
    o.format = ObjectFormat::Pfx;
    let text = one(&o, cert_secret(&pem, Some("application/x-pem-file"))).unwrap();
    let der = base64::engine::general_purpose::STANDARD
        .decode(text.file.contents.as_slice())
        .expect("base64 text");
    let contents = pkcs12::decode(&der).unwrap();
    assert_eq!(contents.certs, [fixtures::pem_der("rsa/leaf.pem")]);
    o.encoding = ObjectEncoding::Base64;
    let binary = one(&o, cert_secret(&pem, Some("application/x-pem-file"))).unwrap();
    assert_eq!(binary.file.contents.as_slice(), der, "same bytes, decoded");

    o.encoding = ObjectEncoding::Utf8;
    let split = RenderOptions {
        write_cert_and_key_in_separate_files: true,
        ..RenderOptions::default()
    };
    let output = all(&o, cert_secret(&pem, Some("application/x-pem-file")), split);
    let paths: Vec<&str> = output.files.iter().map(|r| r.file.path.as_str()).collect();
    assert_eq!(paths, ["c.crt", "c.key", "c"]);
    assert_eq!(
        output.files[0].file.contents.as_slice(),
        fixtures::text("rsa/leaf.pem").as_bytes()
    );
    assert_eq!(
        output.files[1].file.contents.as_slice(),
        fixtures::text("rsa/key.pem").as_bytes()
    );

    let err = one(
        &object_pfx("c"),
        cert_secret(
            fixtures::text("rsa/leaf.pem"),
            Some("application/x-pem-file"),
        ),
    )
    .unwrap_err();
    assert_eq!(err, RenderError::Pfx(PfxError::NoKey));
    assert_eq!(err.code(), "PfxFailed");
}

fn object_pfx(name: &str) -> KeyVaultObject {
    let mut o = object(name);
    o.format = ObjectFormat::Pfx;
    o
}

#[test]
fn debug_of_a_file_hides_contents() {
    let rendered = one(&object("s"), secret("hidden-value")).unwrap();
    assert!(!format!("{rendered:?}").contains("hidden-value"));
}

#[path = "golden.rs"]
mod golden;
