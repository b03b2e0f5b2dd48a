//! Per-vault admission shared by every mount on the node: when Key Vault
//! answers 429 for a vault, every later request to that vault waits out the
//! `Retry-After` window (not only the request that saw it), and an optional
//! request rate per vault (`--keyvault-qps`) spaces requests out before Key
//! Vault has to throttle at all.
//!
//! The decision to retry is `retry`'s; this module only holds the shared
//! state and makes callers wait. A wait that would end after the caller's
//! deadline is refused at once, so a mount fails fast with a clear error
//! instead of sleeping into kubelet's timeout.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

/// Vault entries kept before idle ones are dropped.
const MAX_VAULTS: usize = 4096;

/// A wait that does not fit in the caller's budget.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Busy {
    /// How long the vault would make the caller wait.
    pub wait: Duration,
    /// Whether the wait comes from Key Vault's 429 (else from our own rate).
    pub throttled: bool,
}

#[derive(Clone, Copy, Debug)]
struct Gate {
    /// No request before this instant (Key Vault said 429).
    blocked_until: Option<Instant>,
    /// The next free slot of the rate limit.
    next_slot: Instant,
}

/// Shared per-vault state.
#[derive(Debug)]
pub struct VaultGates {
    gates: Mutex<HashMap<String, Gate>>,
    /// Spacing between two requests to one vault, when rate-limited.
    interval: Option<Duration>,
}

impl VaultGates {
    /// `qps`: requests per second per vault, or `None` for no limit.
    pub fn new(qps: Option<f64>) -> Self {
        let interval = qps
            .filter(|q| q.is_finite() && *q > 0.0)
            .map(|q| Duration::from_secs_f64(1.0 / q));
        Self {
            gates: Mutex::new(HashMap::new()),
            interval,
        }
    }

    /// Waits until `vault` may be sent a request; refuses if that would be
    /// after `deadline`.
    pub async fn admit(&self, vault: &str, deadline: Instant) -> Result<(), Busy> {
        let ready = self.reserve(vault, Instant::now(), deadline)?;
        tokio::time::sleep_until(ready).await;
        Ok(())
    }

    /// Records Key Vault's 429 with the wait it asked for.
    pub fn throttled(&self, vault: &str, wait: Duration) {
        let until = Instant::now() + wait;
        let mut gates = self.lock();
        let gate = gates.entry(vault.to_owned()).or_insert(Gate {
            blocked_until: None,
            next_slot: Instant::now(),
        });
        gate.blocked_until = Some(gate.blocked_until.map_or(until, |b| b.max(until)));
    }

    /// Reserves the caller's slot and returns when it may send.
    fn reserve(&self, vault: &str, now: Instant, deadline: Instant) -> Result<Instant, Busy> {
        let mut gates = self.lock();
        if gates.len() >= MAX_VAULTS {
            gates.retain(|_, g| g.blocked_until.is_some_and(|b| b > now) || g.next_slot > now);
        }
        let gate = gates.entry(vault.to_owned()).or_insert(Gate {
            blocked_until: None,
            next_slot: now,
        });
        let blocked = gate.blocked_until.filter(|b| *b > now);
        let mut ready = blocked.unwrap_or(now);
        if self.interval.is_some() {
            ready = ready.max(gate.next_slot);
        }
        if ready > deadline {
            return Err(Busy {
                wait: ready - now,
                throttled: blocked.is_some_and(|b| b >= ready),
            });
        }
        if let Some(interval) = self.interval {
            gate.next_slot = ready + interval;
        }
        Ok(ready)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Gate>> {
        // A poisoned lock only means another thread panicked while holding
        // it; the map of instants is still consistent.
        self.gates.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FAR: Duration = Duration::from_secs(100);

    #[tokio::test(start_paused = true)]
    async fn no_limits_admit_at_once() {
        let gates = VaultGates::new(None);
        let start = Instant::now();
        for _ in 0..100 {
            gates.admit("kv", start + FAR).await.unwrap();
        }
        assert_eq!(Instant::now(), start);
    }

    #[tokio::test(start_paused = true)]
    async fn a_429_holds_every_caller_of_that_vault_only() {
        let gates = VaultGates::new(None);
        let start = Instant::now();
        gates.throttled("kv", Duration::from_secs(2));
        gates.admit("other", start + FAR).await.unwrap();
        assert_eq!(Instant::now(), start, "other vaults are not held");
        gates.admit("kv", start + FAR).await.unwrap();
        assert_eq!(Instant::now(), start + Duration::from_secs(2));
        gates.admit("kv", start + FAR).await.unwrap();
        assert_eq!(
            Instant::now(),
            start + Duration::from_secs(2),
            "the window is over"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn waits_past_the_deadline_are_refused_at_once() {
        let gates = VaultGates::new(None);
        let start = Instant::now();
        gates.throttled("kv", Duration::from_secs(10));
        let busy = gates
            .admit("kv", start + Duration::from_secs(3))
            .await
            .unwrap_err();
        assert_eq!(
            busy,
            Busy {
                wait: Duration::from_secs(10),
                throttled: true
            }
        );
        assert_eq!(Instant::now(), start, "no sleeping when the answer is no");
    }

    #[tokio::test(start_paused = true)]
    async fn a_later_shorter_429_does_not_shorten_the_window() {
        let gates = VaultGates::new(None);
        let start = Instant::now();
        gates.throttled("kv", Duration::from_secs(5));
        gates.throttled("kv", Duration::from_secs(1));
        gates.admit("kv", start + FAR).await.unwrap();
        assert_eq!(Instant::now(), start + Duration::from_secs(5));
    }

    #[tokio::test(start_paused = true)]
    async fn rate_limit_spaces_requests() {
        let gates = VaultGates::new(Some(10.0));
        let start = Instant::now();
        for _ in 0..5 {
            gates.admit("kv", start + FAR).await.unwrap();
        }
        assert_eq!(Instant::now(), start + Duration::from_millis(400));
        let busy = gates
            .admit("kv", start + Duration::from_millis(450))
            .await
            .unwrap_err();
        assert!(!busy.throttled, "our own rate, not Key Vault's 429");
    }

    #[test]
    fn invalid_rates_mean_no_limit() {
        assert!(VaultGates::new(Some(0.0)).interval.is_none());
        assert!(VaultGates::new(Some(f64::NAN)).interval.is_none());
        assert!(VaultGates::new(Some(-1.0)).interval.is_none());
    }
}
