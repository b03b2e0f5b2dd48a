//! Our extensions over upstream, end to end over the socket against the
//! fake: `optional: true` objects, `jmesPath` extraction, `objectFormat:
//! pfx` on PEM certificate-backed secrets (a real PKCS#12, checked by our
//! own reader through the fake and by the `openssl` command line where it
//! is installed) and a per-object `keyvaultName`. Each with its success and
//! its errors.

use base64::Engine as _;
use fake_azure::{
    BLOG_CLIENT_ID, BLOG_TENANT_ID, CertificateSeed, Limit, SecretSeed, Target, VaultSeed,
};

use crate::support::driver::Pod;
use crate::support::harness::Harness;
use crate::support::harness::{failure, files, ids};

const VAULT: &str = "kv-blogpost-jx01";
const OTHER_VAULT: &str = "kv-shared-jx02";
const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

fn pki(path: &str) -> &'static str {
    match path {
        "rsa/key.pem" => include_str!("data/pki/rsa/key.pem"),
        "rsa/leaf.pem" => include_str!("data/pki/rsa/leaf.pem"),
        "rsa/int.pem" => include_str!("data/pki/rsa/int.pem"),
        "rsa/root.pem" => include_str!("data/pki/rsa/root.pem"),
        other => panic!("no fixture {other}"),
    }
}

/// The DER of a PEM fixture, base64: a certificate bundle's `cer`.
fn cer(path: &str) -> String {
    pki(path)
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .collect()
}

fn objects(entries: &[&str]) -> String {
    let mut yaml = String::from("array:\n");
    for entry in entries {
        yaml.push_str("  - |\n");
        for line in entry.lines() {
            yaml.push_str("    ");
            yaml.push_str(line);
            yaml.push('\n');
        }
    }
    yaml
}

async fn mount(
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

/// `akv_optional_objects_missing_total` by object type.
async fn missing_counter(harness: &Harness, object_type: &str) -> u64 {
    let text = harness.scrape().await;
    let prefix = format!("akv_optional_objects_missing_total{{object_type=\"{object_type}\"}} ");
    text.lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .map_or(0, |v| v.parse().expect("a count"))
}

// === optional ===

/// Missing objects of every type (and a missing version, and a missing
/// version-history object) are left out; the object versions still name
/// them, with version `not-found`; a log line and a counter say so; once
/// the object exists the next mount delivers it.
#[tokio::test]
async fn optional_missing_objects_are_left_out_and_reported() {
    let harness = Harness::start().await;
    let present = harness
        .fake
        .set_secret(VAULT, "MySecretPassword", "here", None)
        .unwrap();
    let entries = [
        "objectName: MySecretPassword\nobjectType: secret",
        "objectName: later\nobjectType: secret\noptional: true",
        "objectName: no-key\nobjectType: key\noptional: true",
        "objectName: no-cert\nobjectType: cert\noptional: \"True\"",
        "objectName: MySecretPassword\nobjectType: secret\nobjectAlias: pinned\nobjectVersion: 00000000000000000000000000000000\noptional: true",
        "objectName: no-history\nobjectType: secret\nobjectVersionHistory: 3\noptional: true",
    ];
    let response = mount(&harness, &entries).await.expect("mount succeeds");
    assert_eq!(
        files(&response),
        [("MySecretPassword".into(), "here".into())]
    );
    assert_eq!(
        ids(&response),
        [
            ("secret/MySecretPassword".into(), present.clone()),
            ("secret/later".into(), "not-found".into()),
            ("key/no-key".into(), "not-found".into()),
            ("cert/no-cert".into(), "not-found".into()),
            ("secret/MySecretPassword".into(), "not-found".into()),
            ("secret/no-history".into(), "not-found".into()),
        ]
    );
    assert_eq!(missing_counter(&harness, "secret").await, 3);
    assert_eq!(missing_counter(&harness, "key").await, 1);
    assert_eq!(missing_counter(&harness, "cert").await, 1);
    let logs = harness.logs();
    let skipped: Vec<&str> = logs
        .lines()
        .filter(|l| l.contains("optional object not found"))
        .collect();
    assert_eq!(skipped.len(), 5, "{logs}");
    assert!(
        skipped
            .iter()
            .any(|l| l.contains("objectName:later") && l.contains("SecretNotFound")),
        "{logs}"
    );
    assert!(skipped.iter().any(|l| l.contains("KeyNotFound")), "{logs}");

    // The object appears; the next (rotation) mount delivers it.
    let later = harness
        .fake
        .set_secret(VAULT, "later", "arrived", None)
        .unwrap();
    let response = mount(&harness, &entries[..2])
        .await
        .expect("mount succeeds");
    assert_eq!(
        files(&response),
        [
            ("MySecretPassword".into(), "here".into()),
            ("later".into(), "arrived".into())
        ]
    );
    assert_eq!(ids(&response)[1], ("secret/later".into(), later));
}

/// The driver fails a mount with no object versions; a lone optional object
/// that is missing still gives one entry (and no files).
#[tokio::test]
async fn a_lone_missing_optional_object_still_reports_one_version() {
    let harness = Harness::start().await;
    let response = mount(
        &harness,
        &["objectName: nothing\nobjectType: secret\noptional: true"],
    )
    .await
    .expect("mount succeeds");
    assert!(response.files.is_empty());
    assert_eq!(
        ids(&response),
        [("secret/nothing".into(), "not-found".into())]
    );
}

/// Only "does not exist" is tolerated: a disabled version (403), a vault
/// the identity may not read (403), throttling (429) and content that
/// cannot be rendered still fail the mount, and a non-optional missing
/// object still fails it.
#[tokio::test]
async fn optional_does_not_hide_other_failures() {
    let harness = Harness::start().await;
    let disabled = harness
        .fake
        .add_secret_version(VAULT, SecretSeed::new("disabled", "x"))
        .unwrap();
    harness
        .fake
        .disable_secret_version(VAULT, "disabled", &disabled)
        .unwrap();
    harness
        .fake
        .add_vault(VaultSeed {
            name: OTHER_VAULT.into(),
            tenant_id: BLOG_TENANT_ID.into(),
            access: Vec::new(),
            secrets: vec![SecretSeed::new("locked", "x")],
            ..VaultSeed::default()
        })
        .unwrap();
    harness
        .fake
        .set_secret(VAULT, "not-json", "user=admin;password=hunter2", None)
        .unwrap();

    let status = mount(
        &harness,
        &["objectName: disabled\nobjectType: secret\noptional: true"],
    )
    .await
    .unwrap_err();
    let message = failure(&status);
    assert!(message.contains("objectName:disabled"), "{message}");
    assert!(message.contains("403 Forbidden"), "{message}");

    let entry = format!(
        "objectName: locked\nobjectType: secret\noptional: true\nkeyvaultName: {OTHER_VAULT}"
    );
    let status = mount(&harness, &[&entry]).await.unwrap_err();
    let message = failure(&status);
    assert!(
        message.contains(&format!("keyvault {OTHER_VAULT} answered 403")),
        "{message}"
    );

    let status = mount(
        &harness,
        &["objectName: not-json\nobjectType: secret\noptional: true\njmesPath:\n  - path: user\n    objectAlias: user"],
    )
    .await
    .unwrap_err();
    assert!(
        failure(&status).contains("jmesPath needs the secret to be JSON"),
        "{}",
        status.message()
    );

    let status = mount(&harness, &["objectName: absent\nobjectType: secret"])
        .await
        .unwrap_err();
    assert!(
        failure(&status).contains("SecretNotFound"),
        "{}",
        status.message()
    );

    harness
        .fake
        .throttle(Target::KeyVault, None, Limit::Count(50));
    let status = mount(
        &harness,
        &["objectName: absent\nobjectType: secret\noptional: true"],
    )
    .await
    .unwrap_err();
    assert!(failure(&status).contains("429"), "{}", status.message());
    harness.fake.clear_faults();
    assert_eq!(missing_counter(&harness, "secret").await, 0);
}

// === jmesPath ===

const DB_JSON: &str = r#"{"username":"app","password":"p@ss:w0rd","port":5432,"tls":{"mode":"verify-full","ca":["a","b"]},"replicas":[{"host":"r1","port":5433},{"host":"r2","port":5434}]}"#;

/// Strings raw, other values compact JSON, the whole secret too, ids per
/// file, modes per entry.
#[tokio::test]
async fn jmes_path_writes_selected_values_and_the_whole_secret() {
    let harness = Harness::start().await;
    let version = harness
        .fake
        .set_secret(VAULT, "db", DB_JSON, Some("application/json"))
        .unwrap();
    let entry = "objectName: db
objectType: secret
objectAlias: db/all.json
filePermission: \"0640\"
jmesPath:
  - path: username
    objectAlias: db/user
  - path: password
    objectAlias: db/password
    filePermission: \"0400\"
  - path: port
    objectAlias: db/port
  - path: tls
    objectAlias: db/tls.json
  - path: replicas[?port > `5433`].host | [0]
    objectAlias: db/replica";
    let response = mount(&harness, &[entry]).await.expect("mount succeeds");
    assert_eq!(
        files(&response),
        [
            ("db/all.json".into(), DB_JSON.into()),
            ("db/user".into(), "app".into()),
            ("db/password".into(), "p@ss:w0rd".into()),
            ("db/port".into(), "5432".into()),
            (
                "db/tls.json".into(),
                r#"{"ca":["a","b"],"mode":"verify-full"}"#.into()
            ),
            ("db/replica".into(), "r2".into()),
        ]
    );
    let modes: Vec<i32> = response.files.iter().map(|f| f.mode).collect();
    assert_eq!(modes, [0o640, 0o640, 0o400, 0o640, 0o640, 0o640]);
    let want_ids: Vec<(String, String)> = [
        "secret/db",
        "secret/db#db/user",
        "secret/db#db/password",
        "secret/db#db/port",
        "secret/db#db/tls.json",
        "secret/db#db/replica",
    ]
    .iter()
    .map(|id| ((*id).to_owned(), version.clone()))
    .collect();
    assert_eq!(ids(&response), want_ids);
    // One fetch serves every entry.
    assert_eq!(harness.fake.counters().keyvault_requests_total(), 1);
}

/// Errors name the object and the path, never the value; invalid paths,
/// aliases and object types fail before any request.
#[tokio::test]
async fn jmes_path_errors_name_the_object_and_the_path() {
    let harness = Harness::start().await;
    harness.fake.set_secret(VAULT, "db", DB_JSON, None).unwrap();
    harness
        .fake
        .set_secret(VAULT, "flat", "user=admin;password=hunter2", None)
        .unwrap();

    let status = mount(
        &harness,
        &["objectName: flat\nobjectType: secret\njmesPath:\n  - path: password\n    objectAlias: pw"],
    )
    .await
    .unwrap_err();
    let message = failure(&status);
    assert!(message.starts_with("failed to get objectType:secret, objectName:flat, objectVersion:: jmesPath needs the secret to be JSON"), "{message}");
    assert!(
        !message.contains("hunter2") && !message.contains("admin"),
        "{message}"
    );

    let status = mount(
        &harness,
        &["objectName: db\nobjectType: secret\njmesPath:\n  - path: username\n    objectAlias: u\n  - path: credentials.password\n    objectAlias: pw"],
    )
    .await
    .unwrap_err();
    assert_eq!(
        failure(&status),
        r#"failed to get objectType:secret, objectName:db, objectVersion:: jmesPath entry 1 (path "credentials.password") selects nothing (null) in the secret's JSON"#
    );

    harness.fake.reset_counters();
    let before_network = [
        (
            "objectName: db\nobjectType: secret\njmesPath:\n  - path: 'tls.['\n    objectAlias: x",
            r#"failed to get objectType:secret, objectName:db, objectVersion:: jmesPath entry 0 (path "tls.["): invalid JMESPath: "#,
        ),
        (
            "objectName: db\nobjectType: secret\njmesPath:\n  - path: username\n    objectAlias: ../escape",
            r#"failed to get objectType:secret, objectName:db, objectVersion:: jmesPath entry 0 (path "username"): objectAlias: file name must not contain '..'"#,
        ),
        (
            "objectName: db\nobjectType: secret\njmesPath:\n  - path: username\n    objectAlias: u\n  - path: port\n    objectAlias: u",
            r#"failed to get objectType:secret, objectName:db, objectVersion:: jmesPath entry 1 (path "port"): objectAlias "u" is also used by entry 0"#,
        ),
        (
            "objectName: db\nobjectType: key\njmesPath:\n  - path: n\n    objectAlias: n",
            "failed to get objectType:key, objectName:db, objectVersion:: jmesPath only supported for objectType: secret",
        ),
    ];
    for (entry, want) in before_network {
        let status = mount(&harness, &[entry]).await.unwrap_err();
        let message = failure(&status);
        assert!(message.starts_with(want), "{message}\n  wanted {want}");
    }
    let counters = harness.fake.counters();
    assert_eq!(counters.token_requests_total(), 0, "{counters:?}");
    assert_eq!(counters.keyvault_requests_total(), 0, "{counters:?}");
}

// === objectFormat: pfx on PEM ===

/// A certificate whose secret is PEM: root, key, intermediate, leaf
/// (scrambled on purpose).
fn pem_certificate(name: &str) -> CertificateSeed {
    CertificateSeed {
        name: name.into(),
        cer: cer("rsa/leaf.pem"),
        secret_value: [
            pki("rsa/root.pem"),
            pki("rsa/key.pem"),
            pki("rsa/int.pem"),
            pki("rsa/leaf.pem"),
        ]
        .concat(),
        content_type: "application/x-pem-file".into(),
        key: None,
        enabled: true,
    }
}

/// Issue 12: a PEM bundle whose last block never ends fails the mount with
/// an error naming the object, instead of a PFX short of a certificate.
#[tokio::test]
async fn truncated_pem_bundle_is_refused_as_pfx() {
    let harness = Harness::start().await;
    let mut seed = pem_certificate("cut");
    let cut = seed.secret_value.len() - 200;
    seed.secret_value.truncate(cut);
    harness.fake.add_certificate_version(VAULT, seed).unwrap();
    let status = mount(
        &harness,
        &["objectName: cut\nobjectType: secret\nobjectFormat: pfx"],
    )
    .await
    .unwrap_err();
    let message = failure(&status);
    assert!(
        message.starts_with("failed to get objectType:secret, objectName:cut, objectVersion:: objectFormat pfx: the PEM secret has 4 BEGIN lines but only 3 complete blocks"),
        "{message}"
    );
}

/// The PFX is base64 text (binary with `objectEncoding: base64`), the same
/// bytes on every mount, and a real PKCS#12: mounted back through the
/// provider as a PKCS#12 certificate it gives the key and the chain leaf →
/// root, and OpenSSL reads it with an empty password.
#[tokio::test]
async fn pem_secret_as_pfx_is_a_real_pkcs12() {
    let harness = Harness::start().await;
    let version = harness
        .fake
        .add_certificate_version(VAULT, pem_certificate("web"))
        .unwrap();
    let entries = [
        "objectName: web\nobjectType: secret\nobjectFormat: pfx\nobjectAlias: web.pfx.b64",
        "objectName: web\nobjectType: secret\nobjectFormat: PFX\nobjectEncoding: base64\nobjectAlias: web.pfx",
    ];
    let response = mount(&harness, &entries).await.expect("mount succeeds");
    assert_eq!(
        ids(&response),
        [
            ("secret/web".into(), version.clone()),
            ("secret/web".into(), version)
        ]
    );
    let text = &response.files[0].contents;
    let der = response.files[1].contents.clone();
    assert_eq!(B64.decode(text).expect("base64 text"), der);
    assert_eq!(&der[..2], &[0x30, 0x82], "a DER SEQUENCE");
    let again = mount(&harness, &entries).await.expect("mount succeeds");
    assert_eq!(again.files[1].contents, der, "the same bytes every mount");

    // Our reader, through the fake: the PFX as a PKCS#12 certificate.
    harness
        .fake
        .add_certificate_version(
            VAULT,
            CertificateSeed {
                name: "roundtrip".into(),
                cer: cer("rsa/leaf.pem"),
                secret_value: B64.encode(&der),
                content_type: "application/x-pkcs12".into(),
                key: None,
                enabled: true,
            },
        )
        .unwrap();
    let response = mount(&harness, &["objectName: roundtrip\nobjectType: secret"])
        .await
        .expect("mount succeeds");
    let want: String = ["rsa/key.pem", "rsa/leaf.pem", "rsa/int.pem", "rsa/root.pem"]
        .iter()
        .map(|p| pki(p))
        .collect();
    assert_eq!(files(&response)[0].1, want);

    openssl_reads(&harness, &der).await;
}

/// `openssl pkcs12` with an empty password: MAC and encryption as OpenSSL
/// 3 writes them, the key and the chain in order. Skipped (with a note)
/// where the command is not installed; CI installs it.
async fn openssl_reads(harness: &Harness, der: &[u8]) {
    let path = harness.dir().join("web.pfx");
    std::fs::write(&path, der).unwrap();
    let run = |args: &[&str]| {
        std::process::Command::new("openssl")
            .args(args)
            .arg("-in")
            .arg(&path)
            .output()
    };
    let info = match run(&["pkcs12", "-info", "-nokeys", "-passin", "pass:"]) {
        Ok(output) => output,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            eprintln!("openssl is not installed; the OpenSSL cross-check is skipped");
            return;
        }
        Err(e) => panic!("openssl: {e}"),
    };
    let stdout = String::from_utf8_lossy(&info.stdout);
    let stderr = String::from_utf8_lossy(&info.stderr);
    assert!(info.status.success(), "{stdout}\n{stderr}");
    let report = format!("{stdout}{stderr}");
    for want in [
        "MAC: sha256, Iteration 2048",
        "PKCS7 Encrypted data: PBES2, PBKDF2, AES-256-CBC, Iteration 2048, PRF hmacWithSHA256",
        "Shrouded Keybag: PBES2, PBKDF2, AES-256-CBC, Iteration 2048, PRF hmacWithSHA256",
    ] {
        assert!(report.contains(want), "{want} in\n{report}");
    }
    let subjects: Vec<&str> = stdout
        .lines()
        .filter_map(|l| l.strip_prefix("subject="))
        .collect();
    assert_eq!(subjects.len(), 3, "{stdout}");
    assert!(subjects[0].contains("rsa.example.test"), "{stdout}");
    assert!(subjects[2].contains("rsa root"), "{stdout}");

    let keys = run(&["pkcs12", "-nocerts", "-nodes", "-passin", "pass:"]).unwrap();
    assert!(keys.status.success());
    let key_pem = String::from_utf8_lossy(&keys.stdout);
    let body = |pem: &str| -> String {
        pem.lines()
            .skip_while(|l| !l.starts_with("-----BEGIN PRIVATE KEY"))
            .take_while(|l| !l.starts_with("-----END"))
            .collect()
    };
    assert_eq!(body(&key_pem), body(pki("rsa/key.pem")));
}

/// A PEM bundle without a key, with a key of another certificate, and a
/// PKCS#12 secret asked for as pfx (the passthrough, unchanged).
#[tokio::test]
async fn pem_to_pfx_errors_are_clear() {
    let harness = Harness::start().await;
    let mut no_key = pem_certificate("nokey");
    no_key.secret_value = [pki("rsa/leaf.pem"), pki("rsa/int.pem")].concat();
    harness.fake.add_certificate_version(VAULT, no_key).unwrap();
    let mut wrong_key = pem_certificate("wrongkey");
    wrong_key.secret_value = [pki("rsa/key.pem"), pki("rsa/int.pem")].concat();
    harness
        .fake
        .add_certificate_version(VAULT, wrong_key)
        .unwrap();

    let status = mount(
        &harness,
        &["objectName: nokey\nobjectType: secret\nobjectFormat: pfx"],
    )
    .await
    .unwrap_err();
    assert_eq!(
        failure(&status),
        "failed to get objectType:secret, objectName:nokey, objectVersion:: objectFormat pfx: the PEM secret holds no private key"
    );
    let status = mount(
        &harness,
        &["objectName: wrongkey\nobjectType: secret\nobjectFormat: pfx"],
    )
    .await
    .unwrap_err();
    assert!(
        failure(&status)
            .ends_with("the private key belongs to none of the PEM secret's certificates"),
        "{}",
        status.message()
    );
    // Without objectFormat the PEM is returned as stored, as upstream.
    let response = mount(&harness, &["objectName: nokey\nobjectType: secret"])
        .await
        .expect("mount succeeds");
    assert_eq!(
        files(&response)[0].1,
        [pki("rsa/leaf.pem"), pki("rsa/int.pem")].concat()
    );
}

// === keyvaultName per object ===

/// One SecretProviderClass reads two vaults with one token; the same name
/// in both gets two ids.
#[tokio::test]
async fn per_object_vault_combines_vaults_with_one_token() {
    let harness = Harness::start().await;
    harness
        .fake
        .set_secret(VAULT, "MySecretPassword", "from-blog-vault", None)
        .unwrap();
    harness
        .fake
        .add_vault(VaultSeed {
            name: OTHER_VAULT.into(),
            tenant_id: BLOG_TENANT_ID.into(),
            access: vec![BLOG_CLIENT_ID.into()],
            ..VaultSeed::default()
        })
        .unwrap();
    let other = harness
        .fake
        .set_secret(OTHER_VAULT, "MySecretPassword", "from-shared-vault", None)
        .unwrap();
    harness.fake.reset_counters();

    let shared = format!(
        "objectName: MySecretPassword\nobjectType: secret\nobjectAlias: shared\nkeyvaultName: {OTHER_VAULT}"
    );
    let response = mount(
        &harness,
        &["objectName: MySecretPassword\nobjectType: secret", &shared],
    )
    .await
    .expect("mount succeeds");
    assert_eq!(
        files(&response),
        [
            ("MySecretPassword".into(), "from-blog-vault".into()),
            ("shared".into(), "from-shared-vault".into())
        ]
    );
    assert_eq!(
        ids(&response)[1],
        (format!("secret/MySecretPassword@{OTHER_VAULT}"), other)
    );
    let counters = harness.fake.counters();
    assert_eq!(counters.token_requests_total(), 1, "{counters:?}");
    assert_eq!(counters.keyvault_requests_total(), 2, "{counters:?}");
    assert_eq!(
        counters.keyvault_requests.keys().collect::<Vec<_>>(),
        [&VAULT.to_owned(), &OTHER_VAULT.to_owned()],
        "{counters:?}"
    );
}

/// An invalid vault name fails before any request with upstream's text; a
/// missing object or a vault the identity may not read fails naming that
/// vault; an optional object missing there is left out.
#[tokio::test]
async fn per_object_vault_errors_name_the_vault() {
    let harness = Harness::start().await;
    harness
        .fake
        .add_vault(VaultSeed {
            name: OTHER_VAULT.into(),
            tenant_id: BLOG_TENANT_ID.into(),
            access: vec![BLOG_CLIENT_ID.into()],
            ..VaultSeed::default()
        })
        .unwrap();
    harness.fake.reset_counters();

    let status = mount(
        &harness,
        &["objectName: s\nobjectType: secret\nkeyvaultName: kv_bad"],
    )
    .await
    .unwrap_err();
    assert_eq!(
        failure(&status),
        r#"failed to get objectType:secret, objectName:s, objectVersion:, keyvaultName:kv_bad: failed to get vault: Invalid vault name: "kv_bad", must match [-a-zA-Z0-9]{3,24}"#
    );
    assert_eq!(harness.fake.counters().token_requests_total(), 0);

    let missing = format!("objectName: absent\nobjectType: secret\nkeyvaultName: {OTHER_VAULT}");
    let status = mount(&harness, &[&missing]).await.unwrap_err();
    let message = failure(&status);
    assert!(
        message.starts_with(&format!(
            "failed to get objectType:secret, objectName:absent, objectVersion:, keyvaultName:{OTHER_VAULT}: keyvault {OTHER_VAULT} answered 404 SecretNotFound"
        )),
        "{message}"
    );

    harness.fake.revoke(OTHER_VAULT, BLOG_CLIENT_ID).unwrap();
    let status = mount(&harness, &[&missing]).await.unwrap_err();
    assert!(
        failure(&status).contains(&format!("keyvault {OTHER_VAULT} answered 403")),
        "{}",
        status.message()
    );
    harness.fake.grant(OTHER_VAULT, BLOG_CLIENT_ID).unwrap();

    let optional = format!("{missing}\noptional: true");
    let response = mount(&harness, &[&optional]).await.expect("mount succeeds");
    assert_eq!(
        ids(&response),
        [(format!("secret/absent@{OTHER_VAULT}"), "not-found".into())]
    );
}
