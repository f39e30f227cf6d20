//! The per-mount control socket behind `s3rolefs status`: each mount answers every
//! connection with one JSON [`MountStatus`] document and a newline, then closes.
//!
//! Where: root's mounts in `/run/s3rolefs`, other users' in `$XDG_RUNTIME_DIR/s3rolefs`, else
//! `/tmp/s3rolefs-<uid>`; the socket is `<pid>.sock`. Who may read it, three times over: the
//! directory is the user's own and 0700 (an existing one is checked through a descriptor
//! opened with `O_NOFOLLOW`, so a symlink or someone else's directory planted at that name is
//! refused, never followed), the socket is 0600, and the peer's uid (`SO_PEERCRED`) must be
//! root's or the mount's owner's — anyone else gets the connection closed without a word.
//!
//! What it must never do: block the FUSE loop (it is a task on the mount's tokio runtime, and
//! the snapshot takes std mutexes only for a copy), fail a mount (a socket that cannot be
//! made is a warning), or carry a secret (the document has the masked key id only; the
//! types below have no field a secret could go in).
//!
//! - `server`: [`ControlSocket`], the socket a mount serves.
//! - `client`: [`query_all`], which asks every socket this user may read, 1 s each at most,
//!   and removes its own sockets whose process is gone.
//!
//! This file holds what both sides share: the document ([`MountStatus`]) and where the
//! sockets live.

mod client;
mod server;

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

pub use client::{query, query_all, query_sockets, Queried, QueryError};
pub use server::{ControlSocket, StatusSource};

use crate::credentials::refresher::StatusHandle;
use crate::credentials::{mask_key_id, CredentialsCell};
use crate::fs::status::FsStatus;
use crate::private_dir::{euid, PrivateDir, PrivateDirError};

/// Root's mounts keep their sockets here (`/run` is root's and a tmpfs: nothing outlives a
/// reboot).
pub const ROOT_DIR: &str = "/run/s3rolefs";

/// What `s3rolefs status` shows of one mount.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MountStatus {
    pub pid: u32,
    pub mountpoint: String,
    /// `bucket` or `bucket:prefix/`.
    pub source: String,
    /// The bucket's base URL and addressing style.
    pub endpoint: String,
    pub region: String,
    pub read_only: bool,
    /// When the mount started, in seconds since the Unix epoch.
    pub started: u64,
    /// `None` for `--no-sign-request`.
    pub credentials: Option<CredentialsStatus>,
    pub fs: FsStatus,
}

/// The credentials a mount signs with now. Never a secret: the key id is masked.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CredentialsStatus {
    /// The source that provided them (`environment`, `imds`, `profile dev (assume role)`…).
    pub source: String,
    /// `AKIA************MPLE`.
    pub masked_key: String,
    /// When they stop working (Unix seconds); `None` for long-term keys.
    pub expiry: Option<u64>,
    /// Whether the refresher renews them.
    pub refreshable: bool,
    /// When the next renewal is due (Unix seconds).
    pub next_refresh: Option<u64>,
    /// Renewals that succeeded since the mount started.
    pub refreshes: u64,
    /// Renewals that failed in a row, and the last one's message.
    pub failures: u32,
    pub last_error: Option<String>,
}

/// What a status document says of a mount that does not change while it runs.
#[derive(Clone, Debug)]
pub struct MountFacts {
    pub pid: u32,
    pub mountpoint: String,
    pub source: String,
    pub endpoint: String,
    pub region: String,
    pub read_only: bool,
    pub started: SystemTime,
}

impl MountFacts {
    /// The document: these facts, the credentials as they are now, and `fs`.
    pub fn status(&self, credentials: Option<&LiveCredentials>, fs: FsStatus) -> MountStatus {
        MountStatus {
            pid: self.pid,
            mountpoint: self.mountpoint.clone(),
            source: self.source.clone(),
            endpoint: self.endpoint.clone(),
            region: self.region.clone(),
            read_only: self.read_only,
            started: unix_seconds(self.started),
            credentials: credentials.map(LiveCredentials::status),
            fs,
        }
    }
}

/// The mount's credentials plane as `status` reads it: the current snapshot and the
/// refresher's progress, both read afresh at every query.
#[derive(Clone)]
pub struct LiveCredentials {
    cell: Arc<CredentialsCell>,
    refresher: StatusHandle,
}

impl LiveCredentials {
    pub fn new(cell: Arc<CredentialsCell>, refresher: StatusHandle) -> Self {
        LiveCredentials { cell, refresher }
    }

    /// What to show of the credentials now; the snapshot is dropped before returning.
    pub fn status(&self) -> CredentialsStatus {
        let current = self.cell.load();
        let refresh = self.refresher.get();
        CredentialsStatus {
            source: current.source.clone(),
            masked_key: mask_key_id(&current.access_key_id),
            expiry: current.expiry.map(unix_seconds),
            refreshable: self.cell.is_refreshable(),
            next_refresh: refresh.next_refresh.map(unix_seconds),
            refreshes: refresh.refreshes,
            failures: refresh.failures,
            last_error: refresh.last_error,
        }
    }
}

fn unix_seconds(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// Why a mount has no control socket (it mounts anyway). One line with the fix.
#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    #[error("cannot create the status directory {dir}: {reason}")]
    Directory { dir: PathBuf, reason: String },
    #[error("the status directory {dir} is a symbolic link, which is never followed; remove it (rm {dir})")]
    Symlink { dir: PathBuf },
    #[error("the status directory {dir} is not a directory; remove it (rm {dir})")]
    NotADirectory { dir: PathBuf },
    #[error("the status directory {dir} belongs to uid {owner}, not to this user (uid {uid}); remove it as root, or set XDG_RUNTIME_DIR to a directory of your own")]
    NotOwned { dir: PathBuf, owner: u32, uid: u32 },
    #[error("cannot create the status socket {path}: {reason}")]
    Socket { path: PathBuf, reason: String },
}

/// The directory this user's mounts put their sockets in.
pub fn own_dir() -> PathBuf {
    dir_for(euid(), std::env::var_os("XDG_RUNTIME_DIR"))
}

/// root → [`ROOT_DIR`]; others → `$XDG_RUNTIME_DIR/s3rolefs` (when set to an absolute
/// path), else `/tmp/s3rolefs-<uid>`.
fn dir_for(uid: u32, xdg_runtime_dir: Option<OsString>) -> PathBuf {
    if uid == 0 {
        return PathBuf::from(ROOT_DIR);
    }
    match xdg_runtime_dir.map(PathBuf::from) {
        Some(dir) if dir.is_absolute() => dir.join("s3rolefs"),
        _ => PathBuf::from(format!("/tmp/s3rolefs-{uid}")),
    }
}

/// Creates `dir` (mode 0700) or checks the existing one: a directory, not a symlink, owned
/// by this user; its mode is set to 0700. All checks go through one descriptor opened with
/// `O_NOFOLLOW` ([`PrivateDir`]), so what is checked is what is kept.
pub fn private_dir(dir: &Path) -> Result<PrivateDir, ControlError> {
    PrivateDir::create(dir).map_err(|e| {
        let dir = e.path().to_path_buf();
        match e {
            PrivateDirError::Symlink { .. } => ControlError::Symlink { dir },
            PrivateDirError::NotADirectory { .. } => ControlError::NotADirectory { dir },
            PrivateDirError::NotOwned { owner, uid, .. } => {
                ControlError::NotOwned { dir, owner, uid }
            }
            PrivateDirError::Create { source, .. }
            | PrivateDirError::Open { source, .. }
            | PrivateDirError::Tighten { source, .. } => ControlError::Directory {
                dir,
                reason: source.to_string(),
            },
            e @ PrivateDirError::BadName { .. } => ControlError::Directory {
                dir,
                reason: e.to_string(),
            },
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::credentials::refresher::Refresher;
    use crate::credentials::{Credentials, Secret};
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    use std::time::Duration;

    /// The facts of a mount for tests.
    pub(super) fn facts() -> MountFacts {
        MountFacts {
            pid: 42,
            mountpoint: "/mnt/data".into(),
            source: "bkt:logs/".into(),
            endpoint: "http://127.0.0.1:9000/bkt (path-style)".into(),
            region: "eu-west-1".into(),
            read_only: false,
            started: UNIX_EPOCH + Duration::from_secs(1_000),
        }
    }

    /// The status document carries the masked key id and the expiry, and neither the
    /// secret key nor the session token.
    #[test]
    fn document_has_no_secret() {
        let expiry = UNIX_EPOCH + Duration::from_secs(2_000_000_000);
        let cell = Arc::new(CredentialsCell::new(Credentials {
            access_key_id: "ASIAIOSFODNN7EXAMPLE".into(),
            secret_access_key: Secret::new("wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"),
            session_token: Some(Secret::new("FwoGZXIvYXdzEXAMPLETOKEN")),
            expiry: Some(expiry),
            source: "imds".into(),
        }));
        let provider: crate::credentials::SharedProvider =
            Arc::new(crate::credentials::env::EnvironmentProvider::default());
        let refresher = Refresher::start(Arc::clone(&cell), provider, SystemTime::now()).unwrap();
        let live = LiveCredentials::new(cell, refresher.status_handle());
        let status = facts().status(Some(&live), FsStatus::default());
        let json = serde_json::to_string(&status).unwrap();
        assert!(json.contains("ASIA************MPLE"), "{json}");
        assert!(json.contains("2000000000"), "{json}");
        assert!(!json.contains("wJalrXUtnFEMI"), "{json}");
        assert!(!json.contains("FwoGZXIvYXdz"), "{json}");
        assert!(!json.contains("ASIAIOSFODNN7EXAMPLE"), "{json}");
        let back: MountStatus = serde_json::from_str(&json).unwrap();
        assert_eq!(back, status);
    }

    /// root gets /run/s3rolefs; others their runtime directory, else a /tmp one by uid.
    #[test]
    fn socket_directory_by_user() {
        assert_eq!(dir_for(0, Some("/run/user/0".into())), Path::new(ROOT_DIR));
        assert_eq!(
            dir_for(1000, Some("/run/user/1000".into())),
            Path::new("/run/user/1000/s3rolefs")
        );
        assert_eq!(dir_for(1000, None), Path::new("/tmp/s3rolefs-1000"));
        assert_eq!(
            dir_for(1000, Some("relative".into())),
            Path::new("/tmp/s3rolefs-1000")
        );
    }

    /// A new directory is made 0700; an existing one of ours is brought to 0700.
    #[test]
    fn private_dir_is_0700() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("s3rolefs");
        private_dir(&dir).unwrap();
        let mode = |d: &Path| std::fs::metadata(d).unwrap().mode() & 0o7777;
        assert_eq!(mode(&dir), 0o700);
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        private_dir(&dir).unwrap();
        assert_eq!(mode(&dir), 0o700);
    }

    /// A symlink planted at the directory's name is refused, not followed.
    #[test]
    fn private_dir_refuses_a_symlink() {
        let tmp = tempfile::tempdir().unwrap();
        let target = tmp.path().join("elsewhere");
        std::fs::create_dir(&target).unwrap();
        let link = tmp.path().join("s3rolefs");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        let err = private_dir(&link).unwrap_err();
        assert!(matches!(err, ControlError::Symlink { .. }), "{err}");
        assert!(err.to_string().contains("rm "), "{err}");
        let file = tmp.path().join("file");
        std::fs::write(&file, b"").unwrap();
        let err = private_dir(&file).unwrap_err();
        assert!(matches!(err, ControlError::NotADirectory { .. }), "{err}");
    }

    /// A directory of another user is refused, with the way out.
    #[test]
    fn private_dir_refuses_someone_elses() {
        // As root, a directory given away; as anyone else, `/` (root's).
        let tmp = tempfile::tempdir().unwrap();
        let dir = if euid() == 0 {
            let dir = tmp.path().join("s3rolefs");
            std::fs::create_dir(&dir).unwrap();
            std::os::unix::fs::chown(&dir, Some(65534), Some(65534)).unwrap();
            dir
        } else {
            PathBuf::from("/")
        };
        let err = private_dir(&dir).unwrap_err();
        assert!(matches!(err, ControlError::NotOwned { .. }), "{err}");
        assert!(err.to_string().contains("XDG_RUNTIME_DIR"), "{err}");
    }
}
