//! The server side of a mount's control socket: bound in the user's private directory,
//! 0600, served by a task on the mount's runtime (never the FUSE loop), one JSON document
//! per connection to root or the mount's owner only, removed when the mount ends.

use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::net::UnixStream;

use super::{euid, own_dir, private_dir, ControlError, MountStatus};
use crate::private_dir::PrivateDir;

/// How long a mount waits for a client to take its answer before it drops the connection.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(5);
/// A pause after a failed `accept` (out of descriptors), so the loop does not spin.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// The status socket of a running mount: serves until closed, and its file goes with it.
pub struct ControlSocket {
    /// The socket's directory, held open: the leftover and the socket itself are removed
    /// through it, never by a path looked up again.
    dir: PrivateDir,
    /// `<pid>.sock`.
    name: String,
    path: PathBuf,
    closed: AtomicBool,
    task: tokio::task::AbortHandle,
}

/// Builds a mount's status document at each query.
pub type StatusSource = Arc<dyn Fn() -> MountStatus + Send + Sync>;

impl ControlSocket {
    /// Binds `<own_dir>/<pid>.sock` and answers on `runtime` with what `status` returns.
    pub fn open(
        runtime: &tokio::runtime::Handle,
        status: StatusSource,
    ) -> Result<Arc<ControlSocket>, ControlError> {
        Self::open_in(&own_dir(), runtime, status)
    }

    /// [`ControlSocket::open`] in `dir`.
    pub fn open_in(
        dir: &Path,
        runtime: &tokio::runtime::Handle,
        status: StatusSource,
    ) -> Result<Arc<ControlSocket>, ControlError> {
        let private = private_dir(dir)?;
        let name = format!("{}.sock", std::process::id());
        let path = private.path().join(&name);
        let failed = |e: io::Error| ControlError::Socket {
            path: path.clone(),
            reason: e.to_string(),
        };
        // A leftover of an earlier process with this pid: that one is gone, the pid is ours.
        match private.remove(&name) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(failed(e)),
        }
        let listener = std::os::unix::net::UnixListener::bind(&path).map_err(failed)?;
        let listener = std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))
            .and_then(|()| listener.set_nonblocking(true))
            .and_then(|()| {
                let _context = runtime.enter();
                tokio::net::UnixListener::from_std(listener)
            })
            .map_err(|e| {
                let _ = private.remove(&name);
                failed(e)
            })?;
        let task = runtime.spawn(serve(listener, euid(), status));
        Ok(Arc::new(ControlSocket {
            dir: private,
            name,
            path,
            closed: AtomicBool::new(false),
            task: task.abort_handle(),
        }))
    }

    /// The socket's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Stops answering and removes the socket file (once; dropping does it too).
    pub fn close(&self) {
        if self.closed.swap(true, Ordering::AcqRel) {
            return;
        }
        self.task.abort();
        if let Err(e) = self.dir.remove(&self.name) {
            if e.kind() != io::ErrorKind::NotFound {
                log::warn!(
                    "cannot remove the status socket {}: {e}",
                    self.path.display()
                );
            }
        }
    }
}

impl Drop for ControlSocket {
    fn drop(&mut self) {
        self.close();
    }
}

/// Only root and the user the mount runs as may read its status.
fn may_read(peer_uid: u32, owner_uid: u32) -> bool {
    peer_uid == 0 || peer_uid == owner_uid
}

async fn serve(listener: tokio::net::UnixListener, owner: u32, status: StatusSource) {
    loop {
        match listener.accept().await {
            // One task per client: a client that does not read holds up nobody else.
            Ok((stream, _)) => drop(tokio::spawn(answer(stream, owner, Arc::clone(&status)))),
            Err(e) => {
                log::debug!("status socket: accept failed: {e}");
                tokio::time::sleep(ACCEPT_BACKOFF).await;
            }
        }
    }
}

async fn answer(mut stream: UnixStream, owner: u32, status: StatusSource) {
    let peer = stream.peer_cred().map(|c| c.uid());
    match peer {
        Ok(uid) if may_read(uid, owner) => {}
        Ok(uid) => {
            log::debug!("status socket: uid {uid} may not read this mount's status");
            return;
        }
        Err(e) => {
            log::debug!("status socket: cannot tell who connected: {e}");
            return;
        }
    }
    let mut document = match serde_json::to_vec(&status()) {
        Ok(document) => document,
        Err(e) => {
            log::warn!("status socket: cannot encode the status: {e}");
            return;
        }
    };
    document.push(b'\n');
    let send = async {
        stream.write_all(&document).await?;
        stream.shutdown().await
    };
    match tokio::time::timeout(ANSWER_TIMEOUT, send).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => log::debug!("status socket: answer not delivered: {e}"),
        Err(_) => log::debug!("status socket: the client did not read its answer"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fs::status::FsStatus;
    use crate::mount::control::{query_sockets, tests::facts};
    use std::os::unix::fs::MetadataExt;

    fn fixed(status: MountStatus) -> StatusSource {
        Arc::new(move || status.clone())
    }

    fn runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap()
    }

    /// Root and the owner may read a mount's status; nobody else.
    #[test]
    fn only_root_and_the_owner_may_read() {
        assert!(may_read(0, 1000));
        assert!(may_read(1000, 1000));
        assert!(!may_read(1001, 1000));
        assert!(may_read(0, 0));
        assert!(!may_read(65534, 0));
    }

    /// A connection gets the document; the socket is 0600; closing removes it.
    #[test]
    fn socket_answers_with_the_document_and_goes_on_close() {
        let runtime = runtime();
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("s3rolefs");
        let status = facts().status(None, FsStatus::default());
        let socket = ControlSocket::open_in(&dir, runtime.handle(), fixed(status.clone())).unwrap();
        let path = socket.path().to_path_buf();
        assert_eq!(std::fs::metadata(&path).unwrap().mode() & 0o777, 0o600);
        let answers = query_sockets(vec![path.clone()]);
        assert_eq!(answers.len(), 1);
        assert_eq!(answers[0].outcome.as_ref().unwrap(), &status);
        socket.close();
        assert!(!path.exists());
        drop(socket);
    }
}
