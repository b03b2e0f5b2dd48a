//! Prometheus metrics: upstream's two histograms under their names, labels
//! and buckets (`keyvault_request`, `grpc_request`), so existing dashboards
//! keep working, plus `akv_*` counters and gauges upstream lacks.
//!
//! One registry is built in `app` and passed to [`Metrics::register`]; the
//! returned handle is cloned into the HTTP client, the mount pipeline and
//! the gRPC layer (`metrics/grpc.rs`), which record through its methods.
//! Every label value is bounded (`metrics/labels.rs`): error labels carry a
//! short code, never a message, a name, an identity or a value. Encoding
//! for `/metrics` is in `admin`.

mod grpc;
use akv_core::labels;

use std::borrow::Cow;
use std::sync::Arc;
use std::time::Duration;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use crate::object::ObjectType;
use crate::params::IdentityKind;

pub use grpc::{GrpcMethod, GrpcMetricsLayer, GrpcMetricsService, go_code_name};
pub use labels::{ErrorCode, Service};

/// Upstream's histogram buckets, in seconds.
pub const BUCKETS: [f64; 14] = [
    0.1, 0.2, 0.3, 0.4, 0.5, 1.0, 1.5, 2.0, 2.5, 3.0, 5.0, 10.0, 15.0, 30.0,
];

/// Buckets of `akv_mount_objects` (objects per mount).
const OBJECT_BUCKETS: [f64; 10] = [0.0, 1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0, 200.0, 500.0];

/// Upstream's constant `service_name` label value.
pub const SERVICE_NAME: &str = "csi-secrets-store-provider-azure";

type Histograms<L> = Family<L, Histogram, fn() -> Histogram>;

/// The handle every subsystem records through. Cheap to clone. A handle
/// made with `Default` records into families no registry exposes (tests,
/// the dry-run command).
#[derive(Clone, Debug, Default)]
pub struct Metrics {
    families: Arc<Families>,
}

#[derive(Debug)]
struct Families {
    keyvault_request: Histograms<labels::KeyVaultRequest>,
    grpc_request: Histograms<labels::GrpcRequest>,
    token_requests: Family<labels::TokenRequest, Counter>,
    token_cache: Family<labels::TokenCache, Counter>,
    http_requests: Family<labels::HttpRequest, Counter>,
    http_throttled: Family<labels::HttpService, Counter>,
    http_retries: Family<labels::HttpService, Counter>,
    coalesced_reads: Counter,
    duplicate_paths: Counter,
    optional_missing: Family<labels::ObjectTypeLabel, Counter>,
    mounts_in_flight: Gauge,
    mount_objects: Histogram,
}

impl Default for Families {
    fn default() -> Self {
        Self {
            keyvault_request: Family::new_with_constructor(upstream_histogram),
            grpc_request: Family::new_with_constructor(upstream_histogram),
            token_requests: Family::default(),
            token_cache: Family::default(),
            http_requests: Family::default(),
            http_throttled: Family::default(),
            http_retries: Family::default(),
            coalesced_reads: Counter::default(),
            duplicate_paths: Counter::default(),
            optional_missing: Family::default(),
            mounts_in_flight: Gauge::default(),
            mount_objects: Histogram::new(OBJECT_BUCKETS),
        }
    }
}

fn upstream_histogram() -> Histogram {
    Histogram::new(BUCKETS)
}

// === impl Metrics ===

impl Metrics {
    /// Creates the metric families and registers them: upstream's on a
    /// sub-registry carrying its constant labels (`os_type`, `provider`,
    /// `service_name`), ours under the `akv` prefix.
    pub fn register(registry: &mut Registry) -> Self {
        let families = Families::default();
        let upstream = registry.sub_registry_with_labels(
            [
                ("os_type", std::env::consts::OS),
                ("provider", "azure"),
                ("service_name", SERVICE_NAME),
            ]
            .into_iter()
            .map(|(k, v)| (Cow::Borrowed(k), Cow::Borrowed(v))),
        );
        upstream.register(
            "keyvault_request",
            "Distribution of how long it took to get from keyvault",
            families.keyvault_request.clone(),
        );
        upstream.register(
            "grpc_request",
            "Distribution of how long it took for the gRPC requests",
            families.grpc_request.clone(),
        );
        families.register_ours(registry.sub_registry_with_prefix("akv"));
        Self {
            families: Arc::new(families),
        }
    }

    /// One object's content fetch (upstream records around each get).
    pub fn keyvault_request(
        &self,
        object_type: ObjectType,
        object_name: &str,
        elapsed: Duration,
        error: Option<Cow<'static, str>>,
    ) {
        let labels = labels::KeyVaultRequest {
            object_type: labels::object_type(object_type),
            object_name: labels::object_name(object_name),
            error: ErrorCode::of(error),
        };
        self.families
            .keyvault_request
            .get_or_create(&labels)
            .observe(elapsed.as_secs_f64());
    }

    /// One unary RPC; `message` is the error code ("" on success).
    pub fn grpc_request(
        &self,
        method: GrpcMethod,
        code: tonic::Code,
        message: ErrorCode,
        elapsed: Duration,
    ) {
        let labels = labels::GrpcRequest {
            grpc_method: method.as_str(),
            grpc_code: go_code_name(code),
            grpc_message: message,
        };
        self.families
            .grpc_request
            .get_or_create(&labels)
            .observe(elapsed.as_secs_f64());
    }

    /// A token request to Entra ID, IMDS, pod identity or the token proxy
    /// (not a cache hit): `error` is `None` on success.
    pub fn token_request(&self, mode: IdentityKind, error: Option<Cow<'static, str>>) {
        let result = error.map_or_else(|| ErrorCode::new("success"), ErrorCode::new);
        let labels = labels::TokenRequest {
            mode: mode.label(),
            result,
        };
        self.families.token_requests.get_or_create(&labels).inc();
    }

    /// A lookup in the token cache.
    pub fn token_cache(&self, mode: IdentityKind, hit: bool) {
        let labels = labels::TokenCache {
            mode: mode.label(),
            result: if hit { "hit" } else { "miss" },
        };
        self.families.token_cache.get_or_create(&labels).inc();
    }

    /// One outbound HTTP exchange; `status` is `None` when no response came.
    pub fn http_request(&self, service: Service, status: Option<u16>) {
        let labels = labels::HttpRequest {
            service: service.as_str(),
            status_class: labels::status_class(status),
        };
        self.families.http_requests.get_or_create(&labels).inc();
        if status == Some(429) {
            self.families
                .http_throttled
                .get_or_create(&labels::HttpService {
                    service: service.as_str(),
                })
                .inc();
        }
    }

    /// A request sent again after a retryable failure.
    pub fn retry(&self, service: Service) {
        self.families
            .http_retries
            .get_or_create(&labels::HttpService {
                service: service.as_str(),
            })
            .inc();
    }

    /// A read answered by joining an identical read already in flight.
    pub fn coalesced_read(&self) {
        self.families.coalesced_reads.inc();
    }

    /// Two objects of one mount wrote the same file path.
    pub fn duplicate_output_path(&self) {
        self.families.duplicate_paths.inc();
    }

    /// An `optional` object left out of a mount because it does not exist.
    pub fn optional_object_missing(&self, object_type: ObjectType) {
        let labels = labels::ObjectTypeLabel {
            object_type: labels::object_type(object_type),
        };
        self.families.optional_missing.get_or_create(&labels).inc();
    }

    /// Counts a mount in flight until the guard drops, and records its
    /// object count.
    pub fn mount_started(&self, objects: usize) -> InFlight {
        self.families.mount_objects.observe(objects as f64);
        self.families.mounts_in_flight.inc();
        InFlight {
            families: self.families.clone(),
        }
    }
}

// === impl Families ===

impl Families {
    fn register_ours(&self, registry: &mut Registry) {
        registry.register(
            "token_requests",
            "Token requests by identity mode and result (success or error code)",
            self.token_requests.clone(),
        );
        registry.register(
            "token_cache_lookups",
            "Token cache lookups by identity mode and result (hit or miss)",
            self.token_cache.clone(),
        );
        registry.register(
            "http_requests",
            "Requests to Azure by service (keyvault, aad, imds) and status class",
            self.http_requests.clone(),
        );
        registry.register(
            "http_throttled",
            "Requests to Azure answered 429 Too Many Requests, by service",
            self.http_throttled.clone(),
        );
        registry.register(
            "http_retries",
            "Requests to Azure sent again after a retryable failure, by service",
            self.http_retries.clone(),
        );
        registry.register(
            "coalesced_reads",
            "Key Vault reads answered by an identical read already in flight",
            self.coalesced_reads.clone(),
        );
        registry.register(
            "duplicate_output_paths",
            "Files written by two objects of one mount (the driver keeps the later one)",
            self.duplicate_paths.clone(),
        );
        registry.register(
            "optional_objects_missing",
            "Optional objects left out of a mount because they do not exist, by object type",
            self.optional_missing.clone(),
        );
        registry.register(
            "mounts_in_flight",
            "Mount requests being served",
            self.mounts_in_flight.clone(),
        );
        registry.register(
            "mount_objects",
            "Objects per mount request",
            self.mount_objects.clone(),
        );
    }
}

/// Decrements `akv_mounts_in_flight` when dropped.
#[derive(Debug)]
pub struct InFlight {
    families: Arc<Families>,
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.families.mounts_in_flight.dec();
    }
}

/// The registry in the text exposition format (OpenMetrics).
pub fn encode(registry: &Registry) -> String {
    let mut text = String::new();
    // Writing into a String cannot fail.
    let _ = prometheus_client::encoding::text::encode(&mut text, registry);
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scrape(f: impl FnOnce(&Metrics)) -> String {
        let mut registry = Registry::default();
        let metrics = Metrics::register(&mut registry);
        f(&metrics);
        encode(&registry)
    }

    #[test]
    fn keyvault_request_has_upstream_name_labels_and_buckets() {
        let text = scrape(|m| {
            m.keyvault_request(
                ObjectType::Secret,
                "db-password",
                Duration::from_millis(120),
                None,
            );
            m.keyvault_request(
                ObjectType::Secret,
                "missing",
                Duration::from_millis(50),
                Some("SecretNotFound".into()),
            );
        });
        assert!(text.contains("# TYPE keyvault_request histogram"), "{text}");
        let ok = text
            .lines()
            .find(|l| {
                l.starts_with("keyvault_request_bucket")
                    && l.contains("le=\"0.2\"")
                    && l.contains("db-password")
            })
            .expect("a 0.2 bucket");
        for label in [
            "object_type=\"secret\"",
            "object_name=\"db-password\"",
            "error=\"\"",
            &format!("os_type=\"{}\"", std::env::consts::OS),
            "provider=\"azure\"",
            "service_name=\"csi-secrets-store-provider-azure\"",
        ] {
            assert!(ok.contains(label), "{label} in {ok}");
        }
        assert!(ok.ends_with(" 1"), "{ok}");
        assert!(text.contains("error=\"SecretNotFound\""), "{text}");
        let buckets: Vec<&str> = text
            .lines()
            .filter(|l| l.starts_with("keyvault_request_bucket") && l.contains("db-password"))
            .map(|l| l.split("le=\"").nth(1).unwrap().split('"').next().unwrap())
            .collect();
        assert_eq!(
            buckets,
            [
                "0.1", "0.2", "0.3", "0.4", "0.5", "1.0", "1.5", "2.0", "2.5", "3.0", "5.0",
                "10.0", "15.0", "30.0", "+Inf"
            ]
        );
    }

    #[test]
    fn our_counters_are_prefixed() {
        let text = scrape(|m| {
            m.token_request(IdentityKind::WorkloadIdentity, None);
            m.token_request(IdentityKind::ServicePrincipal, Some("AADSTS7000215".into()));
            m.token_cache(IdentityKind::WorkloadIdentity, true);
            m.http_request(Service::KeyVault, Some(429));
            m.http_request(Service::Aad, None);
            m.retry(Service::KeyVault);
            m.coalesced_read();
            m.optional_object_missing(ObjectType::Key);
            m.duplicate_output_path();
            let _guard = m.mount_started(3);
        });
        for line in [
            "akv_token_requests_total{mode=\"workload_identity\",result=\"success\"} 1",
            "akv_token_requests_total{mode=\"service_principal\",result=\"AADSTS7000215\"} 1",
            "akv_token_cache_lookups_total{mode=\"workload_identity\",result=\"hit\"} 1",
            "akv_http_requests_total{service=\"keyvault\",status_class=\"4xx\"} 1",
            "akv_http_requests_total{service=\"aad\",status_class=\"error\"} 1",
            "akv_http_throttled_total{service=\"keyvault\"} 1",
            "akv_http_retries_total{service=\"keyvault\"} 1",
            "akv_coalesced_reads_total 1",
            "akv_optional_objects_missing_total{object_type=\"key\"} 1",
            "akv_duplicate_output_paths_total 1",
            "akv_mount_objects_bucket{le=\"5.0\"} 1",
        ] {
            assert!(text.lines().any(|l| l == line), "{line} in\n{text}");
        }
    }

    #[test]
    fn in_flight_gauge_follows_the_guard() {
        let mut registry = Registry::default();
        let metrics = Metrics::register(&mut registry);
        let guard = metrics.mount_started(1);
        assert!(encode(&registry).contains("akv_mounts_in_flight 1\n"));
        drop(guard);
        assert!(encode(&registry).contains("akv_mounts_in_flight 0\n"));
    }
}
