//! A SecretProviderClass document as a user applies it with kubectl: its
//! name, `spec.provider` and `spec.parameters`, read from YAML text (one or
//! more documents; the SecretProviderClass is picked out). Used by the
//! `mount` dry-run command to build the request the driver would send.
//!
//! Pure: the caller reads the file. Errors name the field at fault.

use std::collections::BTreeMap;

use serde_yaml_ng::Value;
use thiserror::Error;

/// The parts of a SecretProviderClass the provider sees.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SecretProviderClass {
    /// `metadata.name`
    pub name: String,
    /// `metadata.namespace`, if the document sets one.
    pub namespace: Option<String>,
    /// `spec.provider`
    pub provider: String,
    /// `spec.parameters`, every value a string as in the Kubernetes API.
    pub parameters: BTreeMap<String, String>,
}

/// Why the YAML is not a usable SecretProviderClass.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum SpcError {
    #[error("invalid YAML: {0}")]
    Yaml(String),
    #[error("no document of kind SecretProviderClass found")]
    NotFound,
    #[error("{0} SecretProviderClass documents found ({1}); keep the one to test in its own file")]
    Several(usize, String),
    #[error("{0} is missing or not a string")]
    Missing(&'static str),
    #[error("spec.provider is {0:?}; this provider serves \"azure\"")]
    WrongProvider(String),
    #[error(
        "spec.parameters.{0} must be a string; quote it in the YAML (the Kubernetes API rejects other types)"
    )]
    NotAString(String),
}

/// Parses the SecretProviderClass out of `text`.
pub fn parse(text: &str) -> Result<SecretProviderClass, SpcError> {
    let mut found = Vec::new();
    for document in serde_yaml_ng::Deserializer::from_str(text) {
        let value = <Value as serde::Deserialize>::deserialize(document)
            .map_err(|e| SpcError::Yaml(e.to_string()))?;
        if value["kind"].as_str() == Some("SecretProviderClass") {
            found.push(value);
        }
    }
    match found.len() {
        0 => Err(SpcError::NotFound),
        1 => from_value(&found[0]),
        n => {
            let names: Vec<&str> = found
                .iter()
                .map(|v| v["metadata"]["name"].as_str().unwrap_or("?"))
                .collect();
            Err(SpcError::Several(n, names.join(", ")))
        }
    }
}

fn from_value(doc: &Value) -> Result<SecretProviderClass, SpcError> {
    let name = doc["metadata"]["name"]
        .as_str()
        .ok_or(SpcError::Missing("metadata.name"))?
        .to_owned();
    let provider = doc["spec"]["provider"]
        .as_str()
        .ok_or(SpcError::Missing("spec.provider"))?
        .to_owned();
    if provider != "azure" {
        return Err(SpcError::WrongProvider(provider));
    }
    let mut parameters = BTreeMap::new();
    if let Some(raw) = doc["spec"]["parameters"].as_mapping() {
        for (key, value) in raw {
            let key = key
                .as_str()
                .ok_or(SpcError::Missing("spec.parameters key"))?;
            let value = value
                .as_str()
                .ok_or_else(|| SpcError::NotAString(key.to_owned()))?;
            parameters.insert(key.to_owned(), value.to_owned());
        }
    }
    let namespace = doc["metadata"]["namespace"].as_str().map(str::to_owned);
    Ok(SecretProviderClass {
        name,
        namespace,
        provider,
        parameters,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const SPC: &str = r#"
apiVersion: secrets-store.csi.x-k8s.io/v1
kind: SecretProviderClass
metadata:
  name: azure-kvname
spec:
  provider: azure
  parameters:
    usePodIdentity: "false"
    clientID: "4f6f3c2a-1b9e-4f0e-9d8a-0c1b2d3e4f50"
    keyvaultName: kv-blogpost-jx01
    objects: |
      array:
        - |
          objectName: MySecretPassword
          objectType: secret
    tenantId: "f1a2b3c4-5d6e-4f70-8a9b-0c1d2e3f4a5b"
"#;

    #[test]
    fn reads_name_provider_and_parameters() {
        let spc = parse(SPC).unwrap();
        assert_eq!(spc.name, "azure-kvname");
        assert_eq!(spc.namespace, None);
        assert_eq!(spc.provider, "azure");
        assert_eq!(spc.parameters["usePodIdentity"], "false");
        assert_eq!(spc.parameters["keyvaultName"], "kv-blogpost-jx01");
        assert!(spc.parameters["objects"].starts_with("array:\n  - |\n"));
    }

    #[test]
    fn picks_the_spc_out_of_several_documents() {
        let text = format!("apiVersion: v1\nkind: Pod\nmetadata:\n  name: p\n---{SPC}");
        assert_eq!(parse(&text).unwrap().name, "azure-kvname");
        let twice = format!("{SPC}---{SPC}");
        assert!(matches!(parse(&twice), Err(SpcError::Several(2, _))));
        assert_eq!(parse("kind: Pod\n"), Err(SpcError::NotFound));
    }

    #[test]
    fn errors_name_the_field() {
        let unquoted = SPC.replace("usePodIdentity: \"false\"", "usePodIdentity: false");
        assert_eq!(
            parse(&unquoted).unwrap_err().to_string(),
            "spec.parameters.usePodIdentity must be a string; quote it in the YAML (the Kubernetes API rejects other types)"
        );
        let vault = SPC.replace("provider: azure", "provider: vault");
        assert_eq!(parse(&vault), Err(SpcError::WrongProvider("vault".into())));
        let nameless = SPC.replace("  name: azure-kvname\n", "  labels: {}\n");
        assert_eq!(parse(&nameless), Err(SpcError::Missing("metadata.name")));
        assert!(matches!(parse("kind: [\n"), Err(SpcError::Yaml(_))));
    }
}
