//! Directory listings kept across remounts (`listings/` of the cache directory), for a
//! write-back mount to list offline what an earlier mount saw (#19, "Offline"): by directory
//! key, each entry's name, kind and, for a file, the size, ETag and `Last-Modified` second
//! the listing showed. Modes, owners and times come from the metadata cache (`meta`), which
//! keys them by the same ETag and second.
//!
//! Only offline answers are made of it: online, every directory is listed again when it is
//! first read. One file per bucket and prefix, JSON lines, written whole under a temporary
//! name and renamed over the old one (0600, in the user's own 0700 directory); a file that
//! is missing, damaged or of another version reads as empty. Bounded: the most recently
//! used [`CAPACITY`] directories, and none of more than [`ENTRIES_MAX`] entries (stored in
//! part, a listing would say that the rest is not there).
//!
//! Beside the listings, `<file>.region` keeps the region the bucket was last found in, for
//! a mount that starts while S3 cannot be reached.

use std::io::Write;
use std::num::NonZeroUsize;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use lru::LruCache;
use serde::{Deserialize, Serialize};

use super::jsonl;
use crate::private_dir::PrivateDir;

/// Directories kept.
pub const CAPACITY: usize = 4096;

/// The largest directory kept.
pub const ENTRIES_MAX: usize = 20_000;

/// The first line of every file.
const MAGIC: &str = "s3rolefs-listings-v1";

/// One entry of a stored listing.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredEntry {
    #[serde(rename = "n")]
    pub name: String,
    /// A directory (`true`) or a file.
    #[serde(rename = "d", default, skip_serializing_if = "std::ops::Not::not")]
    pub dir: bool,
    #[serde(rename = "s", default)]
    pub size: u64,
    #[serde(rename = "e", default, skip_serializing_if = "Option::is_none")]
    pub etag: Option<String>,
    /// `Last-Modified`, whole seconds since the epoch.
    #[serde(rename = "t", default)]
    pub modified: u64,
}

impl StoredEntry {
    pub fn last_modified(&self) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(self.modified)
    }
}

/// One stored directory.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct Line {
    #[serde(rename = "k")]
    key: String,
    #[serde(rename = "l")]
    entries: Vec<StoredEntry>,
}

/// The listings kept for one bucket (and prefix).
pub struct ListingStore {
    dir: PrivateDir,
    file: String,
    listings: Mutex<LruCache<String, Vec<StoredEntry>>>,
    changed: AtomicBool,
}

impl std::fmt::Debug for ListingStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ListingStore")
            .field("dir", &self.dir.path())
            .field("directories", &self.listings().len())
            .finish()
    }
}

/// Whole seconds since the epoch.
pub fn seconds(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

impl ListingStore {
    /// The store of `bucket` (its endpoint, name and prefix, as one string) in `dir`, with
    /// what an earlier mount kept.
    pub fn open(dir: PrivateDir, bucket: &str, capacity: usize) -> ListingStore {
        let file = jsonl::file_name(bucket);
        let mut listings = LruCache::new(NonZeroUsize::new(capacity).unwrap_or(NonZeroUsize::MIN));
        for line in jsonl::read::<Line>(&dir, &file, MAGIC) {
            listings.put(line.key, line.entries);
        }
        ListingStore {
            dir,
            file,
            listings: Mutex::new(listings),
            changed: AtomicBool::new(false),
        }
    }

    fn listings(&self) -> MutexGuard<'_, LruCache<String, Vec<StoredEntry>>> {
        // A plain map, consistent between statements.
        self.listings.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The listing kept of the directory whose keys start with `key`, sorted by name.
    pub fn get(&self, key: &str) -> Option<Vec<StoredEntry>> {
        self.listings().get(key).cloned()
    }

    /// Keeps `entries` as the listing of directory `key` (a directory too large to keep
    /// is dropped instead).
    pub fn put(&self, key: &str, mut entries: Vec<StoredEntry>) {
        if entries.len() > ENTRIES_MAX {
            return self.forget(key);
        }
        entries.sort_by(|a, b| a.name.cmp(&b.name));
        let mut listings = self.listings();
        if listings.peek(key) != Some(&entries) {
            listings.put(key.to_string(), entries);
            self.changed.store(true, Ordering::Release);
        }
    }

    /// Directory `key` changed in a way the kept listing does not follow.
    pub fn forget(&self, key: &str) {
        if self.listings().pop(key).is_some() {
            self.changed.store(true, Ordering::Release);
        }
    }

    /// The region an earlier mount found the bucket in.
    pub fn region(&self) -> Option<String> {
        use std::io::Read;
        let mut text = String::new();
        self.dir
            .open(self.region_file(), libc::O_RDONLY)
            .ok()?
            .read_to_string(&mut text)
            .ok()?;
        let region = text.trim();
        let valid = !region.is_empty()
            && region.len() <= 64
            && region
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-');
        valid.then(|| region.to_string())
    }

    /// The bucket is in `region` (kept when it changed).
    pub fn remember_region(&self, region: &str) {
        if self.region().as_deref() == Some(region) {
            return;
        }
        let file = self.region_file();
        let temp = format!("{file}.{}.tmp", std::process::id());
        let written = (|| {
            let _ = self.dir.remove(&temp);
            let mut f = self.dir.create_new(&temp)?;
            writeln!(f, "{region}")?;
            drop(f);
            self.dir.rename(&temp, &file)
        })();
        if let Err(e) = written {
            log::debug!(
                "listing store {}: region not kept: {e}",
                self.dir.path().display()
            );
            let _ = self.dir.remove(&temp);
        }
    }

    fn region_file(&self) -> String {
        format!("{}.region", self.file)
    }

    /// Writes what is kept for the next mount (least recently used first, so a load keeps
    /// the order). Failures are logged: a store not written only lists less offline.
    pub fn save(&self) {
        if !self.changed.swap(false, Ordering::AcqRel) {
            return;
        }
        let lines: Vec<String> = {
            let listings = self.listings();
            listings
                .iter()
                .rev()
                .filter_map(|(key, entries)| {
                    serde_json::to_string(&Line {
                        key: key.clone(),
                        entries: entries.clone(),
                    })
                    .ok()
                })
                .collect()
        };
        if let Err(e) = jsonl::write(&self.dir, &self.file, MAGIC, &lines) {
            log::warn!(
                "listing store {}: not saved ({e}); the next mount lists offline only what it sees",
                self.dir.path().display()
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(name: &str, size: u64) -> StoredEntry {
        StoredEntry {
            name: name.into(),
            dir: false,
            size,
            etag: Some(format!("\"{name}\"")),
            modified: 1_700_000_000,
        }
    }

    /// Kept across a save and a new open, sorted; forgotten directories and those of
    /// another bucket are not there; a damaged file reads as empty.
    #[test]
    fn listings_survive_a_remount() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = || PrivateDir::create(&tmp.path().join("listings")).unwrap();
        let store = ListingStore::open(dir(), "bucket", 10);
        let sub = StoredEntry {
            name: "sub".into(),
            dir: true,
            size: 0,
            etag: None,
            modified: 0,
        };
        store.put("", vec![file("b", 2), sub.clone(), file("a", 1)]);
        store.put("gone/", vec![file("x", 1)]);
        store.forget("gone/");
        store.put(
            "big/",
            (0..ENTRIES_MAX + 1)
                .map(|i| file(&i.to_string(), 1))
                .collect(),
        );
        store.save();

        let again = ListingStore::open(dir(), "bucket", 10);
        assert_eq!(again.get(""), Some(vec![file("a", 1), file("b", 2), sub]));
        assert_eq!(again.get("gone/"), None);
        assert_eq!(again.get("big/"), None, "too large to keep whole");
        assert_eq!(ListingStore::open(dir(), "other", 10).get(""), None);

        let name = std::fs::read_dir(tmp.path().join("listings"))
            .unwrap()
            .next()
            .unwrap()
            .unwrap()
            .path();
        std::fs::write(&name, "s3rolefs-listings-v0\n{}").unwrap();
        assert_eq!(ListingStore::open(dir(), "bucket", 10).get(""), None);

        assert_eq!(again.region(), None);
        again.remember_region("eu-west-1");
        assert_eq!(
            ListingStore::open(dir(), "bucket", 10).region().as_deref(),
            Some("eu-west-1")
        );
        assert_eq!(ListingStore::open(dir(), "other", 10).region(), None);
    }
}
