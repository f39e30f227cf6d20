//! Object metadata kept across remounts (`meta/` of the cache directory): what HEADs said of
//! objects (their modes, owners, times and xattrs live there), by key, with the version it was
//! read from — the ETag and the `Last-Modified` second.
//!
//! A listing shows both for every file. Where they match what is kept, the listing alone
//! answers `ls -l` with the stored attributes, on a mount that has just started, without a
//! HEAD per file. A changed object (new content, or new metadata: a copy onto itself keeps
//! a single-part object's ETag but not its `Last-Modified`) does not match and is asked
//! again. The one change this cannot see is a metadata-only rewrite within the same second
//! as the version it replaces.
//!
//! One file per bucket and prefix, JSON lines, written whole under a temporary name and
//! renamed over the old one at unmount (0600 in the user's own 0700 directory,
//! [`PrivateDir`]); a file that is missing, damaged or from another version reads as empty.
//! Bounded: the most recently used [`CAPACITY`] entries.

use std::num::NonZeroUsize;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::{SystemTime, UNIX_EPOCH};

use lru::LruCache;
use serde::{Deserialize, Serialize};

use super::jsonl;
use crate::private_dir::PrivateDir;
use crate::s3::Metadata;

/// Entries kept: a few hundred bytes each, so tens of MiB at most.
pub const CAPACITY: usize = 100_000;

/// The first line of every file.
const MAGIC: &str = "s3rolefs-meta-v1";

/// One object's metadata and the version it is of.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct Entry {
    #[serde(rename = "k")]
    key: String,
    #[serde(rename = "e")]
    etag: String,
    /// `Last-Modified`, whole seconds since the epoch.
    #[serde(rename = "t")]
    modified: u64,
    #[serde(rename = "m")]
    metadata: Metadata,
}

/// The metadata kept for one bucket (and prefix).
pub struct MetaCache {
    dir: PrivateDir,
    file: String,
    entries: Mutex<LruCache<String, Entry>>,
    changed: AtomicBool,
}

impl std::fmt::Debug for MetaCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MetaCache")
            .field("dir", &self.dir.path())
            .field("entries", &self.len())
            .finish()
    }
}

fn seconds(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

impl MetaCache {
    /// The cache of `bucket` (its endpoint, name and prefix, as one string) in `dir`, with
    /// what an earlier mount kept.
    pub fn open(dir: PrivateDir, bucket: &str, capacity: usize) -> MetaCache {
        let file = jsonl::file_name(bucket);
        let mut entries = LruCache::new(NonZeroUsize::new(capacity).unwrap_or(NonZeroUsize::MIN));
        for entry in jsonl::read::<Entry>(&dir, &file, MAGIC) {
            entries.put(entry.key.clone(), entry);
        }
        MetaCache {
            dir,
            file,
            entries: Mutex::new(entries),
            changed: AtomicBool::new(false),
        }
    }

    fn entries(&self) -> MutexGuard<'_, LruCache<String, Entry>> {
        // A plain map, consistent between statements.
        self.entries.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The metadata of `key` at the version a listing shows (`etag`, `last_modified`), if
    /// kept.
    pub fn get(&self, key: &str, etag: &str, last_modified: SystemTime) -> Option<Metadata> {
        let mut entries = self.entries();
        let entry = entries.get(key)?;
        (entry.etag == etag && entry.modified == seconds(last_modified))
            .then(|| entry.metadata.clone())
    }

    /// Keeps what a HEAD of `key` said.
    pub fn put(&self, key: &str, etag: &str, last_modified: SystemTime, metadata: &Metadata) {
        let entry = Entry {
            key: key.to_string(),
            etag: etag.to_string(),
            modified: seconds(last_modified),
            metadata: metadata.clone(),
        };
        self.entries().put(entry.key.clone(), entry);
        self.changed.store(true, Ordering::Release);
    }

    /// `key` was rewritten or removed through this mount.
    pub fn forget(&self, key: &str) {
        if self.entries().pop(key).is_some() {
            self.changed.store(true, Ordering::Release);
        }
    }

    pub fn len(&self) -> usize {
        self.entries().len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries().is_empty()
    }

    /// Writes what is kept for the next mount (least recently used first, so a load keeps
    /// the order). Failures are logged: a cache that is not written is only slower.
    pub fn save(&self) {
        if !self.changed.swap(false, Ordering::AcqRel) {
            return;
        }
        let lines: Vec<String> = {
            let entries = self.entries();
            entries
                .iter()
                .rev()
                .filter_map(|(_, e)| serde_json::to_string(e).ok())
                .collect()
        };
        if let Err(e) = jsonl::write(&self.dir, &self.file, MAGIC, &lines) {
            log::warn!(
                "metadata cache {}: not saved ({e}); the next mount asks S3 again",
                self.dir.path().display()
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn meta(mode: &str) -> Metadata {
        let mut m = Metadata::default();
        m.user.insert("mode".into(), mode.into());
        m
    }

    /// Kept across a save and a new open; a different ETag or second is a miss.
    #[test]
    fn survives_a_remount_and_checks_the_version() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = || PrivateDir::create(&tmp.path().join("meta")).unwrap();
        let t = UNIX_EPOCH + Duration::from_millis(1_700_000_000_250);
        let cache = MetaCache::open(dir(), "bucket", 10);
        cache.put("a", "\"e1\"", t, &meta("33152"));
        cache.put("b", "\"e2\"", t, &meta("33188"));
        cache.forget("b");
        cache.save();
        let again = MetaCache::open(dir(), "bucket", 10);
        assert_eq!(again.len(), 1);
        let listed = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        assert_eq!(again.get("a", "\"e1\"", listed), Some(meta("33152")));
        assert_eq!(again.get("a", "\"other\"", listed), None);
        assert_eq!(
            again.get("a", "\"e1\"", listed + Duration::from_secs(1)),
            None
        );
        assert!(MetaCache::open(dir(), "another bucket", 10).is_empty());
    }

    /// A damaged file reads as empty, never as an error.
    #[test]
    fn a_damaged_file_is_empty() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = PrivateDir::create(&tmp.path().join("meta")).unwrap();
        let cache = MetaCache::open(dir, "b", 10);
        let name = cache.file.clone();
        std::fs::write(tmp.path().join("meta").join(&name), "garbage\n{not json").unwrap();
        let dir = PrivateDir::create(&tmp.path().join("meta")).unwrap();
        assert!(MetaCache::open(dir, "b", 10).is_empty());
    }
}
