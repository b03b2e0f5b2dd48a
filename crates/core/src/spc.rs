//! A SecretProviderClass document as a user applies it with kubectl (its
//! name, `spec.provider`, `spec.parameters` and `spec.secretObjects`, read
//! from YAML text; the SecretProviderClass is picked out of several
//! documents), and the Mount request the Secrets Store CSI Driver (v1.6)
//! sends for a pod's inline volume of that class: [`driver_request`]. The
//! `mount` dry-run command and the tests' driver imitation both build their
//! requests here, so they cannot drift apart.
//!
//! Pure: the caller reads the file and wraps the result into the gRPC
//! message. Errors name the field at fault.

use std::collections::BTreeMap;

use serde::Serialize;
use serde_yaml_ng::Value;
use thiserror::Error;

use crate::params::SERVICE_ACCOUNT_TOKENS;

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
    /// `spec.secretObjects`: Kubernetes Secrets the driver syncs from the
    /// mounted files (the provider never sees them).
    pub secret_objects: Vec<SecretObject>,
}

/// One `spec.secretObjects` entry: a Kubernetes Secret built from files.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SecretObject {
    /// `secretName`
    pub secret_name: String,
    /// `type`, e.g. `Opaque`.
    pub secret_type: String,
    /// `data`: (key in the Secret, `objectName`, i.e. the file's path in
    /// the mount).
    pub data: Vec<(String, String)>,
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
        secret_objects: secret_objects(&doc["spec"]["secretObjects"])?,
    })
}

fn secret_objects(list: &Value) -> Result<Vec<SecretObject>, SpcError> {
    let text = |value: &Value, field: &'static str| {
        value
            .as_str()
            .map(str::to_owned)
            .ok_or(SpcError::Missing(field))
    };
    let mut objects = Vec::new();
    for entry in list.as_sequence().into_iter().flatten() {
        let mut data = Vec::new();
        for item in entry["data"].as_sequence().into_iter().flatten() {
            let key = text(&item["key"], "spec.secretObjects.data.key")?;
            let object = text(&item["objectName"], "spec.secretObjects.data.objectName")?;
            data.push((key, object));
        }
        objects.push(SecretObject {
            secret_name: text(&entry["secretName"], "spec.secretObjects.secretName")?,
            secret_type: text(&entry["type"], "spec.secretObjects.type")?,
            data,
        });
    }
    Ok(objects)
}

// === the driver's Mount request ===

// Keys kubelet puts into the volume context (`podInfoOnMount: true`).
const POD_NAME: &str = "csi.storage.k8s.io/pod.name";
const POD_NAMESPACE: &str = "csi.storage.k8s.io/pod.namespace";
const POD_UID: &str = "csi.storage.k8s.io/pod.uid";
const SERVICE_ACCOUNT_NAME: &str = "csi.storage.k8s.io/serviceAccount.name";
const EPHEMERAL: &str = "csi.storage.k8s.io/ephemeral";
/// The pod's `volumeAttributes` key naming the class.
const SECRET_PROVIDER_CLASS: &str = "secretProviderClass";

/// The file mode the driver asks for: `os.FileMode(0644)` as JSON.
pub const DRIVER_PERMISSION: &str = "420";

/// The pod an inline volume is mounted for, as kubelet describes it.
#[derive(Clone, Copy, Debug)]
pub struct PodInfo<'a> {
    pub namespace: &'a str,
    pub name: &'a str,
    pub uid: &'a str,
    pub service_account: &'a str,
    /// The volume's name in the pod spec (part of the target path).
    pub volume: &'a str,
}

/// A token kubelet requested for the pod (one per CSIDriver
/// `tokenRequests` audience). `Debug` does not print the token.
#[derive(Clone, PartialEq, Eq)]
pub struct ServiceAccountToken {
    pub audience: String,
    pub token: String,
    /// RFC 3339; the dry run sends `""`.
    pub expiration: String,
}

impl std::fmt::Debug for ServiceAccountToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServiceAccountToken")
            .field("audience", &self.audience)
            .field("token", &"...")
            .field("expiration", &self.expiration)
            .finish()
    }
}

/// The fields of a `MountRequest` as the driver fills them, before the
/// caller wraps them into the gRPC message (`current_object_version` is
/// always empty: v1.6 never sends it).
#[derive(Clone, PartialEq, Eq)]
pub struct DriverRequest {
    /// JSON object: `spec.parameters` overlaid by the volume context.
    pub attributes: String,
    /// JSON of the nodePublishSecretRef secret, `null` without one.
    pub secrets: String,
    /// kubelet's publish path for the pod's volume.
    pub target_path: String,
    /// Always [`DRIVER_PERMISSION`].
    pub permission: String,
}

impl std::fmt::Debug for DriverRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DriverRequest")
            .field("target_path", &self.target_path)
            .finish_non_exhaustive()
    }
}

/// The Mount request driver v1.6 sends for `pod`'s inline volume of `spc`:
///
/// - `attributes`: `spec.parameters`, overlaid by every key of kubelet's
///   volume context (pod name, namespace, uid, service account,
///   `csi.storage.k8s.io/ephemeral: "true"`, and the pod's
///   `volumeAttributes`, here `secretProviderClass`), then the tokens as
///   `csi.storage.k8s.io/serviceAccount.tokens` (audience → token and
///   expiry) when there are any;
/// - `secrets`: the nodePublishSecretRef secret's data, or `null`;
/// - `target_path`: `/var/lib/kubelet/pods/<uid>/volumes/kubernetes.io~csi/<volume>/mount`;
/// - `permission`: `"420"`.
///
/// JSON is written as Go's `encoding/json` writes a `map[string]string`:
/// keys sorted, `<`, `>` and `&` escaped.
pub fn driver_request(
    spc: &SecretProviderClass,
    pod: &PodInfo<'_>,
    tokens: &[ServiceAccountToken],
    secrets: Option<&BTreeMap<String, String>>,
) -> DriverRequest {
    DriverRequest {
        attributes: go_json(&attributes(spc, pod, tokens)),
        secrets: secrets.map_or_else(|| "null".to_owned(), go_json),
        target_path: format!(
            "/var/lib/kubelet/pods/{}/volumes/kubernetes.io~csi/{}/mount",
            pod.uid, pod.volume
        ),
        permission: DRIVER_PERMISSION.to_owned(),
    }
}

/// The `attributes` map of [`driver_request`].
pub fn attributes(
    spc: &SecretProviderClass,
    pod: &PodInfo<'_>,
    tokens: &[ServiceAccountToken],
) -> BTreeMap<String, String> {
    let mut map = spc.parameters.clone();
    let context = [
        (POD_NAME, pod.name),
        (POD_NAMESPACE, pod.namespace),
        (POD_UID, pod.uid),
        (SERVICE_ACCOUNT_NAME, pod.service_account),
        (EPHEMERAL, "true"),
        (SECRET_PROVIDER_CLASS, spc.name.as_str()),
    ];
    for (key, value) in context {
        map.insert(key.to_owned(), value.to_owned());
    }
    if !tokens.is_empty() {
        #[derive(Serialize)]
        struct Status<'a> {
            token: &'a str,
            #[serde(rename = "expirationTimestamp")]
            expiration: &'a str,
        }
        let by_audience: BTreeMap<&str, Status<'_>> = tokens
            .iter()
            .map(|t| {
                let status = Status {
                    token: &t.token,
                    expiration: &t.expiration,
                };
                (t.audience.as_str(), status)
            })
            .collect();
        map.insert(SERVICE_ACCOUNT_TOKENS.to_owned(), go_json(&by_audience));
    }
    map
}

/// JSON as Go's `encoding/json` writes it: HTML characters and the line
/// and paragraph separators escaped (they can only occur inside strings).
fn go_json(value: &impl Serialize) -> String {
    let json = serde_json::to_string(value).unwrap_or_else(|_| "null".to_owned());
    let mut out = String::with_capacity(json.len());
    for c in json.chars() {
        match c {
            '<' => out.push_str("\\u003c"),
            '>' => out.push_str("\\u003e"),
            '&' => out.push_str("\\u0026"),
            '\u{2028}' => out.push_str("\\u2028"),
            '\u{2029}' => out.push_str("\\u2029"),
            c => out.push(c),
        }
    }
    out
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
    fn reads_secret_objects() {
        let text = SPC.replace(
            "  parameters:\n",
            "  secretObjects:\n    - secretName: s\n      type: Opaque\n      data:\n        - objectName: MySecretPassword\n          key: Password\n  parameters:\n",
        );
        let spc = parse(&text).unwrap();
        assert_eq!(
            spc.secret_objects,
            [SecretObject {
                secret_name: "s".into(),
                secret_type: "Opaque".into(),
                data: vec![("Password".into(), "MySecretPassword".into())],
            }]
        );
        assert!(parse(SPC).unwrap().secret_objects.is_empty());
        let typeless = text.replace("      type: Opaque\n", "");
        assert_eq!(
            parse(&typeless),
            Err(SpcError::Missing("spec.secretObjects.type"))
        );
    }

    const POD: PodInfo<'static> = PodInfo {
        namespace: "ns",
        name: "p",
        uid: "u-1",
        service_account: "sa",
        volume: "v",
    };

    #[test]
    fn driver_request_overlays_the_volume_context_and_tokens() {
        let mut spc = parse(SPC).unwrap();
        spc.parameters
            .insert("csi.storage.k8s.io/pod.name".into(), "spoofed".into());
        let token = ServiceAccountToken {
            audience: "api://AzureADTokenExchange".into(),
            token: "t<1>&".into(),
            expiration: "2099-01-01T00:00:00Z".into(),
        };
        let request = driver_request(&spc, &POD, &[token], None);
        let attributes: BTreeMap<String, String> =
            serde_json::from_str(&request.attributes).unwrap();
        assert_eq!(attributes["csi.storage.k8s.io/pod.name"], "p");
        assert_eq!(attributes["csi.storage.k8s.io/pod.namespace"], "ns");
        assert_eq!(attributes["csi.storage.k8s.io/pod.uid"], "u-1");
        assert_eq!(attributes["csi.storage.k8s.io/serviceAccount.name"], "sa");
        assert_eq!(attributes["csi.storage.k8s.io/ephemeral"], "true");
        assert_eq!(attributes["secretProviderClass"], "azure-kvname");
        assert_eq!(attributes["keyvaultName"], "kv-blogpost-jx01");
        assert_eq!(
            attributes[SERVICE_ACCOUNT_TOKENS],
            r#"{"api://AzureADTokenExchange":{"token":"t\u003c1\u003e\u0026","expirationTimestamp":"2099-01-01T00:00:00Z"}}"#
        );
        assert!(
            request.attributes.contains(r"t\\u003c1\\u003e\\u0026"),
            "Go's escaping, twice nested: {}",
            request.attributes
        );
        assert_eq!(request.secrets, "null");
        assert_eq!(
            request.target_path,
            "/var/lib/kubelet/pods/u-1/volumes/kubernetes.io~csi/v/mount"
        );
        assert_eq!(request.permission, "420");
        assert!(!format!("{request:?}").contains("t<1>"));
    }

    #[test]
    fn driver_request_without_tokens_has_no_tokens_key_and_sends_secrets() {
        let spc = parse(SPC).unwrap();
        let secrets = BTreeMap::from([("clientid".to_owned(), "a&b".to_owned())]);
        let request = driver_request(&spc, &POD, &[], Some(&secrets));
        assert!(!request.attributes.contains(SERVICE_ACCOUNT_TOKENS));
        assert_eq!(request.secrets, r#"{"clientid":"a\u0026b"}"#);
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
