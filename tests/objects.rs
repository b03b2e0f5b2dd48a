//! Object parity with the upstream Azure provider (v1.8.2), through the
//! socket against the fake: keys, certificates, certificate-backed secrets
//! (PKCS#12 → PEM, chain order, PFX passthrough, `.crt`/`.key` files),
//! version history, clouds, and the parameter rules. Expected bytes come
//! from `tests/data/pki` (made by OpenSSL in its `gen.sh`), never from the
//! code under test.
//!
//! Compatibility checklist of `azure-provider.md` → tests (items 4–23):
//!
//! | item | test(s) |
//! |---|---|
//! | 4 parameter keys | `checklist_04_parameter_keys_are_exact_and_trimmed`; `params::tests::tenant_precedence_and_trimming` |
//! | 5 Go booleans | `checklist_05_booleans_use_go_parse_bool`; `params::tests::parse_bool_variants` |
//! | 6 pod info, check order | `checklist_06_pod_name_namespace_and_check_order`; `params::tests::check_order` |
//! | 7 identity choice | `checklist_07_identity_choice`; `mount::service_principal_from_node_publish_secret_ref`, `params::tests::identity_modes` |
//! | 8 WI token exchange | `checklist_08_workload_identity_exchange_with_the_cloud_scope`; `mount::blog_walkthrough_mounts_my_secret_password` |
//! | 9 identity binding | `params::tests::identity_modes`, `params::tests::identity_errors` (mode selection and errors; the token-proxy flow is issue 4's) |
//! | 10 VM managed identity | `params::tests::identity_modes` (selection; the IMDS flow is issue 4's) |
//! | 11 pod identity | `params::tests::identity_modes` (selection; the NMI flow is issue 4's) |
//! | 12 clouds | `checklist_12_sovereign_and_azure_stack_clouds`; `params::tests::clouds`, `cloud::tests` |
//! | 13 objects YAML | `checklist_13_empty_objects_array_mounts_nothing`; `params::tests::objects_yaml_shapes` |
//! | 14 validation texts | `checklist_14_validation_errors_use_upstream_texts`; `params::tests::object_validation_errors`, `object::tests` |
//! | 15 path and mode | `checklist_15_path_and_mode`; `mount::versions_aliases_encodings_and_modes` |
//! | 16 object versions | `checklist_16_one_object_version_per_file`; `render::tests::golden::checklist_16_history_paths_and_ids` |
//! | 17 version history | `checklist_17_version_history_*`; `object::tests::checklist_17_history_selection` |
//! | 18 plain secrets | `checklist_18_plain_secret_encodings`; `render::tests::golden::checklist_18_base64_skips_line_breaks` |
//! | 19 certificate-backed secrets | `checklist_19_*` here and in `render::tests::golden`, `render::chain::tests` |
//! | 20 separate files | `checklist_20_separate_cert_and_key_files`; `render::tests::golden::checklist_20_separate_cert_and_key_files` |
//! | 21 keys | `checklist_21_key_objects`; `render::jwk::tests::checklist_21_*` |
//! | 22 certs | `checklist_22_cert_objects_are_the_leaf_pem` ; `render::tests::golden::checklist_22_cert_objects` |
//! | 23 failures | `checklist_23_failures_are_wrapped_and_all_or_nothing`; `mount::all_or_nothing_when_one_object_fails` |

use base64::Engine as _;
use fake_azure::{CertificateSeed, KeySeed, ObjectKind, SecretSeed};

use crate::driver::Pod;
use crate::util::{Harness, ISSUER};
use crate::util::{failure, files, ids};

const VAULT: &str = "kv-blogpost-jx01";
const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

fn fixture(path: &str) -> &'static [u8] {
    macro_rules! fixtures {
        ($($name:literal,)*) => {
            match path {
                $($name => include_bytes!(concat!("data/pki/", $name)).as_slice(),)*
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

fn text(path: &str) -> String {
    String::from_utf8(fixture(path).to_vec()).unwrap()
}

/// Key, then leaf, intermediate, root: what upstream writes.
fn ordered(chain: &str) -> String {
    ["key", "leaf", "int", "root"]
        .iter()
        .map(|f| text(&format!("{chain}/{f}.pem")))
        .collect()
}

/// The DER of a PEM fixture, base64: a certificate bundle's `cer`.
fn cer(path: &str) -> String {
    let pem = text(path);
    let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    body
}

fn jwk(name: &str) -> KeySeed {
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
fn pfx_certificate(name: &str, pfx: &str, leaf: &str) -> CertificateSeed {
    CertificateSeed {
        name: name.into(),
        cer: cer(leaf),
        secret_value: B64.encode(fixture(pfx)),
        content_type: "application/x-pkcs12".into(),
        key: None,
        enabled: true,
    }
}

fn objects(entries: &[&str]) -> String {
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

// === keys and certificates ===

/// Checklist 21: SPKI `PUBLIC KEY` PEM for RSA/RSA-HSM/EC/EC-HSM on
/// P-256/384/521, byte-identical to `openssl pkey -pubout`; other key types
/// fail with upstream's text.
#[tokio::test]
async fn checklist_21_key_objects() {
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

/// Checklist 22: the `cer` field as one CERTIFICATE PEM (leaf only).
#[tokio::test]
async fn checklist_22_cert_objects_are_the_leaf_pem() {
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

// === certificate-backed secrets ===

/// Checklist 19: PKCS#12 (here the Key Vault form: RC2-40 certificates,
/// 3DES key, SHA-1 MAC, null password) → the key as PKCS#8 first, then the
/// certificates leaf → intermediate → root; `PFX` passthrough (any case)
/// with `objectEncoding: base64` yields the binary PFX; PEM as stored.
#[tokio::test]
async fn checklist_19_pkcs12_secret_keys_first_then_chain() {
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
        "#747: ordered without AKI/SKI"
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
async fn checklist_19_construct_pem_chain_false_keeps_the_file_order() {
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

/// Checklist 19: any other content type, or none, is upstream's error (a
/// missing content type panicked upstream).
#[tokio::test]
async fn checklist_19_unknown_content_type_is_an_error() {
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
async fn checklist_20_separate_cert_and_key_files() {
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

    // Another object aliased onto a split file is a clear error.
    let status = mount(
        &harness,
        &[
            "objectName: tls\nobjectType: secret",
            "objectName: MySecretPassword\nobjectType: secret\nobjectAlias: tls.key",
        ],
    )
    .await
    .unwrap_err();
    assert!(
        failure(&status).starts_with("two files are named \"tls.key\""),
        "{}",
        status.message()
    );
}

// === version history ===

/// Checklist 17: list (all pages), skip disabled, newest first, N files
/// `<alias>/<i>` with ids `<type>/<name>/<i>`, each version fetched.
#[tokio::test]
async fn checklist_17_version_history_of_a_secret() {
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

/// Checklist 17: a named version that is not listed produces no files for
/// that object, as upstream.
#[tokio::test]
async fn checklist_17_version_history_of_an_unknown_version_is_empty() {
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

/// Checklist 17: keys and certificates have version history too (and a
/// certificate's history of its backing secret renders each PFX).
#[tokio::test]
async fn checklist_17_version_history_of_keys_and_certificates() {
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

// === clouds ===

/// Checklist 12 (and 8): the vault host and the token scope follow the
/// cloud: `cloudName` is case-insensitive; Azure Stack reads the
/// environment file named by `cloudEnvFileName` for this mount only.
#[tokio::test]
async fn checklist_12_sovereign_and_azure_stack_clouds() {
    let harness = Harness::start().await;
    let stack_env = harness.dir().join("stack.json");
    std::fs::write(
        &stack_env,
        r#"{"name":"AzureStackCloud","activeDirectoryEndpoint":"https://login.microsoftonline.com/",
            "keyVaultEndpoint":"https://vault.local.azurestack.external/","keyVaultDNSSuffix":"vault.local.azurestack.external",
            "resourceManagerEndpoint":"https://management.local.azurestack.external/"}"#,
    )
    .unwrap();
    harness
        .fake
        .set_secret(VAULT, "MySecretPassword", "everywhere", None)
        .unwrap();
    for (cloud, env_file) in [
        ("azureusgovernmentcloud", None),
        ("AzureChinaCloud", None),
        ("AzureCloud", None),
        ("AzureStackCloud", Some(stack_env.display().to_string())),
    ] {
        let mut spc = Harness::blog_spc_with_objects(&objects(&[
            "objectName: MySecretPassword\nobjectType: secret",
        ]));
        spc.parameters.insert("cloudName".into(), cloud.into());
        if let Some(file) = &env_file {
            spc.parameters
                .insert("cloudEnvFileName".into(), file.clone());
        }
        harness.fake.reset_counters();
        let response = harness
            .mount_spc(&spc, &Pod::blog())
            .await
            .unwrap_or_else(|s| panic!("{cloud}: {}", s.message()));
        assert_eq!(response.files[0].contents, b"everywhere", "{cloud}");
        let counters = harness.fake.counters();
        assert_eq!(
            counters
                .token_requests_with(fake_azure::grant::CLIENT_ASSERTION, fake_azure::OUTCOME_OK),
            1,
            "{cloud}: {counters:?}"
        );
        assert_eq!(counters.challenges, 0, "{cloud}: the right scope up front");
    }
    let mut spc = Harness::blog_spc_with_objects(&objects(&[
        "objectName: MySecretPassword\nobjectType: secret",
    ]));
    spc.parameters
        .insert("cloudName".into(), "AzureStackCloud".into());
    spc.parameters
        .insert("cloudEnvFileName".into(), "/nonexistent/env.json".into());
    let status = harness.mount_spc(&spc, &Pod::blog()).await.unwrap_err();
    assert!(
        failure(&status).starts_with("cloudName AzureStackCloud is not valid, error: "),
        "{}",
        status.message()
    );
}

// === parameters and the mount contract (items also covered by unit tests) ===

/// Checklist 4: keys are exact (case-sensitive), values trimmed, unknown
/// keys ignored.
#[tokio::test]
async fn checklist_04_parameter_keys_are_exact_and_trimmed() {
    let harness = Harness::start().await;
    let mut spc = Harness::blog_spc_with_objects(&objects(&[
        "objectName: MySecretPassword\nobjectType: secret",
    ]));
    spc.parameters
        .insert("resourceGroup".into(), "ignored".into());
    spc.parameters
        .insert("subscriptionId".into(), "ignored".into());
    let name = spc.parameters["keyvaultName"].clone();
    spc.parameters
        .insert("keyvaultName".into(), format!("  {name}\n"));
    harness
        .mount_spc(&spc, &Pod::blog())
        .await
        .expect("trimmed, unknown keys ignored");
    spc.parameters.remove("keyvaultName");
    spc.parameters.insert("KeyVaultName".into(), name);
    let status = harness.mount_spc(&spc, &Pod::blog()).await.unwrap_err();
    // Upstream's text first, then our hint (issue 4).
    assert_eq!(
        failure(&status),
        "keyvaultName is not provided (did you mean \"keyvaultName\"? \"KeyVaultName\" \
         is not a parameter; parameter names are case-sensitive)"
    );
}

/// Checklist 5: Go `ParseBool` semantics and error text.
#[tokio::test]
async fn checklist_05_booleans_use_go_parse_bool() {
    let harness = Harness::start().await;
    let mut spc = Harness::blog_spc_with_objects(&objects(&[
        "objectName: MySecretPassword\nobjectType: secret",
    ]));
    spc.parameters.insert("usePodIdentity".into(), "F".into());
    harness
        .mount_spc(&spc, &Pod::blog())
        .await
        .expect("F is false");
    spc.parameters.insert("usePodIdentity".into(), "yes".into());
    let status = harness.mount_spc(&spc, &Pod::blog()).await.unwrap_err();
    assert_eq!(
        failure(&status),
        "failed to parse usePodIdentity flag, error: strconv.ParseBool: parsing \"yes\": invalid syntax"
    );
}

/// Checklist 6: pod name and namespace are required, checked first.
#[tokio::test]
async fn checklist_06_pod_name_namespace_and_check_order() {
    let harness = Harness::start().await;
    let mut spc = Harness::blog_spc_with_objects("");
    spc.parameters.remove("keyvaultName");
    let pod = Pod {
        name: String::new(),
        ..Pod::blog()
    };
    let status = harness.mount_spc(&spc, &pod).await.unwrap_err();
    assert_eq!(failure(&status), "pod name is not provided");
    let status = harness.mount_spc(&spc, &Pod::blog()).await.unwrap_err();
    assert_eq!(failure(&status), "keyvaultName is not provided");
}

/// Checklist 7: with `clientID` and a WI token, workload identity is used
/// (a client-assertion exchange); the service-principal path is
/// `mount::service_principal_from_node_publish_secret_ref`.
#[tokio::test]
async fn checklist_07_identity_choice() {
    let harness = Harness::start().await;
    harness.fake.reset_counters();
    mount(
        &harness,
        &["objectName: MySecretPassword\nobjectType: secret"],
    )
    .await
    .unwrap();
    let counters = harness.fake.counters();
    assert_eq!(
        counters.token_requests_with(fake_azure::grant::CLIENT_ASSERTION, fake_azure::OUTCOME_OK),
        1
    );
    assert_eq!(counters.token_requests_total(), 1);
}

/// Checklist 8: one client-assertion exchange per mount, whatever the
/// number and types of objects, with the vault scope sent up front (no 401
/// challenge).
#[tokio::test]
async fn checklist_08_workload_identity_exchange_with_the_cloud_scope() {
    let harness = Harness::start().await;
    harness
        .fake
        .add_key_version(
            VAULT,
            KeySeed {
                name: "k".into(),
                ..jwk("ec-p256")
            },
        )
        .unwrap();
    harness
        .fake
        .add_certificate_version(VAULT, pfx_certificate("c", "rsa-aes.pfx", "rsa/leaf.pem"))
        .unwrap();
    harness.fake.reset_counters();
    mount(
        &harness,
        &[
            "objectName: MySecretPassword\nobjectType: secret",
            "objectName: k\nobjectType: key",
            "objectName: c\nobjectType: cert",
            "objectName: c\nobjectType: secret\nobjectAlias: c.pem",
        ],
    )
    .await
    .unwrap();
    let counters = harness.fake.counters();
    assert_eq!(counters.token_requests_total(), 1, "{counters:?}");
    assert_eq!(counters.challenges, 0);
    assert_eq!(counters.keyvault_requests_total(), 4);
}

/// Checklist 13: an empty `array` mounts nothing, successfully, without
/// any request.
#[tokio::test]
async fn checklist_13_empty_objects_array_mounts_nothing() {
    let harness = Harness::start().await;
    harness.fake.reset_counters();
    let response = harness
        .mount_spc(&Harness::blog_spc_with_objects("array: []\n"), &Pod::blog())
        .await
        .expect("empty mount succeeds");
    assert!(response.files.is_empty() && response.object_version.is_empty());
    assert_eq!(harness.fake.counters().token_requests_total(), 0);
}

/// Checklist 14: validation errors keep upstream's texts and wrapping.
#[tokio::test]
async fn checklist_14_validation_errors_use_upstream_texts() {
    let harness = Harness::start().await;
    for (entry, want) in [
        (
            "objectName: k\nobjectType: key\nobjectFormat: pfx",
            "failed to get objectType:key, objectName:k, objectVersion:: PFX format only supported for objectType: secret",
        ),
        (
            "objectName: c\nobjectType: cert\nobjectEncoding: base64",
            "failed to get objectType:cert, objectName:c, objectVersion:: objectEncoding only supported for objectType: secret",
        ),
        (
            "objectName: s\nobjectType: Secret",
            "failed to get objectType:Secret, objectName:s, objectVersion:: Invalid vaultObjectTypes. Should be secret, key, or cert",
        ),
        (
            "objectName: s\nobjectType: secret\nobjectFormat: der",
            "failed to get objectType:secret, objectName:s, objectVersion:: invalid objectFormat: der, should be PEM or PFX",
        ),
        (
            "objectName: s\nobjectType: secret\nobjectAlias: /etc/x",
            "failed to get objectType:secret, objectName:s, objectVersion:: file name must be a relative path",
        ),
    ] {
        let status = mount(&harness, &[entry]).await.unwrap_err();
        assert_eq!(failure(&status), want);
    }
}

/// Checklist 15: path = alias, else name; mode = octal `filePermission`,
/// else the request's; an invalid permission is an error (a deliberate
/// difference: upstream used mode 0).
#[tokio::test]
async fn checklist_15_path_and_mode() {
    let harness = Harness::start().await;
    let response = mount(
        &harness,
        &[
            "objectName: MySecretPassword\nobjectType: secret",
            "objectName: MySecretPassword\nobjectType: secret\nobjectAlias: a/b\nfilePermission: \"755\"",
        ],
    )
    .await
    .unwrap();
    let got: Vec<(&str, i32)> = response
        .files
        .iter()
        .map(|f| (f.path.as_str(), f.mode))
        .collect();
    assert_eq!(got, vec![("MySecretPassword", 0o644), ("a/b", 0o755)]);
    let status = mount(
        &harness,
        &["objectName: MySecretPassword\nobjectType: secret\nfilePermission: \"999\""],
    )
    .await
    .unwrap_err();
    assert!(
        failure(&status).contains("invalid filePermission"),
        "{}",
        status.message()
    );
}

/// Checklist 16: one object version per file, `id = <type>/<name>`, version
/// = the resolved Key Vault version id even when none was asked for.
#[tokio::test]
async fn checklist_16_one_object_version_per_file() {
    let harness = Harness::start().await;
    let v = harness
        .fake
        .set_secret(VAULT, "MySecretPassword", "x", None)
        .unwrap();
    let response = mount(
        &harness,
        &[
            "objectName: MySecretPassword\nobjectType: secret\nobjectAlias: one",
            "objectName: MySecretPassword\nobjectType: secret\nobjectAlias: two",
        ],
    )
    .await
    .unwrap();
    assert_eq!(
        ids(&response),
        vec![
            ("secret/MySecretPassword".into(), v.clone()),
            ("secret/MySecretPassword".into(), v)
        ]
    );
}

/// Checklist 18: plain secrets as stored, then `objectEncoding`; base64
/// wrapped in lines decodes as in Go; a plain secret's content type and
/// `objectFormat` are ignored.
#[tokio::test]
async fn checklist_18_plain_secret_encodings() {
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

/// Checklist 23: status Unknown, `failed to mount objects, error: ` prefix,
/// per-object wrapping, and no partial mount (a bad key after good
/// objects fails the whole mount). Hostile content (a corrupt PFX) is an
/// error naming the object, never a crash.
#[tokio::test]
async fn checklist_23_failures_are_wrapped_and_all_or_nothing() {
    let harness = Harness::start().await;
    let mut corrupt = pfx_certificate("corrupt", "rsa-aes.pfx", "rsa/leaf.pem");
    corrupt.secret_value = B64.encode(&fixture("rsa-aes.pfx")[..700]);
    harness
        .fake
        .add_certificate_version(VAULT, corrupt)
        .unwrap();
    let status = mount(
        &harness,
        &[
            "objectName: MySecretPassword\nobjectType: secret",
            "objectName: corrupt\nobjectType: secret",
        ],
    )
    .await
    .unwrap_err();
    let message = failure(&status);
    assert!(
        message.starts_with(
            "failed to get objectType:secret, objectName:corrupt, objectVersion:: pkcs12: "
        ),
        "{message}"
    );
    let status = mount(
        &harness,
        &[
            "objectName: MySecretPassword\nobjectType: secret",
            "objectName: missing\nobjectType: key\nobjectVersionHistory: 3",
        ],
    )
    .await
    .unwrap_err();
    let message = failure(&status);
    assert!(
        message.starts_with("failed to get objectType:key, objectName:missing, objectVersion:: keyvault kv-blogpost-jx01 answered 404 KeyNotFound"),
        "{message}"
    );
    // The provider is still serving.
    mount(
        &harness,
        &["objectName: MySecretPassword\nobjectType: secret"],
    )
    .await
    .expect("still serving");
}
