//! Operating the provider like upstream: the argument lists of upstream's
//! static manifest and Helm chart, klog flags, `--version`, `/healthz`,
//! `/readyz`, the admin listeners' binding. Metrics are in `metrics.rs`.

use std::time::Duration;

use fake_azure::{Seed, Target};

use crate::support::driver::{Pod, SecretProviderClass};
use crate::support::harness::{BLOG_SPC, Harness, ISSUER, http_get, run_binary};

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
    crate::support::driver::spc_from_yaml(BLOG_SPC).expect("blog SPC parses")
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
async fn healthz_is_503_with_the_reason_when_the_check_fails() {
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
    // Returns once the provider is inside Key Vault's latency window.
    let in_flight = harness.blog_mount_in_flight().await;
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

/// A `grpc.health.v1.Health` client on a fresh connection to the socket.
async fn health_client(
    socket: &std::path::Path,
) -> tonic_health::pb::health_client::HealthClient<tonic::transport::Channel> {
    let socket = socket.to_owned();
    let channel = tonic::transport::Endpoint::from_static("http://localhost")
        .connect_with_connector(tower::service_fn(move |_| {
            let socket = socket.clone();
            async move {
                let stream = tokio::net::UnixStream::connect(socket).await?;
                Ok::<_, std::io::Error>(hyper_util::rt::TokioIo::new(stream))
            }
        }))
        .await
        .expect("connect to the provider socket");
    tonic_health::pb::health_client::HealthClient::new(channel)
}

#[tokio::test]
async fn grpc_health_answers_on_the_socket_and_healthz_uses_it() {
    use tonic_health::pb::HealthCheckRequest;
    use tonic_health::pb::health_check_response::ServingStatus;

    let harness = start_with(&[]).await;
    let mut client = health_client(&harness.socket).await;
    let check = |service: &str| HealthCheckRequest {
        service: service.to_owned(),
    };
    for service in ["", "v1alpha1.CSIDriverProvider"] {
        let response = client.check(check(service)).await.expect(service);
        assert_eq!(
            response.into_inner().status(),
            ServingStatus::Serving,
            "{service:?}"
        );
    }
    let unknown = client.check(check("v1alpha1.Other")).await.unwrap_err();
    assert_eq!(unknown.code(), tonic::Code::NotFound);
    let watch = client.watch(check("")).await.unwrap_err();
    assert_eq!(
        (watch.code(), watch.message()),
        (tonic::Code::Unimplemented, "Watch is not supported")
    );

    let health = harness.health_addr().await;
    assert_eq!(http_get(health, "/healthz").await, (200, "ok".into()));
    let scrape = harness.scrape().await;
    let probes = scrape
        .lines()
        .filter(|l| l.starts_with("grpc_request_count{"))
        .filter(|l| l.contains(r#"grpc_method="/grpc.health.v1.Health/Check""#))
        .filter(|l| l.contains(r#"grpc_code="OK""#))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum::<f64>();
    // Two checks above plus /healthz's; NotFound is counted apart.
    assert_eq!(probes, 3.0, "{scrape}");
}
