//! The blog walkthrough end to end, and the Mount contract: the parameters
//! a mount reads (exact keys, Go booleans, pod information first), one file
//! per object with its path, mode and object version, objects in
//! declaration order, and all-or-nothing failures whose messages name the
//! object, the identity and the Azure error code.

use std::time::Duration;

use base64::Engine as _;

use tonic::Code;

use crate::support::driver::{Pod, SecretProviderClass};
use crate::support::harness::{BLOG_SPC, Harness, failure, ids};
use crate::support::objects::{B64, fixture, mount, objects, pfx_certificate};
use crate::support::pods::{SECRET, error_message, spc_reading, start_with_secrets};

const VAULT: &str = "kv-blogpost-jx01";

fn blog_spc() -> SecretProviderClass {
    crate::support::driver::spc_from_yaml(BLOG_SPC).expect("blog SPC parses")
}

// === the blog walkthrough ===

#[tokio::test]
async fn blog_walkthrough_mounts_my_secret_password() {
    let harness = Harness::start().await;
    let version = harness
        .fake
        .set_secret(VAULT, "MySecretPassword", "s3cr3t-from-the-fake", None)
        .unwrap();
    harness.fake.reset_counters();

    let response = harness
        .mount_spc(&blog_spc(), &Pod::blog())
        .await
        .expect("mount succeeds");

    assert_eq!(response.files.len(), 1, "exactly one file");
    let file = &response.files[0];
    assert_eq!(file.path, "MySecretPassword");
    assert_eq!(file.mode, 0o644);
    assert_eq!(file.contents, b"s3cr3t-from-the-fake");
    assert_eq!(response.object_version.len(), 1);
    assert_eq!(response.object_version[0].id, "secret/MySecretPassword");
    assert_eq!(response.object_version[0].version, version);
    assert!(response.error.is_none());

    let counters = harness.fake.counters();
    assert_eq!(
        counters.token_requests_total(),
        1,
        "one token exchange: {counters:?}"
    );
    assert_eq!(
        counters.challenges, 0,
        "bearer sent up front, no 401 round trip: {counters:?}"
    );
    assert_eq!(counters.keyvault_requests_total(), 1, "{counters:?}");
}

#[tokio::test]
async fn blog_sync_variant_feeds_secret_blog_post_password() {
    let harness = Harness::start().await;
    let spc = crate::support::driver::spc_from_yaml(include_str!(
        "../deploy/examples/secretproviderclass-sync.yaml"
    ))
    .unwrap();
    let response = harness
        .mount_spc(&spc, &Pod::blog())
        .await
        .expect("mount succeeds");
    let synced =
        crate::support::driver::synced_secrets(&spc, &response).expect("every key has its file");
    assert_eq!(synced.len(), 1);
    let (name, kind, data) = &synced[0];
    assert_eq!(
        (name.as_str(), kind.as_str()),
        ("secret-blog-post", "Opaque")
    );
    assert_eq!(
        data,
        &vec![(
            "Password".to_owned(),
            fake_azure::BLOG_SECRET_VALUE.as_bytes().to_vec()
        )]
    );
}

// === parameters ===

/// Keys are exact (case-sensitive), values trimmed, unknown
/// keys ignored.
#[tokio::test]
async fn parameter_keys_are_exact_and_values_trimmed() {
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

/// Go `ParseBool` semantics and error text.
#[tokio::test]
async fn booleans_use_go_parse_bool() {
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

/// Pod name and namespace are required, checked first.
#[tokio::test]
async fn pod_name_and_namespace_are_checked_first() {
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

/// An empty `array` mounts nothing, successfully, without
/// any request.
#[tokio::test]
async fn an_empty_objects_array_mounts_nothing() {
    let harness = Harness::start().await;
    harness.fake.reset_counters();
    let response = harness
        .mount_spc(&Harness::blog_spc_with_objects("array: []\n"), &Pod::blog())
        .await
        .expect("empty mount succeeds");
    assert!(response.files.is_empty() && response.object_version.is_empty());
    assert_eq!(harness.fake.counters().token_requests_total(), 0);
}

/// Validation errors keep upstream's texts and wrapping.
#[tokio::test]
async fn validation_errors_use_upstream_texts() {
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

// === files and object versions ===

/// Issue 12: two objects writing one file mount, as upstream: both files
/// are returned in declaration order (the driver writes through a map keyed
/// by path, so the later one wins), one warning names both objects, and the
/// metric counts it.
#[tokio::test]
async fn two_objects_writing_one_file_both_return_and_the_last_wins() {
    let harness = Harness::start().await;
    harness
        .fake
        .add_secret_version(VAULT, fake_azure::SecretSeed::new("Other", "other value"))
        .unwrap();
    let response = mount(
        &harness,
        &[
            "objectName: MySecretPassword\nobjectType: secret",
            "objectName: Other\nobjectType: secret\nobjectAlias: MySecretPassword",
        ],
    )
    .await
    .expect("mounts as with upstream");
    let paths: Vec<&str> = response.files.iter().map(|f| f.path.as_str()).collect();
    assert_eq!(paths, ["MySecretPassword", "MySecretPassword"]);
    let got: Vec<String> = ids(&response).into_iter().map(|(id, _)| id).collect();
    assert_eq!(got, ["secret/MySecretPassword", "secret/Other"]);
    let dir = tempfile::tempdir().unwrap();
    crate::support::driver::write_files(dir.path(), &response).unwrap();
    assert_eq!(
        std::fs::read_to_string(dir.path().join("MySecretPassword")).unwrap(),
        "other value"
    );
    let logs = harness.logs();
    let warnings: Vec<&str> = logs
        .lines()
        .filter(|l| l.contains("two objects write the same file"))
        .collect();
    assert_eq!(warnings.len(), 1, "{logs}");
    assert!(
        warnings[0].contains("objectName:MySecretPassword")
            && warnings[0].contains("objectName:Other"),
        "{logs}"
    );
    let scrape = harness.scrape().await;
    assert!(
        scrape
            .lines()
            .any(|l| l == "akv_duplicate_output_paths_total 1"),
        "{scrape}"
    );
}

/// Path = alias, else name; mode = octal `filePermission`,
/// else the request's; an invalid permission is an error (a deliberate
/// difference: upstream used mode 0).
#[tokio::test]
async fn path_is_the_alias_and_mode_the_file_permission() {
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

/// One object version per file, `id = <type>/<name>`, version
/// = the resolved Key Vault version id even when none was asked for.
#[tokio::test]
async fn one_object_version_per_file_with_the_resolved_version() {
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

#[tokio::test]
async fn objects_come_back_in_declaration_order_whatever_order_they_arrive_in() {
    let harness = start_with_secrets(4, &[]).await;
    harness
        .fake
        .set_object_latency("s0", Duration::from_millis(600));
    harness
        .fake
        .set_object_latency("s1", Duration::from_millis(300));
    let response = harness
        .mount_pod(&spc_reading(&["s0", "s1", "s2", "s3"]), 0)
        .await
        .expect("mount succeeds");
    let paths: Vec<&str> = response.files.iter().map(|f| f.path.as_str()).collect();
    assert_eq!(paths, ["s0", "s1", "s2", "s3"]);
    let ids: Vec<&str> = response
        .object_version
        .iter()
        .map(|v| v.id.as_str())
        .collect();
    assert_eq!(ids, ["secret/s0", "secret/s1", "secret/s2", "secret/s3"]);
}

// === failures ===

#[tokio::test]
async fn missing_secret_names_the_object_and_code() {
    let harness = Harness::start().await;
    let spc = Harness::blog_spc_with_objects(
        "array:\n  - |\n    objectName: NoSuchSecret\n    objectType: secret\n",
    );
    let status = harness
        .mount_spc(&spc, &Pod::blog())
        .await
        .expect_err("mount fails");
    assert_eq!(status.code(), Code::Unknown);
    assert_eq!(
        status.message().split(": keyvault").next().unwrap(),
        "failed to mount objects, error: failed to get objectType:secret, objectName:NoSuchSecret, objectVersion:"
    );
    assert!(
        status
            .message()
            .contains("keyvault kv-blogpost-jx01 answered 404 SecretNotFound"),
        "{}",
        status.message()
    );
}

#[tokio::test]
async fn parent_directory_alias_is_rejected_before_any_request() {
    let harness = Harness::start().await;
    harness.fake.reset_counters();
    let spc = Harness::blog_spc_with_objects(
        "array:\n  - |\n    objectName: MySecretPassword\n    objectType: secret\n    objectAlias: ../x\n",
    );
    let status = harness
        .mount_spc(&spc, &Pod::blog())
        .await
        .expect_err("mount fails");
    assert_eq!(
        status.message(),
        "failed to mount objects, error: failed to get objectType:secret, objectName:MySecretPassword, objectVersion:: file name must not contain '..'"
    );
    let counters = harness.fake.counters();
    assert_eq!(
        counters.token_requests_total() + counters.keyvault_requests_total(),
        0,
        "{counters:?}"
    );
}

#[tokio::test]
async fn identity_without_access_gets_forbidden() {
    let mut seed = fake_azure::Seed::blog_walkthrough(crate::support::harness::ISSUER);
    seed.vaults[0].access.clear();
    let harness = Harness::start_with(seed, &[]).await;
    let status = harness
        .mount_spc(&blog_spc(), &Pod::blog())
        .await
        .expect_err("forbidden");
    assert!(
        status.message().contains("answered 403 Forbidden"),
        "{}",
        status.message()
    );
    assert!(
        status.message().contains("objectName:MySecretPassword"),
        "{}",
        status.message()
    );
}

#[tokio::test]
async fn all_or_nothing_when_one_object_fails() {
    let harness = Harness::start().await;
    let spc = Harness::blog_spc_with_objects(
        "array:\n  - |\n    objectName: MySecretPassword\n    objectType: secret\n  - |\n    objectName: NoSuchSecret\n    objectType: secret\n",
    );
    let status = harness
        .mount_spc(&spc, &Pod::blog())
        .await
        .expect_err("no partial mount");
    assert!(
        status.message().contains("objectName:NoSuchSecret"),
        "{}",
        status.message()
    );
}

/// Status Unknown, `failed to mount objects, error: ` prefix,
/// per-object wrapping, and no partial mount (a bad key after good
/// objects fails the whole mount). Hostile content (a corrupt PFX) is an
/// error naming the object, never a crash.
#[tokio::test]
async fn failures_are_wrapped_and_all_or_nothing() {
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

#[tokio::test]
async fn the_first_error_cancels_the_other_requests() {
    let harness = start_with_secrets(8, &["--max-concurrent-fetches=4"]).await;
    // Warm connections first: on a cold host the first request goes alone
    // and the others wait for its answer (http/warmup.rs).
    harness
        .mount_pod(&spc_reading(&[SECRET]), 99)
        .await
        .expect("mount");
    harness.fake.reset_counters();
    let slow = Duration::from_millis(1500);
    for i in 0..8 {
        harness.fake.set_object_latency(&format!("s{i}"), slow);
    }
    let names = ["s0", "missing", "s1", "s2", "s3", "s4", "s5", "s6", "s7"];
    let message = error_message(harness.mount_pod(&spc_reading(&names), 0).await);
    assert!(message.contains("objectName:missing"), "{message}");
    // Had the mount waited for s0 (declared before the failing object),
    // its read would have completed and been counted by now.
    tokio::time::sleep(slow + Duration::from_millis(500)).await;
    assert_eq!(harness.gets(404), 1);
    assert_eq!(
        harness.gets(200),
        0,
        "the slow reads in flight were cancelled, the rest never sent: {:?}",
        harness.fake.counters()
    );
}
