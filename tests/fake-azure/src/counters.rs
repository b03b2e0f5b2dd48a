//! Request counters, so tests and benchmarks can assert how the client
//! behaved: token requests, Key Vault calls, 401 challenges, TLS handshakes.
//!
//! [`Counters`] is both the live tally and the snapshot handed out (it is
//! cloned under the lock) and serialized by `GET /_fake/counters`. Labels
//! are small: grant kind and outcome code for Entra ID; vault, operation
//! and status for Key Vault. Nothing secret is ever a label.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Grant kinds used as keys of [`Counters::token_requests`].
pub mod grant {
    /// `client_credentials` with a `client_assertion` (workload identity).
    pub const CLIENT_ASSERTION: &str = "client_assertion";
    /// `client_credentials` with a `client_secret` (service principal).
    pub const CLIENT_SECRET: &str = "client_secret";
    /// Neither, or the form could not be read.
    pub const OTHER: &str = "other";
    /// IMDS `GET /metadata/identity/oauth2/token` (VM managed identity).
    pub const MANAGED_IDENTITY: &str = "managed_identity";
    /// NMI `GET /host/token/` (aad-pod-identity).
    pub const POD_IDENTITY: &str = "pod_identity";
    /// A client assertion through the AKS token proxy (identity binding).
    pub const IDENTITY_BINDING: &str = "identity_binding";
}

/// Outcome key for a token request that got a token.
pub const OUTCOME_OK: &str = "ok";

/// Key Vault operation names used as keys of [`Counters::keyvault_requests`].
pub mod op {
    /// `GET /secrets/{name}[/{version}]`.
    pub const GET_SECRET: &str = "get_secret";
    /// `GET /secrets/{name}/versions`.
    pub const LIST_SECRET_VERSIONS: &str = "list_secret_versions";
    /// `GET /keys/{name}[/{version}]`.
    pub const GET_KEY: &str = "get_key";
    /// `GET /keys/{name}/versions`.
    pub const LIST_KEY_VERSIONS: &str = "list_key_versions";
    /// `GET /certificates/{name}[/{version}]`.
    pub const GET_CERTIFICATE: &str = "get_certificate";
    /// `GET /certificates/{name}/versions`.
    pub const LIST_CERTIFICATE_VERSIONS: &str = "list_certificate_versions";
    /// Anything the fake does not implement.
    pub const UNSUPPORTED: &str = "unsupported";
}

/// A snapshot of everything the fake has counted since start or the last
/// reset.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counters {
    /// Token requests: grant kind → outcome (`ok`, `AADSTSnnnnn`, or for
    /// IMDS and NMI the HTTP status) → count.
    pub token_requests: BTreeMap<String, BTreeMap<String, u64>>,
    /// Entra ID token requests by the login host they were sent to
    /// (`login.microsoftonline.us`, …; `token-proxy` for the AKS proxy).
    #[serde(default)]
    pub token_hosts: BTreeMap<String, u64>,
    /// TLS handshakes on the token-proxy listener by the server name (SNI)
    /// the client sent (`""` when it sent none).
    #[serde(default)]
    pub token_proxy_server_names: BTreeMap<String, u64>,
    /// OpenID configuration and instance-discovery requests.
    pub metadata_requests: u64,
    /// Key Vault requests: vault → operation → HTTP status → count.
    pub keyvault_requests: BTreeMap<String, BTreeMap<String, BTreeMap<u16, u64>>>,
    /// Key Vault 401 responses (each carries a `WWW-Authenticate` challenge).
    pub challenges: u64,
    /// CONNECT tunnels opened.
    pub tunnels: u64,
    /// TLS handshakes completed.
    pub tls_handshakes: u64,
    /// TLS handshakes that failed.
    pub tls_handshake_failures: u64,
    /// Responses cut off mid-body (the `reset` fault).
    #[serde(default)]
    pub responses_cut_off: u64,
    /// `User-Agent` values of Entra ID and Key Vault requests → count.
    #[serde(default)]
    pub user_agents: BTreeMap<String, u64>,
}

// === impl Counters ===

impl Counters {
    pub(crate) fn token_request(&mut self, grant: &str, outcome: &str) {
        *self
            .token_requests
            .entry(grant.to_string())
            .or_default()
            .entry(outcome.to_string())
            .or_default() += 1;
    }

    pub(crate) fn keyvault_request(&mut self, vault: &str, op: &str, status: u16) {
        *self
            .keyvault_requests
            .entry(vault.to_string())
            .or_default()
            .entry(op.to_string())
            .or_default()
            .entry(status)
            .or_default() += 1;
        if status == 401 {
            self.challenges += 1;
        }
    }

    pub(crate) fn user_agent(&mut self, user_agent: &str) {
        *self.user_agents.entry(user_agent.to_string()).or_default() += 1;
    }

    /// Tokens issued (successful token requests of any grant kind).
    pub fn tokens_issued(&self) -> u64 {
        self.token_requests
            .values()
            .filter_map(|by_outcome| by_outcome.get(OUTCOME_OK))
            .sum()
    }

    /// All token requests, whatever their outcome.
    pub fn token_requests_total(&self) -> u64 {
        self.token_requests
            .values()
            .flat_map(BTreeMap::values)
            .sum()
    }

    /// Token requests of one grant kind with one outcome.
    pub fn token_requests_with(&self, grant: &str, outcome: &str) -> u64 {
        self.token_requests
            .get(grant)
            .and_then(|m| m.get(outcome))
            .copied()
            .unwrap_or(0)
    }

    /// All Key Vault requests, whatever their vault, operation or status.
    pub fn keyvault_requests_total(&self) -> u64 {
        self.keyvault_requests
            .values()
            .flat_map(BTreeMap::values)
            .flat_map(BTreeMap::values)
            .sum()
    }

    /// Key Vault requests to one vault for one operation with one status.
    pub fn keyvault_requests_with(&self, vault: &str, op: &str, status: u16) -> u64 {
        self.keyvault_requests
            .get(vault)
            .and_then(|m| m.get(op))
            .and_then(|m| m.get(&status))
            .copied()
            .unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tallies_and_round_trips_through_json() {
        let mut c = Counters::default();
        c.token_request(grant::CLIENT_ASSERTION, OUTCOME_OK);
        c.token_request(grant::CLIENT_ASSERTION, "AADSTS70021");
        c.keyvault_request("kv", op::GET_SECRET, 401);
        c.keyvault_request("kv", op::GET_SECRET, 200);
        assert_eq!(c.tokens_issued(), 1);
        assert_eq!(c.token_requests_total(), 2);
        assert_eq!(c.challenges, 1);
        assert_eq!(c.keyvault_requests_total(), 2);
        assert_eq!(c.keyvault_requests_with("kv", op::GET_SECRET, 200), 1);
        let json = serde_json::to_string(&c).expect("serializes");
        assert_eq!(serde_json::from_str::<Counters>(&json).expect("parses"), c);
    }
}
