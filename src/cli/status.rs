//! `s3rolefs status [MOUNTPOINT] [--json]`: every s3rolefs mount of this machine with its
//! bucket, credentials and their expiry, cache use and the uploads in progress, as each
//! mount's control socket tells it (`mount::control`). Mounts in `/proc/self/mountinfo`
//! whose socket this user cannot read (another user's, or a dead process's) are listed
//! too, without details.
//!
//! Read-only: nothing here changes a mount; it only removes this user's own sockets whose
//! process is gone.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::when::{rfc3339, span};
use crate::fs::status::UploadStatus;
use crate::fs::writeback::QueuedFile;
use crate::mount::control::{self, CredentialsStatus, MountStatus};
use crate::mount::preflight;

/// The fstype of our mounts, and their source in mountinfo where the subtype was lost.
const FSTYPE: &str = "fuse.s3rolefs";
const SOURCE_PREFIX: &str = "s3rolefs:";

/// What the line of a mount without status says.
const NO_STATUS: &str =
    "no status: its control socket is not readable by this user, or the process is gone";

/// Prints the status of every mount, or of the one at `mountpoint`.
pub fn run(mountpoint: Option<PathBuf>, json: bool) -> Result<(), String> {
    let mounted = s3rolefs_mounts();
    let mut statuses: Vec<MountStatus> = control::query_all()
        .into_iter()
        .filter_map(|answer| match answer.outcome {
            Ok(status) => Some(status),
            Err(e) => {
                log::debug!("{}: {e}", answer.socket.display());
                None
            }
        })
        .collect();
    statuses.sort_by(|a, b| (&a.mountpoint, a.pid).cmp(&(&b.mountpoint, b.pid)));
    let answered = |dir: &Path| statuses.iter().any(|s| Path::new(&s.mountpoint) == dir);
    let mut silent: Vec<PathBuf> = mounted.iter().filter(|m| !answered(m)).cloned().collect();
    if let Some(wanted) = mountpoint {
        let wanted = without_touching(&wanted);
        statuses.retain(|s| Path::new(&s.mountpoint) == wanted);
        if statuses.is_empty() {
            return Err(if mounted.contains(&wanted) {
                format!(
                    "{}: {NO_STATUS}; ask as root or as the user who mounted it",
                    wanted.display()
                )
            } else {
                format!(
                    "{} is not an s3rolefs mount; `s3rolefs status` lists the mounts there are",
                    wanted.display()
                )
            });
        }
        silent.clear();
    }
    if json {
        let text = serde_json::to_string_pretty(&statuses)
            .map_err(|e| format!("cannot encode the status: {e}"))?;
        println!("{text}");
        return Ok(());
    }
    print!(
        "{}",
        format_report(&statuses, &mounted, &silent, SystemTime::now())
    );
    Ok(())
}

/// The text report: a block per mount that answered (`mounted`: the mount points in this
/// process's mount table), blank lines between them, then one line per mount in `silent`
/// (no answer).
fn format_report(
    statuses: &[MountStatus],
    mounted: &[PathBuf],
    silent: &[PathBuf],
    now: SystemTime,
) -> String {
    if statuses.is_empty() && silent.is_empty() {
        return "no s3rolefs mounts\n".into();
    }
    let mut blocks: Vec<String> = statuses
        .iter()
        .map(|s| {
            let here = mounted.iter().any(|m| m == Path::new(&s.mountpoint));
            format_mount(s, now, here)
        })
        .collect();
    if !silent.is_empty() {
        blocks.push(
            silent
                .iter()
                .map(|m| format!("{}  ({NO_STATUS})\n", m.display()))
                .collect(),
        );
    }
    blocks.join("\n")
}

/// The s3rolefs mount points in this process's mount table.
fn s3rolefs_mounts() -> Vec<PathBuf> {
    let mut mounts: Vec<PathBuf> = preflight::mounts_of_type(FSTYPE)
        .into_iter()
        .chain(
            preflight::mounts_of_type("fuse")
                .into_iter()
                .filter(|m| m.source.starts_with(SOURCE_PREFIX)),
        )
        .map(|m| m.mountpoint)
        .collect();
    mounts.sort();
    mounts.dedup();
    mounts
}

/// `path` made absolute and free of symlinks in its parent, without a `stat` of `path`
/// itself: on a mount whose process hangs or died, that would hang or fail.
pub(super) fn without_touching(path: &Path) -> PathBuf {
    match (
        path.parent().map(|p| {
            if p.as_os_str().is_empty() {
                Path::new(".")
            } else {
                p
            }
        }),
        path.file_name(),
    ) {
        (Some(parent), Some(name)) => match parent.canonicalize() {
            Ok(parent) => parent.join(name),
            Err(_) => path.to_path_buf(),
        },
        _ => path.canonicalize().unwrap_or_else(|_| path.to_path_buf()),
    }
}

/// Width of the label column.
const LABEL: usize = 13;

/// One mount's block of text. `mounted_here`: its mount point is in this process's mount
/// table (false for a mount of another mount namespace, or one still starting).
fn format_mount(s: &MountStatus, now: SystemTime, mounted_here: bool) -> String {
    let mut out = String::new();
    let started = UNIX_EPOCH + Duration::from_secs(s.started);
    let up = now.duration_since(started).unwrap_or_default();
    let mode = if s.read_only {
        "read-only"
    } else {
        "read-write"
    };
    let elsewhere = if mounted_here {
        ""
    } else {
        ", not in this mount namespace"
    };
    out.push_str(&format!(
        "{}  {}  (pid {}, up {}, {mode}{elsewhere})\n",
        s.mountpoint,
        s.source,
        s.pid,
        span(up)
    ));
    let mut line = |label: &str, text: String| {
        out.push_str(&format!("  {label:<LABEL$}{text}\n"));
    };
    line("endpoint", format!("{}, region {}", s.endpoint, s.region));
    line(
        "credentials",
        match &s.credentials {
            Some(c) => format_credentials(c, now),
            None => "none (--no-sign-request)".into(),
        },
    );
    let fs = &s.fs;
    let mut cache = format!(
        "{} of {} in memory ({}, {})",
        format_bytes(fs.cache.bytes),
        format_bytes(fs.cache.capacity),
        count(fs.cache.hits, "hit", "hits"),
        count(fs.cache.misses, "miss", "misses")
    );
    if let Some(disk) = &fs.disk {
        cache.push_str(&format!(
            "; disk {} of {}",
            format_bytes(disk.bytes),
            format_bytes(disk.capacity)
        ));
    }
    line("cache", cache);
    line(
        "prefetch",
        format!(
            "{} of {}",
            format_bytes(fs.prefetch.in_use),
            format_bytes(fs.prefetch.capacity)
        ),
    );
    line("open files", fs.open_files.to_string());
    if fs.uploads.is_empty() {
        line("uploads", "none".into());
    } else {
        line("uploads", format!("{} in progress", fs.uploads.len()));
        for upload in &fs.uploads {
            line("", format_upload(upload));
        }
    }
    if !fs.pending.is_empty() {
        line(
            "not in S3",
            format!(
                "{} in the journal, retried in the background",
                count(fs.pending.len() as u64, "file", "files")
            ),
        );
        for p in &fs.pending {
            let waited = UNIX_EPOCH + Duration::from_secs(p.since);
            let age = now.duration_since(waited).unwrap_or_default();
            line(
                "",
                format!(
                    "{}  {}, {} ({}), for {}",
                    relative(&s.source, &p.key),
                    format_bytes(p.size),
                    p.kind,
                    p.state,
                    span(age)
                ),
            );
        }
    }
    if let Some(since) = fs.unreachable_since {
        let away = now
            .duration_since(UNIX_EPOCH + Duration::from_secs(since))
            .unwrap_or_default();
        line(
            "S3",
            if fs.write_back.is_some() {
                format!(
                    "cannot be reached for {}: working offline from what this mount saw",
                    span(away)
                )
            } else {
                format!("cannot be reached for {}", span(away))
            },
        );
    }
    if let Some(queue) = &fs.write_back {
        line(
            "write-back",
            if queue.files.is_empty() {
                format!(
                    "on, everything closed is in S3 (queue bound {})",
                    format_bytes(queue.max_bytes)
                )
            } else {
                format!(
                    "{} ({} of {}) closed and waiting for S3",
                    queued_count(&queue.files),
                    format_bytes(queue.bytes),
                    format_bytes(queue.max_bytes)
                )
            },
        );
        for q in queue.files.iter().take(QUEUE_SHOWN) {
            let waited = UNIX_EPOCH + Duration::from_secs(q.since);
            let age = now.duration_since(waited).unwrap_or_default();
            line(
                "",
                format!(
                    "{}  {}, {}, for {}",
                    relative(&s.source, &q.key),
                    format_bytes(q.size),
                    q.state,
                    span(age)
                ),
            );
        }
        if queue.files.len() > QUEUE_SHOWN {
            line(
                "",
                format!("… and {} more", queue.files.len() - QUEUE_SHOWN),
            );
        }
    }
    if !fs.recovered.is_empty() {
        line(
            "recovered",
            count(fs.recovered.len() as u64, "file", "files"),
        );
        for r in &fs.recovered {
            let to = if r.to == r.key {
                "to its key".to_string()
            } else {
                format!("beside it as {}", relative(&s.source, &r.to))
            };
            line("", format!("{}  {to}", relative(&s.source, &r.key)));
        }
    }
    out
}

/// Queued files listed one a line (the oldest: the rest are behind them).
const QUEUE_SHOWN: usize = 20;

/// `key` as a path inside the mount of `source` (`bucket` or `bucket:prefix/`).
fn relative(source: &str, key: &str) -> String {
    match source.split_once(':') {
        Some((_, prefix)) => key.strip_prefix(prefix).unwrap_or(key).to_string(),
        None => key.to_string(),
    }
}

fn format_upload(u: &UploadStatus) -> String {
    let state = if u.dirty { "not yet in S3" } else { "in S3" };
    format!("{}  {} written, {state}", u.path, format_bytes(u.size))
}

/// `imds (key ASIA****WXYZ), expire <time> (in 4 h 10 min), next renewal in 3 h 40 min,
/// 2 renewals`, and any failures.
fn format_credentials(c: &CredentialsStatus, now: SystemTime) -> String {
    let mut text = format!("{} (key {})", c.source, c.masked_key);
    match c.expiry {
        Some(expiry) => {
            let at = UNIX_EPOCH + Duration::from_secs(expiry);
            match at.duration_since(now) {
                Ok(left) => text.push_str(&format!(", expire {} (in {})", rfc3339(at), span(left))),
                Err(past) => text.push_str(&format!(
                    ", expired {} ({} ago)",
                    rfc3339(at),
                    span(past.duration())
                )),
            }
        }
        None => text.push_str(", never expire"),
    }
    if c.refreshable {
        if let Some(next) = c.next_refresh {
            match (UNIX_EPOCH + Duration::from_secs(next)).duration_since(now) {
                Ok(wait) => text.push_str(&format!(", next renewal in {}", span(wait))),
                Err(_) => text.push_str(", renewal due now"),
            }
        }
        text.push_str(&format!(", {}", count(c.refreshes, "renewal", "renewals")));
    } else if c.expiry.is_some() {
        text.push_str(", cannot be renewed");
    }
    if c.failures > 0 {
        text.push_str(&format!(
            "; {} in a row",
            count(u64::from(c.failures), "failed renewal", "failed renewals")
        ));
        if let Some(error) = &c.last_error {
            text.push_str(&format!(", last: {error}"));
        }
    }
    text
}

/// `1 hit`, `2 hits`.
/// `3 files`, `2 directories`, `3 files and 2 directories`: what the write-back queue
/// holds (a directory is its marker `dir/`, queued by `mkdir`).
fn queued_count(queued: &[QueuedFile]) -> String {
    let dirs = queued.iter().filter(|q| q.key.ends_with('/')).count() as u64;
    let files = queued.len() as u64 - dirs;
    match (files, dirs) {
        (_, 0) => count(files, "file", "files"),
        (0, _) => count(dirs, "directory", "directories"),
        _ => format!(
            "{} and {}",
            count(files, "file", "files"),
            count(dirs, "directory", "directories")
        ),
    }
}

fn count(n: u64, one: &str, many: &str) -> String {
    if n == 1 {
        format!("1 {one}")
    } else {
        format!("{n} {many}")
    }
}

/// `512 B`, `12.0 MiB`, `1.2 GiB`: binary units, one decimal.
pub(super) fn format_bytes(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["KiB", "MiB", "GiB", "TiB", "PiB"];
    if bytes < 1024 {
        return format!("{bytes} B");
    }
    let mut value = bytes as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fs::status::{
        BlockCacheStatus, DiskCacheStatus, FsStatus, PrefetchStatus, UploadStatus,
    };

    const MIB: u64 = 1024 * 1024;

    /// Sizes read in binary units with one decimal; below a KiB, in bytes.
    #[test]
    fn sizes_in_binary_units() {
        assert_eq!(format_bytes(0), "0 B");
        assert_eq!(format_bytes(1023), "1023 B");
        assert_eq!(format_bytes(1024), "1.0 KiB");
        assert_eq!(format_bytes(12 * MIB), "12.0 MiB");
        assert_eq!(format_bytes(1288 * MIB), "1.3 GiB");
        assert_eq!(format_bytes(10 * 1024 * 1024 * MIB), "10.0 TiB");
    }

    /// Counts agree with their number.
    #[test]
    fn counts_agree_with_their_number() {
        assert_eq!(count(1, "miss", "misses"), "1 miss");
        assert_eq!(count(0, "miss", "misses"), "0 misses");
        assert_eq!(count(2, "hit", "hits"), "2 hits");
    }

    /// The queue's count names directories (their markers, `dir/`) apart from files.
    #[test]
    fn queued_directories_are_counted_apart() {
        let queued = |key: &str| QueuedFile {
            seq: 1,
            key: key.into(),
            size: 0,
            state: "queued".into(),
            since: 0,
            attempts: 0,
        };
        assert_eq!(queued_count(&[queued("a"), queued("b")]), "2 files");
        assert_eq!(queued_count(&[queued("d/")]), "1 directory");
        assert_eq!(
            queued_count(&[queued("d/"), queued("d/x"), queued("e/")]),
            "1 file and 2 directories"
        );
    }

    fn sample(now: SystemTime) -> MountStatus {
        let at = |offset: i64| {
            (now.duration_since(UNIX_EPOCH).unwrap().as_secs() as i64 + offset) as u64
        };
        MountStatus {
            pid: 1234,
            mountpoint: "/mnt/data".into(),
            source: "my-bucket:logs/".into(),
            endpoint: "https://my-bucket.s3.eu-west-1.amazonaws.com (virtual-hosted)".into(),
            region: "eu-west-1".into(),
            read_only: false,
            started: at(-(3 * 3600 + 2 * 60)),
            credentials: Some(CredentialsStatus {
                source: "imds".into(),
                masked_key: "ASIA************WXYZ".into(),
                expiry: Some(at(4 * 3600 + 10 * 60)),
                refreshable: true,
                next_refresh: Some(at(3 * 3600 + 40 * 60)),
                refreshes: 2,
                failures: 0,
                last_error: None,
            }),
            fs: FsStatus {
                cache: BlockCacheStatus {
                    bytes: 12 * MIB,
                    capacity: 64 * MIB,
                    blocks: 2,
                    hits: 1234,
                    misses: 56,
                },
                disk: Some(DiskCacheStatus {
                    bytes: 1229 * MIB,
                    capacity: 10 * 1024 * MIB,
                }),
                prefetch: PrefetchStatus {
                    in_use: 8 * MIB,
                    capacity: 32 * MIB,
                },
                open_files: 3,
                uploads: vec![UploadStatus {
                    path: "logs/big.bin".into(),
                    size: 512 * MIB,
                    dirty: true,
                }],
                ..Default::default()
            },
        }
    }

    /// A mount's block: header, then one labelled line per subject, uploads listed below.
    #[test]
    fn mount_block_reads_as_documented() {
        let now = UNIX_EPOCH + Duration::from_secs(1_780_000_000);
        let text = format_mount(&sample(now), now, true);
        let expected = "\
/mnt/data  my-bucket:logs/  (pid 1234, up 3 h 2 min, read-write)
  endpoint     https://my-bucket.s3.eu-west-1.amazonaws.com (virtual-hosted), region eu-west-1
  credentials  imds (key ASIA************WXYZ), expire 2026-05-29T00:36:40Z (in 4 h 10 min), next renewal in 3 h 40 min, 2 renewals
  cache        12.0 MiB of 64.0 MiB in memory (1234 hits, 56 misses); disk 1.2 GiB of 10.0 GiB
  prefetch     8.0 MiB of 32.0 MiB
  open files   3
  uploads      1 in progress
               logs/big.bin  512.0 MiB written, not yet in S3
";
        assert_eq!(text, expected);
    }

    /// Unsigned mounts, fixed keys, expired and failing credentials each say so.
    #[test]
    fn credentials_lines() {
        let now = UNIX_EPOCH + Duration::from_secs(1_780_000_000);
        let mut status = sample(now);
        status.credentials = None;
        status.fs.uploads.clear();
        let text = format_mount(&status, now, false);
        assert!(
            text.contains("credentials  none (--no-sign-request)"),
            "{text}"
        );
        assert!(text.contains("uploads      none"), "{text}");
        assert!(text.contains("not in this mount namespace"), "{text}");

        let fixed = CredentialsStatus {
            source: "environment".into(),
            masked_key: "AKIA************MPLE".into(),
            expiry: None,
            refreshable: false,
            next_refresh: None,
            refreshes: 0,
            failures: 0,
            last_error: None,
        };
        assert_eq!(
            format_credentials(&fixed, now),
            "environment (key AKIA************MPLE), never expire"
        );
        let failing = CredentialsStatus {
            source: "imds".into(),
            expiry: Some(1_780_000_000 - 120),
            refreshable: true,
            next_refresh: Some(1_780_000_000 - 10),
            refreshes: 1,
            failures: 3,
            last_error: Some("imds: connection refused".into()),
            ..fixed
        };
        assert_eq!(
            format_credentials(&failing, now),
            "imds (key AKIA************MPLE), expired 2026-05-28T20:24:40Z (2 min ago), \
             renewal due now, 1 renewal; 3 failed renewals in a row, last: imds: connection refused"
        );
    }

    /// Answered mounts come first, then those without status; nothing at all says so.
    #[test]
    fn report_lists_answered_then_silent_mounts() {
        let now = UNIX_EPOCH + Duration::from_secs(1_780_000_000);
        assert_eq!(format_report(&[], &[], &[], now), "no s3rolefs mounts\n");
        let status = sample(now);
        let mounted = [PathBuf::from("/mnt/data"), PathBuf::from("/mnt/x")];
        let silent = [PathBuf::from("/mnt/x"), PathBuf::from("/mnt/y")];
        let report = format_report(std::slice::from_ref(&status), &mounted, &silent, now);
        let expected = format!(
            "{}\n/mnt/x  ({NO_STATUS})\n/mnt/y  ({NO_STATUS})\n",
            format_mount(&status, now, true)
        );
        assert_eq!(report, expected);
        assert!(NO_STATUS.contains("not readable by this user, or the process is gone"));
    }

    /// A mount point is resolved through its parent only.
    #[test]
    fn mountpoint_resolved_through_its_parent() {
        let tmp = tempfile::tempdir().unwrap();
        let real = tmp.path().canonicalize().unwrap();
        assert_eq!(
            without_touching(&tmp.path().join("not-there")),
            real.join("not-there")
        );
    }
}
