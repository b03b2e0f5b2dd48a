//! Service-account issuers' public keys, for the `service-account` token
//! cache scope: `<iss>/.well-known/openid-configuration` → `jwks_uri` →
//! the JWKS, fetched over HTTPS through the shared client (proxy and CA
//! settings as for any Azure host), and the verification of a pod's token
//! against them (`auth/verify.rs`).
//!
//! Bounded in size and time: at most [`MAX_ISSUERS`] issuers (the least
//! recently used goes), at most `verify::MAX_KEYS` keys each, documents of
//! at most [`MAX_DOCUMENT_BYTES`]; a key set is refreshed after
//! [`KEYS_TTL`], or on an unknown `kid` (at once, then at most once per
//! [`REFRESH_INTERVAL`]); a failed fetch is remembered for
//! [`REFRESH_INTERVAL`] so an unreachable issuer costs one request per
//! interval, not one per mount. Concurrent misses of one issuer make one
//! fetch. It must not log tokens; it names issuers and claim names only.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Deserialize;
use thiserror::Error;
use tokio::time::Instant;

use super::verify::{self, Claims, Invalid, Jwk};
use crate::budget::Context;
use crate::http::{Endpoint, Http};
use crate::metrics::Service;

/// Issuers whose keys are kept.
pub const MAX_ISSUERS: usize = 64;

/// How long a key set is used before it is fetched again.
pub const KEYS_TTL: Duration = Duration::from_secs(60 * 60);

/// Least time between two fetches of one issuer's keys (unknown `kid`,
/// or after a failure).
pub const REFRESH_INTERVAL: Duration = Duration::from_secs(30);

/// Largest discovery or JWKS document read.
pub const MAX_DOCUMENT_BYTES: usize = 64 << 10;

/// Why a token was not verified.
#[derive(Debug, Error)]
pub enum VerifyError {
    /// The token itself fails a rule: never served from a shared entry.
    #[error("service-account token not verified: {0}")]
    Invalid(#[from] Invalid),
    /// The issuer's keys could not be obtained.
    #[error("cannot read the keys of issuer {issuer}: {reason}")]
    Unreachable { issuer: String, reason: String },
}

/// The issuers' key sets; clones share them.
#[derive(Clone)]
pub struct Issuers {
    http: Http,
    slots: Arc<Mutex<HashMap<String, Arc<Slot>>>>,
}

/// One issuer: its keys, behind an async lock held while fetching, so
/// concurrent misses wait for one fetch.
struct Slot {
    state: tokio::sync::Mutex<State>,
    used: Mutex<Instant>,
}

#[derive(Default)]
struct State {
    keys: Option<Arc<Vec<Jwk>>>,
    fetched: Option<Instant>,
    /// When an unknown `kid` last made a fetch.
    kid_refresh: Option<Instant>,
    failure: Option<String>,
}

#[derive(Deserialize)]
struct Discovery {
    issuer: String,
    jwks_uri: String,
}

// === impl Issuers ===

impl Issuers {
    pub fn new(http: Http) -> Self {
        Self {
            http,
            slots: Arc::default(),
        }
    }

    /// Verifies `jwt` (claims first, so a token that fails them costs no
    /// request) and returns its claims.
    pub async fn verify(
        &self,
        cx: &Context,
        jwt: &str,
        audience: &str,
        now: i64,
    ) -> Result<Claims, VerifyError> {
        let parsed = verify::parse(jwt)?;
        parsed.check_claims(audience, now)?;
        let slot = self.slot(&parsed.claims.iss);
        let mut state = slot.state.lock().await;
        if state.stale(Instant::now()) {
            self.refresh(cx, &parsed.claims.iss, &mut state).await;
        }
        if parsed.key_in(state.keys()).is_none() && state.may_refresh(Instant::now()) {
            // Rotated keys: the first unknown `kid` fetches at once; more
            // (a flood of forged ones) at most once per interval.
            state.kid_refresh = Some(Instant::now());
            self.refresh(cx, &parsed.claims.iss, &mut state).await;
        }
        let Some(key) = parsed.key_in(state.keys()) else {
            return Err(match (&state.keys, &state.failure) {
                (None, Some(reason)) => VerifyError::Unreachable {
                    issuer: parsed.claims.iss.clone(),
                    reason: reason.clone(),
                },
                _ => VerifyError::Invalid(Invalid::UnknownKey),
            });
        };
        parsed.verify_signature(key)?;
        Ok(parsed.claims)
    }

    /// The slot of `issuer`, created (and the least recently used one
    /// dropped beyond [`MAX_ISSUERS`]) on first use.
    fn slot(&self, issuer: &str) -> Arc<Slot> {
        let mut slots = self.slots.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        if let Some(slot) = slots.get(issuer) {
            *slot.used.lock().unwrap_or_else(|e| e.into_inner()) = now;
            return slot.clone();
        }
        if slots.len() >= MAX_ISSUERS {
            let oldest = slots
                .iter()
                .min_by_key(|(_, s)| *s.used.lock().unwrap_or_else(|e| e.into_inner()))
                .map(|(k, _)| k.clone());
            if let Some(oldest) = oldest {
                slots.remove(&oldest);
            }
        }
        let slot = Arc::new(Slot {
            state: tokio::sync::Mutex::default(),
            used: Mutex::new(now),
        });
        slots.insert(issuer.to_owned(), slot.clone());
        slot
    }

    /// Fetches the issuer's keys; on failure keeps the old ones (if any)
    /// and remembers why.
    async fn refresh(&self, cx: &Context, issuer: &str, state: &mut State) {
        state.fetched = Some(Instant::now());
        match self.fetch(cx, issuer).await {
            Ok(keys) => {
                state.keys = Some(Arc::new(keys));
                state.failure = None;
            }
            Err(reason) => {
                tracing::warn!(
                    issuer,
                    %reason,
                    "cannot read the service-account issuer's keys; tokens of this issuer are \
                     cached per credential until they can be read"
                );
                state.failure = Some(reason);
            }
        }
    }

    /// Discovery document, then the JWKS it names.
    async fn fetch(&self, cx: &Context, issuer: &str) -> Result<Vec<Jwk>, String> {
        let url = format!(
            "{}/.well-known/openid-configuration",
            issuer.trim_end_matches('/')
        );
        let body = self.get(cx, &url).await?;
        let discovery: Discovery = serde_json::from_slice(&body)
            .map_err(|e| format!("{url}: invalid discovery document: {e}"))?;
        if discovery.issuer != issuer {
            return Err(format!(
                "{url}: the document names issuer {:?}, not the token's",
                discovery.issuer
            ));
        }
        if !discovery.jwks_uri.starts_with("https://") {
            return Err(format!("{url}: jwks_uri is not an https URL"));
        }
        let body = self.get(cx, &discovery.jwks_uri).await?;
        let keys = verify::parse_jwks(&body).map_err(|e| format!("{}: {e}", discovery.jwks_uri))?;
        if keys.is_empty() {
            return Err(format!(
                "{}: no RS256 or ES256 signing key",
                discovery.jwks_uri
            ));
        }
        Ok(keys)
    }

    async fn get(&self, cx: &Context, url: &str) -> Result<Vec<u8>, String> {
        let request = self
            .http
            .request(reqwest::Method::GET, url)
            .header(reqwest::header::ACCEPT, "application/json");
        let endpoint = Endpoint {
            service: Service::Other,
            url: crate::http::endpoint_of(url),
        };
        let response = self
            .http
            .send(cx, request, endpoint)
            .await
            .map_err(|e| e.to_string())?;
        if !response.status.is_success() {
            return Err(format!(
                "{} answered HTTP {}",
                endpoint.url, response.status
            ));
        }
        if response.body.len() > MAX_DOCUMENT_BYTES {
            return Err(format!(
                "{} sent more than {MAX_DOCUMENT_BYTES} bytes",
                endpoint.url
            ));
        }
        Ok(response.body)
    }
}

impl std::fmt::Debug for Issuers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Issuers").finish_non_exhaustive()
    }
}

// === impl State ===

impl State {
    fn keys(&self) -> &[Jwk] {
        self.keys.as_deref().map_or(&[], Vec::as_slice)
    }

    /// No keys yet (and no recent failure), or keys older than the TTL.
    fn stale(&self, now: Instant) -> bool {
        match self.fetched {
            None => true,
            Some(at) if self.keys.is_none() => now >= at + REFRESH_INTERVAL,
            Some(at) => now >= at + KEYS_TTL,
        }
    }

    fn may_refresh(&self, now: Instant) -> bool {
        let recent = |at: Option<Instant>| at.is_some_and(|at| now < at + REFRESH_INTERVAL);
        let failed_lately = self.keys.is_none() && recent(self.fetched);
        !(recent(self.kid_refresh) || failed_lately)
    }
}
