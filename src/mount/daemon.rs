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
        Some(path) => Stdio::from(
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .map_err(|e| {
                    MountError::Daemon(format!("cannot open log file {}: {e}", path.display()))
                })?,
        ),
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
