//! Retry policy as data and pure decisions: which outcomes are worth another
//! try (throttling, 5xx, connection failures, timeouts), how long to wait
//! (the server's `Retry-After` when it gives one, else exponential backoff
//! with jitter), and when to stop (attempts, or the mount's remaining
//! budget).
//!
//! Pure: no clock reads, no sleeping, no randomness — the caller passes the
//! remaining budget and a jitter sample, so every decision is testable with
//! fixed inputs. Sleeping and sending are `keyvault`'s job.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// How one attempt ended, as far as retrying is concerned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// 429: the service asks us to slow down, maybe saying for how long.
    Throttled { retry_after: Option<Duration> },
    /// 408, 500, 502, 503, 504, a reset connection or a per-try timeout.
    Transient { retry_after: Option<Duration> },
    /// Anything else that failed (400, 401, 403, 404, bad JSON, …).
    Permanent,
}

/// What to do after a failed attempt.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Wait this long, then try again.
    Retry { after: Duration },
    /// Stop: the outcome is not retryable.
    Permanent,
    /// Stop: the attempts are used up.
    Exhausted,
    /// Stop: waiting would not fit in the remaining budget.
    OutOfBudget { wanted: Duration },
}

/// Retry limits and backoff shape.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Policy {
    /// Tries in total, the first one included.
    pub max_attempts: u32,
    /// First backoff step.
    pub base: Duration,
    /// Largest backoff step (and largest honoured `Retry-After`).
    pub max: Duration,
}

impl Default for Policy {
    fn default() -> Self {
        Self {
            max_attempts: 6,
            base: Duration::from_millis(200),
            max: Duration::from_secs(30),
        }
    }
}

impl Policy {
    /// Decides after attempt number `attempt` (1 = the first try).
    /// `remaining` is the budget left; `jitter` is a sample in `[0, 1)`.
    pub fn decide(
        &self,
        attempt: u32,
        outcome: Outcome,
        remaining: Duration,
        jitter: f64,
    ) -> Decision {
        let hint = match outcome {
            Outcome::Permanent => return Decision::Permanent,
            Outcome::Throttled { retry_after } | Outcome::Transient { retry_after } => retry_after,
        };
        // A throttled call is retried for as long as the budget allows: the
        // whole point is to wait out the window, not to give up on it.
        let throttled = matches!(outcome, Outcome::Throttled { .. });
        if !throttled && attempt >= self.max_attempts {
            return Decision::Exhausted;
        }
        let wait = match hint {
            Some(server) => server.min(self.max) + self.spread(server, jitter),
            None => self.backoff(attempt, jitter),
        };
        if wait >= remaining {
            return Decision::OutOfBudget { wanted: wait };
        }
        Decision::Retry { after: wait }
    }

    /// Exponential backoff with "full jitter" over the upper half: the wait
    /// after attempt n lies in [step/2, step) with step = base · 2^(n-1).
    pub fn backoff(&self, attempt: u32, jitter: f64) -> Duration {
        let exponent = attempt.saturating_sub(1).min(20);
        let step = self.base.saturating_mul(1 << exponent).min(self.max);
        let jitter = jitter.clamp(0.0, 1.0);
        step.mul_f64(0.5 + jitter / 2.0)
    }

    /// A little spread on top of a server-given wait, so that every mount
    /// that saw the same `Retry-After` does not come back in the same
    /// millisecond: up to 10% of the wait, at most one second.
    fn spread(&self, server: Duration, jitter: f64) -> Duration {
        let cap = (server / 10).min(Duration::from_secs(1));
        cap.mul_f64(jitter.clamp(0.0, 1.0))
    }
}

/// Classifies an HTTP status for retrying.
pub fn classify_status(status: u16, retry_after: Option<Duration>) -> Option<Outcome> {
    match status {
        200..=299 => None,
        429 => Some(Outcome::Throttled { retry_after }),
        408 | 500 | 502 | 503 | 504 => Some(Outcome::Transient { retry_after }),
        _ => Some(Outcome::Permanent),
    }
}

/// The wait a response asks for: `x-ms-retry-after-ms` / `retry-after-ms`
/// (milliseconds, Azure's headers) win over `Retry-After` (seconds or an
/// HTTP date, RFC 9110).
pub fn retry_after(
    retry_after_ms: Option<&str>,
    retry_after: Option<&str>,
    now: SystemTime,
) -> Option<Duration> {
    if let Some(ms) = retry_after_ms.and_then(|v| v.trim().parse::<u64>().ok()) {
        return Some(Duration::from_millis(ms));
    }
    let value = retry_after?.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let at = parse_http_date(value)?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

/// Parses an IMF-fixdate such as `Sun, 06 Nov 1994 08:49:37 GMT`.
pub fn parse_http_date(value: &str) -> Option<SystemTime> {
    let mut parts = value.split_whitespace();
    let _weekday = parts.next()?;
    let day: u64 = parts.next()?.parse().ok()?;
    let month = parts.next()?;
    let year: i64 = parts.next()?.parse().ok()?;
    let mut clock = parts.next()?.split(':');
    let (h, m, s): (u64, u64, u64) = (
        clock.next()?.parse().ok()?,
        clock.next()?.parse().ok()?,
        clock.next()?.parse().ok()?,
    );
    if parts.next()? != "GMT" || parts.next().is_some() || h > 23 || m > 59 || s > 60 {
        return None;
    }
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let month = MONTHS.iter().position(|&name| name == month)? as i64 + 1;
    if !(1..=31).contains(&day) || year < 1970 {
        return None;
    }
    let days = days_from_civil(year, month, day as i64);
    let seconds = u64::try_from(days).ok()? * 86_400 + h * 3600 + m * 60 + s;
    Some(UNIX_EPOCH + Duration::from_secs(seconds))
}

/// Days since 1970-01-01 of a proleptic Gregorian date.
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    const BUDGET: Duration = Duration::from_secs(100);

    #[test]
    fn permanent_failures_are_not_retried() {
        let p = Policy::default();
        assert_eq!(
            p.decide(1, Outcome::Permanent, BUDGET, 0.5),
            Decision::Permanent
        );
        assert_eq!(classify_status(404, None), Some(Outcome::Permanent));
        assert_eq!(classify_status(403, None), Some(Outcome::Permanent));
        assert_eq!(classify_status(200, None), None);
    }

    #[test]
    fn backoff_doubles_within_jitter_bounds_and_caps() {
        let p = Policy {
            max_attempts: 10,
            base: Duration::from_millis(100),
            max: Duration::from_secs(1),
        };
        assert_eq!(p.backoff(1, 0.0), Duration::from_millis(50));
        assert_eq!(p.backoff(1, 1.0), Duration::from_millis(100));
        assert_eq!(p.backoff(2, 0.0), Duration::from_millis(100));
        assert_eq!(p.backoff(3, 1.0), Duration::from_millis(400));
        assert_eq!(p.backoff(30, 1.0), Duration::from_secs(1), "capped");
    }

    #[test]
    fn transient_failures_stop_after_max_attempts() {
        let p = Policy::default();
        let transient = Outcome::Transient { retry_after: None };
        assert!(matches!(
            p.decide(5, transient, BUDGET, 0.1),
            Decision::Retry { .. }
        ));
        assert_eq!(p.decide(6, transient, BUDGET, 0.1), Decision::Exhausted);
    }

    #[test]
    fn throttling_honours_retry_after_and_ignores_attempt_count() {
        let p = Policy::default();
        let throttled = Outcome::Throttled {
            retry_after: Some(Duration::from_secs(2)),
        };
        let Decision::Retry { after } = p.decide(50, throttled, BUDGET, 0.5) else {
            panic!("a throttled call is retried while the budget lasts");
        };
        assert!(
            after >= Duration::from_secs(2) && after <= Duration::from_millis(2100),
            "{after:?}"
        );
    }

    #[test]
    fn waits_beyond_the_budget_give_up() {
        let p = Policy::default();
        let throttled = Outcome::Throttled {
            retry_after: Some(Duration::from_secs(10)),
        };
        assert_eq!(
            p.decide(1, throttled, Duration::from_secs(5), 0.0),
            Decision::OutOfBudget {
                wanted: Duration::from_secs(10)
            }
        );
    }

    #[test]
    fn huge_retry_after_is_capped() {
        let p = Policy::default();
        let throttled = Outcome::Throttled {
            retry_after: Some(Duration::from_secs(3600)),
        };
        let Decision::Retry { after } = p.decide(1, throttled, Duration::from_secs(40), 0.0) else {
            panic!("capped at 30s, inside a 40s budget");
        };
        assert_eq!(after, Duration::from_secs(30));
    }

    #[test]
    fn retry_after_headers() {
        let now = UNIX_EPOCH + Duration::from_secs(784_111_777); // 1994-11-06 08:49:37
        assert_eq!(
            retry_after(Some("1500"), Some("9"), now),
            Some(Duration::from_millis(1500))
        );
        assert_eq!(
            retry_after(None, Some("9"), now),
            Some(Duration::from_secs(9))
        );
        assert_eq!(
            retry_after(None, Some("Sun, 06 Nov 1994 08:49:47 GMT"), now),
            Some(Duration::from_secs(10))
        );
        assert_eq!(
            retry_after(None, Some("Sun, 06 Nov 1994 08:49:30 GMT"), now),
            Some(Duration::ZERO),
            "a date in the past means now"
        );
        assert_eq!(retry_after(None, Some("soon"), now), None);
        assert_eq!(retry_after(Some("x"), None, now), None);
    }

    #[test]
    fn http_dates() {
        assert_eq!(
            parse_http_date("Thu, 01 Jan 1970 00:00:00 GMT"),
            Some(UNIX_EPOCH)
        );
        assert_eq!(
            parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT"),
            Some(UNIX_EPOCH + Duration::from_secs(784_111_777))
        );
        for bad in [
            "",
            "Sun, 06 Foo 1994 08:49:37 GMT",
            "Sun, 06 Nov 1994 25:00:00 GMT",
            "Sun, 06 Nov 1994 08:49:37 PST",
        ] {
            assert_eq!(parse_http_date(bad), None, "{bad}");
        }
    }
}
