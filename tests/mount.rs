//! The blog walkthrough end to end, and the Mount contract: one file per
//! object with the right path, mode and version; all-or-nothing failures
//! whose messages name the object, the identity and the Azure error code.

use tonic::Code;

use crate::driver::{Pod, SecretProviderClass};
use crate::util::{BLOG_SPC, Harness};

const VAULT: &str = "kv-blogpost-jx01";

fn blog_spc() -> SecretProviderClass {
    SecretProviderClass::from_yaml(BLOG_SPC).expect("blog SPC parses")
}

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
async fn wrong_service_account_fails_with_aadsts70021() {
    let harness = Harness::start().await;
    let pod = Pod {
        service_account: "default".into(),
        ..Pod::blog()
    };
    let status = harness
        .mount_spc(&blog_spc(), &pod)
        .await
        .expect_err("mount fails");
    assert_eq!(status.code(), Code::Unknown);
    let message = status.message();
    assert!(
        message.starts_with("failed to mount objects, error: "),
        "{message}"
    );
    assert!(message.contains("AADSTS70021"), "{message}");
    assert!(
        message.contains(fake_azure::BLOG_TENANT_ID),
        "names the tenant: {message}"
    );
    assert!(
        message.contains(fake_azure::BLOG_CLIENT_ID),
        "names the client id: {message}"
    );
    assert!(
        message.contains("login.microsoftonline.com"),
        "names the endpoint: {message}"
    );
    assert_eq!(harness.fake.counters().keyvault_requests_total(), 0);
}

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

#[tokio::test]
async fn identity_without_access_gets_forbidden() {
    let mut seed = fake_azure::Seed::blog_walkthrough(crate::util::ISSUER);
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
async fn no_token_or_secret_in_logs_at_highest_verbosity() {
    let harness = Harness::start_with(
        fake_azure::Seed::blog_walkthrough(crate::util::ISSUER),
        &["-v=9"],
    )
    .await;
    harness
        .fake
        .set_secret(
            VAULT,
            "MySecretPassword",
            "distinctive-secret-value-93",
            None,
        )
        .unwrap();
    let pod = Pod::blog();
    let token = harness.token(&pod.namespace, &pod.service_account);
    let attributes = crate::driver::attributes(&blog_spc(), &pod, std::slice::from_ref(&token));
    harness
        .mount_raw(crate::driver::mount_request(attributes, None, &pod))
        .await
        .expect("mount succeeds");
    // A failing mount too, so error paths are logged.
    let bad = Harness::blog_spc_with_objects(
        "array:\n  - |\n    objectName: nope\n    objectType: secret\n",
    );
    let _ = harness.mount_spc(&bad, &pod).await;
    let logs = harness.logs();
    assert!(
        logs.contains("mount succeeded"),
        "the mount is logged: {logs}"
    );
    assert!(
        !logs.contains("distinctive-secret-value-93"),
        "secret value leaked:\n{logs}"
    );
    let signature = token.token.rsplit('.').next().unwrap();
    assert!(
        !logs.contains(signature),
        "service-account token leaked:\n{logs}"
    );
}

#[tokio::test]
async fn service_principal_from_node_publish_secret_ref() {
    let harness = Harness::start().await;
    let mut spc = blog_spc();
    spc.parameters.remove("clientID");
    let pod = Pod::blog();
    let secrets: std::collections::BTreeMap<String, String> = [
        ("ClientID".to_owned(), fake_azure::BLOG_CLIENT_ID.to_owned()),
        (
            "clientsecret".to_owned(),
            fake_azure::BLOG_CLIENT_SECRET.to_owned(),
        ),
    ]
    .into();
    let attributes = crate::driver::attributes(&spc, &pod, &[]);
    let response = harness
        .mount_raw(crate::driver::mount_request(
            attributes,
            Some(&secrets),
            &pod,
        ))
        .await
        .expect("mount succeeds");
    assert_eq!(
        response.files[0].contents,
        fake_azure::BLOG_SECRET_VALUE.as_bytes()
    );
    let counters = harness.fake.counters();
    assert_eq!(
        counters.token_requests_with(fake_azure::grant::CLIENT_SECRET, fake_azure::OUTCOME_OK),
        1,
        "{counters:?}"
    );

    // Without the secret ref, the upstream error text.
    let attributes = crate::driver::attributes(&spc, &pod, &[]);
    let status = harness
        .mount_raw(crate::driver::mount_request(attributes, None, &pod))
        .await
        .expect_err("no identity");
    assert_eq!(
        status.message(),
        "failed to mount objects, error: failed to build auth config for mode None: failed to get credentials, nodePublishSecretRef secret is not set"
    );
}

#[tokio::test]
async fn blog_sync_variant_feeds_secret_blog_post_password() {
    let harness = Harness::start().await;
    let spc = SecretProviderClass::from_yaml(include_str!(
        "../deploy/examples/secretproviderclass-sync.yaml"
    ))
    .unwrap();
    let response = harness
        .mount_spc(&spc, &Pod::blog())
        .await
        .expect("mount succeeds");
    let synced = crate::driver::synced_secrets(&spc, &response).expect("every key has its file");
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
