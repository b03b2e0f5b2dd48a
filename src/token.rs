//! The access token a mount presents to Key Vault, at the bottom of the
//! module graph so that `keyvault` and `reads` need not import `auth`.
//!
//! The value is a secret: `Debug` never shows it and clones share it. This
//! module must not obtain or cache tokens (that is `auth`).

use std::sync::Arc;

use secrecy::{ExposeSecret, SecretString};

/// A bearer token for Key Vault. `Debug` never shows the token; clones
/// share it.
#[derive(Clone)]
pub struct AccessToken {
    secret: Arc<SecretString>,
    /// Tenant the token was issued in (as configured for the mount).
    pub tenant_id: String,
    /// Client id of the identity the token represents (from the answer for
    /// IMDS and NMI).
    pub client_id: String,
}

// === impl AccessToken ===

impl AccessToken {
    pub fn new(secret: SecretString, tenant_id: &str, client_id: &str) -> Self {
        Self {
            secret: Arc::new(secret),
            tenant_id: tenant_id.to_owned(),
            client_id: client_id.to_owned(),
        }
    }

    /// True when both share one token value (same fetch).
    pub fn same_as(&self, other: &AccessToken) -> bool {
        Arc::ptr_eq(&self.secret, &other.secret)
    }

    /// The bearer value, for the `Authorization` header only.
    pub fn bearer(&self) -> &str {
        self.secret.expose_secret()
    }
}

impl std::fmt::Debug for AccessToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AccessToken")
            .field("tenant_id", &self.tenant_id)
            .field("client_id", &self.client_id)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_hides_the_value_and_clones_share_it() {
        let token = AccessToken::new(SecretString::from("eyJ-secret"), "t", "c");
        let shown = format!("{token:?}");
        assert!(!shown.contains("eyJ-secret"), "{shown}");
        assert!(token.same_as(&token.clone()));
        let other = AccessToken::new(SecretString::from("eyJ-secret"), "t", "c");
        assert!(!token.same_as(&other));
    }
}
