//! Binding the unix socket and removing it: the directory checks, the
//! private staging directory the socket is bound in and renamed from, the
//! refusal of a live socket, and at shutdown the removal of the path only
//! while it still names the socket this process bound.
//!
//! Parsing `--endpoint` and the errors are `socket.rs`'s.

use std::fs;
use std::hash::{BuildHasher as _, Hasher as _};
use std::io;
use std::os::unix::fs::MetadataExt as _;
use std::os::unix::fs::{DirBuilderExt as _, FileTypeExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::{MAX_SOCKET_PATH, SocketError};

/// How long start-up waits for a connection to an existing socket; one
/// that does not refuse at once is taken as live (its backlog is full).
const LIVE_CHECK: Duration = Duration::from_secs(1);

/// The socket file we bound (device, inode and change time: an inode
/// number is reused once its file is deleted, so a successor's socket can
/// have ours): shutdown removes the path only while it still names this
/// file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SocketId {
    dev: u64,
    ino: u64,
    ctime: (i64, i64),
}

// === impl SocketId ===

impl SocketId {
    fn of(meta: &fs::Metadata) -> Self {
        Self {
            dev: meta.dev(),
            ino: meta.ino(),
            ctime: (meta.ctime(), meta.ctime_nsec()),
        }
    }
}

/// Binds an owner-only unix socket at `path`.
///
/// The socket is bound inside a new private directory (0700) next to
/// `path`, restricted to 0600, then renamed into place, so no other user can
/// ever connect to it, whatever the umask. Must be called inside a tokio
/// runtime.
pub fn bind_unix(path: &Path) -> Result<(tokio::net::UnixListener, SocketId), SocketError> {
    let display = path.display().to_string();
    let len = path.as_os_str().len();
    if len > MAX_SOCKET_PATH {
        return Err(SocketError::PathTooLong { path: display, len });
    }
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    check_directory(dir)?;
    remove_stale(path)?;
    let staging = Staging::create(dir)?;
    let temporary = staging.dir.join("s");
    let bind_error = |source: io::Error| match writability(dir, source) {
        Ok(source) => SocketError::Bind {
            path: display.clone(),
            source,
        },
        Err(not_writable) => not_writable,
    };
    let listener = tokio::net::UnixListener::bind(&temporary).map_err(bind_error)?;
    fs::set_permissions(&temporary, fs::Permissions::from_mode(0o600))
        .and_then(|()| fs::rename(&temporary, path))
        .and_then(|()| fs::symlink_metadata(path))
        .map(|meta| (listener, SocketId::of(&meta)))
        .map_err(bind_error)
}

/// The socket's directory exists, is a directory, and not everyone may
/// replace entries in it.
fn check_directory(dir: &Path) -> Result<(), SocketError> {
    let shown = || dir.display().to_string();
    let meta = match fs::metadata(dir) {
        Ok(meta) => meta,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return Err(SocketError::NoDirectory { dir: shown() });
        }
        Err(source) => {
            return Err(SocketError::Directory {
                dir: shown(),
                source,
            });
        }
    };
    if !meta.is_dir() {
        return Err(SocketError::NotADirectory { dir: shown() });
    }
    let mode = meta.permissions().mode() & 0o7777;
    let world_writable = mode & 0o002 != 0;
    let sticky = mode & 0o1000 != 0;
    if world_writable && !sticky {
        return Err(SocketError::WorldWritable { dir: shown(), mode });
    }
    Ok(())
}

/// `NotWritable` for the errors that mean the directory refuses new
/// entries; the error back otherwise.
fn writability(dir: &Path, source: io::Error) -> Result<io::Error, SocketError> {
    match source.kind() {
        io::ErrorKind::PermissionDenied | io::ErrorKind::ReadOnlyFilesystem => {
            Err(SocketError::NotWritable {
                dir: dir.display().to_string(),
                source,
            })
        }
        _ => Ok(source),
    }
}

/// A private directory (0700, a fresh random name) to bind in; removed on
/// drop with whatever is still inside (only the socket, if the rename
/// failed).
struct Staging {
    dir: PathBuf,
}

impl Staging {
    fn create(parent: &Path) -> Result<Self, SocketError> {
        let random = std::collections::hash_map::RandomState::new();
        let mut last = None;
        for attempt in 0u32..16 {
            let mut hasher = random.build_hasher();
            hasher.write_u32(std::process::id());
            hasher.write_u32(attempt);
            let dir = parent.join(format!(".s{:08x}", hasher.finish() as u32));
            match fs::DirBuilder::new().mode(0o700).create(&dir) {
                Ok(()) => return Ok(Self { dir }),
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => last = Some(e),
                Err(source) => {
                    return Err(writability(parent, source).map_or_else(
                        |not_writable| not_writable,
                        |source| SocketError::Directory {
                            dir: parent.display().to_string(),
                            source,
                        },
                    ));
                }
            }
        }
        Err(SocketError::Directory {
            dir: parent.display().to_string(),
            source: last.unwrap_or_else(|| io::Error::other("no free staging name")),
        })
    }
}

impl Drop for Staging {
    fn drop(&mut self) {
        let _ = fs::remove_file(self.dir.join("s"));
        let _ = fs::remove_dir(&self.dir);
    }
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
            if is_live(path) {
                return Err(SocketError::InUse {
                    path: path.display().to_string(),
                });
            }
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

/// Whether a server answers on the socket at `path`. A connect that
/// neither succeeds nor fails within [`LIVE_CHECK`] waits on a full
/// backlog: live too.
fn is_live(path: &Path) -> bool {
    let (sender, receiver) = std::sync::mpsc::channel();
    let path = path.to_owned();
    std::thread::spawn(move || {
        let _ = sender.send(std::os::unix::net::UnixStream::connect(path).is_ok());
    });
    receiver.recv_timeout(LIVE_CHECK).unwrap_or(true)
}

/// Removes the socket at shutdown if `path` still names the socket we
/// bound; a missing file, or another one, is left alone.
pub fn cleanup(path: &Path, id: SocketId) {
    let ours = fs::symlink_metadata(path)
        .is_ok_and(|meta| meta.file_type().is_socket() && SocketId::of(&meta) == id);
    if !ours {
        tracing::warn!(
            path = %path.display(),
            "the socket path no longer names the socket this process bound; leaving it"
        );
        return;
    }
    if let Err(e) = fs::remove_file(path)
        && e.kind() != io::ErrorKind::NotFound
    {
        tracing::warn!(path = %path.display(), error = %e, "cannot remove the socket");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn binds_owner_only_and_replaces_stale_socket() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("azure.sock");
        let first = bind_unix(&path).unwrap();
        drop(first); // leaves a stale socket file behind (nobody listens)
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
        let err = bind_unix(&missing).unwrap_err();
        assert!(matches!(err, SocketError::NoDirectory { .. }), "{err}");
        assert!(
            err.to_string().ends_with(
                "/nope does not exist; create it or mount the providers directory there"
            ),
            "{err}"
        );
        let under_file = path.join("azure.sock");
        let err = bind_unix(&under_file).unwrap_err();
        assert!(matches!(err, SocketError::NotADirectory { .. }), "{err}");
    }

    /// Anyone could delete or replace the socket in a world-writable
    /// directory without the sticky bit; with it (like /tmp) only the owner
    /// can.
    #[tokio::test]
    async fn refuses_a_world_writable_directory_without_the_sticky_bit() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("azure.sock");
        fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o777)).unwrap();
        let err = bind_unix(&path).unwrap_err();
        assert!(
            matches!(err, SocketError::WorldWritable { mode: 0o777, .. }),
            "{err}"
        );
        assert!(
            err.to_string()
                .contains("is writable by every user (mode 0777) and has no sticky bit"),
            "{err}"
        );
        assert!(!path.exists());
        fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o1777)).unwrap();
        let _bound = bind_unix(&path).expect("sticky world-writable directory is fine");
        let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }

    /// A directory that refuses new entries (sysfs refuses them even to
    /// root) gets an error that says so and what to do.
    #[tokio::test]
    async fn a_directory_that_is_not_writable_is_a_clear_error() {
        let err = bind_unix(Path::new("/sys/azure.sock")).unwrap_err();
        assert!(matches!(err, SocketError::NotWritable { .. }), "{err:?}");
        let text = err.to_string();
        assert!(
            text.starts_with("socket directory /sys is not writable by this process (")
                && text.ends_with("run the provider as root (the DaemonSet sets runAsUser: 0) or give it a writable directory"),
            "{text}"
        );
        let denied = io::Error::from(io::ErrorKind::PermissionDenied);
        assert!(matches!(
            writability(Path::new("/d"), denied),
            Err(SocketError::NotWritable { .. })
        ));
        let other = io::Error::from(io::ErrorKind::InvalidInput);
        assert!(writability(Path::new("/d"), other).is_ok());
    }

    /// The socket is bound in a private directory: nobody else can reach
    /// it before it is 0600; the directory goes away afterwards.
    #[test]
    fn the_staging_directory_is_private_and_removed() {
        let dir = tempfile::tempdir().unwrap();
        let staging = Staging::create(dir.path()).unwrap();
        let mode = fs::metadata(&staging.dir).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o700);
        assert!(staging.dir.starts_with(dir.path()));
        let other = Staging::create(dir.path()).unwrap();
        assert_ne!(other.dir, staging.dir);
        fs::write(staging.dir.join("s"), b"").unwrap();
        drop((staging, other));
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 0);
    }

    /// A second provider on the same path must not take a live socket
    /// over: the first would keep serving nobody while its /readyz says ok.
    #[tokio::test]
    async fn refuses_a_socket_a_live_server_answers_on() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("azure.sock");
        let (_live, id) = bind_unix(&path).unwrap();
        let err = bind_unix(&path).unwrap_err();
        assert!(matches!(err, SocketError::InUse { .. }), "{err}");
        assert_eq!(
            err.to_string(),
            format!(
                "another process serves {} (a connection to it succeeded); stop it or choose another --endpoint",
                path.display()
            )
        );
        let still = fs::symlink_metadata(&path).unwrap();
        assert_eq!(
            (still.dev(), still.ino()),
            (id.dev, id.ino),
            "left in place"
        );
    }

    /// Shutdown removes the path only while it names the socket we bound.
    #[tokio::test]
    async fn cleanup_removes_only_the_socket_it_bound() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("azure.sock");
        let (first, id) = bind_unix(&path).unwrap();
        drop(first);
        // A link keeps our inode allocated, so the successor's differs.
        fs::hard_link(&path, dir.path().join("ours")).unwrap();
        // A successor replaced the stale socket: ours is gone.
        let (_second, second_id) = bind_unix(&path).unwrap();
        assert_ne!(id, second_id);
        cleanup(&path, id);
        assert!(path.exists(), "the successor's socket stays");
        // A file or symlink put at the path meanwhile stays too.
        fs::remove_file(&path).unwrap();
        fs::write(&path, b"not ours").unwrap();
        cleanup(&path, second_id);
        assert_eq!(fs::read(&path).unwrap(), b"not ours");
        fs::remove_file(&path).unwrap();
        std::os::unix::fs::symlink("/etc/hostname", &path).unwrap();
        cleanup(&path, second_id);
        assert!(fs::symlink_metadata(&path).is_ok());
        fs::remove_file(&path).unwrap();
        fs::remove_file(dir.path().join("ours")).unwrap();
        let (_third, third_id) = bind_unix(&path).unwrap();
        cleanup(&path, third_id);
        assert!(!path.exists(), "our own socket is removed");
    }

    /// A path longer than sun_path fails start-up, naming the limit (the
    /// socket used to be bound under a short staging name, renamed, and
    /// then unreachable).
    #[tokio::test]
    async fn a_path_longer_than_sun_path_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let base = dir.path().display().to_string().len() + 1;
        let path = dir.path().join("s".repeat(MAX_SOCKET_PATH + 1 - base));
        let err = bind_unix(&path).unwrap_err();
        assert!(
            matches!(err, SocketError::PathTooLong { len: 108, .. }),
            "{err}"
        );
        assert!(err.to_string().ends_with("bytes long, but a unix socket path may have at most 107 (sun_path); use a shorter --endpoint"));
        assert!(!path.exists());
    }
}
