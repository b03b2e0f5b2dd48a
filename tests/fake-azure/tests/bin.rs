//! The `fake-azure` binary as scripts use it: ready file, CA file, control
//! API, clean exit on SIGTERM, and refusal of non-loopback addresses unless
//! the in-cluster e2e opts in.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

const BIN: &str = env!("CARGO_BIN_EXE_fake-azure");

fn scratch(name: &str) -> PathBuf {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    std::env::temp_dir().join(format!(
        "fake-azure-bin-{}-{nanos}-{name}",
        std::process::id()
    ))
}

#[test]
fn refuses_non_loopback_listen_addresses() {
    let status = Command::new(BIN)
        .args([
            "--blog-walkthrough",
            "--issuer",
            "https://i.test",
            "--listen",
            "0.0.0.0:0",
        ])
        .stderr(Stdio::null())
        .status()
        .expect("run fake-azure");
    assert_eq!(status.code(), Some(64));
}

/// Starts the binary with `extra` flags and waits for its ready file; on a
/// time-out the child is killed and reaped before the test fails.
async fn start_ready(extra: &[&str], ready: &PathBuf) -> (std::process::Child, String) {
    let mut child = Command::new(BIN)
        .args(["--blog-walkthrough", "--issuer", "https://i.test"])
        .args(extra)
        .arg("--ready-file")
        .arg(ready)
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn fake-azure");
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        if let Ok(url) = std::fs::read_to_string(ready) {
            return (child, url);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let _ = child.kill();
    let _ = child.wait();
    panic!("fake-azure never became ready");
}

#[tokio::test]
async fn listens_on_all_interfaces_only_with_the_explicit_opt_in() {
    let ready = scratch("ready-any");
    let (mut child, url) =
        start_ready(&["--listen", "0.0.0.0:0", "--allow-non-loopback"], &ready).await;
    let port = url.rsplit(':').next().unwrap_or_default().to_string();
    // Bound to every interface, so loopback reaches it too.
    let http = reqwest::Client::builder()
        .no_proxy()
        .build()
        .expect("client");
    let status = http
        .get(format!("http://127.0.0.1:{port}/_fake/counters"))
        .send()
        .await
        .map(|resp| resp.status().as_u16());
    let _ = child.kill();
    let _ = child.wait();
    let _ = std::fs::remove_file(&ready);
    assert!(url.starts_with("http://0.0.0.0:"), "{url}");
    assert_eq!(status.ok(), Some(200));
}

#[tokio::test]
async fn writes_ready_and_ca_files_and_exits_on_sigterm() {
    let ready = scratch("ready");
    let ca = scratch("ca.pem");
    let mut child = Command::new(BIN)
        .args(["--blog-walkthrough", "--issuer", "https://i.test"])
        .arg("--ready-file")
        .arg(&ready)
        .arg("--ca-out")
        .arg(&ca)
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn fake-azure");
    let deadline = Instant::now() + Duration::from_secs(20);
    let proxy = loop {
        if let Ok(url) = std::fs::read_to_string(&ready) {
            break url;
        }
        assert!(Instant::now() < deadline, "fake-azure never became ready");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(proxy.starts_with("http://127.0.0.1:"), "{proxy}");
    let pem = std::fs::read_to_string(&ca).unwrap_or_default();
    assert!(pem.starts_with("-----BEGIN CERTIFICATE-----"));

    let http = reqwest::Client::builder()
        .no_proxy()
        .build()
        .expect("client");
    let resp = http
        .get(format!("{proxy}/_fake/counters"))
        .send()
        .await
        .expect("counters");
    assert_eq!(resp.status().as_u16(), 200);

    let killed = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(killed.success());
    let status = child.wait().expect("wait");
    assert_eq!(status.code(), Some(0));
    let _ = std::fs::remove_file(&ready);
    let _ = std::fs::remove_file(&ca);
}
