//! Operating the provider like upstream: the argument lists of upstream's
//! static manifest and Helm chart, klog flags, `--version`, `/healthz`,
//! `/readyz`, and `/metrics` scraped and parsed (upstream's names, labels
//! and buckets; every label value bounded).

use std::collections::BTreeMap;
use std::time::Duration;

use fake_azure::{Limit, Seed, Target};

use crate::driver::{self, Pod, SecretProviderClass};
use crate::util::{BLOG_SPC, Harness, ISSUER, http_get, run_binary};

/// `deployment/provider-azure-installer.yaml` (v1.8.2) container args, less
/// `--endpoint` (the harness points it at a temporary socket).
const STATIC_MANIFEST_ARGS: [&str; 4] = [
    "--construct-pem-chain=true",
    "--healthz-port=8989",
    "--healthz-path=/healthz",
    "--healthz-timeout=5s",
];

/// The chart's `provider-azure-installer.yaml` args with every optional
/// value set (`logFormatJSON`, `logVerbosity`, `constructPEMChain`,
/// `linux.customUserAgent`, `writeCertAndKeyInSeparateFiles`), less
/// `--endpoint`.
const CHART_ARGS: [&str; 8] = [
    "--log-format-json=true",
    "-v=5",
    "--construct-pem-chain=true",
    "--custom-user-agent=csi-chart/1.8.2",
    "--healthz-port=8989",
    "--healthz-path=/healthz",
    "--healthz-timeout=5s",
    "--write-cert-and-key-in-separate-files=true",
];

/// Appended after upstream's lists: the health listener on a free port (a
/// repeated flag takes its last value, as in Go).
const FREE_HEALTHZ_PORT: &str = "--healthz-port=0";

fn blog_spc() -> SecretProviderClass {
    SecretProviderClass::from_yaml(BLOG_SPC).expect("blog SPC parses")
}

async fn start_with(args: &[&str]) -> Harness {
    Harness::start_with(Seed::blog_walkthrough(ISSUER), args).await
}

#[tokio::test]
async fn upstream_static_manifest_arguments_serve_health_and_mounts() {
    let args: Vec<&str> = STATIC_MANIFEST_ARGS
        .iter()
        .copied()
        .chain([FREE_HEALTHZ_PORT])
        .collect();
    let harness = start_with(&args).await;
    let health = harness.health_addr().await;
    assert_eq!(http_get(health, "/healthz").await, (200, "ok".into()));
    assert_eq!(http_get(health, "/readyz").await, (200, "ok".into()));
    assert_eq!(
        http_get(health, "/metrics").await.0,
        404,
        "metrics live on their own port"
    );
    harness
        .mount_spc(&blog_spc(), &Pod::blog())
        .await
        .expect("mount succeeds");
}

#[tokio::test]
async fn upstream_chart_arguments_with_every_value_set() {
    let args: Vec<&str> = CHART_ARGS
        .iter()
        .copied()
        .chain([FREE_HEALTHZ_PORT])
        .collect();
    let harness = start_with(&args).await;
    harness
        .mount_spc(&blog_spc(), &Pod::blog())
        .await
        .expect("mount succeeds");
    let health = harness.health_addr().await;
    assert_eq!(http_get(health, "/healthz").await, (200, "ok".into()));

    let agents = harness.fake.counters().user_agents;
    let ours = format!(
        "akv-csi-provider/{} csi-chart/1.8.2",
        env!("CARGO_PKG_VERSION")
    );
    assert!(
        agents.contains_key(&ours),
        "User-Agent {ours:?} in {agents:?}"
    );

    let logs = harness.logs();
    for line in logs.lines() {
        serde_json::from_str::<serde_json::Value>(line)
            .unwrap_or_else(|e| panic!("--log-format-json line is not JSON ({e}): {line}"));
    }
    assert!(
        logs.contains("\"level\":\"DEBUG\""),
        "-v=5 logs at debug: {logs}"
    );
}

#[tokio::test]
async fn klog_flags_and_pprof_flags_are_accepted() {
    let harness = start_with(&[
        "-logtostderr",
        "-alsologtostderr=true",
        "-log_dir",
        "/var/log/provider",
        "-vmodule=server=4",
        "-stderrthreshold=INFO",
        "-skip_headers",
        "-v=2",
        "--enable-pprof=true",
        "--pprof-port=6061",
    ])
    .await;
    harness
        .mount_spc(&blog_spc(), &Pod::blog())
        .await
        .expect("mount succeeds");
    let logs = harness.logs();
    assert!(logs.contains("ignoring klog flags"), "{logs}");
    assert!(logs.contains("--enable-pprof has no effect"), "{logs}");
}

#[tokio::test]
async fn version_flag_prints_json_in_both_go_forms() {
    for flag in ["--version", "-version"] {
        let output = run_binary(&[flag], None).await;
        assert!(output.status.success(), "{output:?}");
        let json: serde_json::Value =
            serde_json::from_slice(&output.stdout).expect("--version prints JSON");
        assert_eq!(json["version"], env!("CARGO_PKG_VERSION"));
        let date = json["buildDate"].as_str().expect("buildDate");
        assert!(
            date.len() == 10 && date.chars().filter(|c| *c == '-').count() == 2,
            "buildDate {date:?} is YYYY-MM-DD"
        );
    }
}

#[tokio::test]
async fn invalid_flags_exit_64_naming_the_flag() {
    for (flag, name) in [
        ("--endpoint=/tmp/azure.sock", "--endpoint"),
        ("--cloud-name=Mars", "--cloud-name"),
        ("--metrics-backend=statsd", "--metrics-backend"),
        ("--healthz-path=healthz", "--healthz-path"),
    ] {
        let output = run_binary(&[flag], None).await;
        assert_eq!(output.status.code(), Some(64), "{flag}: {output:?}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains(name), "{flag}: {stderr}");
    }
}

#[tokio::test]
async fn healthz_is_503_with_the_reason_when_version_fails() {
    let harness = start_with(&["--healthz-timeout=1s"]).await;
    let health = harness.health_addr().await;
    assert_eq!(http_get(health, "/healthz").await, (200, "ok".into()));

    // Something else now owns the socket path and never answers.
    std::fs::remove_file(&harness.socket).unwrap();
    let silent = tokio::net::UnixListener::bind(&harness.socket).unwrap();
    let hold = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((stream, _)) = silent.accept().await {
            held.push(stream);
        }
    });
    let (status, body) = http_get(health, "/healthz").await;
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("did not answer within 1s"), "{body}");
    assert!(
        body.contains(&harness.socket.display().to_string()),
        "{body}"
    );

    hold.abort();
    std::fs::remove_file(&harness.socket).unwrap();
    let (status, body) = http_get(health, "/healthz").await;
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("cannot connect"), "{body}");
    assert_eq!(
        http_get(health, "/readyz").await.0,
        200,
        "readiness is the latch, not the probe"
    );
}

#[tokio::test]
async fn readyz_turns_503_when_shutdown_begins() {
    let mut harness = start_with(&[]).await;
    let health = harness.health_addr().await;
    harness
        .fake
        .set_latency(Target::KeyVault, Duration::from_millis(1500));
    let spc = blog_spc();
    let pod = Pod::blog();
    let tokens = [harness.token(&pod.namespace, &pod.service_account)];
    let request = driver::mount_request(driver::attributes(&spc, &pod, &tokens), None, &pod);
    let mut client = driver::connect(&harness.socket).await.unwrap();
    let in_flight = tokio::spawn(async move { client.mount(request).await });
    for _ in 0..100 {
        if harness.fake.counters().tokens_issued() > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    harness.send_sigterm();
    let mut readyz = (0, String::new());
    for _ in 0..50 {
        readyz = http_get(health, "/readyz").await;
        if readyz.0 == 503 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(readyz, (503, "not ready: shutting down".into()));
    in_flight
        .await
        .unwrap()
        .expect("the in-flight mount still completes");
    let status = harness.wait_exit().await;
    assert!(status.success(), "{status:?}");
}

// === metrics ===

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

#[tokio::test]
async fn metrics_keep_upstream_names_labels_and_buckets_with_bounded_values() {
    let harness = start_with(&[]).await;
    let pod = Pod::blog();
    harness
        .mount_spc(&blog_spc(), &pod)
        .await
        .expect("mount succeeds");
    let missing = Harness::blog_spc_with_objects(
        "array:\n  - |\n    objectName: NoSuchSecret\n    objectType: secret\n",
    );
    harness
        .mount_spc(&missing, &pod)
        .await
        .expect_err("not found");
    let wrong_sa = Pod {
        service_account: "default".into(),
        ..Pod::blog()
    };
    harness
        .mount_spc(&blog_spc(), &wrong_sa)
        .await
        .expect_err("AADSTS70021");
    let no_pod = driver::mount_request("{}".into(), None, &pod);
    harness
        .mount_raw(no_pod)
        .await
        .expect_err("pod name missing");

    let text = harness.scrape().await;
    assert!(text.contains("# TYPE keyvault_request histogram"), "{text}");
    assert!(text.contains("# TYPE grpc_request histogram"), "{text}");
    let samples = parse_exposition(&text);

    let upstream_keys = |extra: &[&str]| -> Vec<String> {
        let mut keys: Vec<String> = ["os_type", "provider", "service_name"]
            .iter()
            .chain(extra)
            .map(|k| k.to_string())
            .collect();
        keys.sort();
        keys
    };
    for sample in samples
        .iter()
        .filter(|s| s.name.starts_with("keyvault_request"))
    {
        let keys: Vec<String> = sample
            .labels
            .keys()
            .filter(|k| *k != "le")
            .cloned()
            .collect();
        assert_eq!(
            keys,
            upstream_keys(&["object_type", "object_name", "error"]),
            "{sample:?}"
        );
        assert_eq!(sample.labels["provider"], "azure");
        assert_eq!(
            sample.labels["service_name"],
            "csi-secrets-store-provider-azure"
        );
        assert_eq!(sample.labels["os_type"], std::env::consts::OS);
    }
    for sample in samples
        .iter()
        .filter(|s| s.name.starts_with("grpc_request"))
    {
        let keys: Vec<String> = sample
            .labels
            .keys()
            .filter(|k| *k != "le")
            .cloned()
            .collect();
        assert_eq!(
            keys,
            upstream_keys(&["grpc_method", "grpc_code", "grpc_message"]),
            "{sample:?}"
        );
    }
    let buckets: Vec<f64> = samples
        .iter()
        .filter(|s| {
            s.name == "keyvault_request_bucket"
                && s.labels["object_name"] == "MySecretPassword"
                && s.labels["le"] != "+Inf"
        })
        .map(|s| s.labels["le"].parse().unwrap())
        .collect();
    assert_eq!(
        buckets,
        [
            0.1, 0.2, 0.3, 0.4, 0.5, 1.0, 1.5, 2.0, 2.5, 3.0, 5.0, 10.0, 15.0, 30.0
        ]
    );

    let kv = "keyvault_request_count";
    assert_eq!(
        value(
            &samples,
            kv,
            &[
                ("object_name", "MySecretPassword"),
                ("object_type", "secret"),
                ("error", "")
            ]
        ),
        Some(1.0)
    );
    assert_eq!(
        value(
            &samples,
            kv,
            &[("object_name", "NoSuchSecret"), ("error", "SecretNotFound")]
        ),
        Some(1.0)
    );
    let grpc = "grpc_request_count";
    let mount = ("grpc_method", "/v1alpha1.CSIDriverProvider/Mount");
    assert_eq!(
        value(
            &samples,
            grpc,
            &[mount, ("grpc_code", "OK"), ("grpc_message", "")]
        ),
        Some(1.0)
    );
    assert_eq!(
        value(
            &samples,
            grpc,
            &[
                mount,
                ("grpc_code", "Unknown"),
                ("grpc_message", "SecretNotFound")
            ]
        ),
        Some(1.0)
    );
    assert_eq!(
        value(
            &samples,
            grpc,
            &[
                mount,
                ("grpc_code", "Unknown"),
                ("grpc_message", "AADSTS70021")
            ]
        ),
        Some(1.0)
    );
    assert_eq!(
        value(
            &samples,
            grpc,
            &[
                mount,
                ("grpc_code", "Unknown"),
                ("grpc_message", "InvalidParameters")
            ]
        ),
        Some(1.0)
    );
    assert!(
        value(
            &samples,
            grpc,
            &[
                ("grpc_method", "/v1alpha1.CSIDriverProvider/Version"),
                ("grpc_code", "OK")
            ]
        ) >= Some(1.0)
    );

    let tokens = "akv_token_requests_total";
    assert_eq!(
        value(
            &samples,
            tokens,
            &[("mode", "workload_identity"), ("result", "success")]
        ),
        Some(2.0)
    );
    assert_eq!(
        value(
            &samples,
            tokens,
            &[("mode", "workload_identity"), ("result", "AADSTS70021")]
        ),
        Some(1.0)
    );
    let http = "akv_http_requests_total";
    assert_eq!(
        value(
            &samples,
            http,
            &[("service", "keyvault"), ("status_class", "2xx")]
        ),
        Some(1.0)
    );
    assert_eq!(
        value(
            &samples,
            http,
            &[("service", "keyvault"), ("status_class", "4xx")]
        ),
        Some(1.0)
    );
    assert_eq!(
        value(
            &samples,
            http,
            &[("service", "aad"), ("status_class", "2xx")]
        ),
        Some(2.0)
    );
    assert_eq!(
        value(
            &samples,
            http,
            &[("service", "aad"), ("status_class", "4xx")]
        ),
        Some(1.0)
    );
    assert_eq!(value(&samples, "akv_mounts_in_flight", &[]), Some(0.0));
    assert_eq!(
        value(&samples, "akv_mount_objects_count", &[]),
        Some(3.0),
        "the request without a pod name never reached the pipeline"
    );

    for sample in &samples {
        for (key, value) in &sample.labels {
            assert!(
                value.len() <= 127 && !value.contains(char::is_whitespace),
                "unbounded label {key}={value:?} in {sample:?}"
            );
        }
    }
}

#[tokio::test]
async fn throttled_key_vault_requests_are_counted() {
    let harness = start_with(&[]).await;
    harness
        .fake
        .throttle(Target::KeyVault, Some(1), Limit::Count(1));
    let _ = harness.mount_spc(&blog_spc(), &Pod::blog()).await;
    let samples = parse_exposition(&harness.scrape().await);
    assert_eq!(
        value(
            &samples,
            "akv_http_throttled_total",
            &[("service", "keyvault")]
        ),
        Some(1.0)
    );
    assert!(
        value(
            &samples,
            "akv_http_requests_total",
            &[("service", "keyvault"), ("status_class", "4xx")]
        ) >= Some(1.0)
    );
}

#[tokio::test]
async fn metrics_and_health_can_share_one_port() {
    // Upstream would fail to bind the second listener; here one serves both.
    let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = probe.local_addr().unwrap().port();
    drop(probe);
    let port_flag = |name: &str| format!("--{name}={port}");
    let (healthz, metrics) = (port_flag("healthz-port"), port_flag("prometheus-port"));
    let harness = start_with(&[&healthz, &metrics]).await;
    let address = harness.health_addr().await;
    assert_eq!(address.port(), port);
    assert_eq!(http_get(address, "/healthz").await, (200, "ok".into()));
    let (status, body) = http_get(address, "/metrics").await;
    assert_eq!(status, 200);
    assert!(body.contains("akv_mounts_in_flight"), "{body}");
}

#[tokio::test]
async fn a_taken_admin_port_stops_start_up_with_a_clear_error() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("azure.sock");
    let endpoint = format!("--endpoint=unix://{}", socket.display());
    let healthz = format!("--healthz-port={port}");
    let output = run_binary(
        &[
            &endpoint,
            "--admin-bind-address=127.0.0.1",
            &healthz,
            "--prometheus-port=0",
        ],
        None,
    )
    .await;
    assert_eq!(output.status.code(), Some(1), "{output:?}");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains(&format!(
            "cannot listen on 127.0.0.1:{port} (--healthz-port)"
        )),
        "{stderr}"
    );
    assert!(!socket.exists(), "no socket left behind");
}
