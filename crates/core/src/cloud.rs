//! Azure clouds: the built-in table (public, US Government, China, Germany)
//! as go-autorest names them, the *contents* of an Azure Stack environment
//! file, and the vault-name rule. Reading that file is I/O and belongs to
//! the caller; nothing here reads the environment or changes it (upstream
//! sets `AZURE_ENVIRONMENT_FILEPATH` during a mount; we carry the cloud as
//! data instead).

use thiserror::Error;

use crate::go::quote as go_quote;

/// The name that selects an environment file instead of the table.
pub const AZURE_STACK_CLOUD: &str = "AzureStackCloud";
/// The variable go-autorest reads the Azure Stack environment file's path
/// from.
pub const ENVIRONMENT_FILEPATH_ENV: &str = "AZURE_ENVIRONMENT_FILEPATH";

/// The endpoints of one Azure cloud that the provider uses.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cloud {
    name: String,
    authority_host: String,
    keyvault_resource: String,
    keyvault_dns_suffix: String,
}

/// Why a cloud could not be resolved. `Display` is the cause upstream
/// prints after `cloudName <x> is not valid, error: `.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum CloudError {
    /// Not in the table; the name is upper-cased as go-autorest reports it.
    #[error("autorest/azure: There is no cloud environment matching the name {}", go_quote(.0))]
    UnknownName(String),
    /// `AzureStackCloud` has no built-in endpoints.
    #[error(
        "{AZURE_STACK_CLOUD} has no built-in endpoints; set cloudName: {AZURE_STACK_CLOUD} \
         and cloudEnvFileName in the SecretProviderClass"
    )]
    AzureStackWithoutFile,
    /// `cloudName: AzureStackCloud` without `cloudEnvFileName`, and no
    /// `AZURE_ENVIRONMENT_FILEPATH` at start-up. Upstream's text (Go opening
    /// the empty path), then what to do.
    #[error(
        "open : no such file or directory ({ENVIRONMENT_FILEPATH_ENV} is not set in the provider's \
         environment and cloudEnvFileName is empty: set either to the path of the cloud \
         environment JSON file)"
    )]
    EnvironmentFileNotSet,
    /// The environment file could not be read (built by the caller).
    #[error("open {path}: {reason}")]
    EnvironmentFile { path: String, reason: String },
    /// The environment file is not a JSON object of the expected shape.
    #[error("invalid cloud environment JSON: {0}")]
    EnvironmentJson(String),
    /// A field the provider needs is missing, empty or not a string.
    #[error("the cloud environment has no {0} (a non-empty string is required)")]
    MissingField(&'static str),
}

/// Why a vault name is rejected (upstream texts). The caller adds
/// `failed to get vault: `.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum VaultNameError {
    #[error("Invalid vault name: {}, must be between 3 and 24 chars", go_quote(.0))]
    Length(String),
    #[error("Invalid vault name: {}, must match [-a-zA-Z0-9]{{3,24}}", go_quote(.0))]
    Characters(String),
}

// === impl Cloud ===

impl Cloud {
    /// `AzurePublicCloud` (alias `AzureCloud`).
    pub fn public() -> Self {
        Self::table(
            "AzurePublicCloud",
            "https://login.microsoftonline.com/",
            "https://vault.azure.net/",
            "vault.azure.net",
        )
    }

    /// `AzureUSGovernmentCloud` (alias `AzureUSGovernment`).
    pub fn us_government() -> Self {
        Self::table(
            "AzureUSGovernmentCloud",
            "https://login.microsoftonline.us/",
            "https://vault.usgovcloudapi.net/",
            "vault.usgovcloudapi.net",
        )
    }

    /// `AzureChinaCloud`.
    pub fn china() -> Self {
        Self::table(
            "AzureChinaCloud",
            "https://login.chinacloudapi.cn/",
            "https://vault.azure.cn/",
            "vault.azure.cn",
        )
    }

    /// `AzureGermanCloud` (retired by Microsoft, kept because go-autorest
    /// still accepts the name).
    pub fn german() -> Self {
        Self::table(
            "AzureGermanCloud",
            "https://login.microsoftonline.de/",
            "https://vault.microsoftazure.de/",
            "vault.microsoftazure.de",
        )
    }

    fn table(name: &str, authority: &str, resource: &str, suffix: &str) -> Self {
        Self::new(name, authority, resource, suffix).expect("built-in cloud table is valid")
    }

    /// A cloud from explicit endpoints (Azure Stack, tests, a local fake).
    /// The authority host gets a trailing `/`; the Key Vault resource loses
    /// it (`https://vault.azure.net`), as upstream uses them.
    pub fn new(
        name: &str,
        authority_host: &str,
        keyvault_endpoint: &str,
        keyvault_dns_suffix: &str,
    ) -> Result<Self, CloudError> {
        let authority_host = required("activeDirectoryEndpoint", authority_host)?;
        let keyvault_resource = required("keyVaultEndpoint", keyvault_endpoint)?;
        let keyvault_dns_suffix = required("keyVaultDNSSuffix", keyvault_dns_suffix)?;
        let name = match name.trim() {
            "" => AZURE_STACK_CLOUD,
            name => name,
        };
        let mut authority_host = authority_host.to_owned();
        if !authority_host.ends_with('/') {
            authority_host.push('/');
        }
        Ok(Self {
            name: name.to_owned(),
            authority_host,
            keyvault_resource: keyvault_resource.trim_end_matches('/').to_owned(),
            keyvault_dns_suffix: keyvault_dns_suffix.to_owned(),
        })
    }

    /// Looks a name up in the built-in table, case-insensitively, with
    /// go-autorest's aliases. `AzureStackCloud` is not in the table: its
    /// endpoints come from a file (see [`is_azure_stack`]).
    pub fn from_name(name: &str) -> Result<Self, CloudError> {
        if is_azure_stack(name) {
            return Err(CloudError::AzureStackWithoutFile);
        }
        let upper = name.to_uppercase();
        match upper.as_str() {
            "AZUREPUBLICCLOUD" | "AZURECLOUD" => Ok(Self::public()),
            "AZUREUSGOVERNMENTCLOUD" | "AZUREUSGOVERNMENT" => Ok(Self::us_government()),
            "AZURECHINACLOUD" => Ok(Self::china()),
            "AZUREGERMANCLOUD" => Ok(Self::german()),
            _ => Err(CloudError::UnknownName(upper)),
        }
    }

    /// Parses the contents of an Azure Stack environment file. Keys match
    /// case-insensitively (as Go's `encoding/json` does); the file must
    /// carry `activeDirectoryEndpoint`, `keyVaultEndpoint` and
    /// `keyVaultDNSSuffix` (upstream would accept empty values and fail
    /// later with a malformed URL); `name` is optional. Other keys are
    /// ignored.
    pub fn from_environment_json(json: &str) -> Result<Self, CloudError> {
        let value: serde_json::Value =
            serde_json::from_str(json).map_err(|e| CloudError::EnvironmentJson(e.to_string()))?;
        let serde_json::Value::Object(map) = value else {
            return Err(CloudError::EnvironmentJson(
                "expected a JSON object".to_owned(),
            ));
        };
        let field = |key: &'static str| -> Result<&str, CloudError> {
            let found = map.iter().find(|(k, _)| k.eq_ignore_ascii_case(key));
            match found.map(|(_, v)| v) {
                None | Some(serde_json::Value::Null) => Ok(""),
                Some(serde_json::Value::String(s)) => Ok(s.as_str()),
                Some(_) => Err(CloudError::MissingField(key)),
            }
        };
        Self::new(
            field("name")?,
            field("activeDirectoryEndpoint")?,
            field("keyVaultEndpoint")?,
            field("keyVaultDNSSuffix")?,
        )
    }

    /// The name, e.g. `AzurePublicCloud`.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The Entra ID authority host, with a trailing `/`
    /// (`https://login.microsoftonline.com/`).
    pub fn authority_host(&self) -> &str {
        &self.authority_host
    }

    /// The Key Vault resource without a trailing `/`
    /// (`https://vault.azure.net`); pod identity asks NMI for it.
    pub fn keyvault_resource(&self) -> &str {
        &self.keyvault_resource
    }

    /// The vault host suffix, e.g. `vault.azure.net`.
    pub fn keyvault_dns_suffix(&self) -> &str {
        &self.keyvault_dns_suffix
    }

    /// `https://<name>.<suffix>/`. Check the name with
    /// [`validate_vault_name`] first.
    pub fn vault_url(&self, vault_name: &str) -> String {
        format!("https://{vault_name}.{}/", self.keyvault_dns_suffix)
    }

    /// The OAuth scope for Key Vault, `<resource>/.default`.
    pub fn keyvault_scope(&self) -> String {
        if self.keyvault_resource.ends_with("/.default") {
            return self.keyvault_resource.clone();
        }
        format!("{}/.default", self.keyvault_resource)
    }
}

fn required<'a>(field: &'static str, value: &'a str) -> Result<&'a str, CloudError> {
    match value.trim() {
        "" => Err(CloudError::MissingField(field)),
        value => Ok(value),
    }
}

/// Whether `name` selects an Azure Stack environment file
/// (case-insensitive, as go-autorest).
pub fn is_azure_stack(name: &str) -> bool {
    name.eq_ignore_ascii_case(AZURE_STACK_CLOUD)
}

/// Upstream's vault-name rule: 3–24 bytes of `[-A-Za-z0-9]`. Upstream
/// checks it after the object list, just before building the client.
pub fn validate_vault_name(name: &str) -> Result<(), VaultNameError> {
    if !(3..=24).contains(&name.len()) {
        return Err(VaultNameError::Length(name.to_owned()));
    }
    if !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
        return Err(VaultNameError::Characters(name.to_owned()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_case_insensitive_with_aliases() {
        let cases = [
            ("AzurePublicCloud", "AzurePublicCloud"),
            ("azurecloud", "AzurePublicCloud"),
            ("AZUREPUBLICCLOUD", "AzurePublicCloud"),
            ("AzureUSGovernmentCloud", "AzureUSGovernmentCloud"),
            ("azureusgovernment", "AzureUSGovernmentCloud"),
            ("AzureChinaCloud", "AzureChinaCloud"),
            ("azuregermancloud", "AzureGermanCloud"),
        ];
        for (input, want) in cases {
            assert_eq!(Cloud::from_name(input).unwrap().name(), want, "{input}");
        }
    }

    #[test]
    fn unknown_and_azure_stack_names() {
        let err = Cloud::from_name("Mars").unwrap_err();
        assert_eq!(
            err.to_string(),
            r#"autorest/azure: There is no cloud environment matching the name "MARS""#
        );
        assert_eq!(
            Cloud::from_name("azurestackcloud"),
            Err(CloudError::AzureStackWithoutFile)
        );
        assert!(is_azure_stack("AZURESTACKCLOUD"));
        assert!(!is_azure_stack("AzureCloud"));
    }

    #[test]
    fn table_endpoints() {
        let public = Cloud::public();
        assert_eq!(
            public.authority_host(),
            "https://login.microsoftonline.com/"
        );
        assert_eq!(public.keyvault_resource(), "https://vault.azure.net");
        assert_eq!(public.keyvault_dns_suffix(), "vault.azure.net");
        assert_eq!(public.keyvault_scope(), "https://vault.azure.net/.default");
        assert_eq!(public.vault_url("kv1"), "https://kv1.vault.azure.net/");
        let gov = Cloud::us_government();
        assert_eq!(gov.authority_host(), "https://login.microsoftonline.us/");
        assert_eq!(gov.vault_url("kv1"), "https://kv1.vault.usgovcloudapi.net/");
        let china = Cloud::china();
        assert_eq!(china.authority_host(), "https://login.chinacloudapi.cn/");
        assert_eq!(china.keyvault_scope(), "https://vault.azure.cn/.default");
        let german = Cloud::german();
        assert_eq!(
            german.keyvault_resource(),
            "https://vault.microsoftazure.de"
        );
    }

    #[test]
    fn azure_stack_environment_json() {
        let json = r#"{
            "name": "AzureStackCloud",
            "managementPortalURL": "https://portal.local.azurestack.external/",
            "activeDirectoryEndpoint": "https://adfs.local.azurestack.external/adfs",
            "keyVaultEndpoint": "https://vault.local.azurestack.external/",
            "keyVaultDNSSuffix": "vault.local.azurestack.external"
        }"#;
        let cloud = Cloud::from_environment_json(json).unwrap();
        assert_eq!(cloud.name(), "AzureStackCloud");
        assert_eq!(
            cloud.authority_host(),
            "https://adfs.local.azurestack.external/adfs/"
        );
        assert_eq!(
            cloud.keyvault_resource(),
            "https://vault.local.azurestack.external"
        );
        assert_eq!(
            cloud.vault_url("kv"),
            "https://kv.vault.local.azurestack.external/"
        );
        assert_eq!(
            cloud.keyvault_scope(),
            "https://vault.local.azurestack.external/.default"
        );
    }

    #[test]
    fn azure_stack_keys_match_case_insensitively_name_optional() {
        let json = r#"{"ActiveDirectoryEndpoint": "https://login.example/",
                       "KEYVAULTENDPOINT": "https://vault.example",
                       "keyvaultdnssuffix": "vault.example"}"#;
        let cloud = Cloud::from_environment_json(json).unwrap();
        assert_eq!(cloud.name(), AZURE_STACK_CLOUD);
        assert_eq!(cloud.keyvault_resource(), "https://vault.example");
    }

    #[test]
    fn azure_stack_json_errors() {
        let missing = r#"{"name": "x", "activeDirectoryEndpoint": "https://a/", "keyVaultEndpoint": "https://v/"}"#;
        assert_eq!(
            Cloud::from_environment_json(missing),
            Err(CloudError::MissingField("keyVaultDNSSuffix"))
        );
        let empty = r#"{"activeDirectoryEndpoint": " ", "keyVaultEndpoint": "https://v/", "keyVaultDNSSuffix": "v"}"#;
        assert_eq!(
            Cloud::from_environment_json(empty),
            Err(CloudError::MissingField("activeDirectoryEndpoint"))
        );
        let wrong_type = r#"{"activeDirectoryEndpoint": 1, "keyVaultEndpoint": "https://v/", "keyVaultDNSSuffix": "v"}"#;
        assert_eq!(
            Cloud::from_environment_json(wrong_type),
            Err(CloudError::MissingField("activeDirectoryEndpoint"))
        );
        assert!(matches!(
            Cloud::from_environment_json("[]"),
            Err(CloudError::EnvironmentJson(_))
        ));
        let err = Cloud::from_environment_json("{").unwrap_err();
        assert!(
            err.to_string()
                .starts_with("invalid cloud environment JSON: "),
            "{err}"
        );
        let err = CloudError::EnvironmentFile {
            path: "/x.json".into(),
            reason: "not found".into(),
        };
        assert_eq!(err.to_string(), "open /x.json: not found");
    }

    #[test]
    fn vault_names() {
        assert_eq!(validate_vault_name("kv-1"), Ok(()));
        assert_eq!(validate_vault_name("abc"), Ok(()));
        assert_eq!(validate_vault_name(&"a".repeat(24)), Ok(()));
        assert_eq!(
            validate_vault_name("ab").unwrap_err().to_string(),
            r#"Invalid vault name: "ab", must be between 3 and 24 chars"#
        );
        assert_eq!(
            validate_vault_name(&"a".repeat(25))
                .unwrap_err()
                .to_string(),
            format!(
                r#"Invalid vault name: "{}", must be between 3 and 24 chars"#,
                "a".repeat(25)
            )
        );
        assert_eq!(
            validate_vault_name("kv_1").unwrap_err().to_string(),
            r#"Invalid vault name: "kv_1", must match [-a-zA-Z0-9]{3,24}"#
        );
        assert_eq!(
            validate_vault_name("kv.evil.com").unwrap_err().to_string(),
            r#"Invalid vault name: "kv.evil.com", must match [-a-zA-Z0-9]{3,24}"#
        );
    }
}
