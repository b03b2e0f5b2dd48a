//! Where the provider listens: parsing `--endpoint` (`unix://<path>` as the
//! driver expects, or `tcp://host:port` for debugging) and binding the unix
//! socket safely — the directory must exist, be writable and not be
//! writable by everyone without the sticky bit (another user could then
//! replace the socket); a stale socket from a previous run is removed, a
//! live one (a connection succeeds) is refused, anything else at the path
//! is left alone, the path must fit `sun_path`, and the socket is owner-only
//! (0600) from the moment anyone else could reach it: it is bound inside a
//! fresh private (0700) directory, restricted, then renamed into place.
//! At shutdown the path is removed only if it still names the socket we
//! bound (same device and inode): never a successor's socket or a file put
//! there meanwhile.
//!
//! Serving gRPC on the bound listener is `app`'s job.

use std::io;
use std::path::{Path, PathBuf};

use thiserror::Error;

mod accept;
mod bind;

pub use accept::{AcceptHealth, incoming};
pub use bind::{SocketId, bind_unix, cleanup};

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
    #[error("socket directory {dir} is not a directory")]
    NotADirectory { dir: String },
    #[error("cannot inspect the socket directory {dir}: {source}")]
    Directory {
        dir: String,
        #[source]
        source: io::Error,
    },
    #[error(
        "socket directory {dir} is writable by every user (mode {mode:04o}) and has no sticky \
         bit, so another user could replace the socket; use a directory only root can write \
         (the providers directory is 0755 root:root) or set the sticky bit"
    )]
    WorldWritable { dir: String, mode: u32 },
    #[error(
        "socket directory {dir} is not writable by this process ({source}); run the provider as \
         root (the DaemonSet sets runAsUser: 0) or give it a writable directory"
    )]
    NotWritable {
        dir: String,
        #[source]
        source: io::Error,
    },
    #[error(
        "{path} is {len} bytes long, but a unix socket path may have at most {MAX_SOCKET_PATH} \
         (sun_path); use a shorter --endpoint"
    )]
    PathTooLong { path: String, len: usize },
    #[error(
        "another process serves {path} (a connection to it succeeded); stop it or choose \
         another --endpoint"
    )]
    InUse { path: String },
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
    /// A unix path is rooted as upstream roots it (`"/" + rest`), so
    /// `unix://tmp/x.sock` is `/tmp/x.sock`, never relative to the working
    /// directory.
    pub fn parse(raw: &str) -> Result<Self, SocketError> {
        let invalid = || SocketError::Invalid(raw.to_owned());
        let (scheme, rest) = raw.split_once("://").ok_or_else(invalid)?;
        match scheme.to_ascii_lowercase().as_str() {
            "unix" if !rest.is_empty() => Ok(Self::Unix(Path::new("/").join(rest))),
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

/// Longest socket path: `sun_path` holds 108 bytes with the final NUL.
pub const MAX_SOCKET_PATH: usize = 107;

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
            Endpoint::parse("unix://tmp/x.sock").unwrap(),
            Endpoint::Unix("/tmp/x.sock".into()),
            "rooted as upstream roots it"
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
}
