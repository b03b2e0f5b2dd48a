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
//!
//! The rate limit is a token bucket (GCRA) holding one second of requests:
//! a mount of a few objects is not slowed down, a wave of mounts is spread
//! out at `qps`. Callers held by a 429 window leave it with a little jitter
//! (up to a tenth of the window, at most one second), so they do not all
//! come back in the same millisecond.

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
    /// No request before this instant (Key Vault said 429) …
    blocked_until: Option<Instant>,
    /// … for a window this long (scales the jitter on leaving it).
    window: Duration,
    /// The rate limit's theoretical arrival time (GCRA).
    tat: Instant,
}

/// What a caller may do now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Admission {
    /// Send at this instant (now, or a reserved rate-limit slot).
    At(Instant),
    /// The vault is in a 429 window: wait until then and ask again.
    Blocked(Instant),
}

/// Shared per-vault state.
#[derive(Debug)]
pub struct VaultGates {
    gates: Mutex<HashMap<String, Gate>>,
    /// Spacing between two requests to one vault, when rate-limited.
    interval: Option<Duration>,
    /// How far ahead of its spacing a burst may run (the bucket's depth
    /// less one request).
    tolerance: Duration,
}

impl VaultGates {
    /// `qps`: requests per second per vault, or `None` for no limit.
    pub fn new(qps: Option<f64>) -> Self {
        let qps = qps.filter(|q| q.is_finite() && *q > 0.0);
        let interval = qps.map(|q| Duration::from_secs_f64(1.0 / q));
        // A bucket of one second's worth of requests, at least one.
        let depth = qps.map_or(1.0, |q| q.ceil().max(1.0));
        let tolerance = interval.map_or(Duration::ZERO, |i| i.mul_f64(depth - 1.0));
        Self {
            gates: Mutex::new(HashMap::new()),
            interval,
            tolerance,
        }
    }

    /// Waits until `vault` may be sent a request; refuses (without waiting)
    /// if that would be after `deadline`. `jitter` in `[0, 1)` spreads the
    /// callers leaving a 429 window.
    pub async fn admit(&self, vault: &str, deadline: Instant, jitter: f64) -> Result<(), Busy> {
        loop {
            match self.reserve(vault, Instant::now(), deadline)? {
                Admission::At(at) => {
                    tokio::time::sleep_until(at).await;
                    // A 429 that arrived while we waited for our slot wins.
                    if self.blocked(vault, Instant::now()).is_none() {
                        return Ok(());
                    }
                }
                Admission::Blocked(until) => {
                    let spread = self.spread(vault).mul_f64(jitter.clamp(0.0, 1.0));
                    tokio::time::sleep_until((until + spread).min(deadline)).await;
                }
            }
        }
    }

    /// Records Key Vault's 429 with the wait it asked for.
    pub fn throttled(&self, vault: &str, wait: Duration) {
        let now = Instant::now();
        let until = now + wait;
        let mut gates = self.lock();
        let gate = gates.entry(vault.to_owned()).or_insert(Gate {
            blocked_until: None,
            window: Duration::ZERO,
            tat: now,
        });
        if gate.blocked_until.is_none_or(|b| b < until) {
            gate.blocked_until = Some(until);
            gate.window = wait;
        }
    }

    /// The end of `vault`'s 429 window, if it is in one.
    fn blocked(&self, vault: &str, now: Instant) -> Option<Instant> {
        self.lock()
            .get(vault)
            .and_then(|g| g.blocked_until)
            .filter(|b| *b > now)
    }

    /// Up to a tenth of the current window, at most one second.
    fn spread(&self, vault: &str) -> Duration {
        let window = self.lock().get(vault).map_or(Duration::ZERO, |g| g.window);
        (window / 10).min(Duration::from_secs(1))
    }

    /// Decides for a caller arriving at `now`; reserves its rate-limit slot
    /// when it is admitted.
    fn reserve(&self, vault: &str, now: Instant, deadline: Instant) -> Result<Admission, Busy> {
        let mut gates = self.lock();
        if gates.len() >= MAX_VAULTS {
            gates.retain(|_, g| g.blocked_until.is_some_and(|b| b > now) || g.tat > now);
        }
        let gate = gates.entry(vault.to_owned()).or_insert(Gate {
            blocked_until: None,
            window: Duration::ZERO,
            tat: now,
        });
        if let Some(until) = gate.blocked_until.filter(|b| *b > now) {
            if until > deadline {
                return Err(Busy {
                    wait: until - now,
                    throttled: true,
                });
            }
            return Ok(Admission::Blocked(until));
        }
        let Some(interval) = self.interval else {
            return Ok(Admission::At(now));
        };
        let at = now.max(gate.tat.checked_sub(self.tolerance).unwrap_or(now));
        if at > deadline {
            return Err(Busy {
                wait: at - now,
                throttled: false,
            });
        }
        gate.tat = gate.tat.max(at) + interval;
        Ok(Admission::At(at))
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
            gates.admit("kv", start + FAR, 0.5).await.unwrap();
        }
        assert_eq!(Instant::now(), start);
    }

    #[tokio::test(start_paused = true)]
    async fn a_429_holds_every_caller_of_that_vault_only() {
        let gates = VaultGates::new(None);
        let start = Instant::now();
        gates.throttled("kv", Duration::from_secs(2));
        gates.admit("other", start + FAR, 0.0).await.unwrap();
        assert_eq!(Instant::now(), start, "other vaults are not held");
        gates.admit("kv", start + FAR, 0.0).await.unwrap();
        assert_eq!(Instant::now(), start + Duration::from_secs(2));
        gates.admit("kv", start + FAR, 0.0).await.unwrap();
        assert_eq!(
            Instant::now(),
            start + Duration::from_secs(2),
            "the window is over"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn callers_leave_a_window_with_jitter() {
        let gates = VaultGates::new(None);
        let start = Instant::now();
        gates.throttled("kv", Duration::from_secs(4));
        gates.admit("kv", start + FAR, 0.5).await.unwrap();
        // A tenth of 4 s, times 0.5.
        assert_eq!(Instant::now(), start + Duration::from_millis(4200));
    }

    #[tokio::test(start_paused = true)]
    async fn waits_past_the_deadline_are_refused_at_once() {
        let gates = VaultGates::new(None);
        let start = Instant::now();
        gates.throttled("kv", Duration::from_secs(10));
        let busy = gates
            .admit("kv", start + Duration::from_secs(3), 0.0)
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
        gates.admit("kv", start + FAR, 0.0).await.unwrap();
        assert_eq!(Instant::now(), start + Duration::from_secs(5));
    }

    #[tokio::test(start_paused = true)]
    async fn a_429_during_a_rate_limit_wait_still_holds_the_caller() {
        let gates = std::sync::Arc::new(VaultGates::new(Some(1.0)));
        let start = Instant::now();
        gates.admit("kv", start + FAR, 0.0).await.unwrap();
        let waiting = {
            let gates = gates.clone();
            tokio::spawn(async move { gates.admit("kv", start + FAR, 0.0).await })
        };
        tokio::time::sleep(Duration::from_millis(500)).await;
        gates.throttled("kv", Duration::from_secs(3));
        waiting.await.unwrap().unwrap();
        assert!(Instant::now() >= start + Duration::from_millis(3500));
    }

    #[tokio::test(start_paused = true)]
    async fn rate_limit_allows_a_second_of_burst_then_spaces_requests() {
        let gates = VaultGates::new(Some(10.0));
        let start = Instant::now();
        for _ in 0..10 {
            gates.admit("kv", start + FAR, 0.0).await.unwrap();
        }
        assert_eq!(Instant::now(), start, "a bucket of 10");
        for _ in 0..5 {
            gates.admit("kv", start + FAR, 0.0).await.unwrap();
        }
        assert_eq!(Instant::now(), start + Duration::from_millis(500));
        let busy = gates
            .admit("kv", start + Duration::from_millis(550), 0.0)
            .await
            .unwrap_err();
        assert!(!busy.throttled, "our own rate, not Key Vault's 429");
        assert_eq!(busy.wait, Duration::from_millis(100));
        gates.admit("other", start + FAR, 0.0).await.unwrap();
        assert_eq!(
            Instant::now(),
            start + Duration::from_millis(500),
            "per vault"
        );
    }

    #[test]
    fn invalid_rates_mean_no_limit() {
        assert!(VaultGates::new(Some(0.0)).interval.is_none());
        assert!(VaultGates::new(Some(f64::NAN)).interval.is_none());
        assert!(VaultGates::new(Some(-1.0)).interval.is_none());
    }
}
