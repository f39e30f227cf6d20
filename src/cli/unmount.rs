//! `s3rolefs unmount DIR [--lazy]`: with `--write-back`, first waits until the files closed
//! through the mount are in S3 (see `sync`); detaches the mount, then waits while its daemon gives
//! every file not yet in S3 one last try, printing what it waits for; what still fails stays
//! in the journal, and the next mount of the bucket uploads it. `--lazy` returns once the
//! mount is detached.
//!
//! The daemon's control socket answers until the daemon exits (it closes it last), so the
//! wait reads the same status `s3rolefs status` shows.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::mount::{self, control, MountError};
use crate::private_dir::PrivateDir;
use crate::upload::journal::Journal;

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
        (Path::new(&status.mountpoint) == wanted).then_some((status, answer.socket))
    });
    if let (Some((status, socket)), false) = (&daemon, lazy) {
        super::sync::before_unmount(socket.clone(), status);
    }
    mount::unmount(path)?;
    let Some((status, socket)) = daemon.filter(|_| !lazy) else {
        return Ok(());
    };
    wait_for(status.pid, socket);
    report_left(&status);
    Ok(())
}

/// After the daemon ended: the files of its bucket the journal still holds.
fn report_left(status: &control::MountStatus) {
    if status.fs.journal.is_empty() {
        return;
    }
    let (bucket, prefix) = match status.source.split_once(':') {
        Some((bucket, prefix)) => (bucket, prefix),
        None => (status.source.as_str(), ""),
    };
    let Ok(dir) = PrivateDir::create(Path::new(&status.fs.journal)) else {
        return;
    };
    let Ok(entries) = Journal::list_all(&dir) else {
        return;
    };
    let left: Vec<String> = entries
        .into_iter()
        .filter(|(_, r, _)| r.origin.bucket == bucket && r.key.starts_with(prefix))
        .map(|(_, r, _)| format!("  {}  {}", r.key, format_bytes(r.size)))
        .collect();
    if left.is_empty() {
        return;
    }
    eprintln!(
        "{} not in S3 when the mount ended; it stays in the journal ({}) and the next mount \
         of the bucket uploads it (see: s3rolefs recover --dry-run):\n{}",
        match left.len() {
            1 => "1 file is".to_string(),
            n => format!("{n} files are"),
        },
        status.fs.journal,
        left.join("\n")
    );
}

fn wait_for(pid: u32, socket: PathBuf) {
    let mut shown = String::new();
    let mut shown_at = std::time::Instant::now();
    // The daemon's last try is bounded (`fs::FINAL_PASS`); this bounds the wait in any case.
    let deadline = std::time::Instant::now() + crate::fs::FINAL_PASS + Duration::from_secs(30);
    while alive(pid) && std::time::Instant::now() < deadline {
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
        }
        std::thread::sleep(POLL);
    }
}

/// True while process `pid` runs: it exists and is not a zombie (a foreground mount's
/// process that exited stays one until its parent waits for it).
fn alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        // `pid (comm) S ...`: the state follows the last ')' (comm may hold spaces).
        Ok(stat) => stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().next())
            .is_some_and(|state| state != "Z" && state != "X"),
        Err(_) => false,
    }
}
