//! Differential test (issue 18): one corpus of Mount requests, generated
//! from tables, sent unchanged to our provider and to upstream's real
//! provider (`tests/support/upstream.rs`), both long-lived and pointed at
//! the same Azure fake with the same proxy and CA settings; the answers are
//! compared field by field (`tests/support/differential.rs`). Every case
//! where they disagree must be named by a row of the machine-readable table
//! in `docs/design.md` ("Deliberate differences from upstream"), and every
//! row must still show up in the cases it names.

use std::sync::Arc;

use base64::Engine as _;
use fake_azure::{CertificateSeed, KeySeed, SecretSeed};

use crate::support::differential::{self as diff, Case, Ident};
use crate::support::harness::Harness;
use crate::support::identities::{self, IB_CLIENT, MI_SYSTEM, MI_USER_1, MI_USER_2, POD_MI};
use crate::support::objects::{B64, jwk};
use crate::support::upstream::{self, NmiForwarder, Upstream};

const VAULT: &str = fake_azure::BLOG_VAULT;

/// Concurrent cases (each one mount on each provider).
const PARALLEL: usize = 8;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_case_matches_upstream_or_is_a_listed_difference() {
    let binary = upstream::binary();
    // Identity binding: our provider reads the service-account CA from
    // this file on each request; it is written once the fake's CA exists.
    let sa_ca_dir = tempfile::tempdir().expect("tempdir");
    let sa_ca = sa_ca_dir.path().join("ca.crt");
    let sa_ca_flag = format!("--token-proxy-ca-file={}", sa_ca.display());
    let ours = Harness::start_with(identities::all_granted(), &[&sa_ca_flag]).await;
    std::fs::write(&sa_ca, ours.fake.ca_pem()).expect("service-account CA");
    let fake = &ours.fake;
    fake.set_vm_identities(Some(MI_SYSTEM), &[MI_USER_1, MI_USER_2])
        .expect("VM identities");
    fake.bind_pod_identity(
        fake_azure::BLOG_NAMESPACE,
        "busybox-secrets-store-inline",
        POD_MI,
    )
    .expect("pod identity");
    let vault = seed_vault(fake);
    let stack_env = ours.dir().join("azurestack.json");
    std::fs::write(&stack_env, AZURE_STACK_ENV).expect("Azure Stack environment file");
    let _nmi = NmiForwarder::start(fake).await;
    let ca = ours.dir().join("ca.pem");
    let theirs = Upstream::start(&binary, fake, &ca, ours.dir()).await;

    let corpus = corpus(&vault, &stack_env.display().to_string());
    assert!(corpus.len() >= 150, "corpus has {} cases", corpus.len());
    let differences = diff::listed_differences();
    let results = diff::run_all(Arc::new(ours), Arc::new(theirs), corpus, PARALLEL).await;
    if let Some(path) = std::env::var_os("AKV_DIFFERENTIAL_REPORT") {
        std::fs::write(path, diff::full_report(&results)).expect("write the report");
    }
    let report = diff::judge(&results, &differences);
    eprintln!("{}", report.summary);
    assert!(
        report.failures.is_empty(),
        "{}",
        report.failures.join("\n\n")
    );
}

/// Version ids the fake gave the objects the corpus names.
struct Vault {
    /// `multi`, oldest first (the second is disabled).
    multi: Vec<String>,
}

/// PKCS#12 flavours from `tests/data/pki` (name, fixture, leaf).
const PFX_FLAVOURS: &[(&str, &str, &str)] = &[
    ("rsa-kv", "rsa-kv.pfx", "rsa/leaf.pem"),
    ("rsa-legacy", "rsa-legacy.pfx", "rsa/leaf.pem"),
    ("rsa-3des", "rsa-3des.pfx", "rsa/leaf.pem"),
    ("rsa-aes", "rsa-aes.pfx", "rsa/leaf.pem"),
    ("ec-legacy", "ec-legacy.pfx", "ec/leaf.pem"),
    ("ec-3des", "ec-3des.pfx", "ec/leaf.pem"),
    ("ec-aes", "ec-aes.pfx", "ec/leaf.pem"),
    ("noaki-legacy", "noaki-legacy.pfx", "noaki/leaf.pem"),
    ("noaki-3des", "noaki-3des.pfx", "noaki/leaf.pem"),
    ("noaki-aes", "noaki-aes.pfx", "noaki/leaf.pem"),
    ("p521-aes", "p521-aes.pfx", "p521/leaf.pem"),
    ("partial-aes", "partial-aes.pfx", "rsa/leaf.pem"),
];

/// Chains (`tests/data/pki/<chain>/`) and the orders of their three
/// certificates in `tests/data/pki/orders/`.
const CHAINS: &[&str] = &["rsa", "ec", "noaki"];
const ORDERS: &[[&str; 3]] = &[
    ["leaf", "int", "root"],
    ["leaf", "root", "int"],
    ["int", "leaf", "root"],
    ["int", "root", "leaf"],
    ["root", "leaf", "int"],
    ["root", "int", "leaf"],
];

/// Standalone keys: (object name, JWK fixture, kty override, crv override).
const KEYS: &[(&str, &str, Option<&str>, Option<&str>)] = &[
    ("k-rsa2048", "rsa2048", None, None),
    ("k-rsa3072-hsm", "rsa3072-e3", Some("RSA-HSM"), None),
    ("k-ec256", "ec-p256", None, None),
    ("k-ec384-hsm", "ec-p384", Some("EC-HSM"), None),
    ("k-ec521", "ec-p521", None, None),
    ("k-p256k", "ec-p256", None, Some("P-256K")),
    ("k-oct-hsm", "ec-p256", Some("oct-HSM"), None),
];

/// The Azure Stack environment file of the cloud cases.
const AZURE_STACK_ENV: &str = r#"{"name":"AzureStackCloud","activeDirectoryEndpoint":"https://login.microsoftonline.com/",
"keyVaultEndpoint":"https://vault.local.azurestack.external/","keyVaultDNSSuffix":"vault.local.azurestack.external",
"resourceManagerEndpoint":"https://management.local.azurestack.external/"}"#;

/// Fills the blog vault with every object the corpus reads.
fn seed_vault(fake: &fake_azure::FakeAzure) -> Vault {
    let add = |seed: SecretSeed| fake.add_secret_version(VAULT, seed).expect("secret");
    add(SecretSeed::new("plain", "hello, world"));
    add(SecretSeed::new(
        "b64",
        B64.encode(b"binary\x00\x01\xff data\n"),
    ));
    add(SecretSeed::new("hexv", "68656c6c6f2c20686578"));
    add(SecretSeed::new("multiline", "line one\nline two\n"));
    let multi: Vec<String> = (1..=4)
        .map(|i| add(SecretSeed::new("multi", format!("multi value {i}"))))
        .collect();
    fake.disable_secret_version(VAULT, "multi", &multi[1])
        .expect("disable");
    for (name, fixture_name, leaf) in PFX_FLAVOURS {
        let bytes = std::fs::read(pki(fixture_name)).expect("PKCS#12 fixture");
        let mut seed = certificate(&format!("pfx-{name}"), &bytes, leaf);
        seed.key = Some(if name.starts_with("rsa") || name.starts_with("partial") {
            jwk("rsa2048")
        } else {
            jwk("ec-p256")
        });
        fake.add_certificate_version(VAULT, seed).expect("pfx");
    }
    for chain in CHAINS {
        for order in ORDERS {
            let file = format!("orders/{chain}-{}.pfx", order.join("-"));
            let bytes = std::fs::read(pki(&file)).expect("order fixture");
            let seed = certificate(
                &format!("ord-{chain}-{}", order.join("-")),
                &bytes,
                &format!("{chain}/leaf.pem"),
            );
            fake.add_certificate_version(VAULT, seed).expect("order");
        }
        for (label, key_first) in [("key-first", true), ("key-last", false)] {
            let certs: String = ["leaf", "int", "root"]
                .iter()
                .map(|c| text(&format!("{chain}/{c}.pem")))
                .collect();
            let key = text(&format!("{chain}/key.pem"));
            let value = if key_first {
                format!("{key}{certs}")
            } else {
                format!("{certs}{key}")
            };
            fake.add_certificate_version(
                VAULT,
                CertificateSeed {
                    name: format!("pem-{chain}-{label}"),
                    cer: cer(&format!("{chain}/leaf.pem")),
                    secret_value: value,
                    content_type: "application/x-pem-file".into(),
                    key: None,
                    enabled: true,
                },
            )
            .expect("pem");
        }
    }
    for (name, fixture_name, kty, crv) in KEYS {
        let mut seed = jwk(fixture_name);
        seed.name = (*name).into();
        if let Some(kty) = kty {
            seed.kty = (*kty).into();
        }
        if let Some(crv) = crv {
            seed.crv = Some((*crv).into());
        }
        fake.add_key_version(VAULT, seed).expect("key");
    }
    // Three versions of a certificate and of a key for history.
    for chain in ["rsa", "ec", "rsa"] {
        let bytes = std::fs::read(pki(&format!("{chain}-3des.pfx"))).expect("PKCS#12 fixture");
        let mut seed = certificate("hist-cert", &bytes, &format!("{chain}/leaf.pem"));
        seed.key = Some(jwk(if chain == "rsa" { "rsa2048" } else { "ec-p256" }));
        fake.add_certificate_version(VAULT, seed)
            .expect("history cert");
    }
    for fixture_name in ["rsa2048", "ec-p384", "ec-p521"] {
        let mut seed: KeySeed = jwk(fixture_name);
        seed.name = "hist-key".into();
        fake.add_key_version(VAULT, seed).expect("history key");
    }
    Vault { multi }
}

fn pki(path: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/pki")
        .join(path)
}

/// A PEM fixture's text.
fn text(path: &str) -> String {
    std::fs::read_to_string(pki(path)).expect("PEM fixture")
}

/// The DER of a PEM certificate fixture, base64: a bundle's `cer`.
fn cer(path: &str) -> String {
    text(path)
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .collect()
}

fn certificate(name: &str, pfx: &[u8], leaf: &str) -> CertificateSeed {
    CertificateSeed {
        name: name.into(),
        cer: cer(leaf),
        secret_value: B64.encode(pfx),
        content_type: "application/x-pkcs12".into(),
        key: None,
        enabled: true,
    }
}

/// Every case, from the tables below.
fn corpus(vault: &Vault, stack_env: &str) -> Vec<Case> {
    let mut cases = vec![Case::blog()];
    cases.extend(type_format_encoding());
    cases.extend(versions_and_history(vault));
    cases.extend(aliases_and_permissions());
    cases.extend(certificates_and_keys());
    cases.extend(identity_modes());
    cases.extend(clouds(stack_env));
    cases.extend(validation_errors());
    cases
}

/// Object type × `objectFormat` × `objectEncoding`, each on an object whose
/// value suits the encoding (so the successes are exercised too).
fn type_format_encoding() -> Vec<Case> {
    let formats = ["", "pem", "pfx", "PFX", "der"];
    let encodings = ["", "utf-8", "base64", "hex", "HEX", "ascii"];
    let mut cases = Vec::new();
    for (kind, object) in [
        ("secret", "plain"),
        ("cert-backed-secret", "pfx-rsa-kv"),
        ("cert", "pfx-rsa-kv"),
        ("key", "k-ec256"),
    ] {
        for format in formats {
            for encoding in encodings {
                let name = match (kind, encoding.to_ascii_lowercase().as_str()) {
                    ("secret", "base64") => "b64",
                    ("secret", "hex") => "hexv",
                    _ => object,
                };
                let object_type = if kind == "cert-backed-secret" {
                    "secret"
                } else {
                    kind
                };
                let mut entry = format!("objectName: {name}\nobjectType: {object_type}");
                if !format.is_empty() {
                    entry.push_str(&format!("\nobjectFormat: {format}"));
                }
                if !encoding.is_empty() {
                    entry.push_str(&format!("\nobjectEncoding: {encoding}"));
                }
                cases.push(Case::objects(
                    format!("tfe/{kind}/format={format}/encoding={encoding}"),
                    &[&entry],
                ));
            }
        }
    }
    cases
}

/// Explicit versions (enabled, disabled, unknown, `latest`) and
/// `objectVersionHistory` of a secret, a certificate and a key.
fn versions_and_history(vault: &Vault) -> Vec<Case> {
    let mut cases = Vec::new();
    let versions = [
        ("v1", vault.multi[0].clone()),
        ("v2-disabled", vault.multi[1].clone()),
        ("v4", vault.multi[3].clone()),
        ("v4-upper", vault.multi[3].to_ascii_uppercase()),
        ("latest", "latest".into()),
        ("unknown", "0123456789abcdef0123456789abcdef".into()),
    ];
    for (label, version) in &versions {
        cases.push(Case::objects(
            format!("version/secret/{label}"),
            &[&format!(
                "objectName: multi\nobjectType: secret\nobjectVersion: {version}"
            )],
        ));
    }
    for (object, object_type) in [
        ("multi", "secret"),
        ("hist-cert", "cert"),
        ("hist-cert", "secret"),
        ("hist-key", "key"),
    ] {
        for depth in [1, 2, 3, 5] {
            cases.push(Case::objects(
                format!("history/{object_type}/{object}/depth={depth}"),
                &[&format!(
                    "objectName: {object}\nobjectType: {object_type}\nobjectVersionHistory: {depth}"
                )],
            ));
        }
    }
    for (label, version) in &versions {
        cases.push(Case::objects(
            format!("history/secret/multi/from={label}"),
            &[&format!(
                "objectName: multi\nobjectType: secret\nobjectVersion: {version}\nobjectVersionHistory: 3"
            )],
        ));
    }
    cases
}

/// `objectAlias` with directories (and with history), and `filePermission`.
fn aliases_and_permissions() -> Vec<Case> {
    let mut cases = Vec::new();
    for (label, alias) in [
        ("plain", "renamed"),
        ("dir", "dir/file.txt"),
        ("deep", "a/b/c/d.txt"),
        ("dot-dir", ".hidden/file"),
        ("parent", "../escape"),
        ("inner-parent", "a/../b"),
        ("absolute", "/etc/passwd"),
        ("trailing-slash", "dir/"),
    ] {
        cases.push(Case::objects(
            format!("alias/{label}"),
            &[&format!(
                "objectName: plain\nobjectType: secret\nobjectAlias: {alias}"
            )],
        ));
    }
    cases.push(Case::objects(
        "alias/history-dir".into(),
        &["objectName: multi\nobjectType: secret\nobjectAlias: hist/multi\nobjectVersionHistory: 2"],
    ));
    cases.push(Case::objects(
        "alias/two-objects-one-dir".into(),
        &[
            "objectName: plain\nobjectType: secret\nobjectAlias: d/one",
            "objectName: b64\nobjectType: secret\nobjectAlias: d/two",
        ],
    ));
    cases.push(Case::objects(
        "alias/same-file-twice".into(),
        &[
            "objectName: plain\nobjectType: secret\nobjectAlias: same",
            "objectName: b64\nobjectType: secret\nobjectAlias: same",
        ],
    ));
    for (label, mode) in [
        ("0600", "0600"),
        ("0644", "0644"),
        ("0400", "0400"),
        ("777", "777"),
        ("0755-quoted", "\"0755\""),
        ("decimal-like", "420"),
        ("invalid", "abc"),
        ("too-large", "07777"),
    ] {
        cases.push(Case::objects(
            format!("permission/{label}"),
            &[&format!(
                "objectName: plain\nobjectType: secret\nfilePermission: {mode}"
            )],
        ));
    }
    cases
}

/// PKCS#12 flavours (as a secret, passed through as `pfx`, as a cert),
/// chains in every order, PEM certificate-backed secrets, keys of every
/// kty and curve.
fn certificates_and_keys() -> Vec<Case> {
    let mut cases = Vec::new();
    for (name, _, _) in PFX_FLAVOURS {
        for (label, extra) in [
            ("secret", ""),
            ("secret-pfx", "\nobjectFormat: pfx"),
            (
                "secret-pfx-base64",
                "\nobjectFormat: pfx\nobjectEncoding: base64",
            ),
            ("cert", ""),
        ] {
            let object_type = if label == "cert" { "cert" } else { "secret" };
            cases.push(Case::objects(
                format!("pkcs12/{name}/{label}"),
                &[&format!(
                    "objectName: pfx-{name}\nobjectType: {object_type}{extra}"
                )],
            ));
        }
    }
    for chain in CHAINS {
        for order in ORDERS {
            let name = format!("ord-{chain}-{}", order.join("-"));
            cases.push(Case::objects(
                format!("chain-order/{chain}/{}", order.join("-")),
                &[&format!("objectName: {name}\nobjectType: secret")],
            ));
        }
        for label in ["key-first", "key-last"] {
            for (what, extra) in [("secret", ""), ("secret-pfx", "\nobjectFormat: pfx")] {
                cases.push(Case::objects(
                    format!("pem-content/{chain}/{label}/{what}"),
                    &[&format!(
                        "objectName: pem-{chain}-{label}\nobjectType: secret{extra}"
                    )],
                ));
            }
        }
    }
    for (name, _, _, _) in KEYS {
        cases.push(Case::objects(
            format!("key/{name}"),
            &[&format!("objectName: {name}\nobjectType: key")],
        ));
    }
    cases.push(Case::objects(
        "key/cert-backed".into(),
        &["objectName: pfx-rsa-kv\nobjectType: key"],
    ));
    cases.push(Case::objects(
        "mixed/all-types".into(),
        &[
            "objectName: plain\nobjectType: secret",
            "objectName: pfx-ec-legacy\nobjectType: cert\nobjectAlias: tls/cert.pem",
            "objectName: pfx-ec-legacy\nobjectType: secret\nobjectAlias: tls/bundle.pem",
            "objectName: k-rsa2048\nobjectType: key\nobjectAlias: keys/rsa.pub",
            "objectName: multiline\nobjectType: secret",
        ],
    ));
    cases
}

/// SecretProviderClass parameters a case changes (`""` removes one).
type Params = &'static [(&'static str, &'static str)];

/// Every identity mode the fake plays, with a success and a failure each.
fn identity_modes() -> Vec<Case> {
    let blog = "objectName: MySecretPassword\nobjectType: secret";
    let mut cases = Vec::new();
    let table: &[(&str, Ident, Params)] = &[
        ("workload/ok", Ident::Workload, &[]),
        (
            "workload/unknown-client",
            Ident::Workload,
            &[("clientID", "00000000-0000-4000-8000-00000000dead")],
        ),
        ("workload/no-token", Ident::None, &[]),
        (
            "workload/wrong-tenant",
            Ident::Workload,
            &[("tenantId", "00000000-0000-4000-8000-0000000000aa")],
        ),
        (
            "service-principal/ok",
            Ident::ServicePrincipal(fake_azure::BLOG_CLIENT_SECRET),
            &[("clientID", "")],
        ),
        (
            "service-principal/wrong-secret",
            Ident::ServicePrincipal("not-the-secret"),
            &[("clientID", "")],
        ),
        (
            "vm-managed-identity/system",
            Ident::None,
            &[("clientID", ""), ("useVMManagedIdentity", "true")],
        ),
        (
            "vm-managed-identity/user",
            Ident::None,
            &[
                ("clientID", ""),
                ("useVMManagedIdentity", "true"),
                ("userAssignedIdentityID", MI_USER_1),
            ],
        ),
        (
            "vm-managed-identity/unknown-user",
            Ident::None,
            &[
                ("clientID", ""),
                ("useVMManagedIdentity", "true"),
                (
                    "userAssignedIdentityID",
                    "00000000-0000-4000-8000-00000000beef",
                ),
            ],
        ),
        (
            "pod-identity/ok",
            Ident::None,
            &[("clientID", ""), ("usePodIdentity", "true")],
        ),
        (
            "pod-identity/with-vm-identity",
            Ident::None,
            &[
                ("clientID", ""),
                ("usePodIdentity", "true"),
                ("useVMManagedIdentity", "true"),
            ],
        ),
        ("no-identity", Ident::None, &[("clientID", "")]),
        (
            "identity-binding/ok",
            Ident::IdentityBinding,
            &[("clientID", IB_CLIENT), ("useAzureTokenProxy", "true")],
        ),
        (
            "identity-binding/no-client-id",
            Ident::IdentityBinding,
            &[("clientID", ""), ("useAzureTokenProxy", "true")],
        ),
        (
            "identity-binding/no-binding-token",
            Ident::Workload,
            &[("clientID", IB_CLIENT), ("useAzureTokenProxy", "true")],
        ),
        (
            "identity-binding/not-federated",
            Ident::IdentityBinding,
            &[
                ("clientID", fake_azure::BLOG_CLIENT_ID),
                ("useAzureTokenProxy", "true"),
            ],
        ),
        (
            "identity-binding/with-pod-identity",
            Ident::IdentityBinding,
            &[
                ("clientID", IB_CLIENT),
                ("useAzureTokenProxy", "true"),
                ("usePodIdentity", "true"),
            ],
        ),
    ];
    for (name, ident, params) in table {
        let mut case = Case::objects(format!("identity/{name}"), &[blog]);
        case.ident = ident.clone();
        case.params = params
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        cases.push(case);
    }
    let mut unbound = Case::objects("identity/pod-identity/unbound-pod".into(), &[blog]);
    unbound.ident = Ident::None;
    unbound.pod_name = Some("no-binding-pod".into());
    unbound.params = vec![
        ("clientID".into(), String::new()),
        ("usePodIdentity".into(), "true".into()),
    ];
    cases.push(unbound);
    cases
}

/// `cloudName` values (case-insensitive), Azure Stack from its file.
fn clouds(stack_env: &str) -> Vec<Case> {
    let blog = "objectName: MySecretPassword\nobjectType: secret";
    let mut cases = Vec::new();
    for cloud in [
        "AzurePublicCloud",
        "azurepubliccloud",
        "AzureCloud",
        "AzureUSGovernmentCloud",
        "AzureChinaCloud",
        "AzureGermanCloud",
        "Mars",
    ] {
        let mut case = Case::objects(format!("cloud/{cloud}"), &[blog]);
        case.params = vec![("cloudName".into(), cloud.into())];
        cases.push(case);
    }
    for (label, file) in [
        ("with-file", stack_env.to_owned()),
        ("missing-file", "/nonexistent/azurestack.json".to_owned()),
    ] {
        let mut case = Case::objects(format!("cloud/AzureStackCloud/{label}"), &[blog]);
        case.params = vec![
            ("cloudName".into(), "AzureStackCloud".into()),
            ("cloudEnvFileName".into(), file),
        ];
        cases.push(case);
    }
    cases
}

/// Parameters and objects upstream refuses, and objects Key Vault does not
/// have.
fn validation_errors() -> Vec<Case> {
    let blog = "objectName: MySecretPassword\nobjectType: secret";
    let mut cases = Vec::new();
    let params: &[(&str, Params)] = &[
        ("no-keyvault-name", &[("keyvaultName", "")]),
        ("no-tenant", &[("tenantId", "")]),
        (
            "tenant-upper-key",
            &[("tenantId", ""), ("tenantID", fake_azure::BLOG_TENANT_ID)],
        ),
        ("vault-name-invalid", &[("keyvaultName", "bad_name!")]),
        (
            "vault-name-too-long",
            &[("keyvaultName", "a234567890123456789012345")],
        ),
        ("vault-unknown", &[("keyvaultName", "nosuchvault")]),
        ("bool-invalid", &[("usePodIdentity", "yes")]),
        ("bool-vm-invalid", &[("useVMManagedIdentity", "maybe")]),
        ("bool-upper", &[("useVMManagedIdentity", "FALSE")]),
        ("objects-empty-array", &[("objects", "array: []")]),
        ("objects-not-yaml", &[("objects", "array: [unclosed")]),
        ("objects-no-array", &[("objects", "items:\n  - x")]),
        (
            "objects-entry-not-yaml",
            &[("objects", "array:\n  - \"objectName: [a\"")],
        ),
        ("objects-missing", &[("objects", "")]),
        (
            "client-id-misspelled",
            &[("clientID", ""), ("clientId", fake_azure::BLOG_CLIENT_ID)],
        ),
        (
            "values-trimmed",
            &[("keyvaultName", "  kv-blogpost-jx01  ")],
        ),
    ];
    for (name, changes) in params {
        let mut case = Case::objects(format!("invalid/params/{name}"), &[blog]);
        case.params = changes
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        cases.push(case);
    }
    for (name, entry) in [
        ("type-unknown", "objectName: plain\nobjectType: blob"),
        ("type-upper", "objectName: plain\nobjectType: Secret"),
        ("type-missing", "objectName: plain"),
        ("name-missing", "objectType: secret"),
        ("name-empty", "objectName: \"\"\nobjectType: secret"),
        (
            "secret-not-found",
            "objectName: nosuchsecret\nobjectType: secret",
        ),
        ("key-not-found", "objectName: nosuchkey\nobjectType: key"),
        ("cert-not-found", "objectName: nosuchcert\nobjectType: cert"),
        (
            "history-not-a-number",
            "objectName: multi\nobjectType: secret\nobjectVersionHistory: two",
        ),
        (
            "history-negative",
            "objectName: multi\nobjectType: secret\nobjectVersionHistory: -1",
        ),
        (
            "unknown-field",
            "objectName: plain\nobjectType: secret\nobjectColour: blue",
        ),
    ] {
        cases.push(Case::objects(format!("invalid/object/{name}"), &[entry]));
    }
    cases.push(Case::objects(
        "invalid/object/second-fails".into(),
        &[blog, "objectName: nosuchsecret\nobjectType: secret"],
    ));
    for (name, key) in [
        ("no-pod-name", "csi.storage.k8s.io/pod.name"),
        ("no-pod-namespace", "csi.storage.k8s.io/pod.namespace"),
    ] {
        let mut case = Case::objects(format!("invalid/attributes/{name}"), &[blog]);
        case.drop_attributes = vec![key.into()];
        cases.push(case);
    }
    cases
}

// === the judge itself ===

/// Request ids and timestamps are masked, line breaks collapsed; nothing
/// else changes.
#[test]
fn normalise_masks_only_ids_timestamps_and_whitespace() {
    assert_eq!(
        diff::normalise(
            "AADSTS700016: not found.\r\nTrace ID: 0b1c2d3e-4f50-6172-8394-a5b6c7d8e9f0\nTimestamp: 2026-12-02 15:04:05Z x"
        ),
        "AADSTS700016: not found. Trace ID: <id> Timestamp: <time> x"
    );
    assert_eq!(
        diff::normalise("at 2026-12-02T15:04:05.123456Z, id 4f6f3c2a-1b9e-4f0e-9d8a-0c1b2d3e4f50x"),
        "at <time>, id 4f6f3c2a-1b9e-4f0e-9d8a-0c1b2d3e4f50x"
    );
    assert_eq!(
        diff::normalise("objectVersion:abc123"),
        "objectVersion:abc123"
    );
}

#[test]
fn glob_patterns_match_case_names() {
    assert!(diff::glob("history/*", "history/secret/multi/depth=2"));
    assert!(diff::glob("*/depth=5", "history/key/hist-key/depth=5"));
    assert!(diff::glob("pkcs12/*-aes/secret", "pkcs12/rsa-aes/secret"));
    assert!(!diff::glob("pkcs12/*-aes/secret", "pkcs12/rsa-aes/cert"));
    assert!(diff::glob("blog", "blog"));
    assert!(!diff::glob("blog", "blog/x"));
}

/// An unlisted difference fails, a listed one passes, and a row whose
/// cases all agree (or that names no case) fails.
#[test]
fn judge_fails_unlisted_and_stale_differences() {
    let table = format!(
        "x\n{}\n| id | cases | what | why |\n|---|---|---|---|\n| D1 | `a/*` | text | r |\n| D2 | `b` | text | r |\n| D3 | `zzz` | text | r |\n{}\n",
        diff::TABLE_BEGIN,
        diff::TABLE_END
    );
    let listed = diff::parse_table(&table).expect("parses");
    assert_eq!(listed.len(), 3);
    let failed = |message: &str| diff::Outcome::Failed {
        code: tonic::Code::Unknown,
        message: message.into(),
    };
    let result = |name: &str, ours: &str, theirs: &str| diff::CaseResult {
        case: diff::Case::objects(name.into(), &[]),
        ours: failed(ours),
        theirs: failed(theirs),
    };
    let results = [
        result("a/1", "x", "y"),
        result("b", "same", "same"),
        result("c", "x", "y"),
    ];
    let report = diff::judge(&results, &listed);
    let all = report.failures.join("\n");
    assert_eq!(report.failures.len(), 4, "{all}");
    assert!(all.contains("D3: its patterns"), "{all}");
    assert!(all.contains("c: differs from upstream"), "{all}");
    assert!(
        all.contains("b: listed as D2 but both answer alike"),
        "{all}"
    );
    assert!(all.contains("D2: no longer shows up"), "{all}");
    assert!(!all.contains("D1"), "{all}");
}
