//! Fault injection: added latency, throttling (429 + `Retry-After`) and
//! server errors, per target service; and transport faults: no answer at
//! all, a connection reset in the middle of the body, a body cut in half
//! (malformed JSON), a body that stalls half-way.
//!
//! This module only decides *whether* a request is hit; the handlers in
//! `aad.rs` and `keyvault.rs` shape the response the way each service would,
//! and `server.rs` breaks the transport. Faults apply to every request to
//! the target (including Key Vault's unauthenticated challenge probe) until
//! their count or deadline runs out. When both are set, throttling is
//! consumed before server errors; a transport fault applies on top of
//! whatever the handler answered.

use serde::{Deserialize, Serialize};
use std::time::{Duration, Instant};

/// Which fake service a fault applies to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Target {
    /// Entra ID (token and metadata endpoints).
    Aad,
    /// Key Vault (every vault).
    #[serde(alias = "keyvault")]
    KeyVault,
    /// The instance metadata service's token endpoint (VM managed identity).
    Imds,
    /// aad-pod-identity's NMI token endpoint.
    Nmi,
    /// The AKS token proxy (identity binding).
    TokenProxy,
}

/// How long a fault lasts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Limit {
    /// The next `n` requests.
    Count(u32),
    /// Every request until this instant.
    Until(Instant),
}

/// What a request hit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Injected {
    /// Answer 429, with `Retry-After` when given.
    Throttled { retry_after_secs: Option<u64> },
    /// Answer with this 5xx status.
    ServerError(u16),
    /// Answer 401 with the request's credential (client secret, assertion
    /// or bearer token) in the error text: a service that echoes it.
    EchoCredential,
}

/// What a transport fault does to a response (HTTP/1.1 closes the
/// connection where this says reset; HTTP/2 resets the stream).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transport {
    /// No answer at all: reset before any header is sent.
    Drop,
    /// Status, headers (with the full `Content-Length`) and the first half
    /// of the body, then a reset.
    ResetMidBody,
    /// The answer with its body cut in half, so JSON does not parse.
    Malformed,
    /// The first half of the body, then a pause, then the rest.
    StallBody(Duration),
}

/// Kinds of [`Transport`] faults in a [`TransportSpec`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TransportKind {
    /// [`Transport::Drop`].
    Drop,
    /// [`Transport::ResetMidBody`].
    ResetMidBody,
    /// [`Transport::Malformed`].
    Malformed,
    /// [`Transport::StallBody`] for `stall_ms`.
    StallBody,
}

/// A transport fault for the next `count` requests (default 1).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TransportSpec {
    /// What happens to the response.
    pub kind: TransportKind,
    /// Number of requests hit.
    #[serde(default)]
    pub count: Option<u32>,
    /// The pause of `stall_body`, in milliseconds.
    #[serde(default)]
    pub stall_ms: Option<u64>,
}

/// A fault as sent to `POST /_fake/faults`. Any combination of the fields
/// may be given; each replaces the target's current fault of its kind.
///
/// ```json
/// {"target": "key_vault", "latency_ms": 250}
/// {"target": "aad", "throttle": {"retry_after_secs": 2, "count": 3}}
/// {"target": "key_vault", "throttle": {"for_ms": 5000}}
/// {"target": "key_vault", "fail_5xx": {"status": 503, "count": 1}}
/// {"target": "imds", "transport": {"kind": "malformed", "count": 2}}
/// {"target": "key_vault", "transport": {"kind": "stall_body", "stall_ms": 3000}}
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FaultSpec {
    /// `aad`, `key_vault` (`keyvault` also accepted), `imds`, `nmi` or
    /// `token_proxy`.
    pub target: Target,
    /// Delay before each response, in milliseconds (0 clears it).
    #[serde(default)]
    pub latency_ms: Option<u64>,
    /// Throttle requests.
    #[serde(default)]
    pub throttle: Option<ThrottleSpec>,
    /// Fail requests with a 5xx status.
    #[serde(default)]
    pub fail_5xx: Option<FailSpec>,
    /// Break the transport of responses.
    #[serde(default)]
    pub transport: Option<TransportSpec>,
    /// Echo the request's credential in a 401 error, for this many
    /// requests (Entra ID and Key Vault only).
    #[serde(default)]
    pub echo_credential: Option<u32>,
}

/// Throttling, by count or for a duration (count wins if both are given;
/// neither means one request).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ThrottleSpec {
    /// Value of the `Retry-After` header, in seconds.
    #[serde(default)]
    pub retry_after_secs: Option<u64>,
    /// Number of requests to throttle.
    #[serde(default)]
    pub count: Option<u32>,
    /// Throttle for this many milliseconds from now.
    #[serde(default)]
    pub for_ms: Option<u64>,
}

/// Server errors for the next `count` requests.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FailSpec {
    /// A status in 500..=599.
    pub status: u16,
    /// Number of requests to fail.
    pub count: u32,
}

#[derive(Debug, Default)]
struct TargetFaults {
    latency: Duration,
    throttle: Option<(Option<u64>, Limit)>,
    fail: Option<(u16, u32)>,
    transport: Option<(Transport, u32)>,
    echo: u32,
}

/// The faults currently armed, per target.
#[derive(Debug, Default)]
pub(crate) struct Faults {
    aad: TargetFaults,
    key_vault: TargetFaults,
    imds: TargetFaults,
    nmi: TargetFaults,
    token_proxy: TargetFaults,
    /// Extra Key Vault latency by object name, on top of the target's.
    object_latency: std::collections::HashMap<String, Duration>,
}

// === impl Faults ===

impl Faults {
    fn slot(&mut self, target: Target) -> &mut TargetFaults {
        match target {
            Target::Aad => &mut self.aad,
            Target::KeyVault => &mut self.key_vault,
            Target::Imds => &mut self.imds,
            Target::Nmi => &mut self.nmi,
            Target::TokenProxy => &mut self.token_proxy,
        }
    }

    pub(crate) fn latency(&mut self, target: Target) -> Duration {
        self.slot(target).latency
    }

    pub(crate) fn set_latency(&mut self, target: Target, latency: Duration) {
        self.slot(target).latency = latency;
    }

    /// Delays Key Vault requests for the object `name` (zero clears it).
    pub(crate) fn set_object_latency(&mut self, name: &str, latency: Duration) {
        if latency.is_zero() {
            self.object_latency.remove(name);
        } else {
            self.object_latency.insert(name.to_string(), latency);
        }
    }

    pub(crate) fn object_latency(&self, name: &str) -> Duration {
        self.object_latency.get(name).copied().unwrap_or_default()
    }

    pub(crate) fn throttle(&mut self, target: Target, retry_after_secs: Option<u64>, limit: Limit) {
        self.slot(target).throttle = Some((retry_after_secs, limit));
    }

    /// Arms server errors; `status` must be 5xx.
    pub(crate) fn fail_5xx(
        &mut self,
        target: Target,
        status: u16,
        count: u32,
    ) -> Result<(), String> {
        if !(500..=599).contains(&status) {
            return Err(format!("status {status} is not a 5xx status"));
        }
        self.slot(target).fail = Some((status, count));
        Ok(())
    }

    /// Arms a transport fault for the next `count` requests.
    pub(crate) fn transport(&mut self, target: Target, fault: Transport, count: u32) {
        self.slot(target).transport = (count > 0).then_some((fault, count));
    }

    /// Consumes one transport fault for a request to `target`, if armed.
    pub(crate) fn take_transport(&mut self, target: Target) -> Option<Transport> {
        let slot = self.slot(target);
        let (fault, n) = slot.transport?;
        slot.transport = (n > 1).then_some((fault, n - 1));
        Some(fault)
    }

    pub(crate) fn clear(&mut self) {
        *self = Self::default();
    }

    /// Echoes the credential of the next `count` requests.
    pub(crate) fn echo_credential(&mut self, target: Target, count: u32) {
        self.slot(target).echo = count;
    }

    /// Applies a control-API spec.
    pub(crate) fn apply(&mut self, spec: &FaultSpec, now: Instant) -> Result<(), String> {
        if let Some(count) = spec.echo_credential {
            self.echo_credential(spec.target, count);
        }
        if let Some(f) = &spec.fail_5xx {
            self.fail_5xx(spec.target, f.status, f.count)?;
        }
        if let Some(t) = &spec.transport {
            let fault = match t.kind {
                TransportKind::Drop => Transport::Drop,
                TransportKind::ResetMidBody => Transport::ResetMidBody,
                TransportKind::Malformed => Transport::Malformed,
                TransportKind::StallBody => {
                    let ms = t.stall_ms.ok_or("stall_body needs stall_ms")?;
                    Transport::StallBody(Duration::from_millis(ms))
                }
            };
            self.transport(spec.target, fault, t.count.unwrap_or(1));
        }
        if let Some(ms) = spec.latency_ms {
            self.set_latency(spec.target, Duration::from_millis(ms));
        }
        if let Some(t) = &spec.throttle {
            let limit = match (t.count, t.for_ms) {
                (Some(n), _) => Limit::Count(n),
                // A deadline past what Instant can hold means "forever".
                (None, Some(ms)) => now
                    .checked_add(Duration::from_millis(ms))
                    .map_or(Limit::Count(u32::MAX), Limit::Until),
                (None, None) => Limit::Count(1),
            };
            self.throttle(spec.target, t.retry_after_secs, limit);
        }
        Ok(())
    }

    /// Consumes one fault for a request to `target`, if one is armed.
    pub(crate) fn take(&mut self, target: Target, now: Instant) -> Option<Injected> {
        let slot = self.slot(target);
        if slot.echo > 0 {
            slot.echo -= 1;
            return Some(Injected::EchoCredential);
        }
        if let Some((retry_after_secs, limit)) = slot.throttle {
            match limit {
                Limit::Count(n) if n > 0 => {
                    slot.throttle = (n > 1).then_some((retry_after_secs, Limit::Count(n - 1)));
                    return Some(Injected::Throttled { retry_after_secs });
                }
                Limit::Until(deadline) if now < deadline => {
                    return Some(Injected::Throttled { retry_after_secs });
                }
                _ => slot.throttle = None,
            }
        }
        if let Some((status, n)) = slot.fail {
            slot.fail = (n > 1).then_some((status, n - 1));
            if n > 0 {
                return Some(Injected::ServerError(status));
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counted_faults_run_out_throttle_first() {
        let now = Instant::now();
        let mut f = Faults::default();
        f.throttle(Target::KeyVault, Some(2), Limit::Count(1));
        f.fail_5xx(Target::KeyVault, 503, 2).expect("5xx");
        assert_eq!(f.take(Target::Aad, now), None);
        assert_eq!(
            f.take(Target::KeyVault, now),
            Some(Injected::Throttled {
                retry_after_secs: Some(2)
            })
        );
        assert_eq!(
            f.take(Target::KeyVault, now),
            Some(Injected::ServerError(503))
        );
        assert_eq!(
            f.take(Target::KeyVault, now),
            Some(Injected::ServerError(503))
        );
        assert_eq!(f.take(Target::KeyVault, now), None);
    }

    #[test]
    fn timed_throttle_expires() {
        let now = Instant::now();
        let mut f = Faults::default();
        f.throttle(
            Target::Aad,
            None,
            Limit::Until(now + Duration::from_secs(1)),
        );
        assert!(f.take(Target::Aad, now).is_some());
        assert!(f.take(Target::Aad, now + Duration::from_secs(2)).is_none());
        assert!(f.take(Target::Aad, now).is_none());
    }

    #[test]
    fn specs_parse_and_validate() {
        let spec: FaultSpec = serde_json::from_str(
            r#"{"target":"keyvault","latency_ms":5,"throttle":{"for_ms":100},"fail_5xx":{"status":500,"count":1}}"#,
        )
        .expect("parses");
        let now = Instant::now();
        let mut f = Faults::default();
        f.apply(&spec, now).expect("applies");
        assert_eq!(f.latency(Target::KeyVault), Duration::from_millis(5));
        let bad: FaultSpec =
            serde_json::from_str(r#"{"target":"aad","fail_5xx":{"status":404,"count":1}}"#)
                .expect("parses");
        assert!(f.apply(&bad, now).is_err());
        f.clear();
        assert_eq!(f.take(Target::KeyVault, now), None);
    }

    #[test]
    fn transport_faults_are_counted_per_target() {
        let spec: FaultSpec = serde_json::from_str(
            r#"{"target":"imds","transport":{"kind":"stall_body","stall_ms":30,"count":2}}"#,
        )
        .expect("parses");
        let mut f = Faults::default();
        f.apply(&spec, Instant::now()).expect("applies");
        assert_eq!(f.take_transport(Target::Aad), None);
        let stall = Some(Transport::StallBody(Duration::from_millis(30)));
        assert_eq!(f.take_transport(Target::Imds), stall);
        assert_eq!(f.take_transport(Target::Imds), stall);
        assert_eq!(f.take_transport(Target::Imds), None);
        let no_ms: FaultSpec =
            serde_json::from_str(r#"{"target":"nmi","transport":{"kind":"stall_body"}}"#)
                .expect("parses");
        assert!(f.apply(&no_ms, Instant::now()).is_err());
        f.transport(Target::Nmi, Transport::Malformed, 1);
        assert_eq!(
            f.take(Target::Nmi, Instant::now()),
            None,
            "not a service fault"
        );
        assert_eq!(f.take_transport(Target::Nmi), Some(Transport::Malformed));
    }
}
