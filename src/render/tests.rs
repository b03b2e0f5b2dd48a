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

#[test]
fn debug_of_a_file_hides_contents() {
    let rendered = one(&object("s"), secret("hidden-value")).unwrap();
    assert!(!format!("{rendered:?}").contains("hidden-value"));
}

#[path = "golden.rs"]
mod golden;
