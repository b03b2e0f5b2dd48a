//! The retry layer around [`Http::send`]: one loop, used by Key Vault reads
//! and Entra ID token requests alike, that sends, classifies the outcome
//! (`retry::classify_status`, transport failures), asks `retry::Policy`
//! whether another try fits in the mount's remaining time, and sleeps.
//!
//! For Key Vault the loop also goes through the vault's gate
//! (`throttle::VaultGates`) before every try, and reports a 429 to it, so
//! one mount's `Retry-After` holds every mount's requests to that vault. A
//! wait that does not fit in the budget ends the loop with
//! [`RetryError::Busy`], which the caller turns into an error naming the
//! vault.
//!
//! The deadline is the mount's, from the [`Context`] every caller passes;
//! there is no fallback. This module must not know object types or
//! identities.

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use reqwest::RequestBuilder;
use thiserror::Error;
use tokio::time::Instant;

use super::{Endpoint, Http, Response, SendError};
use crate::budget::Context;
use crate::retry::{self, Decision, Outcome, Policy};
use crate::throttle::VaultGates;

/// Kept free at the end of the budget for the try after a wait: a retry
/// that could only start in the last moment is not worth making.
const TRY_ALLOWANCE: Duration = Duration::from_millis(250);

/// How one exchange is retried.
#[derive(Clone, Copy, Debug)]
pub struct Retry<'a> {
    pub policy: Policy,
    /// Key Vault: the vault's shared gate.
    pub gate: Option<Gate<'a>>,
}

/// A vault's place in the shared gates.
#[derive(Clone, Copy, Debug)]
pub struct Gate<'a> {
    pub gates: &'a VaultGates,
    /// The gate's key: the vault's base URL.
    pub vault: &'a str,
}

/// A retried exchange that ended without a response the caller can decode.
#[derive(Clone, Debug, Error)]
pub enum RetryError {
    /// The last try got no response.
    #[error(transparent)]
    Send(SendError),
    /// Waiting for the vault would outlast the mount: Key Vault's 429
    /// window (`throttled`) or our own `--keyvault-qps`.
    #[error("waiting {wait:?} for the vault does not fit in the {remaining:?} left")]
    Busy {
        wait: Duration,
        remaining: Duration,
        throttled: bool,
        /// Tries made (0 when the gate refused before the first).
        attempts: u32,
    },
}

impl Http {
    /// Sends the request `build` makes, again after retryable failures,
    /// within the mount's budget. A final error *response* (4xx, or 5xx
    /// after the last try) is returned as `Ok` for the caller to decode.
    pub async fn send_retrying(
        &self,
        cx: &Context,
        build: impl Fn() -> RequestBuilder,
        endpoint: Endpoint<'_>,
        retry: Retry<'_>,
    ) -> Result<Response, RetryError> {
        // A budget error names the endpoint during waits between tries too.
        let _waiting = cx.waiting_on(endpoint.url);
        run(
            cx.deadline(),
            retry,
            || self.send(cx, build(), endpoint),
            || self.metrics.retry(endpoint.service),
        )
        .await
    }
}

/// The loop, over any attempt (unit tests pass canned answers).
async fn run<F, Fut>(
    deadline: Instant,
    retry: Retry<'_>,
    mut attempt: F,
    on_retry: impl Fn(),
) -> Result<Response, RetryError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<Response, SendError>>,
{
    let last_start = deadline.checked_sub(TRY_ALLOWANCE).unwrap_or(deadline);
    let mut tries = 0;
    loop {
        if let Some(gate) = retry.gate {
            gate.gates
                .admit(gate.vault, last_start, jitter())
                .await
                .map_err(|busy| RetryError::Busy {
                    wait: busy.wait,
                    remaining: deadline.saturating_duration_since(Instant::now()),
                    throttled: busy.throttled,
                    attempts: tries,
                })?;
        }
        tries += 1;
        let result = attempt().await;
        let Some(outcome) = classify(&result) else {
            return result.map_err(RetryError::Send);
        };
        let remaining = last_start.saturating_duration_since(Instant::now());
        let decision = retry.policy.decide(tries, outcome, remaining, jitter());
        if let (Outcome::Throttled { retry_after }, Some(gate)) = (outcome, retry.gate) {
            // Everyone waits out what Key Vault asked for (capped like our
            // own waits), or our backoff when it named no time.
            let window = match decision {
                Decision::Retry { after } => after,
                Decision::OutOfBudget { wanted } => wanted,
                _ => retry.policy.backoff(tries, 0.5),
            };
            let window = retry_after.map_or(window, |asked| asked.min(retry.policy.max));
            gate.gates.throttled(gate.vault, window);
        }
        match decision {
            Decision::Retry { after } => {
                on_retry();
                tokio::time::sleep(after).await;
            }
            Decision::OutOfBudget { wanted }
                if retry.gate.is_some() && matches!(outcome, Outcome::Throttled { .. }) =>
            {
                let asked = match outcome {
                    Outcome::Throttled { retry_after } => retry_after,
                    _ => None,
                };
                return Err(RetryError::Busy {
                    // What Key Vault asked for, not our jittered version.
                    wait: asked.unwrap_or(wanted),
                    remaining: deadline.saturating_duration_since(Instant::now()),
                    throttled: true,
                    attempts: tries,
                });
            }
            Decision::Permanent | Decision::Exhausted | Decision::OutOfBudget { .. } => {
                return result.map_err(RetryError::Send);
            }
        }
    }
}

/// `None` for a success; else whether the failure is worth another try.
fn classify(result: &Result<Response, SendError>) -> Option<Outcome> {
    match result {
        Ok(response) => {
            let hint = retry::retry_after(
                response.retry_after_ms.as_deref(),
                response.retry_after.as_deref(),
                SystemTime::now(),
            );
            retry::classify_status(response.status.as_u16(), hint)
        }
        Err(
            SendError::Timeout { .. } | SendError::Connect { .. } | SendError::Transport { .. },
        ) => Some(Outcome::Transient { retry_after: None }),
        Err(SendError::TooLarge { .. }) => Some(Outcome::Permanent),
    }
}

/// A sample in `[0, 1)`, different on every call (std's randomly keyed
/// hasher over a counter; no dependency for this).
pub(crate) fn jitter() -> f64 {
    use std::hash::{BuildHasher as _, Hasher as _};
    static CALLS: AtomicU64 = AtomicU64::new(0);
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u64(CALLS.fetch_add(1, Ordering::Relaxed));
    (hasher.finish() >> 11) as f64 / (1u64 << 53) as f64
}

#[cfg(test)]
mod tests {
    use std::collections::VecDeque;
    use std::sync::{Arc, Mutex};

    use reqwest::StatusCode;

    use super::*;

    const KV: &str = "https://kv.vault.azure.net/";

    fn answer(status: u16, retry_after: Option<&str>) -> Result<Response, SendError> {
        Ok(Response {
            status: StatusCode::from_u16(status).unwrap(),
            retry_after: retry_after.map(str::to_owned),
            retry_after_ms: None,
            body: Vec::new(),
            peer_certificate: None,
        })
    }

    fn reset() -> Result<Response, SendError> {
        Err(SendError::Transport {
            endpoint: KV.into(),
            reason: "connection reset".into(),
        })
    }

    /// Canned answers in order; records when each try was made.
    #[derive(Clone, Default)]
    struct Script {
        answers: Arc<Mutex<VecDeque<Result<Response, SendError>>>>,
        tries: Arc<Mutex<Vec<Instant>>>,
    }

    impl Script {
        fn new(answers: Vec<Result<Response, SendError>>) -> Self {
            Self {
                answers: Arc::new(Mutex::new(answers.into())),
                tries: Arc::default(),
            }
        }

        async fn run(&self, deadline: Instant, retry: Retry<'_>) -> Result<Response, RetryError> {
            run(
                deadline,
                retry,
                || {
                    self.tries.lock().unwrap().push(Instant::now());
                    let next = self.answers.lock().unwrap().pop_front();
                    async move { next.unwrap_or_else(|| answer(200, None)) }
                },
                || {},
            )
            .await
        }

        fn tries(&self) -> Vec<Instant> {
            self.tries.lock().unwrap().clone()
        }
    }

    fn plain() -> Retry<'static> {
        Retry {
            policy: Policy::default(),
            gate: None,
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_5xx_burst_and_a_reset_are_retried_to_success() {
        let start = Instant::now();
        let script = Script::new(vec![
            answer(503, None),
            answer(500, None),
            reset(),
            answer(502, None),
        ]);
        let response = script
            .run(start + Duration::from_secs(100), plain())
            .await
            .unwrap();
        assert_eq!(response.status, 200);
        assert_eq!(script.tries().len(), 5);
    }

    #[tokio::test(start_paused = true)]
    async fn client_errors_other_than_408_and_429_are_not_retried() {
        for status in [400, 401, 403, 404, 409] {
            let script = Script::new(vec![answer(status, None)]);
            let response = script
                .run(Instant::now() + Duration::from_secs(100), plain())
                .await
                .unwrap();
            assert_eq!(response.status.as_u16(), status);
            assert_eq!(script.tries().len(), 1, "{status}");
        }
        let script = Script::new(vec![answer(408, None)]);
        script
            .run(Instant::now() + Duration::from_secs(100), plain())
            .await
            .unwrap();
        assert_eq!(script.tries().len(), 2, "408 is retried");
    }

    #[tokio::test(start_paused = true)]
    async fn persistent_failures_stop_after_the_policy_s_tries() {
        let script = Script::new((0..10).map(|_| reset()).collect());
        let err = script
            .run(Instant::now() + Duration::from_secs(100), plain())
            .await
            .unwrap_err();
        assert!(matches!(err, RetryError::Send(SendError::Transport { .. })));
        assert_eq!(script.tries().len() as u32, Policy::default().max_attempts);
    }

    #[tokio::test(start_paused = true)]
    async fn a_5xx_that_outlasts_the_budget_returns_the_last_answer() {
        let start = Instant::now();
        let script = Script::new((0..10).map(|_| answer(503, Some("5"))).collect());
        let response = script
            .run(start + Duration::from_secs(3), plain())
            .await
            .unwrap();
        assert_eq!(response.status, 503);
        assert_eq!(script.tries().len(), 1, "a 5 s wait does not fit in 3 s");
    }

    #[tokio::test(start_paused = true)]
    async fn retry_after_holds_every_caller_of_the_vault() {
        let gates = VaultGates::new(None);
        let start = Instant::now();
        let retry = Retry {
            policy: Policy::default(),
            gate: Some(Gate {
                gates: &gates,
                vault: KV,
            }),
        };
        let deadline = start + Duration::from_secs(100);
        let first = Script::new(vec![answer(429, Some("2"))]);
        let second = Script::new(vec![]);
        let second_run = async {
            // Another mount, starting inside the window.
            tokio::time::sleep(Duration::from_millis(500)).await;
            second.run(deadline, retry).await
        };
        let (a, b) = tokio::join!(first.run(deadline, retry), second_run);
        assert_eq!(
            (a.unwrap().status.as_u16(), b.unwrap().status.as_u16()),
            (200, 200)
        );
        let window_end = start + Duration::from_secs(2);
        assert_eq!(first.tries().len(), 2);
        assert!(first.tries()[1] >= window_end, "{:?}", first.tries());
        assert_eq!(second.tries().len(), 1);
        assert!(
            second.tries()[0] >= window_end,
            "the second mount waited for the window: {:?}",
            second.tries()[0] - start
        );
    }

    #[tokio::test(start_paused = true)]
    async fn throttling_beyond_the_budget_is_reported_as_busy() {
        let gates = VaultGates::new(None);
        let start = Instant::now();
        let retry = Retry {
            policy: Policy::default(),
            gate: Some(Gate {
                gates: &gates,
                vault: KV,
            }),
        };
        let deadline = start + Duration::from_secs(3);
        let script = Script::new(vec![answer(429, Some("10"))]);
        let err = script.run(deadline, retry).await.unwrap_err();
        let RetryError::Busy {
            wait,
            throttled,
            attempts,
            ..
        } = err
        else {
            panic!("{err:?}");
        };
        assert!(throttled);
        assert_eq!(attempts, 1);
        assert_eq!(wait, Duration::from_secs(10), "what Key Vault asked for");
        assert_eq!(Instant::now(), start, "gave up without sleeping");
        // The next mount within the window does not even try.
        let later = Script::new(vec![]);
        let err = later.run(deadline, retry).await.unwrap_err();
        assert!(matches!(err, RetryError::Busy { attempts: 0, .. }));
        assert!(later.tries().is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn throttling_without_a_gate_returns_the_429() {
        let script = Script::new(vec![answer(429, Some("10"))]);
        let response = script
            .run(Instant::now() + Duration::from_secs(3), plain())
            .await
            .unwrap();
        assert_eq!(response.status, 429);
    }

    #[test]
    fn jitter_is_in_range_and_varies() {
        let samples: Vec<f64> = (0..100).map(|_| jitter()).collect();
        assert!(samples.iter().all(|j| (0.0..1.0).contains(j)));
        assert!(samples.windows(2).any(|w| w[0] != w[1]));
    }
}
