//! The disk tier of the block cache (`--cache-dir-size`): blocks kept in files under
//! `blocks/` of the cache directory (`--cache-dir`, else `~/.cache/s3rolefs` for users), so
//! a file read once is read again without S3, across remounts.
//!
//! - One file per block, named by a hash of (key, ETag) and the block index: a replaced
//!   object's blocks are never found under its new ETag. Mode 0600, created `O_EXCL` under
//!   a temporary name and renamed; every operation is relative to the directory's
//!   descriptor ([`PrivateDir`]: the user's own, 0700, never reached through a symlink).
//!   Each file starts with a header naming the key and the ETag, checked on every read, so
//!   a hash collision or a damaged file reads as a miss, never as wrong data.
//! - Bounded: the files' total size stays under the configured bytes; the least recently
//!   used go first (an in-memory LRU over the file names, rebuilt from the directory at
//!   start, oldest modification time first).
//! - Never in the way: disk I/O runs on the blocking pool, and every failure (full disk,
//!   permissions) is a miss, logged once at debug level; the network path still works.

use std::io::{self, Read, Write};
use std::sync::{Arc, Mutex, MutexGuard};

use bytes::Bytes;
use lru::LruCache;
use sha2::{Digest, Sha256};

use crate::private_dir::PrivateDir;
use crate::s3::Chunks;

use super::block::BlockKey;

/// The first line of every block file.
const MAGIC: &str = "s3rolefs-block-v1";

/// Blocks on disk, bounded in bytes.
#[derive(Debug)]
pub struct DiskCache {
    /// Every file is opened, created, renamed and removed relative to this descriptor.
    dir: PrivateDir,
    capacity: u64,
    index: Mutex<Index>,
}

#[derive(Debug)]
struct Index {
    /// File name → file size, least recently used first.
    files: LruCache<String, u64>,
    bytes: u64,
}

impl DiskCache {
    /// Takes `dir` (a [`PrivateDir`]: this user's, 0700, held by a descriptor) and indexes
    /// the blocks already there; half-written files of an earlier run are removed.
    pub fn open(dir: PrivateDir, capacity: u64) -> io::Result<Arc<Self>> {
        let mut found = Vec::new();
        for name in dir.list()? {
            let name = name.to_string_lossy().into_owned();
            if name.ends_with(".tmp") {
                let _ = dir.remove(&name);
                continue;
            }
            if !name.ends_with(".blk") {
                continue;
            }
            // O_NONBLOCK: whatever the name, opening it never waits (a FIFO would).
            let meta = dir
                .open(&name, libc::O_RDONLY | libc::O_NONBLOCK)?
                .metadata()?;
            if !meta.is_file() {
                continue;
            }
            found.push((meta.modified().ok(), name, meta.len()));
        }
        // Oldest first, so the LRU order starts as "least recently written".
        found.sort();
        let mut index = Index {
            files: LruCache::unbounded(),
            bytes: 0,
        };
        for (_, name, len) in found {
            index.bytes += len;
            index.files.put(name, len);
        }
        let cache = Arc::new(DiskCache {
            dir,
            capacity,
            index: Mutex::new(index),
        });
        cache.evict_past_capacity();
        Ok(cache)
    }

    fn lock(&self) -> MutexGuard<'_, Index> {
        self.index.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn file_name(key: &BlockKey) -> String {
        let mut h = Sha256::new();
        h.update(key.key.as_bytes());
        h.update([0]);
        h.update(key.etag.as_bytes());
        format!("{}-{}.blk", hex::encode(&h.finalize()[..16]), key.index)
    }

    fn header(key: &BlockKey) -> String {
        format!("{MAGIC}\n{}\n{}\n", key.etag, key.key)
    }

    /// True when the block is on disk (by the index; no I/O).
    pub fn contains(&self, key: &BlockKey) -> bool {
        self.lock().files.contains(&Self::file_name(key))
    }

    /// Bytes of blocks on disk.
    pub fn bytes(&self) -> u64 {
        self.lock().bytes
    }

    /// The block, if on disk and intact.
    pub async fn get(self: &Arc<Self>, key: &BlockKey) -> Option<Chunks> {
        let name = Self::file_name(key);
        // Marks the block recently used; absent from the index means not on disk.
        self.lock().files.get(&name)?;
        let this = Arc::clone(self);
        let wanted = key.clone();
        let file = name.clone();
        let read = tokio::task::spawn_blocking(move || this.read_file(&file, &wanted))
            .await
            .ok()?;
        match read {
            Ok(data) => Some(Chunks::from(data)),
            Err(e) => {
                log::debug!(
                    "block cache: a block of {:?} is unreadable ({e}); dropped",
                    key.key
                );
                self.remove(&name);
                None
            }
        }
    }

    fn read_file(&self, name: &str, key: &BlockKey) -> io::Result<Bytes> {
        let mut file = self.dir.open(name, libc::O_RDONLY)?;
        let mut all = Vec::new();
        file.read_to_end(&mut all)?;
        let header = Self::header(key);
        if !all.starts_with(header.as_bytes()) {
            return Err(io::Error::other("header does not match the key and ETag"));
        }
        Ok(Bytes::from(all).slice(header.len()..))
    }

    /// Stores a block in the background (a failure only costs the cache entry).
    pub fn put(self: &Arc<Self>, key: BlockKey, data: Chunks) {
        if self.capacity == 0 || data.len() as u64 > self.capacity {
            return;
        }
        let name = Self::file_name(&key);
        if self.lock().files.contains(&name) {
            return;
        }
        let this = Arc::clone(self);
        tokio::task::spawn_blocking(move || match this.write_file(&name, &key, &data) {
            Ok(len) => {
                {
                    let mut index = this.lock();
                    if let Some(old) = index.files.put(name, len) {
                        index.bytes -= old;
                    }
                    index.bytes += len;
                }
                this.evict_past_capacity();
            }
            Err(e) => log::debug!("block cache: cannot store a block of {:?}: {e}", key.key),
        });
    }

    fn write_file(&self, name: &str, key: &BlockKey, data: &Chunks) -> io::Result<u64> {
        // Written under a temporary name and renamed, so a reader never sees half a block.
        let tmp = format!("{name}.{}.tmp", std::process::id());
        let mut file = self.dir.create_new(&tmp)?;
        let header = Self::header(key);
        let written = file.write_all(header.as_bytes()).and_then(|()| {
            data.parts()
                .iter()
                .try_for_each(|part| file.write_all(part))
        });
        if let Err(e) = written {
            let _ = self.dir.remove(&tmp);
            return Err(e);
        }
        self.dir.rename(&tmp, name)?;
        Ok((header.len() + data.len()) as u64)
    }

    fn remove(&self, name: &str) {
        let removed = {
            let mut index = self.lock();
            let len = index.files.pop(name);
            if let Some(len) = len {
                index.bytes -= len;
            }
            len.is_some()
        };
        if removed {
            let _ = self.dir.remove(name);
        }
    }

    fn evict_past_capacity(&self) {
        loop {
            let victim = {
                let mut index = self.lock();
                if index.bytes <= self.capacity {
                    return;
                }
                match index.files.pop_lru() {
                    Some((name, len)) => {
                        index.bytes -= len;
                        name
                    }
                    None => return,
                }
            };
            let _ = self.dir.remove(victim);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;
    use std::os::unix::fs::PermissionsExt;

    fn private(path: &std::path::Path) -> PrivateDir {
        PrivateDir::create(path).unwrap()
    }

    fn key(k: &str, etag: &str, index: u64) -> BlockKey {
        BlockKey {
            key: Arc::from(k),
            etag: Arc::from(etag),
            index,
        }
    }

    async fn settle(cache: &DiskCache, files: usize) {
        for _ in 0..200 {
            if cache.lock().files.len() == files {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
    }

    #[tokio::test]
    async fn blocks_survive_a_reopen_and_files_are_private() {
        let dir = tempfile::tempdir().unwrap();
        let cache = DiskCache::open(private(dir.path()), 1 << 20).unwrap();
        cache.put(key("a/b", "\"e1\"", 0), Bytes::from_static(b"hello").into());
        settle(&cache, 1).await;
        drop(cache);
        let cache = DiskCache::open(private(dir.path()), 1 << 20).unwrap();
        assert!(cache.contains(&key("a/b", "\"e1\"", 0)));
        let got = cache.get(&key("a/b", "\"e1\"", 0)).await.unwrap();
        assert_eq!(got.to_bytes().as_ref(), b"hello");
        // Another version of the object is another block.
        assert!(cache.get(&key("a/b", "\"e2\"", 0)).await.is_none());
        for entry in fs::read_dir(dir.path()).unwrap() {
            let mode = entry.unwrap().metadata().unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let dir_mode = fs::metadata(dir.path()).unwrap().permissions().mode();
        assert_eq!(dir_mode & 0o777, 0o700);
    }

    #[tokio::test]
    async fn the_byte_bound_evicts_least_recently_used() {
        let dir = tempfile::tempdir().unwrap();
        let one = Bytes::from(vec![7u8; 1000]);
        let cache = DiskCache::open(private(dir.path()), 2500).unwrap();
        cache.put(key("k", "e", 0), one.clone().into());
        settle(&cache, 1).await;
        cache.put(key("k", "e", 1), one.clone().into());
        settle(&cache, 2).await;
        assert!(cache.get(&key("k", "e", 0)).await.is_some()); // 0 is now recent
        cache.put(key("k", "e", 2), one.clone().into());
        for _ in 0..200 {
            if cache.contains(&key("k", "e", 2)) {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        assert!(cache.contains(&key("k", "e", 0)));
        assert!(!cache.contains(&key("k", "e", 1)));
        assert!(cache.bytes() <= 2500);
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 2);
    }

    #[tokio::test]
    async fn a_damaged_file_is_a_miss_and_goes() {
        let dir = tempfile::tempdir().unwrap();
        let cache = DiskCache::open(private(dir.path()), 1 << 20).unwrap();
        let k = key("x", "e", 3);
        cache.put(k.clone(), Bytes::from_static(b"data").into());
        settle(&cache, 1).await;
        let path = dir.path().join(DiskCache::file_name(&k));
        fs::write(&path, b"garbage").unwrap();
        assert!(cache.get(&k).await.is_none());
        assert!(!cache.contains(&k));
        assert!(!path.exists());
    }
}
