//! `s3rolefs recover [DIR] --dry-run`: what the journal in DIR holds, and what the next
//! mount of each bucket will do with it — without asking S3 anything, and without touching
//! the journal (a dry run changes nothing; the mount is what recovers).
//!
//! One block per file: bucket (and endpoint), key, size, whether its program had finished
//! it (complete) or it was open when its mount died, whether a live mount holds it now,
//! and the action: to its key if the object there is still the version it was based on,
//! else beside it as `KEY.s3rolefs-recovered-<time>`; multipart uploads to abort.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::private_dir::PrivateDir;
use crate::upload::journal::{Journal, Record};

use super::status::format_bytes;

/// Runs the command; `Err` is the one-line message.
pub fn run(dir: Option<PathBuf>, dry_run: bool) -> Result<(), String> {
    if !dry_run {
        return Err(
            "recovery is done by mounting: `s3rolefs mount BUCKET DIR` uploads what the journal \
             holds for that bucket as soon as it is mounted; add --dry-run to see what it will do"
                .into(),
        );
    }
    let dir = dir.unwrap_or_else(default_dir);
    print!("{}", report(&dir, SystemTime::now())?);
    Ok(())
}

/// The cache directory a mount of this user uses by default (`--cache-dir`).
fn default_dir() -> PathBuf {
    let options = crate::config::MountOptions {
        source: "recover".into(),
        ..Default::default()
    };
    match crate::config::MountConfig::build(options, |k| std::env::var(k).ok()) {
        Ok(config) => config.cache_dir,
        Err(_) => PathBuf::from("/var/lib/s3rolefs"),
    }
}

/// The report for the cache directory `dir`.
pub fn report(dir: &Path, now: SystemTime) -> Result<String, String> {
    let journal_dir = dir.join("journal");
    if std::fs::symlink_metadata(&journal_dir).is_err() {
        return Ok(format!(
            "{}: no journal; nothing waits to be uploaded\n",
            journal_dir.display()
        ));
    }
    let private = PrivateDir::create(&journal_dir).map_err(|e| e.to_string())?;
    let entries = Journal::list_all(&private)
        .map_err(|e| format!("cannot read the journal {}: {e}", journal_dir.display()))?;
    let mut out = String::new();
    if entries.is_empty() {
        out.push_str(&format!(
            "{}: empty; nothing waits to be uploaded\n",
            journal_dir.display()
        ));
        return Ok(out);
    }
    out.push_str(&format!(
        "{}: {} not in S3\n",
        journal_dir.display(),
        match entries.len() {
            1 => "1 file".to_string(),
            n => format!("{n} files"),
        }
    ));
    for (id, record, held) in &entries {
        out.push_str(&entry(id, record, *held, now));
    }
    Ok(out)
}

fn entry(id: &str, r: &Record, held: bool, now: SystemTime) -> String {
    let bucket = match &r.origin.endpoint {
        Some(endpoint) => format!("{} ({endpoint})", r.origin.bucket),
        None => r.origin.bucket.clone(),
    };
    let state = if r.complete {
        "complete (closed)"
    } else {
        "incomplete (open when its mount died)"
    };
    let age = now
        .duration_since(UNIX_EPOCH + Duration::from_secs(r.updated))
        .unwrap_or_default();
    let mut text = format!(
        "  {bucket}  {}  {}, {state}, written {} ago  [{id}]\n",
        r.key,
        format_bytes(r.size),
        super::when::span(age)
    );
    let beside = format!("{}.s3rolefs-recovered-<time>", r.key);
    let action = if held {
        "held by a running mount, which uploads it itself".to_string()
    } else if !r.complete && r.size == 0 {
        "nothing to upload (no byte reached the disk)".to_string()
    } else if !r.complete {
        format!("upload beside it as {beside}; the object stays as it was")
    } else {
        match &r.base_etag {
            Some(etag) => format!(
                "upload to {} if it is still version {etag} there, else beside it as {beside}",
                r.key
            ),
            None => format!(
                "upload to {} if nothing is there now, else beside it as {beside}",
                r.key
            ),
        }
    };
    text.push_str(&format!("      -> {action}\n"));
    if !held && !r.upload_ids.is_empty() {
        text.push_str(&format!(
            "      -> abort multipart upload {}\n",
            r.upload_ids.join(", ")
        ));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::upload::journal::BucketId;

    /// The report names each file's bucket, key, state and what the mount will do; a dry
    /// run leaves the journal as it was.
    #[test]
    fn report_says_what_a_mount_would_do() {
        let dir = tempfile::tempdir().unwrap();
        let journal = Journal::new(
            PrivateDir::create(&dir.path().join("journal")).unwrap(),
            BucketId {
                endpoint: Some("http://127.0.0.1:9000".into()),
                bucket: "bkt".into(),
            },
        );
        let origin = journal.origin().clone();
        let a = journal.create().unwrap();
        let mut closed = Record::new(
            origin.clone(),
            "docs/a.txt".into(),
            Some("\"e1\"".into()),
            10,
        );
        closed.complete = true;
        journal.save(&a.id, &closed, true).unwrap();
        let b = journal.create().unwrap();
        let mut open = Record::new(origin, "disk.img".into(), None, 0);
        open.size = 3 << 20;
        open.upload_ids = vec!["up-1".into()];
        journal.save(&b.id, &open, false).unwrap();
        drop(b);
        let text = report(dir.path(), SystemTime::now()).unwrap();
        assert!(text.contains("2 files not in S3"), "{text}");
        assert!(
            text.contains("bkt (http://127.0.0.1:9000)  docs/a.txt"),
            "{text}"
        );
        assert!(text.contains("held by a running mount"), "{text}");
        assert!(
            text.contains("upload beside it as disk.img.s3rolefs-recovered-<time>"),
            "{text}"
        );
        assert!(text.contains("abort multipart upload up-1"), "{text}");
        drop(a);
        let again = report(dir.path(), SystemTime::now()).unwrap();
        assert!(
            again.contains("upload to docs/a.txt if it is still version \"e1\""),
            "{again}"
        );
        assert_eq!(
            std::fs::read_dir(dir.path().join("journal"))
                .unwrap()
                .count(),
            4
        );
    }

    /// A directory without a journal says so.
    #[test]
    fn no_journal_is_nothing_to_do() {
        let dir = tempfile::tempdir().unwrap();
        let text = report(dir.path(), SystemTime::now()).unwrap();
        assert!(text.contains("no journal"), "{text}");
    }
}
