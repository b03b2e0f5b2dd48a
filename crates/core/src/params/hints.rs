//! "Did you mean" hints for misspelled SecretProviderClass parameter keys.
//!
//! Upstream matches keys exactly and ignores unknown ones, so `clientId`
//! silently selects the service-principal path and fails with
//! `nodePublishSecretRef secret is not set` (upstream #1157). We keep that
//! behaviour and that text, and append a hint to the errors a misspelling
//! can cause: an unknown key that equals a known one ignoring case, or is
//! within two edits of one, while the known key itself is not set.

use std::fmt;

use crate::go::quote as go_quote;

use super::{
    CLIENT_ID, CLOUD_ENV_FILE_NAME, CLOUD_NAME, KEYVAULT_NAME, OBJECTS, ParamsError,
    SECRET_PROVIDER_CLASS, StringMap, TENANT_ID, TENANT_ID_LEGACY, USE_AZURE_TOKEN_PROXY,
    USE_POD_IDENTITY, USE_VM_MANAGED_IDENTITY, USER_ASSIGNED_IDENTITY_ID,
};

/// What a parameter is about; an error shows hints of its own topic only.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Topic {
    Vault,
    Tenant,
    Identity,
    Cloud,
    Objects,
}

/// Upstream's parameter keys, in the order suggestions are preferred.
const KNOWN: &[(&str, Topic)] = &[
    (KEYVAULT_NAME, Topic::Vault),
    (TENANT_ID, Topic::Tenant),
    (TENANT_ID_LEGACY, Topic::Tenant),
    (CLIENT_ID, Topic::Identity),
    (USE_POD_IDENTITY, Topic::Identity),
    (USE_VM_MANAGED_IDENTITY, Topic::Identity),
    (USE_AZURE_TOKEN_PROXY, Topic::Identity),
    (USER_ASSIGNED_IDENTITY_ID, Topic::Identity),
    (CLOUD_NAME, Topic::Cloud),
    (CLOUD_ENV_FILE_NAME, Topic::Cloud),
    (OBJECTS, Topic::Objects),
];

/// Keys that are not misspellings: set by the driver, or documented and
/// ignored upstream.
const NOT_PARAMETERS: &[&str] = &[SECRET_PROVIDER_CLASS, "resourceGroup", "subscriptionId"];
const DRIVER_PREFIX: &str = "csi.storage.k8s.io/";

/// Most edits between a key and the known key it is taken for.
const MAX_EDITS: usize = 2;
/// Longest key quoted in a hint.
const MAX_QUOTED: usize = 64;

/// One probably misspelled key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyHint {
    /// The key as the SecretProviderClass spells it.
    pub found: String,
    /// The known key it is probably meant to be.
    pub suggestion: &'static str,
    pub topic: Topic,
}

/// The hints of one request. `Display` is the text appended to an error
/// (empty when there are none).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Hints(Vec<KeyHint>);

// === impl Hints ===

impl Hints {
    /// Finds misspelled keys among `attrs`.
    pub(super) fn from_attrs(attrs: &StringMap) -> Self {
        let set = |key: &str| !attrs.get(key).is_empty();
        let hints = attrs
            .0
            .keys()
            .filter(|key| !KNOWN.iter().any(|(known, _)| known == key))
            .filter(|key| {
                !NOT_PARAMETERS.contains(&key.as_str()) && !key.starts_with(DRIVER_PREFIX)
            })
            .filter_map(|key| {
                let (suggestion, topic) = suggest(key)?;
                // Nothing is missing when the intended key is set too.
                let intended_set = match topic {
                    Topic::Tenant => set(TENANT_ID) || set(TENANT_ID_LEGACY),
                    _ => set(suggestion),
                };
                (!intended_set).then(|| KeyHint {
                    found: key.clone(),
                    suggestion,
                    topic,
                })
            })
            .collect();
        Self(hints)
    }

    /// No hint at all.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The hints, in order of preference.
    pub fn iter(&self) -> impl Iterator<Item = &KeyHint> {
        self.0.iter()
    }

    /// The hints about any of `topics`.
    pub fn about(&self, topics: &[Topic]) -> Self {
        Self(
            self.0
                .iter()
                .filter(|h| topics.contains(&h.topic))
                .cloned()
                .collect(),
        )
    }

    /// The hints worth adding to a failure after parsing (authentication,
    /// Key Vault, timeouts): a misspelled identity or cloud key does not
    /// fail parsing, it silently selects another identity or cloud.
    pub fn for_mount_error(&self) -> Self {
        self.about(&[Topic::Identity, Topic::Cloud])
    }

    /// `error` with the hints relevant to it appended.
    pub(super) fn annotate(&self, error: ParamsError) -> ParamsError {
        let topics: &[Topic] = match &error {
            ParamsError::KeyvaultNameMissing => &[Topic::Vault],
            ParamsError::TenantIdMissing => &[Topic::Tenant],
            ParamsError::CloudEnvFileName(_) | ParamsError::InvalidCloudName { .. } => {
                &[Topic::Cloud]
            }
            ParamsError::AuthConfig { .. } => &[Topic::Identity],
            ParamsError::ObjectsNotSet => &[Topic::Objects],
            _ => &[],
        };
        let hints = self.about(topics);
        if hints.is_empty() {
            return error;
        }
        ParamsError::Hinted {
            source: Box::new(error),
            hints,
        }
    }
}

impl fmt::Display for Hints {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for hint in &self.0 {
            let found: String = hint.found.chars().take(MAX_QUOTED).collect();
            write!(
                f,
                " (did you mean {}? {} is not a parameter",
                go_quote(hint.suggestion),
                go_quote(&found)
            )?;
            if hint.found.eq_ignore_ascii_case(hint.suggestion) {
                f.write_str("; parameter names are case-sensitive")?;
            }
            f.write_str(")")?;
        }
        Ok(())
    }
}

/// The known key `key` is probably meant to be.
fn suggest(key: &str) -> Option<(&'static str, Topic)> {
    let lower = key.to_ascii_lowercase();
    if lower.len() > 64 {
        return None;
    }
    KNOWN
        .iter()
        .map(|&(known, topic)| (edits(&lower, &known.to_ascii_lowercase()), known, topic))
        .filter(|&(distance, _, _)| distance <= MAX_EDITS)
        .min_by_key(|&(distance, _, _)| distance)
        .map(|(_, known, topic)| (known, topic))
}

/// Optimal string alignment distance (insertions, deletions,
/// substitutions, adjacent transpositions).
fn edits(a: &str, b: &str) -> usize {
    let (a, b): (Vec<char>, Vec<char>) = (a.chars().collect(), b.chars().collect());
    let mut rows = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for (i, row) in rows.iter_mut().enumerate() {
        row[0] = i;
    }
    for (j, cell) in rows[0].iter_mut().enumerate() {
        *cell = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut best = (rows[i - 1][j] + 1)
                .min(rows[i][j - 1] + 1)
                .min(rows[i - 1][j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                best = best.min(rows[i - 2][j - 2] + 1);
            }
            rows[i][j] = best;
        }
    }
    rows[a.len()][b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn edit_distance() {
        assert_eq!(edits("clientid", "clientid"), 0);
        assert_eq!(edits("object", "objects"), 1);
        assert_eq!(edits("tenatnid", "tenantid"), 1, "transposition");
        assert_eq!(edits("kitten", "sitting"), 3);
        assert_eq!(edits("", "abc"), 3);
    }

    #[test]
    fn suggestions() {
        let s = |k| suggest(k).map(|(known, _)| known);
        assert_eq!(s("clientId"), Some(CLIENT_ID));
        assert_eq!(s("ClientID"), Some(CLIENT_ID));
        assert_eq!(s("tenantid"), Some(TENANT_ID));
        assert_eq!(s("keyVaultName"), Some(KEYVAULT_NAME));
        assert_eq!(s("keyvaultname"), Some(KEYVAULT_NAME));
        assert_eq!(s("keyvault"), None, "four edits away");
        assert_eq!(s("userAssignedIdentityId"), Some(USER_ASSIGNED_IDENTITY_ID));
        assert_eq!(s("userAssignedIdentity"), Some(USER_ASSIGNED_IDENTITY_ID));
        assert_eq!(s("useVmManagedIdentity"), Some(USE_VM_MANAGED_IDENTITY));
        assert_eq!(s("UsePodIdentity"), Some(USE_POD_IDENTITY));
        assert_eq!(s("usePodIdentitys"), Some(USE_POD_IDENTITY));
        assert_eq!(s("useAzureTokenproxy"), Some(USE_AZURE_TOKEN_PROXY));
        assert_eq!(s("cloudname"), Some(CLOUD_NAME));
        assert_eq!(s("cloudEnvFilename"), Some(CLOUD_ENV_FILE_NAME));
        assert_eq!(s("object"), Some(OBJECTS));
        assert_eq!(s("resourceGroup"), None);
        assert_eq!(s("subscriptionId"), None);
        assert_eq!(s("x"), None);
    }
}
