//! `akv-csi-provider mount`: a dry run of a SecretProviderClass from a
//! laptop or CI. It builds the `MountRequest` the driver would send for a
//! pod (with `spc::driver_request`, as the tests' driver imitation does:
//! SPC parameters, pod information, the service-account token or the
//! nodePublishSecretRef secret) and passes it to the same `Provider::mount`
//! the socket serves, in-process: same parsing, identity, Key Vault reads,
//! rendering and error texts. The result is a table (path, mode, size,
//! object id, version — never contents) or the files written to `--out`.
//!
//! Reading the inputs and writing the files is here; everything between is
//! the provider's own code.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use thiserror::Error;
use tonic::Request;
use zeroize::Zeroize as _;

use crate::app;
use crate::cli::DryRunArgs;
use crate::config::Config;
use crate::metrics::Metrics;
use crate::proto::csi_driver_provider_server::CsiDriverProvider;
use crate::proto::{MountRequest, MountResponse};
use crate::spc::{self, PodInfo, SecretProviderClass, ServiceAccountToken, SpcError};

/// Why the dry run failed.
#[derive(Debug, Error)]
pub enum DryRunError {
    #[error("--spc {path}: {reason}")]
    SpcFile { path: String, reason: String },
    #[error("--spc {path}: {source}")]
    Spc {
        path: String,
        #[source]
        source: SpcError,
    },
    #[error("{flag} {path}: {reason}")]
    Input {
        flag: &'static str,
        path: String,
        reason: String,
    },
    #[error(
        "the SecretProviderClass is in namespace {spc}, the pod in {pod}: the driver only reads a class from the pod's namespace"
    )]
    NamespaceMismatch { spc: String, pod: String },
    #[error("--namespace is required: the SecretProviderClass names no namespace")]
    NoNamespace,
    #[error(transparent)]
    Build(#[from] app::AppError),
    /// What the pod's events would show.
    #[error("{0}")]
    Mount(String),
    #[error("--out {path}: {reason}")]
    Write { path: String, reason: String },
}

impl DryRunError {
    /// Bad input (exit 64), as opposed to a failed mount or write (exit 1).
    pub fn is_usage(&self) -> bool {
        !matches!(self, Self::Mount(_) | Self::Write { .. })
    }
}

/// Runs the dry run and prints the outcome to stdout.
pub async fn run(config: &Config, args: &DryRunArgs) -> Result<(), DryRunError> {
    let spc = read_spc(&args.spc)?;
    let namespace = namespace(&spc, args.namespace.as_deref())?;
    let request = request(&spc, &namespace, args)?;
    let provider = app::provider(config, &Metrics::default())?;
    let mut response = CsiDriverProvider::mount(&provider, Request::new(request))
        .await
        .map_err(|status| DryRunError::Mount(status.message().to_owned()))?
        .into_inner();
    let written = args.out.as_ref().map(|dir| write_files(dir, &response));
    let table = table(&response);
    for file in &mut response.files {
        file.contents.zeroize();
    }
    if let Some(Err(e)) = written {
        return Err(e);
    }
    let mut stdout = std::io::stdout().lock();
    let _ = stdout.write_all(table.as_bytes());
    if let Some(dir) = &args.out {
        let _ = writeln!(
            stdout,
            "wrote {} file(s) to {}",
            response.files.len(),
            dir.display()
        );
    }
    Ok(())
}

fn read_spc(path: &Path) -> Result<SecretProviderClass, DryRunError> {
    let text = std::fs::read_to_string(path).map_err(|e| DryRunError::SpcFile {
        path: path.display().to_string(),
        reason: e.to_string(),
    })?;
    spc::parse(&text).map_err(|source| DryRunError::Spc {
        path: path.display().to_string(),
        source,
    })
}

fn namespace(spc: &SecretProviderClass, given: Option<&str>) -> Result<String, DryRunError> {
    match (spc.namespace.as_deref(), given) {
        (Some(spc), Some(pod)) if spc != pod => Err(DryRunError::NamespaceMismatch {
            spc: spc.to_owned(),
            pod: pod.to_owned(),
        }),
        (_, Some(pod)) => Ok(pod.to_owned()),
        (Some(spc), None) => Ok(spc.to_owned()),
        (None, None) => Err(DryRunError::NoNamespace),
    }
}

/// The pod volume's name in the dry run's target path.
const VOLUME: &str = "dry-run";

/// The `MountRequest` the driver would send (`spc::driver_request`, the
/// builder the tests' driver imitation uses too): SPC parameters overlaid
/// with the volume context (pod information, `ephemeral`, class name,
/// tokens), and the nodePublishSecretRef secret when given.
fn request(
    spc: &SecretProviderClass,
    namespace: &str,
    args: &DryRunArgs,
) -> Result<MountRequest, DryRunError> {
    let mut spc = spc.clone();
    if args.use_vm_managed_identity {
        spc.parameters
            .insert("useVMManagedIdentity".into(), "true".into());
    }
    let pod = PodInfo {
        namespace,
        name: &args.pod,
        uid: &args.pod_uid,
        service_account: &args.service_account,
        volume: VOLUME,
    };
    let mut tokens = Vec::new();
    if let Some(path) = &args.token_file {
        let mut token = read_secret("--token-file", path)?;
        tokens.push(ServiceAccountToken {
            audience: args.token_audience.clone(),
            token: token.trim().to_owned(),
            expiration: String::new(),
        });
        token.zeroize();
    }
    let mut secrets = match (&args.client_id, &args.client_secret_file) {
        (Some(id), Some(path)) => {
            let mut secret = read_secret("--client-secret-file", path)?;
            let map = BTreeMap::from([
                ("clientid".to_owned(), id.clone()),
                (
                    "clientsecret".to_owned(),
                    secret.trim_end_matches(['\r', '\n']).to_owned(),
                ),
            ]);
            secret.zeroize();
            Some(map)
        }
        _ => None,
    };
    let parts = spc::driver_request(&spc, &pod, &tokens, secrets.as_ref());
    for token in &mut tokens {
        token.token.zeroize();
    }
    for value in secrets.iter_mut().flat_map(|map| map.values_mut()) {
        value.zeroize();
    }
    Ok(MountRequest {
        attributes: parts.attributes,
        secrets: parts.secrets,
        target_path: parts.target_path,
        permission: parts.permission,
        current_object_version: Vec::new(),
    })
}

fn read_secret(flag: &'static str, path: &Path) -> Result<String, DryRunError> {
    std::fs::read_to_string(path).map_err(|e| DryRunError::Input {
        flag,
        path: path.display().to_string(),
        reason: e.to_string(),
    })
}

/// One row per file: path, mode, size, object id, version; then a row per
/// object version without a file (an `optional` object that does not
/// exist; the provider lists those last).
fn table(response: &MountResponse) -> String {
    let mut rows = vec![[
        "PATH".to_owned(),
        "MODE".to_owned(),
        "SIZE".to_owned(),
        "OBJECT ID".to_owned(),
        "VERSION".to_owned(),
    ]];
    for (i, file) in response.files.iter().enumerate() {
        let version = response.object_version.get(i);
        rows.push([
            file.path.clone(),
            format!("{:04o}", file.mode),
            file.contents.len().to_string(),
            version.map_or("-".to_owned(), |v| v.id.clone()),
            version.map_or("-".to_owned(), |v| v.version.clone()),
        ]);
    }
    for version in response.object_version.iter().skip(response.files.len()) {
        rows.push([
            "-".to_owned(),
            "-".to_owned(),
            "-".to_owned(),
            version.id.clone(),
            version.version.clone(),
        ]);
    }
    let mut widths = [0usize; 5];
    for row in &rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    for row in &rows {
        let cells: Vec<String> = row
            .iter()
            .zip(widths)
            .map(|(cell, width)| format!("{cell:<width$}"))
            .collect();
        out.push_str(cells.join("  ").trim_end());
        out.push('\n');
    }
    out
}

/// Writes the files as the driver would: relative paths only, parents
/// created, modes applied.
fn write_files(dir: &Path, response: &MountResponse) -> Result<(), DryRunError> {
    use std::os::unix::fs::PermissionsExt as _;
    let fail = |path: &Path, reason: String| DryRunError::Write {
        path: path.display().to_string(),
        reason,
    };
    for file in &response.files {
        let relative = PathBuf::from(&file.path);
        let safe = !file.path.is_empty()
            && relative.is_relative()
            && relative
                .components()
                .all(|c| matches!(c, std::path::Component::Normal(_)));
        if !safe {
            return Err(fail(
                dir,
                format!("unsafe path {:?} in the response", file.path),
            ));
        }
        let path = dir.join(&relative);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(|e| fail(parent, e.to_string()))?;
        }
        std::fs::write(&path, &file.contents).map_err(|e| fail(&path, e.to_string()))?;
        let mode = std::fs::Permissions::from_mode(file.mode as u32 & 0o777);
        std::fs::set_permissions(&path, mode).map_err(|e| fail(&path, e.to_string()))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::{File, ObjectVersion};

    #[test]
    fn table_shows_metadata_not_contents() {
        let response = MountResponse {
            files: vec![File {
                path: "db/password".into(),
                mode: 0o640,
                contents: b"hunter2".to_vec(),
            }],
            object_version: vec![ObjectVersion {
                id: "secret/db-password".into(),
                version: "0123abcd".into(),
            }],
            error: None,
        };
        let table = table(&response);
        assert_eq!(
            table,
            "PATH         MODE  SIZE  OBJECT ID           VERSION\n\
             db/password  0640  7     secret/db-password  0123abcd\n"
        );
        assert!(!table.contains("hunter2"));
    }

    #[test]
    fn table_lists_missing_optional_objects_last() {
        let response = MountResponse {
            files: vec![File {
                path: "a".into(),
                mode: 0o644,
                contents: b"x".to_vec(),
            }],
            object_version: vec![
                ObjectVersion {
                    id: "secret/a".into(),
                    version: "v1".into(),
                },
                ObjectVersion {
                    id: "secret/later".into(),
                    version: "not-found".into(),
                },
            ],
            error: None,
        };
        assert_eq!(
            table(&response),
            "PATH  MODE  SIZE  OBJECT ID     VERSION\n\
             a     0644  1     secret/a      v1\n\
             -     -     -     secret/later  not-found\n"
        );
    }

    #[test]
    fn namespace_comes_from_the_flag_or_the_class() {
        let spc = SecretProviderClass {
            name: "c".into(),
            namespace: Some("a".into()),
            provider: "azure".into(),
            parameters: BTreeMap::new(),
            secret_objects: Vec::new(),
        };
        assert_eq!(namespace(&spc, None).unwrap(), "a");
        assert_eq!(namespace(&spc, Some("a")).unwrap(), "a");
        assert!(matches!(
            namespace(&spc, Some("b")),
            Err(DryRunError::NamespaceMismatch { .. })
        ));
        let bare = SecretProviderClass {
            namespace: None,
            ..spc
        };
        assert!(matches!(
            namespace(&bare, None),
            Err(DryRunError::NoNamespace)
        ));
        assert_eq!(namespace(&bare, Some("b")).unwrap(), "b");
    }
}
