//! Logs: one line per mount at the default level (pod, SecretProviderClass,
//! object count, duration, result), text or JSON, more with `-v`, and never
//! a service-account token, client secret, access token or secret value —
//! not in logs, not in errors, not in metrics, at the highest verbosity.

use std::collections::BTreeMap;

use akv_csi_provider::proto::MountRequest;
use fake_azure::{BLOG_CLIENT_ID, BLOG_CLIENT_SECRET, BLOG_SECRET_VALUE, Seed};

use crate::driver::{self, Pod, SecretProviderClass, ServiceAccountToken};
use crate::util::{BLOG_SPC, Harness, ISSUER, log_field};

fn blog_spc() -> SecretProviderClass {
    SecretProviderClass::from_yaml(BLOG_SPC).expect("blog SPC parses")
}

async fn start_with(args: &[&str]) -> Harness {
    let harness = Harness::start_with(Seed::blog_walkthrough(ISSUER), args).await;
    // Start-up lines (the admin listeners log asynchronously) are done.
    harness.metrics_addr().await;
    harness
}

/// Log lines written after `before` lines.
fn lines_after(harness: &Harness, before: usize) -> Vec<String> {
    harness
        .logs()
        .lines()
        .skip(before)
        .map(str::to_owned)
        .collect()
}

fn missing_secret_spc() -> SecretProviderClass {
    Harness::blog_spc_with_objects(
        "array:\n  - |\n    objectName: NoSuchSecret\n    objectType: secret\n",
    )
}

#[tokio::test]
async fn one_text_line_per_mount_at_the_default_level() {
    let harness = start_with(&[]).await;
    let before = harness.logs().lines().count();
    harness
        .mount_spc(&blog_spc(), &Pod::blog())
        .await
        .expect("mount succeeds");
    let lines = lines_after(&harness, before);
    assert_eq!(lines.len(), 1, "one line per mount: {lines:#?}");
    let line = &lines[0];
    assert!(
        line.contains(" INFO ") && line.contains("mount succeeded"),
        "{line}"
    );
    for (field, expected) in [
        ("namespace", "blog-post"),
        ("pod", "busybox-secrets-store-inline"),
        ("secret_provider_class", "azure-kv-password-provider"),
        ("objects", "1"),
        ("files", "1"),
    ] {
        assert_eq!(
            log_field(line, field).as_deref(),
            Some(expected),
            "{field} in {line}"
        );
    }
    let duration: u64 = log_field(line, "duration_ms").unwrap().parse().unwrap();
    assert!(duration < 60_000, "{line}");

    let before = harness.logs().lines().count();
    harness
        .mount_spc(&missing_secret_spc(), &Pod::blog())
        .await
        .expect_err("mount fails");
    let lines = lines_after(&harness, before);
    assert_eq!(lines.len(), 1, "one line per failed mount: {lines:#?}");
    let line = &lines[0];
    assert!(
        line.contains(" WARN ") && line.contains("mount failed"),
        "{line}"
    );
    assert_eq!(
        log_field(line, "code").as_deref(),
        Some("SecretNotFound"),
        "{line}"
    );
    assert!(
        line.contains("failed to get objectType:secret, objectName:NoSuchSecret"),
        "{line}"
    );
}

#[tokio::test]
async fn json_lines_carry_the_mount_fields() {
    let harness = start_with(&["--log-format-json"]).await;
    harness
        .mount_spc(&blog_spc(), &Pod::blog())
        .await
        .expect("mount succeeds");
    harness
        .mount_spc(&missing_secret_spc(), &Pod::blog())
        .await
        .expect_err("mount fails");
    let events: Vec<serde_json::Value> = harness
        .logs()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    let find = |message: &str| {
        events
            .iter()
            .find(|e| e["message"] == message)
            .unwrap_or_else(|| panic!("no {message:?} in {events:#?}"))
    };
    let ok = find("mount succeeded");
    assert_eq!(ok["level"], "INFO");
    assert_eq!(ok["namespace"], "blog-post");
    assert_eq!(ok["pod"], "busybox-secrets-store-inline");
    assert_eq!(ok["secret_provider_class"], "azure-kv-password-provider");
    assert_eq!(ok["objects"], 1);
    assert!(ok["duration_ms"].is_u64(), "{ok}");
    let failed = find("mount failed");
    assert_eq!(failed["level"], "WARN");
    assert_eq!(failed["code"], "SecretNotFound");
    assert!(
        failed["error"]
            .as_str()
            .unwrap()
            .starts_with("failed to get objectType:secret, objectName:NoSuchSecret"),
        "{failed}"
    );
}

#[tokio::test]
async fn verbose_logs_show_each_request_without_its_query() {
    let quiet = start_with(&[]).await;
    quiet.mount_spc(&blog_spc(), &Pod::blog()).await.unwrap();
    assert!(!quiet.logs().contains("azure request"), "{}", quiet.logs());

    let harness = start_with(&["-v=4"]).await;
    harness.mount_spc(&blog_spc(), &Pod::blog()).await.unwrap();
    let logs = harness.logs();
    let requests: Vec<&str> = logs
        .lines()
        .filter(|l| l.contains("azure request"))
        .collect();
    assert_eq!(requests.len(), 2, "token + secret: {logs}");
    assert!(
        requests
            .iter()
            .any(|l| l.contains("kv-blogpost-jx01.vault.azure.net/secrets/MySecretPassword/")),
        "{logs}"
    );
    assert!(
        requests.iter().all(|l| !l.contains("api-version")),
        "{logs}"
    );
    assert!(logs.contains("object fetched"), "{logs}");
}

/// A service-principal mount (nodePublishSecretRef) with `secret`.
fn service_principal_request(secret: &str) -> MountRequest {
    let mut spc = blog_spc();
    spc.parameters.remove("clientID");
    let pod = Pod::blog();
    let secrets = BTreeMap::from([
        ("clientid".to_owned(), BLOG_CLIENT_ID.to_owned()),
        ("clientsecret".to_owned(), secret.to_owned()),
    ]);
    driver::mount_request(driver::attributes(&spc, &pod, &[]), Some(&secrets), &pod)
}

fn workload_identity_request(
    spc: &SecretProviderClass,
    pod: &Pod,
    token: &ServiceAccountToken,
) -> MountRequest {
    let tokens = [token.clone()];
    driver::mount_request(driver::attributes(spc, pod, &tokens), None, pod)
}

async fn assert_nothing_secret_leaks(log_args: &[&str]) {
    const WRONG_SECRET: &str = "wrong-client-secret-9f8e7d";
    let harness = start_with(log_args).await;
    let pod = Pod::blog();
    let good_token = harness.token(&pod.namespace, &pod.service_account);
    let wrong_pod = Pod {
        service_account: "default".into(),
        ..Pod::blog()
    };
    let wrong_token = harness.token(&wrong_pod.namespace, &wrong_pod.service_account);

    let mut errors = Vec::new();
    let ok = harness
        .mount_raw(workload_identity_request(&blog_spc(), &pod, &good_token))
        .await
        .expect("workload identity mount");
    assert_eq!(ok.files[0].contents, BLOG_SECRET_VALUE.as_bytes());
    let failures = [
        workload_identity_request(&blog_spc(), &wrong_pod, &wrong_token),
        workload_identity_request(&missing_secret_spc(), &pod, &good_token),
        service_principal_request(WRONG_SECRET),
    ];
    for request in failures {
        let status = harness.mount_raw(request).await.expect_err("mount fails");
        errors.push(status.message().to_owned());
    }
    harness
        .mount_raw(service_principal_request(BLOG_CLIENT_SECRET))
        .await
        .expect("service principal mount");
    let metrics = harness.scrape().await;
    let logs = harness.logs();
    assert!(
        logs.contains("azure request") && logs.contains("object fetched"),
        "the run logged at debug level or finer: {logs}"
    );
    assert!(
        errors.iter().any(|e| e.contains("AADSTS70021")),
        "{errors:?}"
    );

    let access_tokens = harness.fake.issued_tokens();
    // One per identity (the cache serves repeats): workload identity and
    // service principal.
    assert!(access_tokens.len() >= 2, "{access_tokens:?}");
    let mut secrets: Vec<(&str, String)> = vec![
        ("service-account token", good_token.token.clone()),
        ("other service-account token", wrong_token.token.clone()),
        ("client secret", BLOG_CLIENT_SECRET.to_owned()),
        ("wrong client secret", WRONG_SECRET.to_owned()),
        ("secret value", BLOG_SECRET_VALUE.to_owned()),
        ("any JWT", "eyJ".to_owned()),
    ];
    secrets.extend(access_tokens.into_iter().map(|t| ("access token", t)));
    let outputs = [
        ("logs", logs),
        ("errors", errors.join("\n")),
        ("metrics", metrics),
    ];
    for (what, secret) in &secrets {
        for (place, text) in &outputs {
            assert!(!text.contains(secret.as_str()), "{what} found in {place}");
        }
    }
}

#[tokio::test]
async fn no_secret_in_text_logs_errors_or_metrics_at_the_highest_verbosity() {
    assert_nothing_secret_leaks(&["-v=10"]).await;
}

#[tokio::test]
async fn no_secret_in_json_logs_errors_or_metrics_at_the_highest_verbosity() {
    assert_nothing_secret_leaks(&["-v=10", "--log-format-json"]).await;
}
