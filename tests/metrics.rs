//! `/metrics` scraped and parsed: upstream's histogram names, labels and
//! buckets, our `akv_*` families, and every label value bounded.

use std::collections::BTreeMap;

use fake_azure::{Limit, Seed, Target};

use crate::support::driver::{self, Pod, SecretProviderClass};
use crate::support::harness::{BLOG_SPC, Harness, ISSUER, http_get};

fn blog_spc() -> SecretProviderClass {
    crate::support::driver::spc_from_yaml(BLOG_SPC).expect("blog SPC parses")
}

async fn start_with(args: &[&str]) -> Harness {
    Harness::start_with(Seed::blog_walkthrough(ISSUER), args).await
}

/// (metric, labels that must match, value).
type Expected<'a> = (&'a str, &'a [(&'a str, &'a str)], f64);

/// One sample of the text exposition.
#[derive(Debug)]
struct Sample {
    name: String,
    labels: BTreeMap<String, String>,
    value: f64,
}

fn parse_exposition(text: &str) -> Vec<Sample> {
    text.lines()
        .filter(|line| !line.starts_with('#') && !line.is_empty())
        .map(|line| {
            let (series, value) = line.rsplit_once(' ').expect("name value");
            let (name, labels) = match series.split_once('{') {
                Some((name, rest)) => (name, parse_labels(rest.trim_end_matches('}'))),
                None => (series, BTreeMap::new()),
            };
            Sample {
                name: name.to_owned(),
                labels,
                value: value.parse().expect("numeric value"),
            }
        })
        .collect()
}

fn parse_labels(text: &str) -> BTreeMap<String, String> {
    let mut labels = BTreeMap::new();
    let mut rest = text;
    while let Some((key, after)) = rest.split_once("=\"") {
        let mut value = String::new();
        let mut chars = after.char_indices();
        let mut end = after.len();
        while let Some((i, c)) = chars.next() {
            match c {
                '\\' => {
                    if let Some((_, escaped)) = chars.next() {
                        value.push(escaped);
                    }
                }
                '"' => {
                    end = i + 1;
                    break;
                }
                c => value.push(c),
            }
        }
        labels.insert(key.trim_start_matches(',').to_owned(), value);
        rest = &after[end..];
    }
    labels
}

/// The value of the first sample named `name` whose labels include `labels`.
fn value(samples: &[Sample], name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    samples
        .iter()
        .find(|s| {
            s.name == name
                && labels
                    .iter()
                    .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
        })
        .map(|s| s.value)
}

/// The label names of a sample other than `le`.
fn label_names(sample: &Sample) -> Vec<&str> {
    sample
        .labels
        .keys()
        .map(String::as_str)
        .filter(|k| *k != "le")
        .collect()
}

/// A success, a missing secret, a rejected identity and a request without
/// a pod name.
async fn four_mounts(harness: &Harness) {
    let pod = Pod::blog();
    // Both good-identity mounts present the very same projected token (as
    // kubelet does within its lifetime), so the second is a cache hit.
    let token = harness.token(&pod.namespace, &pod.service_account);
    let mount = |spc: &driver::SecretProviderClass| {
        let attributes = driver::attributes(spc, &pod, std::slice::from_ref(&token));
        harness.mount_raw(driver::mount_request(attributes, None, &pod))
    };
    mount(&blog_spc()).await.expect("ok");
    let missing = Harness::blog_spc_with_objects(
        "array:\n  - |\n    objectName: NoSuchSecret\n    objectType: secret\n",
    );
    mount(&missing).await.expect_err("404");
    let wrong_sa = Pod {
        service_account: "default".into(),
        ..Pod::blog()
    };
    let rejected = harness.mount_spc(&blog_spc(), &wrong_sa).await;
    rejected.expect_err("AADSTS70021");
    let no_pod = driver::mount_request("{}".into(), None, &pod);
    harness.mount_raw(no_pod).await.expect_err("no pod name");
}

#[tokio::test]
async fn upstream_histograms_keep_their_names_labels_and_buckets() {
    let harness = start_with(&[]).await;
    four_mounts(&harness).await;
    let text = harness.scrape().await;
    assert!(text.contains("# TYPE keyvault_request histogram"), "{text}");
    assert!(text.contains("# TYPE grpc_request histogram"), "{text}");
    let samples = parse_exposition(&text);

    let constant = ["os_type", "provider", "service_name"];
    let mut keyvault_labels = [&constant[..], &["object_type", "object_name", "error"]].concat();
    keyvault_labels.sort();
    let mut grpc_labels = [&constant[..], &["grpc_method", "grpc_code", "grpc_message"]].concat();
    grpc_labels.sort();
    for sample in &samples {
        let expected = if sample.name.starts_with("keyvault_request") {
            &keyvault_labels
        } else if sample.name.starts_with("grpc_request") {
            &grpc_labels
        } else {
            continue;
        };
        assert_eq!(&label_names(sample), expected, "{sample:?}");
        assert_eq!(sample.labels["provider"], "azure");
        assert_eq!(
            sample.labels["service_name"],
            "csi-secrets-store-provider-azure"
        );
        assert_eq!(sample.labels["os_type"], std::env::consts::OS);
    }

    let buckets: Vec<f64> = samples
        .iter()
        .filter(|s| s.name == "keyvault_request_bucket" && s.labels["le"] != "+Inf")
        .filter(|s| s.labels["object_name"] == "MySecretPassword")
        .map(|s| s.labels["le"].parse().unwrap())
        .collect();
    let upstream = [
        0.1, 0.2, 0.3, 0.4, 0.5, 1.0, 1.5, 2.0, 2.5, 3.0, 5.0, 10.0, 15.0, 30.0,
    ];
    assert_eq!(buckets, upstream);

    let mount = ("grpc_method", "/v1alpha1.CSIDriverProvider/Mount");
    let version = ("grpc_method", "/v1alpha1.CSIDriverProvider/Version");
    let expected: &[Expected<'_>] = &[
        (
            "keyvault_request_count",
            &[
                ("object_name", "MySecretPassword"),
                ("object_type", "secret"),
                ("error", ""),
            ],
            1.0,
        ),
        (
            "keyvault_request_count",
            &[("object_name", "NoSuchSecret"), ("error", "SecretNotFound")],
            1.0,
        ),
        (
            "grpc_request_count",
            &[mount, ("grpc_code", "OK"), ("grpc_message", "")],
            1.0,
        ),
        (
            "grpc_request_count",
            &[
                mount,
                ("grpc_code", "Unknown"),
                ("grpc_message", "SecretNotFound"),
            ],
            1.0,
        ),
        (
            "grpc_request_count",
            &[
                mount,
                ("grpc_code", "Unknown"),
                ("grpc_message", "AADSTS70021"),
            ],
            1.0,
        ),
        (
            "grpc_request_count",
            &[
                mount,
                ("grpc_code", "Unknown"),
                ("grpc_message", "InvalidParameters"),
            ],
            1.0,
        ),
    ];
    for (name, labels, want) in expected {
        assert_eq!(
            value(&samples, name, labels),
            Some(*want),
            "{name} {labels:?}\n{text}"
        );
    }
    let versions = value(
        &samples,
        "grpc_request_count",
        &[version, ("grpc_code", "OK")],
    );
    assert!(versions >= Some(1.0), "the harness's Version calls: {text}");
}

#[tokio::test]
async fn our_counters_and_gauges_count_what_happened() {
    let harness = start_with(&[]).await;
    four_mounts(&harness).await;
    let text = harness.scrape().await;
    let samples = parse_exposition(&text);
    let wi = ("mode", "workload_identity");
    let expected: &[Expected<'_>] = &[
        // The second good mount presents the same token: a cache hit.
        (
            "akv_token_requests_total",
            &[wi, ("result", "success")],
            1.0,
        ),
        (
            "akv_token_cache_lookups_total",
            &[wi, ("result", "hit")],
            1.0,
        ),
        (
            "akv_token_cache_lookups_total",
            &[wi, ("result", "miss")],
            2.0,
        ),
        (
            "akv_token_requests_total",
            &[wi, ("result", "AADSTS70021")],
            1.0,
        ),
        (
            "akv_http_requests_total",
            &[("service", "keyvault"), ("status_class", "2xx")],
            1.0,
        ),
        (
            "akv_http_requests_total",
            &[("service", "keyvault"), ("status_class", "4xx")],
            1.0,
        ),
        (
            "akv_http_requests_total",
            &[("service", "aad"), ("status_class", "2xx")],
            1.0,
        ),
        (
            "akv_http_requests_total",
            &[("service", "aad"), ("status_class", "4xx")],
            1.0,
        ),
        ("akv_mounts_in_flight", &[], 0.0),
        // The request without a pod name never reached the pipeline.
        ("akv_mount_objects_count", &[], 3.0),
    ];
    for (name, labels, want) in expected {
        assert_eq!(
            value(&samples, name, labels),
            Some(*want),
            "{name} {labels:?}\n{text}"
        );
    }
}

#[tokio::test]
async fn every_label_value_is_bounded() {
    let harness = start_with(&[]).await;
    four_mounts(&harness).await;
    harness.fake.fail_5xx(Target::KeyVault, 503, 1).unwrap();
    let _ = harness.mount_spc(&blog_spc(), &Pod::blog()).await;
    let text = harness.scrape().await;
    for sample in parse_exposition(&text) {
        for (key, value) in &sample.labels {
            assert!(
                value.len() <= 127 && !value.contains(char::is_whitespace),
                "unbounded label {key}={value:?} in {sample:?}"
            );
        }
    }
    assert!(!text.contains("kv-blogpost-jx01"), "no vault names: {text}");
    assert!(
        !text.contains(fake_azure::BLOG_TENANT_ID),
        "no tenants: {text}"
    );
    assert!(
        !text.contains(fake_azure::BLOG_CLIENT_ID),
        "no identities: {text}"
    );
}

#[tokio::test]
async fn throttled_key_vault_requests_are_counted() {
    let harness = start_with(&[]).await;
    harness
        .fake
        .throttle(Target::KeyVault, Some(1), Limit::Count(1));
    let _ = harness.mount_spc(&blog_spc(), &Pod::blog()).await;
    let samples = parse_exposition(&harness.scrape().await);
    let keyvault = ("service", "keyvault");
    let throttled = value(&samples, "akv_http_throttled_total", &[keyvault]);
    assert_eq!(throttled, Some(1.0));
    let client_errors = value(
        &samples,
        "akv_http_requests_total",
        &[keyvault, ("status_class", "4xx")],
    );
    assert!(client_errors >= Some(1.0));
}

#[tokio::test]
async fn metrics_and_health_can_share_one_port() {
    // Upstream would fail to bind the second listener; here one serves both.
    let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = probe.local_addr().unwrap().port();
    drop(probe);
    let healthz = format!("--healthz-port={port}");
    let metrics = format!("--prometheus-port={port}");
    let harness = start_with(&[&healthz, &metrics]).await;
    let address = harness.health_addr().await;
    assert_eq!(address.port(), port);
    assert_eq!(http_get(address, "/healthz").await, (200, "ok".into()));
    let (status, body) = http_get(address, "/metrics").await;
    assert_eq!(status, 200);
    assert!(body.contains("akv_mounts_in_flight"), "{body}");
}

/// As upstream, a version listing (`objectVersionHistory`) is recorded in
/// `keyvault_request` like a fetch: one listing plus one per version, and a
/// listing that fails with its error.
#[tokio::test]
async fn version_listings_are_recorded_as_keyvault_requests() {
    let harness = start_with(&[]).await;
    harness
        .fake
        .add_secret_version(
            crate::support::objects::VAULT,
            fake_azure::SecretSeed::new("MySecretPassword", "second"),
        )
        .unwrap();
    let history = Harness::blog_spc_with_objects(
        "array:\n  - |\n    objectName: MySecretPassword\n    objectType: secret\n    objectVersionHistory: 2\n",
    );
    let response = harness.mount_spc(&history, &Pod::blog()).await.expect("ok");
    assert_eq!(response.files.len(), 2);
    let missing = Harness::blog_spc_with_objects(
        "array:\n  - |\n    objectName: NoHistory\n    objectType: secret\n    objectVersionHistory: 2\n",
    );
    harness
        .mount_spc(&missing, &Pod::blog())
        .await
        .expect_err("404");

    let samples = parse_exposition(&harness.scrape().await);
    let count = |name: &str, error: &str| {
        value(
            &samples,
            "keyvault_request_count",
            &[("object_name", name), ("error", error)],
        )
    };
    assert_eq!(
        count("MySecretPassword", ""),
        Some(3.0),
        "1 listing + 2 gets"
    );
    assert_eq!(count("NoHistory", "SecretNotFound"), Some(1.0));
}
