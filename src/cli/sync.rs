//! `s3rolefs sync [DIR]`: waits until every file closed before it was called is in S3 — the
//! write-back queue's (`--write-back`) and the journal's (closes that failed, files left by
//! a mount that died) — for every mount of this user, or only for files under `DIR`.
//! Exits non-zero, naming them, when some cannot get there by themselves (access denied,
//! say): an outage is waited out, however long (`--timeout` bounds the wait).
//!
//! It reads the same status documents `s3rolefs status` does: the queue numbers files in
//! the order they were closed, so "closed before" is "numbered up to the last number when
//! the wait began".

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::mount::control::{self, MountStatus};

use super::status::format_bytes;

/// How often the wait asks the mounts how they are doing.
const POLL: Duration = Duration::from_millis(200);
/// How often a progress line is printed while waiting.
const PROGRESS: Duration = Duration::from_secs(10);

/// What one mount still owes of what was closed when the wait began.
struct Owed {
    socket: PathBuf,
    mountpoint: String,
    source: String,
    /// Keys are counted only under this one (`""`: all of the mount).
    under: String,
    last_seq: u64,
    /// Journal entries seen at the start, by key.
    journal: Vec<String>,
}

/// `s3rolefs sync [DIR] [--timeout SECONDS]`.
pub fn run(dir: Option<PathBuf>, timeout: Option<f64>) -> Result<(), String> {
    let dir = match dir {
        Some(d) => Some(
            d.canonicalize()
                .map_err(|e| format!("{}: {e}", d.display()))?,
        ),
        None => None,
    };
    let mut owed = Vec::new();
    for answer in control::query_all() {
        let Ok(status) = answer.outcome else {
            continue;
        };
        let under = match &dir {
            None => String::new(),
            Some(dir) => match dir.strip_prefix(&status.mountpoint) {
                Ok(rel) => key_prefix(&status.source, rel),
                Err(_) => continue,
            },
        };
        owed.push(Owed {
            socket: answer.socket,
            last_seq: status.fs.write_back.as_ref().map_or(0, |q| q.last_seq),
            journal: status.fs.pending.iter().map(|p| p.key.clone()).collect(),
            mountpoint: status.mountpoint,
            source: status.source,
            under,
        });
    }
    if let (Some(dir), true) = (&dir, owed.is_empty()) {
        return Err(format!(
            "{} is not inside an s3rolefs mount of this user; give a directory of one, or \
             nothing for all of them",
            dir.display()
        ));
    }
    let deadline = timeout.map(|t| Instant::now() + Duration::from_secs_f64(t.max(0.0)));
    wait(&owed, deadline, true)
}

/// Waits for `owed` (see the module doc). `Err` names what cannot get there.
fn wait(owed: &[Owed], deadline: Option<Instant>, progress: bool) -> Result<(), String> {
    let mut said = Instant::now();
    loop {
        let mut waiting = Vec::new();
        let mut failed = Vec::new();
        for mount in owed {
            let Some(Ok(status)) = control::query_sockets(vec![mount.socket.clone()])
                .pop()
                .map(|q| q.outcome)
            else {
                // The mount ended: what it left is the journal's, for its next mount.
                continue;
            };
            let (w, f) = left(mount, &status);
            waiting.extend(w);
            failed.extend(f);
        }
        if waiting.is_empty() && failed.is_empty() {
            return Ok(());
        }
        if waiting.is_empty() {
            return Err(format!(
                "{} cannot reach S3 by itself:\n{}",
                files(failed.len()),
                failed.join("\n")
            ));
        }
        if deadline.is_some_and(|d| Instant::now() >= d) {
            waiting.extend(failed);
            return Err(format!(
                "timed out; {} not in S3 yet:\n{}",
                files(waiting.len()),
                waiting.join("\n")
            ));
        }
        if progress && said.elapsed() >= PROGRESS {
            eprintln!(
                "waiting for {} to reach S3, first: {}",
                files(waiting.len()),
                waiting[0].trim()
            );
            said = Instant::now();
        }
        std::thread::sleep(POLL);
    }
}

/// The files of `mount` still owed: (waiting, cannot pass by themselves), one line each.
fn left(mount: &Owed, status: &MountStatus) -> (Vec<String>, Vec<String>) {
    let mut waiting = Vec::new();
    let mut failed = Vec::new();
    let under = mount.under.as_str();
    let here = |key: &str| {
        under.is_empty()
            || under.ends_with('/') && key.starts_with(under)
            || key
                .strip_prefix(under)
                .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
    };
    // One line a file, sorted by whether it can get there by itself.
    let mut add = |key: &str, size: u64, state: &str, cannot: bool| {
        let line = format!(
            "  {}/{}  {} ({state})",
            mount.mountpoint,
            relative(&mount.source, key),
            format_bytes(size)
        );
        match cannot {
            true => failed.push(line),
            false => waiting.push(line),
        }
    };
    if let Some(queue) = &status.fs.write_back {
        for file in queue
            .files
            .iter()
            .filter(|f| f.seq <= mount.last_seq && here(&f.key))
        {
            add(
                &file.key,
                file.size,
                &file.state,
                file.state.starts_with("failed"),
            );
        }
    }
    for file in status
        .fs
        .pending
        .iter()
        .filter(|p| mount.journal.contains(&p.key) && here(&p.key))
    {
        add(
            &file.key,
            file.size,
            &file.state,
            file.state.starts_with("stuck"),
        );
    }
    (waiting, failed)
}

/// Before the unmount of `status`'s mount: waits for its write-back queue (printing what
/// it waits for), so what was closed is in S3 before the mount goes. What cannot get
/// there is said, and stays in the journal.
pub fn before_unmount(socket: PathBuf, status: &MountStatus) {
    let Some(queue) = &status.fs.write_back else {
        return;
    };
    if queue.files.is_empty() {
        return;
    }
    eprintln!(
        "waiting for {} ({}) closed through {} to reach S3 (--lazy to leave them to the next \
         mount)",
        files(queue.files.len()),
        format_bytes(queue.bytes),
        status.mountpoint
    );
    let owed = Owed {
        socket,
        mountpoint: status.mountpoint.clone(),
        source: status.source.clone(),
        under: String::new(),
        last_seq: u64::MAX,
        journal: Vec::new(),
    };
    if let Err(e) = wait(&[owed], None, true) {
        eprintln!("{e}\n(they stay in the journal; the next mount of the bucket tries again)");
    }
}

/// The key prefix of the path `rel` inside a mount of `source` (`bucket[:prefix/]`).
fn key_prefix(source: &str, rel: &Path) -> String {
    let prefix = source.split_once(':').map_or("", |(_, p)| p);
    let rel = rel.to_string_lossy();
    if rel.is_empty() {
        prefix.to_string()
    } else {
        format!("{prefix}{rel}")
    }
}

fn relative<'a>(source: &str, key: &'a str) -> &'a str {
    match source.split_once(':') {
        Some((_, prefix)) => key.strip_prefix(prefix).unwrap_or(key),
        None => key,
    }
}

fn files(n: usize) -> String {
    match n {
        1 => "1 file".into(),
        n => format!("{n} files"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_directory_inside_a_mount_is_a_key_prefix() {
        assert_eq!(key_prefix("bkt", Path::new("")), "");
        assert_eq!(key_prefix("bkt", Path::new("a/b")), "a/b");
        assert_eq!(key_prefix("bkt:p/", Path::new("a")), "p/a");
        assert_eq!(key_prefix("bkt:p/", Path::new("")), "p/");
    }
}
