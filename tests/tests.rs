//! Integration tests: the real provider binary on a unix socket, driven like
//! the Secrets Store CSI Driver, against the bundled Azure fake reached
//! through an HTTPS proxy on loopback. `make test` runs them inside a
//! loopback-only network namespace.

// Harness: starts the fake and the provider; the driver imitation.
#[path = "support/driver.rs"]
mod driver;
#[path = "support/raw_h2.rs"]
mod raw_h2;
mod util;

// The kind e2e's seed and manifests (deploy/), mounted here without a cluster.
mod deploy;
// The blog walkthrough and the mount contract (files, modes, versions, errors).
mod mount;
// Keys, certificates, certificate-backed secrets, version history, clouds:
// object parity with the upstream provider, by checklist item.
mod objects;
// Version, old drivers' :authority, shutdown, socket permissions.
mod server;
// Upstream's flag lists, klog flags, --version, /healthz, /readyz.
mod operations;
// /metrics scraped and parsed: upstream's histograms, ours, bounded labels.
mod metrics;
// One line per mount, text and JSON, -v, and no secret at any verbosity.
mod logs;
// `akv-csi-provider mount`: the SecretProviderClass dry run.
mod dryrun;
// Every identity mode, sovereign clouds, the token cache, timeouts, hints.
mod identity;
// Faults of every endpoint (throttling, 5xx, stalls, resets, malformed
// answers): success or an error naming the endpoint, nothing leaked.
mod chaos;
// Response size, objects per mount, YAML nesting, the driver's path rules.
mod limits;
// Extensions over upstream: optional objects, jmesPath, PEM → PFX, a vault per object.
mod extensions;
// Under load: coalescing, the value cache, throttling, retries, fail-fast.
mod load;
