//! The client side of the control sockets (`s3rolefs status`): finds the sockets this user
//! may read, in directories that belong to the user whose mounts they hold, asks them all at
//! once with a short timeout, and removes this user's own sockets whose process is gone.

use std::io;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::io::AsyncReadExt;
use tokio::net::UnixStream;

use super::{dir_for, euid, own_dir, MountStatus, ROOT_DIR};

/// Connect and read, per socket: a mount that cannot answer in this time is reported as
/// not answering rather than holding `status` up.
const QUERY_TIMEOUT: Duration = Duration::from_secs(1);
/// The most a client reads of one answer (a document lists open uploads; far below this).
const MAX_DOCUMENT: u64 = 16 * 1024 * 1024;

/// The answer of one control socket.
#[derive(Debug)]
pub struct Queried {
    pub socket: PathBuf,
    pub outcome: Result<MountStatus, QueryError>,
}

/// Why a control socket gave no status.
#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    /// Nobody listens: the mount's process is gone. `removed`: the file was ours, and is
    /// deleted now.
    #[error("stale: its process is gone{}", if *removed { " (socket removed)" } else { "" })]
    Stale { removed: bool },
    #[error("no answer: only root and the user who mounted it may read a mount's status")]
    Refused,
    #[error("no answer within {} s", QUERY_TIMEOUT.as_secs())]
    Timeout,
    #[error("{0}")]
    Io(String),
    #[error("not a status document: {0}")]
    Invalid(String),
}

/// Asks every control socket this user may read (see `readable_dirs`), all at once, each
/// for at most a second. Sockets whose process is gone are removed when they are ours.
pub fn query_all() -> Vec<Queried> {
    let mut sockets: Vec<PathBuf> = readable_dirs()
        .iter()
        .flat_map(|dir| sockets_in(dir))
        .collect();
    sockets.sort();
    sockets.dedup();
    query_sockets(sockets)
}

/// Asks each of `sockets`.
pub fn query_sockets(sockets: Vec<PathBuf>) -> Vec<Queried> {
    if sockets.is_empty() {
        return Vec::new();
    }
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            return sockets
                .into_iter()
                .map(|socket| Queried {
                    socket,
                    outcome: Err(QueryError::Io(format!("cannot start a runtime: {e}"))),
                })
                .collect()
        }
    };
    runtime.block_on(futures_util::future::join_all(sockets.into_iter().map(
        |socket| async move {
            let outcome = query(&socket).await;
            Queried { socket, outcome }
        },
    )))
}

/// Asks one control socket for its mount's status.
pub async fn query(socket: &Path) -> Result<MountStatus, QueryError> {
    let exchange = async {
        let mut stream = match UnixStream::connect(socket).await {
            Ok(stream) => stream,
            Err(e) if is_stale(&e) => {
                return Err(QueryError::Stale {
                    removed: remove_if_ours(socket),
                })
            }
            Err(e) => return Err(QueryError::Io(e.to_string())),
        };
        let mut document = Vec::new();
        (&mut stream)
            .take(MAX_DOCUMENT)
            .read_to_end(&mut document)
            .await
            .map_err(|e| QueryError::Io(e.to_string()))?;
        Ok(document)
    };
    let document = tokio::time::timeout(QUERY_TIMEOUT, exchange)
        .await
        .map_err(|_| QueryError::Timeout)??;
    if document.is_empty() {
        return Err(QueryError::Refused);
    }
    serde_json::from_slice(&document).map_err(|e| QueryError::Invalid(e.to_string()))
}

/// A connect error that means nobody will ever answer there: the file is a socket no
/// process listens on any more, or the file is gone.
fn is_stale(error: &io::Error) -> bool {
    matches!(
        error.raw_os_error(),
        Some(libc::ECONNREFUSED) | Some(libc::ENOENT)
    )
}

/// Removes the socket file at `path` when this user owns it; true if it did.
fn remove_if_ours(path: &Path) -> bool {
    let ours = std::fs::symlink_metadata(path)
        .is_ok_and(|m| m.file_type().is_socket() && m.uid() == euid());
    ours && std::fs::remove_file(path).is_ok()
}

/// The directories whose sockets this user may read, each checked to belong to the user
/// whose mounts it holds (and to be writable by nobody else), so no other user can plant a
/// socket that answers for a mount. Root: [`ROOT_DIR`], every `/run/user/<uid>/s3rolefs`
/// and `/tmp/s3rolefs-<uid>`. Others: their own, wherever `XDG_RUNTIME_DIR` said it is.
fn readable_dirs() -> Vec<PathBuf> {
    let uid = euid();
    let mut candidates: Vec<(PathBuf, u32)> = Vec::new();
    if uid == 0 {
        candidates.push((PathBuf::from(ROOT_DIR), 0));
        for entry in std::fs::read_dir("/run/user")
            .into_iter()
            .flatten()
            .flatten()
        {
            if let Some(owner) = entry.file_name().to_str().and_then(|n| n.parse().ok()) {
                candidates.push((entry.path().join("s3rolefs"), owner));
            }
        }
        for entry in std::fs::read_dir("/tmp").into_iter().flatten().flatten() {
            let name = entry.file_name();
            let owner = name
                .to_str()
                .and_then(|n| n.strip_prefix("s3rolefs-"))
                .and_then(|n| n.parse().ok());
            if let Some(owner) = owner {
                candidates.push((entry.path(), owner));
            }
        }
    } else {
        candidates.push((own_dir(), uid));
        candidates.push((PathBuf::from(format!("/run/user/{uid}/s3rolefs")), uid));
        candidates.push((dir_for(uid, None), uid));
    }
    let mut dirs: Vec<PathBuf> = candidates
        .into_iter()
        .filter(|(dir, owner)| is_trusted_dir(dir, *owner))
        .map(|(dir, _)| dir)
        .collect();
    dirs.sort();
    dirs.dedup();
    dirs
}

/// `dir` is a real directory (not a symlink) of `owner`, writable by nobody else.
fn is_trusted_dir(dir: &Path, owner: u32) -> bool {
    std::fs::symlink_metadata(dir)
        .is_ok_and(|m| m.is_dir() && m.uid() == owner && m.mode() & 0o022 == 0)
}

/// The sockets named `*.sock` in `dir`, in name order.
fn sockets_in(dir: &Path) -> Vec<PathBuf> {
    let mut sockets: Vec<PathBuf> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.file_type().is_ok_and(|t| t.is_socket()))
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "sock"))
        .collect();
    sockets.sort();
    sockets
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A socket nobody listens on is stale, and removed because it is ours.
    #[test]
    fn stale_socket_is_detected_and_removed() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("4242.sock");
        drop(std::os::unix::net::UnixListener::bind(&path).unwrap());
        assert!(path.exists(), "the file outlives its listener");
        let answers = query_sockets(vec![path.clone()]);
        assert!(
            matches!(answers[0].outcome, Err(QueryError::Stale { removed: true })),
            "{:?}",
            answers[0].outcome
        );
        assert!(!path.exists());
    }

    /// Only `*.sock` sockets are asked; other files in the directory are left alone.
    #[test]
    fn only_sockets_named_sock_are_asked() {
        let tmp = tempfile::tempdir().unwrap();
        let _a = std::os::unix::net::UnixListener::bind(tmp.path().join("1.sock")).unwrap();
        let _b = std::os::unix::net::UnixListener::bind(tmp.path().join("other")).unwrap();
        std::fs::write(tmp.path().join("2.sock"), b"not a socket").unwrap();
        assert_eq!(sockets_in(tmp.path()), vec![tmp.path().join("1.sock")]);
    }

    /// A connection closed without a word (not permitted) reads as refused.
    #[test]
    fn silence_reads_as_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("1.sock");
        let listener = std::os::unix::net::UnixListener::bind(&path).unwrap();
        let server = std::thread::spawn(move || drop(listener.accept()));
        let answers = query_sockets(vec![path]);
        server.join().unwrap();
        assert!(
            matches!(answers[0].outcome, Err(QueryError::Refused)),
            "{:?}",
            answers[0].outcome
        );
    }
}
