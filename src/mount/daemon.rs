//! Running in the background without hiding failures.
//!
//! `s3rolefs mount` (without `--foreground`) starts itself again as a child with
//! `--foreground` and [`CHILD_ENV`] set, with the child's stdout a pipe back to the parent.
//! The child mounts, then writes one line on that pipe — `READY`, or `ERROR <message>` —
//! and detaches. The parent waits for that line, so its exit code and stderr say whether
//! the mount worked: mount(8), fstab and systemd report failures as they should, and a
//! successful `mount` returns only when the filesystem is usable.
//!
//! Re-executing instead of `fork()`ing keeps the child free of a half-copied tokio runtime.

use std::ffi::OsString;
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};

use super::error::MountError;

/// Set in the child's environment: "you are the background mount; report on stdout".
pub const CHILD_ENV: &str = "S3ROLEFS_DAEMON_CHILD";

/// Set in the child's environment when it has no `--log-file`: it logs to syslog.
pub const SYSLOG_ENV: &str = "S3ROLEFS_DAEMON_SYSLOG";

/// True in the background child.
pub fn is_daemon_child() -> bool {
    std::env::var_os(CHILD_ENV).is_some()
}

/// True in a background child that has no log file: its log goes to syslog/journald.
pub fn logs_to_syslog() -> bool {
    is_daemon_child() && std::env::var_os(SYSLOG_ENV).is_some()
}

/// Parent side: starts the child with `arguments` (those of this `s3rolefs mount`, without
/// the program; for a mount(8) call, as translated) plus `--foreground`, and returns once it
/// reported. The child's logs go to `log_file`, else to syslog (journald).
pub fn spawn_and_wait(arguments: &[OsString], log_file: Option<&Path>) -> Result<(), MountError> {
    let exe = std::env::current_exe().map_err(|e| MountError::Daemon(e.to_string()))?;
    let stderr = match log_file {
        Some(path) => Stdio::from(open_log_file(path)?),
        None => Stdio::null(),
    };
    let mut command = Command::new(exe);
    if log_file.is_none() {
        command.env(SYSLOG_ENV, "1");
    }
    let mut child = command
        .args(arguments)
        .arg("--foreground")
        .env(CHILD_ENV, "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(stderr)
        .spawn()
        .map_err(|e| MountError::Daemon(e.to_string()))?;
    let Some(stdout) = child.stdout.take() else {
        return Err(MountError::Daemon("no pipe to the child".into()));
    };
    let mut line = String::new();
    let read = BufReader::new(stdout).read_line(&mut line);
    match (read, line.trim_end()) {
        (Ok(_), "READY") => Ok(()),
        (Ok(_), msg) if msg.starts_with("ERROR ") => {
            let _ = child.wait();
            Err(MountError::Reported(msg["ERROR ".len()..].to_string()))
        }
        _ => {
            let status = child
                .wait()
                .map_err(|e| MountError::Daemon(e.to_string()))?;
            Err(MountError::Daemon(format!(
                "the mount process ended ({status}) before the mount was ready; run with --foreground --debug to see why"
            )))
        }
    }
}

/// Opens `--log-file` for appending: a new file is created 0600 (a log names the bucket's
/// keys and the credentials' sources); an existing one keeps the mode its owner gave it,
/// never loosened. A symlink at the path is refused, not followed, and so is a file that is
/// not a regular file of this user (a hard link to someone else's file planted in `/tmp`).
pub fn open_log_file(path: &Path) -> Result<std::fs::File, MountError> {
    use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
    let refused = |reason: String| MountError::LogFile {
        path: path.to_path_buf(),
        reason,
    };
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(path)
        .map_err(|e| match e.raw_os_error() {
            Some(libc::ELOOP) => refused(format!(
                "it is a symbolic link, which is never followed; remove it (rm {}) or give the \
                 real path",
                path.display()
            )),
            _ => refused(format!("{e}; give a path in a directory you may write")),
        })?;
    let meta = file
        .metadata()
        .map_err(|e| refused(format!("{e}; give another path")))?;
    let uid = crate::private_dir::euid();
    if !meta.is_file() || meta.uid() != uid {
        return Err(refused(format!(
            "it is not a regular file of this user (uid {uid}); remove it or give another path"
        )));
    }
    Ok(file)
}

/// Child side: the mount is ready. Tells the parent, then detaches stdout from the pipe.
pub fn report_ready() {
    let mut out = std::io::stdout();
    let _ = writeln!(out, "READY");
    let _ = out.flush();
    detach_stdout();
}

/// Child side: the mount failed; the parent prints `message` and exits non-zero.
pub fn report_error(message: &str) {
    let mut out = std::io::stdout();
    let _ = writeln!(out, "ERROR {}", message.replace('\n', " "));
    let _ = out.flush();
}

/// Child side: leave the parent's session so a closing terminal does not take us down.
pub fn detach_session() {
    // SAFETY: setsid has no memory effects; it fails harmlessly if we lead a group already.
    unsafe {
        libc::setsid();
    }
}

fn detach_stdout() {
    if let Ok(null) = std::fs::OpenOptions::new().write(true).open("/dev/null") {
        use std::os::fd::AsRawFd;
        // SAFETY: dup2 onto fd 1 with a valid open descriptor; `null` is closed after.
        unsafe {
            libc::dup2(null.as_raw_fd(), 1);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn mode(path: &Path) -> u32 {
        std::fs::symlink_metadata(path)
            .unwrap()
            .permissions()
            .mode()
            & 0o7777
    }

    /// A new log file is 0600; an existing one keeps its mode and is appended to.
    #[test]
    fn log_file_is_created_0600_and_never_loosened() {
        let tmp = tempfile::tempdir().unwrap();
        let new = tmp.path().join("new.log");
        open_log_file(&new).unwrap();
        assert_eq!(mode(&new), 0o600);
        let kept = tmp.path().join("kept.log");
        std::fs::write(&kept, b"before\n").unwrap();
        std::fs::set_permissions(&kept, std::fs::Permissions::from_mode(0o640)).unwrap();
        let mut file = open_log_file(&kept).unwrap();
        file.write_all(b"after\n").unwrap();
        assert_eq!(mode(&kept), 0o640);
        assert_eq!(std::fs::read(&kept).unwrap(), b"before\nafter\n");
    }

    /// A symlink at the log file's path is refused, and its target is left untouched.
    #[test]
    fn log_file_refuses_a_symlink() {
        let tmp = tempfile::tempdir().unwrap();
        let target = tmp.path().join("shadow");
        std::fs::write(&target, b"secret").unwrap();
        let link = tmp.path().join("s3rolefs.log");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        let err = open_log_file(&link).unwrap_err();
        assert!(matches!(err, MountError::LogFile { .. }), "{err}");
        assert!(err.to_string().contains("symbolic link"), "{err}");
        assert_eq!(std::fs::read(&target).unwrap(), b"secret");
    }

    /// A file of another user at the path (a hard link planted in `/tmp`) is refused.
    #[test]
    fn log_file_refuses_someone_elses_file() {
        if crate::private_dir::euid() != 0 {
            return; // only root can give a file away
        }
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("s3rolefs.log");
        std::fs::write(&path, b"theirs").unwrap();
        std::os::unix::fs::chown(&path, Some(65534), Some(65534)).unwrap();
        let err = open_log_file(&path).unwrap_err();
        assert!(
            err.to_string().contains("not a regular file of this user"),
            "{err}"
        );
    }
}
