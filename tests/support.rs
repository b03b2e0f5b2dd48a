//! Everything the integration tests share: the harness that starts the
//! fake and the provider, the driver imitation, the old drivers' HTTP/2
//! client, and the fixtures and helpers of each topic. Failures are
//! injected through the fake's fault API (`fake_azure::FakeAzure`), never
//! through hooks in the provider.

// The real provider on a temporary socket, the fake on loopback.
pub mod harness;
// The Secrets Store CSI Driver v1.6 on the provider's side of the socket
// (also used by examples/).
pub mod driver;
// Drivers ≤ v1.5: `:authority` is the socket path (also used by
// src/authority/tests.rs).
pub mod raw_h2;
// Streams that send part of a message and stall (HTTP/2 flow control by h2).
pub mod stalled;
// PKI fixtures, key and certificate seeds, `objects` YAML.
pub mod objects;
// Every identity mode: seeds, SecretProviderClasses, tokens, error checks.
pub mod identities;
// Many pods, each with its own token, reading secrets s0..sN.
pub mod pods;
// A provider under faults and the success-or-named-endpoint check.
pub mod chaos;
// Upstream's real provider (built from its Go module) on a socket of its
// own, against the same fake.
pub mod upstream;
// The differential test's cases, comparison and differences table.
pub mod differential;
