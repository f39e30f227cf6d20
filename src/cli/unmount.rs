//! `s3rolefs unmount DIR [--lazy]`: detaches the mount, then waits while its daemon gives
//! every file not yet in S3 one last try, printing what it waits for; what still fails stays
//! in the journal, and the next mount of the bucket uploads it. `--lazy` returns once the
//! mount is detached.
//!
//! The daemon's control socket answers until the daemon exits (it closes it last), so the
//! wait reads the same status `s3rolefs status` shows.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::mount::{self, control, MountError};

use super::status::{format_bytes, without_touching};

/// How often the wait asks the daemon how it is doing.
const POLL: Duration = Duration::from_millis(500);
/// How often a line is printed while the list of files does not change.
const REPEAT: Duration = Duration::from_secs(10);

/// Unmounts `path`; unless `lazy`, waits for its daemon to finish (see the module doc).
pub fn unmount_and_wait(path: &Path, lazy: bool) -> Result<(), MountError> {
    let wanted = without_touching(path);
    let daemon = control::query_all().into_iter().find_map(|answer| {
        let status = answer.outcome.ok()?;
        (Path::new(&status.mountpoint) == wanted).then_some((status.pid, answer.socket))
    });
    mount::unmount(path)?;
    let Some((pid, socket)) = daemon.filter(|_| !lazy) else {
        return Ok(());
    };
    wait_for(pid, socket);
    Ok(())
}

fn wait_for(pid: u32, socket: PathBuf) {
    let mut shown = String::new();
    let mut shown_at = std::time::Instant::now();
    let mut last_left: Vec<String> = Vec::new();
    while alive(pid) {
        if let Some(Ok(status)) = control::query_sockets(vec![socket.clone()])
            .pop()
            .map(|q| q.outcome)
        {
            let pending: Vec<String> = status
                .fs
                .pending
                .iter()
                .map(|p| format!("  {}  {} ({})", p.key, format_bytes(p.size), p.state))
                .collect();
            let text = if pending.is_empty() {
                String::new()
            } else {
                format!(
                    "waiting for {} to reach S3:\n{}\n",
                    match pending.len() {
                        1 => "1 file".to_string(),
                        n => format!("{n} files"),
                    },
                    pending.join("\n")
                )
            };
            if !text.is_empty() && (text != shown || shown_at.elapsed() >= REPEAT) {
                eprint!("{text}");
                shown = text;
                shown_at = std::time::Instant::now();
            }
            last_left = status.fs.pending.iter().map(|p| p.key.clone()).collect();
        }
        std::thread::sleep(POLL);
    }
    if !last_left.is_empty() {
        eprintln!(
            "{} not in S3 when the mount ended; it stays in the journal and the next mount of \
             the bucket uploads it (see: s3rolefs recover --dry-run)",
            match last_left.len() {
                1 => "1 file is".to_string(),
                n => format!("{n} files are"),
            }
        );
    }
}

/// True while process `pid` exists.
fn alive(pid: u32) -> bool {
    let Ok(pid) = libc::pid_t::try_from(pid) else {
        return false;
    };
    // SAFETY: kill(2) with signal 0 only checks that the process exists.
    let answer = unsafe { libc::kill(pid, 0) };
    answer == 0 || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
}
