//! The gRPC edge driven in-process with a stand-in [`RunMount`]: panic
//! isolation without a hook in production code.

use prometheus_client::registry::Registry;

use super::*;
use crate::metrics::{self, Metrics};

/// Panics inside the mount (while a sibling fetch is in flight) when an
/// object is named `Boom`; else mounts nothing.
#[derive(Clone, Debug)]
struct Panicking {
    metrics: Metrics,
}

impl RunMount for Panicking {
    fn mount_timeout(&self) -> Duration {
        Duration::from_secs(100)
    }

    async fn run(&self, _cx: &Context, params: &MountParams) -> Result<MountOutput, MountError> {
        let _in_flight = self.metrics.mount_started(params.objects.len());
        let boom = params.objects.iter().any(|o| o.name.as_str() == "Boom");
        let sibling = tokio::time::sleep(Duration::from_millis(5));
        let fetch = async {
            tokio::task::yield_now().await;
            if boom {
                panic!("test panic inside the mount while fetching Boom");
            }
        };
        tokio::join!(sibling, fetch);
        Ok(MountOutput::default())
    }
}

fn request(objects: &[&str]) -> proto::MountRequest {
    let array: String = objects
        .iter()
        .map(|name| format!("  - |\n    objectName: {name}\n    objectType: secret\n"))
        .collect();
    let attributes = serde_json::json!({
        "keyvaultName": "kv",
        "tenantId": "tenant",
        "usePodIdentity": "true",
        "objects": format!("array:\n{array}"),
        "csi.storage.k8s.io/pod.name": "pod",
        "csi.storage.k8s.io/pod.namespace": "ns",
    });
    proto::MountRequest {
        attributes: attributes.to_string(),
        secrets: "{}".into(),
        permission: "420".into(),
        ..Default::default()
    }
}

#[tokio::test]
async fn a_panic_inside_a_mount_fails_only_that_mount() {
    let mut registry = Registry::default();
    let metrics = Metrics::register(&mut registry);
    let provider = Provider::new(
        Panicking {
            metrics: metrics.clone(),
        },
        ParseOptions {
            default_cloud_name: "AzurePublicCloud".into(),
            ..ParseOptions::default()
        },
    );
    for _ in 0..20 {
        let status = CsiDriverProvider::mount(&provider, Request::new(request(&["a", "Boom"])))
            .await
            .unwrap_err();
        assert_eq!(status.code(), tonic::Code::Unknown);
        assert_eq!(
            status.message(),
            "failed to mount objects, error: internal error: the mount panicked; this is a bug \
             in akv-csi-provider, please report it"
        );
        CsiDriverProvider::mount(&provider, Request::new(request(&["a"])))
            .await
            .expect("the next mount succeeds");
    }
    let version = CsiDriverProvider::version(
        &provider,
        Request::new(proto::VersionRequest {
            version: API_VERSION.into(),
        }),
    )
    .await;
    assert!(version.is_ok(), "Version still answers");
    let text = metrics::encode(&registry);
    assert!(text.contains("akv_mounts_in_flight 0\n"), "{text}");
}
