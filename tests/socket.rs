//! The socket and the protocol on it: Version, drivers up to v1.5 that send
//! the socket path as `:authority`, the socket's permissions and the
//! directories it refuses, a live socket never taken over, the HTTP/2
//! limits advertised, and shutdown on SIGTERM within the drain time.
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
    // Returns once the provider is inside Key Vault's latency window.
    let in_flight = harness.blog_mount_in_flight().await;
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

/// A second provider on a live socket's path stops at start-up naming the
/// path; the first keeps serving, and its socket is its own at shutdown.
#[tokio::test]
async fn a_second_provider_refuses_a_live_socket() {
    let mut harness = Harness::start().await;
    let endpoint = format!("--endpoint=unix://{}", harness.socket.display());
    let mut args = vec![endpoint.as_str()];
    args.extend(ADMIN_TEST_FLAGS);
    let output = run_binary(&args, None).await;
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "another process serves {} (a connection to it succeeded)",
            harness.socket.display()
        )),
        "{stderr}"
    );
    let mut client = driver::connect(&harness.socket).await.unwrap();
    let request = VersionRequest {
        version: "v1alpha1".into(),
    };
    client
        .version(request)
        .await
        .expect("the first still serves");
    assert!(harness.terminate().await.success());
    assert!(!harness.socket.exists());
}

/// A socket path longer than sun_path (107 bytes) stops start-up.
#[tokio::test]
async fn a_socket_path_longer_than_sun_path_stops_start_up() {
    let dir = tempfile::tempdir().unwrap();
    let base = dir.path().display().to_string().len() + 1;
    let socket = dir.path().join("s".repeat(108 - base));
    let endpoint = format!("--endpoint=unix://{}", socket.display());
    let mut args = vec![endpoint.as_str()];
    args.extend(ADMIN_TEST_FLAGS);
    let output = run_binary(&args, None).await;
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(
        stderr
            .contains("is 108 bytes long, but a unix socket path may have at most 107 (sun_path)"),
        "{stderr}"
    );
    assert!(!socket.exists());
}

/// The server's first SETTINGS: a stream limit a 500-pod burst fits in on
/// one connection, and a per-stream window that bounds what an unfinished
/// request holds.
#[tokio::test]
async fn the_socket_advertises_its_http2_limits() {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let harness = Harness::start().await;
    let mut stream = tokio::net::UnixStream::connect(&harness.socket)
        .await
        .unwrap();
    let mut hello = raw_h2::PREFACE.to_vec();
    raw_h2::put_frame(&mut hello, raw_h2::SETTINGS, 0, 0, &[]);
    stream.write_all(&hello).await.unwrap();
    let mut header = [0u8; 9];
    stream.read_exact(&mut header).await.unwrap();
    assert_eq!(
        header[3],
        raw_h2::SETTINGS,
        "the server speaks first with SETTINGS"
    );
    let len = u32::from_be_bytes([0, header[0], header[1], header[2]]) as usize;
    let mut payload = vec![0u8; len];
    stream.read_exact(&mut payload).await.unwrap();
    let settings: std::collections::HashMap<u16, u32> = payload
        .chunks_exact(6)
        .map(|entry| {
            let id = u16::from_be_bytes([entry[0], entry[1]]);
            let value = u32::from_be_bytes([entry[2], entry[3], entry[4], entry[5]]);
            (id, value)
        })
        .collect();
    // SETTINGS_MAX_CONCURRENT_STREAMS, SETTINGS_INITIAL_WINDOW_SIZE.
    assert_eq!(settings.get(&0x3), Some(&1024), "{settings:?}");
    assert_eq!(settings.get(&0x4), Some(&(1 << 20)), "{settings:?}");
}

/// SIGTERM with a mount hung on a stalled Key Vault: the mount is
/// cancelled when the drain time is over and the driver gets an error
/// saying so, the socket is removed, and the provider exits 0 well inside
/// Kubernetes' 30 s grace period (before: only after the 100 s budget).
#[tokio::test]
async fn sigterm_cancels_a_hung_mount_after_the_drain_time() {
    let mut harness = Harness::start_with(
        fake_azure::Seed::blog_walkthrough(crate::support::harness::ISSUER),
        &["--drain-timeout=2s"],
    )
    .await;
    harness.fake.set_latency(
        fake_azure::Target::KeyVault,
        std::time::Duration::from_secs(300),
    );
    // Returns once the provider is inside Key Vault's latency window.
    let in_flight = harness.blog_mount_in_flight().await;
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    let started = std::time::Instant::now();
    let status = harness.terminate().await;
    let took = started.elapsed();
    let error = in_flight.await.unwrap().expect_err("the hung mount fails");
    assert!(
        error.message().contains("the provider is shutting down and cancelled this mount when its drain time (--drain-timeout) ran out"),
        "{error:?}"
    );
    assert!(
        status.success(),
        "exit status {status:?}; logs:\n{}",
        harness.logs()
    );
    assert!(took < std::time::Duration::from_secs(5), "took {took:?}");
    assert!(!harness.socket.exists(), "socket removed");
    assert!(
        harness
            .logs()
            .contains("drain time is over: cancelling the mounts still running")
    );
}

/// SIGHUP is logged and ignored: the provider keeps serving (before, it
/// died at once and left a stale socket).
#[tokio::test]
async fn sighup_is_ignored() {
    let mut harness = Harness::start().await;
    harness.send_signal("HUP");
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert!(harness.is_running(), "logs:\n{}", harness.logs());
    let mut client = driver::connect(&harness.socket).await.unwrap();
    let request = VersionRequest {
        version: "v1alpha1".into(),
    };
    client.version(request).await.expect("still serving");
    assert!(harness.logs().contains("SIGHUP ignored"));
    assert!(harness.terminate().await.success());
    assert!(!harness.socket.exists());
}

/// CPU seconds the provider has used (`/proc/<pid>/stat` utime + stime).
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .unwrap()
        .1
        .split_whitespace()
        .collect();
    let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
    ticks as f64 / 100.0
}

/// At the open-file limit `accept` fails with EMFILE: the provider pauses
/// and logs about once a second instead of spinning (before: 6.3 s of CPU
/// in 10 s and no log line), and `/healthz` says why.
#[tokio::test]
async fn accept_failures_back_off_log_and_fail_healthz() {
    let harness = Harness::start().await;
    let health = harness.health_addr().await;
    let pid = harness.pid();
    let limit = harness.open_fds() + 4;
    let status = std::process::Command::new("prlimit")
        .args([
            "--pid",
            &pid.to_string(),
            &format!("--nofile={limit}:{limit}"),
        ])
        .status()
        .expect("prlimit");
    assert!(status.success());
    let mut held = Vec::new();
    for _ in 0..32 {
        held.push(
            tokio::net::UnixStream::connect(&harness.socket)
                .await
                .unwrap(),
        );
    }
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    let cpu_before = cpu_seconds(pid);
    let logged_before = harness.logs().matches("cannot accept connections").count();
    tokio::time::sleep(std::time::Duration::from_secs(3)).await;
    let cpu = cpu_seconds(pid) - cpu_before;
    let logged = harness.logs().matches("cannot accept connections").count() - logged_before;
    assert!(cpu < 0.5, "{cpu} s of CPU in 3 s while accept fails");
    assert!(
        (1..=5).contains(&logged),
        "{logged} lines in 3 s:\n{}",
        harness.logs()
    );
    drop(held);
    let (code, body) = crate::support::harness::http_get(health, "/healthz").await;
    assert_eq!(code, 503, "{body}");
    assert!(
        body.contains("the provider socket cannot accept connections (Too many open files"),
        "{body}"
    );
}

/// Reads until the server closes `stream`; fails after `limit`.
async fn read_until_closed(stream: &mut tokio::net::UnixStream, limit: std::time::Duration) {
    use tokio::io::AsyncReadExt as _;
    let mut buf = [0u8; 4096];
    let read_all = async {
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    };
    tokio::time::timeout(limit, read_all)
        .await
        .expect("the provider closes the connection");
}

/// A connection without a request in flight for `--connection-idle-timeout`
/// is closed gracefully — GOAWAY with NO_ERROR, then the close, so grpc-go
/// dials again for its next call — and one that never sent the HTTP/2
/// preface is closed too (before: both were kept forever).
#[tokio::test]
async fn idle_and_half_open_connections_are_closed() {
    use tokio::io::AsyncWriteExt as _;
    let harness = Harness::start_with(
        fake_azure::Seed::blog_walkthrough(crate::support::harness::ISSUER),
        &["--connection-idle-timeout=1s"],
    )
    .await;
    let mut idle = tokio::net::UnixStream::connect(&harness.socket)
        .await
        .unwrap();
    let mut silent = tokio::net::UnixStream::connect(&harness.socket)
        .await
        .unwrap();
    let started = std::time::Instant::now();
    let mut hello = raw_h2::PREFACE.to_vec();
    raw_h2::put_frame(&mut hello, raw_h2::SETTINGS, 0, 0, &[]);
    idle.write_all(&hello).await.unwrap();
    let frames = raw_h2::frames_until_closed(&mut idle, std::time::Duration::from_secs(10))
        .await
        .expect("the idle connection is closed");
    let goaway = frames
        .iter()
        .find(|frame| frame.kind == raw_h2::GOAWAY)
        .unwrap_or_else(|| panic!("a GOAWAY before the close: {frames:?}"));
    assert_eq!(goaway.goaway_code(), Some(0), "NO_ERROR: {frames:?}");
    assert!(
        goaway.at >= std::time::Duration::from_millis(900)
            && goaway.at < std::time::Duration::from_secs(4),
        "GOAWAY after {:?}",
        goaway.at
    );
    read_until_closed(&mut silent, std::time::Duration::from_secs(8)).await;
    assert!(
        started.elapsed() < std::time::Duration::from_secs(7),
        "the silent connection closed after {:?}",
        started.elapsed()
    );
    let mut client = driver::connect(&harness.socket).await.unwrap();
    let request = VersionRequest {
        version: "v1alpha1".into(),
    };
    client.version(request).await.expect("still serving");
}

/// A connection with a mount in flight is never idle: with a 1 s idle
/// timeout and a 2.5 s Key Vault, the mount is answered on its connection,
/// and the GOAWAY comes only a full idle time after the answer.
#[tokio::test]
async fn a_connection_with_a_mount_in_flight_is_not_idle() {
    use tokio::io::AsyncWriteExt as _;
    let harness = Harness::start_with(
        fake_azure::Seed::blog_walkthrough(crate::support::harness::ISSUER),
        &["--connection-idle-timeout=1s"],
    )
    .await;
    harness.fake.set_latency(
        fake_azure::Target::KeyVault,
        std::time::Duration::from_millis(2500),
    );
    let spc = driver::spc_from_yaml(crate::support::harness::BLOG_SPC).unwrap();
    let pod = driver::Pod::blog();
    let tokens = [harness.token(&pod.namespace, &pod.service_account)];
    let request = driver::mount_request(driver::attributes(&spc, &pod, &tokens), None, &pod);
    let bytes = raw_h2::request_bytes(
        "localhost",
        "/v1alpha1.CSIDriverProvider/Mount",
        &[&request.encode_to_vec()],
    )
    .unwrap();
    let mut stream = tokio::net::UnixStream::connect(&harness.socket)
        .await
        .unwrap();
    stream.write_all(&bytes).await.unwrap();
    let frames = raw_h2::frames_until_closed(&mut stream, std::time::Duration::from_secs(15))
        .await
        .expect("closed once idle");
    let answered = frames
        .iter()
        .find(|frame| frame.stream == 1 && frame.flags & raw_h2::END_STREAM != 0)
        .map(|frame| frame.at)
        .unwrap_or_else(|| panic!("the mount is answered: {frames:?}"));
    assert!(
        frames.iter().any(|frame| frame.stream == 1
            && frame.kind == raw_h2::DATA
            && frame.payload.len() > 5),
        "the mount succeeded (an error has no message): {frames:?}"
    );
    let goaway = frames
        .iter()
        .find(|frame| frame.kind == raw_h2::GOAWAY)
        .expect("a GOAWAY");
    assert!(
        answered >= std::time::Duration::from_millis(2400),
        "answered after {answered:?}"
    );
    assert!(
        goaway.at >= answered + std::time::Duration::from_millis(900),
        "GOAWAY after {:?}, the answer after {answered:?}",
        goaway.at
    );
}
