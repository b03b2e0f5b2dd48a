//! The table of Azure clouds the fake impersonates, and host-name routing.
//!
//! A request is routed by the host it names (`Host` / `:authority`), never by
//! the CONNECT target alone: a vault host becomes Key Vault with the vault
//! name taken from the first label, a login host becomes Entra ID, anything
//! else is unknown. This module only classifies names; handlers live in
//! `aad.rs` and `keyvault.rs`.

/// One Azure cloud: where its Entra ID lives and what its vaults are called.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Cloud {
    /// Short name for logs.
    pub name: &'static str,
    /// The Entra ID (AAD) host that issues tokens for this cloud's vaults.
    pub login_host: &'static str,
    /// DNS suffix of vault hosts, without the leading dot.
    pub vault_suffix: &'static str,
    /// The Key Vault resource (audience) tokens must be issued for.
    pub vault_resource: &'static str,
}

/// Every cloud the fake answers for. Azure Stack Hub signs in through the
/// public Entra ID in its AAD deployment, which is what the fake models.
pub(crate) const CLOUDS: &[Cloud] = &[
    Cloud {
        name: "AzurePublicCloud",
        login_host: "login.microsoftonline.com",
        vault_suffix: "vault.azure.net",
        vault_resource: "https://vault.azure.net",
    },
    Cloud {
        name: "AzureUSGovernmentCloud",
        login_host: "login.microsoftonline.us",
        vault_suffix: "vault.usgovcloudapi.net",
        vault_resource: "https://vault.usgovcloudapi.net",
    },
    Cloud {
        name: "AzureChinaCloud",
        login_host: "login.chinacloudapi.cn",
        vault_suffix: "vault.azure.cn",
        vault_resource: "https://vault.azure.cn",
    },
    Cloud {
        name: "AzureGermanCloud",
        login_host: "login.microsoftonline.de",
        vault_suffix: "vault.microsoftazure.de",
        vault_resource: "https://vault.microsoftazure.de",
    },
    Cloud {
        name: "AzureStackCloud",
        login_host: "login.microsoftonline.com",
        vault_suffix: "vault.local.azurestack.external",
        vault_resource: "https://vault.local.azurestack.external",
    },
];

/// Where a request goes, decided from its host name alone.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Route {
    /// Entra ID token and metadata endpoints.
    Aad(&'static Cloud),
    /// One Key Vault; `vault` is the lowercased first label of the host.
    KeyVault {
        vault: String,
        cloud: &'static Cloud,
    },
    /// Not a host the fake serves.
    Unknown,
}

/// Lowercases a host, strips a port and a trailing dot.
pub(crate) fn normalize_host(raw: &str) -> String {
    let raw = raw.trim();
    let host = if let Some(rest) = raw.strip_prefix('[') {
        // An IPv6 literal: keep what is inside the brackets.
        rest.split(']').next().unwrap_or(rest)
    } else {
        raw.rsplit_once(':').map_or(raw, |(h, port)| {
            if port.chars().all(|c| c.is_ascii_digit()) {
                h
            } else {
                raw
            }
        })
    };
    host.trim_end_matches('.').to_ascii_lowercase()
}

/// Classifies a normalized host name.
pub(crate) fn route(host: &str) -> Route {
    if let Some(cloud) = CLOUDS.iter().find(|c| c.login_host == host) {
        return Route::Aad(cloud);
    }
    for cloud in CLOUDS {
        let Some(prefix) = host.strip_suffix(cloud.vault_suffix) else {
            continue;
        };
        let Some(vault) = prefix.strip_suffix('.') else {
            continue;
        };
        if !vault.is_empty() && !vault.contains('.') {
            return Route::KeyVault {
                vault: vault.to_string(),
                cloud,
            };
        }
    }
    Route::Unknown
}

/// True when `resource` (no `/.default`, trailing slash ignored) is the Key
/// Vault resource of some cloud.
pub(crate) fn is_vault_resource(resource: &str) -> bool {
    let resource = resource.trim_end_matches('/');
    CLOUDS.iter().any(|c| c.vault_resource == resource)
}

/// True when the Entra ID at `login_host` issues tokens for `resource` (a
/// vault resource without `/.default`): only its own cloud's vaults.
pub(crate) fn login_issues_for(login_host: &str, resource: &str) -> bool {
    let resource = resource.trim_end_matches('/');
    CLOUDS
        .iter()
        .any(|c| c.login_host == login_host && c.vault_resource == resource)
}

/// Subject alternative names for the fake's TLS leaf certificate.
pub(crate) fn san_names() -> Vec<String> {
    let mut names: Vec<String> = Vec::new();
    for cloud in CLOUDS {
        for name in [
            cloud.login_host.to_string(),
            format!("*.{}", cloud.vault_suffix),
            cloud.vault_suffix.to_string(),
        ] {
            if !names.contains(&name) {
                names.push(name);
            }
        }
    }
    names.push("localhost".to_string());
    names.push("127.0.0.1".to_string());
    names
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalizes_ports_case_and_dots() {
        assert_eq!(
            normalize_host("KV1.Vault.Azure.NET:443"),
            "kv1.vault.azure.net"
        );
        assert_eq!(
            normalize_host("login.microsoftonline.com."),
            "login.microsoftonline.com"
        );
        assert_eq!(normalize_host("[::1]:8080"), "::1");
        assert_eq!(normalize_host("127.0.0.1"), "127.0.0.1");
    }

    #[test]
    fn routes_vault_hosts_by_first_label() {
        match route("kv-blogpost-jx01.vault.azure.net") {
            Route::KeyVault { vault, cloud } => {
                assert_eq!(vault, "kv-blogpost-jx01");
                assert_eq!(cloud.vault_resource, "https://vault.azure.net");
            }
            other => panic!("unexpected route {other:?}"),
        }
        match route("gov1.vault.usgovcloudapi.net") {
            Route::KeyVault { cloud, .. } => {
                assert_eq!(cloud.login_host, "login.microsoftonline.us")
            }
            other => panic!("unexpected route {other:?}"),
        }
        match route("kv.vault.local.azurestack.external") {
            Route::KeyVault { cloud, .. } => assert_eq!(cloud.name, "AzureStackCloud"),
            other => panic!("unexpected route {other:?}"),
        }
    }

    #[test]
    fn routes_login_hosts_and_rejects_others() {
        assert_eq!(route("login.chinacloudapi.cn"), Route::Aad(&CLOUDS[2]));
        assert_eq!(route("vault.azure.net"), Route::Unknown);
        assert_eq!(route("a.b.vault.azure.net"), Route::Unknown);
        assert_eq!(route("evilvault.azure.net"), Route::Unknown);
        assert_eq!(route("management.azure.com"), Route::Unknown);
        assert_eq!(route("localhost"), Route::Unknown);
    }

    #[test]
    fn vault_resources_ignore_trailing_slash() {
        assert!(is_vault_resource("https://vault.azure.net/"));
        assert!(is_vault_resource("https://vault.azure.cn"));
        assert!(!is_vault_resource("https://management.azure.com"));
    }

    #[test]
    fn logins_issue_only_for_their_clouds_vaults() {
        assert!(login_issues_for(
            "login.microsoftonline.com",
            "https://vault.azure.net/"
        ));
        assert!(login_issues_for(
            "login.microsoftonline.com",
            "https://vault.local.azurestack.external"
        ));
        assert!(login_issues_for(
            "login.chinacloudapi.cn",
            "https://vault.azure.cn"
        ));
        assert!(!login_issues_for(
            "login.microsoftonline.com",
            "https://vault.azure.cn"
        ));
        assert!(!login_issues_for(
            "login.microsoftonline.us",
            "https://vault.azure.net"
        ));
    }

    #[test]
    fn sans_cover_every_cloud_once() {
        let sans = san_names();
        assert!(sans.contains(&"*.vault.azure.net".to_string()));
        assert!(sans.contains(&"login.microsoftonline.de".to_string()));
        let public = sans.iter().filter(|s| *s == "login.microsoftonline.com");
        assert_eq!(public.count(), 1);
    }
}
