//! Integration tests: the real provider binary on a unix socket, driven like
//! the Secrets Store CSI Driver, against the bundled Azure fake reached
//! through an HTTPS proxy on loopback. `make test` runs them inside a
//! loopback-only network namespace. Each file is named for the behaviour it
//! tests; `docs/compatibility.md` maps upstream's behaviours to tests.

// Harness, driver imitation, fixtures and per-topic helpers.
mod support;

// The blog walkthrough and the mount contract: parameters, files, object
// versions, declaration order, all-or-nothing failures.
mod mount;
// Object types, formats, encodings and version history, byte for byte.
mod objects;
// Which identity a class chooses, and every identity mode end to end.
mod identities;
// Sovereign clouds and Azure Stack: vault host, authority and scope.
mod clouds;
// The token cache, single-flight of tokens and reads, the value cache.
mod caching;
// --token-cache-scope=service-account: verified tokens share one exchange.
mod token_scope;
// A burst on a freshly started provider: one connection per Azure host.
mod cold_start;
// Per-request, per-mount and driver deadlines, and their errors.
mod timeouts;
// 5xx and cut-off answers retried, 429 and Retry-After, --keyvault-qps.
mod retries_and_throttling;
// Faults of every endpoint (stalls, resets, malformed answers, endpoints
// down): success or an error naming the endpoint, nothing leaked.
mod faults;
// Response size, objects per mount, YAML nesting, the driver's path rules.
mod limits;
// One line per mount, text and JSON, -v, and no secret at any verbosity.
mod logs;
// /metrics scraped and parsed: upstream's histograms, ours, bounded labels.
mod metrics;
// Upstream's flag lists, klog flags, --version, /healthz, /readyz.
mod operations;
// Version, old drivers' :authority, socket permissions, shutdown.
mod socket;
// Extensions over upstream: optional objects, jmesPath, PEM → PFX, a vault per object.
mod extensions;
// `akv-csi-provider mount`: the SecretProviderClass dry run.
mod dryrun;
// The same Mount requests to upstream's real provider and ours, compared.
mod differential;
// The kind e2e's seed and manifests (deploy/), mounted here without a cluster.
mod deploy;
