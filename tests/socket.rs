//! The socket and the protocol on it: Version, drivers up to v1.5 that send
//! the socket path as `:authority`, the socket's permissions and the
//! directories it refuses, and graceful shutdown on SIGTERM.
use crate::support::driver;
use crate::support::harness::{ADMIN_TEST_FLAGS, Harness, run_binary};
use crate::support::raw_h2;
use akv_csi_provider::proto::{VersionRequest, VersionResponse};
use prost::Message as _;
use std::os::unix::fs::PermissionsExt as _;

#[tokio::test]
async fn version_reports_api_and_crate_version() {
    let harness = Harness::start().await;
    let mut client = driver::connect(&harness.socket).await.unwrap();
    let response = client
        .version(VersionRequest {
            version: "v1alpha1".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(response.version, "v1alpha1");
    assert_eq!(response.runtime_name, "akv-csi-provider");
    assert_eq!(response.runtime_version, env!("CARGO_PKG_VERSION"));
}

#[tokio::test]
async fn old_driver_authority_is_served() {
    let harness = Harness::start().await;
    let request = VersionRequest {
        version: "v1alpha1".into(),
    }
    .encode_to_vec();
    let path = harness.socket.display().to_string();
    let encoded = path.trim_start_matches('/').replace('/', "%2F");
    for authority in [path.clone(), encoded, "localhost".to_owned()] {
        let response = raw_h2::unary(
            &harness.socket,
            &authority,
            "/v1alpha1.CSIDriverProvider/Version",
            &request,
        )
        .await
        .unwrap_or_else(|e| panic!("authority {authority}: {e}"));
        assert_eq!(response.reset, None, "authority {authority}: stream reset");
        assert_eq!(
            response.grpc_status,
            Some(0),
            "authority {authority}: {response:?}"
        );
        let body = response.message.expect("a response message");
        let version = VersionResponse::decode(body.as_slice()).unwrap();
        assert_eq!(version.runtime_name, "akv-csi-provider");
    }
}

#[tokio::test]
async fn socket_is_owner_only() {
    let harness = Harness::start().await;
    let mode = std::fs::metadata(&harness.socket)
        .unwrap()
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode, 0o600);
}

/// Owner-only whatever the umask: with `umask 000` a socket bound in place
/// would start out 0777; ours is bound in a private directory and only
/// appears, renamed, once it is 0600.
#[tokio::test]
async fn socket_is_owner_only_under_an_open_umask() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("azure.sock");
    let mut child = tokio::process::Command::new("sh")
        .args(["-c", "umask 000 && exec \"$0\" \"$@\""])
        .arg(env!("CARGO_BIN_EXE_akv-csi-provider"))
        .arg(format!("--endpoint=unix://{}", socket.display()))
        .args(ADMIN_TEST_FLAGS)
        .env_clear()
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut seen = Vec::new();
    for _ in 0..400 {
        for entry in std::fs::read_dir(dir.path()).unwrap() {
            let path = entry.unwrap().path();
            if let Ok(meta) = std::fs::symlink_metadata(&path) {
                seen.push((path, meta.permissions().mode() & 0o777));
            }
        }
        if socket.exists() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    let mode = std::fs::metadata(&socket).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    for (path, mode) in &seen {
        assert!(
            *mode == 0o600 || *mode == 0o700,
            "{} was visible with mode {mode:o}",
            path.display()
        );
    }
    child.kill().await.unwrap();
}

/// A socket directory anyone can write without the sticky bit, a missing
/// one and one that is not writable stop start-up with a clear error.
#[tokio::test]
async fn unsafe_or_unusable_socket_directories_stop_start_up() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
    let cases = [
        (
            dir.path().join("azure.sock"),
            "is writable by every user (mode 0777) and has no sticky bit",
        ),
        (
            dir.path().join("missing/azure.sock"),
            "/missing does not exist; create it or mount the providers directory there",
        ),
        (
            std::path::PathBuf::from("/sys/azure.sock"),
            "socket directory /sys is not writable by this process",
        ),
    ];
    for (socket, expected) in cases {
        let endpoint = format!("--endpoint=unix://{}", socket.display());
        let mut args = vec![endpoint.as_str()];
        args.extend(ADMIN_TEST_FLAGS);
        let output = run_binary(&args, None).await;
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(1), "{stderr}");
        assert!(stderr.contains(expected), "{expected:?} in {stderr}");
        assert!(!socket.exists());
    }
}

#[tokio::test]
async fn sigterm_stops_cleanly_and_removes_the_socket() {
    let mut harness = Harness::start().await;
    let status = harness.terminate().await;
    assert!(
        status.success(),
        "exit status {status:?}; logs:\n{}",
        harness.logs()
    );
    assert!(!harness.socket.exists(), "socket removed on shutdown");
}

#[tokio::test]
async fn sigterm_lets_an_in_flight_mount_finish() {
    let mut harness = Harness::start().await;
    harness.fake.set_latency(
        fake_azure::Target::KeyVault,
        std::time::Duration::from_millis(800),
    );
    let spc = driver::spc_from_yaml(crate::support::harness::BLOG_SPC).unwrap();
    let pod = driver::Pod::blog();
    let tokens = [harness.token(&pod.namespace, &pod.service_account)];
    let request = driver::mount_request(driver::attributes(&spc, &pod, &tokens), None, &pod);
    let mut client = driver::connect(&harness.socket).await.unwrap();
    let in_flight = tokio::spawn(async move { client.mount(request).await });
    // Wait until the provider is inside Key Vault's latency window.
    for _ in 0..100 {
        if harness.fake.counters().tokens_issued() > 0 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert!(
        harness.fake.counters().tokens_issued() > 0,
        "the mount started"
    );
    let status = harness.terminate().await;
    let response = in_flight
        .await
        .unwrap()
        .expect("the in-flight mount completes")
        .into_inner();
    assert_eq!(response.files.len(), 1);
    assert!(status.success(), "exit status {status:?}");
}
