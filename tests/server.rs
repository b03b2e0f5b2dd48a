//! The server's edge: Version, drivers up to v1.5 that send the socket path
//! as `:authority`, graceful shutdown and the socket's permissions.

use std::os::unix::fs::PermissionsExt as _;

use akv_csi_provider::proto::{VersionRequest, VersionResponse};
use prost::Message as _;

use crate::driver;
use crate::raw_h2;
use crate::util::Harness;

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
    let spc = driver::SecretProviderClass::from_yaml(crate::util::BLOG_SPC).unwrap();
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
