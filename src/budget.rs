//! The overall time budget of one mount, and the [`Context`] that carries it
//! down the call chain: the deadline, and the registry of endpoints in
//! flight that the budget-exceeded error names.
//!
//! `server` creates the context ([`Budget::run`]) and passes it explicitly
//! through `mount`, `auth`, `reads`, `keyvault` and `http`; nothing reads a
//! task-local or falls back to a default deadline. This module must not know
//! what is being fetched, nor per-request timeouts (that is `http`).

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use thiserror::Error;
use tokio::time::Instant;

/// The most of a gRPC deadline kept back for sending our answer.
const MAX_DEADLINE_MARGIN: Duration = Duration::from_secs(2);

/// Where a mount's time limit comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Origin {
    /// `--mount-timeout`.
    MountTimeout,
    /// The driver's `grpc-timeout`, less a margin.
    GrpcDeadline,
}

/// The time limit of one mount.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Budget {
    pub limit: Duration,
    pub origin: Origin,
}

/// The budget ran out. `Display` names what the mount was waiting for.
#[derive(Clone, Debug, Error, PartialEq, Eq)]
#[error(
    "the mount did not finish within {limit:?} ({origin}); {}",
    waiting_text(.waiting_on)
)]
pub struct BudgetExceeded {
    pub limit: Duration,
    pub origin: Origin,
    /// Endpoints with a request in flight when time ran out, in the order
    /// they were started (deduplicated).
    pub waiting_on: Vec<String>,
}

/// What a mount's work needs to know about its budget: when time is up,
/// and where to note the endpoints it waits for. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Context {
    deadline: Instant,
    /// `None`: work that is not the mount's own (a shared request running
    /// as its own task, start-up, unit tests); nothing is recorded.
    waiting: Option<Arc<Waiting>>,
}

/// Endpoints a mount is waiting for right now.
#[derive(Debug, Default)]
struct Waiting {
    next: AtomicU64,
    endpoints: Mutex<Vec<(u64, String)>>,
}

/// Removes its endpoint from the mount's waiting set when dropped.
#[must_use = "the endpoint is only registered while the guard lives"]
pub struct WaitGuard {
    waiting: Arc<Waiting>,
    id: u64,
}

// === impl Budget ===

impl Budget {
    /// `mount_timeout`, or the driver's deadline less a margin when that is
    /// shorter.
    pub fn new(mount_timeout: Duration, grpc_deadline: Option<Duration>) -> Self {
        let own = Self {
            limit: mount_timeout,
            origin: Origin::MountTimeout,
        };
        match grpc_deadline {
            Some(deadline) => {
                let margin = (deadline / 10).min(MAX_DEADLINE_MARGIN);
                let limit = deadline.saturating_sub(margin);
                if limit < own.limit {
                    Self {
                        limit,
                        origin: Origin::GrpcDeadline,
                    }
                } else {
                    own
                }
            }
            None => own,
        }
    }

    /// Runs the work `start` makes with this budget's [`Context`]; on expiry
    /// the work is dropped (which cancels every request it has in flight).
    pub async fn run<F, W>(&self, start: W) -> Result<F::Output, BudgetExceeded>
    where
        W: FnOnce(Context) -> F,
        F: Future,
    {
        let deadline = Instant::now() + self.limit;
        let waiting = Arc::new(Waiting::default());
        let work = start(Context {
            deadline,
            waiting: Some(waiting.clone()),
        });
        tokio::pin!(work);
        tokio::select! {
            biased;
            output = &mut work => Ok(output),
            // `work` is still alive here, so its requests are still listed.
            () = tokio::time::sleep_until(deadline) => Err(BudgetExceeded {
                limit: self.limit,
                origin: self.origin,
                waiting_on: waiting.snapshot(),
            }),
        }
    }
}

impl std::fmt::Display for Origin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::MountTimeout => "--mount-timeout",
            Self::GrpcDeadline => "the driver's gRPC deadline, less a margin to answer in time",
        })
    }
}

fn waiting_text(endpoints: &[String]) -> String {
    match endpoints {
        [] => "no request was in flight".to_owned(),
        [one] => format!("still waiting for {one}"),
        many => format!("still waiting for {}", many.join(", ")),
    }
}

// === impl Context ===

impl Context {
    /// A deadline that belongs to no mount: nothing is recorded (start-up
    /// work, unit tests). Every context-less call says so by using this.
    pub fn until(deadline: Instant) -> Self {
        Self {
            deadline,
            waiting: None,
        }
    }

    /// When the mount's time is up.
    pub fn deadline(&self) -> Instant {
        self.deadline
    }

    /// The same deadline for work that runs as its own task and may
    /// outlive the mount (a shared token request): what it waits for is
    /// not this mount's to name; the mount names it while it awaits it.
    pub fn detached(&self) -> Self {
        Self::until(self.deadline)
    }

    /// Registers `endpoint` as awaited by the mount until the guard is
    /// dropped; `None` for a context that records nothing.
    pub fn waiting_on(&self, endpoint: &str) -> Option<WaitGuard> {
        let waiting = self.waiting.as_ref()?;
        let id = waiting.next.fetch_add(1, Ordering::Relaxed);
        waiting.lock().push((id, endpoint.to_owned()));
        Some(WaitGuard {
            waiting: waiting.clone(),
            id,
        })
    }
}

/// The driver's deadline from a `grpc-timeout` header value (`100m`,
/// `30S`, … per the gRPC HTTP/2 protocol); `None` when absent or invalid.
pub fn parse_grpc_timeout(value: &str) -> Option<Duration> {
    let split = value.len().checked_sub(1)?;
    let (digits, unit) = (value.get(..split)?, value.get(split..)?);
    if digits.is_empty() || digits.len() > 8 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let n: u64 = digits.parse().ok()?;
    Some(match unit {
        "H" => Duration::from_secs(n * 3600),
        "M" => Duration::from_secs(n * 60),
        "S" => Duration::from_secs(n),
        "m" => Duration::from_millis(n),
        "u" => Duration::from_micros(n),
        "n" => Duration::from_nanos(n),
        _ => return None,
    })
}

// === impl Waiting ===

impl Waiting {
    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<(u64, String)>> {
        self.endpoints
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn snapshot(&self) -> Vec<String> {
        let mut seen = Vec::new();
        for (_, endpoint) in self.lock().iter() {
            if !seen.contains(endpoint) {
                seen.push(endpoint.clone());
            }
        }
        seen
    }
}

impl Drop for WaitGuard {
    fn drop(&mut self) {
        self.waiting.lock().retain(|(id, _)| *id != self.id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shorter_of_mount_timeout_and_deadline_wins() {
        let own = Duration::from_secs(100);
        assert_eq!(
            Budget::new(own, None),
            Budget {
                limit: own,
                origin: Origin::MountTimeout
            }
        );
        // 2 minutes from kubelet: our own limit is shorter.
        assert_eq!(
            Budget::new(own, Some(Duration::from_secs(120))).origin,
            Origin::MountTimeout
        );
        // A short deadline keeps a tenth back, at most 2 s.
        assert_eq!(
            Budget::new(own, Some(Duration::from_secs(10))),
            Budget {
                limit: Duration::from_secs(9),
                origin: Origin::GrpcDeadline
            }
        );
        assert_eq!(
            Budget::new(own, Some(Duration::from_secs(60))).limit,
            Duration::from_secs(58)
        );
    }

    #[test]
    fn grpc_timeout_values() {
        assert_eq!(parse_grpc_timeout("100m"), Some(Duration::from_millis(100)));
        assert_eq!(parse_grpc_timeout("2M"), Some(Duration::from_secs(120)));
        assert_eq!(parse_grpc_timeout("1H"), Some(Duration::from_secs(3600)));
        assert_eq!(
            parse_grpc_timeout("119999892u"),
            None,
            "more than 8 digits is invalid"
        );
        assert_eq!(
            parse_grpc_timeout("11999989u"),
            Some(Duration::from_micros(11_999_989))
        );
        assert_eq!(parse_grpc_timeout("5n"), Some(Duration::from_nanos(5)));
        assert_eq!(parse_grpc_timeout("S"), None);
        assert_eq!(parse_grpc_timeout(""), None);
        assert_eq!(parse_grpc_timeout("10x"), None);
        assert_eq!(parse_grpc_timeout("-1S"), None);
        assert_eq!(parse_grpc_timeout("1é"), None);
    }

    #[tokio::test(start_paused = true)]
    async fn expiry_names_what_is_in_flight() {
        let budget = Budget::new(Duration::from_secs(5), None);
        let err = budget
            .run(|cx| async move {
                let _done = cx.waiting_on("https://done.example/token");
                drop(_done);
                let _a = cx.waiting_on("https://login.example/t/oauth2/v2.0/token");
                let _b = cx.waiting_on("https://kv.vault.example/secrets/a");
                let _c = cx.waiting_on("https://kv.vault.example/secrets/a");
                // A detached request is not the mount's to name.
                let _d = cx.detached().waiting_on("https://elsewhere.example/");
                std::future::pending::<()>().await;
            })
            .await
            .unwrap_err();
        assert_eq!(
            err.waiting_on,
            vec![
                "https://login.example/t/oauth2/v2.0/token".to_owned(),
                "https://kv.vault.example/secrets/a".to_owned()
            ]
        );
        assert_eq!(
            err.to_string(),
            "the mount did not finish within 5s (--mount-timeout); still waiting for \
             https://login.example/t/oauth2/v2.0/token, https://kv.vault.example/secrets/a"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn finishing_in_time_returns_the_output() {
        let budget = Budget::new(Duration::from_secs(5), Some(Duration::from_secs(1)));
        assert_eq!(budget.origin, Origin::GrpcDeadline);
        assert_eq!(budget.run(|_| async { 7 }).await, Ok(7));
        let start = Instant::now();
        assert_eq!(
            budget.run(|cx| async move { cx.deadline() }).await,
            Ok(start + Duration::from_millis(900))
        );
        let err = budget
            .run(|_| std::future::pending::<()>())
            .await
            .unwrap_err();
        assert!(
            err.to_string()
                .ends_with("(the driver's gRPC deadline, less a margin to answer in time); no request was in flight"),
            "{err}"
        );
        assert!(Context::until(start).waiting_on("outside").is_none());
    }
}
