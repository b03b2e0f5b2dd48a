//! The socket's accept loop: connections in, and when `accept` fails
//! (EMFILE at the open-file limit, ENFILE, ENOMEM) a pause that doubles
//! from 10 ms to 1 s instead of a busy loop, one log line per second at
//! most, and the failure kept for `/healthz` to report.
//!
//! Must not serve or inspect connections: that is tonic's job.

use std::io;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::Stream;
use tokio::net::{UnixListener, UnixStream};

/// First pause after a failed `accept`; it doubles up to [`MAX_PAUSE`].
const MIN_PAUSE: Duration = Duration::from_millis(10);
/// Longest pause between attempts while `accept` keeps failing.
const MAX_PAUSE: Duration = Duration::from_secs(1);
/// At most one log line per this while `accept` keeps failing.
const LOG_EVERY: Duration = Duration::from_secs(1);
/// `/healthz` reports a failure this recent.
const REPORT_FOR: Duration = Duration::from_secs(10);

/// The latest `accept` failure, shared with `/healthz`.
#[derive(Clone, Debug, Default)]
pub struct AcceptHealth(Arc<Mutex<State>>);

#[derive(Debug, Default)]
struct State {
    /// When and why `accept` last failed.
    failed: Option<(Instant, String)>,
    /// When a failure was last logged, and how many since.
    logged: Option<Instant>,
    unlogged: u64,
}

// === impl AcceptHealth ===

impl AcceptHealth {
    /// Why `accept` failed in the last ten seconds, if it did.
    pub fn failing(&self) -> Option<String> {
        let state = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let (when, why) = state.failed.as_ref()?;
        (when.elapsed() < REPORT_FOR).then(|| {
            format!(
                "the provider socket cannot accept connections ({why}, {} ms ago); \
                 raise the open-file limit (ulimit -n) or find what holds connections open",
                when.elapsed().as_millis()
            )
        })
    }

    fn record(&self, error: &io::Error) {
        let mut state = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        state.failed = Some((now, error.to_string()));
        state.unlogged += 1;
        if state
            .logged
            .is_none_or(|at| now.duration_since(at) >= LOG_EVERY)
        {
            tracing::warn!(
                error = %error,
                failures = state.unlogged,
                "cannot accept connections on the socket; retrying"
            );
            state.logged = Some(now);
            state.unlogged = 0;
        }
    }
}

/// Accepted connections of `listener`; failures are paused on, logged and
/// recorded in `health`, never yielded (tonic would retry at once).
pub fn incoming(
    listener: UnixListener,
    health: AcceptHealth,
) -> impl Stream<Item = io::Result<UnixStream>> {
    futures_util::stream::unfold((listener, health), |(listener, health)| async move {
        let mut pause = MIN_PAUSE;
        loop {
            match listener.accept().await {
                Ok((stream, _)) => return Some((Ok(stream), (listener, health))),
                Err(error) => {
                    health.record(&error);
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(MAX_PAUSE);
                }
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_are_reported_while_recent() {
        let health = AcceptHealth::default();
        assert_eq!(health.failing(), None);
        health.record(&io::Error::from_raw_os_error(24));
        let report = health.failing().expect("recent failure reported");
        assert!(
            report.starts_with(
                "the provider socket cannot accept connections (Too many open files (os error 24)"
            ),
            "{report}"
        );
        let mut state = health.0.lock().unwrap();
        state.failed = Some((Instant::now() - REPORT_FOR, "old".into()));
        drop(state);
        assert_eq!(health.failing(), None, "an old failure is over");
    }
}
