//! Where the provider listens: parsing `--endpoint` (`unix://<path>` as the
//! driver expects, or `tcp://host:port` for debugging) and binding the unix
//! socket safely — a stale socket from a previous run is removed, anything
//! else at the path is left alone, and the socket is owner-only (0600) from
//! the moment it appears at its final path.
//!
//! Serving gRPC on the bound listener is `app`'s job.

use std::fs;
use std::io;
use std::os::unix::fs::{FileTypeExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};

use thiserror::Error;

/// A listen address from `--endpoint`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Endpoint {
    Unix(PathBuf),
    Tcp(String),
}

/// Why the endpoint is unusable.
#[derive(Debug, Error)]
pub enum SocketError {
    #[error("invalid endpoint {0:?}: use unix:///path/to/azure.sock or tcp://host:port")]
    Invalid(String),
    #[error(
        "socket directory {dir} does not exist; create it or mount the providers directory there"
    )]
    NoDirectory { dir: String },
    #[error("{path} exists and is not a socket; refusing to remove it")]
    NotASocket { path: String },
    #[error("cannot remove the stale socket {path}: {source}")]
    RemoveStale {
        path: String,
        #[source]
        source: io::Error,
    },
    #[error("cannot listen on {path}: {source}")]
    Bind {
        path: String,
        #[source]
        source: io::Error,
    },
}

// === impl Endpoint ===

impl Endpoint {
    /// Parses `unix://...` or `tcp://...`; the scheme is case-insensitive.
    pub fn parse(raw: &str) -> Result<Self, SocketError> {
        let invalid = || SocketError::Invalid(raw.to_owned());
        let (scheme, rest) = raw.split_once("://").ok_or_else(invalid)?;
        match scheme.to_ascii_lowercase().as_str() {
            "unix" if !rest.is_empty() => Ok(Self::Unix(PathBuf::from(rest))),
            "tcp" if !rest.is_empty() => Ok(Self::Tcp(rest.to_owned())),
            _ => Err(invalid()),
        }
    }
}

impl std::fmt::Display for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Unix(path) => write!(f, "unix://{}", path.display()),
            Self::Tcp(addr) => write!(f, "tcp://{addr}"),
        }
    }
}

/// Binds an owner-only unix socket at `path`.
///
/// The socket is bound under a temporary name in the same directory,
/// restricted to 0600, then renamed into place, so no other user can ever
/// connect to it during start-up. Must be called inside a tokio runtime.
pub fn bind_unix(path: &Path) -> Result<tokio::net::UnixListener, SocketError> {
    let display = path.display().to_string();
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    if !dir.is_dir() {
        return Err(SocketError::NoDirectory {
            dir: dir.display().to_string(),
        });
    }
    remove_stale(path)?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let staging = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    let bind_error = |source| SocketError::Bind {
        path: display.clone(),
        source,
    };
    remove_stale(&staging)?;
    let listener = tokio::net::UnixListener::bind(&staging).map_err(bind_error)?;
    let placed = fs::set_permissions(&staging, fs::Permissions::from_mode(0o600))
        .and_then(|()| fs::rename(&staging, path));
    if let Err(source) = placed {
        let _ = fs::remove_file(&staging);
        return Err(bind_error(source));
    }
    Ok(listener)
}

/// Removes a socket left by an earlier process; refuses other file types.
fn remove_stale(path: &Path) -> Result<(), SocketError> {
    match fs::symlink_metadata(path) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(source) => Err(SocketError::RemoveStale {
            path: path.display().to_string(),
            source,
        }),
        Ok(meta) if meta.file_type().is_socket() => {
            fs::remove_file(path).map_err(|source| SocketError::RemoveStale {
                path: path.display().to_string(),
                source,
            })
        }
        Ok(_) => Err(SocketError::NotASocket {
            path: path.display().to_string(),
        }),
    }
}

/// Removes the socket at shutdown; a missing file is fine.
pub fn cleanup(path: &Path) {
    if let Err(e) = fs::remove_file(path)
        && e.kind() != io::ErrorKind::NotFound
    {
        tracing::warn!(path = %path.display(), error = %e, "cannot remove the socket");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_endpoints() {
        assert_eq!(
            Endpoint::parse("unix:///tmp/azure.sock").unwrap(),
            Endpoint::Unix("/tmp/azure.sock".into())
        );
        assert_eq!(
            Endpoint::parse("UNIX:///provider/azure.sock").unwrap(),
            Endpoint::Unix("/provider/azure.sock".into())
        );
        assert_eq!(
            Endpoint::parse("tcp://127.0.0.1:9000").unwrap(),
            Endpoint::Tcp("127.0.0.1:9000".into())
        );
        for bad in ["/tmp/azure.sock", "http://x", "unix://", "tcp://"] {
            let err = Endpoint::parse(bad).unwrap_err().to_string();
            assert!(err.starts_with("invalid endpoint"), "{bad}: {err}");
        }
    }

    #[tokio::test]
    async fn binds_owner_only_and_replaces_stale_socket() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("azure.sock");
        let first = bind_unix(&path).unwrap();
        drop(first); // leaves a stale socket file behind
        assert!(path.exists());
        let _second = bind_unix(&path).unwrap();
        let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let leftovers: Vec<_> = fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(leftovers.len(), 1, "no staging file may remain");
    }

    #[tokio::test]
    async fn refuses_regular_file_and_missing_directory() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("azure.sock");
        fs::write(&path, b"data").unwrap();
        assert!(matches!(
            bind_unix(&path),
            Err(SocketError::NotASocket { .. })
        ));
        let missing = dir.path().join("nope/azure.sock");
        assert!(matches!(
            bind_unix(&missing),
            Err(SocketError::NoDirectory { .. })
        ));
    }
}
